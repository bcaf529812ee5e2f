/* SPDX-License-Identifier: MIT */
/*
 * producer_consumer.c - threads that hand work over through a bounded queue.
 *
 * In Python (3.13 for shutdown):
 *     q = queue.Queue(maxsize=4)
 *     def consumer():
 *         while True:
 *             try: item = q.get()
 *             except queue.ShutDown: return
 *             process(item); q.task_done()
 *     ... start the threads; join the producers ...
 *     q.join()        # every item put has been processed
 *     q.shutdown()    # the consumers' get() now fails, and they return
 */
#include "example.h"

enum { PRODUCERS = 2, CONSUMERS = 3, ITEMS = 10 };

typedef struct producer_arg {
    cf_queue *q;
    uintptr_t id;
} producer_arg;

/* Puts ITEMS numbered items; put blocks while the queue is full. */
static void *producer(void *arg)
{
    const producer_arg *p = arg;
    for (uintptr_t k = 1; k <= ITEMS; k++)
        check(cf_queue_put(p->q, (void *)(p->id * 100 + k), CF_FOREVER),
              "cf_queue_put");
    return NULL;
}

/* Processes items (10 ms each) until the queue is shut down and drained;
 * returns how many it processed. */
static void *consumer(void *arg)
{
    cf_queue *q = arg;
    uintptr_t count = 0;
    void *item;
    int rc;
    while ((rc = cf_queue_get(q, &item, CF_FOREVER)) == 0) {
        sleep_s(0.01);
        count++;
        check(cf_queue_task_done(q), "cf_queue_task_done");
    }
    if (rc != CF_ESHUTDOWN)
        check(rc, "cf_queue_get");
    return (void *)count;
}

int run_producer_consumer(void)
{
    cf_thread *prod[PRODUCERS], *cons[CONSUMERS];
    producer_arg args[PRODUCERS];
    char name[32];
    double t0 = now();
    cf_queue *q = check_ptr(cf_queue_new(4, CF_FIFO, NULL), "cf_queue_new");
    for (uintptr_t i = 0; i < CONSUMERS; i++) {
        snprintf(name, sizeof name, "consumer-%u", (unsigned)i + 1);
        cf_thread_options opts = { .name = name };
        check(cf_thread_start(&cons[i], consumer, q, &opts), "cf_thread_start");
    }
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        snprintf(name, sizeof name, "producer-%u", (unsigned)i + 1);
        cf_thread_options opts = { .name = name };
        args[i] = (producer_arg){ q, i + 1 };
        check(cf_thread_start(&prod[i], producer, &args[i], &opts),
              "cf_thread_start");
    }
    for (int i = 0; i < PRODUCERS; i++)
        check(cf_thread_join(prod[i], CF_FOREVER, NULL), "cf_thread_join");
    check(cf_queue_join(q, CF_FOREVER), "cf_queue_join");
    printf("  %d items processed after %.3f s (10 ms each, %d consumers)\n",
           PRODUCERS * ITEMS, now() - t0, CONSUMERS);

    cf_queue_shutdown(q, false);
    uintptr_t total = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        void *count;
        check(cf_thread_join(cons[i], CF_FOREVER, &count), "cf_thread_join");
        printf("  consumer-%d processed %2lu items\n", i + 1,
               (unsigned long)(uintptr_t)count);
        total += (uintptr_t)count;
    }
    cf_queue_free(q);
    return total == PRODUCERS * ITEMS ? 0 : 1;
}

#ifndef CF_EXAMPLE_NO_MAIN
int main(void)
{
    return run_producer_consumer() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
