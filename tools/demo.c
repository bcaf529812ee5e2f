/* SPDX-License-Identifier: MIT */
/*
 * demo.c - `cfutures demo`, the guided tour: a thread started and joined,
 * a pool with submit and result (the lessons of examples/, run as they
 * are), then the two experiments that teach when to use what, timed here
 * with a progress bar while they run:
 *
 *   I/O-bound: requests that block (examples/io_bound.c's fetch), one after
 *   another, then all at once on a pool with a thread per request;
 *   CPU-bound: prime counting over ranges (examples/cpu_bound.c's
 *   count_primes), one range after another, then on a pool with a thread
 *   per CPU, and on a process pool when the library has one.
 *
 * The CPU-bound task is a bytes task (bytes in, bytes out), so the same
 * function runs on the thread pool and on the process pool: moving work
 * from threads to processes changes the one line that makes the pool.
 * The tour ends with a table of the measured times and speedups and a
 * sentence on what they mean (which says so when other processes took CPU
 * time during the CPU-bound runs, measured from /proc/stat as
 * bench/run.py does). --plot DIR draws them: the speedup chart, and the
 * timelines of the two pool runs from their traces (cf_trace_start), on
 * one time scale: many lanes of overlapping waits, few of solid work.
 */
#include "cli.h"
#include "progress.h"
#include "svg.h"
#include "trace.h"

#include "example.h" /* the lessons of examples/ */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cfutures demo [--quick] [--plot DIR]\n"
    "\n"
    "A guided tour of cfutures, measured live on this machine: a thread\n"
    "started and joined; a thread pool with submit and result; I/O-bound\n"
    "tasks run one after another and then on a thread pool; CPU-bound tasks\n"
    "run one after another and then on every core (threads, and processes\n"
    "where the library has a process pool). A progress bar shows each\n"
    "experiment on a terminal; a table of times and speedups ends the tour.\n"
    "\n"
    "Options:\n"
    "      --quick          smaller workloads: the tour takes a few seconds\n"
    "      --plot DIR       also draw the lesson into DIR (made if need be):\n"
    "                       speedup.svg, the times as bar charts on one\n"
    "                       scale, and timelines.svg, what the pool threads\n"
    "                       did in each experiment (from the traces io.json\n"
    "                       and cpu.json, written there too); a FILE.svg\n"
    "                       instead of DIR writes the bar chart only\n"
    "  -h, --help           print this help\n";

enum { MAX_REQUESTS = 40, N_RANGES = 24, MAX_ROWS = 6 };

/* One measured way of doing one kind of work. */
typedef struct row {
    const char *work; /* "I/O-bound", "CPU-bound" */
    char how[48];
    int workers;
    double seconds;
    double baseline; /* the sequential time of the same work */
    double other;    /* share of the CPUs other processes used; -1 unknown */
} row;

typedef struct tour {
    bool quick;
    int cpu_runs; /* each CPU-bound time is the best of these */
    const char *plot;
    bool plot_dir;       /* plot names a directory, not FILE.svg */
    char io_trace[4096]; /* the traces the timelines are drawn from */
    char cpu_trace[4096];
    bool trace_cpu; /* trace the next CPU-bound thread-pool run */
    bool io_traced, cpu_traced;
    double last_other; /* other processes' CPU share in the last run */
    progress bar;
    row rows[MAX_ROWS];
    int n_rows;
    int failures;
    /* What the two experiments did, for the titles. */
    size_t n_requests;
    double request_s;
    uint64_t prime_limit;
} tour;

/* ---- reporting */

/* Records a measurement and prints it as a line of the experiment. */
static void add_row(tour *t, const char *work, const char *how, int workers,
                    double seconds, double baseline)
{
    row *r = &t->rows[t->n_rows++];
    r->work = work;
    snprintf(r->how, sizeof r->how, "%s", how);
    r->workers = workers;
    r->seconds = seconds;
    r->baseline = baseline;
    r->other = -1;
    printf("  %-26s %7.3f s", how, seconds);
    if (workers > 1 && seconds <= baseline)
        printf("   %.2fx faster", baseline / seconds);
    else if (workers > 1)
        printf("   %.2fx slower", seconds / baseline);
    printf("\n");
    fflush(stdout);
}

