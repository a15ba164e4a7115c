/*
 * api_int — what the files of src/api share: the api_t itself, the route
 * flags and the route table, the per-request context the authentication
 * hook leaves for the handlers, the handlers' prototypes and the small
 * helpers every handler uses (error answers, JSON bodies).  Nothing outside
 * src/api includes it, except the API's unit test (which generates its
 * authorization matrix from the route table).
 *
 * Ownership: an api_ctx_t lives in its request's arena and dies with the
 * request; its strings too.  json_t results of api_json_* are new
 * references.
 */
#ifndef NBHUB_API_INT_H
#define NBHUB_API_INT_H

#include <stdint.h>
#include <jansson.h>

#include "api/api.h"
#include "http/hclient.h"
#include "http/router.h"
#include "http/sse.h"
#include "sched/tz.h"
#include "store/store_auth.h"
#include "store/store_flows.h"
#include "store/store_runs.h"
#include "util/buf.h"
#include "util/errlist.h"

/* Route flags, checked by api_auth_before in this order:
 *   API_AUTH   a user must be authenticated (401 otherwise); requests that
 *              authenticated with the session cookie must also carry the
 *              CSRF token on POST, PUT, PATCH and DELETE (403 csrf)
 *   API_ADMIN  the user must be an admin (403)
 *   API_SELF   ":name" is a user name: the user themself or an admin (403)
 *   API_FLOW   ":name" is a flow the user may see: its owner or an admin
 *              (404 otherwise, so names do not leak)
 *   API_RUN    ":id" is a run of a flow the user may see (404 otherwise)
 *   API_CLUSTER ":name" (?owner=) or the /spark/.../ui path names a Spark
 *              cluster the user may see: their own, or any for an admin
 *              (404 otherwise; names are per user, api_spark.c)
 *   API_HUB    JupyterHub's API under /hub/api (api_hub.c): identified by
 *              any kind of token or the session cookie, authorized by
 *              JupyterHub scopes (api_hub_before); errors in JupyterHub's
 *              shape.  The other flags do not apply to these routes.
 * Routes without API_AUTH (or API_HUB) are public.  Whatever the route, a
 * token that is not the user's own full-rights 'api' token (a server's,
 * an OAuth token, a token with scopes) reaches nothing but API_HUB routes
 * (api_auth_full). */
enum {
    API_F_AUTH  = 1u << 0,
    API_F_ADMIN = 1u << 1,
    API_F_SELF  = 1u << 2,
    API_F_FLOW  = 1u << 3,
    API_F_RUN   = 1u << 4,
    API_F_CLUSTER = 1u << 5,
    API_F_HUB   = 1u << 6,
    API_F_LIVY  = 1u << 7,

    API_PUBLIC = 0,
    API_AUTH   = API_F_AUTH,
    API_ADMIN  = API_F_ADMIN | API_F_AUTH,
    API_SELF   = API_F_SELF | API_F_AUTH,
    API_FLOW   = API_F_FLOW | API_F_AUTH,
    API_RUN    = API_F_RUN | API_F_AUTH,
    API_CLUSTER = API_F_CLUSTER | API_F_AUTH,
    API_HUB     = API_F_HUB,
    /* the Livy API (/livy/, and / on livy_listen): nbhub tokens, the
     * session cookie, or HTTP Basic with an nbhub user's password
     * (api_livy_auth.c); X-Requested-By with livy.csrf; errors in Livy's
     * shape.  Every route checks what the caller may see itself. */
    API_LIVY    = API_F_LIVY | API_F_AUTH,
};

#define API_SESSION_COOKIE "nbhub_session"
#define API_SESSION_TTL_US (7LL * 24 * 3600 * 1000000)

typedef struct api_sse_client api_sse_client_t;

