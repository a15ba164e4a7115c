/*
 * client — the REST client side of the CLI; see client.h for the contract.
 *
 * Why libcurl easy, blocking.  A CLI command makes one to a few requests in
 * sequence and has nothing else to do meanwhile, so the simplest correct
 * client is the right one: one easy handle per process (it keeps the
 * connection alive between the requests of a command), no event loop.  The
 * one place that waits on two things at once is `flow run --wait`, which
 * must be subscribed to the event stream *before* it reads the run's state
 * (else the run could end in between and the end event never come); that
 * stream runs on its own easy handle inside a curl multi handle, which we
 * drive by hand (client_sse_*), while the ordinary requests keep using the
 * easy handle.
 *
 * Safety of the credential.  Redirects are not followed (a 3xx is reported
 * with its target), so the Authorization header only ever goes to the URL
 * the user configured; only http and https are allowed; the config file
 * holding a token must be private, as ssh insists for its keys; the header
 * strings are wiped before they are freed.
 *
 * Server text (error messages, `details`) is printed through table_clean,
 * which replaces control characters: a hostile or broken server must not
 * be able to drive the user's terminal.
 */
#include "cli/client.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "util/dlcurl.h"   /* libcurl, opened on first use (see there) */
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NBHUB_VERSION
#define NBHUB_VERSION "0.1.0"
#endif

#define CLIENT_CONNECT_TIMEOUT_MS 10000L
#define CLIENT_TIMEOUT_MS         300000L   /* a whole request: big output notebooks */
#define CLIENT_CONFIG_MAX         (64 * 1024)
#define CLIENT_ERRBODY_MAX        (64 * 1024)
#define CLIENT_SSE_EVENT_MAX      (1024 * 1024)   /* one event; a server past it is dropped */

const char client_exit_codes_help[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  the operation failed: a waited-for run ended failed or cancelled, or a local\n"
    "     output file could not be written\n"
    "  2  usage error (bad command line)\n"
    "  3  invalid input: a flow file or parameter the server refused (the problems are\n"
    "     printed as FILE:LINE:COL: message), an unreadable file, a bad config file,\n"
    "     a password refused\n"
    "  4  not found: no such flow, run, task or user\n"
    "  5  authentication: no token, token refused (HTTP 401), or not allowed (403)\n"
    "  6  conflict with the current state (409): name taken, run already finished,\n"
    "     flow still running\n"
    "  7  cannot reach the server, or the server failed (HTTP 5xx)\n";

struct client {
    client_config_t cfg;
    CURL           *easy;
    char            errbuf[CURL_ERROR_SIZE];
};

/* ================================================================ command line */

int client_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nbhub %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'nbhub %s --help'.\n", cmd);
    return CLIENT_EXIT_USAGE;
}

int client_opt_value(int argc, char **argv, int *i, const char *name, const char **val,
                     const char *cmd)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        client_usage_error(cmd, "option %s needs a value", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int client_opt_common(struct client_opts *o, int argc, char **argv, int *i, const char *cmd)
{
    int r;
    if (strcmp(argv[*i], "--json") == 0) {
        o->json = 1;
        return 1;
    }
    if ((r = client_opt_value(argc, argv, i, "--url", &o->url, cmd)) != 0) return r;
    return client_opt_value(argc, argv, i, "--token", &o->token, cmd);
}

int client_parse_id(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || s[0] == '+' || s[0] == ' ') return -1;
    *out = v;
    return 0;
}

static int client_is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

static void client_group_usage(FILE *f, const char *group, const char *group_help,
                               const struct client_sub *subs, size_t n)
{
    fprintf(f, "usage: nbhub %s <subcommand> [options]\n\n%s\nSubcommands:\n", group, group_help);
    for (size_t i = 0; i < n; i++) fprintf(f, "  %-10s %s\n", subs[i].name, subs[i].summary);
    fprintf(f, "\nRun 'nbhub %s <subcommand> --help' for its options.\n\n%s", group,
            client_exit_codes_help);
}