static void section(int n, const char *title, const char *what)
{
    printf("\n== %d. %s\n   %s\n\n", n, title, what);
    fflush(stdout);
}

/* Any failure of a call the tour makes: counted, shown, the tour goes on. */
static bool ok(tour *t, int rc, const char *what)
{
    if (rc >= 0)
        return true;
    fprintf(stderr, "  %s failed: %s\n", what, cf_strerror(rc));
    t->failures++;
    return false;
}

/* ---- waiting with a progress bar */

/* Waits for every future, advancing the bar as each finishes (in
 * completion order); returns the first failure, or 0. */
static int wait_all(tour *t, cf_future **fs, size_t n, const char *note)
{
    cf_as_completed *it;
    int rc = cf_as_completed_new(&it, fs, n, CF_FOREVER);
    if (rc != 0)
        return rc;
    cf_future *f;
    size_t done = 0;
    int first = 0;
    progress_start(&t->bar, STDERR_FILENO, t->bar.on, note, n);
    while ((rc = cf_as_completed_next(it, &f)) == 0) {
        int r = cf_future_exception(f, 0, NULL);
        if (r != 0 && first == 0)
            first = r;
        progress_update(&t->bar, ++done, 0, NULL);
    }
    progress_end(&t->bar);
    cf_as_completed_free(it);
    return first ? first : rc == CF_EOF ? 0 : rc;
}

static void release_all(cf_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cf_future_release(fs[i]);
}

/* ---- the I/O-bound experiment */

static double io_sequential(tour *t, request *reqs, size_t n)
{
    double t0 = cli_now();
    progress_start(&t->bar, STDERR_FILENO, t->bar.on, "sequential", n);
    for (size_t i = 0; i < n; i++) {
        fetch(&reqs[i]);
        progress_update(&t->bar, i + 1, 0, NULL);
    }
    progress_end(&t->bar);
    return cli_now() - t0;
}

/* Traces what runs until trace_end into path (for --plot DIR): true if
 * it could start (one trace at a time: CFUTURES_TRACE may hold it). */
static bool trace_begin(tour *t, const char *path)
{
    if (!t->plot_dir)
        return false;
    int rc = cf_trace_start(path);
    if (rc != 0)
        fprintf(stderr, "  no trace for the timeline (%s): %s\n", path,
                cf_strerror(rc));
    return rc == 0;
}

static bool trace_end(tour *t, bool began)
{
    return began && ok(t, cf_trace_stop(), "cf_trace_stop");
}

static double io_pool(tour *t, request *reqs, size_t n)
{
    bool traced = trace_begin(t, t->io_trace);
    double t0 = cli_now();
    cf_options opts = { .max_workers = (int)n, .name_prefix = "io" };
    cf_executor *pool = cf_thread_pool_new(&opts);
    if (pool == NULL) {
        ok(t, CF_ENOMEM, "cf_thread_pool_new");
        return -1;
    }
    cf_future *fs[MAX_REQUESTS];
    size_t submitted = 0;
    while (submitted < n &&
           ok(t, cf_submit(pool, fetch, &reqs[submitted], &fs[submitted]),
              "cf_submit"))
        submitted++;
    ok(t, wait_all(t, fs, submitted, "thread pool"), "a request");
    release_all(fs, submitted);
    cf_executor_free(pool);
    double s = cli_now() - t0;
    t->io_traced = trace_end(t, traced);
    return s;
}

