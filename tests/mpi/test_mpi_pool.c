/* SPDX-License-Identifier: MIT */
/*
 * test_mpi_pool.c - the MPI executor (cfutures/mpi.h). ctest runs it under
 * mpiexec with 3 ranks (the root and two workers) and with 1 rank (the
 * root runs the tasks itself).
 *
 * An MPI process must not fork and go on using MPI, so this file does not
 * use the forking runner of harness.h: every rank runs the cases in order,
 * in lockstep. Each case says how many pools it makes; the root runs the
 * case body, the other ranks serve that many pools (cf_mpi_pool_new returns
 * NULL with errno 0 on them each time the root shuts one down). A failed
 * CHECK exits the root, and mpiexec then ends the job with an error; an
 * alarm bounds every case on every rank. `test_mpi_pool NAME...` runs some;
 * `--quick` runs all but those that mostly wait, `--slow` only those.
 */
#include "harness.h"
#include "mpi/transport.h"

#include <cfutures/mpi.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>

static int world_rank, world_size;
static int rank_pid[64]; /* every rank's pid (main), for the signal cases */

/* ---- tasks (they run on the worker ranks) --------------------------------- */

static int64_t get_i64(const void *in, size_t len)
{
    int64_t x = 0;
    memcpy(&x, in, len < sizeof x ? len : sizeof x);
    return x;
}

static int put_i64(cf_buffer *out, int64_t x)
{
    return cf_buffer_append(out, &x, sizeof x);
}

static int square(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = get_i64(in, len);
    return put_i64(out, x * x);
}

static int echo(const void *in, size_t len, cf_buffer *out)
{
    return cf_buffer_append(out, in, len);
}

static int nothing(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    return 0;
}

/* Fails odd inputs with a message, even ones with a bare code. */
static int failing(const void *in, size_t len, cf_buffer *out)
{
    int64_t x = get_i64(in, len);
    (void)out;
    if (x % 2) {
        cf_fail(-4242, "odd input %lld on the worker", (long long)x);
        return 0; /* the recorded failure wins */
    }
    return CF_ETIMEDOUT;
}

/* Sleeps the input in milliseconds, returns this process's pid. */
static int nap(const void *in, size_t len, cf_buffer *out)
{
    sleep_s((double)get_i64(in, len) / 1000.0);
    return put_i64(out, getpid());
}

/* Sleeps 20 ms on world rank 1, 1 ms elsewhere; returns the pid. */
static int slow_on_rank1(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    sleep_s(world_rank == 1 ? 0.020 : 0.001);
    return put_i64(out, getpid());
}

/* Crashes its process (isolated pools only). */
static int crash(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    raise(SIGSEGV);
    return 0;
}

/* Kills its own process (isolated pools only); SIGKILL, so that no
 * sanitizer turns it into an exit status. */
static int die(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    (void)out;
    raise(SIGKILL);
    return 0;
}

static int64_t init_seen;

static const int64_t forty_two = 42;

/* initarg points to static data, as a spawned process pool wants. */
static void *init_mark(void *arg)
{
    init_seen = *(const int64_t *)arg;
    return NULL;
}

/* Kills the first worker process its rank starts, before it is ready; a
 * file named after the rank's pid remembers that it did. */
static void *init_crash_once(void *arg)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/cf_mpi_init_crash.%d", (int)getppid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        raise(SIGKILL);
    }
    unlink(path);
    init_seen = *(const int64_t *)arg;
    return NULL;
}

static const cf_options opts_init_crash_once = { .initializer = init_crash_once,
                                                 .initarg =
                                                     (void *)&forty_two };

static void *init_fail(void *arg)
{
    (void)arg;
    cf_fail(CF_EINVAL, "no database on this rank");
    return NULL;
}

static int read_init(const void *in, size_t len, cf_buffer *out)
{
    (void)in;
    (void)len;
    return put_i64(out, init_seen);
}

/* ---- helpers on the root ---------------------------------------------------- */

static int n_workers(void)
{
    return world_size > 1 ? world_size - 1 : 1;
}

static cf_executor *make_pool(const cf_options *opts)
{
    cf_executor *ex = cf_mpi_pool_new(MPI_COMM_WORLD, 0, opts);
    CHECK(ex != NULL);
    return ex;
}

static cf_executor *make_isolated_pool(const cf_options *opts)
{
    cf_executor *ex = cf_mpi_pool_new_isolated(MPI_COMM_WORLD, 0, opts);
    CHECK(ex != NULL);
    return ex;
}

/* Waits until the pool's workers said hello (stats.workers). */
static void wait_workers(cf_executor *ex, size_t n)
{
    cf_stats st;
    double t0 = now_s();
    do {
        CHECK_EQ(cf_executor_stats(ex, &st), 0);
        if (st.workers >= n)
            return;
        sleep_s(0.001);
    } while (now_s() - t0 < 20.0 * test_scale());
    fprintf(stderr, "only %zu of %zu workers started\n", st.workers, n);
    exit(1);
}

/* ---- cases ------------------------------------------------------------------ */

static void results(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 300 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, square, i - 100);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(i64_of(fs[i]), (int64_t)(i - 100) * (i - 100));
        cf_future_release(fs[i]);
    }
    /* Fire and forget, an empty input, an empty result. */
    int64_t x = 3;
    CHECK_EQ(cf_submit_bytes(ex, square, &x, sizeof x, NULL), 0);
    cf_future *f;
    CHECK_EQ(cf_submit_bytes(ex, echo, NULL, 0, &f), 0);
    const void *data;
    size_t len = 99;
    CHECK_EQ(cf_future_bytes(f, CF_FOREVER, &data, &len), 0);
    CHECK_EQ(len, 0);
    cf_future_release(f);
    CHECK_EQ(cf_submit_bytes(ex, nothing, &x, sizeof x, &f), 0);
    CHECK_EQ(cf_future_bytes(f, CF_FOREVER, &data, &len), 0);
    CHECK_EQ(len, 0);
    cf_future_release(f);
    cf_executor_free(ex);
}

static void pointer_tasks_refused(void)
{
    cf_executor *ex = make_pool(NULL);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, (cf_fn)init_mark, NULL, &f), CF_EINVAL);
    CHECK(f == NULL);
    void *args[2] = { NULL, NULL };
    cf_map *m = NULL;
    CHECK_EQ(cf_map_new(&m, ex, init_mark, args, 2, 0, CF_FOREVER), CF_EINVAL);
    /* A function in no loaded module cannot be named to another rank. */
    void *not_code = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(not_code != MAP_FAILED);
    CHECK_EQ(cf_submit_bytes(ex, (cf_bytes_fn)not_code, NULL, 0, &f),
             CF_EINVAL);
    munmap(not_code, 4096);
    CHECK_EQ(cf_submit_bytes(NULL, echo, NULL, 0, &f), CF_EINVAL);
    CHECK_EQ(cf_submit_bytes(ex, NULL, NULL, 0, &f), CF_EINVAL);
    CHECK_EQ(cf_submit_bytes(ex, echo, NULL, 5, &f), CF_EINVAL);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.queued + st.running + st.completed + st.failed, 0);
    cf_executor_free(ex);
}

/* A map-like loop: results read back in input order. */
static void map_order(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 2000 };
    cf_future **fs = malloc(N * sizeof *fs);
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, i % 3 ? square : nap, i % 3 ? i : 0);
    for (int i = 0; i < N; i++) {
        int64_t v = i64_of(fs[i]);
        if (i % 3)
            CHECK_EQ(v, (int64_t)i * i);
        cf_future_release(fs[i]);
    }
    free(fs);
    cf_executor_free(ex);
}

