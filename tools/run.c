/* SPDX-License-Identifier: MIT */
/*
 * run.c - `cfutures run`: the command line, read as GNU parallel reads it
 * (and xargs' habits: -P, -0, -n, -I, -r). Every option is matched whole
 * (no abbreviations); an option, value or replacement string that is not
 * supported is an error (exit 2) that names it, so nothing ever runs with
 * text left as it was typed. Then input.c makes the jobs and runner.c runs
 * them.
 */
#include "run.h"

#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cfutures run [OPTIONS] [COMMAND [ARGS...]] [::: INPUTS...]\n"
    "                    [:::: FILES...] [:::+ INPUTS...] [::::+ FILES...]\n"
    "\n"
    "GNU parallel's everyday features on a cfutures thread pool: runs\n"
    "COMMAND once per input, several at a time, with the same command line,\n"
    "output and exit status as GNU parallel. The words of COMMAND are joined\n"
    "with spaces into a shell command, in which replacement strings stand\n"
    "for the input, each value quoted for the shell (no input is ever\n"
    "split, globbed or expanded); with no replacement string the input is\n"
    "added at the end. Simple commands run without a shell.\n"
    "\n"
    "Inputs: the words after each ':::', the lines of the files after\n"
    "'::::' or -a, else the lines of standard input. Several sources give\n"
    "every combination (the first changing slowest); ':::+' and '::::+'\n"
    "pair a source with the one before instead.\n"
    "\n"
    "Replacement strings: {} the input, {.} without extension, {/} without\n"
    "directory, {//} the directory, {/.} neither, {#} the job number, {%}\n"
    "the job slot; {n} {n.} {n/} {n//} {n/.} the n-th input (or column),\n"
    "{-n} counted from the end.\n"
    "\n"
    "Options (GNU parallel's names):\n"
    "  -j, -P, --jobs N      jobs at once: N, +N or -N (CPUs + N), N% of\n"
    "                        the CPUs; 0: all at once (default: CPUs)\n"
    "  -k, --keep-order      print the outputs in input order\n"
    "  -n, -N N              N inputs per job (-N0: one, not in the\n"
    "                        command); -m, -X as many as fit (-X repeats\n"
    "                        the word around {} for each)\n"
    "  -I STR                STR instead of {} (also --er, --bnr, --dnr,\n"
    "                        --bner, --seqreplace, --slotreplace)\n"
    "  -a, --arg-file FILE   read inputs from FILE\n"
    "  -0, --null            inputs end with NUL; -d, --delimiter D: with D\n"
    "  -C, --colsep REGEX    split each input into columns {1} {2}...\n"
    "  -r                    skip empty inputs\n"
    "  -q, --quote           quote the command's words too\n"
    "      --tag             prefix each output line with the input and a "
    "tab\n"
    "      --tagstring STR   ...with STR (replacement strings allowed)\n"
    "      --line-buffer     print whole lines as they come\n"
    "  -u, --ungroup         let the jobs write straight to the output\n"
    "  -v, -t                print each command on stdout / on stderr\n"
    "      --dry-run         print the commands, run nothing\n"
    "      --timeout S       stop a job after S seconds (units s m h d; 0: "
    "none)\n"
    "      --retries N       run a failing job up to N times in all\n"
    "      --delay S         wait S seconds between job starts\n"
    "      --halt WHEN,WHY=N now or soon, fail success or done, a count or\n"
    "                        a percent (also 0 1 2 -1 -2 and N%)\n"
    "      --joblog FILE     a tab-separated line per job (GNU's columns)\n"
    "      --resume, --resume-failed  skip the jobs in the job log (that\n"
    "                        succeeded)\n"
    "      --results DIR     each job's output in DIR/1/INPUT/stdout ...\n"
    "      --shuf            shuffle the inputs (jobs, {#}, -k follow)\n"
    "      --bar, --progress, --eta  a progress bar on standard error\n"
    "      --pipe            split standard input into the jobs' inputs:\n"
    "                        by --block SIZE (default 1M) or -N records\n"
    "  -h, --help            print this help\n"
    "\n"
    "Exit status: 0 when every job succeeded, else the number of failed\n"
    "jobs (101 for more than 100); with --halt, as GNU parallel says; 2\n"
    "for a bad or unsupported command line; 128 + the signal when stopped\n"
    "by one (130 Ctrl-C; 141 when the output was closed, as by | head);\n"
    "255 when output was lost (a write or temp-file failure, reported on\n"
    "standard error) or the run could not start. If cfutures run is\n"
    "killed, even with SIGKILL, its jobs get SIGKILL.\n"
    "\n"
    "Examples:\n"
    "  cfutures run gzip -9 ::: *.log\n"
    "  cfutures run cp {} {.}.bak ::: *.txt\n"
    "  find . -name '*.png' -print0 | cfutures run -0 -k convert {} "
    "{.}.jpg\n"
    "  cfutures run --tag 'grep -c TODO {}' ::: *.c\n"
    "  cfutures run echo {1} {2} ::: a b ::: 1 2\n";

