#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The repository's C formatting (.clang-format) on every tracked C file
# (*.c, *.h; .cpp files are the peers' and keep their own style).
#   scripts/format.sh check   lists the files that drift and fails if any
#                             does (clang-format --dry-run -Werror); also
#                             fails when a source file (C, C++, CMake,
#                             shell, Python) lacks its SPDX-License-Identifier
#                             line (the first comment line, after any #!)
#   scripts/format.sh fix     reformats them in place (clang-format -i)
# scripts/install-pkg-deps.sh installs clang-format.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
mode=${1:-check}

mapfile -t files < <(git ls-files '*.c' '*.h')
case "$mode" in
check)
    untagged=()
    while IFS= read -r f; do
        head -n 2 "$f" | grep -q 'SPDX-License-Identifier: MIT' ||
            untagged+=("$f")
    done < <(git ls-files '*.c' '*.h' '*.cpp' '*.sh' '*.py' '*.cmake' \
        '*.cmake.in' '*CMakeLists.txt' .ci/run debian/rules)
    if [ "${#untagged[@]}" -gt 0 ]; then
        printf 'format.sh: %s has no SPDX-License-Identifier line\n' \
            "${untagged[@]}" >&2
        exit 1
    fi
    drift=()
    for f in "${files[@]}"; do
        clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || drift+=("$f")
    done
    if [ "${#drift[@]}" -gt 0 ]; then
        printf 'format.sh: %s drifts from .clang-format\n' "${drift[@]}" >&2
        echo "format.sh: ${#drift[@]} of ${#files[@]} files drift;" \
            "scripts/format.sh fix reformats them" >&2
        exit 1
    fi
    echo "format.sh: all ${#files[@]} C files match .clang-format"
    ;;
fix)
    clang-format -i "${files[@]}"
    echo "format.sh: formatted ${#files[@]} files"
    ;;
*)
    echo "usage: scripts/format.sh check|fix" >&2
    exit 2
    ;;
esac
