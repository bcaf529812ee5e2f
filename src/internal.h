/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the layers of cfutures share and users never see.
 *
 * Platform layer: the allocation hook, monotonic deadlines, futex wait/wake,
 * a one-word mutex and the per-thread parker. Everything higher (sync,
 * thread, future, executors) is built from these. Names here are cf__*.
 */
#ifndef CF_INTERNAL_H
#define CF_INTERNAL_H

#include "cfutures.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* ---- fences. ThreadSanitizer does not model atomic_thread_fence (and gcc
 * refuses it under -Werror), so in TSan builds a full fence is a seq_cst
 * read-modify-write of a dummy word: a full barrier for the compiler and
 * the CPU alike, and an operation TSan understands. */
#if defined(__SANITIZE_THREAD__)
#define CF__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CF__TSAN 1
#endif
#endif

static inline void cf__fence_seq_cst(void)
{
#ifdef CF__TSAN
    static _Atomic int dummy;
    atomic_fetch_add_explicit(&dummy, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* A release fence; in TSan builds the release store after it suffices. */
static inline void cf__fence_release(void)
{
#ifndef CF__TSAN
    atomic_thread_fence(memory_order_release);
#endif
}

/* ---- memory: every allocation goes through the hook (cf_replace_allocator) */
void *cf__malloc(size_t size);
void *cf__calloc(size_t count, size_t size);
void *cf__realloc(void *ptr, size_t size);
void cf__free(void *ptr);
char *cf__strdup(const char *s); /* NULL stays NULL; NULL on ENOMEM too */
bool cf__alloc_is_libc(void);    /* the allocator was not replaced */
/* Zeroed fixed-size blocks from a per-thread cache (platform/cache.c); all
 * blocks given to one cache must have the same size, at least 16 bytes. */
void *cf__cache_alloc(size_t size);
void cf__cache_free(void *p);

/* ---- time. A deadline is an absolute CLOCK_MONOTONIC time; forever is
 * tv_sec == -1. */
typedef struct timespec cf__deadline;

/* Converts a Python-style timeout into *d: 0, or CF_EINVAL for NaN. */
int cf__deadline_from(double timeout, cf__deadline *d);
bool cf__deadline_forever(const cf__deadline *d);
/* True once the deadline has passed (never for forever). */
bool cf__deadline_passed(const cf__deadline *d);
/* Seconds left, clamped at 0; negative for forever. */
double cf__deadline_left(const cf__deadline *d);
double cf__now(void); /* monotonic seconds */

/* ---- futex (private, on a 32-bit atomic word) */
/* Sleeps while *word == expected, until woken or the deadline (NULL: forever).
 * Returns 0, or CF_ETIMEDOUT. Spurious returns happen: callers loop. */
int cf__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   const cf__deadline *deadline);
void cf__futex_wake(_Atomic uint32_t *word, int n);

/* ---- a one-word mutex (0 unlocked, 1 locked, 2 locked with waiters) */
typedef struct {
    _Atomic uint32_t word;
} cf__mutex;
#define CF__MUTEX_INIT                                                         \
    {                                                                          \
        0                                                                      \
    }
void cf__mutex_lock_slow(cf__mutex *m);
static inline void cf__mutex_lock(cf__mutex *m)
{
    uint32_t expected = 0;
    /* acquire: pairs with the release in cf__mutex_unlock */
    if (!atomic_compare_exchange_strong_explicit(
            &m->word, &expected, 1, memory_order_acquire, memory_order_relaxed))
        cf__mutex_lock_slow(m);
}
static inline void cf__mutex_unlock(cf__mutex *m)
{
    /* release: publishes the critical section to the next owner */
    if (atomic_exchange_explicit(&m->word, 0, memory_order_release) == 2)
        cf__futex_wake(&m->word, 1);
}

/* ---- the parker: one per thread, a binary wake-up token.
 * cf__park consumes the token, sleeping until one is there or the deadline;
 * cf__unpark makes the token available and wakes the owner. */
typedef struct {
    _Atomic uint32_t state;
} cf__parker;
cf__parker *cf__parker_self(void);
/* Makes p this thread's parker (NULL: back to the thread-local one). Pool
 * workers use a parker inside their worker record, which outlives the
 * thread, so that a late wake-up never touches a dead thread's storage. */
void cf__parker_set_self(cf__parker *p);
/* Returns 0 when a token was consumed, CF_ETIMEDOUT otherwise. */
int cf__park(cf__parker *p, const cf__deadline *deadline);
void cf__unpark(cf__parker *p);

/* ---- the task record: what schedulers queue. Futures, cf_join frames and
 * group tasks embed one. exec runs it on worker w when drop is NULL;
 * otherwise the pool will never run it (shutdown with cancel_futures, a
 * broken pool) and exec completes it with drop's code and message, w NULL. */
typedef struct cf__worker cf__worker;
typedef struct cf__drop {
    int code; /* CF_ECANCELED: cancel; otherwise fail with it */
    const char *message;
} cf__drop;
typedef struct cf__task {
    _Atomic(struct cf__task *) next; /* injection queue link */
    void (*exec)(struct cf__task *t, cf__worker *w, const cf__drop *drop);
} cf__task;

/* ---- the task context: what cf_fail writes into. Executors install one
 * around every task they run (saving the outer one for nested help). */
typedef struct cf__task_ctx {
    int code;      /* 0, or the failure recorded by cf_fail */
    char *message; /* allocated, or NULL */
} cf__task_ctx;
/* The calling thread's task context (thread.c owns it). Inline: fork-join
 * swaps it four times per cf_join. */
extern _Thread_local cf__task_ctx *cf__tls_task;
static inline cf__task_ctx *cf__task_ctx_swap(cf__task_ctx *ctx)
{
    cf__task_ctx *old = cf__tls_task;
    cf__tls_task = ctx;
    return old; /* the old one */
}

/* ---- pool threads block the asynchronous signals (platform/signals.c):
 * block SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGALRM, SIGUSR1/2 and
 * SIGPIPE in the calling thread (saving its mask in *old) around the
 * creation of a pool thread, then restore. */
void cf__signals_block(sigset_t *old);
void cf__signals_restore(const sigset_t *old);

/* ---- thread names: pool workers and cf_threads set theirs here */
void cf__set_current_name(const char *name); /* borrowed, must outlive use */
/* Detaches the calling cf_thread: its record is freed when its fn returns. */
void cf__thread_detach_self(void);

/* ---- the identity locks record as their owner: the running task (its
 * context's address, unique among live tasks) or, outside any task, the
 * thread. A task run inline within its waiter is a different owner than the
 * waiter (docs/design.md, "The wait protocol"). */
uintptr_t cf__owner_id(void);

/* ---- where a task future was queued. A thread pool's scheduler holds one;
 * every future it queues points to it (cf_future's home), so that a wait
 * can tell a task of its own pool, and a cancel shows in the pool's
 * counters at once rather than when a worker reaches the task. */
typedef struct cf__task_home {
    _Atomic size_t cancelled; /* its futures cancelled while queued */
    /* Queue entries that no longer stand for a task to start (cancelled,
     * or run by a wait: a claim), and how many of them left the queues. */
    _Atomic size_t husks, husks_gone;
} cf__task_home;

/* ---- waits inside pool workers (docs/design.md, "The wait protocol"). A
 * thread that is a pool worker registers a helper; the blocking waits of
 * the future layer ask it to run what they depend on, or to block. */
typedef struct cf__helper {
    /* Runs f here if it is a pending task of this worker's pool and the
     * stack has room for it: true if it did (then look at f again). */
    bool (*run_future)(struct cf__helper *h, cf_future *f);
    /* Sleeps until unparked or the deadline, while the pool wakes or
     * starts another worker in its place. first: the first block of this
     * wait (counted in the stats). */
    void (*block)(struct cf__helper *h, const cf__deadline *deadline,
                  bool first);
} cf__helper;
cf__helper *cf__helper_current(void);
cf__helper *cf__helper_swap(cf__helper *h); /* returns the old one */

/* Blocks until done(ctx) is true: 0, or CF_ETIMEDOUT at the deadline. The
 * caller arranges for cf__unpark(cf__parker_self()) whenever done may have
 * become true. In a pool worker, an untimed wait first calls help(ctx, h)
 * (may be NULL) as long as it runs something the wait depends on; then it
 * blocks, and the pool compensates. */
int cf__block_until(bool (*done)(void *ctx), void *ctx,
                    bool (*help)(void *ctx, cf__helper *h),
                    const cf__deadline *deadline);

#endif /* CF_INTERNAL_H */
