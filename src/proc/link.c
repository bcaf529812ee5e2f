/* SPDX-License-Identifier: MIT */
/*
 * link.c - one worker process, driven by its owner (wire.h): a process
 * pool's manager drives many, an isolated MPI rank one. The link starts
 * the process and writes its INIT, keeps TASK frames in flight (written
 * without blocking, oldest first), reads and checks the answers, and
 * measures task_timeout by the state page (docs/process_pool.md). Sockets
 * are non-blocking and writes never raise SIGPIPE, so a dead worker shows
 * up as EOF, EPIPE or its pidfd turning readable, never as a hang.
 *
 * Blame (docs/design.md): a lost worker's tasks written to it in full are
 * held until it is reaped; then its state page says which one it started
 * last: that one (and those before it) fail, the rest go back to the
 * owner (but a task first in line at too many deaths of READY workers that
 * started nothing fails alone). A worker that dies before READY is a
 * failed start; INIT_FAIL breaks the owner. Every frame read is checked; a
 * worker that sends a bad one is killed as crashed. A link is freed only
 * once reaped.
 */
#include "../fnid.h"
#include "../trace.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define GRACE_S 2.0          /* a closed or crashed worker gets this to exit */
#define DEPTH_WINDOW_S 0.002 /* work to keep queued in each worker */
#define MAX_DEPTH 256        /* tasks in flight per worker, at most */
#define MAX_IOV 64           /* frames per sendmsg */
#define RXBUF (64u * 1024u)  /* per-worker receive buffer */
#define RX_PER_CALL (4u << 20) /* bytes read from one worker per wake-up */
#define BODY_FIRST (1u << 20)  /* a payload's first buffer, at most */
#define RECHECK_S 0.05         /* a task sent but not started: look again */
#define UNTIMED_RECHECK_S 1.0  /* the same, or running, with no timeout */
#define EXIT_RECHECK_S 0.05    /* a live worker without a pidfd: exited? */
#define START_BACKOFF_MIN_S 0.01
#define START_BACKOFF_MAX_S 0.5
#define GIVE_UP_S 2.0
#define GIVE_UP_TRIES 3
#define EARLY_DEATHS_MAX 5 /* READY deaths with a task next, unstarted */

/* ---- failed starts ----------------------------------------------------- */

void cf__starts_failed(cf__starts *s, const char *why, double now)
{
    if (s->tries++ == 0)
        s->since = now;
    s->fresh = true;
    s->backoff = s->backoff > 0 ? fmin(2 * s->backoff, START_BACKOFF_MAX_S)
                                : START_BACKOFF_MIN_S;
    s->retry_at = now + s->backoff;
    snprintf(s->error, sizeof s->error, "cannot start a worker process: %.200s",
             why);
}

bool cf__starts_give_up(cf__starts *s, size_t live, double now)
{
    bool fresh = s->fresh;
    s->fresh = false;
    return fresh && !live && s->tries >= GIVE_UP_TRIES &&
           now - s->since >= GIVE_UP_S;
}

/* ---- the spec: INIT frame and environment ------------------------------ */

/* The INIT frame that names the initializer (wire.h); none without one. */
static int build_init(cf__pp_spec *s, const cf_options *o)
{
    if (!o->initializer)
        return 0;
    unsigned char arg[9 + CF__MAX_MODULE];
    const char *mod = "";
    uint64_t v = (uint64_t)(uintptr_t)o->initarg;
    bool raw = o->start_method == CF_START_FORK;
    /* A fresh image has the program's static data, nothing else. */
    if (o->initarg && !raw && cf__fnid_of(o->initarg, &mod, &v))
        return CF_EINVAL;
    size_t alen = o->initarg ? 9 + strlen(mod) : 0;
    if (alen > sizeof arg)
        return CF_EINVAL;
    arg[0] = raw ? CF__PP_ARG_RAW : CF__PP_ARG_NAMED;
    memcpy(arg + 1, &v, 8);
    memcpy(arg + 9, mod, alen ? alen - 9 : 0);
    int rc;
    s->init = cf__frame_task_new(0, CF__FR_INIT, (const void *)o->initializer,
                                 arg, alen, 0, &s->init_len, &rc);
    return s->init ? 0 : rc;
}

