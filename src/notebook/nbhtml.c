/*
 * nbhtml — see nbhtml.h.
 *
 * One pass over the cells appends to a single buffer; the only allocations
 * per cell are cmark's for markdown.  Image data is already base64 in the
 * notebook, so it is checked (only base64 characters may reach an
 * attribute) and copied, never decoded.
 */
#include "notebook/nbhtml.h"
#include "notebook/nb.h"
#include "util/base64.h"
#include "util/xmalloc.h"

#include <cmark-gfm.h>
#include <cmark-gfm-core-extensions.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- escaping ------------------------------------------------------------ */

/* The bytes escaping replaces; everything else is copied in runs. */
static const unsigned char nbhtml_special[256] = {
    ['&'] = 1, ['<'] = 1, ['>'] = 1, ['"'] = 1, ['\''] = 1, ['\0'] = 1,
};

void nbhtml_escape(buf_t *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    buf_reserve(out, n);
    for (;;) {
        while (i < n && !nbhtml_special[u[i]]) i++;
        buf_append(out, s + run, i - run);
        if (i == n) return;
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: rep = "\xEF\xBF\xBD"; break;   /* NUL: U+FFFD, as browsers do */
        }
        buf_puts(out, rep);
        run = ++i;
    }
}

static void esc(buf_t *out, const char *s)
{
    if (s) nbhtml_escape(out, s, strlen(s));
}

/* ---- ANSI colours -------------------------------------------------------- */

struct ansi {
    int fg, bg;          /* -1 default, 0..15 palette, else 0x1000000 | rgb */
    int bold, underline;
    int open;            /* a span is open */
};

static const char *const ansi_names[8] = { "black", "red", "green", "yellow",
                                            "blue", "magenta", "cyan", "white" };

static int ansi_256(int i)
{
    if (i < 16) return i;
    int r, g, b;
    if (i >= 232) {
        r = g = b = 8 + 10 * (i - 232);
    } else {
        static const int lv[6] = { 0, 95, 135, 175, 215, 255 };
        int c = i - 16;
        r = lv[c / 36];
        g = lv[(c / 6) % 6];
        b = lv[c % 6];
    }
    return 0x1000000 | (r << 16) | (g << 8) | b;
}

static void ansi_open(buf_t *out, struct ansi *a)
{
    if (a->open) buf_puts(out, "</span>");
    a->open = 0;
    if (a->fg < 0 && a->bg < 0 && !a->bold && !a->underline) return;
    buf_puts(out, "<span");
    const char *sp = " class=\"";
    if (a->fg >= 0 && a->fg < 16) {
        buf_printf(out, "%sansi-%s%s-fg", sp, ansi_names[a->fg & 7], a->fg >= 8 ? "-intense" : "");
        sp = " ";
    }
    if (a->bg >= 0 && a->bg < 16) {
        buf_printf(out, "%sansi-%s%s-bg", sp, ansi_names[a->bg & 7], a->bg >= 8 ? "-intense" : "");
        sp = " ";
    }
    if (a->bold) { buf_printf(out, "%sansi-bold", sp); sp = " "; }
    if (a->underline) { buf_printf(out, "%sansi-underline", sp); sp = " "; }
    if (sp[0] == ' ' && sp[1] == '\0') buf_putc(out, '"');   /* a class was written */
    if (a->fg >= 16 || a->bg >= 16) {
        buf_puts(out, " style=\"");
        if (a->fg >= 16) buf_printf(out, "color:#%06x;", a->fg & 0xFFFFFF);
        if (a->bg >= 16) buf_printf(out, "background-color:#%06x;", a->bg & 0xFFFFFF);
        buf_putc(out, '"');
    }
    buf_putc(out, '>');
    a->open = 1;
}

