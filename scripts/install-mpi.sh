#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, with apt, what the MPI backend (cfutures_mpi), its tests and its
# benchmark need, when it is missing:
#   Open MPI            openmpi-bin (mpirun, mpicc) and libopenmpi-dev
#   mpi4py.futures      python3-mpi4py (the benchmark's peer)
# With everything present it does nothing and needs no network. An MPI
# implementation that is already installed (MPICH's mpirun and mpi.h) is
# kept: then only python3-mpi4py is added if missing.
# Usage: scripts/install-mpi.sh   (as root, or with sudo)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"


need=()
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    need+=(openmpi-bin libopenmpi-dev)
fi
installed python3-mpi4py || need+=(python3-mpi4py)

if [ "${#need[@]}" -gt 0 ]; then
    apt_install install-mpi "${need[@]}"
fi

echo "install-mpi: $(mpirun --version 2>&1 | head -n1)," \
    "mpi4py $(dpkg-query -W -f='${Version}' python3-mpi4py 2>/dev/null || echo MISSING)"
