/*
 * cmd_flow — `nbhub flow SUBCOMMAND`: flows on a running `nbhub serve`,
 * through the REST API of docs/api.md (client.h does the talking).
 *
 * Subcommands are rows of a table (name, summary, usage, function), as in
 * cmd_kernel; client_dispatch prints the group and per-subcommand help from
 * the same rows and appends the exit-code table.
 *
 * apply.  The file's bytes go to the server untouched (application/yaml):
 * the server's parser is the one that matters, and it reports every problem
 * at once as FILE:LINE:COL lines.  So that FILE is the path the user typed
 * (and an editor can jump to it), the path travels as `?filename=`; the
 * server uses it to label positions and, like a flow directory does, to
 * default the flow's name.  Several files are applied one by one: one bad
 * file does not stop the others, but a refused token or a dead server does
 * (every other file would fail the same way).
 *
 * run --wait.  Waiting must not miss the end of a run that ends quickly,
 * and should learn of it at once rather than on the next poll.  So: first
 * subscribe to /api/v1/events (client_sse_open returns once the server has
 * answered, i.e. subscribed us), THEN read the run; if it is not final yet,
 * the event announcing its end can only come later, on the stream.  The run
 * is re-read when its run.* event comes, every 15 s of silence (in case the
 * server dropped us as a slow reader), and after a reconnect (which sends
 * Last-Event-ID).  A server without the stream, or whose stream broke more
 * than 5 times, is polled with a back-off from 0.2 s to 2 s.  Ctrl-C stops
 * the waiting, not the run.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"
#include "notebook/nbparams.h"
#include "sched/flow.h"
#include "sched/sched.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmd_flow_list(int argc, char **argv);
static int cmd_flow_show(int argc, char **argv);
static int cmd_flow_apply(int argc, char **argv);
static int cmd_flow_run(int argc, char **argv);
static int cmd_flow_pause(int argc, char **argv);
static int cmd_flow_resume(int argc, char **argv);
static int cmd_flow_backfill(int argc, char **argv);
static int cmd_flow_delete(int argc, char **argv);
static int cmd_flow_pull(int argc, char **argv);

static const char cmd_flow_help[] =
    "Manage the flows of an nbhub server (see docs/flows.md for the file format).\n"
    "The server and token come from --url/--token, NBHUB_URL/NBHUB_TOKEN, or\n"
    "~/.config/nbhub/config.yaml (url:, token:; mode 600).\n";

#define CMD_FLOW_OPTS \
    CLIENT_OPTS_HELP \
    "  -h, --help     show this help\n"

static const char cmd_flow_list_usage[] =
    "usage: nbhub flow list [--json]\n"
    "\n"
    "List the flows you can see (an admin sees all), by name: schedule, state,\n"
    "next and last run.  A flow whose newest file failed to load shows\n"
    "\"N errors\" in STATE; `nbhub flow show NAME` prints them.\n"
    "\n"
    "Options:\n"
    "  --json         print the server's answer as JSON\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_show_usage[] =
    "usage: nbhub flow show NAME [--json]\n"
    "\n"
    "Show one flow: its settings, its tasks, and the problems of its newest file.\n"
    "\n"
    "Options:\n"
    "  --json         print the server's answer (with the canonical spec) as JSON\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_apply_usage[] =
    "usage: nbhub flow apply FILE... [--dry-run]\n"
    "\n"
    "Upload flow files (YAML; '-' reads stdin) and print, per file, whether the\n"
    "flow was created, updated or unchanged.  A file with problems is refused and\n"
    "every problem is printed on stderr as FILE:LINE:COL: message; the other\n"
    "files are still applied.  The notebooks the flow names and the files listed\n"
    "under its `files:` key travel with it when they lie in the flow file's\n"
    "directory: they land in the flow's own directory on the server.\n"
    "\n"
    "Options:\n"
    "  --dry-run      only validate (nothing changes on the server)\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_run_usage[] =
    "usage: nbhub flow run NAME [-p NAME VALUE]... [-r NAME VALUE]... [--wait] [--json]\n"
    "\n"
    "Trigger a run of a flow now; the parameters override the flow's params.\n"
    "Prints the new run (its id is what `nbhub runs` takes).\n"
    "\n"
    "Options:\n"
    "  -p, --parameters NAME VALUE  typed like papermill: int, float, True/False,\n"
    "                               None (null), else a string\n"
    "  -r, --parameters-raw NAME VALUE  always a string\n"
    "  --logical-date TIME          the run's logical date (ISO 8601; default now)\n"
    "  --wait                       wait until the run ends and print it; exit 0 if it\n"
    "                               succeeded, 1 if it failed or was cancelled\n"
    "                               (Ctrl-C stops waiting, not the run)\n"
    "  --json                       print the run as JSON\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_pause_usage[] =
    "usage: nbhub flow pause NAME [--json]\n"
    "\n"
    "Stop scheduling new runs of a flow (runs in progress go on; pausing a paused\n"
    "flow is fine).\n"
    "\n"
    "Options:\n"
    "  --json         print the flow summary as JSON\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_resume_usage[] =
    "usage: nbhub flow resume NAME [--json]\n"
    "\n"
    "Schedule a paused flow again (its catchup setting decides what is made up).\n"
    "\n"
    "Options:\n"
    "  --json         print the flow summary as JSON\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_backfill_usage[] =
    "usage: nbhub flow backfill NAME --from DATE --to DATE [--json]\n"
    "\n"
    "Create the runs of every scheduled time between two dates (inclusive; dates\n"
    "or ISO times in the flow's time zone).  Times that already ran are skipped.\n"
    "\n"
    "Options:\n"
    "  --from DATE    first date, e.g. 2026-01-01\n"
    "  --to DATE      last date\n"
    "  --json         print the created runs as JSON\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_delete_usage[] =
    "usage: nbhub flow delete NAME\n"
    "\n"
    "Delete a flow (refused, exit 6, while it has queued or running runs; its past\n"
    "runs stay readable).\n"
    "\n"
    "Options:\n"
    CMD_FLOW_OPTS;

static const char cmd_flow_pull_usage[] =
    "usage: nbhub flow pull NAME [-o DIR] [--force]\n"
    "\n"
    "Get a flow back from the server: DIR/NAME.yaml and the files of its directory\n"
    "(the notebooks and files `flow apply` sent).  Existing files are not\n"
    "overwritten unless --force is given.\n"
    "\n"
    "Options:\n"
    "  -o, --output DIR   where to write (default: the current directory)\n"
    "  --force            overwrite existing files\n"
    CMD_FLOW_OPTS;

static const struct client_sub cmd_flow_subs[] = {
    { "list",     "list flows",                                 cmd_flow_list_usage,     cmd_flow_list },
    { "show",     "show one flow",                              cmd_flow_show_usage,     cmd_flow_show },
    { "apply",    "upload flow files (create or update)",       cmd_flow_apply_usage,    cmd_flow_apply },
    { "pull",     "download a flow file and its files",         cmd_flow_pull_usage,     cmd_flow_pull },
    { "run",      "trigger a run now (and wait for it)",        cmd_flow_run_usage,      cmd_flow_run },
    { "pause",    "stop scheduling a flow",                     cmd_flow_pause_usage,    cmd_flow_pause },
    { "resume",   "schedule a paused flow again",               cmd_flow_resume_usage,   cmd_flow_resume },
    { "backfill", "create the runs of a past date range",       cmd_flow_backfill_usage, cmd_flow_backfill },
    { "delete",   "delete a flow",                              cmd_flow_delete_usage,   cmd_flow_delete },
};
#define CMD_FLOW_NSUBS (sizeof cmd_flow_subs / sizeof cmd_flow_subs[0])

int cmd_flow(int argc, char **argv)
{
    return client_dispatch("flow", cmd_flow_help, cmd_flow_subs, CMD_FLOW_NSUBS, argc, argv);
}

/* ------------------------------------------------------------ shared */

