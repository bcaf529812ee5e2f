/* SPDX-License-Identifier: MIT */
/*
 * sched.h - the work-stealing scheduler under the thread pool: workers
 * with one Chase-Lev deque each, an injection queue for submissions from
 * outside, spinning then futex sleep, and the worker side of the wait
 * protocol (running a wait's dependencies inline, blocking with
 * compensation, spare workers).
 *
 * A task is any record that embeds a cf__task; exec runs it on a worker.
 * Futures, cf_join frames (on the joiner's stack) and group tasks are all
 * tasks. The sleep/wake protocol and its invariants are in docs/design.md,
 * "Sleeping and waking"; waits inside tasks in "The wait protocol".
 */
#ifndef CF_SCHED_H
#define CF_SCHED_H

#include "../trace.h"
#include "deque.h"

#include <pthread.h>

typedef struct cf__sched cf__sched;

/* Worker threads get this much stack: the depth of waits nested inline
 * on one thread is bounded by it (see CF__STACK_RESERVE), and spare
 * workers carry deeper chains, each on a stack of its own. */
#define CF__WORKER_STACK ((size_t)8 << 20)
/* A wait runs a dependency inline only while more than this much of the
 * thread's stack is left: room for the task's own code. ThreadSanitizer
 * keeps a shadow call stack of a fixed depth per thread, so there inline
 * nesting gets 2 MiB of the stack only. */
#if defined(__SANITIZE_ADDRESS__)
#define CF__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CF__ASAN 1
#endif
#endif
#if defined(CF__TSAN)
#define CF__STACK_RESERVE (CF__WORKER_STACK - ((size_t)2 << 20))
#elif defined(CF__ASAN)
#define CF__STACK_RESERVE ((size_t)1 << 20)
#else
#define CF__STACK_RESERVE ((size_t)256 << 10)
#endif
/* Spare workers a pool may start beyond max_workers to stand in for
 * workers blocked in waits: the cap of compensation. */
#define CF__MAX_SPARE ((size_t)1024)

struct cf__worker {
    cf__deque deque;
    cf__helper helper; /* installed as this thread's helper */
    cf__parker parker; /* outlives the thread: late unparks are safe */
    cf__sched *sched;
    cf_thread *thread;
    size_t index;
    uint32_t rng;
    /* The lowest usable address of the thread's stack plus
     * CF__STACK_RESERVE: below it a wait runs nothing inline. */
    uintptr_t stack_limit;
    char pad[64];             /* in_task and the counters away from the deque */
    _Atomic uint32_t in_task; /* 1 while inside a task (see sched.c) */
    _Atomic uint32_t in_wait; /* 1 while blocked in a wait */
    _Atomic uint32_t relying; /* blocked, leaving a failed start to others */
    _Atomic uint64_t epoch;   /* stolen join frames finished (owner only) */
    /* counters, written by this worker only (relaxed), read by stats */
    _Atomic size_t completed, failed, steals, inlined, blocked;
    /* sleep_mu */
    struct cf__worker *next_sleeper;
    bool sleeping;
    /* spawn_mu */
    bool exited, joined;
    bool retired; /* a spare that left: the record is free for reuse */
    bool left;    /* past its last use of spawn_mu: joinable, or detached */
};

typedef struct cf__sched_hooks {
    void (*on_start)(cf__worker *w, void *ctx); /* in the new worker */
    void (*retain)(void *ctx);                  /* a worker is being started */
    void (*release)(void *ctx); /* last thing a worker does (may free) */
    /* Runs the future f inline on w, inside a wait that depends on it, if
     * f is a pending task of this pool: true if it did. */
    bool (*claim)(cf__worker *w, cf_future *f, void *ctx);
    void *ctx;
} cf__sched_hooks;

