/* SPDX-License-Identifier: MIT */
/*
 * mpi_pool.c - the MPI transport of the remote engine (remote/engine.h):
 * bytes tasks run on the other ranks of a communicator; the root's futures
 * get the results (include/cfutures/mpi.h, docs/mpi.md).
 *
 * This file is the cfutures_mpi library (cmake/mpi.cmake compiles it with
 * CF_BUILDING_MPI). The core library's source glob sees it too, and there it
 * compiles to nothing, so the core never depends on MPI.
 *
 * How it works. cf_mpi_pool_new duplicates the communicator (our messages
 * never meet the program's). On the root, the engine owns the executor:
 * the pending queue of TASK frames, shutdown, stats, the manager thread.
 * This file's round (mp_round) makes every MPI call (so
 * MPI_THREAD_SERIALIZED is enough): it hands batches of tasks to whichever
 * worker rank has room (dynamic load balancing), keeps enough in flight
 * per worker that it never waits for the next batch (two batches, or the
 * bandwidth-delay product when the measured round trip needs more), and
 * reads answers back with MPI_Iprobe/MPI_Recv. Batch sizes adapt: each
 * worker reports how long its tasks took, and a batch is sized to about
 * BATCH_TARGET_S of that worker's time (slow start while unknown), so many
 * tiny tasks share one message and a slow rank holds little work. The
 * emptiest workers are served first; long tasks go one per batch, and
 * more only while enough waits for every worker to get one, so the tail
 * is not queued behind a running task. A watchdog fails the tasks of a
 * rank that holds work and stops answering (or ends the job). Worker ranks serve in the thread that
 * called cf_mpi_pool_new until the root sends STOP. With one rank the
 * manager runs the batches itself, through the same codec. Isolated pools
 * (cf_mpi_pool_new_isolated) hand each rank's tasks to a process pool of
 * one worker, whose blame rules then apply to its tasks.
 *
 * Waiting: Open MPI's blocking calls spin, which starves busy ranks when
 * ranks outnumber cores. So both sides poll with MPI_Iprobe and back off
 * (a few quick tries, then sleeps doubling up to BACKOFF_MAX_S); the
 * manager's sleep is also cut short by a submission. A manager with
 * nothing in flight sleeps until a submission or shutdown.
 *
 * Messages are frames (remote/codec.h): a TASKS message is a BATCH frame
 * (id: the batch; aux: its task count) followed by the tasks' own TASK
 * frames, as submitted. A worker answers each batch, in order, with one or
 * more RESULTS messages: an ANSWERS frame (id: the batch; aux: the first
 * task it answers) whose payload is an `answers` head and one RESULT or
 * FAIL frame per task; the last has ANS_FINAL. Every frame is checked: a
 * bad or truncated one fails its task with CF_EBROKEN (and, when the rest
 * cannot be trusted, the tasks after it in that message); nothing is ever
 * read out of bounds or waited for in vain.
 */
#ifdef CF_BUILDING_MPI

#include "cfutures/mpi.h"

#include "mpi_pool.h"
#include "remote/engine.h"
#include "remote/serve.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- tuning ------------------------------------------------------------- */

#define BATCH_TARGET_S 0.004 /* a batch's work on its worker */
#define BATCH_MAX_TASKS 1024 /* tasks in one batch */
#define BATCH_MAX_BYTES                                                        \
    (1u << 20)                            /* frame bytes in one batch (1 task \
                                      larger than this goes alone) */
#define MAX_BATCHES 64                    /* batches in flight per worker */
#define WINDOW_MAX_TASKS 65536            /* tasks in flight per worker */
#define WINDOW_MAX_BYTES (64u << 20)      /* task bytes in flight per worker */
#define EAGER_BYTES (48u << 10)           /* a batch's bytes past 1 ms of rtt */
#define WATCH_EVERY_S 0.1                 /* the watchdog's period */
#define REPLY_FLUSH_BYTES (8u << 20)      /* a worker sends results past this */
#define MSG_MAX ((size_t)INT_MAX - 65536) /* one MPI message (int count) */
#define SPIN_ROUNDS 32                    /* quick polls before sleeping */
#define BACKOFF_MIN_S 2e-6
#define BACKOFF_MAX_S 1e-3

enum { TAG_TASKS = 1, TAG_RESULTS = 2, TAG_HELLO = 3, TAG_STOP = 4 };

/* The head of an ANSWERS frame's payload. */
typedef struct answers {
    uint32_t count; /* RESULT or FAIL frames that follow */
    uint32_t flags;
    uint64_t busy_ns; /* time the answered tasks took */
} answers;
enum {
    ANS_FINAL = 1,       /* the batch is answered in full */
    ANS_REST_FAILED = 2, /* one FAIL frame follows: tasks [first, end of
                            the batch) failed with it (the worker could
                            not read them) */
};
#define ANS_HEAD (CF__FRAME_HDR + sizeof(answers))

/* ---- test hooks (mpi_pool.h) ---------------------------------------------- */

/* Process-wide on purpose: a hook armed inside a task must reach the code
 * that frames that task's result, whatever thread that is. */
static _Atomic int corrupt_result; /* armed by a task on a worker */
static _Atomic int corrupt_batch;  /* armed on the root */

void cf__mpi_test_corrupt(int what)
{
    bool result_side = what >= CF__MPI_CORRUPT_RESULT_MAGIC &&
                       what <= CF__MPI_CORRUPT_RESULT_GARBAGE;
    /* relaxed: read back by the same thread (worker), or by the manager
     * after the submit that follows (ordered by the pending mutex) */
    atomic_store_explicit(result_side ? &corrupt_result : &corrupt_batch, what,
                          memory_order_relaxed);
}

/* ---- small helpers -------------------------------------------------------- */

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* Makes room for n bytes in b, from its start (contents not kept). */
static int room(cf_buffer *b, size_t n)
{
    if (b->b)
        b->b->len = 0;
    return cf_buffer_reserve(b, n);
}

static char *mpi_errstr(int rc, const char *what, char *buf, size_t size)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(rc, s, &n) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", rc);
    snprintf(buf, size, "%s failed: %s", what, s);
    return buf;
}

/* ======================================================================== *
 * The worker side: serving batches (on worker ranks, or on the manager
 * thread when there is one rank).
 * ======================================================================== */

typedef int (*send_fn)(void *ctx, const void *msg, size_t len);

/* The answer to one batch, built frame by frame and sent in one or more
 * messages. */
typedef struct replier {
    cf_buffer buf;
    uint64_t seq;
    uint32_t first;   /* index of the first frame in buf */
    uint32_t count;   /* frames in buf */
    uint64_t busy_ns; /* time the frames in buf took */
    send_fn send;
    void *ctx;
} replier;

static void answers_head(void *at, uint64_t seq, uint32_t first, size_t len,
                         answers a)
{
    cf__frame h;
    cf__frame_set(&h, CF__FR_ANSWERS, seq, len - CF__FRAME_HDR, (int32_t)first);
    memcpy(at, &h, sizeof h);
    memcpy((unsigned char *)at + sizeof h, &a, sizeof a);
}

/* Starts a message whose first frame is task `first`. */
static int reply_begin(replier *r, uint32_t first)
{
    r->first = first;
    r->count = 0;
    r->busy_ns = 0;
    if (room(&r->buf, ANS_HEAD))
        return CF_ENOMEM;
    r->buf.b->len = ANS_HEAD;
    return 0;
}

/* Sends what buf holds (cut to `keep` bytes when keep is smaller). */
static int reply_flush(replier *r, bool final, size_t keep)
{
    size_t len = r->buf.b->len < keep ? r->buf.b->len : keep;
    answers_head(r->buf.b->data, r->seq, r->first, len,
                 (answers){ r->count, final ? ANS_FINAL : 0, r->busy_ns });
    int rc = r->send(r->ctx, r->buf.b->data, len);
    if (rc == 0 && !final)
        rc = reply_begin(r, r->first + r->count);
    return rc;
}

