/* SPDX-License-Identifier: MIT */
/*
 * test_sched_stress.c - the work-stealing scheduler under load: many
 * producers, deep join recursion, steal storms, shutdown while workers
 * steal, many pools at once, lost wake-ups, I/O-bound tasks on a wide pool,
 * and lazy thread start. Every check is on counts, values and codes; the two
 * timing checks have generous bounds. Each case takes a few seconds at most
 * on two cores; under a sanitizer (CF_TEST_TIME_SCALE > 1) the iteration
 * counts shrink so the cases stay short.
 */
#include "fib.h"
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* An iteration count, cut down when the run is slowed by a sanitizer. */
static long scaled(long n)
{
    double s = test_scale();
    if (s <= 1.0)
        return n;
    long m = (long)((double)n / s);
    return m > 0 ? m : 1;
}

static cf_executor *new_pool(int workers, const char *prefix)
{
    cf_options o = { .max_workers = workers, .name_prefix = prefix };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    return ex;
}

/* fib(n) from a thread outside the pool: the top join's code, value in *v. */
static int fib_outside(cf_executor *ex, int n, long *v)
{
    fib_arg x = { ex, n - 1 }, y = { ex, n - 2 };
    void *rx = NULL, *ry = NULL;
    int rc = cf_join(ex, fib_task, &x, &rx, fib_task, &y, &ry);
    *v = (long)(intptr_t)rx + (long)(intptr_t)ry;
    return rc;
}

/* Checks that every one of n flags is exactly 1. */
static void check_once(atomic_uchar *flags, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int v = atomic_load_explicit(&flags[i], memory_order_relaxed);
        if (v != 1) {
            fprintf(stderr, "%s: item %zu ran %d times\n", what, i, v);
            CHECK(0);
        }
    }
}

/* ---- many producers */

#define PRODUCERS 8

static atomic_uchar *g_flags;

static void *mark_task(void *p)
{
    size_t i = (size_t)(uintptr_t)p;
    atomic_fetch_add_explicit(&g_flags[i], 1, memory_order_relaxed);
    return (void *)(uintptr_t)(i + 1);
}

typedef struct producer {
    cf_executor *ex;
    size_t first, n;
    cf_future **fs;
    long bad;
} producer;

static void *producer_main(void *p)
{
    producer *pr = p;
    for (size_t j = 0; j < pr->n; j++) {
        size_t i = pr->first + j;
        cf_future **out =
            j % 3 == 1 ? NULL : &pr->fs[j]; /* a third fire-and-forget */
        pr->fs[j] = NULL;
        CHECK_EQ(cf_submit(pr->ex, mark_task, (void *)(uintptr_t)i, out), 0);
    }
    for (size_t j = 0; j < pr->n; j++) {
        if (!pr->fs[j])
            continue;
        void *r = NULL;
        int rc = cf_future_result(pr->fs[j], 60.0 * test_scale(), &r);
        if (rc != 0 || r != (void *)(uintptr_t)(pr->first + j + 1))
            pr->bad++;
        cf_future_release(pr->fs[j]);
    }
    return NULL;
}

static void producers_on(int workers)
{
    size_t per = (size_t)scaled(50000);
    size_t total = per * PRODUCERS;
    g_flags = calloc(total, sizeof *g_flags);
    CHECK(g_flags != NULL);
    cf_executor *ex = new_pool(workers, "mp");
    producer pr[PRODUCERS];
    cf_thread *t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i] = (producer){ .ex = ex, .first = (size_t)i * per, .n = per };
        pr[i].fs = calloc(per, sizeof *pr[i].fs);
        CHECK(pr[i].fs != NULL);
        CHECK_EQ(cf_thread_start(&t[i], producer_main, &pr[i], NULL), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        CHECK_EQ(cf_thread_join(t[i], 60.0 * test_scale(), NULL), 0);
        CHECK_EQ(pr[i].bad, 0);
        free(pr[i].fs);
    }
    /* the fire-and-forget tasks are done once shutdown has waited */
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    check_once(g_flags, total, "many producers");
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.completed, total);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.failed, 0);
    CHECK(st.workers <= (size_t)workers);
    cf_executor_free(ex);
    free(g_flags);
    g_flags = NULL;
}

static void many_producers_2_workers(void)
{
    producers_on(2);
}
static void many_producers_4_workers(void)
{
    producers_on(4);
}

/* A one-worker pool runs what one outside thread submits in submission
 * order, as Python's does (it is the usual serial executor), however the
 * worker takes work off the injection queue. */
typedef struct order_log {
    int *seen;
    atomic_int n;
} order_log;

static order_log g_order;

static void *order_task(void *p)
{
    int i = atomic_fetch_add(&g_order.n, 1);
    g_order.seen[i] = (int)(intptr_t)p;
    return NULL;
}

static void one_worker_keeps_order(void)
{
    int n = (int)scaled(20000);
    g_order.seen = calloc((size_t)n, sizeof *g_order.seen);
    CHECK(g_order.seen != NULL);
    for (int round = 0; round < 4; round++) {
        atomic_store(&g_order.n, 0);
        cf_executor *ex = new_pool(1, "ord");
        for (int i = 0; i < n; i++) {
            if (round % 2 && i % 1000 == 0)
                sleep_s(0.001); /* let the worker catch up and sleep */
            CHECK_EQ(cf_submit(ex, order_task, (void *)(intptr_t)i, NULL), 0);
        }
        cf_executor_free(ex);
        CHECK_EQ(atomic_load(&g_order.n), n);
        for (int i = 0; i < n; i++)
            if (g_order.seen[i] != i) {
                fprintf(stderr, "round %d: position %d ran task %d\n", round, i,
                        g_order.seen[i]);
                CHECK(0);
            }
    }
    free(g_order.seen);
}

