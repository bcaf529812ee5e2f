/* SPDX-License-Identifier: MIT */
/*
 * trace.c - `cfutures trace FILE.json [--svg OUT.svg]`: what the pool
 * threads of a traced run did. Reads the Chrome Trace Event JSON that
 * cf_trace_stop writes (complete "X" events for tasks, waits and sleeps,
 * instants for steals and the process pools' events, thread names as
 * metadata), prints per thread the share of the run it was busy, blocked
 * in a wait and idle, the longest tasks and the steals, and draws the
 * timeline: a lane per thread, tasks as bars, waits and idle time as gaps.
 *
 * The reader is a small JSON parser of its own that keeps only the fields
 * those events use; other producers' files parse, and what they hold
 * beyond these events is skipped.
 */
#include "trace.h"

#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cfutures trace FILE.json [--svg OUT.svg] [--top N]\n"
    "\n"
    "Summarises a trace written by cf_trace_start/cf_trace_stop or by a run\n"
    "with CFUTURES_TRACE=FILE.json: per worker thread, the share of the run\n"
    "it spent busy (running tasks), waiting (blocked inside a task) and idle;\n"
    "the longest tasks; steals; and the process pools' dispatches, worker\n"
    "deaths and replacements. The same file opens in Perfetto's UI\n"
    "(ui.perfetto.dev) and in chrome://tracing.\n"
    "\n"
    "Options:\n"
    "      --svg OUT.svg  also draw the timeline: a lane per thread, tasks as\n"
    "                     bars, blocked waits and idle time as gaps\n"
    "      --top N        list the N longest tasks (default 5)\n"
    "  -h, --help         print this help\n";

/* ---- the JSON reader ----------------------------------------------------- */

typedef struct jp {
    const char *s, *start;
    bool bad;
} jp;

static void ws(jp *j)
{
    while (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r')
        j->s++;
}

static bool expect(jp *j, char c)
{
    ws(j);
    if (*j->s != c) {
        j->bad = true;
        return false;
    }
    j->s++;
    return true;
}

/* A string into out (truncated to cap, escapes decoded; \u as '?'). */
static bool string_into(jp *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!expect(j, '"'))
        return false;
    for (;;) {
        char c = *j->s++;
        if (c == '\0') {
            j->bad = true;
            return false;
        }
        if (c == '"')
            break;
        if (c == '\\') {
            char e = *j->s++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)*j->s++)) {
                        j->bad = true;
                        return false;
                    }
                c = '?';
                break;
            case '\0': j->bad = true; return false;
            default: c = e;
            }
        }
        if (out && n + 1 < cap)
            out[n++] = c;
    }
    if (out && cap)
        out[n] = '\0';
    return true;
}

/* The end of the JSON number at s (RFC 8259's grammar: no NaN, Infinity,
 * hex or leading '+', which strtod would take), or NULL. */
static const char *number_end(const char *s)
{
    s += *s == '-';
    if (!isdigit((unsigned char)*s))
        return NULL;
    if (*s == '0')
        s++;
    else
        while (isdigit((unsigned char)*s))
            s++;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return NULL;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        s += *s == '+' || *s == '-';
        if (!isdigit((unsigned char)*s))
            return NULL;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return s;
}

/* A JSON number that is finite as a double (1e999 is refused). */
static bool number(jp *j, double *v)
{
    ws(j);
    const char *end = number_end(j->s);
    if (end)
        *v = strtod(j->s, NULL);
    if (!end || !isfinite(*v)) {
        j->bad = true;
        return false;
    }
    j->s = end;
    return true;
}

static bool skip_value(jp *j, int depth)
{
    ws(j);
    if (depth > 64) {
        j->bad = true;
        return false;
    }
    char c = *j->s;
    if (c == '"')
        return string_into(j, NULL, 0);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->s++;
        ws(j);
        if (*j->s == close) {
            j->s++;
            return true;
        }
        for (;;) {
            if (c == '{' && (!string_into(j, NULL, 0) || !expect(j, ':')))
                return false;
            if (!skip_value(j, depth + 1))
                return false;
            ws(j);
            if (*j->s == ',') {
                j->s++;
                ws(j);
                continue;
            }
            return expect(j, close);
        }
    }
    for (const char *w = c == 't'   ? "true"
                         : c == 'f' ? "false"
                                    : "null";
         c == 't' || c == 'f' || c == 'n';) {
        if (strncmp(j->s, w, strlen(w)) != 0)
            break;
        j->s += strlen(w);
        return true;
    }
    double v;
    return number(j, &v);
}

