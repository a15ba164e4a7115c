/*
 * table — aligned text tables and cell formatters; see table.h.
 *
 * Width of a character.  What a terminal does with a code point is what the
 * C library's wcwidth says (terminals and wcwidth share the Unicode East
 * Asian Width and combining-mark tables), so we ask glibc rather than keep a
 * hand-copied table that goes stale with each Unicode release.  But wcwidth
 * depends on LC_CTYPE, and nbhub never calls setlocale: under cron, in
 * containers and over ssh the locale is often "C", where every non-ASCII
 * character is "unprintable".  So the width is asked under a private
 * C.UTF-8 locale object (newlocale + uselocale, per thread, nothing global
 * changes), and the output layout is the same whatever the user's locale.
 * Where C.UTF-8 does not exist, a small fallback knows the common wide
 * (CJK, Hangul, fullwidth, emoji) and combining ranges.
 *
 * Cutting.  A cut never splits a UTF-8 sequence, and combining marks stay
 * with the character they modify; the ellipsis takes one column, so the cut
 * text plus "…" fits the limit exactly.
 */
#include "cli/table.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#define TABLE_ELLIPSIS "\xe2\x80\xa6"   /* U+2026, one column */

struct table_cell {
    char  *text;     /* sanitised and cut */
    size_t width;    /* in columns */
};

struct table {
    size_t              ncols;
    struct table_cell  *headers;
    enum table_align   *align;
    size_t             *max;
    struct table_cell **rows;     /* rows[r][c] */
    size_t              nrows, caprows;
    size_t              cur;      /* next cell index in the last row */
};

/* ------------------------------------------------------------------ widths */

/* The private C.UTF-8 locale, made once (the CLI is single-threaded); it
 * stays reachable for the process's life, on purpose. */
static locale_t table_locale(void)
{
    static locale_t loc;
    static int tried;
    if (!tried) {
        tried = 1;
        loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    return loc;
}

/* Used only without a C.UTF-8 locale. */
static int table_fallback_width(unsigned cp)
{
    if ((cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x200b && cp <= 0x200f) ||
        (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xfe00 && cp <= 0xfe0f) ||
        (cp >= 0xfe20 && cp <= 0xfe2f))
        return 0;
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp != 0x303f) ||
        (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
        (cp >= 0xfe30 && cp <= 0xfe6f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
        (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd))
        return 2;
    return 1;
}

/* Columns of one (already sanitised, printable) code point; call with the
 * C.UTF-8 locale in use when `loc` is set. */
static int table_cp_width(unsigned cp, locale_t loc)
{
    if (cp < 0x80) return 1;
    if (!loc) return table_fallback_width(cp);
    int w = wcwidth((wchar_t)cp);
    /* -1: unassigned in glibc's Unicode version (often a newer emoji);
     * one column is the least surprising guess. */
    return w < 0 ? 1 : w;
}

/* Decode one UTF-8 sequence at s (n bytes left).  Returns its length and
 * the code point, or 0 for an invalid sequence (overlong forms, surrogates
 * and values past U+10FFFF included). */
static size_t table_utf8(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; *cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; *cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; *cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
    return len;
}

/*
 * The work of table_clean and table_width: append s, sanitised, to out
 * (may be NULL) while the width stays <= limit; returns the width appended
 * and sets *cut when something was left out.
 */
static size_t table_sanitize(const char *s, size_t limit, buf_t *out, int *cut)
{
    locale_t loc = table_locale();
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), width = 0;
    *cut = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t len = table_utf8(p + i, n - i, &cp);
        const char *bytes = (const char *)p + i;
        size_t nbytes = len;
        int w;
        if (len == 0) {                       /* not UTF-8: one byte -> U+FFFD */
            bytes = "\xef\xbf\xbd";
            nbytes = 3;
            w = 1;
            len = 1;
        } else if (cp == '\t' || cp == '\n' || cp == '\r') {
            bytes = " ";
            nbytes = 1;
            w = 1;
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            bytes = "?";                      /* ESC, CSI & co. never reach the tty */
            nbytes = 1;
            w = 1;
        } else {
            w = table_cp_width(cp, loc);
        }
        if (width + (size_t)w > limit) {
            *cut = 1;
            break;
        }
        width += (size_t)w;
        if (out) buf_append(out, bytes, nbytes);
        i += len;
    }
    if (loc) uselocale(old);
    return width;
}

