/* SPDX-License-Identifier: MIT */
/*
 * test_process_pool.c - the process-pool executor: bytes results and
 * failures crossing the process boundary; crashes (SIGSEGV, abort, _exit,
 * an outside SIGKILL) that fail only their own task; task_timeout; the
 * initializer; max_tasks_per_child; cancel and shutdown; no process, zombie
 * or descriptor left behind; a multi-threaded parent; the fork start
 * method; 32 MB payloads; corrupt and truncated frames; the bytes map.
 *
 * This binary is also the worker image: a spawned worker is this program
 * started again, and the library's constructor serves the pool before the
 * harness's main would run.
 */
#include "harness.h"
#include "proc/wire.h"    /* cf__pp_state: a scribbled state page */
#include "remote/codec.h" /* cf__frame_set: forged answers */

#include <dirent.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* ---- helpers ----------------------------------------------------------- */

static cf_executor *pool(int workers)
{
    cf_options o = { .max_workers = workers };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

/* Waits for f to fail; checks the code and that the message contains
 * `needle` (any of the '|'-separated alternatives). */
static void check_fails(cf_future *f, int code, const char *needle)
{
    const char *msg = NULL;
    int rc = cf_future_exception(f, 30.0 * test_scale(), &msg);
    if (rc != code)
        fprintf(stderr, "expected %s, got %s: %s\n", cf_strerror(code),
                cf_strerror(rc), msg ? msg : "(no message)");
    CHECK_EQ(rc, code);
    CHECK(msg != NULL);
    char alts[256];
    snprintf(alts, sizeof alts, "%s", needle);
    bool found = false;
    for (char *save, *a = strtok_r(alts, "|", &save); a;
         a = strtok_r(NULL, "|", &save))
        found |= strstr(msg, a) != NULL;
    if (!found)
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, needle);
    CHECK(found);
}

/* ---- tasks (they run in worker processes) ------------------------------ */

static int64_t in_i64(const void *in, size_t len)
{
    int64_t x = 0;
    if (len == sizeof x)
        memcpy(&x, in, sizeof x);
    return x;
}

static int out_i64(cf_buffer *out, int64_t v)
{
    return cf_buffer_append(out, &v, sizeof v);
}

static int t_square(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = in_i64(in, len);
    return out_i64(out, x * x);
}

static int t_pid(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    return out_i64(out, getpid());
}

static int t_ppid(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    return out_i64(out, getppid());
}

static int t_fail(const void *in, size_t len, cf_buffer *out)
{
    cf_buffer_append(out, "partial", 7); /* dropped: the task fails */
    return cf_fail(CF_EINVAL, "bad input %lld", (long long)in_i64(in, len)),
           CF_EINVAL;
}

static int t_fail_plain(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    return CF_EOVERFLOW; /* no cf_fail: the message is cf_strerror's */
}

/* Sleeps x milliseconds, returns the pid. */
static int t_sleep_ms(const void *in, size_t len, cf_buffer *out)
{
    sleep_s((double)in_i64(in, len) / 1000.0);
    return out_i64(out, getpid());
}

/* x == -1 segfaults, -2 aborts, -3 exits with 3; else squares. */
static int t_maybe_crash(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = in_i64(in, len);
    if (x == -1)
        raise(SIGSEGV);
    if (x == -2)
        abort();
    if (x == -3)
        _exit(3);
    return out_i64(out, x * x);
}

/* Writes stray bytes onto the pool's socket (fd 3), then goes on. */
static int t_corrupt(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    unsigned char junk[64];
    memset(junk, 0xAB, sizeof junk);
    if (write(3, junk, sizeof junk) != (ssize_t)sizeof junk)
        return CF_EINVAL;
    sleep_s(5.0); /* keeps running: the pool must not wait for it */
    return out_i64(out, 1);
}

/* Leaves a child that holds the pool's socket open, then crashes: the pool
 * must notice the worker died without waiting for EOF. */
static int t_crash_leaving_child(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    pid_t pid = fork();
    if (pid == 0) {
        sleep_s(3.0);
        _exit(0);
    }
    raise(SIGSEGV);
    return 0;
}

/* Leaves a child that holds the pool's socket open for as long as the
 * pool's process lives (20 s at most), then crashes. */
static int t_crash_leaving_lasting_child(const void *in, size_t len,
                                         cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    pid_t owner = getppid();
    if (fork() == 0) {
        close(1); /* the test's output is not held up */
        close(2);
        for (int i = 0; i < 2000 && kill(owner, 0) == 0; i++)
            sleep_s(0.01);
        _exit(0);
    }
    raise(SIGSEGV);
    return 0;
}

/* Writes the first bytes of a plausible header, then exits. */
static int t_truncated(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    const unsigned char start[12] = { 'C', 'F', 'P', 'P', 1, 0, 5, 0 };
    if (write(3, start, sizeof start) != (ssize_t)sizeof start)
        return CF_EINVAL;
    _exit(0);
}

/* Writes the first three bytes of a frame's magic, then returns: its
 * answer, behind them, reads as a corrupt frame, found while the worker
 * may have started the next task. */
static int t_corrupt_answer(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    if (write(3, "CFP", 3) != 3)
        return CF_EINVAL;
    return out_i64(out, 1);
}

/* This worker's state page (proc/wire.h): the one memfd named cf-worker
 * a spawned worker maps; NULL if none. */
static cf__pp_state *own_state(void)
{
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo = 0;
    while (m && !lo && fgets(line, sizeof line, m))
        if (strstr(line, "cf-worker") && sscanf(line, "%lx", &lo) != 1)
            lo = 0;
    if (m)
        fclose(m);
    return (cf__pp_state *)lo;
}

/* The id of the task this worker runs. */
static uint64_t own_task_id(void)
{
    cf__pp_state *st = own_state();
    return st ? atomic_load(&st->running) : 0;
}

/* Writes onto the pool's socket a valid header of a RESULT of len bytes
 * for the task running here, then body (n bytes). */
static bool forge_result(uint64_t len, const void *body, size_t n)
{
    cf__frame h;
    cf__frame_set(&h, CF__FR_RESULT, own_task_id(), len, 0);
    return write(3, &h, sizeof h) == (ssize_t)sizeof h &&
           write(3, body, n) == (ssize_t)n;
}

/* Answers for itself with -1 at once, then runs on (it must be killed). */
static int t_forged_answer(const void *in, size_t len, cf_buffer *out)
{
    int64_t v = -1;
    if (!forge_result(sizeof v, &v, sizeof v))
        return CF_EINVAL;
    sleep_s(60.0);
    return t_square(in, len, out);
}

