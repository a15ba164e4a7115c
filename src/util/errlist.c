/*
 * errlist — see errlist.h.
 *
 * Positions are kept apart from the text so that a caller can sort the
 * errors of several passes into file order, and so that the API can return
 * them as structured JSON ({file, line, column, message}) later.
 */
#include "util/errlist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xmalloc.h"

void errlist_init(nb_errlist_t *l)
{
    memset(l, 0, sizeof *l);
}

void errlist_free(nb_errlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].file);
        free(l->v[i].msg);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

size_t errlist_count(const nb_errlist_t *l)
{
    return l->n + l->dropped;
}

void errlist_add(nb_errlist_t *l, const char *file, int line, int col, const char *fmt, ...)
{
    if (l->n >= ERRLIST_MAX) {
        l->dropped++;
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    va_list ap;
    va_start(ap, fmt);
    nb_errent_t *e = &l->v[l->n++];
    e->file = xstrdup(file ? file : "<string>");
    e->line = line;
    e->col = col;
    e->msg = xvasprintf(fmt, ap);
    e->seq = l->seq++;
    va_end(ap);
}

static int ent_cmp(const void *a, const void *b)
{
    const nb_errent_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void errlist_sort(nb_errlist_t *l, size_t from)
{
    if (from < l->n && l->n - from > 1)
        qsort(l->v + from, l->n - from, sizeof *l->v, ent_cmp);
}

char *errlist_format_one(const nb_errlist_t *l, size_t i)
{
    const nb_errent_t *e = &l->v[i];
    if (e->line <= 0)
        return xasprintf("%s: %s", e->file, e->msg);
    if (e->col <= 0)
        return xasprintf("%s:%d: %s", e->file, e->line, e->msg);
    return xasprintf("%s:%d:%d: %s", e->file, e->line, e->col, e->msg);
}

void errlist_format(const nb_errlist_t *l, buf_t *b)
{
    for (size_t i = 0; i < l->n; i++) {
        char *s = errlist_format_one(l, i);
        buf_puts(b, s);
        buf_putc(b, '\n');
        free(s);
    }
    if (l->dropped)
        buf_printf(b, "... and %zu more error%s\n", l->dropped, l->dropped == 1 ? "" : "s");
}

/* Optimal string alignment distance (Damerau-Levenshtein without
 * substring moves), case-insensitive; words are short keys, so the
 * quadratic table is fine.  Long words are not compared at all. */
static size_t osa_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64)
        return (size_t)-1;
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int ca = a[i - 1], cb = b[j - 1];
            if (ca >= 'A' && ca <= 'Z') ca += 'a' - 'A';
            if (cb >= 'A' && cb <= 'Z') cb += 'a' - 'A';
            size_t cost = ca != cb;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1) {
                int pa = a[i - 2], pb = b[j - 2];
                if (pa >= 'A' && pa <= 'Z') pa += 'a' - 'A';
                if (pb >= 'A' && pb <= 'Z') pb += 'a' - 'A';
                if (ca == pb && pa == cb && d[i - 2][j - 2] + 1 < best)
                    best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[n][m];
}

const char *errlist_closest(const char *word, const char *const *cands, size_t n)
{
    /* A plausible typo: at most a third of the word wrong, and at least one
     * edit allowed (two for words of 6+ letters). */
    size_t len = strlen(word);
    size_t limit = len / 3;
    if (limit < 1) limit = 1;
    if (len >= 6 && limit < 2) limit = 2;
    const char *best = NULL;
    size_t bestd = limit + 1;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(word, cands[i]) == 0)
            return cands[i];
        size_t d = osa_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}
