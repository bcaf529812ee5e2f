/* SPDX-License-Identifier: MIT */
/*
 * test_wait_protocol.c - waits inside tasks (docs/design.md, "The wait
 * protocol"): a wait runs inline only what it depends on, blocks and
 * compensates otherwise, bounds inline running by the stack, keeps its
 * timeout; every task owns its failure, its identity and its locks; the
 * counters and the names tell the truth.
 */
#include "harness.h"

#include <stdint.h>
#include <sys/syscall.h>

static cf_executor *new_pool(int workers, const char *prefix)
{
    cf_options o = { .max_workers = workers, .name_prefix = prefix };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

static cf_stats stats_of(cf_executor *ex)
{
    cf_stats s;
    CHECK_EQ(cf_executor_stats(ex, &s), 0);
    return s;
}

static void *result_of(cf_future *f, double timeout)
{
    void *r = NULL;
    int rc = cf_future_result(f, timeout * test_scale(), &r);
    if (rc != 0) {
        fprintf(stderr, "result: %s\n", cf_strerror(rc));
        CHECK(0);
    }
    return r;
}

/* Inside tasks: an untimed wait (only those run the awaited task inline). */
static void *result_forever(cf_future *f)
{
    void *r = NULL;
    int rc = cf_future_result(f, CF_FOREVER, &r);
    if (rc != 0) {
        fprintf(stderr, "result: %s\n", cf_strerror(rc));
        CHECK(0);
    }
    return r;
}

/* A future that a thread outside the pool completes after delay seconds. */
typedef struct later {
    cf_future *f;
    double delay;
    cf_thread *t;
} later;

static void *complete_later(void *p)
{
    later *l = p;
    sleep_s(l->delay);
    CHECK_EQ(cf_future_set_result(l->f, (void *)7), 0);
    return NULL;
}

static void later_start(later *l, double delay)
{
    l->f = cf_future_new();
    CHECK(l->f != NULL);
    l->delay = delay;
    CHECK_EQ(cf_thread_start(&l->t, complete_later, l, NULL), 0);
}

static void later_end(later *l)
{
    CHECK_EQ(cf_thread_join(l->t, CF_FOREVER, NULL), 0);
    cf_future_release(l->f);
}

/* ---- 1. never an unrelated task inline; locks follow the task ---------- */

/* Three kinds of lock behind one interface. */
typedef struct any_lock {
    int kind; /* 0 cf_lock, 1 cf_rlock, 2 cf_condition */
    cf_lock *l;
    cf_rlock *r;
    cf_condition *c;
} any_lock;

static void any_lock_init(any_lock *a, int kind)
{
    a->kind = kind;
    a->l = kind == 0 ? cf_lock_new() : NULL;
    a->r = kind == 1 ? cf_rlock_new() : NULL;
    a->c = kind == 2 ? cf_condition_new() : NULL;
    CHECK(a->l || a->r || a->c);
}

static int any_acquire(any_lock *a, double timeout)
{
    return a->kind == 0   ? cf_lock_acquire(a->l, timeout)
           : a->kind == 1 ? cf_rlock_acquire(a->r, timeout)
                          : cf_condition_acquire(a->c, timeout);
}

static int any_release(any_lock *a)
{
    return a->kind == 0   ? cf_lock_release(a->l)
           : a->kind == 1 ? cf_rlock_release(a->r)
                          : cf_condition_release(a->c);
}

static void any_lock_free(any_lock *a)
{
    cf_lock_free(a->l);
    cf_rlock_free(a->r);
    cf_condition_free(a->c);
}

typedef struct lock_case {
    cf_executor *ex;
    any_lock lock;
    atomic_int inside;     /* tasks inside the critical section now */
    atomic_int max_inside; /* the most ever seen at once */
    atomic_int a_waiting;  /* A is inside its wait */
    const char *a_thread;
    atomic_int b_ran_in_a; /* B ran on A's thread while A waited */
    int b_rc;
    later ext;
    cf_future *b;
} lock_case;

static void enter(lock_case *lc)
{
    int n = atomic_fetch_add(&lc->inside, 1) + 1;
    int m = atomic_load(&lc->max_inside);
    while (n > m && !atomic_compare_exchange_weak(&lc->max_inside, &m, n)) {
    }
}

static void *task_b(void *p)
{
    lock_case *lc = p;
    if (atomic_load(&lc->a_waiting) &&
        strcmp(cf_thread_current_name(), lc->a_thread) == 0)
        atomic_store(&lc->b_ran_in_a, 1);
    lc->b_rc = any_acquire(&lc->lock, 20.0 * test_scale());
    if (lc->b_rc == 0) {
        enter(lc);
        sleep_s(0.01);
        atomic_fetch_sub(&lc->inside, 1);
        CHECK_EQ(any_release(&lc->lock), 0);
    }
    return NULL;
}

/* A takes the lock, submits B (which wants it too), then waits on a future
 * an outside thread completes: B must not run inside A's wait. */
static void *task_a(void *p)
{
    lock_case *lc = p;
    lc->a_thread = cf_thread_current_name();
    CHECK_EQ(any_acquire(&lc->lock, CF_FOREVER), 0);
    enter(lc);
    CHECK_EQ(cf_submit(lc->ex, task_b, lc, &lc->b), 0);
    atomic_store(&lc->a_waiting, 1);
    CHECK_EQ((intptr_t)result_of(lc->ext.f, 20.0), 7);
    atomic_store(&lc->a_waiting, 0);
    atomic_fetch_sub(&lc->inside, 1);
    CHECK_EQ(any_release(&lc->lock), 0);
    return NULL;
}

static void lock_held_across_wait(int kind)
{
    cf_executor *ex = new_pool(1, "lk");
    lock_case lc = { .ex = ex };
    any_lock_init(&lc.lock, kind);
    later_start(&lc.ext, 0.3);
    cf_future *a = NULL;
    CHECK_EQ(cf_submit(ex, task_a, &lc, &a), 0);
    result_of(a, 30.0);
    result_of(lc.b, 30.0);
    CHECK_EQ(lc.b_rc, 0);
    CHECK_EQ(atomic_load(&lc.max_inside), 1);
    CHECK_EQ(atomic_load(&lc.b_ran_in_a), 0);
    cf_future_release(a);
    cf_future_release(lc.b);
    later_end(&lc.ext);
    cf_stats s = stats_of(ex);
    CHECK(s.blocked >= 1); /* A's wait blocked */
    cf_executor_free(ex);
    any_lock_free(&lc.lock);
}

static void lock_held_across_wait_lock(void)
{
    lock_held_across_wait(0);
}
static void lock_held_across_wait_rlock(void)
{
    lock_held_across_wait(1);
}
static void lock_held_across_wait_condition(void)
{
    lock_held_across_wait(2);
}

/* A holds a lock and waits on its own child C, which runs inline in A's
 * wait (C is what A depends on). C is another task: it does not own A's
 * rlock or condition, and its own re-entrant acquires work. */
typedef struct inline_lock {
    cf_executor *ex;
    any_lock held; /* taken by A */
    any_lock own;  /* taken by C */
    const char *a_thread;
    int c_same_thread;
    int c_rc_held, c_rc_own1, c_rc_own2, c_rel_held;
} inline_lock;

static void *inline_child(void *p)
{
    inline_lock *il = p;
    il->c_same_thread = strcmp(cf_thread_current_name(), il->a_thread) == 0;
    il->c_rc_held = any_acquire(&il->held, 0.1);
    /* (a cf_lock has no owner: any task may release it, as in Python) */
    il->c_rel_held = il->held.kind == 0 ? CF_EPERM : any_release(&il->held);
    il->c_rc_own1 = any_acquire(&il->own, 0);
    il->c_rc_own2 = any_acquire(&il->own, 0);
    if (il->c_rc_own2 == 0)
        CHECK_EQ(any_release(&il->own), 0);
    if (il->c_rc_own1 == 0)
        CHECK_EQ(any_release(&il->own), 0);
    return NULL;
}

static void *inline_parent(void *p)
{
    inline_lock *il = p;
    il->a_thread = cf_thread_current_name();
    CHECK_EQ(any_acquire(&il->held, CF_FOREVER), 0);
    cf_future *c = NULL;
    CHECK_EQ(cf_submit(il->ex, inline_child, il, &c), 0);
    result_forever(c);
    cf_future_release(c);
    /* still A's: re-entrant for the rlock and the condition */
    CHECK_EQ(any_release(&il->held), 0);
    return NULL;
}

static void lock_owner_is_task(int kind)
{
    cf_executor *ex = new_pool(1, "lo");
    inline_lock il = { .ex = ex };
    any_lock_init(&il.held, kind);
    any_lock_init(&il.own, kind);
    cf_future *a = NULL;
    CHECK_EQ(cf_submit(ex, inline_parent, &il, &a), 0);
    result_of(a, 30.0);
    cf_future_release(a);
    CHECK(il.c_same_thread);              /* C ran inline in A's wait */
    CHECK_EQ(il.c_rc_held, CF_ETIMEDOUT); /* A holds it, C is not A */
    CHECK_EQ(il.c_rel_held, CF_EPERM);    /* C cannot release A's */
    CHECK_EQ(il.c_rc_own1, 0);
    /* re-entrant for C's own rlock and condition; a cf_lock is not */
    CHECK_EQ(il.c_rc_own2, kind == 0 ? CF_ETIMEDOUT : 0);
    CHECK(stats_of(ex).inlined >= 1);
    cf_executor_free(ex);
    any_lock_free(&il.held);
    any_lock_free(&il.own);
}

static void lock_owner_is_task_lock(void)
{
    lock_owner_is_task(0);
}
static void lock_owner_is_task_rlock(void)
{
    lock_owner_is_task(1);
}
static void lock_owner_is_task_condition(void)
{
    lock_owner_is_task(2);
}

/* A task waits on a condition that a task it submitted notifies: a
 * condition wait is a plain blocking wait (as in Python), so the child runs
 * on the other worker, under its own acquire of the condition's lock. */
typedef struct cond_pair {
    cf_executor *ex;
    cf_condition *c;
    int flag;
    int notify_rc;
} cond_pair;

static void *cond_child(void *p)
{
    cond_pair *cp = p;
    CHECK_EQ(cf_condition_acquire(cp->c, 20.0 * test_scale()), 0);
    cp->flag = 1;
    cp->notify_rc = cf_condition_notify_all(cp->c);
    CHECK_EQ(cf_condition_release(cp->c), 0);
    return NULL;
}

static bool flag_set(void *p)
{
    return ((cond_pair *)p)->flag != 0;
}

static void *cond_parent(void *p)
{
    cond_pair *cp = p;
    cf_future *c = NULL;
    CHECK_EQ(cf_condition_acquire(cp->c, CF_FOREVER), 0);
    CHECK_EQ(cf_submit(cp->ex, cond_child, cp, &c), 0);
    CHECK_EQ(cf_condition_wait_for(cp->c, flag_set, cp, 20.0 * test_scale()),
             0);
    CHECK_EQ(cf_condition_release(cp->c), 0);
    result_of(c, 20.0);
    cf_future_release(c);
    return NULL;
}

static void condition_between_tasks(void)
{
    cf_executor *ex = new_pool(2, "cv");
    cond_pair cp = { .ex = ex, .c = cf_condition_new() };
    CHECK(cp.c != NULL);
    cf_future *a = NULL;
    CHECK_EQ(cf_submit(ex, cond_parent, &cp, &a), 0);
    result_of(a, 30.0);
    cf_future_release(a);
    CHECK_EQ(cp.notify_rc, 0);
    cf_executor_free(ex);
    cf_condition_free(cp.c);
}

/* ---- 2. timeouts hold --------------------------------------------------- */

static void *sleep_task(void *p)
{
    sleep_s((double)(intptr_t)p / 1000.0);
    return p;
}

typedef struct timed_case {
    cf_executor *ex;
    double took[6];
    int rc[6];
} timed_case;

/* With a 1.5 s task queued - unrelated, or the awaited one - timed waits
 * inside a task return at their timeout, as they do outside a pool. */
static void *timed_waiter(void *p)
{
    timed_case *tc = p;
    cf_future *slow = NULL, *never = cf_future_new();
    CHECK(never != NULL);
    CHECK_EQ(cf_submit(tc->ex, sleep_task, (void *)(intptr_t)1500, &slow), 0);
    double t0 = now_s();
    tc->rc[0] = cf_future_result(never, 0.1, NULL);
    tc->took[0] = now_s() - t0;
    t0 = now_s();
    tc->rc[1] = cf_wait(&never, 1, 0.1, CF_ALL_COMPLETED);
    tc->took[1] = now_s() - t0;
    cf_as_completed *it = NULL;
    CHECK_EQ(cf_as_completed_new(&it, &never, 1, 0.1), 0);
    t0 = now_s();
    tc->rc[2] = cf_as_completed_next(it, NULL);
    tc->took[2] = now_s() - t0;
    cf_as_completed_free(it);
    /* the same, waiting on the slow task itself */
    cf_future *slow2 = NULL;
    CHECK_EQ(cf_submit(tc->ex, sleep_task, (void *)(intptr_t)1500, &slow2), 0);
    t0 = now_s();
    tc->rc[3] = cf_future_result(slow2, 0.1, NULL);
    tc->took[3] = now_s() - t0;
    t0 = now_s();
    tc->rc[4] = cf_wait(&slow2, 1, 0.1, CF_FIRST_COMPLETED);
    tc->took[4] = now_s() - t0;
    t0 = now_s();
    tc->rc[5] = cf_future_result(slow2, 0, NULL); /* a poll */
    tc->took[5] = now_s() - t0;
    CHECK(cf_future_cancel(never));
    cf_future_release(never);
    result_of(slow, 30.0);
    result_of(slow2, 30.0);
    cf_future_release(slow);
    cf_future_release(slow2);
    return NULL;
}

static void timed_waits_keep_timeouts(void)
{
    for (int workers = 1; workers <= 2; workers++) {
        cf_executor *ex = new_pool(workers, "tw");
        timed_case tc = { .ex = ex };
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, timed_waiter, &tc, &f), 0);
        result_of(f, 30.0);
        cf_future_release(f);
        for (int i = 0; i < 6; i++) {
            CHECK_EQ(tc.rc[i], CF_ETIMEDOUT);
            double want = i == 5 ? 0.0 : 0.1;
            if (tc.took[i] < want - 0.005 ||
                tc.took[i] > want + 0.5 * test_scale()) {
                fprintf(stderr, "%d workers: wait %d took %.3f s\n", workers, i,
                        tc.took[i]);
                CHECK(0);
            }
        }
        cf_executor_free(ex);
    }
}

