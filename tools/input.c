/* SPDX-License-Identifier: MIT */
/*
 * input.c - the inputs of `cfutures run`, as GNU parallel reads them.
 *
 * Every source becomes one buffer of records ended by the delimiter (-d,
 * -0; a newline by default): a file or standard input as it is read, the
 * words after ::: joined with the delimiter (so a word holding a newline
 * is two inputs, as in GNU parallel). The records are split in place
 * (each ends in a NUL), and with --colsep each one into its columns, with
 * the white space around them trimmed. The records of the sources are then
 * combined: linked sources (:::+, ::::+) side by side, as far as the
 * shortest goes; the groups of them as a product, the first one changing
 * slowest. Each combination is a record
 * of fields; jobs take one record each, or several with -n/-N/-m/-X, and
 * a job's arguments are its records' fields in order.
 */
#include "run.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* The most bytes of arguments -m/-X and -n/-N put in one command. */
#define RUN_MAX_LINE 131072
/* The longest command that can run: Linux takes at most 128 KiB (with its
 * NUL) in one argument, and `sh -c COMMAND` passes it as one. */
#define RUN_MAX_COMMAND 131071

typedef struct rec_list {
    char **fields; /* n_recs * width, record after record */
    size_t n_recs, width;
} rec_list;

static int keep_buf(run_inputs *in, char *buf)
{
    char **g = realloc(in->bufs, (in->n_bufs + 1) * sizeof *g);
    if (g == NULL) {
        free(buf);
        return -1;
    }
    in->bufs = g;
    in->bufs[in->n_bufs++] = buf;
    return 0;
}

/* Reads all of fd into a new buffer with room for a NUL after it. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 2) {
            char *g = realloc(buf, cap *= 2);
            if (g == NULL)
                break;
            buf = g;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (r == 0) {
            buf[n] = '\0';
            *len = n;
            return buf;
        }
        n += (size_t)r;
    }
    int e = errno;
    free(buf);
    errno = e ? e : ENOMEM;
    return NULL;
}

int run_split_records(char *s, size_t len, const char *delim, size_t delim_len,
                      char ***out, size_t *n, size_t *cap)
{
    size_t pos = 0;
    while (pos < len) {
        char *hit = memmem(s + pos, len - pos, delim, delim_len);
        size_t end = hit ? (size_t)(hit - s) : len;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            char **g = realloc(*out, c * sizeof *g);
            if (g == NULL)
                return -1;
            *out = g;
            *cap = c;
        }
        (*out)[(*n)++] = s + pos;
        s[end] = '\0';
        pos = hit ? end + delim_len : len;
    }
    return 0;
}

/* -r: a record of only white space (Perl's \s, as GNU parallel) is
 * skipped like an empty one. */
static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || !strchr(" \t\n\r\f\v", s[i]))
            return false;
    return true;
}

/* --pipe -r: leaves out of s the records of only white space, with their
 * ends (a last record without an end stays, as in GNU parallel). Returns
 * the new length. */
static size_t drop_blank_records(char *s, size_t len, const char *d, size_t dl)
{
    size_t out = 0;
    for (size_t pos = 0; pos < len;) {
        char *hit = memmem(s + pos, len - pos, d, dl);
        size_t end = hit ? (size_t)(hit - s) + dl : len;
        if (hit == NULL || !blank(s + pos, (size_t)(hit - s) - pos)) {
            memmove(s + out, s + pos, end - pos);
            out += end - pos;
        }
        pos = end;
    }
    return out;
}

/* A NUL byte in input read without -0 cannot be passed in an argument:
 * as GNU parallel, each one becomes the two characters \0 (the rest of the
 * record is kept), with GNU parallel's three warnings for every record
 * that held one. Returns the buffer to use (buf itself when it holds no
 * NUL, else a new one and buf is freed), or NULL when out of memory. */
static char *replace_nuls(const run_config *cfg, char *buf, size_t *len)
{
    if (memchr(cfg->delim, '\0', cfg->delim_len) != NULL ||
        memchr(buf, '\0', *len) == NULL)
        return buf;
    size_t n = *len, nuls = 0, recs = 0;
    for (size_t pos = 0; pos < n;) {
        char *hit = memmem(buf + pos, n - pos, cfg->delim, cfg->delim_len);
        size_t end = hit ? (size_t)(hit - buf) : n;
        bool any = false;
        for (size_t i = pos; i < end; i++)
            if (buf[i] == '\0') {
                nuls++;
                any = true;
            }
        recs += any;
        pos = hit ? end + cfg->delim_len : n;
    }
    char *out = malloc(n + nuls + 1);
    if (out == NULL) {
        free(buf);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\0') {
            out[k++] = '\\';
            out[k++] = '0';
        } else {
            out[k++] = buf[i];
        }
    }
    out[k] = '\0';
    free(buf);
    *len = k;
    for (size_t r = 0; r < recs; r++)
        fputs("cfutures run: Warning: A NUL character in the input was "
              "replaced with \\0.\n"
              "cfutures run: Warning: NUL cannot be passed through in the "
              "argument list.\n"
              "cfutures run: Warning: Did you mean to use the --null "
              "option?\n",
              stderr);
    return out;
}

