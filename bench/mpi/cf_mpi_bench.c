/* SPDX-License-Identifier: MIT */
/*
 * cf_mpi_bench.c - the MPI executor's benchmark; bench/mpi/run.sh runs it
 * beside mpi4py.futures (mpi4py_bench.py, the same measurements) on the
 * same ranks and prints the table.
 *
 *   mpiexec -n P cf_mpi_bench tiny N [isolated]
 *       N tiny tasks (8 bytes in, 8 out): submit all, then read all
 *   mpiexec -n P cf_mpi_bench cpu N ITERS [isolated]
 *       N CPU-bound tasks of ITERS steps
 *   cf_mpi_bench seq N ITERS
 *       the same N tasks one after the other in this process, no MPI
 *
 * "isolated" makes the pool with cf_mpi_pool_new_isolated (each rank runs
 * its tasks in a process of its own).
 * The root prints one line: "RESULT <mode> <seconds> <tasks per second>
 * [occupancy]". For cpu, occupancy is the time the workers spent inside
 * tasks over (wall time x workers): 1.0 means no worker ever waited for
 * the executor, whatever share of the cores the machine gave them. A
 * second line, "IDLE lead L gaps G tail T", says where the rest went, as
 * shares of (wall time x workers) that add up to 1 with the occupancy:
 * before each worker's first task (the round trip's first half), between
 * its tasks (the executor let it wait), and after its last one (the
 * answer's way back, and one worker done before another).
 * Timing starts once the pool exists and a warm-up round has run (as in
 * the Python twin), so it measures the executor, not MPI start-up; for
 * tiny tasks the warm-up is the same round, which across hosts opens
 * TCP's congestion windows, as in a pool that has been running a while.
 */
#define _POSIX_C_SOURCE 200809L
#include <cfutures/mpi.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int tiny(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = 0;
    memcpy(&x, in, len < sizeof x ? len : sizeof x);
    x += 1;
    return cf_buffer_append(out, &x, sizeof x);
}

/* The CPU-bound step: a dependent chain the compiler cannot shorten (the
 * Python twin runs the same recurrence). */
static uint64_t spin(uint64_t iters, uint64_t x)
{
    for (uint64_t i = 0; i < iters; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        x ^= x >> 33;
    }
    return x;
}

/* Returns the task's start and end (CLOCK_MONOTONIC is one clock for all
 * the ranks of one machine), the process that ran it, and the chain's
 * value. */
static int cpu(const void *in, size_t len, cf_buffer *out)
{
    uint64_t iters = 0;
    memcpy(&iters, in, len < sizeof iters ? len : sizeof iters);
    double t[4] = { now_s(), 0, (double)getpid(), 0 };
    uint64_t x = spin(iters, iters);
    t[1] = now_s();
    t[3] = (double)(x & 0xff);
    return cf_buffer_append(out, t, sizeof t);
}

static double busy_s;   /* time inside cpu tasks, summed by run_tasks */
static double round_t0; /* when run_tasks' last round began */

/* Per process that ran cpu tasks: its first start, last end, time inside. */
enum { MAX_PROCS = 64 };
typedef struct proc_times {
    double pid, first, last, busy;
} proc_times;
static proc_times procs[MAX_PROCS];
static size_t nprocs;

static void note_task(const double t[4])
{
    size_t i = 0;
    while (i < nprocs && procs[i].pid != t[2])
        i++;
    if (i == nprocs) {
        if (nprocs == MAX_PROCS)
            return;
        procs[nprocs++] = (proc_times){ t[2], t[0], t[1], 0 };
    }
    procs[i].first = t[0] < procs[i].first ? t[0] : procs[i].first;
    procs[i].last = t[1] > procs[i].last ? t[1] : procs[i].last;
    procs[i].busy += t[1] - t[0];
}

