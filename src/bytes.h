/* SPDX-License-Identifier: MIT */
/*
 * bytes.h - the byte buffer of bytes tasks, shared by every engine: thread
 * pools run bytes tasks in place; process and MPI pools run them in a
 * worker and ship the buffer back.
 */
#ifndef CF_BYTES_H
#define CF_BYTES_H

#include "future.h"

struct cf_buffer {
    cf__bytes *b; /* header + data; NULL until the first byte */
    size_t cap;   /* bytes of data room in b */
};

/* Runs fn over in[0..len) with a fresh buffer, inside the current task
 * context: returns the result (caller owns it; never NULL on success), or
 * NULL with the failure recorded in the context (the task's code, with
 * cf_fail's message if it gave one; CF_ENOMEM if the result could not be
 * kept). */
cf__bytes *cf__run_bytes(cf_bytes_fn fn, const void *in, size_t len);

/* The input address a bytes future was submitted with (cf_future_arg). */
const void *cf__bytes_input(const cf_future *f);

#endif /* CF_BYTES_H */
