#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/mpi/netns_agent.sh - the remote-shell agent of the namespace cluster
# (tests/mpi/netns_cluster.sh): mpirun and mpiexec call it as they would
# call ssh, "netns_agent.sh [-OPTION...] HOST COMMAND...", and it runs the
# command with sh, like sshd would, in HOST's network namespace
# (CF_NETNS_PREFIX-HOST), in a UTS namespace of its own whose host name is
# HOST (so that every "host" has a name, a session directory and an
# address of its own). Options before HOST (Hydra passes -x) are ignored.
set -eu
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
    shift
done
if [ $# -lt 2 ] || [ -z "${CF_NETNS_PREFIX:-}" ]; then
    echo "netns_agent.sh: usage: CF_NETNS_PREFIX=P netns_agent.sh HOST COMMAND..." >&2
    exit 2
fi
host=$1
shift
# shellcheck disable=SC2016 # expanded by the inner shell
exec ip netns exec "$CF_NETNS_PREFIX-$host" unshare --uts \
    sh -c 'hostname "$1" && shift && exec sh -c "$*"' netns-agent "$host" "$@"
