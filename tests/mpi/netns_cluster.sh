# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# tests/mpi/netns_cluster.sh - sourced by tests/mpi/multihost.sh and
# bench/mpi/hosts.sh: a small cluster of "hosts" on one Linux machine, each
# a network namespace with one address on a bridge of its own.
#
#   netns_why_not          prints why no cluster can be made here (not
#                          root, no ip or unshare, namespaces refused) and
#                          succeeds; fails (prints nothing) when one can
#   netns_up N [relay]     makes hosts h1..hN: namespaces PREFIX-h1..hN
#                          with eth0 = SUBNET.1..N/24, all plugged into the
#                          bridge br0 of a namespace PREFIX-sw (with
#                          "relay": no bridge, the links' ends p1..pN in
#                          PREFIX-sw left for bench/mpi/relay.c to join,
#                          offloads off on both ends; needs ethtool), plus
#                          /etc/netns/PREFIX-hI/hosts naming every host
#                          (ip netns exec mounts it over /etc/hosts). Sets
#                          NETNS_DIR, a private directory for files.
#                          Nothing is added to the machine's own network
#                          namespace: traffic between the hosts stays on
#                          the bridge, and no host has a route out.
#   netns_down             ends every process left in the namespaces and
#                          removes all that netns_up made; also run by the
#                          EXIT trap that netns_up sets (INT, TERM and HUP
#                          exit through it)
#   netns_exec HOST CMD... runs CMD in HOST's namespace, with HOST as the
#                          host name, as tests/mpi/netns_agent.sh (the
#                          launch agent for mpirun, NETNS_AGENT) does;
#                          netns_cmd HOST sets NETNS_CMD to the words that
#                          do it, for a caller that puts timeout in front
#   netns_mpi_cmd MPIEXEC NP SLOTS
#                          sets NETNS_MPI_CMD: mpiexec (Open MPI's or
#                          MPICH's) in h1 starting NP ranks over the hosts,
#                          on the subnet (Open MPI: TCP only; see below)
#   netns_reap             removes what earlier runs left behind when they
#                          were killed with SIGKILL (their process is gone);
#                          netns_up runs it first
#
# Names: PREFIX is cfmh<pid of the shell>, so that runs at the same time
# never meet; SUBNET is CF_NETNS_SUBNET (default 10.213.151, a /24 used
# only inside these namespaces: each namespace has a network stack of its
# own, so even a subnet the machine uses elsewhere could not clash).

NETNS_PREFIX=cfmh$$
NETNS_SUBNET=${CF_NETNS_SUBNET:-10.213.151}
NETNS_AGENT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/netns_agent.sh
NETNS_HOSTS=()
NETNS_DIR=
export CF_NETNS_PREFIX=$NETNS_PREFIX

netns_why_not() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs root (it makes network namespaces)"
        return 0
    fi
    local tool
    for tool in ip unshare; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "no '$tool' command (iproute2, util-linux)"
            return 0
        fi
    done
    local probe=$NETNS_PREFIX-probe err
    if ! err=$(ip netns add "$probe" 2>&1); then
        echo "'ip netns add' fails here: $err"
        return 0
    fi
    ip netns del "$probe"
    return 1
}

# netns_remove PREFIX: ends the processes in PREFIX's namespaces, removes
# them (and with them their links and the bridge) and their /etc/netns files.
netns_remove() {
    local ns pids
    for ns in $(ip netns list 2>/dev/null | awk -v p="$1-" 'index($1, p) == 1 { print $1 }'); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086 # a list of pids
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}

netns_reap() {
    local p
    for p in $(ip netns list 2>/dev/null | sed -n 's/^\(cfmh[0-9][0-9]*\)-.*/\1/p' | sort -u); do
        kill -0 "${p#cfmh}" 2>/dev/null || netns_remove "$p"
    done
}

netns_down() {
    netns_remove "$NETNS_PREFIX"
    [ -z "$NETNS_DIR" ] || rm -rf "$NETNS_DIR"
    NETNS_DIR=
    NETNS_HOSTS=()
}