/*
 * The parse every "NAME [--json]" subcommand needs: common options plus
 * exactly `npos` positional arguments (stored in pos[]).
 */
static int cmd_flow_args(int argc, char **argv, const char *cmd, struct client_opts *o,
                         const char **pos, int npos, const char *what)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(o, argc, argv, &i, cmd);
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) return client_usage_error(cmd, "unknown option '%s'", argv[i]);
        if (n == npos) return client_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        pos[n++] = argv[i];
    }
    if (n < npos) return client_usage_error(cmd, "missing %s", what);
    return CLIENT_EXIT_OK;
}

/* "/api/v1/flows/NAME" + suffix, the name escaped. */
static char *cmd_flow_path(const char *name, const char *suffix)
{
    char *e = client_esc(name);
    char *p = xasprintf("/api/v1/flows/%s%s", e, suffix);
    free(e);
    return p;
}

/* Print a buffer built for stdout and flush; an exit code. */
static int cmd_flow_emit(buf_t *b)
{
    if (b->len) fwrite(b->data, 1, b->len, stdout);
    buf_free(b);
    return client_flush();
}

/* ------------------------------------------------------------ list, show */

static void cmd_flow_state(const json_t *f, char *out, size_t n)
{
    size_t nerr = json_array_size(json_object_get(f, "errors"));
    const char *st = json_is_true(json_object_get(f, "paused")) ? "paused" : "active";
    if (nerr) snprintf(out, n, "%s, %zu error%s", st, nerr, nerr == 1 ? "" : "s");
    else snprintf(out, n, "%s", st);
}

