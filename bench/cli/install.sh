#!/usr/bin/env bash
# Installs, with apt, what bench/cli/run_bench.sh compares `cfutures run`
# with and does not find: GNU parallel (Debian's `parallel`) and xargs
# (`findutils`). Does nothing, and needs no network, when both are there.
# Usage: bench/cli/install.sh   (as root, or with sudo)
set -euo pipefail

need=()
command -v parallel >/dev/null 2>&1 || need+=(parallel)
command -v xargs >/dev/null 2>&1 || need+=(findutils)
if [ "${#need[@]}" -eq 0 ]; then
    echo "install.sh: present: $(parallel --version | head -n1)," \
        "$(xargs --version | head -n1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: no apt-get here; install by hand: ${need[*]}" >&2
    exit 1
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=sudo
    else
        echo "install.sh: need root (or sudo) to install: ${need[*]}" >&2
        exit 1
    fi
fi
echo "install.sh: installing ${need[*]}"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Use-Pty=0 "${need[@]}" >/dev/null
echo "install.sh: installed: $(parallel --version | head -n1)"