/* Sends, without allocating, that tasks [first, end of batch) failed. */
static int reply_error(replier *r, uint32_t first, int code, const char *fmt,
                       ...)
{
    struct {
        unsigned char head[ANS_HEAD];
        cf__frame fail;
        char msg[256];
    } m;
    _Static_assert(offsetof(__typeof__(m), fail) == ANS_HEAD, "packed");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m.msg, sizeof m.msg, fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : (size_t)n >= sizeof m.msg ? (int)sizeof m.msg - 1 : n;
    cf__frame_set(&m.fail, CF__FR_FAIL, 0, (uint64_t)n, code);
    size_t len = offsetof(__typeof__(m), msg) + (size_t)n;
    answers_head(m.head, r->seq, first, len,
                 (answers){ 0, ANS_FINAL | ANS_REST_FAILED, 0 });
    return r->send(r->ctx, &m, len);
}

/* Appends one RESULT or FAIL frame: 0 or CF_ENOMEM. */
static int append_frame(replier *r, int code, const void *p, size_t len)
{
    cf__frame h;
    cf__frame_set(&h, code ? CF__FR_FAIL : CF__FR_RESULT, r->first + r->count,
                  len, code);
    int rc = cf_buffer_reserve(&r->buf, sizeof h + len);
    if (!rc)
        rc = cf_buffer_append(&r->buf, &h, sizeof h);
    if (!rc && len)
        rc = cf_buffer_append(&r->buf, p, len);
    return rc;
}

/* Test hooks (mpi_pool.h): corrupts the frame at mark, and sends it at
 * once so that only its task is hit. relaxed: armed by this thread's task.
 * 1: no hook was armed. */
static int reply_hook(replier *r, size_t mark)
{
    int hook = atomic_exchange_explicit(&corrupt_result, CF__MPI_CORRUPT_NONE,
                                        memory_order_relaxed);
    if (hook == CF__MPI_CORRUPT_RESULT_MAGIC) {
        r->buf.b->data[mark] ^= 0xff;
        return reply_flush(r, false, SIZE_MAX);
    }
    if (hook == CF__MPI_CORRUPT_RESULT_TRUNCATE)
        return reply_flush(r, false, mark + CF__FRAME_HDR / 2);
    if (hook != CF__MPI_CORRUPT_RESULT_GARBAGE)
        return 1;
    for (size_t i = 0; i < r->buf.b->len; i++)
        r->buf.b->data[i] = (unsigned char)(i * 131 + 7);
    int rc = r->send(r->ctx, r->buf.b->data, r->buf.b->len);
    return rc ? rc : reply_begin(r, r->first + r->count);
}

/* Appends the answer to one task. A result too large for a message, or
 * for memory, becomes a failure of its task. */
static int reply_frame(replier *r, int code, const char *msg, const void *data,
                       size_t len)
{
    if (code == 0 && len > MSG_MAX - ANS_HEAD - CF__FRAME_HDR) {
        code = CF_ENOMEM;
        msg = "the task's result is too large for one MPI message (2 GiB)";
    }
    if (code) {
        data = msg;
        len = msg ? strnlen(msg, 4096) : 0;
    }
    if (r->buf.b->len + CF__FRAME_HDR + len > MSG_MAX) {
        int rc = reply_flush(r, false, SIZE_MAX);
        if (rc)
            return rc;
    }
    size_t mark = r->buf.b->len;
    if (append_frame(r, code, data, len)) {
        static const char oom[] = "out of memory for the task's result";
        r->buf.b->len = mark;
        if (append_frame(r, CF_ENOMEM, oom, sizeof oom - 1))
            return CF_ENOMEM;
    }
    r->count++;
    int rc = reply_hook(r, mark);
    if (rc != 1)
        return rc;
    if (r->buf.b->len >= REPLY_FLUSH_BYTES)
        return reply_flush(r, false, SIZE_MAX);
    return 0;
}

/* Runs one task here and frames its answer. */
static int run_one(replier *r, cf__fn_cache *c, const cf__frame *h,
                   const unsigned char *p)
{
    cf__task_ctx ctx;
    double t0 = cf__now();
    cf__bytes *out = cf__serve_task(c, h, p, &ctx, NULL, NULL);
    r->busy_ns += (uint64_t)((cf__now() - t0) * 1e9);
    int rc = reply_frame(r, ctx.code, ctx.message, out ? out->data : NULL,
                         out ? out->len : 0);
    cf__free(out);
    cf__free(ctx.message);
    return rc;
}

/* An isolated rank's answer for one task: what its process pool's future
 * says (f NULL: the pool refused it; why it did is in h's resolution). */
static int collect(replier *r, cf_future *f, cf__fn_cache *c,
                   const cf__frame *h, const unsigned char *p, double *mark)
{
    const void *data = NULL;
    size_t len = 0;
    const char *msg = NULL;
    cf__task_ctx ctx = { 0, NULL };
    int code = CF_EINVAL;
    if (f) {
        code = cf_future_bytes(f, CF_FOREVER, &data, &len);
        if (code)
            cf_future_exception(f, 0, &msg);
    } else if (cf__serve_fn(c, h, p, &data, &len, &ctx)) {
        msg = "the rank's process pool refused the task";
    } else {
        code = ctx.code;
        msg = ctx.message;
    }
    double now = cf__now();
    r->busy_ns += (uint64_t)((now - *mark) * 1e9);
    *mark = now;
    int rc = reply_frame(r, code, msg, code ? NULL : data, code ? 0 : len);
    cf__free(ctx.message);
    if (f)
        cf_future_release(f);
    return rc;
}

/* Isolated: hands every well-formed task of the batch to the rank's
 * process pool pp first, so they stream through its worker. */
static void submit_all(cf_executor *pp, cf__rd in, uint32_t n, cf__fn_cache *c,
                       cf_future **fs)
{
    for (uint32_t i = 0; i < n; i++) {
        cf__frame h;
        const unsigned char *p;
        const void *data;
        size_t len;
        cf__task_ctx ctx;
        if (cf__rd_frame(&in, &h, &p))
            break;
        cf_bytes_fn fn = cf__serve_fn(c, &h, p, &data, &len, &ctx);
        if (fn)
            cf_submit_bytes(pp, fn, data, len, &fs[i]);
        cf__free(ctx.message);
    }
}

/* Answers the n task frames in `in`, in order. 0, or a send's error. */
static int serve_tasks(replier *r, cf__rd in, uint32_t n, cf_future **fs,
                       cf__fn_cache *c)
{
    int rc = 0;
    double mark = cf__now();
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        cf__frame h;
        const unsigned char *p;
        const char *why = cf__rd_frame(&in, &h, &p);
        if (why) {
            if (!r->count || (rc = reply_flush(r, false, SIZE_MAX)) == 0)
                rc = reply_error(r, i, CF_EBROKEN,
                                 "malformed task frame %u of %u received (%s)",
                                 i, n, why);
            return rc;
        }
        if (fs) {
            rc = collect(r, fs[i], c, &h, p, &mark);
            fs[i] = NULL;
        } else {
            rc = run_one(r, c, &h, p);
        }
        if (rc == CF_ENOMEM)
            rc = reply_error(r, r->first + r->count, CF_ENOMEM,
                             "out of memory on the worker");
        if (rc == 0 && i + 1 == n)
            rc = reply_flush(r, true, SIZE_MAX);
    }
    return n == 0 ? reply_flush(r, true, SIZE_MAX) : rc;
}

/* Serves one TASKS message: runs its tasks in order (in this process, or
 * on the isolated rank's process pool pp) and answers. Returns 0, or the
 * error of a send (an MPI failure: stop serving). */
