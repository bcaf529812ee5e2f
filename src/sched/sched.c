/* SPDX-License-Identifier: MIT */
/*
 * sched.c - workers, finding work, sleeping and waking, and the worker
 * side of the wait protocol: blocking with compensation, spare workers.
 *
 * A worker looks for work in its own deque (newest first), then the
 * injection queue, then other workers' deques (oldest first, from a random
 * victim). Finding nothing, it counts itself "searching" and spins a few
 * rounds; then it sleeps on its own parker, listed on the sleeper stack.
 *
 * Waking (docs/design.md, "Sleeping and waking"): whoever makes work visible
 * (a push) then issues a seq_cst fence and reads `idle`; a worker going to
 * sleep first counts itself sleeping in `idle` (seq_cst) and then re-reads
 * every queue. One of the two sees the other, so a wake-up is never lost.
 * A push wakes a sleeper only when nobody is searching (a searcher will find
 * the work); a searcher that finds work and was the last one hands the
 * searching role on when more work is visible. While every worker is busy
 * (none searching or sleeping) a push makes no system call: one fence and
 * one load. Threads start lazily: a push with nobody searching or sleeping
 * starts a worker if every live one is inside a task and fewer than
 * max_workers live.
 *
 * Waits inside tasks (docs/design.md, "The wait protocol"): the wait runs
 * what it depends on inline (the pool's claim hook, fork-join's own
 * deque), never other work; otherwise the worker blocks on its parker and
 * counts itself in blocked_now, and every cap on live workers is
 * max_workers plus the blocked ones (up to max_spare), so a sleeper is woken
 * or a spare started in its place. Workers beyond max_workers plus the
 * blocked ones are surplus: one at a time they stand down (take no more
 * tasks, counted in `resting`) when their task ends, so no more than
 * worker_cap run tasks for long; a compensation wakes them first, and one
 * that rests RETIRE_AFTER retires, its record reused by the next spare.
 */
#include "sched.h"
#include "../trace.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SEARCHING_ONE ((uint64_t)1)
#define SLEEPING_ONE ((uint64_t)1 << 32)
#define SPIN_ROUNDS 64
#define RETIRE_AFTER 0.05 /* seconds a surplus worker idles before leaving */

static inline uint32_t n_searching(uint64_t idle)
{
    return (uint32_t)idle;
}
static inline uint32_t n_sleeping(uint64_t idle)
{
    return (uint32_t)(idle >> 32);
}

_Thread_local cf__worker *cf__tls_worker;

/* ---- the injection queue (Vyukov's intrusive MPSC) ---------------------- */

/* How many injected tasks are queued: popped is read first, so the
 * difference never goes below the truth by a pop it raced with; a push
 * counts once it is linked and counted, and then its pusher notifies. */
static inline size_t inj_queued(cf__sched *s, memory_order mo)
{
    size_t popped = atomic_load_explicit(&s->inj_popped, memory_order_acquire);
    size_t pushed = atomic_load_explicit(&s->inj_pushed, mo);
    /* a task linked and taken before its pusher counted it: below 0 */
    return pushed > popped ? pushed - popped : 0;
}

/* The consumer (inj_lock held) took one. */
static inline void inj_count_pop(cf__sched *s)
{
    /* release: a reader that sees the new count sees the pop */
    atomic_store_explicit(
        &s->inj_popped,
        atomic_load_explicit(&s->inj_popped, memory_order_relaxed) + 1,
        memory_order_release);
}

static void inject_push(cf__sched *s, cf__task *t)
{
    atomic_store_explicit(&t->next, NULL, memory_order_relaxed);
    /* acq_rel: orders t's fields before the link, and chains producers */
    cf__task *prev =
        atomic_exchange_explicit(&s->inj_tail, t, memory_order_acq_rel);
    /* release: the consumer that acquires prev->next sees t's fields */
    atomic_store_explicit(&prev->next, t, memory_order_release);
}

/* One consumer at a time (inj_lock held). NULL when empty, or when a
 * producer is between its swap and its link (it will finish soon). */
static cf__task *inject_pop_locked(cf__sched *s)
{
    cf__task *head = s->inj_head;
    cf__task *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &s->inj_stub) {
        if (!next)
            return NULL;
        s->inj_head = head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next) {
        s->inj_head = next;
        return head;
    }
    if (atomic_load_explicit(&s->inj_tail, memory_order_acquire) != head)
        return NULL;
    inject_push(s, &s->inj_stub);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        s->inj_head = next;
        return head;
    }
    return NULL;
}

/* Takes the oldest injected task, or NULL. (Tasks stay in the injection
 * queue until a worker runs them, so that shutdown with cancel_futures can
 * cancel every one of them at once.) */
static cf__task *inject_pop(cf__sched *s)
{
    if (inj_queued(s, memory_order_relaxed) == 0)
        return NULL;
    /* acquire: pairs with the release in atomic_flag_clear below */
    if (atomic_flag_test_and_set_explicit(&s->inj_lock, memory_order_acquire))
        return NULL;
    cf__task *t = inject_pop_locked(s);
    if (t)
        inj_count_pop(s);
    atomic_flag_clear_explicit(&s->inj_lock, memory_order_release);
    return t;
}

