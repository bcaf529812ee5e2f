/* SPDX-License-Identifier: MIT */
/*
 * bench.c - `cfutures bench`: runs the benchmark suite of bench/ through
 * its runner, scripts/bench.sh (which builds build/release and runs
 * bench/run.py), and reports on what it measured.
 *
 * The runner's output is read as it comes: its standard error says which
 * peers are missing ("MISSING <peer>: <why>; ...") and which run has just
 * finished ("[rep R/N] <bench> <impl> workers=W: 1.2s" or "...: FAILED:
 * <why>"), which drives the progress bar (the runs per repetition are
 * known once the first repetition is over). The results are read from the
 * latest.csv it writes into --out (a temporary folder by default): one
 * line per bench, implementation, workers and metric with the median,
 * min, max and number of runs.
 *
 * The report: per benchmark, each implementation's median of the
 * benchmark's main metric (lower is better for all of them) and its ratio
 * to cfutures; every missing peer named; every failed run listed. --json
 * writes all of it, every metric included; --plot draws the medians.
 */
#include "cli.h"
#include "proc.h"
#include "progress.h"
#include "stop.h"
#include "strbuf.h"
#include "svg.h"

#include <cfutures.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cfutures bench [--reps N] [--quick] [--only B1,B5] [--json FILE]\n"
    "                      [--plot FILE.svg] [--out DIR] [--no-build]\n"
    "                      [--source DIR] [--bar]\n"
    "\n"
    "Runs the benchmark suite of bench/ (B1 throughput, B2 fork-join, B3\n"
    "CPU-bound map, B4 I/O-bound, B5 latency, B6 memory) for cfutures and\n"
    "every peer that is installed (oneTBB, OpenMP, GLib, libuv, Python's\n"
    "concurrent.futures), several runs each, through scripts/bench.sh of\n"
    "the source tree, which builds build/release first. Prints the median\n"
    "of each and its ratio to cfutures. A peer that is missing is named,\n"
    "with why; scripts/install-bench-deps.sh installs them.\n"
    "\n"
    "Options:\n"
    "      --reps N         runs of each benchmark (default 5)\n"
    "      --quick          one run of smaller sizes: a smoke test (about a\n"
    "                       minute)\n"
    "      --only LIST      only these benchmarks, e.g. B2 or B1,B5\n"
    "      --json FILE      write the results (every metric) as JSON\n"
    "      --plot FILE.svg  write the medians as a bar chart (SVG)\n"
    "      --out DIR        keep the runner's files there (latest.csv,\n"
    "                       latest.json, latest.md with the goals)\n"
    "      --no-build       run what build/release has, without building\n"
    "      --source DIR     the cfutures source tree, a clone of the\n"
    "                       repository (default: $CFUTURES_SOURCE_DIR, else\n"
    "                       the current directory)\n"
    "      --bar            draw the progress bar even when standard error\n"
    "                       is not a terminal\n"
    "  -h, --help           print this help\n"
    "\n"
    "Exit status: 0 when every run succeeded, 1 when some failed or the\n"
    "suite could not run, 2 for a bad command line, 130 after Ctrl-C.\n";

typedef struct options {
    const char *reps, *only, *json, *plot, *out, *source;
    bool quick, no_build, bar;
} options;

/* A benchmark's main metric, how it is shown, and the words for ratios. */
typedef struct bench_kind {
    const char *bench, *metric, *unit, *title;
    double scale; /* metric value * scale = shown value */
    const char *worse, *better;
} bench_kind;

static const bench_kind kinds[] = {
    { "B1", "ns_per_task", "ns/task", "B1 throughput: empty tasks", 1, "slower",
      "faster" },
    { "B2", "time_s", "ms", "B2 fork-join: fib(32)", 1e3, "slower", "faster" },
    { "B3", "time_s", "ms", "B3 CPU-bound map: ~1 ms items", 1e3, "slower",
      "faster" },
    { "B4", "time_s", "ms", "B4 I/O-bound: 10 ms sleeps, 100 workers", 1e3,
      "slower", "faster" },
    { "B5", "median_us", "us", "B5 latency: submit and wait, idle pool", 1,
      "slower", "faster" },
    { "B6", "bytes_per_task", "B/task", "B6 memory per pending task", 1, "more",
      "less" },
};

/* One line of latest.csv. */
typedef struct result {
    char bench[16], impl[64], metric[32];
    int workers;
    double median, min, max;
    int runs;
} result;

