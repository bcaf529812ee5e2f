/* SPDX-License-Identifier: MIT */
/*
 * run.h - `cfutures run`, GNU parallel's everyday features on a cfutures
 * thread pool: the configuration from the command line, the jobs made
 * from the inputs, and the runner that executes them.
 *
 * Files: run.c parses the command line (GNU parallel's and xargs'
 * options; anything else is refused with exit status 2); input.c reads
 * the input sources and makes the jobs; tmpl.c is the command template
 * and its replacement strings; job.c builds each job's command and runs it
 * (with retries) inside a pool task; runner.c submits the jobs, collects
 * them as they finish, prints their output, writes the job log and the
 * --results files, and handles --halt and Ctrl-C. proc.c runs one
 * process.
 */
#ifndef CF_TOOLS_RUN_H
#define CF_TOOLS_RUN_H

#include <cfutures.h>

#include "outbuf.h"
#include "proc.h"
#include "tmpl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Seconds between SIGTERM and SIGKILL when a job is stopped. */
#define RUN_GRACE_S 1.0
/* How long a job that cannot start for want of descriptors or processes
 * keeps trying while no other job runs. */
#define RUN_RESOURCE_WAIT_S 1.0
/* Descriptors a running job may hold at most (--pipe: 2 more), and those
 * the run itself needs beside the ones open when it starts. */
#define RUN_FDS_PER_JOB 6
#define RUN_FDS_RESERVED 8

/* Exit statuses besides 0 and the count of failed jobs (1 to 101). */
#define RUN_EXIT_MAX_FAILED 101
#define RUN_EXIT_OUTPUT 255 /* output lost, or the run could not start */

typedef enum halt_when { HALT_NEVER, HALT_SOON, HALT_NOW } halt_when;
typedef enum halt_on { HALT_FAIL, HALT_SUCCESS, HALT_DONE } halt_on;

typedef struct run_config {
    long jobs;       /* -j: jobs at once (pool workers) */
    double timeout;  /* --timeout seconds per attempt; 0: none */
    long tries;      /* --retries N: at most N attempts (at least 1) */
    double delay;    /* --delay: seconds between job starts */
    bool keep_order; /* -k */
    bool bar;        /* --bar, --progress, --eta */
    bool dry_run;    /* --dry-run */
    bool tag;        /* --tag or --tagstring */
    bool line_buffer, ungroup, shuf;
    bool verbose, trace; /* -v: command on stdout; -t: on stderr */
    bool resume, resume_failed;
    bool skip_empty; /* -r */
    bool context;    /* -X, -N: words around {} repeated per input */
    bool multi;      /* -m or -X: as many arguments as fit */
    bool quote;      /* -q */
    bool pipe;       /* --pipe */
    halt_when halt;
    halt_on halt_on;
    double halt_value; /* a count, or a fraction with halt_pct */
    bool halt_pct;
    const char *joblog;  /* --joblog FILE, or NULL */
    const char *results; /* --results DIR, or NULL */
    long max_args;       /* -n/-N: arguments per job; 0: one record */
    bool no_args;        /* -N0: jobs get no arguments */
    size_t block;        /* --pipe --block bytes */
    long pipe_records;   /* --pipe -N: records per job; 0: by --block */
    char *delim;         /* -d/-0: the record end (owned) */
    size_t delim_len;
    const char *colsep; /* --colsep, or NULL */
    const char *shell;  /* the shell for commands that need one */
    tmpl cmd;           /* the command */
    tmpl tagstr;        /* --tag/--tagstring (raw values) */
} run_config;

struct job;

/* What the runner and the pool tasks share. */
typedef struct run_shared {
    const run_config *cfg;
    struct job *jobs; /* every job, in input order */
    size_t n;
    size_t *order;        /* the order jobs start in (--shuf); or NULL */
    atomic_size_t next;   /* the next job a task takes */
    cf_queue *done;       /* finished jobs, put by their tasks */
    atomic_bool stopping; /* no job may start (halt, Ctrl-C) */
    int stop_fd;          /* readable after Ctrl-C: stop running jobs */
    int halt_fd;          /* readable after --halt now: stop them too */
    char **env;           /* the environment jobs get (environ) */
    size_t n_env;
    pthread_mutex_t lock; /* slots, --delay, --line-buffer output, halt */
    /* Where finished jobs' outputs wait to be printed, so that neither the
     * memory nor the descriptors they hold grow with the number of jobs
     * waiting (for their turn under -k, or for a slow reader). */
    outpark park;
    pthread_mutex_t park_lock;
    bool *slot_busy; /* [0..n_slots) */
    size_t n_slots;
    size_t width;         /* fields per record, for --results */
    double next_start;    /* --delay: the earliest start of the next job */
    atomic_int out_errno; /* --line-buffer: a write to our output failed */
    /* --halt, counted by the tasks as jobs end (under lock), so that no
     * job starts once the limit is reached: */
    size_t n_total; /* jobs in all (for a percentage) */
    size_t h_failed, h_ok;
    /* Jobs whose process runs (or is being started), and how many have
     * ended: a job that cannot start for want of descriptors or processes
     * waits for one to end (under lock; `ended_cv` signals an end). */
    size_t running;
    unsigned long ended;
    bool starved; /* a job gave up starting while none ran */
    int group_fd; /* the proc_watcher's descriptor, or 0 */
    pthread_cond_t ended_cv;
} run_shared;

