/* SPDX-License-Identifier: MIT */
/*
 * runner.c - runs the jobs of `cfutures run` on a cfutures thread pool.
 *
 * One task per job is submitted at once to a pool of -j workers; each task
 * takes the next job in input order, runs its command to the end (proc.c)
 * and puts the job on the done queue. This thread, the only one that
 * writes to standard output, standard error and the job log, takes jobs
 * off the queue as they finish (waking at least every PROGRESS_INTERVAL_S
 * to redraw the bar and notice Ctrl-C), and prints each job's output
 * whole: at once, or, with --keep-order, once every job before it has
 * been printed.
 *
 * Stopping (after a failure with --halt-on-error, or on Ctrl-C): the
 * shared flag makes tasks that start from then on skip their job, and
 * every task still pending is cancelled through its future. A cancelled
 * task never takes a job, and tasks take jobs in order, so the jobs never
 * taken are the last ones, as many as the tasks cancelled: the runner
 * waits until jobs back + tasks cancelled = jobs. On Ctrl-C the signal
 * handler has also made the stop descriptor readable, which makes every
 * running job signal its process group.
 *
 * Exit status: 0 when every job succeeded, else the number of failed jobs
 * (at most 101); 128 + the signal after Ctrl-C (130) or a kill, and 141
 * (as SIGPIPE would give) when standard output was closed under us.
 */
#include "run.h"

#include "cli.h"
#include "progress.h"
#include "stop.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_MAX_EXIT 101

typedef struct runner {
    const run_config *cfg;
    run_shared shared;
    job *jobs;
    size_t n;
    cf_executor *pool;
    cf_future **tasks; /* one per job; NULL once cancelled */
    size_t cancelled;  /* tasks cancelled before they started */
    FILE *joblog;
    progress bar;
    size_t back;       /* jobs back */
    size_t finished;   /* jobs that ran */
    size_t failed;     /* of them, failed */
    size_t stopped;    /* of them, stopped by Ctrl-C */
    size_t not_run;    /* never started */
    size_t next_print; /* --keep-order: the next job to print */
    bool halted;       /* --halt-on-error fired */
    bool write_failed; /* our own output went wrong (e.g. EPIPE) */
} runner;

/* ---- printing */

static void write_joblog(runner *r, const job *j)
{
    if (r->joblog == NULL)
        return;
    char *cmd = job_command_text(r->cfg, j->input);
    fprintf(r->joblog, "%zu\t:\t%.3f\t%10.3f\t0\t%zu\t%d\t%d\t%s\n", j->seq,
            j->start_wall, j->res.runtime, j->out.total + j->err.total,
            j->res.exitval, j->res.sig, cmd ? cmd : "(out of memory)");
    fflush(r->joblog);
    free(cmd);
}

/* Prints a job's output whole (standard output, then standard error) and
 * logs it; a job that never ran prints and logs nothing. */
static void emit(runner *r, job *j)
{
    if (!j->skipped) {
        progress_hide(&r->bar);
        if (!r->write_failed &&
            (outbuf_write_to(&j->out, STDOUT_FILENO) != 0 ||
             outbuf_write_to(&j->err, STDERR_FILENO) != 0)) {
            /* Nobody reads our output any more (| head): stop as after
             * Ctrl-C, rather than run jobs whose output goes nowhere. */
            r->write_failed = true;
            if (errno == EPIPE)
                stop_request(SIGPIPE);
        }
        if (j->out.error || j->err.error)
            cli_error("run", "job %zu: output lost: %s", j->seq,
                      strerror(j->out.error ? j->out.error : j->err.error));
        write_joblog(r, j);
    }
    outbuf_free(&j->out);
    outbuf_free(&j->err);
}

/* --keep-order: prints the jobs that are next in input order and back. */
static void emit_ready(runner *r)
{
    while (r->next_print < r->n && r->jobs[r->next_print].back)
        emit(r, &r->jobs[r->next_print++]);
}

/* ---- stopping */

/* Makes sure no job starts from now on: later tasks skip their job, and
 * pending ones are cancelled (their jobs will never be taken). */
static void stop_starting(runner *r)
{
    /* release: pairs with the tasks' acquire load before they start. */
    atomic_store_explicit(&r->shared.stopping, true, memory_order_release);
    for (size_t i = 0; i < r->n; i++) {
        if (r->tasks[i] == NULL || !cf_future_cancel(r->tasks[i]))
            continue;
        cf_future_release(r->tasks[i]);
        r->tasks[i] = NULL;
        r->cancelled++;
    }
}

/* ---- the loop */

static void take_back(runner *r, job *j)
{
    j->back = true;
    r->back++;
    if (j->skipped) {
        r->not_run++;
    } else {
        r->finished++;
        r->failed += j->failed;
        r->stopped += j->res.stopped;
    }
    if (j->failed && r->cfg->halt_on_error && !r->halted && !stop_signal()) {
        r->halted = true;
        stop_starting(r);
    }
    if (r->cfg->keep_order)
        emit_ready(r);
    else
        emit(r, j);
}

/* Submits a task per job; when one cannot be submitted (memory is short)
 * the run stops there, and the jobs left are not run. */
