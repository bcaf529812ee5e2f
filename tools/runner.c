/* SPDX-License-Identifier: MIT */
/*
 * runner.c - runs the jobs of `cfutures run` on a cfutures thread pool.
 *
 * One task per job is submitted at once to a pool of -j workers; each task
 * takes the next job in the run order (input order, or shuffled), runs its
 * command to the end (job.c, proc.c) and puts the job on the done queue.
 * This thread, the only one that writes job output (except with
 * --line-buffer), the job log and the --results files, takes jobs off the
 * queue as they finish (waking at least every PROGRESS_INTERVAL_S to
 * redraw the bar and notice Ctrl-C), and prints each job's output whole:
 * at once, or, with -k, once every job before it has been printed. Every
 * finished job's output is set aside by its task before it is queued
 * (outbuf_park): in memory up to RUN_PARK_BUDGET, the rest in one
 * temporary file, so neither memory nor descriptors grow with the number
 * of outputs waiting (for their turn, or for a slow reader).
 *
 * Stopping (--halt, Ctrl-C, a closed output): the shared flag makes tasks
 * that start from then on skip their job, and every task still pending
 * is cancelled through its future. A cancelled task never takes a job,
 * and tasks take jobs in order, so the jobs never taken are the last ones
 * of the run order, as many as the tasks cancelled. --halt now, Ctrl-C
 * and a closed output also stop the running jobs (their process groups
 * get SIGTERM, then SIGKILL).
 *
 * Exit status, first that applies: 128 + the signal after Ctrl-C (130) or
 * a kill, 141 when standard output was closed under us; 255 when output
 * was lost (a write to our output or a temporary file failed); the status
 * --halt sets (as GNU parallel computes it); the number of failed jobs, at
 * most 101.
 */
#include "run.h"

#include "cli.h"
#include "progress.h"
#include "stop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* Memory that outputs waiting for their turn under -k may hold. The
 * environment variable CFUTURES_RUN_MEMORY (bytes) changes it. */
#define RUN_PARK_BUDGET ((size_t)64 << 20)

typedef struct runner {
    const run_config *cfg;
    run_shared shared;
    job *jobs;
    size_t n;      /* jobs in all */
    size_t n_run;  /* jobs to run (not done in an earlier run) */
    size_t *order; /* [n_run]: the jobs to run, in the order they start */
    cf_executor *pool;
    bool unsubmitted; /* a job could not be handed to the pool */
    int watch_fd;     /* the proc_watcher, or -1 */
    pid_t watch_pid;
    cf_future **tasks; /* one per job to run; NULL once cancelled */
    size_t cancelled;  /* tasks cancelled before they started */
    FILE *joblog;
    progress bar;
    int halt_pipe[2];
    size_t back;       /* jobs back */
    size_t finished;   /* jobs that ran */
    size_t failed;     /* of them, failed */
    size_t stopped;    /* of them, stopped by Ctrl-C or --halt now */
    size_t not_run;    /* never started */
    size_t next_print; /* -k: the next job to print */
    bool halted;       /* --halt fired */
    bool halt_cut;     /* -k: a job --halt now killed was reached */
    int halt_status;
    int write_errno; /* our own output failed (not EPIPE) */
    bool lost;       /* some output was lost */
    bool park_warned;
} runner;

/* ---- printing */

static void write_joblog(runner *r, const job *j)
{
    if (r->joblog == NULL)
        return;
    fprintf(r->joblog, "%zu\t:\t%.3f\t%10.3f\t%zu\t%zu\t%d\t%d\t", j->seq,
            j->start_wall, j->res.runtime, j->data_len, j->out.total,
            j->res.exitval, j->res.sig);
    /* One line per job: a newline in the command is written as a NUL, as
     * GNU parallel does. */
    for (const char *c = j->command ? j->command : ""; *c; c++)
        fputc(*c == '\n' ? '\0' : *c, r->joblog);
    fputc('\n', r->joblog);
    if (fflush(r->joblog) != 0 && !r->lost) {
        cli_error("run", "cannot write the job log '%s': %s", r->cfg->joblog,
                  strerror(errno));
        r->lost = true;
    }
}