/* A formatted string on the heap, or NULL (a failure's message is then
 * cf_strerror(code)). */
static char *fmt_msg(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return cf__strdup(buf);
}

static bool is_var(const char *e, const char *name)
{
    size_t n = strlen(name);
    return strncmp(e, name, n) == 0 && e[n] == '=';
}

/* The spawned workers' environment: ours plus the two variables that make
 * the program serve its owner. */
static int build_env(cf__pp_spec *s)
{
    size_t n = 0, k = 0;
    while (environ && environ[n])
        n++;
    if (!(s->envp = cf__calloc(n + 3, sizeof *s->envp)))
        return CF_ENOMEM;
    for (char **e = environ; e && *e; e++)
        if (!is_var(*e, CF__PP_ENV_FD) && !is_var(*e, CF__PP_ENV_PARENT) &&
            !(s->envp[k++] = cf__strdup(*e)))
            return CF_ENOMEM;
    if (!(s->envp[k++] = fmt_msg("%s=%d", CF__PP_ENV_FD, CF__PP_FD)))
        return CF_ENOMEM;
    s->envp[k] = fmt_msg("%s=%d", CF__PP_ENV_PARENT, (int)getpid());
    return s->envp[k] ? 0 : CF_ENOMEM;
}

int cf__pp_spec_init(cf__pp_spec *s, const cf_options *o)
{
    *s = (cf__pp_spec){ .max_tasks = o->max_tasks_per_child };
    s->timeout = isinf(o->task_timeout) ? 0 : o->task_timeout;
    int rc = build_init(s, o);
    return rc || o->start_method != CF_START_SPAWN ? rc : build_env(s);
}

void cf__pp_spec_fini(cf__pp_spec *s)
{
    for (char **e = s->envp; e && *e; e++)
        cf__free(*e);
    cf__free(s->envp);
    cf__free(s->init);
}

/* ---- losing a worker --------------------------------------------------- */

cf__rtask *cf__pp_link_take(cf__pp_link *w)
{
    cf__rtask *list = w->head;
    w->head = w->tail = w->unsent = NULL;
    w->n_inflight = 0;
    return list;
}

void cf__pp_link_lose(cf__pp_link *w, cf__pp_why why, const char *detail,
                      double now)
{
    cf__trace(CF__TR_PROC_LOST, why == CF__PP_STOP ? NULL : w,
              (uint64_t)w->proc.pid);
    close(w->proc.fd);
    w->proc.fd = -1;
    cf__free(w->rx);
    cf__free(w->body);
    w->rx = NULL;
    w->body = NULL;
    w->why = why;
    snprintf(w->detail, sizeof w->detail, "%s", detail ? detail : "");
    if (why != CF__PP_CRASH && why != CF__PP_STOP) {
        kill(w->proc.pid, SIGKILL);
        w->killed = true;
        w->culprit = w->head ? cf__rtask_id(w->head) : 0;
    }
    w->kill_at = now + GRACE_S;
    /* Those written in full are held until it is reaped; those it never
     * got whole go back now. */
    cf__rtask *unsent = w->unsent, *last_sent = NULL;
    for (cf__rtask *t = w->head; t != unsent; t = t->next)
        last_sent = t;
    for (cf__rtask *t = unsent; t; t = t->next)
        t->sent_at = 0;
    if (last_sent) {
        last_sent->next = NULL;
        w->held = w->head;
    }
    cf__pp_link_take(w);
    if (unsent)
        w->team->owner->requeue(w->team->o, unsent);
}

static double stall_limit(const cf__pp_link *w)
{
    return fmax(CF__PP_STALL_MIN_S, w->team->spec.timeout);
}

/* Why a worker was killed for a task's fault, in words. */
static const char *why_words(cf__pp_why why)
{
    switch (why) {
    case CF__PP_TIMEOUT: return "it ran past task_timeout";
    case CF__PP_STALL: return "its result made no progress";
    case CF__PP_CORRUPT: return "it sent a corrupt frame";
    case CF__PP_NOMEM: return "no memory for its result";
    case CF__PP_IDLE: return "it did not start its next task";
    default: return "it failed";
    }
}