/* ---- nested joins */

static void nested_joins_on(int workers)
{
    int n = test_scale() > 1.0 ? 22 : 27;
    int rounds = test_scale() > 1.0 ? 2 : 4;
    cf_executor *ex = new_pool(workers, "nj");
    for (int r = 0; r < rounds; r++) {
        long v = 0;
        CHECK_EQ(fib_outside(ex, n, &v), 0);
        CHECK_EQ(v, fib_serial(n));
        /* and rooted in a task of the pool */
        fib_arg a = { ex, n };
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, fib_task, &a, &f), 0);
        void *res = NULL;
        CHECK_EQ(cf_future_result(f, 60.0 * test_scale(), &res), 0);
        CHECK_EQ((long)(intptr_t)res, fib_serial(n));
        cf_future_release(f);
    }
    /* A joiner whose branch was stolen blocks, and a spare may stand in
     * for it: never more threads than that. */
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK(st.workers <= (size_t)workers + st.spares);
    CHECK(st.spares <= st.blocked);
    cf_executor_free(ex);
}

static void nested_joins_1_worker(void)
{
    nested_joins_on(1);
}
static void nested_joins_2_workers(void)
{
    nested_joins_on(2);
}
static void nested_joins_8_workers(void)
{
    nested_joins_on(8);
}

/* Several outside threads run fib trees on one pool at once. */
static void *fib_thread(void *p)
{
    cf_executor *ex = p;
    int n = test_scale() > 1.0 ? 18 : 23;
    for (int r = 0; r < 3; r++) {
        long v = 0;
        CHECK_EQ(fib_outside(ex, n, &v), 0);
        CHECK_EQ(v, fib_serial(n));
    }
    return NULL;
}

static void nested_joins_many_callers(void)
{
    cf_executor *ex = new_pool(3, "njc");
    cf_thread *t[6];
    for (int i = 0; i < 6; i++)
        CHECK_EQ(cf_thread_start(&t[i], fib_thread, ex, NULL), 0);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(cf_thread_join(t[i], 60.0 * test_scale(), NULL), 0);
    cf_executor_free(ex);
}

/* A chain rather than a tree: each level joins the next level with a
 * leaf, so joins nest 2,000 deep while thieves take the leaves. */
typedef struct chain {
    cf_executor *ex;
    atomic_long leaves;
} chain;

typedef struct chain_link {
    chain *c;
    int depth;
} chain_link;

static void *chain_leaf(void *p)
{
    atomic_fetch_add(&((chain *)p)->leaves, 1);
    return (void *)1;
}

static void *chain_level(void *p)
{
    chain_link *l = p;
    if (l->depth == 0)
        return (void *)0;
    chain_link next = { l->c, l->depth - 1 };
    void *rn = NULL, *rl = NULL;
    /* alternate which side recurses, so both the inline and the stolen
     * paths nest */
    int rc =
        l->depth % 2
            ? cf_join(l->c->ex, chain_level, &next, &rn, chain_leaf, l->c, &rl)
            : cf_join(l->c->ex, chain_leaf, l->c, &rl, chain_level, &next, &rn);
    if (rc != 0) {
        cf_fail(rc, "join failed at depth %d", l->depth);
        return NULL;
    }
    return (void *)((intptr_t)rn + (intptr_t)rl);
}

static void deep_join_chain(void)
{
    int depth = test_scale() > 1.0 ? 500 : 2000;
    for (int workers = 1; workers <= 4; workers *= 2) {
        cf_executor *ex = new_pool(workers, "dc");
        for (int r = 0; r < 3; r++) {
            chain c = { .ex = ex };
            chain_link top = { &c, depth };
            cf_future *f = NULL;
            CHECK_EQ(cf_submit(ex, chain_level, &top, &f), 0);
            void *res = NULL;
            CHECK_EQ(cf_future_result(f, 60.0 * test_scale(), &res), 0);
            cf_future_release(f);
            CHECK_EQ((intptr_t)res, depth);
            CHECK_EQ(atomic_load(&c.leaves), depth);
        }
        cf_executor_free(ex);
    }
}

/* One worker; a chain of tasks submitted from outside, each waiting on
 * the next one's future. The worker runs each next task inside the wait of
 * the one before (it is what that wait depends on), so the waits nest as
 * deep as the chain: a pool must keep going at any depth - inline while
 * the stack has room, then on spare workers - or the chain never ends. */
#define WAIT_CHAIN 500

typedef struct wait_chain {
    cf_future *fs[WAIT_CHAIN];
    cf_event *go;
    atomic_int max_seen;
} wait_chain;

typedef struct wait_link {
    wait_chain *wc;
    int i;
} wait_link;

static void *chain_waiter(void *p)
{
    wait_link *l = p;
    CHECK_EQ(cf_event_wait(l->wc->go, 30.0 * test_scale()), 0);
    int seen = atomic_load(&l->wc->max_seen);
    while (l->i > seen &&
           !atomic_compare_exchange_weak(&l->wc->max_seen, &seen, l->i)) {
    }
    if (l->i + 1 == WAIT_CHAIN)
        return (void *)1;
    void *r = NULL;
    int rc = cf_future_result(l->wc->fs[l->i + 1], CF_FOREVER, &r);
    if (rc != 0) {
        cf_fail(rc, "link %d", l->i + 1);
        return NULL;
    }
    return (void *)((intptr_t)r + 1);
}

