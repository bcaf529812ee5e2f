#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The `cfutures run` benchmark: many small jobs run by `cfutures run`,
# `xargs -P` and GNU parallel side by side, with the same number of jobs
# at once (-j, the CPU count by default):
#   true    5,000 jobs of `true` (nothing but starting processes)
#   sleep   500 jobs of `sleep 0.01` (ideal: 500 x 10 ms / j)
#   rs      5,000 jobs of `true {1.} {2/}` from two ::: lists (50 x 100,
#           every combination): replacement strings and quoting at work;
#           xargs, which has neither, runs `true A B` with the pairs from
#           standard input (-n 2), the floor `true "A B"`
# Each runs --reps times, the tools interleaved in an order rotated at each
# repetition. Beside them runs the floor, spawn_floor.c: posix_spawnp and
# waitpid with j at once and nothing else, the least any runner pays to
# start, run and reap the processes. The table shows, from the medians,
# the time per job, wall x j / jobs (what a job slot spends per job), and
# the overhead per job, (wall - floor) x j / jobs: what the tool adds to
# the processes it runs. Ratios to cfutures are left out ("-") where its
# overhead is below 0.02 ms, within the noise of the floor. Goals:
# cfutures' overhead no more than xargs -P's, and at least 50x lower than
# GNU parallel's.
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
#   --quick         1 repetition of 1,000 `true`, 100 `sleep 0.01` and
#                   1,000 `true {1.} {2/}` (10 x 100)
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
        sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
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
n_rs_a=50
if [ "$quick" = 1 ]; then
    n_true=1000
    n_sleep=100
    n_rs_a=10
fi
n_rs=$((n_rs_a * 100))
# The two ::: lists of the rs workload: names with an extension, paths.
rs_a=()
for ((i = 1; i <= n_rs_a; i++)); do rs_a+=("file $i.txt"); done
rs_b=()
for ((i = 1; i <= 100; i++)); do rs_b+=("dir/sub $i/name$i"); done

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

work=$(mktemp -d)
trap 'rm -rf "$work" ${log:+"$log"}' EXIT
tools=()
if cc -O2 -std=c11 -o "$work/spawn_floor" bench/cli/spawn_floor.c; then
    tools+=(floor)
else
    echo "MISSING the floor: cc could not build bench/cli/spawn_floor.c" >&2
fi
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

# run_tool TOOL WORKLOAD: runs the workload's jobs with TOOL (true and
# sleep: once per line of stdin; rs: the two ::: lists).
run_tool() {
    local cmd=$2
    [ "$2" = rs ] && cmd=true
    case "$1:$2" in
    cfutures:rs) "$cf" run -j "$jobs" true {1.} {2/} ::: "${rs_a[@]}" ::: "${rs_b[@]}" ;;
    parallel:rs) parallel --will-cite -j "$jobs" true {1.} {2/} ::: "${rs_a[@]}" ::: "${rs_b[@]}" ;;
    xargs:rs) xargs -P "$jobs" -n 2 true ;;
    floor:*) "$work/spawn_floor" "$jobs" "$cmd" ;;
    cfutures:*) "$cf" run -j "$jobs" -- "$cmd" ;;
    xargs:*) xargs -P "$jobs" -n 1 "$cmd" ;;
    parallel:*) parallel --will-cite -j "$jobs" "$cmd" ;;
    esac
}

# inputs WORKLOAD TOOL: the input lines (true ignores its argument; sleep takes
# the input as its duration; rs: the pairs, for xargs and the floor).
inputs() {
    case "$1" in
    true) seq "$n_true" ;;
    sleep) awk -v n="$n_sleep" 'BEGIN { for (i = 0; i < n; i++) print "0.01" }' ;;
    rs) # cfutures and GNU parallel take the ::: lists, not stdin.
        case "$2" in cfutures | parallel) return ;; esac
        for a in "${rs_a[@]}"; do for b in "${rs_b[@]}"; do
            printf '%s %s\n' "${a// /_}" "${b// /_}"; done; done ;;
    esac
}

# ---- the runs

samples=$work/samples
echo "run_bench.sh: $reps repetition(s), -j $jobs, $(nproc) CPUs;" \
    "$n_true x true, $n_sleep x sleep 0.01, $n_rs x true {1.} {2/}" >&2
# measure TOOL WORKLOAD: runs it once and prints "WALL CPU" in seconds,
# CPU being user + system time of the tool and every process it waited
# for (bash's `time`, from getrusage of the children).
measure() {
    local TIMEFORMAT='%R %U %S' t
    if ! t=$({ time inputs "$2" "$1" | run_tool "$1" "$2" >/dev/null 2>"$work/err"; } 2>&1); then
        echo "run_bench.sh: $1 $2 failed:" >&2
        cat "$work/err" >&2
        exit 1
    fi
    awk '{ printf "%s %.3f\n", $1, $2 + $3 }' <<<"$t"
}

