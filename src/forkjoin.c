/* SPDX-License-Identifier: MIT */
/*
 * forkjoin.c - cf_join, cf_parallel_for and task groups, on the
 * work-stealing scheduler of a thread pool.
 *
 * cf_join inside a worker: b goes on the worker's own deque as a frame on
 * the joiner's stack (no allocation), a runs inline, then the worker takes
 * b back and runs it inline - unless a thief stole it, in which case the
 * worker steals back from that thief the joins of b's subtree
 * (leapfrogging), and blocks (the pool compensates) when there is none,
 * until the thief marks the frame done and unparks it. Tasks a or b
 * submitted and did not wait for go to the pool's queue, never run inline
 * here (docs/design.md, "The wait protocol"). Outside a worker, or on a
 * worker whose stack is running low, the pair is handed to the pool as one
 * frame on the caller's stack, and the caller waits on its parker.
 *
 * A group counts its outstanding tasks; a wait runs the group's own tasks
 * it finds at the bottom of its deque, then blocks until the count is 0.
 * Group tasks are futures without a user reference whose first callback
 * reports to the group, so a group task costs one allocation.
 *
 * cf_failure_message: each of the three calls leaves the message of the
 * failure it returns in a thread-local slot (a pthread key frees it when
 * the thread ends). Success costs one thread-local load when the slot was
 * already clear.
 */
#include "executor.h"
#include "sched/sched.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

/* ---- cf_failure_message -------------------------------------------------- */

static _Thread_local struct {
    int code;
    char *message; /* owned; also the value of failure_key */
} last_failure;
static pthread_key_t failure_key;
static pthread_once_t failure_once = PTHREAD_ONCE_INIT;

static void free_message(void *m)
{
    cf__free(m);
}

static void make_failure_key(void)
{
    pthread_key_create(&failure_key, free_message);
}

static void note_failure(int code, char *message)
{
    cf__free(last_failure.message);
    last_failure.code = code;
    last_failure.message = message;
    pthread_once(&failure_once, make_failure_key);
    pthread_setspecific(failure_key, message);
}

/* Records what a cf_join, cf_parallel_for or cf_group_wait returns on this
 * thread, taking over message. */
static inline void note_outcome(int code, char *message)
{
    if (code || last_failure.code)
        note_failure(code, message);
}

const char *cf_failure_message(void)
{
    if (!last_failure.code)
        return NULL;
    return last_failure.message ? last_failure.message
                                : cf_strerror(last_failure.code);
}

/* ---- cf_join ------------------------------------------------------------ */

typedef struct join_frame {
    cf__task task;
    cf_fn fn;
    void *arg;
    void *result;
    cf__task_ctx ctx;
    cf__parker *waiter;    /* unparked by a thief when done */
    _Atomic uint32_t done; /* set (release) by whoever ran fn */
    /* Set by a thief before it runs fn, for leapfrogging: its deque held
     * nothing at index thief_base or above then, and its epoch was
     * thief_epoch. */
    _Atomic(cf__worker *) thief;
    int64_t thief_base;
    uint64_t thief_epoch;
} join_frame;

/* What a trace calls a task that runs fn(arg): fn, or the body of a
 * cf_parallel_for for its ranges. */
static const void *task_name(cf_fn fn, void *arg);

static void run_branch(join_frame *fr)
{
    cf__task_ctx *outer = cf__task_ctx_swap(&fr->ctx);
    fr->result = fr->fn(fr->arg);
    cf__task_ctx_swap(outer);
}

/* Exec of a stolen b: run it, then publish and wake the joiner. */
static void exec_stolen(cf__task *t, cf__worker *w, const cf__drop *drop)
{
    (void)drop; /* never dropped: join frames live only on deques */
    join_frame *fr = (join_frame *)t;
    cf__trace(CF__TR_TASK_NAME, task_name(fr->fn, fr->arg), 0);
    uint64_t epoch = atomic_load_explicit(&w->epoch, memory_order_relaxed);
    fr->thief_base =
        atomic_load_explicit(&w->deque.bottom, memory_order_relaxed);
    fr->thief_epoch = epoch;
    /* release: a joiner that acquires thief sees base and epoch */
    atomic_store_explicit(&fr->thief, w, memory_order_release);
    run_branch(fr);
    cf__worker_leave(w);
    /* release: a leapfrogger that steals anything we push from here on sees
     * the new epoch (cf__worker_steal_back) */
    atomic_store_explicit(&w->epoch, epoch + 1, memory_order_release);
    cf__parker *waiter = fr->waiter; /* the frame may die once done is set */
    /* release: the joiner that acquires done sees result and ctx */
    atomic_store_explicit(&fr->done, 1, memory_order_release);
    cf__unpark(waiter);
}

