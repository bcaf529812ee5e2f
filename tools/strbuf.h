/* SPDX-License-Identifier: MIT */
/*
 * strbuf.h - a growable string that remembers running out of memory, so a
 * caller builds a whole string with plain calls and checks once at the end.
 */
#ifndef CF_TOOLS_STRBUF_H
#define CF_TOOLS_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
    char *s; /* NUL-terminated once anything was added */
    size_t len, cap;
    bool oom; /* an append failed: s is incomplete */
} strbuf;

#define STRBUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0, false                                                      \
    }

/* Append n bytes / a C string / one character. */
void sb_add(strbuf *b, const char *data, size_t n);
void sb_adds(strbuf *b, const char *s);
void sb_addc(strbuf *b, char c);

/* Hands the string over (the caller frees it); NULL if an append failed or
 * nothing was added and memory ran out. b is empty after. */
char *sb_take(strbuf *b);

/* Frees what b holds. */
void sb_free(strbuf *b);

#endif /* CF_TOOLS_STRBUF_H */
