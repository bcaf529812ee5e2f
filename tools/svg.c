/* SPDX-License-Identifier: MIT */
/*
 * svg.c - the charts of svg.h, written with fprintf. Text is escaped for
 * XML; the layout is fixed-width. Bar charts: labels on the left,
 * right-aligned, bars from one axis with ticks under each panel, values
 * after the bars. Timelines: lane names on the left, one time axis for all
 * panels, ticks at 1, 2 or 5 times a power of ten.
 */
#include "svg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum {
    WIDTH = 900,
    LABEL_RIGHT = 330, /* labels end here */
    BAR_LEFT = 340,
    BAR_MAX = 380, /* the longest bar of a panel */
    ROW = 24,
    BAR_HEIGHT = 16,
    PANEL_TITLE = 30,
    AXIS = 26, /* the tick labels under a panel */
    PANEL_GAP = 12,
    HEADER = 70
};

/* Text for XML: the markup characters escaped, and what XML 1.0 forbids
 * (control characters, bytes that are not UTF-8: a file name, a label from
 * a hostile trace) written as '?', so the document always parses. */
static void put_xml(FILE *f, const char *s)
{
    while (s && *s) {
        size_t n = cf__utf8_len(s);
        switch (n == 1 ? *s : '\0') {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if (n == 0 || (n == 1 && (unsigned char)*s < 0x20))
                fputc('?', f);
            else
                fwrite(s, 1, n, f);
        }
        s += n ? n : 1;
    }
}

static void write_text(FILE *f, int x, int y, const char *anchor, int size,
                       const char *weight, const char *text)
{
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\" font-size=\"%d\" "
            "font-weight=\"%s\">",
            x, y, anchor, size, weight);
    put_xml(f, text);
    fputs("</text>\n", f);
}

static void write_head(FILE *f, int width, int height, const char *title,
                       const char *subtitle)
{
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    write_text(f, 20, 32, "start", 18, "bold", title);
    if (subtitle)
        write_text(f, 20, 54, "start", 12, "normal", subtitle);
}

static int finish(FILE *f)
{
    fputs("</svg>\n", f);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

/* ---- axes ------------------------------------------------------------- */

/* A tick step of 1, 2 or 5 times a power of ten: about six ticks up to max. */
static double tick_step(double max)
{
    if (!(max > 0))
        return 1;
    double raw = max / 6, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* A tick's label: seconds as s or ms (by the axis's length), else %g. */
static void tick_label(char *buf, size_t n, double v, double max,
                       const char *unit)
{
    if (unit && strcmp(unit, "s") == 0 && max < 1)
        snprintf(buf, n, "%g ms", round(v * 1e6) / 1e3);
    else if (unit)
        snprintf(buf, n, "%g %s", round(v * 1e6) / 1e6, unit);
    else
        snprintf(buf, n, "%g", round(v * 1e6) / 1e6);
}

/* A horizontal axis at y from x0 (value 0) over width px for [0, max]. */
static void write_axis(FILE *f, int x0, int y, int width, double max,
                       const char *unit)
{
    fprintf(f,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>\n",
            x0, y, x0 + width, y);
    double step = tick_step(max);
    for (int i = 0; i * step <= max * (1 + 1e-9) && i < 50; i++) {
        double v = i * step;
        int x = x0 + (int)lround(width * v / max);
        char label[32];
        tick_label(label, sizeof label, v, max, unit);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "stroke=\"#555\"/>\n",
                x, y, x, y + 4);
        write_text(f, x, y + 16, "middle", 10, "normal", label);
    }
}

/* ---- bar charts ------------------------------------------------------- */

static double panel_max(const svg_panel *p)
{
    double max = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->bars[i].value > max)
            max = p->bars[i].value;
    return max;
}

static int chart_height(const svg_panel *panels, size_t n)
{
    int h = HEADER;
    for (size_t i = 0; i < n; i++)
        h += PANEL_TITLE + ROW * (int)panels[i].n + AXIS + PANEL_GAP;
    return h + 10;
}

/* One panel from y, bars scaled to max; returns the y below it. */
static int write_panel(FILE *f, const svg_panel *p, int y, double max,
                       const char *unit)
{
    write_text(f, 20, y + 20, "start", 14, "bold", p->title);
    y += PANEL_TITLE;
    fprintf(f,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n",
            BAR_LEFT, y - 4, BAR_LEFT, y + ROW * (int)p->n);
    for (size_t i = 0; i < p->n; i++) {
        const svg_bar *b = &p->bars[i];
        double w = max > 0 && b->value > 0 ? BAR_MAX * b->value / max : 0;
        if (w > 0 && w < 1)
            w = 1;
        write_text(f, LABEL_RIGHT, y + 13, "end", 12, "normal", b->label);
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                "fill=\"%s\"/>\n",
                BAR_LEFT, y, w, BAR_HEIGHT,
                b->highlight ? "#e8743b" : "#4e79a7");
        write_text(f, BAR_LEFT + (int)w + 6, y + 13, "start", 12, "normal",
                   b->value_text);
        y += ROW;
    }
    if (max > 0)
        write_axis(f, BAR_LEFT, y, BAR_MAX, max, unit);
    return y + AXIS + PANEL_GAP;
}

