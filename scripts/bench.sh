#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds cfutures and the benchmarks (Release, in build/release) and runs
# every benchmark of bench/ for cfutures and each installed peer (oneTBB,
# OpenMP, GLib, libuv, Python), several repetitions with the
# implementations interleaved; prints one table per benchmark with medians,
# ratios to cfutures and the goals, and writes bench/results/latest.csv,
# latest.json, latest-goals.csv and latest.md. A missing peer is named and
# skipped; scripts/install-bench-deps.sh installs them.
#
# Usage: scripts/bench.sh [--reps N] [--quick] [--only B2[,B5]] [--no-build]
#                         [--out DIR] [--scaling[=1,2,4,8,16]]
#                         [--baseline DIR]
#   --reps N    repetitions of each benchmark (default 5)
#   --quick     one repetition of smaller sizes: a smoke run (under a minute)
#   --only LIST run only these benchmarks (B1..B7, comma-separated)
#   --no-build  run what build/release already has
#   --out DIR   write the result files there (default bench/results)
#   --scaling[=LIST]  instead, B1, B2 and B3 at each worker count of LIST
#               (default 1,2,4,8,16) for cfutures and every peer, as
#               speedups over 1 worker (latest-scaling.md); more workers
#               than CPUs makes it an oversubscribed smoke test
#   --baseline DIR  also run the cfutures programs of an older build in DIR,
#               interleaved, as IMPL@before rows (bench/run.py)
# Environment: JOBS (build parallelism, default nproc).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build=1
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --no-build) build=0 ;;
    --reps | --only | --out | --baseline)
        [ $# -ge 2 ] || { echo "bench.sh: $1 needs a value" >&2; exit 2; }
        args+=("$1" "$2")
        shift
        ;;
    --reps=* | --only=* | --out=* | --baseline=* | --quick | --scaling | --scaling=*)
        args+=("$1")
        ;;
    -h | --help)
        sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench.sh: unknown option: $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

if ! command -v python3 >/dev/null 2>&1; then
    echo "bench.sh: python3 runs bench/run.py; install it" \
        "(scripts/install-bench-deps.sh)" >&2
    exit 1
fi

dir=build/release
if [ "$build" -eq 1 ]; then
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    # Build quietly; show the compiler's output only when it fails.
    if ! {
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCF_SANITIZE= \
            -DCF_BUILD_TESTS=OFF -DCF_BUILD_BENCH=ON &&
            cmake --build "$dir" --target cf_bench \
                --parallel "${JOBS:-$(nproc)}"
    } >"$log" 2>&1; then
        cat "$log" >&2
        echo "bench.sh: building the benchmarks failed" >&2
        exit 1
    fi
    grep '^-- bench:' "$log" | sed 's/^-- /bench.sh: /' >&2 || true
fi
exec python3 bench/run.py --build "$dir" "${args[@]}"
