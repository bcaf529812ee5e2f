/* SPDX-License-Identifier: MIT */
/*
 * thread_pool.c - the thread-pool executor: the executor operations over
 * the work-stealing scheduler (sched/). This file owns what is particular to
 * an executor: tasks that are futures, the initializer and a broken pool,
 * shutdown with cancel_futures, the counters, running a task future
 * inline in a wait that depends on it (the claim: docs/design.md, "The wait
 * protocol"), and the pool's lifetime.
 *
 * A claimed future: the waiter moves it PENDING -> RUNNING (the same CAS a
 * worker uses, so exactly one of them runs it) and runs it on its own
 * stack; the queue entry stays behind, holding the pool's reference, and
 * whoever takes it off a queue later finds it started and only releases
 * that reference.
 *
 * Lifetime: the pool is reference counted - one reference for the user,
 * one per live worker. cf_executor_free from a task of the pool cannot wait
 * for its own thread, so it leaves the last worker to free the pool.
 */
#include "executor.h"
#include "sched/sched.h"
#include "trace.h"

#include <errno.h>
#include <stdio.h>

typedef struct pool {
    cf_executor base;
    cf__sched sched;
    _Atomic bool broken;
    char *broken_msg;        /* set once, before broken (release) */
    _Atomic bool cancelling; /* shutdown with cancel_futures was asked */
    cf_fn initializer;
    void *initarg;
    _Atomic uint32_t refs;
    _Atomic size_t failed; /* failed outside a run (broken pool) */
} pool;

static void pool_unref(pool *p)
{
    /* acq_rel: the last owner sees every worker's final writes */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    cf__sched_destroy(&p->sched);
    cf__free(p->broken_msg);
    cf__free(p);
}

static pool *pool_of(cf__worker *w)
{
    return (pool *)((char *)w->sched - offsetof(pool, sched));
}

const cf__drop cf__claimed = { 0, NULL };

static pool *pool_of_home(cf__task_home *home)
{
    return (pool *)((char *)home - offsetof(pool, sched.home));
}

/* The exec of a future task. */
static void run_future(cf__task *t, cf__worker *w, const cf__drop *drop)
{
    cf_future *f = (cf_future *)((char *)t - offsetof(cf_future, task));
    if (drop == &cf__claimed)
        cf__pool_run_future(f, w, true);
    else if (drop)
        cf__pool_drop(f, drop);
    else
        cf__pool_run_future(f, w, false);
}

void cf__pool_drop(cf_future *f, const cf__drop *drop)
{
    pool *p = pool_of_home(f->home);
    /* Whether the entry was a husk already (cancelled, or run by a wait)
     * or becomes one now by this cancel, it leaves the queue here. */
    bool husk = true;
    if (drop->code == CF_ECANCELED) {
        cf_future_cancel(f); /* counted by the cancel (future.c) */
    } else if (cf_future_set_running_or_notify_cancel(f)) {
        atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
        cf__future_fail(f, drop->code, drop->message);
        husk = false;
    }
    if (husk) {
        /* A cancel from another thread may still be counting itself in
         * p, under f's mu (complete in future.c): once this entry is gone
         * the pool may be freed, so wait that out. */
        cf__mutex_lock(&f->mu);
        cf__mutex_unlock(&f->mu);
        atomic_fetch_add_explicit(&p->sched.home.husks_gone, 1,
                                  memory_order_relaxed);
    }
    cf_future_release(f);
}

