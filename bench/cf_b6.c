/* SPDX-License-Identifier: MIT */
/*
 * cf_b6.c - B6 memory for cfutures: the one worker of the pool is blocked
 * on an event, then n tasks are submitted, each keeping its future, so all
 * n are pending at once. VmRSS before and after the submissions, divided by
 * n, is the cost of a pending task with its future (the caller's array of
 * future pointers is allocated and touched before the first reading). Then
 * the worker is released and everything is waited for and released.
 * Prints bytes_per_task (VmRSS) and hwm_bytes_per_task (VmHWM).
 * Usage: bench_cf_b6 [n=1000000]
 */
#include "bench.h"

#include <cfutures.h>

static void *empty_task(void *arg)
{
    return arg;
}

typedef struct gate {
    cf_event *started, *release;
} gate;

static void *blocker(void *arg)
{
    gate *g = arg;
    cf_event_set(g->started);
    cf_event_wait(g->release, CF_FOREVER);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, "n", 1000000);
    cf_options opts = { .max_workers = 1 };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");
    cf_future **fs = malloc(sizeof *fs * (size_t)n);
    bench_check(fs != NULL, "malloc");
    bench_touch(fs, sizeof *fs * (size_t)n);
    gate g = { cf_event_new(), cf_event_new() };
    bench_check(g.started && g.release, "cf_event_new");
    cf_future *fb;
    bench_check(cf_submit(ex, blocker, &g, &fb) == 0, "cf_submit");
    cf_event_wait(g.started, CF_FOREVER);

    long long rss0 = bench_status_bytes("VmRSS");
    long long hwm0 = bench_status_bytes("VmHWM");
    for (long i = 0; i < n; i++)
        bench_check(cf_submit(ex, empty_task, NULL, &fs[i]) == 0, "cf_submit");
    long long rss1 = bench_status_bytes("VmRSS");
    long long hwm1 = bench_status_bytes("VmHWM");

    cf_event_set(g.release);
    bench_check(cf_wait(fs, (size_t)n, CF_FOREVER, CF_ALL_COMPLETED) == 0,
                "cf_wait");
    for (long i = 0; i < n; i++)
        cf_future_release(fs[i]);
    cf_future_release(fb);
    bench_result("B6", "cfutures", 1, "bytes_per_task",
                 (double)(rss1 - rss0) / n);
    bench_result("B6", "cfutures", 1, "hwm_bytes_per_task",
                 (double)(hwm1 - hwm0) / n);
    cf_executor_free(ex);
    cf_event_free(g.started);
    cf_event_free(g.release);
    free(fs);
    return 0;
}
