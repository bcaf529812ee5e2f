/* SPDX-License-Identifier: MIT */
/*
 * test_timer.c - cf_timer.
 *
 * CPython's TimerTests (Lib/test/test_threading.py) check that two timers
 * do not share their arguments; here that becomes "each call gets its own
 * arg, once". The rest covers what threading.Timer documents: the call
 * happens after the interval on its own thread, cancel() stops it if it
 * has not started, join() waits for the thread; and what the C API adds:
 * cancel's answer, join's timeout and CF_EDEADLK, free from inside fn, bad
 * input, ENOMEM.
 */
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

typedef struct call_log {
    atomic_int calls;
    atomic_long arg_seen; /* the arg of the last call */
    double called_at;     /* now_s() at the last call (read after join) */
    char name[64];        /* the calling thread's name */
    atomic_bool release;  /* for fn that block until told to go on */
    atomic_bool started;
} call_log;

static void *record_call(void *p)
{
    call_log *c = p;
    c->called_at = now_s();
    snprintf(c->name, sizeof c->name, "%s", cf_thread_current_name());
    atomic_store(&c->arg_seen, (long)(intptr_t)p);
    atomic_fetch_add(&c->calls, 1);
    return NULL;
}

static void wait_flag(atomic_bool *flag)
{
    double end = now_s() + 10.0 * test_scale();
    while (!atomic_load(flag)) {
        CHECK(now_s() < end);
        sleep_s(0.002);
    }
}

static void timer_fires(void)
{
    call_log c = { 0 };
    double t0 = now_s();
    cf_timer *t = cf_timer_start(0.1, record_call, &c);
    CHECK(t);
    CHECK_EQ(cf_timer_join(t, 10.0), 0);
    CHECK_EQ(atomic_load(&c.calls), 1);
    CHECK_EQ(atomic_load(&c.arg_seen), (long)(intptr_t)&c);
    double dt = c.called_at - t0;
    CHECK(dt >= 0.09 && dt < 2.0 * test_scale());
    /* Too late to cancel; joining again is fine. */
    CHECK(!cf_timer_cancel(t));
    CHECK_EQ(cf_timer_join(t, 0), 0);
    cf_timer_free(t);
    CHECK_EQ(atomic_load(&c.calls), 1);
}

static void timer_runs_on_its_own_thread(void)
{
    /* A Timer is a Thread: fn runs on a new thread named "Thread-N". */
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(0, record_call, &c);
    CHECK_EQ(cf_timer_join(t, 10.0), 0);
    CHECK(strncmp(c.name, "Thread-", 7) == 0);
    CHECK(strcmp(c.name, cf_thread_current_name()) != 0);
    cf_timer_free(t);
}

static void timer_separate_args(void)
{
    /* test_init_immutable_default_args: two timers, each with its own
     * argument, each called once with it. */
    call_log c1 = { 0 }, c2 = { 0 };
    cf_timer *t1 = cf_timer_start(0.01, record_call, &c1);
    CHECK_EQ(cf_timer_join(t1, 10.0), 0);
    cf_timer *t2 = cf_timer_start(0.01, record_call, &c2);
    CHECK_EQ(cf_timer_join(t2, 10.0), 0);
    CHECK_EQ(atomic_load(&c1.calls), 1);
    CHECK_EQ(atomic_load(&c2.calls), 1);
    CHECK_EQ(atomic_load(&c1.arg_seen), (long)(intptr_t)&c1);
    CHECK_EQ(atomic_load(&c2.arg_seen), (long)(intptr_t)&c2);
    cf_timer_free(t1);
    cf_timer_free(t2);
}

static void timer_cancel(void)
{
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(10.0, record_call, &c);
    CHECK(cf_timer_cancel(t));
    CHECK(cf_timer_cancel(t)); /* stopped already: still true */
    /* The thread ends promptly, without calling fn. */
    CHECK_TIME(CHECK_EQ(cf_timer_join(t, 10.0), 0), 0, 2.0);
    CHECK(cf_timer_cancel(t));
    CHECK_EQ(atomic_load(&c.calls), 0);
    cf_timer_free(t);
    CHECK_EQ(atomic_load(&c.calls), 0);
}

static void timer_cancel_before_start_zero(void)
{
    /* Even a zero interval can lose the race to cancel; either answer must
     * agree with what happened. */
    for (int i = 0; i < 50; i++) {
        call_log c = { 0 };
        cf_timer *t = cf_timer_start(0, record_call, &c);
        bool stopped = cf_timer_cancel(t);
        CHECK_EQ(cf_timer_join(t, 10.0), 0);
        CHECK_EQ(atomic_load(&c.calls), stopped ? 0 : 1);
        CHECK_EQ(cf_timer_cancel(t), stopped);
        cf_timer_free(t);
    }
}

