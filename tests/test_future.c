/* SPDX-License-Identifier: MIT */
/*
 * test_future.c - futures that user code completes: the state machine,
 * set_result / set_exception, cancel, result and exception with timeouts,
 * done callbacks, reference counting, and the ENOMEM paths. Cases mirror
 * CPython's Lib/test/test_concurrent_futures/test_future.py where one
 * applies. Unlike CPython, a cancelled future is done at once (there is no
 * CANCELLED vs CANCELLED_AND_NOTIFIED split).
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

static cf_future *new_running(void)
{
    cf_future *f = new_pending();
    CHECK(cf_future_set_running_or_notify_cancel(f));
    return f;
}

static cf_future *new_cancelled(void)
{
    cf_future *f = new_pending();
    CHECK(cf_future_cancel(f));
    return f;
}

static cf_future *new_failed(int code, const char *msg)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_exception(f, code, msg), 0);
    return f;
}

static cf_future *new_succeeded(void *value)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_result(f, value), 0);
    return f;
}

/* A helper thread that does something to a future after a delay. */
typedef enum { ACT_RESULT, ACT_EXCEPTION, ACT_CANCEL } action_kind;
typedef struct delayed {
    cf_future *f;
    double delay;
    action_kind kind;
    void *value;
    int code;
    const char *message;
    pthread_t th;
} delayed;

static void *delayed_main(void *p)
{
    delayed *d = p;
    sleep_s(d->delay);
    switch (d->kind) {
    case ACT_RESULT: CHECK_EQ(cf_future_set_result(d->f, d->value), 0); break;
    case ACT_EXCEPTION:
        CHECK_EQ(cf_future_set_exception(d->f, d->code, d->message), 0);
        break;
    case ACT_CANCEL: CHECK(cf_future_cancel(d->f)); break;
    }
    return NULL;
}

static void delayed_start(delayed *d)
{
    CHECK_EQ(pthread_create(&d->th, NULL, delayed_main, d), 0);
}

static void delayed_join(delayed *d)
{
    CHECK_EQ(pthread_join(d->th, NULL), 0);
}

/* ---- states */

/* test_cancelled / test_done / test_running over all states. */
static void states_of_each_kind(void)
{
    cf_future *pending = new_pending();
    cf_future *running = new_running();
    cf_future *cancelled = new_cancelled();
    cf_future *failed = new_failed(CF_EBROKEN, "oops");
    cf_future *ok = new_succeeded((void *)42);

    CHECK(!cf_future_running(pending));
    CHECK(!cf_future_done(pending));
    CHECK(!cf_future_cancelled(pending));

    CHECK(cf_future_running(running));
    CHECK(!cf_future_done(running));
    CHECK(!cf_future_cancelled(running));

    CHECK(!cf_future_running(cancelled));
    CHECK(cf_future_done(cancelled));
    CHECK(cf_future_cancelled(cancelled));

    CHECK(!cf_future_running(failed));
    CHECK(cf_future_done(failed));
    CHECK(!cf_future_cancelled(failed));

    CHECK(!cf_future_running(ok));
    CHECK(cf_future_done(ok));
    CHECK(!cf_future_cancelled(ok));

    cf_future_release(pending);
    cf_future_release(running);
    cf_future_release(cancelled);
    cf_future_release(failed);
    cf_future_release(ok);
}

/* A running future finishes from the running state (CPython allows
 * set_result / set_exception on RUNNING). */
static void running_then_finished(void)
{
    cf_future *a = new_running();
    CHECK_EQ(cf_future_set_result(a, (void *)5), 0);
    CHECK(cf_future_done(a));
    CHECK(!cf_future_running(a));
    void *r = NULL;
    CHECK_EQ(cf_future_result(a, 0, &r), 0);
    CHECK_EQ((uintptr_t)r, 5);

    cf_future *b = new_running();
    CHECK_EQ(cf_future_set_exception(b, CF_ETIME, "slow"), 0);
    CHECK(cf_future_done(b));
    CHECK(!cf_future_running(b));
    CHECK_EQ(cf_future_result(b, 0, NULL), CF_ETIME);
    cf_future_release(a);
    cf_future_release(b);
}

/* ---- set_result / set_exception */

/* test_multiple_set_result */
static void set_result_twice_is_einval(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_result(f, (void *)1), 0);
    CHECK_EQ(cf_future_set_result(f, (void *)2), CF_EINVAL);
    CHECK(cf_future_done(f));
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, CF_FOREVER, &r), 0);
    CHECK_EQ((uintptr_t)r, 1);
    /* and a failure cannot replace a result */
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "late"), CF_EINVAL);
    const char *msg = (const char *)1;
    CHECK_EQ(cf_future_exception(f, 0, &msg), 0);
    CHECK(msg == NULL);
    cf_future_release(f);
}

/* test_multiple_set_exception */
static void set_exception_twice_is_einval(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "first"), 0);
    CHECK_EQ(cf_future_set_exception(f, CF_ETIME, "second"), CF_EINVAL);
    CHECK_EQ(cf_future_set_result(f, (void *)3), CF_EINVAL);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(f, 0, &msg), CF_EBROKEN);
    CHECK(msg != NULL);
    CHECK(strcmp(msg, "first") == 0);
    CHECK_EQ(cf_future_result(f, 0, NULL), CF_EBROKEN);
    cf_future_release(f);
}