cf__task *cf__sched_drain(cf__sched *s)
{
    while (
        atomic_flag_test_and_set_explicit(&s->inj_lock, memory_order_acquire))
        sched_yield();
    cf__task *list = NULL, **tail = &list;
    for (;;) {
        cf__task *t = inject_pop_locked(s);
        if (!t) {
            if (atomic_load_explicit(&s->inj_tail, memory_order_acquire) !=
                    s->inj_head &&
                inj_queued(s, memory_order_relaxed) > 0) {
                sched_yield(); /* a producer is mid-push */
                continue;
            }
            break;
        }
        inj_count_pop(s);
        atomic_store_explicit(&t->next, NULL, memory_order_relaxed);
        *tail = t;
        tail = (cf__task **)&t->next;
    }
    atomic_flag_clear_explicit(&s->inj_lock, memory_order_release);
    return list;
}

/* ---- finding work ------------------------------------------------------ */

static inline uint32_t next_rand(cf__worker *w)
{
    /* xorshift32 */
    uint32_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

static cf__task *steal(cf__worker *w)
{
    cf__sched *s = w->sched;
    /* acquire: workers[0, n) are initialised */
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    if (n <= 1)
        return NULL;
    size_t start = next_rand(w) % n;
    for (int round = 0; round < 4; round++) {
        bool aborted = false;
        for (size_t i = 0; i < n; i++) {
            cf__worker *v = s->workers[(start + i) % n];
            if (v == w)
                continue;
            cf__task *t = cf__deque_steal(&v->deque);
            if (t == CF__STEAL_ABORT) {
                aborted = true;
            } else if (t) {
                cf__trace(CF__TR_STEAL, t, v->index);
                cf__count(&w->steals);
                return t;
            }
        }
        if (!aborted)
            break;
    }
    return NULL;
}

/* A task from the deque of a worker blocked in a wait: what that wait
 * depends on is most likely there, and the pool started or woke us to
 * stand in for it. NULL when there is none. */
static cf__task *steal_from_blocked(cf__worker *w)
{
    cf__sched *s = w->sched;
    /* acquire: workers[0, n) are initialised */
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        cf__worker *v = s->workers[i];
        if (v == w || !atomic_load_explicit(&v->in_wait, memory_order_relaxed))
            continue;
        cf__task *t = cf__deque_steal(&v->deque);
        if (t && t != CF__STEAL_ABORT) {
            cf__count(&w->steals);
            return t;
        }
    }
    return NULL;
}

/* Own deque first, then the deques of blocked workers, then the injection
 * queue, then stealing. *shared says whether the task came from a shared
 * place (not the own deque). */
static cf__task *find_work(cf__worker *w, bool *shared)
{
    cf__task *t = cf__deque_take(&w->deque);
    *shared = !t;
    if (!t &&
        atomic_load_explicit(&w->sched->blocked_now, memory_order_relaxed))
        t = steal_from_blocked(w);
    if (!t)
        t = inject_pop(w->sched);
    if (!t)
        t = steal(w);
    return t;
}

/* True when some queue holds work (a racy scan: see the wake protocol). */
static bool work_visible(cf__sched *s)
{
    if (inj_queued(s, memory_order_seq_cst) > 0)
        return true;
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (cf__deque_nonempty(&s->workers[i]->deque))
            return true;
    return false;
}

/* ---- sleeping and waking ----------------------------------------------- */

/* Wakes one sleeper, moving it from sleeping to searching. */
static void wake_one(cf__sched *s)
{
    pthread_mutex_lock(&s->sleep_mu);
    cf__worker *w = s->sleepers;
    if (w) {
        s->sleepers = w->next_sleeper;
        w->sleeping = false;
        atomic_fetch_add_explicit(&s->idle, SEARCHING_ONE - SLEEPING_ONE,
                                  memory_order_seq_cst);
    }
    pthread_mutex_unlock(&s->sleep_mu);
    if (w)
        cf__unpark(&w->parker);
}

static void wake_all(cf__sched *s)
{
    while (n_sleeping(atomic_load_explicit(&s->idle, memory_order_seq_cst)))
        wake_one(s);
}

/* True when every live worker but self is inside a task. */
static bool all_busy(cf__sched *s, cf__worker *self)
{
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        cf__worker *w = s->workers[i];
        /* seq_cst: pairs with begin_task's store when notify had no
         * fence (an injection) */
        if (w != self && !w->exited &&
            !atomic_load_explicit(&w->in_task, memory_order_seq_cst))
            return false;
    }
    return true;
}

static int spawn_locked(cf__sched *s);

/* How many workers may live: max_workers running tasks, plus one in place
 * of each worker blocked in a wait, up to max_spare of them. */
static size_t worker_cap(cf__sched *s)
{
    size_t b = atomic_load_explicit(&s->blocked_now, memory_order_seq_cst);
    return s->max_workers + (b < s->max_spare ? b : s->max_spare);
}

/* More workers live than worker_cap: a resting one may retire. */
static bool surplus(cf__sched *s)
{
    return atomic_load_explicit(&s->live, memory_order_relaxed) > worker_cap(s);
}

