/* SPDX-License-Identifier: MIT */
/*
 * tmpl.h - the command template of `cfutures run`, as GNU parallel reads
 * it: the command words joined with spaces into one shell command, in
 * which replacement strings ({}, {.}, {/}, {//}, {/.}, {#}, {%}, {n},
 * {n.}, {n/}, {n//}, {n/.}, {-n}...) stand for the job's arguments, each
 * value quoted for the shell: outside quotes exactly as GNU parallel
 * quotes it; inside '...' or "..." in the command, for that context, so
 * that the value arrives whole and unexpanded whatever quotes the command
 * puts around it. Also the fast path
 * that runs a simple command without a shell: a command line of plain
 * words and quoted strings only is split into its argument vector here.
 */
#ifndef CF_TOOLS_TMPL_H
#define CF_TOOLS_TMPL_H

#include "strbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* What a replacement string gives: the argument itself or a part of it,
 * the job's sequence number or its slot. */
typedef enum tmpl_mod {
    TM_ALL,       /* {}    the argument */
    TM_NOEXT,     /* {.}   without its extension */
    TM_BASE,      /* {/}   without its directory */
    TM_DIR,       /* {//}  its directory */
    TM_BASENOEXT, /* {/.} without directory or extension */
    TM_SEQ,       /* {#}   the job's sequence number */
    TM_SLOT       /* {%}   the job slot */
} tmpl_mod;

typedef struct tmpl_seg {
    const char *lit; /* literal text (pointing into the template), or NULL */
    size_t len;
    tmpl_mod mod;
    long pos;  /* 0: every argument; n > 0: the n-th; n < 0: from the end */
    int word;  /* index of the whitespace-separated word it lies in */
    int qword; /* -q: the index of the command word it lies in */
    /* The shell context it stands in: 0 (unquoted), '\'' or '"' (in
     * those quotes) or '#' (a comment); bq: inside backquotes (2: that
     * are inside "..."), whose text the shell unescapes first. */
    char ctx;
    char bq;
} tmpl_seg;

/* The argument of a column past the end of a short record (--colsep):
 * not there for {}, {n}, {-n}, -X and --tag (GNU parallel gives such a
 * record fewer arguments: {n} counts the others, and past them is
 * empty). Compared by address. */
extern char tmpl_missing[];

typedef struct tmpl {
    char *text; /* the joined command (owned) */
    tmpl_seg *segs;
    size_t n_segs;
    int n_words;
    bool has_rpl;   /* any replacement string */
    bool uses_slot; /* {%} */
    bool quote;     /* quote values (false: the input is the command) */
    bool raw;       /* TMPL_RAW: text, not shell (no quotes, escapes) */
    bool qwords;    /* -q: each word expanded as it is, then quoted whole */
    char *qtext;    /* -q: the words as given, each NUL-ended (owned) */
} tmpl;

/* The names the replacement strings are written with; -I and friends
 * rename them. Indexed by tmpl_mod; NULL entries keep the default. */
typedef struct tmpl_names {
    const char *name[TM_SLOT + 1];
} tmpl_names;

enum {
    /* -q, as GNU parallel: each word of the command is expanded with
     * the values as they are, then quoted whole (a word that comes out
     * empty is '', but a word of only {} in a job without inputs, -N0,
     * is left out; the values of several inputs, {} with -m or -X, end
     * one word and start the next). */
    TMPL_QUOTE_WORDS = 1,
    TMPL_RAW = 2,      /* values go in unquoted (--tagstring) */
    TMPL_NO_APPEND = 4 /* no " {}" when no replacement string is found */
};

/* Compiles the command words into t. n_words == 0 makes the input the
 * command (values unquoted, as GNU parallel does). When no replacement
 * string is found, " {}" is appended unless TMPL_NO_APPEND. Returns 0, or
 * 2 after printing why (a perl expression {= =}, which is not supported),
 * or -1 when out of memory. */
int tmpl_compile(tmpl *t, char *const *words, size_t n_words, int flags,
                 const tmpl_names *names);

void tmpl_free(tmpl *t);

/* Appends the command for one job: args[0..n_args) are its arguments,
 * seq its sequence number, slot its slot. context (-X, -N) repeats each word
 * that holds a replacement string of every argument once per argument. */
void tmpl_expand(const tmpl *t, strbuf *b, char *const *args, size_t n_args,
                 size_t seq, size_t slot, bool context);

/* Appends value quoted for a Bourne shell exactly as GNU parallel does:
 * unchanged when it has only letters, digits and -_.+/, '' when empty,
 * else in single quotes (a quote inside becomes '"'"'). */
void tmpl_quote(strbuf *b, const char *value);

/* Splits a shell command into words when no shell is needed to run it:
 * only plain words, '...' and "..." without $ ` \ !, backslash escapes,
 * separated by blanks, and a first word that is no shell builtin or
 * keyword. Returns a NULL-terminated vector of new strings (free with
 * tmpl_free_argv), or NULL when a shell is needed or memory ran out. */
char **tmpl_split_simple(const char *cmd);

void tmpl_free_argv(char **argv);

#endif /* CF_TOOLS_TMPL_H */
