/* SPDX-License-Identifier: MIT */
/*
 * rank.c - the serving side of the MPI transport (transport.h): a worker
 * rank says hello, then runs the root's batches in order and answers each,
 * until STOP; a one-rank pool's manager serves its own batches here. An
 * isolated rank drives one worker process through the process transport's
 * link (proc/wire.h), whose blame rules then apply. Every frame is checked:
 * a malformed one fails its task (or the rest of the batch).
 */
#include "transport.h"

#include "../proc/wire.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* Writes at `at` the head of a message of len bytes with r's answers. */
static void answers_head(void *at, const cf__replier *r, size_t len, bool final)
{
    cf__frame h;
    cf__answers a = { r->count, final, r->busy_ns };
    cf__frame_set(&h, CF__FR_ANSWERS, r->seq, len - CF__FRAME_HDR,
                  (int32_t)r->first);
    memcpy(at, &h, sizeof h);
    memcpy((unsigned char *)at + sizeof h, &a, sizeof a);
}

/* Starts a message of the answer to batch seq from its task `first`. */
static int reply_begin(cf__replier *r, uint64_t seq, uint32_t first)
{
    r->seq = seq;
    r->first = first;
    r->count = 0;
    r->busy_ns = 0;
    if (r->buf.b)
        r->buf.b->len = 0; /* the last message went */
    if (cf_buffer_reserve(&r->buf, ANS_HEAD))
        return CF_ENOMEM;
    r->buf.b->len = ANS_HEAD;
    return 0;
}

/* Sends buf, and unless final starts the next message. */
static int reply_flush(cf__replier *r, bool final)
{
    unsigned char *d = r->buf.b->data;
    size_t len = r->buf.b->len;
    answers_head(d, r, len, final);
    int rc = r->send(r->ctx, d, len);
    return rc || final ? rc : reply_begin(r, r->seq, r->first + r->count);
}

/* Ends the answer without allocating: the batch's tasks from r->first
 * fail with code and fmt's message (r holds no answers). */
__attribute__((format(printf, 3, 4))) static int
reply_error(cf__replier *r, int code, const char *fmt, ...)
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
    answers_head(m.head, r, len, true);
    return r->send(r->ctx, &m, len);
}

/* Counts the answer appended at mark (rc: 0 or CF_ENOMEM) since t0, or a
 * failure if too large; a full buf is sent at once, and so are answers
 * that took REPLY_FLUSH_S: the root's watchdog times the silence between
 * answers, and a batch may take long in all (isolated: each of its tasks
 * may run to task_timeout). */
static int reply_added(cf__replier *r, size_t mark, int rc, double t0)
{
    r->busy_ns += (uint64_t)((cf__now() - t0) * 1e9);
    const char *why =
        rc ? "out of memory for the task's result"
        : r->buf.b->len > MSG_MAX
            ? "the task's result is too large for one MPI message (2 GiB)"
            : NULL;
    if (why) {
        r->buf.b->len = mark;
        if (cf__serve_answer(&r->buf, r->first + r->count, CF_ENOMEM, why, NULL,
                             0))
            return CF_ENOMEM;
    }
    r->count++;
    bool full = r->buf.b->len >= REPLY_FLUSH_BYTES ||
                (double)r->busy_ns * 1e-9 >= REPLY_FLUSH_S;
    return full ? reply_flush(r, false) : 0;
}

/* ---- an isolated rank's worker process ---------------------------------- */

/* The owner of one link (proc/wire.h): tasks go to the worker in batch
 * order, one batch at a time, and come back in that order, answered,
 * blamed or requeued; a lost worker is reaped before the next starts. */
struct cf__mpi_iso {
    cf__pp_team team;
    cf__pp_link *w;         /* the worker process, or NULL */
    cf__rtask *head, *tail; /* not given to w yet, in order */
    uint64_t next_id;
    char broken[384]; /* why the initializer failed, or "" */
    cf__replier *r;   /* the batch being answered; NULL: none */
    double mark;      /* when its last answer came */
    int rc;           /* a send's error: answer nothing more */
};