/* More workers live and not resting than worker_cap: one should rest. */
static bool should_rest(cf__sched *s)
{
    size_t live = atomic_load_explicit(&s->live, memory_order_relaxed);
    if (live <= s->max_workers)
        return false; /* no spare lives: the usual case, one load */
    size_t resting = atomic_load_explicit(&s->resting, memory_order_relaxed);
    return live > resting + worker_cap(s) &&
           !atomic_load_explicit(&s->shutdown, memory_order_relaxed);
}

#define SPAWN_BURST 8
#define SPARE_RETRY_S 0.01 /* a failed start of a spare is retried after */

/* Starts workers if fewer than cap live (and, when only_if_all_busy, no
 * live worker is between tasks: that one will find the work): one per
 * queued task, at most SPAWN_BURST at a time - each new worker that finds
 * more work behind its own starts more - so that a burst of blocking tasks
 * reaches max_workers in a few rounds rather than one thread at a time.
 * True when a start failed (no memory, no thread), not for the cap. */
static bool maybe_spawn(cf__sched *s, size_t cap, bool only_if_all_busy)
{
    if (atomic_load_explicit(&s->live, memory_order_relaxed) >= cap)
        return false;
    int rc = 0;
    pthread_mutex_lock(&s->spawn_mu);
    /* After shutdown only to stand in for blocked workers: the work
     * accepted before it must finish. */
    if ((!atomic_load_explicit(&s->shutdown, memory_order_relaxed) ||
         atomic_load_explicit(&s->blocked_now, memory_order_relaxed) > 0) &&
        (!only_if_all_busy || all_busy(s, NULL))) {
        size_t queued = inj_queued(s, memory_order_relaxed);
        size_t want = queued < 1             ? 1
                      : queued < SPAWN_BURST ? queued
                                             : SPAWN_BURST;
        while (want-- > 0 &&
               atomic_load_explicit(&s->live, memory_order_relaxed) < cap &&
               (rc = spawn_locked(s)) == 0) {
        }
        /* on failure, the live workers get to the work */
    }
    pthread_mutex_unlock(&s->spawn_mu);
    return rc != 0 && rc != CF_EINVAL;
}

/* A start failed on a path that does not retry it (a push, a searcher's
 * hand-over): a worker blocked in a wait may have left its spare to this
 * start (it saw a searcher, or woke a sleeper, and parked without a retry).
 * Unpark every blocked worker but self that parked relying on others
 * (relying): each goes round its wait once and, if its child is still
 * queued with nobody to run it, starts a spare itself and retries that
 * every SPARE_RETRY_S while it fails (helper_block). A waiter that retries
 * its own start already is left alone, so that starts that keep failing
 * do not wake every waiter at every task. A waiter that blocks after this
 * sees no searcher and starts one itself. */
static void start_failed(cf__sched *s, cf__worker *self)
{
    /* seq_cst: a waiter that relied on us raised blocked_now before it read
     * idle, and that read came before our update of idle; acquire: its
     * in_wait and relying stores are visible */
    if (atomic_load_explicit(&s->blocked_now, memory_order_seq_cst) == 0)
        return;
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        cf__worker *w = s->workers[i];
        if (w != self &&
            atomic_load_explicit(&w->in_wait, memory_order_relaxed) &&
            atomic_exchange_explicit(&w->relying, 0, memory_order_relaxed))
            cf__unpark(&w->parker); /* records outlive threads: safe */
    }
}

/* The part of cf__sched_notify (sched.h) that wakes or starts a worker:
 * nobody searches, and a sleeper or room for a worker may be there. */
void cf__sched_notify_slow(cf__sched *s, uint64_t idle)
{
    if (n_sleeping(idle) > 0)
        wake_one(s);
    else if (maybe_spawn(s, worker_cap(s), true)) /* no-op: live >= cap */
        start_failed(s, cf__tls_worker);
}

/* More shared work is visible and nobody searches for it: wake a sleeper,
 * or start a worker. Pushes made while a worker was between tasks or
 * searching relied on that worker; this passes the work on, one worker at
 * a time, so a burst of blocking tasks still gets max_workers threads.
 * True when a worker was wanted and could not be started. */
static bool spread(cf__sched *s, uint64_t idle, size_t cap)
{
    if (!work_visible(s))
        return false;
    if (n_sleeping(idle) > 0) {
        wake_one(s);
        return false;
    }
    return maybe_spawn(s, cap, false);
}

/* A searcher found work: it stops searching, and the last one passes the
 * searching role on when more work is visible. */
static void stop_searching(cf__sched *s)
{
    uint64_t old = atomic_fetch_sub_explicit(&s->idle, SEARCHING_ONE,
                                             memory_order_seq_cst);
    if (n_searching(old) == 1 && spread(s, old - SEARCHING_ONE, worker_cap(s)))
        start_failed(s, cf__tls_worker);
}

/* Puts the sleeper on the stack and counts it sleeping (and no longer
 * searching, if it was). */
