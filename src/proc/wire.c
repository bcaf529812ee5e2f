/* SPDX-License-Identifier: MIT */
/*
 * wire.c - frame headers and the blocking send both ends use (wire.h).
 * A header's check is FNV-1a over its first 28 bytes: cheap, and enough to
 * tell a header from stray bytes a task wrote to the pool's socket.
 */
#include "wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static uint32_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

void cf__pp_hdr_set(cf__pp_hdr *h, uint16_t type, uint64_t id, uint64_t len,
                    int32_t aux)
{
    memset(h, 0, sizeof *h);
    h->magic = CF__PP_MAGIC;
    h->version = CF__PP_VERSION;
    h->type = type;
    h->id = id;
    h->len = len;
    h->aux = aux;
    h->check = fnv1a(h, offsetof(cf__pp_hdr, check));
}

const char *cf__pp_hdr_bad(const cf__pp_hdr *h)
{
    if (h->magic != CF__PP_MAGIC)
        return "bad magic";
    if (h->version != CF__PP_VERSION)
        return "unknown protocol version";
    if (h->check != fnv1a(h, offsetof(cf__pp_hdr, check)))
        return "bad header check";
    if (h->type < CF__PP_INIT || h->type > CF__PP_FAIL)
        return "unknown frame type";
    if (h->len > CF__PP_MAX_PAYLOAD)
        return "payload too large";
    return NULL;
}

int cf__pp_send_all(int fd, struct iovec *iov, int n)
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