/* A cancelled future cannot be completed afterwards (InvalidStateError). */
static void set_on_cancelled_is_einval(void)
{
    cf_future *f = new_cancelled();
    CHECK_EQ(cf_future_set_result(f, (void *)1), CF_EINVAL);
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "x"), CF_EINVAL);
    CHECK(cf_future_cancelled(f));
    CHECK_EQ(cf_future_result(f, 0, NULL), CF_ECANCELED);
    cf_future_release(f);
}

static void set_exception_code_zero_is_einval(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_exception(f, 0, "no code"), CF_EINVAL);
    CHECK(!cf_future_done(f));
    CHECK_EQ(cf_future_result(f, 0, NULL), CF_ETIMEDOUT);
    /* still usable */
    CHECK_EQ(cf_future_set_result(f, (void *)9), 0);
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, 0, &r), 0);
    CHECK_EQ((uintptr_t)r, 9);
    cf_future_release(f);
}

static void set_exception_copies_message(void)
{
    char buf[64];
    snprintf(buf, sizeof buf, "disk %d is on fire", 3);
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, buf), 0);
    memset(buf, 'Z', sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(f, 0, &msg), CF_EBROKEN);
    CHECK(msg != NULL);
    CHECK(msg != buf);
    CHECK(strcmp(msg, "disk 3 is on fire") == 0);
    /* the same message every time it is asked */
    const char *again = NULL;
    CHECK_EQ(cf_future_exception(f, CF_FOREVER, &again), CF_EBROKEN);
    CHECK(strcmp(again, "disk 3 is on fire") == 0);
    cf_future_release(f);
}

static void set_exception_null_message_is_strerror(void)
{
    const int codes[] = { CF_EBROKEN, CF_ETIME, -ENOENT, CF_ENOMEM };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cf_future *f = new_pending();
        CHECK_EQ(cf_future_set_exception(f, codes[i], NULL), 0);
        const char *msg = NULL;
        CHECK_EQ(cf_future_exception(f, 0, &msg), codes[i]);
        CHECK(msg != NULL);
        CHECK(strcmp(msg, cf_strerror(codes[i])) == 0);
        cf_future_release(f);
    }
}

/* A failure code that happens to be CF_ECANCELED is still a failure, not a
 * cancellation. */
static void failure_with_ecanceled_code_is_not_cancelled(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_set_exception(f, CF_ECANCELED, "looks cancelled"), 0);
    CHECK(!cf_future_cancelled(f));
    CHECK(cf_future_done(f));
    CHECK(!cf_future_cancel(f));
    CHECK_EQ(cf_future_result(f, 0, NULL), CF_ECANCELED);
    cf_future_release(f);
}

/* ---- cancel */

/* test_cancel */
static void cancel_semantics(void)
{
    cf_future *f1 = new_pending();
    cf_future *f2 = new_running();
    cf_future *f3 = new_cancelled();
    cf_future *f5 = new_failed(CF_EBROKEN, "x");
    cf_future *f6 = new_succeeded((void *)5);

    CHECK(cf_future_cancel(f1));
    CHECK(cf_future_cancelled(f1));
    CHECK(cf_future_done(f1));

    CHECK(!cf_future_cancel(f2));
    CHECK(cf_future_running(f2));
    CHECK(!cf_future_cancelled(f2));
    CHECK(!cf_future_done(f2));

    CHECK(cf_future_cancel(f3));
    CHECK(cf_future_cancelled(f3));
    CHECK(cf_future_cancel(f3)); /* and again */

    CHECK(!cf_future_cancel(f5));
    CHECK(!cf_future_cancelled(f5));
    CHECK_EQ(cf_future_result(f5, 0, NULL), CF_EBROKEN);

    CHECK(!cf_future_cancel(f6));
    CHECK(!cf_future_cancelled(f6));
    void *r = NULL;
    CHECK_EQ(cf_future_result(f6, 0, &r), 0);
    CHECK_EQ((uintptr_t)r, 5);

    /* the running one can still finish normally */
    CHECK_EQ(cf_future_set_result(f2, (void *)6), 0);
    CHECK(!cf_future_cancel(f2));

    cf_future_release(f1);
    cf_future_release(f2);
    cf_future_release(f3);
    cf_future_release(f5);
    cf_future_release(f6);
}

