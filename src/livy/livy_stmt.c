/*
 * livy_stmt.c — statements: one execute_request at a time per session,
 * through the kernel client, outputs gathered into Livy's shapes.
 *
 * Livy's output of a statement is one object: {status: ok,
 * execution_count, data: {mime: value}} or {status: error,
 * execution_count, ename, evalue, traceback: [lines]}.  A kernel sends a
 * stream of messages instead; they are folded as Livy's Python shell
 * does: everything printed, then the value of the last expression, is
 * data["text/plain"]; rich types (text/html, application/json, image/png)
 * from execute_result or display_data are kept beside it, the last one of
 * each type winning.  The traceback loses IPython's colours (Livy's has
 * none; sparkmagic prints it as text).  A statement is finished when both
 * its execute_reply (shell) and its status idle (iopub) arrived, as in
 * nbhub run.  State "available" with output status "error" is how Livy
 * reports a failing statement; "cancelled" is an interrupted one.
 *
 * Size: output beyond livy.output_max (16 MB by default) is dropped and
 * the text ends with an explicit marker saying how much was dropped
 * (Livy cuts silently).
 *
 * kind sql: the code runs as spark.sql(code) in the kernel, through a
 * helper the initialisation defined, and the result is Livy's SQL
 * interpreter's: application/json {"schema": the DataFrame's schema as
 * Spark's JSON, "data": [[row values]...]}, at most 1000 rows
 * (spark.livy.sql.max-result's default).
 *
 * Progress: the driver's event log (seventlog), read every tick: the
 * statement's jobs are those with an id above the highest one seen when
 * it started; progress = tasks done (or skipped) / tasks of those jobs.
 */
#include "livy/livy_session.h"

#include "store/store_livy.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lstmt_clear(lstmt_t *c)
{
    buf_free(&c->text);
    json_decref(c->data);
    json_decref(c->error);
    memset(c, 0, sizeof *c);
    c->id = -1;
}

char *lstmt_init_code(const lsess_t *s)
{
    buf_t b = BUF_INIT;
    buf_puts(&b,
             "import json as __nbhub_json\n"
             "from pyspark.sql import SparkSession as __nbhub_SparkSession\n"
             "spark = __nbhub_SparkSession.builder.getOrCreate()\n"
             "sc = spark.sparkContext\n"
             "try:\n"
             "    import warnings as __nbhub_w\n"
             "    with __nbhub_w.catch_warnings():\n"
             "        __nbhub_w.simplefilter('ignore')\n"
             "        from pyspark.sql import SQLContext as __nbhub_SQLContext\n"
             "        sqlContext = __nbhub_SQLContext(sc, spark)\n"
             "except Exception:\n"
             "    pass\n"
             "def __nbhub_livy_journal(path):\n"
             "    # Outputs also go to a file, for a restarted nbhub (src/livy/livy.h).\n"
             "    sess = get_ipython().kernel.session\n"
             "    orig = sess.send\n"
             "    kinds = ('stream', 'execute_result', 'display_data', 'error', 'execute_reply')\n"
             "    def send(stream, msg_or_type, content=None, parent=None, *a, **kw):\n"
             "        msg = orig(stream, msg_or_type, content, parent, *a, **kw)\n"
             "        try:\n"
             "            t = msg['header']['msg_type']\n"
             "            p = (msg.get('parent_header') or {}).get('msg_id')\n"
             "            if t in kinds and p:\n"
             "                line = __nbhub_json.dumps({'p': p, 't': t, 'c': msg['content']}, default=str)\n"
             "                with open(path, 'a') as f:\n"
             "                    f.write(line + '\\n')\n"
             "        except Exception:\n"
             "            pass\n"
             "        return msg\n"
             "    sess.send = send\n"
             "__nbhub_livy_journal(");
    jwrite_string(&b, s->journal, strlen(s->journal));
    buf_puts(&b,
             ")\n"
             "def __nbhub_livy_sql(q, limit=1000):\n"
             "    df = spark.sql(q)\n"
             "    names = [f.name for f in df.schema.fields]\n"
             "    rows = [[o.get(n) for n in names] for o in map(__nbhub_json.loads, df.limit(limit).toJSON().collect())]\n"
             "    from IPython.display import display\n"
             "    display({'application/json': {'schema': __nbhub_json.loads(df.schema.json()), 'data': rows}}, raw=True)\n");
    return buf_detach(&b);
}

/* ---- gathering outputs ---------------------------------------------------- */

