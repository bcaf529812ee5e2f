/* SPDX-License-Identifier: MIT */
/*
 * trace.c - cf_trace_start / cf_trace_stop and CFUTURES_TRACE: what the pool
 * threads did, as a Chrome Trace Event file (Perfetto, chrome://tracing,
 * `cfutures trace`).
 *
 * Recording: each thread appends fixed-size events (a clock reading, a
 * pointer, a number, a kind) to its own buffer, a list of chunks that only
 * it writes; a chunk's count is stored with release after the event, so a
 * reader that acquires the count sees whole events. The buffer joins the
 * session's list (under trace_mu) on the thread's first event: the only
 * lock, taken once per thread and session. Off, a hook is one relaxed load
 * of cf__trace_gen and a branch (trace.h).
 *
 * Stopping: cf_trace_stop clears cf__trace_gen, writes every buffer of the
 * session (events published so far), then hands each buffer back. A thread
 * may still be appending to its buffer (it read the flag just before), so a
 * buffer is freed by whichever of two parties lets go last: the stopper
 * (RETIRED: written out) and the owner thread (ORPHAN: it ended, seen by a
 * pthread key destructor, or it moved on to a newer session). One atomic
 * exchange of the state decides which of the two frees it.
 *
 * Writing turns begin/end pairs into complete ("X") events per thread, and
 * names task functions with dladdr (then, not while recording). Functions
 * dladdr cannot name (static ones, or a program linked without
 * -rdynamic) appear as module+offset.
 */
#include "trace.h"

#include "platform/utf8.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum {
    CHUNK_EVENTS = 4096,
    MAX_EVENTS = 1 << 21, /* per thread and session (48 MiB); then dropped */
    MAX_DEPTH = 256,      /* open slices per thread the writer follows */
};

typedef struct event {
    uint64_t stamp; /* stamp(): TSC ticks or CLOCK_MONOTONIC ns */
    const void *p;
    uint32_t a;
    uint32_t kind;
} event;

typedef struct chunk {
    _Atomic(struct chunk *) next; /* release: the chunk is initialised */
    _Atomic size_t n;             /* release: events [0, n) are written */
    event ev[CHUNK_EVENTS];
} chunk;

enum { LIVE, RETIRED, ORPHAN };

typedef struct tbuf {
    struct tbuf *next; /* the session's list (trace_mu) */
    uint32_t gen;
    _Atomic int state;
    long tid;
    char name[64];
    chunk *head;
    chunk *tail;  /* owner only */
    size_t total; /* owner only */
    _Atomic size_t dropped;
} tbuf;

_Atomic uint32_t cf__trace_gen;

/* One trace at a time: its file, its buffers, its start. trace_mu guards
 * them and the start and stop of sessions. */
static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    FILE *file;
    tbuf *buffers;
    uint32_t gen;
    uint64_t t0, t0_ns; /* the start, as a stamp and in ns */
    bool from_env;
} session;
static uint32_t last_gen;
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static _Thread_local tbuf *tls_buf;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Events are stamped with the TSC where the kernel itself keeps time with
 * it (clocksource tsc: constant and in step across CPUs), a few times
 * cheaper than clock_gettime; the writer maps ticks to time by the stamps
 * and clock readings taken at start and stop. Decided once. */
static _Atomic bool use_tsc;

static void choose_clock(void)
{
#if defined(__x86_64__) || defined(__i386__)
    char src[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                    "current_clocksource",
                    "re");
    if (f) {
        if (!fgets(src, sizeof src, f))
            src[0] = '\0';
        fclose(f);
    }
    atomic_store_explicit(&use_tsc, strcmp(src, "tsc\n") == 0,
                          memory_order_relaxed);
#endif
}

static inline uint64_t stamp(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (atomic_load_explicit(&use_tsc, memory_order_relaxed))
        return __builtin_ia32_rdtsc();
#endif
    return now_ns();
}

static void free_buf(tbuf *b)
{
    for (chunk *c = b->head, *next; c; c = next) {
        next = atomic_load_explicit(&c->next, memory_order_relaxed);
        cf__free(c);
    }
    cf__free(b);
}

/* The owner lets go of b (it ends, or moves on): frees it if the stopper
 * has written it out already. */
