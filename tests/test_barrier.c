/* SPDX-License-Identifier: MIT */
/*
 * test_barrier.c - cf_barrier.
 *
 * The cases follow CPython's Lib/test/lock_tests.py BarrierTests (with
 * N = 5 parties: the main thread and N - 1 others), translated to the C
 * API, plus bad input, ENOMEM, and a few properties Python's tests leave
 * implicit (distinct indices every round, the action's timing).
 */
#include "harness.h"

#include <pthread.h>

#define N 5

/* ---- helpers -------------------------------------------------------------- */

static cf_thread *spawn(cf_fn fn, void *arg)
{
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, fn, arg, NULL), 0);
    return t;
}

static void join(cf_thread *t)
{
    CHECK_EQ(cf_thread_join(t, 30.0, NULL), 0);
}

typedef struct run_ctx run_ctx;
typedef void (*party_fn)(run_ctx *r);

/* What every party of a test shares. */
struct run_ctx {
    cf_barrier *barrier;
    cf_barrier *barrier2;
    party_fn fn;
    atomic_int results1, results2, results3;
    atomic_int index_sum;
    atomic_int action_calls;
    atomic_int passes;
    atomic_int
        seen_bits[16]; /* per round: bit i set by the party with index i */
    int rounds;
};

static void *party_main(void *p)
{
    run_ctx *r = p;
    r->fn(r);
    return NULL;
}

/* Runs fn in N - 1 new threads and in the caller, as BarrierTests does. */
static void run_threads(run_ctx *r, party_fn fn)
{
    r->fn = fn;
    cf_thread *t[N - 1];
    for (int i = 0; i < N - 1; i++)
        t[i] = spawn(party_main, r);
    fn(r);
    for (int i = 0; i < N - 1; i++)
        join(t[i]);
}

static void run_init(run_ctx *r, cf_barrier *b)
{
    memset(r, 0, sizeof *r);
    r->barrier = b;
}

/* ---- BarrierTests --------------------------------------------------------- */

