/* SPDX-License-Identifier: MIT */
/*
 * test_thread.c - cf_thread (start, join with a timeout, names, detached
 * threads, stack size), plus the small process-wide helpers that live next
 * to it: cf_strerror, cf_cpu_count, cf_replace_allocator, cf_fail outside a
 * task. Cases mirror CPython's Lib/test/test_threading.py where one applies.
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>

/* ---- a gate: plain pthreads, so the tests do not lean on cfutures' own
 * sync objects */
/* ---- bodies */

static void *add_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

static gate g_release = GATE_INIT;

static void *wait_gate_return_arg(void *arg)
{
    gate_wait(&g_release);
    return arg;
}

static void *sleep_then_return(void *arg)
{
    sleep_s(0.1);
    return arg;
}

/* ---- start and join */

/* test_threading: test_various_ops (start, join, result). */
static void start_join_passes_result(void)
{
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, add_one, (void *)41, NULL), 0);
    CHECK(t != NULL);
    void *res = NULL;
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
    CHECK_EQ((uintptr_t)res, 42);
}

static void join_result_null_accepted(void)
{
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, add_one, (void *)1, NULL), 0);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, NULL), 0);
}

/* Many threads at once, each with its own argument and result. */
static void many_threads_each_own_result(void)
{
    enum { N = 64 };
    cf_thread *ts[N];
    for (uintptr_t i = 0; i < N; i++)
        CHECK_EQ(cf_thread_start(&ts[i], add_one, (void *)(i * 10), NULL), 0);
    for (uintptr_t i = 0; i < N; i++) {
        void *res = NULL;
        CHECK_EQ(cf_thread_join(ts[i], 5.0, &res), 0);
        CHECK_EQ((uintptr_t)res, i * 10 + 1);
    }
}

/* test_threading: test_join_nondaemon_on_shutdown / join with timeout:
 * a timed-out join leaves the thread joinable. */
static void join_timeout_leaves_joinable(void)
{
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, wait_gate_return_arg, (void *)7, NULL), 0);
    int rc = 0;
    CHECK_TIME(rc = cf_thread_join(t, 0.1, NULL), 0.09, 3.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    CHECK(cf_thread_is_alive(t));
    /* still a valid handle */
    CHECK(cf_thread_name(t) != NULL);
    /* a poll never blocks */
    CHECK_TIME(rc = cf_thread_join(t, 0, NULL), 0, 1.0);
    CHECK_EQ(rc, CF_ETIMEDOUT);
    gate_open(&g_release);
    void *res = NULL;
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
    CHECK_EQ((uintptr_t)res, 7);
}

/* A join whose timeout is longer than the thread's life returns when the
 * thread ends, not at the timeout. */
static void join_returns_when_thread_ends(void)
{
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, sleep_then_return, (void *)3, NULL), 0);
    void *res = NULL;
    int rc = 1;
    CHECK_TIME(rc = cf_thread_join(t, 20.0, &res), 0.05, 5.0);
    CHECK_EQ(rc, 0);
    CHECK_EQ((uintptr_t)res, 3);
}

/* Any negative timeout waits forever, as CF_FOREVER does. */
static void join_negative_timeout_waits(void)
{
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, sleep_then_return, (void *)5, NULL), 0);
    void *res = NULL;
    CHECK_EQ(cf_thread_join(t, -42.5, &res), 0);
    CHECK_EQ((uintptr_t)res, 5);
}

static void join_nan_is_einval(void)
{
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, wait_gate_return_arg, (void *)9, NULL), 0);
    CHECK_EQ(cf_thread_join(t, NAN, NULL), CF_EINVAL);
    CHECK(cf_thread_is_alive(t));
    gate_open(&g_release);
    void *res = NULL;
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
    CHECK_EQ((uintptr_t)res, 9);
}