static void submit_all(runner *r)
{
    for (size_t i = 0; i < r->n; i++) {
        int rc = cf_submit(r->pool, job_task, &r->shared, &r->tasks[i]);
        if (rc != 0) {
            cli_error("run", "cannot submit job %zu: %s", i + 1,
                      cf_strerror(rc));
            r->tasks[i] = NULL;
            r->cancelled += r->n - i;
            stop_starting(r);
            return;
        }
    }
}

/* Marks the jobs no task will take (as many as were cancelled, the last
 * ones) as not run. */
static void mark_untaken(runner *r)
{
    for (size_t i = r->n - r->cancelled; i < r->n; i++) {
        r->jobs[i].skipped = true;
        r->jobs[i].back = true;
        r->not_run++;
    }
}

static void collect(runner *r)
{
    bool interrupted = false;
    while (r->back + r->cancelled < r->n) {
        void *item;
        int rc = cf_queue_get(r->shared.done, &item, PROGRESS_INTERVAL_S);
        if (rc == 0)
            take_back(r, item);
        if (!interrupted && stop_signal()) {
            interrupted = true;
            stop_starting(r);
        }
        progress_update(&r->bar, r->finished, r->failed, NULL);
    }
    mark_untaken(r);
    if (r->cfg->keep_order)
        emit_ready(r);
    progress_end(&r->bar);
}

static void report(const runner *r)
{
    int sig = stop_signal();
    if (sig)
        cli_error("run",
                  "stopped by %s: %zu of %zu jobs ran (%zu failed, %zu of "
                  "them stopped), %zu not started",
                  strsignal(sig), r->finished, r->n, r->failed, r->stopped,
                  r->not_run);
    else if (r->halted)
        cli_error("run",
                  "halted after a failure (--halt-on-error): %zu of %zu jobs "
                  "ran (%zu failed), %zu not started",
                  r->finished, r->n, r->failed, r->not_run);
}

static int exit_status(const runner *r)
{
    if (stop_signal())
        return 128 + stop_signal();
    if (r->failed > 0)
        return r->failed > RUN_MAX_EXIT ? RUN_MAX_EXIT : (int)r->failed;
    return r->write_failed ? 1 : 0;
}

/* ---- setting up and tearing down */

static int open_joblog(runner *r)
{
    if (r->cfg->joblog == NULL)
        return 0;
    r->joblog = fopen(r->cfg->joblog, "we");
    if (r->joblog == NULL) {
        cli_error("run", "cannot write the job log '%s': %s", r->cfg->joblog,
                  strerror(errno));
        return -1;
    }
    fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\t"
          "Command\n",
          r->joblog);
    fflush(r->joblog);
    return 0;
}

static int setup(runner *r, char *const *inputs)
{
    r->jobs = calloc(r->n, sizeof *r->jobs);
    r->tasks = calloc(r->n, sizeof *r->tasks);
    r->shared.jobs = r->jobs;
    r->shared.n = r->n;
    r->shared.done = cf_queue_new(0, CF_FIFO, NULL);
    size_t workers = r->cfg->jobs > 0 ? (size_t)r->cfg->jobs : r->n;
    cf_options opts = { .max_workers = (int)(workers > 0 ? workers : 1),
                        .name_prefix = "job" };
    r->pool = cf_thread_pool_new(&opts);
    if (r->jobs == NULL || r->tasks == NULL || r->shared.done == NULL ||
        r->pool == NULL) {
        cli_error("run", "cannot start: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        job *j = &r->jobs[i];
        j->seq = i + 1;
        j->input = inputs[i];
        j->shared = &r->shared;
        j->out = (outbuf)OUTBUF_INIT;
        j->err = (outbuf)OUTBUF_INIT;
    }
    return open_joblog(r);
}

static void teardown(runner *r)
{
    if (r->pool)
        cf_executor_free(r->pool);
    for (size_t i = 0; r->tasks && i < r->n; i++)
        cf_future_release(r->tasks[i]);
    for (size_t i = 0; r->jobs && i < r->n; i++) {
        outbuf_free(&r->jobs[i].out);
        outbuf_free(&r->jobs[i].err);
    }
    free(r->tasks);
    free(r->jobs);
    cf_queue_free(r->shared.done);
    if (r->joblog)
        fclose(r->joblog);
}

int run_jobs(const run_config *cfg, char *const *inputs, size_t n)
{
    if (n == 0)
        return 0;
    if (stop_install() != 0) {
        cli_error("run", "cannot catch signals: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    runner r = { .cfg = cfg, .n = n };
    r.shared.cfg = cfg;
    r.shared.stop_fd = stop_fd();
    atomic_init(&r.shared.stopping, false);
    atomic_init(&r.shared.next, 0);
    int status = CLI_EXIT_ERROR;
    if (setup(&r, inputs) == 0) {
        progress_start(&r.bar, STDERR_FILENO,
                       progress_wanted(STDERR_FILENO, cfg->bar), NULL, n);
        submit_all(&r);
        collect(&r);
        report(&r);
        status = exit_status(&r);
    }
    teardown(&r);
    return status;
}