struct api {
    uv_loop_t     *loop;
    store_t       *store;
    sched_t       *sched;
    pool_t        *pool;
    http_server_t *srv;
    http_router_t *router;
    char          *home;           /* realpath of $NBHUB_HOME (for the task file check) */
    char          *home_given;     /* as configured, for /api/v1/info */
    char          *self_exe;       /* the nbhub binary */
    hclient_t     *hc;             /* borrowed: requests to Spark's UIs (NULL: 503) */
    int            spark_max_clusters;    /* per user (admins exempt), api_spark.c */
    long           spark_max_memory_mb;   /* per user: workers x worker_memory of those */
    char          *version;
    int            secure_cookies;
    int            isolation_system;
    char          *account_tmpl;
    int            create_accounts, cgroups;
    const iso_limits_t *(*user_limits)(void *limits_ud, const char *user);
    void          *limits_ud;
    char         **trusted_users;  /* NULL-terminated copy, may be NULL */
    size_t         anon_body_max;  /* body limit of requests no credential vouches for */
    int            stopping;
    int64_t        started_at;
    char          *dummy_hash;     /* argon2 hash verified for unknown users (timing) */
    /* Logins waiting for their password check, and the one in the pool
     * (api_auth.c: one at a time). */
    struct api_login_job *login_queue, *login_tail, *login_running;
    struct lockout *lockout;       /* failed logins per name and address (auth/lockout.c) */
    struct oauth  *oauth;          /* OAuth authorization codes (auth/oauth.h, api_hub_oauth.c) */
    /* single sign-on (api_oidc.c): the provider, NULL when not configured */
    struct oidc   *oidc;
    int            local_login;    /* auth.local: password logins allowed */
    char          *base_url;       /* nbhub's public URL (redirect URIs), NULL: from Host */
    uv_timer_t    *oidc_timer;     /* refreshes provider sessions */
    int64_t        oidc_inflight[64];   /* sessions being refreshed */
    size_t         oidc_nflight;
    struct seal_key *oidc_seal;    /* seals the provider's tokens at rest (auth/seal.h) */
    struct api_oidc_ended *oidc_ended;   /* provider sessions known ended (api_oidc.c) */
    size_t         oidc_nended;
    struct hub    *hub;            /* users' notebook servers; NULL: none (api_set_hub) */
    struct livy   *livy;           /* Livy sessions (src/livy/livy.h); NULL: /livy/ answers 503 */
    char         **pool_names;
    unsigned      *pool_sizes;
    size_t         npool;
    api_sse_client_t *clients;     /* connected SSE streams */
    uv_timer_t    *spark_timer;    /* while a stream is open: Spark progress, rechecks (api_events.c) */
    unsigned       recheck_ticks;  /* spark_timer ticks since the streams' last recheck */
    struct api_spark_seen *spark_seen;
    size_t         nspark_seen;
    /* output.html renders (api_runs.c): the cap, the slots, the waiting line. */
    int64_t        render_max;     /* bytes; < 0: never render */
    unsigned       render_jobs, render_queue, render_running;
    size_t         render_nwaiting;
    struct api_render_job *render_head, *render_tail;
    /* the Livy API: batches (livy/livy_batch.h), HTTP Basic's cache and
     * the livy_listen router (api_livy_auth.c) */
    struct livy_batches *livy_batches;
    int            livy_csrf;      /* livy.csrf: X-Requested-By on POST/DELETE */
    struct http_route *livy_routes;   /* the /livy/ routes without /livy */
    http_router_t *livy_router;
    struct api_livy_auth *livy_auth;
};

#define API_RENDER_MAX_DEFAULT   (32LL * 1024 * 1024)
#define API_RENDER_JOBS_DEFAULT  2
#define API_RENDER_QUEUE_DEFAULT 16

/* Who is asking; set by api_auth_before (http_req_user). */
typedef struct api_ctx {
    int64_t     uid;
    const char *name;
    const char *log_name;          /* name made safe for log lines */
    int         admin;
    int         via_cookie;        /* authenticated by the session cookie */
    const char *session_digest;    /* digest of that cookie (logout) */
    const char *token_digest;      /* digest of the bearer token, if that was it */
    const char *csrf;              /* that session's CSRF token */
    const char *idp_sid;           /* the provider's access token was the credential: the
                                      provider session it names ("" none); else NULL */
    /* API_FLOW / API_RUN: the object the hook found visible. */
    const char *flow;              /* flow name (the run's flow for API_RUN) */
    int64_t     flow_id;           /* flows.id: the live one (API_FLOW), the run's (API_RUN) */
    int64_t     run;               /* runs.id for API_RUN */
    const char *cluster;           /* API_CLUSTER: the Spark cluster's id (scluster_id) */
    /* The bearer token, when that was the credential (store_token_t). */
    int64_t     token_id;
    store_token_kind_t token_kind;
    const char *token_scopes;      /* JSON list; NULL = all the owner's rights */
    int64_t     token_server_id;   /* 'server' and 'oauth' tokens: their server */
    const char *token_server;      /* that server's name ("" = default) */
    const char *token_server_owner;   /* and its owner's name */
    /* API_LIVY: HTTP Basic credentials not checked yet (the gate saw the
     * head; the check runs on the thread pool when the body is in). */
    int         basic_pending;
    /* API_HUB: the caller's JupyterHub scopes, expanded (request arena). */
    const char *const *scopes;
    size_t      nscopes;
} api_ctx_t;

