/* SPDX-License-Identifier: MIT */
/*
 * spawn_floor.c - the least any command runner can do per job, for
 * bench/cli/run_bench.sh: run `CMD INPUT` for each line of standard input,
 * J at once, with posix_spawnp and waitpid(-1) and nothing else (no
 * capture, no log, no bar). Its time is the floor: what starting, running
 * and reaping the processes costs. The benchmark counts each tool's time
 * beyond it as the tool's overhead.
 *
 * Usage: spawn_floor J CMD   (the inputs on standard input, one per line)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

/* Waits for one child; 0 when it exited with 0. */
static int reap(void)
{
    int st;
    while (waitpid(-1, &st, 0) < 0)
        if (errno != EINTR)
            return 1;
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[1]) < 1) {
        fprintf(stderr, "usage: spawn_floor J CMD < inputs\n");
        return 2;
    }
    int jobs = atoi(argv[1]), running = 0, failed = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (running == jobs) {
            failed += reap();
            running--;
        }
        char *args[] = { argv[2], line, NULL };
        pid_t pid;
        int rc = posix_spawnp(&pid, argv[2], NULL, NULL, args, environ);
        if (rc != 0) {
            fprintf(stderr, "spawn_floor: %s: %s\n", argv[2], strerror(rc));
            failed++;
            continue;
        }
        running++;
    }
    while (running-- > 0)
        failed += reap();
    free(line);
    return failed ? 1 : 0;
}