size_t table_width(const char *s)
{
    int cut;
    return table_sanitize(s, (size_t)-1, NULL, &cut);
}

/* Sanitise and cut into a cell. */
static struct table_cell table_make_cell(const char *s, size_t max)
{
    buf_t b = BUF_INIT;
    int cut;
    size_t w = table_sanitize(s, (size_t)-1, NULL, &cut);
    if (max && w > max) {
        w = table_sanitize(s, max - 1, &b, &cut) + 1;
        buf_puts(&b, TABLE_ELLIPSIS);
    } else {
        table_sanitize(s, (size_t)-1, &b, &cut);
    }
    if (!b.data) buf_puts(&b, "");
    return (struct table_cell){ buf_detach(&b), w };
}

char *table_clean(const char *s, size_t max)
{
    NB_ASSERT(max != 1);   /* no room for even the ellipsis plus a character */
    return table_make_cell(s, max).text;
}

/* ------------------------------------------------------------------ tables */

table_t *table_new(size_t ncols, const char *const *headers)
{
    NB_ASSERT(ncols > 0);
    table_t *t = xcalloc(1, sizeof *t);
    t->ncols = ncols;
    t->headers = xcalloc(ncols, sizeof *t->headers);
    t->align = xcalloc(ncols, sizeof *t->align);
    t->max = xcalloc(ncols, sizeof *t->max);
    for (size_t c = 0; c < ncols; c++) {
        t->headers[c] = table_make_cell(headers[c] ? headers[c] : "", 0);
        t->max[c] = TABLE_DEFAULT_MAX;
    }
    return t;
}

void table_free(table_t *t)
{
    if (!t) return;
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) free(t->rows[r][c].text);
        free(t->rows[r]);
    }
    for (size_t c = 0; c < t->ncols; c++) free(t->headers[c].text);
    free(t->rows);
    free(t->headers);
    free(t->align);
    free(t->max);
    free(t);
}

void table_set_align(table_t *t, size_t col, enum table_align align)
{
    NB_ASSERT(col < t->ncols);
    t->align[col] = align;
}

void table_set_max_width(table_t *t, size_t col, size_t width)
{
    NB_ASSERT(col < t->ncols && width != 1);
    t->max[col] = width;
}

void table_add_row(table_t *t)
{
    if (t->nrows == t->caprows) {
        t->caprows = t->caprows ? 2 * t->caprows : 16;
        t->rows = xrealloc(t->rows, t->caprows * sizeof *t->rows);
    }
    t->rows[t->nrows++] = xcalloc(t->ncols, sizeof **t->rows);
    t->cur = 0;
}

void table_add_cell(table_t *t, const char *s)
{
    NB_ASSERT(t->nrows > 0 && t->cur < t->ncols);
    t->rows[t->nrows - 1][t->cur] = table_make_cell(s ? s : "-", t->max[t->cur]);
    t->cur++;
}

void table_add_cellf(table_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    table_add_cell(t, s);
    free(s);
}

size_t table_rows(const table_t *t)
{
    return t->nrows;
}

static void table_pad(buf_t *b, size_t n)
{
    while (n--) buf_putc(b, ' ');
}

static void table_line(const table_t *t, const struct table_cell *cells, const size_t *widths,
                       buf_t *out)
{
    size_t start = out->len;
    for (size_t c = 0; c < t->ncols; c++) {
        const char *text = cells[c].text ? cells[c].text : "";
        size_t w = cells[c].text ? cells[c].width : 0;
        if (c) buf_puts(out, "  ");
        if (t->align[c] == TABLE_RIGHT) table_pad(out, widths[c] - w);
        buf_puts(out, text);
        if (t->align[c] == TABLE_LEFT) table_pad(out, widths[c] - w);
    }
    /* No trailing blanks (an empty last cell, a cell ending in a newline). */
    while (out->len > start && out->data[out->len - 1] == ' ') out->len--;
    out->data[out->len] = '\0';
    buf_putc(out, '\n');
}