static void nested_waits_deep_chain(void)
{
    cf_executor *ex = new_pool(1, "wc");
    static wait_chain wc;
    static wait_link links[WAIT_CHAIN];
    wc.go = cf_event_new();
    CHECK(wc.go != NULL);
    for (int i = 0; i < WAIT_CHAIN; i++) {
        links[i] = (wait_link){ &wc, i };
        CHECK_EQ(cf_submit(ex, chain_waiter, &links[i], &wc.fs[i]), 0);
    }
    cf_event_set(wc.go);
    void *r = NULL;
    int rc = cf_future_result(wc.fs[0], 10.0 * test_scale(), &r);
    if (rc != 0) {
        fprintf(stderr, "chain of %d waits: %s; the worker reached link %d\n",
                WAIT_CHAIN, cf_strerror(rc), atomic_load(&wc.max_seen));
        exit(1); /* the worker is stuck: skip the clean-up */
    }
    CHECK_EQ((intptr_t)r, WAIT_CHAIN);
    for (int i = 0; i < WAIT_CHAIN; i++)
        cf_future_release(wc.fs[i]);
    cf_event_free(wc.go);
    cf_executor_free(ex);
}

/* A wait in a worker keeps its deadline: a poll (timeout 0) returns at
 * once, and a timed wait returns about when it should, however much queued
 * work there is (a wait never runs unrelated work; a spare worker may run
 * it while the wait blocks). */
typedef struct deadline_ctx {
    cf_executor *ex;
    atomic_int ran;
    double poll_took, timed_took, wait_took;
    int poll_rc, timed_rc, wait_rc;
} deadline_ctx;

static void *slow_filler(void *p)
{
    atomic_fetch_add(&((deadline_ctx *)p)->ran, 1);
    sleep_s(0.002);
    return NULL;
}

static void *deadline_task(void *p)
{
    deadline_ctx *d = p;
    long n = scaled(2000); /* 4 s of unrelated work queued */
    for (long i = 0; i < n; i++)
        CHECK_EQ(cf_submit(d->ex, slow_filler, d, NULL), 0);
    cf_future *never = cf_future_new(); /* nobody completes it */
    CHECK(never != NULL);
    double t0 = now_s();
    d->poll_rc = cf_future_result(never, 0, NULL);
    d->poll_took = now_s() - t0;
    t0 = now_s();
    d->timed_rc = cf_future_result(never, 0.2, NULL);
    d->timed_took = now_s() - t0;
    t0 = now_s();
    d->wait_rc = cf_wait(&never, 1, 0.2, CF_ALL_COMPLETED);
    d->wait_took = now_s() - t0;
    CHECK(cf_future_cancel(never));
    cf_future_release(never);
    return NULL;
}

static void waits_in_worker_keep_deadlines(void)
{
    for (int workers = 1; workers <= 2; workers++) {
        cf_executor *ex = new_pool(workers, "dl");
        deadline_ctx d = { .ex = ex };
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, deadline_task, &d, &f), 0);
        CHECK_EQ(cf_future_result(f, 60.0 * test_scale(), NULL), 0);
        cf_future_release(f);
        if (d.poll_took > 0.1 * test_scale() ||
            d.timed_took > 1.0 * test_scale() ||
            d.wait_took > 1.0 * test_scale()) {
            fprintf(stderr,
                    "%d workers: poll took %.3fs, 0.2s result %.3fs, 0.2s "
                    "cf_wait %.3fs (%d fillers had run)\n",
                    workers, d.poll_took, d.timed_took, d.wait_took,
                    atomic_load(&d.ran));
            CHECK(0);
        }
        CHECK_EQ(d.poll_rc, CF_ETIMEDOUT);
        CHECK_EQ(d.timed_rc, CF_ETIMEDOUT);
        CHECK_EQ(d.wait_rc, CF_ETIMEDOUT);
        CHECK(d.timed_took >= 0.18);
        CHECK(d.wait_took >= 0.18);
        /* most fillers are still queued: drop them */
        CHECK(atomic_load(&d.ran) < scaled(2000));
        CHECK_EQ(cf_shutdown(ex, false, true), 0);
        cf_executor_free(ex);
    }
}

/* ---- steal storm */

typedef struct storm {
    cf_executor *ex;
    atomic_uchar *flags;
    size_t n;
    atomic_long errors;
} storm;

typedef struct storm_item {
    storm *s;
    size_t i;
} storm_item;

static void *storm_leaf(void *p)
{
    storm_item *it = p;
    atomic_fetch_add_explicit(&it->s->flags[it->i], 1, memory_order_relaxed);
    return NULL;
}

/* One task spawns every leaf into one group and waits. */
static void *storm_group_root(void *p)
{
    storm *s = p;
    storm_item *items = malloc(s->n * sizeof *items);
    CHECK(items != NULL);
    cf_group *g = cf_group_new(s->ex);
    CHECK(g != NULL);
    for (size_t i = 0; i < s->n; i++) {
        items[i] = (storm_item){ s, i };
        if (cf_group_submit(g, storm_leaf, &items[i]) != 0)
            atomic_fetch_add(&s->errors, 1);
    }
    if (cf_group_wait(g, CF_FOREVER) != 0)
        atomic_fetch_add(&s->errors, 1);
    cf_group_free(g);
    free(items);
    return (void *)1;
}

typedef struct span {
    storm *s;
    size_t lo, hi;
} span;

/* A binary tree of joins down to single leaves. */
static void *storm_split(void *p)
{
    span *sp = p;
    if (sp->hi - sp->lo == 1) {
        atomic_fetch_add_explicit(&sp->s->flags[sp->lo], 1,
                                  memory_order_relaxed);
        return (void *)1;
    }
    size_t mid = sp->lo + (sp->hi - sp->lo) / 2;
    span l = { sp->s, sp->lo, mid }, r = { sp->s, mid, sp->hi };
    void *rl = NULL, *rr = NULL;
    if (cf_join(sp->s->ex, storm_split, &l, &rl, storm_split, &r, &rr) != 0)
        atomic_fetch_add(&sp->s->errors, 1);
    return (void *)((uintptr_t)rl + (uintptr_t)rr);
}