static void owner_lets_go(void *p)
{
    tbuf *b = p;
    /* acq_rel: pairs with the stopper's exchange below */
    if (b && atomic_exchange_explicit(&b->state, ORPHAN,
                                      memory_order_acq_rel) == RETIRED)
        free_buf(b);
}

static void stopper_lets_go(tbuf *b)
{
    if (atomic_exchange_explicit(&b->state, RETIRED, memory_order_acq_rel) ==
        ORPHAN)
        free_buf(b);
}

/* fork() waits for a trace being written: a child that ends with exit()
 * flushes the stdio buffers it inherited, and would append the half of the
 * parent's file that sat in one. While a trace records, its file's buffer
 * is empty (everything is written at the stop), so the child may keep it
 * unflushed and unused. */
static void before_fork(void)
{
    pthread_mutex_lock(&trace_mu);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&trace_mu);
}

static void after_fork_child(void)
{
    /* The child records nothing and writes nothing of the parent's. */
    atomic_store_explicit(&cf__trace_gen, 0, memory_order_relaxed);
    pthread_mutex_init(&trace_mu, NULL);
    session.file = NULL;
    session.buffers = NULL;
    session.gen = 0;
    tls_buf = NULL;
}

static void make_key(void)
{
    pthread_key_create(&buf_key, owner_lets_go);
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    choose_clock();
}

/* The calling thread's buffer for session gen: NULL when out of memory or
 * the session ended meanwhile. */
static tbuf *attach(uint32_t gen)
{
    if (tls_buf) {
        owner_lets_go(tls_buf);
        tls_buf = NULL;
        pthread_setspecific(buf_key, NULL);
    }
    tbuf *b = cf__calloc(1, sizeof *b);
    chunk *c = cf__malloc(sizeof *c);
    if (!b || !c) {
        cf__free(b);
        cf__free(c);
        return NULL;
    }
    atomic_init(&c->next, NULL);
    atomic_init(&c->n, 0);
    b->head = b->tail = c;
    b->gen = gen;
    b->tid = (long)syscall(SYS_gettid);
    snprintf(b->name, sizeof b->name, "%s", cf_thread_current_name());
    atomic_init(&b->state, LIVE);
    pthread_mutex_lock(&trace_mu);
    bool current = session.gen == gen;
    if (current) {
        b->next = session.buffers;
        session.buffers = b;
    }
    pthread_mutex_unlock(&trace_mu);
    if (!current) {
        free_buf(b);
        return NULL;
    }
    tls_buf = b;
    pthread_setspecific(buf_key, b);
    return b;
}

void cf__trace_record(cf__trace_kind kind, const void *p, uint64_t a)
{
    uint32_t gen = atomic_load_explicit(&cf__trace_gen, memory_order_relaxed);
    if (!gen)
        return;
    tbuf *b = tls_buf;
    if (!b || b->gen != gen) {
        if (!(b = attach(gen)))
            return;
    }
    chunk *c = b->tail;
    size_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
    if (n == CHUNK_EVENTS) {
        chunk *more = b->total + CHUNK_EVENTS < MAX_EVENTS
                          ? cf__malloc(sizeof *more)
                          : NULL;
        if (!more) {
            atomic_fetch_add_explicit(&b->dropped, 1, memory_order_relaxed);
            return;
        }
        atomic_init(&more->next, NULL);
        atomic_init(&more->n, 0);
        b->total += CHUNK_EVENTS;
        /* release: the stopper that follows the link sees it initialised */
        atomic_store_explicit(&c->next, more, memory_order_release);
        b->tail = c = more;
        n = 0;
    }
    event *e = &c->ev[n];
    e->stamp = stamp();
    e->p = p;
    e->a = (uint32_t)a;
    e->kind = (uint32_t)kind;
    /* release: the stopper that acquires n sees the event whole */
    atomic_store_explicit(&c->n, n + 1, memory_order_release);
}

/* ---- writing ------------------------------------------------------------
 * One thread writes the file, holding its lock throughout (flockfile), so
 * the unlocked stdio calls; numbers are formatted by hand: printf was most
 * of the writer's time. */

static void put(FILE *f, const char *s)
{
    fputs_unlocked(s, f);
}