static void io_experiment(tour *t)
{
    size_t n = t->quick ? 20 : MAX_REQUESTS;
    double wait_s = t->quick ? 0.025 : 0.05;
    request reqs[MAX_REQUESTS];
    for (size_t i = 0; i < n; i++)
        reqs[i] = (request){ .id = (int)i, .seconds = wait_s };
    t->n_requests = n;
    t->request_s = wait_s;
    section(3, "I/O-bound work (examples/io_bound.c)",
            "Requests that each block (a socket, a disk, a database): one "
            "after another,\n   then on a pool of one thread per request, "
            "where the waits overlap.");
    printf("  %zu requests of %.0f ms each\n", n, wait_s * 1e3);
    double seq = io_sequential(t, reqs, n);
    add_row(t, "I/O-bound", "sequential", 1, seq, seq);
    double par = io_pool(t, reqs, n);
    if (par < 0)
        return;
    char how[48];
    snprintf(how, sizeof how, "thread pool, %zu threads", n);
    add_row(t, "I/O-bound", how, (int)n, par, seq);
}

/* ---- the CPU-bound experiment */

/* count_primes as a bytes task: a range in, a count out. Bytes tasks run
 * on every executor kind, thread pools and process pools alike. (Not
 * static: the trace names it with dladdr.) */
int count_primes_bytes(const void *in, size_t len, cf_buffer *out);
int count_primes_bytes(const void *in, size_t len, cf_buffer *out)
{
    range r;
    if (len != sizeof r) {
        cf_fail(CF_EINVAL, "want a range of %zu bytes, got %zu", sizeof r, len);
        return CF_EINVAL;
    }
    memcpy(&r, in, sizeof r);
    uint64_t count = (uintptr_t)count_primes(&r);
    return cf_buffer_append(out, &count, sizeof count);
}

/* The ways the CPU-bound work is run. */
typedef enum way { SEQUENTIAL, THREADS, PROCESSES } way;

static const char *const way_names[] = { "sequential", "thread pool",
                                         "process pool" };

static double cpu_sequential(tour *t, range *ranges, const char *note,
                             uint64_t *total)
{
    double t0 = cli_now();
    *total = 0;
    progress_start(&t->bar, STDERR_FILENO, t->bar.on, note, N_RANGES);
    for (size_t i = 0; i < N_RANGES; i++) {
        *total += (uintptr_t)count_primes(&ranges[i]);
        progress_update(&t->bar, i + 1, 0, NULL);
    }
    progress_end(&t->bar);
    return cli_now() - t0;
}

/* Sums the counts of the done futures; false when one has none. */
static bool sum_counts(cf_future **fs, size_t n, uint64_t *total)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        const void *data;
        size_t len;
        uint64_t count;
        if (cf_future_bytes(fs[i], 0, &data, &len) != 0 || len != sizeof count)
            return false;
        memcpy(&count, data, sizeof count);
        *total += count;
    }
    return true;
}

/* The same bytes task on either kind of pool: only the constructor
 * differs. NULL when this build has no process pool. */
static cf_executor *make_pool(way w, int workers)
{
    cf_options opts = { .max_workers = workers, .name_prefix = "cpu" };
    if (w == THREADS)
        return cf_thread_pool_new(&opts);
#ifdef CF_HAVE_PROCESS_POOL
    return cf_process_pool_new(&opts);
#else
    errno = ENOSYS;
    return NULL;
#endif
}

/* CPU seconds the machine has been busy (every process, and time stolen by
 * a hypervisor: all of /proc/stat's first line but idle and iowait), and
 * this process's own (its reaped children's included). */
static void cpu_clocks(double *machine, double *own)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL ||
        fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
        *machine = -1;
    else
        *machine = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
                   (double)sysconf(_SC_CLK_TCK);
    if (f != NULL)
        fclose(f);
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    *own = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec +
                    kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
           (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec +
                    kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) *
               1e-6;
}

/* The share of all CPUs that other processes used over wall seconds, as
 * bench/run.py measures it; -1 when unknown or the run was too short for
 * /proc/stat's clock ticks. */
static double other_share(double m0, double o0, double m1, double o1,
                          double wall)
{
    if (m0 < 0 || m1 < 0 || wall < 0.2)
        return -1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double share =
        ((m1 - m0) - (o1 - o0)) / wall / (double)(ncpu > 0 ? ncpu : 1);
    return share < 0 ? 0 : share > 1 ? 1 : share;
}