/* mkdir -p of path (modified in place and restored). */
static int make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0777);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *dir, const char *name, outbuf *b,
                      const outpark *p, const char *text)
{
    char *path = cli_format("%s/%s", dir, name);
    if (path == NULL)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    free(path);
    if (fd < 0)
        return -1;
    int rc = text ? cli_write_all(fd, text, strlen(text)) : 0;
    if (rc == 0 && b && text) /* -v: the command, then the output */
        rc = cli_write_all(fd, "\n", 1);
    if (rc == 0 && b)
        rc = outbuf_write_to(b, fd, p, NULL, 0, NULL);
    int e = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    errno = e;
    return rc;
}

/* The directory for a job's --results: DIR/1/VALUE/2/VALUE..., values
 * with \ / and tab written as \\ \_ \t, each cut to max bytes (0: not
 * cut). */
static char *results_dir(runner *r, const job *j, size_t max)
{
    strbuf b = STRBUF_INIT;
    sb_adds(&b, r->cfg->results);
    size_t width = r->cfg->pipe ? 0 : r->shared.width;
    for (size_t i = 0; width && i < j->n_args; i++) {
        if (j->args[i] == tmpl_missing)
            continue;
        char num[32];
        snprintf(num, sizeof num, "/%zu/", i % width + 1);
        sb_adds(&b, num);
        size_t start = b.len;
        for (const char *c = j->args[i]; *c; c++) {
            if (*c == '\\')
                sb_adds(&b, "\\\\");
            else if (*c == '/')
                sb_adds(&b, "\\_");
            else if (*c == '\t')
                sb_adds(&b, "\\t");
            else
                sb_addc(&b, *c);
        }
        if (max > 0 && b.len - start > max && b.s)
            b.len = start + max;
    }
    return sb_take(&b);
}

/* --results DIR: DIR/1/VALUE/2/VALUE.../{seq,stdout,stderr}, values with
 * \ / tab and NUL written as \\ \_ \t \0, as GNU parallel does. A value
 * too long for a file name is cut to the longest one (255 bytes on most
 * file systems), as GNU parallel does (byte by byte, whatever it cuts). */
static void write_results(runner *r, job *j)
{
    char *dir = results_dir(r, j, 0);
    int rc = dir ? make_dirs(dir) : -1;
    if (rc != 0 && errno == ENAMETOOLONG) {
        long max = pathconf(r->cfg->results, _PC_NAME_MAX);
        free(dir);
        dir = results_dir(r, j, max > 0 ? (size_t)max : 255);
        rc = dir ? make_dirs(dir) : -1;
    }
    char seq[32];
    snprintf(seq, sizeof seq, "%zu", j->seq);
    const char *shown = r->cfg->verbose ? j->command : NULL;
    if (rc != 0 || write_file(dir, "seq", NULL, NULL, seq) != 0 ||
        write_file(dir, "stdout", &j->out, &r->shared.park, shown) != 0 ||
        write_file(dir, "stderr", &j->err, &r->shared.park, NULL) != 0) {
        cli_error("run", "job %zu: cannot write its --results in '%s': %s",
                  j->seq, dir ? dir : r->cfg->results, strerror(errno));
        r->lost = true;
    }
    free(dir);
}

/* Our output failed: stop as after Ctrl-C, rather than run jobs whose
 * output goes nowhere. */
static void output_failed(runner *r, int err)
{
    if (err == EPIPE) {
        stop_request(SIGPIPE);
        return;
    }
    if (r->write_errno == 0) {
        r->write_errno = err;
        cli_error("run", "cannot write the output: %s; no more jobs start",
                  strerror(err));
        stop_request(SIGTERM); /* wakes and stops the running jobs */
    }
}

static bool output_dead(const runner *r)
{
    return r->write_errno != 0 || stop_signal() == SIGPIPE;
}

static void warn_lines(const char *first, const char *cmd)
{
    cli_error("run", "%s", first);
    fprintf(stderr, "cfutures run: Warning: %s\n", cmd ? cmd : "");
}

/* -v, --dry-run: the job's command line on standard output, each of its
 * lines tagged with --tag as GNU parallel does. 0, or -1 with errno. */
static int write_command(const job *j)
{
    char *line = cli_format("%s\n", j->command);
    if (line == NULL)
        return 0;
    bool bol = true;
    const char *tag = j->tag;
    int rc = outbuf_write_lines(STDOUT_FILENO, line, strlen(line), tag,
                                tag ? strlen(tag) : 0, &bol);
    int e = errno;
    free(line);
    errno = e;
    return rc;
}

