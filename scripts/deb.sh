#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the Debian packages of debian/ out of the source tree and checks
# them with lintian:
#   libcfutures0.2       the shared library (soname libcfutures.so.0.2)
#   libcfutures-dev      header, static library, pkg-config, CMake package,
#                        cfutures(3)
#   libcfutures-mpi-dev  the MPI executor: cfutures/mpi.h, libcfutures_mpi.a
#   cfutures             the command, cfutures(1)
# The files of the working tree (tracked, and untracked but not ignored)
# are copied to build/deb/cfutures-VERSION, where `dpkg-buildpackage -us
# -uc -b` runs; the .deb files land in build/deb. DEB_BUILD_OPTIONS is
# passed on (nocheck skips the test suite in the package build).
# scripts/install-pkg-deps.sh installs what it needs.
# Usage: scripts/deb.sh [--no-lint]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
lint=1
case "${1:-}" in
--no-lint) lint=0 ;;
"") ;;
*)
    echo "deb.sh: unknown option: $1 (usage: scripts/deb.sh [--no-lint])" >&2
    exit 2
    ;;
esac

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
# The version is the header's; the package, the change log and the man
# pages must say the same.
header=$(awk '/^#define CFUTURES_VERSION_(MAJOR|MINOR|PATCH) / { v = v sep $3; sep = "." }
              END { print v }' include/cfutures.h)
bad=0
[ "$version" = "$header" ] || bad=1
grep -q "^## $header " CHANGELOG.md || bad=1
for page in man/cfutures.1 man/cfutures.3; do
    grep -q "^\.TH .* \"cfutures $header\"" "$page" || bad=1
done
if [ "$bad" = 1 ]; then
    echo "deb.sh: the header says version $header; debian/changelog" \
        "($version), CHANGELOG.md and the .TH lines of man/ must agree" >&2
    exit 1
fi
out=$root/build/deb
src=$out/cfutures-$version
rm -rf "$out"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar -c --null -T - | tar -x -C "$src"

echo "deb.sh: building cfutures $version in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1) || {
    tail -n 40 "$out/build.log" >&2
    echo "deb.sh: dpkg-buildpackage failed (log: $out/build.log)" >&2
    exit 1
}
ls "$out"/*.deb

if [ "$lint" = 1 ]; then
    # The profile's errors and warnings fail; info tags are shown only.
    echo "deb.sh: lintian"
    lintian --fail-on error,warning --info --display-info \
        "$out"/cfutures_"${version}"_*.changes
fi
