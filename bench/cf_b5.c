/* SPDX-License-Identifier: MIT */
/*
 * cf_b5.c - B5 latency for cfutures: on an otherwise idle pool of
 * `workers` threads, submit one empty task and wait for its result, n
 * times; each round trip is timed on its own. Prints the median and the
 * 99th percentile in microseconds.
 * Usage: bench_cf_b5 [workers=ncpu] [n=100000]
 */
#include "bench.h"

#include <cfutures.h>

static void *empty_task(void *arg)
{
    return arg;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    long n = bench_arg(argc, argv, "n", 100000);
    cf_options opts = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");
    int64_t *lat = malloc(sizeof *lat * (size_t)n);
    bench_check(lat != NULL, "malloc");

    for (long i = -1000; i < n; i++) { /* the first 1000: warm-up */
        cf_future *f;
        int64_t t0 = bench_now_ns();
        bench_check(cf_submit(ex, empty_task, NULL, &f) == 0, "cf_submit");
        bench_check(cf_future_result(f, CF_FOREVER, NULL) == 0,
                    "cf_future_result");
        int64_t t1 = bench_now_ns();
        cf_future_release(f);
        if (i >= 0)
            lat[i] = t1 - t0;
    }

    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    bench_result("B5", "cfutures", workers, "median_us", lat[n / 2] / 1e3);
    bench_result("B5", "cfutures", workers, "p99_us",
                 lat[(long)(n * 0.99)] / 1e3);
    cf_executor_free(ex);
    free(lat);
    return 0;
}
