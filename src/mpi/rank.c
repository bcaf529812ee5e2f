/* SPDX-License-Identifier: MIT */
/*
 * rank.c - the serving side of the MPI transport (transport.h): a worker
 * rank says hello, then runs the batches the root sends, in order, and
 * answers each with RESULTS messages, until STOP. A one-rank pool's
 * manager serves its own batches through cf__mpi_serve_batch. An isolated
 * rank hands its tasks to a process pool of one worker, whose blame rules
 * then apply to them. Every frame is checked: a malformed one fails its
 * task (and, when the rest cannot be trusted, the rest of the batch).
 */
#include "transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- test hooks (transport.h) ------------------------------------------- */

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

int cf__mpi_batch_hook(void)
{
    /* relaxed: armed before the submit that the manager saw */
    return atomic_exchange_explicit(&corrupt_batch, CF__MPI_CORRUPT_NONE,
                                    memory_order_relaxed);
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static void answers_head(void *at, uint64_t seq, uint32_t first, size_t len,
                         cf__answers a)
{
    cf__frame h;
    cf__frame_set(&h, CF__FR_ANSWERS, seq, len - CF__FRAME_HDR, (int32_t)first);
    memcpy(at, &h, sizeof h);
    memcpy((unsigned char *)at + sizeof h, &a, sizeof a);
}

/* Starts a message whose first frame is task `first`. */
static int reply_begin(cf__replier *r, uint32_t first)
{
    r->first = first;
    r->count = 0;
    r->busy_ns = 0;
    if (cf__mpi_room(&r->buf, ANS_HEAD))
        return CF_ENOMEM;
    r->buf.b->len = ANS_HEAD;
    return 0;
}

/* Sends what buf holds (cut to `keep` bytes when keep is smaller). */
static int reply_flush(cf__replier *r, bool final, size_t keep)
{
    size_t len = r->buf.b->len < keep ? r->buf.b->len : keep;
    answers_head(r->buf.b->data, r->seq, r->first, len,
                 (cf__answers){ r->count, final ? ANS_FINAL : 0, r->busy_ns });
    int rc = r->send(r->ctx, r->buf.b->data, len);
    if (rc == 0 && !final)
        rc = reply_begin(r, r->first + r->count);
    return rc;
}

/* Sends, without allocating, that tasks [first, end of batch) failed. */
static int reply_error(cf__replier *r, uint32_t first, int code,
                       const char *fmt, ...)
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
                 (cf__answers){ 0, ANS_FINAL | ANS_REST_FAILED, 0 });
    return r->send(r->ctx, &m, len);
}

/* Test hooks (transport.h): corrupts the frame at mark and sends it at
 * once, so that only its task is hit. 1: no hook was armed. */
static int reply_hook(cf__replier *r, size_t mark)
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

/* The answer to task `id` was appended at mark (rc: 0 or CF_ENOMEM): one
 * too large for a message, or for memory, becomes a failure; then the test
 * hooks, and a flush past REPLY_FLUSH_BYTES. */
static int reply_added(cf__replier *r, uint64_t id, size_t mark, int rc)
{
    const char *why =
        rc ? "out of memory for the task's result"
        : r->buf.b->len > MSG_MAX
            ? "the task's result is too large for one MPI message (2 GiB)"
            : NULL;
    if (why) {
        r->buf.b->len = mark;
        if (cf__serve_answer(&r->buf, id, CF_ENOMEM, why, NULL, 0))
            return CF_ENOMEM;
    }
    r->count++;
    rc = reply_hook(r, mark);
    if (rc != 1)
        return rc;
    if (r->buf.b->len >= REPLY_FLUSH_BYTES)
        return reply_flush(r, false, SIZE_MAX);
    return 0;
}

/* Answers task i of a batch: runs it here, or (fs: isolated) takes what
 * its future from the rank's process pool says (NULL: the pool refused
 * it). Its time counts from *mark (isolated: the last answer) to now. */