/* Prints a job's output whole (standard output, then standard error) and
 * logs it; a job that never ran prints and logs nothing. */
static void emit(runner *r, job *j)
{
    const run_config *cfg = r->cfg;
    if (!j->skipped && !j->done_before) {
        progress_hide(&r->bar);
        if (j->res.timed_out)
            warn_lines("Warning: This job was killed because it timed out:",
                       j->command);
        bool killed_by_halt =
            r->halt_cut || (r->halted && cfg->halt == HALT_NOW &&
                            j->res.stopped && stop_signal() == 0);
        /* -k: after a job --halt now killed, the jobs after it in order
         * are neither printed nor logged, as in GNU parallel. */
        if (killed_by_halt && cfg->keep_order)
            r->halt_cut = true;
        const char *tag = j->tag;
        size_t tag_len = tag ? strlen(tag) : 0;
        if (!killed_by_halt && !output_dead(r)) {
            int rc = 0;
            /* -v: with --results the command goes to the job's stdout
             * file (below), as in GNU parallel. */
            if (cfg->verbose && j->command && !j->shown && !cfg->results)
                rc = write_command(j);
            /* GNU parallel prints nothing of a job with --results. */
            bool print = !cfg->line_buffer && !cfg->ungroup && !cfg->results;
            if (rc == 0 && print)
                rc = outbuf_write_to(&j->out, STDOUT_FILENO, &r->shared.park,
                                     tag, tag_len, NULL);
            if (rc != 0)
                output_failed(r, errno);
            else if (print)
                (void)outbuf_write_to(&j->err, STDERR_FILENO, &r->shared.park,
                                      tag, tag_len, NULL);
        }
        if (j->out.error || j->err.error) {
            cli_error("run", "job %zu: output lost: %s", j->seq,
                      strerror(j->out.error ? j->out.error : j->err.error));
            r->lost = true;
        }
        if (cfg->results)
            write_results(r, j);
        /* A job --halt now killed is not logged (as in GNU parallel), so
         * that --resume runs it again; under -k, nor are those after it.
         * Nor is one that Ctrl-C (SIGTERM, SIGHUP, a closed output)
         * stopped: GNU parallel logs none of those either. */
        bool interrupted =
            j->res.stopped && !j->res.timed_out && stop_signal() != 0;
        if (!killed_by_halt && !interrupted)
            write_joblog(r, j);
    }
    if (j->park_errno && !r->park_warned) {
        /* Kept where it was (memory, or a file of its own): not lost. */
        r->park_warned = true;
        cli_error("run",
                  "cannot set waiting output aside in a temporary file "
                  "(%s); keeping it as it is",
                  strerror(j->park_errno));
    }
    pthread_mutex_lock(&r->shared.park_lock);
    outbuf_free(&j->out, &r->shared.park);
    outbuf_free(&j->err, &r->shared.park);
    pthread_mutex_unlock(&r->shared.park_lock);
    free(j->command);
    free(j->tag);
    j->command = j->tag = NULL;
}

/* -k: prints the jobs that are next in input order and back. */
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
    for (size_t i = 0; i < r->n_run; i++) {
        if (r->tasks[i] == NULL || !cf_future_cancel(r->tasks[i]))
            continue;
        cf_future_release(r->tasks[i]);
        r->tasks[i] = NULL;
        r->cancelled++;
    }
}