extern const struct http_route api_routes[];
extern const size_t api_nroutes;

/* ---- api.c: helpers --------------------------------------------------- */

/* The context of an authenticated request (NULL on public routes). */
const api_ctx_t *api_ctx(const http_req_t *req);
/* Answer {"error": {"code", "message"}}; msg is data, never a format. */
void api_error(http_req_t *req, int status, const char *code, const char *msg);
/* Answer the HTTP error for a negative errno from the store or scheduler:
 * -ENOENT 404, -EACCES 403, -EBUSY/-ESTALE/-EEXIST 409, -EINVAL 400,
 * -ESHUTDOWN/-EAGAIN/-ENOTSUP (not configured) 503, else 500 (logged, generic message). */
void api_fail(http_req_t *req, int rc, const nb_err_t *err);
/* The body as a JSON object.  An empty body is {} when allow_empty.  Its
 * members must be among `members` (NULL-terminated; API_MEMBERS), as the
 * OpenAPI document's additionalProperties: false says: a misspelt optional
 * member ("expire_in") is refused rather than silently ignored.  On failure
 * answers 400 (with the parse position or the unknown member) and returns
 * -1. */
int  api_body_object(http_req_t *req, int allow_empty, const char *const *members, json_t **out);
/* api_body_object with another answer for a refusal (bad: e.g. Livy's
 * {"msg"}) and another word for an unknown member ("Unrecognized field"). */
int  api_body_parse(http_req_t *req, int allow_empty, const char *const *members, json_t **out,
                    void (*bad)(http_req_t *req, const char *msg), const char *unknown);
#define API_MEMBERS(...) ((const char *const[]){ __VA_ARGS__, NULL })
/* 1 if the user may see flows owned by owner_id (owner or admin). */
int  api_may_see(const api_ctx_t *c, int64_t owner_id);
/* s with every character outside [A-Za-z0-9._@-] replaced by '?' and cut
 * at 64: a name safe to put in a key=value log line (request arena). */
const char *api_log_name(http_req_t *req, const char *s);
/* Without a scheduler, answer 503 and return 1. */
int  api_no_sched(api_t *a, http_req_t *req);
/* Parse a decimal int64 in [min, max]; 0 or -EINVAL. */
int  api_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* User names by id, looked up once per answer (owners, triggered_by). */
typedef struct api_names {
    int64_t *ids;
    char   **names;
    size_t   n;
} api_names_t;
#define API_NAMES_INIT { NULL, NULL, 0 }
/* The name of user id, or NULL for 0 or an unknown id.  Borrowed from the
 * cache: valid until api_names_free. */
const char *api_names_get(api_t *a, api_names_t *c, int64_t id);
void api_names_free(api_names_t *c);

/* ---- api_auth.c ------------------------------------------------------- */

int  api_auth_before(http_req_t *req, const struct http_route *route, void *ud);
/* Who sent a request on a public route (the web UI's pages): 0 and c
 * filled in, or a negative errno (no or bad credentials: -EACCES).  Never
 * answers the request. */
int  api_auth_peek(api_t *a, http_req_t *req, api_ctx_t *c);
/* 1 if c's credential may use nbhub's own API (/api/v1, pages): a session
 * or the user's own 'api' token without scopes (or with "inherit"). */
int  api_auth_full(const api_ctx_t *c);
/* api_auth_peek without that limit: any kind of token (for /hub/api). */
int  api_auth_peek_any(api_t *a, http_req_t *req, api_ctx_t *c);
/* The two credentials apart, any kind of token (the proxy, api_proxy.c,
 * which leaves an Authorization header that is not ours to the notebook
 * server and then looks at the cookie): 0 and *c, or < 0. */
int  api_auth_peek_header(api_t *a, http_req_t *req, api_ctx_t *c);
int  api_auth_peek_cookie(api_t *a, http_req_t *req, api_ctx_t *c);
/* Run id exists and c may see its flow: 0 (c->flow and c->run set),
 * -ENOENT (absent or not visible: the same answer), or another errno. */