static int serve_batch(const unsigned char *msg, size_t len, replier *r,
                       cf_executor *pp)
{
    cf__rd in = { msg, len };
    const unsigned char *at = cf__rd_skip(&in, CF__FRAME_HDR);
    cf__frame b;
    r->seq = 0;
    if (at)
        memcpy(&b, at, sizeof b);
    if (!at || cf__frame_bad(&b) || b.type != CF__FR_BATCH || b.aux < 0)
        return reply_error(r, 0, CF_EBROKEN,
                           "malformed task batch (bad header) received");
    r->seq = b.id;
    if (in.left > b.len)
        in.left = (size_t)b.len;
    if (reply_begin(r, 0))
        return reply_error(r, 0, CF_ENOMEM, "out of memory on the worker");
    /* A frame holds at least its header, which bounds the count a
     * malformed batch may claim. */
    uint32_t n = (uint32_t)b.aux, most = (uint32_t)(in.left / CF__FRAME_HDR);
    cf_future **fs = NULL;
    cf__fn_cache cache = { .fn = NULL };
    if (pp && (n < most ? n : most)) {
        if (!(fs = cf__calloc(n < most ? n : most, sizeof *fs)))
            return reply_error(r, 0, CF_ENOMEM, "out of memory on the worker");
        submit_all(pp, in, n < most ? n : most, &cache, fs);
    }
    int rc = serve_tasks(r, in, n, fs, &cache);
    for (uint32_t k = 0; fs && k < (n < most ? n : most); k++)
        cf_future_release(fs[k]); /* left by an early stop */
    cf__free(fs);
    return rc;
}

/* Where a worker rank sends its answers. */
typedef struct dest {
    MPI_Comm comm;
    int root;
} dest;

static int mpi_send_results(void *ctx, const void *msg, size_t len)
{
    dest *d = ctx;
    return MPI_Send(msg, (int)len, MPI_BYTE, d->root, TAG_RESULTS, d->comm) ==
                   MPI_SUCCESS
               ? 0
               : CF_EBROKEN;
}

/* Waits for the next message from the root without spinning for long:
 * 0 with *st, or an MPI error code. */
static int probe_backoff(MPI_Comm comm, int source, MPI_Status *st)
{
    double pause = BACKOFF_MIN_S;
    for (int round = 0;; round++) {
        int flag = 0;
        int rc = MPI_Iprobe(source, MPI_ANY_TAG, comm, &flag, st);
        if (rc != MPI_SUCCESS || flag)
            return rc;
        if (round >= SPIN_ROUNDS) {
            sleep_s(pause);
            pause = pause * 2 < BACKOFF_MAX_S ? pause * 2 : BACKOFF_MAX_S;
        }
    }
}

/* The process pool an isolated rank runs its tasks on: one worker
 * process, with opts' initializer and process-pool settings. NULL with
 * errno. */
static cf_executor *isolation_pool(const cf_options *opts)
{
    cf_options po = { .max_workers = 1 };
    if (opts) {
        po.name_prefix = opts->name_prefix;
        po.initializer = opts->initializer;
        po.initarg = opts->initarg;
        po.max_tasks_per_child = opts->max_tasks_per_child;
        po.task_timeout = opts->task_timeout;
        po.start_method = opts->start_method;
    }
    return cf_process_pool_new(&po);
}

/* Gets a rank ready to run tasks: runs the initializer here, or (isolated)
 * starts the process pool *pp whose worker runs it. 0, or a failure code
 * with a message in *msg (caller frees). */
static int prepare(const cf_options *opts, bool isolated, cf_executor **pp,
                   char **msg)
{
    *pp = NULL;
    *msg = NULL;
    if (!isolated)
        return cf__serve_init(opts ? opts->initializer : NULL,
                              opts ? opts->initarg : NULL, msg);
    if ((*pp = isolation_pool(opts)) != NULL)
        return 0;
    char text[160];
    snprintf(text, sizeof text, "could not start the rank's process pool: %s",
             strerror(errno));
    *msg = cf__strdup(text);
    return CF_EBROKEN;
}

/* Sends the HELLO frame (code: prepare's outcome); its payload is the
 * rank's host name, a NUL, and msg (the failure's message, if any). */
static int say_hello(dest *to, int code, char *msg)
{
    char host[MPI_MAX_PROCESSOR_NAME + 1] = { 0 };
    int hn = 0;
    if (MPI_Get_processor_name(host, &hn) != MPI_SUCCESS || hn < 0)
        hn = 0;
    size_t hl = strnlen(host, MPI_MAX_PROCESSOR_NAME) + 1;
    size_t n = msg ? strnlen(msg, 4096) : 0;
    unsigned char hello[CF__FRAME_HDR + MPI_MAX_PROCESSOR_NAME + 1 + 4096];
    cf__frame h;
    cf__frame_set(&h, CF__FR_HELLO, 0, hl + n, code);
    memcpy(hello, &h, sizeof h);
    memcpy(hello + sizeof h, host, hl);
    if (n)
        memcpy(hello + sizeof h + hl, msg, n);
    cf__free(msg);
    n += hl;
    return MPI_Send(hello, (int)(sizeof h + n), MPI_BYTE, to->root, TAG_HELLO,
                    to->comm) == MPI_SUCCESS
               ? 0
               : CF_EBROKEN;
}

/* Receives the next message from the root into in: its tag, or -1 on an
 * MPI failure. *data is NULL when there was no memory for it. */