/* Answers for itself with -1, then returns at once: the worker's own
 * answer follows, a second answer to the same task. */
static int t_forged_then_returns(const void *in, size_t len, cf_buffer *out)
{
    int64_t v = -1;
    if (!forge_result(sizeof v, &v, sizeof v))
        return CF_EINVAL;
    return t_square(in, len, out);
}

/* Announces a result of CF__MAX_PAYLOAD (1 TiB) for itself, sends 3 MiB of
 * it, then dies. */
static int t_huge_length(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    static unsigned char zeros[3u << 20];
    if (!forge_result(CF__MAX_PAYLOAD, zeros, sizeof zeros))
        return CF_EINVAL;
    raise(SIGSEGV);
    return 0;
}

/* Sets the start time on its worker's state page far into the future, and
 * hangs. */
static int t_scribble_start(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    cf__pp_state *st = own_state();
    if (!st)
        return CF_EINVAL;
    atomic_store(&st->started_ns, INT64_MAX / 2);
    sleep_s(60.0);
    return 0;
}

/* Announces a result of 1 MiB for itself, then returns: its real answer
 * and those of the tasks behind it read as that result's first bytes. */
static int t_lying_length(const void *in, size_t len, cf_buffer *out)
{
    if (!forge_result(1u << 20, NULL, 0))
        return CF_EINVAL;
    return t_square(in, len, out);
}

static uint64_t fnv64(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Returns the input's checksum, then the input with every byte + 1. */
static int t_big(const void *in, size_t len, cf_buffer *out)
{
    uint64_t h = fnv64(in, len);
    int rc = cf_buffer_reserve(out, sizeof h + len);
    if (rc)
        return rc;
    cf_buffer_append(out, &h, sizeof h);
    const unsigned char *p = in;
    unsigned char blk[4096];
    for (size_t i = 0; i < len; i += sizeof blk) {
        size_t n = len - i < sizeof blk ? len - i : sizeof blk;
        for (size_t k = 0; k < n; k++)
            blk[k] = (unsigned char)(p[i + k] + 1);
        cf_buffer_append(out, blk, n);
    }
    return 0;
}

/* Counts words and letters of a text: the same code on every engine. */
static int t_wordstats(const void *in, size_t len, cf_buffer *out)
{
    const char *s = in;
    int64_t words = 0, letters[26] = { 0 };
    bool inword = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alpha) {
            letters[(c | 0x20) - 'a']++;
            if (!inword)
                words++;
        }
        inword = alpha;
    }
    if (words == 0)
        return cf_fail(CF_EINVAL, "no words in %zu bytes", len), CF_EINVAL;
    int rc = out_i64(out, words);
    return rc ? rc : cf_buffer_append(out, letters, sizeof letters);
}

/* Returns its input; "fail" fails, "" gives an empty result. */
static int t_echo(const void *in, size_t len, cf_buffer *out)
{
    if (len == 4 && memcmp(in, "fail", 4) == 0)
        return cf_fail(CF_EPERM, "echo refused \"fail\""), CF_EPERM;
    return cf_buffer_append(out, in, len);
}

/* ---- cases: results and failures --------------------------------------- */

static void results(void)
{
    cf_executor *ex = pool(2);
    check_squares(ex, t_square, 100);
    /* Empty input, empty result. */
    cf_future *f;
    CHECK_EQ(cf_submit_bytes(ex, t_echo, NULL, 0, &f), 0);
    const void *data;
    size_t len = 99;
    CHECK_EQ(cf_future_bytes(f, 30.0 * test_scale(), &data, &len), 0);
    CHECK_EQ(len, 0);
    cf_future_release(f);
    /* The pid is not ours: it ran elsewhere. */
    f = submit_i64(ex, t_pid, 0);
    CHECK(i64_of(f) != getpid());
    cf_future_release(f);
    cf_executor_free(ex);
}

/* A task submitted right after the pool is made, as its manager runs its
 * first round, starts a worker: it was lost (the manager slept with no
 * worker and the task queued) when it came after the round had looked at
 * the queue and before it said it listens. Each try is a fresh process,
 * where that round is slowest; under ThreadSanitizer about one try in
 * eight lost its task. A try that never gets its result is counted after
 * 10 s. */
static void first_submit_starts_a_worker(void)
{
    enum { TRIES = 100 };
    _Atomic int *ok = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(ok != MAP_FAILED);
    for (int i = 0; i < TRIES; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            cf_executor *ex = pool(2);
            cf_future *f = submit_i64(ex, t_square, 3);
            const void *data;
            size_t len;
            if (cf_future_bytes(f, 10.0 * test_scale(), &data, &len) == 0)
                atomic_fetch_add(ok, 1);
            cf_future_release(f);
            cf_executor_free(ex);
            raise(SIGKILL); /* a sanitizer's exit would take a second */
        }
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
    }
    CHECK_EQ(atomic_load(ok), TRIES);
    munmap((void *)ok, 4096);
}

static void fail_message(void)
{
    cf_executor *ex = pool(1);
    cf_future *f = submit_i64(ex, t_fail, 7);
    check_fails(f, CF_EINVAL, "bad input 7");
    CHECK_EQ(cf_future_bytes(f, 0, NULL, NULL), CF_EINVAL);
    cf_future_release(f);
    f = submit_i64(ex, t_fail_plain, 0);
    check_fails(f, CF_EOVERFLOW, cf_strerror(CF_EOVERFLOW));
    cf_future_release(f);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.failed, 2);
    cf_executor_free(ex);
}

static void submit_pointer_is_einval(void)
{
    cf_executor *ex = pool(1);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, (cf_fn)(void (*)(void))t_pid, NULL, &f), CF_EINVAL);
    CHECK(f == NULL);
    cf_map *m;
    void *args[2] = { NULL, NULL };
    CHECK_EQ(cf_map_new(&m, ex, (cf_fn)(void (*)(void))t_pid, args, 2, 0, -1),
             CF_EINVAL);
    /* A function that is in no module cannot be named. */
    CHECK_EQ(cf_submit_bytes(ex, (cf_bytes_fn)(uintptr_t)16, "x", 1, &f),
             CF_EINVAL);
    cf_executor_free(ex);
}

