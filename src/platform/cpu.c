/* SPDX-License-Identifier: MIT */
/*
 * cpu.c - how many CPUs this process may use: the affinity mask first (as
 * os.process_cpu_count in Python 3.13), then the online count.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../internal.h"

#include <sched.h>
#include <unistd.h>

int cf_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
