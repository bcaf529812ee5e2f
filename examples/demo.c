/* SPDX-License-Identifier: MIT */
/*
 * demo.c - cfutures_demo, the guided tour: runs the lessons of examples/ in
 * order, each under a header that says what it shows, then tabulates the
 * speedups it measured. `cfutures_demo --quick` runs smaller workloads.
 */
#include "example.h"

static void section(int n, const char *title, const char *what)
{
    printf("\n== %d. %s\n   %s\n\n", n, title, what);
}

static void speedup_row(const char *work, const timing *t)
{
    printf("  %-10s %10.3f s %10.3f s %8d %8.2fx\n", work, t->sequential_s,
           t->threads_s, t->workers, t->sequential_s / t->threads_s);
}

int main(int argc, char **argv)
{
    bool quick = quick_flag(argc, argv);
    timing io, cpu;
    int failed = 0;
    double t0 = now();

    printf("cfutures %d.%d.%d - Python's threading, queue and "
           "concurrent.futures, in C.\nThis machine: %d CPUs.\n",
           CFUTURES_VERSION_MAJOR, CFUTURES_VERSION_MINOR,
           CFUTURES_VERSION_PATCH, cf_cpu_count());

    section(1, "Threads (examples/thread_join.c)",
            "Start a function on a named thread, join it, read the pointer "
            "it returned.");
    failed += run_thread_join() != 0;

    section(2, "A thread pool and its futures (examples/pool_result.c)",
            "Submit calls to a pool, read each result from its future;\n"
            "   a failed task hands back its code and message.");
    failed += run_pool_result() != 0;

    section(3, "I/O-bound work (examples/io_bound.c)",
            "Tasks that mostly wait: threads overlap the waiting.");
    failed += run_io_bound(quick, &io) != 0;

    section(4, "CPU-bound work (examples/cpu_bound.c)",
            "Tasks that compute: one thread per core computes in parallel.");
    failed += run_cpu_bound(quick, &cpu) != 0;

    section(5, "wait and as_completed (examples/wait_as_completed.c)",
            "Wait for the first future to finish, then take each one as it "
            "finishes.");
    failed += run_wait_as_completed() != 0;

    section(6, "Queues (examples/producer_consumer.c)",
            "Producer and consumer threads hand items over through a "
            "bounded FIFO queue.");
    failed += run_producer_consumer() != 0;

    printf("\n== Speedups measured on this run (threads over sequential)\n\n"
           "  %-10s %12s %12s %8s %9s\n",
           "work", "sequential", "threads", "workers", "speedup");
    speedup_row("I/O-bound", &io);
    speedup_row("CPU-bound", &cpu);
    printf("\n  I/O-bound: the threads overlap their waiting, so the speedup "
           "follows the\n  number of workers, not of cores. CPU-bound: "
           "the speedup follows the number\n  of cores (%d here). Python's "
           "threads cannot give that: the GIL lets one\n  of them run "
           "Python code at a time.\n",
           cf_cpu_count());
    printf("\nTour finished in %.2f s%s.\n", now() - t0,
           failed ? ", WITH FAILURES" : "");
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
