/*
 * nbparams — papermill's parameters, ported from papermill 2.7.0.
 *
 * papermill's translators are a class hierarchy where each language
 * overrides a few methods (how None prints, how a dict opens, how a string
 * is escaped).  Here that is one declarative table row per registry key, and
 * a single translate_value() that reads the row; the special cases that are
 * not just different punctuation (MATLAB's dict, bash's shlex quoting, the
 * NotImplementedError cases) are flags on the row.
 *
 * Values are printed the way Python's f'{val}' prints them, since that is
 * what every translator falls back on: repr() for floats (shared with
 * yamljson), True/False, and strings escaped with the 'unicode_escape'
 * codec, which is *not* repr(): it never switches quotes, escapes only
 * backslash, \t \n \r, and non-ASCII (\xNN, \uNNNN, \UNNNNNNNN).
 *
 * Inspection ports PythonTranslator.inspect: grouping of lines around '='
 * and its PARAMETER_PATTERN regex, matched by hand below.  The regex's \w is
 * Unicode-aware in Python; here non-ASCII code points count as word
 * characters except whitespace and the common punctuation/symbol blocks —
 * exact for Latin-1 and every realistic identifier, approximate beyond.
 */
#include "notebook/nbparams.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

enum str_style { STR_BACKSLASH, STR_MATLAB, STR_POWERSHELL, STR_SHLEX };
enum nonfinite_style { NF_RAW, NF_PYTHON, NF_POWERSHELL };

typedef struct translator {
    const char *key;
    const char *cls;              /* papermill class name, for its error messages */
    const char *comment_open, *comment_close;
    const char *assign_prefix, *assign_sep, *assign_suffix;
    int         strip_underscores;    /* R: leading '_' is not a legal name */
    const char *none;                 /* NULL: NotImplementedError (C#) */
    const char *true_, *false_;
    int         long_suffix;          /* ints outside int32 get "L" */
    enum nonfinite_style nonfinite;
    enum str_style str;
    /* dict: open ITEM_PRE key KV_SEP value ITEM_POST [SEP ...] close;
     * dict_open NULL means "not implemented" (bash). */
    const char *dict_open, *dict_item_pre, *dict_kv, *dict_item_post, *dict_sep, *dict_close;
    int         dict_matlab;          /* containers.Map({keys}, {values}) */
    const char *list_open, *list_sep, *list_close;
} translator_t;

#define PY_ROW(key_)                                                                        \
    { key_, "PythonTranslator", "# ", "", "", " = ", "", 0, "None", "True", "False", 0,     \
      NF_PYTHON, STR_BACKSLASH, "{", "", ": ", "", ", ", "}", 0, "[", ", ", "]" }
#define R_ROW(key_)                                                                         \
    { key_, "RTranslator", "# ", "", "", " = ", "", 1, "NULL", "TRUE", "FALSE", 0, NF_RAW,  \
      STR_BACKSLASH, "list(", "", " = ", "", ", ", ")", 0, "list(", ", ", ")" }
#define SCALA_ROW(key_)                                                                     \
    { key_, "ScalaTranslator", "// ", "", "val ", " = ", "", 0, "None", "true", "false", 1, \
      NF_RAW, STR_BACKSLASH, "Map(", "", " -> ", "", ", ", ")", 0, "Seq(", ", ", ")" }

/* papermill's registry, in its registration order. */
static const translator_t translators[] = {
    PY_ROW("python"),
    R_ROW("R"),
    SCALA_ROW("scala"),
    { "julia", "JuliaTranslator", "# ", "", "", " = ", "", 0, "nothing", "true", "false", 0,
      NF_RAW, STR_BACKSLASH, "Dict(", "", " => ", "", ", ", ")", 0, "[", ", ", "]" },
    { "matlab", "MatlabTranslator", "% ", "", "", " = ", ";", 0, "NaN", "true", "false", 0,
      NF_RAW, STR_MATLAB, "", "", "", "", "", "", 1, "{", ", ", "}" },
    { ".net-csharp", "CSharpTranslator", "// ", "", "var ", " = ", ";", 0, NULL, "true", "false",
      1, NF_RAW, STR_BACKSLASH, "new Dictionary<string,Object>{ ", "{ ", " , ", " }", ", ", " }",
      0, "new [] { ", ", ", " }" },
    { ".net-fsharp", "FSharpTranslator", "(* ", " *)", "let ", " = ", "", 0, "None", "true",
      "false", 1, NF_RAW, STR_BACKSLASH, "[ ", "(", ", ", " :> IComparable)", "; ",
      " ] |> Map.ofList", 0, "[ ", "; ", " ]" },
    { ".net-powershell", "PowershellTranslator", "# ", "", "$", " = ", "", 0, "$Null", "$True",
      "$False", 0, NF_POWERSHELL, STR_POWERSHELL, "@{", "", " = ", "", "\n ", "}", 0, "@(", ", ",
      ")" },
    PY_ROW("pysparkkernel"),
    SCALA_ROW("sparkkernel"),
    R_ROW("sparkrkernel"),
    { "bash", "BashTranslator", "# ", "", "", "=", "", 0, "", "true", "false", 0, NF_RAW,
      STR_SHLEX, NULL, NULL, NULL, NULL, NULL, NULL, 0, "(", " ", ")" },
};

