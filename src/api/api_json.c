/*
 * api_json — store rows to the JSON shapes of docs/api.md, and the one
 * time parser the API needs.
 *
 * Kept apart from the handlers so the shapes live in one place: the CLI,
 * the web UI and the OpenAPI document all depend on them, and a field
 * renamed in one handler but not another would be a silent break.
 *
 * Conventions of the contract applied here:
 *   - times: ISO 8601 UTC with "Z", microseconds only when non-zero (the
 *     store keeps microseconds; most times are whole seconds and read
 *     better without ".000000"); 0 (unset in the store) is null;
 *   - absent strings are null, never "";
 *   - params and event details are stored as JSON text and embedded as
 *     JSON, not as strings (text that does not parse, which the store never
 *     writes, is shown as null rather than failing the whole answer).
 */
#include "api/api_int.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void api_json_time_fmt(int64_t us, char *buf, size_t n)
{
    /* Floor division, so times before 1970 come out right too. */
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400, y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    if (frac)
        snprintf(buf, n, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%06" PRId64 "Z", y, m, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
    else
        snprintf(buf, n, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(rem / 3600),
                 (int)(rem / 60 % 60), (int)(rem % 60));
}

json_t *api_json_time(int64_t us)
{
    if (!us) return json_null();
    char buf[48];
    api_json_time_fmt(us, buf, sizeof buf);
    return json_string(buf);
}

json_t *api_json_str(const char *s) { return s ? json_string(s) : json_null(); }

/* Stored JSON text as a value (null when absent or unreadable). */
static json_t *api_json_embed(const char *text)
{
    if (!text) return json_null();
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    return j ? j : json_null();
}

json_t *api_json_user(const store_user_t *u)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(u->id));
    json_object_set_new(j, "name", json_string(u->name));
    json_object_set_new(j, "admin", json_boolean(u->is_admin));
    json_object_set_new(j, "created_at", api_json_time(u->created_at));
    json_object_set_new(j, "disabled", json_boolean(u->disabled));
    json_object_set_new(j, "trusted", json_boolean(u->trusted));
    return j;
}

json_t *api_json_token(const store_token_t *t)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(t->id));
    json_object_set_new(j, "name", json_string(t->name ? t->name : ""));
    json_object_set_new(j, "created_at", api_json_time(t->created_at));
    json_object_set_new(j, "expires_at", api_json_time(t->expires_at));
    json_object_set_new(j, "last_used_at", api_json_time(t->last_used_at));
    return j;
}

json_t *api_json_task(const store_task_run_t *t)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(t->task));
    json_object_set_new(j, "state", json_string(store_task_state_name(t->state)));
    json_object_set_new(j, "try_number", json_integer(t->try_number));
    json_object_set_new(j, "max_tries", json_integer(t->max_tries));
    json_object_set_new(j, "queued_at", api_json_time(t->queued_at));
    json_object_set_new(j, "started_at", api_json_time(t->started_at));
    json_object_set_new(j, "ended_at", api_json_time(t->ended_at));
    json_object_set_new(j, "next_retry_at", api_json_time(t->next_retry_at));
    json_object_set_new(j, "exit_code", t->has_exit_code ? json_integer(t->exit_code) : json_null());
    json_object_set_new(j, "error", api_json_str(t->error));
    /* "has" means there is something to fetch now: the path is recorded
     * when the task starts, the file appears a moment later. */
    json_object_set_new(j, "has_output", json_boolean(t->output_path && access(t->output_path, F_OK) == 0));
    json_object_set_new(j, "has_log", json_boolean(t->log_path && access(t->log_path, F_OK) == 0));
    json_object_set_new(j, "spark_app_id", api_json_str(t->spark_app_id));
    char *sp = api_runs_spark_path(t->log_path);
    json_object_set_new(j, "has_spark", json_boolean(sp && access(sp, F_OK) == 0));
    free(sp);
    /* Only the owner and admins see a run (API_RUN): the path is theirs to
     * know; the file itself is readable by the task's account alone. */
    int kept = t->kernel_kept_until > 0 && t->kernel_conn;
    json_object_set_new(j, "kernel_kept_until", kept ? api_json_time(t->kernel_kept_until) : json_null());
    json_object_set_new(j, "kernel_connection_file", kept ? json_string(t->kernel_conn) : json_null());
    return j;
}