typedef struct report {
    result *results;
    size_t n;
    strbuf missing;  /* lines "peer: why" */
    strbuf failures; /* lines "B1 impl workers=2: why" */
    strbuf err_line; /* the runner's standard error, the line being read */
    strbuf err_tail; /* its last lines, shown if it fails */
    progress bar;
    size_t runs_done, runs_per_rep;
    int rep, reps;
} report;

/* ---- following the runner's standard error */

/* Adds line to list unless it is there already. */
static void add_unique(strbuf *list, const char *line)
{
    if (list->s) {
        const char *p = list->s;
        size_t n = strlen(line);
        while ((p = strstr(p, line)) != NULL) {
            if ((p == list->s || p[-1] == '\n') && p[n] == '\n')
                return;
            p += n;
        }
    }
    sb_adds(list, line);
    sb_addc(list, '\n');
}

/* "[rep R/N] B3 cfutures-map workers=2: 1.0s": counts the run, learns the
 * runs per repetition when the second repetition starts. */
static void on_run_line(report *r, const char *line)
{
    int rep, reps, used = 0;
    if (sscanf(line, "[rep %d/%d] %n", &rep, &reps, &used) != 2 || used == 0)
        return;
    if (rep > r->rep && r->rep == 1)
        r->runs_per_rep = r->runs_done;
    r->rep = rep;
    r->reps = reps;
    r->runs_done++;
    if (r->runs_per_rep)
        progress_set_total(&r->bar, r->runs_per_rep * (size_t)reps);
    const char *what = line + used;
    const char *colon = strstr(what, ": ");
    char note[64];
    snprintf(note, sizeof note, "rep %d/%d %.*s", rep, reps,
             (int)(colon ? colon - what : 40), what);
    const char *failed = colon ? strstr(colon, ": FAILED: ") : NULL;
    if (failed)
        add_unique(&r->failures, what);
    progress_update(&r->bar, r->runs_done, 0, note);
}

static void on_err_line(report *r, const char *line)
{
    static const char missing[] = "MISSING ";
    if (strncmp(line, missing, sizeof missing - 1) == 0) {
        const char *s = line + sizeof missing - 1;
        const char *end = strstr(s, "; its rows are skipped");
        char *peer =
            cli_format("%.*s", (int)(end ? end - s : (long)strlen(s)), s);
        if (peer)
            add_unique(&r->missing, peer);
        free(peer);
        return;
    }
    on_run_line(r, line);
    /* Keep the last few kilobytes for a failure message. */
    if (r->err_tail.len > 8192)
        sb_free(&r->err_tail);
    sb_adds(&r->err_tail, line);
    sb_addc(&r->err_tail, '\n');
}

static void on_data(void *ctx, int stream, const char *data, size_t n)
{
    report *r = ctx;
    if (stream != 2)
        return; /* the runner's tables: this report replaces them */
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            sb_addc(&r->err_line, data[i]);
            continue;
        }
        on_err_line(r, r->err_line.s ? r->err_line.s : "");
        r->err_line.len = 0;
        if (r->err_line.s)
            r->err_line.s[0] = '\0';
    }
}

/* ---- reading the results */

static bool parse_result(const char *line, result *x)
{
    int used = 0;
    if (sscanf(line, "%15[^,],%63[^,],%d,%31[^,],%lf,%lf,%lf,%d%n", x->bench,
               x->impl, &x->workers, x->metric, &x->median, &x->min, &x->max,
               &x->runs, &used) != 8)
        return false;
    return strcmp(x->bench, "bench") != 0;
}

/* Reads DIR/latest.csv: 0, or -1 with errno set. */
static int read_results(report *r, const char *dir)
{
    char *path = cli_format("%s/latest.csv", dir);
    FILE *f = path ? fopen(path, "re") : NULL;
    free(path);
    if (f == NULL)
        return -1;
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        result x;
        if (!parse_result(line, &x))
            continue;
        if (r->n == cap) {
            cap = cap ? 2 * cap : 64;
            result *grown = realloc(r->results, cap * sizeof *grown);
            if (grown == NULL) {
                fclose(f);
                errno = ENOMEM;
                return -1;
            }
            r->results = grown;
        }
        r->results[r->n++] = x;
    }
    fclose(f);
    return 0;
}

/* ---- the report */

static const bench_kind *kind_of(const char *bench)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].bench, bench) == 0)
            return &kinds[i];
    return NULL;
}

static bool is_main(const result *x)
{
    const bench_kind *k = kind_of(x->bench);
    return k ? strcmp(x->metric, k->metric) == 0
             : strcmp(x->metric, "time_s") == 0;
}

