/* SPDX-License-Identifier: MIT */
/*
 * test_queue.c - cf_queue (Python's Queue, LifoQueue, PriorityQueue).
 *
 * The cases follow CPython's Lib/test/test_queue.py: BaseQueueTestMixin
 * (basic, join, task_done, nowait, and the shutdown tests of Python 3.13)
 * for each order, FailingQueueTest (here: a put whose growth fails with
 * CF_ENOMEM leaves the queue intact), and the threaded SimpleQueue tests
 * (order, many threads blocking / polling / with timeouts). Items are small
 * integers carried in the pointer; PRIORITY compares them as integers.
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#define QUEUE_SIZE 5

static const cf_queue_order orders[] = { CF_FIFO, CF_LIFO, CF_PRIORITY };

/* ---- helpers -------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
    intptr_t x = (intptr_t)a, y = (intptr_t)b;
    return (x > y) - (x < y);
}

static cf_queue *new_queue(size_t maxsize, cf_queue_order order)
{
    cf_queue *q = cf_queue_new(maxsize, order, cmp_int);
    CHECK(q);
    return q;
}

static int put(cf_queue *q, intptr_t v, double timeout)
{
    return cf_queue_put(q, (void *)v, timeout);
}

static int get(cf_queue *q, intptr_t *v, double timeout)
{
    void *item = (void *)(intptr_t)-12345;
    int rc = cf_queue_get(q, &item, timeout);
    if (v)
        *v = (intptr_t)item;
    return rc;
}

static intptr_t get_ok(cf_queue *q)
{
    intptr_t v;
    CHECK_EQ(get(q, &v, 10.0), 0);
    return v;
}

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

/* A thread that unclogs a blocked queue: after 0.1 s it notes that it
 * started, then calls trigger (test_queue's _TriggerThread). */
typedef struct trigger {
    cf_queue *q;
    bool do_get; /* else put value */
    intptr_t value;
    atomic_bool started;
} trigger;

static void *trigger_main(void *p)
{
    trigger *t = p;
    sleep_s(0.1);
    atomic_store(&t->started, true);
    if (t->do_get)
        get_ok(t->q);
    else
        CHECK_EQ(put(t->q, t->value, 10.0), 0);
    return NULL;
}

/* do_blocking_test for put: the put must block until the trigger runs. */
static void blocking_put(cf_queue *q, intptr_t v, double timeout)
{
    trigger t = { q, true, 0, false };
    cf_thread *th = spawn(trigger_main, &t);
    CHECK_EQ(put(q, v, timeout), 0);
    CHECK(atomic_load(&t.started)); /* it did block */
    join(th);
}

/* do_blocking_test for get: returns the item got. */
static intptr_t blocking_get(cf_queue *q, intptr_t trigger_value,
                             double timeout)
{
    trigger t = { q, false, trigger_value, false };
    cf_thread *th = spawn(trigger_main, &t);
    intptr_t v;
    CHECK_EQ(get(q, &v, timeout), 0);
    CHECK(atomic_load(&t.started));
    join(th);
    return v;
}

/* ---- BaseQueueTestMixin ----------------------------------------------------- */

static bool qfull(cf_queue *q, size_t maxsize)
{
    return maxsize > 0 && cf_queue_size(q) == maxsize;
}

static void basic_queue_test(cf_queue *q, cf_queue_order order)
{
    CHECK_EQ(cf_queue_size(q), 0);
    CHECK(cf_queue_empty(q));
    CHECK(!cf_queue_full(q));
    CHECK_EQ(put(q, 111, CF_FOREVER), 0);
    CHECK_EQ(put(q, 333, CF_FOREVER), 0);
    CHECK_EQ(put(q, 222, CF_FOREVER), 0);
    static const intptr_t want[3][3] = { { 111, 333, 222 },
                                         { 222, 333, 111 },
                                         { 111, 222, 333 } };
    for (int i = 0; i < 3; i++)
        CHECK_EQ(get_ok(q), want[order][i]);
    for (int i = 0; i < QUEUE_SIZE - 1; i++) {
        CHECK_EQ(put(q, i, CF_FOREVER), 0);
        CHECK(cf_queue_size(q) > 0);
    }
    CHECK(!qfull(q, QUEUE_SIZE));
    intptr_t last = 2 * QUEUE_SIZE, full = 3 * 2 * QUEUE_SIZE;
    CHECK_EQ(put(q, last, CF_FOREVER), 0);
    CHECK(qfull(q, QUEUE_SIZE));
    CHECK(!cf_queue_empty(q));
    CHECK(cf_queue_full(q));
    CHECK_EQ(put(q, full, 0), CF_ETIMEDOUT);    /* put(block=False) */
    CHECK_EQ(put(q, full, 0.01), CF_ETIMEDOUT); /* put(timeout=0.01) */
    CHECK_EQ(cf_queue_size(q), QUEUE_SIZE);
    /* Blocking puts, forever and with a timeout. */
    blocking_put(q, full, CF_FOREVER);
    blocking_put(q, full, 10.0);
    /* Empty it. */
    for (int i = 0; i < QUEUE_SIZE; i++)
        get_ok(q);
    CHECK_EQ(cf_queue_size(q), 0);
    CHECK_EQ(get(q, NULL, 0), CF_ETIMEDOUT);
    CHECK_EQ(get(q, NULL, 0.01), CF_ETIMEDOUT);
    /* Blocking gets. */
    CHECK_EQ(blocking_get(q, 77, CF_FOREVER), 77);
    CHECK_EQ(blocking_get(q, 78, 10.0), 78);
}

static void queue_basic(void)
{
    for (int o = 0; o < 3; o++) {
        /* Twice on the same queue, to check it stays usable. */
        cf_queue *q = new_queue(QUEUE_SIZE, orders[o]);
        basic_queue_test(q, orders[o]);
        basic_queue_test(q, orders[o]);
        cf_queue_free(q);
    }
}

typedef struct join_ctx {
    cf_queue *q;
    pthread_mutex_t mu;
    long cum; /* guarded by mu */
} join_ctx;