int svg_write_chart_opts(const char *path, const svg_chart *c)
{
    FILE *f = fopen(path, "we");
    if (f == NULL)
        return -1;
    write_head(f, WIDTH, chart_height(c->panels, c->n), c->title, c->subtitle);
    double shared = 0;
    for (size_t i = 0; i < c->n; i++)
        if (panel_max(&c->panels[i]) > shared)
            shared = panel_max(&c->panels[i]);
    int y = HEADER;
    for (size_t i = 0; i < c->n; i++)
        y = write_panel(f, &c->panels[i], y,
                        c->shared_scale ? shared : panel_max(&c->panels[i]),
                        c->unit);
    return finish(f);
}

int svg_write_chart(const char *path, const char *title, const char *subtitle,
                    const svg_panel *panels, size_t n)
{
    svg_chart c = { title, subtitle, panels, n, false, NULL };
    return svg_write_chart_opts(path, &c);
}

/* ---- timelines -------------------------------------------------------- */

enum {
    TL_WIDTH = 1000,
    TL_LEFT = 140, /* lanes start here; names end 8 px before */
    TL_PLOT = 830,
    LANE = 16,
    LANE_BAR = 12,
    LEGEND = 30
};

static const char *const palette[] = { "#4e79a7", "#e8743b", "#59a14f",
                                       "#b07aa1", "#edc948", "#76b7b2",
                                       "#ff9da7", "#9c755f" };
enum { N_COLORS = sizeof palette / sizeof palette[0] };

static int timelines_height(const svg_timeline *panels, size_t n)
{
    int h = HEADER;
    for (size_t i = 0; i < n; i++)
        h += PANEL_TITLE + LANE * (int)panels[i].n + AXIS + PANEL_GAP;
    return h + LEGEND + 10;
}

static double x_of(double t, double seconds)
{
    double x = TL_LEFT + TL_PLOT * (t < 0 ? 0 : t) / seconds;
    return x > TL_LEFT + TL_PLOT ? TL_LEFT + TL_PLOT : x;
}

/* A span as a rect: tasks fill the lane's bar, inline tasks its lower
 * half, waits cut a white gap (outlined) into the task around them. */
static void write_span(FILE *f, const svg_span *sp, int y, double seconds)
{
    double x0 = x_of(sp->t0, seconds), x1 = x_of(sp->t1, seconds);
    double w = x1 - x0 < 0.5 ? 0.5 : x1 - x0;
    const char *color = palette[sp->color % N_COLORS];
    switch (sp->kind) {
    case SVG_TASK: /* a hairline between tasks that follow each other */
        fprintf(f,
                "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
                "fill=\"%s\"%s/>\n",
                x0, y, w, LANE_BAR, color,
                w > 3 ? " stroke=\"white\" stroke-width=\"0.5\"" : "");
        break;
    case SVG_INLINE:
        fprintf(f,
                "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
                "fill=\"%s\" stroke=\"#222\" stroke-width=\"0.4\"/>\n",
                x0, y + LANE_BAR / 2, w, LANE_BAR / 2, color);
        break;
    case SVG_WAIT:
        fprintf(f,
                "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
                "fill=\"white\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
                x0, y + 2, w, LANE_BAR - 4);
        break;
    }
}

static int write_timeline(FILE *f, const svg_timeline *p, int y, double seconds)
{
    write_text(f, 20, y + 20, "start", 14, "bold", p->title);
    y += PANEL_TITLE;
    for (size_t i = 0; i < p->n; i++) {
        const svg_lane *l = &p->lanes[i];
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                "fill=\"%s\"/>\n",
                TL_LEFT, y, TL_PLOT, LANE_BAR, i % 2 ? "#f4f4f4" : "#ececec");
        write_text(f, TL_LEFT - 8, y + 10, "end", 10, "normal", l->name);
        for (int pass = 0; pass < 3; pass++) /* tasks, waits, inline */
            for (size_t k = 0; k < l->n; k++)
                if ((int)l->spans[k].kind == (pass == 0   ? SVG_TASK
                                              : pass == 1 ? SVG_WAIT
                                                          : SVG_INLINE))
                    write_span(f, &l->spans[k], y, seconds);
        y += LANE;
    }
    write_axis(f, TL_LEFT, y + 2, TL_PLOT, seconds, "s");
    return y + AXIS + PANEL_GAP;
}

int svg_write_timelines(const char *path, const char *title,
                        const char *subtitle, const svg_timeline *panels,
                        size_t n, double seconds, const svg_legend *legend,
                        size_t n_legend)
{
    FILE *f = fopen(path, "we");
    if (f == NULL)
        return -1;
    if (!(seconds > 0))
        seconds = 1e-3;
    write_head(f, TL_WIDTH, timelines_height(panels, n), title, subtitle);
    int y = HEADER;
    for (size_t i = 0; i < n; i++)
        y = write_timeline(f, &panels[i], y, seconds);
    /* The legend: colours, then what the gaps mean. */
    int x = 20;
    y += 6;
    for (size_t i = 0; i < n_legend && x < TL_WIDTH - 260; i++) {
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" "
                "fill=\"%s\"/>\n",
                x, y, palette[legend[i].color % N_COLORS]);
        write_text(f, x + 16, y + 10, "start", 11, "normal", legend[i].label);
        x += 28 + 7 * (int)strlen(legend[i].label);
    }
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" "
            "fill=\"white\" stroke=\"#999\"/>\n",
            x, y);
    write_text(f, x + 16, y + 10, "start", 11, "normal",
               "blocked wait (gap); no bar: idle");
    return finish(f);
}
