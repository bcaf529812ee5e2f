/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the process transport of the remote engine (remote/engine.h):
 * cf_process_pool_new's workers are processes, each driven through its
 * link (wire.h, link.c) by the engine's manager thread
 * (docs/process_pool.md).
 *
 * The round (pp_round) reaps lost workers, starts new ones (spawn or
 * fork), hands pending tasks round robin to the workers whose link has
 * room, and blocks only in poll(2): on the sockets, the pidfds and a
 * wake-up eventfd. A worker stays on the list, lost (fd -1), until it is
 * reaped, and the manager exits only once all are.
 */
#include "../remote/engine.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_POLLED_DYING 64 /* lost workers beyond this are polled by tick */
#define TICK_S 0.005

typedef struct pp_pool {
    cf__remote r; /* first: the engine */
    /* Set at creation, read-only after. */
    size_t max_workers;
    int wakefd;
    /* The manager's own (team.spec: set at creation). */
    cf__pp_team team;
    cf__pp_link *workers; /* live, and lost ones not yet reaped */
    bool can_take;        /* room in some ready worker */
    size_t start_above;   /* more pending than this wants a start (SIZE_MAX:
                         * none may start now) */
    bool limbo;           /* a lost worker not yet reaped holds tasks */
    struct pollfd *pfds;
    cf__pp_link **pws;
} pp_pool;

static bool live(const cf__pp_link *w)
{
    return w->proc.fd >= 0;
}

/* Live workers; *lost those not yet reaped. */
static size_t count(const pp_pool *p, size_t *lost)
{
    size_t n = 0, l = 0;
    for (const cf__pp_link *w = p->workers; w; w = w->next)
        live(w) ? n++ : l++;
    if (lost)
        *lost = l;
    return n;
}

/* ---- what the links hand back (cf__pp_owner) --------------------------- */

static void pool_answered(void *o, cf__rtask *t, cf__bytes *b,
                          cf__task_ctx *ctx)
{
    cf__remote_finish(&((pp_pool *)o)->r, t, b, ctx);
}

static void pool_requeue(void *o, cf__rtask *list)
{
    cf__remote_requeue(&((pp_pool *)o)->r, list);
}

static void pool_fail(void *o, cf__rtask *list, int code, const char *msg)
{
    cf__remote_fail_list(&((pp_pool *)o)->r, list, code, msg);
}

/* An initializer failed: all work fails, every worker is killed. */
static void pool_broken(void *o, const char *msg)
{
    pp_pool *p = o;
    cf__remote_break(&p->r, msg);
    double now = cf__now();
    for (cf__pp_link *w = p->workers; w; w = w->next) {
        if (!live(w))
            continue;
        cf__remote_fail_list(&p->r, cf__pp_link_take(w), CF_EBROKEN, msg);
        cf__pp_link_lose(w, CF__PP_KILL, NULL, now);
    }
}

static const cf__pp_owner pool_owner = {
    .answered = pool_answered,
    .requeue = pool_requeue,
    .fail = pool_fail,
    .broken = pool_broken,
};

/* ---- the manager ------------------------------------------------------- */

/* Reaps the lost workers that exited (the links kill those past their
 * grace). */
static void reap(pp_pool *p, double now)
{
    for (cf__pp_link **link = &p->workers, *w; (w = *link) != NULL;) {
        cf__pp_link *next = w->next;
        if (!live(w) && cf__pp_link_reap(w, now))
            *link = next;
        else
            link = &w->next;
    }
}

/* The live worker after w (w NULL: the first), round the list. */
static cf__pp_link *next_live(pp_pool *p, cf__pp_link *w)
{
    do
        w = w && w->next ? w->next : p->workers;
    while (!live(w));
    return w;
}

/* Starts workers while more tasks wait than the idle ones (*idle, of n
 * live) cover, until a start fails (it is retried later): the new n. */
