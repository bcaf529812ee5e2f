/* SPDX-License-Identifier: MIT */
/*
 * executor.c - the executor API, written once over the engine operations
 * (executor.h). A submitted task is a future record holding fn and arg; the
 * engine holds one reference until the task is done, the caller one more
 * when it asked for the future.
 *
 * cf_executor_wait is the engine's wait operation where it has one (thread
 * pools); otherwise one thread per executor, started by the first wait,
 * calls the engine's shutdown with wait and then completes a future that
 * every wait waits on with its own timeout.
 */
#include "executor.h"

#include <pthread.h>
#include <string.h>

cf_future *cf__task_future_new(cf_fn fn, void *arg, uint32_t refs)
{
    cf_future *f = cf__future_alloc(refs);
    if (f) {
        f->fn = fn;
        f->arg = arg;
    }
    return f;
}

int cf__submit_future(cf_executor *ex, cf_future *f)
{
    int rc = ex->ops->submit(ex, f);
    if (rc)
        cf__cache_free(f); /* never seen by anyone */
    return rc;
}

int cf_submit(cf_executor *ex, cf_fn fn, void *arg, cf_future **out)
{
    if (!ex || !fn)
        return CF_EINVAL;
    cf_future *f = cf__task_future_new(fn, arg, out ? 2 : 1);
    if (!f)
        return CF_ENOMEM;
    int rc = cf__submit_future(ex, f);
    if (rc == 0 && out)
        *out = f;
    return rc;
}

int cf_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return CF_EINVAL;
    atomic_store_explicit(&ex->shut_down, true, memory_order_relaxed);
    return ex->ops->shutdown(ex, wait, cancel_futures);
}

/* Guards the start of reapers: one per executor, started once (a rare
 * path, hence one lock for all executors). */
static pthread_mutex_t reaper_mu = PTHREAD_MUTEX_INITIALIZER;

static void *reap(void *arg)
{
    cf_executor *ex = arg;
    ex->ops->shutdown(ex, true, false);
    cf_future_set_result(ex->reaped, NULL);
    return NULL;
}

/* The future that a reaper completes, with a reference for the caller:
 * NULL with *rc set when it cannot start one. */
static cf_future *reaped_future(cf_executor *ex, int *rc)
{
    pthread_mutex_lock(&reaper_mu);
    if (!ex->reaped && (ex->reaped = cf_future_new())) {
        sigset_t mask;
        cf__signals_block(&mask);
        cf_thread_options o = { .name = "cf-executor-wait" };
        *rc = cf_thread_start(&ex->reaper, reap, ex, &o);
        cf__signals_restore(&mask);
        if (*rc) {
            cf_future_release(ex->reaped);
            ex->reaped = NULL;
        }
    } else if (!ex->reaped) {
        *rc = CF_ENOMEM;
    }
    cf_future *f = ex->reaped;
    cf_future_retain(f);
    pthread_mutex_unlock(&reaper_mu);
    return f;
}

int cf_executor_wait(cf_executor *ex, double timeout)
{
    cf__deadline d;
    if (!ex || cf__deadline_from(timeout, &d) ||
        !atomic_load_explicit(&ex->shut_down, memory_order_relaxed))
        return CF_EINVAL;
    if (ex->ops->wait)
        return ex->ops->wait(ex, &d);
    int rc = 0;
    cf_future *f = reaped_future(ex, &rc);
    if (!f)
        return rc;
    rc = cf_future_result(f, cf__deadline_left(&d), NULL);
    cf_future_release(f);
    return rc;
}

void cf_executor_free(cf_executor *ex)
{
    if (!ex)
        return;
    pthread_mutex_lock(&reaper_mu);
    cf_thread *reaper = ex->reaper;
    pthread_mutex_unlock(&reaper_mu);
    if (reaper) {
        cf_thread_join(reaper, CF_FOREVER, NULL);
        cf_future_release(ex->reaped);
    }
    ex->ops->free(ex);
}

int cf_executor_stats(cf_executor *ex, cf_stats *out)
{
    if (!ex || !out)
        return CF_EINVAL;
    memset(out, 0, sizeof *out);
    return ex->ops->stats(ex, out);
}
