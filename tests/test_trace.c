/* SPDX-License-Identifier: MIT */
/*
 * test_trace.c - cf_trace_start / cf_trace_stop and CFUTURES_TRACE: the file
 * is valid JSON (checked by a strict parser here), holds the events of a
 * known workload (named tasks, blocked waits, sleeps, worker starts and
 * exits, a process pool's dispatch, a worker's death and replacement), and
 * sessions that start and stop while threads record and end stay sound
 * (the sanitizer builds check the hand-over of buffers).
 *
 * This binary is also a process-pool worker image (see test_process_pool.c),
 * and is linked with -rdynamic so that dladdr names its task functions.
 */
#include "harness.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- a strict JSON checker ----------------------------------------------- */

typedef struct json {
    const char *s;
    int depth;
} json;

static void ws(json *j)
{
    while (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r')
        j->s++;
}

static bool value(json *j);

/* The length of the well-formed UTF-8 sequence at s, or 0: decoded, then
 * checked (RFC 3629: no overlong form, no surrogate, at most U+10FFFF),
 * which is not how the library checks it. */
static size_t utf8_len(const unsigned char *s)
{
    static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n <= 1)
        return n;
    uint32_t cp = s[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    bool bad = cp < least[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff;
    return bad ? 0 : n;
}

static bool string(json *j)
{
    if (*j->s++ != '"')
        return false;
    for (;;) {
        unsigned char c = (unsigned char)*j->s;
        size_t n = utf8_len((const unsigned char *)j->s);
        if (n == 0)
            return false; /* JSON text is UTF-8 */
        j->s += n;
        if (n > 1)
            continue;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            c = (unsigned char)*j->s++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)*j->s++))
                        return false;
            } else if (!strchr("\"\\/bfnrt", c) || !c) {
                return false;
            }
        }
    }
}

static bool number(json *j)
{
    const char *s = j->s;
    if (*s == '-')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    if (*s == '0')
        s++;
    else
        while (isdigit((unsigned char)*s))
            s++;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    j->s = s;
    return true;
}

