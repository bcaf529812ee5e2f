/* SPDX-License-Identifier: MIT */
/*
 * tmpl.c - the command template of `cfutures run` (see tmpl.h).
 *
 * The joined command is cut into segments: literal text, broken at every
 * change between blanks and the rest so that -X can tell its words apart,
 * and replacement strings. A job's command is the segments with each
 * replacement string expanded from the job's arguments; every value is
 * quoted for the shell, so no input is ever split, globbed or expanded,
 * whatever quotes the command puts around the replacement string: the
 * quoting context of each replacement string is followed through the
 * command's text ('...', "...", backslashes, $(...) and backquotes nested
 * in them, comments, here-documents), and the value is written for it
 * (outside quotes as GNU parallel writes it; inside '...' with each quote
 * as '"'"'; inside "..." with $ ` " \ escaped; in backquotes escaped once
 * more for them). Inside a here-document or $'...' no quoting can hold
 * any value, so replacement strings there are refused.
 */
#include "tmpl.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const default_names[TM_SLOT + 1] = { "{}",   "{.}",  "{/}",
                                                        "{//}", "{/.}", "{#}",
                                                        "{%}" };

char tmpl_missing[1];

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

static int add_seg(tmpl *t, size_t *cap, tmpl_seg s)
{
    if (t->n_segs == *cap) {
        size_t n = *cap ? *cap * 2 : 16;
        tmpl_seg *g = realloc(t->segs, n * sizeof *g);
        if (g == NULL)
            return -1;
        t->segs = g;
        *cap = n;
    }
    t->segs[t->n_segs++] = s;
    return 0;
}

/* The literal [lit, end) as a segment, if not empty: blanks between words
 * (word -1) or part of word `word`. */
static int add_lit(tmpl *t, size_t *cap, const char *lit, const char *end,
                   bool blank, int word, int qword)
{
    if (end == lit)
        return 0;
    return add_seg(t, cap,
                   (tmpl_seg){ .lit = lit,
                               .len = (size_t)(end - lit),
                               .word = blank ? -1 : word,
                               .qword = qword });
}

/* The positional form of the replacement strings, as GNU parallel makes
 * it: for each of {}, {.}, {/}, {//}, {/.} whose name (default, or given
 * with -I, --er...) starts with '{', '{' N and the rest of the name ({1},
 * {-2.}; with -I {x}: {1x}). A name without '{' (-I @) has none. At p:
 * the longest such string, its length (0: none); with zero, the position
 * may start with 0 (which is refused). */
static size_t positional_at(const char *p, const char *const *names, bool zero,
                            long *pos, tmpl_mod *mod)
{
    static const tmpl_mod mods[] = { TM_ALL, TM_NOEXT, TM_BASE, TM_DIR,
                                     TM_BASENOEXT };
    if (*p != '{')
        return 0;
    const char *q = p + 1;
    bool neg = *q == '-';
    q += neg;
    if (*q < (zero ? '0' : '1') || *q > '9')
        return 0;
    long v = 0;
    while (*q >= '0' && *q <= '9') {
        if (v > 100000000)
            return 0;
        v = v * 10 + (*q++ - '0');
    }
    size_t best = 0;
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        const char *nm = names[mods[i]];
        if (nm[0] != '{' || nm[1] == '\0')
            continue;
        size_t n = strlen(nm + 1);
        if (n > best && strncmp(q, nm + 1, n) == 0) {
            best = n;
            *pos = neg ? -v : v;
            *mod = mods[i];
        }
    }
    return best ? (size_t)(q - p) + best : 0;
}

/* A positional replacement string at p: its length, 0 when there is
 * none. */
static size_t match_positional(const char *p, const char *const *names,
                               long *pos, tmpl_mod *mod)
{
    return positional_at(p, names, false, pos, mod);
}

/* GNU parallel's undocumented positions from 0 ({0}, {-0}, {01.}...) at
 * p: their length, else 0. */
static size_t zero_positional(const char *p, const char *const *names)
{
    long pos;
    tmpl_mod mod;
    const char *q = p + 1 + (p[1] == '-');
    if (*p != '{' || *q != '0')
        return 0;
    return positional_at(p, names, true, &pos, &mod);
}

/* The length of the replacement string at p, or 0. */
static size_t match_rpl(const char *p, const char *const *names, tmpl_mod *mod,
                        long *pos)
{
    size_t len = 0;
    *pos = 0;
    for (int m = 0; m <= TM_SLOT; m++) {
        size_t n = strlen(names[m]);
        if (n > len && strncmp(p, names[m], n) == 0) {
            len = n;
            *mod = (tmpl_mod)m;
        }
    }
    if (len == 0 && *p == '{')
        len = match_positional(p, names, pos, mod);
    return len;
}

/* -q: the word quoted for the shell, its replacement strings left as they
 * are. */
