/* SPDX-License-Identifier: MIT */
/*
 * cf_b3_map.c - B3 CPU-bound map for cfutures with cf_map: n items of
 * bench_work (about 1 ms each), every item a task, on a pool of `workers`
 * threads (default ncpu), buffersize 0 (all submitted at once). Results are
 * read in input order. Prints time_s.
 * Usage: bench_cf_b3_map [workers=ncpu] [n=2000]
 */
#include "bench.h"

#include <cfutures.h>

static void *item(void *arg)
{
    return (void *)(uintptr_t)bench_work((uintptr_t)arg);
}

static void *empty_task(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    int workers = (int)bench_arg(argc, argv, "workers", bench_ncpu());
    size_t n = (size_t)bench_arg(argc, argv, "n", 2000);
    cf_options opts = { .max_workers = workers };
    cf_executor *ex = cf_thread_pool_new(&opts);
    bench_check(ex != NULL, "cf_thread_pool_new");
    void **args = malloc(n * sizeof *args);
    uint64_t *out = calloc(n, sizeof *out);
    bench_check(args && out, "malloc");
    for (size_t i = 0; i < n; i++)
        args[i] = (void *)(uintptr_t)i;

    /* warm-up: start the workers */
    cf_future *fs[16];
    for (int i = 0; i < 16; i++)
        bench_check(cf_submit(ex, empty_task, NULL, &fs[i]) == 0, "cf_submit");
    for (int i = 0; i < 16; i++) {
        cf_future_result(fs[i], CF_FOREVER, NULL);
        cf_future_release(fs[i]);
    }

    int64_t t0 = bench_now_ns();
    cf_map *m;
    bench_check(cf_map_new(&m, ex, item, args, n, 0, CF_FOREVER) == 0,
                "cf_map_new");
    void *r;
    for (size_t i = 0; i < n; i++) {
        bench_check(cf_map_next(m, &r) == 0, "cf_map_next");
        out[i] = (uintptr_t)r;
    }
    bench_check(cf_map_next(m, &r) == CF_EOF, "cf_map end");
    cf_map_free(m);
    int64_t t1 = bench_now_ns();

    printf("checksum %llu\n", (unsigned long long)bench_fold(out, n));
    bench_result("B3", "cfutures-map", workers, "time_s", (t1 - t0) / 1e9);
    cf_executor_free(ex);
    free(args);
    free(out);
    return 0;
}
