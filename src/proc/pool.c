/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the process transport of the remote engine (remote/engine.h):
 * cf_process_pool_new's workers are processes, one AF_UNIX socket each
 * (wire.h), driven by the engine's manager thread (docs/process_pool.md).
 *
 * The round (pp_round) starts workers (spawn or fork), keeps up to
 * `depth` tasks in flight in each (about DEPTH_WINDOW_S of work by the
 * running average), reads answers and completes futures, and reaps, kills
 * and replaces workers. It blocks only in poll(2); sockets are
 * non-blocking and writes never raise SIGPIPE, so a dead worker shows up
 * as EOF, EPIPE or its pidfd turning readable, never as a hang.
 *
 * Blame (docs/design.md): a dying worker's tasks written to it in full are
 * held until it is reaped; then its state page says which one it started
 * last, and cf__remote_blame fails that one (and those before it) and
 * requeues the rest. A worker that dies before READY is a failed start
 * (the engine backs off); INIT_FAIL breaks the pool. Every frame read is
 * checked; a worker that sends a bad one is killed as crashed. Workers are
 * freed only in reap(), and the manager exits only once all are reaped.
 */
#include "../fnid.h"
#include "../remote/engine.h"
#include "../trace.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define GRACE_S 2.0          /* a closed or crashed worker gets this to exit */
#define DEPTH_WINDOW_S 0.002 /* work to keep queued in each worker */
#define MAX_DEPTH 256        /* tasks in flight per worker, at most */
#define MAX_IOV 64           /* frames per sendmsg */
#define RXBUF (64u * 1024u)  /* per-worker receive buffer */
#define RX_PER_CALL (4u << 20) /* bytes read from one worker per wake-up */
#define MAX_POLLED_DYING 64 /* dying workers beyond this are polled by tick */
#define TICK_S 0.005
#define RECHECK_S 0.05            /* a task sent but not started: look again */
#define TRANSFER_STALL_MIN_S 10.0 /* a result with no progress, at least */

typedef enum pp_why {
    WHY_CRASH,   /* EOF or a socket error we did not cause */
    WHY_CORRUPT, /* a frame failed a check */
    WHY_TIMEOUT, /* its task ran past task_timeout */
    WHY_STALL,   /* a finished task's answer made no progress */
    WHY_NOMEM,   /* no memory to hold its answer */
    WHY_STOP,    /* retired, shut down, or the pool broke */
} pp_why;

typedef struct pp_worker {
    struct pp_worker *next; /* in the live or the dying list */
    cf__pp_proc proc;       /* fd -1 once it is dying */
    bool ready;             /* its READY arrived */
    unsigned assigned;      /* tasks ever given (max_tasks_per_child) */
    /* In flight, oldest first; [head, unsent) were written in full. */
    cf__rtask *head, *tail, *unsent;
    size_t unsent_off; /* bytes of unsent's frame written */
    size_t n_inflight;
    double head_since; /* when head became the oldest (or READY came) */
    /* Receiving: rx[rx_beg, rx_end) unparsed; a frame whose header was
     * read is being gathered into body (a cf__bytes for a RESULT, text
     * otherwise). */
    unsigned char *rx;
    size_t rx_beg, rx_end;
    cf__frame hdr;
    bool in_body;
    void *body;
    unsigned char *body_data;
    size_t body_have;
    double progress_at; /* when bytes last arrived */
    /* Dying. */
    pp_why why;
    char detail[96];
    cf__rtask *held; /* written to it in full; judged once it is reaped */
    bool killed;
    double kill_at;
} pp_worker;

typedef struct pp_pool {
    cf__remote r; /* first: the engine */
    /* Set at creation, read-only after. */
    size_t max_workers;
    unsigned max_tasks;
    double timeout; /* 0: none */
    cf_start_method method;
    char **envp; /* spawn: the workers' environment */
    unsigned char *init_frame;
    size_t init_len;
    int wakefd;
    /* The manager's own. */
    pp_worker *live, *dying;
    size_t n_live, n_dying;
    bool can_take; /* room in some worker, or a worker may be started */
    double ewma;   /* seconds per task, 0 until measured */
    struct pollfd *pfds;
    pp_worker **pws;
} pp_pool;

/* A formatted message on the heap, or NULL (the future says
 * cf_strerror(code) then). */
static char *fmt_msg(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return cf__strdup(buf);
}