int  api_auth_run_visible(api_t *a, http_req_t *req, api_ctx_t *c, int64_t id, nb_err_t *err);
void api_auth_login(http_req_t *req, void *ud);
/* The client address the login lockout counts (auth/lockout.h) of a peer
 * as http_req_peer gives it ("192.0.2.1:5342", "[2001:db8::1]:5342",
 * "unix"): the address without its port; IPv6 cut to its /64
 * ("2001:db8::/64"), except an IPv4 address mapped into IPv6 (a dual-stack
 * listener), which is the IPv4 address. */
void api_auth_peer_key(const char *peer, char *out, size_t size);
/* POST /logout: with the cookie ends that session, with a token revokes it. */
void api_auth_logout(http_req_t *req, void *ud);
/* Set u's password to new_pw for the request's user (already allowed by
 * the route: u themself or an admin) and answer the request: 204, 403 when
 * u is the caller and old_pw is missing or wrong (counted as a failed
 * login), 429 while locked out.  The old password is checked and the new
 * one hashed on the thread pool.  u's other sessions end (the caller's
 * own stays when it is u's), its API tokens too with revoke_tokens.
 * Takes u (cleared). */
void api_auth_password_change(api_t *a, http_req_t *req, store_user_t *u, const char *old_pw,
                              const char *new_pw, int revoke_tokens);
void api_auth_me(http_req_t *req, void *ud);
/* Is the credential a long-lived request (an event stream) was opened with
 * still good: the session or token with this digest not revoked or
 * expired, its user uid still enabled?  1 (and *admin refreshed), 0 (end
 * the stream), or a negative errno (store trouble: keep it, ask later). */
int  api_auth_recheck(api_t *a, int via_cookie, const char *digest, int64_t uid, int *admin);
/* HTTP Basic (the Livy routes): name and password checked as a login's
 * are, in the same queue, at the same cost, under the same lockout; then
 * done(req, user, ud) with the user, or NULL (wrong, unknown, disabled).
 * A lockout answers 429 itself, and done is not called. */
typedef void (*api_basic_fn)(http_req_t *req, const store_user_t *u, void *ud);
void api_auth_basic_check(api_t *a, http_req_t *req, const char *name, const char *pw, api_basic_fn done,
                          void *ud);

/* ---- api_oidc.c ------------------------------------------------------- */

void api_oidc_config(http_req_t *req, void *ud);
void api_oidc_login(http_req_t *req, void *ud);
void api_oidc_callback(http_req_t *req, void *ud);
void api_oidc_backchannel(http_req_t *req, void *ud);
/* The provider's end-session URL for the session with this digest (new
 * string), or NULL when it did not come from the provider. */
char *api_oidc_logout_url(api_t *a, http_req_t *req, const char *session_digest);
/* A provider's access token as a credential (accept_access_tokens): 0 and
 * *uid (found or created as at login), -EACCES (*why may say why), or a
 * store errno. */
int  api_oidc_bearer(api_t *a, http_req_t *req, const char *tok, int64_t *uid, const char **why,
                     const char **idp_sid);
/* The refresh timer (api_new / api_set_stopping). */
int  api_oidc_start(api_t *a, nb_err_t *err);
/* api_oidc_stop, and the seal key and the ended sessions freed. */
void api_oidc_free(api_t *a);
void api_oidc_stop(api_t *a);

/* ---- api_users.c ------------------------------------------------------ */

void api_users_list(http_req_t *req, void *ud);
void api_users_create(http_req_t *req, void *ud);
void api_users_password(http_req_t *req, void *ud);
void api_users_trusted(http_req_t *req, void *ud);
void api_users_tokens_list(http_req_t *req, void *ud);
void api_users_token_create(http_req_t *req, void *ud);
void api_users_token_delete(http_req_t *req, void *ud);
/* [A-Za-z0-9][A-Za-z0-9._@-]{0,63}: safe in paths, flow files and logs. */
int  api_users_name_valid(const char *s);

/* ---- api_flows.c ------------------------------------------------------ */

void api_flows_list(http_req_t *req, void *ud);
/* GET /flows's document for c: a new reference, or NULL with *rc and err. */
json_t *api_flows_list_json(api_t *a, const api_ctx_t *c, int *rc, nb_err_t *err);
void api_flows_apply(http_req_t *req, void *ud);
void api_flows_get(http_req_t *req, void *ud);
void api_flows_delete(http_req_t *req, void *ud);
void api_flows_pause(http_req_t *req, void *ud);
void api_flows_resume(http_req_t *req, void *ud);
void api_flows_trigger(http_req_t *req, void *ud);
void api_flows_backfill(http_req_t *req, void *ud);
void api_flows_runs(http_req_t *req, void *ud);