/* Executor.submit's protocol: set_running_or_notify_cancel. */
static void set_running_or_notify_cancel(void)
{
    cf_future *p = new_pending();
    CHECK(cf_future_set_running_or_notify_cancel(p));
    CHECK(cf_future_running(p));
    /* already running: false, and it stays running */
    CHECK(!cf_future_set_running_or_notify_cancel(p));
    CHECK(cf_future_running(p));
    CHECK_EQ(cf_future_set_result(p, (void *)1), 0);
    /* done: false, and it stays done */
    CHECK(!cf_future_set_running_or_notify_cancel(p));
    CHECK(cf_future_done(p));
    CHECK(!cf_future_running(p));

    cf_future *c = new_cancelled();
    CHECK(!cf_future_set_running_or_notify_cancel(c));
    CHECK(cf_future_cancelled(c));
    CHECK(!cf_future_running(c));
    CHECK_EQ(cf_future_result(c, 0, NULL), CF_ECANCELED);

    cf_future *e = new_failed(CF_EBROKEN, NULL);
    CHECK(!cf_future_set_running_or_notify_cancel(e));
    CHECK(!cf_future_running(e));

    cf_future_release(p);
    cf_future_release(c);
    cf_future_release(e);
}

/* A waiter blocked on a future wakes when it is cancelled and the code that
 * would run it then sees the cancellation. */
static void notify_cancel_wakes_waiter(void)
{
    cf_future *f = new_pending();
    delayed d = { .f = f, .delay = 0.1, .kind = ACT_CANCEL };
    delayed_start(&d);
    int rc = 0;
    CHECK_TIME(rc = cf_future_result(f, 10.0, NULL), 0.05, 5.0);
    CHECK_EQ(rc, CF_ECANCELED);
    delayed_join(&d);
    CHECK(!cf_future_set_running_or_notify_cancel(f));
    cf_future_release(f);
}

/* ---- result / exception with timeouts */

/* test_result_with_timeout */
static void result_with_timeout_zero(void)
{
    cf_future *pending = new_pending();
    cf_future *running = new_running();
    cf_future *cancelled = new_cancelled();
    cf_future *failed = new_failed(-EIO, "io");
    cf_future *ok = new_succeeded((void *)42);
    void *r = (void *)99;
    int rc = 0;
    CHECK_TIME(rc = cf_future_result(pending, 0, &r), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK_TIME(rc = cf_future_result(running, 0, &r), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK_EQ(cf_future_result(cancelled, 0, &r), CF_ECANCELED);
    CHECK_EQ(cf_future_result(failed, 0, &r), -EIO);
    CHECK_EQ(cf_future_result(ok, 0, &r), 0);
    CHECK_EQ((uintptr_t)r, 42);
    /* NULL out-pointer accepted */
    CHECK_EQ(cf_future_result(ok, 0, NULL), 0);
    CHECK_EQ(cf_future_result(pending, 0, NULL), CF_ETIMEDOUT);
    cf_future_release(pending);
    cf_future_release(running);
    cf_future_release(cancelled);
    cf_future_release(failed);
    cf_future_release(ok);
}

/* test_exception_with_timeout */
static void exception_with_timeout_zero(void)
{
    cf_future *pending = new_pending();
    cf_future *running = new_running();
    cf_future *cancelled = new_cancelled();
    cf_future *failed = new_failed(-EIO, "io went wrong");
    cf_future *ok = new_succeeded((void *)42);
    const char *m = NULL;
    CHECK_EQ(cf_future_exception(pending, 0, &m), CF_ETIMEDOUT);
    CHECK_EQ(cf_future_exception(running, 0, &m), CF_ETIMEDOUT);
    CHECK_EQ(cf_future_exception(cancelled, 0, &m), CF_ECANCELED);
    m = NULL;
    CHECK_EQ(cf_future_exception(failed, 0, &m), -EIO);
    CHECK(m != NULL && strcmp(m, "io went wrong") == 0);
    m = "not cleared";
    CHECK_EQ(cf_future_exception(ok, 0, &m), 0);
    CHECK(m == NULL);
    CHECK_EQ(cf_future_exception(ok, 0, NULL), 0);
    CHECK_EQ(cf_future_exception(failed, 0, NULL), -EIO);
    CHECK_EQ(cf_future_exception(pending, 0, NULL), CF_ETIMEDOUT);
    cf_future_release(pending);
    cf_future_release(running);
    cf_future_release(cancelled);
    cf_future_release(failed);
    cf_future_release(ok);
}

/* A short positive timeout on a pending future waits about that long. */
static void result_short_timeout_waits(void)
{
    cf_future *f = new_pending();
    int rc = 0;
    CHECK_TIME(rc = cf_future_result(f, 0.1, NULL), 0.09, 3.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    const char *m = NULL;
    CHECK_TIME(rc = cf_future_exception(f, 0.1, &m), 0.09, 3.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK(!cf_future_done(f));
    cf_future_release(f);
}

static void nan_timeout_is_einval(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_result(f, NAN, NULL), CF_EINVAL);
    CHECK_EQ(cf_future_exception(f, NAN, NULL), CF_EINVAL);
    cf_future *ok = new_succeeded((void *)1);
    CHECK_EQ(cf_future_result(ok, NAN, NULL), CF_EINVAL);
    cf_future_release(f);
    cf_future_release(ok);
}

/* test_result_with_success */
static void result_blocks_until_set(void)
{
    cf_future *f = new_pending();
    delayed d = {
        .f = f, .delay = 0.2, .kind = ACT_RESULT, .value = (void *)42
    };
    delayed_start(&d);
    void *r = NULL;
    int rc = 1;
    CHECK_TIME(rc = cf_future_result(f, 5.0, &r), 0.15, 4.0);
    CHECK_EQ(rc, 0);
    CHECK_EQ((uintptr_t)r, 42);
    delayed_join(&d);
    cf_future_release(f);
}

/* Any negative timeout is forever. */
static void result_negative_timeout_waits(void)
{
    cf_future *f = new_pending();
    delayed d = {
        .f = f, .delay = 0.1, .kind = ACT_RESULT, .value = (void *)8
    };
    delayed_start(&d);
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, -7.0, &r), 0);
    CHECK_EQ((uintptr_t)r, 8);
    delayed_join(&d);
    cf_future_release(f);
}

/* test_result_with_cancel */
static void result_with_cancel(void)
{
    cf_future *f = new_pending();
    delayed d = { .f = f, .delay = 0.2, .kind = ACT_CANCEL };
    delayed_start(&d);
    CHECK_EQ(cf_future_result(f, 10.0, NULL), CF_ECANCELED);
    delayed_join(&d);
    cf_future_release(f);
}

/* test_exception_with_success (the future fails while we wait) */
static void exception_blocks_until_failed(void)
{
    cf_future *f = new_pending();
    delayed d = { .f = f,
                  .delay = 0.2,
                  .kind = ACT_EXCEPTION,
                  .code = -EPIPE,
                  .message = "pipe closed" };
    delayed_start(&d);
    const char *m = NULL;
    int rc = 0;
    CHECK_TIME(rc = cf_future_exception(f, 10.0, &m), 0.15, 5.0);
    CHECK_EQ(rc, -EPIPE);
    CHECK(m != NULL && strcmp(m, "pipe closed") == 0);
    delayed_join(&d);
    cf_future_release(f);
}

/* Many threads wait on one future; one completion wakes them all. */
typedef struct waiter_arg {
    cf_future *f;
    atomic_int *ok;
} waiter_arg;

static void *wait_result(void *p)
{
    waiter_arg *w = p;
    void *r = NULL;
    if (cf_future_result(w->f, 10.0, &r) == 0 && (uintptr_t)r == 77)
        atomic_fetch_add(w->ok, 1);
    return NULL;
}

static void many_waiters_all_wake(void)
{
    enum { N = 16 };
    cf_future *f = new_pending();
    atomic_int ok = 0;
    waiter_arg w = { f, &ok };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, wait_result, &w), 0);
    sleep_s(0.05);
    CHECK_EQ(cf_future_set_result(f, (void *)77), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(atomic_load(&ok), N);
    cf_future_release(f);
}

