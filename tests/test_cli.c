/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c - the `cfutures` program, run for real: the binary that CMake
 * built (CFUTURES_BIN) is started with pipes (or a pseudo-terminal) and its
 * output, exit status, files and children are checked.
 *
 * `cfutures run` (GNU parallel's command line; tests/test_cli_parallel.py
 * compares it with GNU parallel itself): inputs from ::: and from standard
 * input, replacement strings, hostile inputs quoted whatever the quotes
 * around {} (never run as code), also in $(...), backquotes, arithmetic,
 * comments and after escaped quotes, unsupported options, values and
 * replacement strings refused before anything runs, completion order
 * against -k, exit status counts and the cap at 101, --timeout killing
 * the whole process group with GNU parallel's warning (and SIGKILL for a
 * job that ignores SIGTERM), --retries, the job log's columns, --halt,
 * 8 MB outputs kept whole, -k with hundreds of 1 MiB outputs waiting
 * under a small descriptor limit, output lost to a full disk or a full
 * standard output reported with status 255, standard descriptors closed
 * at the start, too few descriptors or processes (jobs wait, never fail
 * or vanish), --joblog on standard output and after a cut line, jobs and
 * what they started killed when cfutures is killed with SIGKILL, a
 * command that does not exist, Ctrl-C (SIGINT to
 * cfutures, and ^C typed on a terminal), and the progress bar drawn and
 * cleared with --bar on a terminal (forkpty) and off one.
 * `cfutures demo --quick` prints its table and --plot writes well-formed
 * SVG; `cfutures bench` reports on a stand-in runner (tests/cli). Every
 * subcommand has --help, and bad options exit 2 with a message.
 */
#include "harness.h"

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pty.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <termios.h>

#ifndef CFUTURES_BIN
#error                                                                         \
    "CMake passes the cfutures program as CFUTURES_BIN (only when it builds it)"
#endif

/* ---- running the program */

typedef struct child {
    pid_t pid;
    int out, err; /* read ends */
} child;

typedef struct result {
    char *out, *err; /* NUL-terminated (they may hold other NULs) */
    size_t out_len, err_len;
    int status; /* exit status, or 128 + the signal that killed it */
    double seconds;
} result;

/* The shell jobs run in (SHELL): /bin/sh but where a case needs bash. */
static const char *child_shell = "/bin/sh";
/* PARALLEL_SHELL for cfutures, or NULL: unset. */
static const char *child_parallel_shell = NULL;
/* Start cfutures with SIGCHLD ignored (exec keeps that). */
static bool child_ignores_sigchld = false;

/* Starts cfutures with args (NULL-terminated, without argv[0]) and input
 * on its standard input (NULL: /dev/null). */