static const translator_t *find(const char *key)
{
    if (!key)
        return NULL;
    for (size_t i = 0; i < sizeof translators / sizeof *translators; i++)
        if (strcmp(translators[i].key, key) == 0)
            return &translators[i];
    return NULL;
}

int nbparams_find_translator(const char *kernel_name, const char *language, const char **key,
                             nb_err_t *err)
{
    const translator_t *t = find(kernel_name);
    if (!t)
        t = find(language);
    if (!t)
        return err_set(err, -ENOTSUP,
                       "No parameter translator functions specified for kernel '%s' or language '%s'",
                       kernel_name ? kernel_name : "None", language ? language : "None");
    *key = t->key;
    return 0;
}

static int not_supported(const char *language, nb_err_t *err)
{
    return err_set(err, -ENOTSUP,
                   "No parameter translator functions specified for kernel '%s' or language '%s'",
                   language ? language : "None", language ? language : "None");
}

/* ---- -p typing ---------------------------------------------------------- */

/* A JSON string of arbitrary bytes: invalid UTF-8 bytes become U+FFFD. */
static json_t *string_lossy(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    buf_t b = BUF_INIT;
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t len = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 ? 2 : (*u & 0xf0) == 0xe0 ? 3
                   : (*u & 0xf8) == 0xf0 ? 4 : 0;
        size_t i = 1;
        while (len && i < len && (u[i] & 0xc0) == 0x80)
            i++;
        char one[8] = "";
        if (len && i == len) {
            memcpy(one, u, len);
            json_t *ok = json_string(one);   /* rejects overlongs, surrogates */
            if (ok) {
                json_decref(ok);
                buf_append(&b, u, len);
                u += len;
                continue;
            }
        }
        buf_puts(&b, "\xef\xbf\xbd");
        u++;
    }
    v = json_string(b.data ? b.data : "");
    buf_free(&b);
    return v;
}

json_t *nbparams_resolve_type(const char *value)
{
    json_t *v;
    if (strcmp(value, "True") == 0)
        return json_true();
    if (strcmp(value, "False") == 0)
        return json_false();
    if (strcmp(value, "None") == 0)
        return json_null();
    if (yamljson_py_int(value, &v) || yamljson_py_float(value, &v))
        return v;
    return string_lossy(value);
}

/* ---- translation -------------------------------------------------------- */

/* Python's str.encode('unicode_escape').decode('utf-8'), then the
 * translator's own quote escaping, inside double quotes. */
static void put_escaped(buf_t *b, const char *s, size_t n, enum str_style style, char quote)
{
    buf_putc(b, quote);
    for (size_t i = 0; i < n;) {
        const unsigned char *u = (const unsigned char *)s + i;
        uint32_t c;
        size_t len = u[0] < 0x80 ? 1 : u[0] < 0xe0 ? 2 : u[0] < 0xf0 ? 3 : 4;
        if (len > n - i)
            len = n - i;
        c = len == 1 ? u[0] : len == 2 ? u[0] & 0x1f : len == 3 ? u[0] & 0x0f : u[0] & 0x07;
        for (size_t k = 1; k < len; k++)
            c = (c << 6) | (u[k] & 0x3f);
        i += len;
        if (c == '\\')
            buf_puts(b, "\\\\");
        else if (c == '\t')
            buf_puts(b, "\\t");
        else if (c == '\n')
            buf_puts(b, "\\n");
        else if (c == '\r')
            buf_puts(b, "\\r");
        else if (c < 0x20 || (c >= 0x7f && c < 0x100))
            buf_printf(b, "\\x%02x", c);
        else if (c >= 0x100 && c < 0x10000)
            buf_printf(b, "\\u%04x", c);
        else if (c >= 0x10000)
            buf_printf(b, "\\U%08x", c);
        else if (c == (uint32_t)quote && style == STR_MATLAB)
            buf_puts(b, quote == '"' ? "\"\"" : "''");
        else if (c == '"' && style == STR_POWERSHELL)
            buf_puts(b, "`\"");
        else if (c == '"' && style == STR_BACKSLASH)
            buf_puts(b, "\\\"");
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, quote);
}

/* shlex.quote: safe strings as they are, else single quotes with each '
 * spelled '"'"'. */
