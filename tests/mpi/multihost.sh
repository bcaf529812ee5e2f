#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/mpi/multihost.sh - the MPI executor across three "hosts": network
# namespaces h1, h2, h3 on a bridge of their own (tests/mpi/netns_cluster.sh),
# mpirun in h1 starting the others through tests/mpi/netns_agent.sh, the
# ranks talking on the namespaces' private subnet (Open MPI: TCP only; with
# MPICH, UCX moves the ranks' data through shared memory: docs/mpi.md).
#
#   multihost.sh run MPIEXEC TEST_MPI_POOL ENGINES
#       at one and at two ranks per host: that the ranks land on h1, h2
#       and h3; tests/mpi/test_mpi_pool on all of them; examples/engines in
#       mpi mode on all of them and in mpi-spawn mode (one rank on h1, the
#       workers spawned onto the free slots of h1, h2 and h3: checked to
#       run on h2 and h3 at one per host, on h2 at two)
#   multihost.sh partition MPIEXEC MPI_PARTITION
#       one rank per host running tests/mpi/mpi_partition.c; once every
#       host has answered, h3's link goes down; within PARTITION_LIMIT
#       seconds (15) the pool's watchdog must say that a rank stopped
#       answering, or MPI that a host was lost, and the job must end
#       with an error (how long Open MPI takes to end it is reported).
#       Open MPI only, with the keepalive settings of docs/mpi.md
#       ("A partition"); with MPICH it is skipped.
#
# MPIEXEC is Open MPI's mpirun or MPICH's (Hydra) mpiexec; the flags for
# each are below. Needs root, ip (iproute2) and unshare (util-linux): where
# any is missing it says why and exits with 77, which ctest reports as
# skipped (SKIP_RETURN_CODE). Everything it made is removed when it exits,
# however it exits (a run killed with SIGKILL is cleaned up by the next).
# Environment: MULTIHOST_TIMEOUT (seconds per mpirun, default 60: the
# 8 runs of "run" stay inside ctest's time limit for it, 600 s),
# PARTITION_LIMIT (15).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/netns_cluster.sh"

if [ $# -lt 3 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi
mode=$1 mpiexec=$2
shift 2
# The programs by absolute path: a remote shell starts elsewhere.
progs=()
for p in "$@"; do
    progs+=("$(realpath "$p")")
done
set -- "${progs[@]}"
per_run=${MULTIHOST_TIMEOUT:-60}

if why=$(netns_why_not); then
    echo "SKIP: $why"
    exit 77
fi

impl=$(netns_mpi_impl "$mpiexec")
version=$("$mpiexec" --version 2>&1 | grep -m1 -E 'Open MPI|OpenRTE|Version:' | tr -s ' ' | sed 's/^ //' || true)

# mpi_cmd NP SLOTS: CMD = netns_mpi_cmd's words under a time limit.
mpi_cmd() {
    netns_mpi_cmd "$mpiexec" "$1" "$2"
    CMD=(timeout -k 5 "$per_run" "${NETNS_MPI_CMD[@]}")
}

failures=0
t_all=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# check NAME NP PLACE COMMAND...: runs COMMAND under mpiexec on NP ranks
# placed as PLACE says (SLOTS of netns_mpi_cmd); reports ok or FAIL with
# the output, which it leaves in the file LOG.
check() {
    local name=$1 np=$2 place=$3
    shift 3
    mpi_cmd "$np" "$place"
    local log=$NETNS_DIR/log t0 rc=0
    t0=$(date +%s.%N)
    # In the background, so that a signal is handled at once (bash runs
    # traps only between foreground commands, but interrupts wait).
    "${CMD[@]}" "$@" >"$log" 2>&1 &
    wait $! || rc=$?
    if [ "$rc" -eq 0 ]; then
        printf 'ok    %-44s %5ss\n' "$name" "$(elapsed "$t0")"
    else
        printf 'FAIL  %-44s %5ss (exit %d)\n' "$name" "$(elapsed "$t0")" "$rc"
        sed 's/^/    | /' "$log"
        failures=$((failures + 1))
    fi
    LOG=$log
}

# spawn_check PPN ENGINES: examples/engines in mpi-spawn mode, started as
# one rank on h1 with PPN slots per host: it spawns its two workers (the
# CPU count here) onto the free slots in order, so on h2 and h3 at one per
# host, on h1 and h2 at two; the workers on h2 and h3 are checked for
# while it runs.
spawn_check() {
    local ppn=$1 engines=$2 name comm h pid rc=0 t0 seen=" " want=" h2 h3 "
    [ "$ppn" = 1 ] || want=" h2 "
    name="engines mpi-spawn, 1 rank + spawned, $ppn per host"
    if [ "$impl" = mpich ] && [[ "$version" =~ Version:\ 4\.0\. ]]; then
        # As example_engines_mpi_spawn in cmake/mpi.cmake.
        printf 'skip  %-44s (MPI_Comm_spawn fails in MPICH 4.0)\n' "$name"
        return 0
    fi
    comm=$(basename "$engines")
    mpi_cmd 1 "$ppn"
    t0=$(date +%s.%N)
    "${CMD[@]}" "$engines" mpi-spawn >"$NETNS_DIR/log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for h in $want; do
            case "$seen" in *" $h "*) continue ;; esac
            for p in $(ip netns pids "$NETNS_PREFIX-$h" 2>/dev/null); do
                if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ]; then
                    seen+="$h "
                    break
                fi
            done
        done
        sleep 0.02
    done
    wait "$pid" || rc=$?
    local missing=
    for h in $want; do
        case "$seen" in *" $h "*) ;; *) missing+=" $h" ;; esac
    done
    if [ "$rc" -eq 0 ] && [ -z "$missing" ]; then
        printf 'ok    %-44s %5ss\n' "$name" "$(elapsed "$t0")"
    else
        printf 'FAIL  %-44s %5ss (exit %d, workers seen on:%s)\n' "$name" \
            "$(elapsed "$t0")" "$rc" "$seen"
        failures=$((failures + 1))
    fi
    sed 's/^/    /' "$NETNS_DIR/log"
}