static child start(const char *input, const char *const *args)
{
    int out[2], err[2], in[2];
    CHECK(pipe(out) == 0 && pipe(err) == 0 && pipe(in) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        const char *argv[64] = { "cfutures" };
        for (int i = 0; args[i] && i < 62; i++)
            argv[i + 1] = args[i];
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        if (input == NULL) {
            int null = open("/dev/null", O_RDONLY);
            dup2(null, 0);
        }
        alarm(0);
        if (child_ignores_sigchld)
            signal(SIGCHLD, SIG_IGN);
        /* Jobs run in the same shell wherever the test runs. */
        setenv("SHELL", child_shell, 1);
        if (child_parallel_shell)
            setenv("PARALLEL_SHELL", child_parallel_shell, 1);
        else
            unsetenv("PARALLEL_SHELL");
        execv(CFUTURES_BIN, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input)
        CHECK(write(in[1], input, strlen(input)) == (ssize_t)strlen(input));
    close(in[1]);
    return (child){ pid, out[0], err[0] };
}

/* The room append keeps for len bytes and a NUL: a power of two, so that
 * appending n items costs O(n) (under ASan every realloc copies). */
static size_t room_for(size_t len)
{
    size_t cap = 64;
    while (cap < len + 1)
        cap *= 2;
    return cap;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    if (!*buf || room_for(*len + n) > room_for(*len))
        *buf = realloc(*buf, room_for(*len + n));
    CHECK(*buf != NULL);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Reads both streams to their end and reaps the child. */
static result finish(child c, double t0)
{
    result r = { 0 };
    append(&r.out, &r.out_len, "", 0);
    append(&r.err, &r.err_len, "", 0);
    struct pollfd p[2] = { { c.out, POLLIN, 0 }, { c.err, POLLIN, 0 } };
    static char buf[1 << 16];
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        CHECK(poll(p, 2, -1) >= 0 || errno == EINTR);
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                if (i == 0)
                    append(&r.out, &r.out_len, buf, (size_t)n);
                else
                    append(&r.err, &r.err_len, buf, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
    int st;
    while (waitpid(c.pid, &st, 0) < 0)
        CHECK(errno == EINTR);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.seconds = now_s() - t0;
    return r;
}

static result run_args(const char *input, const char *const *args)
{
    double t0 = now_s();
    return finish(start(input, args), t0);
}

#define RUN(input, ...)                                                        \
    run_args(input, (const char *const[]){ __VA_ARGS__, NULL })

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

static bool contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* Shows the output when a check on it is about to fail. */
#define CHECK_OUT(r, cond)                                                     \
    do {                                                                       \
        if (!(cond))                                                           \
            fprintf(stderr,                                                    \
                    "status %d\n--- stdout:\n%.2000s\n--- stderr:\n"           \
                    "%.2000s\n",                                               \
                    (r).status, (r).out, (r).err);                             \
        CHECK(cond);                                                           \
    } while (0)

/* ---- a scratch folder per case */

typedef struct scratch {
    char dir[64];
} scratch;

static scratch scratch_new(void)
{
    scratch s;
    snprintf(s.dir, sizeof s.dir, "/tmp/cfutures-cli-XXXXXX");
    CHECK(mkdtemp(s.dir) != NULL);
    return s;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void scratch_free(scratch *s)
{
    nftw(s->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* s->dir + "/" + name into buf. */
static const char *in_dir(const scratch *s, const char *name, char *buf,
                          size_t size)
{
    snprintf(buf, size, "%s/%s", s->dir, name);
    return buf;
}

/* The whole file into a new string (the caller frees it). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char *data = NULL;
    size_t len = 0;
    char buf[4096];
    size_t n;
    append(&data, &len, "", 0);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        append(&data, &len, buf, n);
    fclose(f);
    return data;
}

/* True while pid runs (a zombie has finished). */
static bool process_alive(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char state = 0;
    int got = fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
    return got == 1 && state != 'Z' && state != 'X';
}

/* Waits up to `secs` (scaled) for pid to end. */
/* Waits (10 s, scaled) until the file at path holds n lines. */
static void wait_lines(const char *path, int n)
{
    double end = now_s() + 10 * test_scale();
    for (;;) {
        FILE *f = fopen(path, "r");
        int lines = 0, ch;
        while (f && (ch = fgetc(f)) != EOF)
            lines += ch == '\n';
        if (f)
            fclose(f);
        if (lines >= n)
            return;
        CHECK(now_s() < end);
        sleep_s(0.02);
    }
}

static bool process_ends(pid_t pid, double secs)
{
    double end = now_s() + secs * test_scale();
    while (process_alive(pid) && now_s() < end)
        sleep_s(0.01);
    return !process_alive(pid);
}

static int split_tabs(char *line, char **fields, int max);

/* ---- --help and bad options */

static void help_for_each_command(void)
{
    const char *cmds[] = { "run", "demo", "bench" };
    for (int i = 0; i < 3; i++) {
        result r = RUN(NULL, cmds[i], "--help");
        char want[64];
        snprintf(want, sizeof want, "Usage: cfutures %s", cmds[i]);
        CHECK_OUT(r, r.status == 0 && contains(r.out, want));
        CHECK_OUT(r, r.err_len == 0);
        result_free(&r);
    }
    result r = RUN(NULL, "--help");
    CHECK_OUT(r, r.status == 0 && contains(r.out, "Usage: cfutures COMMAND"));
    CHECK_OUT(r, contains(r.out, "demo") && contains(r.out, "bench") &&
                     contains(r.out, "run"));
    result_free(&r);
    r = RUN(NULL, "help", "run");
    CHECK_OUT(r, r.status == 0 && contains(r.out, "Usage: cfutures run"));
    result_free(&r);
}

/* Each command line must fail with status 2, say `what` on stderr and
 * print nothing on stdout. */
static void expect_usage_error(const char *what, const char *const *args)
{
    result r = run_args(NULL, args);
    CHECK_OUT(r, r.status == 2);
    CHECK_OUT(r, r.out_len == 0);
    CHECK_OUT(r, contains(r.err, what));
    CHECK_OUT(r, contains(r.err, "--help"));
    result_free(&r);
}

#define USAGE_ERROR(what, ...)                                                 \
    expect_usage_error(what, (const char *const[]){ __VA_ARGS__, NULL })

static void bad_options_exit_2(void)
{
    expect_usage_error("which command", (const char *const[]){ NULL });
    USAGE_ERROR("unknown command 'frobnicate'", "frobnicate");
    USAGE_ERROR("unknown option '--bogus'", "run", "--bogus", "--", "true");
    USAGE_ERROR("unknown option '-y'", "run", "-y", "--", "true");
    USAGE_ERROR("'-x' (of GNU parallel or xargs) is not supported", "run", "-x",
                "--", "true");
    USAGE_ERROR("'-j' needs a value", "run", "-j");
    USAGE_ERROR("-j wants a number", "run", "-j", "many", "--", "true");
    USAGE_ERROR("-j wants a number", "run", "-j", "1.5", "--", "true");
    USAGE_ERROR("--timeout wants a duration", "run", "--timeout", "-1", "--",
                "true");
    USAGE_ERROR("--timeout wants a duration", "run", "--timeout", "0s", "--",
                "true");
    USAGE_ERROR("--timeout wants a duration", "run", "--timeout", "0.0", "--",
                "true");
    USAGE_ERROR("--timeout wants a duration", "run", "--timeout=nan", "--",
                "true");
    /* Digits and units only, as GNU parallel reads them (strtod alone
     * took these). */
    USAGE_ERROR("--timeout wants a duration", "run", "--timeout", "0x10", "--",
                "true");
    USAGE_ERROR("--timeout wants a duration", "run", "--timeout", "1e1", "--",
                "true");
    USAGE_ERROR("--delay wants a duration", "run", "--delay", " +5", "--",
                "true");
    USAGE_ERROR("--retries wants a number", "run", "--retries", "x", "true");
    USAGE_ERROR("'--keep-order' takes no value", "run", "--keep-order=yes",
                "true");
    USAGE_ERROR("unknown option '--fast'", "demo", "--fast");
    USAGE_ERROR("'--plot' needs a value", "demo", "--plot");
    USAGE_ERROR("unexpected argument 'now'", "demo", "now");
    USAGE_ERROR("--reps wants a count", "bench", "--reps", "0");
    USAGE_ERROR("unknown option '--peers'", "bench", "--peers");
}

/* Whatever cfutures run does not support is an error that names it, and
 * nothing runs: not one job (each would create the marker). */
#define MARK "/tmp/cfutures-cli-refused-marker"
#define REFUSED(what, ...)                                                     \
    do {                                                                       \
        remove(MARK);                                                          \
        USAGE_ERROR(what, "run", __VA_ARGS__, "touch " MARK, ":::", "x");      \
        CHECK(access(MARK, F_OK) != 0);                                        \
    } while (0)

static void unsupported_is_refused_before_anything_runs(void)
{
    REFUSED("--halt wants now|soon", "--halt", "now,fial=1");
    REFUSED("--halt wants now|soon", "--halt", "now,fail=1x");
    REFUSED("--halt wants now|soon", "--halt", "sometime,fail=1");
    REFUSED("unknown option '--halt-on'", "--halt-on", "now,fail=1");
    REFUSED("unknown option '--keep'", "--keep");
    REFUSED("'--plus' (of GNU parallel or xargs) is not supported", "--plus");
    REFUSED("'--sshlogin' (of GNU parallel", "--sshlogin", "host");
    REFUSED("'-S' (of GNU parallel", "-S", "host");
    REFUSED("'-L' (of GNU parallel", "-L", "1");
    REFUSED("'-E' (of GNU parallel", "-E", "eof");
    REFUSED("'--xargs' (of GNU parallel", "--xargs");
    REFUSED("'--header' (of GNU parallel", "--header", ":");
    REFUSED("'--env' (of GNU parallel", "--env", "PATH");
    REFUSED("'--workdir' (of GNU parallel", "--workdir", ".");
    REFUSED("'--rpl' (of GNU parallel", "--rpl", "{x} s/a/b/");
    REFUSED("a percentage of the median", "--timeout", "200%");
    REFUSED("--block only goes with --pipe", "--block", "1M");
    REFUSED("need --joblog", "--resume");
    REFUSED("do not go with -n", "-X", "-n", "2");
    REFUSED("--results: a directory name with replacement", "--results",
            "out/{}");
    REFUSED("--results: a name ending in .csv", "--results", "r.csv");
    REFUSED("--results: a name ending in .csv", "--results", "r.TSV");
    REFUSED("--results: a name ending in .csv", "--results", "d/r.json");
    REFUSED("-d wants a delimiter", "-d", "");
    REFUSED("--colsep: not a regular expression", "--colsep", "[");
    REFUSED("-n wants a number", "-n", "-1");
    remove(MARK);
    USAGE_ERROR("perl expressions", "run", "touch " MARK " {= s/x/y/ =}",
                ":::", "x");
    CHECK(access(MARK, F_OK) != 0);
    USAGE_ERROR("links to the input source before it", "run", "touch " MARK,
                ":::+", "x");
    CHECK(access(MARK, F_OK) != 0);
}

/* ---- cfutures run: inputs and substitution */

/* The lines of text, sorted, joined by '|'. */
static void sorted_lines(const char *text, char *buf, size_t size)
{
    char *lines[256];
    int n = 0;
    char *copy = strdup(text);
    CHECK(copy != NULL);
    for (char *save, *l = strtok_r(copy, "\n", &save); l && n < 256;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && strcmp(lines[k - 1], lines[k]) > 0; k--) {
            char *t = lines[k];
            lines[k] = lines[k - 1];
            lines[k - 1] = t;
        }
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(buf, lines[i], size - strlen(buf) - 1);
        if (i + 1 < n)
            strncat(buf, "|", size - strlen(buf) - 1);
    }
    free(copy);
}

static void runs_each_input(void)
{
    char got[256];
    result r = RUN(NULL, "run", "-j", "3", "--", "echo", "hi", ":::", "a", "b",
                   "c", "d");
    CHECK_OUT(r, r.status == 0 && r.err_len == 0);
    sorted_lines(r.out, got, sizeof got);
    CHECK_OUT(r, strcmp(got, "hi a|hi b|hi c|hi d") == 0);
    result_free(&r);

    /* One input per line of standard input; {} inside words. */
    r = RUN("one\ntwo\n\nthree", "run", "-k", "--", "echo", "+{}+", "x{}x{}");
    CHECK_OUT(r, r.status == 0);
    CHECK_OUT(r, strcmp(r.out, "+one+ xonexone\n+two+ xtwoxtwo\n++ xx\n"
                               "+three+ xthreexthree\n") == 0);
    result_free(&r);

    /* Replacement strings, two sources (every combination, the first
     * slowest), the input as the last argument when there is none. */
    r = RUN(NULL, "run", "-k", "echo", "{1.}", "{1/}", "{1//}", "{2/.}", "{#}",
            ":::", "d/a.txt", "b", ":::", "x/y.z");
    CHECK_OUT(r, r.status == 0 &&
                     strcmp(r.out, "d/a a.txt d y 1\nb b . y 2\n") == 0);
    result_free(&r);
    r = RUN(NULL, "run", "-k", "echo", ":::", "a", "b", ":::", "1", "2");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "a 1\na 2\nb 1\nb 2\n") == 0);
    result_free(&r);
    /* -0: names with newlines stay whole. */
    scratch s = scratch_new();
    char names[128];
    in_dir(&s, "names", names, sizeof names);
    FILE *f = fopen(names, "w");
    CHECK(f != NULL && fwrite("x\ny\0z\0", 1, 6, f) == 6 && fclose(f) == 0);
    r = RUN(NULL, "run", "-k", "-0", "-a", names, "printf", "'[%s]\\n'");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "[x\ny]\n[z]\n") == 0);
    scratch_free(&s);
    result_free(&r);

    /* No inputs at all: nothing to do. */
    r = RUN("", "run", "--", "echo");
    CHECK_OUT(r, r.status == 0 && r.out_len == 0 && r.err_len == 0);
    result_free(&r);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* A NUL byte in input read without -0: as in GNU parallel, it becomes \0
 * and the rest of the record is kept, with three warnings for each record
 * that held one. */
static void nul_in_input_is_kept_with_a_warning(void)
{
    scratch s = scratch_new();
    char names[128];
    in_dir(&s, "names", names, sizeof names);
    FILE *f = fopen(names, "w");
    CHECK(f != NULL && fwrite("a\0b\nc\0d\0e\nf\n", 1, 12, f) == 12 &&
          fclose(f) == 0);
    const char *warn = "A NUL character in the input was replaced with \\0.";
    result r = RUN(NULL, "run", "-k", "-a", names, "printf", "'[%s]\\n'");
    CHECK_OUT(r, r.status == 0 &&
                     strcmp(r.out, "[a\\0b]\n[c\\0d\\0e]\n[f]\n") == 0);
    CHECK_OUT(r, count_of(r.err, warn) == 2);
    CHECK_OUT(r,
              count_of(r.err, "Did you mean to use the --null option?") == 2);
    result_free(&r);
    r = RUN(NULL, "run", "-k", "--colsep", "d", "printf", "'[%s]\\n'", "{2}",
            "{1}", "::::", names);
    CHECK_OUT(r, r.status == 0 &&
                     strcmp(r.out, "[a\\0b]\n[\\0e]\n[c\\0]\n[f]\n") == 0);
    CHECK_OUT(r, count_of(r.err, warn) == 2);
    result_free(&r);
    /* -0: the NUL ends the record, no warning. */
    r = RUN(NULL, "run", "-k", "-0", "-a", names, "echo");
    CHECK_OUT(r, r.status == 0 && r.err_len == 0);
    result_free(&r);
    scratch_free(&s);
}

/* A command word that names an exported bash function runs the function
 * (through the shell), as in GNU parallel, not the program of that name. */
static void exported_function_wins_over_a_program(void)
{
    if (access("/bin/bash", X_OK) != 0) {
        printf("  (no /bin/bash: skipped)\n");
        return;
    }
    child_shell = "/bin/bash";
    setenv("BASH_FUNC_id%%", "() {  echo \"my id $1\"\n}", 1);
    result r = RUN(NULL, "run", "-k", "id", ":::", "a", "b c");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "my id a\nmy id b c\n") == 0);
    result_free(&r);
    unsetenv("BASH_FUNC_id%%");
    child_shell = "/bin/sh";
}

/* A SHELL that cannot run is passed over for /bin/sh (GNU parallel
 * takes the shell it was started from, or /bin/sh); a PARALLEL_SHELL
 * that cannot run is GNU parallel's error, exit 255, before anything
 * runs. */
static void a_shell_that_does_not_exist(void)
{
    const char *missing[] = { "/nonexistent/zsh", "/dev/null", "/tmp" };
    for (int i = 0; i < 3; i++) {
        child_shell = missing[i];
        result r = RUN(NULL, "run", "-k", "echo $0 {}", ":::", "a", "b");
        CHECK_OUT(r, r.status == 0 &&
                         strcmp(r.out, "/bin/sh a\n/bin/sh b\n") == 0 &&
                         r.err_len == 0);
        result_free(&r);
    }
    child_shell = "/bin/sh";
    child_parallel_shell = "/nonexistent/sh";
    result r = RUN(NULL, "run", "echo ran {}", ":::", "a");
    CHECK_OUT(r, r.status == 255 && r.out_len == 0 &&
                     contains(r.err, "Shell '/nonexistent/sh' not found."));
    result_free(&r);
    child_parallel_shell = "sh"; /* found in PATH */
    r = RUN(NULL, "run", "echo $0 {}", ":::", "a");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "sh a\n") == 0);
    result_free(&r);
    child_parallel_shell = NULL;
}

/* --results: DIR/1/VALUE/..., a value too long for a file name cut to
 * the longest one (255 bytes here), byte by byte after the escapes, as
 * GNU parallel does. */
