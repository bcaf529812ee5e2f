/* SPDX-License-Identifier: MIT */
/*
 * cache.c - per-thread caches of fixed-size blocks, for the records that
 * every task costs (futures). A thread allocates from and frees into its own
 * list with no atomic operation; past a high-water mark it hands a batch to
 * a shared depot (one mutex round trip per batch), and an empty thread takes
 * a batch back. So a task submitted by one thread and freed by another costs
 * no malloc on the steady state.
 *
 * Blocks are carved from slabs mapped by the cache itself: no per-block
 * header, so an 88-byte future costs 88 bytes, and no malloc on a miss. A
 * thread's slabs grow from SLAB_MIN to SLAB_MAX; a SLAB_MAX slab is aligned
 * to its size. Built with -DCF_CACHE_THP, it is also advised as a
 * transparent huge page (a burst of a million futures then takes about 45
 * page faults instead of 21,500); the default leaves that to the system:
 * on the benchmarks' virtual machine fresh huge pages made B1 bimodal and
 * its median 1.5-2.3x slower (docs/design.md, "Memory"). Slabs are never
 * unmapped: a freed block goes back to a cache or the depot and is reused,
 * so the memory kept is the high-water mark of live blocks (plus what the
 * last slab of each thread has not carved yet), and a second burst maps
 * nothing new.
 *
 * Caching is on only with the libc allocator: a replaced allocator (tests,
 * users) sees every allocation, as cf_replace_allocator promises. A thread's
 * blocks go to the depot when it exits (a pthread key destructor), and the
 * uncarved rest of its slab goes to a list of spare regions that the next
 * thread to need a slab takes first.
 */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE, MAP_ANONYMOUS */
#include "../internal.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define BATCH 128
#define SLAB_MIN ((size_t)64 << 10)
#define SLAB_MAX ((size_t)2 << 20) /* one transparent huge page on x86-64 */

typedef struct block {
    struct block *next;       /* within a list */
    struct block *next_batch; /* depot: the next batch (first block only) */
} block;

/* An uncarved region left by an exited thread, stored at its own start. */
typedef struct spare {
    struct spare *next;
    char *end;
} spare;

typedef struct tcache {
    block *head;
    size_t n;
    char *bump, *end; /* the uncarved rest of this thread's newest slab */
    size_t next_slab; /* bytes of the next slab this thread maps */
    size_t size;      /* the block size, rounded up to 8 */
    bool registered;
} tcache;

static _Thread_local tcache cache;
static pthread_mutex_t depot_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(block *) depot; /* read unlocked only as a hint */
static spare *spares;
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
    first->next_batch = atomic_load_explicit(&depot, memory_order_relaxed);
    atomic_store_explicit(&depot, first, memory_order_relaxed);
    pthread_mutex_unlock(&depot_mu);
}

static void on_thread_exit(void *p)
{
    tcache *c = p;
    while (c->head)
        give_batch(c);
    if (c->size && (size_t)(c->end - c->bump) >= c->size) {
        spare *s = (spare *)(void *)c->bump;
        s->end = c->end;
        pthread_mutex_lock(&depot_mu);
        s->next = spares;
        spares = s;
        pthread_mutex_unlock(&depot_mu);
    }
    c->bump = c->end = NULL;
    c->registered = false; /* a later destructor that frees one registers
                              again, and so comes back here */
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

/* Maps a slab of bytes (SLAB_MAX ones aligned to SLAB_MAX, and advised as a
 * huge page with CF_CACHE_THP); NULL if the kernel refuses. */
static char *map_slab(size_t bytes)
{
    size_t len = bytes == SLAB_MAX ? 2 * bytes : bytes;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (len != bytes) {
        char *a =
            (char *)(((uintptr_t)p + bytes - 1) & ~(uintptr_t)(bytes - 1));
        if (a > p)
            munmap(p, (size_t)(a - p));
        if (a + bytes < p + len)
            munmap(a + bytes, (size_t)(p + len - (a + bytes)));
        p = a;
#if defined MADV_HUGEPAGE && defined CF_CACHE_THP
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
    }
    return p;
}

/* Gives c a region to carve: an exited thread's spare (each holds at least
 * one block), else a new slab. */
static bool new_region(tcache *c)
{
    pthread_mutex_lock(&depot_mu);
    spare *s = spares;
    if (s)
        spares = s->next;
    pthread_mutex_unlock(&depot_mu);
    if (s) {
        c->bump = (char *)s;
        c->end = s->end;
        memset(s, 0, sizeof *s);
        return true;
    }
    if (!c->next_slab)
        c->next_slab = SLAB_MIN;
    char *p = map_slab(c->next_slab);
    if (!p)
        return false;
    c->bump = p;
    c->end = p + c->next_slab;
    if (c->next_slab < SLAB_MAX)
        c->next_slab *= 2;
    return true;
}

/* The slow path of cf__cache_alloc: the thread's list is empty. */
static void *refill(tcache *c, size_t size)
{
    c->size = (size + 7) & ~(size_t)7; /* the stride of carved blocks */
    if (atomic_load_explicit(&depot, memory_order_relaxed)) {
        pthread_mutex_lock(&depot_mu);
        block *b = atomic_load_explicit(&depot, memory_order_relaxed);
        if (b)
            atomic_store_explicit(&depot, b->next_batch, memory_order_relaxed);
        pthread_mutex_unlock(&depot_mu);
        if (b) {
            hold_blocks(c);
            c->head = b->next;
            c->n = 0;
            for (block *x = c->head; x; x = x->next)
                c->n++;
            memset(b, 0, size);
            return b;
        }
    }
    if ((size_t)(c->end - c->bump) < c->size) {
        hold_blocks(c);
        if (!new_region(c))
            return NULL;
    }
    void *p = c->bump; /* never used: zero already */
    c->bump += c->size;
    return p;
}

void *cf__cache_alloc(size_t size)
{
    if (!cf__alloc_is_libc())
        return cf__calloc(1, size);
    tcache *c = &cache;
    block *b = c->head;
    if (!b)
        return refill(c, size);
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
