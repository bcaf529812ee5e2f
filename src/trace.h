/* SPDX-License-Identifier: MIT */
/*
 * trace.h - the trace's recording side, for the scheduler and the engines.
 * A hook is one relaxed load and a branch while no trace is on; with one
 * on, it appends an event to the calling thread's own buffer (no lock, no
 * system call: a vDSO clock read). trace.c owns the buffers and writes the
 * Chrome Trace Event file; docs/trace.md says what each event means.
 */
#ifndef CF_TRACE_H
#define CF_TRACE_H

#include "internal.h"

typedef enum cf__trace_kind {
    CF__TR_TASK_BEGIN, /* p: what runs (exec or fn); a: 1 when inline */
    CF__TR_TASK_END,
    CF__TR_TASK_NAME,  /* p: the user function of the task now open */
    CF__TR_WAIT_BEGIN, /* a wait inside a task blocks */
    CF__TR_WAIT_END,
    CF__TR_SLEEP_BEGIN,  /* an idle worker sleeps */
    CF__TR_SLEEP_END,    /* a: 1 when it slept idle_timeout through */
    CF__TR_STEAL,        /* a: the victim worker's index */
    CF__TR_WORKER_START, /* a: the worker's index */
    CF__TR_WORKER_EXIT,
    CF__TR_DISPATCH,   /* process pools: a task sent; a: the worker pid */
    CF__TR_PROC_START, /* a worker process started; a: its pid */
    CF__TR_PROC_LOST,  /* a worker process is gone; a: its pid; p: NULL
                            when let go (retired, shut down), else it died */
    CF__TR_KINDS
} cf__trace_kind;

/* Nonzero while a trace records (the session's number). */
extern _Atomic uint32_t cf__trace_gen;

void cf__trace_record(cf__trace_kind kind, const void *p, uint64_t a);

static inline void cf__trace(cf__trace_kind kind, const void *p, uint64_t a)
{
    if (__builtin_expect(
            atomic_load_explicit(&cf__trace_gen, memory_order_relaxed) != 0, 0))
        cf__trace_record(kind, p, a);
}

#endif /* CF_TRACE_H */
