/* SPDX-License-Identifier: MIT */
/*
 * stop.c - the signal handler and its pipe (see stop.h).
 *
 * Global state, on purpose: a signal handler can reach nothing else. The
 * pipe's descriptors are set once before any thread starts and only read
 * after; the caught signal is a lock-free atomic (so async-signal-safe),
 * written by the handler alone and read by any thread; relaxed, since the
 * pipe and the value carry no other data.
 */
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

static int stop_pipe[2] = { -1, -1 };
static atomic_int caught;

static void on_signal(int sig)
{
    stop_request(sig);
}

void stop_request(int sig)
{
    int saved = errno;
    int none = 0;
    atomic_compare_exchange_strong_explicit(
        &caught, &none, sig, memory_order_relaxed, memory_order_relaxed);
    /* Non-blocking: once the pipe is full it is readable anyway. */
    ssize_t w = write(stop_pipe[1], "!", 1);
    (void)w;
    errno = saved;
}

int stop_install(void)
{
    if (stop_pipe[0] >= 0)
        return 0;
    if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return -1;
    /* Jobs get SIGPIPE back at its default (proc.c). */
    return signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0;
}

int stop_fd(void)
{
    return stop_pipe[0];
}

int stop_signal(void)
{
    return atomic_load_explicit(&caught, memory_order_relaxed);
}
