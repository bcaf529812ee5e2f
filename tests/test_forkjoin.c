/* SPDX-License-Identifier: MIT */
/*
 * test_forkjoin.c - cf_join, cf_parallel_for and task groups (cf_group_*):
 * results and error codes, from outside the pool and from inside its tasks,
 * exact visit counts and tiling of parallel ranges, failure propagation and
 * cancellation, nesting that never deadlocks (max_workers = 1), and the
 * ENOMEM paths of the group. Timing checks are generous and never measure
 * speed.
 */
#include "fib.h"
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* Failure codes the tests' tasks report: negative, distinct, not CF_E*. */
#define CODE_A (-71) /* EPROTO */
#define CODE_B (-74) /* EBADMSG */
#define CODE_C (-77) /* EBADFD */

/* ---- helpers */

static cf_executor *new_pool(int workers, const char *prefix)
{
    cf_options o = { .max_workers = workers, .name_prefix = prefix };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

static void *run_in_pool(cf_executor *ex, cf_fn fn, void *arg)
{
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, fn, arg, &f), 0);
    void *r = NULL;
    int rc = cf_future_result(f, 30.0 * test_scale(), &r);
    if (rc != 0) {
        const char *m = NULL;
        cf_future_exception(f, 0, &m);
        fprintf(stderr, "task failed: %d (%s)\n", rc, m ? m : "");
    }
    CHECK_EQ(rc, 0);
    cf_future_release(f);
    return r;
}

/* Polls an atomic until it reaches want (no cfutures call, no allocation). */
static void spin_until(atomic_int *v, int want)
{
    double t0 = now_s();
    while (atomic_load(v) < want) {
        CHECK(now_s() - t0 < 20.0 * test_scale());
        sleep_s(0.0005);
    }
}

/* A task that counts itself started and blocks on a gate. */
typedef struct grp_started_gate {
    atomic_int started;
    cf_event *gate;
} grp_started_gate;

static void *grp_count_gate(void *p)
{
    atomic_fetch_add(&((grp_started_gate *)p)->started, 1);
    return NULL;
}

/* ---- cf_join: results */

typedef struct side {
    atomic_int ran;
    pthread_t thread; /* written by the side, read after the join */
    void *ret;
    int fail;     /* nonzero: cf_fail(fail) */
    double sleep; /* seconds to sleep first */
    int fail_rc;  /* what cf_fail returned */
} side;

static void *side_fn(void *p)
{
    side *s = p;
    if (s->sleep > 0)
        sleep_s(s->sleep);
    s->thread = pthread_self();
    if (s->fail)
        s->fail_rc = cf_fail(s->fail, "side failed with %d", s->fail);
    atomic_fetch_add(&s->ran, 1);
    return s->ret;
}

/* As side_fn, for a side shared by both branches: touches atomics only. */
static void *shared_side_fn(void *p)
{
    side *s = p;
    atomic_fetch_add(&s->ran, 1);
    return s->ret;
}

static void join_outside_results(void)
{
    cf_executor *ex = new_pool(2, "jo");
    side a = { .ret = (void *)0x11 }, b = { .ret = (void *)0x22 };
    void *ra = NULL, *rb = NULL;
    CHECK_EQ(cf_join(ex, side_fn, &a, &ra, side_fn, &b, &rb), 0);
    CHECK(ra == (void *)0x11);
    CHECK(rb == (void *)0x22);
    CHECK_EQ(atomic_load(&a.ran), 1);
    CHECK_EQ(atomic_load(&b.ran), 1);
    /* From outside, the pair is handed to the pool: neither side runs on
     * the caller's thread. */
    CHECK(!pthread_equal(a.thread, pthread_self()));
    CHECK(!pthread_equal(b.thread, pthread_self()));
    /* NULL result pointers are fine, either or both. */
    CHECK_EQ(cf_join(ex, side_fn, &a, NULL, side_fn, &b, &rb), 0);
    CHECK_EQ(cf_join(ex, side_fn, &a, &ra, side_fn, &b, NULL), 0);
    CHECK_EQ(cf_join(ex, side_fn, &a, NULL, side_fn, &b, NULL), 0);
    CHECK_EQ(atomic_load(&a.ran), 4);
    CHECK_EQ(atomic_load(&b.ran), 4);
    /* The same function and argument on both sides. */
    side c = { .ret = (void *)0x33 };
    CHECK_EQ(cf_join(ex, shared_side_fn, &c, &ra, shared_side_fn, &c, &rb), 0);
    CHECK(ra == (void *)0x33 && rb == (void *)0x33);
    CHECK_EQ(atomic_load(&c.ran), 2);
    cf_executor_free(ex);
}

static void *join_from_cf_thread(void *p)
{
    cf_executor *ex = p;
    side a = { .ret = (void *)5 }, b = { .ret = (void *)6 };
    void *ra = NULL, *rb = NULL;
    CHECK_EQ(cf_join(ex, side_fn, &a, &ra, side_fn, &b, &rb), 0);
    CHECK(ra == (void *)5 && rb == (void *)6);
    CHECK(!pthread_equal(a.thread, pthread_self()));
    return (void *)1;
}

static void join_outside_many_threads(void)
{
    cf_executor *ex = new_pool(2, "jt");
    cf_thread *t[6];
    for (int i = 0; i < 6; i++)
        CHECK_EQ(cf_thread_start(&t[i], join_from_cf_thread, ex, NULL), 0);
    for (int i = 0; i < 6; i++) {
        void *r = NULL;
        CHECK_EQ(cf_thread_join(t[i], 30.0 * test_scale(), &r), 0);
        CHECK(r == (void *)1);
    }
    cf_executor_free(ex);
}

typedef struct inside_ctx {
    cf_executor *ex;
    side a, b;
    void *ra, *rb;
    int rc;
    pthread_t self;
} inside_ctx;

static void *join_inside_task(void *p)
{
    inside_ctx *c = p;
    c->self = pthread_self();
    c->rc = cf_join(c->ex, side_fn, &c->a, &c->ra, side_fn, &c->b, &c->rb);
    return (void *)0x77;
}

static void join_inside_results(void)
{
    for (int workers = 1; workers <= 3; workers++) {
        cf_executor *ex = new_pool(workers, "ji");
        inside_ctx c = { .ex = ex };
        c.a.ret = (void *)0x1a;
        c.b.ret = (void *)0x1b;
        CHECK(run_in_pool(ex, join_inside_task, &c) == (void *)0x77);
        CHECK_EQ(c.rc, 0);
        CHECK(c.ra == (void *)0x1a && c.rb == (void *)0x1b);
        CHECK_EQ(atomic_load(&c.a.ran), 1);
        CHECK_EQ(atomic_load(&c.b.ran), 1);
        /* Inside a worker, the caller runs a itself. */
        CHECK(pthread_equal(c.a.thread, c.self));
        /* NULL result pointers inside a worker. */
        inside_ctx d = { .ex = ex };
        d.a.ret = (void *)1;
        d.b.ret = (void *)2;
        d.ra = d.rb = (void *)0xdead;
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, join_inside_task, &d, &f), 0);
        CHECK_EQ(cf_future_result(f, 30.0 * test_scale(), NULL), 0);
        cf_future_release(f);
        CHECK_EQ(d.rc, 0);
        cf_executor_free(ex);
    }
}

/* A worker of another pool calling cf_join on ex is an outside thread. */
typedef struct cross_ctx {
    cf_executor *target;
    side a, b;
    void *ra, *rb;
} cross_ctx;

static void *cross_pool_task(void *p)
{
    cross_ctx *c = p;
    int rc = cf_join(c->target, side_fn, &c->a, &c->ra, side_fn, &c->b, &c->rb);
    return (void *)(intptr_t)rc;
}

static void join_from_other_pool_worker(void)
{
    cf_executor *target = new_pool(1, "tg");
    cf_executor *other = new_pool(1, "ot");
    cross_ctx c = { .target = target };
    c.a.ret = (void *)3;
    c.b.ret = (void *)4;
    CHECK((intptr_t)run_in_pool(other, cross_pool_task, &c) == 0);
    CHECK(c.ra == (void *)3 && c.rb == (void *)4);
    CHECK_EQ(atomic_load(&c.a.ran), 1);
    CHECK_EQ(atomic_load(&c.b.ran), 1);
    cf_executor_free(other);
    cf_executor_free(target);
}

/* Plain pthreads (not cf_threads) that come and go, each making one call
 * of each kind: whatever a caller's thread needs is cleaned up with it. */
typedef struct plain_arg {
    cf_executor *ex;
    int ok;
} plain_arg;

static void plain_units(size_t lo, size_t hi, void *p)
{
    atomic_fetch_add((atomic_long *)p, (long)(hi - lo));
}

static void *plain_thread(void *p)
{
    plain_arg *a = p;
    side x = { .ret = (void *)1 }, y = { .ret = (void *)2 };
    void *rx = NULL, *ry = NULL;
    atomic_long units = 0;
    cf_group *g = cf_group_new(a->ex);
    grp_started_gate c = { 0 };
    a->ok = g != NULL &&
            cf_join(a->ex, side_fn, &x, &rx, side_fn, &y, &ry) == 0 &&
            rx == (void *)1 && ry == (void *)2 &&
            cf_parallel_for(a->ex, 0, 100, 3, plain_units, &units) == 0 &&
            atomic_load(&units) == 100 &&
            cf_group_submit(g, grp_count_gate, &c) == 0 &&
            cf_group_wait(g, 30.0 * test_scale()) == 0 &&
            atomic_load(&c.started) == 1;
    cf_group_free(g);
    return NULL;
}