static bool frame_done(void *p)
{
    join_frame *fr = p;
    return atomic_load_explicit(&fr->done, memory_order_acquire) != 0;
}

/* Rounds a joiner whose b was stolen keeps looking for b's subtree (or b's
 * end) before it blocks: a thief's deque is empty only for moments while
 * it runs a subtree that spawns, and one block costs the joiner's CPU for
 * the rest of b (a parked joiner is not woken by the thief's pushes) plus
 * two system calls, and may start a spare thread. The last half of the
 * rounds yield the CPU. */
#define LEAPFROG_SPINS 128

/* The joiner of a stolen frame runs the joins the thief pushed while it
 * runs the frame - b's own subtree - stealing them back (leapfrogging);
 * true when it ran one or b is done, false (block) when a while of looking
 * found neither. */
static bool leapfrog(void *p, cf__helper *h)
{
    join_frame *fr = p;
    cf__worker *w = cf__worker_current();
    (void)h;
    if (!cf__worker_stack_room(w))
        return false;
    for (int i = 0; i < LEAPFROG_SPINS; i++) {
        /* acquire: pairs with the release store of thief in exec_stolen */
        cf__worker *thief =
            atomic_load_explicit(&fr->thief, memory_order_acquire);
        cf__task *t = thief ? cf__worker_steal_back(w, thief, fr->thief_base,
                                                    fr->thief_epoch)
                            : NULL;
        if (t && t->exec != exec_stolen) {
            /* Not a join of b's subtree (a task b did not wait for, or has
             * not yet): the pool runs it, not this waiter. */
            cf__sched_inject(w->sched, t);
        } else if (t) {
            cf__worker_run_inline(w, t, NULL);
            return true;
        }
        if (frame_done(fr))
            return true;
        if (i >= LEAPFROG_SPINS / 2)
            sched_yield();
        else
            cf__cpu_relax();
    }
    return false;
}

/* The first failure of a join; its message goes to *message (when wanted
 * and there is one). */
static int first_failure(cf__task_ctx *a, cf__task_ctx *b, char **message)
{
    int code = a->code ? a->code : b->code;
    if (code) {
        char **first = a->code ? &a->message : &b->message;
        if (message) {
            *message = *first;
            *first = NULL;
        }
        cf__free(a->message);
        cf__free(b->message);
    }
    return code;
}

static int join_via_pool(cf__sched *s, cf_fn a, void *arg_a, void **res_a,
                         cf_fn b, void *arg_b, void **res_b, char **message);

/* The rest of a join after a, unless b simply came back (join_in_worker):
 * t is what the first take found. Tasks pushed above b by a (futures or
 * group tasks it did not wait for) come off first and go to the pool's
 * queue: nothing waits on them here, so they do not run inline (a lock
 * the joiner holds would be held over them). Out of line: the fast path
 * keeps fewer registers. */
static __attribute__((noinline)) void join_rest(cf__worker *w, join_frame *fb,
                                                cf__task *t)
{
    for (; t && t != &fb->task; t = cf__deque_take(&w->deque))
        cf__sched_inject(w->sched, t);
    if (t) {
        run_branch(fb);
        return;
    }
    /* Stolen: steal back from the thief the joins of b's subtree, and
     * block when there is none, until b is done. */
    cf__block_until(frame_done, fb, leapfrog, NULL);
}

/* The join on a worker of its pool. Inlined into cf_join: the fast path
 * passes nothing on the stack. */
