# SPDX-License-Identifier: MIT
# cmake/mpi.cmake - the MPI executor, included from the root CMakeLists.txt.
#
#   cfutures_mpi          static library: src/mpi/ (root.c the root's side,
#                         rank.c the serving side; the core library's glob
#                         leaves the folder out, so it never needs MPI);
#                         links cfutures_static and MPI::MPI_C and defines
#                         CFUTURES_HAVE_MPI for its users
#   test_mpi_pool         tests/mpi, run by ctest under mpiexec with 3 ranks
#                         (mpi_pool_n3, and mpi_pool_n3_slow for the cases
#                         that mostly wait) and 1 rank (mpi_pool_n1,
#                         mpi_pool_n1_slow), and on
#                         three namespace "hosts" (mpi_multihost, with
#                         examples/engines; mpi_partition with
#                         tests/mpi/mpi_partition.c)
#   example_engines       examples/engines.c: one program, the engine picked
#                         by argv[1] (threads | processes | mpi |
#                         mpi-spawn); built with or without MPI, its mpi
#                         branches only with it (ctest runs them all)
#   bench_mpi             bench/mpi (bench/mpi/run.sh runs it beside
#                         mpi4py.futures; bench/mpi/hosts.sh across
#                         namespace hosts, with bench_mpi_relay, relay.c,
#                         for the delay)
#
# Built when MPI is found (find_package(MPI COMPONENTS C)) and CF_WITH_MPI
# is on. CF_WITH_MPI is off by default in ThreadSanitizer builds on Open
# MPI: it and its libevent are not instrumented, and TSan reports lock-order
# inversions and double locks inside them (mca_btl_tcp, libevent) that say
# nothing about cfutures. On MPICH (CF_MPI_IMPL=mpich) TSan builds keep it:
# scripts/test.sh's tsan stage runs the MPI tests there. AddressSanitizer
# builds keep it, with
# tests/mpi/lsan.supp for what Open MPI keeps until exit (full unwinding,
# so that the suppressions see the library frames).
# mpiexec gets the flags this machine needs: with Open MPI --oversubscribe
# (more ranks than cores) and --allow-run-as-root; MPICH's needs none.
# -DCF_MPI_IMPL=openmpi|mpich picks one of several installed MPIs (below).

if(CF_SANITIZE STREQUAL "thread" AND NOT CF_MPI_IMPL STREQUAL "mpich")
  set(CF_WITH_MPI_DEFAULT OFF)
else()
  set(CF_WITH_MPI_DEFAULT ON)
endif()
option(CF_WITH_MPI "Build the MPI executor (cfutures_mpi) when MPI is found" ${CF_WITH_MPI_DEFAULT})

# CF_REQUIRE_MPI makes a missing MPI an error instead of a skip, so that a
# test run that means to test the MPI executor cannot pass without it.
option(CF_REQUIRE_MPI "Fail the configure when CF_WITH_MPI is on and MPI is not found" OFF)

# CF_MPI_IMPL picks the MPI implementation where several are installed side
# by side, as Debian's Open MPI and MPICH packages are: empty (the default)
# takes the system's mpicc and mpiexec (update-alternatives: Open MPI when
# both are there), "openmpi" or "mpich" take mpicc.<impl> and
# mpiexec.<impl>. Changing it in a configured build directory forgets what
# FindMPI had cached, so that nothing of the other implementation remains.
set(CF_MPI_IMPL "" CACHE STRING "MPI implementation: empty (the system default), openmpi or mpich")
set_property(CACHE CF_MPI_IMPL PROPERTY STRINGS "" openmpi mpich)
if(NOT CF_MPI_IMPL MATCHES "^(|openmpi|mpich)$")
  message(FATAL_ERROR "CF_MPI_IMPL is '${CF_MPI_IMPL}': empty, openmpi or mpich")
