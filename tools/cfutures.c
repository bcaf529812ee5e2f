/* SPDX-License-Identifier: MIT */
/*
 * cfutures.c - the `cfutures` program: picks the subcommand.
 *
 *   cfutures demo    the guided tour, with measured speedups
 *   cfutures bench   the benchmark suite of bench/ against the peers
 *   cfutures run     run a command for many inputs in parallel
 *   cfutures trace   what the pool threads of a traced run did
 *
 * Each subcommand lives in its own file and is written on the public API
 * (<cfutures.h>) only: this program is the library's first real client.
 */
#include "cli.h"

#include <cfutures.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    { "demo", cmd_demo,
      "a guided tour: threads, pools, I/O-bound and CPU-bound work, timed" },
    { "bench", cmd_bench,
      "run the benchmarks of bench/ against the installed peers" },
    { "run", cmd_run, "run a command for many inputs in parallel" },
    { "trace", cmd_trace,
      "summarise a trace file (CFUTURES_TRACE) and draw its timeline" },
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void print_usage(FILE *f)
{
    fprintf(f,
            "Usage: cfutures COMMAND [OPTIONS]\n"
            "\n"
            "cfutures %d.%d.%d: Python's threading, queue and "
            "concurrent.futures, in C.\n"
            "\nCommands:\n",
            CFUTURES_VERSION_MAJOR, CFUTURES_VERSION_MINOR,
            CFUTURES_VERSION_PATCH);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'cfutures COMMAND --help' tells more about each; "
               "'cfutures --version' prints the version.\n");
}

static const command *find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    cli_hold_std_fds();
    /* Started with SIGCHLD ignored (a disposition exec keeps), the kernel
     * reaps our children itself and no wait ever sees them end: the jobs
     * of `run`, the benchmark runner and the demo's process pool would
     * be waited for for good. */
    signal(SIGCHLD, SIG_DFL);
    if (argc < 2)
        return cli_usage_error(NULL,
                               "which command? (demo, bench, run or trace)");
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 ||
        strcmp(name, "help") == 0) {
        const command *c = argc > 2 ? find(argv[2]) : NULL;
        if (c == NULL) {
            print_usage(stdout);
            return EXIT_SUCCESS;
        }
        char *help_argv[] = { (char *)c->name, "--help", NULL };
        return c->main(2, help_argv);
    }
    if (strcmp(name, "--version") == 0) {
        printf("cfutures %d.%d.%d\n", CFUTURES_VERSION_MAJOR,
               CFUTURES_VERSION_MINOR, CFUTURES_VERSION_PATCH);
        return EXIT_SUCCESS;
    }
    const command *c = find(name);
    if (c == NULL)
        return cli_usage_error(NULL,
                               "unknown command '%s' (demo, bench, run or "
                               "trace)",
                               name);
    return c->main(argc - 1, argv + 1);
}
