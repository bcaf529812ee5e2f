#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/mpi/stall.sh - the MPI pool's watchdog: a worker rank that stops
# answering (tests/mpi/mpi_stall.c stops it with SIGSTOP mid-run) is
# reported on stderr as docs/mpi.md says ("cfutures: MPI rank R on host H
# stopped answering ..."), on the default limit (5 s here: the tasks are
# short), and the job ends within 15 s, twice:
#   - by default, the tasks the rank held fail with CF_EBROKEN and that
#     message, cf_executor_stats counts it (stalled 1, one worker left),
#     16 more tasks run on the other rank, and the program ends the job;
#   - with CFUTURES_MPI_RANK_LOST=abort, the pool ends the job itself;
#     with CFUTURES_MPI_RANK_TIMEOUT=2 as well, after 2 s of silence.
#   tests/mpi/stall.sh MPI_STALL MPIEXEC [MPIEXEC FLAGS...]
set -euo pipefail

prog=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
unset CFUTURES_MPI_RANK_TIMEOUT CFUTURES_MPI_RANK_LOST
said='cfutures: MPI rank [12] on host [^ ]+ stopped answering \(nothing for [0-9.]+ s, [0-9]+ tasks in flight\); '

fail() {
    echo "stall.sh: FAIL ($mode): $*" >&2
    exit 1
}

# run MODE LIMIT MPIEXEC...: runs the workload with
# CFUTURES_MPI_RANK_LOST=MODE and CFUTURES_MPI_RANK_TIMEOUT=LIMIT (empty:
# unset) and checks what every mode must do.
run() {
    mode=${1:-default}
    local start end rc=0 env=()
    [ -z "$1" ] || env+=("CFUTURES_MPI_RANK_LOST=$1")
    [ -z "$2" ] || env+=("CFUTURES_MPI_RANK_TIMEOUT=$2")
    shift 2
    start=$(date +%s.%N)
    env "${env[@]}" timeout --kill-after=5 60 "$@" -n 3 "$prog" 40 >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    sed 's/^/    | /' "$log"
    grep -q '^STOPPING' "$log" || fail "the workload never stopped a rank"
    ! grep -q '^NOT ENDED' "$log" || fail "the job was still running after 40 s"
    [ "$rc" != 0 ] || fail "the job ended with status 0"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then fail "the job had to be killed"; fi
    took=$(echo "$end - $start" | bc)
    echo "stall.sh: $mode: the job ended after ${took} s, status $rc"
    [ "$(echo "$took < 15" | bc)" = 1 ] || fail "took ${took} s (limit 15 s)"
}

run "" "" "$@"
grep -Eq "${said}its tasks fail, the others go on" "$log" || fail "no watchdog message"
grep -Eq '^LOST: MPI rank [12] on host [^ ]+ stopped answering .*\(stalled 1, workers 1\)$' "$log" ||
    fail "the futures did not fail with the message, or the stats are wrong"
grep -q '^GO ON: 16 of 16 more tasks ran$' "$log" || fail "the pool did not go on with the other rank"

run abort 2 "$@"
grep -Eq "${said}ending the MPI job" "$log" || fail "no watchdog message"
grep -q 'nothing for 2\.[0-9] s' "$log" || fail "CFUTURES_MPI_RANK_TIMEOUT=2 was not the limit"
! grep -q '^LOST' "$log" || fail "the pool did not end the job itself"
echo "stall.sh: PASS"
