#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds cfutures and its command-line program (Release, in build/release)
# and runs the guided tour, `cfutures demo`; arguments are passed on to it
# (--quick for smaller workloads, --plot DIR for the speedup chart and the
# pool threads' timelines).
# Usage: scripts/demo.sh [demo arguments...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

dir=build/release
program=$dir/tools/cfutures

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Build quietly; show the compiler's output only when it fails.
if ! {
    # The same settings as scripts/bench.sh, which shares build/release.
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCF_SANITIZE= \
        -DCF_BUILD_TESTS=OFF -DCF_BUILD_EXAMPLES=ON &&
        cmake --build "$dir" --target cfutures --parallel "$(nproc)"
} >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo.sh: building the cfutures program failed" >&2
    exit 1
fi
if [ ! -x "$program" ]; then
    echo "demo.sh: the build made no $program" >&2
    exit 1
fi
exec "$program" demo "$@"