static inline __attribute__((always_inline)) int
join_in_worker(cf__worker *w, cf_fn a, void *arg_a, void **res_a, cf_fn b,
               void *arg_b, void **res_b, char **message)
{
    /* Too little stack left to run a and b here: a worker with a fresh
     * stack runs the pair (docs/design.md, "The wait protocol"). */
    if (!cf__worker_stack_room(w))
        return join_via_pool(w->sched, a, arg_a, res_a, b, arg_b, res_b,
                             message);
    /* Field by field: zeroing the whole frame costs a string store. */
    join_frame fb;
    fb.task.exec = exec_stolen;
    fb.fn = b;
    fb.arg = arg_b;
    fb.result = NULL;
    fb.ctx.code = 0;
    fb.ctx.message = NULL;
    fb.waiter = &w->parker;
    atomic_init(&fb.done, 0);
    atomic_init(&fb.thief, NULL);
    int rc = cf__worker_push(w, &fb.task);
    if (rc)
        return rc;
    cf__task_ctx ctx_a = { 0, NULL };
    cf__task_ctx *outer = cf__task_ctx_swap(&ctx_a);
    void *result_a = a(arg_a);
    cf__task *t = cf__deque_take(&w->deque);
    if (__builtin_expect(t == &fb.task, 1)) {
        /* The usual case: b is still here. It runs under a context of its
         * own (its failure and its lock identity are its own), installed
         * straight over a's, without the outer one in between. */
        (void)cf__task_ctx_swap(&fb.ctx);
        fb.result = b(arg_b);
    } else {
        cf__task_ctx_swap(outer);
        join_rest(w, &fb, t);
    }
    cf__task_ctx_swap(outer);
    if (res_a)
        *res_a = result_a;
    if (res_b)
        *res_b = fb.result;
    return first_failure(&ctx_a, &fb.ctx, message);
}

typedef struct outer_join {
    cf__task task;
    cf_fn a, b;
    void *arg_a, *arg_b;
    void *res_a, *res_b;
    int rc;
    char *message;
    cf__parker *waiter;
    _Atomic uint32_t done;
    /* Held by the runner from done to its unpark: the waiter takes it
     * once before its frame dies (join_via_pool). */
    cf__mutex mu;
} outer_join;

static void exec_outer_join(cf__task *t, cf__worker *w, const cf__drop *drop)
{
    outer_join *oj = (outer_join *)t;
    if (drop) {
        oj->rc = drop->code;
    } else {
        cf__trace(CF__TR_TASK_NAME, task_name(oj->a, oj->arg_a), 0);
        oj->rc = join_in_worker(w, oj->a, oj->arg_a, &oj->res_a, oj->b,
                                oj->arg_b, &oj->res_b, &oj->message);
        cf__worker_leave(w);
    }
    cf__parker *waiter = oj->waiter;
    /* The caller may see done before the unpark below (it had not parked
     * yet), return, and end its thread or free the pool whose worker it
     * is: the parker would be gone. mu keeps the caller until the unpark
     * is over; then only the unlock touches the frame, and its futex wake
     * of a dead word is harmless. */
    cf__mutex_lock(&oj->mu);
    /* release: the caller that acquires done sees the results */
    atomic_store_explicit(&oj->done, 1, memory_order_release);
    cf__unpark(waiter);
    cf__mutex_unlock(&oj->mu);
}

static bool outer_done(void *p)
{
    outer_join *oj = p;
    return atomic_load_explicit(&oj->done, memory_order_acquire) != 0;
}

/* The pair handed to the pool as one frame on the caller's stack, which
 * waits for a worker to run the whole join. Kept out of line so that the
 * fast path of cf_join stays a tail call. */
static __attribute__((noinline)) int join_via_pool(cf__sched *s, cf_fn a,
                                                   void *arg_a, void **res_a,
                                                   cf_fn b, void *arg_b,
                                                   void **res_b, char **message)
{
    outer_join oj = { .task.exec = exec_outer_join,
                      .a = a,
                      .b = b,
                      .arg_a = arg_a,
                      .arg_b = arg_b,
                      .waiter = cf__parker_self() };
    atomic_init(&oj.done, 0);
    int rc = cf__sched_push(s, &oj.task);
    if (rc)
        return rc;
    cf__block_until(outer_done, &oj, NULL, NULL);
    /* The runner is done with our parker once it lets go of mu. */
    cf__mutex_lock(&oj.mu);
    cf__mutex_unlock(&oj.mu);
    if (res_a)
        *res_a = oj.res_a;
    if (res_b)
        *res_b = oj.res_b;
    if (message)
        *message = oj.message;
    else
        cf__free(oj.message);
    return oj.rc;
}

