/* SPDX-License-Identifier: MIT */
/*
 * cf_b1_group.c - B1 throughput for cfutures' task group, the nearest
 * equivalent of tbb::task_group: n empty tasks added with cf_group_submit
 * from one (non-worker) thread, then one cf_group_wait. No futures.
 * Usage: bench_cf_b1_group [workers=ncpu] [n=1000000]
 */
#include "bench.h"

#include <cfutures.h>

static void *empty_task(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    long n = bench_arg(argc, argv, "n", 1000000);
    cf_options opts = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");

    /* warm-up: start the workers */
    cf_group *g = cf_group_new(ex);
    bench_check(g != NULL, "cf_group_new");
    for (int i = 0; i < 64; i++)
        bench_check(cf_group_submit(g, empty_task, NULL) == 0,
                    "cf_group_submit");
    bench_check(cf_group_wait(g, CF_FOREVER) == 0, "cf_group_wait");
    cf_group_free(g);

    int64_t t0 = bench_now_ns();
    g = cf_group_new(ex);
    bench_check(g != NULL, "cf_group_new");
    for (long i = 0; i < n; i++)
        bench_check(cf_group_submit(g, empty_task, NULL) == 0,
                    "cf_group_submit");
    bench_check(cf_group_wait(g, CF_FOREVER) == 0, "cf_group_wait");
    cf_group_free(g);
    int64_t t1 = bench_now_ns();

    bench_result("B1", "cfutures-group", workers, "ns_per_task",
                 (double)(t1 - t0) / n);
    bench_result("B1", "cfutures-group", workers, "time_s", (t1 - t0) / 1e9);
    cf_executor_free(ex);
    return 0;
}
