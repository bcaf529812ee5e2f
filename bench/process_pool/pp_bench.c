/* SPDX-License-Identifier: MIT */
/*
 * pp_bench.c - the cfutures process pool, measured the way pp_bench.py
 * measures Python's ProcessPoolExecutor (bench/process_pool/run.sh runs
 * both and prints the table). One run prints one "RESULT name value unit"
 * line per measurement:
 *
 *   startup_spawn, startup_fork  a new pool of W workers to the result of
 *                                its first tiny task, seconds
 *   map_cs1, map_cs100           cf_map_bytes_new over N tiny tasks (x + 1)
 *                                with chunksize 1 and 100, on a warm pool,
 *                                tasks per second (median of REPS runs)
 *   submit                       N cf_submit_bytes, then every result
 *   cpu_seq, cpu_pool, cpu_speedup
 *                                M tasks of about 1 ms of arithmetic each,
 *                                one after the other in this process (the
 *                                mean of a run before and one after the
 *                                pool's, so load that drifts hits both),
 *                                then mapped (chunksize 1) over W workers
 *
 * Usage: pp_bench [W [N [M]]]   (defaults 2, 10000, 2000)
 */
#include <cfutures.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "pp_bench: %s: %s\n", what, cf_strerror(rc));
    exit(1);
}

/* The tiny task: x + 1. */
static int tiny(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = 0;
    if (len == sizeof x)
        memcpy(&x, in, sizeof x);
    x += 1;
    return cf_buffer_append(out, &x, sizeof x);
}

/* The CPU task: `iters` rounds of xorshift, about 1 ms once calibrated. */
static uint64_t spin(uint64_t iters)
{
    uint64_t x = 88172645463325252ull;
    for (uint64_t i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static int cpu_task(const void *in, size_t len, cf_buffer *out)
{
    uint64_t iters = 0;
    if (len == sizeof iters)
        memcpy(&iters, in, sizeof iters);
    uint64_t x = spin(iters);
    return cf_buffer_append(out, &x, sizeof x);
}

/* Iterations of spin that take about 1 ms here. */
static uint64_t calibrate(void)
{
    uint64_t iters = 1000;
    for (;;) {
        double t0 = now();
        volatile uint64_t sink = spin(iters);
        (void)sink;
        double dt = now() - t0;
        if (dt > 0.02)
            return (uint64_t)((double)iters * 0.001 / dt);
        iters *= 2;
    }
}

#define REPS 3

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

static double sequential(size_t m, uint64_t iters)
{
    double t0 = now();
    for (size_t i = 0; i < m; i++) {
        volatile uint64_t sink = spin(iters);
        (void)sink;
    }
    return now() - t0;
}

static cf_executor *new_pool(int workers, cf_start_method how)
{
    cf_options o = { .max_workers = workers, .start_method = how };
    cf_executor *ex = cf_process_pool_new(&o);
    if (!ex) {
        perror("cf_process_pool_new");
        exit(1);
    }
    return ex;
}

static double startup(int workers, cf_start_method how)
{
    double t0 = now();
    cf_executor *ex = new_pool(workers, how);
    int64_t x = 1;
    cf_future *f;
    int rc = cf_submit_bytes(ex, tiny, &x, sizeof x, &f);
    if (!rc)
        rc = cf_future_bytes(f, -1, NULL, NULL);
    if (rc)
        die("startup", rc);
    double dt = now() - t0;
    cf_future_release(f);
    cf_executor_free(ex);
    return dt;
}

/* Maps fn over the n inputs at in[i] (8 bytes each); checks nothing but
 * success; returns seconds. */
static double map_all(cf_executor *ex, cf_bytes_fn fn, const void **ins,
                      const size_t *lens, size_t n, size_t chunksize)
{
    double t0 = now();
    cf_map *m;
    int rc = cf_map_bytes_new(&m, ex, fn, ins, lens, n, chunksize, 0, -1);
    if (rc)
        die("cf_map_bytes_new", rc);
    for (size_t i = 0; i < n; i++) {
        if ((rc = cf_map_bytes_next(m, NULL, NULL)) != 0)
            die("cf_map_bytes_next", rc);
    }
    cf_map_free(m);
    return now() - t0;
}

static double submit_all(cf_executor *ex, const int64_t *xs, size_t n)
{
    cf_future **fs = malloc(n * sizeof *fs);
    if (!fs)
        exit(1);
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        int rc = cf_submit_bytes(ex, tiny, &xs[i], sizeof xs[i], &fs[i]);
        if (rc)
            die("cf_submit_bytes", rc);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = cf_future_bytes(fs[i], -1, NULL, NULL);
        if (rc)
            die("result", rc);
        cf_future_release(fs[i]);
    }
    double dt = now() - t0;
    free(fs);
    return dt;
}

int main(int argc, char **argv)
{
    int workers = argc > 1 ? atoi(argv[1]) : 2;
    size_t n = argc > 2 ? (size_t)atol(argv[2]) : 10000;
    size_t m = argc > 3 ? (size_t)atol(argv[3]) : 2000;

    printf("RESULT startup_spawn %.6f s\n", startup(workers, CF_START_SPAWN));
    printf("RESULT startup_fork %.6f s\n", startup(workers, CF_START_FORK));

    int64_t *xs = malloc(n * sizeof *xs);
    const void **ins = malloc(n * sizeof *ins);
    size_t *lens = malloc(n * sizeof *lens);
    if (!xs || !ins || !lens)
        return 1;
    for (size_t i = 0; i < n; i++) {
        xs[i] = (int64_t)i;
        ins[i] = &xs[i];
        lens[i] = sizeof xs[i];
    }
    cf_executor *ex = new_pool(workers, CF_START_SPAWN);
    map_all(ex, tiny, ins, lens, n < 1000 ? n : 1000, 1); /* warm up */
    double t[3][REPS];
    for (int r = 0; r < REPS; r++) {
        t[0][r] = map_all(ex, tiny, ins, lens, n, 1);
        t[1][r] = map_all(ex, tiny, ins, lens, n, 100);
        t[2][r] = submit_all(ex, xs, n);
    }
    printf("RESULT map_cs1 %.1f tasks/s\n", (double)n / median(t[0], REPS));
    printf("RESULT map_cs100 %.1f tasks/s\n", (double)n / median(t[1], REPS));
    printf("RESULT submit %.1f tasks/s\n", (double)n / median(t[2], REPS));

    uint64_t iters = calibrate();
    double seq = sequential(m, iters);
    uint64_t *its = malloc(m * sizeof *its);
    const void **cins = malloc(m * sizeof *cins);
    size_t *clens = malloc(m * sizeof *clens);
    if (!its || !cins || !clens)
        return 1;
    for (size_t i = 0; i < m; i++) {
        its[i] = iters;
        cins[i] = &its[i];
        clens[i] = sizeof its[i];
    }
    double par = map_all(ex, cpu_task, cins, clens, m, 1);
    seq = (seq + sequential(m, iters)) / 2;
    printf("RESULT cpu_seq %.4f s\n", seq);
    printf("RESULT cpu_pool %.4f s\n", par);
    printf("RESULT cpu_speedup %.3f x\n", seq / par);
    cf_executor_free(ex);
    free(xs);
    free(ins);
    free(lens);
    free(its);
    free(cins);
    free(clens);
    return 0;
}