/* Apply one SGR parameter list. */
static void ansi_sgr(struct ansi *a, const int *p, int np)
{
    if (np == 0) { a->fg = a->bg = -1; a->bold = a->underline = 0; return; }
    for (int i = 0; i < np; i++) {
        int c = p[i];
        if (c == 0) { a->fg = a->bg = -1; a->bold = a->underline = 0; }
        else if (c == 1) a->bold = 1;
        else if (c == 22) a->bold = 0;
        else if (c == 4) a->underline = 1;
        else if (c == 24) a->underline = 0;
        else if (c >= 30 && c <= 37) a->fg = c - 30;
        else if (c == 39) a->fg = -1;
        else if (c >= 40 && c <= 47) a->bg = c - 40;
        else if (c == 49) a->bg = -1;
        else if (c >= 90 && c <= 97) a->fg = c - 90 + 8;
        else if (c >= 100 && c <= 107) a->bg = c - 100 + 8;
        else if ((c == 38 || c == 48) && i + 1 < np) {
            int v = -1;
            if (p[i + 1] == 5 && i + 2 < np) {
                if (p[i + 2] >= 0 && p[i + 2] < 256) v = ansi_256(p[i + 2]);
                i += 2;
            } else if (p[i + 1] == 2 && i + 4 < np) {
                int r = p[i + 2] & 255, g = p[i + 3] & 255, b = p[i + 4] & 255;
                v = 0x1000000 | (r << 16) | (g << 8) | b;
                i += 4;
            } else {
                i = np;   /* malformed: ignore the rest */
            }
            if (v >= 0) { if (c == 38) a->fg = v; else a->bg = v; }
        }
    }
}

void nbhtml_ansi(buf_t *out, const char *s, size_t n)
{
    struct ansi a = { -1, -1, 0, 0, 0 };
    size_t i = 0, run = 0;
    while (i < n) {
        const char *e = memchr(s + i, '\x1b', n - i);
        if (!e) break;
        i = (size_t)(e - s);
        nbhtml_escape(out, s + run, i - run);
        size_t j = i + 1;
        if (j < n && s[j] == '[') {
            int p[16], np = 0, cur = -1;
            j++;
            while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == ';' || s[j] == ':')) {
                if (s[j] == ';' || s[j] == ':') {
                    if (np < 16) p[np++] = cur < 0 ? 0 : cur;
                    cur = -1;
                } else {
                    cur = (cur < 0 ? 0 : cur) * 10 + (s[j] - '0');
                    if (cur > 100000) cur = 100000;
                }
                j++;
            }
            if (cur >= 0 && np < 16) p[np++] = cur;
            while (j < n && !((unsigned char)s[j] >= 0x40 && (unsigned char)s[j] <= 0x7E)) j++;
            if (j < n && s[j] == 'm') {
                ansi_sgr(&a, p, np);
                ansi_open(out, &a);
            }
            if (j < n) j++;
        } else if (j < n) {
            /* Other escapes are dropped: ESC + one character, or ESC ( B
             * and the like (character set designations). */
            if (s[j] && strchr("()*+", s[j]) && j + 1 < n) j++;
            j++;
        }
        i = run = j;
    }
    nbhtml_escape(out, s + run, n - run);
    if (a.open) buf_puts(out, "</span>");
}

/* Append s without its line breaks and spaces (base64 stored in lines). */
static void append_no_newlines(buf_t *out, const char *s)
{
    buf_reserve(out, strlen(s));
    while (*s) {
        size_t run = strcspn(s, "\r\n ");
        buf_append(out, s, run);
        s += run;
        while (*s == '\r' || *s == '\n' || *s == ' ') s++;
    }
}

/* ---- markdown with math ---------------------------------------------------- */

/* Math spans are replaced by U+E000 <index> U+E001 (private-use characters
 * that markdown leaves alone) before cmark sees the text, and put back,
 * escaped, afterwards: TeX is full of `_`, `*` and `\` that markdown would
 * eat. */