static void *block_until_released(void *p)
{
    call_log *c = p;
    atomic_store(&c->started, true);
    wait_flag(&c->release);
    atomic_fetch_add(&c->calls, 1);
    return NULL;
}

static void timer_cancel_while_running(void)
{
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(0, block_until_released, &c);
    wait_flag(&c.started);
    CHECK(!cf_timer_cancel(t)); /* fn has started: too late */
    CHECK_EQ(cf_timer_join(t, 0.05), CF_ETIMEDOUT);
    atomic_store(&c.release, true);
    CHECK_EQ(cf_timer_join(t, 10.0), 0);
    CHECK_EQ(atomic_load(&c.calls), 1);
    CHECK(!cf_timer_cancel(t));
    cf_timer_free(t);
}

static void timer_join_timeout(void)
{
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(10.0, record_call, &c);
    double t0 = now_s();
    CHECK_EQ(cf_timer_join(t, 0.1), CF_ETIMEDOUT);
    double dt = now_s() - t0;
    CHECK(dt >= 0.09 && dt < 2.0 * test_scale());
    CHECK_EQ(cf_timer_join(t, 0), CF_ETIMEDOUT);
    CHECK(cf_timer_cancel(t));
    CHECK_EQ(cf_timer_join(t, 10.0), 0);
    CHECK_EQ(atomic_load(&c.calls), 0);
    cf_timer_free(t);
}

typedef struct self_ctx {
    _Atomic(cf_timer *) timer;
    atomic_int join_rc;
    atomic_bool cancel_rc;
    atomic_bool done;
} self_ctx;

static cf_timer *wait_own_timer(self_ctx *s)
{
    /* cf_timer_start may not have returned yet when fn runs. */
    double end = now_s() + 10.0 * test_scale();
    cf_timer *t;
    while (!(t = atomic_load(&s->timer))) {
        CHECK(now_s() < end);
        sleep_s(0.001);
    }
    return t;
}

static void *join_self(void *p)
{
    self_ctx *s = p;
    cf_timer *t = wait_own_timer(s);
    atomic_store(&s->join_rc, cf_timer_join(t, 1.0));
    atomic_store(&s->cancel_rc, cf_timer_cancel(t));
    atomic_store(&s->done, true);
    return NULL;
}

static void timer_join_from_fn(void)
{
    self_ctx s;
    memset(&s, 0, sizeof s);
    atomic_store(&s.join_rc, 1);
    atomic_store(&s.cancel_rc, true);
    cf_timer *t = cf_timer_start(0, join_self, &s);
    atomic_store(&s.timer, t);
    CHECK_EQ(cf_timer_join(t, 10.0), 0);
    CHECK(atomic_load(&s.done));
    CHECK_EQ(atomic_load(&s.join_rc), CF_EDEADLK);
    CHECK(!atomic_load(&s.cancel_rc)); /* fn is running: not stopped */
    cf_timer_free(t);
}

static void *free_self(void *p)
{
    self_ctx *s = p;
    cf_timer *t = wait_own_timer(s);
    cf_timer_free(t); /* only detaches: this thread frees on its way out */
    atomic_store(&s->done, true);
    return NULL;
}

static void wait_live(long want)
{
    double end = now_s() + 10.0 * test_scale();
    while (oom_live_count() != want) {
        CHECK(now_s() < end);
        sleep_s(0.002);
    }
}

static void timer_free_from_fn(void)
{
    oom_install();
    long live = oom_live_count();
    self_ctx s;
    memset(&s, 0, sizeof s);
    cf_timer *t = cf_timer_start(0, free_self, &s);
    CHECK(t);
    atomic_store(&s.timer, t);
    wait_flag(&s.done);
    /* Everything the timer allocated is freed once its thread is gone. */
    wait_live(live);
}

static void timer_free_cancels(void)
{
    oom_install();
    long live = oom_live_count();
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(10.0, record_call, &c);
    CHECK_TIME(cf_timer_free(t), 0, 2.0);
    CHECK_EQ(atomic_load(&c.calls), 0);
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&c.calls), 0);
    wait_live(live);
}

static void *slow_call(void *p)
{
    call_log *c = p;
    atomic_store(&c->started, true);
    sleep_s(0.2);
    atomic_fetch_add(&c->calls, 1);
    return NULL;
}

