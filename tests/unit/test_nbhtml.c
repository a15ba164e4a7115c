/* Unit tests for nbhtml: escaping, ANSI colours, markdown with math and
 * attachments, output priorities, and hostile notebooks (every string that
 * is not an HTML output must come out escaped). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nbhtml.h"

static char *ansi(const char *s)
{
    buf_t b = BUF_INIT;
    nbhtml_ansi(&b, s, strlen(s));
    return b.data ? b.data : calloc(1, 1);
}

static char *md(const char *s, const json_t *att)
{
    buf_t b = BUF_INIT;
    nbhtml_markdown(&b, s, strlen(s), att);
    return b.data;
}

static void test_escape(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    nbhtml_escape(&b, "a<b>&\"c'", 8);
    assert_string_equal(b.data, "a&lt;b&gt;&amp;&quot;c&#39;");
    buf_reset(&b);
    nbhtml_escape(&b, "x\0y", 3);
    assert_string_equal(b.data, "x\xEF\xBF\xBDy");
    buf_free(&b);
}

static void test_ansi(void **state)
{
    (void)state;
    char *s = ansi("\x1b[31mred\x1b[0m plain");
    assert_string_equal(s, "<span class=\"ansi-red-fg\">red</span> plain");
    free(s);
    s = ansi("\x1b[1;92mok\x1b[39m still bold\x1b[22m");
    assert_string_equal(s, "<span class=\"ansi-green-intense-fg ansi-bold\">ok</span>"
                           "<span class=\"ansi-bold\"> still bold</span>");
    free(s);
    s = ansi("\x1b[38;5;196mx\x1b[48;2;1;2;3my\x1b[m");
    assert_string_equal(s, "<span style=\"color:#ff0000;\">x</span>"
                           "<span style=\"color:#ff0000;background-color:#010203;\">y</span>");
    free(s);
    /* Text is escaped, other escape sequences dropped, a truncated one too. */
    s = ansi("<b>\x1b[2K\x1b(B&\x1b[");
    assert_string_equal(s, "&lt;b&gt;&amp;");
    free(s);
    /* An IPython traceback line. */
    s = ansi("\x1b[0;31mZeroDivisionError\x1b[0m: division by zero");
    assert_string_equal(s, "<span class=\"ansi-red-fg\">ZeroDivisionError</span>: division by zero");
    free(s);
}

static void test_markdown_math(void **state)
{
    (void)state;
    char *h = md("# T\n\nEuler: $e^{i\\pi}_1 + 1 = 0$ and *em*\n\n$$\\sum_{k=1}^n k_i$$\n", NULL);
    assert_non_null(strstr(h, "<h1>T</h1>"));
    assert_non_null(strstr(h, "<span class=\"math inline\">$e^{i\\pi}_1 + 1 = 0$</span>"));
    assert_non_null(strstr(h, "<span class=\"math display\">$$\\sum_{k=1}^n k_i$$</span>"));
    assert_non_null(strstr(h, "<em>em</em>"));
    free(h);
    /* Dollars in code are not math; an escaped dollar is a dollar. */
    h = md("`$a_b$` costs \\$5 and \\$6\n\n```\n$x_1$\n```\n", NULL);
    assert_null(strstr(h, "class=\"math"));
    assert_non_null(strstr(h, "<code>$a_b$</code>"));
    free(h);
    h = md("\\(a<b\\) and \\[x\\]\n\n\\begin{align}a&=b\\end{align}\n", NULL);
    assert_non_null(strstr(h, "<span class=\"math inline\">\\(a&lt;b\\)</span>"));
    assert_non_null(strstr(h, "<span class=\"math display\">\\[x\\]</span>"));
    assert_non_null(strstr(h, "\\begin{align}a&amp;=b\\end{align}"));
    free(h);
}

static void test_markdown_gfm_and_html(void **state)
{
    (void)state;
    char *h = md("| a | b |\n|---|---|\n| 1 | ~~2~~ |\n\n- [x] done\n\nwww.example.com\n", NULL);
    assert_non_null(strstr(h, "<table>"));
    assert_non_null(strstr(h, "<del>2</del>"));
    assert_non_null(strstr(h, "checkbox"));
    assert_non_null(strstr(h, "<a href=\"http://www.example.com\">"));
    free(h);
    /* Raw HTML stays, but the tag filter defuses script-capable tags. */
    h = md("<b>bold</b><script>alert(1)</script><iframe src=x></iframe>\n", NULL);
    assert_non_null(strstr(h, "<b>bold</b>"));
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<iframe"));
    free(h);
}

