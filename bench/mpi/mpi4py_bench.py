# SPDX-License-Identifier: MIT
"""mpi4py_bench.py - the mpi4py.futures twin of cf_mpi_bench.c, run by
bench/mpi/run.sh on the same ranks (MPICommExecutor: the root submits, the
other ranks serve, like cf_mpi_pool_new).

    mpiexec -n P python3 mpi4py_bench.py tiny N [CHUNK]  N tiny tasks: a
        submit loop then every result (CHUNK 0), or executor.map with
        chunksize CHUNK
    mpiexec -n P python3 mpi4py_bench.py cpu N ITERS     N CPU-bound tasks
    python3 mpi4py_bench.py seq N ITERS                  the same N tasks
        one after the other, no MPI

The root prints "RESULT <mode> <seconds> <tasks per second> [occupancy]"
(for cpu: time inside tasks over wall time x workers, as in the C twin).
Timing starts once the executor exists and a warm-up round has run (for
tiny tasks with map, the same round: across hosts, that opens TCP's
congestion windows, as in an executor that has been running a while).
"""
import sys
import time

MASK = (1 << 64) - 1


def tiny(x):
    return x + 1


def spin(iters, x):
    # The recurrence of cf_mpi_bench.c's spin(), on 64-bit words.
    for _ in range(iters):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        x ^= x >> 33
    return x


def cpu(iters):
    t0 = time.monotonic()
    x = spin(iters, iters)
    return t0, time.monotonic(), x & 0xFF


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    if mode == "seq":
        t0 = time.perf_counter()
        for _ in range(n):
            cpu(arg)
        dt = time.perf_counter() - t0
        print(f"RESULT seq {dt:.6f} {n / dt:.1f}")
        return
    from mpi4py import MPI
    from mpi4py.futures import MPICommExecutor

    with MPICommExecutor(MPI.COMM_WORLD, root=0) as ex:
        if ex is None:
            return  # a worker rank
        if mode == "tiny":
            # Warm-up: map runs the same round first (as the C twin), the
            # submit loop (one task per message) 100 tasks.
            list(ex.map(tiny, range(n if arg else 100), chunksize=arg or 1))
            t0 = time.perf_counter()
            if arg:
                results = list(ex.map(tiny, range(n), chunksize=arg))
            else:
                fs = [ex.submit(tiny, i) for i in range(n)]
                results = [f.result() for f in fs]
            dt = time.perf_counter() - t0
            assert results == [i + 1 for i in range(n)]
        else:
            list(ex.map(cpu, [arg] * 2))  # warm-up
            t0 = time.perf_counter()
            fs = [ex.submit(cpu, arg) for _ in range(n)]
            busy = 0.0
            for f in fs:
                start, end, _ = f.result()
                busy += end - start
            dt = time.perf_counter() - t0
            workers = max(MPI.COMM_WORLD.Get_size() - 1, 1)
            print(f"RESULT cpu {dt:.6f} {n / dt:.1f} "
                  f"{busy / (dt * workers):.4f}", flush=True)
            return
        label = mode if not arg else f"tiny-map{arg}"
        print(f"RESULT {label} {dt:.6f} {n / dt:.1f}", flush=True)


if __name__ == "__main__":
    main()