/* cf_join; the failure's message goes to *message (NULL: freed). Inlined
 * into each caller: as a call of its own it costs a prologue that saves
 * every callee-saved register, which is a tenth of a spawn. */
static inline __attribute__((always_inline)) int
join(cf_executor *ex, cf_fn a, void *arg_a, void **res_a, cf_fn b, void *arg_b,
     void **res_b, char **message)
{
    cf__sched *s = cf__executor_sched(ex);
    if (!s || !a || !b)
        return CF_EINVAL;
    cf__worker *w = cf__worker_current();
    if (w && w->sched == s) /* the fast path: no allocation, no lock */
        return join_in_worker(w, a, arg_a, res_a, b, arg_b, res_b, message);
    if (cf__executor_broken(ex))
        return CF_EBROKEN;
    return join_via_pool(s, a, arg_a, res_a, b, arg_b, res_b, message);
}

int cf_join(cf_executor *ex, cf_fn a, void *arg_a, void **res_a, cf_fn b,
            void *arg_b, void **res_b)
{
    char *message = NULL;
    int rc = join(ex, a, arg_a, res_a, b, arg_b, res_b, &message);
    note_outcome(rc, message);
    return rc;
}

/* ---- cf_parallel_for ----------------------------------------------------- */

typedef struct pfor_shared {
    cf_executor *ex;
    void (*body)(size_t lo, size_t hi, void *ctx);
    void *ctx;
    size_t grain;
    _Atomic int failed; /* first failure: stops further splitting */
    char *message;      /* its message, written by the one that set failed */
} pfor_shared;

typedef struct pfor_range {
    pfor_shared *sh;
    size_t lo, hi;
} pfor_range;

static void *pfor_run(void *p)
{
    pfor_range *r = p;
    pfor_shared *sh = r->sh;
    if (r->lo == r->hi ||
        atomic_load_explicit(&sh->failed, memory_order_relaxed))
        return NULL;
    if (r->hi - r->lo <= sh->grain) {
        sh->body(r->lo, r->hi, sh->ctx);
        cf__task_ctx *ctx = cf__task_ctx_swap(NULL);
        cf__task_ctx_swap(ctx);
        int zero = 0;
        if (ctx && ctx->code &&
            atomic_compare_exchange_strong_explicit(
                &sh->failed, &zero, ctx->code, memory_order_relaxed,
                memory_order_relaxed)) {
            sh->message = ctx->message; /* the join's end publishes it */
            ctx->message = NULL;
        }
        return NULL;
    }
    size_t mid = r->lo + (r->hi - r->lo) / 2;
    pfor_range left = { sh, r->lo, mid }, right = { sh, mid, r->hi };
    int rc = join(sh->ex, pfor_run, &left, NULL, pfor_run, &right, NULL, NULL);
    if (rc) {
        int zero = 0;
        atomic_compare_exchange_strong_explicit(
            &sh->failed, &zero, rc, memory_order_relaxed, memory_order_relaxed);
    }
    return NULL;
}

static const void *task_name(cf_fn fn, void *arg)
{
    if (fn == pfor_run)
        return (const void *)((pfor_range *)arg)->sh->body;
    return (const void *)fn;
}

