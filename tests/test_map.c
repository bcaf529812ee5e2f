/* SPDX-License-Identifier: MIT */
/*
 * test_map.c - cf_map, Python's Executor.map on the thread pool: input
 * order, failures that do not stop the iteration, the bounded run-ahead
 * (buffersize), the timeout, freeing early, and ENOMEM. Cases mirror
 * CPython's Lib/test/test_concurrent_futures/executor.py and
 * test_thread_pool.py where one applies.
 */
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* ---- helpers */

/* The next result is 0 with the value want. */
static void expect_next(cf_map *m, intptr_t want)
{
    void *r = NULL;
    CHECK_EQ(cf_map_next(m, &r), 0);
    CHECK_EQ((intptr_t)r, want);
}

/* The next n results are the squares 0, 1, 4, ... in input order. */
static void expect_squares(cf_map *m, intptr_t n)
{
    for (intptr_t i = 0; i < n; i++)
        expect_next(m, i * i);
}

static cf_executor *new_pool(int workers)
{
    cf_options o = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

/* args[i] = i */
static void **range_args(size_t n)
{
    void **a = malloc(sizeof *a * (n ? n : 1));
    CHECK(a != NULL);
    for (size_t i = 0; i < n; i++)
        a[i] = (void *)(intptr_t)i;
    return a;
}

/* ---- tasks */

static void *square(void *arg)
{
    intptr_t x = (intptr_t)arg;
    return (void *)(x * x);
}

static atomic_int started;
static atomic_int finished_seq;
static int finish_order[64];

/* Later items finish first: item i sleeps (7 - i) * 30 ms. */
static void *sleep_reverse(void *arg)
{
    intptr_t i = (intptr_t)arg;
    sleep_s(0.03 * (double)(7 - i));
    int k = atomic_fetch_add(&finished_seq, 1);
    if (k < 64)
        finish_order[k] = (int)i;
    return (void *)(i + 100);
}

/* test_map_exception's divmod over [1,1,1,1] / [2,3,0,5]: item 2 fails. */
static void *divmod_item(void *arg)
{
    static const int divisors[] = { 2, 3, 0, 5 };
    intptr_t i = (intptr_t)arg;
    if (divisors[i] == 0) {
        cf_fail(-EDOM, "integer division or modulo by zero");
        return NULL;
    }
    return (void *)(intptr_t)(1 % divisors[i] + 10 * (1 / divisors[i]));
}

static gate g_block = GATE_INIT;
static void *count_and_block(void *arg)
{
    atomic_fetch_add(&started, 1);
    gate_wait(&g_block);
    return arg;
}

static void *count_only(void *arg)
{
    atomic_fetch_add(&started, 1);
    return arg;
}

/* Items whose arg is 2 block on the gate; the others return at once. */
static void *block_if_two(void *arg)
{
    atomic_fetch_add(&started, 1);
    if ((intptr_t)arg == 2)
        gate_wait(&g_block);
    return arg;
}

/* ================================================================ cases */

/* executor.py: test_map */
static void map_in_order(void)
{
    cf_executor *ex = new_pool(5);
    void **args = range_args(10);
    cf_map *m = NULL;
    CHECK_EQ(cf_map_new(&m, ex, square, args, 10, 0, CF_FOREVER), 0);
    CHECK(m != NULL);
    expect_squares(m, 10);
    void *r;
    CHECK_EQ(cf_map_next(m, &r), CF_EOF);
    CHECK_EQ(cf_map_next(m, &r), CF_EOF);
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* Results come in input order even when later items finish first. */
static void map_order_when_later_finish_first(void)
{
    cf_executor *ex = new_pool(8);
    void **args = range_args(8);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, sleep_reverse, args, 8, 0, 20.0), 0);
    for (intptr_t i = 0; i < 8; i++) {
        expect_next(m, i + 100);
    }
    void *r;
    CHECK_EQ(cf_map_next(m, &r), CF_EOF);
    /* and they really did finish in another order */
    CHECK_EQ(atomic_load(&finished_seq), 8);
    CHECK(finish_order[0] != 0);
    CHECK(finish_order[7] != 7);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* executor.py: test_map_exception. Unlike Python, the iteration goes on
 * after the failed item. */
static void map_failure_continues(void)
{
    cf_executor *ex = new_pool(5);
    void **args = range_args(4);
    const size_t buffers[] = { 0, 1, 2 };
    for (int b = 0; b < 3; b++) {
        cf_map *m;
        CHECK_EQ(
            cf_map_new(&m, ex, divmod_item, args, 4, buffers[b], CF_FOREVER),
            0);
        void *r = NULL;
        expect_next(m, 1); /* divmod(1, 2) = (0, 1) */
        expect_next(m, 1); /* divmod(1, 3) = (0, 1) */
        CHECK_EQ(cf_map_next(m, &r), -EDOM);
        expect_next(m, 1); /* divmod(1, 5) = (0, 1) */
        CHECK_EQ(cf_map_next(m, &r), CF_EOF);
        cf_map_free(m);
    }
    free(args);
    cf_executor_free(ex);
}

/* Many failures in a row, with a small buffer. */
static void *fail_odd(void *arg)
{
    intptr_t i = (intptr_t)arg;
    if (i % 2)
        cf_fail(-5000 - (int)i, "item %d", (int)i);
    return (void *)(i * 3);
}

static void map_many_failures(void)
{
    cf_executor *ex = new_pool(3);
    void **args = range_args(100);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, fail_odd, args, 100, 4, CF_FOREVER), 0);
    for (intptr_t i = 0; i < 100; i++) {
        void *r = NULL;
        int rc = cf_map_next(m, &r);
        if (i % 2) {
            CHECK_EQ(rc, -5000 - i);
        } else {
            CHECK_EQ(rc, 0);
            CHECK_EQ((intptr_t)r, i * 3);
        }
    }
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* Items that fail with the codes the iterator uses for itself (CF_EOF:
 * the end; CF_ETIMEDOUT: the item stays next) read as CF_EINVAL and
 * CF_ETIME, and iteration goes on: no item is dropped or read twice. */
