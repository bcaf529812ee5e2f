/* SPDX-License-Identifier: MIT */
/*
 * worker.c - the worker process side of a process pool: read a frame, run
 * it, answer, until the pool closes the socket; then _exit (it never
 * returns to the program it runs inside). Each answer is written in full
 * before the next task starts, and the state page (wire.h) says which task
 * runs and which has finished, so the pool blames only the task that ran.
 * Input comes through a 64 KiB buffer (a burst of small frames is one
 * read); a larger payload is read into its own allocation. A malformed
 * frame from the pool ends the process.
 */
#include "../fnid.h"
#include "../remote/serve.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define RBUF (64u * 1024u)

/* This process's state page (wire.h); set once, in cf__pp_worker_main. */
static cf__pp_state *state;

typedef struct reader {
    unsigned char *buf;
    size_t beg, end, cap;
} reader;

/* Makes the next n bytes available at buf + beg, the buffer grown for a
 * large frame: 1, 0 at EOF or error, -1 when out of memory. */
static int fill(reader *r, size_t n)
{
    if (r->end - r->beg >= n)
        return 1;
    if (r->beg + n > r->cap) {
        memmove(r->buf, r->buf + r->beg, r->end - r->beg);
        r->end -= r->beg;
        r->beg = 0;
    }
    if (n > r->cap) {
        unsigned char *b = realloc(r->buf, n);
        if (!b)
            return -1;
        r->buf = b;
        r->cap = n;
    }
    while (r->end - r->beg < n) {
        ssize_t k = read(CF__PP_FD, r->buf + r->end, r->cap - r->end);
        if (k > 0)
            r->end += (size_t)k;
        else if (!(k < 0 && errno == EINTR))
            return 0;
    }
    return 1;
}

/* Drops the next n bytes: false at EOF. */
static bool skip(reader *r, size_t n)
{
    for (size_t c; n > 0; n -= c, r->beg += c)
        if (fill(r, c = n < r->cap ? n : r->cap) <= 0)
            return false;
    return true;
}

/* Only the standard streams: under the fork start method other FILEs are
 * the parent's, and flushing their copies here would write twice. */
static void flush_stdio(void)
{
    fflush(stdout);
    fflush(stderr);
}

static void send_frame(uint16_t type, uint64_t id, int32_t aux,
                       const void *data, size_t len)
{
    cf__frame h;
    cf__frame_set(&h, type, id, len, aux);
    struct iovec iov[2] = { { &h, sizeof h }, { (void *)data, len } };
    if (cf__send_all(CF__PP_FD, iov, len ? 2 : 1))
        _exit(0); /* the pool is gone */
}

/* Runs the initializer INIT names, if any (wire.h), and answers. */
static void run_init(const cf__frame *h, const unsigned char *p)
{
    static cf__fn_cache cache;
    cf__task_ctx ctx = { 0, NULL };
    const void *in = NULL;
    size_t len = 0;
    cf_fn fn = NULL;
    if (h->len) /* the cast: an initializer has the other shape */
        fn = (cf_fn)(void (*)(void))cf__serve_fn(&cache, h, p, &in, &len, &ctx);
    const unsigned char *a = in;
    void *arg = NULL;
    if (fn && len) {
        char name[CF__MAX_MODULE + 1];
        uint64_t v;
        if (len < 9 || len - 9 > CF__MAX_MODULE)
            _exit(2);
        memcpy(&v, a + 1, 8);
        memcpy(name, a + 9, len - 9);
        name[len - 9] = '\0';
        arg = a[0] == CF__PP_ARG_RAW ? (void *)(uintptr_t)v
                                     : cf__fnid_resolve(name, v);
        if (!arg)
            cf__serve_fail(&ctx, CF_EINVAL,
                           "the worker cannot find initarg (in %s at offset "
                           "%#llx)",
                           name, v);
    }
    if (fn && !ctx.code)
        ctx.code = cf__serve_init(fn, arg, &ctx.message);
    flush_stdio();
    const char *msg = ctx.code && ctx.message ? ctx.message : "";
    send_frame(ctx.code ? CF__FR_INIT_FAIL : CF__FR_READY, 0, ctx.code, msg,
               strnlen(msg, CF__MAX_MESSAGE));
    if (ctx.code)
        _exit(0);
}

static void started(uint64_t id, void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* release: the pool reads started_ns after it sees running == id */
    atomic_store_explicit(&state->started_ns,
                          (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec,
                          memory_order_relaxed);
    atomic_store_explicit(&state->running, id, memory_order_release);
}

static void run_task(const cf__frame *h, const unsigned char *p)
{
    static cf__fn_cache cache;
    static cf_buffer out;
    if (out.b)
        out.b->len = 0;
    int rc = cf__serve_task(&cache, h, p, &out, h->id, started, NULL);
    /* A task whose function was not found answers without a start mark:
     * `done` must never name a task `running` does not (the pool kills a
     * worker that answered a task before its run ended, link.c). */
    if (atomic_load_explicit(&state->running, memory_order_relaxed) != h->id)
        started(h->id, NULL);
    /* What the task printed comes out before its result, within its run:
     * a pipe nobody reads (a paused pager) is not a stalled transfer. */
    flush_stdio();
    /* release: pairs with the pool's acquire load; from here on the
     * task's time limit no longer applies, only the transfer's */
    atomic_store_explicit(&state->done, h->id, memory_order_release);
    if (rc) {
        send_frame(CF__FR_FAIL, h->id, CF_ENOMEM, NULL, 0);
        return;
    }
    struct iovec iov = { out.b->data, out.b->len };
    if (cf__send_all(CF__PP_FD, &iov, 1))
        _exit(0);         /* the pool is gone */
    if (out.cap > RBUF) { /* no large buffer kept between tasks */
        cf__free(out.b);
        out = (cf_buffer){ NULL, 0 };
    }
}

_Noreturn void cf__pp_worker_main(pid_t parent, cf__pp_state *st)
{
    state = st;
    if (!state)
        _exit(1); /* the pool could not tell what ran: a failed start */
    /* Die with the pool's manager thread (it reaps us before it exits, so
     * this only fires when the pool's process died first). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    /* Programs a task starts must not inherit the pool's socket. */
    fcntl(CF__PP_FD, F_SETFD, FD_CLOEXEC);
    reader r = { malloc(RBUF), 0, 0, RBUF };
    if (!r.buf)
        _exit(1);
    for (bool ready = false;; ready = true) {
        cf__frame h;
        if (fill(&r, sizeof h) <= 0)
            _exit(0); /* the pool closed the socket: we are done */
        memcpy(&h, r.buf + r.beg, sizeof h);
        r.beg += sizeof h;
        if (cf__frame_bad(&h) || h.type != (ready ? CF__FR_TASK : CF__FR_INIT))
            _exit(2);
        int got = fill(&r, (size_t)h.len);
        if (got == 0)
            _exit(0);
        if (got < 0) { /* no room for the input: drop it and say so */
            if (h.type == CF__FR_INIT || !skip(&r, (size_t)h.len))
                _exit(1);
            send_frame(CF__FR_FAIL, h.id, CF_ENOMEM, NULL, 0);
            continue;
        }
        const unsigned char *p = r.buf + r.beg;
        r.beg += (size_t)h.len; /* the bytes stay put until the next fill */
        if (h.type == CF__FR_INIT)
            run_init(&h, p);
        else
            run_task(&h, p);
        unsigned char *small;
        if (r.cap > RBUF && r.beg == r.end &&
            (small = realloc(r.buf, RBUF)) != NULL)
            r = (reader){ small, 0, 0, RBUF };
    }
}