static bool members(json *j, char close, bool keyed)
{
    j->s++;
    ws(j);
    if (*j->s == close) {
        j->s++;
        return true;
    }
    for (;;) {
        ws(j);
        if (keyed) {
            if (!string(j))
                return false;
            ws(j);
            if (*j->s++ != ':')
                return false;
        }
        if (!value(j))
            return false;
        ws(j);
        char c = *j->s++;
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static bool value(json *j)
{
    ws(j);
    if (++j->depth > 64)
        return false;
    bool ok;
    switch (*j->s) {
    case '{': ok = members(j, '}', true); break;
    case '[': ok = members(j, ']', false); break;
    case '"': ok = string(j); break;
    case 't': ok = strncmp(j->s, "true", 4) == 0 && (j->s += 4); break;
    case 'f': ok = strncmp(j->s, "false", 5) == 0 && (j->s += 5); break;
    case 'n': ok = strncmp(j->s, "null", 4) == 0 && (j->s += 4); break;
    default: ok = number(j);
    }
    j->depth--;
    return ok;
}

static bool json_valid(const char *text)
{
    json j = { text, 0 };
    if (!value(&j))
        return false;
    ws(&j);
    return *j.s == '\0';
}

static void json_checker_works(void)
{
    CHECK(json_valid("{\"a\":[1,-2.5e3,\"x\\n\",true,false,null,{}]}"));
    CHECK(json_valid(" [ ] "));
    CHECK(!json_valid("{\"a\":1,}"));
    CHECK(!json_valid("[1 2]"));
    CHECK(!json_valid("{\"a\":01}"));
    CHECK(!json_valid("\"tab\there\""));
    CHECK(!json_valid("[1]x"));
    CHECK(json_valid("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]"));
    CHECK(!json_valid("[\"\xff\"]"));
    CHECK(!json_valid("[\"\xc3\"]"));         /* cut short */
    CHECK(!json_valid("[\"\xc0\xaf\"]"));     /* overlong */
    CHECK(!json_valid("[\"\xed\xa0\x80\"]")); /* a surrogate */
}

/* ---- helpers -------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK_EQ(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK_EQ(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static char *trace_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/cf_test_trace_%d_%s.json", (int)getpid(),
             name);
    return path;
}

/* Reads a finished trace, checks it is valid JSON, removes the file. */
static char *load_trace(const char *path)
{
    char *text = read_file(path);
    CHECK(json_valid(text));
    CHECK(strstr(text, "\"traceEvents\":[") != NULL);
    unlink(path);
    return text;
}

/* Task functions with external linkage: dladdr names them. */
void *traced_task(void *arg);
void *traced_task(void *arg)
{
    sleep_s(0.001);
    return arg;
}

void *traced_waiter(void *arg);
void *traced_waiter(void *arg)
{
    /* A wait that blocks: the awaited future is completed by the test. */
    return (void *)(intptr_t)cf_future_result(arg, 20.0, NULL);
}

static cf_executor *fj_pool;
void *traced_fib(void *arg);
void *traced_fib(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return arg;
    void *a, *b;
    CHECK_EQ(cf_join(fj_pool, traced_fib, (void *)(n - 1), &a, traced_fib,
                     (void *)(n - 2), &b),
             0);
    return (void *)((intptr_t)a + (intptr_t)b);
}

static int crash_bytes(const void *in, size_t len, cf_buffer *out)
{
    (void)in, (void)len, (void)out;
    abort();
}

static int ok_bytes(const void *in, size_t len, cf_buffer *out)
{
    return cf_buffer_append(out, in, len);
}

/* ---- cases ----------------------------------------------------------------- */

static void trace_errors(void)
{
    CHECK_EQ(cf_trace_start(NULL), CF_EINVAL);
    CHECK_EQ(cf_trace_start(""), CF_EINVAL);
    CHECK_EQ(cf_trace_stop(), CF_EINVAL);
    CHECK_EQ(cf_trace_start("/nonexistent-dir/x.json"), -ENOENT);
    CHECK_EQ(cf_trace_start("/"), -EISDIR);
    /* A device that is full: the stop says so, and a trace can start
     * again after it. */
    CHECK_EQ(cf_trace_start("/dev/full"), 0);
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(cf_submit(ex, traced_task, NULL, NULL), 0);
    cf_executor_free(ex);
    CHECK_EQ(cf_trace_stop(), -ENOSPC);
    CHECK_EQ(cf_trace_stop(), CF_EINVAL);
    const char *path = trace_path("errors");
    CHECK_EQ(cf_trace_start(path), 0);
    CHECK_EQ(cf_trace_start(path), CF_EINVAL); /* one at a time */
    CHECK_EQ(cf_trace_stop(), 0);
    CHECK_EQ(cf_trace_stop(), CF_EINVAL);
    char *text = load_trace(path); /* empty, and valid */
    CHECK_EQ(count(text, "\"ph\":\"X\""), 0);
    free(text);
}

static void trace_known_workload(void)
{
    const char *path = trace_path("known");
    CHECK_EQ(cf_trace_start(path), 0);
    cf_options o = { .max_workers = 2,
                     .name_prefix = "tr",
                     .idle_timeout = 0.05 };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    enum { N = 20 };
    cf_future *fs[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(cf_submit(ex, traced_task, (void *)(intptr_t)i, &fs[i]), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(cf_future_result(fs[i], 20.0, NULL), 0);
        cf_future_release(fs[i]);
    }
    /* A task that blocks on a future nobody in the pool can run. */
    cf_future *pending = cf_future_new(), *w;
    CHECK_EQ(cf_submit(ex, traced_waiter, pending, &w), 0);
    /* Completed only once the wait blocked (had the task started after
     * that, its wait would not block, and no "blocked" event is made). */
    cf_stats st;
    WAIT_UNTIL(cf_executor_stats(ex, &st) == 0 && st.blocked >= 1, 20.0);
    CHECK_EQ(cf_future_set_result(pending, NULL), 0);
    void *r;
    CHECK_EQ(cf_future_result(w, 20.0, &r), 0);
    CHECK_EQ((intptr_t)r, 0);
    cf_future_release(w);
    cf_future_release(pending);
    /* The workers sleep, time out and leave. */
    WAIT_UNTIL(cf_executor_stats(ex, &st) == 0 && st.workers == 0, 10.0);
    CHECK_EQ(st.workers, 0);
    cf_executor_free(ex);

    /* A process pool: dispatches, a crash, its replacement. */
    cf_options po = { .max_workers = 1 };
    cf_executor *pp = cf_process_pool_new(&po);
    CHECK(pp != NULL);
    int x = 7;
    cf_future *crash, *fine;
    CHECK_EQ(cf_submit_bytes(pp, crash_bytes, &x, sizeof x, &crash), 0);
    CHECK_EQ(cf_future_bytes(crash, 30.0, NULL, NULL), CF_EBROKEN);
    CHECK_EQ(cf_submit_bytes(pp, ok_bytes, &x, sizeof x, &fine), 0);
    CHECK_EQ(cf_future_bytes(fine, 30.0, NULL, NULL), 0);
    cf_future_release(crash);
    cf_future_release(fine);
    cf_executor_free(pp);
    CHECK_EQ(cf_trace_stop(), 0);

    char *text = load_trace(path);
    CHECK_EQ(count(text, "\"name\":\"traced_task\""), N);
    CHECK_EQ(count(text, "\"name\":\"traced_waiter\""), 1);
    CHECK(count(text, "\"cat\":\"wait\",\"name\":\"blocked\"") >= 1);
    CHECK(count(text, "\"cat\":\"idle\",\"name\":\"sleep\"") >= 1);
    CHECK(count(text, "\"timed_out\":true") >= 1);
    CHECK(count(text, "\"name\":\"tr_0\"") >= 1); /* the lane's name */
    CHECK_EQ(count(text, "\"name\":\"worker start\""),
             count(text, "\"name\":\"worker exit\""));
    CHECK(count(text, "\"name\":\"dispatch\"") >= 2);
    CHECK_EQ(count(text, "\"name\":\"worker died\""), 1);
    CHECK(count(text, "\"name\":\"worker replaced\"") >= 1);
    CHECK(count(text, "\"name\":\"worker started\"") >= 1);
    CHECK(strstr(text, "\"dropped_events\":0") != NULL);
    free(text);
}

/* A task that waits for children it submitted runs them inline (one
 * worker: nobody else could): three inline task events inside it. */
static cf_executor *inline_pool;
void *traced_parent(void *arg);
void *traced_parent(void *arg)
{
    cf_future *fs[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cf_submit(inline_pool, traced_task, NULL, &fs[i]), 0);
    /* Untimed: a timed wait inside a task never runs anything inline. */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(cf_future_result(fs[i], CF_FOREVER, NULL), 0);
        cf_future_release(fs[i]);
    }
    return arg;
}

static void trace_inline_runs(void)
{
    const char *path = trace_path("inline");
    cf_options o = { .max_workers = 1 };
    inline_pool = cf_thread_pool_new(&o);
    CHECK(inline_pool != NULL);
    CHECK_EQ(cf_trace_start(path), 0);
    cf_future *f;
    CHECK_EQ(cf_submit(inline_pool, traced_parent, NULL, &f), 0);
    CHECK_EQ(cf_future_result(f, 20.0, NULL), 0);
    cf_future_release(f);
    CHECK_EQ(cf_trace_stop(), 0);
    cf_executor_free(inline_pool);
    char *text = load_trace(path);
    CHECK_EQ(count(text, "\"name\":\"traced_parent\""), 1);
    CHECK_EQ(count(text, "\"name\":\"traced_task\",\"args\":{\"inline\":true}"),
             3);
    free(text);
}

/* Traced fork-join: stolen halves are named tasks; the result is right. */
static void trace_fork_join(void)
{
    const char *path = trace_path("fj");
    CHECK_EQ(cf_trace_start(path), 0);
    cf_options o = { .max_workers = 4 };
    fj_pool = cf_thread_pool_new(&o);
    CHECK(fj_pool != NULL);
    for (int round = 0; round < 5; round++) {
        void *r;
        CHECK_EQ(cf_join(fj_pool, traced_fib, (void *)(intptr_t)18, &r,
                         traced_fib, (void *)(intptr_t)2, NULL),
                 0);
        CHECK_EQ((intptr_t)r, 2584);
    }
    cf_executor_free(fj_pool);
    CHECK_EQ(cf_trace_stop(), 0);
    char *text = load_trace(path);
    /* The 5 outer joins and every stolen half are tasks named traced_fib. */
    CHECK_EQ(count(text, "\"cat\":\"steal\"") + 5,
             count(text, "\"name\":\"traced_fib\""));
    free(text);
}

/* Thread names are the pools' name_prefix: bytes the library does not
 * choose. A name cut to fit in the middle of a character, and bytes that
 * are not UTF-8 at all, still give a valid JSON text (JSON is UTF-8). */
static void trace_names_any_bytes(void)
{
    char long_name[200] = "";
    for (int i = 0; i < 45; i++)
        strcat(long_name, i % 2 ? "\xc3\xa9" : "\xe2\x82\xac"); /* é, € */
    const char *prefixes[] = { long_name, "bad\xff\xfe\xc3<&>\x01\x7f\"\\" };
    const char *path = trace_path("names");
    CHECK_EQ(cf_trace_start(path), 0);
    for (int i = 0; i < 2; i++) {
        cf_options o = { .max_workers = 1, .name_prefix = prefixes[i] };
        cf_executor *ex = cf_thread_pool_new(&o);
        CHECK(ex != NULL);
        CHECK_EQ(cf_submit(ex, traced_task, NULL, NULL), 0);
        cf_executor_free(ex);
    }
    CHECK_EQ(cf_trace_stop(), 0);
    char *text = load_trace(path); /* valid JSON, UTF-8 included */
    CHECK_EQ(count(text, "\"name\":\"traced_task\""), 2);
    /* Each byte that is not UTF-8 is U+FFFD; control characters escaped. */
    CHECK(
        strstr(text, "\"bad\\ufffd\\ufffd\\ufffd<&>\\u0001\x7f\\\"\\\\_0\"") !=
        NULL);
    free(text);
}

/* fork() from another thread while cf_trace_stop writes the file: a child
 * that ends with exit() flushes the stdio buffers it inherited, so it must
 * not inherit a half-written trace (it would append it to the parent's
 * file). Every file stays valid JSON with every task in it. */
static atomic_bool stop_forking;

static void *forker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_forking)) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) { /* what exit() does with stdio, without its exit
                            handlers (a leak check would stop the world) */
            fflush(NULL);
            _exit(0);
        }
        CHECK_EQ(waitpid(pid, NULL, 0), pid);
    }
    return NULL;
}

