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
 * command's text ('...', "...", backslashes), and the value is written
 * for it (outside quotes as GNU parallel writes it; inside '...' with each
 * quote as '"'"'; inside "..." with $ ` " \ escaped).
 */
#include "tmpl.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const default_names[TM_SLOT + 1] = { "{}",   "{.}",  "{/}",
                                                        "{//}", "{/.}", "{#}",
                                                        "{%}" };

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

/* A positional replacement string at p: {n}, {-n}, {n.}, {n/}, {n//},
 * {n/.}. Returns its length, 0 when there is none. */
static size_t match_positional(const char *p, long *pos, tmpl_mod *mod)
{
    static const struct {
        const char *tail;
        tmpl_mod mod;
    } tails[] = { { "//}", TM_DIR },
                  { "/.}", TM_BASENOEXT },
                  { "/}", TM_BASE },
                  { ".}", TM_NOEXT },
                  { "}", TM_ALL } };
    const char *q = p + 1;
    bool neg = *q == '-';
    q += neg;
    if (*q < '1' || *q > '9')
        return 0;
    long v = 0;
    while (*q >= '0' && *q <= '9') {
        if (v > 100000000)
            return 0;
        v = v * 10 + (*q++ - '0');
    }
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t n = strlen(tails[i].tail);
        if (strncmp(q, tails[i].tail, n) == 0) {
            *pos = neg ? -v : v;
            *mod = tails[i].mod;
            return (size_t)(q - p) + n;
        }
    }
    return 0;
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
        len = match_positional(p, pos, mod);
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

/* Cuts t->text into segments. 0, 2 (usage error printed) or -1. */
static int cut(tmpl *t, const char *const *names)
{
    size_t cap = 0;
    const char *p = t->text, *lit = p;
    int word = 0;
    bool in_blank = false;
    char ctx = 0; /* the shell's quoting state at p */
    while (*p) {
        if (p[0] == '{' && p[1] == '=' && strstr(p + 2, "=}") != NULL) {
            cli_usage_error("run",
                            "perl expressions in replacement strings ('{=' "
                            "... '=}') are not supported: '%.*s'",
                            (int)(strstr(p + 2, "=}") + 2 - p), p);
            return 2;
        }
        tmpl_mod mod = TM_ALL;
        long pos = 0;
        size_t len = match_rpl(p, names, &mod, &pos);
        bool blank = is_blank(*p) && ctx == 0;
        if (len == 0) {
            /* Follow the quotes: '...' ends at the next ', "..." at an
             * unescaped ", and a backslash escapes outside '...'. */
            if (*p == '\\' && ctx != '\'' && p[1] != '\0') {
                if (p == lit || blank == in_blank) {
                    in_blank = false;
                    p += 2;
                    continue;
                }
            } else if ((*p == '\'' && ctx != '"') ||
                       (*p == '"' && ctx != '\'')) {
                ctx = ctx ? 0 : *p;
            }
        }
        if (len == 0 && (p == lit || blank == in_blank)) {
            in_blank = blank;
            p++;
            continue;
        }
        if (p > lit && add_seg(t, &cap,
                               (tmpl_seg){ .lit = lit,
                                           .len = (size_t)(p - lit),
                                           .word = in_blank ? -1 : word }) != 0)
            return -1;
        if (in_blank && !blank)
            word++;
        if (len == 0) {
            lit = p;
            in_blank = blank;
            p++;
            continue;
        }
        if (in_blank)
            word++;
        in_blank = false;
        if (add_seg(t, &cap,
                    (tmpl_seg){
                        .mod = mod, .pos = pos, .word = word, .ctx = ctx }) !=
            0)
            return -1;
        t->has_rpl = true;
        t->uses_slot |= mod == TM_SLOT;
        p += len;
        lit = p;
    }
    if (p > lit && add_seg(t, &cap,
                           (tmpl_seg){ .lit = lit,
                                       .len = (size_t)(p - lit),
                                       .word = in_blank ? -1 : word }) != 0)
        return -1;
    t->n_words = word + 1;
    return 0;
}

int tmpl_compile(tmpl *t, char *const *words, size_t n_words, int flags,
                 const tmpl_names *names)
{
    const char *nm[TM_SLOT + 1];
    for (int m = 0; m <= TM_SLOT; m++)
        nm[m] = names && names->name[m] ? names->name[m] : default_names[m];
    memset(t, 0, sizeof *t);
    t->quote = n_words > 0 && !(flags & TMPL_RAW);
    if (n_words == 0) {
        char *const all[] = { (char *)nm[TM_ALL] };
        t->text = join_words(all, 1, false, nm);
    } else {
        t->text = join_words(words, n_words, flags & TMPL_QUOTE_WORDS, nm);
    }
    if (t->text == NULL)
        return -1;
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

static void add_value(const tmpl *t, strbuf *b, const char *v, tmpl_mod mod,
                      char ctx)
{
    const char *s;
    size_t n;
    apply_mod(v, mod, &s, &n);
    if (!t->quote) {
        sb_add(b, s, n);
        return;
    }
    if (ctx != 0) {
        add_in_quotes(b, s, n, ctx);
        return;
    }
    if (s[n] == '\0') {
        tmpl_quote(b, s);
        return;
    }
    char *part = strndup(s, n);
    if (part == NULL) {
        b->oom = true;
        return;
    }
    tmpl_quote(b, part);
    free(part);
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
        for (size_t i = 0; i < n_args; i++) {
            if (i > 0)
                sb_addc(b, ' ');
            add_value(t, b, args[i], g->mod, g->ctx);
        }
        return;
    }
    long idx = g->pos > 0 ? g->pos - 1 : (long)n_all + g->pos;
    if (idx >= 0 && (size_t)idx < n_all)
        add_value(t, b, all[idx], g->mod, g->ctx);
}

void tmpl_expand(const tmpl *t, strbuf *b, char *const *args, size_t n_args,
                 size_t seq, size_t slot, bool context)
{
    for (size_t i = 0; i < t->n_segs;) {
        const tmpl_seg *g = &t->segs[i];
        size_t end = i + 1;
        bool repeat = false;
        if (context && g->word >= 0) {
            for (end = i; end < t->n_segs && t->segs[end].word == g->word;
                 end++)
                repeat |= t->segs[end].lit == NULL && t->segs[end].pos == 0 &&
                          t->segs[end].mod != TM_SEQ &&
                          t->segs[end].mod != TM_SLOT;
        }
        size_t copies = repeat ? n_args : 1;
        for (size_t c = 0; c < copies; c++) {
            if (c > 0)
                sb_addc(b, ' ');
            for (size_t k = i; k < end; k++)
                expand_seg(t, &t->segs[k], b, repeat ? args + c : args,
                           repeat ? 1 : n_args, args, n_args, seq, slot);
        }
        i = end;
    }
}

/* ---- the fast path */

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