/* ---- 3. every task owns its failure -------------------------------------- */

typedef struct cb_case {
    cf_executor *ex;
    const char *a_thread;
    int same_thread;
    atomic_int cb_fail_rc;
} cb_case;

static void fail_in_callback(cf_future *f, void *ctx)
{
    (void)f;
    cb_case *cc = ctx;
    atomic_store(&cc->cb_fail_rc, cf_fail(CF_EOVERFLOW, "from a callback"));
}

static void *child_ok(void *p)
{
    cb_case *cc = p;
    cc->same_thread = strcmp(cf_thread_current_name(), cc->a_thread) == 0;
    return (void *)3;
}

static void *child_fails(void *p)
{
    (void)p;
    cf_fail(CF_EPERM, "the child failed");
    return NULL;
}

static void *parent_with_callback(void *p)
{
    cb_case *cc = p;
    cc->a_thread = cf_thread_current_name();
    cf_future *c = NULL;
    CHECK_EQ(cf_submit(cc->ex, child_ok, cc, &c), 0);
    CHECK_EQ(cf_future_add_done_callback(c, fail_in_callback, cc), 0);
    CHECK_EQ((intptr_t)result_forever(c), 3);
    cf_future_release(c);
    /* a child that fails inline fails itself, not us */
    CHECK_EQ(cf_submit(cc->ex, child_fails, NULL, &c), 0);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(c, CF_FOREVER, &msg), CF_EPERM);
    CHECK(strcmp(msg, "the child failed") == 0);
    cf_future_release(c);
    return (void *)1;
}

