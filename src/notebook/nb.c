/*
 * nb — see nb.h for what loading guarantees.
 *
 * The order of the checks decides which message a broken file gets: the
 * version is looked at before "cells", because an nbformat 3 notebook has
 * "worksheets" instead and deserves the "convert it" hint rather than "not a
 * notebook"; an object with neither "nbformat" nor "cells" is just some
 * other JSON file.
 *
 * Rejoining follows nbformat/v4/rwbase.py rejoin_lines exactly, including
 * its quirks: an empty list becomes "", a list holding anything but strings
 * is left alone in mime bundles, and "text" is rejoined in any output type
 * other than execute_result/display_data.
 */
#include "notebook/nb.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nb_is_str_list(const json_t *v)
{
    size_t i;
    json_t *e;
    if (!json_is_array(v)) return 0;
    json_array_foreach(v, i, e)
        if (!json_is_string(e)) return 0;
    return 1;
}

/* "".join(list) as a new string (list must satisfy nb_is_str_list). */
static json_t *nb_join(const json_t *list)
{
    size_t i, total = 0;
    json_t *e;
    json_array_foreach(list, i, e) total += json_string_length(e);
    buf_t b = BUF_INIT;
    buf_reserve(&b, total);
    json_array_foreach(list, i, e) buf_append(&b, json_string_value(e), json_string_length(e));
    /* Concatenated valid UTF-8 is valid UTF-8: skip jansson's re-check. */
    json_t *s = json_stringn_nocheck(b.data ? b.data : "", b.len);
    buf_free(&b);
    return s;
}

/* Replace obj[key] by its join if it is a list of strings.  Returns 1 if
   the member now is (or already was) a string. */
static int nb_rejoin_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (nb_is_str_list(v)) {
        json_object_set_new(obj, key, nb_join(v));
        return 1;
    }
    return json_is_string(v);
}

static int nb_is_json_mime(const char *mime)
{
    size_t n = strlen(mime);
    return strcmp(mime, "application/json") == 0
        || (strncmp(mime, "application/", 12) == 0 && n >= 5 && strcmp(mime + n - 5, "+json") == 0);
}

/* rwbase._rejoin_mimebundle. */
static void nb_rejoin_bundle(json_t *data)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(data, tmp, key, v) {
        if (!nb_is_json_mime(key) && nb_is_str_list(v))
            json_object_set_new(data, key, nb_join(v));
    }
}

/* Returns the "metadata" object of v, adding {} if missing; NULL if it is
   present but not an object. */
static json_t *nb_metadata(json_t *v)
{
    json_t *md = json_object_get(v, "metadata");
    if (!md) {
        md = json_object();
        json_object_set_new(v, "metadata", md);
    }
    return json_is_object(md) ? md : NULL;
}

static int nb_check_output(json_t *out, const char *name, size_t ci, size_t oi, nb_err_t *err)
{
#define OUT_ERR(...) err_set(err, -EINVAL, "%s: cell %zu: output %zu: " __VA_ARGS__)
    if (!json_is_object(out)) return OUT_ERR("not an object", name, ci, oi);
    const char *t = json_string_value(json_object_get(out, "output_type"));
    if (!t) return OUT_ERR("no \"output_type\" string", name, ci, oi);
    int rich = strcmp(t, "execute_result") == 0 || strcmp(t, "display_data") == 0;
    if (!rich && strcmp(t, "stream") != 0 && strcmp(t, "error") != 0)
        return OUT_ERR("unknown output_type \"%s\" (expected stream, display_data, "
                       "execute_result or error)", name, ci, oi, t);
    if (rich) {
        json_t *data = json_object_get(out, "data");
        if (data && !json_is_object(data))
            return OUT_ERR("\"data\" is not an object", name, ci, oi);
        if (data) nb_rejoin_bundle(data);
        json_t *md = json_object_get(out, "metadata");
        if (md && !json_is_object(md))
            return OUT_ERR("\"metadata\" is not an object", name, ci, oi);
        json_t *ec = json_object_get(out, "execution_count");
        if (ec && !json_is_null(ec) && !json_is_integer(ec))
            return OUT_ERR("\"execution_count\" is not an integer or null", name, ci, oi);
        return 0;
    }
    /* rejoin_lines joins "text" of any other output type. */
    int text_is_str = nb_rejoin_member(out, "text");
    if (strcmp(t, "stream") == 0) {
        if (!json_is_string(json_object_get(out, "name")))
            return OUT_ERR("stream has no \"name\" string", name, ci, oi);
        if (!text_is_str)
            return OUT_ERR("stream \"text\" is not a string or a list of strings", name, ci, oi);
    } else {   /* error */
        if (!json_is_string(json_object_get(out, "ename"))
            || !json_is_string(json_object_get(out, "evalue")))
            return OUT_ERR("error output needs \"ename\" and \"evalue\" strings", name, ci, oi);
        if (!nb_is_str_list(json_object_get(out, "traceback")))
            return OUT_ERR("error \"traceback\" is not a list of strings", name, ci, oi);
    }
    return 0;
#undef OUT_ERR
}