static int receive(MPI_Comm comm, int root, cf_buffer *in, void **data,
                   int *count)
{
    MPI_Status st;
    if (probe_backoff(comm, root, &st) != MPI_SUCCESS ||
        MPI_Get_count(&st, MPI_BYTE, count) != MPI_SUCCESS ||
        *count == MPI_UNDEFINED)
        return -1;
    *data = room(in, (size_t)*count) == 0 ? in->b->data : NULL;
    /* Out of memory: receive into nothing (truncated); the caller answers
     * with an error. */
    int rc = MPI_Recv(*data, *data ? *count : 0, MPI_BYTE, root, st.MPI_TAG,
                      comm, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
        *data = NULL;
    return st.MPI_TAG;
}

/* A worker rank: says hello (with the outcome of prepare), then serves
 * batches until STOP. 0, or CF_EBROKEN on an MPI failure. */
static int serve(MPI_Comm comm, int root, const cf_options *opts, bool isolated)
{
    dest to = { comm, root };
    char *msg;
    cf_executor *pp;
    int code = prepare(opts, isolated, &pp, &msg);
    if (say_hello(&to, code, msg)) {
        cf_executor_free(pp);
        return CF_EBROKEN;
    }
    cf_buffer in = { NULL, 0 };
    replier r = { .send = mpi_send_results, .ctx = &to };
    int rc = 0, tag, count;
    void *data;
    while ((tag = receive(comm, root, &in, &data, &count)) != TAG_STOP) {
        if (tag < 0) {
            rc = CF_EBROKEN;
            break;
        }
        if (tag != TAG_TASKS)
            continue;
        if (!data) {
            r.seq = 0;
            rc = reply_error(&r, 0, CF_ENOMEM,
                             "out of memory on the worker for a %d-byte batch",
                             count);
        } else {
            rc = serve_batch(data, (size_t)count, &r, pp);
        }
        if (rc && rc != CF_ENOMEM)
            break;
        rc = 0;
    }
    cf__free(in.b);
    cf__free(r.buf.b);
    cf_executor_free(pp);
    return rc;
}

/* ======================================================================== *
 * The root side: the transport under the engine's manager thread.
 * ======================================================================== */

typedef struct batch {
    struct batch *next;
    uint64_t seq;
    size_t n, done, bytes;
    uint64_t busy_ns;
    double sent;        /* when it was sent (cf__now) */
    bool alone;         /* sent to a rank that held nothing: it times the rtt */
    unsigned char *msg; /* the TASKS message until its send completed */
    MPI_Request req;
    cf__rtask *ts[];
} batch;

enum { W_STARTING, W_READY, W_DOWN, W_LOST /* stopped answering */ };

typedef struct mworker {
    int rank;
    int state;          /* W_*; READY once its hello said the init ran */
    bool enabled;       /* within max_workers */
    batch *head, *tail; /* in flight, oldest first */
    unsigned nbatches;
    size_t tasks, bytes; /* in flight */
    double cost;         /* seconds per task (EWMA), < 0 unknown */
    double rtt;          /* round trip in seconds, <= 0 unknown */
    double heard;        /* last message, or when it was given work */
    size_t slow_start;   /* next batch size while cost is unknown */
    char host[MPI_MAX_PROCESSOR_NAME + 1]; /* from its hello */
} mworker;

typedef struct mpool {
    cf__remote r;  /* first: the engine */
    MPI_Comm comm; /* our duplicate; only the manager uses it */
    int root;
    bool local;    /* one rank: the manager runs the tasks */
    bool offline;  /* no MPI calls on comm: one rank, or MPI failed */
    bool isolated; /* tasks run in a process pool on each rank */
    MPI_Comm spawn_intra, spawn_inter; /* cf_mpi_pool_spawn's, or NULL */
    cf_executor *pp; /* with one rank and isolated: the manager's */
    mworker *workers;
    size_t nworkers;
    /* The manager's. */
    bool begun;     /* the first round ran */
    size_t pending; /* the queue's length when dispatch began */
    size_t rr;      /* round-robin start of dispatch */
    uint64_t next_seq;
    double cost;         /* pool-wide seconds per task, < 0 unknown */
    double longest;      /* longest work between two answers, < 0 none yet */
    double rank_timeout; /* CFUTURES_MPI_RANK_TIMEOUT; < 0 the default */
    bool abort_on_lost;  /* CFUTURES_MPI_RANK_LOST=abort */
    bool lost;           /* a rank stopped answering */
    double next_watch;   /* when the watchdog looks next */
    int spins;           /* rounds without progress */
    double pause;        /* the next sleep while work is in flight */
    cf_buffer rbuf;      /* receive buffer */
    replier local_reply;
    cf_options opts; /* for the local initializer */
    cf__parker parker;
} mpool;

static size_t ready_workers(const mpool *p)
{
    return atomic_load_explicit(&p->r.st_workers, memory_order_relaxed);
}

static void add(_Atomic size_t *c, long n)
{
    atomic_fetch_add_explicit(c, (size_t)n, memory_order_relaxed);
}

/* ---- completing batches ----------------------------------------------- */

/* Completes b's next task: a result (data) or a failure (code, message
 * msg, taken over). */
static void finish_task(mpool *p, batch *b, int code, char *msg,
                        const void *data, size_t len)
{
    cf__rtask *t = b->ts[b->done++];
    /* Counted before the future is done, so that whoever sees it done
     * sees it counted. */
    add(&p->r.st_running, -1);
    cf__task_ctx ctx = { code, msg };
    cf__bytes *out = NULL;
    if (!code && (out = cf__malloc(sizeof *out + len)) != NULL) {
        out->len = len;
        if (len)
            memcpy(out->data, data, len);
    } else if (!code) {
        ctx.code = CF_ENOMEM;
    }
    cf__remote_finish(&p->r, t, out, &ctx);
}

/* Fails tasks [b->done, upto) with code and a message. */
static void fail_tasks(mpool *p, batch *b, size_t upto, int code,
                       const char *msg)
{
    while (b->done < upto)
        finish_task(p, b, code, cf__strdup(msg), NULL, 0);
}

static void batch_free(batch *b)
{
    cf__free(b->msg);
    cf__free(b);
}

/* The oldest batch of w is answered in full: learn its cost, drop it. */
static void retire_batch(mpool *p, mworker *w)
{
    batch *b = w->head;
    if (b->n && b->busy_ns) {
        double c = (double)b->busy_ns * 1e-9 / (double)b->n;
        cf__remote_ewma(&w->cost, c, 0.5);
        cf__remote_ewma(&p->cost, c, 0.5);
    }
    if (b->msg && !p->offline) {
        /* Answered before its send was seen complete: finish the send. */
        MPI_Wait(&b->req, MPI_STATUS_IGNORE);
    }
    w->head = b->next;
    if (!w->head)
        w->tail = NULL;
    w->nbatches--;
    w->tasks -= b->n;
    w->bytes -= b->bytes;
    if (w->nbatches == 0 && w->state == W_READY)
        add(&p->r.st_idle, 1);
    batch_free(b);
}

/* Fails the rest of w's oldest batch with `why` and drops it. */
static void drop_batch(mpool *p, mworker *w, int code, const char *why)
{
    fail_tasks(p, w->head, w->head->n, code, why);
    retire_batch(p, w);
}

/* Completes the `count` answers in `in` for batch b. */
static void take_answers(mpool *p, mworker *w, batch *b, cf__rd *in,
                         uint32_t count)
{
    size_t end = b->done + count;
    while (b->done < end) {
        cf__frame f;
        const unsigned char *m;
        const char *bad = cf__rd_frame(in, &f, &m);
        if (!bad && f.type != CF__FR_RESULT &&
            (f.type != CF__FR_FAIL || f.aux == 0 || f.len > CF__MAX_MESSAGE))
            bad = "not an answer";
        if (bad) {
            char why[256];
            snprintf(why, sizeof why,
                     "malformed result frame from MPI rank %d (task %zu of "
                     "its batch: %s)",
                     w->rank, b->done, bad);
            fail_tasks(p, b, end, CF_EBROKEN, why);
            return;
        }
        if (f.type == CF__FR_RESULT) {
            finish_task(p, b, 0, NULL, m, (size_t)f.len);
            continue;
        }
        char *text = f.len ? cf__malloc((size_t)f.len + 1) : NULL;
        if (text) {
            memcpy(text, m, (size_t)f.len);
            text[f.len] = '\0';
        }
        finish_task(p, b, f.aux, text, NULL, 0);
    }
}

/* The worker could not read tasks [first, n) of w's oldest batch: the FAIL
 * frame in `in` says why. */
static void rest_failed(mpool *p, mworker *w, cf__rd *in)
{
    cf__frame f;
    const unsigned char *m = NULL;
    const char *bad = cf__rd_frame(in, &f, &m);
    int n = bad ? 0 : (int)(f.len < 400 ? f.len : 400);
    char why[512];
    snprintf(why, sizeof why, "MPI rank %d: %.*s", w->rank, n,
             n ? (const char *)m : "malformed failure");
    drop_batch(p, w, bad || f.aux == 0 ? CF_EBROKEN : f.aux, why);
}

/* What an answer says about timing: the longest work between two answers
 * of a rank (the watchdog's yardstick) and, from the first answer to a
 * batch sent to an idle rank, that rank's round trip. */
static void learn_timing(mpool *p, mworker *w, const batch *b, int32_t first,
                         uint64_t busy_ns)
{
    double busy = (double)busy_ns * 1e-9;
    if (busy > p->longest)
        p->longest = busy;
    if (first == 0 && b->alone) {
        /* The smallest sample wins at once (a first message may pay for
         * setting up the connection); larger ones raise it slowly. */
        double rtt = cf__now() - b->sent - busy;
        if (rtt > 0 && (w->rtt <= 0 || rtt < w->rtt))
            w->rtt = rtt;
        else if (rtt > 0)
            cf__remote_ewma(&w->rtt, rtt, 0.125);
    }
}

/* Handles a RESULTS message from worker w (see the file comment for what
 * a malformed one fails). */
static void on_results(mpool *p, mworker *w, const unsigned char *msg,
                       size_t len)
{
    batch *b = w->head;
    if (!b)
        return; /* nothing asked of w: a stray answer */
    char why[512];
    cf__rd in = { msg, len };
    cf__frame h;
    const unsigned char *pl = NULL;
    answers a;
    const char *bad = cf__rd_frame(&in, &h, &pl);
    if (!bad && (h.type != CF__FR_ANSWERS || h.len < sizeof a || h.aux < 0))
        bad = "not an answer";
    if (bad) {
        snprintf(why, sizeof why,
                 "malformed result message from MPI rank %d (%s)", w->rank,
                 bad);
        drop_batch(p, w, CF_EBROKEN, why);
        return;
    }
    memcpy(&a, pl, sizeof a);
    in = (cf__rd){ pl + sizeof a, (size_t)h.len - sizeof a };
    if (a.flags & ANS_REST_FAILED) {
        rest_failed(p, w, &in);
        return;
    }
    if (h.id < b->seq)
        return; /* the rest of a batch already failed as malformed */
    if (h.id != b->seq || (size_t)h.aux != b->done ||
        a.count > b->n - b->done) {
        snprintf(why, sizeof why,
                 "malformed result message from MPI rank %d (batch %llu, "
                 "tasks %d+%u, expected batch %llu from task %zu of %zu)",
                 w->rank, (unsigned long long)h.id, h.aux, a.count,
                 (unsigned long long)b->seq, b->done, b->n);
        drop_batch(p, w, CF_EBROKEN, why);
        return;
    }
    b->busy_ns += a.busy_ns;
    learn_timing(p, w, b, h.aux, a.busy_ns);
    take_answers(p, w, b, &in, a.count);
    if (!(a.flags & ANS_FINAL))
        return;
    snprintf(why, sizeof why,
             "MPI rank %d answered %zu of the %zu tasks of a batch", w->rank,
             b->done, b->n);
    drop_batch(p, w, CF_EBROKEN, why); /* fails none if all answered */
}

/* A hello's payload is the rank's host name, a NUL, then the failure's
 * message: keeps the name in w->host, moves *m to the message and returns
 * its length. */
static size_t hello_host(mworker *w, const unsigned char **m, size_t len)
{
    size_t hl = len ? strnlen((const char *)*m, len) : 0;
    size_t keep = hl < sizeof w->host ? hl : sizeof w->host - 1;
    if (keep)
        memcpy(w->host, *m, keep);
    w->host[keep] = '\0';
    hl += hl < len; /* the NUL */
    *m = len ? *m + hl : *m;
    return len - hl;
}

static void on_hello(mpool *p, mworker *w, const unsigned char *msg, size_t len)
{
    cf__rd in = { msg, len };
    cf__frame h;
    const unsigned char *m = NULL;
    char why[512];
    if (w->state != W_STARTING)
        return;
    w->state = W_DOWN;
    const char *bad = cf__rd_frame(&in, &h, &m);
    if (bad || h.type != CF__FR_HELLO) {
        snprintf(why, sizeof why,
                 "pool broken: malformed hello message from MPI rank %d",
                 w->rank);
        cf__remote_break(&p->r, why);
        return;
    }
    size_t ml = hello_host(w, &m, (size_t)h.len);
    if (h.aux != 0) {
        const char *text = ml ? (const char *)m : cf_strerror(h.aux);
        int n = ml ? (int)(ml < 400 ? ml : 400) : (int)strlen(text);
        snprintf(why, sizeof why,
                 "pool broken: a worker's initializer failed on MPI rank %d: "
                 "%.*s",
                 w->rank, n, text);
        cf__remote_break(&p->r, why);
        return;
    }
    w->state = W_READY;
    if (w->enabled) {
        add(&p->r.st_workers, 1);
        add(&p->r.st_idle, 1);
    }
}

/* ---- dispatching ------------------------------------------------------- */

/* The work in one batch of w, in seconds: BATCH_TARGET_S, or an eighth
 * of the round trip when that is more (fewer messages per window). */
static double batch_s(const mworker *w)
{
    return w->rtt / 8 > BATCH_TARGET_S ? w->rtt / 8 : BATCH_TARGET_S;
}

/* The tasks w may hold at cost seconds each: the bandwidth-delay product.
 * When a task ends, its answer takes a round trip to bring the next one,
 * so 1.25 round trips of work wait behind the running batch, plus one
 * batch (capped). */
static size_t window(const mworker *w, double cost)
{
    double rtt = w->rtt > 0 ? w->rtt : 0;
    double k = ceil(1.25 * rtt / (cost > 1e-9 ? cost : 1e-9));
    size_t batch = cf__remote_window(cost, batch_s(w), 1, BATCH_MAX_TASKS);
    return k >= WINDOW_MAX_TASKS ? WINDOW_MAX_TASKS : (size_t)k + batch;
}

/* Whether w gets another batch now: a second one always (it hides the
 * round trip behind the first), more while the window allows. Long tasks
 * beyond the first only while enough waits for every worker to get one
 * more, so the tail is not queued behind a running task, or while w holds
 * less than a round trip of work: another rank could not ask for the task
 * and get it sooner. */
static bool can_take(const mpool *p, const mworker *w)
{
    if (w->state != W_READY || !w->enabled)
        return false;
    if (w->nbatches == 0)
        return true;
    if (p->local || w->nbatches >= MAX_BATCHES || w->bytes >= WINDOW_MAX_BYTES)
        return false;
    double cost = w->cost >= 0 ? w->cost : p->cost;
    if (w->nbatches >= 2 && (cost < 0 || w->tasks >= window(w, cost)))
        return false;
    if (cost < BATCH_TARGET_S || (double)w->tasks * cost <= w->rtt)
        return true;
    return p->pending >= (w->nbatches < 2 ? 2 : 1) * ready_workers(p);
}

/* The tasks w's next batch gets; held: what the ready workers hold. */
static size_t batch_size(const mpool *p, mworker *w, size_t held)
{
    double cost = w->cost >= 0 ? w->cost : p->cost;
    size_t n;
    if (cost < 0) {
        n = w->slow_start;
        if (w->slow_start < BATCH_MAX_TASKS)
            w->slow_start *= 2;
    } else {
        n = cf__remote_window(cost, batch_s(w), 1, BATCH_MAX_TASKS);
    }
    /* A fair share of what waits, so every worker gets some, and no more
     * than w's share of all the work (what waits and what the ready
     * workers hold) less what it holds, so that all end together. */
    size_t ready = ready_workers(p);
    if (ready > 1) {
        size_t share = (p->pending + ready - 1) / ready;
        size_t fair = (p->pending + held + ready - 1) / ready;
        fair = fair > w->tasks ? fair - w->tasks : 1;
        if (share > fair)
            share = fair;
        if (n > share)
            n = share ? share : 1;
    }
    return n;
}

/* Takes up to `want` pending tasks (and `most` bytes of frames, but at
 * least one) into a new batch, moving them to RUNNING; NULL when none is
 * left. Cancelled ones are counted and freed here. */
static batch *take_batch(mpool *p, size_t want, size_t most)
{
    batch *b = cf__malloc(sizeof *b + want * sizeof(cf__rtask *));
    cf__rtask *list = cf__remote_take(&p->r, b ? want : 1);
    if (!b) {
        /* Out of memory: fail one task so that we move on. */
        cf__remote_fail_list(&p->r, list, CF_ENOMEM, NULL);
        return NULL;
    }
    size_t n = 0, bytes = 0;
    cf__rtask *t = list;
    for (cf__rtask *next; t && (!n || bytes + t->len <= most); t = next) {
        next = t->next;
        p->pending--;
        bytes += t->len;
        if (cf__remote_set_running(&p->r, t))
            b->ts[n++] = t;
    }
    cf__remote_requeue(&p->r, t); /* what did not fit */
    *b = (batch){ .n = n };
    if (n)
        return b;
    cf__free(b);
    return NULL;
}

/* Encodes b's tasks into b->msg: the BATCH frame, then each task's frame.
 * The message length, or 0 when out of memory. */
static size_t encode_batch(mpool *p, batch *b)
{
    size_t len = CF__FRAME_HDR;
    for (size_t i = 0; i < b->n; i++)
        len += b->ts[i]->len;
    unsigned char *m = len <= MSG_MAX ? cf__malloc(len) : NULL;
    if (!m)
        return 0;
    b->seq = p->next_seq++;
    cf__frame h;
    cf__frame_set(&h, CF__FR_BATCH, b->seq, len - CF__FRAME_HDR, (int32_t)b->n);
    memcpy(m, &h, sizeof h);
    size_t at = sizeof h;
    for (size_t i = 0; i < b->n; i++) {
        memcpy(m + at, b->ts[i]->frame, b->ts[i]->len);
        at += b->ts[i]->len;
    }
    /* Test hooks (mpi_pool.h). relaxed: armed before the submit. */
    int hook = atomic_exchange_explicit(&corrupt_batch, CF__MPI_CORRUPT_NONE,
                                        memory_order_relaxed);
    if (hook == CF__MPI_CORRUPT_TASK_MAGIC)
        m[sizeof h] ^= 0xff;
    else if (hook == CF__MPI_CORRUPT_BATCH_HEADER)
        m[0] ^= 0xff;
    else if (hook == CF__MPI_CORRUPT_BATCH_TRUNCATE)
        len = sizeof h + CF__FRAME_HDR / 2;
    b->msg = m;
    return len;
}

static int send_local(void *ctx, const void *msg, size_t len)
{
    mpool *p = ctx;
    on_results(p, &p->workers[0], msg, len);
    return 0;
}

static void mpi_failed(mpool *p, int rc, const char *what);

/* Hands b to w: appends it to w's list, then sends it (or, with one rank,
 * serves it here). */
static void send_batch(mpool *p, mworker *w, batch *b)
{
    size_t len = encode_batch(p, b);
    add(&p->r.st_running, (long)b->n);
    b->sent = cf__now();
    b->alone = w->nbatches == 0;
    b->bytes = len;
    w->tasks += b->n;
    w->bytes += len;
    if (w->nbatches++ == 0) {
        add(&p->r.st_idle, -1);
        w->heard = b->sent; /* silence counts from here */
    }
    if (w->tail)
        w->tail->next = b;
    else
        w->head = b;
    w->tail = b;
    if (!len) {
        drop_batch(p, w, CF_ENOMEM,
                   "no memory for a task batch, or one "
                   "larger than an MPI message (2 GiB)");
        return;
    }
    if (p->local) {
        unsigned char *msg = b->msg;
        b->msg = NULL;
        serve_batch(msg, len, &p->local_reply, p->pp); /* retires b */
        cf__free(msg);
        return;
    }
    int rc = MPI_Isend(b->msg, (int)len, MPI_BYTE, w->rank, TAG_TASKS, p->comm,
                       &b->req);
    if (rc != MPI_SUCCESS) {
        cf__free(b->msg);
        b->msg = NULL;
        mpi_failed(p, rc, "MPI_Isend");
    }
}

/* Fills the workers that have room, the emptiest first (a second batch
 * never waits behind a first while a worker is idle), one batch each per
 * pass. True if anything was sent. */
static bool dispatch(mpool *p)
{
    bool sent = false;
    size_t held = 0; /* tasks the ready workers hold */
    for (size_t i = 0; i < p->nworkers; i++)
        if (p->workers[i].state == W_READY && p->workers[i].enabled)
            held += p->workers[i].tasks;
    for (unsigned depth = 0; depth < MAX_BATCHES && p->pending;) {
        unsigned next = MAX_BATCHES; /* the next fullness to serve */
        for (size_t k = 0; k < p->nworkers && p->pending; k++) {
            mworker *w = &p->workers[(p->rr + k) % p->nworkers];
            if (w->nbatches > depth && w->nbatches < next)
                next = w->nbatches;
            if (w->nbatches != depth || !can_take(p, w))
                continue;
            /* Past a round trip of 1 ms, batches stay small enough for
             * MPI to send them at once (no rendezvous round trip). */
            size_t most = w->rtt > 1e-3 ? EAGER_BYTES : BATCH_MAX_BYTES;
            batch *b = take_batch(p, batch_size(p, w, held), most);
            if (!b) {
                sent = true; /* cancelled tasks, or one failed */
                break;
            }
            held += b->n;
            send_batch(p, w, b);
            sent = true;
            next = depth + 1 < next ? depth + 1 : next;
        }
        depth = next;
    }
    p->rr++;
    return sent;
}

/* ---- the manager's MPI side -------------------------------------------- */

/* An MPI call failed: the pool is broken; every task in flight fails. */
static void mpi_failed(mpool *p, int rc, const char *what)
{
    char why[MPI_MAX_ERROR_STRING + 128];
    char err[MPI_MAX_ERROR_STRING + 64];
    snprintf(why, sizeof why, "pool broken: %s",
             mpi_errstr(rc, what, err, sizeof err));
    cf__remote_break(&p->r, why);
    for (size_t i = 0; i < p->nworkers; i++) {
        mworker *w = &p->workers[i];
        while (w->head) {
            cf__free(w->head->msg);
            w->head->msg = NULL; /* never wait on a broken send */
            drop_batch(p, w, CF_EBROKEN, why);
        }
        if (w->state == W_READY && w->enabled) {
            add(&p->r.st_workers, -1);
            add(&p->r.st_idle, -1);
        }
        w->state = W_DOWN;
    }
    p->offline = true; /* no more MPI calls on this communicator */
}

static mworker *worker_of(mpool *p, int rank)
{
    if (rank < 0 || rank == p->root)
        return NULL;
    size_t i = (size_t)(rank < p->root ? rank : rank - 1);
    return i < p->nworkers ? &p->workers[i] : NULL;
}

/* Frees the buffers of sends that completed: true if any did. */
static bool poll_sends(mpool *p)
{
    bool any = false;
    for (size_t i = 0; i < p->nworkers && !p->offline; i++) {
        for (batch *b = p->workers[i].head; b; b = b->next) {
            if (!b->msg)
                continue;
            int done = 0;
            int rc = MPI_Test(&b->req, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) {
                mpi_failed(p, rc, "MPI_Test");
                return true;
            }
            if (done) {
                cf__free(b->msg);
                b->msg = NULL;
                any = true;
            }
        }
    }
    return any;
}

/* Handles one received message (buf NULL: no memory for it). */
static void on_message(mpool *p, const MPI_Status *st, void *buf, int n)
{
    mworker *w = worker_of(p, st->MPI_SOURCE);
    if (!w)
        return;
    w->heard = cf__now();
    if (!buf) {
        /* Out of memory for the message: its tasks fail. */
        if (st->MPI_TAG == TAG_RESULTS && w->head)
            drop_batch(p, w, CF_ENOMEM, "out of memory for a result message");
        return;
    }
    if (st->MPI_TAG == TAG_RESULTS)
        on_results(p, w, buf, (size_t)n);
    else if (st->MPI_TAG == TAG_HELLO)
        on_hello(p, w, buf, (size_t)n);
}

/* Receives and handles the messages that arrived: true if any did. */
static bool poll_messages(mpool *p)
{
    bool any = false;
    while (!p->offline) {
        int flag = 0, n = 0;
        MPI_Status st;
        int rc = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, p->comm, &flag, &st);
        if (rc == MPI_SUCCESS && !flag)
            break;
        if (rc == MPI_SUCCESS)
            rc = MPI_Get_count(&st, MPI_BYTE, &n);
        if (rc != MPI_SUCCESS || n == MPI_UNDEFINED) {
            mpi_failed(p, rc, "MPI_Iprobe");
            return true;
        }
        void *buf = room(&p->rbuf, (size_t)n) == 0 ? p->rbuf.b->data : NULL;
        rc = MPI_Recv(buf, buf ? n : 0, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG,
                      p->comm, MPI_STATUS_IGNORE);
        any = true;
        if (buf && rc != MPI_SUCCESS) {
            mpi_failed(p, rc, "MPI_Recv");
            return true;
        }
        on_message(p, &st, buf, n);
    }
    return any;
}

