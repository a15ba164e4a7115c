/*
 * client — what `nbhub flow|runs|user` share: finding the server and the
 * token, a small blocking HTTP client (libcurl easy) for the REST API of
 * docs/api.md, the Server-Sent Events reader behind `flow run --wait`, the
 * mapping of HTTP answers to exit codes, and the output helpers (--json,
 * runs rendered for humans).
 *
 * Two layers, two error conventions:
 *   - client_request / client_sse_* are plain library functions: 0 or a
 *     negative errno, with a message in an nb_err_t.  A non-2xx answer is
 *     not an error at this level (0, with the status in the response).
 *   - Everything else returns an exit code from the table below and has
 *     already printed the message ("nbhub: ..." on stderr) when it is not
 *     CLIENT_EXIT_OK, so a command can simply `return rc`.
 *
 * The token is a secret: it goes into the Authorization header and nowhere
 * else — never into a message, a URL or the process title.  Messages say
 * where it came from ("the token from NBHUB_TOKEN was refused"), not what
 * it is.
 *
 * Ownership: client_t belongs to its opener (client_close).  Responses are
 * caller-declared structs (CLIENT_RESP_INIT) released by client_resp_free.
 * json_t results are new references; json_t arguments are borrowed.
 */
#ifndef NBHUB_CLIENT_H
#define NBHUB_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"

/* Exit codes of every client command (`nbhub flow|runs|user ...`). */
enum client_exit {
    CLIENT_EXIT_OK          = 0, /* success */
    CLIENT_EXIT_FAILED      = 1, /* the remote operation failed (a waited-for run ended failed or
                                    cancelled), or a local output could not be written */
    CLIENT_EXIT_USAGE       = 2, /* bad command line */
    CLIENT_EXIT_INVALID     = 3, /* invalid input: a flow file or parameter the server refused (400,
                                    413), an unreadable input file, a bad config file, a password
                                    refused */
    CLIENT_EXIT_NOT_FOUND   = 4, /* no such flow, run, task or user (404) */
    CLIENT_EXIT_AUTH        = 5, /* not authenticated or not allowed (401, 403) */
    CLIENT_EXIT_CONFLICT    = 6, /* conflict with the current state (409): name taken, run finished */
    CLIENT_EXIT_UNREACHABLE = 7, /* cannot reach the server, or it failed (5xx, bad answer) */
};

/* The table above as printed by --help. */
extern const char client_exit_codes_help[];

/* The default server when no flag, variable or config file names one. */
#define CLIENT_DEFAULT_URL "http://127.0.0.1:8765"

/* ------------------------------------------------------------ command line */

/* Options every client command takes; the strings point into argv. */
struct client_opts {
    const char *url;      /* --url */
    const char *token;    /* --token */
    int         json;     /* --json */
};

/* Help text of the options above, for the usage strings. */
#define CLIENT_OPTS_HELP \
    "  --url URL      the server (default: $NBHUB_URL, the config file, " CLIENT_DEFAULT_URL ")\n" \
    "  --token TOKEN  API token (default: $NBHUB_TOKEN, then the config file)\n"

/*
 * Option parsing helpers for "--name VALUE" and "--name=VALUE".
 * client_opt_value: when argv[*i] is option `name`, stores its value, moves
 * *i past it and returns 1; 0 if argv[*i] is another thing; -1 (message
 * printed, "group sub" names the command) when the value is missing.
 * client_opt_common does that for --url, --token and --json.
 */
int client_opt_value(int argc, char **argv, int *i, const char *name, const char **val,
                     const char *cmd);
int client_opt_common(struct client_opts *o, int argc, char **argv, int *i, const char *cmd);
/* Print "nbhub CMD: <message>\nTry 'nbhub CMD --help'." and return
 * CLIENT_EXIT_USAGE. */
int client_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a positive integer argument (run ids, --limit ...); 0 or -1. */
int client_parse_id(const char *s, int64_t *out);