static void *fail_with_iterator_codes(void *arg)
{
    intptr_t i = (intptr_t)arg;
    if (i % 3)
        cf_fail(i % 3 == 1 ? CF_EOF : CF_ETIMEDOUT, "item %d", (int)i);
    return (void *)(i * 3);
}

static int bytes_with_iterator_codes(const void *in, size_t len, cf_buffer *out)
{
    int64_t i = 0;
    memcpy(&i, in, len < sizeof i ? len : sizeof i);
    if (i % 3)
        return i % 3 == 1 ? CF_EOF : CF_ETIMEDOUT;
    int64_t r = i * 3;
    return cf_buffer_append(out, &r, sizeof r);
}

static void map_item_codes_are_not_the_iterators(void)
{
    cf_executor *ex = new_pool(3);
    enum { N = 12 };
    void **args = range_args(N);
    static const int want[3] = { 0, CF_EINVAL, CF_ETIME };
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, fail_with_iterator_codes, args, N, 2, 5.0), 0);
    for (intptr_t i = 0; i < N; i++) {
        void *r = NULL;
        CHECK_EQ(cf_map_next(m, &r), want[i % 3]);
        if (i % 3 == 0)
            CHECK_EQ((intptr_t)r, i * 3);
    }
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    cf_map_free(m);
    int64_t in[N];
    const void *ins[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        ins[i] = &in[i];
        lens[i] = sizeof in[i];
    }
    for (size_t chunk = 1; chunk <= 5; chunk += 4) {
        CHECK_EQ(cf_map_bytes_new(&m, ex, bytes_with_iterator_codes, ins, lens,
                                  N, chunk, 2, 5.0),
                 0);
        for (int i = 0; i < N; i++) {
            const void *data;
            size_t len;
            CHECK_EQ(cf_map_bytes_next(m, &data, &len), want[i % 3]);
            if (i % 3 == 0) {
                int64_t r;
                CHECK_EQ(len, sizeof r);
                memcpy(&r, data, sizeof r);
                CHECK_EQ(r, (int64_t)i * 3);
            }
        }
        CHECK_EQ(cf_map_bytes_next(m, NULL, NULL), CF_EOF);
        cf_map_free(m);
    }
    free(args);
    cf_executor_free(ex);
}

