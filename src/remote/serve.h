/* SPDX-License-Identifier: MIT */
/*
 * serve.h - the worker side every transport shares: resolving a task
 * frame's function through one cache, running it (or an initializer) under
 * a task context, so that cf_fail's code and message come back with it.
 * A transport's serving loop reads frames, calls cf__serve_task for each,
 * and answers them in order.
 */
#ifndef CF_REMOTE_SERVE_H
#define CF_REMOTE_SERVE_H

#include "../bytes.h"
#include "codec.h"

/* The last function resolved: tasks of one map or loop name the same
 * function again and again. Zero-initialise. */
typedef struct cf__fn_cache {
    char module[CF__MAX_MODULE + 1];
    uint64_t offset;
    void *fn;
} cf__fn_cache;

/* The function a TASK frame (h and its payload p) names, and its input in
 * *in and *len: the function, or NULL with ctx's code and message (caller
 * frees): CF_EINVAL when the frame is malformed or the function cannot be
 * found in this process. */
cf_bytes_fn cf__serve_fn(cf__fn_cache *c, const cf__frame *h,
                         const unsigned char *p, const void **in, size_t *len,
                         cf__task_ctx *ctx);

/* Runs the task a TASK frame carries (h and its payload p) in a fresh task
 * context. started(id, arg) is called once the frame is decoded and the
 * function resolved, as the last step before the function runs (NULL:
 * none). Returns the result (caller frees), or NULL with ctx's code and
 * message (caller frees the message): the task's own failure, CF_EINVAL
 * when the function cannot be found here or the frame is malformed. */
cf__bytes *cf__serve_task(cf__fn_cache *c, const cf__frame *h,
                          const unsigned char *p, cf__task_ctx *ctx,
                          void (*started)(uint64_t id, void *arg), void *arg);

/* Runs initializer(arg) in a fresh task context: 0, or its failure code
 * with its message in *msg (caller frees; NULL when there is none). */
int cf__serve_init(cf_fn initializer, void *arg, char **msg);

/* Fills ctx with code and a message naming module (or "the program") and
 * offset through fmt ("%s" then "%#llx"). */
void cf__serve_fail(cf__task_ctx *ctx, int code, const char *fmt,
                    const char *module, uint64_t offset);

#endif /* CF_REMOTE_SERVE_H */
