/* SPDX-License-Identifier: MIT */
/*
 * job.c - one job of `cfutures run`: its command line, its attempts, its
 * output with --line-buffer. job_task runs on a pool worker; everything it
 * writes into the job is read by the runner only after the job has gone
 * through the done queue.
 *
 * The command line is the template with the job's values quoted in
 * (tmpl.c). When it is a simple one (plain words and quoted strings, no
 * builtin) it is split into words here and run without a shell; else it
 * runs as SHELL -c COMMAND. A simple command whose program cannot be
 * found or run is run again through the shell, so the shell reports it
 * (and gives 127 or 126) as it would have.
 */
#include "run.h"

#include "cli.h"
#include "stop.h"
#include "strbuf.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int job_build_command(job *j)
{
    const run_config *cfg = j->shared->cfg;
    strbuf b = STRBUF_INIT;
    tmpl_expand(&cfg->cmd, &b, j->args, j->n_args, j->seq, j->slot,
                cfg->context);
    j->command = sb_take(&b);
    if (j->command == NULL)
        return -1;
    if (cfg->tag) {
        /* In context too, as GNU parallel: --tagstring x{}y with -X or
         * -N is xay xby. */
        tmpl_expand(&cfg->tagstr, &b, j->args, j->n_args, j->seq, j->slot,
                    cfg->context);
        sb_addc(&b, '\t');
        j->tag = sb_take(&b);
        if (j->tag == NULL)
            return -1;
    }
    return 0;
}

/* ---- slots and --delay */

