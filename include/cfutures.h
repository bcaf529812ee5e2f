/* SPDX-License-Identifier: MIT */
/*
 * cfutures.h - Python's threading, queue and concurrent.futures, in C.
 *
 * This header is the manual. It is grouped by layer: errors and memory,
 * threads, synchronisation objects, the blocking queue, futures, waiting,
 * executors. Conventions:
 *
 *   - Functions return 0 (CF_OK) or a negative CF_E* code; cf_strerror()
 *     turns any code into a message.
 *   - Constructors of opaque objects return the object, or NULL with errno
 *     set (EINVAL for bad arguments, ENOMEM when memory ran out).
 *   - Timeouts are double seconds, as in Python: negative (CF_FOREVER) waits
 *     forever, 0 polls, NaN is CF_EINVAL. Deadlines use the monotonic clock.
 *   - Out-pointers for results and messages may be NULL when not wanted.
 *   - Bad input changes nothing and returns CF_EINVAL; it never aborts.
 */
#ifndef CFUTURES_H
#define CFUTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is exported from the shared library (it is built
 * with hidden visibility for internals). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define CFUTURES_VERSION_MAJOR 0
#define CFUTURES_VERSION_MINOR 2
#define CFUTURES_VERSION_PATCH 0

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/* Error codes: negative and distinct. The ones that have a Linux errno
 * equivalent use its value, so cf_strerror(-errno) reads naturally. */
#define CF_OK 0
#define CF_EPERM (-1)       /* releasing what the caller does not hold */
#define CF_ENOMEM (-12)     /* out of memory */
#define CF_EINVAL (-22)     /* bad argument or state */
#define CF_EDEADLK (-35)    /* a wait that could never end */
#define CF_ETIME (-62)      /* a task ran past its time limit, was killed */
#define CF_EOVERFLOW (-75)  /* released more than allowed */
#define CF_ESHUTDOWN (-108) /* executor or queue shut down */
#define CF_ETIMEDOUT (-110) /* timeout elapsed, or a poll would block */
#define CF_ECANCELED (-125) /* the future was cancelled */
#define CF_EBROKEN (-4094)  /* pool or barrier broken, or the worker died */
#define CF_EOF (-4095)      /* an iteration is finished */

/* A message for any code: the texts of the CF_E* codes, strerror(-code) for
 * other negative codes. The string is static; never free it. */
const char *cf_strerror(int code);

/* Wait forever (any negative timeout does). */
#define CF_FOREVER (-1.0)

/* The signature of every task and thread body: the same shape as a pthread
 * start routine. The returned pointer is the task's result. */
typedef void *(*cf_fn)(void *arg);

/* Replaces the allocator used for every allocation cfutures makes (NULL
 * arguments restore the libc one). Call it before creating any object: memory
 * must be freed by the allocator that made it. Returns 0 or CF_EINVAL when
 * only some of the functions are given. */
typedef void *(*cf_malloc_fn)(size_t size);
typedef void *(*cf_realloc_fn)(void *ptr, size_t size);
typedef void *(*cf_calloc_fn)(size_t count, size_t size);
typedef void (*cf_free_fn)(void *ptr);
int cf_replace_allocator(cf_malloc_fn malloc_fn, cf_realloc_fn realloc_fn,
                         cf_calloc_fn calloc_fn, cf_free_fn free_fn);

/* Number of CPUs this process may run on (at least 1). */
int cf_cpu_count(void);

/* ------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------ */

typedef struct cf_thread cf_thread;

typedef struct cf_thread_options {
    const char *name;  /* copied; NULL gives "Thread-N" */
    size_t stack_size; /* bytes; 0 is the system default */
    bool detached;     /* runs on its own: no handle, cannot be joined */
} cf_thread_options;

/* Starts fn(arg) on a new thread; opts may be NULL. On success *t is the
 * handle to join (NULL for a detached thread, and t may then be NULL).
 * Returns 0, CF_EINVAL, CF_ENOMEM (the system's EAGAIN included), or another
 * -errno from the system. */
