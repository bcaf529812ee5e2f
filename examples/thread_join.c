/* SPDX-License-Identifier: MIT */
/*
 * thread_join.c - start a thread with a name, join it, read its result.
 *
 * In Python:
 *     t = threading.Thread(target=download, args=(3,), name="downloader")
 *     t.start()
 *     t.join(timeout=0.05); print(t.is_alive())   # still running
 *     t.join()
 * Python's Thread throws away what its target returns; a cfutures thread
 * body has the shape of a pthread start routine, and the join hands back
 * the pointer it returned.
 */
#include "example.h"

/* Pretends to download `parts` pieces of 1 KiB, 100 ms each; returns the
 * number of bytes, carried in the result pointer. */
static void *download(void *arg)
{
    int parts = *(const int *)arg;
    printf("  [%s] downloading %d parts\n", cf_thread_current_name(), parts);
    for (int i = 0; i < parts; i++)
        sleep_s(0.1);
    return (void *)(uintptr_t)(parts * 1024);
}

int run_thread_join(void)
{
    int parts = 3;
    cf_thread_options opts = { .name = "downloader" };
    cf_thread *t;
    double t0 = now();
    check(cf_thread_start(&t, download, &parts, &opts), "cf_thread_start");
    printf("  [%s] started thread \"%s\", alive: %s\n",
           cf_thread_current_name(), cf_thread_name(t),
           cf_thread_is_alive(t) ? "yes" : "no");

    /* A join with a timeout gives CF_ETIMEDOUT while the thread runs, and
     * leaves it joinable. A join that returns 0 has freed t. */
    void *result;
    int rc = cf_thread_join(t, 0.05, &result);
    if (rc == CF_ETIMEDOUT) {
        printf("  join(timeout=0.05 s): %s, alive: %s\n", cf_strerror(rc),
               cf_thread_is_alive(t) ? "yes" : "no");
        rc = cf_thread_join(t, CF_FOREVER, &result);
    }
    check(rc, "cf_thread_join");

    size_t bytes = (size_t)(uintptr_t)result;
    printf("  join(): %zu bytes after %.3f s (3 parts x 0.1 s)\n", bytes,
           now() - t0);
    return bytes == (size_t)parts * 1024 ? 0 : 1;
}

#ifndef CF_EXAMPLE_NO_MAIN
int main(void)
{
    return run_thread_join() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
