/* SPDX-License-Identifier: MIT */
/*
 * test_wait.c - cf_wait and cf_as_completed over user-made futures and
 * thread-pool futures. Cases mirror CPython's
 * Lib/test/test_concurrent_futures/test_wait.py and test_as_completed.py
 * where one applies. Unlike CPython, a cancelled future is done at once
 * (no CANCELLED vs CANCELLED_AND_NOTIFIED split), so it counts as completed
 * for every cf_wait condition and is yielded by as_completed.
 */
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* ---- helpers */

static cf_future *new_pending(void)
{
    cf_future *f = cf_future_new();
    CHECK(f != NULL);
    return f;
}

static cf_future *new_cancelled(void)
{
    cf_future *f = new_pending();
    CHECK(cf_future_cancel(f));
    return f;
}

static cf_future *new_failed(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "exception future"), 0);
    return f;
}

static cf_future *new_succeeded(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_result(f, (void *)42), 0);
    return f;
}

static void release_all(cf_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cf_future_release(fs[i]);
}

/* A thread that completes futures one by one after delays. */
typedef enum { ACT_RESULT, ACT_FAIL, ACT_CANCEL } act;
typedef struct step {
    cf_future *f;
    double delay; /* before this step */
    act kind;
} step;
typedef struct script {
    step steps[8];
    int n;
    pthread_t th;
} script;

static void *script_main(void *p)
{
    script *s = p;
    for (int i = 0; i < s->n; i++) {
        sleep_s(s->steps[i].delay);
        switch (s->steps[i].kind) {
        case ACT_RESULT:
            CHECK_EQ(cf_future_set_result(s->steps[i].f, (void *)(intptr_t)i),
                     0);
            break;
        case ACT_FAIL:
            CHECK_EQ(
                cf_future_set_exception(s->steps[i].f, CF_EBROKEN, "scripted"),
                0);
            break;
        case ACT_CANCEL: CHECK(cf_future_cancel(s->steps[i].f)); break;
        }
    }
    return NULL;
}

static void script_start(script *s)
{
    CHECK_EQ(pthread_create(&s->th, NULL, script_main, s), 0);
}

static void script_join(script *s)
{
    CHECK_EQ(pthread_join(s->th, NULL), 0);
}

/* ---- tasks for the pool */

static void *mul_21_2(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)(21 * 2);
}

static void *divmod_by_zero(void *arg)
{
    (void)arg;
    cf_fail(-EDOM, "division by zero");
    return NULL;
}

static void *wait_gate(void *arg)
{
    gate_wait(arg);
    return NULL;
}

static gate g_raise = GATE_INIT;
static void *wait_and_raise(void *arg)
{
    (void)arg;
    gate_wait(&g_raise);
    cf_fail(CF_EBROKEN, "this is an exception");
    return NULL;
}

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

/* =========================================================== cf_wait */

