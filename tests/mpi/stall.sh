#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/mpi/stall.sh - the MPI pool's watchdog: a worker rank that stops
# answering (tests/mpi/mpi_stall.c stops it with SIGSTOP mid-run) ends the
# job within 15 s, with the message docs/mpi.md gives ("cfutures: MPI rank
# R on host H stopped answering ..."), on the default limit (5 s here:
# the tasks are short).
#   tests/mpi/stall.sh MPI_STALL MPIEXEC [MPIEXEC FLAGS...]
set -euo pipefail

prog=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
unset CFUTURES_MPI_RANK_TIMEOUT
start=$(date +%s.%N)
rc=0
timeout --kill-after=5 60 "$@" -n 3 "$prog" 40 >"$log" 2>&1 || rc=$?
end=$(date +%s.%N)
cat "$log"
stop=$(grep -c '^STOPPING' "$log" || true)
fail() {
    echo "stall.sh: FAIL: $*" >&2
    exit 1
}
[ "$stop" = 1 ] || fail "the workload never stopped a rank"
grep -q '^NOT ENDED' "$log" && fail "the job was still running after 40 s"
[ "$rc" != 0 ] || fail "the job ended with status 0"
[ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "the job had to be killed"
grep -Eq 'cfutures: MPI rank [12] on host [^ ]+ stopped answering \(nothing for [0-9.]+ s, [0-9]+ tasks in flight\); ending the MPI job' "$log" ||
    fail "no watchdog message"
took=$(echo "$end - $start" | bc)
echo "stall.sh: the job ended after ${took} s, status $rc"
[ "$(echo "$took < 15" | bc)" = 1 ] || fail "took ${took} s (limit 15 s)"
echo "stall.sh: PASS"