#define MATH_OPEN  "\xEE\x80\x80"
#define MATH_CLOSE "\xEE\x80\x81"

struct mathspan { size_t at, len; int display; };
struct maths { struct mathspan *v; size_t n, cap; };

static void maths_add(struct maths *m, size_t at, size_t len, int display)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->v = xrealloc(m->v, m->cap * sizeof *m->v);
    }
    m->v[m->n++] = (struct mathspan){ at, len, display };
}

static const char *find(const char *s, size_t from, size_t n, const char *needle)
{
    size_t l = strlen(needle);
    for (size_t i = from; i + l <= n; i++) {
        if (s[i] == '\\' && needle[0] != '\\') { i++; continue; }   /* \$ is a dollar */
        if (memcmp(s + i, needle, l) == 0) return s + i;
    }
    return NULL;
}

/* End of inline math opened by a single $ at `from`: the next unescaped $
 * before a blank line. */
static const char *find_dollar(const char *s, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        if (s[i] == '\\') { i++; continue; }
        if (s[i] == '\n' && i + 1 < n && s[i + 1] == '\n') return NULL;
        if (s[i] == '$') return s + i;
    }
    return NULL;
}

static int line_is_fence(const char *s, size_t i, size_t n)
{
    size_t k = i;
    while (k < n && k < i + 3 && s[k] == ' ') k++;
    return k + 3 <= n && (memcmp(s + k, "```", 3) == 0 || memcmp(s + k, "~~~", 3) == 0);
}

static void protect_math(const char *md, size_t n, buf_t *text, struct maths *m)
{
    int fence = 0;
    size_t i = 0, run = 0;
    while (i < n) {
        int bol = i == 0 || md[i - 1] == '\n';
        if (bol && line_is_fence(md, i, n)) fence = !fence;
        if (fence) { i++; continue; }
        if (md[i] == '`') {                    /* an inline code span: skip it whole */
            size_t k = i;
            while (k < n && md[k] == '`') k++;
            size_t ticks = k - i;
            for (size_t j = k; j < n; j++) {
                if (md[j] != '`') continue;
                size_t e = j;
                while (e < n && md[e] == '`') e++;
                if (e - j == ticks) { k = e; break; }
                j = e;
            }
            i = k;
            continue;
        }
        const char *end = NULL;
        size_t open = 0, close = 0;
        int display = 0;
        if (md[i] == '\\' && i + 1 < n) {
            if (md[i + 1] == '(') { end = find(md, i + 2, n, "\\)"); open = 2; close = 2; }
            else if (md[i + 1] == '[') { end = find(md, i + 2, n, "\\]"); open = 2; close = 2; display = 1; }
            else if (n - i > 7 && memcmp(md + i, "\\begin{", 7) == 0) {
                const char *rb = memchr(md + i + 7, '}', n - i - 7);
                if (rb && rb - (md + i + 7) < 40) {
                    char env[64];
                    snprintf(env, sizeof env, "\\end{%.*s}", (int)(rb - (md + i + 7)), md + i + 7);
                    end = find(md, (size_t)(rb - md) + 1, n, env);
                    open = 0;
                    close = strlen(env);
                    display = 1;
                }
            }
            if (!end) { i += 2; continue; }   /* an escape such as \$ or \* */
        } else if (md[i] == '$' && i + 1 < n && md[i + 1] == '$') {
            end = find(md, i + 2, n, "$$");
            open = close = 2;
            display = 1;
        } else if (md[i] == '$') {
            end = find_dollar(md, i + 1, n);
            open = close = 1;
            if (end == md + i + 1) end = NULL;   /* "$$" handled above; "$ $"-less empty */
        }
        if (!end) { i++; continue; }
        size_t stop = (size_t)(end - md) + close;
        (void)open;
        buf_append(text, md + run, i - run);
        buf_printf(text, MATH_OPEN "%zu" MATH_CLOSE, m->n);
        maths_add(m, i, stop - i, display);
        i = run = stop;
    }
    buf_append(text, md + run, n - run);
}

