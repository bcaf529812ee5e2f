/* SPDX-License-Identifier: MIT */
/*
 * omp_peer.c - the OpenMP peer (gcc's libgomp), tasks and loops.
 *   B1  one thread (omp single) creates n empty `omp task`s, then taskwait.
 *       libgomp may run a task at once in the creating thread when too many
 *       are queued (its throttle); that is its nearest equivalent.
 *   B2  fib(n) with an `omp task` at every internal call plus taskwait,
 *       inside parallel/single, omp_set_num_threads(workers).
 *   B3  `omp parallel for schedule(dynamic, 1)` over n items of bench_work.
 * Each warms the thread team first. Prints as bench.h describes.
 * Usage: bench_omp B1|B2|B3 [workers=ncpu] [n=...]
 */
#include "bench.h"

#include <omp.h>

static void warm_up(int workers)
{
    int count = 0;
#pragma omp parallel num_threads(workers)
    {
#pragma omp atomic
        count++;
    }
    bench_check(count == workers, "warm-up team size");
}

/* The empty task's body: a call the compiler cannot drop, or it would
 * remove the whole task. */
__attribute__((noinline)) static void empty_body(void)
{
    __asm__ volatile("" ::: "memory");
}

static int run_b1(int workers, long n)
{
    int64_t t0 = bench_now_ns();
#pragma omp parallel num_threads(workers)
    {
#pragma omp single
        {
            for (long i = 0; i < n; i++) {
#pragma omp task
                empty_body();
            }
#pragma omp taskwait
        }
    }
    int64_t t1 = bench_now_ns();
    bench_result("B1", "openmp", workers, "ns_per_task", (double)(t1 - t0) / n);
    bench_result("B1", "openmp", workers, "time_s", (t1 - t0) / 1e9);
    return 0;
}

static long fib_task(long n)
{
    long a, b;
    if (n < 2)
        return n;
#pragma omp task shared(a)
    a = fib_task(n - 1);
    b = fib_task(n - 2);
#pragma omp taskwait
    return a + b;
}

static long fib_seq(long n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

static int run_b2(int workers, long n)
{
    long r = 0;
    omp_set_num_threads(workers);
    int64_t t0 = bench_now_ns();
#pragma omp parallel
    {
#pragma omp single
        r = fib_task(n);
    }
    int64_t t1 = bench_now_ns();
    bench_check(r == fib_seq(n), "fib result");
    double spawns = (double)(fib_seq(n + 1) - 1);
    bench_result("B2", "openmp", workers, "time_s", (t1 - t0) / 1e9);
    bench_result("B2", "openmp", workers, "ns_per_spawn",
                 (double)(t1 - t0) / spawns);
    return 0;
}

static int run_b3(int workers, long n)
{
    uint64_t *out = calloc((size_t)n, sizeof *out);
    bench_check(out != NULL, "calloc");
    int64_t t0 = bench_now_ns();
#pragma omp parallel for schedule(dynamic, 1) num_threads(workers)
    for (long i = 0; i < n; i++)
        out[i] = bench_work((uint64_t)i);
    int64_t t1 = bench_now_ns();
    printf("checksum %llu\n", (unsigned long long)bench_fold(out, (size_t)n));
    bench_result("B3", "openmp", workers, "time_s", (t1 - t0) / 1e9);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *which = argc >= 2 ? argv[1] : "";
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    warm_up(workers);
    if (strcmp(which, "B1") == 0)
        return run_b1(workers, bench_arg(argc, argv, "n", 1000000));
    if (strcmp(which, "B2") == 0)
        return run_b2(workers, bench_arg(argc, argv, "n", 32));
    if (strcmp(which, "B3") == 0)
        return run_b3(workers, bench_arg(argc, argv, "n", 2000));
    fprintf(stderr, "usage: %s B1|B2|B3 [workers=N] [n=N]\n", argv[0]);
    return 2;
}