json_t *api_json_run(const store_run_t *r, const char *triggered_by, const store_task_runs_t *tasks)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(r->id));
    json_object_set_new(j, "run_id", json_string(r->run_id));
    json_object_set_new(j, "flow", json_string(r->flow));
    json_object_set_new(j, "kind", json_string(store_run_kind_name(r->kind)));
    json_object_set_new(j, "state", json_string(store_run_state_name(r->state)));
    json_object_set_new(j, "logical_date", api_json_time(r->logical_us));
    json_object_set_new(j, "params", api_json_embed(r->params_json));
    json_object_set_new(j, "created_at", api_json_time(r->created_at));
    json_object_set_new(j, "started_at", api_json_time(r->started_at));
    json_object_set_new(j, "ended_at", api_json_time(r->ended_at));
    json_object_set_new(j, "triggered_by", api_json_str(triggered_by));
    json_object_set_new(j, "flow_version", json_integer(r->flow_version));
    if (tasks) {
        json_t *a = json_array();
        for (size_t i = 0; i < tasks->n; i++) json_array_append_new(a, api_json_task(&tasks->v[i]));
        json_object_set_new(j, "tasks", a);
    }
    return j;
}

json_t *api_json_event(const store_event_t *e)
{
    json_t *j = json_object();
    /* Details first, so the fixed members below win over any clash. */
    json_t *d = api_json_embed(e->json);
    if (json_is_object(d)) json_object_update(j, d);
    json_decref(d);
    json_object_set_new(j, "id", json_integer(e->id));
    json_object_set_new(j, "at", api_json_time(e->at));
    json_object_set_new(j, "kind", json_string(e->kind));
    json_object_set_new(j, "flow", api_json_str(e->flow));
    json_object_set_new(j, "run", e->run ? json_integer(e->run) : json_null());
    json_object_set_new(j, "task", api_json_str(e->task));
    return j;
}

json_t *api_json_errlist(const nb_errlist_t *l)
{
    json_t *a = json_array();
    if (!l) return a;
    for (size_t i = 0; i < l->n; i++) {
        char *s = errlist_format_one(l, i);
        json_array_append_new(a, json_string(s));
        free(s);
    }
    if (l->dropped) {
        char buf[64];
        snprintf(buf, sizeof buf, "... and %zu more errors", l->dropped);
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

/* ---- time parsing ----------------------------------------------------------- */

static int api_json_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

int api_json_parse_time(const char *s, const tz_t *tz, int64_t *us, int *date_only)
{
    struct tz_tm tm;
    memset(&tm, 0, sizeof tm);
    const char *q = s;
    int64_t frac = 0;
    if (!s || api_json_digits(&q, 4, &tm.year) < 0 || *q++ != '-' ||
        api_json_digits(&q, 2, &tm.month) < 0 || *q++ != '-' || api_json_digits(&q, 2, &tm.day) < 0)
        return -EINVAL;
    int has_time = 0, has_off = 0, off = 0;
    if (*q == 'T' || *q == 't' || *q == ' ') {
        has_time = 1;
        q++;
        if (api_json_digits(&q, 2, &tm.hour) < 0 || *q++ != ':' || api_json_digits(&q, 2, &tm.min) < 0)
            return -EINVAL;
        if (*q == ':') {
            q++;
            if (api_json_digits(&q, 2, &tm.sec) < 0) return -EINVAL;
            if (*q == '.') {
                q++;
                int nd = 0;
                int64_t scale = 100000;
                while (*q >= '0' && *q <= '9') {
                    if (nd < 6) frac += (*q - '0') * scale;
                    scale /= 10;
                    nd++;
                    q++;
                }
                if (nd == 0) return -EINVAL;
            }
        }
        if (*q == 'Z' || *q == 'z') {
            has_off = 1;
            q++;
        } else if (*q == '+' || *q == '-') {
            int sign = *q++ == '-' ? -1 : 1, oh, om = 0;
            if (api_json_digits(&q, 2, &oh) < 0) return -EINVAL;
            if (*q == ':') q++;
            if (*q && api_json_digits(&q, 2, &om) < 0) return -EINVAL;
            if (oh > 23 || om > 59) return -EINVAL;
            has_off = 1;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*q) return -EINVAL;
    if (tm.year < 1 || tm.month < 1 || tm.month > 12 || tm.day < 1 ||
        tm.day > tz_days_in_month(tm.year, tm.month) || tm.hour > 23 || tm.min > 59 || tm.sec > 59)
        return -EINVAL;
    int64_t secs;
    if (has_off || !tz) {
        secs = tz_days_from_civil(tm.year, tm.month, tm.day) * 86400 + tm.hour * 3600 + tm.min * 60 +
               tm.sec - off;
    } else {
        int rc = tz_from_local(tz, &tm, 0, &secs);
        if (rc < 0) return -EINVAL;
    }
    *us = secs * 1000000 + frac;
    if (date_only) *date_only = !has_time;
    return 0;
}
