#!/usr/bin/env bash
# Installs, with apt, what the MPI backend (cfutures_mpi), its tests and its
# benchmark need, when it is missing:
#   Open MPI            openmpi-bin (mpirun, mpicc) and libopenmpi-dev
#   mpi4py.futures      python3-mpi4py (the benchmark's peer)
# With everything present it does nothing and needs no network. An MPI
# implementation that is already installed (MPICH's mpirun and mpi.h) is
# kept: then only python3-mpi4py is added if missing.
# Usage: scripts/install-mpi.sh   (as root, or with sudo)
set -euo pipefail

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

need=()
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    need+=(openmpi-bin libopenmpi-dev)
fi
installed python3-mpi4py || need+=(python3-mpi4py)

if [ "${#need[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-mpi: no apt-get here; install by hand: ${need[*]}" >&2
        exit 1
    fi
    sudo=
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "install-mpi: need root (or sudo) to install: ${need[*]}" >&2
            exit 1
        fi
    fi
    echo "install-mpi: installing ${need[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o Dpkg::Use-Pty=0 "${need[@]}" >/dev/null
fi

echo "install-mpi: $(mpirun --version 2>&1 | head -n1)," \
    "mpi4py $(dpkg-query -W -f='${Version}' python3-mpi4py 2>/dev/null || echo MISSING)"
