/*
 * api_flows — flows: list, apply a flow file, show, pause/resume, delete,
 * trigger, backfill.
 *
 * Two sources, on purpose.  What a flow *is* right now (its spec, the
 * errors of its newest file, its next tick) is the scheduler's: it holds
 * the version in service and knows why a newer file failed to load.  What
 * a flow *has* (owner, version, paused, its runs) is the store's, which is
 * also where every change lands first.  Reads take each fact from its
 * owner; every change goes through sched_* so the flows directory (the
 * source of truth for definitions), the store and the scheduler's timers
 * move together.  Without a scheduler (tests, a read-only daemon) the spec
 * comes from the copy the store keeps and changes answer 503.
 *
 * Authorization happened in the hook (API_FLOW: the flow exists and the
 * caller is its owner or an admin).  Applying a flow file is the one place
 * where ownership is decided here, and the scheduler decides it
 * (sched_flow_apply's owner rule), because it also applies to files that
 * arrive through the flows directory.
 *
 * Times in requests (logical_date, backfill from/to) are read in the
 * flow's time zone unless they carry an offset, like dates in flow files:
 * "backfill 2026-01-01 to 2026-01-07" means those calendar days where the
 * flow runs, and a date-only `to` covers its whole day.
 */
#include "api/api_int.h"
#include <strings.h>
#include <ftw.h>
#include <sys/stat.h>
#include "notebook/nb.h"
#include "notebook/nbparams.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The canonical spec: the version in service, else the store's copy. */
static json_t *api_flows_spec(api_t *a, const store_flow_t *f)
{
    const flow_t *fl = a->sched ? sched_flow(a->sched, f->name) : NULL;
    if (fl) return flow_to_json(fl);
    json_t *j = json_loads(f->spec_json, 0, NULL);
    return j ? j : json_object();
}

/* The newest run (last_run) and the states of the last ten, oldest first
 * (recent_runs: the coloured squares of the flow list). */
static void api_flows_recent(api_t *a, int64_t flow_id, json_t *j)
{
    store_run_filter_t q = { .flow_id = flow_id, .state = -1, .limit = 10 };
    store_runs_t l;
    json_t *last = json_null(), *recent = json_array();
    if (store_runs_list(a->store, &q, &l, NULL) == 0) {
        if (l.n)
            last = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)l.v[0].id, "run_id", l.v[0].run_id,
                             "state", store_run_state_name(l.v[0].state));
        for (size_t i = l.n; i-- > 0;)
            json_array_append_new(recent, json_pack("{s:I, s:s, s:o}", "id", (json_int_t)l.v[i].id,
                                                    "state", store_run_state_name(l.v[i].state),
                                                    "logical_date", api_json_time(l.v[i].logical_us)));
        store_runs_free(&l);
    }
    json_object_set_new(j, "last_run", last);
    json_object_set_new(j, "recent_runs", recent);
}

/* The schedule in English (cron_describe), with the time zone when it is
 * not UTC: "every day at 05:00 (Europe/Berlin)".  The server says it so
 * that the UI's pages and its server-written first view (api_ssr.c) agree.
 * null for a flow that did not load (its schedule is not known to parse). */
static json_t *api_flows_words(const flow_t *fl)
{
    if (!fl) return json_null();
    if (!fl->cron) return json_string("on demand");
    char *w = cron_describe(fl->cron);
    json_t *j = fl->timezone && strcmp(fl->timezone, "UTC") != 0 ? json_sprintf("%s (%s)", w, fl->timezone)
                                                                 : json_string(w);
    free(w);
    return j;
}

/* FlowSummary of docs/api.md.  Its facts from the spec come from the
 * version in service (fl) when there is one, read from its fields: the
 * list asks this for every flow, and building each flow's whole spec as
 * JSON to read four of it was a third of the list's time.  Without it they
 * come from spec, the store's copy (borrowed). */