netns_up() {
    local n=$1 relay=${2:-} i ns sw=$NETNS_PREFIX-sw
    trap netns_down EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    netns_reap
    NETNS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/$NETNS_PREFIX.XXXXXX")
    ip netns add "$sw"
    if [ -z "$relay" ]; then
        ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0
        ip -n "$sw" link set br0 up
    fi
    local hosts="127.0.0.1 localhost"
    for i in $(seq "$n"); do
        hosts+=$'\n'"$NETNS_SUBNET.$i h$i"
    done
    for i in $(seq "$n"); do
        ns=$NETNS_PREFIX-h$i
        ip netns add "$ns"
        ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$sw"
        if [ -z "$relay" ]; then
            ip -n "$sw" link set "p$i" master br0 up
        else
            ip -n "$sw" link set "p$i" up
            ip netns exec "$sw" ethtool -K "p$i" tx off tso off gso off gro off >/dev/null
            ip netns exec "$ns" ethtool -K eth0 tx off tso off gso off gro off >/dev/null
        fi
        ip -n "$ns" addr add "$NETNS_SUBNET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        # A connection with data in flight is not idle, so keepalive never
        # probes it; retransmissions end it, after about 15 minutes by
        # default. 5 tries end it in about 13 s, so a partition ends the
        # job in seconds however the cut meets the runtime's connections.
        ip netns exec "$ns" sysctl -qw net.ipv4.tcp_retries2=5
        mkdir -p "/etc/netns/$ns"
        printf '%s\n' "$hosts" >"/etc/netns/$ns/hosts"
        NETNS_HOSTS+=("h$i")
    done
}

# netns_cmd HOST: sets NETNS_CMD to the command words that run a command
# (appended) in HOST's namespace with HOST as the host name, so that a
# caller can put timeout or the like in front.
netns_cmd() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    NETNS_CMD=(ip netns exec "$NETNS_PREFIX-$1" unshare --uts
        sh -c 'hostname "$1" && shift && exec "$@"' netns-exec "$1")
}

netns_exec() {
    netns_cmd "$1"
    shift
    "${NETNS_CMD[@]}" "$@"
}

# netns_mpi_impl MPIEXEC: prints openmpi or mpich (Hydra).
netns_mpi_impl() {
    case "$("$1" --version 2>&1)" in
    *"Open MPI"* | *OpenRTE*) echo openmpi ;;
    *) echo mpich ;;
    esac
}

# netns_mpi_cmd MPIEXEC NP SLOTS: sets NETNS_MPI_CMD to the words that run
# MPIEXEC in h1 to start NP ranks (the program and its arguments to be
# appended) over the cluster, TCP only on the private subnet, the other
# hosts reached through NETNS_AGENT. SLOTS is the ranks each host takes,
# "1 2 2" for h1, h2, h3, or one number for all; the ranks fill h1's slots
# first (rank 0 is on h1), then h2's, and so on. Writes NETNS_DIR/hosts.
netns_mpi_cmd() {
    local mpiexec=$1 np=$2 slots i n impl
    read -r -a slots <<<"$3"
    impl=$(netns_mpi_impl "$mpiexec")
    : >"$NETNS_DIR/hosts"
    for i in "${!NETNS_HOSTS[@]}"; do
        n=${slots[$i]:-${slots[0]}}
        if [ "$impl" = openmpi ]; then
            echo "${NETNS_HOSTS[$i]} slots=$n" >>"$NETNS_DIR/hosts"
        else
            echo "${NETNS_HOSTS[$i]}:$n" >>"$NETNS_DIR/hosts"
        fi
    done
    netns_cmd h1
    NETNS_MPI_CMD=("${NETNS_CMD[@]}" "$mpiexec")
    if [ "$impl" = openmpi ]; then
        NETNS_MPI_CMD+=(--allow-run-as-root --hostfile "$NETNS_DIR/hosts"
            -np "$np" --bind-to none --mca plm_rsh_agent "$NETNS_AGENT"
            --mca plm_rsh_no_tree_spawn 1 --mca btl "tcp,self"
            --mca btl_tcp_if_include "$NETNS_SUBNET.0/24"
            --mca oob_tcp_if_include "$NETNS_SUBNET.0/24"
            --mca mpi_yield_when_idle 1)
    else
        # UCX (the device of Debian's MPICH) picks its transports itself:
        # it sees one kernel and uses shared memory between the hosts, so
        # only Hydra's own connections cross the network. (UCX_TLS=tcp
        # would force TCP, but then test_mpi_pool's isolated_initializer
        # can hang in MPI_Finalize: docs/mpi.md, "MPICH".)
        NETNS_MPI_CMD+=(-f "$NETNS_DIR/hosts" -n "$np" -launcher rsh
            -launcher-exec "$NETNS_AGENT" -iface eth0
            -genv UCX_NET_DEVICES eth0)
    fi
}
