/* SPDX-License-Identifier: MIT */
/*
 * future.c - the future state machine, done callbacks and single-future
 * waits.
 *
 * States: PENDING -> RUNNING -> FINISHED, PENDING -> FINISHED (user-made
 * futures), PENDING -> CANCELLED. FINISHED and CANCELLED are final ("done").
 * Invariants (docs/design.md, "Futures"):
 *   - Every move to a done state happens with `mu` held, after the fields
 *     (result, code, message) are written; the state store is a release, so
 *     a reader that sees done (acquire) sees the fields.
 *   - PENDING -> RUNNING is a lone CAS (no mutex): it competes with cancel's
 *     CAS, so exactly one of "runs" and "cancelled" wins.
 *   - Callbacks and watches are taken off the future in the same critical
 *     section that makes it done: each runs once; one added later sees done
 *     and runs at once in its adder's thread.
 *   - Blocking threads set CF__WAITBIT before they sleep on the state word;
 *     the completer wakes the word only when the bit was set.
 * Cost: a wait on a done future is one load; completion with no waiters and
 * no callbacks is one mutex round trip and one exchange.
 */
#include "future.h"
#include "bytes.h"

#include <errno.h>
#include <string.h>

cf_future *cf__future_alloc(uint32_t refs)
{
    cf_future *f = cf__cache_alloc(sizeof *f);
    if (f)
        atomic_init(&f->refs, refs);
    return f;
}

cf_future *cf_future_new(void)
{
    cf_future *f = cf__future_alloc(1);
    if (!f)
        errno = ENOMEM;
    return f;
}

/* Callbacks after the first: first_cb becomes run_callbacks over a list
 * that starts with the first one, so the record keeps one inline slot and
 * no list head of its own (a pending task costs 88 bytes). */
static void run_callbacks(cf_future *f, void *list)
{
    for (cf__callback *cb = list, *next; cb; cb = next) {
        next = cb->next;
        cb->fn(f, cb->ctx);
        cf__free(cb);
    }
}

static void free_callbacks(void *list)
{
    for (cf__callback *cb = list, *next; cb; cb = next) {
        next = cb->next;
        cf__free(cb);
    }
}

void cf_future_retain(cf_future *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void cf_future_release(cf_future *f)
{
    if (!f)
        return;
    /* acq_rel: the last owner sees every other owner's writes */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (f->first_cb.fn == run_callbacks &&
        !cf__state_done(cf__future_state(f))) /* never ran */
        free_callbacks(f->first_cb.ctx);
    if (f->code)
        cf__free(f->message);
    if (cf__future_is_bytes(f)) {
        if (!f->code)
            cf__free(f->bytes);
        cf__free(f->arg);
    }
    cf__cache_free(f);
}

void *cf_future_arg(const cf_future *f)
{
    if (!f)
        return NULL;
    return cf__future_is_bytes(f) ? (void *)cf__bytes_input(f) : f->arg;
}

bool cf__future_failed(const cf_future *f)
{
    return cf__future_state(f) == CF__FINISHED && f->code != 0;
}

bool cf_future_cancelled(cf_future *f)
{
    return f && cf__future_state(f) == CF__CANCELLED;
}

bool cf_future_running(cf_future *f)
{
    return f && cf__future_state(f) == CF__RUNNING;
}

bool cf_future_done(cf_future *f)
{
    return f && cf__state_done(cf__future_state(f));
}

/*
 * Moves f to `to` (a done state) with mu held. from_pending: only from
 * PENDING (cancel), else from PENDING or RUNNING. Returns false, changing
 * nothing, when f is not in such a state. On success *wake says whether
 * sleepers must be woken after unlocking (after_complete).
 */
static bool complete_locked(cf_future *f, uint32_t to, bool from_pending,
                            bool *wake)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    do {
        uint32_t st = s & CF__STATE_MASK;
        if (cf__state_done(st) || (from_pending && st != CF__PENDING))
            return false;
        /* release: publishes result/code/message (written before) to
         * readers that acquire-load a done state. A failed CAS means the
         * RUNNING CAS or a sleeper's WAITBIT raced in: look again. */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &s, to | (s & CF__BYTESBIT), memory_order_acq_rel,
        memory_order_relaxed));
    *wake = (s & CF__WAITBIT) != 0;
    for (cf__watch *w = f->watches, *next; w; w = next) {
        next = w->next;
        w->linked = false;
        w->prev = w->next = NULL;
        w->notify(w, f);
    }
    f->watches = NULL;
    return true;
}