static void results_with_a_long_input(void)
{
    scratch s = scratch_new();
    char dir[128], value[600], path[1024];
    in_dir(&s, "res", dir, sizeof dir);
    /* 300 bytes: 100 two-byte characters, then 50 "b/" (\_ once escaped) */
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(value + n, sizeof value - n, "\xc3\xa9");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(value + n, sizeof value - n, "b/");
    result r =
        RUN(NULL, "run", "-k", "--results", dir, "echo", ":::", value, "x");
    CHECK_OUT(r, r.status == 0);
    long max = pathconf(dir, _PC_NAME_MAX);
    CHECK(max >= 100 && max < 255 + 100);
    /* The escaped value is 350 bytes: the name is its first max bytes. */
    char want[600];
    size_t w = 0;
    for (int i = 0; i < 100; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, "\xc3\xa9");
    for (int i = 0; i < 50; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, "b\\_");
    want[max] = '\0';
    snprintf(path, sizeof path, "%s/1/%s/stdout", dir, want);
    char *text = slurp(path);
    CHECK(strlen(text) == n + 1 && strncmp(text, value, n) == 0);
    free(text);
    snprintf(path, sizeof path, "%s/1/x/seq", dir);
    text = slurp(path);
    CHECK(strcmp(text, "2") == 0);
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* --results takes each job's output whatever else is asked: -u does not
 * send it past the files (they were left empty), and -v writes the
 * command at the top of the stdout file, as GNU parallel does. */
static void results_with_ungroup_and_verbose(void)
{
    scratch s = scratch_new();
    char dir[128], path[256];
    in_dir(&s, "res", dir, sizeof dir);
    result r = RUN(NULL, "run", "-u", "-v", "-j1", "--results", dir,
                   "echo {}; echo e{} >&2", ":::", "a", "b");
    CHECK_OUT(r, r.status == 0 && r.out_len == 0);
    snprintf(path, sizeof path, "%s/1/b/stdout", dir);
    char *text = slurp(path);
    CHECK(strcmp(text, "echo b; echo eb >&2\nb\n") == 0);
    free(text);
    snprintf(path, sizeof path, "%s/1/b/stderr", dir);
    text = slurp(path);
    CHECK(strcmp(text, "eb\n") == 0);
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* --shuf shuffles the inputs before they make jobs, as GNU parallel
 * does: {#} and -k follow the shuffled order. */
static void shuf_numbers_in_shuffled_order(void)
{
    const char *args[40] = { "run", "--shuf", "-k",
                             "-j",  "3",      "echo {#} $PARALLEL_SEQ {}",
                             ":::" };
    char vals[30][8];
    for (int i = 0; i < 30; i++) {
        snprintf(vals[i], sizeof vals[i], "v%d", i + 1);
        args[7 + i] = vals[i];
    }
    result r = run_args(NULL, args);
    CHECK_OUT(r, r.status == 0);
    bool seen[31] = { false }, moved = false;
    int n = 0;
    char *save = NULL;
    for (char *l = strtok_r(r.out, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        int seq = 0, env_seq = 0, v = 0;
        CHECK(sscanf(l, "%d %d v%d", &seq, &env_seq, &v) == 3);
        CHECK_EQ(seq, n + 1); /* -k prints in {#} order */
        CHECK_EQ(env_seq, seq);
        CHECK(v >= 1 && v <= 30 && !seen[v]);
        seen[v] = true;
        moved |= v != seq;
        n++;
    }
    CHECK_EQ(n, 30);
    CHECK(moved); /* 1 in 30! that the order stays */
    result_free(&r);
}

/* -r skips records of only white space as well as empty ones (GNU
 * parallel's \s*); with --pipe those records are left out of the data. */
static void skip_blank_records(void)
{
    result r = RUN("a\n  \n\t\n\n b \n\r\n", "run", "-k", "-r", "echo", "x{}x");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "xax\nx b x\n") == 0);
    result_free(&r);
    r = RUN("a\n  \n\t\n\nb\n", "run", "-k", "--pipe", "-r", "cat");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "a\nb\n") == 0);
    result_free(&r);
    r = RUN(" \n\t\n", "run", "--pipe", "-r", "echo", "ran");
    CHECK_OUT(r, r.status == 0 && r.out_len == 0);
    result_free(&r);
}

/* --tagstring's escapes, as GNU parallel's: \t \n \r and octal ones in
 * the string (not in the values); a NUL or a wide character is refused. */
static void tagstring_escapes(void)
{
    result r = RUN(NULL, "run", "-k", "--tagstring", "{}\\t\\101\\\\t\\x",
                   "printf", "'%s\\n'", "x", ":::", "a\\tb");
    const char *tag = "a\\tb\tA\\\t\\x\t";
    char want[128];
    snprintf(want, sizeof want, "%sx\n%sa\\tb\n", tag, tag);
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, want) == 0);
    result_free(&r);
    /* A backslash before a replacement string stays, and the string is
     * replaced (GNU parallel's tags are no shell text). */
    r = RUN(NULL, "run", "-k", "--tagstring", "\\{}'{#}\\", "echo", "hi",
            ":::", "v");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "\\v'1\\\thi v\n") == 0);
    result_free(&r);
    const char *bad[] = { "x\\0", "\\000", "\\400" };
    for (size_t i = 0; i < 3; i++) {
        r = RUN(NULL, "run", "--tagstring", bad[i], "echo", "ran", ":::", "a");
        CHECK_OUT(r, r.status == 2 && r.out_len == 0 &&
                         contains(r.err, "--tagstring"));
        result_free(&r);
    }
}

/* -n N with more arguments than a command line holds: the jobs take as
 * many as fit, as in GNU parallel and xargs; one input too long for any
 * command is refused before anything runs, with GNU parallel's message
 * and exit status 255. */
static void many_arguments_are_split_to_fit(void)
{
    char *input = NULL;
    size_t len = 0;
    for (int i = 1; i <= 100000; i++) {
        char num[16];
        append(&input, &len, num, (size_t)snprintf(num, sizeof num, "%d\n", i));
    }
    const char *opts[] = { "-n", "-N" };
    for (int o = 0; o < 2; o++) {
        result r = RUN(input, "run", "-k", opts[o], "100000",
                       "printf '%s\\n' {} | wc -l");
        CHECK_OUT(r, r.status == 0);
        long total = 0, jobs = 0;
        for (char *p = r.out; *p; p = strchr(p, '\n') + 1) {
            long n = strtol(p, NULL, 10);
            CHECK_OUT(r, n > 0 && n < 100000);
            total += n;
            jobs++;
        }
        CHECK_OUT(r, total == 100000 && jobs > 1);
        result_free(&r);
    }
    free(input);

    char *in2 = malloc(200004);
    CHECK(in2 != NULL);
    memcpy(in2, "x\n", 2);
    memset(in2 + 2, 'a', 200000);
    memcpy(in2 + 200002, "\n", 2);
    result r = RUN(in2, "run", "echo", "{}");
    CHECK_OUT(r, r.status == 255 && r.out_len == 0 &&
                     contains(r.err, "Command line too long") &&
                     contains(r.err, "at input 2"));
    result_free(&r);
    free(in2);
}

/* The variables GNU parallel sets for each job: PARALLEL_SEQ,
 * PARALLEL_JOBSLOT, PARALLEL_JOBSLOT0, PARALLEL_PID and PARALLEL_TMP (a
 * name of no file, removed after the job). */
static void job_environment(void)
{
    result r = RUN(NULL, "run", "-k", "-j", "1", "--",
                   "test -e \"$PARALLEL_TMP\" && echo exists; "
                   "echo x > \"$PARALLEL_TMP\"; echo $PARALLEL_SEQ "
                   "$PARALLEL_JOBSLOT $PARALLEL_JOBSLOT0 $PARALLEL_PID "
                   "$PARALLEL_TMP {}",
                   ":::", "a", "b");
    CHECK_OUT(r, r.status == 0 && !contains(r.out, "exists"));
    char *save = NULL, *tmps[2] = { 0 };
    long pids[2] = { 0 };
    int n = 0;
    for (char *l = strtok_r(r.out, "\n", &save); l && n < 2;
         l = strtok_r(NULL, "\n", &save), n++) {
        int seq = 0, slot = -1, slot0 = -1;
        char tmp[4096];
        CHECK(sscanf(l, "%d %d %d %ld %4095s", &seq, &slot, &slot0, &pids[n],
                     tmp) == 5);
        CHECK_EQ(seq, n + 1);
        CHECK(slot == 1 && slot0 == 0 && pids[n] > 1);
        const char *base = strrchr(tmp, '/');
        CHECK(base && strncmp(base, "/par", 4) == 0 && strlen(base) == 9);
        CHECK(access(tmp, F_OK) != 0); /* removed after the job */
        tmps[n] = strdup(tmp);
    }
    CHECK_EQ(n, 2);
    CHECK(pids[0] == pids[1] && strcmp(tmps[0], tmps[1]) != 0);
    free(tmps[0]);
    free(tmps[1]);
    result_free(&r);
    /* Each try of a job gets a name of its own, as in GNU parallel (only
     * the last try's output is shown: the names go to a file). */
    scratch s = scratch_new();
    char log[128], cmd[192];
    in_dir(&s, "names", log, sizeof log);
    snprintf(cmd, sizeof cmd, "echo $PARALLEL_TMP >> %s; false", log);
    r = RUN(NULL, "run", "--retries", "3", "--", cmd, ":::", "a");
    CHECK_OUT(r, r.status == 1);
    char *names = slurp(log), *a = strtok_r(names, "\n", &save),
         *b = strtok_r(NULL, "\n", &save), *c = strtok_r(NULL, "\n", &save);
    CHECK(a && b && c && strcmp(a, b) != 0 && strcmp(b, c) != 0 &&
          strcmp(a, c) != 0);
    free(names);
    scratch_free(&s);
    result_free(&r);
}

/* Positional strings are '{' N and the rest of a name that starts with
 * '{', as in GNU parallel: -I @ leaves {1} as text, -I {x} makes {1x}. */
static void positional_follows_the_names(void)
{
    result r = RUN(NULL, "run", "-k", "-I", "@", "echo", "@", "{1}", "{.}",
                   "{#}", ":::", "a.b");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "a.b {1} a 1\n") == 0);
    result_free(&r);
    r = RUN(NULL, "run", "-k", "-I", "{x}", "echo", "{1x}", "{1}", "{1.}",
            ":::", "a.b");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "a.b {1} a\n") == 0);
    result_free(&r);
}

/* --tag prefixes the -v and --dry-run lines too (every line of the
 * command), as in GNU parallel. */
static void tag_on_verbose_and_dry_run(void)
{
    result r =
        RUN(NULL, "run", "-k", "--dry-run", "--tag", "echo", ":::", "a", "b c");
    CHECK_OUT(r, r.status == 0 &&
                     strcmp(r.out, "a\techo a\nb c\techo 'b c'\n") == 0);
    result_free(&r);
    r = RUN("x\ny", "run", "-k", "-v", "--tagstring", "<{}>", "-d", ";",
            "echo {}; echo");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "<x\ny>\techo 'x\n"
                                                "<x\ny>\ty'; echo\n"
                                                "<x\ny>\tx\n"
                                                "<x\ny>\ty\n"
                                                "<x\ny>\t\n") == 0);
    result_free(&r);
}

