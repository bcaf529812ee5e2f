/* SPDX-License-Identifier: MIT */
/*
 * test_sync.c - cf_lock, cf_rlock, cf_condition, cf_semaphore, cf_event.
 *
 * The cases follow CPython's Lib/test/lock_tests.py (LockTests, RLockTests,
 * ConditionAsRLockTests, ConditionTests, SemaphoreTests,
 * BoundedSemaphoreTests, EventTests) and the semaphore cases of
 * Lib/test/test_threading.py, translated to the C API, plus bad input,
 * ENOMEM and a little stress for the sanitizers.
 */
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* ---- helpers -------------------------------------------------------------- */

static cf_thread *spawn(cf_fn fn, void *arg)
{
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, fn, arg, NULL), 0);
    return t;
}

static void *join(cf_thread *t)
{
    void *r = NULL;
    CHECK_EQ(cf_thread_join(t, 30.0, &r), 0);
    return r;
}

/* A crude pause that relies on no synchronisation object. */
static void pause_briefly(void)
{
    sleep_s(0.02);
}

/* Polls until *v reaches want, for at most 10 s. */
static void wait_for_count(atomic_int *v, int want)
{
    double end = now_s() + 10.0 * test_scale();
    while (atomic_load(v) < want) {
        CHECK(now_s() < end);
        sleep_s(0.002);
    }
}

/* A bunch of n threads running fn(ctx), as lock_tests.Bunch. With
 * wait_before_exit they linger after fn until bunch_join. */
typedef struct bunch {
    int n;
    cf_thread *threads[32];
    void (*fn)(void *ctx);
    void *ctx;
    atomic_int started, finished;
    atomic_bool can_exit;
} bunch;

static void *bunch_main(void *p)
{
    bunch *b = p;
    atomic_fetch_add(&b->started, 1);
    b->fn(b->ctx);
    atomic_fetch_add(&b->finished, 1);
    while (!atomic_load(&b->can_exit))
        sleep_s(0.002);
    return NULL;
}

static void bunch_start(bunch *b, int n, void (*fn)(void *), void *ctx,
                        bool wait_before_exit)
{
    CHECK(n <= 32);
    b->n = n;
    b->fn = fn;
    b->ctx = ctx;
    atomic_init(&b->started, 0);
    atomic_init(&b->finished, 0);
    atomic_init(&b->can_exit, !wait_before_exit);
    for (int i = 0; i < n; i++)
        b->threads[i] = spawn(bunch_main, b);
}

static void bunch_wait_started(bunch *b)
{
    wait_for_count(&b->started, b->n);
}
static void bunch_wait_finished(bunch *b)
{
    wait_for_count(&b->finished, b->n);
}

static void bunch_join(bunch *b)
{
    atomic_store(&b->can_exit, true);
    for (int i = 0; i < b->n; i++)
        join(b->threads[i]);
}

/* A list of ints that threads append to. */
typedef struct record {
    pthread_mutex_t mu;
    int v[256];
    int n;
} record;

static void rec_init(record *r)
{
    pthread_mutex_init(&r->mu, NULL);
    r->n = 0;
}

static void rec_add(record *r, int x)
{
    pthread_mutex_lock(&r->mu);
    CHECK(r->n < 256);
    r->v[r->n++] = x;
    pthread_mutex_unlock(&r->mu);
}

static int rec_count(record *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* How many entries equal x. */
static int rec_count_of(record *r, int x)
{
    pthread_mutex_lock(&r->mu);
    int k = 0;
    for (int i = 0; i < r->n; i++)
        k += r->v[i] == x;
    pthread_mutex_unlock(&r->mu);
    return k;
}

static void rec_wait(record *r, int want)
{
    double end = now_s() + 10.0 * test_scale();
    while (rec_count(r) < want) {
        CHECK(now_s() < end);
        sleep_s(0.002);
    }
}

/* Checks that a 0.1 s timeout took about 0.1 s. */
#define CHECK_TIMEOUT_DT(dt) CHECK((dt) >= 0.09 && (dt) < 2.0 * test_scale())

/* ---- the lock ----------------------------------------------------------- */

static void lock_constructor(void)
{
    cf_lock *l = cf_lock_new();
    CHECK(l);
    CHECK(!cf_lock_locked(l));
    cf_lock_free(l);
    /* acquire_destroy: freeing a held lock is fine */
    l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    cf_lock_free(l);
    cf_lock_free(NULL);
}

static void lock_acquire_release(void)
{
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    CHECK(cf_lock_locked(l));
    CHECK_EQ(cf_lock_release(l), 0);
    CHECK(!cf_lock_locked(l));
    cf_lock_free(l);
}

static void lock_try_acquire(void)
{
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, 0), 0);
    CHECK_EQ(cf_lock_acquire(l, 0), CF_ETIMEDOUT);
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static atomic_int poll_result;

static void *poll_lock(void *p)
{
    atomic_store(&poll_result, cf_lock_acquire(p, 0));
    return NULL;
}

static void lock_try_acquire_contended(void)
{
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    atomic_store(&poll_result, 1);
    join(spawn(poll_lock, l));
    CHECK_EQ(atomic_load(&poll_result), CF_ETIMEDOUT);
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static void acquire_release_lock(void *p)
{
    cf_lock *l = p;
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_lock_release(l), 0);
}

static void lock_acquire_contended(void)
{
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    bunch b;
    bunch_start(&b, 5, acquire_release_lock, l, false);
    bunch_wait_started(&b);
    pause_briefly();
    CHECK_EQ(atomic_load(&b.finished), 0);
    CHECK_EQ(cf_lock_release(l), 0);
    bunch_wait_finished(&b);
    CHECK_EQ(atomic_load(&b.finished), 5);
    bunch_join(&b);
    CHECK(!cf_lock_locked(l));
    cf_lock_free(l);
}

static void lock_with(void)
{
    /* Python's `with lock:` is acquire ... release; after it, another
     * thread can take the lock. */
    cf_lock *l = cf_lock_new();
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
        CHECK_EQ(cf_lock_release(l), 0);
        bunch b;
        bunch_start(&b, 1, acquire_release_lock, l, false);
        bunch_wait_finished(&b);
        bunch_join(&b);
    }
    cf_lock_free(l);
}

static void lock_many_threads(void)
{
    /* lock_tests' test_thread_leak: 15 threads use the lock in turn. */
    cf_lock *l = cf_lock_new();
    bunch b;
    bunch_start(&b, 15, acquire_release_lock, l, false);
    bunch_wait_finished(&b);
    bunch_join(&b);
    CHECK(!cf_lock_locked(l));
    cf_lock_free(l);
}

typedef struct timed_try {
    cf_lock *lock;
    int rc;
    double dt;
} timed_try;

static void *lock_try_for_a_while(void *p)
{
    timed_try *t = p;
    double t0 = now_s();
    t->rc = cf_lock_acquire(t->lock, 0.1);
    t->dt = now_s() - t0;
    return NULL;
}