int client_dispatch(const char *group, const char *group_help, const struct client_sub *subs,
                    size_t n, int argc, char **argv)
{
    if (argc < 2) {
        cli_errorf("%s: missing subcommand", group);
        client_group_usage(stderr, group, group_help, subs, n);
        return CLIENT_EXIT_USAGE;
    }
    if (client_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        client_group_usage(stdout, group, group_help, subs, n);
        return CLIENT_EXIT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], subs[i].name) != 0) continue;
        /* --help anywhere wins, so the subcommands only parse real options. */
        for (int j = 2; j < argc; j++)
            if (client_is_help(argv[j])) {
                printf("%s\n%s", subs[i].usage, client_exit_codes_help);
                return CLIENT_EXIT_OK;
            }
        return subs[i].fn(argc - 1, argv + 1);
    }
    cli_errorf("%s: unknown subcommand '%s'", group, argv[1]);
    client_group_usage(stderr, group, group_help, subs, n);
    return CLIENT_EXIT_USAGE;
}

/* ================================================================ configuration */

char *client_config_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    /* The XDG spec says a relative value is invalid and must be ignored. */
    if (xdg && xdg[0] == '/') return xasprintf("%s/nbhub/config.yaml", xdg);
    const char *home = getenv("HOME");
    if (home && home[0]) return xasprintf("%s/.config/nbhub/config.yaml", home);
    return NULL;
}

static const char *client_env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* Read url/token from the config file into *url / *token where still NULL. */
static int client_config_file(const char *path, char **url, char **token, nb_err_t *err)
{
    /* open + fstat rather than stat + open: the mode we check is the mode
     * of the file we read.  Symlinks are followed (dotfile managers use
     * them); the target is what must be private. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        int e = errno;
        return err_set(err, -EIO, "cannot read the config file %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, -EINVAL, "config file %s is not a regular file", path);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return err_set(err, -EACCES,
                       "config file %s is accessible by group or others (mode %04o); it may hold "
                       "a token, so it must be private: chmod 600 %s",
                       path, (unsigned)(st.st_mode & 07777), path);
    }
    if (st.st_uid != geteuid()) {
        close(fd);
        return err_set(err, -EACCES, "config file %s is owned by uid %u, not by you", path,
                       (unsigned)st.st_uid);
    }
    buf_t b = BUF_INIT;
    for (;;) {
        buf_reserve(&b, 4096);
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            buf_free(&b);
            return err_set(err, -EIO, "cannot read the config file %s: %s", path, strerror(e));
        }
        if (r == 0) break;
        b.len += (size_t)r;
        if (b.len > CLIENT_CONFIG_MAX) {
            close(fd);
            buf_free(&b);
            return err_set(err, -EINVAL, "config file %s is larger than %d bytes", path,
                           CLIENT_CONFIG_MAX);
        }
    }
    close(fd);
    json_t *doc = NULL;
    nb_err_t yerr;
    int rc = yamljson_parse(b.data ? b.data : "", b.len, path, &doc, &yerr);
    buf_free(&b);
    if (rc < 0) return err_set(err, -EINVAL, "%s", yerr.msg);
    if (json_is_null(doc)) {
        json_decref(doc);
        return 0;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return err_set(err, -EINVAL, "%s: expected a mapping with url: and token:", path);
    }
    static const char *const keys[] = { "url", "token" };
    char **dst[] = { url, token };
    for (size_t k = 0; k < 2; k++) {
        json_t *v = json_object_get(doc, keys[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) {
            json_decref(doc);
            return err_set(err, -EINVAL, "%s: '%s' must be a string", path, keys[k]);
        }
        if (!*dst[k] && json_string_length(v) > 0) *dst[k] = xstrdup(json_string_value(v));
    }
    json_decref(doc);
    return 0;
}

/* Bytes that would end or split a header line (or a URL) have no place in
 * a token or a server address. */
static int client_has_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) return 1;
    return 0;
}