enum opt_id {
    O_NONE,
    O_JOBS,
    O_KEEP,
    O_TIMEOUT,
    O_RETRIES,
    O_DELAY,
    O_HALT,
    O_JOBLOG,
    O_RESUME,
    O_RESUME_FAILED,
    O_RESULTS,
    O_BAR,
    O_DRY,
    O_TAG,
    O_TAGSTRING,
    O_LINEBUF,
    O_UNGROUP,
    O_GROUP,
    O_SHUF,
    O_VERBOSE,
    O_TRACE,
    O_MAXARGS,
    O_X,
    O_M,
    O_QUOTE,
    O_NORUN,
    O_NULL,
    O_DELIM,
    O_ARGFILE,
    O_COLSEP,
    O_I,
    O_REPLACE,
    O_ER,
    O_BNR,
    O_DNR,
    O_BNER,
    O_SEQR,
    O_SLOTR,
    O_PIPE,
    O_BLOCK,
    O_HELP,
    O_QUIET, /* accepted, changes nothing: --will-cite, --no-notice */
    O_UNSUPPORTED
};

enum { ARG_NO, ARG_YES, ARG_OPT };

typedef struct opt_def {
    const char *name; /* long name without "--", or NULL */
    char short_name;  /* or 0 */
    int arg;
    enum opt_id id;
} opt_def;