/* test_threading: test_joining_current_thread (RuntimeError there). */
static cf_thread *_Atomic self_handle;
static atomic_int self_join_rc;
static void *join_self(void *arg)
{
    (void)arg;
    gate_wait(&g_release);
    atomic_store(&self_join_rc,
                 cf_thread_join(atomic_load(&self_handle), 1.0, NULL));
    return (void *)1;
}

static void join_self_is_edeadlk(void)
{
    cf_thread *t;
    atomic_store(&self_join_rc, 12345);
    CHECK_EQ(cf_thread_start(&t, join_self, NULL, NULL), 0);
    atomic_store(&self_handle, t);
    gate_open(&g_release);
    void *res = NULL;
    CHECK_EQ(cf_thread_join(t, 10.0, &res), 0);
    CHECK_EQ((uintptr_t)res, 1);
    CHECK_EQ(atomic_load(&self_join_rc), CF_EDEADLK);
}

/* test_threading: test_is_alive_after_fork / test_various_ops (is_alive). */
static void is_alive_until_fn_returns(void)
{
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, wait_gate_return_arg, NULL, NULL), 0);
    CHECK(cf_thread_is_alive(t));
    sleep_s(0.05);
    CHECK(cf_thread_is_alive(t));
    gate_open(&g_release);
    WAIT_UNTIL(!cf_thread_is_alive(t), 5.0);
    CHECK(!cf_thread_is_alive(t));
    CHECK_EQ(cf_thread_join(t, 0, NULL), 0);
}

/* ---- names */

static char seen_name[64];
static void *record_current_name(void *arg)
{
    (void)arg;
    const char *n = cf_thread_current_name();
    if (n)
        snprintf(seen_name, sizeof seen_name, "%s", n);
    return (void *)(uintptr_t)(n ? 1 : 0);
}

/* test_threading: test_name (explicit name). */
static void name_given_is_copied(void)
{
    char buf[32] = "worker-alpha";
    cf_thread_options o = { .name = buf };
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, wait_gate_return_arg, NULL, &o), 0);
    memset(buf, 'x', sizeof buf - 1); /* the thread keeps its own copy */
    CHECK(strcmp(cf_thread_name(t), "worker-alpha") == 0);
    gate_open(&g_release);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, NULL), 0);
}

static void current_name_inside_thread(void)
{
    cf_thread_options o = { .name = "the-named-one" };
    cf_thread *t;
    void *res = NULL;
    CHECK_EQ(cf_thread_start(&t, record_current_name, NULL, &o), 0);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
    CHECK_EQ((uintptr_t)res, 1);
    CHECK(strcmp(seen_name, "the-named-one") == 0);
}

static bool parse_thread_n(const char *name, unsigned long *n)
{
    if (!name || strncmp(name, "Thread-", 7) != 0)
        return false;
    const char *p = name + 7;
    if (*p < '1' || *p > '9')
        return false;
    char *end;
    *n = strtoul(p, &end, 10);
    return *end == '\0';
}

/* test_threading: test_default_names ("Thread-N", N counting up). */
static void default_names_thread_n(void)
{
    cf_thread *a, *b;
    CHECK_EQ(cf_thread_start(&a, wait_gate_return_arg, NULL, NULL), 0);
    CHECK_EQ(cf_thread_start(&b, record_current_name, NULL, NULL), 0);
    unsigned long na = 0, nb = 0;
    CHECK(parse_thread_n(cf_thread_name(a), &na));
    CHECK(parse_thread_n(cf_thread_name(b), &nb));
    CHECK(nb > na);
    /* options with a NULL name also give the default */
    cf_thread_options o = { .name = NULL };
    cf_thread *c;
    CHECK_EQ(cf_thread_start(&c, add_one, NULL, &o), 0);
    unsigned long nc = 0;
    CHECK(parse_thread_n(cf_thread_name(c), &nc));
    CHECK(nc > nb);
    CHECK_EQ(cf_thread_join(b, CF_FOREVER, NULL), 0);
    /* the name seen inside the thread is the handle's name */
    unsigned long ns = 0;
    CHECK(parse_thread_n(seen_name, &ns));
    CHECK_EQ(ns, nb);
    gate_open(&g_release);
    CHECK_EQ(cf_thread_join(a, CF_FOREVER, NULL), 0);
    CHECK_EQ(cf_thread_join(c, CF_FOREVER, NULL), 0);
}