/* executor.py: test_map_timeout. Items 0 and 1 return at once, item 2
 * blocks; the timeout (from cf_map_new) ends the wait for item 2, which
 * stays next. */
static void map_timeout(void)
{
    cf_executor *ex = new_pool(5);
    void **args = range_args(3);
    cf_map *m;
    double t0 = now_s();
    CHECK_EQ(cf_map_new(&m, ex, block_if_two, args, 3, 0, 0.3), 0);
    void *r = NULL;
    expect_next(m, 0);
    expect_next(m, 1);
    CHECK_EQ(cf_map_next(m, &r), CF_ETIMEDOUT);
    double dt = now_s() - t0;
    CHECK(dt >= 0.29);
    CHECK(dt < 3.0 * test_scale());
    int rc = 0;
    CHECK_TIME(rc = cf_map_next(m, &r), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    cf_map_free(m);
    gate_open(&g_block);
    free(args);
    cf_executor_free(ex);
}

/* The timeout counts from cf_map_new, not from each next. */
static void map_timeout_from_new(void)
{
    cf_executor *ex = new_pool(2);
    void **args = range_args(2);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_and_block, args, 2, 0, 1.0), 0);
    sleep_s(0.7);
    int rc = 0;
    CHECK_TIME(rc = cf_map_next(m, NULL), 0.1, 0.65);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    gate_open(&g_block);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* The item stays next after CF_ETIMEDOUT: a later call still gives it, in
 * order, if it is done by then (a poll map, timeout 0). */
static void map_timeout_item_stays_next(void)
{
    cf_executor *ex = new_pool(2);
    void **args = range_args(3);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, block_if_two, args, 3, 0, 0), 0);
    /* items 0 and 1 finish on their own */
    WAIT_UNTIL(atomic_load(&started) == 3, 10.0);
    sleep_s(0.05);
    void *r = NULL;
    expect_next(m, 0);
    expect_next(m, 1);
    CHECK_EQ(cf_map_next(m, &r), CF_ETIMEDOUT);
    CHECK_EQ(cf_map_next(m, &r), CF_ETIMEDOUT);
    gate_open(&g_block);
    sleep_s(0.1);
    /* done now: returned like items 0 and 1 were (a done future's result
     * needs no waiting, as in Python) */
    expect_next(m, 2);
    CHECK_EQ(cf_map_next(m, &r), CF_EOF);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* test_thread_pool.py: test_executor_map_current_future_cancel. The pool's
 * one worker is busy; a map with timeout 0 times out, and freeing it
 * cancels both of its items: neither ever runs. */
static void map_free_after_timeout_cancels(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *first = NULL;
    CHECK_EQ(cf_submit(ex, count_and_block, (void *)100, &first), 0);
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    void **args = range_args(2);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_only, args, 2, 0, 0), 0);
    CHECK_EQ(cf_map_next(m, NULL), CF_ETIMEDOUT);
    cf_map_free(m);
    gate_open(&g_block);
    void *r = NULL;
    CHECK_EQ(cf_future_result(first, 20.0, &r), 0);
    CHECK_EQ((intptr_t)r, 100);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&started), 1);
    cf_stats s;
    CHECK_EQ(cf_executor_stats(ex, &s), 0);
    CHECK_EQ(s.cancelled, 2);
    CHECK_EQ(s.completed, 1);
    cf_future_release(first);
    free(args);
    cf_executor_free(ex);
}