static size_t take_slot(run_shared *sh)
{
    size_t slot = 0;
    pthread_mutex_lock(&sh->lock);
    for (size_t i = 0; i < sh->n_slots; i++) {
        if (!sh->slot_busy[i]) {
            sh->slot_busy[i] = true;
            slot = i + 1;
            break;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return slot;
}

static void give_slot(run_shared *sh, size_t slot)
{
    if (slot == 0)
        return;
    pthread_mutex_lock(&sh->lock);
    sh->slot_busy[slot - 1] = false;
    pthread_mutex_unlock(&sh->lock);
}

/* --delay: waits for this job's turn (Ctrl-C ends the wait). */
static void wait_turn(run_shared *sh)
{
    double delay = sh->cfg->delay;
    if (delay <= 0)
        return;
    pthread_mutex_lock(&sh->lock);
    double now = cli_now();
    double at = sh->next_start > now ? sh->next_start : now;
    sh->next_start = at + delay;
    pthread_mutex_unlock(&sh->lock);
    while ((now = cli_now()) < at && stop_signal() == 0 &&
           !atomic_load(&sh->stopping)) {
        struct pollfd p = { .fd = sh->stop_fd, .events = POLLIN };
        poll(&p, 1, (int)((at - now) * 1e3) + 1);
    }
}

/* ---- output */

static void lb_write(job *j, int fd, const char *data, size_t n, bool *bol)
{
    run_shared *sh = j->shared;
    const char *tag = j->tag;
    if (outbuf_write_lines(fd, data, n, tag, tag ? strlen(tag) : 0, bol) != 0) {
        int none = 0;
        atomic_compare_exchange_strong(&sh->out_errno, &none,
                                       errno ? errno : EIO);
    }
}

void job_flush_lines(job *j, bool final)
{
    run_shared *sh = j->shared;
    outbuf *bufs[2] = { &j->out, &j->err };
    bool *bols[2] = { &j->lb_out_bol, &j->lb_err_bol };
    for (int i = 0; i < 2; i++) {
        outbuf *b = bufs[i];
        int fd = i == 0 ? STDOUT_FILENO : STDERR_FILENO;
        if (final) {
            if (b->total == 0)
                continue;
            pthread_mutex_lock(&sh->lock);
            const char *tag = j->tag;
            if (atomic_load(&sh->out_errno) == 0 &&
                outbuf_write_to(b, fd, NULL, tag, tag ? strlen(tag) : 0,
                                bols[i]) != 0) {
                int none = 0;
                atomic_compare_exchange_strong(&sh->out_errno, &none,
                                               errno ? errno : EIO);
            }
            pthread_mutex_unlock(&sh->lock);
            outbuf_reset(b);
            continue;
        }
        if (b->fd >= 0 || b->len == 0)
            continue; /* a line too long for memory waits for the end */
        char *nl = memrchr(b->data, '\n', b->len);
        if (nl == NULL)
            continue;
        size_t n = (size_t)(nl - b->data) + 1;
        pthread_mutex_lock(&sh->lock);
        if (atomic_load(&sh->out_errno) == 0)
            lb_write(j, fd, b->data, n, bols[i]);
        pthread_mutex_unlock(&sh->lock);
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
        b->total -= n;
    }
}

/* Whether the job's output goes out as it comes (--line-buffer) rather
 * than whole when it ends; with --results it goes to the files only. */
static bool live_lines(const run_config *cfg)
{
    return cfg->line_buffer && !cfg->results;
}

static void capture(void *ctx, int stream, const char *data, size_t n)
{
    job *j = ctx;
    outbuf_append(stream == 1 ? &j->out : &j->err, data, n);
    if (live_lines(j->shared->cfg))
        job_flush_lines(j, false);
}

/* A line on the job's own standard error: how cfutures run itself failed
 * to run it. */
static void job_message(job *j, const char *what, const char *name, int err)
{
    char *msg =
        cli_format("cfutures run: %s '%s': %s\n", what, name, strerror(err));
    if (msg) {
        outbuf_append(&j->err, msg, strlen(msg));
        free(msg);
    }
}

/* ---- running */

/* The variables each job gets set, as GNU parallel sets them. */
typedef struct job_vars {
    char seq[48], slot[48], slot0[48], pid[48];
    char tmp[PATH_MAX + 16]; /* "PARALLEL_TMP=" and the name */
} job_vars;

#define TMP_VAR "PARALLEL_TMP="

/* PARALLEL_TMP: a name in $TMPDIR (or /tmp) that nothing has, "par" and 5
 * letters or digits, as GNU parallel makes it: not created, and removed
 * after each attempt of the job if the job made it. The letters come from
 * the job number and the attempt (times a number prime to 62^5), after a
 * start drawn once per run, so no two jobs or attempts of a run get the
 * same name. */
static void tmp_name(const job *j, char *buf, size_t size)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static atomic_ulong start;
    unsigned long s = atomic_load(&start);
    if (s == 0) {
        unsigned long x = (unsigned long)time(NULL) * 2654435761u ^
                          (unsigned long)getpid() * 40503u;
        unsigned long want = x | 1;
        atomic_compare_exchange_strong(&start, &s, want);
        s = atomic_load(&start);
    }
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    const unsigned long space = 62ul * 62 * 62 * 62 * 62;
    for (unsigned long k = 0;; k++) {
        unsigned long v =
            (s + (j->seq + (k + 16ul * j->attempts) * 7919) * 104729ul) % space;
        char letters[6];
        for (int i = 0; i < 5; i++, v /= 62)
            letters[i] = digits[v % 62];
        letters[5] = '\0';
        snprintf(buf, size, TMP_VAR "%s/par%s", dir, letters);
        struct stat st;
        if (k >= 16 || lstat(buf + strlen(TMP_VAR), &st) != 0)
            return;
    }
}

/* The environment of the job: ours, with PARALLEL_SEQ, PARALLEL_JOBSLOT,
 * PARALLEL_JOBSLOT0 (the slot from 0), PARALLEL_PID (cfutures' process)
 * and PARALLEL_TMP as GNU parallel sets them. */
static char **job_env(job *j, job_vars *v)
{
    run_shared *sh = j->shared;
    char **env = malloc((sh->n_env + 6) * sizeof *env);
    if (env == NULL)
        return NULL;
    memcpy(env, sh->env, sh->n_env * sizeof *env);
    snprintf(v->seq, sizeof v->seq, "PARALLEL_SEQ=%zu", j->seq);
    snprintf(v->slot, sizeof v->slot, "PARALLEL_JOBSLOT=%zu", j->slot);
    snprintf(v->slot0, sizeof v->slot0, "PARALLEL_JOBSLOT0=%zu",
             j->slot ? j->slot - 1 : 0);
    snprintf(v->pid, sizeof v->pid, "PARALLEL_PID=%ld", (long)getpid());
    tmp_name(j, v->tmp, sizeof v->tmp);
    char *vars[] = { v->seq, v->slot, v->slot0, v->pid, v->tmp };
    for (size_t i = 0; i < 5; i++)
        env[sh->n_env + i] = vars[i];
    env[sh->n_env + 5] = NULL;
    return env;
}

/* Whether no attempt may start: the runner is stopping, or a signal came
 * that it has not acted on yet. */
static bool stopping(const job *j)
{
    return atomic_load_explicit(&j->shared->stopping, memory_order_acquire) ||
           stop_signal() != 0;
}

/* Whether starting a process failed for want of descriptors, processes
 * or memory: errors that go away as other jobs end. */
static bool lacks_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == EAGAIN || err == ENOMEM;
}

