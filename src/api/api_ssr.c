/*
 * api_ssr — the web UI's first view, written by the server into the page.
 *
 * Why.  A page that asks the API for its data from script cannot show it
 * before the script has run and two requests have come back: ~150-250 ms
 * in chromium on 127.0.0.1 for the flow list with 200 flows
 * (bench/bench_render.py), against ~60 ms for the same rows in the HTML.
 * So for the two pages people open most, the flow list (/ and /flows) and
 * a run (/runs/ID), GET answers with the page's content already in
 * <main>, and the navigation showing who is logged in.
 *
 * Then the script runs as on every other page: it asks the API for the
 * same data and draws the page over what the server wrote (there is no
 * "hydration" to keep in step).  The markup here is the markup pages.js
 * builds, the same elements and classes, so the swap does not move
 * anything; only times change from UTC (written here, the server does not
 * know the browser's zone) to the browser's zone and locale.
 *
 * Data and authorization are the API's own: the flow list is
 * api_flows_list_json for the caller, the run api_runs_load after the
 * API_RUN visibility check, so the page never shows what GET /api/v1/...
 * would not.  Without a valid session cookie, or for a run the caller may
 * not see, nothing is written and the page is the plain shell (the script
 * then shows the login page or "Not found", as before).
 *
 * Every string from the data goes through nbhtml_escape; names in links are
 * percent-encoded (urlesc), as the script's encodeURIComponent writes them.  The page holds the user's
 * data, so it is sent with Cache-Control: no-store (api_ui.c).
 */
#include "api/api_int.h"
#include "notebook/nbhtml.h"
#include "util/buf.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------ */

static void api_ssr_text(buf_t *b, const char *s)
{
    if (s) nbhtml_escape(b, s, strlen(s));
}

static const char *api_ssr_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A state's class suffix: what JS's replace(/[^a-z_]/g, "") leaves. */
static void api_ssr_state_class(buf_t *b, const char *st)
{
    for (const char *p = st; p && *p; p++)
        if ((*p >= 'a' && *p <= 'z') || *p == '_') buf_putc(b, *p);
}

/* state(st) of app.js: a badge with the state's words. */
static void api_ssr_state(buf_t *b, const char *st)
{
    if (!st) st = "";
    buf_puts(b, "<span class=\"state st-");
    api_ssr_state_class(b, st);
    buf_puts(b, "\" title=\"");
    api_ssr_text(b, st);
    buf_puts(b, "\">");
    for (const char *p = st; *p; p++) {
        if (*p == '_') buf_putc(b, ' ');
        else nbhtml_escape(b, p, 1);
    }
    buf_puts(b, "</span>");
}

/* when(iso) of app.js, in UTC: "2026-12-04 05:00:00 UTC" until the script
 * writes the browser's local time. */
static void api_ssr_when(buf_t *b, const char *iso)
{
    if (!iso) {
        buf_puts(b, "\xe2\x80\x94");   /* — */
        return;
    }
    buf_puts(b, "<time datetime=\"");
    api_ssr_text(b, iso);
    buf_puts(b, "\" title=\"");
    api_ssr_text(b, iso);
    buf_puts(b, "\">");
    size_t n = strlen(iso);
    if (n >= 19 && iso[10] == 'T') {
        nbhtml_escape(b, iso, 10);
        buf_putc(b, ' ');
        nbhtml_escape(b, iso + 11, 8);
        buf_puts(b, " UTC");
    } else {
        api_ssr_text(b, iso);
    }
    buf_puts(b, "</time>");
}

/* duration(a, b) of app.js for a finished interval; a running one gets
 * "—" and starts counting when the script draws the page. */
static void api_ssr_duration(buf_t *b, const char *a, const char *e)
{
    int64_t t0, t1;
    if (!a || !e || api_json_parse_time(a, NULL, &t0, NULL) < 0 ||
        api_json_parse_time(e, NULL, &t1, NULL) < 0) {
        buf_puts(b, "\xe2\x80\x94");
        return;
    }
    int64_t ms = (t1 - t0) / 1000;
    if (ms < 1000) buf_printf(b, "%lld ms", (long long)ms);
    else if (ms < 60000) buf_printf(b, "%.1f s", (double)ms / 1000);
    else {
        long long m = ms / 60000, sec = (ms % 60000 + 500) / 1000;
        if (m < 60) buf_printf(b, "%lld min %lld s", m, sec);
        else buf_printf(b, "%lld h %lld min", m / 60, m % 60);
    }
}

static void api_ssr_head(buf_t *b, const char *const *titles, size_t n)
{
    buf_puts(b, "<div class=\"scroll\"><table class=\"list\"><thead><tr>");
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, "<th scope=\"col\">");
        buf_puts(b, titles[i]);
        buf_puts(b, "</th>");
    }
    buf_puts(b, "</tr></thead><tbody>");
}

/* ---- the flow list (pages.js flows()) --------------------------------------- */