/* Tells every worker rank to return (after hearing each one's hello, so
 * that no message is left unreceived), then frees the communicator. */
static void stop_workers(mpool *p)
{
    if (p->offline)
        return;
    size_t n = p->nworkers;
    MPI_Request *reqs = cf__calloc(n ? n : 1, sizeof *reqs);
    for (size_t i = 0; i < n; i++) {
        mworker *w = &p->workers[i];
        if (reqs)
            reqs[i] = MPI_REQUEST_NULL;
        if (w->state == W_LOST)
            continue; /* never touched again */
        while (w->state == W_STARTING && !p->offline) {
            MPI_Status st;
            if (probe_backoff(p->comm, w->rank, &st) != MPI_SUCCESS) {
                p->offline = true;
                break;
            }
            poll_messages(p);
        }
        if (p->offline)
            break;
        if (reqs)
            MPI_Isend(NULL, 0, MPI_BYTE, w->rank, TAG_STOP, p->comm, &reqs[i]);
        else
            MPI_Send(NULL, 0, MPI_BYTE, w->rank, TAG_STOP, p->comm);
    }
    if (reqs && !p->offline)
        MPI_Waitall((int)n, reqs, MPI_STATUSES_IGNORE);
    cf__free(reqs);
    if (p->offline)
        return;
    MPI_Comm_free(&p->comm);
    if (p->spawn_inter != MPI_COMM_NULL && !p->lost) {
        /* In step with the spawned workers (cf_mpi_pool_spawn). */
        MPI_Comm_free(&p->spawn_intra);
        MPI_Comm_disconnect(&p->spawn_inter);
    }
}

