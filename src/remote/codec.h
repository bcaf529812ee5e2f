/* SPDX-License-Identifier: MIT */
/*
 * codec.h - the one frame format of the remote engines (process pools, MPI
 * pools, and the records of a bytes map's chunks): a 32-byte checked
 * header, then `len` payload bytes.
 *
 *   u32 magic "CFPP" | u16 version | u16 type | u64 id | u64 len |
 *   i32 aux | u32 check (a hash of the 28 bytes before it)
 *
 * Both ends run the same program image, so fields are in native byte
 * order. A reader checks every header (cf__frame_bad) and every length
 * against what is left of its buffer (cf__rd): nothing is read out of
 * bounds, and stray bytes are told from a header.
 */
#ifndef CF_REMOTE_CODEC_H
#define CF_REMOTE_CODEC_H

#include "../internal.h"

#include <sys/uio.h>

#define CF__FRAME_MAGIC                                                        \
    0x50504643u /* the bytes "CFPP" on a little-endian CPU */
#define CF__FRAME_VERSION 1
#define CF__FRAME_HDR 32
/* Limits a valid frame respects. */
#define CF__MAX_MODULE 4096u       /* module path bytes */
#define CF__MAX_MESSAGE (1u << 20) /* failure message bytes */
#define CF__MAX_PAYLOAD ((uint64_t)1 << 40)

enum {
    CF__FR_INIT = 1,      /* pool: as TASK, naming the initializer (its
                             input names initarg), or empty: none */
    CF__FR_TASK = 2,      /* pool: aux module length; payload u64 offset,
                             module, input bytes */
    CF__FR_READY = 3,     /* worker: initializer done; no payload */
    CF__FR_INIT_FAIL = 4, /* worker: aux code; payload message */
    CF__FR_RESULT = 5,    /* worker: payload the result bytes */
    CF__FR_FAIL = 6,      /* worker: aux code; payload message */
    CF__FR_BATCH = 7,     /* MPI pool: id batch; aux tasks; TASK frames */
    CF__FR_ANSWERS = 8,   /* MPI worker: id batch; aux first task; payload
                             cf__answers, then RESULT/FAIL frames */
    CF__FR_HELLO = 9,     /* MPI worker: aux code; payload message */
    CF__FR_ITEM = 10,     /* an item of a map's chunk: payload its input */
    CF__FR_LAST = CF__FR_ITEM,
};

typedef struct cf__frame {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint64_t id;
    uint64_t len;
    int32_t aux;
    uint32_t check;
} cf__frame;
_Static_assert(sizeof(cf__frame) == CF__FRAME_HDR, "the header is 32 bytes");

/* Fills in a header, its check included. */
void cf__frame_set(cf__frame *h, uint16_t type, uint64_t id, uint64_t len,
                   int32_t aux);
/* NULL when the header is well formed, else what is wrong with it. */
const char *cf__frame_bad(const cf__frame *h);

/* A TASK (or INIT) frame for fn over in[0..len), at `extra` bytes into
 * one new allocation (the caller's record first); *flen its length. NULL:
 * *rc is CF_EINVAL (fn cannot be named, or too large) or CF_ENOMEM. */
void *cf__frame_task_new(size_t extra, uint16_t type, const void *fn,
                         const void *in, size_t len, uint64_t id, size_t *flen,
                         int *rc);

/* A bounds-checked reader over one buffer. */
typedef struct cf__rd {
    const unsigned char *p;
    size_t left;
} cf__rd;
/* The next n bytes (n from the wire, so 64-bit), or NULL if cut short. */
const unsigned char *cf__rd_skip(cf__rd *r, uint64_t n);
/* The next frame, checked, in *h and *payload: NULL, or what is wrong. */
const char *cf__rd_frame(cf__rd *r, cf__frame *h,
                         const unsigned char **payload);

/* Writes iov[0..n) to a blocking socket (no SIGPIPE): 0, or -1. */
int cf__send_all(int fd, struct iovec *iov, int n);

#endif /* CF_REMOTE_CODEC_H */
