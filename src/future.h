/* SPDX-License-Identifier: MIT */
/*
 * future.h - the future record and what executors and waits use of it.
 *
 * A future is also the task record of an executor: fn, arg and the queue
 * link live in it, so submitting with a future costs one allocation. The
 * state machine and its invariants are argued in docs/design.md, "Futures".
 */
#ifndef CF_FUTURE_H
#define CF_FUTURE_H

#include "internal.h"

enum {
    CF__PENDING = 0,
    CF__RUNNING = 1,
    CF__FINISHED = 2,
    CF__CANCELLED = 3,
    CF__STATE_MASK = 3,
    CF__WAITBIT = 4,  /* a thread sleeps on the state word (futex) */
    CF__BYTESBIT = 8, /* a bytes task: set once, before the future is
                         shared; every state change keeps it */
};

typedef struct cf__callback {
    void (*fn)(cf_future *f, void *ctx);
    void *ctx;
    struct cf__callback *next;
} cf__callback;

typedef struct cf__inline_callback {
    void (*fn)(cf_future *f, void *ctx);
    void *ctx;
} cf__inline_callback;

/* A bytes result (or a bytes task's input): length, then the bytes. */
typedef struct cf__bytes {
    size_t len;
    unsigned char data[];
} cf__bytes;

/* A registration on a future: notify runs once, under the future's mutex,
 * when the future becomes done. Used by cf_wait, as_completed and helping
 * waits. The registrant unlinks it (cf__future_unwatch) before it dies. */
typedef struct cf__watch {
    struct cf__watch *prev, *next;
    void (*notify)(struct cf__watch *w, cf_future *f);
    bool linked;
} cf__watch;

/* 88 bytes (B6 counts them: docs/benchmarks.md). What is only written at
 * completion shares a word: result, bytes and message (code says which);
 * callbacks after the first hang off first_cb (cf__future_add_done_callback
 * in future.c); the bytes flag is a bit of the state word. */
struct cf_future {
    _Atomic uint32_t state; /* CF__* state | CF__WAITBIT | CF__BYTESBIT */
    _Atomic uint32_t refs;
    cf__mutex mu; /* guards callbacks, watches, and completion */
    int code;     /* failure code; written before done (release) */
    union {
        void *result;     /* code 0: a plain task's result */
        cf__bytes *bytes; /* code 0: the owned result of a bytes task, which
                             it may hold before it is done */
        char *message;    /* code != 0: owned; NULL means cf_strerror(code) */
    };
    /* The first callback inline: no allocation. With more than one, fn is
     * a runner of the list at ctx (future.c). */
    cf__inline_callback first_cb;
    cf__watch *watches;
    /* the task part, used by executors */
    cf__task task;
    cf__task_home *home; /* the pool that queued it; NULL for others */
    union {
        cf_fn fn;
        const void *input; /* a bytes task on an engine with its own
                              submit_bytes: the caller's input address, for
                              cf_future_arg (bytes.c) */
    };
    void *arg; /* for bytes tasks on threads: the owned input */
};

/* A fresh pending future with refs references. NULL on ENOMEM. */
cf_future *cf__future_alloc(uint32_t refs);

/* A bytes task: its result is bytes, and arg or input its input. */
static inline bool cf__future_is_bytes(const cf_future *f)
{
    return (atomic_load_explicit(&((cf_future *)f)->state,
                                 memory_order_relaxed) &
            CF__BYTESBIT) != 0;
}
/* Marks a fresh future, not yet shared, as a bytes task. */
static inline void cf__future_mark_bytes(cf_future *f)
{
    atomic_store_explicit(&f->state, CF__BYTESBIT, memory_order_relaxed);
}

/* The message of a done future that failed, or NULL. */
static inline const char *cf__future_message(const cf_future *f)
{
    return f->code ? f->message : NULL;
}

static inline uint32_t cf__future_state(const cf_future *f)
{
    /* acquire: a done state makes result, code and message visible */
    return atomic_load_explicit(&((cf_future *)f)->state,
                                memory_order_acquire) &
           CF__STATE_MASK;
}

static inline bool cf__state_done(uint32_t s)
{
    return (s & CF__STATE_MASK) >= CF__FINISHED;
}

/* True for a future that finished with a failure (cancelled is not one). */
bool cf__future_failed(const cf_future *f);

/* Calls the task of f (fn, arg), which the caller moved to RUNNING
 * (cf_future_set_running_or_notify_cancel), with ctx installed for cf_fail.
 * The result is not published yet: the caller publishes it with
 * cf__future_finish after its own bookkeeping. */
void *cf__future_call(cf_future *f, cf__task_ctx *ctx);
void cf__future_finish(cf_future *f, void *result, cf__task_ctx *ctx);

/* Completes f as failed with code and a copy of message (best effort):
 * for executors failing work they cannot run. No-op on a done future. */
void cf__future_fail(cf_future *f, int code, const char *message);

/* Completes a bytes future with a copy of data[0..len): 0, CF_ENOMEM (then
 * the future fails with CF_ENOMEM), CF_EINVAL if it is done. */
int cf__future_set_bytes(cf_future *f, const void *data, size_t len);

/* Completes a task future the pool will never run (cancel for
 * CF_ECANCELED, else fail with the drop's code) and drops the engine's
 * reference. */
void cf__future_drop(cf_future *f, const cf__drop *drop);

/* Watches: link w to f; returns false (w not linked) if f is done already. */
bool cf__future_watch(cf_future *f, cf__watch *w);
void cf__future_unwatch(cf_future *f, cf__watch *w);

_Static_assert(sizeof(cf_future) <= 88 || sizeof(void *) != 8,
               "the future record is 88 bytes on 64-bit targets (B6)");

#endif /* CF_FUTURE_H */
