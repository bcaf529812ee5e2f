/* SPDX-License-Identifier: MIT */
/*
 * root.c - the root's side of the MPI transport of the remote engine
 * (remote/engine.h, transport.h; docs/mpi.md): bytes tasks run on the
 * other ranks of a communicator, and the root's futures get the results.
 *
 * The manager's round (mp_round) makes every MPI call on the root, so
 * MPI_THREAD_SERIALIZED is enough: it hands batches to the ranks with
 * room, the emptiest first, within a window sized from each rank's round
 * trip and task time, and reads the answers. It polls and backs off, as
 * Open MPI's blocking calls spin; a submission cuts its sleep short. A
 * watchdog fails the tasks of a rank that stops answering. With one rank
 * the manager serves its batches itself (rank.c).
 */
#include "transport.h"

#include "../proc/wire.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct batch {
    struct batch *next;
    uint64_t seq;
    size_t n, done, bytes;
    uint64_t busy_ns;
    double sent;        /* sent to an idle rank at (it times the rtt), or 0 */
    double posted;      /* when its send began */
    unsigned char *msg; /* the TASKS message until its send completed */
    MPI_Request req;
    cf__rtask *ts[];
} batch;

/* A rank past max_workers is DOWN once it said hello: it is never used. */
enum { W_STARTING, W_READY, W_DOWN, W_LOST /* stopped answering */ };

