/* SPDX-License-Identifier: MIT */
/*
 * test_executor.c - the thread pool executor: submit and results, lazy
 * workers and their names, initializers, cf_fail in tasks, shutdown in all
 * its forms, stats, nested waits that must never deadlock, and ENOMEM.
 * Cases mirror CPython's Lib/test/test_concurrent_futures/test_thread_pool.py,
 * executor.py, test_shutdown.py and test_init.py where one applies.
 */
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* ---- helpers */

static cf_stats stats_of(cf_executor *ex)
{
    cf_stats s;
    memset(&s, 0xab, sizeof s);
    CHECK_EQ(cf_executor_stats(ex, &s), 0);
    return s;
}

/* Polls the stats until cond (over `s`) holds, for up to 10 s. */
#define WAIT_STATS(ex, s, cond)                                                \
    do {                                                                       \
        double end_ = now_s() + 10.0 * test_scale();                           \
        for (;;) {                                                             \
            s = stats_of(ex);                                                  \
            if ((cond) || now_s() > end_)                                      \
                break;                                                         \
            sleep_s(0.001);                                                    \
        }                                                                      \
    } while (0)

static cf_executor *new_pool(int workers)
{
    cf_options o = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

static cf_future *submit(cf_executor *ex, cf_fn fn, void *arg)
{
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, fn, arg, &f), 0);
    CHECK(f != NULL);
    return f;
}

static intptr_t result_of(cf_future *f)
{
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, 20.0, &r), 0);
    return (intptr_t)r;
}

static void release_all(cf_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cf_future_release(fs[i]);
}

/* ---- tasks */

static void *pow2(void *arg)
{
    return (void *)((intptr_t)1 << (intptr_t)arg);
}

static void *twice(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

static atomic_int counter;
static void *count(void *arg)
{
    atomic_fetch_add(&counter, 1);
    return arg;
}

static gate g_block = GATE_INIT;
static atomic_int started;
static void *block(void *arg)
{
    atomic_fetch_add(&started, 1);
    gate_wait(&g_block);
    return arg;
}

static void *sleep_100ms(void *arg)
{
    atomic_fetch_add(&started, 1);
    sleep_s(0.1);
    return arg;
}

/* ================================================================ basics */

/* executor.py: test_submit */
static void submit_result(void)
{
    cf_executor *ex = new_pool(5);
    cf_future *f = submit(ex, pow2, (void *)8);
    CHECK_EQ(result_of(f), 256);
    CHECK(cf_future_done(f));
    CHECK(!cf_future_cancelled(f));
    const char *m = "x";
    CHECK_EQ(cf_future_exception(f, 0, &m), 0);
    CHECK(m == NULL);
    cf_future_release(f);
    cf_executor_free(ex);
}

static void submit_many_results(void)
{
    enum { N = 2000 };
    cf_executor *ex = new_pool(4);
    cf_future **fs = malloc(sizeof *fs * N);
    CHECK(fs);
    for (intptr_t i = 0; i < N; i++)
        fs[i] = submit(ex, twice, (void *)i);
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(result_of(fs[i]), 2 * i);
    release_all(fs, N);
    free(fs);
    cf_executor_free(ex);
}

/* Fire and forget: out NULL; free waits for all of them to run. */
static void fire_and_forget(void)
{
    cf_executor *ex = new_pool(3);
    for (int i = 0; i < 500; i++)
        CHECK_EQ(cf_submit(ex, count, NULL, NULL), 0);
    cf_executor_free(ex);
    CHECK_EQ(atomic_load(&counter), 500);
}

/* The future may be released before the task runs: the executor holds its
 * own reference. */
static void release_before_done(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *b = submit(ex, block, NULL);
    for (int i = 0; i < 20; i++)
        cf_future_release(submit(ex, count, NULL));
    gate_open(&g_block);
    cf_future_release(b);
    cf_executor_free(ex);
    CHECK_EQ(atomic_load(&counter), 20);
}

/* ============================================================ workers */

/* test_default_workers + test_saturation: max_workers 0 is
 * min(32, ncpu + 4), seen once that many tasks block at once. */
static void default_max_workers(void)
{
    const int expect = cf_cpu_count() + 4 < 32 ? cf_cpu_count() + 4 : 32;
    for (int k = 0; k < 2; k++) {
        cf_options o = { .max_workers = 0 };
        cf_executor *ex = cf_thread_pool_new(k ? &o : NULL);
        CHECK(ex != NULL);
        pthread_mutex_lock(&g_block.mu);
        g_block.open = 0;
        pthread_mutex_unlock(&g_block.mu);
        atomic_store(&started, 0);
        cf_stats s = stats_of(ex);
        for (int i = 0; i < expect + 5; i++)
            CHECK_EQ(cf_submit(ex, block, NULL, NULL), 0);
        WAIT_UNTIL(atomic_load(&started) == expect, 10.0);
        sleep_s(0.05);
        CHECK_EQ(atomic_load(&started), expect);
        WAIT_STATS(ex, s, s.running == (size_t)expect && s.queued == 5);
        CHECK_EQ(s.workers, expect);
        CHECK_EQ(s.running, expect);
        CHECK_EQ(s.queued, 5);
        CHECK_EQ(s.idle, 0);
        gate_open(&g_block);
        cf_executor_free(ex);
        CHECK_EQ(atomic_load(&started), expect + 5);
    }
}

/* test_saturation: never more than max_workers threads. */
static void saturation(void)
{
    cf_executor *ex = new_pool(4);
    for (int i = 0; i < 60; i++)
        CHECK_EQ(cf_submit(ex, block, NULL, NULL), 0);
    WAIT_UNTIL(atomic_load(&started) == 4, 10.0);
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&started), 4);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.workers, 4);
    gate_open(&g_block);
    cf_executor_free(ex);
    CHECK_EQ(atomic_load(&started), 60);
}

/* executor.py: test_max_workers_negative (0 is the default in cfutures). */
static void negative_max_workers(void)
{
    const int bad[] = { -1, -2, -1000 };
    for (int i = 0; i < 3; i++) {
        cf_options o = { .max_workers = bad[i] };
        errno = 0;
        CHECK(cf_thread_pool_new(&o) == NULL);
        CHECK_EQ(errno, EINVAL);
    }
}

/* Threads start lazily: none before the first submit, and sequential
 * submit-and-wait reuses the idle one. */
static void lazy_threads(void)
{
    cf_executor *ex = new_pool(8);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.workers, 0);
    CHECK_EQ(s.idle, 0);
    CHECK_EQ(s.queued, 0);
    CHECK_EQ(s.running, 0);
    CHECK_EQ(s.completed, 0);
    CHECK_EQ(s.failed, 0);
    CHECK_EQ(s.cancelled, 0);
    for (intptr_t i = 0; i < 100; i++) {
        cf_future *f = submit(ex, twice, (void *)i);
        CHECK_EQ(result_of(f), 2 * i);
        cf_future_release(f);
    }
    s = stats_of(ex);
    CHECK(s.workers >= 1);
    CHECK(s.workers <= 2);
    cf_executor_free(ex);
}

