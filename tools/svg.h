/* SPDX-License-Identifier: MIT */
/*
 * svg.h - charts as hand-written SVG files. A horizontal bar chart for
 * `cfutures demo --plot` and `cfutures bench --plot`: a title, then panels,
 * each with its own title and bars scaled to its own largest value (so
 * seconds and nanoseconds can share a file) or to one scale for all, with
 * a tick-marked axis. And timelines for `cfutures trace --svg` and the
 * demo: a lane per thread, its tasks as bars. Any browser shows them.
 */
#ifndef CF_TOOLS_SVG_H
#define CF_TOOLS_SVG_H

#include <stdbool.h>
#include <stddef.h>

#include "../src/platform/utf8.h"

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
 * NULL. Each panel has its own scale and axis. */
int svg_write_chart(const char *path, const char *title, const char *subtitle,
                    const svg_panel *panels, size_t n);

/* A chart with its options: with shared_scale every panel uses the scale of
 * the largest value of all (comparable at a glance); unit labels the axis
 * ticks ("s" ticks in s or ms; NULL plain numbers). */
typedef struct svg_chart {
    const char *title, *subtitle;
    const svg_panel *panels;
    size_t n;
    bool shared_scale;
    const char *unit;
} svg_chart;
int svg_write_chart_opts(const char *path, const svg_chart *c);

/* ---- timelines: one lane per thread, time left to right ---------------- */

typedef enum svg_span_kind {
    SVG_TASK,   /* a task: a bar in its function's colour */
    SVG_INLINE, /* a task run inline by a wait: a bar in the lower half */
    SVG_WAIT    /* a blocked wait inside a task: a gap cut in the bar */
} svg_span_kind;

typedef struct svg_span {
    double t0, t1; /* seconds from the panel's start */
    svg_span_kind kind;
    unsigned color; /* an index into the palette */
} svg_span;

typedef struct svg_lane {
    const char *name;
    const svg_span *spans;
    size_t n;
} svg_lane;

typedef struct svg_timeline {
    const char *title;
    const svg_lane *lanes;
    size_t n;
} svg_timeline;

typedef struct svg_legend {
    const char *label;
    unsigned color;
} svg_legend;

/* Writes panels of lanes on one time axis of `seconds` (shared by every
 * panel, so their lengths compare), with a legend of colours: 0, or -1
 * with errno set. */
int svg_write_timelines(const char *path, const char *title,
                        const char *subtitle, const svg_timeline *panels,
                        size_t n, double seconds, const svg_legend *legend,
                        size_t n_legend);

#endif /* CF_TOOLS_SVG_H */
