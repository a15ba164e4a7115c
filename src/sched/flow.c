/*
 * flow — flow files to the flow model; see flow.h and docs/flows.md.
 *
 * Why not yamljson_parse + a JSON walk: every message must point at a line
 * and column, and a jansson tree has no positions.  So this file composes
 * its own small node tree from libyaml's *event* stream (the document API
 * would do, but it drops whether a scalar was tagged explicitly, which the
 * typing below needs), keeping each node's start mark.  The tree is what
 * PyYAML's composer builds: aliases point at their anchor's node (shared,
 * never copied; an alias to an unfinished anchor is an error, so the tree
 * is acyclic), and merge keys (<<) are flattened with SafeConstructor's
 * order.  Duplicate keys, which PyYAML silently lets win, are reported:
 * in a flow file they are always a mistake.
 *
 * Scalar typing reuses yamljson (PyYAML's rules, so `params` mean the same
 * here as in `nbhub run -y`): a plain scalar that could be something other
 * than a string is re-parsed by yamljson inside a one-item flow sequence,
 * and an explicitly tagged one as `[!<tag> "text"]`.  Fields that are
 * strings by nature (names, paths, URLs, env values) take the scalar's text
 * as written, so `kernel: yes` or `env: {DEBUG: on}` mean what they say
 * (the "Norway problem" of YAML 1.1 cannot bite them).
 *
 * Validation is one walk that never stops at the first problem: each check
 * adds a positioned message and the walk goes on with a default, so a file
 * gets all its errors at once.  At the end the file's errors are sorted
 * into file order, and the flow is thrown away if there were any.
 */
#include "sched/flow.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "iso/workspace.h"
#include "kernel/kspec.h"
#include "notebook/nb.h"
#include "notebook/nbparams.h"
#include "sched/dag.h"
#include "sched/tmpl.h"
#include "spark/scluster.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

#define MAX_DEPTH  64       /* flow files are shallow; this bounds recursion */
#define MAX_NODES  1000000  /* composed nodes, and values built (aliases expanded) */

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---- the node tree ----------------------------------------------------- */

enum ykind { YN_SCALAR, YN_SEQ, YN_MAP };

typedef struct ynode ynode_t;

typedef struct ypair {
    ynode_t *key, *val;
    int      dup_line, dup_col;   /* != 0: duplicate of the key first seen there */
} ypair_t;

struct ynode {
    enum ykind kind;
    int        line, col;         /* 1-based start mark */
    /* scalars */
    char      *text;
    size_t     len;
    int        plain;             /* plain style (not quoted, not a block scalar) */
    char      *tag;               /* explicit tag, NULL if none (or "!") */
    json_t    *typed;             /* cache of scalar_json */
    char      *keystr;            /* cache of key_text for non-string keys */
    /* collections */
    ynode_t  **items;
    size_t     nitems;
    ypair_t   *pairs;
    size_t     npairs;
    ynode_t   *next_alloc;        /* every node, for freeing */
};

typedef struct anchor {
    char    *name;
    ynode_t *node;
} anchor_t;

/* The parse of one file. */
typedef struct pst {
    const char   *file;
    nb_errlist_t *errs;
    size_t        errs_before;
    yaml_parser_t parser;
    ynode_t      *all;
    anchor_t     *anchors;
    size_t        nanchors, capanchors;
    size_t        nodes;          /* composed */
    size_t        values;         /* JSON values built */
    int           fatal;          /* stop composing */
    json_t       *params;         /* the flow's params, for template checks */
    const char   *base_dir;
} pst_t;

static void perr(pst_t *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void perr(pst_t *p, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    errlist_add(p->errs, p->file, line, col, "%s", msg);
    free(msg);
}

#define NERR(p, n, ...) perr((p), (n)->line, (n)->col, __VA_ARGS__)

static int had_errors(const pst_t *p)
{
    return errlist_count(p->errs) > p->errs_before;
}

static ynode_t *node_new(pst_t *p, enum ykind kind, const yaml_mark_t *m)
{
    ynode_t *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->next_alloc = p->all;
    p->all = n;
    p->nodes++;
    return n;
}

static void nodes_free(pst_t *p)
{
    for (ynode_t *n = p->all, *next; n; n = next) {
        next = n->next_alloc;
        free(n->text);
        free(n->tag);
        free(n->keystr);
        json_decref(n->typed);
        free(n->items);
        free(n->pairs);
        free(n);
    }
    p->all = NULL;
    for (size_t i = 0; i < p->nanchors; i++)
        free(p->anchors[i].name);
    free(p->anchors);
}

/* Report libyaml's syntax error at its problem mark. */
static void yaml_syntax_error(pst_t *p)
{
    yaml_parser_t *y = &p->parser;
    const char *prob = y->problem ? y->problem : "invalid YAML";
    int line = (int)y->problem_mark.line + 1, col = (int)y->problem_mark.column + 1;
    if (y->context && y->context_mark.line != y->problem_mark.line)
        perr(p, line, col, "YAML syntax error: %s (%s that started at line %d)", prob, y->context,
             (int)y->context_mark.line + 1);
    else if (y->context)
        perr(p, line, col, "YAML syntax error: %s (%s)", prob, y->context);
    else
        perr(p, line, col, "YAML syntax error: %s", prob);
    p->fatal = 1;
}

static int next_event(pst_t *p, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&p->parser, ev)) {
        yaml_syntax_error(p);
        return -1;
    }
    return 0;
}

static void anchor_set(pst_t *p, const char *name, ynode_t *n)
{
    for (size_t i = 0; i < p->nanchors; i++) {
        if (strcmp(p->anchors[i].name, name) == 0) {
            p->anchors[i].node = n;   /* a redefined anchor: later aliases see the new one */
            return;
        }
    }
    if (p->nanchors == p->capanchors) {
        p->capanchors = p->capanchors ? 2 * p->capanchors : 8;
        p->anchors = xrealloc(p->anchors, p->capanchors * sizeof *p->anchors);
    }
    p->anchors[p->nanchors].name = xstrdup(name);
    p->anchors[p->nanchors++].node = n;
}

static ynode_t *anchor_get(pst_t *p, const char *name)
{
    for (size_t i = 0; i < p->nanchors; i++)
        if (strcmp(p->anchors[i].name, name) == 0)
            return p->anchors[i].node;
    return NULL;
}

static int is_merge_key(const ynode_t *k)
{
    if (k->kind != YN_SCALAR)
        return 0;
    if (k->tag)
        return strcmp(k->tag, TAG_PREFIX "merge") == 0;
    return k->plain && strcmp(k->text, "<<") == 0;
}

static const char *key_text(pst_t *p, ynode_t *k);

/* Apply merge keys and mark duplicate keys (see the file comment). */
static void map_finish(pst_t *p, ynode_t *m)
{
    size_t nmerge = 0;
    for (size_t i = 0; i < m->npairs; i++)
        nmerge += is_merge_key(m->pairs[i].key);
    if (nmerge) {
        ypair_t *merged = NULL;
        size_t nm = 0, cap = 0;
        for (size_t i = 0; i < m->npairs; i++) {
            if (!is_merge_key(m->pairs[i].key))
                continue;
            ynode_t *v = m->pairs[i].val;
            ynode_t **srcs = &v;
            size_t nsrc = 1;
            if (v->kind == YN_SEQ) {
                srcs = v->items;
                nsrc = v->nitems;
            }
            /* PyYAML: a list of mappings merges in reverse order, so the
             * first mapping in the list wins. */
            for (size_t s = nsrc; s-- > 0;) {
                ynode_t *src = srcs[s];
                if (src->kind != YN_MAP) {
                    NERR(p, src, "merge key '<<' needs a mapping or a list of mappings");
                    continue;
                }
                for (size_t k = 0; k < src->npairs; k++) {
                    if (src->pairs[k].dup_line)
                        continue;
                    if (nm == cap) {
                        cap = cap ? 2 * cap : 16;
                        merged = xrealloc(merged, cap * sizeof *merged);
                    }
                    merged[nm] = src->pairs[k];
                    merged[nm].dup_line = merged[nm].dup_col = 0;
                    nm++;
                }
            }
        }
        /* merged pairs first, then the mapping's own ones */
        ypair_t *all = xmalloc((nm + m->npairs + 1) * sizeof *all);
        size_t na = 0;
        for (size_t i = 0; i < nm; i++)
            all[na++] = merged[i];
        size_t own_from = na;
        for (size_t i = 0; i < m->npairs; i++)
            if (!is_merge_key(m->pairs[i].key))
                all[na++] = m->pairs[i];
        free(merged);
        /* A key keeps its first position and takes its last value; a
         * merged key overridden by an own key is not a duplicate, an own
         * key repeated is. */
        ypair_t *res = xmalloc((na + 1) * sizeof *res);
        size_t out = 0;
        for (size_t i = 0; i < na; i++) {
            const char *ki = key_text(p, all[i].key);
            if (ki && i >= own_from) {
                size_t q;
                for (q = own_from; q < i; q++) {
                    const char *kq = key_text(p, all[q].key);
                    if (kq && strcmp(kq, ki) == 0)
                        break;
                }
                if (q < i) {
                    res[out] = all[i];
                    res[out].dup_line = all[q].key->line;
                    res[out].dup_col = all[q].key->col;
                    out++;
                    continue;
                }
            }
            size_t j = out;
            if (ki) {
                for (j = 0; j < out; j++) {
                    const char *kj = key_text(p, res[j].key);
                    if (!res[j].dup_line && kj && strcmp(kj, ki) == 0)
                        break;
                }
            }
            if (j < out) {
                res[j].val = all[i].val;
                res[j].key = all[i].key;
                continue;
            }
            res[out++] = all[i];
        }
        free(all);
        free(m->pairs);
        m->pairs = res;
        m->npairs = out;
        return;
    }
    for (size_t i = 1; i < m->npairs; i++) {
        const char *ki = key_text(p, m->pairs[i].key);
        if (!ki)
            continue;
        for (size_t j = 0; j < i; j++) {
            const char *kj = key_text(p, m->pairs[j].key);
            if (!m->pairs[j].dup_line && kj && strcmp(ki, kj) == 0) {
                m->pairs[i].dup_line = m->pairs[j].key->line;
                m->pairs[i].dup_col = m->pairs[j].key->col;
                break;
            }
        }
    }
}

