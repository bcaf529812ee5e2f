/* SPDX-License-Identifier: MIT */
/*
 * cache.c - per-thread caches of fixed-size blocks, for the records that
 * every task costs (futures). A thread allocates from and frees into its own
 * list with no atomic operation; past a high-water mark it hands a batch to
 * a shared depot (one mutex round trip per batch), and an empty thread takes
 * a batch back. So a task submitted by one thread and freed by another costs
 * no malloc on the steady state, and the depot keeps memory bounded.
 *
 * Caching is on only with the libc allocator: a replaced allocator (tests,
 * users) sees every allocation, as cf_replace_allocator promises. A thread's
 * blocks go to the depot when it exits (a pthread key destructor).
 */
#include "../internal.h"

#include <pthread.h>
#include <string.h>

#define BATCH 128
#define DEPOT_MAX 256 /* batches kept; beyond that they are freed */

typedef struct block {
    struct block *next;       /* within a list */
    struct block *next_batch; /* depot: the next batch (first block only) */
} block;

typedef struct tcache {
    block *head;
    size_t n;
    bool registered;
} tcache;

static _Thread_local tcache cache;
static pthread_mutex_t depot_mu = PTHREAD_MUTEX_INITIALIZER;
static block *depot;
static size_t depot_batches;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* Moves up to BATCH blocks from the head of c into the depot. */
static void give_batch(tcache *c)
{
    block *first = c->head, *last = first;
    size_t k = 1;
    while (k < BATCH && last->next) {
        last = last->next;
        k++;
    }
    c->head = last->next;
    c->n -= k;
    last->next = NULL;
    pthread_mutex_lock(&depot_mu);
    if (depot_batches < DEPOT_MAX) {
        first->next_batch = depot;
        depot = first;
        depot_batches++;
        first = NULL;
    }
    pthread_mutex_unlock(&depot_mu);
    while (first) {
        block *next = first->next;
        cf__free(first);
        first = next;
    }
}

static void on_thread_exit(void *p)
{
    tcache *c = p;
    while (c->head)
        give_batch(c);
}

static void make_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
}

/* Arranges for this thread's blocks to go to the depot when it exits:
 * before the cache first holds any. */
static void hold_blocks(tcache *c)
{
    if (!c->registered) {
        pthread_once(&exit_once, make_key);
        pthread_setspecific(exit_key, c);
        c->registered = true;
    }
}

void *cf__cache_alloc(size_t size)
{
    if (!cf__alloc_is_libc())
        return cf__calloc(1, size);
    tcache *c = &cache;
    if (!c->head) {
        pthread_mutex_lock(&depot_mu);
        block *b = depot;
        if (b) {
            depot = b->next_batch;
            depot_batches--;
        }
        pthread_mutex_unlock(&depot_mu);
        if (!b)
            return cf__calloc(1, size);
        hold_blocks(c);
        c->head = b;
        for (c->n = 0; b; b = b->next)
            c->n++;
    }
    block *b = c->head;
    c->head = b->next;
    c->n--;
    memset(b, 0, size);
    return b;
}

void cf__cache_free(void *p)
{
    if (!p)
        return;
    if (!cf__alloc_is_libc()) {
        cf__free(p);
        return;
    }
    tcache *c = &cache;
    hold_blocks(c);
    block *b = p;
    b->next = c->head;
    c->head = b;
    if (++c->n >= 2 * BATCH)
        give_batch(c);
}
