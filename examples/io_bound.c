/* SPDX-License-Identifier: MIT */
/*
 * io_bound.c - threads for I/O-bound work: overlap the waiting.
 *
 * 40 "requests" each block for 50 ms (nanosleep stands in for a socket, a
 * disk or a database). One after another they take 40 x 50 ms = 2 s; on a
 * pool of 40 threads they all wait at the same time and take about 50 ms.
 * Python gets this speedup too, since a thread blocked in I/O releases the
 * GIL. In Python:
 *     with ThreadPoolExecutor(max_workers=40) as pool:
 *         results = list(pool.map(fetch, range(40)))
 */
#include "example.h"

enum { MAX_TASKS = 40 };

/* Serves one request: blocks, then answers with the request itself. (The
 * request type is in example.h: `cfutures demo` times this function too.) */
void *fetch(void *arg)
{
    request *r = arg;
    sleep_s(r->seconds);
    return r;
}

int run_io_bound(bool quick, timing *out)
{
    size_t n = quick ? 20 : MAX_TASKS;
    double wait_s = quick ? 0.025 : 0.05;
    request reqs[MAX_TASKS];
    void *args[MAX_TASKS];
    for (size_t i = 0; i < n; i++) {
        reqs[i] = (request){ .id = (int)i, .seconds = wait_s };
        args[i] = &reqs[i];
    }

    /* Sequential: for i in range(n): fetch(i) */
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        fetch(args[i]);
    double t_seq = now() - t0;

    /* A pool with one thread per request; cf_map yields results in input
     * order, like pool.map. */
    t0 = now();
    cf_options opts = { .max_workers = (int)n, .name_prefix = "io" };
    cf_executor *pool =
        check_ptr(cf_thread_pool_new(&opts), "cf_thread_pool_new");
    cf_map *m;
    check(cf_map_new(&m, pool, fetch, args, n, 0, CF_FOREVER), "cf_map_new");
    size_t i = 0, in_order = 0;
    void *result;
    int rc;
    while ((rc = cf_map_next(m, &result)) != CF_EOF) {
        check(rc, "cf_map_next");
        in_order += result == args[i++];
    }
    cf_map_free(m);
    cf_executor_free(pool);
    double t_pool = now() - t0;

    printf("  %zu requests of %.0f ms each\n", n, wait_s * 1e3);
    printf("  sequential:            %6.3f s\n", t_seq);
    printf("  thread pool (%2zu thr.): %6.3f s   speedup %.1fx\n", n, t_pool,
           t_seq / t_pool);
    if (out)
        *out = (timing){ t_seq, t_pool, (int)n };
    return in_order == n ? 0 : 1;
}

#ifndef CF_EXAMPLE_NO_MAIN
int main(int argc, char **argv)
{
    return run_io_bound(quick_flag(argc, argv), NULL) == 0 ? EXIT_SUCCESS
                                                           : EXIT_FAILURE;
}
#endif
