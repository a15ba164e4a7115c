/*
 * cmd_login — `nbhub login --server URL`: the same identity as the browser's
 * single sign-on, from a terminal (docs/sso.md "The command line").
 *
 * Steps, each a request and nothing kept in between but memory:
 *   1. GET URL/auth/oidc/config (public): the provider's issuer, the public
 *      client the CLI is to use (cli_client_id), the scopes to ask for
 *      (cli_scopes, default openid) and the provider's device and token
 *      endpoints, as nbhub discovered them.  When nbhub does not
 *      name them, the CLI reads the issuer's own discovery document, and
 *      checks its `issuer` is the one nbhub named.
 *   2. The device authorization grant (RFC 8628): POST the device endpoint,
 *      print where to go and the code to compare, then poll the token
 *      endpoint every `interval` seconds: authorization_pending waits,
 *      slow_down adds 5 s to the interval for the rest of the login,
 *      access_denied and expired_token end it, a provider that fails (5xx,
 *      no answer) is asked again at twice the interval; the code's
 *      expires_in bounds the whole wait.  Why the device grant and not a
 *      browser redirect to a local port: it works over ssh on a machine
 *      without a browser, and the CLI needs no client secret (a public
 *      client cannot keep one).
 *   3. The provider's access token goes to nbhub once, as "Authorization:
 *      Bearer" (auth.oidc.accept_access_tokens): GET /api/v1/me gives the
 *      user's name (nbhub creates the user as a browser login would), and
 *      POST /api/v1/users/NAME/tokens makes an nbhub API token that carries
 *      the provider session the access token names (api_oidc.c).  A
 *      401 is retried a few times a second apart: nbhub answers 401 "retry"
 *      while it fetches a signing key it has not seen yet.
 *   4. That token and the server's URL are written to the config file the
 *      other commands read (client_config_save: 0600, renamed into place).
 *      The provider's tokens are dropped: nbhub's own token is what the CLI
 *      uses, revocable in nbhub (DELETE /api/v1/users/NAME/tokens/ID, the web UI)
 *      and expiring (--expires-in, 7 days unless told), and revoked by nbhub
 *      when the provider says that session ended (back-channel logout).  A
 *      provider session that merely times out sends nothing, and a user
 *      removed from a group there keeps the token: hence the short default.
 *
 * What is printed comes from servers (URLs, the user code, error
 * descriptions) and goes through table_clean: a hostile provider cannot
 * drive the terminal.  The access token is never printed; our copies of it
 * and of the new nbhub token are wiped before they are freed.
 */
#include "cli/cmd_login.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"
#include "sched/flow.h"   /* flow_duration_parse, as `nbhub user token` */
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOGIN_DEFAULT_EXPIRES_IN (7LL * 86400)    /* outlives the provider's say: keep it short */
#define LOGIN_DEFAULT_INTERVAL   5      /* RFC 8628 3.2: when the provider names none */
#define LOGIN_MAX_INTERVAL       60
#define LOGIN_MAX_WAIT           1800   /* s; a provider's expires_in is capped here */
#define LOGIN_BEARER_TRIES       5

static const char cmd_login_usage[] =
    "usage: nbhub login --server URL [--expires-in DURATION] [--name NAME] [--print-token]\n"
    "\n"
    "Log in to an nbhub server with its single sign-on provider, from a terminal:\n"
    "prints an address and a code to confirm in any browser (the device\n"
    "authorization grant, RFC 8628), then gets an nbhub API token for you and keeps\n"
    "it, with the server's URL, in the config file (~/.config/nbhub/config.yaml,\n"
    "mode 0600), where `nbhub runs`, `nbhub flow` ... find it.\n"
    "\n"
    "Options:\n"
    "  --server URL          the nbhub server (default: $NBHUB_URL)\n"
    "  --expires-in DURATION lifetime of the nbhub token: 30d, 12h, 1h30m or seconds\n"
    "                        (default 7d)\n"
    "  --name NAME           the token's name (default: \"nbhub login on HOSTNAME\")\n"
    "  --print-token         print the token on stdout instead of saving it\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit codes:\n"
    "  0  logged in\n"
    "  1  the config file could not be written\n"
    "  2  usage error\n"
    "  5  the login was denied, the code expired, or nbhub refused the provider's token\n"
    "  7  the server or the provider cannot be reached, or the server has no single\n"
    "     sign-on with a device login\n";