static void api_ssr_flow_row(buf_t *b, const json_t *f)
{
    const char *name = api_ssr_str(f, "name"), *desc = api_ssr_str(f, "description");
    buf_puts(b, "<tr><td><a class=\"strong\" href=\"/flows/");
    urlesc_append(b, name);
    buf_puts(b, "\">");
    api_ssr_text(b, name);
    buf_puts(b, "</a>");
    if (desc && *desc) {
        buf_puts(b, "<div class=\"muted small\">");
        api_ssr_text(b, desc);
        buf_puts(b, "</div>");
    }
    buf_puts(b, "</td><td>");
    if (json_array_size(json_object_get(f, "errors")))
        buf_puts(b, "<span class=\"state st-failed\">invalid</span>");
    else if (json_is_true(json_object_get(f, "paused")))
        buf_puts(b, "<span class=\"state st-paused\">paused</span>");
    else
        buf_puts(b, "<span class=\"state st-active\">active</span>");
    const char *sc = api_ssr_str(f, "schedule"), *words = api_ssr_str(f, "schedule_words");
    buf_puts(b, "</td><td>");
    api_ssr_text(b, words ? words : sc ? "cron schedule" : "on demand");
    if (sc) {
        buf_puts(b, "<div><code class=\"small\">");
        api_ssr_text(b, sc);
        buf_puts(b, "</code></div>");
    }
    buf_puts(b, "</td><td>");
    api_ssr_when(b, api_ssr_str(f, "next_run"));
    buf_puts(b, "</td><td><span class=\"squares\">");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(f, "recent_runs"), i, r) {
        const char *st = api_ssr_str(r, "state");
        long long id = (long long)json_integer_value(json_object_get(r, "id"));
        buf_puts(b, "<a class=\"sq st-");
        api_ssr_text(b, st);
        buf_printf(b, "\" href=\"/runs/%lld\" title=\"", id);
        api_ssr_text(b, st);
        buf_puts(b, " \xc2\xb7 ");
        api_ssr_text(b, api_ssr_str(r, "logical_date"));
        buf_printf(b, "\" aria-label=\"run %lld: ", id);
        api_ssr_text(b, st);
        buf_puts(b, "\"></a>");
    }
    buf_puts(b, "</span></td><td>");
    const char *owner = api_ssr_str(f, "owner");
    if (owner) api_ssr_text(b, owner);
    else buf_puts(b, "<span class=\"muted\">admins</span>");
    buf_puts(b, "</td></tr>");
}

/* 1 and the view in b, or 0: nothing to write (no flows: the script shows
 * how to add the first one). */
static int api_ssr_flows(api_t *a, api_ctx_t *c, buf_t *b)
{
    int rc;
    nb_err_t err;
    err_clear(&err);
    json_t *j = api_flows_list_json(a, c, &rc, &err);
    json_t *flows = json_object_get(j, "flows");
    if (!json_array_size(flows)) {
        json_decref(j);
        return 0;
    }
    static const char *const cols[] = { "Flow", "State", "Schedule", "Next run", "Last runs", "Owner" };
    buf_puts(b, "<section><h1>Flows</h1><div>");
    api_ssr_head(b, cols, sizeof cols / sizeof cols[0]);
    size_t i;
    json_t *f;
    json_array_foreach(flows, i, f) api_ssr_flow_row(b, f);
    buf_puts(b, "</tbody></table></div></div></section>");
    json_decref(j);
    return 1;
}

/* ---- a run (pages.js run()) -------------------------------------------------- */

static int api_ssr_terminal(const char *st)
{
    static const char *const t[] = { "success", "failed", "cancelled", "skipped", "upstream_failed" };
    for (size_t i = 0; st && i < sizeof t / sizeof t[0]; i++)
        if (strcmp(st, t[i]) == 0) return 1;
    return 0;
}

static void api_ssr_task_row(buf_t *b, long long id, const json_t *t)
{
    const char *name = api_ssr_str(t, "name"), *st = api_ssr_str(t, "state"), *err = api_ssr_str(t, "error");
    buf_puts(b, "<tr data-task=\"");
    api_ssr_text(b, name);
    buf_puts(b, "\" data-state=\"");
    api_ssr_text(b, st);
    buf_puts(b, "\"><th scope=\"row\">");
    api_ssr_text(b, name);
    buf_puts(b, "</th><td>");
    api_ssr_state(b, st);
    if (err) {
        buf_puts(b, "<div class=\"small err\">");
        api_ssr_text(b, err);
        buf_puts(b, "</div>");
    }
    buf_printf(b, "</td><td>%lld/%lld</td><td>", (long long)json_integer_value(json_object_get(t, "try_number")),
               (long long)json_integer_value(json_object_get(t, "max_tries")));
    api_ssr_when(b, api_ssr_str(t, "started_at"));
    buf_puts(b, "</td><td>");
    api_ssr_duration(b, api_ssr_str(t, "started_at"), api_ssr_str(t, "ended_at"));
    buf_puts(b, "</td><td>");
    if (json_is_true(json_object_get(t, "has_output"))) {
        buf_printf(b, "<a href=\"/runs/%lld/tasks/", id);
        urlesc_append(b, name);
        buf_puts(b, "/output\">notebook</a>");
    } else {
        buf_puts(b, "\xe2\x80\x94");
    }
    buf_puts(b, "</td><td></td></tr>");
}

