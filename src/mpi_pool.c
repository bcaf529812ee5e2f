/* SPDX-License-Identifier: MIT */
/*
 * mpi_pool.c - the MPI executor (include/cfutures/mpi.h): bytes tasks run
 * on the other ranks of a communicator; the root's futures get the results.
 *
 * This file is the cfutures_mpi library (cmake/mpi.cmake compiles it with
 * CF_BUILDING_MPI). The core library's source glob sees it too, and there it
 * compiles to nothing, so the core never depends on MPI.
 *
 * How it works. cf_mpi_pool_new duplicates the communicator (our messages
 * never meet the program's). On the root, user threads append task futures
 * to a pending list under a mutex; one manager thread makes every MPI call
 * (so MPI_THREAD_SERIALIZED is enough). It hands batches of tasks to
 * whichever worker rank has room (dynamic load balancing), keeps at most
 * two batches in flight per worker so a worker never waits for the next
 * one, and reads results back with MPI_Iprobe/MPI_Recv. Batch sizes adapt:
 * each worker reports how long its tasks took, and a batch is sized to
 * about BATCH_TARGET_S of that worker's time (slow start while unknown), so
 * many tiny tasks share one message and a slow rank holds little work.
 * Idle workers are served first; long tasks go one per batch, and a second
 * one only while enough waits for every worker to get one, so the tail is
 * not queued behind a running task. Worker ranks serve in the thread that
 * called cf_mpi_pool_new until the root sends STOP. With one rank the
 * manager runs the batches itself, through the same encode/decode path.
 * Isolated pools (cf_mpi_pool_new_isolated) hand each rank's tasks to a
 * process pool of one worker (process_pool.c), which survives crashes.
 *
 * Waiting: Open MPI's blocking calls spin, which starves busy ranks when
 * ranks outnumber cores. So both sides poll with MPI_Iprobe and back off
 * (a few quick tries, then sleeps doubling up to BACKOFF_MAX_S); the
 * manager's sleep is also cut short by a submission (its parker). A manager
 * with nothing in flight sleeps until a submission or shutdown.
 *
 * Wire format (same binary everywhere, so native byte order): a TASKS
 * message is a wire_batch header and `count` task frames (wire_task, module
 * path, input). The worker answers each batch, in order, with one or more
 * RESULTS messages (wire_results header, frames of wire_result, message,
 * data); the last has RESULTS_FINAL. Every length is checked against what
 * is left of the message: a bad or truncated frame fails its task with
 * CF_EBROKEN (and, when the rest cannot be trusted, the tasks after it in
 * that message); nothing is ever read out of bounds or waited for in vain.
 *
 * Lifetime: the pool is reference counted, one for the user and one for
 * the manager thread; cf_executor_free from the manager thread (a done
 * callback) leaves the manager to free it.
 */
#ifdef CF_BUILDING_MPI

#include "cfutures/mpi.h"

#include "bytes.h"
#include "executor.h"
#include "fnid.h"
#include "mpi_pool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
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
    (1u << 20)                            /* input bytes in one batch (1 task
                                         larger than this goes alone) */
#define MAX_DEPTH 2                       /* batches in flight per worker */
#define REPLY_FLUSH_BYTES (8u << 20)      /* a worker sends results past this */
#define MSG_MAX ((size_t)INT_MAX - 65536) /* one MPI message (int count) */
#define TASK_MAX_BYTES ((size_t)1 << 30)  /* input of one task */
#define SPIN_ROUNDS 32                    /* quick polls before sleeping */
#define BACKOFF_MIN_S 2e-6
#define BACKOFF_MAX_S 1e-3

/* ---- wire format ---------------------------------------------------------- */

enum { TAG_TASKS = 1, TAG_RESULTS = 2, TAG_HELLO = 3, TAG_STOP = 4 };

#define MAGIC_BATCH 0x42544663u   /* "cFTB" */
#define MAGIC_TASK 0x4b544663u    /* "cFTK" */
#define MAGIC_RESULTS 0x53524663u /* "cFRS" */
#define MAGIC_RESULT 0x46524663u  /* "cFRF" */
#define MAGIC_HELLO 0x4c484663u   /* "cFHL" */
#define RESULTS_FINAL 1u

typedef struct wire_batch {
    uint32_t magic, count;
    uint64_t seq;
} wire_batch;

typedef struct wire_task {
    uint32_t magic, module_len;
    uint64_t offset, len;
} wire_task;

/* code != 0: the tasks [first, end of batch) failed with code and the
 * message that follows the header (the worker could not read them). */
typedef struct wire_results {
    uint32_t magic, flags, first, count;
    uint64_t seq, busy_ns;
    int32_t code;
    uint32_t msg_len;
} wire_results;

typedef struct wire_result {
    uint32_t magic;
    int32_t code;
    uint32_t msg_len, reserved;
    uint64_t len;
} wire_result;

typedef struct wire_hello {
    uint32_t magic;
    int32_t code;
    uint32_t msg_len, reserved;
} wire_hello;

/* A bounds-checked reader over one received message. */
typedef struct reader {
    const unsigned char *p;
    size_t left;
} reader;