static void join_from_plain_pthreads(void)
{
    cf_executor *ex = new_pool(2, "pp");
    for (int round = 0; round < 10; round++) {
        pthread_t th[8];
        plain_arg a[8];
        for (int i = 0; i < 8; i++) {
            a[i] = (plain_arg){ ex, 0 };
            CHECK_EQ(pthread_create(&th[i], NULL, plain_thread, &a[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(pthread_join(th[i], NULL), 0);
            CHECK_EQ(a[i].ok, 1);
        }
    }
    cf_executor_free(ex);
}

/* Two one-worker pools whose tasks call into each other, ten levels
 * deep: a worker waiting on the other pool keeps running its own. */
typedef struct ping {
    cf_executor *pools[2];
    int depth;
    int side;
} ping;

static void *ping_task(void *p)
{
    const ping *pg = p;
    if (pg->depth == 0)
        return (void *)1;
    ping next = { { pg->pools[0], pg->pools[1] }, pg->depth - 1, !pg->side };
    cf_executor *other = pg->pools[next.side];
    void *ra = NULL, *rb = NULL;
    int rc = cf_join(other, ping_task, &next, &ra, ping_task, &next, &rb);
    if (rc != 0) {
        cf_fail(rc, "join at depth %d", pg->depth);
        return NULL;
    }
    return (void *)((intptr_t)ra + (intptr_t)rb);
}

static void join_across_two_pools(void)
{
    cf_executor *a = new_pool(1, "pa"), *b = new_pool(1, "pb");
    ping top = { { a, b }, 10, 0 };
    for (int round = 0; round < 3; round++)
        CHECK_EQ((intptr_t)run_in_pool(a, ping_task, &top), 1 << 10);
    cf_executor_free(a);
    cf_executor_free(b);
}

/* ---- cf_join: recursion */

static void fib_on(int workers, int n)
{
    cf_executor *ex = new_pool(workers, "fib");
    /* from outside: the top join is handed to the pool */
    fib_arg top = { ex, n };
    CHECK_EQ((long)(intptr_t)fib_task(&top), fib_serial(n));
    /* from inside a task */
    CHECK_EQ((long)(intptr_t)run_in_pool(ex, fib_task, &top), fib_serial(n));
    cf_executor_free(ex);
}

static void join_fib25_1_worker(void)
{
    fib_on(1, 25);
}
static void join_fib25_2_workers(void)
{
    fib_on(2, 25);
}
static void join_fib25_4_workers(void)
{
    fib_on(4, 25);
}

static void join_fib_small(void)
{
    cf_executor *ex = new_pool(2, "fs");
    for (int n = 0; n <= 12; n++) {
        fib_arg a = { ex, n };
        CHECK_EQ((long)(intptr_t)run_in_pool(ex, fib_task, &a), fib_serial(n));
    }
    cf_executor_free(ex);
}

/* ---- cf_join: failures */

static void join_failure_outside(void)
{
    cf_executor *ex = new_pool(2, "jf");
    /* a fails: its code, and b still ran to the end */
    side a = { .fail = CODE_A }, b = { .sleep = 0.05 };
    CHECK_EQ(cf_join(ex, side_fn, &a, NULL, side_fn, &b, NULL), CODE_A);
    CHECK_EQ(a.fail_rc, 0); /* cf_fail worked: a ran as a task */
    CHECK_EQ(atomic_load(&a.ran), 1);
    CHECK_EQ(atomic_load(&b.ran), 1);
    /* b fails: its code, and a still ran to the end */
    side c = { .sleep = 0.05 }, d = { .fail = CODE_B };
    CHECK_EQ(cf_join(ex, side_fn, &c, NULL, side_fn, &d, NULL), CODE_B);
    CHECK_EQ(d.fail_rc, 0);
    CHECK_EQ(atomic_load(&c.ran), 1);
    CHECK_EQ(atomic_load(&d.ran), 1);
    /* both fail, a at once and b later: the first failure is a's */
    side e = { .fail = CODE_A }, g = { .fail = CODE_B, .sleep = 0.1 };
    CHECK_EQ(cf_join(ex, side_fn, &e, NULL, side_fn, &g, NULL), CODE_A);
    CHECK_EQ(atomic_load(&g.ran), 1);
    /* a failure does not stick to the pool: the next join succeeds */
    side h = { .ret = (void *)9 }, i = { .ret = (void *)10 };
    void *rh = NULL, *ri = NULL;
    CHECK_EQ(cf_join(ex, side_fn, &h, &rh, side_fn, &i, &ri), 0);
    CHECK(rh == (void *)9 && ri == (void *)10);
    cf_executor_free(ex);
}

typedef struct fail_inside_ctx {
    cf_executor *ex;
    side a, b;
    int rc;
    int outer_fail; /* cf_fail this in the outer task before the join */
} fail_inside_ctx;

static void *join_fail_inside_task(void *p)
{
    fail_inside_ctx *c = p;
    if (c->outer_fail)
        CHECK_EQ(cf_fail(c->outer_fail, "outer"), 0);
    c->rc = cf_join(c->ex, side_fn, &c->a, NULL, side_fn, &c->b, NULL);
    return (void *)0x99;
}

static void join_failure_inside(void)
{
    for (int workers = 1; workers <= 2; workers++) {
        cf_executor *ex = new_pool(workers, "jfi");
        /* a fails inside a worker: the join returns a's code, b ran, and
         * the failure belongs to a, not to the task that called cf_join:
         * the outer task still succeeds. */
        fail_inside_ctx c = { .ex = ex };
        c.a.fail = CODE_A;
        c.b.sleep = 0.02;
        CHECK(run_in_pool(ex, join_fail_inside_task, &c) == (void *)0x99);
        CHECK_EQ(c.rc, CODE_A);
        CHECK_EQ(c.a.fail_rc, 0);
        CHECK_EQ(atomic_load(&c.a.ran), 1);
        CHECK_EQ(atomic_load(&c.b.ran), 1);
        /* b fails */
        fail_inside_ctx d = { .ex = ex };
        d.b.fail = CODE_B;
        d.a.sleep = 0.02;
        CHECK(run_in_pool(ex, join_fail_inside_task, &d) == (void *)0x99);
        CHECK_EQ(d.rc, CODE_B);
        CHECK_EQ(atomic_load(&d.a.ran), 1);
        CHECK_EQ(atomic_load(&d.b.ran), 1);
        /* The outer task failed before the join: the join of two good
         * sides is 0, and the outer task keeps its own failure. */
        fail_inside_ctx e = { .ex = ex, .outer_fail = CODE_C };
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, join_fail_inside_task, &e, &f), 0);
        CHECK_EQ(cf_future_result(f, 30.0 * test_scale(), NULL), CODE_C);
        cf_future_release(f);
        CHECK_EQ(e.rc, 0);
        CHECK_EQ(atomic_load(&e.a.ran), 1);
        CHECK_EQ(atomic_load(&e.b.ran), 1);
        cf_executor_free(ex);
    }
}

/* b is stolen for sure: a does not return until b has started on another
 * worker. The thief's result and failure come back to the joiner. */
typedef struct steal_ctx {
    atomic_int b_started;
    atomic_int a_gave_up;
    pthread_t a_thread, b_thread;
    int b_fail;
} steal_ctx;

static void *wait_for_b(void *p)
{
    steal_ctx *c = p;
    c->a_thread = pthread_self();
    double t0 = now_s();
    while (!atomic_load(&c->b_started)) {
        if (now_s() - t0 > 10.0 * test_scale()) {
            atomic_store(&c->a_gave_up, 1);
            break;
        }
        sleep_s(0.0002);
    }
    return (void *)0xa1;
}

static void *stolen_b(void *p)
{
    steal_ctx *c = p;
    c->b_thread = pthread_self();
    atomic_store(&c->b_started, 1);
    sleep_s(0.02); /* the joiner finishes a first and must wait for us */
    if (c->b_fail)
        CHECK_EQ(cf_fail(c->b_fail, "stolen b failed"), 0);
    return (void *)0xb1;
}

typedef struct steal_task_arg {
    cf_executor *ex;
    steal_ctx c;
    void *ra, *rb;
    int rc;
} steal_task_arg;

static void *steal_task(void *p)
{
    steal_task_arg *t = p;
    t->rc = cf_join(t->ex, wait_for_b, &t->c, &t->ra, stolen_b, &t->c, &t->rb);
    return NULL;
}

static void join_b_stolen(void)
{
    cf_executor *ex = new_pool(2, "jst");
    for (int fail = 0; fail <= 1; fail++) {
        for (int round = 0; round < 5; round++) {
            steal_task_arg t = { .ex = ex,
                                 .c = { .b_fail = fail ? CODE_B : 0 } };
            CHECK(run_in_pool(ex, steal_task, &t) == NULL);
            CHECK_EQ(atomic_load(&t.c.a_gave_up), 0); /* b was taken */
            CHECK(!pthread_equal(t.c.a_thread, t.c.b_thread));
            CHECK_EQ(t.rc, fail ? CODE_B : 0);
            CHECK(t.ra == (void *)0xa1);
            if (!fail)
                CHECK(t.rb == (void *)0xb1);
        }
    }
    cf_executor_free(ex);
}

/* ---- cf_join: bad input and shutdown */

static void join_bad_input(void)
{
    cf_executor *ex = new_pool(1, "jb");
    side a = { 0 }, b = { 0 };
    void *ra = (void *)1, *rb = (void *)1;
    CHECK_EQ(cf_join(NULL, side_fn, &a, &ra, side_fn, &b, &rb), CF_EINVAL);
    CHECK_EQ(cf_join(ex, NULL, &a, &ra, side_fn, &b, &rb), CF_EINVAL);
    CHECK_EQ(cf_join(ex, side_fn, &a, &ra, NULL, &b, &rb), CF_EINVAL);
    CHECK_EQ(cf_join(ex, NULL, &a, &ra, NULL, &b, &rb), CF_EINVAL);
    /* bad input changes nothing: neither side ran */
    sleep_s(0.02);
    CHECK_EQ(atomic_load(&a.ran), 0);
    CHECK_EQ(atomic_load(&b.ran), 0);
    /* NULL arguments for the functions are fine */
    CHECK_EQ(cf_join(ex, side_fn, &a, NULL, side_fn, &b, NULL), 0);
    cf_executor_free(ex);
}

static void *null_arg_fn(void *p)
{
    return p == NULL ? (void *)1 : (void *)2;
}

static void join_null_args(void)
{
    cf_executor *ex = new_pool(2, "jn");
    void *ra = NULL, *rb = NULL;
    CHECK_EQ(cf_join(ex, null_arg_fn, NULL, &ra, null_arg_fn, NULL, &rb), 0);
    CHECK(ra == (void *)1 && rb == (void *)1);
    cf_executor_free(ex);
}

static void join_after_shutdown(void)
{
    cf_executor *ex = new_pool(2, "js");
    side a0 = { 0 }, b0 = { 0 };
    CHECK_EQ(cf_join(ex, side_fn, &a0, NULL, side_fn, &b0, NULL), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    side a = { 0 }, b = { 0 };
    void *ra = NULL, *rb = NULL;
    CHECK_EQ(cf_join(ex, side_fn, &a, &ra, side_fn, &b, &rb), CF_ESHUTDOWN);
    CHECK_EQ(atomic_load(&a.ran), 0);
    CHECK_EQ(atomic_load(&b.ran), 0);
    /* also without wait, and from another outside thread */
    cf_executor *ex2 = new_pool(1, "js2");
    CHECK_EQ(cf_shutdown(ex2, false, false), 0);
    CHECK_EQ(cf_join(ex2, side_fn, &a, NULL, side_fn, &b, NULL), CF_ESHUTDOWN);
    CHECK_EQ(atomic_load(&a.ran), 0);
    CHECK_EQ(atomic_load(&b.ran), 0);
    cf_executor_free(ex2);
    cf_executor_free(ex);
}

/* The thread-side variant: expects CF_ESHUTDOWN. */
static void *join_expect_shutdown(void *p)
{
    cf_executor *ex = p;
    side a = { 0 }, b = { 0 };
    int rc = cf_join(ex, side_fn, &a, NULL, side_fn, &b, NULL);
    if (atomic_load(&a.ran) || atomic_load(&b.ran))
        return (void *)2;
    return (void *)(intptr_t)(rc == CF_ESHUTDOWN);
}

static void join_after_shutdown_other_thread(void)
{
    cf_executor *ex = new_pool(2, "jso");
    CHECK_EQ(cf_shutdown(ex, false, false), 0);
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, join_expect_shutdown, ex, NULL), 0);
    void *r = NULL;
    CHECK_EQ(cf_thread_join(t, 30.0 * test_scale(), &r), 0);
    CHECK(r == (void *)1);
    cf_executor_free(ex);
}