/* test_idle_thread_reuse: once a worker is idle, the next task goes to it. */
static void idle_thread_reuse(void)
{
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    cf_stats s;
    for (intptr_t i = 0; i < 3; i++) {
        cf_future *f = submit(ex, twice, (void *)(21 + i));
        CHECK_EQ(result_of(f), 42 + 2 * i);
        cf_future_release(f);
        WAIT_STATS(ex, s, s.idle == 1);
        CHECK_EQ(s.idle, 1);
        CHECK_EQ(s.workers, 1);
    }
    cf_executor_free(ex);
}

/* test_threads_terminate: shutdown with wait leaves no worker alive. */
static void threads_terminate(void)
{
    cf_executor *ex = new_pool(5);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_submit(ex, block, NULL, NULL), 0);
    WAIT_UNTIL(atomic_load(&started) == 3, 10.0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.workers, 3);
    gate_open(&g_block);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    s = stats_of(ex);
    CHECK_EQ(s.workers, 0);
    CHECK_EQ(s.running, 0);
    CHECK_EQ(s.queued, 0);
    CHECK_EQ(s.completed, 3);
    cf_executor_free(ex);
}

/* test_thread_names_assigned: "<prefix>_<i>", i in [0, max_workers). */
static char names[8][64];
static atomic_int name_slot;
static void *record_name(void *arg)
{
    int i = atomic_fetch_add(&name_slot, 1);
    if (i < 8)
        snprintf(names[i], sizeof names[i], "%s", cf_thread_current_name());
    atomic_fetch_add(&started, 1);
    gate_wait(&g_block);
    return arg;
}

static void thread_names_assigned(void)
{
    cf_options o = { .max_workers = 5, .name_prefix = "SpecialPool" };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(cf_submit(ex, record_name, NULL, NULL), 0);
    WAIT_UNTIL(atomic_load(&started) == 5, 10.0);
    CHECK_EQ(atomic_load(&started), 5);
    gate_open(&g_block);
    cf_executor_free(ex);
    bool seen[5] = { false };
    for (int i = 0; i < 5; i++) {
        CHECK(strncmp(names[i], "SpecialPool_", 12) == 0);
        CHECK(strlen(names[i]) == 13);
        int idx = names[i][12] - '0';
        CHECK(idx >= 0 && idx < 5);
        CHECK(!seen[idx]);
        seen[idx] = true;
    }
}

/* The prefix is copied. */
static void name_prefix_is_copied(void)
{
    char prefix[32] = "Copied";
    cf_options o = { .max_workers = 1, .name_prefix = prefix };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    memset(prefix, 'q', sizeof prefix - 1);
    gate_open(&g_block);
    cf_future *f = submit(ex, record_name, NULL);
    CHECK_EQ(result_of(f), 0);
    CHECK(strcmp(names[0], "Copied_0") == 0);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* test_thread_names_default: some sane, distinct names. */
static void thread_names_default(void)
{
    cf_executor *ex = new_pool(5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(cf_submit(ex, record_name, NULL, NULL), 0);
    WAIT_UNTIL(atomic_load(&started) == 5, 10.0);
    CHECK_EQ(atomic_load(&started), 5); /* five workers at once */
    gate_open(&g_block);
    cf_executor_free(ex);
    for (int i = 0; i < 5; i++) {
        CHECK(strlen(names[i]) > 0);
        CHECK(strcmp(names[i], "MainThread") != 0);
        CHECK(strncmp(names[i], "Dummy-", 6) != 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(names[i], names[j]) != 0);
    }
    /* in the main thread the name is unchanged */
    CHECK(strcmp(cf_thread_current_name(), "MainThread") == 0);
}

/* ========================================================= initializer */

static _Thread_local const char *init_status = "uninitialized";
static atomic_int init_calls;
static char init_names[8][64];
static void *init(void *arg)
{
    int i = atomic_fetch_add(&init_calls, 1);
    if (i < 8)
        snprintf(init_names[i], sizeof init_names[i], "%s",
                 cf_thread_current_name());
    init_status = arg;
    return NULL;
}

static void *get_init_status(void *arg)
{
    (void)arg;
    return (void *)init_status;
}

static void *block_get_init_status(void *arg)
{
    atomic_fetch_add(&started, 1);
    gate_wait(&g_block);
    return get_init_status(arg);
}

/* test_init.py InitializerMixin.test_initializer */
static void initializer_runs(void)
{
    cf_options o = { .max_workers = 2,
                     .initializer = init,
                     .initarg = (void *)"initialized" };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *fs[10];
    for (int i = 0; i < 10; i++)
        fs[i] = submit(ex, get_init_status, NULL);
    for (int i = 0; i < 10; i++)
        CHECK(strcmp((const char *)result_of(fs[i]), "initialized") == 0);
    release_all(fs, 10);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    /* once per worker, and at most max_workers workers */
    CHECK(atomic_load(&init_calls) >= 1);
    CHECK(atomic_load(&init_calls) <= 2);
    cf_executor_free(ex);
}

/* The initializer runs once in each worker, in the worker, before its first
 * task. */
static void initializer_once_per_worker(void)
{
    cf_options o = { .max_workers = 4,
                     .name_prefix = "Init",
                     .initializer = init,
                     .initarg = (void *)"ready" };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    CHECK_EQ(atomic_load(&init_calls), 0); /* lazy */
    cf_future *fs[4];
    for (int i = 0; i < 4; i++)
        fs[i] = submit(ex, block_get_init_status, NULL);
    WAIT_UNTIL(atomic_load(&started) == 4, 10.0);
    CHECK_EQ(atomic_load(&started), 4); /* four workers at once */
    CHECK_EQ(atomic_load(&init_calls), 4);
    gate_open(&g_block);
    for (int i = 0; i < 4; i++)
        CHECK(strcmp((const char *)result_of(fs[i]), "ready") == 0);
    release_all(fs, 4);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(cf_submit(ex, count, NULL, NULL), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&init_calls), 4);
    for (int i = 0; i < 4; i++) {
        CHECK(strncmp(init_names[i], "Init_", 5) == 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(init_names[i], init_names[j]) != 0);
    }
    cf_executor_free(ex);
}

/* test_init.py FailingInitializerMixin.test_initializer: cf_fail in the
 * initializer breaks the pool; pending and later work get CF_EBROKEN and no
 * task runs. */
static void *init_fail(void *arg)
{
    (void)arg;
    sleep_s(0.1); /* let some futures be scheduled */
    cf_fail(-EINVAL, "error in initializer");
    return NULL;
}

static void failing_initializer_breaks_pool(void)
{
    cf_options o = { .max_workers = 2, .initializer = init_fail };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *fs[10];
    for (int i = 0; i < 10; i++)
        fs[i] = submit(ex, count, NULL);
    for (int i = 0; i < 10; i++) {
        const char *m = NULL;
        CHECK_EQ(cf_future_exception(fs[i], 20.0, &m), CF_EBROKEN);
        CHECK(m != NULL);
        CHECK(!cf_future_cancelled(fs[i]));
    }
    /* from now on submit is refused */
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, count, NULL, &f), CF_EBROKEN);
    CHECK_EQ(cf_submit(ex, count, NULL, NULL), CF_EBROKEN);
    CHECK_EQ(atomic_load(&counter), 0);
    cf_stats s;
    WAIT_STATS(ex, s, s.failed == 10);
    CHECK_EQ(s.failed, 10);
    CHECK_EQ(s.completed, 0);
    release_all(fs, 10);
    /* shutdown of a broken pool works and does not hang */
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_executor_free(ex);
    CHECK_EQ(atomic_load(&counter), 0);
}

