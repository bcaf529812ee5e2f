/* SPDX-License-Identifier: MIT */
/*
 * serve.c - running task frames and initializers on the worker side
 * (serve.h), for every transport.
 */
#include "serve.h"

#include "../fnid.h"

#include <stdio.h>
#include <string.h>

void cf__serve_fail(cf__task_ctx *ctx, int code, const char *fmt,
                    const char *module, uint64_t offset)
{
    char buf[CF__MAX_MODULE + 160];
    snprintf(buf, sizeof buf, fmt, module[0] ? module : "the program",
             (unsigned long long)offset);
    ctx->code = code;
    ctx->message = cf__strdup(buf);
}

static void *resolve(cf__fn_cache *c, const char *name, uint64_t offset)
{
    if (c->fn && offset == c->offset && strcmp(c->module, name) == 0)
        return c->fn;
    void *fn = cf__fnid_resolve(name, offset);
    if (fn) {
        snprintf(c->module, sizeof c->module, "%s", name);
        c->offset = offset;
        c->fn = fn;
    }
    return fn;
}

cf_bytes_fn cf__serve_fn(cf__fn_cache *c, const cf__frame *h,
                         const unsigned char *p, const void **in, size_t *len,
                         cf__task_ctx *ctx)
{
    size_t mlen = (size_t)h->aux;
    *ctx = (cf__task_ctx){ 0, NULL };
    if ((h->type != CF__FR_TASK && h->type != CF__FR_INIT) || h->aux < 0 ||
        mlen > CF__MAX_MODULE || h->len < 8 + mlen) {
        ctx->code = CF_EINVAL;
        ctx->message = cf__strdup("malformed task frame");
        return NULL;
    }
    uint64_t offset;
    memcpy(&offset, p, 8);
    char name[CF__MAX_MODULE + 1];
    memcpy(name, p + 8, mlen);
    name[mlen] = '\0';
    cf_bytes_fn fn = (cf_bytes_fn)resolve(c, name, offset);
    if (!fn)
        cf__serve_fail(ctx, CF_EINVAL,
                       h->type == CF__FR_INIT
                           ? "the worker cannot find the initializer (in %s "
                             "at offset %#llx)"
                           : "the worker cannot find the task function (in "
                             "%s at offset %#llx)",
                       name, offset);
    *in = p + 8 + mlen;
    *len = (size_t)h->len - 8 - mlen;
    return fn;
}

int cf__serve_answer(cf_buffer *out, uint64_t id, int code, const char *msg,
                     const void *data, size_t len)
{
    if (code) {
        data = msg ? msg : cf_strerror(code);
        len = strnlen(data, CF__MAX_MESSAGE - 1);
    }
    cf__frame h;
    cf__frame_set(&h, code ? CF__FR_FAIL : CF__FR_RESULT, id, len + (code != 0),
                  code);
    int rc = cf_buffer_reserve(out, sizeof h + len + 1);
    if (!rc)
        rc = cf_buffer_append(out, &h, sizeof h);
    if (!rc && len)
        rc = cf_buffer_append(out, data, len);
    if (!rc && code)
        rc = cf_buffer_append(out, "", 1);
    return rc;
}

/* cf__serve_run, calling started(id, arg) (if any) right before fn: after
 * the header's room is made (an allocation, maybe a system call), so that
 * a death between the mark and the function's first instruction stays as
 * unlikely as the docs say. */
static int serve_run(cf_buffer *out, uint64_t id, cf_bytes_fn fn,
                     const void *in, size_t len,
                     void (*started)(uint64_t id, void *arg), void *arg)
{
    cf__frame h = { 0 };
    int rc = cf_buffer_append(out, &h, sizeof h);
    if (rc)
        return rc;
    size_t at = out->b->len; /* the result starts here */
    cf__task_ctx ctx = { 0, NULL };
    cf__task_ctx *outer = cf__task_ctx_swap(&ctx);
    if (started)
        started(id, arg);
    int code = fn(in, len, out);
    cf__task_ctx_swap(outer);
    if (ctx.code || code) {
        out->b->len = at - sizeof h; /* drop what it appended */
        rc = cf__serve_answer(out, id, ctx.code ? ctx.code : code, ctx.message,
                              NULL, 0);
        cf__free(ctx.message);
        return rc;
    }
    cf__frame_set(&h, CF__FR_RESULT, id, out->b->len - at, 0);
    memcpy(out->b->data + at - sizeof h, &h, sizeof h);
    return 0;
}

int cf__serve_run(cf_buffer *out, uint64_t id, cf_bytes_fn fn, const void *in,
                  size_t len)
{
    return serve_run(out, id, fn, in, len, NULL, NULL);
}

int cf__serve_task(cf__fn_cache *c, const cf__frame *h, const unsigned char *p,
                   cf_buffer *out, uint64_t id,
                   void (*started)(uint64_t id, void *arg), void *arg)
{
    const void *in;
    size_t len;
    cf__task_ctx ctx;
    cf_bytes_fn fn = cf__serve_fn(c, h, p, &in, &len, &ctx);
    if (!fn) {
        int rc = cf__serve_answer(out, id, ctx.code, ctx.message, NULL, 0);
        cf__free(ctx.message);
        return rc;
    }
    /* The mark comes last: a death before it is one of a task that never
     * started (run again elsewhere), one after it blames this task. */
    return serve_run(out, id, fn, in, len, started, arg);
}

int cf__serve_init(cf_fn initializer, void *arg, char **msg)
{
    *msg = NULL;
    if (!initializer)
        return 0;
    cf__task_ctx ctx = { 0, NULL };
    cf__task_ctx *outer = cf__task_ctx_swap(&ctx);
    initializer(arg);
    cf__task_ctx_swap(outer);
    *msg = ctx.message;
    return ctx.code;
}