/* Answers the next task of the batch. */
static void iso_answer(cf__mpi_iso *s, int code, const char *msg,
                       const void *data, size_t len)
{
    cf__replier *r = s->r;
    if (s->rc || !r)
        return;
    size_t at = r->buf.b->len;
    int rc =
        cf__serve_answer(&r->buf, r->first + r->count, code, msg, data, len);
    s->rc = reply_added(r, at, rc, s->mark);
    s->mark = cf__now();
}

static void iso_answered(void *o, cf__rtask *t, cf__bytes *b, cf__task_ctx *ctx)
{
    iso_answer(o, ctx->code, ctx->message, b ? b->data : NULL, b ? b->len : 0);
    cf__free(ctx->message);
    cf__free(b);
    cf__free(t);
}

static void iso_requeue(void *o, cf__rtask *list)
{
    cf__mpi_iso *s = o;
    cf__rtask *last = list;
    while (last->next)
        last = last->next;
    if (!(last->next = s->head))
        s->tail = last;
    s->head = list;
}

static void iso_fail(void *o, cf__rtask *list, int code, const char *msg)
{
    for (cf__rtask *t = list, *next; t; t = next) {
        next = t->next;
        iso_answer(o, code, msg, NULL, 0);
        cf__free(t);
    }
}

/* The initializer failed: this task and every later one fail. */
static void iso_broken(void *o, const char *msg)
{
    cf__mpi_iso *s = o;
    snprintf(s->broken, sizeof s->broken, "%s", msg);
    iso_fail(s, cf__pp_link_take(s->w), CF_EBROKEN, msg);
    cf__pp_link_lose(s->w, CF__PP_KILL, NULL, cf__now());
}

static const cf__pp_owner iso_owner = {
    .answered = iso_answered,
    .requeue = iso_requeue,
    .fail = iso_fail,
    .broken = iso_broken,
};

/* Queues a copy of the TASK frame (h, p) under a fresh id: 0 or
 * CF_ENOMEM. */
static int iso_add(cf__mpi_iso *s, const cf__frame *h, const unsigned char *p)
{
    cf__rtask *t = cf__malloc(sizeof *t + sizeof *h + (size_t)h->len);
    if (!t)
        return CF_ENOMEM;
    *t = (cf__rtask){ .len = sizeof *h + (size_t)h->len };
    cf__frame fresh;
    cf__frame_set(&fresh, h->type, ++s->next_id, h->len, h->aux);
    memcpy(t->frame, &fresh, sizeof fresh);
    memcpy(t->frame + sizeof fresh, p, (size_t)h->len);
    if (s->tail)
        s->tail->next = t;
    else
        s->head = t;
    s->tail = t;
    return 0;
}

/* Waits for the lost worker to end, then judges its tasks. */
static void iso_reap(cf__mpi_iso *s)
{
    while (!cf__pp_link_reap(s->w, cf__now())) {
        struct pollfd pf = { s->w->proc.pidfd, POLLIN, 0 };
        poll(&pf, pf.fd >= 0, 10);
    }
    s->w = NULL;
}

/* Feeds the worker, waits for its news or its deadline, and serves it. */
static void iso_step(cf__mpi_iso *s, double now)
{
    cf__pp_link *w = s->w;
    while (s->head && cf__pp_link_room(w)) {
        cf__rtask *t = s->head;
        if (!(s->head = t->next))
            s->tail = NULL;
        cf__pp_link_push(w, t, now);
    }
    if (!cf__pp_link_flush(w, now))
        return;
    struct pollfd pf[2] = {
        { w->proc.fd, POLLIN | (w->unsent ? POLLOUT : 0), 0 },
        { w->proc.pidfd, POLLIN, 0 },
    };
    int ms = cf__pp_poll_ms(cf__pp_link_deadline(w, now), now);
    int rc = poll(pf, w->proc.pidfd >= 0 ? 2 : 1, ms);
    now = cf__now();
    if (rc > 0 && pf[1].revents)
        cf__pp_link_gone(w, now);
    else if (!(rc > 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) ||
             cf__pp_link_read(w, now, false))
        cf__pp_link_check(w, now);
}

/* Runs the queued tasks on the worker process, answering each through r
 * in order: 0, or a send's error. */
