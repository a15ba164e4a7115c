/*
 * cmd_render — `nbhub render IN.ipynb [OUT.html]`: a notebook as one
 * self-contained HTML file (src/notebook/nbhtml.h), the drop-in for
 * `jupyter nbconvert --to html` that nbhub serve uses for its output view.
 *
 * Without OUT the file goes next to IN with .html for .ipynb (nbconvert's
 * habit); "-" is stdin or stdout.  OUT is written atomically.
 */
#include "cli/cli.h"
#include "notebook/nb.h"
#include "notebook/nbhtml.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char cmd_render_usage[] =
    "usage: nbhub render IN.ipynb [OUT.html] [options]\n"
    "\n"
    "Render a notebook to one self-contained HTML file: markdown (GitHub-flavoured,\n"
    "math left for KaTeX/MathJax), code with execution counts, outputs (streams and\n"
    "tracebacks with ANSI colours, HTML, SVG, PNG, JPEG, JSON, LaTeX), attachments.\n"
    "Scripts in the notebook never run: the page carries a Content-Security-Policy\n"
    "that allows none.  OUT defaults to IN with .html; '-' is stdin/stdout.\n"
    "\n"
    "options:\n"
    "  --no-input          hide the source of code cells (report mode)\n"
    "  --title TEXT        page title (default: IN's file name)\n"
    "  --ipynb-href URL    add a download link to the .ipynb at URL\n"
    "  -h, --help          this help\n"
    "\n"
    "exit codes:\n"
    "  0  written\n"
    "  2  usage error\n"
    "  3  IN missing, not JSON (line:column given) or not nbformat 4\n"
    "  7  OUT could not be written\n";

static char *default_out(const char *in)
{
    size_t n = strlen(in);
    if (n > 6 && strcmp(in + n - 6, ".ipynb") == 0) return xasprintf("%.*s.html", (int)(n - 6), in);
    return xasprintf("%s.html", in);
}

int cmd_render(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    struct nbhtml_opts o = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(cmd_render_usage, stdout);
            return NB_EXIT_OK;
        }
        if (!strcmp(a, "--no-input")) { o.no_input = 1; continue; }
        if (!strcmp(a, "--title") || !strcmp(a, "--ipynb-href")) {
            if (i + 1 >= argc) {
                cli_errorf("%s needs a value (see nbhub render --help)", a);
                return NB_EXIT_USAGE;
            }
            if (!strcmp(a, "--title")) o.title = argv[++i];
            else o.ipynb_href = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) {
            cli_errorf("unknown option %s (see nbhub render --help)", a);
            return NB_EXIT_USAGE;
        }
        if (!in) in = a;
        else if (!out) out = a;
        else {
            cli_errorf("too many arguments: %s (see nbhub render --help)", a);
            return NB_EXIT_USAGE;
        }
    }
    if (!in) {
        fputs(cmd_render_usage, stderr);
        return NB_EXIT_USAGE;
    }
    json_t *nb = NULL;
    nb_err_t err;
    if (nb_load_file(in, &nb, &err) < 0) {
        cli_errorf("%s", err.msg);
        return NB_EXIT_INPUT;
    }
    char *outp = out ? xstrdup(out) : (!strcmp(in, "-") ? xstrdup("-") : default_out(in));
    char *title = NULL;
    if (!o.title) {
        const char *base = strrchr(in, '/');
        title = xstrdup(!strcmp(in, "-") ? "Notebook" : base ? base + 1 : in);
        o.title = title;
    }
    buf_t html = BUF_INIT;
    nbhtml_render(nb, &o, &html);
    int code = NB_EXIT_OK;
    if (!strcmp(outp, "-")) {
        if (fwrite(html.data, 1, html.len, stdout) != html.len || fflush(stdout) != 0) {
            cli_errorf("cannot write the HTML to stdout");
            code = NB_EXIT_OUTPUT;
        }
    } else if (fs_write_atomic(outp, html.data, html.len, 0, &err) < 0) {
        cli_errorf("cannot write %s: %s", outp, err.msg);
        code = NB_EXIT_OUTPUT;
    }
    buf_free(&html);
    free(title);
    free(outp);
    json_decref(nb);
    return code;
}
