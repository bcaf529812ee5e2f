#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the benchmarks of bench/ for cfutures and every peer that is built,
several repetitions with the implementations interleaved, and prints one
table per benchmark: medians, spread, ratio to cfutures and the goals.

scripts/bench.sh builds the programs and calls this; it can also be run on
its own against a build directory that has them:

  bench/run.py [--build DIR] [--reps N] [--quick] [--only B2[,B5]]
               [--out DIR] [--scaling [1,2,4,8,16]] [--baseline DIR]

--scaling runs B1, B2 and B3 instead at each of the given worker counts,
every implementation that takes a worker count, and prints each one's
median beside its speedup over itself on 1 worker (latest-scaling.md).
With more workers than CPUs it is a smoke test of oversubscription.
--baseline DIR also runs the cfutures programs built in DIR (say, the
commit before a change), interleaved with the rest, as rows IMPL@before.

Each program prints lines `RESULT bench=.. impl=.. workers=.. metric=..
value=..` (bench/bench.h). Writes DIR/latest.csv (medians), latest.json
(everything, raw samples included), latest-goals.csv and latest.md (the
tables as Markdown), DIR being bench/results by default.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_PEER = os.path.join(ROOT, "bench", "py_peer.py")
NCPU = os.cpu_count() or 1
HZ = os.sysconf("SC_CLK_TCK")

# Which program group each implementation belongs to, to name what is missing.
GROUPS = {
    "cfutures": "cfutures (thread pool, futures)",
    "cfutures-forkjoin": "cfutures fork-join (cf_join, cf_parallel_for, cf_group)",
    "sequential": "plain sequential C",
    "tbb": "oneTBB",
    "openmp": "OpenMP (libgomp)",
    "glib": "GLib GThreadPool",
    "libuv": "libuv uv_queue_work",
    "python": "Python concurrent.futures",
}
# The executable of each group (python: the interpreter running this).
EXES = {
    "sequential": "bench_seq",
    "tbb": "bench_tbb",
    "openmp": "bench_omp",
    "glib": "bench_glib",
    "libuv": "bench_uv",
}


def case(bench, impl, group, workers, argv, quick_argv=None, note=""):
    """One program run that yields one row: argv[0] is an executable name
    in the build's bench/ directory, or "python" for py_peer.py."""
    return dict(bench=bench, impl=impl, group=group, workers=workers,
                argv=argv, quick_argv=quick_argv or argv, note=note)