static bool take(reader *r, void *out, size_t n)
{
    if (n > r->left)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

/* The next n bytes (n from the wire, so 64-bit), or NULL if cut short. */
static const unsigned char *skip(reader *r, uint64_t n)
{
    if (n > r->left)
        return NULL;
    const unsigned char *at = r->p;
    r->p += n;
    r->left -= (size_t)n;
    return at;
}

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

/* Starts a message whose first frame is task `first`. */
static int reply_begin(replier *r, uint32_t first)
{
    r->first = first;
    r->count = 0;
    r->busy_ns = 0;
    if (room(&r->buf, 0))
        return CF_ENOMEM;
    return cf_buffer_append(&r->buf, &(wire_results){ 0 },
                            sizeof(wire_results));
}

/* Sends what buf holds (cut to `keep` bytes when keep is smaller). */
static int reply_flush(replier *r, bool final, size_t keep)
{
    wire_results h = { .magic = MAGIC_RESULTS,
                       .flags = final ? RESULTS_FINAL : 0,
                       .first = r->first,
                       .count = r->count,
                       .seq = r->seq,
                       .busy_ns = r->busy_ns };
    memcpy(r->buf.b->data, &h, sizeof h);
    size_t len = r->buf.b->len < keep ? r->buf.b->len : keep;
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
        wire_results h;
        char msg[256];
    } m;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m.msg, sizeof m.msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof m.msg)
        n = sizeof m.msg - 1;
    m.h = (wire_results){ .magic = MAGIC_RESULTS,
                          .flags = RESULTS_FINAL,
                          .first = first,
                          .seq = r->seq,
                          .code = code,
                          .msg_len = (uint32_t)n };
    return r->send(r->ctx, &m, sizeof m.h + (size_t)n);
}

/* Appends one result frame. A result too large for a message, or for
 * memory, becomes a failure of its task. */
static int reply_frame(replier *r, int code, const char *msg, const void *data,
                       size_t len)
{
    size_t msg_len = msg ? strnlen(msg, 4096) : 0;
    if (len > MSG_MAX - sizeof(wire_results) - sizeof(wire_result) - 4096) {
        code = CF_ENOMEM;
        msg = "the task's result is too large for one MPI message (2 GiB)";
        msg_len = strlen(msg);
        len = 0;
    }
    if (r->buf.b->len + sizeof(wire_result) + msg_len + len > MSG_MAX) {
        int rc = reply_flush(r, false, SIZE_MAX);
        if (rc)
            return rc;
    }
    wire_result f = { .magic = MAGIC_RESULT,
                      .code = code,
                      .msg_len = (uint32_t)msg_len,
                      .len = len };
    size_t mark = r->buf.b->len;
    if (cf_buffer_reserve(&r->buf, sizeof f + msg_len + len) == 0) {
        cf_buffer_append(&r->buf, &f, sizeof f);
        cf_buffer_append(&r->buf, msg, msg_len);
        if (len)
            cf_buffer_append(&r->buf, data, len);
    } else {
        static const char oom[] = "out of memory for the task's result";
        f = (wire_result){ .magic = MAGIC_RESULT,
                           .code = CF_ENOMEM,
                           .msg_len = sizeof oom - 1 };
        r->buf.b->len = mark;
        /* The header's room always exists: reserve never shrinks. */
        if (cf_buffer_append(&r->buf, &f, sizeof f) ||
            cf_buffer_append(&r->buf, oom, sizeof oom - 1))
            return CF_ENOMEM;
    }
    r->count++;

    /* Test hooks (mpi_pool.h): corrupt this frame, and send it at once so
     * that only this task is hit. relaxed: armed by this thread's task. */
    int hook = atomic_exchange_explicit(&corrupt_result, CF__MPI_CORRUPT_NONE,
                                        memory_order_relaxed);
    if (hook == CF__MPI_CORRUPT_RESULT_MAGIC) {
        r->buf.b->data[mark] ^= 0xff;
        return reply_flush(r, false, SIZE_MAX);
    }
    if (hook == CF__MPI_CORRUPT_RESULT_TRUNCATE)
        return reply_flush(r, false, mark + sizeof f / 2);
    if (hook == CF__MPI_CORRUPT_RESULT_GARBAGE) {
        for (size_t i = 0; i < r->buf.b->len; i++)
            r->buf.b->data[i] = (unsigned char)(i * 131 + 7);
        int rc = r->send(r->ctx, r->buf.b->data, r->buf.b->len);
        return rc ? rc : reply_begin(r, r->first + r->count);
    }
    if (r->buf.b->len >= REPLY_FLUSH_BYTES)
        return reply_flush(r, false, SIZE_MAX);
    return 0;
}

/* Runs one task in a fresh task context (so cf_fail is captured) and
 * frames its result. */
static int run_task(replier *r, cf_bytes_fn fn, const void *in, size_t len)
{
    cf__task_ctx ctx = { 0, NULL };
    cf__task_ctx *outer = cf__task_ctx_swap(&ctx);
    double t0 = cf__now();
    cf__bytes *out = cf__run_bytes(fn, in, len);
    r->busy_ns += (uint64_t)((cf__now() - t0) * 1e9);
    cf__task_ctx_swap(outer);
    int rc = reply_frame(r, ctx.code, ctx.message, out ? out->data : NULL,
                         out ? out->len : 0);
    cf__free(out);
    cf__free(ctx.message);
    return rc;
}

/* The function a task frame names, resolved once per run of frames that
 * name the same one (tasks of a batch mostly share one). */
typedef struct fn_cache {
    char module[4096];
    uint64_t offset;
    bool valid;
    cf_bytes_fn fn;
} fn_cache;

static cf_bytes_fn resolve(fn_cache *c, const wire_task *t,
                           const unsigned char *mod)
{
    if (t->module_len >= sizeof c->module)
        return NULL;
    if (!c->valid || t->offset != c->offset ||
        strlen(c->module) != t->module_len ||
        memcmp(c->module, mod, t->module_len) != 0) {
        memcpy(c->module, mod, t->module_len);
        c->module[t->module_len] = '\0';
        c->offset = t->offset;
        c->valid = true;
        c->fn = (cf_bytes_fn)cf__fnid_resolve(c->module, t->offset);
    }
    return c->fn;
}

/* Reads the next task frame: true with *t, *mod and *data, or false (and
 * *why) when it is malformed. */
static bool next_task(reader *in, wire_task *t, const unsigned char **mod,
                      const unsigned char **data, const char **why)
{
    bool head = take(in, t, sizeof *t);
    if (head && t->magic == MAGIC_TASK && (*mod = skip(in, t->module_len)) &&
        (*data = skip(in, t->len)))
        return true;
    *why = head && t->magic != MAGIC_TASK ? "bad magic" : "cut short";
    return false;
}

