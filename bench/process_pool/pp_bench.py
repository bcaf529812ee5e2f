# SPDX-License-Identifier: MIT
"""pp_bench.py - Python's ProcessPoolExecutor, measured the way pp_bench.c
measures the cfutures process pool (bench/process_pool/run.sh runs both).
One run prints one "RESULT name value unit" line per measurement:

  startup_spawn, startup_fork  a new pool of W workers (mp_context spawn or
                               fork) to the result of its first tiny task, s
  map_cs1, map_cs100           executor.map over N tiny tasks (x + 1) with
                               chunksize 1 and 100, on a warm pool (the
                               default start method), tasks per second
                               (median of REPS runs)
  submit                       N submit() calls, then every result()
  cpu_seq, cpu_pool, cpu_speedup
                               M tasks of about 1 ms of arithmetic each (the
                               same xorshift as the C side, fewer rounds),
                               one after the other (the mean of a run
                               before and one after the pool's), then
                               map(chunksize=1) over W workers

Usage: python3 pp_bench.py [W [N [M]]]   (defaults 2, 10000, 2000)
"""

import concurrent.futures as cf
import multiprocessing as mp
import statistics
import sys
import time

MASK = (1 << 64) - 1
REPS = 3


def tiny(x):
    return x + 1


def spin(iters):
    x = 88172645463325252
    for _ in range(iters):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def calibrate():
    """Rounds of spin that take about 1 ms here."""
    iters = 100
    while True:
        t0 = time.perf_counter()
        spin(iters)
        dt = time.perf_counter() - t0
        if dt > 0.02:
            return max(1, int(iters * 0.001 / dt))
        iters *= 2


def startup(workers, method):
    t0 = time.perf_counter()
    ex = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context(method))
    ex.submit(tiny, 1).result()
    dt = time.perf_counter() - t0
    ex.shutdown()
    return dt


def main():
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    m = int(sys.argv[3]) if len(sys.argv) > 3 else 2000

    print(f"RESULT startup_spawn {startup(workers, 'spawn'):.6f} s")
    print(f"RESULT startup_fork {startup(workers, 'fork'):.6f} s")

    def map_all(ex, chunk):
        t0 = time.perf_counter()
        for _ in ex.map(tiny, range(n), chunksize=chunk):
            pass
        return time.perf_counter() - t0

    def submit_all(ex):
        t0 = time.perf_counter()
        fs = [ex.submit(tiny, i) for i in range(n)]
        for f in fs:
            f.result()
        return time.perf_counter() - t0

    def sequential(iters):
        t0 = time.perf_counter()
        for _ in range(m):
            spin(iters)
        return time.perf_counter() - t0

    with cf.ProcessPoolExecutor(workers) as ex:
        list(ex.map(tiny, range(min(n, 1000))))  # warm up
        t = {"map_cs1": [], "map_cs100": [], "submit": []}
        for _ in range(REPS):
            t["map_cs1"].append(map_all(ex, 1))
            t["map_cs100"].append(map_all(ex, 100))
            t["submit"].append(submit_all(ex))
        for name in ("map_cs1", "map_cs100", "submit"):
            print(f"RESULT {name} {n / statistics.median(t[name]):.1f} tasks/s")

        iters = calibrate()
        seq = sequential(iters)
        t0 = time.perf_counter()
        for _ in ex.map(spin, [iters] * m, chunksize=1):
            pass
        par = time.perf_counter() - t0
        seq = (seq + sequential(iters)) / 2
    print(f"RESULT cpu_seq {seq:.4f} s")
    print(f"RESULT cpu_pool {par:.4f} s")
    print(f"RESULT cpu_speedup {seq / par:.3f} x")


if __name__ == "__main__":
    main()
