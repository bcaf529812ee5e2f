/* SPDX-License-Identifier: MIT */
/*
 * barrier.c - cf_barrier, Python's threading.Barrier: a cyclic barrier for
 * a fixed number of parties.
 *
 * The state machine is CPython's, under one pthread mutex with one
 * condition variable (monotonic clock) that every change broadcasts:
 *
 *   FILLING   threads arrive; each takes index = count++ and waits.
 *   ACTION    the last arrival runs the action (with mu released, so the
 *             action may look at the barrier); nobody may enter or leave.
 *   DRAINING  the round is complete; waiters leave with their index.
 *   RESETTING reset() was called while threads were inside; they leave
 *             with CF_EBROKEN.
 *   BROKEN    abort(), or a wait timed out; waits fail until reset().
 *
 * Arrivals wait while the barrier is in ACTION, DRAINING or RESETTING, so a
 * new round never mixes with the old one. Each completed round bumps a
 * generation number, and a waiter whose round completed leaves with its
 * index even if abort() or reset() comes before it has woken up (CPython
 * would report such a waiter broken; the round did complete). Every thread leaving decrements
 * count; the last one out of a DRAINING or RESETTING barrier makes it
 * FILLING again. A waiter's timeout only counts while the barrier is
 * FILLING: once the last party has arrived, the round completes.
 *
 * Invariants (under mu): count is the number of threads inside wait()
 * past the entry check; count < parties while FILLING.
 *
 * Cost: a wait is one mutex round trip plus a futex wait; each round
 * broadcasts to all parties (twice: release and the last one out).
 */
#include "sync.h"

#include <errno.h>
#include <pthread.h>

enum state { FILLING, ACTION, DRAINING, RESETTING, BROKEN };

struct cf_barrier {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every state change */
    unsigned parties;
    unsigned count; /* threads inside wait() */
    enum state state;
    unsigned long generation; /* completed rounds */
    void (*action)(void *ctx);
    void *ctx;
};

cf_barrier *cf_barrier_new(unsigned parties, void (*action)(void *ctx),
                           void *ctx)
{
    if (parties == 0) {
        errno = EINVAL;
        return NULL;
    }
    cf_barrier *b = cf__calloc(1, sizeof *b);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&b->mu, NULL);
    if (rc == 0) {
        rc = cf__cond_init(&b->cv);
        if (rc)
            pthread_mutex_destroy(&b->mu);
    }
    if (rc) {
        cf__free(b);
        errno = rc == EAGAIN ? ENOMEM : rc;
        return NULL;
    }
    b->parties = parties;
    b->state = FILLING;
    b->action = action;
    b->ctx = ctx;
    return b;
}

void cf_barrier_free(cf_barrier *b)
{
    if (!b)
        return;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    cf__free(b);
}

static void set_state(cf_barrier *b, enum state s)
{
    b->state = s;
    pthread_cond_broadcast(&b->cv);
}

/* The last arrival: runs the action, then releases the round (mu held).
 * Returns 0, or CF_EBROKEN if the barrier was aborted or reset meanwhile. */
static int release_round(cf_barrier *b)
{
    if (b->action) {
        b->state = ACTION;
        pthread_mutex_unlock(&b->mu);
        b->action(b->ctx);
        pthread_mutex_lock(&b->mu);
        if (b->state != ACTION)
            return CF_EBROKEN;
    }
    b->generation++;
    set_state(b, DRAINING);
    return 0;
}

/* A party that is not the last: waits for its round to complete (mu
 * held). Returns 0, or CF_EBROKEN (broken, reset, or this wait timed out
 * and broke the barrier). */
static int await_round(cf_barrier *b, const cf__deadline *d)
{
    unsigned long round = b->generation;
    while (b->generation == round &&
           (b->state == FILLING || b->state == ACTION)) {
        /* The deadline only counts until the last party has arrived. */
        const cf__deadline *limit = b->state == FILLING ? d : NULL;
        if (cf__cond_wait(&b->cv, &b->mu, limit) == CF_ETIMEDOUT &&
            b->generation == round && b->state == FILLING) {
            set_state(b, BROKEN);
            return CF_EBROKEN;
        }
    }
    return b->generation != round ? 0 : CF_EBROKEN;
}

int cf_barrier_wait(cf_barrier *b, double timeout)
{
    if (!b)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    pthread_mutex_lock(&b->mu);
    /* Enter: wait for the previous round to drain or reset. */
    while (b->state == ACTION || b->state == DRAINING || b->state == RESETTING)
        pthread_cond_wait(&b->cv, &b->mu);
    if (b->state == BROKEN) {
        pthread_mutex_unlock(&b->mu);
        return CF_EBROKEN;
    }
    unsigned index = b->count++;
    int rc = index + 1 == b->parties ? release_round(b) : await_round(b, &d);
    /* Leave: the last one out of a finished round re-opens the barrier. */
    if (--b->count == 0 && (b->state == DRAINING || b->state == RESETTING))
        set_state(b, FILLING);
    pthread_mutex_unlock(&b->mu);
    return rc ? rc : (int)index;
}

void cf_barrier_reset(cf_barrier *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    if (b->count > 0) {
        /* Threads are inside: they leave broken, the last one out of
         * RESETTING re-opens the barrier. A draining round just finishes. */
        if (b->state == FILLING || b->state == ACTION || b->state == BROKEN)
            set_state(b, RESETTING);
    } else {
        set_state(b, FILLING);
    }
    pthread_mutex_unlock(&b->mu);
}

void cf_barrier_abort(cf_barrier *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    set_state(b, BROKEN);
    pthread_mutex_unlock(&b->mu);
}

bool cf_barrier_broken(cf_barrier *b)
{
    if (!b)
        return false;
    pthread_mutex_lock(&b->mu);
    bool broken = b->state == BROKEN;
    pthread_mutex_unlock(&b->mu);
    return broken;
}

unsigned cf_barrier_n_waiting(cf_barrier *b)
{
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    /* As in Python: threads inside while the round fills, else 0. */
    unsigned n = b->state == FILLING || b->state == ACTION ? b->count : 0;
    pthread_mutex_unlock(&b->mu);
    return n;
}

unsigned cf_barrier_parties(cf_barrier *b)
{
    return b ? b->parties : 0;
}