static void callback_of_inline_task_is_outside_tasks(void)
{
    cf_executor *ex = new_pool(1, "cb");
    cb_case cc = { .ex = ex };
    atomic_init(&cc.cb_fail_rc, 1);
    cf_future *a = NULL;
    CHECK_EQ(cf_submit(ex, parent_with_callback, &cc, &a), 0);
    const char *msg = NULL;
    CHECK_EQ(cf_future_exception(a, 30.0 * test_scale(), &msg), 0);
    CHECK_EQ((intptr_t)result_of(a, 1.0), 1);
    cf_future_release(a);
    CHECK(cc.same_thread); /* the child did run inline */
    CHECK_EQ(atomic_load(&cc.cb_fail_rc), CF_EINVAL);
    /* and at top level, the same */
    cf_future *f = cf_future_new();
    CHECK(f != NULL);
    atomic_store(&cc.cb_fail_rc, 1);
    CHECK_EQ(cf_future_add_done_callback(f, fail_in_callback, &cc), 0);
    CHECK_EQ(cf_future_set_result(f, NULL), 0);
    CHECK_EQ(atomic_load(&cc.cb_fail_rc), CF_EINVAL);
    cf_future_release(f);
    cf_stats s = stats_of(ex);
    CHECK(s.inlined >= 2);
    CHECK_EQ(s.failed, 1);
    CHECK_EQ(s.completed, 2);
    cf_executor_free(ex);
}

/* ---- 4. deep chains -------------------------------------------------------- */

typedef struct nest {
    cf_executor *ex;
    long level;
} nest;

static void *nested_level(void *p)
{
    nest *n = p;
    if (n->level == 0)
        return (void *)0;
    nest next = { n->ex, n->level - 1 };
    cf_future *f = NULL;
    int rc = cf_submit(n->ex, nested_level, &next, &f);
    if (rc) {
        cf_fail(rc, "submit at level %ld", n->level);
        return NULL;
    }
    void *r = NULL;
    rc = cf_future_result(f, CF_FOREVER, &r);
    cf_future_release(f);
    if (rc) {
        cf_fail(rc, "wait at level %ld", n->level);
        return NULL;
    }
    return (void *)((intptr_t)r + 1);
}