void *traced_nothing(void *arg);
void *traced_nothing(void *arg)
{
    return arg;
}

static void trace_fork_while_writing(void)
{
    cf_options o = { .max_workers = 2 };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, forker, NULL), 0);
    enum { N = 5000 };
    for (int round = 0; round < 8; round++) {
        const char *path = trace_path("fork");
        CHECK_EQ(cf_trace_start(path), 0);
        cf_group *g = cf_group_new(ex);
        CHECK(g != NULL);
        for (int i = 0; i < N; i++)
            CHECK_EQ(cf_group_submit(g, traced_nothing, NULL), 0);
        CHECK_EQ(cf_group_wait(g, 60.0), 0);
        cf_group_free(g);
        CHECK_EQ(cf_trace_stop(), 0);
        char *text = load_trace(path);
        CHECK_EQ(count(text, "\"name\":\"traced_nothing\""), N);
        free(text);
    }
    atomic_store(&stop_forking, true);
    pthread_join(th, NULL);
    cf_executor_free(ex);
}

/* Nothing is recorded between sessions. */
static void trace_off_records_nothing(void)
{
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cf_submit(ex, traced_task, NULL, NULL), 0);
    const char *path = trace_path("off");
    CHECK_EQ(cf_shutdown(ex, true, false), 0);
    CHECK_EQ(cf_trace_start(path), 0);
    CHECK_EQ(cf_trace_stop(), 0);
    char *text = load_trace(path);
    CHECK_EQ(count(text, "traced_task"), 0);
    free(text);
    cf_executor_free(ex);
}