def all_cases():
    w = NCPU
    c = []
    # B1 throughput
    c += [
        case("B1", "cfutures-futures", "cfutures", w,
             ["bench_cf_b1", "mode=futures", f"workers={w}"],
             ["bench_cf_b1", "mode=futures", f"workers={w}", "n=100000"]),
        case("B1", "cfutures-forget", "cfutures", w,
             ["bench_cf_b1", "mode=forget", f"workers={w}"],
             ["bench_cf_b1", "mode=forget", f"workers={w}", "n=100000"]),
        case("B1", "cfutures-group", "cfutures-forkjoin", w,
             ["bench_cf_b1_group", f"workers={w}"],
             ["bench_cf_b1_group", f"workers={w}", "n=100000"]),
        case("B1", "tbb", "tbb", w, ["bench_tbb", "B1", f"workers={w}"],
             ["bench_tbb", "B1", f"workers={w}", "n=100000"]),
        case("B1", "openmp", "openmp", w, ["bench_omp", "B1", f"workers={w}"],
             ["bench_omp", "B1", f"workers={w}", "n=100000"]),
        case("B1", "glib", "glib", w, ["bench_glib", "B1", f"workers={w}"],
             ["bench_glib", "B1", f"workers={w}", "n=100000"]),
        case("B1", "libuv", "libuv", w, ["bench_uv", "B1", f"workers={w}"],
             ["bench_uv", "B1", f"workers={w}", "n=100000"]),
        case("B1", "python-threads", "python", w,
             ["python", "B1", f"workers={w}", "n=100000"],
             ["python", "B1", f"workers={w}", "n=20000"],
             note="100,000 tasks, per task"),
    ]
    # B2 fork-join, fib(32), 1 and 2 workers
    for k in (1, 2):
        c += [
            case("B2", "cfutures", "cfutures-forkjoin", k,
                 ["bench_cf_b2", f"workers={k}"],
                 ["bench_cf_b2", f"workers={k}", "n=27"]),
            case("B2", "tbb-invoke", "tbb", k,
                 ["bench_tbb", "B2", f"workers={k}", "mode=invoke"],
                 ["bench_tbb", "B2", f"workers={k}", "mode=invoke", "n=27"]),
            case("B2", "tbb-group", "tbb", k,
                 ["bench_tbb", "B2", f"workers={k}", "mode=group"],
                 ["bench_tbb", "B2", f"workers={k}", "mode=group", "n=27"]),
            case("B2", "openmp", "openmp", k,
                 ["bench_omp", "B2", f"workers={k}"],
                 ["bench_omp", "B2", f"workers={k}", "n=27"]),
        ]
    c += [
        case("B2", "sequential", "sequential", 1, ["bench_seq", "B2"],
             ["bench_seq", "B2", "n=27"], note="-O3: gcc unrolls it"),
        case("B2", "sequential-calls", "sequential", 1,
             ["bench_seq", "B2", "mode=calls"],
             ["bench_seq", "B2", "mode=calls", "n=27"],
             note="every call made"),
    ]
    # B3 CPU-bound map, 2000 items of ~1 ms
    c += [
        case("B3", "sequential", "sequential", 1, ["bench_seq", "B3"],
             ["bench_seq", "B3", "n=200"]),
        case("B3", "cfutures-parallel_for", "cfutures-forkjoin", w,
             ["bench_cf_b3_pfor", f"workers={w}"],
             ["bench_cf_b3_pfor", f"workers={w}", "n=200"]),
        case("B3", "cfutures-map", "cfutures", w,
             ["bench_cf_b3_map", f"workers={w}"],
             ["bench_cf_b3_map", f"workers={w}", "n=200"]),
        case("B3", "tbb", "tbb", w, ["bench_tbb", "B3", f"workers={w}"],
             ["bench_tbb", "B3", f"workers={w}", "n=200"]),
        case("B3", "openmp", "openmp", w, ["bench_omp", "B3", f"workers={w}"],
             ["bench_omp", "B3", f"workers={w}", "n=200"]),
        case("B3", "python-sequential", "python", 1,
             ["python", "B3", "mode=seq"], ["python", "B3", "mode=seq", "n=100"],
             note="Python's own item, ~1 ms"),
        case("B3", "python-threads", "python", w,
             ["python", "B3", "mode=threads", f"workers={w}"],
             ["python", "B3", "mode=threads", f"workers={w}", "n=100"],
             note="GIL: no parallelism"),
        case("B3", "python-processes", "python", w,
             ["python", "B3", "mode=processes", f"workers={w}"],
             ["python", "B3", "mode=processes", f"workers={w}", "n=100"],
             note="ProcessPoolExecutor"),
    ]
    # B4 I/O-bound: 1000 x 10 ms on 100 workers
    c += [
        case("B4", "cfutures", "cfutures", 100, ["bench_cf_b4", "workers=100"]),
        case("B4", "glib", "glib", 100, ["bench_glib", "B4", "workers=100"]),
        case("B4", "libuv", "libuv", 100, ["bench_uv", "B4", "workers=100"]),
        case("B4", "python-threads", "python", 100,
             ["python", "B4", "workers=100"]),
    ]
    # B5 latency
    c += [
        case("B5", "cfutures", "cfutures", w, ["bench_cf_b5", f"workers={w}"],
             ["bench_cf_b5", f"workers={w}", "n=10000"]),
        case("B5", "glib", "glib", w, ["bench_glib", "B5", f"workers={w}"],
             ["bench_glib", "B5", f"workers={w}", "n=10000"],
             note="push + GCond"),
        case("B5", "libuv", "libuv", w, ["bench_uv", "B5", f"workers={w}"],
             ["bench_uv", "B5", f"workers={w}", "n=10000"],
             note="queue_work + uv_run"),
        case("B5", "python-threads", "python", w,
             ["python", "B5", f"workers={w}", "n=10000"],
             ["python", "B5", f"workers={w}", "n=2000"],
             note="10,000 round trips"),
    ]
    # B6 memory per pending task
    c += [
        case("B6", "cfutures", "cfutures", 1, ["bench_cf_b6"],
             ["bench_cf_b6", "n=100000"], note="with its future"),
        case("B6", "tbb", "tbb", 1, ["bench_tbb", "B6"],
             ["bench_tbb", "B6", "n=100000"], note="task_group, no future"),
        case("B6", "python-threads", "python", 1, ["python", "B6", "n=100000"],
             ["python", "B6", "n=20000"], note="100,000 tasks, per task"),
    ]
    # B7 waits inside tasks: 10,000 tasks each waiting on a child that
    # blocks 1 ms, 2 workers (ideal 5 s)
    c += [
        case("B7", "cfutures-inline", "cfutures", 2,
             ["bench_cf_b7", "workers=2", "mode=inline"],
             ["bench_cf_b7", "workers=2", "mode=inline", "n=1000"],
             note="untimed wait: the child runs inline"),
        case("B7", "cfutures-blocked", "cfutures", 2,
             ["bench_cf_b7", "workers=2", "mode=blocked"],
             ["bench_cf_b7", "workers=2", "mode=blocked", "n=1000"],
             note="timed wait: blocks, a spare stands in"),
    ]
    return c