/* "was killed by signal 11 (SIGSEGV: Segmentation fault)" and the like. */
static void describe_status(char *buf, size_t n, int status)
{
    if (WIFSIGNALED(status)) {
        int s = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(s), *descr = sigdescr_np(s);
        snprintf(buf, n, "was killed by signal %d (SIG%s: %s)", s,
                 abbrev ? abbrev : "?", descr ? descr : "unknown signal");
    } else if (WIFEXITED(status)) {
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, n, "ended (wait status %#x)", (unsigned)status);
    }
}

/* ---- workers: losing one ----------------------------------------------- */

static void unlink_worker(pp_worker **list, pp_worker *w)
{
    while (*list != w)
        list = &(*list)->next;
    *list = w->next;
    w->next = NULL;
}

static void free_rx(pp_worker *w)
{
    cf__free(w->rx);
    cf__free(w->body);
    w->rx = NULL;
    w->body = NULL;
    w->in_body = false;
}

/* Empties w's in-flight list: the tasks written to it in full are held
 * until it is reaped; those it never got whole go back to the queue now. */
static void hold_inflight(pp_pool *p, pp_worker *w)
{
    cf__rtask *last_sent = NULL;
    for (cf__rtask *t = w->head; t != w->unsent; t = t->next)
        last_sent = t;
    for (cf__rtask *t = w->unsent; t; t = t->next)
        t->sent_at = 0;
    cf__rtask *unsent = w->unsent;
    if (last_sent) {
        last_sent->next = NULL;
        w->held = w->head;
    }
    w->head = w->tail = w->unsent = NULL;
    w->n_inflight = 0;
    cf__remote_requeue(&p->r, unsent);
}

/* Takes w out of service: closes its socket, kills it unless it should
 * exit by itself, holds its tasks until it is reaped, moves it to the
 * dying list. */
static void lose_worker(pp_pool *p, pp_worker *w, pp_why why,
                        const char *detail, double now)
{
    cf__trace(CF__TR_PROC_LOST, why == WHY_STOP ? NULL : w,
              (uint64_t)w->proc.pid);
    unlink_worker(&p->live, w);
    p->n_live--;
    close(w->proc.fd);
    w->proc.fd = -1;
    free_rx(w);
    w->why = why;
    snprintf(w->detail, sizeof w->detail, "%s", detail ? detail : "");
    if (why != WHY_CRASH && (why != WHY_STOP || p->r.broken)) {
        kill(w->proc.pid, SIGKILL);
        w->killed = true;
    }
    w->kill_at = now + GRACE_S;
    hold_inflight(p, w);
    w->next = p->dying;
    p->dying = w;
    p->n_dying++;
}

static double stall_limit(const pp_pool *p)
{
    return fmax(TRANSFER_STALL_MIN_S, p->timeout);
}

/* A dead worker, for cf__remote_blame's message: how it ended, in words;
 * finished: the task it ran last had returned. */
typedef struct pp_death {
    const pp_pool *p;
    const pp_worker *w;
    const char *how;
    bool finished;
} pp_death;

/* Why the task that ran on the dead worker failed; sets *code. */
static char *death_message(void *arg, int *code)
{
    const pp_death *d = arg;
    const pp_pool *p = d->p;
    const pp_worker *w = d->w;
    int pid = (int)w->proc.pid;
    *code = CF_EBROKEN;
    switch (w->why) {
    case WHY_TIMEOUT:
        *code = CF_ETIME;
        return fmt_msg("task ran past its task_timeout of %g s; worker "
                       "process %d was killed",
                       p->timeout, pid);
    case WHY_STALL:
        *code = CF_ETIME;
        return fmt_msg("task finished, but its result made no progress for "
                       "%g s; worker process %d was killed",
                       stall_limit(p), pid);
    case WHY_CORRUPT:
        return fmt_msg("worker process %d sent a corrupt frame (%s) while "
                       "running this task and was killed",
                       pid, w->detail);
    case WHY_NOMEM:
        *code = CF_ENOMEM;
        return fmt_msg("no memory for the result (%s); worker process %d "
                       "was killed",
                       w->detail, pid);
    default: break;
    }
    const char *when = d->finished ? "after this task returned, before its "
                                     "result arrived"
                                   : "while running this task";
    char note[sizeof w->detail + 4] = "";
    if (w->detail[0])
        snprintf(note, sizeof note, " (%s)", w->detail);
    /* Killed by us: it closed the socket but did not exit. */
    if (w->killed)
        return fmt_msg("worker process %d closed its connection %s%s and "
                       "was killed",
                       pid, when, note);
    return fmt_msg("worker process %d %s %s%s", pid, d->how, when, note);
}

/* The end of a dying worker: blame by its state page; before READY it is
 * a failed start. */
