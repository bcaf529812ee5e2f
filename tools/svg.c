/* SPDX-License-Identifier: MIT */
/*
 * svg.c - the bar chart of svg.h, written with fprintf. Text is escaped
 * for XML; the layout is fixed-width (labels on the left, right-aligned,
 * bars from one axis, values after the bars).
 */
#include "svg.h"

#include <errno.h>
#include <stdio.h>

enum {
    WIDTH = 900,
    LABEL_RIGHT = 330, /* labels end here */
    BAR_LEFT = 340,
    BAR_MAX = 380, /* the longest bar of a panel */
    ROW = 24,
    BAR_HEIGHT = 16,
    PANEL_TITLE = 30,
    PANEL_GAP = 12,
    HEADER = 70
};

static void put_xml(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static int chart_height(const svg_panel *panels, size_t n)
{
    int h = HEADER;
    for (size_t i = 0; i < n; i++)
        h += PANEL_TITLE + ROW * (int)panels[i].n + PANEL_GAP;
    return h + 10;
}

static double panel_max(const svg_panel *p)
{
    double max = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->bars[i].value > max)
            max = p->bars[i].value;
    return max;
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

/* One panel from y; returns the y below it. */
static int write_panel(FILE *f, const svg_panel *p, int y)
{
    double max = panel_max(p);
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
    return y + PANEL_GAP;
}

int svg_write_chart(const char *path, const char *title, const char *subtitle,
                    const svg_panel *panels, size_t n)
{
    FILE *f = fopen(path, "we");
    if (f == NULL)
        return -1;
    int height = chart_height(panels, n);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            WIDTH, height, WIDTH, height);
    write_text(f, 20, 32, "start", 18, "bold", title);
    if (subtitle)
        write_text(f, 20, 54, "start", 12, "normal", subtitle);
    int y = HEADER;
    for (size_t i = 0; i < n; i++)
        y = write_panel(f, &panels[i], y);
    fputs("</svg>\n", f);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}