/* test_20369: duplicates in the input. */
static void wait_duplicates(void)
{
    cf_executor *ex = new_pool(5);
    cf_future *f = submit(ex, mul_21_2, NULL);
    cf_future *fs[] = { f, f };
    CHECK_EQ(cf_wait(fs, 2, 10.0, CF_ALL_COMPLETED), 0);
    CHECK(cf_future_done(f));
    cf_future *many[] = { f, f, f, f, f };
    CHECK_EQ(cf_wait(many, 5, 0, CF_FIRST_COMPLETED), 0);
    CHECK_EQ(cf_wait(many, 5, 0, CF_FIRST_EXCEPTION), 0);
    /* duplicates of a pending future also work, and time out */
    cf_future *p = new_pending();
    cf_future *dup[] = { p, p, p };
    CHECK_EQ(cf_wait(dup, 3, 0.05, CF_ALL_COMPLETED), CF_ETIMEDOUT);
    CHECK_EQ(cf_future_set_result(p, NULL), 0);
    CHECK_EQ(cf_wait(dup, 3, 0, CF_ALL_COMPLETED), 0);
    cf_future_release(p);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* test_first_completed: one quick task and one that blocks. (The CPython
 * case also passes a CANCELLED, not-yet-notified future that is not done
 * there; in cfutures it would be done, see wait_cancelled_counts_as_done.) */
static void wait_first_completed(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    cf_future *f2 = submit(ex, wait_gate, &g);
    cf_future *f1 = submit(ex, mul_21_2, NULL);
    cf_future *fs[] = { f2, f1 };
    CHECK_EQ(cf_wait(fs, 2, 10.0, CF_FIRST_COMPLETED), 0);
    CHECK(cf_future_done(f1));
    CHECK(!cf_future_done(f2));
    void *r = NULL;
    CHECK_EQ(cf_future_result(f1, 0, &r), 0);
    CHECK_EQ((intptr_t)r, 42);
    gate_open(&g);
    CHECK_EQ(cf_future_result(f2, 10.0, NULL), 0);
    cf_future_release(f1);
    cf_future_release(f2);
    cf_executor_free(ex);
}

/* test_first_completed_some_already_completed */
static void wait_first_completed_some_already_completed(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    cf_future *f1 = submit(ex, wait_gate, &g);
    cf_future *cancelled = new_cancelled();
    cf_future *ok = new_succeeded();
    cf_future *fs[] = { cancelled, ok, f1 };
    int rc = 1;
    CHECK_TIME(rc = cf_wait(fs, 3, 10.0, CF_FIRST_COMPLETED), 0, 2.0);
    CHECK_EQ(rc, 0);
    CHECK(!cf_future_done(f1));
    gate_open(&g);
    CHECK_EQ(cf_future_result(f1, 10.0, NULL), 0);
    cf_future_release(f1);
    cf_future_release(cancelled);
    cf_future_release(ok);
    cf_executor_free(ex);
}

/* cfutures: a cancelled future is done at once, for every condition. */
static void wait_cancelled_counts_as_done(void)
{
    cf_future *c = new_cancelled();
    cf_future *p = new_pending();
    cf_future *fs[] = { p, c };
    CHECK_EQ(cf_wait(fs, 2, 0, CF_FIRST_COMPLETED), 0);
    CHECK_EQ(cf_wait(&c, 1, 0, CF_ALL_COMPLETED), 0);
    CHECK_EQ(cf_wait(fs, 2, 0, CF_ALL_COMPLETED), CF_ETIMEDOUT);
    release_all(fs, 2);
}

/* test_first_exception */
static cf_future *g_first;
static void *wait_for_future1(void *arg)
{
    (void)arg;
    CHECK_EQ(cf_future_result(g_first, 10.0, NULL), 0);
    gate_open(&g_raise);
    return NULL;
}

static void wait_first_exception(void)
{
    cf_executor *ex = new_pool(5);
    gate g2 = GATE_INIT;
    cf_future *f1 = submit(ex, mul_21_2, NULL);
    cf_future *f2 = submit(ex, wait_and_raise, NULL);
    cf_future *f3 = submit(ex, wait_gate, &g2);
    g_first = f1;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, wait_for_future1, NULL), 0);
    cf_future *fs[] = { f1, f2, f3 };
    CHECK_EQ(cf_wait(fs, 3, 10.0, CF_FIRST_EXCEPTION), 0);
    CHECK(cf_future_done(f1));
    CHECK(cf_future_done(f2));
    CHECK(!cf_future_done(f3));
    CHECK_EQ(cf_future_result(f2, 0, NULL), CF_EBROKEN);
    CHECK_EQ(pthread_join(th, NULL), 0);
    gate_open(&g2);
    CHECK_EQ(cf_future_result(f3, 10.0, NULL), 0);
    release_all(fs, 3);
    cf_executor_free(ex);
}

/* test_first_exception_some_already_complete */
static void wait_first_exception_some_already_complete(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    cf_future *ok = new_succeeded();
    cf_future *cancelled = new_cancelled();
    cf_future *f1 = submit(ex, divmod_by_zero, NULL);
    cf_future *f2 = submit(ex, wait_gate, &g);
    cf_future *fs[] = { ok, cancelled, f1, f2 };
    CHECK_EQ(cf_wait(fs, 4, 10.0, CF_FIRST_EXCEPTION), 0);
    CHECK(cf_future_done(f1));
    CHECK_EQ(cf_future_result(f1, 0, NULL), -EDOM);
    CHECK(!cf_future_done(f2));
    gate_open(&g);
    CHECK_EQ(cf_future_result(f2, 10.0, NULL), 0);
    release_all(fs, 4);
    cf_executor_free(ex);
}

/* test_first_exception_one_already_failed */
static void wait_first_exception_one_already_failed(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    cf_future *failed = new_failed();
    cf_future *f1 = submit(ex, wait_gate, &g);
    cf_future *fs[] = { failed, f1 };
    int rc = 1;
    CHECK_TIME(rc = cf_wait(fs, 2, 10.0, CF_FIRST_EXCEPTION), 0, 2.0);
    CHECK_EQ(rc, 0);
    CHECK(!cf_future_done(f1));
    gate_open(&g);
    CHECK_EQ(cf_future_result(f1, 10.0, NULL), 0);
    release_all(fs, 2);
    cf_executor_free(ex);
}