void table_render(const table_t *t, buf_t *out)
{
    size_t *widths = xcalloc(t->ncols, sizeof *widths);
    for (size_t c = 0; c < t->ncols; c++) {
        widths[c] = t->headers[c].width;
        for (size_t r = 0; r < t->nrows; r++)
            if (t->rows[r][c].text && t->rows[r][c].width > widths[c])
                widths[c] = t->rows[r][c].width;
    }
    table_line(t, t->headers, widths, out);
    for (size_t r = 0; r < t->nrows; r++) table_line(t, t->rows[r], widths, out);
    free(widths);
}

int table_print(const table_t *t, FILE *f)
{
    buf_t b = BUF_INIT;
    table_render(t, &b);
    size_t w = fwrite(b.data, 1, b.len, f);
    int ok = w == b.len;
    buf_free(&b);
    return ok ? 0 : -EIO;
}

/* ------------------------------------------------------------------ times */

int table_parse_time(const char *iso, int64_t *us)
{
    if (!iso) return -EINVAL;
    int Y, M, D, h, m, s, n = 0;
    if (sscanf(iso, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &s, &n) != 6 || n != 19)
        return -EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60) return -EINVAL;
    const char *p = iso + n;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 6) frac = frac * 10 + (*p - '0');
        if (digits == 0) return -EINVAL;
        for (; digits < 6; digits++) frac *= 10;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
            return -EINVAL;
        offset = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 1 + k;
    } else {
        return -EINVAL;   /* the API always says which zone */
    }
    if (*p) return -EINVAL;
    struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
                     .tm_hour = h, .tm_min = m, .tm_sec = s };
    int64_t secs = (int64_t)timegm(&tm) - offset;
    *us = secs * 1000000 + frac;
    return 0;
}

void table_ago(int64_t when_us, int64_t now_us, char *out, size_t n)
{
    int64_t d = now_us - when_us;
    int future = d < 0;
    uint64_t secs = (uint64_t)(future ? -d : d) / 1000000u;
    if (secs == 0) {
        snprintf(out, n, "now");
        return;
    }
    char amount[32];
    if (secs < 60) snprintf(amount, sizeof amount, "%llus", (unsigned long long)secs);
    else if (secs < 3600) snprintf(amount, sizeof amount, "%llum", (unsigned long long)(secs / 60));
    else if (secs < 86400) snprintf(amount, sizeof amount, "%lluh", (unsigned long long)(secs / 3600));
    else snprintf(amount, sizeof amount, "%llud", (unsigned long long)(secs / 86400));
    snprintf(out, n, future ? "in %s" : "%s ago", amount);
}

void table_time(const char *iso, int64_t now_us, char *out, size_t n)
{
    int64_t us;
    if (!iso) {
        snprintf(out, n, "-");
        return;
    }
    if (table_parse_time(iso, &us) < 0) {
        snprintf(out, n, "%s", iso);
        return;
    }
    time_t secs = (time_t)(us / 1000000);
    if (us < 0 && us % 1000000) secs--;
    struct tm tm;
    char when[32], ago[32];
    localtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    table_ago(us, now_us, ago, sizeof ago);
    snprintf(out, n, "%s (%s)", when, ago);
}

void table_duration(int64_t us, char *out, size_t n)
{
    if (us < 0) {
        snprintf(out, n, "-");
        return;
    }
    long long s = (long long)(us / 1000000);
    if (us < 10000000) snprintf(out, n, "%.1fs", (double)us / 1e6);
    else if (s < 60) snprintf(out, n, "%llds", s);
    else if (s < 3600) snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400) snprintf(out, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else snprintf(out, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}
