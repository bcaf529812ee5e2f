/* SPDX-License-Identifier: MIT */
/*
 * run.h - `cfutures run`, run a command for many inputs in parallel: the
 * configuration from the command line, one job per input, and the runner
 * that executes the jobs on a cfutures thread pool.
 *
 * Files: run.c parses the command line and reads the inputs; job.c builds
 * each job's command and runs it (with retries) inside a pool task;
 * runner.c submits the jobs, collects them as they finish, prints their
 * output whole, writes the job log, draws the progress bar and handles
 * halting and Ctrl-C. proc.c runs one process.
 */
#ifndef CF_TOOLS_RUN_H
#define CF_TOOLS_RUN_H

#include <cfutures.h>

#include "outbuf.h"
#include "proc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Seconds between SIGTERM and SIGKILL when a job is stopped. */
#define RUN_GRACE_S 1.0

typedef struct run_config {
    long jobs;          /* -j: jobs at once (pool workers) */
    double timeout;     /* --timeout seconds per attempt; 0: none */
    long retries;       /* --retries: extra attempts for a failing job */
    bool keep_order;    /* --keep-order */
    bool halt_on_error; /* --halt-on-error */
    bool bar;           /* --bar: draw the bar even if not a terminal */
    bool shell;         /* --shell: run the command with sh -c */
    const char *joblog; /* --joblog FILE, or NULL */
    char **words;       /* the command template (borrowed from argv) */
    size_t n_words;
    char *script; /* --shell: the words joined, {} as "$1" (owned) */
} run_config;

struct job;

/* What the runner and the pool tasks share. */
typedef struct run_shared {
    const run_config *cfg;
    struct job *jobs; /* one per input */
    size_t n;
    atomic_size_t next;   /* the next job a task takes */
    cf_queue *done;       /* finished jobs, put by their tasks */
    atomic_bool stopping; /* no job may start (halt, Ctrl-C) */
    int stop_fd;          /* readable after Ctrl-C: stop running jobs */
} run_shared;

typedef struct job {
    size_t seq;        /* 1-based, in input order */
    const char *input; /* borrowed */
    run_shared *shared;
    /* Written by the task, read by the runner after the job comes back
     * through the queue (which orders the two). */
    proc_result res;   /* of the last attempt */
    double start_wall; /* when the last attempt started (epoch seconds) */
    int attempts;
    bool skipped; /* never started: the run was stopping */
    bool failed;
    outbuf out, err; /* the last attempt's output */
    /* The runner's own. */
    bool back; /* came back, or will never start */
} job;

/* Builds the shell script for --shell from the words: 0 or CF_ENOMEM. */
int run_build_script(run_config *cfg);

/* The pool task (arg: the run_shared): takes the next job in input order,
 * runs it unless the run is stopping, and puts it on shared->done. The
 * runner submits one task per job; tasks take jobs in the order they
 * start, so jobs start in input order whatever order the pool runs its
 * tasks in. */
void *job_task(void *arg);

/* The job's command as one shell-quoted line, for the job log (the caller
 * frees it); NULL when out of memory. */
char *job_command_text(const run_config *cfg, const char *input);

/* Runs n jobs, one per input, as the configuration says; returns the exit
 * status of `cfutures run`. */
int run_jobs(const run_config *cfg, char *const *inputs, size_t n);

#endif /* CF_TOOLS_RUN_H */