/* ---- done callbacks */

typedef struct cb_log {
    int order[16];
    atomic_int n;
    int result_rc;
    void *result;
    int exc_rc;
    char message[64];
    bool was_cancelled;
    bool was_done;
    pthread_t thread;
} cb_log;

static void cb_record(cf_future *f, void *ctx, int tag)
{
    cb_log *log = ctx;
    int i = atomic_fetch_add(&log->n, 1);
    if (i < 16)
        log->order[i] = tag;
    log->thread = pthread_self();
    log->was_done = cf_future_done(f);
    log->was_cancelled = cf_future_cancelled(f);
}
static void cb_a(cf_future *f, void *ctx)
{
    cb_record(f, ctx, 1);
}
static void cb_b(cf_future *f, void *ctx)
{
    cb_record(f, ctx, 2);
}
static void cb_c(cf_future *f, void *ctx)
{
    cb_record(f, ctx, 3);
}

static void cb_read_result(cf_future *f, void *ctx)
{
    cb_log *log = ctx;
    log->result_rc = cf_future_result(f, 0, &log->result);
    cb_record(f, ctx, 10);
}

static void cb_read_exception(cf_future *f, void *ctx)
{
    cb_log *log = ctx;
    const char *m = NULL;
    log->exc_rc = cf_future_exception(f, 0, &m);
    snprintf(log->message, sizeof log->message, "%s", m ? m : "(null)");
    cb_record(f, ctx, 11);
}

/* test_done_callback_with_result */
static void callback_with_result(void)
{
    cb_log log = { .result_rc = 1 };
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, cb_read_result, &log), 0);
    CHECK_EQ(atomic_load(&log.n), 0);
    CHECK_EQ(cf_future_set_result(f, (void *)5), 0);
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK_EQ(log.result_rc, 0);
    CHECK_EQ((uintptr_t)log.result, 5);
    CHECK(log.was_done);
    cf_future_release(f);
}

/* test_done_callback_with_exception */
static void callback_with_exception(void)
{
    cb_log log = { .exc_rc = 1 };
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, cb_read_exception, &log), 0);
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "test"), 0);
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK_EQ(log.exc_rc, CF_EBROKEN);
    CHECK(strcmp(log.message, "test") == 0);
    cf_future_release(f);
}

/* test_done_callback_with_cancel */
static void callback_with_cancel(void)
{
    cb_log log = { 0 };
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, cb_a, &log), 0);
    CHECK(cf_future_cancel(f));
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK(log.was_cancelled);
    CHECK(log.was_done);
    /* cancelling again does not run it again */
    CHECK(cf_future_cancel(f));
    CHECK_EQ(atomic_load(&log.n), 1);
    cf_future_release(f);
}

