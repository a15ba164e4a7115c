/*
 * errlist — a list of positioned error messages ("FILE:LINE:COLUMN: message").
 *
 * Parsers of user files (flows today) report every problem they find, not
 * only the first: fixing a file one error per reload is slow and annoying.
 * The list keeps at most ERRLIST_MAX entries and counts the rest, so a
 * hostile or badly broken file cannot make the report unbounded.
 *
 * Ownership: the nb_errlist_t struct belongs to whoever declares it
 * (initialise with ERRLIST_INIT or errlist_init); the entries and their
 * strings belong to the list and are released by errlist_free.  Strings
 * passed in are copied.
 */
#ifndef NBHUB_ERRLIST_H
#define NBHUB_ERRLIST_H

#include <stddef.h>

#include "util/buf.h"

#define ERRLIST_MAX 50

typedef struct nb_errent {
    char  *file;   /* as given for messages; never NULL */
    int    line;   /* 1-based; 0 = the whole file (no position) */
    int    col;    /* 1-based; 0 = no column */
    char  *msg;    /* the message without the position prefix */
    size_t seq;    /* insertion order, keeps errlist_sort stable */
} nb_errent_t;

typedef struct nb_errlist {
    nb_errent_t *v;
    size_t       n;
    size_t       cap;
    size_t       dropped;  /* errors beyond ERRLIST_MAX, not stored */
    size_t       seq;
} nb_errlist_t;

#define ERRLIST_INIT { NULL, 0, 0, 0, 0 }

void errlist_init(nb_errlist_t *l);
void errlist_free(nb_errlist_t *l);
/* Number of errors reported, including the dropped ones. */
size_t errlist_count(const nb_errlist_t *l);
/* Append one error; file may be NULL ("<string>"). */
void errlist_add(nb_errlist_t *l, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Sort entries [from, n) by (line, column), insertion order among equals:
 * "file order" when one file's errors were found in several passes (pass
 * the count from before parsing that file). */
void errlist_sort(nb_errlist_t *l, size_t from);
/* Entry i formatted as "FILE:LINE:COL: msg" (or "FILE: msg" without a
 * position) into a fresh string (free() it). */
char *errlist_format_one(const nb_errlist_t *l, size_t i);
/* All entries, one per line, plus "... and N more errors" when some were
 * dropped. Appended to b. */
void errlist_format(const nb_errlist_t *l, buf_t *b);

/* The candidate closest to `word` by edit distance (insertions, deletions,
 * substitutions, transpositions; case differences cost nothing extra when
 * the words are equal ignoring case), or NULL when none is close enough to
 * be a plausible typo.  Used for "did you mean ...?" hints. */
const char *errlist_closest(const char *word, const char *const *cands, size_t n);

#endif