/* 100,000 levels of submit-and-wait rooted on a one-worker pool: each
 * level runs inline in its parent's wait until the stack runs low, then
 * the worker blocks and a spare carries on. */
static void deep_nested_chain(void)
{
    long levels = 100000;
    cf_executor *ex = new_pool(1, "dn");
    nest top = { ex, levels };
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, nested_level, &top, &f), 0);
    CHECK_EQ((intptr_t)result_of(f, 50.0), levels);
    cf_future_release(f);
    cf_stats s = stats_of(ex);
    CHECK(s.inlined >= (size_t)levels / 2);
    CHECK_EQ(s.completed, (size_t)levels + 1);
    /* the spares retire once the chain is done */
    WAIT_UNTIL(stats_of(ex).workers <= 1, 5.0);
    CHECK(stats_of(ex).workers <= 1);
    cf_executor_free(ex);
}

/* A task holding a lock joins a and b; one branch submits a task U it
 * does not wait for, which takes the same lock. U is not what the join
 * waits on: it must not run inline on the joiner's thread inside the
 * critical section (it would block on the lock its own thread holds). In
 * `stolen` rounds b is stolen (a spins first) and U comes from b, so the
 * joiner leapfrogs on b's thief: only b's joins may run here. */
typedef struct join_cs {
    cf_executor *ex;
    cf_lock *lock;
    bool stolen;
    atomic_int u_inside, u_failed, u_done;
} join_cs;

static _Thread_local bool in_cs;
static join_cs *jcs;

static void spin_ms(int ms)
{
    double end = now_s() + ms / 1000.0;
    while (now_s() < end) {
    }
}

static void *cs_u(void *p)
{
    (void)p;
    if (in_cs)
        atomic_fetch_add(&jcs->u_inside, 1);
    if (cf_lock_acquire(jcs->lock, 10.0) == 0)
        cf_lock_release(jcs->lock);
    else
        atomic_fetch_add(&jcs->u_failed, 1);
    atomic_fetch_add(&jcs->u_done, 1);
    return NULL;
}

static void *cs_a(void *p)
{
    (void)p;
    if (jcs->stolen)
        spin_ms(20);
    else
        CHECK_EQ(cf_submit(jcs->ex, cs_u, NULL, NULL), 0);
    return NULL;
}

static void *cs_b(void *p)
{
    (void)p;
    if (jcs->stolen) {
        CHECK_EQ(cf_submit(jcs->ex, cs_u, NULL, NULL), 0);
        spin_ms(40);
    }
    return NULL;
}

static void *cs_holder(void *p)
{
    (void)p;
    CHECK_EQ(cf_lock_acquire(jcs->lock, CF_FOREVER), 0);
    in_cs = true;
    int rc = cf_join(jcs->ex, cs_a, NULL, NULL, cs_b, NULL, NULL);
    in_cs = false;
    cf_lock_release(jcs->lock);
    return rc ? NULL : p;
}

static void join_runs_no_unawaited_task(void)
{
    join_cs c = { .lock = cf_lock_new() };
    jcs = &c;
    int rounds = 0;
    for (int workers = 1; workers <= 4; workers *= 2) {
        for (int i = 0; i < 10; i++, rounds++) {
            c.stolen = workers > 1 && i % 2;
            c.ex = new_pool(workers, "jc");
            cf_future *f = NULL;
            CHECK_EQ(cf_submit(c.ex, cs_holder, &c, &f), 0);
            CHECK(result_of(f, 50.0) == &c);
            cf_future_release(f);
            WAIT_UNTIL(atomic_load(&c.u_done) == rounds + 1, 50.0);
            cf_executor_free(c.ex);
        }
    }
    CHECK_EQ(atomic_load(&c.u_inside), 0);
    CHECK_EQ(atomic_load(&c.u_failed), 0);
    CHECK_EQ(atomic_load(&c.u_done), rounds);
    cf_lock_free(c.lock);
}

/* A task waits on 200,000 children of its own on one worker, and first on
 * a promise (cf_future_new) that the last child completes: it runs the
 * children inline, one after the other. The search for the next one to
 * run goes on from the last one looked at (past the promise, which it can
 * never run): linear, not quadratic, in the children. */
enum { MANY_CHILDREN = 200000 };

static void *noop(void *p);
static atomic_long spare_fail_at;

static void *settle_promise(void *p)
{
    CHECK_EQ(cf_future_set_result(p, NULL), 0);
    return NULL;
}

static void *wait_on_many(void *p)
{
    cf_executor *ex = p;
    cf_future **fs = calloc(MANY_CHILDREN + 1, sizeof *fs);
    if (!fs || !(fs[0] = cf_future_new()))
        return NULL;
    size_t n = 1;
    while (n < MANY_CHILDREN && cf_submit(ex, noop, NULL, &fs[n]) == 0)
        n++;
    if (cf_submit(ex, settle_promise, fs[0], &fs[n]) == 0)
        n++;
    int rc = cf_wait(fs, n, CF_FOREVER, CF_ALL_COMPLETED);
    for (size_t i = 0; i < n; i++)
        cf_future_release(fs[i]);
    free(fs);
    return rc == 0 && n == MANY_CHILDREN + 1 ? p : NULL;
}

static void wait_on_many_children(void)
{
    cf_executor *ex = new_pool(1, "wm");
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, wait_on_many, ex, &f), 0);
    CHECK(result_of(f, 50.0) == ex);
    cf_future_release(f);
    CHECK(stats_of(ex).inlined >= MANY_CHILDREN);
    cf_executor_free(ex);
}

/* A timed wait in a task on one worker blocks and needs a spare to run
 * the child; the spare's start fails once (an allocation), and is tried
 * again: the child runs well within the wait's timeout. */
static void *wait_child_timed(void *p)
{
    cf_executor *ex = p;
    cf_future *f = NULL;
    if (cf_submit(ex, noop, ex, &f))
        return NULL;
    oom_fail_at(atomic_load(&spare_fail_at));
    void *r = NULL;
    int rc = cf_future_result(f, 20.0, &r);
    oom_fail_at(-1);
    cf_future_release(f);
    return rc == 0 && r == ex ? p : NULL;
}

