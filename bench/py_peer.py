#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Python peer: concurrent.futures, as a Python programmer writes it.

Prints RESULT lines as bench/bench.h describes. Python is slow per task, so
B1 and B6 use fewer tasks (100,000) and report per task; B5 does 10,000
round trips. Arguments are key=value words, as for the C programs.

  B1  ThreadPoolExecutor(workers): n submits of an empty function, keeping
      the futures, then wait() for all.                     (python-threads)
  B3  n items of about 1 ms of Python arithmetic each (its own calibration:
      PY_WORK_ITERS steps), mode=seq | threads | processes:
      a plain loop, ThreadPoolExecutor.map (the GIL serialises it), or
      ProcessPoolExecutor.map (chunksize 1).
  B4  ThreadPoolExecutor(100): n tasks of time.sleep(ms / 1000).
  B5  submit(f).result() on an idle pool, n times: median and p99.
  B6  ThreadPoolExecutor(1) with its worker blocked on an Event; n pending
      submits keeping futures; VmRSS before and after divided by n.

Usage: py_peer.py B1|B3|B4|B5|B6 [workers=N] [n=N] [mode=...] [ms=N]
"""
import concurrent.futures as cf
import os
import sys
import threading
import time

PY_WORK_ITERS = 4700


def result(bench, impl, workers, metric, value):
    print(f"RESULT bench={bench} impl={impl} workers={workers} "
          f"metric={metric} value={value:.9g}", flush=True)


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def empty():
    pass


def work(seed):
    x = (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF
    for _ in range(PY_WORK_ITERS):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x


def b1(args):
    workers = int(args.get("workers", os.cpu_count()))
    n = int(args.get("n", 100000))
    with cf.ThreadPoolExecutor(workers) as ex:
        cf.wait([ex.submit(empty) for _ in range(64)])
        t0 = time.perf_counter()
        fs = [ex.submit(empty) for _ in range(n)]
        cf.wait(fs)
        t1 = time.perf_counter()
    result("B1", "python-threads", workers, "ns_per_task", (t1 - t0) * 1e9 / n)
    result("B1", "python-threads", workers, "time_s", t1 - t0)


def b3(args):
    workers = int(args.get("workers", os.cpu_count()))
    n = int(args.get("n", 2000))
    mode = args.get("mode", "seq")
    if mode == "seq":
        t0 = time.perf_counter()
        out = [work(i) for i in range(n)]
        t1 = time.perf_counter()
        impl, workers = "python-sequential", 1
    else:
        pool = cf.ThreadPoolExecutor if mode == "threads" else cf.ProcessPoolExecutor
        with pool(workers) as ex:
            list(ex.map(abs, range(4 * workers)))  # start the workers
            t0 = time.perf_counter()
            out = list(ex.map(work, range(n)))
            t1 = time.perf_counter()
        impl = "python-threads" if mode == "threads" else "python-processes"
    print("checksum", sum(out) & 0xFFFFFFFF)
    result("B3", impl, workers, "time_s", t1 - t0)


def b4(args):
    workers = int(args.get("workers", 100))
    n = int(args.get("n", 1000))
    secs = int(args.get("ms", 10)) / 1000
    with cf.ThreadPoolExecutor(workers) as ex:
        t0 = time.perf_counter()
        fs = [ex.submit(time.sleep, secs) for _ in range(n)]
        cf.wait(fs)
        t1 = time.perf_counter()
    result("B4", "python-threads", workers, "time_s", t1 - t0)


def b5(args):
    workers = int(args.get("workers", os.cpu_count()))
    n = int(args.get("n", 10000))
    lat = []
    with cf.ThreadPoolExecutor(workers) as ex:
        for i in range(n + 1000):  # the first 1000: warm-up
            t0 = time.perf_counter_ns()
            ex.submit(empty).result()
            t1 = time.perf_counter_ns()
            if i >= 1000:
                lat.append(t1 - t0)
    lat.sort()
    result("B5", "python-threads", workers, "median_us", lat[n // 2] / 1e3)
    result("B5", "python-threads", workers, "p99_us", lat[int(n * 0.99)] / 1e3)


def b6(args):
    n = int(args.get("n", 100000))
    started, release = threading.Event(), threading.Event()

    def blocker():
        started.set()
        release.wait()

    with cf.ThreadPoolExecutor(1) as ex:
        fb = ex.submit(blocker)
        started.wait()
        fs = [None] * n
        rss0, hwm0 = status_bytes("VmRSS"), status_bytes("VmHWM")
        for i in range(n):
            fs[i] = ex.submit(empty)
        rss1, hwm1 = status_bytes("VmRSS"), status_bytes("VmHWM")
        release.set()
        cf.wait(fs + [fb])
    result("B6", "python-threads", 1, "bytes_per_task", (rss1 - rss0) / n)
    result("B6", "python-threads", 1, "hwm_bytes_per_task", (hwm1 - hwm0) / n)


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    args = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a)
    benches = {"B1": b1, "B3": b3, "B4": b4, "B5": b5, "B6": b6}
    if which not in benches:
        sys.exit(f"usage: {sys.argv[0]} B1|B3|B4|B5|B6 [key=value ...]")
    benches[which](args)


if __name__ == "__main__":
    main()