static void restore_math(buf_t *out, const char *html, const char *md, const struct maths *m)
{
    const char *p = html;
    for (;;) {
        const char *o = strstr(p, MATH_OPEN);
        if (!o) break;
        char *e;
        unsigned long idx = strtoul(o + 3, &e, 10);
        if (e == o + 3 || strncmp(e, MATH_CLOSE, 3) != 0 || idx >= m->n) {
            buf_append(out, p, (size_t)(o + 3 - p));
            p = o + 3;
            continue;
        }
        buf_append(out, p, (size_t)(o - p));
        const struct mathspan *s = &m->v[idx];
        buf_puts(out, s->display ? "<span class=\"math display\">" : "<span class=\"math inline\">");
        nbhtml_escape(out, md + s->at, s->len);
        buf_puts(out, "</span>");
        p = e + 3;
    }
    buf_puts(out, p);
}

static int mime_is_image(const char *k)
{
    return !strcmp(k, "image/png") || !strcmp(k, "image/jpeg") || !strcmp(k, "image/gif") ||
           !strcmp(k, "image/svg+xml") || !strcmp(k, "image/webp");
}

/* Attachment references become data: URIs, before rendering. */
static void resolve_attachments(cmark_node *root, const json_t *att)
{
    if (!json_is_object(att)) return;
    cmark_iter *it = cmark_iter_new(root);
    cmark_event_type ev;
    buf_t url = BUF_INIT;
    while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
        cmark_node *nd = cmark_iter_get_node(it);
        if (ev != CMARK_EVENT_ENTER || cmark_node_get_type(nd) != CMARK_NODE_IMAGE) continue;
        const char *u = cmark_node_get_url(nd);
        if (!u || strncmp(u, "attachment:", 11) != 0) continue;
        const json_t *bundle = json_object_get(att, u + 11);
        const char *mime;
        json_t *data;
        json_object_foreach((json_t *)bundle, mime, data) {
            if (!mime_is_image(mime) || !json_is_string(data)) continue;
            buf_reset(&url);
            buf_printf(&url, "data:%s;base64,", mime);
            if (!strcmp(mime, "image/svg+xml")) {
                /* SVG attachments are stored as text; encode them. */
                base64_append(&url, json_string_value(data), json_string_length(data));
            } else {
                append_no_newlines(&url, json_string_value(data));
            }
            cmark_node_set_url(nd, url.data);
            break;
        }
    }
    buf_free(&url);
    cmark_iter_free(it);
}

void nbhtml_markdown(buf_t *out, const char *md, size_t n, const json_t *attachments)
{
    static int registered;
    if (!registered) {
        cmark_gfm_core_extensions_ensure_registered();
        registered = 1;
    }
    buf_t text = BUF_INIT;
    struct maths m = { 0 };
    protect_math(md, n, &text, &m);
    /* Raw HTML stays (Jupyter renders it); the tag filter escapes <script>,
     * <iframe>, <style> and the like, and the document's CSP runs nothing. */
    int opts = CMARK_OPT_UNSAFE | CMARK_OPT_FOOTNOTES | CMARK_OPT_GITHUB_PRE_LANG;
    cmark_parser *p = cmark_parser_new(opts);
    static const char *const exts[] = { "table", "strikethrough", "autolink", "tagfilter", "tasklist" };
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        cmark_syntax_extension *e = cmark_find_syntax_extension(exts[i]);
        if (e) cmark_parser_attach_syntax_extension(p, e);
    }
    cmark_parser_feed(p, text.data ? text.data : "", text.len);
    cmark_node *doc = cmark_parser_finish(p);
    resolve_attachments(doc, attachments);
    char *html = cmark_render_html(doc, opts, cmark_parser_get_syntax_extensions(p));
    restore_math(out, html, md, &m);
    cmark_get_default_mem_allocator()->free(html);
    cmark_node_free(doc);
    cmark_parser_free(p);
    buf_free(&text);
    free(m.v);
}