/* cfutures: FIRST_EXCEPTION returns 0 when all finished without failing. */
static void wait_first_exception_all_finished_without_failure(void)
{
    cf_future *a = new_pending(), *b = new_pending(), *c = new_succeeded();
    cf_future *fs[] = { a, b, c };
    script s = {
        .n = 2, .steps = { { a, 0.05, ACT_RESULT }, { b, 0.05, ACT_RESULT } }
    };
    script_start(&s);
    int rc = 1;
    CHECK_TIME(rc = cf_wait(fs, 3, 10.0, CF_FIRST_EXCEPTION), 0.08, 5.0);
    CHECK_EQ(rc, 0);
    CHECK(cf_future_done(a));
    CHECK(cf_future_done(b));
    script_join(&s);
    release_all(fs, 3);
}

/* cfutures: cancellation is not a failure for FIRST_EXCEPTION. */
static void wait_first_exception_cancel_is_not_failure(void)
{
    cf_future *a = new_pending(), *b = new_pending();
    cf_future *fs[] = { a, b };
    CHECK(cf_future_cancel(a));
    int rc = 0;
    CHECK_TIME(rc = cf_wait(fs, 2, 0.1, CF_FIRST_EXCEPTION), 0.09, 3.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    /* a cancellation that happens during the wait does not end it either */
    cf_future *c = new_pending(), *d = new_pending();
    cf_future *gs[] = { c, d };
    script s = { .n = 1, .steps = { { c, 0.02, ACT_CANCEL } } };
    script_start(&s);
    CHECK_TIME(rc = cf_wait(gs, 2, 0.2, CF_FIRST_EXCEPTION), 0.19, 3.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    script_join(&s);
    /* once the rest is done (here: finished), the wait is over */
    CHECK_EQ(cf_future_set_result(b, NULL), 0);
    CHECK_EQ(cf_wait(fs, 2, 0, CF_FIRST_EXCEPTION), 0);
    /* all cancelled: all done, none failed */
    CHECK(cf_future_cancel(d));
    CHECK_EQ(cf_wait(gs, 2, 0, CF_FIRST_EXCEPTION), 0);
    release_all(fs, 2);
    release_all(gs, 2);
}

/* FIRST_EXCEPTION wakes on the first failure that happens during the wait. */
static void wait_first_exception_wakes_on_failure(void)
{
    cf_future *a = new_pending(), *b = new_pending(), *c = new_pending();
    cf_future *fs[] = { a, b, c };
    script s = { .n = 2,
                 .steps = { { a, 0.05, ACT_RESULT }, { b, 0.1, ACT_FAIL } } };
    script_start(&s);
    int rc = 1;
    CHECK_TIME(rc = cf_wait(fs, 3, 10.0, CF_FIRST_EXCEPTION), 0.12, 5.0);
    CHECK_EQ(rc, 0);
    CHECK(cf_future_done(b));
    CHECK(!cf_future_done(c));
    script_join(&s);
    CHECK_EQ(cf_future_set_result(c, NULL), 0);
    release_all(fs, 3);
}

/* test_all_completed */
static void wait_all_completed(void)
{
    cf_executor *ex = new_pool(5);
    cf_future *ok = new_succeeded();
    cf_future *cancelled = new_cancelled();
    cf_future *failed = new_failed();
    cf_future *f1 = submit(ex, divmod_by_zero, NULL);
    cf_future *f2 = submit(ex, mul_21_2, NULL);
    cf_future *fs[] = { ok, cancelled, failed, f1, f2 };
    CHECK_EQ(cf_wait(fs, 5, 10.0, CF_ALL_COMPLETED), 0);
    for (int i = 0; i < 5; i++)
        CHECK(cf_future_done(fs[i]));
    CHECK_EQ(cf_future_result(f1, 0, NULL), -EDOM);
    release_all(fs, 5);
    cf_executor_free(ex);
}

/* ALL_COMPLETED waits for the last one, and wakes on it. */
static void wait_all_completed_waits_for_last(void)
{
    cf_future *a = new_pending(), *b = new_pending(), *c = new_pending();
    cf_future *fs[] = { a, b, c };
    script s = { .n = 3,
                 .steps = { { c, 0.05, ACT_RESULT },
                            { a, 0.05, ACT_FAIL },
                            { b, 0.1, ACT_CANCEL } } };
    script_start(&s);
    int rc = 1;
    CHECK_TIME(rc = cf_wait(fs, 3, 10.0, CF_ALL_COMPLETED), 0.18, 5.0);
    CHECK_EQ(rc, 0);
    CHECK(cf_future_cancelled(b));
    script_join(&s);
    release_all(fs, 3);
}

/* FIRST_COMPLETED wakes on a completion that happens during the wait,
 * including a cancellation. */
static void wait_first_completed_wakes(void)
{
    for (int k = 0; k < 3; k++) {
        cf_future *a = new_pending(), *b = new_pending();
        cf_future *fs[] = { a, b };
        script s = { .n = 1, .steps = { { b, 0.1, (act)k } } };
        script_start(&s);
        int rc = 1;
        CHECK_TIME(rc = cf_wait(fs, 2, 10.0, CF_FIRST_COMPLETED), 0.08, 5.0);
        CHECK_EQ(rc, 0);
        CHECK(cf_future_done(b));
        CHECK(!cf_future_done(a));
        script_join(&s);
        release_all(fs, 2);
    }
}

/* test_timeout */
static void wait_timeout(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    cf_future *cancelled = new_cancelled();
    cf_future *failed = new_failed();
    cf_future *ok = new_succeeded();
    cf_future *f = submit(ex, wait_gate, &g);
    cf_future *fs[] = { cancelled, failed, ok, f };
    int rc = 0;
    CHECK_TIME(rc = cf_wait(fs, 4, 0.05, CF_ALL_COMPLETED), 0.045, 3.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK(!cf_future_done(f));
    /* a poll answers at once */
    CHECK_TIME(rc = cf_wait(fs, 4, 0, CF_ALL_COMPLETED), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    cf_future *only[] = { f };
    CHECK_TIME(rc = cf_wait(only, 1, 0, CF_FIRST_COMPLETED), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK_TIME(rc = cf_wait(only, 1, 0, CF_FIRST_EXCEPTION), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    gate_open(&g);
    CHECK_EQ(cf_future_result(f, 10.0, NULL), 0);
    CHECK_EQ(cf_wait(fs, 4, 0, CF_ALL_COMPLETED), 0);
    release_all(fs, 4);
    cf_executor_free(ex);
}

/* Any negative timeout waits forever. */
static void wait_negative_timeout_is_forever(void)
{
    cf_future *a = new_pending();
    script s = { .n = 1, .steps = { { a, 0.1, ACT_RESULT } } };
    script_start(&s);
    CHECK_EQ(cf_wait(&a, 1, -3.5, CF_ALL_COMPLETED), 0);
    CHECK(cf_future_done(a));
    script_join(&s);
    cf_future_release(a);
}

/* test_pending_calls_race: 100 tasks released at once, then wait for all. */
static void wait_pending_calls_race(void)
{
    enum { N = 100 };
    cf_executor *ex = new_pool(8);
    gate g = GATE_INIT;
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit(ex, wait_gate, &g);
    gate_open(&g);
    CHECK_EQ(cf_wait(fs, N, 20.0, CF_ALL_COMPLETED), 0);
    for (int i = 0; i < N; i++)
        CHECK(cf_future_done(fs[i]));
    release_all(fs, N);
    cf_executor_free(ex);
}

/* Many waiters on overlapping sets while futures complete concurrently. */
typedef struct waiter {
    cf_future **fs;
    size_t n;
    cf_return_when when;
    int rc;
} waiter;

static void *waiter_main(void *p)
{
    waiter *w = p;
    w->rc = cf_wait(w->fs, w->n, 20.0, w->when);
    return NULL;
}

static void wait_many_waiters(void)
{
    enum { N = 64, W = 8 };
    for (int round = 0; round < 20; round++) {
        cf_future *fs[N];
        for (int i = 0; i < N; i++)
            fs[i] = new_pending();
        waiter w[W];
        pthread_t th[W];
        for (int i = 0; i < W; i++) {
            w[i] = (waiter){ fs + i * 4, N - (size_t)i * 4,
                             (cf_return_when)(i % 3), 1 };
            CHECK_EQ(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
        }
        for (int i = N - 1; i >= 0; i--) {
            if (i % 3 == 0)
                CHECK(cf_future_cancel(fs[i]));
            else
                CHECK_EQ(cf_future_set_result(fs[i], NULL), 0);
        }
        for (int i = 0; i < W; i++) {
            CHECK_EQ(pthread_join(th[i], NULL), 0);
            CHECK_EQ(w[i].rc, 0);
        }
        release_all(fs, N);
    }
}

static void wait_n_zero(void)
{
    cf_future *p = new_pending();
    int rc = 1;
    CHECK_TIME(rc = cf_wait(&p, 0, CF_FOREVER, CF_ALL_COMPLETED), 0, 1.0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(cf_wait(&p, 0, CF_FOREVER, CF_FIRST_COMPLETED), 0);
    CHECK_EQ(cf_wait(&p, 0, CF_FOREVER, CF_FIRST_EXCEPTION), 0);
    CHECK_EQ(cf_wait(NULL, 0, CF_FOREVER, CF_FIRST_COMPLETED), 0);
    cf_future_release(p);
}

static void wait_bad_input(void)
{
    cf_future *p = new_pending();
    cf_future *ok = new_succeeded();
    cf_future *with_null[] = { ok, NULL, p };
    CHECK_EQ(cf_wait(with_null, 3, 0, CF_ALL_COMPLETED), CF_EINVAL);
    CHECK_EQ(cf_wait(with_null, 3, 0, CF_FIRST_COMPLETED), CF_EINVAL);
    CHECK_EQ(cf_wait(NULL, 2, 0, CF_ALL_COMPLETED), CF_EINVAL);
    cf_future *fs[] = { ok, p };
    CHECK_EQ(cf_wait(fs, 2, NAN, CF_FIRST_COMPLETED), CF_EINVAL);
    CHECK_EQ(cf_wait(fs, 2, 0, (cf_return_when)3), CF_EINVAL);
    CHECK_EQ(cf_wait(fs, 2, 0, (cf_return_when)-1), CF_EINVAL);
    CHECK_EQ(cf_wait(fs, 2, 0, (cf_return_when)1000), CF_EINVAL);
    /* nothing changed */
    CHECK(!cf_future_done(p));
    cf_future_release(p);
    cf_future_release(ok);
}

/* ENOMEM: cf_wait may need memory for many futures; it then fails cleanly
 * (no leak) or copes without it. */
typedef struct wait_oom {
    cf_future **fs;
    size_t n;
} wait_oom;

static int wait_op(void *ctx)
{
    wait_oom *w = ctx;
    int rc = cf_wait(w->fs, w->n, 0.01, CF_ALL_COMPLETED);
    if (rc == CF_ETIMEDOUT)
        return 0; /* the wait itself worked */
    return rc;
}

static void wait_enomem(void)
{
    enum { N = 300 };
    oom_install();
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = i == N / 2 ? new_pending() : new_succeeded();
    long live0 = oom_live_count();
    wait_oom w = { fs, N };
    oom_sweep(wait_op, NULL, &w);
    CHECK_EQ(oom_live_count(), live0);
    release_all(fs, N);
}

/* ==================================================== cf_as_completed */

static int drain(cf_as_completed *it, cf_future **out, int max)
{
    int n = 0, rc;
    cf_future *f;
    while ((rc = cf_as_completed_next(it, &f)) == 0) {
        CHECK(n < max);
        out[n++] = f;
    }
    CHECK_EQ(rc, CF_EOF);
    return n;
}

static bool contains(cf_future **fs, int n, cf_future *f)
{
    for (int i = 0; i < n; i++)
        if (fs[i] == f)
            return true;
    return false;
}

/* test_no_timeout */
static void as_completed_no_timeout(void)
{
    cf_executor *ex = new_pool(5);
    cf_future *fs[] = { new_cancelled(), new_failed(), new_succeeded(),
                        submit(ex, mul_21_2, NULL),
                        submit(ex, mul_21_2, NULL) };
    cf_as_completed *it = NULL;
    CHECK_EQ(cf_as_completed_new(&it, fs, 5, CF_FOREVER), 0);
    cf_future *got[8];
    int n = drain(it, got, 8);
    CHECK_EQ(n, 5);
    for (int i = 0; i < 5; i++) {
        CHECK(contains(got, n, fs[i]));
        CHECK(cf_future_done(got[i]));
    }
    /* EOF stays EOF */
    cf_future *f = NULL;
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);
    release_all(fs, 5);
    cf_executor_free(ex);
}

/* test_future_times_out: the futures done already are yielded, then the
 * pending one times out, for timeout 0 and a short one. */
static void as_completed_future_times_out(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    const double timeouts[] = { 0, 0.1 };
    for (int t = 0; t < 2; t++) {
        cf_future *fs[] = { new_cancelled(), new_failed(), new_succeeded(),
                            submit(ex, wait_gate, &g) };
        cf_as_completed *it;
        CHECK_EQ(cf_as_completed_new(&it, fs, 4, timeouts[t]), 0);
        cf_future *got[4];
        int n = 0, rc;
        cf_future *f;
        double t0 = now_s();
        while ((rc = cf_as_completed_next(it, &f)) == 0) {
            CHECK(n < 3);
            got[n++] = f;
        }
        CHECK_EQ(rc, CF_ETIMEDOUT);
        CHECK(now_s() - t0 >= timeouts[t] * 0.9);
        CHECK(now_s() - t0 < 3.0 * test_scale());
        CHECK_EQ(n, 3);
        for (int i = 0; i < 3; i++)
            CHECK(contains(got, n, fs[i]));
        /* the timeout has passed: it stays passed */
        CHECK_EQ(cf_as_completed_next(it, &f), CF_ETIMEDOUT);
        cf_as_completed_free(it);
        release_all(fs, 4);
    }
    gate_open(&g);
    cf_executor_free(ex);
}

/* test_duplicate_futures */
static void as_completed_duplicates(void)
{
    cf_executor *ex = new_pool(5);
    gate g = GATE_INIT;
    cf_future *f1 = submit(ex, wait_gate, &g);
    cf_future *fs[] = { f1, f1, f1 };
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 3, CF_FOREVER), 0);
    gate_open(&g);
    cf_future *got[4];
    CHECK_EQ(drain(it, got, 4), 1);
    CHECK(got[0] == f1);
    cf_as_completed_free(it);

    /* duplicates among done and pending futures */
    cf_future *a = new_succeeded(), *b = new_pending();
    cf_future *mix[] = { a, b, a, b, b, a };
    CHECK_EQ(cf_as_completed_new(&it, mix, 6, CF_FOREVER), 0);
    cf_future *f = NULL;
    CHECK_EQ(cf_as_completed_next(it, &f), 0);
    CHECK(f == a);
    CHECK_EQ(cf_future_set_result(b, NULL), 0);
    CHECK_EQ(cf_as_completed_next(it, &f), 0);
    CHECK(f == b);
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);
    cf_future_release(a);
    cf_future_release(b);
    cf_future_release(f1);
    cf_executor_free(ex);
}

/* Done-first, then completion order. */
static void as_completed_order(void)
{
    cf_future *p0 = new_pending(), *d1 = new_succeeded(), *p2 = new_pending(),
              *d3 = new_cancelled(), *p4 = new_pending();
    cf_future *fs[] = { p0, d1, p2, d3, p4 };
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 5, CF_FOREVER), 0);
    /* completed after _new, before the first next: completion order */
    CHECK_EQ(cf_future_set_result(p2, NULL), 0);
    CHECK_EQ(cf_future_set_exception(p0, CF_EBROKEN, NULL), 0);
    cf_future *got[5];
    cf_future *f;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(cf_as_completed_next(it, &f), 0);
        got[i] = f;
    }
    /* d1 and d3 were done at _new: first (in either order) */
    CHECK((got[0] == d1 && got[1] == d3) || (got[0] == d3 && got[1] == d1));
    CHECK(got[2] == p2);
    CHECK(got[3] == p0);
    /* p4 completes from another thread while next waits */
    script s = { .n = 1, .steps = { { p4, 0.1, ACT_CANCEL } } };
    script_start(&s);
    int rc = 1;
    CHECK_TIME(rc = cf_as_completed_next(it, &f), 0.08, 5.0);
    CHECK_EQ(rc, 0);
    CHECK(f == p4);
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    script_join(&s);
    cf_as_completed_free(it);
    release_all(fs, 5);
}

/* Completion order from other threads, with delays between them. */
static void as_completed_order_from_threads(void)
{
    cf_future *fs[5];
    for (int i = 0; i < 5; i++)
        fs[i] = new_pending();
    script s = { .n = 5,
                 .steps = { { fs[3], 0.02, ACT_RESULT },
                            { fs[0], 0.02, ACT_FAIL },
                            { fs[4], 0.02, ACT_CANCEL },
                            { fs[1], 0.02, ACT_RESULT },
                            { fs[2], 0.02, ACT_RESULT } } };
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 5, 10.0), 0);
    script_start(&s);
    const int expect[] = { 3, 0, 4, 1, 2 };
    for (int i = 0; i < 5; i++) {
        cf_future *f = NULL;
        CHECK_EQ(cf_as_completed_next(it, &f), 0);
        CHECK(f == fs[expect[i]]);
        CHECK(cf_future_done(f));
    }
    cf_future *f;
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    script_join(&s);
    cf_as_completed_free(it);
    release_all(fs, 5);
}

