/* SPDX-License-Identifier: MIT */
/*
 * serve.h - the worker side every transport shares: resolving a TASK
 * frame's function through a one-entry cache and running it (or an
 * initializer) under a task context, so that cf_fail's code and message
 * come back with the answer.
 */
#ifndef CF_REMOTE_SERVE_H
#define CF_REMOTE_SERVE_H

#include "../bytes.h"
#include "codec.h"

/* The last function resolved (tasks of one map name the same one). */
typedef struct cf__fn_cache {
    char module[CF__MAX_MODULE + 1];
    uint64_t offset;
    void *fn;
} cf__fn_cache;

/* The function a TASK frame (h, payload p) names, its input in *in, *len;
 * or NULL with ctx's code (CF_EINVAL) and message (caller frees). */
cf_bytes_fn cf__serve_fn(cf__fn_cache *c, const cf__frame *h,
                         const unsigned char *p, const void **in, size_t *len,
                         cf__task_ctx *ctx);

/* Runs the task of a TASK frame in a fresh task context, calling
 * started(id, arg) (if any) right before the function: the result (caller
 * frees), or NULL with ctx's code and message (caller frees). */
cf__bytes *cf__serve_task(cf__fn_cache *c, const cf__frame *h,
                          const unsigned char *p, cf__task_ctx *ctx,
                          void (*started)(uint64_t id, void *arg), void *arg);

/* Runs initializer(arg) in a fresh task context: 0, or its failure code
 * with its message in *msg (caller frees; may be NULL). */
int cf__serve_init(cf_fn initializer, void *arg, char **msg);

/* Fills ctx with code and fmt's message naming module and offset. */
void cf__serve_fail(cf__task_ctx *ctx, int code, const char *fmt,
                    const char *module, uint64_t offset);

#endif /* CF_REMOTE_SERVE_H */
