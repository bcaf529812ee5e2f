/* SPDX-License-Identifier: MIT */
/*
 * executor.h - the engine interface behind cf_executor. Each engine (thread
 * pool now; process and MPI pools later) embeds `cf_executor` first and
 * fills the operations; cf_submit, cf_map and the rest are written once
 * against it (executor.c, map.c).
 */
#ifndef CF_EXECUTOR_H
#define CF_EXECUTOR_H

#include "future.h"

typedef struct cf__executor_ops {
    /* Queues task (a pending future with fn and arg set), taking over one
     * reference to it. 0, or an error with the reference left to the caller. */
    int (*submit)(cf_executor *ex, cf_future *task);
    /* Optional, for engines that run bytes tasks elsewhere: queues fn over
     * a copy of in[0..len) for the bytes future f (is_bytes set), taking
     * over one reference. NULL: bytes tasks go through submit. */
    int (*submit_bytes)(cf_executor *ex, cf_future *f, cf_bytes_fn fn,
                        const void *in, size_t len);
    int (*shutdown)(cf_executor *ex, bool wait, bool cancel_futures);
    void (*free)(cf_executor *ex);
    int (*stats)(cf_executor *ex, cf_stats *out);
    /* cf_executor_wait after shutdown, until the deadline: 0 once the
     * accepted work is done and the workers have exited, CF_ETIMEDOUT, or
     * CF_EDEADLK from a thread of the engine (a task, a done callback). */
    int (*wait)(cf_executor *ex, const cf__deadline *deadline);
} cf__executor_ops;

struct cf_executor {
    const cf__executor_ops *ops;
    struct cf__sched *sched; /* a thread pool's scheduler; NULL otherwise */
    /* Set by the engine's shutdown once it goes ahead (not when it
     * refuses with CF_EDEADLK): cf_executor_wait's precondition. */
    _Atomic bool shut_down;
};

static inline void cf__executor_shut_down(cf_executor *ex)
{
    atomic_store_explicit(&ex->shut_down, true, memory_order_relaxed);
}

/* A task future for fn(arg) with refs references (one is the engine's).
 * NULL on ENOMEM. */
cf_future *cf__task_future_new(cf_fn fn, void *arg, uint32_t refs);
/* Hands a task future to ex: 0, or an error with f freed. */
int cf__submit_future(cf_executor *ex, cf_future *f);

/* Runs a task future on worker w of a thread pool (or fails it if the pool
 * is broken, drops it if it was cancelled), then drops the pool's
 * reference. claimed: a wait that depends on f runs it inline, before any
 * worker took it off its queue; it runs only if still pending, and the
 * queue's reference stays for whoever takes the entry off later. */
void cf__pool_run_future(cf_future *f, cf__worker *w, bool claimed);
/* The drop that tells a future task's exec it was claimed (above). */
extern const cf__drop cf__claimed;
/* Completes a task future of a thread pool that it will never run (cancel
 * for CF_ECANCELED, else fail with the drop's code), keeps the counters,
 * and drops the pool's reference. */
void cf__pool_drop(cf_future *f, const cf__drop *drop);

/* The scheduler of a thread pool, or NULL for other executors. */
static inline struct cf__sched *cf__executor_sched(cf_executor *ex)
{
    return ex ? ex->sched : NULL;
}
/* True once a thread pool is broken (its initializer failed). */
bool cf__executor_broken(cf_executor *ex);

/* The checks every pool constructor makes of its options (options.c): true
 * for NULL or for options with max_workers >= 0, idle_timeout and
 * task_timeout neither NaN nor negative, and a zero reserved tail; false
 * with errno EINVAL otherwise. */
bool cf__options_valid(const cf_options *opts);

#endif /* CF_EXECUTOR_H */
