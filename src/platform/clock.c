/* SPDX-License-Identifier: MIT */
/*
 * clock.c - monotonic time and deadlines. A timeout in seconds (Python's
 * convention: negative waits forever, 0 polls, NaN is an error) becomes an
 * absolute CLOCK_MONOTONIC deadline once, at the start of a wait, so that
 * retries after spurious wake-ups never stretch the total wait.
 */
#include "../internal.h"

#include <math.h>

double cf__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cf__deadline_from(double timeout, cf__deadline *d)
{
    if (isnan(timeout))
        return CF_EINVAL;
    if (timeout < 0 || isinf(timeout) || timeout > 1e9) {
        d->tv_sec = -1;
        d->tv_nsec = 0;
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, d);
    double whole = floor(timeout);
    d->tv_sec += (time_t)whole;
    d->tv_nsec += (long)((timeout - whole) * 1e9);
    if (d->tv_nsec >= 1000000000L) {
        d->tv_sec += 1;
        d->tv_nsec -= 1000000000L;
    }
    return 0;
}

bool cf__deadline_forever(const cf__deadline *d)
{
    return d == NULL || d->tv_sec < 0;
}

bool cf__deadline_passed(const cf__deadline *d)
{
    if (cf__deadline_forever(d))
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > d->tv_sec ||
           (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

double cf__deadline_left(const cf__deadline *d)
{
    if (cf__deadline_forever(d))
        return -1.0;
    double left = (double)d->tv_sec + (double)d->tv_nsec * 1e-9 - cf__now();
    return left > 0 ? left : 0.0;
}