static void cmd_flow_last_run(const json_t *f, char *out, size_t n)
{
    json_t *last = json_object_get(f, "last_run");
    if (!json_is_object(last)) {
        snprintf(out, n, "-");
        return;
    }
    const char *st = client_str(last, "state");
    snprintf(out, n, "#%lld %s", (long long)client_int(last, "id", 0), st ? st : "?");
}

static int cmd_flow_list(int argc, char **argv)
{
    struct client_opts o = { 0 };
    int rc = cmd_flow_args(argc, argv, "flow list", &o, NULL, 0, "");
    if (rc) return rc;
    client_t *c;
    if ((rc = client_open(&o, &c))) return rc;
    json_t *ans = NULL;
    rc = client_call(c, "GET", "/api/v1/flows", NULL, &ans);
    client_close(c);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(ans);
        json_decref(ans);
        return rc ? rc : client_flush();
    }
    json_t *flows = json_object_get(ans, "flows");
    buf_t out = BUF_INIT;
    if (json_array_size(flows) == 0) {
        buf_puts(&out, "No flows.\n");
    } else {
        static const char *const hdr[] = { "NAME", "SCHEDULE", "STATE", "NEXT RUN", "LAST RUN",
                                           "TASKS", "OWNER" };
        table_t *tb = table_new(7, hdr);
        table_set_align(tb, 5, TABLE_RIGHT);
        table_set_max_width(tb, 1, 24);
        int64_t now = time_now_us();
        size_t i;
        json_t *f;
        json_array_foreach(flows, i, f) {
            char st[64], when[96], last[64];
            const char *sched = client_str(f, "schedule");
            table_add_row(tb);
            table_add_cell(tb, client_str(f, "name"));
            table_add_cell(tb, sched && *sched ? sched : "manual");
            cmd_flow_state(f, st, sizeof st);
            table_add_cell(tb, st);
            table_time(client_str(f, "next_run"), now, when, sizeof when);
            table_add_cell(tb, when);
            cmd_flow_last_run(f, last, sizeof last);
            table_add_cell(tb, last);
            table_add_cellf(tb, "%lld", (long long)client_int(f, "tasks", 0));
            table_add_cell(tb, client_str(f, "owner"));
        }
        table_render(tb, &out);
        table_free(tb);
    }
    json_decref(ans);
    return cmd_flow_emit(&out);
}

static void cmd_flow_kv(buf_t *out, const char *label, const char *value)
{
    char *v = table_clean(value ? value : "-", 0);
    buf_printf(out, "%-15s%s\n", label, v);
    free(v);
}

/* "notebook.ipynb" or the command line, for the tasks table. */
static char *cmd_flow_task_what(const json_t *t)
{
    const char *nb = client_str(t, "notebook");
    if (nb) return xstrdup(nb);
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(t, "command"), i, a) {
        if (i) buf_putc(&b, ' ');
        buf_puts(&b, json_string_value(a) ? json_string_value(a) : "?");
    }
    return buf_detach(&b);
}

