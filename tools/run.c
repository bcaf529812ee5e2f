/* SPDX-License-Identifier: MIT */
/*
 * run.c - `cfutures run`: the command line (options, the command, the
 * inputs after ::: or on standard input), then runner.c does the work.
 */
#include "run.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cfutures run [OPTIONS] [--] COMMAND [ARGS...] [::: INPUTS...]\n"
    "\n"
    "Runs COMMAND once per input, several at a time, on a cfutures thread\n"
    "pool. The inputs are the words after ':::', or else the lines of\n"
    "standard input. In the command, {} stands for the input; when no word\n"
    "has a {}, the input is added as the last argument. No shell is\n"
    "involved unless --shell is given.\n"
    "\n"
    "Each job's standard output and standard error are captured and\n"
    "printed whole, never mixed with another job's: as the jobs finish, or\n"
    "in input order with --keep-order.\n"
    "\n"
    "Options:\n"
    "  -j, --jobs N         run N jobs at once (default: the number of CPUs;\n"
    "                       0: all at once)\n"
    "      --timeout S      stop a job that runs longer than S seconds: its\n"
    "                       whole process group gets SIGTERM, then SIGKILL\n"
    "                       1 s later\n"
    "      --retries K      run a failing job up to K more times (default 0);\n"
    "                       the last attempt's output is printed\n"
    "  -k, --keep-order     print the outputs in input order\n"
    "      --joblog FILE    write a tab-separated line per job to FILE (GNU\n"
    "                       parallel's columns: Seq Host Starttime JobRuntime\n"
    "                       Send Receive Exitval Signal Command)\n"
    "      --halt-on-error  start no job after the first failure, and wait\n"
    "                       for the running ones\n"
    "      --bar            draw the progress bar on standard error even when\n"
    "                       it is not a terminal (it is drawn on a terminal)\n"
    "      --shell          run the command with /bin/sh -c: the words are\n"
    "                       joined with spaces and each {} becomes \"$1\"; "
    "the\n"
    "                       input is passed as that positional parameter,\n"
    "                       never as shell code (write {} outside quotes)\n"
    "  -h, --help           print this help\n"
    "\n"
    "Exit status: 0 when every job succeeded, else the number of jobs that\n"
    "failed (at most 101); 2 for a bad command line; 128 + the signal when\n"
    "stopped by one (130 for Ctrl-C, 141 when the output was closed, as by\n"
    "| head); 255 when the run could not start.\n"
    "Ctrl-C starts no more jobs, stops the running ones (their process\n"
    "groups get SIGTERM, then SIGKILL) and says what ran.\n"
    "\n"
    "Examples:\n"
    "  cfutures run -j 8 -- gzip -9 ::: *.log\n"
    "  ls *.png | cfutures run --keep-order -- convert {} -resize 50% "
    "small-{}\n"
    "  cfutures run --timeout 30 --retries 2 --joblog jobs.tsv -- \\\n"
    "      curl -fsS -o /dev/null ::: https://example.com/a "
    "https://example.com/b\n"
    "  cfutures run --shell -- 'grep -c TODO {} | sed \"s/^/{}: /\"' ::: "
    "*.c\n";

enum {
    OPT_TIMEOUT = 256,
    OPT_RETRIES,
    OPT_JOBLOG,
    OPT_HALT,
    OPT_BAR,
    OPT_SHELL
};

static const struct option long_options[] = {
    { "jobs", required_argument, NULL, 'j' },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "retries", required_argument, NULL, OPT_RETRIES },
    { "keep-order", no_argument, NULL, 'k' },
    { "joblog", required_argument, NULL, OPT_JOBLOG },
    { "halt-on-error", no_argument, NULL, OPT_HALT },
    { "bar", no_argument, NULL, OPT_BAR },
    { "shell", no_argument, NULL, OPT_SHELL },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