/* --colsep: a compiled regular expression, or the literal text. */
typedef struct colsep {
    bool regex;
    regex_t re;
    const char *lit;
} colsep;

/* Perl's \t \n \s \d, which GNU parallel's --colsep takes, in POSIX ERE. */
static char *translate_regex(const char *s)
{
    strbuf b = STRBUF_INIT;
    for (; *s; s++) {
        if (s[0] != '\\' || s[1] == '\0') {
            sb_addc(&b, *s);
            continue;
        }
        switch (*++s) {
        case 't': sb_addc(&b, '\t'); break;
        case 'n': sb_addc(&b, '\n'); break;
        case 's': sb_adds(&b, "[[:space:]]"); break;
        case 'd': sb_adds(&b, "[0-9]"); break;
        default: sb_addc(&b, '\\'); sb_addc(&b, *s);
        }
    }
    return sb_take(&b);
}

static int colsep_init(colsep *c, const char *spec)
{
    c->lit = spec;
    c->regex = strpbrk(spec, ".[]()*+?{}|^$\\") != NULL;
    if (!c->regex)
        return 0;
    char *ere = translate_regex(spec);
    if (ere == NULL)
        return -1;
    int rc = regcomp(&c->re, ere, REG_EXTENDED);
    free(ere);
    if (rc != 0)
        return cli_usage_error("run",
                               "--colsep: not a regular expression "
                               "cfutures can use: '%s'",
                               spec);
    return 0;
}

/* Splits one record in place into its columns, appended to *cols. */
static int split_columns(const colsep *c, char *s, char ***cols, size_t *n,
                         size_t *cap)
{
    for (;;) {
        if (*n == *cap) {
            size_t k = *cap ? *cap * 2 : 8;
            char **g = realloc(*cols, k * sizeof *g);
            if (g == NULL)
                return -1;
            *cols = g;
            *cap = k;
        }
        (*cols)[(*n)++] = s;
        size_t so, eo;
        if (c->regex) {
            regmatch_t m;
            if (*s == '\0' ||
                regexec(&c->re, s, 1, &m, s == (*cols)[0] ? 0 : REG_NOTBOL) !=
                    0 ||
                m.rm_eo == m.rm_so)
                return 0;
            so = (size_t)m.rm_so;
            eo = (size_t)m.rm_eo;
        } else {
            char *hit = strstr(s, c->lit);
            if (hit == NULL)
                return 0;
            so = (size_t)(hit - s);
            eo = so + strlen(c->lit);
        }
        s[so] = '\0';
        s += eo;
    }
}

/* A column without the white space around it (in place), as GNU
 * parallel's --colsep trims them. */