int cf_thread_start(cf_thread **t, cf_fn fn, void *arg,
                    const cf_thread_options *opts);

/* Waits for the thread to end; stores what fn returned in *result. 0 frees
 * t; CF_ETIMEDOUT leaves it joinable; CF_EDEADLK when t is the caller. */
int cf_thread_join(cf_thread *t, double timeout, void **result);

/* True from cf_thread_start until fn returns. */
bool cf_thread_is_alive(const cf_thread *t);

/* The thread's name (owned by t, valid until it is joined). */
const char *cf_thread_name(const cf_thread *t);

/* The calling thread's name: its cf_thread name, its pool worker name,
 * "MainThread" for the process's first thread, "Dummy-<tid>" otherwise.
 * Valid while the calling thread runs. */
const char *cf_thread_current_name(void);

/* ------------------------------------------------------------------------
 * Synchronisation objects. Each has cf_X_new (NULL with errno on failure)
 * and cf_X_free (NULL is ignored; freeing an object others still wait on is
 * undefined, as for pthreads).
 * ------------------------------------------------------------------------ */

/* A plain lock. Any thread may release it, as in Python. */
typedef struct cf_lock cf_lock;
cf_lock *cf_lock_new(void);
void cf_lock_free(cf_lock *l);
/* Takes the lock: 0, or CF_ETIMEDOUT (a poll with timeout 0 never blocks). */
int cf_lock_acquire(cf_lock *l, double timeout);
/* Releases it: 0, or CF_EPERM when it is not locked. */
int cf_lock_release(cf_lock *l);
/* True when some thread holds the lock. */
bool cf_lock_locked(cf_lock *l);

/* A re-entrant lock, owned by the task that acquired it (outside tasks: by
 * the thread); a task run inline within another's wait is another owner. */
typedef struct cf_rlock cf_rlock;
cf_rlock *cf_rlock_new(void);
void cf_rlock_free(cf_rlock *l);
/* Takes it (again, if the caller owns it): 0 or CF_ETIMEDOUT. */
int cf_rlock_acquire(cf_rlock *l, double timeout);
/* Undoes one acquire: 0, or CF_EPERM when the caller is not the owner. */
int cf_rlock_release(cf_rlock *l);

/* A condition variable with its own re-entrant lock (owned as cf_rlock). */
typedef struct cf_condition cf_condition;
cf_condition *cf_condition_new(void);
void cf_condition_free(cf_condition *c);
/* Take and release the condition's lock, as cf_rlock does. */
int cf_condition_acquire(cf_condition *c, double timeout);
int cf_condition_release(cf_condition *c);
/* Releases the lock fully, waits for a notify, takes the lock back (at its
 * former depth): 0, CF_ETIMEDOUT, or CF_EPERM if the caller does not hold it. */
int cf_condition_wait(cf_condition *c, double timeout);
/* Waits until pred(ctx) is true (checked first, and after each wake-up):
 * 0 when true, CF_ETIMEDOUT when time ran out with pred false, CF_EPERM. */
int cf_condition_wait_for(cf_condition *c, bool (*pred)(void *ctx), void *ctx,
                          double timeout);
/* Wakes up to n waiters / all waiters. The caller must hold the lock:
 * CF_EPERM otherwise. */
int cf_condition_notify(cf_condition *c, unsigned n);
int cf_condition_notify_all(cf_condition *c);

/* A counting semaphore. A bounded one refuses to go above its initial value. */
typedef struct cf_semaphore cf_semaphore;
cf_semaphore *cf_semaphore_new(unsigned value, bool bounded);
void cf_semaphore_free(cf_semaphore *s);
/* Takes one unit: 0 or CF_ETIMEDOUT. */
int cf_semaphore_acquire(cf_semaphore *s, double timeout);
/* Adds n units (n >= 1), waking up to n waiters: 0, CF_EINVAL for n = 0, or
 * CF_EOVERFLOW (nothing released) when bounded and it would pass the start. */
int cf_semaphore_release(cf_semaphore *s, unsigned n);

