#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The project's test command. From a fresh clone it installs what is missing
# (scripts/install-deps.sh; Open MPI, MPICH and mpi4py: scripts/install-mpi.sh;
# the packaging tools: scripts/install-pkg-deps.sh; the benchmark peers:
# scripts/install-bench-deps.sh, bench/cli/install.sh), then, stopping at
# the first failure (the MPI executor's tests, ctest -R mpi, run under
# mpiexec in every stage; in tsan on MPICH only):
#   format   every tracked C file matches .clang-format, and every source
#          file has its SPDX-License-Identifier line (scripts/format.sh)
#   matrix   every combination of the build options configures (tests,
#          examples, bench, tools, MPI; and each sanitizer); the two
#          cheapest are built (the library alone; the tests without tools)
#   gcc    RelWithDebInfo -Werror build, whole ctest suite      (build/gcc)
#   abi    build/gcc's libcfutures.so against abi/libcfutures.abi
#          (scripts/abi.sh check: abidiff; added functions pass)
#   clang  RelWithDebInfo -Werror build, ctest suite but the MPI tests
#          (they run in gcc, mpich and tsan)                    (build/clang)
#   mpich  the MPI executor's tests built against MPICH          (build/mpich)
#          (-DCF_MPI_IMPL=mpich: mpicc.mpich, mpiexec.mpich), ctest -R mpi
#   tsan   clang -DCF_SANITIZE=thread, whole ctest suite        (build/tsan)
#          (the MPI tests built against MPICH: TSan and Open MPI clash)
#   asan   gcc -DCF_SANITIZE=address (ASan+UBSan+LSan), suite   (build/asan)
#   install  cmake --install into a temporary prefix, then build and run
#          tests/install/consumer.c against it with pkg-config (shared and
#          static) and as a CMake project (find_package, shared, static
#          and MPI); then the uninstall target leaves no file behind
#   packages  the Debian packages (scripts/deb.sh: dpkg-buildpackage in
#          build/deb, lintian), installed into this machine with apt; the
#          consumers built against them alone (pkg-config, find_package),
#          the installed `cfutures demo --quick` and man pages; then the
#          packages are removed again
#   bench  scripts/bench.sh --quick: every benchmark once, small, with the
#          peers that scripts/install-bench-deps.sh installed (no timing is
#          asserted)
# Build directories are kept, so a second run only rebuilds what changed.
#
# mpi_multihost and mpi_partition (tests/mpi/multihost.sh) need root and
# ip netns; without them ctest lists them as skipped.
#
# Usage: scripts/test.sh [--quick] [--no-deps]
#   --quick    gcc build and ctest only (for development)
#   --no-deps  run none of the install scripts (then the MPI tests run only
#              if MPI is installed already, and the format, abi and packages
#              stages only if their tools are)
# Environment: JOBS (build parallelism, default nproc), CTEST_JOBS (default 2).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

quick=0
deps=1
for arg in "$@"; do
    case "$arg" in
    --quick) quick=1 ;;
    --no-deps) deps=0 ;;
    -h | --help)
        sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown option: $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

# With the deps installed, a missing MPI is an error, not a skipped test.
require_mpi=OFF
[ "$deps" = 1 ] && require_mpi=ON

jobs=${JOBS:-$(nproc)}
ctest_jobs=${CTEST_JOBS:-2}

# ---- stages: a header, the time each took, and which one failed ----------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t_start=$(now)
stage_name=
summary=()
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$stage_name" ]; then
        printf '\n=== FAILED: %s (exit %d, after %ss)\n' "$stage_name" "$rc" \
            "$(elapsed "$t_start")" >&2
    fi
}
trap on_exit EXIT

# stage NAME WHAT COMMAND...: runs one stage; set -e ends the script if it
# fails, and on_exit names the stage.
stage() {
    stage_name=$1
    printf '\n=== %s: %s\n' "$1" "$2"
    shift 2
    local t0
    t0=$(now)
    "$@"
    local dt
    dt=$(elapsed "$t0")
    summary+=("$(printf '%-8s %7ss' "$stage_name" "$dt")")
    printf '=== %s: ok (%ss)\n' "$stage_name" "$dt"
    stage_name=
}

# ---- building and testing one configuration -------------------------------

# configure DIR CC [cmake args...]
configure() {
    local dir=$1 cc=$2
    shift 2
    cmake -S . -B "$dir" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCF_WERROR=ON \
        -DCF_REQUIRE_MPI="$require_mpi" "$@" >/dev/null
}

