/* SPDX-License-Identifier: MIT */
/*
 * sync.h - what the synchronisation objects share: condition variables on
 * the monotonic clock, waited on until an absolute cf__deadline.
 */
#ifndef CF_SYNC_H
#define CF_SYNC_H

#include "../internal.h"

#include <pthread.h>

/* Initialises cv on CLOCK_MONOTONIC: 0 or a pthread error number. */
int cf__cond_init(pthread_cond_t *cv);

/* One wait on cv until *d: 0 (woken, perhaps spuriously) or CF_ETIMEDOUT. */
int cf__cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu,
                  const cf__deadline *d);

#endif /* CF_SYNC_H */