static void put_u64(FILE *f, uint64_t v)
{
    char b[24];
    size_t i = sizeof b;
    do
        b[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    fwrite_unlocked(b + i, 1, sizeof b - i, f);
}

/* s as a JSON string. Names are bytes the library does not choose (a
 * pool's name_prefix, a module's file name) and JSON text is UTF-8: each
 * byte that does not start a well-formed sequence is written as U+FFFD. */
static void put_json_string(FILE *f, const char *s)
{
    fputc_unlocked('"', f);
    while (*s) {
        unsigned char ch = (unsigned char)*s;
        size_t n = cf__utf8_len(s);
        if (n == 0) {
            put(f, "\\ufffd");
            s++;
        } else if (n > 1) {
            fwrite_unlocked(s, 1, n, f);
            s += n;
        } else if (ch == '"' || ch == '\\') {
            fputc_unlocked('\\', f);
            fputc_unlocked((char)ch, f);
            s++;
        } else if (ch < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put(f, esc);
            s++;
        } else {
            fputc_unlocked((char)ch, f);
            s++;
        }
    }
    fputc_unlocked('"', f);
}

/* A task function's name: its symbol, else module+offset, else "task". */
static const char *resolve(const void *p, char *buf, size_t n)
{
    Dl_info di;
    if (dladdr(p, &di)) {
        if (di.dli_sname && di.dli_saddr == p)
            return di.dli_sname;
        const char *mod = di.dli_fname ? strrchr(di.dli_fname, '/') : NULL;
        mod = mod ? mod + 1 : di.dli_fname ? di.dli_fname : "?";
        snprintf(buf, n, "%s+0x%lx", mod,
                 (unsigned long)((const char *)p - (const char *)di.dli_fbase));
        return buf;
    }
    snprintf(buf, n, "%p", p);
    return buf;
}

/* dladdr costs microseconds: the writer remembers the names it found, in
 * a direct-mapped cache of NAMES entries. */
enum { NAMES = 256, NAME_LEN = 120 };
typedef struct name_cache {
    const void *p[NAMES];
    char name[NAMES][NAME_LEN];
} name_cache;

static const char *fn_name(name_cache *c, const void *p, char *buf, size_t n)
{
    if (!p)
        return "task";
    if (!c)
        return resolve(p, buf, n);
    size_t i = ((uintptr_t)p >> 4) % NAMES;
    if (c->p[i] != p) {
        snprintf(c->name[i], NAME_LEN, "%s", resolve(p, buf, n));
        c->p[i] = p;
    }
    return c->name[i];
}

typedef struct slice {
    uint32_t kind; /* the BEGIN kind */
    uint64_t stamp;
    const void *p;
    uint32_t a;
} slice;

typedef struct writer {
    FILE *f;
    uint64_t t0, t_end; /* stamps */
    double us_per_tick;
    long pid;
    bool first;
    name_cache *names; /* NULL when out of memory: no cache */
} writer;

/* Microseconds from the start to stamp s. */
static double us_of(const writer *w, uint64_t s)
{
    return s > w->t0 ? (double)(s - w->t0) * w->us_per_tick : 0.0;
}

/* Microseconds with three decimals. */
static void put_us(FILE *f, double us)
{
    uint64_t ns = us > 0 ? (uint64_t)(us * 1e3 + 0.5) : 0;
    unsigned frac = (unsigned)(ns % 1000);
    char dec[5] = { '.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                    (char)('0' + frac % 10), '\0' };
    put_u64(f, ns / 1000);
    put(f, dec);
}

static void event_head(writer *w, const tbuf *b, const char *ph, uint64_t s)
{
    put(w->f, w->first ? "\n{\"ph\":\"" : ",\n{\"ph\":\"");
    w->first = false;
    put(w->f, ph);
    put(w->f, "\",\"pid\":");
    put_u64(w->f, (uint64_t)w->pid);
    put(w->f, ",\"tid\":");
    put_u64(w->f, (uint64_t)b->tid);
    put(w->f, ",\"ts\":");
    put_us(w->f, us_of(w, s));
}

static void close_slice(writer *w, const tbuf *b, const slice *s, uint64_t end,
                        uint32_t end_a)
{
    char buf[160];
    const char *name, *cat;
    switch (s->kind) {
    case CF__TR_TASK_BEGIN:
        name = fn_name(w->names, s->p, buf, sizeof buf);
        cat = "task";
        break;
    case CF__TR_WAIT_BEGIN:
        name = "blocked";
        cat = "wait";
        break;
    default:
        name = "sleep";
        cat = "idle";
        break;
    }
    event_head(w, b, "X", s->stamp);
    put(w->f, ",\"dur\":");
    put_us(w->f, end > s->stamp ? us_of(w, end) - us_of(w, s->stamp) : 0.0);
    put(w->f, ",\"cat\":\"");
    put(w->f, cat);
    put(w->f, "\",\"name\":");
    put_json_string(w->f, name);
    if (s->kind == CF__TR_TASK_BEGIN && s->a)
        put(w->f, ",\"args\":{\"inline\":true}");
    else if (s->kind == CF__TR_SLEEP_BEGIN && end_a)
        put(w->f, ",\"args\":{\"timed_out\":true}");
    put(w->f, "}");
}

static void instant(writer *w, const tbuf *b, const event *e, const char *name,
                    const char *cat, const char *arg)
{
    event_head(w, b, "i", e->stamp);
    put(w->f, ",\"s\":\"t\",\"cat\":\"");
    put(w->f, cat);
    put(w->f, "\",\"name\":\"");
    put(w->f, name);
    put(w->f, "\"");
    if (arg) {
        put(w->f, ",\"args\":{\"");
        put(w->f, arg);
        put(w->f, "\":");
        put_u64(w->f, e->a);
        put(w->f, "}");
    }
    put(w->f, "}");
}

/* Pops the innermost open slice of kind begin (and any left open inside
 * it, which ends with it). */
static void pop(writer *w, const tbuf *b, slice *st, int *depth, uint32_t begin,
                const event *e)
{
    int i = *depth - 1;
    while (i >= 0 && st[i].kind != begin)
        i--;
    if (i < 0)
        return; /* began before the trace did */
    while (*depth > i) {
        (*depth)--;
        close_slice(w, b, &st[*depth], e->stamp, e->a);
    }
}

static void write_buffer(writer *w, const tbuf *b)
{
    event_head(w, b, "M", w->t0);
    put(w->f, ",\"name\":\"thread_name\",\"args\":{\"name\":");
    put_json_string(w->f, b->name);
    put(w->f, "}}");
    slice st[MAX_DEPTH];
    int depth = 0;
    bool lost = false;
    for (chunk *c = b->head; c;
         c = atomic_load_explicit(&c->next, memory_order_acquire)) {
        size_t n = atomic_load_explicit(&c->n, memory_order_acquire);
        for (size_t i = 0; i < n; i++) {
            const event *e = &c->ev[i];
            switch (e->kind) {
            case CF__TR_TASK_BEGIN:
            case CF__TR_WAIT_BEGIN:
            case CF__TR_SLEEP_BEGIN:
                if (depth < MAX_DEPTH)
                    st[depth++] = (slice){ e->kind, e->stamp, e->p, e->a };
                break;
            case CF__TR_TASK_END:
            case CF__TR_WAIT_END:
            case CF__TR_SLEEP_END: pop(w, b, st, &depth, e->kind - 1, e); break;
            case CF__TR_TASK_NAME:
                for (int k = depth - 1; k >= 0; k--) {
                    if (st[k].kind == CF__TR_TASK_BEGIN) {
                        st[k].p = e->p;
                        break;
                    }
                }
                break;
            case CF__TR_STEAL:
                instant(w, b, e, "steal", "steal", "victim");
                break;
            case CF__TR_WORKER_START:
                instant(w, b, e, "worker start", "worker", "index");
                break;
            case CF__TR_WORKER_EXIT:
                instant(w, b, e, "worker exit", "worker", "index");
                break;
            case CF__TR_DISPATCH:
                instant(w, b, e, "dispatch", "process", "pid");
                break;
            case CF__TR_PROC_START:
                instant(w, b, e, lost ? "worker replaced" : "worker started",
                        "process", "pid");
                break;
            case CF__TR_PROC_LOST:
                lost = true;
                instant(w, b, e, e->p ? "worker died" : "worker retired",
                        "process", "pid");
                break;
            default: break;
            }
        }
    }
    while (depth > 0) {
        depth--;
        close_slice(w, b, &st[depth], w->t_end, 0);
    }
}

static int write_trace(FILE *f, tbuf *buffers, uint64_t t0, uint64_t t_end,
                       double us_per_tick)
{
    writer w = { f,
                 t0,
                 t_end,
                 us_per_tick,
                 (long)getpid(),
                 true,
                 cf__calloc(1, sizeof(name_cache)) };
    size_t dropped = 0;
    flockfile(f);
    put(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    for (tbuf *b = buffers; b; b = b->next) {
        write_buffer(&w, b);
        dropped += atomic_load_explicit(&b->dropped, memory_order_relaxed);
    }
    funlockfile(f);
    fprintf(f,
            "\n],\"otherData\":{\"producer\":\"cfutures %d.%d.%d\","
            "\"duration_us\":%.3f,\"dropped_events\":%zu}}\n",
            CFUTURES_VERSION_MAJOR, CFUTURES_VERSION_MINOR,
            CFUTURES_VERSION_PATCH, us_of(&w, t_end), dropped);
    cf__free(w.names);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed)
        return errno > 0 ? -errno : -EIO; /* never CF_EINVAL: "no trace" */
    return 0;
}

/* ---- the API -------------------------------------------------------------- */

int cf_trace_start(const char *path)
{
    if (!path || !*path)
        return CF_EINVAL;
    pthread_once(&buf_once, make_key);
    pthread_mutex_lock(&trace_mu);
    if (session.file) {
        pthread_mutex_unlock(&trace_mu);
        return CF_EINVAL;
    }
    FILE *f = fopen(path, "we");
    if (!f) {
        int rc = -errno;
        pthread_mutex_unlock(&trace_mu);
        return rc;
    }
    session.file = f;
    session.buffers = NULL;
    session.gen = ++last_gen ? last_gen : ++last_gen;
    session.t0 = stamp();
    session.t0_ns = now_ns();
    session.from_env = false;
    /* relaxed: a thread that sees the new number attaches under trace_mu */
    atomic_store_explicit(&cf__trace_gen, session.gen, memory_order_relaxed);
    pthread_mutex_unlock(&trace_mu);
    return 0;
}

int cf_trace_stop(void)
{
    pthread_mutex_lock(&trace_mu);
    if (!session.file) {
        pthread_mutex_unlock(&trace_mu);
        return CF_EINVAL;
    }
    atomic_store_explicit(&cf__trace_gen, 0, memory_order_relaxed);
    tbuf *buffers = session.buffers;
    uint64_t t1 = stamp(), t1_ns = now_ns();
    double us_per_tick = t1 > session.t0 ? (double)(t1_ns - session.t0_ns) /
                                               1e3 / (double)(t1 - session.t0)
                                         : 1e-3;
    int rc = write_trace(session.file, buffers, session.t0, t1, us_per_tick);
    session.file = NULL;
    session.buffers = NULL;
    session.gen = 0;
    pthread_mutex_unlock(&trace_mu);
    for (tbuf *b = buffers, *next; b; b = next) {
        next = b->next;
        stopper_lets_go(b);
    }
    return rc;
}

/* CFUTURES_TRACE=path: a trace of the whole run. The variable is taken out
 * of the environment so that child processes (process-pool workers among
 * them) do not write the same file. */
__attribute__((constructor)) static void trace_from_env(void)
{
    const char *path = getenv("CFUTURES_TRACE");
    if (!path || !*path)
        return;
    char *copy = strdup(path);
    unsetenv("CFUTURES_TRACE");
    if (copy && cf_trace_start(copy) == 0)
        session.from_env = true;
    else if (copy)
        fprintf(stderr, "cfutures: CFUTURES_TRACE=%s: cannot trace\n", copy);
    free(copy);
}

__attribute__((destructor)) static void trace_at_exit(void)
{
    pthread_mutex_lock(&trace_mu);
    bool mine = session.file && session.from_env;
    pthread_mutex_unlock(&trace_mu);
    if (mine)
        cf_trace_stop();
}
