/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the subcommands of the `cfutures` program share: their entry
 * points, the usage-error convention, option parsing, clocks, and writing
 * whole buffers to a file descriptor.
 *
 * Conventions every subcommand follows: --help prints the usage on stdout
 * and exits 0; a bad option or value prints one line naming it, and a hint
 * to try --help, on stderr, and exits 2 (CLI_EXIT_USAGE). The tool is built
 * on the public header <cfutures.h> only.
 */
#ifndef CF_TOOLS_CLI_H
#define CF_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_EXIT_USAGE 2   /* a bad option, value or command line */
#define CLI_EXIT_ERROR 255 /* could not do the work at all (as GNU parallel) */

/* The subcommands: each parses argv[1..argc) (argv[0] is its own name) and
 * returns the process's exit status. */
int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_trace(int argc, char **argv);

/* Prints "cfutures CMD: <message>" and the --help hint on stderr; returns
 * CLI_EXIT_USAGE for the caller to return. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prints "cfutures CMD: <message>" on stderr (a failure that is not about
 * usage). */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* One getopt_long step for subcommand cmd, quiet in getopt's own words:
 * returns the option, -1 at the end of the options, or '?' after printing
 * the usage error (unknown option, a value missing or not wanted).
 * shortopts must start with ':' (or "+:") so a missing value is told apart;
 * reset optind to 1 before the first call. */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Parses a whole decimal integer in [lo, hi]; false when s is not one. */
bool cli_parse_long(const char *s, long lo, long hi, long *out);
/* Parses a finite number of seconds > 0; false otherwise. */
bool cli_parse_seconds(const char *s, double *out);

/* Seconds on the monotonic clock (for durations) and on the wall clock
 * (seconds since the epoch, for logs). */
double cli_now(void);
double cli_wall(void);

/* Puts /dev/null, read-only, on standard input, output and error where
 * they are closed, so that no descriptor of ours lands there: a closed
 * input reads as empty, a write to a closed output still fails. */
void cli_hold_std_fds(void);

/* Writes all n bytes to fd, retrying after EINTR and short writes:
 * 0, or -1 with errno set. */
int cli_write_all(int fd, const void *data, size_t n);

/* Formats into a new string (the caller frees it); NULL when out of
 * memory. */
char *cli_format(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif /* CF_TOOLS_CLI_H */
