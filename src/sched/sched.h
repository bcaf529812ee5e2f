/* SPDX-License-Identifier: MIT */
/*
 * sched.h - the work-stealing scheduler under the thread pool: workers
 * with one Chase-Lev deque each, an injection queue for submissions from
 * outside, spinning then futex sleep, and help-while-wait.
 *
 * A task is any record that embeds a cf__task; exec runs it on a worker.
 * Futures, cf_join frames (on the joiner's stack) and group tasks are all
 * tasks. The sleep/wake protocol and its invariants are in docs/design.md,
 * "Sleeping and waking".
 */
#ifndef CF_SCHED_H
#define CF_SCHED_H

#include "deque.h"

#include <pthread.h>

typedef struct cf__sched cf__sched;

struct cf__worker {
    cf__deque deque;
    cf__helper helper; /* installed as this thread's helper */
    cf__parker parker; /* outlives the thread: late unparks are safe */
    cf__sched *sched;
    cf_thread *thread;
    size_t index;
    uint32_t rng;
    unsigned depth;            /* nesting of tasks run while waiting */
    char pad[64]; /* in_task and the counters away from the deque */
    _Atomic uint32_t in_task; /* 1 while inside a task (see sched.c) */
    /* counters, written by this worker only (relaxed), read by stats */
    _Atomic size_t completed, failed, cancelled;
    /* sleep_mu */
    struct cf__worker *next_sleeper;
    bool sleeping;
    bool helping;
    /* spawn_mu */
    bool exited, joined;
};

typedef struct cf__sched_hooks {
    void (*on_start)(cf__worker *w, void *ctx); /* in the new worker */
    void (*retain)(void *ctx);  /* a worker is being started */
    void (*release)(void *ctx); /* last thing a worker does (may free) */
    void *ctx;
} cf__sched_hooks;

struct cf__sched {
    /* The injection queue: Vyukov's intrusive MPSC queue. Producers swap
     * the tail (no lock); one consumer at a time holds inj_lock. */
    _Atomic(cf__task *) inj_tail;
    _Atomic size_t inj_count;
    char pad1[64]; /* producers' lines apart from the consumer's */
    cf__task *inj_head;
    atomic_flag inj_lock;
    cf__task inj_stub;
    /* searching workers (low 32 bits) and sleeping ones (high 32 bits) */
    char pad2[64];
    _Atomic uint64_t idle;
    _Atomic int64_t submitting; /* external pushes in flight */
    _Atomic bool shutdown;
    _Atomic size_t parked_helpers;
    pthread_mutex_t sleep_mu;
    cf__worker *sleepers;
    /* workers[0, nworkers) are published (release on nworkers) */
    pthread_mutex_t spawn_mu;
    cf__worker **workers;
    size_t max_workers;
    size_t max_spare; /* extra workers allowed for waits nested too deep */
    unsigned ncpu;    /* CPUs: bounds how many workers spin at once */
    _Atomic size_t nworkers;
    _Atomic size_t live;
    bool orphaned; /* spawn_mu */
    char *prefix;
    cf__sched_hooks hooks;
    /* Set by the pool before its first push: */
    double idle_timeout;    /* seconds a sleeping worker waits, then leaves;
                               0 never */
    bool keep_signal_mask;  /* workers keep their creator's signal mask */
    pthread_cond_t exit_cv; /* spawn_mu: signalled when live drops to 0 */
};

int cf__sched_init(cf__sched *s, size_t max_workers, const char *prefix,
                   const cf__sched_hooks *hooks);
/* Frees what init made and every worker record; all workers are gone. */
void cf__sched_destroy(cf__sched *s);

/* The worker running on this thread, or NULL (sched.c owns it). */
extern _Thread_local cf__worker *cf__tls_worker;
static inline cf__worker *cf__worker_current(void)
{
    return cf__tls_worker;
}

/* From a worker of s: pushes t on its deque. From elsewhere: CF_ESHUTDOWN
 * after shutdown, else queues t for the workers (starting the first one).
 * Either way wakes or starts a worker when none is looking for work.
 * 0, CF_ESHUTDOWN, CF_ENOMEM. */
int cf__sched_push(cf__sched *s, cf__task *t);

/* Pushes t on worker w's own deque (w is the calling thread's worker) and
 * wakes or starts a worker if none is looking: 0 or CF_ENOMEM. */
int cf__worker_push(cf__worker *w, cf__task *t);

/* Stops accepting external work; workers leave once no work is left. */
void cf__sched_shutdown(cf__sched *s);
/* Joins every worker (after shutdown). */
void cf__sched_join(cf__sched *s);
/* Waits until no worker is live (after shutdown: every task is done and the
 * workers have left): 0, or CF_ETIMEDOUT at the deadline. */
int cf__sched_wait(cf__sched *s, const cf__deadline *deadline);
/* From a worker of s: joins the workers that have left and lets the others
 * detach themselves as they leave. */
void cf__sched_orphan(cf__sched *s);
/* Takes every task from the injection queue (for cancel or break). */
cf__task *cf__sched_drain(cf__sched *s);

/* A task's exec calls this when its user code has returned, before it
 * publishes the result: the worker is no longer busy, so a caller that
 * submits right after reading the result finds it and starts no thread.
 * (The scheduler marks the worker busy before exec: sched.c.) */
static inline void cf__worker_leave(cf__worker *w)
{
    atomic_store_explicit(&w->in_task, 0, memory_order_relaxed);
}
/* Bumps a worker's own counter (no read-modify-write: one writer). */
static inline void cf__count(_Atomic size_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Snapshot of the scheduler for stats. */
typedef struct cf__sched_stats {
    size_t workers, idle, queued, running, completed, failed, cancelled;
} cf__sched_stats;
void cf__sched_stats_get(cf__sched *s, cf__sched_stats *out);

#endif /* CF_SCHED_H */