static void test_markdown_attachments(void **state)
{
    (void)state;
    json_t *att = json_pack("{s:{s:s}, s:{s:s}}", "dot.png", "image/png", "iVBORw0KGgo=\n",
                            "pic.svg", "image/svg+xml", "<svg/>");
    char *h = md("![dot](attachment:dot.png) ![v](attachment:pic.svg) ![n](attachment:none.png)", att);
    assert_non_null(strstr(h, "src=\"data:image/png;base64,iVBORw0KGgo=\""));
    assert_non_null(strstr(h, "src=\"data:image/svg+xml;base64,PHN2Zy8+\""));
    assert_non_null(strstr(h, "src=\"attachment:none.png\""));   /* unknown: left alone */
    free(h);
    json_decref(att);
}

static char *render(const char *nbjson, int no_input)
{
    json_error_t je;
    json_t *nb = json_loads(nbjson, 0, &je);
    if (!nb) fail_msg("bad test notebook: %s at %d:%d", je.text, je.line, je.column);
    buf_t b = BUF_INIT;
    struct nbhtml_opts o = { "t<x>.ipynb", "/api/v1/runs/1/tasks/a/output?x=1&y=2", no_input };
    nbhtml_render(nb, &o, &b);
    json_decref(nb);
    return b.data;
}

static void test_render_outputs(void **state)
{
    (void)state;
    char *h = render(
        "{\"metadata\":{\"kernelspec\":{\"name\":\"python3\",\"display_name\":\"Python 3\"},"
        " \"papermill\":{\"parameters\":{\"day\":\"2026-12-01\"},\"duration\":1.5,\"exception\":true}},"
        " \"nbformat\":4,\"nbformat_minor\":5,\"cells\":["
        "{\"cell_type\":\"code\",\"id\":\"c1\",\"execution_count\":3,\"metadata\":{},\"source\":\"print(1 < 2)\","
        " \"outputs\":[{\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"True\\n\"},"
        "  {\"output_type\":\"stream\",\"name\":\"stderr\",\"text\":\"warn\\n\"},"
        "  {\"output_type\":\"execute_result\",\"execution_count\":3,\"metadata\":{},"
        "   \"data\":{\"text/plain\":\"<plain>\",\"image/png\":\"QUJD\\nREVG\\n\"}},"
        "  {\"output_type\":\"display_data\",\"metadata\":{},\"data\":{\"application/json\":{\"a\":[1,2]}}},"
        "  {\"output_type\":\"display_data\",\"metadata\":{},\"data\":{\"text/latex\":\"$x<1$\"}},"
        "  {\"output_type\":\"display_data\",\"metadata\":{},\"data\":{\"application/x-weird\":\"?\"}}]},"
        "{\"cell_type\":\"code\",\"id\":\"c2\",\"execution_count\":4,\"metadata\":{\"papermill\":{\"status\":\"failed\"}},"
        " \"source\":\"1/0\",\"outputs\":[{\"output_type\":\"error\",\"ename\":\"ZeroDivisionError\","
        "  \"evalue\":\"division by zero\",\"traceback\":[\"\\u001b[0;31mZeroDivisionError\\u001b[0m: division by zero\"]}]},"
        "{\"cell_type\":\"code\",\"id\":\"c3\",\"execution_count\":null,\"metadata\":{\"papermill\":{\"status\":\"pending\"}},"
        " \"source\":\"x\",\"outputs\":[]},"
        "{\"cell_type\":\"raw\",\"id\":\"r\",\"metadata\":{},\"source\":\"<raw>\"}]}", 0);
    assert_non_null(strstr(h, "<meta http-equiv=\"Content-Security-Policy\" content=\"" NBHTML_CSP "\">"));
    assert_non_null(strstr(h, "<title>t&lt;x&gt;.ipynb</title>"));
    assert_non_null(strstr(h, "href=\"/api/v1/runs/1/tasks/a/output?x=1&amp;y=2\""));
    assert_non_null(strstr(h, "<td>day</td><td>&quot;2026-12-01&quot;</td>"));
    assert_non_null(strstr(h, "In&nbsp;[3]:"));
    assert_non_null(strstr(h, "print(1 &lt; 2)"));
    assert_non_null(strstr(h, "<pre class=\"out stream\">True\n</pre>"));
    assert_non_null(strstr(h, "<pre class=\"out stream stderr\">warn\n</pre>"));
    /* PNG wins over text/plain; its base64 is copied without newlines. */
    assert_non_null(strstr(h, "src=\"data:image/png;base64,QUJDREVG\""));
    assert_null(strstr(h, "&lt;plain&gt;"));
    assert_non_null(strstr(h, "<pre class=\"out json\">{\n  &quot;a&quot;: [\n"));
    assert_non_null(strstr(h, "<span class=\"math display\">$x&lt;1$</span>"));
    assert_non_null(strstr(h, "[output of type application/x-weird not shown]"));
    assert_non_null(strstr(h, "class=\"cell code failed\" id=\"cell-c2\""));
    assert_non_null(strstr(h, "<span class=\"ansi-red-fg\">ZeroDivisionError</span>"));
    assert_non_null(strstr(h, "class=\"cell code pending\" id=\"cell-c3\""));
    assert_non_null(strstr(h, "In&nbsp;[&nbsp;]:"));
    assert_non_null(strstr(h, "<pre class=\"raw\">&lt;raw&gt;</pre>"));
    assert_non_null(strstr(h, "<strong>failed</strong>"));
    free(h);
}