/* cf_map_free cancels what has not started; what runs finishes. */
static void map_free_cancels_unstarted(void)
{
    cf_executor *ex = new_pool(1);
    void **args = range_args(5);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_and_block, args, 5, 0, CF_FOREVER), 0);
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&started), 1);
    cf_map_free(m);
    gate_open(&g_block);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&started), 1);
    cf_stats s;
    CHECK_EQ(cf_executor_stats(ex, &s), 0);
    CHECK_EQ(s.cancelled, 4);
    CHECK_EQ(s.completed, 1);
    free(args);
    cf_executor_free(ex);
}

/* Freeing a map part-way, with results done and not yet read. */
static void map_free_part_way(void)
{
    cf_executor *ex = new_pool(4);
    void **args = range_args(50);
    for (int b = 0; b < 2; b++) {
        cf_map *m;
        CHECK_EQ(cf_map_new(&m, ex, square, args, 50, b ? 5 : 0, CF_FOREVER),
                 0);
        expect_next(m, 0);
        expect_next(m, 1);
        cf_map_free(m);
    }
    /* never iterated at all */
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, square, args, 50, 0, CF_FOREVER), 0);
    cf_map_free(m);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    free(args);
    cf_executor_free(ex);
}

/* executor.py: test_map_buffersize (1, 2, n, 2n) */
static void map_buffersize_results(void)
{
    cf_executor *ex = new_pool(4);
    void **args = range_args(4);
    const size_t sizes[] = { 1, 2, 4, 8 };
    for (int k = 0; k < 4; k++) {
        cf_map *m;
        CHECK_EQ(cf_map_new(&m, ex, square, args, 4, sizes[k], CF_FOREVER), 0);
        expect_squares(m, 4);
        CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
        cf_map_free(m);
    }
    free(args);
    cf_executor_free(ex);
}

/* executor.py: test_map_buffersize_when_buffer_is_full. With buffersize k
 * and nothing consumed, only k items are ever submitted. */
static void map_buffersize_when_buffer_is_full(void)
{
    cf_executor *ex = new_pool(4);
    void **args = range_args(10);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_only, args, 10, 2, CF_FOREVER), 0);
    WAIT_UNTIL(atomic_load(&started) == 2, 10.0);
    sleep_s(0.1);
    CHECK_EQ(atomic_load(&started), 2);
    /* one consumed: one more may go */
    void *r = NULL;
    expect_next(m, 0);
    sleep_s(0.1);
    CHECK(atomic_load(&started) <= 3);
    for (intptr_t i = 1; i < 10; i++) {
        expect_next(m, i);
        CHECK(atomic_load(&started) <= i + 1 + 2);
    }
    CHECK_EQ(cf_map_next(m, &r), CF_EOF);
    CHECK_EQ(atomic_load(&started), 10);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* buffersize k keeps at most k submitted and unconsumed, even with idle
 * workers to spare and every item blocked. */
static void map_buffersize_bounds_run_ahead(void)
{
    enum { N = 12, K = 3 };
    cf_executor *ex = new_pool(8);
    void **args = range_args(N);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_and_block, args, N, K, CF_FOREVER), 0);
    WAIT_UNTIL(atomic_load(&started) == K, 10.0);
    sleep_s(0.1);
    CHECK_EQ(atomic_load(&started), K);
    cf_stats s;
    CHECK_EQ(cf_executor_stats(ex, &s), 0);
    CHECK_EQ(s.queued + s.running, K);
    gate_open(&g_block);
    for (intptr_t i = 0; i < N; i++) {
        expect_next(m, i);
        CHECK(atomic_load(&started) <= i + 1 + K);
    }
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    CHECK_EQ(atomic_load(&started), N);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* executor.py: test_shutdown_race_issue12456 - a map with more items than
 * workers, left unread, then shutdown with wait. */