static void bad_options(void)
{
    cf_options o = { .max_workers = -1 };
    errno = 0;
    CHECK(cf_process_pool_new(&o) == NULL);
    CHECK_EQ(errno, EINVAL);
    o = (cf_options){ .task_timeout = NAN };
    CHECK(cf_process_pool_new(&o) == NULL);
    o = (cf_options){ .task_timeout = -1 };
    CHECK(cf_process_pool_new(&o) == NULL);
    o = (cf_options){ .start_method = (cf_start_method)7 };
    CHECK(cf_process_pool_new(&o) == NULL);
    /* NULL options: ncpu workers at most. */
    cf_executor *ex = cf_process_pool_new(NULL);
    CHECK(ex != NULL);
    enum { N = 32 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_sleep_ms, 5);
    cf_stats st;
    size_t most = 0;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(cf_executor_stats(ex, &st), 0);
        most = st.workers > most ? st.workers : most;
        i64_of(fs[i]);
        cf_future_release(fs[i]);
    }
    CHECK(most >= 1 && most <= (size_t)cf_cpu_count());
    cf_executor_free(ex);
}

/* ---- cases: crashes ---------------------------------------------------- */

/* 20 tasks on 2 workers, item 7 crashes with `how`: only it fails. */
static void crash_case(int64_t how, const char *needle)
{
    let_workers_die_by_signal();
    cf_executor *ex = pool(2);
    enum { N = 20 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_maybe_crash, i == 7 ? how : i);
    for (int i = 0; i < N; i++) {
        if (i == 7)
            check_fails(fs[i], CF_EBROKEN, needle);
        else
            CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        cf_future_release(fs[i]);
    }
    /* The pool goes on. */
    cf_future *f = submit_i64(ex, t_square, 9);
    CHECK_EQ(i64_of(f), 81);
    cf_future_release(f);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.failed, 1);
    CHECK_EQ(st.completed, N);
    cf_executor_free(ex);
}

static void crash_segv(void)
{
    crash_case(-1, "SIGSEGV");
}

static void crash_abort(void)
{
    crash_case(-2, "SIGABRT");
}

static void crash_exit(void)
{
    crash_case(-3, "exited with status 3");
}

static void crash_outside_kill(void)
{
    cf_executor *ex = pool(1);
    cf_future *f = submit_i64(ex, t_pid, 0);
    pid_t pid = (pid_t)i64_of(f);
    cf_future_release(f);
    cf_future *sleeper = submit_i64(ex, t_sleep_ms, 30000);
    WAIT_UNTIL(cf_future_running(sleeper), 10.0);
    CHECK(cf_future_running(sleeper));
    sleep_s(0.05);
    CHECK_EQ(kill(pid, SIGKILL), 0);
    CHECK_TIME(check_fails(sleeper, CF_EBROKEN, "SIGKILL"), 0, 10.0);
    cf_future_release(sleeper);
    f = submit_i64(ex, t_pid, 0);
    pid_t next = (pid_t)i64_of(f);
    CHECK(next != pid && next != getpid());
    cf_future_release(f);
    cf_executor_free(ex);
}

/* Tiny tasks are pipelined several to a worker; when one crashes, those
 * queued behind it in that worker run elsewhere, not fail. */
static void crash_requeues_unstarted(void)
{
    let_workers_die_by_signal();
    cf_executor *ex = pool(1);
    enum { WARM = 300, N = 200, BAD = 20 };
    for (int i = 0; i < WARM; i++) /* teaches the pool the tasks are tiny */
        cf_submit_bytes(ex, t_square, NULL, 0, NULL);
    cf_future *fs[N], *pids[N];
    for (int i = 0; i < N; i++) {
        fs[i] = submit_i64(ex, t_maybe_crash, i == BAD ? -1 : i);
        pids[i] = submit_i64(ex, t_pid, 0);
    }
    pid_t before = (pid_t)i64_of(pids[0]), after = (pid_t)i64_of(pids[N - 1]);
    CHECK(before != after);
    for (int i = 0; i < N; i++) {
        if (i == BAD)
            check_fails(fs[i], CF_EBROKEN, "SIGSEGV");
        else
            CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        i64_of(pids[i]);
        cf_future_release(fs[i]);
        cf_future_release(pids[i]);
    }
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.failed, 1);
    cf_executor_free(ex);
}

static void crash_with_socket_held_open(void)
{
    let_workers_die_by_signal();
    cf_executor *ex = pool(1);
    cf_future *bad;
    CHECK_EQ(cf_submit_bytes(ex, t_crash_leaving_child, NULL, 0, &bad), 0);
    CHECK_TIME(check_fails(bad, CF_EBROKEN, "SIGSEGV"), 0, 2.0);
    cf_future *after = submit_i64(ex, t_square, 4);
    CHECK_EQ(i64_of(after), 16);
    cf_future_release(bad);
    cf_future_release(after);
    cf_executor_free(ex);
}

/* Makes pidfd_open fail with ENOSYS in every thread of this process and
 * in the processes it starts, as on a kernel before 5.3 or under a
 * container's seccomp profile that does not know the call. */
static void deny_pidfd_open(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
    CHECK_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    CHECK_EQ(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                     SECCOMP_FILTER_FLAG_TSYNC, &prog),
             0);
    CHECK(syscall(SYS_pidfd_open, getpid(), 0) < 0 && errno == ENOSYS);
}

/* Without pidfds a dead worker is still seen at once while a process its
 * task started holds the socket open (here for as long as this process
 * lives): its task fails, naming the signal, and the task queued behind
 * it runs. It used to wait for the socket's EOF. */
static void crash_with_socket_held_open_without_pidfd(void)
{
    let_workers_die_by_signal();
    deny_pidfd_open();
    cf_executor *ex = pool(1);
    cf_future *bad = submit_i64(ex, t_crash_leaving_lasting_child, 0);
    cf_future *after = submit_i64(ex, t_square, 4);
    CHECK_EQ(cf_future_exception(bad, 10.0 * test_scale(), NULL), CF_EBROKEN);
    check_fails(bad, CF_EBROKEN, "SIGSEGV");
    CHECK_EQ(i64_of(after), 16);
    check_squares(ex, t_square, 20);
    cf_future_release(bad);
    cf_future_release(after);
    cf_executor_free(ex);
    no_children_left();
}

static void corrupt_frame(void)
{
    cf_executor *ex = pool(1);
    cf_future *bad = submit_i64(ex, t_corrupt, 0);
    cf_future *after = submit_i64(ex, t_square, 5);
    CHECK_TIME(check_fails(bad, CF_EBROKEN, "corrupt"), 0, 4.0);
    CHECK_EQ(i64_of(after), 25);
    cf_future_release(bad);
    cf_future_release(after);
    cf_executor_free(ex);
}