static const opt_def opts[] = {
    { "jobs", 'j', ARG_YES, O_JOBS },
    { "max-procs", 'P', ARG_YES, O_JOBS },
    { "keep-order", 'k', ARG_NO, O_KEEP },
    { "timeout", 0, ARG_YES, O_TIMEOUT },
    { "retries", 0, ARG_YES, O_RETRIES },
    { "delay", 0, ARG_YES, O_DELAY },
    { "halt", 0, ARG_YES, O_HALT },
    { "halt-on-error", 0, ARG_YES, O_HALT },
    { "joblog", 0, ARG_YES, O_JOBLOG },
    { "jl", 0, ARG_YES, O_JOBLOG },
    { "resume", 0, ARG_NO, O_RESUME },
    { "resume-failed", 0, ARG_NO, O_RESUME_FAILED },
    { "results", 0, ARG_YES, O_RESULTS },
    { "res", 0, ARG_YES, O_RESULTS },
    { "bar", 0, ARG_NO, O_BAR },
    { "progress", 0, ARG_NO, O_BAR },
    { "eta", 0, ARG_NO, O_BAR },
    { "dry-run", 0, ARG_NO, O_DRY },
    { "dryrun", 0, ARG_NO, O_DRY },
    { "tag", 0, ARG_NO, O_TAG },
    { "tagstring", 0, ARG_YES, O_TAGSTRING },
    { "line-buffer", 0, ARG_NO, O_LINEBUF },
    { "linebuffer", 0, ARG_NO, O_LINEBUF },
    { "lb", 0, ARG_NO, O_LINEBUF },
    { "ungroup", 'u', ARG_NO, O_UNGROUP },
    { "group", 0, ARG_NO, O_GROUP },
    { "shuf", 0, ARG_NO, O_SHUF },
    { "verbose", 'v', ARG_NO, O_VERBOSE },
    { NULL, 't', ARG_NO, O_TRACE },
    { "max-args", 'n', ARG_YES, O_MAXARGS },
    { "max-replace-args", 'N', ARG_YES, O_MAXARGS },
    { NULL, 'X', ARG_NO, O_X },
    { NULL, 'm', ARG_NO, O_M },
    { "quote", 'q', ARG_NO, O_QUOTE },
    { "no-run-if-empty", 'r', ARG_NO, O_NORUN },
    { "null", '0', ARG_NO, O_NULL },
    { "delimiter", 'd', ARG_YES, O_DELIM },
    { "arg-file", 'a', ARG_YES, O_ARGFILE },
    { "colsep", 'C', ARG_YES, O_COLSEP },
    { NULL, 'I', ARG_YES, O_I },
    { "replace", 'i', ARG_OPT, O_REPLACE },
    { "extensionreplace", 0, ARG_YES, O_ER },
    { "er", 0, ARG_YES, O_ER },
    { "basenamereplace", 0, ARG_YES, O_BNR },
    { "bnr", 0, ARG_YES, O_BNR },
    { "dirnamereplace", 0, ARG_YES, O_DNR },
    { "dnr", 0, ARG_YES, O_DNR },
    { "basenameextensionreplace", 0, ARG_YES, O_BNER },
    { "bner", 0, ARG_YES, O_BNER },
    { "seqreplace", 0, ARG_YES, O_SEQR },
    { "slotreplace", 0, ARG_YES, O_SLOTR },
    { "pipe", 0, ARG_NO, O_PIPE },
    { "spreadstdin", 0, ARG_NO, O_PIPE },
    { "block", 0, ARG_YES, O_BLOCK },
    { "block-size", 0, ARG_YES, O_BLOCK },
    { "help", 'h', ARG_NO, O_HELP },
    { "will-cite", 0, ARG_NO, O_QUIET },
    { "no-notice", 0, ARG_NO, O_QUIET },
    /* GNU parallel's and xargs' options that cfutures run refuses: what
     * they do is not done here, and running without it would be wrong. */
    { "sshlogin", 'S', ARG_YES, O_UNSUPPORTED },
    { "sshloginfile", 0, ARG_YES, O_UNSUPPORTED },
    { "slf", 0, ARG_YES, O_UNSUPPORTED },
    { "basefile", 0, ARG_YES, O_UNSUPPORTED },
    { "transferfile", 0, ARG_YES, O_UNSUPPORTED },
    { "return", 0, ARG_YES, O_UNSUPPORTED },
    { "cleanup", 0, ARG_NO, O_UNSUPPORTED },
    { "trc", 0, ARG_YES, O_UNSUPPORTED },
    { "env", 0, ARG_YES, O_UNSUPPORTED },
    { "workdir", 0, ARG_YES, O_UNSUPPORTED },
    { "wd", 0, ARG_YES, O_UNSUPPORTED },
    { "plus", 0, ARG_NO, O_UNSUPPORTED },
    { "rpl", 0, ARG_YES, O_UNSUPPORTED },
    { "header", 0, ARG_YES, O_UNSUPPORTED },
    { "trim", 0, ARG_YES, O_UNSUPPORTED },
    { "ctag", 0, ARG_NO, O_UNSUPPORTED },
    { "ctagstring", 0, ARG_YES, O_UNSUPPORTED },
    { "files", 0, ARG_NO, O_UNSUPPORTED },
    { "compress", 0, ARG_NO, O_UNSUPPORTED },
    { "tmpdir", 0, ARG_YES, O_UNSUPPORTED },
    { "tmux", 0, ARG_NO, O_UNSUPPORTED },
    { "semaphore", 0, ARG_NO, O_UNSUPPORTED },
    { "sem", 0, ARG_NO, O_UNSUPPORTED },
    { "fg", 0, ARG_NO, O_UNSUPPORTED },
    { "bg", 0, ARG_NO, O_UNSUPPORTED },
    { "tty", 0, ARG_NO, O_UNSUPPORTED },
    { "nice", 0, ARG_YES, O_UNSUPPORTED },
    { "load", 0, ARG_YES, O_UNSUPPORTED },
    { "memfree", 0, ARG_YES, O_UNSUPPORTED },
    { "noswap", 0, ARG_NO, O_UNSUPPORTED },
    { "limit", 0, ARG_YES, O_UNSUPPORTED },
    { "pipepart", 0, ARG_NO, O_UNSUPPORTED },
    { "recstart", 0, ARG_YES, O_UNSUPPORTED },
    { "recend", 0, ARG_YES, O_UNSUPPORTED },
    { "regexp", 0, ARG_NO, O_UNSUPPORTED },
    { "round-robin", 0, ARG_NO, O_UNSUPPORTED },
    { "cat", 0, ARG_NO, O_UNSUPPORTED },
    { "fifo", 0, ARG_NO, O_UNSUPPORTED },
    { "arg-sep", 0, ARG_YES, O_UNSUPPORTED },
    { "arg-file-sep", 0, ARG_YES, O_UNSUPPORTED },
    { "xargs", 0, ARG_NO, O_UNSUPPORTED },
    { "max-chars", 's', ARG_YES, O_UNSUPPORTED },
    { "max-lines", 'L', ARG_YES, O_UNSUPPORTED },
    { NULL, 'l', ARG_OPT, O_UNSUPPORTED },
    { "eof", 'E', ARG_YES, O_UNSUPPORTED },
    { NULL, 'e', ARG_OPT, O_UNSUPPORTED },
    { "exit", 'x', ARG_NO, O_UNSUPPORTED },
    { "interactive", 'p', ARG_NO, O_UNSUPPORTED },
    { "open-tty", 'o', ARG_NO, O_UNSUPPORTED },
    { "process-slot-var", 0, ARG_YES, O_UNSUPPORTED },
    { "show-limits", 0, ARG_NO, O_UNSUPPORTED },
    { "profile", 'J', ARG_YES, O_UNSUPPORTED },
    { "sqlmaster", 0, ARG_YES, O_UNSUPPORTED },
    { "sqlworker", 0, ARG_YES, O_UNSUPPORTED },
    { "sqlandworker", 0, ARG_YES, O_UNSUPPORTED },
    { "shellquote", 0, ARG_NO, O_UNSUPPORTED },
    { "number-of-cpus", 0, ARG_NO, O_UNSUPPORTED },
    { "number-of-cores", 0, ARG_NO, O_UNSUPPORTED },
    { "embed", 0, ARG_NO, O_UNSUPPORTED },
    { "joblog-append", 0, ARG_NO, O_UNSUPPORTED },
    { "termseq", 0, ARG_YES, O_UNSUPPORTED },
    { "retry-failed", 0, ARG_NO, O_UNSUPPORTED },
    { "keep-order-output", 0, ARG_NO, O_UNSUPPORTED },
    { "version", 'V', ARG_NO, O_UNSUPPORTED },
};
enum { N_OPTS = sizeof opts / sizeof opts[0] };

/* ---- values */

/* A duration as GNU parallel writes it: seconds, or with units like
 * 1h30m, 2.5s. */
