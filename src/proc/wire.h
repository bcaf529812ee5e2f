/* SPDX-License-Identifier: MIT */
/*
 * wire.h - the process transport: frames (remote/codec.h) over one
 * AF_UNIX stream socket per worker (docs/process_pool.md, "Wire
 * protocol"), the worker's state page, and the link over one worker
 * process (link.c) that both its owners drive: a process pool's manager
 * (pool.c) and an isolated MPI rank (mpi/rank.c). Pool to worker: INIT
 * (first), then TASKs. Worker to pool: READY or INIT_FAIL (first), then
 * one RESULT or FAIL per TASK, in order.
 */
#ifndef CF_PROC_WIRE_H
#define CF_PROC_WIRE_H

#include "../remote/engine.h"

#include <sys/types.h>

/* A worker's socket to its pool, and where a spawned one finds its state
 * page (then closes it). */
#define CF__PP_FD 3
#define CF__PP_STATE_FD 4
#define CF__PP_ENV_FD "CFUTURES_WORKER_FD"
#define CF__PP_ENV_PARENT "CFUTURES_WORKER_PARENT"

/* INIT is TASK-shaped (codec.h), naming the initializer; its input names
 * initarg: empty (NULL), or one of these bytes, a u64 and a module name:
 * initarg as (module, offset), or as the pointer value (fork only). */
enum { CF__PP_ARG_NAMED = 1, CF__PP_ARG_RAW = 2 };

/* A finished task's answer without progress, or a task next in line not
 * started, for max(this, task_timeout) seconds: the worker is killed. */
#define CF__PP_STALL_MIN_S 10.0

/*
 * A worker's state page, shared memory it writes and the pool reads
 * (docs/process_pool.md, "Blame"): right before a task's function runs,
 * its start time, then its id in `running`; when it returns, before the
 * answer is written, its id in `done`. So the pool knows which task a dead
 * worker ran, and task_timeout measures the run alone, not the transfer.
 * Release stores, acquire loads.
 */
typedef struct cf__pp_state {
    _Atomic uint64_t running;   /* id of the task started last; 0: none */
    _Atomic uint64_t done;      /* id of the task whose run ended last */
    _Atomic int64_t started_ns; /* CLOCK_MONOTONIC when `running` started */
} cf__pp_state;

/* The worker (worker.c): serves the pool on CF__PP_FD until the pool
 * closes it, then exits. st NULL: it exits at once (a failed start). */
_Noreturn void cf__pp_worker_main(pid_t parent, cf__pp_state *st);

/* A started worker (spawn.c): its pid, the pool's end of the socket
 * (non-blocking, close-on-exec), a pidfd (-1 where the kernel has none)
 * and the state page (munmap releases it). */
typedef struct cf__pp_proc {
    pid_t pid;
    int fd, pidfd;
    cf__pp_state *state;
} cf__pp_proc;
/* Starts /proc/self/exe with envp (CF__PP_ENV_FD and CF__PP_ENV_PARENT
 * set), or (envp NULL) forks a worker that serves at once: 0 or -errno. */
int cf__pp_start(cf__pp_proc *out, char *const *envp);

/* ---- the link over one worker process (link.c) ----------------------- */

/* What every worker of one owner gets; set up by cf__pp_spec_init from
 * the options, read-only after. */
typedef struct cf__pp_spec {
    char **envp;         /* spawn: the workers' environment; NULL: fork */
    unsigned char *init; /* the INIT frame; NULL: an empty one */
    size_t init_len;
    double timeout;     /* task_timeout; 0: none */
    unsigned max_tasks; /* max_tasks_per_child; 0: none */
} cf__pp_spec;
/* 0, CF_EINVAL (an initializer or initarg with no name in another
 * process), CF_ENOMEM; fini frees what init made. */
int cf__pp_spec_init(cf__pp_spec *s, const cf_options *o);
void cf__pp_spec_fini(cf__pp_spec *s);

/* Failed starts since the last good one (docs/process_pool.md). */
typedef struct cf__starts {
    double since, retry_at, backoff;
    unsigned tries;
    bool fresh;      /* one failed since cf__starts_give_up last ran */
    char error[256]; /* "cannot start a worker process: " and why */
} cf__starts;
/* A start failed (why): back off (a READY resets it). */
void cf__starts_failed(cf__starts *s, const char *why, double now);
/* With no worker process left (live == 0: none alive, none dying) and
 * none started for 2 s over 3 tries: true, and the caller fails its
 * pending tasks with s->error. */
bool cf__starts_give_up(cf__starts *s, size_t live, double now);