/* An event flag that threads wait for. */
typedef struct cf_event cf_event;
cf_event *cf_event_new(void);
void cf_event_free(cf_event *e);
void cf_event_set(cf_event *e);    /* sets the flag, wakes every waiter */
void cf_event_clear(cf_event *e);  /* resets the flag */
bool cf_event_is_set(cf_event *e); /* the flag's value now */
/* Waits until the flag is set: 0, or CF_ETIMEDOUT. */
int cf_event_wait(cf_event *e, double timeout);

/* A cyclic barrier for a fixed number of parties. */
typedef struct cf_barrier cf_barrier;
/* parties >= 1 (else NULL, errno EINVAL); action (may be NULL) runs in one
 * thread of each round before any is released. */
cf_barrier *cf_barrier_new(unsigned parties, void (*action)(void *ctx),
                           void *ctx);
void cf_barrier_free(cf_barrier *b);
/* Waits for the round: an index in [0, parties), distinct per thread of the
 * round, or CF_EBROKEN (broken, aborted, reset while waiting, or this wait
 * timed out: a timeout breaks the barrier for every waiter). */
int cf_barrier_wait(cf_barrier *b, double timeout);
/* Back to the empty state; current waiters get CF_EBROKEN. */
void cf_barrier_reset(cf_barrier *b);
/* Breaks the barrier: current and later waits get CF_EBROKEN until reset. */
void cf_barrier_abort(cf_barrier *b);
/* Whether it is broken; the threads in the round being filled (0 while a
 * round is released or reset, or when broken); the parties it was made
 * for. NULL reads false or 0. */
bool cf_barrier_broken(cf_barrier *b);
unsigned cf_barrier_n_waiting(cf_barrier *b);
unsigned cf_barrier_parties(cf_barrier *b);

/* Calls fn(arg) once after interval seconds on its own thread, unless it is
 * cancelled first. NULL with errno EINVAL (NULL fn, NaN or negative
 * interval), ENOMEM (no memory, or no thread to be had: EAGAIN) or another
 * error of the system's. */
typedef struct cf_timer cf_timer;
cf_timer *cf_timer_start(double interval, cf_fn fn, void *arg);
/* Stops the call if it has not begun: true if this stopped it (or it was
 * stopped already), false if fn has started or run. */
bool cf_timer_cancel(cf_timer *t);
/* Waits for the timer's thread to end (fn done or cancelled): 0, CF_ETIMEDOUT,
 * or CF_EDEADLK from fn itself. */
int cf_timer_join(cf_timer *t, double timeout);
/* Cancels, joins, frees. From inside fn it only detaches; fn's thread frees. */
void cf_timer_free(cf_timer *t);

/* ------------------------------------------------------------------------
 * The blocking queue (Python's queue.Queue, LifoQueue, PriorityQueue)
 * ------------------------------------------------------------------------ */

typedef struct cf_queue cf_queue;
typedef enum cf_queue_order {
    CF_FIFO,    /* first in, first out */
    CF_LIFO,    /* last in, first out */
    CF_PRIORITY /* smallest by cmp first; equal items in insertion order */
} cf_queue_order;

/* maxsize 0 is unbounded. cmp is required for CF_PRIORITY (NULL with errno
 * EINVAL otherwise) and ignored for the others; it receives the items. */
cf_queue *cf_queue_new(size_t maxsize, cf_queue_order order,
                       int (*cmp)(const void *a, const void *b));
/* Frees the queue; items still in it belong to the caller. */
void cf_queue_free(cf_queue *q);
/* Adds item, waiting for room: 0, CF_ETIMEDOUT (still full), CF_ESHUTDOWN,
 * CF_ENOMEM. */
int cf_queue_put(cf_queue *q, void *item, double timeout);
/* Removes the next item into *item: 0, CF_ETIMEDOUT (still empty), or
 * CF_ESHUTDOWN (shut down and drained, or shut down immediately). */
int cf_queue_get(cf_queue *q, void **item, double timeout);
/* Marks one item got earlier as processed: 0, or CF_EOVERFLOW when called
 * more times than items were put. */
