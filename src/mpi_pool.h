/* SPDX-License-Identifier: MIT */
/*
 * mpi_pool.h - test hooks of the MPI executor (mpi_pool.c), for
 * tests/mpi only: they make the next message in one direction malformed,
 * so the tests can check that a bad frame fails its task and nothing else.
 */
#ifndef CF_MPI_POOL_H
#define CF_MPI_POOL_H

enum {
    CF__MPI_CORRUPT_NONE = 0,
    /* Called inside a task on a worker: its own result frame is sent with a
     * bad magic / cut short / replaced (with the whole message header) by
     * garbage. */
    CF__MPI_CORRUPT_RESULT_MAGIC,
    CF__MPI_CORRUPT_RESULT_TRUNCATE,
    CF__MPI_CORRUPT_RESULT_GARBAGE,
    /* Called on the root: the next task batch it sends has a first task
     * frame with a bad magic / a bad batch header / is cut short. */
    CF__MPI_CORRUPT_TASK_MAGIC,
    CF__MPI_CORRUPT_BATCH_HEADER,
    CF__MPI_CORRUPT_BATCH_TRUNCATE,
};

/* Arms one corruption (CF__MPI_CORRUPT_*) in this process. */
void cf__mpi_test_corrupt(int what);

#endif /* CF_MPI_POOL_H */