static void failures_carry_messages(void)
{
    cf_executor *ex = make_pool(NULL);
    cf_future *odd = submit_i64(ex, failing, 7);
    cf_future *even = submit_i64(ex, failing, 8);
    cf_future *ok = submit_i64(ex, square, 9);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(odd, CF_FOREVER, &msg), -4242);
    CHECK(msg && strcmp(msg, "odd input 7 on the worker") == 0);
    CHECK_EQ(cf_future_result(odd, 0, NULL), -4242);
    CHECK_EQ(cf_future_exception(even, CF_FOREVER, &msg), CF_ETIMEDOUT);
    CHECK(msg && strcmp(msg, cf_strerror(CF_ETIMEDOUT)) == 0);
    CHECK_EQ(cf_future_bytes(even, 0, NULL, NULL), CF_ETIMEDOUT);
    CHECK_EQ(i64_of(ok), 81);
    cf_future_release(odd);
    cf_future_release(even);
    cf_future_release(ok);
    cf_stats st;
    cf_executor_free(ex);
    (void)st;
}

static void big_payload(void)
{
    cf_executor *ex = make_pool(NULL);
    size_t n = 24u << 20;
    unsigned char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 2654435761u >> 24);
    cf_future *fs[3];
    for (int k = 0; k < 3; k++)
        CHECK_EQ(cf_submit_bytes(ex, echo, in, n - (size_t)k, &fs[k]), 0);
    for (int k = 0; k < 3; k++) {
        const void *data;
        size_t len;
        CHECK_EQ(cf_future_bytes(fs[k], CF_FOREVER, &data, &len), 0);
        CHECK_EQ(len, n - (size_t)k);
        CHECK(memcmp(data, in, len) == 0);
        cf_future_release(fs[k]);
    }
    free(in);
    cf_executor_free(ex);
}

/* Makes every worker busy for ms milliseconds with one gate task each,
 * after teaching the pool that tasks are long (so it hands out one at a
 * time): what is submitted next stays pending at the root. */
static void occupy(cf_executor *ex, int ms, cf_future **gates)
{
    int w = n_workers();
    wait_workers(ex, (size_t)w);
    for (int i = 0; i < w; i++)
        gates[i] = submit_i64(ex, nap, 50);
    for (int i = 0; i < w; i++) {
        i64_of(gates[i]);
        cf_future_release(gates[i]);
    }
    for (int i = 0; i < w; i++)
        gates[i] = submit_i64(ex, nap, ms);
    sleep_s(0.05);
}

static void cancel_pending(void)
{
    cf_executor *ex = make_pool(NULL);
    int w = n_workers();
    cf_future *gates[8];
    occupy(ex, (int)(400 * test_scale()), gates);
    enum { N = 20 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, square, i);
    sleep_s(0.05);
    /* Every worker runs its gate and the pool hands out long tasks one at
     * a time: these are still pending, and cancel takes them back. */
    for (int i = N / 2; i < N; i++) {
        CHECK(cf_future_cancel(fs[i]));
        CHECK(cf_future_cancelled(fs[i]));
        CHECK_EQ(cf_future_result(fs[i], 0, NULL), CF_ECANCELED);
    }
    for (int i = 0; i < N / 2; i++)
        CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
    for (int i = 0; i < w; i++) {
        CHECK(!cf_future_cancel(gates[i])); /* running or done */
        i64_of(gates[i]);
        cf_future_release(gates[i]);
    }
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.cancelled, N / 2);
    CHECK_EQ(st.completed, N / 2 + 2 * w);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.running, 0);
    for (int i = 0; i < N; i++)
        cf_future_release(fs[i]);
    cf_executor_free(ex);
}

static void shutdown_wait(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 40 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, nap, 5);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    for (int i = 0; i < N; i++) {
        CHECK(cf_future_done(fs[i]));
        i64_of(fs[i]);
        cf_future_release(fs[i]);
    }
    cf_future *f = NULL;
    int64_t x = 1;
    CHECK_EQ(cf_submit_bytes(ex, square, &x, sizeof x, &f), CF_ESHUTDOWN);
    CHECK(f == NULL);
    CHECK_EQ(cf_shutdown(ex, true, false), 0); /* idempotent */
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    cf_executor_free(ex);
}

static void shutdown_nowait(void)
{
    cf_executor *ex = make_pool(NULL);
    int w = n_workers();
    cf_future **fs = calloc((size_t)w + 1, sizeof *fs);
    CHECK(fs != NULL);
    for (int i = 0; i < w; i++)
        fs[i] = submit_i64(ex, nap, 300);
    CHECK_TIME(CHECK_EQ(cf_shutdown(ex, false, false), 0), 0, 0.2);
    int64_t x = 1;
    CHECK_EQ(cf_submit_bytes(ex, square, &x, sizeof x, NULL), CF_ESHUTDOWN);
    for (int i = 0; i < w; i++) {
        i64_of(fs[i]);
        cf_future_release(fs[i]);
    }
    free(fs);
    cf_executor_free(ex);
}

static void shutdown_cancel_futures(void)
{
    cf_executor *ex = make_pool(NULL);
    int w = n_workers();
    cf_future *gates[8];
    occupy(ex, (int)(300 * test_scale()), gates);
    enum { N = 30 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, square, i);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    size_t cancelled = 0;
    for (int i = 0; i < N; i++) {
        if (cf_future_cancelled(fs[i]))
            cancelled++;
        else
            CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
    }
    CHECK(cancelled >= N - (size_t)w); /* a second batch each, at most */
    for (int i = 0; i < w; i++) {
        i64_of(gates[i]);
        cf_future_release(gates[i]);
    }
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.cancelled, cancelled);
    CHECK_EQ(st.completed, N - cancelled + 2 * (size_t)w);
    for (int i = 0; i < N; i++)
        cf_future_release(fs[i]);
    cf_executor_free(ex);
}

/* cf_executor_free with work still queued: it all runs first. */
static void free_runs_pending(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 500 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, square, i);
    cf_executor_free(ex);
    for (int i = 0; i < N; i++) {
        CHECK(cf_future_done(fs[i]));
        CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        cf_future_release(fs[i]);
    }
}

static void stats_count(void)
{
    cf_executor *ex = make_pool(NULL);
    wait_workers(ex, (size_t)n_workers());
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.workers, n_workers());
    CHECK_EQ(st.idle, n_workers());
    enum { N = 100 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, i < 10 ? failing : square, i);
    for (int i = 0; i < N; i++)
        cf_future_result(fs[i], CF_FOREVER, NULL);
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.completed, N - 10);
    CHECK_EQ(st.failed, 10);
    CHECK_EQ(st.cancelled, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.running, 0);
    CHECK_EQ(st.workers, n_workers());
    for (int i = 0; i < N; i++)
        cf_future_release(fs[i]);
    CHECK_EQ(cf_executor_stats(ex, NULL), CF_EINVAL);
    cf_executor_free(ex);
}

/* wait and as_completed work on MPI futures like on any other. */
static void wait_and_as_completed(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 50 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, nap, i % 5);
    CHECK_EQ(cf_wait(fs, N, CF_FOREVER, CF_ALL_COMPLETED), 0);
    cf_as_completed *it;
    CHECK_EQ(cf_as_completed_new(&it, fs, N, CF_FOREVER), 0);
    int n = 0;
    cf_future *f;
    while (cf_as_completed_next(it, &f) == 0)
        n++;
    CHECK_EQ(n, N);
    cf_as_completed_free(it);
    for (int i = 0; i < N; i++)
        cf_future_release(fs[i]);
    cf_executor_free(ex);
}

/* The pool still works, with every task answered. */
static void check_still_works(cf_executor *ex)
{
    cf_future *fs[50];
    for (int i = 0; i < 50; i++)
        fs[i] = submit_i64(ex, square, i);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
        cf_future_release(fs[i]);
    }
}