int cf_queue_task_done(cf_queue *q);
/* Waits until every item put has been marked done: 0 or CF_ETIMEDOUT. */
int cf_queue_join(cf_queue *q, double timeout);
/* The items in it now, whether there are none, whether a bounded queue is
 * at maxsize (never for maxsize 0): a snapshot that may be stale at once. */
size_t cf_queue_size(cf_queue *q);
bool cf_queue_empty(cf_queue *q);
bool cf_queue_full(cf_queue *q);
/* Puts now fail with CF_ESHUTDOWN; gets drain what is left, then fail too.
 * immediate also drops what is left (counting it as done for join) so gets
 * fail at once. Wakes every blocked caller. */
void cf_queue_shutdown(cf_queue *q, bool immediate);

/* ------------------------------------------------------------------------
 * Futures
 *
 * A future is pending, then running, then done: finished (with a result or
 * a failure) or cancelled. Done is final. Futures are reference counted;
 * every function taking one needs a reference the caller holds.
 * ------------------------------------------------------------------------ */

typedef struct cf_future cf_future;

/* Waiting inside a task (docs/design.md, "The wait protocol"). Every wait
 * below may be called from a task of a thread pool, and never deadlocks the
 * pool by occupying its worker:
 *   - An untimed wait (CF_FOREVER) first runs, on its own thread, what it
 *     depends on and what has not started: the awaited task futures of the
 *     same pool (each runs once: the wait claims it), the branches of its
 *     own cf_join, its own group's tasks. Never an unrelated task.
 *   - Otherwise, and always for a timed wait, it blocks like a Python
 *     thread, and the pool wakes or starts a spare worker so that up to
 *     max_workers threads keep running tasks.
 * A timed wait returns within its timeout as it does outside a pool. A task
 * run inline is a task of its own: its own cf_fail, and its own locks (a
 * cf_rlock or cf_condition held by the waiting task is not its). */

/* A pending future that user code completes (set_result/set_exception).
 * The caller holds one reference. NULL with errno ENOMEM. */
cf_future *cf_future_new(void);
/* Adds a reference. */
void cf_future_retain(cf_future *f);
/* Drops a reference; the last one frees the future. NULL is ignored. */
void cf_future_release(cf_future *f);

/* Waits for the future: 0 with the result in *result, the task's failure
 * code, CF_ECANCELED, or CF_ETIMEDOUT. In a task, untimed, it runs f itself
 * if f is a task of the same pool that has not started; else it blocks and
 * the pool compensates (above). */
int cf_future_result(cf_future *f, double timeout, void **result);
/* As cf_future_result, and *message (owned by the future, NULL on success)
 * says why it failed. */
int cf_future_exception(cf_future *f, double timeout, const char **message);

/* Cancels a pending future: true if it is cancelled now (or was already),
 * false once running or finished. Cancelling runs callbacks, wakes waiters. */
bool cf_future_cancel(cf_future *f);
/* Its state now: cancelled, running (started and not done), done. */
bool cf_future_cancelled(cf_future *f);
bool cf_future_running(cf_future *f);
bool cf_future_done(cf_future *f); /* finished or cancelled */

/* Calls fn(f, ctx) once when f is done, in the thread that completes it, in
 * the order added; at once in the caller if f is done already. Callbacks run
 * outside any task: cf_fail there is CF_EINVAL. 0, CF_EINVAL, CF_ENOMEM. */
int cf_future_add_done_callback(cf_future *f,
                                void (*fn)(cf_future *f, void *ctx), void *ctx);

/* For code that runs a future's work itself: moves a pending future to
 * running and returns true; returns false (with waiters notified) when it
 * was cancelled, and false when it is already running or done. */
bool cf_future_set_running_or_notify_cancel(cf_future *f);
/* Completes the future with a result: 0, or CF_EINVAL if it is done. */
int cf_future_set_result(cf_future *f, void *result);
/* Completes it with a failure: code nonzero; message (copied; NULL gives
 * cf_strerror(code)). 0, CF_EINVAL (done, or code 0), CF_ENOMEM. */