/* Why task t, which ran on the dead worker, failed (how: the worker's end
 * in words; finished: t had returned); sets *code. A task killed for
 * another's fault (it started, or its answer was on the way, as the
 * worker was killed) is told so. */
static char *death_message(const cf__pp_link *w, const cf__rtask *t,
                           const char *how, bool finished, int *code)
{
    int pid = (int)w->proc.pid;
    bool other = w->culprit && w->culprit != cf__rtask_id(t);
    *code = other                                                ? CF_EBROKEN
            : w->why == CF__PP_TIMEOUT || w->why == CF__PP_STALL ? CF_ETIME
            : w->why == CF__PP_NOMEM                             ? CF_ENOMEM
                                                                 : CF_EBROKEN;
    const char *when = finished ? "after this task returned, before its "
                                  "result arrived"
                                : "while running this task";
    if (other)
        return fmt_msg("worker process %d was killed for another task (%s) "
                       "%s",
                       pid, why_words(w->why), when);
    switch (w->why) {
    case CF__PP_TIMEOUT:
        return fmt_msg("task ran past its task_timeout of %g s; worker "
                       "process %d was killed",
                       w->team->spec.timeout, pid);
    case CF__PP_STALL:
        return fmt_msg("task finished, but its result made no progress for "
                       "%g s; worker process %d was killed",
                       stall_limit(w), pid);
    case CF__PP_CORRUPT:
        return fmt_msg("worker process %d sent a corrupt frame (%s) while "
                       "running this task and was killed",
                       pid, w->detail);
    case CF__PP_NOMEM:
        return fmt_msg("no memory for the result (%s); worker process %d "
                       "was killed",
                       w->detail, pid);
    default: break;
    }
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

/* How w ended, in words, for a task it never started (how: its status). */
static void death_cause(const cf__pp_link *w, const char *how, char *buf,
                        size_t n)
{
    bool d = w->detail[0];
    if (w->why == CF__PP_IDLE)
        snprintf(buf, n, "was killed (%s)", w->detail);
    else if (w->killed) /* it closed the socket but did not exit */
        snprintf(buf, n, "closed its connection and was killed");
    else
        snprintf(buf, n, "%s%s%s%s", how, d ? " (" : "", w->detail,
                 d ? ")" : "");
}

/* w died READY and ran none of its held tasks: the first was next in line.
 * A task next in line at EARLY_DEATHS_MAX such deaths (its function's
 * library crashes the worker as it loads, say) fails alone; the others
 * run again. Deaths before READY are failed starts and do not count, nor
 * do kills by the link (their culprit is known, or it was retired). */
static void blame_next(cf__pp_link *w, const char *how)
{
    cf__rtask *t = w->held;
    if (!t || !w->ready || (w->why != CF__PP_CRASH && w->why != CF__PP_IDLE) ||
        ++t->early < EARLY_DEATHS_MAX)
        return;
    w->held = t->next;
    t->next = NULL;
    char cause[sizeof w->detail + 200];
    death_cause(w, how, cause, sizeof cause);
    char *text = fmt_msg("worker processes died %u times with this task "
                         "next in line, before it started; the last one, "
                         "process %d, %s",
                         (unsigned)t->early, (int)w->proc.pid, cause);
    w->team->owner->fail(w->team->o, t, CF_EBROKEN, text);
    cf__free(text);
}

/* The held tasks up to the one started last (ran) fail; the rest run
 * again (but for one next in line too often: blame_next). */
static void blame(cf__pp_link *w, uint64_t ran, const char *how, bool finished)
{
    cf__rtask *cut = NULL;
    for (cf__rtask *t = w->held; t; t = t->next)
        if (ran && cf__rtask_id(t) == ran)
            cut = t;
    if (!cut)
        blame_next(w, how);
    if (cut ? cut->next : w->held)
        w->team->owner->requeue(w->team->o, cut ? cut->next : w->held);
    if (!cut)
        return;
    cut->next = NULL;
    /* The tasks before the one started last had returned (a worker starts
     * a task only after writing the last one's answer). */
    for (cf__rtask *t = w->held, *next; t; t = next) {
        next = t->next;
        t->next = NULL;
        int code;
        char *text = death_message(w, t, how, t != cut || finished, &code);
        w->team->owner->fail(w->team->o, t, code, text);
        cf__free(text);
    }
}

bool cf__pp_link_reap(cf__pp_link *w, double now)
{
    int status = 0;
    pid_t r = waitpid(w->proc.pid, &status, WNOHANG);
    if (r != w->proc.pid && !(r < 0 && errno == ECHILD)) {
        if (!w->killed && now >= w->kill_at) {
            kill(w->proc.pid, SIGKILL);
            w->killed = true;
        }
        return false;
    }
    if (w->proc.pidfd >= 0)
        close(w->proc.pidfd);
    char how[160] = "ended (its exit status was collected elsewhere)";
    if (r == w->proc.pid)
        describe_status(how, sizeof how, status);
    /* acquire: pairs with the worker's release stores (worker.c) */
    uint64_t ran =
        atomic_load_explicit(&w->proc.state->running, memory_order_acquire);
    uint64_t fin =
        atomic_load_explicit(&w->proc.state->done, memory_order_acquire);
    munmap(w->proc.state, sizeof *w->proc.state);
    blame(w, ran, how, fin == ran);
    if (!w->ready && w->why != CF__PP_STOP && w->why != CF__PP_KILL) {
        char why[sizeof how + sizeof w->detail + 40];
        snprintf(why, sizeof why, "worker process %d %s%s%s", (int)w->proc.pid,
                 how, w->detail[0] ? "; " : "", w->detail);
        cf__starts_failed(&w->team->starts, why, now);
    }
    cf__free(w);
    return true;
}

/* ---- starting, sending ------------------------------------------------- */

cf__pp_link *cf__pp_link_start(cf__pp_team *team, double now, int *rc)
{
    const cf__pp_spec *s = &team->spec;
    cf__pp_link *w = cf__calloc(1, sizeof *w);
    *rc = !w || !(w->rx = cf__malloc(RXBUF))
              ? CF_ENOMEM
              : cf__pp_start(&w->proc, s->envp); /* NULL: fork */
    if (*rc) {
        cf__free(w ? w->rx : NULL);
        cf__free(w);
        return NULL;
    }
    cf__trace(CF__TR_PROC_START, NULL, (uint64_t)w->proc.pid);
    w->team = team;
    w->head_since = now;
    /* A fresh socket's buffer holds INIT whole. */
    cf__frame none;
    cf__frame_set(&none, CF__FR_INIT, 0, 0, 0);
    struct iovec iov = s->init ? (struct iovec){ s->init, s->init_len }
                               : (struct iovec){ &none, sizeof none };
    if (cf__send_all(w->proc.fd, &iov, 1))
        kill(w->proc.pid, SIGKILL); /* the next poll sees a failed start */
    return w;
}

size_t cf__pp_link_room(const cf__pp_link *w)
{
    /* The running task plus about DEPTH_WINDOW_S of work behind it; only
     * the one for long or unmeasured tasks (a task queued behind a long
     * one would wait while another worker idles). */
    double ewma = w->team->ewma;
    size_t d = ewma <= 0 ? 1
                         : 1 + cf__remote_window(ewma, DEPTH_WINDOW_S, 0,
                                                 MAX_DEPTH - 1);
    size_t r = w->n_inflight < d ? d - w->n_inflight : 0;
    unsigned max = w->team->spec.max_tasks;
    if (max && w->assigned + r > max)
        r = w->assigned < max ? max - w->assigned : 0;
    return r;
}

void cf__pp_link_push(cf__pp_link *w, cf__rtask *t, double now)
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

bool cf__pp_link_flush(cf__pp_link *w, double now)
{
    while (w->unsent) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        size_t off = w->unsent_off;
        for (cf__rtask *t = w->unsent; t && n < MAX_IOV; t = t->next) {
            iov[n++] = (struct iovec){ t->frame + off, t->len - off };
            off = 0;
        }
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t k = sendmsg(w->proc.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EAGAIN)
            return true;
        if (k < 0 && errno != EINTR) {
            cf__pp_link_gone(w, now);
            return false;
        }
        w->unsent_off += k > 0 ? (size_t)k : 0;
        while (w->unsent && w->unsent_off >= w->unsent->len) {
            w->unsent_off -= w->unsent->len;
            w->unsent->sent_at = now;
            w->unsent = w->unsent->next;
        }
    }
    return true;
}

