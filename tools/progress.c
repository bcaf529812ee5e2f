/* SPDX-License-Identifier: MIT */
/*
 * progress.c - the progress bar of progress.h: formatting the line, and
 * drawing and erasing it in place with "\r" and "\033[K".
 *
 * The line holds, in order and as far as the width allows: the label, a
 * bar (when the total is known), done/total, failures (when any), the rate
 * in items per second, the time left (when the total is known and something
 * is done), and the note. Fields that do not fit are dropped from the right.
 */
#include "progress.h"

#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define ERASE_LINE "\033[K"

bool progress_wanted(int fd, bool forced)
{
    return forced || isatty(fd);
}

void progress_start(progress *p, int fd, bool on, const char *label,
                    size_t total)
{
    memset(p, 0, sizeof *p);
    p->fd = fd;
    p->on = on;
    p->label = label;
    p->total = total;
    p->t0 = cli_now();
    p->last_draw = -1.0;
}

void progress_set_total(progress *p, size_t total)
{
    p->total = total;
}

/* The terminal's width, or 80 when fd is not a terminal. */
static int width_of(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* "1:05" or "1:02:03". */
static void format_duration(double s, char *buf, size_t size)
{
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

/* Appends field to buf (separated by two spaces) if it fits in width. */
static void add_field(char *buf, size_t size, int width, const char *field)
{
    size_t len = strlen(buf);
    size_t sep = len ? 2 : 0;
    if (field[0] == '\0' || len + sep + strlen(field) > (size_t)width ||
        len + sep + strlen(field) >= size)
        return;
    snprintf(buf + len, size - len, "%s%s", sep ? "  " : "", field);
}

static void format_bar(const progress *p, int cells, char *out, size_t size)
{
    if (cells < 4 || (size_t)cells + 3 > size) {
        out[0] = '\0';
        return;
    }
    size_t done = p->done > p->total ? p->total : p->done;
    int full = (int)((double)cells * (double)done / (double)p->total);
    out[0] = '[';
    for (int i = 0; i < cells; i++)
        out[1 + i] = i < full ? '#' : '.';
    out[cells + 1] = ']';
    out[cells + 2] = '\0';
}

void progress_format(const progress *p, double now, int width, char *buf,
                     size_t size)
{
    char field[96];
    double elapsed = now - p->t0;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    int limit = width - 1; /* the last column would wrap on some terminals */
    buf[0] = '\0';
    add_field(buf, size, limit, p->label ? p->label : "");
    if (p->total > 0) {
        format_bar(p, limit / 4 > 30 ? 30 : limit / 4, field, sizeof field);
        add_field(buf, size, limit, field);
        snprintf(field, sizeof field, "%zu/%zu", p->done, p->total);
    } else {
        snprintf(field, sizeof field, "%zu done", p->done);
    }
    add_field(buf, size, limit, field);
    if (p->failed > 0) {
        snprintf(field, sizeof field, "%zu failed", p->failed);
        add_field(buf, size, limit, field);
    }
    snprintf(field, sizeof field, "%.1f/s", rate);
    add_field(buf, size, limit, field);
    if (p->total > 0 && p->done > 0 && p->done < p->total && rate > 0) {
        char d[32];
        format_duration((double)(p->total - p->done) / rate, d, sizeof d);
        snprintf(field, sizeof field, "%s left", d);
        add_field(buf, size, limit, field);
    }
    add_field(buf, size, limit, p->note);
}

void progress_show(progress *p)
{
    if (!p->on)
        return;
    char line[512];
    double now = cli_now();
    int width = width_of(p->fd);
    line[0] = '\r';
    progress_format(p, now, width, line + 1, sizeof line - 1 - 4);
    strcat(line, ERASE_LINE);
    (void)cli_write_all(p->fd, line, strlen(line));
    p->drawn = true;
    p->last_draw = now;
}

void progress_update(progress *p, size_t done, size_t failed, const char *note)
{
    p->done = done;
    p->failed = failed;
    if (note)
        snprintf(p->note, sizeof p->note, "%s", note);
    if (p->on && (!p->drawn || cli_now() - p->last_draw >= PROGRESS_INTERVAL_S))
        progress_show(p);
}

void progress_hide(progress *p)
{
    if (!p->on || !p->drawn)
        return;
    static const char erase[] = "\r" ERASE_LINE;
    (void)cli_write_all(p->fd, erase, sizeof erase - 1);
    p->drawn = false;
}

void progress_end(progress *p)
{
    if (!p->on)
        return;
    progress_show(p);
    progress_hide(p);
}