int cf_future_set_exception(cf_future *f, int code, const char *message);

/* Inside a task (or a pool initializer), records a failure (code nonzero)
 * with a printf-style message; when the task returns, its future fails with
 * them. The last call wins. Returns 0, or CF_EINVAL outside a task or for
 * code 0. */
int cf_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------------
 * Waiting on many futures
 * ------------------------------------------------------------------------ */

typedef enum cf_return_when {
    CF_FIRST_COMPLETED, /* any future done */
    CF_FIRST_EXCEPTION, /* any failed (not cancelled), or all done */
    CF_ALL_COMPLETED    /* all done */
} cf_return_when;

/* Waits until the condition holds over fs[0..n): 0, or CF_ETIMEDOUT (CF_EINVAL
 * for NULL entries, NaN, a bad when; CF_ENOMEM when it must block and cannot
 * allocate its n watches). Read each future's state after. n = 0 returns 0;
 * duplicates are fine. In a task, untimed, it runs the awaited tasks of the
 * same pool that have not started; else it blocks and the pool compensates. */
int cf_wait(cf_future *const *fs, size_t n, double timeout,
            cf_return_when when);

/* Yields the futures in completion order (those done already first), each
 * distinct future once. timeout counts from cf_as_completed_new. */
typedef struct cf_as_completed cf_as_completed;
/* Creates the iterator in *it: 0, CF_EINVAL, CF_ENOMEM. */
int cf_as_completed_new(cf_as_completed **it, cf_future *const *fs, size_t n,
                        double timeout);
/* Next done future into *f (borrowed: valid while the iterator lives): 0,
 * CF_EOF when all were yielded, CF_ETIMEDOUT once the timeout has passed. In
 * a task, with no timeout, it may run the awaited tasks as cf_wait does. */
int cf_as_completed_next(cf_as_completed *it, cf_future **f);
/* Frees the iterator and drops its references to the futures (NULL is
 * ignored); a future it yielded is then valid only by the caller's own. */
void cf_as_completed_free(cf_as_completed *it);

/* ------------------------------------------------------------------------
 * Executors
 * ------------------------------------------------------------------------ */

typedef struct cf_executor cf_executor;

typedef enum cf_start_method {
    CF_START_SPAWN, /* process pools: a fresh process image (default) */
    CF_START_FORK   /* process pools: fork the parent */
} cf_start_method;

typedef struct cf_options {
    int max_workers;         /* 0: threads min(32, ncpu + 4); processes ncpu;
                                MPI: every rank but the root (spawn: ncpu) */
    const char *name_prefix; /* worker thread names: "<prefix>_<i>" (copied) */
    cf_fn initializer;       /* run once in each worker before any task; a
                               cf_fail in it breaks the pool */
    void *initarg;
    /* Process pools only (ignored by thread pools): */
    unsigned
        max_tasks_per_child; /* replace a worker after this many; 0 never */
    double task_timeout;     /* seconds; 0 none; NaN, negative: EINVAL */
    cf_start_method start_method;
    /* Thread pools: */
    double idle_timeout;   /* seconds an idle worker waits for work before it
                              exits; 0 never (the default, as in Python);
                              NaN or negative: the constructor's EINVAL */
    bool keep_signal_mask; /* false: workers block SIGINT, SIGTERM, SIGHUP,
                              SIGQUIT, SIGCHLD, SIGALRM, SIGUSR1/2, SIGPIPE */
    /* Room for later fields without an ABI break: leave it zero (any
       designated or "= {0}" initializer does). A new field is carved from
       its front, so sizeof(cf_options) never changes, and zero is every
       new field's default: a program built against an older header keeps
       its behaviour. The pool constructors fail with EINVAL when a byte
       of reserved_ is not zero (a field set that this library predates). */
    uint64_t reserved_[8];
} cf_options;

