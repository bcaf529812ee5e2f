/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - a program outside the project that uses an installed
 * cfutures: it starts a thread pool, submits one task, reads its result and
 * prints OK. scripts/test.sh builds it with pkg-config and with CMake.
 */
#include <cfutures.h>

#include <stdint.h>
#include <stdio.h>

static void *square(void *arg)
{
    intptr_t x = (intptr_t)arg;
    return (void *)(x * x);
}

int main(void)
{
    cf_executor *ex = cf_thread_pool_new(NULL);
    if (!ex) {
        perror("cf_thread_pool_new");
        return 1;
    }
    cf_future *f;
    int rc = cf_submit(ex, square, (void *)(intptr_t)7, &f);
    if (rc < 0) {
        fprintf(stderr, "cf_submit: %s\n", cf_strerror(rc));
        cf_executor_free(ex);
        return 1;
    }
    void *result = NULL;
    rc = cf_future_result(f, CF_FOREVER, &result);
    cf_future_release(f);
    cf_executor_free(ex);
    if (rc < 0) {
        fprintf(stderr, "cf_future_result: %s\n", cf_strerror(rc));
        return 1;
    }
    if ((intptr_t)result != 49) {
        fprintf(stderr, "wrong result: %ld\n", (long)(intptr_t)result);
        return 1;
    }
    printf("OK\n");
    return 0;
}