/* Applies one option; returns 0, 1 for --help, or CLI_EXIT_USAGE. */
static int apply_option(run_config *cfg, int c, const char *arg)
{
    switch (c) {
    case 'h': return 1;
    case 'k': cfg->keep_order = true; return 0;
    case OPT_HALT: cfg->halt_on_error = true; return 0;
    case OPT_BAR: cfg->bar = true; return 0;
    case OPT_SHELL: cfg->shell = true; return 0;
    case OPT_JOBLOG: cfg->joblog = arg; return 0;
    case 'j':
        if (!cli_parse_long(arg, 0, 100000, &cfg->jobs))
            return cli_usage_error("run",
                                   "-j wants a number of jobs from 0 to "
                                   "100000, not '%s'",
                                   arg);
        return 0;
    case OPT_TIMEOUT:
        if (!cli_parse_seconds(arg, &cfg->timeout))
            return cli_usage_error(
                "run", "--timeout wants seconds above 0, not '%s'", arg);
        return 0;
    case OPT_RETRIES:
        if (!cli_parse_long(arg, 0, 1000000, &cfg->retries))
            return cli_usage_error(
                "run", "--retries wants a count from 0, not '%s'", arg);
        return 0;
    default: return CLI_EXIT_USAGE; /* cli_getopt said why */
    }
}

/* Splits the words after the options into the command and the inputs
 * after ":::" (inputs NULL when there is no ":::"). */
static int split_command(run_config *cfg, int argc, char **argv, int first,
                         char ***inputs, size_t *n_inputs)
{
    int sep = -1;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], ":::") != 0)
            continue;
        if (sep >= 0)
            return cli_usage_error("run", "only one ':::' list of inputs is "
                                          "supported");
        sep = i;
    }
    int end = sep >= 0 ? sep : argc;
    if (end <= first)
        return cli_usage_error("run", "no command given");
    cfg->words = argv + first;
    cfg->n_words = (size_t)(end - first);
    *inputs = sep >= 0 ? argv + sep + 1 : NULL;
    *n_inputs = sep >= 0 ? (size_t)(argc - sep - 1) : 0;
    return 0;
}

/* Reads standard input, one input per line (without its newline), into a
 * new array of new strings. 0, or -1 when out of memory or on a read
 * error. */
static int read_lines(char ***lines, size_t *n)
{
    size_t cap = 0;
    char *line = NULL;
    size_t len = 0;
    ssize_t got;
    *lines = NULL;
    *n = 0;
    while ((got = getline(&line, &len, stdin)) >= 0) {
        if (got > 0 && line[got - 1] == '\n')
            line[got - 1] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(*lines, cap * sizeof *grown);
            if (grown == NULL)
                break;
            *lines = grown;
        }
        (*lines)[(*n)++] = line;
        line = NULL;
        len = 0;
    }
    free(line);
    return ferror(stdin) || got >= 0 ? -1 : 0;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* Parses the options: 0 to go on, else the exit status. */
static int parse(run_config *cfg, int argc, char **argv)
{
    int c;
    optind = 1;
    while ((c = cli_getopt("run", argc, argv, "+:hj:k", long_options)) != -1) {
        int rc = apply_option(cfg, c, optarg);
        if (rc == 1) {
            fputs(usage, stdout);
            return EXIT_SUCCESS;
        }
        if (rc != 0)
            return rc;
    }
    return -1;
}

int cmd_run(int argc, char **argv)
{
    run_config cfg = { .jobs = cf_cpu_count() };
    int rc = parse(&cfg, argc, argv);
    if (rc >= 0)
        return rc;
    char **inputs = NULL;
    size_t n = 0;
    if ((rc = split_command(&cfg, argc, argv, optind, &inputs, &n)) != 0)
        return rc;
    if (cfg.shell && run_build_script(&cfg) != 0) {
        cli_error("run", "out of memory");
        return CLI_EXIT_ERROR;
    }
    bool from_stdin = inputs == NULL;
    if (from_stdin) {
        if (isatty(STDIN_FILENO))
            cli_error("run", "reading the inputs from standard input, one "
                             "per line (Ctrl-D ends them)");
        if (read_lines(&inputs, &n) != 0) {
            cli_error("run", "cannot read the inputs from standard input");
            free_lines(inputs, n);
            free(cfg.script);
            return CLI_EXIT_ERROR;
        }
    }
    rc = run_jobs(&cfg, inputs, n);
    if (from_stdin)
        free_lines(inputs, n);
    free(cfg.script);
    return rc;
}
