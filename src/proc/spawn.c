/* SPDX-License-Identifier: MIT */
/*
 * spawn.c - starting a worker process, the only place that creates
 * processes (wire.h). Spawn: posix_spawn of /proc/self/exe with the
 * worker's socket on CF__PP_FD, stdin from /dev/null, every other
 * descriptor closed, an empty signal mask and default actions; the
 * constructor below serves the pool before main would run. Fork: the
 * same layout in a copy of the parent (docs/process_pool.md says what that
 * allows). The state page is a memfd the parent maps before the child
 * starts: a forked child inherits the mapping, a spawned one finds the
 * memfd on CF__PP_STATE_FD.
 */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Moves *fd above the descriptors the child's are dup'ed onto: a dup2
 * onto itself would keep close-on-exec set, and one onto the other's slot
 * would close it. 0 or an error number (*fd closed). */
static int above_slots(int *fd)
{
    if (*fd > CF__PP_STATE_FD)
        return 0;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, CF__PP_STATE_FD + 1);
    int e = moved < 0 ? errno : 0;
    close(*fd);
    *fd = moved;
    return e;
}

/* The child's end of the socket on CF__PP_FD, the state page's memfd on
 * CF__PP_STATE_FD, stdin from /dev/null, nothing else open, no signal
 * blocked or caught: 0 or an error number. */
static int spawn(pid_t *pid, int sv[2], int memfd, char *const *envp)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int rc = posix_spawn_file_actions_adddup2(&fa, sv[1], CF__PP_FD);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, memfd, CF__PP_STATE_FD);
    if (!rc)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, CF__PP_STATE_FD + 1);
    if (!rc)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (!rc)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    char *argv[] = { program_invocation_name, NULL };
    if (!rc)
        rc = posix_spawn(pid, "/proc/self/exe", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* The same layout in a forked child, which then serves the pool. */
static int fork_worker(pid_t *pid, int sv[2], cf__pp_state *st)
{
    pid_t parent = getpid();
    if ((*pid = fork()) < 0)
        return errno;
    if (*pid > 0)
        return 0;
    if (dup2(sv[1], CF__PP_FD) < 0)
        _exit(1);
    /* stdin reads /dev/null. Where the program had closed stdout or
     * stderr, the pool's own descriptors (its wake-up eventfd, its end of
     * a worker's socket) took their numbers: close-on-exec, they would
     * not reach a spawned worker, and here a task's output must not reach
     * them either; they write to /dev/null instead. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; null >= 0 && fd <= 2; fd++) {
        int flags = fd == null ? -1 : fcntl(fd, F_GETFD);
        if (fd == 0 || (flags >= 0 && (flags & FD_CLOEXEC)))
            dup2(null, fd);
    }
    if (null > 0)
        close(null);
    close_range(CF__PP_FD + 1, ~0U, 0);
    /* Output the parent had buffered is the parent's to write. */
    __fpurge(stdout);
    __fpurge(stderr);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    cf__pp_worker_main(parent, st);
}

int cf__pp_start(cf__pp_proc *out, char *const *envp)
{
    int sv[2], memfd = -1;
    cf__pp_state *st = MAP_FAILED;
    pid_t pid = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -errno;
    int rc = above_slots(&sv[1]);
    if (!rc && (memfd = memfd_create("cf-worker", MFD_CLOEXEC)) < 0)
        rc = errno;
    if (!rc)
        rc = above_slots(&memfd);
    if (!rc && ftruncate(memfd, sizeof *st))
        rc = errno;
    if (!rc && (st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED,
                          memfd, 0)) == MAP_FAILED)
        rc = errno;
    if (!rc)
        rc = envp ? spawn(&pid, sv, memfd, envp) : fork_worker(&pid, sv, st);
    if (sv[1] >= 0)
        close(sv[1]);
    if (memfd >= 0)
        close(memfd);
    if (rc) {
        close(sv[0]);
        if (st != MAP_FAILED)
            munmap(st, sizeof *st);
        return -rc;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    *out = (cf__pp_proc){ .pid = pid, .fd = sv[0], .pidfd = -1, .state = st };
#ifdef SYS_pidfd_open
    out->pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec */
#endif
    return 0;
}

/* A spawned worker is this program started again with CF__PP_ENV_FD set:
 * this constructor, beside what starts workers so that every program that
 * can start one has it, serves the pool before main would run. */
__attribute__((constructor)) static void serve_if_worker(void)
{
    const char *fd = getenv(CF__PP_ENV_FD);
    if (!fd)
        return;
    const char *parent = getenv(CF__PP_ENV_PARENT);
    long n = strtol(fd, NULL, 10);
    long ppid = parent ? strtol(parent, NULL, 10) : 0;
    /* Programs the worker's tasks start are not workers. */
    unsetenv(CF__PP_ENV_FD);
    unsetenv(CF__PP_ENV_PARENT);
    struct stat st;
    if (n != CF__PP_FD || ppid <= 0 || fstat(CF__PP_FD, &st) != 0 ||
        !S_ISSOCK(st.st_mode))
        return;
    void *page = mmap(NULL, sizeof(cf__pp_state), PROT_READ | PROT_WRITE,
                      MAP_SHARED, CF__PP_STATE_FD, 0);
    close(CF__PP_STATE_FD);
    cf__pp_worker_main((pid_t)ppid, page == MAP_FAILED ? NULL : page);
}