/* ---- fork-join work queued when the pool cancels or breaks */

typedef struct queued_call {
    cf_executor *ex;
    int kind; /* 0: cf_join, 1: cf_parallel_for */
    side a, b;
    atomic_long calls; /* parallel_for body calls */
    int rc;
    atomic_int returned;
} queued_call;

static void count_body(size_t lo, size_t hi, void *p)
{
    (void)lo;
    (void)hi;
    atomic_fetch_add(&((queued_call *)p)->calls, 1);
}

static void *queued_call_main(void *p)
{
    queued_call *q = p;
    if (q->kind == 0)
        q->rc = cf_join(q->ex, side_fn, &q->a, NULL, side_fn, &q->b, NULL);
    else
        q->rc = cf_parallel_for(q->ex, 0, 64, 1, count_body, q);
    atomic_store(&q->returned, 1);
    return NULL;
}

/* Joins t within a generous limit; a hang fails the case with a message
 * (the thread cannot be cleaned up, so the child just exits). */
static void join_or_report(cf_thread *t, const char *what)
{
    if (cf_thread_join(t, 10.0 * test_scale(), NULL) != 0) {
        fprintf(stderr, "%s: the call never returned\n", what);
        exit(1);
    }
}

static void *block_on_event(void *p)
{
    grp_started_gate *g = p;
    atomic_fetch_add(&g->started, 1);
    CHECK_EQ(cf_event_wait(g->gate, 30.0 * test_scale()), 0);
    return NULL;
}

/* One worker, held by a blocker: the fork-join call from outside sits in
 * the pool's queue when cf_shutdown(cancel_futures) empties it. The call
 * must come back; if it says 0, everything ran, else nothing did. */
static void queued_then_cancelled(int kind)
{
    cf_executor *ex = new_pool(1, "qc");
    grp_started_gate bg = { .gate = cf_event_new() };
    CHECK(bg.gate != NULL);
    CHECK_EQ(cf_submit(ex, block_on_event, &bg, NULL), 0);
    spin_until(&bg.started, 1);
    queued_call q = { .ex = ex, .kind = kind };
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, queued_call_main, &q, NULL), 0);
    sleep_s(0.1); /* the call is queued behind the blocker by now */
    CHECK_EQ(atomic_load(&q.returned), 0);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    cf_event_set(bg.gate);
    join_or_report(t, kind ? "cf_parallel_for" : "cf_join");
    if (q.rc != 0 && q.rc != CF_ECANCELED && q.rc != CF_ESHUTDOWN) {
        fprintf(stderr, "rc %d (%s)\n", q.rc, cf_strerror(q.rc));
        CHECK(0);
    }
    if (kind == 0) {
        CHECK_EQ(atomic_load(&q.a.ran), q.rc == 0);
        CHECK_EQ(atomic_load(&q.b.ran), q.rc == 0);
    } else {
        CHECK_EQ(atomic_load(&q.calls), q.rc == 0 ? 64 : 0);
    }
    cf_executor_free(ex);
    cf_event_free(bg.gate);
}

static void join_queued_then_shutdown_cancel(void)
{
    queued_then_cancelled(0);
}

static void pfor_queued_then_shutdown_cancel(void)
{
    queued_then_cancelled(1);
}

static void *slow_failing_initializer(void *p)
{
    (void)p;
    sleep_s(0.1);
    cf_fail(CODE_A, "initializer failed");
    return NULL;
}

/* The first call from outside starts the worker, whose initializer fails
 * while the call waits in the queue: the call comes back (0 or
 * CF_EBROKEN), nothing crashes. */
static void queued_then_broken(int kind)
{
    cf_options o = { .max_workers = 1,
                     .name_prefix = "qb",
                     .initializer = slow_failing_initializer };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    queued_call q = { .ex = ex, .kind = kind };
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, queued_call_main, &q, NULL), 0);
    join_or_report(t, kind ? "cf_parallel_for" : "cf_join");
    if (q.rc != 0 && q.rc != CF_EBROKEN) {
        fprintf(stderr, "rc %d (%s)\n", q.rc, cf_strerror(q.rc));
        CHECK(0);
    }
    if (kind == 0) {
        CHECK_EQ(atomic_load(&q.a.ran), q.rc == 0);
        CHECK_EQ(atomic_load(&q.b.ran), q.rc == 0);
    } else if (q.rc == 0) {
        CHECK_EQ(atomic_load(&q.calls), 64);
    }
    cf_executor_free(ex);
}

static void join_queued_when_pool_breaks(void)
{
    queued_then_broken(0);
}

static void pfor_queued_when_pool_breaks(void)
{
    queued_then_broken(1);
}

static void *failing_initializer(void *p)
{
    (void)p;
    cf_fail(CODE_A, "initializer failed");
    return NULL;
}

static void *nop_task(void *p)
{
    return p;
}

/* Once the pool is broken, later work gets CF_EBROKEN, fork-join too. */
static void forkjoin_on_broken_pool(void)
{
    cf_options o = { .max_workers = 2,
                     .name_prefix = "bp",
                     .initializer = failing_initializer };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    /* break it and see it broken */
    cf_future *f = NULL;
    int rc = cf_submit(ex, nop_task, NULL, &f);
    if (rc == 0) {
        CHECK_EQ(cf_future_result(f, 30.0 * test_scale(), NULL), CF_EBROKEN);
        cf_future_release(f);
    } else {
        CHECK_EQ(rc, CF_EBROKEN);
    }
    CHECK_EQ(cf_submit(ex, nop_task, NULL, NULL), CF_EBROKEN);

    side a = { 0 }, b = { 0 };
    CHECK_EQ(cf_join(ex, side_fn, &a, NULL, side_fn, &b, NULL), CF_EBROKEN);
    queued_call q = { .ex = ex, .kind = 1 };
    CHECK_EQ(cf_parallel_for(ex, 0, 64, 1, count_body, &q), CF_EBROKEN);
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_started_gate c = { 0 };
    rc = cf_group_submit(g, grp_count_gate, &c);
    if (rc == 0)
        CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), CF_EBROKEN);
    else
        CHECK_EQ(rc, CF_EBROKEN);
    cf_group_free(g);
    sleep_s(0.02);
    CHECK_EQ(atomic_load(&a.ran), 0);
    CHECK_EQ(atomic_load(&b.ran), 0);
    CHECK_EQ(atomic_load(&q.calls), 0);
    CHECK_EQ(atomic_load(&c.started), 0);
    cf_executor_free(ex);
}