/* Calls field(j, key, ctx) for each member of an object; field parses the
 * value (or skips it). */
static bool members(jp *j, bool (*field)(jp *, const char *, void *), void *ctx)
{
    if (!expect(j, '{'))
        return false;
    ws(j);
    if (*j->s == '}') {
        j->s++;
        return true;
    }
    for (;;) {
        char key[64];
        if (!string_into(j, key, sizeof key) || !expect(j, ':') ||
            !field(j, key, ctx))
            return false;
        ws(j);
        if (*j->s == ',') {
            j->s++;
            ws(j);
            continue;
        }
        return expect(j, '}');
    }
}

/* ---- events -------------------------------------------------------------- */

typedef struct tev {
    char ph[4], name[160], cat[24], arg_name[96];
    double tid, ts, dur;
    bool is_inline;
} tev;

static bool arg_field(jp *j, const char *key, void *ctx)
{
    tev *e = ctx;
    ws(j);
    if (strcmp(key, "name") == 0 && *j->s == '"')
        return string_into(j, e->arg_name, sizeof e->arg_name);
    if (strcmp(key, "inline") == 0 && strncmp(j->s, "true", 4) == 0) {
        e->is_inline = true;
        j->s += 4;
        return true;
    }
    return skip_value(j, 2);
}

/* Thread ids are integers that a long holds; 2^53 bounds them well inside
 * (and inside a double's exact range). */
static bool tid_fits(jp *j, double tid)
{
    if (fabs(tid) <= 9007199254740992.0)
        return true;
    j->bad = true;
    return false;
}

static bool event_field(jp *j, const char *key, void *ctx)
{
    tev *e = ctx;
    ws(j);
    if (strcmp(key, "ph") == 0)
        return string_into(j, e->ph, sizeof e->ph);
    if (strcmp(key, "name") == 0)
        return string_into(j, e->name, sizeof e->name);
    if (strcmp(key, "cat") == 0)
        return string_into(j, e->cat, sizeof e->cat);
    if (strcmp(key, "tid") == 0 && *j->s != '"')
        return number(j, &e->tid) && tid_fits(j, e->tid);
    if (strcmp(key, "ts") == 0)
        return number(j, &e->ts);
    if (strcmp(key, "dur") == 0)
        return number(j, &e->dur);
    if (strcmp(key, "args") == 0 && *j->s == '{')
        return members(j, arg_field, e);
    return skip_value(j, 1);
}

static tr_lane *lane_of(tr_trace *t, long tid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->lanes[i].tid == tid)
            return &t->lanes[i];
    tr_lane *more = realloc(t->lanes, (t->n + 1) * sizeof *more);
    if (!more)
        return NULL;
    t->lanes = more;
    tr_lane *l = &t->lanes[t->n++];
    memset(l, 0, sizeof *l);
    l->tid = tid;
    return l;
}

static int intern(tr_trace *t, const char *name)
{
    for (size_t i = 0; i < t->n_fns; i++)
        if (strcmp(t->fns[i], name) == 0)
            return (int)i;
    char **more = realloc(t->fns, (t->n_fns + 1) * sizeof *more);
    if (!more)
        return -1;
    t->fns = more;
    if (!(t->fns[t->n_fns] = strdup(name)))
        return -1;
    return (int)t->n_fns++;
}

static bool add_span(tr_lane *l, tr_span s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        tr_span *more = realloc(l->spans, cap * sizeof *more);
        if (!more)
            return false;
        l->spans = more;
        l->cap = cap;
    }
    l->spans[l->n++] = s;
    return true;
}

