/*
 * api_ui — the web UI: GET / (the page) and GET /ui/NAME (its source
 * files), compiled into the binary from web/ with the assembler's .incbin,
 * so `nbhub serve` needs no install step and no separate web server, and
 * the UI always matches the API it talks to.
 *
 * One request before the data.  The page is put together once, on its
 * first request, from web/index.html, whose empty elements
 *
 *     <style data-inline="app.css"></style>
 *     <script type="module" data-inline="dag.js pages.js app.js"></script>
 *
 * receive the stylesheet and the three modules linked into one script:
 * their texts in that order, the import statements between them dropped
 * and `export` taken off their declarations.  For modules that share one
 * scope that is all linking is; it relies on them not declaring one
 * top-level name twice (a SyntaxError, which the browser test shows at
 * once) and on their imports being of each other only (asserted here).
 * Why: in chromium on 127.0.0.1 (bench/bench_render.py) every request a
 * page makes before its first render costs ~25-40 ms between being asked
 * for and being sent, far more than its bytes, and the stylesheet and the
 * module graph were such a stage between the page and its first request
 * for data.  Now the data's requests are the only ones.  The files stay
 * ES modules: /ui/NAME serves each as written.
 *
 * The page's Content-Security-Policy allows scripts and styles from this
 * origin and, by their SHA-256, the two inlined texts: still no
 * 'unsafe-inline' and no eval; frames from this origin (the sandboxed
 * notebook view); no embedding of the UI by other sites.
 *
 * The files are public (they hold no data; everything the UI shows comes
 * from the authenticated API).  Each answer has a strong ETag (FNV-1a of
 * the content, computed once) and `Cache-Control: no-cache`, so a browser
 * revalidates with If-None-Match and gets 304 until the binary changes.
 * To a browser that accepts gzip they go compressed (once, at level 9),
 * under the weak form of the tag.
 *
 * The page is also the answer to each of the UI's paths (/flows, /runs/ID,
 * ...: api.c), and for / , /flows and /runs/ID with a session it comes with
 * the first view written in (api_ssr.c): then it holds the user's data and
 * is sent `no-store`, without an ETag.
 */
#include "api/api_int.h"
#include "http/gzip.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The page's policy; the %s are the inlined texts' hash sources. */
#define API_UI_CSP "default-src 'none'; script-src 'self'%s; style-src 'self'%s; img-src 'self' data:; " \
                   "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; " \
                   "frame-ancestors 'none'"

/* One symbol pair per file (API_INCBIN, api_int.h). */
API_INCBIN(nbhub_ui_index_html, "web/index.html");
API_INCBIN(nbhub_ui_app_js, "web/app.js");
API_INCBIN(nbhub_ui_pages_js, "web/pages.js");
API_INCBIN(nbhub_ui_dag_js, "web/dag.js");
API_INCBIN(nbhub_ui_app_css, "web/app.css");

struct api_ui_file {
    const char *name;
    const char *type;
    const char *data, *end;
    char        etag[24];
    char       *gz;         /* gzip'ed once at level 9, on first demand */
    size_t      gzlen;
    int         gz_tried;
};

/* [0] is the page, made by api_ui_page; the others are served as /ui/NAME. */
static struct api_ui_file api_ui_files[] = {
    { "index.html", "text/html; charset=utf-8", NULL, NULL, "", NULL, 0, 0 },
    { "app.js", "text/javascript; charset=utf-8", nbhub_ui_app_js, nbhub_ui_app_js_end, "", NULL, 0, 0 },
    { "pages.js", "text/javascript; charset=utf-8", nbhub_ui_pages_js, nbhub_ui_pages_js_end, "", NULL, 0, 0 },
    { "dag.js", "text/javascript; charset=utf-8", nbhub_ui_dag_js, nbhub_ui_dag_js_end, "", NULL, 0, 0 },
    { "app.css", "text/css; charset=utf-8", nbhub_ui_app_css, nbhub_ui_app_css_end, "", NULL, 0, 0 },
};

#define API_UI_NFILES (sizeof api_ui_files / sizeof api_ui_files[0])

static char *api_ui_csp;   /* the page's policy, made with the page */