/* ---- cf_join allocates nothing inside a worker */

typedef struct noalloc_ctx {
    cf_executor *ex;
    int rc_warm, rc_armed;
    long failures;
    long value;
    atomic_int done;
} noalloc_ctx;

static void *noalloc_task(void *p)
{
    noalloc_ctx *c = p;
    side a = { 0 }, b = { 0 };
    fib_arg f = { c->ex, 12 };
    /* warm up whatever per-thread state the scheduler keeps */
    c->rc_warm = cf_join(c->ex, side_fn, &a, NULL, side_fn, &b, NULL);
    fib_task(&f);
    oom_fail_at(0); /* the next allocation anywhere fails */
    c->rc_armed = cf_join(c->ex, side_fn, &a, NULL, side_fn, &b, NULL);
    void *r = NULL;
    void *r2 = NULL;
    fib_arg g = { c->ex, 11 };
    int rc = cf_join(c->ex, fib_task, &f, &r, fib_task, &g, &r2);
    c->failures = atomic_load(&oom_failures);
    oom_fail_at(-1);
    c->value = rc == 0 ? (long)(intptr_t)r + (long)(intptr_t)r2 : -1;
    atomic_store(&c->done, 1);
    return NULL;
}

static void join_inside_allocates_nothing(void)
{
    oom_install();
    cf_executor *ex = new_pool(1, "na");
    noalloc_ctx c = { .ex = ex };
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, noalloc_task, &c, &f), 0);
    /* wait without calling into cfutures, so this thread allocates nothing
     * while the task has the failing allocator armed */
    spin_until(&c.done, 1);
    CHECK_EQ(cf_future_result(f, 30.0 * test_scale(), NULL), 0);
    cf_future_release(f);
    CHECK_EQ(c.rc_warm, 0);
    CHECK_EQ(c.failures, 0);
    CHECK_EQ(c.rc_armed, 0);
    CHECK_EQ(c.value, fib_serial(13));
    cf_executor_free(ex);
}

/* ---- cf_parallel_for: coverage */

typedef struct pf_ctx {
    atomic_uchar *hits; /* hits[i - begin] */
    size_t begin, end, grain;
    atomic_long calls;
    atomic_long bad;      /* empty, out of bounds or too big ranges seen */
    atomic_long overflow; /* an index hit more than once */
    _Atomic size_t bad_lo, bad_hi; /* the last bad range, for the message */
} pf_ctx;

static void pf_body(size_t lo, size_t hi, void *p)
{
    pf_ctx *c = p;
    atomic_fetch_add(&c->calls, 1);
    if (!(lo < hi && lo >= c->begin && hi <= c->end &&
          (c->grain == 0 || hi - lo <= c->grain))) {
        atomic_store(&c->bad_lo, lo);
        atomic_store(&c->bad_hi, hi);
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    for (size_t i = lo; i < hi; i++)
        if (atomic_fetch_add_explicit(&c->hits[i - c->begin], 1,
                                      memory_order_relaxed) != 0)
            atomic_fetch_add(&c->overflow, 1);
}

/* Runs one cf_parallel_for over [begin, begin + n) with grain and checks
 * that every index was visited exactly once, by non-empty in-bounds ranges
 * (of at most grain elements when grain > 0). */
static void pf_check(cf_executor *ex, size_t begin, size_t n, size_t grain)
{
    pf_ctx c = { .begin = begin, .end = begin + n, .grain = grain };
    c.hits = calloc(n ? n : 1, sizeof *c.hits);
    CHECK(c.hits != NULL);
    int rc = cf_parallel_for(ex, begin, begin + n, grain, pf_body, &c);
    if (rc != 0)
        fprintf(stderr, "n=%zu grain=%zu: rc %d\n", n, grain, rc);
    CHECK_EQ(rc, 0);
    long calls = atomic_load(&c.calls);
    if (atomic_load(&c.bad) != 0)
        fprintf(stderr, "[%zu, %zu) grain %zu: body got [%zu, %zu)\n", begin,
                begin + n, grain, atomic_load(&c.bad_lo),
                atomic_load(&c.bad_hi));
    CHECK_EQ(atomic_load(&c.bad), 0);
    CHECK_EQ(atomic_load(&c.overflow), 0);
    for (size_t i = 0; i < n; i++)
        if (atomic_load_explicit(&c.hits[i], memory_order_relaxed) != 1) {
            fprintf(stderr, "n=%zu grain=%zu: index %zu visited %d times\n", n,
                    grain, begin + i, (int)atomic_load(&c.hits[i]));
            CHECK(0);
        }
    if (n == 0)
        CHECK_EQ(calls, 0);
    else if (grain >= n)
        CHECK_EQ(calls, 1); /* the whole range fits the grain: one call */
    else if (grain == 1)
        CHECK_EQ(calls, (long)n);
    else if (grain > 0)
        CHECK(calls >= (long)((n + grain - 1) / grain));
    /* It returned after every body did: nothing runs later. */
    CHECK_EQ(atomic_load(&c.calls), calls);
    free(c.hits);
}

static const size_t pf_sizes[] = { 0, 1, 7, 1000, 1000003 };

static void pf_matrix(cf_executor *ex)
{
    for (size_t s = 0; s < sizeof pf_sizes / sizeof pf_sizes[0]; s++) {
        size_t n = pf_sizes[s];
        size_t grains[] = { 0, 1, 64, n + 1, (size_t)-1 };
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            pf_check(ex, 0, n, grains[g]);
            if (n <= 1000)
                pf_check(ex, 12345, n, grains[g]);
        }
    }
}

static void pfor_covers_range_outside(void)
{
    cf_executor *ex = new_pool(4, "pfo");
    pf_matrix(ex);
    cf_executor_free(ex);
}

static void pfor_covers_range_one_worker(void)
{
    cf_executor *ex = new_pool(1, "pf1");
    pf_check(ex, 0, 1000003, 0);
    pf_check(ex, 0, 100003, 1);
    pf_check(ex, 3, 1000, 64);
    cf_executor_free(ex);
}

static void *pf_matrix_task(void *p)
{
    pf_matrix(p);
    return (void *)1;
}

static void pfor_covers_range_inside_task(void)
{
    cf_executor *ex = new_pool(2, "pfi");
    CHECK(run_in_pool(ex, pf_matrix_task, ex) == (void *)1);
    cf_executor_free(ex);
}

static void pfor_near_size_max(void)
{
    /* midpoints must not overflow */
    cf_executor *ex = new_pool(2, "pfm");
    pf_check(ex, (size_t)-1 - 1000, 1000, 1);
    pf_check(ex, (size_t)-1 - 1000, 1000, 0);
    pf_check(ex, (size_t)-1 - 1000, 1000, 7);
    pf_check(ex, (size_t)-1 / 2 + 17, 999, 2);
    cf_executor_free(ex);
}

typedef struct huge_ctx {
    _Atomic size_t sum;
    atomic_long calls;
    atomic_long out_of_order; /* ranges outside [begin, end) or empty */
    size_t begin, end;
} huge_ctx;

static void huge_body(size_t lo, size_t hi, void *p)
{
    huge_ctx *c = p;
    if (!(lo < hi && lo >= c->begin && hi <= c->end))
        atomic_fetch_add(&c->out_of_order, 1);
    atomic_fetch_add(&c->sum, hi - lo);
    /* a runaway split would call this ~2^64 times: stop it */
    if (atomic_fetch_add(&c->calls, 1) == 100000)
        cf_fail(CODE_C, "too many pieces");
}

/* Ranges as long as size_t allows: the adaptive grain must not overflow. */
static void pfor_huge_ranges(void)
{
    cf_executor *ex = new_pool(4, "pfh");
    const size_t max = (size_t)-1;
    size_t spans[][3] = {
        { 0, max, 0 },         { 1, max, 0 },       { 0, max - 1, 0 },
        { 0, max / 2 + 3, 0 }, { 0, max, max / 4 }, { 0, max, max },
    };
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++) {
        huge_ctx c = { .begin = spans[i][0], .end = spans[i][1] };
        int rc =
            cf_parallel_for(ex, c.begin, c.end, spans[i][2], huge_body, &c);
        if (rc != 0 || atomic_load(&c.sum) != c.end - c.begin) {
            fprintf(stderr, "[%zu, %zu) grain %zu: rc %d, %ld calls, sum %zu\n",
                    c.begin, c.end, spans[i][2], rc, atomic_load(&c.calls),
                    atomic_load(&c.sum));
            CHECK(0);
        }
        CHECK_EQ(atomic_load(&c.out_of_order), 0);
        CHECK(atomic_load(&c.calls) <= 10000);
    }
    cf_executor_free(ex);
}

static void pfor_empty_and_bad_input(void)
{
    cf_executor *ex = new_pool(2, "pfb");
    pf_ctx c = { .begin = 0, .end = 100 };
    c.hits = calloc(100, sizeof *c.hits);
    CHECK(c.hits != NULL);
    /* begin == end: 0 and no call */
    CHECK_EQ(cf_parallel_for(ex, 5, 5, 0, pf_body, &c), 0);
    CHECK_EQ(cf_parallel_for(ex, 0, 0, 1, pf_body, &c), 0);
    /* begin > end: CF_EINVAL and no call */
    CHECK_EQ(cf_parallel_for(ex, 10, 5, 1, pf_body, &c), CF_EINVAL);
    CHECK_EQ(cf_parallel_for(ex, 1, 0, 0, pf_body, &c), CF_EINVAL);
    CHECK_EQ(cf_parallel_for(NULL, 0, 10, 1, pf_body, &c), CF_EINVAL);
    CHECK_EQ(cf_parallel_for(ex, 0, 10, 1, NULL, &c), CF_EINVAL);
    sleep_s(0.02);
    CHECK_EQ(atomic_load(&c.calls), 0);
    free(c.hits);
    cf_executor_free(ex);
}

