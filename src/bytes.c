/* SPDX-License-Identifier: MIT */
/*
 * bytes.c - bytes tasks: cf_buffer, cf_submit_bytes and cf_future_bytes.
 *
 * On an engine without its own bytes path (thread pools), a bytes task is a
 * plain task: the future owns a copy of the input (in arg) and a trampoline
 * runs fn with a fresh buffer, handing the buffer's block back as the
 * result; cf__future_finish files it under the future's bytes. Engines that
 * ship work elsewhere (process pools) implement submit_bytes themselves.
 */
#include "bytes.h"
#include "executor.h"
#include "trace.h"

#include <string.h>

int cf_buffer_reserve(cf_buffer *buf, size_t extra)
{
    if (!buf)
        return CF_EINVAL;
    size_t len = buf->b ? buf->b->len : 0;
    if (extra > SIZE_MAX / 2 - len - sizeof(cf__bytes))
        return CF_ENOMEM;
    if (buf->b && len + extra <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < len + extra)
        cap *= 2;
    cf__bytes *b = cf__realloc(buf->b, sizeof *b + cap);
    if (!b)
        return CF_ENOMEM;
    if (!buf->b)
        b->len = 0;
    buf->b = b;
    buf->cap = cap;
    return 0;
}

int cf_buffer_append(cf_buffer *buf, const void *data, size_t len)
{
    if (!buf || (len && !data))
        return CF_EINVAL;
    int rc = cf_buffer_reserve(buf, len);
    if (rc)
        return rc;
    if (len) {
        memcpy(buf->b->data + buf->b->len, data, len);
        buf->b->len += len;
    }
    return 0;
}

cf__bytes *cf__run_bytes(cf_bytes_fn fn, const void *in, size_t len)
{
    cf_buffer buf = { NULL, 0 };
    int rc = fn(in, len, &buf);
    if (rc == 0 && !buf.b)
        rc = cf_buffer_reserve(&buf, 0); /* an empty result is a result */
    cf__task_ctx *ctx = cf__task_ctx_swap(NULL);
    cf__task_ctx_swap(ctx);
    if (rc == 0 && ctx && ctx->code == 0)
        return buf.b;
    cf__free(buf.b);
    if (ctx && ctx->code == 0)
        ctx->code = rc; /* a cf_fail with a message already wins */
    return NULL;
}

/* A bytes task on an engine that runs it in place. */
typedef struct bytes_job {
    cf_bytes_fn fn;
    const void *in; /* the caller's address, for cf_future_arg */
    size_t len;
    unsigned char data[];
} bytes_job;

static void *bytes_trampoline(void *arg)
{
    bytes_job *job = arg;
    cf__trace(CF__TR_TASK_NAME, (const void *)job->fn, 0);
    return cf__run_bytes(job->fn, job->data, job->len);
}

const void *cf__bytes_input(const cf_future *f)
{
    /* The job lives in arg until the future is freed. */
    if (f->fn == bytes_trampoline)
        return f->arg ? ((const bytes_job *)f->arg)->in : NULL;
    return f->input;
}

int cf_submit_bytes(cf_executor *ex, cf_bytes_fn fn, const void *in, size_t len,
                    cf_future **out)
{
    if (!ex || !fn || (len && !in))
        return CF_EINVAL;
    cf_future *f = cf__future_alloc(out ? 2 : 1);
    if (!f)
        return CF_ENOMEM;
    cf__future_mark_bytes(f);
    int rc;
    if (ex->ops->submit_bytes) {
        f->input = in;
        rc = ex->ops->submit_bytes(ex, f, fn, in, len);
    } else {
        bytes_job *job = cf__malloc(sizeof *job + len);
        if (!job) {
            cf__cache_free(f);
            return CF_ENOMEM;
        }
        job->fn = fn;
        job->in = in;
        job->len = len;
        if (len)
            memcpy(job->data, in, len);
        f->fn = bytes_trampoline;
        f->arg = job;
        rc = ex->ops->submit(ex, f);
    }
    if (rc) {
        cf__free(f->arg);
        cf__cache_free(f);
        return rc;
    }
    if (out)
        *out = f;
    return 0;
}

int cf_future_bytes(cf_future *f, double timeout, const void **data,
                    size_t *len)
{
    if (!f)
        return CF_EINVAL;
    int rc = cf_future_result(f, timeout, NULL);
    if (rc)
        return rc;
    if (!cf__future_is_bytes(f) || !f->bytes)
        return CF_EINVAL; /* not a bytes task */
    if (data)
        *data = f->bytes->data;
    if (len)
        *len = f->bytes->len;
    return 0;
}
