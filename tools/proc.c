/* SPDX-License-Identifier: MIT */
/*
 * proc.c - one command run to its end (see proc.h).
 *
 * The loop: poll the two pipe read ends (non-blocking), the pidfd (readable
 * once the leader has exited, before it is reaped), the stop descriptors
 * and, when the command reads from memory, the write end of its stdin,
 * with a poll timeout at the next deadline (the job's timeout, or the end
 * of the grace period). Descriptors that have said all they will (a pipe at
 * end of file, the pidfd after the exit, the stop descriptor once acted on)
 * leave the poll set, so the loop never spins. Where pidfd_open is missing
 * (kernels before 5.3) the exit is checked with waitid(WNOWAIT) every 10 ms.
 *
 * Cost per run: three pipes (output, errors, exec's report), a pidfd, one
 * vfork (no page tables copied) and execvpe, a few polls, one waitpid.
 */
#include "proc.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { FD_OUT, FD_ERR, FD_PID, FD_STOP, FD_HALT, FD_IN, FD_COUNT };

typedef struct run_state {
    const proc_options *o;
    proc_result *r;
    pid_t pid;
    struct pollfd p[FD_COUNT];
    double start;
    double kill_at; /* when SIGKILL follows SIGTERM */
    bool exited;    /* the leader has exited (it is not reaped yet) */
    bool term_sent, kill_sent;
    size_t fed; /* bytes of in_data written */
} run_state;

bool proc_succeeded(const proc_result *r)
{
    return r->spawn_error == 0 && !r->timed_out && !r->stopped && r->sig == 0 &&
           r->exitval == 0;
}

/* The signals a command gets back at their default disposition, in case
 * cfutures has handlers for them or was started with them ignored. */
static const int default_sigs[] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                                    SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2,
                                    SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU };

/* The child's side of spawn(), between vfork and exec: only system calls,
 * nothing that touches the parent's memory but *err. */
static void child(char *const argv[], char *const envp[], int in_fd, int out_w,
                  int err_w, bool pdeath, pid_t parent, int report_fd,
                  int group_fd)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (size_t i = 0; i < sizeof default_sigs / sizeof default_sigs[0]; i++)
        sigaction(default_sigs[i], &dfl, NULL);
    if (setpgid(0, 0) != 0)
        goto fail;
    /* The watcher knows of the group before the command can start
     * anything: told after exec, it could miss one that a SIGKILL to
     * cfutures caught in between (spawn undoes this if exec fails). */
    if (group_fd > 0) {
        pid_t self = getpid();
        (void)send(group_fd, &self, sizeof self, MSG_NOSIGNAL);
    }
    if (pdeath &&
        (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent))
        goto fail;
    if (in_fd < 0) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0 || (fd != 0 && (dup2(fd, 0) < 0 || close(fd) != 0)))
            goto fail;
    } else if (dup2(in_fd, 0) < 0) {
        goto fail;
    }
    if (out_w >= 0 && (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0))
        goto fail;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(argv[0], argv, envp);
fail:;
    int err = errno ? errno : EINVAL;
    ssize_t w = write(report_fd, &err, sizeof err);
    (void)w;
    _exit(127);
}

/* Tells the watcher of a group that starts (pgid > 0) or ends (< 0). */
static void tell_watcher(const proc_options *o, pid_t v)
{
    if (o->group_fd > 0)
        (void)send(o->group_fd, &v, sizeof v, MSG_NOSIGNAL);
}

/* vfork and exec into a new process group: 0 or an errno value. Every
 * signal is blocked around the vfork, so no handler of ours runs in the
 * child while it shares our memory. Why exec failed comes back through a
 * pipe that closes on exec, which also works where vfork is a fork (under
 * the sanitizers). */
static int spawn(char *const argv[], const proc_options *o, int in_fd,
                 int out_w, int err_w, pid_t *pid)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid();
    char *const *envp = o->envp ? o->envp : environ;
    pid_t p = vfork();
    if (p == 0)
        child(argv, envp, in_fd, out_w, err_w, o->die_with_parent, parent,
              report[1], o->group_fd);
    int e = p < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (p >= 0) {
        int got;
        ssize_t n;
        while ((n = read(report[0], &got, sizeof got)) < 0 && errno == EINTR) {
        }
        if (n == (ssize_t)sizeof got)
            e = got;
    }
    close(report[0]);
    if (p < 0)
        return e;
    if (e != 0) {
        tell_watcher(o, -p); /* the child may have told it */
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
        }
        return e;
    }
    *pid = p;
    return 0;
}

/* ---- the watcher */

/* The watcher's life: note the groups that start (+pgid) and end (-pgid)
 * until the other end closes, then kill those left. Only system calls:
 * groups was allocated before the fork. */