static void add_quoted_word(strbuf *b, const char *w, const char *const *names)
{
    strbuf lit = STRBUF_INIT;
    for (const char *p = w;; p++) {
        tmpl_mod mod;
        long pos;
        size_t len = *p ? match_rpl(p, names, &mod, &pos) : 0;
        if (len == 0 && *p) {
            sb_addc(&lit, *p);
            continue;
        }
        if (lit.len > 0 || (*p == '\0' && p == w)) {
            sb_add(&lit, "", 0);
            tmpl_quote(b, lit.s);
            sb_free(&lit);
        }
        if (*p == '\0')
            break;
        sb_add(b, p, len);
        p += len - 1;
    }
    sb_free(&lit);
}

static char *join_words(char *const *words, size_t n, bool quote_words,
                        const char *const *names)
{
    strbuf b = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_addc(&b, ' ');
        if (quote_words)
            add_quoted_word(&b, words[i], names);
        else
            sb_adds(&b, words[i]);
    }
    return sb_take(&b);
}

/* ---- following the shell's quoting through the command */

enum { LEX_DEPTH = 64, LEX_HEREDOCS = 8 };

/* The shell's state at a point of the command: a stack of frames, each
 * '\'' or '"' (in those quotes), '(' (in $(...)), 'a' (in arithmetic,
 * $((...)) or bash's ((...))), '`' (in backquotes), '{' (in ${...}), '#'
 * (in a comment); the bottom, unquoted, has none. */
typedef struct lexer {
    char frame[LEX_DEPTH];
    int parens[LEX_DEPTH]; /* '(': open parentheses inside it */
    int cases[LEX_DEPTH];  /* '(': `case` words without their `esac` */
    int depth;
    const char *start;
    bool strict; /* values are quoted: refuse where no quoting holds */
    struct {
        const char *delim;
        size_t len;
        bool tabs; /* <<- */
    } heredoc[LEX_HEREDOCS];
    int n_heredocs; /* begun on this line: their bodies follow it */
} lexer;

static char lex_top(const lexer *x)
{
    return x->depth ? x->frame[x->depth - 1] : 0;
}

static bool lex_push(lexer *x, char f)
{
    if (x->depth == LEX_DEPTH) {
        cli_usage_error("run", "the command nests quotes and substitutions "
                               "too deep");
        return false;
    }
    x->frame[x->depth] = f;
    x->parens[x->depth] = x->cases[x->depth] = 0;
    x->depth++;
    return true;
}

/* Whether p starts a word (of the shell's grammar), and the word there is
 * w. */
static bool word_at(const lexer *x, const char *p, const char *w)
{
    size_t n = strlen(w);
    bool starts = p == x->start || strchr(" \t\n;&|()", p[-1]) != NULL;
    return starts && strncmp(p, w, n) == 0 &&
           (p[n] == '\0' || strchr(" \t\n;&|()", p[n]) != NULL);
}

/* The context a replacement string at this point stands in (see
 * tmpl_seg): 0, or -1 where values cannot be quoted (in ${...}). */
static int lex_context(const lexer *x, char *ctx, char *bq)
{
    char top = lex_top(x);
    *ctx = top == '\'' || top == '"' || top == '#' ? top : top == 'a' ? '"' : 0;
    *bq = 0;
    for (int i = 0; i < x->depth; i++)
        if (x->frame[i] == '`') {
            *bq = 1;
            for (int k = 0; k < i; k++)
                *bq = x->frame[k] == '"' || x->frame[k] == 'a' ? 2 : *bq;
        }
    for (int i = 0; i < x->depth; i++)
        if (x->frame[i] == '{')
            return x->strict ? -1 : 0;
    return 0;
}

/* Whether a replacement string starts anywhere in [p, end). */
static bool has_rpl(const char *p, const char *end, const char *const *names)
{
    for (; p < end; p++) {
        tmpl_mod mod;
        long pos;
        if (match_rpl(p, names, &mod, &pos) != 0)
            return true;
    }
    return false;
}

/* `<<` at p (unquoted): notes the here-document whose body follows the
 * line. Returns the length of the operator and its delimiter word. */
static size_t lex_heredoc(lexer *x, const char *p)
{
    const char *q = p + 2;
    bool tabs = *q == '-';
    q += tabs;
    while (*q == ' ' || *q == '\t')
        q++;
    const char *w = q;
    while (*q && strchr(" \t\n;&|()<>", *q) == NULL)
        q++;
    if (x->n_heredocs < LEX_HEREDOCS && q > w) {
        x->heredoc[x->n_heredocs].delim = w;
        x->heredoc[x->n_heredocs].len = (size_t)(q - w);
        x->heredoc[x->n_heredocs].tabs = tabs;
        x->n_heredocs++;
    }
    return (size_t)(q - p);
}

/* The bodies of the here-documents begun on the line that ends at p (a
 * newline): their length, to be taken as they are; (size_t)-1 (usage
 * error printed) when one holds a replacement string. */
