/* SPDX-License-Identifier: MIT */
/*
 * serve.h - the worker side every transport shares (and a bytes map's
 * chunks): resolving a TASK frame's function through a one-entry cache,
 * running it (or an initializer) under a task context, and appending its
 * answer, a RESULT or FAIL frame, to a buffer the caller sends. The result
 * is written in place, behind its header: no copy.
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

/* The function a TASK or INIT frame (h, payload p) names, its input in
 * *in, *len; or NULL with ctx's code (CF_EINVAL) and message (caller
 * frees). */
cf_bytes_fn cf__serve_fn(cf__fn_cache *c, const cf__frame *h,
                         const unsigned char *p, const void **in, size_t *len,
                         cf__task_ctx *ctx);

/* Appends to out a RESULT frame of data[0..len) (code 0), or a FAIL frame
 * (aux code) of msg, or cf_strerror(code), with its NUL: 0 or CF_ENOMEM. */
int cf__serve_answer(cf_buffer *out, uint64_t id, int code, const char *msg,
                     const void *data, size_t len);
/* Runs fn over in[0..len) in a fresh task context and appends its answer
 * to out, as cf__serve_answer does: 0 or CF_ENOMEM. */
int cf__serve_run(cf_buffer *out, uint64_t id, cf_bytes_fn fn, const void *in,
                  size_t len);
/* Runs the task of a TASK frame (h, p) as cf__serve_run does, calling
 * started(h->id, arg) (if any) right before the function; a frame that is
 * malformed or names no function found here is answered with CF_EINVAL. */
int cf__serve_task(cf__fn_cache *c, const cf__frame *h, const unsigned char *p,
                   cf_buffer *out, uint64_t id,
                   void (*started)(uint64_t id, void *arg), void *arg);

/* Runs initializer(arg) in a fresh task context: 0, or its failure code
 * with its message in *msg (caller frees; may be NULL). */
int cf__serve_init(cf_fn initializer, void *arg, char **msg);

/* Fills ctx with code and fmt's message naming module and offset. */
void cf__serve_fail(cf__task_ctx *ctx, int code, const char *fmt,
                    const char *module, uint64_t offset);

#endif /* CF_REMOTE_SERVE_H */