static void inputs_with_spaces_and_quotes_pass_intact(void)
{
    scratch s = scratch_new();
    char marker[128];
    char evil[512];
    in_dir(&s, "pwned", marker, sizeof marker);
    snprintf(evil, sizeof evil, "$(touch %s); `touch %s` && touch %s", marker,
             marker, marker);
    result r = RUN(NULL, "run", "-k", "--", "printf", "'[%s]\\n'",
                   ":::", "a b  c", "it's \"quoted\"", " lead", "*", evil, "");
    CHECK_OUT(r, r.status == 0);
    char want[2048];
    snprintf(want, sizeof want,
             "[a b  c]\n[it's \"quoted\"]\n[ lead]\n[*]\n[%s]\n[]\n", evil);
    CHECK_OUT(r, strcmp(r.out, want) == 0);
    CHECK(access(marker, F_OK) != 0);
    result_free(&r);
    scratch_free(&s);
}

/* Replacement values are quoted for the shell whatever quotes the
 * command puts around them: no input ever runs as code, is split, or is
 * globbed. */
static void quoted_whatever_the_quotes_around_the_braces(void)
{
    scratch s = scratch_new();
    char marker[128], evil[512], quote[512], dquote[512];
    in_dir(&s, "pwned", marker, sizeof marker);
    snprintf(evil, sizeof evil, "x; touch %s", marker);
    snprintf(quote, sizeof quote, "'; touch %s; echo '", marker);
    snprintf(dquote, sizeof dquote, "\"; touch %s; echo \"", marker);
    remove("pwned");
    remove("PWNED");
    const char *cmds[] = { "printf '<%s>\\n' {} | tr a-z A-Z",
                           "printf '<%s>\\n' \"{}\" | tr a-z A-Z",
                           "printf '<%s>\\n' '{}' | tr a-z A-Z" };
    for (int i = 0; i < 3; i++) {
        result r = RUN(NULL, "run", "-k", "--", cmds[i], ":::", evil, quote,
                       dquote, "$(touch pwned)", "a  b", "*");
        CHECK_OUT(r, r.status == 0);
        CHECK(access(marker, F_OK) != 0);
        CHECK(access("pwned", F_OK) != 0 && access("PWNED", F_OK) != 0);
        if (i == 0) {
            char want[2048];
            snprintf(want, sizeof want,
                     "<X; TOUCH %s>\n<'; TOUCH %s; ECHO '>\n"
                     "<\"; TOUCH %s; ECHO \">\n<$(TOUCH PWNED)>\n<A  B>\n"
                     "<*>\n",
                     marker, marker, marker);
            for (char *p = want; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                    *p = (char)(*p - 'a' + 'A');
            CHECK_OUT(r, strcmp(r.out, want) == 0);
        }
        result_free(&r);
    }
    /* Without a replacement string the input is appended, quoted. */
    result r = RUN(NULL, "run", "--", "echo", "got:", ":::", "$HOME;");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "got: $HOME;\n") == 0);
    result_free(&r);
    scratch_free(&s);
}

/* Replacement strings inside command substitutions ($(...), backquotes),
 * nested quotes, escaped quotes and comments: the quoting context is
 * followed through all of them, so each value comes out as it is and never
 * runs. Inside a here-document, $'...' or ${...} they are refused. */
static void quoted_inside_substitutions_and_escapes(void)
{
    scratch s = scratch_new();
    char mark[128], v1[512], v2[512], v3[512], v4[512], v5[512];
    in_dir(&s, "pwned", mark, sizeof mark);
    snprintf(v1, sizeof v1, "a;touch %s", mark);
    snprintf(v2, sizeof v2, "b';touch %s;'", mark);
    snprintf(v3, sizeof v3, "c$(touch %s)`touch %s`", mark, mark);
    snprintf(v4, sizeof v4, "d\";touch %s;\"\\", mark);
    snprintf(v5, sizeof v5, "e\n;touch %s #", mark);
    const char *vals[] = { v1, v2, v3, v4, v5, "a  b", "*", "\\\\", "" };
    size_t n_vals = sizeof vals / sizeof vals[0];
    static const struct {
        const char *cmd, *pre, *post;
    } cmds[] = {
        { "printf '[%s]\\n' \"$(printf %s {})\"", "[", "]" },
        { "printf '[%s]\\n' \"`printf %s {}`\"", "[", "]" },
        { "printf '[%s]\\n' \"$(printf %s \"{}\")\"", "[", "]" },
        { "printf '[%s]\\n' \"$(printf %s \"$(printf %s '{}')\")\"", "[", "]" },
        { "printf '[%s]\\n' \"$(case x in x) printf %s {};; esac)\"", "[",
          "]" },
        { "printf '[%s]\\n' \"$( (printf %s {}) )\"", "[", "]" },
        { "printf '[%s]\\n' \\\"{}\\\"", "[\"", "\"]" },
        { "printf '[%s]\\n' \\'{}\\'", "['", "']" },
        { "printf '[%s]\\n' \"x\\\"{}\\\"y\"", "[x\"", "\"y]" },
    };
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        const char *args[32] = { "run", "-0",        "-k", "-j1",
                                 "--",  cmds[c].cmd, ":::" };
        for (size_t i = 0; i < n_vals; i++)
            args[7 + i] = vals[i];
        args[7 + n_vals] = NULL;
        result r = run_args(NULL, args);
        char want[4096] = "";
        for (size_t i = 0; i < n_vals; i++) {
            size_t at = strlen(want);
            snprintf(want + at, sizeof want - at, "%s%s%s\n", cmds[c].pre,
                     vals[i], cmds[c].post);
        }
        CHECK_OUT(r, r.status == 0 && strcmp(r.out, want) == 0);
        if (r.status != 0 || strcmp(r.out, want) != 0)
            fprintf(stderr, "  command: %s\n", cmds[c].cmd);
        CHECK(access(mark, F_OK) != 0);
        result_free(&r);
    }
    /* In a comment the value does nothing, whatever lines it holds. */
    result r =
        RUN(NULL, "run", "-0", "-k", "--", "echo hi # {}", ":::", v5, v2);
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "hi\nhi\n") == 0);
    CHECK(access(mark, F_OK) != 0);
    result_free(&r);
    /* Unquoted substitutions: split by the shell, never run. */
    r = RUN(NULL, "run", "-0", "-k", "--",
            "echo $(printf %s {}) `printf %s {}`", ":::", v1, v3, v5);
    CHECK(access(mark, F_OK) != 0);
    result_free(&r);
    /* Arithmetic expands $(...) even inside '...': values are escaped as
     * in "..." there. */
    r = RUN(NULL, "run", "-0", "-k", "--",
            "echo $(({}+1)) \"$(({}))\"; ((1+{})); echo $((1<<{}))", ":::", "2",
            v1, v2, v3);
    CHECK_OUT(r, strncmp(r.out, "3 2\n4\n", 6) == 0);
    CHECK(access(mark, F_OK) != 0);
    result_free(&r);
    remove("PWNED");
    USAGE_ERROR("here-document", "run", "cat <<EOF\n{}\nEOF", ":::", v3);
    USAGE_ERROR("here-document", "run", "cat <<-'X'\n\t{}\n\tX", ":::", v3);
    USAGE_ERROR("$'", "run", "printf %s $'{}'", ":::", v3);
    USAGE_ERROR("${...}", "run", "printf %s \"${U:-{}}\"", ":::", v3);
    USAGE_ERROR("${...}", "run", "printf %s ${U:-{}}", ":::", v3);
    USAGE_ERROR("backslash", "run", "printf %s \\{}", ":::", v3);
    USAGE_ERROR("backslash", "run", "printf %s \"\\{}\"", ":::", v3);
    USAGE_ERROR("backslash", "run", "printf %s \"`echo \\{}`\"", ":::", v3);
    USAGE_ERROR("'{0}'", "run", "printf %s {0}", ":::", v3);
    USAGE_ERROR("'{01}'", "run", "printf %s {01}", ":::", v3);
    USAGE_ERROR("'{-0}'", "run", "printf %s {-0}", ":::", v3);
    CHECK(access(mark, F_OK) != 0);
    /* Text after a here-document is followed as usual. */
    r = RUN(NULL, "run", "-k", "--", "cat <<EOF\nx'\nEOF\necho \"{}\"",
            ":::", v1);
    char want[1024];
    snprintf(want, sizeof want, "x'\n%s\n", v1);
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, want) == 0);
    result_free(&r);
    CHECK(access(mark, F_OK) != 0);
    scratch_free(&s);
}

/* ---- ordering */

static void completion_order_and_keep_order(void)
{
    char d[3][16];
    double step = 0.3 * test_scale();
    for (int i = 0; i < 3; i++)
        snprintf(d[i], sizeof d[i], "%.2f", (2 - i) * step);
    const char *script = "sleep {}; echo {}";
    result r =
        RUN(NULL, "run", "-j", "3", "--", script, ":::", d[0], d[1], d[2]);
    char want[64];
    snprintf(want, sizeof want, "%s\n%s\n%s\n", d[2], d[1], d[0]);
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, want) == 0);
    result_free(&r);

    r = RUN(NULL, "run", "-j", "3", "--keep-order", "--", script, ":::", d[0],
            d[1], d[2]);
    snprintf(want, sizeof want, "%s\n%s\n%s\n", d[0], d[1], d[2]);
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, want) == 0);
    result_free(&r);
}

/* Jobs start in input order, whatever order the pool runs its tasks in:
 * with 2 at once, job i + 2 can only start after job i has (the job log's
 * start times say when each started). */
static void jobs_start_in_input_order(void)
{
    scratch s = scratch_new();
    char log[128];
    in_dir(&s, "log", log, sizeof log);
    char lines[30 * 3 + 1] = "";
    for (int i = 1; i <= 30; i++)
        snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "%d\n",
                 i);
    result r = RUN(lines, "run", "-j", "2", "--joblog", log, "--",
                   "sleep 0.05; true {}");
    CHECK_OUT(r, r.status == 0);
    char *text = slurp(log);
    double start[31] = { 0 };
    int n = 0;
    for (char *save, *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char *f[9];
        if (n++ == 0 || split_tabs(l, f, 9) != 9)
            continue; /* the header */
        int seq = atoi(f[0]);
        CHECK(seq >= 1 && seq <= 30);
        start[seq] = atof(f[2]);
    }
    CHECK_EQ(n, 31);
    for (int i = 1; i + 2 <= 30; i++) {
        if (start[i] > start[i + 2])
            fprintf(stderr, "job %d started at %.3f, job %d at %.3f\n", i,
                    start[i], i + 2, start[i + 2]);
        CHECK(start[i] <= start[i + 2]);
    }
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* ---- exit status */