/* --halt, as GNU parallel decides it after each job. */
static void check_halt(runner *r, const job *j)
{
    const run_config *cfg = r->cfg;
    if (cfg->halt == HALT_NEVER || r->halted)
        return;
    double limit;
    if (cfg->halt_on == HALT_FAIL && j->failed)
        limit = (double)r->failed;
    else if (cfg->halt_on == HALT_SUCCESS && !j->failed)
        limit = (double)(r->finished - r->failed);
    else if (cfg->halt_on == HALT_DONE)
        limit = (double)r->finished;
    else
        return;
    if (cfg->halt_on != HALT_SUCCESS &&
        (cfg->halt_on == HALT_DONE || j->failed))
        fprintf(stderr, "cfutures run: This job %s:\n%s\n",
                cfg->halt_on == HALT_DONE ? "finished" : "failed",
                j->command ? j->command : "");
    else
        fprintf(stderr, "cfutures run: This job succeeded:\n%s\n",
                j->command ? j->command : "");
    double need =
        cfg->halt_pct ? (double)r->n * cfg->halt_value : cfg->halt_value;
    if (limit < need)
        return;
    r->halted = true;
    if (cfg->halt_on == HALT_SUCCESS) {
        r->halt_status = 0;
    } else if (cfg->halt_pct) {
        r->halt_status = (int)ceil((double)r->failed / (double)r->n * 100.0);
    } else if (cfg->halt_value == 1) {
        /* A job killed for its timeout has GNU parallel's exit value -1. */
        r->halt_status = j->res.timed_out     ? CLI_EXIT_ERROR
                         : j->res.exitval > 0 ? j->res.exitval
                         : j->res.sig         ? j->res.sig + 128
                                              : 0;
    } else {
        r->halt_status = r->failed > RUN_EXIT_MAX_FAILED ? RUN_EXIT_MAX_FAILED
                                                         : (int)r->failed;
    }
    stop_starting(r);
    if (cfg->halt == HALT_NOW) {
        ssize_t w = write(r->halt_pipe[1], "!", 1);
        (void)w;
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
        check_halt(r, j);
    }
    if (r->cfg->keep_order) {
        emit_ready(r);
    } else {
        emit(r, j);
    }
}

/* Submits a task per job to run; when one cannot be submitted (memory is
 * short) the run stops there, and the jobs left are not run. */
static void submit_all(runner *r)
{
    for (size_t i = 0; i < r->n_run; i++) {
        int rc = cf_submit(r->pool, job_task, &r->shared, &r->tasks[i]);
        if (rc != 0) {
            cli_error("run",
                      "cannot start job %zu (no memory or thread for it: "
                      "%s); no more jobs start",
                      r->jobs[r->order[i]].seq, cf_strerror(rc));
            r->tasks[i] = NULL;
            r->unsubmitted = true;
            stop_starting(r);
            /* The tasks never submitted count as cancelled too. */
            r->cancelled += r->n_run - i;
            return;
        }
    }
}

/* Marks the jobs no task will take (as many as were cancelled, the last
 * ones of the run order) as not run. */
static void mark_untaken(runner *r)
{
    for (size_t i = r->n_run - r->cancelled; i < r->n_run; i++) {
        job *j = &r->jobs[r->order[i]];
        j->skipped = true;
        j->back = true;
        r->not_run++;
    }
}