static void worker_reaped(pp_pool *p, pp_worker *w, int status, bool got,
                          double now)
{
    if (w->proc.pidfd >= 0)
        close(w->proc.pidfd);
    char how[160] = "ended (its exit status was collected elsewhere)";
    if (got)
        describe_status(how, sizeof how, status);
    /* acquire: pairs with the worker's release stores (worker.c) */
    uint64_t ran =
        atomic_load_explicit(&w->proc.state->running, memory_order_acquire);
    uint64_t fin =
        atomic_load_explicit(&w->proc.state->done, memory_order_acquire);
    cf__pp_state_unmap(w->proc.state);
    pp_death d = { p, w, how, fin == ran };
    cf__remote_blame(&p->r, w->held, ran, death_message, &d);
    if (!w->ready && w->why != WHY_STOP) {
        char why[sizeof how + sizeof w->detail + 40];
        snprintf(why, sizeof why, "worker process %d %s%s%s", (int)w->proc.pid,
                 how, w->detail[0] ? "; " : "", w->detail);
        cf__remote_start_failed(&p->r, why, now);
    }
    cf__free(w);
}

/* Reaps the dying workers that exited; kills those past their grace. */
static void reap(pp_pool *p, double now)
{
    for (pp_worker **link = &p->dying, *w; (w = *link) != NULL;) {
        int status = 0;
        pid_t r = waitpid(w->proc.pid, &status, WNOHANG);
        if (r == w->proc.pid || (r < 0 && errno == ECHILD)) {
            *link = w->next;
            p->n_dying--;
            worker_reaped(p, w, status, r == w->proc.pid, now);
            continue;
        }
        if (!w->killed && now >= w->kill_at) {
            kill(w->proc.pid, SIGKILL);
            w->killed = true;
        }
        link = &w->next;
    }
}

/* Breaks the pool (an initializer failed): all work fails, every worker
 * is killed. */
static void break_pool(pp_pool *p, const char *msg, double now)
{
    cf__remote_break(&p->r, msg);
    while (p->live) {
        pp_worker *w = p->live;
        cf__rtask *list = w->head;
        w->head = w->tail = w->unsent = NULL;
        w->n_inflight = 0;
        cf__remote_fail_list(&p->r, list, CF_EBROKEN, msg);
        lose_worker(p, w, WHY_STOP, NULL, now);
    }
}

/* ---- workers: starting, sending ---------------------------------------- */

/* Starts a worker and writes its INIT frame (a fresh socket's buffer
 * holds it whole): 0, or why it could not start. */
static int start_worker(pp_pool *p, double now)
{
    pp_worker *w = cf__calloc(1, sizeof *w);
    int rc = !w || !(w->rx = cf__malloc(RXBUF))
                 ? CF_ENOMEM
                 : cf__pp_start(&w->proc, p->envp); /* NULL: fork */
    if (rc) {
        cf__free(w ? w->rx : NULL);
        cf__free(w);
        return rc;
    }
    cf__trace(CF__TR_PROC_START, NULL, (uint64_t)w->proc.pid);
    w->head_since = now;
    w->next = p->live;
    p->live = w;
    p->n_live++;
    struct iovec iov = { p->init_frame, p->init_len };
    if (cf__send_all(w->proc.fd, &iov, 1))
        kill(w->proc.pid, SIGKILL); /* the next poll sees a failed start */
    return 0;
}

/* Writes what is queued for w until the socket is full: 0, or -1 when the
 * worker is gone. */
static int flush_worker(pp_worker *w, double now)
{
    for (;;) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        size_t off = w->unsent_off;
        for (cf__rtask *t = w->unsent; t && n < MAX_IOV; t = t->next) {
            iov[n++] = (struct iovec){ t->frame + off, t->len - off };
            off = 0;
        }
        if (n == 0)
            return 0;
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t k = sendmsg(w->proc.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EINTR)
            return errno == EAGAIN ? 0 : -1;
        for (size_t left = k > 0 ? (size_t)k : 0; left > 0 && w->unsent;) {
            size_t rem = w->unsent->len - w->unsent_off;
            if (left < rem) {
                w->unsent_off += left;
                break;
            }
            left -= rem;
            w->unsent->sent_at = now;
            w->unsent = w->unsent->next;
            w->unsent_off = 0;
        }
    }
}

static bool read_worker(pp_pool *p, pp_worker *w, double now, bool drain);

/* A write failed, or the pidfd says the process exited (a process the
 * task started may keep the socket open): read what it left, then lose it. */
static void worker_gone(pp_pool *p, pp_worker *w, double now)
{
    if (read_worker(p, w, now, true))
        lose_worker(p, w, WHY_CRASH, "", now);
}

/* ---- workers: receiving ------------------------------------------------ */

