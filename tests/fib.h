/* SPDX-License-Identifier: MIT */
/*
 * fib.h - fib(n) by recursive cf_join, and the plain value to check it
 * against: the fork-join workload of the fork-join and scheduler tests.
 */
#ifndef CF_TEST_FIB_H
#define CF_TEST_FIB_H

#include "harness.h"

#include <stdint.h>

static inline long fib_serial(int n)
{
    long a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        long t = a + b;
        a = b;
        b = t;
    }
    return a;
}

typedef struct fib_arg {
    cf_executor *ex;
    int n;
} fib_arg;

/* fib(n) by recursive cf_join; a failed join fails the task with its code. */
static inline void *fib_task(void *p)
{
    const fib_arg *a = p;
    if (a->n < 2)
        return (void *)(intptr_t)a->n;
    fib_arg x = { a->ex, a->n - 1 }, y = { a->ex, a->n - 2 };
    void *rx = NULL, *ry = NULL;
    int rc = cf_join(a->ex, fib_task, &x, &rx, fib_task, &y, &ry);
    if (rc != 0) {
        cf_fail(rc, "join failed at n=%d", a->n);
        return NULL;
    }
    return (void *)((intptr_t)rx + (intptr_t)ry);
}

#endif /* CF_TEST_FIB_H */