void cf__pp_link_gone(cf__pp_link *w, double now)
{
    /* A process the task started may keep the socket open. */
    if (cf__pp_link_read(w, now, true))
        cf__pp_link_lose(w, CF__PP_CRASH, "", now);
}

/* ---- receiving --------------------------------------------------------- */

/* A task that answered for itself and returned: the worker's answer
 * comes second. */
static const char SECOND_ANSWER[] = "a second answer to a task";

/* NULL when h may come next from w, else what is wrong. */
static const char *frame_bad(const cf__pp_link *w, const cf__frame *h)
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
        if (w->answered && h->id == w->answered)
            return SECOND_ANSWER;
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

/* Handles the complete frame in w->hdr and w->body: false once w is lost. */
static bool on_frame(cf__pp_link *w, double now)
{
    const cf__frame *h = &w->hdr;
    cf__bytes *b = w->body;
    char *text = NULL;
    w->body = NULL;
    if (h->type != CF__FR_RESULT) { /* text: a string of its allocation */
        text = memmove(b, b->data, (size_t)h->len);
        text[h->len] = '\0';
        b = NULL;
    }
    if (h->type == CF__FR_INIT_FAIL) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "pool broken: a worker's initializer failed: %s",
                 text[0] ? text : cf_strerror(h->aux));
        cf__free(text);
        w->team->owner->broken(w->team->o, msg);
        return false;
    }
    cf__task_ctx ctx = { text ? h->aux : 0, text && text[0] ? text : NULL };
    if (!ctx.message)
        cf__free(text);
    if (h->type == CF__FR_READY) {
        w->ready = true;
        w->head_since = now;
        w->team->starts.tries = 0;
        w->team->starts.backoff = w->team->starts.retry_at = 0;
        return true;
    }
    /* The task's time counts from when it could start: written in full
     * and first in line. */
    cf__rtask *t = w->head;
    w->answered = cf__rtask_id(t);
    cf__remote_ewma(&w->team->ewma, now - fmax(t->sent_at, w->head_since),
                    0.125);
    if (!(w->head = t->next))
        w->tail = NULL;
    w->n_inflight--;
    w->head_since = now;
    w->team->owner->answered(w->team->o, t, b, &ctx);
    unsigned max = w->team->spec.max_tasks;
    if (max && w->assigned >= max && !w->head) {
        cf__pp_link_lose(w, CF__PP_STOP, NULL, now);
        return false;
    }
    return true;
}