/* Files one event into the trace: false when out of memory. */
static bool file_event(tr_trace *t, const tev *e)
{
    if (e->ph[0] == 'M') {
        tr_lane *l = lane_of(t, (long)e->tid);
        if (!l)
            return false;
        if (strcmp(e->name, "thread_name") == 0 && e->arg_name[0]) {
            free(l->name);
            l->name = strdup(e->arg_name);
        }
        return true;
    }
    if (e->ph[0] == 'i' || e->ph[0] == 'I') {
        if (strcmp(e->cat, "steal") == 0) {
            tr_lane *l = lane_of(t, (long)e->tid);
            if (!l)
                return false;
            l->steals++;
        }
        t->dispatched += strcmp(e->name, "dispatch") == 0;
        t->started += strcmp(e->name, "worker started") == 0;
        t->died += strcmp(e->name, "worker died") == 0;
        t->replaced += strcmp(e->name, "worker replaced") == 0;
        t->retired += strcmp(e->name, "worker retired") == 0;
        return true;
    }
    if (e->ph[0] != 'X')
        return true; /* other producers' events */
    /* Both ends finite (checked by the caller); a negative duration is an
     * instant. */
    tr_span s = { e->ts / 1e6, (e->ts + (e->dur > 0 ? e->dur : 0)) / 1e6,
                  TR_TASK, -1 };
    if (strcmp(e->cat, "wait") == 0)
        s.kind = TR_WAIT;
    else if (strcmp(e->cat, "idle") == 0)
        s.kind = TR_SLEEP;
    else if (e->is_inline)
        s.kind = TR_INLINE;
    if ((s.kind == TR_TASK || s.kind == TR_INLINE) &&
        (s.fn = intern(t, e->name)) < 0)
        return false;
    tr_lane *l = lane_of(t, (long)e->tid);
    if (!l || !add_span(l, s))
        return false;
    if (s.t1 > t->duration)
        t->duration = s.t1;
    return true;
}

/* Names go to a terminal and into XML: each byte that is not UTF-8 (a
 * hostile file, or a name cut to fit in the middle of a character) and
 * each control character becomes '?'. */
static void clean_name(char *s)
{
    while (*s) {
        size_t n = cf__utf8_len(s);
        if (n == 0 || (unsigned char)*s < 0x20 || *s == 0x7f) {
            *s++ = '?';
            continue;
        }
        s += n;
    }
}

typedef struct top_ctx {
    tr_trace *t;
    double duration_us;
    bool oom;
} top_ctx;

static bool other_field(jp *j, const char *key, void *ctx)
{
    top_ctx *c = ctx;
    if (strcmp(key, "duration_us") == 0)
        return number(j, &c->duration_us);
    return skip_value(j, 2);
}

static bool events(jp *j, top_ctx *c)
{
    if (!expect(j, '['))
        return false;
    ws(j);
    if (*j->s == ']') {
        j->s++;
        return true;
    }
    for (;;) {
        tev e;
        memset(&e, 0, sizeof e);
        if (!members(j, event_field, &e))
            return false;
        if (!isfinite(e.ts + e.dur)) { /* each is finite, not the sum */
            j->bad = true;
            return false;
        }
        clean_name(e.name);
        clean_name(e.cat);
        clean_name(e.arg_name);
        if (!file_event(c->t, &e)) {
            c->oom = true;
            return false;
        }
        ws(j);
        if (*j->s == ',') {
            j->s++;
            continue;
        }
        return expect(j, ']');
    }
}

static bool top_field(jp *j, const char *key, void *ctx)
{
    if (strcmp(key, "traceEvents") == 0)
        return events(j, ctx);
    if (strcmp(key, "otherData") == 0) {
        ws(j);
        if (*j->s == '{')
            return members(j, other_field, ctx);
    }
    return skip_value(j, 1);
}

/* ---- after reading ------------------------------------------------------- */

/* Compares names with their runs of digits as numbers: io_2 < io_10. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10),
                               y = strtoull(b, &eb, 10);
            if (x != y)
                return x < y ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int lane_cmp(const void *x, const void *y)
{
    const tr_lane *a = x, *b = y;
    return natural_cmp(a->name, b->name);
}

/* Threads of one name are one lane: a worker that left after its
 * idle_timeout and the one that took its place later. */
