/* SPDX-License-Identifier: MIT */
/*
 * transport.h - what the two sides of the MPI transport share: tuning,
 * tags, the head of an answer, and the serving code that rank.c lends
 * root.c (a one-rank pool's manager serves its own batches).
 *
 * Messages are frames (remote/codec.h). TASKS: a BATCH frame (id: the
 * batch; aux: its task count), then the tasks' TASK frames. A rank answers
 * each batch, in order, with RESULTS messages: an ANSWERS frame (id: the
 * batch, 0 when unknown; aux: the first task it answers) whose payload is
 * an `answers` head and one RESULT or FAIL frame per task. The last is
 * final; a FAIL frame after its answers fails the tasks left. HELLO (once,
 * first): the rank's host and its initializer's outcome. STOP: go home.
 */
#ifndef CF_MPI_TRANSPORT_H
#define CF_MPI_TRANSPORT_H

#include "cfutures/mpi.h"

#include "../remote/engine.h"
#include "../remote/serve.h"

#include <limits.h>

/* ---- tuning ------------------------------------------------------------- */

#define BATCH_TARGET_S 0.004         /* a batch's work on its worker */
#define BATCH_MAX_TASKS 1024         /* tasks in one batch */
#define BATCH_MAX_BYTES (1u << 20)   /* bytes in a batch (1 task may pass) */
#define MAX_BATCHES 64               /* batches in flight per worker */
#define WINDOW_MAX_TASKS 65536       /* tasks in flight per worker */
#define WINDOW_MAX_BYTES (64u << 20) /* task bytes in flight per worker */
#define EAGER_BYTES (48u << 10)      /* a batch's bytes past 1 ms of rtt */
#define WATCH_EVERY_S 0.1            /* the watchdog's period */
#define LINK_RATE_MIN 10e6           /* bytes/s a link carries, at least */
#define REPLY_FLUSH_BYTES (8u << 20) /* a worker sends results past this */
#define REPLY_FLUSH_S 1.0            /* or once its answers took this long */
#define MSG_MAX ((size_t)INT_MAX - 65536) /* one MPI message (int count) */
#define SPIN_ROUNDS 32                    /* quick polls before sleeping */
#define BACKOFF_MIN_S 2e-6
#define BACKOFF_MAX_S 1e-3

enum { TAG_TASKS = 1, TAG_RESULTS = 2, TAG_HELLO = 3, TAG_STOP = 4 };

/* The head of an ANSWERS frame's payload. */
typedef struct cf__answers {
    uint32_t count;   /* RESULT or FAIL frames that follow */
    uint32_t final;   /* the batch's last message */
    uint64_t busy_ns; /* time the answered tasks took */
} cf__answers;
#define ANS_HEAD (CF__FRAME_HDR + sizeof(cf__answers))

/* ---- the serving side (rank.c) ------------------------------------------ */

/* The answer to one batch, built frame by frame and sent in one or more
 * messages through send. */
typedef struct cf__replier {
    cf_buffer buf;
    uint64_t seq;     /* the batch (0: unknown) */
    uint32_t first;   /* the batch's index of the first task in buf */
    uint32_t count;   /* answers in buf */
    uint64_t busy_ns; /* time they took */
    int (*send)(void *ctx, const void *msg, size_t len);
    void *ctx;
} cf__replier;

/* An isolated rank's worker process (rank.c). */
typedef struct cf__mpi_iso cf__mpi_iso;
/* Serves one TASKS message (NULL: no memory for its len bytes): runs its
 * tasks in order (here, or in iso's worker process) and answers through r.
 * 0, or the error of a send (an MPI failure: stop serving). */
int cf__mpi_serve_batch(const unsigned char *msg, size_t len, cf__replier *r,
                        cf__mpi_iso *iso);
/* Gets a rank ready to run tasks: runs the initializer here, or (isolated)
 * sets up *iso, whose worker process runs it. 0, or a failure code with a
 * message in *msg (caller frees). */
int cf__mpi_prepare(const cf_options *opts, bool isolated, cf__mpi_iso **iso,
                    char **msg);
/* Stops the worker process, then frees iso (NULL: nothing). */
void cf__mpi_iso_free(cf__mpi_iso *iso);
/* A worker rank: says hello, then serves batches until STOP. 0, or
 * CF_EBROKEN on an MPI failure. */
int cf__mpi_serve(MPI_Comm comm, int root, const cf_options *opts,
                  bool isolated);
/* Waits for the next message from source, polling with backoff (Open MPI's
 * blocking calls spin): 0 with *st, or an MPI error code. */
int cf__mpi_probe(MPI_Comm comm, int source, MPI_Status *st);

#endif /* CF_MPI_TRANSPORT_H */
