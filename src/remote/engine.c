/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the remote engine (engine.h): the executor operations, the
 * pending queue, completing tasks and the manager thread both transports
 * share.
 */
#include "engine.h"

#include "../future.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>

/* ---- completing tasks (manager; never with mu held) -------------------- */

static void count(_Atomic size_t *c, size_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed); /* a snapshot */
}

static void drop(cf__rtask *t, _Atomic size_t *counter)
{
    count(counter, 1);
    cf_future_release(t->f);
    cf__free(t);
}

bool cf__remote_set_running(cf__remote *r, cf__rtask *t)
{
    if (t->started || cf_future_set_running_or_notify_cancel(t->f))
        return t->started = true;
    drop(t, &r->st_cancelled);
    return false;
}

void cf__remote_finish(cf__remote *r, cf__rtask *t, cf__bytes *b,
                       cf__task_ctx *ctx)
{
    count(b ? &r->st_completed : &r->st_failed, 1); /* seen once it is done */
    cf__future_finish(t->f, b, ctx);
    cf_future_release(t->f);
    cf__free(t);
}

void cf__remote_fail_list(cf__remote *r, cf__rtask *list, int code,
                          const char *msg)
{
    for (cf__rtask *t = list, *next; t; t = next) {
        next = t->next;
        if (!cf__remote_set_running(r, t))
            continue;
        cf__task_ctx ctx = { code, cf__strdup(msg) };
        cf__remote_finish(r, t, NULL, &ctx);
    }
}

/* ---- the pending queue ------------------------------------------------- */

void cf__remote_requeue(cf__remote *r, cf__rtask *list)
{
    if (!list)
        return;
    cf__rtask *last = list;
    size_t n = 1;
    for (; last->next; last = last->next)
        n++;
    pthread_mutex_lock(&r->mu);
    bool broken = r->broken;
    if (!broken) {
        last->next = r->pend_head;
        r->pend_head = list;
        if (!r->pend_tail)
            r->pend_tail = last;
        r->n_pending += n;
    }
    pthread_mutex_unlock(&r->mu);
    if (broken)
        cf__remote_fail_list(r, list, CF_EBROKEN, r->broken_msg);
}

cf__rtask *cf__remote_take(cf__remote *r, size_t max)
{
    pthread_mutex_lock(&r->mu);
    cf__rtask *list = r->pend_head, *t = list, *last = NULL;
    size_t n = 0;
    for (; t && n < max; n++) {
        last = t;
        t = t->next;
    }
    if (last) {
        last->next = NULL;
        r->pend_head = t;
        if (!t)
            r->pend_tail = NULL;
        r->n_pending -= n;
    }
    pthread_mutex_unlock(&r->mu);
    return last ? list : NULL;
}

void cf__remote_break(cf__remote *r, const char *msg)
{
    snprintf(r->broken_msg, sizeof r->broken_msg, "%s", msg);
    pthread_mutex_lock(&r->mu);
    r->broken = true;
    pthread_mutex_unlock(&r->mu);
    cf__remote_fail_list(r, cf__remote_take(r, SIZE_MAX), CF_EBROKEN, msg);
}

bool cf__remote_drained(cf__remote *r)
{
    pthread_mutex_lock(&r->mu);
    bool done = r->shutdown && r->n_pending == 0;
    pthread_mutex_unlock(&r->mu);
    return done;
}

/* ---- the manager thread ------------------------------------------------ */

static void *manager_main(void *arg)
{
    cf__remote *r = arg;
    while (!r->ops->round(r)) {
    }
    pthread_mutex_lock(&r->mu);
    r->exited = true;
    bool orphaned = r->orphaned;
    pthread_cond_broadcast(&r->exited_cv);
    pthread_mutex_unlock(&r->mu);
    if (orphaned)
        r->ops->destroy(r);
    return NULL;
}

void cf__remote_init(cf__remote *r, const cf__remote_ops *ops)
{
    r->base.ops = &cf__remote_executor_ops;
    r->ops = ops;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca; /* monotonic, as cf_executor_wait's deadline */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->exited_cv, &ca);
    pthread_condattr_destroy(&ca);
}