static void pfor_after_shutdown(void)
{
    cf_executor *ex = new_pool(2, "pfs");
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    pf_ctx c = { .begin = 0, .end = 1000 };
    c.hits = calloc(1000, sizeof *c.hits);
    CHECK(c.hits != NULL);
    CHECK_EQ(cf_parallel_for(ex, 0, 1000, 1, pf_body, &c), CF_ESHUTDOWN);
    sleep_s(0.02);
    CHECK_EQ(atomic_load(&c.calls), 0);
    free(c.hits);
    cf_executor_free(ex);
}

/* ---- cf_parallel_for: failures */

typedef struct pff_ctx {
    atomic_long calls;
    size_t fail_at; /* the range holding this index fails; -1: every call */
    int code;
    atomic_int fail_rc_bad; /* cf_fail returned nonzero in a body */
} pff_ctx;

static void pff_body(size_t lo, size_t hi, void *p)
{
    pff_ctx *c = p;
    atomic_fetch_add(&c->calls, 1);
    if (c->fail_at == (size_t)-1 || (lo <= c->fail_at && c->fail_at < hi))
        if (cf_fail(c->code, "body [%zu, %zu) failed", lo, hi) != 0)
            atomic_store(&c->fail_rc_bad, 1);
}

static void pfor_failure_stops_splitting(void)
{
    cf_executor *ex = new_pool(4, "pff");
    const size_t total = 1000000;
    /* every body fails: splitting stops almost at once */
    pff_ctx c = { .fail_at = (size_t)-1, .code = CODE_A };
    CHECK_EQ(cf_parallel_for(ex, 0, total, 1, pff_body, &c), CODE_A);
    CHECK_EQ(atomic_load(&c.fail_rc_bad), 0);
    long calls = atomic_load(&c.calls);
    CHECK(calls >= 1);
    CHECK(calls < (long)(total / 100));
    /* returned after the last body: no call comes later */
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&c.calls), calls);

    /* the first index fails: far fewer calls than the whole range */
    pff_ctx d = { .fail_at = 0, .code = CODE_B };
    CHECK_EQ(cf_parallel_for(ex, 0, total, 1, pff_body, &d), CODE_B);
    calls = atomic_load(&d.calls);
    CHECK(calls >= 1);
    CHECK(calls < (long)total);
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&d.calls), calls);

    /* the last index fails: the code still comes back */
    pff_ctx e = { .fail_at = total - 1, .code = CODE_C };
    CHECK_EQ(cf_parallel_for(ex, 0, total, 64, pff_body, &e), CODE_C);

    /* a single body call (grain covers the range) from outside still runs
     * as a task, so its cf_fail counts */
    pff_ctx g = { .fail_at = (size_t)-1, .code = CODE_A };
    CHECK_EQ(cf_parallel_for(ex, 0, 10, 100, pff_body, &g), CODE_A);
    CHECK_EQ(atomic_load(&g.calls), 1);
    CHECK_EQ(atomic_load(&g.fail_rc_bad), 0);

    /* and the pool goes on working */
    pf_check(ex, 0, 10000, 0);
    cf_executor_free(ex);
}

typedef struct pff_task_ctx {
    cf_executor *ex;
    pff_ctx c;
    int rc;
} pff_task_ctx;

static void *pff_task(void *p)
{
    pff_task_ctx *t = p;
    t->rc = cf_parallel_for(t->ex, 0, 100000, 1, pff_body, &t->c);
    return (void *)5; /* the body's failure is not this task's */
}

static void pfor_failure_inside_task(void)
{
    cf_executor *ex = new_pool(2, "pft");
    pff_task_ctx t = { .ex = ex, .c = { .fail_at = 500, .code = CODE_B } };
    CHECK(run_in_pool(ex, pff_task, &t) == (void *)5);
    CHECK_EQ(t.rc, CODE_B);
    CHECK(atomic_load(&t.c.calls) < 100000);
    cf_executor_free(ex);
}

/* ---- cf_parallel_for: nesting, workers */

typedef struct nest_ctx {
    cf_executor *ex;
    atomic_uchar *hits; /* outer * INNER + inner */
    atomic_long bad;
} nest_ctx;

#define NEST_OUTER 40
#define NEST_INNER 2000

typedef struct inner_ctx {
    nest_ctx *n;
    size_t row;
} inner_ctx;

static void inner_body(size_t lo, size_t hi, void *p)
{
    inner_ctx *ic = p;
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add(&ic->n->hits[ic->row * NEST_INNER + i], 1);
}

static void outer_body(size_t lo, size_t hi, void *p)
{
    nest_ctx *n = p;
    for (size_t r = lo; r < hi; r++) {
        inner_ctx ic = { n, r };
        if (cf_parallel_for(n->ex, 0, NEST_INNER, r % 3 == 0 ? 0 : 16,
                            inner_body, &ic) != 0)
            atomic_fetch_add(&n->bad, 1);
    }
}

static void nest_check(cf_executor *ex)
{
    nest_ctx n = { .ex = ex };
    n.hits = calloc(NEST_OUTER * NEST_INNER, sizeof *n.hits);
    CHECK(n.hits != NULL);
    CHECK_EQ(cf_parallel_for(ex, 0, NEST_OUTER, 1, outer_body, &n), 0);
    CHECK_EQ(atomic_load(&n.bad), 0);
    for (size_t i = 0; i < NEST_OUTER * NEST_INNER; i++)
        CHECK_EQ(atomic_load(&n.hits[i]), 1);
    free(n.hits);
}

static void pfor_nested(void)
{
    for (int workers = 1; workers <= 4; workers *= 2) {
        cf_executor *ex = new_pool(workers, "pfn");
        nest_check(ex);
        cf_executor_free(ex);
    }
}

#define NAMES 256

typedef struct names_ctx {
    char names[NAMES][32];
    atomic_int seen;
} names_ctx;

static void names_body(size_t lo, size_t hi, void *p)
{
    names_ctx *c = p;
    for (size_t i = lo; i < hi; i++) {
        const char *me = cf_thread_current_name();
        snprintf(c->names[i], sizeof c->names[i], "%s", me ? me : "?");
        atomic_fetch_add(&c->seen, 1);
        sleep_s(0.001);
    }
}

static void pfor_uses_several_workers(void)
{
    if (cf_cpu_count() < 2) {
        printf("  (skipped: one CPU)\n");
        return;
    }
    cf_executor *ex = new_pool(2, "pfw");
    static names_ctx c;
    CHECK_EQ(cf_parallel_for(ex, 0, NAMES, 1, names_body, &c), 0);
    CHECK_EQ(atomic_load(&c.seen), NAMES);
    int distinct = 0;
    for (int i = 0; i < NAMES; i++) {
        /* every body ran on a worker of this pool, not on the caller */
        CHECK(strncmp(c.names[i], "pfw_", 4) == 0);
        bool fresh = true;
        for (int j = 0; j < i && fresh; j++)
            fresh = strcmp(c.names[i], c.names[j]) != 0;
        distinct += fresh;
    }
    CHECK(distinct >= 2);
    /* the two workers, and the spares that stood in for a joiner blocked
     * on a stolen half */
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK(distinct <= 2 + (int)st.spares);
    CHECK(st.spares <= st.blocked);
    cf_executor_free(ex);
}

/* ---- cf_group */

typedef struct grp_ctx {
    atomic_int ran;
    atomic_int started;
    cf_event *gate; /* tasks that block wait on it */
    int fail;
    double sleep;
} grp_ctx;

static void *grp_count(void *p)
{
    grp_ctx *c = p;
    atomic_fetch_add(&c->ran, 1);
    return NULL;
}

static void *grp_block(void *p)
{
    grp_ctx *c = p;
    atomic_fetch_add(&c->started, 1);
    CHECK_EQ(cf_event_wait(c->gate, 30.0 * test_scale()), 0);
    if (c->fail)
        CHECK_EQ(cf_fail(c->fail, "blocked task failed"), 0);
    atomic_fetch_add(&c->ran, 1);
    return NULL;
}

static void *grp_slow_count(void *p)
{
    grp_ctx *c = p;
    sleep_s(c->sleep);
    atomic_fetch_add(&c->ran, 1);
    return NULL;
}

static void group_many_tasks(void)
{
    cf_executor *ex = new_pool(4, "gm");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    CHECK_EQ(cf_group_wait(g, 0), 0); /* empty group */
    grp_ctx c = { 0 };
    for (int i = 0; i < 10000; i++)
        CHECK_EQ(cf_group_submit(g, grp_count, &c), 0);
    CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), 0);
    CHECK_EQ(atomic_load(&c.ran), 10000);
    /* waiting again is 0 at once; the group takes more work after a wait */
    CHECK_EQ(cf_group_wait(g, 0), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(cf_group_submit(g, grp_count, &c), 0);
    CHECK_EQ(cf_group_wait(g, CF_FOREVER), 0);
    CHECK_EQ(atomic_load(&c.ran), 10100);
    cf_group_free(g);
    cf_executor_free(ex);
}