typedef struct job {
    size_t seq;  /* 1-based, in input order */
    char **args; /* its arguments (borrowed from the inputs) */
    size_t n_args;
    const char *data; /* --pipe: its standard input */
    size_t data_len;
    run_shared *shared;
    /* Written by the task, read by the runner after the job comes back
     * through the queue (which orders the two). */
    char *command; /* the command line (owned) */
    char *tag;     /* --tag: the line prefix, with its tab (owned) */
    size_t slot;
    proc_result res;   /* of the last attempt */
    double start_wall; /* when the last attempt started (epoch seconds) */
    int attempts;
    bool skipped; /* never started: the run was stopping */
    bool failed;
    outbuf out, err;             /* the last attempt's output */
    bool lb_out_bol, lb_err_bol; /* --line-buffer: at a line start */
    bool shown;     /* -v with -u or --line-buffer: printed as it started */
    int park_errno; /* its output could not be set aside in the file */
    /* The runner's own. */
    bool back;        /* came back, or will never start */
    bool done_before; /* --resume: ran in an earlier run */
} job;

/* The inputs: every argument's text, and the jobs made of them. */
typedef struct run_inputs {
    char **bufs; /* owned buffers the arguments point into */
    size_t n_bufs;
    char **args; /* the arguments of every job, job after job */
    size_t n_args;
    size_t width;                  /* fields per record (sources and columns) */
    size_t *job_first, *job_count; /* per job: where in args */
    size_t n_jobs;
    char *pipe_data; /* --pipe: all of standard input */
    size_t pipe_len;
    size_t *chunk_off, *chunk_len; /* --pipe: each job's part */
} run_inputs;

/* One input source as the command line names it. */
typedef struct run_source {
    enum { SRC_ARGS, SRC_FILE, SRC_STDIN } kind;
    char **words; /* SRC_ARGS: the words after ::: (borrowed) */
    size_t n_words;
    const char *path; /* SRC_FILE */
    bool linked;      /* :::+ or ::::+: zipped with the one before */
} run_source;

/* Reads the sources (standard input when there is none) and makes the
 * jobs: the product of the sources (linked ones zipped), split into
 * columns by --colsep, grouped by -n/-N/-m/-X; or, with --pipe, the
 * chunks of standard input. Returns 0, 2 after a usage error, or 255
 * after an error reading (both printed). */
int run_read_inputs(const run_config *cfg, const run_source *src, size_t n_src,
                    run_inputs *in);
void run_free_inputs(run_inputs *in);

/* Splits s (len bytes) at every occurrence of the record end delim; the
 * last record needs no end. Appends the records to *out (NUL-terminated
 * in place: s must have room for a NUL after len). 0, or -1 when out of
 * memory. */
int run_split_records(char *s, size_t len, const char *delim, size_t delim_len,
                      char ***out, size_t *n, size_t *cap);

/* The pool task (arg: the run_shared): takes the next job, runs it unless
 * the run is stopping, and puts it on shared->done. One task per job. */
void *job_task(void *arg);

/* Builds a job's command line into j->command: 0 or -1 (out of memory). */
int job_build_command(job *j);

/* --line-buffer: writes the complete lines a job has captured so far
 * (all of them when final), under the shared lock. */
void job_flush_lines(job *j, bool final);

/* Runs the jobs as the configuration says; returns the exit status of
 * `cfutures run`. */
int run_jobs(const run_config *cfg, run_inputs *in);
/* A random number in [0, n), n > 0, for --shuf. */
size_t run_random_below(size_t n);

#endif /* CF_TOOLS_RUN_H */