build() { cmake --build "$1" --parallel "$jobs"; }

ctest_args=(--output-on-failure --no-tests=error -j "$ctest_jobs")

# cache_get DIR VAR: the value of VAR in DIR/CMakeCache.txt.
cache_get() { sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"; }

# A plain build with compiler CC in build/NAME, and its test suite. The
# clang build leaves out the MPI tests: they run in the gcc build (Open
# MPI), against MPICH, and clang-built under TSan (MPICH) and so do not
# run a fourth time in a plain build.
plain() {
    local name=$1 cc=$2
    local -a skip=()
    [ "$name" = clang ] && skip=(-E '^(mpi_|example_engines_mpi)')
    configure "build/$name" "$cc"
    build "build/$name"
    ctest --test-dir "build/$name" "${ctest_args[@]}" "${skip[@]}"
}

# Options for the sanitizer runtimes; a value already in the environment wins.
: "${TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1}"
: "${ASAN_OPTIONS=detect_leaks=1:abort_on_error=0}"
: "${UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1}"
export TSAN_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS

# A sanitizer build (thread or address) in build/tsan or build/asan, and the
# suite run with timing bounds scaled for the slower code.
sanitized() {
    local kind=$1 cc=$2 dir=build/${1:0:1}san
    local -a mpi=()
    # TSan and Open MPI do not mix (cmake/mpi.cmake): the MPI tests run
    # under TSan on MPICH, when it is installed.
    if [ "$kind" = thread ]; then
        mpi=(-DCF_WITH_MPI=OFF)
        if command -v mpicc.mpich >/dev/null 2>&1 &&
            command -v mpiexec.mpich >/dev/null 2>&1; then
            mpi=(-DCF_WITH_MPI=ON -DCF_MPI_IMPL=mpich)
        fi
    fi
    configure "$dir" "$cc" -DCF_SANITIZE="$kind" -DCF_BUILD_BENCH=OFF \
        "${mpi[@]}"
    build "$dir"
    local -a wrap=()
    if [ "$kind" = thread ] && ! tsan_works "$dir"; then
        # TSan runtimes older than LLVM 18 cannot map their shadow memory
        # when the kernel randomises mmap with more than 28 bits (the
        # "unexpected memory mapping" failure); without ASLR they can.
        echo "tsan: this kernel's address randomisation breaks TSan;" \
            "running the suite under setarch -R"
        wrap=(setarch "$(uname -m)" -R)
    fi
    CF_TEST_TIME_SCALE=${CF_TEST_TIME_SCALE:-4} \
        "${wrap[@]}" ctest --test-dir "$dir" "${ctest_args[@]}"
}

# Whether a trivial TSan program built like the ones in DIR runs here.
tsan_works() {
    local probe=$1/tsan-probe
    if [ ! -x "$probe" ]; then
        printf 'int main(void) { return 0; }\n' |
            "$(cache_get "$1" CMAKE_C_COMPILER)" -fsanitize=thread -x c - \
                -o "$probe"
    fi
    "$probe" >/dev/null 2>&1
}

# ---- the MPI executor on MPICH ------------------------------------------

# The MPI tests again, built with MPICH's mpicc.mpich and run by its
# mpiexec.mpich (Debian installs both MPIs side by side; the other stages
# use the default one, Open MPI). Only the targets those tests run.
mpich_tests() {
    if ! command -v mpicc.mpich >/dev/null 2>&1 ||
        ! command -v mpiexec.mpich >/dev/null 2>&1; then
        echo "mpich: MPICH is not installed (scripts/install-mpi.sh installs it);" \
            "its tests are not run"
        [ "$require_mpi" = OFF ] || return 1
        return 0
    fi
    configure build/mpich gcc -DCF_MPI_IMPL=mpich -DCF_BUILD_BENCH=OFF \
        -DCF_BUILD_TOOLS=OFF
    cmake --build build/mpich --parallel "$jobs" \
        --target test_mpi_pool example_engines mpi_partition mpi_stall
    ctest --test-dir build/mpich "${ctest_args[@]}" \
        -R '^(mpi_pool_|mpi_multihost|mpi_partition|mpi_stall|example_engines_mpi)'
}

# ---- the install test -----------------------------------------------------

# Whether the program BIN loads libcfutures.so (a NEEDED entry names it).
needs_shared_lib() {
    objdump -p "$1" | awk '$1 == "NEEDED" && $2 ~ /^libcfutures\.so/ { n++ }
                           END { exit n == 0 }'
}

install_test() {
    local build=build/gcc work=build/install-test
    local prefix=$root/$work/prefix
    rm -rf "$work"
    mkdir -p "$work"
    cmake --install "$build" --prefix "$prefix" >/dev/null

    # Everything a consumer needs is where it should be.
    local libdir
    libdir=$(cache_get "$build" CMAKE_INSTALL_LIBDIR)
    local f
    for f in include/cfutures.h "$libdir"/libcfutures.a bin/cfutures \
        share/man/man3/cfutures.3 share/man/man1/cfutures.1 \
        "$libdir"/libcfutures.so "$libdir"/pkgconfig/cfutures.pc \
        "$libdir"/cmake/cfutures/cfuturesConfig.cmake \
        "$libdir"/cmake/cfutures/cfuturesConfigVersion.cmake \
        "$libdir"/cmake/cfutures/cfuturesTargets.cmake; do
        if [ ! -e "$prefix/$f" ]; then
            echo "install: $f is missing from the installed tree" >&2
            return 1
        fi
    done
    local soname
    soname=$(objdump -p "$prefix/$libdir/libcfutures.so" |
        awk '$1 == "SONAME" { print $2 }')
    if [ -z "$soname" ] || [ ! -L "$prefix/$libdir/$soname" ]; then
        echo "install: no soname link ($soname) for libcfutures.so" >&2
        return 1
    fi

    # The shared library exports the public cf_ names and nothing else.
    local leaked
    leaked=$(nm -D --defined-only "$prefix/$libdir/libcfutures.so" |
        awk '$2 ~ /^[A-Z]$/ && $2 != "A" { print $3 }' |
        grep -v '^cf_[^_]' || true)
    if [ -n "$leaked" ]; then
        echo "install: libcfutures.so exports names that are not public:" >&2
        echo "$leaked" >&2
        return 1
    fi
    echo "install: files in place, soname $soname," \
        "$(nm -D --defined-only "$prefix/$libdir/libcfutures.so" |
            grep -c ' T cf_') public functions exported"

    require_mpi_consumer=
    [ "$require_mpi" = OFF ] || require_mpi_consumer=1
    consumers "$work/out" "$(cache_get "$build" CMAKE_C_COMPILER)" \
        "$prefix" "$libdir"

    # The uninstall target takes back every file the install put in.
    cmake --build "$build" --target uninstall >/dev/null
    local left
    left=$(find "$prefix" ! -type d)
    if [ -n "$left" ]; then
        echo "install: files left after the uninstall target:" >&2
        echo "$left" >&2
        return 1
    fi
    echo "install: uninstall removed every installed file"
}