struct cf__sched {
    /* The injection queue: Vyukov's intrusive MPSC queue. Producers swap
     * the tail (no lock); one consumer at a time holds inj_lock. */
    _Atomic(cf__task *) inj_tail;
    /* Tasks ever injected (producers) and ever taken off (the consumer
     * holding inj_lock): each on its own side's line, so that a push and a
     * pop do not fight over one counter. What is queued is the difference
     * (inj_queued in sched.c). */
    _Atomic size_t inj_pushed;
    /* External pushes in flight: on the producers' line, away from idle,
     * which searching workers update all the time. */
    _Atomic int64_t submitting;
    char pad1[64]; /* producers' lines apart from the consumer's */
    cf__task *inj_head;
    atomic_flag inj_lock;
    _Atomic size_t inj_popped;
    cf__task inj_stub;
    /* searching workers (low 32 bits) and sleeping ones (high 32 bits) */
    char pad2[64];
    _Atomic uint64_t idle;
    _Atomic bool shutdown;
    pthread_mutex_t sleep_mu;
    cf__worker *sleepers;
    /* workers[0, nworkers) are published (release on nworkers) */
    pthread_mutex_t spawn_mu;
    cf__worker **workers;
    size_t max_workers;
    size_t max_spare; /* CF__MAX_SPARE: workers beyond max_workers */
    unsigned ncpu;    /* CPUs: bounds how many workers spin at once */
    _Atomic size_t nworkers;
    _Atomic size_t live;
    /* Read by every worker at every task, written only when a wait
     * blocks: kept off the lines that submitters write (submitting). */
    _Atomic size_t blocked_now; /* workers blocked in a wait right now */
    _Atomic size_t resting;     /* surplus workers standing down */
    _Atomic size_t spares;      /* spare workers started, ever */
    cf__task_home home;         /* of the futures queued here */
    bool orphaned;              /* spawn_mu */
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

void cf__sched_notify_slow(cf__sched *s, uint64_t idle);

/* After making work visible: makes sure someone will look at it (wakes a
 * sleeper or starts a worker when nobody searches). fenced: the work was
 * made visible by a plain store (a deque push), so a seq_cst fence must
 * order it before the idle load (the Dekker pairing with a worker's idle
 * update and re-scan in go_to_sleep); an injection made it visible with a
 * seq_cst read-modify-write of inj_pushed, which the seq_cst load of idle
 * cannot pass: no fence (the sleeper's side reads inj_pushed seq_cst after
 * its seq_cst update of idle, so one of the two sees the other). Inline:
 * while every worker is busy it is one fence and a few loads. */
static inline void cf__sched_notify(cf__sched *s, bool fenced)
{
    if (fenced)
        cf__fence_seq_cst();
    uint64_t idle = atomic_load_explicit(&s->idle, memory_order_seq_cst);
    if ((uint32_t)idle > 0) /* a searcher will find it */
        return;
    /* seq_cst: a worker that retires leaves live before it stops
     * searching (retire in sched.c); having seen it not searching, we see
     * it out of live */
    if ((idle >> 32) > 0 ||
        atomic_load_explicit(&s->live, memory_order_seq_cst) < s->max_workers ||
        atomic_load_explicit(&s->blocked_now, memory_order_seq_cst) > 0)
        cf__sched_notify_slow(s, idle);
    /* else every live worker is busy and no more may start */
}

/* Pushes t on worker w's own deque (w is the calling thread's worker) and
 * wakes or starts a worker if none is looking: 0 or CF_ENOMEM. Inline: it
 * is half of every cf_join. */
static inline int cf__worker_push(cf__worker *w, cf__task *t)
{
    if (cf__deque_push(&w->deque, t))
        return CF_ENOMEM;
    cf__sched_notify(w->sched, true);
    return 0;
}

/* Hands t to the pool's shared queue (any worker may run it) and wakes or
 * starts a worker for it: for work a waiter must not run inline. */
void cf__sched_inject(cf__sched *s, cf__task *t);

/* Leapfrogging (docs/design.md, "The wait protocol"): from worker w,
 * steals a task of the deque of worker thief at index base or above while
 * thief's epoch is still epoch - that is, a task thief pushed while it ran
 * the stolen join frame that recorded base and epoch, so a task of that
 * frame's subtree. NULL if there is none. */
cf__task *cf__worker_steal_back(cf__worker *w, cf__worker *thief, int64_t base,
                                uint64_t epoch);

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
/* True while the calling thread (worker w) has more than
 * CF__STACK_RESERVE of stack left below the current frame. */
static inline bool cf__worker_stack_room(const cf__worker *w)
{
    /* One compare: this is on the path of every cf_join. */
    return (uintptr_t)__builtin_frame_address(0) > w->stack_limit;
}

/* Runs t on w inside a wait of the task w is running (t is something that
 * wait depends on: docs/design.md, "The wait protocol"); how is NULL, or
 * what the task's exec needs to know (a claimed future). The waiting task
 * is still running when t returns. */
static inline void cf__worker_run_inline(cf__worker *w, cf__task *t,
                                         const cf__drop *how);

/* A spin-wait hint to the CPU. */
static inline void cf__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Bumps a worker's own counter (no read-modify-write: one writer). */
static inline void cf__count(_Atomic size_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline void cf__worker_run_inline(cf__worker *w, cf__task *t,
                                         const cf__drop *how)
{
    cf__count(&w->inlined);
    cf__trace(CF__TR_TASK_BEGIN, NULL, 1);
    t->exec(t, w, how);
    cf__trace(CF__TR_TASK_END, NULL, 0);
    atomic_store_explicit(&w->in_task, 1, memory_order_relaxed);
}

/* Snapshot of the scheduler for stats. */
typedef struct cf__sched_stats {
    size_t workers, idle, queued, running, completed, failed, cancelled;
    size_t steals, inlined, spares, blocked;
} cf__sched_stats;
void cf__sched_stats_get(cf__sched *s, cf__sched_stats *out);

#endif /* CF_SCHED_H */