static void exit_status_counts_failures(void)
{
    result r = RUN(NULL, "run", "--", "exit {}", ":::", "0", "1", "0", "7",
                   "255", "0");
    CHECK_OUT(r, r.status == 3);
    result_free(&r);

    /* 150 failures: the status stops at 101. */
    char lines[2 * 150 + 1] = "";
    for (int i = 0; i < 150; i++)
        strcat(lines, "x\n");
    r = RUN(lines, "run", "-j", "8", "--", "false");
    CHECK_OUT(r, r.status == 101);
    result_free(&r);
}

static void a_command_that_does_not_exist(void)
{
    result r = RUN(NULL, "run", "--joblog", "/dev/null", "--",
                   "/nonexistent/cfutures-test-command", ":::", "a", "b");
    CHECK_OUT(r, r.status == 2);
    CHECK_OUT(r, contains(r.err, "/nonexistent/cfutures-test-command"));
    CHECK_OUT(r, r.out_len == 0);
    result_free(&r);
}

/* ---- timeouts, retries, the job log, halting */

static void timeout_kills_the_process_group(void)
{
    scratch s = scratch_new();
    char pidfile[128];
    in_dir(&s, "bg.pid", pidfile, sizeof pidfile);
    /* --timeout 0: no timeout, as in GNU parallel. */
    result z = RUN(NULL, "run", "-k", "--timeout", "0", "--",
                   "sleep 0.2; echo {}", ":::", "a", "b");
    CHECK_OUT(z,
              z.status == 0 && strcmp(z.out, "a\nb\n") == 0 && z.err_len == 0);
    result_free(&z);
    /* The job starts a background child in its group, then waits. */
    result r =
        RUN(NULL, "run", "--timeout", "0.5", "--",
            "sleep 60 & echo $! > {}; echo started; wait", ":::", pidfile);
    CHECK_OUT(r, r.status == 1);
    CHECK_OUT(r, contains(r.out, "started"));
    /* GNU parallel's warning, with the command. */
    CHECK_OUT(r, contains(r.err, "Warning: This job was killed because it "
                                 "timed out:"));
    CHECK_OUT(r, contains(r.err, "sleep 60 & echo"));
    CHECK_OUT(r, r.seconds < 5 * test_scale());
    char *pid_text = slurp(pidfile);
    pid_t bg = (pid_t)atol(pid_text);
    free(pid_text);
    CHECK(bg > 0);
    CHECK(process_ends(bg, 5));
    result_free(&r);

    /* A job that ignores SIGTERM gets SIGKILL after the grace period. */
    char log[128];
    in_dir(&s, "log", log, sizeof log);
    r = RUN(NULL, "run", "--timeout", "0.3", "--joblog", log, "--",
            "trap '' TERM; sleep 60; echo not-reached {}", ":::", "x");
    CHECK_OUT(r, r.status == 1 && !contains(r.out, "not-reached"));
    CHECK_OUT(r, r.seconds < 8 * test_scale());
    char *text = slurp(log);
    CHECK_OUT(r, contains(text, "\t-1\t9\t"));
    free(text);
    result_free(&r);
    scratch_free(&s);
}

static void retries_until_success(void)
{
    scratch s = scratch_new();
    char counter[128];
    in_dir(&s, "count", counter, sizeof counter);
    /* Fails on the first two attempts, succeeds on the third. */
    const char *script = "n=$(cat {} 2>/dev/null || echo 0); n=$((n+1)); "
                         "echo $n > {}; echo attempt $n; [ $n -ge 3 ]";
    /* --retries 3: three tries in all, as in GNU parallel. */
    result r = RUN(NULL, "run", "--retries", "3", "--", script, ":::", counter);
    CHECK_OUT(r, r.status == 0);
    CHECK_OUT(r, strcmp(r.out, "attempt 3\n") == 0); /* the last attempt's */
    char *n = slurp(counter);
    CHECK(strcmp(n, "3\n") == 0);
    free(n);
    result_free(&r);

    /* Two tries are not enough for a fresh counter: failed. */
    remove(counter);
    r = RUN(NULL, "run", "--retries", "2", "--", script, ":::", counter);
    CHECK_OUT(r, r.status == 1 && strcmp(r.out, "attempt 2\n") == 0);
    result_free(&r);
    scratch_free(&s);
}

/* Splits a tab-separated line into at most max fields (in place). */
static int split_tabs(char *line, char **fields, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static void joblog_has_a_line_per_job(void)
{
    scratch s = scratch_new();
    char log[128];
    in_dir(&s, "jobs.tsv", log, sizeof log);
    double t0 = (double)time(NULL);
    result r = RUN(NULL, "run", "-j", "1", "--joblog", log, "--",
                   "echo out; echo err >&2; [ {} = 0 ] || exit 3", ":::", "0",
                   "3", "it's");
    CHECK_OUT(r, r.status == 2);
    char *text = slurp(log);
    char *lines[8];
    int n = 0;
    for (char *save, *l = strtok_r(text, "\n", &save); l && n < 8;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    CHECK_EQ(n, 4);
    CHECK(strcmp(lines[0], "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\t"
                           "Exitval\tSignal\tCommand") == 0);
    const char *exits[] = { "0", "3", "3" };
    const char *quoted[] = { "0", "3", "'it'\"'\"'s'" };
    for (int i = 1; i <= 3; i++) {
        char *f[9], cmd[256];
        CHECK_EQ(split_tabs(lines[i], f, 9), 9);
        CHECK_EQ(atoi(f[0]), i);
        CHECK(strcmp(f[1], ":") == 0);
        CHECK(fabs(atof(f[2]) - t0) < 60);         /* Starttime: epoch s */
        CHECK(atof(f[3]) >= 0 && atof(f[3]) < 30); /* JobRuntime */
        CHECK(strcmp(f[4], "0") == 0);             /* Send */
        CHECK(strcmp(f[5], "4") == 0);             /* Receive: stdout */
        CHECK(strcmp(f[6], exits[i - 1]) == 0);    /* Exitval */
        CHECK(strcmp(f[7], "0") == 0);             /* Signal */
        snprintf(cmd, sizeof cmd,
                 "echo out; echo err >&2; [ %s = 0 ] || exit 3", quoted[i - 1]);
        if (strcmp(f[8], cmd) != 0)
            fprintf(stderr, "command [%s], want [%s]\n", f[8], cmd);
        CHECK(strcmp(f[8], cmd) == 0);
    }
    free(text);
    result_free(&r);

    /* A job killed by a signal (not by cfutures): Exitval 0 and the
     * signal, as GNU parallel logs it. */
    r = RUN(NULL, "run", "-k", "-j", "1", "--joblog", log, "--", "kill -{} $$",
            ":::", "9", "TERM");
    CHECK_OUT(r, r.status == 2);
    text = slurp(log);
    CHECK_OUT(r, contains(text, "\n1\t") && contains(text, "\t0\t9\tkill") &&
                     contains(text, "\t0\t15\tkill"));
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* A newline in a job's command is written as a NUL in the job log, as
 * GNU parallel does, so that each job is one line. */
static void joblog_newline_in_the_command(void)
{
    scratch s = scratch_new();
    char log[128];
    in_dir(&s, "jl", log, sizeof log);
    result r =
        RUN("a\n5;b", "run", "-k", "-d", ";", "--joblog", log, "echo {}");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "a\n5\nb\n") == 0);
    result_free(&r);
    FILE *f = fopen(log, "r");
    CHECK(f != NULL);
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    CHECK_EQ(lines, 3);
    static const char one[] = "\techo 'a\0"
                              "5'\n",
                      two[] = "\techo b\n";
    CHECK(memmem(buf, n, one, sizeof one - 1) != NULL);
    CHECK(memmem(buf, n, two, sizeof two - 1) != NULL);
    scratch_free(&s);
}

/* --resume with a file that is no job log: refused with GNU parallel's
 * message and status, before anything runs. */
static void resume_refuses_a_wrong_log(void)
{
    scratch s = scratch_new();
    char log[128];
    in_dir(&s, "jl", log, sizeof log);
    FILE *f = fopen(log, "w");
    CHECK(f != NULL && fputs("garbage\nmore\n", f) >= 0 && fclose(f) == 0);
    const char *opts[] = { "--resume", "--resume-failed" };
    for (int i = 0; i < 2; i++) {
        result r =
            RUN(NULL, "run", "--joblog", log, opts[i], "echo", ":::", "a", "b");
        CHECK_OUT(r, r.status == 255 && r.out_len == 0);
        CHECK_OUT(r, contains(r.err, "Format of '") &&
                         contains(r.err, "' is wrong: more"));
        result_free(&r);
    }
    char *text = slurp(log);
    CHECK(strcmp(text, "garbage\nmore\n") == 0);
    free(text);
    scratch_free(&s);
}

static void halt_on_error_starts_no_more_jobs(void)
{
    /* now,fail=1: the status is the failed job's, as in GNU parallel. */
    result r = RUN(NULL, "run", "-j", "1", "--halt", "now,fail=1", "--",
                   "echo {}; exit {}", ":::", "0", "4", "0", "0");
    CHECK_OUT(r, r.status == 4);
    CHECK_OUT(r, strcmp(r.out, "0\n4\n") == 0);
    CHECK_OUT(r, contains(r.err, "This job failed:\necho 4; exit 4"));
    CHECK_OUT(r, contains(r.err, "halted"));
    result_free(&r);
    /* now: the running jobs are killed, and their output is not printed;
     * nor are they logged (as in GNU parallel: --resume runs them). */
    scratch s = scratch_new();
    char log[128];
    in_dir(&s, "jl", log, sizeof log);
    r = RUN(NULL, "run", "-j", "2", "--halt", "now,fail=1", "--joblog", log,
            "--", "sleep {}; echo {}; exit 1", ":::", "10", "0.2");
    CHECK_OUT(r, r.status == 1 && strcmp(r.out, "0.2\n") == 0);
    CHECK_OUT(r, r.seconds < 5 * test_scale());
    result_free(&r);
    char *text = slurp(log);
    CHECK(count_of(text, "\n") == 2 && contains(text, "echo 0.2; exit 1\n") &&
          !contains(text, "sleep 10"));
    free(text);
    r = RUN(NULL, "run", "-k", "--resume", "--joblog", log, "echo", ":::", "10",
            "0.2");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "10\n") == 0);
    result_free(&r);
    /* -k: the jobs after the killed one in order, done or not, are neither
     * printed nor logged (GNU parallel prints nothing here). */
    r = RUN(NULL, "run", "-k", "-j", "3", "--halt", "now,fail=1", "--joblog",
            log, "--", "sleep {}; echo {}; [ {} != 0.3 ]", ":::", "10", "0.1",
            "0.3", "10");
    CHECK_OUT(r, r.status == 1 && r.out_len == 0);
    CHECK_OUT(r, r.seconds < 5 * test_scale());
    result_free(&r);
    text = slurp(log);
    CHECK(count_of(text, "\n") == 1);
    free(text);
    scratch_free(&s);
}