static bool parse_duration(const char *s, double *out)
{
    double total = 0;
    if (*s == '\0')
        return false;
    while (*s) {
        /* Digits with a decimal point at most, as GNU parallel reads a
         * duration (strtod alone would take 0x10, 1e1, +5, " 5"). */
        size_t digits = strspn(s, "0123456789");
        size_t len = digits;
        if (s[len] == '.')
            len += 1 + strspn(s + len + 1, "0123456789");
        if (len - (s[digits] == '.') == 0)
            return false; /* no digit */
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end != s + len || errno != 0 || !isfinite(v) || v < 0)
            return false;
        s = end;
        double unit = 1;
        /* The units in either case, as GNU parallel takes them. */
        char u = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
        switch (u) {
        case 's':
            unit = 1;
            s++;
            break;
        case 'm':
            unit = 60;
            s++;
            break;
        case 'h':
            unit = 3600;
            s++;
            break;
        case 'd':
            unit = 86400;
            s++;
            break;
        case '\0': break;
        default: return false;
        }
        total += v * unit;
    }
    *out = total;
    return true;
}

/* -j: N (0: all at once), +N or -N (the CPUs and N more or fewer), N%
 * of the CPUs; at least 1 unless 0. */
static bool parse_jobs(const char *s, long *out)
{
    long cpus = cf_cpu_count(), v;
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '%') {
        char *num = strndup(s, n - 1);
        bool ok = num && cli_parse_long(num, 1, 100000, &v);
        free(num);
        if (!ok)
            return false;
        v = cpus * v / 100;
    } else if (s[0] == '+' || s[0] == '-') {
        if (!cli_parse_long(s + 1, 0, 100000, &v))
            return false;
        v = s[0] == '+' ? cpus + v : cpus - v;
        if (v < 1) {
            *out = -1; /* none: refused once the options are read */
            return true;
        }
    } else {
        if (!cli_parse_long(s, 0, 100000, &v))
            return false;
        *out = v;
        return true;
    }
    *out = v < 1 ? 1 : v;
    return true;
}

/* --block: bytes, with K M G T (powers of 1024), k m g t (powers of
 * 1000), Ki Mi Gi Ti or ki mi gi ti (powers of 1024), as GNU parallel. */
static bool parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(v) || v < 1)
        return false;
    if (*end) {
        const char *units = "kmgt";
        const char *u = strchr(units, tolower((unsigned char)*end));
        bool binary =
            isupper((unsigned char)*end) || (end[1] == 'i' || end[1] == 'I');
        size_t tail = 1 + (end[1] == 'i' || end[1] == 'I');
        if (u == NULL || end[tail] != '\0')
            return false;
        v *= pow(binary ? 1024.0 : 1000.0, (double)(u - units + 1));
    }
    if (v > 1e15)
        return false;
    *out = (size_t)v;
    return true;
}

/* --halt: 0 1 2 -1 -2, N%, or now|soon,fail|success|done=N[%]. */
static bool parse_halt(const char *s, run_config *c)
{
    long v;
    if (cli_parse_long(s, -2, 2, &v)) {
        c->halt = v == 0                ? HALT_NEVER
                  : (v == 1 || v == -1) ? HALT_SOON
                                        : HALT_NOW;
        c->halt_on = v < 0 ? HALT_SUCCESS : HALT_FAIL;
        c->halt_value = 1;
        c->halt_pct = false;
        return true;
    }
    const char *rest = s;
    c->halt = HALT_SOON;
    if (strncmp(s, "now,", 4) == 0) {
        c->halt = HALT_NOW;
        rest = s + 4;
    } else if (strncmp(s, "soon,", 5) == 0) {
        rest = s + 5;
    } else if (strncmp(s, "never", 5) == 0 && s[5] == '\0') {
        c->halt = HALT_NEVER;
        return true;
    }
    if (strncmp(rest, "fail=", 5) == 0) {
        c->halt_on = HALT_FAIL;
        rest += 5;
    } else if (strncmp(rest, "success=", 8) == 0) {
        c->halt_on = HALT_SUCCESS;
        rest += 8;
    } else if (strncmp(rest, "done=", 5) == 0) {
        c->halt_on = HALT_DONE;
        rest += 5;
    } else if (rest == s) {
        c->halt_on = HALT_FAIL; /* "N%" alone */
    } else {
        return false;
    }
    char *end;
    errno = 0;
    double n = strtod(rest, &end);
    if (end == rest || errno != 0 || !isfinite(n) || n <= 0 ||
        strspn(rest, "0123456789.") != (size_t)(end - rest))
        return false;
    c->halt_pct = *end == '%';
    if (c->halt_pct ? end[1] != '\0' || n > 100 : *end != '\0' || n != floor(n))
        return false;
    if (rest == s && !c->halt_pct)
        return false;
    c->halt_value = c->halt_pct ? n / 100.0 : n;
    return true;
}

