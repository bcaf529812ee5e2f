/* SPDX-License-Identifier: MIT */
/*
 * utf8.h - one check of UTF-8, header-only, for the trace writer
 * (src/trace.c) and the program's SVG writer (tools/svg.c): names are bytes
 * the library does not choose, and JSON and XML text must be UTF-8.
 */
#ifndef CF_PLATFORM_UTF8_H
#define CF_PLATFORM_UTF8_H

#include <stddef.h>

/* The length of the well-formed UTF-8 sequence at text (RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0; 0 also at a
 * sequence cut by the terminating NUL. */
static inline size_t cf__utf8_len(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
               : s[0] >= 0xe0 && s[0] <= 0xef ? 3
               : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                              : 0;
    unsigned lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
    unsigned hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
    for (size_t i = 1; i < n; i++)
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
            return 0;
    return n;
}

#endif