static void *join_worker(void *p)
{
    join_ctx *j = p;
    for (;;) {
        intptr_t x;
        CHECK_EQ(get(j->q, &x, CF_FOREVER), 0);
        if (x < 0) {
            CHECK_EQ(cf_queue_task_done(j->q), 0);
            return NULL;
        }
        pthread_mutex_lock(&j->mu);
        j->cum += x;
        pthread_mutex_unlock(&j->mu);
        CHECK_EQ(cf_queue_task_done(j->q), 0);
    }
}

static void queue_join_test(join_ctx *j)
{
    j->cum = 0;
    cf_thread *t[2];
    for (int i = 0; i < 2; i++)
        t[i] = spawn(join_worker, j);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(put(j->q, i, CF_FOREVER), 0);
    CHECK_EQ(cf_queue_join(j->q, CF_FOREVER), 0);
    pthread_mutex_lock(&j->mu);
    CHECK_EQ(j->cum, 99 * 100 / 2); /* join waited for every task */
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(put(j->q, -1, CF_FOREVER), 0);   /* tell the workers to end */
    CHECK_EQ(cf_queue_join(j->q, CF_FOREVER), 0); /* joining twice is fine */
    for (int i = 0; i < 2; i++)
        join(t[i]);
}

static void queue_join(void)
{
    for (int o = 0; o < 3; o++) {
        join_ctx j = { new_queue(0, orders[o]), PTHREAD_MUTEX_INITIALIZER, 0 };
        queue_join_test(&j);
        queue_join_test(&j);
        CHECK_EQ(cf_queue_task_done(j.q), CF_EOVERFLOW);
        cf_queue_free(j.q);
    }
}

static void queue_task_done(void)
{
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(0, orders[o]);
        CHECK_EQ(cf_queue_task_done(q), CF_EOVERFLOW);
        /* A join with nothing unfinished returns at once. */
        CHECK_EQ(cf_queue_join(q, 0), 0);
        CHECK_EQ(put(q, 1, 0), 0);
        CHECK_EQ(put(q, 2, 0), 0);
        CHECK_EQ(cf_queue_join(q, 0), CF_ETIMEDOUT);
        double t0 = now_s();
        CHECK_EQ(cf_queue_join(q, 0.1), CF_ETIMEDOUT);
        double dt = now_s() - t0;
        CHECK(dt >= 0.09 && dt < 2.0 * test_scale());
        /* task_done counts puts, not gets. */
        CHECK_EQ(cf_queue_task_done(q), 0);
        CHECK_EQ(cf_queue_task_done(q), 0);
        CHECK_EQ(cf_queue_task_done(q), CF_EOVERFLOW);
        CHECK_EQ(cf_queue_join(q, 0), 0);
        CHECK_EQ(cf_queue_size(q), 2);
        cf_queue_free(q);
    }
}

static void queue_nowait(void)
{
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(QUEUE_SIZE, orders[o]);
        for (int i = 0; i < QUEUE_SIZE; i++)
            CHECK_EQ(put(q, 1, 0), 0);
        CHECK_EQ(put(q, 1, 0), CF_ETIMEDOUT);
        for (int i = 0; i < QUEUE_SIZE; i++)
            CHECK_EQ(get(q, NULL, 0), 0);
        CHECK_EQ(get(q, NULL, 0), CF_ETIMEDOUT);
        cf_queue_free(q);
    }
}

static void queue_negative_timeout(void)
{
    /* Python refuses negative timeouts; here they mean "forever", which
     * on a queue that has room or items returns at once. */
    cf_queue *q = new_queue(QUEUE_SIZE, CF_FIFO);
    CHECK_EQ(put(q, 1, -1.0), 0);
    CHECK_EQ(put(q, 2, -100.0), 0);
    intptr_t v;
    CHECK_EQ(get(q, &v, -1.0), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(get(q, &v, CF_FOREVER), 0);
    CHECK_EQ(v, 2);
    cf_queue_free(q);
}

static void queue_timeouts(void)
{
    /* A 0.1 s timeout on a full put and an empty get takes about 0.1 s. */
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(1, orders[o]);
        double t0 = now_s();
        CHECK_EQ(get(q, NULL, 0.1), CF_ETIMEDOUT);
        double dt = now_s() - t0;
        CHECK(dt >= 0.09 && dt < 2.0 * test_scale());
        CHECK_EQ(put(q, 5, 0.1), 0);
        t0 = now_s();
        CHECK_EQ(put(q, 6, 0.1), CF_ETIMEDOUT);
        dt = now_s() - t0;
        CHECK(dt >= 0.09 && dt < 2.0 * test_scale());
        CHECK_EQ(cf_queue_size(q), 1);
        CHECK_EQ(get_ok(q), 5);
        cf_queue_free(q);
    }
}

/* ---- orders ------------------------------------------------------------------ */