static void add_text(lsess_t *s, const char *t, size_t n)
{
    lstmt_t *c = &s->cur;
    int64_t room = s->l->conf->output_max - c->bytes;
    if (room < 0) room = 0;
    size_t keep = (int64_t)n > room ? (size_t)room : n;
    /* Never cut inside a UTF-8 sequence. */
    while (keep > 0 && keep < n && ((unsigned char)t[keep] & 0xC0) == 0x80) keep--;
    buf_append(&c->text, t, keep);
    c->bytes += (int64_t)keep;
    c->dropped += (int64_t)(n - keep);
}

static void add_bundle(lsess_t *s, json_t *data, int result)
{
    lstmt_t *c = &s->cur;
    const char *mime;
    json_t *v;
    int rich = 0;
    json_object_foreach(data, mime, v) {
        if (!strcmp(mime, "text/plain")) continue;
        if (strcmp(mime, "text/html") && strcmp(mime, "application/json") && strcmp(mime, "image/png")) continue;
        char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int64_t n = d ? (int64_t)strlen(d) : 0;
        free(d);
        if (c->bytes + n > s->l->conf->output_max) {
            c->dropped += n;
            continue;
        }
        c->bytes += n;
        if (!c->data) c->data = json_object();
        json_object_set(c->data, mime, v);
        rich = 1;
    }
    json_t *plain = json_object_get(data, "text/plain");
    /* The value of the last expression is text (Livy's shell prints its
     * repr); a display() with a rich type is shown by that type alone. */
    if (json_is_string(plain) && (result || !rich)) {
        if (c->text.len && c->text.data[c->text.len - 1] != '\n') add_text(s, "\n", 1);
        add_text(s, json_string_value(plain), json_string_length(plain));
    }
}

/* IPython's traceback without its ANSI colours, as Livy's list of lines. */
static json_t *plain_traceback(const json_t *tb)
{
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(tb, i, e) {
        const char *p = json_string_value(e);
        if (!p) continue;
        buf_t b = BUF_INIT;
        for (; *p; p++) {
            if (*p == '\x1b' && p[1] == '[') {
                p += 2;
                while (*p && !((*p >= '@' && *p <= '~'))) p++;
                if (!*p) break;
                continue;
            }
            buf_append(&b, p, 1);
            if (*p == '\n') {
                json_array_append_new(out, json_stringn(b.data, b.len) ?: json_string("?\n"));
                b.len = 0;
            }
        }
        if (b.len) {
            buf_append(&b, "\n", 1);
            json_array_append_new(out, json_stringn(b.data, b.len) ?: json_string("?\n"));
        }
        buf_free(&b);
    }
    return out;
}

/* One message of the running statement: type and content. */
static void feed(lsess_t *s, const char *type, json_t *content)
{
    lstmt_t *c = &s->cur;
    if (!strcmp(type, "stream")) {
        json_t *t = json_object_get(content, "text");
        if (json_is_string(t)) add_text(s, json_string_value(t), json_string_length(t));
    } else if (!strcmp(type, "execute_result") || !strcmp(type, "display_data")) {
        add_bundle(s, json_object_get(content, "data"), !strcmp(type, "execute_result"));
    } else if (!strcmp(type, "error")) {
        json_decref(c->error);
        c->error = json_pack("{s:O?, s:O?, s:o}", "ename", json_object_get(content, "ename"), "evalue",
                             json_object_get(content, "evalue"),
                             "traceback", plain_traceback(json_object_get(content, "traceback")));
    } else if (!strcmp(type, "execute_reply")) {
        c->got_reply = 1;
        const char *st = json_string_value(json_object_get(content, "status"));
        snprintf(c->status, sizeof c->status, "%s", st ? st : "error");
        json_t *n = json_object_get(content, "execution_count");
        c->execution_count = json_is_integer(n) ? json_integer_value(n) : 0;
        if (!strcmp(c->status, "error") && !c->error)
            c->error = json_pack("{s:O?, s:O?, s:o}", "ename", json_object_get(content, "ename"), "evalue",
                                 json_object_get(content, "evalue"),
                                 "traceback", plain_traceback(json_object_get(content, "traceback")));
    }
}

