/* SPDX-License-Identifier: MIT */
/*
 * outbuf.c - captured output in memory, then in an unlinked temporary file
 * (see outbuf.h). The file is made with O_TMPFILE where the file system has
 * it, else with mkostemp and unlinked at once; either way it disappears
 * when its descriptor is closed, even if cfutures is killed.
 */
#include "outbuf.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *tmp_dir(void)
{
    const char *d = getenv("TMPDIR");
    return d && d[0] ? d : "/tmp";
}

/* An unlinked read-write file: its descriptor, or -1 with errno set. */
static int open_spill_file(void)
{
    const char *dir = tmp_dir();
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char *path = cli_format("%s/cfutures-out-XXXXXX", dir);
    if (path == NULL)
        return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    free(path);
    return fd;
}

static void record_error(outbuf *b, int err)
{
    if (b->error == 0)
        b->error = err;
}

/* Copies into memory: 0, or -1 when it does not fit under OUTBUF_MEM_MAX
 * or memory ran out. */
static int append_memory(outbuf *b, const char *data, size_t n)
{
    if (b->len + n > OUTBUF_MEM_MAX)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > OUTBUF_MEM_MAX)
            cap = OUTBUF_MEM_MAX;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

void outbuf_append(outbuf *b, const char *data, size_t n)
{
    if (n == 0 || b->error)
        return;
    if (b->fd < 0 && append_memory(b, data, n) == 0) {
        b->total += n;
        return;
    }
    if (b->fd < 0 && (b->fd = open_spill_file()) < 0) {
        record_error(b, errno);
        return;
    }
    if (cli_write_all(b->fd, data, n) != 0) {
        record_error(b, errno);
        return;
    }
    b->total += n;
}

/* The offset of the first newline or carriage return in data[0..n), or
 * n. */
static size_t line_end(const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (data[i] == '\n' || data[i] == '\r')
            return i;
    return n;
}

int outbuf_write_lines(int fd, const char *data, size_t n, const char *prefix,
                       size_t prefix_len, bool *bol)
{
    if (prefix == NULL || prefix_len == 0)
        return cli_write_all(fd, data, n);
    while (n > 0) {
        /* A carriage return ends a line too, as in GNU parallel (so that
         * a progress line redrawn with \r stays tagged). */
        size_t k = line_end(data, n);
        const char *nl = k < n ? data + k : NULL;
        k = nl ? k + 1 : n;
        if (*bol && cli_write_all(fd, prefix, prefix_len) != 0)
            return -1;
        if (cli_write_all(fd, data, k) != 0)
            return -1;
        *bol = nl != NULL;
        data += k;
        n -= k;
    }
    return 0;
}

/* Copies len bytes of in from offset off (len SIZE_MAX: to its end). */
static int copy_range(outbuf *b, int in, long long off, size_t len, int out,
                      const char *prefix, size_t prefix_len, bool *bol)
{
    char buf[1 << 16];
    while (len > 0) {
        size_t want = len < sizeof buf ? len : sizeof buf;
        ssize_t r = pread(in, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r == 0 && len != SIZE_MAX)) {
            record_error(b, r < 0 ? errno : EIO);
            return 0; /* reported as lost output, not a write error */
        }
        if (r == 0)
            return 0;
        if (outbuf_write_lines(out, buf, (size_t)r, prefix, prefix_len, bol) !=
            0)
            return -1;
        off += r;
        if (len != SIZE_MAX)
            len -= (size_t)r;
    }
    return 0;
}

int outbuf_write_to(outbuf *b, int fd, const outpark *p, const char *prefix,
                    size_t prefix_len, bool *bol)
{
    bool start = true;
    if (bol == NULL)
        bol = &start;
    if (b->parked && !b->in_budget)
        return copy_range(b, p->fd, b->park_off, b->total, fd, prefix,
                          prefix_len, bol);
    if (b->len > 0 &&
        outbuf_write_lines(fd, b->data, b->len, prefix, prefix_len, bol) != 0)
        return -1;
    if (b->fd >= 0)
        return copy_range(b, b->fd, 0, SIZE_MAX, fd, prefix, prefix_len, bol);
    return 0;
}

static int open_park(outpark *p)
{
    if (p->fd < 0)
        p->fd = open_spill_file();
    return p->fd < 0 ? -1 : 0;
}

/* Appends to the park's file at its end. */
static int park_write(outpark *p, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = pwrite(p->fd, data, n, (off_t)p->end);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p->end += w;
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

int outbuf_park(outbuf *b, outpark *p)
{
    if (b->parked)
        return 0;
    if (b->fd < 0 && p->held + b->len <= p->budget) {
        p->held += b->len;
        b->parked = b->in_budget = true;
        return 0;
    }
    if (b->total == 0 || open_park(p) != 0)
        return b->total == 0 ? 0 : -1;
    long long start = p->end;
    int rc = park_write(p, b->data, b->len);
    char buf[1 << 16];
    for (long long off = 0; rc == 0 && b->fd >= 0;) {
        ssize_t r = pread(b->fd, buf, sizeof buf, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0)
                record_error(b, errno);
            break;
        }
        rc = park_write(p, buf, (size_t)r);
        off += r;
    }
    if (rc != 0) {
        int e = errno;
        p->end = start; /* overwritten by the next one */
        errno = e;
        return -1;
    }
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->parked = true;
    b->park_off = start;
    return 0;
}

void outpark_close(outpark *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

void outbuf_reset(outbuf *b)
{
    b->len = 0;
    b->total = 0;
    b->error = 0;
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
}

void outbuf_free(outbuf *b, outpark *p)
{
    if (b->parked && b->in_budget && p)
        p->held -= b->len;
    else if (b->parked && p && p->fd >= 0 && b->total > 0)
        /* Gives the disk space back; the file's size stays. */
        (void)fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        (off_t)b->park_off, (off_t)b->total);
    b->parked = b->in_budget = false;
    outbuf_reset(b);
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}
