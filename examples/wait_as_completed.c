/* SPDX-License-Identifier: MIT */
/*
 * wait_as_completed.c - wait for the first of many futures, then take them
 * all in the order they finish.
 *
 * In Python:
 *     done, pending = wait(futures, return_when=FIRST_COMPLETED)
 *     for f in as_completed(futures):
 *         print(f.result())
 */
#include "example.h"

typedef struct job {
    const char *name;
    double seconds;
} job;

/* Works for job->seconds, then returns the job. */
static void *work(void *arg)
{
    job *j = arg;
    sleep_s(j->seconds);
    return j;
}

int run_wait_as_completed(void)
{
    job jobs[] = { { "A", 0.30 },
                   { "B", 0.10 },
                   { "C", 0.40 },
                   { "D", 0.05 },
                   { "E", 0.20 } };
    enum { N = sizeof jobs / sizeof jobs[0] };
    cf_future *fs[N];

    cf_options opts = { .max_workers = N };
    cf_executor *pool =
        check_ptr(cf_thread_pool_new(&opts), "cf_thread_pool_new");
    double t0 = now();
    for (int i = 0; i < N; i++)
        check(cf_submit(pool, work, &jobs[i], &fs[i]), "cf_submit");

    /* wait(FIRST_COMPLETED) returns as soon as any future is done. */
    check(cf_wait(fs, N, CF_FOREVER, CF_FIRST_COMPLETED), "cf_wait");
    printf("  cf_wait(FIRST_COMPLETED) returned after %.3f s; done:",
           now() - t0);
    for (int i = 0; i < N; i++)
        if (cf_future_done(fs[i]))
            printf(" %s", jobs[i].name);
    printf("\n");

    /* as_completed yields each future once, in the order they finish. */
    cf_as_completed *it;
    check(cf_as_completed_new(&it, fs, N, CF_FOREVER), "cf_as_completed_new");
    cf_future *f;
    int rc;
    printf("  cf_as_completed order:\n");
    while ((rc = cf_as_completed_next(it, &f)) != CF_EOF) {
        check(rc, "cf_as_completed_next");
        void *result;
        check(cf_future_result(f, 0, &result), "cf_future_result");
        const job *j = result;
        printf("    %s (%.2f s of work) done at %.3f s\n", j->name, j->seconds,
               now() - t0);
    }
    cf_as_completed_free(it);

    for (int i = 0; i < N; i++)
        cf_future_release(fs[i]);
    cf_executor_free(pool);
    return 0;
}

#ifndef CF_EXAMPLE_NO_MAIN
int main(void)
{
    return run_wait_as_completed() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
