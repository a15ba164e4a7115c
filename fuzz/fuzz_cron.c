/*
 * libFuzzer harness for cron_parse, and on success cron_next and
 * cron_describe.  Invariants beyond "no crash, no leak, no hang": a failed
 * parse gives no schedule and a message; a successful one has a
 * description; cron_next answers strictly after its argument or with
 * -ENOENT/-ERANGE, and a second call from the first answer moves forward.
 * The zone is fixed (Europe/Berlin, loaded once: tz_t is immutable) and the
 * start instants sit on its 2024 transitions and in the footer era.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/cron.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const tz_t *fuzz_tz(void)
{
    static tz_t *tz; /* loaded once per process; never modified */
    if (!tz) {
        nb_err_t err;
        if (tz_load("Europe/Berlin", &tz, &err) != 0 && tz_load("UTC", &tz, &err) != 0)
            abort();
    }
    return tz;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char *expr = xstrndup((const char *)data, size);
    cron_t *c = NULL;
    nb_err_t err = { 0, "" };
    int rc = cron_parse(expr, &c, &err);
    if (rc < 0) {
        NB_ASSERT(c == NULL);
        NB_ASSERT(rc == -EINVAL && err.msg[0] != '\0');
        free(expr);
        return 0;
    }
    NB_ASSERT(c != NULL);
    char *d = cron_describe(c);
    NB_ASSERT(d && d[0] != '\0');
    free(d);
    static const int64_t starts[] = { 1711839600, 1729980000, 2234955600, 0, -2208988800 };
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
        int64_t t = 0, t2 = 0;
        rc = cron_next(c, fuzz_tz(), starts[i], &t);
        NB_ASSERT(rc == 0 || rc == -ENOENT || rc == -ERANGE);
        if (rc == 0) {
            NB_ASSERT(t > starts[i]);
            rc = cron_next(c, fuzz_tz(), t, &t2);
            NB_ASSERT(rc != 0 || t2 > t);
        }
    }
    cron_free(c);
    free(expr);
    return 0;
}