static size_t start_workers(pp_pool *p, double now, size_t pending,
                            size_t *idle, size_t n)
{
    for (int rc; now >= p->team.starts.retry_at && pending > *idle &&
                 n < p->max_workers;
         n++) {
        cf__pp_link *w = cf__pp_link_start(&p->team, now, &rc);
        if (!w) { /* go on with the workers we have */
            cf__starts_failed(&p->team.starts, cf_strerror(rc), now);
            break;
        }
        w->next = p->workers;
        p->workers = w;
        ++*idle;
    }
    return n;
}

/* Starts workers as needed and hands pending tasks to those with room,
 * round robin, so a short queue spreads over the pool; then writes. */
static void dispatch(pp_pool *p, double now)
{
    pthread_mutex_lock(&p->r.mu);
    size_t pending = p->r.n_pending;
    bool broken = p->r.broken;
    pthread_mutex_unlock(&p->r.mu);
    p->can_take = false;
    p->start_above = SIZE_MAX;
    if (broken)
        return;
    /* Tasks go only to workers that said READY: one whose initializer is
     * slow, or hangs, holds none (it counts as idle for starting more). */
    size_t total = 0, idle = 0, n = 0;
    p->limbo = false;
    for (cf__pp_link *w = p->workers; w; w = w->next) {
        size_t r = live(w) && w->ready ? cf__pp_link_room(w) : 0;
        total += r;
        idle += (r && !w->head) || (live(w) && !w->ready);
        n += live(w);
        p->limbo |= !live(w) && w->held;
    }
    n = start_workers(p, now, pending, &idle, n);
    /* The tasks a lost worker holds go back to the front of the queue
     * once it is reaped (those it did not start): until then none queued
     * goes out, or one queued behind them would overtake them (and be
     * first in line at the next worker's death, for one). Its pidfd wakes
     * us. */
    if (p->limbo)
        total = 0;
    /* Starting workers count as idle: while they start, nothing more is
     * wanted (the manager sleeps until one says READY). Kept as a bound,
     * not a flag: next_look compares it with the queue as it is then, so
     * a task submitted after `pending` was read above (no wake-up while
     * the manager is not listening) still starts a worker. */
    if (!p->limbo && n < p->max_workers)
        p->start_above = idle;
    p->can_take = total > 0;
    cf__rtask *list = total ? cf__remote_take(&p->r, total) : NULL;
    cf__pp_link *w = list ? next_live(p, NULL) : NULL;
    for (cf__rtask *t = list, *next; t; t = next) {
        next = t->next;
        if (!cf__remote_set_running(&p->r, t))
            continue;
        while (!w->ready || !cf__pp_link_room(w)) /* total counted all */
            w = next_live(p, w);
        cf__pp_link_push(w, t, now);
        w = next_live(p, w);
    }
    for (w = p->workers; w; w = w->next)
        if (live(w))
            cf__pp_link_flush(w, now);
}

/* Once shut down and drained, retires idle workers: true when all are
 * reaped. */
static bool wind_down(pp_pool *p, double now)
{
    if (!cf__remote_drained(&p->r))
        return false;
    for (cf__pp_link *w = p->workers; w; w = w->next)
        if (live(w) && !w->head)
            cf__pp_link_lose(w, CF__PP_STOP, NULL, now);
    return !p->workers;
}

static void publish(pp_pool *p)
{
    size_t idle = 0, running = 0, n = 0;
    for (cf__pp_link *w = p->workers; w; w = w->next, n++) {
        idle += live(w) && w->ready && !w->head;
        running += live(w) ? w->n_inflight : w->held != NULL;
    }
    atomic_store_explicit(&p->r.st_workers, n, memory_order_relaxed);
    atomic_store_explicit(&p->r.st_idle, idle, memory_order_relaxed);
    atomic_store_explicit(&p->r.st_running, running, memory_order_relaxed);
}