/* The worker killed for one task's corrupt answer has most often started
 * the next task by then: that one fails (it ran) and is told the kill was
 * for another task, not that it sent the frame; had it not started, it
 * runs again and succeeds. */
static void corrupt_answer_blames_its_own_task(void)
{
    int told = 0;
    for (int round = 0; round < 8; round++) {
        cf_executor *ex = pool(1);
        check_squares(ex, t_square,
                      20); /* measured: the next two go out together */
        cf_future *bad = submit_i64(ex, t_corrupt_answer, 0);
        cf_future *next = submit_i64(ex, t_sleep_ms, 200);
        check_fails(bad, CF_EBROKEN, "corrupt frame");
        const char *msg = NULL;
        int rc = cf_future_exception(next, 30.0 * test_scale(), &msg);
        if (rc) {
            check_fails(next, CF_EBROKEN,
                        "killed for another task (it sent a corrupt frame) "
                        "while running this task");
            told++;
        } else {
            CHECK(i64_of(next) > 0); /* its pid */
        }
        cf_future_release(bad);
        cf_future_release(next);
        cf_executor_free(ex);
    }
    printf("  the next task had started in %d of 8 rounds\n", told);
}

/* A task that answers for itself and runs on (its answer is taken: the
 * future is done) is caught once the page says it never ended: its worker
 * is killed as corrupt at once, not at its task_timeout, and the task
 * behind it, which never started, runs on another worker. */
static void forged_answer_kills_worker(void)
{
    cf_options o = { .max_workers = 1, .task_timeout = 30.0 * test_scale() };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *first = submit_i64(ex, t_pid, 0);
    int64_t pid = i64_of(first);
    cf_future *forger = submit_i64(ex, t_forged_answer, 3);
    cf_future *behind = submit_i64(ex, t_pid, 0);
    const char *msg = NULL;
    int rc = cf_future_exception(behind, 10.0 * test_scale(), &msg);
    if (rc)
        fprintf(stderr, "behind: %s: %s\n", cf_strerror(rc), msg);
    CHECK_EQ(rc, 0);
    CHECK(i64_of(behind) != pid); /* the forger's worker was replaced */
    CHECK_EQ(i64_of(forger), -1); /* the forgery, taken before it was seen */
    check_squares(ex, t_square, 8);
    cf_future_release(first);
    cf_future_release(forger);
    cf_future_release(behind);
    cf_executor_free(ex);
    no_children_left();
}

/* A task that answers for itself and returns: the worker's answer comes
 * second, by when the worker has most often started the next task. The
 * worker is killed for the forger's fault: the next task, if it started,
 * fails (it ran) and is told the kill was for another task, not that it
 * sent the frame; had it not started, it runs again and succeeds. */
static void second_answer_blames_the_forger(void)
{
    int told = 0;
    for (int round = 0; round < 8; round++) {
        cf_executor *ex = pool(1);
        check_squares(ex, t_square, 20); /* measured: both go out together */
        cf_future *forger = submit_i64(ex, t_forged_then_returns, 3);
        cf_future *next = submit_i64(ex, t_sleep_ms, 200);
        CHECK_EQ(i64_of(forger), -1); /* the forgery, taken first */
        if (cf_future_exception(next, 30.0 * test_scale(), NULL)) {
            check_fails(next, CF_EBROKEN,
                        "killed for another task (it sent a corrupt frame) "
                        "while running this task");
            told++;
        } else {
            CHECK(i64_of(next) > 0); /* its pid */
        }
        check_squares(ex, t_square, 4);
        cf_future_release(forger);
        cf_future_release(next);
        cf_executor_free(ex);
        no_children_left();
    }
    printf("  the next task had started in %d of 8 rounds\n", told);
}

/* A task that announces a result longer than what follows, with tasks
 * queued behind it that then run (their answers swallowed): once the
 * worker started a later task, the announced result counts as stalled and
 * the worker is killed after the transfer's limit (10 s). The liar fails
 * with CF_ETIME; the tasks that ran behind it are told they were killed
 * for another task; the pool goes on. */