/* NULL when h may come next from w, else what is wrong. */
static const char *frame_bad(const pp_worker *w, const cf__frame *h)
{
    const char *bad = cf__frame_bad(h);
    if (bad)
        return bad;
    switch (h->type) {
    case CF__FR_READY:
    case CF__FR_INIT_FAIL:
        if (w->ready)
            return "a second start-up answer";
        if (h->id != 0 || (h->type == CF__FR_READY && h->len != 0))
            return "a malformed start-up answer";
        break;
    case CF__FR_RESULT:
    case CF__FR_FAIL:
        if (!w->ready)
            return "an answer before READY";
        if (!w->head || w->head == w->unsent || h->id != cf__rtask_id(w->head))
            return "an answer to a task it was not running";
        if (h->type == CF__FR_FAIL && h->aux == 0)
            return "a failure without a code";
        break;
    default: return "a frame type only the pool sends";
    }
    if (h->type != CF__FR_RESULT && h->len > CF__MAX_MESSAGE)
        return "a message too long";
    return NULL;
}

/* Handles the complete frame in w->hdr / w->body: false once w is lost. */
static bool on_frame(pp_pool *p, pp_worker *w, double now)
{
    const cf__frame *h = &w->hdr;
    char *text = h->type == CF__FR_RESULT ? NULL : w->body;
    cf__bytes *b = text ? NULL : w->body;
    w->body = NULL;
    w->in_body = false;
    if (text)
        text[h->len] = '\0';
    if (h->type == CF__FR_INIT_FAIL) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "pool broken: a worker's initializer failed: %s",
                 text[0] ? text : cf_strerror(h->aux));
        cf__free(text);
        break_pool(p, msg, now);
        return false;
    }
    if (h->type == CF__FR_READY) {
        cf__free(text);
        w->ready = true;
        w->head_since = now;
        cf__remote_start_ok(&p->r);
        return true;
    }
    /* The task's time counts from when it could start: written in full and
     * first in line. */
    cf__rtask *t = w->head;
    cf__remote_ewma(&p->ewma, now - fmax(t->sent_at, w->head_since), 0.125);
    if (!(w->head = t->next))
        w->tail = NULL;
    w->n_inflight--;
    w->head_since = now;
    cf__task_ctx ctx = { text ? h->aux : 0, text && text[0] ? text : NULL };
    if (!ctx.message)
        cf__free(text);
    cf__remote_finish(&p->r, t, b, &ctx);
    if (p->max_tasks && w->assigned >= p->max_tasks && !w->head) {
        lose_worker(p, w, WHY_STOP, NULL, now);
        return false;
    }
    return true;
}

/* Checks the header just read into w->hdr and makes room for its body:
 * false once w is lost. */
static bool begin_body(pp_pool *p, pp_worker *w, double now)
{
    const char *bad = frame_bad(w, &w->hdr);
    if (bad) {
        lose_worker(p, w, WHY_CORRUPT, bad, now);
        return false;
    }
    size_t len = (size_t)w->hdr.len;
    if (w->hdr.type != CF__FR_RESULT) {
        w->body = w->body_data = cf__malloc(len + 1);
    } else if (len <= SIZE_MAX - sizeof(cf__bytes) &&
               (w->body = cf__malloc(sizeof(cf__bytes) + len)) != NULL) {
        ((cf__bytes *)w->body)->len = len;
        w->body_data = ((cf__bytes *)w->body)->data;
    }
    if (!w->body) {
        char what[64];
        snprintf(what, sizeof what, "%zu bytes", len);
        lose_worker(p, w, WHY_NOMEM, what, now);
        return false;
    }
    w->in_body = true;
    w->body_have = 0;
    return true;
}

/* Handles the frames w->rx and w->body hold: false once w is lost. */
static bool parse(pp_pool *p, pp_worker *w, double now)
{
    for (;;) {
        size_t avail = w->rx_end - w->rx_beg;
        if (!w->in_body && avail < sizeof w->hdr) {
            /* Stray bytes are caught once they cannot start a header. */
            uint32_t magic = CF__FRAME_MAGIC;
            if (memcmp(w->rx + w->rx_beg, &magic, avail < 4 ? avail : 4) == 0)
                return true;
            lose_worker(p, w, WHY_CORRUPT, "bad magic", now);
            return false;
        }
        if (!w->in_body) {
            memcpy(&w->hdr, w->rx + w->rx_beg, sizeof w->hdr);
            w->rx_beg += sizeof w->hdr;
            avail -= sizeof w->hdr;
            if (!begin_body(p, w, now))
                return false;
        }
        size_t need = (size_t)w->hdr.len - w->body_have;
        size_t c = need < avail ? need : avail;
        memcpy(w->body_data + w->body_have, w->rx + w->rx_beg, c);
        w->body_have += c;
        w->rx_beg += c;
        if (w->body_have < w->hdr.len)
            return true;
        if (!on_frame(p, w, now))
            return false;
    }
}

