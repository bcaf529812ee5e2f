/* SPDX-License-Identifier: MIT */
/*
 * trace.h - reading the trace files cf_trace_stop writes (Chrome Trace
 * Event JSON), for `cfutures trace` and the demo's pictures: lanes (one
 * per thread) of spans (tasks, inline tasks, blocked waits, sleeps), the
 * task functions' names, steals and the process pools' events.
 */
#ifndef CF_TOOLS_TRACE_H
#define CF_TOOLS_TRACE_H

#include "svg.h"

#include <stdio.h>

typedef enum tr_kind { TR_TASK, TR_INLINE, TR_WAIT, TR_SLEEP } tr_kind;

typedef struct tr_span {
    double t0, t1; /* seconds from the trace's start */
    tr_kind kind;
    int fn; /* tasks: an index into tr_trace.fns */
} tr_span;

typedef struct tr_lane {
    long tid;
    char *name;
    tr_span *spans;
    size_t n, cap;
    size_t steals;
    double busy, waiting; /* seconds: running tasks (less waits), blocked */
} tr_lane;

typedef struct tr_trace {
    tr_lane *lanes; /* sorted by name, numbers in names compared as numbers */
    size_t n;
    char **fns; /* task function names */
    size_t n_fns;
    unsigned *fn_color; /* per function: its rank by total time, at most 7 */
    double duration;    /* seconds */
    size_t dispatched, started, died, replaced, retired; /* process pools */
} tr_trace;

/* Reads path into *t: 0, or -1 with a message in err (errno-style or a
 * parse error with its byte offset). */
int trace_load(const char *path, tr_trace *t, char *err, size_t err_len);
void trace_free(tr_trace *t);

/* The trace as a timeline panel: lanes that have spans (busiest first when
 * there are more than max_lanes, then cut). The panel points into t and
 * into *lanes_out, which the caller frees with trace_panel_free. */
int trace_panel(const tr_trace *t, const char *title, size_t max_lanes,
                unsigned color_base, svg_timeline *out);
void trace_panel_free(svg_timeline *p);
/* A legend of the task functions' colours (as trace_panel colours them,
 * from color_base on): at most n entries into legend; returns how many. */
size_t trace_legend(const tr_trace *t, unsigned color_base, svg_legend *legend,
                    size_t n);

#endif /* CF_TOOLS_TRACE_H */
