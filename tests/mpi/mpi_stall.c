/* SPDX-License-Identifier: MIT */
/*
 * mpi_stall.c - the watchdog test's workload (tests/mpi/stall.sh). Run on
 * every rank of a 3-rank job:
 *
 *   mpiexec -n 3 mpi_stall SECONDS
 *
 * The root keeps tasks of 10 ms in flight on an MPI pool. After 20 rounds
 * of answers, one task stops the rank it runs on with SIGSTOP: the rank
 * still exists and its connections stay open, but it never answers again,
 * as a frozen node or a partition would look. The pool's watchdog must
 * notice, naming the rank: by default the tasks the rank held fail with
 * CF_EBROKEN, and then this program prints "LOST: " and the message,
 * checks that the pool goes on with the other rank ("GO ON: "), and
 * ends the job with MPI_Abort as docs/mpi.md advises (the stopped rank
 * would never take part in MPI_Finalize); with
 * CFUTURES_MPI_RANK_LOST=abort the pool ends the job itself. If the root
 * is still running after SECONDS, it prints "NOT ENDED" and exits with 3.
 */
#define _POSIX_C_SOURCE 200809L
#include <cfutures/mpi.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { WINDOW = 8 };

static int nap(const void *in, size_t len, cf_buffer *out)
{
    if (len == 1 && *(const char *)in == 's')
        raise(SIGSTOP); /* this rank stops answering */
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    return cf_buffer_append(out, "", 1);
}

/* Runs n more tasks (on the ranks left): how many succeeded. */
static int go_on(cf_executor *ex, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        cf_future *f;
        if (cf_submit_bytes(ex, nap, "", 1, &f))
            return ok;
        const void *data;
        size_t len;
        ok += cf_future_bytes(f, 10, &data, &len) == 0;
        cf_future_release(f);
    }
    return ok;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mpi_stall SECONDS\n");
        return 2;
    }
    double limit = atof(argv[1]);
    cf_executor *ex = cf_mpi_pool_new(MPI_COMM_WORLD, 0, NULL);
    if (!ex)
        return errno ? 1 : 0; /* a worker rank: served to the end */
    cf_future *fs[WINDOW];
    for (int i = 0; i < WINDOW; i++)
        if (cf_submit_bytes(ex, nap, "", 1, &fs[i]))
            return 1;
    double t0 = now_s();
    for (unsigned long i = 0; now_s() - t0 < limit; i++) {
        cf_future **f = &fs[i % WINDOW];
        cf_wait(f, 1, 0.5, CF_ALL_COMPLETED);
        if (!cf_future_done(*f))
            continue; /* held by the stopped rank: wait for the watchdog */
        const char *why;
        if (cf_future_exception(*f, 0, &why) == CF_EBROKEN) {
            cf_stats st;
            cf_executor_stats(ex, &st);
            printf("LOST: %s (stalled %zu, workers %zu)\n", why ? why : "",
                   st.stalled, st.workers);
            printf("GO ON: %d of 16 more tasks ran\n", go_on(ex, 16));
            fflush(stdout);
            MPI_Abort(MPI_COMM_WORLD, 4);
        }
        cf_future_release(*f);
        const char *what = i == 20 * WINDOW ? "s" : "";
        if (i == 20 * WINDOW) {
            printf("STOPPING a rank\n");
            fflush(stdout);
        }
        if (cf_submit_bytes(ex, nap, what, 1, f))
            return 1;
    }
    printf("NOT ENDED\n");
    return 3;
}