/* ---------------------------------------------------------------- answers */

enum login_poll login_poll_answer(long status, const json_t *body, const char **access_token,
                                  const char **error)
{
    *access_token = NULL;
    *error = NULL;
    if (status == 200) {
        const char *at = client_str(body, "access_token");
        if (at && at[0]) {
            *access_token = at;
            return LOGIN_POLL_DONE;
        }
        *error = "no access_token";
        return LOGIN_POLL_ERROR;
    }
    const char *e = client_str(body, "error");
    if (status >= 500 || !e) return LOGIN_POLL_RETRY;
    *error = e;
    if (strcmp(e, "authorization_pending") == 0) return LOGIN_POLL_PENDING;
    if (strcmp(e, "slow_down") == 0) return LOGIN_POLL_SLOW_DOWN;
    if (strcmp(e, "access_denied") == 0) return LOGIN_POLL_DENIED;
    if (strcmp(e, "expired_token") == 0) return LOGIN_POLL_EXPIRED;
    return LOGIN_POLL_ERROR;
}

/* ---------------------------------------------------------------- helpers */

/* Print "nbhub login: " + server text (cleaned) + suffix on stderr. */
static void login_say(const char *prefix, const char *server_text, const char *suffix)
{
    char *clean = table_clean(server_text ? server_text : "", 0);
    fprintf(stderr, "%s%s%s", prefix, clean, suffix);
    free(clean);
}