static void spare_start_failure_is_retried(void)
{
    oom_install();
    for (long k = 0; k < 6; k++) {
        atomic_store(&spare_fail_at, k);
        cf_executor *ex = new_pool(1, "sr");
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, wait_child_timed, ex, &f), 0);
        CHECK(result_of(f, 50.0) == ex);
        cf_future_release(f);
        cf_executor_free(ex);
    }
}

/* Every allocation fails while starve is set (a thread start, too). */
static atomic_bool starve;
static atomic_long starved; /* allocations refused */

static bool starving(void)
{
    if (!atomic_load(&starve))
        return false;
    atomic_fetch_add(&starved, 1);
    return true;
}
static void *starve_malloc(size_t n)
{
    return starving() ? NULL : malloc(n);
}
static void *starve_realloc(void *p, size_t n)
{
    return starving() ? NULL : realloc(p, n);
}
static void *starve_calloc(size_t c, size_t n)
{
    return starving() ? NULL : calloc(c, n);
}

/* Whether thread tid of this process sleeps in the kernel (state S). */
static bool thread_sleeps(long tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')'); /* the name may hold anything */
    return end && end[1] == ' ' && end[2] == 'S';
}

/* A wait whose spare is started by someone else, and that start fails:
 * the waiter W (one of 2 workers) blocks on its child C in a timed wait
 * while the other worker S is counted searching (its initializer holds it
 * at a gate), so W leaves the start of a spare to S. S, let go, takes the
 * other task X (older on W's deque) and, the last searcher, hands a spare
 * start on for C - which fails: no memory. X waits for C at a gate the pool
 * cannot see. Memory comes back; C must still run (W, woken by the failed
 * hand-over, retries the start as it retries its own). */
typedef struct handover {
    cf_executor *ex;
    gate hold_s; /* the second worker's initializer waits here */
    gate c_ran;  /* C opens it; X waits on it */
    atomic_int starts;
    atomic_long waiter_tid;
} handover;

static handover ho = { NULL, GATE_INIT, GATE_INIT, 0, 0 };

static void *ho_init(void *arg)
{
    if (atomic_fetch_add(&ho.starts, 1) == 1)
        gate_wait(&ho.hold_s);
    return arg;
}

static void *ho_child(void *p)
{
    gate_open(&ho.c_ran);
    return p;
}

static void *ho_other(void *p)
{
    gate_wait(&ho.c_ran);
    return p;
}

static void *ho_waiter(void *p)
{
    atomic_store(&ho.waiter_tid, (long)syscall(SYS_gettid));
    cf_future *x = NULL, *c = NULL;
    /* X starts S (W is busy), C finds S searching */
    if (cf_submit(ho.ex, ho_other, p, &x) || cf_submit(ho.ex, ho_child, p, &c))
        return NULL;
    atomic_store(&starve, true);
    void *r = NULL;
    int rc = cf_future_result(c, 30.0 * test_scale(), &r);
    cf_future_release(c);
    cf_future_release(x);
    return rc == 0 && r == p ? p : NULL;
}

static void spare_handover_failure_is_retried(void)
{
    CHECK_EQ(cf_replace_allocator(starve_malloc, starve_realloc, starve_calloc,
                                  free),
             0);
    cf_options o = { .max_workers = 2,
                     .name_prefix = "ho",
                     .initializer = ho_init };
    ho.ex = cf_thread_pool_new(&o);
    CHECK(ho.ex != NULL);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ho.ex, ho_waiter, ho.ex, &f), 0);
    /* W blocked, past its look at the searchers: parked */
    WAIT_UNTIL(stats_of(ho.ex).blocked >= 1 &&
                   thread_sleeps(atomic_load(&ho.waiter_tid)),
               20.0);
    CHECK(stats_of(ho.ex).blocked >= 1);
    CHECK(thread_sleeps(atomic_load(&ho.waiter_tid)));
    gate_open(&ho.hold_s);
    WAIT_UNTIL(atomic_load(&starved) >= 1, 20.0);
    CHECK(atomic_load(&starved) >= 1); /* S's hand-over could not start one */
    atomic_store(&starve, false);
    CHECK(result_of(f, 50.0) == ho.ex);
    cf_future_release(f);
    cf_executor_free(ho.ex);
}

/* A wait whose spare a push was to start, and that start fails: the
 * waiter W (the only worker) blocks in a timed wait on a promise P that
 * its child C settles; nothing is queued when W looks, so W parks with no
 * retry. C is submitted from outside after that; its push finds W blocked
 * and tries to start a spare, which fails (allocation k). Memory comes
 * back at once; C must still run well within W's wait (W, woken by the
 * failed start, retries it itself), or, if the submit itself failed, P is
 * settled from here. */
static struct {
    cf_future *p;
    atomic_long tid;
} pf;

static void *pf_waiter(void *arg)
{
    atomic_store(&pf.tid, (long)syscall(SYS_gettid));
    void *r = NULL;
    int rc = cf_future_result(pf.p, 30.0 * test_scale(), &r);
    return rc == 0 && r == arg ? arg : NULL;
}

static void *pf_child(void *arg)
{
    CHECK_EQ(cf_future_set_result(pf.p, arg), 0);
    return arg;
}

static void push_start_failure_is_retried(void)
{
    oom_install();
    int retried = 0;
    for (long k = 0; k < 4; k++) {
        cf_executor *ex = new_pool(1, "pf");
        pf.p = cf_future_new();
        CHECK(pf.p != NULL);
        atomic_store(&pf.tid, 0);
        cf_future *w = NULL, *c = NULL;
        CHECK_EQ(cf_submit(ex, pf_waiter, ex, &w), 0);
        WAIT_UNTIL(stats_of(ex).blocked >= 1 && atomic_load(&pf.tid) &&
                       thread_sleeps(atomic_load(&pf.tid)),
                   20.0);
        CHECK(thread_sleeps(atomic_load(&pf.tid)));
        oom_fail_at(k);
        int rc = cf_submit(ex, pf_child, ex, &c);
        long failed = atomic_load(&oom_failures);
        oom_fail_at(-1);
        CHECK(rc == 0 || rc == CF_ENOMEM);
        if (rc == 0 && failed > 0)
            retried++; /* queued, and its spare did not start */
        if (rc != 0)
            CHECK_EQ(cf_future_set_result(pf.p, ex), 0);
        CHECK(result_of(w, 50.0) == ex);
        if (rc == 0) {
            CHECK(result_of(c, 50.0) == ex);
            cf_future_release(c);
        }
        cf_future_release(w);
        cf_future_release(pf.p);
        cf_executor_free(ex);
    }
    printf("  %d of 4 submits queued their task beside a failed start\n",
           retried);
    CHECK(retried >= 1); /* some k failed the spare's start, not the submit */
}