/* test_done_callback_already_successful */
static void callback_already_successful(void)
{
    cb_log log = { .result_rc = 1 };
    cf_future *f = new_succeeded((void *)5);
    CHECK_EQ(cf_future_add_done_callback(f, cb_read_result, &log), 0);
    /* ran before add returned, in this thread */
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK(pthread_equal(log.thread, pthread_self()));
    CHECK_EQ(log.result_rc, 0);
    CHECK_EQ((uintptr_t)log.result, 5);
    cf_future_release(f);
}

/* test_done_callback_already_failed */
static void callback_already_failed(void)
{
    cb_log log = { .exc_rc = 1 };
    cf_future *f = new_failed(CF_EBROKEN, "test");
    CHECK_EQ(cf_future_add_done_callback(f, cb_read_exception, &log), 0);
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK_EQ(log.exc_rc, CF_EBROKEN);
    CHECK(strcmp(log.message, "test") == 0);
    cf_future_release(f);
}

/* test_done_callback_already_cancelled */
static void callback_already_cancelled(void)
{
    cb_log log = { 0 };
    cf_future *f = new_cancelled();
    CHECK_EQ(cf_future_add_done_callback(f, cb_a, &log), 0);
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK(log.was_cancelled);
    cf_future_release(f);
}

/* Callbacks run once each, in the order added; a second completion attempt
 * runs nothing. test_done_callback_raises checks that a failing callback
 * does not stop the next one; in C the closest is that all run in order. */
static void callbacks_in_order_once_each(void)
{
    cb_log log = { 0 };
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, cb_a, &log), 0);
    CHECK_EQ(cf_future_add_done_callback(f, cb_b, &log), 0);
    CHECK_EQ(cf_future_add_done_callback(f, cb_c, &log), 0);
    CHECK_EQ(cf_future_add_done_callback(f, cb_a, &log), 0); /* same fn again */
    CHECK_EQ(cf_future_set_result(f, NULL), 0);
    CHECK_EQ(atomic_load(&log.n), 4);
    CHECK_EQ(log.order[0], 1);
    CHECK_EQ(log.order[1], 2);
    CHECK_EQ(log.order[2], 3);
    CHECK_EQ(log.order[3], 1);
    CHECK_EQ(cf_future_set_result(f, NULL), CF_EINVAL);
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, NULL), CF_EINVAL);
    CHECK(!cf_future_cancel(f));
    CHECK_EQ(atomic_load(&log.n), 4);
    /* added after completion: runs at once, after the others */
    CHECK_EQ(cf_future_add_done_callback(f, cb_b, &log), 0);
    CHECK_EQ(atomic_load(&log.n), 5);
    CHECK_EQ(log.order[4], 2);
    cf_future_release(f);
}

/* Many callbacks (more than any inline slot) keep their order; a future
 * released while pending never runs its callbacks and frees them. */
enum { MANY = 200 };
static int many_log[MANY];
static atomic_int many_pos;

static void cb_many(cf_future *f, void *ctx)
{
    (void)f;
    int i = atomic_fetch_add(&many_pos, 1);
    if (i < MANY)
        many_log[i] = (int)(intptr_t)ctx;
}

static void many_callbacks_in_order(void)
{
    oom_install();
    long live0 = oom_live_count();
    cf_future *g = new_pending();
    for (intptr_t i = 0; i < MANY; i++)
        CHECK_EQ(cf_future_add_done_callback(g, cb_many, (void *)i), 0);
    cf_future_release(g); /* never completed */
    CHECK_EQ(atomic_load(&many_pos), 0);
    CHECK_EQ(oom_live_count(), live0);

    cf_future *f = new_pending();
    for (intptr_t i = 0; i < MANY; i++)
        CHECK_EQ(cf_future_add_done_callback(f, cb_many, (void *)i), 0);
    CHECK_EQ(cf_future_set_result(f, NULL), 0);
    CHECK_EQ(atomic_load(&many_pos), MANY);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(many_log[i], i);
    cf_future_release(f);
    CHECK_EQ(oom_live_count(), live0);
}

/* Callbacks run in the thread that completes the future. */
static void callback_runs_in_completing_thread(void)
{
    cb_log log = { 0 };
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, cb_a, &log), 0);
    delayed d = {
        .f = f, .delay = 0.05, .kind = ACT_RESULT, .value = (void *)1
    };
    delayed_start(&d);
    CHECK_EQ(cf_future_result(f, 10.0, NULL), 0);
    delayed_join(&d);
    /* set_result returns only after the callbacks ran, so log is final */
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK(pthread_equal(log.thread, d.th));
    CHECK(!pthread_equal(log.thread, pthread_self()));

    /* the same for cancel */
    cb_log log2 = { 0 };
    cf_future *g = new_pending();
    CHECK_EQ(cf_future_add_done_callback(g, cb_b, &log2), 0);
    delayed d2 = { .f = g, .delay = 0.05, .kind = ACT_CANCEL };
    delayed_start(&d2);
    delayed_join(&d2);
    CHECK_EQ(atomic_load(&log2.n), 1);
    CHECK(pthread_equal(log2.thread, d2.th));
    cf_future_release(f);
    cf_future_release(g);
}