/* ---- outputs --------------------------------------------------------------- */

/* base64 as nbformat stores it: the alphabet, '=' and line breaks */
static const unsigned char nbhtml_b64[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['+'] = 1, ['/'] = 1, ['='] = 1, ['\n'] = 1, ['\r'] = 1,
};

static int is_base64(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (nbhtml_b64[*u]) u++;
    return *u == '\0';
}

static void put_img_b64(buf_t *out, const char *mime, const char *data, const json_t *meta)
{
    if (!is_base64(data)) {
        buf_puts(out, "<div class=\"out note\">[image data is not valid base64; not shown]</div>");
        return;
    }
    buf_printf(out, "<div class=\"out image\"><img alt=\"output image\" src=\"data:%s;base64,", mime);
    append_no_newlines(out, data);
    buf_putc(out, '"');
    const json_t *dims = json_object_get(meta, mime);
    json_int_t w = json_integer_value(json_object_get(dims, "width"));
    json_int_t h = json_integer_value(json_object_get(dims, "height"));
    if (w > 0) buf_printf(out, " width=\"%lld\"", (long long)w);
    if (h > 0) buf_printf(out, " height=\"%lld\"", (long long)h);
    buf_puts(out, "></div>\n");
}

static void put_svg(buf_t *out, const char *svg, size_t n)
{
    buf_puts(out, "<div class=\"out image\"><img alt=\"output image\" src=\"data:image/svg+xml;base64,");
    base64_append(out, svg, n);
    buf_puts(out, "\"></div>\n");
}

static const char *str_of(const json_t *v) { return json_is_string(v) ? json_string_value(v) : NULL; }

/* execute_result / display_data: the richest representation we can show. */
static void put_data(buf_t *out, const json_t *o)
{
    const json_t *data = json_object_get(o, "data"), *meta = json_object_get(o, "metadata");
    const char *s;
    if ((s = str_of(json_object_get(data, "text/html")))) {
        buf_puts(out, "<div class=\"out html\">");
        buf_puts(out, s);   /* untrusted HTML: contained by the document's CSP (nbhtml.h) */
        buf_puts(out, "</div>\n");
    } else if ((s = str_of(json_object_get(data, "image/svg+xml")))) {
        put_svg(out, s, strlen(s));
    } else if ((s = str_of(json_object_get(data, "image/png")))) {
        put_img_b64(out, "image/png", s, meta);
    } else if ((s = str_of(json_object_get(data, "image/jpeg")))) {
        put_img_b64(out, "image/jpeg", s, meta);
    } else if ((s = str_of(json_object_get(data, "image/gif")))) {
        put_img_b64(out, "image/gif", s, meta);
    } else if ((s = str_of(json_object_get(data, "text/markdown")))) {
        buf_puts(out, "<div class=\"out markdown\">");
        nbhtml_markdown(out, s, strlen(s), NULL);
        buf_puts(out, "</div>\n");
    } else if ((s = str_of(json_object_get(data, "text/latex")))) {
        buf_puts(out, "<div class=\"out latex\"><span class=\"math display\">");
        esc(out, s);
        buf_puts(out, "</span></div>\n");
    } else if (json_object_get(data, "application/json")) {
        char *j = json_dumps(json_object_get(data, "application/json"),
                             JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        buf_puts(out, "<pre class=\"out json\">");
        esc(out, j);
        buf_puts(out, "</pre>\n");
        free(j);
    } else if ((s = str_of(json_object_get(data, "text/plain")))) {
        buf_puts(out, "<pre class=\"out text\">");
        nbhtml_ansi(out, s, strlen(s));
        buf_puts(out, "</pre>\n");
    } else if (json_object_size(data)) {
        buf_puts(out, "<div class=\"out note\">[output of type");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)data, k, v) { buf_putc(out, ' '); esc(out, k); }
        buf_puts(out, " not shown]</div>\n");
    }
}