/* -d: the delimiter, with C escapes (\n \t \0 \\ \xHH \NNN). */
static int parse_delim(const char *s, run_config *c)
{
    strbuf b = STRBUF_INIT;
    for (; *s; s++) {
        if (*s != '\\' || s[1] == '\0') {
            sb_addc(&b, *s);
            continue;
        }
        s++;
        switch (*s) {
        case 'n': sb_addc(&b, '\n'); break;
        case 't': sb_addc(&b, '\t'); break;
        case 'r': sb_addc(&b, '\r'); break;
        case 'a': sb_addc(&b, '\a'); break;
        case 'b': sb_addc(&b, '\b'); break;
        case 'f': sb_addc(&b, '\f'); break;
        case 'v': sb_addc(&b, '\v'); break;
        case '\\': sb_addc(&b, '\\'); break;
        case 'x': {
            char *end;
            char hex[3] = { s[1], s[1] ? s[2] : 0, 0 };
            long v = strtol(hex, &end, 16);
            if (end == hex) {
                sb_free(&b);
                return -1;
            }
            sb_addc(&b, (char)v);
            s += end - hex;
            break;
        }
        default:
            if (*s >= '0' && *s <= '7') {
                int v = 0, k = 0;
                while (k < 3 && s[k] >= '0' && s[k] <= '7')
                    v = v * 8 + (s[k++] - '0');
                sb_addc(&b, (char)v);
                s += k - 1;
            } else {
                sb_free(&b);
                return -1;
            }
        }
    }
    if (b.len == 0 || b.oom) {
        sb_free(&b);
        return -1;
    }
    free(c->delim);
    c->delim_len = b.len;
    c->delim = b.s;
    return 0;
}

/* ---- the options */

typedef struct parse_state {
    run_config *cfg;
    tmpl_names names;
    const char *tagstring;
    run_source *src; /* -a sources first, then the separators' */
    size_t n_src;
    bool max_args_N; /* -N given */
    bool help;
} parse_state;

static int add_source(parse_state *ps, run_source s)
{
    run_source *g = realloc(ps->src, (ps->n_src + 1) * sizeof *g);
    if (g == NULL) {
        cli_error("run", "out of memory");
        return CLI_EXIT_ERROR;
    }
    ps->src = g;
    ps->src[ps->n_src++] = s;
    return 0;
}

static int bad_value(const char *opt, const char *want, const char *v)
{
    return cli_usage_error("run", "%s wants %s, not '%s'", opt, want, v);
}

static int apply(parse_state *ps, const opt_def *o, const char *shown,
                 const char *v)
{
    run_config *c = ps->cfg;
    long n;
    switch (o->id) {
    case O_HELP: ps->help = true; return 0;
    case O_QUIET:
    case O_GROUP: return 0;
    case O_KEEP: c->keep_order = true; return 0;
    case O_BAR: c->bar = true; return 0;
    case O_DRY: c->dry_run = true; return 0;
    case O_TAG: c->tag = true; return 0;
    case O_TAGSTRING: /* empty: as if not given, as in GNU parallel */
        c->tag = c->tag || *v != '\0';
        ps->tagstring = *v ? v : NULL;
        return 0;
    case O_LINEBUF: c->line_buffer = true; return 0;
    case O_UNGROUP: c->ungroup = true; return 0;
    case O_SHUF: c->shuf = true; return 0;
    case O_VERBOSE: c->verbose = true; return 0;
    case O_TRACE: c->trace = true; return 0;
    case O_X: c->context = c->multi = true; return 0;
    case O_M: c->multi = true; return 0;
    case O_QUOTE: c->quote = true; return 0;
    case O_NORUN: c->skip_empty = true; return 0;
    case O_RESUME: c->resume = true; return 0;
    case O_RESUME_FAILED: c->resume_failed = true; return 0;
    case O_PIPE: c->pipe = true; return 0;
    case O_JOBLOG: c->joblog = *v ? v : NULL; return 0; /* as --tagstring */
    case O_RESULTS: c->results = *v ? v : NULL; return 0;
    case O_COLSEP:
        if (*v == '\0')
            return bad_value(shown, "a column separator", v);
        c->colsep = v;
        return 0;
    case O_NULL: return parse_delim("\\0", c) == 0 ? 0 : CLI_EXIT_ERROR;
    case O_DELIM:
        if (parse_delim(v, c) != 0)
            return bad_value(shown,
                             "a delimiter (text or \\n \\t \\0 "
                             "\\xHH escapes)",
                             v);
        return 0;
    case O_ARGFILE:
        return add_source(ps, (run_source){ .kind = SRC_FILE, .path = v });
    case O_I:
    case O_REPLACE:
        if (v != NULL && *v == '\0')
            return bad_value(shown, "a replacement string", v);
        ps->names.name[TM_ALL] = v ? v : "{}";
        return 0;
    case O_ER: ps->names.name[TM_NOEXT] = v; return 0;
    case O_BNR: ps->names.name[TM_BASE] = v; return 0;
    case O_DNR: ps->names.name[TM_DIR] = v; return 0;
    case O_BNER: ps->names.name[TM_BASENOEXT] = v; return 0;
    case O_SEQR: ps->names.name[TM_SEQ] = v; return 0;
    case O_SLOTR: ps->names.name[TM_SLOT] = v; return 0;
    case O_JOBS:
        if (!parse_jobs(v, &c->jobs))
            return bad_value(shown,
                             "a number of jobs (N, +N, -N or N%; 0: all at "
                             "once)",
                             v);
        return 0;
    case O_TIMEOUT:
        if (strchr(v, '%'))
            return cli_usage_error("run",
                                   "%s: a percentage of the median run time "
                                   "('%s') is not supported",
                                   shown, v);
        /* "0": no timeout, as in GNU parallel (--timeout ${T:-0}); other
         * ways to write 0 (0s, 0.0) are a timeout of 0 s there, which
         * kills jobs at a moment that varies: refused. */
        if (strcmp(v, "0") == 0) {
            c->timeout = 0;
            return 0;
        }
        if (!parse_duration(v, &c->timeout) || c->timeout <= 0)
            return bad_value(shown,
                             "a duration above 0 (seconds, or with "
                             "units s m h d), or 0 for none",
                             v);
        return 0;
    case O_DELAY:
        if (!parse_duration(v, &c->delay))
            return bad_value(shown,
                             "a duration (seconds, or with units s m "
                             "h d)",
                             v);
        return 0;
    case O_RETRIES:
        if (!cli_parse_long(v, 0, 1000000, &n))
            return bad_value(shown, "a number of tries from 0", v);
        c->tries = n < 1 ? 1 : n;
        return 0;
    case O_MAXARGS:
        /* -N0 (or -n0): one input per job, none of it in the command. */
        if (strcmp(v, "0") != 0 && !cli_parse_long(v, 1, 100000000, &n))
            return bad_value(shown, "a number of inputs per job from 0", v);
        if (o->short_name != 'N' && ps->max_args_N)
            return 0; /* -N wins over -n, wherever they are (GNU) */
        c->no_args = strcmp(v, "0") == 0;
        c->max_args = c->no_args ? 1 : n;
        ps->max_args_N |= o->short_name == 'N';
        return 0;
    case O_BLOCK:
        if (!parse_size(v, &c->block))
            return bad_value(shown, "a size in bytes (with K M G T or k m g t)",
                             v);
        return 0;
    case O_HALT:
        if (!parse_halt(v, c))
            return bad_value(shown,
                             "now|soon,fail|success|done=N or N% (or 0, 1, "
                             "2, -1, -2, N%)",
                             v);
        return 0;
    case O_UNSUPPORTED:
        return cli_usage_error("run",
                               "option '%s' (of GNU parallel or xargs) is not "
                               "supported by cfutures run",
                               shown);
    case O_NONE: break;
    }
    return CLI_EXIT_ERROR;
}