/* ---- big outputs */

/* True when text is runs of single letters, each exactly run long. */
static bool whole_runs(const char *text, size_t len, size_t run)
{
    if (len % run != 0)
        return false;
    for (size_t start = 0; start < len; start += run)
        for (size_t i = start; i < start + run; i++)
            if (text[i] != text[start])
                return false;
    return true;
}

static void megabytes_of_output_stay_whole(void)
{
    const size_t mb8 = 8u << 20;
    /* Two jobs at once, each writing 8 MB of its own letter to both
     * streams, in small pieces (dd bs=4k) so the writes interleave. */
    const char *script = "head -c 8388608 /dev/zero | tr '\\0' {} | "
                         "tee /dev/stderr | dd bs=4096 status=none";
    result r = RUN(NULL, "run", "-j", "2", "--", script, ":::", "A", "B");
    CHECK_OUT(r, r.status == 0);
    CHECK_EQ(r.out_len, 2 * mb8);
    CHECK_EQ(r.err_len, 2 * mb8);
    CHECK(whole_runs(r.out, r.out_len, mb8) && r.out[0] != r.out[mb8]);
    CHECK(whole_runs(r.err, r.err_len, mb8) && r.err[0] != r.err[mb8]);
    result_free(&r);
}

/* Runs /bin/sh -c script with $CF set to the cfutures program. */
static result sh_run(const char *script)
{
    int out[2], err[2];
    CHECK(pipe(out) == 0 && pipe(err) == 0);
    fflush(NULL);
    double t0 = now_s();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        setenv("CF", CFUTURES_BIN, 1);
        setenv("SHELL", "/bin/sh", 1);
        unsetenv("PARALLEL_SHELL");
        alarm(0);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    return finish((child){ pid, out[0], err[0] }, t0);
}

/* --joblog - writes the log on standard output, as GNU parallel (no file
 * named "-"); --resume after a run that was cut while writing its last
 * line starts the next line on a line of its own. */
static void joblog_to_output_and_after_a_cut(void)
{
    scratch s = scratch_new();
    char script[1024];
    snprintf(script, sizeof script,
             "cd %s && \"$CF\" run -k -j 1 --joblog - echo ::: a b && "
             "! test -e ./-",
             s.dir);
    result r = sh_run(script);
    CHECK_OUT(r, r.status == 0);
    CHECK_OUT(r, strncmp(r.out, "Seq\tHost\t", 9) == 0);
    CHECK_OUT(r,
              contains(r.out, "\na\n1\t:\t") && contains(r.out, "\nb\n2\t:\t"));
    result_free(&r);
    snprintf(script, sizeof script,
             "cd %s && printf 'Seq\\tHost\\tStarttime\\tJobRuntime\\tSend\\t"
             "Receive\\tExitval\\tSignal\\tCommand\\n1\\t:\\t1.0\\t0.1\\t0"
             "\\t2\\t0\\t0\\techo a\\n2\\t:\\t1.' > jl && \"$CF\" run -k "
             "--joblog jl --resume echo ::: a b c && cat jl",
             s.dir);
    r = sh_run(script);
    CHECK_OUT(r, r.status == 0);
    int lines = 0;
    for (char *save, *l = strtok_r(r.out, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        lines++;
        char *two = strstr(l, "\t:\t");
        CHECK_OUT(r, two == NULL || strstr(two + 3, "\t:\t") == NULL);
    }
    CHECK(lines >= 4);
    result_free(&r);
    scratch_free(&s);
}

/* -k with a slow first job: hundreds of outputs over 1 MiB wait, under a
 * limit of 48 descriptors and a memory budget of 1 MB. They spill to one
 * temporary file and come out whole, in order. */
static void keep_order_is_bounded(void)
{
    result r =
        sh_run("job='[ {} = 1 ] && sleep 1; echo start-{}; head -c 1200000 "
               "/dev/zero; echo end-{}'\n"
               "want=$(for i in $(seq 120); do echo start-$i; head -c 1200000 "
               "/dev/zero; echo end-$i; done | cksum)\n"
               "got=$(ulimit -n 48; seq 120 | CFUTURES_RUN_MEMORY=1000000 "
               "\"$CF\" run -k -j 4 \"$job\" | cksum)\n"
               "echo \"$want\"; echo \"$got\"; [ \"$want\" = \"$got\" ]");
    CHECK_OUT(r, r.status == 0 && r.err_len == 0);
    result_free(&r);
}

/* Too few descriptors or processes for -j jobs at once: jobs wait for
 * one another instead of failing. Under ulimit -n 32, -j 50 runs fewer at
 * once (GNU parallel's warning says how many) and every job succeeds; as
 * a user whose process limit leaves room for one job at a time (beside
 * cfutures' threads), a job whose fork fails waits for another to end and
 * runs then. */
static void few_descriptors_or_processes(void)
{
    result r =
        sh_run("got=$(ulimit -n 32; seq 100 | \"$CF\" run -k -j 50 "
               "'sleep 0.05; echo {}' | cksum)\n"
               "want=$(seq 100 | cksum)\n"
               "echo \"$want\"; echo \"$got\"; [ \"$want\" = \"$got\" ]");
    CHECK_OUT(r, r.status == 0);
    CHECK_OUT(r, contains(r.err, "Only enough file handles to run"));
    CHECK_OUT(r, !contains(r.err, "Too many open files"));
    result_free(&r);
    r = sh_run("(ulimit -n 7; \"$CF\" run -j 4 echo ::: a b)");
    CHECK_OUT(r, r.status == 255 && r.out_len == 0);
    CHECK_OUT(r, contains(r.err, "ulimit -n"));
    result_free(&r);
    /* The process limit does not bind root: run as nobody where we can. */
    if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0)
        return;
    scratch s = scratch_new();
    CHECK(chmod(s.dir, 0777) == 0);
    char script[2048];
    snprintf(
        script, sizeof script,
        "cd %s && setpriv --reuid=nobody --regid=nogroup "
        "--clear-groups bash -c 'n=$(ps -L -u nobody --no-headers | wc -l);"
        " ulimit -u $((n + 11)); seq 40 | \"$CF\" run -k -j 8 "
        "echo {}' | cksum; seq 40 | cksum",
        s.dir);
    r = sh_run(script);
    char *nl = strchr(r.out, '\n');
    CHECK_OUT(r, r.status == 0 && nl &&
                     strncmp(r.out, nl + 1, (size_t)(nl - r.out)) == 0);
    CHECK_OUT(r, !contains(r.err, "Resource temporarily unavailable"));
    result_free(&r);
    /* So few that threads or jobs cannot start: never a silent 0. */
    for (int more = -1; more < 5; more++) {
        snprintf(script, sizeof script,
                 "cd %s && setpriv --reuid=nobody --regid=nogroup "
                 "--clear-groups bash -c 'n=$(ps -L -u nobody --no-headers | "
                 "wc -l); ulimit -u $((n + %d)); \"$CF\" run -k -j 4 echo "
                 "::: 1 2 3 4 5 6'",
                 s.dir, more);
        r = sh_run(script);
        CHECK_OUT(r, r.status != 0 || strcmp(r.out, "1\n2\n3\n4\n5\n6\n") == 0);
        result_free(&r);
    }
    scratch_free(&s);
}

/* Started with standard input, output or error closed: no descriptor of
 * cfutures' own takes their place (an error output that was its stop pipe
 * stopped the run; an output that was a pipe of its own lost everything
 * without a word). A closed input is empty, as in GNU parallel; a closed
 * output is reported. */
static void closed_standard_descriptors(void)
{
    result r = sh_run("exec 0<&- 2>&-; \"$CF\" run -k -j 2 "
                      "'echo out{}; echo err{} >&2' ::: 1 2 3 4");
    CHECK_OUT(r,
              r.status == 0 && strcmp(r.out, "out1\nout2\nout3\nout4\n") == 0);
    result_free(&r);
    r = sh_run("exec 0<&-; \"$CF\" run -k echo x");
    CHECK_OUT(r, r.status == 0 && r.out_len == 0 && r.err_len == 0);
    result_free(&r);
    r = sh_run("exec 0<&- 1>&-; \"$CF\" run -k echo ::: 1 2");
    CHECK_OUT(r, r.status == 255);
    CHECK_OUT(r, contains(r.err, "cannot write the output"));
    result_free(&r);
}

/* Output that cannot be written is reported, with status 255 (not a count
 * of failed jobs), and no more jobs start. */
static void lost_output_is_reported(void)
{
    scratch s = scratch_new();
    char script[1024];
    /* A full standard output. */
    snprintf(script, sizeof script,
             "seq 50 | \"$CF\" run -j 1 'echo {} >> %s/ran; echo out-{}' "
             "> /dev/full",
             s.dir);
    result r = sh_run(script);
    CHECK_OUT(r, r.status == 255);
    CHECK_OUT(r, contains(r.err, "cannot write the output: No space left"));
    char ran[128];
    char *text = slurp(in_dir(&s, "ran", ran, sizeof ran));
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    CHECK(lines >= 1 && lines < 50); /* it stopped */
    free(text);
    result_free(&r);
    /* No temporary file for an output over 1 MiB: that job's output is
     * lost, and said to be. */
    r = sh_run("TMPDIR=/nonexistent/cfutures-tmp \"$CF\" run -k "
               "'head -c {} /dev/zero | tr \"\\\\0\" x' ::: 10 2000000 20");
    CHECK_OUT(r, r.status == 255);
    CHECK_OUT(r, contains(r.err, "job 2: output lost"));
    CHECK_OUT(r, strncmp(r.out, "xxxxxxxxxx", 10) == 0);
    CHECK_OUT(r, r.out_len >= 30 && strcmp(r.out + r.out_len - 20,
                                           "xxxxxxxxxxxxxxxxxxxx") == 0);
    result_free(&r);
    scratch_free(&s);
}

/* Ctrl-C at any moment of a -k run whose outputs spill to the temporary
 * file: it always ends, at once, with 130 (or 0 when it was over), and
 * prints the outputs in order, never mixed. */