static void timer_free_waits_for_fn(void)
{
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(0, slow_call, &c);
    wait_flag(&c.started);
    cf_timer_free(t); /* cannot cancel: joins */
    CHECK_EQ(atomic_load(&c.calls), 1);
}

static void timer_free_unjoined(void)
{
    /* Freeing a timer that has fired, without a join first. */
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(0, record_call, &c);
    double end = now_s() + 10.0;
    while (atomic_load(&c.calls) == 0) {
        CHECK(now_s() < end);
        sleep_s(0.002);
    }
    cf_timer_free(t);
    CHECK_EQ(atomic_load(&c.calls), 1);
}

static void timer_many(void)
{
    /* Many timers at once, half of them cancelled. */
    enum { M = 20 };
    call_log c[M];
    cf_timer *t[M];
    memset(c, 0, sizeof c);
    for (int i = 0; i < M; i++)
        t[i] =
            cf_timer_start(i % 2 ? 0.05 + 0.005 * i : 10.0, record_call, &c[i]);
    for (int i = 0; i < M; i += 2)
        CHECK(cf_timer_cancel(t[i]));
    for (int i = 0; i < M; i++)
        CHECK_EQ(cf_timer_join(t[i], 10.0), 0);
    for (int i = 0; i < M; i++) {
        CHECK_EQ(atomic_load(&c[i].calls), i % 2);
        cf_timer_free(t[i]);
    }
}

static void timer_infinite_interval(void)
{
    /* An infinite interval never fires, but can be cancelled. */
    call_log c = { 0 };
    cf_timer *t = cf_timer_start(INFINITY, record_call, &c);
    CHECK(t);
    CHECK_EQ(cf_timer_join(t, 0.02), CF_ETIMEDOUT);
    CHECK(cf_timer_cancel(t));
    CHECK_EQ(cf_timer_join(t, 10.0), 0);
    CHECK_EQ(atomic_load(&c.calls), 0);
    cf_timer_free(t);
}

static void timer_bad_input(void)
{
    call_log c = { 0 };
    errno = 0;
    CHECK(cf_timer_start(0.1, NULL, &c) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(cf_timer_start(NAN, record_call, &c) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(cf_timer_start(-1.0, record_call, &c) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(!cf_timer_cancel(NULL));
    CHECK_EQ(cf_timer_join(NULL, 0), CF_EINVAL);
    cf_timer_free(NULL);
    cf_timer *t = cf_timer_start(10.0, record_call, &c);
    CHECK_EQ(cf_timer_join(t, NAN), CF_EINVAL);
    /* Nothing changed: still cancellable. */
    CHECK(cf_timer_cancel(t));
    cf_timer_free(t);
    sleep_s(0.02);
    CHECK_EQ(atomic_load(&c.calls), 0);
}

typedef struct start_ctx {
    cf_timer *timer;
    call_log log;
} start_ctx;

static int start_op(void *p)
{
    start_ctx *s = p;
    s->timer = cf_timer_start(0, record_call, &s->log);
    if (!s->timer) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    return 0;
}

static void start_undo(void *p)
{
    start_ctx *s = p;
    CHECK_EQ(cf_timer_join(s->timer, 10.0), 0);
    cf_timer_free(s->timer);
}

static void timer_enomem(void)
{
    oom_install();
    long live = oom_live_count();
    start_ctx s;
    memset(&s, 0, sizeof s);
    CHECK(oom_sweep(start_op, start_undo, &s) >= 2);
    CHECK_EQ(atomic_load(&s.log.calls), 1); /* only the last attempt ran */
    wait_live(live);
    /* Bad input is reported before any allocation. */
    oom_fail_at(0);
    errno = 0;
    CHECK(cf_timer_start(NAN, record_call, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    oom_fail_at(-1);
}

static const test_case cases[] = {
    TEST_CASE(timer_fires),
    TEST_CASE(timer_runs_on_its_own_thread),
    TEST_CASE(timer_separate_args),
    TEST_CASE(timer_cancel),
    TEST_CASE(timer_cancel_before_start_zero),
    TEST_CASE(timer_cancel_while_running),
    TEST_CASE(timer_join_timeout),
    TEST_CASE(timer_join_from_fn),
    TEST_CASE(timer_free_from_fn),
    TEST_CASE(timer_free_cancels),
    TEST_CASE(timer_free_waits_for_fn),
    TEST_CASE(timer_free_unjoined),
    TEST_CASE(timer_many),
    TEST_CASE(timer_infinite_interval),
    TEST_CASE(timer_bad_input),
    TEST_CASE(timer_enomem),
};

TEST_MAIN(cases)