typedef struct cf_stats {
    size_t workers;   /* worker threads alive */
    size_t idle;      /* of them, waiting for work */
    size_t queued;    /* tasks submitted and not yet started */
    size_t running;   /* tasks running now */
    size_t completed; /* tasks that returned without failing */
    size_t failed;    /* tasks that failed (cf_fail, or broken pool) */
    size_t cancelled; /* tasks cancelled before they started (counted when
                         the cancel returns true, and then not queued) */
    size_t steals;    /* tasks a worker took from another's deque */
    size_t inlined;   /* tasks run inline by a wait that depended on them */
    size_t spares;    /* spare workers started to compensate blocked waits */
    size_t blocked;   /* waits inside tasks that blocked */
    size_t stalled;   /* MPI ranks that stopped answering (docs/mpi.md) */
    size_t reserved_[11]; /* room for later counters, carved from its
                             front so sizeof never changes; written as zero
                             (a counter this library predates reads 0) */
} cf_stats;

/* A pool of threads; opts may be NULL for the defaults. Threads start
 * lazily, up to max_workers, and idle ones are reused. A wait inside a task
 * runs inline only what it depends on, while its thread's stack (8 MiB per
 * worker) has room; otherwise it blocks and the pool starts or wakes a
 * spare thread in its place, up to 1024 beyond max_workers, so that
 * max_workers keep running tasks; spares leave once idle. Past that cap a
 * wait just waits. Worker names are "<prefix>_<i>", whole. NULL with errno
 * EINVAL (negative max_workers, a NaN or negative idle_timeout or
 * task_timeout, a reserved_ byte not zero) or ENOMEM. */
cf_executor *cf_thread_pool_new(const cf_options *opts);

/* Schedules fn(arg). With out, *out is a new future (the caller releases
 * it); out NULL is fire and forget. 0, CF_ESHUTDOWN, CF_EBROKEN, CF_EINVAL,
 * CF_ENOMEM; when the pool has no live thread and cannot start one, the
 * failure as cf_thread_start gives it (the system's EAGAIN is CF_ENOMEM). */
int cf_submit(cf_executor *ex, cf_fn fn, void *arg, cf_future **out);

/* Stops taking work (idempotent). cancel_futures cancels what has not
 * started (tasks that tasks submitted are cancelled as a worker reaches
 * them); wait waits for the rest to finish and the workers to exit.
 * 0, or CF_EDEADLK (nothing done) when a worker of ex, or a done callback
 * on a process or MPI pool's manager thread, asks to wait. */
int cf_shutdown(cf_executor *ex, bool wait, bool cancel_futures);

/* Shuts down with wait and frees the executor; futures outlive it. From a
 * task of ex (or a process or MPI pool's done callback) it does not wait:
 * the last worker (the manager thread) to exit frees it. */
void cf_executor_free(cf_executor *ex);

/* Fills *out with a snapshot of the counters: 0 or CF_EINVAL. */
int cf_executor_stats(cf_executor *ex, cf_stats *out);

/* Python's Executor.map: fn over args[0..n) with results in input order.
 * buffersize 0 submits everything now; k > 0 keeps at most k submitted and
 * not yet consumed. timeout counts from cf_map_new. 0, CF_EINVAL, CF_ENOMEM,
 * or a submit error (nothing is left running). */
typedef struct cf_map cf_map;
int cf_map_new(cf_map **m, cf_executor *ex, cf_fn fn, void *const *args,
               size_t n, size_t buffersize, double timeout);
/* The next result in input order: 0 with *result, the task's failure code
 * (iteration goes on with the next item; a task's CF_EOF or CF_ETIMEDOUT
 * reads CF_EINVAL or CF_ETIME), CF_EOF at the end, CF_ETIMEDOUT (the item
 * stays next) once the timeout has passed. */
int cf_map_next(cf_map *m, void **result);
/* Cancels the items not started and frees the map. */
void cf_map_free(cf_map *m);

/* ------------------------------------------------------------------------
 * Bytes in, bytes out: tasks that can cross a process boundary. The same
 * code runs on thread pools, process pools and MPI pools.
 * ------------------------------------------------------------------------ */