/* The timeout counts from cf_as_completed_new, not from each next. */
static void as_completed_timeout_from_new(void)
{
    cf_future *p = new_pending(), *q = new_pending();
    cf_future *fs[] = { p, q };
    /* Each next that times out ends no sooner than the timeout counted
     * from _new, and sooner than a whole timeout after it began (where a
     * clock restarted by next would end it). Both bounds hold however long
     * this thread sleeps past its sleep_s on a loaded machine. */
    cf_as_completed *it;
    double t_new = now_s();
    CHECK_EQ(cf_as_completed_new(&it, fs, 2, 1.0), 0);
    sleep_s(0.7);
    cf_future *f;
    int rc = 0;
    double t_next = now_s();
    rc = cf_as_completed_next(it, &f);
    double t_end = now_s();
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK(t_end - t_new >= 0.99);
    CHECK(t_end - t_next < 1.0);
    CHECK_TIME(rc = cf_as_completed_next(it, &f), 0, 0.5);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    cf_as_completed_free(it);

    /* a yield in between does not restart the clock */
    t_new = now_s();
    CHECK_EQ(cf_as_completed_new(&it, fs, 2, 0.6), 0);
    sleep_s(0.3);
    CHECK_EQ(cf_future_set_result(p, NULL), 0);
    t_next = now_s(); /* a clock restarted by the yield: from here */
    CHECK_EQ(cf_as_completed_next(it, &f), 0);
    CHECK(f == p);
    rc = cf_as_completed_next(it, &f);
    t_end = now_s();
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK(t_end - t_new >= 0.59);
    CHECK(t_end - t_next < 0.6);
    cf_as_completed_free(it);
    CHECK_EQ(cf_future_set_result(q, NULL), 0);
    release_all(fs, 2);
}