# What each benchmark's table shows: the main metric (lower is better for
# all), the extra metrics, the words for ratios, the cfutures rows that
# ratios are taken against.
BENCHES = {
    "B1": dict(title="B1 throughput: 1,000,000 empty tasks from one thread, "
               "then wait for all (ns per task)",
               metric="ns_per_task", unit="ns/task", extra=["time_s"],
               words=("slower", "faster"),
               refs=["cfutures-futures", "cfutures-forget"]),
    "B2": dict(title="B2 fork-join: fib(32), a spawn at every internal call "
               "(3,524,577 spawns)",
               metric="time_s", unit="s", extra=["ns_per_spawn"],
               words=("slower", "faster"), refs=["cfutures"]),
    "B3": dict(title="B3 CPU-bound map: 2,000 items of ~1 ms arithmetic",
               metric="time_s", unit="s", extra=[],
               words=("slower", "faster"),
               refs=["cfutures-parallel_for", "cfutures-map"]),
    "B4": dict(title="B4 I/O-bound: 1,000 tasks sleeping 10 ms on 100 "
               "workers (ideal 100 ms)",
               metric="time_s", unit="s", extra=[],
               words=("slower", "faster"), refs=["cfutures"]),
    "B5": dict(title="B5 latency: submit one task and wait for it, idle pool "
               "(100,000 round trips)",
               metric="median_us", unit="us", extra=["p99_us"],
               words=("slower", "faster"), refs=["cfutures"]),
    "B6": dict(title="B6 memory: bytes per pending task, 1,000,000 pending",
               metric="bytes_per_task", unit="B/task",
               extra=["hwm_bytes_per_task"],
               words=("more", "less"), refs=["cfutures"]),
    "B7": dict(title="B7 waits inside tasks: 10,000 tasks each waiting on a "
               "child that blocks 1 ms, 2 workers (ideal 5 s)",
               metric="time_s", unit="s",
               extra=["overhead_us", "wait_us", "spares", "blocked"],
               words=("slower", "faster"), refs=["cfutures-inline"]),
}