/* After unlocking: wake sleepers, run the callbacks in order (first_cb,
 * which may run the list of them). first_cb is stable: nothing writes it
 * once the future is done. Callbacks run outside
 * any task: a cf_fail in one is CF_EINVAL, never the failure of the task
 * that happened to complete the future (nor of the task whose wait ran
 * that one inline), and locks taken there belong to the thread. */
static void after_complete(cf_future *f, bool wake)
{
    if (wake)
        cf__futex_wake(&f->state, -1);
    if (!f->first_cb.fn)
        return;
    cf__task_ctx *task = cf__task_ctx_swap(NULL);
    f->first_cb.fn(f, f->first_cb.ctx);
    cf__task_ctx_swap(task);
}

/* Completes f (FINISHED, or CANCELLED from PENDING only) unless that move is
 * not allowed: 0 or CF_EINVAL. message is owned by the callee from here on. */
static int complete(cf_future *f, uint32_t to, void *result, int code,
                    char *message)
{
    bool wake;
    cf__mutex_lock(&f->mu);
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (cf__state_done(s) ||
        (to == CF__CANCELLED && (s & CF__STATE_MASK) != CF__PENDING)) {
        cf__mutex_unlock(&f->mu);
        cf__free(message);
        return CF_EINVAL;
    }
    /* The fields are ours: every completer holds mu, and none got here.
     * result is a bytes future's cf__bytes (the same slot); on CF_EINVAL
     * the caller still owns it. */
    void *before = f->result;
    if (code)
        f->message = message;
    else
        f->result = result;
    f->code = code;
    if (!complete_locked(f, to, to == CF__CANCELLED, &wake)) {
        /* Only a cancel can lose, to the RUNNING CAS. */
        f->code = 0;
        f->result = before;
        cf__mutex_unlock(&f->mu);
        cf__free(message);
        return CF_EINVAL;
    }
    if (to == CF__CANCELLED && f->home) {
        /* A queued task: its pool counts it cancelled from now on. Under
         * mu, before the callbacks: once a worker has seen the cancel it
         * may drop the queue entry and the pool may be freed (by a
         * callback, or by another thread), so the pool is touched only
         * here, and the drop waits for mu (cf__pool_drop). */
        atomic_fetch_add_explicit(&f->home->cancelled, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&f->home->husks, 1, memory_order_relaxed);
    }
    cf__mutex_unlock(&f->mu);
    after_complete(f, wake);
    return 0;
}

int cf_future_set_result(cf_future *f, void *result)
{
    if (!f)
        return CF_EINVAL;
    /* A bytes future's result is its bytes, which a pointer is not. */
    return complete(f, CF__FINISHED, cf__future_is_bytes(f) ? NULL : result, 0,
                    NULL);
}

int cf_future_set_exception(cf_future *f, int code, const char *message)
{
    if (!f || code == 0)
        return CF_EINVAL;
    if (cf_future_done(f))
        return CF_EINVAL;
    char *copy = NULL;
    if (message && !(copy = cf__strdup(message)))
        return CF_ENOMEM;
    return complete(f, CF__FINISHED, NULL, code, copy);
}

void cf__future_fail(cf_future *f, int code, const char *message)
{
    complete(f, CF__FINISHED, NULL, code, cf__strdup(message));
}