static void job_ended(run_shared *sh, bool ran)
{
    pthread_mutex_lock(&sh->lock);
    sh->running--;
    if (ran) {
        sh->starved = false;
        sh->ended++;
        pthread_cond_broadcast(&sh->ended_cv);
    }
    pthread_mutex_unlock(&sh->lock);
}

/* A job could not start for want of resources: waits until another job
 * ends, then says to try again. When no other job runs, it tries again
 * every 20 ms for RUN_RESOURCE_WAIT_S (the limit is held by others) and
 * then gives up: false (and so do the next jobs in that case, at once,
 * until one starts). False too when the run is stopping. */
static bool wait_for_resources(job *j, double *alone_since)
{
    run_shared *sh = j->shared;
    pthread_mutex_lock(&sh->lock);
    if (sh->running == 0) {
        double now = cli_now();
        if (*alone_since == 0)
            *alone_since = now;
        /* Once a job gave up so, the next ones do at once, until one
         * starts. */
        bool give_up = sh->starved || now - *alone_since >= RUN_RESOURCE_WAIT_S;
        sh->starved |= give_up;
        pthread_mutex_unlock(&sh->lock);
        if (give_up || stopping(j))
            return false;
        struct pollfd p = { .fd = sh->stop_fd, .events = POLLIN };
        poll(&p, 1, 20);
        return !stopping(j);
    }
    *alone_since = 0;
    unsigned long seen = sh->ended;
    while (sh->ended == seen && sh->running > 0 && !stopping(j)) {
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        at.tv_nsec += 50000000;
        if (at.tv_nsec >= 1000000000) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&sh->ended_cv, &sh->lock, &at);
    }
    pthread_mutex_unlock(&sh->lock);
    return !stopping(j);
}

/* One attempt; the result lands in j->res. */
static void attempt(job *j, char *const *argv, char *const *env)
{
    const run_config *cfg = j->shared->cfg;
    proc_options o = { .timeout = cfg->timeout,
                       .grace = RUN_GRACE_S,
                       .stop_fd = j->shared->stop_fd,
                       .watch_halt = true,
                       .halt_fd = j->shared->halt_fd,
                       .on_data = capture,
                       .ctx = j,
                       .envp = env,
                       .feed_stdin = cfg->pipe,
                       .in_data = j->data,
                       .in_len = j->data_len,
                       /* --results captures, -u or not (GNU). */
                       .inherit_output = cfg->ungroup && !cfg->results,
                       .die_with_parent = true,
                       .group_fd = j->shared->group_fd };
    outbuf_reset(&j->out);
    outbuf_reset(&j->err);
    j->lb_out_bol = j->lb_err_bol = true;
    bool no_pipes;
    double alone_since = 0;
    do {
        j->start_wall = cli_wall();
        pthread_mutex_lock(&j->shared->lock);
        j->shared->running++;
        pthread_mutex_unlock(&j->shared->lock);
        no_pipes = proc_run(argv, &o, &j->res) != 0;
        if (no_pipes)
            j->res.spawn_error = errno;
        job_ended(j->shared, j->res.spawn_error == 0);
    } while (lacks_resources(j->res.spawn_error) &&
             wait_for_resources(j, &alone_since));
    if (no_pipes)
        job_message(j, "cannot make pipes for", argv[0], j->res.spawn_error);
    else if (j->res.spawn_error == E2BIG) {
        /* Say which: the command with the environment is over the
         * system's limit (the inputs were cut to fit). */
        char *msg = cli_format("cfutures run: job %zu: the command (%zu "
                               "bytes) and the environment are too long "
                               "for the system: %s\n",
                               j->seq, strlen(j->command), strerror(E2BIG));
        if (msg)
            outbuf_append(&j->err, msg, strlen(msg));
        free(msg);
    } else if (j->res.spawn_error)
        job_message(j, "cannot run", argv[0], j->res.spawn_error);
    if (j->res.spawn_error) /* as a shell reports it */
        j->res.exitval = j->res.spawn_error == ENOENT ? 127 : 126;
}

static void trace(job *j)
{
    pthread_mutex_lock(&j->shared->lock);
    char *line = cli_format("%s\n", j->command);
    if (line)
        (void)cli_write_all(STDERR_FILENO, line, strlen(line));
    free(line);
    pthread_mutex_unlock(&j->shared->lock);
}

/* -v with -u or --line-buffer: the command goes out as each try starts,
 * before what it prints, as GNU parallel does (tagged with --tag), not
 * when the job ends. */
static void show(job *j)
{
    run_shared *sh = j->shared;
    char *line = cli_format("%s\n", j->command);
    if (line == NULL)
        return; /* the runner prints it when the job ends */
    bool bol = true;
    pthread_mutex_lock(&sh->lock);
    if (atomic_load(&sh->out_errno) == 0)
        lb_write(j, STDOUT_FILENO, line, strlen(line), &bol);
    pthread_mutex_unlock(&sh->lock);
    free(line);
    j->shown = true;
}

