/*
 * cfutures/mpi.h - the MPI executor: bytes tasks on the ranks of an MPI
 * communicator, behind the same cf_executor API as thread and process
 * pools (like mpi4py.futures' MPICommExecutor). Link cfutures_mpi, the
 * static core (libcfutures.a) and MPI.
 *
 * Every rank runs the same program. cf_mpi_pool_new is collective: the root
 * gets the executor, the other ranks serve its tasks inside the call and
 * return when the root shuts the executor down. Tasks are cf_bytes_fn
 * functions (no registration: a function is named by its module and
 * offset); results, cf_fail codes and messages come back in the futures.
 * docs/mpi.md tells how to run it on a cluster and what happens when a rank
 * crashes.
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

/* Collective over comm (each rank passes its own opts). On rank `root` it
 * returns an executor whose workers are the other ranks (at most
 * opts->max_workers of them when that is > 0); each worker rank first runs
 * opts->initializer(opts->initarg), and a cf_fail there breaks the pool.
 * On the other ranks it runs tasks until the root shuts the executor down,
 * then returns NULL with errno 0. With one rank the root runs the tasks on
 * a thread of its own. If MPI is not initialised yet it initialises it
 * (MPI_THREAD_SERIALIZED) and finalises it at exit. NULL with errno EINVAL
 * (bad root or max_workers, MPI finalised, or the root's thread level below
 * MPI_THREAD_SERIALIZED with more than one rank: the root's own thread
 * calls MPI), ENOMEM, or EIO (an MPI call failed). While the executor lives
 * the root's other threads must not call MPI unless the level is
 * MPI_THREAD_MULTIPLE; cf_executor_free it before MPI_Finalize.
 * cf_submit (pointer tasks) on it is CF_EINVAL: use cf_submit_bytes. */
cf_executor *cf_mpi_pool_new(MPI_Comm comm, int root, const cf_options *opts);

/* As cf_mpi_pool_new (collective too: every rank calls this one), but
 * each worker rank runs its tasks in a process pool of its own with one
 * worker process (opts' initializer, task_timeout, max_tasks_per_child and
 * start_method apply there). A task that crashes or hangs then fails only
 * its own future (CF_EBROKEN naming the signal, CF_ETIME) and the rank goes
 * on; with cf_mpi_pool_new a crashing task ends the whole MPI job. Costs a
 * local socket round trip per batch of tasks. */
cf_executor *cf_mpi_pool_new_isolated(MPI_Comm comm, int root,
                                      const cf_options *opts);

/* Like mpi4py's MPIPoolExecutor(max_workers): started as one process, the
 * program spawns opts->max_workers copies of itself (0: the CPU count;
 * same path, same arguments) with MPI_Comm_spawn and returns an executor
 * whose workers they are. In those copies the same call serves the tasks
 * and returns NULL with errno 0 once the executor is shut down. NULL with
 * errno EINVAL, ENOMEM or EIO (the spawn failed). */
cf_executor *cf_mpi_pool_spawn(const cf_options *opts);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_MPI_H */