/* ---- hostile peers: a fake worker rank, a fake root -------------------------
 *
 * They speak the transport's protocol (transport.h) over their own
 * duplicate of MPI_COMM_WORLD, which pairs with the one the real pool
 * makes, and send what no honest peer would. */

/* Receives the next message from src: its tag; *buf (grown) and *len. */
static int recv_from(MPI_Comm comm, int src, unsigned char **buf, int *len)
{
    MPI_Status st;
    CHECK_EQ(cf__mpi_probe(comm, src, &st), MPI_SUCCESS);
    CHECK_EQ(MPI_Get_count(&st, MPI_BYTE, len), MPI_SUCCESS);
    CHECK((*buf = realloc(*buf, (size_t)*len + 1)) != NULL);
    CHECK_EQ(MPI_Recv(*buf, *len, MPI_BYTE, src, st.MPI_TAG, comm,
                      MPI_STATUS_IGNORE),
             MPI_SUCCESS);
    return st.MPI_TAG;
}

/* Appends a frame (a valid header, then payload p[0..len)). */
static void put_frame(cf_buffer *b, uint16_t type, uint64_t id, int32_t aux,
                      const void *p, size_t len)
{
    cf__frame h;
    cf__frame_set(&h, type, id, len, aux);
    CHECK_EQ(cf_buffer_append(b, &h, sizeof h), 0);
    CHECK_EQ(cf_buffer_append(b, p, len), 0);
}

static void send_to_rank(MPI_Comm comm, int dst, int tag, const void *m,
                         size_t len)
{
    CHECK_EQ(MPI_Send(m, (int)len, MPI_BYTE, dst, tag, comm), MPI_SUCCESS);
}

/* What a fake rank sends for a batch (by its number, in turn); the
 * last ones are harmless and every task succeeds. */
enum {
    ANS_VALID,
    ANS_BAD_MAGIC,   /* a result frame's magic: "malformed result frame" */
    ANS_CUT_SHORT,   /* the message ends mid-frame: "cut short" */
    ANS_GARBAGE,     /* the whole message: "malformed result message" */
    ANS_WRONG_BATCH, /* answers to a batch not sent: the same */
    ANS_TOO_MANY,    /* more answers than tasks: the same */
    ANS_TOO_FEW,     /* final, one short, nothing for it: "answered" */
    ANS_NO_CODE,     /* a FAIL frame with code 0: "not an answer" */
    ANS_SPLIT,       /* two messages, the first not final */
    ANS_STRAY,       /* first a second hello, an unknown tag, a stale id */
    ANS_MODES
};

/* Sends the answers to tasks [first, first + count) of batch seq (their
 * values v), final or not. */
static void send_answers(MPI_Comm comm, uint64_t seq, uint32_t first,
                         const int64_t *v, uint32_t count, bool final, int mode)
{
    cf_buffer pl = { NULL, 0 }, msg = { NULL, 0 };
    cf__answers a = { count + (mode == ANS_TOO_MANY) - (mode == ANS_TOO_FEW),
                      final, 1000 };
    CHECK_EQ(cf_buffer_append(&pl, &a, sizeof a), 0);
    for (uint32_t i = 0; i < count - (mode == ANS_TOO_FEW); i++) {
        size_t at = pl.b->len;
        if (mode == ANS_NO_CODE && i == 0)
            put_frame(&pl, CF__FR_FAIL, first + i, 0, "x", 2);
        else
            put_frame(&pl, CF__FR_RESULT, first + i, 0, &v[first + i], 8);
        if (mode == ANS_BAD_MAGIC && i == count / 2)
            pl.b->data[at] ^= 0xff;
    }
    put_frame(&msg, CF__FR_ANSWERS, seq + (mode == ANS_WRONG_BATCH ? 1000 : 0),
              (int32_t)first, pl.b->data, pl.b->len);
    size_t len = msg.b->len - (mode == ANS_CUT_SHORT ? 4 : 0);
    for (size_t i = 0; mode == ANS_GARBAGE && i < len; i++)
        msg.b->data[i] = (unsigned char)(i * 131 + 7);
    send_to_rank(comm, 0, TAG_RESULTS, msg.b->data, len);
    free(pl.b);
    free(msg.b);
}

/* A fake worker rank: says hello, then answers each batch of `square`
 * tasks in one of the ways above, in turn, until a task's input is
 * SENTINEL (then honestly, with its rank for SENTINEL), until STOP. */
enum { SENTINEL = 1000003 };
static void fake_rank(void)
{
    MPI_Comm comm;
    CHECK_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &comm), MPI_SUCCESS);
    cf_buffer hello = { NULL, 0 };
    put_frame(&hello, CF__FR_HELLO, 0, 0, "fake", 5);
    send_to_rank(comm, 0, TAG_HELLO, hello.b->data, hello.b->len);
    unsigned char *in = NULL;
    int len;
    unsigned batches = 0;
    bool honest = false;
    static int64_t v[BATCH_MAX_TASKS];
    while (recv_from(comm, 0, &in, &len) == TAG_TASKS) {
        cf__rd rd = { in, (size_t)len };
        cf__frame b, t;
        const unsigned char *p;
        CHECK(cf__rd_frame(&rd, &b, &p) == NULL && b.type == CF__FR_BATCH);
        rd = (cf__rd){ p, (size_t)b.len };
        uint32_t n = (uint32_t)b.aux;
        CHECK(n >= 1 && n <= BATCH_MAX_TASKS);
        for (uint32_t i = 0; i < n; i++) {
            CHECK(cf__rd_frame(&rd, &t, &p) == NULL && t.type == CF__FR_TASK);
            int64_t x = get_i64(p + 8 + t.aux, 8);
            honest |= x == SENTINEL;
            v[i] = x == SENTINEL ? world_rank : x * x;
        }
        int mode = honest ? ANS_VALID : (int)(batches++ % ANS_MODES);
        if (mode == ANS_STRAY) {
            send_to_rank(comm, 0, TAG_HELLO, hello.b->data, hello.b->len);
            send_to_rank(comm, 0, 99, "?", 1);
            send_answers(comm, b.id - 1, 0, v, n, true, ANS_VALID);
        }
        if (mode == ANS_SPLIT && n > 1) {
            send_answers(comm, b.id, 0, v, n / 2, false, ANS_VALID);
            send_answers(comm, b.id, n / 2, v, n - n / 2, true, ANS_VALID);
        } else {
            send_answers(comm, b.id, 0, v, n, true, mode);
        }
    }
    free(in);
    free(hello.b);
    MPI_Comm_free(&comm);
}

/* Fake ranks answer with bad frames, bad messages, answers to the wrong
 * batch, too many or too few, strays: the root never crashes, each task
 * gets its value or CF_EBROKEN naming the rank and what was wrong, and
 * the pool goes on with the same ranks once they answer honestly. */