/* Makes the pool, runs the ranges on it, frees it: the time (pool start
 * included), or -1 on a failure. */
static double cpu_pool(tour *t, way w, int workers, range *ranges,
                       const char *note, uint64_t *total)
{
    bool traced = w == THREADS && t->trace_cpu && trace_begin(t, t->cpu_trace);
    if (w == THREADS)
        t->trace_cpu = false;
    double m0, o0, m1, o1;
    cpu_clocks(&m0, &o0);
    double t0 = cli_now();
    cf_executor *pool = make_pool(w, workers);
    if (pool == NULL) {
        fprintf(stderr, "  %s: %s\n", way_names[w], strerror(errno));
        t->failures++;
        return -1;
    }
    cf_future *fs[N_RANGES];
    size_t submitted = 0;
    while (submitted < N_RANGES &&
           ok(t,
              cf_submit_bytes(pool, count_primes_bytes, &ranges[submitted],
                              sizeof(range), &fs[submitted]),
              "cf_submit_bytes"))
        submitted++;
    bool good = ok(t, wait_all(t, fs, submitted, note), "a range") &&
                submitted == N_RANGES && sum_counts(fs, submitted, total);
    release_all(fs, submitted);
    cf_executor_free(pool);
    double s = cli_now() - t0;
    cpu_clocks(&m1, &o1);
    t->last_other = other_share(m0, o0, m1, o1, s);
    if (traced)
        t->cpu_traced = trace_end(t, traced);
    return good ? s : -1;
}

/* The best of t->cpu_runs runs (machines are noisy), and the prime count:
 * -1 on a failure, or when a pool counted differently. */
static double cpu_best(tour *t, way w, int workers, range *ranges,
                       uint64_t *total)
{
    double best = -1, other = -1;
    for (int run = 1; run <= t->cpu_runs; run++) {
        char note[48];
        snprintf(note, sizeof note, "%s, run %d/%d", way_names[w], run,
                 t->cpu_runs);
        uint64_t count = 0;
        double s = w == SEQUENTIAL
                       ? cpu_sequential(t, ranges, note, &count)
                       : cpu_pool(t, w, workers, ranges, note, &count);
        if (s < 0)
            return -1;
        if (run > 1 && count != *total) {
            fprintf(stderr, "  %s counted %llu primes, then %llu\n",
                    way_names[w], (unsigned long long)*total,
                    (unsigned long long)count);
            t->failures++;
            return -1;
        }
        *total = count;
        if (best < 0 || s < best) {
            best = s;
            other = t->last_other;
        }
    }
    t->last_other = other; /* of the run that counts */
    return best;
}

/* Times the work on a pool of one worker per CPU and checks its count. */
static void cpu_parallel(tour *t, way w, range *ranges, uint64_t expected,
                         double seq)
{
    int ncpu = cf_cpu_count();
    uint64_t total = 0;
    t->trace_cpu = w == THREADS;
    double s = cpu_best(t, w, ncpu, ranges, &total);
    if (s < 0)
        return;
    if (total != expected) {
        fprintf(stderr, "  %s counted %llu primes, not %llu\n", way_names[w],
                (unsigned long long)total, (unsigned long long)expected);
        t->failures++;
    }
    char how[48];
    snprintf(how, sizeof how, "%s, %d %s", way_names[w], ncpu,
             w == THREADS ? "threads" : "processes");
    add_row(t, "CPU-bound", how, ncpu, s, seq);
    t->rows[t->n_rows - 1].other = t->last_other;
}