static void put_output(buf_t *out, const json_t *o, int *failed)
{
    const char *type = str_of(json_object_get(o, "output_type"));
    if (!type) return;
    if (!strcmp(type, "stream")) {
        const char *name = str_of(json_object_get(o, "name"));
        const char *text = str_of(json_object_get(o, "text"));
        buf_puts(out, name && !strcmp(name, "stderr") ? "<pre class=\"out stream stderr\">"
                                                       : "<pre class=\"out stream\">");
        if (text) nbhtml_ansi(out, text, strlen(text));
        buf_puts(out, "</pre>\n");
    } else if (!strcmp(type, "error")) {
        *failed = 1;
        buf_puts(out, "<pre class=\"out error\">");
        const json_t *tb = json_object_get(o, "traceback");
        if (json_array_size(tb)) {
            size_t i;
            json_t *line;
            json_array_foreach(tb, i, line) {
                const char *l = str_of(line);
                if (!l) continue;
                if (i) buf_putc(out, '\n');
                nbhtml_ansi(out, l, strlen(l));
            }
        } else {
            esc(out, str_of(json_object_get(o, "ename")));
            buf_puts(out, ": ");
            esc(out, str_of(json_object_get(o, "evalue")));
        }
        buf_puts(out, "</pre>\n");
    } else if (!strcmp(type, "execute_result") || !strcmp(type, "display_data")) {
        put_data(out, o);
    }
}

/* ---- the document ------------------------------------------------------------ */

static const char nbhtml_css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#fff}"
    "main{max-width:1100px;margin:0 auto;padding:16px}"
    "header.nb{border-bottom:1px solid #d0d7de;margin-bottom:12px;padding-bottom:8px}"
    "header.nb h1{font-size:20px;margin:0 0 4px}"
    "header.nb .meta{color:#59636e;font-size:13px}"
    "header.nb table{border-collapse:collapse;font-size:13px;margin-top:6px}"
    "header.nb td{border:1px solid #d0d7de;padding:2px 8px;font-family:ui-monospace,monospace}"
    ".cell{display:grid;grid-template-columns:80px minmax(0,1fr);margin:6px 0}"
    ".prompt{color:#59636e;font:12px ui-monospace,monospace;text-align:right;padding:6px 8px 0 0}"
    ".body{min-width:0}"
    "pre{margin:0;white-space:pre-wrap;word-break:break-word;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}"
    "pre.source{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:6px 8px}"
    ".out{padding:4px 8px;overflow-x:auto}"
    ".out.stderr{background:#fff5f5}"
    ".out.error{background:#ffebe9;border-left:3px solid #cf222e}"
    ".out.note{color:#59636e;font-style:italic}"
    ".out img{max-width:100%;height:auto}"
    ".cell.failed pre.source{border-color:#cf222e}"
    ".cell.pending{opacity:.55}"
    ".cell.markdown .body{padding:0 8px}"
    ".cell.markdown table{border-collapse:collapse}.cell.markdown td,.cell.markdown th{border:1px solid #d0d7de;padding:3px 8px}"
    ".math{font-family:'Times New Roman',serif}"
    ".ansi-black-fg{color:#3e424d}.ansi-red-fg{color:#e75c58}.ansi-green-fg{color:#00a250}"
    ".ansi-yellow-fg{color:#ddb62b}.ansi-blue-fg{color:#208ffb}.ansi-magenta-fg{color:#d160c4}"
    ".ansi-cyan-fg{color:#60c6c8}.ansi-white-fg{color:#c5c1b4}"
    ".ansi-black-intense-fg{color:#282c36}.ansi-red-intense-fg{color:#b22b31}.ansi-green-intense-fg{color:#007427}"
    ".ansi-yellow-intense-fg{color:#b27d12}.ansi-blue-intense-fg{color:#0065ca}.ansi-magenta-intense-fg{color:#a03196}"
    ".ansi-cyan-intense-fg{color:#258f8f}.ansi-white-intense-fg{color:#a1a6b2}"
    ".ansi-black-bg{background:#3e424d}.ansi-red-bg{background:#e75c58}.ansi-green-bg{background:#00a250}"
    ".ansi-yellow-bg{background:#ddb62b}.ansi-blue-bg{background:#208ffb}.ansi-magenta-bg{background:#d160c4}"
    ".ansi-cyan-bg{background:#60c6c8}.ansi-white-bg{background:#c5c1b4}"
    ".ansi-black-intense-bg{background:#282c36}.ansi-red-intense-bg{background:#b22b31}.ansi-green-intense-bg{background:#007427}"
    ".ansi-yellow-intense-bg{background:#b27d12}.ansi-blue-intense-bg{background:#0065ca}.ansi-magenta-intense-bg{background:#a03196}"
    ".ansi-cyan-intense-bg{background:#258f8f}.ansi-white-intense-bg{background:#a1a6b2}"
    ".ansi-bold{font-weight:bold}.ansi-underline{text-decoration:underline}"
    "@media (max-width:640px){.cell{grid-template-columns:1fr}.prompt{text-align:left;padding:2px 0}}";