static void put_shlex(buf_t *b, const char *s, size_t n)
{
    if (n == 0) {
        buf_puts(b, "''");
        return;
    }
    int safe = 1;
    for (size_t i = 0; i < n && safe; i++) {
        unsigned char c = (unsigned char)s[i];
        safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("_@%+=:,./-", c));
    }
    if (safe) {
        buf_append(b, s, n);
        return;
    }
    buf_putc(b, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            buf_puts(b, "'\"'\"'");
        else
            buf_putc(b, s[i]);
    }
    buf_putc(b, '\'');
}

static void put_str(buf_t *b, const translator_t *t, const char *s, size_t n)
{
    if (t->str == STR_SHLEX)
        put_shlex(b, s, n);
    else
        put_escaped(b, s, n, t->str, '"');
}

/* Python int text (possibly a big int's digits) with the 64-bit languages'
 * "L" when outside int32. */
static void put_int_text(buf_t *b, const translator_t *t, const char *digits, int big)
{
    buf_puts(b, digits);
    if (t->long_suffix && big)
        buf_putc(b, 'L');
}

static void put_float(buf_t *b, const translator_t *t, double v, const char *nonfinite)
{
    char r[YAMLJSON_REPR_MAX];
    if (!nonfinite) {
        yamljson_float_repr(v, r);
        buf_puts(b, r);
        return;
    }
    int nan = strcmp(nonfinite, "nan") == 0, neg = nonfinite[0] == '-';
    if (t->nonfinite == NF_PYTHON)
        buf_puts(b, nan ? "float('nan')" : neg ? "float('-inf')" : "float('inf')");
    else if (t->nonfinite == NF_POWERSHELL)
        buf_puts(b, nan ? "[double]::NaN" : neg ? "[double]::NegativeInfinity"
                                                : "[double]::PositiveInfinity");
    else
        buf_puts(b, nonfinite);
}

static int translate_value(buf_t *b, const translator_t *t, const json_t *v, int depth,
                           nb_err_t *err)
{
    /* papermill would hit Python's recursion limit around here. */
    if (depth > 900)
        return err_set(err, -ENOTSUP, "parameters nested too deeply");
    const char *pn = yamljson_pynum_repr(v);
    if (pn) {
        if (strcmp(pn, "nan") == 0 || strcmp(pn, "inf") == 0 || strcmp(pn, "-inf") == 0)
            put_float(b, t, 0, pn);
        else
            put_int_text(b, t, pn, 1);
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
        if (!t->none)
            return err_set(err, -ENOTSUP, "Option type not implemented for C#.");
        buf_puts(b, t->none);
        return 0;
    case JSON_STRING:
        put_str(b, t, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_TRUE:
        buf_puts(b, t->true_);
        return 0;
    case JSON_FALSE:
        buf_puts(b, t->false_);
        return 0;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        char d[32];
        snprintf(d, sizeof d, "%" JSON_INTEGER_FORMAT, i);
        put_int_text(b, t, d, i > 2147483647 || i < -2147483648LL);
        return 0;
    }
    case JSON_REAL:
        put_float(b, t, json_real_value(v), NULL);
        return 0;
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        buf_puts(b, t->list_open);
        json_array_foreach(v, i, item) {
            if (i)
                buf_puts(b, t->list_sep);
            int rc = translate_value(b, t, item, depth + 1, err);
            if (rc < 0)
                return rc;
        }
        buf_puts(b, t->list_close);
        return 0;
    }
    case JSON_OBJECT: {
        const char *k;
        size_t klen, i = 0;
        json_t *item;
        if (t->dict_matlab) {
            /* containers.Map({'k1', 'k2'}, {v1, v2}): keys as char arrays. */
            buf_puts(b, "containers.Map({");
            json_object_keylen_foreach((json_t *)v, k, klen, item) {
                if (i++)
                    buf_puts(b, ", ");
                put_escaped(b, k, klen, STR_MATLAB, '\'');
            }
            buf_puts(b, "}, {");
            i = 0;
            json_object_keylen_foreach((json_t *)v, k, klen, item) {
                if (i++)
                    buf_puts(b, ", ");
                int rc = translate_value(b, t, item, depth + 1, err);
                if (rc < 0)
                    return rc;
            }
            buf_puts(b, "})");
            return 0;
        }
        if (!t->dict_open)
            return err_set(err, -ENOTSUP,
                           "dict type translation not implemented for <class 'papermill.translators.%s'>",
                           t->cls);
        buf_puts(b, t->dict_open);
        json_object_keylen_foreach((json_t *)v, k, klen, item) {
            if (i++)
                buf_puts(b, t->dict_sep);
            buf_puts(b, t->dict_item_pre);
            put_str(b, t, k, klen);
            buf_puts(b, t->dict_kv);
            int rc = translate_value(b, t, item, depth + 1, err);
            if (rc < 0)
                return rc;
            buf_puts(b, t->dict_item_post);
        }
        buf_puts(b, t->dict_close);
        return 0;
    }
    default:
        return err_set(err, -EINVAL, "unexpected JSON value");
    }
}