static json_t *api_flows_summary(api_t *a, api_names_t *names, const store_flow_t *f,
                                 const flow_t *fl, const json_t *spec)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(f->name));
    json_t *d = json_object_get(spec, "description");
    json_object_set_new(j, "description",
                        fl ? api_json_str(fl->description) : json_is_string(d) ? json_copy(d) : json_null());
    json_object_set_new(j, "owner", api_json_str(api_names_get(a, names, f->owner_id)));
    json_t *sc = json_object_get(spec, "schedule");
    json_object_set_new(j, "schedule", fl ? api_json_str(fl->schedule) : json_is_string(sc) ? json_copy(sc) : json_null());
    json_t *tzn = json_object_get(spec, "timezone");
    json_object_set_new(j, "timezone", fl ? json_string(fl->timezone)
                                          : json_is_string(tzn) ? json_copy(tzn) : json_string("UTC"));
    json_object_set_new(j, "schedule_words", api_flows_words(fl));
    json_object_set_new(j, "paused", json_boolean(f->paused));
    json_object_set_new(j, "version", json_integer(f->version));
    int64_t next = a->sched ? sched_next_run(a->sched, f->name) : 0;
    json_object_set_new(j, "next_run", api_json_time(next));
    api_flows_recent(a, f->id, j);
    json_object_set_new(j, "tasks", json_integer(fl ? (json_int_t)fl->ntasks
                                                    : (json_int_t)json_array_size(json_object_get(spec, "tasks"))));
    json_object_set_new(j, "source_path", api_json_str(f->source_path));
    json_object_set_new(j, "errors",
                        api_json_errlist(a->sched ? sched_flow_errors(a->sched, f->name) : NULL));
    return j;
}

/* Load the (visible, live) flow of the request and answer with its
 * summary, or the full Flow with the spec. */
static void api_flows_answer(api_t *a, http_req_t *req, int status, const char *name, int full)
{
    store_flow_t f;
    nb_err_t err;
    err_clear(&err);
    int rc = store_flow_get(a->store, name, 0, &f, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    api_names_t names = API_NAMES_INIT;
    json_t *spec = api_flows_spec(a, &f);
    json_t *j = api_flows_summary(a, &names, &f, NULL, spec);
    if (full) json_object_set(j, "spec", spec);
    json_decref(spec);
    api_names_free(&names);
    store_flow_clear(&f);
    http_respond_json(req, status, j);
}

json_t *api_flows_list_json(api_t *a, const api_ctx_t *c, int *rc, nb_err_t *err)
{
    store_flows_t l;
    /* owner_id 0 lists everyone's: only admins get that.  A user's filter
     * is their id, which also hides flows without an owner. */
    *rc = store_flows_list(a->store, 0, c->admin ? 0 : c->uid, &l, err);
    if (*rc) return NULL;
    api_names_t names = API_NAMES_INIT;
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const flow_t *fl = a->sched ? sched_flow(a->sched, l.v[i].name) : NULL;
        json_t *spec = fl ? NULL : api_flows_spec(a, &l.v[i]);
        json_array_append_new(arr, api_flows_summary(a, &names, &l.v[i], fl, spec));
        json_decref(spec);
    }
    api_names_free(&names);
    store_flows_free(&l);
    json_t *j = json_pack("{s:o}", "flows", arr);
    /* Files that never loaded have no flow, hence no owner: admins only. */
    if (c->admin && a->sched) {
        const char **paths = NULL;
        const nb_errlist_t **errs = NULL;
        size_t n = sched_broken_files(a->sched, &paths, &errs);
        json_t *broken = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(broken, json_pack("{s:s, s:o}", "path", paths[i], "errors",
                                                    api_json_errlist(errs[i])));
        json_object_set_new(j, "broken", broken);
    }
    return j;
}

void api_flows_list(http_req_t *req, void *ud)
{
    int rc;
    nb_err_t err;
    err_clear(&err);
    json_t *j = api_flows_list_json(ud, api_ctx(req), &rc, &err);
    if (!j) {
        api_fail(req, rc, &err);
        return;
    }
    http_respond_json(req, 200, j);
}