static bool is_separator(const char *w)
{
    return strcmp(w, ":::") == 0 || strcmp(w, ":::+") == 0 ||
           strcmp(w, "::::") == 0 || strcmp(w, "::::+") == 0;
}

static int parse_long_opt(parse_state *ps, int argc, char **argv, int *i)
{
    const char *w = argv[*i] + 2;
    size_t len = strcspn(w, "=");
    const char *eq = w[len] == '=' ? w + len + 1 : NULL;
    for (size_t k = 0; k < N_OPTS; k++) {
        const opt_def *o = &opts[k];
        if (o->name == NULL || strlen(o->name) != len ||
            strncmp(o->name, w, len) != 0)
            continue;
        char shown[96];
        snprintf(shown, sizeof shown, "--%.*s", (int)len, w);
        const char *v = eq;
        if (o->arg == ARG_NO && eq)
            return cli_usage_error("run", "option '%s' takes no value", shown);
        if (o->arg == ARG_YES && v == NULL) {
            if (*i + 1 >= argc)
                return cli_usage_error("run", "option '%s' needs a value",
                                       shown);
            v = argv[++*i];
        }
        return apply(ps, o, shown, v);
    }
    return cli_usage_error("run", "unknown option '--%.*s'", (int)len, w);
}

static int parse_short_opts(parse_state *ps, int argc, char **argv, int *i)
{
    const char *w = argv[*i] + 1;
    for (; *w; w++) {
        const opt_def *o = NULL;
        for (size_t k = 0; k < N_OPTS && o == NULL; k++)
            if (opts[k].short_name == *w)
                o = &opts[k];
        char shown[3] = { '-', *w, 0 };
        if (o == NULL)
            return cli_usage_error("run", "unknown option '%s'", shown);
        const char *v = NULL;
        if (o->arg != ARG_NO && w[1] != '\0') {
            v = w + 1;
        } else if (o->arg == ARG_YES) {
            if (*i + 1 >= argc)
                return cli_usage_error("run", "option '%s' needs a value",
                                       shown);
            v = argv[++*i];
        }
        int rc = apply(ps, o, shown, v);
        if (rc != 0 || v != NULL)
            return rc;
    }
    return 0;
}