static void put_header(buf_t *out, const json_t *nb, const struct nbhtml_opts *o, const char *title)
{
    buf_puts(out, "<header class=\"nb\"><h1>");
    esc(out, title);
    buf_puts(out, "</h1><div class=\"meta\">");
    const json_t *ks = json_object_get(json_object_get(nb, "metadata"), "kernelspec");
    const char *kn = str_of(json_object_get(ks, "display_name"));
    if (!kn) kn = str_of(json_object_get(ks, "name"));
    if (kn) { buf_puts(out, "kernel "); esc(out, kn); }
    const json_t *pm = json_object_get(json_object_get(nb, "metadata"), "papermill");
    const char *st = str_of(json_object_get(pm, "start_time"));
    if (st) {
        buf_puts(out, " · started <time datetime=\"");
        esc(out, st);
        buf_puts(out, "\">");
        esc(out, st);
        buf_puts(out, "</time>");
    }
    const json_t *d = json_object_get(pm, "duration");
    if (json_is_number(d)) buf_printf(out, " · %.3f s", json_number_value(d));
    if (json_is_true(json_object_get(pm, "exception"))) buf_puts(out, " · <strong>failed</strong>");
    if (o->ipynb_href) {
        buf_puts(out, " · <a download href=\"");
        esc(out, o->ipynb_href);
        buf_puts(out, "\">download .ipynb</a>");
    }
    buf_puts(out, "</div>");
    const json_t *params = json_object_get(pm, "parameters");
    if (json_object_size(params)) {
        buf_puts(out, "<table class=\"params\"><caption>parameters</caption>");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)params, k, v) {
            char *j = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            buf_puts(out, "<tr><td>");
            esc(out, k);
            buf_puts(out, "</td><td>");
            esc(out, j);
            buf_puts(out, "</td></tr>");
            free(j);
        }
        buf_puts(out, "</table>");
    }
    buf_puts(out, "</header>\n");
}

static const struct nbhtml_opts nbhtml_none = { 0 };

void nbhtml_begin(const json_t *nb, const struct nbhtml_opts *o, buf_t *out)
{
    if (!o) o = &nbhtml_none;
    const char *title = o->title ? o->title : "Notebook";
    buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"" NBHTML_CSP "\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<meta name=\"generator\" content=\"nbhub render\">\n<title>");
    esc(out, title);
    buf_puts(out, "</title>\n<style>");
    buf_puts(out, nbhtml_css);
    buf_puts(out, "</style></head>\n<body><main>\n");
    put_header(out, nb, o, title);
}