static void collect(runner *r)
{
    bool interrupted = false;
    while (r->back + r->cancelled < r->n_run) {
        void *item;
        int rc = cf_queue_get(r->shared.done, &item, PROGRESS_INTERVAL_S);
        if (rc == 0)
            take_back(r, item);
        int lb_err = atomic_load(&r->shared.out_errno);
        if (lb_err != 0 && !output_dead(r))
            output_failed(r, lb_err);
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
    if (sig && r->write_errno == 0)
        cli_error("run",
                  "stopped by %s: %zu of %zu jobs ran (%zu failed, %zu of "
                  "them stopped), %zu not started",
                  strsignal(sig), r->finished, r->n_run, r->failed, r->stopped,
                  r->not_run);
    else if (r->halted && r->not_run > 0 && r->cfg->halt != HALT_NEVER)
        cli_error("run",
                  "halted (--halt): %zu of %zu jobs ran (%zu failed), %zu "
                  "not started",
                  r->finished, r->n_run, r->failed, r->not_run);
}

static int exit_status(const runner *r)
{
    if (stop_signal() && r->write_errno == 0)
        return 128 + stop_signal();
    if (r->write_errno || r->lost || r->unsubmitted)
        return RUN_EXIT_OUTPUT; /* 255: not all could be done */
    if (r->halted)
        return r->halt_status;
    if (r->cfg->halt != HALT_NEVER && r->cfg->halt_pct)
        return r->failed == 0
                   ? 0
                   : (int)ceil((double)r->failed /
                               (double)(r->finished ? r->finished : 1) * 100.0);
    return r->failed > RUN_EXIT_MAX_FAILED ? RUN_EXIT_MAX_FAILED
                                           : (int)r->failed;
}

/* ---- --dry-run */

static int dry_run(runner *r)
{
    size_t slots = r->shared.n_slots ? r->shared.n_slots : 1;
    for (size_t i = 0; i < r->n_run; i++) {
        job *j = &r->jobs[r->order[i]];
        j->slot = i % slots + 1;
        if (job_build_command(j) != 0) {
            cli_error("run", "out of memory");
            return CLI_EXIT_ERROR;
        }
        int rc = write_command(j);
        free(j->command);
        free(j->tag);
        j->command = j->tag = NULL;
        if (rc != 0) {
            cli_error("run", "cannot write the output: %s", strerror(errno));
            return errno == EPIPE ? 128 + SIGPIPE : RUN_EXIT_OUTPUT;
        }
    }
    return 0;
}

/* ---- setting up and tearing down */

/* --resume, --resume-failed: marks the jobs the job log says are done
 * (that succeeded). */
/* --resume, --resume-failed: marks the jobs the log has, as GNU parallel
 * reads it: the first line is the header, whatever it holds; a line that
 * starts with a job number marks that job (--resume-failed: only when its
 * Exitval and Signal are 0); any other line that does not look like a job
 * log line makes the log wrong. 0; -1 with errno when the log cannot be
 * read; 1 when it is wrong (said on standard error). */
static int read_joblog(runner *r)
{
    FILE *f = fopen(r->cfg->joblog, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    regex_t ok, shape;
    /* GNU parallel's ^(\d+)(?:\t[^\t]+){5}\t0\t0\t and
     * \d+\s+[^\s]+\s+([-0-9.]+\s+){6}. */
    if (regcomp(&ok, "^[0-9]+(\t[^\t]+){5}\t0\t0\t",
                REG_EXTENDED | REG_NOSUB) != 0) {
        fclose(f);
        errno = ENOMEM;
        return -1;
    }
    if (regcomp(&shape,
                "[0-9]+[[:space:]]+[^[:space:]]+[[:space:]]+"
                "([-0-9.]+[[:space:]]+){6}",
                REG_EXTENDED | REG_NOSUB) != 0) {
        regfree(&ok);
        fclose(f);
        errno = ENOMEM;
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    bool header = true;
    int rc = 0;
    ssize_t len;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        if (header) {
            header = false;
            continue;
        }
        bool mark = r->cfg->resume_failed ? regexec(&ok, line, 0, NULL, 0) == 0
                                          : line[0] >= '0' && line[0] <= '9';
        if (mark) {
            errno = 0;
            unsigned long long seq = strtoull(line, NULL, 10);
            if (errno == 0 && seq >= 1 && seq <= r->n)
                r->jobs[seq - 1].done_before = true;
        } else if (regexec(&shape, line, 0, NULL, 0) != 0) {
            if (line[len - 1] == '\n')
                line[len - 1] = '\0';
            cli_error("run", "Format of '%s' is wrong: %s", r->cfg->joblog,
                      line);
            rc = 1;
        }
    }
    free(line);
    fclose(f);
    regfree(&ok);
    regfree(&shape);
    return rc;
}

static int open_joblog(runner *r)
{
    const run_config *cfg = r->cfg;
    if (cfg->joblog == NULL)
        return 0;
    bool resume = cfg->resume || cfg->resume_failed;
    int rc = resume ? read_joblog(r) : 0;
    if (rc < 0)
        cli_error("run", "cannot read the job log '%s': %s", cfg->joblog,
                  strerror(errno));
    if (rc != 0)
        return -1;
    /* "-": standard output, as GNU parallel (each line flushed after the
     * output of its job). */
    bool out = strcmp(cfg->joblog, "-") == 0;
    int fd = out ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3) : -1;
    r->joblog = out ? (fd >= 0 ? fdopen(fd, "w") : NULL)
                    : fopen(cfg->joblog, resume ? "ae" : "we");
    if (r->joblog == NULL) {
        cli_error("run", "cannot write the job log '%s': %s", cfg->joblog,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct stat st;
    off_t size = 0;
    if (!out && fstat(fileno(r->joblog), &st) == 0)
        size = st.st_size;
    int in = size > 0 ? open(cfg->joblog, O_RDONLY | O_CLOEXEC) : -1;
    char last = '\n';
    if (in >= 0 && pread(in, &last, 1, size - 1) == 1 && last != '\n')
        fputc('\n', r->joblog); /* a line cut short by an earlier run */
    if (in >= 0)
        close(in);
    if (size == 0)
        fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\t"
              "Signal\tCommand\n",
              r->joblog);
    fflush(r->joblog);
    return 0;
}

/* Our environment without what each job gets set (PARALLEL_SEQ,
 * PARALLEL_JOBSLOT, PARALLEL_JOBSLOT0, PARALLEL_PID, PARALLEL_TMP). */
static int copy_env(run_shared *sh)
{
    size_t n = 0;
    while (environ[n])
        n++;
    sh->env = malloc((n + 1) * sizeof *sh->env);
    if (sh->env == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PARALLEL_SEQ=", 13) != 0 &&
            strncmp(environ[i], "PARALLEL_JOBSLOT=", 17) != 0 &&
            strncmp(environ[i], "PARALLEL_JOBSLOT0=", 18) != 0 &&
            strncmp(environ[i], "PARALLEL_PID=", 13) != 0 &&
            strncmp(environ[i], "PARALLEL_TMP=", 13) != 0)
            sh->env[sh->n_env++] = environ[i];
    return 0;
}

static void shuffle(size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t k = run_random_below(i);
        size_t t = a[i - 1];
        a[i - 1] = a[k];
        a[k] = t;
    }
}

/* The descriptors open now. */
static long open_descriptors(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 16; /* a guess, on the generous side */
    long n = -1;   /* the directory's own */
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Lowers *slots to the jobs that can run at once within the limit on open
 * descriptors, with GNU parallel's warning. A running job holds up to
 * RUN_FDS_PER_JOB (its pipes while it starts; then its pipes, pidfd and
 * temporary files), the run itself a few more (job log, the file of
 * waiting outputs, the halt pipe). -1 when not even one job fits. */
static int fit_descriptors(const run_config *cfg, size_t n, size_t *slots)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    long per_job = RUN_FDS_PER_JOB + (cfg->pipe ? 2 : 0);
    long spare = (long)(rl.rlim_cur > 1L << 30 ? 1L << 30 : rl.rlim_cur) -
                 open_descriptors() - RUN_FDS_RESERVED;
    size_t fit = spare > 0 ? (size_t)(spare / per_job) : 0;
    if (fit == 0) {
        cli_error("run",
                  "cannot run any jobs: too few file descriptors "
                  "(ulimit -n %ld)",
                  (long)rl.rlim_cur);
        return -1;
    }
    if (fit < *slots && fit < n) {
        fprintf(stderr,
                "cfutures run: Warning: Only enough file handles to run %zu "
                "jobs in parallel.\n"
                "cfutures run: Warning: Try increasing 'ulimit -n'.\n",
                fit);
        *slots = fit;
    }
    return 0;
}

static int setup(runner *r, run_inputs *in)
{
    const run_config *cfg = r->cfg;
    r->jobs = calloc(r->n, sizeof *r->jobs);
    r->order = calloc(r->n, sizeof *r->order);
    r->tasks = calloc(r->n, sizeof *r->tasks);
    if (r->jobs == NULL || r->order == NULL || r->tasks == NULL) {
        cli_error("run", "cannot start: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        job *j = &r->jobs[i];
        j->seq = i + 1;
        j->shared = &r->shared;
        j->out = (outbuf)OUTBUF_INIT;
        j->err = (outbuf)OUTBUF_INIT;
        if (cfg->pipe) {
            j->data = in->pipe_data + in->chunk_off[i];
            j->data_len = in->chunk_len[i];
        } else {
            j->args = in->args + in->job_first[i];
            j->n_args = in->job_count[i];
        }
    }
    size_t slots = cfg->jobs > 0 ? (size_t)cfg->jobs : r->n;
    if (!cfg->dry_run && fit_descriptors(cfg, r->n, &slots) != 0)
        return -1;
    r->shared.n_slots = slots;
    r->shared.slot_busy = calloc(slots ? slots : 1, sizeof(bool));
    if (r->shared.slot_busy == NULL || copy_env(&r->shared) != 0) {
        cli_error("run", "cannot start: %s", strerror(errno));
        return -1;
    }
    if (!cfg->dry_run && open_joblog(r) != 0)
        return -1;
    for (size_t i = 0; i < r->n; i++)
        if (!r->jobs[i].done_before)
            r->order[r->n_run++] = i;
        else
            r->jobs[i].back = true;
    if (cfg->shuf && cfg->pipe) /* inputs are shuffled as they are read */
        shuffle(r->order, r->n_run);
    r->shared.order = r->order;
    r->shared.n = r->n_run;
    if (cfg->dry_run)
        return 0;
    r->shared.done = cf_queue_new(0, CF_FIFO, NULL);
    size_t workers = slots;
    if (workers > r->n_run)
        workers = r->n_run;
    cf_options opts = { .max_workers = (int)(workers > 0 ? workers : 1),
                        .name_prefix = "job" };
    /* Before the pool's threads start: it forks. */
    r->watch_fd = proc_watcher_start(opts.max_workers, &r->watch_pid);
    r->shared.group_fd = r->watch_fd > 0 ? r->watch_fd : 0;
    r->pool = cf_thread_pool_new(&opts);
    if (r->shared.done == NULL || r->pool == NULL ||
        pipe2(r->halt_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        cli_error("run", "cannot start: %s", strerror(errno));
        return -1;
    }
    r->shared.halt_fd = r->halt_pipe[0];
    return 0;
}

static void teardown(runner *r)
{
    if (r->pool)
        cf_executor_free(r->pool);
    proc_watcher_stop(r->watch_fd, r->watch_pid);
    for (size_t i = 0; r->tasks && i < r->n_run; i++)
        cf_future_release(r->tasks[i]);
    for (size_t i = 0; r->jobs && i < r->n; i++) {
        outbuf_free(&r->jobs[i].out, &r->shared.park);
        outbuf_free(&r->jobs[i].err, &r->shared.park);
        free(r->jobs[i].command);
        free(r->jobs[i].tag);
    }
    outpark_close(&r->shared.park);
    pthread_mutex_destroy(&r->shared.park_lock);
    free(r->tasks);
    free(r->jobs);
    free(r->order);
    free(r->shared.slot_busy);
    free(r->shared.env);
    cf_queue_free(r->shared.done);
    for (int i = 0; i < 2; i++)
        if (r->halt_pipe[i] >= 0)
            close(r->halt_pipe[i]);
    pthread_mutex_destroy(&r->shared.lock);
    pthread_cond_destroy(&r->shared.ended_cv);
    if (r->joblog)
        fclose(r->joblog);
}

static size_t park_budget(void)
{
    const char *s = getenv("CFUTURES_RUN_MEMORY");
    long v;
    if (s && cli_parse_long(s, 0, 1L << 40, &v))
        return (size_t)v;
    return RUN_PARK_BUDGET;
}

int run_jobs(const run_config *cfg, run_inputs *in)
{
    size_t n = in->n_jobs;
    if (n == 0)
        return 0;
    if (stop_install() != 0) {
        cli_error("run", "cannot catch signals: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    runner r = { .cfg = cfg, .n = n, .halt_pipe = { -1, -1 }, .watch_fd = -1 };
    r.shared.park = (outpark)OUTPARK_INIT(park_budget());
    pthread_mutex_init(&r.shared.park_lock, NULL);
    r.shared.cfg = cfg;
    r.shared.width = in->width;
    r.shared.n_total = n;
    r.shared.jobs = NULL;
    r.shared.stop_fd = stop_fd();
    r.shared.halt_fd = -1;
    pthread_mutex_init(&r.shared.lock, NULL);
    pthread_cond_init(&r.shared.ended_cv, NULL);
    atomic_init(&r.shared.stopping, false);
    atomic_init(&r.shared.next, 0);
    atomic_init(&r.shared.out_errno, 0);
    int status = CLI_EXIT_ERROR;
    if (setup(&r, in) == 0) {
        r.shared.jobs = r.jobs;
        if (cfg->dry_run) {
            status = dry_run(&r);
        } else {
            progress_start(&r.bar, STDERR_FILENO, cfg->bar, NULL, r.n_run);
            submit_all(&r);
            collect(&r);
            report(&r);
            status = exit_status(&r);
        }
    }
    teardown(&r);
    return status;
}
