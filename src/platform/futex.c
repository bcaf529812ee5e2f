/* SPDX-License-Identifier: MIT */
/*
 * futex.c - the Linux futex behind every blocking wait of cfutures, the
 * one-word mutex built on it (Drepper's three-state mutex, "Futexes are
 * tricky"), and the per-thread parker (a binary token, like Rust's
 * thread::park). Waits always re-check their condition in a loop; the kernel
 * may wake us spuriously.
 */
#include "../internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int cf__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   const cf__deadline *deadline)
{
    const struct timespec *abs =
        cf__deadline_forever(deadline) ? NULL : deadline;
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
    long rc = syscall(SYS_futex, (uint32_t *)word,
                      FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, abs,
                      NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc == -1 && errno == ETIMEDOUT)
        return CF_ETIMEDOUT;
    return 0;
}

void cf__futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            n <= 0 ? INT_MAX : n, NULL, NULL, 0);
}

void cf__mutex_lock_slow(cf__mutex *m)
{
    /* Spin a little: critical sections guarded by this mutex are short. */
    for (int i = 0; i < 100; i++) {
        uint32_t expected = 0;
        if (atomic_load_explicit(&m->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&m->word, &expected, 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    /* acquire: pairs with the release exchange in cf__mutex_unlock */
    while (atomic_exchange_explicit(&m->word, 2, memory_order_acquire) != 0)
        cf__futex_wait(&m->word, 2, NULL);
}

enum { PARK_EMPTY = 0, PARK_PARKED = 1, PARK_NOTIFIED = 2 };

static _Thread_local cf__parker self_parker;
static _Thread_local cf__parker *self_override;

cf__parker *cf__parker_self(void)
{
    return self_override ? self_override : &self_parker;
}

void cf__parker_set_self(cf__parker *p)
{
    self_override = p;
}

int cf__park(cf__parker *p, const cf__deadline *deadline)
{
    /* acquire: everything the unparker wrote before cf__unpark is visible */
    if (atomic_exchange_explicit(&p->state, PARK_EMPTY, memory_order_acquire) ==
        PARK_NOTIFIED)
        return 0;
    uint32_t expected = PARK_EMPTY;
    if (!atomic_compare_exchange_strong_explicit(
            &p->state, &expected, PARK_PARKED, memory_order_acquire,
            memory_order_acquire)) {
        /* A token arrived in between (expected is PARK_NOTIFIED). */
        atomic_store_explicit(&p->state, PARK_EMPTY, memory_order_relaxed);
        return 0;
    }
    for (;;) {
        int rc = cf__futex_wait(&p->state, PARK_PARKED, deadline);
        if (atomic_load_explicit(&p->state, memory_order_acquire) ==
            PARK_NOTIFIED) {
            atomic_store_explicit(&p->state, PARK_EMPTY, memory_order_relaxed);
            return 0;
        }
        if (rc == CF_ETIMEDOUT || cf__deadline_passed(deadline)) {
            /* Leave PARKED for EMPTY unless a token raced in. */
            expected = PARK_PARKED;
            if (atomic_compare_exchange_strong_explicit(
                    &p->state, &expected, PARK_EMPTY, memory_order_acquire,
                    memory_order_acquire))
                return CF_ETIMEDOUT;
            atomic_store_explicit(&p->state, PARK_EMPTY, memory_order_relaxed);
            return 0;
        }
    }
}

void cf__unpark(cf__parker *p)
{
    /* release: publishes the unparker's writes to the parked thread */
    if (atomic_exchange_explicit(&p->state, PARK_NOTIFIED,
                                 memory_order_release) == PARK_PARKED)
        cf__futex_wake(&p->state, 1);
}