static void cpu_experiment(tour *t)
{
    uint64_t limit = t->quick ? 2000000 : 6000000;
    range ranges[N_RANGES];
    for (uint64_t i = 0; i < N_RANGES; i++)
        ranges[i] = (range){ limit * i / N_RANGES, limit * (i + 1) / N_RANGES };
    t->prime_limit = limit;
    section(4, "CPU-bound work (examples/cpu_bound.c)",
            "Counting primes in 24 ranges: one range after another, then "
            "on a pool\n   with one worker per CPU (threads, then processes "
            "where the library has\n   them); the same task function runs "
            "on both.\n   Each time is the best of two runs (one with "
            "--quick).");
    uint64_t expected = 0;
    double seq = cpu_best(t, SEQUENTIAL, 1, ranges, &expected);
    if (seq < 0)
        return;
    printf("  primes below %llu: %llu\n", (unsigned long long)limit,
           (unsigned long long)expected);
    add_row(t, "CPU-bound", "sequential", 1, seq, seq);
    cpu_parallel(t, THREADS, ranges, expected, seq);
#ifdef CF_HAVE_PROCESS_POOL
    cpu_parallel(t, PROCESSES, ranges, expected, seq);
#endif
}

/* ---- the summary */

static const row *find_row(const tour *t, const char *work, bool parallel)
{
    const row *best = NULL;
    for (int i = 0; i < t->n_rows; i++) {
        const row *r = &t->rows[i];
        if (strcmp(r->work, work) != 0 || (r->workers > 1) != parallel)
            continue;
        if (best == NULL || r->seconds < best->seconds)
            best = r;
    }
    return best;
}

static void print_table(const tour *t)
{
    printf("\n== What this run measured\n\n  %-10s %-27s %10s %9s\n", "work",
           "how", "time", "speedup");
    const char *last = "";
    for (int i = 0; i < t->n_rows; i++) {
        const row *r = &t->rows[i];
        printf("  %-10s %-27s %8.3f s %8.2fx\n",
               strcmp(r->work, last) == 0 ? "" : r->work, r->how, r->seconds,
               r->baseline / r->seconds);
        last = r->work;
    }
    const row *io = find_row(t, "I/O-bound", true);
    const row *cpu = find_row(t, "CPU-bound", true);
    if (!io || !cpu)
        return;
    double cpu_ratio = cpu->baseline / cpu->seconds;
    char cpu_ran[48];
    if (cpu_ratio >= 1)
        snprintf(cpu_ran, sizeof cpu_ran, "ran %.2fx as fast", cpu_ratio);
    else
        snprintf(cpu_ran, sizeof cpu_ran, "ran %.2fx slower", 1 / cpu_ratio);
    printf("\n  Waiting overlaps but computing does not: the I/O-bound "
           "tasks ran %.1fx faster\n  on %d threads although this machine "
           "has %d CPUs, while the CPU-bound work\n  %s",
           io->baseline / io->seconds, io->workers, cf_cpu_count(), cpu_ran);
    if (cpu->other >= 0.10)
        printf(". Computing can go at most %d times faster on %d CPUs,\n"
               "  but other processes kept %.0f%% of them busy during that "
               "run, so it cannot\n  show the full gain here: run the demo "
               "again on a quiet machine (Python's\n  threads would not go "
               "faster at all: its GIL runs one thread's Python code\n  at "
               "a time).\n",
               cf_cpu_count(), cf_cpu_count(), 100 * cpu->other);
    else
        printf(", since computing can go at most %d times faster on %d\n  "
               "CPUs, and that only while nothing else keeps them busy "
               "(Python's threads\n  would not go faster at all: its GIL runs "
               "one thread's Python code at a time).\n",
               cf_cpu_count(), cf_cpu_count());
}

