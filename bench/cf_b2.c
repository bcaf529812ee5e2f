/* SPDX-License-Identifier: MIT */
/*
 * cf_b2.c - B2 fork-join for cfutures: fib(n) with a cf_join at every
 * internal call (no cutoff), on a pool of `workers` threads. The first
 * cf_join comes from the main thread (it hands the pair to the pool); all
 * the others run inside workers. A fib(20) warms the pool first.
 * Prints time_s and ns_per_spawn (spawns = internal calls = fib(n+1) - 1).
 * stats=1 also prints the pool's counters (steals, inlined, blocked,
 * spares) to stderr after the timed run.
 * Usage: bench_cf_b2 [workers=ncpu] [n=32] [stats=0]
 */
#include "bench.h"

#include <cfutures.h>

/* The pool every recursive call joins on: a benchmark-wide constant, set
 * once in main before any task runs. */
static cf_executor *pool;

static void *fib_task(void *arg)
{
    intptr_t n = (intptr_t)arg;
    void *a, *b;
    if (n < 2)
        return (void *)n;
    cf_join(pool, fib_task, (void *)(n - 1), &a, fib_task, (void *)(n - 2), &b);
    return (void *)((intptr_t)a + (intptr_t)b);
}

static intptr_t fib_par(intptr_t n)
{
    void *a, *b;
    if (n < 2)
        return n;
    bench_check(cf_join(pool, fib_task, (void *)(n - 1), &a, fib_task,
                        (void *)(n - 2), &b) == 0,
                "cf_join");
    return (intptr_t)a + (intptr_t)b;
}

static intptr_t fib_seq(intptr_t n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    intptr_t n = bench_arg(argc, argv, "n", 32);
    cf_options opts = { .max_workers = workers };
    pool = cf_thread_pool_new(&opts);
    bench_check(pool != NULL, "cf_thread_pool_new");
    bench_check(fib_par(20) == 6765, "warm-up fib(20)");

    int64_t t0 = bench_now_ns();
    intptr_t r = fib_par(n);
    int64_t t1 = bench_now_ns();

    bench_check(r == fib_seq(n), "fib result");
    double spawns = (double)(fib_seq(n + 1) - 1);
    bench_result("B2", "cfutures", workers, "time_s", (t1 - t0) / 1e9);
    bench_result("B2", "cfutures", workers, "ns_per_spawn",
                 (double)(t1 - t0) / spawns);
    if (bench_arg(argc, argv, "stats", 0)) {
        cf_stats st;
        if (cf_executor_stats(pool, &st) == 0)
            fprintf(stderr,
                    "stats: workers %zu steals %zu inlined %zu blocked %zu "
                    "spares %zu\n",
                    st.workers, st.steals, st.inlined, st.blocked, st.spares);
    }
    cf_executor_free(pool);
    return 0;
}
