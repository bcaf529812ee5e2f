/* SPDX-License-Identifier: MIT */
/* hello.c - the README's example: submit a call to a pool, read its future. */
#include <cfutures.h>
#include <stdio.h>

static void *square(void *arg)
{
    long x = (long)arg;
    return (void *)(x * x);
}

int main(void)
{
    cf_executor *pool = cf_thread_pool_new(NULL); /* ThreadPoolExecutor() */
    if (pool == NULL)
        return 1;
    cf_future *f;
    void *result;
    int rc = cf_submit(pool, square, (void *)7L, &f); /* pool.submit(...) */
    if (rc == 0) {
        rc = cf_future_result(f, CF_FOREVER, &result); /* f.result() */
        cf_future_release(f);
    }
    if (rc == 0)
        printf("square(7) = %ld\n", (long)result);
    else
        fprintf(stderr, "failed: %s\n", cf_strerror(rc));
    cf_executor_free(pool); /* the end of the `with` block */
    return rc == 0 ? 0 : 1;
}