/* 1 if one of a code cell's outputs is an error (the cell is drawn failed). */
static int has_error_output(const json_t *cell)
{
    size_t k;
    json_t *op;
    json_array_foreach(json_object_get(cell, "outputs"), k, op) {
        const char *t = str_of(json_object_get(op, "output_type"));
        if (t && !strcmp(t, "error")) return 1;
    }
    return 0;
}

/* The cell is written straight into out: its outputs can be most of the
 * notebook, and a buffer per cell copied in afterwards was one more copy of
 * the biggest cell. */
void nbhtml_cell(const json_t *cell, const struct nbhtml_opts *o, buf_t *out)
{
    if (!o) o = &nbhtml_none;
    const char *type = str_of(json_object_get(cell, "cell_type"));
    if (!type) return;
    const char *src = nb_cell_source(cell);
    const char *id = str_of(json_object_get(cell, "id"));
    int code = !strcmp(type, "code"), md = !strcmp(type, "markdown");
    const json_t *pmc = json_object_get(json_object_get(cell, "metadata"), "papermill");
    const char *status = str_of(json_object_get(pmc, "status"));
    int failed = (status && !strcmp(status, "failed")) || (code && has_error_output(cell));
    buf_puts(out, "<section class=\"cell ");
    buf_puts(out, code ? "code" : md ? "markdown" : "raw");
    if (failed) buf_puts(out, " failed");
    if (status && !strcmp(status, "pending")) buf_puts(out, " pending");
    buf_puts(out, "\"");
    if (id) { buf_puts(out, " id=\"cell-"); esc(out, id); buf_puts(out, "\""); }
    buf_puts(out, "><div class=\"prompt\">");
    if (code) {
        const json_t *ec = json_object_get(cell, "execution_count");
        if (json_is_integer(ec)) buf_printf(out, "In&nbsp;[%lld]:", (long long)json_integer_value(ec));
        else buf_puts(out, "In&nbsp;[&nbsp;]:");
    }
    buf_puts(out, "</div><div class=\"body\">");
    if (md) {
        nbhtml_markdown(out, src, strlen(src), json_object_get(cell, "attachments"));
    } else if (code) {
        if (!o->no_input) {
            buf_puts(out, "<pre class=\"source\"><code>");
            esc(out, src);
            buf_puts(out, "</code></pre>\n");
        }
        size_t k;
        json_t *op;
        int ignored = 0;
        json_array_foreach(json_object_get(cell, "outputs"), k, op) put_output(out, op, &ignored);
    } else {
        buf_puts(out, "<pre class=\"raw\">");
        esc(out, src);
        buf_puts(out, "</pre>\n");
    }
    buf_puts(out, "</div></section>\n");
}

void nbhtml_end(buf_t *out)
{
    buf_puts(out, "</main></body></html>\n");
}

void nbhtml_render(const json_t *nb, const struct nbhtml_opts *o, buf_t *out)
{
    nbhtml_begin(nb, o, out);
    size_t i;
    json_t *cell;
    json_array_foreach(json_object_get(nb, "cells"), i, cell) nbhtml_cell(cell, o, out);
    nbhtml_end(out);
}

void nbhtml_notice(buf_t *out, const char *title, const char *message, const char *ipynb_href)
{
    struct nbhtml_opts o = { title, NULL, 0 };
    json_t *empty = json_object();
    nbhtml_begin(empty, &o, out);
    json_decref(empty);
    buf_puts(out, "<section class=\"notice\"><p>");
    esc(out, message);
    buf_puts(out, "</p>");
    if (ipynb_href) {
        buf_puts(out, "<p><a download href=\"");
        esc(out, ipynb_href);
        buf_puts(out, "\">Download the .ipynb</a></p>");
    }
    buf_puts(out, "</section>\n");
    nbhtml_end(out);
}
