/*
 * executor.c - the executor API, written once over the engine operations
 * (executor.h). A submitted task is a future record holding fn and arg; the
 * engine holds one reference until the task is done, the caller one more
 * when it asked for the future.
 */
#include "executor.h"

int cf_submit(cf_executor *ex, cf_fn fn, void *arg, cf_future **out)
{
    if (!ex || !fn)
        return CF_EINVAL;
    cf_future *f = cf__future_alloc(out ? 2 : 1);
    if (!f)
        return CF_ENOMEM;
    f->fn = fn;
    f->arg = arg;
    int rc = ex->ops->submit(ex, f);
    if (rc) {
        cf__free(f);
        return rc;
    }
    if (out)
        *out = f;
    return 0;
}

int cf_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return CF_EINVAL;
    return ex->ops->shutdown(ex, wait, cancel_futures);
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
    return ex->ops->stats(ex, out);
}
