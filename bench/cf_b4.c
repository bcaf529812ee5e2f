/* SPDX-License-Identifier: MIT */
/*
 * cf_b4.c - B4 I/O-bound for cfutures: n tasks that each sleep `ms`
 * milliseconds, submitted with futures to a fresh pool of `workers`
 * threads (started lazily, as Python's are), then all waited for. The ideal
 * wall time is ceil(n / workers) * ms: 100 ms for the defaults.
 * Prints time_s.
 * Usage: bench_cf_b4 [workers=100] [n=1000] [ms=10]
 */
#include "bench.h"

#include <cfutures.h>

static long sleep_ms = 10;

static void *sleeper(void *arg)
{
    struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
    return arg;
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", 100);
    long n = bench_arg(argc, argv, "n", 1000);
    sleep_ms = bench_arg(argc, argv, "ms", 10);
    cf_options opts = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");
    cf_future **fs = calloc((size_t)n, sizeof *fs);
    bench_check(fs != NULL, "calloc");

    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        bench_check(cf_submit(ex, sleeper, NULL, &fs[i]) == 0, "cf_submit");
    bench_check(cf_wait(fs, (size_t)n, CF_FOREVER, CF_ALL_COMPLETED) == 0,
                "cf_wait");
    int64_t t1 = bench_now_ns();

    for (long i = 0; i < n; i++)
        cf_future_release(fs[i]);
    bench_result("B4", "cfutures", workers, "time_s", (t1 - t0) / 1e9);
    cf_executor_free(ex);
    free(fs);
    return 0;
}