static bool merge_lanes(tr_trace *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        tr_lane *l = &t->lanes[i], *into = NULL;
        for (size_t k = 0; k < n && !into; k++)
            if (strcmp(t->lanes[k].name, l->name) == 0)
                into = &t->lanes[k];
        if (!into) {
            t->lanes[n++] = *l;
            continue;
        }
        for (size_t k = 0; k < l->n; k++)
            if (!add_span(into, l->spans[k]))
                return false;
        into->steals += l->steals;
        into->busy += l->busy;
        into->waiting += l->waiting;
        free(l->name);
        free(l->spans);
    }
    t->n = n;
    return true;
}

static const tr_trace *rank_trace; /* for fn_cmp: qsort has no context */
static double *rank_time;

static int fn_cmp(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    if (rank_time[a] != rank_time[b])
        return rank_time[a] > rank_time[b] ? -1 : 1;
    return strcmp(rank_trace->fns[a], rank_trace->fns[b]);
}

/* Lane names, busy and waiting times, the functions' colours. */
static bool finish_trace(tr_trace *t)
{
    double *time = calloc(t->n_fns + 1, sizeof *time);
    int *order = calloc(t->n_fns + 1, sizeof *order);
    t->fn_color = calloc(t->n_fns + 1, sizeof *t->fn_color);
    if (!time || !order || !t->fn_color) {
        free(time);
        free(order);
        return false;
    }
    for (size_t i = 0; i < t->n; i++) {
        tr_lane *l = &t->lanes[i];
        if (!l->name && !(l->name = cli_format("thread %ld", l->tid))) {
            free(time);
            free(order);
            return false;
        }
        for (size_t k = 0; k < l->n; k++) {
            tr_span *s = &l->spans[k];
            double d = s->t1 - s->t0;
            if (s->kind == TR_TASK) {
                l->busy += d;
                time[s->fn] += d;
            } else if (s->kind == TR_WAIT) {
                l->waiting += d;
                l->busy -= d;
            }
        }
    }
    if (!merge_lanes(t)) {
        free(time);
        free(order);
        return false;
    }
    if (t->n) /* lanes is NULL in a trace without events */
        qsort(t->lanes, t->n, sizeof *t->lanes, lane_cmp);
    for (size_t i = 0; i < t->n_fns; i++)
        order[i] = (int)i;
    rank_trace = t;
    rank_time = time;
    qsort(order, t->n_fns, sizeof *order, fn_cmp);
    for (size_t i = 0; i < t->n_fns; i++)
        t->fn_color[order[i]] = i < 7 ? (unsigned)i : 7;
    free(time);
    free(order);
    return true;
}

int trace_load(const char *path, tr_trace *t, char *err, size_t err_len)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s", strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *more = realloc(text, cap);
            if (!more) {
                free(text);
                fclose(f);
                snprintf(err, err_len, "out of memory");
                return -1;
            }
            text = more;
        }
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    bool read_error = ferror(f);
    int read_errno = errno;
    fclose(f);
    if (read_error) {
        free(text);
        snprintf(err, err_len, "%s", strerror(read_errno));
        return -1;
    }
    text[len] = '\0';
    jp j = { text, text, false };
    top_ctx c = { t, -1, false };
    ws(&j);
    bool ok = *j.s == '[' ? events(&j, &c) : members(&j, top_field, &c);
    if (ok) {
        ws(&j);
        ok = j.s == text + len; /* a NUL byte inside is not the end */
    }
    size_t at = (size_t)(j.s - j.start);
    free(text);
    if (!ok || !finish_trace(t)) {
        if (c.oom || ok)
            snprintf(err, err_len, "out of memory");
        else
            snprintf(err, err_len, "not a trace (bad JSON at byte %zu)", at);
        trace_free(t);
        return -1;
    }
    if (c.duration_us > 0)
        t->duration = c.duration_us / 1e6; /* finite: number() */
    return 0;
}

void trace_free(tr_trace *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->lanes[i].name);
        free(t->lanes[i].spans);
    }
    for (size_t i = 0; i < t->n_fns; i++)
        free(t->fns[i]);
    free(t->lanes);
    free(t->fns);
    free(t->fn_color);
    memset(t, 0, sizeof *t);
}

