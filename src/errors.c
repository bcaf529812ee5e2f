/* SPDX-License-Identifier: MIT */
/*
 * errors.c - cf_strerror: a fixed text for every CF_E* code, strerror for
 * other negative codes (the CF_E* codes that mirror errno values keep their
 * own, more specific, wording).
 */
#include "internal.h"

#include <string.h>

const char *cf_strerror(int code)
{
    switch (code) {
    case CF_OK: return "success";
    case CF_EINVAL: return "invalid argument or state";
    case CF_ENOMEM: return "out of memory";
    case CF_ETIMEDOUT: return "timed out";
    case CF_ECANCELED: return "cancelled";
    case CF_ESHUTDOWN: return "shut down";
    case CF_EBROKEN:
        return "broken: the pool or barrier is broken, or the worker died";
    case CF_EPERM: return "not held by the caller";
    case CF_EDEADLK: return "the wait could never end (deadlock)";
    case CF_EOVERFLOW: return "released more than allowed";
    case CF_EOF: return "end of iteration";
    case CF_ETIME: return "task killed: it ran past its time limit";
    default: break;
    }
    if (code < 0)
        return strerror(-code);
    return "unknown error (positive code)";
}