static size_t lex_heredoc_bodies(lexer *x, const char *p,
                                 const char *const *names)
{
    const char *q = p + 1;
    for (int h = 0; h < x->n_heredocs; h++) {
        char delim[256];
        size_t n = 0;
        for (size_t i = 0; i < x->heredoc[h].len && n < sizeof delim - 1; i++)
            if (!strchr("'\"\\", x->heredoc[h].delim[i]))
                delim[n++] = x->heredoc[h].delim[i];
        for (;;) {
            const char *line = q;
            if (x->heredoc[h].tabs)
                while (*line == '\t')
                    line++;
            const char *eol = strchr(q, '\n');
            if (eol == NULL)
                eol = q + strlen(q);
            bool last =
                (size_t)(eol - line) == n && strncmp(line, delim, n) == 0;
            if (!last && x->strict && has_rpl(q, eol, names)) {
                cli_usage_error("run",
                                "replacement strings in a here-document are "
                                "not supported (no quoting holds there): "
                                "'%.*s'",
                                (int)(eol - q), q);
                return (size_t)-1;
            }
            q = *eol ? eol + 1 : eol;
            if (last || *eol == '\0')
                break;
        }
    }
    x->n_heredocs = 0;
    return (size_t)(q - p) - 1;
}

/* A backslash just before a replacement string, outside '...': it would
 * escape the first character of the value as written for the shell (its
 * quote, or the backslash before a $). Refused: 0. */
static size_t lex_backslash_rpl(const char *p)
{
    cli_usage_error("run",
                    "a backslash just before a replacement string is "
                    "not supported (it would take the value's quoting "
                    "apart): '%.2s...'",
                    p);
    return 0;
}

/* $( at p: $((...)), arithmetic, or $(...). */
static size_t lex_arith_or_sub(lexer *x, const char *p)
{
    if (p[2] == '(')
        return lex_push(x, 'a') ? 3 : 0;
    return lex_push(x, '(') ? 2 : 0;
}

/* Moves the lexer over the text at p (no replacement string there): the
 * number of characters it took (at least 1), or 0 after a usage error. */
static size_t lex_step(lexer *x, const char *p, const char *const *names)
{
    char top = lex_top(x);
    switch (top) {
    case '#':
        if (*p == '\n')
            x->depth--;
        else
            return 1;
        break;
    case '\'':
        if (*p == '\'')
            x->depth--;
        return 1;
    case '"':
        if (*p == '\\' && p[1] && x->strict && has_rpl(p + 1, p + 2, names))
            return lex_backslash_rpl(p);
        if (*p == '\\' && p[1] && strchr("$`\"\\\n", p[1]))
            return 2; /* else the backslash is a character */
        if (*p == '"')
            x->depth--;
        else if (*p == '`')
            return lex_push(x, '`') ? 1 : 0;
        else if (p[0] == '$' && p[1] == '(')
            return lex_arith_or_sub(x, p);
        else if (p[0] == '$' && p[1] == '{' && !has_rpl(p + 1, p + 2, names))
            return lex_push(x, '{') ? 2 : 0;
        return 1;
    case '{':
        if (*p == '}') {
            x->depth--;
            return 1;
        }
        break;
    case 'a': {
        /* Arithmetic: as in "...", but for parentheses; quotes do not
         * quote there (the shell expands $(...) inside '...'). */
        int d = x->depth - 1;
        if (*p == '\\' && p[1] && x->strict && has_rpl(p + 1, p + 2, names))
            return lex_backslash_rpl(p);
        if (*p == '\\' && p[1])
            return 2;
        if (*p == '`')
            return lex_push(x, '`') ? 1 : 0;
        if (p[0] == '$' && p[1] == '(')
            return lex_arith_or_sub(x, p);
        if (*p == '(')
            x->parens[d]++;
        else if (*p == ')' && x->parens[d] > 0)
            x->parens[d]--;
        else if (*p == ')') {
            x->depth--;
            return p[1] == ')' ? 2 : 1;
        }
        return 1;
    }
    default: /* unquoted: at the bottom, in $(...) or in backquotes */ break;
    }
    if (*p == '\n' && x->n_heredocs > 0) {
        size_t n = lex_heredoc_bodies(x, p, names);
        return n == (size_t)-1 ? 0 : n + 1;
    }
    if (*p == '\\' && p[1] && x->strict && has_rpl(p + 1, p + 2, names))
        return lex_backslash_rpl(p);
    if (*p == '\\' && p[1])
        return 2;
    if (*p == '\'' || *p == '"')
        return lex_push(x, *p) ? 1 : 0;
    if (p[0] == '$' && p[1] == '\'') {
        const char *q = p + 2;
        while (*q && *q != '\'')
            q += q[0] == '\\' && q[1] ? 2 : 1;
        if (x->strict && has_rpl(p, q, names)) {
            cli_usage_error("run",
                            "replacement strings in $'...' are not "
                            "supported: '%.*s'",
                            (int)(q - p + (*q != 0)), p);
            return 0;
        }
        return (size_t)(q - p) + (*q != 0);
    }
    if (p[0] == '$' && p[1] == '(')
        return lex_arith_or_sub(x, p);
    /* (${ that starts a replacement string, as ${#}, is $ and that.) */
    if (p[0] == '$' && p[1] == '{' && !has_rpl(p + 1, p + 2, names))
        return lex_push(x, '{') ? 2 : 0;
    if (p[0] == '(' && p[1] == '(' &&
        (p == x->start || strchr(" \t\n;&|(", p[-1])))
        return lex_push(x, 'a') ? 2 : 0; /* bash's (( ... )) */
    if (*p == '`') {
        for (int i = 0; i < x->depth; i++)
            if (x->frame[i] == '`') {
                x->depth = i; /* the backquote closes there */
                return 1;
            }
        return lex_push(x, '`') ? 1 : 0;
    }
    if (*p == '#' && (p == x->start || strchr(" \t\n;&|()", p[-1])))
        return lex_push(x, '#') ? 1 : 0;
    if (p[0] == '<' && p[1] == '<' && p[2] == '<')
        return 3;
    if (p[0] == '<' && p[1] == '<')
        return lex_heredoc(x, p);
    if (top == '(') {
        int d = x->depth - 1;
        if (word_at(x, p, "case"))
            x->cases[d]++;
        else if (word_at(x, p, "esac") && x->cases[d] > 0)
            x->cases[d]--;
        else if (*p == '(')
            x->parens[d]++;
        else if (*p == ')' && x->parens[d] > 0)
            x->parens[d]--;
        else if (*p == ')' && x->cases[d] == 0)
            x->depth--;
    }
    return 1;
}