static void sigint_at_any_moment(void)
{
    const char *args[] = { "run",
                           "-k",
                           "-j",
                           "4",
                           "--",
                           "head -c 100000 /dev/zero | tr '\\0' "
                           "$(echo {} | tr 1-9 A-I); head -c 1100000 "
                           "/dev/zero | tr '\\0' {}; sleep 0.0{}",
                           ":::",
                           "1",
                           "2",
                           "3",
                           "4",
                           "5",
                           "6",
                           "7",
                           "8",
                           "9",
                           NULL };
    for (int i = 0; i < 8; i++) {
        double t0 = now_s();
        setenv("CFUTURES_RUN_MEMORY", "100000", 1);
        child c = start(NULL, args);
        unsetenv("CFUTURES_RUN_MEMORY");
        sleep_s(0.015 * i * test_scale());
        CHECK(kill(c.pid, SIGINT) == 0);
        result r = finish(c, t0);
        CHECK_OUT(r, r.status == 130 || r.status == 0);
        CHECK_OUT(r, r.seconds < 10 * test_scale());
        /* In order, never mixed: job k's output is 100000 of the k-th
         * letter, then 1100000 of the digit k; a job stopped by Ctrl-C
         * shows what it wrote so far (a prefix of that). */
        size_t pos = 0;
        char last = '0';
        while (pos < r.out_len) {
            char l = r.out[pos];
            size_t letters = 0, digits = 0;
            CHECK(l >= 'A' && l <= 'I');
            while (pos < r.out_len && r.out[pos] == l)
                letters++, pos++;
            char d = (char)('1' + (l - 'A'));
            while (pos < r.out_len && r.out[pos] == d)
                digits++, pos++;
            CHECK(letters <= 100000 && digits <= 1100000);
            CHECK(digits == 0 || letters == 100000);
            CHECK(d > last);
            last = d;
        }
        result_free(&r);
    }
}

/* Started with SIGCHLD ignored, as a parent may leave it, cfutures still
 * sees its jobs end (the kernel reaped them itself: it waited for good). */
static void started_with_sigchld_ignored(void)
{
    child_ignores_sigchld = true;
    result r = RUN(NULL, "run", "-k", "-j", "2", "echo {}; exit {}", ":::", "0",
                   "3", "0");
    child_ignores_sigchld = false;
    CHECK_OUT(r, r.status == 1 && strcmp(r.out, "0\n3\n0\n") == 0);
    result_free(&r);
}

/* Kills cfutures with SIGKILL while two jobs run cmd, which writes the
 * pids to watch into {}; they must end. */
static void jobs_die_with_cfutures_as(const char *cmd)
{
    scratch s = scratch_new();
    char pids[128];
    in_dir(&s, "pids", pids, sizeof pids);
    child c = start(NULL, (const char *const[]){ "run", "-j", "2", "--", cmd,
                                                 ":::", pids, pids, NULL });
    wait_lines(pids, 2);
    CHECK(kill(c.pid, SIGKILL) == 0);
    result r = finish(c, now_s());
    CHECK_EQ(r.status, 128 + SIGKILL);
    char *text = slurp(pids);
    for (char *save, *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save))
        CHECK(process_ends((pid_t)atol(l), 5));
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* Killed with SIGKILL, cfutures takes its jobs along: the process that
 * runs the command and what it started in the background. */
static void jobs_die_with_cfutures(void)
{
    jobs_die_with_cfutures_as("echo $$ >> {}; exec sleep 60");
    jobs_die_with_cfutures_as("sleep 60 & echo $! >> {}; wait");
}

/* ---- Ctrl-C */

static void sigint_stops_the_run(void)
{
    scratch s = scratch_new();
    char pids[128];
    in_dir(&s, "pids", pids, sizeof pids);
    double t0 = now_s();
    child c =
        start(NULL, (const char *const[]){
                        "run", "-j", "2", "--", "sh", "-c",
                        "'echo $$ >> \"$0\"; echo started; exec sleep 60'",
                        pids, ":::", "1", "2", "3", "4", NULL });
    wait_lines(pids, 2); /* both running jobs wrote their pid */
    CHECK(kill(c.pid, SIGINT) == 0);
    result r = finish(c, t0);
    CHECK_OUT(r, r.status == 130);
    CHECK_OUT(r, contains(r.err, "stopped by Interrupt"));
    CHECK_OUT(r, contains(r.err, "2 not started"));
    CHECK_OUT(r, strcmp(r.out, "started\nstarted\n") == 0);
    char *text = slurp(pids);
    for (char *save, *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save))
        CHECK(process_ends((pid_t)atol(l), 5));
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* The jobs Ctrl-C stopped are not in the job log, as in GNU parallel, so
 * that --resume runs them again (logged as stopped, they never ran to
 * their end). */
static void sigint_leaves_stopped_jobs_to_resume(void)
{
    scratch s = scratch_new();
    char pids[128], log[128];
    in_dir(&s, "pids", pids, sizeof pids);
    in_dir(&s, "log", log, sizeof log);
    double t0 = now_s();
    child c =
        start(NULL, (const char *const[]){
                        "run", "-j", "2", "--joblog", log, "--", "sh", "-c",
                        "'echo $$ >> \"$0\"; [ $1 = 1 ] || exec sleep 60'",
                        pids, ":::", "1", "2", "3", "4", NULL });
    wait_lines(pids, 3); /* job 1 ended; jobs 2 and 3 run until stopped */
    CHECK(kill(c.pid, SIGINT) == 0);
    result r = finish(c, t0);
    CHECK_OUT(r, r.status == 130);
    result_free(&r);
    char *text = slurp(log);
    CHECK(strstr(text, "\n1\t") != NULL);
    CHECK(strstr(text, "\n2\t") == NULL && strstr(text, "\n3\t") == NULL);
    free(text);
    r = RUN(NULL, "run", "-k", "-j", "2", "--joblog", log, "--resume", "echo",
            ":::", "1", "2", "3", "4");
    CHECK_OUT(r, r.status == 0 && strcmp(r.out, "2\n3\n4\n") == 0);
    result_free(&r);
    scratch_free(&s);
}

/* A reader that goes away (| head) stops the run as Ctrl-C does. */
static void closed_output_stops_the_run(void)
{
    scratch s = scratch_new();
    char pids[128];
    in_dir(&s, "pids", pids, sizeof pids);
    double t0 = now_s();
    child c = start(NULL, (const char *const[]){
                              "run", "-j", "2", "--", "sh", "-c",
                              "'echo $$ >> \"$0\"; echo $1; exec sleep $1'",
                              pids, "x", ":::", "0", "1", "60", "60", NULL });
    /* Job 1 ends at once and is printed; then nobody reads, and printing
     * job 2 a second later fails. Job 3 is running then, job 4 waiting. */
    char ch;
    CHECK(read(c.out, &ch, 1) == 1);
    close(c.out);
    c.out = -1;
    result r = finish(c, t0);
    CHECK_OUT(r, r.status == 141);
    CHECK_OUT(r, contains(r.err, "stopped by Broken pipe"));
    CHECK_OUT(r, r.seconds < 10 * test_scale());
    char *text = slurp(pids);
    for (char *save, *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save))
        CHECK(process_ends((pid_t)atol(l), 5));
    free(text);
    result_free(&r);
    scratch_free(&s);
}

/* ---- the terminal: the progress bar, ^C */

typedef struct terminal {
    pid_t pid;
    int master;
    char *text; /* everything it wrote */
    size_t len;
} terminal;

/* Runs cfutures on a new pseudo-terminal, 100 columns wide. */
static terminal terminal_start(const char *const *args)
{
    struct winsize ws = { .ws_row = 24, .ws_col = 100 };
    terminal t = { 0 };
    fflush(NULL);
    t.pid = forkpty(&t.master, NULL, NULL, &ws);
    CHECK(t.pid >= 0);
    if (t.pid == 0) {
        const char *argv[64] = { "cfutures" };
        for (int i = 0; args[i] && i < 62; i++)
            argv[i + 1] = args[i];
        alarm(0);
        /* Jobs run in the same shell wherever the test runs. */
        setenv("SHELL", "/bin/sh", 1);
        unsetenv("PARALLEL_SHELL");
        execv(CFUTURES_BIN, (char *const *)argv);
        _exit(127);
    }
    append(&t.text, &t.len, "", 0);
    return t;
}

/* Reads what the terminal shows for up to secs (scaled), or until it
 * closes when secs < 0. */
static void terminal_read(terminal *t, double secs)
{
    double end = now_s() + fabs(secs) * test_scale();
    char buf[4096];
    while (now_s() < end || secs < 0) {
        CHECK(now_s() < end + 30 * test_scale());
        struct pollfd p = { t->master, POLLIN, 0 };
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = read(t->master, buf, sizeof buf);
        if (n <= 0)
            return; /* EIO: the last process holding it has gone */
        append(&t->text, &t->len, buf, (size_t)n);
    }
}

