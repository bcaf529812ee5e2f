/* SPDX-License-Identifier: MIT */
/*
 * tbb_peer.cpp - the oneTBB peer. The thread count is set with
 * global_control (max_allowed_parallelism) and a task_arena of `workers`
 * slots; the calling thread takes one of them, as TBB intends.
 *   B1  impl=tbb: tbb::task_group, n empty run()s from one thread, one wait.
 *   B2  fib(n) with a spawn at every internal call:
 *       mode=invoke  tbb::parallel_invoke of the two calls   (tbb-invoke)
 *       mode=group   task_group: run(fib(n-1)), fib(n-2), wait (tbb-group)
 *   B3  tbb::parallel_for over blocked_range(0, n, 1), auto partitioner.
 *   B6  task_group with its one worker thread blocked: n pending run()s,
 *       VmRSS before and after divided by n.
 * Usage: bench_tbb B1|B2|B3|B6 [workers=ncpu] [n=...] [mode=invoke|group]
 */
#include "bench.h"

#include <atomic>
#include <thread>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_invoke.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

namespace
{

void warm_up(tbb::task_arena &arena)
{
    arena.execute([] { tbb::parallel_for(0, 10000, [](int) {}); });
}

int run_b1(tbb::task_arena &arena, int workers, long n)
{
    int64_t t0 = bench_now_ns();
    arena.execute([n] {
        tbb::task_group g;
        for (long i = 0; i < n; i++)
            g.run([] {});
        g.wait();
    });
    int64_t t1 = bench_now_ns();
    bench_result("B1", "tbb", workers, "ns_per_task", double(t1 - t0) / n);
    bench_result("B1", "tbb", workers, "time_s", (t1 - t0) / 1e9);
    return 0;
}

long fib_invoke(long n)
{
    if (n < 2)
        return n;
    long a, b;
    tbb::parallel_invoke([&] { a = fib_invoke(n - 1); },
                         [&] { b = fib_invoke(n - 2); });
    return a + b;
}

long fib_group(long n)
{
    if (n < 2)
        return n;
    long a, b;
    tbb::task_group g;
    g.run([&] { a = fib_group(n - 1); });
    b = fib_group(n - 2);
    g.wait();
    return a + b;
}

long fib_seq(long n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

int run_b2(tbb::task_arena &arena, int workers, long n, const char *mode)
{
    bool group = strcmp(mode, "group") == 0;
    long r = 0;
    int64_t t0 = bench_now_ns();
    arena.execute([&] { r = group ? fib_group(n) : fib_invoke(n); });
    int64_t t1 = bench_now_ns();
    bench_check(r == fib_seq(n), "fib result");
    const char *impl = group ? "tbb-group" : "tbb-invoke";
    double spawns = double(fib_seq(n + 1) - 1);
    bench_result("B2", impl, workers, "time_s", (t1 - t0) / 1e9);
    bench_result("B2", impl, workers, "ns_per_spawn", (t1 - t0) / spawns);
    return 0;
}

int run_b3(tbb::task_arena &arena, int workers, long n)
{
    uint64_t *out = static_cast<uint64_t *>(calloc(n, sizeof *out));
    bench_check(out != nullptr, "calloc");
    int64_t t0 = bench_now_ns();
    arena.execute([&] {
        tbb::parallel_for(tbb::blocked_range<long>(0, n, 1),
                          [&](const tbb::blocked_range<long> &r) {
                              for (long i = r.begin(); i != r.end(); ++i)
                                  out[i] = bench_work(uint64_t(i));
                          });
    });
    int64_t t1 = bench_now_ns();
    printf("checksum %llu\n", (unsigned long long)bench_fold(out, n));
    bench_result("B3", "tbb", workers, "time_s", (t1 - t0) / 1e9);
    free(out);
    return 0;
}

int run_b6(long n)
{
    std::atomic<bool> started{ false }, release{ false };
    tbb::task_group g;
    /* The main thread only queues in run(); the one worker thread takes
     * the blocker and holds on to it until released. */
    g.run([&] {
        started.store(true);
        while (!release.load())
            std::this_thread::sleep_for(std::chrono::microseconds(100));
    });
    while (!started.load())
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    long long rss0 = bench_status_bytes("VmRSS");
    long long hwm0 = bench_status_bytes("VmHWM");
    for (long i = 0; i < n; i++)
        g.run([] {});
    long long rss1 = bench_status_bytes("VmRSS");
    long long hwm1 = bench_status_bytes("VmHWM");
    release.store(true);
    g.wait();
    bench_result("B6", "tbb", 1, "bytes_per_task", double(rss1 - rss0) / n);
    bench_result("B6", "tbb", 1, "hwm_bytes_per_task", double(hwm1 - hwm0) / n);
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    const char *which = argc >= 2 ? argv[1] : "";
    int workers = int(bench_arg(argc, argv, "workers", bench_ncpu()));
    if (strcmp(which, "B6") == 0) {
        /* the main thread plus one worker thread */
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism, 2);
        return run_b6(bench_arg(argc, argv, "n", 1000000));
    }
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           workers);
    tbb::task_arena arena(workers);
    warm_up(arena);
    if (strcmp(which, "B1") == 0)
        return run_b1(arena, workers, bench_arg(argc, argv, "n", 1000000));
    if (strcmp(which, "B2") == 0)
        return run_b2(arena, workers, bench_arg(argc, argv, "n", 32),
                      bench_arg_str(argc, argv, "mode", "invoke"));
    if (strcmp(which, "B3") == 0)
        return run_b3(arena, workers, bench_arg(argc, argv, "n", 2000));
    fprintf(stderr, "usage: %s B1|B2|B3|B6 [workers=N] [n=N]\n", argv[0]);
    return 2;
}
