#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, with apt, what the MPI backend (cfutures_mpi), its tests and its
# benchmark need, when it is missing:
#   Open MPI            openmpi-bin (mpirun, mpicc) and libopenmpi-dev: the
#                       default MPI (mpicc, mpirun, mpi.h)
#   MPICH               mpich (mpirun.mpich, mpicc.mpich) and libmpich-dev:
#                       the second implementation the tests run against
#                       (cmake -DCF_MPI_IMPL=mpich). Both packages register
#                       the generic names with update-alternatives, Open MPI
#                       at a higher priority, so installing MPICH beside it
#                       leaves the default alone.
#   mpi4py.futures      python3-mpi4py (the benchmark's peer)
#   ethtool             for bench/mpi/latency.sh, which turns the offloads
#                       of its namespace links off (bench/mpi/relay.c
#                       forwards whole frames)
# With everything present it does nothing and needs no network.
# Usage: scripts/install-mpi.sh   (as root, or with sudo)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

need=()
for pkg in openmpi-bin libopenmpi-dev mpich libmpich-dev python3-mpi4py ethtool; do
    installed "$pkg" || need+=("$pkg")
done

if [ "${#need[@]}" -gt 0 ]; then
    apt_install install-mpi "${need[@]}"
fi

echo "install-mpi: default $(mpirun --version 2>&1 | head -n1);" \
    "MPICH $(mpirun.mpich --version 2>/dev/null | sed -n 's/^ *Version: *//p' || echo MISSING);" \
    "mpi4py $(dpkg-query -W -f='${Version}' python3-mpi4py 2>/dev/null || echo MISSING)"