/* ============================================================= cf_fail */

static void *fail_with(void *arg)
{
    CHECK_EQ(cf_fail(-EDOM, "bad value %d", (int)(intptr_t)arg), 0);
    return (void *)123;
}

static void *fail_twice(void *arg)
{
    (void)arg;
    CHECK_EQ(cf_fail(-EIO, "first"), 0);
    CHECK_EQ(cf_fail(CF_ETIME, "second %s", "wins"), 0);
    return NULL;
}

static void *fail_code_zero(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)cf_fail(0, "no code");
}

static void *fail_null_fmt(void *arg)
{
    (void)arg;
    CHECK_EQ(cf_fail(-EPIPE, NULL), 0);
    return NULL;
}

/* executor.py: a task that raises (test_map_exception's divmod); here
 * cf_fail with a code and a formatted message. */
static void fail_in_task(void)
{
    cf_executor *ex = new_pool(2);
    cf_future *f = submit(ex, fail_with, (void *)7);
    const char *m = NULL;
    CHECK_EQ(cf_future_exception(f, 20.0, &m), -EDOM);
    CHECK(m != NULL && strcmp(m, "bad value 7") == 0);
    CHECK_EQ(cf_future_result(f, 0, NULL), -EDOM);
    CHECK(!cf_future_cancelled(f));
    CHECK(cf_future_done(f));
    cf_future_release(f);

    f = submit(ex, fail_twice, NULL);
    CHECK_EQ(cf_future_exception(f, 20.0, &m), CF_ETIME);
    CHECK(strcmp(m, "second wins") == 0);
    cf_future_release(f);

    f = submit(ex, fail_code_zero, NULL);
    CHECK_EQ(result_of(f), CF_EINVAL); /* cf_fail refused; the task succeeded */
    cf_future_release(f);

    f = submit(ex, fail_null_fmt, NULL);
    CHECK_EQ(cf_future_exception(f, 20.0, &m), -EPIPE);
    CHECK(m != NULL && strcmp(m, cf_strerror(-EPIPE)) == 0);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* A failure belongs to its task only: the next task on the same worker
 * succeeds. */
static void fail_does_not_leak_to_next_task(void)
{
    cf_executor *ex = new_pool(1);
    for (intptr_t i = 0; i < 20; i++) {
        cf_future *f = submit(ex, i % 2 ? fail_with : twice, (void *)i);
        if (i % 2) {
            CHECK_EQ(cf_future_result(f, 20.0, NULL), -EDOM);
        } else {
            CHECK_EQ(result_of(f), 2 * i);
        }
        cf_future_release(f);
    }
    /* fire-and-forget failures are counted, and leak nothing */
    for (intptr_t i = 0; i < 10; i++)
        CHECK_EQ(cf_submit(ex, fail_with, (void *)i, NULL), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.failed, 20);
    CHECK_EQ(s.completed, 10);
    cf_executor_free(ex);
}

static void fail_outside_task(void)
{
    CHECK_EQ(cf_fail(-EIO, "main"), CF_EINVAL);
    /* nor in the main thread after it waited on a task */
    cf_executor *ex = new_pool(1);
    cf_future *f = submit(ex, twice, (void *)1);
    CHECK_EQ(result_of(f), 2);
    CHECK_EQ(cf_fail(-EIO, "after a task"), CF_EINVAL);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* ============================================================ shutdown */

/* test_run_after_shutdown */
static void submit_after_shutdown(void)
{
    cf_executor *ex = new_pool(2);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, pow2, (void *)5, &f), CF_ESHUTDOWN);
    CHECK_EQ(cf_submit(ex, pow2, (void *)5, NULL), CF_ESHUTDOWN);
    cf_executor_free(ex);

    ex = new_pool(2);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    CHECK_EQ(cf_submit(ex, pow2, (void *)5, NULL), CF_ESHUTDOWN);
    cf_executor_free(ex);
    CHECK_EQ(atomic_load(&counter), 0);
}

/* Shutdown is idempotent, whatever the flags. */
static void shutdown_idempotent(void)
{
    cf_executor *ex = new_pool(2);
    cf_future *f = submit(ex, twice, (void *)4);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    CHECK_EQ(cf_shutdown(ex, true, true), 0);
    CHECK_EQ(result_of(f), 8);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* test_hang_issue12364: shutdown with wait while tasks sleep; all done. */
static void shutdown_wait_waits(void)
{
    cf_executor *ex = new_pool(5);
    cf_future *fs[50];
    for (int i = 0; i < 50; i++)
        fs[i] = submit(ex, sleep_100ms, (void *)(intptr_t)i);
    int rc = 1;
    CHECK_TIME(rc = cf_shutdown(ex, true, false), 0.5, 20.0);
    CHECK_EQ(rc, 0);
    for (int i = 0; i < 50; i++) {
        CHECK(cf_future_done(fs[i]));
        CHECK_EQ(result_of(fs[i]), i);
    }
    release_all(fs, 50);
    cf_executor_free(ex);
}

/* test_shutdown_no_wait: shutdown(wait=false) returns at once and the work
 * still finishes, queued work included. */
static void shutdown_no_wait(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *running = submit(ex, block, (void *)1);
    cf_future *queued[3];
    for (int i = 0; i < 3; i++)
        queued[i] = submit(ex, twice, (void *)(intptr_t)(10 + i));
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    int rc = 1;
    CHECK_TIME(rc = cf_shutdown(ex, false, false), 0, 0.5);
    CHECK_EQ(rc, 0);
    CHECK(!cf_future_done(running));
    CHECK_EQ(cf_submit(ex, twice, NULL, NULL), CF_ESHUTDOWN);
    gate_open(&g_block);
    CHECK_EQ(result_of(running), 1);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(result_of(queued[i]), 2 * (10 + i));
        CHECK(!cf_future_cancelled(queued[i]));
    }
    release_all(queued, 3);
    cf_future_release(running);
    cf_executor_free(ex);
}

/* test_cancel_futures: with few workers, most of 50 queued tasks are
 * cancelled; the rest finish without failure. */
