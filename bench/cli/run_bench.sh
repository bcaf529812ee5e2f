#!/usr/bin/env bash
# The `cfutures run` benchmark: many small jobs run by `cfutures run`,
# `xargs -P` and GNU parallel side by side, with the same number of jobs
# at once (-j, the CPU count by default):
#   true    5,000 jobs of `true` (nothing but starting processes)
#   sleep   500 jobs of `sleep 0.01` (ideal: 500 x 10 ms / j)
# Each runs --reps times, the three tools interleaved in an order rotated
# at each repetition; the table shows the median wall time and the
# overhead per job, (median - ideal) x j / jobs: the time a job slot spends
# per job beyond the job's own sleep (for `true` the whole time, process
# start included, which all three pay alike). Goal: cfutures' overhead no
# more than xargs -P's, and at least 10x lower than GNU parallel's.
#
# cfutures runs as `cfutures run -j J -- CMD` (outputs captured and kept
# whole), xargs as `xargs -P J -n 1 CMD` (nothing captured: outputs may
# interleave), GNU parallel as `parallel --will-cite -j J CMD` (outputs
# grouped, like cfutures). A tool that is missing is named and skipped;
# bench/cli/install.sh installs GNU parallel.
#
# Usage: bench/cli/run_bench.sh [--reps N] [-j N] [--quick] [--no-build]
#                               [--cfutures PATH] [--markdown FILE]
#   --reps N        repetitions (default 5)
#   -j N            jobs at once for every tool (default nproc)
#   --quick         1 repetition of 1,000 `true` and 100 `sleep 0.01`
#   --no-build      use build/release/tools/cfutures as it is
#   --cfutures P    the cfutures program to measure (implies --no-build)
#   --markdown F    also write the table as Markdown to F
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

reps=5
jobs=$(nproc)
quick=0
build=1
cf=build/release/tools/cfutures
markdown=
while [ $# -gt 0 ]; do
    case "$1" in
    --reps | -j | --cfutures | --markdown)
        [ $# -ge 2 ] || { echo "run_bench.sh: $1 needs a value" >&2; exit 2; }
        case "$1" in
        --reps) reps=$2 ;;
        -j) jobs=$2 ;;
        --cfutures) cf=$2; build=0 ;;
        --markdown) markdown=$2 ;;
        esac
        shift
        ;;
    --quick) quick=1; reps=1 ;;
    --no-build) build=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "run_bench.sh: unknown option: $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
case "$reps$jobs" in
*[!0-9]*) echo "run_bench.sh: --reps and -j want numbers" >&2; exit 2 ;;
esac

n_true=5000
n_sleep=500
if [ "$quick" = 1 ]; then
    n_true=1000
    n_sleep=100
fi

if [ "$build" = 1 ]; then
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    # The same settings as scripts/demo.sh, which shares build/release.
    if ! {
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCF_SANITIZE= \
            -DCF_BUILD_TESTS=OFF -DCF_BUILD_EXAMPLES=ON &&
            cmake --build build/release --target cfutures --parallel "$(nproc)"
    } >"$log" 2>&1; then
        cat "$log" >&2
        echo "run_bench.sh: building cfutures failed" >&2
        exit 1
    fi
fi

# ---- the tools: a command line per tool, reading the inputs on stdin

tools=()
if [ -x "$cf" ]; then
    tools+=(cfutures)
else
    echo "MISSING cfutures: no $cf (build it, or give --cfutures)" >&2
fi
if command -v xargs >/dev/null 2>&1; then
    tools+=(xargs)
else
    echo "MISSING xargs (findutils)" >&2
fi
if command -v parallel >/dev/null 2>&1 &&
    parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    tools+=(parallel)
else
    echo "MISSING GNU parallel: bench/cli/install.sh installs it" >&2
fi

# run_tool TOOL CMD: runs CMD once per line of stdin with TOOL.
run_tool() {
    case "$1" in
    cfutures) "$cf" run -j "$jobs" -- "$2" ;;
    xargs) xargs -P "$jobs" -n 1 "$2" ;;
    parallel) parallel --will-cite -j "$jobs" "$2" ;;
    esac
}

