/* SPDX-License-Identifier: MIT */
/*
 * fnid.h - naming a function so that another process running the same
 * program can find it: the module that holds it (the main program, or a
 * shared library by path) and its offset in that module. Address-space
 * randomisation moves modules, not offsets, so the pair is stable across
 * processes; no registration of task functions is needed.
 */
#ifndef CF_FNID_H
#define CF_FNID_H

#include "internal.h"

/* Names fn: *module is "" for the main program, else the library's path
 * (owned by the loader: valid while it stays loaded). 0, or CF_EINVAL when
 * fn is in no loaded module. */
int cf__fnid_of(const void *fn, const char **module, uint64_t *offset);

/* Finds the function named (module, offset) in this process, loading the
 * library if it is not loaded yet. NULL if it cannot. */
void *cf__fnid_resolve(const char *module, uint64_t offset);

#endif /* CF_FNID_H */