typedef enum cf__pp_why {
    CF__PP_CRASH,   /* EOF or a socket error we did not cause */
    CF__PP_CORRUPT, /* a frame failed a check */
    CF__PP_TIMEOUT, /* its task ran past task_timeout */
    CF__PP_STALL,   /* a finished task's answer made no progress */
    CF__PP_IDLE,    /* it did not start the task next in line */
    CF__PP_NOMEM,   /* no memory to hold its answer */
    CF__PP_STOP,    /* retired or shut down: it exits by itself */
    CF__PP_KILL,    /* the owner broke: killed */
} cf__pp_why;

typedef struct cf__pp_link cf__pp_link;

/* How a link hands tasks back to its owner (o). Each callback takes over
 * the tasks (and b, ctx->message) it is given. */
typedef struct cf__pp_owner {
    /* t was answered: b (a RESULT), or ctx's failure. */
    void (*answered)(void *o, cf__rtask *t, cf__bytes *b, cf__task_ctx *ctx);
    /* Tasks that never started: they run next. */
    void (*requeue)(void *o, cf__rtask *list);
    /* Tasks blamed for a death: they fail with code and msg. */
    void (*fail)(void *o, cf__rtask *list, int code, const char *msg);
    /* An initializer failed: the owner breaks (and loses this link). */
    void (*broken)(void *o, const char *msg);
} cf__pp_owner;

/* What an owner's workers share. */
typedef struct cf__pp_team {
    cf__pp_spec spec;
    cf__starts starts; /* a worker dead before READY is a failed start */
    double ewma;       /* seconds per task, 0 until measured */
    const cf__pp_owner *owner;
    void *o;
} cf__pp_team;

struct cf__pp_link {
    cf__pp_link *next; /* the owner's list */
    cf__pp_proc proc;  /* fd -1 once lost */
    bool ready;        /* its READY arrived */
    unsigned assigned; /* tasks ever given (max_tasks_per_child) */
    /* In flight, oldest first; [head, unsent) were written in full. */
    cf__rtask *head, *tail, *unsent;
    size_t unsent_off; /* bytes of unsent's frame written */
    size_t n_inflight;
    uint64_t answered; /* id of the task answered last (0: none) */
    double head_since; /* when head became the oldest (or READY came) */
    /* Receiving: rx[rx_beg, rx_end) unparsed; a frame whose header was
     * read (hdr) is gathered into body, body_have bytes so far, in a
     * buffer of body_cap bytes that grows as they come. */
    unsigned char *rx;
    size_t rx_beg, rx_end;
    cf__frame hdr;
    cf__bytes *body;
    size_t body_have, body_cap;
    double progress_at; /* when bytes last arrived */
    /* Lost. */
    cf__pp_why why;
    char detail[96];
    cf__rtask *held;  /* written to it in full; judged once it is reaped */
    uint64_t culprit; /* killed for a fault of this task (id; 0: none) */
    bool killed;
    double kill_at;
    cf__pp_team *team;
};

/* Starts a worker and writes its INIT frame: the link, or NULL with *rc
 * why it could not start. */
cf__pp_link *cf__pp_link_start(cf__pp_team *team, double now, int *rc);
/* Tasks w may take now: about 2 ms of work in flight by the team's ewma
 * (only one while unmeasured), within max_tasks_per_child. */
size_t cf__pp_link_room(const cf__pp_link *w);
/* Gives t to w (written by the next flush). */
void cf__pp_link_push(cf__pp_link *w, cf__rtask *t, double now);
/* Empties w's in-flight list: its tasks, oldest first. */
cf__rtask *cf__pp_link_take(cf__pp_link *w);
/* Each is false once w is lost: flush writes what is queued until the
 * socket is full; read handles what w sent (drain: all of it); check
 * kills w when its task passed its time limit, and loses w when it has no
 * pidfd and exited; gone (its pidfd turned readable) reads what it left
 * and loses it. */
bool cf__pp_link_flush(cf__pp_link *w, double now);
bool cf__pp_link_read(cf__pp_link *w, double now, bool drain);
bool cf__pp_link_check(cf__pp_link *w, double now);
void cf__pp_link_gone(cf__pp_link *w, double now);
/* When w must be looked at again (INFINITY: on its own news only). */
double cf__pp_link_deadline(const cf__pp_link *w, double now);
/* Takes w out of service: closes its socket, kills it unless it exits by
 * itself (CRASH, STOP), requeues what it never got whole, holds the rest
 * until it is reaped. */
void cf__pp_link_lose(cf__pp_link *w, cf__pp_why why, const char *detail,
                      double now);
/* Reaps a lost w once it exited (killing it past its grace): true when
 * it was reaped, its tasks judged (docs/design.md, "Blame") and w freed. */
bool cf__pp_link_reap(cf__pp_link *w, double now);
/* poll(2)'s timeout in ms until next (-1: none). */
int cf__pp_poll_ms(double next, double now);

#endif /* CF_PROC_WIRE_H */
