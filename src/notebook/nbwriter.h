/*
 * nbwriter — the crash-safe, incremental writer of the output notebook.
 *
 * Policy (documented in docs/ARCHITECTURE.md and the README):
 *  - OUT is only ever replaced atomically (temp file in the same directory,
 *    then rename), so a reader or a crash sees the previous complete version
 *    or the new one, never a torn file;
 *  - while the run goes on, OUT is refreshed at most once per interval
 *    (1 s by default) and only if something changed — never once per cell,
 *    which is what makes papermill O(N^2) on big notebooks (#454);
 *  - each cell's serialised text is cached and re-serialised only when the
 *    cell changed, so a refresh costs serialising the changed cells plus one
 *    sequential write of the file;
 *  - the final write is fsync'ed (data and directory) before nbhub exits.
 *
 * Ownership: the writer borrows the notebook passed to nbwriter_write and
 * keeps only strings.
 */
#ifndef NBHUB_NBWRITER_H
#define NBHUB_NBWRITER_H

#include <jansson.h>
#include "util/err.h"

typedef struct nbwriter nbwriter_t;

nbwriter_t *nbwriter_new(const char *path);
void nbwriter_free(nbwriter_t *w);
/* Cell `index` changed and must be re-serialised. */
void nbwriter_cell_dirty(nbwriter_t *w, size_t index);
/* Cells were inserted/removed, or everything changed. */
void nbwriter_all_dirty(nbwriter_t *w);
/* Something changed since the last write. */
int  nbwriter_pending(const nbwriter_t *w);
/* Write now.  durable = fsync.  Returns 0 or negative errno. */
int  nbwriter_write(nbwriter_t *w, const json_t *nb, int durable, nb_err_t *err);
/* Number of completed writes (for tests and benchmarks). */
unsigned long nbwriter_writes(const nbwriter_t *w);

#endif