typedef struct keyed {
    int key;
    int id;
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

static void queue_priority_stable(void)
{
    /* Equal items come out in insertion order. */
    enum { M = 200 };
    keyed items[M];
    cf_queue *q = cf_queue_new(0, CF_PRIORITY, cmp_keyed);
    CHECK(q);
    unsigned seed = 12345;
    for (int i = 0; i < M; i++) {
        seed = seed * 1103515245u + 12345u;
        items[i].key = (int)((seed >> 16) % 7);
        items[i].id = i;
        CHECK_EQ(cf_queue_put(q, &items[i], 0), 0);
    }
    keyed *prev = NULL;
    for (int i = 0; i < M; i++) {
        void *p;
        CHECK_EQ(cf_queue_get(q, &p, 0), 0);
        keyed *k = p;
        if (prev) {
            CHECK(prev->key <= k->key);
            if (prev->key == k->key)
                CHECK(prev->id < k->id);
        }
        prev = k;
    }
    CHECK(cf_queue_empty(q));
    cf_queue_free(q);
}

static void queue_priority_random(void)
{
    /* Interleaved puts and gets against a sorted reference. */
    cf_queue *q = new_queue(0, CF_PRIORITY);
    intptr_t ref[1000];
    int n = 0;
    unsigned seed = 42;
    for (int step = 0; step < 3000; step++) {
        seed = seed * 1103515245u + 12345u;
        bool do_put = n == 0 || (n < 1000 && (seed >> 16) % 3 != 0);
        if (do_put) {
            intptr_t v = (intptr_t)((seed >> 8) % 500) - 250;
            CHECK_EQ(put(q, v, 0), 0);
            int i = n++;
            while (i > 0 && ref[i - 1] > v) {
                ref[i] = ref[i - 1];
                i--;
            }
            ref[i] = v;
        } else {
            CHECK_EQ(get_ok(q), ref[0]);
            memmove(ref, ref + 1, (size_t)--n * sizeof ref[0]);
        }
        CHECK_EQ(cf_queue_size(q), n);
    }
    while (n > 0) {
        CHECK_EQ(get_ok(q), ref[0]);
        memmove(ref, ref + 1, (size_t)--n * sizeof ref[0]);
    }
    cf_queue_free(q);
}

static void queue_fifo_lifo_large(void)
{
    /* Growth keeps the order, including a FIFO ring that has wrapped. */
    cf_queue *f = new_queue(0, CF_FIFO), *l = new_queue(0, CF_LIFO);
    intptr_t next_in = 0, next_out = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 37 * (round + 1); i++)
            CHECK_EQ(put(f, next_in++, 0), 0);
        for (int i = 0; i < 30 * (round + 1); i++)
            CHECK_EQ(get_ok(f), next_out++);
    }
    while (next_out < next_in)
        CHECK_EQ(get_ok(f), next_out++);
    CHECK(cf_queue_empty(f));
    for (intptr_t i = 0; i < 1000; i++)
        CHECK_EQ(put(l, i, 0), 0);
    for (intptr_t i = 999; i >= 500; i--)
        CHECK_EQ(get_ok(l), i);
    for (intptr_t i = 2000; i < 2100; i++)
        CHECK_EQ(put(l, i, 0), 0);
    for (intptr_t i = 2099; i >= 2000; i--)
        CHECK_EQ(get_ok(l), i);
    for (intptr_t i = 499; i >= 0; i--)
        CHECK_EQ(get_ok(l), i);
    CHECK(cf_queue_empty(l));
    cf_queue_free(f);
    cf_queue_free(l);
}

static void queue_sizes(void)
{
    /* SimpleQueue's test_basic: size and empty after each call. */
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(0, orders[o]);
        CHECK(cf_queue_empty(q));
        CHECK_EQ(cf_queue_size(q), 0);
        CHECK_EQ(put(q, 1, CF_FOREVER), 0);
        CHECK(!cf_queue_empty(q));
        CHECK_EQ(cf_queue_size(q), 1);
        CHECK_EQ(put(q, 2, CF_FOREVER), 0);
        CHECK_EQ(put(q, 3, 0), 0);
        CHECK_EQ(put(q, 4, 0.1), 0);
        CHECK_EQ(cf_queue_size(q), 4);
        CHECK(!cf_queue_full(q)); /* unbounded: never full */
        CHECK_EQ(get(q, NULL, CF_FOREVER), 0);
        CHECK_EQ(cf_queue_size(q), 3);
        CHECK_EQ(get(q, NULL, 0), 0);
        CHECK_EQ(cf_queue_size(q), 2);
        CHECK_EQ(get(q, NULL, 0.1), 0);
        CHECK(!cf_queue_empty(q));
        CHECK_EQ(cf_queue_size(q), 1);
        CHECK_EQ(get(q, NULL, 0.1), 0);
        CHECK(cf_queue_empty(q));
        CHECK_EQ(cf_queue_size(q), 0);
        CHECK_EQ(get(q, NULL, 0), CF_ETIMEDOUT);
        CHECK_EQ(get(q, NULL, 1e-3), CF_ETIMEDOUT);
        CHECK(cf_queue_empty(q));
        CHECK_EQ(cf_queue_size(q), 0);
        cf_queue_free(q);
    }
}

static void queue_null_items(void)
{
    /* NULL is an item like any other; a NULL out-pointer discards. */
    cf_queue *q = new_queue(0, CF_FIFO);
    CHECK_EQ(cf_queue_put(q, NULL, 0), 0);
    CHECK_EQ(cf_queue_put(q, (void *)7, 0), 0);
    void *p = (void *)1;
    CHECK_EQ(cf_queue_get(q, &p, 0), 0);
    CHECK(p == NULL);
    CHECK_EQ(cf_queue_get(q, NULL, 0), 0);
    CHECK(cf_queue_empty(q));
    cf_queue_free(q);
    /* Items left in a freed queue belong to the caller: nothing happens. */
    q = new_queue(0, CF_LIFO);
    CHECK_EQ(cf_queue_put(q, (void *)1, 0), 0);
    cf_queue_free(q);
    cf_queue_free(NULL);
}

/* ---- bounded, under contention -------------------------------------------- */

typedef struct bound_ctx {
    cf_queue *q;
    size_t maxsize;
    int per_producer;
    atomic_long sum;
} bound_ctx;

static void *bound_producer(void *p)
{
    bound_ctx *b = p;
    for (int i = 1; i <= b->per_producer; i++) {
        CHECK_EQ(put(b->q, i, 30.0), 0);
        CHECK(cf_queue_size(b->q) <= b->maxsize);
    }
    return NULL;
}

static void *bound_consumer(void *p)
{
    bound_ctx *b = p;
    for (int i = 0; i < b->per_producer; i++) {
        CHECK(cf_queue_size(b->q) <= b->maxsize);
        atomic_fetch_add(&b->sum, (long)get_ok(b->q));
    }
    return NULL;
}