static int api_flows_truthy(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

/* May c save commands and paths outside the flow's directory?  Under
 * isolation: system every task runs as its owner and the kernel enforces the
 * owner's own rights, so anyone; under shared, admins and trusted users
 * (docs/security.md). */
static int api_flows_trusted(api_t *a, const api_ctx_t *c)
{
    if (a->isolation_system || c->admin) return 1;
    for (char **p = a->trusted_users; p && *p; p++)
        if (c->name && !strcmp(*p, c->name)) return 1;
    store_user_t u;
    memset(&u, 0, sizeof u);
    int trusted = c->name && store_user_by_name(a->store, c->name, &u, NULL) == 0 && u.trusted;
    store_user_clear(&u);
    return trusted;
}

#define API_FLOW_FILES_MAX 256

/* A flow with its files: {"flow": "<yaml>", "files": {"path": "<base64>"}}
 * (`nbhub flow apply` sends this when the flow references notebooks or
 * `files:` next to it), parsed already as j, whose "flow" is a string.
 * Consumes j: fills the outputs (*doc = j) or answers 400 and returns -1. */
static int api_flows_bundle(http_req_t *req, json_t *j, json_t **doc, sched_file_t **files, size_t *nfiles,
                            buf_t **data)
{
    json_t *jf = NULL;
    const char *k, *bad = NULL;
    json_t *v;
    if ((jf = json_object_get(j, "files")) && !json_is_object(jf)) bad = "files must be an object of path: base64";
    else if (json_object_size(j) > (size_t)(jf ? 2 : 1)) bad = "unknown member in the body (flow and files only)";
    else if (jf && json_object_size(jf) > API_FLOW_FILES_MAX) bad = "more than 256 files";
    if (bad) {
        json_decref(j);
        api_error(req, 400, "bad_request", bad);
        return -1;
    }
    size_t n = jf ? json_object_size(jf) : 0, i = 0;
    *files = xcalloc(n ? n : 1, sizeof **files);
    *data = xcalloc(n ? n : 1, sizeof **data);
    if (jf)
        json_object_foreach(jf, k, v) {
            char msg[400];
            if (sched_file_path_ok(k) < 0) {
                snprintf(msg, sizeof msg, "file name '%.255s' is not allowed (relative, no '..', no hidden files)", k);
                bad = msg;
            } else if (!json_is_string(v) ||
                       base64_decode_append(&(*data)[i], json_string_value(v), json_string_length(v)) < 0) {
                snprintf(msg, sizeof msg, "file '%.255s' must be base64", k);
                bad = msg;
            }
            if (bad) {
                for (size_t m = 0; m <= i && m < n; m++) buf_free(&(*data)[m]);
                free(*files);
                free(*data);
                json_decref(j);
                api_error(req, 400, "bad_request", bad);
                return -1;
            }
            (*files)[i] = (sched_file_t){ k, (*data)[i].data ? (*data)[i].data : "", (*data)[i].len };
            i++;
        }
    *nfiles = n;
    *doc = j;
    return 0;
}

void api_flows_apply(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    size_t len;
    const char *body = http_req_body(req, &len);
    if (len == 0) {
        api_error(req, 400, "bad_request", "the body must be a flow file (YAML)");
        return;
    }
    json_t *bundle = NULL;
    sched_file_t *files = NULL;
    buf_t *fdata = NULL;
    size_t nfiles = 0;
    const char *ctype = http_header(req, "content-type");
    /* A JSON object with a "flow" string is a bundle; any other body is the
     * flow file itself (JSON is YAML, and clients have sent JSON flows). */
    json_t *doc = ctype && !strncasecmp(ctype, "application/json", 16) ? json_loadb(body, len, 0, NULL) : NULL;
    if (!json_is_string(json_object_get(doc, "flow"))) {
        json_decref(doc);
    } else {
        if (api_flows_bundle(req, doc, &bundle, &files, &nfiles, &fdata) < 0) return;
        body = json_string_value(json_object_get(bundle, "flow"));
        len = json_string_length(json_object_get(bundle, "flow"));
    }
    int dry_run = api_flows_truthy(http_query(req, "dry_run"));
    nb_errlist_t errs = ERRLIST_INIT;
    nb_err_t err;
    err_clear(&err);
    char *name = NULL;
    int64_t version = 0;
    int created = 0, changed = 0;
    /* The client's file name labels error positions (FILE:LINE:COL) and gives
     * the default flow name, as for files in the flows directory. */
    const char *label = http_query(req, "filename");
    if (label && (strlen(label) > 255 || strpbrk(label, "\r\n\t"))) label = NULL;
    int rc = sched_flow_apply(a->sched, body, len, files, nfiles, api_flows_trusted(a, c), label, c->name,
                              c->admin, dry_run, &name, &version, &created, &changed, &errs, &err);
    for (size_t i = 0; i < nfiles; i++) buf_free(&fdata[i]);
    free(fdata);
    free(files);
    json_decref(bundle);
    if (rc == -EINVAL && errlist_count(&errs)) {
        char msg[1100];
        if (err.msg[0]) snprintf(msg, sizeof msg, "%s", err.msg);
        else snprintf(msg, sizeof msg, "the flow file has %zu error%s", errlist_count(&errs),
                      errlist_count(&errs) == 1 ? "" : "s");
        json_t *e = json_pack("{s:{s:s, s:s, s:o}}", "error", "code", "invalid_flow", "message", msg,
                              "details", api_json_errlist(&errs));
        errlist_free(&errs);
        free(name);
        http_respond_json(req, 400, e);
        return;
    }
    errlist_free(&errs);
    if (rc) {
        free(name);
        api_fail(req, rc, &err);
        return;
    }
    if (!dry_run && (created || changed))
        LOG_I("flow applied", "flow=%s version=%lld created=%d by=%s", name ? name : "-",
              (long long)version, created, c->log_name);
    json_t *j = json_object();
    json_object_set_new(j, "name", api_json_str(name));
    json_object_set_new(j, "version", json_integer(version));
    json_object_set_new(j, "changed", json_boolean(changed));
    if (dry_run) json_object_set_new(j, "dry_run", json_true());
    free(name);
    http_respond_json(req, created && !dry_run ? 201 : 200, j);
}

void api_flows_get(http_req_t *req, void *ud)
{
    api_flows_answer(ud, req, 200, api_ctx(req)->flow, 1);
}

void api_flows_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    nb_err_t err;
    err_clear(&err);
    int rc = sched_flow_delete(a->sched, c->flow, &err);
    if (rc == -EBUSY) {
        api_error(req, 409, "conflict", err.msg[0] ? err.msg : "the flow has queued or running runs");
        return;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    LOG_I("flow deleted", "flow=%s by=%s", c->flow, c->log_name);
    http_respond(req, 204, NULL, "", 0);
}

static void api_flows_set_paused(http_req_t *req, api_t *a, int paused)
{
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    nb_err_t err;
    err_clear(&err);
    int rc = sched_flow_pause(a->sched, c->flow, paused, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    api_flows_answer(a, req, 200, c->flow, 0);
}

void api_flows_pause(http_req_t *req, void *ud) { api_flows_set_paused(req, ud, 1); }
void api_flows_resume(http_req_t *req, void *ud) { api_flows_set_paused(req, ud, 0); }

/* The flow's zone for reading times: borrowed from the flow in service,
 * else loaded from the spec's name into *owned (tz_free it).  NULL = UTC. */
static const tz_t *api_flows_tz(api_t *a, const char *name, tz_t **owned)
{
    *owned = NULL;
    const flow_t *fl = sched_flow(a->sched, name);
    if (fl && fl->tz) return fl->tz;
    store_flow_t f;
    if (store_flow_get(a->store, name, 0, &f, NULL) != 0) return NULL;
    json_t *spec = json_loads(f.spec_json, 0, NULL);
    const char *zone = json_string_value(json_object_get(spec, "timezone"));
    if (zone && tz_load(zone, owned, NULL) != 0) *owned = NULL;
    json_decref(spec);
    store_flow_clear(&f);
    return *owned;
}

/* The first instant after the calendar day of `s` ("YYYY-MM-DD...") in tz,
 * minus one microsecond: the end of an inclusive date-only range. */
static int api_flows_day_end(const char *s, const tz_t *tz, int64_t *us)
{
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    int64_t days = tz_days_from_civil(y, m, d) + 1, ny;
    int nm, nd;
    tz_civil_from_days(days, &ny, &nm, &nd);
    char next[16];
    snprintf(next, sizeof next, "%04d-%02d-%02d", (int)ny, nm, nd);
    int rc = api_json_parse_time(next, tz, us, NULL);
    if (rc == 0) *us -= 1;
    return rc;
}

void api_flows_trigger(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    json_t *body;
    if (api_body_object(req, 1, API_MEMBERS("params", "logical_date"), &body) < 0) return;
    json_t *params = json_object_get(body, "params");
    json_t *jdate = json_object_get(body, "logical_date");
    if (json_is_null(params)) params = NULL;
    if (params && !json_is_object(params)) {
        json_decref(body);
        api_error(req, 400, "bad_request", "params must be an object");
        return;
    }
    int64_t logical = 0;
    if (jdate && !json_is_null(jdate)) {
        tz_t *owned;
        const tz_t *tz = api_flows_tz(a, c->flow, &owned);
        int rc = json_is_string(jdate)
                     ? api_json_parse_time(json_string_value(jdate), tz, &logical, NULL) : -EINVAL;
        tz_free(owned);
        if (rc) {
            json_decref(body);
            api_error(req, 400, "bad_request",
                      "logical_date must be an ISO 8601 date or time (YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM])");
            return;
        }
    }
    nb_err_t err;
    err_clear(&err);
    int64_t run = 0;
    int rc = sched_trigger(a->sched, c->flow, params, logical, c->uid, &run, &err);
    json_decref(body);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    LOG_I("flow triggered", "flow=%s run=%lld by=%s", c->flow, (long long)run, c->log_name);
    json_t *j = api_runs_load(a, run, &rc, &err);
    if (!j) {
        api_fail(req, rc, &err);
        return;
    }
    http_respond_json(req, 201, j);
}

void api_flows_backfill(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    json_t *body;
    if (api_body_object(req, 0, API_MEMBERS("from", "to"), &body) < 0) return;
    const char *from = json_string_value(json_object_get(body, "from"));
    const char *to = json_string_value(json_object_get(body, "to"));
    int64_t from_us = 0, to_us = 0;
    int to_date_only = 0, rc = -EINVAL;
    if (from && to) {
        tz_t *owned;
        const tz_t *tz = api_flows_tz(a, c->flow, &owned);
        rc = api_json_parse_time(from, tz, &from_us, NULL);
        if (rc == 0) rc = api_json_parse_time(to, tz, &to_us, &to_date_only);
        if (rc == 0 && to_date_only) rc = api_flows_day_end(to, tz, &to_us);
        tz_free(owned);
    }
    json_decref(body);
    if (rc) {
        api_error(req, 400, "bad_request",
                  "from and to must be ISO 8601 dates or times (YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM])");
        return;
    }
    if (from_us > to_us) {
        api_error(req, 400, "bad_request", "from is after to");
        return;
    }
    nb_err_t err;
    err_clear(&err);
    json_t *ids = json_array();
    rc = sched_backfill(a->sched, c->flow, from_us, to_us, c->uid, ids, &err);
    if (rc) {
        json_decref(ids);
        api_fail(req, rc, &err);
        return;
    }
    LOG_I("flow backfilled", "flow=%s runs=%zu by=%s", c->flow, json_array_size(ids), c->log_name);
    json_t *runs = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        json_t *r = api_runs_load(a, json_integer_value(v), &rc, &err);
        if (r) json_array_append_new(runs, r);
    }
    json_decref(ids);
    http_respond_json(req, 201, json_pack("{s:o}", "runs", runs));
}

/* The runs of the live incarnation only: a name created again starts
 * without the runs of the flow deleted before it. */
void api_flows_runs(http_req_t *req, void *ud)
{
    api_runs_list_for(ud, req, NULL, api_ctx(req)->flow_id);
}

/* The JSON type of a default, in papermill's type names. */
static const char *api_flows_type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE: case JSON_FALSE: return "bool";
    case JSON_NULL: return "None";
    case JSON_STRING: return "str";
    default: return "json";
    }
}