/* ---- api_runs.c ------------------------------------------------------- */

void api_runs_list(http_req_t *req, void *ud);
void api_runs_get(http_req_t *req, void *ud);
void api_runs_cancel(http_req_t *req, void *ud);
void api_runs_task_cancel(http_req_t *req, void *ud);
void api_runs_task_kernel_end(http_req_t *req, void *ud);
void api_runs_task_log(http_req_t *req, void *ud);
void api_runs_task_output(http_req_t *req, void *ud);
void api_runs_task_output_html(http_req_t *req, void *ud);
void api_runs_task_spark(http_req_t *req, void *ud);

/* ---- api_spark.c: Spark clusters --------------------------------------- */
int  api_spark_auth(api_t *a, http_req_t *req, api_ctx_t *c);   /* API_CLUSTER; -1 = answered 404 */
char *api_spark_dir(const api_t *a, const char *id);     /* $HOME/spark[/ID], new */
/* The id of cluster NAME as the caller sees it (owner: an admin naming
 * another user's; NULL: the caller's own, else for an admin the
 * operator's), or NULL if there is none they may see.  New string. */
char *api_spark_resolve(const api_t *a, const api_ctx_t *c, const char *owner, const char *name);
void api_spark_list(http_req_t *req, void *ud);
void api_spark_create(http_req_t *req, void *ud);
void api_spark_get(http_req_t *req, void *ud);
void api_spark_delete(http_req_t *req, void *ud);
char *api_runs_spark_path(const char *log_path);   /* new string or NULL */

/* ---- api_sparkui.c: the Spark UIs through the proxy --------------------- */
void api_sparkui_get(http_req_t *req, void *ud);
/* The cluster a /spark/NAME/ui... or /spark/~OWNER/NAME/ui... path names,
 * as the caller sees it (api_spark_resolve), or NULL.  New string. */
char *api_sparkui_resolve(const api_t *a, http_req_t *req, const api_ctx_t *c);
void api_flows_parameters(http_req_t *req, void *ud);
void api_flows_files(http_req_t *req, void *ud);
/* api_ui.c: the web UI's page and files, compiled in from web/. */
void api_ui_index(http_req_t *req, void *ud);
void api_ui_asset(http_req_t *req, void *ud);
/* api_ssr.c: for GET / and /flows (the flow list) and /runs/ID, with a
 * valid session, page (the assembled index.html) with the first view
 * written into it, into out: 1; else 0 and out untouched. */
int  api_ssr_page(api_t *a, http_req_t *req, const char *page, size_t len, buf_t *out);
/* GET /runs and GET /flows/:name/runs: the list for filter flow (NULL = all). */
void api_runs_list_for(api_t *a, http_req_t *req, const char *flow, int64_t flow_id);
/* The Run object (with tasks) of runs.id, or NULL with *rc set. */
json_t *api_runs_load(api_t *a, int64_t run, int *rc, nb_err_t *err);

/* ---- api_servers.c: nbhub's own API for notebook servers (the hub) ---- */
void api_servers_profiles(http_req_t *req, void *ud);
void api_servers_list(http_req_t *req, void *ud);
void api_servers_start(http_req_t *req, void *ud);
void api_servers_get(http_req_t *req, void *ud);
void api_servers_stop(http_req_t *req, void *ud);
void api_servers_progress(http_req_t *req, void *ud);
/* The stop reason of a server stopped through the API by c: "stopped by
 * alice" (its owner, or a token of theirs), "stopped by admin root" (an
 * admin, another user's server). */
void api_stop_reason(const api_ctx_t *c, const char *owner, char *out, size_t n);

/* ---- api_livy.c: the Livy API at /livy/ (docs/livy.md) -------------------
 * Livy's conventions, shared by sessions (api_livy.c) and batches
 * (api_livy_batches.c): errors are {"msg": "..."} (sparkmagic and Airflow
 * read that member), lists are {"from", "total", "sessions"} paged by
 * ?from=&size=, logs {"id", "from", "total", "log"}. */