/* A subcommand table row, and the dispatcher the three groups share:
 * `nbhub GROUP` with no or an unknown subcommand is a usage error;
 * `--help` / `-h` anywhere after the subcommand prints its usage. */
struct client_sub {
    const char *name;
    const char *summary;
    const char *usage;      /* full --help text */
    int (*fn)(int argc, char **argv);
};
int client_dispatch(const char *group, const char *group_help, const struct client_sub *subs,
                    size_t n, int argc, char **argv);

/* ------------------------------------------------------------ configuration */

typedef struct client_config {
    char       *url;          /* no trailing '/' */
    char       *token;        /* NULL = none */
    const char *url_from;     /* "--url", "NBHUB_URL", "the config file", "the default" */
    const char *token_from;   /* "--token", "NBHUB_TOKEN", "the config file", NULL */
    char       *config_path;  /* the config file consulted, or NULL */
} client_config_t;

/* The config file's path: $XDG_CONFIG_HOME/nbhub/config.yaml when that is
 * set and absolute, else $HOME/.config/nbhub/config.yaml (fresh string;
 * NULL when neither variable is usable). */
char *client_config_path(void);

/*
 * Resolve the server and the token: flags, then NBHUB_URL / NBHUB_TOKEN,
 * then the config file (`url:` and `token:`), then the default URL.  The
 * file is read only when something is still missing, and refused when it is
 * readable or writable by group or others (it holds a credential) or not
 * owned by us.  Returns 0 or -EINVAL / -EACCES / -EIO with the message.
 */
int  client_config_load(const struct client_opts *o, client_config_t *cfg, nb_err_t *err);
void client_config_clear(client_config_t *cfg);
/*
 * Write url and token into the config file (`nbhub login`): the directory
 * made 0700 if missing, the file written 0600 under a temporary name and
 * renamed over the old one, so a reader never sees half a file and the
 * token is never readable by others, not even for a moment.  Whatever else
 * the old file held is replaced (url and token are all it can hold).
 * *path_out (may be NULL) gets the path.  0 or -errno with the message.
 */
int  client_config_save(const char *url, const char *token, char **path_out, nb_err_t *err);

/* ------------------------------------------------------------ requests */

typedef struct client client_t;

typedef struct client_resp {
    long   status;         /* HTTP status; 0 until an answer came */
    buf_t  body;
    char  *content_type;   /* NULL if none */
    char  *location;       /* where a 3xx points (never followed), or NULL */
} client_resp_t;
#define CLIENT_RESP_INIT { 0, BUF_INIT, NULL, NULL }
void client_resp_free(client_resp_t *r);

/* Load the configuration and make a client: an exit code (3 for a bad
 * configuration, message printed). */
int  client_open(const struct client_opts *o, client_t **out);
void client_close(client_t *c);
/* The server's base URL (for messages). */
const char *client_url(const client_t *c);
/* A client for url that reads no configuration and sends no token of its
 * own (`nbhub login`, which has none yet); url must be http(s)://... */
int  client_open_url(const char *url, client_t **out);

/*
 * One request: method, a path starting with "/" (already escaped; see
 * client_esc), an optional body of `len` bytes with its Content-Type.
 * 0 when an HTTP answer arrived (whatever its status), -ECONNREFUSED,
 * -ETIMEDOUT, -EHOSTUNREACH or -EIO when none did.
 */
int client_request(client_t *c, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, client_resp_t *r, nb_err_t *err);

/*
 * The usual call: send `body` (JSON, may be NULL), check the answer, parse
 * it.  Returns an exit code.  On success *out (may be NULL) holds the
 * parsed JSON (NULL for an empty body, e.g. 204).  On failure the error has
 * been printed: the server's message as "nbhub: <message>", then its
 * `details` lines as they are ("FILE:LINE:COL: msg").
 */
int client_call(client_t *c, const char *method, const char *path, const json_t *body,
                json_t **out);
