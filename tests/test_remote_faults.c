/* SPDX-License-Identifier: MIT */
/*
 * test_remote_faults.c - fault injection against the process pool: workers
 * killed before they are ready, while a task runs, while a result is on its
 * way, between tasks and during shutdown, in a loop; initializers that
 * crash; a worker stopped while writing a result (the transfer limit);
 * starts that fail under a lowered RLIMIT_NOFILE, and as a non-root
 * user under a lowered RLIMIT_NPROC. What a user would check: every future
 * finishes, a task fails only if it ran (and then names the cause), no
 * success is reported twice or for a task that did not run, no descriptor,
 * child or zombie is left, and the pool works afterwards.
 *
 * Every task counts its start and its end in a shared page, which is how
 * the test knows what ran ("the task log" below).
 *
 * This binary is also the worker image (spawned workers run it again).
 */
#include "harness.h"
#include "remote/codec.h" /* cf__frame_set: a forged READY */

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* ---- helpers ----------------------------------------------------------- */

/* The pids of this process's children (any thread's), up to max. */
static int children(pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    CHECK(d != NULL);
    int n = 0;
    pid_t self = getpid();
    for (struct dirent *e; n < max && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = '\0';
        char *rp = strrchr(buf, ')'); /* the name may hold spaces */
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 &&
            ppid == self && state != 'Z')
            out[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static const char *message_of(cf_future *f)
{
    const char *msg = NULL;
    cf_future_exception(f, 0, &msg);
    return msg ? msg : "";
}

/* ---- the task log ------------------------------------------------------ */

/*
 * The log is a page of shared memory (a tmpfs file named by the pool
 * owner's pid) holding a start and a done counter per task id. A task's
 * first action is one atomic add to its start counter: no system call and,
 * since every worker maps the page and touches it (and the code that
 * writes it) before it runs any task, no page fault either. The pool marks
 * a task running as the last step before calling its function, so the only
 * window in which a SIGKILL makes the pool rightly blame a task the log says
 * never started is the few instructions from that mark to the add (the
 * return from the mark, the call of the function, a length check and the
 * add), none of which enters the kernel: the kill must interrupt the worker
 * at one of those instructions, about once in millions of kills, and it
 * then blames a task whose call had begun. A pool that blamed a task it had
 * not started (marked too early, or blamed one queued behind the one that
 * ran) leaves windows of microseconds (the transfer, the decoding, the
 * wait in the queue) that this loop's kills hit every few rounds.
 *
 * The page reaches the workers before any task: forked workers inherit the
 * owner's mapping (and touch it in an atfork handler), spawned workers map
 * it in a constructor that runs before the library's own, which serves the
 * pool and never returns.
 */
enum { LOG_IDS = 2048 };
typedef struct log_page {
    _Atomic unsigned char started[LOG_IDS], done[LOG_IDS];
    _Atomic int answering; /* pid of t_big_answer's worker */
    _Atomic int go;        /* t_big_answer may build its answer */
} log_page;

/* This process's mapping of its pool owner's log (NULL: no log). */
static log_page *log_map;

static void log_path(char *buf, size_t n, pid_t owner)
{
    snprintf(buf, n, "/dev/shm/cf_remote_faults.%d.log", (int)owner);
}

/* Makes the page and the code that writes it present in this process: a
 * write to a scratch counter (the last id, which no test uses). */
static void log_touch(void)
{
    if (log_map)
        atomic_fetch_add_explicit(&log_map->started[LOG_IDS - 1], 1,
                                  memory_order_relaxed);
}

/* The records, each one store: the first and last action of a task. */
static inline void log_started(uint64_t id)
{
    if (log_map && id < LOG_IDS)
        atomic_fetch_add_explicit(&log_map->started[id], 1,
                                  memory_order_relaxed);
}

static void log_done(uint64_t id)
{
    if (log_map && id < LOG_IDS)
        atomic_fetch_add_explicit(&log_map->done[id], 1, memory_order_relaxed);
}

/* Maps owner's log, if it has one. */
static log_page *log_map_of(pid_t owner, int flags)
{
    char path[64];
    log_path(path, sizeof path, owner);
    return test_shm_map(path, flags, sizeof(log_page));
}

static int t_job(const void *in, size_t len, cf_buffer *out);

/* In a forked worker: touch the inherited page and the task's code. */
static void log_atfork_child(void)
{
    log_touch();
    t_job(NULL, 0, NULL);
}

/* In a spawned worker (this program started again with
 * CFUTURES_WORKER_FD set; the library's constructor, which runs after this
 * one, serves the pool and never returns): map the parent's log. In any
 * process: arrange for forked workers to touch theirs. */
__attribute__((constructor(101))) static void log_attach(void)
{
    pthread_atfork(NULL, NULL, log_atfork_child);
    if (!getenv("CFUTURES_WORKER_FD"))
        return;
    log_map = log_map_of(getppid(), 0);
    log_touch();
    t_job(NULL, 0, NULL);
}

typedef struct tlog {
    unsigned char *started, *done; /* counts per id */
    size_t n;
} tlog;

static void log_create(void)
{
    CHECK(log_map == NULL);
    log_map = log_map_of(getpid(), O_CREAT | O_TRUNC);
    CHECK(log_map != NULL);
}

/* The counts of ids below n, once every worker is gone. */
static tlog log_read(size_t n)
{
    CHECK(n < LOG_IDS);
    tlog l = { calloc(n, 1), calloc(n, 1), n };
    CHECK(l.started != NULL && l.done != NULL);
    for (size_t id = 0; id < n; id++) {
        l.started[id] = atomic_load(&log_map->started[id]);
        l.done[id] = atomic_load(&log_map->done[id]);
    }
    return l;
}

static void log_remove(tlog *l)
{
    char path[64];
    log_path(path, sizeof path, getpid());
    unlink(path);
    munmap(log_map, sizeof *log_map);
    log_map = NULL;
    free(l->started);
    free(l->done);
}

/* ---- tasks ------------------------------------------------------------- */

typedef struct job {
    uint64_t id;
    int64_t sleep_us; /* before answering */
    uint64_t out_len; /* result bytes (>= 8) */
    int64_t crash;    /* 1: SIGSEGV after starting */
} job;

/* Logs its start, works, logs its end, returns its id then filler. */
static int t_job(const void *in, size_t len, cf_buffer *out)
{
    job j;
    if (len != sizeof j)
        return CF_EINVAL;
    memcpy(&j.id, in, sizeof j.id); /* one load: the id leads */
    log_started(j.id);              /* before anything else */
    memcpy(&j, in, sizeof j);
    if (j.crash)
        raise(SIGSEGV);
    if (j.sleep_us)
        sleep_s((double)j.sleep_us * 1e-6);
    int rc = cf_buffer_reserve(out, j.out_len);
    if (rc)
        return rc;
    cf_buffer_append(out, &j.id, sizeof j.id);
    for (uint64_t k = sizeof j.id; k < j.out_len; k += 8)
        cf_buffer_append(out, &k, 8);
    log_done(j.id);
    return 0;
}

static cf_future *submit_job(cf_executor *ex, job j)
{
    cf_future *f = NULL;
    CHECK_EQ(cf_submit_bytes(ex, t_job, &j, sizeof j, &f), 0);
    return f;
}

static int t_square(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = 0;
    if (len == sizeof x)
        memcpy(&x, in, sizeof x);
    x *= x;
    return cf_buffer_append(out, &x, sizeof x);
}

static int t_sleep_ms(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = 0;
    if (len == sizeof x)
        memcpy(&x, in, sizeof x);
    sleep_s((double)x / 1000.0);
    return cf_buffer_append(out, &x, sizeof x);
}

static int t_pid(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    int64_t pid = getpid();
    return cf_buffer_append(out, &pid, sizeof pid);
}

static int t_print(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    printf("a line the task printed\n"); /* buffered: flushed after it */
    return cf_buffer_append(out, "done", 4);
}

static int t_crash(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    raise(SIGSEGV);
    return 0;
}

/* Initializers. The fork start method lets initarg be a pointer into
 * shared memory: a counter every worker's start bumps. */
static void *init_sleep(void *arg)
{
    (void)arg;
    sleep_s(0.01);
    return NULL;
}

static void *init_crash_first(void *arg)
{
    _Atomic int *starts = arg; /* [0] starts so far, [1] how many crash */
    int k = atomic_fetch_add(&starts[0], 1);
    if (k < atomic_load(&starts[1]))
        raise(SIGKILL); /* forked: a sanitizer would catch SIGSEGV */
    return NULL;
}

static void *init_hang_first(void *arg)
{
    _Atomic int *starts = arg;
    if (atomic_fetch_add(&starts[0], 1) == 0)
        for (;;)
            pause();
    return NULL;
}

static _Atomic int *shared_counters(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

/* ---- bugs, one case each ----------------------------------------------- */
/* While the doom file of the pool's owner exists, a worker's initializer
 * says READY itself, so the worker counts as started, and aborts before it
 * can start a task: as a worker does whose next task's function lives in a
 * library whose constructor crashes it. */
static void doom_path(char *buf, size_t n, pid_t owner)
{
    snprintf(buf, n, "/dev/shm/cf_remote_faults.%d.doom", (int)owner);
}

static void *init_doomed(void *arg)
{
    (void)arg;
    char path[64];
    doom_path(path, sizeof path, getppid());
    if (access(path, F_OK) != 0)
        return NULL;
    cf__frame h;
    cf__frame_set(&h, CF__FR_READY, 0, 0, 0);
    if (write(3, &h, sizeof h) == (ssize_t)sizeof h)
        abort();
    _exit(1);
}

static void unlink_doom(cf_future *f, void *path)
{
    (void)f;
    unlink(path);
}

/* A worker that dies before it is ready is a failed start: the parent
 * survives (this was a use-after-free), retries, and the tasks run. */
static void initializer_crash_is_a_failed_start(void)
{
    let_workers_die_by_signal();
    for (int round = 0; round < 20; round++) {
        _Atomic int *c = shared_counters();
        atomic_store(&c[1], 3);
        cf_options o = { .max_workers = 2,
                         .start_method = CF_START_FORK,
                         .initializer = init_crash_first,
                         .initarg = (void *)c };
        cf_executor *ex = cf_process_pool_new(&o);
        CHECK(ex != NULL);
        check_squares(ex, t_square, 8);
        cf_executor_free(ex);
        CHECK(atomic_load(&c[0]) >= 4);
        munmap((void *)c, 4096);
        no_children_left();
    }
}

/* An initializer that always crashes: no worker can start. After the
 * documented time the pending futures fail, naming the cause; nothing
 * hangs and the parent survives. */
static void initializer_always_crashes(void)
{
    let_workers_die_by_signal();
    _Atomic int *c = shared_counters();
    atomic_store(&c[1], 1 << 30);
    cf_options o = { .max_workers = 2,
                     .start_method = CF_START_FORK,
                     .initializer = init_crash_first,
                     .initarg = (void *)c };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *fs[4];
    for (int i = 0; i < 4; i++)
        fs[i] = submit_i64(ex, t_square, i);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(cf_future_exception(fs[i], 20.0 * test_scale(), NULL),
                 CF_EBROKEN);
        const char *msg = message_of(fs[i]);
        CHECK(strstr(msg, "cannot start a worker process") != NULL);
        CHECK(strstr(msg, "SIGKILL") != NULL);
        cf_future_release(fs[i]);
    }
    /* The starts recover: later work runs. */
    atomic_store(&c[1], 0);
    cf_future *f = submit_i64(ex, t_square, 7);
    CHECK_EQ(i64_of(f), 49);
    cf_future_release(f);
    cf_executor_free(ex);
    munmap((void *)c, 4096);
    no_children_left();
}

/* SIGKILL of replacements while they start: each is just a failed start,
 * and the pool goes on (it used to break for good). */
static void kill_starting_replacements(void)
{
    cf_options o = { .max_workers = 1,
                     .max_tasks_per_child = 1,
                     .initializer = init_sleep };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    int kills = 0;
    for (int round = 0; round < 7; round++) {
        cf_future *f = submit_i64(ex, t_sleep_ms, 0);
        pid_t kids[8];
        int n = 0;
        WAIT_UNTIL((n = children(kids, 8)) > 0, 5.0);
        for (int i = 0; i < n; i++)
            kills += kill(kids[i], SIGKILL) == 0;
        /* Whether the kill came before or after its task ran, the future
         * finishes: a success, or a failure of a task that started. */
        CHECK(cf_future_exception(f, 20.0 * test_scale(), NULL) !=
              CF_ETIMEDOUT);
        cf_future_release(f);
    }
    CHECK(kills > 0);
    check_squares(ex, t_square, 50);
    cf_executor_free(ex);
    no_children_left();
}

/* Crashing tasks fail themselves only: the tasks queued behind them on the
 * same worker (many, once the pool knows tasks are tiny) run elsewhere,
 * however many crashes come before them. */
static void crashes_never_blame_queued_tasks(void)
{
    let_workers_die_by_signal();
    cf_executor *ex = cf_process_pool_new(&(cf_options){ .max_workers = 1 });
    CHECK(ex != NULL);
    for (int i = 0; i < 300; i++) /* teaches the pool the tasks are tiny */
        cf_submit_bytes(ex, t_square, NULL, 0, NULL);
    enum { BAD = 4, GOOD = 20 };
    cf_future *bad[BAD], *good[GOOD];
    for (int i = 0; i < BAD; i++)
        bad[i] = submit_i64(ex, t_crash, 0);
    for (int i = 0; i < GOOD; i++)
        good[i] = submit_i64(ex, t_square, i);
    for (int i = 0; i < BAD; i++) {
        CHECK_EQ(cf_future_exception(bad[i], 30.0 * test_scale(), NULL),
                 CF_EBROKEN);
        CHECK(strstr(message_of(bad[i]), "SIGSEGV") != NULL);
        cf_future_release(bad[i]);
    }
    for (int i = 0; i < GOOD; i++) {
        CHECK_EQ(i64_of(good[i]), (int64_t)i * i);
        cf_future_release(good[i]);
    }
    cf_executor_free(ex);
}

/* task_timeout limits the task's run, not the transfer of its result: a
 * task that finished in time is not killed while its result is still on
 * its way (here the manager is held up by a slow done callback). */
static void hold_manager(cf_future *f, void *ctx)
{
    (void)f;
    sleep_s(*(double *)ctx);
}

static void timeout_spares_result_transfer(void)
{
    double limit = 0.5 * test_scale(), hold = 1.5 * test_scale();
    cf_options o = { .max_workers = 2, .task_timeout = limit };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    /* Both workers up first. */
    cf_future *warm[2] = { submit_i64(ex, t_sleep_ms, 100),
                           submit_i64(ex, t_sleep_ms, 100) };
    for (int i = 0; i < 2; i++) {
        i64_of(warm[i]);
        cf_future_release(warm[i]);
    }
    /* The first finishes at once and holds the manager; the second runs
     * 0.1 s and answers with 16 MB, more than a socket holds. */
    cf_future *a = submit_i64(ex, t_sleep_ms, 0);
    CHECK_EQ(cf_future_add_done_callback(a, hold_manager, &hold), 0);
    cf_future *b = submit_job(
        ex, (job){ .id = 1, .sleep_us = 100000, .out_len = 16u << 20 });
    i64_of(a);
    CHECK_EQ(i64_of(b), 1);
    cf_future_release(a);
    cf_future_release(b);
    cf_executor_free(ex);
}

/* Answers with 16 MB of zeros once log_map->go is set (at most 60 s on);
 * logs its worker's pid as it returns. */
static int t_big_answer(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    for (int i = 0; !atomic_load(&log_map->go) && i < 60000; i++)
        sleep_s(0.001);
    int64_t zero[1024] = { 0 };
    for (int i = 0; i < (16 << 20) / (int)sizeof zero; i++)
        if (cf_buffer_append(out, zero, sizeof zero))
            return CF_ENOMEM;
    atomic_store(&log_map->answering, (int)getpid());
    return 0;
}

/* Lets t_big_answer go on, then holds the manager up as hold_manager. */
static void go_and_hold(cf_future *f, void *ctx)
{
    atomic_store(&log_map->go, 1);
    hold_manager(f, ctx);
}

/* The transfer of a finished task's result has its own limit, on progress,
 * with or without task_timeout (here: none; test_process_pool's
 * lying_length_stalls has one): a worker stopped halfway through writing
 * it (SIGSTOP, while the manager is held up so that the socket is full) is
 * killed once no byte came for max(10 s, task_timeout), and the task fails
 * with CF_ETIME, as docs/process_pool.md says; the pool goes on. */
static void stalled_transfer_is_killed(void)
{
    double hold = 2.0 * test_scale();
    log_create();
    cf_options o = { .max_workers = 2 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    check_squares(ex, t_square, 4);
    /* a's done callback holds the manager from 0.1 s on, and only then
     * lets b build its answer: whether b waits behind a on a's worker or
     * runs on the other one (that depends on the dispatch window, which
     * follows measured task times), it answers while nobody reads. */
    cf_future *a = submit_i64(ex, t_sleep_ms, 100), *b = NULL;
    CHECK_EQ(cf_future_add_done_callback(a, go_and_hold, &hold), 0);
    CHECK_EQ(cf_submit_bytes(ex, t_big_answer, NULL, 0, &b), 0);
    int pid;
    for (int i = 0; (pid = atomic_load(&log_map->answering)) == 0; i++) {
        CHECK(i < 10000);
        sleep_s(0.001);
    }
    sleep_s(0.1 * test_scale()); /* it returned and fills the socket */
    CHECK_EQ(kill(pid, SIGSTOP), 0);
    i64_of(a);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(b, 60.0 * test_scale(), &msg), CF_ETIME);
    CHECK(msg && strstr(msg, "task finished, but its result made no progress"));
    check_squares(ex, t_square, 4);
    cf_future_release(a);
    cf_future_release(b);
    cf_executor_free(ex);
    tlog l = log_read(1);
    log_remove(&l);
    no_children_left();
}

/* A worker stopped between tasks (SIGSTOP from outside, no task_timeout)
 * starts none of the tasks handed to it: once the task next in line has
 * waited the transfer's limit (10 s) unstarted, the worker is killed and
 * the task, which never ran, runs on a new one. */
static void stopped_idle_worker_is_replaced(void)
{
    cf_options o = { .max_workers = 1 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *first = submit_i64(ex, t_pid, 0);
    int64_t pid = i64_of(first);
    CHECK_EQ(kill((pid_t)pid, SIGSTOP), 0);
    cf_future *next = submit_i64(ex, t_pid, 0),
              *sq = submit_i64(ex, t_square, 7);
    CHECK_EQ(cf_future_exception(next, 60.0 * test_scale(), NULL), 0);
    CHECK(i64_of(next) != pid);
    CHECK_EQ(i64_of(sq), 49);
    check_squares(ex, t_square, 4);
    cf_future_release(first);
    cf_future_release(next);
    cf_future_release(sq);
    cf_executor_free(ex);
    no_children_left();
}

/* A task's output is flushed within its run: a worker whose stdout is a
 * full pipe nobody reads (a paused pager) waits there, untimed without
 * task_timeout, and is not killed for a stalled transfer when the pipe
 * stays full past the transfer's limit (10 s). */
static void full_stdout_is_not_a_stall(void)
{
    int pfd[2], saved = dup(STDOUT_FILENO);
    CHECK(saved >= 0 && pipe2(pfd, O_NONBLOCK | O_CLOEXEC) == 0);
    char junk[4096] = { 0 };
    while (write(pfd[1], junk, sizeof junk) > 0) {
    }
    CHECK(fcntl(pfd[1], F_SETFL, 0) == 0); /* the worker's writes block */
    fflush(stdout);
    CHECK(dup2(pfd[1], STDOUT_FILENO) == STDOUT_FILENO);
    cf_options o = { .max_workers = 1 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit_bytes(ex, t_print, NULL, 0, &f), 0);
    sleep_s(11.0); /* past the transfer's limit, the pipe still full */
    CHECK(dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);
    close(saved);
    close(pfd[1]);
    const char *msg = NULL;
    int rc = CF_ETIMEDOUT;
    for (int i = 0; rc == CF_ETIMEDOUT && i < 3000 * test_scale(); i++) {
        while (read(pfd[0], junk, sizeof junk) > 0) { /* drain */
        }
        rc = cf_future_exception(f, 0.01, &msg);
    }
    close(pfd[0]);
    if (rc)
        fprintf(stderr, "%s: %s\n", cf_strerror(rc), msg ? msg : "");
    CHECK_EQ(rc, 0);
    cf_future_release(f);
    cf_executor_free(ex);
    no_children_left();
}

/* Tasks go only to workers that said READY: the first worker's
 * initializer hangs for good, and every task runs on the other one (one
 * handed to the hung worker would never finish); freeing the pool kills
 * the hung one. */
static cf_executor *pool_first_init_hangs(_Atomic int *starts)
{
    cf_options o = { .max_workers = 2,
                     .start_method = CF_START_FORK,
                     .initializer = init_hang_first,
                     .initarg = (void *)starts };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

static void hung_initializer_holds_no_task(void)
{
    _Atomic int *starts = shared_counters();
    cf_executor *ex = pool_first_init_hangs(starts);
    check_squares(ex, t_square, 20);
    CHECK_EQ(atomic_load(&starts[0]), 2);
    cf_executor_free(ex);
    munmap((void *)starts, 4096);
    no_children_left();
}

/* While the one worker its one task needs starts (its initializer hangs),
 * the manager sleeps until the worker says READY: with room for another
 * worker and a task it could not hand out yet, it used to poll in a loop,
 * a core's worth of CPU for as long as the start took. */
static void starting_worker_costs_no_cpu(void)
{
    _Atomic int *starts = shared_counters();
    cf_executor *ex = pool_first_init_hangs(starts);
    cf_future *f = submit_i64(ex, t_square, 3);
    for (int i = 0; atomic_load(&starts[0]) == 0; i++) {
        CHECK(i < 10000);
        sleep_s(0.001);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    sleep_s(1.0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double used =
        (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("  CPU used in 1 s while the worker starts: %.3f s\n", used);
    CHECK(used < 0.5);
    CHECK_EQ(cf_shutdown(ex, false, true), 0); /* its task never starts */
    CHECK(cf_future_cancelled(f));
    cf_future_release(f);
    cf_executor_free(ex);
    munmap((void *)starts, 4096);
    no_children_left();
}

/* Ready workers that die, again and again, before they start the task
 * next in line (here: a doomed initializer that says READY and aborts)
 * used to requeue it forever. After 5 such deaths that task fails alone,
 * naming the last death's cause; the tasks behind it (it stayed first in
 * line) run once the deaths stop, which its failure's callback arranges. */
static void next_in_line_deaths_fail_the_task(void)
{
    let_workers_die_by_signal();
    int fds = open_fds();
    char path[64];
    doom_path(path, sizeof path, getpid());
    cf_options o = { .max_workers = 1,
                     .max_tasks_per_child = 20,
                     .initializer = init_doomed };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    check_squares(ex, t_square, 20); /* measured; then its worker retires */
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    cf_future *next = submit_i64(ex, t_square, 3), *behind[3];
    CHECK_EQ(cf_future_add_done_callback(next, unlink_doom, path), 0);
    for (int i = 0; i < 3; i++)
        behind[i] = submit_i64(ex, t_square, i);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(next, 20.0 * test_scale(), &msg), CF_EBROKEN);
    CHECK(strstr(msg, "worker processes died 5 times with this task next "
                      "in line, before it started; the last one, process ") &&
          strstr(msg, "was killed by signal 6 (SIGABRT"));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(i64_of(behind[i]), (int64_t)i * i);
        cf_future_release(behind[i]);
    }
    check_squares(ex, t_square, 8);
    cf_future_release(next);
    cf_executor_free(ex);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ(open_fds(), fds);
    no_children_left();
}

/* ---- start-up failures under resource limits --------------------------- */

/* Lowers the soft descriptor limit and fills every free slot: no
 * descriptor can be made until fds_restore. */
typedef struct fd_squeeze {
    struct rlimit old;
    int fill[64];
    int n;
} fd_squeeze;

static void fds_squeeze(fd_squeeze *s)
{
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &s->old), 0);
    struct rlimit low = { (rlim_t)open_fds() + 4, s->old.rlim_max };
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    s->n = 0;
    int fd;
    while (s->n < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        s->fill[s->n++] = fd;
    CHECK_EQ(errno, EMFILE);
}

static void fds_restore(fd_squeeze *s)
{
    for (int i = 0; i < s->n; i++)
        close(s->fill[i]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &s->old), 0);
}

/* One worker running, then no descriptors left: its replacement cannot
 * start. Every pending future fails with the reason (nothing hangs: this
 * used to sleep forever once the running worker retired), and the pool
 * recovers when descriptors come back. */
static void no_descriptors_fails_pending_then_recovers(void)
{
    int fds = open_fds();
    cf_options o = { .max_workers = 2, .max_tasks_per_child = 1 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *running = submit_i64(ex, t_sleep_ms, 300);
    WAIT_UNTIL(cf_future_running(running), 10.0);
    sleep_s(0.05);
    fd_squeeze s;
    fds_squeeze(&s);
    enum { N = 6 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_square, i);
    CHECK_EQ(i64_of(running), 300);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(cf_future_exception(fs[i], 20.0 * test_scale(), NULL),
                 CF_EBROKEN);
        CHECK(strstr(message_of(fs[i]), "cannot start a worker process: "
                                        "Too many open files") != NULL);
        cf_future_release(fs[i]);
    }
    cf_future_release(running);
    fds_restore(&s);
    cf_future *f = submit_i64(ex, t_square, 5);
    CHECK_EQ(i64_of(f), 25);
    cf_future_release(f);
    cf_executor_free(ex);
    CHECK_EQ(open_fds(), fds);
    no_children_left();
}

/* Descriptors come back before the pool gives up: every task runs. */
static void no_descriptors_for_a_moment(void)
{
    cf_options o = { .max_workers = 2, .max_tasks_per_child = 1 };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *first = submit_i64(ex, t_sleep_ms, 1);
    i64_of(first);
    cf_future_release(first);
    fd_squeeze s;
    fds_squeeze(&s);
    enum { N = 6 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, t_square, i);
    sleep_s(0.3);
    fds_restore(&s);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        cf_future_release(fs[i]);
    }
    cf_executor_free(ex);
    no_children_left();
}

/* As user nobody, with a process limit already reached: starts fail with
 * EAGAIN, pending futures fail with the reason, then the pool recovers
 * when the limit is raised. Needs root to become nobody; skipped without. */
static void process_limit_as_nobody(void)
{
    if (getuid() != 0) {
        printf("  (skipped: not root)\n");
        return;
    }
    CHECK_EQ(setgroups(0, NULL), 0);
    CHECK_EQ(setgid(65534), 0);
    CHECK_EQ(setuid(65534), 0);
    prctl(PR_SET_DUMPABLE, 1); /* leak checkers attach to our threads */
    cf_options o = { .max_workers = 1, .start_method = CF_START_FORK };
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    struct rlimit old;
    CHECK_EQ(getrlimit(RLIMIT_NPROC, &old), 0);
    struct rlimit low = { 1, old.rlim_max }; /* we have 2 threads already */
    CHECK_EQ(setrlimit(RLIMIT_NPROC, &low), 0);
    cf_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = submit_i64(ex, t_square, i);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(cf_future_exception(fs[i], 20.0 * test_scale(), NULL),
                 CF_EBROKEN);
        CHECK(strstr(message_of(fs[i]),
                     "cannot start a worker process: "
                     "Resource temporarily unavailable") != NULL);
        cf_future_release(fs[i]);
    }
    CHECK_EQ(setrlimit(RLIMIT_NPROC, &old), 0);
    cf_future *f = submit_i64(ex, t_square, 3);
    CHECK_EQ(i64_of(f), 9);
    cf_future_release(f);
    cf_executor_free(ex);
    no_children_left();
}

/* ---- the kill loop ----------------------------------------------------- */

typedef struct killer {
    pthread_t th;
    atomic_bool stop;
    atomic_int kills;
    unsigned seed;
    int max_kills;
} killer;

/* Kills a random child now and then: starting, running a task, sending
 * a result, idle between tasks, or retiring. */
static void *killer_main(void *arg)
{
    killer *k = arg;
    while (!atomic_load(&k->stop) && atomic_load(&k->kills) < k->max_kills) {
        sleep_s((double)(rand_r(&k->seed) % 20000) * 1e-6);
        pid_t kids[16];
        int n = children(kids, 16);
        if (n > 0 && kill(kids[rand_r(&k->seed) % n], SIGKILL) == 0)
            atomic_fetch_add(&k->kills, 1);
    }
    return NULL;
}

static void killer_start(killer *k, unsigned seed, int max_kills)
{
    atomic_store(&k->stop, false);
    atomic_store(&k->kills, 0);
    k->seed = seed;
    k->max_kills = max_kills;
    CHECK_EQ(pthread_create(&k->th, NULL, killer_main, k), 0);
}

static int killer_stop(killer *k)
{
    atomic_store(&k->stop, true);
    pthread_join(k->th, NULL);
    return atomic_load(&k->kills);
}

/* Checks what a finished job's future says against the log. */
static void check_job(cf_future *f, uint64_t id, const tlog *l)
{
    CHECK(cf_future_done(f));
    const void *data;
    size_t len;
    int rc = cf_future_bytes(f, 0, &data, &len);
    CHECK(l->started[id] <= 1); /* nothing ran twice */
    if (rc == 0) {
        uint64_t got;
        CHECK(len >= sizeof got);
        memcpy(&got, data, sizeof got);
        CHECK_EQ(got, id);
        CHECK_EQ(l->started[id], 1);
        CHECK_EQ(l->done[id], 1);
        return;
    }
    if (l->started[id] != 1)
        fprintf(stderr, "job %llu failed without running: %s: %s\n",
                (unsigned long long)id, cf_strerror(rc), message_of(f));
    CHECK_EQ(rc, CF_EBROKEN);
    CHECK_EQ(l->started[id], 1); /* blamed only if it ran */
    CHECK(strstr(message_of(f), "SIGKILL") != NULL);
}

static job random_job(uint64_t id, unsigned *seed)
{
    job j = { .id = id, .out_len = 8 };
    switch (rand_r(seed) % 4) {
    case 0: break; /* tiny */
    case 1: j.sleep_us = rand_r(seed) % 5000; break;
    case 2: j.out_len = 1u << 20; break; /* a result that takes a while */
    default: j.sleep_us = rand_r(seed) % 500; break;
    }
    return j;
}

static void kill_loop_round(int round, int fds)
{
    enum { N = 80, AFTER = 10 };
    unsigned seed = 1234u + (unsigned)round;
    cf_options o = { .max_workers = 3,
                     .initializer = round % 2 ? NULL : init_sleep,
                     .max_tasks_per_child = round % 3 == 0 ? 7 : 0,
                     .start_method =
                         round % 4 == 1 ? CF_START_FORK : CF_START_SPAWN };
    log_create();
    cf_executor *ex = cf_process_pool_new(&o);
    CHECK(ex != NULL);
    killer k;
    killer_start(&k, seed, 12);
    cf_future *fs[N + AFTER];
    for (int i = 0; i < N; i++) {
        fs[i] = submit_job(ex, random_job((uint64_t)i, &seed));
        if (i % 16 == 0)
            sleep_s(0.005);
    }
    for (int i = 0; i < N; i++)
        CHECK(cf_future_exception(fs[i], 60.0 * test_scale(), NULL) !=
              CF_ETIMEDOUT);
    int kills = killer_stop(&k), failed = 0;
    for (int i = 0; i < N; i++)
        failed += cf_future_exception(fs[i], 0, NULL) != 0;
    printf("  round %d: %d kills, %d of %d tasks failed\n", round, kills,
           failed, N);
    /* Usable after: nothing more fails. */
    for (int i = N; i < N + AFTER; i++)
        fs[i] = submit_job(ex, (job){ .id = (uint64_t)i, .out_len = 8 });
    for (int i = N; i < N + AFTER; i++)
        CHECK_EQ(i64_of(fs[i]), i);
    /* Kills during shutdown: more work, shut down, kill what is left. */
    cf_future *late[8];
    for (int i = 0; i < 8; i++)
        late[i] = submit_i64(ex, t_sleep_ms, 20);
    CHECK_EQ(cf_shutdown(ex, false, false), 0);
    killer_start(&k, seed + 7, 3);
    cf_executor_free(ex);
    killer_stop(&k);
    tlog l = log_read(N + AFTER);
    for (int i = 0; i < N + AFTER; i++) {
        check_job(fs[i], (uint64_t)i, &l);
        cf_future_release(fs[i]);
    }
    for (int i = 0; i < 8; i++) {
        CHECK(cf_future_done(late[i]));
        int rc = cf_future_exception(late[i], 0, NULL);
        CHECK(rc == 0 || rc == CF_EBROKEN);
        cf_future_release(late[i]);
    }
    log_remove(&l);
    CHECK_EQ(open_fds(), fds);
    no_children_left();
}

static void kill_loop(void)
{
    int fds = open_fds();
    int rounds = 8;
    const char *env = getenv("CF_FAULT_ROUNDS");
    if (env && atoi(env) > 0)
        rounds = atoi(env);
    for (int round = 0; round < rounds; round++)
        kill_loop_round(round, fds);
}

static const test_case cases[] = {
    TEST_CASE(initializer_crash_is_a_failed_start),
    TEST_CASE(initializer_always_crashes),
    TEST_CASE(kill_starting_replacements),
    TEST_CASE(crashes_never_blame_queued_tasks),
    TEST_CASE(timeout_spares_result_transfer),
    TEST_CASE_SLOW(stalled_transfer_is_killed),
    TEST_CASE_SLOW(stopped_idle_worker_is_replaced),
    TEST_CASE_SLOW(full_stdout_is_not_a_stall),
    TEST_CASE(hung_initializer_holds_no_task),
    TEST_CASE(starting_worker_costs_no_cpu),
    TEST_CASE(next_in_line_deaths_fail_the_task),
    TEST_CASE(no_descriptors_fails_pending_then_recovers),
    TEST_CASE(no_descriptors_for_a_moment),
    TEST_CASE(process_limit_as_nobody),
    TEST_CASE(kill_loop),
};

TEST_MAIN(cases)
