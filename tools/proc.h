/* SPDX-License-Identifier: MIT */
/*
 * proc.h - run one command to its end: spawn it in a process group of its
 * own with its standard output and error captured through pipes, hand
 * what it prints to a callback as it comes, and stop it (the whole group)
 * when its time is up or when asked to.
 *
 * The command is started with vfork and execvpe (no shell, PATH searched),
 * its standard input from /dev/null (or a pipe fed from memory), every
 * signal at its default and none blocked; optionally with
 * PR_SET_PDEATHSIG, so that it is killed if cfutures dies, even by
 * SIGKILL. The caller's thread polls the two pipes, a pidfd for the
 * process's exit, and an optional stop descriptor. Stopping sends SIGTERM
 * to the process group, then SIGKILL to it after the grace period; the
 * group is signalled only while its leader is not yet reaped, so the
 * group's id cannot have been reused.
 *
 * The run ends when the leader has exited: what it and its group printed
 * up to then is delivered, and children it left in the background keep
 * running (as with xargs or a shell), unless the run was stopped, in which
 * case the group is killed before the leader is reaped.
 */
#ifndef CF_TOOLS_PROC_H
#define CF_TOOLS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Called with each piece of output as it is read; stream is 1 or 2. */
typedef void (*proc_data_fn)(void *ctx, int stream, const char *data, size_t n);

typedef struct proc_options {
    double timeout; /* seconds from the start; <= 0: none */
    double grace;   /* seconds from SIGTERM to SIGKILL */
    int stop_fd;    /* readable means stop now; -1: none */
    proc_data_fn on_data;
    void *ctx;
    /* Optional; zero means the default. */
    char *const *envp; /* the environment; NULL: environ */
    bool watch_halt;   /* halt_fd is a second stop descriptor */
    int halt_fd;
    bool feed_stdin; /* the command's stdin is in_data, then EOF */
    const char *in_data;
    size_t in_len;
    bool inherit_output;  /* stdout and stderr are ours, not captured */
    bool die_with_parent; /* SIGKILL when the spawning thread dies */
    int group_fd;         /* > 0: tell this proc_watcher of the process group */
} proc_options;

typedef struct proc_result {
    int exitval;     /* exit status; 0 when a signal ended it, -1 when
                        it was stopped (timeout, Ctrl-C) or never started */
    int sig;         /* the signal that ended it, or 0 */
    int spawn_error; /* errno from starting it (execvpe), or 0 */
    bool timed_out;  /* stopped by the timeout */
    bool stopped;    /* stopped through stop_fd */
    double runtime;  /* seconds from spawn to exit */
} proc_result;

/* Starts a process that outlives ours to SIGKILL the process groups of
 * the commands still running when we die, even by SIGKILL (the
 * PR_SET_PDEATHSIG of die_with_parent reaches only a command's first
 * process, not what it started). proc_run tells it of each group through
 * group_fd. Call it before any thread starts (it forks), for at most max
 * commands running at once. Returns the group_fd, or -1 (none runs). */
int proc_watcher_start(size_t max, pid_t *pid);

/* Ends the watcher (once no command runs): closes fd and reaps it. */
void proc_watcher_stop(int fd, pid_t pid);

/* Runs argv (argv[0] is looked up in PATH) as above. Returns 0 when it ran
 * (successfully or not: see *r), -1 with errno set when the pipes could
 * not be made; a command that cannot be started gives 0 with
 * r->spawn_error set. */
int proc_run(char *const argv[], const proc_options *o, proc_result *r);

/* True when the result is a success: it started and exited with 0. */
bool proc_succeeded(const proc_result *r);

#endif /* CF_TOOLS_PROC_H */