void cf__pool_run_future(cf_future *f, cf__worker *w, bool claimed)
{
    pool *p = pool_of(w);
    if (!claimed) {
        /* acquire: pairs with the release store of broken in break_pool */
        if (atomic_load_explicit(&p->broken, memory_order_acquire)) {
            cf__pool_drop(f, &(cf__drop){ CF_EBROKEN, p->broken_msg });
            return;
        }
        /* Tasks submitted from inside tasks sit on a worker's deque, out of
         * reach of shutdown's drain: cancel_futures cancels them here. A
         * task that is no longer pending was cancelled, or a wait ran it
         * (a claim): either way only the queue's reference is left. */
        if (atomic_load_explicit(&p->cancelling, memory_order_relaxed) ||
            !cf_future_set_running_or_notify_cancel(f)) {
            cf__pool_drop(f, &(cf__drop){ CF_ECANCELED, NULL });
            return;
        }
    } else if (cf_future_set_running_or_notify_cancel(f)) {
        /* its queue entry stays behind, no longer a task to start */
        atomic_fetch_add_explicit(&p->sched.home.husks, 1,
                                  memory_order_relaxed);
    } else {
        return; /* a worker or another wait got to it first */
    }
    cf__task_ctx ctx;
    cf__trace(CF__TR_TASK_NAME, (const void *)f->fn, 0);
    void *result = cf__future_call(f, &ctx);
    cf__worker_leave(w);
    cf__count(ctx.code ? &w->failed : &w->completed);
    cf__future_finish(f, result, &ctx);
    if (!claimed)
        cf_future_release(f);
}

static bool pool_claim(cf__worker *w, cf_future *f, void *ctx)
{
    pool *p = ctx;
    if (f->home != &p->sched.home || cf__future_state(f) != CF__PENDING ||
        atomic_load_explicit(&p->broken, memory_order_acquire) ||
        atomic_load_explicit(&p->cancelling, memory_order_relaxed) ||
        !cf__worker_stack_room(w))
        return false;
    /* Just submitted from here (the usual case): take it off our deque
     * and run it as a worker would, leaving no entry behind. */
    cf__task *t = cf__deque_take(&w->deque);
    if (t == &f->task) {
        cf__worker_run_inline(w, t, NULL);
        return true;
    }
    if (t)
        (void)cf__worker_push(w, t); /* just taken: no growth; wakes a thief */
    cf__worker_run_inline(w, &f->task, &cf__claimed);
    return true;
}

/* Cancels or fails a list of tasks taken off the injection queue. */
static void drop_all(pool *p, cf__task *list, int code, const char *why)
{
    (void)p; /* the futures' drop counts them (cf__pool_drop) */
    cf__drop drop = { code, why };
    for (cf__task *t = list, *next; t; t = next) {
        next = atomic_load_explicit(&t->next, memory_order_relaxed);
        t->exec(t, NULL, &drop);
    }
}

static void break_pool(pool *p, const cf__task_ctx *ctx)
{
    char buf[512];
    snprintf(buf, sizeof buf, "pool broken: a worker's initializer failed: %s",
             ctx->message ? ctx->message : cf_strerror(ctx->code));
    pthread_mutex_lock(&p->sched.spawn_mu);
    bool first = !atomic_load_explicit(&p->broken, memory_order_relaxed);
    if (first) {
        p->broken_msg = cf__strdup(buf);
        /* release: broken_msg is visible to whoever sees broken */
        atomic_store_explicit(&p->broken, true, memory_order_release);
    }
    pthread_mutex_unlock(&p->sched.spawn_mu);
    drop_all(p, cf__sched_drain(&p->sched), CF_EBROKEN, buf);
}

static void on_worker_start(cf__worker *w, void *ctx)
{
    pool *p = ctx;
    (void)w;
    if (!p->initializer)
        return;
    cf__task_ctx tctx = { 0, NULL };
    cf__task_ctx *outer = cf__task_ctx_swap(&tctx);
    p->initializer(p->initarg);
    cf__task_ctx_swap(outer);
    if (tctx.code)
        break_pool(p, &tctx);
    cf__free(tctx.message);
}