/* ---- parameter names ------------------------------------------------------ */

/*
 * A parameter's name is written into the cell as code (`NAME = value`), so
 * a name that is not an identifier of the language is code: papermill
 * writes `x=1\nimport os; os.system(...)\ny = 2` as it comes.  We accept
 * only identifiers, per translator:
 *
 *   Python (python, pysparkkernel)  str.isidentifier() and not a keyword
 *   R (R, sparkrkernel)             a syntactic name after papermill's
 *                                   stripping of leading '_': letters,
 *                                   digits, '.', '_'; starts with a letter or
 *                                   a '.' not followed by a digit; not a
 *                                   reserved word
 *   Scala (scala, sparkkernel), Julia, C#, F#, PowerShell
 *                                   letters, digits and '_', not starting
 *                                   with a digit, not a reserved word
 *                                   (Julia also allows '!' after the first)
 *   MATLAB                          starts with a letter, at most 63 chars
 *   bash                            [A-Za-z_][A-Za-z0-9_]* (ASCII only)
 *
 * Unicode: ASCII is exact.  Beyond ASCII (not for bash) a code point counts
 * as a letter when py_word() says so — letters and digits of every script,
 * not whitespace, punctuation, symbols, combining marks, bidi or other
 * format controls — and may not start a name if it is not a letter we can
 * tell from a digit, so the rule is a superset of no language's
 * punctuation: a name it lets through can never end the assignment early.
 * (Python's NFKC normalisation of identifiers is not modelled: a name
 * Python would refuse for a subtle Unicode reason fails in the kernel with a
 * SyntaxError, which runs nothing.)  Empty names and names over 255 bytes
 * are refused everywhere.
 */
enum ident_rule { ID_PYTHON, ID_R, ID_PLAIN, ID_JULIA, ID_MATLAB, ID_BASH };

static const char *const kw_python[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if",
    "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
    "while", "with", "yield", NULL };
