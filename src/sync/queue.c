/* SPDX-License-Identifier: MIT */
/*
 * queue.c - cf_queue, Python's queue.Queue, LifoQueue and PriorityQueue,
 * with the shutdown of Python 3.13.
 *
 * One pthread mutex guards the items and the counters; three condition
 * variables (monotonic clock) carry the waits, as in CPython: not_empty for
 * get, not_full for put, all_done for join. Items live in one growable
 * array of slots, used as a ring (FIFO), a stack (LIFO) or a binary
 * min-heap (PRIORITY) ordered by (cmp, seq): seq is the insertion number,
 * so equal items come out in insertion order.
 *
 * The array grows by doubling when a put finds it full (never beyond
 * maxsize when bounded); a failed growth returns CF_ENOMEM with the queue
 * unchanged. It never shrinks: memory stays at the high-water mark until
 * cf_queue_free.
 *
 * Shutdown: puts fail with CF_ESHUTDOWN at once, and so do puts that were
 * waiting for room; gets drain what is left, then fail. An immediate
 * shutdown drops what is left, counting it as done for join (never below
 * zero), so gets fail at once and join returns once the items already got
 * are marked done. Every blocked caller is woken.
 *
 * Invariants (under mu): count <= cap; count <= maxsize when bounded;
 * unfinished = puts - task_dones - (items dropped by an immediate shutdown,
 * at most what was unfinished). unfinished may be below count: task_done
 * counts puts, not gets, as in Python.
 *
 * Cost: put and get are one mutex round trip, O(1) (O(log n) compares for
 * PRIORITY) and allocation-free except when the array grows; a futex wake
 * when someone sleeps on the other side.
 */
#include "sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

typedef struct slot {
    void *item;
    uint64_t seq; /* insertion number (PRIORITY's tie-break) */
} slot;

struct cf_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty; /* an item was put, or shutdown */
    pthread_cond_t not_full;  /* an item was got, or shutdown */
    pthread_cond_t all_done;  /* unfinished reached 0 */
    size_t maxsize;           /* 0: unbounded */
    cf_queue_order order;
    int (*cmp)(const void *a, const void *b);
    slot *slots; /* cap slots; FIFO: a ring from head */
    size_t cap, head, count;
    uint64_t next_seq;
    size_t unfinished; /* put and not yet task_done */
    bool shutdown;
};

cf_queue *cf_queue_new(size_t maxsize, cf_queue_order order,
                       int (*cmp)(const void *a, const void *b))
{
    if ((order != CF_FIFO && order != CF_LIFO && order != CF_PRIORITY) ||
        (order == CF_PRIORITY && !cmp)) {
        errno = EINVAL;
        return NULL;
    }
    cf_queue *q = cf__calloc(1, sizeof *q);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&q->mu, NULL);
    if (rc)
        goto fail;
    if ((rc = cf__cond_init(&q->not_empty)))
        goto fail_mu;
    if ((rc = cf__cond_init(&q->not_full)))
        goto fail_not_empty;
    if ((rc = cf__cond_init(&q->all_done)))
        goto fail_not_full;
    q->maxsize = maxsize;
    q->order = order;
    q->cmp = order == CF_PRIORITY ? cmp : NULL;
    return q;

fail_not_full:
    pthread_cond_destroy(&q->not_full);
fail_not_empty:
    pthread_cond_destroy(&q->not_empty);
fail_mu:
    pthread_mutex_destroy(&q->mu);
fail:
    cf__free(q);
    errno = rc == EAGAIN ? ENOMEM : rc;
    return NULL;
}

void cf_queue_free(cf_queue *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->all_done);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    cf__free(q->slots);
    cf__free(q);
}

/* ---- storage (mu held) -------------------------------------------------- */

static bool is_full(const cf_queue *q)
{
    return q->maxsize > 0 && q->count >= q->maxsize;
}

/* Makes room for one more slot: 0, or CF_ENOMEM with nothing changed. */
static int reserve_one(cf_queue *q)
{
    if (q->count < q->cap)
        return 0;
    size_t cap = q->cap ? q->cap : 4;
    if (q->cap) {
        if (cap > SIZE_MAX / 2 / sizeof(slot))
            return CF_ENOMEM;
        cap *= 2;
    }
    if (q->maxsize > 0 && cap > q->maxsize)
        cap = q->maxsize;
    slot *slots = cf__malloc(cap * sizeof(slot));
    if (!slots)
        return CF_ENOMEM;
    /* Copy in order, so a FIFO ring starts at 0 again. */
    for (size_t i = 0; i < q->count; i++)
        slots[i] = q->slots[(q->head + i) % q->cap];
    cf__free(q->slots);
    q->slots = slots;
    q->cap = cap;
    q->head = 0;
    return 0;
}