/* Starts that keep failing while workers are blocked: each blocked waiter
 * retries its own spare every 10 ms (SPARE_RETRY_S in sched.c), and a
 * failed start elsewhere must not wake it at every task. STORM_WAITERS
 * workers block in timed waits (nothing they wait on can run) while every
 * allocation fails; the one worker left then runs STORM_TASKS queued tasks,
 * and each task it takes tries to start a worker for the rest, which
 * fails. Every failed start is one refused allocation (the worker record):
 * the runner's, one per task, and each waiter's, one per retry - about
 * one per 10 ms of the run and one when it blocks; twice that is allowed
 * (a failed start may still wake a waiter in the instant between its
 * block and its own retry, for one more round). It used to be that
 * every failed start of the runner unparked every waiter, and each went
 * round its wait and tried a start of its own: several failed starts per
 * task, and up to one per waiter. (A count, not a time, is checked: the
 * allowance for the retries grows with the run's length.) */
#define STORM_WAITERS 8
#define STORM_TASKS 2000

static struct {
    cf_executor *ex;
    cf_future *p; /* never settled while the waiters count */
    gate go;      /* every worker held until the tasks are queued */
    atomic_int arrived, tickets;
    atomic_long starved0; /* refused allocations when the runner began */
    _Atomic double t0;
} fs = { .go = GATE_INIT };

static void *fs_hold(void *arg)
{
    atomic_fetch_add(&fs.arrived, 1);
    gate_wait(&fs.go);
    if (atomic_fetch_add(&fs.tickets, 1) < STORM_WAITERS) {
        void *r = NULL; /* timed: blocks, never runs anything inline */
        int rc = cf_future_result(fs.p, 60.0 * test_scale(), &r);
        return rc == 0 && r == arg ? arg : NULL;
    }
    /* the runner: starts once every waiter has blocked */
    double end = now_s() + 20.0 * test_scale();
    while (stats_of(fs.ex).blocked < STORM_WAITERS && now_s() < end)
        sched_yield();
    atomic_store(&fs.starved0, atomic_load(&starved));
    atomic_store(&fs.t0, now_s());
    return arg;
}

/* Lets the waiters run between the runner's tasks. */
static void *fs_yield(void *arg)
{
    sched_yield();
    return arg;
}

static void failed_starts_do_not_storm_waiters(void)
{
    CHECK_EQ(cf_replace_allocator(starve_malloc, starve_realloc, starve_calloc,
                                  free),
             0);
    fs.ex = new_pool(STORM_WAITERS + 1, "fs");
    fs.p = cf_future_new();
    CHECK(fs.p != NULL);
    cf_future *h[STORM_WAITERS + 1];
    for (int i = 0; i <= STORM_WAITERS; i++)
        CHECK_EQ(cf_submit(fs.ex, fs_hold, fs.ex, &h[i]), 0);
    WAIT_UNTIL(atomic_load(&fs.arrived) == STORM_WAITERS + 1, 20.0);
    CHECK_EQ(atomic_load(&fs.arrived), STORM_WAITERS + 1);
    /* every worker busy, none blocked: these start nobody */
    static cf_future *t[STORM_TASKS];
    for (int i = 0; i < STORM_TASKS; i++)
        CHECK_EQ(cf_submit(fs.ex, fs_yield, NULL, &t[i]), 0);
    atomic_store(&starve, true);
    gate_open(&fs.go);
    WAIT_UNTIL(stats_of(fs.ex).completed >= STORM_TASKS + 1, 50.0);
    long refused = atomic_load(&starved) - atomic_load(&fs.starved0);
    double run = now_s() - atomic_load(&fs.t0);
    atomic_store(&starve, false);
    CHECK_EQ(stats_of(fs.ex).completed, STORM_TASKS + 1);
    long allowed =
        STORM_TASKS + 1 + (long)(STORM_WAITERS * 2 * (run / 0.01 + 2.0));
    printf("  %ld failed starts for %d tasks in %.3f s (allowed %ld)\n",
           refused, STORM_TASKS, run, allowed);
    CHECK(refused <= allowed);
    CHECK_EQ(cf_future_set_result(fs.p, fs.ex), 0);
    for (int i = 0; i <= STORM_WAITERS; i++) {
        CHECK(result_of(h[i], 50.0) == fs.ex);
        cf_future_release(h[i]);
    }
    for (int i = 0; i < STORM_TASKS; i++)
        cf_future_release(t[i]);
    cf_future_release(fs.p);
    cf_executor_free(fs.ex);
}

#define OUTSIDE_CHAIN 10000

typedef struct out_chain {
    cf_future *fs[OUTSIDE_CHAIN];
    cf_event *go;
} out_chain;

typedef struct out_link {
    out_chain *oc;
    int i;
} out_link;

static void *out_waiter(void *p)
{
    out_link *l = p;
    CHECK_EQ(cf_event_wait(l->oc->go, 30.0 * test_scale()), 0);
    if (l->i + 1 == OUTSIDE_CHAIN)
        return (void *)1;
    void *r = NULL;
    int rc = cf_future_result(l->oc->fs[l->i + 1], CF_FOREVER, &r);
    if (rc != 0) {
        cf_fail(rc, "link %d", l->i + 1);
        return NULL;
    }
    return (void *)((intptr_t)r + 1);
}