static void map_shutdown_race(void)
{
    cf_executor *ex = new_pool(2);
    void **args = range_args(3);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_only, args, 3, 0, CF_FOREVER), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&started), 3);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* test_thread_pool.py: test_map_submits_without_iteration. buffersize 0
 * submits everything at once: it all runs without a single next. */
static void map_submits_without_iteration(void)
{
    cf_executor *ex = new_pool(4);
    void **args = range_args(10);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, count_only, args, 10, 0, CF_FOREVER), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&started), 10);
    /* the results are still there */
    for (intptr_t i = 0; i < 10; i++) {
        expect_next(m, i);
    }
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* test_shutdown.py: test_shutdown_no_wait / test_del_shutdown - the map's
 * results are computed although the executor was shut down (or freed)
 * right after cf_map_new. */
static void map_results_after_shutdown(void)
{
    cf_executor *ex = new_pool(5);
    void **args = range_args(10);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, square, args, 10, 0, CF_FOREVER), 0);
    CHECK_EQ(cf_shutdown(ex, false, false), 0);
    expect_squares(m, 10);
    cf_map_free(m);
    cf_executor_free(ex);

    ex = new_pool(5);
    CHECK_EQ(cf_map_new(&m, ex, square, args, 10, 0, CF_FOREVER), 0);
    cf_executor_free(ex); /* futures outlive their executor */
    expect_squares(m, 10);
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    cf_map_free(m);
    free(args);
}

/* executor.py: test_map_buffersize_on_empty_iterable, and n = 0 in
 * general. */
static void map_n_zero(void)
{
    cf_executor *ex = new_pool(2);
    void *one[1] = { NULL };
    for (size_t k = 0; k < 3; k++) {
        cf_map *m = NULL;
        CHECK_EQ(cf_map_new(&m, ex, square, one, 0, k, CF_FOREVER), 0);
        void *r;
        CHECK_EQ(cf_map_next(m, &r), CF_EOF);
        CHECK_EQ(cf_map_next(m, &r), CF_EOF);
        cf_map_free(m);
    }
    cf_executor_free(ex);
}

/* A long input with a small buffer. */
static void map_long_input_small_buffer(void)
{
    enum { N = 5000 };
    cf_executor *ex = new_pool(4);
    void **args = range_args(N);
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, ex, square, args, N, 7, CF_FOREVER), 0);
    expect_squares(m, N);
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    cf_map_free(m);
    free(args);
    cf_executor_free(ex);
}

/* A submit error at cf_map_new is returned, and nothing is left running. */
static void map_on_shut_down_executor(void)
{
    cf_executor *ex = new_pool(2);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    void **args = range_args(3);
    cf_map *m = NULL;
    CHECK_EQ(cf_map_new(&m, ex, count_only, args, 3, 0, CF_FOREVER),
             CF_ESHUTDOWN);
    CHECK_EQ(cf_map_new(&m, ex, count_only, args, 3, 1, CF_FOREVER),
             CF_ESHUTDOWN);
    CHECK_EQ(atomic_load(&started), 0);
    free(args);
    cf_executor_free(ex);
}

/* executor.py: test_map_buffersize_value_validation has no C equivalent
 * (size_t); the bad inputs here are NULLs and NaN. */