int cf_parallel_for(cf_executor *ex, size_t begin, size_t end, size_t grain,
                    void (*body)(size_t lo, size_t hi, void *ctx), void *ctx)
{
    cf__sched *s = cf__executor_sched(ex);
    if (!s || !body || begin > end) {
        note_outcome(CF_EINVAL, NULL);
        return CF_EINVAL;
    }
    if (begin == end) {
        note_outcome(0, NULL);
        return 0;
    }
    if (grain == 0) {
        /* About eight pieces per worker: enough slack to balance uneven
         * bodies, few enough that splitting costs nothing measurable. */
        size_t n = end - begin, pieces = 8 * s->max_workers;
        grain = n / pieces + (n % pieces != 0); /* ceil, without overflow */
    }
    pfor_shared sh = { .ex = ex, .body = body, .ctx = ctx, .grain = grain };
    atomic_init(&sh.failed, 0);
    size_t mid = begin + (end - begin) / 2;
    pfor_range left = { &sh, begin, mid }, right = { &sh, mid, end };
    if (end - begin <= grain) {
        left.hi = end;
        right.lo = right.hi = end;
    }
    char *message = NULL;
    int rc = join(ex, pfor_run, &left, NULL, pfor_run, &right, NULL, &message);
    int failed = atomic_load_explicit(&sh.failed, memory_order_relaxed);
    if (failed) {
        cf__free(message);
        rc = failed;
        message = sh.message;
    }
    note_outcome(rc, message);
    return rc;
}

/* ---- task groups ---------------------------------------------------------- */

struct cf_group {
    cf_executor *ex;
    cf__sched *sched;
    _Atomic size_t pending;
    _Atomic int failure;    /* first failure code, 0 if none */
    char *message;          /* its message, by the one that set failure */
    _Atomic bool cancelled; /* set by cancel or by the first failure */
    cf__mutex mu;           /* guards waiters; held while pending hits 0 */
    cf__parker *waiters[8]; /* parkers of threads inside a wait */
    size_t nwaiters;
};

cf_group *cf_group_new(cf_executor *ex)
{
    cf__sched *s = cf__executor_sched(ex);
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    cf_group *g = cf__calloc(1, sizeof *g);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    g->ex = ex;
    g->sched = s;
    return g;
}

/* A count-down that may reach 0: under mu, waking the waiters at 0. */
static void group_count_down_last(cf_group *g)
{
    cf__mutex_lock(&g->mu);
    /* release: the waiter that sees 0 sees every task's effects */
    if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) == 1)
        for (size_t i = 0; i < g->nwaiters; i++)
            cf__unpark(g->waiters[i]);
    cf__mutex_unlock(&g->mu);
}

static void group_task_done(cf_future *f, void *ctx)
{
    cf_group *g = ctx;
    if (cf__future_failed(f)) {
        int zero = 0;
        /* the release on pending below publishes message to the waiter */
        if (atomic_compare_exchange_strong_explicit(&g->failure, &zero, f->code,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed))
            g->message = cf__strdup(cf__future_message(f));
        atomic_store_explicit(&g->cancelled, true, memory_order_relaxed);
    }
    /* Not the last one: count down with no lock. pending reaches 0 only
     * under mu (below), so cf_group_free, which takes mu after it sees 0,
     * never frees g under a callback still using it, and a task that is
     * not the last touches g no more after its decrement. */
    size_t n = atomic_load_explicit(&g->pending, memory_order_relaxed);
    /* release: the waiter that sees 0 sees every task's effects (the
     * last one's acquire-release chain carries the others') */
    while (n > 1 && !atomic_compare_exchange_weak_explicit(
                        &g->pending, &n, n - 1, memory_order_release,
                        memory_order_relaxed)) {
    }
    if (n > 1)
        return;
    group_count_down_last(g);
}

/* Exec of a group task: skipped (cancelled) once the group is cancelled.
 * Claimed (a wait on the group runs it inline): the queue entry stays. */
static void exec_group_task(cf__task *t, cf__worker *w, const cf__drop *drop)
{
    cf_future *f = (cf_future *)((char *)t - offsetof(cf_future, task));
    cf_group *g = f->first_cb.ctx;
    bool claimed = drop == &cf__claimed;
    if (drop && !claimed) {
        cf__pool_drop(f, drop);
    } else if (atomic_load_explicit(&g->cancelled, memory_order_relaxed)) {
        if (claimed)
            cf_future_cancel(f);
        else
            cf__pool_drop(f, &(cf__drop){ CF_ECANCELED, NULL });
    } else {
        cf__pool_run_future(f, w, claimed);
    }
}