#define API_LIVY_PAGE_DEFAULT 100
/* Answer {"msg": msg} with status; msg is data, never a format. */
void api_livy_error(http_req_t *req, int status, const char *msg);
/* api_fail in Livy's shape: -ENOENT 404, -EACCES/-EPERM 403, -EINVAL,
 * -EEXIST, -ERANGE, -E2BIG 400, -EBUSY/-ESTALE 409, -ESHUTDOWN/-EAGAIN/
 * -ENOTSUP 503, else 500 (logged, generic message). */
void api_livy_fail(http_req_t *req, int rc, const nb_err_t *err);
/* The body as a JSON object whose members are among `members`
 * (API_MEMBERS); an empty body is {} when allow_empty.  Else answers 400
 * {"msg"} and returns -1. */
int  api_livy_body(http_req_t *req, int allow_empty, const char *const *members, json_t **out);
/* ?from= (default 0) and ?size= (default API_LIVY_PAGE_DEFAULT): 0, or
 * answers 400 and returns -1. */
int  api_livy_page(http_req_t *req, int64_t *from, int64_t *size);
/* {"from", "total", key: items[from, from + size)}; takes items (an array). */
json_t *api_livy_page_json(json_t *items, const char *key, int64_t from, int64_t size);
/* A log file's lines as Livy's GET .../log answers them: ?from= (default:
 * the last size lines), ?size= (default 100; < 0: all).  At most the last
 * API_LIVY_LOG_WINDOW bytes of the file are read; a missing file has no
 * lines.  New reference {"id", "from", "total", "log"}; NULL with answer
 * 400 sent for a bad parameter. */
#define API_LIVY_LOG_WINDOW (8 * 1024 * 1024)
json_t *api_livy_log_json(http_req_t *req, int64_t id, const char *path);
/* The last n lines of a log file (session and batch objects' "log"). */
json_t *api_livy_log_tail(const char *path, int n);
/* proxyUser of a create request: absent/null is NULL; a non-admin naming
 * anyone but themself is refused 403 as Livy does ("User 'x' not allowed
 * to impersonate 'y'.").  0 and *out (borrowed from body), or answered
 * and -1. */
int  api_livy_proxy_user(http_req_t *req, const api_ctx_t *c, const json_t *body, const char **out);
/* The Spark options of a create request (sessions and batches) checked
 * for Livy's types: driverMemory/executorMemory sizes ("512m", "2g"),
 * driverCores/executorCores/numExecutors positive integers, jars/pyFiles/
 * files/archives lists of strings, conf an object of strings (or numbers
 * and booleans, kept as text), name a string, queue a string.  0, or
 * answers 400 and returns -1. */
int  api_livy_check_spark(http_req_t *req, const json_t *body);
/* The id in path parameter `name` (a non-negative integer), or answers
 * 404 ("what 'X' not found.") and returns -1. */
int  api_livy_path_id(http_req_t *req, const char *name, const char *what, int64_t *out);
/* ---- api_livy_auth.c: who calls the Livy routes --------------------------- */
/* 1 while api_gate runs the before hook on a request's head alone (the
 * hook must answer at once then; api.c). */
extern int api_gate_pass;
/* api_auth_before for API_LIVY routes. */
int  api_livy_before(api_t *a, http_req_t *req, const struct http_route *route);
void api_livy_auth_free(struct api_livy_auth *la);
/* ---- api_livy_batches.c ---- */
void api_livy_batches_create(http_req_t *req, void *ud);
void api_livy_batches_list(http_req_t *req, void *ud);
void api_livy_batch_get(http_req_t *req, void *ud);
void api_livy_batch_state(http_req_t *req, void *ud);
void api_livy_batch_log(http_req_t *req, void *ud);
void api_livy_batch_delete(http_req_t *req, void *ud);
/* Routes of api_livy.c. */
void api_livy_sessions_list(http_req_t *req, void *ud);
void api_livy_sessions_create(http_req_t *req, void *ud);
void api_livy_session_get(http_req_t *req, void *ud);
void api_livy_session_state(http_req_t *req, void *ud);
void api_livy_session_log(http_req_t *req, void *ud);
void api_livy_session_delete(http_req_t *req, void *ud);
void api_livy_stmts_list(http_req_t *req, void *ud);
void api_livy_stmts_create(http_req_t *req, void *ud);
void api_livy_stmt_get(http_req_t *req, void *ud);
void api_livy_stmt_cancel(http_req_t *req, void *ud);

