/* SPDX-License-Identifier: MIT */
/*
 * example.h - what every example shares: error checks, a clock, a sleep.
 *
 * Each example is one .c file with a run_<name>() function and a small
 * main() guarded by CF_EXAMPLE_NO_MAIN, so the guided tour (demo.c) links
 * the same code. The checks print the failing call with cf_strerror() and
 * exit: a real program would clean up and return the code instead.
 */
#ifndef CF_EXAMPLE_H
#define CF_EXAMPLE_H

/* nanosleep and clock_gettime under -std=c11. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <cfutures.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exits with a message when a cfutures call returned a negative CF_E* code;
 * otherwise returns rc (0, or a non-negative value such as a barrier index). */
static inline int check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "%s failed: %s\n", what, cf_strerror(rc));
        exit(EXIT_FAILURE);
    }
    return rc;
}

/* Exits with a message when a constructor returned NULL (errno says why). */
static inline void *check_ptr(void *p, const char *what)
{
    if (p == NULL) {
        fprintf(stderr, "%s failed: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
    }
    return p;
}

/* Seconds on the monotonic clock, for measuring how long things take. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Blocks the calling thread for the given seconds, as time.sleep() does:
 * the stand-in for waiting on a disk, a socket or a database. */
static inline void sleep_s(double seconds)
{
    struct timespec ts = { (time_t)seconds,
                           (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* True when "--quick" is among the arguments: smaller workloads. */
static inline bool quick_flag(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            return true;
    return false;
}

/* What the two timing lessons measured: the same work done sequentially and
 * on a pool of `workers` threads. */
typedef struct timing {
    double sequential_s, threads_s;
    int workers;
} timing;

/* The work of the two timing lessons, also timed by `cfutures demo`
 * (tools/demo.c), which draws a progress bar as it runs them. */
typedef struct request {
    int id;
    double seconds; /* how long it blocks */
} request;
/* io_bound.c: serves one request (a request *): blocks, returns it. */
void *fetch(void *arg);

typedef struct range {
    uint64_t lo, hi; /* [lo, hi) */
} range;
/* cpu_bound.c: the number of primes in a range (a range *), as a pointer. */
void *count_primes(void *arg);

/* The lessons, one per file; demo.c runs them in order. Each returns 0 when
 * everything it checked came out right. The timing lessons take --quick
 * (smaller workloads) and fill *out when it is not NULL. */
int run_thread_join(void);
int run_pool_result(void);
int run_io_bound(bool quick, timing *out);
int run_cpu_bound(bool quick, timing *out);
int run_wait_as_completed(void);
int run_producer_consumer(void);

#endif /* CF_EXAMPLE_H */