/* A callback may use the future freely: read it, add another callback (which
 * then runs at once), cancel it (false: done). None of that may deadlock. */
static cb_log nested_log;
static void cb_nested_inner(cf_future *f, void *ctx)
{
    cb_record(f, ctx, 21);
}
static void cb_nested_outer(cf_future *f, void *ctx)
{
    cb_record(f, ctx, 20);
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, CF_FOREVER, &r), 0);
    CHECK_EQ((uintptr_t)r, 31);
    CHECK(!cf_future_cancel(f));
    CHECK_EQ(cf_future_set_result(f, NULL), CF_EINVAL);
    CHECK_EQ(cf_future_add_done_callback(f, cb_nested_inner, ctx), 0);
    /* it ran already */
    CHECK_EQ(atomic_load(&((cb_log *)ctx)->n), 2);
}

static void callback_uses_future_without_deadlock(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, cb_nested_outer, &nested_log), 0);
    CHECK_EQ(cf_future_set_result(f, (void *)31), 0);
    CHECK_EQ(atomic_load(&nested_log.n), 2);
    CHECK_EQ(nested_log.order[0], 20);
    CHECK_EQ(nested_log.order[1], 21);
    cf_future_release(f);
}

/* A callback may drop the last other reference; the completing caller's own
 * reference keeps the future alive. */
static void cb_release(cf_future *f, void *ctx)
{
    (void)ctx;
    cf_future_release(f);
}

static void callback_may_release_a_reference(void)
{
    cf_future *f = new_pending();
    cf_future_retain(f); /* the callback's reference */
    CHECK_EQ(cf_future_add_done_callback(f, cb_release, NULL), 0);
    CHECK_EQ(cf_future_set_result(f, (void *)1), 0);
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, 0, &r), 0);
    CHECK_EQ((uintptr_t)r, 1);
    cf_future_release(f);
}

static void add_callback_bad_input(void)
{
    cf_future *f = new_pending();
    CHECK_EQ(cf_future_add_done_callback(f, NULL, NULL), CF_EINVAL);
    CHECK_EQ(cf_future_add_done_callback(NULL, cb_a, NULL), CF_EINVAL);
    /* nothing was registered: completing runs nothing (cb_a would crash on
     * a NULL ctx) */
    CHECK_EQ(cf_future_set_result(f, NULL), 0);
    cf_future_release(f);
}

/* Callbacks added concurrently with completion each run exactly once. */
typedef struct race_ctx {
    cf_future *f;
    atomic_int *count;
    int n;
} race_ctx;

static void cb_count(cf_future *f, void *ctx)
{
    (void)f;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

static void *add_many_callbacks(void *p)
{
    race_ctx *r = p;
    for (int i = 0; i < r->n; i++)
        CHECK_EQ(cf_future_add_done_callback(r->f, cb_count, r->count), 0);
    return NULL;
}

static void callbacks_race_with_completion(void)
{
    enum { THREADS = 4, PER = 2000, ROUNDS = 20 };
    for (int round = 0; round < ROUNDS; round++) {
        cf_future *f = new_pending();
        atomic_int count = 0;
        race_ctx r = { f, &count, PER };
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++)
            CHECK_EQ(pthread_create(&th[i], NULL, add_many_callbacks, &r), 0);
        if (round % 2)
            CHECK_EQ(cf_future_set_result(f, NULL), 0);
        else
            CHECK(cf_future_cancel(f));
        for (int i = 0; i < THREADS; i++)
            CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(atomic_load(&count), THREADS * PER);
        cf_future_release(f);
    }
}

/* cancel races set_running_or_notify_cancel: exactly one of them wins. */
typedef struct duel {
    cf_future *f;
    atomic_int *go;
    bool won;
} duel;

static void *duel_cancel(void *p)
{
    duel *d = p;
    while (!atomic_load(d->go)) {
    }
    d->won = cf_future_cancel(d->f);
    return NULL;
}

static void *duel_run(void *p)
{
    duel *d = p;
    while (!atomic_load(d->go)) {
    }
    d->won = cf_future_set_running_or_notify_cancel(d->f);
    return NULL;
}

static void cancel_races_set_running(void)
{
    for (int i = 0; i < 500; i++) {
        cf_future *f = new_pending();
        atomic_int go = 0;
        duel a = { f, &go, false }, b = { f, &go, false };
        pthread_t ta, tb;
        CHECK_EQ(pthread_create(&ta, NULL, duel_cancel, &a), 0);
        CHECK_EQ(pthread_create(&tb, NULL, duel_run, &b), 0);
        atomic_store(&go, 1);
        CHECK_EQ(pthread_join(ta, NULL), 0);
        CHECK_EQ(pthread_join(tb, NULL), 0);
        CHECK(a.won != b.won);
        CHECK_EQ(cf_future_cancelled(f), a.won);
        CHECK_EQ(cf_future_running(f), b.won);
        if (b.won)
            CHECK_EQ(cf_future_set_result(f, NULL), 0);
        CHECK(cf_future_done(f));
        cf_future_release(f);
    }
}

