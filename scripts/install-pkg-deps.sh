#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, with apt, what the packaging stages of scripts/test.sh need,
# when it is missing:
#   debhelper, dpkg-dev    dpkg-buildpackage -b with debian/ (dh, compat 13)
#   lintian                checks the packages built
#   abigail-tools          abidw and abidiff: the ABI check (scripts/abi.sh)
#   clang-format           the format check (scripts/format.sh)
#   man-db                 man -l, to check the man pages
# With everything present it does nothing and needs no network.
# Usage: scripts/install-pkg-deps.sh   (as root, or with sudo)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

need=()
for p in debhelper dpkg-dev fakeroot lintian abigail-tools clang-format man-db; do
    installed "$p" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    apt_install install-pkg-deps "${need[@]}"
fi

echo "install-pkg-deps: debhelper $(dpkg-query -W -f='${Version}' debhelper)," \
    "lintian $(dpkg-query -W -f='${Version}' lintian)," \
    "$(abidiff --version), $(clang-format --version | sed 's/.*version //')"
