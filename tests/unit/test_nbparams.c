/* Unit tests for nbparams.  The translation, -p typing and inspection
 * vectors were produced by papermill 2.7.0 itself (translate_parameters,
 * cli._resolve_type, inspection._infer_parameters) and pasted here; values
 * JSON cannot hold are written as yamljson's pynum stand-in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nbparams.h"
#include "util/yamljson.h"

struct tvec { const char *lang, *params, *expected; int not_implemented; };
struct rvec { const char *value, *expected_json; };
struct ivec { const char *source, *expected_json; };

static const struct tvec tvecs[] = {
    { "python", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "# Parameters\nalpha = 0.6\nratio = 0.1\nn = 10\nname = \"hello\"\nflag = True\noff = False\nnothing = None\n", 0 },
    { "R", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "# Parameters\nalpha = 0.6\nratio = 0.1\nn = 10\nname = \"hello\"\nflag = TRUE\noff = FALSE\nnothing = NULL\n", 0 },
    { "scala", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "// Parameters\nval alpha = 0.6\nval ratio = 0.1\nval n = 10\nval name = \"hello\"\nval flag = true\nval off = false\nval nothing = None\n", 0 },
    { "julia", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "# Parameters\nalpha = 0.6\nratio = 0.1\nn = 10\nname = \"hello\"\nflag = true\noff = false\nnothing = nothing\n", 0 },
    { "matlab", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "% Parameters\nalpha = 0.6;\nratio = 0.1;\nn = 10;\nname = \"hello\";\nflag = true;\noff = false;\nnothing = NaN;\n", 0 },
    { ".net-csharp", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "Option type not implemented for C#.", 1 },
    { ".net-fsharp", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "(* Parameters *)\nlet alpha = 0.6\nlet ratio = 0.1\nlet n = 10\nlet name = \"hello\"\nlet flag = true\nlet off = false\nlet nothing = None\n", 0 },
    { ".net-powershell", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "# Parameters\n$alpha = 0.6\n$ratio = 0.1\n$n = 10\n$name = \"hello\"\n$flag = $True\n$off = $False\n$nothing = $Null\n", 0 },
    { "bash", "{\"alpha\": 0.6, \"ratio\": 0.1, \"n\": 10, \"name\": \"hello\", \"flag\": true, \"off\": false, \"nothing\": null}",
      "# Parameters\nalpha=0.6\nratio=0.1\nn=10\nname=hello\nflag=true\noff=false\nnothing=\n", 0 },
    { "python", "{\"s\": \"a\\\"b'c\\\\d\\te\\nf\\rg\\u0001h\177\303\251\342\200\250\360\237\230\200 \303\274\", \"e\": \"\"}",
      "# Parameters\ns = \"a\\\"b'c\\\\d\\te\\nf\\rg\\x01h\\x7f\\xe9\\u2028\\U0001f600 \\xfc\"\ne = \"\"\n", 0 },
    { "matlab", "{\"s\": \"a\\\"b'c\\\\d\\te\\nf\\rg\\u0001h\177\303\251\342\200\250\360\237\230\200 \303\274\", \"e\": \"\"}",
      "% Parameters\ns = \"a\"\"b'c\\\\d\\te\\nf\\rg\\x01h\\x7f\\xe9\\u2028\\U0001f600 \\xfc\";\ne = \"\";\n", 0 },
    { ".net-powershell", "{\"s\": \"a\\\"b'c\\\\d\\te\\nf\\rg\\u0001h\177\303\251\342\200\250\360\237\230\200 \303\274\", \"e\": \"\"}",
      "# Parameters\n$s = \"a`\"b'c\\\\d\\te\\nf\\rg\\x01h\\x7f\\xe9\\u2028\\U0001f600 \\xfc\"\n$e = \"\"\n", 0 },
    { "bash", "{\"s\": \"a\\\"b'c\\\\d\\te\\nf\\rg\\u0001h\177\303\251\342\200\250\360\237\230\200 \303\274\", \"e\": \"\"}",
      "# Parameters\ns='a\"b'\"'\"'c\\d\011e\nf\015g\001h\177\303\251\342\200\250\360\237\230\200 \303\274'\ne=''\n", 0 },
    { "R", "{\"s\": \"a\\\"b'c\\\\d\\te\\nf\\rg\\u0001h\177\303\251\342\200\250\360\237\230\200 \303\274\", \"e\": \"\"}",
      "# Parameters\ns = \"a\\\"b'c\\\\d\\te\\nf\\rg\\x01h\\x7f\\xe9\\u2028\\U0001f600 \\xfc\"\ne = \"\"\n", 0 },
    { "bash", "{\"sh\": [\"safe_-+=:,./@%\", \"has space\", \"it's\", \"\303\251\", \"$HOME\"]}",
      "# Parameters\nsh=(safe_-+=:,./@% 'has space' 'it'\"'\"'s' '\303\251' '$HOME')\n", 0 },
    { "python", "{\"f\": [1.0, 1e+16, 1000000000000000.0, 0.0001, 1e-05, -0.0, 1.5e+300, 123456789.123, 0.3, 3e-10, 5e-324, 2.2250738585072014e-308, 0.3333333333333333]}",
      "# Parameters\nf = [1.0, 1e+16, 1000000000000000.0, 0.0001, 1e-05, -0.0, 1.5e+300, 123456789.123, 0.3, 3e-10, 5e-324, 2.2250738585072014e-308, 0.3333333333333333]\n", 0 },
    { "python", "{\"big\": [2147483647, 2147483648, -2147483648, -2147483649, 9223372036854775807, {\"__nbhub_pynum__\": \"99999999999999999999999\"}]}",
      "# Parameters\nbig = [2147483647, 2147483648, -2147483648, -2147483649, 9223372036854775807, 99999999999999999999999]\n", 0 },
    { "scala", "{\"big\": [2147483647, 2147483648, -2147483648, -2147483649, 9223372036854775807, {\"__nbhub_pynum__\": \"99999999999999999999999\"}]}",
      "// Parameters\nval big = Seq(2147483647, 2147483648L, -2147483648, -2147483649L, 9223372036854775807L, 99999999999999999999999L)\n", 0 },
    { ".net-csharp", "{\"big\": [2147483647, 2147483648, -2147483648, -2147483649, 9223372036854775807, {\"__nbhub_pynum__\": \"99999999999999999999999\"}]}",
      "// Parameters\nvar big = new [] { 2147483647, 2147483648L, -2147483648, -2147483649L, 9223372036854775807L, 99999999999999999999999L };\n", 0 },
    { ".net-fsharp", "{\"big\": [2147483647, 2147483648, -2147483648, -2147483649, 9223372036854775807, {\"__nbhub_pynum__\": \"99999999999999999999999\"}]}",
      "(* Parameters *)\nlet big = [ 2147483647; 2147483648L; -2147483648; -2147483649L; 9223372036854775807L; 99999999999999999999999L ]\n", 0 },
    { "python", "{\"nf\": [{\"__nbhub_pynum__\": \"inf\"}, {\"__nbhub_pynum__\": \"-inf\"}, {\"__nbhub_pynum__\": \"nan\"}]}",
      "# Parameters\nnf = [float('inf'), float('-inf'), float('nan')]\n", 0 },
    { ".net-powershell", "{\"nf\": [{\"__nbhub_pynum__\": \"inf\"}, {\"__nbhub_pynum__\": \"-inf\"}, {\"__nbhub_pynum__\": \"nan\"}]}",
      "# Parameters\n$nf = @([double]::PositiveInfinity, [double]::NegativeInfinity, [double]::NaN)\n", 0 },
    { "R", "{\"nf\": [{\"__nbhub_pynum__\": \"inf\"}, {\"__nbhub_pynum__\": \"-inf\"}, {\"__nbhub_pynum__\": \"nan\"}]}",
      "# Parameters\nnf = list(inf, -inf, nan)\n", 0 },
    { "julia", "{\"nf\": [{\"__nbhub_pynum__\": \"inf\"}, {\"__nbhub_pynum__\": \"-inf\"}, {\"__nbhub_pynum__\": \"nan\"}]}",
      "# Parameters\nnf = [inf, -inf, nan]\n", 0 },
    { "python", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "# Parameters\nd = {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}\n", 0 },
    { "R", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "# Parameters\nd = list(\"a\" = 1, \"b c\" = list(1, \"two\", list(\"x\" = 1.5)), \"q\\\"'\" = \"it's\")\n", 0 },
    { "scala", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "// Parameters\nval d = Map(\"a\" -> 1, \"b c\" -> Seq(1, \"two\", Map(\"x\" -> 1.5)), \"q\\\"'\" -> \"it's\")\n", 0 },
    { "julia", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "# Parameters\nd = Dict(\"a\" => 1, \"b c\" => [1, \"two\", Dict(\"x\" => 1.5)], \"q\\\"'\" => \"it's\")\n", 0 },
    { "matlab", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "% Parameters\nd = containers.Map({'a', 'b c', 'q\"'''}, {1, {1, \"two\", containers.Map({'x'}, {1.5})}, \"it's\"});\n", 0 },
    { ".net-csharp", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "// Parameters\nvar d = new Dictionary<string,Object>{ { \"a\" , 1 }, { \"b c\" , new [] { 1, \"two\", new Dictionary<string,Object>{ { \"x\" , 1.5 } } } }, { \"q\\\"'\" , \"it's\" } };\n", 0 },
    { ".net-fsharp", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "(* Parameters *)\nlet d = [ (\"a\", 1 :> IComparable); (\"b c\", [ 1; \"two\"; [ (\"x\", 1.5 :> IComparable) ] |> Map.ofList ] :> IComparable); (\"q\\\"'\", \"it's\" :> IComparable) ] |> Map.ofList\n", 0 },
    { ".net-powershell", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "# Parameters\n$d = @{\"a\" = 1\n \"b c\" = @(1, \"two\", @{\"x\" = 1.5})\n \"q`\"'\" = \"it's\"}\n", 0 },
    { "bash", "{\"d\": {\"a\": 1, \"b c\": [1, \"two\", {\"x\": 1.5}], \"q\\\"'\": \"it's\"}}",
      "dict type translation not implemented for <class 'papermill.translators.BashTranslator'>", 1 },
    { "R", "{\"_under\": 1, \"__x\": 2, \"y_\": 3}",
      "# Parameters\nunder = 1\nx = 2\ny_ = 3\n", 0 },
    { "python", "{\"_under\": 1, \"__x\": 2, \"y_\": 3}",
      "# Parameters\n_under = 1\n__x = 2\ny_ = 3\n", 0 },
    { "python", "{}",
      "# Parameters\n", 0 },
    { ".net-fsharp", "{}",
      "(* Parameters *)\n", 0 },
    { "matlab", "{}",
      "% Parameters\n", 0 },
    { "python", "{\"l\": [], \"d\": {}}",
      "# Parameters\nl = []\nd = {}\n", 0 },
    { "R", "{\"l\": [], \"d\": {}}",
      "# Parameters\nl = list()\nd = list()\n", 0 },
    { "scala", "{\"l\": [], \"d\": {}}",
      "// Parameters\nval l = Seq()\nval d = Map()\n", 0 },
    { "julia", "{\"l\": [], \"d\": {}}",
      "# Parameters\nl = []\nd = Dict()\n", 0 },
    { "matlab", "{\"l\": [], \"d\": {}}",
      "% Parameters\nl = {};\nd = containers.Map({}, {});\n", 0 },
    { ".net-csharp", "{\"l\": [], \"d\": {}}",
      "// Parameters\nvar l = new [] {  };\nvar d = new Dictionary<string,Object>{  };\n", 0 },
    { ".net-fsharp", "{\"l\": [], \"d\": {}}",
      "(* Parameters *)\nlet l = [  ]\nlet d = [  ] |> Map.ofList\n", 0 },
    { ".net-powershell", "{\"l\": [], \"d\": {}}",
      "# Parameters\n$l = @()\n$d = @{}\n", 0 },
    { "bash", "{\"l\": [], \"d\": {}}",
      "dict type translation not implemented for <class 'papermill.translators.BashTranslator'>", 1 },
};

static const struct rvec rvecs[] = {
    { "True", "true" },
    { "False", "false" },
    { "None", "null" },
    { "true", "\"true\"" },
    { "none", "\"none\"" },
    { "1", "1" },
    { "-1", "-1" },
    { "+7", "7" },
    { " 42 ", "42" },
    { "1_000", "1000" },
    { "1__0", "\"1__0\"" },
    { "_1", "\"_1\"" },
    { "007", "7" },
    { "0x10", "\"0x10\"" },
    { "1.5", "1.5" },
    { "1.", "1.0" },
    { ".5", "0.5" },
    { "1e3", "1000.0" },
    { "1E-3", "0.001" },
    { "1_0.5", "10.5" },
    { "inf", "{\"__nbhub_pynum__\": \"inf\"}" },
    { "-Infinity", "{\"__nbhub_pynum__\": \"-inf\"}" },
    { "nan", "{\"__nbhub_pynum__\": \"nan\"}" },
    { "NaN", "{\"__nbhub_pynum__\": \"nan\"}" },
    { "1e999", "{\"__nbhub_pynum__\": \"inf\"}" },
    { "99999999999999999999", "{\"__nbhub_pynum__\": \"99999999999999999999\"}" },
    { "9223372036854775807", "9223372036854775807" },
    { "-9223372036854775808", "-9223372036854775808" },
    { "abc", "\"abc\"" },
    { "", "\"\"" },
    { "1.5.5", "\"1.5.5\"" },
    { "0.1", "0.1" },
    { "\303\251t\303\251", "\"\303\251t\303\251\"" },
    { "1 2", "\"1 2\"" },
};
static const struct ivec ivecs[] = {
    { "a = 1\nb = 'x'  # help text\n",
      "[{\"name\": \"a\", \"inferred_type_name\": \"None\", \"default\": \"1\", \"help\": \"\"}, {\"name\": \"b\", \"inferred_type_name\": \"None\", \"default\": \"'x'\", \"help\": \"help text\"}]" },
    { "# comment\n\nx: int = 3\ny: 'List[str]' = ['a']  # the list\nz = 2 # type: float help here\n",
      "[{\"name\": \"x\", \"inferred_type_name\": \"int\", \"default\": \"3\", \"help\": \"\"}, {\"name\": \"y\", \"inferred_type_name\": \"List[str]\", \"default\": \"['a']\", \"help\": \"the list\"}, {\"name\": \"z\", \"inferred_type_name\": \"float\", \"default\": \"2\", \"help\": \"help here\"}]" },
    { "d = {\n    'a': 1,  # inner comment\n    'b': 2,\n}  # dict help\n",
      "[{\"name\": \"d\", \"inferred_type_name\": \"None\", \"default\": \"{'a': 1,'b': 2,}\", \"help\": \"dict help\"}]" },
    { "a = b = 1\nc = 2\n",
      "[{\"name\": \"c\", \"inferred_type_name\": \"None\", \"default\": \"2\", \"help\": \"\"}]" },
    { "x = 'a#b'\n",
      "[{\"name\": \"x\", \"inferred_type_name\": \"None\", \"default\": \"'a\", \"help\": \"b'\"}]" },
    { "x = 1 #   type:   int   the help  \n",
      "[{\"name\": \"x\", \"inferred_type_name\": \"int\", \"default\": \"1\", \"help\": \"the help\"}]" },
    { "x : Dict[str, int] = {}  # mapping\n",
      "[{\"name\": \"x\", \"inferred_type_name\": \"Dict[str, int]\", \"default\": \"{}\", \"help\": \"mapping\"}]" },
    { "a = 1\015\nb = 2\015c = 3\013d = 4\n",
      "[{\"name\": \"a\", \"inferred_type_name\": \"None\", \"default\": \"1\", \"help\": \"\"}, {\"name\": \"b\", \"inferred_type_name\": \"None\", \"default\": \"2\", \"help\": \"\"}, {\"name\": \"c\", \"inferred_type_name\": \"None\", \"default\": \"3\", \"help\": \"\"}, {\"name\": \"d\", \"inferred_type_name\": \"None\", \"default\": \"4\", \"help\": \"\"}]" },
    { "\303\251 = 1\n",
      "[{\"name\": \"\303\251\", \"inferred_type_name\": \"None\", \"default\": \"1\", \"help\": \"\"}]" },
    { "x: a b'c = 1\n",
      "[]" },
    { "",
      "[]" },
};


static json_t *load(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v)
        fail_msg("bad test JSON: %s: %s", je.text, text);
    return v;
}

static void test_translate_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof tvecs / sizeof *tvecs; i++) {
        json_t *params = load(tvecs[i].params);
        char *out = NULL;
        nb_err_t err = { 0, "" };
        int rc = nbparams_translate(params, tvecs[i].lang, &out, &err);
        if (tvecs[i].not_implemented) {
            assert_int_equal(rc, -ENOTSUP);
            assert_string_equal(err.msg, tvecs[i].expected);
            assert_null(out);
        } else {
            if (rc != 0)
                fail_msg("vector %zu (%s): %s", i, tvecs[i].lang, err.msg);
            assert_string_equal(out, tvecs[i].expected);
        }
        free(out);
        json_decref(params);
    }
}

static void test_translate_aliases_and_errors(void **state)
{
    (void)state;
    json_t *p = load("{\"x\": 1.5}");
    char *out;
    nb_err_t err;
    /* The spark kernels reuse the python/scala/R translators. */
    assert_int_equal(nbparams_translate(p, "pysparkkernel", &out, &err), 0);
    assert_string_equal(out, "# Parameters\nx = 1.5\n");
    free(out);
    assert_int_equal(nbparams_translate(p, "sparkkernel", &out, &err), 0);
    assert_string_equal(out, "// Parameters\nval x = 1.5\n");
    free(out);
    assert_int_equal(nbparams_translate(p, "sparkrkernel", &out, &err), 0);
    assert_string_equal(out, "# Parameters\nx = 1.5\n");
    free(out);
    /* The registry is case-sensitive, like papermill's dict. */
    assert_int_equal(nbparams_translate(p, "r", &out, &err), -ENOTSUP);
    assert_int_equal(nbparams_translate(p, "cobol", &out, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "'cobol'"));
    json_t *arr = load("[1]");
    assert_int_equal(nbparams_translate(arr, "python", &out, &err), -EINVAL);
    json_decref(arr);
    json_decref(p);
}