# consumers OUT CC [PREFIX LIBDIR]: builds tests/install in OUT against an
# installed cfutures, in PREFIX (from cmake --install) or, without one, the
# system's (from the packages), and runs its programs: with pkg-config
# (shared and --static) and as a CMake project (find_package: shared,
# static, and the MPI executor when it is installed).
consumers() {
    local out=$1 cc=$2 prefix=${3:-} libdir=${4:-}
    local src=$root/tests/install
    local -a pcpath=(env -u PKG_CONFIG_PATH) cmake_prefix=() run=(env)
    if [ -n "$prefix" ]; then
        pcpath=(env PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig")
        cmake_prefix=(-DCMAKE_PREFIX_PATH="$prefix")
        run=(env LD_LIBRARY_PATH="$prefix/$libdir")
    fi
    rm -rf "$out"
    mkdir -p "$out"

    echo "consumers: pkg-config ($("${pcpath[@]}" pkg-config --path cfutures)), shared"
    # shellcheck disable=SC2046 # pkg-config output is a list of words
    "$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$out/pc-shared" \
        $("${pcpath[@]}" pkg-config --cflags --libs cfutures)
    "${run[@]}" "$out/pc-shared"
    if ! needs_shared_lib "$out/pc-shared"; then
        echo "consumers: pc-shared is not linked to libcfutures.so" >&2
        return 1
    fi

    echo "consumers: pkg-config --static"
    # --static adds Libs.private; -l:libcfutures.a picks the archive over
    # the shared library that sits beside it.
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$out/pc-static" \
        $("${pcpath[@]}" pkg-config --cflags --static --libs cfutures |
            sed 's/-lcfutures\b/-l:libcfutures.a/')
    "$out/pc-static"
    if needs_shared_lib "$out/pc-static"; then
        echo "consumers: pc-static is linked to libcfutures.so" >&2
        return 1
    fi

    cmake -S "$src" -B "$out/cmake" -DCMAKE_C_COMPILER="$cc" \
        "${cmake_prefix[@]}" >/dev/null
    echo "consumers: CMake find_package ($(cache_get "$out/cmake" cfutures_DIR))"
    cmake --build "$out/cmake" --parallel "$jobs" >/dev/null
    "${run[@]}" "$out/cmake/consumer"
    "$out/cmake/consumer_static"
    if ! needs_shared_lib "$out/cmake/consumer"; then
        echo "consumers: cfutures::cfutures did not link libcfutures.so" >&2
        return 1
    fi
    if needs_shared_lib "$out/cmake/consumer_static"; then
        echo "consumers: consumer_static is linked to libcfutures.so" >&2
        return 1
    fi
    if [ -x "$out/cmake/consumer_mpi" ]; then
        echo "consumers: cfutures::cfutures_mpi"
        "$out/cmake/consumer_mpi"
    elif [ -n "$require_mpi_consumer" ]; then
        echo "consumers: find_package offered no cfutures::cfutures_mpi" >&2
        return 1
    fi
}
require_mpi_consumer=

