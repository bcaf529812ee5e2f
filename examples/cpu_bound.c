/* SPDX-License-Identifier: MIT */
/*
 * cpu_bound.c - threads for CPU-bound work: every core at once.
 *
 * Counts the primes below 6 000 000 by trial division, in 24 ranges, first
 * one range after another, then on a pool of cf_cpu_count() threads. The
 * counts must match; the time drops by up to the number of cores. In
 * (default-build) CPython the same ThreadPoolExecutor code gives no speedup,
 * because the GIL lets one thread at a time run Python code:
 *     with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
 *         counts = list(pool.map(count_primes, ranges))
 */
#include "example.h"

enum { N_RANGES = 24 };

static bool is_prime(uint64_t n)
{
    if (n < 2 || n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* A pure function of its range (the type is in example.h, as `cfutures
 * demo` times this function too): the number of primes in it. */
void *count_primes(void *arg)
{
    const range *r = arg;
    uintptr_t count = 0;
    for (uint64_t n = r->lo; n < r->hi; n++)
        count += is_prime(n);
    return (void *)count;
}

int run_cpu_bound(bool quick, timing *out)
{
    uint64_t limit = quick ? 2000000 : 6000000;
    range ranges[N_RANGES];
    uintptr_t seq[N_RANGES], par[N_RANGES], total = 0;
    for (uint64_t i = 0; i < N_RANGES; i++)
        ranges[i] = (range){ limit * i / N_RANGES, limit * (i + 1) / N_RANGES };

    double t0 = now();
    for (int i = 0; i < N_RANGES; i++)
        seq[i] = (uintptr_t)count_primes(&ranges[i]);
    double t_seq = now() - t0;

    int ncpu = cf_cpu_count();
    t0 = now();
    cf_options opts = { .max_workers = ncpu, .name_prefix = "cpu" };
    cf_executor *pool =
        check_ptr(cf_thread_pool_new(&opts), "cf_thread_pool_new");
    cf_future *fs[N_RANGES];
    for (int i = 0; i < N_RANGES; i++)
        check(cf_submit(pool, count_primes, &ranges[i], &fs[i]), "cf_submit");
    int mismatches = 0;
    for (int i = 0; i < N_RANGES; i++) {
        void *result;
        check(cf_future_result(fs[i], CF_FOREVER, &result), "cf_future_result");
        par[i] = (uintptr_t)result;
        mismatches += par[i] != seq[i];
        total += par[i];
        cf_future_release(fs[i]);
    }
    cf_executor_free(pool);
    double t_pool = now() - t0;

    printf("  primes below %llu: %llu (%s)\n", (unsigned long long)limit,
           (unsigned long long)total, mismatches ? "MISMATCH" : "both agree");
    printf("  sequential:            %6.3f s\n", t_seq);
    printf("  thread pool (%2d thr.): %6.3f s   speedup %.2fx on %d CPUs\n",
           ncpu, t_pool, t_seq / t_pool, ncpu);
    if (out)
        *out = (timing){ t_seq, t_pool, ncpu };
    return mismatches == 0 ? 0 : 1;
}

#ifndef CF_EXAMPLE_NO_MAIN
int main(int argc, char **argv)
{
    return run_cpu_bound(quick_flag(argc, argv), NULL) == 0 ? EXIT_SUCCESS
                                                            : EXIT_FAILURE;
}
#endif
