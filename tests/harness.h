/* SPDX-License-Identifier: MIT */
/*
 * harness.h - the test runner. Each case runs in its own forked child with a
 * timeout (alarm), so a hang or a crash fails one case, not the file. A
 * child that exits normally is also leak-checked by LeakSanitizer in the
 * sanitizer builds. Run one case with `./test_x NAME`; CF_TEST_NOFORK=1 runs
 * cases in-process (for gdb). CF_TEST_TIME_SCALE multiplies the timeouts.
 *
 * Also here: a failing allocator for the CF_ENOMEM paths (oom_*), and small
 * timing helpers. Timing checks have generous bounds and never measure speed.
 */
#ifndef CF_TEST_HARNESS_H
#define CF_TEST_HARNESS_H

#include <cfutures.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Which sanitizer the test is built with (gcc says __SANITIZE_THREAD__ and
 * __SANITIZE_ADDRESS__, clang __has_feature): 1 or 0. */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

typedef struct test_case {
    const char *name;
    void (*fn)(void);
    bool slow; /* runs in its own ctest entry (NAME_slow), beside the rest */
} test_case;

#define TEST_CASE(fn)                                                          \
    {                                                                          \
#fn, fn, false                                                         \
    }
/* A case that mostly waits (a 10 s limit, say): CMakeLists.txt registers a
 * file with such cases twice, as NAME (--fast: the others) and NAME_slow
 * (--slow: these), so that ctest -j runs them beside the rest. */
#define TEST_CASE_SLOW(fn)                                                     \
    {                                                                          \
#fn, fn, true                                                          \
    }