/* Sessions start and stop while workers record, come and go (idle_timeout)
 * and end: every file is valid, no buffer leaks or is freed twice. */
static atomic_bool stop_load;

static void *load(void *arg)
{
    cf_executor *ex = arg;
    while (!atomic_load(&stop_load)) {
        cf_future *f;
        CHECK_EQ(cf_submit(ex, traced_task, NULL, &f), 0);
        CHECK_EQ(cf_future_result(f, 20.0, NULL), 0);
        cf_future_release(f);
        sleep_s(0.0005);
    }
    return NULL;
}

static void trace_sessions_race_with_threads(void)
{
    cf_options o = { .max_workers = 4, .idle_timeout = 0.001 };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, load, ex), 0);
    for (int s = 0; s < 40; s++) {
        char name[16];
        snprintf(name, sizeof name, "race%d", s);
        const char *path = trace_path(name);
        CHECK_EQ(cf_trace_start(path), 0);
        sleep_s(0.001 * (s % 5));
        CHECK_EQ(cf_trace_stop(), 0);
        free(load_trace(path));
    }
    atomic_store(&stop_load, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    cf_executor_free(ex);
}

/* Allocations failing at every point of a traced session (the recording
 * threads' buffers and chunks, the writer's name cache): tasks still run,
 * events are dropped, the file stays valid JSON. */