/* Cuts text into segments, counting its words from *word on (left at
 * the last one); each segment is marked as lying in command word qword
 * (-q). With -q (and for --tagstring) the text is taken as it is, not
 * as the shell reads it. 0, 2 (usage error printed) or -1. */
static int cut_text(tmpl *t, size_t *cap, const char *text, int *word,
                    int qword, const char *const *names)
{
    const char *p = text, *lit = p;
    bool in_blank = false;
    bool as_is = t->raw || t->qwords;
    lexer x = { .start = text, .strict = t->quote };
    while (*p) {
        if (p[0] == '{' && p[1] == '=' && strstr(p + 2, "=}") != NULL) {
            cli_usage_error("run",
                            "perl expressions in replacement strings ('{=' "
                            "... '=}') are not supported: '%.*s'",
                            (int)(strstr(p + 2, "=}") + 2 - p), p);
            return 2;
        }
        size_t zero = zero_positional(p, names);
        if (zero != 0) {
            cli_usage_error("run",
                            "replacement string '%.*s' is not supported "
                            "(positions count from 1)",
                            (int)zero, p);
            return 2;
        }
        tmpl_mod mod = TM_ALL;
        long pos = 0;
        size_t len = match_rpl(p, names, &mod, &pos);
        bool blank = is_blank(*p) && x.depth == 0;
        if (len == 0) {
            if (p > lit && blank != in_blank) {
                /* A change between blanks and the rest: a new segment. */
                if (add_lit(t, cap, lit, p, in_blank, *word, qword) != 0)
                    return -1;
                if (in_blank)
                    (*word)++;
                lit = p;
            }
            in_blank = blank;
            /* --tagstring is no shell text: a backslash or a quote there
             * is a character (GNU parallel replaces {} in '\{}'). */
            size_t n = as_is ? 1 : lex_step(&x, p, names);
            if (n == 0)
                return 2;
            p += n;
            continue;
        }
        if (add_lit(t, cap, lit, p, in_blank, *word, qword) != 0)
            return -1;
        if (in_blank)
            (*word)++;
        in_blank = false;
        tmpl_seg g = { .mod = mod, .pos = pos, .word = *word, .qword = qword };
        if (lex_context(&x, &g.ctx, &g.bq) != 0) {
            cli_usage_error("run",
                            "replacement strings inside ${...} are not "
                            "supported (bash and sh quote there "
                            "differently): '%.*s'",
                            (int)len, p);
            return 2;
        }
        if (add_seg(t, cap, g) != 0)
            return -1;
        t->has_rpl = true;
        t->uses_slot |= mod == TM_SLOT;
        p += len;
        lit = p;
    }
    return add_lit(t, cap, lit, p, in_blank, *word, qword);
}

/* Cuts t->text into segments. 0, 2 (usage error printed) or -1. */
static int cut(tmpl *t, const char *const *names)
{
    size_t cap = 0;
    int word = 0;
    int rc = cut_text(t, &cap, t->text, &word, -1, names);
    t->n_words = word + 1;
    return rc;
}