/* ---- api_proxy.c: /user/NAME[/SERVER]/ to the user's notebook server ---- */
void api_proxy_user(http_req_t *req, void *ud);
void api_proxy_user_bare(http_req_t *req, void *ud);
/* The hub hooks that end proxied exchanges of a server that stopped. */
void api_proxy_hooks(api_t *a);
/* ---- api_hub.c: JupyterHub's API at /hub/api ------------------------------ */

/* The version /hub/api answers with (X-JupyterHub-Version, GET /hub/api/):
 * the JupyterHub whose API this is, so jupyterhub-singleuser 6.x and the
 * idle culler see a hub of their own major version. */
#define API_HUB_VERSION "6.1.1"

struct scopes;
/* api_auth_before for API_HUB routes: 0 = go on, 1 = answered. */
int  api_hub_before(api_t *a, http_req_t *req, const struct http_route *route);
/* 1 if fn is a /hub/api handler with its scope needs declared (tests). */
int  api_hub_route_known(http_handler_fn fn);
/* {"status": N, "message": msg}, JupyterHub's error shape. */
void api_hub_error(http_req_t *req, int status, const char *msg);
/* api_fail for /hub/api. */
void api_hub_fail(http_req_t *req, int rc, const nb_err_t *err);
/* The request body as JSON (NULL when empty); -1 = answered 400. */
int  api_hub_body(http_req_t *req, json_t **out);
/* The expanded JupyterHub scopes of c's credential (appended to out). */
void api_hub_scopes(api_t *a, const api_ctx_t *c, struct scopes *out);
/* 1 if a token's stored scopes (JSON list) hold "inherit". */
int  api_hub_scopes_inherit(const char *scopes_json);
/* Does c (API_HUB, scopes set) hold base on kind=value (kind NULL:
 * unfiltered)?  api_hub_has_any: base in any form. */
int  api_hub_has(api_t *a, const api_ctx_t *c, const char *base, const char *kind, const char *value);
int  api_hub_has_any(const api_ctx_t *c, const char *base);
/* "USER/SERVER" for a !server= filter. */
void api_hub_server_filter(const char *user, const char *server, char *out, size_t n);
/* JupyterHub's user model of u as c may see it, or NULL if c may see
 * nothing of u. */
json_t *api_hub_user_model(api_t *a, http_req_t *req, const api_ctx_t *c, const store_user_t *u);
void api_hub_root(http_req_t *req, void *ud);
void api_hub_not_found(http_req_t *req, void *ud);
void api_hub_info(http_req_t *req, void *ud);
void api_hub_self(http_req_t *req, void *ud);
void api_hub_users_list(http_req_t *req, void *ud);
void api_hub_users_create(http_req_t *req, void *ud);
void api_hub_user_get(http_req_t *req, void *ud);
void api_hub_user_create(http_req_t *req, void *ud);
void api_hub_user_patch(http_req_t *req, void *ud);
void api_hub_user_delete(http_req_t *req, void *ud);
void api_hub_tokens_list(http_req_t *req, void *ud);
void api_hub_token_create(http_req_t *req, void *ud);
void api_hub_token_get(http_req_t *req, void *ud);
void api_hub_token_delete(http_req_t *req, void *ud);
void api_hub_activity(http_req_t *req, void *ud);
void api_hub_groups_list(http_req_t *req, void *ud);
void api_hub_groups_create(http_req_t *req, void *ud);
void api_hub_group_get(http_req_t *req, void *ud);
void api_hub_group_create(http_req_t *req, void *ud);
void api_hub_group_delete(http_req_t *req, void *ud);
void api_hub_group_users_add(http_req_t *req, void *ud);
void api_hub_group_users_remove(http_req_t *req, void *ud);
void api_hub_group_properties(http_req_t *req, void *ud);

/* ---- api_hub_servers.c: the hub layer's servers as JupyterHub shows them -- */

/* uid's servers as JupyterHub's "servers" object {name: server model},
 * those c may read (read:servers on each); stopped ones too when asked. */
json_t *api_hub_servers_json(api_t *a, const api_ctx_t *c, int64_t uid, const char *user,
                             int include_stopped);
/* 1 if uid has a server starting, running or stopping (ready: running). */
int  api_hub_user_active(api_t *a, int64_t uid, int ready);
/* The default server's URL when running and its pending action, or NULLs. */
void api_hub_default_server(api_t *a, int64_t uid, const char **url, const char **pending);
/* The newest last_activity of uid's servers (µs, 0 = none). */
int64_t api_hub_last_activity(api_t *a, int64_t uid);
int  api_hub_server_exists(api_t *a, const char *user, const char *server);
void api_hub_server_activity(api_t *a, const char *user, const char *server, int64_t ts_us);
/* Stop every server of uid, named ones removed once stopped (the user is
 * being deleted). */
