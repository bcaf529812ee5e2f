/* SPDX-License-Identifier: MIT */
/*
 * stop.h - Ctrl-C and kill as a file descriptor.
 *
 * stop_install() catches SIGINT, SIGTERM and SIGHUP, and ignores SIGPIPE
 * (see stop_request). The handler records
 * the first signal and writes a byte into a pipe that nobody reads, so the
 * pipe's read end (stop_fd) stays readable from then on: every thread that
 * polls it, whatever it waits for besides, wakes up at once and can end its
 * work. That is the only async-signal-safe way to wake threads blocked in
 * poll(2), and it needs no lock.
 */
#ifndef CF_TOOLS_STOP_H
#define CF_TOOLS_STOP_H

#include <stdbool.h>

/* Creates the pipe and installs the handlers: 0, or -1 with errno set.
 * Call once, before starting threads. */
int stop_install(void);

/* The read end to poll for POLLIN; -1 before stop_install. */
int stop_fd(void);

/* The first signal caught (SIGINT, SIGTERM, SIGHUP) or requested, or 0. */
int stop_signal(void);

/* Does from ordinary code what the handler does for a signal: records sig
 * (unless one came first) and makes stop_fd readable. For SIGPIPE, which
 * is ignored so that a closed standard output reads as EPIPE instead of
 * killing cfutures with its jobs still running. */
void stop_request(int sig);

#endif /* CF_TOOLS_STOP_H */