static void queue_bounded_contention(void)
{
    for (int o = 0; o < 3; o++) {
        bound_ctx b = { new_queue(3, orders[o]), 3, 2000, 0 };
        cf_thread *t[6];
        for (int i = 0; i < 3; i++) {
            t[2 * i] = spawn(bound_producer, &b);
            t[2 * i + 1] = spawn(bound_consumer, &b);
        }
        for (int i = 0; i < 6; i++)
            join(t[i]);
        CHECK_EQ(atomic_load(&b.sum), 3L * 2000 * 2001 / 2);
        CHECK(cf_queue_empty(b.q));
        cf_queue_free(b.q);
    }
}

/* ---- the threaded SimpleQueue tests ----------------------------------------- */

#define SENTINEL ((intptr_t)-1)

typedef struct feed_ctx {
    cf_queue *q;
    pthread_mutex_t mu;
    intptr_t next, end; /* inputs not yet fed, guarded by mu */
    intptr_t *results;  /* guarded by mu */
    int n_results;
    int mode; /* consumers: 0 blocking, 1 polling, 2 timeouts */
    atomic_uint seed;
} feed_ctx;

static void *feeder(void *p)
{
    feed_ctx *f = p;
    unsigned seed = atomic_fetch_add(&f->seed, 7919);
    for (;;) {
        pthread_mutex_lock(&f->mu);
        intptr_t v = f->next < f->end ? f->next++ : SENTINEL;
        pthread_mutex_unlock(&f->mu);
        CHECK_EQ(put(f->q, v, CF_FOREVER), 0);
        if (v == SENTINEL)
            return NULL;
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 2 == 0)
            sleep_s((double)((seed >> 8) % 1000) * 1e-7);
    }
}

static void *consumer(void *p)
{
    feed_ctx *f = p;
    for (;;) {
        intptr_t v;
        int rc;
        if (f->mode == 0) {
            CHECK_EQ(get(f->q, &v, CF_FOREVER), 0);
        } else {
            while ((rc = get(f->q, &v, f->mode == 1 ? 0 : 1e-5)) ==
                   CF_ETIMEDOUT) {
                if (f->mode == 1)
                    sleep_s(1e-5);
            }
            CHECK_EQ(rc, 0);
        }
        if (v == SENTINEL)
            return NULL;
        pthread_mutex_lock(&f->mu);
        f->results[f->n_results++] = v;
        pthread_mutex_unlock(&f->mu);
    }
}

static int cmp_intptr(const void *a, const void *b)
{
    intptr_t x = *(const intptr_t *)a, y = *(const intptr_t *)b;
    return (x > y) - (x < y);
}

/* Runs n feeders and n consumers over inputs [0, count); the results are
 * left in f->results. */
static void run_threads(feed_ctx *f, int n, int count, int mode)
{
    f->q = new_queue(0, CF_FIFO);
    pthread_mutex_init(&f->mu, NULL);
    f->next = 0;
    f->end = count;
    f->results = calloc((size_t)count, sizeof *f->results);
    f->n_results = 0;
    f->mode = mode;
    atomic_init(&f->seed, 1);
    cf_thread *t[64];
    CHECK(2 * n <= 64);
    for (int i = 0; i < n; i++) {
        t[2 * i] = spawn(feeder, f);
        t[2 * i + 1] = spawn(consumer, f);
    }
    for (int i = 0; i < 2 * n; i++)
        join(t[i]);
    CHECK(cf_queue_empty(f->q));
    CHECK_EQ(cf_queue_size(f->q), 0);
    CHECK_EQ(f->n_results, count);
    cf_queue_free(f->q);
}

static void check_sorted_inputs(feed_ctx *f, int count)
{
    qsort(f->results, (size_t)count, sizeof *f->results, cmp_intptr);
    for (int i = 0; i < count; i++)
        CHECK_EQ(f->results[i], i);
    free(f->results);
}

static void queue_order_one_feeder(void)
{
    /* One producer, one consumer: results in input order. */
    feed_ctx f;
    run_threads(&f, 1, 100, 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(f.results[i], i);
    free(f.results);
}

static void queue_many_threads(void)
{
    feed_ctx f;
    run_threads(&f, 16, 10000, 0);
    check_sorted_inputs(&f, 10000);
}

static void queue_many_threads_nonblock(void)
{
    feed_ctx f;
    run_threads(&f, 8, 5000, 1);
    check_sorted_inputs(&f, 5000);
}

static void queue_many_threads_timeout(void)
{
    feed_ctx f;
    run_threads(&f, 8, 1000, 2);
    check_sorted_inputs(&f, 1000);
}

/* ---- shutdown (Python 3.13) ------------------------------------------------- */

static void queue_shutdown_empty(void)
{
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(0, orders[o]);
        cf_queue_shutdown(q, false);
        CHECK_EQ(put(q, 1, CF_FOREVER), CF_ESHUTDOWN);
        CHECK_EQ(get(q, NULL, CF_FOREVER), CF_ESHUTDOWN);
        CHECK_EQ(get(q, NULL, 0), CF_ESHUTDOWN);
        cf_queue_free(q);
    }
}

static void queue_shutdown_nonempty(void)
{
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(0, orders[o]);
        CHECK_EQ(put(q, 1, 0), 0);
        cf_queue_shutdown(q, false);
        CHECK_EQ(get_ok(q), 1);
        CHECK_EQ(get(q, NULL, CF_FOREVER), CF_ESHUTDOWN);
        cf_queue_free(q);
    }
}

static void queue_shutdown_immediate(void)
{
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(0, orders[o]);
        CHECK_EQ(put(q, 1, 0), 0);
        cf_queue_shutdown(q, true);
        CHECK_EQ(get(q, NULL, CF_FOREVER), CF_ESHUTDOWN);
        CHECK(cf_queue_empty(q));
        cf_queue_free(q);
    }
}