/* The sources after the command: ::: words, :::: files, linked with +. */
static int parse_sources(parse_state *ps, int argc, char **argv, int i)
{
    while (i < argc) {
        const char *sep = argv[i];
        bool files = strncmp(sep, "::::", 4) == 0;
        bool linked = sep[files ? 4 : 3] == '+';
        int j = i + 1;
        while (j < argc && !is_separator(argv[j]))
            j++;
        if (files) {
            for (int k = i + 1; k < j; k++) {
                int rc = add_source(
                    ps, (run_source){ .kind = SRC_FILE,
                                      .path = argv[k],
                                      .linked = linked && k == i + 1 });
                if (rc != 0)
                    return rc;
            }
        } else {
            int rc =
                add_source(ps, (run_source){ .kind = SRC_ARGS,
                                             .words = argv + i + 1,
                                             .n_words = (size_t)(j - i - 1),
                                             .linked = linked });
            if (rc != 0)
                return rc;
        }
        if (linked && ps->n_src <= 1)
            return cli_usage_error("run",
                                   "'%s' links to the input source "
                                   "before it, and there is none",
                                   sep);
        i = j;
    }
    return 0;
}

static bool executable(const char *path)
{
    struct stat st;
    return access(path, X_OK) == 0 && stat(path, &st) == 0 &&
           S_ISREG(st.st_mode);
}

/* Whether the shell can be run: an executable file, or a name found in
 * PATH, as GNU parallel checks it (-x or which). */
