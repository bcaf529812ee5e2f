/* SPDX-License-Identifier: MIT */
/*
 * rlock.c - cf_rlock, Python's threading.RLock: a re-entrant lock owned by
 * the thread that acquired it.
 *
 * Underneath is the same three-state futex word as cf_lock (see lock.c),
 * plus the owner's identity and the depth. The owner is cf__owner_id():
 * the running task, so that a task run inline within another's wait is not
 * taken for its waiter (sync/owner.c). A task checks "do I own it?" with a
 * relaxed load of owner: only the task itself ever stores its own identity
 * there, and it clears it before it lets the word go, so it can never see
 * its own identity by mistake.
 * depth is touched only by the owner; ownership passes through the word's
 * release/acquire, which orders depth too.
 *
 * Invariants: owner != 0 exactly while the word is held, and then depth >= 1.
 *
 * Cost: a re-entrant acquire or release is a load and an increment; a first
 * acquire or last release costs what cf_lock's do.
 */
#include "../internal.h"

#include <errno.h>

struct cf_rlock {
    _Atomic uint32_t word;   /* 0 unlocked, 1 locked, 2 locked with waiters */
    _Atomic uintptr_t owner; /* the owner's identity, 0 when unowned */
    unsigned long depth;     /* acquires not yet released (owner only) */
};

cf_rlock *cf_rlock_new(void)
{
    cf_rlock *l = cf__calloc(1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&l->word, 0);
    atomic_init(&l->owner, 0);
    return l;
}

void cf_rlock_free(cf_rlock *l)
{
    cf__free(l);
}

/* Takes the word as cf_lock_acquire does. */
static int word_take(_Atomic uint32_t *word, double timeout,
                     const cf__deadline *d)
{
    uint32_t expected = 0;
    /* acquire: pairs with the release exchange in word_give */
    if (atomic_compare_exchange_strong_explicit(
            word, &expected, 1, memory_order_acquire, memory_order_relaxed))
        return 0;
    if (timeout == 0)
        return CF_ETIMEDOUT;
    /* acquire: as above */
    while (atomic_exchange_explicit(word, 2, memory_order_acquire) != 0) {
        if (cf__futex_wait(word, 2, d) == CF_ETIMEDOUT)
            return atomic_exchange_explicit(word, 2, memory_order_acquire) == 0
                       ? 0
                       : CF_ETIMEDOUT;
    }
    return 0;
}

static void word_give(_Atomic uint32_t *word)
{
    /* release: publishes the critical section (and depth) to the next
     * owner; pairs with the acquires in word_take */
    if (atomic_exchange_explicit(word, 0, memory_order_release) == 2)
        cf__futex_wake(word, 1);
}

int cf_rlock_acquire(cf_rlock *l, double timeout)
{
    if (!l)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    uintptr_t me = cf__owner_id();
    /* relaxed: only this task stores me (see the file comment) */
    if (atomic_load_explicit(&l->owner, memory_order_relaxed) == me) {
        l->depth++;
        return 0;
    }
    int rc = word_take(&l->word, timeout, &d);
    if (rc)
        return rc;
    /* relaxed: the word's acquire already orders us after the last owner */
    atomic_store_explicit(&l->owner, me, memory_order_relaxed);
    l->depth = 1;
    return 0;
}

int cf_rlock_release(cf_rlock *l)
{
    if (!l)
        return CF_EINVAL;
    /* relaxed: only this task stores its own identity */
    if (atomic_load_explicit(&l->owner, memory_order_relaxed) != cf__owner_id())
        return CF_EPERM;
    if (--l->depth > 0)
        return 0;
    /* relaxed: ordered before the word's release exchange in word_give */
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
    word_give(&l->word);
    return 0;
}