/* Runs the attempts: the first, and more while it fails, the run is not
 * stopping, and --retries allows. */
static void run_job(job *j)
{
    const run_config *cfg = j->shared->cfg;
    if (job_build_command(j) != 0) {
        j->res = (proc_result){ .exitval = 126, .spawn_error = ENOMEM };
        job_message(j, "cannot build the command for job", "", ENOMEM);
        j->failed = true;
        return;
    }
    if (cfg->trace)
        trace(j);
    bool show_tries =
        cfg->verbose && (cfg->ungroup || cfg->line_buffer) && !cfg->results;
    char **simple = tmpl_split_simple(j->command);
    char *shell[] = { (char *)cfg->shell, "-c", j->command, NULL };
    job_vars *vars = malloc(sizeof *vars);
    char **env = vars ? job_env(j, vars) : NULL;
    for (;;) {
        if (env && j->attempts > 0) /* each try its own, as in GNU */
            tmp_name(j, vars->tmp, sizeof vars->tmp);
        if (show_tries)
            show(j);
        attempt(j, simple ? simple : shell, env);
        if (simple && j->res.spawn_error != 0 &&
            !lacks_resources(j->res.spawn_error)) {
            /* Let the shell say why (and find functions, aliases...). */
            tmpl_free_argv(simple);
            simple = NULL;
            attempt(j, shell, env);
        }
        if (env) /* the job's PARALLEL_TMP goes, as in GNU parallel */
            (void)remove(vars->tmp + strlen(TMP_VAR));
        j->attempts++;
        j->failed = !proc_succeeded(&j->res);
        if (!j->failed || j->res.stopped || stopping(j) ||
            j->attempts >= cfg->tries)
            break;
    }
    tmpl_free_argv(simple);
    free(env);
    free(vars);
    if (live_lines(cfg))
        job_flush_lines(j, true);
}

/* Sets the job's output aside (outbuf_park) before it goes on the queue,
 * so that it holds no descriptor and, past the budget, no memory while it
 * waits to be printed. */
static void park_output(run_shared *sh, job *j)
{
    pthread_mutex_lock(&sh->park_lock);
    if (outbuf_park(&j->out, &sh->park) != 0 ||
        outbuf_park(&j->err, &sh->park) != 0)
        j->park_errno = errno ? errno : EIO; /* kept as it was */
    pthread_mutex_unlock(&sh->park_lock);
}

/* --halt: counts the job and says whether the limit is reached, as the
 * runner will decide it (at once, before this worker can take another
 * job; the runner hears of the job later). */
static bool halt_reached(run_shared *sh, const job *j)
{
    const run_config *cfg = sh->cfg;
    pthread_mutex_lock(&sh->lock);
    sh->h_failed += j->failed;
    sh->h_ok += !j->failed;
    size_t count = cfg->halt_on == HALT_FAIL ? (j->failed ? sh->h_failed : 0)
                   : cfg->halt_on == HALT_SUCCESS ? (j->failed ? 0 : sh->h_ok)
                                                  : sh->h_failed + sh->h_ok;
    pthread_mutex_unlock(&sh->lock);
    double need =
        cfg->halt_pct ? (double)sh->n_total * cfg->halt_value : cfg->halt_value;
    return count > 0 && (double)count >= need;
}

void *job_task(void *arg)
{
    run_shared *shared = arg;
    /* relaxed: the counter only hands out distinct indices; the jobs were
     * filled in before the tasks were submitted. */
    size_t k =
        atomic_fetch_add_explicit(&shared->next, 1, memory_order_relaxed);
    if (k >= shared->n)
        return NULL; /* cannot happen: one task per job */
    job *j = &shared->jobs[shared->order ? shared->order[k] : k];
    /* acquire: pairs with the runner's release store when it stops. */
    if (!stopping(j))
        wait_turn(shared);
    if (stopping(j)) {
        j->skipped = true;
    } else {
        j->slot = take_slot(shared);
        run_job(j);
        give_slot(shared, j->slot);
        park_output(shared, j);
        if (shared->cfg->halt != HALT_NEVER && halt_reached(shared, j))
            /* release: pairs with the acquire in stopping(). */
            atomic_store_explicit(&shared->stopping, true,
                                  memory_order_release);
    }
    /* The queue is unbounded: a put fails only when memory runs out for
     * its growth. The runner waits for every job, so try again. */
    while (cf_queue_put(shared->done, j, CF_FOREVER) == CF_ENOMEM) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}