static void storm_run(int workers, bool use_group)
{
    cf_executor *ex = new_pool(workers, "st");
    int rounds = test_scale() > 1.0 ? 1 : 3;
    for (int r = 0; r < rounds; r++) {
        storm s = { .ex = ex, .n = (size_t)scaled(100000) };
        s.flags = calloc(s.n, sizeof *s.flags);
        CHECK(s.flags != NULL);
        cf_future *f = NULL;
        span root = { &s, 0, s.n };
        if (use_group)
            CHECK_EQ(cf_submit(ex, storm_group_root, &s, &f), 0);
        else
            CHECK_EQ(cf_submit(ex, storm_split, &root, &f), 0);
        void *res = NULL;
        CHECK_EQ(cf_future_result(f, 60.0 * test_scale(), &res), 0);
        cf_future_release(f);
        CHECK_EQ(atomic_load(&s.errors), 0);
        if (!use_group)
            CHECK_EQ((uintptr_t)res, s.n); /* leaves counted up the tree */
        check_once(s.flags, s.n, use_group ? "group storm" : "join storm");
        free(s.flags);
    }
    cf_executor_free(ex);
}

/* One task spawns bursts of group tasks and waits for each burst, so its
 * deque grows once and then wraps around many times while thieves steal. */
static void *burst_root(void *p)
{
    storm *s = p;
    size_t burst = 1000, bursts = s->n / burst;
    storm_item *items = malloc(s->n * sizeof *items);
    CHECK(items != NULL);
    for (size_t b = 0; b < bursts; b++) {
        cf_group *g = cf_group_new(s->ex);
        CHECK(g != NULL);
        for (size_t i = b * burst; i < (b + 1) * burst; i++) {
            items[i] = (storm_item){ s, i };
            if (cf_group_submit(g, storm_leaf, &items[i]) != 0)
                atomic_fetch_add(&s->errors, 1);
        }
        if (cf_group_wait(g, CF_FOREVER) != 0)
            atomic_fetch_add(&s->errors, 1);
        cf_group_free(g);
    }
    free(items);
    return (void *)1;
}

static void steal_storm_bursts(void)
{
    cf_executor *ex = new_pool(4, "sb");
    storm s = { .ex = ex, .n = (size_t)scaled(200) * 1000 };
    s.flags = calloc(s.n, sizeof *s.flags);
    CHECK(s.flags != NULL);
    cf_future *f = NULL;
    CHECK_EQ(cf_submit(ex, burst_root, &s, &f), 0);
    CHECK_EQ(cf_future_result(f, 60.0 * test_scale(), NULL), 0);
    cf_future_release(f);
    CHECK_EQ(atomic_load(&s.errors), 0);
    check_once(s.flags, s.n, "bursts");
    free(s.flags);
    cf_executor_free(ex);
}

static void steal_storm_group(void)
{
    storm_run(4, true);
}
static void steal_storm_join(void)
{
    storm_run(4, false);
}
static void steal_storm_join_8_workers(void)
{
    storm_run(8, false);
}

/* ---- shutdown while stealing */

typedef struct sws {
    cf_executor *ex;
    bool use_fib;
    size_t n;
    atomic_uchar *hits;
    atomic_long calls;
    int rc;
    long fib_value;
    int fib_n;
} sws;

static void sws_body(size_t lo, size_t hi, void *p)
{
    sws *s = p;
    atomic_fetch_add(&s->calls, 1);
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add_explicit(&s->hits[i], 1, memory_order_relaxed);
}

static void *sws_caller(void *p)
{
    sws *s = p;
    if (s->use_fib) {
        atomic_fetch_add(&s->calls, 1);
        s->rc = fib_outside(s->ex, s->fib_n, &s->fib_value);
    } else {
        s->rc = cf_parallel_for(s->ex, 0, s->n, 1, sws_body, s);
    }
    return NULL;
}

typedef struct stopper {
    sws *s;
    double delay;
    bool wait_for_calls;
    bool cancel;
} stopper;

static void *stopper_main(void *p)
{
    stopper *st = p;
    double t0 = now_s();
    while (st->wait_for_calls && atomic_load(&st->s->calls) == 0 &&
           now_s() - t0 < 5.0)
        sleep_s(0.0002);
    if (st->delay > 0)
        sleep_s(st->delay);
    CHECK_EQ(cf_shutdown(st->s->ex, false, st->cancel), 0);
    return NULL;
}