/* Reads and handles what w sent, up to RX_PER_CALL bytes (drain: all
 * there is): false once w is lost (EOF, error, a bad frame, or retired). */
static bool read_worker(pp_pool *p, pp_worker *w, double now, bool drain)
{
    for (size_t got = 0; drain || got < RX_PER_CALL;) {
        if (w->rx_beg == w->rx_end)
            w->rx_beg = w->rx_end = 0;
        size_t need = w->in_body ? (size_t)w->hdr.len - w->body_have : 0;
        /* A large payload goes straight into its buffer. */
        bool direct = need >= RXBUF / 4 && w->rx_beg == w->rx_end;
        if (!direct && w->rx_end == RXBUF) {
            memmove(w->rx, w->rx + w->rx_beg, w->rx_end - w->rx_beg);
            w->rx_end -= w->rx_beg;
            w->rx_beg = 0;
        }
        ssize_t k =
            recv(w->proc.fd,
                 direct ? w->body_data + w->body_have : w->rx + w->rx_end,
                 direct ? need : RXBUF - w->rx_end, MSG_DONTWAIT);
        if (k > 0) {
            w->progress_at = now;
            got += (size_t)k;
            *(direct ? &w->body_have : &w->rx_end) += (size_t)k;
            if (!parse(p, w, now))
                return false;
        } else if (k == 0) {
            bool mid = w->in_body || w->rx_end > w->rx_beg;
            lose_worker(p, w, WHY_CRASH, mid ? "it left a truncated frame" : "",
                        now);
            return false;
        } else if (errno == EAGAIN) {
            return true;
        } else if (errno != EINTR) {
            lose_worker(p, w, WHY_CRASH, "", now);
            return false;
        }
    }
    return true;
}

/* ---- the manager ------------------------------------------------------- */

/* Tasks in flight per worker: the running one plus about DEPTH_WINDOW_S
 * of work behind it; only the one for long or unmeasured tasks (a task
 * queued behind a long one would wait while another worker idles). */
static size_t depth(const pp_pool *p)
{
    if (p->ewma <= 0)
        return 1;
    return 1 + cf__remote_window(p->ewma, DEPTH_WINDOW_S, 0, MAX_DEPTH - 1);
}

static size_t room(const pp_pool *p, const pp_worker *w, size_t d)
{
    size_t r = w->n_inflight < d ? d - w->n_inflight : 0;
    if (p->max_tasks && w->assigned + r > p->max_tasks)
        r = w->assigned < p->max_tasks ? p->max_tasks - w->assigned : 0;
    return r;
}

static void assign(pp_worker *w, cf__rtask *t, double now)
{
    t->next = NULL;
    if (w->tail)
        w->tail->next = t;
    else {
        w->head = t;
        w->head_since = now;
    }
    w->tail = t;
    if (!w->unsent) {
        w->unsent = t;
        w->unsent_off = 0;
    }
    w->n_inflight++;
    w->assigned++;
    cf__trace(CF__TR_DISPATCH, t, (uint64_t)w->proc.pid);
}

/* Writes what is queued for every worker; a loss can break the pool and
 * change the live list, so start over after each. */
static void flush_all(pp_pool *p, double now)
{
again:
    for (pp_worker *w = p->live; w; w = w->next) {
        if (w->unsent && flush_worker(w, now)) {
            worker_gone(p, w, now);
            goto again;
        }
    }
}

/* Starts workers as needed and hands pending tasks to those with room,
 * round robin, so a short queue spreads over the pool. */
static void dispatch(pp_pool *p, double now)
{
    pthread_mutex_lock(&p->r.mu);
    size_t pending = p->r.n_pending;
    bool broken = p->r.broken;
    pthread_mutex_unlock(&p->r.mu);
    p->can_take = false;
    if (broken)
        return;
    size_t d = depth(p), total = 0, idle = 0;
    for (pp_worker *w = p->live; w; w = w->next) {
        size_t r = room(p, w, d);
        total += r;
        idle += r && !w->head;
    }
    bool may_start = now >= p->r.starts.retry_at;
    while (may_start && pending > idle && p->n_live < p->max_workers) {
        int rc = start_worker(p, now);
        if (rc) {
            /* Go on with the workers we have; try again later. */
            cf__remote_start_failed(&p->r, cf_strerror(rc), now);
            may_start = false;
            break;
        }
        size_t r = room(p, p->live, d);
        total += r;
        idle += r > 0;
    }
    p->can_take = total > 0 || (may_start && p->n_live < p->max_workers);
    cf__rtask *list = total ? cf__remote_take(&p->r, total) : NULL;
    pp_worker *w = p->live;
    for (cf__rtask *t = list, *next; t; t = next) {
        next = t->next;
        if (!cf__remote_set_running(&p->r, t))
            continue;
        while (!room(p, w, d)) /* total counted enough room for all */
            w = w->next ? w->next : p->live;
        assign(w, t, now);
        w = w->next ? w->next : p->live;
    }
    flush_all(p, now);
}