static json_t *output_json(lsess_t *s)
{
    lstmt_t *c = &s->cur;
    if (c->dropped) {
        char m[200];
        snprintf(m, sizeof m, "\n[nbhub: output truncated: %lld more bytes past livy.output_max (%lld bytes)]\n",
                 (long long)c->dropped, (long long)s->l->conf->output_max);
        buf_puts(&c->text, m);
    }
    if (c->error || strcmp(c->status, "ok") != 0) {
        json_t *o = json_pack("{s:s, s:I}", "status", "error", "execution_count", (json_int_t)c->execution_count);
        json_t *e = c->error;
        json_object_set_new(o, "ename", json_incref(json_object_get(e, "ename")) ?: json_string("Error"));
        json_object_set_new(o, "evalue", json_incref(json_object_get(e, "evalue")) ?: json_string(""));
        json_object_set_new(o, "traceback", json_incref(json_object_get(e, "traceback")) ?: json_array());
        return o;
    }
    json_t *data = c->data ? json_incref(c->data) : json_object();
    json_t *t = json_stringn(c->text.data ? c->text.data : "", c->text.len);
    json_object_set_new(data, "text/plain", t ? t : json_string("<output not UTF-8>"));
    return json_pack("{s:s, s:I, s:o}", "status", "ok", "execution_count", (json_int_t)c->execution_count,
                     "data", data);
}

static void complete(lsess_t *s)
{
    lstmt_t *c = &s->cur;
    livy_t *l = s->l;
    store_livy_stmt_t row;
    int cancelling = 0;
    if (store_livy_stmt_get(l->st, s->id, c->id, &row, NULL) == 0) {
        cancelling = !strcmp(row.state, "cancelling");
        store_livy_stmt_clear(&row);
    }
    const char *state = "available";
    char *out = NULL;
    if (cancelling) {
        state = "cancelled";
    } else {
        json_t *o = output_json(s);
        out = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    nb_err_t err;
    if (store_livy_stmt_finish(l->st, s->id, c->id, state, out, time_now_us(), &err) < 0)
        LOG_W("livy: statement end not recorded", "session=%lld statement=%lld error=\"%s\"", (long long)s->id,
              (long long)c->id, err.msg);
    LOG_D("livy: statement done", "session=%lld statement=%lld state=%s bytes=%lld", (long long)s->id,
          (long long)c->id, state, (long long)c->bytes);
    free(out);
    lstmt_clear(c);
    /* The idle time of the heartbeat counts from the end of the last
     * statement too: its client is about to read it. */
    if (s->last_hb_us < time_now_us()) s->last_hb_us = time_now_us();
    if (!s->ending) {
        lsess_set_state(s, "idle");
        lstmt_next(s);
    }
}

void lstmt_on_msg(lsess_t *s, enum kchan ch, const kmsg_t *m)
{
    lstmt_t *c = &s->cur;
    if (c->id < 0 || c->from_journal || !m->parent_id || strcmp(m->parent_id, c->msg_id) != 0) return;
    if (ch == KCHAN_IOPUB) {
        if (!strcmp(m->msg_type, "status")) {
            char st[16];
            if (kmsg_scan(m, 3, "execution_state", st, sizeof st) == 1 && !strcmp(st, "idle")) c->got_idle = 1;
        } else {
            feed(s, m->msg_type, kmsg_content(m));
        }
    } else if (ch == KCHAN_SHELL && !strcmp(m->msg_type, "execute_reply")) {
        feed(s, "execute_reply", kmsg_content(m));
    }
    if (c->got_reply && c->got_idle) complete(s);
}

/* ---- running ---------------------------------------------------------------- */

static void read_events(lsess_t *s)
{
    if (!s->evfile) {
        char *p = seventlog_find(s->events_dir, NULL, NULL);
        if (!p) return;
        /* O_NOFOLLOW, one link: under isolation: system the directory
         * is the session's account's. */
        int fd = fs_open_regular(p, O_RDONLY, 0, NULL);
        s->evfile = fd >= 0 ? fdopen(fd, "rb") : NULL;
        if (fd >= 0 && !s->evfile) close(fd);
        free(p);
        if (!s->evfile) return;
        s->evlog = seventlog_new();
    }
    seventlog_read(s->evlog, s->evfile);
}

static long long max_job(const lsess_t *s)
{
    if (!s->evlog) return -1;
    json_t *jobs = seventlog_jobs_json(s->evlog);
    long long m = -1;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        long long id = json_integer_value(json_object_get(j, "jobId"));
        if (id > m) m = id;
    }
    json_decref(jobs);
    return m;
}

void lstmt_progress(lsess_t *s)
{
    read_events(s);
    if (!s->evlog || s->cur.id < 0) return;
    json_t *jobs = seventlog_jobs_json(s->evlog);
    long long tasks = 0, done = 0;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        if (json_integer_value(json_object_get(j, "jobId")) <= s->cur.base_job) continue;
        tasks += json_integer_value(json_object_get(j, "numTasks"));
        done += json_integer_value(json_object_get(j, "numCompletedTasks")) +
                json_integer_value(json_object_get(j, "numSkippedTasks"));
    }
    json_decref(jobs);
    if (tasks > 0) {
        double p = (double)done / (double)tasks;
        if (p > 1) p = 1;
        store_livy_stmt_progress(s->l->st, s->id, s->cur.id, p, NULL);
    }
}