static void hostile_answers(void)
{
    if (world_size < 2)
        return;
    if (world_rank != 0) {
        fake_rank();
        return;
    }
    cf_executor *ex = make_pool(NULL);
    static const char *const says[] = { "malformed result frame", "cut short",
                                        "malformed result message", "answered",
                                        "not an answer" };
    int seen[5] = { 0 }, ok = 0;
    for (int wave = 0; wave < 150; wave++) {
        cf_future *fs[4];
        for (int i = 0; i < 4; i++)
            fs[i] = submit_i64(ex, square, wave * 4 + i);
        for (int i = 0; i < 4; i++) {
            const char *msg = NULL;
            int64_t x = wave * 4 + i;
            int rc = cf_future_exception(fs[i], 30.0 * test_scale(), &msg);
            if (rc == 0 && ++ok)
                CHECK_EQ(i64_of(fs[i]), x * x);
            else if (rc != CF_EBROKEN || !msg || !strstr(msg, "MPI rank"))
                CHECK(!"a task failed other than as broken by its rank");
            for (int k = 0; rc && k < 5; k++)
                seen[k] += strstr(msg, says[k]) != NULL;
            cf_future_release(fs[i]);
        }
    }
    printf("     hostile_answers: %d of 600 tasks answered well; failed as "
           "'%s' %d, '%s' %d, '%s' %d, '%s' %d, '%s' %d\n",
           ok, says[0], seen[0], says[1], seen[1], says[2], seen[2], says[3],
           seen[3], says[4], seen[4]);
    for (int k = 0; k < 5; k++)
        CHECK(seen[k] > 0);
    CHECK(ok > 0);
    /* Every fake rank turns honest once it gets a SENTINEL task. */
    bool honest[64] = { false };
    for (int left = world_size - 1; left > 0;) {
        cf_future *f = submit_i64(ex, square, SENTINEL);
        const void *data;
        size_t len;
        int64_t r;
        if (cf_future_bytes(f, 30.0 * test_scale(), &data, &len) == 0) {
            memcpy(&r, data, sizeof r);
            CHECK(r >= 1 && r < world_size);
            left -= !honest[r];
            honest[r] = true;
        }
        cf_future_release(f);
    }
    check_still_works(ex);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.workers, (size_t)(world_size - 1));
    cf_executor_free(ex);
}

/* What a fake root sends a real rank, and what the rank must answer. */
typedef struct bad_batch {
    const char *what;
    int ok;           /* leading tasks answered with their squares */
    const char *says; /* in the first failure that follows (NULL: none) */
} bad_batch;

static const bad_batch bad_batches[] = {
    { "valid", 3, NULL },
    { "a task frame's magic", 0,
      "malformed task frame 0 of 3 received "
      "(bad magic)" },
    { "the batch header's magic", 0, "malformed task batch (bad header)" },
    { "cut in its first task", 0,
      "malformed task frame 0 of 3 received "
      "(cut short)" },
    { "a count past its tasks", 3, "malformed task frame 3 of 5 received" },
    { "a task frame's type", 0, "malformed task frame" },
    { "an unknown module", 0, "cannot find the task function" },
    { "a negative module length", 0, "malformed task frame" },
    { "no bytes", 0, "malformed task batch (bad header)" },
    { "garbage", 0, "malformed task batch (bad header)" },
    { "a negative count", 0, "malformed task batch (bad header)" },
};

/* The batch k of bad_batches (3 square tasks of 10, 11, 12). */
static void build_batch(cf_buffer *m, int k, uint64_t seq)
{
    cf_buffer tasks = { NULL, 0 };
    for (int i = 0; i < 3; i++) {
        int64_t x = 10 + i;
        size_t flen;
        int rc;
        unsigned char *f = cf__frame_task_new(0, CF__FR_TASK, (void *)square,
                                              &x, 8, (uint64_t)i, &flen, &rc);
        CHECK(f != NULL);
        cf__frame h;
        memcpy(&h, f, sizeof h);
        if (i == 0 && (k == 5 || k == 6 || k == 7)) {
            /* a wrong type; an unknown module; a module length of -1 */
            unsigned char pl[8 + 16 + 8] = { 0 };
            memcpy(pl + 8, "/no/such/lib.so", 15);
            memcpy(pl + 8 + 15, &x, 8);
            cf__frame_set(&h, k == 5 ? CF__FR_RESULT : CF__FR_TASK, 0,
                          k == 6 ? 8 + 15 + 8 : h.len,
                          k == 6   ? 15
                          : k == 7 ? -1
                                   : h.aux);
            if (k == 6) {
                CHECK_EQ(cf_buffer_append(&tasks, &h, sizeof h), 0);
                CHECK_EQ(cf_buffer_append(&tasks, pl, 8 + 15 + 8), 0);
                free(f);
                continue;
            }
            memcpy(f, &h, sizeof h);
        }
        if (i == 0 && k == 1)
            f[0] ^= 0xff;
        CHECK_EQ(cf_buffer_append(&tasks, f, flen), 0);
        free(f);
    }
    int32_t n = k == 4 ? 5 : k == 10 ? -3 : 3;
    cf__frame h; /* cut in its first task, it still claims every byte */
    cf__frame_set(&h, CF__FR_BATCH, seq, tasks.b->len, n);
    CHECK_EQ(cf_buffer_append(m, &h, sizeof h), 0);
    CHECK_EQ(cf_buffer_append(m, tasks.b->data, k == 3 ? 20 : tasks.b->len), 0);
    if (k == 2)
        m->b->data[0] ^= 0xff;
    for (size_t i = 0; k == 9 && i < m->b->len; i++)
        m->b->data[i] = (unsigned char)(i * 131 + 7);
    if (k == 8)
        m->b->len = 0;
    free(tasks.b);
}

/* Reads rank r's answer to batch seq (to its final message) and checks
 * it against bb. */
static void check_answer(MPI_Comm comm, int r, uint64_t seq,
                         const bad_batch *bb)
{
    unsigned char *in = NULL;
    int len, answered = 0;
    bool final = false, failed = false;
    while (!final) {
        CHECK_EQ(recv_from(comm, r, &in, &len), TAG_RESULTS);
        cf__rd rd = { in, (size_t)len };
        cf__frame h, f;
        const unsigned char *p, *m;
        cf__answers a;
        CHECK(cf__rd_frame(&rd, &h, &p) == NULL && h.type == CF__FR_ANSWERS);
        memcpy(&a, p, sizeof a);
        CHECK(h.id == seq || h.id == 0);
        final = a.final;
        rd = (cf__rd){ p + sizeof a, (size_t)h.len - sizeof a };
        /* its answers, then (final) maybe one FAIL for the tasks left */
        for (uint32_t i = 0; i < a.count + final && rd.left; i++, answered++) {
            CHECK(cf__rd_frame(&rd, &f, &m) == NULL);
            if (f.type == CF__FR_RESULT) {
                int64_t want = (10 + answered) * (10 + answered), got;
                CHECK(f.len == 8 && (failed || answered < bb->ok));
                memcpy(&got, m, 8);
                CHECK_EQ(got, want);
                continue;
            }
            CHECK(f.type == CF__FR_FAIL && f.aux != 0 && answered >= bb->ok);
            if (!failed && (!bb->says || !strstr((const char *)m, bb->says))) {
                fprintf(stderr, "batch with %s: the rank says '%.*s'\n",
                        bb->what, (int)f.len, (const char *)m);
                exit(1);
            }
            failed = true;
        }
    }
    CHECK(answered >= bb->ok);
    CHECK(failed == (bb->says != NULL));
    free(in);
}

/* A fake root sends each worker rank batches with bad frames, a bad
 * header, cut short, too few tasks, unknown functions, garbage: the rank
 * answers each with what it could run and one failure for the rest, and
 * serves the next batch as if nothing happened. */
static void hostile_batches(void)
{
    if (world_size < 2)
        return;
    MPI_Comm comm;
    CHECK_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &comm), MPI_SUCCESS);
    unsigned char *in = NULL;
    int len;
    for (int r = 1; r < world_size; r++)
        CHECK_EQ(recv_from(comm, r, &in, &len), TAG_HELLO);
    uint64_t seq = 1;
    int n = (int)(sizeof bad_batches / sizeof bad_batches[0]);
    for (int r = 1; r < world_size; r++) {
        for (int k = 0; k < n; k++) {
            cf_buffer m = { NULL, 0 };
            build_batch(&m, k, seq);
            send_to_rank(comm, r, TAG_TASKS, m.b->data, m.b->len);
            check_answer(comm, r, seq++, &bad_batches[k]);
            /* and the rank goes on */
            m.b->len = 0;
            build_batch(&m, 0, seq);
            send_to_rank(comm, r, TAG_TASKS, m.b->data, m.b->len);
            check_answer(comm, r, seq++, &bad_batches[0]);
            free(m.b);
        }
        send_to_rank(comm, r, TAG_STOP, NULL, 0);
    }
    free(in);
    MPI_Comm_free(&comm);
}