static void shutdown_cancel_futures(void)
{
    cf_executor *ex = new_pool(5);
    cf_future *fs[50];
    for (int i = 0; i < 50; i++)
        fs[i] = submit(ex, sleep_100ms, NULL);
    /* CPython relies on a worker having picked up a task by now; here we
     * wait for it, so "some finished" is guaranteed */
    WAIT_UNTIL(atomic_load(&started) >= 1, 10.0);
    CHECK_EQ(cf_shutdown(ex, true, true), 0);
    int cancelled = 0, others = 0;
    for (int i = 0; i < 50; i++) {
        if (cf_future_cancelled(fs[i])) {
            cancelled++;
            CHECK_EQ(cf_future_result(fs[i], 0, NULL), CF_ECANCELED);
        } else {
            others++;
            CHECK(cf_future_done(fs[i]));
            CHECK_EQ(cf_future_exception(fs[i], 0, NULL), 0);
        }
    }
    CHECK(cancelled > 20);
    CHECK(others > 0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.cancelled, cancelled);
    CHECK_EQ(s.completed, others);
    release_all(fs, 50);
    cf_executor_free(ex);
}

/* Deterministic form: what is queued is cancelled by the time shutdown
 * returns (even without wait); what runs finishes. */
static void shutdown_cancel_futures_no_wait(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *running = submit(ex, block, (void *)5);
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    cf_future *queued[5];
    for (int i = 0; i < 5; i++)
        queued[i] = submit(ex, count, NULL);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    for (int i = 0; i < 5; i++) {
        CHECK(cf_future_cancelled(queued[i]));
        CHECK_EQ(cf_future_result(queued[i], 0, NULL), CF_ECANCELED);
    }
    CHECK(!cf_future_done(running));
    CHECK(!cf_future_cancel(running));
    gate_open(&g_block);
    CHECK_EQ(result_of(running), 5);
    cf_executor_free(ex);
    CHECK_EQ(atomic_load(&counter), 0);
    release_all(queued, 5);
    cf_future_release(running);
}

/* test_cancel_futures_wait_false: a default pool, one task, shutdown
 * without wait but with cancel; freeing it then neither hangs nor leaks. */
static void cancel_futures_wait_false(void)
{
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    cf_future *f = submit(ex, sleep_100ms, (void *)1);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    cf_executor_free(ex);
    CHECK(cf_future_done(f));
    if (!cf_future_cancelled(f))
        CHECK_EQ(result_of(f), 1);
    cf_future_release(f);
}

/* test_hang_gh94440: a future submitted and quickly cancelled right before
 * shutdown(wait) does not hang it. */
static void cancelled_then_shutdown_no_hang(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *f = submit(ex, twice, (void *)1);
    CHECK_EQ(result_of(f), 2);
    cf_future_release(f);
    f = submit(ex, twice, (void *)2);
    cf_future_cancel(f);
    int rc = 1;
    CHECK_TIME(rc = cf_shutdown(ex, true, false), 0, 5.0);
    CHECK_EQ(rc, 0);
    CHECK(cf_future_done(f));
    cf_future_release(f);
    cf_executor_free(ex);
}

/* A user cancelling a queued future: the task never runs, it is counted. */
static void cancel_queued_future(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *b = submit(ex, block, NULL);
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    cf_future *q = submit(ex, count, NULL);
    CHECK(!cf_future_running(q));
    CHECK(cf_future_cancel(q));
    CHECK(!cf_future_cancel(b)); /* running */
    gate_open(&g_block);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&counter), 0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.completed, 1);
    CHECK_EQ(s.queued, 0);
    cf_future_release(b);
    cf_future_release(q);
    cf_executor_free(ex);
}

/* An allocator that never gives memory back: a freed block is filled with
 * a pattern and kept, so a write after free shows in the pattern (in
 * every build, not only under AddressSanitizer). */
typedef struct kept_block {
    struct kept_block *next;
    size_t size;
    bool freed;
    max_align_t align_[]; /* the user's bytes follow */
} kept_block;
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static kept_block *kept;
enum { KEPT_PATTERN = 0xd5 };

static void *kept_malloc(size_t n)
{
    kept_block *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    b->size = n;
    b->freed = false;
    pthread_mutex_lock(&kept_mu);
    b->next = kept;
    kept = b;
    pthread_mutex_unlock(&kept_mu);
    return b + 1;
}
static void kept_free(void *p)
{
    if (!p)
        return;
    kept_block *b = (kept_block *)p - 1;
    memset(p, KEPT_PATTERN, b->size);
    b->freed = true;
}
static void *kept_calloc(size_t c, size_t n)
{
    if (n && c > (size_t)-1 / n)
        return NULL;
    void *p = kept_malloc(c * n);
    if (p)
        memset(p, 0, c * n);
    return p;
}
static void *kept_realloc(void *old, size_t n)
{
    void *p = kept_malloc(n);
    if (p && old) {
        size_t was = ((kept_block *)old - 1)->size;
        memcpy(p, old, was < n ? was : n);
        kept_free(old);
    }
    return p;
}
/* How many freed blocks were written to since their free. */
static int kept_written_after_free(void)
{
    int bad = 0;
    pthread_mutex_lock(&kept_mu);
    for (kept_block *b = kept; b; b = b->next) {
        const unsigned char *u = (const unsigned char *)(b + 1);
        for (size_t i = 0; b->freed && i < b->size; i++)
            if (u[i] != KEPT_PATTERN) {
                bad++;
                break;
            }
    }
    pthread_mutex_unlock(&kept_mu);
    return bad;
}

/* A done callback run by cf_future_cancel frees the pool of the queued
 * task it cancelled: the pool drops the cancelled entry and is gone when
 * the callback returns, and the cancel touches it no more (it used to
 * count itself in the freed pool's counters). */
static void open_and_free_pool(cf_future *f, void *ex)
{
    CHECK(cf_future_cancelled(f));
    gate_open(&g_block);
    cf_executor_free(ex);
}

static void cancel_callback_frees_executor(void)
{
    CHECK_EQ(
        cf_replace_allocator(kept_malloc, kept_realloc, kept_calloc, kept_free),
        0);
    cf_executor *ex = new_pool(1);
    cf_future *b = submit(ex, block, NULL);
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    cf_future *q = submit(ex, count, NULL);
    CHECK_EQ(cf_future_add_done_callback(q, open_and_free_pool, ex), 0);
    CHECK(cf_future_cancel(q));
    CHECK_EQ(kept_written_after_free(), 0);
    CHECK_EQ(atomic_load(&counter), 0);
    CHECK(cf_future_cancelled(q));
    CHECK_EQ(result_of(b), 0);
    cf_future_release(b);
    cf_future_release(q);
}

/* cf_shutdown(wait) from a task of the same pool: CF_EDEADLK, and nothing
 * done (the pool still takes work). Without wait it works. */
static cf_executor *g_ex;
static void *shutdown_self_wait(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)cf_shutdown(g_ex, true, false);
}
static void *shutdown_self_wait_cancel(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)cf_shutdown(g_ex, true, true);
}
static void *shutdown_self_no_wait(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)cf_shutdown(g_ex, false, false);
}