/* Parameter names are code in the cell: only identifiers of the language
 * (issue 16: papermill writes "x=1\nimport os; os.system(...)\ny" as is). */
static void test_parameter_names(void **state)
{
    (void)state;
    nb_err_t err;
    struct { const char *lang, *name; int ok; } v[] = {
        { "python", "x", 1 }, { "python", "_x1", 1 }, { "python", "caf\xc3\xa9", 1 },
        { "python", "\xce\xb1\xce\xb2", 1 }, { "python", "\xe5\x90\x8d\xe5\x89\x8d", 1 },
        { "python", "x=1\nimport os; os.system('id')\ny", 0 }, { "python", "", 0 },
        { "python", "1x", 0 }, { "python", "a b", 0 }, { "python", "a.b", 0 },
        { "python", "class", 0 }, { "python", "None", 0 }, { "python", "a\xe2\x80\xae", 0 },
        { "python", "a\xc2\xa0", 0 }, { "python", "x\xef\xbb\xbf", 0 },
        { "python", "\xcc\x81x", 0 }, { "python", "a\xff", 0 }, { "python", "a\xc0\x80", 0 },
        { "python", "x;y", 0 }, { "python", "x#", 0 }, { "python", "match", 1 },
        { "pysparkkernel", "x)\nprint(1", 0 },
        { "R", "x.y", 1 }, { "R", ".x", 1 }, { "R", "._", 1 }, { "R", "_x", 1 }, { "R", "__", 0 },
        { "R", ".1x", 0 }, { "R", "if", 0 }, { "R", "TRUE", 0 }, { "R", "x <- 1; y", 0 },
        { "sparkrkernel", "a`b", 0 },
        { "scala", "x1", 1 }, { "scala", "val", 0 }, { "scala", "x$", 0 }, { "sparkkernel", "type", 0 },
        { "julia", "x!", 1 }, { "julia", "!x", 0 }, { "julia", "end", 0 },
        { "matlab", "x_1", 1 }, { "matlab", "_x", 0 }, { "matlab", "end", 0 },
        { "matlab", "a123456789012345678901234567890123456789012345678901234567890123", 0 },
        { ".net-csharp", "x", 1 }, { ".net-csharp", "int", 0 },
        { ".net-fsharp", "x", 1 }, { ".net-fsharp", "let", 0 },
        { ".net-powershell", "x", 1 }, { ".net-powershell", "x;rm", 0 },
        { "bash", "X_1", 1 }, { "bash", "x$(id)", 0 }, { "bash", "caf\xc3\xa9", 0 },
        { "bash", "if", 1 },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        int rc = nbparams_check_name(v[i].name, v[i].lang, &err);
        if ((rc == 0) != v[i].ok)
            fail_msg("%s %s: %d (%s)", v[i].lang, v[i].name, rc, rc ? err.msg : "");
    }
    assert_int_equal(nbparams_check_name("x", "cobol", &err), -ENOTSUP);

    /* translate and inject refuse too, with a message naming the language */
    json_t *p = json_object();
    json_object_set_new(p, "x=1\nimport os; os.system('id')\ny", json_integer(2));
    char *out = NULL;
    assert_int_equal(nbparams_translate(p, "python", &out, &err), -EINVAL);
    assert_null(out);
    assert_non_null(strstr(err.msg, "not a valid Python identifier"));
    assert_non_null(strstr(err.msg, "x=1\\nimport os"));
    assert_int_equal(nbparams_check_names(p, "python", &err), -EINVAL);
    json_decref(p);
    p = load("{\"ok\": 1, \"for\": 2}");
    assert_int_equal(nbparams_translate(p, "python", &out, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "reserved word"));
    json_decref(p);
}