/* True when slot a comes out before slot b (PRIORITY). */
static bool before(const cf_queue *q, const slot *a, const slot *b)
{
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_push(cf_queue *q, slot s)
{
    size_t i = q->count;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(q, &s, &q->slots[parent]))
            break;
        q->slots[i] = q->slots[parent];
        i = parent;
    }
    q->slots[i] = s;
}

static slot heap_pop(cf_queue *q)
{
    slot top = q->slots[0];
    slot last = q->slots[q->count - 1];
    size_t n = q->count - 1, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(q, &q->slots[child + 1], &q->slots[child]))
            child++;
        if (!before(q, &q->slots[child], &last))
            break;
        q->slots[i] = q->slots[child];
        i = child;
    }
    if (n > 0)
        q->slots[i] = last;
    return top;
}

/* Adds an item; room was reserved. */
static void push(cf_queue *q, void *item)
{
    slot s = { item, q->next_seq++ };
    switch (q->order) {
    case CF_FIFO: q->slots[(q->head + q->count) % q->cap] = s; break;
    case CF_LIFO: q->slots[q->count] = s; break;
    case CF_PRIORITY: heap_push(q, s); break;
    }
    q->count++;
}

/* Removes the next item; the queue is not empty. */
static void *pop(cf_queue *q)
{
    void *item = NULL;
    switch (q->order) {
    case CF_FIFO:
        item = q->slots[q->head].item;
        q->head = (q->head + 1) % q->cap;
        break;
    case CF_LIFO: item = q->slots[q->count - 1].item; break;
    case CF_PRIORITY: item = heap_pop(q).item; break;
    }
    q->count--;
    return item;
}

/* ---- the API -------------------------------------------------------------- */

int cf_queue_put(cf_queue *q, void *item, double timeout)
{
    if (!q)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    while (!q->shutdown && is_full(q)) {
        if (cf__cond_wait(&q->not_full, &q->mu, &d) == CF_ETIMEDOUT &&
            !q->shutdown && is_full(q)) {
            rc = CF_ETIMEDOUT;
            break;
        }
    }
    if (rc == 0 && q->shutdown)
        rc = CF_ESHUTDOWN;
    if (rc == 0)
        rc = reserve_one(q);
    if (rc == 0) {
        push(q, item);
        q->unfinished++;
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int cf_queue_get(cf_queue *q, void **item, double timeout)
{
    if (!q)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    while (q->count == 0) {
        if (q->shutdown) {
            rc = CF_ESHUTDOWN;
            break;
        }
        if (cf__cond_wait(&q->not_empty, &q->mu, &d) == CF_ETIMEDOUT &&
            q->count == 0 && !q->shutdown) {
            rc = CF_ETIMEDOUT;
            break;
        }
    }
    if (rc == 0) {
        void *got = pop(q);
        if (item)
            *item = got;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int cf_queue_task_done(cf_queue *q)
{
    if (!q)
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (q->unfinished == 0)
        rc = CF_EOVERFLOW;
    else if (--q->unfinished == 0)
        pthread_cond_broadcast(&q->all_done);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int cf_queue_join(cf_queue *q, double timeout)
{
    if (!q)
        return CF_EINVAL;
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    while (q->unfinished > 0) {
        if (cf__cond_wait(&q->all_done, &q->mu, &d) == CF_ETIMEDOUT &&
            q->unfinished > 0) {
            rc = CF_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

size_t cf_queue_size(cf_queue *q)
{
    if (!q)
        return 0;
    pthread_mutex_lock(&q->mu);
    size_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

bool cf_queue_empty(cf_queue *q)
{
    if (!q)
        return false;
    pthread_mutex_lock(&q->mu);
    bool empty = q->count == 0;
    pthread_mutex_unlock(&q->mu);
    return empty;
}

bool cf_queue_full(cf_queue *q)
{
    if (!q)
        return false;
    pthread_mutex_lock(&q->mu);
    bool full = is_full(q);
    pthread_mutex_unlock(&q->mu);
    return full;
}

void cf_queue_shutdown(cf_queue *q, bool immediate)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->shutdown = true;
    if (immediate) {
        size_t dropped = q->count < q->unfinished ? q->count : q->unfinished;
        q->unfinished -= dropped;
        q->count = 0;
        q->head = 0;
        if (q->unfinished == 0)
            pthread_cond_broadcast(&q->all_done);
    }
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
}
