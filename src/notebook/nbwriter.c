/* nbwriter — see nbwriter.h for the policy.
 *
 * The cache is one buffer per cell holding nbjson_dump_value's text for it.
 * A write re-serialises the dirty cells and the small frame around them
 * (nbjson_dump_frame), then hands the pieces to fs_write_atomic_chunks,
 * which writes them with no intermediate join.
 */
#include "notebook/nbwriter.h"
#include "notebook/nbjson.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct nbwriter {
    char          *path;
    buf_t         *cells;     /* cached text per cell */
    unsigned char *dirty;
    size_t         n, cap;
    int            all_dirty;
    int            pending;
    unsigned long  writes;
};

nbwriter_t *nbwriter_new(const char *path)
{
    nbwriter_t *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->all_dirty = 1;
    w->pending = 1;
    return w;
}

void nbwriter_free(nbwriter_t *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->cap; i++) buf_free(&w->cells[i]);
    free(w->cells);
    free(w->dirty);
    free(w->path);
    free(w);
}

void nbwriter_cell_dirty(nbwriter_t *w, size_t index)
{
    w->pending = 1;
    if (index < w->n) w->dirty[index] = 1;
    else w->all_dirty = 1;
}

void nbwriter_all_dirty(nbwriter_t *w)
{
    w->pending = 1;
    w->all_dirty = 1;
}

int nbwriter_pending(const nbwriter_t *w) { return w->pending; }
unsigned long nbwriter_writes(const nbwriter_t *w) { return w->writes; }

static void nbwriter_resize(nbwriter_t *w, size_t n)
{
    if (n > w->cap) {
        w->cells = xrealloc(w->cells, n * sizeof *w->cells);
        w->dirty = xrealloc(w->dirty, n);
        for (size_t i = w->cap; i < n; i++) w->cells[i] = (buf_t)BUF_INIT;
        w->cap = n;
    }
    w->n = n;
}

int nbwriter_write(nbwriter_t *w, const json_t *nb, int durable, nb_err_t *err)
{
    const json_t *cells = json_object_get(nb, "cells");
    size_t n = json_is_array(cells) ? json_array_size(cells) : 0;
    if (w->all_dirty || n != w->n) {
        nbwriter_resize(w, n);
        memset(w->dirty, 1, n);
        w->all_dirty = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!w->dirty[i]) continue;
        buf_reset(&w->cells[i]);
        nbjson_dump_value(json_array_get(cells, i), NBJSON_CELL_DEPTH, NBJSON_CELL, &w->cells[i]);
        w->dirty[i] = 0;
    }
    buf_t prefix = BUF_INIT, suffix = BUF_INIT;
    nbjson_dump_frame(nb, &prefix, &suffix);

    size_t nchunks = 2 + (n ? 2 * n - 1 : 0);
    struct fs_chunk *ch = xcalloc(nchunks, sizeof *ch);
    size_t k = 0;
    ch[k++] = (struct fs_chunk){ prefix.data, prefix.len };
    for (size_t i = 0; i < n; i++) {
        if (i) ch[k++] = (struct fs_chunk){ NBJSON_CELL_SEP, strlen(NBJSON_CELL_SEP) };
        ch[k++] = (struct fs_chunk){ w->cells[i].data, w->cells[i].len };
    }
    ch[k++] = (struct fs_chunk){ suffix.data, suffix.len };
    int rc = fs_write_atomic_chunks(w->path, ch, k, durable, err);
    free(ch);
    buf_free(&prefix);
    buf_free(&suffix);
    if (rc == 0) {
        w->pending = 0;
        w->writes++;
    }
    return rc;
}
