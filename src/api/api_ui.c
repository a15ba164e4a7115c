/*
 * api_ui — the web UI's files: GET / (the page) and GET /ui/NAME (its
 * modules and stylesheet), compiled into the binary from web/ with the
 * assembler's .incbin, so `nbhub serve` needs no install step and no
 * separate web server, and the UI always matches the API it talks to.
 *
 * The files are public (they hold no data; everything the UI shows comes
 * from the authenticated API).  Each answer has a strong ETag (FNV-1a of
 * the content, computed once) and `Cache-Control: no-cache`, so a browser
 * revalidates with If-None-Match and gets 304 until the binary changes.
 *
 * The page's Content-Security-Policy allows scripts and styles from this
 * origin only (no inline script, no eval), frames from this origin (the
 * sandboxed notebook view), and no embedding of the UI by other sites.
 */
#include "api/api_int.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define API_UI_CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
                   "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; " \
                   "frame-ancestors 'none'"

/* One symbol pair per file; the paths are relative to the project root,
 * where make runs the compiler (the Makefile lists them as prerequisites). */
#define API_UI_ASSET(sym, file)                                                   \
    __asm__(".section .rodata\n.balign 16\n.globl " #sym "\n" #sym ":\n"          \
            ".incbin \"" file "\"\n.globl " #sym "_end\n" #sym "_end:\n.byte 0\n" \
            ".previous\n");                                                        \
    extern const char sym[], sym##_end[]

API_UI_ASSET(nbhub_ui_index_html, "web/index.html");
API_UI_ASSET(nbhub_ui_app_js, "web/app.js");
API_UI_ASSET(nbhub_ui_pages_js, "web/pages.js");
API_UI_ASSET(nbhub_ui_dag_js, "web/dag.js");
API_UI_ASSET(nbhub_ui_app_css, "web/app.css");

struct api_ui_file {
    const char *name;
    const char *type;
    const char *data, *end;
    char        etag[24];
};

static struct api_ui_file api_ui_files[] = {
    { "index.html", "text/html; charset=utf-8", nbhub_ui_index_html, nbhub_ui_index_html_end, "" },
    { "app.js", "text/javascript; charset=utf-8", nbhub_ui_app_js, nbhub_ui_app_js_end, "" },
    { "pages.js", "text/javascript; charset=utf-8", nbhub_ui_pages_js, nbhub_ui_pages_js_end, "" },
    { "dag.js", "text/javascript; charset=utf-8", nbhub_ui_dag_js, nbhub_ui_dag_js_end, "" },
    { "app.css", "text/css; charset=utf-8", nbhub_ui_app_css, nbhub_ui_app_css_end, "" },
};

static void api_ui_send(http_req_t *req, struct api_ui_file *f)
{
    if (!f->etag[0]) {
        uint64_t hsh = 1469598103934665603ULL;
        for (const char *p = f->data; p < f->end; p++) hsh = (hsh ^ (unsigned char)*p) * 1099511628211ULL;
        snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)hsh);
    }
    http_set_header(req, "ETag", f->etag);
    http_set_header(req, "Cache-Control", "no-cache");
    if (!strncmp(f->type, "text/html", 9)) http_set_header(req, "Content-Security-Policy", API_UI_CSP);
    const char *inm = http_header(req, "If-None-Match");
    if (inm && strcmp(inm, f->etag) == 0) {
        http_respond(req, 304, NULL, "", 0);
        return;
    }
    http_respond(req, 200, f->type, f->data, (size_t)(f->end - f->data));
}

void api_ui_index(http_req_t *req, void *ud)
{
    (void)ud;
    api_ui_send(req, &api_ui_files[0]);
}

void api_ui_asset(http_req_t *req, void *ud)
{
    (void)ud;
    const char *name = http_param(req, "file");
    for (size_t i = 1; i < sizeof api_ui_files / sizeof api_ui_files[0]; i++)
        if (strcmp(name, api_ui_files[i].name) == 0) {
            api_ui_send(req, &api_ui_files[i]);
            return;
        }
    api_error(req, 404, "not_found", "no such UI file");
}
