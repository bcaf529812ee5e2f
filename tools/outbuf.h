/* SPDX-License-Identifier: MIT */
/*
 * outbuf.h - one captured output stream of a job, kept whole until it is
 * printed: the first OUTBUF_MEM_MAX bytes in memory, the rest in an
 * unlinked temporary file (in $TMPDIR, else /tmp), so a job that prints
 * gigabytes costs disk, not memory, and many jobs running at once cost at
 * most OUTBUF_MEM_MAX of memory per stream each.
 */
#ifndef CF_TOOLS_OUTBUF_H
#define CF_TOOLS_OUTBUF_H

#include <stddef.h>

#define OUTBUF_MEM_MAX (1u << 20)

typedef struct outbuf {
    char *data; /* the first bytes, in memory */
    size_t len, cap;
    int fd;       /* the rest, in a temporary file; -1 when none */
    size_t total; /* bytes captured in all */
    int error;    /* first errno that lost data (ENOMEM, ENOSPC), or 0 */
} outbuf;

#define OUTBUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0, -1, 0, 0                                                   \
    }

/* Appends n bytes. On failure the bytes are dropped and b->error records
 * why (the job still runs to the end; its output is then incomplete). */
void outbuf_append(outbuf *b, const char *data, size_t n);

/* Writes everything captured to fd, in order: 0, or -1 with errno set. */
int outbuf_write_to(outbuf *b, int fd);

/* Empties b for reuse (a retried job starts with clean output). */
void outbuf_reset(outbuf *b);

/* Frees what b holds; b is then empty. */
void outbuf_free(outbuf *b);

#endif /* CF_TOOLS_OUTBUF_H */