static void map_bad_args(void)
{
    cf_executor *ex = new_pool(2);
    void **args = range_args(3);
    cf_map *m = NULL;
    CHECK_EQ(cf_map_new(NULL, ex, square, args, 3, 0, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_map_new(&m, NULL, square, args, 3, 0, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_map_new(&m, ex, NULL, args, 3, 0, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_map_new(&m, ex, square, NULL, 3, 0, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_map_new(&m, ex, square, args, 3, 0, NAN), CF_EINVAL);
    CHECK(m == NULL);
    CHECK_EQ(cf_map_next(NULL, NULL), CF_EINVAL);
    void *r;
    CHECK_EQ(cf_map_next(NULL, &r), CF_EINVAL);
    /* nothing was submitted by the refused calls */
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_stats s;
    CHECK_EQ(cf_executor_stats(ex, &s), 0);
    CHECK_EQ(s.completed + s.failed + s.cancelled, 0);
    free(args);
    cf_executor_free(ex);
}

/* ENOMEM: a failing cf_map_new frees what it made and leaves nothing
 * running; the sweep's undo waits for the pool to drop its references. */
typedef struct map_oom {
    cf_executor *ex;
    void **args;
    size_t n, buffersize;
    long live_at_start;
} map_oom;

static int map_op(void *ctx)
{
    map_oom *c = ctx;
    c->live_at_start = oom_live_count();
    cf_map *m = NULL;
    int rc =
        cf_map_new(&m, c->ex, square, c->args, c->n, c->buffersize, CF_FOREVER);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        void *r = NULL;
        rc = cf_map_next(m, &r);
        if (rc == CF_ENOMEM && c->buffersize) {
            /* a refill submit ran out of memory: reported for that item */
            cf_map_free(m);
            return 0;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ((intptr_t)r, (intptr_t)(i * i));
    }
    CHECK_EQ(cf_map_next(m, NULL), CF_EOF);
    cf_map_free(m);
    return 0;
}

static void map_undo(void *ctx)
{
    map_oom *c = ctx;
    WAIT_UNTIL(oom_live_count() == c->live_at_start, 5.0);
    CHECK_EQ(oom_live_count(), c->live_at_start);
}

static void map_new_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    map_oom c = { .ex = new_pool(2), .args = range_args(6), .n = 6 };
    /* start the workers first, so the sweep sees only the map's own
     * allocations */
    cf_map *m;
    CHECK_EQ(cf_map_new(&m, c.ex, count_and_block, c.args, 2, 0, CF_FOREVER),
             0);
    WAIT_UNTIL(atomic_load(&started) == 2, 10.0);
    gate_open(&g_block);
    CHECK_EQ(cf_map_next(m, NULL), 0);
    CHECK_EQ(cf_map_next(m, NULL), 0);
    cf_map_free(m);
    /* let the workers drop their references: the count stops moving */
    for (long last = -1; last != oom_live_count();) {
        last = oom_live_count();
        sleep_s(0.05);
    }

    c.buffersize = 2;
    CHECK(oom_sweep(map_op, map_undo, &c) >= 2);
    c.buffersize = 0;
    CHECK(oom_sweep(map_op, map_undo, &c) >= 2);
    /* the pool still works */
    CHECK_EQ(cf_map_new(&m, c.ex, square, c.args, 6, 0, CF_FOREVER), 0);
    for (intptr_t i = 0; i < 6; i++) {
        expect_next(m, i * i);
    }
    cf_map_free(m);
    cf_executor_free(c.ex);
    free(c.args);
    CHECK_EQ(oom_live_count(), live0);
}

static const test_case cases[] = {
    TEST_CASE(map_in_order),
    TEST_CASE(map_order_when_later_finish_first),
    TEST_CASE(map_failure_continues),
    TEST_CASE(map_many_failures),
    TEST_CASE(map_item_codes_are_not_the_iterators),
    TEST_CASE(map_timeout),
    TEST_CASE(map_timeout_from_new),
    TEST_CASE(map_timeout_item_stays_next),
    TEST_CASE(map_free_after_timeout_cancels),
    TEST_CASE(map_free_cancels_unstarted),
    TEST_CASE(map_free_part_way),
    TEST_CASE(map_buffersize_results),
    TEST_CASE(map_buffersize_when_buffer_is_full),
    TEST_CASE(map_buffersize_bounds_run_ahead),
    TEST_CASE(map_shutdown_race),
    TEST_CASE(map_submits_without_iteration),
    TEST_CASE(map_results_after_shutdown),
    TEST_CASE(map_n_zero),
    TEST_CASE(map_long_input_small_buffer),
    TEST_CASE(map_on_shut_down_executor),
    TEST_CASE(map_bad_args),
    TEST_CASE(map_new_enomem),
};

TEST_MAIN(cases)
