/* SPDX-License-Identifier: MIT */
/*
 * signals.c - the signal mask pool threads start with. Threads inherit the
 * mask of their creator, so a pool blocks the asynchronous signals around
 * the creation of each of its threads: the new thread never runs a handler
 * of the program's (a Ctrl-C handler, a SIGCHLD reaper), and the creator's
 * own mask is back as it was when the call returns.
 */
#include "../internal.h"

#include <pthread.h>

void cf__signals_block(sigset_t *old)
{
    static const int sigs[] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGCHLD,
                                SIGALRM, SIGUSR1, SIGUSR2, SIGPIPE };
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

void cf__signals_restore(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}
