/* SPDX-License-Identifier: MIT */
/*
 * test_options.c - cf_options and cf_stats as an ABI: the reserved tails
 * that later fields are carved from. Every pool constructor refuses options
 * whose reserved bytes are not zero (a field that this library predates),
 * accepts a zero tail, and every engine writes its stats' tail as zero.
 * (The MPI pool's constructor makes the same check, through the same
 * function; tests/mpi exercises that pool.)
 */
#include "harness.h"

#include <stddef.h>

#define RESERVED_WORDS(s) (sizeof(s).reserved_ / sizeof(s).reserved_[0])

/* The tail ends each struct, so carving a field from it keeps sizeof. */
_Static_assert(offsetof(cf_options, reserved_) +
                       sizeof(((cf_options *)0)->reserved_) ==
                   sizeof(cf_options),
               "cf_options ends with its reserved tail");
_Static_assert(offsetof(cf_stats, reserved_) +
                       sizeof(((cf_stats *)0)->reserved_) ==
                   sizeof(cf_stats),
               "cf_stats ends with its reserved tail");

typedef cf_executor *(*pool_ctor)(const cf_options *);

static void *twice(void *arg)
{
    return (void *)(2 * (long)arg);
}

/* Each word of the tail, with a low and a high bit set, is refused. */
static void refuses_a_nonzero_tail(pool_ctor ctor)
{
    cf_options o = { .max_workers = 1 };
    for (size_t i = 0; i < RESERVED_WORDS(o); i++) {
        const uint64_t bits[] = { 1, UINT64_C(1) << 63 };
        for (size_t b = 0; b < 2; b++) {
            o.reserved_[i] = bits[b];
            errno = 0;
            cf_executor *ex = ctor(&o);
            CHECK(ex == NULL);
            CHECK(errno == EINVAL);
            if (ex)
                cf_executor_free(ex);
            o.reserved_[i] = 0;
        }
    }
}

static void thread_pool_refuses_a_nonzero_tail(void)
{
    refuses_a_nonzero_tail(cf_thread_pool_new);
}

static void process_pool_refuses_a_nonzero_tail(void)
{
    refuses_a_nonzero_tail(cf_process_pool_new);
}

static void negative_max_workers_is_einval(void)
{
    cf_options o = { .max_workers = -1 };
    errno = 0;
    CHECK(cf_thread_pool_new(&o) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(cf_process_pool_new(&o) == NULL && errno == EINVAL);
}

/* idle_timeout and task_timeout are seconds, 0 meaning never: NaN and
 * negative values are refused by every pool kind (they are not "forever"
 * here, as a negative wait timeout is); +inf and huge values mean never. */
static void bad_timeouts_are_einval(void)
{
    const double bad[] = { NAN, -NAN, -1.0, -1e-9, -INFINITY };
    pool_ctor ctors[] = { cf_thread_pool_new, cf_process_pool_new };
    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            cf_options o = { .max_workers = 1, .idle_timeout = bad[i] };
            errno = 0;
            CHECK(ctors[c](&o) == NULL && errno == EINVAL);
            o = (cf_options){ .max_workers = 1, .task_timeout = bad[i] };
            errno = 0;
            CHECK(ctors[c](&o) == NULL && errno == EINVAL);
        }
    }
    const double fine[] = { 1e-9, 1e300, INFINITY };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        cf_options o = { .max_workers = 1, .idle_timeout = fine[i] };
        cf_executor *ex = cf_thread_pool_new(&o);
        CHECK(ex != NULL);
        cf_future *f;
        void *r = NULL;
        CHECK_EQ(cf_submit(ex, twice, (void *)21L, &f), 0);
        CHECK_EQ(cf_future_result(f, 30.0, &r), 0);
        CHECK_EQ((long)r, 42);
        cf_future_release(f);
        cf_executor_free(ex);
    }
}

/* Options as a program fills them field by field, the tail zeroed by the
 * initializer: the pool works. */
static void zero_tail_is_accepted(void)
{
    cf_options o = { 0 };
    o.max_workers = 2;
    o.name_prefix = "opt";
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    cf_future *f;
    void *result = NULL;
    CHECK(cf_submit(ex, twice, (void *)21L, &f) == 0);
    CHECK(cf_future_result(f, CF_FOREVER, &result) == 0);
    CHECK((long)result == 42);
    cf_future_release(f);
    cf_executor_free(ex);

    cf_executor *pp = cf_process_pool_new(&o);
    CHECK(pp != NULL);
    cf_executor_free(pp);
}

/* Whatever the caller's struct held, every engine writes the tail zero. */
static void check_stats_tail(cf_executor *ex)
{
    cf_stats st;
    memset(&st, 0xa5, sizeof st);
    CHECK(cf_executor_stats(ex, &st) == 0);
    for (size_t i = 0; i < RESERVED_WORDS(st); i++)
        CHECK(st.reserved_[i] == 0);
}

static void stats_tail_is_written_zero(void)
{
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    check_stats_tail(ex);
    cf_executor_free(ex);
    cf_executor *pp = cf_process_pool_new(NULL);
    CHECK(pp != NULL);
    check_stats_tail(pp);
    cf_executor_free(pp);
}

static const test_case cases[] = {
    TEST_CASE(thread_pool_refuses_a_nonzero_tail),
    TEST_CASE(process_pool_refuses_a_nonzero_tail),
    TEST_CASE(negative_max_workers_is_einval),
    TEST_CASE(bad_timeouts_are_einval),
    TEST_CASE(zero_tail_is_accepted),
    TEST_CASE(stats_tail_is_written_zero),
};

TEST_MAIN(cases)
