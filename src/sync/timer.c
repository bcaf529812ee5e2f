/* SPDX-License-Identifier: MIT */
/*
 * timer.c - cf_timer, Python's threading.Timer: calls fn(arg) once, after
 * an interval, on a thread of its own, unless it is cancelled first.
 *
 * Each timer starts a detached cf_thread that sleeps on a condition
 * variable (monotonic clock) until the due time or a cancel, then runs fn
 * unless cancelled. Because the thread may outlive the user's handle (when
 * fn frees its own timer), the record is shared by two references, the
 * handle and the thread, counted under the mutex; whoever drops the last
 * one frees it. The thread drops its reference in the same critical section
 * in which it marks itself finished and never touches the record after, so
 * a join that saw "finished" may free the record at once.
 *
 * States: WAITING -> RUNNING, or WAITING -> CANCELLED; both are final, and
 * `finished` marks the thread's end. cancel() wins only from WAITING (or
 * sees CANCELLED); once RUNNING, fn runs to its end.
 *
 * Invariants (under mu): refs is 2 until the thread finishes or the handle
 * is freed, and the record is freed when it reaches 0; finished is set
 * once, after the state is final.
 *
 * Cost: one thread per timer, two allocations for it (the record, the
 * cf_thread), and a futex wait for the interval.
 */
#include "sync.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>

enum state { WAITING, CANCELLED, RUNNING };

struct cf_timer {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on cancel, broadcast when finished */
    enum state state;
    bool finished; /* the thread is done with fn and with the record */
    int refs;      /* the handle and the thread */
    cf__deadline due;
    cf_fn fn;
    void *arg;
};

/* The timer whose fn the calling thread is running, if any. */
static _Thread_local cf_timer *current_timer;

static void destroy(cf_timer *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    cf__free(t);
}

/* Drops one reference (mu held, released here); frees on the last. */
static void unref_unlock(cf_timer *t)
{
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (last)
        destroy(t);
}

static void *timer_main(void *p)
{
    cf_timer *t = p;
    pthread_mutex_lock(&t->mu);
    while (t->state == WAITING) {
        if (cf__cond_wait(&t->cv, &t->mu, &t->due) == CF_ETIMEDOUT &&
            t->state == WAITING)
            t->state = RUNNING;
    }
    bool run = t->state == RUNNING;
    pthread_mutex_unlock(&t->mu);
    if (run) {
        current_timer = t;
        t->fn(t->arg);
        current_timer = NULL;
    }
    pthread_mutex_lock(&t->mu);
    t->finished = true;
    pthread_cond_broadcast(&t->cv);
    unref_unlock(t);
    return NULL;
}

cf_timer *cf_timer_start(double interval, cf_fn fn, void *arg)
{
    if (!fn || isnan(interval) || interval < 0) {
        errno = EINVAL;
        return NULL;
    }
    cf_timer *t = cf__calloc(1, sizeof *t);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&t->mu, NULL);
    if (rc == 0) {
        rc = cf__cond_init(&t->cv);
        if (rc)
            pthread_mutex_destroy(&t->mu);
    }
    if (rc) {
        cf__free(t);
        errno = rc == EAGAIN ? ENOMEM : rc;
        return NULL;
    }
    cf__deadline_from(interval, &t->due); /* not NaN: cannot fail */
    t->state = WAITING;
    t->refs = 2;
    t->fn = fn;
    t->arg = arg;
    cf_thread_options opts = { .name = NULL,
                               .stack_size = 0,
                               .detached = true };
    rc = cf_thread_start(NULL, timer_main, t, &opts);
    if (rc) {
        destroy(t);
        errno = rc == CF_ENOMEM ? ENOMEM : rc == CF_EINVAL ? EINVAL : -rc;
        return NULL;
    }
    return t;
}

bool cf_timer_cancel(cf_timer *t)
{
    if (!t)
        return false;
    pthread_mutex_lock(&t->mu);
    if (t->state == WAITING) {
        t->state = CANCELLED;
        pthread_cond_broadcast(&t->cv);
    }
    bool stopped = t->state == CANCELLED;
    pthread_mutex_unlock(&t->mu);
    return stopped;
}

int cf_timer_join(cf_timer *t, double timeout)
{
    if (!t)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    if (current_timer == t)
        return CF_EDEADLK;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    while (!t->finished) {
        if (cf__cond_wait(&t->cv, &t->mu, &d) == CF_ETIMEDOUT && !t->finished) {
            rc = CF_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void cf_timer_free(cf_timer *t)
{
    if (!t)
        return;
    if (current_timer == t) {
        /* From inside fn: drop the handle; the thread frees on its way out. */
        pthread_mutex_lock(&t->mu);
        unref_unlock(t);
        return;
    }
    cf_timer_cancel(t);
    cf_timer_join(t, CF_FOREVER);
    pthread_mutex_lock(&t->mu);
    unref_unlock(t);
}
