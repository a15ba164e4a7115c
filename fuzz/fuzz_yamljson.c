/*
 * libFuzzer harness for yamljson (and, on what it returns, nbparams'
 * translators, which walk the same untrusted values).  Invariants checked
 * beyond "no crash, no leak": a successful parse gives a value; a failed
 * one gives an error message that starts with the document name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nbparams.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    nb_err_t err = { 0, "" };
    int rc = yamljson_parse((const char *)data, size, "fuzz", &v, &err);
    if (rc < 0) {
        NB_ASSERT(v == NULL);
        NB_ASSERT(strncmp(err.msg, "fuzz:", 5) == 0);
        return 0;
    }
    NB_ASSERT(v != NULL);
    if (json_is_object(v)) {
        static const char *const langs[] = { "python", "R", "matlab", ".net-fsharp", "bash" };
        for (size_t i = 0; i < sizeof langs / sizeof *langs; i++) {
            char *out = NULL;
            if (nbparams_translate(v, langs[i], &out, NULL) == 0)
                NB_ASSERT(out != NULL);
            free(out);
        }
    }
    json_decref(v);
    return 0;
}