typedef struct mworker {
    int rank;
    int state;   /* W_*; READY once its hello said the init ran */
    batch *head; /* in flight, oldest first */
    unsigned nbatches;
    size_t tasks, bytes; /* in flight */
    double cost;         /* seconds per task (EWMA), < 0 unknown */
    double rtt;          /* round trip in seconds, <= 0 unknown */
    double heard;        /* news: a message, a send done, or new work */
    bool answered;       /* it sent an answer (isolated: its worker ran) */
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
    cf__mpi_iso *pp; /* with one rank and isolated: the manager's */
    /* The manager's. */
    bool begun;     /* the first round ran */
    size_t pending; /* the queue's length when dispatch began */
    size_t rr;      /* round-robin start of dispatch */
    uint64_t next_seq;
    double cost;         /* pool-wide seconds per task, < 0 unknown */
    double longest;      /* longest work between two answers, < 0 none yet */
    double rank_timeout; /* CFUTURES_MPI_RANK_TIMEOUT; < 0 the default */
    bool abort_on_lost;  /* CFUTURES_MPI_RANK_LOST=abort */
    double next_watch;   /* when the watchdog looks next */
    int spins;           /* rounds without progress */
    double pause;        /* the next sleep while work is in flight */
    cf_buffer rbuf;      /* receive buffer */
    cf__replier local_reply;
    cf_options opts; /* for the local initializer */
    cf__parker parker;
    size_t nworkers;
    mworker workers[];
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

/* Completes b's next task: with the result data[0..len) (code 0), or
 * failed with code and the message data[0..len) (none when empty). */
static void finish_task(mpool *p, batch *b, int code, const void *data,
                        size_t len)
{
    cf__rtask *t = b->ts[b->done++];
    add(&p->r.st_running, -1); /* before the future is done */
    cf__task_ctx ctx = { code, NULL };
    cf__bytes *out = NULL;
    if (code && len && (ctx.message = cf__malloc(len + 1)) != NULL) {
        memcpy(ctx.message, data, len);
        ctx.message[len] = '\0';
    } else if (!code && (out = cf__malloc(sizeof *out + len)) != NULL) {
        out->len = len;
        memcpy(out->data, data, len);
    } else if (!code) {
        ctx.code = CF_ENOMEM;
    }
    cf__remote_finish(&p->r, t, out, &ctx);
}

/* The oldest batch of w is answered in full: learn its cost, drop it. */
static void retire_batch(mpool *p, mworker *w)
{
    batch *b = w->head;
    if (b->busy_ns) {
        double c = (double)b->busy_ns * 1e-9 / (double)b->n;
        cf__remote_ewma(&w->cost, c, 0.5);
        cf__remote_ewma(&p->cost, c, 0.5);
    }
    if (b->msg && !p->offline) {
        /* Answered before its send was seen complete: finish the send. */
        MPI_Wait(&b->req, MPI_STATUS_IGNORE);
    }
    w->head = b->next;
    w->nbatches--;
    w->tasks -= b->n;
    w->bytes -= b->bytes;
    if (w->nbatches == 0 && w->state == W_READY)
        add(&p->r.st_idle, 1);
    cf__free(b->msg);
    cf__free(b);
}

/* Fails the tasks of w's oldest batch from its next one to `upto` with
 * code and fmt's message; upto SIZE_MAX: all, and the batch is dropped. */
__attribute__((format(printf, 5, 6))) static void
fail_tasks(mpool *p, mworker *w, size_t upto, int code, const char *fmt, ...)
{
    char why[MPI_MAX_ERROR_STRING + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    batch *b = w->head;
    while (b->done < (upto < b->n ? upto : b->n))
        finish_task(p, b, code, why, strlen(why));
    if (upto == SIZE_MAX)
        retire_batch(p, w);
}

/* Takes w out of service as `state` (W_DOWN, W_LOST): its tasks fail with
 * why. */
static void worker_down(mpool *p, mworker *w, int state, const char *why)
{
    if (w->state == W_READY) {
        add(&p->r.st_workers, -1);
        add(&p->r.st_idle, w->nbatches ? 0 : -1);
    }
    w->state = state;
    while (w->head) {
        /* A lost rank's send may never complete: MPI may still read the
         * buffer, which is left allocated for good. */
        if (state == W_LOST)
            w->head->msg = NULL;
        fail_tasks(p, w, SIZE_MAX, CF_EBROKEN, "%s", why);
    }
}

/* An MPI call failed: the pool is broken; every task in flight fails. */
static void mpi_failed(mpool *p, int rc, const char *what)
{
    char err[MPI_MAX_ERROR_STRING], why[MPI_MAX_ERROR_STRING + 128];
    int n = 0;
    if (MPI_Error_string(rc, err, &n) != MPI_SUCCESS)
        snprintf(err, sizeof err, "MPI error %d", rc);
    snprintf(why, sizeof why, "pool broken: %s failed: %s", what, err);
    cf__remote_break(&p->r, why);
    p->offline = true; /* no more MPI calls, nor waits on broken sends */
    for (size_t i = 0; i < p->nworkers; i++)
        worker_down(p, &p->workers[i], W_DOWN, why);
}

/* Completes the `count` answers in `in` to w's oldest batch (from a bad
 * one on, they fail); final: the rest fail (by a FAIL frame after them). */
static void take_answers(mpool *p, mworker *w, cf__rd in, uint32_t count,
                         bool final)
{
    batch *b = w->head;
    size_t end = b->done + count;
    cf__frame f;
    const unsigned char *m = NULL;
    while (b->done < end) {
        const char *bad = cf__rd_frame(&in, &f, &m);
        if (!bad && f.type != CF__FR_RESULT &&
            (f.type != CF__FR_FAIL || f.aux == 0 || f.len > CF__MAX_MESSAGE))
            bad = "not an answer";
        if (!bad) {
            finish_task(p, b, f.type == CF__FR_FAIL ? f.aux : 0, m,
                        (size_t)f.len);
            continue;
        }
        in.left = 0; /* the rest cannot be trusted */
        fail_tasks(p, w, end, CF_EBROKEN,
                   "malformed result frame from MPI rank %d (task %zu of "
                   "its batch: %s)",
                   w->rank, b->done, bad);
    }
    if (!final)
        return;
    if (b->done < b->n && in.left && !cf__rd_frame(&in, &f, &m) &&
        f.type == CF__FR_FAIL && f.aux != 0)
        fail_tasks(p, w, SIZE_MAX, f.aux, "MPI rank %d: %.*s", w->rank,
                   (int)(f.len < 400 ? f.len : 400), (const char *)m);
    else
        fail_tasks(p, w, SIZE_MAX, CF_EBROKEN,
                   "MPI rank %d answered %zu of the %zu tasks of a batch",
                   w->rank, b->done, b->n);
}

/* Handles a RESULTS message from worker w (transport.h). */
static void on_results(mpool *p, mworker *w, const unsigned char *msg,
                       size_t len)
{
    batch *b = w->head;
    if (!b)
        return; /* nothing asked of w: a stray answer */
    cf__rd in = { msg, len };
    cf__frame h;
    const unsigned char *pl = NULL;
    cf__answers a;
    const char *bad = cf__rd_frame(&in, &h, &pl);
    if (!bad && (h.type != CF__FR_ANSWERS || h.len < sizeof a || h.aux < 0))
        bad = "not an answer";
    if (!bad && h.id && h.id < b->seq)
        return; /* the rest of a batch already failed as malformed */
    if (!bad)
        memcpy(&a, pl, sizeof a);
    if (!bad && ((h.id && h.id != b->seq) || (size_t)h.aux != b->done ||
                 a.count > b->n - b->done))
        bad = "not the next answers to its oldest batch";
    if (bad) {
        fail_tasks(p, w, SIZE_MAX, CF_EBROKEN,
                   "malformed result message from MPI rank %d (%s)", w->rank,
                   bad);
        return;
    }
    b->busy_ns += a.busy_ns;
    /* The longest work between two answers is the watchdog's yardstick.
     * The first answer to a batch sent to an idle rank times its round
     * trip: a smaller sample wins at once (a first message may pay for
     * setting up the connection), a larger one raises it slowly. */
    double busy = (double)a.busy_ns * 1e-9, rtt = cf__now() - b->sent - busy;
    bool timed = h.aux == 0 && b->sent > 0 && rtt > 0;
    p->longest = busy > p->longest ? busy : p->longest;
    if (timed && (w->rtt <= 0 || rtt < w->rtt))
        w->rtt = rtt;
    else if (timed)
        cf__remote_ewma(&w->rtt, rtt, 0.125);
    take_answers(p, w, (cf__rd){ pl + sizeof a, (size_t)h.len - sizeof a },
                 a.count, a.final);
}

/* w's initializer ran (code 0), or failed with text[0..len): w is ready,
 * or the pool is broken. */
static void worker_ready(mpool *p, mworker *w, int code, const char *text,
                         size_t len)
{
    char why[512];
    if (code) {
        if (!len)
            len = strlen(text = cf_strerror(code));
        snprintf(why, sizeof why,
                 "pool broken: a worker's initializer failed on MPI rank %d: "
                 "%.*s",
                 w->rank, (int)(len < 400 ? len : 400), text);
        cf__remote_break(&p->r, why);
        return;
    }
    int max = p->opts.max_workers;
    w->state = max > 0 && w - p->workers >= max ? W_DOWN : W_READY;
    add(&p->r.st_workers, w->state == W_READY);
    add(&p->r.st_idle, w->state == W_READY);
}

/* A rank's HELLO: its host name, a NUL, and (aux: a failure code) its
 * initializer's message. */
static void on_hello(mpool *p, mworker *w, const unsigned char *msg, size_t len)
{
    cf__rd in = { msg, len };
    cf__frame h;
    const unsigned char *m = NULL;
    if (w->state != W_STARTING)
        return;
    w->state = W_DOWN;
    if (cf__rd_frame(&in, &h, &m) || h.type != CF__FR_HELLO) {
        char why[128];
        snprintf(why, sizeof why,
                 "pool broken: malformed hello message from MPI rank %d",
                 w->rank);
        cf__remote_break(&p->r, why);
        return;
    }
    size_t hl = strnlen((const char *)m, (size_t)h.len);
    snprintf(w->host, sizeof w->host, "%.*s", (int)hl, (const char *)m);
    size_t ml = hl < h.len ? (size_t)h.len - hl - 1 : 0;
    worker_ready(p, w, h.aux, ml ? (const char *)m + hl + 1 : NULL, ml);
}

/* ---- dispatching ------------------------------------------------------- */

/* The tasks of one batch of w at cost seconds each: BATCH_TARGET_S of
 * work, or an eighth of the round trip when that is more. */
static size_t batch_tasks(const mworker *w, double cost)
{
    double s = w->rtt / 8 > BATCH_TARGET_S ? w->rtt / 8 : BATCH_TARGET_S;
    return cf__remote_window(cost, s, 1, BATCH_MAX_TASKS);
}

/* The tasks w may hold at cost seconds each: 1.25 round trips of work
 * plus a batch, the bandwidth-delay product (docs/mpi.md, "The window"). */
static size_t window(const mworker *w, double cost)
{
    double rtt = w->rtt > 0 ? w->rtt : 0;
    double k = ceil(1.25 * rtt / (cost > 1e-9 ? cost : 1e-9));
    return k >= WINDOW_MAX_TASKS ? WINDOW_MAX_TASKS
                                 : (size_t)k + batch_tasks(w, cost);
}

/* Whether w gets another batch now: a second always, more within the
 * window; long tasks as the tail rule allows (docs/mpi.md, "The window"). */
static bool can_take(const mpool *p, const mworker *w)
{
    if (w->state != W_READY)
        return false;
    if (w->nbatches == 0)
        return true;
    if (w->nbatches >= MAX_BATCHES || w->bytes >= WINDOW_MAX_BYTES)
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
    size_t n = cost >= 0 ? batch_tasks(w, cost) : w->slow_start;
    if (cost < 0 && w->slow_start < BATCH_MAX_TASKS)
        w->slow_start *= 2;
    /* Its share of what waits, and of all the work less what it holds,
     * so that every worker gets some and all end together. */
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

/* A batch of up to `want` pending tasks (`most` bytes, at least one), in
 * RUNNING, and its message (NULL: no memory): NULL if no task was left. */
static batch *take_batch(mpool *p, size_t want, size_t most)
{
    batch *b = cf__malloc(sizeof *b + want * sizeof(cf__rtask *));
    cf__rtask *list = cf__remote_take(&p->r, b ? want : 1);
    if (!b) {
        /* Out of memory: fail one task so that we move on. */
        cf__remote_fail_list(&p->r, list, CF_ENOMEM, NULL);
        return NULL;
    }
    size_t n = 0, bytes = 0, len = CF__FRAME_HDR;
    cf__rtask *t = list;
    for (cf__rtask *next; t && (!n || bytes + t->len <= most); t = next) {
        next = t->next;
        p->pending--;
        bytes += t->len;
        if (cf__remote_set_running(&p->r, t)) {
            b->ts[n++] = t;
            len += t->len;
        }
    }
    cf__remote_requeue(&p->r, t); /* what did not fit */
    *b = (batch){ .n = n, .seq = p->next_seq++ };
    if (!n) {
        cf__free(b);
        return NULL;
    }
    unsigned char *m = len <= MSG_MAX ? cf__malloc(len) : NULL;
    if (!m)
        return b; /* send_batch fails its tasks */
    cf__frame h;
    cf__frame_set(&h, CF__FR_BATCH, b->seq, len - sizeof h, (int32_t)n);
    memcpy(m, &h, sizeof h);
    for (size_t i = 0, at = sizeof h; i < n; at += b->ts[i++]->len)
        memcpy(m + at, b->ts[i]->frame, b->ts[i]->len);
    b->msg = m;
    b->bytes = len;
    return b;
}

static int send_local(void *ctx, const void *msg, size_t len)
{
    mpool *p = ctx;
    on_results(p, &p->workers[0], msg, len);
    return 0;
}

/* Hands b to w and sends it (with one rank, serves it here). */
static void send_batch(mpool *p, mworker *w, batch *b)
{
    size_t len = b->bytes;
    add(&p->r.st_running, (long)b->n);
    if (!b->msg) { /* its own tasks fail, not those of a batch in flight */
        const char *why = "no memory for a task batch, or one larger than an "
                          "MPI message (2 GiB)";
        while (b->done < b->n)
            finish_task(p, b, CF_ENOMEM, why, strlen(why));
        cf__free(b);
        return;
    }
    w->tasks += b->n;
    w->bytes += len;
    if (w->nbatches++ == 0) {
        add(&p->r.st_idle, -1);
        w->heard = b->sent = cf__now(); /* silence counts from here */
    }
    batch **end = &w->head;
    while (*end)
        end = &(*end)->next;
    *end = b;
    if (p->local) {
        unsigned char *msg = b->msg;
        b->msg = NULL;
        cf__mpi_serve_batch(msg, len, &p->local_reply, p->pp); /* retires b */
        cf__free(msg);
        return;
    }
    b->posted = cf__now();
    int rc = MPI_Isend(b->msg, (int)len, MPI_BYTE, w->rank, TAG_TASKS, p->comm,
                       &b->req);
    if (rc != MPI_SUCCESS)
        mpi_failed(p, rc, "MPI_Isend"); /* frees b->msg, offline */
}

/* Fills the workers that have room, the emptiest first, one batch each per
 * pass: true if anything was sent. */
static bool dispatch(mpool *p)
{
    bool sent = false;
    size_t held = 0; /* tasks the ready workers hold */
    for (size_t i = 0; i < p->nworkers; i++)
        if (p->workers[i].state == W_READY)
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
            sent = true; /* or cancelled tasks, or one failed */
            if (!b)
                break;
            held += b->n;
            send_batch(p, w, b);
            next = depth + 1 < next ? depth + 1 : next;
        }
        depth = next;
    }
    p->rr++;
    return sent;
}

/* ---- the manager's MPI side -------------------------------------------- */

/* Frees the buffers of sends that completed: true if any did. A send that
 * waited on its rank counts as news from it (it took the batch in); one
 * done at once was buffered, and says nothing of the rank. */
static bool poll_sends(mpool *p)
{
    bool any = false;
    for (size_t i = 0; i < p->nworkers && !p->offline; i++) {
        mworker *w = &p->workers[i];
        for (batch *b = w->head; b; b = b->next) {
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
                double now = cf__now();
                if (now - b->posted > WATCH_EVERY_S)
                    w->heard = fmax(w->heard, now);
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
        /* Out of memory: receive into nothing (truncated). */
        void *buf =
            cf_buffer_reserve(&p->rbuf, (size_t)n) ? NULL : p->rbuf.b->data;
        rc = MPI_Recv(buf, buf ? n : 0, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG,
                      p->comm, MPI_STATUS_IGNORE);
        any = true;
        if (buf && rc != MPI_SUCCESS) {
            mpi_failed(p, rc, "MPI_Recv");
            return true;
        }
        int k = st.MPI_SOURCE;
        size_t i = (size_t)(k < p->root ? k : k - 1);
        mworker *w = k != p->root && i < p->nworkers ? &p->workers[i] : NULL;
        if (w)
            w->heard = cf__now();
        if (w && st.MPI_TAG == TAG_RESULTS)
            w->answered = true;
        if (w && st.MPI_TAG == TAG_RESULTS && !buf && w->head)
            fail_tasks(p, w, SIZE_MAX, CF_ENOMEM,
                       "out of memory for a result message");
        else if (w && buf && st.MPI_TAG == TAG_RESULTS)
            on_results(p, w, buf, (size_t)n);
        else if (w && buf && st.MPI_TAG == TAG_HELLO)
            on_hello(p, w, buf, (size_t)n);
    }
    return any;
}

/* Tells every worker rank to return (after hearing each one's hello, so
 * that no message is left unreceived), then frees the communicator. */
static void stop_workers(mpool *p)
{
    bool lost = false;
    for (size_t i = 0; i < p->nworkers && !p->offline; i++) {
        mworker *w = &p->workers[i];
        while (w->state == W_STARTING && !p->offline) {
            MPI_Status st;
            if (cf__mpi_probe(p->comm, w->rank, &st) != MPI_SUCCESS)
                p->offline = true;
            else
                poll_messages(p);
        }
        /* A lost rank is never touched again; a 0-byte send is eager. */
        lost |= w->state == W_LOST;
        if (!p->offline && w->state != W_LOST)
            MPI_Send(NULL, 0, MPI_BYTE, w->rank, TAG_STOP, p->comm);
    }
    if (p->offline)
        return;
    MPI_Comm_free(&p->comm);
    if (p->spawn_inter != MPI_COMM_NULL && !lost) {
        /* In step with the spawned workers (cf_mpi_pool_spawn). */
        MPI_Comm_free(&p->spawn_intra);
        MPI_Comm_disconnect(&p->spawn_inter);
    }
}

static bool in_flight(const mpool *p)
{
    for (size_t i = 0; i < p->nworkers; i++)
        if (p->workers[i].head ||
            (p->workers[i].state == W_STARTING && !p->offline))
            return true;
    return false;
}

/* ---- the watchdog (docs/mpi.md, "A rank that stops answering") ---------- */

/* How long a rank holding tasks may stay silent: CFUTURES_MPI_RANK_TIMEOUT
 * when set (0: never), else max(5 s, 2 x the longest work between two
 * answers seen + 3 s, in an isolated pool max(10 s, task_timeout) + 3 s),
 * and no limit before a first answer (isolated: the rank's own, watch). 0:
 * none. */
static double rank_limit(const mpool *p)
{
    if (p->rank_timeout >= 0)
        return p->rank_timeout;
    if (p->longest < 0)
        return 0;
    double t = 2 * p->longest + 3;
    /* An isolated rank answers once its link kills a hung or stuck worker
     * process: at task_timeout, or at the link's stall limit. */
    double hung =
        p->isolated ? fmax(CF__PP_STALL_MIN_S, p->opts.task_timeout) + 3 : 0;
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

/* Every WATCH_EVERY_S: a rank silent too long with tasks is lost: the job
 * ends (CFUTURES_MPI_RANK_LOST=abort), or its tasks fail (docs/mpi.md). */
static void watch(mpool *p)
{
    double now = cf__now(), limit = rank_limit(p);
    if (p->offline || limit <= 0 || now < p->next_watch)
        return;
    p->next_watch = now + WATCH_EVERY_S;
    for (size_t i = 0; i < p->nworkers; i++) {
        mworker *w = &p->workers[i];
        /* A batch still on its way is no silence: it may take that long
         * on a slow link. */
        double sending = 0;
        for (batch *b = w->head; b; b = b->next)
            sending += b->msg ? (double)b->bytes / LINK_RATE_MIN : 0;
        /* An isolated rank's first answer waits for its worker process to
         * start and run the initializer, which may take any time: by
         * default it is not timed (the answer's work then includes it). */
        bool unknown = p->isolated && !w->answered && p->rank_timeout < 0;
        if (!w->head || unknown || now - w->heard <= limit + sending)
            continue;
        char why[MPI_MAX_PROCESSOR_NAME + 128];
        snprintf(why, sizeof why,
                 "MPI rank %d on host %s stopped answering (nothing for %.1f "
                 "s, %zu tasks in flight)",
                 w->rank, w->host[0] ? w->host : "?", now - w->heard, w->tasks);
        add(&p->r.st_stalled, 1);
        fprintf(stderr, "cfutures: %s; %s\n", why,
                p->abort_on_lost ? "ending the MPI job"
                                 : "its tasks fail, the others go on");
        fflush(stderr);
        /* MPICH 4.0 does not end the job on an abort of a duplicate of
         * MPI_COMM_WORLD from this thread; a spawned pool's world is the
         * root alone, so there the merged communicator, which spans the
         * workers. */
        if (p->abort_on_lost)
            MPI_Abort(
                p->spawn_inter != MPI_COMM_NULL ? p->comm : MPI_COMM_WORLD, 1);
        worker_down(p, w, W_LOST, why);
        if (!in_flight(p) && ready_workers(p) == 0)
            cf__remote_break(&p->r, why); /* nobody left to run the rest */
    }
}

/* ---- the manager's round ----------------------------------------------- */

/* Sleeps until a submission, a shutdown, or (busy) the next poll. */
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
    int code = cf__mpi_prepare(&p->opts, p->isolated, &p->pp, &msg);
    worker_ready(p, &p->workers[0], code, msg, msg ? strlen(msg) : 0);
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
        cf__mpi_iso_free(p->pp);
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
    cf__remote_fini(r);
    cf__free(p);
}

static const cf__remote_ops mp_ops = {
    .round = mp_round,
    .wake = mp_wake,
    .destroy = mp_destroy,
};

/* ---- construction ------------------------------------------------------ */

static cf_executor *fail_with(int err)
{
    errno = err;
    return NULL;
}

static void finalize_at_exit(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Finalize();
}

/* Checks opts and initialises MPI if the program has not: 0, or EINVAL
 * (bad options, or MPI finalised), or EIO. */
static int ensure_mpi(const cf_options *opts)
{
    int inited = 0, finalized = 0, provided;
    MPI_Finalized(&finalized);
    if (!cf__options_valid(opts) || finalized)
        return EINVAL;
    MPI_Initialized(&inited);
    if (inited)
        return 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) !=
        MPI_SUCCESS)
        return EIO;
    atexit(finalize_at_exit);
    return 0;
}