for ((rep = 0; rep < reps; rep++)); do
    k=$((rep % ${#tools[@]}))
    order=("${tools[@]:k}" "${tools[@]:0:k}")
    for workload in true sleep rs; do
        for tool in "${order[@]}"; do
            m=$(measure "$tool" "$workload")
            echo "$workload $tool $m" >>"$samples"
            echo "[rep $((rep + 1))/$reps] $workload $tool: wall, cpu s: $m" >&2
        done
    done
done

# ---- the table: medians, time and overhead per job, ratios to cfutures

table() {
    awk -v jobs="$jobs" -v n_true="$n_true" -v n_sleep="$n_sleep" -v n_rs="$n_rs" \
        -v md="$1" '
    function median(list,   a, n, i, k, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++)
            for (k = i; k > 1 && a[k - 1] + 0 > a[k] + 0; k--) {
                t = a[k]; a[k] = a[k - 1]; a[k - 1] = t
            }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function ms(x) { return x == "" ? "-" : sprintf("%.3f", x) }
    # Ratios to an overhead below 0.02 ms (within the noise of the floor)
    # would mean nothing: "-".
    function ratio(x, ref) { return x == "" || ref == "" || ref < 0.02 ? "-" : sprintf("%.1fx", x / ref) }
    function row(f) {
        if (md)
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
        else
            printf "%-22s %-9s %7s %7s %8s %11s %7s %8s %11s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
    }
    function goals(work, name, cf, x, p) {
        if (cf == "" || md)
            return
        if (x != "")
            printf "  goal (%s): cfutures overhead <= xargs -P: %s (%s vs %s ms)\n", name, (cf <= x ? "met" : "NOT MET"), ms(cf), ms(x)
        if (p != "")
            printf "  goal (%s): GNU parallel overhead >= 50x cfutures: %s (%s vs %s ms)\n", name, (p >= 50 * (cf > 0 ? cf : 0) ? "met" : "NOT MET"), ms(p), ms(cf)
    }
    {
        wall[$1 " " $2] = wall[$1 " " $2] " " $3
        cpu[$1 " " $2] = cpu[$1 " " $2] " " $4
        if (!($2 in idx)) {
            idx[$2] = ++n_tools
            names[n_tools] = $2
        }
    }
    END {
        if (md) {
            print "| workload | tool | wall s (median) | per job ms | overhead ms/job | vs cfutures | CPU s (median) | CPU overhead ms/job | vs cfutures |"
            print "|---|---|---|---|---|---|---|---|---|"
        } else {
            split("workload|tool|wall s|per job|overhead|vs cfutures|CPU s|overhead|vs cfutures", h, "|")
            row(h)
            split("||(median)|ms|ms/job|(wall)|(median)|CPU ms/job|(CPU)", h, "|")
            row(h)
        }
        split("true sleep rs", works, " ")
        for (w = 1; w <= 3; w++) {
            work = works[w]
            n = work == "true" ? n_true : work == "sleep" ? n_sleep : n_rs
            label = work == "true" ? n " x true" : work == "sleep" ? n " x sleep 0.01" : n " x true {1.} {2/}"
            fw = fc = ""
            if ((work " floor") in wall) {
                fw = median(wall[work " floor"])
                fc = median(cpu[work " floor"])
            }
            delete ow; delete oc
            for (t = 1; t <= n_tools; t++) {
                key = work " " names[t]
                if (!(key in wall))
                    continue
                mw = median(wall[key]); mc = median(cpu[key])
                ow[names[t]] = fw == "" ? "" : (mw - fw) * jobs / n * 1000
                oc[names[t]] = fc == "" ? "" : (mc - fc) / n * 1000
            }
            for (t = 1; t <= n_tools; t++) {
                tool = names[t]
                key = work " " tool
                if (!(key in wall))
                    continue
                runs = split(wall[key], dummy, " ")
                mw = median(wall[key]); mc = median(cpu[key])
                f[1] = label
                f[2] = tool == "floor" ? "(floor)" : tool
                f[3] = sprintf("%.3f", mw)
                f[4] = ms(mw * jobs / n * 1000)
                f[5] = tool == "floor" ? "0" : ms(ow[tool])
                f[6] = tool == "floor" ? "-" : tool == "cfutures" ? "(ref)" : ratio(ow[tool], ow["cfutures"])
                f[7] = sprintf("%.3f", mc)
                f[8] = tool == "floor" ? "0" : ms(oc[tool])
                f[9] = tool == "floor" ? "-" : tool == "cfutures" ? "(ref)" : ratio(oc[tool], oc["cfutures"])
                row(f)
            }
            goals(work, label ", wall", ow["cfutures"], ow["xargs"], ow["parallel"])
            goals(work, label ", CPU", oc["cfutures"], oc["xargs"], oc["parallel"])
        }
    }' "$samples"
}

echo
echo "cfutures run vs xargs -P vs GNU parallel: -j $jobs on $(nproc) CPUs" \
    "($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1))," \
    "medians of $reps run(s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "per job = wall x j / jobs; overhead = (wall - floor) x j / jobs, and" \
    "(CPU - floor's CPU) / jobs; the floor is spawn_floor.c"
table ""
if [ -n "$markdown" ]; then
    table 1 >"$markdown"
    echo "run_bench.sh: wrote $markdown" >&2
fi