static void queue_shutdown_transitions(void)
{
    /* Alive, then shut down, then immediately: each call is allowed, and a
     * later non-immediate shutdown does not bring the items back. */
    cf_queue *q = new_queue(0, CF_FIFO);
    CHECK_EQ(put(q, 1, 0), 0);
    CHECK_EQ(put(q, 2, 0), 0);
    cf_queue_shutdown(q, false);
    CHECK_EQ(put(q, 3, 0), CF_ESHUTDOWN);
    CHECK_EQ(cf_queue_size(q), 2);
    cf_queue_shutdown(q, true);
    CHECK_EQ(cf_queue_size(q), 0);
    cf_queue_shutdown(q, false);
    CHECK_EQ(cf_queue_size(q), 0);
    CHECK_EQ(get(q, NULL, 0), CF_ESHUTDOWN);
    CHECK_EQ(cf_queue_join(q, 0), 0);
    cf_queue_free(q);
}

static void all_methods_in_one_thread(bool immediate)
{
    for (int o = 0; o < 3; o++) {
        cf_queue *q = new_queue(2, orders[o]);
        CHECK_EQ(put(q, 'L', CF_FOREVER), 0);
        CHECK_EQ(put(q, 'O', 0), 0);
        cf_queue_shutdown(q, immediate);
        CHECK_EQ(put(q, 'E', CF_FOREVER), CF_ESHUTDOWN);
        CHECK_EQ(put(q, 'W', 0), CF_ESHUTDOWN);
        if (immediate) {
            CHECK_EQ(get(q, NULL, CF_FOREVER), CF_ESHUTDOWN);
            CHECK_EQ(get(q, NULL, 0), CF_ESHUTDOWN);
            /* The dropped items counted as done. */
            CHECK_EQ(cf_queue_task_done(q), CF_EOVERFLOW);
            CHECK_EQ(cf_queue_join(q, CF_FOREVER), 0);
        } else {
            intptr_t a = get_ok(q);
            CHECK(a == 'L' || a == 'O');
            CHECK_EQ(cf_queue_task_done(q), 0);
            intptr_t b = get_ok(q);
            CHECK((b == 'L' || b == 'O') && b != a);
            CHECK_EQ(cf_queue_task_done(q), 0);
            CHECK_EQ(cf_queue_join(q, CF_FOREVER), 0);
            /* Drained: gets fail now, blocking or not. */
            CHECK_EQ(get(q, NULL, CF_FOREVER), CF_ESHUTDOWN);
            CHECK_EQ(get(q, NULL, 0), CF_ESHUTDOWN);
            CHECK_EQ(get(q, NULL, 1.0), CF_ESHUTDOWN);
        }
        cf_queue_free(q);
    }
}

static void queue_shutdown_all_methods_in_one_thread(void)
{
    all_methods_in_one_thread(false);
}

static void queue_shutdown_immediate_all_methods_in_one_thread(void)
{
    all_methods_in_one_thread(true);
}

/* _shutdown_all_methods_in_many_threads: producers, consumers, a thread
 * that shuts down midway, and (immediate) threads joining. */
enum { WRITERS = 4, READERS = 6, JOINERS = 2, NB_MSGS = 1024 * 8 };

typedef struct many_ctx {
    cf_queue *q;
    cf_barrier *start;
    cf_event *exec_shutdown;
    bool immediate;
    atomic_int puts_true, puts_false, gets_true;
    atomic_int shutdown_saw_empty; /* -1 unknown, 0 no, 1 yes */
} many_ctx;

static void *many_writer(void *p)
{
    many_ctx *m = p;
    int per_writer = NB_MSGS / WRITERS, when = per_writer / 2;
    for (int i = 0; i < when / 2; i++)
        CHECK_EQ(put(m->q, i, CF_FOREVER), 0);
    CHECK(cf_barrier_wait(m->start, 30.0) >= 0);
    for (int i = when / 2; i < per_writer; i++) {
        int rc = put(m->q, i, CF_FOREVER);
        if (rc == CF_ESHUTDOWN) {
            atomic_fetch_add(&m->puts_false, 1);
            break;
        }
        CHECK_EQ(rc, 0);
        if (i == when && !cf_event_is_set(m->exec_shutdown)) {
            /* Only one thread should trigger the shutdown (but a race
             * here is harmless, as in Python). */
            cf_event_set(m->exec_shutdown);
            atomic_fetch_add(&m->puts_true, 1);
        }
    }
    return NULL;
}

static void *many_reader(void *p)
{
    many_ctx *m = p;
    CHECK_EQ(get(m->q, NULL, CF_FOREVER), 0); /* at least one item */
    CHECK_EQ(cf_queue_task_done(m->q), 0);
    CHECK(cf_barrier_wait(m->start, 30.0) >= 0);
    for (;;) {
        int rc = get(m->q, NULL, 0);
        if (rc == 0) {
            CHECK_EQ(cf_queue_task_done(m->q), 0);
        } else if (rc == CF_ESHUTDOWN) {
            atomic_fetch_add(&m->gets_true, 1);
            return NULL;
        } else {
            CHECK_EQ(rc, CF_ETIMEDOUT);
            sched_yield();
        }
    }
}

static void *many_shutdown(void *p)
{
    many_ctx *m = p;
    CHECK_EQ(cf_event_wait(m->exec_shutdown, 30.0), 0);
    cf_queue_shutdown(m->q, m->immediate);
    atomic_store(&m->shutdown_saw_empty, cf_queue_size(m->q) == 0);
    return NULL;
}

static void *many_joiner(void *p)
{
    many_ctx *m = p;
    CHECK(cf_barrier_wait(m->start, 30.0) >= 0);
    CHECK_EQ(cf_queue_join(m->q, 30.0), 0);
    return NULL;
}

