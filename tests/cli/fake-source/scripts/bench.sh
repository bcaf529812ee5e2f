#!/bin/sh
# SPDX-License-Identifier: MIT
# A stand-in for scripts/bench.sh that tests/test_cli.c gives to
# `cfutures bench --source`: it prints what the real runner prints on
# standard error (a missing peer, one line per run, a failed run) and
# writes a latest.csv of the real format into --out, at once.
reps=5
out=
while [ $# -gt 0 ]; do
    case "$1" in
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    esac
    shift
done
[ -n "$out" ] || { echo "fake bench.sh: no --out" >&2; exit 2; }
echo "MISSING oneTBB: no oneTBB CMake package (libtbb-dev); its rows are" \
    "skipped (scripts/install-bench-deps.sh installs the peers)" >&2
echo "fake tables on standard output"
r=1
while [ "$r" -le "$reps" ]; do
    echo "[rep $r/$reps] B1 cfutures-futures workers=2: 0.2s" >&2
    echo "[rep $r/$reps] B1 glib workers=2: 0.5s" >&2
    echo "[rep $r/$reps] B5 cfutures workers=2: 0.1s" >&2
    echo "[rep $r/$reps] B5 libuv workers=2: FAILED: exit 1: no uv" >&2
    r=$((r + 1))
done
mkdir -p "$out"
cat >"$out/latest.csv" <<CSV
bench,impl,workers,metric,median,min,max,runs
B1,cfutures-futures,2,ns_per_task,150,140,160,$reps
B1,cfutures-futures,2,time_s,0.15,0.14,0.16,$reps
B1,glib,2,ns_per_task,450,400,500,$reps
B1,glib,2,time_s,0.45,0.4,0.5,$reps
B5,cfutures,2,median_us,4,3.5,4.5,$reps
B5,cfutures,2,p99_us,7,6,8,$reps
CSV
exit 1
