/* SPDX-License-Identifier: MIT */
/*
 * executor.c - the executor API, written once over the engine operations
 * (executor.h). A submitted task is a future record holding fn and arg; the
 * engine holds one reference until the task is done, the caller one more
 * when it asked for the future.
 */
#include "executor.h"

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
    return ex->ops->shutdown(ex, wait, cancel_futures);
}

int cf_executor_wait(cf_executor *ex, double timeout)
{
    cf__deadline d;
    if (!ex || cf__deadline_from(timeout, &d) ||
        !atomic_load_explicit(&ex->shut_down, memory_order_relaxed))
        return CF_EINVAL;
    return ex->ops->wait(ex, &d);
}

void cf_executor_free(cf_executor *ex)
{
    if (ex)
        ex->ops->free(ex);
}

int cf_executor_stats(cf_executor *ex, cf_stats *out)
{
    if (!ex || !out)
        return CF_EINVAL;
    memset(out, 0, sizeof *out);
    return ex->ops->stats(ex, out);
}
