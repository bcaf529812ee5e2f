# SPDX-License-Identifier: MIT
# cmake/uninstall.cmake - the `uninstall` target's script:
#   cmake -DCF_MANIFEST=<build>/install_manifest.txt -P cmake/uninstall.cmake
# Removes every file (or link) that `cmake --install` listed in the
# manifest, honouring $DESTDIR as the install did, then the directories of
# our own that this left empty (those named cfutures, such as
# include/cfutures and lib/cmake/cfutures); shared directories such as
# lib/pkgconfig stay. A file already gone is reported, not an error.

if(NOT DEFINED CF_MANIFEST OR NOT EXISTS "${CF_MANIFEST}")
  message(FATAL_ERROR "uninstall: no ${CF_MANIFEST}: nothing was installed from this build directory")
endif()
file(STRINGS "${CF_MANIFEST}" cf_files)
set(cf_dirs)
foreach(f IN LISTS cf_files)
  set(path "$ENV{DESTDIR}${f}")
  if(IS_SYMLINK "${path}" OR EXISTS "${path}")
    message(STATUS "Removing ${path}")
    file(REMOVE "${path}")
    if(IS_SYMLINK "${path}" OR EXISTS "${path}")
      message(FATAL_ERROR "uninstall: could not remove ${path}")
    endif()
  else()
    message(STATUS "Already gone: ${path}")
  endif()
  get_filename_component(dir "${path}" DIRECTORY)
  list(APPEND cf_dirs "${dir}")
endforeach()
list(REMOVE_DUPLICATES cf_dirs)
foreach(dir IN LISTS cf_dirs)
  get_filename_component(name "${dir}" NAME)
  file(GLOB left "${dir}/*")
  if(name STREQUAL "cfutures" AND IS_DIRECTORY "${dir}" AND NOT left)
    file(REMOVE_RECURSE "${dir}")
  endif()
endforeach()
