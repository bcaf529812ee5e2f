/* SPDX-License-Identifier: MIT */
/*
 * deque.c - the slow paths of the Chase-Lev deque (deque.h): allocation,
 * growth and destruction. Growth copies the live range [top, bottom) into an
 * array twice the size and publishes it with a release store; the old array
 * stays readable (linked from the new one) for thieves that loaded it.
 */
#include "deque.h"

static cf__deque_array *array_new(int64_t size)
{
    cf__deque_array *a =
        cf__calloc(1, sizeof *a + (size_t)size * sizeof(a->slot[0]));
    if (a)
        a->size = size;
    return a;
}

int cf__deque_init(cf__deque *q, int64_t size)
{
    cf__deque_array *a = array_new(size);
    if (!a)
        return CF_ENOMEM;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->array, a);
    return 0;
}

void cf__deque_destroy(cf__deque *q)
{
    cf__deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    while (a) {
        cf__deque_array *older = a->older;
        cf__free(a);
        a = older;
    }
}

int cf__deque_grow_push(cf__deque *q, cf__task *t)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t top = atomic_load_explicit(&q->top, memory_order_acquire);
    cf__deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    cf__deque_array *bigger = array_new(a->size * 2);
    if (!bigger)
        return CF_ENOMEM;
    for (int64_t i = top; i < b; i++)
        atomic_store_explicit(&bigger->slot[i & (bigger->size - 1)],
                              atomic_load_explicit(&a->slot[i & (a->size - 1)],
                                                   memory_order_relaxed),
                              memory_order_relaxed);
    bigger->older = a;
    /* release: thieves that acquire the new array see its slots */
    atomic_store_explicit(&q->array, bigger, memory_order_release);
    return cf__deque_push(q, t);
}