static struct api_ui_file *api_ui_find(const char *name, size_t n)
{
    for (size_t i = 1; i < API_UI_NFILES; i++)
        if (strlen(api_ui_files[i].name) == n && memcmp(api_ui_files[i].name, name, n) == 0)
            return &api_ui_files[i];
    return NULL;
}

static int api_ui_starts(const char *p, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(end - p) >= n && memcmp(p, prefix, n) == 0;
}

/* The next name of the space-separated list [*p, end), or NULL at its end;
 * *n is its length, and *p moves past it. */
static const char *api_ui_next_name(const char **p, const char *end, size_t *n)
{
    if (*p >= end) return NULL;
    const char *name = *p, *sp = memchr(name, ' ', (size_t)(end - name));
    const char *e = sp ? sp : end;
    *n = (size_t)(e - name);
    *p = e + 1;
    return name;
}

/* Is NAME (n bytes) one of the space-separated names in [list, end)? */
static int api_ui_listed(const char *list, const char *end, const char *name, size_t n)
{
    size_t k;
    for (const char *e; (e = api_ui_next_name(&list, end, &k));)
        if (k == n && memcmp(e, name, n) == 0) return 1;
    return 0;
}

/* Module f's text appended to b as a part of the one linked script: each
 * import statement (a line that begins with `import `, up to its `;`)
 * dropped, after checking that it imports one of the files in [list,
 * lend); `export ` taken off the declarations that begin a line. */
static void api_ui_link(buf_t *b, const struct api_ui_file *f, const char *list, const char *lend)
{
    const char *p = f->data, *end = f->end;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl + 1 : end;
        if (api_ui_starts(p, eol, "import ")) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            NB_ASSERT(semi);
            const char *from = memmem(p, (size_t)(semi - p), " from \"./", 9);
            NB_ASSERT(from);
            const char *name = from + 9, *q = memchr(name, '"', (size_t)(semi - name));
            NB_ASSERT(q && api_ui_listed(list, lend, name, (size_t)(q - name)));
            const char *after = memchr(semi, '\n', (size_t)(end - semi));
            p = after ? after + 1 : end;
            continue;
        }
        if (api_ui_starts(p, eol, "export ")) {
            NB_ASSERT(!api_ui_starts(p, eol, "export {") && !api_ui_starts(p, eol, "export *") &&
                      !api_ui_starts(p, eol, "export default"));
            p += 7;
        }
        buf_append(b, p, (size_t)(eol - p));
        p = eol;
    }
    if (b->len && b->data[b->len - 1] != '\n') buf_putc(b, '\n');
}

/* " 'sha256-BASE64'" of [p, end) appended to b: a CSP hash source. */
static void api_ui_hash(buf_t *b, const char *p, const char *end)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = EVP_Digest(p, (size_t)(end - p), md, &n, EVP_sha256(), NULL);
    NB_ASSERT(ok == 1);
    buf_puts(b, " 'sha256-");
    base64_append(b, md, n);
    buf_putc(b, '\'');
}

/* Put the page and its policy together (once; they live until exit).  The
 * template and the files come with the binary, so anything malformed is a
 * bug of the build: asserted, not reported. */