/* Prints the IDLE line for a round that ran from t0 to t1 on `workers`. */
static void print_idle(double t0, double t1, size_t workers)
{
    double lead = 0, gaps = 0, tail = 0;
    for (size_t i = 0; i < nprocs; i++) {
        lead += procs[i].first - t0;
        gaps += procs[i].last - procs[i].first - procs[i].busy;
        tail += t1 - procs[i].last;
    }
    /* A worker that ran nothing waited all along. */
    if (workers > nprocs)
        tail += (double)(workers - nprocs) * (t1 - t0);
    double all = (t1 - t0) * (double)(workers ? workers : 1);
    printf("IDLE lead %.4f gaps %.4f tail %.4f\n", lead / all, gaps / all,
           tail / all);
}

/* Submits n tasks of fn over in (8 bytes each: i, or arg when nonzero) and
 * reads every result: the seconds it took. */
static double run_tasks(cf_executor *ex, cf_bytes_fn fn, size_t n, int64_t arg)
{
    cf_future **fs = malloc(n * sizeof *fs);
    if (!fs)
        exit(1);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        int64_t x = arg ? arg : (int64_t)i;
        int rc = cf_submit_bytes(ex, fn, &x, sizeof x, &fs[i]);
        if (rc) {
            fprintf(stderr, "submit: %s\n", cf_strerror(rc));
            exit(1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const void *data;
        size_t len;
        int rc = cf_future_bytes(fs[i], CF_FOREVER, &data, &len);
        if (rc) {
            fprintf(stderr, "task: %s\n", cf_strerror(rc));
            exit(1);
        }
        if (arg && len == 4 * sizeof(double)) {
            double t[4];
            memcpy(t, data, sizeof t);
            busy_s += t[1] - t[0];
            note_task(t);
        } else if (!arg) {
            int64_t y;
            memcpy(&y, data, sizeof y);
            if (y != (int64_t)i + 1) {
                fprintf(stderr, "wrong result %lld for %zu\n", (long long)y, i);
                exit(1);
            }
        }
        cf_future_release(fs[i]);
    }
    double dt = now_s() - t0;
    free(fs);
    round_t0 = t0;
    return dt;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: cf_mpi_bench tiny N | cpu N ITERS | seq N ITERS\n");
        return 2;
    }
    const char *mode = argv[1];
    size_t n = strtoull(argv[2], NULL, 10);
    int64_t iters = argc > 3 ? strtoll(argv[3], NULL, 10) : 0;
    bool isolated = strcmp(argv[argc - 1], "isolated") == 0;

    if (strcmp(mode, "seq") == 0) {
        double t0 = now_s();
        uint64_t sink = 0;
        for (size_t i = 0; i < n; i++)
            sink ^= spin((uint64_t)iters, (uint64_t)iters);
        double dt = now_s() - t0;
        printf("RESULT seq %.6f %.1f %llu\n", dt, (double)n / dt,
               (unsigned long long)(sink & 1));
        return 0;
    }

    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    cf_executor *ex = isolated
                          ? cf_mpi_pool_new_isolated(MPI_COMM_WORLD, 0, NULL)
                          : cf_mpi_pool_new(MPI_COMM_WORLD, 0, NULL);
    if (!ex) {
        int err = errno; /* 0 on a worker rank that served to the end */
        MPI_Finalize();
        return err ? 1 : 0;
    }
    double dt;
    if (strcmp(mode, "tiny") == 0) {
        run_tasks(ex, tiny, n, 0); /* warm-up: the same round */
        dt = run_tasks(ex, tiny, n, 0);
    } else {
        run_tasks(ex, cpu, 2, iters); /* warm-up */
        busy_s = 0;
        nprocs = 0;
        dt = run_tasks(ex, cpu, n, iters);
    }
    cf_stats st;
    cf_executor_stats(ex, &st);
    cf_executor_free(ex);
    printf("RESULT %s%s %.6f %.1f %.4f\n", mode, isolated ? "-isolated" : "",
           dt, (double)n / dt,
           busy_s / (dt * (double)(st.workers ? st.workers : 1)));
    if (strcmp(mode, "cpu") == 0)
        print_idle(round_t0, round_t0 + dt, st.workers);
    MPI_Finalize();
    return 0;
}
