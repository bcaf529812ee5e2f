/* SPDX-License-Identifier: MIT */
/*
 * map.c - cf_map, Python's Executor.map over the executor interface, for
 * pointer tasks (cf_map_new) and bytes tasks (cf_map_bytes_new).
 *
 * Items are submitted in input order as tasks, all at once or (buffersize
 * k) so that at most k tasks are submitted and not yet consumed; results
 * are read back in input order. A failed item returns its code and the
 * iteration goes on; a submit refused mid-way (shutdown) is that task's
 * result. The args (ins, lens) arrays are copied, so the caller's may go
 * away after _new; the bytes they point to are copied when their task is
 * submitted.
 *
 * A bytes map with chunksize c > 1 packs c items into one task that runs
 * run_chunk: a TASK frame naming the function, then one ITEM frame per
 * item (remote/codec.h, the frames every remote engine speaks); the task's
 * result is one RESULT or FAIL frame per item. Like Python's chunksize, it trades per-item overhead for failure
 * granularity: a task lost as a whole (a crashed worker) fails every item
 * of its chunk.
 */
#include "bytes.h"
#include "executor.h"
#include "fnid.h"
#include "remote/serve.h"

#include <string.h>

typedef struct map_item {
    cf_future *f; /* NULL: not submitted (yet), or submit failed */
    int err;      /* the submit error, when f is NULL after submission */
} map_item;

struct cf_map {
    cf_executor *ex;
    cf_fn fn; /* a pointer map: fn over args */
    void **args;
    cf_bytes_fn bfn; /* a bytes map: bfn over ins/lens, chunk items a task */
    const void **ins;
    size_t *lens;
    size_t n_in;
    size_t chunk;
    map_item *items;  /* one per task */
    size_t n;         /* tasks */
    size_t next;      /* the task next() reads */
    size_t submitted; /* tasks [0, submitted) were submitted */
    size_t buffersize;
    cf__deadline deadline;
    /* bytes map: the task being read, its items not yet returned */
    cf_future *held;
    size_t left;
    const unsigned char *cur, *end; /* its result, not yet returned */
    int task_rc;                    /* or its failure, for every item */
    const char *task_msg;
};

/* ---- chunks ------------------------------------------------------------ */

/* A chunk task's input is a TASK frame naming the function (no input),
 * then one ITEM frame per item (remote/codec.h); its result one RESULT
 * frame (the item's result) or FAIL frame (aux the code, the message with
 * its NUL) per item, in order. */

static int malformed(const char *what)
{
    cf_fail(CF_EINVAL, "%s", what);
    return CF_EINVAL;
}

static int run_chunk(const void *in, size_t len, cf_buffer *out)
{
    cf__rd rd = { in, len };
    cf__fn_cache cache = { .fn = NULL };
    cf__frame h;
    const unsigned char *p;
    const void *none;
    size_t zero;
    cf__task_ctx ctx;
    if (cf__rd_frame(&rd, &h, &p))
        return malformed("malformed chunk");
    cf_bytes_fn fn = cf__serve_fn(&cache, &h, p, &none, &zero, &ctx);
    if (!fn) {
        cf__free(ctx.message);
        return malformed("cannot find the mapped function");
    }
    while (rd.left) {
        if (cf__rd_frame(&rd, &h, &p) || h.type != CF__FR_ITEM)
            return malformed("malformed chunk");
        int rc = cf__serve_run(out, 0, fn, p, (size_t)h.len);
        if (rc)
            return rc;
    }
    return 0;
}

/* Submits task i of a bytes map: item i itself, or chunk i packed. */
static int submit_bytes_task(cf_map *m, size_t i, cf_future **f)
{
    size_t lo = i * m->chunk;
    if (m->chunk == 1)
        return cf_submit_bytes(m->ex, m->bfn, m->ins[lo], m->lens[lo], f);
    size_t hi = lo + m->chunk < m->n_in ? lo + m->chunk : m->n_in, len;
    int rc;
    unsigned char *fn = cf__frame_task_new(0, CF__FR_TASK, (const void *)m->bfn,
                                           NULL, 0, 0, &len, &rc);
    size_t at = len;
    for (size_t k = lo; k < hi && fn; k++) {
        if (m->lens[k] > SIZE_MAX / 2 - len)
            rc = CF_ENOMEM;
        len += CF__FRAME_HDR + m->lens[k];
    }
    unsigned char *buf = fn && !rc ? cf__realloc(fn, len) : NULL;
    if (!buf) {
        cf__free(fn);
        return rc ? rc : CF_ENOMEM;
    }
    for (size_t k = lo; k < hi; k++) {
        cf__frame h;
        cf__frame_set(&h, CF__FR_ITEM, 0, m->lens[k], 0);
        memcpy(buf + at, &h, sizeof h);
        if (m->lens[k])
            memcpy(buf + at + sizeof h, m->ins[k], m->lens[k]);
        at += sizeof h + m->lens[k];
    }
    rc = cf_submit_bytes(m->ex, run_chunk, buf, len, f);
    cf__free(buf);
    return rc;
}