static void cmd_flow_render(const json_t *f, buf_t *out)
{
    int64_t now = time_now_us();
    char tmp[128];
    cmd_flow_kv(out, "Name:", client_str(f, "name"));
    cmd_flow_kv(out, "Description:", client_str(f, "description"));
    cmd_flow_kv(out, "Owner:", client_str(f, "owner"));
    const char *sched = client_str(f, "schedule"), *tz = client_str(f, "timezone");
    if (sched && *sched) snprintf(tmp, sizeof tmp, "%s (%s)", sched, tz ? tz : "UTC");
    else snprintf(tmp, sizeof tmp, "manual only");
    cmd_flow_kv(out, "Schedule:", tmp);
    cmd_flow_state(f, tmp, sizeof tmp);
    cmd_flow_kv(out, "State:", tmp);
    snprintf(tmp, sizeof tmp, "%lld", (long long)client_int(f, "version", 0));
    cmd_flow_kv(out, "Version:", tmp);
    table_time(client_str(f, "next_run"), now, tmp, sizeof tmp);
    cmd_flow_kv(out, "Next run:", tmp);
    cmd_flow_last_run(f, tmp, sizeof tmp);
    cmd_flow_kv(out, "Last run:", tmp);
    cmd_flow_kv(out, "Source:", client_str(f, "source_path"));

    json_t *tasks = json_object_get(json_object_get(f, "spec"), "tasks");
    if (json_array_size(tasks)) {
        static const char *const hdr[] = { "TASK", "RUNS", "AFTER", "TRIGGER", "RETRIES",
                                           "TIMEOUT" };
        table_t *tb = table_new(6, hdr);
        table_set_max_width(tb, 1, 48);
        table_set_max_width(tb, 2, 32);
        table_set_align(tb, 4, TABLE_RIGHT);
        size_t i;
        json_t *t;
        json_array_foreach(tasks, i, t) {
            table_add_row(tb);
            table_add_cell(tb, client_str(t, "name"));
            char *what = cmd_flow_task_what(t);
            table_add_cell(tb, what);
            free(what);
            buf_t after = BUF_INIT;
            size_t j;
            json_t *a;
            json_array_foreach(json_object_get(t, "after"), j, a) {
                if (j) buf_puts(&after, ",");
                buf_puts(&after, json_string_value(a) ? json_string_value(a) : "?");
            }
            table_add_cell(tb, after.len ? after.data : NULL);
            buf_free(&after);
            table_add_cell(tb, client_str(t, "trigger_rule"));
            table_add_cellf(tb, "%lld", (long long)client_int(t, "retries", 0));
            int64_t to = client_int(t, "timeout", 0);
            if (to > 0) {
                table_duration(to * 1000000, tmp, sizeof tmp);
                table_add_cell(tb, tmp);
            } else {
                table_add_cell(tb, NULL);
            }
        }
        buf_putc(out, '\n');
        table_render(tb, out);
        table_free(tb);
    }

    json_t *errors = json_object_get(f, "errors");
    if (json_array_size(errors)) {
        buf_puts(out, "\nThe newest version of the file has problems (the version above stays "
                      "in service):\n");
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e) {
            char *line = table_clean(json_string_value(e) ? json_string_value(e) : "?", 0);
            buf_printf(out, "%s\n", line);
            free(line);
        }
    }
}

static int cmd_flow_show(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *name;
    int rc = cmd_flow_args(argc, argv, "flow show", &o, &name, 1, "flow NAME");
    if (rc) return rc;
    client_t *c;
    if ((rc = client_open(&o, &c))) return rc;
    char *path = cmd_flow_path(name, "");
    json_t *f = NULL;
    rc = client_call(c, "GET", path, NULL, &f);
    free(path);
    client_close(c);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(f);
        json_decref(f);
        return rc ? rc : client_flush();
    }
    buf_t out = BUF_INIT;
    cmd_flow_render(f, &out);
    json_decref(f);
    return cmd_flow_emit(&out);
}

/* ------------------------------------------------------------ apply */

/* path relative to dir when it lies inside it (after resolving links),
 * else NULL: only such files travel with a flow. */
static char *cmd_flow_inside(const char *path, const char *dir)
{
    char *rp = realpath(path, NULL), *rd = realpath(dir, NULL), *rel = NULL;
    if (rp && rd) {
        size_t dl = strlen(rd);
        if (strncmp(rp, rd, dl) == 0 && rp[dl] == '/') rel = xstrdup(rp + dl + 1);
    }
    free(rp);
    free(rd);
    return rel;
}

static void cmd_flow_bundle_add(json_t *files, const char *path, const char *dir)
{
    char *rel = cmd_flow_inside(path, dir), *text = NULL;
    size_t len = 0;
    if (rel && !json_object_get(files, rel) && fs_read_all(path, &text, &len, NULL) == 0) {
        buf_t b = BUF_INIT;
        base64_append(&b, text, len);
        json_object_set_new(files, rel, json_stringn(b.data ? b.data : "", b.len));
        buf_free(&b);
    }
    free(text);
    free(rel);
}

/* The flow's notebooks and `files:` that lie in the flow file's directory,
 * as {"flow": TEXT, "files": {...}}; NULL when there are none (or the file
 * does not parse here: the server then reports its errors). */