static void lying_length_stalls(void)
{
    cf_options o = { .max_workers = 1, .task_timeout = 1.0 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    check_squares(ex, t_square, 20); /* measured: the next go out together */
    enum { BEHIND = 4 };
    cf_future *liar = submit_i64(ex, t_lying_length, 2), *behind[BEHIND];
    for (int i = 0; i < BEHIND; i++)
        behind[i] = submit_i64(ex, t_square, i);
    check_fails(liar, CF_ETIME,
                "task finished, but its result made no "
                "progress for 10 s");
    for (int i = 0; i < BEHIND; i++) {
        if (cf_future_exception(behind[i], 30.0 * test_scale(), NULL))
            check_fails(behind[i], CF_EBROKEN,
                        "killed for another task (its result made no "
                        "progress) after this task returned");
        else
            CHECK_EQ(i64_of(behind[i]), (int64_t)i * i);
        cf_future_release(behind[i]);
    }
    check_squares(ex, t_square, 8);
    cf_future_release(liar);
    cf_executor_free(ex);
    no_children_left();
}

/* The start time on the state page is the worker's word: one in the
 * future (a task overwrote it) does not put off task_timeout, which then
 * counts from when the task was handed over. */
static void scribbled_start_still_times_out(void)
{
    cf_options o = { .max_workers = 1, .task_timeout = 0.3 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *f = submit_i64(ex, t_scribble_start, 0);
    check_fails(f, CF_ETIME, "task ran past its task_timeout of 0.3 s");
    check_squares(ex, t_square, 4);
    cf_future_release(f);
    cf_executor_free(ex);
    no_children_left();
}

/* A length read from the wire reserves only about what came: a worker
 * announcing 1 TiB (the largest valid frame) and dying 3 MiB into it
 * fails its own task as a crash with a truncated frame; the parent never
 * tried to allocate the terabyte (under ASan that aborts the process) and
 * the pool goes on. */
static void huge_length_reserves_nothing(void)
{
    cf_executor *ex = pool(1);
    cf_future *liar = submit_i64(ex, t_huge_length, 0);
    check_fails(liar, CF_EBROKEN, "truncated frame");
    check_squares(ex, t_square, 8);
    cf_future_release(liar);
    cf_executor_free(ex);
    no_children_left();
}

static void truncated_frame(void)
{
    cf_executor *ex = pool(1);
    cf_future *bad = submit_i64(ex, t_truncated, 0);
    check_fails(bad, CF_EBROKEN, "truncated");
    cf_future *after = submit_i64(ex, t_square, 6);
    CHECK_EQ(i64_of(after), 36);
    cf_future_release(bad);
    cf_future_release(after);
    cf_executor_free(ex);
}

/* ---- cases: timeouts, initializer, max_tasks_per_child ----------------- */

static void task_timeout(void)
{
    cf_options o = { .max_workers = 1, .task_timeout = 0.3 * test_scale() };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *first = submit_i64(ex, t_pid, 0);
    pid_t pid = (pid_t)i64_of(first);
    cf_future_release(first);
    cf_future *hang = submit_i64(ex, t_sleep_ms, 60000);
    cf_future *behind[3];
    for (int i = 0; i < 3; i++)
        behind[i] = submit_i64(ex, t_pid, 0);
    CHECK_TIME(check_fails(hang, CF_ETIME, "task_timeout"), 0.25, 5.0);
    cf_future_release(hang);
    for (int i = 0; i < 3; i++) {
        pid_t p = (pid_t)i64_of(behind[i]);
        CHECK(p != pid); /* ran in the replacement */
        cf_future_release(behind[i]);
    }
    /* Tasks within the limit are untouched. */
    cf_future *ok = submit_i64(ex, t_sleep_ms, 50);
    i64_of(ok);
    cf_future_release(ok);
    cf_executor_free(ex);
}

static char init_seen[64]; /* in the worker: what the initializer got */
static const char init_greeting[] = "hello from static data";

static void *init_copy(void *arg)
{
    snprintf(init_seen, sizeof init_seen, "%s", (const char *)arg);
    return NULL;
}

static int t_init_seen(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    return cf_buffer_append(out, init_seen, strlen(init_seen));
}

static void *init_fails(void *arg)
{
    (void)arg;
    cf_fail(CF_EINVAL, "no configuration found");
    return NULL;
}

static void check_text(cf_future *f, const char *want)
{
    const void *data;
    size_t len;
    CHECK_EQ(cf_future_bytes(f, 30.0 * test_scale(), &data, &len), 0);
    CHECK_EQ(len, strlen(want));
    CHECK(memcmp(data, want, len) == 0);
}

static void initializer_runs(void)
{
    cf_options o = { .max_workers = 2,
                     .initializer = init_copy,
                     .initarg = (void *)init_greeting };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *f;
    CHECK_EQ(cf_submit_bytes(ex, t_init_seen, NULL, 0, &f), 0);
    check_text(f, init_greeting);
    cf_future_release(f);
    cf_executor_free(ex);
    /* A heap pointer means nothing in a fresh image: refused. */
    char *heap = strdup("x");
    o.initarg = heap;
    errno = 0;
    CHECK(cf_process_pool_new(&o) == NULL);
    CHECK_EQ(errno, EINVAL);
    free(heap);
}

static void initializer_failure_breaks(void)
{
    cf_options o = { .max_workers = 2, .initializer = init_fails };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *fs[4];
    for (int i = 0; i < 4; i++)
        fs[i] = submit_i64(ex, t_square, i);
    for (int i = 0; i < 4; i++) {
        check_fails(fs[i], CF_EBROKEN, "no configuration found");
        cf_future_release(fs[i]);
    }
    cf_future *f = NULL;
    CHECK_EQ(cf_submit_bytes(ex, t_square, NULL, 0, &f), CF_EBROKEN);
    cf_executor_free(ex);
}

static void max_tasks_per_child(void)
{
    cf_options o = { .max_workers = 1, .max_tasks_per_child = 2 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    enum { N = 6 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_pid, 0);
    pid_t pid[N];
    for (int i = 0; i < N; i++) {
        pid[i] = (pid_t)i64_of(fs[i]);
        cf_future_release(fs[i]);
    }
    for (int i = 0; i < N; i += 2) {
        CHECK_EQ(pid[i], pid[i + 1]);
        if (i)
            CHECK(pid[i] != pid[i - 1]);
    }
    cf_executor_free(ex);
}

/* ---- cases: cancel, shutdown, stats, leaks ----------------------------- */

static void cancel_pending(void)
{
    cf_executor *ex = pool(1);
    cf_future *busy = submit_i64(ex, t_sleep_ms, 300);
    enum { N = 8 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_square, i);
    WAIT_UNTIL(cf_future_running(busy), 10.0);
    for (int i = 3; i < N; i++)
        CHECK(cf_future_cancel(fs[i]));
    for (int i = 0; i < N; i++) {
        if (i < 3)
            CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        else
            CHECK_EQ(cf_future_result(fs[i], 0, NULL), CF_ECANCELED);
        cf_future_release(fs[i]);
    }
    i64_of(busy);
    cf_future_release(busy);
    cf_shutdown(ex, true, false);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.cancelled, N - 3);
    CHECK_EQ(st.completed, 4);
    cf_executor_free(ex);
}

static void shutdown_cancel_futures(void)
{
    cf_executor *ex = pool(1);
    cf_future *busy = submit_i64(ex, t_sleep_ms, 300);
    enum { N = 8 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_square, i);
    WAIT_UNTIL(cf_future_running(busy), 10.0);
    CHECK_EQ(cf_shutdown(ex, true, true), 0);
    CHECK(cf_future_done(busy));
    CHECK_EQ(cf_future_result(busy, 0, NULL), 0);
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        CHECK(cf_future_done(fs[i]));
        if (cf_future_cancelled(fs[i]))
            cancelled++;
        else
            CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        cf_future_release(fs[i]);
    }
    CHECK(cancelled >= N - 2); /* at most one queued behind `busy` */
    cf_future *f = NULL;
    CHECK_EQ(cf_submit_bytes(ex, t_square, NULL, 0, &f), CF_ESHUTDOWN);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.cancelled, (size_t)cancelled);
    CHECK_EQ(st.workers, 0);
    cf_future_release(busy);
    cf_executor_free(ex);
}

static void shutdown_without_wait(void)
{
    cf_executor *ex = pool(2);
    cf_future *fs[6];
    for (int i = 0; i < 6; i++)
        fs[i] = submit_i64(ex, t_sleep_ms, 50);
    CHECK_TIME(CHECK_EQ(cf_shutdown(ex, false, false), 0), 0, 0.5);
    for (int i = 0; i < 6; i++) {
        i64_of(fs[i]); /* pending work still runs */
        cf_future_release(fs[i]);
    }
    cf_executor_free(ex);
    no_children_left();
}