static bool in_flight(const mpool *p);

/* ---- the watchdog (docs/mpi.md, "A rank that stops answering") ---------- */

/* How long a rank holding tasks may stay silent: CFUTURES_MPI_RANK_TIMEOUT
 * when set (0: never), else max(5 s, 2 x the longest work between two
 * answers seen + 3 s, an isolated pool's task_timeout + 3 s), and no limit
 * before a first answer. 0: none. */
static double rank_limit(const mpool *p)
{
    if (p->rank_timeout >= 0)
        return p->rank_timeout;
    if (p->longest < 0)
        return 0;
    double t = 2 * p->longest + 3;
    /* An isolated rank answers a hung task when task_timeout kills it. */
    double hung =
        p->isolated && p->opts.task_timeout > 0 ? p->opts.task_timeout + 3 : 0;
    t = t > hung ? t : hung;
    return t > 5 ? t : 5;
}

/* Reads CFUTURES_MPI_RANK_TIMEOUT (seconds, 0 off): < 0 when unset or not
 * a number (the default). */
static double rank_timeout_env(void)
{
    const char *v = getenv("CFUTURES_MPI_RANK_TIMEOUT");
    char *end;
    double t = v && *v ? strtod(v, &end) : -1;
    if (v && *v && (*end || !(t >= 0) || !isfinite(t))) {
        fprintf(stderr,
                "cfutures: ignoring CFUTURES_MPI_RANK_TIMEOUT=%s "
                "(not a number of seconds >= 0)\n",
                v);
        t = -1;
    }
    return t;
}