/* The bar chart: a panel per kind of work, on one scale. */
static bool write_chart(tour *t, const char *path)
{
    svg_bar bars[MAX_ROWS];
    char texts[MAX_ROWS][48];
    svg_panel panels[2];
    const char *works[2] = { "I/O-bound", "CPU-bound" };
    char titles[2][96];
    snprintf(titles[0], sizeof titles[0],
             "I/O-bound: %zu requests blocking %.0f ms each", t->n_requests,
             t->request_s * 1e3);
    snprintf(titles[1], sizeof titles[1],
             "CPU-bound: primes below %llu in %d ranges",
             (unsigned long long)t->prime_limit, N_RANGES);
    size_t nb = 0, np = 0;
    for (int w = 0; w < 2; w++) {
        size_t first = nb;
        for (int i = 0; i < t->n_rows; i++) {
            const row *r = &t->rows[i];
            if (strcmp(r->work, works[w]) != 0)
                continue;
            double ratio = r->baseline / r->seconds;
            if (r->workers <= 1)
                snprintf(texts[nb], sizeof texts[nb], "%.3f s", r->seconds);
            else if (ratio >= 1)
                snprintf(texts[nb], sizeof texts[nb], "%.3f s, %.2fx faster",
                         r->seconds, ratio);
            else
                snprintf(texts[nb], sizeof texts[nb], "%.3f s, %.2fx slower",
                         r->seconds, 1 / ratio);
            bars[nb] =
                (svg_bar){ r->how, r->seconds, texts[nb], r->workers > 1 };
            nb++;
        }
        if (nb > first)
            panels[np++] = (svg_panel){ titles[w], bars + first, nb - first };
    }
    char subtitle[160];
    const row *cpu = find_row(t, "CPU-bound", true);
    snprintf(subtitle, sizeof subtitle,
             "cfutures demo%s on %d CPUs; shorter is faster; one time scale%s",
             t->quick ? " --quick" : "", cf_cpu_count(),
             cpu && cpu->other >= 0.10
                 ? "; other processes were busy during the CPU-bound runs"
                 : "");
    svg_chart c = {
        "cfutures demo: sequential vs parallel", subtitle, panels, np, true, "s"
    };
    if (svg_write_chart_opts(path, &c) != 0) {
        cli_error("demo", "cannot write '%s': %s", path, strerror(errno));
        t->failures++;
        return false;
    }
    return true;
}

/* The timelines of the two pool runs, on one time scale. */
static bool write_timelines(tour *t, const char *path)
{
    const char *files[2] = { t->io_trace, t->cpu_trace };
    bool have[2] = { t->io_traced, t->cpu_traced };
    tr_trace tr[2];
    svg_timeline panels[2];
    svg_legend legend[8];
    char titles[2][128], err[160];
    size_t np = 0, nl = 0;
    double seconds = 0;
    bool good = true;
    for (int k = 0; k < 2; k++) {
        if (!have[k])
            continue;
        if (trace_load(files[k], &tr[np], err, sizeof err) != 0) {
            cli_error("demo", "%s: %s", files[k], err);
            good = false;
            continue;
        }
        size_t lanes = 0;
        for (size_t i = 0; i < tr[np].n; i++)
            lanes += tr[np].lanes[i].n > 0;
        if (k == 0)
            snprintf(titles[np], sizeof titles[np],
                     "I/O-bound: %zu requests on %zu threads: the waits "
                     "overlap",
                     t->n_requests, lanes);
        else
            snprintf(titles[np], sizeof titles[np],
                     "CPU-bound: %d ranges on %zu threads (%d CPUs): each "
                     "lane computes all along",
                     N_RANGES, lanes, cf_cpu_count());
        /* The second panel's functions get colours of their own. */
        unsigned base = (unsigned)nl;
        if (trace_panel(&tr[np], titles[np], 64, base, &panels[np]) != 0) {
            trace_free(&tr[np]);
            good = false;
            continue;
        }
        nl += trace_legend(&tr[np], base, legend + nl, 4);
        if (tr[np].duration > seconds)
            seconds = tr[np].duration;
        np++;
    }
    char subtitle[160];
    snprintf(subtitle, sizeof subtitle,
             "cfutures demo%s on %d CPUs: what each pool thread did, from "
             "cf_trace_start; one time scale",
             t->quick ? " --quick" : "", cf_cpu_count());
    if (np > 0 &&
        svg_write_timelines(path, "cfutures demo: threads over time", subtitle,
                            panels, np, seconds, legend, nl) != 0) {
        cli_error("demo", "cannot write '%s': %s", path, strerror(errno));
        good = false;
    }
    for (size_t k = 0; k < np; k++) {
        trace_panel_free(&panels[k]);
        trace_free(&tr[k]);
    }
    if (!good)
        t->failures++;
    return good && np > 0;
}