/* test_threading: main_thread().name == "MainThread". */
static void main_thread_name(void)
{
    const char *n = cf_thread_current_name();
    CHECK(n != NULL);
    CHECK(strcmp(n, "MainThread") == 0);
}

/* test_threading: test_dummy_thread (threads not started by the library). */
static void *raw_pthread_name(void *arg)
{
    (void)arg;
    const char *n = cf_thread_current_name();
    if (n)
        snprintf(seen_name, sizeof seen_name, "%s", n);
    return NULL;
}

static void foreign_thread_is_dummy(void)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, raw_pthread_name, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(strncmp(seen_name, "Dummy-", 6) == 0);
    CHECK(strlen(seen_name) > 6);
}

/* A cf_thread started from inside another cf_thread has its own name. */
static void *start_inner(void *arg)
{
    (void)arg;
    cf_thread_options o = { .name = "inner" };
    cf_thread *t;
    if (cf_thread_start(&t, record_current_name, NULL, &o) != 0)
        return NULL;
    if (cf_thread_join(t, 10.0, NULL) != 0)
        return NULL;
    /* our own name is unchanged */
    return (void *)(uintptr_t)(strcmp(cf_thread_current_name(), "outer") == 0);
}

static void nested_thread_names(void)
{
    cf_thread_options o = { .name = "outer" };
    cf_thread *t;
    void *res = NULL;
    CHECK_EQ(cf_thread_start(&t, start_inner, NULL, &o), 0);
    CHECK_EQ(cf_thread_join(t, 10.0, &res), 0);
    CHECK_EQ((uintptr_t)res, 1);
    CHECK(strcmp(seen_name, "inner") == 0);
    CHECK(strcmp(cf_thread_current_name(), "MainThread") == 0);
}

/* ---- detached threads (Python's daemon threads are the closest thing) */

static atomic_int detached_ran;
static void *mark_ran(void *arg)
{
    atomic_fetch_add(&detached_ran, (int)(uintptr_t)arg);
    return NULL;
}

static void detached_runs_and_frees_itself(void)
{
    oom_install();
    long live0 = oom_live_count();
    cf_thread_options o = { .detached = true, .name = "loner" };
    cf_thread *t = (cf_thread *)&t; /* must be overwritten with NULL */
    CHECK_EQ(cf_thread_start(&t, mark_ran, (void *)1, &o), 0);
    CHECK(t == NULL);
    /* t itself may be NULL for a detached thread */
    CHECK_EQ(cf_thread_start(NULL, mark_ran, (void *)2, &o), 0);
    WAIT_UNTIL(atomic_load(&detached_ran) == 3, 5.0);
    CHECK_EQ(atomic_load(&detached_ran), 3);
    /* each detached thread frees its own record once fn returns */
    WAIT_UNTIL(oom_live_count() == live0, 5.0);
    CHECK_EQ(oom_live_count(), live0);
}

/* ---- bad input */

static void bad_input(void)
{
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, NULL, NULL, NULL), CF_EINVAL);
    CHECK(t == NULL);
    /* a joinable thread needs somewhere to put its handle */
    CHECK_EQ(cf_thread_start(NULL, add_one, NULL, NULL), CF_EINVAL);
    cf_thread_options o = { .detached = false };
    CHECK_EQ(cf_thread_start(NULL, add_one, NULL, &o), CF_EINVAL);
    CHECK_EQ(cf_thread_join(NULL, 0, NULL), CF_EINVAL);
    CHECK_EQ(cf_thread_join(NULL, CF_FOREVER, NULL), CF_EINVAL);
}