/* Two threads race to complete: exactly one set succeeds. */
typedef struct setter {
    cf_future *f;
    atomic_int *go;
    uintptr_t value;
    int rc;
} setter;

static void *race_set(void *p)
{
    setter *s = p;
    while (!atomic_load(s->go)) {
    }
    s->rc = cf_future_set_result(s->f, (void *)s->value);
    return NULL;
}

static void set_result_race_one_wins(void)
{
    for (int i = 0; i < 500; i++) {
        cf_future *f = new_pending();
        atomic_int go = 0;
        setter a = { f, &go, 1, 99 }, b = { f, &go, 2, 99 };
        pthread_t ta, tb;
        CHECK_EQ(pthread_create(&ta, NULL, race_set, &a), 0);
        CHECK_EQ(pthread_create(&tb, NULL, race_set, &b), 0);
        atomic_store(&go, 1);
        CHECK_EQ(pthread_join(ta, NULL), 0);
        CHECK_EQ(pthread_join(tb, NULL), 0);
        CHECK((a.rc == 0) != (b.rc == 0));
        CHECK(a.rc == CF_EINVAL || b.rc == CF_EINVAL);
        void *r = NULL;
        CHECK_EQ(cf_future_result(f, 0, &r), 0);
        CHECK_EQ((uintptr_t)r, a.rc == 0 ? 1 : 2);
        cf_future_release(f);
    }
}

/* test_get_snapshot's thread-safety part: a finished future read from many
 * threads at once gives the same answer every time. */
typedef struct reader {
    cf_future *f;
    int bad;
} reader;

static void *read_many(void *p)
{
    reader *r = p;
    for (int i = 0; i < 2000; i++) {
        void *v = NULL;
        const char *m = "x";
        if (cf_future_result(r->f, 0, &v) != 0 || (uintptr_t)v != 100 ||
            cf_future_exception(r->f, 0, &m) != 0 || m != NULL ||
            !cf_future_done(r->f) || cf_future_cancelled(r->f) ||
            cf_future_running(r->f))
            r->bad++;
    }
    return NULL;
}

static void concurrent_reads_of_done_future(void)
{
    cf_future *f = new_succeeded((void *)100);
    reader rs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rs[i] = (reader){ f, 0 };
        CHECK_EQ(pthread_create(&th[i], NULL, read_many, &rs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(rs[i].bad, 0);
    }
    cf_future_release(f);
}

/* ---- references */

static void retain_release_counts(void)
{
    oom_install();
    long live0 = oom_live_count();
    cf_future *f = new_pending();
    CHECK(oom_live_count() > live0);
    cf_future_retain(f);
    cf_future_retain(f);
    cf_future_release(f);
    cf_future_release(f);
    /* one reference left: still usable */
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "a message to free"), 0);
    CHECK_EQ(cf_future_result(f, 0, NULL), CF_EBROKEN);
    cf_future_release(f);
    CHECK_EQ(oom_live_count(), live0);
    cf_future_release(NULL); /* ignored */

    /* a pending future with callbacks, released without completing */
    cb_log log = { 0 };
    cf_future *g = new_pending();
    for (int i = 0; i < 5; i++)
        CHECK_EQ(cf_future_add_done_callback(g, cb_a, &log), 0);
    cf_future_release(g);
    CHECK_EQ(atomic_load(&log.n), 0);
    CHECK_EQ(oom_live_count(), live0);
}

/* The last reference may be dropped by another thread while this one waits
 * with its own reference. */
static void *set_and_release(void *p)
{
    cf_future *f = p;
    sleep_s(0.05);
    CHECK_EQ(cf_future_set_result(f, (void *)12), 0);
    cf_future_release(f);
    return NULL;
}

static void release_from_other_thread(void)
{
    cf_future *f = new_pending();
    cf_future_retain(f); /* for the thread */
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, set_and_release, f), 0);
    void *r = NULL;
    CHECK_EQ(cf_future_result(f, 10.0, &r), 0);
    CHECK_EQ((uintptr_t)r, 12);
    cf_future_release(f);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

/* ---- ENOMEM */

static int new_op(void *ctx)
{
    (void)ctx;
    errno = 0;
    cf_future *f = cf_future_new();
    if (!f) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    CHECK(!cf_future_done(f));
    cf_future_release(f);
    return 0;
}

static void future_new_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    CHECK(oom_sweep(new_op, NULL, NULL) >= 1);
    CHECK_EQ(oom_live_count(), live0);
}

typedef struct cb_oom {
    cf_future *f;
    atomic_int ran;
    int added;
} cb_oom;

static void cb_oom_count(cf_future *f, void *ctx)
{
    (void)f;
    atomic_fetch_add(&((cb_oom *)ctx)->ran, 1);
}

static int add_cb_op(void *ctx)
{
    cb_oom *c = ctx;
    int rc = cf_future_add_done_callback(c->f, cb_oom_count, c);
    if (rc == 0)
        c->added++;
    return rc;
}

