/* SPDX-License-Identifier: MIT */
/*
 * proc.c - one command run to its end (see proc.h).
 *
 * The loop: poll the two pipe read ends (non-blocking), the pidfd (readable
 * once the leader has exited, before it is reaped) and the stop descriptor,
 * with a poll timeout at the next deadline (the job's timeout, or the end
 * of the grace period). Descriptors that have said all they will (a pipe at
 * end of file, the pidfd after the exit, the stop descriptor once acted on)
 * leave the poll set, so the loop never spins. Where pidfd_open is missing
 * (kernels before 5.3) the exit is checked with waitid(WNOWAIT) every 10 ms.
 *
 * Cost per run: two pipes, a pidfd, one posix_spawnp (a vfork-like clone in
 * glibc: no page tables copied), a few polls, one waitpid.
 */
#include "proc.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { FD_OUT, FD_ERR, FD_PID, FD_STOP, FD_COUNT };

typedef struct run_state {
    const proc_options *o;
    proc_result *r;
    pid_t pid;
    struct pollfd p[FD_COUNT];
    double start;
    double kill_at; /* when SIGKILL follows SIGTERM */
    bool exited;    /* the leader has exited (it is not reaped yet) */
    bool term_sent, kill_sent;
} run_state;

bool proc_succeeded(const proc_result *r)
{
    return r->spawn_error == 0 && !r->timed_out && !r->stopped && r->sig == 0 &&
           r->exitval == 0;
}

/* A pipe whose read end (fds[0]) is non-blocking; both close on exec. */
static int make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

/* The signals a command gets back at their default disposition, in case
 * cfutures was started with some of them ignored. */
static void default_signals(sigset_t *set)
{
    static const int sigs[] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                                SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2,
                                SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU };
    sigemptyset(set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(set, sigs[i]);
}

/* posix_spawnp into a new process group: 0 or an errno value. */
static int spawn(char *const argv[], int out_w, int err_w, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&at);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    default_signals(&dfl);
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                               0)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, out_w, 1)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2)) == 0 &&
        (rc = posix_spawnattr_setpgroup(&at, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&at, &dfl)) == 0 &&
        (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
                                                POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF)) == 0)
        rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/* Reads what a pipe holds now, up to max_reads reads; closes it at end of
 * file. */