/* -q: cuts the first n words of t->qtext, each on its own (an empty one
 * is an empty literal, so that it still makes a word). */
static int cut_qwords(tmpl *t, size_t n, const char *const *names)
{
    size_t cap = 0;
    int word = 0;
    const char *w = t->qtext;
    for (size_t i = 0; i < n; i++, w += strlen(w) + 1) {
        if (i > 0)
            word++;
        int rc =
            *w ? cut_text(t, &cap, w, &word, (int)i, names)
               : add_seg(t, &cap,
                         (tmpl_seg){ .lit = w, .word = word, .qword = (int)i });
        if (rc != 0)
            return rc;
    }
    t->n_words = word + 1;
    return 0;
}

/* -q (see TMPL_QUOTE_WORDS): the words are kept as they are in t->qtext,
 * with "{}" after them in case none holds a replacement string; t->text,
 * the words quoted, stays as what the command's length is guessed from. */
static int compile_qwords(tmpl *t, char *const *words, size_t n_words,
                          int flags, const char *const *names)
{
    t->qwords = true;
    strbuf q = STRBUF_INIT;
    for (size_t i = 0; i < n_words; i++)
        sb_add(&q, words[i], strlen(words[i]) + 1);
    sb_add(&q, names[TM_ALL], strlen(names[TM_ALL]) + 1);
    t->qtext = sb_take(&q);
    if (t->qtext == NULL)
        return -1;
    int rc = cut_qwords(t, n_words, names);
    if (rc == 0 && !t->has_rpl && !(flags & TMPL_NO_APPEND)) {
        /* GNU parallel appends the arguments: the command, " {}". */
        char *more = cli_format("%s %s", t->text, names[TM_ALL]);
        free(t->text);
        free(t->segs);
        t->segs = NULL;
        t->n_segs = 0;
        t->text = more;
        rc = more ? cut_qwords(t, n_words + 1, names) : -1;
    }
    return rc;
}

int tmpl_compile(tmpl *t, char *const *words, size_t n_words, int flags,
                 const tmpl_names *names)
{
    const char *nm[TM_SLOT + 1];
    for (int m = 0; m <= TM_SLOT; m++)
        nm[m] = names && names->name[m] ? names->name[m] : default_names[m];
    memset(t, 0, sizeof *t);
    t->quote = n_words > 0 && !(flags & TMPL_RAW);
    t->raw = (flags & TMPL_RAW) != 0;
    if (n_words == 0) {
        char *const all[] = { (char *)nm[TM_ALL] };
        t->text = join_words(all, 1, false, nm);
    } else {
        t->text = join_words(words, n_words, flags & TMPL_QUOTE_WORDS, nm);
    }
    if (t->text == NULL)
        return -1;
    if (t->quote && (flags & TMPL_QUOTE_WORDS)) {
        int rc = compile_qwords(t, words, n_words, flags, nm);
        if (rc != 0)
            tmpl_free(t);
        return rc;
    }
    int rc = cut(t, nm);
    if (rc == 0 && !t->has_rpl && !(flags & TMPL_NO_APPEND)) {
        /* GNU parallel appends the arguments: the command, " {}". */
        char *more = cli_format("%s %s", t->text, nm[TM_ALL]);
        free(t->text);
        free(t->segs);
        t->segs = NULL;
        t->n_segs = 0;
        t->text = more;
        rc = more ? cut(t, nm) : -1;
    }
    if (rc != 0)
        tmpl_free(t);
    return rc;
}

void tmpl_free(tmpl *t)
{
    free(t->qtext);
    free(t->text);
    free(t->segs);
    memset(t, 0, sizeof *t);
}