static void all_methods_in_many_threads(bool immediate)
{
    many_ctx m;
    memset(&m, 0, sizeof m);
    m.q = new_queue(0, CF_FIFO);
    m.immediate = immediate;
    m.start = cf_barrier_new(WRITERS + READERS + (immediate ? JOINERS : 0),
                             NULL, NULL);
    m.exec_shutdown = cf_event_new();
    atomic_store(&m.shutdown_saw_empty, -1);
    cf_thread *t[WRITERS + READERS + JOINERS + 1];
    int n = 0;
    for (int i = 0; i < WRITERS; i++)
        t[n++] = spawn(many_writer, &m);
    for (int i = 0; i < READERS; i++)
        t[n++] = spawn(many_reader, &m);
    t[n++] = spawn(many_shutdown, &m);
    if (immediate)
        for (int i = 0; i < JOINERS; i++)
            t[n++] = spawn(many_joiner, &m);
    for (int i = 0; i < n; i++)
        join(t[i]);
    CHECK(atomic_load(&m.puts_true) >= 1);
    CHECK_EQ(atomic_load(&m.gets_true), READERS);
    if (immediate) {
        CHECK_EQ(atomic_load(&m.shutdown_saw_empty), 1);
        CHECK(cf_queue_empty(m.q));
    }
    CHECK(cf_queue_empty(m.q));
    CHECK_EQ(cf_queue_join(m.q, 0), 0);
    cf_queue_free(m.q);
    cf_barrier_free(m.start);
    cf_event_free(m.exec_shutdown);
}

static void queue_shutdown_all_methods_in_many_threads(void)
{
    all_methods_in_many_threads(false);
}

static void queue_shutdown_immediate_all_methods_in_many_threads(void)
{
    all_methods_in_many_threads(true);
}

/* The small helpers of the shutdown tests: each waits for `go`, calls the
 * queue and records whether the outcome was the expected one. */
typedef struct sd_ctx {
    cf_queue *q;
    cf_event *go;
    atomic_int ok, bad; /* outcome as expected / not */
    atomic_int got;     /* items got */
} sd_ctx;

static void outcome(sd_ctx *s, bool as_expected)
{
    atomic_fetch_add(as_expected ? &s->ok : &s->bad, 1);
}

static void *sd_get(void *p) /* expects an item, or CF_ESHUTDOWN */
{
    sd_ctx *s = p;
    CHECK_EQ(cf_event_wait(s->go, 30.0), 0);
    int rc = get(s->q, NULL, CF_FOREVER);
    CHECK(rc == 0 || rc == CF_ESHUTDOWN);
    if (rc == 0)
        atomic_fetch_add(&s->got, 1);
    outcome(s, true);
    return (void *)(intptr_t)rc;
}

static void *sd_get_shutdown(void *p) /* expects CF_ESHUTDOWN */
{
    sd_ctx *s = p;
    CHECK_EQ(cf_event_wait(s->go, 30.0), 0);
    outcome(s, get(s->q, NULL, CF_FOREVER) == CF_ESHUTDOWN);
    return NULL;
}

static void *sd_get_task_done(void *p) /* expects an item */
{
    sd_ctx *s = p;
    CHECK_EQ(cf_event_wait(s->go, 30.0), 0);
    int rc = get(s->q, NULL, CF_FOREVER);
    if (rc == 0)
        CHECK_EQ(cf_queue_task_done(s->q), 0);
    outcome(s, rc == 0);
    return NULL;
}

static void *sd_put_shutdown(void *p) /* expects CF_ESHUTDOWN */
{
    sd_ctx *s = p;
    CHECK_EQ(cf_event_wait(s->go, 30.0), 0);
    outcome(s, put(s->q, 'E', CF_FOREVER) == CF_ESHUTDOWN);
    return NULL;
}

static void *sd_join(void *p) /* expects 0 */
{
    sd_ctx *s = p;
    outcome(s, cf_queue_join(s->q, 30.0) == 0);
    return NULL;
}

static void sd_init(sd_ctx *s, cf_queue *q)
{
    memset(s, 0, sizeof *s);
    s->q = q;
    s->go = cf_event_new();
}

static void sd_finish(sd_ctx *s, cf_thread **t, int n, int want_ok)
{
    for (int i = 0; i < n; i++)
        join(t[i]);
    CHECK_EQ(atomic_load(&s->ok), want_ok);
    CHECK_EQ(atomic_load(&s->bad), 0);
    cf_event_free(s->go);
    cf_queue_free(s->q);
}

static void shutdown_get(bool immediate)
{
    for (int o = 0; o < 3; o++) {
        sd_ctx s;
        sd_init(&s, new_queue(2, orders[o]));
        CHECK_EQ(put(s.q, 'Y', 0), 0);
        CHECK_EQ(put(s.q, 'D', 0), 0); /* full */
        cf_thread *t[3];
        int n = immediate ? 2 : 3;
        for (int i = 0; i < n; i++)
            t[i] = spawn(immediate ? sd_get_shutdown : sd_get, &s);
        cf_queue_shutdown(s.q, immediate);
        cf_event_set(s.go);
        sd_finish(&s, t, n, n);
        /* Not immediate: two drained the items, the third was refused. */
        CHECK_EQ(atomic_load(&s.got), immediate ? 0 : 2);
    }
}

static void queue_shutdown_get(void)
{
    shutdown_get(false);
}
static void queue_shutdown_immediate_get(void)
{
    shutdown_get(true);
}

static void shutdown_put(bool immediate)
{
    for (int o = 0; o < 3; o++) {
        sd_ctx s;
        sd_init(&s, new_queue(2, orders[o]));
        CHECK_EQ(put(s.q, 'Y', 0), 0);
        CHECK_EQ(put(s.q, 'D', 0), 0); /* full */
        cf_thread *t[2];
        for (int i = 0; i < 2; i++)
            t[i] = spawn(sd_put_shutdown, &s);
        cf_queue_shutdown(s.q, immediate);
        cf_event_set(s.go);
        sd_finish(&s, t, 2, 2);
    }
}

static void queue_shutdown_put(void)
{
    shutdown_put(false);
}
static void queue_shutdown_immediate_put(void)
{
    shutdown_put(true);
}