static char *cmd_flow_bundle(const char *file, const char *label, const char *text, size_t len, size_t *out_len)
{
    if (!strcmp(file, "-")) return NULL;
    char *dir = fs_dirname(file);
    flow_t *f = NULL;
    nb_errlist_t errs = ERRLIST_INIT;
    char *res = NULL;
    if (flow_parse_text(text, len, label, dir, &f, &errs) == 0) {
        json_t *files = json_object();
        for (size_t i = 0; i < f->ntasks; i++)
            if (f->tasks[i].notebook_path) cmd_flow_bundle_add(files, f->tasks[i].notebook_path, dir);
        for (size_t i = 0; i < f->nfiles; i++) cmd_flow_bundle_add(files, f->files[i], dir);
        if (json_object_size(files)) {
            json_t *j = json_pack("{s:s%, s:o}", "flow", text, len, "files", files);
            res = j ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
        } else {
            json_decref(files);
        }
    }
    errlist_free(&errs);
    flow_free(f);
    free(dir);
    if (res) *out_len = strlen(res);
    return res;
}

/* Apply one file; an exit code (the error already printed). */
static int cmd_flow_apply_one(client_t *c, const char *file, int dry_run)
{
    char *text;
    size_t len;
    nb_err_t err;
    if (fs_read_all(file, &text, &len, &err) < 0) {
        cli_errorf("%s", err.msg);
        return CLIENT_EXIT_INVALID;
    }
    const char *label = strcmp(file, "-") == 0 ? "<stdin>" : file;
    buf_t path = BUF_INIT;
    buf_puts(&path, "/api/v1/flows");
    client_query_add(&path, "filename", label);
    if (dry_run) client_query_add(&path, "dry_run", "1");
    client_resp_t r = CLIENT_RESP_INIT;
    size_t blen = 0;
    char *bundle = cmd_flow_bundle(file, label, text, len, &blen);
    int rc = bundle ? client_call_raw(c, "POST", path.data, "application/json", bundle, blen, &r)
                    : client_call_raw(c, "POST", path.data, "application/yaml", text, len, &r);
    free(bundle);
    free(text);
    buf_free(&path);
    if (rc) return rc;
    json_t *ans = json_loadb(r.body.data, r.body.len, 0, NULL);
    const char *name = client_str(ans, "name");
    char *clean_name = table_clean(name ? name : "?", 0);
    if (dry_run)   /* the server answers 200 and the current version (0: a new flow) */
        printf("%s: valid; flow %s would be %s\n", label, clean_name,
               client_int(ans, "version", 0) == 0 ? "created"
               : json_is_true(json_object_get(ans, "changed")) ? "updated" : "unchanged");
    else
        printf("%s: %s flow %s (version %lld)\n", label,
               r.status == 201 ? "created"
               : json_is_true(json_object_get(ans, "changed")) ? "updated" : "unchanged",
               clean_name, (long long)client_int(ans, "version", 0));
    free(clean_name);
    json_decref(ans);
    client_resp_free(&r);
    return CLIENT_EXIT_OK;
}

static int cmd_flow_apply(int argc, char **argv)
{
    struct client_opts o = { 0 };
    int dry_run = 0, nfiles = 0, nstdin = 0;
    const char **files = xcalloc((size_t)argc, sizeof *files);
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "flow apply");
        if (r < 0) { free(files); return CLIENT_EXIT_USAGE; }
        if (r) continue;
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            free(files);
            return client_usage_error("flow apply", "unknown option '%s'", argv[i]);
        } else {
            nstdin += strcmp(argv[i], "-") == 0;
            files[nfiles++] = argv[i];
        }
    }
    if (o.json) { free(files); return client_usage_error("flow apply", "--json is not supported here"); }
    if (nfiles == 0) { free(files); return client_usage_error("flow apply", "missing FILE"); }
    if (nstdin > 1) { free(files); return client_usage_error("flow apply", "'-' (stdin) given twice"); }
    client_t *c;
    int rc = client_open(&o, &c);
    if (rc) { free(files); return rc; }
    int first = CLIENT_EXIT_OK;
    for (int i = 0; i < nfiles; i++) {
        rc = cmd_flow_apply_one(c, files[i], dry_run);
        if (rc && !first) first = rc;
        /* A refused token or a dead server fails every other file the same way. */
        if (rc == CLIENT_EXIT_AUTH || rc == CLIENT_EXIT_UNREACHABLE) break;
    }
    client_close(c);
    free(files);
    rc = client_flush();
    return first ? first : rc;
}

/* ------------------------------------------------------------ run */