static const char *const kw_r[] = {
    "if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
    "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "NA_complex_", "in", NULL };
static const char *const kw_scala[] = {
    "abstract", "case", "catch", "class", "def", "do", "else", "enum", "export", "extends",
    "false", "final", "finally", "for", "forSome", "given", "if", "implicit", "import", "lazy",
    "macro", "match", "new", "null", "object", "override", "package", "private", "protected",
    "return", "sealed", "super", "then", "this", "throw", "trait", "true", "try", "type", "val",
    "var", "while", "with", "yield", NULL };
static const char *const kw_julia[] = {
    "baremodule", "begin", "break", "catch", "const", "continue", "do", "else", "elseif", "end",
    "export", "false", "finally", "for", "function", "global", "if", "import", "let", "local",
    "macro", "module", "quote", "return", "struct", "true", "try", "using", "while", "abstract",
    "mutable", "primitive", "public", "outer", NULL };
static const char *const kw_matlab[] = {
    "break", "case", "catch", "classdef", "continue", "else", "elseif", "end", "for", "function",
    "global", "if", "otherwise", "parfor", "persistent", "return", "spmd", "switch", "try",
    "while", NULL };
static const char *const kw_csharp[] = {
    "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked",
    "class", "const", "continue", "decimal", "default", "delegate", "do", "double", "else",
    "enum", "event", "explicit", "extern", "false", "finally", "fixed", "float", "for",
    "foreach", "goto", "if", "implicit", "in", "int", "interface", "internal", "is", "lock",
    "long", "namespace", "new", "null", "object", "operator", "out", "override", "params",
    "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
    "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true",
    "try", "typeof", "uint", "ulong", "unchecked", "unsafe", "ushort", "using", "var", "virtual",
    "void", "volatile", "while", NULL };
static const char *const kw_fsharp[] = {
    "abstract", "and", "as", "assert", "base", "begin", "class", "default", "delegate", "do",
    "done", "downcast", "downto", "elif", "else", "end", "exception", "extern", "false",
    "finally", "fixed", "for", "fun", "function", "global", "if", "in", "inherit", "inline",
    "interface", "internal", "lazy", "let", "match", "member", "module", "mutable", "namespace",
    "new", "not", "null", "of", "open", "or", "override", "private", "public", "rec", "return",
    "select", "sig", "static", "struct", "then", "to", "true", "try", "type", "upcast", "use",
    "val", "void", "when", "while", "with", "yield", NULL };
static const char *const kw_none[] = { NULL };

static int is_keyword(const char *const *kw, const char *name, size_t len)
{
    for (; *kw; kw++)
        if (strlen(*kw) == len && memcmp(*kw, name, len) == 0)
            return 1;
    return 0;
}

/* Strict UTF-8 decoding of one code point at s[*i]; 0 on a bad sequence. */
static int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *out)
{
    unsigned char b = s[*i];
    size_t l = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
    if (!l || l > len - *i)
        return 0;
    uint32_t c = l == 1 ? b : l == 2 ? b & 0x1f : l == 3 ? b & 0x0f : b & 0x07;
    for (size_t k = 1; k < l; k++) {
        if ((s[*i + k] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[*i + k] & 0x3f);
    }
    static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (c < min[l] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *i += l;
    *out = c;
    return 1;
}

static int py_word(uint32_t c);

/* A letter beyond ASCII, for identifiers (see above). */
static int uni_letter(uint32_t c)
{
    return c >= 0x80 && py_word(c) && c != 0xfeff && !(c >= 0xfff0 && c <= 0xffff) &&
           !(c >= 0xe0000 && c <= 0xe007f);
}

static const char *rule_language(enum ident_rule r, const translator_t *t)
{
    switch (r) {
    case ID_PYTHON: return "Python";
    case ID_R: return "R";
    case ID_JULIA: return "Julia";
    case ID_MATLAB: return "MATLAB";
    case ID_BASH: return "bash";
    default:
        return strcmp(t->cls, "ScalaTranslator") == 0 ? "Scala"
             : strcmp(t->cls, "CSharpTranslator") == 0 ? "C#"
             : strcmp(t->cls, "FSharpTranslator") == 0 ? "F#" : "PowerShell";
    }
}

static int name_ok(enum ident_rule r, const char *const *kw, const char *name, size_t len)
{
    const unsigned char *s = (const unsigned char *)name;
    if (len == 0 || len > 255)
        return 0;
    if (r == ID_MATLAB && len > 63)
        return 0;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t c;
        if (!utf8_next(s, len, &i, &c))
            return 0;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int digit = c >= '0' && c <= '9';
        int ok;
        if (c >= 0x80)
            ok = r != ID_BASH && uni_letter(c) && !(n == 0 && r == ID_MATLAB);
        else if (n == 0)
            ok = alpha || (c == '_' && r != ID_MATLAB) ||
                 (c == '.' && r == ID_R && !(len > 1 && s[1] >= '0' && s[1] <= '9'));
        else
            ok = alpha || digit || c == '_' || (c == '.' && r == ID_R) || (c == '!' && r == ID_JULIA);
        if (!ok)
            return 0;
        n++;
    }
    return !is_keyword(kw, name, len);
}

/* The name as it goes into the cell (R strips leading '_'), checked. */
static int check_name(const translator_t *t, const char *name, size_t len, nb_err_t *err)
{
    enum ident_rule r = ID_PLAIN;
    const char *const *kw = kw_none;
    if (strcmp(t->cls, "PythonTranslator") == 0) r = ID_PYTHON, kw = kw_python;
    else if (strcmp(t->cls, "RTranslator") == 0) r = ID_R, kw = kw_r;
    else if (strcmp(t->cls, "ScalaTranslator") == 0) kw = kw_scala;
    else if (strcmp(t->cls, "JuliaTranslator") == 0) r = ID_JULIA, kw = kw_julia;
    else if (strcmp(t->cls, "MatlabTranslator") == 0) r = ID_MATLAB, kw = kw_matlab;
    else if (strcmp(t->cls, "CSharpTranslator") == 0) kw = kw_csharp;
    else if (strcmp(t->cls, "FSharpTranslator") == 0) kw = kw_fsharp;
    else if (strcmp(t->cls, "BashTranslator") == 0) r = ID_BASH;
    const char *n = name;
    size_t nl = len;
    if (t->strip_underscores)
        while (nl && *n == '_')
            n++, nl--;
    if (name_ok(r, kw, n, nl))
        return 0;
    /* The name, printable and short, for the message. */
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < len && b.len < 60; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '\\' || c == '\'') buf_printf(&b, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f) buf_putc(&b, (char)c);
        else if (c == '\n') buf_puts(&b, "\\n");
        else buf_printf(&b, "\\x%02x", c);
    }
    if (b.len >= 60) buf_puts(&b, "...");
    int rc = err_set(err, -EINVAL, "parameter name '%s' is not a valid %s identifier%s",
                     b.len ? b.data : "", rule_language(r, t),
                     is_keyword(kw, n, nl) ? " (it is a reserved word)" : "");
    buf_free(&b);
    return rc;
}

int nbparams_check_name(const char *name, const char *language, nb_err_t *err)
{
    const translator_t *t = find(language);
    if (!t)
        return not_supported(language, err);
    return check_name(t, name, strlen(name), err);
}

