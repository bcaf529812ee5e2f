/* SPDX-License-Identifier: MIT */
/*
 * options.c - the checks shared by the pool constructors (thread, process
 * and MPI pools) on a cf_options.
 *
 * cf_options grows without an ABI break: a new field is carved from the
 * front of reserved_, so sizeof(cf_options) and every older field's offset
 * stay the same. A program built against an older header zeroed those
 * bytes, and zero is each new field's default, so it keeps the behaviour it
 * was built for. A program built against a newer header that sets a field
 * this library does not know finds a non-zero reserved byte here: the
 * constructor fails with EINVAL instead of silently ignoring the setting.
 */
#include "executor.h"

#include <errno.h>
#include <math.h>

bool cf__options_valid(const cf_options *opts)
{
    if (opts == NULL)
        return true;
    /* Seconds with 0 meaning never: NaN and negative values are errors
     * (not "forever", as for a wait), whichever pool reads them. */
    bool ok = opts->max_workers >= 0 && !isnan(opts->idle_timeout) &&
              opts->idle_timeout >= 0 && !isnan(opts->task_timeout) &&
              opts->task_timeout >= 0;
    for (size_t i = 0; i < sizeof opts->reserved_ / sizeof opts->reserved_[0];
         i++)
        ok = ok && opts->reserved_[i] == 0;
    if (!ok)
        errno = EINVAL;
    return ok;
}
