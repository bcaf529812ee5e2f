/* SPDX-License-Identifier: MIT */
/*
 * fork_join.c - fork-join on the work-stealing scheduler of a thread pool.
 *
 * Four short lessons on one pool of cf_cpu_count() threads:
 *   - cf_join: the recursive Fibonacci, each call split in two;
 *   - cf_parallel_for: a loop over a range, split for idle workers to steal;
 *   - a task group: many tasks, one wait, the first failure cancels the rest;
 *   - nested waits: a task that submits to its own pool and waits, 50 deep,
 *     on a pool of one worker, which would deadlock Python's
 *     ThreadPoolExecutor(max_workers=1).
 */
#include "example.h"

enum { CUTOFF = 20, N_ITEMS = 20, BAD_ITEM = 5, DEPTH = 50 };

static bool is_prime(uint64_t n)
{
    if (n < 2 || n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* ---- cf_join --------------------------------------------------------- */

typedef struct fib_arg {
    cf_executor *pool;
    int n;
} fib_arg;

static long fib_seq(int n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

/* fib(n) with its two calls under cf_join: this worker runs the first, the
 * second waits on its deque for an idle worker to steal it. Below CUTOFF a
 * call is too small to be worth splitting. */
static void *fib(void *arg)
{
    const fib_arg *a = arg;
    if (a->n < CUTOFF)
        return (void *)(intptr_t)fib_seq(a->n);
    fib_arg left = { a->pool, a->n - 1 }, right = { a->pool, a->n - 2 };
    void *x, *y;
    check(cf_join(a->pool, fib, &left, &x, fib, &right, &y), "cf_join");
    return (void *)((intptr_t)x + (intptr_t)y);
}

/* ---- cf_parallel_for --------------------------------------------------- */

/* The loop body for one subrange [lo, hi): each call writes only its own
 * part of the array, so the calls share nothing. */
static void flag_primes(size_t lo, size_t hi, void *ctx)
{
    bool *prime = ctx;
    for (size_t n = lo; n < hi; n++)
        prime[n] = is_prime(n);
}

static size_t count_flags(const bool *flags, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += flags[i];
    return count;
}

/* ---- a task group ----------------------------------------------------- */

typedef struct item {
    int id;
    bool checked;
} item;

/* Checks one item, 10 ms each; one item is bad. */
static void *check_item(void *arg)
{
    item *it = arg;
    sleep_s(0.01);
    if (it->id == BAD_ITEM) {
        cf_fail(CF_EINVAL, "item %d is malformed", it->id);
        return NULL;
    }
    it->checked = true;
    return NULL;
}

/* ---- nested waits ----------------------------------------------------- */

typedef struct nest_arg {
    cf_executor *pool;
    int depth;
} nest_arg;

/* Submits the next level to its own pool and waits for its result. */
static void *nest(void *arg)
{
    const nest_arg *a = arg;
    if (a->depth == 0)
        return (void *)0;
    nest_arg next = { a->pool, a->depth - 1 };
    cf_future *f;
    void *below;
    check(cf_submit(a->pool, nest, &next, &f), "cf_submit");
    check(cf_future_result(f, CF_FOREVER, &below), "cf_future_result");
    cf_future_release(f);
    return (void *)((intptr_t)below + 1);
}

/* ---- the lessons -------------------------------------------------------- */

static int join_lesson(cf_executor *pool, int n)
{
    double t0 = now();
    long expected = fib_seq(n);
    double t_seq = now() - t0;

    t0 = now();
    fib_arg top = { pool, n };
    void *result = fib(&top); /* from outside: the pool runs the first join */
    double t_join = now() - t0;
    printf("  fib(%d) = %ld\n", n, (long)(intptr_t)result);
    printf("    plain recursion:      %6.3f s\n", t_seq);
    printf("    cf_join, %d workers:   %6.3f s   speedup %.2fx\n",
           cf_cpu_count(), t_join, t_seq / t_join);
    return (long)(intptr_t)result == expected ? 0 : 1;
}

static int parallel_for_lesson(cf_executor *pool, size_t limit)
{
    bool *flags = check_ptr(calloc(limit, sizeof *flags), "calloc");
    double t0 = now();
    flag_primes(0, limit, flags);
    double t_seq = now() - t0;
    size_t expected = count_flags(flags, limit);
    memset(flags, 0, limit * sizeof *flags);

    t0 = now();
    check(cf_parallel_for(pool, 0, limit, 0, flag_primes, flags),
          "cf_parallel_for");
    double t_par = now() - t0;
    size_t count = count_flags(flags, limit);
    free(flags);
    printf("  primes below %zu: %zu\n", limit, count);
    printf("    a plain loop:         %6.3f s\n", t_seq);
    printf("    cf_parallel_for:      %6.3f s   speedup %.2fx\n", t_par,
           t_seq / t_par);
    return count == expected ? 0 : 1;
}

static int group_lesson(cf_executor *pool)
{
    item items[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++)
        items[i] = (item){ .id = i };

    cf_group *g = check_ptr(cf_group_new(pool), "cf_group_new");
    int submitted = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        int rc = cf_group_submit(g, check_item, &items[i]);
        if (rc == CF_ECANCELED)
            break; /* a task failed already: the group takes no more */
        check(rc, "cf_group_submit");
        submitted++;
    }
    int rc = cf_group_wait(g, CF_FOREVER);
    cf_group_free(g);

    int checked = 0;
    for (int i = 0; i < N_ITEMS; i++)
        checked += items[i].checked;
    printf("  group of %d tasks (10 ms each), item %d bad:\n", submitted,
           BAD_ITEM);
    printf("    cf_group_wait: %s; %d checked, 1 failed, %d cancelled\n",
           cf_strerror(rc), checked, submitted - checked - 1);
    return rc == CF_EINVAL && checked < N_ITEMS ? 0 : 1;
}

static int nest_lesson(void)
{
    cf_options one = { .max_workers = 1 };
    cf_executor *pool =
        check_ptr(cf_thread_pool_new(&one), "cf_thread_pool_new");
    nest_arg top = { pool, DEPTH };
    cf_future *f;
    void *depth;
    check(cf_submit(pool, nest, &top, &f), "cf_submit");
    check(cf_future_result(f, CF_FOREVER, &depth), "cf_future_result");
    cf_future_release(f);
    cf_stats st;
    check(cf_executor_stats(pool, &st), "cf_executor_stats");
    printf("  waits nested %ld deep on a pool with max_workers = 1: done, "
           "%zu thread\n",
           (long)(intptr_t)depth, st.workers);
    cf_executor_free(pool);
    return (intptr_t)depth == DEPTH ? 0 : 1;
}

int main(int argc, char **argv)
{
    bool quick = quick_flag(argc, argv);
    cf_options opts = { .max_workers = cf_cpu_count() };
    cf_executor *pool =
        check_ptr(cf_thread_pool_new(&opts), "cf_thread_pool_new");
    int failures = join_lesson(pool, quick ? 32 : 40);
    failures += parallel_for_lesson(pool, quick ? 2000000 : 6000000);
    failures += group_lesson(pool);
    cf_executor_free(pool);
    failures += nest_lesson();
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
