/* SPDX-License-Identifier: MIT */
/*
 * wire.h - the process transport's side of the protocol: frames
 * (remote/codec.h) over one AF_UNIX stream socket per worker
 * (docs/process_pool.md, "Wire protocol"), the worker's state page, and
 * the entry points of the other proc/ files (worker.c, spawn.c).
 *
 * Parent to worker: INIT (once, first), TASK. Worker to parent: READY or
 * INIT_FAIL (once, first), then exactly one RESULT or FAIL per TASK, in the
 * order the tasks were sent. The parent checks every header it reads and
 * treats a worker whose frame fails a check as crashed.
 */
#ifndef CF_PROC_WIRE_H
#define CF_PROC_WIRE_H

#include "../remote/codec.h"

#include <sys/types.h>
#include <sys/uio.h>

/* The descriptor a worker process talks to its pool on, and the one a
 * spawned worker finds its state page on (then closes). */
#define CF__PP_FD 3
#define CF__PP_STATE_FD 4
#define CF__PP_ENV_FD "CFUTURES_WORKER_FD"
#define CF__PP_ENV_PARENT "CFUTURES_WORKER_PARENT"

/* INIT flags and payload: the initializer and its argument, each named as
 * a function is (module + offset), or the argument as a raw pointer value
 * (fork start method only). The two module names follow the fixed part. */
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
 * A worker's state page: shared memory the worker writes and the pool reads
 * (docs/process_pool.md, "Blame"). Once a task's frame is decoded and its
 * function resolved, as the last step before calling that function, the
 * worker stores its start time, then its id in `running`; when the
 * function returns, before the answer is written, its id in `done`. So after the worker died
 * the pool knows which task was running (blamed), which had finished (its
 * answer lost: blamed too, it ran) and which never started (run again
 * elsewhere); and task_timeout measures the run alone, not the transfer.
 * Written by one process, read by another: release stores, acquire loads.
 */
typedef struct cf__pp_state {
    _Atomic uint64_t running;   /* id of the task started last; 0: none */
    _Atomic uint64_t done;      /* id of the task whose run ended last */
    _Atomic int64_t started_ns; /* CLOCK_MONOTONIC when `running` started */
} cf__pp_state;

/* The worker process side (worker.c): serves the pool on CF__PP_FD until
 * the pool closes it, then exits the process. parent is the pool's process
 * id; st the state page (NULL: the worker exits at once, unable to tell
 * the pool what it runs). */
_Noreturn void cf__pp_worker_main(pid_t parent, cf__pp_state *st);

/* A started worker process (spawn.c): its pid, the parent's end of the
 * socket (non-blocking, close-on-exec), a pidfd that polls readable when it
 * exits (-1 where the kernel has none) and its state page (the parent's
 * mapping; cf__pp_state_unmap releases it). */
typedef struct cf__pp_proc {
    pid_t pid;
    int fd;
    int pidfd;
    cf__pp_state *state;
} cf__pp_proc;
/* Maps a spawned worker's state page from CF__PP_STATE_FD and closes the
 * descriptor: the page, or NULL. */
cf__pp_state *cf__pp_state_attach(void);
void cf__pp_state_unmap(cf__pp_state *st);
/* Starts a fresh image of the running program (/proc/self/exe) with envp,
 * which carries CF__PP_ENV_FD and CF__PP_ENV_PARENT: 0 or -errno. */
int cf__pp_spawn(cf__pp_proc *out, char *const *envp);
/* Forks the calling process; the child serves the pool at once: 0 or
 * -errno. */
int cf__pp_fork(cf__pp_proc *out);

#endif /* CF_PROC_WIRE_H */