/* ---- stack size */

static void *report_stack_size(void *arg)
{
    (void)arg;
    pthread_attr_t a;
    size_t sz = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstacksize(&a, &sz);
        pthread_attr_destroy(&a);
    }
    return (void *)(uintptr_t)sz;
}

/* test_threading: test_stack_size (threading.stack_size). */
static void stack_size_is_used(void)
{
    size_t sizes[] = { 512 * 1024, 24 * 1024 * 1024 };
    for (size_t i = 0; i < 2; i++) {
        cf_thread_options o = { .stack_size = sizes[i] };
        cf_thread *t;
        void *res = NULL;
        CHECK_EQ(cf_thread_start(&t, report_stack_size, NULL, &o), 0);
        CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
        size_t got = (size_t)(uintptr_t)res;
        CHECK(got >= sizes[i]);
        CHECK(got < 2 * sizes[i]);
    }
}

static void stack_size_too_small_is_einval(void)
{
    cf_thread_options o = { .stack_size = 16 };
    cf_thread *t = NULL;
    CHECK_EQ(cf_thread_start(&t, add_one, NULL, &o), CF_EINVAL);
    CHECK(t == NULL);
}

/* ---- ENOMEM */

static int start_join_op(void *ctx)
{
    (void)ctx;
    cf_thread_options o = { .name = "oom-thread" };
    cf_thread *t = NULL;
    int rc = cf_thread_start(&t, add_one, (void *)1, &o);
    if (rc != 0)
        return rc;
    void *res = NULL;
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
    CHECK_EQ((uintptr_t)res, 2);
    return 0;
}

static void start_enomem_sweep(void)
{
    oom_install();
    long live0 = oom_live_count();
    int points = oom_sweep(start_join_op, NULL, NULL);
    CHECK(points >= 1); /* the record at least goes through the hook */
    CHECK_EQ(oom_live_count(), live0);
    /* default names take the same path */
    cf_thread *t;
    oom_fail_at(0);
    CHECK_EQ(cf_thread_start(&t, add_one, NULL, NULL), CF_ENOMEM);
    oom_fail_at(1);
    CHECK_EQ(cf_thread_start(&t, add_one, NULL, NULL), CF_ENOMEM);
    oom_fail_at(-1);
    CHECK_EQ(oom_live_count(), live0);
}

/* ---- errors, CPUs, allocator */

static void strerror_every_code(void)
{
    const int codes[] = { CF_OK,        CF_EPERM,     CF_ENOMEM,
                          CF_EINVAL,    CF_EDEADLK,   CF_ETIME,
                          CF_EOVERFLOW, CF_ESHUTDOWN, CF_ETIMEDOUT,
                          CF_ECANCELED, CF_EBROKEN,   CF_EOF };
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = cf_strerror(codes[i]);
        CHECK(s != NULL);
        CHECK(strlen(s) > 0);
        if (codes[i] != CF_OK)
            CHECK(codes[i] < 0);
        for (size_t j = 0; j < i; j++) {
            CHECK(codes[i] != codes[j]);
            CHECK(strcmp(s, cf_strerror(codes[j])) != 0);
        }
    }
    /* stable: the same static text every time */
    CHECK(cf_strerror(CF_EINVAL) == cf_strerror(CF_EINVAL));
}

static void strerror_other_negative_codes(void)
{
    const int errs[] = { ENOENT, EAGAIN, EBADF, ECONNREFUSED, ENOSPC };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char expect[256];
        snprintf(expect, sizeof expect, "%s", strerror(errs[i]));
        const char *s = cf_strerror(-errs[i]);
        CHECK(s != NULL);
        CHECK(strcmp(s, expect) == 0);
    }
    /* codes that are neither ours nor errno values still get some text */
    CHECK(cf_strerror(-100000) != NULL);
    CHECK(cf_strerror(12345) != NULL);
}