/* When w's oldest task passes its limit, and which (*why): task_timeout
 * from its start by the state page; once it returned, the transfer's limit
 * from the last progress; not started yet: look again soon (WHY_STOP). */
static double deadline(const pp_pool *p, const pp_worker *w, double now,
                       pp_why *why)
{
    *why = WHY_STOP;
    if (p->timeout <= 0 || !w->ready || !w->head || w->head == w->unsent)
        return INFINITY;
    const cf__pp_state *st = w->proc.state;
    uint64_t id = cf__rtask_id(w->head);
    double since = fmax(w->head->sent_at, w->head_since);
    /* acquire: pairs with the worker's release stores (worker.c) */
    if (atomic_load_explicit(&st->done, memory_order_acquire) == id) {
        *why = WHY_STALL;
        return fmax(since, w->progress_at) + stall_limit(p);
    }
    if (atomic_load_explicit(&st->running, memory_order_acquire) == id) {
        *why = WHY_TIMEOUT;
        int64_t ns =
            atomic_load_explicit(&st->started_ns, memory_order_relaxed);
        return (double)ns * 1e-9 + p->timeout;
    }
    return fmax(since + p->timeout, now + RECHECK_S);
}

static void check_timeouts(pp_pool *p, double now)
{
    for (pp_worker *w = p->live, *next; w; w = next) {
        next = w->next;
        pp_why why;
        if (now >= deadline(p, w, now, &why) && why != WHY_STOP)
            lose_worker(p, w, why, NULL, now);
    }
}

/* Once shut down and drained, retires idle workers: true when all are
 * reaped. */
static bool wind_down(pp_pool *p, double now)
{
    if (!cf__remote_drained(&p->r))
        return false;
    for (pp_worker *w = p->live, *next; w; w = next) {
        next = w->next;
        if (!w->head)
            lose_worker(p, w, WHY_STOP, NULL, now);
    }
    return !p->live && !p->dying;
}

static void publish(pp_pool *p)
{
    size_t idle = 0, running = 0;
    for (pp_worker *w = p->live; w; w = w->next) {
        idle += w->ready && !w->head;
        running += w->n_inflight;
    }
    for (pp_worker *w = p->dying; w; w = w->next)
        running += w->held != NULL;
    atomic_store_explicit(&p->r.st_workers, p->n_live + p->n_dying,
                          memory_order_relaxed);
    atomic_store_explicit(&p->r.st_idle, idle, memory_order_relaxed);
    atomic_store_explicit(&p->r.st_running, running, memory_order_relaxed);
}

/* Fills the poll set (the wake eventfd, live workers' sockets and pidfds,
 * some dying workers' pidfds): its size; *next the earliest deadline. */
static size_t poll_set(pp_pool *p, double now, double *next,
                       size_t *first_dying)
{
    size_t n = 1, polled_dying = 0;
    p->pfds[0] = (struct pollfd){ p->wakefd, POLLIN, 0 };
    p->pws[0] = NULL;
    for (pp_worker *w = p->live; w; w = w->next) {
        short ev = POLLIN | (w->unsent ? POLLOUT : 0);
        p->pfds[n] = (struct pollfd){ w->proc.fd, ev, 0 };
        p->pws[n++] = w;
        if (w->proc.pidfd >= 0) {
            p->pfds[n] = (struct pollfd){ w->proc.pidfd, POLLIN, 0 };
            p->pws[n++] = w;
        }
        pp_why why;
        *next = fmin(*next, deadline(p, w, now, &why));
    }
    *first_dying = n;
    for (pp_worker *w = p->dying; w; w = w->next) {
        if (!w->killed)
            *next = fmin(*next, w->kill_at);
        if (w->proc.pidfd >= 0 && polled_dying < MAX_POLLED_DYING) {
            p->pfds[n] = (struct pollfd){ w->proc.pidfd, POLLIN, 0 };
            p->pws[n++] = w;
            polled_dying++;
        } else {
            *next = fmin(*next, now + TICK_S);
        }
    }
    return n;
}

