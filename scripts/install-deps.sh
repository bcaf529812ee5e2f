#!/usr/bin/env bash
# Installs, with apt, the tools that scripts/test.sh needs and that are
# missing: cmake, make, gcc, clang with its sanitizer runtime, pkg-config.
# Does nothing (and needs no network) when everything is present already.
# Usage: scripts/install-deps.sh
set -euo pipefail

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing() {
    local p
    for p in "$@"; do
        installed "$p" || printf '%s\n' "$p"
    done
}

apt_updated=
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: missing packages and no apt-get: $*" >&2
        exit 1
    fi
    local sudo=
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "install-deps: need root (or sudo) to install: $*" >&2
            exit 1
        fi
    fi
    echo "install-deps: installing $*"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o Dpkg::Use-Pty=0 "$@" >/dev/null
}

base=(cmake make gcc libc6-dev clang pkg-config)
mapfile -t need < <(missing "${base[@]}")
# pkgconf provides the pkg-config command too.
if [ "${#need[@]}" -gt 0 ] && command -v pkg-config >/dev/null 2>&1; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | grep -vx pkg-config || true)
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt_install "${need[@]}"
fi

# clang's sanitizer runtimes (libclang_rt.*) come in a package named after
# clang's major version: libclang-rt-14-dev on Debian 12.
rtdir=$(clang -print-resource-dir)/lib/linux
if ! ls "$rtdir"/libclang_rt.tsan-*.a "$rtdir"/libclang_rt.asan-*.a \
    >/dev/null 2>&1; then
    apt_install "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
fi
echo "install-deps: all present: $(cmake --version | head -n1)," \
    "gcc $(gcc -dumpversion), clang $(clang -dumpversion)"