static void barrier_constructor(void)
{
    errno = 0;
    CHECK(cf_barrier_new(0, NULL, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    cf_barrier *b = cf_barrier_new(N, NULL, NULL);
    CHECK(b);
    CHECK_EQ(cf_barrier_parties(b), N);
    CHECK_EQ(cf_barrier_n_waiting(b), 0);
    CHECK(!cf_barrier_broken(b));
    cf_barrier_free(b);
    cf_barrier_free(NULL);
}

/* lock_tests' multipass: the parties move through the barrier in lockstep. */
static void multipass(run_ctx *r)
{
    unsigned m = cf_barrier_parties(r->barrier);
    CHECK_EQ(m, N);
    for (int i = 0; i < r->rounds; i++) {
        atomic_fetch_add(&r->results1, 1);
        CHECK_EQ(atomic_load(&r->results2), i * (int)m);
        int rc = cf_barrier_wait(r->barrier, 10.0);
        CHECK(rc >= 0 && rc < N);
        atomic_fetch_add(&r->results2, 1);
        CHECK_EQ(atomic_load(&r->results1), (i + 1) * (int)m);
        rc = cf_barrier_wait(r->barrier, 10.0);
        CHECK(rc >= 0 && rc < N);
    }
    CHECK_EQ(cf_barrier_n_waiting(r->barrier), 0);
    CHECK(!cf_barrier_broken(r->barrier));
}

static void check_lockstep(int rounds)
{
    run_ctx r;
    run_init(&r, cf_barrier_new(N, NULL, NULL));
    r.rounds = rounds;
    run_threads(&r, multipass);
    CHECK_EQ(atomic_load(&r.results1), rounds * N);
    CHECK_EQ(atomic_load(&r.results2), rounds * N);
    cf_barrier_free(r.barrier);
}

static void barrier_lockstep(void)
{
    check_lockstep(1);
}
static void barrier_lockstep_10(void)
{
    check_lockstep(10);
}

static void wait_return(run_ctx *r)
{
    int rc = cf_barrier_wait(r->barrier, CF_FOREVER);
    CHECK(rc >= 0 && rc < N);
    atomic_fetch_add(&r->index_sum, rc);
    atomic_fetch_or(&r->seen_bits[0], 1 << rc);
}

static void barrier_wait_return(void)
{
    run_ctx r;
    run_init(&r, cf_barrier_new(N, NULL, NULL));
    run_threads(&r, wait_return);
    CHECK_EQ(atomic_load(&r.index_sum), 0 + 1 + 2 + 3 + 4);
    CHECK_EQ(atomic_load(&r.seen_bits[0]), (1 << N) - 1);
    cf_barrier_free(r.barrier);
}

static void count_action(void *p)
{
    run_ctx *r = p;
    /* No party has left the round yet. */
    CHECK_EQ(atomic_load(&r->passes), atomic_load(&r->action_calls) * N);
    atomic_fetch_add(&r->action_calls, 1);
}

static void action_party(run_ctx *r)
{
    for (int round = 1; round <= 3; round++) {
        int rc = cf_barrier_wait(r->barrier, CF_FOREVER);
        CHECK(rc >= 0 && rc < N);
        /* The action ran once for this round, before anyone was released. */
        CHECK_EQ(atomic_load(&r->action_calls), round);
        atomic_fetch_add(&r->passes, 1);
        /* Keep rounds apart, so passes is exact when the action looks. */
        rc = cf_barrier_wait(r->barrier2, CF_FOREVER);
        CHECK(rc >= 0 && rc < N);
    }
}

static void barrier_action(void)
{
    run_ctx r;
    run_init(&r, NULL);
    r.barrier = cf_barrier_new(N, count_action, &r);
    r.barrier2 = cf_barrier_new(N, NULL, NULL);
    run_threads(&r, action_party);
    CHECK_EQ(atomic_load(&r.action_calls), 3);
    cf_barrier_free(r.barrier);
    cf_barrier_free(r.barrier2);
}

static void abort_party(run_ctx *r)
{
    int i = cf_barrier_wait(r->barrier, 10.0);
    CHECK(i >= 0);
    if (i == N / 2) {
        /* Python raises here and calls abort() in the handler. */
        cf_barrier_abort(r->barrier);
    } else {
        int rc = cf_barrier_wait(r->barrier, 10.0);
        if (rc >= 0)
            atomic_fetch_add(&r->results1, 1);
        else if (rc == CF_EBROKEN)
            atomic_fetch_add(&r->results2, 1);
        else
            CHECK(!"unexpected return");
    }
}

static void barrier_abort(void)
{
    /* Repeated: an abort() right after a round completes must not turn the
     * completed round's slower waiters into CF_EBROKEN (abort_party checks
     * every first wait succeeds). */
    for (int rep = 0; rep < 20; rep++) {
        run_ctx r;
        run_init(&r, cf_barrier_new(N, NULL, NULL));
        run_threads(&r, abort_party);
        CHECK_EQ(atomic_load(&r.results1), 0);
        CHECK_EQ(atomic_load(&r.results2), N - 1);
        CHECK(cf_barrier_broken(r.barrier));
        /* Later waits fail at once until a reset. */
        CHECK_EQ(cf_barrier_wait(r.barrier, CF_FOREVER), CF_EBROKEN);
        CHECK_EQ(cf_barrier_n_waiting(r.barrier), 0);
        cf_barrier_free(r.barrier);
    }
}

static void reset_party(run_ctx *r)
{
    int i = cf_barrier_wait(r->barrier, 10.0);
    CHECK(i >= 0);
    if (i == N / 2) {
        /* Wait until the other parties are all in the barrier. */
        double end = now_s() + 10.0;
        while (cf_barrier_n_waiting(r->barrier) < N - 1) {
            CHECK(now_s() < end);
            sleep_s(0.001);
        }
        cf_barrier_reset(r->barrier);
    } else {
        int rc = cf_barrier_wait(r->barrier, 10.0);
        if (rc >= 0)
            atomic_fetch_add(&r->results1, 1);
        else if (rc == CF_EBROKEN)
            atomic_fetch_add(&r->results2, 1);
        else
            CHECK(!"unexpected return");
    }
    /* Now pass the barrier again. */
    CHECK(cf_barrier_wait(r->barrier, 10.0) >= 0);
    atomic_fetch_add(&r->results3, 1);
}

static void barrier_reset(void)
{
    run_ctx r;
    run_init(&r, cf_barrier_new(N, NULL, NULL));
    run_threads(&r, reset_party);
    CHECK_EQ(atomic_load(&r.results1), 0);
    CHECK_EQ(atomic_load(&r.results2), N - 1);
    CHECK_EQ(atomic_load(&r.results3), N);
    CHECK(!cf_barrier_broken(r.barrier));
    cf_barrier_free(r.barrier);
}

static void abort_and_reset_party(run_ctx *r)
{
    int i = cf_barrier_wait(r->barrier, 10.0);
    CHECK(i >= 0);
    if (i == N / 2) {
        cf_barrier_abort(r->barrier);
    } else {
        int rc = cf_barrier_wait(r->barrier, 10.0);
        if (rc >= 0)
            atomic_fetch_add(&r->results1, 1);
        else if (rc == CF_EBROKEN)
            atomic_fetch_add(&r->results2, 1);
        else
            CHECK(!"unexpected return");
    }
    /* Synchronise and reset: first so that everyone has left the broken
     * barrier, then so that no one enters it before the reset. */
    if (cf_barrier_wait(r->barrier2, 10.0) == N / 2)
        cf_barrier_reset(r->barrier);
    CHECK(cf_barrier_wait(r->barrier2, 10.0) >= 0);
    CHECK(cf_barrier_wait(r->barrier, 10.0) >= 0);
    atomic_fetch_add(&r->results3, 1);
}

static void barrier_abort_and_reset(void)
{
    run_ctx r;
    run_init(&r, cf_barrier_new(N, NULL, NULL));
    r.barrier2 = cf_barrier_new(N, NULL, NULL);
    run_threads(&r, abort_and_reset_party);
    CHECK_EQ(atomic_load(&r.results1), 0);
    CHECK_EQ(atomic_load(&r.results2), N - 1);
    CHECK_EQ(atomic_load(&r.results3), N);
    CHECK(!cf_barrier_broken(r.barrier));
    cf_barrier_free(r.barrier);
    cf_barrier_free(r.barrier2);
}

static void timeout_party(run_ctx *r)
{
    int i = cf_barrier_wait(r->barrier, 10.0);
    CHECK(i >= 0);
    if (i == N / 2)
        sleep_s(0.5); /* one party is late */
    double t0 = now_s();
    CHECK_EQ(cf_barrier_wait(r->barrier, 0.1), CF_EBROKEN);
    CHECK(now_s() - t0 < 2.0 * test_scale());
}

static void barrier_timeout(void)
{
    /* A wait that times out breaks the barrier for every party: the early
     * ones time out, the late one finds it broken. */
    run_ctx r;
    run_init(&r, cf_barrier_new(N, NULL, NULL));
    run_threads(&r, timeout_party);
    CHECK(cf_barrier_broken(r.barrier));
    cf_barrier_free(r.barrier);
}

static void barrier_timeout_alone(void)
{
    /* One party of two, alone: its own timeout breaks the barrier. */
    cf_barrier *b = cf_barrier_new(2, NULL, NULL);
    double t0 = now_s();
    CHECK_EQ(cf_barrier_wait(b, 0.1), CF_EBROKEN);
    double dt = now_s() - t0;
    CHECK(dt >= 0.09 && dt < 2.0 * test_scale());
    CHECK(cf_barrier_broken(b));
    CHECK_EQ(cf_barrier_n_waiting(b), 0);
    /* A poll breaks it too, after a reset. */
    cf_barrier_reset(b);
    CHECK(!cf_barrier_broken(b));
    CHECK_EQ(cf_barrier_wait(b, 0), CF_EBROKEN);
    CHECK(cf_barrier_broken(b));
    cf_barrier_free(b);
}

static void barrier_single_thread(void)
{
    cf_barrier *b = cf_barrier_new(1, NULL, NULL);
    CHECK_EQ(cf_barrier_wait(b, CF_FOREVER), 0);
    CHECK_EQ(cf_barrier_wait(b, CF_FOREVER), 0);
    CHECK_EQ(cf_barrier_wait(b, 0), 0); /* the last party never waits */
    cf_barrier_free(b);
}

static void count_single_action(void *p)
{
    run_ctx *r = p;
    CHECK_EQ(atomic_load(&r->passes), atomic_load(&r->action_calls));
    atomic_fetch_add(&r->action_calls, 1);
}

static void barrier_single_thread_action(void)
{
    run_ctx r;
    run_init(&r, NULL);
    cf_barrier *b = cf_barrier_new(1, count_single_action, &r);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(cf_barrier_wait(b, 0), 0);
        atomic_fetch_add(&r.passes, 1);
    }
    CHECK_EQ(atomic_load(&r.action_calls), 3);
    cf_barrier_free(b);
}

/* ---- beyond Python's tests ------------------------------------------------ */

static void *lone_wait(void *p)
{
    return (void *)(intptr_t)cf_barrier_wait(p, 10.0);
}

static void barrier_n_waiting(void)
{
    cf_barrier *b = cf_barrier_new(3, NULL, NULL);
    cf_thread *t1 = spawn(lone_wait, b);
    double end = now_s() + 10.0;
    while (cf_barrier_n_waiting(b) < 1) {
        CHECK(now_s() < end);
        sleep_s(0.001);
    }
    cf_thread *t2 = spawn(lone_wait, b);
    while (cf_barrier_n_waiting(b) < 2) {
        CHECK(now_s() < end);
        sleep_s(0.001);
    }
    int idx = cf_barrier_wait(b, 10.0);
    void *r1 = NULL, *r2 = NULL;
    CHECK_EQ(cf_thread_join(t1, 30.0, &r1), 0);
    CHECK_EQ(cf_thread_join(t2, 30.0, &r2), 0);
    /* Indices are the order of arrival here: 0, 1, then 2 for us. */
    CHECK_EQ((intptr_t)r1, 0);
    CHECK_EQ((intptr_t)r2, 1);
    CHECK_EQ(idx, 2);
    CHECK_EQ(cf_barrier_n_waiting(b), 0);
    cf_barrier_free(b);
}

static void *lone_wait_broken(void *p)
{
    CHECK_EQ(cf_barrier_wait(p, 10.0), CF_EBROKEN);
    return NULL;
}

static void barrier_reset_wakes_waiters(void)
{
    /* reset() with a party waiting: it gets CF_EBROKEN, and the barrier is
     * whole again once it has left. */
    cf_barrier *b = cf_barrier_new(2, NULL, NULL);
    cf_thread *t = spawn(lone_wait_broken, b);
    double end = now_s() + 10.0;
    while (cf_barrier_n_waiting(b) < 1) {
        CHECK(now_s() < end);
        sleep_s(0.001);
    }
    cf_barrier_reset(b);
    join(t);
    CHECK(!cf_barrier_broken(b));
    CHECK_EQ(cf_barrier_n_waiting(b), 0);
    t = spawn(lone_wait, b);
    int idx = cf_barrier_wait(b, 10.0);
    CHECK(idx == 0 || idx == 1);
    join(t);
    /* abort() with a party waiting, then reset once it has left. */
    t = spawn(lone_wait_broken, b);
    while (cf_barrier_n_waiting(b) < 1) {
        CHECK(now_s() < end);
        sleep_s(0.001);
    }
    cf_barrier_abort(b);
    join(t);
    CHECK(cf_barrier_broken(b));
    cf_barrier_reset(b);
    CHECK(!cf_barrier_broken(b));
    t = spawn(lone_wait, b);
    CHECK(cf_barrier_wait(b, 10.0) >= 0);
    join(t);
    cf_barrier_free(b);
}

static void distinct_party(run_ctx *r)
{
    for (int round = 0; round < r->rounds; round++) {
        int rc = cf_barrier_wait(r->barrier, 10.0);
        CHECK(rc >= 0 && rc < N);
        int old = atomic_fetch_or(&r->seen_bits[round], 1 << rc);
        CHECK((old & (1 << rc)) == 0); /* no other party had this index */
    }
}

static void barrier_distinct_indices(void)
{
    run_ctx r;
    run_init(&r, cf_barrier_new(N, NULL, NULL));
    r.rounds = 16;
    run_threads(&r, distinct_party);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(atomic_load(&r.seen_bits[i]), (1 << N) - 1);
    cf_barrier_free(r.barrier);
}

static void inspecting_action(void *p)
{
    run_ctx *r = p;
    /* The action may look at its barrier: the round is full. */
    CHECK_EQ(cf_barrier_parties(r->barrier), N);
    CHECK_EQ(cf_barrier_n_waiting(r->barrier), N);
    CHECK(!cf_barrier_broken(r->barrier));
    atomic_fetch_add(&r->action_calls, 1);
}

static void barrier_action_inspects(void)
{
    run_ctx r;
    run_init(&r, NULL);
    r.barrier = cf_barrier_new(N, inspecting_action, &r);
    r.rounds = 4;
    run_threads(&r, distinct_party);
    CHECK_EQ(atomic_load(&r.action_calls), 4);
    cf_barrier_free(r.barrier);
}

static void aborting_action(void *p)
{
    /* Python's "failing action": it breaks the barrier for the round. */
    run_ctx *r = p;
    atomic_fetch_add(&r->action_calls, 1);
    cf_barrier_abort(r->barrier);
}

static void broken_party(run_ctx *r)
{
    CHECK_EQ(cf_barrier_wait(r->barrier, 10.0), CF_EBROKEN);
    atomic_fetch_add(&r->results2, 1);
}

static void barrier_action_aborts(void)
{
    run_ctx r;
    run_init(&r, NULL);
    r.barrier = cf_barrier_new(N, aborting_action, &r);
    run_threads(&r, broken_party);
    CHECK_EQ(atomic_load(&r.action_calls), 1);
    CHECK_EQ(atomic_load(&r.results2), N);
    CHECK(cf_barrier_broken(r.barrier));
    cf_barrier_free(r.barrier);
}

static void slow_action(void *p)
{
    (void)p;
    sleep_s(0.3);
}

static void *short_wait(void *p)
{
    return (void *)(intptr_t)cf_barrier_wait(p, 0.1);
}

static void barrier_timeout_during_action(void)
{
    /* A waiter whose timeout passes while the action runs still passes:
     * the round was complete before its time ran out. */
    cf_barrier *b = cf_barrier_new(2, slow_action, NULL);
    cf_thread *t = spawn(short_wait, b);
    double end = now_s() + 10.0;
    while (cf_barrier_n_waiting(b) < 1) {
        CHECK(now_s() < end);
        sleep_s(0.001);
    }
    CHECK_EQ(cf_barrier_wait(b, 10.0), 1);
    void *r = NULL;
    CHECK_EQ(cf_thread_join(t, 30.0, &r), 0);
    CHECK_EQ((intptr_t)r, 0);
    CHECK(!cf_barrier_broken(b));
    cf_barrier_free(b);
}

static void barrier_bad_input(void)
{
    CHECK_EQ(cf_barrier_wait(NULL, 0), CF_EINVAL);
    cf_barrier_reset(NULL);
    cf_barrier_abort(NULL);
    CHECK(!cf_barrier_broken(NULL));
    CHECK_EQ(cf_barrier_n_waiting(NULL), 0);
    CHECK_EQ(cf_barrier_parties(NULL), 0);
    cf_barrier *b = cf_barrier_new(2, NULL, NULL);
    CHECK_EQ(cf_barrier_wait(b, NAN), CF_EINVAL);
    /* Nothing changed: nobody waits, and it is not broken. */
    CHECK_EQ(cf_barrier_n_waiting(b), 0);
    CHECK(!cf_barrier_broken(b));
    cf_thread *t = spawn(lone_wait, b);
    CHECK(cf_barrier_wait(b, 10.0) >= 0);
    join(t);
    cf_barrier_free(b);
}

static int new_barrier_op(void *ctx)
{
    cf_barrier **b = ctx;
    *b = cf_barrier_new(1, NULL, NULL);
    if (!*b) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    CHECK_EQ(cf_barrier_wait(*b, 0), 0);
    return 0;
}

static void new_barrier_undo(void *ctx)
{
    cf_barrier_free(*(cf_barrier **)ctx);
}

static void barrier_enomem(void)
{
    oom_install();
    long live = oom_live_count();
    cf_barrier *b = NULL;
    CHECK(oom_sweep(new_barrier_op, new_barrier_undo, &b) >= 1);
    CHECK_EQ(oom_live_count(), live);
    /* Bad input is reported before any allocation. */
    oom_fail_at(0);
    errno = 0;
    CHECK(cf_barrier_new(0, NULL, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    oom_fail_at(-1);
}

static const test_case cases[] = {
    TEST_CASE(barrier_constructor),
    TEST_CASE(barrier_lockstep),
    TEST_CASE(barrier_lockstep_10),
    TEST_CASE(barrier_wait_return),
    TEST_CASE(barrier_action),
    TEST_CASE(barrier_abort),
    TEST_CASE(barrier_reset),
    TEST_CASE(barrier_abort_and_reset),
    TEST_CASE(barrier_timeout),
    TEST_CASE(barrier_timeout_alone),
    TEST_CASE(barrier_single_thread),
    TEST_CASE(barrier_single_thread_action),
    TEST_CASE(barrier_n_waiting),
    TEST_CASE(barrier_reset_wakes_waiters),
    TEST_CASE(barrier_distinct_indices),
    TEST_CASE(barrier_action_inspects),
    TEST_CASE(barrier_action_aborts),
    TEST_CASE(barrier_timeout_during_action),
    TEST_CASE(barrier_bad_input),
    TEST_CASE(barrier_enomem),
};

TEST_MAIN(cases)