static bool shell_found(const char *s)
{
    if (strchr(s, '/'))
        return executable(s);
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *full = cli_format("%.*s/%s", (int)n, n ? p : ".", s);
        bool ok = full && executable(full);
        free(full);
        if (ok)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* The shell for commands: PARALLEL_SHELL (which must exist: GNU
 * parallel's error and exit 255 otherwise), else SHELL when it is a
 * Bourne shell that exists, else /bin/sh (GNU parallel takes the shell it
 * was started from before SHELL, and falls back to /bin/sh too). NULL
 * after the error. */
static const char *pick_shell(void)
{
    const char *s = getenv("PARALLEL_SHELL");
    if (s && *s) {
        if (shell_found(s))
            return s;
        cli_error("run", "Shell '%s' not found.", s);
        return NULL;
    }
    s = getenv("SHELL");
    if (s && *s && shell_found(s)) {
        const char *base = strrchr(s, '/');
        base = base ? base + 1 : s;
        static const char *const bourne[] = { "sh",   "bash", "dash", "ksh",
                                              "mksh", "zsh",  "ash",  "yash",
                                              "posh", "ksh93" };
        for (size_t i = 0; i < sizeof bourne / sizeof bourne[0]; i++)
            if (strcmp(base, bourne[i]) == 0)
                return s;
    }
    return "/bin/sh";
}

/* Checks what only makes sense together. */
/* True when --results names one file that GNU parallel writes as CSV,
 * TSV or JSON (by its ending, in any case) rather than a directory. */
static bool results_file(const char *r)
{
    static const char *const ends[] = { ".csv", ".tsv", ".json" };
    size_t n = strlen(r);
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        size_t k = strlen(ends[i]);
        if (n >= k && strcasecmp(r + n - k, ends[i]) == 0)
            return true;
    }
    return false;
}

static int check(parse_state *ps, size_t n_words)
{
    run_config *c = ps->cfg;
    if (c->pipe && c->max_args > 0 && ps->max_args_N) {
        c->pipe_records = c->max_args;
        c->max_args = 0;
    } else if (c->pipe && c->max_args > 0) {
        return cli_usage_error("run", "--pipe takes -N (records per job), "
                                      "not -n");
    }
    /* -N makes GNU parallel replace in context, as -X does: a word
     * around {} is repeated for each input (x{}y: xay xby). */
    if (ps->max_args_N && !c->pipe)
        c->context = true;
    if (c->pipe && ps->n_src > 0)
        return cli_usage_error("run", "--pipe reads standard input; it "
                                      "takes no ':::' or '::::' inputs");
    if (c->pipe && n_words == 0)
        return cli_usage_error("run", "--pipe needs a command");
    if (c->block && !c->pipe)
        return cli_usage_error("run", "--block only goes with --pipe");
    if ((c->resume || c->resume_failed) && c->joblog &&
        strcmp(c->joblog, "-") == 0)
        return cli_usage_error("run", "--resume and --resume-failed need a "
                                      "job log file, not '-'");
    if ((c->resume || c->resume_failed) && c->joblog == NULL)
        return cli_usage_error("run", "--resume and --resume-failed need "
                                      "--joblog");
    if (c->multi && c->max_args > 0)
        return cli_usage_error("run", "-m and -X do not go with -n or -N");
    if (c->results && strchr(c->results, '{'))
        return cli_usage_error("run",
                               "--results: a directory name with "
                               "replacement strings is not "
                               "supported: '%s'",
                               c->results);
    if (c->results && results_file(c->results))
        return cli_usage_error("run",
                               "--results: a name ending in .csv, .tsv or "
                               ".json (GNU parallel's one-file results) "
                               "is not supported: '%s'",
                               c->results);
    if (c->ungroup && (c->keep_order || c->tag || c->line_buffer))
        return cli_usage_error("run", "-u (--ungroup) does not go with -k, "
                                      "--tag or --line-buffer");
    if (c->keep_order)
        c->line_buffer = false; /* the same output, in order: grouped */
    if (c->block == 0)
        c->block = 1 << 20;
    return 0;
}

/* --tagstring's escapes, as GNU parallel's unquote_printf: \t \n \r, then
 * \NNN (three digits) and \N (one digit) as Perl's octal escapes (up to
 * three octal digits; \8 and \9 are the digits). A NUL, or a character
 * past \377, which GNU parallel prints as UTF-8, is refused. Sets *out to
 * a new string; 0, 2 after a usage error, or -1 when out of memory. */
static int unquote_printf(const char *s, char **out)
{
    strbuf a = STRBUF_INIT;
    for (; *s; s++) {
        char e = s[0] == '\\' ? s[1] : '\0';
        if (e == 't' || e == 'n' || e == 'r') {
            sb_addc(&a, e == 't' ? '\t' : e == 'n' ? '\n' : '\r');
            s++;
        } else {
            sb_addc(&a, *s);
        }
    }
    char *t = sb_take(&a);
    if (t == NULL)
        return -1;
    strbuf b = STRBUF_INIT;
    int rc = 0;
    /* Three digits first, over the whole string; then one. */
    for (int pass = 3; pass >= 1 && rc == 0; pass -= 2) {
        const char *p = t;
        for (; *p; p++) {
            size_t nd = 0;
            while (nd < (size_t)pass && p[1 + nd] >= '0' && p[1 + nd] <= '9')
                nd++;
            if (p[0] != '\\' || nd != (size_t)pass) {
                sb_addc(&b, *p);
                continue;
            }
            const char *d = p + 1;
            unsigned v = 0;
            size_t k = 0;
            while (k < nd && d[k] <= '7')
                v = v * 8 + (unsigned)(d[k++] - '0');
            if (k == 0) {
                sb_addc(&b, d[0]); /* \8, \9: the digit */
                k = 1;
            } else if (v == 0 || v > 0377) {
                rc = cli_usage_error("run",
                                     "--tagstring: \\%.*s makes %s, which "
                                     "cfutures cannot print in a tag",
                                     (int)k, d,
                                     v == 0 ? "a NUL" : "a wide character");
                break;
            } else {
                sb_addc(&b, (char)v);
            }
            sb_add(&b, d + k, nd - k);
            p += nd;
        }
        free(t);
        t = sb_take(&b);
        if (t == NULL)
            return -1;
    }
    if (rc != 0) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void free_config(run_config *c)
{
    tmpl_free(&c->cmd);
    tmpl_free(&c->tagstr);
    free(c->delim);
}

int cmd_run(int argc, char **argv)
{
    run_config cfg = { .jobs = cf_cpu_count(), .tries = 1 };
    parse_state ps = { .cfg = &cfg };
    int rc = parse_delim("\\n", &cfg) == 0 ? 0 : CLI_EXIT_ERROR;
    int i = 1;
    while (rc == 0 && i < argc && !ps.help) {
        const char *w = argv[i];
        if (strcmp(w, "--") == 0) {
            i++;
            break;
        }
        if (w[0] != '-' || w[1] == '\0' || is_separator(w))
            break;
        rc = w[1] == '-' ? parse_long_opt(&ps, argc, argv, &i)
                         : parse_short_opts(&ps, argc, argv, &i);
        i++;
    }
    if (rc == 0 && ps.help) {
        fputs(usage, stdout);
        free(ps.src);
        free_config(&cfg);
        return EXIT_SUCCESS;
    }
    int first = i;
    while (rc == 0 && i < argc && !is_separator(argv[i]))
        i++;
    size_t n_words = (size_t)(i - first);
    if (rc == 0)
        rc = parse_sources(&ps, argc, argv, i);
    if (rc == 0)
        rc = check(&ps, n_words);
    if (rc == 0 && cfg.jobs < 0) {
        cli_error("run", "cannot run any jobs: -j leaves none of the %d CPUs",
                  cf_cpu_count());
        rc = CLI_EXIT_ERROR; /* as GNU parallel */
    }
    if (rc == 0) {
        int flags = (cfg.quote ? TMPL_QUOTE_WORDS : 0) |
                    (cfg.pipe ? TMPL_NO_APPEND : 0);
        rc = tmpl_compile(&cfg.cmd, argv + first, n_words, flags, &ps.names);
    }
    char *tagstring = NULL;
    if (rc == 0 && ps.tagstring)
        rc = unquote_printf(ps.tagstring, &tagstring);
    if (rc == 0 && cfg.tag) {
        char *tag[] = { tagstring               ? tagstring
                        : ps.names.name[TM_ALL] ? (char *)ps.names.name[TM_ALL]
                                                : "{}" };
        rc = tmpl_compile(&cfg.tagstr, tag, 1, TMPL_RAW | TMPL_NO_APPEND,
                          &ps.names);
    }
    free(tagstring);
    if (rc < 0) {
        cli_error("run", "out of memory");
        rc = CLI_EXIT_ERROR;
    }
    run_inputs in;
    memset(&in, 0, sizeof in);
    if (rc == 0) {
        cfg.shell = pick_shell();
        rc = cfg.shell ? run_read_inputs(&cfg, ps.src, ps.n_src, &in)
                       : CLI_EXIT_ERROR;
    }
    if (rc == 0)
        rc = run_jobs(&cfg, &in);
    run_free_inputs(&in);
    free(ps.src);
    free_config(&cfg);
    return rc;
}
