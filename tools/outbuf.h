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

#include <stdbool.h>
#include <stddef.h>

#define OUTBUF_MEM_MAX (1u << 20)

typedef struct outbuf {
    char *data; /* the first bytes, in memory */
    size_t len, cap;
    int fd;       /* the rest, in a temporary file; -1 when none */
    size_t total; /* bytes captured in all */
    int error;    /* first errno that lost data (ENOMEM, ENOSPC), or 0 */
    /* Waiting to be printed (outbuf_park): all of it in the park file, or
     * in memory counted against the park's budget. */
    bool parked;
    bool in_budget;
    long long park_off;
} outbuf;

#define OUTBUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0, -1, 0, 0, false, false, 0                                  \
    }

/* Where outputs wait to be printed in order (-k): in memory up to a
 * budget, the rest in one unlinked temporary file, whatever the number of
 * outputs waiting. Used by one thread. */
typedef struct outpark {
    int fd;        /* the file, -1 until needed */
    long long end; /* bytes written to it */
    size_t budget; /* memory waiting outputs may hold */
    size_t held;   /* memory they hold now */
} outpark;

#define OUTPARK_INIT(budget)                                                   \
    {                                                                          \
        -1, 0, (budget), 0                                                     \
    }

/* Sets b aside until it is printed: in memory while the budget allows
 * and it has no file of its own, else moved to the park's file (and its
 * own file closed). 0, or -1 with errno set when the park's file failed:
 * b is then left as it was. */
int outbuf_park(outbuf *b, outpark *p);

/* Closes the park's file. */
void outpark_close(outpark *p);

/* Appends n bytes. On failure the bytes are dropped and b->error records
 * why (the job still runs to the end; its output is then incomplete). */
void outbuf_append(outbuf *b, const char *data, size_t n);

/* Writes everything captured to fd, in order (from the park p when b is
 * parked; p may be NULL otherwise): 0, or -1 with errno set (an error
 * reading the temporary file sets b->error too). With a prefix, each line
 * (ended by a newline or, as GNU parallel counts them, a carriage return)
 * starts with it; *bol says whether the next byte starts a line (and is
 * updated). */
int outbuf_write_to(outbuf *b, int fd, const outpark *p, const char *prefix,
                    size_t prefix_len, bool *bol);

/* Writes n bytes to fd with prefix before each line, as above. */
int outbuf_write_lines(int fd, const char *data, size_t n, const char *prefix,
                       size_t prefix_len, bool *bol);

/* Empties b for reuse (a retried job starts with clean output). */
void outbuf_reset(outbuf *b);

/* Frees what b holds (given back to the park p when it is parked there;
 * p may be NULL otherwise); b is then empty. */
void outbuf_free(outbuf *b, outpark *p);

#endif /* CF_TOOLS_OUTBUF_H */