int nbparams_check_names(const json_t *params, const char *language, nb_err_t *err)
{
    const translator_t *t = find(language);
    if (!t)
        return not_supported(language, err);
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)params, k, klen, v) {
        int rc = check_name(t, k, klen, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int nbparams_translate(const json_t *params, const char *language, char **out, nb_err_t *err)
{
    const translator_t *t = find(language);
    *out = NULL;
    if (!t)
        return not_supported(language, err);
    if (!json_is_object(params))
        return err_set(err, -EINVAL, "parameters must be a mapping");
    buf_t b = BUF_INIT;
    /* codify: comment line, then one assignment per parameter. */
    buf_printf(&b, "%s%s%s\n", t->comment_open, "Parameters", t->comment_close);
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)params, k, klen, v) {
        const char *name = k;
        size_t nlen = klen;
        int bad = check_name(t, k, klen, err);
        if (bad < 0) {
            buf_free(&b);
            return bad;
        }
        if (t->strip_underscores)
            while (nlen && *name == '_')
                name++, nlen--;
        buf_puts(&b, t->assign_prefix);
        buf_append(&b, name, nlen);
        buf_puts(&b, t->assign_sep);
        int rc = translate_value(&b, t, v, 0, err);
        if (rc < 0) {
            buf_free(&b);
            return rc;
        }
        buf_puts(&b, t->assign_suffix);
        buf_putc(&b, '\n');
    }
    *out = buf_detach(&b);
    return 0;
}

/* ---- injection ---------------------------------------------------------- */

/* papermill's find_first_tagged_cell_index. */
static ssize_t find_tagged(const json_t *nb, const char *tag)
{
    json_t *cells = json_object_get(nb, "cells"), *cell;
    size_t i;
    json_array_foreach(cells, i, cell) {
        json_t *tags = json_object_get(json_object_get(cell, "metadata"), "tags"), *t;
        size_t j;
        json_array_foreach(tags, j, t)
            if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0)
                return (ssize_t)i;
    }
    return -1;
}

/* nbformat's random_cell_id: uuid4().hex[:8], i.e. 8 random hex digits. */
static json_t *random_cell_id(void)
{
    unsigned char r[4];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* Only uniqueness within the notebook matters; fall back to a clock. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint32_t x = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ ((uint32_t)getpid() << 16);
        memcpy(r, &x, sizeof r);
    }
    return json_sprintf("%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

int nbparams_inject(json_t *nb, const json_t *params, const char *language, int report_mode,
                    int *warned, nb_err_t *err)
{
    json_t *cells = json_object_get(nb, "cells");
    if (warned)
        *warned = 0;
    if (!json_is_object(nb) || !json_is_array(cells))
        return err_set(err, -EINVAL, "notebook has no cells array");
    char *src;
    int rc = nbparams_translate(params, language, &src, err);
    if (rc < 0)
        return rc;

    /* Keys in nbformat's sorted order, so an unsorted dump matches too. */
    json_t *cell = json_object();
    json_object_set_new(cell, "cell_type", json_string("code"));
    json_object_set_new(cell, "execution_count", json_null());
    json_int_t minor = json_integer_value(json_object_get(nb, "nbformat_minor"));
    if (minor >= 5)
        json_object_set_new(cell, "id", random_cell_id());
    json_t *meta = json_object();
    if (report_mode)
        json_object_set_new(meta, "jupyter", json_pack("{sb}", "source_hidden", 1));
    json_object_set_new(meta, "tags", json_pack("[s]", "injected-parameters"));
    json_object_set_new(cell, "metadata", meta);
    json_object_set_new(cell, "outputs", json_array());
    json_object_set_new(cell, "source", json_string(src));
    free(src);

    ssize_t param_idx = find_tagged(nb, "parameters");
    ssize_t injected_idx = find_tagged(nb, "injected-parameters");
    if (injected_idx >= 0) {
        json_array_set_new(cells, (size_t)injected_idx, cell);
    } else if (param_idx >= 0) {
        json_array_insert_new(cells, (size_t)param_idx + 1, cell);
    } else {
        json_array_insert_new(cells, 0, cell);
        if (warned)
            *warned = 1;
    }

    json_t *md = json_object_get(nb, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(nb, "metadata", md);
    }
    json_t *pm = json_object_get(md, "papermill");
    if (!json_is_object(pm)) {
        pm = json_object();
        json_object_set_new(md, "papermill", pm);
    }
    json_object_set_new(pm, "parameters", json_deep_copy(params));
    return 0;
}

/* ---- inspection --------------------------------------------------------- */

int nbparams_can_inspect(const char *language)
{
    const translator_t *t = find(language);
    return t && strcmp(t->cls, "PythonTranslator") == 0;
}

/* A decoded string: code points plus, for slicing back out, byte offsets. */
typedef struct ustr {
    uint32_t *cp;
    size_t   *off;    /* off[i] = byte offset of cp[i]; off[n] = byte length */
    size_t    n;
    const char *bytes;
} ustr_t;

static void ustr_init(ustr_t *u, const char *s, size_t len)
{
    u->cp = xmalloc((len + 1) * sizeof *u->cp);
    u->off = xmalloc((len + 1) * sizeof *u->off);
    u->n = 0;
    u->bytes = s;
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t l = b[i] < 0x80 ? 1 : b[i] < 0xe0 ? 2 : b[i] < 0xf0 ? 3 : 4;
        if (l > len - i)
            l = len - i;
        uint32_t c = l == 1 ? b[i] : l == 2 ? b[i] & 0x1f : l == 3 ? b[i] & 0x0f : b[i] & 0x07;
        for (size_t k = 1; k < l; k++)
            c = (c << 6) | (b[i + k] & 0x3f);
        u->cp[u->n] = c;
        u->off[u->n++] = i;
        i += l;
    }
    u->off[u->n] = len;
}