/* w held tasks and said nothing for `silent` seconds: says so, then
 * ends the job (CFUTURES_MPI_RANK_LOST=abort), or fails w's tasks with
 * CF_EBROKEN and never touches w again (docs/mpi.md). */
static void rank_lost(mpool *p, mworker *w, double silent)
{
    char why[MPI_MAX_PROCESSOR_NAME + 128];
    snprintf(why, sizeof why,
             "MPI rank %d on host %s stopped answering (nothing for %.1f s, "
             "%zu tasks in flight)",
             w->rank, w->host[0] ? w->host : "?", silent, w->tasks);
    add(&p->r.st_stalled, 1);
    fprintf(stderr, "cfutures: %s; %s\n", why,
            p->abort_on_lost ? "ending the MPI job"
                             : "its tasks fail, the others go on");
    fflush(stderr);
    /* MPICH 4.0 does not end the job on an abort of a duplicate of
     * MPI_COMM_WORLD from this thread; a spawned pool's world is the root
     * alone, so there the merged communicator, which spans the workers. */
    if (p->abort_on_lost)
        MPI_Abort(p->spawn_inter != MPI_COMM_NULL ? p->comm : MPI_COMM_WORLD,
                  1);
    if (w->enabled)
        add(&p->r.st_workers, -1); /* not idle: it held work */
    w->state = W_LOST;
    p->lost = true;
    while (w->head) {
        /* Its send may never complete: MPI may still read the buffer,
         * which is left allocated for good. */
        w->head->msg = NULL;
        drop_batch(p, w, CF_EBROKEN, why);
    }
    if (!in_flight(p) && ready_workers(p) == 0)
        cf__remote_break(&p->r, why); /* nobody left to run the rest */
}

/* Every WATCH_EVERY_S: a rank holding tasks, silent past the limit, is
 * lost. */
static void watch(mpool *p)
{
    double now = cf__now(), limit = rank_limit(p);
    if (p->offline || limit <= 0 || now < p->next_watch)
        return;
    p->next_watch = now + WATCH_EVERY_S;
    for (size_t i = 0; i < p->nworkers; i++) {
        mworker *w = &p->workers[i];
        if (w->head && now - w->heard > limit)
            rank_lost(p, w, now - w->heard);
    }
}

/* ---- the manager's round ----------------------------------------------- */

static bool in_flight(const mpool *p)
{
    for (size_t i = 0; i < p->nworkers; i++)
        if (p->workers[i].head ||
            (p->workers[i].state == W_STARTING && !p->offline))
            return true;
    return false;
}

/* Sleeps until a submission, a shutdown, or (with work in flight) the
 * next poll. */
static void manager_wait(mpool *p, bool busy)
{
    pthread_mutex_lock(&p->r.mu);
    if ((p->r.n_pending || p->r.shutdown) && !busy) {
        pthread_mutex_unlock(&p->r.mu);
        return;
    }
    p->r.listening = true;
    pthread_mutex_unlock(&p->r.mu);
    cf__deadline d;
    cf__deadline_from(busy ? p->pause : CF_FOREVER, &d);
    cf__park(&p->parker, &d);
    pthread_mutex_lock(&p->r.mu);
    p->r.listening = false;
    pthread_mutex_unlock(&p->r.mu);
    if (busy)
        p->pause = p->pause * 2 < BACKOFF_MAX_S ? p->pause * 2 : BACKOFF_MAX_S;
}

/* With one rank, the manager is the worker: it gets ready here. */
static void begin(mpool *p)
{
    cf__set_current_name("MPIPoolExecutor-manager");
    p->begun = true;
    p->pause = BACKOFF_MIN_S;
    if (!p->local)
        return;
    char *msg;
    int code = prepare(&p->opts, p->isolated, &p->pp, &msg);
    if (code) {
        char why[512];
        snprintf(why, sizeof why,
                 "pool broken: a worker's initializer failed: %s",
                 msg ? msg : cf_strerror(code));
        cf__remote_break(&p->r, why);
    } else {
        p->workers[0].state = W_READY;
        add(&p->r.st_workers, 1);
        add(&p->r.st_idle, 1);
    }
    cf__free(msg);
}

/* One round of the manager (cf__remote_ops.round). */
static bool mp_round(cf__remote *r)
{
    mpool *p = (mpool *)r;
    if (!p->begun)
        begin(p);
    bool progress = poll_sends(p);
    progress |= poll_messages(p);
    pthread_mutex_lock(&r->mu);
    bool broken = r->broken;
    p->pending = r->n_pending;
    pthread_mutex_unlock(&r->mu);
    if (!broken)
        progress |= dispatch(p);
    watch(p);
    bool busy = in_flight(p);
    if (!busy && cf__remote_drained(r)) {
        stop_workers(p);
        cf_executor_free(p->pp);
        p->pp = NULL;
        return true;
    }
    if (progress) {
        p->spins = 0;
        p->pause = BACKOFF_MIN_S;
    } else if (!busy || p->spins++ >= SPIN_ROUNDS) {
        manager_wait(p, busy);
    }
    return false;
}

static void mp_wake(cf__remote *r)
{
    cf__unpark(&((mpool *)r)->parker);
}

static void mp_destroy(cf__remote *r)
{
    mpool *p = (mpool *)r;
    cf__free(p->rbuf.b);
    cf__free(p->local_reply.buf.b);
    cf__free(p->workers);
    cf__remote_fini(r);
    cf__free(p);
}

static const cf__remote_ops mp_ops = {
    .round = mp_round,
    .wake = mp_wake,
    .destroy = mp_destroy,
};

/* ---- construction ------------------------------------------------------ */

static void finalize_at_exit(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Finalize();
}

/* Initialises MPI if the program has not: 0, or EINVAL once finalised. */
static int ensure_mpi(void)
{
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return EINVAL;
    MPI_Initialized(&inited);
    if (inited)
        return 0;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) !=
        MPI_SUCCESS)
        return EIO;
    atexit(finalize_at_exit);
    return 0;
}

