/*
 * process_pool.c - the process-pool executor: bytes tasks run in worker
 * processes, one AF_UNIX socket each, driven by one manager thread per
 * pool. docs/process_pool.md is the long form; wire.h has the frames.
 *
 * Who owns what:
 *   - Submitters build a task's whole TASK frame (header, function identity,
 *     a copy of the input) and append it to the pending queue under `mu`.
 *     They write the wake eventfd only when the manager sleeps with room
 *     for more work (`listening`), so a burst of submits to a busy pool
 *     costs no system call each.
 *   - The manager thread owns the workers: it starts them (spawn or fork),
 *     pipelines tasks into them, reads answers and completes futures, reaps
 *     them (waitpid on their own pid, WNOHANG, woken by a pidfd), kills and
 *     replaces them. It never blocks but in poll(2); every socket is
 *     non-blocking and writes use MSG_NOSIGNAL, so a dead worker shows up
 *     as EOF, EPIPE or its pidfd turning readable (the last even when a
 *     process the task started keeps the socket open), never as a hang
 *     or a SIGPIPE.
 *
 * Invariants (docs/process_pool.md, "Blame"):
 *   - A worker answers its tasks in the order it got them, writes each
 *     answer in full before starting the next task, and records in its
 *     state page (wire.h) which task it started last and whether that one
 *     finished. When it dies, the tasks written to it go with it to the
 *     dying list; once it is reaped, the state page says which one ran:
 *     that one fails (CF_EBROKEN naming the signal or exit status; CF_ETIME
 *     when we killed it for task_timeout), with any before it whose answers
 *     were lost; those after it never started and go back to the front of
 *     the pending queue, still RUNNING for their futures, to run elsewhere.
 *   - Every frame read is checked (magic, version, header check, type, the
 *     id of the oldest task in flight, length limits); a worker that fails
 *     a check is killed as crashed.
 *   - A worker that dies before its READY is a failed start, as is a start
 *     that fails outright (no descriptors, no processes): starts are
 *     retried with backoff, and only when none has succeeded for
 *     START_GIVE_UP_S (and START_GIVE_UP_TRIES tries) with no worker alive
 *     do the pending futures fail, naming the cause. An initializer that
 *     reports a failure (INIT_FAIL) breaks the pool, as in Python.
 *   - Workers are freed only in reap(), at the top of the manager's loop,
 *     never while a poll round may still hold a pointer to one.
 *   - The manager exits only after every worker process it started has
 *     been reaped; cf_executor_free joins it, so no process, zombie or
 *     descriptor outlives the pool.
 *   - Futures are completed (callbacks run) without `mu` held, so a done
 *     callback may submit to the pool.
 *
 * Cost: a task is one allocation (its frame) plus its future. The manager
 * keeps up to `depth` tasks in flight per worker, sized from a running
 * average of task time so that about DEPTH_WINDOW_S of work is queued in
 * each worker: tiny tasks go out many per write(2) and their answers come
 * back many per read(2); long tasks keep one queued behind the running one.
 */
#include "bytes.h"
#include "executor.h"
#include "fnid.h"
#include "proc/wire.h"

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
#define RECHECK_S 0.05 /* a task sent but not started: look again */
#define START_BACKOFF_MIN_S 0.01
#define START_BACKOFF_MAX_S 0.5
#define START_GIVE_UP_S 2.0 /* no worker started for this long: fail */
#define START_GIVE_UP_TRIES 3
#define TRANSFER_STALL_MIN_S 10.0 /* a result with no progress, at least */

/* A queued or in-flight task: its future and its TASK frame. */
typedef struct pp_task {
    struct pp_task *next;
    cf_future *f;          /* the engine's reference */
    double sent_at;        /* when the frame was written in full; 0 before */
    bool started;          /* moved to RUNNING (dispatched at least once) */
    size_t len;            /* frame bytes */
    unsigned char frame[]; /* header, u64 fn offset, module, input */
} pp_task;

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
    size_t init_off;        /* bytes of the INIT frame written */
    /* In flight, oldest first; [head, unsent) were written in full. */
    pp_task *head, *tail, *unsent;
    size_t unsent_off; /* bytes of unsent's frame written */
    size_t n_inflight;
    double head_since; /* when head became the oldest (or READY came) */
    /* Receiving: rx[rx_beg, rx_end) unparsed; a frame whose header was
     * read is being gathered into body (a cf__bytes for a RESULT, text
     * otherwise). */
    unsigned char *rx;
    size_t rx_beg, rx_end;
    cf__pp_hdr hdr;
    bool in_body;
    void *body;
    unsigned char *body_data;
    size_t body_have;
    double progress_at; /* when bytes last arrived */
    /* Dying. */
    pp_why why;
    char detail[96];
    pp_task *held; /* written to it in full; judged once it is reaped */
    bool killed;
    double kill_at;
} pp_worker;