static void shutdown_from_task(void)
{
    g_ex = new_pool(2);
    cf_future *f = submit(g_ex, shutdown_self_wait, NULL);
    CHECK_EQ(result_of(f), CF_EDEADLK);
    cf_future_release(f);
    f = submit(g_ex, shutdown_self_wait_cancel, NULL);
    CHECK_EQ(result_of(f), CF_EDEADLK);
    cf_future_release(f);
    /* nothing was done: the pool still works */
    f = submit(g_ex, twice, (void *)3);
    CHECK_EQ(result_of(f), 6);
    cf_future_release(f);

    f = submit(g_ex, shutdown_self_no_wait, NULL);
    CHECK_EQ(result_of(f), 0);
    cf_future_release(f);
    CHECK_EQ(cf_submit(g_ex, twice, NULL, NULL), CF_ESHUTDOWN);
    cf_executor_free(g_ex);
}

/* cf_executor_free from a task of the pool: it does not wait; queued work
 * still runs; the last worker frees the pool. */
static gate g_freed = GATE_INIT;
static void *free_own_pool(void *arg)
{
    gate_wait(&g_freed);
    cf_executor_free(g_ex);
    return arg;
}

static void executor_free_from_task(void)
{
    oom_install();
    long live0 = oom_live_count();
    g_ex = new_pool(1);
    cf_future *a = submit(g_ex, free_own_pool, (void *)11);
    cf_future *b = submit(g_ex, twice, (void *)6);
    gate_open(&g_freed);
    CHECK_EQ(result_of(a), 11);
    CHECK_EQ(result_of(b), 12);
    cf_future_release(a);
    cf_future_release(b);
    /* the pool is freed by its last worker on the way out */
    WAIT_UNTIL(oom_live_count() == live0, 10.0);
    CHECK_EQ(oom_live_count(), live0);
}

/* Futures outlive their executor. */
static void futures_outlive_executor(void)
{
    cf_executor *ex = new_pool(2);
    cf_future *fs[10];
    for (intptr_t i = 0; i < 10; i++)
        fs[i] = submit(ex, twice, (void *)i);
    cf_executor_free(ex);
    for (intptr_t i = 0; i < 10; i++) {
        CHECK(cf_future_done(fs[i]));
        CHECK_EQ(result_of(fs[i]), 2 * i);
    }
    release_all(fs, 10);

    /* and cancelled ones too */
    ex = new_pool(1);
    cf_future *b = submit(ex, block, NULL);
    WAIT_UNTIL(atomic_load(&started) == 1, 10.0);
    cf_future *q = submit(ex, count, NULL);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    gate_open(&g_block);
    cf_executor_free(ex);
    CHECK_EQ(cf_future_result(q, 0, NULL), CF_ECANCELED);
    CHECK_EQ(cf_future_result(b, 0, NULL), 0);
    cf_future_release(b);
    cf_future_release(q);
}

/* ================================================================ stats */

static void stats_counters(void)
{
    cf_executor *ex = new_pool(2);
    cf_future *a = submit(ex, block, (void *)1);
    cf_future *b = submit(ex, block, (void *)2);
    WAIT_UNTIL(atomic_load(&started) == 2, 10.0);
    cf_stats s;
    WAIT_STATS(ex, s, s.running == 2);
    CHECK_EQ(s.workers, 2);
    CHECK_EQ(s.running, 2);
    CHECK_EQ(s.idle, 0);
    CHECK_EQ(s.queued, 0);
    cf_future *c = submit(ex, fail_with, (void *)3);
    cf_future *d = submit(ex, twice, (void *)4);
    cf_future *e = submit(ex, count, NULL);
    cf_future *f = submit(ex, twice, (void *)5);
    s = stats_of(ex);
    CHECK_EQ(s.queued, 4);
    CHECK_EQ(s.running, 2);
    CHECK_EQ(s.workers, 2);
    CHECK_EQ(s.completed, 0);
    CHECK(cf_future_cancel(e));
    gate_open(&g_block);
    cf_future *fs[] = { a, b, c, d, e, f };
    CHECK_EQ(cf_wait(fs, 6, 20.0, CF_ALL_COMPLETED), 0);
    WAIT_STATS(ex, s, s.completed == 4 && s.idle == 2 && s.running == 0);
    CHECK_EQ(s.completed, 4);
    CHECK_EQ(s.failed, 1);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.queued, 0);
    CHECK_EQ(s.running, 0);
    CHECK_EQ(s.workers, 2);
    CHECK_EQ(s.idle, 2);
    CHECK_EQ(atomic_load(&counter), 0);
    release_all(fs, 6);
    cf_executor_free(ex);
}

/* ============================================== nested waits (no deadlock) */

