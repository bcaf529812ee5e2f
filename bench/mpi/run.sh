#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/mpi/run.sh - the MPI executor against mpi4py.futures, side by side
# on the same ranks (the root and NP-1 workers), and a table of medians.
#
#   tiny   10,000 tasks that add 1 to a number: a submit loop, then every
#          result (both); mpi4py also with executor.map(chunksize=100),
#          its own batching knob; cfutures also isolated (each rank runs
#          its tasks in a process of its own, cf_mpi_pool_new_isolated).
#          Throughput in tasks per second.
#   cpu    64 CPU-bound tasks (~20 ms each in either language: the same
#          recurrence, fewer steps in Python) on the pool, against the same
#          tasks one after the other in one process: the speedup. Also the
#          workers' occupancy: time inside tasks over (wall x workers), which
#          says how much the executor made workers wait, however many cores
#          the rest of the machine left free (the speedup depends on that).
#
# Each round runs every measurement once, interleaved (cfutures, mpi4py,
# ...) so both see the same machine load, in three groups (tiny tasks;
# cfutures' CPU-bound runs and their sequential reference; mpi4py's), each
# after waiting (up to IDLE_WAIT seconds, 60 by default) for a second in
# which the cores were at least 90% idle. The table gives medians over the
# rounds (a speedup is the median of each round's sequential time over its
# pool time) and how idle the machine was before each group. Needs Open MPI or MPICH and
# python3-mpi4py (scripts/install-mpi.sh); builds bench_mpi into BUILD if
# it is missing.
#
# Usage: bench/mpi/run.sh [--runs R] [--np NP] [--build DIR] [--hosts]
#   defaults: R=5, NP=3, DIR=build/bench-mpi
#   --hosts    then bench/mpi/hosts.sh --runs R --build DIR: the same
#              executors on 1 host, 3 namespace hosts, and 3 hosts with a
#              50 ms round trip (needs root)
# Environment: N_TINY (10000), N_CPU (64), ITERS_C (10000000),
# ITERS_PY (100000), PYTHON (/usr/bin/python3, Debian's, where mpi4py is).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=5
np=3
build=$root/build/bench-mpi
hosts=0
while [ $# -gt 0 ]; do
    case "$1" in
    --hosts) hosts=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --build) build=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
n_tiny=${N_TINY:-10000}
n_cpu=${N_CPU:-64}
iters_c=${ITERS_C:-10000000}
iters_py=${ITERS_PY:-100000}
python=${PYTHON:-/usr/bin/python3}

if ! "$python" -c 'import mpi4py.futures' 2>/dev/null; then
    echo "run.sh: $python has no mpi4py (scripts/install-mpi.sh installs it)" >&2
    exit 1