# ---- the Debian packages ----------------------------------------------------

# Root, or sudo, for apt and dpkg.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# The packages built in build/deb (no debug symbols), by file and by name.
built_debs() {
    local f
    for f in build/deb/*.deb; do
        case "$f" in *-dbgsym_*) ;; *) echo "$f" ;; esac
    done
}
built_packages() {
    local f
    for f in $(built_debs); do dpkg-deb -f "$f" Package; done
}

remove_packages() {
    # shellcheck disable=SC2046 # a list of package names
    as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq \
        -o DPkg::Lock::Timeout=600 $(built_packages) >/dev/null
}

packages_test() {
    DEB_BUILD_OPTIONS="nocheck parallel=$jobs" scripts/deb.sh
    local -a debs
    mapfile -t debs < <(built_debs)
    echo "packages: installing ${debs[*]##*/}"
    # The machine is left as it was: the packages go again at the end,
    # also when a check fails.
    trap 'rc=$?; remove_packages; (exit "$rc"); on_exit' EXIT
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o DPkg::Lock::Timeout=600 \
        -o Dpkg::Use-Pty=0 "${debs[@]/#/./}" >/dev/null

    # The consumers find the packaged files, and those alone.
    local pc cfg f
    pc=$(env -u PKG_CONFIG_PATH pkg-config --path cfutures)
    dpkg -S "$pc" | grep -q '^libcfutures-dev:' || {
        echo "packages: pkg-config found $pc, not libcfutures-dev's" >&2
        return 1
    }
    require_mpi_consumer=1
    consumers build/deb/consumers gcc
    require_mpi_consumer=
    cfg=$(cache_get build/deb/consumers/cmake cfutures_DIR)
    dpkg -S "$cfg/cfuturesConfig.cmake" | grep -q '^libcfutures-dev:' || {
        echo "packages: find_package found $cfg, not libcfutures-dev's" >&2
        return 1
    }

    echo "packages: the installed cfutures demo --quick, and the man pages"
    [ "$(command -v cfutures)" = /usr/bin/cfutures ]
    (cd / && /usr/bin/cfutures demo --quick) | tail -n 2
    local page
    for page in cfutures:man1/cfutures.1.gz libcfutures-dev:man3/cfutures.3.gz; do
        f=$(dpkg -L "${page%%:*}" | grep "/${page#*:}\$") || {
            echo "packages: ${page%%:*} has no ${page#*:}" >&2
            return 1
        }
        # (a system that excludes man pages from installs has none on disk)
        [ ! -e "$f" ] || man -l "$f" >/dev/null
    done

    remove_packages
    trap on_exit EXIT
    echo "packages: removed again"
}

# Whether the tools of a stage are here. With --no-deps a stage whose tools
# are missing is skipped; after the install scripts ran, it is an error.
have() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 && continue
        if [ "$deps" = 1 ]; then
            echo "test.sh: $t is missing after scripts/install-pkg-deps.sh" >&2
            exit 1
        fi
        echo "test.sh: skipping a stage: $t is not installed" \
            "(scripts/install-pkg-deps.sh installs it)"
        return 1
    done
}

# ---- every combination of the build options configures --------------------