static void *child(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

static void *parent_result(void *arg)
{
    cf_future *f = NULL;
    if (cf_submit(g_ex, child, arg, &f) != 0)
        return (void *)-1;
    void *r = NULL;
    int rc = cf_future_result(f, 20.0, &r);
    cf_future_release(f);
    return rc ? (void *)(intptr_t)rc : r;
}

static void *parent_exception(void *arg)
{
    cf_future *f = NULL;
    if (cf_submit(g_ex, fail_with, arg, &f) != 0)
        return (void *)-1;
    const char *m = NULL;
    int rc = cf_future_exception(f, 20.0, &m);
    bool ok = rc == -EDOM && m && strncmp(m, "bad value", 9) == 0;
    cf_future_release(f);
    return (void *)(intptr_t)(ok ? 1 : rc);
}

static void *parent_wait(void *arg)
{
    enum { N = 20 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        if (cf_submit(g_ex, child, (void *)(intptr_t)i, &fs[i]) != 0)
            return (void *)-1;
    int rc = cf_wait(fs, N, 20.0, CF_ALL_COMPLETED);
    intptr_t sum = 0;
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        if (rc == 0 && cf_future_result(fs[i], 0, &r) == 0)
            sum += (intptr_t)r;
        cf_future_release(fs[i]);
    }
    (void)arg;
    return rc ? (void *)(intptr_t)rc : (void *)sum;
}

static void *parent_wait_first(void *arg)
{
    (void)arg;
    cf_future *f;
    if (cf_submit(g_ex, child, (void *)4, &f) != 0)
        return (void *)-1;
    int rc = cf_wait(&f, 1, 20.0, CF_FIRST_COMPLETED);
    void *r = NULL;
    if (rc == 0)
        rc = cf_future_result(f, 0, &r);
    cf_future_release(f);
    return rc ? (void *)(intptr_t)rc : r;
}

static void *parent_as_completed(void *arg)
{
    enum { N = 10 };
    (void)arg;
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        if (cf_submit(g_ex, child, (void *)(intptr_t)i, &fs[i]) != 0)
            return (void *)-1;
    cf_as_completed *it;
    intptr_t sum = 0;
    int rc = cf_as_completed_new(&it, fs, N, 20.0);
    if (rc == 0) {
        cf_future *f;
        while ((rc = cf_as_completed_next(it, &f)) == 0) {
            void *r = NULL;
            if (cf_future_result(f, 0, &r) == 0)
                sum += (intptr_t)r;
        }
        cf_as_completed_free(it);
        if (rc == CF_EOF)
            rc = 0;
    }
    release_all(fs, N);
    return rc ? (void *)(intptr_t)rc : (void *)sum;
}

static void *parent_map(void *arg)
{
    enum { N = 10 };
    (void)arg;
    void *args[N];
    for (intptr_t i = 0; i < N; i++)
        args[i] = (void *)i;
    cf_map *m;
    int rc = cf_map_new(&m, g_ex, child, args, N, (size_t)(intptr_t)arg, 20.0);
    if (rc)
        return (void *)(intptr_t)rc;
    intptr_t sum = 0, i = 0;
    void *r;
    while ((rc = cf_map_next(m, &r)) == 0) {
        if ((intptr_t)r != 2 * i)
            sum = -1000000;
        sum += (intptr_t)r;
        i++;
    }
    cf_map_free(m);
    if (rc != CF_EOF || i != N)
        return (void *)(intptr_t)(rc == CF_EOF ? -2 : rc);
    return (void *)sum;
}

/* With one worker, a task that submits to its own pool and waits for the
 * result must not deadlock: the waiting worker runs the child. */
static void nested_result_one_worker(void)
{
    g_ex = new_pool(1);
    cf_future *f = submit(g_ex, parent_result, (void *)21);
    CHECK_EQ(result_of(f), 42);
    cf_future_release(f);
    f = submit(g_ex, parent_exception, (void *)1);
    CHECK_EQ(result_of(f), 1);
    cf_future_release(f);
    cf_executor_free(g_ex);
}

static void nested_wait_one_worker(void)
{
    g_ex = new_pool(1);
    cf_future *f = submit(g_ex, parent_wait, NULL);
    CHECK_EQ(result_of(f), 2 * (19 * 20 / 2));
    cf_future_release(f);
    f = submit(g_ex, parent_wait_first, NULL);
    CHECK_EQ(result_of(f), 8);
    cf_future_release(f);
    cf_executor_free(g_ex);
}

static void nested_as_completed_one_worker(void)
{
    g_ex = new_pool(1);
    cf_future *f = submit(g_ex, parent_as_completed, NULL);
    CHECK_EQ(result_of(f), 2 * 45);
    cf_future_release(f);
    cf_executor_free(g_ex);
}

static void nested_map_one_worker(void)
{
    g_ex = new_pool(1);
    const intptr_t buffers[] = { 0, 1, 3 };
    for (int i = 0; i < 3; i++) {
        cf_future *f = submit(g_ex, parent_map, (void *)buffers[i]);
        CHECK_EQ(result_of(f), 2 * 45);
        cf_future_release(f);
    }
    cf_executor_free(g_ex);
}

/* Many parents at once on a small pool, all waiting on children. */
static void nested_many_parents(void)
{
    enum { N = 40 };
    g_ex = new_pool(2);
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit(g_ex, i % 2 ? parent_wait : parent_result,
                       (void *)(intptr_t)i);
    for (int i = 0; i < N; i++)
        CHECK_EQ(result_of(fs[i]), i % 2 ? 2 * (19 * 20 / 2) : 2 * i);
    release_all(fs, N);
    cf_executor_free(g_ex);
}

/* Fib-like recursion: each level submits two children and waits for both,
 * 10 levels deep. */
static void *fib_task(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    cf_future *a = NULL, *b = NULL;
    if (cf_submit(g_ex, fib_task, (void *)(n - 1), &a) != 0)
        return (void *)-1000000;
    if (cf_submit(g_ex, fib_task, (void *)(n - 2), &b) != 0) {
        cf_future_result(a, 20.0, NULL);
        cf_future_release(a);
        return (void *)-1000000;
    }
    void *ra = NULL, *rb = NULL;
    int rc1 = cf_future_result(b, 20.0, &rb);
    int rc2 = cf_future_result(a, 20.0, &ra);
    cf_future_release(a);
    cf_future_release(b);
    if (rc1 || rc2)
        return (void *)-1000000;
    return (void *)((intptr_t)ra + (intptr_t)rb);
}

static void *fib_wait_task(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    cf_future *fs[2];
    if (cf_submit(g_ex, fib_wait_task, (void *)(n - 1), &fs[0]) != 0)
        return (void *)-1000000;
    if (cf_submit(g_ex, fib_wait_task, (void *)(n - 2), &fs[1]) != 0) {
        cf_future_result(fs[0], 20.0, NULL);
        cf_future_release(fs[0]);
        return (void *)-1000000;
    }
    intptr_t sum = -1000000;
    if (cf_wait(fs, 2, 20.0, CF_ALL_COMPLETED) == 0) {
        void *ra = NULL, *rb = NULL;
        if (cf_future_result(fs[0], 0, &ra) == 0 &&
            cf_future_result(fs[1], 0, &rb) == 0)
            sum = (intptr_t)ra + (intptr_t)rb;
    } else {
        cf_future_result(fs[0], 20.0, NULL);
        cf_future_result(fs[1], 20.0, NULL);
    }
    release_all(fs, 2);
    return (void *)sum;
}

static void nested_fib(void)
{
    for (int workers = 1; workers <= 2; workers++) {
        g_ex = new_pool(workers);
        cf_future *f = submit(g_ex, fib_task, (void *)10);
        CHECK_EQ(result_of(f), 55);
        cf_future_release(f);
        f = submit(g_ex, fib_wait_task, (void *)10);
        CHECK_EQ(result_of(f), 55);
        cf_future_release(f);
        cf_executor_free(g_ex);
    }
}

/* A chain: each task submits the next and waits for it, 300 deep, on one
 * worker. The waits are timed, so none runs its child inline: each blocks
 * and a spare worker stands in for it, 300 deep. */
static void *chain_task(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n == 0)
        return (void *)0;
    cf_future *f = NULL;
    if (cf_submit(g_ex, chain_task, (void *)(n - 1), &f) != 0)
        return (void *)-1000000;
    void *r = NULL;
    int rc = cf_future_result(f, 30.0, &r);
    cf_future_release(f);
    return rc ? (void *)-1000000 : (void *)((intptr_t)r + 1);
}

static void nested_chain_deep(void)
{
    for (int workers = 1; workers <= 2; workers++) {
        g_ex = new_pool(workers);
        cf_future *f = submit(g_ex, chain_task, (void *)300);
        CHECK_EQ(result_of(f), 300);
        cf_future_release(f);
        cf_executor_free(g_ex);
    }
}

/* Several fib trees at once on 4 workers. */
static void nested_fib_concurrent(void)
{
    g_ex = new_pool(4);
    cf_future *fs[6];
    for (int i = 0; i < 6; i++)
        fs[i] = submit(g_ex, i % 2 ? fib_wait_task : fib_task, (void *)12);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(result_of(fs[i]), 144);
    release_all(fs, 6);
    cf_executor_free(g_ex);
}

