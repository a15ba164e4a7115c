/*
 * table — aligned text tables for the human output of the CLI clients
 * (`nbhub flow list`, `nbhub runs list`, ...), and the cell formatters they
 * share (times, durations).
 *
 *     ID  FLOW          STATE    STARTED
 *      7  daily-report  success  2026-11-22 05:00:00 (3m ago)
 *
 * Column widths come from the content, measured in terminal columns, not
 * bytes: "日本" takes four columns, "é" written as e + U+0301 takes one.  A
 * cell wider than its column's limit is cut and ends with "…", so one long
 * error message cannot push every other row off the screen.  Scripts use
 * --json instead; this output is for eyes and may change.
 *
 * Cells are sanitised when added: tabs and newlines become spaces, other
 * control characters (C0, DEL, C1) become '?', and bytes that are not UTF-8
 * become U+FFFD.  The text comes from the server (flow descriptions, task
 * error messages): a raw ESC in it must not reach the terminal, where it
 * could rewrite the screen or the title.
 *
 * Ownership: a table_t belongs to its creator (table_free).  Strings passed
 * in are copied; strings returned are fresh (free()).
 */
#ifndef NBHUB_TABLE_H
#define NBHUB_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/buf.h"

/* Default limit of a cell, in columns; table_set_max_width changes it. */
#define TABLE_DEFAULT_MAX 60

typedef struct table table_t;

enum table_align { TABLE_LEFT = 0, TABLE_RIGHT = 1 };

/* A table with ncols columns and these header texts (copied). */
table_t *table_new(size_t ncols, const char *const *headers);
void     table_free(table_t *t);
void     table_set_align(table_t *t, size_t col, enum table_align align);
/* Limit of a column in terminal columns (>= 2; 0 = no limit). */
void     table_set_max_width(table_t *t, size_t col, size_t width);

/* Start a new row; cells are then added left to right.  A row given fewer
 * cells than columns is padded with empty cells; more is a bug (asserted). */
void     table_add_row(table_t *t);
/* Add one cell; NULL shows as "-". */
void     table_add_cell(table_t *t, const char *s);
void     table_add_cellf(table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t   table_rows(const table_t *t);

/* Render: header line then one line per row, columns separated by two
 * spaces, no trailing spaces. */
void     table_render(const table_t *t, buf_t *out);
/* table_render to f; 0 or -EIO. */
int      table_print(const table_t *t, FILE *f);

/* Terminal columns taken by a UTF-8 string (after sanitising, as above). */
size_t   table_width(const char *s);
/* s sanitised and cut to at most max columns (0 = no limit), "…" marking a
 * cut.  Fresh string. */
char    *table_clean(const char *s, size_t max);

/* Parse an API time ("2026-11-22T05:00:00Z", optional fraction, "Z" or
 * "+HH:MM") into microseconds since the epoch; 0 or -EINVAL. */
int      table_parse_time(const char *iso, int64_t *us);
/* "2026-11-22 05:00:00 (3m ago)" in the local time zone (TZ), relative to
 * now_us ("in 5m" for the future, "(now)" within a second); "-" for NULL;
 * the input itself when it does not parse. */
void     table_time(const char *iso, int64_t now_us, char *out, size_t n);
/* "3m ago" / "in 2h" / "now" for a difference of when - now_us. */
void     table_ago(int64_t when_us, int64_t now_us, char *out, size_t n);
/* A duration for humans: "0.4s", "12s", "2m05s", "1h02m", "3d04h". */
void     table_duration(int64_t us, char *out, size_t n);

#endif
