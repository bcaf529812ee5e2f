/* SPDX-License-Identifier: MIT */
/*
 * deque.h - the Chase-Lev work-stealing deque, with the C11 orderings of
 * Le, Pop, Cohen and Zappa Nardelli ("Correct and Efficient Work-Stealing
 * for Weak Memory Models", PPoPP 2013). docs/design.md, "The deque", argues
 * why each ordering is needed.
 *
 * The owner pushes and takes at the bottom; thieves steal at the top. Push
 * is a relaxed store of the slot and a release store of bottom: no
 * read-modify-write. Take needs one seq_cst fence, and a CAS only for the
 * last element. Steal is one CAS. Items are task pointers; the array grows
 * (doubling) when full, and old arrays are kept until the deque is
 * destroyed, because a thief may still be reading one.
 *
 * ThreadSanitizer does not model standalone fences, so the stores and loads
 * that carry the data (bottom in push/steal, the array pointer) are
 * release/acquire themselves; the fences are kept for the correctness
 * argument of the paper.
 */
#ifndef CF_SCHED_DEQUE_H
#define CF_SCHED_DEQUE_H

#include "../internal.h"

typedef struct cf__deque_array {
    int64_t size;                  /* a power of two */
    struct cf__deque_array *older; /* retired arrays, freed with the deque */
    _Atomic(cf__task *) slot[];
} cf__deque_array;

/* The padding keeps top (written by thieves) and bottom (by the owner) on
 * different cache lines without asking for 64-byte alignment, which heap
 * memory from a user's allocator need not have. */
typedef struct cf__deque {
    _Atomic int64_t top; /* thieves */
    char pad1[64];
    _Atomic int64_t bottom; /* owner */
    _Atomic(cf__deque_array *) array;
    char pad2[64];
} cf__deque;

/* Returned by cf__deque_steal when it lost a race: try again later. */
#define CF__STEAL_ABORT ((cf__task *)1)

int cf__deque_init(cf__deque *q, int64_t size); /* 0 or CF_ENOMEM */
void cf__deque_destroy(cf__deque *q);
/* Owner only. 0, or CF_ENOMEM when the array had to grow and could not. */
int cf__deque_grow_push(cf__deque *q, cf__task *t);

static inline int cf__deque_push(cf__deque *q, cf__task *t)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t top = atomic_load_explicit(&q->top, memory_order_acquire);
    cf__deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    if (b - top > a->size - 1)
        return cf__deque_grow_push(q, t);
    atomic_store_explicit(&a->slot[b & (a->size - 1)], t, memory_order_relaxed);
    cf__fence_release();
    /* release: a thief that acquires bottom sees the slot and the task */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return 0;
}

/* Owner only: the newest item, or NULL. */
static inline cf__task *cf__deque_take(cf__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    cf__deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    /* seq_cst: orders our bottom store before the top load, against the
     * thief's top load / bottom load (the Dekker pattern of the paper) */
    cf__fence_seq_cst();
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    cf__task *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->slot[b & (a->size - 1)],
                                 memory_order_relaxed);
        if (t == b) {
            /* The last item: race the thieves for it. */
            if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                         memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

/* Any thread: the oldest item if its index is min or more (items only
 * ever get higher indices than those taken before them), NULL when there
 * is none, or CF__STEAL_ABORT. */
static inline cf__task *cf__deque_steal_from(cf__deque *q, int64_t min)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    if (t < min)
        return NULL;
    cf__fence_seq_cst();
    /* acquire: pairs with the release store of bottom in push */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    /* acquire: pairs with the release store of a grown array */
    cf__deque_array *a = atomic_load_explicit(&q->array, memory_order_acquire);
    cf__task *x =
        atomic_load_explicit(&a->slot[t & (a->size - 1)], memory_order_relaxed);
    /* seq_cst: the CAS on top decides between thieves and the owner */
    if (!atomic_compare_exchange_strong_explicit(
            &q->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
        return CF__STEAL_ABORT;
    return x;
}

/* Any thread: the oldest item, NULL when empty, or CF__STEAL_ABORT. */
static inline cf__task *cf__deque_steal(cf__deque *q)
{
    return cf__deque_steal_from(q, INT64_MIN);
}

/* A racy hint: true when the deque looks non-empty. */
static inline bool cf__deque_nonempty(cf__deque *q)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_seq_cst);
    return b > t;
}

#endif /* CF_SCHED_DEQUE_H */