int nb_normalise_cell(json_t *cell, const char *name, size_t ci, nb_err_t *err)
{
#define CELL_ERR(...) err_set(err, -EINVAL, "%s: cell %zu: " __VA_ARGS__)
    if (!json_is_object(cell)) return CELL_ERR("not an object", name, ci);
    json_t *jt = json_object_get(cell, "cell_type");
    if (!jt) return CELL_ERR("no \"cell_type\"", name, ci);
    const char *t = json_string_value(jt);
    int code = t && strcmp(t, "code") == 0;
    if (!t || (!code && strcmp(t, "markdown") != 0 && strcmp(t, "raw") != 0))
        return CELL_ERR("unknown cell_type %s%s%s (expected code, markdown or raw)", name, ci,
                        t ? "\"" : "", t ? t : "(not a string)", t ? "\"" : "");
    json_t *id = json_object_get(cell, "id");
    if (id && !json_is_string(id)) return CELL_ERR("\"id\" is not a string", name, ci);
    if (!json_object_get(cell, "source")) return CELL_ERR("no \"source\"", name, ci);
    if (!nb_rejoin_member(cell, "source"))
        return CELL_ERR("\"source\" is not a string or a list of strings", name, ci);
    json_t *md = nb_metadata(cell);
    if (!md) return CELL_ERR("\"metadata\" is not an object", name, ci);
    json_object_del(md, "trusted");   /* strip_transient */

    json_t *att = json_object_get(cell, "attachments");
    if (att) {
        if (!json_is_object(att)) return CELL_ERR("\"attachments\" is not an object", name, ci);
        const char *k;
        json_t *bundle;
        json_object_foreach(att, k, bundle) {
            if (!json_is_object(bundle))
                return CELL_ERR("attachment \"%s\" is not an object", name, ci, k);
            nb_rejoin_bundle(bundle);
        }
    }
    if (!code) return 0;

    json_t *outs = json_object_get(cell, "outputs");
    if (!outs) {
        outs = json_array();
        json_object_set_new(cell, "outputs", outs);
    }
    if (!json_is_array(outs)) return CELL_ERR("\"outputs\" is not a list", name, ci);
    json_t *ec = json_object_get(cell, "execution_count");
    if (!ec) json_object_set_new(cell, "execution_count", json_null());
    else if (!json_is_null(ec) && !json_is_integer(ec))
        return CELL_ERR("\"execution_count\" is not an integer or null", name, ci);
    size_t oi;
    json_t *out;
    json_array_foreach(outs, oi, out) {
        int rc = nb_check_output(out, name, ci, oi + 1, err);
        if (rc < 0) return rc;
    }
    return 0;
#undef CELL_ERR
}

