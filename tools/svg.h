/* SPDX-License-Identifier: MIT */
/*
 * svg.h - a horizontal bar chart as a hand-written SVG file, for
 * `cfutures demo --plot` and `cfutures bench --plot`: a title, then panels,
 * each with its own title and bars scaled to its own largest value (so
 * seconds and nanoseconds can share a file). Any browser shows it.
 */
#ifndef CF_TOOLS_SVG_H
#define CF_TOOLS_SVG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct svg_bar {
    const char *label;      /* left of the bar */
    double value;           /* the bar's length; <= 0 draws no bar */
    const char *value_text; /* right of the bar (e.g. "0.51 s  1.98x") */
    bool highlight;         /* drawn in the accent colour */
} svg_bar;

typedef struct svg_panel {
    const char *title;
    const svg_bar *bars;
    size_t n;
} svg_panel;

/* Writes the chart to path: 0, or -1 with errno set. subtitle may be
 * NULL. */
int svg_write_chart(const char *path, const char *title, const char *subtitle,
                    const svg_panel *panels, size_t n);

#endif /* CF_TOOLS_SVG_H */
