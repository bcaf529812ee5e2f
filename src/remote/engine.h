/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the remote engine: what process pools and MPI pools share.
 * It owns the executor operations, the pending queue of task frames,
 * shutdown, breaking, stats, the orphaned free, the manager thread, and
 * the fault accounting (docs/design.md, "The remote engine"): which tasks
 * a dead worker ran, and when failed starts give up. A transport owns its
 * workers and implements one round of the manager (`round`: serve what
 * happened, start and feed workers, wait) and a wake-up (`wake`).
 *
 * Locking: the pending queue and the flags are under `mu`; the rest of
 * the engine's state is the manager's. Futures are completed without `mu`
 * held, so a done callback may submit to the pool.
 */
#ifndef CF_REMOTE_ENGINE_H
#define CF_REMOTE_ENGINE_H

#include "../executor.h"
#include "codec.h"

#include <pthread.h>
#include <string.h>

/* A queued or in-flight task: its future and its TASK frame (codec.h). */
typedef struct cf__rtask {
    struct cf__rtask *next;
    cf_future *f;          /* the engine's reference */
    double sent_at;        /* when its frame was written in full; 0 before */
    bool started;          /* moved to RUNNING (dispatched at least once) */
    size_t len;            /* frame bytes */
    unsigned char frame[]; /* header, u64 fn offset, module, input */
} cf__rtask;

typedef struct cf__remote cf__remote;

typedef struct cf__remote_ops {
    /* One round of the manager thread: serve what happened, start and
     * feed workers, wait for the next event. true once the pool has shut
     * down and every worker is gone: the manager exits. */
    bool (*round)(cf__remote *r);
    /* Makes the manager's wait return (any thread). */
    void (*wake)(cf__remote *r);
    /* Frees the transport's state and r itself (the manager has ended). */
    void (*destroy)(cf__remote *r);
} cf__remote_ops;

/* Failed starts since the last good one (manager only). */
typedef struct cf__starts {
    double since;    /* the first of them */
    double retry_at; /* when to try again */
    double backoff;  /* the last delay */
    unsigned tries;
    bool fresh;      /* one failed since cf__remote_give_up last ran */
    char error[256]; /* why the last one failed */
} cf__starts;

struct cf__remote {
    cf_executor base;
    const cf__remote_ops *ops;
    pthread_t manager;
    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t exited_cv;
    cf__rtask *pend_head, *pend_tail;
    size_t n_pending;
    bool shutdown, broken, exited, orphaned;
    bool listening; /* the manager wants a wake-up on submit */
    /* The manager's. */
    char broken_msg[384];
    cf__starts starts;
    /* For cf_executor_stats: written by the manager (cancelled also by
     * shutdown), read by anyone; relaxed, they are a snapshot. */
    _Atomic size_t st_workers, st_idle, st_running, st_completed, st_failed,
        st_cancelled, st_stalled;
    _Atomic uint64_t next_id;
};

/* Sets up r (zeroed by the caller) with the transport's ops. */
void cf__remote_init(cf__remote *r, const cf__remote_ops *ops);
/* Starts the manager thread (every signal blocked) named `name`: 0 or a
 * negative errno. */
int cf__remote_start(cf__remote *r, const char *name);
/* Frees what cf__remote_init made (not r). */
void cf__remote_fini(cf__remote *r);

static inline uint64_t cf__rtask_id(const cf__rtask *t)
{
    uint64_t id;
    memcpy(&id, t->frame + offsetof(cf__frame, id), sizeof id);
    return id;
}

/* ---- dispatch windows ------------------------------------------------- */

/* How many tasks make about target_s of work at cost seconds each,
 * between lo and hi (hi when the cost is about 0): how much a transport
 * keeps in flight per worker, so tiny tasks travel many at a time and long
 * ones one at a time. */
static inline size_t cf__remote_window(double cost, double target_s, size_t lo,
                                       size_t hi)
{
    double k = target_s / (cost > 1e-9 ? cost : 1e-9);
    return k >= (double)hi ? hi : k < (double)lo ? lo : (size_t)k;
}
/* Folds sample into the running average *avg (unknown while <= 0), with
 * weight for the new sample. */
static inline void cf__remote_ewma(double *avg, double sample, double weight)
{
    *avg = *avg > 0 ? (1 - weight) * *avg + weight * sample : sample;
}

/* ---- the queue (manager) --------------------------------------------- */

/* Takes up to max tasks off the front of the pending queue. */
cf__rtask *cf__remote_take(cf__remote *r, size_t max);
/* Puts list (in order) back at the front: it runs next. In a broken pool
 * it fails instead. */
void cf__remote_requeue(cf__remote *r, cf__rtask *list);
/* Moves t's future to RUNNING: false when it was cancelled (t is then
 * counted and freed). */
bool cf__remote_set_running(cf__remote *r, cf__rtask *t);
/* Completes t with a result (b, owned by the future) or ctx's failure,
 * counts it, frees t. */
void cf__remote_finish(cf__remote *r, cf__rtask *t, cf__bytes *b,
                       cf__task_ctx *ctx);
/* Fails every task of list with code and a copy of msg (or counts it
 * cancelled if it never started and was cancelled), freeing them. */
void cf__remote_fail_list(cf__remote *r, cf__rtask *list, int code,
                          const char *msg);
/* Breaks the pool: pending work and every later submit fail with
 * CF_EBROKEN and msg. */
void cf__remote_break(cf__remote *r, const char *msg);
/* Whether the pool is shut down with nothing pending. */
bool cf__remote_drained(cf__remote *r);

/* ---- fault accounting (manager) --------------------------------------- */

/* A dead worker held `held` (tasks written to it in full, in order); the
 * one with id `ran` is the task it started last. That one and those before
 * it ran and fail with code and msg(); those after it never started and go
 * back to the queue. msg is built only when something fails (arg is
 * passed to it; the result is freed here). */
void cf__remote_blame(cf__remote *r, cf__rtask *held, uint64_t ran,
                      char *(*msg)(void *arg, int *code), void *arg);
/* A worker failed to start (why: in words): backoff, remembered reason. */
void cf__remote_start_failed(cf__remote *r, const char *why, double now);
/* A worker started: the backoff ends. */
void cf__remote_start_ok(cf__remote *r);
/* After a failed start with no worker alive (live == 0), when none has
 * started for CF__START_GIVE_UP_S over CF__START_GIVE_UP_TRIES tries, the
 * pending tasks fail with the reason. The pool stays usable. */
void cf__remote_give_up(cf__remote *r, size_t live, double now);
#define CF__START_GIVE_UP_S 2.0
#define CF__START_GIVE_UP_TRIES 3

/* The operations of a remote pool: submit (CF_EINVAL: pointer tasks
 * cannot cross), submit_bytes, shutdown, free, stats. */
extern const cf__executor_ops cf__remote_executor_ops;

#endif /* CF_REMOTE_ENGINE_H */