static void test_find_translator(void **state)
{
    (void)state;
    const char *key = NULL;
    nb_err_t err;
    /* Kernel name wins over language, as in find_translator. */
    assert_int_equal(nbparams_find_translator("pysparkkernel", "scala", &key, &err), 0);
    assert_string_equal(key, "pysparkkernel");
    assert_int_equal(nbparams_find_translator("python3", "python", &key, &err), 0);
    assert_string_equal(key, "python");
    assert_int_equal(nbparams_find_translator("ir", "R", &key, &err), 0);
    assert_string_equal(key, "R");
    assert_int_equal(nbparams_find_translator(".net-csharp", "C#", &key, &err), 0);
    assert_string_equal(key, ".net-csharp");
    assert_int_equal(nbparams_find_translator("k", NULL, &key, &err), -ENOTSUP);
    assert_string_equal(err.msg,
                        "No parameter translator functions specified for kernel 'k' or language 'None'");
}

static void test_resolve_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rvecs / sizeof *rvecs; i++) {
        json_t *got = nbparams_resolve_type(rvecs[i].value);
        json_t *exp = load(rvecs[i].expected_json);
        if (!json_equal(got, exp)) {
            char *g = json_dumps(got, JSON_ENCODE_ANY);
            fail_msg("resolve_type(\"%s\") = %s, want %s", rvecs[i].value, g, rvecs[i].expected_json);
        }
        json_decref(got);
        json_decref(exp);
    }
    /* Not UTF-8: still a string (papermill gets surrogate escapes here). */
    json_t *v = nbparams_resolve_type("a\xff");
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), "a\xef\xbf\xbd");
    json_decref(v);
}