int client_config_load(const struct client_opts *o, client_config_t *cfg, nb_err_t *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (o->url) {
        cfg->url = xstrdup(o->url);
        cfg->url_from = "--url";
    } else if (client_env("NBHUB_URL")) {
        cfg->url = xstrdup(client_env("NBHUB_URL"));
        cfg->url_from = "NBHUB_URL";
    }
    if (o->token) {
        cfg->token = xstrdup(o->token);
        cfg->token_from = "--token";
    } else if (client_env("NBHUB_TOKEN")) {
        cfg->token = xstrdup(client_env("NBHUB_TOKEN"));
        cfg->token_from = "NBHUB_TOKEN";
    }
    if (!cfg->url || !cfg->token) {
        cfg->config_path = client_config_path();
        if (cfg->config_path) {
            int had_url = cfg->url != NULL, had_token = cfg->token != NULL;
            int rc = client_config_file(cfg->config_path, &cfg->url, &cfg->token, err);
            if (rc < 0) {
                client_config_clear(cfg);
                return rc;
            }
            if (!had_url && cfg->url) cfg->url_from = "the config file";
            if (!had_token && cfg->token) cfg->token_from = "the config file";
        }
    }
    if (!cfg->url) {
        cfg->url = xstrdup(CLIENT_DEFAULT_URL);
        cfg->url_from = "the default";
    }
    size_t n = strlen(cfg->url);
    while (n > 0 && cfg->url[n - 1] == '/') cfg->url[--n] = '\0';
    if ((strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0) ||
        client_has_ctl(cfg->url)) {
        err_set(err, -EINVAL, "the server URL from %s must start with http:// or https:// and "
                "contain no spaces", cfg->url_from);
        client_config_clear(cfg);
        return -EINVAL;
    }
    if (cfg->token && client_has_ctl(cfg->token)) {
        err_set(err, -EINVAL, "the token from %s contains spaces or control characters",
                cfg->token_from);
        client_config_clear(cfg);
        return -EINVAL;
    }
    return 0;
}

void client_config_clear(client_config_t *cfg)
{
    if (cfg->token) explicit_bzero(cfg->token, strlen(cfg->token));
    free(cfg->token);
    free(cfg->url);
    free(cfg->config_path);
    memset(cfg, 0, sizeof *cfg);
}

int client_config_save(const char *url, const char *token, char **path_out, nb_err_t *err)
{
    char *path = client_config_path();
    if (!path) return err_set(err, -ENOENT, "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep "
                              "the token");
    /* mkdir -p of the directory, each new level private. */
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                err_set(err, -e, "cannot create %s: %s", dir, strerror(e));
                free(dir);
                free(path);
                return -e;
            }
            *p = c;
            if (!c) break;
        }
    }
    /* JSON strings are YAML double-quoted scalars: no quoting rules of our own. */
    json_t *ju = json_string(url), *jt = json_string(token);
    char *su = json_dumps(ju, JSON_ENCODE_ANY), *st = json_dumps(jt, JSON_ENCODE_ANY);
    json_decref(ju);
    json_decref(jt);
    char *text = xasprintf("# written by nbhub login; holds a credential: keep it private (mode 0600)\n"
                           "url: %s\ntoken: %s\n", su, st);
    explicit_bzero(st, strlen(st));
    free(su);
    free(st);
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        err_set(err, rc, "cannot write %s: %s", tmp, strerror(-rc));
    } else {
        size_t n = strlen(text), off = 0;
        while (off < n) {
            ssize_t w = write(fd, text + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = -errno;
                break;
            }
            off += (size_t)w;
        }
        if (rc == 0 && fsync(fd) < 0) rc = -errno;
        if (close(fd) < 0 && rc == 0) rc = -errno;
        if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
        if (rc < 0) {
            err_set(err, rc, "cannot write %s: %s", path, strerror(-rc));
            unlink(tmp);
        }
    }
    explicit_bzero(text, strlen(text));
    free(text);
    free(tmp);
    free(dir);
    if (rc == 0 && path_out) *path_out = path;
    else free(path);
    return rc;
}

/* ================================================================ requests */

void client_resp_free(client_resp_t *r)
{
    buf_free(&r->body);
    free(r->content_type);
    free(r->location);
    r->content_type = NULL;
    r->location = NULL;
    r->status = 0;
}

int client_open(const struct client_opts *o, client_t **out)
{
    client_t *c = xcalloc(1, sizeof *c);
    nb_err_t err;
    if (client_config_load(o, &c->cfg, &err) < 0) {
        cli_errorf("%s", err.msg);
        free(c);
        return CLIENT_EXIT_INVALID;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c->easy = curl_easy_init();
    NB_ASSERT(c->easy);
    *out = c;
    return CLIENT_EXIT_OK;
}

void client_close(client_t *c)
{
    if (!c) return;
    curl_easy_cleanup(c->easy);
    client_config_clear(&c->cfg);
    free(c);
    curl_global_cleanup();
}

const char *client_url(const client_t *c)
{
    return c->cfg.url;
}

int client_open_url(const char *url, client_t **out)
{
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || client_has_ctl(url)) {
        cli_errorf("the server URL must start with http:// or https:// and contain no spaces");
        return CLIENT_EXIT_USAGE;
    }
    client_t *c = xcalloc(1, sizeof *c);
    c->cfg.url = xstrdup(url);
    size_t n = strlen(c->cfg.url);
    while (n > 0 && c->cfg.url[n - 1] == '/') c->cfg.url[--n] = '\0';
    c->cfg.url_from = "--server";
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c->easy = curl_easy_init();
    NB_ASSERT(c->easy);
    *out = c;
    return CLIENT_EXIT_OK;
}