/* ---- pictures ------------------------------------------------------------- */

static bool drawn(const tr_span *s)
{
    return s->kind != TR_SLEEP;
}

static int busier(const void *x, const void *y)
{
    const tr_lane *a = *(const tr_lane *const *)x,
                  *b = *(const tr_lane *const *)y;
    if (a->busy != b->busy)
        return a->busy > b->busy ? -1 : 1;
    return natural_cmp(a->name, b->name);
}

static int by_name(const void *x, const void *y)
{
    const tr_lane *a = *(const tr_lane *const *)x,
                  *b = *(const tr_lane *const *)y;
    return natural_cmp(a->name, b->name);
}

int trace_panel(const tr_trace *t, const char *title, size_t max_lanes,
                unsigned color_base, svg_timeline *out)
{
    memset(out, 0, sizeof *out);
    out->title = title;
    const tr_lane **pick = calloc(t->n + 1, sizeof *pick);
    svg_lane *lanes = calloc(t->n + 1, sizeof *lanes);
    if (!pick || !lanes) {
        free(pick);
        free(lanes);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = 0; k < t->lanes[i].n; k++)
            if (drawn(&t->lanes[i].spans[k])) {
                pick[n++] = &t->lanes[i];
                break;
            }
    if (n > max_lanes) {
        qsort(pick, n, sizeof *pick, busier);
        n = max_lanes;
        qsort(pick, n, sizeof *pick, by_name);
    }
    out->lanes = lanes;
    for (size_t i = 0; i < n; i++) {
        const tr_lane *l = pick[i];
        svg_span *spans = calloc(l->n + 1, sizeof *spans);
        if (!spans) {
            free(pick);
            trace_panel_free(out);
            return -1;
        }
        size_t m = 0;
        for (size_t k = 0; k < l->n; k++) {
            const tr_span *s = &l->spans[k];
            if (!drawn(s))
                continue;
            svg_span_kind kind = s->kind == TR_TASK     ? SVG_TASK
                                 : s->kind == TR_INLINE ? SVG_INLINE
                                                        : SVG_WAIT;
            spans[m++] =
                (svg_span){ s->t0, s->t1, kind,
                            color_base +
                                (s->fn >= 0 ? t->fn_color[s->fn] : 0) };
        }
        lanes[out->n++] = (svg_lane){ l->name, spans, m };
    }
    free(pick);
    return 0;
}

void trace_panel_free(svg_timeline *p)
{
    for (size_t i = 0; i < p->n; i++)
        free((void *)p->lanes[i].spans);
    free((void *)p->lanes);
    memset(p, 0, sizeof *p);
}

size_t trace_legend(const tr_trace *t, unsigned color_base, svg_legend *legend,
                    size_t n)
{
    size_t m = 0;
    for (unsigned rank = 0; rank < 8 && m < n; rank++) {
        size_t count = 0, first = 0;
        for (size_t i = 0; i < t->n_fns; i++)
            if (t->fn_color[i] == rank && count++ == 0)
                first = i;
        if (count)
            legend[m++] =
                (svg_legend){ count > 1 ? "other tasks" : t->fns[first],
                              color_base + rank };
    }
    return m;
}

/* ---- the command ---------------------------------------------------------- */

typedef struct longest {
    double d, at;
    int fn;
    const char *lane;
} longest;