static void group_wait_timeout(void)
{
    cf_executor *ex = new_pool(4, "gt");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx c = { .gate = cf_event_new() };
    CHECK(c.gate != NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_group_submit(g, grp_block, &c), 0);
    CHECK_EQ(cf_group_wait(g, 0), CF_ETIMEDOUT); /* a poll */
    CHECK_TIME(CHECK_EQ(cf_group_wait(g, 0.2), CF_ETIMEDOUT), 0.18, 2.0);
    CHECK_EQ(atomic_load(&c.ran), 0);
    CHECK_EQ(cf_group_wait(g, NAN), CF_EINVAL);
    cf_event_set(c.gate);
    CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), 0);
    CHECK_EQ(atomic_load(&c.ran), 3);
    cf_group_free(g);
    cf_event_free(c.gate);
    cf_executor_free(ex);
}

static void group_failure_cancels_rest(void)
{
    /* One worker: while the first task blocks, the rest stay queued. */
    cf_executor *ex = new_pool(1, "gf");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx first = { .gate = cf_event_new(), .fail = CODE_A };
    grp_ctx rest = { .sleep = 0.005 };
    grp_ctx second_failure = { .fail = CODE_B };
    CHECK(first.gate != NULL);
    second_failure.gate = first.gate;
    CHECK_EQ(cf_group_submit(g, grp_block, &first), 0);
    spin_until(&first.started, 1);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(cf_group_submit(g, grp_slow_count, &rest), 0);
    CHECK_EQ(cf_group_submit(g, grp_block, &second_failure), 0);
    cf_event_set(first.gate);
    CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), CODE_A);
    CHECK_EQ(atomic_load(&first.ran), 1);
    /* the tasks queued behind the failure were cancelled, not run */
    CHECK(atomic_load(&second_failure.ran) == 0);
    int ran = atomic_load(&rest.ran);
    CHECK(ran <= 2);
    /* the failure sticks: a later wait says it again, a submit is refused */
    CHECK_EQ(cf_group_wait(g, 0), CODE_A);
    grp_ctx late = { 0 };
    CHECK_EQ(cf_group_submit(g, grp_count, &late), CF_ECANCELED);
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&late.ran), 0);
    CHECK_EQ(atomic_load(&rest.ran), ran);
    cf_group_free(g);
    cf_event_free(first.gate);
    /* the pool itself is fine */
    CHECK(run_in_pool(ex, null_arg_fn, NULL) == (void *)1);
    cf_executor_free(ex);
}

static void group_first_failure_wins(void)
{
    /* Two tasks run at once; the one released first fails first, the other
     * fails later: the wait reports the first. */
    cf_executor *ex = new_pool(4, "gff");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx a = { .gate = cf_event_new(), .fail = CODE_C };
    grp_ctx b = { .gate = cf_event_new(), .fail = CODE_A };
    CHECK(a.gate != NULL && b.gate != NULL);
    CHECK_EQ(cf_group_submit(g, grp_block, &a), 0);
    CHECK_EQ(cf_group_submit(g, grp_block, &b), 0);
    spin_until(&a.started, 1);
    spin_until(&b.started, 1);
    cf_event_set(a.gate);
    sleep_s(0.05);
    cf_event_set(b.gate);
    CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), CODE_C);
    CHECK_EQ(atomic_load(&a.ran), 1);
    CHECK_EQ(atomic_load(&b.ran), 1); /* running tasks finish */
    CHECK_EQ(cf_group_wait(g, 1.0), CODE_C);
    cf_group_free(g);
    cf_event_free(a.gate);
    cf_event_free(b.gate);
    cf_executor_free(ex);
}

static void group_cancel(void)
{
    cf_executor *ex = new_pool(1, "gc");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx blocker = { .gate = cf_event_new() };
    CHECK(blocker.gate != NULL);
    grp_ctx rest = { 0 };
    CHECK_EQ(cf_group_submit(g, grp_block, &blocker), 0);
    spin_until(&blocker.started, 1);
    for (int i = 0; i < 50; i++)
        CHECK_EQ(cf_group_submit(g, grp_count, &rest), 0);
    cf_group_cancel(g);
    CHECK_EQ(cf_group_submit(g, grp_count, &rest), CF_ECANCELED);
    cf_group_cancel(g); /* idempotent */
    /* the running task finishes; the queued ones never start */
    cf_event_set(blocker.gate);
    int rc = cf_group_wait(g, 30.0 * test_scale());
    CHECK(rc == 0 || rc == CF_ECANCELED);
    CHECK_EQ(atomic_load(&blocker.ran), 1);
    sleep_s(0.05);
    CHECK_EQ(atomic_load(&rest.ran), 0);
    CHECK_EQ(cf_group_submit(g, grp_count, &rest), CF_ECANCELED);
    cf_group_free(g);
    cf_event_free(blocker.gate);
    /* other groups on the same pool are not affected */
    cf_group *g2 = cf_group_new(ex);
    CHECK(g2 != NULL);
    CHECK_EQ(cf_group_submit(g2, grp_count, &rest), 0);
    CHECK_EQ(cf_group_wait(g2, 30.0 * test_scale()), 0);
    CHECK_EQ(atomic_load(&rest.ran), 1);
    cf_group_free(g2);
    cf_executor_free(ex);
}

static void group_free_waits(void)
{
    cf_executor *ex = new_pool(4, "gw");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx c = { .sleep = 0.15 };
    for (int i = 0; i < 4; i++)
        CHECK_EQ(cf_group_submit(g, grp_slow_count, &c), 0);
    CHECK_TIME(cf_group_free(g), 0.1, 5.0);
    CHECK_EQ(atomic_load(&c.ran), 4);
    /* free without a wait runs everything submitted (it does not cancel) */
    cf_group *g2 = cf_group_new(ex);
    CHECK(g2 != NULL);
    grp_ctx d = { 0 };
    for (int i = 0; i < 2000; i++)
        CHECK_EQ(cf_group_submit(g2, grp_count, &d), 0);
    cf_group_free(g2);
    CHECK_EQ(atomic_load(&d.ran), 2000);
    cf_executor_free(ex);
}

/* Groups inside tasks: each middle task makes its own group of leaves. */
typedef struct tree_ctx {
    cf_executor *ex;
    atomic_int leaves, mids;
    atomic_int errors;
    bool use_free_only; /* middle tasks free their group without a wait */
} tree_ctx;

static void *tree_leaf(void *p)
{
    tree_ctx *t = p;
    atomic_fetch_add(&t->leaves, 1);
    return NULL;
}

static void *tree_mid(void *p)
{
    tree_ctx *t = p;
    cf_group *g = cf_group_new(t->ex);
    if (!g) {
        atomic_fetch_add(&t->errors, 1);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        if (cf_group_submit(g, tree_leaf, t) != 0)
            atomic_fetch_add(&t->errors, 1);
    if (!t->use_free_only && cf_group_wait(g, CF_FOREVER) != 0)
        atomic_fetch_add(&t->errors, 1);
    cf_group_free(g);
    atomic_fetch_add(&t->mids, 1);
    return NULL;
}

static void *tree_root(void *p)
{
    tree_ctx *t = p;
    cf_group *g = cf_group_new(t->ex);
    CHECK(g != NULL);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(cf_group_submit(g, tree_mid, t), 0);
    CHECK_EQ(cf_group_wait(g, CF_FOREVER), 0);
    /* the wait covered the nested groups too: they finished inside mids */
    CHECK_EQ(atomic_load(&t->mids), 8);
    CHECK_EQ(atomic_load(&t->leaves), 64);
    cf_group_free(g);
    return (void *)7;
}

static void group_nested_in_tasks(void)
{
    for (int workers = 1; workers <= 3; workers++) {
        for (int free_only = 0; free_only <= 1; free_only++) {
            cf_executor *ex = new_pool(workers, "gn");
            tree_ctx t = { .ex = ex, .use_free_only = free_only };
            CHECK(run_in_pool(ex, tree_root, &t) == (void *)7);
            CHECK_EQ(atomic_load(&t.errors), 0);
            cf_executor_free(ex);
        }
    }
}

static void group_tasks_cancelled_by_shutdown(void)
{
    cf_executor *ex = new_pool(1, "gsc");
    grp_started_gate bg = { .gate = cf_event_new() };
    CHECK(bg.gate != NULL);
    CHECK_EQ(cf_submit(ex, block_on_event, &bg, NULL), 0);
    spin_until(&bg.started, 1);
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx c = { 0 };
    for (int i = 0; i < 20; i++)
        CHECK_EQ(cf_group_submit(g, grp_count, &c), 0);
    CHECK_EQ(cf_shutdown(ex, false, true), 0);
    cf_event_set(bg.gate);
    /* the cancelled tasks count as done: the wait ends */
    int rc = cf_group_wait(g, 10.0 * test_scale());
    CHECK(rc == 0 || rc == CF_ECANCELED);
    CHECK_EQ(atomic_load(&c.ran), 0);
    cf_group_free(g);
    cf_executor_free(ex);
    cf_event_free(bg.gate);
}

/* A task that started before cf_shutdown makes a group afterwards. Each
 * submit is refused (CF_ESHUTDOWN, as cf_submit would be) or accepted;
 * an accepted task runs, or the wait says it did not (nonzero): a wait of
 * 0 after submits of 0 means the work was done, never silently dropped. */
typedef struct late_group {
    cf_executor *ex;
    grp_started_gate outer;
    atomic_int leaves;
    int submit_rc[10];
    int wait_rc;
    int pfor_rc, join_rc;
    atomic_long units;
    side a, b;
} late_group;

static void late_body(size_t lo, size_t hi, void *p)
{
    atomic_fetch_add(&((late_group *)p)->units, (long)(hi - lo));
}

static void *late_leaf(void *p)
{
    atomic_fetch_add(&((late_group *)p)->leaves, 1);
    return NULL;
}

static void *late_group_task(void *p)
{
    late_group *lg = p;
    atomic_fetch_add(&lg->outer.started, 1);
    CHECK_EQ(cf_event_wait(lg->outer.gate, 30.0 * test_scale()), 0);
    cf_group *g = cf_group_new(lg->ex);
    CHECK(g != NULL);
    for (int i = 0; i < 10; i++)
        lg->submit_rc[i] = cf_group_submit(g, late_leaf, lg);
    lg->wait_rc = cf_group_wait(g, 30.0 * test_scale());
    cf_group_free(g);
    /* fork-join from the running task: all of it runs, or none */
    lg->pfor_rc = cf_parallel_for(lg->ex, 0, 10000, 1, late_body, lg);
    lg->join_rc = cf_join(lg->ex, side_fn, &lg->a, NULL, side_fn, &lg->b, NULL);
    return NULL;
}

static void group_in_task_after_shutdown(void)
{
    for (int cancel = 0; cancel <= 1; cancel++) {
        late_group lg = { .ex = new_pool(2, "gl") };
        lg.outer.gate = cf_event_new();
        CHECK(lg.outer.gate != NULL);
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(lg.ex, late_group_task, &lg, &f), 0);
        spin_until(&lg.outer.started, 1);
        CHECK_EQ(cf_shutdown(lg.ex, false, cancel), 0);
        cf_event_set(lg.outer.gate);
        CHECK_EQ(cf_future_result(f, 30.0 * test_scale(), NULL), 0);
        cf_future_release(f);
        cf_executor_free(lg.ex);
        int accepted = 0;
        for (int i = 0; i < 10; i++) {
            CHECK(lg.submit_rc[i] == 0 || lg.submit_rc[i] == CF_ESHUTDOWN);
            accepted += lg.submit_rc[i] == 0;
        }
        if (lg.wait_rc == 0 && atomic_load(&lg.leaves) != accepted) {
            fprintf(stderr,
                    "cancel_futures=%d: %d submits accepted, wait 0, %d ran\n",
                    cancel, accepted, atomic_load(&lg.leaves));
            CHECK(0);
        }
        CHECK(lg.pfor_rc == 0 || lg.pfor_rc == CF_ESHUTDOWN);
        CHECK_EQ(atomic_load(&lg.units), lg.pfor_rc == 0 ? 10000 : 0);
        CHECK(lg.join_rc == 0 || lg.join_rc == CF_ESHUTDOWN);
        CHECK_EQ(atomic_load(&lg.a.ran), lg.join_rc == 0);
        CHECK_EQ(atomic_load(&lg.b.ran), lg.join_rc == 0);
        cf_event_free(lg.outer.gate);
    }
}