/* Wipe the header strings (one holds the token), then free the list. */
static void client_headers_free(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p; p = p->next) explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(h);
}

static struct curl_slist *client_headers(const client_t *c, const char *accept, const char *ctype,
                                         const char *last_id)
{
    struct curl_slist *h = NULL;
    if (c->cfg.token) {
        char *auth = xasprintf("Authorization: Bearer %s", c->cfg.token);
        h = curl_slist_append(h, auth);
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    char *a = xasprintf("Accept: %s", accept);
    h = curl_slist_append(h, a);
    free(a);
    if (ctype) {
        char *ct = xasprintf("Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
        free(ct);
    }
    if (last_id) {
        char *li = xasprintf("Last-Event-ID: %s", last_id);
        h = curl_slist_append(h, li);
        free(li);
    }
    /* No "Expect: 100-continue" round trip before a big flow file. */
    h = curl_slist_append(h, "Expect:");
    NB_ASSERT(h);
    return h;
}

/* Options every handle gets: where, how long, what is allowed. */
static void client_setup(CURL *e, const char *url, char *errbuf)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CLIENT_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "nbhub/" NBHUB_VERSION);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* A server with a certificate of a private CA (or self-signed: nbhub
     * serve's own tls listeners) is trusted through this file; the
     * system's store otherwise.  Verification is never turned off. */
    const char *ca = client_env("NBHUB_CA_BUNDLE");
    if (ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
}

static size_t client_write_cb(char *p, size_t size, size_t n, void *ud)
{
    buf_append(ud, p, size * n);
    return size * n;
}

/* A transport failure as errno + message ("Connection refused" ...). */
static int client_curl_err(CURLcode cc, const char *errbuf, nb_err_t *err)
{
    int code;
    switch (cc) {
    case CURLE_COULDNT_CONNECT:        code = -ECONNREFUSED; break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:  code = -EHOSTUNREACH; break;
    case CURLE_OPERATION_TIMEDOUT:     code = -ETIMEDOUT; break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:   code = -EINVAL; break;
    default:                           code = -EIO; break;
    }
    return err_set(err, code, "%s", errbuf && errbuf[0] ? errbuf : curl_easy_strerror(cc));
}

/* Run the request set up on c->easy (headers h, freed here) into r: its
 * status, content type, Location and body ("" when empty). */
static int client_perform(client_t *c, struct curl_slist *h, client_resp_t *r, nb_err_t *err)
{
    CURL *e = c->easy;
    client_resp_free(r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, client_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
    CURLcode cc = curl_easy_perform(e);
    client_headers_free(h);
    if (cc != CURLE_OK) {
        buf_free(&r->body);
        return client_curl_err(cc, c->errbuf, err);
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    r->content_type = ct ? xstrdup(ct) : NULL;
    char *loc = NULL;
    curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc);
    r->location = loc ? xstrdup(loc) : NULL;
    if (!r->body.data) buf_puts(&r->body, "");
    return 0;
}

int client_request(client_t *c, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, client_resp_t *r, nb_err_t *err)
{
    NB_ASSERT(path[0] == '/');
    CURL *e = c->easy;
    curl_easy_reset(e);   /* options go, the live connection stays */
    char *url = xasprintf("%s%s", c->cfg.url, path);
    client_setup(e, url, c->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, CLIENT_TIMEOUT_MS);
    struct curl_slist *h = client_headers(c, "application/json, */*;q=0.5", body ? ctype : NULL,
                                          NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "POST") == 0) {
            /* POST with no body still needs a Content-Length: 0. */
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        }
    }
    int rc = client_perform(c, h, r, err);
    free(url);
    return rc;
}

int client_fetch(client_t *c, const char *method, const char *url, const char *bearer,
                 const char *ctype, const void *body, size_t len, client_resp_t *r, nb_err_t *err)
{
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || client_has_ctl(url))
        return err_set(err, -EINVAL, "not an http(s) URL without spaces");
    /* The configured token stays out: the headers are built with c's token
     * swapped for the explicit credential. */
    char *saved = c->cfg.token;
    c->cfg.token = (char *)bearer;
    CURL *e = c->easy;
    curl_easy_reset(e);
    client_setup(e, url, c->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    struct curl_slist *h = client_headers(c, "application/json, */*;q=0.5", body ? ctype : NULL, NULL);
    c->cfg.token = saved;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
    }
    return client_perform(c, h, r, err);
}