static int iso_run(cf__mpi_iso *s, cf__replier *r)
{
    if (!s)
        return 0;
    s->r = r;
    s->mark = cf__now();
    while (!s->rc && (s->head || (s->w && s->w->head))) {
        double now = cf__now();
        int rc;
        if (!s->w &&
            (s->broken[0] || cf__starts_give_up(&s->team.starts, 0, now))) {
            cf__rtask *list = s->head;
            s->head = s->tail = NULL;
            iso_fail(s, list, CF_EBROKEN,
                     s->broken[0] ? s->broken : s->team.starts.error);
        } else if (!s->w && now < s->team.starts.retry_at) {
            sleep_s(s->team.starts.retry_at - now); /* a failed start */
        } else if (!s->w && !(s->w = cf__pp_link_start(&s->team, now, &rc))) {
            cf__starts_failed(&s->team.starts, cf_strerror(rc), now);
        } else {
            iso_step(s, now);
            if (s->w && s->w->proc.fd < 0)
                iso_reap(s);
        }
    }
    int rc = s->rc;
    s->rc = 0;
    s->r = NULL;
    return rc;
}

/* Drops what is left of a batch, unanswered: its queued tasks, and the
 * worker process if it holds some of them (why: how it goes). */
static void iso_drop(cf__mpi_iso *s, cf__pp_why why)
{
    if (!s)
        return;
    s->r = NULL;
    if (s->w && (s->w->head || why == CF__PP_STOP)) {
        cf__pp_link_lose(s->w, why, NULL, cf__now());
        iso_reap(s);
    }
    iso_fail(s, s->head, 0, NULL);
    s->head = s->tail = NULL;
}

void cf__mpi_iso_free(cf__mpi_iso *s)
{
    if (!s)
        return;
    iso_drop(s, CF__PP_STOP);
    cf__pp_spec_fini(&s->team.spec);
    cf__free(s);
}

/* ---- serving batches ---------------------------------------------------- */

/* Runs the task of the frame (h, p) here and answers it. */
static int answer(cf__replier *r, cf__fn_cache *c, const cf__frame *h,
                  const unsigned char *p)
{
    size_t at = r->buf.b->len;
    double t0 = cf__now();
    int rc = cf__serve_task(c, h, p, &r->buf, r->first + r->count, NULL, NULL);
    return reply_added(r, at, rc, t0);
}

/* Answers the n task frames in `in` in order (isolated: in the worker
 * process); a bad frame or no memory fails the rest. 0 or a send's error. */
static int serve_tasks(cf__replier *r, cf__rd in, uint32_t n, cf__mpi_iso *s)
{
    cf__fn_cache cache = { .fn = NULL };
    cf__frame h;
    const unsigned char *p;
    const char *why = NULL;
    uint32_t i = 0;
    int rc = 0;
    for (; rc == 0 && i < n && !(why = cf__rd_frame(&in, &h, &p)); i++) {
        if (s && h.type == CF__FR_TASK)
            rc = iso_add(s, &h, p);
        else if ((rc = iso_run(s, r)) == 0)
            rc = answer(r, &cache, &h, p);
    }
    if (rc == 0)
        rc = iso_run(s, r);
    iso_drop(s, CF__PP_KILL); /* after a failure */
    if (rc == 0 && !why)
        return reply_flush(r, true);
    if (rc && rc != CF_ENOMEM)
        return rc;
    /* The answers so far are whole frames: they go first. */
    int sent = r->count ? reply_flush(r, false) : 0;
    if (sent || rc)
        return sent ? sent
                    : reply_error(r, CF_ENOMEM, "out of memory on the worker");
    return reply_error(r, CF_EBROKEN,
                       "malformed task frame %u of %u received (%s)", i, n,
                       why);
}

int cf__mpi_serve_batch(const unsigned char *msg, size_t len, cf__replier *r,
                        cf__mpi_iso *iso)
{
    cf__rd in = { msg, msg ? len : 0 };
    const unsigned char *at = cf__rd_skip(&in, CF__FRAME_HDR);
    cf__frame b;
    if (at)
        memcpy(&b, at, sizeof b);
    bool bad = !at || cf__frame_bad(&b) || b.type != CF__FR_BATCH || b.aux < 0;
    if (reply_begin(r, bad ? 0 : b.id, 0) || !msg)
        return reply_error(r, CF_ENOMEM,
                           "out of memory on the worker for a %zu-byte batch",
                           len);
    if (bad)
        return reply_error(r, CF_EBROKEN,
                           "malformed task batch (bad header) received");
    if (in.left > b.len)
        in.left = (size_t)b.len;
    return serve_tasks(r, in, (uint32_t)b.aux, iso);
}

