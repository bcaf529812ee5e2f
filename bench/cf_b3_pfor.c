/* SPDX-License-Identifier: MIT */
/*
 * cf_b3_pfor.c - B3 CPU-bound map for cfutures with cf_parallel_for:
 * n items of bench_work (about 1 ms each) on a pool of `workers` threads
 * (default ncpu), grain 1 (grain=0 picks the adaptive grain). The pool is
 * warmed first. Prints time_s; the runner divides the sequential time by it.
 * Usage: bench_cf_b3_pfor [workers=ncpu] [n=2000] [grain=1]
 */
#include "bench.h"

#include <cfutures.h>

static void body(size_t lo, size_t hi, void *ctx)
{
    uint64_t *out = ctx;
    for (size_t i = lo; i < hi; i++)
        out[i] = bench_work(i);
}

static void warm_body(size_t lo, size_t hi, void *ctx)
{
    (void)lo;
    (void)hi;
    (void)ctx;
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    size_t n = (size_t)bench_arg(argc, argv, "n", 2000);
    size_t grain = (size_t)bench_arg(argc, argv, "grain", 1);
    cf_options opts = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");
    uint64_t *out = calloc(n, sizeof *out);
    bench_check(out != NULL, "calloc");
    bench_check(cf_parallel_for(ex, 0, 1000, 1, warm_body, NULL) == 0,
                "warm-up");

    int64_t t0 = bench_now_ns();
    bench_check(cf_parallel_for(ex, 0, n, grain, body, out) == 0,
                "cf_parallel_for");
    int64_t t1 = bench_now_ns();

    printf("checksum %llu\n", (unsigned long long)bench_fold(out, n));
    bench_result("B3", "cfutures-parallel_for", workers, "time_s",
                 (t1 - t0) / 1e9);
    cf_executor_free(ex);
    free(out);
    return 0;
}