int client_status_exit(long status)
{
    if (status >= 200 && status < 300) return CLIENT_EXIT_OK;
    switch (status) {
    case 401: case 403: return CLIENT_EXIT_AUTH;
    case 404:           return CLIENT_EXIT_NOT_FOUND;
    case 409:           return CLIENT_EXIT_CONFLICT;
    case 405:           return CLIENT_EXIT_UNREACHABLE;   /* a server that does not know the route */
    default: break;
    }
    if (status >= 400 && status < 500) return CLIENT_EXIT_INVALID;
    return CLIENT_EXIT_UNREACHABLE;
}

/* Print one line of server text on stderr, control characters replaced. */
static void client_print_server_line(const char *prefix, const char *s)
{
    char *clean = table_clean(s, 0);
    fprintf(stderr, "%s%s\n", prefix, clean);
    free(clean);
}

int client_report(const client_t *c, const client_resp_t *r)
{
    int rc = client_status_exit(r->status);
    json_t *doc = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
    json_t *e = json_object_get(doc, "error");
    const char *msg = client_str(e, "message");
    if (msg) {
        client_print_server_line("nbhub: ", msg);
    } else if (r->status >= 300 && r->status < 400) {
        char *to = table_clean(r->location ? r->location : "?", 0);
        cli_errorf("the server at %s redirects (HTTP %ld) to %s; not followed, so the token "
                   "goes nowhere else: check the URL", c->cfg.url, r->status, to);
        free(to);
    } else {
        cli_errorf("the server answered HTTP %ld", r->status);
    }
    /* Flow problems come as "FILE:LINE:COL: msg": printed bare, one per
     * line, like a compiler's, so editors can jump to them. */
    json_t *details = json_object_get(e, "details");
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d)
        if (json_is_string(d)) client_print_server_line("", json_string_value(d));
    if (r->status == 401) {
        if (!c->cfg.token)
            cli_errorf("no API token: pass --token, set NBHUB_TOKEN or put token: in %s "
                       "(`nbhub user token NAME` makes one)",
                       c->cfg.config_path ? c->cfg.config_path : "the config file");
        else
            cli_errorf("the token from %s was refused (expired, revoked, or for another server?)",
                       c->cfg.token_from);
    }
    json_decref(doc);
    return rc;
}

int client_report_unreachable(const client_t *c, const nb_err_t *err)
{
    cli_errorf("cannot reach the server at %s (from %s): %s", c->cfg.url, c->cfg.url_from,
               err->msg);
    return CLIENT_EXIT_UNREACHABLE;
}

int client_call_raw(client_t *c, const char *method, const char *path, const char *ctype,
                    const void *body, size_t len, client_resp_t *r)
{
    nb_err_t err;
    if (client_request(c, method, path, ctype, body, len, r, &err) < 0)
        return client_report_unreachable(c, &err);
    if (r->status < 200 || r->status >= 300) {
        int rc = client_report(c, r);
        client_resp_free(r);
        return rc;
    }
    return CLIENT_EXIT_OK;
}

int client_call(client_t *c, const char *method, const char *path, const json_t *body,
                json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    client_resp_t r = CLIENT_RESP_INIT;
    int rc = client_call_raw(c, method, path, "application/json", text, text ? strlen(text) : 0,
                             &r);
    free(text);
    if (out) *out = NULL;
    if (rc != CLIENT_EXIT_OK) return rc;
    if (out && r.body.len) {
        json_error_t je;
        *out = json_loadb(r.body.data, r.body.len, 0, &je);
        if (!*out) {
            cli_errorf("the server's answer to %s %s is not JSON: %s", method, path, je.text);
            rc = CLIENT_EXIT_UNREACHABLE;
        }
    }
    client_resp_free(&r);
    return rc;
}

char *client_esc(const char *s)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    urlesc_append(&b, s);
    return buf_detach(&b);
}

