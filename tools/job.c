/* SPDX-License-Identifier: MIT */
/*
 * job.c - one job of `cfutures run`: its argument vector, its attempts,
 * its line in the job log. job_task runs on a pool worker; everything it
 * writes into the job is read by the runner only after the job has gone
 * through the done queue.
 *
 * Without --shell the input is substituted for every "{}" inside the
 * words (or appended as the last argument when none has one) and the words
 * become the argument vector: no shell ever parses the input. With
 * --shell the script is `sh -c SCRIPT sh INPUT`, where the script has
 * "$1" in place of each {}: the input reaches the shell as a positional
 * parameter, never as code.
 */
#include "run.h"

#include "cli.h"
#include "stop.h"
#include "strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void free_argv(char **argv)
{
    if (argv == NULL)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

/* Any word with a "{}"? */
static bool has_placeholder(const run_config *cfg)
{
    for (size_t i = 0; i < cfg->n_words; i++)
        if (strstr(cfg->words[i], "{}"))
            return true;
    return false;
}

/* The argument vector for one input (every string owned: free_argv);
 * NULL when out of memory. */
static char **build_argv(const run_config *cfg, const char *input)
{
    const char *shell[] = { "/bin/sh", "-c", cfg->script, "sh", input };
    size_t n = cfg->shell ? 5 : cfg->n_words + !has_placeholder(cfg);
    char **argv = calloc(n + 1, sizeof *argv);
    if (argv == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        strbuf b = STRBUF_INIT;
        if (cfg->shell)
            sb_adds(&b, shell[i]);
        else if (i < cfg->n_words)
            sb_add_replaced(&b, cfg->words[i], input);
        else
            sb_adds(&b, input);
        if ((argv[i] = sb_take(&b)) == NULL) {
            free_argv(argv);
            return NULL;
        }
    }
    return argv;
}

int run_build_script(run_config *cfg)
{
    strbuf b = STRBUF_INIT;
    size_t hits = 0;
    for (size_t i = 0; i < cfg->n_words; i++) {
        if (i > 0)
            sb_addc(&b, ' ');
        hits += sb_add_replaced(&b, cfg->words[i], "\"$1\"");
    }
    if (hits == 0)
        sb_adds(&b, " \"$1\"");
    cfg->script = sb_take(&b);
    return cfg->script ? 0 : CF_ENOMEM;
}

char *job_command_text(const run_config *cfg, const char *input)
{
    strbuf b = STRBUF_INIT;
    if (cfg->shell) {
        /* The script as a shell would read it with the input quoted in. */
        strbuf q = STRBUF_INIT;
        sb_add_shell_word(&q, input);
        char *quoted = sb_take(&q);
        if (quoted == NULL)
            return NULL;
        size_t hits = 0;
        for (size_t i = 0; i < cfg->n_words; i++) {
            if (i > 0)
                sb_addc(&b, ' ');
            hits += sb_add_replaced(&b, cfg->words[i], quoted);
        }
        if (hits == 0) {
            sb_addc(&b, ' ');
            sb_adds(&b, quoted);
        }
        free(quoted);
        return sb_take(&b);
    }
    char **argv = build_argv(cfg, input);
    if (argv == NULL)
        return NULL;
    for (char **a = argv; *a; a++) {
        if (a != argv)
            sb_addc(&b, ' ');
        sb_add_shell_word(&b, *a);
    }
    free_argv(argv);
    return sb_take(&b);
}

static void capture(void *ctx, int stream, const char *data, size_t n)
{
    job *j = ctx;
    outbuf_append(stream == 1 ? &j->out : &j->err, data, n);
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

/* One attempt; the result lands in j->res. */
static void attempt(job *j, char **argv)
{
    const run_config *cfg = j->shared->cfg;
    proc_options o = { .timeout = cfg->timeout,
                       .grace = RUN_GRACE_S,
                       .stop_fd = j->shared->stop_fd,
                       .on_data = capture,
                       .ctx = j };
    outbuf_reset(&j->out);
    outbuf_reset(&j->err);
    j->start_wall = cli_wall();
    if (proc_run(argv, &o, &j->res) != 0) {
        j->res.spawn_error = errno;
        job_message(j, "cannot make pipes for", argv[0], j->res.spawn_error);
    } else if (j->res.spawn_error) {
        job_message(j, "cannot run", argv[0], j->res.spawn_error);
    }
    if (j->res.spawn_error) /* as a shell reports it */
        j->res.exitval = j->res.spawn_error == ENOENT ? 127 : 126;
}

/* Whether no attempt may start: the runner is stopping, or a signal came
 * that it has not acted on yet. */
static bool stopping(const job *j)
{
    return atomic_load_explicit(&j->shared->stopping, memory_order_acquire) ||
           stop_signal() != 0;
}

/* Runs the attempts: the first, and retries while it fails, the run is not
 * stopping, and --retries allows. */
static void run_job(job *j)
{
    char **argv = build_argv(j->shared->cfg, j->input);
    if (argv == NULL) {
        j->res = (proc_result){ .exitval = 126, .spawn_error = ENOMEM };
        job_message(j, "cannot build the command", j->input, ENOMEM);
        j->failed = true;
        return;
    }
    for (;;) {
        attempt(j, argv);
        j->attempts++;
        j->failed = !proc_succeeded(&j->res);
        if (!j->failed || j->res.stopped || stopping(j) ||
            j->attempts > j->shared->cfg->retries)
            break;
    }
    free_argv(argv);
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
    job *j = &shared->jobs[k];
    /* acquire: pairs with the runner's release store when it stops. */
    if (stopping(j)) {
        j->skipped = true;
    } else {
        run_job(j);
        /* --halt-on-error: stop at once, before this worker can take the
         * next job (the runner only hears of the failure later). release:
         * pairs with the acquire in stopping(). */
        if (j->failed && j->shared->cfg->halt_on_error)
            atomic_store_explicit(&j->shared->stopping, true,
                                  memory_order_release);
    }
    /* The queue is unbounded: a put fails only when memory runs out for
     * its growth. The runner waits for every job, so try again. */
    while (cf_queue_put(j->shared->done, j, CF_FOREVER) == CF_ENOMEM) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}
