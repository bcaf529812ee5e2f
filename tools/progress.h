/* SPDX-License-Identifier: MIT */
/*
 * progress.h - a one-line progress bar on a terminal, redrawn in place.
 *
 *   label [########............] 37/100  2 failed  12.5/s  0:05 left  note
 *
 * The line is redrawn with "\r" and ended with "\033[K" (erase to the end of
 * the line), so it never scrolls; it is cut to the terminal's width so it
 * never wraps. Updates redraw at most once per PROGRESS_INTERVAL_S (and
 * at once after the line was hidden); progress_show redraws now. Before other output goes to the
 * same terminal, progress_hide erases the line; progress_end draws the final
 * state once and erases it, leaving the cursor at the start of a clean line.
 *
 * A bar is used by one thread (the one that owns the terminal output); it
 * writes with write(2), never through stdio, so it cannot be reordered with
 * output that is also written with write(2). A bar that is off does nothing.
 */
#ifndef CF_TOOLS_PROGRESS_H
#define CF_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#define PROGRESS_INTERVAL_S 0.1

typedef struct progress {
    int fd;            /* where it is drawn (standard error) */
    bool on;           /* false: every call does nothing */
    bool drawn;        /* the line is on the screen now */
    const char *label; /* borrowed */
    size_t total;      /* 0 when not known (yet) */
    size_t done, failed;
    char note[64]; /* what runs now, shown last */
    double t0, last_draw;
} progress;

/* Whether to draw on fd: when forced, or when fd is a terminal. */
bool progress_wanted(int fd, bool forced);

/* Starts a bar for total items (0: not known) labelled label (borrowed;
 * may be NULL). Draws nothing yet. */
void progress_start(progress *p, int fd, bool on, const char *label,
                    size_t total);

/* Sets the total once it is known. */
void progress_set_total(progress *p, size_t total);

/* Records the counts and a note (NULL keeps the last one), and redraws if
 * the line is not on the screen or was drawn more than PROGRESS_INTERVAL_S
 * ago. */
void progress_update(progress *p, size_t done, size_t failed, const char *note);

/* Redraws now. */
void progress_show(progress *p);

/* Erases the line if it is drawn. */
void progress_hide(progress *p);

/* Draws the final state, then erases the line. */
void progress_end(progress *p);

/* Formats the bar's line for the given width into buf (for tests of the
 * layout and for progress_show). */
void progress_format(const progress *p, double now, int width, char *buf,
                     size_t size);

#endif /* CF_TOOLS_PROGRESS_H */