static void cpu_count_sane(void)
{
    int n = cf_cpu_count();
    CHECK(n >= 1);
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    if (conf > 0)
        CHECK(n <= conf);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        CHECK_EQ(n, CPU_COUNT(&set));
}

static void replace_allocator_partial_is_einval(void)
{
    CHECK_EQ(cf_replace_allocator(oom_malloc, NULL, NULL, NULL), CF_EINVAL);
    CHECK_EQ(cf_replace_allocator(NULL, oom_realloc, oom_calloc, oom_free),
             CF_EINVAL);
    CHECK_EQ(cf_replace_allocator(oom_malloc, oom_realloc, oom_calloc, NULL),
             CF_EINVAL);
    CHECK_EQ(cf_replace_allocator(NULL, NULL, NULL, oom_free), CF_EINVAL);
    /* nothing changed: allocations still bypass the counting allocator */
    long live0 = oom_live_count();
    cf_thread *t;
    CHECK_EQ(cf_thread_start(&t, wait_gate_return_arg, NULL, NULL), 0);
    CHECK_EQ(oom_live_count(), live0);
    gate_open(&g_release);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, NULL), 0);

    /* a full set is taken, and used */
    CHECK_EQ(
        cf_replace_allocator(oom_malloc, oom_realloc, oom_calloc, oom_free), 0);
    CHECK_EQ(cf_thread_start(&t, add_one, NULL, NULL), 0);
    CHECK(oom_live_count() > live0);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, NULL), 0);
    CHECK_EQ(oom_live_count(), live0);
    /* all NULL restores libc's */
    CHECK_EQ(cf_replace_allocator(NULL, NULL, NULL, NULL), 0);
    CHECK_EQ(cf_thread_start(&t, add_one, NULL, NULL), 0);
    CHECK_EQ(oom_live_count(), live0);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, NULL), 0);
}

/* cf_fail is for tasks; a plain thread (main or cf_thread) gets CF_EINVAL. */
static void *fail_outside_task(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)cf_fail(CF_EINVAL, "not in a task");
}

static void fail_outside_task_is_einval(void)
{
    CHECK_EQ(cf_fail(CF_EBROKEN, "main %d", 1), CF_EINVAL);
    CHECK_EQ(cf_fail(0, NULL), CF_EINVAL);
    cf_thread *t;
    void *res = NULL;
    CHECK_EQ(cf_thread_start(&t, fail_outside_task, NULL, NULL), 0);
    CHECK_EQ(cf_thread_join(t, CF_FOREVER, &res), 0);
    CHECK_EQ((intptr_t)res, CF_EINVAL);
}

static const test_case cases[] = {
    TEST_CASE(start_join_passes_result),
    TEST_CASE(join_result_null_accepted),
    TEST_CASE(many_threads_each_own_result),
    TEST_CASE(join_timeout_leaves_joinable),
    TEST_CASE(join_returns_when_thread_ends),
    TEST_CASE(join_negative_timeout_waits),
    TEST_CASE(join_nan_is_einval),
    TEST_CASE(join_self_is_edeadlk),
    TEST_CASE(is_alive_until_fn_returns),
    TEST_CASE(name_given_is_copied),
    TEST_CASE(current_name_inside_thread),
    TEST_CASE(default_names_thread_n),
    TEST_CASE(main_thread_name),
    TEST_CASE(foreign_thread_is_dummy),
    TEST_CASE(nested_thread_names),
    TEST_CASE(detached_runs_and_frees_itself),
    TEST_CASE(bad_input),
    TEST_CASE(stack_size_is_used),
    TEST_CASE(stack_size_too_small_is_einval),
    TEST_CASE(start_enomem_sweep),
    TEST_CASE(strerror_every_code),
    TEST_CASE(strerror_other_negative_codes),
    TEST_CASE(cpu_count_sane),
    TEST_CASE(replace_allocator_partial_is_einval),
    TEST_CASE(fail_outside_task_is_einval),
};

TEST_MAIN(cases)