static int is_http_url(const char *s)
{
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

/* The answer's JSON (NULL when not JSON). */
static json_t *resp_json(const client_resp_t *r)
{
    return r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
}

/* A request that must get an answer: transport failures are reported here
 * (exit 7) with what was being done. */
static int login_fetch(client_t *c, const char *what, const char *method, const char *url,
                       const char *bearer, const char *ctype, const char *body, client_resp_t *r)
{
    nb_err_t err;
    err_clear(&err);
    if (client_fetch(c, method, url, bearer, ctype, body, body ? strlen(body) : 0, r, &err) < 0) {
        char *u = table_clean(url, 0);
        cli_errorf("%s: cannot reach %s: %s", what, u, err.msg);
        free(u);
        return CLIENT_EXIT_UNREACHABLE;
    }
    return CLIENT_EXIT_OK;
}

/* Append key=value to a form body (application/x-www-form-urlencoded). */
static void form_add(buf_t *b, const char *key, const char *value)
{
    if (b->len) buf_putc(b, '&');
    buf_puts(b, key);
    buf_putc(b, '=');
    urlesc_append(b, value);
}

static void sleep_s(int s)
{
    struct timespec ts = { s, 0 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* ---------------------------------------------------------------- steps */

struct login_provider {
    char *issuer, *client_id, *device_ep, *token_ep;
    char *scopes;   /* space-separated, what the device request asks for */
};

static void provider_clear(struct login_provider *p)
{
    free(p->issuer);
    free(p->client_id);
    free(p->device_ep);
    free(p->token_ep);
    free(p->scopes);
    memset(p, 0, sizeof *p);
}

/* Step 1: what nbhub says about its provider. */
static int login_discover(client_t *c, const char *server, struct login_provider *p)
{
    client_resp_t r = CLIENT_RESP_INIT;
    char *url = xasprintf("%s/auth/oidc/config", server);
    int rc = login_fetch(c, "reading the server's single sign-on settings", "GET", url, NULL, NULL,
                         NULL, &r);
    free(url);
    if (rc) return rc;
    long status = r.status;
    json_t *j = status == 200 ? resp_json(&r) : NULL;
    client_resp_free(&r);
    if (!j) {
        cli_errorf("the server at %s does not offer single sign-on (GET /auth/oidc/config: HTTP %ld)",
                   server, status);
        return CLIENT_EXIT_UNREACHABLE;
    }
    rc = CLIENT_EXIT_UNREACHABLE;
    json_t *en = json_object_get(j, "enabled");
    const char *iss = client_str(j, "issuer"), *cid = client_str(j, "cli_client_id");
    if (en && !json_is_true(en)) {
        cli_errorf("the server at %s has no single sign-on configured (auth.oidc)", server);
    } else if (!is_http_url(iss)) {
        cli_errorf("the server at %s names no identity provider (issuer)", server);
    } else if (!cid || !cid[0]) {
        cli_errorf("the server at %s names no client for the command line (auth.oidc.cli_client_id)",
                   server);
    } else {
        p->issuer = xstrdup(iss);
        p->client_id = xstrdup(cid);
        /* cli_scopes: what the CLI's access token must be asked with, when the
         * provider needs more than openid to address it to nbhub (Entra ID:
         * api://<app>/<scope>); a string or a list. */
        json_t *sc = json_object_get(j, "cli_scopes");
        buf_t sb = BUF_INIT;
        if (json_is_string(sc)) {
            buf_puts(&sb, json_string_value(sc));
        } else if (json_is_array(sc)) {
            size_t k;
            json_t *v;
            json_array_foreach(sc, k, v)
                if (json_is_string(v)) {
                    if (sb.len) buf_putc(&sb, ' ');
                    buf_puts(&sb, json_string_value(v));
                }
        }
        p->scopes = sb.len ? buf_detach(&sb) : xstrdup("openid");
        buf_free(&sb);
        const char *dev = client_str(j, "device_authorization_endpoint");
        const char *tok = client_str(j, "token_endpoint");
        if (is_http_url(dev) && is_http_url(tok)) {
            p->device_ep = xstrdup(dev);
            p->token_ep = xstrdup(tok);
        }
        rc = CLIENT_EXIT_OK;
    }
    json_decref(j);
    if (rc || p->device_ep) return rc;

    /* nbhub did not pass the endpoints on: the issuer's own document. */
    url = xasprintf("%s/.well-known/openid-configuration", p->issuer);
    rc = login_fetch(c, "reading the provider's discovery document", "GET", url, NULL, NULL, NULL, &r);
    free(url);
    if (rc) return rc;
    j = r.status == 200 ? resp_json(&r) : NULL;
    client_resp_free(&r);
    const char *diss = client_str(j, "issuer");
    const char *dev = client_str(j, "device_authorization_endpoint");
    const char *tok = client_str(j, "token_endpoint");
    rc = CLIENT_EXIT_UNREACHABLE;
    if (!diss || strcmp(diss, p->issuer) != 0) {
        login_say("nbhub: the provider's discovery document names another issuer than ", p->issuer, "\n");
    } else if (!is_http_url(dev) || !is_http_url(tok)) {
        login_say("nbhub: the provider ", p->issuer, " offers no device login (RFC 8628)\n");
    } else {
        p->device_ep = xstrdup(dev);
        p->token_ep = xstrdup(tok);
        rc = CLIENT_EXIT_OK;
    }
    json_decref(j);
    return rc;
}

/* Step 2: the device grant; *access_token (fresh, to wipe) on success. */
static int login_device(client_t *c, const struct login_provider *p, char **access_token)
{
    client_resp_t r = CLIENT_RESP_INIT;
    buf_t form = BUF_INIT;
    form_add(&form, "client_id", p->client_id);
    form_add(&form, "scope", p->scopes);
    int rc = login_fetch(c, "starting the device login", "POST", p->device_ep, NULL,
                         "application/x-www-form-urlencoded", form.data, &r);
    buf_free(&form);
    if (rc) return rc;
    json_t *dev = resp_json(&r);
    const char *dcode = client_str(dev, "device_code"), *ucode = client_str(dev, "user_code");
    const char *vuri = client_str(dev, "verification_uri");
    const char *vcomplete = client_str(dev, "verification_uri_complete");
    if (r.status != 200 || !dcode || !ucode || !is_http_url(vuri)) {
        const char *e = client_str(dev, "error_description");
        if (!e) e = client_str(dev, "error");
        fprintf(stderr, "nbhub: the provider refused to start a device login (HTTP %ld)", r.status);
        if (e) login_say(": ", e, "");
        fputc('\n', stderr);
        client_resp_free(&r);
        json_decref(dev);
        return CLIENT_EXIT_AUTH;
    }
    client_resp_free(&r);
    int64_t interval = client_int(dev, "interval", LOGIN_DEFAULT_INTERVAL);
    int64_t expires_in = client_int(dev, "expires_in", 600);
    if (interval < 1) interval = 1;
    if (interval > LOGIN_MAX_INTERVAL) interval = LOGIN_MAX_INTERVAL;
    if (expires_in < 1 || expires_in > LOGIN_MAX_WAIT) expires_in = LOGIN_MAX_WAIT;

    if (is_http_url(vcomplete)) {
        login_say("To log in, open this address in a browser:\n\n  ", vcomplete, "\n\n");
        login_say("and check that it shows the code ", ucode, ".\n");
    } else {
        login_say("To log in, open this address in a browser:\n\n  ", vuri, "\n\n");
        login_say("and enter the code ", ucode, ".\n");
    }
    fprintf(stderr, "Waiting for the confirmation (at most %lld min)...\n",
            (long long)((expires_in + 59) / 60));
    fflush(stderr);

    form = (buf_t)BUF_INIT;
    form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
    form_add(&form, "device_code", dcode);
    form_add(&form, "client_id", p->client_id);
    json_decref(dev);
    uint64_t deadline = time_mono_ms() + (uint64_t)expires_in * 1000;
    rc = -1;
    while (rc < 0) {
        sleep_s((int)interval);
        if (time_mono_ms() > deadline) {
            cli_errorf("the code was not confirmed in time; run nbhub login again");
            rc = CLIENT_EXIT_AUTH;
            break;
        }
        nb_err_t err;
        err_clear(&err);
        if (client_fetch(c, "POST", p->token_ep, NULL, "application/x-www-form-urlencoded", form.data,
                         form.len, &r, &err) < 0) {
            /* RFC 8628 3.5: a timeout (or any failure to connect) slows the polling down. */
            if (interval < LOGIN_MAX_INTERVAL) interval = interval * 2 > LOGIN_MAX_INTERVAL ? LOGIN_MAX_INTERVAL
                                                                                            : interval * 2;
            continue;
        }
        json_t *j = resp_json(&r);
        const char *at, *e;
        switch (login_poll_answer(r.status, j, &at, &e)) {
        case LOGIN_POLL_DONE:
            *access_token = xstrdup(at);
            rc = CLIENT_EXIT_OK;
            break;
        case LOGIN_POLL_PENDING:
            break;
        case LOGIN_POLL_SLOW_DOWN:
            interval += 5;
            break;
        case LOGIN_POLL_RETRY:
            interval = interval * 2 > LOGIN_MAX_INTERVAL ? LOGIN_MAX_INTERVAL : interval * 2;
            break;
        case LOGIN_POLL_DENIED:
            cli_errorf("the login was denied at the provider");
            rc = CLIENT_EXIT_AUTH;
            break;
        case LOGIN_POLL_EXPIRED:
            cli_errorf("the code expired before it was confirmed; run nbhub login again");
            rc = CLIENT_EXIT_AUTH;
            break;
        case LOGIN_POLL_ERROR: {
            const char *d = client_str(j, "error_description");
            login_say("nbhub: the provider refused the device login: ", e, d ? " (" : "\n");
            if (d) login_say("", d, ")\n");
            rc = CLIENT_EXIT_AUTH;
            break;
        }
        }
        /* The body held the access token: wipe it with the parsed copy gone. */
        if (j && at) {
            json_t *atj = json_object_get(j, "access_token");
            if (atj) json_string_set(atj, "");
        }
        json_decref(j);
        if (r.body.data) explicit_bzero(r.body.data, r.body.len);
        client_resp_free(&r);
    }
    buf_free(&form);
    return rc;
}

/* A call to nbhub with the provider's access token, retried on 401 (see
 * the top of the file); the final answer in *r. */
static int login_bearer(client_t *c, const char *method, const char *url, const char *at,
                        const char *body, client_resp_t *r)
{
    for (int i = 0;; i++) {
        int rc = login_fetch(c, "presenting the provider's token to the server", method, url, at,
                             body ? "application/json" : NULL, body, r);
        if (rc) return rc;
        if (r->status != 401 || i + 1 >= LOGIN_BEARER_TRIES) return CLIENT_EXIT_OK;
        sleep_s(1);
    }
}

/* Step 3: an nbhub token for the provider's access token; *token fresh. */
static int login_exchange(client_t *c, const char *server, const char *at, const char *name,
                          long long expires_in, char **user, char **token)
{
    client_resp_t r = CLIENT_RESP_INIT;
    char *url = xasprintf("%s/api/v1/me", server);
    int rc = login_bearer(c, "GET", url, at, NULL, &r);
    free(url);
    if (rc) return rc;
    if (r.status != 200) {
        if (r.status == 401)
            cli_errorf("the server at %s refused the provider's token (does it have "
                       "auth.oidc.accept_access_tokens: true and an audience this client's tokens carry?)",
                       server);
        rc = client_report(c, &r);
        client_resp_free(&r);
        return rc;
    }
    json_t *me = resp_json(&r);
    client_resp_free(&r);
    const char *uname = client_str(me, "name");
    if (!uname) {
        json_decref(me);
        cli_errorf("the server's /api/v1/me answer has no name");
        return CLIENT_EXIT_UNREACHABLE;
    }
    *user = xstrdup(uname);
    json_decref(me);

    char *esc = client_esc(*user);
    url = xasprintf("%s/api/v1/users/%s/tokens", server, esc);
    free(esc);
    json_t *req = json_pack("{s:s, s:I}", "name", name, "expires_in", (json_int_t)expires_in);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    rc = login_bearer(c, "POST", url, at, body, &r);
    free(url);
    free(body);
    if (rc) return rc;
    if (r.status != 201) {
        rc = client_report(c, &r);
        client_resp_free(&r);
        return rc;
    }
    json_t *j = resp_json(&r);
    explicit_bzero(r.body.data, r.body.len);
    client_resp_free(&r);
    const char *t = client_str(j, "token");
    if (!t || !t[0]) {
        json_decref(j);
        cli_errorf("the server's answer holds no token");
        return CLIENT_EXIT_UNREACHABLE;
    }
    *token = xstrdup(t);
    json_string_set(json_object_get(j, "token"), "");
    json_decref(j);
    return CLIENT_EXIT_OK;
}

/* ---------------------------------------------------------------- command */

int cmd_login(int argc, char **argv)
{
    const char *server = NULL, *name = NULL, *exp = NULL;
    int print_token = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(cmd_login_usage, stdout);
            return CLIENT_EXIT_OK;
        }
        if (strcmp(argv[i], "--print-token") == 0) {
            print_token = 1;
            continue;
        }
        if ((r = client_opt_value(argc, argv, &i, "--server", &server, "login")) ||
            (r = client_opt_value(argc, argv, &i, "--name", &name, "login")) ||
            (r = client_opt_value(argc, argv, &i, "--expires-in", &exp, "login"))) {
            if (r < 0) return CLIENT_EXIT_USAGE;
            continue;
        }
        return client_usage_error("login", "unexpected argument '%s'", argv[i]);
    }
    if (!server) server = getenv("NBHUB_URL");
    if (!server || !server[0]) return client_usage_error("login", "--server URL is required");
    long long expires_in = LOGIN_DEFAULT_EXPIRES_IN;
    if (exp) {
        int64_t ttl = 0;
        if (flow_duration_parse(exp, &ttl) < 0 || ttl < 1 || ttl > 10LL * 365 * 86400)
            return client_usage_error("login", "--expires-in takes a duration (30d, 12h, 1h30m or "
                                      "seconds), at most 10 years");
        expires_in = ttl;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0]) snprintf(host, sizeof host, "unknown host");
    char *tname = name ? xstrdup(name) : xasprintf("nbhub login on %s", host);

    client_t *c;
    int rc = client_open_url(server, &c);
    if (rc) {
        free(tname);
        return rc;
    }
    struct login_provider p = { 0 };
    char *at = NULL, *user = NULL, *token = NULL;
    rc = login_discover(c, client_url(c), &p);
    if (!rc) rc = login_device(c, &p, &at);
    if (!rc) rc = login_exchange(c, client_url(c), at, tname, expires_in, &user, &token);
    if (!rc && print_token) {
        printf("%s\n", token);
        rc = client_flush();
    } else if (!rc) {
        nb_err_t err;
        err_clear(&err);
        char *path = NULL;
        if (client_config_save(client_url(c), token, &path, &err) < 0) {
            cli_errorf("%s", err.msg);
            rc = CLIENT_EXIT_FAILED;
        } else {
            printf("Logged in to %s as %s; the token is kept in %s\n", client_url(c), user, path);
            if (getenv("NBHUB_TOKEN") && getenv("NBHUB_TOKEN")[0])
                fprintf(stderr, "nbhub: note: NBHUB_TOKEN is set and takes precedence over the config "
                                "file; unset it to use this login\n");
            rc = client_flush();
        }
        free(path);
    }
    if (at) explicit_bzero(at, strlen(at));
    if (token) explicit_bzero(token, strlen(token));
    free(at);
    free(token);
    free(user);
    free(tname);
    provider_clear(&p);
    client_close(c);
    return rc;
}