/* Where a worker rank sends its answers. */
typedef struct dest {
    MPI_Comm comm;
    int root, tag;
} dest;

static int send_to(void *ctx, const void *msg, size_t len)
{
    const dest *d = ctx;
    int rc = MPI_Send(msg, (int)len, MPI_BYTE, d->root, d->tag, d->comm);
    return rc == MPI_SUCCESS ? 0 : CF_EBROKEN;
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

int cf__mpi_prepare(const cf_options *opts, bool isolated, cf__mpi_iso **iso,
                    char **msg)
{
    *iso = NULL;
    *msg = NULL;
    if (!isolated)
        return cf__serve_init(opts ? opts->initializer : NULL,
                              opts ? opts->initarg : NULL, msg);
    /* The worker process runs the initializer; it starts with the first
     * task. */
    cf_options o = opts ? *opts : (cf_options){ 0 };
    int rc = CF_ENOMEM;
    cf__mpi_iso *s = cf__calloc(1, sizeof *s);
    if (s && (rc = cf__pp_spec_init(&s->team.spec, &o)) == 0) {
        s->team.owner = &iso_owner;
        s->team.o = s;
        *iso = s;
        return 0;
    }
    cf__mpi_iso_free(s);
    char text[160];
    snprintf(text, sizeof text,
             "could not set up the rank's worker process: %s", cf_strerror(rc));
    *msg = cf__strdup(text);
    return CF_EBROKEN;
}

/* Sends the HELLO frame (code: prepare's outcome); its payload is the
 * rank's host name, a NUL, and msg (the failure's message, if any; freed). */
static int say_hello(dest *to, int code, char *msg)
{
    unsigned char hello[CF__FRAME_HDR + MPI_MAX_PROCESSOR_NAME + 1 + 4096];
    memset(hello, 0, sizeof hello);
    char *host = (char *)hello + CF__FRAME_HDR;
    int hn;
    MPI_Get_processor_name(host, &hn);
    size_t hl = strnlen(host, MPI_MAX_PROCESSOR_NAME) + 1;
    size_t n = msg ? strnlen(msg, 4096) : 0;
    cf__frame h;
    cf__frame_set(&h, CF__FR_HELLO, 0, hl + n, code);
    memcpy(hello, &h, sizeof h);
    if (n)
        memcpy(host + hl, msg, n);
    cf__free(msg);
    return send_to(to, hello, sizeof h + hl + n);
}

/* A worker rank: says hello (with the outcome of prepare), then serves
 * batches until STOP. 0, or CF_EBROKEN on an MPI failure. */
int cf__mpi_serve(MPI_Comm comm, int root, const cf_options *opts,
                  bool isolated)
{
    dest to = { comm, root, TAG_HELLO };
    char *msg;
    cf__mpi_iso *iso;
    int code = cf__mpi_prepare(opts, isolated, &iso, &msg);
    int rc = say_hello(&to, code, msg), n;
    cf_buffer in = { NULL, 0 };
    cf__replier r = { .send = send_to, .ctx = &to };
    to.tag = TAG_RESULTS;
    for (MPI_Status st; !rc;) {
        if (cf__mpi_probe(comm, root, &st) != MPI_SUCCESS ||
            MPI_Get_count(&st, MPI_BYTE, &n) != MPI_SUCCESS ||
            n == MPI_UNDEFINED) {
            rc = CF_EBROKEN;
            break;
        }
        /* Out of memory: receive into nothing (truncated); the batch's
         * answer says so. */
        void *data = cf_buffer_reserve(&in, (size_t)n) ? NULL : in.b->data;
        if (MPI_Recv(data, data ? n : 0, MPI_BYTE, root, st.MPI_TAG, comm,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            data = NULL;
        if (st.MPI_TAG == TAG_STOP)
            break;
        if (st.MPI_TAG == TAG_TASKS &&
            cf__mpi_serve_batch(data, (size_t)n, &r, iso))
            rc = CF_EBROKEN;
    }
    cf__free(in.b);
    cf__free(r.buf.b);
    cf__mpi_iso_free(iso);
    return rc;
}
