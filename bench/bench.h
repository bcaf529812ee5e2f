/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what every benchmark program shares: the clock, arguments,
 * RESULT lines, memory readings and the CPU-bound work of B3.
 *
 * Every program prints its measurements as one line each, for
 * bench/run.py to parse:
 *   RESULT bench=B2 impl=tbb-invoke workers=2 metric=time_s value=0.512
 * Arguments are key=value words (workers=2 n=32); a missing key takes the
 * program's default. Header-only and C/C++ compatible, so the C++ peer
 * (oneTBB) shares it.
 */
#ifndef CF_BENCH_H
#define CF_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Monotonic time in nanoseconds. */
static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The value of key=value among argv[1..], or def when absent. */
static inline long bench_arg(int argc, char **argv, const char *key, long def)
{
    size_t len = strlen(key);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], key, len) == 0 && argv[i][len] == '=')
            return strtol(argv[i] + len + 1, NULL, 10);
    }
    return def;
}

/* The string value of key=value, or def. */
static inline const char *bench_arg_str(int argc, char **argv, const char *key,
                                        const char *def)
{
    size_t len = strlen(key);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], key, len) == 0 && argv[i][len] == '=')
            return argv[i] + len + 1;
    }
    return def;
}

/* The number of CPUs this process may use. */
static inline int bench_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* One measurement line for the runner. */
static inline void bench_result(const char *bench, const char *impl,
                                long workers, const char *metric, double value)
{
    printf("RESULT bench=%s impl=%s workers=%ld metric=%s value=%.9g\n", bench,
           impl, workers, metric, value);
    fflush(stdout);
}

/* Ends the program with a message when a call failed. */
static inline void bench_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench: %s failed\n", what);
        exit(1);
    }
}

/* Writes every page of p[0..n) so that its page faults happen now, not in
 * a timed section: a plain memset(0) after malloc may become calloc, which
 * touches nothing. */
static inline void bench_touch(void *p, size_t n)
{
    volatile char *c = (volatile char *)p;
    for (size_t i = 0; i < n; i += 4096)
        c[i] = 0;
}

/* A field of /proc/self/status in bytes ("VmRSS", "VmHWM"), or -1. */
static inline long long bench_status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    size_t len = strlen(field);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kb = strtoll(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* B3's item: about 1 ms of dependent integer arithmetic on this class of
 * machine (BENCH_WORK_ITERS steps of a 64-bit LCG with a xorshift). Not
 * inlined, so the sequential loop cannot interleave items and every
 * implementation runs the same code for an item. */
#ifndef BENCH_WORK_ITERS
#define BENCH_WORK_ITERS 600000
#endif
__attribute__((noinline, unused)) static uint64_t bench_work(uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (long i = 0; i < BENCH_WORK_ITERS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        x ^= x >> 29;
    }
    return x;
}

/* Folds B3's results so that no item's work can be dropped. */
static inline uint64_t bench_fold(const uint64_t *v, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s ^= v[i] + i;
    return s;
}

#endif /* CF_BENCH_H */
