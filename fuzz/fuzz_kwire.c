/* libFuzzer harness for the wire-protocol parser.  The input is split into
 * frames at every "\n--\n", so the fuzzer controls frame count and content;
 * half the inputs are checked with an empty key so the JSON parsing behind
 * the signature check is reached.  Every message the full parse takes, the
 * lazy parse must take too, with the same routing fields and the same
 * integer execution_count, and stream literals decode to the tree's strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/kwire.h"
#include "util/jparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kframe_t frames[64];
    size_t n = 0, start = 0;
    for (size_t i = 0; i + 4 <= size && n < 63; i++) {
        if (memcmp(data + i, "\n--\n", 4) == 0) {
            frames[n].data = data + start;
            frames[n].len = i - start;
            n++;
            start = i + 4;
            i += 3;
        }
    }
    frames[n].data = data + start;
    frames[n].len = size - start;
    n++;
    kwire_key_t *k = (size & 1) ? kwire_key_new("fuzzkey", 7) : kwire_key_new("", 0);
    kmsg_t *m = NULL;
    nb_err_t err;
    if (kwire_parse(k, frames, n, &m, &err) == 0) {
        /* The lazy parse routes by a scanner: it must find what the trees say. */
        kmsg_t *l = NULL;
        if (kwire_parse_lazy(k, frames, n, &l, &err) != 0) abort();
        const char *a[4] = { m->msg_type, m->msg_id, m->date, m->parent_id };
        const char *b[4] = { l->msg_type, l->msg_id, l->date, l->parent_id };
        for (int i = 0; i < 4; i++)
            if (!a[i] != !b[i] || (a[i] && strcmp(a[i], b[i]) != 0)) {
                fprintf(stderr, "fuzz_kwire: lazy routing field %d: %s vs %s\n", i, a[i] ? a[i] : "(null)",
                        b[i] ? b[i] : "(null)");
                abort();
            }
        /* And kmsg_scan_int, which nbhub run reads execution_count with. */
        long long want = 0, got = 0;
        json_t *ec = json_object_get(m->content, "execution_count");
        int has = json_is_integer(ec);
        if (has) want = json_integer_value(ec);
        int r = kmsg_scan_int(l, 3, "execution_count", &got);
        if (r != has || (has && got != want)) {
            fprintf(stderr, "fuzz_kwire: execution_count %d/%lld vs %d/%lld\n", has, want, r, got);
            abort();
        }
        /* kmsg_scan_literals + jparse_string, which stream outputs are read
         * with: what they decode is what the tree holds. */
        static const char *const keys[2] = { "name", "text" };
        kframe_t lit[2];
        kmsg_t *l2 = NULL;
        if (kwire_parse_lazy(k, frames, n, &l2, &err) != 0) abort();
        if (kmsg_scan_literals(l2, 3, keys, 2, lit) == 0) {
            for (int i = 0; i < 2; i++) {
                json_t *tv = json_object_get(m->content, keys[i]);
                if (!lit[i].data) {
                    if (tv) { fprintf(stderr, "fuzz_kwire: scanner missed %s\n", keys[i]); abort(); }
                    continue;
                }
                char *dec = NULL;
                size_t dl = 0, dc = 0;
                int rc = jparse_string(lit[i].data, lit[i].len, &dec, &dl, &dc);
                if (rc != 0 || !json_is_string(tv) || dl != json_string_length(tv) ||
                    memcmp(dec, json_string_value(tv), dl) != 0) {
                    fprintf(stderr, "fuzz_kwire: literal %s decoded differently (rc %d)\n", keys[i], rc);
                    abort();
                }
                free(dec);
            }
        }
        kmsg_free(l2);
        kmsg_free(l);
        kmsg_free(m);
    }
    kwire_key_free(k);
    return 0;
}