/* Compose the node that starts with *ev (consumed). NULL on a fatal error. */
static ynode_t *compose(pst_t *p, yaml_event_t *ev, int depth)
{
    ynode_t *n = NULL;
    const char *anchor = NULL;
    if (p->nodes >= MAX_NODES) {
        perr(p, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
             "flow file too large (more than %d YAML nodes)", MAX_NODES);
        p->fatal = 1;
        yaml_event_delete(ev);
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        n = anchor_get(p, (const char *)ev->data.alias.anchor);
        if (!n) {
            perr(p, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                 "unknown alias '*%s' (anchors must be defined, and complete, before use)",
                 (const char *)ev->data.alias.anchor);
            p->fatal = 1;
        }
        yaml_event_delete(ev);
        return n;
    case YAML_SCALAR_EVENT: {
        n = node_new(p, YN_SCALAR, &ev->start_mark);
        n->text = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->len = ev->data.scalar.length;
        if (strlen(n->text) != n->len) {
            NERR(p, n, "NUL character in a string");
            n->len = strlen(n->text);
        }
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        const char *tag = (const char *)ev->data.scalar.tag;
        if (tag && strcmp(tag, "!") != 0)
            n->tag = xstrdup(tag);
        else if (tag)
            n->plain = 0;   /* "! x" is a string, as in PyYAML */
        anchor = (const char *)ev->data.scalar.anchor;
        if (anchor)
            anchor_set(p, anchor, n);
        yaml_event_delete(ev);
        return n;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        n = node_new(p, is_map ? YN_MAP : YN_SEQ, &ev->start_mark);
        const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
        if (tag && strcmp(tag, "!") != 0 && strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0)
            NERR(p, n, "tag '%s' is not supported here", tag);
        char *anc = NULL;
        const char *a = (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
        if (a)
            anc = xstrdup(a);
        yaml_event_delete(ev);
        if (depth >= MAX_DEPTH) {
            NERR(p, n, "nesting deeper than %d levels", MAX_DEPTH);
            p->fatal = 1;
            free(anc);
            return NULL;
        }
        size_t cap = 0;
        for (;;) {
            yaml_event_t e;
            if (next_event(p, &e) < 0) {
                free(anc);
                return NULL;
            }
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            ynode_t *child = compose(p, &e, depth + 1);
            if (!child) {
                free(anc);
                return NULL;
            }
            if (!is_map) {
                if (n->nitems == cap) {
                    cap = cap ? 2 * cap : 8;
                    n->items = xrealloc(n->items, cap * sizeof *n->items);
                }
                n->items[n->nitems++] = child;
                continue;
            }
            yaml_event_t e2;
            if (next_event(p, &e2) < 0) {
                free(anc);
                return NULL;
            }
            ynode_t *val = compose(p, &e2, depth + 1);
            if (!val) {
                free(anc);
                return NULL;
            }
            if (n->npairs == cap) {
                cap = cap ? 2 * cap : 8;
                n->pairs = xrealloc(n->pairs, cap * sizeof *n->pairs);
            }
            n->pairs[n->npairs].key = child;
            n->pairs[n->npairs].val = val;
            n->pairs[n->npairs].dup_line = n->pairs[n->npairs].dup_col = 0;
            n->npairs++;
        }
        if (is_map)
            map_finish(p, n);
        if (anc)
            anchor_set(p, anc, n);
        free(anc);
        return n;
    }
    default:
        perr(p, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1, "unexpected YAML event");
        p->fatal = 1;
        yaml_event_delete(ev);
        return NULL;
    }
}

/* The single document's root; NULL for an empty stream or an error. */
static ynode_t *compose_document(pst_t *p, const char *text, size_t len)
{
    yaml_parser_set_input_string(&p->parser, (const unsigned char *)text, len);
    yaml_event_t ev;
    ynode_t *root = NULL;
    if (next_event(p, &ev) < 0)
        return NULL;
    yaml_event_delete(&ev);                    /* STREAM_START */
    if (next_event(p, &ev) < 0)
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return NULL;
    }
    yaml_event_delete(&ev);                    /* DOCUMENT_START */
    if (next_event(p, &ev) < 0)
        return NULL;
    root = compose(p, &ev, 0);
    if (!root)
        return NULL;
    if (next_event(p, &ev) < 0)                /* DOCUMENT_END */
        return NULL;
    yaml_event_delete(&ev);
    if (next_event(p, &ev) < 0)
        return NULL;
    if (ev.type != YAML_STREAM_END_EVENT) {
        perr(p, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
             "a flow file holds one YAML document; found a second one");
        p->fatal = 1;
        root = NULL;
    }
    yaml_event_delete(&ev);
    return root;
}

/* ---- scalar typing ----------------------------------------------------- */

/* "!!int" for the standard tags, else the tag itself. */
static const char *tag_short(const char *tag, char *buf, size_t n)
{
    if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0) {
        snprintf(buf, n, "!!%s", tag + strlen(TAG_PREFIX));
        return buf;
    }
    return tag;
}

/* The scalar's value typed as PyYAML's safe_load types it; borrowed (cached
 * on the node).  Never NULL: an explicit tag that cannot construct the text
 * is reported and gives the text as a string. */
static json_t *scalar_json(pst_t *p, ynode_t *n)
{
    if (n->typed)
        return n->typed;
    if (!n->tag && !n->plain) {
        n->typed = json_stringn(n->text, n->len);
    } else if (n->tag && strcmp(n->tag, TAG_PREFIX "str") == 0) {
        n->typed = json_stringn(n->text, n->len);
    } else if (!n->tag) {
        /* Only these first characters can start a non-string plain scalar
         * (PyYAML's implicit resolvers); anything containing flow
         * indicators, comments or line breaks is a string as well. */
        if (n->len == 0) {
            n->typed = json_null();
        } else if (strchr("yYnNtTfFoO-+0123456789.<~=", n->text[0]) &&
                   !strpbrk(n->text, ",[]{}#\n\r\"'")) {
            char *doc = xasprintf("[%s]", n->text);
            json_t *v = NULL;
            if (yamljson_parse(doc, strlen(doc), NULL, &v, NULL) == 0 && json_is_array(v) &&
                json_array_size(v) == 1) {
                n->typed = json_incref(json_array_get(v, 0));
            }
            json_decref(v);
            free(doc);
        }
        if (!n->typed)
            n->typed = json_stringn(n->text, n->len);
    } else {
        buf_t b = BUF_INIT;
        buf_printf(&b, "[!<%s> \"", n->tag);
        for (size_t i = 0; i < n->len; i++) {
            unsigned char c = (unsigned char)n->text[i];
            if (c == '"' || c == '\\')
                buf_printf(&b, "\\%c", c);
            else if (c < 0x20)
                buf_printf(&b, "\\x%02x", c);
            else
                buf_putc(&b, (char)c);
        }
        buf_puts(&b, "\"]");
        json_t *v = NULL;
        if (yamljson_parse(b.data, b.len, NULL, &v, NULL) == 0 && json_is_array(v) &&
            json_array_size(v) == 1) {
            n->typed = json_incref(json_array_get(v, 0));
        } else {
            char tb[64];
            NERR(p, n, "cannot read '%.60s' as %s", n->text, tag_short(n->tag, tb, sizeof tb));
            n->typed = json_stringn(n->text, n->len);
        }
        json_decref(v);
        buf_free(&b);
    }
    if (!n->typed)   /* invalid UTF-8 cannot reach here (libyaml checks), but be safe */
        n->typed = json_string("");
    return n->typed;
}

/* A mapping key as Python's str() of the key (what yamljson does), or NULL
 * for a non-scalar key.  Borrowed from the node. */
static const char *key_text(pst_t *p, ynode_t *k)
{
    if (k->kind != YN_SCALAR)
        return NULL;
    json_t *v = scalar_json(p, k);
    if (json_is_string(v))
        return json_string_value(v);
    if (k->keystr)
        return k->keystr;
    char r[YAMLJSON_REPR_MAX];
    const char *py = yamljson_pynum_repr(v);
    if (py)
        k->keystr = xstrdup(py);
    else if (json_is_integer(v))
        k->keystr = xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) {
        yamljson_float_repr(json_real_value(v), r);
        k->keystr = xstrdup(r);
    } else if (json_is_true(v))
        k->keystr = xstrdup("True");
    else if (json_is_false(v))
        k->keystr = xstrdup("False");
    else if (json_is_null(v))
        k->keystr = xstrdup("None");
    else
        k->keystr = xstrndup(k->text, k->len);
    return k->keystr;
}

/* "a mapping", "a list", "a string", ... for "expected X, got Y". */
static const char *node_kind_name(pst_t *p, ynode_t *n)
{
    if (n->kind == YN_MAP) return "a mapping";
    if (n->kind == YN_SEQ) return "a list";
    json_t *v = scalar_json(p, n);
    if (json_is_string(v)) return "a string";
    if (json_is_integer(v)) return "an integer";
    if (json_is_real(v) || yamljson_pynum_repr(v)) return "a number";
    if (json_is_boolean(v)) return "a boolean";
    if (json_is_null(v)) return "null";
    return "a value";
}

/* The text of a mapping pair's key, or NULL after reporting why it cannot
 * be used (not a scalar; a duplicate — `where` names the mapping, e.g.
 * " in 'defaults'", "" at the top). */
static const char *pair_key(pst_t *p, ypair_t *pr, const char *where)
{
    const char *k = key_text(p, pr->key);
    if (!k) {
        NERR(p, pr->key, "a mapping key must be a scalar, not %s", node_kind_name(p, pr->key));
        return NULL;
    }
    if (pr->dup_line) {
        NERR(p, pr->key, "duplicate key '%s'%s (first at line %d, column %d)", k, where,
             pr->dup_line, pr->dup_col);
        return NULL;
    }
    return k;
}

static int node_is_null(pst_t *p, ynode_t *n)
{
    return n->kind == YN_SCALAR && json_is_null(scalar_json(p, n));
}

/* ---- node -> JSON ------------------------------------------------------ */

/* What node_to_json checks on the strings it meets. */
enum { CONV_PLAIN = 0, CONV_TEMPLATES = 1 };

static json_t *node_to_json(pst_t *p, ynode_t *n, int mode)
{
    if (++p->values > MAX_NODES) {
        if (p->values == MAX_NODES + 1)
            NERR(p, n, "value too large (more than %d items after expanding aliases)", MAX_NODES);
        return json_null();
    }
    if (n->kind == YN_SCALAR) {
        json_t *v = scalar_json(p, n);
        if (mode == CONV_TEMPLATES && json_is_string(v)) {
            nb_err_t e;
            if (tmpl_check(json_string_value(v), p->params, &e) < 0)
                NERR(p, n, "%s", e.msg);
        }
        return json_deep_copy(v);
    }
    if (n->kind == YN_SEQ) {
        json_t *a = json_array();
        for (size_t i = 0; i < n->nitems; i++)
            json_array_append_new(a, node_to_json(p, n->items[i], mode));
        return a;
    }
    json_t *o = json_object();
    for (size_t i = 0; i < n->npairs; i++) {
        ypair_t *pr = &n->pairs[i];
        const char *k = pair_key(p, pr, "");
        if (!k) continue;
        json_object_set_new(o, k, node_to_json(p, pr->val, mode));
    }
    return o;
}

/* ---- field helpers ----------------------------------------------------- */

/* The scalar's text for a string-by-nature field.  1 = got it, 0 = null
 * (absent), -1 = wrong type (reported). */
static int get_text(pst_t *p, ynode_t *n, const char *what, const char **out)
{
    if (n->kind != YN_SCALAR) {
        NERR(p, n, "'%s' must be a string, not %s", what, node_kind_name(p, n));
        return -1;
    }
    if (node_is_null(p, n))
        return 0;
    *out = n->text;
    return 1;
}

