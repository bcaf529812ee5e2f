/* SPDX-License-Identifier: MIT */
/*
 * wait.c - waiting on many futures (cf_wait, cf_as_completed) and the
 * blocking loop every wait of the future layer shares (cf__block_until).
 *
 * A wait links one watch per future; the watch's notify (run under the
 * future's mutex when it becomes done) counts the completion and unparks
 * the waiting thread. The waiter re-checks its condition after every wake,
 * so extra or stale wake-ups are harmless, and it unlinks every watch before
 * returning, so no notify can touch it afterwards.
 *
 * as_completed keeps its watches linked between calls, and the calls may
 * come from different threads: the parker to wake is published under the
 * iterator's own mutex and cleared before each call returns.
 *
 * In a pool worker (cf__helper_current() != NULL) an untimed wait first
 * runs, inline, the awaited tasks that have not started; then it blocks and
 * the pool puts another worker in its place, so nested waits never deadlock
 * the pool and never run unrelated work (docs/design.md, "The wait
 * protocol").
 */
#include "future.h"

#include <stdlib.h>
#include <string.h>

int cf__block_until(bool (*done)(void *ctx), void *ctx,
                    bool (*help)(void *ctx, cf__helper *h),
                    const cf__deadline *deadline)
{
    cf__helper *h = cf__helper_current();
    /* Only an untimed wait runs its dependencies inline: a task run here
     * may take longer than any timeout, and a timed wait must return
     * within its own (a poll at once). */
    bool may_help = h && help && cf__deadline_forever(deadline);
    bool first = true;
    for (;;) {
        if (done(ctx))
            return 0;
        if (cf__deadline_passed(deadline))
            return done(ctx) ? 0 : CF_ETIMEDOUT;
        if (may_help && help(ctx, h))
            continue;
        if (h) {
            h->block(h, deadline, first);
            first = false;
        } else {
            cf__park(cf__parker_self(), deadline);
        }
    }
}

/* Runs the first awaited future of fs[*from..n) that has not started. Any
 * one is a dependency: FIRST_COMPLETED ends with it, the others need it.
 * *from moves past each future looked at: one that has started is never
 * pending again, and one this wait could not claim (another pool's, a
 * promise) never becomes claimable by it. A wait on many stays linear. */
static bool run_one_of(cf_future *const *fs, size_t n, size_t *from,
                       cf__helper *h)
{
    while (*from < n) {
        cf_future *f = fs[(*from)++];
        if (cf__future_state(f) == CF__PENDING && h->run_future(h, f))
            return true;
    }
    return false;
}

/* ---- cf_wait --------------------------------------------------------- */

typedef struct waiter {
    cf__parker *parker;
    cf_future *const *fs;
    size_t n;
    cf_return_when when;
    size_t from; /* run_one_of's start */
    _Atomic size_t ndone, nfailed;
} waiter;

typedef struct wait_watch {
    cf__watch watch; /* first: a cf__watch * is a wait_watch * */
    waiter *owner;
} wait_watch;

static void count_done(waiter *w, cf_future *f)
{
    if (cf__future_failed(f))
        atomic_fetch_add_explicit(&w->nfailed, 1, memory_order_relaxed);
    /* release: pairs with the acquire in wait_satisfied */
    atomic_fetch_add_explicit(&w->ndone, 1, memory_order_release);
}

static void wait_notify(cf__watch *watch, cf_future *f)
{
    waiter *w = ((wait_watch *)watch)->owner;
    count_done(w, f);
    cf__unpark(w->parker);
}

static bool wait_satisfied(void *p)
{
    waiter *w = p;
    size_t done = atomic_load_explicit(&w->ndone, memory_order_acquire);
    switch (w->when) {
    case CF_FIRST_COMPLETED: return done > 0;
    case CF_FIRST_EXCEPTION:
        return done == w->n ||
               atomic_load_explicit(&w->nfailed, memory_order_relaxed) > 0;
    default: return done == w->n;
    }
}

static bool wait_help(void *p, cf__helper *h)
{
    waiter *w = p;
    return run_one_of(w->fs, w->n, &w->from, h);
}

int cf_wait(cf_future *const *fs, size_t n, double timeout, cf_return_when when)
{
    cf__deadline d;
    if ((n && !fs) || cf__deadline_from(timeout, &d) ||
        (when != CF_FIRST_COMPLETED && when != CF_FIRST_EXCEPTION &&
         when != CF_ALL_COMPLETED))
        return CF_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return CF_EINVAL;
    if (n == 0)
        return 0;
    waiter w = { .parker = cf__parker_self(), .fs = fs, .n = n, .when = when };
    /* Fast path: the condition may hold already (no allocation). */
    for (size_t i = 0; i < n; i++)
        if (cf_future_done(fs[i]))
            count_done(&w, fs[i]);
    if (wait_satisfied(&w))
        return 0;
    if (cf__deadline_passed(&d))
        return CF_ETIMEDOUT;
    wait_watch *ws = cf__calloc(n, sizeof *ws);
    if (!ws)
        return CF_ENOMEM;
    atomic_store_explicit(&w.ndone, 0, memory_order_relaxed);
    atomic_store_explicit(&w.nfailed, 0, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        ws[i].owner = &w;
        ws[i].watch.notify = wait_notify;
        if (!cf__future_watch(fs[i], &ws[i].watch))
            count_done(&w, fs[i]);
    }
    int rc = cf__block_until(wait_satisfied, &w, wait_help, &d);
    for (size_t i = 0; i < n; i++)
        cf__future_unwatch(fs[i], &ws[i].watch);
    cf__free(ws);
    return rc;
}

/* ---- cf_as_completed ------------------------------------------------- */

