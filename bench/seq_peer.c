/* SPDX-License-Identifier: MIT */
/*
 * seq_peer.c - the plain sequential baselines, one thread, no library.
 *   B2  fib(n) as the plain recursive function, as the compiler makes it
 *       (at -O3 gcc inlines it into itself and turns one of the two calls
 *       into a loop): impl sequential. mode=calls makes every call a real
 *       call, through a volatile function pointer, as a spawning version
 *       must: impl sequential-calls.                  Prints time_s.
 *   B3  n items of bench_work in a loop.              Prints time_s.
 * Usage: bench_seq B2 [n=32] [mode=plain|calls] | bench_seq B3 [n=2000]
 */
#include "bench.h"

static long fib(long n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static long fib_calls(long n);
/* volatile: the compiler cannot see through it, so every call is made */
static long (*volatile fib_calls_ptr)(long) = fib_calls;

static long fib_calls(long n)
{
    return n < 2 ? n : fib_calls_ptr(n - 1) + fib_calls_ptr(n - 2);
}

static int run_b2(int argc, char **argv)
{
    long n = bench_arg(argc, argv, "n", 32);
    int calls =
        strcmp(bench_arg_str(argc, argv, "mode", "plain"), "calls") == 0;
    const char *impl = calls ? "sequential-calls" : "sequential";
    /* through a volatile, so the call is not computed at compile time */
    volatile long vn = n;
    int64_t t0 = bench_now_ns();
    long r = calls ? fib_calls_ptr(vn) : fib(vn);
    int64_t t1 = bench_now_ns();
    printf("fib(%ld) = %ld\n", n, r);
    double spawns = (double)(fib(n + 1) - 1);
    bench_result("B2", impl, 1, "time_s", (t1 - t0) / 1e9);
    bench_result("B2", impl, 1, "ns_per_spawn", (double)(t1 - t0) / spawns);
    return 0;
}

static int run_b3(int argc, char **argv)
{
    size_t n = (size_t)bench_arg(argc, argv, "n", 2000);
    uint64_t *out = calloc(n, sizeof *out);
    bench_check(out != NULL, "calloc");
    int64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        out[i] = bench_work(i);
    int64_t t1 = bench_now_ns();
    printf("checksum %llu\n", (unsigned long long)bench_fold(out, n));
    bench_result("B3", "sequential", 1, "time_s", (t1 - t0) / 1e9);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "B2") == 0)
        return run_b2(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "B3") == 0)
        return run_b3(argc, argv);
    fprintf(stderr, "usage: %s B2|B3 [n=N]\n", argv[0]);
    return 2;
}
