#!/usr/bin/env bash
# The project's test command. From a fresh clone it installs what is missing
# (scripts/install-deps.sh; Open MPI with mpi4py: scripts/install-mpi.sh; the
# benchmark peers: scripts/install-bench-deps.sh, bench/cli/install.sh),
# then, stopping at the first failure (the MPI executor's tests, ctest -R mpi,
# run under mpiexec in every stage but tsan):
#   gcc    RelWithDebInfo -Werror build, whole ctest suite      (build/gcc)
#   clang  RelWithDebInfo -Werror build, whole ctest suite      (build/clang)
#   mpich  the MPI executor's tests built against MPICH          (build/mpich)
#          (-DCF_MPI_IMPL=mpich: mpicc.mpich, mpiexec.mpich), ctest -R mpi
#   tsan   clang -DCF_SANITIZE=thread, whole ctest suite        (build/tsan)
#   asan   gcc -DCF_SANITIZE=address (ASan+UBSan+LSan), suite   (build/asan)
#   install  cmake --install into a temporary prefix, then build and run
#          tests/install/consumer.c against it with pkg-config (shared and
#          static) and as a CMake project (find_package, shared and static)
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
#   --no-deps  do not run scripts/install-deps.sh nor scripts/install-mpi.sh
#              (then the MPI tests run only if MPI is installed already)
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
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
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

# A plain build with compiler CC in build/NAME, and its test suite.
plain() {
    local name=$1 cc=$2
    configure "build/$name" "$cc"
    build "build/$name"
    ctest --test-dir "build/$name" "${ctest_args[@]}"
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
    configure "$dir" "$cc" -DCF_SANITIZE="$kind" -DCF_BUILD_BENCH=OFF
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
        --target test_mpi_pool example_engines mpi_partition
    ctest --test-dir build/mpich "${ctest_args[@]}" \
        -R '^(mpi_pool_|mpi_multihost|mpi_partition|example_engines_mpi)'
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
    for f in include/cfutures.h "$libdir"/libcfutures.a \
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

    local src=$root/tests/install
    local out=$work/out
    mkdir -p "$out"
    export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
    local cc
    cc=$(cache_get "$build" CMAKE_C_COMPILER)

    echo "install: pkg-config, shared"
    # shellcheck disable=SC2046 # pkg-config output is a list of words
    "$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$out/pc-shared" \
        $(pkg-config --cflags --libs cfutures)
    LD_LIBRARY_PATH=$prefix/$libdir "$out/pc-shared"
    if ! needs_shared_lib "$out/pc-shared"; then
        echo "install: pc-shared is not linked to libcfutures.so" >&2
        return 1
    fi

    echo "install: pkg-config --static"
    # --static adds Libs.private; -l:libcfutures.a picks the archive over
    # the shared library that sits beside it.
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$out/pc-static" \
        $(pkg-config --cflags --static --libs cfutures |
            sed 's/-lcfutures\b/-l:libcfutures.a/')
    "$out/pc-static"
    if needs_shared_lib "$out/pc-static"; then
        echo "install: pc-static is linked to libcfutures.so" >&2
        return 1
    fi

    echo "install: CMake find_package (cfutures::cfutures, cfutures::cfutures_static)"
    cmake -S "$src" -B "$out/cmake" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$out/cmake" --parallel "$jobs" >/dev/null
    "$out/cmake/consumer"
    "$out/cmake/consumer_static"
    if ! needs_shared_lib "$out/cmake/consumer"; then
        echo "install: cfutures::cfutures did not link libcfutures.so" >&2
        return 1
    fi
    if needs_shared_lib "$out/cmake/consumer_static"; then
        echo "install: consumer_static is linked to libcfutures.so" >&2
        return 1
    fi
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
    stage bench-deps "benchmark peers (scripts/install-bench-deps.sh, bench/cli/install.sh)" \
        bench_deps
fi
stage gcc "gcc -Werror build and ctest in build/gcc" plain gcc gcc
if [ "$quick" = 0 ]; then
    stage clang "clang -Werror build and ctest in build/clang" \
        plain clang clang
    stage mpich "the MPI tests against MPICH in build/mpich" mpich_tests
    stage tsan "clang -DCF_SANITIZE=thread build and ctest in build/tsan" \
        sanitized thread clang
    stage asan "gcc -DCF_SANITIZE=address (ASan+UBSan+LSan) build and ctest" \
        sanitized address gcc
    stage install "cmake --install, then consumers (tests/install)" \
        install_test
    stage bench "every benchmark once against its peers, small sizes (scripts/bench.sh --quick)" \
        bench_smoke
fi

printf '\n=== all stages passed in %ss\n' "$(elapsed "$t_start")"
printf '    %s\n' "${summary[@]}"