static void on_worker_retain(void *ctx)
{
    pool *p = ctx;
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void on_worker_release(void *ctx)
{
    pool_unref(ctx);
}

/* ---- the engine operations -------------------------------------------- */

static int pool_submit(cf_executor *ex, cf_future *f)
{
    pool *p = (pool *)ex;
    if (atomic_load_explicit(&p->broken, memory_order_acquire))
        return CF_EBROKEN;
    if (atomic_load_explicit(&p->sched.shutdown, memory_order_relaxed))
        return CF_ESHUTDOWN;
    f->task.exec = run_future;
    f->home = &p->sched.home;
    return cf__sched_push(&p->sched, &f->task);
}

static bool is_own_worker(pool *p)
{
    cf__worker *w = cf__worker_current();
    return w && w->sched == &p->sched;
}

static int pool_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    pool *p = (pool *)ex;
    if (wait && is_own_worker(p))
        return CF_EDEADLK;
    cf__executor_shut_down(ex);
    if (cancel_futures)
        atomic_store_explicit(&p->cancelling, true, memory_order_relaxed);
    cf__sched_shutdown(&p->sched);
    if (cancel_futures)
        drop_all(p, cf__sched_drain(&p->sched), CF_ECANCELED, NULL);
    if (wait)
        cf__sched_join(&p->sched);
    return 0;
}

static void pool_free(cf_executor *ex)
{
    pool *p = (pool *)ex;
    if (is_own_worker(p)) {
        pool_shutdown(ex, false, false);
        cf__sched_orphan(&p->sched);
    } else {
        pool_shutdown(ex, true, false);
    }
    pool_unref(p);
}

static int pool_wait(cf_executor *ex, const cf__deadline *deadline)
{
    pool *p = (pool *)ex;
    if (is_own_worker(p))
        return CF_EDEADLK;
    int rc = cf__sched_wait(&p->sched, deadline);
    if (rc == 0)
        cf__sched_join(&p->sched); /* they have left: this is quick */
    return rc;
}

static int pool_stats(cf_executor *ex, cf_stats *out)
{
    pool *p = (pool *)ex;
    cf__sched_stats s;
    cf__sched_stats_get(&p->sched, &s);
    out->workers = s.workers;
    out->idle = s.idle;
    out->queued = s.queued;
    out->running = s.running;
    out->completed = s.completed;
    out->failed =
        s.failed + atomic_load_explicit(&p->failed, memory_order_relaxed);
    out->cancelled = s.cancelled;
    out->steals = s.steals;
    out->inlined = s.inlined;
    out->spares = s.spares;
    out->blocked = s.blocked;
    return 0;
}

static const cf__executor_ops pool_ops = {
    .submit = pool_submit,
    .shutdown = pool_shutdown,
    .free = pool_free,
    .stats = pool_stats,
    .wait = pool_wait,
};

bool cf__executor_broken(cf_executor *ex)
{
    return ex->ops == &pool_ops &&
           atomic_load_explicit(&((pool *)ex)->broken, memory_order_acquire);
}

cf_executor *cf_thread_pool_new(const cf_options *opts)
{
    static atomic_uint pool_counter;
    if (!cf__options_valid(opts)) {
        errno = EINVAL;
        return NULL;
    }
    pool *p = cf__calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    int ncpu = cf_cpu_count();
    size_t max = opts && opts->max_workers > 0
                     ? (size_t)opts->max_workers
                     : (size_t)(ncpu + 4 < 32 ? ncpu + 4 : 32);
    char buf[48];
    const char *prefix = opts ? opts->name_prefix : NULL;
    if (!prefix) {
        snprintf(
            buf, sizeof buf, "ThreadPoolExecutor-%u",
            atomic_fetch_add_explicit(&pool_counter, 1, memory_order_relaxed));
        prefix = buf;
    }
    cf__sched_hooks hooks = { on_worker_start, on_worker_retain,
                              on_worker_release, pool_claim, p };
    if (cf__sched_init(&p->sched, max, prefix, &hooks)) {
        cf__free(p);
        errno = ENOMEM;
        return NULL;
    }
    if (opts && opts->idle_timeout > 0)
        p->sched.idle_timeout = opts->idle_timeout;
    p->sched.keep_signal_mask = opts && opts->keep_signal_mask;
    p->base.ops = &pool_ops;
    p->base.sched = &p->sched;
    p->initializer = opts ? opts->initializer : NULL;
    p->initarg = opts ? opts->initarg : NULL;
    atomic_init(&p->refs, 1);
    return &p->base;
}