/* 10,000 tasks submitted from outside, each waiting on the next. */
static void outside_chain_on(int workers)
{
    cf_executor *ex = new_pool(workers, "oc");
    static out_chain oc;
    static out_link links[OUTSIDE_CHAIN];
    oc.go = cf_event_new();
    CHECK(oc.go != NULL);
    for (int i = 0; i < OUTSIDE_CHAIN; i++) {
        links[i] = (out_link){ &oc, i };
        CHECK_EQ(cf_submit(ex, out_waiter, &links[i], &oc.fs[i]), 0);
    }
    cf_event_set(oc.go);
    CHECK_EQ((intptr_t)result_of(oc.fs[0], 50.0), OUTSIDE_CHAIN);
    for (int i = 0; i < OUTSIDE_CHAIN; i++) {
        CHECK_EQ((intptr_t)result_of(oc.fs[i], 1.0), OUTSIDE_CHAIN - i);
        cf_future_release(oc.fs[i]);
    }
    /* the entries of the tasks that ran inline leave the queue soon */
    WAIT_UNTIL(stats_of(ex).queued == 0, 10.0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.completed, OUTSIDE_CHAIN);
    CHECK_EQ(s.queued, 0);
    cf_executor_free(ex);
    cf_event_free(oc.go);
}

static void outside_chain_1_worker(void)
{
    outside_chain_on(1);
}
static void outside_chain_2_workers(void)
{
    outside_chain_on(2);
}

/* ---- 5. a mixed storm of nested waits and joins ---------------------------- */

typedef struct storm {
    cf_executor *ex;
    atomic_long leaves;
} storm;

typedef struct storm_node {
    storm *st;
    int depth;
    unsigned seed;
} storm_node;

static void *storm_run(void *p);

static void storm_body(size_t lo, size_t hi, void *ctx)
{
    storm_node *n = ctx;
    for (size_t i = lo; i < hi; i++) {
        storm_node c = { n->st, n->depth - 1, n->seed * 31u + (unsigned)i };
        storm_run(&c);
    }
}

static void *storm_run(void *p)
{
    storm_node *n = p;
    storm *st = n->st;
    if (n->depth == 0) {
        atomic_fetch_add(&st->leaves, 1);
        return (void *)1;
    }
    unsigned r = n->seed * 1103515245u + 12345u;
    storm_node a = { st, n->depth - 1, r ^ 1u },
               b = { st, n->depth - 1, r ^ 2u };
    switch ((r >> 16) % 6) {
    case 0: { /* join */
        CHECK_EQ(cf_join(st->ex, storm_run, &a, NULL, storm_run, &b, NULL), 0);
        break;
    }
    case 1: { /* submit both, wait on both */
        cf_future *fs[2] = { NULL, NULL };
        CHECK_EQ(cf_submit(st->ex, storm_run, &a, &fs[0]), 0);
        CHECK_EQ(cf_submit(st->ex, storm_run, &b, &fs[1]), 0);
        CHECK_EQ(cf_wait(fs, 2, CF_FOREVER, CF_ALL_COMPLETED), 0);
        cf_future_release(fs[0]);
        cf_future_release(fs[1]);
        break;
    }
    case 2: { /* a group */
        cf_group *g = cf_group_new(st->ex);
        CHECK(g != NULL);
        CHECK_EQ(cf_group_submit(g, storm_run, &a), 0);
        CHECK_EQ(cf_group_submit(g, storm_run, &b), 0);
        CHECK_EQ(cf_group_wait(g, CF_FOREVER), 0);
        cf_group_free(g);
        break;
    }
    case 3: { /* as_completed over both, the second awaited in reverse */
        cf_future *fs[2] = { NULL, NULL };
        CHECK_EQ(cf_submit(st->ex, storm_run, &a, &fs[0]), 0);
        CHECK_EQ(cf_submit(st->ex, storm_run, &b, &fs[1]), 0);
        cf_as_completed *it = NULL;
        CHECK_EQ(cf_as_completed_new(&it, fs, 2, CF_FOREVER), 0);
        int k = 0;
        while (cf_as_completed_next(it, NULL) == 0)
            k++;
        CHECK_EQ(k, 2);
        cf_as_completed_free(it);
        cf_future_release(fs[0]);
        cf_future_release(fs[1]);
        break;
    }
    case 4: /* parallel_for over two children */
        CHECK_EQ(cf_parallel_for(st->ex, 0, 2, 1, storm_body, n), 0);
        break;
    default: { /* one child by result, one inline */
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(st->ex, storm_run, &a, &f), 0);
        storm_run(&b);
        result_of(f, 60.0);
        cf_future_release(f);
        break;
    }
    }
    return (void *)1;
}

static void storm_on(int workers)
{
    cf_executor *ex = new_pool(workers, "st");
    for (int round = 0; round < 4; round++) {
        storm st = { .ex = ex };
        int depth = 9;
        storm_node top = { &st, depth, (unsigned)(round * 7919 + workers) };
        /* from inside and from outside at once */
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, storm_run, &top, &f), 0);
        storm_node top2 = { &st, depth, top.seed + 1 };
        storm_run(&top2);
        result_of(f, 50.0);
        cf_future_release(f);
        CHECK_EQ(atomic_load(&st.leaves), 2L << depth);
    }
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.queued, 0);
    CHECK_EQ(s.failed, 0);
    CHECK_EQ(s.cancelled, 0);
    cf_executor_free(ex);
}

static void storm_1_worker(void)
{
    storm_on(1);
}
static void storm_2_workers(void)
{
    storm_on(2);
}
static void storm_8_workers(void)
{
    storm_on(8);
}

/* ---- 6. compensation: a blocked wait does not cost the pool a worker ----- */

typedef struct comp_case {
    cf_executor *ex;
    later ext;
    atomic_int others_ran;
} comp_case;

static void *other_work(void *p)
{
    atomic_fetch_add(&((comp_case *)p)->others_ran, 1);
    return NULL;
}

static void *blocking_waiter(void *p)
{
    comp_case *cc = p;
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cf_submit(cc->ex, other_work, cc, NULL), 0);
    /* blocks until the outside thread completes it: meanwhile a spare
     * runs the ten tasks above */
    result_of(cc->ext.f, 20.0);
    return (void *)(intptr_t)atomic_load(&cc->others_ran);
}

