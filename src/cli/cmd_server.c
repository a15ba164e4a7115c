/*
 * cmd_server — `nbhub server start|stop|list`: users' notebook servers on
 * a running `nbhub serve` (docs/hub.md), through /api/v1/servers
 * (client.h: --url, --token, exit codes).
 *
 * start waits until the server is ready (or failed: its error, with the
 * tail of its log, is printed and the exit code is 1), polling the server's
 * state; --no-wait returns as soon as the start was accepted.  The default
 * server is the one without --name; --user names another user's (admins).
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmd_server_start(int argc, char **argv);
static int cmd_server_stop(int argc, char **argv);
static int cmd_server_list(int argc, char **argv);

static const char cmd_server_help[] =
    "Users' notebook servers (JupyterLab) on an nbhub server: start one with a\n"
    "profile, stop it, list them.  The default server has no --name.\n";

#define CMD_SERVER_OPTS \
    CLIENT_OPTS_HELP \
    "  -h, --help     show this help\n"

static const char cmd_server_start_usage[] =
    "usage: nbhub server start [--profile P] [--name SERVER] [--user U] [--no-wait] [--timeout SECS] [--json]\n"
    "\n"
    "Start a notebook server and wait until it is ready; prints its URL.\n"
    "\n"
    "  --profile P    one of the profiles of nbhub.yaml (default: the first)\n"
    "  --name SERVER  a named server (default: the user's default server)\n"
    "  --user U       another user's server (admins)\n"
    "  --no-wait      return once the start was accepted\n"
    "  --timeout SECS give up waiting after this long (default 120)\n"
    "  --json         print the server as JSON\n" CMD_SERVER_OPTS;

static const char cmd_server_stop_usage[] =
    "usage: nbhub server stop [--name SERVER] [--user U] [--remove]\n"
    "\n"
    "Stop a notebook server (SIGTERM, then SIGKILL after hub.stop_grace).\n"
    "\n"
    "  --remove       also forget a named server (its row)\n" CMD_SERVER_OPTS;

static const char cmd_server_list_usage[] =
    "usage: nbhub server list [--user U] [--json]\n"
    "\n"
    "Your servers (admins: everyone's, or U's).\n" CMD_SERVER_OPTS;

static const struct client_sub cmd_server_subs[] = {
    { "start", "start a notebook server", cmd_server_start_usage, cmd_server_start },
    { "stop",  "stop a notebook server",  cmd_server_stop_usage,  cmd_server_stop },
    { "list",  "list notebook servers",   cmd_server_list_usage,  cmd_server_list },
};

int cmd_server(int argc, char **argv)
{
    return client_dispatch("server", cmd_server_help, cmd_server_subs,
                           sizeof cmd_server_subs / sizeof *cmd_server_subs, argc, argv);
}

/* /api/v1/servers/USER/NAME ("default" for the default server). */
static char *server_path(const char *user, const char *name)
{
    char *u = client_esc(user), *n = client_esc(name && *name ? name : "default");
    char *p = xasprintf("/api/v1/servers/%s/%s", u, n);
    free(u);
    free(n);
    return p;
}

/* The caller's name, for paths without --user. */
static int whoami(client_t *c, char **out)
{
    json_t *me = NULL;
    int rc = client_call(c, "GET", "/api/v1/me", NULL, &me);
    if (rc) return rc;
    const char *n = json_string_value(json_object_get(me, "name"));
    *out = xstrdup(n ? n : "");
    json_decref(me);
    return CLIENT_EXIT_OK;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int cmd_server_start(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *profile = NULL, *name = NULL, *user = NULL, *timeout = NULL;
    int nowait = 0;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "server start");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--profile", &profile, "server start");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--name", &name, "server start");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--user", &user, "server start");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--timeout", &timeout, "server start");
        if (r == 0 && !strcmp(argv[i], "--no-wait")) nowait = r = 1;
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) return client_usage_error("server start", "unknown option '%s'", argv[i]);
        return client_usage_error("server start", "unexpected argument '%s'", argv[i]);
    }
    int64_t secs = 120;
    if (timeout && (client_parse_id(timeout, &secs) < 0 || secs > 86400))
        return client_usage_error("server start", "--timeout must be a number of seconds, got '%s'", timeout);
    client_t *c;
    int rc = client_open(&o, &c);
    if (rc) return rc;
    char *me = NULL;
    if (!user && (rc = whoami(c, &me))) {
        client_close(c);
        return rc;
    }
    const char *owner = user ? user : me;
    json_t *body = json_pack("{s:s, s:s}", "owner", owner, "name", name ? name : "");
    if (profile) json_object_set_new(body, "profile", json_string(profile));
    json_t *srv = NULL;
    rc = client_call(c, "POST", "/api/v1/servers", body, &srv);
    json_decref(body);
    char *path = server_path(owner, name);
    uint64_t deadline = time_mono_ms() + (uint64_t)secs * 1000;
    while (rc == CLIENT_EXIT_OK && !nowait && !strcmp(jstr(srv, "state"), "starting")) {
        if (time_mono_ms() > deadline) {
            fprintf(stderr, "nbhub: the server is still starting after %lld s\n", (long long)secs);
            rc = CLIENT_EXIT_FAILED;
            break;
        }
        struct timespec ts = { 0, 200 * 1000000L };
        nanosleep(&ts, NULL);
        json_decref(srv);
        srv = NULL;
        rc = client_call(c, "GET", path, NULL, &srv);
    }
    free(path);
    if (rc == CLIENT_EXIT_OK) {
        if (o.json) rc = client_print_json(srv);
        else if (!strcmp(jstr(srv, "state"), "failed")) {
            fprintf(stderr, "nbhub: the server failed to start: %s\n", jstr(srv, "error"));
            rc = CLIENT_EXIT_FAILED;
        } else {
            printf("%s%s  %s\n", client_url(c), jstr(srv, "url"), jstr(srv, "state"));
        }
        if (rc == CLIENT_EXIT_OK && !strcmp(jstr(srv, "state"), "failed")) rc = CLIENT_EXIT_FAILED;
    }
    json_decref(srv);
    free(me);
    client_close(c);
    return rc ? rc : client_flush();
}