/* ---- the window, shared by both kinds ---------------------------------- */

/* Submits the next task, allocating its future unless cf_map_new did
 * (it allocates the first window up front, so that running out of memory
 * there leaves nothing queued). */
static int submit_item(cf_map *m)
{
    map_item *it = &m->items[m->submitted];
    if (m->bfn) {
        it->err = submit_bytes_task(m, m->submitted, &it->f);
    } else {
        if (!it->f)
            it->f = cf__task_future_new(m->fn, m->args[m->submitted], 2);
        it->err = it->f ? cf__submit_future(m->ex, it->f) : CF_ENOMEM;
    }
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
    cf_future_release(m->held);
    cf__free(m->items);
    cf__free(m->args);
    cf__free(m->ins);
    cf__free(m->lens);
    cf__free(m);
}

/* A map of n tasks over ex, with its items array: 0, CF_EINVAL, CF_ENOMEM. */
static int map_alloc(cf_map **out, cf_executor *ex, size_t n, size_t buffersize,
                     double timeout)
{
    cf__deadline d;
    if (cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    cf_map *m = cf__calloc(1, sizeof *m);
    if (!m)
        return CF_ENOMEM;
    if (n && !(m->items = cf__calloc(n, sizeof *m->items))) {
        cf__free(m);
        return CF_ENOMEM;
    }
    m->ex = ex;
    m->n = n;
    m->buffersize = buffersize;
    m->deadline = d;
    *out = m;
    return 0;
}

/* How many tasks _new submits. */
static size_t first_window(const cf_map *m)
{
    return m->buffersize && m->buffersize < m->n ? m->buffersize : m->n;
}

/* Waits for the next task. CF_ETIMEDOUT (nothing changes) once the
 * deadline passed with it not done; else 0, the task is consumed, the
 * window refilled, and *f is its future (the caller's reference now) or
 * NULL with *err its submit error. */
static int take_task(cf_map *m, cf_future **f, int *err)
{
    map_item *it = &m->items[m->next];
    if (it->f) {
        double left = cf__deadline_left(&m->deadline);
        if (cf_future_result(it->f, left, NULL) == CF_ETIMEDOUT &&
            !cf_future_done(it->f))
            return CF_ETIMEDOUT;
    }
    *f = it->f;
    *err = it->err;
    it->f = NULL;
    m->next++;
    /* One consumed: keep the window full. */
    if (m->buffersize && m->submitted < m->n)
        submit_item(m);
    return 0;
}

/* An item's failure code as the iterator returns it: CF_EOF and
 * CF_ETIMEDOUT are the iterator's own (the end; the item stays next), so
 * an item that failed with one of them is CF_EINVAL / CF_ETIME instead. */
static int item_code(int rc)
{
    return rc == CF_EOF ? CF_EINVAL : rc == CF_ETIMEDOUT ? CF_ETIME : rc;
}

/* ---- pointer maps ------------------------------------------------------ */

int cf_map_new(cf_map **out, cf_executor *ex, cf_fn fn, void *const *args,
               size_t n, size_t buffersize, double timeout)
{
    if (!out || !ex || !fn || (n && !args))
        return CF_EINVAL;
    cf_map *m;
    int rc = map_alloc(&m, ex, n, buffersize, timeout);
    if (rc)
        return rc;
    if (n) {
        if (!(m->args = cf__malloc(n * sizeof *m->args))) {
            map_destroy(m);
            return CF_ENOMEM;
        }
        memcpy(m->args, args, n * sizeof *m->args);
    }
    m->fn = fn;
    size_t first = first_window(m);
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
        rc = submit_item(m);
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
    if (!m || m->bfn)
        return CF_EINVAL;
    if (m->next == m->n)
        return CF_EOF;
    cf_future *f;
    int err;
    if (take_task(m, &f, &err))
        return CF_ETIMEDOUT;
    if (!f)
        return err;
    int rc = cf_future_result(f, 0, result);
    cf_future_release(f);
    return item_code(rc);
}

/* ---- bytes maps -------------------------------------------------------- */

int cf_map_bytes_new(cf_map **out, cf_executor *ex, cf_bytes_fn fn,
                     const void *const *ins, const size_t *lens, size_t n,
                     size_t chunksize, size_t buffersize, double timeout)
{
    if (!out || !ex || !fn || (n && (!ins || !lens)))
        return CF_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && !ins[i])
            return CF_EINVAL;
    size_t chunk = chunksize ? chunksize : 1;
    if (chunk > UINT32_MAX)
        chunk = UINT32_MAX;
    const char *module = NULL;
    uint64_t offset = 0;
    if (chunk > 1 && cf__fnid_of((const void *)fn, &module, &offset))
        return CF_EINVAL;
    cf_map *m;
    int rc =
        map_alloc(&m, ex, n / chunk + (n % chunk != 0), buffersize, timeout);
    if (rc)
        return rc;
    if (n) {
        m->ins = cf__malloc(n * sizeof *m->ins);
        m->lens = cf__malloc(n * sizeof *m->lens);
        if (!m->ins || !m->lens) {
            map_destroy(m);
            return CF_ENOMEM;
        }
        memcpy(m->ins, ins, n * sizeof *m->ins);
        memcpy(m->lens, lens, n * sizeof *m->lens);
    }
    m->bfn = fn;
    m->n_in = n;
    m->chunk = chunk;
    size_t first = first_window(m);
    while (m->submitted < first) {
        rc = submit_item(m);
        if (rc) {
            cancel_from(m, 0);
            map_destroy(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

/* Starts reading the task just taken: f, or its submit error err. */
static void open_task(cf_map *m, cf_future *f, int err)
{
    size_t lo = (m->next - 1) * m->chunk;
    m->left = lo + m->chunk < m->n_in ? m->chunk : m->n_in - lo;
    m->held = f;
    m->cur = m->end = NULL;
    m->task_rc = err;
    m->task_msg = err ? cf_strerror(err) : NULL;
    if (!f)
        return;
    const void *data;
    size_t len;
    m->task_rc = cf_future_bytes(f, 0, &data, &len);
    if (m->task_rc) {
        cf_future_exception(f, 0, &m->task_msg);
        return;
    }
    m->cur = data;
    m->end = m->cur + len;
}

/* The next item of a chunk's result. */
static int chunk_item(cf_map *m, const void **data, size_t *len)
{
    cf__rd rd = { m->cur, (size_t)(m->end - m->cur) };
    cf__frame h;
    const unsigned char *p = NULL;
    if (cf__rd_frame(&rd, &h, &p) ||
        (h.type != CF__FR_RESULT && (h.type != CF__FR_FAIL || h.aux == 0 ||
                                     h.len == 0 || p[h.len - 1] != '\0'))) {
        m->cur = m->end;
        m->task_rc = CF_EBROKEN;
        m->task_msg = "malformed chunk result";
        *data = m->task_msg;
        *len = strlen(m->task_msg);
        return m->task_rc;
    }
    m->cur = rd.p;
    *data = p;
    *len = h.type == CF__FR_FAIL ? (size_t)h.len - 1 : (size_t)h.len;
    return h.type == CF__FR_FAIL ? item_code(h.aux) : 0;
}

int cf_map_bytes_next(cf_map *m, const void **data, size_t *len)
{
    if (!m || !m->bfn)
        return CF_EINVAL;
    const void *d;
    size_t l;
    if (!data)
        data = &d;
    if (!len)
        len = &l;
    if (!m->left) {
        if (m->next == m->n)
            return CF_EOF;
        cf_future *f;
        int err;
        if (take_task(m, &f, &err))
            return CF_ETIMEDOUT;
        cf_future_release(m->held);
        open_task(m, f, err);
    }
    m->left--;
    if (m->task_rc) {
        *data = m->task_msg;
        *len = strlen(m->task_msg);
        return item_code(m->task_rc);
    }
    if (m->chunk > 1)
        return chunk_item(m, data, len);
    *data = m->cur;
    *len = (size_t)(m->end - m->cur);
    return 0;
}

void cf_map_free(cf_map *m)
{
    if (!m)
        return;
    cancel_from(m, m->next);
    map_destroy(m);
}