static void print_summary(const tr_trace *t, const char *path, int top)
{
    size_t tasks = 0, inlined = 0, steals = 0, lanes = 0;
    for (size_t i = 0; i < t->n; i++) {
        const tr_lane *l = &t->lanes[i];
        steals += l->steals;
        lanes += l->n > 0;
        for (size_t k = 0; k < l->n; k++) {
            tasks += l->spans[k].kind == TR_TASK;
            inlined += l->spans[k].kind == TR_INLINE;
        }
    }
    printf("%s: %.3f s traced, %zu threads, %zu tasks (%zu more run inline "
           "by waits), %zu steals\n\n",
           path, t->duration, lanes, tasks, inlined, steals);
    printf("  %-24s %7s %8s %7s %7s %7s\n", "thread", "busy", "waiting", "idle",
           "tasks", "steals");
    double d = t->duration > 0 ? t->duration : 1;
    for (size_t i = 0; i < t->n; i++) {
        const tr_lane *l = &t->lanes[i];
        if (l->n == 0)
            continue;
        size_t n = 0;
        for (size_t k = 0; k < l->n; k++)
            n += l->spans[k].kind == TR_TASK;
        double busy = l->busy > 0 ? l->busy : 0;
        double idle = d - busy - l->waiting;
        printf("  %-24.24s %6.1f%% %7.1f%% %6.1f%% %7zu %7zu\n", l->name,
               100 * busy / d, 100 * l->waiting / d,
               100 * (idle > 0 ? idle : 0) / d, n, l->steals);
    }
    if (top > 0 && tasks > 0) {
        longest *best = calloc((size_t)top, sizeof *best);
        int have = 0;
        for (size_t i = 0; best && i < t->n; i++) {
            const tr_lane *l = &t->lanes[i];
            for (size_t k = 0; k < l->n; k++) {
                const tr_span *s = &l->spans[k];
                double len = s->t1 - s->t0;
                if (s->kind != TR_TASK ||
                    (have == top && len <= best[top - 1].d))
                    continue;
                int at = have < top ? have++ : top - 1;
                while (at > 0 && best[at - 1].d < len) {
                    best[at] = best[at - 1];
                    at--;
                }
                best[at] = (longest){ len, s->t0, s->fn, l->name };
            }
        }
        printf("\n  longest tasks:\n");
        for (int i = 0; i < have; i++)
            printf("  %10.3f ms  %s  (%s, from %.3f ms)\n", best[i].d * 1e3,
                   t->fns[best[i].fn], best[i].lane, best[i].at * 1e3);
        free(best);
    }
    if (t->dispatched || t->started || t->died)
        printf("\n  process pools: %zu tasks dispatched; workers: %zu started, "
               "%zu died, %zu replaced, %zu retired\n",
               t->dispatched, t->started, t->died, t->replaced, t->retired);
}

int cmd_trace(int argc, char **argv)
{
    static const struct option options[] = {
        { "svg", required_argument, NULL, 's' },
        { "top", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *svg = NULL;
    long top = 5;
    int c;
    optind = 1;
    while ((c = cli_getopt("trace", argc, argv, ":h", options)) != -1) {
        switch (c) {
        case 's': svg = optarg; break;
        case 't':
            if (!cli_parse_long(optarg, 0, 1000, &top))
                return cli_usage_error(
                    "trace", "--top wants 0 to 1000, not '%s'", optarg);
            break;
        case 'h': fputs(usage, stdout); return EXIT_SUCCESS;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("trace", "which trace file?");
    if (optind + 1 < argc)
        return cli_usage_error("trace", "unexpected argument '%s'",
                               argv[optind + 1]);
    const char *path = argv[optind];
    tr_trace t;
    char err[160];
    if (trace_load(path, &t, err, sizeof err) != 0) {
        cli_error("trace", "%s: %s", path, err);
        return EXIT_FAILURE;
    }
    print_summary(&t, path, (int)top);
    int rc = EXIT_SUCCESS;
    if (svg) {
        svg_timeline panel;
        svg_legend legend[8];
        size_t nl = trace_legend(&t, 0, legend, 8);
        char subtitle[160];
        snprintf(subtitle, sizeof subtitle,
                 "%s: a lane per thread; tasks as bars, blocked waits and idle "
                 "time as gaps",
                 path);
        if (trace_panel(&t, "worker threads", 64, 0, &panel) != 0 ||
            svg_write_timelines(svg, "cfutures trace", subtitle, &panel, 1,
                                t.duration, legend, nl) != 0) {
            cli_error("trace", "cannot write '%s': %s", svg, strerror(errno));
            rc = EXIT_FAILURE;
        } else {
            printf("\nTimeline written to %s.\n", svg);
        }
        trace_panel_free(&panel);
    }
    trace_free(&t);
    return rc;
}
