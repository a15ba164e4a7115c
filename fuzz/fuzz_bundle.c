/*
 * libFuzzer harness for what a flow bundle and its limits bring in from
 * outside: base64_decode_append (the files of `nbhub flow apply`),
 * sched_file_path_ok (their names), the limits parsers (nbhub.yaml and flow
 * files) and the `__as-user --cgroup` spec.  Invariants: a decode that
 * succeeds round-trips through base64_append to the canonical padded form
 * of the input; a name that passes never escapes (no leading '/', no "." or
 * ".." component, nothing hidden, printable ASCII); parsed limits are
 * within their documented ranges; a spec that parses is written back to
 * one that parses to the same limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iso/limits.h"
#include "sched/sched.h"
#include "util/base64.h"
#include "util/err.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = xstrndup((const char *)data, size);
    size_t n = strlen(s);

    buf_t out = BUF_INIT;
    if (base64_decode_append(&out, s, n) == 0) {
        buf_t again = BUF_INIT;
        base64_append(&again, out.data ? out.data : "", out.len);
        /* the input, padded to a multiple of 4, is what encoding gives back */
        NB_ASSERT(again.len >= n && again.len - n < 4 && memcmp(again.data, s, n) == 0);
        buf_free(&again);
    }
    buf_free(&out);

    if (sched_file_path_ok(s) == 0) {
        NB_ASSERT(n > 0 && n <= 255 && s[0] != '/' && s[0] != '.');
        NB_ASSERT(!strstr(s, "/.") && !strstr(s, "//") && s[n - 1] != '/');
        for (size_t i = 0; i < n; i++) NB_ASSERT(s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '\\');
    }

    int64_t v;
    const char *why;
    if (limits_parse_memory(s, &v, &why) == 0) NB_ASSERT(v >= (16LL << 20) && v <= (1LL << 50));
    if (limits_parse_cpu(s, &v, &why) == 0) NB_ASSERT(v >= 10 && v <= 4096000);
    if (limits_parse_pids(s, &v, &why) == 0) NB_ASSERT(v >= 8 && v <= 4194304);
    /* `__as-user --cgroup` specs: what parses is written back the same way. */
    char *spec = xstrdup(s);
    iso_limits_t l, l2;
    if (limits_spec_parse(spec, &l) == 0 && strchr(s, '=')) {
        char *again = limits_spec(spec, &l);
        NB_ASSERT(limits_spec_parse(again, &l2) == 0 && !strcmp(again, spec));
        NB_ASSERT(l.memory == l2.memory && l.cpu_milli == l2.cpu_milli && l.pids == l2.pids);
        free(again);
    }
    free(spec);
    free(s);
    return 0;
}