/* The cfutures row a result is compared with: the first cfutures row of
 * its benchmark with the same workers, else the first cfutures row. */
static const result *reference(const report *r, const result *x)
{
    const result *any = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const result *c = &r->results[i];
        if (strcmp(c->bench, x->bench) != 0 || strcmp(c->metric, x->metric) ||
            strncmp(c->impl, "cfutures", 8) != 0)
            continue;
        if (c->workers == x->workers)
            return c;
        if (any == NULL)
            any = c;
    }
    return any;
}

/* "1.36x faster", "(cfutures)" or "-" into buf. */
static void ratio_text(const report *r, const result *x, char *buf, size_t size)
{
    const result *ref = reference(r, x);
    const bench_kind *k = kind_of(x->bench);
    if (ref == NULL || ref->median <= 0 || x->median <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    if (ref == x) {
        snprintf(buf, size, "(reference)");
        return;
    }
    double q = x->median / ref->median;
    if (fabs(q - 1) < 0.005)
        snprintf(buf, size, "same");
    else
        snprintf(buf, size, "%.2fx %s", q > 1 ? q : 1 / q,
                 q > 1 ? (k ? k->worse : "slower")
                       : (k ? k->better : "faster"));
}

static void shown(const result *x, double *value, const char **unit)
{
    const bench_kind *k = kind_of(x->bench);
    *value = x->median * (k ? k->scale : 1);
    *unit = k ? k->unit : x->metric;
}

static void print_bench(const report *r, const char *bench)
{
    const bench_kind *k = kind_of(bench);
    printf("\n%s\n  %-34s %7s %12s %-8s %s\n", k ? k->title : bench,
           "implementation", "workers", "median", "", "vs cfutures");
    for (size_t i = 0; i < r->n; i++) {
        const result *x = &r->results[i];
        if (strcmp(x->bench, bench) != 0 || !is_main(x))
            continue;
        double v;
        const char *unit;
        char ratio[48];
        shown(x, &v, &unit);
        ratio_text(r, x, ratio, sizeof ratio);
        printf("  %-34s %7d %12.4g %-8s %s\n", x->impl, x->workers, v, unit,
               ratio);
    }
}

/* Calls fn for each benchmark, in the order of the results. */
static void each_bench(const report *r,
                       void (*fn)(const report *, const char *, void *),
                       void *ctx)
{
    for (size_t i = 0; i < r->n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(r->results[k].bench, r->results[i].bench) == 0;
        if (!seen)
            fn(r, r->results[i].bench, ctx);
    }
}

static void print_one(const report *r, const char *bench, void *ctx)
{
    (void)ctx;
    print_bench(r, bench);
}

static void print_lines(const char *title, const strbuf *list)
{
    if (list->len == 0)
        return;
    printf("\n%s\n", title);
    for (const char *p = list->s; *p;) {
        size_t n = strcspn(p, "\n");
        printf("  %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static void print_report(const report *r, bool quick)
{
    printf("cfutures bench: medians of %d run(s) on %d CPUs; lower is "
           "better\n",
           r->reps ? r->reps : 1, cf_cpu_count());
    if (quick)
        printf("QUICK: smaller sizes (some rows run other sizes than "
               "others; the runner's\nnotes are in latest.md with --out): "
               "indicative only\n");
    each_bench(r, print_one, NULL);
    print_lines("Missing peers (skipped; scripts/install-bench-deps.sh "
                "installs them):",
                &r->missing);
    print_lines("Failed runs:", &r->failures);
}

/* ---- --json */

static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void put_json_lines(FILE *f, const strbuf *list)
{
    fputc('[', f);
    for (const char *p = list->s ? list->s : ""; *p;) {
        size_t n = strcspn(p, "\n");
        char *line = cli_format("%.*s", (int)n, p);
        if (line) {
            fputs(p == list->s ? "\n  " : ",\n  ", f);
            put_json_string(f, line);
            free(line);
        }
        p += n + (p[n] == '\n');
    }
    fputs(list->len ? "\n ]" : "]", f);
}

static void put_json_result(FILE *f, const report *r, const result *x)
{
    fputs("  {\"bench\": ", f);
    put_json_string(f, x->bench);
    fputs(", \"impl\": ", f);
    put_json_string(f, x->impl);
    fprintf(f, ", \"workers\": %d, \"metric\": ", x->workers);
    put_json_string(f, x->metric);
    fprintf(f,
            ", \"median\": %.9g, \"min\": %.9g, \"max\": %.9g, \"runs\": %d, "
            "\"main\": %s",
            x->median, x->min, x->max, x->runs, is_main(x) ? "true" : "false");
    const result *ref = reference(r, x);
    if (ref && ref->median > 0)
        fprintf(f, ", \"ratio_to_cfutures\": %.6g", x->median / ref->median);
    fputc('}', f);
}

static int write_json(const report *r, const options *o)
{
    FILE *f = fopen(o->json, "we");
    if (f == NULL)
        return -1;
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    fprintf(f,
            "{\n \"tool\": \"cfutures bench\",\n \"date\": \"%s\",\n"
            " \"cpus\": %d,\n \"reps\": %d,\n \"quick\": %s,\n"
            " \"lower_is_better\": true,\n \"missing\": ",
            date, cf_cpu_count(), r->reps ? r->reps : 1,
            o->quick ? "true" : "false");
    put_json_lines(f, &r->missing);
    fputs(",\n \"failures\": ", f);
    put_json_lines(f, &r->failures);
    fputs(",\n \"results\": [\n", f);
    for (size_t i = 0; i < r->n; i++) {
        put_json_result(f, r, &r->results[i]);
        fputs(i + 1 < r->n ? ",\n" : "\n", f);
    }
    fputs(" ]\n}\n", f);
    int failed = ferror(f);
    return fclose(f) != 0 || failed ? -1 : 0;
}

/* ---- --plot */

typedef struct plot {
    svg_panel *panels;
    svg_bar *bars;
    char (*texts)[2][96]; /* per bar: its label, its value */
    size_t np, nb;
    bool quick;
} plot;

static void plot_bench(const report *r, const char *bench, void *ctx)
{
    plot *p = ctx;
    const bench_kind *k = kind_of(bench);
    size_t first = p->nb;
    for (size_t i = 0; i < r->n; i++) {
        const result *x = &r->results[i];
        if (strcmp(x->bench, bench) != 0 || !is_main(x))
            continue;
        double v;
        const char *unit;
        char ratio[48];
        shown(x, &v, &unit);
        ratio_text(r, x, ratio, sizeof ratio);
        char(*t)[96] = p->texts[p->nb];
        snprintf(t[0], sizeof t[0], "%s, %d worker%s", x->impl, x->workers,
                 x->workers == 1 ? "" : "s");
        snprintf(t[1], sizeof t[1], "%.4g %s, %s", v, unit, ratio);
        p->bars[p->nb] =
            (svg_bar){ t[0], v, t[1], strncmp(x->impl, "cfutures", 8) == 0 };
        p->nb++;
    }
    p->panels[p->np++] =
        (svg_panel){ k ? k->title : bench, p->bars + first, p->nb - first };
}

static int write_plot(const report *r, const options *o)
{
    plot p = { calloc(r->n + 1, sizeof *p.panels),
               calloc(r->n + 1, sizeof *p.bars),
               calloc(r->n + 1, sizeof *p.texts),
               0,
               0,
               o->quick };
    int rc = -1;
    if (p.panels && p.bars && p.texts) {
        each_bench(r, plot_bench, &p);
        char subtitle[128];
        snprintf(subtitle, sizeof subtitle,
                 "medians of %d run(s) on %d CPUs; shorter is better%s",
                 r->reps ? r->reps : 1, cf_cpu_count(),
                 p.quick ? "; QUICK: smaller sizes, indicative only" : "");
        rc = svg_write_chart(o->plot, "cfutures bench", subtitle, p.panels,
                             p.np);
    }
    free(p.panels);
    free(p.bars);
    free(p.texts);
    return rc;
}

/* ---- running the suite */

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *source_dir(const options *o)
{
    const char *env = getenv("CFUTURES_SOURCE_DIR");
    return o->source ? o->source : env && env[0] ? env : ".";
}

/* Runs scripts/bench.sh with the options; its exit status, or -1 when it
 * could not be started. */
static int run_suite(report *r, const options *o, const char *runner,
                     const char *out)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)runner;
    if (o->reps) {
        argv[n++] = "--reps";
        argv[n++] = (char *)o->reps;
    }
    if (o->quick)
        argv[n++] = "--quick";
    if (o->only) {
        argv[n++] = "--only";
        argv[n++] = (char *)o->only;
    }
    if (o->no_build)
        argv[n++] = "--no-build";
    argv[n++] = "--out";
    argv[n++] = (char *)out;
    argv[n] = NULL;
    proc_options po = {
        .grace = 2.0, .stop_fd = stop_fd(), .on_data = on_data, .ctx = r
    };
    proc_result res;
    progress_update(&r->bar, 0, 0, o->no_build ? "starting" : "building");
    if (proc_run(argv, &po, &res) != 0 || res.spawn_error) {
        progress_end(&r->bar);
        cli_error("bench", "cannot run %s: %s", runner,
                  strerror(res.spawn_error ? res.spawn_error : errno));
        return -1;
    }
    progress_end(&r->bar);
    return res.stopped ? 128 + stop_signal()
           : res.sig   ? 128 + res.sig
                       : res.exitval;
}

static int parse(options *o, int argc, char **argv)
{
    enum { REPS = 256, QUICK, ONLY, JSON, PLOT, OUT, NO_BUILD, SOURCE, BAR };
    static const struct option opts[] = {
        { "reps", required_argument, NULL, REPS },
        { "quick", no_argument, NULL, QUICK },
        { "only", required_argument, NULL, ONLY },
        { "json", required_argument, NULL, JSON },
        { "plot", required_argument, NULL, PLOT },
        { "out", required_argument, NULL, OUT },
        { "no-build", no_argument, NULL, NO_BUILD },
        { "source", required_argument, NULL, SOURCE },
        { "bar", no_argument, NULL, BAR },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    long reps;
    optind = 1;
    while ((c = cli_getopt("bench", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return EXIT_SUCCESS;
        case REPS:
            if (!cli_parse_long(optarg, 1, 1000, &reps))
                return cli_usage_error("bench",
                                       "--reps wants a count from 1 to "
                                       "1000, not '%s'",
                                       optarg);
            o->reps = optarg;
            break;
        case QUICK: o->quick = true; break;
        case ONLY: o->only = optarg; break;
        case JSON: o->json = optarg; break;
        case PLOT: o->plot = optarg; break;
        case OUT: o->out = optarg; break;
        case NO_BUILD: o->no_build = true; break;
        case SOURCE: o->source = optarg; break;
        case BAR: o->bar = true; break;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("bench", "unexpected argument '%s'",
                               argv[optind]);
    return -1;
}

/* Prints the report and writes the files; returns the exit status. */
static int finish(report *r, const options *o, const char *out, int status)
{
    if (status < 0)
        return 1;
    if (status > 128)
        return status; /* stopped by a signal: the results are partial */
    if (read_results(r, out) != 0 || r->n == 0) {
        cli_error("bench",
                  "the suite wrote no results (exit status %d); "
                  "its last words:",
                  status);
        fputs(r->err_tail.s ? r->err_tail.s : "(none)\n", stderr);
        return 1;
    }
    print_report(r, o->quick);
    int rc = status == 0 ? 0 : 1;
    if (o->json && write_json(r, o) != 0) {
        cli_error("bench", "cannot write '%s': %s", o->json, strerror(errno));
        rc = 1;
    }
    if (o->plot && write_plot(r, o) != 0) {
        cli_error("bench", "cannot write '%s': %s", o->plot, strerror(errno));
        rc = 1;
    }
    if (o->out)
        printf("\nThe runner's tables, with the goals: %s/latest.md\n", out);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    options o = { 0 };
    int rc = parse(&o, argc, argv);
    if (rc >= 0)
        return rc;
    char *runner = cli_format("%s/scripts/bench.sh", source_dir(&o));
    if (runner == NULL || access(runner, X_OK) != 0) {
        cli_error("bench",
                  "no benchmark suite at %s: the benchmarks are not "
                  "installed; they run from a cfutures source tree "
                  "(scripts/bench.sh), given by --source DIR or "
                  "$CFUTURES_SOURCE_DIR, or the current directory",
                  source_dir(&o));
        free(runner);
        return 1;
    }
    char tmp[] = "/tmp/cfutures-bench-XXXXXX";
    const char *out = o.out ? o.out : mkdtemp(tmp);
    report r = { .missing = STRBUF_INIT };
    if (out == NULL || stop_install() != 0) {
        cli_error("bench", "cannot start: %s", strerror(errno));
        free(runner);
        return 1;
    }
    progress_start(&r.bar, STDERR_FILENO, progress_wanted(STDERR_FILENO, o.bar),
                   "bench", 0);
    rc = finish(&r, &o, out, run_suite(&r, &o, runner, out));
    if (o.out == NULL)
        nftw(out, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(runner);
    free(r.results);
    sb_free(&r.missing);
    sb_free(&r.failures);
    sb_free(&r.err_line);
    sb_free(&r.err_tail);
    return rc;
}