typedef struct ac_watch {
    cf__watch watch; /* first: a cf__watch * is an ac_watch * */
    cf_as_completed *it;
    cf_future *f;
    struct ac_watch *ready_next;
} ac_watch;

struct cf_as_completed {
    size_t n; /* distinct futures */
    size_t yielded;
    cf__deadline deadline;
    ac_watch *watches; /* n of them */
    ac_watch *local;   /* ready, in completion order, owned by the caller */
    _Atomic(ac_watch *) ready; /* pushed by notify (newest first) */
    cf__mutex mu;              /* guards parker */
    cf__parker *parker;        /* the thread inside next(), or NULL */
};

static void ac_notify(cf__watch *watch, cf_future *f)
{
    (void)f;
    ac_watch *w = (ac_watch *)watch;
    cf_as_completed *it = w->it;
    ac_watch *head = atomic_load_explicit(&it->ready, memory_order_relaxed);
    do {
        w->ready_next = head;
        /* release: the consumer's acquire exchange sees ready_next */
    } while (!atomic_compare_exchange_weak_explicit(
        &it->ready, &head, w, memory_order_release, memory_order_relaxed));
    cf__mutex_lock(&it->mu);
    if (it->parker)
        cf__unpark(it->parker);
    cf__mutex_unlock(&it->mu);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (cf_future *const *)a;
    uintptr_t y = (uintptr_t) * (cf_future *const *)b;
    return (x > y) - (x < y);
}

int cf_as_completed_new(cf_as_completed **out, cf_future *const *fs, size_t n,
                        double timeout)
{
    cf__deadline d;
    if (!out || (n && !fs) || cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return CF_EINVAL;
    cf_as_completed *it = cf__calloc(1, sizeof *it);
    cf_future **uniq = n ? cf__malloc(n * sizeof *uniq) : NULL;
    ac_watch *ws = n ? cf__calloc(n, sizeof *ws) : NULL;
    if (!it || (n && (!uniq || !ws))) {
        cf__free(it);
        cf__free(uniq);
        cf__free(ws);
        return CF_ENOMEM;
    }
    if (n) {
        memcpy(uniq, fs, n * sizeof *uniq);
        qsort(uniq, n, sizeof *uniq, cmp_ptr);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || uniq[m - 1] != uniq[i])
            uniq[m++] = uniq[i];
    it->n = m;
    it->deadline = d;
    it->watches = ws;
    /* Done ones first, in input order; then the rest as they complete. */
    ac_watch **tail = &it->local;
    for (size_t i = 0; i < m; i++) {
        ws[i].it = it;
        ws[i].f = uniq[i];
        ws[i].watch.notify = ac_notify;
        cf_future_retain(uniq[i]);
        if (!cf__future_watch(uniq[i], &ws[i].watch)) {
            *tail = &ws[i];
            tail = &ws[i].ready_next;
        }
    }
    *tail = NULL;
    cf__free(uniq);
    *out = it;
    return 0;
}

static bool ac_has_ready(void *p)
{
    cf_as_completed *it = p;
    return atomic_load_explicit(&it->ready, memory_order_relaxed) != NULL;
}

/* The earlier of two deadlines. */
static const cf__deadline *earlier(const cf__deadline *a, const cf__deadline *b)
{
    if (cf__deadline_forever(a))
        return b;
    if (cf__deadline_forever(b))
        return a;
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? a : b;
    return a->tv_nsec <= b->tv_nsec ? a : b;
}

static int ac_next(cf_as_completed *it, const cf__deadline *deadline,
                   cf_future **f);

/* The futures not yet yielded are what the iterator waits on. */
static bool ac_help(void *p, cf__helper *h)
{
    cf_as_completed *it = p;
    for (size_t i = 0; i < it->n; i++) {
        cf_future *f = it->watches[i].f;
        if (cf__future_state(f) == CF__PENDING && h->run_future(h, f))
            return true;
    }
    return false;
}

int cf_as_completed_next(cf_as_completed *it, cf_future **f)
{
    return it ? ac_next(it, &it->deadline, f) : CF_EINVAL;
}

int cf_as_completed_next_for(cf_as_completed *it, double timeout, cf_future **f)
{
    cf__deadline d;
    if (!it || cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    return ac_next(it, earlier(&d, &it->deadline), f);
}

static int ac_next(cf_as_completed *it, const cf__deadline *deadline,
                   cf_future **f)
{
    if (it->yielded == it->n)
        return CF_EOF;
    if (!it->local) {
        cf__mutex_lock(&it->mu);
        it->parker = cf__parker_self();
        cf__mutex_unlock(&it->mu);
        int rc = cf__block_until(ac_has_ready, it, ac_help, deadline);
        cf__mutex_lock(&it->mu);
        it->parker = NULL;
        cf__mutex_unlock(&it->mu);
        if (rc)
            return rc;
        /* acquire: pairs with the release CAS in ac_notify */
        ac_watch *batch =
            atomic_exchange_explicit(&it->ready, NULL, memory_order_acquire);
        /* The stack is newest first: reverse it into completion order. */
        for (ac_watch *w = batch, *next; w; w = next) {
            next = w->ready_next;
            w->ready_next = it->local;
            it->local = w;
        }
    }
    ac_watch *w = it->local;
    it->local = w->ready_next;
    it->yielded++;
    if (f)
        *f = w->f;
    return 0;
}

void cf_as_completed_free(cf_as_completed *it)
{
    if (!it)
        return;
    for (size_t i = 0; i < it->n; i++) {
        cf__future_unwatch(it->watches[i].f, &it->watches[i].watch);
        cf_future_release(it->watches[i].f);
    }
    cf__free(it->watches);
    cf__free(it);
}