static void add_callback_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    cb_oom c = { .f = new_pending() };
    /* Several rounds: the first callbacks may live inline in the future;
     * later ones must allocate. */
    int tried = 0;
    for (int i = 0; i < 8; i++)
        tried += oom_sweep(add_cb_op, NULL, &c);
    CHECK(tried >= 1);
    CHECK_EQ(cf_future_set_result(c.f, NULL), 0);
    /* exactly the callbacks that were added ran, once each */
    CHECK_EQ(atomic_load(&c.ran), c.added);
    CHECK_EQ(c.added, 8);
    cf_future_release(c.f);
    CHECK_EQ(oom_live_count(), live0);
}

static int set_exception_op(void *ctx)
{
    cf_future *f = ctx;
    int rc = cf_future_set_exception(f, CF_EBROKEN, "a message that is copied");
    if (rc != 0) {
        CHECK(!cf_future_done(f)); /* nothing changed */
        return rc;
    }
    const char *m = NULL;
    CHECK_EQ(cf_future_exception(f, 0, &m), CF_EBROKEN);
    CHECK(m != NULL && strcmp(m, "a message that is copied") == 0);
    return 0;
}

static void set_exception_enomem(void)
{
    oom_install();
    long live0 = oom_live_count();
    cf_future *f = new_pending();
    CHECK(oom_sweep(set_exception_op, NULL, f) >= 1);
    CHECK(cf_future_done(f));
    cf_future_release(f);
    CHECK_EQ(oom_live_count(), live0);
}

/* User code fails a running bytes task (set_exception is allowed on any
 * future not done); when the task then returns its bytes, they must not
 * take the slot the message now holds (the record shares one word). */
static atomic_int bytes_started, bytes_go;

static int slow_bytes_task(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    atomic_store(&bytes_started, 1);
    while (!atomic_load(&bytes_go))
        usleep(100);
    return cf_buffer_append(out, "result bytes, not a message", 27);
}

static void set_exception_on_running_bytes_task(void)
{
    cf_options o = { .max_workers = 1 };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit_bytes(ex, slow_bytes_task, "x", 1, &f), 0);
    while (!atomic_load(&bytes_started))
        usleep(100);
    CHECK_EQ(cf_future_set_exception(f, CF_EBROKEN, "set by user"), 0);
    atomic_store(&bytes_go, 1);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    const char *m = NULL;
    CHECK_EQ(cf_future_exception(f, CF_FOREVER, &m), CF_EBROKEN);
    CHECK(m != NULL && strcmp(m, "set by user") == 0);
    const void *data = NULL;
    size_t len = 0;
    CHECK_EQ(cf_future_bytes(f, CF_FOREVER, &data, &len), CF_EBROKEN);
    cf_future_release(f);
    cf_executor_free(ex);
}

static const test_case cases[] = {
    TEST_CASE(states_of_each_kind),
    TEST_CASE(running_then_finished),
    TEST_CASE(set_result_twice_is_einval),
    TEST_CASE(set_exception_twice_is_einval),
    TEST_CASE(set_on_cancelled_is_einval),
    TEST_CASE(set_exception_code_zero_is_einval),
    TEST_CASE(set_exception_copies_message),
    TEST_CASE(set_exception_null_message_is_strerror),
    TEST_CASE(failure_with_ecanceled_code_is_not_cancelled),
    TEST_CASE(cancel_semantics),
    TEST_CASE(set_running_or_notify_cancel),
    TEST_CASE(notify_cancel_wakes_waiter),
    TEST_CASE(result_with_timeout_zero),
    TEST_CASE(exception_with_timeout_zero),
    TEST_CASE(result_short_timeout_waits),
    TEST_CASE(nan_timeout_is_einval),
    TEST_CASE(result_blocks_until_set),
    TEST_CASE(result_negative_timeout_waits),
    TEST_CASE(result_with_cancel),
    TEST_CASE(exception_blocks_until_failed),
    TEST_CASE(many_waiters_all_wake),
    TEST_CASE(callback_with_result),
    TEST_CASE(callback_with_exception),
    TEST_CASE(callback_with_cancel),
    TEST_CASE(callback_already_successful),
    TEST_CASE(callback_already_failed),
    TEST_CASE(callback_already_cancelled),
    TEST_CASE(callbacks_in_order_once_each),
    TEST_CASE(many_callbacks_in_order),
    TEST_CASE(callback_runs_in_completing_thread),
    TEST_CASE(callback_uses_future_without_deadlock),
    TEST_CASE(callback_may_release_a_reference),
    TEST_CASE(add_callback_bad_input),
    TEST_CASE(callbacks_race_with_completion),
    TEST_CASE(cancel_races_set_running),
    TEST_CASE(set_result_race_one_wins),
    TEST_CASE(concurrent_reads_of_done_future),
    TEST_CASE(retain_release_counts),
    TEST_CASE(release_from_other_thread),
    TEST_CASE(future_new_enomem),
    TEST_CASE(add_callback_enomem),
    TEST_CASE(set_exception_enomem),
    TEST_CASE(set_exception_on_running_bytes_task),
};

TEST_MAIN(cases)
