/*
 * libFuzzer harness for seventlog_jobs, the Spark event log reader (the
 * log is written by a driver that runs user code, so it is input like any
 * other).  Invariants beyond "no crash, no leak": every job it returns has
 * the REST API's shape (integer id, a status among Spark's, counts that
 * are integers), sprogress_summary takes the result as it is, and the log
 * fed in two pieces split anywhere (as a live log is read) gives the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spark/seventlog.h"
#include "spark/sprogress.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return 0;
    char *app = NULL;
    json_t *jobs = seventlog_jobs(f, &app);
    fclose(f);
    NB_ASSERT(json_is_array(jobs));
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        NB_ASSERT(json_is_integer(json_object_get(j, "jobId")));
        const char *st = json_string_value(json_object_get(j, "status"));
        NB_ASSERT(st && (!strcmp(st, "SUCCEEDED") || !strcmp(st, "FAILED") || !strcmp(st, "UNKNOWN")));
        NB_ASSERT(json_is_integer(json_object_get(j, "numCompletedTasks")));
        NB_ASSERT(json_is_array(json_object_get(j, "stageIds")));
    }
    /* Fed in two pieces, split anywhere (as a live log is read), the same. */
    seventlog_t *l = seventlog_new();
    size_t cut = size > 1 ? data[0] % size : 0;
    seventlog_feed(l, (const char *)data, cut);
    json_t *live = seventlog_active_stages(l);
    NB_ASSERT(json_is_array(live));
    json_decref(live);
    seventlog_feed(l, (const char *)data + cut, size - cut);
    seventlog_finish(l);
    json_t *again = seventlog_jobs_json(l);
    NB_ASSERT(json_equal(again, jobs));
    NB_ASSERT((app == NULL) == (seventlog_app_id(l) == NULL));
    json_decref(again);
    seventlog_free(l);
    json_t *s = sprogress_summary(app, jobs, NULL);
    NB_ASSERT(json_integer_value(json_object_get(json_object_get(s, "totals"), "jobs")) ==
              (json_int_t)json_array_size(jobs));
    json_decref(s);
    json_decref(jobs);
    free(app);
    return 0;
}