/* The root's pool on dup (size ranks), its manager running: the executor,
 * or NULL with errno (the workers, serving already, are sent home). */
static cf_executor *root_pool(MPI_Comm dup, int root, int size,
                              const cf_options *opts, bool isolated,
                              MPI_Comm comm, MPI_Comm spawn_inter)
{
    size_t n = size > 1 ? (size_t)size - 1 : 1;
    const char *lost = getenv("CFUTURES_MPI_RANK_LOST");
    mpool *p = cf__calloc(1, sizeof *p + n * sizeof *p->workers);
    if (p) {
        cf__remote_init(&p->r, &mp_ops);
        p->comm = dup;
        p->spawn_intra = spawn_inter != MPI_COMM_NULL ? comm : MPI_COMM_NULL;
        p->spawn_inter = spawn_inter;
        p->root = root;
        p->local = p->offline = size == 1;
        p->isolated = isolated;
        p->nworkers = n;
        p->cost = p->longest = -1;
        p->rank_timeout = rank_timeout_env();
        p->abort_on_lost = lost && strcmp(lost, "abort") == 0;
        p->next_seq = 1;
        p->opts = opts ? *opts : (cf_options){ 0 };
        p->local_reply = (cf__replier){ .send = send_local, .ctx = p };
        for (size_t i = 0; i < n; i++)
            p->workers[i] = (mworker){
                .rank = p->local        ? root
                        : (int)i < root ? (int)i
                                        : (int)i + 1,
                .state = W_STARTING,
                .cost = -1,
                .slow_start = 1,
            };
    }
    int level;
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
    return fail_with(err);
}