static void shutdown_round(bool use_fib, unsigned seed, bool cancel)
{
    sws s = { .ex = new_pool(4, "sd"),
              .use_fib = use_fib,
              .n = (size_t)scaled(2000000),
              .fib_n = test_scale() > 1.0 ? 20 : 25 };
    if (!use_fib) {
        s.hits = calloc(s.n, sizeof *s.hits);
        CHECK(s.hits != NULL);
    }
    stopper st = { .s = &s,
                   .delay = (double)(seed % 5) * 0.001,
                   .wait_for_calls = seed % 3 != 0,
                   .cancel = cancel };
    cf_thread *caller = NULL, *stop = NULL;
    CHECK_EQ(cf_thread_start(&caller, sws_caller, &s, NULL), 0);
    CHECK_EQ(cf_thread_start(&stop, stopper_main, &st, NULL), 0);
    CHECK_EQ(cf_thread_join(stop, 30.0 * test_scale(), NULL), 0);
    /* the fork-join call comes back: no hang */
    CHECK_EQ(cf_thread_join(caller, 30.0 * test_scale(), NULL), 0);
    if (!(s.rc == 0 || s.rc == CF_ESHUTDOWN ||
          (cancel && s.rc == CF_ECANCELED))) {
        fprintf(stderr, "shutdown while stealing (%s, cancel %d): rc %d (%s)\n",
                use_fib ? "fib" : "parallel_for", cancel, s.rc,
                cf_strerror(s.rc));
        CHECK(0);
    }
    cf_executor_free(s.ex);
    if (use_fib) {
        if (s.rc == 0)
            CHECK_EQ(s.fib_value, fib_serial(s.fib_n));
    } else {
        for (size_t i = 0; i < s.n; i++) {
            int v = atomic_load_explicit(&s.hits[i], memory_order_relaxed);
            CHECK(v <= 1);
            if (s.rc == 0)
                CHECK_EQ(v, 1);
        }
        free(s.hits);
    }
}

static void shutdown_while_stealing(void)
{
    long rounds = scaled(12);
    for (long r = 0; r < rounds; r++) {
        shutdown_round(false, (unsigned)r, false);
        shutdown_round(true, (unsigned)r, false);
    }
}

static void shutdown_cancel_while_stealing(void)
{
    long rounds = scaled(6);
    for (long r = 0; r < rounds; r++) {
        shutdown_round(false, (unsigned)r, true);
        shutdown_round(true, (unsigned)r, true);
    }
}

/* cf_shutdown with wait from another thread while a parallel_for from
 * outside runs: the call started before the shutdown, so it finishes
 * whole, and the shutdown returns only after it did. */
typedef struct waiting_stop {
    sws *s;
    atomic_long calls_at_return;
} waiting_stop;

static void *waiting_stopper(void *p)
{
    waiting_stop *ws = p;
    double t0 = now_s();
    while (atomic_load(&ws->s->calls) == 0 && now_s() - t0 < 10.0)
        sleep_s(0.0002);
    CHECK_EQ(cf_shutdown(ws->s->ex, true, false), 0);
    atomic_store(&ws->calls_at_return, atomic_load(&ws->s->calls));
    return NULL;
}

static void shutdown_wait_while_fork_join(void)
{
    long rounds = scaled(10);
    for (long r = 0; r < rounds; r++) {
        sws s = { .ex = new_pool(4, "sw"), .n = (size_t)scaled(1000000) };
        s.hits = calloc(s.n, sizeof *s.hits);
        CHECK(s.hits != NULL);
        waiting_stop ws = { .s = &s };
        cf_thread *caller = NULL, *stop = NULL;
        CHECK_EQ(cf_thread_start(&caller, sws_caller, &s, NULL), 0);
        CHECK_EQ(cf_thread_start(&stop, waiting_stopper, &ws, NULL), 0);
        CHECK_EQ(cf_thread_join(stop, 30.0 * test_scale(), NULL), 0);
        CHECK_EQ(cf_thread_join(caller, 30.0 * test_scale(), NULL), 0);
        CHECK_EQ(s.rc, 0);
        /* every body ran, all before the shutdown returned */
        CHECK_EQ(atomic_load(&ws.calls_at_return), (long)s.n);
        check_once(s.hits, s.n, "shutdown with wait");
        cf_executor_free(s.ex);
        free(s.hits);
    }
}

/* Every worker blocked; more tasks queued (some may already sit in a
 * worker's own queue): cf_shutdown with cancel_futures cancels all of
 * them at once, before any worker is free again, and none runs later. */
typedef struct held {
    cf_event *gate;
    atomic_int started;
    atomic_int ran;
} held;

static void *held_blocker(void *p)
{
    held *h = p;
    atomic_fetch_add(&h->started, 1);
    CHECK_EQ(cf_event_wait(h->gate, 30.0 * test_scale()), 0);
    return NULL;
}

static void *held_count(void *p)
{
    atomic_fetch_add(&((held *)p)->ran, 1);
    return NULL;
}

static void shutdown_cancel_reaches_queued(void)
{
    enum { QUEUED = 64 };
    long rounds = scaled(20);
    for (long r = 0; r < rounds; r++) {
        int workers = 1 + (int)(r % 3);
        cf_executor *ex = new_pool(workers, "cq");
        held h = { .gate = cf_event_new() };
        CHECK(h.gate != NULL);
        cf_future *fs[QUEUED];
        for (int i = 0; i < workers; i++)
            CHECK_EQ(cf_submit(ex, held_blocker, &h, NULL), 0);
        for (int i = 0; i < QUEUED; i++)
            CHECK_EQ(cf_submit(ex, held_count, &h, &fs[i]), 0);
        double t0 = now_s();
        while (atomic_load(&h.started) < workers) {
            CHECK(now_s() - t0 < 10.0 * test_scale());
            sleep_s(0.0005);
        }
        CHECK_EQ(cf_shutdown(ex, false, true), 0);
        for (int i = 0; i < QUEUED; i++)
            if (!cf_future_cancelled(fs[i])) {
                fprintf(stderr,
                        "round %ld (%d workers): task %d not cancelled\n", r,
                        workers, i);
                CHECK(0);
            }
        cf_event_set(h.gate);
        cf_executor_free(ex);
        CHECK_EQ(atomic_load(&h.ran), 0);
        for (int i = 0; i < QUEUED; i++) {
            CHECK_EQ(cf_future_result(fs[i], 0, NULL), CF_ECANCELED);
            cf_future_release(fs[i]);
        }
        cf_event_free(h.gate);
    }
}