void client_query_add(buf_t *path, const char *key, const char *value)
{
    char *v = client_esc(value);
    buf_printf(path, "%c%s=%s", strchr(path->data ? path->data : "", '?') ? '&' : '?', key, v);
    free(v);
}

/* ================================================================ events */

struct client_sse {
    CURLM              *multi;
    CURL               *easy;
    struct curl_slist  *headers;
    char               *url;
    char                errbuf[CURL_ERROR_SIZE];
    long                status;
    int                 headers_done;
    int                 done;          /* the transfer ended */
    CURLcode            result;
    /* SSE parsing state (the WHATWG event-stream rules) */
    buf_t               line;
    int                 skip_lf;       /* the last byte was CR: a following LF is the same break */
    buf_t               data;
    int                 has_data;
    char               *event;
    char               *last_id;      /* persists across events, as the spec says */
    /* parsed events not handed out yet */
    client_event_t     *q;
    size_t              qhead, qlen, qcap;
    buf_t               errbody;       /* the body of a non-200 answer */
};

void client_event_clear(client_event_t *ev)
{
    free(ev->id);
    free(ev->event);
    free(ev->data);
    memset(ev, 0, sizeof *ev);
}

static void client_sse_dispatch(client_sse_t *s)
{
    if (s->has_data) {
        if (s->qhead + s->qlen == s->qcap) {
            if (s->qhead) {
                memmove(s->q, s->q + s->qhead, s->qlen * sizeof *s->q);
                s->qhead = 0;
            } else {
                s->qcap = s->qcap ? 2 * s->qcap : 8;
                s->q = xrealloc(s->q, s->qcap * sizeof *s->q);
            }
        }
        if (s->data.len && s->data.data[s->data.len - 1] == '\n') s->data.data[--s->data.len] = 0;
        client_event_t *ev = &s->q[s->qhead + s->qlen++];
        ev->id = s->last_id ? xstrdup(s->last_id) : NULL;
        ev->event = s->event;
        ev->data = xstrdup(s->data.data ? s->data.data : "");
        s->event = NULL;
    }
    free(s->event);
    s->event = NULL;
    buf_reset(&s->data);
    s->has_data = 0;
}

static void client_sse_line(client_sse_t *s, const char *line, size_t n)
{
    if (n == 0) {
        client_sse_dispatch(s);
        return;
    }
    if (line[0] == ':') return;   /* comment: keep-alive */
    const char *colon = memchr(line, ':', n);
    size_t flen = colon ? (size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    size_t vlen = (size_t)(line + n - v);
    if (vlen && *v == ' ') { v++; vlen--; }
    if (flen == 4 && memcmp(line, "data", 4) == 0) {
        buf_append(&s->data, v, vlen);
        buf_putc(&s->data, '\n');
        s->has_data = 1;
    } else if (flen == 5 && memcmp(line, "event", 5) == 0) {
        free(s->event);
        s->event = xstrndup(v, vlen);
    } else if (flen == 2 && memcmp(line, "id", 2) == 0 && !memchr(v, '\0', vlen)) {
        free(s->last_id);
        s->last_id = xstrndup(v, vlen);
    }
    /* "retry" and unknown fields: ignored. */
}

static size_t client_sse_write_cb(char *p, size_t size, size_t n, void *ud)
{
    client_sse_t *s = ud;
    size_t len = size * n;
    if (s->status != 200) {
        if (s->errbody.len + len <= CLIENT_ERRBODY_MAX) buf_append(&s->errbody, p, len);
        return len;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch == '\n' && s->skip_lf) {
            s->skip_lf = 0;
            continue;
        }
        s->skip_lf = ch == '\r';
        if (ch == '\r' || ch == '\n') {
            client_sse_line(s, s->line.data ? s->line.data : "", s->line.len);
            buf_reset(&s->line);
        } else {
            buf_putc(&s->line, ch);
        }
        /* An event without end must not eat our memory: abort the transfer. */
        if (s->line.len + s->data.len > CLIENT_SSE_EVENT_MAX) return 0;
    }
    return len;
}

static size_t client_sse_header_cb(char *p, size_t size, size_t n, void *ud)
{
    client_sse_t *s = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A status line: remember it; interim 1xx answers are followed by the real one. */
        long st = 0;
        const char *sp = memchr(p, ' ', len);
        if (sp) st = strtol(sp + 1, NULL, 10);
        s->status = st;
    } else if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
        if (s->status >= 200) s->headers_done = 1;
    }
    return len;
}