static void sleep_enter(cf__sched *s, cf__worker *w, bool searching)
{
    pthread_mutex_lock(&s->sleep_mu);
    w->sleeping = true;
    w->next_sleeper = s->sleepers;
    s->sleepers = w;
    atomic_fetch_add_explicit(
        &s->idle, searching ? SLEEPING_ONE - SEARCHING_ONE : SLEEPING_ONE,
        memory_order_seq_cst);
    pthread_mutex_unlock(&s->sleep_mu);
}

/* Takes the sleeper off the stack if it is still there: true if it was,
 * false if a waker took it off. Either way it is counted searching. */
static bool sleep_leave(cf__sched *s, cf__worker *w)
{
    pthread_mutex_lock(&s->sleep_mu);
    bool was = w->sleeping;
    if (was) {
        for (cf__worker **pp = &s->sleepers; *pp; pp = &(*pp)->next_sleeper) {
            if (*pp == w) {
                *pp = w->next_sleeper;
                break;
            }
        }
        w->sleeping = false;
        atomic_fetch_add_explicit(&s->idle, SEARCHING_ONE - SLEEPING_ONE,
                                  memory_order_seq_cst);
    }
    pthread_mutex_unlock(&s->sleep_mu);
    return was;
}

static bool may_exit(cf__sched *s)
{
    return atomic_load_explicit(&s->shutdown, memory_order_seq_cst) &&
           atomic_load_explicit(&s->submitting, memory_order_seq_cst) == 0 &&
           !work_visible(s);
}

/* A sleeper on the stack parks until woken or the deadline (NULL: none).
 * Returns with it counted searching: false when the deadline passed with
 * nobody waking it. */
static bool park_sleeper(cf__sched *s, cf__worker *w, const cf__deadline *until)
{
    for (;;) {
        if (cf__park(&w->parker, until) == CF_ETIMEDOUT &&
            cf__deadline_passed(until))
            return !sleep_leave(s, w);
        pthread_mutex_lock(&s->sleep_mu);
        bool still = w->sleeping;
        pthread_mutex_unlock(&s->sleep_mu);
        if (!still)
            return true; /* the waker counted us searching */
    }
}

/* A searching worker with nothing found: sleeps until woken, or the pool's
 * idle_timeout (docs/design.md, "Idle workers"). Returns with the worker
 * counted searching again: true when it slept idle_timeout through with
 * nobody waking it (it may retire). */
static bool go_to_sleep(cf__sched *s, cf__worker *w)
{
    sleep_enter(s, w, true);
    /* seq_cst (the RMW in sleep_enter): re-scan after counting ourselves */
    if (work_visible(s) ||
        atomic_load_explicit(&s->shutdown, memory_order_seq_cst)) {
        sleep_leave(s, w);
        return false;
    }
    cf__deadline d;
    bool timed = s->idle_timeout > 0;
    if (timed)
        cf__deadline_from(s->idle_timeout, &d);
    cf__trace(CF__TR_SLEEP_BEGIN, NULL, 0);
    bool woken = park_sleeper(s, w, timed ? &d : NULL);
    cf__trace(CF__TR_SLEEP_END, NULL, !woken);
    return !woken;
}

/* A surplus worker (should_rest) stands down: it sleeps without taking
 * work, woken first by a compensation, until RETIRE_AFTER. Queued work is
 * left to the others - worker_cap of them run - but if it was the last
 * searcher it passes that role on first. Returns counted searching: true
 * if it should retire now. */
static bool rest(cf__sched *s, cf__worker *w)
{
    atomic_fetch_add_explicit(&s->resting, 1, memory_order_relaxed);
    uint64_t idle = atomic_fetch_sub_explicit(&s->idle, SEARCHING_ONE,
                                              memory_order_seq_cst) -
                    SEARCHING_ONE;
    if (n_searching(idle) == 0 && n_sleeping(idle) > 0 && work_visible(s))
        wake_one(s);
    sleep_enter(s, w, false);
    cf__deadline until;
    cf__deadline_from(RETIRE_AFTER, &until);
    bool woken = park_sleeper(s, w, &until);
    atomic_fetch_sub_explicit(&s->resting, 1, memory_order_relaxed);
    return !woken && surplus(s);
}

/* A surplus worker that rested RETIRE_AFTER, or (idle) any worker that
 * slept the pool's idle_timeout through: true if it may leave (then it is
 * already out of live and marked exited: worker_main does not count it
 * out again). Under spawn_mu it leaves tentatively - out of live, marked
 * exited, no longer searching - and then looks once more; if work is
 * visible, or an external submit is in flight, it comes back. So a push
 * that relied on it as a searcher is seen here (the pairing of notify), and
 * a push that saw it no longer searching also sees it out of live (both
 * seq_cst, live first) and out of all_busy (exited, under spawn_mu): that
 * pusher starts a worker in its place. (It used to stay in live and not
 * exited until it was gone, so such a push started nobody and relied on a
 * worker that was leaving: its task waited for the next push.) A submit
 * that found it live skipped starting a worker itself (cf__sched_push): if
 * the start the submit's notify then tries fails, nobody is left for its
 * task, so the worker stays while any submit is in flight. */