static void trace_survives_failing_allocations(void)
{
    oom_install();
    cf_options o = { .max_workers = 2 };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    for (long k = 0; k < 40; k++) {
        const char *path = trace_path("oom");
        CHECK_EQ(cf_trace_start(path), 0);
        oom_fail_at(k);
        cf_future *fs[4];
        int n = 0;
        for (int i = 0; i < 4; i++)
            if (cf_submit(ex, traced_task, NULL, &fs[n]) == 0)
                n++;
        for (int i = 0; i < n; i++) {
            CHECK_EQ(cf_future_result(fs[i], 20.0, NULL), 0);
            cf_future_release(fs[i]);
        }
        CHECK_EQ(cf_trace_stop(), 0);
        oom_fail_at(-1);
        char *text = load_trace(path);
        CHECK(count(text, "\"name\":\"traced_task\"") <= (size_t)n);
        free(text);
    }
    cf_executor_free(ex);
}

/* CFUTURES_TRACE traces a whole run: this program runs itself with it. */
static void env_workload(void)
{
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(cf_submit(ex, traced_task, NULL, NULL), 0);
    cf_executor_free(ex);
    CHECK(getenv("CFUTURES_TRACE") == NULL); /* children do not inherit */
}

static void trace_from_environment(void)
{
    const char *path = trace_path("env");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "CFUTURES_TRACE=%s CF_TEST_NOFORK=1 /proc/%d/exe env_workload "
             ">/dev/null",
             path, (int)getpid());
    CHECK_EQ(system(cmd), 0);
    char *text = load_trace(path);
    CHECK_EQ(count(text, "\"name\":\"traced_task\""), 5);
    free(text);
    /* A path that cannot be written: the run goes on, with a warning. */
    snprintf(cmd, sizeof cmd,
             "CFUTURES_TRACE=/nonexistent-dir/t.json CF_TEST_NOFORK=1 "
             "/proc/%d/exe env_workload >/dev/null 2>&1",
             (int)getpid());
    CHECK_EQ(system(cmd), 0);
}

/* ---- the cfutures command: trace and demo --plot DIR ------------------- */