static void read_pipe(run_state *s, int which, int max_reads)
{
    char buf[1 << 16];
    while (s->p[which].fd >= 0 && max_reads-- > 0) {
        ssize_t n = read(s->p[which].fd, buf, sizeof buf);
        if (n > 0) {
            if (s->o->on_data)
                s->o->on_data(s->o->ctx, which == FD_OUT ? 1 : 2, buf,
                              (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close(s->p[which].fd); /* end of file, or an error */
        s->p[which].fd = -1;
    }
}

/* Signals the whole group. Only called before the leader is reaped, so
 * the group id is still ours. */
static void signal_group(run_state *s, int sig)
{
    kill(-s->pid, sig);
    s->r->sig = sig;
}

static void begin_stop(run_state *s, double now)
{
    signal_group(s, SIGTERM);
    s->term_sent = true;
    s->kill_at = now + s->o->grace;
    s->p[FD_STOP].fd = -1;
}

static bool leader_exited(run_state *s)
{
    if (s->p[FD_PID].fd >= 0)
        return (s->p[FD_PID].revents & POLLIN) != 0;
    siginfo_t si = { 0 };
    return waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si.si_pid == s->pid;
}

/* Milliseconds until the next deadline, -1 for none. */
static int poll_timeout_ms(const run_state *s, double now)
{
    double wake = INFINITY;
    if (s->o->timeout > 0 && !s->term_sent)
        wake = fmin(wake, s->start + s->o->timeout);
    if (s->term_sent && !s->kill_sent)
        wake = fmin(wake, s->kill_at);
    if (s->p[FD_PID].fd < 0 && !s->exited)
        wake = fmin(wake, now + 0.01);
    if (isinf(wake))
        return -1;
    double ms = ceil((wake - now) * 1e3);
    return ms < 0 ? 0 : ms > 1e9 ? 1000000000 : (int)ms;
}

/* One round: wait, read, act on deadlines and the stop request. Returns
 * true when the run is over (the leader may then be reaped). */
static bool step(run_state *s)
{
    double now = cli_now();
    int n = poll(s->p, FD_COUNT, poll_timeout_ms(s, now));
    if (n < 0 && errno != EINTR)
        return true; /* cannot happen with valid descriptors */
    now = cli_now();
    for (int i = FD_OUT; i <= FD_ERR; i++)
        if (n > 0 && s->p[i].fd >= 0 && s->p[i].revents)
            read_pipe(s, i, 16);
    if (!s->term_sent && n > 0 && s->p[FD_STOP].fd >= 0 &&
        (s->p[FD_STOP].revents & POLLIN)) {
        s->r->stopped = true;
        begin_stop(s, now);
    }
    if (!s->term_sent && s->o->timeout > 0 && now >= s->start + s->o->timeout) {
        s->r->timed_out = true;
        begin_stop(s, now);
    }
    if (s->term_sent && !s->kill_sent && now >= s->kill_at) {
        signal_group(s, SIGKILL);
        s->kill_sent = true;
    }
    if (!s->exited && leader_exited(s)) {
        s->exited = true;
        if (s->p[FD_PID].fd >= 0) {
            close(s->p[FD_PID].fd);
            s->p[FD_PID].fd = -1;
        }
    }
    if (!s->exited)
        return false;
    if (!s->term_sent)
        return true;
    /* Stopping: give the group until the grace period ends to let go of
     * the pipes, then kill what is left of it. */
    bool quiet = s->p[FD_OUT].fd < 0 && s->p[FD_ERR].fd < 0;
    if (!quiet && !s->kill_sent)
        return false;
    if (!s->kill_sent)
        kill(-s->pid, SIGKILL); /* stragglers; the leader's signal stays */
    return true;
}

static void finish(run_state *s)
{
    for (int i = FD_OUT; i <= FD_ERR; i++) {
        read_pipe(s, i, 64); /* what was written before the exit */
        if (s->p[i].fd >= 0)
            close(s->p[i].fd);
    }
    if (s->p[FD_PID].fd >= 0)
        close(s->p[FD_PID].fd);
    int st = 0;
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
    }
    s->r->runtime = cli_now() - s->start;
    if (s->term_sent) {
        s->r->exitval = -1; /* as GNU parallel logs a killed job */
        if (WIFSIGNALED(st))
            s->r->sig = WTERMSIG(st);
    } else if (WIFSIGNALED(st)) {
        s->r->exitval = -1;
        s->r->sig = WTERMSIG(st);
    } else {
        s->r->exitval = WEXITSTATUS(st);
        s->r->sig = 0;
    }
}

int proc_run(char *const argv[], const proc_options *o, proc_result *r)
{
    int out[2], err[2];
    memset(r, 0, sizeof *r);
    r->exitval = -1;
    if (make_pipe(out) != 0)
        return -1;
    if (make_pipe(err) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    run_state s = { .o = o, .r = r, .start = cli_now() };
    int rc = spawn(argv, out[1], err[1], &s.pid);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
        close(out[0]);
        close(err[0]);
        r->spawn_error = rc;
        return 0;
    }
    s.p[FD_OUT] = (struct pollfd){ .fd = out[0], .events = POLLIN };
    s.p[FD_ERR] = (struct pollfd){ .fd = err[0], .events = POLLIN };
    s.p[FD_PID] = (struct pollfd){ .fd = open_pidfd(s.pid), .events = POLLIN };
    s.p[FD_STOP] = (struct pollfd){ .fd = o->stop_fd, .events = POLLIN };
    while (!step(&s)) {
    }
    finish(&s);
    return 0;
}
