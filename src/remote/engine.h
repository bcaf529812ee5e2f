/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the remote engine under process and MPI pools: the executor
 * operations, the pending queue of TASK frames, shutdown, breaking, stats
 * and the manager thread (docs/design.md, "The remote engine"). A
 * transport owns its workers and implements one round of the manager
 * (serve what happened, feed workers, wait) and a wake-up.
 *
 * Locking: the queue and the flags are under `mu`; the rest is the
 * manager's. Futures complete without `mu` held, so a done callback may
 * submit to the pool.
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
    unsigned char early;   /* worker deaths with it next, unstarted (proc) */
    size_t len;            /* frame bytes */
    unsigned char frame[]; /* header, u64 fn offset, module, input */
} cf__rtask;

typedef struct cf__remote cf__remote;

typedef struct cf__remote_ops {
    /* One round of the manager: true once the pool has shut down and every
     * worker is gone (the manager exits). */
    bool (*round)(cf__remote *r);
    void (*wake)(cf__remote *r);    /* makes the round's wait return */
    void (*destroy)(cf__remote *r); /* frees the transport and r */
} cf__remote_ops;

struct cf__remote {
    cf_executor base;
    const cf__remote_ops *ops;
    pthread_t manager;
    pthread_mutex_t mu; /* guards what follows, to `listening` */
    pthread_cond_t exited_cv;
    cf__rtask *pend_head, *pend_tail;
    size_t n_pending;
    bool shutdown, broken, exited, orphaned;
    bool listening; /* the manager wants a wake-up on submit */
    char broken_msg[384];
    /* cf_executor_stats' snapshot, written by the manager: relaxed. */
    _Atomic size_t st_workers, st_idle, st_running, st_completed, st_failed,
        st_cancelled, st_stalled;
    _Atomic uint64_t next_id;
};

/* Sets up r (zeroed) for the transport's ops; cf__remote_start starts the
 * manager (every signal blocked): 0 or -errno; fini frees what init made. */
void cf__remote_init(cf__remote *r, const cf__remote_ops *ops);
int cf__remote_start(cf__remote *r, const char *name);
void cf__remote_fini(cf__remote *r);

static inline uint64_t cf__rtask_id(const cf__rtask *t)
{
    uint64_t id;
    memcpy(&id, t->frame + offsetof(cf__frame, id), sizeof id);
    return id;
}

/* How many tasks make about target_s of work at cost seconds each, in
 * [lo, hi]: how much a transport keeps in flight per worker. */
static inline size_t cf__remote_window(double cost, double target_s, size_t lo,
                                       size_t hi)
{
    double k = target_s / (cost > 1e-9 ? cost : 1e-9);
    return k >= (double)hi ? hi : k < (double)lo ? lo : (size_t)k;
}
/* Folds sample into the running average *avg (unknown while <= 0). */
static inline void cf__remote_ewma(double *avg, double sample, double weight)
{
    *avg = *avg > 0 ? (1 - weight) * *avg + weight * sample : sample;
}

/* ---- the queue and completions (manager) ------------------------------ */

/* Takes up to max tasks off the front of the queue. */
cf__rtask *cf__remote_take(cf__remote *r, size_t max);
/* Puts list back at the front (it runs next); in a broken pool it fails. */
void cf__remote_requeue(cf__remote *r, cf__rtask *list);
/* Moves t's future to RUNNING: false when it was cancelled (t is freed). */
bool cf__remote_set_running(cf__remote *r, cf__rtask *t);
/* Completes t with b (owned by the future) or ctx's failure; frees t. */
void cf__remote_finish(cf__remote *r, cf__rtask *t, cf__bytes *b,
                       cf__task_ctx *ctx);
/* Fails every task of list with code and a copy of msg. */
void cf__remote_fail_list(cf__remote *r, cf__rtask *list, int code,
                          const char *msg);
/* Breaks the pool: pending work and every later submit fail (CF_EBROKEN). */
void cf__remote_break(cf__remote *r, const char *msg);
/* Whether the pool is shut down with nothing pending. */
bool cf__remote_drained(cf__remote *r);

/* The operations of a remote pool (submit: CF_EINVAL, pointer tasks cannot
 * cross), submit_bytes, shutdown, free, stats, wait. */
extern const cf__executor_ops cf__remote_executor_ops;

#endif /* CF_REMOTE_ENGINE_H */