static void shutdown_join(bool immediate)
{
    for (int o = 0; o < 3; o++) {
        sd_ctx s;
        sd_init(&s, new_queue(0, orders[o]));
        CHECK_EQ(put(s.q, 'Y', 0), 0);
        cf_thread *t[3];
        int n = 0;
        t[n++] = spawn(sd_join, &s);
        t[n++] = spawn(sd_join, &s);
        if (!immediate) /* someone must process the item */
            t[n++] = spawn(sd_get_task_done, &s);
        cf_queue_shutdown(s.q, immediate);
        cf_event_set(s.go);
        sd_finish(&s, t, n, n);
    }
}

static void queue_shutdown_join(void)
{
    shutdown_join(false);
}
static void queue_shutdown_immediate_join(void)
{
    shutdown_join(true);
}

static void shutdown_put_join(bool immediate)
{
    for (int o = 0; o < 3; o++) {
        sd_ctx s;
        sd_init(&s, new_queue(2, orders[o]));
        CHECK_EQ(put(s.q, 'Y', 0), 0); /* not full */
        cf_thread *t[2];
        t[0] = spawn(sd_put_shutdown, &s);
        t[1] = spawn(sd_join, &s);
        CHECK_EQ(cf_queue_join(s.q, 0), CF_ETIMEDOUT); /* 1 unfinished */
        cf_queue_shutdown(s.q, immediate);
        cf_event_set(s.go);
        if (immediate) {
            CHECK_EQ(get(s.q, NULL, 0), CF_ESHUTDOWN);
        } else {
            CHECK_EQ(get_ok(s.q), 'Y');
            CHECK_EQ(cf_queue_task_done(s.q), 0);
        }
        sd_finish(&s, t, 2, 2);
    }
}

static void queue_shutdown_put_join(void)
{
    shutdown_put_join(false);
}
static void queue_shutdown_immediate_put_join(void)
{
    shutdown_put_join(true);
}

static void queue_shutdown_get_task_done_join(void)
{
    for (int o = 0; o < 3; o++) {
        sd_ctx s;
        sd_init(&s, new_queue(2, orders[o]));
        CHECK_EQ(put(s.q, 'Y', 0), 0);
        CHECK_EQ(put(s.q, 'D', 0), 0);
        cf_thread *t[4];
        t[0] = spawn(sd_get_task_done, &s);
        t[1] = spawn(sd_get_task_done, &s);
        t[2] = spawn(sd_join, &s);
        t[3] = spawn(sd_join, &s);
        cf_event_set(s.go);
        cf_queue_shutdown(s.q, false);
        sd_finish(&s, t, 4, 4);
    }
}

static void *blocked_get(void *p)
{
    return (void *)(intptr_t)get(p, NULL, CF_FOREVER);
}

static void *blocked_put(void *p)
{
    return (void *)(intptr_t)put(p, 9, CF_FOREVER);
}

static void queue_shutdown_pending(void)
{
    /* test_shutdown_pending_get, and its twin for a put waiting for room:
     * callers already blocked are woken with CF_ESHUTDOWN. */
    for (int immediate = 0; immediate < 2; immediate++) {
        cf_queue *q = new_queue(1, CF_FIFO);
        cf_thread *g = spawn(blocked_get, q);
        sleep_s(0.05);
        cf_queue_shutdown(q, immediate);
        CHECK_EQ((intptr_t)join(g), CF_ESHUTDOWN);
        cf_queue_free(q);

        q = new_queue(1, CF_FIFO);
        CHECK_EQ(put(q, 1, 0), 0);
        cf_thread *p = spawn(blocked_put, q);
        sleep_s(0.05);
        cf_queue_shutdown(q, immediate);
        CHECK_EQ((intptr_t)join(p), CF_ESHUTDOWN);
        CHECK_EQ(cf_queue_size(q), immediate ? 0 : 1);
        cf_queue_free(q);
    }
}

static void queue_shutdown_immediate_in_flight(void)
{
    /* Items already got stay unfinished after an immediate shutdown: join
     * waits for their task_done, not for the dropped ones. */
    cf_queue *q = new_queue(0, CF_FIFO);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(put(q, i, 0), 0);
    CHECK_EQ(get_ok(q), 0);
    cf_queue_shutdown(q, true);
    CHECK_EQ(cf_queue_size(q), 0);
    CHECK_EQ(cf_queue_join(q, 0.05), CF_ETIMEDOUT);
    CHECK_EQ(cf_queue_task_done(q), 0);
    CHECK_EQ(cf_queue_join(q, 0), 0);
    CHECK_EQ(cf_queue_task_done(q), CF_EOVERFLOW);
    cf_queue_free(q);
}

/* ---- bad input ----------------------------------------------------------------- */