static int cmd_server_stop(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *name = NULL, *user = NULL;
    int remove = 0;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "server stop");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--name", &name, "server stop");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--user", &user, "server stop");
        if (r == 0 && !strcmp(argv[i], "--remove")) remove = r = 1;
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) return client_usage_error("server stop", "unknown option '%s'", argv[i]);
        return client_usage_error("server stop", "unexpected argument '%s'", argv[i]);
    }
    client_t *c;
    int rc = client_open(&o, &c);
    if (rc) return rc;
    char *me = NULL;
    if (!user && (rc = whoami(c, &me))) {
        client_close(c);
        return rc;
    }
    char *path = server_path(user ? user : me, name);
    if (remove) {
        char *p2 = xasprintf("%s?remove=true", path);
        free(path);
        path = p2;
    }
    json_t *srv = NULL;
    rc = client_call(c, "DELETE", path, NULL, &srv);
    if (rc == CLIENT_EXIT_OK && !o.json) printf("%s\n", srv ? jstr(srv, "state") : "removed");
    else if (rc == CLIENT_EXIT_OK) rc = client_print_json(srv ? srv : json_null());
    json_decref(srv);
    free(path);
    free(me);
    client_close(c);
    return rc ? rc : client_flush();
}

static int cmd_server_list(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *user = NULL;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "server list");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--user", &user, "server list");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) return client_usage_error("server list", "unknown option '%s'", argv[i]);
        return client_usage_error("server list", "unexpected argument '%s'", argv[i]);
    }
    buf_t path = BUF_INIT;
    buf_puts(&path, "/api/v1/servers");
    if (user) client_query_add(&path, "owner", user);
    client_t *c;
    int rc = client_open(&o, &c);
    json_t *ans = NULL;
    if (rc == CLIENT_EXIT_OK) {
        rc = client_call(c, "GET", path.data, NULL, &ans);
        client_close(c);
    }
    buf_free(&path);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(ans);
        json_decref(ans);
        return rc ? rc : client_flush();
    }
    json_t *servers = json_object_get(ans, "servers");
    if (json_array_size(servers) == 0) {
        printf("No servers.\n");
        json_decref(ans);
        return client_flush();
    }
    static const char *const hdr[] = { "OWNER", "NAME", "PROFILE", "STATE", "STARTED", "URL", "WHY" };
    table_t *t = table_new(7, hdr);
    int64_t now = time_now_us();
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s) {
        char when[64] = "-";
        if (json_is_string(json_object_get(s, "started_at"))) table_time(jstr(s, "started_at"), now, when, sizeof when);
        table_add_row(t);
        table_add_cell(t, jstr(s, "owner"));
        table_add_cell(t, *jstr(s, "name") ? jstr(s, "name") : "(default)");
        table_add_cell(t, jstr(s, "profile"));
        table_add_cell(t, jstr(s, "state"));
        table_add_cell(t, when);
        table_add_cell(t, jstr(s, "url"));
        /* why a stopped or failed one stopped (its stop_reason) */
        const char *why = json_string_value(json_object_get(s, "stop_reason"));
        const char *st = jstr(s, "state");
        table_add_cell(t, why && (!strcmp(st, "stopped") || !strcmp(st, "failed")) ? why : "-");
    }
    rc = table_print(t, stdout);
    table_free(t);
    json_decref(ans);
    return rc ? rc : client_flush();
}