endif()
if(DEFINED cf_mpi_impl_used AND NOT cf_mpi_impl_used STREQUAL CF_MPI_IMPL)
  get_cmake_property(cf_cached CACHE_VARIABLES)
  foreach(var IN LISTS cf_cached)
    if(var MATCHES "^(MPI_|MPIEXEC_)")
      unset(${var} CACHE)
    endif()
  endforeach()
endif()
set(cf_mpi_impl_used "${CF_MPI_IMPL}" CACHE INTERNAL "CF_MPI_IMPL at the last configure")
if(CF_MPI_IMPL AND CF_WITH_MPI)
  find_program(MPI_C_COMPILER NAMES mpicc.${CF_MPI_IMPL})
  find_program(MPIEXEC_EXECUTABLE NAMES mpiexec.${CF_MPI_IMPL})
  if(NOT MPI_C_COMPILER OR NOT MPIEXEC_EXECUTABLE)
    message(FATAL_ERROR "CF_MPI_IMPL=${CF_MPI_IMPL}: no mpicc.${CF_MPI_IMPL} or "
            "mpiexec.${CF_MPI_IMPL} (scripts/install-mpi.sh installs both implementations)")
  endif()
endif()

set(cf_mpi_found OFF)
if(CF_WITH_MPI)
  find_package(MPI COMPONENTS C)
  if(MPI_C_FOUND)
    set(cf_mpi_found ON)
  elseif(CF_REQUIRE_MPI)
    message(FATAL_ERROR "CF_REQUIRE_MPI: MPI not found (scripts/install-mpi.sh installs Open MPI)")
  endif()
endif()
if(cf_mpi_found)
  message(STATUS "cfutures: MPI executor on (MPI ${MPI_C_VERSION}, ${MPIEXEC_EXECUTABLE})")
else()
  message(STATUS "cfutures: MPI executor off (CF_WITH_MPI=${CF_WITH_MPI}; MPI found: ${MPI_C_FOUND})")
endif()