static void queue_bad_input(void)
{
    errno = 0;
    CHECK(cf_queue_new(0, CF_PRIORITY, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(cf_queue_new(0, (cf_queue_order)42, cmp_int) == NULL);
    CHECK_EQ(errno, EINVAL);
    /* cmp is ignored for the other orders. */
    cf_queue *q = cf_queue_new(0, CF_FIFO, NULL);
    CHECK(q);
    cf_queue_free(q);

    CHECK_EQ(cf_queue_put(NULL, NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_queue_get(NULL, NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_queue_task_done(NULL), CF_EINVAL);
    CHECK_EQ(cf_queue_join(NULL, 0), CF_EINVAL);
    CHECK_EQ(cf_queue_size(NULL), 0);
    CHECK(!cf_queue_empty(NULL));
    CHECK(!cf_queue_full(NULL));
    cf_queue_shutdown(NULL, true);
    cf_queue_free(NULL);

    for (int o = 0; o < 3; o++) {
        q = new_queue(2, orders[o]);
        CHECK_EQ(put(q, 1, NAN), CF_EINVAL);
        CHECK_EQ(cf_queue_size(q), 0);    /* not put */
        CHECK_EQ(cf_queue_join(q, 0), 0); /* not counted either */
        CHECK_EQ(put(q, 2, 0), 0);
        intptr_t v = 0;
        CHECK_EQ(get(q, &v, NAN), CF_EINVAL);
        CHECK_EQ(cf_queue_size(q), 1); /* not removed */
        CHECK_EQ(cf_queue_join(q, NAN), CF_EINVAL);
        CHECK_EQ(get_ok(q), 2);
        CHECK_EQ(cf_queue_task_done(q), 0);
        CHECK_EQ(cf_queue_join(q, 0), 0);
        cf_queue_free(q);
    }
}

/* ---- ENOMEM -------------------------------------------------------------------- */

static int new_queue_op(void *ctx)
{
    cf_queue_order *order = ctx;
    cf_queue *q = cf_queue_new(0, *order, cmp_int);
    if (!q) {
        CHECK_EQ(errno, ENOMEM);
        return CF_ENOMEM;
    }
    /* The first put allocates the storage, and may fail too. */
    int rc = put(q, 1, 0);
    if (rc == 0)
        CHECK_EQ(get_ok(q), 1);
    else
        CHECK_EQ(rc, CF_ENOMEM);
    cf_queue_free(q);
    return rc;
}

typedef struct grow_ctx {
    cf_queue *q;
    intptr_t next;
} grow_ctx;

static int put_op(void *ctx)
{
    grow_ctx *g = ctx;
    size_t before = cf_queue_size(g->q);
    int rc = put(g->q, g->next, 0);
    if (rc == CF_ENOMEM) {
        CHECK_EQ(cf_queue_size(g->q), before); /* unchanged */
        return rc;
    }
    CHECK_EQ(rc, 0);
    g->next++;
    return 0;
}

static void queue_enomem(void)
{
    oom_install();
    long live = oom_live_count();
    for (int o = 0; o < 3; o++) {
        cf_queue_order order = orders[o];
        CHECK(oom_sweep(new_queue_op, NULL, &order) >= 2);
    }
    CHECK_EQ(oom_live_count(), live);

    /* Put growth: each put is driven through its allocation failure (if
     * it allocates); a failed put leaves the queue as it was. */
    for (int o = 0; o < 3; o++) {
        for (int bounded = 0; bounded < 2; bounded++) {
            size_t maxsize = bounded ? 50 : 0;
            grow_ctx g = { cf_queue_new(maxsize, orders[o], cmp_int), 0 };
            /* Wrap the FIFO ring first: 3 in, 2 out. */
            CHECK_EQ(put(g.q, -3, 0), 0);
            CHECK_EQ(put(g.q, -2, 0), 0);
            CHECK_EQ(put(g.q, -1, 0), 0);
            intptr_t first = get_ok(g.q), second = get_ok(g.q);
            int failures = 0;
            while (g.next < 49)
                failures += oom_sweep(put_op, NULL, &g);
            CHECK(failures >= 3);
            CHECK(bounded ? cf_queue_full(g.q) : !cf_queue_full(g.q));
            /* Everything is there, in order. */
            if (orders[o] == CF_FIFO) {
                CHECK_EQ(first, -3);
                CHECK_EQ(second, -2);
                CHECK_EQ(get_ok(g.q), -1);
                for (intptr_t i = 0; i < 49; i++)
                    CHECK_EQ(get_ok(g.q), i);
            } else if (orders[o] == CF_LIFO) {
                CHECK_EQ(first, -1);
                CHECK_EQ(second, -2);
                for (intptr_t i = 48; i >= 0; i--)
                    CHECK_EQ(get_ok(g.q), i);
                CHECK_EQ(get_ok(g.q), -3);
            } else {
                CHECK_EQ(first, -3);
                CHECK_EQ(second, -2);
                CHECK_EQ(get_ok(g.q), -1);
                for (intptr_t i = 0; i < 49; i++)
                    CHECK_EQ(get_ok(g.q), i);
            }
            CHECK(cf_queue_empty(g.q));
            cf_queue_free(g.q);
        }
    }
    CHECK_EQ(oom_live_count(), live);
    /* Bad input is reported before any allocation. */
    oom_fail_at(0);
    errno = 0;
    CHECK(cf_queue_new(0, CF_PRIORITY, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    oom_fail_at(-1);
}

static const test_case cases[] = {
    TEST_CASE(queue_basic),
    TEST_CASE(queue_join),
    TEST_CASE(queue_task_done),
    TEST_CASE(queue_nowait),
    TEST_CASE(queue_negative_timeout),
    TEST_CASE(queue_timeouts),
    TEST_CASE(queue_priority_stable),
    TEST_CASE(queue_priority_random),
    TEST_CASE(queue_fifo_lifo_large),
    TEST_CASE(queue_sizes),
    TEST_CASE(queue_null_items),
    TEST_CASE(queue_bounded_contention),
    TEST_CASE(queue_order_one_feeder),
    TEST_CASE(queue_many_threads),
    TEST_CASE(queue_many_threads_nonblock),
    TEST_CASE(queue_many_threads_timeout),
    TEST_CASE(queue_shutdown_empty),
    TEST_CASE(queue_shutdown_nonempty),
    TEST_CASE(queue_shutdown_immediate),
    TEST_CASE(queue_shutdown_transitions),
    TEST_CASE(queue_shutdown_all_methods_in_one_thread),
    TEST_CASE(queue_shutdown_immediate_all_methods_in_one_thread),
    TEST_CASE(queue_shutdown_all_methods_in_many_threads),
    TEST_CASE(queue_shutdown_immediate_all_methods_in_many_threads),
    TEST_CASE(queue_shutdown_get),
    TEST_CASE(queue_shutdown_immediate_get),
    TEST_CASE(queue_shutdown_put),
    TEST_CASE(queue_shutdown_immediate_put),
    TEST_CASE(queue_shutdown_join),
    TEST_CASE(queue_shutdown_immediate_join),
    TEST_CASE(queue_shutdown_put_join),
    TEST_CASE(queue_shutdown_immediate_put_join),
    TEST_CASE(queue_shutdown_get_task_done_join),
    TEST_CASE(queue_shutdown_pending),
    TEST_CASE(queue_shutdown_immediate_in_flight),
    TEST_CASE(queue_bad_input),
    TEST_CASE(queue_enomem),
};

TEST_MAIN(cases)
