/* SPDX-License-Identifier: MIT */
/*
 * uv_peer.c - the libuv peer: uv_queue_work on a loop, uv_run to finish.
 * libuv's pool size comes from UV_THREADPOOL_SIZE, set here to `workers`
 * before the pool starts (its default is 4).
 *   B1  n uv_queue_work of an empty work function from the loop thread
 *       (the uv_work_t records are allocated inside the timed region: libuv
 *       takes its per-task record from the caller), then uv_run.
 *   B4  n works sleeping `ms` ms on `workers` (default 100) threads.
 *   B5  queue one work and uv_run until its after-work callback; n times.
 * Prints as bench.h describes.
 * Usage: bench_uv B1|B4|B5 [workers=...] [n=...] [ms=10]
 */
#include "bench.h"

#include <uv.h>

static long sleep_ms = 10;

static void empty_work(uv_work_t *req)
{
    (void)req;
}

static void sleep_work(uv_work_t *req)
{
    (void)req;
    struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void after_work(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
}

/* Queues n works of fn and runs the loop until all are done. */
static void queue_and_run(uv_loop_t *loop, uv_work_cb fn, long n)
{
    uv_work_t *reqs = malloc(sizeof *reqs * (size_t)n);
    bench_check(reqs != NULL, "malloc");
    for (long i = 0; i < n; i++)
        bench_check(uv_queue_work(loop, &reqs[i], fn, after_work) == 0,
                    "uv_queue_work");
    bench_check(uv_run(loop, UV_RUN_DEFAULT) == 0, "uv_run");
    free(reqs);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *which = argc >= 2 ? argv[1] : "";
    int is_b4 = strcmp(which, "B4") == 0;
    int workers =
        (int)bench_arg(argc, argv, "workers", is_b4 ? 100 : bench_ncpu());
    long n = bench_arg(argc, argv, "n",
                       is_b4                      ? 1000
                       : strcmp(which, "B1") == 0 ? 1000000
                                                  : 100000);
    sleep_ms = bench_arg(argc, argv, "ms", 10);
    char size[32];
    snprintf(size, sizeof size, "%d", workers);
    setenv("UV_THREADPOOL_SIZE", size, 1);
    uv_loop_t loop;
    bench_check(uv_loop_init(&loop) == 0, "uv_loop_init");

    if (strcmp(which, "B1") == 0) {
        queue_and_run(&loop, empty_work, 64); /* starts the pool */
        int64_t t0 = bench_now_ns();
        queue_and_run(&loop, empty_work, n);
        int64_t t1 = bench_now_ns();
        bench_result("B1", "libuv", workers, "ns_per_task",
                     (double)(t1 - t0) / n);
        bench_result("B1", "libuv", workers, "time_s", (t1 - t0) / 1e9);
    } else if (is_b4) {
        int64_t t0 = bench_now_ns();
        queue_and_run(&loop, sleep_work, n);
        int64_t t1 = bench_now_ns();
        bench_result("B4", "libuv", workers, "time_s", (t1 - t0) / 1e9);
    } else if (strcmp(which, "B5") == 0) {
        int64_t *lat = malloc(sizeof *lat * (size_t)n);
        bench_check(lat != NULL, "malloc");
        uv_work_t req;
        for (long i = -1000; i < n; i++) { /* the first 1000: warm-up */
            int64_t t0 = bench_now_ns();
            bench_check(uv_queue_work(&loop, &req, empty_work, after_work) == 0,
                        "uv_queue_work");
            bench_check(uv_run(&loop, UV_RUN_DEFAULT) == 0, "uv_run");
            int64_t t1 = bench_now_ns();
            if (i >= 0)
                lat[i] = t1 - t0;
        }
        qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
        bench_result("B5", "libuv", workers, "median_us", lat[n / 2] / 1e3);
        bench_result("B5", "libuv", workers, "p99_us",
                     lat[(long)(n * 0.99)] / 1e3);
        free(lat);
    } else {
        fprintf(stderr, "usage: %s B1|B4|B5 [workers=N] [n=N] [ms=N]\n",
                argv[0]);
        return 2;
    }
    uv_loop_close(&loop);
    return 0;
}