typedef struct pp_pool {
    cf_executor base;
    /* Set at creation, read-only after. */
    size_t max_workers;
    unsigned max_tasks;
    double timeout; /* 0: none */
    cf_start_method method;
    char **envp; /* spawn: the workers' environment */
    unsigned char *init_frame;
    size_t init_len;
    int wakefd;
    pthread_t manager;
    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t exited_cv;
    pp_task *pend_head, *pend_tail;
    size_t n_pending;
    bool shutdown, broken, listening, exited, orphaned;
    /* The manager's own. */
    pp_worker *live, *dying;
    size_t n_live, n_dying;
    bool can_take;         /* room in some worker, or a worker may be started */
    double start_retry_at; /* after a failed start, when to try again */
    double start_backoff;  /* the last retry delay; 0 after a good start */
    double fail_since;     /* the first failed start since the last good */
    unsigned fail_tries;   /* failed starts since the last good one */
    bool fail_fresh;       /* a start failed since give_up_if_starved ran */
    char start_error[256]; /* why the last start failed */
    char broken_msg[384];  /* set with `broken` */
    double ewma;           /* seconds per task, 0 until measured */
    struct pollfd *pfds;
    pp_worker **pws;
    /* For cf_executor_stats: written by the manager (cancelled also by
     * shutdown), read by anyone; relaxed, they are a snapshot. */
    _Atomic size_t st_workers, st_idle, st_running, st_completed, st_failed,
        st_cancelled;
    _Atomic uint64_t next_id;
} pp_pool;

