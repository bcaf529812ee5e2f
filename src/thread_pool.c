/*
 * thread_pool.c - the thread-pool executor: lazily started workers, one
 * FIFO queue of task records under one mutex, and help-while-wait.
 *
 * Worker accounting (all under `mu`): every live worker is in exactly one
 * of three conditions - searching (it will look at the queue before it
 * sleeps), parked (on the idle stack, asleep), or busy (running a task).
 *   - A submit that leaves more queued tasks than searching workers wakes a
 *     parked worker, or starts a new one while fewer than max_workers live
 *     ("kick"). A worker counts itself searching again *before* it publishes
 *     its task's result, so a caller that submits right after reading a
 *     result finds it and starts no thread: sequential submit-and-wait uses
 *     one worker.
 *   - A worker parks only after seeing the queue empty under `mu`, and a
 *     submit enqueues and kicks under `mu`: no wake-up is lost.
 *   - A worker blocked in a wait inside a task (cf__helper) runs queued
 *     tasks of its pool instead of sleeping, and while it sleeps it sits on
 *     the idle stack too, so a submit wakes it: nested submit-and-wait never
 *     deadlocks, even with max_workers = 1.
 * Cost: two mutex round trips per task; a futex wake only for a parked
 * worker. The work-stealing scheduler replaces the single queue later.
 */
#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct pool pool;

typedef struct worker {
    cf__helper helper; /* first: a cf__helper * is a worker * */
    cf__parker parker; /* outlives the thread: late unparks are safe */
    pool *pool;
    cf_thread *thread;
    struct worker *next_idle;
    struct worker *next_all;
    bool on_idle;  /* on the idle stack (mu) */
    bool helping;  /* parked inside a wait, not in the main loop (mu) */
    bool exited;   /* its thread function is returning (mu) */
    bool joined;   /* joined or detached (join_mu) */
} worker;

struct pool {
    cf_executor base;
    pthread_mutex_t mu;
    cf_future *head, *tail; /* the queue, linked through next */
    size_t queued;
    worker *idle;           /* parked workers, a stack */
    worker *all;            /* every worker started, newest first */
    size_t live, searching, parked, parked_helpers;
    _Atomic size_t running; /* tasks inside fn; relaxed, for stats only */
    size_t started;         /* for worker names */
    size_t max_workers;
    size_t completed, failed, cancelled;
    bool shutdown, broken, orphaned;
    char *broken_msg;
    char *prefix;
    cf_fn initializer;
    void *initarg;
    _Atomic uint32_t refs;  /* the user's, plus one per live worker */
    pthread_mutex_t join_mu;
};

static _Thread_local worker *current_worker;

static void pool_unref(pool *p)
{
    /* acq_rel: the last owner sees every worker's final writes */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (worker *w = p->all, *next; w; w = next) {
        next = w->next_all;
        cf__free(w);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->join_mu);
    cf__free(p->broken_msg);
    cf__free(p->prefix);
    cf__free(p);
}

static void *worker_main(void *arg);

/* Starts one worker (mu held). 0 or CF_ENOMEM / a thread error. */
static int spawn_locked(pool *p)
{
    worker *w = cf__calloc(1, sizeof *w);
    if (!w)
        return CF_ENOMEM;
    w->pool = p;
    char name[96];
    snprintf(name, sizeof name, "%s_%zu", p->prefix, p->started);
    cf_thread_options o = { .name = name };
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    int rc = cf_thread_start(&w->thread, worker_main, w, &o);
    if (rc) {
        atomic_fetch_sub_explicit(&p->refs, 1, memory_order_relaxed);
        cf__free(w);
        return rc;
    }
    p->started++;
    p->live++;
    p->searching++;
    w->next_all = p->all;
    p->all = w;
    return 0;
}

/* Makes sure the queued tasks have searching workers (mu held): wakes a
 * parked one, or starts one. Returns the worker to unpark after unlocking. */
static worker *kick_locked(pool *p)
{
    if (p->queued <= p->searching)
        return NULL;
    if (p->idle) {
        worker *w = p->idle;
        p->idle = w->next_idle;
        w->on_idle = false;
        p->parked--;
        if (w->helping)
            p->parked_helpers--;
        p->searching++;
        return w;
    }
    if (!p->shutdown && p->live < p->max_workers)
        spawn_locked(p); /* on failure the live workers drain the queue */
    return NULL;
}

static cf_future *pop_locked(pool *p)
{
    cf_future *t = p->head;
    if (t) {
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        t->next = NULL;
        p->queued--;
    }
    return t;
}

/* Detaches the whole queue (mu held). */
static cf_future *take_queue_locked(pool *p)
{
    cf_future *q = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    return q;
}

/* Runs one task record popped from the queue (or drops it if it was
 * cancelled). from_main_loop: the worker was searching when it popped it
 * and becomes searching again before it publishes the result (see the
 * accounting rules above). */