/* Checks the header just read into w->hdr and allocates the start of its
 * body (with room for a NUL): false once w is lost. */
static bool begin_body(cf__pp_link *w, double now)
{
    const char *bad = frame_bad(w, &w->hdr);
    if (bad) {
        cf__pp_link_lose(w, CF__PP_CORRUPT, bad, now);
        /* The task answered twice is at fault, not the one behind it,
         * which may have started meanwhile. */
        if (bad == SECOND_ANSWER)
            w->culprit = w->hdr.id;
        return false;
    }
    size_t len = (size_t)w->hdr.len; /* <= CF__MAX_PAYLOAD */
    size_t cap = len < BODY_FIRST ? len : BODY_FIRST;
    if (!(w->body = cf__malloc(sizeof(cf__bytes) + cap + 1))) {
        cf__pp_link_lose(w, CF__PP_NOMEM, "a result's first bytes", now);
        return false;
    }
    w->body->len = len;
    w->body_have = 0;
    w->body_cap = cap;
    return true;
}

/* Bytes of w's body that fit in its buffer now, doubling it when full up
 * to the length the header gave: a length read from the wire reserves no
 * more than 1 MiB or twice what came. 0 once w is lost (body NULL). */
static size_t body_room(cf__pp_link *w, double now)
{
    size_t len = w->body->len;
    if (w->body_have == w->body_cap && w->body_cap < len) {
        size_t cap = w->body_cap > len / 2 ? len : 2 * w->body_cap;
        cf__bytes *b = cf__realloc(w->body, sizeof *b + cap + 1);
        if (!b) {
            char what[64];
            snprintf(what, sizeof what, "%zu bytes", cap);
            cf__pp_link_lose(w, CF__PP_NOMEM, what, now);
            return 0;
        }
        w->body = b;
        w->body_cap = cap;
    }
    return w->body_cap - w->body_have;
}