static void count(_Atomic size_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* A formatted message from the allocator, or NULL (then the future's text
 * is cf_strerror(code)). */
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

static uint64_t task_id(const pp_task *t)
{
    cf__pp_hdr h;
    memcpy(&h, t->frame, sizeof h);
    return h.id;
}

/* ---- completing tasks (manager; never with mu held) -------------------- */

/* Fails t with code and a copy of msg, or counts it cancelled when it never
 * started and its future was cancelled; frees t. */
static void task_fail(pp_pool *p, pp_task *t, int code, const char *msg)
{
    if (!t->started && !cf_future_set_running_or_notify_cancel(t->f)) {
        count(&p->st_cancelled);
    } else {
        cf__task_ctx ctx = { code, cf__strdup(msg) };
        count(&p->st_failed);
        cf__future_finish(t->f, NULL, &ctx);
    }
    cf_future_release(t->f);
    cf__free(t);
}

static void fail_list(pp_pool *p, pp_task *list, int code, const char *msg)
{
    for (pp_task *t = list, *next; t; t = next) {
        next = t->next;
        task_fail(p, t, code, msg);
    }
}

/* ---- the pending queue ------------------------------------------------- */

/* Puts list (in order) back at the front: it runs next. In a broken pool
 * it fails instead. */
static void requeue_front(pp_pool *p, pp_task *list)
{
    if (!list)
        return;
    pp_task *last = list;
    size_t n = 1;
    for (; last->next; last = last->next)
        n++;
    pthread_mutex_lock(&p->mu);
    bool broken = p->broken;
    if (!broken) {
        last->next = p->pend_head;
        p->pend_head = list;
        if (!p->pend_tail)
            p->pend_tail = last;
        p->n_pending += n;
    }
    pthread_mutex_unlock(&p->mu);
    if (broken)
        fail_list(p, list, CF_EBROKEN, p->broken_msg);
}

/* Takes up to max tasks off the front. */
static pp_task *take_pending(pp_pool *p, size_t max)
{
    pthread_mutex_lock(&p->mu);
    pp_task *list = p->pend_head, *t = list, *last = NULL;
    size_t n = 0;
    while (t && n < max) {
        last = t;
        t = t->next;
        n++;
    }
    if (last) {
        last->next = NULL;
        p->pend_head = t;
        if (!t)
            p->pend_tail = NULL;
        p->n_pending -= n;
    }
    pthread_mutex_unlock(&p->mu);
    return last ? list : NULL;
}

/* ---- starting workers: failures and backoff ---------------------------- */

static void start_failed(pp_pool *p, const char *why, double now)
{
    if (p->fail_tries++ == 0)
        p->fail_since = now;
    p->fail_fresh = true;
    p->start_backoff = p->start_backoff > 0
                           ? fmin(2 * p->start_backoff, START_BACKOFF_MAX_S)
                           : START_BACKOFF_MIN_S;
    p->start_retry_at = now + p->start_backoff;
    snprintf(p->start_error, sizeof p->start_error,
             "cannot start a worker process: %s", why);
}

static void start_succeeded(pp_pool *p)
{
    p->fail_tries = 0;
    p->start_backoff = 0;
    p->start_retry_at = 0;
}

/* After a failed start with no worker alive, when none has started for
 * START_GIVE_UP_S over at least START_GIVE_UP_TRIES tries, the pending
 * tasks fail with the reason. The pool stays usable: a later submit tries
 * again (once), and the pool recovers as soon as a worker starts. */
static void give_up_if_starved(pp_pool *p, double now)
{
    bool fresh = p->fail_fresh;
    p->fail_fresh = false;
    if (!fresh || p->n_live || p->fail_tries < START_GIVE_UP_TRIES ||
        now - p->fail_since < START_GIVE_UP_S)
        return;
    fail_list(p, take_pending(p, SIZE_MAX), CF_EBROKEN, p->start_error);
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
    pp_task *last_sent = NULL;
    for (pp_task *t = w->head; t != w->unsent; t = t->next)
        last_sent = t;
    for (pp_task *t = w->unsent; t; t = t->next)
        t->sent_at = 0;
    pp_task *unsent = w->unsent;
    if (last_sent) {
        last_sent->next = NULL;
        w->held = w->head;
    }
    w->head = w->tail = w->unsent = NULL;
    w->n_inflight = 0;
    requeue_front(p, unsent);
}

/*
 * Takes w out of service: closes its socket, kills it unless it is
 * expected to exit by itself, and holds what it was given for when it has
 * been reaped (worker_reaped). w moves to the dying list; it is freed only
 * by reap().
 */
static void lose_worker(pp_pool *p, pp_worker *w, pp_why why,
                        const char *detail, double now)
{
    unlink_worker(&p->live, w);
    p->n_live--;
    close(w->proc.fd);
    w->proc.fd = -1;
    free_rx(w);
    w->why = why;
    snprintf(w->detail, sizeof w->detail, "%s", detail ? detail : "");
    if (why != WHY_CRASH && (why != WHY_STOP || p->broken)) {
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

/* Why the tasks that ran on the dead worker w failed; sets *code. how is
 * its exit status in words; finished: the last task it ran had returned. */
static char *blame_message(const pp_pool *p, const pp_worker *w,
                           const char *how, bool finished, int *code)
{
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
    const char *when = finished ? "after this task returned, before its "
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
    return fmt_msg("worker process %d %s %s%s", pid, how, when, note);
}

/*
 * The end of a dying worker. Its state page says which task it started
 * last: that one ran, and fails with the cause, as do any held before it
 * (their answers were lost with it); those after it never started and go
 * back to the queue. A worker that died before READY is a failed start.
 */
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
    pp_task *cut = NULL;
    for (pp_task *t = w->held; t; t = t->next)
        if (ran && task_id(t) == ran)
            cut = t;
    requeue_front(p, cut ? cut->next : w->held);
    if (cut) {
        cut->next = NULL;
        int code;
        char *msg = blame_message(p, w, how, fin == ran, &code);
        fail_list(p, w->held, code, msg);
        cf__free(msg);
    }
    if (!w->ready && w->why != WHY_STOP) {
        char why[sizeof how + sizeof w->detail + 40];
        snprintf(why, sizeof why, "worker process %d %s%s%s", (int)w->proc.pid,
                 how, w->detail[0] ? "; " : "", w->detail);
        start_failed(p, why, now);
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

/* Breaks the pool (an initializer reported a failure): pending work, the
 * work in every worker, and every later submit fail with CF_EBROKEN; every
 * worker is killed. */
static void break_pool(pp_pool *p, const char *msg, double now)
{
    snprintf(p->broken_msg, sizeof p->broken_msg, "%s", msg);
    pthread_mutex_lock(&p->mu);
    p->broken = true;
    pp_task *pending = p->pend_head;
    p->pend_head = p->pend_tail = NULL;
    p->n_pending = 0;
    pthread_mutex_unlock(&p->mu);
    while (p->live) {
        pp_worker *w = p->live;
        pp_task *list = w->head;
        w->head = w->tail = w->unsent = NULL;
        w->n_inflight = 0;
        fail_list(p, list, CF_EBROKEN, msg);
        lose_worker(p, w, WHY_STOP, NULL, now);
    }
    fail_list(p, pending, CF_EBROKEN, msg);
}

/* ---- workers: starting, sending ---------------------------------------- */

static int start_worker(pp_pool *p, double now)
{
    pp_worker *w = cf__calloc(1, sizeof *w);
    unsigned char *rx = cf__malloc(RXBUF);
    if (!w || !rx) {
        cf__free(w);
        cf__free(rx);
        return CF_ENOMEM;
    }
    int rc = p->method == CF_START_FORK ? cf__pp_fork(&w->proc)
                                        : cf__pp_spawn(&w->proc, p->envp);
    if (rc) {
        cf__free(w);
        cf__free(rx);
        return rc;
    }
    w->rx = rx;
    w->head_since = now;
    w->next = p->live;
    p->live = w;
    p->n_live++;
    return 0;
}

/* Writes what is queued for w until the socket is full: 0, or -1 when the
 * worker is gone (EPIPE, ECONNRESET). */
static int flush_worker(pp_pool *p, pp_worker *w, double now)
{
    for (;;) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        if (w->init_off < p->init_len)
            iov[n++] = (struct iovec){ p->init_frame + w->init_off,
                                       p->init_len - w->init_off };
        size_t off = w->unsent_off;
        for (pp_task *t = w->unsent; t && n < MAX_IOV; t = t->next) {
            iov[n++] = (struct iovec){ t->frame + off, t->len - off };
            off = 0;
        }
        if (n == 0)
            return 0;
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t k = sendmsg(w->proc.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        size_t left = (size_t)k;
        if (w->init_off < p->init_len) {
            size_t c = p->init_len - w->init_off;
            c = c < left ? c : left;
            w->init_off += c;
            left -= c;
        }
        while (left > 0 && w->unsent) {
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

static bool wants_out(const pp_pool *p, const pp_worker *w)
{
    return w->unsent || w->init_off < p->init_len;
}

static bool read_worker(pp_pool *p, pp_worker *w, double now, bool drain);

/* A write failed, or the process exited: read what the worker left (its
 * answers, maybe EOF); if it is still counted live, it is lost now. A
 * process the task started may hold the socket open, so EOF may never
 * come: the pidfd is what tells us the worker is gone. */
static void worker_gone(pp_pool *p, pp_worker *w, double now)
{
    if (read_worker(p, w, now, true))
        lose_worker(p, w, WHY_CRASH, "", now);
}

/* ---- workers: receiving ------------------------------------------------ */

/* NULL when h may come next from w, else what is wrong. */
static const char *frame_bad(const pp_worker *w, const cf__pp_hdr *h)
{
    const char *bad = cf__pp_hdr_bad(h);
    if (bad)
        return bad;
    switch (h->type) {
    case CF__PP_READY:
    case CF__PP_INIT_FAIL:
        if (w->ready)
            return "a second start-up answer";
        if (h->id != 0 || (h->type == CF__PP_READY && h->len != 0))
            return "a malformed start-up answer";
        break;
    case CF__PP_RESULT:
    case CF__PP_FAIL:
        if (!w->ready)
            return "an answer before READY";
        if (!w->head || w->head == w->unsent || h->id != task_id(w->head))
            return "an answer to a task it was not running";
        if (h->type == CF__PP_FAIL && h->aux == 0)
            return "a failure without a code";
        break;
    default: return "a frame type only the pool sends";
    }
    if (h->type != CF__PP_RESULT && h->len > CF__PP_MAX_MESSAGE)
        return "a message too long";
    return NULL;
}

/* Pops w's oldest task after its answer, and feeds its time (from when it
 * could start: written in full and first in line) to the average. */
static pp_task *pop_answered(pp_pool *p, pp_worker *w, double now)
{
    pp_task *t = w->head;
    double start = t->sent_at > w->head_since ? t->sent_at : w->head_since;
    double sample = now - start;
    p->ewma = p->ewma > 0 ? 0.875 * p->ewma + 0.125 * sample : sample;
    w->head = t->next;
    if (!w->head)
        w->tail = NULL;
    w->n_inflight--;
    w->head_since = now;
    return t;
}

/* Handles the complete frame in w->hdr / w->body: false once w is lost. */
static bool on_frame(pp_pool *p, pp_worker *w, double now)
{
    const cf__pp_hdr *h = &w->hdr;
    char *text = NULL;
    if (h->type != CF__PP_RESULT) {
        text = w->body;
        text[h->len] = '\0';
        w->body = NULL;
    }
    switch (h->type) {
    case CF__PP_READY:
        w->ready = true;
        w->head_since = now;
        start_succeeded(p);
        cf__free(text);
        return true;
    case CF__PP_INIT_FAIL: {
        char *msg = fmt_msg("pool broken: a worker's initializer failed: %s",
                            text[0] ? text : cf_strerror(h->aux));
        cf__free(text);
        break_pool(p, msg ? msg : "pool broken: a worker's initializer failed",
                   now);
        cf__free(msg);
        return false;
    }
    default: break;
    }
    pp_task *t = pop_answered(p, w, now);
    cf__task_ctx ctx = { 0, NULL };
    cf__bytes *b = NULL;
    if (h->type == CF__PP_RESULT) {
        b = w->body;
        w->body = NULL;
        count(&p->st_completed);
    } else {
        ctx.code = h->aux;
        ctx.message = text[0] ? text : NULL;
        if (!ctx.message)
            cf__free(text);
        count(&p->st_failed);
    }
    cf__future_finish(t->f, b, &ctx);
    cf_future_release(t->f);
    cf__free(t);
    if (p->max_tasks && w->assigned >= p->max_tasks && !w->head) {
        lose_worker(p, w, WHY_STOP, NULL, now);
        return false;
    }
    return true;
}

/* Parses what w->rx holds: false once w is lost. */
static bool parse(pp_pool *p, pp_worker *w, double now)
{
    for (;;) {
        size_t avail = w->rx_end - w->rx_beg;
        if (!w->in_body) {
            if (avail < sizeof w->hdr) {
                /* Stray bytes are caught as soon as they cannot be the
                 * start of a header, even if nothing follows them. */
                uint32_t magic = CF__PP_MAGIC;
                if (memcmp(w->rx + w->rx_beg, &magic, avail < 4 ? avail : 4) !=
                    0) {
                    lose_worker(p, w, WHY_CORRUPT, "bad magic", now);
                    return false;
                }
                return true;
            }
            memcpy(&w->hdr, w->rx + w->rx_beg, sizeof w->hdr);
            w->rx_beg += sizeof w->hdr;
            const char *bad = frame_bad(w, &w->hdr);
            if (bad) {
                lose_worker(p, w, WHY_CORRUPT, bad, now);
                return false;
            }
            size_t len = (size_t)w->hdr.len;
            if (w->hdr.type == CF__PP_RESULT) {
                cf__bytes *b = len <= SIZE_MAX - sizeof *b
                                   ? cf__malloc(sizeof *b + len)
                                   : NULL;
                if (b) {
                    b->len = len;
                    w->body_data = b->data;
                }
                w->body = b;
            } else {
                w->body = w->body_data = cf__malloc(len + 1);
            }
            if (!w->body) {
                char what[64];
                snprintf(what, sizeof what, "%zu bytes", len);
                lose_worker(p, w, WHY_NOMEM, what, now);
                return false;
            }
            w->in_body = true;
            w->body_have = 0;
            avail = w->rx_end - w->rx_beg;
        }
        size_t need = (size_t)w->hdr.len - w->body_have;
        size_t c = need < avail ? need : avail;
        memcpy(w->body_data + w->body_have, w->rx + w->rx_beg, c);
        w->body_have += c;
        w->rx_beg += c;
        if (w->body_have < w->hdr.len)
            return true;
        w->in_body = false;
        if (!on_frame(p, w, now))
            return false;
    }
}

/* Reads and handles what w sent, up to RX_PER_CALL bytes (drain: all
 * there is): false once w is lost (EOF, error, a bad frame, or retired). */
static bool read_worker(pp_pool *p, pp_worker *w, double now, bool drain)
{
    for (size_t got = 0; drain || got < RX_PER_CALL;) {
        size_t need = w->in_body ? (size_t)w->hdr.len - w->body_have : 0;
        ssize_t k;
        if (w->rx_beg == w->rx_end)
            w->rx_beg = w->rx_end = 0;
        if (need >= RXBUF / 4 && w->rx_beg == w->rx_end) {
            /* A large payload: straight into its buffer. */
            k = recv(w->proc.fd, w->body_data + w->body_have, need,
                     MSG_DONTWAIT);
            if (k > 0) {
                w->progress_at = now;
                w->body_have += (size_t)k;
                got += (size_t)k;
                if (w->body_have == w->hdr.len) {
                    w->in_body = false;
                    if (!on_frame(p, w, now))
                        return false;
                }
                continue;
            }
        } else {
            if (w->rx_end == RXBUF) {
                memmove(w->rx, w->rx + w->rx_beg, w->rx_end - w->rx_beg);
                w->rx_end -= w->rx_beg;
                w->rx_beg = 0;
            }
            k = recv(w->proc.fd, w->rx + w->rx_end, RXBUF - w->rx_end,
                     MSG_DONTWAIT);
            if (k > 0) {
                w->progress_at = now;
                w->rx_end += (size_t)k;
                got += (size_t)k;
                if (!parse(p, w, now))
                    return false;
                continue;
            }
        }
        if (k == 0) {
            bool mid = w->in_body || w->rx_end > w->rx_beg;
            lose_worker(p, w, WHY_CRASH, mid ? "it left a truncated frame" : "",
                        now);
            return false;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return true;
        lose_worker(p, w, WHY_CRASH, "", now);
        return false;
    }
    return true;
}

/* ---- the manager ------------------------------------------------------- */

/* Tasks to keep in flight per worker: the running one, plus about
 * DEPTH_WINDOW_S of work queued behind it so the worker never waits for a
 * round trip. Until a task time is measured, and for long tasks, only the
 * running one: a task queued behind a long one would wait while another
 * worker idles (tasks are pushed to a worker, not pulled). */
static size_t depth(const pp_pool *p)
{
    if (p->ewma <= 0)
        return 1;
    double d = 1.0 + DEPTH_WINDOW_S / p->ewma;
    return d > MAX_DEPTH ? MAX_DEPTH : (size_t)d;
}

static size_t room(const pp_pool *p, const pp_worker *w, size_t d)
{
    size_t r = w->n_inflight < d ? d - w->n_inflight : 0;
    if (p->max_tasks && w->assigned + r > p->max_tasks)
        r = w->assigned < p->max_tasks ? p->max_tasks - w->assigned : 0;
    return r;
}

static void assign(pp_worker *w, pp_task *t, double now)
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
}

/* Writes what is queued for every worker. Losing one can break the pool
 * and take the others out of the live list: start over after each loss. */
static void flush_all(pp_pool *p, double now)
{
again:
    for (pp_worker *w = p->live; w; w = w->next) {
        if (wants_out(p, w) && flush_worker(p, w, now)) {
            worker_gone(p, w, now);
            goto again;
        }
    }
}

/* Starts workers as needed and hands pending tasks to those with room,
 * round robin, so a short queue spreads over the pool. */
static void dispatch(pp_pool *p, double now)
{
    pthread_mutex_lock(&p->mu);
    size_t pending = p->n_pending;
    bool broken = p->broken;
    pthread_mutex_unlock(&p->mu);
    p->can_take = false;
    if (broken)
        return;
    size_t d = depth(p), total = 0, idle = 0;
    for (pp_worker *w = p->live; w; w = w->next) {
        size_t r = room(p, w, d);
        total += r;
        idle += r && !w->head;
    }
    bool may_start = now >= p->start_retry_at;
    while (may_start && pending > idle && p->n_live < p->max_workers) {
        int rc = start_worker(p, now);
        if (rc) {
            /* Go on with the workers we have; try again later. */
            start_failed(p, cf_strerror(rc), now);
            may_start = false;
            break;
        }
        size_t r = room(p, p->live, d);
        total += r;
        idle += r > 0;
    }
    p->can_take = total > 0 || (may_start && p->n_live < p->max_workers);
    pp_task *list = total ? take_pending(p, total) : NULL;
    pp_worker *w = p->live;
    for (pp_task *t = list, *next; t; t = next) {
        next = t->next;
        if (!t->started) {
            if (!cf_future_set_running_or_notify_cancel(t->f)) {
                count(&p->st_cancelled);
                cf_future_release(t->f);
                cf__free(t);
                continue;
            }
            t->started = true;
        }
        while (!room(p, w, d)) /* total counted enough room for all */
            w = w->next ? w->next : p->live;
        assign(w, t, now);
        w = w->next ? w->next : p->live;
    }
    flush_all(p, now);
}

/*
 * When w's oldest task passes its limit, and which (*why): task_timeout
 * from when it started to run, by its worker's state page; once it has
 * returned, the transfer's limit from when its answer last made progress.
 * A task written but not yet started is looked at again soon (*why
 * WHY_STOP: nothing to enforce). INFINITY: no limit applies.
 */
static double deadline(const pp_pool *p, const pp_worker *w, double now,
                       pp_why *why)
{
    *why = WHY_STOP;
    if (p->timeout <= 0 || !w->ready || !w->head || w->head == w->unsent)
        return INFINITY;
    const cf__pp_state *st = w->proc.state;
    uint64_t id = task_id(w->head);
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

/* Once shut down with nothing left to run: retires idle workers. True
 * when every worker has been reaped and the manager may exit. */
static bool wind_down(pp_pool *p, double now)
{
    pthread_mutex_lock(&p->mu);
    bool done = p->shutdown && p->n_pending == 0;
    pthread_mutex_unlock(&p->mu);
    if (!done)
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
    atomic_store_explicit(&p->st_workers, p->n_live + p->n_dying,
                          memory_order_relaxed);
    atomic_store_explicit(&p->st_idle, idle, memory_order_relaxed);
    atomic_store_explicit(&p->st_running, running, memory_order_relaxed);
}

/* Sleeps in poll until a worker speaks, a worker exits, a deadline, or a
 * submit or shutdown wakes us; then serves what happened. */
static void wait_and_serve(pp_pool *p)
{
    enum { WAKE, LIVE, DYING };
    double now = cf__now(), next = INFINITY;
    size_t n = 1, polled_dying = 0;
    p->pfds[0] = (struct pollfd){ p->wakefd, POLLIN, 0 };
    p->pws[0] = NULL;
    for (pp_worker *w = p->live; w; w = w->next) {
        short ev = POLLIN | (wants_out(p, w) ? POLLOUT : 0);
        p->pfds[n] = (struct pollfd){ w->proc.fd, ev, 0 };
        p->pws[n++] = w;
        if (w->proc.pidfd >= 0) {
            p->pfds[n] = (struct pollfd){ w->proc.pidfd, POLLIN, 0 };
            p->pws[n++] = w;
        }
        pp_why why;
        next = fmin(next, deadline(p, w, now, &why));
    }
    size_t first_dying = n;
    for (pp_worker *w = p->dying; w; w = w->next) {
        if (!w->killed)
            next = fmin(next, w->kill_at);
        if (w->proc.pidfd >= 0 && polled_dying < MAX_POLLED_DYING) {
            p->pfds[n] = (struct pollfd){ w->proc.pidfd, POLLIN, 0 };
            p->pws[n++] = w;
            polled_dying++;
        } else {
            next = fmin(next, now + TICK_S);
        }
    }
    bool may_grow = p->n_live < p->max_workers;
    pthread_mutex_lock(&p->mu);
    if (p->n_pending && p->can_take)
        next = now;
    else if (p->n_pending && may_grow)
        next = fmin(next, p->start_retry_at); /* retry a failed start */
    /* Submits wake us only when we could take their task (now, or once a
     * failed start may be retried); a shutdown always does. */
    p->listening = p->can_take || may_grow;
    bool stop = p->shutdown;
    pthread_mutex_unlock(&p->mu);
    if (stop && p->dying)
        next = fmin(next, now + TICK_S); /* reaping decides when we exit */
    int ms = -1;
    if (next < INFINITY) {
        double left = ceil((next - now) * 1000.0);
        ms = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
    }
    int rc = poll(p->pfds, n, ms);
    pthread_mutex_lock(&p->mu);
    p->listening = false;
    pthread_mutex_unlock(&p->mu);
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
        if ((re & POLLOUT) && flush_worker(p, w, now))
            worker_gone(p, w, now);
    }
    /* Readable pidfds need nothing here: reap() runs next. */
}

static void destroy(pp_pool *p)
{
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
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->exited_cv);
    cf__free(p);
}

static void *manager_main(void *arg)
{
    pp_pool *p = arg;
    for (;;) {
        double now = cf__now();
        reap(p, now);
        give_up_if_starved(p, now);
        check_timeouts(p, now);
        dispatch(p, now);
        publish(p);
        if (wind_down(p, now))
            break;
        wait_and_serve(p);
    }
    publish(p);
    pthread_mutex_lock(&p->mu);
    p->exited = true;
    bool orphaned = p->orphaned;
    pthread_cond_broadcast(&p->exited_cv);
    pthread_mutex_unlock(&p->mu);
    if (orphaned)
        destroy(p);
    return NULL;
}

/* ---- the engine operations --------------------------------------------- */

static void wake_manager(pp_pool *p)
{
    uint64_t one = 1;
    while (write(p->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* Tasks with a pointer argument cannot cross a process boundary. */
static int pp_submit(cf_executor *ex, cf_future *f)
{
    (void)ex;
    (void)f;
    return CF_EINVAL;
}

static int pp_submit_bytes(cf_executor *ex, cf_future *f, cf_bytes_fn fn,
                           const void *in, size_t len)
{
    pp_pool *p = (pp_pool *)ex;
    const char *module;
    uint64_t offset;
    if (cf__fnid_of((const void *)fn, &module, &offset))
        return CF_EINVAL;
    size_t mlen = strlen(module);
    if (mlen > CF__PP_MAX_MODULE || len > CF__PP_MAX_PAYLOAD - 8 - mlen)
        return CF_EINVAL;
    size_t flen = CF__PP_HDR + 8 + mlen + len;
    pp_task *t = cf__malloc(sizeof *t + flen);
    if (!t)
        return CF_ENOMEM;
    memset(t, 0, sizeof *t);
    t->f = f;
    t->len = flen;
    cf__pp_hdr h;
    uint64_t id =
        atomic_fetch_add_explicit(&p->next_id, 1, memory_order_relaxed) + 1;
    cf__pp_hdr_set(&h, CF__PP_TASK, id, 8 + mlen + len, (int32_t)mlen);
    unsigned char *at = t->frame;
    memcpy(at, &h, sizeof h);
    memcpy(at += sizeof h, &offset, 8);
    memcpy(at += 8, module, mlen);
    if (len)
        memcpy(at + mlen, in, len);
    int rc = 0;
    bool wake = false;
    pthread_mutex_lock(&p->mu);
    if (p->broken) {
        rc = CF_EBROKEN;
    } else if (p->shutdown) {
        rc = CF_ESHUTDOWN;
    } else {
        if (p->pend_tail)
            p->pend_tail->next = t;
        else
            p->pend_head = t;
        p->pend_tail = t;
        p->n_pending++;
        wake = p->listening;
        p->listening = false;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc) {
        cf__free(t);
        return rc;
    }
    if (wake)
        wake_manager(p);
    return 0;
}

static bool on_manager(pp_pool *p)
{
    return pthread_equal(pthread_self(), p->manager);
}

static int pp_shutdown(cf_executor *ex, bool wait, bool cancel_futures)
{
    pp_pool *p = (pp_pool *)ex;
    if (wait && on_manager(p))
        return CF_EDEADLK; /* a done callback waiting for its own thread */
    pp_task *cancel = NULL;
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    if (cancel_futures) {
        /* Tasks put back after a crash already run for their futures:
         * they stay. */
        pp_task **link = &p->pend_head, *last = NULL;
        for (pp_task *t; (t = *link) != NULL;) {
            if (t->started) {
                last = t;
                link = &t->next;
                continue;
            }
            *link = t->next;
            t->next = cancel;
            cancel = t;
            p->n_pending--;
        }
        p->pend_tail = last;
    }
    pthread_mutex_unlock(&p->mu);
    wake_manager(p);
    for (pp_task *t = cancel, *next; t; t = next) {
        next = t->next;
        cf_future_cancel(t->f);
        count(&p->st_cancelled);
        cf_future_release(t->f);
        cf__free(t);
    }
    if (wait) {
        pthread_mutex_lock(&p->mu);
        while (!p->exited)
            pthread_cond_wait(&p->exited_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    return 0;
}

static void pp_free(cf_executor *ex)
{
    pp_pool *p = (pp_pool *)ex;
    if (on_manager(p)) {
        /* From a done callback: the manager frees the pool as it exits. */
        pp_shutdown(ex, false, false);
        pthread_mutex_lock(&p->mu);
        p->orphaned = true;
        pthread_mutex_unlock(&p->mu);
        pthread_detach(p->manager);
        return;
    }
    pp_shutdown(ex, true, false);
    pthread_join(p->manager, NULL);
    destroy(p);
}

static int pp_stats(cf_executor *ex, cf_stats *out)
{
    pp_pool *p = (pp_pool *)ex;
    pthread_mutex_lock(&p->mu);
    out->queued = p->n_pending;
    pthread_mutex_unlock(&p->mu);
    out->workers = atomic_load_explicit(&p->st_workers, memory_order_relaxed);
    out->idle = atomic_load_explicit(&p->st_idle, memory_order_relaxed);
    out->running = atomic_load_explicit(&p->st_running, memory_order_relaxed);
    out->completed =
        atomic_load_explicit(&p->st_completed, memory_order_relaxed);
    out->failed = atomic_load_explicit(&p->st_failed, memory_order_relaxed);
    out->cancelled =
        atomic_load_explicit(&p->st_cancelled, memory_order_relaxed);
    return 0;
}

static const cf__executor_ops pp_ops = {
    .submit = pp_submit,
    .submit_bytes = pp_submit_bytes,
    .shutdown = pp_shutdown,
    .free = pp_free,
    .stats = pp_stats,
};

/* ---- creation ---------------------------------------------------------- */

/* The INIT frame every worker gets first: 0, CF_EINVAL (an initializer or
 * initarg that cannot be named in another process), CF_ENOMEM. */
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
    if (fl > CF__PP_MAX_MODULE || al > CF__PP_MAX_MODULE)
        return CF_EINVAL;
    in.fn_module_len = (uint32_t)fl;
    in.arg_module_len = (uint32_t)al;
    size_t len = sizeof in + fl + al;
    unsigned char *f = cf__malloc(CF__PP_HDR + len);
    if (!f)
        return CF_ENOMEM;
    cf__pp_hdr h;
    cf__pp_hdr_set(&h, CF__PP_INIT, 0, len, flags);
    memcpy(f, &h, sizeof h);
    memcpy(f + CF__PP_HDR, &in, sizeof in);
    memcpy(f + CF__PP_HDR + sizeof in, fn_mod, fl);
    memcpy(f + CF__PP_HDR + sizeof in + fl, arg_mod, al);
    p->init_frame = f;
    p->init_len = CF__PP_HDR + len;
    return 0;
}

static bool is_worker_var(const char *e)
{
    size_t a = strlen(CF__PP_ENV_FD), b = strlen(CF__PP_ENV_PARENT);
    return (strncmp(e, CF__PP_ENV_FD, a) == 0 && e[a] == '=') ||
           (strncmp(e, CF__PP_ENV_PARENT, b) == 0 && e[b] == '=');
}

/* The spawned workers' environment: this process's, as it is now, plus
 * the two variables that make the program image serve the pool. */
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
    if (o.max_workers < 0 || isnan(o.task_timeout) || o.task_timeout < 0 ||
        (o.start_method != CF_START_SPAWN && o.start_method != CF_START_FORK)) {
        errno = EINVAL;
        return NULL;
    }
    pp_pool *p = cf__calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->base.ops = &pp_ops;
    p->wakefd = -1;
    p->max_workers =
        o.max_workers ? (size_t)o.max_workers : (size_t)cf_cpu_count();
    p->max_tasks = o.max_tasks_per_child;
    p->timeout = isinf(o.task_timeout) ? 0 : o.task_timeout;
    p->method = o.start_method;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->exited_cv, NULL);
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
    if (!rc) {
        /* The manager runs with every signal blocked: the program's
         * handlers never run on it, and its children start from a clean
         * mask (spawn sets one; fork clears it). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = -pthread_create(&p->manager, NULL, manager_main, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc) {
        destroy(p);
        errno = rc == CF_ENOMEM ? ENOMEM : -rc;
        return NULL;
    }
    pthread_setname_np(p->manager, "cf-procpool");
    return &p->base;
}

/*
 * The worker side's entry: a spawned worker is this program started again
 * with CF__PP_ENV_FD set. This constructor sits in the same object file as
 * cf_process_pool_new, so every program that can make a pool has it; in a
 * worker it serves the pool and exits before main (or, with the shared
 * library, the program's own constructors) would run. Anywhere else it
 * returns at once.
 */
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