static void stats(void)
{
    cf_executor *ex = pool(2);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.workers, 0); /* started on demand */
    cf_future *fs[4];
    for (int i = 0; i < 4; i++)
        fs[i] = submit_i64(ex, t_sleep_ms, 200);
    WAIT_UNTIL(cf_executor_stats(ex, &st) == 0 && st.running == 2, 10.0);
    CHECK_EQ(st.workers, 2);
    CHECK_EQ(st.running, 2); /* task times unknown yet: one per worker */
    CHECK_EQ(st.queued, 2);
    CHECK_EQ(st.idle, 0);
    for (int i = 0; i < 4; i++) {
        i64_of(fs[i]);
        cf_future_release(fs[i]);
    }
    cf_future *f = submit_i64(ex, t_fail, 1);
    check_fails(f, CF_EINVAL, "bad input");
    cf_future_release(f);
    WAIT_UNTIL(cf_executor_stats(ex, &st) == 0 && st.idle == 2, 10.0);
    CHECK_EQ(st.workers, 2);
    CHECK_EQ(st.idle, 2);
    CHECK_EQ(st.running, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.completed, 4);
    CHECK_EQ(st.failed, 1);
    CHECK_EQ(st.cancelled, 0);
    cf_executor_free(ex);
}

static void no_leaks(void)
{
    let_workers_die_by_signal();
    int fds = open_fds();
    for (int round = 0; round < 3; round++) {
        /* Every way a worker goes: crashed, killed for its time limit,
         * replaced after max_tasks_per_child, retired at shutdown. */
        cf_options o = { .max_workers = 2,
                         .task_timeout = 0.3 * test_scale(),
                         .max_tasks_per_child = 3,
                         .start_method =
                             round == 1 ? CF_START_FORK : CF_START_SPAWN };
        cf_executor *ex = cf_process_pool_new(&o);
        CHECK(ex != NULL);
        cf_future *fs[12];
        for (int i = 0; i < 12; i++)
            fs[i] = submit_i64(ex, t_maybe_crash,
                               i != 4       ? i
                               : round == 1 ? -3
                                            : -1);
        cf_future *hang = submit_i64(ex, t_sleep_ms, 60000);
        for (int i = 0; i < 12; i++) {
            CHECK(cf_future_exception(fs[i], 30.0 * test_scale(), NULL) !=
                  CF_ETIMEDOUT);
            cf_future_release(fs[i]);
        }
        /* Freed with work still queued and running: free waits for it
         * (the hanging task meets its time limit). */
        if (round == 2) {
            for (int i = 0; i < 4; i++)
                cf_submit_bytes(ex, t_sleep_ms, &(int64_t){ 20 }, 8, NULL);
        } else {
            check_fails(hang, CF_ETIME, "task_timeout");
        }
        cf_executor_free(ex);
        CHECK(cf_future_done(hang));
        cf_future_release(hang);
        CHECK_EQ(open_fds(), fds);
        no_children_left();
    }
}

/* ---- cases: environments ----------------------------------------------- */

static atomic_bool busy_stop;

static void *busy_thread(void *arg)
{
    pthread_mutex_t *mu = arg;
    while (!atomic_load(&busy_stop)) {
        pthread_mutex_lock(mu);
        void *p = malloc(64 + (size_t)(rand() & 1023));
        free(p);
        pthread_mutex_unlock(mu);
    }
    return NULL;
}

static void threaded_parent(void)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, busy_thread, &mu), 0);
    sleep_s(0.02);
    for (int round = 0; round < 3; round++) {
        cf_executor *ex = pool(2);
        check_squares(ex, t_square, 50);
        cf_executor_free(ex);
    }
    atomic_store(&busy_stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
}

static void *init_from_heap(void *arg)
{
    snprintf(init_seen, sizeof init_seen, "%s", (const char *)arg);
    return NULL;
}

static void fork_method(void)
{
    char *heap = strdup("made on the parent's heap");
    cf_options o = { .max_workers = 2,
                     .start_method = CF_START_FORK,
                     .initializer = init_from_heap,
                     .initarg = heap };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    check_squares(ex, t_square, 40);
    cf_future *f;
    CHECK_EQ(cf_submit_bytes(ex, t_init_seen, NULL, 0, &f), 0);
    check_text(f, heap);
    cf_future_release(f);
    f = submit_i64(ex, t_ppid, 0);
    CHECK_EQ(i64_of(f), getpid());
    cf_future_release(f);
    f = submit_i64(ex, t_fail, 3);
    check_fails(f, CF_EINVAL, "bad input 3");
    cf_future_release(f);
    cf_executor_free(ex);
    free(heap);
    no_children_left();
}

/* Where this worker's descriptors 1 and 2 lead: "1=... 2=..." (NUL
 * ended). */
static int t_std_fds(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    char text[600] = "";
    for (int fd = 1; fd <= 2; fd++) {
        char path[32], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(path, target, sizeof target - 1);
        target[k > 0 ? k : 0] = '\0';
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%d=%s ", fd, k > 0 ? target : "-");
    }
    return cf_buffer_append(out, text, strlen(text) + 1);
}

/* A program that closed stdout and stderr, then makes a fork pool: the
 * pool's descriptors take those numbers (its wake-up eventfd, its end of a
 * worker's socket), and a forked worker must not hold them there: a
 * task's output went into the pool's eventfd, or into the worker's own
 * socket, where the worker read it as a corrupt task frame and died. */
static void fork_method_with_stdio_closed(void)
{
    int fds = open_fds();
    fflush(NULL);
    int out = fcntl(1, F_DUPFD_CLOEXEC, 10),
        err = fcntl(2, F_DUPFD_CLOEXEC, 10);
    CHECK(out >= 0 && err >= 0);
    close(1);
    close(2);
    cf_options o = { .max_workers = 2, .start_method = CF_START_FORK };
    cf_executor *ex = cf_process_pool_new(&o);
    enum { N = 4 };
    char seen[N][600];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        cf_future *f = NULL;
        const void *data = NULL;
        size_t n = 0;
        rcs[i] = ex ? cf_submit_bytes(ex, t_std_fds, NULL, 0, &f) : CF_EINVAL;
        if (!rcs[i])
            rcs[i] = cf_future_bytes(f, 30.0 * test_scale(), &data, &n);
        snprintf(seen[i], sizeof seen[i], "%s",
                 rcs[i] ? "" : (const char *)data);
        if (f)
            cf_future_release(f);
    }
    if (ex)
        cf_executor_free(ex);
    CHECK(dup2(out, 1) == 1 && dup2(err, 2) == 2);
    close(out);
    close(err);
    CHECK(ex != NULL);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(rcs[i], 0);
        if (strstr(seen[i], "socket:") || strstr(seen[i], "anon_inode:"))
            fprintf(stderr, "a worker holds the pool's descriptors: %s\n",
                    seen[i]);
        CHECK(strstr(seen[i], "socket:") == NULL);
        CHECK(strstr(seen[i], "anon_inode:") == NULL);
    }
    CHECK_EQ(open_fds(), fds);
    no_children_left();
}