static bool retire(cf__sched *s, cf__worker *w, bool idle)
{
    if (atomic_load_explicit(&s->shutdown, memory_order_relaxed) ||
        (!idle && !surplus(s)))
        return false;
    pthread_mutex_lock(&s->spawn_mu);
    bool may = idle || surplus(s);
    w->exited = true;
    atomic_fetch_sub_explicit(&s->live, 1, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&s->idle, SEARCHING_ONE, memory_order_seq_cst);
    /* seq_cst, after leaving live: a submit that found us live is counted
     * in submitting already (its pairing in cf__sched_push). Read before
     * the look: a submit that has finished meanwhile queued its task
     * first, and the look sees it. */
    if (may &&
        atomic_load_explicit(&s->submitting, memory_order_seq_cst) == 0 &&
        !work_visible(s)) {
        pthread_mutex_unlock(&s->spawn_mu);
        return true;
    }
    atomic_fetch_add_explicit(&s->idle, SEARCHING_ONE, memory_order_seq_cst);
    atomic_fetch_add_explicit(&s->live, 1, memory_order_seq_cst);
    w->exited = false;
    pthread_mutex_unlock(&s->spawn_mu);
    return false;
}

/* The worker is about to run a task it took: it counts as busy from here,
 * before it checks for more work to pass on. The seq_cst store pairs with
 * the fence in notify: a pusher that still saw this worker not busy (and so
 * started no thread) pushed before this worker's check, which sees it. */
static void begin_task(cf__worker *w)
{
    atomic_store_explicit(&w->in_task, 1, memory_order_seq_cst);
}

/* ---- waits inside tasks (docs/design.md, "The wait protocol") ----------- */

static cf__worker *worker_of(cf__helper *h)
{
    return (cf__worker *)((char *)h - offsetof(cf__worker, helper));
}

static bool helper_run_future(cf__helper *h, cf_future *f)
{
    cf__worker *w = worker_of(h);
    cf__sched *s = w->sched;
    return s->hooks.claim && s->hooks.claim(w, f, s->hooks.ctx);
}

/* Nothing the wait depends on can run here: block, and let another worker
 * run tasks in this one's place. The caller re-checks its condition after
 * every return, so a stale or spurious unpark costs one loop. */
static void helper_block(cf__helper *h, const cf__deadline *deadline,
                         bool first)
{
    cf__worker *w = worker_of(h);
    cf__sched *s = w->sched;
    if (first)
        cf__count(&w->blocked);
    /* seq_cst: raises worker_cap before we look for work to hand over;
     * a pusher that read the old cap pushed before our scan, which sees
     * its task (the pairing of notify) */
    atomic_store_explicit(&w->in_wait, 1, memory_order_relaxed);
    /* relying on others until we retry a failed start ourselves below:
     * then start_failed leaves us alone */
    atomic_store_explicit(&w->relying, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->blocked_now, 1, memory_order_seq_cst);
    uint64_t idle = atomic_load_explicit(&s->idle, memory_order_seq_cst);
    /* A spare that could not start (no memory, no thread) is tried again
     * after a short sleep: the wait comes back here. */
    cf__deadline retry;
    bool own = n_searching(idle) == 0 && spread(s, idle, worker_cap(s));
    if (own)
        atomic_store_explicit(&w->relying, 0, memory_order_relaxed);
    if (own && cf__deadline_from(SPARE_RETRY_S, &retry) == 0 &&
        (cf__deadline_forever(deadline) ||
         cf__deadline_left(&retry) < cf__deadline_left(deadline)))
        deadline = &retry;
    cf__trace(CF__TR_WAIT_BEGIN, NULL, 0);
    cf__park(&w->parker, deadline);
    cf__trace(CF__TR_WAIT_END, NULL, 0);
    atomic_fetch_sub_explicit(&s->blocked_now, 1, memory_order_seq_cst);
    atomic_store_explicit(&w->in_wait, 0, memory_order_relaxed);
}

void cf__sched_inject(cf__sched *s, cf__task *t)
{
    inject_push(s, t);
    atomic_fetch_add_explicit(&s->inj_pushed, 1, memory_order_seq_cst);
    cf__sched_notify(s, false);
}

cf__task *cf__worker_steal_back(cf__worker *w, cf__worker *thief, int64_t base,
                                uint64_t epoch)
{
    /* acquire: pairs with the release store of epoch after the frame */
    if (atomic_load_explicit(&thief->epoch, memory_order_acquire) != epoch)
        return NULL;
    cf__task *t = cf__deque_steal_from(&thief->deque, base);
    if (!t || t == CF__STEAL_ABORT)
        return NULL;
    /* The frame may have ended between the check and the steal, and t be
     * later work of the thief. If so, t was pushed after the epoch moved
     * (our acquire of bottom in the steal orders that store before this
     * load): hand it to the pool instead of running it here. */
    if (atomic_load_explicit(&thief->epoch, memory_order_acquire) != epoch) {
        cf__sched_inject(w->sched, t);
        return NULL;
    }
    cf__trace(CF__TR_STEAL, t, thief->index);
    cf__count(&w->steals);
    return t;
}

