/* SPDX-License-Identifier: MIT */
/*
 * fnid.c - function identity across processes (fnid.h), by walking the
 * loaded modules with dl_iterate_phdr: a module contains an address when
 * one of its PT_LOAD segments does; its base is dlpi_addr.
 */
#include "fnid.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

typedef struct find_addr {
    uintptr_t addr;
    const char *name;
    uintptr_t base;
    bool found;
} find_addr;

static int by_addr(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    find_addr *q = p;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (q->addr >= lo && q->addr < lo + ph->p_memsz) {
            q->name = info->dlpi_name ? info->dlpi_name : "";
            q->base = info->dlpi_addr;
            q->found = true;
            return 1;
        }
    }
    return 0;
}

int cf__fnid_of(const void *fn, const char **module, uint64_t *offset)
{
    find_addr q = { .addr = (uintptr_t)fn };
    if (!fn || !dl_iterate_phdr(by_addr, &q) || !q.found)
        return CF_EINVAL;
    *module = q.name;
    *offset = (uint64_t)(q.addr - q.base);
    return 0;
}

typedef struct find_name {
    const char *name;
    uintptr_t base;
    bool found;
} find_name;

static int by_name(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    find_name *q = p;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strcmp(name, q->name) != 0)
        return 0;
    q->base = info->dlpi_addr;
    q->found = true;
    return 1;
}

void *cf__fnid_resolve(const char *module, uint64_t offset)
{
    find_name q = { .name = module };
    dl_iterate_phdr(by_name, &q);
    if (!q.found && module[0]) {
        /* Not loaded here yet: load it (it stays loaded). */
        if (!dlopen(module, RTLD_NOW | RTLD_GLOBAL))
            return NULL;
        dl_iterate_phdr(by_name, &q);
    }
    if (!q.found)
        return NULL;
    return (void *)(q.base + (uintptr_t)offset);
}