typedef struct waiter_arg {
    cf_group *g;
    int rc;
} waiter_arg;

static void *group_waiter(void *p)
{
    waiter_arg *w = p;
    w->rc = cf_group_wait(w->g, 30.0 * test_scale());
    return NULL;
}

/* More threads wait on one group than it may have room to list. */
static void group_many_waiters(void)
{
    enum { WAITERS = 20 };
    cf_executor *ex = new_pool(2, "gmw");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx c = { .gate = cf_event_new() };
    CHECK(c.gate != NULL);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(cf_group_submit(g, grp_block, &c), 0);
    waiter_arg w[WAITERS];
    cf_thread *t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (waiter_arg){ g, 1 };
        CHECK_EQ(cf_thread_start(&t[i], group_waiter, &w[i], NULL), 0);
    }
    sleep_s(0.1);
    cf_event_set(c.gate);
    for (int i = 0; i < WAITERS; i++) {
        CHECK_EQ(cf_thread_join(t[i], 30.0 * test_scale(), NULL), 0);
        CHECK_EQ(w[i].rc, 0);
    }
    CHECK_EQ(atomic_load(&c.ran), 2);
    cf_group_free(g);
    cf_event_free(c.gate);
    cf_executor_free(ex);
}

/* Tasks of a group add more tasks to it (a tree of depth 12): the wait
 * covers them, since each is added before its parent finishes. */
typedef struct rec_group {
    cf_group *g;
    atomic_int ran;
    atomic_int errors;
} rec_group;

typedef struct rec_node {
    rec_group *rg;
    int depth;
} rec_node;

static rec_node rec_nodes[13];

static void *rec_group_task(void *p)
{
    rec_node *n = p;
    atomic_fetch_add(&n->rg->ran, 1);
    if (n->depth > 0)
        for (int i = 0; i < 2; i++)
            if (cf_group_submit(n->rg->g, rec_group_task,
                                &rec_nodes[n->depth - 1]) != 0)
                atomic_fetch_add(&n->rg->errors, 1);
    return NULL;
}

static void group_recursive_submit(void)
{
    for (int workers = 1; workers <= 4; workers *= 2) {
        cf_executor *ex = new_pool(workers, "grs");
        rec_group rg = { .g = cf_group_new(ex) };
        CHECK(rg.g != NULL);
        for (int d = 0; d <= 12; d++)
            rec_nodes[d] = (rec_node){ &rg, d };
        CHECK_EQ(cf_group_submit(rg.g, rec_group_task, &rec_nodes[12]), 0);
        CHECK_EQ(cf_group_wait(rg.g, 30.0 * test_scale()), 0);
        CHECK_EQ(atomic_load(&rg.ran), (1 << 13) - 1);
        CHECK_EQ(atomic_load(&rg.errors), 0);
        cf_group_free(rg.g);
        cf_executor_free(ex);
    }
}

static void group_bad_input(void)
{
    errno = 0;
    CHECK(cf_group_new(NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    cf_executor *ex = new_pool(1, "gb");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx c = { 0 };
    CHECK_EQ(cf_group_submit(NULL, grp_count, &c), CF_EINVAL);
    CHECK_EQ(cf_group_submit(g, NULL, &c), CF_EINVAL);
    CHECK_EQ(cf_group_wait(NULL, 1.0), CF_EINVAL);
    CHECK_EQ(cf_group_wait(g, NAN), CF_EINVAL);
    cf_group_cancel(NULL);
    cf_group_free(NULL);
    /* a NULL task argument is fine */
    CHECK_EQ(cf_group_submit(g, null_arg_fn, NULL), 0);
    CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), 0);
    /* nothing of the bad calls ran, and the group still works */
    CHECK_EQ(atomic_load(&c.ran), 0);
    CHECK_EQ(cf_group_submit(g, grp_count, &c), 0);
    CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), 0);
    CHECK_EQ(atomic_load(&c.ran), 1);
    cf_group_free(g);
    cf_executor_free(ex);
}

static void group_after_shutdown(void)
{
    cf_executor *ex = new_pool(2, "gs");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    grp_ctx c = { 0 };
    CHECK_EQ(cf_group_submit(g, grp_count, &c), 0);
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(atomic_load(&c.ran), 1);
    CHECK_EQ(cf_group_submit(g, grp_count, &c), CF_ESHUTDOWN);
    CHECK_EQ(cf_group_wait(g, 1.0), 0);
    CHECK_EQ(atomic_load(&c.ran), 1);
    cf_group_free(g);
    cf_executor_free(ex);
}

/* ENOMEM: the only worker is held by a blocker, so group tasks queue and
 * no other thread allocates while the failing allocator is armed. */
typedef struct oom_ctx {
    cf_executor *ex;
    cf_group *g;
    grp_ctx counted;
    int submitted;
} oom_ctx;

static int group_new_op(void *p)
{
    oom_ctx *o = p;
    errno = 0;
    cf_group *g = cf_group_new(o->ex);
    if (!g) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    cf_group_free(g);
    return 0;
}

static int group_submit_op(void *p)
{
    oom_ctx *o = p;
    int rc = cf_group_submit(o->g, grp_count, &o->counted);
    if (rc == 0)
        o->submitted++;
    return rc;
}

static void group_enomem(void)
{
    oom_install();
    cf_executor *ex = new_pool(1, "go");
    grp_ctx blocker = { .gate = cf_event_new() };
    CHECK(blocker.gate != NULL);
    cf_future *bf = NULL;
    CHECK_EQ(cf_submit(ex, grp_block, &blocker, &bf), 0);
    spin_until(&blocker.started, 1);

    oom_ctx o = { .ex = ex };
    CHECK(oom_sweep(group_new_op, NULL, &o) >= 1);

    o.g = cf_group_new(ex);
    CHECK(o.g != NULL);
    int tried = 0;
    for (int i = 0; i < 40; i++)
        tried += oom_sweep(group_submit_op, NULL, &o);
    CHECK(tried >= 1);
    CHECK_EQ(o.submitted, 40);

    cf_event_set(blocker.gate);
    CHECK_EQ(cf_future_result(bf, 30.0 * test_scale(), NULL), 0);
    cf_future_release(bf);
    /* exactly the submits that succeeded ran, and the group still works */
    CHECK_EQ(cf_group_wait(o.g, 30.0 * test_scale()), 0);
    CHECK_EQ(atomic_load(&o.counted.ran), 40);
    CHECK_EQ(cf_group_submit(o.g, grp_count, &o.counted), 0);
    CHECK_EQ(cf_group_wait(o.g, 30.0 * test_scale()), 0);
    CHECK_EQ(atomic_load(&o.counted.ran), 41);
    cf_group_free(o.g);
    cf_event_free(blocker.gate);
    cf_executor_free(ex);
}

/* A fresh pool, one fork-join call from outside (it starts the first
 * worker), then free: every allocation failure gives CF_ENOMEM with
 * nothing leaked and nothing run, or is absorbed and all of it ran. */