run_all() {
    local test_mpi_pool=$1 engines=$2 ppn np want got
    for ppn in 1 2; do
        np=$((3 * ppn))
        want=$(for h in "${NETNS_HOSTS[@]}"; do for _ in $(seq "$ppn"); do echo "$h"; done; done)
        check "placement, $ppn per host" "$np" "$ppn" hostname
        got=$(grep -E "^h[0-9]+\$" "$LOG" | sort)
        if [ "$got" != "$want" ]; then
            echo "FAIL  the ranks ran on $(echo "$got" | tr '\n' ' '), not $(echo "$want" | tr '\n' ' ')"
            failures=$((failures + 1))
        fi
        # At two per host the root has h1 to itself (5 ranks):
        # test_mpi_pool's cases are written for at most 4 workers. The
        # cases that mostly wait out a time limit run on one host only
        # (--quick leaves them out): they test timing, not the network.
        if [ "$ppn" = 1 ]; then
            check "test_mpi_pool, 3 ranks, 1 per host" 3 1 "$test_mpi_pool" --quick
        else
            check "test_mpi_pool, 5 ranks, root on h1, 2 on h2 and h3" 5 "1 2 2" \
                "$test_mpi_pool" --quick
        fi
        tail -n 1 "$LOG" | sed 's/^/    /'
        check "engines mpi, $np ranks, $ppn per host" "$np" "$ppn" "$engines" mpi --quick
        sed 's/^/    /' "$LOG"
        spawn_check "$ppn" "$engines"
    done
}

partition() {
    local prog=$1 limit=${PARTITION_LIMIT:-15}
    if [ "$impl" != openmpi ]; then
        echo "SKIP: the partition test needs Open MPI: MPICH's Hydra has no" \
            "setting that ends a job on a lost host (docs/mpi.md, \"A partition\")"
        exit 77
    fi
    mpi_cmd 3 1
    # The settings of docs/mpi.md: the daemons' links are probed after 4 s
    # of silence, every second, and given up after 3 unanswered probes.
    CMD+=(--mca oob_tcp_keepalive_time 4 --mca oob_tcp_keepalive_intvl 1
        --mca oob_tcp_keepalive_probes 3)
    local log=$NETNS_DIR/partition.log
    "${CMD[@]}" "$prog" 2 $((limit + 30)) >"$log" 2>&1 &
    local pid=$! waited=0
    until grep -q '^READY' "$log"; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 300 ]; then
            echo "FAIL  the job did not get going (every host answering):"
            sed 's/^/    | /' "$log"
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    local t_cut rc=0 dt
    t_cut=$(date +%s.%N)
    ip -n "$NETNS_PREFIX-h3" link set eth0 down
    echo "h3's link is down; waiting for the job to end"
    # The watchdog (docs/mpi.md, "A rank that stops answering") or MPI.
    local said='' lost='stopped answering|lost communication with a remote daemon'
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$said" ] && grep -Eq "$lost" "$log"; then
            said=$(elapsed "$t_cut")
        fi
        sleep 0.1
    done
    wait "$pid" || rc=$?
    dt=$(elapsed "$t_cut")
    [ -z "$said" ] || echo "the job said so ${said}s after the cut"
    sed 's/^/    | /' "$log"
    echo "the job ended ${dt}s after the cut (exit $rc)"
    if [ "$rc" -eq 0 ] || grep -q '^NOT ENDED' "$log"; then
        echo "FAIL  the job did not end with an error"
        exit 1
    fi
    if ! grep -Eq "$lost" "$log"; then
        echo "FAIL  no message that a rank or a host was lost"
        exit 1
    fi
    # What cfutures promises is the report: the watchdog's message (or
    # MPI's) within the limit, and the lost rank's tasks failed with it.
    # Ending the job is then Open MPI's: MPI_Finalize waits until its
    # keepalive gives up on the host, which on a loaded machine can take
    # longer than the limit, or (now and then) never comes, and mpirun's
    # own time limit kills the job. Both are reported, not failed.
    if [ -z "$said" ] ||
        awk -v d="$said" -v l="$limit" 'BEGIN { exit !(d > l) }'; then
        echo "FAIL  the lost rank was not reported within ${limit}s"
        exit 1
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "WARN  Open MPI did not end the job: killed it"
    elif awk -v d="$dt" -v l="$limit" 'BEGIN { exit !(d > l) }'; then
        echo "WARN  Open MPI took ${dt}s to end the job"
    fi
    echo "ok    partition: the lost rank was reported in ${said}s (limit ${limit}s)," \
        "the job ended in ${dt}s"
}

echo "multihost: $impl ($version), 3 hosts on $NETNS_SUBNET.0/24, prefix $NETNS_PREFIX"
netns_up 3
case "$mode" in
run) run_all "$@" ;;
partition) partition "$@" ;;
*)
    echo "multihost.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
echo "multihost: $mode done in $(elapsed "$t_all")s, $failures failed"
[ "$failures" -eq 0 ]