#ifdef CFUTURES_BIN
/* Runs a shell command line: its exit status, its output in *out. */
static int run_cmd(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap) {
            cap *= 2;
            CHECK((buf = realloc(buf, cap)) != NULL);
        }
    }
    buf[len] = '\0';
    int status = pclose(p);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_svg(const char *path)
{
    char *svg = read_file(path);
    CHECK(strncmp(svg, "<?xml", 5) == 0);
    CHECK(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
    CHECK(count(svg, "<svg") == 1 && count(svg, "</svg>") == 1);
    CHECK(count(svg, "<text") == count(svg, "</text>"));
    CHECK(count(svg, "<rect") > 2);
    CHECK(strcmp(svg + strlen(svg) - 7, "</svg>\n") == 0);
    free(svg);
}

static void trace_command(void)
{
    const char *path = trace_path("cmd");
    CHECK_EQ(cf_trace_start(path), 0);
    cf_options o = { .max_workers = 2, .name_prefix = "tr" };
    cf_executor *ex = cf_thread_pool_new(&o);
    CHECK(ex != NULL);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cf_submit(ex, traced_task, NULL, NULL), 0);
    cf_executor_free(ex);
    CHECK_EQ(cf_trace_stop(), 0);
    char svg[300], cmd[1024], *out;
    snprintf(svg, sizeof svg, "%s.svg", path);
    snprintf(cmd, sizeof cmd, "%s trace %s --svg %s --top 3 2>&1", CFUTURES_BIN,
             path, svg);
    CHECK_EQ(run_cmd(cmd, &out), 0);
    CHECK(strstr(out, "10 tasks") != NULL);
    CHECK(strstr(out, "tr_0") != NULL);
    CHECK(strstr(out, "busy") && strstr(out, "waiting") && strstr(out, "idle"));
    CHECK(strstr(out, "longest tasks") != NULL);
    CHECK_EQ(count(out, "traced_task"), 3); /* --top 3 */
    CHECK(strstr(out, "Timeline written to") != NULL);
    free(out);
    check_svg(svg);
    char *text = read_file(svg);
    CHECK(strstr(text, ">tr_0<") && strstr(text, ">traced_task<"));
    free(text);
    unlink(svg);
    free(load_trace(path)); /* valid JSON, and removed */
    /* Errors: a missing file, not a trace, usage. */
    snprintf(cmd, sizeof cmd, "%s trace %s 2>&1", CFUTURES_BIN, path);
    CHECK_EQ(run_cmd(cmd, &out), 1); /* the file is gone */
    CHECK(strstr(out, path) != NULL);
    free(out);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("{\"traceEvents\":[{\"ph\":\"X\",", f);
    fclose(f);
    CHECK_EQ(run_cmd(cmd, &out), 1);
    CHECK(strstr(out, "not a trace") != NULL);
    free(out);
    unlink(path);
    snprintf(cmd, sizeof cmd, "%s trace 2>&1", CFUTURES_BIN);
    CHECK_EQ(run_cmd(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s trace x.json --top -1 2>&1", CFUTURES_BIN);
    CHECK_EQ(run_cmd(cmd, &out), 2);
    free(out);
}

static void demo_plot_dir(void)
{
    char dir[256], cmd[1024], file[400], *out;
    snprintf(dir, sizeof dir, "/tmp/cf_test_demo_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s demo --quick --plot %s 2>&1", CFUTURES_BIN,
             dir);
    CHECK_EQ(run_cmd(cmd, &out), 0);
    CHECK(strstr(out, "Chart written to") && strstr(out, "Timelines written"));
    free(out);
    const char *names[] = { "speedup.svg", "timelines.svg" };
    for (int i = 0; i < 2; i++) {
        snprintf(file, sizeof file, "%s/%s", dir, names[i]);
        check_svg(file);
    }
    char *text = read_file(file); /* timelines.svg */
    CHECK(strstr(text, ">io_0<") && strstr(text, ">cpu_0<"));
    CHECK(strstr(text, ">fetch<") && strstr(text, ">count_primes_bytes<"));
    free(text);
    snprintf(file, sizeof file, "%s/speedup.svg", dir);
    text = read_file(file);
    CHECK(strstr(text, "faster") || strstr(text, "slower"));
    CHECK(strstr(text, ">0 ms<") || strstr(text, ">0 s<")); /* axis ticks */
    free(text);
    const char *traces[] = { "io.json", "cpu.json" };
    for (int i = 0; i < 2; i++) {
        snprintf(file, sizeof file, "%s/%s", dir, traces[i]);
        free(load_trace(file));
    }
    unlink(strcat(strcpy(file, dir), "/speedup.svg"));
    unlink(strcat(strcpy(file, dir), "/timelines.svg"));
    CHECK_EQ(rmdir(dir), 0);
}
/* Every truncation of a valid trace, and bytes flipped in it: `cfutures
 * trace` reads or refuses each (exit 0 or 1), never crashes. */
static void trace_command_hostile_files(void)
{
    const char *path = trace_path("hostile");
    CHECK_EQ(cf_trace_start(path), 0);
    cf_executor *ex = cf_thread_pool_new(NULL);
    CHECK(ex != NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(cf_submit(ex, traced_task, NULL, NULL), 0);
    cf_executor_free(ex);
    CHECK_EQ(cf_trace_stop(), 0);
    char *good = read_file(path);
    size_t len = strlen(good);
    char bad[300], cmd[700], *out;
    snprintf(bad, sizeof bad, "%s.bad", path);
    snprintf(cmd, sizeof cmd, "%s trace %s --svg %s.svg >/dev/null 2>&1",
             CFUTURES_BIN, bad, bad);
    unsigned seed = 7;
    for (int round = 0; round < 60; round++) {
        FILE *f = fopen(bad, "w");
        CHECK(f != NULL);
        if (round < 30) { /* a prefix */
            fwrite(good, 1, len * (size_t)round / 30, f);
        } else { /* a few bytes changed */
            char *copy = strdup(good);
            for (int i = 0; i < 4; i++) {
                seed = seed * 1103515245u + 12345u;
                copy[(seed >> 8) % len] = (char)"{}[]\",:0e-\\x\x01"[seed % 14];
            }
            fwrite(copy, 1, len, f);
            free(copy);
        }
        fclose(f);
        int rc = run_cmd(cmd, &out);
        free(out);
        CHECK(rc == 0 || rc == 1);
    }
    /* Deep nesting, and a trace in the plain array form. */
    FILE *f = fopen(bad, "w");
    for (int i = 0; i < 100000; i++)
        fputc('[', f);
    fclose(f);
    CHECK_EQ(run_cmd(cmd, &out), 1);
    free(out);
    f = fopen(bad, "w");
    fputs("[{\"ph\":\"X\",\"tid\":1,\"ts\":0,\"dur\":5,\"name\":\"a\\u00e9\","
          "\"cat\":\"task\",\"extra\":[1,{\"x\":null}]}]",
          f);
    fclose(f);
    CHECK_EQ(run_cmd(cmd, &out), 0);
    free(out);
    unlink(bad);
    strcat(bad, ".svg");
    unlink(bad);
    unlink(path);
    free(good);
}

/* True when text is UTF-8 with no control characters but tab and new line:
 * what XML 1.0 allows (and what a terminal shows as it is). */
static bool clean_text(const char *text)
{
    for (const char *p = text; *p;) {
        size_t n = utf8_len((const unsigned char *)p);
        if (n == 0 ||
            (n == 1 && (unsigned char)*p < 0x20 && *p != '\n' && *p != '\t'))
            return false;
        p += n;
    }
    return true;
}

/* Hostile values in a well-formed file, each read by `cfutures trace
 * FILE --svg OUT`: numbers JSON has no room for (non-finite, out of any
 * thread id's range) and tokens that are not JSON are refused with a clear
 * message (exit 1); names of any bytes and empty or event-less files are
 * read (exit 0), and the summary and the SVG are then clean UTF-8 text. */
static void trace_command_hostile_values(void)
{
    static const struct {
        const char *text;
        int rc;
    } files[] = {
        { "", 1 },
        { "   \n", 1 },
        { "null", 1 },
        { "hello", 1 },
        { "{}", 0 },
        { "[]", 0 },
        { "{\"traceEvents\":[]}", 0 },
        { "{\"traceEvents\":[]}\n{", 1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":1e999,\"dur\":1,\"name\":\"a\"}]",
          1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":0,\"dur\":-1e999,\"name\":\"a\"}]",
          1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":1e308,\"dur\":1e308,\"name\":\"a\"}"
          "]",
          1 },
        { "[{\"ph\":\"X\",\"tid\":1e300,\"ts\":0,\"dur\":1,\"name\":\"a\"}]",
          1 },
        { "[{\"ph\":\"M\",\"tid\":-1e300,\"name\":\"thread_name\"}]", 1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":nan,\"dur\":1,\"name\":\"a\"}]", 1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":0x10,\"dur\":1,\"name\":\"a\"}]",
          1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":inf,\"dur\":1,\"name\":\"a\"}]", 1 },
        { "{\"traceEvents\":[],\"otherData\":{\"duration_us\":1e999}}", 1 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":5,\"dur\":-3,\"name\":\"a\"}]", 0 },
        { "[{\"ph\":\"X\",\"tid\":1,\"ts\":0,\"dur\":2,\"name\":"
          "\"\xff\xfe\xc3\","
          "\"cat\":\"task\"},{\"ph\":\"M\",\"tid\":1,\"name\":\"thread_name\","
          "\"args\":{\"name\":\"t\\b\\f\\u0001\\n\\r\\t\x01<&>\xe2\x82\"}}]",
          0 },
    };
    char bad[300], svg[320], cmd[1000], *out;
    snprintf(bad, sizeof bad, "%s", trace_path("values"));
    snprintf(svg, sizeof svg, "%s.svg", bad);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(bad, "w");
        CHECK(f != NULL);
        fputs(files[i].text, f);
        fclose(f);
        unlink(svg);
        snprintf(cmd, sizeof cmd, "%s trace %s --svg %s 2>&1", CFUTURES_BIN,
                 bad, svg);
        int rc = run_cmd(cmd, &out);
        if (rc != files[i].rc)
            fprintf(stderr, "file %zu: exit %d, not %d:\n%s\n", i, rc,
                    files[i].rc, out);
        CHECK_EQ(rc, files[i].rc);
        CHECK(clean_text(out));
        if (rc == 1) {
            CHECK(strstr(out, "not a trace") != NULL);
        } else {
            char *text = read_file(svg);
            CHECK(strncmp(text, "<?xml", 5) == 0);
            CHECK(strcmp(text + strlen(text) - 7, "</svg>\n") == 0);
            CHECK(clean_text(text));
            free(text);
        }
        free(out);
    }
    /* A NUL byte inside the file: the rest is not skipped unread. */
    FILE *f = fopen(bad, "w");
    CHECK(f != NULL);
    fwrite("[]\0[", 1, 4, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s trace %s 2>&1", CFUTURES_BIN, bad);
    CHECK_EQ(run_cmd(cmd, &out), 1);
    CHECK(strstr(out, "not a trace") != NULL);
    free(out);
    /* A directory, and a file name that is not text, in the SVG. */
    snprintf(cmd, sizeof cmd, "%s trace /tmp 2>&1", CFUTURES_BIN);
    CHECK_EQ(run_cmd(cmd, &out), 1);
    CHECK(strstr(out, "/tmp") != NULL);
    free(out);
    char odd[320];
    snprintf(odd, sizeof odd, "%s\x01\xff.json", bad);
    f = fopen(odd, "w");
    CHECK(f != NULL);
    fputs("[{\"ph\":\"X\",\"tid\":1,\"ts\":0,\"dur\":2,\"name\":\"a\"}]", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s trace '%s' --svg %s >/dev/null 2>&1",
             CFUTURES_BIN, odd, svg);
    CHECK_EQ(run_cmd(cmd, &out), 0);
    free(out);
    char *text = read_file(svg);
    CHECK(clean_text(text));
    free(text);
    unlink(odd);
    unlink(bad);
    unlink(svg);
}
#endif

static const test_case cases[] = {
    TEST_CASE(json_checker_works),
    TEST_CASE(trace_errors),
    TEST_CASE(trace_known_workload),
    TEST_CASE(trace_inline_runs),
    TEST_CASE(trace_fork_join),
    TEST_CASE(trace_names_any_bytes),
    TEST_CASE(trace_fork_while_writing),
    TEST_CASE(trace_off_records_nothing),
    TEST_CASE(trace_sessions_race_with_threads),
    TEST_CASE(trace_survives_failing_allocations),
    TEST_CASE(env_workload),
    TEST_CASE(trace_from_environment),
#ifdef CFUTURES_BIN
    TEST_CASE(trace_command),
    TEST_CASE(trace_command_hostile_files),
    TEST_CASE(trace_command_hostile_values),
    TEST_CASE(demo_plot_dir),
#endif
};

TEST_MAIN(cases)