void lstmt_next(lsess_t *s)
{
    livy_t *l = s->l;
    if (!s->ready || !s->km_ready || s->ending || s->cur.id >= 0 || !s->km || l->stopping) return;
    store_livy_stmts_t st;
    nb_err_t err;
    if (store_livy_stmts_list(l->st, s->id, &st, &err) < 0) return;
    store_livy_stmt_t *w = NULL;
    for (size_t i = 0; i < st.n && !w; i++)
        if (!strcmp(st.v[i].state, "waiting")) w = &st.v[i];
    if (!w) {
        store_livy_stmts_free(&st);
        return;
    }
    buf_t code = BUF_INIT;
    if (!strcmp(w->kind, "sql")) {
        buf_puts(&code, "__nbhub_livy_sql(");
        jwrite_string(&code, w->code, strlen(w->code));
        buf_puts(&code, ")");
    } else {
        buf_puts(&code, w->code);
    }
    lstmt_t *c = &s->cur;
    lstmt_clear(c);
    c->id = w->id;
    /* The journal only ever matters for the statement in flight: emptied
     * before each (the kernel appends with O_APPEND, idle now). */
    if (truncate(s->journal, 0) < 0 && errno != ENOENT)
        LOG_D("livy: journal not emptied", "session=%lld error=\"%s\"", (long long)s->id, strerror(errno));
    s->journal_off = 0;
    read_events(s);
    c->base_job = max_job(s);
    c->started_us = time_now_us();
    int rc = kmgr_execute(s->km, code.data ? code.data : "", 0, c->msg_id);
    buf_free(&code);
    if (rc < 0 || store_livy_stmt_start(l->st, s->id, c->id, c->msg_id, c->started_us, &err) < 0) {
        store_livy_stmt_finish(l->st, s->id, c->id, "error",
                               "{\"status\": \"error\", \"ename\": \"NbhubError\", \"evalue\": "
                               "\"the statement could not be sent to the kernel\", \"traceback\": []}",
                               time_now_us(), NULL);
        lstmt_clear(c);
    } else {
        lsess_set_state(s, "busy");
    }
    store_livy_stmts_free(&st);
}

void lstmt_abort(lsess_t *s, const char *why)
{
    livy_t *l = s->l;
    int64_t now = time_now_us();
    store_livy_stmts_t st;
    if (store_livy_stmts_list(l->st, s->id, &st, NULL) < 0) return;
    for (size_t i = 0; i < st.n; i++) {
        const char *state = st.v[i].state;
        if (!strcmp(state, "waiting") || !strcmp(state, "cancelling")) {
            store_livy_stmt_finish(l->st, s->id, st.v[i].id, "cancelled", NULL, now, NULL);
        } else if (!strcmp(state, "running")) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:[]}", "status", "error", "ename", "SessionEnded", "evalue",
                                  why ? why : "the session ended", "traceback");
            char *out = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            store_livy_stmt_finish(l->st, s->id, st.v[i].id, "error", out, now, NULL);
            free(out);
        }
    }
    store_livy_stmts_free(&st);
    lstmt_clear(&s->cur);
}

/* ---- the journal (adopted sessions) ---------------------------------------- */

void lstmt_poll_journal(lsess_t *s)
{
    lstmt_t *c = &s->cur;
    if (c->id < 0 || !c->from_journal) return;
    int fd = fs_open_regular(s->journal, O_RDONLY, 0, NULL);   /* the account writes it */
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        return;
    }
    if (fseek(f, (long)s->journal_off, SEEK_SET) != 0) {
        fclose(f);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') break;   /* being written: next time */
        s->journal_off += n;
        json_t *j = jparse(line, (size_t)n, 0, NULL);
        const char *p = json_string_value(json_object_get(j, "p"));
        const char *t = json_string_value(json_object_get(j, "t"));
        if (p && t && !strcmp(p, c->msg_id)) feed(s, t, json_object_get(j, "c"));
        json_decref(j);
        if (c->got_reply) break;
    }
    free(line);
    fclose(f);
    if (c->got_reply) {
        LOG_I("livy: statement completed from the journal", "session=%lld statement=%lld", (long long)s->id,
              (long long)c->id);
        complete(s);
    }
}
