/* libFuzzer harness for jparse: a differential test against json_loadb.
 *
 * For every input and each flag set nbhub uses, the fast path must accept
 * exactly what jansson accepts and build the same tree (json_equal, and the
 * same serialisation, so key order and number types too); jparse as a whole
 * must then report jansson's error text and position, and jwrite must write
 * every accepted tree back as json_dumps(JSON_COMPACT) does.  A difference aborts
 * so libFuzzer keeps the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jparse.h"
#include "util/jwrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_jparse_one(const char *s, size_t n, size_t flags)
{
    json_error_t ea, eb;
    json_t *f = jparse_fast(s, n, flags), *b = json_loadb(s, n, flags, &eb);
    if (!f != !b) {
        fprintf(stderr, "fuzz_jparse: fast path %s, jansson %s (%s), flags %zx\n", f ? "accepts" : "rejects",
                b ? "accepts" : "rejects", b ? "" : eb.text, flags);
        abort();
    }
    if (f) {
        char *df = json_dumps(f, JSON_ENCODE_ANY), *db = json_dumps(b, JSON_ENCODE_ANY);
        if (!json_equal(f, b) || strcmp(df, db) != 0) {
            fprintf(stderr, "fuzz_jparse: trees differ\n%s\n%s\n", df, db);
            abort();
        }
        free(df);
        free(db);
        /* the writing half: jwrite's bytes are json_dumps's */
        char *dc = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
        buf_t w = BUF_INIT;
        jwrite_value(&w, f);
        if (!dc || w.len != strlen(dc) || memcmp(w.data, dc, w.len) != 0) {
            fprintf(stderr, "fuzz_jparse: jwrite differs\n%s\n%s\n", w.data ? w.data : "", dc ? dc : "(null)");
            abort();
        }
        free(dc);
        buf_free(&w);
    } else {
        json_t *a = jparse(s, n, flags, &ea);
        if (a || strcmp(ea.text, eb.text) != 0 || ea.line != eb.line || ea.column != eb.column) {
            fprintf(stderr, "fuzz_jparse: error differs: %s vs %s\n", ea.text, eb.text);
            abort();
        }
    }
    json_decref(f);
    json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t flags[] = { 0, JSON_ALLOW_NUL, JSON_DECODE_ANY, JSON_REJECT_DUPLICATES };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) fuzz_jparse_one((const char *)data, size, flags[i]);
    return 0;
}