void cf__future_drop(cf_future *f, const cf__drop *drop)
{
    if (drop->code == CF_ECANCELED)
        cf_future_cancel(f);
    else if (cf_future_set_running_or_notify_cancel(f))
        cf__future_fail(f, drop->code, drop->message);
    cf_future_release(f);
}

bool cf_future_cancel(cf_future *f)
{
    if (!f)
        return false;
    uint32_t s = cf__future_state(f);
    /* A queued task's pool counts the cancel in complete, under mu. */
    if (s == CF__PENDING &&
        complete(f, CF__CANCELLED, NULL, CF_ECANCELED, NULL) == 0)
        return true;
    return cf__future_state(f) == CF__CANCELLED;
}

bool cf_future_set_running_or_notify_cancel(cf_future *f)
{
    if (!f)
        return false;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while ((s & CF__STATE_MASK) == CF__PENDING) {
        /* acquire: the runner sees what the submitter wrote (fn, arg) */
        if (atomic_compare_exchange_weak_explicit(
                &f->state, &s, (s & (CF__WAITBIT | CF__BYTESBIT)) | CF__RUNNING,
                memory_order_acquire, memory_order_relaxed))
            return true;
    }
    return false;
}

int cf_future_add_done_callback(cf_future *f,
                                void (*fn)(cf_future *f, void *ctx), void *ctx)
{
    if (!f || !fn)
        return CF_EINVAL;
    cf__mutex_lock(&f->mu);
    if (!cf__state_done(
            atomic_load_explicit(&f->state, memory_order_relaxed))) {
        if (!f->first_cb.fn) {
            f->first_cb.fn = fn;
            f->first_cb.ctx = ctx;
        } else {
            /* The second one: the first moves into a list that
             * run_callbacks runs in order. */
            bool second = f->first_cb.fn != run_callbacks;
            cf__callback *cb = cf__malloc(sizeof *cb);
            cf__callback *first = second ? cf__malloc(sizeof *first) : NULL;
            if (!cb || (second && !first)) {
                cf__mutex_unlock(&f->mu);
                cf__free(cb);
                cf__free(first);
                return CF_ENOMEM;
            }
            cb->fn = fn;
            cb->ctx = ctx;
            cb->next = NULL;
            if (second) {
                first->fn = f->first_cb.fn;
                first->ctx = f->first_cb.ctx;
                first->next = cb;
                f->first_cb.fn = run_callbacks;
                f->first_cb.ctx = first;
            } else {
                cf__callback **tail = (cf__callback **)&f->first_cb.ctx;
                while (*tail)
                    tail = &(*tail)->next;
                *tail = cb;
            }
        }
        cf__mutex_unlock(&f->mu);
        return 0;
    }
    cf__mutex_unlock(&f->mu);
    cf__task_ctx *task = cf__task_ctx_swap(NULL); /* as after_complete */
    fn(f, ctx);
    cf__task_ctx_swap(task);
    return 0;
}

/* ---- watches --------------------------------------------------------- */

bool cf__future_watch(cf_future *f, cf__watch *w)
{
    cf__mutex_lock(&f->mu);
    if (cf__state_done(atomic_load_explicit(&f->state, memory_order_relaxed))) {
        cf__mutex_unlock(&f->mu);
        return false;
    }
    w->prev = NULL;
    w->next = f->watches;
    if (f->watches)
        f->watches->prev = w;
    f->watches = w;
    w->linked = true;
    cf__mutex_unlock(&f->mu);
    return true;
}

void cf__future_unwatch(cf_future *f, cf__watch *w)
{
    cf__mutex_lock(&f->mu);
    if (w->linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            f->watches = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = false;
    }
    cf__mutex_unlock(&f->mu);
}

/* ---- running a task -------------------------------------------------- */

void *cf__future_call(cf_future *f, cf__task_ctx *ctx)
{
    ctx->code = 0;
    ctx->message = NULL;
    cf__task_ctx *outer = cf__task_ctx_swap(ctx);
    void *result = f->fn(f->arg);
    cf__task_ctx_swap(outer);
    return result;
}