int nb_normalise(json_t *nb, const char *name, nb_err_t *err)
{
    if (!json_is_object(nb))
        return err_set(err, -EINVAL, "%s: not a Jupyter notebook (the top level is %s, not an object)",
                       name, json_is_array(nb) ? "a list" : "not an object");
    json_t *ver = json_object_get(nb, "nbformat");
    json_t *cells = json_object_get(nb, "cells");
    if (!ver && !cells)
        return err_set(err, -EINVAL, "%s: not a Jupyter notebook (no \"nbformat\" and no \"cells\")",
                       name);
    if (json_is_integer(ver) && json_integer_value(ver) <= 3)
        return err_set(err, -EPROTONOSUPPORT,
                       "%s: nbformat %" JSON_INTEGER_FORMAT " notebooks are not supported; convert with: "
                       "jupyter nbconvert --to notebook --nbformat 4 %s",
                       name, json_integer_value(ver), name);
    if (!json_is_integer(ver) || json_integer_value(ver) != 4) {
        char *shown = ver ? json_dumps(ver, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        err_set(err, -EPROTONOSUPPORT, "%s: unsupported nbformat %.40s (nbhub reads nbformat 4)",
                name, shown ? shown : "(missing)");
        free(shown);
        return -EPROTONOSUPPORT;
    }
    json_t *minor = json_object_get(nb, "nbformat_minor");
    if (minor && (!json_is_integer(minor) || json_integer_value(minor) < 0))
        return err_set(err, -EINVAL, "%s: \"nbformat_minor\" is not a non-negative integer", name);
    if (!json_is_array(cells))
        return err_set(err, -EINVAL, "%s: not a Jupyter notebook (%s)", name,
                       cells ? "\"cells\" is not a list" : "no \"cells\" list");
    json_t *md = json_object_get(nb, "metadata");
    if (!json_is_object(md))
        return err_set(err, -EINVAL, "%s: not a Jupyter notebook (%s)", name,
                       md ? "\"metadata\" is not an object" : "no \"metadata\" object");
    /* strip_transient */
    json_object_del(md, "orig_nbformat");
    json_object_del(md, "orig_nbformat_minor");
    json_object_del(md, "signature");

    size_t i;
    json_t *cell;
    json_array_foreach(cells, i, cell) {
        int rc = nb_normalise_cell(cell, name, i + 1, err);
        if (rc < 0) return rc;
    }
    return 0;
}

int nb_load_text(const char *text, size_t len, const char *name, json_t **nb, nb_err_t *err)
{
    json_error_t je;
    *nb = NULL;
    /* JSON_ALLOW_NUL: Python's json accepts "\u0000" and kernels do print NULs;
       nbjson writes strings by length, so they survive a round trip. */
    json_t *v = jparse(text, len, JSON_ALLOW_NUL, &je);
    if (!v)
        return err_set(err, -EINVAL, "%s:%d:%d: invalid JSON: %s", name, je.line < 1 ? 1 : je.line,
                       je.column < 1 ? 1 : je.column, je.text);
    int rc = nb_normalise(v, name, err);
    if (rc < 0) {
        json_decref(v);
        return rc;
    }
    *nb = v;
    return 0;
}

int nb_load_file(const char *path, json_t **nb, nb_err_t *err)
{
    char *text;
    size_t len;
    *nb = NULL;
    int rc = fs_read_all(path, &text, &len, err);
    if (rc < 0) return rc;
    rc = nb_load_text(text, len, strcmp(path, "-") == 0 ? "<stdin>" : path, nb, err);
    free(text);
    return rc;
}

const char *nb_cell_source(const json_t *cell)
{
    const char *s = json_string_value(json_object_get(cell, "source"));
    return s ? s : "";
}

int nb_cell_has_tag(const json_t *cell, const char *tag)
{
    json_t *tags = json_object_get(json_object_get(cell, "metadata"), "tags");
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        const char *s = json_string_value(t);
        if (s && strcmp(s, tag) == 0) return 1;
    }
    return 0;
}

static const char *nb_nonempty(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? s : NULL;
}

const char *nb_kernel_name(const json_t *nb)
{
    return nb_nonempty(json_object_get(json_object_get(json_object_get(nb, "metadata"), "kernelspec"),
                                       "name"));
}

const char *nb_language(const json_t *nb)
{
    json_t *md = json_object_get(nb, "metadata");
    const char *l = nb_nonempty(json_object_get(json_object_get(md, "kernelspec"), "language"));
    if (!l) l = nb_nonempty(json_object_get(json_object_get(md, "language_info"), "name"));
    return l;
}
