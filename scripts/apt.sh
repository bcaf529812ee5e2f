# SPDX-License-Identifier: MIT
# scripts/apt.sh - sourced by the install scripts (scripts/install-*.sh,
# bench/cli/install.sh): what they share about apt.
#   installed PKG          true when the Debian package PKG is installed
#   apt_install TAG PKG... installs the packages (root, or with sudo),
#                          quietly and non-interactively; TAG names the
#                          caller in messages. Updates the package lists
#                          once per run. Fails when it cannot.

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

apt_updated=
apt_install() {
    local tag=$1
    shift
    [ "$#" -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$tag: no apt-get here; install by hand: $*" >&2
        return 1
    fi
    local sudo=
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=sudo
        else
            echo "$tag: need root (or sudo) to install: $*" >&2
            return 1
        fi
    fi
    echo "$tag: installing $*"
    if [ -z "$apt_updated" ]; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
        apt_updated=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        --no-install-recommends -o Dpkg::Use-Pty=0 "$@" >/dev/null
}