/* Fills the poll set (the wake eventfd, live workers' sockets and pidfds,
 * some lost workers' pidfds): its size; *next the earliest deadline. */
static size_t poll_set(pp_pool *p, double now, double *next)
{
    size_t n = 1, polled_lost = 0;
    p->pfds[0] = (struct pollfd){ p->wakefd, POLLIN, 0 };
    for (cf__pp_link *w = p->workers; w; w = w->next) {
        if (live(w)) {
            short ev = POLLIN | (w->unsent ? POLLOUT : 0);
            p->pfds[n] = (struct pollfd){ w->proc.fd, ev, 0 };
            p->pws[n++] = w;
            *next = fmin(*next, cf__pp_link_deadline(w, now));
        } else if (!w->killed) {
            *next = fmin(*next, w->kill_at);
        }
        if (w->proc.pidfd >= 0 &&
            (live(w) || polled_lost++ < MAX_POLLED_DYING)) {
            p->pfds[n] = (struct pollfd){ w->proc.pidfd, POLLIN, 0 };
            p->pws[n++] = w;
        } else if (!live(w)) {
            *next = fmin(*next, now + TICK_S);
        }
    }
    return n;
}

/* When the manager must look again, and whether a submit wakes it. */
static double next_look(pp_pool *p, double now, double next)
{
    size_t lost, n = count(p, &lost);
    bool may_grow = n < p->max_workers;
    pthread_mutex_lock(&p->r.mu);
    if (p->r.n_pending && p->can_take)
        next = now;
    else if (p->r.n_pending > p->start_above) /* now, or retry a failed one */
        next = fmin(next, p->team.starts.retry_at);
    /* Submits wake us only when we could take their task (now, or once a
     * failed start may be retried); a shutdown always does. */
    p->r.listening = p->can_take || may_grow;
    bool stop = p->r.shutdown;
    pthread_mutex_unlock(&p->r.mu);
    if (stop && lost)
        next = fmin(next, now + TICK_S); /* reaping decides when we exit */
    return next;
}

/* Polls until a worker speaks or exits, a deadline, or a wake-up; then
 * serves what happened (readable pidfds of lost workers: reap() next). */
static void wait_and_serve(pp_pool *p)
{
    double now = cf__now(), next = INFINITY;
    size_t n = poll_set(p, now, &next);
    next = next_look(p, now, next);
    int rc = poll(p->pfds, n, cf__pp_poll_ms(next, now));
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
    for (size_t i = 1; i < n; i++) {
        cf__pp_link *w = p->pws[i];
        short re = p->pfds[i].revents;
        if (!re || !live(w))
            continue; /* lost earlier in this round */
        if (p->pfds[i].fd == w->proc.pidfd) {
            cf__pp_link_gone(w, now); /* the process exited */
            continue;
        }
        bool up = !(re & (POLLIN | POLLHUP | POLLERR)) ||
                  cf__pp_link_read(w, now, false);
        if (up && (re & POLLOUT))
            cf__pp_link_flush(w, now);
    }
}

static void destroy(cf__remote *r)
{
    pp_pool *p = (pp_pool *)r;
    if (p->wakefd >= 0)
        close(p->wakefd);
    cf__pp_spec_fini(&p->team.spec);
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
    /* Not while a lost worker waits to be reaped: its reaping may be one
     * more failed start, which would give up again on later work. */
    if (cf__starts_give_up(&p->team.starts, p->workers != NULL, now))
        cf__remote_fail_list(r, cf__remote_take(r, SIZE_MAX), CF_EBROKEN,
                             p->team.starts.error);
    for (cf__pp_link *w = p->workers; w; w = w->next)
        if (live(w))
            cf__pp_link_check(w, now);
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
    size_t slots = 1 + 2 * p->max_workers + MAX_POLLED_DYING;
    p->team.owner = &pool_owner;
    p->team.o = p;
    int rc = cf__pp_spec_init(&p->team.spec, &o);
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