typedef struct outside_oom {
    int kind; /* 0: cf_join, 1: cf_parallel_for */
    int ran_ok;
} outside_oom;

static int outside_op(void *p)
{
    outside_oom *o = p;
    cf_options opt = { .max_workers = 2, .name_prefix = "oo" };
    errno = 0;
    cf_executor *ex = cf_thread_pool_new(&opt);
    if (!ex) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    queued_call q = { .ex = ex, .kind = o->kind };
    queued_call_main(&q);
    cf_executor_free(ex);
    if (q.rc == 0) {
        if (o->kind == 0) {
            CHECK_EQ(atomic_load(&q.a.ran), 1);
            CHECK_EQ(atomic_load(&q.b.ran), 1);
        } else {
            CHECK_EQ(atomic_load(&q.calls), 64);
        }
        o->ran_ok++;
    } else {
        CHECK_EQ(q.rc, CF_ENOMEM);
        CHECK_EQ(atomic_load(&q.a.ran), 0);
        CHECK_EQ(atomic_load(&q.b.ran), 0);
        CHECK_EQ(atomic_load(&q.calls), 0);
    }
    return q.rc;
}

static void forkjoin_outside_enomem(void)
{
    oom_install();
    for (int kind = 0; kind <= 1; kind++) {
        outside_oom o = { .kind = kind };
        CHECK(oom_sweep(outside_op, NULL, &o) >= 1);
        CHECK(o.ran_ok >= 1);
    }
}

/* ---- everything nested, one worker */

typedef struct mix_ctx {
    cf_executor *ex;
    atomic_long units;  /* parallel_for indices visited */
    atomic_int futures; /* futures that ran */
    atomic_int leaves;  /* group leaves that ran */
    atomic_int errors;
} mix_ctx;

static void mix_body(size_t lo, size_t hi, void *p)
{
    mix_ctx *m = p;
    atomic_fetch_add(&m->units, (long)(hi - lo));
}

static void *mix_future_task(void *p)
{
    mix_ctx *m = p;
    if (cf_parallel_for(m->ex, 0, 1000, 10, mix_body, m) != 0)
        atomic_fetch_add(&m->errors, 1);
    atomic_fetch_add(&m->futures, 1);
    return (void *)3;
}

static void *mix_side_a(void *p)
{
    mix_ctx *m = p;
    cf_future *fs[4];
    for (int i = 0; i < 4; i++)
        if (cf_submit(m->ex, mix_future_task, m, &fs[i]) != 0) {
            atomic_fetch_add(&m->errors, 1);
            return NULL;
        }
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        if (cf_future_result(fs[i], CF_FOREVER, &r) != 0 || r != (void *)3)
            atomic_fetch_add(&m->errors, 1);
        cf_future_release(fs[i]);
    }
    return (void *)0xa;
}

static void *mix_leaf(void *p)
{
    mix_ctx *m = p;
    fib_arg f = { m->ex, 10 };
    void *r1 = NULL, *r2 = NULL;
    if (cf_join(m->ex, fib_task, &f, &r1, fib_task, &f, &r2) != 0 ||
        (intptr_t)r1 != 55 || (intptr_t)r2 != 55)
        atomic_fetch_add(&m->errors, 1);
    if (cf_parallel_for(m->ex, 0, 500, 0, mix_body, m) != 0)
        atomic_fetch_add(&m->errors, 1);
    atomic_fetch_add(&m->leaves, 1);
    return NULL;
}

static void *mix_side_b(void *p)
{
    mix_ctx *m = p;
    cf_group *g = cf_group_new(m->ex);
    if (!g) {
        atomic_fetch_add(&m->errors, 1);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        if (cf_group_submit(g, mix_leaf, m) != 0)
            atomic_fetch_add(&m->errors, 1);
    if (cf_group_wait(g, CF_FOREVER) != 0)
        atomic_fetch_add(&m->errors, 1);
    cf_group_free(g);
    return (void *)0xb;
}

static void *mix_root(void *p)
{
    mix_ctx *m = p;
    void *ra = NULL, *rb = NULL;
    CHECK_EQ(cf_join(m->ex, mix_side_a, m, &ra, mix_side_b, m, &rb), 0);
    CHECK(ra == (void *)0xa && rb == (void *)0xb);
    return (void *)0xc;
}

static void nesting_never_deadlocks(void)
{
    for (int workers = 1; workers <= 2; workers++) {
        cf_executor *ex = new_pool(workers, "nx");
        mix_ctx m = { .ex = ex };
        CHECK(run_in_pool(ex, mix_root, &m) == (void *)0xc);
        CHECK_EQ(atomic_load(&m.errors), 0);
        CHECK_EQ(atomic_load(&m.futures), 4);
        CHECK_EQ(atomic_load(&m.leaves), 4);
        CHECK_EQ(atomic_load(&m.units), 4 * 1000 + 4 * 500);
        /* and the same from outside the pool */
        mix_ctx m2 = { .ex = ex };
        CHECK(mix_root(&m2) == (void *)0xc);
        CHECK_EQ(atomic_load(&m2.errors), 0);
        CHECK_EQ(atomic_load(&m2.units), 4 * 1000 + 4 * 500);
        cf_executor_free(ex);
    }
}

/* A submit whose push fails (a shutdown raced it) takes back its count.
 * A task of the group that ended meanwhile saw that count and left the
 * last decrement, and the waiters' wake-up, to the failed submit: the
 * waiter must still wake (it used to sleep on with nothing pending). */
static cf_executor *race_ex;
static cf_group *race_group;

static void *race_quick(void *p)
{
    return p;
}

static void *race_shutdown(void *p)
{
    (void)p;
    cf_shutdown(race_ex, false, false);
    return NULL;
}

static void *race_submitter(void *p)
{
    (void)p;
    while (cf_group_submit(race_group, race_quick, NULL) == 0) {
    }
    return NULL;
}

static void *race_waiter(void *p)
{
    (void)p;
    CHECK_EQ(cf_group_wait(race_group, CF_FOREVER), 0);
    return NULL;
}

static void group_submit_failing_at_shutdown_wakes_waiter(void)
{
    for (int i = 0; i < 200; i++) {
        cf_options o = { .max_workers = 2 };
        race_ex = cf_thread_pool_new(&o);
        CHECK(race_ex != NULL);
        race_group = cf_group_new(race_ex);
        CHECK(race_group != NULL);
        pthread_t s, w;
        CHECK_EQ(pthread_create(&s, NULL, race_submitter, NULL), 0);
        usleep(50);
        (void)cf_group_submit(race_group, race_shutdown, NULL);
        CHECK_EQ(pthread_create(&w, NULL, race_waiter, NULL), 0);
        CHECK_EQ(pthread_join(s, NULL), 0);
        CHECK_EQ(pthread_join(w, NULL), 0); /* hangs without the fix */
        cf_group_free(race_group);
        cf_executor_free(race_ex);
    }
}

static const test_case cases[] = {
    TEST_CASE(join_outside_results),
    TEST_CASE(join_outside_many_threads),
    TEST_CASE(join_inside_results),
    TEST_CASE(join_from_other_pool_worker),
    TEST_CASE(join_from_plain_pthreads),
    TEST_CASE(join_across_two_pools),
    TEST_CASE(join_fib25_1_worker),
    TEST_CASE(join_fib25_2_workers),
    TEST_CASE(join_fib25_4_workers),
    TEST_CASE(join_fib_small),
    TEST_CASE(join_failure_outside),
    TEST_CASE(join_failure_inside),
    TEST_CASE(join_b_stolen),
    TEST_CASE(join_bad_input),
    TEST_CASE(join_null_args),
    TEST_CASE(join_after_shutdown),
    TEST_CASE(join_after_shutdown_other_thread),
    TEST_CASE(join_queued_then_shutdown_cancel),
    TEST_CASE(pfor_queued_then_shutdown_cancel),
    TEST_CASE(join_queued_when_pool_breaks),
    TEST_CASE(pfor_queued_when_pool_breaks),
    TEST_CASE(forkjoin_on_broken_pool),
    TEST_CASE(join_inside_allocates_nothing),
    TEST_CASE(pfor_covers_range_outside),
    TEST_CASE(pfor_covers_range_one_worker),
    TEST_CASE(pfor_covers_range_inside_task),
    TEST_CASE(pfor_near_size_max),
    TEST_CASE(pfor_huge_ranges),
    TEST_CASE(pfor_empty_and_bad_input),
    TEST_CASE(pfor_after_shutdown),
    TEST_CASE(pfor_failure_stops_splitting),
    TEST_CASE(pfor_failure_inside_task),
    TEST_CASE(pfor_nested),
    TEST_CASE(pfor_uses_several_workers),
    TEST_CASE(group_many_tasks),
    TEST_CASE(group_wait_timeout),
    TEST_CASE(group_failure_cancels_rest),
    TEST_CASE(group_first_failure_wins),
    TEST_CASE(group_cancel),
    TEST_CASE(group_free_waits),
    TEST_CASE(group_nested_in_tasks),
    TEST_CASE(group_tasks_cancelled_by_shutdown),
    TEST_CASE(group_many_waiters),
    TEST_CASE(group_in_task_after_shutdown),
    TEST_CASE(group_recursive_submit),
    TEST_CASE(group_bad_input),
    TEST_CASE(group_after_shutdown),
    TEST_CASE(group_enomem),
    TEST_CASE(group_submit_failing_at_shutdown_wakes_waiter),
    TEST_CASE(forkjoin_outside_enomem),
    TEST_CASE(nesting_never_deadlocks),
};

TEST_MAIN(cases)