/* Is this event about run `id`?  Sets *kind (borrowed from *doc). */
static int cmd_flow_event_for(const client_event_t *ev, int64_t id, json_t **doc,
                              const char **kind)
{
    *doc = ev->data ? json_loads(ev->data, 0, NULL) : NULL;
    *kind = client_str(*doc, "kind");
    if (!*kind) *kind = ev->event;
    return *kind && client_int(*doc, "run", -1) == id;
}

/* Subscribe to the event stream; 0 with *sse set, 0 with *sse NULL when the
 * server has no stream for us (we poll then), or an exit code (auth). */
static int cmd_flow_subscribe(client_t *c, const char *last_id, client_sse_t **sse)
{
    client_resp_t r = CLIENT_RESP_INIT;
    nb_err_t err;
    *sse = NULL;
    int rc = client_sse_open(c, "/api/v1/events", last_id, sse, &r, &err);
    if (rc < 0) return 0;   /* the GET that follows will tell if the server is gone */
    if (!*sse && (r.status == 401 || r.status == 403)) {
        rc = client_report(c, &r);
        client_resp_free(&r);
        return rc;
    }
    client_resp_free(&r);
    return 0;
}

static int cmd_flow_wait(client_t *c, int64_t id, json_t **final)
{
    char *path = xasprintf("/api/v1/runs/%lld", (long long)id);
    client_sse_t *sse = NULL;
    char *last_id = NULL;
    int progress = isatty(STDERR_FILENO);
    unsigned poll_ms = 200, reconnects = 0;
    int rc = cmd_flow_subscribe(c, NULL, &sse);
    int need_read = 1;
    json_t *run = NULL;
    while (rc == CLIENT_EXIT_OK) {
        if (need_read) {
            json_decref(run);
            run = NULL;
            if ((rc = client_call(c, "GET", path, NULL, &run))) break;
            if (client_run_state_final(client_str(run, "state"))) break;
            need_read = 0;
        }
        if (!sse) {
            struct timespec ts = { poll_ms / 1000, (long)(poll_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
            if (poll_ms < 2000) poll_ms *= 2;
            need_read = 1;
            continue;
        }
        client_event_t ev = { 0 };
        nb_err_t err;
        int n = client_sse_next(sse, 15000, &ev, &err);
        if (n == 0) {
            need_read = 1;   /* quiet for long: make sure we did not miss the end */
        } else if (n < 0) {
            /* The stream ended (server restart, we were too slow): resume
             * where we were; without a stream, or when it keeps breaking,
             * poll. */
            client_sse_close(sse);
            sse = NULL;
            if (++reconnects <= 5) rc = cmd_flow_subscribe(c, last_id, &sse);
            need_read = 1;
        } else {
            if (ev.id) {
                free(last_id);
                last_id = xstrdup(ev.id);
            }
            json_t *doc;
            const char *kind;
            if (cmd_flow_event_for(&ev, id, &doc, &kind)) {
                if (strncmp(kind, "run.", 4) == 0) need_read = 1;
                else if (progress && strncmp(kind, "task.", 5) == 0) {
                    char *task = table_clean(client_str(doc, "task") ? client_str(doc, "task") : "?", 0);
                    fprintf(stderr, "nbhub: run %lld: task %s %s\n", (long long)id, task, kind + 5);
                    free(task);
                }
            }
            json_decref(doc);
            client_event_clear(&ev);
        }
    }
    client_sse_close(sse);
    free(last_id);
    free(path);
    if (rc) {
        json_decref(run);
        return rc;
    }
    *final = run;
    return CLIENT_EXIT_OK;
}

static int cmd_flow_run(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *name = NULL, *logical = NULL;
    int wait = 0;
    json_t *params = json_object();
    int rc = CLIENT_EXIT_OK;
    for (int i = 1; i < argc && !rc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "flow run");
        if (r < 0) { rc = CLIENT_EXIT_USAGE; break; }
        if (r) continue;
        if ((r = client_opt_value(argc, argv, &i, "--logical-date", &logical, "flow run"))) {
            if (r < 0) rc = CLIENT_EXIT_USAGE;
            continue;
        }
        const char *a = argv[i];
        int typed = strcmp(a, "-p") == 0 || strcmp(a, "--parameters") == 0;
        int raw = strcmp(a, "-r") == 0 || strcmp(a, "--parameters-raw") == 0;
        if (typed || raw) {
            if (i + 2 >= argc) {
                rc = client_usage_error("flow run", "%s needs NAME and VALUE", a);
                break;
            }
            /* jansson refuses keys and strings that are not UTF-8 (they
             * cannot travel in JSON); -p values were already repaired. */
            json_t *v = typed ? nbparams_resolve_type(argv[i + 2]) : json_string(argv[i + 2]);
            if (!v || json_object_set_new(params, argv[i + 1], v) < 0) {
                cli_errorf("flow run: parameter '%s' is not valid UTF-8", argv[i + 1]);
                rc = CLIENT_EXIT_INVALID;
                break;
            }
            i += 2;
        } else if (strcmp(a, "--wait") == 0) {
            wait = 1;
        } else if (a[0] == '-' && a[1]) {
            rc = client_usage_error("flow run", "unknown option '%s'", a);
        } else if (name) {
            rc = client_usage_error("flow run", "unexpected argument '%s'", a);
        } else {
            name = a;
        }
    }
    if (!rc && !name) rc = client_usage_error("flow run", "missing flow NAME");
    if (rc) {
        json_decref(params);
        return rc;
    }
    json_t *body = json_object();
    if (json_object_size(params)) json_object_set(body, "params", params);
    json_decref(params);
    if (logical && json_object_set_new(body, "logical_date", json_string(logical)) < 0) {
        json_decref(body);
        cli_errorf("flow run: --logical-date must be UTF-8 text");
        return CLIENT_EXIT_INVALID;
    }

    client_t *c;
    if ((rc = client_open(&o, &c))) {
        json_decref(body);
        return rc;
    }
    char *path = cmd_flow_path(name, "/runs");
    json_t *run = NULL;
    rc = client_call(c, "POST", path, body, &run);
    free(path);
    json_decref(body);
    if (rc == CLIENT_EXIT_OK && wait) {
        int64_t id = client_int(run, "id", 0);
        json_t *final = NULL;
        if (id <= 0) {
            cli_errorf("the server's answer has no run id");
            rc = CLIENT_EXIT_UNREACHABLE;
        } else if ((rc = cmd_flow_wait(c, id, &final)) == CLIENT_EXIT_OK) {
            json_decref(run);
            run = final;
        }
    }
    client_close(c);
    if (rc) {
        json_decref(run);
        return rc;
    }
    if (o.json) {
        rc = client_print_json(run);
    } else if (wait) {
        buf_t out = BUF_INIT;
        client_render_run(run, &out);
        fwrite(out.data, 1, out.len, stdout);
        buf_free(&out);
    } else {
        char *rid = table_clean(client_str(run, "run_id") ? client_str(run, "run_id") : "?", 0);
        char *st = table_clean(client_str(run, "state") ? client_str(run, "state") : "?", 0);
        printf("run %lld (%s) %s\n", (long long)client_int(run, "id", 0), rid, st);
        free(rid);
        free(st);
    }
    if (rc == CLIENT_EXIT_OK) rc = client_flush();
    const char *state = client_str(run, "state");
    if (rc == CLIENT_EXIT_OK && wait && (!state || strcmp(state, "success") != 0))
        rc = CLIENT_EXIT_FAILED;
    json_decref(run);
    return rc;
}

/* ------------------------------------------------------------ pause, resume, delete */

static int cmd_flow_simple(int argc, char **argv, const char *cmd, const char *method,
                           const char *suffix, const char *done)
{
    struct client_opts o = { 0 };
    const char *name;
    int rc = cmd_flow_args(argc, argv, cmd, &o, &name, 1, "flow NAME");
    if (rc) return rc;
    client_t *c;
    if ((rc = client_open(&o, &c))) return rc;
    char *path = cmd_flow_path(name, suffix);
    json_t *ans = NULL;
    rc = client_call(c, method, path, NULL, &ans);
    free(path);
    client_close(c);
    if (rc) return rc;
    if (o.json) {
        rc = ans ? client_print_json(ans) : CLIENT_EXIT_OK;
    } else {
        char *n = table_clean(name, 0);
        printf("%s flow %s\n", done, n);
        free(n);
    }
    json_decref(ans);
    return rc ? rc : client_flush();
}

static int cmd_flow_pause(int argc, char **argv)
{
    return cmd_flow_simple(argc, argv, "flow pause", "POST", "/pause", "paused");
}

static int cmd_flow_resume(int argc, char **argv)
{
    return cmd_flow_simple(argc, argv, "flow resume", "POST", "/resume", "resumed");
}

static int cmd_flow_delete(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            return client_usage_error("flow delete", "--json is not supported here");
    return cmd_flow_simple(argc, argv, "flow delete", "DELETE", "", "deleted");
}

/* ------------------------------------------------------------ backfill */

static int cmd_flow_backfill(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *name = NULL, *from = NULL, *to = NULL;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "flow backfill");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--from", &from, "flow backfill");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--to", &to, "flow backfill");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1])
            return client_usage_error("flow backfill", "unknown option '%s'", argv[i]);
        if (name) return client_usage_error("flow backfill", "unexpected argument '%s'", argv[i]);
        name = argv[i];
    }
    if (!name) return client_usage_error("flow backfill", "missing flow NAME");
    if (!from || !to) return client_usage_error("flow backfill", "--from and --to are required");
    client_t *c;
    int rc = client_open(&o, &c);
    if (rc) return rc;
    json_t *body = json_pack("{s:s, s:s}", "from", from, "to", to);
    if (!body) {
        client_close(c);
        cli_errorf("flow backfill: --from and --to must be UTF-8 text");
        return CLIENT_EXIT_INVALID;
    }
    char *path = cmd_flow_path(name, "/backfill");
    json_t *ans = NULL;
    rc = client_call(c, "POST", path, body, &ans);
    free(path);
    json_decref(body);
    client_close(c);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(ans);
        json_decref(ans);
        return rc ? rc : client_flush();
    }
    json_t *runs = json_object_get(ans, "runs");
    buf_t out = BUF_INIT;
    if (json_array_size(runs) == 0) {
        buf_puts(&out, "No new runs: every scheduled time in that range already ran.\n");
    } else {
        client_render_runs(runs, &out);
    }
    json_decref(ans);
    return cmd_flow_emit(&out);
}