/* ---- many pools at once */

typedef struct pool_user {
    int id;
    atomic_long counted;
    long expected;
    long bad;
} pool_user;

static void *pool_count(void *p)
{
    pool_user *u = p;
    atomic_fetch_add_explicit(&u->counted, 1, memory_order_relaxed);
    return p;
}

static void pool_user_body(size_t lo, size_t hi, void *p)
{
    pool_user *u = p;
    atomic_fetch_add_explicit(&u->counted, (long)(hi - lo),
                              memory_order_relaxed);
}

static void *pool_user_main(void *p)
{
    pool_user *u = p;
    long rounds = test_scale() > 1.0 ? 2 : 8;
    long tasks = scaled(400);
    for (long r = 0; r < rounds; r++) {
        cf_executor *ex = new_pool(2, "many");
        /* fire-and-forget work still in flight when the pool is freed */
        for (long i = 0; i < tasks; i++) {
            CHECK_EQ(cf_submit(ex, pool_count, u, NULL), 0);
            u->expected++;
        }
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, pool_count, u, &f), 0);
        u->expected++;
        CHECK_EQ(cf_parallel_for(ex, 0, 10000, 0, pool_user_body, u), 0);
        u->expected += 10000;
        long v = 0;
        CHECK_EQ(fib_outside(ex, 15, &v), 0);
        if (v != fib_serial(15))
            u->bad++;
        cf_group *g = cf_group_new(ex);
        CHECK(g != NULL);
        for (int i = 0; i < 100; i++) {
            CHECK_EQ(cf_group_submit(g, pool_count, u), 0);
            u->expected++;
        }
        /* one more batch, then free everything without waiting first */
        for (long i = 0; i < tasks; i++) {
            CHECK_EQ(cf_submit(ex, pool_count, u, NULL), 0);
            u->expected++;
        }
        cf_group_free(g);
        cf_executor_free(ex);
        void *res = NULL;
        CHECK_EQ(cf_future_result(f, 0, &res), 0); /* futures outlive it */
        CHECK(res == u);
        cf_future_release(f);
        if (atomic_load(&u->counted) != u->expected)
            u->bad++;
    }
    return NULL;
}

static void many_pools_at_once(void)
{
    enum { POOLS = 16 };
    static pool_user users[POOLS];
    cf_thread *t[POOLS];
    for (int i = 0; i < POOLS; i++) {
        users[i].id = i;
        CHECK_EQ(cf_thread_start(&t[i], pool_user_main, &users[i], NULL), 0);
    }
    for (int i = 0; i < POOLS; i++) {
        CHECK_EQ(cf_thread_join(t[i], 60.0 * test_scale(), NULL), 0);
        CHECK_EQ(users[i].bad, 0);
        CHECK_EQ(atomic_load(&users[i].counted), users[i].expected);
    }
}

/* ---- wake-ups not lost */

static void *echo_task(void *p)
{
    uintptr_t v = (uintptr_t)p;
    if (v % 50 == 7 && (v & 0x40000000u))
        sleep_s(0.001);
    return (void *)(v + 1);
}

/* Rounds of submit-one-and-wait on an otherwise idle pool. sleepy: tasks
 * sleep 1 ms now and then, and the caller pauses now and then, so workers
 * go to sleep between rounds. */
static void wakeups_rounds(bool sleepy)
{
    cf_executor *ex = new_pool(4, "wk");
    long rounds = scaled(10000);
    double limit = 1.0 * test_scale();
    for (long i = 0; i < rounds; i++) {
        if (sleepy && i % 100 == 3)
            sleep_s(0.002);
        uintptr_t arg = (uintptr_t)i | (sleepy ? 0x40000000u : 0);
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, echo_task, (void *)arg, &f), 0);
        void *r = NULL;
        int rc = cf_future_result(f, limit, &r);
        if (rc != 0) {
            fprintf(stderr, "round %ld: %s\n", i, cf_strerror(rc));
            CHECK_EQ(rc, 0);
        }
        CHECK(r == (void *)(arg + 1));
        cf_future_release(f);
    }
    cf_executor_free(ex);
}

static void wakeups_not_lost(void)
{
    wakeups_rounds(false);
}
static void wakeups_not_lost_sleepy(void)
{
    wakeups_rounds(true);
}

/* Bursts of 1..4 tasks per round, each waited with the 1 s limit. */
static void wakeups_not_lost_bursts(void)
{
    cf_executor *ex = new_pool(4, "wb");
    long rounds = scaled(5000);
    double limit = 1.0 * test_scale();
    for (long i = 0; i < rounds; i++) {
        if (i % 97 == 5)
            sleep_s(0.002);
        int k = 1 + (int)(i % 4);
        cf_future *f[4];
        for (int j = 0; j < k; j++)
            CHECK_EQ(
                cf_submit(ex, echo_task, (void *)(uintptr_t)(i * 4 + j), &f[j]),
                0);
        for (int j = 0; j < k; j++) {
            void *r = NULL;
            int rc = cf_future_result(f[j], limit, &r);
            if (rc != 0) {
                fprintf(stderr, "round %ld task %d: %s\n", i, j,
                        cf_strerror(rc));
                CHECK_EQ(rc, 0);
            }
            CHECK(r == (void *)(uintptr_t)(i * 4 + j + 1));
            cf_future_release(f[j]);
        }
    }
    cf_executor_free(ex);
}

/* The same through a group and through cf_parallel_for from outside. */
static void *group_echo(void *p)
{
    atomic_fetch_add((atomic_long *)p, 1);
    return NULL;
}

static void pf_echo(size_t lo, size_t hi, void *p)
{
    atomic_fetch_add((atomic_long *)p, (long)(hi - lo));
}

