#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/mpi/hosts.sh - the MPI executor against mpi4py.futures across hosts,
# and what a network round trip costs each. Three setups, 3 ranks each (the
# root and two workers), measured in the same rounds:
#
#   1 host        mpiexec on this machine (shared memory between ranks)
#   3 hosts       three network namespaces (tests/mpi/netns_cluster.sh), one
#                 rank each, TCP only, linked by bench/mpi/relay.c, a user-
#                 space switch, with no delay
#   3 hosts, RTT  the same with DELAY_MS added each way by the relay (25 by
#                 default: a 50 ms round trip; this needs no netem)
#
# In each, with bench/mpi/cf_mpi_bench.c and bench/mpi/mpi4py_bench.py (as
# bench/mpi/run.sh runs them):
#   tiny    N_TINY tasks that add 1, cfutures' submit loop; mpi4py's submit
#           loop over N_TINY_PY tasks (fewer: it sends one task per
#           message and waits a round trip for each) and its
#           map(chunksize=100) over N_TINY. Tasks per second.
#   stream  the same for N_STREAM tiny tasks, cfutures only: a round long
#           enough (N_STREAM far above the rate times the round trip)
#           that the rate says how well the pool hides the round trip,
#           where one of N_TINY says mostly how long a round trip is.
#   cpu     N_CPU CPU-bound tasks of ~20 ms: seconds, and the workers'
#           occupancy (time inside tasks over wall time x workers; 1.0 =
#           the executor never made a worker wait).
# Prints medians over the rounds, and the tiny-task rates and occupancy at
# the delay against the goals (>= 25% of the rate without delay, >= 0.9),
# with the most a round of N_TINY can reach there: it cannot end before a
# round trip has passed, so at most T0 / (T0 + RTT) of the rate without
# delay, T0 the round's time without delay.
# All ranks share this machine's cores (and the relay takes some): the
# numbers compare executors and setups on one machine, not a cluster.
#
# Needs root, ip netns, ethtool, Open MPI and python3-mpi4py
# (scripts/install-mpi.sh); builds cf_mpi_bench and the relay into BUILD
# if missing. Exits with 77 when it cannot make the namespaces.
# Usage: bench/mpi/hosts.sh [--runs R] [--delay MS] [--build DIR]
#                           [--baseline DIR]
#   defaults: R=3, MS=25, DIR=build/bench-mpi
#   --baseline DIR  also runs DIR/cf_mpi_bench (another build of cfutures,
#                   e.g. of the commit before a change) in every round,
#                   before this build's runs in even rounds and after
#                   them in odd ones, and prints the two side by side
# Environment: N_TINY (10000), N_TINY_PY (500), N_STREAM (100000),
# N_CPU (64), ITERS_C
# (10000000), ITERS_PY (100000), PYTHON (/usr/bin/python3), MPIEXEC
# (mpiexec).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=3
delay=25
build=$root/build/bench-mpi
baseline=
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --baseline) baseline=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hosts.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
n_tiny=${N_TINY:-10000}
n_tiny_py=${N_TINY_PY:-500}
n_stream=${N_STREAM:-100000}
n_cpu=${N_CPU:-64}
iters_c=${ITERS_C:-10000000}
iters_py=${ITERS_PY:-100000}
python=${PYTHON:-/usr/bin/python3}
mpiexec=$(command -v "${MPIEXEC:-mpiexec}")

. "$root/tests/mpi/netns_cluster.sh"
if why=$(netns_why_not); then
    echo "hosts.sh: cannot make the namespace hosts: $why" >&2
    exit 77
fi
if ! command -v ethtool >/dev/null 2>&1; then
    echo "hosts.sh: needs ethtool (scripts/install-mpi.sh installs it)" >&2
    exit 77
fi
if [ "$(netns_mpi_impl "$mpiexec")" != openmpi ]; then
    echo "hosts.sh: $mpiexec is not Open MPI's (mpi4py is built with it)" >&2
    exit 1
fi
if ! "$python" -c 'import mpi4py.futures' 2>/dev/null; then
    echo "hosts.sh: $python has no mpi4py (scripts/install-mpi.sh installs it)" >&2
    exit 1