static char *trim(char *s)
{
    while (*s && strchr(" \t\n\r\f\v", *s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\n\r\f\v", s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One source's records, each split into columns with --colsep. Every
 * record of a source gets the width of its widest (missing columns are
 * empty). */
static int source_records(const run_config *cfg, const run_source *src,
                          run_inputs *in, const colsep *cs, rec_list *out)
{
    char *buf;
    size_t len = 0;
    if (src->kind == SRC_ARGS) {
        strbuf b = STRBUF_INIT;
        for (size_t i = 0; i < src->n_words; i++) {
            sb_adds(&b, src->words[i]);
            sb_add(&b, cfg->delim, cfg->delim_len);
        }
        len = b.len;
        sb_add(&b, "", 0);
        buf = b.oom ? (sb_free(&b), NULL) : b.s;
        if (buf == NULL)
            return -1;
    } else {
        int fd = STDIN_FILENO;
        if (src->kind == SRC_FILE && strcmp(src->path, "-") != 0)
            fd = open(src->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (buf = read_all(fd, &len)) == NULL) {
            cli_error("run", "cannot read the inputs from '%s': %s",
                      src->kind == SRC_STDIN ? "standard input" : src->path,
                      strerror(errno));
            if (fd > STDIN_FILENO)
                close(fd);
            return CLI_EXIT_ERROR;
        }
        if (fd > STDIN_FILENO)
            close(fd);
        if ((buf = replace_nuls(cfg, buf, &len)) == NULL)
            return -1;
    }
    if (keep_buf(in, buf) != 0)
        return -1;
    char **recs = NULL;
    size_t n = 0, cap = 0;
    if (run_split_records(buf, len, cfg->delim, cfg->delim_len, &recs, &n,
                          &cap) != 0) {
        free(recs);
        return -1;
    }
    if (cfg->skip_empty) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!blank(recs[i], strlen(recs[i])))
                recs[k++] = recs[i];
        n = k;
    }
    out->n_recs = n;
    out->width = 1;
    out->fields = recs;
    if (cs == NULL)
        return 0;
    /* Columns: split every record, then lay them out at one width. */
    char ***cols = calloc(n ? n : 1, sizeof *cols);
    size_t *ncol = calloc(n ? n : 1, sizeof *ncol);
    int rc = cols && ncol ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t c = 0;
        rc = split_columns(cs, recs[i], &cols[i], &ncol[i], &c);
        if (ncol[i] > out->width)
            out->width = ncol[i];
    }
    char **fields = rc == 0 ? calloc(n * out->width + 1, sizeof *fields) : NULL;
    if (fields) {
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < out->width; k++)
                fields[i * out->width + k] =
                    k < ncol[i] ? trim(cols[i][k]) : tmpl_missing;
    }
    for (size_t i = 0; cols && i < n; i++)
        free(cols[i]);
    free(cols);
    free(ncol);
    free(recs);
    out->fields = fields;
    return fields ? 0 : -1;
}

/* Appends to *args the fields of combination number k. */
static void put_record(const rec_list *lists, size_t n_lists,
                       const size_t *group_of, const size_t *group_len,
                       size_t n_groups, size_t k, char **dst)
{
    /* The index in each group, the last group changing fastest. */
    size_t idx[n_groups];
    for (size_t g = n_groups; g-- > 0;) {
        idx[g] = k % group_len[g];
        k /= group_len[g];
    }
    for (size_t s = 0; s < n_lists; s++) {
        const rec_list *l = &lists[s];
        size_t i = idx[group_of[s]];
        memcpy(dst, l->fields + i * l->width, l->width * sizeof *dst);
        dst += l->width;
    }
}

/* The length of the command for args[0..n) (job number seq). */
static size_t command_len(const run_config *cfg, char *const *args, size_t n,
                          size_t seq)
{
    strbuf b = STRBUF_INIT;
    size_t slot = cfg->jobs > 0 ? (size_t)cfg->jobs : 1;
    tmpl_expand(&cfg->cmd, &b, args, n, seq, slot, cfg->context);
    size_t len = b.len;
    free(sb_take(&b));
    return len;
}

/* A record too long to run in any command: refused before anything runs,
 * as GNU parallel does (with its message and exit status). */
static int too_long(run_inputs *in, size_t rec, size_t width, size_t len)
{
    strbuf b = STRBUF_INIT;
    for (size_t k = 0; k < width; k++) {
        const char *f = in->args[rec * width + k];
        if (f == tmpl_missing)
            continue;
        if (k > 0)
            sb_addc(&b, ' ');
        sb_adds(&b, f);
    }
    char *s = sb_take(&b);
    bool cut = s && strlen(s) > 50;
    if (cut)
        s[50] = '\0';
    cli_error("run",
              "Command line too long (%zu >= %d) at input %zu: %s%s "
              "(a command can be at most %d bytes long)",
              len, RUN_MAX_COMMAND + 1, rec + 1, s ? s : "", cut ? "..." : "",
              RUN_MAX_COMMAND);
    free(s);
    return CLI_EXIT_ERROR;
}

/* Whether the command holds input values (not only {#} and {%}): only
 * then do a job's records count against the length of a command line. */
static bool takes_inputs(const tmpl *t)
{
    for (size_t i = 0; i < t->n_segs; i++)
        if (!t->segs[i].lit && t->segs[i].mod != TM_SEQ &&
            t->segs[i].mod != TM_SLOT)
            return true;
    return false;
}

