/* SPDX-License-Identifier: MIT */
/*
 * cf_b1.c - B1 throughput for cfutures: n empty tasks submitted from one
 * thread to a pool of `workers` threads, then all waited for.
 *   mode=futures  cf_submit with a future each; every future is kept, then
 *                 each is waited for (cf_future_result) and released.
 *   mode=forget   cf_submit with no future; cf_shutdown(wait) at the end.
 * The pool is warmed (its threads started) before the clock starts.
 * Prints ns_per_task and time_s.
 * Usage: bench_cf_b1 [mode=futures|forget] [workers=ncpu] [n=1000000]
 */
#include "bench.h"

#include <cfutures.h>

static void *empty_task(void *arg)
{
    return arg;
}

static void warm_up(cf_executor *ex, int workers)
{
    cf_future *fs[64];
    int k = workers * 4 < 64 ? workers * 4 : 64;
    for (int i = 0; i < k; i++)
        bench_check(cf_submit(ex, empty_task, NULL, &fs[i]) == 0, "cf_submit");
    for (int i = 0; i < k; i++) {
        cf_future_result(fs[i], CF_FOREVER, NULL);
        cf_future_release(fs[i]);
    }
}

int main(int argc, char **argv)
{
    const char *mode = bench_arg_str(argc, argv, "mode", "futures");
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    long n = bench_arg(argc, argv, "n", 1000000);
    int with_futures = strcmp(mode, "forget") != 0;
    cf_options opts = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");
    cf_future **fs = NULL;
    if (with_futures) {
        fs = malloc(sizeof *fs * (size_t)n);
        bench_check(fs != NULL, "malloc");
        bench_touch(fs, sizeof *fs * (size_t)n);
    }
    warm_up(ex, workers);

    int64_t t0 = bench_now_ns();
    if (with_futures) {
        for (long i = 0; i < n; i++)
            bench_check(cf_submit(ex, empty_task, NULL, &fs[i]) == 0,
                        "cf_submit");
        for (long i = 0; i < n; i++) {
            bench_check(cf_future_result(fs[i], CF_FOREVER, NULL) == 0,
                        "cf_future_result");
            cf_future_release(fs[i]);
        }
    } else {
        for (long i = 0; i < n; i++)
            bench_check(cf_submit(ex, empty_task, NULL, NULL) == 0,
                        "cf_submit");
        cf_shutdown(ex, true, false);
    }
    int64_t t1 = bench_now_ns();

    const char *impl = with_futures ? "cfutures-futures" : "cfutures-forget";
    bench_result("B1", impl, workers, "ns_per_task", (double)(t1 - t0) / n);
    bench_result("B1", impl, workers, "time_s", (t1 - t0) / 1e9);
    cf_executor_free(ex);
    free(fs);
    return 0;
}
