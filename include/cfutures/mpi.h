/* SPDX-License-Identifier: MIT */
/*
 * cfutures/mpi.h - the MPI executor: bytes tasks on the ranks of an MPI
 * job, behind the same cf_executor API as thread and process pools (like
 * mpi4py.futures). Link cfutures_mpi, the static core (libcfutures.a) and
 * MPI; docs/mpi.md says how to run on a cluster.
 *
 * What holds for every constructor here:
 *   - Every rank runs the same program. The root gets the executor; on the
 *     other ranks the same call serves the root's tasks and returns NULL
 *     with errno 0 once the root shut the executor down.
 *   - Tasks are cf_bytes_fn (cf_submit_bytes, cf_map_bytes_new); cf_submit
 *     of a pointer task is CF_EINVAL. Results, cf_fail codes and messages
 *     come back in the futures; a malformed message fails its task.
 *   - Each worker rank runs opts->initializer(opts->initarg) (its own opts)
 *     before its first task; a cf_fail there breaks the pool.
 *   - MPI is initialised (MPI_THREAD_SERIALIZED, finalised at exit) if the
 *     program has not. Only the executor's own thread calls MPI on the
 *     root, so SERIALIZED is enough, and the root's other threads must not
 *     call MPI meanwhile unless the level is MPI_THREAD_MULTIPLE. Free the
 *     executor before MPI_Finalize.
 *   - NULL with errno: EINVAL (a bad argument, an intercommunicator, MPI
 *     finalised, or the root's thread level below SERIALIZED), ENOMEM,
 *     EAGAIN (the root's manager thread could not start), EIO (an MPI call
 *     failed).
 */
#ifndef CFUTURES_MPI_H
#define CFUTURES_MPI_H

#include <cfutures.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* Collective over comm, like MPICommExecutor: on rank root, an executor
 * whose workers are the other ranks (at most opts->max_workers when > 0);
 * with one rank the root runs the tasks itself, on a thread of its own. A
 * task that crashes its rank ends the MPI job (see the isolated variant).
 * A rank that holds tasks and stops answering is reported on stderr and
 * its tasks fail with CF_EBROKEN (CFUTURES_MPI_RANK_TIMEOUT and
 * CFUTURES_MPI_RANK_LOST, docs/mpi.md). */
cf_executor *cf_mpi_pool_new(MPI_Comm comm, int root, const cf_options *opts);

/* As cf_mpi_pool_new, but each rank runs its tasks in a one-process
 * process pool (opts' task_timeout, max_tasks_per_child, start_method and
 * initializer apply there): a crash or a hang fails only its own task
 * (CF_EBROKEN naming the signal, CF_ETIME). Costs a local round trip per
 * batch. */
cf_executor *cf_mpi_pool_new_isolated(MPI_Comm comm, int root,
                                      const cf_options *opts);

/* Like MPIPoolExecutor(max_workers): the program, started as one process,
 * spawns opts->max_workers copies of itself (0: the CPU count; same path
 * and arguments) with MPI_Comm_spawn; in the copies this call serves. */
cf_executor *cf_mpi_pool_spawn(const cf_options *opts);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_MPI_H */
