/* SPDX-License-Identifier: MIT */
/*
 * task_ctx.c - cf_fail: a task records its failure in the context its
 * executor installed on this thread (cf__task_ctx_swap). The last call wins.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

int cf_fail(int code, const char *fmt, ...)
{
    cf__task_ctx *ctx = cf__task_ctx_swap(NULL);
    cf__task_ctx_swap(ctx);
    if (!ctx || code == 0)
        return CF_EINVAL;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && (msg = cf__malloc((size_t)n + 1)) != NULL) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        }
        /* Out of memory: the code is kept, the message falls back to
         * cf_strerror(code). */
    }
    cf__free(ctx->message);
    ctx->code = code;
    ctx->message = msg;
    return 0;
}