/* 20,000 tiny tasks: all answered, right, and (batched) quickly. */
static void many_small(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 20000 };
    cf_future **fs = malloc(N * sizeof *fs);
    double t0 = now_s();
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, square, i);
    int64_t sum = 0, want = 0;
    for (int i = 0; i < N; i++) {
        sum += i64_of(fs[i]);
        want += (int64_t)i * i;
        cf_future_release(fs[i]);
    }
    CHECK_EQ(sum, want);
    printf("     many_small: %d tasks in %.3fs on %d rank(s)\n", N,
           now_s() - t0, world_size);
    free(fs);
    cf_executor_free(ex);
}

/* A rank slow to take in a large batch (here: stopped for 3 s while it
 * arrives) has not stopped answering: a batch still being sent extends the
 * watchdog's limit (2 s here) by its size at 10 MB/s (docs/mpi.md). */
static void big_batch_sent_slowly(void)
{
    if (world_size < 2 || world_size > 64)
        return; /* one rank: nothing is sent */
    setenv("CFUTURES_MPI_RANK_TIMEOUT", "2", 1);
    cf_executor *ex = make_pool(NULL);
    unsetenv("CFUTURES_MPI_RANK_TIMEOUT");
    wait_workers(ex, (size_t)n_workers());
    size_t n = 48u << 20; /* past any MPI's eager limit: the send waits */
    unsigned char *in = calloc(n, 1);
    CHECK(in != NULL);
    for (int r = 1; r < world_size; r++)
        CHECK_EQ(kill(rank_pid[r], SIGSTOP), 0);
    cf_future *f;
    CHECK_EQ(cf_submit_bytes(ex, echo, in, n, &f), 0);
    sleep_s(3.0);
    for (int r = 1; r < world_size; r++)
        CHECK_EQ(kill(rank_pid[r], SIGCONT), 0);
    const void *data;
    size_t len;
    const char *msg = NULL;
    if (cf_future_exception(f, 60.0 * test_scale(), &msg) != 0)
        fprintf(stderr, "the big task failed: %s\n", msg ? msg : "?");
    CHECK_EQ(cf_future_bytes(f, 0, &data, &len), 0);
    CHECK_EQ(len, n);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.stalled, 0);
    cf_future_release(f);
    free(in);
    cf_executor_free(ex);
}

/* Every rank passes an intercommunicator: each gets EINVAL at once (the
 * root would address the other group, which waits for a root of its own). */
static void intercommunicator_refused(void)
{
    if (world_size < 2)
        return;
    MPI_Comm half, inter;
    int color = world_rank % 2;
    CHECK_EQ(MPI_Comm_split(MPI_COMM_WORLD, color, world_rank, &half),
             MPI_SUCCESS);
    /* the other group's leader: world rank 1 for group 0, 0 for group 1 */
    CHECK_EQ(MPI_Intercomm_create(half, 0, MPI_COMM_WORLD, !color, 77, &inter),
             MPI_SUCCESS);
    errno = 0;
    CHECK(cf_mpi_pool_new(inter, 0, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(cf_mpi_pool_new_isolated(inter, 0, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    MPI_Comm_free(&inter);
    MPI_Comm_free(&half);
}

/* A slow rank does not hold back the others: the fast one runs most. */
static void slow_rank_balanced(void)
{
    cf_executor *ex = make_pool(NULL);
    wait_workers(ex, (size_t)n_workers());
    enum { N = 120 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, slow_on_rank1, i);
    int64_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = i64_of(fs[i]);
        cf_future_release(fs[i]);
    }
    if (world_size == 3) {
        /* Rank 1 takes 20 ms a task, rank 2 1 ms: a static split would
         * give each 60; dynamic balancing gives rank 2 far more. */
        int64_t first = pids[0];
        int same = 0;
        for (int i = 0; i < N; i++)
            same += pids[i] == first;
        int slow = first == pids[N - 1] ? N - same : same;
        for (int i = 0; i < N; i++)
            (void)i;
        printf("     slow_rank_balanced: the slow rank ran %d of %d\n",
               slow < N - slow ? slow : N - slow, N);
        CHECK(same < N);                                    /* both worked */
        CHECK((same < N - same ? same : N - same) < N / 3); /* skewed */
    }
    cf_executor_free(ex);
}

static const cf_options opts_init_mark = { .initializer = init_mark,
                                           .initarg = (void *)&forty_two };

static void initializer_runs(void)
{
    cf_executor *ex = make_pool(&opts_init_mark);
    cf_future *fs[10];
    for (int i = 0; i < 10; i++)
        fs[i] = submit_i64(ex, read_init, 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(i64_of(fs[i]), 42);
        cf_future_release(fs[i]);
    }
    cf_executor_free(ex);
}

static void initializer_fails(void)
{
    cf_options o = { .initializer = init_fail };
    cf_executor *ex = make_pool(&o);
    for (int i = 0; i < 5; i++) {
        int64_t x = i;
        cf_future *f = NULL;
        int rc = cf_submit_bytes(ex, square, &x, sizeof x, &f);
        if (rc == 0) {
            const char *msg = NULL;
            CHECK_EQ(cf_future_exception(f, 30.0, &msg), CF_EBROKEN);
            CHECK(msg && strstr(msg, "initializer failed") &&
                  strstr(msg, "no database on this rank"));
            cf_future_release(f);
        } else {
            CHECK_EQ(rc, CF_EBROKEN);
        }
    }
    /* Once the workers reported, every submit is refused. */
    sleep_s(0.2);
    int64_t x = 1;
    CHECK_EQ(cf_submit_bytes(ex, square, &x, sizeof x, NULL), CF_EBROKEN);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.completed, 0);
    cf_executor_free(ex);
}

static void max_workers_one(void)
{
    cf_options o = { .max_workers = 1 };
    cf_executor *ex = make_pool(&o);
    enum { N = 30 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, nap, 1);
    int64_t first = i64_of(fs[0]);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(i64_of(fs[i]), first);
        cf_future_release(fs[i]);
    }
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.workers, 1);
    cf_executor_free(ex);
}

