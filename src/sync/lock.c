/* SPDX-License-Identifier: MIT */
/*
 * lock.c - cf_lock, Python's threading.Lock: a plain, non-re-entrant lock
 * that any thread may release.
 *
 * The lock is one futex word with Drepper's three states ("Futexes are
 * tricky", mutex2): 0 unlocked, 1 locked, 2 locked and maybe contended.
 * acquire takes it with a compare-and-swap 0 -> 1; a contended acquire swaps
 * in 2 and sleeps on the word until the deadline. release swaps in 0 and
 * wakes one sleeper when the old state was 2. No owner is recorded, so any
 * thread may release; releasing an unlocked lock is CF_EPERM and writes
 * nothing.
 *
 * Invariants: word is 0, 1 or 2; it is 0 exactly when no thread holds the
 * lock. A waiter that times out may leave 2 behind while another thread
 * holds the lock: that only costs the holder one needless wake-up.
 *
 * Cost: an uncontended acquire or release is one atomic read-modify-write
 * and no system call; a contended one is a futex wait or wake.
 */
#include "../internal.h"

#include <errno.h>

struct cf_lock {
    _Atomic uint32_t word; /* 0 unlocked, 1 locked, 2 locked with waiters */
};

cf_lock *cf_lock_new(void)
{
    cf_lock *l = cf__calloc(1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&l->word, 0);
    return l;
}

void cf_lock_free(cf_lock *l)
{
    cf__free(l);
}

static bool try_take(cf_lock *l)
{
    uint32_t expected = 0;
    /* acquire: pairs with the release exchange in cf_lock_release, so the
     * previous holder's critical section is visible to us */
    return atomic_compare_exchange_strong_explicit(
        &l->word, &expected, 1, memory_order_acquire, memory_order_relaxed);
}

int cf_lock_acquire(cf_lock *l, double timeout)
{
    if (!l)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    if (try_take(l))
        return 0;
    if (timeout == 0)
        return CF_ETIMEDOUT; /* a poll never blocks */
    /* Contended: announce a waiter by swapping in 2. The old value tells
     * whether the lock was free after all (then it is ours, in state 2).
     * acquire: pairs with the release exchange in cf_lock_release. */
    while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0) {
        if (cf__futex_wait(&l->word, 2, &d) == CF_ETIMEDOUT) {
            /* One last try, so a release racing with the timeout is not
             * missed; same pairing as above. */
            if (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) ==
                0)
                return 0;
            return CF_ETIMEDOUT;
        }
    }
    return 0;
}

int cf_lock_release(cf_lock *l)
{
    if (!l)
        return CF_EINVAL;
    uint32_t old = atomic_load_explicit(&l->word, memory_order_relaxed);
    do {
        if (old == 0)
            return CF_EPERM; /* not locked: change nothing */
        /* release: publishes the critical section to the next holder;
         * pairs with the acquire in try_take and cf_lock_acquire */
    } while (!atomic_compare_exchange_weak_explicit(
        &l->word, &old, 0, memory_order_release, memory_order_relaxed));
    if (old == 2)
        cf__futex_wake(&l->word, 1);
    return 0;
}

bool cf_lock_locked(cf_lock *l)
{
    /* relaxed: a snapshot that may be stale by the time the caller looks */
    return l && atomic_load_explicit(&l->word, memory_order_relaxed) != 0;
}
