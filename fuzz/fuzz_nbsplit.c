/* libFuzzer harness for nbsplit: a notebook read cell by cell is accepted
 * exactly when nb_load_text accepts it, and renders to the same bytes as
 * the whole tree (the web UI's output.html relies on both).  A difference
 * aborts so libFuzzer keeps the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nb.h"
#include "notebook/nbhtml.h"
#include "notebook/nbsplit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *nb = NULL, *skel, *cell;
    nb_err_t err;
    int whole = nb_load_text(text, size, "fuzz", &nb, &err) == 0;
    nbsplit_t it;
    buf_t a = BUF_INIT, b = BUF_INIT;
    int rc = nbsplit_open(&it, text, size, "fuzz", &skel, &err);
    if (rc == 0) {
        nbhtml_begin(skel, NULL, &b);
        json_decref(skel);
        while ((rc = nbsplit_next(&it, &cell, &err)) > 0) {
            nbhtml_cell(cell, NULL, &b);
            json_decref(cell);
        }
        nbhtml_end(&b);
    }
    int split = rc == 0;
    if (whole != split) {
        fprintf(stderr, "fuzz_nbsplit: nb_load_text %s, nbsplit %s (%s)\n", whole ? "took it" : "refused",
                split ? "took it" : "refused", err.msg);
        abort();
    }
    if (whole) {
        nbhtml_render(nb, NULL, &a);
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
            fprintf(stderr, "fuzz_nbsplit: renders differ\n");
            abort();
        }
    }
    json_decref(nb);
    buf_free(&a);
    buf_free(&b);
    return 0;
}