static int get_int(pst_t *p, ynode_t *n, const char *what, long long lo, long long hi, long long *out)
{
    json_t *v = n->kind == YN_SCALAR ? scalar_json(p, n) : NULL;
    if (!json_is_integer(v)) {
        NERR(p, n, "'%s' must be an integer, not %s", what, node_kind_name(p, n));
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        NERR(p, n, "'%s' must be between %lld and %lld, not %lld", what, lo, hi, x);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_bool(pst_t *p, ynode_t *n, const char *what, int *out)
{
    json_t *v = n->kind == YN_SCALAR ? scalar_json(p, n) : NULL;
    if (!json_is_boolean(v)) {
        NERR(p, n, "'%s' must be true or false, not %s", what, node_kind_name(p, n));
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

#define DURATION_MAX (100LL * 365 * 86400)

int flow_duration_parse(const char *s, int64_t *secs)
{
    static const char units[] = "dhms";
    static const int64_t mult[] = { 86400, 3600, 60, 1 };
    const char *q = s;
    if (!*q)
        return -EINVAL;
    int64_t total = 0;
    int last = -1;
    int digits_only = 1;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            digits_only = 0;
    if (digits_only) {
        if (strlen(s) > 12)
            return -ERANGE;
        *secs = strtoll(s, NULL, 10);
        return *secs > DURATION_MAX ? -ERANGE : 0;
    }
    while (*q) {
        if (*q < '0' || *q > '9')
            return -EINVAL;
        int64_t v = 0;
        int nd = 0;
        while (*q >= '0' && *q <= '9') {
            if (++nd > 12)
                return -ERANGE;
            v = v * 10 + (*q++ - '0');
        }
        const char *u = *q ? strchr(units, *q) : NULL;
        if (!u)
            return -EINVAL;
        int ui = (int)(u - units);
        if (ui <= last)
            return -EINVAL;   /* units largest first, each once */
        last = ui;
        q++;
        if (v > DURATION_MAX / mult[ui])
            return -ERANGE;
        total += v * mult[ui];
        if (total > DURATION_MAX)
            return -ERANGE;
    }
    *secs = total;
    return 0;
}

/* A duration field: an integer (seconds) or a duration string. */
static int get_duration(pst_t *p, ynode_t *n, const char *what, int64_t *out)
{
    json_t *v = n->kind == YN_SCALAR ? scalar_json(p, n) : NULL;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0 || x > DURATION_MAX) {
            NERR(p, n, "'%s' must be between 0 and %lld seconds, not %" JSON_INTEGER_FORMAT, what,
                 DURATION_MAX, x);
            return -1;
        }
        *out = x;
        return 0;
    }
    if (!json_is_string(v)) {
        NERR(p, n, "'%s' must be a duration like 30s, 5m, 1h30m, 2d or a number of seconds, not %s",
             what, node_kind_name(p, n));
        return -1;
    }
    int rc = flow_duration_parse(json_string_value(v), out);
    if (rc == -ERANGE) {
        NERR(p, n, "bad duration '%.40s' for '%s': longer than 100 years", n->text, what);
        return -1;
    }
    if (rc < 0) {
        NERR(p, n, "bad duration '%.40s' for '%s': expected e.g. 30s, 5m, 1h30m, 2d or a number "
             "of seconds", n->text, what);
        return -1;
    }
    return 0;
}

/* Report an unknown key with the best hint we have. */
static void unknown_key(pst_t *p, ynode_t *k, const char *kt, const char *where,
                        const char *const *known, size_t nknown,
                        const char *const *other, size_t nother, const char *other_where)
{
    for (size_t i = 0; i < nother; i++) {
        if (strcmp(kt, other[i]) == 0) {
            NERR(p, k, "unknown key '%s'%s; '%s' belongs %s", kt, where, kt, other_where);
            return;
        }
    }
    const char *sug = errlist_closest(kt, known, nknown);
    if (sug) {
        NERR(p, k, "unknown key '%.64s'%s; did you mean '%s'?", kt, where, sug);
        return;
    }
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < nknown; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", known[i]);
    NERR(p, k, "unknown key '%.64s'%s (known keys: %s)", kt, where, b.data);
    buf_free(&b);
}

/* Index of name in table, or -1. */
static int key_index(const char *k, const char *const *table, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, table[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- names, paths, commands -------------------------------------------- */

int flow_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FLOW_NAME_MAX)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int flow_task_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FLOW_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-' && c != '.')))
            return 0;
    }
    return 1;
}

/* base/rel, with "." and ".." components folded lexically (so messages
 * show a clean absolute path); rel is returned as is when absolute. */
static char *path_join(const char *base, const char *rel)
{
    char *joined = rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", base, rel);
    size_t n = strlen(joined);
    char **parts = xmalloc((n / 2 + 2) * sizeof *parts);
    size_t np = 0;
    int absolute = joined[0] == '/';
    char *save = NULL;
    for (char *tok = strtok_r(joined, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (strcmp(tok, ".") == 0)
            continue;
        if (strcmp(tok, "..") == 0 && np > 0 && strcmp(parts[np - 1], "..") != 0) {
            np--;
            continue;
        }
        if (strcmp(tok, "..") == 0 && absolute)
            continue;
        parts[np++] = tok;
    }
    buf_t b = BUF_INIT;
    if (absolute)
        buf_putc(&b, '/');
    for (size_t i = 0; i < np; i++)
        buf_printf(&b, "%s%s", i ? "/" : "", parts[i]);
    if (b.len == 0)
        buf_putc(&b, '.');
    free(parts);
    free(joined);
    return buf_detach(&b);
}

static void argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

int flow_split_command(const char *s, char ***argvp, size_t *argcp, nb_err_t *err)
{
    char **argv = NULL;
    size_t argc = 0, cap = 0;
    buf_t w = BUF_INIT;
    int inword = 0;
    const char *q = s;
    int rc = 0;
    *argvp = NULL;
    *argcp = 0;
    for (;;) {
        char c = *q;
        if (c == '\0' || ((c == ' ' || c == '\t' || c == '\n') && 1)) {
            if (inword) {
                if (argc + 2 > cap) {
                    cap = cap ? 2 * cap : 8;
                    argv = xrealloc(argv, cap * sizeof *argv);
                }
                argv[argc++] = buf_detach(&w);
                if (!argv[argc - 1])
                    argv[argc - 1] = xstrdup("");
                inword = 0;
            }
            if (c == '\0')
                break;
            q++;
            continue;
        }
        if (c == '\'') {
            const char *end = strchr(q + 1, '\'');
            if (!end) {
                rc = err_set(err, -EINVAL, "unterminated ' in command");
                goto fail;
            }
            buf_append(&w, q + 1, (size_t)(end - q - 1));
            buf_reserve(&w, 1);
            inword = 1;
            q = end + 1;
            continue;
        }
        if (c == '"') {
            q++;
            for (;;) {
                if (*q == '\0') {
                    rc = err_set(err, -EINVAL, "unterminated \" in command");
                    goto fail;
                }
                if (*q == '"')
                    break;
                if (*q == '\\' && q[1] && strchr("\"\\$`\n", q[1])) {
                    if (q[1] != '\n')
                        buf_putc(&w, q[1]);
                    q += 2;
                    continue;
                }
                if (*q == '$' || *q == '`') {
                    rc = err_set(err, -EINVAL, "command uses shell expansion '%c' at offset %zu, but "
                                 "it runs without a shell; escape it as \\%c, or use a list such as "
                                 "[\"sh\", \"-c\", \"...\"]", *q, (size_t)(q - s) + 1, *q);
                    goto fail;
                }
                buf_putc(&w, *q++);
            }
            buf_reserve(&w, 1);
            inword = 1;
            q++;
            continue;
        }
        if (c == '\\') {
            if (q[1] == '\0') {
                rc = err_set(err, -EINVAL, "command ends with a lone backslash");
                goto fail;
            }
            if (q[1] != '\n') {
                buf_putc(&w, q[1]);
                inword = 1;
            }
            q += 2;
            continue;
        }
        if (strchr("|&;<>()`$", c) || (c == '#' && !inword)) {
            rc = err_set(err, -EINVAL, "command uses shell syntax '%c' at offset %zu, but it runs "
                         "without a shell; quote it, or use a list such as [\"sh\", \"-c\", \"...\"]",
                         c, (size_t)(q - s) + 1);
            goto fail;
        }
        buf_putc(&w, c);
        inword = 1;
        q++;
    }
    if (argc == 0) {
        rc = err_set(err, -EINVAL, "command is empty");
        goto fail;
    }
    argv[argc] = NULL;
    *argvp = argv;
    *argcp = argc;
    return 0;
fail:
    buf_free(&w);
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return rc;
}

/* ---- dates ------------------------------------------------------------- */

static int parse_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

/* "YYYY-MM-DD", optionally followed by [T ]HH:MM[:SS] and an offset (Z or
 * +HH:MM); without an offset the time is in the flow's zone. */
static int parse_date(const char *s, const tz_t *tz, int64_t *utc)
{
    struct tz_tm tm;
    memset(&tm, 0, sizeof tm);
    const char *q = s;
    if (parse_digits(&q, 4, &tm.year) < 0 || *q++ != '-' || parse_digits(&q, 2, &tm.month) < 0 ||
        *q++ != '-' || parse_digits(&q, 2, &tm.day) < 0)
        return -EINVAL;
    int has_off = 0, off = 0;
    if (*q == 'T' || *q == 't' || *q == ' ') {
        q++;
        while (*q == ' ')
            q++;
        if (parse_digits(&q, q[0] && q[1] == ':' ? 1 : 2, &tm.hour) < 0 || *q++ != ':' ||
            parse_digits(&q, 2, &tm.min) < 0)
            return -EINVAL;
        if (*q == ':') {
            q++;
            if (parse_digits(&q, 2, &tm.sec) < 0)
                return -EINVAL;
            if (*q == '.') {   /* fractions are accepted and dropped */
                q++;
                while (*q >= '0' && *q <= '9')
                    q++;
            }
        }
        while (*q == ' ')
            q++;
        if (*q == 'Z' || *q == 'z') {
            has_off = 1;
            q++;
        } else if (*q == '+' || *q == '-') {
            int sign = *q++ == '-' ? -1 : 1, oh, om = 0;
            if (parse_digits(&q, 2, &oh) < 0)
                return -EINVAL;
            if (*q == ':')
                q++;
            if (*q && parse_digits(&q, 2, &om) < 0)
                return -EINVAL;
            if (oh > 23 || om > 59)
                return -EINVAL;
            has_off = 1;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*q)
        return -EINVAL;
    if (tm.year < 1 || tm.month < 1 || tm.month > 12 || tm.day < 1 ||
        tm.day > tz_days_in_month(tm.year, tm.month) || tm.hour > 23 || tm.min > 59 || tm.sec > 59)
        return -EINVAL;
    if (has_off || !tz) {
        int64_t wall = tz_days_from_civil(tm.year, tm.month, tm.day) * 86400 + tm.hour * 3600 +
                       tm.min * 60 + tm.sec;
        *utc = wall - off;
        return 0;
    }
    int rc = tz_from_local(tz, &tm, 0, utc);
    return rc < 0 ? rc : 0;
}

/* ---- the schema -------------------------------------------------------- */

static const char *const flow_keys[] = {
    "name", "description", "owner", "schedule", "timezone", "start_date", "end_date", "catchup",
    "max_active_runs", "params", "on_failure", "on_success", "defaults", "tasks", "spark", "files",
};
enum {
    FK_NAME, FK_DESCRIPTION, FK_OWNER, FK_SCHEDULE, FK_TIMEZONE, FK_START, FK_END, FK_CATCHUP,
    FK_MAX_ACTIVE, FK_PARAMS, FK_ON_FAILURE, FK_ON_SUCCESS, FK_DEFAULTS, FK_TASKS, FK_SPARK,
    FK_FILES, FK_COUNT
};

static void parse_limits(pst_t *p, ynode_t *v, iso_limits_t *out);

static const char *const task_keys[] = {
    "notebook", "command", "kernel", "parameters", "env", "cwd", "after", "retries", "retry_delay",
    "retry_exponential_backoff", "max_retry_delay", "timeout", "cell_timeout", "keep_history",
    "post_mortem", "trigger_rule", "spark", "spark_submit", "description", "name", "limits",
};
enum {
    TK_NOTEBOOK, TK_COMMAND, TK_KERNEL, TK_PARAMETERS, TK_ENV, TK_CWD, TK_AFTER, TK_RETRIES,
    TK_RETRY_DELAY, TK_BACKOFF, TK_MAX_RETRY_DELAY, TK_TIMEOUT, TK_CELL_TIMEOUT, TK_KEEP_HISTORY,
    TK_POST_MORTEM, TK_TRIGGER,
    TK_SPARK, TK_SUBMIT, TK_DESCRIPTION, TK_NAME, TK_LIMITS, TK_COUNT
};

/* Keys `defaults` accepts: the task policy keys. */
static const int default_ok[TK_COUNT] = {
    [TK_KERNEL] = 1, [TK_ENV] = 1, [TK_CWD] = 1, [TK_RETRIES] = 1, [TK_RETRY_DELAY] = 1,
    [TK_BACKOFF] = 1, [TK_MAX_RETRY_DELAY] = 1, [TK_TIMEOUT] = 1, [TK_CELL_TIMEOUT] = 1,
    [TK_KEEP_HISTORY] = 1,
    [TK_POST_MORTEM] = 1,
    [TK_TRIGGER] = 1, [TK_SPARK] = 1, [TK_LIMITS] = 1,
};

static const char *const trigger_names[] = {
    "all_success", "all_done", "one_failed", "one_success", "none_failed",
};

const char *flow_trigger_name(flow_trigger_t t)
{
    return (unsigned)t < 5 ? trigger_names[t] : "?";
}

int flow_trigger_parse(const char *s)
{
    return key_index(s, trigger_names, 5);
}

/* A task being built: the model plus the nodes needed after all tasks are
 * known (after) and which fields were set explicitly. */
typedef struct tdraft {
    ynode_t *after;           /* NULL if absent */
    ynode_t *parameters;      /* the task's own parameters: mapping, NULL if none */
    ynode_t *keynode;         /* for positions */
    int      set[TK_COUNT];
} tdraft_t;

static void spark_free(flow_spark_t *s)
{
    free(s->cluster);
    free(s->worker_memory);
    json_decref(s->conf);
    memset(s, 0, sizeof *s);
}

static void spark_copy(flow_spark_t *dst, const flow_spark_t *src)
{
    spark_free(dst);
    *dst = *src;
    dst->cluster = src->cluster ? xstrdup(src->cluster) : NULL;
    dst->worker_memory = src->worker_memory ? xstrdup(src->worker_memory) : NULL;
    dst->conf = src->conf ? json_deep_copy(src->conf) : NULL;
}

static void submit_free(flow_submit_t *u)
{
    if (!u)
        return;
    free(u->application);
    free(u->application_path);
    argv_free(u->args);
    json_decref(u->conf);
    argv_free(u->py_files);
    free(u->main_class);
    free(u);
}

static void task_free_fields(flow_task_t *t)
{
    spark_free(&t->spark);
    submit_free(t->submit);
    free(t->name);
    free(t->notebook);
    free(t->notebook_path);
    free(t->notebook_ws);
    argv_free(t->argv);
    free(t->kernel);
    json_decref(t->parameters);
    json_decref(t->env);
    free(t->cwd);
    free(t->parents);
    free(t->parent_pos);
    free(t->children);
}

/* env: a mapping of NAME to a scalar (its text as written). */
static json_t *parse_env(pst_t *p, ynode_t *n, const char *where)
{
    json_t *o = json_object();
    if (node_is_null(p, n))
        return o;
    if (n->kind != YN_MAP) {
        NERR(p, n, "'env'%s must be a mapping of NAME: value, not %s", where, node_kind_name(p, n));
        return o;
    }
    for (size_t i = 0; i < n->npairs; i++) {
        ypair_t *pr = &n->pairs[i];
        const char *k = key_text(p, pr->key);
        if (!k || !*k || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_') ||
            strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(k)) {
            NERR(p, pr->key, "bad environment variable name '%.64s' (letters, digits and _, not "
                 "starting with a digit)", k ? k : "");
            continue;
        }
        if (pr->dup_line) {
            NERR(p, pr->key, "duplicate key '%s' (first at line %d, column %d)", k, pr->dup_line,
                 pr->dup_col);
            continue;
        }
        if (pr->val->kind != YN_SCALAR) {
            NERR(p, pr->val, "env value of '%s' must be a string, not %s", k, node_kind_name(p, pr->val));
            continue;
        }
        const char *v = node_is_null(p, pr->val) ? "" : pr->val->text;
        nb_err_t e;
        if (tmpl_check(v, p->params, &e) < 0) {
            NERR(p, pr->val, "%s", e.msg);
            continue;
        }
        json_object_set_new(o, k, json_string(v));
    }
    return o;
}

/* conf: a mapping of Spark property name to a scalar (its text as written). */
static json_t *parse_conf(pst_t *p, ynode_t *n, const char *what)
{
    json_t *o = json_object();
    if (node_is_null(p, n))
        return o;
    if (n->kind != YN_MAP) {
        NERR(p, n, "'%s' must be a mapping of spark.property: value, not %s", what, node_kind_name(p, n));
        return o;
    }
    for (size_t i = 0; i < n->npairs; i++) {
        ypair_t *pr = &n->pairs[i];
        const char *k = key_text(p, pr->key);
        if (!k || strncmp(k, "spark.", 6) != 0 || strcspn(k, " \t\n=") != strlen(k)) {
            /* spark-submit ignores other keys with only a warning; we refuse them */
            NERR(p, pr->key, "'%s': '%.64s' is not a Spark property (spark.something, no spaces or '=')",
                 what, k ? k : "");
            continue;
        }
        if (pr->dup_line) {
            NERR(p, pr->key, "duplicate key '%s' (first at line %d, column %d)", k, pr->dup_line, pr->dup_col);
            continue;
        }
        if (pr->val->kind != YN_SCALAR || node_is_null(p, pr->val)) {
            NERR(p, pr->val, "the value of '%s' must be a string or number, not %s", k, node_kind_name(p, pr->val));
            continue;
        }
        json_object_set_new(o, k, json_string(pr->val->text));
    }
    return o;
}

/* A file of a Spark application: resolved against the flow's directory and
 * checked, unless it is a URL-like reference (local://, hdfs://, s3a://, ...)
 * that only Spark can read. */
static char *spark_file(pst_t *p, ynode_t *n, const char *s, const char *what)
{
    if (strstr(s, "://"))
        return xstrdup(s);
    char *path = path_join(p->base_dir, s);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        NERR(p, n, "%s '%s' not found (looked for %s)", what, s, path);
    return path;
}

/* An ephemeral cluster of the default size: 1 worker, 1 core, 1g. */
static void spark_ephemeral(flow_spark_t *sp)
{
    sp->kind = FLOW_SPARK_EPHEMERAL;
    sp->workers = sp->worker_cores = 1;
    sp->worker_memory = xstrdup("1g");
}

/* spark: false | true | {cluster: NAME} | {workers, worker_cores, worker_memory, connect, conf} */
static void parse_spark(pst_t *p, ynode_t *n, flow_spark_t *sp)
{
    static const char *const keys[] = { "cluster", "workers", "worker_cores", "worker_memory", "connect", "conf" };
    spark_free(sp);
    sp->conf = json_object();
    if (node_is_null(p, n))
        return;
    if (n->kind == YN_SCALAR) {
        int b;
        if (get_bool(p, n, "spark", &b) == 0 && b) spark_ephemeral(sp);
        return;
    }
    if (n->kind != YN_MAP) {
        NERR(p, n, "'spark' must be true, false or a mapping (cluster, or workers, worker_cores, "
             "worker_memory, connect, conf), not %s", node_kind_name(p, n));
        return;
    }
    spark_ephemeral(sp);
    ynode_t *sized = NULL;
    for (size_t i = 0; i < n->npairs; i++) {
        ypair_t *pr = &n->pairs[i];
        const char *k = pair_key(p, pr, " in 'spark'");
        if (!k) continue;
        int key = key_index(k, keys, 6);
        long long x;
        const char *s;
        switch (key) {
        case 0:
            if (get_text(p, pr->val, "cluster", &s) > 0) {
                sp->kind = FLOW_SPARK_CLUSTER;
                free(sp->cluster);
                sp->cluster = xstrdup(s);
                if (!flow_task_name_valid(s))
                    NERR(p, pr->val, "invalid cluster name '%.64s' (letters, digits, '.', '_' and '-')", s);
            }
            break;
        case 1:
        case 2:
            sized = pr->key;
            if (get_int(p, pr->val, k, 1, key == 1 ? 64 : 1024, &x) == 0)
                *(key == 1 ? &sp->workers : &sp->worker_cores) = (int)x;
            break;
        case 3:
            sized = pr->key;
            if (get_text(p, pr->val, "worker_memory", &s) > 0) {
                if (scluster_memory_ok(s) < 0)
                    NERR(p, pr->val, "'worker_memory' %.32s: a size such as 512m or 2g expected", s);
                free(sp->worker_memory);
                sp->worker_memory = xstrdup(s);
            }
            break;
        case 4:
            get_bool(p, pr->val, "connect", &sp->connect);
            break;
        case 5:
            json_decref(sp->conf);
            sp->conf = parse_conf(p, pr->val, "spark.conf");
            break;
        default:
            unknown_key(p, pr->key, k, " in 'spark'", keys, 6, NULL, 0, NULL);
        }
    }
    if (sp->kind == FLOW_SPARK_CLUSTER && sized)
        NERR(p, sized, "'%s' sizes an ephemeral cluster; a named cluster has the size it was started "
             "with (nbhub spark up)", key_text(p, sized));
}

/* spark_submit: {application, args, conf, py_files, class} */
static void parse_submit(pst_t *p, ynode_t *n, flow_task_t *t)
{
    static const char *const keys[] = { "application", "args", "conf", "py_files", "class" };
    submit_free(t->submit);
    flow_submit_t *u = t->submit = xcalloc(1, sizeof *u);
    u->conf = json_object();
    if (n->kind != YN_MAP) {
        NERR(p, n, "'spark_submit' must be a mapping (application, args, conf, py_files, class), not %s",
             node_kind_name(p, n));
        return;
    }
    for (size_t i = 0; i < n->npairs; i++) {
        ypair_t *pr = &n->pairs[i];
        const char *k = pair_key(p, pr, " in 'spark_submit'");
        if (!k) continue;
        int key = key_index(k, keys, 5);
        const char *s;
        ynode_t *v = pr->val;
        switch (key) {
        case 0:
            if (get_text(p, v, "application", &s) > 0) {
                u->application = xstrdup(s);
                u->application_path = spark_file(p, v, s, "application");
            }
            break;
        case 1:
        case 3: {
            /* a list; py_files also as "a.py,b.py" like --py-files */
            char ***out = key == 1 ? &u->args : &u->py_files;
            size_t *cnt = key == 1 ? &u->nargs : &u->npy_files;
            argv_free(*out);
            *out = NULL;
            *cnt = 0;
            if (node_is_null(p, v)) break;
            if (key == 3 && v->kind == YN_SCALAR) {
                char *copy = xstrdup(v->text), *save = NULL;
                size_t n1 = 1;
                for (const char *c = copy; *c; c++) n1 += *c == ',';
                *out = xcalloc(n1 + 1, sizeof **out);
                for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                    (*out)[(*cnt)++] = spark_file(p, v, tok, "py_files entry");
                free(copy);
                break;
            }
            if (v->kind != YN_SEQ) {
                NERR(p, v, "'%s' must be a list, not %s", k, node_kind_name(p, v));
                break;
            }
            *out = xcalloc(v->nitems + 1, sizeof **out);
            for (size_t j = 0; j < v->nitems; j++) {
                ynode_t *it = v->items[j];
                if (it->kind != YN_SCALAR || node_is_null(p, it)) {
                    NERR(p, it, "'%s' items must be strings, not %s", k, node_kind_name(p, it));
                    continue;
                }
                nb_err_t e;
                if (key == 1 && tmpl_check(it->text, p->params, &e) < 0)
                    NERR(p, it, "%s", e.msg);
                (*out)[(*cnt)++] = key == 1 ? xstrdup(it->text) : spark_file(p, it, it->text, "py_files entry");
            }
            break;
        }
        case 2:
            json_decref(u->conf);
            u->conf = parse_conf(p, v, "spark_submit.conf");
            break;
        case 4:
            if (get_text(p, v, "class", &s) > 0) {
                free(u->main_class);
                u->main_class = xstrdup(s);
            }
            break;
        default:
            unknown_key(p, pr->key, k, " in 'spark_submit'", keys, 5, NULL, 0, NULL);
        }
    }
    if (!u->application)
        NERR(p, n, "'spark_submit' needs an 'application' (a .py file or a .jar)");
    else if (!u->main_class && strlen(u->application) > 4 &&
             !strcmp(u->application + strlen(u->application) - 4, ".jar"))
        NERR(p, n, "'spark_submit': a .jar application needs its main 'class'");
}

/* One task key.  Shared by tasks and `defaults` (where t is the defaults
 * template). */
static void task_field(pst_t *p, flow_task_t *t, tdraft_t *d, int key, ynode_t *v, const char *where)
{
    const char *s = NULL;
    long long x;
    d->set[key] = 1;
    switch (key) {
    case TK_NOTEBOOK:
        if (v->kind == YN_SCALAR && v->text && strcmp(v->text, "~") == 0) {
            /* An unquoted ~ is YAML's null, but meant as the workspace. */
            NERR(p, v, "notebook '~' alone names the workspace, not a notebook in it");
            break;
        }
        if (get_text(p, v, "notebook", &s) > 0) {
            if (!*s) {
                NERR(p, v, "'notebook' is empty");
                break;
            }
            free(t->notebook);
            free(t->notebook_path);
            free(t->notebook_ws);
            t->notebook = xstrdup(s);
            t->notebook_path = t->notebook_ws = NULL;
            if (workspace_is_tilde(s)) {
                /* The owner's workspace: whose it is, and what is in it, is
                 * known when the task runs (sched_run.c), not here; the
                 * path is checked now so "~bob/" or "~/../x" never loads. */
                nb_err_t e;
                if (workspace_rel(s, &t->notebook_ws, &e) < 0) NERR(p, v, "notebook %s", e.msg);
                break;
            }
            t->notebook_path = path_join(p->base_dir, s);
            struct stat st;
            if (stat(t->notebook_path, &st) < 0)
                NERR(p, v, "notebook '%s' not found (looked for %s)", s, t->notebook_path);
            else if (!S_ISREG(st.st_mode))
                NERR(p, v, "notebook '%s' is not a regular file (%s)", s, t->notebook_path);
        } else {
            d->set[key] = 0;
        }
        break;
    case TK_COMMAND:
        argv_free(t->argv);
        t->argv = NULL;
        t->argc = 0;
        if (v->kind == YN_SEQ) {
            if (v->nitems == 0) {
                NERR(p, v, "'command' is empty");
                break;
            }
            t->argv = xcalloc(v->nitems + 1, sizeof *t->argv);
            for (size_t i = 0; i < v->nitems; i++) {
                ynode_t *it = v->items[i];
                if (it->kind != YN_SCALAR || node_is_null(p, it)) {
                    NERR(p, it, "'command' items must be strings, not %s", node_kind_name(p, it));
                    t->argv[t->argc++] = xstrdup("");
                    continue;
                }
                nb_err_t e;
                if (tmpl_check(it->text, p->params, &e) < 0)
                    NERR(p, it, "%s", e.msg);
                t->argv[t->argc++] = xstrdup(it->text);
            }
        } else if (get_text(p, v, "command", &s) > 0) {
            nb_err_t e;
            if (flow_split_command(s, &t->argv, &t->argc, &e) < 0) {
                NERR(p, v, "%s", e.msg);
                break;
            }
            for (size_t i = 0; i < t->argc; i++)
                if (tmpl_check(t->argv[i], p->params, &e) < 0) {
                    NERR(p, v, "%s", e.msg);
                    break;
                }
        } else {
            d->set[key] = 0;
        }
        break;
    case TK_KERNEL:
        if (get_text(p, v, "kernel", &s) > 0) {
            free(t->kernel);
            t->kernel = xstrdup(s);
        }
        break;
    case TK_PARAMETERS:
        json_decref(t->parameters);
        if (node_is_null(p, v)) {
            t->parameters = json_object();
        } else if (v->kind != YN_MAP) {
            NERR(p, v, "'parameters' must be a mapping of name: value, not %s", node_kind_name(p, v));
            t->parameters = json_object();
        } else {
            t->parameters = node_to_json(p, v, CONV_TEMPLATES);
            d->parameters = v;
        }
        break;
    case TK_ENV: {
        json_t *e = parse_env(p, v, where);
        /* defaults' env, then the task's, key by key */
        json_object_update(t->env, e);
        json_decref(e);
        break;
    }
    case TK_CWD:
        if (get_text(p, v, "cwd", &s) > 0) {
            if (workspace_is_tilde(s)) {
                /* Only a notebook is looked up in the workspace; its task
                 * starts in the notebook's directory already. */
                NERR(p, v, "cwd '%s': '~' is not expanded in 'cwd' (a '~/' notebook's kernel starts in "
                     "the notebook's directory; give cwd relative to the flow file)", s);
                break;
            }
            free(t->cwd);
            t->cwd = path_join(p->base_dir, s);
            struct stat st;
            if (stat(t->cwd, &st) < 0 || !S_ISDIR(st.st_mode))
                NERR(p, v, "cwd '%s' is not a directory (looked for %s)", s, t->cwd);
        }
        break;
    case TK_AFTER:
        d->after = v;
        break;
    case TK_RETRIES:
        if (get_int(p, v, "retries", 0, 100, &x) == 0)
            t->retries = (int)x;
        break;
    case TK_RETRY_DELAY:
        get_duration(p, v, "retry_delay", &t->retry_delay);
        break;
    case TK_BACKOFF:
        get_bool(p, v, "retry_exponential_backoff", &t->retry_exponential_backoff);
        break;
    case TK_MAX_RETRY_DELAY:
        get_duration(p, v, "max_retry_delay", &t->max_retry_delay);
        break;
    case TK_TIMEOUT:
        get_duration(p, v, "timeout", &t->timeout);
        break;
    case TK_CELL_TIMEOUT:
        get_duration(p, v, "cell_timeout", &t->cell_timeout);
        break;
    case TK_KEEP_HISTORY:
        get_bool(p, v, "keep_history", &t->keep_history);
        break;
    case TK_POST_MORTEM:
        get_duration(p, v, "post_mortem", &t->post_mortem);
        break;
    case TK_TRIGGER:
        if (get_text(p, v, "trigger_rule", &s) > 0) {
            int r = flow_trigger_parse(s);
            if (r < 0) {
                const char *sug = errlist_closest(s, trigger_names, 5);
                if (sug)
                    NERR(p, v, "unknown trigger_rule '%.64s'; did you mean '%s'?", s, sug);
                else
                    NERR(p, v, "unknown trigger_rule '%.64s' (one of all_success, all_done, "
                         "one_failed, one_success, none_failed)", s);
            } else {
                t->trigger_rule = (flow_trigger_t)r;
            }
        }
        break;
    case TK_SPARK:
        parse_spark(p, v, &t->spark);
        break;
    case TK_SUBMIT:
        parse_submit(p, v, t);
        break;
    case TK_DESCRIPTION:
        get_text(p, v, "description", &s);
        break;
    case TK_NAME:
        break;   /* handled by the caller */
    case TK_LIMITS:
        parse_limits(p, v, &t->limits);
        break;
    }
}

/* limits: {memory: 4g, cpu: 2, pids: 512} (iso/limits.h); enforced with
 * cgroups by nbhub serve, together with the owner's own limits. */
static void parse_limits(pst_t *p, ynode_t *v, iso_limits_t *out)
{
    if (v->kind != YN_MAP) {
        NERR(p, v, "'limits' must be a mapping such as {memory: 4g, cpu: 2, pids: 512}");
        return;
    }
    for (size_t i = 0; i < v->npairs; i++) {
        ypair_t *pr = &v->pairs[i];
        const char *k = pair_key(p, pr, " in limits"), *s = NULL, *why = NULL;
        if (!k) continue;
        if (pr->val->kind != YN_SCALAR || node_is_null(p, pr->val)) {
            NERR(p, pr->val, "limit '%s' must be a value such as 4g, 2 or 512", k);
            continue;
        }
        s = pr->val->text;
        int rc = limits_set(out, k, s, &why);
        if (rc == -ENOENT) NERR(p, pr->key, "unknown limit '%.64s' (memory, cpu or pids)", k);
        else if (rc < 0) NERR(p, pr->val, "limit '%s' %s", k, why);
    }
}

/* Built-in task defaults (docs/flows.md). */
static void task_init_defaults(flow_task_t *t)
{
    memset(t, 0, sizeof *t);
    t->retries = 0;
    t->retry_delay = 30;
    t->retry_exponential_backoff = 0;
    t->max_retry_delay = 3600;
    t->timeout = 0;
    t->cell_timeout = 0;
    t->trigger_rule = FLOW_TRIGGER_ALL_SUCCESS;
    t->parameters = json_object();
    t->env = json_object();
}

/* Copy the defaults template into a fresh task. */
static void task_from_defaults(flow_task_t *t, const flow_task_t *def)
{
    task_init_defaults(t);
    t->retries = def->retries;
    t->retry_delay = def->retry_delay;
    t->retry_exponential_backoff = def->retry_exponential_backoff;
    t->max_retry_delay = def->max_retry_delay;
    t->timeout = def->timeout;
    t->cell_timeout = def->cell_timeout;
    t->keep_history = def->keep_history;
    t->post_mortem = def->post_mortem;
    t->limits = def->limits;
    t->trigger_rule = def->trigger_rule;
    t->kernel = def->kernel ? xstrdup(def->kernel) : NULL;
    t->cwd = def->cwd ? xstrdup(def->cwd) : NULL;
    json_object_update(t->env, def->env);
    spark_copy(&t->spark, &def->spark);
}

/* A schedule that can never fire is a mistake ("0 0 31 2 *", or a 29
 * February between a start_date and end_date that hold none): refused at
 * load rather than shown as a flow whose next run is never. */
static void check_fires(pst_t *p, ynode_t *n, const flow_t *f)
{
    if (!f->cron || (!f->tz && !cron_is_interval(f->cron)))
        return;   /* the zone's own error was reported */
    int64_t from = f->has_start ? f->start_date : FLOW_TIME_MIN;
    int64_t to = f->has_end ? f->end_date : FLOW_TIME_MAX - 1;
    int64_t next = 0;
    int rc = cron_next(f->cron, f->tz, from - 1, &next);
    if (rc == -ENOENT || (rc == 0 && next > to && !f->has_start && !f->has_end))
        NERR(p, n, "schedule '%.64s' never fires", f->schedule);
    else if (rc == 0 && next > to)
        NERR(p, n, "schedule '%.64s' never fires between start_date and end_date", f->schedule);
    else if (rc < 0)
        NERR(p, n, "schedule '%.64s' has no fire time in " FLOW_TIME_WINDOW, f->schedule);
}

static const char *const notebook_only[] = { "kernel", "parameters", "cell_timeout", "keep_history",
                                             "post_mortem" };

/* The parameter translator a notebook task will get, as `nbhub run` picks
 * it: the language of the kernel spec (the task's kernel, else the
 * notebook's), else the notebook's own metadata.  NULL when it cannot be
 * known now (no such notebook yet, an unknown language): the names are
 * then checked when the task runs. */
static char *task_language(const flow_task_t *t)
{
    json_t *nb = NULL;
    if (!t->notebook_path || nb_load_file(t->notebook_path, &nb, NULL) < 0) return NULL;
    const char *kname = t->kernel ? t->kernel : nb_kernel_name(nb);
    kspec_t *spec = NULL;
    char *lang = NULL;
    if (kname && kspec_find(kname, &spec, NULL) == 0 && spec->language && *spec->language)
        lang = xstrdup(spec->language);
    else if (nb_language(nb))
        lang = xstrdup(nb_language(nb));
    kspec_free(spec);
    json_decref(nb);
    const char *key;
    if (lang && nbparams_find_translator(NULL, lang, &key, NULL) < 0) {
        free(lang);
        lang = NULL;
    }
    return lang;
}

/* Each name under a notebook task's `parameters` becomes code in the
 * notebook's parameters cell: it must be an identifier of its language. */
static void check_parameter_names(pst_t *p, flow_task_t *t, ynode_t *m)
{
    char *lang = task_language(t);
    if (!lang) return;
    for (size_t i = 0; i < m->npairs; i++) {
        const char *k = key_text(p, m->pairs[i].key);
        nb_err_t e;
        if (k && !m->pairs[i].dup_line && nbparams_check_name(k, lang, &e) < 0)
            NERR(p, m->pairs[i].key, "task '%s': %s", t->name, e.msg);
    }
    free(lang);
}

/* Parse one task mapping into t (already initialised from defaults). */
static void parse_task(pst_t *p, flow_task_t *t, tdraft_t *d, ynode_t *m, int list_form)
{
    char where[96];
    snprintf(where, sizeof where, " in task '%.64s'", t->name ? t->name : "?");
    for (size_t i = 0; i < m->npairs; i++) {
        ypair_t *pr = &m->pairs[i];
        const char *k = pair_key(p, pr, where);
        if (!k) continue;
        int key = key_index(k, task_keys, TK_COUNT);
        if (key < 0 || (key == TK_NAME && !list_form)) {
            unknown_key(p, pr->key, k, where, task_keys, TK_COUNT - (list_form ? 0 : 1), flow_keys,
                        FK_COUNT, "at the top of the flow file, not in a task");
            continue;
        }
        task_field(p, t, d, key, pr->val, where);
    }
    int nb = d->set[TK_NOTEBOOK], cmd = d->set[TK_COMMAND], sub = d->set[TK_SUBMIT];
    if (nb + cmd + sub > 1)
        NERR(p, d->keynode, "task '%s' has more than one of 'notebook', 'command' and 'spark_submit'; "
             "give exactly one", t->name);
    else if (!nb && !cmd && !sub)
        NERR(p, d->keynode, "task '%s' needs 'notebook', 'command' or 'spark_submit'", t->name);
    if ((cmd || sub) && !nb) {
        /* Keys that only mean something to a notebook. */
        for (size_t i = 0; i < m->npairs; i++) {
            const char *k = key_text(p, m->pairs[i].key);
            if (k && key_index(k, notebook_only, (int)(sizeof notebook_only / sizeof *notebook_only)) >= 0 && !m->pairs[i].dup_line)
                NERR(p, m->pairs[i].key, "'%s' applies only to notebook tasks (task '%s' runs %s)", k,
                     t->name, sub ? "spark-submit" : "a command");
        }
    }
    if (nb && !cmd && !sub && d->parameters) check_parameter_names(p, t, d->parameters);
    if ((cmd || sub) && !nb) {
        /* notebook-only defaults do not apply to commands */
        free(t->kernel);
        t->kernel = NULL;
        t->cell_timeout = 0;
        t->keep_history = 0;
        t->post_mortem = 0;
    }
    if (t->max_retry_delay < t->retry_delay && d->set[TK_MAX_RETRY_DELAY])
        NERR(p, d->keynode, "task '%s': max_retry_delay is shorter than retry_delay", t->name);
}

/* on_failure / on_success: a URL, or a list of URLs or {url, headers}. */
static void parse_hooks(pst_t *p, ynode_t *n, const char *what, flow_hook_t **out, size_t *nout)
{
    if (node_is_null(p, n))
        return;
    ynode_t **items = &n;
    size_t ni = 1;
    if (n->kind == YN_SEQ) {
        items = n->items;
        ni = n->nitems;
    }
    *out = xcalloc(ni ? ni : 1, sizeof **out);
    for (size_t i = 0; i < ni; i++) {
        ynode_t *it = items[i];
        const char *url = NULL;
        ynode_t *urlnode = it;
        json_t *headers = NULL;
        if (it->kind == YN_MAP) {
            headers = json_object();
            for (size_t k = 0; k < it->npairs; k++) {
                ypair_t *pr = &it->pairs[k];
                const char *kt = key_text(p, pr->key);
                if (kt && strcmp(kt, "url") == 0 && !pr->dup_line) {
                    urlnode = pr->val;
                    if (get_text(p, pr->val, "url", &url) == 0)
                        NERR(p, pr->val, "'url' is empty");
                } else if (kt && strcmp(kt, "headers") == 0 && !pr->dup_line) {
                    if (pr->val->kind != YN_MAP) {
                        if (!node_is_null(p, pr->val))
                            NERR(p, pr->val, "'headers' must be a mapping, not %s",
                                 node_kind_name(p, pr->val));
                        continue;
                    }
                    for (size_t h = 0; h < pr->val->npairs; h++) {
                        ypair_t *hp = &pr->val->pairs[h];
                        const char *hk = key_text(p, hp->key);
                        if (!hk || hp->dup_line || hp->val->kind != YN_SCALAR) {
                            NERR(p, hp->key, "bad header in '%s': name: value expected", what);
                            continue;
                        }
                        json_object_set_new(headers, hk, json_string(hp->val->text));
                    }
                } else if (kt && pr->dup_line) {
                    NERR(p, pr->key, "duplicate key '%s' (first at line %d, column %d)", kt,
                         pr->dup_line, pr->dup_col);
                } else {
                    static const char *const hk[] = { "url", "headers" };
                    unknown_key(p, pr->key, kt ? kt : "?", " in a webhook", hk, 2, NULL, 0, NULL);
                }
            }
            if (!url && urlnode == it)
                NERR(p, it, "webhook in '%s' needs a 'url'", what);
        } else if (get_text(p, it, what, &url) == 0) {
            NERR(p, it, "webhook in '%s' is empty", what);
        }
        if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
            NERR(p, urlnode, "webhook URL '%.100s' must start with http:// or https://", url);
            url = NULL;
        }
        if (url) {
            (*out)[*nout].url = xstrdup(url);
            (*out)[*nout].headers = headers ? headers : json_object();
            (*nout)++;
        } else {
            json_decref(headers);
        }
    }
}

/* The default flow name from "dir/daily-report.yaml". */
static char *name_from_file(const char *file)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
        n -= 5;
    else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
        n -= 4;
    return xstrndup(base, n);
}

/* Resolve every task's `after` into parent indices. */
static void resolve_after(pst_t *p, flow_t *f, tdraft_t *drafts)
{
    const char **names = xcalloc(f->ntasks ? f->ntasks : 1, sizeof *names);
    for (size_t i = 0; i < f->ntasks; i++)
        names[i] = f->tasks[i].name;
    for (size_t i = 0; i < f->ntasks; i++) {
        flow_task_t *t = &f->tasks[i];
        ynode_t *a = drafts[i].after;
        if (!a || node_is_null(p, a))
            continue;
        ynode_t **items = &a;
        size_t ni = 1;
        if (a->kind == YN_SEQ) {
            items = a->items;
            ni = a->nitems;
        } else if (a->kind == YN_MAP) {
            NERR(p, a, "'after' must be a task name or a list of task names, not a mapping");
            continue;
        }
        t->parents = xmalloc((ni ? ni : 1) * sizeof *t->parents);
        t->parent_pos = xmalloc((ni ? ni : 1) * 2 * sizeof *t->parent_pos);
        for (size_t k = 0; k < ni; k++) {
            ynode_t *it = items[k];
            if (it->kind != YN_SCALAR || node_is_null(p, it)) {
                NERR(p, it, "'after' items must be task names, not %s", node_kind_name(p, it));
                continue;
            }
            size_t j;
            for (j = 0; j < f->ntasks; j++)
                if (strcmp(names[j], it->text) == 0)
                    break;
            if (j == f->ntasks) {
                const char *sug = errlist_closest(it->text, names, f->ntasks);
                if (sug)
                    NERR(p, it, "task '%s': 'after' names unknown task '%.64s'; did you mean '%s'?",
                         t->name, it->text, sug);
                else
                    NERR(p, it, "task '%s': 'after' names unknown task '%.64s'", t->name, it->text);
                continue;
            }
            size_t q;
            for (q = 0; q < t->nparents; q++)
                if (t->parents[q] == j)
                    break;
            if (q < t->nparents) {
                NERR(p, it, "task '%s': '%s' is listed twice in 'after'", t->name, it->text);
                continue;
            }
            t->parent_pos[2 * t->nparents] = it->line;
            t->parent_pos[2 * t->nparents + 1] = it->col;
            t->parents[t->nparents++] = j;
        }
    }
    free(names);
}

/* Add one task from key node `kn` (mapping form: the name; list form: the
 * item) and its mapping `m`. */
static void add_task(pst_t *p, flow_t *f, tdraft_t **drafts, size_t *cap, const flow_task_t *def,
                     const char *name, ynode_t *kn, ynode_t *namenode, ynode_t *m, int list_form)
{
    if (f->ntasks >= FLOW_MAX_TASKS) {
        if (f->ntasks == FLOW_MAX_TASKS)
            NERR(p, kn, "too many tasks (at most %d)", FLOW_MAX_TASKS);
        return;
    }
    if (!flow_task_name_valid(name)) {
        NERR(p, namenode, "invalid task name '%.64s': use letters, digits, '_', '-' and '.', "
             "starting with a letter or digit, at most %d characters", name, FLOW_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < f->ntasks; i++) {
        if (strcmp(f->tasks[i].name, name) == 0) {
            NERR(p, namenode, "duplicate task name '%s' (first defined at line %d, column %d)", name,
                 f->tasks[i].line, f->tasks[i].col);
            return;
        }
    }
    if (f->ntasks == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        f->tasks = xrealloc(f->tasks, *cap * sizeof *f->tasks);
        *drafts = xrealloc(*drafts, *cap * sizeof **drafts);
    }
    flow_task_t *t = &f->tasks[f->ntasks];
    tdraft_t *d = &(*drafts)[f->ntasks];
    memset(d, 0, sizeof *d);
    task_from_defaults(t, def);
    t->name = xstrdup(name);
    t->index = f->ntasks;
    t->line = namenode->line;
    t->col = namenode->col;
    d->keynode = namenode;
    f->ntasks++;
    if (node_is_null(p, m)) {
        NERR(p, kn, "task '%s' needs 'notebook', 'command' or 'spark_submit'", name);
        return;
    }
    if (m->kind != YN_MAP) {
        NERR(p, m, "task '%s' must be a mapping, not %s", name, node_kind_name(p, m));
        return;
    }
    parse_task(p, t, d, m, list_form);
}

static void parse_tasks(pst_t *p, flow_t *f, ynode_t *n, const flow_task_t *def, tdraft_t **drafts)
{
    size_t cap = 0;
    if (n->kind == YN_MAP) {
        for (size_t i = 0; i < n->npairs; i++) {
            ypair_t *pr = &n->pairs[i];
            const char *k = key_text(p, pr->key);
            if (!k) {
                NERR(p, pr->key, "a task name must be a string, not %s", node_kind_name(p, pr->key));
                continue;
            }
            if (pr->dup_line) {
                NERR(p, pr->key, "duplicate task name '%s' (first defined at line %d, column %d)", k,
                     pr->dup_line, pr->dup_col);
                continue;
            }
            add_task(p, f, drafts, &cap, def, k, pr->key, pr->key, pr->val, 0);
        }
    } else if (n->kind == YN_SEQ) {
        for (size_t i = 0; i < n->nitems; i++) {
            ynode_t *it = n->items[i];
            if (it->kind != YN_MAP) {
                NERR(p, it, "each item of 'tasks' must be a mapping with a 'name', not %s",
                     node_kind_name(p, it));
                continue;
            }
            ynode_t *nn = NULL;
            for (size_t k = 0; k < it->npairs; k++) {
                const char *kt = key_text(p, it->pairs[k].key);
                if (kt && strcmp(kt, "name") == 0 && !it->pairs[k].dup_line)
                    nn = it->pairs[k].val;
            }
            const char *name = NULL;
            if (!nn) {
                NERR(p, it, "task needs a 'name'");
                continue;
            }
            if (get_text(p, nn, "name", &name) <= 0) {
                if (nn->kind == YN_SCALAR)
                    NERR(p, nn, "task 'name' is empty");
                continue;
            }
            add_task(p, f, drafts, &cap, def, name, it, nn, it, 1);
        }
    } else if (!node_is_null(p, n)) {
        NERR(p, n, "'tasks' must be a mapping of task name to task (or a list of tasks), not %s",
             node_kind_name(p, n));
        return;
    }
    if (f->ntasks == 0 && !had_errors(p))
        NERR(p, n, "a flow needs at least one task");
}

static void parse_flow(pst_t *p, flow_t *f, ynode_t *root)
{
    ynode_t *keys[FK_COUNT] = { 0 };
    for (size_t i = 0; i < root->npairs; i++) {
        ypair_t *pr = &root->pairs[i];
        const char *k = pair_key(p, pr, "");
        if (!k) continue;
        int key = key_index(k, flow_keys, FK_COUNT);
        if (key < 0) {
            if (strncmp(k, "x-", 2) == 0)
                continue;   /* extension keys hold YAML anchors for merging */
            unknown_key(p, pr->key, k, "", flow_keys, FK_COUNT, task_keys, TK_COUNT - 1,
                        "in a task (under 'tasks')");
            continue;
        }
        keys[key] = pr->val;
    }
    const char *s;
    ynode_t *n;

    /* name */
    if ((n = keys[FK_NAME]) && get_text(p, n, "name", &s) > 0) {
        f->name = xstrdup(s);
        if (!flow_name_valid(s))
            NERR(p, n, "invalid flow name '%.64s': use lowercase letters, digits, '_' and '-', "
                 "starting with a letter or digit, at most %d characters", s, FLOW_NAME_MAX);
    } else if (!n || node_is_null(p, n)) {
        f->name = name_from_file(p->file);
        if (!flow_name_valid(f->name))
            perr(p, 1, 1, "the flow name '%.64s' taken from the file name is invalid (lowercase "
                 "letters, digits, '_' and '-', at most %d characters); rename the file or set "
                 "'name'", f->name, FLOW_NAME_MAX);
    }
    if ((n = keys[FK_DESCRIPTION]) && get_text(p, n, "description", &s) > 0)
        f->description = xstrdup(s);
    if ((n = keys[FK_OWNER]) && get_text(p, n, "owner", &s) > 0) {
        f->owner = xstrdup(s);
        if (strlen(s) > 64 || strpbrk(s, " \t\n/:"))
            NERR(p, n, "invalid owner '%.64s': a user name without spaces, '/' or ':'", s);
    }

    /* params first: templates everywhere else are checked against them */
    f->params = json_object();
    if ((n = keys[FK_PARAMS]) && !node_is_null(p, n)) {
        if (n->kind != YN_MAP) {
            NERR(p, n, "'params' must be a mapping of name: default, not %s", node_kind_name(p, n));
        } else {
            json_decref(f->params);
            f->params = node_to_json(p, n, CONV_PLAIN);
            for (size_t i = 0; i < n->npairs; i++) {
                const char *k = key_text(p, n->pairs[i].key);
                if (k && !n->pairs[i].dup_line && !flow_param_name_ok(k))
                    NERR(p, n->pairs[i].key, "parameter name '%.64s' is not an identifier: "
                         "letters, digits and '_' (ASCII), not starting with a digit", k);
            }
        }
    }
    p->params = f->params;

    /* time zone before the dates that are read in it */
    f->timezone = xstrdup("UTC");
    if ((n = keys[FK_TIMEZONE]) && get_text(p, n, "timezone", &s) > 0) {
        free(f->timezone);
        f->timezone = xstrdup(s);
    }
    {
        nb_err_t e;
        if (tz_load(f->timezone, &f->tz, &e) < 0) {
            if (n)
                NERR(p, n, "%s", e.msg);
            else
                perr(p, 1, 1, "%s", e.msg);
            f->tz = NULL;
        }
    }

    if ((n = keys[FK_START]) && get_text(p, n, "start_date", &s) > 0) {
        int rc = parse_date(s, f->tz, &f->start_date);
        if (rc < 0)
            NERR(p, n, "bad start_date '%.40s': expected YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] "
                 "(optionally with Z or +HH:MM)", s);
        else if (!flow_time_ok(f->start_date))
            NERR(p, n, "start_date '%.40s' is outside " FLOW_TIME_WINDOW, s);
        else
            f->has_start = 1;
    }
    if ((n = keys[FK_END]) && get_text(p, n, "end_date", &s) > 0) {
        int rc = parse_date(s, f->tz, &f->end_date);
        if (rc < 0)
            NERR(p, n, "bad end_date '%.40s': expected YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] "
                 "(optionally with Z or +HH:MM)", s);
        else if (!flow_time_ok(f->end_date))
            NERR(p, n, "end_date '%.40s' is outside " FLOW_TIME_WINDOW, s);
        else if (f->has_start && f->end_date < f->start_date)
            NERR(p, n, "end_date is before start_date");
        else
            f->has_end = 1;
    }

    if ((n = keys[FK_SCHEDULE]) && !node_is_null(p, n)) {
        json_t *v = n->kind == YN_SCALAR ? scalar_json(p, n) : NULL;
        char *expr = NULL;
        if (json_is_integer(v) && json_integer_value(v) > 0)
            expr = xasprintf("%" JSON_INTEGER_FORMAT "s", json_integer_value(v));
        else if (json_is_string(v) && *json_string_value(v) &&
                 strspn(json_string_value(v), "0123456789") == strlen(json_string_value(v)))
            expr = xasprintf("%ss", json_string_value(v));
        else if (json_is_string(v))
            expr = xstrdup(json_string_value(v));
        else
            NERR(p, n, "'schedule' must be a cron expression, an @macro or an interval like 30s, "
                 "not %s", node_kind_name(p, n));
        if (expr) {
            nb_err_t e;
            if (cron_parse(expr, &f->cron, &e) < 0) {
                NERR(p, n, "bad schedule '%.64s': %s", expr, e.msg);
                free(expr);
                f->cron = NULL;
            } else {
                f->schedule = expr;
                if (cron_is_interval(f->cron)) {
                    f->sched_kind = FLOW_SCHED_INTERVAL;
                    f->interval = cron_interval(f->cron);
                    if (f->has_start)
                        cron_set_anchor(f->cron, f->start_date);
                } else {
                    f->sched_kind = FLOW_SCHED_CRON;
                }
                check_fires(p, n, f);
            }
        }
    }

    f->catchup = 0;
    if ((n = keys[FK_CATCHUP]) && !node_is_null(p, n))
        get_bool(p, n, "catchup", &f->catchup);
    f->max_active_runs = 1;
    if ((n = keys[FK_MAX_ACTIVE]) && !node_is_null(p, n)) {
        long long x;
        if (get_int(p, n, "max_active_runs", 1, 1000, &x) == 0)
            f->max_active_runs = (int)x;
    }
    if ((n = keys[FK_ON_FAILURE]))
        parse_hooks(p, n, "on_failure", &f->on_failure, &f->non_failure);
    if ((n = keys[FK_ON_SUCCESS]))
        parse_hooks(p, n, "on_success", &f->on_success, &f->non_success);

    /* defaults: a template task */
    flow_task_t def;
    tdraft_t ddraft;
    task_init_defaults(&def);
    memset(&ddraft, 0, sizeof ddraft);
    /* spark at the top: the default of every task (a task's own wins) */
    if ((n = keys[FK_FILES]) && !node_is_null(p, n)) {
        if (n->kind != YN_SEQ) {
            NERR(p, n, "'files' must be a list of paths relative to the flow's directory");
        } else {
            f->files = xcalloc(n->nitems + 1, sizeof *f->files);
            for (size_t i = 0; i < n->nitems; i++) {
                ynode_t *it = n->items[i];
                if (get_text(p, it, "files entry", &s) <= 0 || !*s) continue;
                if (s[0] == '/' || !strcmp(s, "..") || !strncmp(s, "../", 3) || strstr(s, "/../") ||
                    (strlen(s) >= 3 && !strcmp(s + strlen(s) - 3, "/.."))) {
                    NERR(p, it, "files entry '%s' must be a path inside the flow's directory", s);
                    continue;
                }
                char *path = path_join(p->base_dir, s);
                struct stat st;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                    NERR(p, it, "file '%s' not found (looked for %s)", s, path);
                f->files[f->nfiles++] = path;
            }
        }
    }
    if ((n = keys[FK_SPARK]))
        parse_spark(p, n, &def.spark);
    if ((n = keys[FK_DEFAULTS]) && !node_is_null(p, n)) {
        if (n->kind != YN_MAP) {
            NERR(p, n, "'defaults' must be a mapping of task keys, not %s", node_kind_name(p, n));
        } else {
            for (size_t i = 0; i < n->npairs; i++) {
                ypair_t *pr = &n->pairs[i];
                const char *k = pair_key(p, pr, " in 'defaults'");
                if (!k) continue;
                int key = key_index(k, task_keys, TK_COUNT);
                if (key >= 0 && !default_ok[key]) {
                    NERR(p, pr->key, "'%s' cannot be given in 'defaults'; set it on each task", k);
                    continue;
                }
                if (key < 0) {
                    static const char *dk[TK_COUNT];
                    size_t nd = 0;
                    for (int j = 0; j < TK_COUNT; j++)
                        if (default_ok[j])
                            dk[nd++] = task_keys[j];
                    unknown_key(p, pr->key, k, " in 'defaults'", dk, nd, flow_keys, FK_COUNT,
                                "at the top of the flow file");
                    continue;
                }
                task_field(p, &def, &ddraft, key, pr->val, " in 'defaults'");
            }
        }
    }

    tdraft_t *drafts = NULL;
    if ((n = keys[FK_TASKS]))
        parse_tasks(p, f, n, &def, &drafts);
    else
        perr(p, root->line, root->col, "missing 'tasks': a flow needs at least one task");
    task_free_fields(&def);

    resolve_after(p, f, drafts);
    free(drafts);
    dag_build(f, p->file, p->errs);
}

/* ---- entry points ------------------------------------------------------ */

/* path is dir itself or below it, after resolving links of what exists
 * (a path that does not exist yet is judged by its text: no "..").  */
static int path_below(const char *path, const char *dir)
{
    char *rp = realpath(path, NULL), *rd = realpath(dir, NULL);
    const char *p = rp ? rp : path, *d = rd ? rd : dir;
    size_t dl = strlen(d);
    int ok = strncmp(p, d, dl) == 0 && (p[dl] == '/' || p[dl] == 0) && (rp || !strstr(p, "/../"));
    free(rp);
    free(rd);
    return ok;
}

int flow_needs_trust(const flow_t *f, char *why, size_t n)
{
    const char *dir = f->base_dir ? f->base_dir : ".";
    for (size_t i = 0; i < f->ntasks; i++) {
        const flow_task_t *t = &f->tasks[i];
        const char *r = NULL;
        if (t->submit) r = "runs spark_submit";
        else if (!t->notebook_path && !t->notebook_ws) r = "runs a command";
        /* A "~/" notebook is the owner's own (checked when it runs). */
        else if (t->notebook_path && !path_below(t->notebook_path, dir))
            r = "runs a notebook outside the flow's directory";
        else if (t->cwd && !path_below(t->cwd, dir)) r = "works in a directory outside the flow's directory";
        if (r) {
            snprintf(why, n, "task '%s' %s", t->name, r);
            return 1;
        }
    }
    return 0;
}

void flow_free(flow_t *f)
{
    if (!f)
        return;
    free(f->name);
    free(f->path);
    free(f->base_dir);
    free(f->description);
    free(f->owner);
    for (size_t i = 0; i < f->nfiles; i++) free(f->files[i]);
    free(f->files);
    free(f->schedule);
    if (f->cron)
        cron_free(f->cron);
    free(f->timezone);
    if (f->tz)
        tz_free(f->tz);
    json_decref(f->params);
    for (size_t i = 0; i < f->non_failure; i++) {
        free(f->on_failure[i].url);
        json_decref(f->on_failure[i].headers);
    }
    free(f->on_failure);
    for (size_t i = 0; i < f->non_success; i++) {
        free(f->on_success[i].url);
        json_decref(f->on_success[i].headers);
    }
    free(f->on_success);
    for (size_t i = 0; i < f->ntasks; i++)
        task_free_fields(&f->tasks[i]);
    free(f->tasks);
    free(f->topo);
    free(f);
}

/* An absolute version of dir (realpath when it exists, else cwd-joined). */
static char *abs_dir(const char *dir)
{
    char *r = realpath(dir, NULL);
    if (r)
        return r;
    if (dir[0] == '/')
        return path_join("/", dir);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(dir);
    return path_join(cwd, dir);
}

int flow_parse_text(const char *text, size_t len, const char *name_for_messages,
                    const char *base_dir, flow_t **out, nb_errlist_t *errs)
{
    *out = NULL;
    pst_t p;
    memset(&p, 0, sizeof p);
    p.file = name_for_messages ? name_for_messages : "<string>";
    p.errs = errs;
    p.errs_before = errlist_count(errs);
    size_t sort_from = errs->n;
    if (len > FLOW_MAX_BYTES) {
        perr(&p, 0, 0, "flow file too large (%zu bytes, at most %d)", len, FLOW_MAX_BYTES);
        return -EINVAL;
    }
    if (!yaml_parser_initialize(&p.parser)) {
        perr(&p, 0, 0, "cannot initialise the YAML parser");
        return -ENOMEM;
    }
    flow_t *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(p.file);
    f->base_dir = abs_dir(base_dir ? base_dir : ".");
    p.base_dir = f->base_dir;

    ynode_t *root = compose_document(&p, text, len);
    if (!root && !p.fatal) {
        perr(&p, 1, 1, "empty flow file: expected a mapping with at least 'tasks'");
    } else if (root && root->kind != YN_MAP) {
        NERR(&p, root, "a flow file must be a mapping (name:, schedule:, tasks:, ...), not %s",
             node_kind_name(&p, root));
    } else if (root) {
        parse_flow(&p, f, root);
    }
    yaml_parser_delete(&p.parser);
    nodes_free(&p);
    errlist_sort(errs, sort_from);
    if (had_errors(&p)) {
        flow_free(f);
        return -EINVAL;
    }
    *out = f;
    return 0;
}

int flow_parse_file(const char *path, flow_t **out, nb_errlist_t *errs)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    nb_err_t e;
    int rc = fs_read_all(path, &text, &len, &e);
    if (rc < 0) {
        errlist_add(errs, path, 0, 0, "%s", e.msg);
        return rc;
    }
    char *dir = fs_dirname(path);
    rc = flow_parse_text(text, len, path, dir, out, errs);
    free(dir);
    free(text);
    return rc;
}

const flow_task_t *flow_task(const flow_t *f, const char *name)
{
    for (size_t i = 0; i < f->ntasks; i++)
        if (strcmp(f->tasks[i].name, name) == 0)
            return &f->tasks[i];
    return NULL;
}

const flow_task_t *flow_task_topo(const flow_t *f, size_t i)
{
    return i < f->ntasks ? &f->tasks[f->topo[i]] : NULL;
}

/* ---- canonical JSON ---------------------------------------------------- */

json_t *flow_spark_json(const flow_spark_t *sp)
{
    if (sp->kind == FLOW_SPARK_NONE)
        return json_null();
    if (sp->kind == FLOW_SPARK_CLUSTER)
        return json_pack("{s:s, s:b, s:O}", "cluster", sp->cluster, "connect", sp->connect, "conf", sp->conf);
    return json_pack("{s:i, s:i, s:s, s:b, s:O}", "workers", sp->workers, "worker_cores", sp->worker_cores,
                     "worker_memory", sp->worker_memory, "connect", sp->connect, "conf", sp->conf);
}

static json_t *utc_json(int has, int64_t t)
{
    if (!has)
        return json_null();
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t rem = t - days * 86400, y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    char buf[40];
    snprintf(buf, sizeof buf, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60));
    return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *hooks_json(const flow_hook_t *h, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:O}", "url", h[i].url, "headers", h[i].headers));
    return a;
}