/* Script injection through every channel that is not an HTML output. */
static void test_render_hostile(void **state)
{
    (void)state;
    char *h = render(
        "{\"metadata\":{\"kernelspec\":{\"name\":\"k\",\"display_name\":\"<script>alert('ks')</script>\"},"
        " \"papermill\":{\"start_time\":\"\\\"><script>alert(1)</script>\","
        "  \"parameters\":{\"<img src=x onerror=alert(2)>\":\"</td><script>alert(3)</script>\"}}},"
        " \"nbformat\":4,\"nbformat_minor\":5,\"cells\":["
        "{\"cell_type\":\"code\",\"id\":\"\\\"><script>alert(4)</script>\",\"execution_count\":1,\"metadata\":{},"
        " \"source\":\"</pre><script>alert(5)</script>\",\"outputs\":["
        "  {\"output_type\":\"stream\",\"name\":\"<x onmouseover=alert(6)>\",\"text\":\"<script>alert(7)</script>\"},"
        "  {\"output_type\":\"display_data\",\"metadata\":{},\"data\":{\"image/svg+xml\":"
        "   \"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(8)'><script>alert(9)</script></svg>\"}},"
        "  {\"output_type\":\"display_data\",\"metadata\":{},\"data\":{\"image/png\":\"\\\" onerror=\\\"alert(10)\"}},"
        "  {\"output_type\":\"error\",\"ename\":\"E\",\"evalue\":\"v\",\"traceback\":[\"<script>alert(11)</script>\"]}]},"
        "{\"cell_type\":\"markdown\",\"id\":\"m\",\"metadata\":{},\"source\":\"<script>alert(12)</script>"
        "<img src=x onerror=alert(13)> [l](javascript:alert(14)) $<script>alert(15)</script>$\"}]}", 0);
    /* Nothing but our own markup may open a script element. */
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<svg"));             /* SVG only as an <img> data URI */
    assert_null(strstr(h, "onerror=\"alert(10)"));
    assert_non_null(strstr(h, "[image data is not valid base64; not shown]"));
    assert_non_null(strstr(h, "id=\"cell-&quot;&gt;&lt;script&gt;"));
    assert_non_null(strstr(h, "&lt;/pre&gt;&lt;script&gt;alert(5)"));
    /* Raw HTML in markdown stays (as in Jupyter); its handlers and javascript:
     * links are what the document's CSP (script-src none) neutralises. */
    assert_non_null(strstr(h, "content=\"default-src 'none';"));
    free(h);

    h = render("{\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5,\"cells\":["
               "{\"cell_type\":\"code\",\"id\":\"a\",\"execution_count\":1,\"metadata\":{},\"source\":\"secret()\","
               " \"outputs\":[]}]}", 1);
    assert_null(strstr(h, "secret()"));        /* report mode */
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_ansi),
        cmocka_unit_test(test_markdown_math),
        cmocka_unit_test(test_markdown_gfm_and_html),
        cmocka_unit_test(test_markdown_attachments),
        cmocka_unit_test(test_render_outputs),
        cmocka_unit_test(test_render_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