void tmpl_quote(strbuf *b, const char *v)
{
    if (*v == '\0') {
        sb_adds(b, "''");
        return;
    }
    if (v[strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789-_.+/")] == '\0') {
        sb_adds(b, v);
        return;
    }
    /* As GNU parallel: each ' becomes '"'"', the whole goes in '...',
     * then an empty '' at either end is dropped. */
    strbuf q = STRBUF_INIT;
    sb_addc(&q, '\'');
    for (const char *p = v; *p; p++) {
        if (*p == '\'')
            sb_adds(&q, "'\"'\"'");
        else
            sb_addc(&q, *p);
    }
    sb_addc(&q, '\'');
    if (q.oom) {
        b->oom = true;
        sb_free(&q);
        return;
    }
    const char *s = q.s;
    size_t n = q.len;
    if (n >= 2 && s[0] == '\'' && s[1] == '\'') {
        s += 2;
        n -= 2;
    }
    if (n >= 2 && s[n - 1] == '\'' && s[n - 2] == '\'')
        n -= 2;
    sb_add(b, s, n);
    sb_free(&q);
}

/* The part of v that mod keeps, as [*start, *start + *len). dir may
 * point at the result when it is not a part of v ("." or "/"). */
static void apply_mod(const char *v, tmpl_mod mod, const char **start,
                      size_t *len)
{
    size_t n = strlen(v);
    *start = v;
    *len = n;
    if (mod == TM_BASE || mod == TM_BASENOEXT) {
        const char *slash = strrchr(v, '/');
        if (slash) {
            *start = slash + 1;
            *len = n - (size_t)(*start - v);
        }
    }
    if (mod == TM_NOEXT || mod == TM_BASENOEXT) {
        const char *s = *start;
        for (size_t i = *len; i-- > 0;) {
            if (s[i] == '/')
                break;
            if (s[i] == '.') {
                *len = i;
                break;
            }
        }
    }
    if (mod == TM_DIR) {
        /* POSIX dirname, as Perl's File::Basename gives it. */
        size_t e = n;
        while (e > 1 && v[e - 1] == '/')
            e--;
        while (e > 0 && v[e - 1] != '/')
            e--;
        if (e == 0) {
            *start = ".";
            *len = 1;
            return;
        }
        while (e > 1 && v[e - 1] == '/')
            e--;
        *len = e;
    }
}

/* A value inside '...' or "..." of the command, written for it. */
static void add_in_quotes(strbuf *b, const char *s, size_t n, char ctx)
{
    for (size_t i = 0; i < n; i++) {
        if (ctx == '\'' && s[i] == '\'')
            sb_adds(b, "'\"'\"'");
        else if (ctx == '"' && strchr("$`\"\\", s[i]) != NULL && s[i]) {
            sb_addc(b, '\\');
            sb_addc(b, s[i]);
        } else {
            sb_addc(b, s[i]);
        }
    }
}

/* A value written for the context g stands in (see tmpl_seg). */
static void add_for_context(strbuf *b, const char *s, size_t n, char ctx)
{
    if (ctx == '\'' || ctx == '"') {
        add_in_quotes(b, s, n, ctx);
        return;
    }
    char *v = strndup(s, n);
    if (v == NULL) {
        b->oom = true;
        return;
    }
    if (ctx != '#') {
        tmpl_quote(b, v);
    } else {
        /* In a comment: each line the value adds is a comment too. */
        strbuf q = STRBUF_INIT;
        tmpl_quote(&q, v);
        for (size_t i = 0; i < q.len; i++) {
            sb_addc(b, q.s[i]);
            if (q.s[i] == '\n')
                sb_addc(b, '#');
        }
        b->oom |= q.oom;
        sb_free(&q);
    }
    free(v);
}

static void add_value(const tmpl *t, strbuf *b, const char *v,
                      const tmpl_seg *g)
{
    const char *s;
    size_t n;
    apply_mod(v, g->mod, &s, &n);
    if (!t->quote) {
        sb_add(b, s, n);
        return;
    }
    if (g->bq == 0) {
        add_for_context(b, s, n, g->ctx);
        return;
    }
    /* In backquotes the shell first takes a backslash off \\, \$ and \`
     * (and \" in "..."): escape them once more. */
    strbuf q = STRBUF_INIT;
    add_for_context(&q, s, n, g->ctx);
    const char *esc = g->bq == 2 ? "\\$`\"" : "\\$`";
    for (size_t i = 0; i < q.len; i++) {
        if (strchr(esc, q.s[i]) != NULL && q.s[i] != '\0')
            sb_addc(b, '\\');
        sb_addc(b, q.s[i]);
    }
    b->oom |= q.oom;
    sb_free(&q);
}

/* The pos-th input of all[0..n) (from 1; from the end when negative), as
 * GNU parallel counts them: the columns that a short record lacks
 * (tmpl_missing) are not there, so the inputs after them, of the next
 * source or record, move up. NULL when there is none. */
static const char *nth_input(char *const *all, size_t n, long pos)
{
    if (pos > 0) {
        for (size_t i = 0; i < n; i++)
            if (all[i] != tmpl_missing && --pos == 0)
                return all[i];
    } else {
        for (size_t i = n; i-- > 0;)
            if (all[i] != tmpl_missing && ++pos == 0)
                return all[i];
    }
    return NULL;
}

/* The segments [i, *end) that make one part of a word, up to a blank:
 * true when the part repeats once per input (in context, -X and -N: a {}
 * in it). */
static bool word_part(const tmpl *t, size_t i, bool context, size_t n_args,
                      size_t *end)
{
    const tmpl_seg *g = &t->segs[i];
    bool repeat = false;
    *end = i + 1;
    if (context && g->word >= 0) {
        for (*end = i; *end < t->n_segs && t->segs[*end].word == g->word;
             ++*end)
            repeat |= t->segs[*end].lit == NULL && t->segs[*end].pos == 0 &&
                      t->segs[*end].mod != TM_SEQ &&
                      t->segs[*end].mod != TM_SLOT;
        repeat &= n_args > 0; /* -N0: the word once, without input */
    }
    return repeat;
}

static void expand_seg(const tmpl *t, const tmpl_seg *g, strbuf *b,
                       char *const *args, size_t n_args, char *const *all,
                       size_t n_all, size_t seq, size_t slot)
{
    if (g->lit) {
        sb_add(b, g->lit, g->len);
        return;
    }
    char num[32];
    if (g->mod == TM_SEQ || g->mod == TM_SLOT) {
        snprintf(num, sizeof num, "%zu", g->mod == TM_SEQ ? seq : slot);
        sb_adds(b, num);
        return;
    }
    if (g->pos == 0) {
        bool first = true;
        for (size_t i = 0; i < n_args; i++) {
            if (args[i] == tmpl_missing)
                continue;
            if (!first)
                sb_addc(b, ' ');
            first = false;
            add_value(t, b, args[i], g);
        }
        return;
    }
    const char *v = nth_input(all, n_all, g->pos);
    if (v != NULL)
        add_value(t, b, v, g);
}

/* -q's expansion (see TMPL_QUOTE_WORDS): the word being made, as it is,
 * until it is quoted onto the command. */
typedef struct qword_buf {
    strbuf text;
    bool open;    /* a word is being made (it may be empty) */
    size_t words; /* words put on the command so far */
} qword_buf;

static void qword_add(qword_buf *q, const char *s, size_t n)
{
    sb_add(&q->text, s, n);
    q->open = true;
}

/* Puts the word being made, if any, on the command, quoted. */
static void qword_end(strbuf *b, qword_buf *q)
{
    if (!q->open)
        return;
    if (q->words++ > 0)
        sb_addc(b, ' ');
    sb_add(&q->text, "", 0);
    if (q->text.oom)
        b->oom = true;
    else
        tmpl_quote(b, q->text.s);
    q->text.len = 0;
    q->open = false;
}

static void expand_qseg(const tmpl_seg *g, strbuf *b, qword_buf *q,
                        char *const *args, size_t n_args, char *const *all,
                        size_t n_all, size_t seq, size_t slot)
{
    const char *s;
    size_t n;
    if (g->lit) {
        qword_add(q, g->lit, g->len);
        return;
    }
    if (g->mod == TM_SEQ || g->mod == TM_SLOT) {
        char num[32];
        snprintf(num, sizeof num, "%zu", g->mod == TM_SEQ ? seq : slot);
        qword_add(q, num, strlen(num));
        return;
    }
    if (g->pos == 0) {
        /* Each value after the first starts a word; none (-N0): nothing,
         * not even an empty word. */
        bool first = true;
        for (size_t i = 0; i < n_args; i++) {
            if (args[i] == tmpl_missing)
                continue;
            if (!first)
                qword_end(b, q);
            first = false;
            apply_mod(args[i], g->mod, &s, &n);
            qword_add(q, s, n);
        }
        return;
    }
    if (n_all == 0)
        return; /* a job without inputs (-N0) */
    const char *v = nth_input(all, n_all, g->pos);
    if (v != NULL) {
        apply_mod(v, g->mod, &s, &n);
        qword_add(q, s, n);
    } else {
        qword_add(q, "", 0); /* past the inputs: empty, a word still */
    }
}

static void expand_qwords(const tmpl *t, strbuf *b, char *const *args,
                          size_t n_args, size_t seq, size_t slot, bool context)
{
    qword_buf q = { .text = STRBUF_INIT };
    for (size_t i = 0, end; i < t->n_segs; i = end) {
        const tmpl_seg *g = &t->segs[i];
        bool repeat = word_part(t, i, context, n_args, &end);
        /* -X: a copy of the blank-separated part per input, each copy
         * after the first starting a word. */
        size_t copies = repeat ? n_args : 1;
        bool first = true;
        for (size_t c = 0; c < copies; c++) {
            if (repeat && args[c] == tmpl_missing)
                continue;
            if (!first)
                qword_end(b, &q);
            first = false;
            for (size_t k = i; k < end; k++)
                expand_qseg(&t->segs[k], b, &q, repeat ? args + c : args,
                            repeat ? 1 : n_args, args, n_args, seq, slot);
        }
        if (end == t->n_segs || t->segs[end].qword != g->qword)
            qword_end(b, &q);
    }
    b->oom |= q.text.oom;
    sb_free(&q.text);
}

void tmpl_expand(const tmpl *t, strbuf *b, char *const *args, size_t n_args,
                 size_t seq, size_t slot, bool context)
{
    if (t->qwords) {
        expand_qwords(t, b, args, n_args, seq, slot, context);
        return;
    }
    for (size_t i = 0, end; i < t->n_segs; i = end) {
        bool repeat = word_part(t, i, context, n_args, &end);
        size_t copies = repeat ? n_args : 1;
        bool first = true;
        for (size_t c = 0; c < copies; c++) {
            if (repeat && args[c] == tmpl_missing)
                continue;
            if (!first)
                sb_addc(b, ' ');
            first = false;
            for (size_t k = i; k < end; k++)
                expand_seg(t, &t->segs[k], b, repeat ? args + c : args,
                           repeat ? 1 : n_args, args, n_args, seq, slot);
        }
    }
}

/* ---- the fast path */

/* True when the environment holds a bash function named w, exported with
 * `export -f` (BASH_FUNC_w%%, or BASH_FUNC_w() from bash before 4.3's
 * fixes): the shell runs the function, not the program of that name. */
static bool exported_function(const char *w)
{
    size_t n = strlen(w);
    if (n > 200)
        return false;
    char name[sizeof "BASH_FUNC_" + 200 + 2];
    memcpy(name, "BASH_FUNC_", 10);
    memcpy(name + 10, w, n);
    memcpy(name + 10 + n, "%%", 3);
    if (getenv(name) != NULL)
        return true;
    memcpy(name + 10 + n, "()", 3);
    return getenv(name) != NULL;
}

static bool needs_shell_name(const char *w, char *const *argv, size_t argc)
{
    static const char *const builtins[] = {
        ".",       ":",        "alias",     "bg",       "break",   "builtin",
        "caller",  "case",     "cd",        "command",  "compgen", "complete",
        "compopt", "continue", "coproc",    "declare",  "dirs",    "disown",
        "do",      "done",     "elif",      "else",     "enable",  "esac",
        "eval",    "exec",     "exit",      "export",   "fc",      "fg",
        "fi",      "for",      "function",  "getopts",  "hash",    "help",
        "history", "if",       "in",        "jobs",     "kill",    "let",
        "local",   "logout",   "mapfile",   "popd",     "printf",  "pushd",
        "pwd",     "read",     "readarray", "readonly", "return",  "select",
        "set",     "shift",    "shopt",     "source",   "suspend", "test",
        "then",    "time",     "times",     "trap",     "type",    "typeset",
        "ulimit",  "umask",    "unalias",   "unset",    "until",   "wait",
        "while"
    };
    if (strchr(w, '=') != NULL)
        return true; /* an assignment */
    if (exported_function(w))
        return true;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(w, builtins[i]) == 0)
            return true;
    /* Builtins that act as the programs of the same name, as long as no
     * option or escape asks for what differs between them. */
    bool echo = strcmp(w, "echo") == 0;
    if (echo || strcmp(w, "true") == 0 || strcmp(w, "false") == 0) {
        for (size_t i = 1; i < argc; i++)
            if (argv[i][0] == '-' || (echo && strchr(argv[i], '\\')))
                return true;
    }
    return false;
}