int cf_group_submit(cf_group *g, cf_fn fn, void *arg)
{
    if (!g || !fn)
        return CF_EINVAL;
    if (atomic_load_explicit(&g->cancelled, memory_order_relaxed))
        return CF_ECANCELED;
    if (cf__executor_broken(g->ex))
        return CF_EBROKEN;
    if (atomic_load_explicit(&g->sched->shutdown, memory_order_relaxed))
        return CF_ESHUTDOWN; /* as cf_submit, even from a task */
    cf_future *f = cf__future_alloc(1);
    if (!f)
        return CF_ENOMEM;
    f->fn = fn;
    f->arg = arg;
    f->first_cb.fn = group_task_done;
    f->first_cb.ctx = g;
    f->task.exec = exec_group_task;
    f->home = &g->sched->home;
    atomic_fetch_add_explicit(&g->pending, 1, memory_order_relaxed);
    int rc = cf__sched_push(g->sched, &f->task);
    if (rc) {
        /* Under mu, waking the waiters: a task that ended meanwhile saw
         * our count and left the decrement to 0 (and the wake-up) to us. */
        group_count_down_last(g);
        cf__cache_free(f);
    }
    return rc;
}

static bool group_idle(void *p)
{
    cf_group *g = p;
    return atomic_load_explicit(&g->pending, memory_order_acquire) == 0;
}

/* What a wait on g depends on: g's tasks. Those this worker submitted
 * (and those they submit) sit at the bottom of its deque: run the newest
 * if it is g's and has room, else put it back and block. */
static bool group_help(void *p, cf__helper *h)
{
    cf_group *g = p;
    cf__worker *w = cf__worker_current();
    (void)h;
    if (!w || w->sched != g->sched || !cf__worker_stack_room(w))
        return false;
    cf__task *t = cf__deque_take(&w->deque);
    if (!t)
        return false;
    cf_future *f = (cf_future *)((char *)t - offsetof(cf_future, task));
    if (t->exec != exec_group_task || f->first_cb.ctx != g) {
        (void)cf__worker_push(w, t); /* just taken: no growth; wakes a thief */
        return false;
    }
    cf__worker_run_inline(w, t, NULL);
    return true;
}

static int group_wait(cf_group *g, double timeout)
{
    cf__deadline d;
    if (!g || cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    if (!group_idle(g)) {
        cf__parker *me = cf__parker_self();
        cf__mutex_lock(&g->mu);
        bool listed = g->nwaiters < sizeof g->waiters / sizeof g->waiters[0];
        if (listed)
            g->waiters[g->nwaiters++] = me;
        cf__mutex_unlock(&g->mu);
        if (listed) {
            rc = cf__block_until(group_idle, g, group_help, &d);
        } else {
            /* More concurrent waiters than slots: poll. */
            while (!group_idle(g) && !cf__deadline_passed(&d)) {
                cf__deadline nap;
                cf__deadline_from(0.001, &nap);
                cf__park(me, &nap);
            }
            rc = group_idle(g) ? 0 : CF_ETIMEDOUT;
        }
        cf__mutex_lock(&g->mu);
        for (size_t i = 0; listed && i < g->nwaiters; i++) {
            if (g->waiters[i] == me) {
                g->waiters[i] = g->waiters[--g->nwaiters];
                break;
            }
        }
        cf__mutex_unlock(&g->mu);
    }
    if (rc)
        return rc;
    return atomic_load_explicit(&g->failure, memory_order_relaxed);
}

int cf_group_wait(cf_group *g, double timeout)
{
    int rc = group_wait(g, timeout);
    bool failed = g && rc != 0 &&
                  rc == atomic_load_explicit(&g->failure, memory_order_relaxed);
    note_outcome(rc, failed ? cf__strdup(g->message) : NULL);
    return rc;
}

void cf_group_cancel(cf_group *g)
{
    if (g)
        atomic_store_explicit(&g->cancelled, true, memory_order_relaxed);
}

void cf_group_free(cf_group *g)
{
    if (!g)
        return;
    group_wait(g, CF_FOREVER);
    /* The last task's callback may still hold mu: wait it out. */
    cf__mutex_lock(&g->mu);
    cf__mutex_unlock(&g->mu);
    cf__free(g->message);
    cf__free(g);
}