static int make_jobs(const run_config *cfg, run_inputs *in, size_t n_recs,
                     size_t width)
{
    bool sized = !cfg->no_args && takes_inputs(&cfg->cmd);
    size_t per = 1;
    if (cfg->max_args > 0)
        per = (size_t)cfg->max_args;
    else if (cfg->multi) {
        size_t slots = cfg->jobs > 0 ? (size_t)cfg->jobs : 1;
        per = (n_recs + slots - 1) / slots;
    }
    if (per == 0)
        per = 1;
    size_t max_jobs = n_recs; /* -m/-X and -n may cut more often than per */
    in->job_first = calloc(max_jobs ? max_jobs : 1, sizeof *in->job_first);
    in->job_count = calloc(max_jobs ? max_jobs : 1, sizeof *in->job_count);
    if (in->job_first == NULL || in->job_count == NULL)
        return -1;
    /* The longest a job number gets, for {#} in the lengths. */
    size_t seq_max = n_recs ? n_recs : 1;
    size_t r = 0;
    while (r < n_recs) {
        size_t first = r, bytes = 0;
        while (r < n_recs && r - first < per) {
            size_t rb = 0;
            for (size_t k = 0; k < width; k++)
                rb += strlen(in->args[r * width + k]) + 3;
            /* Several records to a job (-m/-X, -n/-N): as many as fit, as
             * GNU parallel and xargs do. */
            if (sized && per > 1 && r > first && bytes + rb > RUN_MAX_LINE)
                break;
            bytes += rb;
            r++;
        }
        size_t count = cfg->no_args ? 0 : (r - first) * width;
        /* The command itself must fit: a record too long alone is
         * refused; a job of several that is too long (quoting, the words
         * around the arguments) gives back records until it fits. Short
         * jobs need no look. */
        if (count > 0 && (per > 1 || 5 * bytes + 32 * cfg->cmd.n_segs +
                                             strlen(cfg->cmd.text) >
                                         RUN_MAX_COMMAND)) {
            for (;;) {
                size_t len =
                    command_len(cfg, in->args + first * width, count, seq_max);
                if (len <= RUN_MAX_COMMAND)
                    break;
                size_t n = r - first;
                if (n == 1)
                    return too_long(in, first, width, len);
                /* About as many as fit, then one by one. */
                size_t fit = (size_t)((double)n * RUN_MAX_COMMAND / len);
                n = fit >= 1 && fit < n - 1 ? fit : n - 1;
                r = first + n;
                count = n * width;
            }
        }
        in->job_first[in->n_jobs] = first * width;
        in->job_count[in->n_jobs] = count;
        in->n_jobs++;
    }
    return 0;
}

