/* SPDX-License-Identifier: MIT */
/*
 * strbuf.c - the growable string of strbuf.h; capacity doubles.
 */
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

static bool reserve(strbuf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (s == NULL) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void sb_add(strbuf *b, const char *data, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_adds(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

void sb_addc(strbuf *b, char c)
{
    sb_add(b, &c, 1);
}

char *sb_take(strbuf *b)
{
    if (!b->oom && b->s == NULL)
        reserve(b, 0);
    char *s = b->oom ? NULL : b->s;
    if (b->oom)
        free(b->s);
    else if (s)
        s[b->len] = '\0';
    *b = (strbuf)STRBUF_INIT;
    return s;
}

void sb_free(strbuf *b)
{
    free(b->s);
    *b = (strbuf)STRBUF_INIT;
}