# inputs WORKLOAD: the input lines (true ignores its argument; sleep takes
# the input as its duration).
inputs() {
    case "$1" in
    true) seq "$n_true" ;;
    sleep) awk -v n="$n_sleep" 'BEGIN { for (i = 0; i < n; i++) print "0.01" }' ;;
    esac
}

now() { date +%s.%N; }

# ---- the runs

samples=$(mktemp)
trap 'rm -f "$samples" ${log:+"$log"}' EXIT
echo "run_bench.sh: $reps repetition(s), -j $jobs, $(nproc) CPUs;" \
    "$n_true x true, $n_sleep x sleep 0.01" >&2
for ((rep = 0; rep < reps; rep++)); do
    k=$((rep % ${#tools[@]}))
    order=("${tools[@]:k}" "${tools[@]:0:k}")
    for workload in true sleep; do
        for tool in "${order[@]}"; do
            t0=$(now)
            if ! inputs "$workload" | run_tool "$tool" "$workload" >/dev/null; then
                echo "run_bench.sh: $tool $workload failed" >&2
                exit 1
            fi
            t1=$(now)
            secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
            echo "$workload $tool $secs" >>"$samples"
            echo "[rep $((rep + 1))/$reps] $workload $tool: ${secs}s" >&2
        done
    done
done

# ---- the table: medians, overhead per job, ratios to cfutures

table() {
    awk -v jobs="$jobs" -v n_true="$n_true" -v n_sleep="$n_sleep" \
        -v md="$1" '
    function median(list,   a, n, i, k, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++)
            for (k = i; k > 1 && a[k - 1] + 0 > a[k] + 0; k--) {
                t = a[k]; a[k] = a[k - 1]; a[k - 1] = t
            }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        s[$1 " " $2] = s[$1 " " $2] " " $3
        if (!($2 in idx)) {
            idx[$2] = ++n_tools
            names[n_tools] = $2
        }
    }
    END {
        split("true sleep", works, " ")
        if (md) {
            print "| workload | tool | median wall s | overhead per job ms | vs cfutures | runs |"
            print "|---|---|---|---|---|---|"
        } else {
            printf "%-22s %-9s %13s %20s %12s %5s\n", "workload", "tool", "median wall s", "overhead per job ms", "vs cfutures", "runs"
        }
        for (w = 1; w <= 2; w++) {
            work = works[w]
            n = work == "true" ? n_true : n_sleep
            ideal = work == "true" ? 0 : n * 0.01 / jobs
            label = work == "true" ? n " x true" : n " x sleep 0.01"
            ref = ""
            if ((work " cfutures") in s)
                ref = (median(s[work " cfutures"]) - ideal) * jobs / n * 1000
            for (t = 1; t <= n_tools; t++) {
                tool = names[t]
                key = work " " tool
                if (!(key in s))
                    continue
                m = median(s[key])
                runs = split(s[key], dummy, " ")
                over = (m - ideal) * jobs / n * 1000
                if (ref == "" || tool == "cfutures")
                    vs = tool == "cfutures" ? "(reference)" : "-"
                else if (ref > 0)
                    vs = sprintf("%.2fx", over / ref)
                else
                    vs = "-"
                if (md)
                    printf "| %s | %s | %.3f | %.3f | %s | %d |\n", label, tool, m, over, vs, runs
                else
                    printf "%-22s %-9s %13.3f %20.3f %12s %5d\n", label, tool, m, over, vs, runs
            }
        }
    }' "$samples"
}

echo
echo "cfutures run vs xargs -P vs GNU parallel: -j $jobs on $(nproc) CPUs" \
    "($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1));" \
    "medians of $reps run(s); overhead per job = (wall - ideal) x j / jobs"
table ""
if [ -n "$markdown" ]; then
    table 1 >"$markdown"
    echo "run_bench.sh: wrote $markdown" >&2
fi