/* test_correct_timeout_exception_msg: with timeout 0, the done ones come
 * out, then CF_ETIMEDOUT while the pending and running ones are left. */
static void as_completed_poll(void)
{
    cf_future *running = new_pending();
    CHECK(cf_future_set_running_or_notify_cancel(running));
    cf_future *fs[] = { new_cancelled(), new_pending(), running,
                        new_succeeded() };
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 4, 0), 0);
    cf_future *f;
    int yielded = 0, rc;
    while ((rc = cf_as_completed_next(it, &f)) == 0) {
        CHECK(f == fs[0] || f == fs[3]);
        yielded++;
    }
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK_EQ(yielded, 2);
    cf_as_completed_free(it);
    CHECK_EQ(cf_future_set_result(running, NULL), 0);
    release_all(fs, 4);
}

/* test_free_reference_yielded_future, in C: the iterator holds its own
 * references, so the caller may release its own right after _new, and a
 * yielded (borrowed) future stays valid while the iterator lives. */
static void as_completed_holds_references(void)
{
    oom_install();
    long live0 = oom_live_count();
    cf_future *a = new_succeeded(), *b = new_failed();
    cf_future *fs[] = { a, b };
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 2, CF_FOREVER), 0);
    cf_future_release(a);
    cf_future_release(b);
    cf_future *f;
    void *r = NULL;
    int codes = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(cf_as_completed_next(it, &f), 0);
        int rc = cf_future_result(f, 0, &r);
        codes += rc == 0 ? 1 : rc == CF_EBROKEN ? 10 : 100;
    }
    CHECK_EQ(codes, 11);
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);
    CHECK_EQ(oom_live_count(), live0);
}

