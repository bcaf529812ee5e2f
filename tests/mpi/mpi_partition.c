/* SPDX-License-Identifier: MIT */
/*
 * mpi_partition.c - the workload of the partition test
 * (tests/mpi/multihost.sh --partition). Run on every rank:
 *
 *   mpirun ... mpi_partition HOSTS SECONDS
 *
 * The root keeps WINDOW tasks in flight on an MPI pool, each sleeping
 * 20 ms and answering with the name of the host that ran it, and reads
 * the results in order. Once HOSTS different hosts have answered it
 * prints "READY" (the test then cuts a host's link). The job is expected
 * to end when a host is lost, by the pool's watchdog or by MPI, whichever
 * notices first; if it is still running after SECONDS it prints "NOT
 * ENDED" and exits with 3.
 */
#define _POSIX_C_SOURCE 200809L
#include <cfutures/mpi.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { WINDOW = 32, MAX_HOSTS = 16, NAME_LEN = 64 };

static int sleepy(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    char name[NAME_LEN] = { 0 };
    gethostname(name, sizeof name - 1);
    return cf_buffer_append(out, name, strlen(name) + 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mpi_partition HOSTS SECONDS\n");
        return 2;
    }
    int want = atoi(argv[1]);
    double limit = atof(argv[2]);
    cf_executor *ex = cf_mpi_pool_new(MPI_COMM_WORLD, 0, NULL);
    if (!ex)
        return errno ? 1 : 0; /* a worker rank: served to the end */

    char hosts[MAX_HOSTS][NAME_LEN];
    int seen = 0;
    bool ready = false;
    cf_future *fs[WINDOW];
    for (int i = 0; i < WINDOW; i++)
        if (cf_submit_bytes(ex, sleepy, "", 1, &fs[i]))
            return 1;
    double t0 = now_s();
    for (unsigned long i = 0; now_s() - t0 < limit; i++) {
        cf_future **f = &fs[i % WINDOW];
        const void *data;
        size_t len;
        int rc = cf_future_bytes(*f, CF_FOREVER, &data, &len);
        if (rc) {
            /* The watchdog failed it (docs/mpi.md): MPI_Finalize, at exit,
             * then waits until MPI notices the lost host. */
            const char *why = NULL;
            cf_future_exception(*f, 0, &why);
            printf("task failed: %s: %s\n", cf_strerror(rc), why ? why : "");
            fflush(stdout);
            return 1;
        }
        int k = 0;
        while (k < seen && strncmp(hosts[k], data, NAME_LEN) != 0)
            k++;
        if (k == seen && seen < MAX_HOSTS && len <= NAME_LEN)
            memcpy(hosts[seen++], data, len);
        cf_future_release(*f);
        if (!ready && seen >= want) {
            ready = true;
            printf("READY: %d hosts answered\n", seen);
            fflush(stdout);
        }
        if (cf_submit_bytes(ex, sleepy, "", 1, f))
            return 1;
    }
    printf("NOT ENDED after %.0f s\n", limit);
    fflush(stdout);
    for (int i = 0; i < WINDOW; i++)
        cf_future_release(fs[i]);
    cf_executor_free(ex);
    return 3;
}