static void ustr_free(ustr_t *u)
{
    free(u->cp);
    free(u->off);
}

/* Python's str.isspace(), which is also what re's \s and str.strip() use. */
static int py_space(uint32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f))
        return 1;
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Python's re \w (str.isalnum() or '_'): exact below U+0100, then every
 * code point outside whitespace and common punctuation/symbol blocks. */
static int py_word(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (c < 0x100)
        return c == 0xaa || c == 0xb2 || c == 0xb3 || c == 0xb5 || c == 0xb9 || c == 0xba ||
               (c >= 0xbc && c <= 0xbe) || (c >= 0xc0 && c != 0xd7 && c != 0xf7);
    static const uint32_t non_word[][2] = {
        { 0x0300, 0x036f }, { 0x2000, 0x206f }, { 0x20a0, 0x20cf }, { 0x2190, 0x23ff },
        { 0x2500, 0x27bf }, { 0x2e00, 0x2e7f }, { 0x3000, 0x3004 }, { 0x3008, 0x3020 },
        { 0xe000, 0xf8ff }, { 0xfe30, 0xfe4f }, { 0xff01, 0xff0f }, { 0x1f000, 0x1faff },
    };
    if (py_space(c))
        return 0;
    for (size_t i = 0; i < sizeof non_word / sizeof *non_word; i++)
        if (c >= non_word[i][0] && c <= non_word[i][1])
            return 0;
    return 1;
}

/* str.splitlines() boundaries; \r\n counts as one. */
static int py_linebreak(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
}

/* [a, b) of u narrowed by str.strip(). */
static void strip_span(const ustr_t *u, size_t *a, size_t *b)
{
    while (*a < *b && py_space(u->cp[*a]))
        (*a)++;
    while (*b > *a && py_space(u->cp[*b - 1]))
        (*b)--;
}

static void put_span(buf_t *out, const ustr_t *u, size_t a, size_t b)
{
    buf_append(out, u->bytes + u->off[a], u->off[b] - u->off[a]);
}

static json_t *span_json(const ustr_t *u, size_t a, size_t b)
{
    strip_span(u, &a, &b);
    return json_stringn(u->bytes + u->off[a], u->off[b] - u->off[a]);
}

/* One flattened definition against PARAMETER_PATTERN:
 *   ^(?P<target>\w[\w_]*)\s*(:\s*["']?(?P<annotation>\w[\w_\[\],\s]*)["']?\s*)?
 *    =\s*(?P<value>.*?)(\s*#\s*(type:\s*(?P<type_comment>[^\s]*)\s*)?(?P<help>.*))?$
 * Each quantifier is followed by a character it cannot consume, so the
 * greedy runs below are what the backtracking engine settles on; the lazy
 * value stops at the whitespace before the first '#'. */
