#!/usr/bin/env bash
# Builds cfutures and its demo program (Release, in build/release) and runs
# the demo; arguments are passed on to it.
# Usage: scripts/demo.sh [demo arguments...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

dir=build/release
demo=$dir/examples/cfutures_demo

if ! grep -qsw cfutures_demo examples/CMakeLists.txt; then
    echo "demo.sh: examples/CMakeLists.txt does not define the cfutures_demo" \
        "target (yet)" >&2
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Build quietly; show the compiler's output only when it fails.
if ! {
    # The same settings as scripts/bench.sh, which shares build/release.
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCF_SANITIZE= \
        -DCF_BUILD_TESTS=OFF -DCF_BUILD_EXAMPLES=ON &&
        cmake --build "$dir" --target cfutures_demo --parallel "$(nproc)"
} >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo.sh: building cfutures_demo failed" >&2
    exit 1
fi
if [ ! -x "$demo" ]; then
    echo "demo.sh: the build made no $demo" >&2
    exit 1
fi
exec "$demo" "$@"