/* An isolated rank's answer for one task: what its process pool's future
 * says. */
static int collect(replier *r, cf_future *f, double *mark)
{
    const void *data = NULL;
    size_t len = 0;
    const char *msg = NULL;
    int code = cf_future_bytes(f, CF_FOREVER, &data, &len);
    if (code)
        cf_future_exception(f, 0, &msg);
    double now = cf__now();
    r->busy_ns += (uint64_t)((now - *mark) * 1e9);
    *mark = now;
    int rc = reply_frame(r, code, msg, code ? NULL : data, code ? 0 : len);
    cf_future_release(f);
    return rc;
}

/* Serves one TASKS message: runs its tasks in order (in this process, or
 * on the isolated rank's process pool pp: all submitted first, so they
 * stream through its worker) and answers. Returns 0, or the error of a
 * send (an MPI failure: stop serving). */
static int serve_batch(const unsigned char *msg, size_t len, replier *r,
                       cf_executor *pp)
{
    reader in = { msg, len };
    wire_batch b;
    r->seq = 0;
    if (!take(&in, &b, sizeof b) || b.magic != MAGIC_BATCH)
        return reply_error(r, 0, CF_EBROKEN,
                           "malformed task batch (bad header) received");
    r->seq = b.seq;
    if (reply_begin(r, 0))
        return reply_error(r, 0, CF_ENOMEM, "out of memory on the worker");
    /* Isolated: submit every task first. A frame holds at least its
     * header, which bounds the count a malformed batch may claim. */
    uint32_t n = b.count;
    if (n > in.left / sizeof(wire_task))
        n = (uint32_t)(in.left / sizeof(wire_task));
    cf_future **fs = NULL;
    fn_cache cache = { .valid = false };
    if (pp && n) {
        if (!(fs = cf__calloc(n, sizeof *fs)))
            return reply_error(r, 0, CF_ENOMEM, "out of memory on the worker");
        reader scan = in;
        for (uint32_t i = 0; i < n; i++) {
            wire_task t;
            const unsigned char *mod = NULL, *data = NULL;
            const char *why;
            if (!next_task(&scan, &t, &mod, &data, &why))
                break;
            cf_bytes_fn fn = resolve(&cache, &t, mod);
            if (fn)
                cf_submit_bytes(pp, fn, data, (size_t)t.len, &fs[i]);
        }
    }

    int rc = 0;
    double mark = cf__now();
    uint32_t i = 0;
    for (; i < b.count && rc == 0; i++) {
        wire_task t;
        const unsigned char *mod = NULL, *data = NULL;
        const char *why;
        if (!next_task(&in, &t, &mod, &data, &why)) {
            if (!r->count || (rc = reply_flush(r, false, SIZE_MAX)) == 0)
                rc = reply_error(r, i, CF_EBROKEN,
                                 "malformed task frame %u of %u received (%s)",
                                 i, b.count, why);
            break;
        }
        cf_bytes_fn fn = resolve(&cache, &t, mod);
        if (fs && fs[i]) {
            rc = collect(r, fs[i], &mark);
            fs[i] = NULL;
        } else if (fn && !pp) {
            rc = run_task(r, fn, data, (size_t)t.len);
        } else {
            char text[4200];
            if (fn)
                snprintf(text, sizeof text, "%s",
                         "the rank's process pool refused the task");
            else
                snprintf(text, sizeof text,
                         "task function not found in this process (module "
                         "'%.*s', offset %#llx)",
                         t.module_len
                             ? (int)(t.module_len < 4000 ? t.module_len : 4000)
                             : 12,
                         t.module_len ? (const char *)mod : "main program",
                         (unsigned long long)t.offset);
            rc = reply_frame(r, CF_EINVAL, text, NULL, 0);
        }
        if (rc == CF_ENOMEM)
            rc = reply_error(r, r->first + r->count, CF_ENOMEM,
                             "out of memory on the worker");
        if (rc == 0 && i + 1 == b.count)
            rc = reply_flush(r, true, SIZE_MAX);
    }
    if (b.count == 0)
        rc = reply_flush(r, true, SIZE_MAX);
    for (uint32_t k = 0; fs && k < n; k++)
        cf_future_release(fs[k]); /* left by an early stop */
    cf__free(fs);
    return rc;
}

/* Runs opts->initializer in a task context: 0, or its failure code with
 * the message in *msg (caller frees). */
static int run_initializer(const cf_options *opts, char **msg)
{
    *msg = NULL;
    if (!opts || !opts->initializer)
        return 0;
    cf__task_ctx ctx = { 0, NULL };
    cf__task_ctx *outer = cf__task_ctx_swap(&ctx);
    opts->initializer(opts->initarg);
    cf__task_ctx_swap(outer);
    *msg = ctx.message;
    return ctx.code;
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
    if (!isolated)
        return run_initializer(opts, msg);
    *msg = NULL;
    if ((*pp = isolation_pool(opts)) != NULL)
        return 0;
    char text[160];
    snprintf(text, sizeof text, "could not start the rank's process pool: %s",
             strerror(errno));
    *msg = cf__strdup(text);
    return CF_EBROKEN;
}

/* A worker rank: says hello (with the outcome of prepare), then serves
 * batches until STOP. 0, or CF_EBROKEN on an MPI failure. */