/* Freeing an iterator with futures still pending leaves them usable. */
static void as_completed_free_early(void)
{
    cf_future *p = new_pending(), *d = new_succeeded();
    cf_future *fs[] = { p, d };
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 2, CF_FOREVER), 0);
    cf_as_completed_free(it);
    CHECK_EQ(cf_future_set_result(p, (void *)3), 0);
    void *r = NULL;
    CHECK_EQ(cf_future_result(p, 0, &r), 0);
    CHECK_EQ((intptr_t)r, 3);
    /* never iterated at all */
    CHECK_EQ(cf_as_completed_new(&it, fs, 2, CF_FOREVER), 0);
    cf_as_completed_free(it);
    release_all(fs, 2);
}

static void as_completed_n_zero(void)
{
    cf_future *p = new_pending();
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, &p, 0, CF_FOREVER), 0);
    cf_future *f;
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    cf_as_completed_free(it);
    cf_future_release(p);
}

static void as_completed_bad_input(void)
{
    cf_future *p = new_pending();
    cf_future *fs[] = { p, NULL };
    cf_as_completed *it = NULL;
    CHECK_EQ(cf_as_completed_new(NULL, fs, 1, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_as_completed_new(&it, NULL, 1, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_as_completed_new(&it, fs, 2, CF_FOREVER), CF_EINVAL);
    CHECK_EQ(cf_as_completed_new(&it, fs, 1, NAN), CF_EINVAL);
    CHECK(it == NULL);
    cf_future *f;
    CHECK_EQ(cf_as_completed_next(NULL, &f), CF_EINVAL);
    cf_future_release(p);
}

/* Many threads complete many futures while one thread iterates. */
static void *complete_range(void *p)
{
    cf_future **fs = p;
    for (int i = 0; i < 250; i++) {
        if (i % 5 == 0)
            cf_future_cancel(fs[i]);
        else
            CHECK_EQ(cf_future_set_result(fs[i], (void *)(intptr_t)i), 0);
    }
    return NULL;
}

static void as_completed_concurrent_completion(void)
{
    enum { T = 4, N = 250 * T };
    cf_future **fs = malloc(sizeof *fs * N);
    cf_future **got = malloc(sizeof *got * N);
    CHECK(fs && got);
    for (int i = 0; i < N; i++)
        fs[i] = new_pending();
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, N, 20.0), 0);
    pthread_t th[T];
    for (int t = 0; t < T; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, complete_range, fs + t * 250), 0);
    int n = drain(it, got, N);
    CHECK_EQ(n, N);
    for (int t = 0; t < T; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    /* each exactly once: sort-free check by marking */
    for (int i = 0; i < N; i++) {
        int idx = -1;
        for (int j = 0; j < N; j++)
            if (fs[j] == got[i]) {
                idx = j;
                break;
            }
        CHECK(idx >= 0);
        fs[idx] = NULL;
    }
    for (int i = 0; i < N; i++)
        CHECK(fs[i] == NULL);
    cf_as_completed_free(it);
    release_all(got, N);
    free(fs);
    free(got);
}