static void big_payloads(void)
{
    size_t n = 32u << 20;
    unsigned char *in = malloc(n);
    CHECK(in != NULL);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        in[i] = (unsigned char)x;
    }
    cf_executor *ex = pool(2);
    cf_future *fs[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(cf_submit_bytes(ex, t_big, in, n, &fs[i]), 0);
    uint64_t want = fnv64(in, n);
    for (int i = 0; i < 2; i++) {
        const void *data;
        size_t len;
        CHECK_EQ(cf_future_bytes(fs[i], 60.0 * test_scale(), &data, &len), 0);
        CHECK_EQ(len, 8 + n);
        uint64_t got;
        memcpy(&got, data, 8);
        CHECK(got == want);
        const unsigned char *out = (const unsigned char *)data + 8;
        for (size_t k = 0; k < n; k++)
            if (out[k] != (unsigned char)(in[k] + 1))
                CHECK(!"result byte differs");
        cf_future_release(fs[i]);
    }
    free(in);
    cf_executor_free(ex);
}

/* ---- cases: the common API over process futures ------------------------ */

static void same_code_on_threads_and_processes(void)
{
    const char *texts[] = { "The quick brown fox jumps over the lazy dog",
                            "  pack my box with five dozen liquor jugs! ", "",
                            "12345 67 -- ?" };
    cf_executor *thr = cf_thread_pool_new(NULL);
    cf_executor *proc = pool(2);
    CHECK(thr != NULL);
    for (size_t i = 0; i < 4; i++) {
        cf_future *a, *b;
        size_t len = strlen(texts[i]);
        CHECK_EQ(cf_submit_bytes(thr, t_wordstats, texts[i], len, &a), 0);
        CHECK_EQ(cf_submit_bytes(proc, t_wordstats, texts[i], len, &b), 0);
        const void *da, *db;
        size_t la, lb;
        int ra = cf_future_bytes(a, 30.0 * test_scale(), &da, &la);
        int rb = cf_future_bytes(b, 30.0 * test_scale(), &db, &lb);
        CHECK_EQ(ra, rb);
        if (ra == 0) {
            CHECK_EQ(la, lb);
            CHECK(memcmp(da, db, la) == 0);
        } else {
            const char *ma, *mb;
            cf_future_exception(a, 0, &ma);
            cf_future_exception(b, 0, &mb);
            CHECK(strcmp(ma, mb) == 0);
        }
        cf_future_release(a);
        cf_future_release(b);
    }
    cf_executor_free(thr);
    cf_executor_free(proc);
}

static void wait_and_as_completed(void)
{
    cf_executor *ex = pool(2);
    cf_future *fs[3];
    fs[0] = submit_i64(ex, t_sleep_ms, 600);
    fs[1] = submit_i64(ex, t_sleep_ms, 10);
    fs[2] = submit_i64(ex, t_fail, 2);
    CHECK_EQ(cf_wait(fs, 3, 30.0 * test_scale(), CF_FIRST_COMPLETED), 0);
    CHECK(!cf_future_done(fs[0]));
    CHECK_EQ(cf_wait(fs, 3, 30.0 * test_scale(), CF_FIRST_EXCEPTION), 0);
    CHECK(cf_future_done(fs[2]));
    CHECK_EQ(cf_wait(fs, 3, 0.0, CF_ALL_COMPLETED) == 0, cf_future_done(fs[0]));
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, 3, 30.0 * test_scale()), 0);
    cf_future *got[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_as_completed_next(it, &got[i]), 0);
    cf_future *f;
    CHECK_EQ(cf_as_completed_next(it, &f), CF_EOF);
    CHECK(got[2] == fs[0]); /* the slow one last */
    cf_as_completed_free(it);
    CHECK_EQ(cf_wait(fs, 3, 0.0, CF_ALL_COMPLETED), 0);
    for (int i = 0; i < 3; i++)
        cf_future_release(fs[i]);
    cf_executor_free(ex);
}

static atomic_int callbacks_seen;
static cf_executor *callback_pool;

static void on_done(cf_future *f, void *ctx)
{
    (void)f;
    (void)ctx;
    /* On the manager thread: waiting for the pool here could never end. */
    CHECK_EQ(cf_shutdown(callback_pool, true, false), CF_EDEADLK);
    /* Submitting from here works (no pool lock is held). */
    CHECK_EQ(cf_submit_bytes(callback_pool, t_square, NULL, 0, NULL), 0);
    atomic_fetch_add(&callbacks_seen, 1);
}

static void done_callbacks(void)
{
    callback_pool = pool(1);
    cf_future *f = submit_i64(callback_pool, t_square, 3);
    CHECK_EQ(cf_future_add_done_callback(f, on_done, NULL), 0);
    CHECK_EQ(i64_of(f), 9);
    cf_stats st;
    WAIT_UNTIL(cf_executor_stats(callback_pool, &st) == 0 && st.completed == 2,
               10.0);
    CHECK_EQ(st.completed, 2);
    cf_future_release(f);
    cf_executor_free(callback_pool);
    CHECK_EQ(atomic_load(&callbacks_seen), 1);
}

