/* SPDX-License-Identifier: MIT */
/*
 * thread.c - cf_thread: start, join with a timeout, names.
 *
 * pthread_join has no timeout, so each thread carries a `done` word that its
 * start routine sets (release) and futex-wakes when fn returns; a join waits
 * on that word with the deadline, then calls pthread_join, which is then
 * immediate. A detached thread owns and frees its record itself.
 *
 * Also here, as thread-local state of the calling thread: its name, the
 * task context that cf_fail writes into, and the pool helper used by
 * blocking waits (see internal.h).
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

struct cf_thread {
    pthread_t handle;
    cf_fn fn;
    void *arg;
    void *result;
    char *name;
    bool detached;
    _Atomic uint32_t done; /* 0 running, 1 fn returned */
};

static _Thread_local const char *current_name;
static _Thread_local char dummy_name[32];
static _Thread_local cf_thread *current_thread;
_Thread_local cf__task_ctx *cf__tls_task;
static _Thread_local cf__helper *current_helper;
static atomic_uint thread_counter;

void cf__set_current_name(const char *name)
{
    current_name = name;
}

const char *cf_thread_current_name(void)
{
    if (current_name)
        return current_name;
    if (getpid() == (pid_t)syscall(SYS_gettid))
        return "MainThread";
    if (!dummy_name[0])
        snprintf(dummy_name, sizeof dummy_name, "Dummy-%ld",
                 (long)syscall(SYS_gettid));
    return dummy_name;
}

cf__helper *cf__helper_current(void)
{
    return current_helper;
}

cf__helper *cf__helper_swap(cf__helper *h)
{
    cf__helper *old = current_helper;
    current_helper = h;
    return old;
}

void cf__thread_detach_self(void)
{
    if (current_thread && !current_thread->detached) {
        current_thread->detached = true;
        pthread_detach(pthread_self());
    }
}

static void *thread_main(void *p)
{
    cf_thread *t = p;
    current_thread = t;
    current_name = t->name;
    void *result = t->fn(t->arg);
    current_name = NULL;
    current_thread = NULL;
    /* detached is written only by this thread once it runs
     * (cf__thread_detach_self), or before it started. */
    if (t->detached) {
        cf__free(t->name);
        cf__free(t);
        return NULL;
    }
    t->result = result;
    /* release: the joiner that sees done reads result */
    atomic_store_explicit(&t->done, 1, memory_order_release);
    cf__futex_wake(&t->done, -1);
    return NULL;
}

int cf_thread_start(cf_thread **out, cf_fn fn, void *arg,
                    const cf_thread_options *opts)
{
    bool detached = opts && opts->detached;
    if (!fn || (!out && !detached))
        return CF_EINVAL;
    cf_thread *t = cf__calloc(1, sizeof *t);
    if (!t)
        return CF_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->detached = detached;
    if (opts && opts->name) {
        t->name = cf__strdup(opts->name);
    } else {
        char buf[32];
        snprintf(buf, sizeof buf, "Thread-%u",
                 atomic_fetch_add_explicit(&thread_counter, 1,
                                           memory_order_relaxed) +
                     1);
        t->name = cf__strdup(buf);
    }
    if (!t->name) {
        cf__free(t);
        return CF_ENOMEM;
    }
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0 && opts && opts->stack_size)
        rc = pthread_attr_setstacksize(&attr, opts->stack_size);
    if (rc == 0 && detached)
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_create(&t->handle, &attr, thread_main, t);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        cf__free(t->name);
        cf__free(t);
        return rc == EINVAL ? CF_EINVAL : rc == EAGAIN ? CF_ENOMEM : -rc;
    }
    if (out)
        *out = detached ? NULL : t;
    return 0;
}

int cf_thread_join(cf_thread *t, double timeout, void **result)
{
    if (!t)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    if (t == current_thread || pthread_equal(t->handle, pthread_self()))
        return CF_EDEADLK;
    /* acquire: pairs with the release store in thread_main */
    while (atomic_load_explicit(&t->done, memory_order_acquire) == 0) {
        if (cf__futex_wait(&t->done, 0, &d) == CF_ETIMEDOUT &&
            atomic_load_explicit(&t->done, memory_order_acquire) == 0)
            return CF_ETIMEDOUT;
    }
    pthread_join(t->handle, NULL);
    if (result)
        *result = t->result;
    cf__free(t->name);
    cf__free(t);
    return 0;
}

bool cf_thread_is_alive(const cf_thread *t)
{
    return t && atomic_load_explicit(&((cf_thread *)t)->done,
                                     memory_order_acquire) == 0;
}

const char *cf_thread_name(const cf_thread *t)
{
    return t ? t->name : NULL;
}