fi
bench=$build/cf_mpi_bench
if [ ! -x "$bench" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCF_BUILD_BENCH=ON \
        -DCF_BUILD_TESTS=OFF -DCF_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$build" --target bench_mpi --parallel >/dev/null
fi
if [ ! -x "$bench" ]; then
    echo "run.sh: no $bench (is MPI installed? scripts/install-mpi.sh)" >&2
    exit 1
fi

mpiexec=(mpiexec)
if mpiexec --version 2>&1 | grep -q -E 'Open MPI|OpenRTE'; then
    mpiexec+=(--oversubscribe --allow-run-as-root --bind-to none
        --mca mpi_yield_when_idle 1)
fi
py=$root/bench/mpi/mpi4py_bench.py
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# The machine's idle share over the next second, in percent (/proc/stat).
idle_pct() {
    local a b
    a=($(head -n1 /proc/stat))
    sleep 1
    b=($(head -n1 /proc/stat))
    local idle=$((b[4] + b[5] - a[4] - a[5])) total=0 i
    for i in 1 2 3 4 5 6 7 8; do
        total=$((total + b[i] - a[i]))
    done
    echo $((total > 0 ? 100 * idle / total : 100))
}

# Waits for an idle second (at most IDLE_WAIT seconds); files the last
# idle share seen.
wait_idle() {
    local pct deadline=$((SECONDS + ${IDLE_WAIT:-60}))
    while :; do
        pct=$(idle_pct)
        [ "$pct" -ge 90 ] || [ "$SECONDS" -ge "$deadline" ] && break
    done
    echo "idle $pct" >>"$out"
}

# measure NAME COMMAND...: runs it, files "NAME seconds tasks/s [occupancy]".
measure() {
    local name=$1
    shift
    local line
    line=$("$@" | grep '^RESULT' | head -n1)
    [ -n "$line" ] || { echo "run.sh: $name printed no RESULT" >&2; exit 1; }
    echo "$name $(echo "$line" | awk '{ print $3, $4, $5 }')" >>"$out"
}

echo "bench/mpi: $np ranks, $runs rounds, $(nproc) cores," \
    "$(mpiexec --version 2>&1 | head -n1), mpi4py" \
    "$("$python" -c 'import mpi4py; print(mpi4py.__version__)')"
for r in $(seq "$runs"); do
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >>"$out"
    wait_idle
    measure cf_tiny "${mpiexec[@]}" -n "$np" "$bench" tiny "$n_tiny"
    measure cf_tiny_isolated "${mpiexec[@]}" -n "$np" "$bench" tiny "$n_tiny" isolated
    measure py_tiny "${mpiexec[@]}" -n "$np" "$python" "$py" tiny "$n_tiny"
    measure py_tiny_map100 "${mpiexec[@]}" -n "$np" "$python" "$py" tiny "$n_tiny" 100
    wait_idle
    measure cf_seq "$bench" seq "$n_cpu" "$iters_c"
    measure cf_cpu "${mpiexec[@]}" -n "$np" "$bench" cpu "$n_cpu" "$iters_c"
    measure cf_cpu_isolated "${mpiexec[@]}" -n "$np" "$bench" cpu "$n_cpu" "$iters_c" isolated
    wait_idle
    measure py_seq "$python" "$py" seq "$n_cpu" "$iters_py"
    measure py_cpu "${mpiexec[@]}" -n "$np" "$python" "$py" cpu "$n_cpu" "$iters_py"
    echo "  round $r of $runs done"
done

"$python" - "$out" "$np" "$n_tiny" "$n_cpu" <<'PY'
import statistics
import sys

path, np, n_tiny, n_cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
secs, rates, occ, loads, idles = {}, {}, {}, [], []
for line in open(path):
    f = line.split()
    if f[0] == "load":
        loads.append(float(f[1]))
        continue
    if f[0] == "idle":
        idles.append(float(f[1]))
        continue
    secs.setdefault(f[0], []).append(float(f[1]))
    rates.setdefault(f[0], []).append(float(f[2]))
    if len(f) > 3:
        occ.setdefault(f[0], []).append(float(f[3]))
med = {k: statistics.median(v) for k, v in secs.items()}
rate = {k: statistics.median(v) for k, v in rates.items()}
workers = max(np - 1, 1)
print()
print(f"{n_tiny} tiny tasks, {np} ranks (root + {workers} workers), "
      f"medians of {len(loads)} rounds")
print(f"| {'executor':<42} | {'seconds':>8} | {'tasks/s':>10} | {'vs mpi4py':>9} |")
print(f"|{'-' * 44}|{'-' * 10}|{'-' * 12}|{'-' * 11}|")
for key, label in [("cf_tiny", "cfutures MPI pool, submit loop"),
                   ("cf_tiny_isolated", "cfutures MPI pool isolated, submit loop"),
                   ("py_tiny", "mpi4py.futures, submit loop"),
                   ("py_tiny_map100", "mpi4py.futures, map(chunksize=100)")]:
    ratio = rate[key] / rate["py_tiny"]
    print(f"| {label:<42} | {med[key]:>8.4f} | {rate[key]:>10.0f} | "
          f"{ratio:>8.1f}x |")
print(f"(vs mpi4py: throughput over mpi4py.futures' submit loop; cfutures' "
      f"submit loop is {rate['cf_tiny'] / rate['py_tiny_map100']:.1f}x "
      f"mpi4py's map(chunksize=100))")
print()
print(f"{n_cpu} CPU-bound tasks (~20 ms each), speedup over one process "
      f"(ideal {workers}.0 with {workers} workers)")
print(f"| {'executor':<42} | {'seq s':>8} | {'pool s':>8} | {'speedup':>8} "
      f"| {'occupancy':>9} |")
print(f"|{'-' * 44}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 11}|")
for key, seq, label in [("cf_cpu", "cf_seq", "cfutures MPI pool"),
                        ("cf_cpu_isolated", "cf_seq", "cfutures MPI pool isolated"),
                        ("py_cpu", "py_seq", "mpi4py.futures")]:
    s, p = med[seq], med[key]
    speedup = statistics.median(a / b for a, b in zip(secs[seq], secs[key]))
    o = statistics.median(occ[key]) if key in occ else float("nan")
    print(f"| {label:<42} | {s:>8.3f} | {p:>8.3f} | {speedup:>7.2f}x "
          f"| {o:>9.3f} |")
print()
print(f"load average (1 min) at the rounds' start: min {min(loads):.2f}, "
      f"median {statistics.median(loads):.2f}, max {max(loads):.2f}; "
      f"cores idle in the second before each group: "
      f"{', '.join(f'{i:.0f}%' for i in idles)}")
PY
if [ "$hosts" = 1 ]; then
    "$root/bench/mpi/hosts.sh" --runs "$runs" --build "$build"
fi