static void lock_timeout(void)
{
    cf_lock *l = cf_lock_new();
    /* A huge timeout is fine (it is "forever"); a free lock is immediate. */
    CHECK_EQ(cf_lock_acquire(l, 1e100), 0);
    CHECK_EQ(cf_lock_release(l), 0);
    CHECK_TIME(CHECK_EQ(cf_lock_acquire(l, 5.0), 0), 0, 2.0);
    timed_try t = { l, 1, 0 };
    join(spawn(lock_try_for_a_while, &t));
    CHECK_EQ(t.rc, CF_ETIMEDOUT);
    CHECK_TIMEOUT_DT(t.dt);
    CHECK(cf_lock_locked(l));
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static atomic_int phase;

static void *lock_twice(void *p)
{
    cf_lock *l = p;
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    atomic_fetch_add(&phase, 1);
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    atomic_fetch_add(&phase, 1);
    return NULL;
}

static void lock_reacquire(void)
{
    /* Not re-entrant: the second acquire waits for a release. */
    cf_lock *l = cf_lock_new();
    atomic_store(&phase, 0);
    cf_thread *t = spawn(lock_twice, l);
    wait_for_count(&phase, 1);
    pause_briefly();
    CHECK_EQ(atomic_load(&phase), 1);
    CHECK_EQ(cf_lock_release(l), 0);
    wait_for_count(&phase, 2);
    join(t);
    CHECK(cf_lock_locked(l));
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static void *release_lock(void *p)
{
    CHECK_EQ(cf_lock_release(p), 0);
    return NULL;
}

static void lock_different_thread(void)
{
    /* Any thread may release a cf_lock. */
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    join(spawn(release_lock, l));
    CHECK(!cf_lock_locked(l));
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static void lock_state_after_timeout(void)
{
    /* CPython issue 11618: the lock is sane after a non-zero timeout. */
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_lock_acquire(l, 0.01), CF_ETIMEDOUT);
    CHECK_EQ(cf_lock_release(l), 0);
    CHECK(!cf_lock_locked(l));
    CHECK_EQ(cf_lock_acquire(l, 0), 0);
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static void lock_release_unlocked(void)
{
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_release(l), CF_EPERM);
    CHECK(!cf_lock_locked(l));
    CHECK_EQ(cf_lock_acquire(l, 0), 0);
    CHECK_EQ(cf_lock_release(l), 0);
    CHECK_EQ(cf_lock_release(l), CF_EPERM);
    CHECK(!cf_lock_locked(l));
    CHECK_EQ(cf_lock_acquire(l, 0), 0);
    CHECK_EQ(cf_lock_release(l), 0);
    cf_lock_free(l);
}

static void lock_bad_input(void)
{
    CHECK_EQ(cf_lock_acquire(NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_lock_release(NULL), CF_EINVAL);
    CHECK(!cf_lock_locked(NULL));
    cf_lock *l = cf_lock_new();
    CHECK_EQ(cf_lock_acquire(l, NAN), CF_EINVAL);
    CHECK(!cf_lock_locked(l)); /* nothing changed */
    CHECK_EQ(cf_lock_acquire(l, 0), 0);
    CHECK_EQ(cf_lock_acquire(l, NAN), CF_EINVAL);
    CHECK(cf_lock_locked(l));
    CHECK_EQ(cf_lock_release(l), 0);
    CHECK(!cf_lock_locked(l));
    cf_lock_free(l);
}

typedef struct counted {
    cf_lock *lock;
    cf_rlock *rlock;
    long counter;
    int iterations;
} counted;

static void *lock_increment(void *p)
{
    counted *c = p;
    for (int i = 0; i < c->iterations; i++) {
        /* Half the time poll first, to exercise the fast path's failure. */
        if (i % 2 == 0 && cf_lock_acquire(c->lock, 0) == 0) {
            c->counter++;
        } else {
            CHECK_EQ(cf_lock_acquire(c->lock, i % 3 ? CF_FOREVER : 10.0), 0);
            c->counter++;
        }
        CHECK_EQ(cf_lock_release(c->lock), 0);
    }
    return NULL;
}

static void lock_mutual_exclusion(void)
{
    counted c = { cf_lock_new(), NULL, 0, 20000 };
    cf_thread *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = spawn(lock_increment, &c);
    for (int i = 0; i < 4; i++)
        join(t[i]);
    CHECK_EQ(c.counter, 4 * 20000);
    CHECK(!cf_lock_locked(c.lock));
    cf_lock_free(c.lock);
}

/* ---- ENOMEM through the constructors ------------------------------------ */

static int new_lock_op(void *ctx)
{
    cf_lock **l = ctx;
    *l = cf_lock_new();
    if (!*l) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    CHECK_EQ(cf_lock_acquire(*l, 0), 0);
    CHECK_EQ(cf_lock_release(*l), 0);
    return 0;
}
static void new_lock_undo(void *ctx)
{
    cf_lock_free(*(cf_lock **)ctx);
}

static int new_rlock_op(void *ctx)
{
    cf_rlock **l = ctx;
    *l = cf_rlock_new();
    if (!*l) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    CHECK_EQ(cf_rlock_acquire(*l, 0), 0);
    CHECK_EQ(cf_rlock_release(*l), 0);
    return 0;
}
static void new_rlock_undo(void *ctx)
{
    cf_rlock_free(*(cf_rlock **)ctx);
}

static int new_condition_op(void *ctx)
{
    cf_condition **c = ctx;
    *c = cf_condition_new();
    if (!*c) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    CHECK_EQ(cf_condition_acquire(*c, 0), 0);
    CHECK_EQ(cf_condition_wait(*c, 0), CF_ETIMEDOUT);
    CHECK_EQ(cf_condition_release(*c), 0);
    return 0;
}
static void new_condition_undo(void *ctx)
{
    cf_condition_free(*(cf_condition **)ctx);
}

static int new_semaphore_op(void *ctx)
{
    cf_semaphore **s = ctx;
    *s = cf_semaphore_new(1, true);
    if (!*s) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    CHECK_EQ(cf_semaphore_acquire(*s, 0), 0);
    CHECK_EQ(cf_semaphore_release(*s, 1), 0);
    return 0;
}
static void new_semaphore_undo(void *ctx)
{
    cf_semaphore_free(*(cf_semaphore **)ctx);
}

static int new_event_op(void *ctx)
{
    cf_event **e = ctx;
    *e = cf_event_new();
    if (!*e) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    cf_event_set(*e);
    CHECK_EQ(cf_event_wait(*e, 0), 0);
    return 0;
}
static void new_event_undo(void *ctx)
{
    cf_event_free(*(cf_event **)ctx);
}

static void constructors_enomem(void)
{
    oom_install();
    long live = oom_live_count();
    void *obj = NULL;
    CHECK(oom_sweep(new_lock_op, new_lock_undo, &obj) >= 1);
    CHECK(oom_sweep(new_rlock_op, new_rlock_undo, &obj) >= 1);
    CHECK(oom_sweep(new_condition_op, new_condition_undo, &obj) >= 1);
    CHECK(oom_sweep(new_semaphore_op, new_semaphore_undo, &obj) >= 1);
    CHECK(oom_sweep(new_event_op, new_event_undo, &obj) >= 1);
    CHECK_EQ(oom_live_count(), live);
}

/* ---- the re-entrant lock ----------------------------------------------- */

static void rlock_acquire_release(void)
{
    cf_rlock *l = cf_rlock_new();
    CHECK(l);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_acquire(l, 0), 0); /* try_acquire */
    CHECK_EQ(cf_rlock_release(l), 0);
    cf_rlock_free(l);
    l = cf_rlock_new(); /* acquire_destroy */
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    cf_rlock_free(l);
    cf_rlock_free(NULL);
}

static void rlock_reacquire(void)
{
    cf_rlock *l = cf_rlock_new();
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(l, 0), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_acquire(l, 0.5), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), CF_EPERM);
    cf_rlock_free(l);
}

static void rlock_release_unacquired(void)
{
    cf_rlock *l = cf_rlock_new();
    CHECK_EQ(cf_rlock_release(l), CF_EPERM);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), CF_EPERM);
    cf_rlock_free(l);
}

typedef struct probe {
    cf_rlock *rlock;
    cf_condition *cond;
    atomic_int rc;
} probe;

static void rlock_take(void *p)
{
    CHECK_EQ(cf_rlock_acquire(((probe *)p)->rlock, CF_FOREVER), 0);
}

static void *rlock_release_other(void *p)
{
    atomic_store(&((probe *)p)->rc, cf_rlock_release(((probe *)p)->rlock));
    return NULL;
}

static void *rlock_poll_other(void *p)
{
    atomic_store(&((probe *)p)->rc, cf_rlock_acquire(((probe *)p)->rlock, 0));
    return NULL;
}