static inline double test_scale(void)
{
    const char *s = getenv("CF_TEST_TIME_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                  \
        if (va_ != vb_) {                                                      \
            fprintf(stderr,                                                    \
                    "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n",        \
                    __FILE__, __LINE__, #a, va_, #b, vb_);                     \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Checks that an expression took between lo and hi seconds (hi scaled). */
#define CHECK_TIME(expr, lo, hi)                                               \
    do {                                                                       \
        double t0_ = now_s();                                                  \
        expr;                                                                  \
        double dt_ = now_s() - t0_;                                            \
        if (dt_ < (lo) || dt_ > (hi)*test_scale()) {                           \
            fprintf(stderr, "%s:%d: %s took %.3fs, not in [%g, %g]\n",         \
                    __FILE__, __LINE__, #expr, dt_, (double)(lo),              \
                    (double)(hi)*test_scale());                                \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Polls cond every millisecond for up to secs seconds (scaled). */
#define WAIT_UNTIL(cond, secs)                                                 \
    do {                                                                       \
        double end_ = now_s() + (secs)*test_scale();                           \
        while (!(cond) && now_s() < end_)                                      \
            sleep_s(0.001);                                                    \
    } while (0)

/* A gate that tasks block on for real (no helping) until a test opens it. */
typedef struct gate {
    pthread_mutex_t mu;
    int open;
} gate;
#define GATE_INIT                                                              \
    {                                                                          \
        PTHREAD_MUTEX_INITIALIZER, 0                                           \
    }

static inline void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_mutex_unlock(&g->mu);
}

/* Waits up to 20 s (scaled) for the gate; fails the case if it never opens. */
static inline void gate_wait(gate *g)
{
    double end = now_s() + 20.0 * test_scale();
    pthread_mutex_lock(&g->mu);
    while (!g->open) {
        pthread_mutex_unlock(&g->mu);
        CHECK(now_s() < end);
        sleep_s(0.001);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

/* ---- worker processes -------------------------------------------------- */

/* No child process is left, not even a zombie: every worker was reaped. */
static inline void no_children_left(void)
{
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* The descriptors this process has open (plus the one reading them). */
static inline int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Sanitizer runtimes turn a deadly signal into a report and exit(1); the
 * crash cases want the signal itself, so spawned workers are told to leave
 * SIGSEGV and SIGABRT alone. (No effect in plain builds.) */
static inline void let_workers_die_by_signal(void)
{
    const char *vars[] = { "ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS" };
    for (size_t i = 0; i < 3; i++) {
        const char *old = getenv(vars[i]);
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%shandle_segv=0:handle_abort=0",
                 old ? old : "", old && old[0] ? ":" : "");
        setenv(vars[i], buf, 1);
    }
}

/* Maps size bytes of the file at path, shared (with O_CREAT in flags:
 * made, or emptied with O_TRUNC, and sized): the mapping, or NULL. For logs
 * that worker processes write and the test reads. */
static inline void *test_shm_map(const char *path, int flags, size_t size)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | flags, 0600);
    if (fd < 0)
        return NULL;
    if ((flags & O_CREAT) && ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        return NULL;
    }
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

/* ---- bytes tasks of one int64 (process and remote pools) ---------------- */

/* Submits fn over the 8 bytes of x; the future (the submit must succeed). */
static inline cf_future *submit_i64(cf_executor *ex, cf_bytes_fn fn, int64_t x)
{
    cf_future *f = NULL;
    CHECK_EQ(cf_submit_bytes(ex, fn, &x, sizeof x, &f), 0);
    return f;
}

/* The int64 that f's result starts with; f must succeed within 30 s
 * (scaled). */
static inline int64_t i64_of(cf_future *f)
{
    const void *data;
    size_t len;
    int rc = cf_future_bytes(f, 30.0 * test_scale(), &data, &len);
    if (rc) {
        const char *msg = NULL;
        cf_future_exception(f, 0, &msg);
        fprintf(stderr, "task failed: %s: %s\n", cf_strerror(rc),
                msg ? msg : "(no message)");
    }
    CHECK_EQ(rc, 0);
    CHECK(len >= sizeof(int64_t));
    int64_t v;
    memcpy(&v, data, sizeof v);
    return v;
}

/* Submits fn(i) for i in [0, n) and checks each result is i * i: the pool
 * works (fn squares an int64). */
static inline void check_squares(cf_executor *ex, cf_bytes_fn fn, int n)
{
    cf_future **fs = calloc((size_t)n, sizeof *fs);
    CHECK(fs != NULL);
    for (int i = 0; i < n; i++)
        fs[i] = submit_i64(ex, fn, i);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        cf_future_release(fs[i]);
    }
    free(fs);
}

/* ---- the failing allocator ------------------------------------------- */

static atomic_long oom_countdown = -1; /* allocations left before failing */
static atomic_long oom_live;           /* allocations not yet freed */
static atomic_long oom_failures;

static inline bool oom_should_fail(void)
{
    long left = atomic_load(&oom_countdown);
    while (left >= 0) {
        if (atomic_compare_exchange_weak(&oom_countdown, &left, left - 1)) {
            if (left == 0) {
                atomic_fetch_add(&oom_failures, 1);
                return true;
            }
            return false;
        }
    }
    return false;
}

/* Each block carries a 16-byte header so oom_live counts what is live. */
static inline void *oom_malloc(size_t n)
{
    if (oom_should_fail())
        return NULL;
    char *p = malloc(n + 16);
    if (!p)
        return NULL;
    atomic_fetch_add(&oom_live, 1);
    memcpy(p, &n, sizeof n);
    return p + 16;
}
static inline void oom_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub(&oom_live, 1);
    free((char *)p - 16);
}
static inline void *oom_calloc(size_t c, size_t n)
{
    if (n && c > (size_t)-1 / n - 32)
        return NULL;
    void *p = oom_malloc(c * n);
    if (p)
        memset(p, 0, c * n);
    return p;
}
static inline void *oom_realloc(void *old, size_t n)
{
    if (!old)
        return oom_malloc(n);
    if (oom_should_fail())
        return NULL;
    size_t was;
    memcpy(&was, (char *)old - 16, sizeof was);
    char *p = realloc((char *)old - 16, n + 16);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    return p + 16;
}

/* Installs the counting allocator (call first thing in a test). */
static inline void oom_install(void)
{
    cf_replace_allocator(oom_malloc, oom_realloc, oom_calloc, oom_free);
}

/* Makes allocation number k from now fail (0 = the next one); -1 never. */
static inline void oom_fail_at(long k)
{
    atomic_store(&oom_failures, 0);
    atomic_store(&oom_countdown, k);
}

static inline long oom_live_count(void)
{
    return atomic_load(&oom_live);
}

/*
 * Drives an operation through every allocation failure: for k = 0, 1, ...
 * fails allocation k during op(ctx); op returns CF_ENOMEM when it failed (and
 * must have freed everything it made and left objects usable) or 0 when it
 * succeeded. Stops at the first k where no allocation failed; returns how many
 * failure points were tried. undo(ctx) frees what a successful op made.
 */
static inline int oom_sweep(int (*op)(void *ctx), void (*undo)(void *ctx),
                            void *ctx)
{
    for (long k = 0; k < 10000; k++) {
        long live = oom_live_count();
        oom_fail_at(k);
        int rc = op(ctx);
        long failed = atomic_load(&oom_failures);
        oom_fail_at(-1);
        if (failed == 0) {
            CHECK_EQ(rc, 0);
            if (undo)
                undo(ctx);
            return (int)k;
        }
        if (rc == 0) {
            /* The failure was absorbed (e.g. an optional cache). */
            if (undo)
                undo(ctx);
        } else {
            if (rc != CF_ENOMEM) {
                fprintf(stderr,
                        "oom_sweep: failing allocation %ld gave %d (%s)\n", k,
                        rc, cf_strerror(rc));
                exit(1);
            }
            if (oom_live_count() != live) {
                fprintf(stderr,
                        "oom_sweep: failing allocation %ld leaked %ld\n", k,
                        oom_live_count() - live);
                exit(1);
            }
        }
    }
    fprintf(stderr, "oom_sweep: did not converge\n");
    exit(1);
}

/* ---- the runner --------------------------------------------------------- */

static inline int test_run_case(const test_case *c, double timeout)
{
    if (getenv("CF_TEST_NOFORK")) {
        c->fn();
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm((unsigned)ceil(timeout));
        c->fn();
        fflush(NULL);
        exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "  %s: killed by signal %d (%s)%s\n", c->name,
                WTERMSIG(status), strsignal(WTERMSIG(status)),
                WTERMSIG(status) == SIGALRM ? " - timed out" : "");
    else
        fprintf(stderr, "  %s: exit status %d\n", c->name, WEXITSTATUS(status));
    return 1;
}

static inline int test_main(const test_case *cases, size_t n, int argc,
                            char **argv)
{
    double timeout = 60.0 * test_scale();
    int failed = 0, ran = 0;
    double t0 = now_s();
    /* --slow / --fast: only the cases marked slow / the others; else
     * the cases named, or all. */
    int only = argc > 1 && strcmp(argv[1], "--slow") == 0   ? 1
               : argc > 1 && strcmp(argv[1], "--fast") == 0 ? 0
                                                            : -1;
    for (size_t i = 0; i < n; i++) {
        if (only >= 0) {
            if (cases[i].slow != (only == 1))
                continue;
        } else if (argc > 1) {
            bool wanted = false;
            for (int a = 1; a < argc; a++)
                wanted |= strcmp(argv[a], cases[i].name) == 0;
            if (!wanted)
                continue;
        }
        double c0 = now_s();
        int bad = test_run_case(&cases[i], timeout);
        printf("%s %s (%.2fs)\n", bad ? "FAIL" : "ok  ", cases[i].name,
               now_s() - c0);
        fflush(stdout);
        failed += bad;
        ran++;
    }
    printf("%d of %d cases passed in %.2fs\n", ran - failed, ran, now_s() - t0);
    if (ran == 0)
        fprintf(stderr, "no case matched the arguments\n");
    return failed || ran == 0 ? 1 : 0;
}

#define TEST_MAIN(cases)                                                       \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        return test_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv); \
    }

#endif /* CF_TEST_HARNESS_H */