/* GET /flows/:name/parameters: what a trigger may override (the flow's
 * params), each with its default and type, and, where a notebook task
 * passes it straight through ("{{ params.x }}"), the help comment and the
 * type papermill infers from that notebook's parameters cell: what the
 * UI's trigger form is generated from. */
void api_flows_parameters(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_flow_t f;
    nb_err_t err;
    err_clear(&err);
    int rc = store_flow_get(a->store, api_ctx(req)->flow, 0, &f, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    json_t *spec = api_flows_spec(a, &f);
    store_flow_clear(&f);
    json_t *out = json_array();
    const char *pname;
    json_t *pdef;
    json_object_foreach(json_object_get(spec, "params"), pname, pdef) {
        json_t *p = json_pack("{s:s, s:O, s:s, s:s, s:[]}", "name", pname, "default", pdef,
                              "type", api_flows_type_of(pdef), "help", "", "used_by");
        char want[300];
        snprintf(want, sizeof want, "{{ params.%s }}", pname);
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(spec, "tasks"), i, t) {
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(t, "parameters"), k, v) {
                const char *sv = json_string_value(v);
                if (!sv || strcmp(sv, want) != 0) continue;
                json_array_append_new(json_object_get(p, "used_by"), json_string(json_string_value(json_object_get(t, "name"))));
                const char *path = json_string_value(json_object_get(t, "notebook_path"));
                json_t *nb = NULL;
                if (!path || nb_load_file(path, &nb, NULL) < 0) continue;
                json_t *decl = nbparams_inspect(nb, nb_language(nb) ? nb_language(nb) : "python");
                size_t di;
                json_t *d;
                json_array_foreach(decl, di, d) {
                    if (strcmp(json_string_value(json_object_get(d, "name")), k) != 0) continue;
                    const char *help = json_string_value(json_object_get(d, "help"));
                    const char *ty = json_string_value(json_object_get(d, "inferred_type_name"));
                    if (help && *help && !*json_string_value(json_object_get(p, "help")))
                        json_object_set_new(p, "help", json_string(help));
                    if (ty && strcmp(ty, "None") != 0) json_object_set_new(p, "notebook_type", json_string(ty));
                }
                json_decref(decl);
                json_decref(nb);
            }
        }
        json_array_append_new(out, p);
    }
    json_decref(spec);
    http_respond_json(req, 200, json_pack("{s:o}", "parameters", out));
}

