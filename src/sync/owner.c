/* SPDX-License-Identifier: MIT */
/*
 * owner.c - who owns a lock: the running task, or the thread outside tasks.
 *
 * Inside a task the identity is the address of the task's context (the
 * cf__task_ctx its executor installed for cf_fail): unique among the tasks
 * alive, and different for a task that runs inline within another task's
 * wait (docs/design.md, "The wait protocol"). Outside any task it is the
 * address of a thread-local byte. The two never collide: one lives on a
 * task's stack frame, the other in thread-local storage.
 */
#include "../internal.h"

static _Thread_local char thread_token;

uintptr_t cf__owner_id(void)
{
    cf__task_ctx *task = cf__tls_task;
    return task ? (uintptr_t)task : (uintptr_t)&thread_token;
}