/* When the manager must look again, and whether a submit wakes it. */
static double next_look(pp_pool *p, double now, double next)
{
    bool may_grow = p->n_live < p->max_workers;
    pthread_mutex_lock(&p->r.mu);
    if (p->r.n_pending && p->can_take)
        next = now;
    else if (p->r.n_pending && may_grow)
        next = fmin(next, p->r.starts.retry_at); /* retry a failed start */
    /* Submits wake us only when we could take their task (now, or once a
     * failed start may be retried); a shutdown always does. */
    p->r.listening = p->can_take || may_grow;
    bool stop = p->r.shutdown;
    pthread_mutex_unlock(&p->r.mu);
    if (stop && p->dying)
        next = fmin(next, now + TICK_S); /* reaping decides when we exit */
    return next;
}

/* Polls until a worker speaks or exits, a deadline, or a wake-up; then
 * serves what happened. */
static void wait_and_serve(pp_pool *p)
{
    double now = cf__now(), next = INFINITY;
    size_t first_dying, n = poll_set(p, now, &next, &first_dying);
    next = next_look(p, now, next);
    int ms = -1;
    if (next < INFINITY) {
        double left = ceil((next - now) * 1000.0);
        ms = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
    }
    int rc = poll(p->pfds, n, ms);
    pthread_mutex_lock(&p->r.mu);
    p->r.listening = false;
    pthread_mutex_unlock(&p->r.mu);
    if (rc <= 0)
        return;
    now = cf__now();
    if (p->pfds[0].revents) {
        uint64_t v;
        while (read(p->wakefd, &v, sizeof v) > 0) {
        }
    }
    for (size_t i = 1; i < first_dying; i++) {
        pp_worker *w = p->pws[i];
        short re = p->pfds[i].revents;
        if (!re || w->proc.fd < 0)
            continue; /* lost earlier in this round */
        if (p->pfds[i].fd == w->proc.pidfd) {
            worker_gone(p, w, now); /* the process exited */
            continue;
        }
        if ((re & (POLLIN | POLLHUP | POLLERR)) &&
            !read_worker(p, w, now, false))
            continue;
        if ((re & POLLOUT) && flush_worker(w, now))
            worker_gone(p, w, now);
    }
    /* Readable pidfds need nothing here: reap() runs next. */
}

static void destroy(cf__remote *r)
{
    pp_pool *p = (pp_pool *)r;
    if (p->wakefd >= 0)
        close(p->wakefd);
    if (p->envp) {
        for (char **e = p->envp; *e; e++)
            cf__free(*e);
        cf__free(p->envp);
    }
    cf__free(p->init_frame);
    cf__free(p->pfds);
    cf__free(p->pws);
    cf__remote_fini(r);
    cf__free(p);
}

/* One round of the manager (cf__remote_ops.round). */
static bool pp_round(cf__remote *r)
{
    pp_pool *p = (pp_pool *)r;
    double now = cf__now();
    reap(p, now);
    cf__remote_give_up(r, p->n_live, now);
    check_timeouts(p, now);
    dispatch(p, now);
    publish(p);
    if (wind_down(p, now)) {
        publish(p);
        return true;
    }
    wait_and_serve(p);
    return false;
}

