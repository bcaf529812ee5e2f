#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, with apt, what bench/cli/run_bench.sh compares `cfutures run`
# with and does not find: GNU parallel (Debian's `parallel`) and xargs
# (`findutils`). Does nothing, and needs no network, when both are there.
# Usage: bench/cli/install.sh   (as root, or with sudo)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/apt.sh"

need=()
command -v parallel >/dev/null 2>&1 || need+=(parallel)
command -v xargs >/dev/null 2>&1 || need+=(findutils)
if [ "${#need[@]}" -eq 0 ]; then
    echo "install.sh: present: $(parallel --version | head -n1)," \
        "$(xargs --version | head -n1)"
    exit 0
fi
apt_install install.sh "${need[@]}"
echo "install.sh: installed: $(parallel --version | head -n1)"