static void run_task(pool *p, cf_future *t, bool from_main_loop)
{
    bool ran = cf_future_set_running_or_notify_cancel(t);
    void *result = NULL;
    cf__task_ctx ctx = { 0, NULL };
    if (ran) {
        atomic_fetch_add_explicit(&p->running, 1, memory_order_relaxed);
        result = cf__future_call(t, &ctx);
        atomic_fetch_sub_explicit(&p->running, 1, memory_order_relaxed);
    }
    pthread_mutex_lock(&p->mu);
    if (!ran)
        p->cancelled++;
    else if (ctx.code)
        p->failed++;
    else
        p->completed++;
    if (from_main_loop)
        p->searching++;
    pthread_mutex_unlock(&p->mu);
    if (ran)
        cf__future_finish(t, result, &ctx);
    cf_future_release(t);
}

/* Fails everything queued with CF_EBROKEN: the pool cannot run it. */
static void fail_all(pool *p, cf_future *q, const char *why)
{
    for (cf_future *t = q, *next; t; t = next) {
        next = t->next;
        t->next = NULL;
        pthread_mutex_lock(&p->mu);
        p->failed++;
        pthread_mutex_unlock(&p->mu);
        cf__future_fail(t, CF_EBROKEN, why);
        cf_future_release(t);
    }
}

static void break_pool(pool *p, const cf__task_ctx *ctx)
{
    char buf[512];
    snprintf(buf, sizeof buf, "pool broken: a worker's initializer failed: %s",
             ctx->message ? ctx->message : cf_strerror(ctx->code));
    pthread_mutex_lock(&p->mu);
    bool first = !p->broken;
    p->broken = true;
    if (first)
        p->broken_msg = cf__strdup(buf);
    cf_future *q = take_queue_locked(p);
    /* Wake every parked worker so that they leave. */
    worker *woken = p->idle;
    p->idle = NULL;
    for (worker *w = woken; w; w = w->next_idle) {
        w->on_idle = false;
        p->searching++;
    }
    p->parked = p->parked_helpers = 0;
    pthread_mutex_unlock(&p->mu);
    for (worker *w = woken, *next; w; w = next) {
        next = w->next_idle;
        cf__unpark(&w->parker);
    }
    fail_all(p, q, buf);
}

/* ---- helping inside waits (cf__helper) -------------------------------- */

static bool helper_run_one(cf__helper *h)
{
    worker *w = (worker *)h;
    pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    cf_future *t = pop_locked(p);
    pthread_mutex_unlock(&p->mu);
    if (!t)
        return false;
    run_task(p, t, false);
    return true;
}

static void helper_park(cf__helper *h, const cf__deadline *deadline)
{
    worker *w = (worker *)h;
    pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    if (p->head) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    w->on_idle = true;
    w->helping = true;
    w->next_idle = p->idle;
    p->idle = w;
    p->parked++;
    p->parked_helpers++;
    pthread_mutex_unlock(&p->mu);

    cf__park(&w->parker, deadline);

    pthread_mutex_lock(&p->mu);
    worker *wake = NULL;
    if (w->on_idle) {
        /* Woken by the awaited event or the deadline: leave the stack. */
        for (worker **pp = &p->idle; *pp; pp = &(*pp)->next_idle) {
            if (*pp == w) {
                *pp = w->next_idle;
                break;
            }
        }
        w->on_idle = false;
        p->parked--;
        p->parked_helpers--;
    } else {
        /* A kick counted us as searching; we are busy in a wait, so hand
         * the work on if nobody else will see it. */
        p->searching--;
        wake = kick_locked(p);
    }
    w->helping = false;
    pthread_mutex_unlock(&p->mu);
    if (wake)
        cf__unpark(&wake->parker);
}

/* ---- the worker thread ------------------------------------------------ */

static void *worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->pool;
    current_worker = w;
    cf__parker_set_self(&w->parker);
    w->helper.run_one = helper_run_one;
    w->helper.park = helper_park;
    cf__helper *outer_helper = cf__helper_swap(&w->helper);

    if (p->initializer) {
        cf__task_ctx ctx = { 0, NULL };
        cf__task_ctx *outer = cf__task_ctx_swap(&ctx);
        p->initializer(p->initarg);
        cf__task_ctx_swap(outer);
        if (ctx.code)
            break_pool(p, &ctx);
        cf__free(ctx.message);
    }

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->broken)
            break;
        cf_future *t = pop_locked(p);
        if (t) {
            p->searching--;
            pthread_mutex_unlock(&p->mu);
            run_task(p, t, true);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->shutdown)
            break;
        p->searching--;
        w->on_idle = true;
        w->next_idle = p->idle;
        p->idle = w;
        p->parked++;
        while (w->on_idle) {
            pthread_mutex_unlock(&p->mu);
            cf__park(&w->parker, NULL);
            pthread_mutex_lock(&p->mu);
        }
        /* Whoever took us off the stack counted us as searching. */
    }
    p->searching--;
    p->live--;
    w->exited = true;
    bool orphaned = p->orphaned;
    pthread_mutex_unlock(&p->mu);

    cf__helper_swap(outer_helper);
    cf__parker_set_self(NULL);
    current_worker = NULL;
    if (orphaned)
        cf__thread_detach_self();
    pool_unref(p);
    return NULL;
}