/* --plot: FILE.svg is the chart alone; DIR gets the chart and timelines. */
static void write_plot(tour *t)
{
    if (!t->plot_dir) {
        if (write_chart(t, t->plot))
            printf("\nChart written to %s.\n", t->plot);
        return;
    }
    char *chart = cli_format("%s/speedup.svg", t->plot);
    char *timelines = cli_format("%s/timelines.svg", t->plot);
    if (chart && write_chart(t, chart))
        printf("\nChart written to %s.\n", chart);
    if (timelines && write_timelines(t, timelines))
        printf("Timelines written to %s (traces: %s, %s).\n", timelines,
               t->io_trace, t->cpu_trace);
    free(chart);
    free(timelines);
}

/* --plot DIR: makes DIR when need be and names the traces in it. Usage
 * errors go to the caller as an exit status; -1 when all is well. */
static int prepare_plot(tour *t)
{
    size_t len = strlen(t->plot);
    t->plot_dir = !(len >= 4 && strcmp(t->plot + len - 4, ".svg") == 0);
    if (!t->plot_dir)
        return -1;
    if (mkdir(t->plot, 0777) != 0 && errno != EEXIST) {
        cli_error("demo", "cannot make '%s': %s", t->plot, strerror(errno));
        return EXIT_FAILURE;
    }
    struct stat st;
    if (stat(t->plot, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error("demo", "'%s' is not a directory", t->plot);
        return EXIT_FAILURE;
    }
    if ((size_t)snprintf(t->io_trace, sizeof t->io_trace, "%s/io.json",
                         t->plot) >= sizeof t->io_trace ||
        (size_t)snprintf(t->cpu_trace, sizeof t->cpu_trace, "%s/cpu.json",
                         t->plot) >= sizeof t->cpu_trace)
        return cli_usage_error("demo", "--plot: the path is too long");
    return -1;
}

/* ---- the tour */

static int parse(tour *t, int argc, char **argv)
{
    static const struct option options[] = {
        { "quick", no_argument, NULL, 'q' },
        { "plot", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    optind = 1;
    while ((c = cli_getopt("demo", argc, argv, ":h", options)) != -1) {
        switch (c) {
        case 'q': t->quick = true; break;
        case 'p': t->plot = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_SUCCESS;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("demo", "unexpected argument '%s'",
                               argv[optind]);
    return t->plot ? prepare_plot(t) : -1;
}

int cmd_demo(int argc, char **argv)
{
    tour t = { 0 };
    int rc = parse(&t, argc, argv);
    if (rc >= 0)
        return rc;
    t.bar.on = progress_wanted(STDERR_FILENO, false);
    t.cpu_runs = t.quick ? 1 : 2;
    double t0 = cli_now();
    printf("cfutures %d.%d.%d - Python's threading, queue and "
           "concurrent.futures, in C.\nThis machine: %d CPUs.%s\n",
           CFUTURES_VERSION_MAJOR, CFUTURES_VERSION_MINOR,
           CFUTURES_VERSION_PATCH, cf_cpu_count(),
           t.quick ? " Quick tour: smaller workloads." : "");
    section(1, "A thread, started and joined (examples/thread_join.c)",
            "Start a function on a named thread, join it, read the pointer "
            "it returned.");
    t.failures += run_thread_join() != 0;
    section(2, "A thread pool: submit, then result (examples/pool_result.c)",
            "Submit calls to a pool, read each result from its future;\n"
            "   a failed task hands back its code and message.");
    t.failures += run_pool_result() != 0;
    io_experiment(&t);
    cpu_experiment(&t);
    print_table(&t);
    if (t.plot)
        write_plot(&t);
    printf("\nTour finished in %.2f s%s.\n", cli_now() - t0,
           t.failures ? ", WITH FAILURES" : "");
    return t.failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