void tmpl_free_argv(char **argv)
{
    if (argv == NULL)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

char **tmpl_split_simple(const char *cmd)
{
    static const char plain[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-_./+,:@%^=";
    size_t cap = 8, n = 0;
    char **argv = calloc(cap, sizeof *argv);
    strbuf w = STRBUF_INIT;
    bool in_word = false, ok = argv != NULL;
    const char *p = cmd;
    while (ok) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c == ' ' || c == '\t') {
            if (in_word) {
                if (n + 2 > cap) {
                    char **g = realloc(argv, (cap *= 2) * sizeof *g);
                    if (g == NULL) {
                        ok = false;
                        break;
                    }
                    argv = g;
                }
                if (w.s == NULL)
                    sb_add(&w, "", 0);
                argv[n] = sb_take(&w);
                argv[++n] = NULL;
                ok = argv[n - 1] != NULL;
                in_word = false;
            }
            if (c == '\0')
                break;
            p++;
            continue;
        }
        in_word = true;
        if (c == '\'') {
            const char *e = strchr(p + 1, '\'');
            ok = e != NULL;
            if (ok) {
                sb_add(&w, p + 1, (size_t)(e - p - 1));
                sb_add(&w, "", 0);
                p = e + 1;
            }
        } else if (c == '"') {
            size_t k = strcspn(p + 1, "\"$`\\!");
            ok = p[1 + k] == '"';
            if (ok) {
                sb_add(&w, p + 1, k);
                sb_add(&w, "", 0);
                p += k + 2;
            }
        } else if (c == '\\') {
            ok = p[1] != '\0' && p[1] != '\n';
            if (ok) {
                sb_addc(&w, p[1]);
                p += 2;
            }
        } else if (c >= 0x80 || strchr(plain, (char)c) != NULL) {
            sb_addc(&w, (char)c);
            p++;
        } else {
            ok = false;
        }
        ok = ok && !w.oom;
    }
    sb_free(&w);
    if (ok && n > 0 && !needs_shell_name(argv[0], argv, n))
        return argv;
    if (argv)
        argv[n] = NULL;
    tmpl_free_argv(argv);
    return NULL;
}
