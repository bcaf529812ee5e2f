/* SPDX-License-Identifier: MIT */
/*
 * test_cache.c - the per-thread caches that futures are carved from
 * (src/platform/cache.c): a freed future comes back fresh, memory is reused
 * after a burst instead of growing, futures cross threads, exited threads
 * leave their memory to the next, and a replaced allocator sees every one.
 */
#include "harness.h"

/* A field of /proc/self/status (VmRSS, VmSize) in bytes; -1 if absent. */
static long long status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = atoll(line + n + 1);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* Makes n futures, finishes every other one (half with a failure), and
 * releases them all. */
static void burst(long n)
{
    cf_future **fs = malloc(sizeof *fs * (size_t)n);
    CHECK(fs != NULL);
    for (long i = 0; i < n; i++) {
        fs[i] = cf_future_new();
        CHECK(fs[i] != NULL);
        CHECK(!cf_future_done(fs[i]));
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
        burst(5000);
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

/* After a burst, the next bursts of the same size reuse its memory. */
static void cache_burst_memory_is_reused(void)
{
    const long n = 200000; /* about 20 MB of futures */
    burst(n);
    long long rss1 = status_bytes("VmRSS");
    CHECK(rss1 > 0);
    for (int i = 0; i < 4; i++)
        burst(n);
    long long rss5 = status_bytes("VmRSS");
    if (rss5 > rss1 + (4 << 20))
        fprintf(stderr, "VmRSS grew from %lld to %lld\n", rss1, rss5);
    CHECK(rss5 <= rss1 + (4 << 20));
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

/* Futures made by one thread and freed by others: memory stays bounded
 * over many rounds. */
static void cache_cross_thread(void)
{
    enum { THREADS = 3, PER = 20000 };
    long long rss1 = 0;
    for (int round = 0; round < 6; round++) {
        cf_queue *q = cf_queue_new(1024, CF_FIFO, NULL);
        CHECK(q != NULL);
        handoff h = { q, PER };
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, releaser, &h), 0);
        for (long i = 0; i < (long)THREADS * PER; i++) {
            cf_future *f = cf_future_new();
            CHECK(f != NULL);
            CHECK_EQ(cf_queue_put(q, f, CF_FOREVER), 0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        cf_queue_free(q);
        if (round == 1)
            rss1 = status_bytes("VmRSS");
    }
    long long rss = status_bytes("VmRSS");
    if (rss > rss1 + (4 << 20))
        fprintf(stderr, "VmRSS grew from %lld to %lld\n", rss1, rss);
    CHECK(rss <= rss1 + (4 << 20));
}

static void *few_futures(void *arg)
{
    (void)arg;
    cf_future *fs[10];
    for (int i = 0; i < 10; i++) {
        fs[i] = cf_future_new();
        CHECK(fs[i] != NULL);
    }
    for (int i = 0; i < 10; i++)
        cf_future_release(fs[i]);
    return NULL;
}

/* Short-lived threads: each leaves what it did not use to the next, so the
 * address space does not grow with the number of threads. */
static void cache_thread_churn(void)
{
    long long vm1 = 0;
    for (int i = 0; i < 300; i++) {
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, few_futures, NULL), 0);
        pthread_join(t, NULL);
        if (i == 19)
            vm1 = status_bytes("VmSize");
    }
    long long vm = status_bytes("VmSize");
    if (vm > vm1 + (4 << 20))
        fprintf(stderr, "VmSize grew from %lld to %lld\n", vm1, vm);
    CHECK(vm <= vm1 + (4 << 20));
}

/* A replaced allocator sees every future made and freed, even once the
 * caches hold memory. */
static void cache_replaced_allocator_sees_all(void)
{
    burst(1000); /* the libc caches now hold blocks */
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
    burst(1000);
}

static const test_case cases[] = {
    TEST_CASE(cache_reuse_is_fresh),
    TEST_CASE(cache_burst_memory_is_reused),
    TEST_CASE(cache_cross_thread),
    TEST_CASE(cache_thread_churn),
    TEST_CASE(cache_replaced_allocator_sees_all),
};

TEST_MAIN(cases)