/* Several pools one after the other, and bad arguments. */
static void pools_in_sequence(void)
{
    for (int k = 0; k < 3; k++) {
        cf_executor *ex = make_pool(NULL);
        cf_future *f = submit_i64(ex, square, k);
        CHECK_EQ(i64_of(f), k * k);
        cf_future_release(f);
        cf_executor_free(ex);
    }
    errno = 0;
    CHECK(cf_mpi_pool_new(MPI_COMM_NULL, 0, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(cf_mpi_pool_new(MPI_COMM_WORLD, world_size, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    cf_options bad = { .max_workers = -1 };
    CHECK(cf_mpi_pool_new(MPI_COMM_WORLD, 0, &bad) == NULL);
    CHECK_EQ(errno, EINVAL);
}

/* Python's map, bytes flavour (cf_map_bytes_new), one item a task and in
 * chunks: results in input order, a failed item does not stop the rest. */
static void map_bytes(void)
{
    cf_executor *ex = make_pool(NULL);
    enum { N = 500 };
    int64_t xs[N];
    const void *ins[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        xs[i] = i;
        ins[i] = &xs[i];
        lens[i] = sizeof xs[i];
    }
    size_t chunks[] = { 1, 7, 100 };
    for (size_t c = 0; c < 3; c++) {
        cf_map *m;
        CHECK_EQ(cf_map_bytes_new(&m, ex, square, ins, lens, N, chunks[c],
                                  c == 1 ? 16 : 0, CF_FOREVER),
                 0);
        const void *data;
        size_t len;
        for (int i = 0; i < N; i++) {
            CHECK_EQ(cf_map_bytes_next(m, &data, &len), 0);
            CHECK_EQ(len, sizeof(int64_t));
            CHECK_EQ(get_i64(data, len), (int64_t)i * i);
        }
        CHECK_EQ(cf_map_bytes_next(m, &data, &len), CF_EOF);
        cf_map_free(m);
    }
    cf_map *m;
    CHECK_EQ(cf_map_bytes_new(&m, ex, failing, ins, lens, 4, 2, 0, CF_FOREVER),
             0);
    const void *data;
    size_t len;
    /* 0: even, a task's CF_ETIMEDOUT, which a map reads as CF_ETIME */
    CHECK_EQ(cf_map_bytes_next(m, &data, &len), CF_ETIME);
    CHECK_EQ(cf_map_bytes_next(m, &data, &len), -4242);
    CHECK(strstr((const char *)data, "odd input 1 on the worker"));
    cf_map_free(m);
    cf_executor_free(ex);
}

/* Isolated ranks: a crash or a hang fails its own task, the rank goes on;
 * everything else works as on a plain MPI pool. */

static void isolated_crash_and_timeout(void)
{
    cf_options o = { .task_timeout = 1.0 };
    cf_executor *ex = make_isolated_pool(&o);
    for (int round = 0; round < 2; round++) {
        cf_future *boom = submit_i64(ex, crash, 0);
        cf_future *hang = submit_i64(ex, nap, 60000);
        cf_future *fs[40];
        for (int i = 0; i < 40; i++)
            fs[i] = submit_i64(ex, square, i);
        const char *msg = NULL;
        CHECK_EQ(cf_future_exception(boom, 30.0, &msg), CF_EBROKEN);
        CHECK(msg && strstr(msg, "SIGSEGV"));
        CHECK_EQ(cf_future_exception(hang, 30.0, &msg), CF_ETIME);
        for (int i = 0; i < 40; i++) {
            CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
            cf_future_release(fs[i]);
        }
        cf_future_release(boom);
        cf_future_release(hang);
    }
    cf_future *odd = submit_i64(ex, failing, 3);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(odd, 30.0, &msg), -4242);
    CHECK(msg && strcmp(msg, "odd input 3 on the worker") == 0);
    cf_future_release(odd);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.failed, 5);
    CHECK_EQ(st.completed, 80);
    cf_executor_free(ex);
}

/* Isolated ranks: many tiny tasks stream through each rank's worker
 * process; those among them that kill it fail alone, and the tasks queued
 * behind them run, however many crashes come first. */
static void isolated_crashes_blame_only_their_task(void)
{
    cf_executor *ex = make_isolated_pool(NULL);
    enum { N = 400 };
    static cf_future *fs[N];
    size_t crashed = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++)
            fs[i] = submit_i64(ex, i % 37 == 5 ? die : square, i);
        for (int i = 0; i < N; i++) {
            if (i % 37 == 5) {
                const char *msg = NULL;
                CHECK_EQ(cf_future_exception(fs[i], 30.0, &msg), CF_EBROKEN);
                CHECK(msg && strstr(msg, "SIGKILL"));
                crashed++;
            } else {
                CHECK_EQ(i64_of(fs[i]), (int64_t)i * i);
            }
            cf_future_release(fs[i]);
        }
    }
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.failed, crashed);
    CHECK_EQ(st.completed, 2 * N - crashed);
    cf_executor_free(ex);
}

/* Isolated ranks: a worker process killed before it was ready is a failed
 * start; it is started again and the tasks run. */
static void isolated_initializer_crash_retried(void)
{
    cf_executor *ex = make_isolated_pool(&opts_init_crash_once);
    cf_future *fs[20];
    for (int i = 0; i < 20; i++)
        fs[i] = submit_i64(ex, read_init, 0);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(i64_of(fs[i]), 42);
        cf_future_release(fs[i]);
    }
    cf_executor_free(ex);
}

/* Isolated ranks: a worker process stopped between tasks (SIGSTOP from
 * outside) is killed by its rank's link once the task next in line waited
 * 10 s unstarted, and replaced; the rank's watchdog waits longer than
 * that, so no rank is lost and every task runs. */
static void isolated_stopped_worker_is_replaced(void)
{
    cf_executor *ex = make_isolated_pool(NULL);
    check_squares(ex, square, 20); /* answers seen: the watchdog is armed */
    cf_future *who = submit_i64(ex, nap, 0);
    pid_t pid = (pid_t)i64_of(who);
    CHECK_EQ(kill(pid, SIGSTOP), 0);
    enum { N = 40 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, nap, 1);
    for (int i = 0; i < N; i++) {
        const char *msg = NULL;
        int rc = cf_future_exception(fs[i], 60.0 * test_scale(), &msg);
        if (rc)
            fprintf(stderr, "task %d: %s: %s\n", i, cf_strerror(rc),
                    msg ? msg : "");
        CHECK_EQ(rc, 0);
        CHECK(i64_of(fs[i]) != pid);
        cf_future_release(fs[i]);
    }
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.stalled, 0);
    cf_future_release(who);
    cf_executor_free(ex);
}

static void isolated_initializer(void)
{
    cf_executor *ex = make_isolated_pool(&opts_init_mark);
    cf_future *f = submit_i64(ex, read_init, 0);
    CHECK_EQ(i64_of(f), 42);
    cf_future_release(f);
    cf_executor_free(ex);
}

/* ---- the kill loop on isolated ranks ---------------------------------------- */

/* The kill loop's log: a page in /dev/shm that every rank maps at start
 * (main) and every spawned worker maps in a constructor that runs before
 * the library's (which serves and never returns), with a start and a done
 * counter per task id. A task's first action is one atomic add, no system
 * call and no page fault (the worker touches the page and the task's code
 * first): the pool marks a task running as the last step before calling
 * it, so a SIGKILL can make it rightly blame a task the log says never
 * started only in the few instructions between that mark and the add
 * (tests/test_remote_faults.c argues this at length). */
enum { LOG_IDS = 512 };
typedef struct log_page {
    _Atomic unsigned char started[LOG_IDS], done[LOG_IDS];
} log_page;
static log_page *log_map;
#define LOG_ENV "CF_TEST_MPI_FAULT_LOG"

static void log_add(bool done, int64_t id)
{
    if (log_map && id >= 0 && id < LOG_IDS)
        atomic_fetch_add_explicit(done ? &log_map->done[id]
                                       : &log_map->started[id],
                                  1, memory_order_relaxed);
}

typedef struct logged_job {
    int64_t id, sleep_us;
} logged_job;

/* A logged task: logs "started id", sleeps, logs "done id", returns id. */
static int logged(const void *in, size_t len, cf_buffer *out)
{
    logged_job j;
    if (len != sizeof j)
        return CF_EINVAL;
    memcpy(&j, in, sizeof j);
    log_add(false, j.id); /* before anything else */
    if (j.sleep_us)
        sleep_s((double)j.sleep_us * 1e-6);
    log_add(true, j.id);
    return put_i64(out, j.id);
}

/* In a spawned worker: map the log and touch it and the task's code (the
 * scratch id LOG_IDS - 1 is never used by a test). */
__attribute__((constructor(101))) static void log_attach(void)
{
    const char *path = getenv(LOG_ENV);
    if (!getenv("CFUTURES_WORKER_FD") || !path)
        return;
    log_map = test_shm_map(path, 0, sizeof(log_page));
    log_add(false, LOG_IDS - 1);
    logged(NULL, 0, NULL);
}

