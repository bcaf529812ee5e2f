/* SPDX-License-Identifier: MIT */
/*
 * processes.c - CPU-bound work on worker processes, next to threads.
 *
 * One bytes task (a cf_bytes_fn: bytes in, bytes out) counts the primes in
 * a range. The same function runs on a thread pool and on a process pool;
 * only the constructor differs. The program times both, and the round trip
 * of a tiny task on each, which is what a process costs. Then a process
 * pool shows what threads cannot give: a task that crashes its worker fails
 * only its own future (CF_EBROKEN), a task that hangs is killed at
 * task_timeout (CF_ETIME), and the other tasks complete. In Python:
 *     with ProcessPoolExecutor() as pool:
 *         counts = list(pool.map(count_primes, ranges))
 */
#include "example.h"

#include <signal.h>

enum { N_RANGES = 24, N_TINY = 1000 };

static bool is_prime(uint64_t n)
{
    if (n < 2 || n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* A bytes task: the input is a range (two uint64_t), the result the number
 * of primes in it (one uint64_t). Plain bytes, so it can cross to another
 * process; a pointer could not. */
static int prime_count(const void *in, size_t len, cf_buffer *out)
{
    range r;
    if (len != sizeof r) {
        cf_fail(CF_EINVAL, "a range is %zu bytes, not %zu", sizeof r, len);
        return CF_EINVAL;
    }
    memcpy(&r, in, sizeof r);
    uint64_t count = 0;
    for (uint64_t n = r.lo; n < r.hi; n++)
        count += is_prime(n);
    return cf_buffer_append(out, &count, sizeof count);
}

/* Runs every range on ex and returns the total. The futures' results are
 * bytes owned by each future: copy them out before the release. */
static uint64_t count_on(cf_executor *ex, const range *ranges)
{
    cf_future *fs[N_RANGES];
    for (int i = 0; i < N_RANGES; i++)
        check(cf_submit_bytes(ex, prime_count, &ranges[i], sizeof ranges[i],
                              &fs[i]),
              "cf_submit_bytes");
    uint64_t total = 0;
    for (int i = 0; i < N_RANGES; i++) {
        const void *data;
        size_t len;
        check(cf_future_bytes(fs[i], CF_FOREVER, &data, &len),
              "cf_future_bytes");
        uint64_t count;
        memcpy(&count, data, sizeof count);
        total += count;
        cf_future_release(fs[i]);
    }
    return total;
}

/* Seconds per task for tiny tasks submitted one at a time, each waited for:
 * the cost of handing a task over and getting its answer back. */
static double round_trip(cf_executor *ex)
{
    range empty = { 0, 0 };
    double t0 = now();
    for (int i = 0; i < N_TINY; i++) {
        cf_future *f;
        check(cf_submit_bytes(ex, prime_count, &empty, sizeof empty, &f),
              "cf_submit_bytes");
        check(cf_future_bytes(f, CF_FOREVER, NULL, NULL), "cf_future_bytes");
        cf_future_release(f);
    }
    return (now() - t0) / N_TINY;
}

/* Times one engine: the start-up (the pool made, its first worker started,
 * one tiny task answered), the tiny round trip, then the prime count. */
static void run_engine(const char *name, cf_executor *ex, const range *ranges,
                       uint64_t expected, double t_new)
{
    range empty = { 0, 0 };
    cf_future *f;
    check(cf_submit_bytes(ex, prime_count, &empty, sizeof empty, &f),
          "cf_submit_bytes");
    check(cf_future_bytes(f, CF_FOREVER, NULL, NULL), "cf_future_bytes");
    cf_future_release(f);
    double t_first = now() - t_new;
    double t_tiny = round_trip(ex);
    double t0 = now();
    uint64_t total = count_on(ex, ranges);
    double t_count = now() - t0;
    printf("  %-13s %8.2f ms %9.1f us %9.3f s   %s\n", name, t_first * 1e3,
           t_tiny * 1e6, t_count, total == expected ? "same count" : "WRONG");
    if (total != expected)
        exit(EXIT_FAILURE);
}

/* For the second part: the input says what the task does. */
static int risky(const void *in, size_t len, cf_buffer *out)
{
    char what = len > 0 ? *(const char *)in : '?';
    if (what == 'c')
        raise(SIGSEGV); /* stands for a bug: a wild pointer, a double free */
    if (what == 'h')
        for (;;)
            sleep_s(1); /* stands for a deadlock or an endless loop */
    return cf_buffer_append(out, "fine", 4);
}

static int run_processes(bool quick)
{
    uint64_t limit = quick ? 2000000 : 6000000;
    range ranges[N_RANGES];
    for (uint64_t i = 0; i < N_RANGES; i++)
        ranges[i] = (range){ limit * i / N_RANGES, limit * (i + 1) / N_RANGES };

    double t0 = now();
    uint64_t expected = 0;
    for (uint64_t n = 0; n < limit; n++)
        expected += is_prime(n);
    double t_seq = now() - t0;

    int ncpu = cf_cpu_count();
    printf("  primes below %llu: %llu; one after another: %.3f s\n",
           (unsigned long long)limit, (unsigned long long)expected, t_seq);
    printf("  %d workers       start-up  tiny task   %d ranges\n", ncpu,
           N_RANGES);

    /* The same task on both engines: only the constructor differs. */
    cf_options opts = { .max_workers = ncpu };
    t0 = now();
    cf_executor *threads =
        check_ptr(cf_thread_pool_new(&opts), "cf_thread_pool_new");
    run_engine("thread pool", threads, ranges, expected, t0);
    cf_executor_free(threads);

    t0 = now();
    cf_executor *procs =
        check_ptr(cf_process_pool_new(&opts), "cf_process_pool_new");
    run_engine("process pool", procs, ranges, expected, t0);
    cf_executor_free(procs);

    /* A crash and a hang, among tasks that work. */
    cf_options safe = { .max_workers = 2, .task_timeout = 0.5 };
    cf_executor *pool =
        check_ptr(cf_process_pool_new(&safe), "cf_process_pool_new");
    const char *plan = "ochoo"; /* ok, crash, hang, ok, ok */
    enum { N_PLAN = 5 };
    cf_future *fs[N_PLAN];
    for (int i = 0; i < N_PLAN; i++)
        check(cf_submit_bytes(pool, risky, &plan[i], 1, &fs[i]),
              "cf_submit_bytes");
    int surprises = 0;
    for (int i = 0; i < N_PLAN; i++) {
        const void *data;
        size_t len;
        const char *why;
        int rc = cf_future_bytes(fs[i], CF_FOREVER, &data, &len);
        if (rc == 0) {
            printf("  task %d: %.*s\n", i, (int)len, (const char *)data);
        } else {
            cf_future_exception(fs[i], CF_FOREVER, &why);
            printf("  task %d failed: %s\n    %s\n", i, cf_strerror(rc), why);
        }
        int want = plan[i] == 'c' ? CF_EBROKEN : plan[i] == 'h' ? CF_ETIME : 0;
        surprises += rc != want;
        cf_future_release(fs[i]);
    }
    /* The pool goes on: the next task gets a worker, a new one if need be. */
    cf_future *f;
    check(cf_submit_bytes(pool, risky, "o", 1, &f), "cf_submit_bytes");
    check(cf_future_bytes(f, CF_FOREVER, NULL, NULL), "cf_future_bytes");
    cf_future_release(f);
    cf_stats st;
    check(cf_executor_stats(pool, &st), "cf_executor_stats");
    printf("  one more task after the failures: fine; %zu completed, %zu "
           "failed\n",
           st.completed, st.failed);
    cf_executor_free(pool);
    return surprises == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    return run_processes(quick_flag(argc, argv)) == 0 ? EXIT_SUCCESS
                                                      : EXIT_FAILURE;
}