/* A task waiting on a future that a thread outside the pool completes
 * does not hold up the pool: its worker runs the other queued work
 * meanwhile, and it wakes when the future is set. */
static cf_future *g_user_future;
static void *wait_user_future(void *arg)
{
    void *r = NULL;
    int rc;
    if (arg) {
        rc = cf_wait(&g_user_future, 1, 20.0, CF_ALL_COMPLETED);
        if (rc == 0)
            rc = cf_future_result(g_user_future, 0, &r);
    } else {
        rc = cf_future_result(g_user_future, 20.0, &r);
    }
    return rc ? (void *)(intptr_t)rc : r;
}

static void waiting_task_runs_other_work(void)
{
    for (intptr_t via_wait = 0; via_wait < 2; via_wait++) {
        g_user_future = cf_future_new();
        CHECK(g_user_future != NULL);
        cf_executor *ex = new_pool(1);
        cf_future *a = submit(ex, wait_user_future, (void *)via_wait);
        sleep_s(0.05); /* a is waiting by now */
        cf_future *b = submit(ex, twice, (void *)21);
        void *r = NULL;
        CHECK_EQ(cf_future_result(b, 10.0, &r), 0);
        CHECK_EQ((intptr_t)r, 42);
        CHECK(!cf_future_done(a));
        CHECK_EQ(cf_future_set_result(g_user_future, (void *)77), 0);
        CHECK_EQ(result_of(a), 77);
        cf_future_release(a);
        cf_future_release(b);
        cf_future_release(g_user_future);
        cf_executor_free(ex);
    }
}

/* executor.py: test_no_stale_references. Once a fire-and-forget task has
 * run, the pool keeps nothing of it (its future is freed) while the pool
 * lives on. */
static void no_stale_references(void)
{
    oom_install();
    cf_executor *ex = new_pool(1); /* one worker: no thread starts later */
    cf_future *warm = submit(ex, twice, (void *)1);
    CHECK_EQ(result_of(warm), 2);
    cf_future_release(warm);
    cf_stats s;
    WAIT_STATS(ex, s, s.completed == 1);
    long base = oom_live_count();
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cf_submit(ex, count, NULL, NULL), 0);
    WAIT_STATS(ex, s, s.completed == 11);
    CHECK_EQ(s.completed, 11);
    WAIT_UNTIL(oom_live_count() <= base, 10.0);
    if (oom_live_count() > base)
        fprintf(stderr, "%ld blocks still held\n", oom_live_count() - base);
    CHECK(oom_live_count() <= base);
    cf_executor_free(ex);
}

/* test_process_fork_from_a_threadpool: fork() from inside a task; the
 * child starts a pool of its own, uses it, and exits cleanly. */
static void *fork_and_use_pool(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0) {
        /* ThreadSanitizer cannot start threads in the child of a
         * multi-threaded fork; under it the child only exits. */
        if (TEST_TSAN)
            _exit(0);
        cf_executor *ex = cf_thread_pool_new(NULL);
        if (!ex)
            _exit(2);
        cf_future *f = NULL;
        if (cf_submit(ex, twice, (void *)21, &f) != 0)
            _exit(3);
        void *r = NULL;
        int rc = cf_future_result(f, 10.0, &r);
        cf_future_release(f);
        cf_executor_free(ex);
        _exit(rc == 0 && (intptr_t)r == 42 ? 0 : 4);
    }
    if (pid < 0)
        return (void *)-1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return (void *)(intptr_t)(WIFEXITED(status) ? WEXITSTATUS(status) : 100);
}

static void fork_from_a_task(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *f = submit(ex, fork_and_use_pool, NULL);
    CHECK_EQ(result_of(f), 0);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* ============================================================ I/O bound */

/* 50 tasks sleeping 0.1 s on 50 workers overlap: far less than 5 s. */
static void io_bound_overlap(void)
{
    cf_executor *ex = new_pool(50);
    cf_future *fs[50];
    double t0 = now_s();
    for (int i = 0; i < 50; i++)
        fs[i] = submit(ex, sleep_100ms, (void *)(intptr_t)i);
    CHECK_EQ(cf_wait(fs, 50, 20.0, CF_ALL_COMPLETED), 0);
    double dt = now_s() - t0;
    cf_stats s = stats_of(ex);
    if (dt >= 2.5 * test_scale())
        fprintf(stderr, "50 x 0.1 s took %.2f s on %zu workers\n", dt,
                s.workers);
    CHECK(dt >= 0.09);
    CHECK(dt < 2.5 * test_scale());
    for (int i = 0; i < 50; i++)
        CHECK_EQ(result_of(fs[i]), i);
    release_all(fs, 50);
    CHECK(s.workers > 10);
    CHECK(s.workers <= 50);
    cf_executor_free(ex);
}

/* ============================================================ bad input */

static void bad_input(void)
{
    cf_executor *ex = new_pool(1);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(NULL, twice, NULL, &f), CF_EINVAL);
    CHECK(f == NULL);
    CHECK_EQ(cf_submit(ex, NULL, NULL, &f), CF_EINVAL);
    CHECK(f == NULL);
    CHECK_EQ(cf_submit(ex, NULL, NULL, NULL), CF_EINVAL);
    CHECK_EQ(cf_shutdown(NULL, true, false), CF_EINVAL);
    cf_stats s;
    CHECK_EQ(cf_executor_stats(NULL, &s), CF_EINVAL);
    CHECK_EQ(cf_executor_stats(ex, NULL), CF_EINVAL);
    /* nothing changed */
    f = submit(ex, twice, (void *)2);
    CHECK_EQ(result_of(f), 4);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* ============================================================== ENOMEM */

static int pool_new_op(void *ctx)
{
    (void)ctx;
    cf_options o = { .max_workers = 2,
                     .name_prefix = "oom",
                     .initializer = init,
                     .initarg = (void *)"x" };
    errno = 0;
    cf_executor *ex = cf_thread_pool_new(&o);
    if (!ex) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    cf_executor_free(ex);
    return 0;
}

static void pool_new_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    CHECK(oom_sweep(pool_new_op, NULL, NULL) >= 1);
    CHECK_EQ(oom_live_count(), live0);
}

/* The sweep's state: the pool, and the live count when the op began (the
 * worker drops its reference to a future a little after the caller sees
 * the result, so undo waits for that before the next round). */
typedef struct submit_oom {
    cf_executor *ex;
    long live_at_start;
    intptr_t n;
} submit_oom;

static int submit_op(void *ctx)
{
    submit_oom *c = ctx;
    c->live_at_start = oom_live_count();
    cf_future *f = NULL;
    int rc = cf_submit(c->ex, twice, (void *)c->n, &f);
    if (rc != 0)
        return rc;
    CHECK_EQ(result_of(f), 2 * c->n);
    cf_future_release(f);
    c->n++;
    return 0;
}