int cf__remote_start(cf__remote *r, const char *name)
{
    /* No handler of the program runs on the manager, and its children
     * start from a clean mask (spawn sets one; fork clears it). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = -pthread_create(&r->manager, NULL, manager_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!rc)
        pthread_setname_np(r->manager, name);
    return rc;
}

void cf__remote_fini(cf__remote *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->exited_cv);
}

/* ---- the executor operations ------------------------------------------- */

static int remote_submit(cf_executor *ex, cf_future *f)
{
    (void)ex;
    (void)f;
    return CF_EINVAL;
}

/* Queues t (its frame built, id set): 0, or why not (t is then freed). */
static int enqueue(cf__remote *r, cf__rtask *t, cf_future *f)
{
    t->f = f;
    pthread_mutex_lock(&r->mu);
    int rc = r->broken ? CF_EBROKEN : r->shutdown ? CF_ESHUTDOWN : 0;
    bool wake = !rc && r->listening;
    if (!rc) {
        if (r->pend_tail)
            r->pend_tail->next = t;
        else
            r->pend_head = t;
        r->pend_tail = t;
        r->n_pending++;
        r->listening = false;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc)
        cf__free(t);
    else if (wake)
        r->ops->wake(r);
    return rc;
}

static uint64_t new_id(cf__remote *r)
{
    return atomic_fetch_add_explicit(&r->next_id, 1, memory_order_relaxed) + 1;
}

static int remote_submit_bytes(cf_executor *ex, cf_future *f, cf_bytes_fn fn,
                               const void *in, size_t len)
{
    cf__remote *r = (cf__remote *)ex;
    size_t flen;
    int rc;
    cf__rtask *t = cf__frame_task_new(sizeof *t, CF__FR_TASK, (const void *)fn,
                                      in, len, new_id(r), &flen, &rc);
    if (!t)
        return rc;
    *t = (cf__rtask){ .len = flen };
    return enqueue(r, t, f);
}

static bool on_manager(cf__remote *r)
{
    return pthread_equal(pthread_self(), r->manager);
}

/* Takes the tasks that never started off the queue (mu held); those put
 * back after a crash already run for their futures and stay. */
static cf__rtask *take_unstarted_locked(cf__remote *r)
{
    cf__rtask *cancel = NULL, **link = &r->pend_head, *last = NULL;
    for (cf__rtask *t; (t = *link) != NULL;) {
        if (t->started) {
            last = t;
            link = &t->next;
            continue;
        }
        *link = t->next;
        t->next = cancel;
        cancel = t;
        r->n_pending--;
    }
    r->pend_tail = last;
    return cancel;
}

static int remote_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    cf__remote *r = (cf__remote *)ex;
    if (wait && on_manager(r))
        return CF_EDEADLK; /* a done callback waiting for its own thread */
    cf__executor_shut_down(ex);
    pthread_mutex_lock(&r->mu);
    r->shutdown = true;
    cf__rtask *cancel = cancel_futures ? take_unstarted_locked(r) : NULL;
    pthread_mutex_unlock(&r->mu);
    r->ops->wake(r);
    for (cf__rtask *t = cancel, *next; t; t = next) {
        next = t->next;
        cf_future_cancel(t->f);
        drop(t, &r->st_cancelled);
    }
    pthread_mutex_lock(&r->mu);
    while (wait && !r->exited)
        pthread_cond_wait(&r->exited_cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* The manager exits once the accepted work is done and its workers are
 * gone; from the manager (a done callback) it never would. */
static int remote_wait(cf_executor *ex, const cf__deadline *deadline)
{
    cf__remote *r = (cf__remote *)ex;
    if (on_manager(r))
        return CF_EDEADLK;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->exited && rc == 0)
        rc = cf__deadline_forever(deadline)
                 ? pthread_cond_wait(&r->exited_cv, &r->mu)
                 : pthread_cond_timedwait(&r->exited_cv, &r->mu, deadline);
    bool exited = r->exited;
    pthread_mutex_unlock(&r->mu);
    return exited ? 0 : CF_ETIMEDOUT;
}

static void remote_free(cf_executor *ex)
{
    cf__remote *r = (cf__remote *)ex;
    if (on_manager(r)) {
        /* From a done callback: the manager frees the pool as it exits. */
        remote_shutdown(ex, false, false);
        pthread_mutex_lock(&r->mu);
        r->orphaned = true;
        pthread_mutex_unlock(&r->mu);
        pthread_detach(r->manager);
        return;
    }
    remote_shutdown(ex, true, false);
    pthread_join(r->manager, NULL);
    r->ops->destroy(r);
}

static size_t load(_Atomic size_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static int remote_stats(cf_executor *ex, cf_stats *out)
{
    cf__remote *r = (cf__remote *)ex;
    pthread_mutex_lock(&r->mu);
    out->queued = r->n_pending;
    pthread_mutex_unlock(&r->mu);
    out->workers = load(&r->st_workers);
    out->idle = load(&r->st_idle);
    out->running = load(&r->st_running);
    out->completed = load(&r->st_completed);
    out->failed = load(&r->st_failed);
    out->cancelled = load(&r->st_cancelled);
    out->stalled = load(&r->st_stalled);
    return 0;
}

const cf__executor_ops cf__remote_executor_ops = {
    .submit = remote_submit,
    .submit_bytes = remote_submit_bytes,
    .shutdown = remote_shutdown,
    .free = remote_free,
    .stats = remote_stats,
    .wait = remote_wait,
};