static int answer(cf__replier *r, cf__fn_cache *c, const cf__frame *h,
                  const unsigned char *p, cf_future **fs, uint32_t i,
                  double *mark)
{
    double t0 = fs ? *mark : cf__now();
    uint64_t id = r->first + r->count;
    size_t at = r->buf.b->len;
    int rc;
    if (!fs) {
        rc = cf__serve_task(c, h, p, &r->buf, id, NULL, NULL);
    } else if (!fs[i]) {
        rc = cf__serve_answer(&r->buf, id, CF_EINVAL,
                              "the rank's process pool refused the task", NULL,
                              0);
    } else {
        const void *data = NULL;
        size_t len = 0;
        const char *msg = NULL;
        int code = cf_future_bytes(fs[i], CF_FOREVER, &data, &len);
        if (code)
            cf_future_exception(fs[i], 0, &msg);
        rc = cf__serve_answer(&r->buf, id, code, msg, data, len);
        cf_future_release(fs[i]);
        fs[i] = NULL;
    }
    *mark = cf__now();
    r->busy_ns += (uint64_t)((*mark - t0) * 1e9);
    return reply_added(r, id, at, rc);
}

/* Answers the n task frames in `in`, in order: 0, or a send's error. */
static int serve_tasks(cf__replier *r, cf__rd in, uint32_t n, cf_future **fs)
{
    cf__fn_cache cache = { .fn = NULL };
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
        rc = answer(r, &cache, &h, p, fs, i, &mark);
        if (rc == CF_ENOMEM)
            rc = reply_error(r, r->first + r->count, CF_ENOMEM,
                             "out of memory on the worker");
        if (rc == 0 && i + 1 == n)
            rc = reply_flush(r, true, SIZE_MAX);
    }
    return n == 0 ? reply_flush(r, true, SIZE_MAX) : rc;
}

int cf__mpi_serve_batch(const unsigned char *msg, size_t len, cf__replier *r,
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
    /* A frame holds at least its header: that bounds a claimed count. */
    uint32_t n = (uint32_t)b.aux, most = (uint32_t)(in.left / CF__FRAME_HDR);
    uint32_t k = n < most ? n : most;
    cf_future **fs = pp && k ? cf__calloc(k, sizeof *fs) : NULL;
    if (reply_begin(r, 0) || (pp && k && !fs)) {
        cf__free(fs);
        return reply_error(r, 0, CF_ENOMEM, "out of memory on the worker");
    }
    /* Isolated: the whole batch goes to the process pool first, so that it
     * streams through its worker. */
    cf__rd ahead = in;
    cf__frame h;
    const unsigned char *p;
    for (uint32_t i = 0; fs && i < k && !cf__rd_frame(&ahead, &h, &p); i++)
        cf__remote_submit_frame(pp, &h, p, &fs[i]);
    int rc = serve_tasks(r, in, n, fs);
    for (uint32_t i = 0; fs && i < k; i++)
        cf_future_release(fs[i]); /* left by an early stop */
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
int cf__mpi_probe(MPI_Comm comm, int source, MPI_Status *st)
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

int cf__mpi_prepare(const cf_options *opts, bool isolated, cf_executor **pp,
                    char **msg)
{
    *pp = NULL;
    *msg = NULL;
    if (!isolated)
        return cf__serve_init(opts ? opts->initializer : NULL,
                              opts ? opts->initarg : NULL, msg);
    /* One worker process, with opts' initializer and process settings. */
    cf_options po = { .max_workers = 1 };
    if (opts) {
        po.name_prefix = opts->name_prefix;
        po.initializer = opts->initializer;
        po.initarg = opts->initarg;
        po.max_tasks_per_child = opts->max_tasks_per_child;
        po.task_timeout = opts->task_timeout;
        po.start_method = opts->start_method;
    }
    if ((*pp = cf_process_pool_new(&po)) != NULL)
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
    if (cf__mpi_probe(comm, root, &st) != MPI_SUCCESS ||
        MPI_Get_count(&st, MPI_BYTE, count) != MPI_SUCCESS ||
        *count == MPI_UNDEFINED)
        return -1;
    *data = cf__mpi_room(in, (size_t)*count) == 0 ? in->b->data : NULL;
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
int cf__mpi_serve(MPI_Comm comm, int root, const cf_options *opts,
                  bool isolated)
{
    dest to = { comm, root };
    char *msg;
    cf_executor *pp;
    int code = cf__mpi_prepare(opts, isolated, &pp, &msg);
    if (say_hello(&to, code, msg)) {
        cf_executor_free(pp);
        return CF_EBROKEN;
    }
    cf_buffer in = { NULL, 0 };
    cf__replier r = { .send = mpi_send_results, .ctx = &to };
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
            rc = cf__mpi_serve_batch(data, (size_t)count, &r, pp);
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