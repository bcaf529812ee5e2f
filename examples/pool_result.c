/* SPDX-License-Identifier: MIT */
/*
 * pool_result.c - submit work to a thread pool, read each future's result.
 *
 * In Python:
 *     with ThreadPoolExecutor(4, thread_name_prefix="pool") as pool:
 *         futures = [pool.submit(parse, s) for s in inputs]
 *         for f in futures:
 *             print(f.result())          # raises if parse raised
 * C has no `with`: create the pool, use it, and free it where the block
 * would end. cf_executor_free() is that end: shutdown(wait=True), then free.
 * A failed task does not raise: cf_future_result() returns its CF_E* code,
 * and cf_future_exception() gives the message.
 */
#include "example.h"

/* Parses a decimal number after 0.1 s of "work". Text that is not a number
 * fails the task, the way raising ValueError would in Python. */
static void *parse(void *arg)
{
    const char *text = arg;
    sleep_s(0.1);
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0) {
        cf_fail(CF_EINVAL, "not a number: \"%s\"", text);
        return NULL;
    }
    printf("  [%s] parse(\"%s\") = %ld\n", cf_thread_current_name(), text,
           value);
    return (void *)(intptr_t)value;
}

int run_pool_result(void)
{
    const char *inputs[] = { "42", "-7", "forty-two", "1000" };
    enum { N = sizeof inputs / sizeof inputs[0] };
    cf_future *fs[N];
    long sum = 0;
    int failed = 0;
    double t0 = now();

    /* with ThreadPoolExecutor(...) as pool: */
    cf_options opts = { .max_workers = 4, .name_prefix = "pool" };
    cf_executor *pool =
        check_ptr(cf_thread_pool_new(&opts), "cf_thread_pool_new");
    for (int i = 0; i < N; i++)
        check(cf_submit(pool, parse, (void *)inputs[i], &fs[i]), "cf_submit");
    for (int i = 0; i < N; i++) {
        void *result;
        const char *why;
        int rc = cf_future_result(fs[i], CF_FOREVER, &result);
        if (rc == 0) {
            long value = (long)(intptr_t)result;
            printf("  result(\"%s\") = %ld\n", inputs[i], value);
            sum += value;
        } else {
            cf_future_exception(fs[i], CF_FOREVER, &why);
            printf("  result(\"%s\") failed: %s (%s)\n", inputs[i],
                   cf_strerror(rc), why);
            failed++;
        }
        cf_future_release(fs[i]); /* we hold a reference to each future */
    }
    cf_executor_free(pool); /* end of the with block */

    printf("  %d tasks of 0.1 s on 4 workers took %.3f s; sum %ld, %d failed\n",
           N, now() - t0, sum, failed);
    return sum == 1035 && failed == 1 ? 0 : 1;
}

#ifndef CF_EXAMPLE_NO_MAIN
int main(void)
{
    return run_pool_result() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
