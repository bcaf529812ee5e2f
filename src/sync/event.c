/* SPDX-License-Identifier: MIT */
/*
 * event.c - cf_event, Python's threading.Event: a flag threads wait for.
 *
 * The flag, guarded by a pthread mutex, and a condition variable (on the
 * monotonic clock) that set() broadcasts. Each set() also bumps a
 * generation counter, so a waiter that was woken by a set() returns
 * success even if clear() ran before it got the mutex back (CPython issue
 * 13502): a wait succeeds when the flag is set or the generation moved.
 *
 * Invariants (under mu): generation changes only in set(), by one.
 *
 * Cost: set, clear, is_set are one mutex round trip (set adds a futex wake
 * when someone waits); wait is one round trip plus a futex wait per sleep.
 */
#include "sync.h"

#include <errno.h>
#include <pthread.h>

struct cf_event {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast by set() */
    bool flag;
    unsigned long generation; /* number of set() calls */
    unsigned long sleepers;   /* threads waiting on cv */
};

cf_event *cf_event_new(void)
{
    cf_event *e = cf__calloc(1, sizeof *e);
    if (!e) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&e->mu, NULL);
    if (rc == 0) {
        rc = cf__cond_init(&e->cv);
        if (rc)
            pthread_mutex_destroy(&e->mu);
    }
    if (rc) {
        cf__free(e);
        errno = rc == EAGAIN ? ENOMEM : rc;
        return NULL;
    }
    return e;
}

void cf_event_free(cf_event *e)
{
    if (!e)
        return;
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    cf__free(e);
}

void cf_event_set(cf_event *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->flag = true;
    e->generation++;
    if (e->sleepers)
        pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void cf_event_clear(cf_event *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->flag = false;
    pthread_mutex_unlock(&e->mu);
}

bool cf_event_is_set(cf_event *e)
{
    if (!e)
        return false;
    pthread_mutex_lock(&e->mu);
    bool flag = e->flag;
    pthread_mutex_unlock(&e->mu);
    return flag;
}

int cf_event_wait(cf_event *e, double timeout)
{
    if (!e)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    unsigned long generation = e->generation;
    while (!e->flag && e->generation == generation) {
        e->sleepers++;
        rc = cf__cond_wait(&e->cv, &e->mu, &d);
        e->sleepers--;
        if (rc == CF_ETIMEDOUT && !e->flag && e->generation == generation)
            break;
        rc = 0;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}