/* Same with a raw body and the raw answer (logs, notebooks, flow files).
 * On CLIENT_EXIT_OK, r holds the 2xx answer. */
int client_call_raw(client_t *c, const char *method, const char *path, const char *ctype,
                    const void *body, size_t len, client_resp_t *r);
/*
 * A request to an absolute http(s) URL with an explicit credential (bearer,
 * may be NULL) instead of the configured token: `nbhub login` talks to the
 * identity provider (no credential: the provider's token must never see
 * nbhub's, nor the other way round) and presents the provider's access
 * token to nbhub.  Same rules as client_request: no redirects followed.
 */
int client_fetch(client_t *c, const char *method, const char *url, const char *bearer,
                 const char *ctype, const void *body, size_t len, client_resp_t *r, nb_err_t *err);
/* Exit code of a status: 2xx 0, 400/413/422 3, 404 4, 401/403 5, 409 6,
 * else (5xx, 405, 3xx...) 7. */
int client_status_exit(long status);
/* Print the error of a non-2xx answer (see client_call) and return its exit
 * code. */
int client_report(const client_t *c, const client_resp_t *r);
/* Report a transport failure (no answer): "cannot reach the server at URL:
 * why" and CLIENT_EXIT_UNREACHABLE. */
int client_report_unreachable(const client_t *c, const nb_err_t *err);

/* Percent-encode s for a path segment or a query value (fresh string). */
char *client_esc(const char *s);
/* Append "?key=value" or "&key=value" (value escaped) to a path being built. */
void client_query_add(buf_t *path, const char *key, const char *value);

/* ------------------------------------------------------------ events */

/* One Server-Sent Event; fields are NULL when the event had none. */
typedef struct client_event {
    char *id;
    char *event;
    char *data;
} client_event_t;
void client_event_clear(client_event_t *ev);

typedef struct client_sse client_sse_t;

/*
 * Open an event stream (GET path, Accept: text/event-stream, Last-Event-ID
 * when last_id is not NULL) and wait until the server has answered with its
 * headers, so a caller that checks state after this returns cannot miss an
 * event (the server subscribes the stream before it answers).  0 with *out
 * set when the answer is 200; when it is not, 0 with *out NULL and the
 * answer in *r (report it with client_report); -errno when none came.
 */
int client_sse_open(client_t *c, const char *path, const char *last_id, client_sse_t **out,
                    client_resp_t *r, nb_err_t *err);
/* Next event within timeout_ms: 1 (ev filled), 0 (timeout), -EPIPE (the
 * stream ended), other -errno. */
int client_sse_next(client_sse_t *s, int timeout_ms, client_event_t *ev, nb_err_t *err);
void client_sse_close(client_sse_t *s);

/* ------------------------------------------------------------ output */

/* Pretty JSON (2-space indent, sorted keys) and a newline on stdout;
 * CLIENT_EXIT_OK, or CLIENT_EXIT_FAILED when stdout cannot be written. */
int client_print_json(const json_t *v);
/* fflush(stdout) with the same mapping, for the end of a command. */
int client_flush(void);
/* String member or NULL; integer member or `dflt`. */
const char *client_str(const json_t *o, const char *key);
int64_t     client_int(const json_t *o, const char *key, int64_t dflt);
/* Seconds between two API times ("" on a missing start), for DURATION
 * columns: ended or, while running, now. */
void client_span(const json_t *o, const char *from, const char *to, int64_t now_us, char *out,
                 size_t n);
/* A Run object for humans (`runs show`, `flow run --wait`): a summary block
 * then the task table (when the run has tasks). */
void client_render_run(const json_t *run, buf_t *out);
/* A list of Run objects as a table (ID, FLOW, RUN ID, KIND, STATE, STARTED,
 * DURATION); `runs list` and `flow backfill`. */
void client_render_runs(const json_t *runs, buf_t *out);
/* Whether a run state is final (success, failed, cancelled). */
int client_run_state_final(const char *state);

#endif