/* Handles the frames w->rx and w->body hold: false once w is lost. */
static bool parse(cf__pp_link *w, double now)
{
    for (;;) {
        size_t avail = w->rx_end - w->rx_beg;
        if (!w->body && avail < sizeof w->hdr) {
            /* Stray bytes are caught once they cannot start a header. */
            uint32_t magic = CF__FRAME_MAGIC;
            if (memcmp(w->rx + w->rx_beg, &magic, avail < 4 ? avail : 4) == 0)
                return true;
            cf__pp_link_lose(w, CF__PP_CORRUPT, "bad magic", now);
            return false;
        }
        if (!w->body) {
            memcpy(&w->hdr, w->rx + w->rx_beg, sizeof w->hdr);
            w->rx_beg += sizeof w->hdr;
            avail -= sizeof w->hdr;
            if (!begin_body(w, now))
                return false;
        }
        size_t c = w->body_have < w->body->len ? body_room(w, now) : 0;
        if (!w->body)
            return false; /* lost */
        c = c < avail ? c : avail;
        memcpy(w->body->data + w->body_have, w->rx + w->rx_beg, c);
        w->body_have += c;
        w->rx_beg += c;
        if (w->body_have < w->body->len) {
            if (w->rx_beg == w->rx_end)
                return true; /* else: the buffer grows */
        } else if (!on_frame(w, now)) {
            return false;
        }
    }
}

bool cf__pp_link_read(cf__pp_link *w, double now, bool drain)
{
    for (size_t got = 0; drain || got < RX_PER_CALL;) {
        if (w->rx_beg == w->rx_end)
            w->rx_beg = w->rx_end = 0;
        size_t need = w->body ? w->body->len - w->body_have : 0;
        /* A large payload goes straight into its buffer. */
        bool direct = need >= RXBUF / 4 && w->rx_beg == w->rx_end;
        if (direct && !(need = body_room(w, now)))
            return false; /* lost */
        if (!direct && w->rx_end == RXBUF) {
            memmove(w->rx, w->rx + w->rx_beg, w->rx_end - w->rx_beg);
            w->rx_end -= w->rx_beg;
            w->rx_beg = 0;
        }
        ssize_t k =
            recv(w->proc.fd,
                 direct ? w->body->data + w->body_have : w->rx + w->rx_end,
                 direct ? need : RXBUF - w->rx_end, MSG_DONTWAIT);
        if (k > 0) {
            w->progress_at = now;
            got += (size_t)k;
            *(direct ? &w->body_have : &w->rx_end) += (size_t)k;
            if (!parse(w, now))
                return false;
        } else if (k < 0 && errno == EAGAIN) {
            return true;
        } else if (k == 0 || errno != EINTR) {
            bool mid = k == 0 && (w->body || w->rx_end > w->rx_beg);
            cf__pp_link_lose(w, CF__PP_CRASH,
                             mid ? "it left a truncated frame" : "", now);
            return false;
        }
    }
    return true;
}

/* ---- time limits ------------------------------------------------------- */

/* Whether id names a task in w's in-flight list after its oldest. */
static bool after_head(const cf__pp_link *w, uint64_t id)
{
    for (const cf__rtask *t = w->head->next; t; t = t->next)
        if (cf__rtask_id(t) == id)
            return true;
    return false;
}

/* When w's oldest task passes its limit, and which (*why): task_timeout
 * from its start by the state page; once it returned, the transfer's limit
 * from the last progress; not started yet, or running with no timeout:
 * look again later (STOP), but a task not started within the transfer's
 * limit means the worker is stuck between tasks (IDLE). Without
 * task_timeout the page is read only once that limit could have passed.
 * An honest worker stores `done`
 * before it answers and starts the next task only after: a later task
 * running means the oldest's run ended (its answer stalls); an answered
 * task running but not done means it was answered before its run ended,
 * a forgery (CORRUPT). */
