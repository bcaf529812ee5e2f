# SPDX-License-Identifier: MIT
"""cpu_bound.py - examples/cpu_bound.c in Python, to compare.

The same trial-division prime count in 24 ranges, sequential and then on a
ThreadPoolExecutor with os.cpu_count() threads. With the GIL (CPython's
default build) the threads take turns, so the speedup stays near 1x. The
limit is 500 000 instead of 6 000 000 so that it finishes in seconds.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor


def is_prime(n):
    if n < 2 or n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def count_primes(r):
    lo, hi = r
    return sum(1 for n in range(lo, hi) if is_prime(n))


limit, k, ncpu = 500_000, 24, os.cpu_count()
ranges = [(limit * i // k, limit * (i + 1) // k) for i in range(k)]

t0 = time.perf_counter()
seq = [count_primes(r) for r in ranges]
t_seq = time.perf_counter() - t0

t0 = time.perf_counter()
with ThreadPoolExecutor(max_workers=ncpu) as pool:
    par = list(pool.map(count_primes, ranges))
t_pool = time.perf_counter() - t0

print(f"  primes below {limit}: {sum(par)}",
      "(both agree)" if seq == par else "(MISMATCH)")
print(f"  sequential:             {t_seq:6.3f} s")
print(f"  ThreadPoolExecutor ({ncpu}): {t_pool:6.3f} s"
      f"   speedup {t_seq / t_pool:.2f}x on {ncpu} CPUs")