/* ---- the engine operations -------------------------------------------- */

static int pool_submit(cf_executor *ex, cf_future *task)
{
    pool *p = (pool *)ex;
    pthread_mutex_lock(&p->mu);
    if (p->shutdown || p->broken) {
        int rc = p->broken ? CF_EBROKEN : CF_ESHUTDOWN;
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    if (p->live == 0) {
        int rc = spawn_locked(p);
        if (rc) {
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
    }
    task->next = NULL;
    if (p->tail)
        p->tail->next = task;
    else
        p->head = task;
    p->tail = task;
    p->queued++;
    worker *wake = kick_locked(p);
    pthread_mutex_unlock(&p->mu);
    if (wake)
        cf__unpark(&wake->parker);
    return 0;
}

static bool is_own_worker(pool *p)
{
    return current_worker && current_worker->pool == p;
}

/* Joins every worker that is not joined yet; they must be leaving. */
static void join_workers(pool *p)
{
    pthread_mutex_lock(&p->join_mu);
    pthread_mutex_lock(&p->mu);
    worker *all = p->all; /* no worker starts after shutdown */
    pthread_mutex_unlock(&p->mu);
    for (worker *w = all; w; w = w->next_all) {
        if (!w->joined) {
            cf_thread_join(w->thread, CF_FOREVER, NULL);
            w->joined = true;
        }
    }
    pthread_mutex_unlock(&p->join_mu);
}

static int pool_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    pool *p = (pool *)ex;
    if (wait && is_own_worker(p))
        return CF_EDEADLK;
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    cf_future *q = cancel_futures ? take_queue_locked(p) : NULL;
    worker *woken = p->idle;
    p->idle = NULL;
    for (worker *w = woken; w; w = w->next_idle) {
        w->on_idle = false;
        p->searching++;
    }
    p->parked = p->parked_helpers = 0;
    pthread_mutex_unlock(&p->mu);
    for (worker *w = woken, *next; w; w = next) {
        next = w->next_idle;
        cf__unpark(&w->parker);
    }
    for (cf_future *t = q, *next; t; t = next) {
        next = t->next;
        t->next = NULL;
        cf_future_cancel(t);
        pthread_mutex_lock(&p->mu);
        p->cancelled++;
        pthread_mutex_unlock(&p->mu);
        cf_future_release(t);
    }
    if (wait)
        join_workers(p);
    return 0;
}

static void pool_free(cf_executor *ex)
{
    pool *p = (pool *)ex;
    if (!is_own_worker(p)) {
        pool_shutdown(ex, true, false);
        pool_unref(p);
        return;
    }
    /* From one of its own tasks: nobody can wait here. Workers that have
     * exited are joined now; the others detach themselves as they leave,
     * and the last reference frees the pool. */
    pthread_mutex_lock(&p->join_mu);
    pthread_mutex_lock(&p->mu);
    p->orphaned = true;
    for (worker *w = p->all; w; w = w->next_all) {
        if (w->exited && !w->joined) {
            w->joined = true;
            pthread_mutex_unlock(&p->mu);
            cf_thread_join(w->thread, CF_FOREVER, NULL);
            pthread_mutex_lock(&p->mu);
        } else if (!w->exited) {
            w->joined = true; /* it will detach itself */
        }
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->join_mu);
    pool_shutdown(ex, false, false);
    pool_unref(p);
}

static int pool_stats(cf_executor *ex, cf_stats *out)
{
    pool *p = (pool *)ex;
    pthread_mutex_lock(&p->mu);
    out->workers = p->live;
    out->idle = p->searching + (p->parked - p->parked_helpers);
    out->queued = p->queued;
    out->running = atomic_load_explicit(&p->running, memory_order_relaxed);
    out->completed = p->completed;
    out->failed = p->failed;
    out->cancelled = p->cancelled;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static const cf__executor_ops pool_ops = {
    .submit = pool_submit,
    .shutdown = pool_shutdown,
    .free = pool_free,
    .stats = pool_stats,
};

cf_executor *cf_thread_pool_new(const cf_options *opts)
{
    static atomic_uint pool_counter;
    if (opts && opts->max_workers < 0) {
        errno = EINVAL;
        return NULL;
    }
    pool *p = cf__calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    int ncpu = cf_cpu_count();
    p->max_workers = opts && opts->max_workers > 0
                         ? (size_t)opts->max_workers
                         : (size_t)(ncpu + 4 < 32 ? ncpu + 4 : 32);
    if (opts && opts->name_prefix) {
        p->prefix = cf__strdup(opts->name_prefix);
    } else {
        char buf[48];
        snprintf(buf, sizeof buf, "ThreadPoolExecutor-%u",
                 atomic_fetch_add_explicit(&pool_counter, 1,
                                           memory_order_relaxed));
        p->prefix = cf__strdup(buf);
    }
    if (!p->prefix) {
        cf__free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->base.ops = &pool_ops;
    p->initializer = opts ? opts->initializer : NULL;
    p->initarg = opts ? opts->initarg : NULL;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->join_mu, NULL);
    return &p->base;
}