# matrix_one SPEC: configures build/matrix/SPEC, where SPEC is
# TESTS,EXAMPLES,BENCH,TOOLS,MPI,SANITIZER (ON/OFF, and none/thread/address).
matrix_one() {
    local spec=$1 dir=build/matrix/$1 t e b o m san
    IFS=, read -r t e b o m san <<<"$spec"
    rm -rf "$dir"
    if ! cmake -S . -B "$dir" -DCF_WERROR=ON -DCF_BUILD_TESTS="$t" \
        -DCF_BUILD_EXAMPLES="$e" -DCF_BUILD_BENCH="$b" -DCF_BUILD_TOOLS="$o" \
        -DCF_WITH_MPI="$m" -DCF_SANITIZE="${san#none}" >"$dir.log" 2>&1; then
        echo "matrix: configuring $spec failed (tests,examples,bench,tools,mpi,sanitizer):" >&2
        tail -n 20 "$dir.log" >&2
        return 1
    fi
}

configure_matrix() {
    local -a specs=()
    local t e b o m
    for t in ON OFF; do for e in ON OFF; do for b in ON OFF; do
        for o in ON OFF; do for m in ON OFF; do
            specs+=("$t,$e,$b,$o,$m,none")
        done; done
    done; done; done
    specs+=("ON,ON,OFF,ON,OFF,thread" "ON,ON,OFF,ON,ON,address")
    rm -rf build/matrix
    mkdir -p build/matrix
    export -f matrix_one
    printf '%s\n' "${specs[@]}" | xargs -P "$jobs" -I{} bash -c 'matrix_one {}'
    echo "matrix: ${#specs[@]} combinations configure"
    # The cheapest builds: the library alone, and the tests without the
    # cfutures program (test_cli is left out).
    build build/matrix/OFF,OFF,OFF,OFF,OFF,none >/dev/null
    build build/matrix/ON,OFF,OFF,OFF,OFF,none >/dev/null
    echo "matrix: the library alone and the tests without the tools build"
}

# ---- benchmarks: built and run once, small, so that they cannot rot. They
# assert nothing about speed (that is what scripts/bench.sh is for).

bench_deps() {
    scripts/install-bench-deps.sh
    bench/cli/install.sh
}

bench_smoke() {
    local out
    out=$(mktemp -d)
    scripts/bench.sh --quick --out "$out"
    rm -rf "$out"
}

# ---- the run --------------------------------------------------------------

if [ "$deps" = 1 ]; then
    stage deps "tools (scripts/install-deps.sh)" scripts/install-deps.sh
    stage mpi-deps "Open MPI, MPICH and mpi4py (scripts/install-mpi.sh)" \
        scripts/install-mpi.sh
    stage pkg-deps "packaging tools (scripts/install-pkg-deps.sh)" \
        scripts/install-pkg-deps.sh
    stage bench-deps "benchmark peers (scripts/install-bench-deps.sh, bench/cli/install.sh)" \
        bench_deps
fi
if [ "$quick" = 0 ]; then
    if have clang-format; then
        stage format "every tracked C file matches .clang-format (scripts/format.sh check)" \
            scripts/format.sh check
    fi
    stage matrix "every build option combination configures" configure_matrix
fi
stage gcc "gcc -Werror build and ctest in build/gcc" plain gcc gcc
if [ "$quick" = 0 ]; then
    if have abidw abidiff; then
        stage abi "libcfutures.so against abi/libcfutures.abi (scripts/abi.sh check)" \
            scripts/abi.sh check build/gcc
    fi
    stage clang "clang -Werror build and ctest in build/clang" \
        plain clang clang
    stage mpich "the MPI tests against MPICH in build/mpich" mpich_tests
    stage tsan "clang -DCF_SANITIZE=thread build and ctest in build/tsan" \
        sanitized thread clang
    stage asan "gcc -DCF_SANITIZE=address (ASan+UBSan+LSan) build and ctest" \
        sanitized address gcc
    stage install "cmake --install, consumers (tests/install), uninstall" \
        install_test
    if have dpkg-buildpackage dh lintian; then
        stage packages "Debian packages: build, lintian, install, consumers, remove" \
            packages_test
    fi
    stage bench "every benchmark once against its peers, small sizes (scripts/bench.sh --quick)" \
        bench_smoke
fi

printf '\n=== all stages passed in %ss\n' "$(elapsed "$t_start")"
printf '    %s\n' "${summary[@]}"