/* A notebook with the given cell tags ("" = untagged), nbformat 4.minor. */
static json_t *make_nb(int minor, const char *const *tags, size_t n)
{
    json_t *cells = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *md = json_object();
        if (tags[i][0])
            json_object_set_new(md, "tags", json_pack("[s]", tags[i]));
        json_array_append_new(cells, json_pack("{ss, so, ss, s[], sn}", "cell_type", "code",
                                               "metadata", md, "source", tags[i], "outputs",
                                               "execution_count"));
    }
    return json_pack("{so, s{}, si, si}", "cells", cells, "metadata", "nbformat", 4,
                     "nbformat_minor", minor);
}

static const char *cell_source(json_t *nb, size_t i)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(nb, "cells"), i), "source"));
}

static void test_inject_after_parameters(void **state)
{
    (void)state;
    const char *tags[] = { "", "parameters", "" };
    json_t *nb = make_nb(5, tags, 3);
    json_t *params = load("{\"alpha\": 0.6, \"n\": 3}");
    int warned = -1;
    nb_err_t err;
    assert_int_equal(nbparams_inject(nb, params, "python", 0, &warned, &err), 0);
    assert_int_equal(warned, 0);
    json_t *cells = json_object_get(nb, "cells");
    assert_int_equal(json_array_size(cells), 4);
    assert_string_equal(cell_source(nb, 1), "parameters");
    json_t *c = json_array_get(cells, 2);
    assert_string_equal(json_string_value(json_object_get(c, "source")),
                        "# Parameters\nalpha = 0.6\nn = 3\n");
    assert_string_equal(json_string_value(json_object_get(c, "cell_type")), "code");
    assert_true(json_is_null(json_object_get(c, "execution_count")));
    assert_int_equal(json_array_size(json_object_get(c, "outputs")), 0);
    json_t *want_md = load("{\"tags\": [\"injected-parameters\"]}");
    assert_true(json_equal(json_object_get(c, "metadata"), want_md));
    json_decref(want_md);
    /* nbformat 4.5: an 8-hex-digit id. */
    const char *id = json_string_value(json_object_get(c, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 8);
    assert_int_equal(strspn(id, "0123456789abcdef"), 8);
    /* metadata.papermill.parameters is a copy. */
    json_t *stored = json_object_get(json_object_get(json_object_get(nb, "metadata"), "papermill"),
                                     "parameters");
    assert_true(json_equal(stored, params));
    assert_ptr_not_equal(stored, params);
    json_decref(params);
    json_decref(nb);
}

static void test_inject_replaces_injected(void **state)
{
    (void)state;
    /* papermill replaces the old injected cell where it is, even when the
     * parameters cell is elsewhere. */
    const char *tags[] = { "injected-parameters", "", "parameters", "" };
    json_t *nb = make_nb(4, tags, 4);
    json_t *params = load("{\"x\": \"y\"}");
    int warned = -1;
    assert_int_equal(nbparams_inject(nb, params, "R", 0, &warned, NULL), 0);
    assert_int_equal(warned, 0);
    json_t *cells = json_object_get(nb, "cells");
    assert_int_equal(json_array_size(cells), 4);
    assert_string_equal(cell_source(nb, 0), "# Parameters\nx = \"y\"\n");
    assert_string_equal(cell_source(nb, 2), "parameters");
    /* nbformat 4.4: no id. */
    assert_null(json_object_get(json_array_get(cells, 0), "id"));
    /* A second injection replaces the first again. */
    assert_int_equal(nbparams_inject(nb, params, "python", 0, &warned, NULL), 0);
    assert_int_equal(json_array_size(cells), 4);
    assert_string_equal(cell_source(nb, 0), "# Parameters\nx = \"y\"\n");
    json_decref(params);
    json_decref(nb);
}

static void test_inject_top_and_report_mode(void **state)
{
    (void)state;
    const char *tags[] = { "", "other" };
    json_t *nb = make_nb(5, tags, 2);
    json_object_set_new(json_object_get(nb, "metadata"), "papermill", json_pack("{ss}", "keep", "me"));
    json_t *params = load("{\"x\": [1, null]}");
    int warned = 0;
    assert_int_equal(nbparams_inject(nb, params, "python", 1, &warned, NULL), 0);
    assert_int_equal(warned, 1);
    assert_string_equal(cell_source(nb, 0), "# Parameters\nx = [1, None]\n");
    assert_string_equal(cell_source(nb, 1), "");
    json_t *md = json_object_get(json_array_get(json_object_get(nb, "cells"), 0), "metadata");
    json_t *want = load("{\"jupyter\": {\"source_hidden\": true}, \"tags\": [\"injected-parameters\"]}");
    assert_true(json_equal(md, want));
    json_decref(want);
    json_t *pm = json_object_get(json_object_get(nb, "metadata"), "papermill");
    assert_string_equal(json_string_value(json_object_get(pm, "keep")), "me");
    assert_true(json_equal(json_object_get(pm, "parameters"), params));
    json_decref(params);
    json_decref(nb);
}

static void test_inject_errors(void **state)
{
    (void)state;
    const char *tags[] = { "parameters" };
    json_t *nb = make_nb(5, tags, 1);
    json_t *params = load("{\"d\": {\"a\": 1}}");
    nb_err_t err;
    /* Translation fails before the notebook is touched. */
    assert_int_equal(nbparams_inject(nb, params, "bash", 0, NULL, &err), -ENOTSUP);
    assert_int_equal(json_array_size(json_object_get(nb, "cells")), 1);
    assert_null(json_object_get(json_object_get(nb, "metadata"), "papermill"));
    json_t *bad = load("{\"cells\": 3}");
    assert_int_equal(nbparams_inject(bad, params, "python", 0, NULL, &err), -EINVAL);
    json_decref(bad);
    json_decref(params);
    json_decref(nb);
}

static json_t *nb_with_params_source(const char *src)
{
    const char *tags[] = { "", "parameters" };
    json_t *nb = make_nb(5, tags, 2);
    json_object_set_new(json_array_get(json_object_get(nb, "cells"), 1), "source", json_string(src));
    return nb;
}

static void test_inspect_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ivecs / sizeof *ivecs; i++) {
        json_t *nb = nb_with_params_source(ivecs[i].source);
        json_t *got = nbparams_inspect(nb, "python");
        json_t *exp = load(ivecs[i].expected_json);
        if (!json_equal(got, exp)) {
            char *g = json_dumps(got, 0);
            fail_msg("inspect vector %zu: got %s, want %s", i, g, ivecs[i].expected_json);
        }
        json_decref(got);
        json_decref(exp);
        json_decref(nb);
    }
}

