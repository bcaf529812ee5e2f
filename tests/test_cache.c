/* SPDX-License-Identifier: MIT */
/*
 * test_cache.c - the per-thread caches that futures are carved from
 * (src/platform/cache.c): a freed future comes back fresh, memory is reused
 * after a burst instead of growing, futures cross threads, exited threads
 * leave their memory to the next, and a replaced allocator sees every one.
 */
#include "harness.h"

#include <stdint.h>

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Addresses of futures, to tell reused memory from new memory without
 * reading the process's size (which sanitizers' own memory blurs). */
typedef struct addr_set {
    uintptr_t *v;
    size_t n, cap;
} addr_set;

static void addr_add(addr_set *s, const void *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        CHECK(s->v != NULL);
    }
    s->v[s->n++] = (uintptr_t)p;
}

/* Sorts s and drops repeats: then s->n is the number of distinct ones. */
static void addr_unique(addr_set *s)
{
    qsort(s->v, s->n, sizeof *s->v, cmp_addr);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (k == 0 || s->v[k - 1] != s->v[i])
            s->v[k++] = s->v[i];
    s->n = k;
}

/* How many of the addresses in t are not in the unique set s. */
static size_t addr_outside(const addr_set *s, const addr_set *t)
{
    size_t out = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!bsearch(&t->v[i], s->v, s->n, sizeof *s->v, cmp_addr))
            out++;
    return out;
}

/* Makes n futures (their addresses go to seen, if given), finishes every
 * other one (half of those with a failure), and releases them all. */
static void burst(long n, addr_set *seen)
{
    cf_future **fs = malloc(sizeof *fs * (size_t)n);
    CHECK(fs != NULL);
    for (long i = 0; i < n; i++) {
        fs[i] = cf_future_new();
        CHECK(fs[i] != NULL);
        CHECK(!cf_future_done(fs[i]));
        if (seen)
            addr_add(seen, fs[i]);
        if (i % 4 == 1)
            CHECK_EQ(cf_future_set_result(fs[i], fs[i]), 0);
        if (i % 4 == 3)
            CHECK_EQ(cf_future_set_exception(fs[i], CF_EINVAL, "used"), 0);
    }
    for (long i = 0; i < n; i++)
        cf_future_release(fs[i]);
    free(fs);
}

/* A reused future is as fresh as a new one: pending, no result, no
 * failure, no callbacks. */
static void cache_reuse_is_fresh(void)
{
    for (int round = 0; round < 3; round++) {
        burst(5000, NULL);
        for (int i = 0; i < 5000; i++) {
            cf_future *f = cf_future_new();
            CHECK(f != NULL);
            CHECK(!cf_future_done(f));
            void *r = &r;
            CHECK_EQ(cf_future_result(f, 0, &r), CF_ETIMEDOUT);
            CHECK_EQ(cf_future_set_result(f, NULL), 0);
            r = &r;
            CHECK_EQ(cf_future_result(f, 0, &r), 0);
            CHECK(r == NULL);
            const char *m = "x";
            CHECK_EQ(cf_future_exception(f, 0, &m), 0);
            cf_future_release(f);
        }
    }
}

/* After a burst, the next bursts of the same size reuse its memory: every
 * future they make sits where one of the first burst's did. */
static void cache_burst_memory_is_reused(void)
{
    const long n = 200000; /* about 20 MB of futures */
    addr_set first = { 0 }, later = { 0 };
    burst(n, &first);
    addr_unique(&first);
    CHECK_EQ(first.n, n);
    for (int i = 0; i < 4; i++)
        burst(n, &later);
    size_t out = addr_outside(&first, &later);
    if (out)
        fprintf(stderr, "%zu of %zu futures in new memory\n", out, later.n);
    CHECK_EQ(out, 0);
    free(first.v);
    free(later.v);
}

typedef struct handoff {
    cf_queue *q;
    long n;
} handoff;

/* Releases the futures another thread made, so they pile up here and flow
 * back through the shared depot. */
static void *releaser(void *arg)
{
    handoff *h = arg;
    for (long i = 0; i < h->n; i++) {
        void *f;
        CHECK_EQ(cf_queue_get(h->q, &f, CF_FOREVER), 0);
        CHECK(!cf_future_done(f));
        cf_future_release(f);
    }
    return NULL;
}

/* Futures made by one thread and freed by others, 300,000 in all with at
 * most about 2,000 alive at once (the queue holds 1,024, each thread's
 * cache up to 256): the memory handed back through the depot serves the
 * rest, so only a few thousand distinct futures are ever made. */
static void cache_cross_thread(void)
{
    enum { THREADS = 3, PER = 20000 };
    addr_set seen = { 0 };
    for (int round = 0; round < 5; round++) {
        cf_queue *q = cf_queue_new(1024, CF_FIFO, NULL);
        CHECK(q != NULL);
        handoff h = { q, PER };
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, releaser, &h), 0);
        for (long i = 0; i < (long)THREADS * PER; i++) {
            cf_future *f = cf_future_new();
            CHECK(f != NULL);
            addr_add(&seen, f);
            CHECK_EQ(cf_queue_put(q, f, CF_FOREVER), 0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        cf_queue_free(q);
    }
    CHECK_EQ(seen.n, 5 * THREADS * PER);
    addr_unique(&seen);
    if (seen.n > 8192)
        fprintf(stderr, "%zu distinct futures\n", seen.n);
    CHECK(seen.n <= 8192);
    free(seen.v);
}