/* On every rank, at start: the root makes the log, every rank maps it and
 * names it to the workers it will spawn. */
static void log_setup(void)
{
    long long root_pid = getpid();
    MPI_Bcast(&root_pid, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/cf_mpi_faults.%lld", root_pid);
    if (world_rank == 0)
        CHECK((log_map = test_shm_map(path, O_CREAT | O_TRUNC,
                                      sizeof(log_page))) != NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank != 0)
        CHECK((log_map = test_shm_map(path, 0, sizeof(log_page))) != NULL);
    setenv(LOG_ENV, path, 1);
}

/* The parent pid and state of process pid, from /proc: false if gone. */
static bool proc_parent(int pid, int *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return false;
    buf[k] = '\0';
    char *rp = strrchr(buf, ')'), state;
    return rp && sscanf(rp + 1, " %c %d", &state, ppid) == 2 && state != 'Z';
}

/* The isolated ranks' worker processes: children of this process (one
 * rank: the root runs them) or of its siblings (the other ranks, children
 * of the same launcher), up to max. */
static int rank_workers(pid_t *out, int max)
{
    enum { MAXP = 4096 };
    static int pids[MAXP], parents[MAXP];
    int n = 0, found = 0;
    DIR *d = opendir("/proc");
    CHECK(d != NULL);
    for (struct dirent *e; n < MAXP && (e = readdir(d)) != NULL;)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
            proc_parent(atoi(e->d_name), &parents[n]))
            pids[n++] = atoi(e->d_name);
    closedir(d);
    int self = getpid(), launcher = getppid();
    for (int i = 0; i < n && found < max; i++) {
        bool ours = parents[i] == self;
        for (int k = 0; k < n && !ours; k++)
            ours = pids[k] == parents[i] && parents[k] == launcher &&
                   pids[k] != self;
        if (ours)
            out[found++] = pids[i];
    }
    return found;
}

typedef struct rank_killer {
    pthread_t th;
    atomic_bool stop;
    atomic_int kills;
    unsigned seed;
} rank_killer;

static void *rank_killer_main(void *arg)
{
    rank_killer *k = arg;
    while (!atomic_load(&k->stop) && atomic_load(&k->kills) < 10) {
        sleep_s((double)(rand_r(&k->seed) % 20000) * 1e-6);
        pid_t w[16];
        int n = rank_workers(w, 16);
        if (n > 0 && kill(w[rand_r(&k->seed) % n], SIGKILL) == 0)
            atomic_fetch_add(&k->kills, 1);
    }
    return NULL;
}

/* Isolated ranks whose worker processes are killed from outside, at any
 * stage, in a loop: every future finishes; a task fails only if it
 * started, and then names the SIGKILL, or by the failed-start rule (every
 * start killed for 2 s, over 3 tries or more: slow starts, as under
 * ThreadSanitizer, let the killer catch each one); none ran twice; the
 * pool works on. */