def read_peers(build):
    """The build's peers.txt: group -> (found, why)."""
    peers = {}
    path = os.path.join(build, "bench", "peers.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(" ", 2)
                if len(parts) >= 2:
                    peers[parts[0]] = (parts[1] == "found",
                                       parts[2] if len(parts) > 2 else "")
    return peers


def availability(cases, build):
    """Splits cases into runnable ones and a {group: reason} of missing."""
    peers = read_peers(build)
    runnable, missing = [], {}
    for c in cases:
        exe = c["argv"][0]
        if exe == "python":
            if not sys.executable or not os.path.exists(PY_PEER):
                missing[c["group"]] = "no python3"
                continue
        elif not os.access(os.path.join(c.get("build") or build, "bench", exe),
                           os.X_OK):
            found, why = peers.get(c["group"], (False, ""))
            missing[c["group"]] = why or f"{exe} was not built"
            continue
        runnable.append(c)
    return runnable, missing


def command(c, build, quick):
    argv = c["quick_argv"] if quick else c["argv"]
    if argv[0] == "python":
        return [sys.executable, PY_PEER] + argv[1:]
    return [os.path.join(c.get("build") or build, "bench", argv[0])] + argv[1:]


def with_baseline(cases, baseline):
    """Adds, after each cfutures case, the same program from the baseline
    build directory as a row of its own, IMPL@before."""
    out = []
    for c in cases:
        out.append(c)
        if c["group"].startswith("cfutures"):
            out.append(dict(c, impl=c["impl"] + "@before", printed=c["impl"],
                            build=baseline))
    return out


# ---- noise from other processes ---------------------------------------------

def cpu_busy_s():
    """CPU seconds the whole machine has been busy (all processes, and
    time stolen by the hypervisor)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ  # all but idle and iowait


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_idle(max_wait, threshold, sample=0.3):
    """Waits (at most max_wait s) until the machine is busy less than
    threshold (a fraction of all CPUs): other work running there would
    distort the next measurement. Returns the busy fraction last seen."""
    t0 = time.time()
    while True:
        b0 = cpu_busy_s()
        time.sleep(sample)
        frac = (cpu_busy_s() - b0) / (sample * NCPU)
        if frac < threshold or time.time() - t0 >= max_wait:
            return frac


def run_case(c, build, quick, timeout):
    """Runs one program: ({metric: value}, share of the CPUs that other
    processes used meanwhile), or (an error string, None)."""
    cmd = command(c, build, quick)
    b0, c0, w0 = cpu_busy_s(), children_cpu_s(), time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout} s", None
    b1, c1, w1 = cpu_busy_s(), children_cpu_s(), time.time()
    # /proc/stat counts in clock ticks (10 ms): too coarse for short runs
    other = (min(1.0, max(0.0, ((b1 - b0) - (c1 - c0)) / (w1 - w0) / NCPU))
             if w1 - w0 >= 0.2 else None)
    out = {}
    for line in p.stdout.splitlines():
        if not line.startswith("RESULT "):
            continue
        kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
        if kv.get("bench") == c["bench"] and kv.get("impl") == c.get(
                "printed", c["impl"]):
            out[kv["metric"]] = float(kv["value"])
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [""]
        return f"exit {p.returncode}: {tail[0]}", None
    if not out:
        return "printed no RESULT line", None
    return out, other


# ---- statistics and wording ------------------------------------------------

def summarise(samples):
    """{(bench, impl, workers): {metric: [values]}} -> medians etc."""
    s = {}
    for key, metrics in samples.items():
        s[key] = {m: dict(median=statistics.median(v), min=min(v), max=max(v),
                          n=len(v), values=v)
                  for m, v in metrics.items() if v}
    return s


def med(summary, bench, impl, workers, metric):
    r = summary.get((bench, impl, workers), {}).get(metric)
    return r["median"] if r else None


def ratio_words(value, ref, words):
    """'1.20x slower' when value is ref * 1.2, '3.0x faster' below ref."""
    if value is None or ref is None or value <= 0 or ref <= 0:
        return "n/a"
    r = value / ref
    if abs(r - 1) < 0.005:
        return "same"
    if r > 1:
        return f"{fmt_ratio(r)}x {words[0]}"
    return f"{fmt_ratio(1 / r)}x {words[1]}"


def fmt_ratio(r):
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}"


def fmt(v, metric):
    if v is None:
        return "-"
    if metric == "time_s":
        return f"{v * 1e3:.2f}" if v < 0.1 else f"{v * 1e3:.1f}"
    if metric in ("ns_per_task", "ns_per_spawn"):
        return f"{v:.1f}" if v < 1000 else f"{v:.0f}"
    if metric.endswith("_us"):
        return f"{v:.2f}"
    if "bytes" in metric:
        return f"{v:.0f}"
    return f"{v:.4g}"


METRIC_NAMES = {
    "ns_per_task": "ns/task", "time_s": "time ms", "ns_per_spawn": "ns/spawn",
    "median_us": "median us", "p99_us": "p99 us",
    "bytes_per_task": "bytes/task (RSS)",
    "hwm_bytes_per_task": "bytes/task (HWM)",
    "overhead_us": "us/task over ideal", "wait_us": "us/wait (no sleep)",
    "spares": "spares started", "blocked": "waits blocked",
}


def fmt_other(r):
    """The median share of the CPUs other processes used during the runs
    (and the worst run's, when it is far off)."""
    if not r:
        return "-"
    text = f"{r['median']:.0%}"
    if r["max"] >= 0.1 and r["max"] > r["median"] + 0.05:
        text += f" (max {r['max']:.0%})"
    return text


def ref_for(summary, bench, ref_impl, workers):
    """The cfutures reference row's key: same workers if it has them."""
    if (bench, ref_impl, workers) in summary:
        return (bench, ref_impl, workers)
    keys = sorted(k for k in summary if k[0] == bench and k[1] == ref_impl)
    return keys[-1] if keys else None


# ---- goals -----------------------------------------------------------------

def goals(summary):
    """A list of dicts: bench, row (impl, workers) it belongs to, text,
    measured, met (True/False/None when it could not be measured)."""
    g = []
    w = NCPU

    def add(bench, row, text, short, measured, met):
        g.append(dict(bench=bench, impl=row[0], workers=row[1], goal=text,
                      short=short, measured=measured, met=met))

    def m(bench, impl, workers, metric):
        return med(summary, bench, impl, workers, metric)

    # B1
    fut = m("B1", "cfutures-futures", w, "ns_per_task")
    add("B1", ("cfutures-futures", w), "< 150 ns/task with futures",
        "< 150 ns",
        fmt(fut, "ns_per_task") + " ns" if fut else "not run",
        None if fut is None else fut < 150)
    tbb = m("B1", "tbb", w, "ns_per_task")
    py = m("B1", "python-threads", w, "ns_per_task")
    for impl in ("cfutures-futures", "cfutures-forget", "cfutures-group"):
        v = m("B1", impl, w, "ns_per_task")
        if v is None:
            continue
        # With futures: oneTBB's time (which makes none); without: 0.8x.
        k = 1.0 if impl == "cfutures-futures" else 0.8
        what = "oneTBB's" if k == 1.0 else f"{k}x oneTBB's"
        add("B1", ("tbb", w), f"{impl} time <= {what}",
            f"{impl} <= {'' if k == 1.0 else f'{k}x '}this",
            f"{impl} {fmt(v, 'ns_per_task')} vs {fmt(tbb, 'ns_per_task')} ns"
            if tbb else "tbb not run", None if tbb is None else v <= k * tbb)
        add("B1", ("python-threads", w), f"{impl} >= 50x faster than Python",
            f"{impl} >= 50x faster",
            f"{py / v:.0f}x" if py else "python not run",
            None if py is None else py / v >= 50)
    # B2
    cf1, cf2 = m("B2", "cfutures", 1, "time_s"), m("B2", "cfutures", 2, "time_s")
    for peer in ("tbb-invoke", "tbb-group", "openmp"):
        p = m("B2", peer, 2, "time_s")
        add("B2", (peer, 2), f"cfutures <= {peer} on 2 workers",
            "cfutures <= this",
            f"{fmt(cf2, 'time_s')} vs {fmt(p, 'time_s')}"
            if cf2 and p else "not run",
            None if cf2 is None or p is None else cf2 <= p)
    seq = m("B2", "sequential", 1, "time_s")
    add("B2", ("sequential", 1), "cfutures on 1 worker <= 10x sequential",
        "cfutures(1) <= 10x this",
        f"{cf1 / seq:.1f}x" if cf1 and seq else "not run",
        None if cf1 is None or seq is None else cf1 <= 10 * seq)
    add("B2", ("cfutures", 2), "2 workers >= 1.8x faster than 1",
        ">= 1.8x over 1 worker",
        f"{cf1 / cf2:.2f}x" if cf1 and cf2 else "not run",
        None if cf1 is None or cf2 is None else cf1 / cf2 >= 1.8)
    # B3
    s3 = m("B3", "sequential", 1, "time_s")
    for impl in ("cfutures-parallel_for", "cfutures-map"):
        v = m("B3", impl, w, "time_s")
        add("B3", (impl, w), f">= 1.9x over sequential on {w} cores",
            ">= 1.9x speedup",
            f"{s3 / v:.2f}x" if v and s3 else "not run",
            None if v is None or s3 is None else s3 / v >= 1.9)
    # B4
    v = m("B4", "cfutures", 100, "time_s")
    add("B4", ("cfutures", 100), "within 5% of the ideal 100 ms",
        "within 5% of ideal",
        f"{(v / 0.1 - 1) * 100:+.1f}%" if v else "not run",
        None if v is None else abs(v / 0.1 - 1) <= 0.05)
    peers = [x for x in (m("B4", p, 100, "time_s")
                         for p in ("glib", "libuv", "python-threads")) if x]
    best = min(peers) if peers else None
    add("B4", ("cfutures", 100), "within 1% of the best peer",
        "within 1% of best peer",
        f"{(v / best - 1) * 100:+.1f}%" if v and best else "not run",
        None if v is None or best is None else v <= best * 1.01)
    # B5
    v = m("B5", "cfutures", w, "median_us")
    add("B5", ("cfutures", w), "median < 5 us", "median < 5 us",
        f"{v:.2f} us" if v else "not run", None if v is None else v < 5)
    # B6
    v = m("B6", "cfutures", 1, "bytes_per_task")
    add("B6", ("cfutures", 1), "<= 96 bytes per pending task with future",
        "<= 96 B",
        f"{v:.0f} B" if v is not None else "not run",
        None if v is None else v <= 96)
    return g


def met_word(met):
    return "met" if met else "n/a" if met is None else "NOT MET"


# ---- tables ----------------------------------------------------------------

def derived(summary, bench, impl, workers):
    """Extra columns computed from medians: B3 speedup, B4 vs ideal."""
    if bench == "B3":
        base = "python-sequential" if impl.startswith("python") else "sequential"
        s = med(summary, "B3", base, 1, "time_s")
        v = med(summary, "B3", impl, workers, "time_s")
        return {"speedup": f"{s / v:.2f}x" if s and v else "-"}
    if bench == "B4":
        v = med(summary, "B4", impl, workers, "time_s")
        return {"vs ideal": f"{(v / 0.1 - 1) * 100:+.1f}%" if v else "-"}
    return {}


def table(bench, cases, missing, summary, failures, goal_list):
    spec = BENCHES[bench]
    metric = spec["metric"]
    refs = [r for r in spec["refs"]]
    keys = []
    for c in cases:
        k = (c["bench"], c["impl"], c["workers"])
        if c["bench"] == bench and k not in keys:
            keys.append(k)
    head = ["impl", "workers", METRIC_NAMES[metric]]
    head += [METRIC_NAMES[e] for e in spec["extra"]]
    extra_d = list(derived(summary, bench, "x", 0).keys()) if bench in ("B3", "B4") else []
    head += extra_d
    head += ["min..max", "runs", "other CPU"]
    head += [f"vs {r}" for r in refs]
    head += ["goal"]
    rows = []
    notes = {c["impl"]: c["note"] for c in cases if c["bench"] == bench}
    for k in keys:
        _, impl, workers = k
        r = summary.get(k, {})
        main = r.get(metric)
        label = impl + (f" ({notes[impl]})" if notes.get(impl) else "")
        if main is None:
            group = next(c["group"] for c in cases if c["bench"] == bench
                         and c["impl"] == impl)
            why = (f"MISSING ({missing[group]})" if group in missing
                   else "FAILED: " + failures.get(k, "no result"))
            rows.append([label, str(workers), why] + [""] * (len(head) - 3))
            continue
        row = [label, str(workers), fmt(main["median"], metric)]
        row += [fmt(r.get(e, {}).get("median"), e) for e in spec["extra"]]
        row += list(derived(summary, bench, impl, workers).values())
        row += [f"{fmt(main['min'], metric)}..{fmt(main['max'], metric)}",
                str(main["n"]), fmt_other(r.get("other_cpu"))]
        for ref in refs:
            rk = ref_for(summary, bench, ref, workers)
            if rk is None:
                row.append("n/a")
            elif rk == k:
                row.append("(reference)")
            else:
                row.append(ratio_words(main["median"],
                                       summary[rk][metric]["median"],
                                       spec["words"]))
        gs = [x for x in goal_list if x["bench"] == bench
              and x["impl"] == impl and x["workers"] == workers]
        row.append("; ".join(f"{x['short']}: {met_word(x['met'])}"
                             for x in gs) or "-")
        rows.append(row)
    return spec["title"], head, rows


def markdown(head, rows):
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plain(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    out = ["  ".join(h.ljust(wd) for h, wd in zip(head, widths)),
           "  ".join("-" * wd for wd in widths)]
    out += ["  ".join(str(x).ljust(wd) for x, wd in zip(r, widths))
            for r in rows]
    return "\n".join(out)


def machine_info():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = os.environ.get("CF_BENCH_COMMIT", "")
    if not commit:
        try:
            commit = subprocess.run(
                ["git", "-C", ROOT, "describe", "--always", "--dirty"],
                capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return dict(cpus=NCPU, cpu_model=model, kernel=platform.release(),
                commit=commit or "unknown",
                python=platform.python_version(),
                loadavg=os.getloadavg() if hasattr(os, "getloadavg") else None)


# ---- scaling mode ------------------------------------------------------------

SCALING_BENCHES = ("B1", "B2", "B3")


def with_workers(argv, k):
    return [f"workers={k}" if a.startswith("workers=") else a for a in argv]


def scaling_cases(counts):
    """B1, B2 and B3 at each worker count: every case of all_cases() that
    takes a worker count (one per implementation), rewritten for k."""
    seen, c = set(), []
    for base in all_cases():
        if base["bench"] not in SCALING_BENCHES or not any(
                a.startswith("workers=") for a in base["argv"]):
            continue
        if (base["bench"], base["impl"]) in seen:
            continue
        seen.add((base["bench"], base["impl"]))
        for k in counts:
            c.append(dict(base, workers=k,
                          argv=with_workers(base["argv"], k),
                          quick_argv=with_workers(base["quick_argv"], k)))
    return c


def scaling_tables(cases, counts, summary, failures):
    """One table per benchmark: a row per implementation, a column per
    worker count with the median and the speedup over 1 worker."""
    out = []
    for bench in SCALING_BENCHES:
        metric = BENCHES[bench]["metric"]
        impls = []
        for c in cases:
            if c["bench"] == bench and c["impl"] not in impls:
                impls.append(c["impl"])
        if not impls:
            continue
        head = ["impl"] + [f"{k}w {METRIC_NAMES[metric]} (speedup)"
                           for k in counts]
        rows = []
        for impl in impls:
            one = med(summary, bench, impl, counts[0], metric)
            row = [impl]
            for k in counts:
                v = med(summary, bench, impl, k, metric)
                if v is None:
                    row.append("FAILED: " + failures.get((bench, impl, k),
                                                         "no result"))
                elif one:
                    row.append(f"{fmt(v, metric)} ({one / v:.2f}x)")
                else:
                    row.append(fmt(v, metric))
            rows.append(row)
        title = (BENCHES[bench]["title"] + f"; speedup over {counts[0]} "
                 "worker(s), higher is better")
        out.append((title, head, rows))
    return out


def report_scaling(a, cases, counts, summary, failures, loads, t_start):
    """Prints the scaling tables; writes latest-scaling.md and .csv."""
    loads.append(os.getloadavg()[0])
    info = machine_info()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    hdr = (f"cfutures {info['commit']} scaling, {date}; {info['cpus']} CPUs "
           f"({info['cpu_model']}), Linux {info['kernel']}; "
           f"{a.reps} repetition(s){', QUICK (smaller sizes)' if a.quick else ''};"
           f" medians; 1-min load average {min(loads):.1f}..{max(loads):.1f}")
    if max(counts) > info["cpus"]:
        hdr += (f"; OVERSUBSCRIBED: up to {max(counts)} workers on "
                f"{info['cpus']} CPUs (a smoke test, not a scaling result)")
    print("\n" + hdr)
    md = [f"_{hdr}_", ""]
    for title, head, rows in scaling_tables(cases, counts, summary, failures):
        if a.quick:
            title += " [QUICK: smaller sizes]"
        print(f"\n{title}\n{plain(head, rows)}")
        md += [f"### {title}", "", markdown(head, rows), ""]
    print(f"\n{time.time() - t_start:.0f} s of runs")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "latest-scaling.csv"), "w",
              newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["bench", "impl", "workers", "metric", "median",
                     "speedup_over_1", "runs"])
        for (b, impl, wk), metrics in summary.items():
            metric = BENCHES[b]["metric"]
            r = metrics.get(metric)
            one = med(summary, b, impl, counts[0], metric)
            if r:
                wr.writerow([b, impl, wk, metric, f"{r['median']:.9g}",
                             f"{one / r['median']:.4g}" if one else "",
                             r["n"]])
    with open(os.path.join(a.out, "latest-scaling.md"), "w") as f:
        f.write("\n".join(md))
    print(f"results: {os.path.relpath(a.out, os.getcwd())}/latest-scaling.csv, "
          f"latest-scaling.md")
    return 1 if failures else 0


# ---- main ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition of smaller sizes: a smoke run")
    ap.add_argument("--only", default="",
                    help="comma-separated benchmarks, e.g. B2 or B1,B5")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--timeout", type=int, default=300,
                    help="seconds allowed for one program run")
    ap.add_argument("--wait-idle", type=float, default=10, metavar="S",
                    help="before each run, wait up to S seconds for other "
                    "processes to leave the CPUs (default 10; 0: never; "
                    "--quick: 0)")
    ap.add_argument("--idle-below", type=float, default=0.2, metavar="F",
                    help="idle means busy less than this share of all CPUs "
                    "(default 0.2)")
    ap.add_argument("--baseline", default="", metavar="DIR",
                    help="also run the cfutures programs of this build "
                    "directory (an older commit), as rows IMPL@before")
    ap.add_argument("--scaling", nargs="?", const="1,2,4,8,16", default="",
                    metavar="LIST",
                    help="run B1, B2 and B3 at these worker counts "
                    "(default 1,2,4,8,16) and report speedups")
    a = ap.parse_args()
    if a.quick and "--reps" not in sys.argv:
        a.reps = 1
    if a.quick and "--wait-idle" not in sys.argv:
        a.wait_idle = 0
    only = [b.strip().upper() for b in a.only.split(",") if b.strip()]
    for b in only:
        if b not in BENCHES:
            sys.exit(f"run.py: unknown benchmark {b} (B1..B7)")
    benches = only or list(BENCHES)

    counts = [int(x) for x in a.scaling.split(",") if x.strip()]
    if counts:
        benches = [b for b in benches if b in SCALING_BENCHES]
    cases = [c for c in (scaling_cases(counts) if counts else all_cases())
             if c["bench"] in benches]
    if a.baseline:
        cases = with_baseline(cases, a.baseline)
    runnable, missing = availability(cases, a.build)
    for g, why in missing.items():
        print(f"MISSING {GROUPS.get(g, g)}: {why}; its rows are skipped "
              f"(scripts/install-bench-deps.sh installs the peers)",
              file=sys.stderr)

    samples = {}
    failures = {}
    loads = []
    t_start = time.time()
    for rep in range(a.reps):
        loads.append(os.getloadavg()[0])
        for bench in benches:
            bc = [c for c in runnable if c["bench"] == bench]
            if not bc:
                continue
            k = rep % len(bc)
            for c in bc[k:] + bc[:k]:  # interleaved: a rotation per rep
                key = (c["bench"], c["impl"], c["workers"])
                if a.wait_idle > 0:
                    busy = wait_idle(a.wait_idle, a.idle_below)
                    if busy >= a.idle_below:
                        print(f"  (machine still {busy:.0%} busy after "
                              f"{a.wait_idle} s of waiting; running anyway)",
                              file=sys.stderr)
                t0 = time.time()
                r, other = run_case(c, a.build, a.quick, a.timeout)
                status = (f"{time.time() - t0:.1f}s" if isinstance(r, dict)
                          else "FAILED: " + r)
                if other is not None:
                    status += f", other processes {other:.0%} of the CPUs"
                print(f"[rep {rep + 1}/{a.reps}] {bench} {c['impl']} "
                      f"workers={c['workers']}: {status}", file=sys.stderr)
                if isinstance(r, dict):
                    if other is not None:
                        r["other_cpu"] = other
                    for metric, v in r.items():
                        samples.setdefault(key, {}).setdefault(metric, []).append(v)
                else:
                    failures[key] = r
    summary = summarise(samples)
    if counts:
        return report_scaling(a, cases, counts, summary, failures, loads,
                              t_start)
    goal_list = goals(summary)
    goal_list = [x for x in goal_list if x["bench"] in benches]

    loads.append(os.getloadavg()[0])
    info = machine_info()
    info["loadavg_1min_per_rep"] = loads
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    hdr = (f"cfutures {info['commit']} benchmarks, {date}; {info['cpus']} CPUs "
           f"({info['cpu_model']}), Linux {info['kernel']}; "
           f"{a.reps} repetition(s){', QUICK (smaller sizes)' if a.quick else ''};"
           f" medians; 1-min load average {min(loads):.1f}..{max(loads):.1f}"
           f" during the runs")
    print("\n" + hdr)
    md = [f"_{hdr}_", ""]
    for g, why in missing.items():
        line = f"MISSING {GROUPS.get(g, g)}: {why}"
        print(line)
        md += [f"- {line}"]
    if missing:
        md.append("")
    for bench in benches:
        title, head, rows = table(bench, cases, missing, summary, failures,
                                  goal_list)
        if not rows:
            continue
        if a.quick:
            title += " [QUICK: smaller sizes]"
        print(f"\n{title}\n{plain(head, rows)}")
        md += [f"### {title}", "", markdown(head, rows), ""]
    print("\nGoals")
    gh = ["bench", "goal", "row", "measured", "status"]
    grows = [[x["bench"], x["goal"], f"{x['impl']} ({x['workers']}w)",
              x["measured"], met_word(x["met"])] for x in goal_list]
    print(plain(gh, grows))
    md += ["### Goals", "", markdown(gh, grows), ""]
    if a.quick:
        print("(quick run: smaller sizes, one repetition - indicative only)")
    print(f"\n{time.time() - t_start:.0f} s of runs")

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "latest.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["bench", "impl", "workers", "metric", "median", "min",
                     "max", "runs"])
        for (b, impl, wk), metrics in summary.items():
            for metric, r in metrics.items():
                wr.writerow([b, impl, wk, metric, f"{r['median']:.9g}",
                             f"{r['min']:.9g}", f"{r['max']:.9g}", r["n"]])
    with open(os.path.join(a.out, "latest-goals.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["bench", "goal", "impl", "workers", "measured", "status"])
        for x in goal_list:
            wr.writerow([x["bench"], x["goal"], x["impl"], x["workers"],
                         x["measured"], met_word(x["met"])])
    with open(os.path.join(a.out, "latest.json"), "w") as f:
        json.dump(dict(
            date=date, machine=info, reps=a.reps, quick=a.quick,
            benches=benches,
            missing={g: why for g, why in missing.items()},
            failures=[dict(bench=k[0], impl=k[1], workers=k[2], error=e)
                      for k, e in failures.items()],
            results=[dict(bench=k[0], impl=k[1], workers=k[2], metric=mt,
                          median=r["median"], min=r["min"], max=r["max"],
                          runs=r["n"], samples=r["values"])
                     for k, ms in summary.items() for mt, r in ms.items()],
            goals=goal_list), f, indent=1)
    with open(os.path.join(a.out, "latest.md"), "w") as f:
        f.write("\n".join(md))
    print(f"results: {os.path.relpath(a.out, os.getcwd())}/latest.csv, "
          f"latest.json, latest-goals.csv, latest.md")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