static int api_ssr_run(api_t *a, http_req_t *req, api_ctx_t *c, const char *idtext, buf_t *b)
{
    int64_t id;
    nb_err_t err;
    err_clear(&err);
    if (api_parse_i64(idtext, 1, INT64_MAX, &id) < 0 || api_auth_run_visible(a, req, c, id, &err) != 0)
        return 0;
    int rc;
    json_t *r = api_runs_load(a, id, &rc, &err);
    if (!r) return 0;
    const char *st = api_ssr_str(r, "state"), *flow = api_ssr_str(r, "flow");
    buf_puts(b, "<section><div><div class=\"head\"><h1>Run ");
    api_ssr_text(b, api_ssr_str(r, "run_id"));
    buf_puts(b, "</h1>");
    api_ssr_state(b, st);
    buf_puts(b, "</div><p class=\"muted\">flow <a href=\"/flows/");
    urlesc_append(b, flow);
    buf_puts(b, "\">");
    api_ssr_text(b, flow);
    buf_puts(b, "</a> \xc2\xb7 ");
    api_ssr_text(b, api_ssr_str(r, "kind"));
    buf_puts(b, " \xc2\xb7 logical date ");
    api_ssr_when(b, api_ssr_str(r, "logical_date"));
    buf_puts(b, " \xc2\xb7 started ");
    api_ssr_when(b, api_ssr_str(r, "started_at"));
    buf_puts(b, " \xc2\xb7 ");
    api_ssr_duration(b, api_ssr_str(r, "started_at"), api_ssr_terminal(st) ? api_ssr_str(r, "ended_at") : NULL);
    buf_puts(b, "</p></div><div aria-live=\"polite\"></div><h2>Tasks</h2><div>");
    static const char *const cols[] = { "Task", "State", "Try", "Started", "Duration", "Output", "" };
    api_ssr_head(b, cols, sizeof cols / sizeof cols[0]);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(r, "tasks"), i, t) api_ssr_task_row(b, (long long)id, t);
    buf_puts(b, "</tbody></table></div></div></section>");
    json_decref(r);
    return 1;
}

/* ---- the page ------------------------------------------------------------------ */

/* Copy [*p, at) and then rep, and move *p past what (found at `at`). */
static void api_ssr_splice(buf_t *out, const char **p, const char *end, const char *what, const char *rep,
                           size_t replen)
{
    size_t n = strlen(what);
    const char *at = memmem(*p, (size_t)(end - *p), what, n);
    NB_ASSERT(at);   /* web/index.html is part of the binary */
    buf_append(out, *p, (size_t)(at - *p));
    buf_append(out, rep, replen);
    *p = at + n;
}

int api_ssr_page(api_t *a, http_req_t *req, const char *page, size_t len, buf_t *out)
{
    const char *path = http_req_path(req);
    int flows = strcmp(path, "/") == 0 || strcmp(path, "/flows") == 0;
    int run = strncmp(path, "/runs/", 6) == 0 && !strchr(path + 6, '/');
    if (!flows && !run) return 0;
    api_ctx_t c;
    if (api_auth_peek(a, req, &c) != 0) return 0;
    buf_t main = BUF_INIT;
    int ok = flows ? api_ssr_flows(a, &c, &main) : api_ssr_run(a, req, &c, path + 6, &main);
    if (!ok) {
        buf_free(&main);
        return 0;
    }
    const char *p = page, *end = page + len;
    buf_t t = BUF_INIT;
    buf_puts(&t, flows ? "<title>Flows \xc2\xb7 nbhub</title>" : "<title>Run \xc2\xb7 nbhub</title>");
    api_ssr_splice(out, &p, end, "<title>nbhub</title>", t.data, t.len);
    buf_reset(&t);
    static const char nav[] = "<nav id=\"nav\" aria-label=\"main\">";
    api_ssr_splice(out, &p, end, "<nav id=\"nav\" aria-label=\"main\" hidden>", nav, sizeof nav - 1);
    if (c.admin) {
        static const char users[] = "id=\"nav-users\">";
        api_ssr_splice(out, &p, end, "id=\"nav-users\" hidden>", users, sizeof users - 1);
    }
    buf_puts(&t, "<span class=\"who\" id=\"who\">");
    api_ssr_text(&t, c.name);
    buf_puts(&t, "</span>");
    api_ssr_splice(out, &p, end, "<span class=\"who\" id=\"who\"></span>", t.data, t.len);
    buf_free(&t);
    /* <main>'s placeholder, between the two comments of web/index.html */
    const char *from = memmem(p, (size_t)(end - p), "<!--ssr-->", 10);
    const char *to = from ? memmem(from, (size_t)(end - from), "<!--/ssr-->", 11) : NULL;
    NB_ASSERT(from && to);
    buf_append(out, p, (size_t)(from - p));
    buf_append(out, main.data, main.len);
    p = to + 11;
    buf_append(out, p, (size_t)(end - p));
    buf_free(&main);
    return 1;
}