# ---- the library -----------------------------------------------------------
if(cf_mpi_found)
  add_library(cfutures_mpi STATIC ${PROJECT_SOURCE_DIR}/src/mpi/root.c
            ${PROJECT_SOURCE_DIR}/src/mpi/rank.c)
  target_compile_options(cfutures_mpi PRIVATE ${CF_WARNINGS})
  target_compile_definitions(cfutures_mpi PRIVATE _GNU_SOURCE CF_BUILDING
                             INTERFACE CFUTURES_HAVE_MPI)
  target_include_directories(cfutures_mpi
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(cfutures_mpi PUBLIC cfutures_static MPI::MPI_C)
  # MPICH defines MPI_STATUSES_IGNORE as (MPI_Status *)1, and gcc 11 and
  # later then warn that MPI_Waitall writes n statuses into an object of
  # size 0 (-Wstringop-overflow), which it never does with that value.
  if(CMAKE_C_COMPILER_ID STREQUAL "GNU" AND MPI_C_LIBRARIES MATCHES "mpich")
    target_compile_options(cfutures_mpi PRIVATE -Wno-stringop-overflow)
  endif()
  add_library(cfutures::cfutures_mpi ALIAS cfutures_mpi)
  install(TARGETS cfutures_mpi EXPORT cfuturesMpiTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  # find_package(cfutures) then offers cfutures::cfutures_mpi (it finds MPI
  # itself: cfuturesConfig.cmake).
  install(EXPORT cfuturesMpiTargets NAMESPACE cfutures::
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cfutures)

  # mpiexec and the flags it needs here.
  set(CF_MPIEXEC_FLAGS "")
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version
                  OUTPUT_VARIABLE cf_mpiexec_version ERROR_VARIABLE cf_mpiexec_version
                  RESULT_VARIABLE cf_mpiexec_rc)
  if(cf_mpiexec_version MATCHES "Open MPI|OpenRTE")
    list(APPEND CF_MPIEXEC_FLAGS --oversubscribe --allow-run-as-root
         --mca mpi_yield_when_idle 1)
  endif()
  set(CF_MPIEXEC_FLAGS "${CF_MPIEXEC_FLAGS}" CACHE STRING "Extra mpiexec flags for the MPI tests" FORCE)

  # cf_mpi_test(NAME NP COMMAND...): a ctest test run by mpiexec on NP ranks.
  function(cf_mpi_test name np)
    add_test(NAME ${name} COMMAND ${MPIEXEC_EXECUTABLE} ${CF_MPIEXEC_FLAGS}
             ${MPIEXEC_NUMPROC_FLAG} ${np} ${MPIEXEC_PREFLAGS} ${ARGN} ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${CF_TEST_TIMEOUT} PROCESSORS ${np})
    if(CF_SANITIZE STREQUAL "address")
      set_tests_properties(${name} PROPERTIES ENVIRONMENT
        "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp:fast_unwind_on_malloc=0")
    endif()
  endfunction()
endif()

# ---- tests -------------------------------------------------------------------
if(cf_mpi_found AND CF_BUILD_TESTS)
  add_executable(test_mpi_pool ${PROJECT_SOURCE_DIR}/tests/mpi/test_mpi_pool.c)
  target_compile_options(test_mpi_pool PRIVATE ${CF_WARNINGS})
  target_compile_definitions(test_mpi_pool PRIVATE _GNU_SOURCE)
  target_include_directories(test_mpi_pool PRIVATE ${PROJECT_SOURCE_DIR}/src
                             ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(test_mpi_pool PRIVATE cfutures_mpi m)
  # The cases that mostly wait out a time limit (--slow) run as tests of
  # their own that take one CPU, beside the others.
  foreach(np 3 1)
    cf_mpi_test(mpi_pool_n${np} ${np} $<TARGET_FILE:test_mpi_pool> --quick)
    cf_mpi_test(mpi_pool_n${np}_slow ${np} $<TARGET_FILE:test_mpi_pool> --slow)
    set_tests_properties(mpi_pool_n${np}_slow PROPERTIES PROCESSORS 1)
  endforeach()

  # The partition test's workload (tests/mpi/multihost.sh partition).
  add_executable(mpi_partition ${PROJECT_SOURCE_DIR}/tests/mpi/mpi_partition.c)
  target_compile_options(mpi_partition PRIVATE ${CF_WARNINGS})
  target_link_libraries(mpi_partition PRIVATE cfutures_mpi)
endif()

# ---- the example that runs on every engine -----------------------------------
if(CF_BUILD_EXAMPLES AND EXISTS ${PROJECT_SOURCE_DIR}/examples/engines.c)
  add_executable(example_engines ${PROJECT_SOURCE_DIR}/examples/engines.c)
  set_target_properties(example_engines PROPERTIES OUTPUT_NAME engines)
  target_compile_options(example_engines PRIVATE ${CF_WARNINGS})
  if(cf_mpi_found)
    target_link_libraries(example_engines PRIVATE cfutures_mpi)
  else()
    target_link_libraries(example_engines PRIVATE cfutures_static)
  endif()
  if(CF_BUILD_TESTS)
    foreach(engine threads processes)
      add_test(NAME example_engines_${engine} COMMAND example_engines ${engine} --quick)
      set_tests_properties(example_engines_${engine} PROPERTIES TIMEOUT 120)
    endforeach()
    if(cf_mpi_found)
      cf_mpi_test(example_engines_mpi 3 $<TARGET_FILE:example_engines> mpi --quick)
      cf_mpi_test(example_engines_mpi_spawn 1 $<TARGET_FILE:example_engines> mpi-spawn --quick)
      # MPICH 4.0 (Debian 12's 4.0.2, ch4:ucx) fails every MPI_Comm_spawn,
      # even a minimal program's, before it asks Hydra to start anything:
      # ctest lists the test as not run (disabled) there.
      if(cf_mpiexec_version MATCHES "HYDRA" AND cf_mpiexec_version MATCHES "Version: +4\\.0\\.")
        set_tests_properties(example_engines_mpi_spawn PROPERTIES DISABLED ON)
      endif()
    endif()
  endif()
endif()

# ---- the watchdog (tests/mpi/stall.sh) ---------------------------------------
# mpi_stall: a worker rank stopped with SIGSTOP ends the job within 15 s,
# naming the rank. Not in sanitizer builds: the job ends in MPI_Abort,
# which leaves every rank's memory to the sanitizers' leak reports.
if(cf_mpi_found AND CF_BUILD_TESTS)
  add_executable(mpi_stall ${PROJECT_SOURCE_DIR}/tests/mpi/mpi_stall.c)
  target_compile_options(mpi_stall PRIVATE ${CF_WARNINGS})
  target_link_libraries(mpi_stall PRIVATE cfutures_mpi)
  if(NOT CF_SANITIZE)
    add_test(NAME mpi_stall
             COMMAND ${PROJECT_SOURCE_DIR}/tests/mpi/stall.sh $<TARGET_FILE:mpi_stall>
                     ${MPIEXEC_EXECUTABLE} ${CF_MPIEXEC_FLAGS})
    set_tests_properties(mpi_stall PROPERTIES TIMEOUT 120 PROCESSORS 3)
  endif()
endif()

# ---- across hosts: network namespaces (tests/mpi/multihost.sh) ---------------
# mpi_multihost: test_mpi_pool and the engines example on three "hosts"
# (namespaces on a bridge of their own), one and two ranks per host, TCP
# only. mpi_partition: a host's link cut mid-run is reported within 15 s
# and the job ends with an error.
# Both need root and ip netns, and report "skipped" (exit 77) without them;
# they run alone (RUN_SERIAL), since they start up to six ranks each.
# Not in sanitizer builds: they test placement and the network, not memory.
if(cf_mpi_found AND CF_BUILD_TESTS AND CF_BUILD_EXAMPLES AND NOT CF_SANITIZE)
  add_test(NAME mpi_multihost
           COMMAND ${PROJECT_SOURCE_DIR}/tests/mpi/multihost.sh run ${MPIEXEC_EXECUTABLE}
                   $<TARGET_FILE:test_mpi_pool> $<TARGET_FILE:example_engines>)
  add_test(NAME mpi_partition
           COMMAND ${PROJECT_SOURCE_DIR}/tests/mpi/multihost.sh partition ${MPIEXEC_EXECUTABLE}
                   $<TARGET_FILE:mpi_partition>)
  # Each mpirun in them has a time limit of its own (60 s), so that they
  # fail, and clean up, before ctest's limit kills them.
  set_tests_properties(mpi_multihost mpi_partition PROPERTIES
                       RUN_SERIAL ON SKIP_RETURN_CODE 77)
  set_tests_properties(mpi_multihost PROPERTIES TIMEOUT 600)
  set_tests_properties(mpi_partition PROPERTIES TIMEOUT 300)
endif()

# ---- the benchmark -----------------------------------------------------------
if(cf_mpi_found AND CF_BUILD_BENCH AND EXISTS ${PROJECT_SOURCE_DIR}/bench/mpi/cf_mpi_bench.c)
  add_executable(bench_mpi ${PROJECT_SOURCE_DIR}/bench/mpi/cf_mpi_bench.c)
  set_target_properties(bench_mpi PROPERTIES OUTPUT_NAME cf_mpi_bench)
  target_compile_options(bench_mpi PRIVATE ${CF_WARNINGS})
  target_link_libraries(bench_mpi PRIVATE cfutures_mpi m)
  # The delaying frame relay between the namespace hosts of
  # bench/mpi/hosts.sh (Linux only: AF_PACKET).
  add_executable(bench_mpi_relay ${PROJECT_SOURCE_DIR}/bench/mpi/relay.c)
  set_target_properties(bench_mpi_relay PROPERTIES OUTPUT_NAME relay)
  target_compile_options(bench_mpi_relay PRIVATE ${CF_WARNINGS})
endif()