static void wakeups_not_lost_fork_join(void)
{
    cf_executor *ex = new_pool(4, "wf");
    cf_group *g = cf_group_new(ex);
    CHECK(g != NULL);
    atomic_long ran = 0;
    long rounds = scaled(5000);
    double limit = 1.0 * test_scale();
    for (long i = 0; i < rounds; i++) {
        if (i % 100 == 9)
            sleep_s(0.002);
        CHECK_EQ(cf_group_submit(g, group_echo, &ran), 0);
        int rc = cf_group_wait(g, limit);
        if (rc != 0) {
            fprintf(stderr, "group round %ld: %s\n", i, cf_strerror(rc));
            CHECK_EQ(rc, 0);
        }
        CHECK_EQ(atomic_load(&ran), i + 1);
    }
    cf_group_free(g);
    atomic_long units = 0;
    for (long i = 0; i < rounds; i++) {
        CHECK_EQ(cf_parallel_for(ex, 0, 4, 1, pf_echo, &units), 0);
        CHECK_EQ(atomic_load(&units), (i + 1) * 4);
    }
    cf_executor_free(ex);
}

/* ---- I/O-bound */

typedef struct io_ctx {
    atomic_int running, peak, done;
} io_ctx;

static void *io_task(void *p)
{
    io_ctx *c = p;
    int now = atomic_fetch_add(&c->running, 1) + 1;
    int peak = atomic_load(&c->peak);
    while (now > peak && !atomic_compare_exchange_weak(&c->peak, &peak, now)) {
    }
    sleep_s(0.05);
    atomic_fetch_sub(&c->running, 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void io_bound_wide_pool(void)
{
    cf_executor *ex = new_pool(100, "io");
    io_ctx c = { 0 };
    cf_future *f[200];
    double t0 = now_s();
    for (int i = 0; i < 200; i++)
        CHECK_EQ(cf_submit(ex, io_task, &c, &f[i]), 0);
    CHECK_EQ(cf_wait(f, 200, 30.0 * test_scale(), CF_ALL_COMPLETED), 0);
    double dt = now_s() - t0;
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(cf_future_result(f[i], 0, NULL), 0);
        cf_future_release(f[i]);
    }
    CHECK_EQ(atomic_load(&c.done), 200);
    if (dt < 0.09 || dt > 1.5 * test_scale()) {
        fprintf(stderr, "200 x 50 ms on 100 workers took %.3f s (peak %d)\n",
                dt, atomic_load(&c.peak));
        CHECK(0);
    }
    /* they ran about a hundred at a time, never more */
    CHECK(atomic_load(&c.peak) >= 50);
    CHECK(atomic_load(&c.peak) <= 100);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK(st.workers <= 100);
    cf_executor_free(ex);
}

/* ---- blocked tasks do not hold back queued ones */

typedef struct meet {
    cf_barrier *b;
    atomic_int started;
} meet;

/* Waits at a barrier for as many parties as the pool has workers: it only
 * opens if every task runs at once on its own worker. */
static void *meet_task(void *p)
{
    meet *m = p;
    atomic_fetch_add(&m->started, 1);
    int idx = cf_barrier_wait(m->b, 10.0 * test_scale());
    return (void *)(intptr_t)(idx + 1000);
}

/* One round on ex (NULL: a fresh pool of that many workers). */
static void blocked_round(cf_executor *given, int workers, bool use_group)
{
    cf_executor *ex = given ? given : new_pool(workers, "bt");
    meet m = { .b = cf_barrier_new((unsigned)workers, NULL, NULL) };
    CHECK(m.b != NULL);
    cf_future *f[8];
    cf_group *g = use_group ? cf_group_new(ex) : NULL;
    CHECK(!use_group || g != NULL);
    for (int i = 0; i < workers; i++) {
        if (use_group)
            CHECK_EQ(cf_group_submit(g, meet_task, &m), 0);
        else
            CHECK_EQ(cf_submit(ex, meet_task, &m, &f[i]), 0);
    }
    if (use_group) {
        CHECK_EQ(cf_group_wait(g, 30.0 * test_scale()), 0);
        cf_group_free(g);
    } else {
        bool seen[8] = { false };
        for (int i = 0; i < workers; i++) {
            void *r = NULL;
            CHECK_EQ(cf_future_result(f[i], 30.0 * test_scale(), &r), 0);
            int idx = (int)(intptr_t)r - 1000;
            if (idx < 0 || idx >= workers) {
                fprintf(stderr,
                        "%d workers: barrier wait gave %d (%d tasks started)\n",
                        workers, idx, atomic_load(&m.started));
                CHECK(0);
            }
            CHECK(!seen[idx]);
            seen[idx] = true;
            cf_future_release(f[i]);
        }
    }
    CHECK_EQ(atomic_load(&m.started), workers);
    CHECK(!cf_barrier_broken(m.b));
    cf_barrier_free(m.b);
    if (!given)
        cf_executor_free(ex);
}

static void blocked_tasks_all_start_on(int workers, bool use_group)
{
    blocked_round(NULL, workers, use_group);
}

static void blocked_tasks_all_start(void)
{
    long rounds = scaled(20);
    for (long r = 0; r < rounds; r++) {
        blocked_tasks_all_start_on(2, false);
        blocked_tasks_all_start_on(4, false);
        blocked_tasks_all_start_on(8, false);
    }
}

/* The same on a pool whose workers all exist and have gone to sleep
 * between rounds: the submits must wake every one of them. */
static void blocked_tasks_wake_sleeping_workers(void)
{
    long rounds = scaled(20);
    for (int workers = 2; workers <= 8; workers *= 2) {
        cf_executor *ex = new_pool(workers, "bs");
        for (long r = 0; r < rounds; r++) {
            blocked_round(ex, workers, r % 2 == 1);
            sleep_s(0.005);
        }
        cf_executor_free(ex);
    }
}

static void blocked_group_tasks_all_start(void)
{
    long rounds = scaled(20);
    for (long r = 0; r < rounds; r++) {
        blocked_tasks_all_start_on(2, true);
        blocked_tasks_all_start_on(4, true);
    }
}

/* ---- lazy threads */

static void *nop_task(void *p)
{
    return p;
}

static void lazy_rounds(const cf_options *o, bool pause)
{
    cf_executor *ex = cf_thread_pool_new(o);
    CHECK(ex != NULL);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.workers, 0); /* nothing started before the first submit */
    for (int i = 0; i < 100; i++) {
        if (pause && i % 10 == 0)
            sleep_s(0.002);
        cf_future *f = NULL;
        CHECK_EQ(cf_submit(ex, nop_task, (void *)(intptr_t)(i + 1), &f), 0);
        void *r = NULL;
        CHECK_EQ(cf_future_result(f, 10.0 * test_scale(), &r), 0);
        CHECK(r == (void *)(intptr_t)(i + 1));
        cf_future_release(f);
    }
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    if (st.workers < 1 || st.workers > 2) {
        fprintf(stderr, "100 sequential submit-and-wait started %zu workers\n",
                st.workers);
        CHECK(0);
    }
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    CHECK_EQ(st.completed, 100);
    cf_executor_free(ex);
}