fi
if [ ! -x "$build/cf_mpi_bench" ] || [ ! -x "$build/relay" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCF_BUILD_BENCH=ON \
        -DCF_BUILD_TESTS=OFF -DCF_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$build" --target bench_mpi bench_mpi_relay --parallel >/dev/null
fi
bench=$build/cf_mpi_bench
py=$root/bench/mpi/mpi4py_bench.py
if [ -n "$baseline" ] && [ ! -x "$baseline/cf_mpi_bench" ]; then
    echo "hosts.sh: no $baseline/cf_mpi_bench" >&2
    exit 1
fi

netns_up 3 relay
out=$NETNS_DIR/results
relay_pid=
relay() {
    if [ -n "$relay_pid" ]; then
        kill "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
    fi
    ip netns exec "$NETNS_PREFIX-sw" "$build/relay" "$1" p1 p2 p3 >/dev/null &
    relay_pid=$!
    sleep 0.2
}

# measure SETUP NAME COMMAND...: files "SETUP NAME seconds tasks/s [occupancy]".
measure() {
    local setup=$1 name=$2 line
    shift 2
    line=$(timeout -k 5 600 "$@" 2>"$NETNS_DIR/stderr" | grep '^RESULT' | head -n1) || true
    if [ -z "$line" ]; then
        echo "hosts.sh: $setup $name printed no RESULT:" >&2
        cat "$NETNS_DIR/stderr" >&2
        exit 1
    fi
    echo "$setup $name $(echo "$line" | awk '{ print $3, $4, $5 }')" >>"$out"
}

# baseline_runs SETUP MPIEXEC-WORDS...: the baseline build's measurements.
baseline_runs() {
    local setup=$1
    shift
    measure "$setup" base_tiny "$@" "$baseline/cf_mpi_bench" tiny "$n_tiny"
    measure "$setup" base_stream "$@" "$baseline/cf_mpi_bench" tiny "$n_stream"
    measure "$setup" base_cpu "$@" "$baseline/cf_mpi_bench" cpu "$n_cpu" "$iters_c"
}

# all SETUP MPIEXEC-WORDS...: every measurement in one setup (the
# baseline's first in even rounds, last in odd ones, so that neither
# build always runs first after the relay starts).
all() {
    local setup=$1
    shift
    if [ -n "$baseline" ] && [ $((r % 2)) = 0 ]; then
        baseline_runs "$setup" "$@"
    fi
    measure "$setup" cf_tiny "$@" "$bench" tiny "$n_tiny"
    measure "$setup" py_tiny "$@" "$python" "$py" tiny "$n_tiny_py"
    measure "$setup" py_map100 "$@" "$python" "$py" tiny "$n_tiny" 100
    measure "$setup" cf_stream "$@" "$bench" tiny "$n_stream"
    measure "$setup" cf_cpu "$@" "$bench" cpu "$n_cpu" "$iters_c"
    measure "$setup" py_cpu "$@" "$python" "$py" cpu "$n_cpu" "$iters_py"
    if [ -n "$baseline" ] && [ $((r % 2)) = 1 ]; then
        baseline_runs "$setup" "$@"
    fi
}

echo "bench/mpi/hosts.sh: $runs rounds, $(nproc) cores," \
    "$("$mpiexec" --version 2>&1 | head -n1), mpi4py" \
    "$("$python" -c 'import mpi4py; print(mpi4py.__version__)'), relay delay ${delay} ms each way"
one=("$mpiexec" --oversubscribe --allow-run-as-root --bind-to none
    --mca mpi_yield_when_idle 1 -n 3)
netns_mpi_cmd "$mpiexec" 3 1
for r in $(seq "$runs"); do
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >>"$out"
    all one "${one[@]}"
    relay 0
    all zero "${NETNS_MPI_CMD[@]}"
    relay "$delay"
    all delay "${NETNS_MPI_CMD[@]}"
    echo "  round $r of $runs done"
done
kill "$relay_pid"
wait "$relay_pid" || true

"$python" - "$out" "$delay" "$n_tiny" "$n_tiny_py" "$n_cpu" "$n_stream" "$baseline" <<'PY'
import statistics
import sys

path, delay, n_tiny, n_tiny_py, n_cpu, n_stream = sys.argv[1:7]
vals, loads = {}, []
for line in open(path):
    f = line.split()
    if f[0] == "load":
        loads.append(float(f[1]))
        continue
    vals.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:]])