static void test_inspect_other_cases(void **state)
{
    (void)state;
    json_t *nb = nb_with_params_source("a = 1\n");
    /* Only the Python translator inspects. */
    assert_true(nbparams_can_inspect("python"));
    assert_true(nbparams_can_inspect("pysparkkernel"));
    assert_false(nbparams_can_inspect("R"));
    assert_false(nbparams_can_inspect("nope"));
    json_t *r = nbparams_inspect(nb, "R");
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
    json_decref(nb);
    /* No parameters cell. */
    const char *tags[] = { "", "x" };
    nb = make_nb(5, tags, 2);
    r = nbparams_inspect(nb, "python");
    assert_true(json_is_array(r));
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
    json_decref(nb);
}

static void test_unknown(void **state)
{
    (void)state;
    json_t *nb = nb_with_params_source("alpha = 0.1  # learning rate\nbeta: int = 2\n");
    json_t *params = load("{\"gamma\": 1, \"alpha\": 2, \"delta\": 3, \"beta\": 4}");
    json_t *u = nbparams_unknown(nb, params, "python");
    json_t *want = load("[\"gamma\", \"delta\"]");
    assert_true(json_equal(u, want));
    json_decref(u);
    /* A language papermill cannot inspect: every name is unknown. */
    u = nbparams_unknown(nb, params, "R");
    assert_int_equal(json_array_size(u), 4);
    json_decref(u);
    json_decref(want);
    json_decref(params);
    json_decref(nb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_translate_vectors),
        cmocka_unit_test(test_translate_aliases_and_errors),
        cmocka_unit_test(test_parameter_names),
        cmocka_unit_test(test_find_translator),
        cmocka_unit_test(test_resolve_type),
        cmocka_unit_test(test_inject_after_parameters),
        cmocka_unit_test(test_inject_replaces_injected),
        cmocka_unit_test(test_inject_top_and_report_mode),
        cmocka_unit_test(test_inject_errors),
        cmocka_unit_test(test_inspect_vectors),
        cmocka_unit_test(test_inspect_other_cases),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