static void watch(int fd, pid_t *groups, size_t max)
{
    struct sigaction ign = { .sa_handler = SIG_IGN };
    for (size_t i = 0; i < sizeof default_sigs / sizeof default_sigs[0]; i++)
        if (default_sigs[i] != SIGCHLD)
            sigaction(default_sigs[i], &ign, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Hold nothing of ours open (a pipeline's reader waits for its end). */
    int null = open("/dev/null", O_RDWR);
    for (int i = 0; i < 3 && null >= 0; i++)
        if (i != fd)
            dup2(null, i);
    long top = sysconf(_SC_OPEN_MAX);
    if (top < 0 || top > 65536)
        top = 65536;
#ifdef SYS_close_range
    if ((fd == 3 || syscall(SYS_close_range, 3, fd - 1, 0) == 0) &&
        syscall(SYS_close_range, fd + 1, ~0U, 0) == 0)
        top = 0;
#endif
    for (int i = 3; i < top; i++)
        if (i != fd)
            close(i);
    size_t n = 0;
    for (;;) {
        pid_t v;
        ssize_t r = read(fd, &v, sizeof v);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof v)
            break; /* the other end closed: we are done, or dead */
        if (v > 0 && n < max) {
            groups[n++] = v;
        } else if (v < 0) {
            for (size_t i = 0; i < n; i++)
                if (groups[i] == -v) {
                    groups[i] = groups[--n];
                    break;
                }
        }
    }
    for (size_t i = 0; i < n; i++)
        kill(-groups[i], SIGKILL);
    _exit(0);
}

int proc_watcher_start(size_t max, pid_t *pid)
{
    int sv[2];
    pid_t *groups = calloc(max ? max : 1, sizeof *groups);
    if (groups == NULL ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        free(groups);
        return -1;
    }
    /* Above 2, so that 0 can mean none in proc_options. */
    int ours = fcntl(sv[0], F_DUPFD_CLOEXEC, 3);
    close(sv[0]);
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old); /* no handler of ours in the child */
    pid_t p = ours >= 0 ? fork() : -1;
    if (p == 0) {
        close(ours);
        watch(sv[1], groups, max);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    free(groups);
    if (p < 0) {
        if (ours >= 0)
            close(ours);
        return -1;
    }
    *pid = p;
    return ours;
}

void proc_watcher_stop(int fd, pid_t pid)
{
    if (fd < 0)
        return;
    close(fd);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
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

/* Writes what the pipe to the command's stdin takes now; closes it when
 * all is written or the command stopped reading. */
static void feed(run_state *s)
{
    while (s->p[FD_IN].fd >= 0) {
        if (s->fed == s->o->in_len) {
            close(s->p[FD_IN].fd);
            s->p[FD_IN].fd = -1;
            return;
        }
        ssize_t w = write(s->p[FD_IN].fd, s->o->in_data + s->fed,
                          s->o->in_len - s->fed);
        if (w > 0) {
            s->fed += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        close(s->p[FD_IN].fd); /* EPIPE: it does not read any more */
        s->p[FD_IN].fd = -1;
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
    s->p[FD_HALT].fd = -1;
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
    if (n > 0 && s->p[FD_IN].fd >= 0 && s->p[FD_IN].revents)
        feed(s);
    if (!s->term_sent && n > 0 &&
        ((s->p[FD_STOP].fd >= 0 && (s->p[FD_STOP].revents & POLLIN)) ||
         (s->p[FD_HALT].fd >= 0 && (s->p[FD_HALT].revents & POLLIN)))) {
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
    if (s->p[FD_IN].fd >= 0)
        close(s->p[FD_IN].fd);
    int st = 0;
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
    }
    tell_watcher(s->o, -s->pid);
    s->r->runtime = cli_now() - s->start;
    if (s->term_sent) {
        s->r->exitval = -1; /* as GNU parallel logs a killed job */
        if (WIFSIGNALED(st))
            s->r->sig = WTERMSIG(st);
    } else if (WIFSIGNALED(st)) {
        /* Killed by another: GNU parallel logs Exitval 0 and the
         * signal (-1 only for the jobs it kills itself). */
        s->r->exitval = 0;
        s->r->sig = WTERMSIG(st);
    } else {
        s->r->exitval = WEXITSTATUS(st);
        s->r->sig = 0;
    }
}

/* A pipe for one direction: the end we keep non-blocking, both ends close
 * on exec (the child's end is dup2'ed, which clears that). */
static int make_pipe_keep(int fds[2], int keep)
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    if (fcntl(fds[keep], F_SETFL, O_NONBLOCK) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

static void close_pair(int fds[2])
{
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int proc_run(char *const argv[], const proc_options *o, proc_result *r)
{
    int out[2] = { -1, -1 }, err[2] = { -1, -1 }, in[2] = { -1, -1 };
    memset(r, 0, sizeof *r);
    r->exitval = -1;
    if ((!o->inherit_output &&
         (make_pipe_keep(out, 0) != 0 || make_pipe_keep(err, 0) != 0)) ||
        (o->feed_stdin && make_pipe_keep(in, 1) != 0)) {
        int e = errno;
        close_pair(out);
        close_pair(err);
        close_pair(in);
        errno = e;
        return -1;
    }
    run_state s = { .o = o, .r = r, .start = cli_now() };
    int rc = spawn(argv, o, in[0], out[1], err[1], &s.pid);
    if (out[1] >= 0)
        close(out[1]);
    if (err[1] >= 0)
        close(err[1]);
    if (in[0] >= 0)
        close(in[0]);
    if (rc != 0) {
        if (out[0] >= 0)
            close(out[0]);
        if (err[0] >= 0)
            close(err[0]);
        if (in[1] >= 0)
            close(in[1]);
        r->spawn_error = rc;
        return 0;
    }
    /* (the child told the watcher of its group itself, before exec) */
    s.p[FD_OUT] = (struct pollfd){ .fd = out[0], .events = POLLIN };
    s.p[FD_ERR] = (struct pollfd){ .fd = err[0], .events = POLLIN };
    s.p[FD_PID] = (struct pollfd){ .fd = open_pidfd(s.pid), .events = POLLIN };
    s.p[FD_STOP] = (struct pollfd){ .fd = o->stop_fd, .events = POLLIN };
    s.p[FD_HALT] = (struct pollfd){ .fd = o->watch_halt ? o->halt_fd : -1,
                                    .events = POLLIN };
    s.p[FD_IN] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
    feed(&s);
    while (!step(&s)) {
    }
    finish(&s);
    return 0;
}
