/* SPDX-License-Identifier: MIT */
/*
 * wire.h - the process transport's protocol: frames (remote/codec.h) over
 * one AF_UNIX stream socket per worker (docs/process_pool.md, "Wire
 * protocol"), the worker's state page, and what worker.c and spawn.c give
 * pool.c. Pool to worker: INIT (first), then TASKs. Worker to pool: READY
 * or INIT_FAIL (first), then one RESULT or FAIL per TASK, in order.
 */
#ifndef CF_PROC_WIRE_H
#define CF_PROC_WIRE_H

#include "../remote/codec.h"

#include <sys/types.h>
#include <sys/uio.h>

/* A worker's socket to its pool, and where a spawned one finds its state
 * page (then closes it). */
#define CF__PP_FD 3
#define CF__PP_STATE_FD 4
#define CF__PP_ENV_FD "CFUTURES_WORKER_FD"
#define CF__PP_ENV_PARENT "CFUTURES_WORKER_PARENT"

/* INIT's flags and payload: the initializer and its argument, named as a
 * function is (module + offset; the two names follow), or the argument as
 * a pointer value (fork only). */
enum {
    CF__PP_INIT_FN = 1,      /* there is an initializer */
    CF__PP_INIT_ARG_ID = 2,  /* initarg is (arg_module, arg) */
    CF__PP_INIT_ARG_RAW = 4, /* initarg is the pointer value arg */
};
typedef struct cf__pp_init {
    uint64_t fn_offset;
    uint64_t arg; /* an offset, or a pointer value */
    uint32_t fn_module_len;
    uint32_t arg_module_len;
} cf__pp_init;

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
 * and the state page (cf__pp_state_unmap releases it). */
typedef struct cf__pp_proc {
    pid_t pid;
    int fd;
    int pidfd;
    cf__pp_state *state;
} cf__pp_proc;
/* Maps a spawned worker's state page from CF__PP_STATE_FD: it, or NULL. */
cf__pp_state *cf__pp_state_attach(void);
void cf__pp_state_unmap(cf__pp_state *st);
/* Starts /proc/self/exe with envp (CF__PP_ENV_FD and CF__PP_ENV_PARENT
 * set), or (envp NULL) forks a worker that serves at once: 0 or -errno. */
int cf__pp_start(cf__pp_proc *out, char *const *envp);

#endif /* CF_PROC_WIRE_H */