/* Records where the calling thread's stack runs low in w. */
static void find_stack(cf__worker *w)
{
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) != 0)
            lo = NULL;
        pthread_attr_destroy(&attr);
    }
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    /* Unknown: assume the size we asked for, less a margin. */
    uintptr_t stack_lo =
        lo ? (uintptr_t)lo : here - (CF__WORKER_STACK - ((size_t)64 << 10));
    w->stack_limit = stack_lo + CF__STACK_RESERVE;
}

/* ---- workers ------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    cf__worker *w = arg;
    cf__sched *s = w->sched;
    /* The spawner publishes this worker (nworkers) before it lets go of
     * spawn_mu: wait for that, so that every scan for work, ours included,
     * covers our deque. */
    pthread_mutex_lock(&s->spawn_mu);
    pthread_mutex_unlock(&s->spawn_mu);
    cf__tls_worker = w;
    find_stack(w);
    cf__parker_set_self(&w->parker);
    cf__helper *outer = cf__helper_swap(&w->helper);
    cf__trace(CF__TR_WORKER_START, NULL, w->index);
    if (s->hooks.on_start)
        s->hooks.on_start(w, s->hooks.ctx);

    /* Here the worker is counted searching. */
    bool retiring = false, rested = false;
    for (;;) {
        /* A rest ends with at least one search: the wake-up may have been
         * meant for this worker's search (a pusher woke the top sleeper),
         * and the work seen by a refused retirement must get a worker. */
        if (!rested && should_rest(s)) {
            if (rest(s, w) && (retiring = retire(s, w, false)))
                break;
            rested = true;
            continue;
        }
        rested = false;
        cf__task *t = NULL;
        bool shared;
        /* Spin only while no more workers search than there are CPUs; the
         * rest look once and go to sleep, so that a wide pool (100 workers
         * for blocking tasks) does not burn the CPUs its busy workers need. */
        uint64_t idle = atomic_load_explicit(&s->idle, memory_order_relaxed);
        int spins = n_searching(idle) <= s->ncpu ? SPIN_ROUNDS : 1;
        for (int i = 0; i < spins && !t; i++) {
            t = find_work(w, &shared);
            if (!t && i > SPIN_ROUNDS / 2)
                sched_yield();
            else if (!t)
                cf__cpu_relax();
        }
        if (t) {
            begin_task(w);
            stop_searching(s);
            for (;;) {
                cf__trace(CF__TR_TASK_BEGIN, NULL, 0);
                t->exec(t, w, NULL);
                cf__trace(CF__TR_TASK_END, NULL, 0);
                cf__worker_leave(w);
                if (should_rest(s) || !(t = find_work(w, &shared)))
                    break;
                begin_task(w);
                /* Not searching, we took it: if nobody searches, make sure
                 * the rest of the work gets a worker. */
                uint64_t idle =
                    atomic_load_explicit(&s->idle, memory_order_seq_cst);
                if (n_searching(idle) == 0 && spread(s, idle, worker_cap(s)))
                    start_failed(s, w);
            }
            atomic_fetch_add_explicit(&s->idle, SEARCHING_ONE,
                                      memory_order_seq_cst);
            continue;
        }
        if (may_exit(s))
            break;
        if (go_to_sleep(s, w) && (retiring = retire(s, w, true)))
            break;
    }
    cf__trace(CF__TR_WORKER_EXIT, NULL, w->index);
    if (!retiring)
        atomic_fetch_sub_explicit(&s->idle, SEARCHING_ONE,
                                  memory_order_seq_cst);

    pthread_mutex_lock(&s->spawn_mu);
    w->exited = w->left = true;
    bool detach = s->orphaned;
    if (retiring && !w->joined) {
        /* Nobody joins a retired spare: it detaches, and its record is
         * free for the next spare (spawn_locked). */
        w->joined = w->retired = detach = true;
    }
    /* Detached: nobody may join it. An orphaning release_workers that
     * dropped spawn_mu to join another worker comes back to this one. */
    if (detach)
        w->joined = true;
    atomic_store_explicit(&w->in_task, 0, memory_order_relaxed);
    /* A retiring worker left live in retire already. */
    if (retiring
            ? atomic_load_explicit(&s->live, memory_order_relaxed) == 0
            : atomic_fetch_sub_explicit(&s->live, 1, memory_order_relaxed) == 1)
        pthread_cond_broadcast(&s->exit_cv);
    pthread_mutex_unlock(&s->spawn_mu);
    cf__helper_swap(outer);
    cf__parker_set_self(NULL);
    cf__tls_worker = NULL;
    if (detach)
        cf__thread_detach_self();
    if (s->hooks.release)
        s->hooks.release(s->hooks.ctx);
    return NULL;
}

/* A new worker record at index idx (not yet published): NULL on ENOMEM. */
static cf__worker *worker_new(cf__sched *s, size_t idx)
{
    cf__worker *w = cf__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (cf__deque_init(&w->deque, 256)) {
        cf__free(w);
        return NULL;
    }
    w->sched = s;
    w->index = idx;
    w->rng = (uint32_t)(idx * 2654435761u) | 1u;
    w->helper.run_future = helper_run_future;
    w->helper.block = helper_block;
    return w;
}