static void submit_undo(void *ctx)
{
    submit_oom *c = ctx;
    WAIT_UNTIL(oom_live_count() == c->live_at_start, 5.0);
    CHECK_EQ(oom_live_count(), c->live_at_start);
}

/* cf_submit under ENOMEM, on a pool with a worker already running, then
 * the pool is still usable. */
static void submit_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    submit_oom c = { .ex = new_pool(1), .n = 1 };
    cf_future *warm = submit(c.ex, twice, (void *)1);
    CHECK_EQ(result_of(warm), 2);
    cf_future_release(warm);
    /* The worker drops its reference to the warm-up future a moment after
     * the result is out: let that happen before the sweep counts. */
    long before;
    do {
        before = oom_live_count();
        sleep_s(0.02);
    } while (oom_live_count() != before);
    CHECK(oom_sweep(submit_op, submit_undo, &c) >= 1);
    for (intptr_t i = 0; i < 10; i++) {
        cf_future *f = submit(c.ex, twice, (void *)i);
        CHECK_EQ(result_of(f), 2 * i);
        cf_future_release(f);
    }
    cf_executor_free(c.ex);
    CHECK_EQ(oom_live_count(), live0);
}

/* The first submit starts a worker; that can run out of memory too, and
 * must fail the submit rather than leave a task no one will run. */
static int fresh_pool_op(void *ctx)
{
    (void)ctx;
    cf_options o = { .max_workers = 1, .name_prefix = "fresh" };
    errno = 0;
    cf_executor *ex = cf_thread_pool_new(&o);
    if (!ex) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    cf_future *f = NULL;
    int rc = cf_submit(ex, twice, (void *)5, &f);
    if (rc == 0) {
        CHECK_EQ(result_of(f), 10);
        cf_future_release(f);
    } else {
        CHECK(rc == CF_ENOMEM);
    }
    cf_executor_free(ex);
    return rc;
}

static void first_submit_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    CHECK(oom_sweep(fresh_pool_op, NULL, NULL) >= 2);
    CHECK_EQ(oom_live_count(), live0);
}

/* ============================================================== stress */

typedef struct producer {
    cf_executor *ex;
    int id;
    cf_future **fs;
    int n;
} producer;

static atomic_long task_sum;
static void *add_to_sum(void *arg)
{
    atomic_fetch_add(&task_sum, (long)(intptr_t)arg);
    return (void *)((intptr_t)arg + 1);
}

static void *produce(void *p)
{
    producer *pr = p;
    int k = 0;
    for (int i = 0; i < pr->n; i++) {
        intptr_t v = (intptr_t)pr->id * 1000000 + i;
        if (i % 2) {
            CHECK_EQ(cf_submit(pr->ex, add_to_sum, (void *)v, NULL), 0);
        } else {
            CHECK_EQ(cf_submit(pr->ex, add_to_sum, (void *)v, &pr->fs[k]), 0);
            k++;
        }
    }
    return NULL;
}

static void many_producers(int workers)
{
    enum { P = 4, PER = 20000 };
    cf_executor *ex = new_pool(workers);
    producer prs[P];
    cf_thread *th[P];
    long expect = 0;
    for (int p = 0; p < P; p++) {
        prs[p] =
            (producer){ ex, p, malloc(sizeof(cf_future *) * PER / 2), PER };
        CHECK(prs[p].fs != NULL);
        for (int i = 0; i < PER; i++)
            expect += (long)p * 1000000 + i;
        CHECK_EQ(cf_thread_start(&th[p], produce, &prs[p], NULL), 0);
    }
    for (int p = 0; p < P; p++)
        CHECK_EQ(cf_thread_join(th[p], CF_FOREVER, NULL), 0);
    for (int p = 0; p < P; p++) {
        for (int k = 0; k < PER / 2; k++) {
            intptr_t v = (intptr_t)p * 1000000 + 2 * k;
            CHECK_EQ(result_of(prs[p].fs[k]), v + 1);
        }
    }
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&task_sum), expect);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.completed, P * PER);
    CHECK_EQ(s.failed, 0);
    CHECK_EQ(s.queued, 0);
    CHECK(s.workers == 0);
    for (int p = 0; p < P; p++) {
        release_all(prs[p].fs, PER / 2);
        free(prs[p].fs);
    }
    cf_executor_free(ex);
}

static void many_producers_2_workers(void)
{
    many_producers(2);
}
static void many_producers_4_workers(void)
{
    many_producers(4);
}

static const test_case cases[] = {
    TEST_CASE(submit_result),
    TEST_CASE(submit_many_results),
    TEST_CASE(fire_and_forget),
    TEST_CASE(release_before_done),
    TEST_CASE(default_max_workers),
    TEST_CASE(saturation),
    TEST_CASE(negative_max_workers),
    TEST_CASE(lazy_threads),
    TEST_CASE(idle_thread_reuse),
    TEST_CASE(threads_terminate),
    TEST_CASE(thread_names_assigned),
    TEST_CASE(name_prefix_is_copied),
    TEST_CASE(thread_names_default),
    TEST_CASE(initializer_runs),
    TEST_CASE(initializer_once_per_worker),
    TEST_CASE(failing_initializer_breaks_pool),
    TEST_CASE(fail_in_task),
    TEST_CASE(fail_does_not_leak_to_next_task),
    TEST_CASE(fail_outside_task),
    TEST_CASE(submit_after_shutdown),
    TEST_CASE(shutdown_idempotent),
    TEST_CASE(shutdown_wait_waits),
    TEST_CASE(shutdown_no_wait),
    TEST_CASE(shutdown_cancel_futures),
    TEST_CASE(shutdown_cancel_futures_no_wait),
    TEST_CASE(cancel_futures_wait_false),
    TEST_CASE(cancelled_then_shutdown_no_hang),
    TEST_CASE(cancel_queued_future),
    TEST_CASE(cancel_callback_frees_executor),
    TEST_CASE(shutdown_from_task),
    TEST_CASE(executor_free_from_task),
    TEST_CASE(futures_outlive_executor),
    TEST_CASE(stats_counters),
    TEST_CASE(nested_result_one_worker),
    TEST_CASE(nested_wait_one_worker),
    TEST_CASE(nested_as_completed_one_worker),
    TEST_CASE(nested_map_one_worker),
    TEST_CASE(nested_many_parents),
    TEST_CASE(nested_fib),
    TEST_CASE(nested_fib_concurrent),
    TEST_CASE(nested_chain_deep),
    TEST_CASE(waiting_task_runs_other_work),
    TEST_CASE(no_stale_references),
    TEST_CASE(fork_from_a_task),
    TEST_CASE(io_bound_overlap),
    TEST_CASE(bad_input),
    TEST_CASE(pool_new_enomem),
    TEST_CASE(submit_enomem),
    TEST_CASE(first_submit_enomem),
    TEST_CASE(many_producers_2_workers),
    TEST_CASE(many_producers_4_workers),
};

TEST_MAIN(cases)
