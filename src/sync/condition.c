/* SPDX-License-Identifier: MIT */
/*
 * condition.c - cf_condition, Python's threading.Condition with its default
 * re-entrant lock.
 *
 * One pthread mutex (mu) guards everything here: the re-entrant lock's
 * state (held, owner, depth), and the queue of waiters. mu is held only for
 * a few instructions at a time, never while the caller "holds the
 * condition"; holding the condition means held && owner == self, self
 * being the running task (or the thread outside tasks: sync/owner.c).
 *
 * Waiting follows CPython: each waiter puts a node, living on its own stack
 * and with its own pthread condition variable, at the tail of a FIFO list,
 * then gives the re-entrant lock up entirely (remembering its depth).
 * notify(n) unlinks up to n nodes from the head, marks them notified and
 * signals each one's variable, so exactly the waiters present at the time
 * are woken, oldest first, and nobody else. A waiter whose deadline passes
 * unlinks its own node. Either way it then takes the re-entrant lock back,
 * waiting as long as that takes, and restores its depth.
 *
 * Invariants (under mu): a node is in the list exactly when its waiter is
 * waiting and has not been notified; depth >= 1 exactly when held;
 * lock_waiters counts the threads sleeping on lock_cv.
 *
 * Cost: acquire/release/notify are one mutex round trip; a wait initialises
 * and destroys a condition variable on its stack (no allocation) and costs
 * a futex wait; notify(n) signals n variables.
 */
#include "sync.h"

#include <errno.h>
#include <pthread.h>

typedef struct waiter {
    struct waiter *prev, *next;
    pthread_cond_t cv;
    bool notified;
} waiter;

struct cf_condition {
    pthread_mutex_t mu;
    pthread_cond_t lock_cv; /* signalled when the re-entrant lock is freed */
    unsigned lock_waiters;  /* threads sleeping on lock_cv */
    bool held;              /* the re-entrant lock is taken */
    uintptr_t owner;        /* cf__owner_id() of the holder, while held */
    unsigned long depth;    /* acquires not yet released, while held */
    waiter *head, *tail;    /* waiting for a notify, oldest first */
};

/* ---- pthread helpers: condition variables on the monotonic clock ------- */

/* ---- the object -------------------------------------------------------- */

cf_condition *cf_condition_new(void)
{
    cf_condition *c = cf__calloc(1, sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&c->mu, NULL);
    if (rc == 0) {
        rc = cf__cond_init(&c->lock_cv);
        if (rc)
            pthread_mutex_destroy(&c->mu);
    }
    if (rc) {
        cf__free(c);
        errno = rc == EAGAIN ? ENOMEM : rc;
        return NULL;
    }
    return c;
}

void cf_condition_free(cf_condition *c)
{
    if (!c)
        return;
    pthread_cond_destroy(&c->lock_cv);
    pthread_mutex_destroy(&c->mu);
    cf__free(c);
}

static bool owned_by_caller(const cf_condition *c)
{
    return c->held && c->owner == cf__owner_id();
}

/* Takes the re-entrant lock at the given depth (mu held): 0 or
 * CF_ETIMEDOUT. The caller does not own it. */
static int take_lock(cf_condition *c, const cf__deadline *d,
                     unsigned long depth)
{
    while (c->held) {
        c->lock_waiters++;
        int rc = cf__cond_wait(&c->lock_cv, &c->mu, d);
        c->lock_waiters--;
        if (rc == CF_ETIMEDOUT && c->held)
            return CF_ETIMEDOUT;
    }
    c->held = true;
    c->owner = cf__owner_id();
    c->depth = depth;
    return 0;
}

/* Frees the re-entrant lock entirely (mu held, caller owns it). */
static void give_lock(cf_condition *c)
{
    c->held = false;
    c->depth = 0;
    if (c->lock_waiters)
        pthread_cond_signal(&c->lock_cv);
}

int cf_condition_acquire(cf_condition *c, double timeout)
{
    if (!c)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (owned_by_caller(c))
        c->depth++;
    else
        rc = take_lock(c, &d, 1);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int cf_condition_release(cf_condition *c)
{
    if (!c)
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (!owned_by_caller(c))
        rc = CF_EPERM;
    else if (--c->depth == 0)
        give_lock(c);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void unlink_waiter(cf_condition *c, waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        c->tail = w->prev;
    w->prev = w->next = NULL;
}

/* The wait itself, on a deadline already computed: see the file comment. */
static int wait_until(cf_condition *c, const cf__deadline *d)
{
    waiter w = { .prev = NULL, .next = NULL, .notified = false };
    int rc = cf__cond_init(&w.cv);
    if (rc)
        return rc == EAGAIN || rc == ENOMEM ? CF_ENOMEM : -rc;
    pthread_mutex_lock(&c->mu);
    if (!owned_by_caller(c)) {
        pthread_mutex_unlock(&c->mu);
        pthread_cond_destroy(&w.cv);
        return CF_EPERM;
    }
    /* Queue up, then give the lock up entirely. */
    w.prev = c->tail;
    if (c->tail)
        c->tail->next = &w;
    else
        c->head = &w;
    c->tail = &w;
    unsigned long depth = c->depth;
    give_lock(c);

    rc = 0;
    while (!w.notified) {
        if (cf__cond_wait(&w.cv, &c->mu, d) == CF_ETIMEDOUT && !w.notified) {
            unlink_waiter(c, &w);
            rc = CF_ETIMEDOUT;
            break;
        }
    }
    /* Take the lock back at the former depth, however long that takes. */
    take_lock(c, NULL, depth);
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

int cf_condition_wait(cf_condition *c, double timeout)
{
    if (!c)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    return wait_until(c, &d);
}

int cf_condition_wait_for(cf_condition *c, bool (*pred)(void *ctx), void *ctx,
                          double timeout)
{
    if (!c || !pred)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    /* The caller must hold the lock: pred reads what the lock guards. */
    pthread_mutex_lock(&c->mu);
    bool owned = owned_by_caller(c);
    pthread_mutex_unlock(&c->mu);
    if (!owned)
        return CF_EPERM;
    /* pred runs with the re-entrant lock held and mu free, so it may use
     * the condition itself (notify, acquire, ...). */
    while (!pred(ctx)) {
        if (cf__deadline_passed(&d))
            return CF_ETIMEDOUT;
        int rc = wait_until(c, &d);
        if (rc && rc != CF_ETIMEDOUT)
            return rc;
    }
    return 0;
}

static int notify(cf_condition *c, unsigned long n)
{
    if (!c)
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (!owned_by_caller(c)) {
        rc = CF_EPERM;
    } else {
        while (n > 0 && c->head) {
            waiter *w = c->head;
            unlink_waiter(c, w);
            w->notified = true;
            pthread_cond_signal(&w->cv);
            n--;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int cf_condition_notify(cf_condition *c, unsigned n)
{
    return notify(c, n);
}

int cf_condition_notify_all(cf_condition *c)
{
    return notify(c, (unsigned long)-1);
}