static void api_ui_page(void)
{
    static const char mark[] = " data-inline=\"";
    const char *p = nbhub_ui_index_html, *end = nbhub_ui_index_html_end;
    buf_t page = BUF_INIT, scripts = BUF_INIT, styles = BUF_INIT, text = BUF_INIT;
    for (const char *m; (m = memmem(p, (size_t)(end - p), mark, sizeof mark - 1));) {
        const char *tag = m;
        while (tag > p && *tag != '<') tag--;
        const char *list = m + sizeof mark - 1;
        const char *lend = memchr(list, '"', (size_t)(end - list));
        NB_ASSERT(*tag == '<' && lend);
        const char *gt = memchr(lend, '>', (size_t)(end - lend));
        NB_ASSERT(gt && api_ui_starts(gt + 1, end, "</"));   /* an empty element */
        int js = api_ui_starts(tag, m, "<script");
        NB_ASSERT(js ? memmem(tag, (size_t)(gt - tag), " type=\"module\"", 14) != NULL
                     : api_ui_starts(tag, m, "<style"));
        buf_reset(&text);
        size_t k;
        for (const char *q = list, *n; (n = api_ui_next_name(&q, lend, &k));) {
            const struct api_ui_file *f = api_ui_find(n, k);
            NB_ASSERT(f);
            if (js) api_ui_link(&text, f, list, lend);
            else buf_append(&text, f->data, (size_t)(f->end - f->data));
        }
        /* The text must not end its element early. */
        NB_ASSERT(text.len && !memmem(text.data, text.len, "</", 2));
        buf_append(&page, p, (size_t)(gt + 1 - p));
        buf_append(&page, text.data, text.len);
        api_ui_hash(js ? &scripts : &styles, text.data, text.data + text.len);
        p = gt + 1;
    }
    buf_append(&page, p, (size_t)(end - p));
    buf_putc(&scripts, '\0');
    buf_putc(&styles, '\0');
    api_ui_csp = xasprintf(API_UI_CSP, scripts.data, styles.data);
    buf_free(&scripts);
    buf_free(&styles);
    buf_free(&text);
    api_ui_files[0].end = page.data + page.len;
    api_ui_files[0].data = buf_detach(&page);
}

static void api_ui_send(http_req_t *req, struct api_ui_file *f)
{
    if (!f->etag[0]) {
        uint64_t hsh = 1469598103934665603ULL;
        for (const char *p = f->data; p < f->end; p++) hsh = (hsh ^ (unsigned char)*p) * 1099511628211ULL;
        snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)hsh);
    }
    /* The server would compress each answer at its fast level; these
     * never change, so they are compressed once, smaller.  The gzip'ed
     * bytes get the weak form of the tag (as http/server.c does). */
    int gz = gzip_accepted(http_header(req, "Accept-Encoding"));
    if (gz && !f->gz_tried) {
        f->gz_tried = 1;
        if (gzip_encode(f->data, (size_t)(f->end - f->data), 9, &f->gz, &f->gzlen) < 0) f->gz = NULL;
    }
    gz = gz && f->gz;
    char weak[sizeof f->etag + 2];
    snprintf(weak, sizeof weak, "W/%s", f->etag);
    http_set_header(req, "ETag", gz ? weak : f->etag);
    http_set_header(req, "Vary", "Accept-Encoding");
    http_set_header(req, "Cache-Control", "no-cache");
    if (f == &api_ui_files[0]) http_set_header(req, "Content-Security-Policy", api_ui_csp);
    /* weak comparison, as If-None-Match asks for */
    const char *inm = http_header(req, "If-None-Match");
    if (inm && strcmp(inm + (strncmp(inm, "W/", 2) == 0 ? 2 : 0), f->etag) == 0) {
        http_respond(req, 304, NULL, "", 0);
        return;
    }
    if (gz) {
        http_set_header(req, "Content-Encoding", "gzip");
        http_respond(req, 200, f->type, f->gz, f->gzlen);
        return;
    }
    http_respond(req, 200, f->type, f->data, (size_t)(f->end - f->data));
}

void api_ui_index(http_req_t *req, void *ud)
{
    if (!api_ui_files[0].data) api_ui_page();
    struct api_ui_file *f = &api_ui_files[0];
    buf_t b = BUF_INIT;
    if (api_ssr_page(ud, req, f->data, (size_t)(f->end - f->data), &b)) {
        /* The user's data: neither cached nor revalidated. */
        http_set_header(req, "Cache-Control", "no-store");
        http_set_header(req, "Content-Security-Policy", api_ui_csp);
        size_t n = b.len;
        http_respond_take(req, 200, f->type, buf_detach(&b), n);
        return;
    }
    api_ui_send(req, f);
}

void api_ui_asset(http_req_t *req, void *ud)
{
    (void)ud;
    const char *name = http_param(req, "file");
    struct api_ui_file *f = api_ui_find(name, strlen(name));
    if (!f) {
        api_error(req, 404, "not_found", "no such UI file");
        return;
    }
    api_ui_send(req, f);
}