/* ---- GET /flows/:name/files: the flow file and its directory ------------ */

#define API_FLOW_FILES_BYTES (64 << 20)

struct api_walk {
    json_t     *files;
    size_t      prefix, bytes;
    int         over;
};
static struct api_walk *api_walk_cur;   /* nftw has no user pointer; one loop thread */

static int api_flows_walk(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    struct api_walk *w = api_walk_cur;
    const char *rel = p + w->prefix;
    /* hidden entries (staging leftovers, editor files) and links are not part of a flow */
    if (ftw->level > 0 && p[ftw->base] == '.') return flag == FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
    if (flag != FTW_F || !S_ISREG(st->st_mode)) return FTW_CONTINUE;
    if (json_object_size(w->files) >= API_FLOW_FILES_MAX || w->bytes + (size_t)st->st_size > API_FLOW_FILES_BYTES) {
        w->over = 1;
        return FTW_STOP;
    }
    char *text = NULL;
    size_t len = 0;
    if (fs_read_regular(p, API_FLOW_FILES_BYTES, &text, &len, NULL) < 0) return FTW_CONTINUE;
    buf_t b = BUF_INIT;
    base64_append(&b, text, len);
    json_object_set_new(w->files, rel, json_stringn(b.data ? b.data : "", b.len));
    buf_free(&b);
    free(text);
    w->bytes += len;
    return FTW_CONTINUE;
}