static json_t *match_definition(const char *def, size_t len)
{
    ustr_t u;
    ustr_init(&u, def, len);
    size_t n = u.n, p = 0;
    json_t *res = NULL;
    if (n == 0 || !py_word(u.cp[0]))
        goto out;
    while (p < n && py_word(u.cp[p]))
        p++;
    size_t target_end = p;
    while (p < n && py_space(u.cp[p]))
        p++;
    size_t ann_a = 0, ann_b = 0, eq;
    if (p < n && u.cp[p] == ':') {
        size_t r = p + 1;
        while (r < n && py_space(u.cp[r]))
            r++;
        if (r < n && (u.cp[r] == '"' || u.cp[r] == '\''))
            r++;
        if (r >= n || !py_word(u.cp[r]))
            goto out;
        ann_a = r;
        while (r < n && (py_word(u.cp[r]) || py_space(u.cp[r]) || u.cp[r] == '[' ||
                         u.cp[r] == ']' || u.cp[r] == ','))
            r++;
        ann_b = r;
        if (r < n && (u.cp[r] == '"' || u.cp[r] == '\''))
            r++;
        while (r < n && py_space(u.cp[r]))
            r++;
        if (r >= n || u.cp[r] != '=')
            goto out;
        eq = r;
    } else if (p < n && u.cp[p] == '=') {
        eq = p;
    } else {
        goto out;
    }
    size_t v = eq + 1;
    while (v < n && py_space(u.cp[v]))
        v++;
    size_t hash = v;
    while (hash < n && u.cp[hash] != '#')
        hash++;
    size_t val_end = hash, tc_a = 0, tc_b = 0, help_a = n, help_b = n;
    if (hash < n) {
        while (val_end > v && py_space(u.cp[val_end - 1]))
            val_end--;
        size_t k = hash + 1;
        while (k < n && py_space(u.cp[k]))
            k++;
        if (n - k >= 5 && u.cp[k] == 't' && u.cp[k + 1] == 'y' && u.cp[k + 2] == 'p' &&
            u.cp[k + 3] == 'e' && u.cp[k + 4] == ':') {
            k += 5;
            while (k < n && py_space(u.cp[k]))
                k++;
            tc_a = k;
            while (k < n && !py_space(u.cp[k]))
                k++;
            tc_b = k;
            while (k < n && py_space(u.cp[k]))
                k++;
        }
        help_a = k;
    }
    /* type_name = str(annotation or type_comment or None).strip() */
    json_t *type;
    if (ann_b > ann_a)
        type = span_json(&u, ann_a, ann_b);
    else if (tc_b > tc_a)
        type = span_json(&u, tc_a, tc_b);
    else
        type = json_string("None");
    res = json_object();
    json_object_set_new(res, "name", span_json(&u, 0, target_end));
    json_object_set_new(res, "inferred_type_name", type);
    json_object_set_new(res, "default", span_json(&u, v, val_end));
    json_object_set_new(res, "help", span_json(&u, help_a, help_b));
out:
    ustr_free(&u);
    return res;
}

/* flatten_accumulator: all lines but the last lose their comments; every
 * line is stripped; the pieces are concatenated without separators. */
static void flatten(buf_t *out, const ustr_t *u, const size_t (*lines)[2], size_t nlines)
{
    buf_reset(out);
    for (size_t i = 0; i < nlines; i++) {
        size_t a = lines[i][0], b = lines[i][1];
        if (i + 1 < nlines)
            for (size_t k = a; k < b; k++)
                if (u->cp[k] == '#') {
                    b = k;
                    break;
                }
        strip_span(u, &a, &b);
        put_span(out, u, a, b);
    }
}

static void add_definition(json_t *params, buf_t *def)
{
    if (def->len == 0)
        return;
    json_t *p = match_definition(def->data, def->len);
    if (p)
        json_array_append_new(params, p);
}

json_t *nbparams_inspect(const json_t *nb, const char *language)
{
    json_t *params = json_array();
    ssize_t idx = find_tagged(nb, "parameters");
    if (idx < 0 || !nbparams_can_inspect(language))
        return params;
    json_t *cell = json_array_get(json_object_get(nb, "cells"), (size_t)idx);
    json_t *src = json_object_get(cell, "source");
    if (!json_is_string(src))
        return params;

    ustr_t u;
    ustr_init(&u, json_string_value(src), json_string_length(src));
    size_t (*acc)[2] = xmalloc((u.n + 1) * sizeof *acc);
    size_t nacc = 0;
    buf_t def = BUF_INIT;
    for (size_t i = 0; i < u.n;) {
        /* One line of splitlines(): [a, b), then skip its terminator. */
        size_t a = i, b = i;
        while (b < u.n && !py_linebreak(u.cp[b]))
            b++;
        i = b;
        if (i < u.n)
            i += (u.cp[i] == '\r' && i + 1 < u.n && u.cp[i + 1] == '\n') ? 2 : 1;

        size_t sa = a, sb = b;
        strip_span(&u, &sa, &sb);
        if (sa == sb || u.cp[sa] == '#')
            continue;   /* blank and comment lines */
        size_t nequal = 0;
        for (size_t k = a; k < b; k++)
            nequal += u.cp[k] == '=';
        if (nequal > 0) {
            flatten(&def, &u, (const size_t (*)[2])acc, nacc);
            add_definition(params, &def);
            nacc = 0;
            if (nequal > 1)
                continue;   /* papermill: "Unable to parse line" */
        }
        acc[nacc][0] = a;
        acc[nacc][1] = b;
        nacc++;
    }
    flatten(&def, &u, (const size_t (*)[2])acc, nacc);
    add_definition(params, &def);
    buf_free(&def);
    free(acc);
    ustr_free(&u);
    return params;
}

json_t *nbparams_unknown(const json_t *nb, const json_t *params, const char *language)
{
    json_t *declared = nbparams_inspect(nb, language);
    json_t *unknown = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) {
        size_t i;
        json_t *p;
        int found = 0;
        json_array_foreach(declared, i, p)
            if (strcmp(json_string_value(json_object_get(p, "name")), k) == 0)
                found = 1;
        if (!found)
            json_array_append_new(unknown, json_string(k));
    }
    json_decref(declared);
    return unknown;
}