/* A growable byte buffer a bytes task writes its result into. */
typedef struct cf_buffer cf_buffer;

/* A task that reads len bytes at in and appends its result to out. Returns
 * 0, or a failure code (cf_fail may add a message). Any function of the
 * program or of a shared library it loaded may be used: no registration. */
typedef int (*cf_bytes_fn)(const void *in, size_t len, cf_buffer *out);

/* Appends len bytes to b: 0, CF_EINVAL, CF_ENOMEM (b unchanged). */
int cf_buffer_append(cf_buffer *b, const void *data, size_t len);
/* Makes room for extra more bytes without changing the contents: 0,
 * CF_EINVAL, CF_ENOMEM (b unchanged). */
int cf_buffer_reserve(cf_buffer *b, size_t extra);

/* Schedules fn over a copy of in[0..len) on any executor. With out, *out is
 * a new future (the caller releases it). 0, CF_EINVAL, CF_ENOMEM,
 * CF_ESHUTDOWN, CF_EBROKEN. */
int cf_submit_bytes(cf_executor *ex, cf_bytes_fn fn, const void *in, size_t len,
                    cf_future **out);
/* Waits for a bytes task's result: 0 with *data and *len (owned by the
 * future, valid while it lives), the task's failure code, CF_ECANCELED,
 * CF_ETIMEDOUT, or CF_EINVAL for a future that is not a bytes task. */
int cf_future_bytes(cf_future *f, double timeout, const void **data,
                    size_t *len);

/* A pool of worker processes for bytes tasks; opts may be NULL. Workers
 * start on demand (max_workers 0: ncpu). A task that crashes or hangs fails
 * only its own future, and its worker is replaced; cf_submit of a pointer
 * task is CF_EINVAL. With CF_START_SPAWN, initarg must be NULL or point to
 * static data. NULL with errno EINVAL, ENOMEM or the system's. More in
 * docs/process_pool.md. */
cf_executor *cf_process_pool_new(const cf_options *opts);

/* Executor.map for bytes tasks: fn over ins[i][0..lens[i]) for i < n, with
 * results in input order, on any executor. chunksize items (0 means 1) go
 * to a worker as one task; a task lost whole (a crash) fails all its items.
 * buffersize and timeout are as for cf_map_new, counting tasks. The input
 * bytes must stay valid until their task is submitted (at once when
 * buffersize is 0). 0, CF_EINVAL, CF_ENOMEM, or a submit error (what was
 * submitted is cancelled). Free with cf_map_free. */
int cf_map_bytes_new(cf_map **m, cf_executor *ex, cf_bytes_fn fn,
                     const void *const *ins, const size_t *lens, size_t n,
                     size_t chunksize, size_t buffersize, double timeout);
/* The next result in input order: 0 with *data and *len (valid until the
 * next call or cf_map_free); an item's failure code (as cf_map_next's) with
 * its message (a NUL-terminated text) in *data and *len; CF_EOF at the end;
 * CF_ETIMEDOUT (the item stays next); CF_EINVAL on a pointer map. */
int cf_map_bytes_next(cf_map *m, const void **data, size_t *len);

/* ------------------------------------------------------------------------
 * Fork-join, on the work-stealing scheduler of a thread pool
 * ------------------------------------------------------------------------ */

/* Runs a(arg_a) and b(arg_b), possibly in parallel, and returns when both
 * are done: 0, or the first failure code (a cf_fail in either). Results go
 * to *res_a and *res_b (either may be NULL). Inside a worker of ex it runs a
 * itself and leaves b for a thief, allocating nothing, then runs b itself
 * unless it was stolen (then it runs only the joins the thief pushed while
 * running b, else blocks and the pool compensates); tasks a or b submitted
 * and did not wait for go to the pool's queue, not run here. From any other
 * thread, or with its stack running low, it hands the pair to ex and waits.
 * CF_EINVAL, CF_ESHUTDOWN, CF_ENOMEM. */
int cf_join(cf_executor *ex, cf_fn a, void *arg_a, void **res_a, cf_fn b,
            void *arg_b, void **res_b);

