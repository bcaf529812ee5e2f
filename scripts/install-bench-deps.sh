#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, with apt, the peers that the benchmarks in bench/ compare
# cfutures with, and the tools that build them. Only what is missing is
# installed; with everything present it does nothing and needs no network.
#   oneTBB               libtbb-dev (and g++ for it)
#   OpenMP               gcc's libgomp (libgomp1, comes with gcc)
#   GLib's GThreadPool   libglib2.0-dev
#   libuv's work queue   libuv1-dev
#   concurrent.futures   python3
# Usage: scripts/install-bench-deps.sh   (as root, or with sudo)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"


if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-bench-deps: no apt-get here; install by hand: g++ libtbb-dev" \
        "libgomp1 libglib2.0-dev libuv1-dev python3 pkg-config" >&2
    exit 1
fi

pkgs=(cmake make gcc g++ pkg-config libtbb-dev libgomp1 libglib2.0-dev
    libuv1-dev python3)
need=()
for p in "${pkgs[@]}"; do
    installed "$p" || need+=("$p")
done
# pkgconf provides the pkg-config command too.
if command -v pkg-config >/dev/null 2>&1; then
    keep=()
    for p in "${need[@]}"; do
        [ "$p" = pkg-config ] || keep+=("$p")
    done
    need=("${keep[@]}")
fi

if [ "${#need[@]}" -gt 0 ]; then
    apt_install install-bench-deps "${need[@]}"
fi

for p in "${pkgs[@]}"; do
    if installed "$p"; then
        printf 'install-bench-deps: %-16s %s\n' "$p" \
            "$(dpkg-query -W -f='${Version}' "$p")"
    elif [ "$p" != pkg-config ]; then
        printf 'install-bench-deps: %-16s MISSING\n' "$p"
    fi
done
