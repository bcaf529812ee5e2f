/* SPDX-License-Identifier: MIT */
/*
 * cf_b7.c - B7 waits inside tasks for cfutures: n tasks, submitted from
 * the main thread to a pool of `workers` threads, each submits a child that
 * blocks for block_us (nanosleep) and waits for it.
 *   mode=inline:  an untimed wait; the child has not started, so the wait
 *                 runs it inline (docs/design.md, "The wait protocol").
 *   mode=blocked: a timed wait (60 s), which never runs anything inline:
 *                 the parent blocks, and the pool wakes or starts a spare
 *                 worker in its place - the cost of blocking and
 *                 compensating.
 * Either way `workers` children sleep at once, so the ideal time is
 * n * sleep / workers, sleep being what one nanosleep of block_us really
 * takes here (measured first: timer slack adds tens of microseconds). In
 * blocked mode more than `workers` children may sleep at once for a while
 * (a parent that wakes up runs beside the spare that stood in for it), so
 * it can beat that ideal. Prints time_s, overhead_us (per task, over the
 * ideal), the pool's counters spares and blocked, and wait_us: the same n
 * tasks with children that return at once, per task - what a wait costs
 * in this mode, the sleeps left out.
 * Usage: bench_cf_b7 [workers=2] [n=10000] [block_us=1000] [mode=inline]
 */
#include "bench.h"

#include <cfutures.h>
#include <string.h>
#include <time.h>

static cf_executor *pool;
static long block_us;
static double parent_timeout;

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void *child(void *arg)
{
    if (block_us > 0)
        sleep_us(block_us);
    return arg;
}

static void *parent(void *arg)
{
    cf_future *f = NULL;
    bench_check(cf_submit(pool, child, arg, &f) == 0, "cf_submit (child)");
    void *r = NULL;
    bench_check(cf_future_result(f, parent_timeout, &r) == 0, "child result");
    cf_future_release(f);
    return r;
}

/* n parents from this thread, all awaited: seconds. */
static double run(cf_future **fs, long n)
{
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        bench_check(cf_submit(pool, parent, (void *)(intptr_t)i, &fs[i]) == 0,
                    "cf_submit");
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        bench_check(cf_future_result(fs[i], CF_FOREVER, &r) == 0 &&
                        r == (void *)(intptr_t)i,
                    "result");
    }
    int64_t t1 = bench_now_ns();
    for (long i = 0; i < n; i++)
        cf_future_release(fs[i]);
    return (double)(t1 - t0) / 1e9;
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", 2);
    long n = bench_arg(argc, argv, "n", 10000);
    block_us = bench_arg(argc, argv, "block_us", 1000);
    const char *mode = bench_arg_str(argc, argv, "mode", "inline");
    bool blocked = strcmp(mode, "blocked") == 0;
    bench_check(blocked || strcmp(mode, "inline") == 0, "mode=inline|blocked");
    parent_timeout = blocked ? 60.0 : CF_FOREVER;
    const char *impl = blocked ? "cfutures-blocked" : "cfutures-inline";
    cf_options opts = { .max_workers = workers };
    pool = cf_thread_pool_new(&opts);
    bench_check(pool != NULL, "cf_thread_pool_new");
    cf_future **fs = malloc(sizeof *fs * (size_t)n);
    bench_check(fs != NULL, "malloc");
    int64_t c0 = bench_now_ns();
    for (int i = 0; i < 100; i++)
        sleep_us(block_us);
    double sleep_s = (double)(bench_now_ns() - c0) / 1e9 / 100;

    double took = run(fs, n);
    cf_stats st;
    bench_check(cf_executor_stats(pool, &st) == 0, "cf_executor_stats");
    long blocking = block_us;
    block_us = 0;
    double empty = run(fs, n);
    block_us = blocking;

    double ideal = (double)n * sleep_s / workers;
    bench_result("B7", impl, workers, "time_s", took);
    bench_result("B7", impl, workers, "overhead_us",
                 (took - ideal) / (double)n * 1e6);
    bench_result("B7", impl, workers, "spares", (double)st.spares);
    bench_result("B7", impl, workers, "blocked", (double)st.blocked);
    bench_result("B7", impl, workers, "wait_us", empty / (double)n * 1e6);
    free(fs);
    cf_executor_free(pool);
    return 0;
}
