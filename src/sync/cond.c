/* SPDX-License-Identifier: MIT */
/*
 * cond.c - condition variables on the monotonic clock (sync.h), so that
 * timeouts are immune to wall-clock changes.
 */
#include "sync.h"

#include <errno.h>

int cf__cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int cf__cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu,
                  const cf__deadline *d)
{
    if (cf__deadline_forever(d)) {
        pthread_cond_wait(cv, mu);
        return 0;
    }
    if (cf__deadline_passed(d))
        return CF_ETIMEDOUT;
    return pthread_cond_timedwait(cv, mu, d) == ETIMEDOUT ? CF_ETIMEDOUT : 0;
}
