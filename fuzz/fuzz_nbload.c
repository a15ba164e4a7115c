/* libFuzzer harness for nb_load_text + nbjson.
 *
 * Beyond "does not crash", it checks the two properties the writer relies
 * on: (1) serialising is a fixed point — what nbjson_dump writes loads back
 * and serialises to the same bytes (split_lines and rejoin_lines undo each
 * other on a normalised notebook); (2) prefix + cells + suffix from
 * nbjson_dump_frame is byte-identical to nbjson_dump.  A violation aborts so
 * libFuzzer keeps the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nb.h"
#include "notebook/nbjson.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_same(const char *what, const buf_t *a, const buf_t *b)
{
    if (a->len == b->len && memcmp(a->data, b->data, a->len) == 0) return;
    fprintf(stderr, "fuzz_nbload: %s differs\n--- first\n%s\n--- second\n%s\n", what, a->data, b->data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *nb = NULL;
    nb_err_t err;
    if (nb_load_text((const char *)data, size, "fuzz", &nb, &err) < 0) return 0;

    buf_t first = BUF_INIT, second = BUF_INIT;
    nbjson_dump(nb, &first);

    /* (2) frame + cells == whole */
    buf_t pre = BUF_INIT, suf = BUF_INIT;
    nbjson_dump_frame(nb, &pre, &suf);
    buf_append(&second, pre.data, pre.len);
    json_t *cells = json_object_get(nb, "cells");
    for (size_t i = 0; i < json_array_size(cells); i++) {
        if (i) buf_puts(&second, NBJSON_CELL_SEP);
        nbjson_dump_value(json_array_get(cells, i), NBJSON_CELL_DEPTH, NBJSON_CELL, &second);
    }
    buf_append(&second, suf.data, suf.len);
    fuzz_check_same("frame", &first, &second);
    json_decref(nb);

    /* (1) load(dump(x)) dumps to the same bytes */
    if (nb_load_text(first.data, first.len, "fuzz-reload", &nb, &err) < 0) {
        fprintf(stderr, "fuzz_nbload: own output does not load: %s\n%s\n", err.msg, first.data);
        abort();
    }
    buf_reset(&second);
    nbjson_dump(nb, &second);
    fuzz_check_same("reload", &first, &second);

    json_decref(nb);
    buf_free(&pre);
    buf_free(&suf);
    buf_free(&first);
    buf_free(&second);
    return 0;
}
