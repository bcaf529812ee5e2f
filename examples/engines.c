/* SPDX-License-Identifier: MIT */
/*
 * engines.c - one program, three engines. The same bytes tasks run on a
 * thread pool, a process pool or the ranks of an MPI job; only the line
 * that creates the executor differs (make_executor below).
 *
 *   engines threads                 a pool of threads in this process
 *   engines processes               a pool of worker processes
 *   mpiexec -n 3 engines mpi        the other ranks of MPI_COMM_WORLD
 *   engines mpi-spawn               copies of this program that MPI starts
 *                                   (the mpi engines when built with MPI)
 *
 * Counts the primes below 6 000 000 (2 000 000 with --quick) in 48 ranges
 * with cf_map_bytes_new and checks the total. A task's input is its range
 * (two uint64_t), its result the count (one uint64_t): plain bytes, so it
 * can cross to another process or another machine. On MPI every rank runs
 * this main(); cf_mpi_pool_new returns the executor on rank 0 and, on the
 * other ranks, serves rank 0's tasks and returns NULL with errno 0. With
 * mpi-spawn the program starts alone and cf_mpi_pool_spawn starts its
 * workers: copies of it, in which the same call serves and returns NULL.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <cfutures.h>
#ifdef CFUTURES_HAVE_MPI
#include <cfutures/mpi.h>
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_RANGES = 48 };

static int count_primes(const void *in, size_t len, cf_buffer *out)
{
    uint64_t r[2];
    if (len != sizeof r) {
        cf_fail(CF_EINVAL, "a range is 16 bytes, not %zu", len);
        return CF_EINVAL;
    }
    memcpy(r, in, sizeof r);
    uint64_t count = 0;
    for (uint64_t n = r[0]; n < r[1]; n++) {
        bool prime = n == 2 || (n > 2 && n % 2 == 1);
        for (uint64_t d = 3; prime && d * d <= n; d += 2)
            prime = n % d != 0;
        count += prime;
    }
    return cf_buffer_append(out, &count, sizeof count);
}

/* The one line that picks the engine. */
static cf_executor *make_executor(const char *engine)
{
    if (strcmp(engine, "threads") == 0)
        return cf_thread_pool_new(NULL);
    if (strcmp(engine, "processes") == 0)
        return cf_process_pool_new(NULL);
#ifdef CFUTURES_HAVE_MPI
    if (strcmp(engine, "mpi") == 0)
        return cf_mpi_pool_new(MPI_COMM_WORLD, 0, NULL);
    if (strcmp(engine, "mpi-spawn") == 0)
        return cf_mpi_pool_spawn(NULL);
#endif
    errno = EINVAL;
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *engine = argc > 1 ? argv[1] : "threads";
    bool quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    uint64_t limit = quick ? 2000000 : 6000000;
    uint64_t expected = quick ? 148933 : 412849;

    double t0 = now();
    cf_executor *ex = make_executor(engine);
    if (!ex) {
        if (errno == 0)
            return 0; /* an MPI worker rank: it served rank 0 until the end */
        fprintf(stderr,
                "engines: no '%s' engine here (%s); try threads, "
                "processes, mpi or mpi-spawn\n",
                engine, strerror(errno));
        return 1;
    }

    uint64_t ranges[N_RANGES][2];
    const void *ins[N_RANGES];
    size_t lens[N_RANGES];
    for (uint64_t i = 0; i < N_RANGES; i++) {
        ranges[i][0] = limit * i / N_RANGES;
        ranges[i][1] = limit * (i + 1) / N_RANGES;
        ins[i] = ranges[i];
        lens[i] = sizeof ranges[i];
    }
    cf_map *m;
    int rc = cf_map_bytes_new(&m, ex, count_primes, ins, lens, N_RANGES, 1, 0,
                              CF_FOREVER);
    if (rc) {
        fprintf(stderr, "cf_map_bytes_new: %s\n", cf_strerror(rc));
        return 1;
    }
    uint64_t total = 0;
    const void *data;
    size_t len;
    while ((rc = cf_map_bytes_next(m, &data, &len)) != CF_EOF) {
        if (rc) {
            fprintf(stderr, "a task failed: %s: %.*s\n", cf_strerror(rc),
                    (int)len, (const char *)data);
            return 1;
        }
        uint64_t count;
        memcpy(&count, data, sizeof count);
        total += count;
    }
    cf_map_free(m);
    cf_stats st;
    cf_executor_stats(ex, &st);
    cf_executor_free(ex);
    printf("%s: %llu primes below %llu in %.2fs (%zu tasks, %zu workers)\n",
           engine, (unsigned long long)total, (unsigned long long)limit,
           now() - t0, st.completed, st.workers);
    return total == expected ? 0 : 1;
}