static mpool *pool_alloc(MPI_Comm comm, int root, int size,
                         const cf_options *opts)
{
    mpool *p = cf__calloc(1, sizeof *p);
    size_t n = size > 1 ? (size_t)size - 1 : 1;
    if (!p || !(p->workers = cf__calloc(n, sizeof *p->workers))) {
        cf__free(p);
        return NULL;
    }
    cf__remote_init(&p->r, &mp_ops);
    p->comm = comm;
    p->spawn_intra = p->spawn_inter = MPI_COMM_NULL;
    p->root = root;
    p->local = p->offline = size == 1;
    p->nworkers = n;
    p->cost = -1;
    p->longest = -1;
    p->rank_timeout = rank_timeout_env();
    const char *lost = getenv("CFUTURES_MPI_RANK_LOST");
    p->abort_on_lost = lost && strcmp(lost, "abort") == 0;
    p->next_seq = 1;
    if (opts)
        p->opts = *opts;
    size_t max = opts && opts->max_workers > 0 ? (size_t)opts->max_workers : n;
    for (size_t i = 0; i < n; i++) {
        mworker *w = &p->workers[i];
        w->rank = p->local ? root : (int)i < root ? (int)i : (int)i + 1;
        w->state = W_STARTING;
        w->enabled = i < max;
        w->cost = -1;
        w->slow_start = 1;
    }
    p->local_reply.send = send_local;
    p->local_reply.ctx = p;
    return p;
}

/* cf_mpi_pool_new and its variants. spawn_inter is the intercommunicator
 * to the workers cf_mpi_pool_spawn started (comm is then its merged
 * intracommunicator): the manager frees both once the workers stopped. */
/* The calling rank serves as a worker until the root stops it: NULL with
 * errno 0, or EIO after an MPI failure. */
static cf_executor *serve_rank(MPI_Comm dup, int root, const cf_options *opts,
                               bool isolated)
{
    int rc = serve(dup, root, opts, isolated);
    if (rc == 0)
        MPI_Comm_free(&dup);
    errno = rc ? EIO : 0;
    return NULL;
}

/* The root's pool on dup, its manager running: the executor, or NULL with
 * errno (the workers, serving already, are sent home). */
static cf_executor *root_pool(MPI_Comm dup, int root, int size,
                              const cf_options *opts, bool isolated,
                              MPI_Comm comm, MPI_Comm spawn_inter)
{
    int level;
    mpool *p = pool_alloc(dup, root, size, opts);
    if (p) {
        p->isolated = isolated;
        if (spawn_inter != MPI_COMM_NULL) {
            p->spawn_intra = comm;
            p->spawn_inter = spawn_inter;
        }
    }
    MPI_Query_thread(&level);
    int err = !p                                          ? ENOMEM
              : size > 1 && level < MPI_THREAD_SERIALIZED ? EINVAL
                                                          : 0;
    if (!err && cf__remote_start(&p->r, "cf-mpipool") != 0)
        err = EAGAIN;
    if (!err)
        return &p->r.base;
    if (p) {
        p->spawn_intra = p->spawn_inter = MPI_COMM_NULL; /* the caller's */
        stop_workers(p);
        mp_destroy(&p->r);
    } else if (size > 1) {
        for (int r = 0; r < size; r++)
            if (r != root)
                MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, dup);
        MPI_Comm_free(&dup);
    }
    errno = err;
    return NULL;
}

/* cf_mpi_pool_new and its variants. spawn_inter is the intercommunicator
 * to the workers cf_mpi_pool_spawn started (comm is then its merged
 * intracommunicator): the manager frees both once the workers stopped. */
static cf_executor *pool_new(MPI_Comm comm, int root, const cf_options *opts,
                             bool isolated, MPI_Comm spawn_inter)
{
    int size, rank;
    if (comm == MPI_COMM_NULL || !cf__options_valid(opts)) {
        errno = EINVAL;
        return NULL;
    }
    int err = ensure_mpi();
    if (!err &&
        (MPI_Comm_size(comm, &size) != MPI_SUCCESS ||
         MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || root < 0 || root >= size))
        err = EINVAL;
    /* With one rank nothing is sent: no communicator, and so no MPI call
     * from the manager thread, whatever the thread level. */
    MPI_Comm dup = MPI_COMM_NULL;
    if (!err && size > 1 && MPI_Comm_dup(comm, &dup) != MPI_SUCCESS)
        err = EIO;
    if (err) {
        errno = err;
        return NULL;
    }
    /* Failures become return codes: the manager turns them into a broken
     * pool rather than an abort of the job. */
    if (size > 1)
        MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    if (rank != root)
        return serve_rank(dup, root, opts, isolated);
    return root_pool(dup, root, size, opts, isolated, comm, spawn_inter);
}

cf_executor *cf_mpi_pool_new(MPI_Comm comm, int root, const cf_options *opts)
{
    return pool_new(comm, root, opts, false, MPI_COMM_NULL);
}

cf_executor *cf_mpi_pool_new_isolated(MPI_Comm comm, int root,
                                      const cf_options *opts)
{
    return pool_new(comm, root, opts, true, MPI_COMM_NULL);
}

/* ---- spawning the workers (cf_mpi_pool_spawn) ---------------------------- */

/* This program's path (in exe) and its arguments after argv[0], read from
 * /proc/self, for MPI_Comm_spawn: a NULL-terminated vector in one
 * allocation (caller frees), or NULL. */
static char **own_command(char *exe, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", exe, size - 1);
    FILE *f = n > 0 ? fopen("/proc/self/cmdline", "r") : NULL;
    if (!f)
        return NULL;
    exe[n] = '\0';
    cf_buffer text = { NULL, 0 };
    char chunk[4096];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = cf_buffer_append(&text, chunk, got);
    fclose(f);
    if (rc || !text.b) {
        cf__free(text.b);
        return NULL;
    }
    size_t len = text.b->len, words = 0;
    for (size_t i = 0; i < len; i++)
        words += text.b->data[i] == '\0';
    /* The vector, then a NUL-terminated copy of the text it points into. */
    char **argv = cf__malloc((words + 1) * sizeof *argv + len + 1);
    if (argv) {
        char *copy = (char *)(argv + words + 1);
        memcpy(copy, text.b->data, len);
        copy[len] = '\0';
        size_t k = 0;
        for (size_t at = strlen(copy) + 1; at < len;
             at += strlen(copy + at) + 1)
            argv[k++] = copy + at; /* after argv[0] */
        argv[k] = NULL;
    }
    cf__free(text.b);
    return argv;
}

cf_executor *cf_mpi_pool_spawn(const cf_options *opts)
{
    if (!cf__options_valid(opts)) {
        errno = EINVAL;
        return NULL;
    }
    int err = ensure_mpi();
    if (err) {
        errno = err;
        return NULL;
    }
    MPI_Comm parent, inter, intra;
    MPI_Comm_get_parent(&parent);
    inter = parent;
    if (parent == MPI_COMM_NULL) {
        int n =
            opts && opts->max_workers > 0 ? opts->max_workers : cf_cpu_count();
        char exe[4096];
        char **args = own_command(exe, sizeof exe);
        int *codes = cf__calloc((size_t)n, sizeof *codes);
        MPI_Info info;
        MPI_Info_create(&info);
        /* Open MPI: the workers may share cores with this process (other
         * MPI implementations ignore the key). */
        MPI_Info_set(info, "map_by", ":OVERSUBSCRIBE");
        int rc = args && codes ? MPI_Comm_spawn(exe, args, n, info, 0,
                                                MPI_COMM_SELF, &inter, codes)
                               : MPI_ERR_NO_MEM;
        MPI_Info_free(&info);
        cf__free(codes);
        cf__free(args);
        if (rc != MPI_SUCCESS) {
            errno = rc == MPI_ERR_NO_MEM ? ENOMEM : EIO;
            return NULL;
        }
    }
    /* The spawning process is rank 0 of the merged communicator. */
    if (MPI_Intercomm_merge(inter, parent != MPI_COMM_NULL, &intra) !=
        MPI_SUCCESS) {
        errno = EIO;
        return NULL;
    }
    cf_options o = { 0 };
    if (opts)
        o = *opts;
    o.max_workers = 0;
    cf_executor *ex = pool_new(intra, 0, &o, false, inter);
    if (parent != MPI_COMM_NULL || !ex) {
        /* A spawned worker that served to the end, or a failure: the
         * communicators are ours to free. */
        int e = errno;
        MPI_Comm_free(&intra);
        MPI_Comm_disconnect(&inter);
        errno = e;
    }
    return ex;
}

#else
/* Built without MPI (the core library): nothing here. */
typedef int cf__mpi_pool_not_built;
#endif /* CF_BUILDING_MPI */