/* ------------------------------------------------------------ pull */

/* Write one pulled file below dir; an exit code (the error printed). */
static int cmd_flow_pull_write(const char *dir, const char *rel, const char *data, size_t len, int force)
{
    if (sched_file_path_ok(rel) < 0) {
        cli_errorf("the server sent a file named '%s', which is not a safe relative path: skipped", rel);
        return CLIENT_EXIT_INVALID;
    }
    char *path = xasprintf("%s/%s", dir, rel), *parent = fs_dirname(path);
    nb_err_t err;
    int rc = CLIENT_EXIT_OK;
    if (!force && fs_exists(path)) {
        cli_errorf("%s exists (use --force to overwrite)", path);
        rc = CLIENT_EXIT_INVALID;
    } else if (fs_mkdir_p(parent, 0755, &err) < 0 || fs_write_atomic(path, data, len, 1, &err) < 0) {
        cli_errorf("%s", err.msg);
        rc = CLIENT_EXIT_INVALID;
    } else {
        printf("%s\n", path);
    }
    free(parent);
    free(path);
    return rc;
}

static int cmd_flow_pull(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *name = NULL, *dir = ".";
    int force = 0;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "flow pull");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] == '-') return client_usage_error("flow pull", "unknown option '%s'", argv[i]);
        else if (name) return client_usage_error("flow pull", "one flow NAME only");
        else name = argv[i];
    }
    if (!name) return client_usage_error("flow pull", "missing flow NAME");
    if (o.json) return client_usage_error("flow pull", "--json is not supported here");
    client_t *c;
    int rc = client_open(&o, &c);
    if (rc) return rc;
    char *path = cmd_flow_path(name, "/files");
    json_t *ans = NULL;
    rc = client_call(c, "GET", path, NULL, &ans);
    free(path);
    client_close(c);
    if (rc) return rc;
    const char *text = client_str(ans, "flow"), *fname = client_str(ans, "name");
    if (!text || !fname || !flow_name_valid(fname)) {
        json_decref(ans);
        cli_errorf("the server's answer has no flow file");
        return CLIENT_EXIT_INVALID;
    }
    char *yname = xasprintf("%s.yaml", fname);
    int first = cmd_flow_pull_write(dir, yname, text, strlen(text), force);
    free(yname);
    const char *rel;
    json_t *v;
    json_object_foreach(json_object_get(ans, "files"), rel, v) {
        /* Next to the flow file, as `flow apply` found them: the pulled
         * directory applies again as it is. */
        buf_t b = BUF_INIT;
        int r = json_is_string(v) && base64_decode_append(&b, json_string_value(v), json_string_length(v)) == 0
                    ? cmd_flow_pull_write(dir, rel, b.data ? b.data : "", b.len, force)
                    : (cli_errorf("file %s: not base64", rel), CLIENT_EXIT_INVALID);
        if (r && !first) first = r;
        buf_free(&b);
    }
    json_decref(ans);
    rc = client_flush();
    return first ? first : rc;
}
