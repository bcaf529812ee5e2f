/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the allocation hook. Every allocation of cfutures goes through
 * these four pointers, so tests can fail the Nth allocation and users can
 * plug in their own allocator (cf_replace_allocator, as uv_replace_allocator).
 * The pointers are set before any object exists, so plain loads suffice;
 * they are atomics only so that a test swapping them is race-free.
 */
#include "../internal.h"

#include <stdlib.h>
#include <string.h>

static _Atomic(cf_malloc_fn) alloc_malloc = malloc;
static _Atomic(cf_realloc_fn) alloc_realloc = realloc;
static _Atomic(cf_calloc_fn) alloc_calloc = calloc;
static _Atomic(cf_free_fn) alloc_free = free;

int cf_replace_allocator(cf_malloc_fn malloc_fn, cf_realloc_fn realloc_fn,
                         cf_calloc_fn calloc_fn, cf_free_fn free_fn)
{
    int given = !!malloc_fn + !!realloc_fn + !!calloc_fn + !!free_fn;
    if (given == 0) {
        malloc_fn = malloc;
        realloc_fn = realloc;
        calloc_fn = calloc;
        free_fn = free;
    } else if (given != 4) {
        return CF_EINVAL;
    }
    atomic_store_explicit(&alloc_malloc, malloc_fn, memory_order_relaxed);
    atomic_store_explicit(&alloc_realloc, realloc_fn, memory_order_relaxed);
    atomic_store_explicit(&alloc_calloc, calloc_fn, memory_order_relaxed);
    atomic_store_explicit(&alloc_free, free_fn, memory_order_relaxed);
    return 0;
}

void *cf__malloc(size_t size)
{
    return atomic_load_explicit(&alloc_malloc, memory_order_relaxed)(size);
}

void *cf__calloc(size_t count, size_t size)
{
    return atomic_load_explicit(&alloc_calloc, memory_order_relaxed)(count,
                                                                     size);
}

void *cf__realloc(void *ptr, size_t size)
{
    return atomic_load_explicit(&alloc_realloc, memory_order_relaxed)(ptr,
                                                                      size);
}

void cf__free(void *ptr)
{
    if (ptr)
        atomic_load_explicit(&alloc_free, memory_order_relaxed)(ptr);
}

bool cf__alloc_is_libc(void)
{
    return atomic_load_explicit(&alloc_malloc, memory_order_relaxed) == malloc;
}

char *cf__strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *copy = cf__malloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}