json_t *flow_to_json(const flow_t *f)
{
    static const char *const kinds[] = { "manual", "cron", "interval" };
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(f->name));
    json_object_set_new(o, "path", json_string(f->path));
    json_object_set_new(o, "description", str_or_null(f->description));
    json_object_set_new(o, "owner", str_or_null(f->owner));
    json_object_set_new(o, "schedule", str_or_null(f->schedule));
    json_object_set_new(o, "schedule_kind", json_string(kinds[f->sched_kind]));
    if (f->sched_kind == FLOW_SCHED_INTERVAL)
        json_object_set_new(o, "interval", json_integer(f->interval));
    json_object_set_new(o, "timezone", json_string(f->timezone));
    json_object_set_new(o, "start_date", utc_json(f->has_start, f->start_date));
    json_object_set_new(o, "end_date", utc_json(f->has_end, f->end_date));
    json_object_set_new(o, "catchup", json_boolean(f->catchup));
    json_object_set_new(o, "max_active_runs", json_integer(f->max_active_runs));
    json_object_set_new(o, "params", json_deep_copy(f->params));
    json_object_set_new(o, "on_failure", hooks_json(f->on_failure, f->non_failure));
    json_object_set_new(o, "on_success", hooks_json(f->on_success, f->non_success));
    json_t *tasks = json_array();
    for (size_t i = 0; i < f->ntasks; i++) {
        const flow_task_t *t = &f->tasks[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(t->name));
        if (limits_any(&t->limits)) {
            /* In the file's own spelling, so a run's stored spec loads again. */
            json_t *l = json_object();
            char v[48];
            if (t->limits.memory) {
                limits_memory_text(t->limits.memory, v, sizeof v);
                json_object_set_new(l, "memory", json_string(v));
            }
            if (t->limits.cpu_milli) {
                snprintf(v, sizeof v, "%lldm", (long long)t->limits.cpu_milli);
                json_object_set_new(l, "cpu", json_string(v));
            }
            if (t->limits.pids) {
                snprintf(v, sizeof v, "%lld", (long long)t->limits.pids);
                json_object_set_new(l, "pids", json_string(v));
            }
            json_object_set_new(j, "limits", l);
        }
        if (t->notebook) {
            json_object_set_new(j, "notebook", json_string(t->notebook));
            json_object_set_new(j, "notebook_path", str_or_null(t->notebook_path));
            json_object_set_new(j, "kernel", str_or_null(t->kernel));
            json_object_set_new(j, "parameters", json_deep_copy(t->parameters));
            json_object_set_new(j, "cell_timeout", json_integer(t->cell_timeout));
            json_object_set_new(j, "keep_history", json_boolean(t->keep_history));
            json_object_set_new(j, "post_mortem", json_integer(t->post_mortem));
        } else if (t->submit) {
            const flow_submit_t *u = t->submit;
            json_t *args = json_array(), *py = json_array();
            for (size_t k = 0; k < u->nargs; k++)
                json_array_append_new(args, json_string(u->args[k]));
            for (size_t k = 0; k < u->npy_files; k++)
                json_array_append_new(py, json_string(u->py_files[k]));
            json_object_set_new(j, "spark_submit",
                                json_pack("{s:s, s:s, s:o, s:O, s:o, s:o}", "application", u->application,
                                          "application_path", u->application_path, "args", args,
                                          "conf", u->conf, "py_files", py, "class", str_or_null(u->main_class)));
        } else {
            json_t *argv = json_array();
            for (size_t k = 0; k < t->argc; k++)
                json_array_append_new(argv, json_string(t->argv[k]));
            json_object_set_new(j, "command", argv);
        }
        json_object_set_new(j, "env", json_deep_copy(t->env));
        json_object_set_new(j, "cwd", str_or_null(t->cwd));
        json_t *after = json_array();
        for (size_t k = 0; k < t->nparents; k++)
            json_array_append_new(after, json_string(f->tasks[t->parents[k]].name));
        json_object_set_new(j, "after", after);
        json_object_set_new(j, "retries", json_integer(t->retries));
        json_object_set_new(j, "retry_delay", json_integer(t->retry_delay));
        json_object_set_new(j, "retry_exponential_backoff", json_boolean(t->retry_exponential_backoff));
        json_object_set_new(j, "max_retry_delay", json_integer(t->max_retry_delay));
        json_object_set_new(j, "timeout", json_integer(t->timeout));
        json_object_set_new(j, "trigger_rule", json_string(flow_trigger_name(t->trigger_rule)));
        json_object_set_new(j, "spark", flow_spark_json(&t->spark));
        json_array_append_new(tasks, j);
    }
    json_object_set_new(o, "tasks", tasks);
    return o;
}

int flow_param_name_ok(const char *name)
{
    if (!name || !((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') || *name == '_'))
        return 0;
    size_t n = 0;
    for (const char *c = name; *c; c++, n++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return 0;
    return n <= 64;
}

int flow_time_ok(int64_t utc_seconds)
{
    return utc_seconds >= FLOW_TIME_MIN && utc_seconds < FLOW_TIME_MAX;
}