static void isolated_kill_loop(void)
{
    enum { N = 300 };
    cf_executor *ex = make_isolated_pool(NULL);
    rank_killer k = { .seed = 99 };
    CHECK_EQ(pthread_create(&k.th, NULL, rank_killer_main, &k), 0);
    static cf_future *fs[N];
    for (int i = 0; i < N; i++) {
        logged_job j = { i, i % 2 ? 0 : 3000 };
        CHECK_EQ(cf_submit_bytes(ex, logged, &j, sizeof j, &fs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        CHECK(cf_future_exception(fs[i], 60.0 * test_scale(), NULL) !=
              CF_ETIMEDOUT);
    atomic_store(&k.stop, true);
    pthread_join(k.th, NULL);
    unsigned char started[N], done[N];
    for (int i = 0; i < N; i++) {
        started[i] = atomic_load(&log_map->started[i]);
        done[i] = atomic_load(&log_map->done[i]);
    }
    int failed = 0, unstarted = 0;
    for (int i = 0; i < N; i++) {
        const char *msg = NULL;
        int rc = cf_future_exception(fs[i], 0, &msg);
        CHECK(started[i] <= 1); /* nothing ran twice */
        if (rc == 0) {
            CHECK_EQ(i64_of(fs[i]), i);
            CHECK(started[i] == 1 && done[i] == 1);
            cf_future_release(fs[i]);
            continue;
        }
        CHECK_EQ(rc, CF_EBROKEN);
        CHECK(msg && strstr(msg, "SIGKILL"));
        bool no_start = strstr(msg, "cannot start a worker process") == msg;
        if (started[i] != 1 && !no_start)
            fprintf(stderr, "task %d failed, never started: %s\n", i, msg);
        CHECK(started[i] == 1 || no_start); /* blamed only if it ran */
        failed += !no_start;
        unstarted += no_start;
        cf_future_release(fs[i]);
    }
    printf("     isolated_kill_loop: %d kills, %d of %d tasks failed (%d "
           "more as no worker could start)\n",
           atomic_load(&k.kills), failed, N, unstarted);
    check_still_works(ex);
    cf_executor_free(ex);
}

/* The rank of the MPI job this process belongs to (an isolated rank's
 * worker process too, from the environment mpiexec gave its rank). */
static int job_rank(void)
{
    const char *v = getenv("OMPI_COMM_WORLD_RANK");
    if (!v)
        v = getenv("PMI_RANK");
    return v ? atoi(v) : 0;
}

/* Takes 14 s on world rank 1's worker process, nothing elsewhere. */
static void *init_slow_on_rank1(void *arg)
{
    (void)arg;
    if (job_rank() == 1)
        sleep_s(14.0);
    return NULL;
}

static const cf_options opts_init_slow_rank1 = { .initializer =
                                                     init_slow_on_rank1 };

/* Isolated ranks run the initializer in their worker process, with their
 * first batch: a rank whose initializer takes longer than the default
 * watchdog's limit (13 s in an isolated pool) while another rank already
 * answered is not a rank that stopped answering; its tasks run. */
static void isolated_slow_initializer_on_one_rank(void)
{
    cf_executor *ex = make_isolated_pool(&opts_init_slow_rank1);
    wait_workers(ex, (size_t)n_workers());
    enum { N = 40 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_i64(ex, nap, 20);
    for (int i = 0; i < N; i++) {
        const void *data;
        size_t len;
        int rc = cf_future_bytes(fs[i], 60.0 * test_scale(), &data, &len);
        if (rc) {
            const char *msg = NULL;
            cf_future_exception(fs[i], 0, &msg);
            fprintf(stderr, "task %d failed: %s\n", i, msg ? msg : "-");
        }
        CHECK_EQ(rc, 0);
        cf_future_release(fs[i]);
    }
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.stalled, 0);
    cf_executor_free(ex);
}

/* Isolated ranks with task_timeout: a batch of hung tasks, each killed at
 * its time limit, keeps its rank busy for longer than the watchdog's limit
 * in all (set to 5 s here, above the longest a task may take, with room
 * for a worker process's restart on a loaded machine); the rank
 * answers as it goes, so each of them fails with CF_ETIME, not as the
 * tasks of a rank that stopped answering. */
static void isolated_hung_batch(void)
{
    cf_options o = { .task_timeout = 1.0 };
    setenv("CFUTURES_MPI_RANK_TIMEOUT", "5", 1); /* read by the root */
    cf_executor *ex = make_isolated_pool(&o);
    unsetenv("CFUTURES_MPI_RANK_TIMEOUT");
    wait_workers(ex, (size_t)n_workers());
    check_squares(ex, square, 200); /* the pool learns that tasks are short */
    int n = 7 * n_workers();        /* 7 s of hung tasks a rank */
    cf_future *fs[64];
    for (int i = 0; i < n; i++)
        fs[i] = submit_i64(ex, nap, 60000);
    for (int i = 0; i < n; i++) {
        const char *msg = NULL;
        int rc = cf_future_exception(fs[i], 60.0 * test_scale(), &msg);
        if (rc != CF_ETIME)
            fprintf(stderr, "task %d: %s\n", i, msg ? msg : "-");
        CHECK_EQ(rc, CF_ETIME);
        cf_future_release(fs[i]);
    }
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.stalled, 0);
    check_still_works(ex);
    cf_executor_free(ex);
}

/* Done callbacks run on the manager thread: one that shuts the pool down
 * with wait would wait for itself, and is refused. */
static _Atomic int callback_rc = 1;

static void shutdown_in_callback(cf_future *f, void *ctx)
{
    (void)f;
    atomic_store(&callback_rc, cf_shutdown(ctx, true, false));
}

static void shutdown_from_callback(void)
{
    cf_executor *ex = make_pool(NULL);
    cf_future *f = submit_i64(ex, nap, 20);
    CHECK_EQ(cf_future_add_done_callback(f, shutdown_in_callback, ex), 0);
    i64_of(f);
    double t0 = now_s();
    while (atomic_load(&callback_rc) == 1 && now_s() - t0 < 10)
        sleep_s(0.001);
    CHECK_EQ(atomic_load(&callback_rc), CF_EDEADLK);
    cf_future_release(f);
    check_still_works(ex);
    cf_executor_free(ex);
}

/* Several threads submit at once; every result comes back right. */
enum { SUBMITTERS = 4, PER_SUBMITTER = 3000 };

static void *submitter(void *arg)
{
    check_squares(arg, square, PER_SUBMITTER);
    return NULL;
}

static void concurrent_submitters(void)
{
    cf_executor *ex = make_pool(NULL);
    cf_thread *t[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++)
        CHECK_EQ(cf_thread_start(&t[i], submitter, ex, NULL), 0);
    for (int i = 0; i < SUBMITTERS; i++)
        CHECK_EQ(cf_thread_join(t[i], CF_FOREVER, NULL), 0);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.completed, SUBMITTERS * PER_SUBMITTER);
    cf_executor_free(ex);
}

/* ---- the lockstep runner ---------------------------------------------------- */

typedef struct mpi_case {
    const char *name;
    void (*fn)(void);
    int pools;              /* pools the root makes */
    const cf_options *opts; /* what the workers pass */
    bool isolated;          /* cf_mpi_pool_new_isolated */
    bool everyone;          /* fn runs on every rank (pools: 0) */
    bool slow;              /* mostly waits: `--quick` leaves it out */
} mpi_case;

static const cf_options opts_init_fail = { .initializer = init_fail };
static const cf_options opts_one = { .max_workers = 1 };
static const cf_options opts_timeout = { .task_timeout = 1.0 };

#define CASE(fn, pools, opts)                                                  \
    {                                                                          \
#fn, fn, pools, opts, false, false, false                              \
    }
#define ISOLATED_CASE(fn, opts)                                                \
    {                                                                          \
#fn, fn, 1, opts, true, false, false                                   \
    }
#define SLOW_ISOLATED_CASE(fn, opts)                                           \
    {                                                                          \
#fn, fn, 1, opts, true, false, true                                    \
    }
#define EVERY_RANK_CASE(fn)                                                    \
    {                                                                          \
#fn, fn, 0, NULL, false, true, false                                   \
    }
static const mpi_case cases[] = {
    CASE(results, 1, NULL),
    CASE(pointer_tasks_refused, 1, NULL),
    CASE(map_order, 1, NULL),
    CASE(failures_carry_messages, 1, NULL),
    CASE(big_payload, 1, NULL),
    CASE(big_batch_sent_slowly, 1, NULL),
    EVERY_RANK_CASE(intercommunicator_refused),
    CASE(cancel_pending, 1, NULL),
    CASE(shutdown_wait, 1, NULL),
    CASE(shutdown_nowait, 1, NULL),
    CASE(shutdown_cancel_futures, 1, NULL),
    CASE(free_runs_pending, 1, NULL),
    CASE(stats_count, 1, NULL),
    CASE(wait_and_as_completed, 1, NULL),
    EVERY_RANK_CASE(hostile_answers),
    CASE(hostile_batches, 1, NULL),
    CASE(many_small, 1, NULL),
    CASE(slow_rank_balanced, 1, NULL),
    CASE(initializer_runs, 1, &opts_init_mark),
    CASE(initializer_fails, 1, &opts_init_fail),
    CASE(max_workers_one, 1, &opts_one),
    CASE(pools_in_sequence, 3, NULL),
    CASE(map_bytes, 1, NULL),
    CASE(shutdown_from_callback, 1, NULL),
    CASE(concurrent_submitters, 1, NULL),
    ISOLATED_CASE(isolated_crash_and_timeout, &opts_timeout),
    ISOLATED_CASE(isolated_initializer, &opts_init_mark),
    ISOLATED_CASE(isolated_crashes_blame_only_their_task, NULL),
    ISOLATED_CASE(isolated_initializer_crash_retried, &opts_init_crash_once),
    SLOW_ISOLATED_CASE(isolated_stopped_worker_is_replaced, NULL),
    ISOLATED_CASE(isolated_kill_loop, NULL),
    SLOW_ISOLATED_CASE(isolated_slow_initializer_on_one_rank,
                       &opts_init_slow_rank1),
    SLOW_ISOLATED_CASE(isolated_hung_batch, &opts_timeout),
};

/* Whether c runs: every case, the cases named, all but the slow ones
 * (--quick), or only those (--slow). */
static bool wanted(const mpi_case *c, int argc, char **argv)
{
    if (argc < 2)
        return true;
    if (strcmp(argv[1], "--quick") == 0 || strcmp(argv[1], "--slow") == 0)
        return c->slow == (argv[1][2] == 's');
    for (int a = 1; a < argc; a++)
        if (strcmp(argv[a], c->name) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    /* The crash cases want isolated workers to die by the signal: neither
     * a sanitizer's handler nor UCX's (MPICH's transport, whose handler
     * also calls free(), which ThreadSanitizer reports) may catch it. */
    let_workers_die_by_signal();
    setenv("UCX_HANDLE_ERRORS", "none", 0);
    int self = getpid();
    if (world_size <= 64)
        MPI_Allgather(&self, 1, MPI_INT, rank_pid, 1, MPI_INT, MPI_COMM_WORLD);
    log_setup();
    int ran = 0;
    double t0 = now_s();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mpi_case *c = &cases[i];
        if (!wanted(c, argc, argv))
            continue;
        alarm((unsigned)(120 * test_scale()));
        double c0 = now_s();
        if (c->everyone && world_rank != 0)
            c->fn();
        if (world_rank == 0) {
            c->fn();
            printf("ok   %s (%.2fs)\n", c->name, now_s() - c0);
            fflush(stdout);
        } else {
            for (int k = 0; k < c->pools; k++) {
                errno = -1;
                cf_executor *ex =
                    c->isolated
                        ? cf_mpi_pool_new_isolated(MPI_COMM_WORLD, 0, c->opts)
                        : cf_mpi_pool_new(MPI_COMM_WORLD, 0, c->opts);
                if (ex != NULL || errno != 0) {
                    fprintf(stderr,
                            "rank %d: cf_mpi_pool_new gave %p, errno %d\n",
                            world_rank, (void *)ex, errno);
                    exit(1);
                }
            }
        }
        ran++;
        alarm(0);
    }
    if (world_rank == 0)
        printf("%d of %d cases passed in %.2fs on %d rank(s)\n", ran, ran,
               now_s() - t0, world_size);
    if (world_rank == 0)
        unlink(getenv(LOG_ENV));
    MPI_Finalize();
    if (ran == 0)
        fprintf(stderr, "no case matched the arguments\n");
    return ran == 0;
}