static void *lazy_side(void *p)
{
    return p;
}

static void lazy_body(size_t lo, size_t hi, void *p)
{
    atomic_fetch_add((atomic_long *)p, (long)(hi - lo));
}

/* Sequential fork-join calls of two trivial pieces: idle workers are
 * reused. Two pieces run at once at most; a third worker may start when a
 * push's wake check runs after both workers already took the work (the
 * caller cannot tell), but never more. One group task at a time needs at
 * most two, as plain submits do. */
static void lazy_fork_join_rounds(int kind)
{
    cf_options o = { .max_workers = 8 };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    atomic_long units = 0;
    cf_group *g = kind == 2 ? cf_group_new(ex) : NULL;
    for (int i = 0; i < 100; i++) {
        if (i % 10 == 0)
            sleep_s(0.002);
        if (kind == 0) {
            void *ra = NULL, *rb = NULL;
            CHECK_EQ(cf_join(ex, lazy_side, (void *)1, &ra, lazy_side,
                             (void *)2, &rb),
                     0);
            CHECK(ra == (void *)1 && rb == (void *)2);
        } else if (kind == 1) {
            CHECK_EQ(cf_parallel_for(ex, 0, 2, 1, lazy_body, &units), 0);
        } else {
            CHECK_EQ(cf_group_submit(g, lazy_side, NULL), 0);
            CHECK_EQ(cf_group_wait(g, 10.0 * test_scale()), 0);
        }
    }
    if (g)
        cf_group_free(g);
    if (kind == 1)
        CHECK_EQ(atomic_load(&units), 200);
    cf_stats st;
    CHECK_EQ(cf_executor_stats(ex, &st), 0);
    size_t most = kind == 2 ? 2 : 3;
    if (st.workers < 1 || st.workers > most) {
        fprintf(stderr, "100 sequential %s started %zu workers\n",
                kind == 0   ? "cf_join"
                : kind == 1 ? "cf_parallel_for"
                            : "group submit-and-wait",
                st.workers);
        CHECK(0);
    }
    cf_executor_free(ex);
}

static void lazy_threads(void)
{
    cf_options o = { .max_workers = 8 };
    lazy_rounds(&o, false);
    lazy_rounds(&o, true);
    lazy_rounds(NULL, false);
}

static void lazy_threads_fork_join(void)
{
    lazy_fork_join_rounds(0);
    lazy_fork_join_rounds(1);
    lazy_fork_join_rounds(2);
}

static const test_case cases[] = {
    TEST_CASE(many_producers_2_workers),
    TEST_CASE(many_producers_4_workers),
    TEST_CASE(one_worker_keeps_order),
    TEST_CASE(nested_joins_1_worker),
    TEST_CASE(nested_joins_2_workers),
    TEST_CASE(nested_joins_8_workers),
    TEST_CASE(nested_joins_many_callers),
    TEST_CASE(deep_join_chain),
    TEST_CASE(nested_waits_deep_chain),
    TEST_CASE(waits_in_worker_keep_deadlines),
    TEST_CASE(steal_storm_group),
    TEST_CASE(steal_storm_join),
    TEST_CASE(steal_storm_join_8_workers),
    TEST_CASE(steal_storm_bursts),
    TEST_CASE(shutdown_while_stealing),
    TEST_CASE(shutdown_cancel_while_stealing),
    TEST_CASE(shutdown_wait_while_fork_join),
    TEST_CASE(shutdown_cancel_reaches_queued),
    TEST_CASE(many_pools_at_once),
    TEST_CASE(wakeups_not_lost),
    TEST_CASE(wakeups_not_lost_sleepy),
    TEST_CASE(wakeups_not_lost_bursts),
    TEST_CASE(wakeups_not_lost_fork_join),
    TEST_CASE(io_bound_wide_pool),
    TEST_CASE(blocked_tasks_all_start),
    TEST_CASE(blocked_group_tasks_all_start),
    TEST_CASE(blocked_tasks_wake_sleeping_workers),
    TEST_CASE(lazy_threads),
    TEST_CASE(lazy_threads_fork_join),
};

TEST_MAIN(cases)