static addr_set churn_seen;

/* Makes 10 futures; keeps them in arg if given, else releases them. */
static void *few_futures(void *arg)
{
    cf_future **keep = arg, *fs[10];
    for (int i = 0; i < 10; i++) {
        fs[i] = cf_future_new();
        CHECK(fs[i] != NULL);
        addr_add(&churn_seen, fs[i]); /* threads run one at a time */
        if (keep)
            keep[i] = fs[i];
    }
    if (!keep)
        for (int i = 0; i < 10; i++)
            cf_future_release(fs[i]);
    return NULL;
}

/* Short-lived threads, one after another: each leaves its futures to the
 * next, so 300 threads of 10 futures use no more memory than one. */
static void cache_thread_churn(void)
{
    for (int i = 0; i < 300; i++) {
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, few_futures, NULL), 0);
        pthread_join(t, NULL);
    }
    CHECK_EQ(churn_seen.n, 3000);
    addr_unique(&churn_seen);
    if (churn_seen.n > 10)
        fprintf(stderr, "%zu distinct futures\n", churn_seen.n);
    CHECK(churn_seen.n <= 10);
    churn_seen.n = 0;

    /* Kept futures cannot be reused: then each thread carves on from where
     * the last one stopped, instead of starting a region of its own. */
    enum { KEPT = 300 * 10 };
    cf_future **kept = malloc(sizeof *kept * KEPT);
    CHECK(kept != NULL);
    for (int i = 0; i < 300; i++) {
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, few_futures, kept + 10 * i), 0);
        pthread_join(t, NULL);
    }
    for (size_t i = 0; i < churn_seen.n; i++)
        churn_seen.v[i] >>= 16; /* the 64 KiB region it lies in */
    addr_unique(&churn_seen);
    if (churn_seen.n > 16)
        fprintf(stderr, "futures spread over %zu regions\n", churn_seen.n);
    CHECK(churn_seen.n <= 16);
    for (int i = 0; i < KEPT; i++)
        cf_future_release(kept[i]);
    free(kept);
    free(churn_seen.v);
}

static pthread_key_t late_key;

static void release_late(void *f)
{
    cf_future_release(f);
}

/* Keeps a future for a thread-exit destructor of its own to release. */
static void *keep_until_exit(void *out)
{
    cf_future *f = cf_future_new();
    CHECK(f != NULL);
    *(cf_future **)out = f;
    CHECK_EQ(pthread_setspecific(late_key, f), 0);
    return NULL;
}

static void *make_one(void *out)
{
    cf_future *f = cf_future_new();
    CHECK(f != NULL);
    *(cf_future **)out = f;
    cf_future_release(f);
    return NULL;
}

/* A future freed by another thread-exit destructor, after the cache's own
 * has run, still goes back for reuse: the next thread gets it. */
static void cache_free_in_late_destructor(void)
{
    burst(10, NULL); /* the cache's key exists before late_key */
    CHECK_EQ(pthread_key_create(&late_key, release_late), 0);
    cf_future *kept = NULL, *next = NULL;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, keep_until_exit, &kept), 0);
    pthread_join(t, NULL);
    CHECK_EQ(pthread_create(&t, NULL, make_one, &next), 0);
    pthread_join(t, NULL);
    CHECK(kept != NULL && next == kept);
    pthread_key_delete(late_key);
}

/* A replaced allocator sees every future made and freed, even once the
 * caches hold memory. */
static void cache_replaced_allocator_sees_all(void)
{
    burst(1000, NULL); /* the libc caches now hold blocks */
    oom_install();
    long live0 = oom_live_count();
    cf_future *fs[100];
    for (int i = 0; i < 100; i++) {
        fs[i] = cf_future_new();
        CHECK(fs[i] != NULL);
    }
    CHECK_EQ(oom_live_count(), live0 + 100);
    oom_fail_at(0);
    errno = 0;
    CHECK(cf_future_new() == NULL);
    CHECK_EQ(errno, ENOMEM);
    oom_fail_at(-1);
    for (int i = 0; i < 100; i++)
        cf_future_release(fs[i]);
    CHECK_EQ(oom_live_count(), live0);
    cf_replace_allocator(NULL, NULL, NULL, NULL);
    burst(1000, NULL);
}

static const test_case cases[] = {
    TEST_CASE(cache_reuse_is_fresh),
    TEST_CASE(cache_burst_memory_is_reused),
    TEST_CASE(cache_cross_thread),
    TEST_CASE(cache_thread_churn),
    TEST_CASE(cache_free_in_late_destructor),
    TEST_CASE(cache_replaced_allocator_sees_all),
};

TEST_MAIN(cases)