/* Calls body(lo, hi, ctx) over subranges that tile [begin, end), split
 * recursively with cf_join so idle workers steal halves; grain is the
 * largest range run whole (0 picks one adaptively). Returns when all ran:
 * 0, or the first failure (a cf_fail in a body stops further splitting). */
int cf_parallel_for(cf_executor *ex, size_t begin, size_t end, size_t grain,
                    void (*body)(size_t lo, size_t hi, void *ctx), void *ctx);

/* A task group (structured concurrency, like TBB's task_group or Python's
 * TaskGroup): tasks submitted to it run on ex; a wait waits for all. */
typedef struct cf_group cf_group;
/* A new empty group on ex: NULL with errno EINVAL or ENOMEM. */
cf_group *cf_group_new(cf_executor *ex);
/* Adds fn(arg) to the group: 0, CF_EINVAL, CF_ENOMEM, CF_ESHUTDOWN, or
 * CF_ECANCELED when the group was cancelled (or a task of it failed). */
int cf_group_submit(cf_group *g, cf_fn fn, void *arg);
/* Waits for every task submitted so far: 0, the first failure code, or
 * CF_ETIMEDOUT. After a failure the group's tasks not yet started are
 * cancelled. In a task, untimed, it runs the group's own tasks it submitted
 * that have not started (those still at the bottom of its worker's deque:
 * not those a cf_join branch left, which go to the pool's queue); else it
 * blocks and the pool compensates. */
int cf_group_wait(cf_group *g, double timeout);
/* Cancels the tasks of the group that have not started; later submits get
 * CF_ECANCELED. Running tasks finish. */
void cf_group_cancel(cf_group *g);
/* Waits for the group's tasks, then frees it. */
void cf_group_free(cf_group *g);

/* ------------------------------------------------------------------------
 * Lifecycle, progress, failures and tracing
 * ------------------------------------------------------------------------ */

/* The arg the task was submitted with (cf_submit, cf_map); for a bytes task
 * the input's address as passed to cf_submit_bytes (only an address: the
 * bytes may be gone). NULL for cf_future_new futures and for NULL. */
void *cf_future_arg(const cf_future *f);

/* Waits until a shut-down executor's accepted work has finished and its
 * workers have exited: 0, CF_ETIMEDOUT, CF_EINVAL (not shut down, NULL, NaN)
 * or CF_EDEADLK from a worker of ex or a process or MPI pool's done
 * callback. With cf_shutdown(ex, false, ...) it is a shutdown with a
 * timeout. */
int cf_executor_wait(cf_executor *ex, double timeout);

/* cf_as_completed_next with a timeout of its own for this call, on top of
 * the iterator's overall one (the earlier wins): 0, CF_EOF, CF_ETIMEDOUT
 * (the iterator goes on: call again), CF_EINVAL. */
int cf_as_completed_next_for(cf_as_completed *it, double timeout,
                             cf_future **f);

/* The message of the failure that the calling thread's last cf_join,
 * cf_parallel_for or cf_group_wait returned (cf_fail's text, else
 * cf_strerror of the code); NULL when it returned 0, or before any such
 * call. Valid until this thread's next such call: in a task, a wait may run
 * other tasks on this thread, and their calls count, so copy it first. */
const char *cf_failure_message(void);

/* Records what the pool threads do (tasks, waits, steals, sleeps, process
 * workers' dispatch, deaths and replacements) into per-thread buffers, and
 * at cf_trace_stop writes it to path as Chrome Trace Event JSON (Perfetto,
 * chrome://tracing, `cfutures trace`). 0, CF_EINVAL (NULL, or a trace is on),
 * or -errno when path cannot be created. CFUTURES_TRACE=path traces a whole
 * run. Off, it costs one predictable branch per event. docs/trace.md. */
int cf_trace_start(const char *path);
/* Stops the trace and writes its file: 0, CF_EINVAL (no trace on), or
 * -errno from writing. */
int cf_trace_stop(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_H */