/* cf_mpi_pool_new and its variants. spawn_inter is the intercommunicator
 * to the workers cf_mpi_pool_spawn started (comm is then its merged
 * intracommunicator): the manager frees both once the workers stopped. */
static cf_executor *pool_new(MPI_Comm comm, int root, const cf_options *opts,
                             bool isolated, MPI_Comm spawn_inter)
{
    int size, rank, inter = 0;
    int err = comm == MPI_COMM_NULL ? EINVAL : ensure_mpi(opts);
    /* An intercommunicator has two groups: each would find a root. */
    if (!err &&
        (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter ||
         MPI_Comm_size(comm, &size) != MPI_SUCCESS ||
         MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || root < 0 || root >= size))
        err = EINVAL;
    /* With one rank nothing is sent: no communicator, and so no MPI call
     * from the manager thread, whatever the thread level. */
    MPI_Comm dup = MPI_COMM_NULL;
    if (!err && size > 1 && MPI_Comm_dup(comm, &dup) != MPI_SUCCESS)
        err = EIO;
    if (err)
        return fail_with(err);
    /* Failures become return codes: the manager turns them into a broken
     * pool rather than an abort of the job. */
    if (size > 1)
        MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    if (rank == root)
        return root_pool(dup, root, size, opts, isolated, comm, spawn_inter);
    /* A worker until the root stops it: NULL, errno 0 (EIO: MPI failed). */
    int rc = cf__mpi_serve(dup, root, opts, isolated);
    if (rc == 0)
        MPI_Comm_free(&dup);
    return fail_with(rc ? EIO : 0);
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
    size_t len = !rc && text.b ? text.b->len : 0, words = 0;
    for (size_t i = 0; i < len; i++)
        words += text.b->data[i] == '\0';
    /* The vector, then a NUL-terminated copy of the text it points into. */
    char **argv = len ? cf__malloc((words + 1) * sizeof *argv + len + 1) : NULL;
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

/* Starts max_workers (or one per CPU) copies of this program as workers:
 * 0 with the intercommunicator to them in *inter, or an errno value. */
static int spawn_workers(const cf_options *opts, MPI_Comm *inter)
{
    int n = opts && opts->max_workers > 0 ? opts->max_workers : cf_cpu_count();
    char exe[4096];
    char **args = own_command(exe, sizeof exe);
    MPI_Info info;
    MPI_Info_create(&info);
    /* Open MPI: the workers may share cores with this process (other MPI
     * implementations ignore the key). */
    MPI_Info_set(info, "map_by", ":OVERSUBSCRIBE");
    int rc = args ? MPI_Comm_spawn(exe, args, n, info, 0, MPI_COMM_SELF, inter,
                                   MPI_ERRCODES_IGNORE)
                  : MPI_ERR_NO_MEM;
    MPI_Info_free(&info);
    cf__free(args);
    return rc == MPI_SUCCESS ? 0 : rc == MPI_ERR_NO_MEM ? ENOMEM : EIO;
}

cf_executor *cf_mpi_pool_spawn(const cf_options *opts)
{
    MPI_Comm parent, inter, intra;
    int err = ensure_mpi(opts);
    if (!err) {
        MPI_Comm_get_parent(&parent);
        inter = parent;
        if (parent == MPI_COMM_NULL)
            err = spawn_workers(opts, &inter);
    }
    /* The spawning process is rank 0 of the merged communicator. */
    if (!err && MPI_Intercomm_merge(inter, parent != MPI_COMM_NULL, &intra) !=
                    MPI_SUCCESS)
        err = EIO;
    if (err)
        return fail_with(err);
    cf_options o = opts ? *opts : (cf_options){ 0 };
    o.max_workers = 0;
    cf_executor *ex = pool_new(intra, 0, &o, false, inter);
    if (parent != MPI_COMM_NULL || !ex) {
        /* A spawned worker that served to the end, or a failure: the
         * communicators are ours to free. */
        err = errno;
        MPI_Comm_free(&intra);
        MPI_Comm_disconnect(&inter);
        errno = err;
    }
    return ex;
}