void cf__future_finish(cf_future *f, void *result, cf__task_ctx *ctx)
{
    /* A bytes task's trampoline returns its cf__bytes result: filed with
     * the completion, under mu, or freed when f is done already (user code
     * failed it while it ran). */
    bool bytes = cf__future_is_bytes(f);
    if (ctx->code) {
        if (bytes)
            cf__free(result);
        complete(f, CF__FINISHED, NULL, ctx->code, ctx->message);
    } else if (complete(f, CF__FINISHED, result, 0, NULL) != 0 && bytes) {
        cf__free(result);
    }
}

int cf__future_set_bytes(cf_future *f, const void *data, size_t len)
{
    cf__bytes *b = cf__malloc(sizeof *b + len);
    if (!b) {
        complete(f, CF__FINISHED, NULL, CF_ENOMEM, NULL);
        return CF_ENOMEM;
    }
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    int rc = complete(f, CF__FINISHED, b, 0, NULL);
    if (rc)
        cf__free(b);
    return rc;
}

/* ---- waiting on one future ------------------------------------------- */

typedef struct {
    cf__watch watch; /* first: a cf__watch * is a parker_watch * */
    cf__parker *parker;
} parker_watch;

static void unpark_watch(cf__watch *w, cf_future *f)
{
    (void)f;
    cf__unpark(((parker_watch *)w)->parker);
}

static bool future_is_done(void *f)
{
    return cf_future_done(f);
}

/* The one thing a wait on f depends on: f itself, if it has not started. */
static bool run_awaited(void *f, cf__helper *h)
{
    return h->run_future(h, f);
}

/* Waits until f is done or the deadline: 0 or CF_ETIMEDOUT. */
static int wait_done(cf_future *f, const cf__deadline *d)
{
    if (cf_future_done(f))
        return 0;
    if (cf__helper_current()) {
        /* A pool worker (docs/design.md, "The wait protocol"): run f here
         * if it has not started, else block; completion unparks us. */
        parker_watch pw = { .parker = cf__parker_self() };
        pw.watch.notify = unpark_watch;
        if (!cf__future_watch(f, &pw.watch))
            return 0;
        int rc = cf__block_until(future_is_done, f, run_awaited, d);
        cf__future_unwatch(f, &pw.watch);
        return rc;
    }
    for (;;) {
        uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
        if (cf__state_done(s))
            return 0;
        if (!(s & CF__WAITBIT) &&
            !atomic_compare_exchange_weak_explicit(
                &f->state, &s, s | CF__WAITBIT, memory_order_relaxed,
                memory_order_relaxed))
            continue;
        if (cf__futex_wait(&f->state, s | CF__WAITBIT, d) == CF_ETIMEDOUT &&
            !cf_future_done(f))
            return CF_ETIMEDOUT;
        if (cf__deadline_passed(d) && !cf_future_done(f))
            return CF_ETIMEDOUT;
    }
}

/* Waits up to timeout: 0 for success, the failure code, CF_ECANCELED,
 * CF_ETIMEDOUT, CF_EINVAL. */
static int outcome(cf_future *f, double timeout)
{
    cf__deadline d;
    if (!f || cf__deadline_from(timeout, &d))
        return CF_EINVAL;
    int rc = wait_done(f, &d);
    return rc ? rc : f->code;
}

int cf_future_exception(cf_future *f, double timeout, const char **message)
{
    int rc = outcome(f, timeout);
    if (message)
        *message = rc == 0 ? NULL
                   : cf_future_done(f) && cf__future_message(f)
                       ? cf__future_message(f)
                       : cf_strerror(rc);
    return rc;
}

int cf_future_result(cf_future *f, double timeout, void **result)
{
    int rc = outcome(f, timeout);
    if (rc == 0 && result)
        *result = cf__future_is_bytes(f) ? NULL : f->result;
    return rc;
}
