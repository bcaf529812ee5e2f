#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/process_pool/run.sh - the cfutures process pool against Python's
# concurrent.futures.ProcessPoolExecutor, side by side, and a table of
# medians. pp_bench.c and pp_bench.py say what each row measures:
#
#   start-up     a new pool of W workers to the result of its first task
#                (spawn: a fresh process image; fork: a copy of the parent)
#   tiny         a map of N tasks that add 1 to a number, chunksize 1 and
#                100, and N submits then every result; tasks per second
#   cpu          M tasks of ~1 ms of arithmetic (the same xorshift; fewer
#                rounds in Python) one after the other, then on the pool
#                with chunksize 1: the speedup over sequential
#
# Each round runs both programs once, interleaved, so both see the same
# machine load; the table gives the median over the rounds, and the load
# average before and after. Builds the library (Release) into DIR first.
#
# Usage: bench/process_pool/run.sh [--runs R] [--workers W] [--build DIR]
#   defaults: R=5, W=2, DIR=build/pp-bench
# Environment: N_TINY (10000), N_CPU (2000), PYTHON (python3), CC (cc).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=5
workers=2
build=$root/build/pp-bench
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --build) build=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
n_tiny=${N_TINY:-10000}
n_cpu=${N_CPU:-2000}
python=${PYTHON:-python3}
cc=${CC:-cc}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCF_BUILD_TESTS=OFF \
    -DCF_BUILD_EXAMPLES=OFF -DCF_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target cfutures_static --parallel >/dev/null
"$cc" -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$root/include" \
    "$root/bench/process_pool/pp_bench.c" "$build/libcfutures.a" \
    -lpthread -lm -o "$build/pp_bench"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# measure WHO COMMAND...: files each "RESULT name value unit" as "WHO name value".
measure() {
    local who=$1
    shift
    "$@" | awk -v who="$who" '$1 == "RESULT" { print who, $2, $3 }' >>"$out"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench/process_pool: $workers workers, $runs rounds, $(nproc) cores," \
    "$("$python" --version 2>&1), N=$n_tiny tiny, M=$n_cpu cpu tasks"
for r in $(seq "$runs"); do
    echo "  round $r/$runs" >&2
    measure cfutures "$build/pp_bench" "$workers" "$n_tiny" "$n_cpu"
    measure python "$python" "$root/bench/process_pool/pp_bench.py" \
        "$workers" "$n_tiny" "$n_cpu"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$python" - "$out" "$load_before" "$load_after" "$n_tiny" "$n_cpu" <<'EOF'
import statistics, sys
path, before, after, n, m = sys.argv[1:]
vals = {}
for line in open(path):
    who, name, v = line.split()
    vals.setdefault((who, name), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
n, m = int(n), int(m)
# (key, label, scale, unit, higher is better)
rows = [
    ("startup_spawn", "start-up to first result, spawn", 1e3, "ms", False),
    ("startup_fork", "start-up to first result, fork", 1e3, "ms", False),
    ("map_cs1", f"map {n:,} tiny, chunksize 1", 1, "tasks/s", True),
    ("map_cs100", f"map {n:,} tiny, chunksize 100", 1, "tasks/s", True),
    ("submit", f"submit {n:,} tiny, then results", 1, "tasks/s", True),
    ("cpu_seq", f"{m:,} x ~1 ms CPU, sequential", 1, "s", False),
    ("cpu_pool", f"{m:,} x ~1 ms CPU, on the pool", 1, "s", False),
    ("cpu_speedup", "  speedup over sequential", 1, "x", True),
]
print()
print(f"| {'measurement (median)':36} | {'cfutures':>18} | {'Python PPE':>18} | {'cfutures vs Python':>18} |")
print(f"|{'-' * 38}|{'-' * 20}|{'-' * 20}|{'-' * 20}|")
for key, label, scale, unit, up in rows:
    c, p = med.get(("cfutures", key)), med.get(("python", key))
    if c is None or p is None:
        continue
    fmt = (lambda v: f"{v * scale:,.0f} {unit}") if unit == "tasks/s" else \
          (lambda v: f"{v * scale:.3g} {unit}")
    if key in ("cpu_seq", "cpu_pool"):
        ratio = "(different work)"
    elif key == "cpu_speedup":
        ratio = f"{c / p:.2f}x"
    else:
        r = c / p if up else p / c
        ratio = f"{r:,.1f}x {'higher' if up else 'faster'}"
    print(f"| {label:36} | {fmt(c):>18} | {fmt(p):>18} | {ratio:>18} |")
print()
print(f"load average before: {before}; after: {after}")
EOF