/* Let curl move data, waiting at most timeout_ms for something to happen. */
static void client_sse_pump(client_sse_t *s, int timeout_ms)
{
    int running = 0;
    curl_multi_perform(s->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            s->done = 1;
            s->result = m->data.result;
        }
    if (s->done || s->qlen || timeout_ms <= 0) return;
    curl_multi_poll(s->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            s->done = 1;
            s->result = m->data.result;
        }
}

int client_sse_open(client_t *c, const char *path, const char *last_id, client_sse_t **out,
                    client_resp_t *r, nb_err_t *err)
{
    *out = NULL;
    client_sse_t *s = xcalloc(1, sizeof *s);
    s->multi = curl_multi_init();
    s->easy = curl_easy_init();
    NB_ASSERT(s->multi && s->easy);
    s->url = xasprintf("%s%s", c->cfg.url, path);
    client_setup(s->easy, s->url, s->errbuf);
    s->headers = client_headers(c, "text/event-stream", NULL, last_id);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, client_sse_write_cb);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, client_sse_header_cb);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
    curl_multi_add_handle(s->multi, s->easy);

    /* Wait for the headers (the subscription is live), or the end. */
    uint64_t deadline = time_mono_ms() + CLIENT_CONNECT_TIMEOUT_MS + 20000;
    while (!s->headers_done && !s->done && time_mono_ms() < deadline) client_sse_pump(s, 200);
    if (s->headers_done && s->status != 200) {
        /* An error answer: collect its (small) body for client_report. */
        while (!s->done && time_mono_ms() < deadline) client_sse_pump(s, 200);
    }
    if (!s->headers_done) {
        int rc = s->done ? client_curl_err(s->result, s->errbuf, err)
                         : err_set(err, -ETIMEDOUT, "no answer to GET %s", path);
        client_sse_close(s);
        return rc;
    }
    if (s->status != 200) {
        client_resp_free(r);
        r->status = s->status;
        buf_append(&r->body, s->errbody.data ? s->errbody.data : "", s->errbody.len);
        client_sse_close(s);
        return 0;
    }
    *out = s;
    return 0;
}

int client_sse_next(client_sse_t *s, int timeout_ms, client_event_t *ev, nb_err_t *err)
{
    uint64_t deadline = time_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (s->qlen) {
            *ev = s->q[s->qhead++];
            s->qlen--;
            if (!s->qlen) s->qhead = 0;
            return 1;
        }
        if (s->done)
            return s->result == CURLE_OK ? err_set(err, -EPIPE, "the event stream ended")
                                         : client_curl_err(s->result, s->errbuf, err);
        uint64_t now = time_mono_ms();
        if (now >= deadline) return 0;
        client_sse_pump(s, (int)(deadline - now));
    }
}

void client_sse_close(client_sse_t *s)
{
    if (!s) return;
    curl_multi_remove_handle(s->multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_multi_cleanup(s->multi);
    client_headers_free(s->headers);
    for (size_t i = 0; i < s->qlen; i++) client_event_clear(&s->q[s->qhead + i]);
    free(s->q);
    free(s->url);
    free(s->event);
    free(s->last_id);
    buf_free(&s->line);
    buf_free(&s->data);
    buf_free(&s->errbody);
    free(s);
}

/* ================================================================ output */

int client_print_json(const json_t *v)
{
    /* NULL: a 2xx answer with an empty body, where JSON was expected. */
    char *s = v ? json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY) : xstrdup("null");
    NB_ASSERT(s);
    int bad = fputs(s, stdout) == EOF || fputc('\n', stdout) == EOF;
    free(s);
    if (bad) {
        cli_errorf("cannot write to stdout");
        return CLIENT_EXIT_FAILED;
    }
    return CLIENT_EXIT_OK;
}

int client_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_errorf("cannot write to stdout");
        return CLIENT_EXIT_FAILED;
    }
    return CLIENT_EXIT_OK;
}