static int read_pipe_chunks(const run_config *cfg, run_inputs *in)
{
    size_t len = 0;
    char *buf = read_all(STDIN_FILENO, &len);
    if (buf == NULL) {
        cli_error("run", "cannot read standard input: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    if (cfg->skip_empty)
        len = drop_blank_records(buf, len, "\n", 1); /* lines, as GNU */
    in->pipe_data = buf;
    in->pipe_len = len;
    size_t cap = len / (cfg->block ? cfg->block : 1) + 16, n = 0;
    in->chunk_off = malloc(cap * sizeof *in->chunk_off);
    in->chunk_len = malloc(cap * sizeof *in->chunk_len);
    const char *d = cfg->delim;
    size_t dl = cfg->delim_len;
    for (size_t pos = 0; pos < len;) {
        size_t end;
        if (cfg->pipe_records > 0) {
            end = pos;
            for (long k = 0; k < cfg->pipe_records && end < len; k++) {
                char *hit = memmem(buf + end, len - end, d, dl);
                end = hit ? (size_t)(hit - buf) + dl : len;
            }
        } else if (len - pos <= cfg->block) {
            end = len;
        } else {
            /* The last record end within the block, else the first one
             * after it. */
            end = 0;
            for (size_t i = pos + cfg->block; i >= pos + dl; i--) {
                if (memcmp(buf + i - dl, d, dl) == 0) {
                    end = i;
                    break;
                }
            }
            if (end == 0) {
                char *hit = memmem(buf + pos + cfg->block,
                                   len - pos - cfg->block, d, dl);
                end = hit ? (size_t)(hit - buf) + dl : len;
            }
        }
        if (n == cap || in->chunk_off == NULL || in->chunk_len == NULL) {
            cap = cap * 2;
            size_t *a =
                in->chunk_off ? realloc(in->chunk_off, cap * sizeof *a) : NULL;
            if (a)
                in->chunk_off = a;
            size_t *b =
                in->chunk_len ? realloc(in->chunk_len, cap * sizeof *b) : NULL;
            if (b)
                in->chunk_len = b;
            if (a == NULL || b == NULL)
                return -1;
        }
        in->chunk_off[n] = pos;
        in->chunk_len[n] = end - pos;
        n++;
        pos = end;
    }
    in->n_jobs = n;
    return 0;
}

/* A random k in [0, n) for --shuf (xorshift, seeded once from the
 * kernel's random bytes, or the time and pid without them). */
size_t run_random_below(size_t n)
{
    static unsigned long long x;
    if (!x && getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
        x = (unsigned long long)time(NULL) * 2654435761u ^ (unsigned)getpid();
    x |= !x;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (size_t)(x % n);
}

/* --shuf: the records in random order, before they make jobs, as GNU
 * parallel shuffles them: {#}, -k, the job log follow the new order. */
static void shuffle_records(char **args, size_t n, size_t width)
{
    for (size_t i = n; i > 1; i--) {
        size_t k = run_random_below(i);
        for (size_t f = 0; f < width; f++) {
            char *t = args[(i - 1) * width + f];
            args[(i - 1) * width + f] = args[k * width + f];
            args[k * width + f] = t;
        }
    }
}

int run_read_inputs(const run_config *cfg, const run_source *src, size_t n_src,
                    run_inputs *in)
{
    memset(in, 0, sizeof *in);
    if (cfg->pipe) {
        int rc = read_pipe_chunks(cfg, in);
        if (rc < 0)
            cli_error("run", "out of memory");
        return rc < 0 ? CLI_EXIT_ERROR : rc;
    }
    run_source stdin_src = { .kind = SRC_STDIN };
    if (n_src == 0) {
        if (isatty(STDIN_FILENO))
            cli_error("run", "reading the inputs from standard input, one "
                             "per line (Ctrl-D ends them)");
        src = &stdin_src;
        n_src = 1;
    }
    colsep cs;
    int rc = cfg->colsep ? colsep_init(&cs, cfg->colsep) : 0;
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_ERROR : rc;
    rec_list lists[n_src];
    size_t group_of[n_src], group_len[n_src];
    size_t n_groups = 0, width = 0, total = 1;
    memset(lists, 0, sizeof lists);
    size_t n_empty = 0;
    for (size_t s = 0; rc == 0 && s < n_src; s++) {
        rc = source_records(cfg, &src[s], in, cfg->colsep ? &cs : NULL,
                            &lists[s]);
        n_empty += rc == 0 && lists[s].n_recs == 0;
    }
    /* As GNU parallel: beside sources with inputs, an empty one gives one
     * empty input (`::: a ::: $(ls none*)` runs with a and ''). */
    for (size_t s = 0; rc == 0 && n_empty < n_src && s < n_src; s++) {
        if (lists[s].n_recs > 0)
            continue;
        free(lists[s].fields);
        lists[s].fields = malloc(lists[s].width * sizeof *lists[s].fields);
        if (lists[s].fields == NULL) {
            rc = -1;
            break;
        }
        for (size_t k = 0; k < lists[s].width; k++)
            lists[s].fields[k] = "";
        lists[s].n_recs = 1;
    }
    for (size_t s = 0; rc == 0 && s < n_src; s++) {
        width += lists[s].width;
        if (s == 0 || !src[s].linked) {
            group_len[n_groups++] = lists[s].n_recs;
        } else if (lists[s].n_recs < group_len[n_groups - 1]) {
            group_len[n_groups - 1] = lists[s].n_recs;
        }
        group_of[s] = n_groups - 1;
    }
    for (size_t g = 0; rc == 0 && g < n_groups; g++) {
        if (group_len[g] != 0 && total > SIZE_MAX / 2 / width / group_len[g]) {
            cli_error("run", "too many combinations of inputs");
            rc = CLI_EXIT_ERROR;
        }
        total *= group_len[g];
    }
    if (rc == 0) {
        in->n_args = total * width;
        in->args = malloc((in->n_args ? in->n_args : 1) * sizeof *in->args);
        if (in->args == NULL)
            rc = -1;
    }
    for (size_t k = 0; rc == 0 && k < total; k++)
        put_record(lists, n_src, group_of, group_len, n_groups, k,
                   in->args + k * width);
    in->width = width;
    if (rc == 0 && cfg->shuf)
        shuffle_records(in->args, total, width);
    if (rc == 0)
        rc = make_jobs(cfg, in, total, width);
    for (size_t s = 0; s < n_src; s++)
        free(lists[s].fields);
    if (cfg->colsep && cs.regex)
        regfree(&cs.re);
    if (rc < 0)
        cli_error("run", "out of memory for the inputs");
    return rc < 0 ? CLI_EXIT_ERROR : rc;
}

void run_free_inputs(run_inputs *in)
{
    for (size_t i = 0; i < in->n_bufs; i++)
        free(in->bufs[i]);
    free(in->bufs);
    free(in->args);
    free(in->job_first);
    free(in->job_count);
    free(in->pipe_data);
    free(in->chunk_off);
    free(in->chunk_len);
    memset(in, 0, sizeof *in);
}
