/* SPDX-License-Identifier: MIT */
/*
 * semaphore.c - cf_semaphore, Python's threading.Semaphore and
 * BoundedSemaphore.
 *
 * A counter guarded by a pthread mutex, and a condition variable (on the
 * monotonic clock) for the threads waiting for it to become positive.
 * acquire waits while the counter is 0, then takes one unit; release(n)
 * adds n units and signals up to n sleepers, who each re-check the counter,
 * so no wake-up is lost and none is needed beyond n. A bounded semaphore
 * checks the whole release against its initial value first and, when it
 * would pass it, releases nothing (CF_EOVERFLOW). The counter is 64 bits
 * wide; an unbounded semaphore refuses (CF_EOVERFLOW) only a release that
 * would wrap it around.
 *
 * Invariants (under mu): value <= initial for a bounded semaphore; sleepers
 * counts the threads waiting on cv.
 *
 * Cost: acquire and release are one mutex round trip, plus a futex wake
 * per sleeper woken and a futex wait per sleep.
 */
#include "sync.h"

#include <errno.h>
#include <pthread.h>

struct cf_semaphore {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when units are added */
    unsigned long long value;
    unsigned initial; /* the start value: the bound, when bounded */
    bool bounded;
    unsigned long sleepers; /* threads waiting on cv */
};

cf_semaphore *cf_semaphore_new(unsigned value, bool bounded)
{
    cf_semaphore *s = cf__calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&s->mu, NULL);
    if (rc == 0) {
        rc = cf__cond_init(&s->cv);
        if (rc)
            pthread_mutex_destroy(&s->mu);
    }
    if (rc) {
        cf__free(s);
        errno = rc == EAGAIN ? ENOMEM : rc;
        return NULL;
    }
    s->value = value;
    s->initial = value;
    s->bounded = bounded;
    return s;
}

void cf_semaphore_free(cf_semaphore *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    cf__free(s);
}

int cf_semaphore_acquire(cf_semaphore *s, double timeout)
{
    if (!s)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    while (s->value == 0) {
        s->sleepers++;
        rc = cf__cond_wait(&s->cv, &s->mu, &d);
        s->sleepers--;
        if (rc == CF_ETIMEDOUT && s->value == 0)
            break;
        rc = 0;
    }
    if (rc == 0)
        s->value--;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int cf_semaphore_release(cf_semaphore *s, unsigned n)
{
    if (!s || n == 0)
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->bounded ? s->value + n > s->initial : s->value > ~0ULL - n) {
        rc = CF_EOVERFLOW;
    } else {
        s->value += n;
        if (s->sleepers <= n) {
            pthread_cond_broadcast(&s->cv);
        } else {
            for (unsigned i = 0; i < n; i++)
                pthread_cond_signal(&s->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}