static void blocked_wait_compensates(void)
{
    cf_executor *ex = new_pool(1, "cp");
    comp_case cc = { .ex = ex };
    later_start(&cc.ext, 0.5);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, blocking_waiter, &cc, &f), 0);
    CHECK_EQ((intptr_t)result_of(f, 20.0), 10);
    cf_future_release(f);
    later_end(&cc.ext);
    cf_stats s = stats_of(ex);
    CHECK(s.spares >= 1);
    CHECK(s.blocked >= 1);
    CHECK_EQ(s.inlined, 0); /* nothing unrelated ran inline */
    WAIT_UNTIL(stats_of(ex).workers <= 1, 5.0);
    CHECK(stats_of(ex).workers <= 1);
    cf_executor_free(ex);
}

/* ---- 7. counters and names ------------------------------------------------- */

typedef struct hold {
    gate g;
    atomic_int started;
} hold;

static void *hold_task(void *p)
{
    hold *h = p;
    atomic_store(&h->started, 1);
    gate_wait(&h->g);
    return NULL;
}

static void *noop(void *p)
{
    return p;
}

static void cancel_shows_at_once(void)
{
    cf_executor *ex = new_pool(1, "cn");
    hold h = { .g = GATE_INIT };
    CHECK_EQ(cf_submit(ex, hold_task, &h, NULL), 0);
    WAIT_UNTIL(atomic_load(&h.started), 5.0);
    cf_future *q[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_submit(ex, noop, NULL, &q[i]), 0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.queued, 3);
    CHECK_EQ(s.cancelled, 0);
    CHECK(cf_future_cancel(q[1]));
    s = stats_of(ex);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.queued, 2);
    CHECK(cf_future_cancel(q[1])); /* again: true, counted once */
    CHECK_EQ(stats_of(ex).cancelled, 1);
    gate_open(&h.g);
    result_of(q[2], 20.0);
    s = stats_of(ex);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.queued, 0);
    CHECK_EQ(s.completed, 3);
    for (int i = 0; i < 3; i++)
        cf_future_release(q[i]);
    /* shutdown with cancel_futures counts each once too */
    hold h2 = { .g = GATE_INIT };
    CHECK_EQ(cf_submit(ex, hold_task, &h2, NULL), 0);
    WAIT_UNTIL(atomic_load(&h2.started), 5.0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_submit(ex, noop, NULL, &q[i]), 0);
    CHECK(cf_future_cancel(q[0]));
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    s = stats_of(ex);
    CHECK_EQ(s.cancelled, 4);
    CHECK_EQ(s.queued, 0);
    gate_open(&h2.g);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    s = stats_of(ex);
    CHECK_EQ(s.cancelled, 4);
    CHECK_EQ(s.completed, 4);
    for (int i = 0; i < 3; i++)
        cf_future_release(q[i]);
    cf_executor_free(ex);
}

/* A task submitted from a task (on the worker's deque) and cancelled. */
static void *cancel_own_child(void *p)
{
    cf_executor *ex = p;
    cf_future *c = NULL;
    CHECK_EQ(cf_submit(ex, noop, NULL, &c), 0);
    CHECK(cf_future_cancel(c));
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.queued, 0);
    cf_future_release(c);
    return NULL;
}

static void cancel_from_task_shows_at_once(void)
{
    cf_executor *ex = new_pool(1, "cc");
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, cancel_own_child, ex, &f), 0);
    result_of(f, 20.0);
    cf_future_release(f);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    cf_stats s = stats_of(ex);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.completed, 1);
    CHECK_EQ(s.queued, 0);
    cf_executor_free(ex);
}

static void *my_name(void *p)
{
    gate *g = p;
    if (g)
        gate_wait(g);
    return (void *)cf_thread_current_name();
}

static void long_prefix_names_whole(void)
{
    char prefix[301];
    for (int i = 0; i < 300; i++)
        prefix[i] = (char)('a' + i % 26);
    prefix[300] = '\0';
    cf_executor *ex = new_pool(2, prefix);
    gate g = GATE_INIT;
    cf_future *a = NULL, *b = NULL;
    CHECK_EQ(cf_submit(ex, my_name, &g, &a), 0);
    CHECK_EQ(cf_submit(ex, my_name, &g, &b), 0);
    WAIT_UNTIL(stats_of(ex).running == 2, 5.0);
    gate_open(&g);
    char na[400], nb[400];
    snprintf(na, sizeof na, "%s", (const char *)result_of(a, 20.0));
    snprintf(nb, sizeof nb, "%s", (const char *)result_of(b, 20.0));
    CHECK(strncmp(na, prefix, 300) == 0);
    CHECK(strncmp(nb, prefix, 300) == 0);
    CHECK(strcmp(na + 300, nb + 300) != 0);
    CHECK(strcmp(na + 300, "_0") == 0 || strcmp(na + 300, "_1") == 0);
    CHECK(strcmp(nb + 300, "_0") == 0 || strcmp(nb + 300, "_1") == 0);
    cf_future_release(a);
    cf_future_release(b);
    cf_executor_free(ex);
}

static const test_case cases[] = {
    TEST_CASE(lock_held_across_wait_lock),
    TEST_CASE(lock_held_across_wait_rlock),
    TEST_CASE(lock_held_across_wait_condition),
    TEST_CASE(lock_owner_is_task_lock),
    TEST_CASE(lock_owner_is_task_rlock),
    TEST_CASE(lock_owner_is_task_condition),
    TEST_CASE(join_runs_no_unawaited_task),
    TEST_CASE(condition_between_tasks),
    TEST_CASE(timed_waits_keep_timeouts),
    TEST_CASE(callback_of_inline_task_is_outside_tasks),
    TEST_CASE(deep_nested_chain),
    TEST_CASE(wait_on_many_children),
    TEST_CASE(spare_start_failure_is_retried),
    TEST_CASE(spare_handover_failure_is_retried),
    TEST_CASE(push_start_failure_is_retried),
    TEST_CASE(failed_starts_do_not_storm_waiters),
    TEST_CASE(outside_chain_1_worker),
    TEST_CASE(outside_chain_2_workers),
    TEST_CASE(storm_1_worker),
    TEST_CASE(storm_2_workers),
    TEST_CASE(storm_8_workers),
    TEST_CASE(blocked_wait_compensates),
    TEST_CASE(cancel_shows_at_once),
    TEST_CASE(cancel_from_task_shows_at_once),
    TEST_CASE(long_prefix_names_whole),
};

TEST_MAIN(cases)