static int terminal_finish(terminal *t)
{
    terminal_read(t, -1);
    close(t->master);
    int st;
    while (waitpid(t->pid, &st, 0) < 0)
        CHECK(errno == EINTR);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Plays the bytes the way a terminal shows them (\r, \n and "\033[K" move
 * and erase; the rest is printed), and collects the lines that end up on
 * the screen; the last one is the line the cursor is on at the end. */
static int screen_lines(const char *text, char lines[][256], int max)
{
    int n = 0;
    size_t col = 0;
    lines[0][0] = '\0';
    for (const char *p = text; *p && n < max; p++) {
        char *line = lines[n];
        if (*p == '\r') {
            col = 0;
        } else if (*p == '\n') {
            col = 0;
            if (++n < max)
                lines[n][0] = '\0';
        } else if (p[0] == '\033' && p[1] == '[' && p[2] == 'K') {
            if (col < strlen(line))
                line[col] = '\0';
            p += 2;
        } else if (col < 255) {
            size_t len = strlen(line);
            while (len < col)
                line[len++] = ' ';
            line[col] = *p;
            if (col == len)
                line[col + 1] = '\0';
            col++;
        }
    }
    return n + 1 > max ? max : n + 1;
}

static void bar_draws_and_clears_on_a_terminal(void)
{
    terminal t = terminal_start((const char *const[]){
        "run", "--bar", "-j", "2", "--", "sleep 0.3; echo out-{}", ":::", "1",
        "2", "3", NULL });
    CHECK_EQ(terminal_finish(&t), 0);
    if (!contains(t.text, "3/3"))
        fprintf(stderr, "terminal showed:\n%s\n", t.text);
    CHECK(contains(t.text, "3/3"));      /* the bar, done */
    CHECK(contains(t.text, "[###"));     /* with its bar */
    CHECK(contains(t.text, "\r\033[K")); /* erased in place */
    char lines[16][256];
    int n = screen_lines(t.text, lines, 16);
    /* On the screen: the three outputs, whole, and a clean last line. */
    CHECK_EQ(n, 4);
    char got[256] = "";
    for (int i = 0; i < 3; i++) {
        strcat(got, lines[i]);
        strcat(got, "\n");
    }
    char sorted[256];
    sorted_lines(got, sorted, sizeof sorted);
    if (strcmp(sorted, "out-1|out-2|out-3") != 0 || lines[3][0] != '\0')
        fprintf(stderr, "screen: [%s] last [%s]\n", sorted, lines[3]);
    CHECK(strcmp(sorted, "out-1|out-2|out-3") == 0);
    CHECK(lines[3][0] == '\0');
    free(t.text);
}

static void bar_on_request_when_not_a_terminal(void)
{
    result r = RUN(NULL, "run", "--bar", "-j", "3", "--", "true", ":::", "1",
                   "2", "3");
    CHECK_OUT(r, r.status == 0 && r.out_len == 0);
    CHECK_OUT(r, contains(r.err, "\r") && contains(r.err, "3/3"));
    CHECK_OUT(r,
              r.err_len >= 4 && strcmp(r.err + r.err_len - 4, "\r\033[K") == 0);
    result_free(&r);

    /* GNU parallel's --progress and --eta draw the same bar. */
    const char *names[] = { "--progress", "--eta" };
    for (int i = 0; i < 2; i++) {
        r = RUN(NULL, "run", names[i], "-j", "2", "--", "true", ":::", "1",
                "2");
        CHECK_OUT(r, r.status == 0 && r.out_len == 0);
        CHECK_OUT(r, contains(r.err, "2/2"));
        result_free(&r);
    }

    /* Not a terminal and no --bar: no bar. */
    r = RUN(NULL, "run", "--", "true", ":::", "1");
    CHECK_OUT(r, r.status == 0 && r.err_len == 0);
    result_free(&r);
}

static void ctrl_c_typed_on_a_terminal(void)
{
    terminal t = terminal_start((const char *const[]){
        "run", "--bar", "-j", "2", "--", "echo go; exec sleep 6{}", ":::", "1",
        "2", "3", NULL });
    /* Wait for both jobs to start (their "go" is printed once they end,
     * so wait for the bar instead), then type ^C. */
    double end = now_s() + 10 * test_scale();
    while (!contains(t.text, "0/3") && now_s() < end)
        terminal_read(&t, 0.05);
    sleep_s(0.3);
    struct termios tio;
    CHECK(tcgetattr(t.master, &tio) == 0);
    CHECK(write(t.master, &tio.c_cc[VINTR], 1) == 1);
    int status = terminal_finish(&t);
    if (status != 130 || !contains(t.text, "stopped by Interrupt"))
        fprintf(stderr, "status %d, terminal showed:\n%s\n", status, t.text);
    CHECK_EQ(status, 130);
    CHECK(contains(t.text, "stopped by Interrupt"));
    CHECK(contains(t.text, "1 not started"));
    free(t.text);
}

/* ---- cfutures demo */

static void demo_quick_prints_the_table(void)
{
    result r = RUN(NULL, "demo", "--quick");
    CHECK_OUT(r, r.status == 0);
    CHECK_OUT(r, contains(r.out, "What this run measured"));
    CHECK_OUT(r, contains(r.out, "I/O-bound  sequential"));
    CHECK_OUT(r, contains(r.out, "thread pool, 20 threads"));
    CHECK_OUT(r, contains(r.out, "CPU-bound  sequential"));
    CHECK_OUT(r, contains(r.out, "speedup"));
    CHECK_OUT(r, contains(r.out, "Waiting overlaps but computing does not"));
    CHECK_OUT(r, contains(r.out, "join(): 3072 bytes")); /* lesson 1 */
    CHECK_OUT(r, contains(r.out, "sum 1035, 1 failed")); /* lesson 2 */
    CHECK_OUT(r, r.seconds < 8 * test_scale());
    result_free(&r);
}

/* A small well-formedness check: tags nest and close, attributes are
 * quoted, and the root is <svg>. */
static bool well_formed_svg(const char *x)
{
    char stack[32][32];
    int depth = 0;
    bool root = false;
    for (const char *p = strchr(x, '<'); p; p = strchr(p, '<')) {
        if (strncmp(p, "<?", 2) == 0) {
            p = strstr(p, "?>");
            if (p == NULL)
                return false;
            continue;
        }
        const char *end = strchr(p, '>');
        if (end == NULL)
            return false;
        int quotes = 0;
        for (const char *q = p; q < end; q++)
            quotes += *q == '"';
        if (quotes % 2 != 0)
            return false;
        char name[32] = "";
        bool closing = p[1] == '/';
        sscanf(p + 1 + closing, "%31[a-zA-Z]", name);
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0)
                return false;
            depth--;
        } else if (end[-1] != '/') {
            if (depth == 32)
                return false;
            if (depth == 0)
                root = strcmp(name, "svg") == 0;
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
        }
        p = end;
    }
    return root && depth == 0;
}

static void demo_plot_writes_an_svg(void)
{
    scratch s = scratch_new();
    char svg[128];
    in_dir(&s, "demo.svg", svg, sizeof svg);
    result r = RUN(NULL, "demo", "--quick", "--plot", svg);
    CHECK_OUT(r, r.status == 0 && contains(r.out, "Chart written to"));
    char *x = slurp(svg);
    CHECK(strncmp(x, "<?xml", 5) == 0);
    CHECK(contains(x, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(contains(x, "<rect") && contains(x, "I/O-bound"));
    CHECK(contains(x, "CPU-bound") && contains(x, "thread pool"));
    CHECK(well_formed_svg(x));
    free(x);
    result_free(&r);

    r = RUN(NULL, "demo", "--quick", "--plot", "/nonexistent-dir/x.svg");
    CHECK_OUT(r, r.status == 1 && contains(r.err, "/nonexistent-dir/x.svg"));
    result_free(&r);
    scratch_free(&s);
}

/* ---- cfutures bench, on a stand-in for scripts/bench.sh */

static void bench_reports_medians_and_missing_peers(void)
{
    scratch s = scratch_new();
    char json[128], svg[128];
    in_dir(&s, "b.json", json, sizeof json);
    in_dir(&s, "b.svg", svg, sizeof svg);
    result r =
        RUN(NULL, "bench", "--source", CF_SOURCE_DIR "/tests/cli/fake-source",
            "--reps", "2", "--json", json, "--plot", svg, "--bar");
    /* The stand-in reports a failed run: status 1, the report printed. */
    CHECK_OUT(r, r.status == 1);
    CHECK_OUT(r, contains(r.out, "medians of 2 run(s)"));
    CHECK_OUT(r, contains(r.out, "B1 throughput"));
    CHECK_OUT(r, contains(r.out, "(reference)"));
    CHECK_OUT(r, contains(r.out, "3.00x slower")); /* glib: 450 vs 150 ns */
    CHECK_OUT(r, contains(r.out, "Missing peers"));
    CHECK_OUT(r, contains(r.out, "oneTBB: no oneTBB CMake package"));
    CHECK_OUT(r, contains(r.out, "B5 libuv workers=2: FAILED: exit 1"));
    CHECK_OUT(r, !contains(r.out, "fake tables")); /* replaced by the report */
    CHECK_OUT(r, contains(r.err, "8/8"));          /* the bar, at the end */
    char *j = slurp(json);
    CHECK(contains(j, "\"missing\": [\n  \"oneTBB: no oneTBB CMake package"));
    CHECK(contains(j, "\"impl\": \"glib\", \"workers\": 2, \"metric\": "
                      "\"ns_per_task\", \"median\": 450"));
    CHECK(contains(j, "\"ratio_to_cfutures\": 3"));
    free(j);
    char *x = slurp(svg);
    CHECK(well_formed_svg(x) && contains(x, "cfutures-futures"));
    free(x);
    result_free(&r);

    r = RUN(NULL, "bench", "--source", "/nonexistent-tree");
    CHECK_OUT(r, r.status == 1 && contains(r.err, "no benchmark suite"));
    result_free(&r);
    scratch_free(&s);
}

static const test_case cases[] = {
    TEST_CASE(help_for_each_command),
    TEST_CASE(bad_options_exit_2),
    TEST_CASE(unsupported_is_refused_before_anything_runs),
    TEST_CASE(runs_each_input),
    TEST_CASE(nul_in_input_is_kept_with_a_warning),
    TEST_CASE(exported_function_wins_over_a_program),
    TEST_CASE(skip_blank_records),
    TEST_CASE(tagstring_escapes),
    TEST_CASE(positional_follows_the_names),
    TEST_CASE(many_arguments_are_split_to_fit),
    TEST_CASE(job_environment),
    TEST_CASE(a_shell_that_does_not_exist),
    TEST_CASE(results_with_a_long_input),
    TEST_CASE(results_with_ungroup_and_verbose),
    TEST_CASE(shuf_numbers_in_shuffled_order),
    TEST_CASE(tag_on_verbose_and_dry_run),
    TEST_CASE(inputs_with_spaces_and_quotes_pass_intact),
    TEST_CASE(quoted_whatever_the_quotes_around_the_braces),
    TEST_CASE(quoted_inside_substitutions_and_escapes),
    TEST_CASE(completion_order_and_keep_order),
    TEST_CASE(jobs_start_in_input_order),
    TEST_CASE(exit_status_counts_failures),
    TEST_CASE(a_command_that_does_not_exist),
    TEST_CASE(timeout_kills_the_process_group),
    TEST_CASE(retries_until_success),
    TEST_CASE(joblog_has_a_line_per_job),
    TEST_CASE(joblog_to_output_and_after_a_cut),
    TEST_CASE(joblog_newline_in_the_command),
    TEST_CASE(resume_refuses_a_wrong_log),
    TEST_CASE(halt_on_error_starts_no_more_jobs),
    TEST_CASE(megabytes_of_output_stay_whole),
    TEST_CASE(keep_order_is_bounded),
    TEST_CASE(few_descriptors_or_processes),
    TEST_CASE(closed_standard_descriptors),
    TEST_CASE(lost_output_is_reported),
    TEST_CASE(jobs_die_with_cfutures),
    TEST_CASE(started_with_sigchld_ignored),
    TEST_CASE(sigint_at_any_moment),
    TEST_CASE(sigint_stops_the_run),
    TEST_CASE(sigint_leaves_stopped_jobs_to_resume),
    TEST_CASE(closed_output_stops_the_run),
    TEST_CASE(bar_draws_and_clears_on_a_terminal),
    TEST_CASE(bar_on_request_when_not_a_terminal),
    TEST_CASE(ctrl_c_typed_on_a_terminal),
    TEST_CASE(demo_quick_prints_the_table),
    TEST_CASE(demo_plot_writes_an_svg),
    TEST_CASE(bench_reports_medians_and_missing_peers),
};

TEST_MAIN(cases)