/* Starts one worker (spawn_mu held), in the record of a retired spare if
 * there is one: 0, CF_EINVAL past max_workers + max_spare, CF_ENOMEM. */
static int spawn_locked(cf__sched *s)
{
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_relaxed);
    size_t idx = 0;
    while (idx < n && !s->workers[idx]->retired)
        idx++;
    bool fresh = idx == n;
    if (fresh && idx >= s->max_workers + s->max_spare)
        return CF_EINVAL;
    cf__worker *w = fresh ? worker_new(s, idx) : s->workers[idx];
    if (!w)
        return CF_ENOMEM;
    /* "<prefix>_<index>", whole however long the prefix */
    size_t len = strlen(s->prefix) + 24;
    char *name = cf__malloc(len);
    if (!name) {
        if (fresh) {
            cf__deque_destroy(&w->deque);
            cf__free(w);
        }
        return CF_ENOMEM;
    }
    snprintf(name, len, "%s_%zu", s->prefix, idx);
    bool spare =
        atomic_load_explicit(&s->live, memory_order_relaxed) >= s->max_workers;
    w->exited = w->joined = w->retired = w->left = false;
    if (fresh)
        s->workers[idx] = w; /* published below, by nworkers */
    cf_thread_options o = { .name = name, .stack_size = CF__WORKER_STACK };
    if (s->hooks.retain)
        s->hooks.retain(s->hooks.ctx);
    sigset_t mask;
    if (!s->keep_signal_mask)
        cf__signals_block(&mask);
    int rc = cf_thread_start(&w->thread, worker_main, w, &o);
    if (!s->keep_signal_mask)
        cf__signals_restore(&mask);
    cf__free(name);
    if (rc) {
        /* The spawner holds a reference of its own: this is not the last. */
        if (s->hooks.release)
            s->hooks.release(s->hooks.ctx);
        if (fresh) {
            s->workers[idx] = NULL;
            cf__deque_destroy(&w->deque);
            cf__free(w);
        } else {
            w->exited = w->joined = w->retired = w->left = true;
        }
        return rc;
    }
    /* Counted live and searching only now that it runs: a submit that
     * finds it live counts on it (cf__sched_push), so a start that may
     * still fail must not be seen. The thread waits for spawn_mu before it
     * reads or changes anything. */
    atomic_fetch_add_explicit(&s->idle, SEARCHING_ONE, memory_order_seq_cst);
    atomic_fetch_add_explicit(&s->live, 1, memory_order_relaxed);
    if (spare)
        atomic_fetch_add_explicit(&s->spares, 1, memory_order_relaxed);
    /* release: thieves that read nworkers see the record */
    if (fresh)
        atomic_store_explicit(&s->nworkers, idx + 1, memory_order_release);
    return 0;
}

/* ---- the scheduler --------------------------------------------------------- */

int cf__sched_init(cf__sched *s, size_t max_workers, const char *prefix,
                   const cf__sched_hooks *hooks)
{
    memset(s, 0, sizeof *s);
    s->max_spare = CF__MAX_SPARE;
    s->workers = cf__calloc(max_workers + s->max_spare, sizeof *s->workers);
    s->prefix = cf__strdup(prefix);
    if (!s->workers || !s->prefix) {
        cf__free(s->workers);
        cf__free(s->prefix);
        return CF_ENOMEM;
    }
    s->max_workers = max_workers;
    s->ncpu = (unsigned)cf_cpu_count();
    s->inj_head = &s->inj_stub;
    atomic_init(&s->inj_tail, &s->inj_stub);
    atomic_flag_clear(&s->inj_lock);
    if (hooks)
        s->hooks = *hooks;
    pthread_mutex_init(&s->sleep_mu, NULL);
    pthread_mutex_init(&s->spawn_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->exit_cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void cf__sched_destroy(cf__sched *s)
{
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        cf__deque_destroy(&s->workers[i]->deque);
        cf__free(s->workers[i]);
    }
    cf__free(s->workers);
    cf__free(s->prefix);
    pthread_mutex_destroy(&s->sleep_mu);
    pthread_mutex_destroy(&s->spawn_mu);
    pthread_cond_destroy(&s->exit_cv);
}

int cf__sched_push(cf__sched *s, cf__task *t)
{
    cf__worker *w = cf__tls_worker;
    if (w && w->sched == s)
        return cf__worker_push(w, t);
    /* seq_cst: either shutdown sees us in flight, or we see shutdown */
    atomic_fetch_add_explicit(&s->submitting, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&s->shutdown, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&s->submitting, 1, memory_order_seq_cst);
        return CF_ESHUTDOWN;
    }
    /* No worker alive (none started yet, or all retired idle): start one
     * here, so that a failure to start fails this submit rather than
     * leaving its task with nobody to run it. seq_cst: a worker that we
     * find live does not retire until we are done (it reads submitting
     * after it leaves live: retire), and one that starts is counted live
     * only once it runs (spawn_locked). */
    if (atomic_load_explicit(&s->live, memory_order_seq_cst) == 0) {
        pthread_mutex_lock(&s->spawn_mu);
        int rc = atomic_load_explicit(&s->live, memory_order_relaxed) == 0
                     ? spawn_locked(s)
                     : 0;
        pthread_mutex_unlock(&s->spawn_mu);
        if (rc) {
            atomic_fetch_sub_explicit(&s->submitting, 1, memory_order_seq_cst);
            return rc;
        }
    }
    inject_push(s, t);
    atomic_fetch_add_explicit(&s->inj_pushed, 1, memory_order_seq_cst);
    cf__sched_notify(s, false);
    /* release: a worker that sees 0 in may_exit sees our task queued */
    atomic_fetch_sub_explicit(&s->submitting, 1, memory_order_seq_cst);
    return 0;
}