static int serve(MPI_Comm comm, int root, const cf_options *opts, bool isolated)
{
    dest to = { comm, root };
    char *msg;
    cf_executor *pp;
    int code = prepare(opts, isolated, &pp, &msg);
    size_t msg_len = msg ? strnlen(msg, 4096) : 0;
    unsigned char hello[sizeof(wire_hello) + 4096];
    memcpy(hello, &(wire_hello){ MAGIC_HELLO, code, (uint32_t)msg_len, 0 },
           sizeof(wire_hello));
    if (msg_len)
        memcpy(hello + sizeof(wire_hello), msg, msg_len);
    cf__free(msg);
    if (MPI_Send(hello, (int)(sizeof(wire_hello) + msg_len), MPI_BYTE, root,
                 TAG_HELLO, comm) != MPI_SUCCESS) {
        cf_executor_free(pp);
        return CF_EBROKEN;
    }

    cf_buffer in = { NULL, 0 };
    replier r = { .send = mpi_send_results, .ctx = &to };
    int rc = 0;
    for (;;) {
        MPI_Status st;
        int count = 0;
        if (probe_backoff(comm, root, &st) != MPI_SUCCESS ||
            MPI_Get_count(&st, MPI_BYTE, &count) != MPI_SUCCESS ||
            count == MPI_UNDEFINED) {
            rc = CF_EBROKEN;
            break;
        }
        void *buf = NULL;
        if (room(&in, (size_t)count) == 0)
            buf = in.b->data;
        /* Out of memory: receive into nothing (truncated), answer with an
         * error below. */
        int rrc = MPI_Recv(buf, buf ? count : 0, MPI_BYTE, root, st.MPI_TAG,
                           comm, MPI_STATUS_IGNORE);
        if (st.MPI_TAG == TAG_STOP)
            break;
        if (st.MPI_TAG != TAG_TASKS)
            continue;
        if (!buf || rrc != MPI_SUCCESS) {
            r.seq = 0;
            rc = reply_error(&r, 0, CF_ENOMEM,
                             "out of memory on the worker for a %d-byte batch",
                             count);
        } else {
            rc = serve_batch(buf, (size_t)count, &r, pp);
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
 * The root side: the executor and its manager thread.
 * ======================================================================== */

/* What cf_submit_bytes leaves in the future (f->arg) until dispatch. */
typedef struct mpi_job {
    cf_bytes_fn fn;
    const char *module; /* owned by the loader */
    uint64_t offset;
    size_t len;
    unsigned char data[];
} mpi_job;

typedef struct batch {
    struct batch *next;
    uint64_t seq;
    size_t n, done;
    uint64_t busy_ns;
    unsigned char *msg; /* the TASKS message until its send completed */
    MPI_Request req;
    cf_future *fs[];
} batch;

enum { W_STARTING, W_READY, W_DOWN };

typedef struct mworker {
    int rank;
    int state;          /* W_*; READY once its hello said the init ran */
    bool enabled;       /* within max_workers */
    batch *head, *tail; /* in flight, oldest first */
    unsigned nbatches;
    double cost;       /* seconds per task (EWMA), < 0 unknown */
    size_t slow_start; /* next batch size while cost is unknown */
} mworker;

typedef struct mpool {
    cf_executor base;
    MPI_Comm comm; /* our duplicate; only the manager uses it */
    int root;
    bool local;    /* one rank: the manager runs the tasks */
    bool offline;  /* no MPI calls on comm: one rank, or MPI failed */
    bool isolated; /* tasks run in a process pool on each rank */
    MPI_Comm spawn_intra, spawn_inter; /* cf_mpi_pool_spawn's, or NULL */
    cf_executor *pp; /* with one rank and isolated: the manager's */
    mworker *workers;
    size_t nworkers;
    size_t rr; /* round-robin start of dispatch */
    uint64_t next_seq;
    double cost;    /* pool-wide seconds per task, < 0 unknown */
    cf_buffer rbuf; /* receive buffer */
    replier local_reply;
    cf_options opts; /* for the local initializer */

    /* Shared with submitting threads, under mu. */
    cf__mutex mu;
    cf_future *pending, *pending_tail; /* linked through task.next */
    bool sleeping; /* the manager parks and wants an unpark */
    bool shutdown;
    bool broken;
    char *broken_msg; /* set once with broken, under mu */
    cf__parker parker;

    /* Counters; the manager writes most, stats reads (relaxed). */
    _Atomic size_t npending, running, completed, failed, cancelled;
    _Atomic size_t ready, idle;

    pthread_t thread;
    pthread_mutex_t join_mu;
    bool joined;
    _Atomic uint32_t refs;
} mpool;

static const cf__executor_ops mpool_ops;

static void count(_Atomic size_t *c, size_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void pool_unref(mpool *p)
{
    /* acq_rel: the last owner sees the other's final writes */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&p->join_mu);
    cf__free(p->broken_msg);
    cf__free(p->rbuf.b);
    cf__free(p->local_reply.buf.b);
    cf__free(p->workers);
    cf__free(p);
}

/* Wakes the manager if it parks. Called with mu held. */
static bool wake_locked(mpool *p)
{
    bool wake = p->sleeping;
    p->sleeping = false;
    return wake;
}

/* Detaches the pending list (mu held). */
static cf_future *take_pending_locked(mpool *p)
{
    cf_future *list = p->pending;
    p->pending = p->pending_tail = NULL;
    atomic_store_explicit(&p->npending, 0, memory_order_relaxed);
    return list;
}

static cf_future *next_of(cf_future *f)
{
    cf__task *t = atomic_load_explicit(&f->task.next, memory_order_relaxed);
    return t ? (cf_future *)((char *)t - offsetof(cf_future, task)) : NULL;
}

/* Cancels (code CF_ECANCELED) or fails a detached pending list. */
static void drop_list(mpool *p, cf_future *list, int code, const char *why)
{
    cf__drop drop = { code, why };
    for (cf_future *f = list, *next; f; f = next) {
        next = next_of(f);
        count(code == CF_ECANCELED || cf_future_cancelled(f) ? &p->cancelled
                                                             : &p->failed,
              1);
        cf__future_drop(f, &drop);
    }
}

/* Marks the pool broken (first reason wins) and fails what is pending. */
static void break_pool(mpool *p, const char *why)
{
    cf__mutex_lock(&p->mu);
    if (!p->broken) {
        p->broken = true;
        p->broken_msg = cf__strdup(why);
    }
    cf_future *list = take_pending_locked(p);
    cf__mutex_unlock(&p->mu);
    drop_list(p, list, CF_EBROKEN, why);
}

/* ---- completing batches ----------------------------------------------- */

static void finish_task(mpool *p, batch *b, int code, const char *msg,
                        const void *data, size_t len)
{
    cf_future *f = b->fs[b->done++];
    /* Counted before the future is done, so that whoever sees it done
     * sees it counted. */
    atomic_fetch_sub_explicit(&p->running, 1, memory_order_relaxed);
    count(code == 0 ? &p->completed : &p->failed, 1);
    if (code != 0) {
        cf__future_fail(f, code, msg);
    } else if (cf__future_set_bytes(f, data, len) != 0) {
        /* Out of memory: set_bytes failed the future with CF_ENOMEM. */
        atomic_fetch_sub_explicit(&p->completed, 1, memory_order_relaxed);
        count(&p->failed, 1);
    }
    cf_future_release(f);
}

/* Fails tasks [b->done, upto) with code and a message. */
static void fail_tasks(mpool *p, batch *b, size_t upto, int code,
                       const char *msg)
{
    while (b->done < upto)
        finish_task(p, b, code, msg, NULL, 0);
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
        w->cost = w->cost < 0 ? c : 0.5 * w->cost + 0.5 * c;
        p->cost = p->cost < 0 ? c : 0.5 * p->cost + 0.5 * c;
    }
    if (b->msg && !p->offline) {
        /* Answered before its send was seen complete: finish the send. */
        MPI_Wait(&b->req, MPI_STATUS_IGNORE);
    }
    w->head = b->next;
    if (!w->head)
        w->tail = NULL;
    w->nbatches--;
    if (w->nbatches == 0 && w->state == W_READY)
        count(&p->idle, 1);
    batch_free(b);
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
    reader in = { msg, len };
    wire_results h;
    if (!take(&in, &h, sizeof h) || h.magic != MAGIC_RESULTS) {
        snprintf(why, sizeof why,
                 "malformed result message from MPI rank %d (%s)", w->rank,
                 len < sizeof h ? "cut short" : "bad magic");
        fail_tasks(p, b, b->n, CF_EBROKEN, why);
        retire_batch(p, w);
        return;
    }
    if (h.code != 0) {
        /* The worker could not read tasks [first, n): it says why. */
        const unsigned char *m = skip(&in, h.msg_len);
        snprintf(why, sizeof why, "MPI rank %d: %.*s", w->rank,
                 m ? (int)(h.msg_len < 400 ? h.msg_len : 400) : 0,
                 m ? (const char *)m : "");
        fail_tasks(p, b, b->n, h.code, why);
        retire_batch(p, w);
        return;
    }
    if (h.seq < b->seq)
        return; /* the rest of a batch already failed as malformed */
    if (h.seq != b->seq || h.first != b->done || h.count > b->n - b->done) {
        snprintf(why, sizeof why,
                 "malformed result message from MPI rank %d (batch %llu, "
                 "tasks %u+%u, expected batch %llu from task %zu of %zu)",
                 w->rank, (unsigned long long)h.seq, h.first, h.count,
                 (unsigned long long)b->seq, b->done, b->n);
        fail_tasks(p, b, b->n, CF_EBROKEN, why);
        retire_batch(p, w);
        return;
    }
    b->busy_ns += h.busy_ns;
    size_t end = b->done + h.count;
    while (b->done < end) {
        wire_result f;
        const unsigned char *m = NULL, *data = NULL;
        bool head = take(&in, &f, sizeof f);
        if (!head || f.magic != MAGIC_RESULT || !(m = skip(&in, f.msg_len)) ||
            !(data = skip(&in, f.len))) {
            snprintf(why, sizeof why,
                     "malformed result frame from MPI rank %d (task %zu of "
                     "its batch: %s)",
                     w->rank, b->done,
                     head && f.magic != MAGIC_RESULT ? "bad magic"
                                                     : "cut short");
            fail_tasks(p, b, end, CF_EBROKEN, why);
            break;
        }
        if (f.code == 0) {
            finish_task(p, b, 0, NULL, data, (size_t)f.len);
        } else {
            char *text = NULL;
            if (f.msg_len && (text = cf__malloc(f.msg_len + 1))) {
                memcpy(text, m, f.msg_len);
                text[f.msg_len] = '\0';
            }
            finish_task(p, b, f.code, text, NULL, 0);
            cf__free(text);
        }
    }
    if (h.flags & RESULTS_FINAL) {
        if (b->done < b->n) {
            snprintf(why, sizeof why,
                     "MPI rank %d answered %zu of the %zu tasks of a batch",
                     w->rank, b->done, b->n);
            fail_tasks(p, b, b->n, CF_EBROKEN, why);
        }
        retire_batch(p, w);
    }
}

static void on_hello(mpool *p, mworker *w, const unsigned char *msg, size_t len)
{
    reader in = { msg, len };
    wire_hello h;
    const unsigned char *m = NULL;
    char why[512];
    if (w->state != W_STARTING)
        return;
    w->state = W_DOWN;
    if (!take(&in, &h, sizeof h) || h.magic != MAGIC_HELLO ||
        !(m = skip(&in, h.msg_len))) {
        snprintf(why, sizeof why,
                 "pool broken: malformed hello message from MPI rank %d",
                 w->rank);
        break_pool(p, why);
        return;
    }
    if (h.code != 0) {
        const char *text = cf_strerror(h.code);
        int n = (int)strlen(text);
        if (h.msg_len) {
            text = (const char *)m;
            n = (int)(h.msg_len < 400 ? h.msg_len : 400);
        }
        snprintf(why, sizeof why,
                 "pool broken: a worker's initializer failed on MPI rank %d: "
                 "%.*s",
                 w->rank, n, text);
        break_pool(p, why);
        return;
    }
    w->state = W_READY;
    if (w->enabled) {
        count(&p->ready, 1);
        count(&p->idle, 1);
    }
}

/* ---- dispatching ------------------------------------------------------- */

/* Whether w gets another batch now. A second one hides the round trip
 * behind the first; for long tasks only while enough waits for every
 * worker to get a second one too, so the tail is not queued behind. */
static bool can_take(const mpool *p, const mworker *w)
{
    if (w->state != W_READY || !w->enabled)
        return false;
    if (w->nbatches == 0)
        return true;
    if (p->local || w->nbatches >= MAX_DEPTH)
        return false;
    double cost = w->cost >= 0 ? w->cost : p->cost;
    if (cost < BATCH_TARGET_S)
        return true;
    size_t ready = atomic_load_explicit(&p->ready, memory_order_relaxed);
    return atomic_load_explicit(&p->npending, memory_order_relaxed) >=
           MAX_DEPTH * ready;
}

static size_t batch_size(const mpool *p, mworker *w)
{
    double cost = w->cost >= 0 ? w->cost : p->cost;
    size_t n;
    if (cost < 0) {
        n = w->slow_start;
        if (w->slow_start < BATCH_MAX_TASKS)
            w->slow_start *= 2;
    } else {
        double k = BATCH_TARGET_S / (cost > 1e-9 ? cost : 1e-9);
        n = k >= BATCH_MAX_TASKS ? BATCH_MAX_TASKS : k < 1 ? 1 : (size_t)k;
    }
    /* A fair share of what waits, so every worker gets some. */
    size_t ready = atomic_load_explicit(&p->ready, memory_order_relaxed);
    size_t pending = atomic_load_explicit(&p->npending, memory_order_relaxed);
    if (ready > 1) {
        size_t share = (pending + ready - 1) / ready;
        if (n > share)
            n = share ? share : 1;
    }
    return n;
}

/* Takes up to `want` pending tasks into a new batch (moving them to
 * RUNNING); NULL when none is left. Cancelled ones are counted and
 * released here. */
static batch *take_batch(mpool *p, size_t want)
{
    batch *b = cf__malloc(sizeof *b + want * sizeof(cf_future *));
    for (;;) {
        cf__mutex_lock(&p->mu);
        if (!p->pending) {
            cf__mutex_unlock(&p->mu);
            cf__free(b);
            return NULL;
        }
        if (!b) {
            /* Out of memory: fail one task so that we move on. */
            cf_future *f = p->pending;
            p->pending = next_of(f);
            if (!p->pending)
                p->pending_tail = NULL;
            atomic_fetch_sub_explicit(&p->npending, 1, memory_order_relaxed);
            cf__mutex_unlock(&p->mu);
            count(&p->failed, 1);
            cf__future_drop(f, &(cf__drop){ CF_ENOMEM, NULL });
            return NULL;
        }
        size_t n = 0, bytes = 0;
        cf_future *f = p->pending;
        while (f && n < want) {
            size_t len = ((mpi_job *)f->arg)->len;
            if (n && bytes + len > BATCH_MAX_BYTES)
                break;
            bytes += len;
            b->fs[n++] = f;
            f = next_of(f);
        }
        p->pending = f;
        if (!f)
            p->pending_tail = NULL;
        atomic_fetch_sub_explicit(&p->npending, n, memory_order_relaxed);
        cf__mutex_unlock(&p->mu);

        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (cf_future_set_running_or_notify_cancel(b->fs[i])) {
                b->fs[kept++] = b->fs[i];
            } else {
                count(&p->cancelled, 1);
                cf_future_release(b->fs[i]);
            }
        }
        if (kept) {
            b->n = kept;
            b->done = 0;
            b->busy_ns = 0;
            b->msg = NULL;
            b->next = NULL;
            return b;
        }
    }
}

/* Encodes b's tasks into b->msg (freeing each task's input): the message
 * length, or 0 when out of memory. */
static size_t encode_batch(mpool *p, batch *b)
{
    size_t len = sizeof(wire_batch);
    for (size_t i = 0; i < b->n; i++) {
        mpi_job *j = b->fs[i]->arg;
        len += sizeof(wire_task) + strlen(j->module) + j->len;
    }
    unsigned char *m = cf__malloc(len);
    if (!m)
        return 0;
    b->seq = p->next_seq++;
    wire_batch h = { MAGIC_BATCH, (uint32_t)b->n, b->seq };
    memcpy(m, &h, sizeof h);
    size_t at = sizeof h;
    for (size_t i = 0; i < b->n; i++) {
        mpi_job *j = b->fs[i]->arg;
        size_t ml = strlen(j->module);
        wire_task t = { MAGIC_TASK, (uint32_t)ml, j->offset, j->len };
        memcpy(m + at, &t, sizeof t);
        memcpy(m + at + sizeof t, j->module, ml);
        if (j->len)
            memcpy(m + at + sizeof t + ml, j->data, j->len);
        at += sizeof t + ml + j->len;
        cf__free(j);
        b->fs[i]->arg = NULL; /* sent: the future no longer needs it */
    }
    /* Test hooks (mpi_pool.h). relaxed: armed before the submit. */
    int hook = atomic_exchange_explicit(&corrupt_batch, CF__MPI_CORRUPT_NONE,
                                        memory_order_relaxed);
    if (hook == CF__MPI_CORRUPT_TASK_MAGIC)
        m[sizeof h] ^= 0xff;
    else if (hook == CF__MPI_CORRUPT_BATCH_HEADER)
        m[0] ^= 0xff;
    else if (hook == CF__MPI_CORRUPT_BATCH_TRUNCATE)
        len = sizeof h + sizeof(wire_task) / 2;
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
    if (!len) {
        fail_tasks(p, b, b->n, CF_ENOMEM, "out of memory for a task batch");
        batch_free(b);
        return;
    }
    atomic_fetch_add_explicit(&p->running, b->n, memory_order_relaxed);
    if (w->nbatches++ == 0)
        atomic_fetch_sub_explicit(&p->idle, 1, memory_order_relaxed);
    if (w->tail)
        w->tail->next = b;
    else
        w->head = b;
    w->tail = b;
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

/* Fills the workers that have room: idle ones first (a second batch never
 * waits behind a first while a worker is idle), then each one's second
 * batch. True if anything was sent. */
static bool dispatch(mpool *p)
{
    bool sent = false;
    for (unsigned depth = 0; depth < MAX_DEPTH; depth++) {
        for (size_t k = 0; k < p->nworkers; k++) {
            mworker *w = &p->workers[(p->rr + k) % p->nworkers];
            if (w->nbatches != depth || !can_take(p, w))
                continue;
            if (!atomic_load_explicit(&p->npending, memory_order_relaxed))
                goto out;
            batch *b = take_batch(p, batch_size(p, w));
            if (!b)
                goto out;
            send_batch(p, w, b);
            sent = true;
        }
    }
out:
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
    break_pool(p, why);
    for (size_t i = 0; i < p->nworkers; i++) {
        mworker *w = &p->workers[i];
        while (w->head) {
            fail_tasks(p, w->head, w->head->n, CF_EBROKEN, why);
            cf__free(w->head->msg);
            w->head->msg = NULL; /* never wait on a broken send */
            retire_batch(p, w);
        }
        if (w->state == W_READY && w->enabled) {
            atomic_fetch_sub_explicit(&p->ready, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&p->idle, 1, memory_order_relaxed);
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
        mworker *w = worker_of(p, st.MPI_SOURCE);
        if (!w)
            continue;
        if (!buf) {
            /* Out of memory for the message: its tasks fail. */
            if (st.MPI_TAG == TAG_RESULTS && w->head) {
                fail_tasks(p, w->head, w->head->n, CF_ENOMEM,
                           "out of memory for a result message");
                retire_batch(p, w);
            }
            continue;
        }
        if (rc != MPI_SUCCESS) {
            mpi_failed(p, rc, "MPI_Recv");
            return true;
        }
        if (st.MPI_TAG == TAG_RESULTS)
            on_results(p, w, buf, (size_t)n);
        else if (st.MPI_TAG == TAG_HELLO)
            on_hello(p, w, buf, (size_t)n);
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
    if (p->spawn_inter != MPI_COMM_NULL) {
        /* In step with the spawned workers (cf_mpi_pool_spawn). */
        MPI_Comm_free(&p->spawn_intra);
        MPI_Comm_disconnect(&p->spawn_inter);
    }
}

/* ---- the manager thread ------------------------------------------------ */

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
static void manager_wait(mpool *p, bool busy, double pause)
{
    cf__mutex_lock(&p->mu);
    if ((p->pending && !busy) || (p->shutdown && !busy)) {
        cf__mutex_unlock(&p->mu);
        return;
    }
    p->sleeping = true;
    cf__mutex_unlock(&p->mu);
    cf__deadline d;
    cf__deadline_from(busy ? pause : CF_FOREVER, &d);
    cf__park(&p->parker, &d);
    cf__mutex_lock(&p->mu);
    p->sleeping = false;
    cf__mutex_unlock(&p->mu);
}

static void *manager_main(void *arg)
{
    mpool *p = arg;
    cf__set_current_name("MPIPoolExecutor-manager");
    if (p->local) {
        char *msg;
        int code = prepare(&p->opts, p->isolated, &p->pp, &msg);
        if (code) {
            char why[512];
            snprintf(why, sizeof why,
                     "pool broken: a worker's initializer failed: %s",
                     msg ? msg : cf_strerror(code));
            break_pool(p, why);
        } else {
            p->workers[0].state = W_READY;
            count(&p->ready, 1);
            count(&p->idle, 1);
        }
        cf__free(msg);
    }
    double pause = BACKOFF_MIN_S;
    for (int round = 0;; round++) {
        bool progress = poll_sends(p);
        progress |= poll_messages(p);
        cf__mutex_lock(&p->mu);
        bool broken = p->broken, shutdown = p->shutdown;
        cf_future *failed = broken ? take_pending_locked(p) : NULL;
        cf__mutex_unlock(&p->mu);
        if (failed)
            drop_list(p, failed, CF_EBROKEN, p->broken_msg);
        if (!broken)
            progress |= dispatch(p);
        bool busy = in_flight(p);
        if (shutdown && !busy &&
            !atomic_load_explicit(&p->npending, memory_order_relaxed))
            break;
        if (progress) {
            round = 0;
            pause = BACKOFF_MIN_S;
            continue;
        }
        if (busy && round < SPIN_ROUNDS)
            continue;
        manager_wait(p, busy, pause);
        if (busy)
            pause = pause * 2 < BACKOFF_MAX_S ? pause * 2 : BACKOFF_MAX_S;
    }
    stop_workers(p);
    cf_executor_free(p->pp);
    p->pp = NULL;
    pool_unref(p);
    return NULL;
}

/* ---- the engine operations -------------------------------------------- */

static int mpool_submit(cf_executor *ex, cf_future *f)
{
    (void)ex;
    (void)f;
    return CF_EINVAL; /* pointer tasks cannot cross to another rank */
}

static int mpool_submit_bytes(cf_executor *ex, cf_future *f, cf_bytes_fn fn,
                              const void *in, size_t len)
{
    mpool *p = (mpool *)ex;
    const char *module;
    uint64_t offset;
    if (len > TASK_MAX_BYTES || cf__fnid_of((const void *)fn, &module, &offset))
        return CF_EINVAL;
    mpi_job *j = cf__malloc(sizeof *j + len);
    if (!j)
        return CF_ENOMEM;
    j->fn = fn;
    j->module = module;
    j->offset = offset;
    j->len = len;
    if (len)
        memcpy(j->data, in, len);
    f->arg = j;
    atomic_store_explicit(&f->task.next, NULL, memory_order_relaxed);
    cf__mutex_lock(&p->mu);
    int rc = p->broken ? CF_EBROKEN : p->shutdown ? CF_ESHUTDOWN : 0;
    bool wake = false;
    if (rc == 0) {
        if (p->pending_tail)
            atomic_store_explicit(&p->pending_tail->task.next, &f->task,
                                  memory_order_relaxed);
        else
            p->pending = f;
        p->pending_tail = f;
        atomic_fetch_add_explicit(&p->npending, 1, memory_order_relaxed);
        wake = wake_locked(p);
    }
    cf__mutex_unlock(&p->mu);
    if (wake)
        cf__unpark(&p->parker);
    return rc; /* on error the caller frees f and f->arg */
}

static bool on_manager(const mpool *p)
{
    return pthread_equal(pthread_self(), p->thread);
}

static int mpool_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    mpool *p = (mpool *)ex;
    if (wait && on_manager(p))
        return CF_EDEADLK;
    cf__mutex_lock(&p->mu);
    p->shutdown = true;
    cf_future *list = cancel_futures ? take_pending_locked(p) : NULL;
    bool wake = wake_locked(p);
    cf__mutex_unlock(&p->mu);
    if (wake)
        cf__unpark(&p->parker);
    drop_list(p, list, CF_ECANCELED, NULL);
    if (wait) {
        pthread_mutex_lock(&p->join_mu);
        if (!p->joined) {
            pthread_join(p->thread, NULL);
            p->joined = true;
        }
        pthread_mutex_unlock(&p->join_mu);
    }
    return 0;
}

static void mpool_free(cf_executor *ex)
{
    mpool *p = (mpool *)ex;
    if (on_manager(p)) {
        mpool_shutdown(ex, false, false);
        pthread_detach(p->thread); /* it frees the pool when it ends */
    } else {
        mpool_shutdown(ex, true, false);
    }
    pool_unref(p);
}

static int mpool_stats(cf_executor *ex, cf_stats *out)
{
    mpool *p = (mpool *)ex;
    out->workers = atomic_load_explicit(&p->ready, memory_order_relaxed);
    out->idle = atomic_load_explicit(&p->idle, memory_order_relaxed);
    out->queued = atomic_load_explicit(&p->npending, memory_order_relaxed);
    out->running = atomic_load_explicit(&p->running, memory_order_relaxed);
    out->completed = atomic_load_explicit(&p->completed, memory_order_relaxed);
    out->failed = atomic_load_explicit(&p->failed, memory_order_relaxed);
    out->cancelled = atomic_load_explicit(&p->cancelled, memory_order_relaxed);
    return 0;
}

static const cf__executor_ops mpool_ops = {
    .submit = mpool_submit,
    .submit_bytes = mpool_submit_bytes,
    .shutdown = mpool_shutdown,
    .free = mpool_free,
    .stats = mpool_stats,
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
    p->base.ops = &mpool_ops;
    p->comm = comm;
    p->spawn_intra = p->spawn_inter = MPI_COMM_NULL;
    p->root = root;
    p->local = p->offline = size == 1;
    p->nworkers = n;
    p->cost = -1;
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
    pthread_mutex_init(&p->join_mu, NULL);
    atomic_init(&p->refs, 2); /* the user and the manager thread */
    return p;
}

/* cf_mpi_pool_new and its variants. spawn_inter is the intercommunicator
 * to the workers cf_mpi_pool_spawn started (comm is then its merged
 * intracommunicator): the manager frees both once the workers stopped. */
static cf_executor *pool_new(MPI_Comm comm, int root, const cf_options *opts,
                             bool isolated, MPI_Comm spawn_inter)
{
    int size, rank, level;
    if (comm == MPI_COMM_NULL || !cf__options_valid(opts)) {
        errno = EINVAL;
        return NULL;
    }
    int err = ensure_mpi();
    if (err) {
        errno = err;
        return NULL;
    }
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS ||
        MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) {
        errno = EINVAL;
        return NULL;
    }
    if (root < 0 || root >= size) {
        errno = EINVAL;
        return NULL;
    }
    /* With one rank nothing is sent: no communicator, and so no MPI call
     * from the manager thread, whatever the thread level. */
    MPI_Comm dup = MPI_COMM_NULL;
    if (size > 1 && MPI_Comm_dup(comm, &dup) != MPI_SUCCESS) {
        errno = EIO;
        return NULL;
    }
    /* Failures become return codes: the manager turns them into a broken
     * pool rather than an abort of the job. */
    if (size > 1)
        MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    if (rank != root) {
        int rc = serve(dup, root, opts, isolated);
        if (rc == 0)
            MPI_Comm_free(&dup);
        errno = rc ? EIO : 0;
        return NULL;
    }
    mpool *p = pool_alloc(dup, root, size, opts);
    if (p) {
        p->isolated = isolated;
        if (spawn_inter != MPI_COMM_NULL) {
            p->spawn_intra = comm;
            p->spawn_inter = spawn_inter;
        }
    }
    MPI_Query_thread(&level);
    err = !p ? ENOMEM : size > 1 && level < MPI_THREAD_SERIALIZED ? EINVAL : 0;
    sigset_t mask;
    bool block = !(opts && opts->keep_signal_mask);
    if (block)
        cf__signals_block(&mask);
    if (!err && pthread_create(&p->thread, NULL, manager_main, p) != 0)
        err = EAGAIN;
    if (block)
        cf__signals_restore(&mask);
    if (err) {
        /* The workers are serving already: send them home. */
        if (p) {
            p->spawn_intra = p->spawn_inter = MPI_COMM_NULL; /* the caller's */
            stop_workers(p);
            atomic_store_explicit(&p->refs, 1, memory_order_relaxed);
            pool_unref(p);
        } else if (size > 1) {
            for (int r = 0; r < size; r++)
                if (r != root)
                    MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, dup);
            MPI_Comm_free(&dup);
        }
        errno = err;
        return NULL;
    }
    return &p->base;
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
