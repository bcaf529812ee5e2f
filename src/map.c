/*
 * map.c - cf_map, Python's Executor.map over the executor interface.
 *
 * Items are submitted in input order, all at once or (buffersize k) so that
 * at most k are submitted and not yet consumed; results are read back in
 * input order. A failed item returns its code and the iteration goes on; a
 * submit refused mid-way (shutdown) is that item's result. The args array
 * is copied, so the caller's may go away after cf_map_new.
 */
#include "executor.h"

#include <string.h>

typedef struct map_item {
    cf_future *f; /* NULL: not submitted (yet), or submit failed */
    int err;      /* the submit error, when f is NULL after submission */
} map_item;

struct cf_map {
    cf_executor *ex;
    cf_fn fn;
    void **args;
    map_item *items;
    size_t n;
    size_t next;      /* the item next() returns */
    size_t submitted; /* items [0, submitted) were submitted */
    size_t buffersize;
    cf__deadline deadline;
};

/* Submits the next item, allocating its future unless cf_map_new did
 * (it allocates the first window up front, so that running out of memory
 * there leaves nothing queued). */
static int submit_item(cf_map *m)
{
    map_item *it = &m->items[m->submitted];
    if (!it->f)
        it->f = cf__task_future_new(m->fn, m->args[m->submitted], 2);
    it->err = it->f ? cf__submit_future(m->ex, it->f) : CF_ENOMEM;
    if (it->err)
        it->f = NULL;
    m->submitted++;
    return it->err;
}

static void cancel_from(cf_map *m, size_t from)
{
    for (size_t i = from; i < m->submitted; i++) {
        if (m->items[i].f) {
            cf_future_cancel(m->items[i].f);
            cf_future_release(m->items[i].f);
            m->items[i].f = NULL;
        }
    }
}

static void map_destroy(cf_map *m)
{
    cf__free(m->items);
    cf__free(m->args);
    cf__free(m);
}

int cf_map_new(cf_map **out, cf_executor *ex, cf_fn fn, void *const *args,
               size_t n, size_t buffersize, double timeout)
{
    cf__deadline d;
    if (!out || !ex || !fn || (n && !args) || cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    cf_map *m = cf__calloc(1, sizeof *m);
    if (!m)
        return CF_ENOMEM;
    if (n) {
        m->args = cf__malloc(n * sizeof *m->args);
        m->items = cf__calloc(n, sizeof *m->items);
        if (!m->args || !m->items) {
            map_destroy(m);
            return CF_ENOMEM;
        }
        memcpy(m->args, args, n * sizeof *m->args);
    }
    m->ex = ex;
    m->fn = fn;
    m->n = n;
    m->buffersize = buffersize;
    m->deadline = d;
    size_t first = buffersize && buffersize < n ? buffersize : n;
    for (size_t i = 0; i < first; i++) {
        m->items[i].f = cf__task_future_new(fn, m->args[i], 2);
        if (!m->items[i].f) {
            while (i-- > 0)
                cf__cache_free(m->items[i].f);
            map_destroy(m);
            return CF_ENOMEM;
        }
    }
    while (m->submitted < first) {
        int rc = submit_item(m);
        if (rc) {
            for (size_t i = m->submitted; i < first; i++)
                cf__cache_free(m->items[i].f);
            cancel_from(m, 0);
            map_destroy(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

int cf_map_next(cf_map *m, void **result)
{
    if (!m)
        return CF_EINVAL;
    if (m->next == m->n)
        return CF_EOF;
    map_item *it = &m->items[m->next];
    int rc = it->err;
    if (it->f) {
        double left = cf__deadline_left(&m->deadline);
        rc = cf_future_result(it->f, left, result);
        if (rc == CF_ETIMEDOUT && !cf_future_done(it->f))
            return CF_ETIMEDOUT;
        cf_future_release(it->f);
        it->f = NULL;
    }
    m->next++;
    /* One consumed: keep the window full. */
    if (m->buffersize && m->submitted < m->n)
        submit_item(m);
    return rc;
}

void cf_map_free(cf_map *m)
{
    if (!m)
        return;
    cancel_from(m, m->next);
    map_destroy(m);
}