static void wake_manager(cf__remote *r)
{
    pp_pool *p = (pp_pool *)r;
    uint64_t one = 1;
    while (write(p->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static const cf__remote_ops pp_ops = {
    .round = pp_round,
    .wake = wake_manager,
    .destroy = destroy,
};

/* ---- creation ---------------------------------------------------------- */

/* The INIT frame every worker gets first: 0, CF_EINVAL (an initializer or
 * initarg with no name in another process), CF_ENOMEM. */
static int build_init(pp_pool *p, const cf_options *o)
{
    cf__pp_init in = { 0 };
    int32_t flags = 0;
    const char *fn_mod = "", *arg_mod = "";
    if (o->initializer) {
        if (cf__fnid_of((const void *)o->initializer, &fn_mod, &in.fn_offset))
            return CF_EINVAL;
        flags |= CF__PP_INIT_FN;
        if (o->initarg && o->start_method == CF_START_FORK) {
            in.arg = (uint64_t)(uintptr_t)o->initarg;
            flags |= CF__PP_INIT_ARG_RAW;
        } else if (o->initarg) {
            /* A fresh image has the program's static data, nothing else. */
            if (cf__fnid_of(o->initarg, &arg_mod, &in.arg))
                return CF_EINVAL;
            flags |= CF__PP_INIT_ARG_ID;
        }
    }
    size_t fl = strlen(fn_mod), al = strlen(arg_mod);
    if (fl > CF__MAX_MODULE || al > CF__MAX_MODULE)
        return CF_EINVAL;
    in.fn_module_len = (uint32_t)fl;
    in.arg_module_len = (uint32_t)al;
    size_t len = sizeof in + fl + al;
    unsigned char *f = cf__malloc(CF__FRAME_HDR + len);
    if (!f)
        return CF_ENOMEM;
    cf__frame h;
    cf__frame_set(&h, CF__FR_INIT, 0, len, flags);
    memcpy(f, &h, sizeof h);
    memcpy(f + CF__FRAME_HDR, &in, sizeof in);
    memcpy(f + CF__FRAME_HDR + sizeof in, fn_mod, fl);
    memcpy(f + CF__FRAME_HDR + sizeof in + fl, arg_mod, al);
    p->init_frame = f;
    p->init_len = CF__FRAME_HDR + len;
    return 0;
}

static bool is_worker_var(const char *e)
{
    size_t a = strlen(CF__PP_ENV_FD), b = strlen(CF__PP_ENV_PARENT);
    return (strncmp(e, CF__PP_ENV_FD, a) == 0 && e[a] == '=') ||
           (strncmp(e, CF__PP_ENV_PARENT, b) == 0 && e[b] == '=');
}

/* The spawned workers' environment: ours plus the two variables that make
 * the program serve the pool. */
static int build_env(pp_pool *p)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **env = cf__calloc(n + 3, sizeof *env);
    if (!env)
        return CF_ENOMEM;
    p->envp = env;
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        if (is_worker_var(*e))
            continue;
        if (!(env[k++] = cf__strdup(*e)))
            return CF_ENOMEM;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s=%d", CF__PP_ENV_FD, CF__PP_FD);
    if (!(env[k++] = cf__strdup(buf)))
        return CF_ENOMEM;
    snprintf(buf, sizeof buf, "%s=%d", CF__PP_ENV_PARENT, (int)getpid());
    if (!(env[k++] = cf__strdup(buf)))
        return CF_ENOMEM;
    return 0;
}

cf_executor *cf_process_pool_new(const cf_options *opts)
{
    cf_options o = opts ? *opts : (cf_options){ 0 };
    if (!cf__options_valid(&o) ||
        (o.start_method != CF_START_SPAWN && o.start_method != CF_START_FORK)) {
        errno = EINVAL;
        return NULL;
    }
    pp_pool *p = cf__calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    cf__remote_init(&p->r, &pp_ops);
    p->wakefd = -1;
    p->max_workers =
        o.max_workers ? (size_t)o.max_workers : (size_t)cf_cpu_count();
    p->max_tasks = o.max_tasks_per_child;
    p->timeout = isinf(o.task_timeout) ? 0 : o.task_timeout;
    p->method = o.start_method;
    size_t slots = 1 + 2 * p->max_workers + MAX_POLLED_DYING;
    int rc = build_init(p, &o);
    if (!rc && p->method == CF_START_SPAWN)
        rc = build_env(p);
    if (!rc) {
        p->pfds = cf__calloc(slots, sizeof *p->pfds);
        p->pws = cf__calloc(slots, sizeof *p->pws);
        if (!p->pfds || !p->pws)
            rc = CF_ENOMEM;
    }
    if (!rc && (p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        rc = -errno;
    if (!rc)
        rc = cf__remote_start(&p->r, "cf-procpool");
    if (rc) {
        destroy(&p->r);
        errno = rc == CF_ENOMEM ? ENOMEM : -rc;
        return NULL;
    }
    return &p->r.base;
}

/* A spawned worker is this program started again with CF__PP_ENV_FD set:
 * this constructor, beside cf_process_pool_new so that every program that
 * can make a pool has it, serves the pool before main would run. */
__attribute__((constructor)) static void serve_if_worker(void)
{
    const char *fd = getenv(CF__PP_ENV_FD);
    if (!fd)
        return;
    const char *parent = getenv(CF__PP_ENV_PARENT);
    long n = strtol(fd, NULL, 10);
    long ppid = parent ? strtol(parent, NULL, 10) : 0;
    /* Programs the worker's tasks start are not workers. */
    unsetenv(CF__PP_ENV_FD);
    unsetenv(CF__PP_ENV_PARENT);
    struct stat st;
    if (n != CF__PP_FD || ppid <= 0 || fstat(CF__PP_FD, &st) != 0 ||
        !S_ISSOCK(st.st_mode))
        return;
    cf__pp_worker_main((pid_t)ppid, cf__pp_state_attach());
}