void api_hub_user_stop_all(api_t *a, int64_t uid);
/* 1 if the hub knows a server of uid (any state). */
int  api_hub_user_has_servers(api_t *a, int64_t uid);
/* A server as an OAuth client: its id, owner, client id and redirect URI
 * as the hub gave them to the server (JUPYTERHUB_CLIENT_ID,
 * JUPYTERHUB_OAUTH_CALLBACK_URL; new strings).  0, or -ENOENT. */
int  api_hub_oauth_client(api_t *a, const char *user, const char *server, int64_t *server_id,
                          int64_t *owner_id, char **client_id, char **redirect_uri);
/* The client id of servers.id server_id (new string), NULL if none. */
char *api_hub_oauth_client_of(api_t *a, int64_t server_id);
void api_hub_server_get(http_req_t *req, void *ud);
void api_hub_server_start(http_req_t *req, void *ud);
void api_hub_server_stop(http_req_t *req, void *ud);
void api_hub_server_progress(http_req_t *req, void *ud);

/* ---- api_hub_oauth.c: the OAuth 2 provider (auth/oauth.h) -------------------- */

void api_hub_oauth_authorize(http_req_t *req, void *ud);
void api_hub_oauth_token(http_req_t *req, void *ud);

/* ---- api_events.c ----------------------------------------------------- */

void api_events_get(http_req_t *req, void *ud);
/* End every stream (api_free). */
void api_events_close_all(api_t *a);

/* ---- api_metrics.c ---------------------------------------------------- */

void api_metrics_get(http_req_t *req, void *ud);
void api_metrics_healthz(http_req_t *req, void *ud);
void api_metrics_info(http_req_t *req, void *ud);

/* ---- api_openapi.c ---------------------------------------------------- */

void api_openapi_get(http_req_t *req, void *ud);
/* The document: src/api/openapi.json as compiled in (API_INCBIN). */
extern const char api_openapi_json[], api_openapi_json_end[];

/* A file compiled into the binary with the assembler's .incbin (api_ui.c,
 * api_openapi.c): sym is its text and sym_end where it ends, followed by a
 * NUL byte so that sym is also a C string.  The path is relative to the
 * project root, where make runs the compiler; the Makefile lists the file
 * as a prerequisite of the object, since the compiler's dependency files
 * do not see it. */
#define API_INCBIN(sym, file)                                                     \
    __asm__(".section .rodata\n.balign 16\n.globl " #sym "\n" #sym ":\n"          \
            ".incbin \"" file "\"\n.globl " #sym "_end\n" #sym "_end:\n.byte 0\n" \
            ".previous\n");                                                        \
    extern const char sym[], sym##_end[]

/* ---- api_json.c ------------------------------------------------------- */

/* "2026-11-22T05:00:00Z" / "...:00.123456Z" into buf (>= 40 bytes). */
void    api_json_time_fmt(int64_t us, char *buf, size_t n);
/* The same as a JSON string, or null for 0 (unset). */
json_t *api_json_time(int64_t us);
json_t *api_json_str(const char *s);       /* string or null */
json_t *api_json_user(const store_user_t *u);
json_t *api_json_token(const store_token_t *t);
/* Run: triggered_by is the user's name (NULL = null); tasks NULL = no
 * "tasks" member (lists). */
json_t *api_json_run(const store_run_t *r, const char *triggered_by,
                     const store_task_runs_t *tasks);
json_t *api_json_task(const store_task_run_t *t);
/* An event as sent in SSE data: id, at, kind, flow, run, task, plus the
 * members of its details object. */
json_t *api_json_event(const store_event_t *e);
/* ["FILE:LINE:COL: msg", ...] plus "... and N more errors". */
json_t *api_json_errlist(const nb_errlist_t *l);
/* Parse "YYYY-MM-DD" or "YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]" with an
 * optional "Z" / "+HH:MM"; without an offset the reading is in tz (UTC
 * when tz is NULL).  *date_only (may be NULL) says whether only a date was
 * given.  0 or -EINVAL. */
int     api_json_parse_time(const char *s, const tz_t *tz, int64_t *us, int *date_only);

#endif