/* ENOMEM sweep on _new (with done and pending futures, and duplicates). */
typedef struct ac_oom {
    cf_future **fs;
    size_t n;
} ac_oom;

static int as_completed_op(void *ctx)
{
    ac_oom *c = ctx;
    cf_as_completed *it = NULL;
    int rc = cf_as_completed_new(&it, c->fs, c->n, 0);
    if (rc != 0)
        return rc;
    cf_future *f;
    int yielded = 0;
    while ((rc = cf_as_completed_next(it, &f)) == 0)
        yielded++;
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK_EQ(yielded, 3);
    cf_as_completed_free(it);
    return 0;
}

static void as_completed_enomem(void)
{
    oom_install();
    cf_future *a = new_succeeded(), *b = new_pending(), *c = new_cancelled(),
              *d = new_failed(), *e = new_pending();
    cf_future *fs[] = { a, b, c, d, e, a, b };
    long live0 = oom_live_count();
    ac_oom ctx = { fs, 7 };
    CHECK(oom_sweep(as_completed_op, NULL, &ctx) >= 1);
    CHECK_EQ(oom_live_count(), live0);
    release_all(fs, 5);
}

static const test_case cases[] = {
    TEST_CASE(wait_duplicates),
    TEST_CASE(wait_first_completed),
    TEST_CASE(wait_first_completed_some_already_completed),
    TEST_CASE(wait_cancelled_counts_as_done),
    TEST_CASE(wait_first_exception),
    TEST_CASE(wait_first_exception_some_already_complete),
    TEST_CASE(wait_first_exception_one_already_failed),
    TEST_CASE(wait_first_exception_all_finished_without_failure),
    TEST_CASE(wait_first_exception_cancel_is_not_failure),
    TEST_CASE(wait_first_exception_wakes_on_failure),
    TEST_CASE(wait_all_completed),
    TEST_CASE(wait_all_completed_waits_for_last),
    TEST_CASE(wait_first_completed_wakes),
    TEST_CASE(wait_timeout),
    TEST_CASE(wait_negative_timeout_is_forever),
    TEST_CASE(wait_pending_calls_race),
    TEST_CASE(wait_many_waiters),
    TEST_CASE(wait_n_zero),
    TEST_CASE(wait_bad_input),
    TEST_CASE(wait_enomem),
    TEST_CASE(as_completed_no_timeout),
    TEST_CASE(as_completed_future_times_out),
    TEST_CASE(as_completed_duplicates),
    TEST_CASE(as_completed_order),
    TEST_CASE(as_completed_order_from_threads),
    TEST_CASE(as_completed_timeout_from_new),
    TEST_CASE(as_completed_poll),
    TEST_CASE(as_completed_holds_references),
    TEST_CASE(as_completed_free_early),
    TEST_CASE(as_completed_n_zero),
    TEST_CASE(as_completed_bad_input),
    TEST_CASE(as_completed_concurrent_completion),
    TEST_CASE(as_completed_enomem),
};

TEST_MAIN(cases)