def med(setup, name, i):
    return statistics.median(v[i] for v in vals[(setup, name)])


rtt = 2 * float(delay)
setups = [("one", "1 host (shared memory)"),
          ("zero", "3 hosts (TCP, relay, no delay)"),
          ("delay", f"3 hosts, {rtt:g} ms round trip")]
print()
print(f"3 ranks (root + 2 workers), medians of {len(loads)} rounds; tiny tasks "
      f"per second ({n_tiny} for cfutures and map, {n_tiny_py} for mpi4py's "
      f"submit loop, {n_stream} for cfutures' stream); {n_cpu} CPU tasks of "
      f"~20 ms: seconds (occupancy)")
print("| setup | cfutures tiny/s | cfutures stream/s | mpi4py submit/s "
      "| mpi4py map(100)/s | cfutures 64 x 20 ms | mpi4py 64 x 20 ms |")
print("|---|--:|--:|--:|--:|--:|--:|")
for key, label in setups:
    print(f"| {label} | {med(key, 'cf_tiny', 1):,.0f} | "
          f"{med(key, 'cf_stream', 1):,.0f} | "
          f"{med(key, 'py_tiny', 1):,.0f} | {med(key, 'py_map100', 1):,.0f} | "
          f"{med(key, 'cf_cpu', 0):.3f} s ({med(key, 'cf_cpu', 2):.2f}) | "
          f"{med(key, 'py_cpu', 0):.3f} s ({med(key, 'py_cpu', 2):.2f}) |")
share = med("delay", "cf_tiny", 1) / med("zero", "cf_tiny", 1)
t0 = med("zero", "cf_tiny", 0)
bound = t0 / (t0 + rtt / 1000)
stream = med("delay", "cf_stream", 1) / med("zero", "cf_stream", 1)
occ = med("delay", "cf_cpu", 2)
print()
print(f"at a {rtt:g} ms round trip, cfutures: {n_tiny} tiny tasks at "
      f"{100 * share:.1f}% of the rate without delay (goal >= 25%; a round "
      f"of {1000 * t0:.1f} ms without delay can reach at most "
      f"{100 * bound:.1f}% there), {n_stream} at {100 * stream:.1f}%; CPU "
      f"tasks at occupancy {occ:.2f} (goal >= 0.90)")
if ("zero", "base_tiny") in vals:
    print()
    print("cfutures: this build against the baseline (" + sys.argv[7] + "), "
          "same rounds")
    print("| setup | tiny/s | stream/s | 64 x 20 ms |")
    print("|---|--:|--:|--:|")
    for key, label in setups:
        print(f"| {label} | {med(key, 'base_tiny', 1):,.0f} -> "
              f"{med(key, 'cf_tiny', 1):,.0f} | "
              f"{med(key, 'base_stream', 1):,.0f} -> "
              f"{med(key, 'cf_stream', 1):,.0f} | "
              f"{med(key, 'base_cpu', 0):.3f} s ({med(key, 'base_cpu', 2):.2f})"
              f" -> {med(key, 'cf_cpu', 0):.3f} s "
              f"({med(key, 'cf_cpu', 2):.2f}) |")
    print(f"baseline at the delay: tiny tasks at "
          f"{100 * med('delay', 'base_tiny', 1) / med('zero', 'base_tiny', 1):.1f}%"
          f" of its rate without delay, stream at "
          f"{100 * med('delay', 'base_stream', 1) / med('zero', 'base_stream', 1):.1f}%"
          f", occupancy {med('delay', 'base_cpu', 2):.2f}")
print(f"load average (1 min) at the rounds' start: "
      f"{', '.join(f'{x:.2f}' for x in loads)}")
PY