void cf__sched_shutdown(cf__sched *s)
{
    atomic_store_explicit(&s->shutdown, true, memory_order_seq_cst);
    /* A submit that came before is finished before we go on (its task
     * queued, the worker it may start counted), so that a join or wait
     * after this covers it; submitters hold no lock we take meanwhile. */
    while (atomic_load_explicit(&s->submitting, memory_order_seq_cst) > 0)
        sched_yield();
    wake_all(s);
}

/* Joins every worker not joined yet; orphan: only those that have left,
 * the others detach themselves as they leave (they read orphaned under
 * spawn_mu when they exit). */
static void release_workers(cf__sched *s, bool orphan)
{
    pthread_mutex_lock(&s->spawn_mu);
    if (orphan)
        s->orphaned = true;
    /* Spares may start while we join (standing in for blocked workers), so
     * look again from the start after every join. */
    for (size_t i = 0;
         i < atomic_load_explicit(&s->nworkers, memory_order_relaxed); i++) {
        cf__worker *w = s->workers[i];
        if (w->joined)
            continue;
        w->joined = true;
        /* Not exited: a retiring worker is marked exited in retire, before
         * it leaves, and it detaches itself once it sees orphaned. */
        if (orphan && !w->left)
            continue;
        pthread_mutex_unlock(&s->spawn_mu);
        cf_thread_join(w->thread, CF_FOREVER, NULL);
        pthread_mutex_lock(&s->spawn_mu);
        i = (size_t)-1;
    }
    pthread_mutex_unlock(&s->spawn_mu);
}

void cf__sched_join(cf__sched *s)
{
    release_workers(s, false);
}

void cf__sched_orphan(cf__sched *s)
{
    release_workers(s, true);
}

int cf__sched_wait(cf__sched *s, const cf__deadline *deadline)
{
    int rc = 0;
    pthread_mutex_lock(&s->spawn_mu);
    while (rc == 0 && atomic_load_explicit(&s->live, memory_order_relaxed) > 0)
        rc = cf__deadline_forever(deadline)
                 ? pthread_cond_wait(&s->exit_cv, &s->spawn_mu)
                 : pthread_cond_timedwait(&s->exit_cv, &s->spawn_mu, deadline);
    pthread_mutex_unlock(&s->spawn_mu);
    return rc ? CF_ETIMEDOUT : 0;
}

void cf__sched_stats_get(cf__sched *s, cf__sched_stats *out)
{
    memset(out, 0, sizeof *out);
    /* Husks leave the queues while we count: read how many left before
     * counting the queues, and how many there were after, so that a husk
     * taken off meanwhile never counts as queued. */
    size_t gone =
        atomic_load_explicit(&s->home.husks_gone, memory_order_seq_cst);
    uint64_t idle = atomic_load_explicit(&s->idle, memory_order_relaxed);
    out->workers = atomic_load_explicit(&s->live, memory_order_relaxed);
    out->idle = n_searching(idle) + n_sleeping(idle);
    size_t queued = inj_queued(s, memory_order_seq_cst);
    size_t n = atomic_load_explicit(&s->nworkers, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        cf__worker *w = s->workers[i];
        int64_t b =
            atomic_load_explicit(&w->deque.bottom, memory_order_relaxed);
        int64_t t = atomic_load_explicit(&w->deque.top, memory_order_relaxed);
        queued += b > t ? (size_t)(b - t) : 0;
        out->running += atomic_load_explicit(&w->in_task, memory_order_relaxed);
        out->completed +=
            atomic_load_explicit(&w->completed, memory_order_relaxed);
        out->failed += atomic_load_explicit(&w->failed, memory_order_relaxed);
        out->steals += atomic_load_explicit(&w->steals, memory_order_relaxed);
        out->inlined += atomic_load_explicit(&w->inlined, memory_order_relaxed);
        out->blocked += atomic_load_explicit(&w->blocked, memory_order_relaxed);
    }
    /* A cancelled task stays queued until a worker drops it, and so does
     * the entry of one a wait ran: neither counts as queued. A cancel
     * counts as one from the cancel on. */
    size_t husks = atomic_load_explicit(&s->home.husks, memory_order_seq_cst);
    size_t still = husks > gone ? husks - gone : 0;
    out->queued = queued > still ? queued - still : 0;
    out->cancelled =
        atomic_load_explicit(&s->home.cancelled, memory_order_relaxed);
    out->spares = atomic_load_explicit(&s->spares, memory_order_relaxed);
}