/* Runs a bytes map of n echo items over ex and checks every result. */
static void map_case(cf_executor *ex, size_t chunksize, size_t buffersize)
{
    enum { N = 103 };
    char bufs[N][16];
    const void *ins[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        if (i == 17)
            snprintf(bufs[i], sizeof bufs[i], "fail");
        else if (i == 40)
            bufs[i][0] = '\0';
        else
            snprintf(bufs[i], sizeof bufs[i], "item-%d", i);
        ins[i] = bufs[i];
        lens[i] = strlen(bufs[i]);
    }
    cf_map *m;
    CHECK_EQ(cf_map_bytes_new(&m, ex, t_echo, ins, lens, N, chunksize,
                              buffersize, 60.0 * test_scale()),
             0);
    for (int i = 0; i < N; i++) {
        const void *data;
        size_t len;
        int rc = cf_map_bytes_next(m, &data, &len);
        if (i == 17) {
            CHECK_EQ(rc, CF_EPERM);
            CHECK(strcmp(data, "echo refused \"fail\"") == 0);
            CHECK_EQ(len, strlen(data));
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(len, lens[i]);
        CHECK(memcmp(data, bufs[i], len) == 0);
    }
    const void *data;
    CHECK_EQ(cf_map_bytes_next(m, &data, NULL), CF_EOF);
    void *r;
    CHECK_EQ(cf_map_next(m, &r), CF_EINVAL);
    cf_map_free(m);
}

static void map_bytes(void)
{
    cf_executor *ex = pool(2);
    map_case(ex, 1, 0);
    map_case(ex, 7, 0);
    map_case(ex, 1, 3);
    map_case(ex, 10, 2);
    map_case(ex, 500, 0);
    /* Freed early: the rest is cancelled, nothing leaks. */
    const void *ins[50];
    size_t lens[50];
    int64_t v = 20;
    for (int i = 0; i < 50; i++) {
        ins[i] = &v;
        lens[i] = sizeof v;
    }
    cf_map *m;
    CHECK_EQ(cf_map_bytes_new(&m, ex, t_sleep_ms, ins, lens, 50, 1, 0, -1), 0);
    const void *data;
    CHECK_EQ(cf_map_bytes_next(m, &data, NULL), 0);
    cf_map_free(m);
    /* A failure without cf_fail reads as cf_strerror(code), chunked or
     * not. */
    for (size_t cs = 1; cs <= 4; cs += 3) {
        CHECK_EQ(
            cf_map_bytes_new(&m, ex, t_fail_plain, ins, lens, 5, cs, 0, -1), 0);
        for (int i = 0; i < 5; i++) {
            size_t len;
            CHECK_EQ(cf_map_bytes_next(m, &data, &len), CF_EOVERFLOW);
            CHECK(strcmp(data, cf_strerror(CF_EOVERFLOW)) == 0);
            CHECK_EQ(len, strlen(data));
        }
        cf_map_free(m);
    }
    /* A timeout leaves the item next. */
    CHECK_EQ(cf_map_bytes_new(&m, ex, t_sleep_ms, ins, lens, 1, 1, 0, 0.001),
             0);
    CHECK_EQ(cf_map_bytes_next(m, &data, NULL), CF_ETIMEDOUT);
    cf_map_free(m);
    cf_executor_free(ex);
    /* The same maps on a thread pool. */
    ex = cf_thread_pool_new(NULL);
    map_case(ex, 1, 0);
    map_case(ex, 7, 3);
    cf_executor_free(ex);
}

static void map_bytes_chunk_crash(void)
{
    let_workers_die_by_signal();
    cf_executor *ex = pool(2);
    enum { N = 40 };
    int64_t vals[N];
    const void *ins[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        vals[i] = i == 13 ? -1 : i;
        ins[i] = &vals[i];
        lens[i] = sizeof vals[i];
    }
    cf_map *m;
    CHECK_EQ(cf_map_bytes_new(&m, ex, t_maybe_crash, ins, lens, N, 5, 0, -1),
             0);
    for (int i = 0; i < N; i++) {
        const void *data;
        size_t len;
        int rc = cf_map_bytes_next(m, &data, &len);
        if (i / 5 == 13 / 5) { /* the crashed item's chunk */
            CHECK_EQ(rc, CF_EBROKEN);
            CHECK(strstr(data, "SIGSEGV") != NULL);
        } else {
            CHECK_EQ(rc, 0);
            int64_t got;
            memcpy(&got, data, sizeof got);
            CHECK_EQ(got, (int64_t)i * i);
        }
    }
    cf_map_free(m);
    cf_executor_free(ex);
}

/* One pool's life under the failing allocator. Allocations of the manager
 * thread fail as a broken pool or a failed task; either way nothing may
 * leak. (Spawned workers are fresh images with libc's allocator.) */
static int oom_pool_round(void *ctx)
{
    (void)ctx;
    cf_options o = { .max_workers = 1 };
    cf_executor *ex = cf_process_pool_new(&o);
    if (!ex) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    int64_t x = 7;
    cf_future *f;
    int rc = cf_submit_bytes(ex, t_square, &x, sizeof x, &f);
    if (rc == 0) {
        const void *data;
        rc = cf_future_bytes(f, 30.0 * test_scale(), &data, NULL);
        if (rc == 0)
            CHECK_EQ(*(const int64_t *)data, 49);
        cf_future_release(f);
    }
    cf_executor_free(ex);
    if (rc && atomic_load(&oom_failures) > 0)
        return CF_ENOMEM;
    return rc;
}

static void out_of_memory(void)
{
    oom_install();
    int points = oom_sweep(oom_pool_round, NULL, NULL);
    CHECK(points > 5);
    no_children_left();
}

static const test_case cases[] = {
    TEST_CASE(results),
    TEST_CASE(first_submit_starts_a_worker),
    TEST_CASE(fail_message),
    TEST_CASE(submit_pointer_is_einval),
    TEST_CASE(bad_options),
    TEST_CASE(crash_segv),
    TEST_CASE(crash_abort),
    TEST_CASE(crash_exit),
    TEST_CASE(crash_outside_kill),
    TEST_CASE(crash_requeues_unstarted),
    TEST_CASE(crash_with_socket_held_open),
    TEST_CASE(crash_with_socket_held_open_without_pidfd),
    TEST_CASE(corrupt_frame),
    TEST_CASE(corrupt_answer_blames_its_own_task),
    TEST_CASE(huge_length_reserves_nothing),
    TEST_CASE(truncated_frame),
    TEST_CASE(forged_answer_kills_worker),
    TEST_CASE(second_answer_blames_the_forger),
    TEST_CASE(lying_length_stalls),
    TEST_CASE(scribbled_start_still_times_out),
    TEST_CASE(task_timeout),
    TEST_CASE(initializer_runs),
    TEST_CASE(initializer_failure_breaks),
    TEST_CASE(max_tasks_per_child),
    TEST_CASE(cancel_pending),
    TEST_CASE(shutdown_cancel_futures),
    TEST_CASE(shutdown_without_wait),
    TEST_CASE(stats),
    TEST_CASE(no_leaks),
    TEST_CASE(threaded_parent),
    TEST_CASE(fork_method),
    TEST_CASE(fork_method_with_stdio_closed),
    TEST_CASE(big_payloads),
    TEST_CASE(same_code_on_threads_and_processes),
    TEST_CASE(wait_and_as_completed),
    TEST_CASE(done_callbacks),
    TEST_CASE(map_bytes),
    TEST_CASE(map_bytes_chunk_crash),
    TEST_CASE(out_of_memory),
};

TEST_MAIN(cases)
