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

/* Copies the spill file from its start to out. */
static int copy_file(int in, int out)
{
    char buf[1 << 16];
    if (lseek(in, 0, SEEK_SET) < 0)
        return -1;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return (int)r;
        if (cli_write_all(out, buf, (size_t)r) != 0)
            return -1;
    }
}

int outbuf_write_to(outbuf *b, int fd)
{
    if (b->len > 0 && cli_write_all(fd, b->data, b->len) != 0)
        return -1;
    if (b->fd >= 0)
        return copy_file(b->fd, fd);
    return 0;
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

void outbuf_free(outbuf *b)
{
    outbuf_reset(b);
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}