static void rlock_different_thread(void)
{
    /* Owned by a thread that keeps it: others cannot release it. */
    probe p = { cf_rlock_new(), NULL, 1 };
    bunch b;
    bunch_start(&b, 1, rlock_take, &p, true);
    bunch_wait_finished(&b);
    CHECK_EQ(cf_rlock_release(p.rlock), CF_EPERM);
    CHECK_EQ(cf_rlock_acquire(p.rlock, 0), CF_ETIMEDOUT);
    bunch_join(&b);
    /* Its owner is gone without releasing: the lock stays taken, as in
     * Python. Free it held. */
    cf_rlock_free(p.rlock);
}

static void rlock_is_owned(void)
{
    /* lock_tests' test__is_owned, probing ownership from another thread:
     * a non-owner's release is refused and its poll fails. */
    probe p = { cf_rlock_new(), NULL, 1 };
    join(spawn(rlock_release_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_EPERM);
    CHECK_EQ(cf_rlock_acquire(p.rlock, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(p.rlock, CF_FOREVER), 0);
    join(spawn(rlock_release_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_EPERM);
    join(spawn(rlock_poll_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_ETIMEDOUT);
    CHECK_EQ(cf_rlock_release(p.rlock), 0);
    join(spawn(rlock_poll_other, &p)); /* still owned by us at depth 1 */
    CHECK_EQ(atomic_load(&p.rc), CF_ETIMEDOUT);
    CHECK_EQ(cf_rlock_release(p.rlock), 0);
    join(spawn(rlock_poll_other, &p)); /* free: the other thread takes it */
    CHECK_EQ(atomic_load(&p.rc), 0);
    CHECK_EQ(cf_rlock_release(p.rlock), CF_EPERM); /* now it is theirs */
    cf_rlock_free(p.rlock);
}

static void rlock_acquire_release_fn(void *p)
{
    cf_rlock *l = p;
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
}

static void rlock_acquire_contended(void)
{
    cf_rlock *l = cf_rlock_new();
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(l, CF_FOREVER), 0);
    bunch b;
    bunch_start(&b, 5, rlock_acquire_release_fn, l, false);
    bunch_wait_started(&b);
    pause_briefly();
    CHECK_EQ(atomic_load(&b.finished), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    pause_briefly();
    CHECK_EQ(atomic_load(&b.finished), 0); /* still held at depth 1 */
    CHECK_EQ(cf_rlock_release(l), 0);
    bunch_wait_finished(&b);
    bunch_join(&b);
    CHECK_EQ(cf_rlock_acquire(l, 0), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    cf_rlock_free(l);
}

typedef struct rlock_timed {
    cf_rlock *l;
    int rc;
    double dt;
} rlock_timed;

static void *rlock_try_for_a_while(void *p)
{
    rlock_timed *t = p;
    double t0 = now_s();
    t->rc = cf_rlock_acquire(t->l, 0.1);
    t->dt = now_s() - t0;
    return NULL;
}

static void rlock_timeout(void)
{
    cf_rlock *l = cf_rlock_new();
    CHECK_EQ(cf_rlock_acquire(l, 1e100), 0);
    CHECK_TIME(CHECK_EQ(cf_rlock_acquire(l, 5.0), 0), 0, 2.0);
    rlock_timed t = { l, 1, 0 };
    join(spawn(rlock_try_for_a_while, &t));
    CHECK_EQ(t.rc, CF_ETIMEDOUT);
    CHECK_TIMEOUT_DT(t.dt);
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), 0);
    t.rc = 1;
    join(spawn(rlock_try_for_a_while, &t)); /* free now: it gets it */
    CHECK_EQ(t.rc, 0);
    cf_rlock_free(l);
}

static void rlock_bad_input(void)
{
    CHECK_EQ(cf_rlock_acquire(NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_rlock_release(NULL), CF_EINVAL);
    cf_rlock *l = cf_rlock_new();
    CHECK_EQ(cf_rlock_acquire(l, NAN), CF_EINVAL);
    CHECK_EQ(cf_rlock_release(l), CF_EPERM); /* nothing was taken */
    CHECK_EQ(cf_rlock_acquire(l, 0), 0);
    CHECK_EQ(cf_rlock_acquire(l, NAN), CF_EINVAL); /* depth stays 1 */
    CHECK_EQ(cf_rlock_release(l), 0);
    CHECK_EQ(cf_rlock_release(l), CF_EPERM);
    cf_rlock_free(l);
}

static void *rlock_increment(void *p)
{
    counted *c = p;
    for (int i = 0; i < c->iterations; i++) {
        CHECK_EQ(cf_rlock_acquire(c->rlock, CF_FOREVER), 0);
        CHECK_EQ(cf_rlock_acquire(c->rlock, i % 2 ? 0 : 10.0), 0);
        c->counter++;
        CHECK_EQ(cf_rlock_release(c->rlock), 0);
        c->counter++;
        CHECK_EQ(cf_rlock_release(c->rlock), 0);
    }
    return NULL;
}

static void rlock_mutual_exclusion(void)
{
    counted c = { NULL, cf_rlock_new(), 0, 10000 };
    cf_thread *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = spawn(rlock_increment, &c);
    for (int i = 0; i < 4; i++)
        join(t[i]);
    CHECK_EQ(c.counter, 4 * 2 * 10000);
    cf_rlock_free(c.rlock);
}

/* ---- the condition, as a re-entrant lock (ConditionAsRLockTests) ------- */

static void cond_acquire(void)
{
    cf_condition *c = cf_condition_new();
    CHECK(c);
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_acquire(c, 0), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_release(c), CF_EPERM);
    cf_condition_free(c);
    c = cf_condition_new(); /* acquire_destroy */
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    cf_condition_free(c);
    cf_condition_free(NULL);
}

static void cond_take(void *p)
{
    CHECK_EQ(cf_condition_acquire(((probe *)p)->cond, CF_FOREVER), 0);
}

static void *cond_release_other(void *p)
{
    atomic_store(&((probe *)p)->rc, cf_condition_release(((probe *)p)->cond));
    return NULL;
}

static void *cond_poll_other(void *p)
{
    probe *pr = p;
    int rc = cf_condition_acquire(pr->cond, 0);
    if (rc == 0)
        CHECK_EQ(cf_condition_release(pr->cond), 0);
    atomic_store(&pr->rc, rc);
    return NULL;
}

static void *cond_notify_other(void *p)
{
    atomic_store(&((probe *)p)->rc, cf_condition_notify(((probe *)p)->cond, 1));
    return NULL;
}

static void cond_as_rlock_ownership(void)
{
    probe p = { NULL, cf_condition_new(), 1 };
    /* release_unacquired */
    CHECK_EQ(cf_condition_release(p.cond), CF_EPERM);
    /* is_owned, probed from another thread */
    CHECK_EQ(cf_condition_acquire(p.cond, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_acquire(p.cond, CF_FOREVER), 0);
    join(spawn(cond_release_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_EPERM);
    join(spawn(cond_poll_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_ETIMEDOUT);
    join(spawn(cond_notify_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_EPERM);
    CHECK_EQ(cf_condition_release(p.cond), 0);
    join(spawn(cond_poll_other, &p));
    CHECK_EQ(atomic_load(&p.rc), CF_ETIMEDOUT);
    CHECK_EQ(cf_condition_release(p.cond), 0);
    join(spawn(cond_poll_other, &p));
    CHECK_EQ(atomic_load(&p.rc), 0);
    cf_condition_free(p.cond);
}

static void cond_as_rlock_different_thread(void)
{
    probe p = { NULL, cf_condition_new(), 1 };
    bunch b;
    bunch_start(&b, 1, cond_take, &p, true);
    bunch_wait_finished(&b);
    CHECK_EQ(cf_condition_release(p.cond), CF_EPERM);
    CHECK_EQ(cf_condition_notify_all(p.cond), CF_EPERM);
    CHECK_EQ(cf_condition_acquire(p.cond, 0.05), CF_ETIMEDOUT);
    bunch_join(&b);
    cf_condition_free(p.cond);
}

static void cond_acquire_release_fn(void *p)
{
    cf_condition *c = p;
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_release(c), 0);
}

static void cond_as_rlock_contended(void)
{
    cf_condition *c = cf_condition_new();
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    bunch b;
    bunch_start(&b, 5, cond_acquire_release_fn, c, false);
    bunch_wait_started(&b);
    pause_briefly();
    CHECK_EQ(atomic_load(&b.finished), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    bunch_wait_finished(&b);
    bunch_join(&b);
    cf_condition_free(c);
}

typedef struct cond_timed {
    cf_condition *c;
    int rc;
    double dt;
} cond_timed;

static void *cond_try_for_a_while(void *p)
{
    cond_timed *t = p;
    double t0 = now_s();
    t->rc = cf_condition_acquire(t->c, 0.1);
    t->dt = now_s() - t0;
    if (t->rc == 0)
        CHECK_EQ(cf_condition_release(t->c), 0);
    return NULL;
}

static void cond_as_rlock_timeout(void)
{
    cf_condition *c = cf_condition_new();
    CHECK_EQ(cf_condition_acquire(c, 1e100), 0);
    cond_timed t = { c, 1, 0 };
    join(spawn(cond_try_for_a_while, &t));
    CHECK_EQ(t.rc, CF_ETIMEDOUT);
    CHECK_TIMEOUT_DT(t.dt);
    CHECK_EQ(cf_condition_release(c), 0);
    join(spawn(cond_try_for_a_while, &t));
    CHECK_EQ(t.rc, 0);
    cf_condition_free(c);
}

/* ---- the condition variable (ConditionTests) ---------------------------- */

static void cond_unacquired(void)
{
    cf_condition *c = cf_condition_new();
    CHECK_EQ(cf_condition_wait(c, CF_FOREVER), CF_EPERM);
    CHECK_EQ(cf_condition_wait(c, 0), CF_EPERM);
    CHECK_EQ(cf_condition_notify(c, 1), CF_EPERM);
    CHECK_EQ(cf_condition_notify(c, 0), CF_EPERM);
    CHECK_EQ(cf_condition_notify_all(c), CF_EPERM);
    /* RLockTests' test_release_save_unacquired: once every acquire is
     * released, a wait is refused again. */
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_wait(c, 0), CF_EPERM);
    CHECK_EQ(cf_condition_notify(c, 1), CF_EPERM);
    cf_condition_free(c);
}

typedef struct notify_ctx {
    cf_condition *c;
    atomic_int entered; /* waits begun (counted with the lock held) */
    int phase;          /* guarded by the condition's lock */
    record r1, r2;      /* phase seen after the first, second wait */
} notify_ctx;

/* One wait, counted while the lock is held: the main thread knows all
 * counted waiters are queued once it gets the lock itself. */
static int counted_wait(notify_ctx *n)
{
    CHECK_EQ(cf_condition_acquire(n->c, CF_FOREVER), 0);
    atomic_fetch_add(&n->entered, 1);
    CHECK_EQ(cf_condition_wait(n->c, CF_FOREVER), 0);
    int ph = n->phase;
    CHECK_EQ(cf_condition_release(n->c), 0);
    return ph;
}

static void notify_waiter(void *p)
{
    notify_ctx *n = p;
    rec_add(&n->r1, counted_wait(n));
    rec_add(&n->r2, counted_wait(n));
}

/* Takes the lock once `entered` waits have begun: they are all queued. */
static void lock_when_waiting(notify_ctx *n, int entered)
{
    wait_for_count(&n->entered, entered);
    CHECK_EQ(cf_condition_acquire(n->c, CF_FOREVER), 0);
}

static void check_notify(cf_condition *c)
{
    notify_ctx n = { .c = c, .phase = 0 };
    atomic_init(&n.entered, 0);
    rec_init(&n.r1);
    rec_init(&n.r2);
    bunch b;
    bunch_start(&b, 5, notify_waiter, &n, false);
    lock_when_waiting(&n, 5);
    CHECK_EQ(rec_count(&n.r1), 0);
    /* Notify 3 of the 5. */
    CHECK_EQ(cf_condition_notify(c, 3), 0);
    pause_briefly();
    n.phase = 1;
    CHECK_EQ(cf_condition_release(c), 0);
    rec_wait(&n.r1, 3);
    pause_briefly();
    CHECK_EQ(rec_count(&n.r1), 3); /* exactly 3 woke */
    CHECK_EQ(rec_count_of(&n.r1, 1), 3);
    CHECK_EQ(rec_count(&n.r2), 0);
    /* Notify 5: the 2 still in their first wait, the 3 in their second. */
    lock_when_waiting(&n, 8);
    CHECK_EQ(cf_condition_notify(c, 5), 0);
    pause_briefly();
    n.phase = 2;
    CHECK_EQ(cf_condition_release(c), 0);
    rec_wait(&n.r1, 5);
    rec_wait(&n.r2, 3);
    CHECK_EQ(rec_count_of(&n.r1, 1), 3);
    CHECK_EQ(rec_count_of(&n.r1, 2), 2);
    CHECK_EQ(rec_count_of(&n.r2, 2), 3);
    /* Notify all: the last 2, in their second wait. */
    lock_when_waiting(&n, 10);
    CHECK_EQ(cf_condition_notify_all(c), 0);
    pause_briefly();
    n.phase = 3;
    CHECK_EQ(cf_condition_release(c), 0);
    rec_wait(&n.r2, 5);
    CHECK_EQ(rec_count_of(&n.r1, 1), 3);
    CHECK_EQ(rec_count_of(&n.r1, 2), 2);
    CHECK_EQ(rec_count_of(&n.r2, 2), 3);
    CHECK_EQ(rec_count_of(&n.r2, 3), 2);
    bunch_wait_finished(&b);
    bunch_join(&b);
}

static void cond_notify(void)
{
    cf_condition *c = cf_condition_new();
    check_notify(c);
    check_notify(c); /* again: the internal state is still fine */
    cf_condition_free(c);
}

static void cond_notify_counts(void)
{
    /* notify(0) wakes nobody; notify(n) with fewer waiters wakes them all;
     * a notify with nobody waiting is remembered by nobody. */
    cf_condition *c = cf_condition_new();
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_EQ(cf_condition_notify(c, 10), 0);
    CHECK_EQ(cf_condition_notify_all(c), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    notify_ctx n = { .c = c, .phase = 0 };
    atomic_init(&n.entered, 0);
    rec_init(&n.r1);
    rec_init(&n.r2);
    bunch b;
    bunch_start(&b, 2, notify_waiter, &n, false);
    lock_when_waiting(&n, 2);
    CHECK_EQ(cf_condition_notify(c, 0), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    sleep_s(0.05);
    CHECK_EQ(rec_count(&n.r1), 0);
    lock_when_waiting(&n, 2);
    n.phase = 1;
    CHECK_EQ(cf_condition_notify(c, 100), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    rec_wait(&n.r1, 2);
    lock_when_waiting(&n, 4);
    n.phase = 2;
    CHECK_EQ(cf_condition_notify_all(c), 0);
    CHECK_EQ(cf_condition_release(c), 0);
    rec_wait(&n.r2, 2);
    CHECK_EQ(rec_count_of(&n.r1, 1), 2);
    CHECK_EQ(rec_count_of(&n.r2, 2), 2);
    bunch_join(&b);
    cf_condition_free(c);
}

typedef struct wait_timed {
    cf_condition *c;
    record rcs;
    record dts_ms;
} wait_timed;

static void cond_wait_briefly(void *p)
{
    wait_timed *w = p;
    CHECK_EQ(cf_condition_acquire(w->c, CF_FOREVER), 0);
    double t0 = now_s();
    int rc = cf_condition_wait(w->c, 0.1);
    double dt = now_s() - t0;
    CHECK_EQ(cf_condition_release(w->c), 0);
    rec_add(&w->rcs, rc);
    rec_add(&w->dts_ms, (int)(dt * 1000));
}

static void cond_timeout(void)
{
    wait_timed w = { .c = cf_condition_new() };
    rec_init(&w.rcs);
    rec_init(&w.dts_ms);
    bunch b;
    bunch_start(&b, 5, cond_wait_briefly, &w, false);
    bunch_wait_finished(&b);
    bunch_join(&b);
    CHECK_EQ(rec_count(&w.rcs), 5);
    CHECK_EQ(rec_count_of(&w.rcs, CF_ETIMEDOUT), 5);
    for (int i = 0; i < 5; i++)
        CHECK_TIMEOUT_DT(w.dts_ms.v[i] / 1000.0 + 0.0005);
    cf_condition_free(w.c);
}

typedef struct waitfor_ctx {
    cf_condition *c;
    int state; /* guarded by the condition's lock */
    int target;
    atomic_int pred_calls;
    int rc;
    double dt;
    atomic_bool started;
} waitfor_ctx;

static bool state_reached(void *p)
{
    waitfor_ctx *w = p;
    atomic_fetch_add(&w->pred_calls, 1);
    return w->state == w->target;
}

static void *waitfor_thread(void *p)
{
    waitfor_ctx *w = p;
    CHECK_EQ(cf_condition_acquire(w->c, CF_FOREVER), 0);
    atomic_store(&w->started, true);
    double t0 = now_s();
    w->rc = cf_condition_wait_for(w->c, state_reached, w,
                                  w->target == 4 ? CF_FOREVER : 0.1);
    w->dt = now_s() - t0;
    if (w->rc == 0)
        CHECK_EQ(w->state, w->target);
    CHECK_EQ(cf_condition_release(w->c), 0);
    return NULL;
}

static void run_waitfor(waitfor_ctx *w, int increments)
{
    cf_thread *t = spawn(waitfor_thread, w);
    while (!atomic_load(&w->started))
        sleep_s(0.002);
    for (int i = 0; i < increments; i++) {
        sleep_s(0.01);
        CHECK_EQ(cf_condition_acquire(w->c, CF_FOREVER), 0);
        w->state++;
        CHECK_EQ(cf_condition_notify(w->c, 1), 0);
        CHECK_EQ(cf_condition_release(w->c), 0);
    }
    join(t);
}

static void cond_wait_for(void)
{
    waitfor_ctx w = { .c = cf_condition_new(), .state = 0, .target = 4 };
    atomic_init(&w.pred_calls, 0);
    atomic_init(&w.started, false);
    run_waitfor(&w, 4);
    CHECK_EQ(w.rc, 0);
    CHECK(atomic_load(&w.pred_calls) >= 2);
    cf_condition_free(w.c);
}

static void cond_wait_for_timeout(void)
{
    /* Only 3 increments: the target (here 5) is never reached. */
    waitfor_ctx w = { .c = cf_condition_new(), .state = 0, .target = 5 };
    atomic_init(&w.pred_calls, 0);
    atomic_init(&w.started, false);
    run_waitfor(&w, 3);
    CHECK_EQ(w.rc, CF_ETIMEDOUT);
    CHECK_TIMEOUT_DT(w.dt);
    cf_condition_free(w.c);
}

static void cond_wait_for_true_first(void)
{
    /* The predicate is checked before waiting: no wait, even with a poll. */
    cf_condition *c = cf_condition_new();
    waitfor_ctx w = { .c = c, .state = 3, .target = 3 };
    atomic_init(&w.pred_calls, 0);
    CHECK_EQ(cf_condition_acquire(c, CF_FOREVER), 0);
    CHECK_TIME(CHECK_EQ(cf_condition_wait_for(c, state_reached, &w, 5.0), 0), 0,
               1.0);
    CHECK_EQ(atomic_load(&w.pred_calls), 1);
    CHECK_EQ(cf_condition_wait_for(c, state_reached, &w, 0), 0);
    /* False, with a poll: CF_ETIMEDOUT at once. */
    w.target = 4;
    CHECK_TIME(
        CHECK_EQ(cf_condition_wait_for(c, state_reached, &w, 0), CF_ETIMEDOUT),
        0, 1.0);
    CHECK_EQ(cf_condition_release(c), 0);
    /* Not holding the lock. */
    CHECK_EQ(cf_condition_wait_for(c, state_reached, &w, 0), CF_EPERM);
    cf_condition_free(c);
}

typedef struct depth_ctx {
    cf_condition *c;
    atomic_int rc;
} depth_ctx;

static void *take_and_notify(void *p)
{
    depth_ctx *d = p;
    /* The waiter holds the lock 3 deep, yet it is free while it waits. */
    int rc;
    while ((rc = cf_condition_acquire(d->c, 0)) == CF_ETIMEDOUT)
        sleep_s(0.002);
    CHECK_EQ(rc, 0);
    CHECK_EQ(cf_condition_notify(d->c, 1), 0);
    CHECK_EQ(cf_condition_release(d->c), 0);
    atomic_store(&d->rc, rc);
    return NULL;
}

static void cond_wait_restores_depth(void)
{
    depth_ctx d = { cf_condition_new(), 1 };
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_condition_acquire(d.c, CF_FOREVER), 0);
    cf_thread *t = spawn(take_and_notify, &d);
    CHECK_EQ(cf_condition_wait(d.c, 10.0), 0);
    join(t);
    CHECK_EQ(atomic_load(&d.rc), 0);
    /* After a timed-out wait too. */
    CHECK_EQ(cf_condition_wait(d.c, 0.01), CF_ETIMEDOUT);
    CHECK_EQ(cf_condition_wait(d.c, 0), CF_ETIMEDOUT);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_condition_release(d.c), 0);
    CHECK_EQ(cf_condition_release(d.c), CF_EPERM);
    cf_condition_free(d.c);
}

static void cond_bad_input(void)
{
    CHECK_EQ(cf_condition_acquire(NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_condition_release(NULL), CF_EINVAL);
    CHECK_EQ(cf_condition_wait(NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_condition_wait_for(NULL, state_reached, NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_condition_notify(NULL, 1), CF_EINVAL);
    CHECK_EQ(cf_condition_notify_all(NULL), CF_EINVAL);
    cf_condition *c = cf_condition_new();
    CHECK_EQ(cf_condition_acquire(c, NAN), CF_EINVAL);
    CHECK_EQ(cf_condition_release(c), CF_EPERM); /* nothing taken */
    CHECK_EQ(cf_condition_acquire(c, 0), 0);
    CHECK_EQ(cf_condition_acquire(c, NAN), CF_EINVAL);
    CHECK_EQ(cf_condition_wait(c, NAN), CF_EINVAL);
    CHECK_EQ(cf_condition_wait_for(c, NULL, NULL, 0), CF_EINVAL);
    waitfor_ctx w = { .c = c, .state = 0, .target = 0 };
    atomic_init(&w.pred_calls, 0);
    CHECK_EQ(cf_condition_wait_for(c, state_reached, &w, NAN), CF_EINVAL);
    CHECK_EQ(atomic_load(&w.pred_calls), 0);
    /* Still held exactly once. */
    CHECK_EQ(cf_condition_release(c), 0);
    CHECK_EQ(cf_condition_release(c), CF_EPERM);
    cf_condition_free(c);
}

typedef struct pc_ctx {
    cf_condition *c;
    int items;     /* guarded by the condition's lock */
    long consumed; /* guarded by the condition's lock */
    int per_producer;
} pc_ctx;

static bool has_items(void *p)
{
    return ((pc_ctx *)p)->items > 0;
}

static void *producer(void *p)
{
    pc_ctx *pc = p;
    for (int i = 0; i < pc->per_producer; i++) {
        CHECK_EQ(cf_condition_acquire(pc->c, CF_FOREVER), 0);
        pc->items++;
        CHECK_EQ(cf_condition_notify(pc->c, 1), 0);
        CHECK_EQ(cf_condition_release(pc->c), 0);
    }
    return NULL;
}

static void *consumer(void *p)
{
    pc_ctx *pc = p;
    for (int i = 0; i < pc->per_producer; i++) {
        CHECK_EQ(cf_condition_acquire(pc->c, CF_FOREVER), 0);
        CHECK_EQ(cf_condition_wait_for(pc->c, has_items, pc, 30.0), 0);
        pc->items--;
        pc->consumed++;
        CHECK_EQ(cf_condition_release(pc->c), 0);
    }
    return NULL;
}

static void cond_producers_consumers(void)
{
    pc_ctx pc = { cf_condition_new(), 0, 0, 5000 };
    cf_thread *t[6];
    for (int i = 0; i < 3; i++) {
        t[2 * i] = spawn(consumer, &pc);
        t[2 * i + 1] = spawn(producer, &pc);
    }
    for (int i = 0; i < 6; i++)
        join(t[i]);
    CHECK_EQ(pc.items, 0);
    CHECK_EQ(pc.consumed, 3 * 5000);
    cf_condition_free(pc.c);
}

/* ---- semaphores (SemaphoreTests, BoundedSemaphoreTests) ------------------ */

static void sem_acquire(void)
{
    for (int bounded = 0; bounded < 2; bounded++) {
        cf_semaphore *s = cf_semaphore_new(1, bounded);
        CHECK(s);
        CHECK_EQ(cf_semaphore_acquire(s, CF_FOREVER), 0);
        CHECK_EQ(cf_semaphore_release(s, 1), 0);
        cf_semaphore_free(s);
        s = cf_semaphore_new(2, bounded);
        CHECK_EQ(cf_semaphore_acquire(s, CF_FOREVER), 0);
        CHECK_EQ(cf_semaphore_acquire(s, CF_FOREVER), 0);
        CHECK_EQ(cf_semaphore_release(s, 1), 0);
        CHECK_EQ(cf_semaphore_release(s, 1), 0);
        cf_semaphore_free(s);
        s = cf_semaphore_new(1, bounded); /* acquire_destroy */
        CHECK_EQ(cf_semaphore_acquire(s, CF_FOREVER), 0);
        cf_semaphore_free(s);
    }
    cf_semaphore_free(NULL);
}

typedef struct sem_ctx {
    cf_semaphore *s;
    atomic_int phase;
    record results; /* phase seen by each acquire */
    atomic_int polls_ok, polls_failed;
} sem_ctx;

static void sem_acquire_twice(void *p)
{
    sem_ctx *c = p;
    CHECK_EQ(cf_semaphore_acquire(c->s, CF_FOREVER), 0);
    rec_add(&c->results, atomic_load(&c->phase));
    CHECK_EQ(cf_semaphore_acquire(c->s, CF_FOREVER), 0);
    rec_add(&c->results, atomic_load(&c->phase));
}

static void release_units(cf_semaphore *s, unsigned n, bool one_by_one)
{
    if (one_by_one) {
        for (unsigned i = 0; i < n; i++)
            CHECK_EQ(cf_semaphore_release(s, 1), 0);
    } else {
        CHECK_EQ(cf_semaphore_release(s, n), 0);
    }
}

static void check_acquire_contended(bool bounded, bool one_by_one)
{
    sem_ctx c = { .s = cf_semaphore_new(7, bounded) };
    atomic_init(&c.phase, 0);
    rec_init(&c.results);
    CHECK_EQ(cf_semaphore_acquire(c.s, CF_FOREVER), 0);
    bunch b;
    bunch_start(&b, 10, sem_acquire_twice, &c, false);
    bunch_wait_started(&b);
    rec_wait(&c.results, 6);
    pause_briefly();
    CHECK_EQ(rec_count(&c.results), 6);
    CHECK_EQ(rec_count_of(&c.results, 0), 6);
    atomic_store(&c.phase, 1);
    release_units(c.s, 7, one_by_one);
    rec_wait(&c.results, 13);
    pause_briefly();
    CHECK_EQ(rec_count(&c.results), 13);
    CHECK_EQ(rec_count_of(&c.results, 1), 7);
    atomic_store(&c.phase, 2);
    release_units(c.s, 6, one_by_one);
    rec_wait(&c.results, 19);
    pause_briefly();
    CHECK_EQ(rec_count(&c.results), 19);
    CHECK_EQ(rec_count_of(&c.results, 2), 6);
    /* The semaphore is still taken. */
    CHECK_EQ(cf_semaphore_acquire(c.s, 0), CF_ETIMEDOUT);
    /* The last release lets the last thread finish. */
    CHECK_EQ(cf_semaphore_release(c.s, 1), 0);
    bunch_wait_finished(&b);
    bunch_join(&b);
    cf_semaphore_free(c.s);
}

static void sem_acquire_contended(void)
{
    check_acquire_contended(false, true);
    check_acquire_contended(true, true);
}

static void sem_multirelease(void)
{
    check_acquire_contended(false, false);
    check_acquire_contended(true, false);
}

static void sem_try_acquire(void)
{
    for (int bounded = 0; bounded < 2; bounded++) {
        cf_semaphore *s = cf_semaphore_new(2, bounded);
        CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
        CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
        CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
        CHECK_EQ(cf_semaphore_release(s, 1), 0);
        CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
        cf_semaphore_free(s);
    }
}

static void sem_poll_twice(void *p)
{
    sem_ctx *c = p;
    for (int i = 0; i < 2; i++) {
        if (cf_semaphore_acquire(c->s, 0) == 0)
            atomic_fetch_add(&c->polls_ok, 1);
        else
            atomic_fetch_add(&c->polls_failed, 1);
    }
}

static void sem_try_acquire_contended(void)
{
    for (int bounded = 0; bounded < 2; bounded++) {
        sem_ctx c = { .s = cf_semaphore_new(4, bounded) };
        atomic_init(&c.polls_ok, 0);
        atomic_init(&c.polls_failed, 0);
        CHECK_EQ(cf_semaphore_acquire(c.s, CF_FOREVER), 0);
        bunch b;
        bunch_start(&b, 5, sem_poll_twice, &c, false);
        bunch_wait_finished(&b);
        bunch_join(&b);
        CHECK_EQ(atomic_load(&c.polls_ok), 3);
        CHECK_EQ(atomic_load(&c.polls_failed), 7);
        cf_semaphore_free(c.s);
    }
}

static void sem_acquire_timeout(void)
{
    for (int bounded = 0; bounded < 2; bounded++) {
        cf_semaphore *s = cf_semaphore_new(2, bounded);
        CHECK_EQ(cf_semaphore_acquire(s, 0.005), 0);
        CHECK_EQ(cf_semaphore_acquire(s, 0.005), 0);
        CHECK_EQ(cf_semaphore_acquire(s, 0.005), CF_ETIMEDOUT);
        CHECK_EQ(cf_semaphore_release(s, 1), 0);
        CHECK_EQ(cf_semaphore_acquire(s, 0.005), 0);
        double t0 = now_s();
        CHECK_EQ(cf_semaphore_acquire(s, 0.1), CF_ETIMEDOUT);
        CHECK_TIMEOUT_DT(now_s() - t0);
        cf_semaphore_free(s);
    }
}

static void sem_acquire_release_fn(void *p)
{
    sem_ctx *c = p;
    CHECK_EQ(cf_semaphore_acquire(c->s, CF_FOREVER), 0);
    CHECK_EQ(cf_semaphore_release(c->s, 1), 0);
}

static void sem_default_value(void)
{
    /* Python's default value 1: a second acquire waits. */
    for (int bounded = 0; bounded < 2; bounded++) {
        sem_ctx c = { .s = cf_semaphore_new(1, bounded) };
        CHECK_EQ(cf_semaphore_acquire(c.s, CF_FOREVER), 0);
        bunch b;
        bunch_start(&b, 1, sem_acquire_release_fn, &c, false);
        bunch_wait_started(&b);
        pause_briefly();
        CHECK_EQ(atomic_load(&b.finished), 0);
        CHECK_EQ(cf_semaphore_release(c.s, 1), 0);
        bunch_wait_finished(&b);
        bunch_join(&b);
        cf_semaphore_free(c.s);
    }
}

static void sem_with(void)
{
    /* `with sem:` nested twice in a semaphore of 2. */
    for (int bounded = 0; bounded < 2; bounded++) {
        cf_semaphore *s = cf_semaphore_new(2, bounded);
        for (int round = 0; round < 2; round++) {
            CHECK_EQ(cf_semaphore_acquire(s, CF_FOREVER), 0);
            CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
            CHECK_EQ(cf_semaphore_release(s, 1), 0);
            CHECK_EQ(cf_semaphore_acquire(s, CF_FOREVER), 0);
            CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
            CHECK_EQ(cf_semaphore_release(s, 1), 0);
            CHECK_EQ(cf_semaphore_release(s, 1), 0);
            CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
            CHECK_EQ(cf_semaphore_release(s, 1), 0);
        }
        cf_semaphore_free(s);
    }
}

static void sem_release_unacquired(void)
{
    /* Unbounded: releasing past the start is allowed and counts. */
    cf_semaphore *s = cf_semaphore_new(1, false);
    CHECK_EQ(cf_semaphore_release(s, 1), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    CHECK_EQ(cf_semaphore_release(s, 1), 0);
    CHECK_EQ(cf_semaphore_release(s, 1000), 0);
    for (int i = 0; i < 1001; i++)
        CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    cf_semaphore_free(s);
    /* An unbounded semaphore may start at 0. */
    s = cf_semaphore_new(0, false);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    CHECK_EQ(cf_semaphore_release(s, 2), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    cf_semaphore_free(s);
}

static void bsem_release_unacquired(void)
{
    /* Bounded: cannot go past the initial value. */
    cf_semaphore *s = cf_semaphore_new(1, true);
    CHECK_EQ(cf_semaphore_release(s, 1), CF_EOVERFLOW);
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_release(s, 1), 0);
    CHECK_EQ(cf_semaphore_release(s, 1), CF_EOVERFLOW);
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    cf_semaphore_free(s);
    /* A bounded semaphore of 0 can never be released. */
    s = cf_semaphore_new(0, true);
    CHECK_EQ(cf_semaphore_release(s, 1), CF_EOVERFLOW);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    cf_semaphore_free(s);
}

static void bsem_multirelease_overflow(void)
{
    /* release(n) that would pass the bound releases nothing at all. */
    cf_semaphore *s = cf_semaphore_new(5, true);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_release(s, 4), CF_EOVERFLOW);
    CHECK_EQ(cf_semaphore_release(s, ~0u), CF_EOVERFLOW);
    /* Still 2 units. */
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    CHECK_EQ(cf_semaphore_release(s, 5), 0);
    CHECK_EQ(cf_semaphore_release(s, 1), CF_EOVERFLOW);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    cf_semaphore_free(s);
}

static void *sem_acquire_thread(void *p)
{
    CHECK_EQ(cf_semaphore_acquire(p, CF_FOREVER), 0);
    return NULL;
}

static void *sem_release_thread(void *p)
{
    CHECK_EQ(cf_semaphore_release(p, 1), 0);
    return NULL;
}

static void bsem_limit(void)
{
    /* test_threading's test_BoundedSemaphore_limit: acquire and release
     * from many threads, then one release too many. */
    for (unsigned limit = 1; limit < 10; limit++) {
        cf_semaphore *s = cf_semaphore_new(limit, true);
        cf_thread *t[10];
        for (unsigned i = 0; i < limit; i++)
            t[i] = spawn(sem_acquire_thread, s);
        for (unsigned i = 0; i < limit; i++)
            join(t[i]);
        for (unsigned i = 0; i < limit; i++)
            t[i] = spawn(sem_release_thread, s);
        for (unsigned i = 0; i < limit; i++)
            join(t[i]);
        CHECK_EQ(cf_semaphore_release(s, 1), CF_EOVERFLOW);
        cf_semaphore_free(s);
    }
}

typedef struct various_ctx {
    cf_semaphore *sema;
    cf_rlock *mutex;
    int running;     /* guarded by mutex */
    int max_running; /* guarded by mutex */
} various_ctx;

static void *various_task(void *p)
{
    various_ctx *v = p;
    CHECK_EQ(cf_semaphore_acquire(v->sema, CF_FOREVER), 0);
    CHECK_EQ(cf_rlock_acquire(v->mutex, CF_FOREVER), 0);
    v->running++;
    if (v->running > v->max_running)
        v->max_running = v->running;
    CHECK(v->running <= 3);
    CHECK_EQ(cf_rlock_release(v->mutex), 0);
    sleep_s(0.002);
    CHECK_EQ(cf_rlock_acquire(v->mutex, CF_FOREVER), 0);
    v->running--;
    CHECK(v->running >= 0);
    CHECK_EQ(cf_rlock_release(v->mutex), 0);
    CHECK_EQ(cf_semaphore_release(v->sema, 1), 0);
    return NULL;
}

static void sem_various_ops(void)
{
    /* test_threading's test_various_ops: no more than 3 of 10 at once. */
    various_ctx v = { cf_semaphore_new(3, true), cf_rlock_new(), 0, 0 };
    cf_thread *t[10];
    for (int i = 0; i < 10; i++)
        t[i] = spawn(various_task, &v);
    for (int i = 0; i < 10; i++)
        join(t[i]);
    CHECK_EQ(v.running, 0);
    CHECK(v.max_running >= 1 && v.max_running <= 3);
    CHECK_EQ(cf_semaphore_release(v.sema, 1), CF_EOVERFLOW);
    cf_semaphore_free(v.sema);
    cf_rlock_free(v.mutex);
}

static void sem_acquire_once(void *p)
{
    sem_ctx *c = p;
    CHECK_EQ(cf_semaphore_acquire(c->s, CF_FOREVER), 0);
    rec_add(&c->results, 1);
}

static void sem_release_wakes_n(void)
{
    sem_ctx c = { .s = cf_semaphore_new(0, false) };
    rec_init(&c.results);
    bunch b;
    bunch_start(&b, 5, sem_acquire_once, &c, false);
    bunch_wait_started(&b);
    pause_briefly();
    CHECK_EQ(rec_count(&c.results), 0);
    CHECK_EQ(cf_semaphore_release(c.s, 3), 0);
    rec_wait(&c.results, 3);
    sleep_s(0.05);
    CHECK_EQ(rec_count(&c.results), 3);
    CHECK_EQ(cf_semaphore_release(c.s, 2), 0);
    rec_wait(&c.results, 5);
    bunch_join(&b);
    CHECK_EQ(cf_semaphore_acquire(c.s, 0), CF_ETIMEDOUT);
    cf_semaphore_free(c.s);
}

static void sem_bad_input(void)
{
    CHECK_EQ(cf_semaphore_acquire(NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_semaphore_release(NULL, 1), CF_EINVAL);
    cf_semaphore *s = cf_semaphore_new(1, true);
    CHECK_EQ(cf_semaphore_acquire(s, NAN), CF_EINVAL);
    /* Nothing taken: still 1 unit. */
    CHECK_EQ(cf_semaphore_acquire(s, 0), 0);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    /* release(0) is refused and changes nothing. */
    CHECK_EQ(cf_semaphore_release(s, 0), CF_EINVAL);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    CHECK_EQ(cf_semaphore_release(s, 1), 0);
    cf_semaphore_free(s);
    s = cf_semaphore_new(0, false);
    CHECK_EQ(cf_semaphore_release(s, 0), CF_EINVAL);
    CHECK_EQ(cf_semaphore_acquire(s, 0), CF_ETIMEDOUT);
    cf_semaphore_free(s);
}

/* ---- events (EventTests) ------------------------------------------------- */

static void event_is_set(void)
{
    cf_event *e = cf_event_new();
    CHECK(e);
    CHECK(!cf_event_is_set(e));
    cf_event_set(e);
    CHECK(cf_event_is_set(e));
    cf_event_set(e);
    CHECK(cf_event_is_set(e));
    cf_event_clear(e);
    CHECK(!cf_event_is_set(e));
    cf_event_clear(e);
    CHECK(!cf_event_is_set(e));
    cf_event_free(e);
    cf_event_free(NULL);
}

typedef struct event_ctx {
    cf_event *e;
    record r1, r2;
} event_ctx;

static void event_wait_twice(void *p)
{
    event_ctx *c = p;
    rec_add(&c->r1, cf_event_wait(c->e, CF_FOREVER));
    rec_add(&c->r2, cf_event_wait(c->e, CF_FOREVER));
}

static void check_event_notify(cf_event *e)
{
    event_ctx c = { .e = e };
    rec_init(&c.r1);
    rec_init(&c.r2);
    bunch b;
    bunch_start(&b, 5, event_wait_twice, &c, false);
    bunch_wait_started(&b);
    pause_briefly();
    CHECK_EQ(rec_count(&c.r1), 0);
    cf_event_set(e);
    bunch_wait_finished(&b);
    bunch_join(&b);
    CHECK_EQ(rec_count_of(&c.r1, 0), 5);
    CHECK_EQ(rec_count_of(&c.r2, 0), 5);
}

static void event_notify(void)
{
    cf_event *e = cf_event_new();
    check_event_notify(e);
    /* Again, after an explicit clear. */
    cf_event_set(e);
    cf_event_clear(e);
    check_event_notify(e);
    cf_event_free(e);
}

typedef struct event_timed {
    cf_event *e;
    record polls, rcs, dts_ms;
} event_timed;

static void event_poll_then_wait(void *p)
{
    event_timed *c = p;
    rec_add(&c->polls, cf_event_wait(c->e, 0));
    double t0 = now_s();
    rec_add(&c->rcs, cf_event_wait(c->e, 0.1));
    rec_add(&c->dts_ms, (int)((now_s() - t0) * 1000));
}

static void event_timeout(void)
{
    event_timed c = { .e = cf_event_new() };
    for (int round = 0; round < 2; round++) {
        rec_init(&c.polls);
        rec_init(&c.rcs);
        rec_init(&c.dts_ms);
        if (round == 1)
            cf_event_set(c.e);
        bunch b;
        bunch_start(&b, 5, event_poll_then_wait, &c, false);
        bunch_wait_finished(&b);
        bunch_join(&b);
        int want = round == 0 ? CF_ETIMEDOUT : 0;
        CHECK_EQ(rec_count_of(&c.polls, want), 5);
        CHECK_EQ(rec_count_of(&c.rcs, want), 5);
        for (int i = 0; i < 5; i++) {
            if (round == 0)
                CHECK_TIMEOUT_DT(c.dts_ms.v[i] / 1000.0 + 0.0005);
            else
                CHECK(c.dts_ms.v[i] < 500 * test_scale());
        }
    }
    cf_event_free(c.e);
}

static void event_wait_long(void *p)
{
    event_ctx *c = p;
    rec_add(&c->r1, cf_event_wait(c->e, 5.0));
}

static void event_set_and_clear(void)
{
    /* CPython issue 13502: a waiter woken by set() succeeds even when the
     * event is cleared before it runs again. */
    event_ctx c = { .e = cf_event_new() };
    rec_init(&c.r1);
    bunch b;
    bunch_start(&b, 5, event_wait_long, &c, false);
    bunch_wait_started(&b);
    sleep_s(0.25);
    cf_event_set(c.e);
    cf_event_clear(c.e);
    bunch_wait_finished(&b);
    bunch_join(&b);
    CHECK_EQ(rec_count_of(&c.r1, 0), 5);
    CHECK(!cf_event_is_set(c.e));
    cf_event_free(c.e);
}

static void event_bad_input(void)
{
    cf_event_set(NULL);
    cf_event_clear(NULL);
    CHECK(!cf_event_is_set(NULL));
    CHECK_EQ(cf_event_wait(NULL, 0), CF_EINVAL);
    cf_event *e = cf_event_new();
    CHECK_EQ(cf_event_wait(e, NAN), CF_EINVAL);
    CHECK(!cf_event_is_set(e));
    cf_event_set(e);
    CHECK_EQ(cf_event_wait(e, NAN), CF_EINVAL);
    CHECK(cf_event_is_set(e));
    cf_event_free(e);
}

static void event_ping_pong_fn(void *p)
{
    cf_event **ev = p;
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(cf_event_wait(ev[0], 10.0), 0);
        cf_event_clear(ev[0]);
        cf_event_set(ev[1]);
    }
}

static void event_ping_pong(void)
{
    /* Two threads hand a token back and forth through two events. */
    cf_event *ev[2] = { cf_event_new(), cf_event_new() };
    bunch b;
    bunch_start(&b, 1, event_ping_pong_fn, ev, false);
    for (int i = 0; i < 200; i++) {
        cf_event_set(ev[0]);
        CHECK_EQ(cf_event_wait(ev[1], 10.0), 0);
        cf_event_clear(ev[1]);
    }
    bunch_join(&b);
    cf_event_free(ev[0]);
    cf_event_free(ev[1]);
}

static const test_case cases[] = {
    TEST_CASE(lock_constructor),
    TEST_CASE(lock_acquire_release),
    TEST_CASE(lock_try_acquire),
    TEST_CASE(lock_try_acquire_contended),
    TEST_CASE(lock_acquire_contended),
    TEST_CASE(lock_with),
    TEST_CASE(lock_many_threads),
    TEST_CASE(lock_timeout),
    TEST_CASE(lock_reacquire),
    TEST_CASE(lock_different_thread),
    TEST_CASE(lock_state_after_timeout),
    TEST_CASE(lock_release_unlocked),
    TEST_CASE(lock_bad_input),
    TEST_CASE(lock_mutual_exclusion),
    TEST_CASE(constructors_enomem),
    TEST_CASE(rlock_acquire_release),
    TEST_CASE(rlock_reacquire),
    TEST_CASE(rlock_release_unacquired),
    TEST_CASE(rlock_different_thread),
    TEST_CASE(rlock_is_owned),
    TEST_CASE(rlock_acquire_contended),
    TEST_CASE(rlock_timeout),
    TEST_CASE(rlock_bad_input),
    TEST_CASE(rlock_mutual_exclusion),
    TEST_CASE(cond_acquire),
    TEST_CASE(cond_as_rlock_ownership),
    TEST_CASE(cond_as_rlock_different_thread),
    TEST_CASE(cond_as_rlock_contended),
    TEST_CASE(cond_as_rlock_timeout),
    TEST_CASE(cond_unacquired),
    TEST_CASE(cond_notify),
    TEST_CASE(cond_notify_counts),
    TEST_CASE(cond_timeout),
    TEST_CASE(cond_wait_for),
    TEST_CASE(cond_wait_for_timeout),
    TEST_CASE(cond_wait_for_true_first),
    TEST_CASE(cond_wait_restores_depth),
    TEST_CASE(cond_bad_input),
    TEST_CASE(cond_producers_consumers),
    TEST_CASE(sem_acquire),
    TEST_CASE(sem_acquire_contended),
    TEST_CASE(sem_multirelease),
    TEST_CASE(sem_try_acquire),
    TEST_CASE(sem_try_acquire_contended),
    TEST_CASE(sem_acquire_timeout),
    TEST_CASE(sem_default_value),
    TEST_CASE(sem_with),
    TEST_CASE(sem_release_unacquired),
    TEST_CASE(bsem_release_unacquired),
    TEST_CASE(bsem_multirelease_overflow),
    TEST_CASE(bsem_limit),
    TEST_CASE(sem_various_ops),
    TEST_CASE(sem_release_wakes_n),
    TEST_CASE(sem_bad_input),
    TEST_CASE(event_is_set),
    TEST_CASE(event_notify),
    TEST_CASE(event_timeout),
    TEST_CASE(event_set_and_clear),
    TEST_CASE(event_bad_input),
    TEST_CASE(event_ping_pong),
};

TEST_MAIN(cases)