static double limit(const cf__pp_link *w, double now, cf__pp_why *why)
{
    *why = CF__PP_STOP;
    double timeout = w->team->spec.timeout;
    if (!w->ready || !w->head || w->head == w->unsent)
        return INFINITY;
    const cf__pp_state *st = w->proc.state;
    uint64_t id = cf__rtask_id(w->head);
    double since = fmax(w->head->sent_at, w->head_since);
    double stalled = fmax(since, w->progress_at) + stall_limit(w);
    if (timeout <= 0 && now < stalled)
        return stalled;
    /* acquire: pairs with the worker's release stores (worker.c); done
     * first, so a `running` read after it is at least as new */
    uint64_t done = atomic_load_explicit(&st->done, memory_order_acquire);
    uint64_t ran = atomic_load_explicit(&st->running, memory_order_acquire);
    if (done == id || (ran && ran != id && after_head(w, ran))) {
        *why = CF__PP_STALL;
        return stalled;
    }
    if (ran == id && timeout <= 0)
        return now + UNTIMED_RECHECK_S;
    if (ran == id) {
        *why = CF__PP_TIMEOUT;
        /* A start after now is not one: the page was overwritten. */
        double start = (double)atomic_load_explicit(&st->started_ns,
                                                    memory_order_relaxed) *
                       1e-9;
        return (start <= now ? start : since) + timeout;
    }
    if (ran && done != ran) {
        *why = CF__PP_CORRUPT;
        return now;
    }
    if (now >= stalled) {
        *why = CF__PP_IDLE;
        return stalled;
    }
    return fmin(stalled, timeout > 0 ? fmax(since + timeout, now + RECHECK_S)
                                     : now + UNTIMED_RECHECK_S);
}

/* Whether w, which has no pidfd, has exited: it stays unreaped (WNOWAIT)
 * until cf__pp_link_reap. Without a pidfd nothing else tells its death
 * while a process its task started keeps the socket open. */
static bool exited_unwatched(const cf__pp_link *w)
{
    if (w->proc.pidfd >= 0)
        return false;
    siginfo_t si;
    si.si_pid = 0;
    int rc = waitid(P_PID, (id_t)w->proc.pid, &si, WEXITED | WNOHANG | WNOWAIT);
    /* ECHILD: the program reaped it (see cf__pp_link_reap) */
    return rc == 0 ? si.si_pid == w->proc.pid : errno == ECHILD;
}

double cf__pp_link_deadline(const cf__pp_link *w, double now)
{
    cf__pp_why why;
    double next = limit(w, now, &why);
    return w->proc.pidfd >= 0 ? next : fmin(next, now + EXIT_RECHECK_S);
}

bool cf__pp_link_check(cf__pp_link *w, double now)
{
    cf__pp_why why;
    if (exited_unwatched(w)) {
        cf__pp_link_gone(w, now); /* as when its pidfd turns readable */
        return false;
    }
    if (now < limit(w, now, &why) || why == CF__PP_STOP)
        return true;
    /* What it wrote already is read first: the task may have just ended
     * (it is not killed then), or the one at fault may be a later one. */
    if (!cf__pp_link_read(w, now, true))
        return false;
    if (now < limit(w, now, &why) || why == CF__PP_STOP)
        return true;
    /* CORRUPT: the task in `running` answered early; it is at fault */
    uint64_t ran =
        atomic_load_explicit(&w->proc.state->running, memory_order_acquire);
    char idle[64];
    snprintf(idle, sizeof idle, "it did not start its next task for %g s",
             stall_limit(w));
    cf__pp_link_lose(w, why,
                     why == CF__PP_CORRUPT ? "an answer to a task before its "
                                             "run ended"
                     : why == CF__PP_IDLE  ? idle
                                           : NULL,
                     now);
    if (why == CF__PP_CORRUPT)
        w->culprit = ran;
    return false;
}

int cf__pp_poll_ms(double next, double now)
{
    if (next >= INFINITY)
        return -1;
    double left = ceil((next - now) * 1000.0);
    return left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
}
