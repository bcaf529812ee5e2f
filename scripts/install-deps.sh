#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, with apt, the tools that scripts/test.sh needs and that are
# missing: cmake, make, gcc, clang with its sanitizer runtime, pkg-config.
# Does nothing (and needs no network) when everything is present already.
# Usage: scripts/install-deps.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"


missing() {
    local p
    for p in "$@"; do
        installed "$p" || printf '%s\n' "$p"
    done
}


base=(cmake make gcc libc6-dev clang pkg-config)
mapfile -t need < <(missing "${base[@]}")
# pkgconf provides the pkg-config command too.
if [ "${#need[@]}" -gt 0 ] && command -v pkg-config >/dev/null 2>&1; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | grep -vx pkg-config || true)
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt_install install-deps "${need[@]}"
fi

# clang's sanitizer runtimes (libclang_rt.*) come in a package named after
# clang's major version: libclang-rt-14-dev on Debian 12.
rtdir=$(clang -print-resource-dir)/lib/linux
if ! ls "$rtdir"/libclang_rt.tsan-*.a "$rtdir"/libclang_rt.asan-*.a \
    >/dev/null 2>&1; then
    apt_install install-deps "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
fi
echo "install-deps: all present: $(cmake --version | head -n1)," \
    "gcc $(gcc -dumpversion), clang $(clang -dumpversion)"
