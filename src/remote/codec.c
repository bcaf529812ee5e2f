/* SPDX-License-Identifier: MIT */
/*
 * codec.c - frame headers, TASK frames, the bounds-checked reader and the
 * blocking send (codec.h).
 */
#include "codec.h"

#include "../fnid.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* A multiply-xorshift hash of the first 28 bytes: cheap (it is checked per
 * item of a chunked map), and enough to tell a header from stray bytes. */
static uint32_t check_of(const cf__frame *h)
{
    const unsigned char *p = (const unsigned char *)h;
    uint64_t w[3];
    uint32_t last;
    memcpy(w, p, sizeof w);
    memcpy(&last, p + sizeof w, sizeof last);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3; i++)
        x = (x ^ w[i] ^ (x >> 29)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ last ^ (x >> 32)) * 0x94D049BB133111EBull;
    return (uint32_t)(x >> 32);
}

void cf__frame_set(cf__frame *h, uint16_t type, uint64_t id, uint64_t len,
                   int32_t aux)
{
    memset(h, 0, sizeof *h);
    h->magic = CF__FRAME_MAGIC;
    h->version = CF__FRAME_VERSION;
    h->type = type;
    h->id = id;
    h->len = len;
    h->aux = aux;
    h->check = check_of(h);
}

const char *cf__frame_bad(const cf__frame *h)
{
    if (h->magic != CF__FRAME_MAGIC)
        return "bad magic";
    if (h->version != CF__FRAME_VERSION)
        return "unknown protocol version";
    if (h->check != check_of(h))
        return "bad header check";
    if (h->type < CF__FR_INIT || h->type > CF__FR_LAST)
        return "unknown frame type";
    if (h->len > CF__MAX_PAYLOAD)
        return "payload too large";
    return NULL;
}

void *cf__frame_task_new(size_t extra, uint16_t type, const void *fn,
                         const void *in, size_t len, uint64_t id, size_t *flen,
                         int *rc)
{
    const char *module;
    uint64_t offset;
    *rc = CF_EINVAL;
    if (cf__fnid_of(fn, &module, &offset))
        return NULL;
    size_t mlen = strlen(module);
    if (mlen > CF__MAX_MODULE || len > CF__MAX_PAYLOAD - 8 - mlen)
        return NULL;
    *flen = CF__FRAME_HDR + 8 + mlen + len;
    *rc = CF_ENOMEM;
    unsigned char *rec = cf__malloc(extra + *flen);
    if (!rec)
        return NULL;
    unsigned char *at = rec + extra;
    cf__frame h;
    cf__frame_set(&h, type, id, 8 + mlen + len, (int32_t)mlen);
    memcpy(at, &h, sizeof h);
    memcpy(at += sizeof h, &offset, 8);
    memcpy(at += 8, module, mlen);
    if (len)
        memcpy(at + mlen, in, len);
    *rc = 0;
    return rec;
}

const unsigned char *cf__rd_skip(cf__rd *r, uint64_t n)
{
    if (n > r->left)
        return NULL;
    const unsigned char *at = r->p;
    r->p += n;
    r->left -= (size_t)n;
    return at;
}

const char *cf__rd_frame(cf__rd *r, cf__frame *h, const unsigned char **payload)
{
    const unsigned char *at = cf__rd_skip(r, sizeof *h);
    if (!at)
        return "cut short";
    memcpy(h, at, sizeof *h);
    const char *bad = cf__frame_bad(h);
    if (bad)
        return bad;
    return (*payload = cf__rd_skip(r, h->len)) ? NULL : "cut short";
}

int cf__send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}