const char *client_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int64_t client_int(const json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

void client_span(const json_t *o, const char *from, const char *to, int64_t now_us, char *out,
                 size_t n)
{
    int64_t a, b;
    if (table_parse_time(client_str(o, from), &a) < 0) {
        snprintf(out, n, "-");
        return;
    }
    if (table_parse_time(client_str(o, to), &b) < 0) b = now_us;
    table_duration(b - a, out, n);
}

int client_run_state_final(const char *state)
{
    return state && (strcmp(state, "success") == 0 || strcmp(state, "failed") == 0 ||
                     strcmp(state, "cancelled") == 0);
}

/* "Label:    value" with the value cleaned; NULL shows as "-". */
static void client_kv(buf_t *out, const char *label, const char *value)
{
    char *v = table_clean(value ? value : "-", 0);
    buf_printf(out, "%-15s%s\n", label, v);
    free(v);
}

void client_render_run(const json_t *run, buf_t *out)
{
    int64_t now = time_now_us();
    char t[96], span[32];
    char *id = xasprintf("%lld", (long long)client_int(run, "id", 0));
    client_kv(out, "Run:", id);
    free(id);
    client_kv(out, "Flow:", client_str(run, "flow"));
    client_kv(out, "Run ID:", client_str(run, "run_id"));
    client_kv(out, "State:", client_str(run, "state"));
    client_kv(out, "Kind:", client_str(run, "kind"));
    client_kv(out, "Triggered by:", client_str(run, "triggered_by"));
    table_time(client_str(run, "logical_date"), now, t, sizeof t);
    client_kv(out, "Logical date:", t);
    table_time(client_str(run, "created_at"), now, t, sizeof t);
    client_kv(out, "Created:", t);
    table_time(client_str(run, "started_at"), now, t, sizeof t);
    client_kv(out, "Started:", t);
    table_time(client_str(run, "ended_at"), now, t, sizeof t);
    client_kv(out, "Ended:", t);
    client_span(run, "started_at", "ended_at", now, span, sizeof span);
    client_kv(out, "Duration:", span);
    json_t *params = json_object_get(run, "params");
    if (params && !json_is_null(params)) {
        char *p = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        client_kv(out, "Params:", p);
        free(p);
    }
    if (json_object_get(run, "flow_version")) {
        char *v = xasprintf("%lld", (long long)client_int(run, "flow_version", 0));
        client_kv(out, "Flow version:", v);
        free(v);
    }

    json_t *tasks = json_object_get(run, "tasks");
    if (!json_is_array(tasks) || json_array_size(tasks) == 0) return;
    static const char *const hdr[] = { "TASK", "STATE", "TRY", "STARTED", "DURATION", "EXIT",
                                       "ERROR" };
    table_t *tb = table_new(7, hdr);
    table_set_align(tb, 5, TABLE_RIGHT);
    table_set_max_width(tb, 6, 50);
    size_t i;
    json_t *task;
    json_array_foreach(tasks, i, task) {
        table_add_row(tb);
        table_add_cell(tb, client_str(task, "name"));
        table_add_cell(tb, client_str(task, "state"));
        table_add_cellf(tb, "%lld/%lld", (long long)client_int(task, "try_number", 0),
                        (long long)client_int(task, "max_tries", 0));
        table_time(client_str(task, "started_at"), now, t, sizeof t);
        table_add_cell(tb, t);
        client_span(task, "started_at", "ended_at", now, span, sizeof span);
        table_add_cell(tb, span);
        json_t *ec = json_object_get(task, "exit_code");
        if (json_is_integer(ec)) table_add_cellf(tb, "%lld", (long long)json_integer_value(ec));
        else table_add_cell(tb, NULL);
        table_add_cell(tb, client_str(task, "error"));
    }
    buf_putc(out, '\n');
    table_render(tb, out);
    table_free(tb);
}

void client_render_runs(const json_t *runs, buf_t *out)
{
    static const char *const hdr[] = { "ID", "FLOW", "RUN ID", "KIND", "STATE", "STARTED",
                                       "DURATION" };
    int64_t now = time_now_us();
    char t[96], span[32];
    table_t *tb = table_new(7, hdr);
    table_set_align(tb, 0, TABLE_RIGHT);
    table_set_max_width(tb, 2, 44);
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) {
        table_add_row(tb);
        table_add_cellf(tb, "%lld", (long long)client_int(run, "id", 0));
        table_add_cell(tb, client_str(run, "flow"));
        table_add_cell(tb, client_str(run, "run_id"));
        table_add_cell(tb, client_str(run, "kind"));
        table_add_cell(tb, client_str(run, "state"));
        table_time(client_str(run, "started_at"), now, t, sizeof t);
        table_add_cell(tb, t);
        client_span(run, "started_at", "ended_at", now, span, sizeof span);
        table_add_cell(tb, span);
    }
    table_render(tb, out);
    table_free(tb);
}
