/* sprogress — see sprogress.h. */
#include "spark/sprogress.h"

#include <string.h>

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

const char *sprogress_app_id(const json_t *apps)
{
    if (!json_is_array(apps) || json_array_size(apps) == 0) return NULL;
    return json_string_value(json_object_get(json_array_get(apps, 0), "id"));
}

json_t *sprogress_summary(const char *app_id, const json_t *jobs, const json_t *stages)
{
    json_t *js = json_array(), *ss = json_array();
    json_int_t running = 0, ok = 0, failed = 0, n = 0;
    size_t i;
    json_t *j;
    if (json_is_array(jobs))
        json_array_foreach((json_t *)jobs, i, j) {
            if (!json_is_object(j)) continue;
            const char *st = str(j, "status");
            n++;
            running += !strcmp(st, "RUNNING");
            ok += !strcmp(st, "SUCCEEDED");
            failed += !strcmp(st, "FAILED");
            if (json_array_size(js) >= SPROGRESS_MAX_JOBS) continue;
            json_array_append_new(js, json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                                "id", num(j, "jobId"), "name", str(j, "name"), "status", st,
                                                "tasks", num(j, "numTasks"), "done", num(j, "numCompletedTasks"),
                                                "active", num(j, "numActiveTasks"), "failed", num(j, "numFailedTasks"),
                                                "skipped", num(j, "numSkippedTasks"),
                                                "stages", (json_int_t)json_array_size(json_object_get(j, "stageIds")),
                                                "stages_done", num(j, "numCompletedStages")));
        }
    if (json_is_array(stages))
        json_array_foreach((json_t *)stages, i, j) {
            if (!json_is_object(j) || json_array_size(ss) >= SPROGRESS_MAX_JOBS) continue;
            json_array_append_new(ss, json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:I}", "id", num(j, "stageId"),
                                                "attempt", num(j, "attemptId"), "name", str(j, "name"),
                                                "tasks", num(j, "numTasks"), "done", num(j, "numCompleteTasks"),
                                                "active", num(j, "numActiveTasks"), "failed", num(j, "numFailedTasks")));
        }
    json_t *out = json_pack("{s:o, s:o, s:{s:I, s:I, s:I, s:I}}", "jobs", js, "active_stages", ss, "totals",
                            "jobs", n, "running", running, "succeeded", ok, "failed", failed);
    json_object_set_new(out, "app_id", app_id ? json_string(app_id) : json_null());
    return out;
}
