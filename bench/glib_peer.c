/* SPDX-License-Identifier: MIT */
/*
 * glib_peer.c - the GLib peer: GThreadPool (non-exclusive threads).
 *   B1  n g_thread_pool_push of an empty task from one thread, then
 *       g_thread_pool_free(pool, FALSE, TRUE), which waits for them all.
 *   B4  n tasks sleeping `ms` ms on a pool of `workers` (default 100) threads.
 *   B5  push one task that signals a GCond, wait for it; n times.
 * Prints as bench.h describes.
 * Usage: bench_glib B1|B4|B5 [workers=...] [n=...] [ms=10]
 */
#include "bench.h"

#include <glib.h>

static gint warm_count;

static void empty_task(gpointer data, gpointer user)
{
    (void)data;
    (void)user;
}

static void count_task(gpointer data, gpointer user)
{
    (void)data;
    (void)user;
    g_atomic_int_inc(&warm_count);
}

static GThreadPool *new_pool(GFunc fn, gpointer user, int workers)
{
    GError *err = NULL;
    GThreadPool *p = g_thread_pool_new(fn, user, workers, FALSE, &err);
    bench_check(p != NULL, "g_thread_pool_new");
    return p;
}

static int run_b1(int workers, long n)
{
    /* warm-up: start the threads on a first pool (they are shared) */
    GThreadPool *warm = new_pool(count_task, NULL, workers);
    for (int i = 0; i < 64; i++)
        g_thread_pool_push(warm, GINT_TO_POINTER(1), NULL);
    g_thread_pool_free(warm, FALSE, TRUE);

    GThreadPool *p = new_pool(empty_task, NULL, workers);
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        g_thread_pool_push(p, GINT_TO_POINTER(1), NULL);
    g_thread_pool_free(p, FALSE, TRUE);
    int64_t t1 = bench_now_ns();
    bench_result("B1", "glib", workers, "ns_per_task", (double)(t1 - t0) / n);
    bench_result("B1", "glib", workers, "time_s", (t1 - t0) / 1e9);
    return 0;
}

static void sleep_task(gpointer data, gpointer user)
{
    (void)data;
    g_usleep((gulong)GPOINTER_TO_INT(user) * 1000);
}

static int run_b4(int workers, long n, long ms)
{
    GThreadPool *p = new_pool(sleep_task, GINT_TO_POINTER((int)ms), workers);
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        g_thread_pool_push(p, GINT_TO_POINTER(1), NULL);
    g_thread_pool_free(p, FALSE, TRUE);
    int64_t t1 = bench_now_ns();
    bench_result("B4", "glib", workers, "time_s", (t1 - t0) / 1e9);
    return 0;
}

typedef struct done_signal {
    GMutex mu;
    GCond cond;
    int done;
} done_signal;

static void signal_task(gpointer data, gpointer user)
{
    done_signal *d = user;
    (void)data;
    g_mutex_lock(&d->mu);
    d->done = 1;
    g_cond_signal(&d->cond);
    g_mutex_unlock(&d->mu);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int run_b5(int workers, long n)
{
    done_signal d;
    g_mutex_init(&d.mu);
    g_cond_init(&d.cond);
    GThreadPool *p = new_pool(signal_task, &d, workers);
    int64_t *lat = malloc(sizeof *lat * (size_t)n);
    bench_check(lat != NULL, "malloc");
    for (long i = -1000; i < n; i++) { /* the first 1000: warm-up */
        int64_t t0 = bench_now_ns();
        d.done = 0;
        g_thread_pool_push(p, GINT_TO_POINTER(1), NULL);
        g_mutex_lock(&d.mu);
        while (!d.done)
            g_cond_wait(&d.cond, &d.mu);
        g_mutex_unlock(&d.mu);
        int64_t t1 = bench_now_ns();
        if (i >= 0)
            lat[i] = t1 - t0;
    }
    g_thread_pool_free(p, FALSE, TRUE);
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    bench_result("B5", "glib", workers, "median_us", lat[n / 2] / 1e3);
    bench_result("B5", "glib", workers, "p99_us", lat[(long)(n * 0.99)] / 1e3);
    free(lat);
    g_mutex_clear(&d.mu);
    g_cond_clear(&d.cond);
    return 0;
}

int main(int argc, char **argv)
{
    const char *which = argc >= 2 ? argv[1] : "";
    if (strcmp(which, "B1") == 0)
        return run_b1((int)bench_arg(argc, argv, "workers", bench_ncpu()),
                      bench_arg(argc, argv, "n", 1000000));
    if (strcmp(which, "B4") == 0)
        return run_b4((int)bench_arg(argc, argv, "workers", 100),
                      bench_arg(argc, argv, "n", 1000),
                      bench_arg(argc, argv, "ms", 10));
    if (strcmp(which, "B5") == 0)
        return run_b5((int)bench_arg(argc, argv, "workers", bench_ncpu()),
                      bench_arg(argc, argv, "n", 100000));
    fprintf(stderr, "usage: %s B1|B4|B5 [workers=N] [n=N] [ms=N]\n", argv[0]);
    return 2;
}