void api_flows_files(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (api_no_sched(a, req)) return;
    const char *name = api_ctx(req)->flow;
    const flow_t *f = sched_flow(a->sched, name);
    char *text = NULL;
    size_t len = 0;
    if (!f || !f->path || fs_read_regular(f->path, 8 << 20, &text, &len, NULL) < 0) {
        api_error(req, 404, "not_found", "the flow has no file on the server (it failed to load, or was deleted)");
        return;
    }
    struct api_walk w = { json_object(), 0, 0, 0 };
    const char *own = sched_flow_own_dir(a->sched, f);
    if (own) {
        w.prefix = strlen(own) + 1;
        api_walk_cur = &w;
        nftw(own, api_flows_walk, 16, FTW_PHYS | FTW_ACTIONRETVAL);
        api_walk_cur = NULL;
    }
    if (w.over) {
        json_decref(w.files);
        free(text);
        api_error(req, 413, "too_large", "the flow's directory holds more than 256 files or 64 MiB");
        return;
    }
    json_t *j = json_pack("{s:s, s:s%, s:o}", "name", name, "flow", text, len, "files", w.files);
    free(text);
    if (!j) {
        api_error(req, 500, "internal", "the flow file is not UTF-8");
        return;
    }
    http_respond_json(req, 200, j);
}
