/*
 * api_runs — runs and task runs: lists with keyset pagination, one run with
 * its tasks, cancel, and the task's log and output notebook.
 *
 * Lists.  Newest first, by id, with `?before=ID` (keyset, not offset: a
 * page stays right while new runs arrive at the top, and costs one index
 * range scan however deep the client pages).  We ask the store for one row
 * more than the page so "next" is null exactly at the end, instead of one
 * extra empty page (at the maximum page size the store's limit caps this,
 * and a full last page then says next: ID once more).
 *
 * Visibility.  API_RUN routes reach here only for a run whose flow
 * incarnation the caller may see (the hook checked).  Lists filter in SQL
 * by the owner of each run's incarnation for non-admins
 * (store_run_filter_t.owner_id), so a page never comes back short because
 * rows were dropped after the query, and runs of a deleted flow stay with
 * its owner when someone else creates the name again.
 *
 * Files.  A task's log and output notebook are files whose paths the
 * scheduler chose and recorded (task_runs.log_path / output_path); they
 * are not user input, but a path outside $NBHUB_HOME is refused anyway
 * (after resolving symlinks), so a corrupted or hand-edited row cannot
 * turn this endpoint into a file server for the whole disk.  The file is
 * opened once and read from that descriptor: the output notebook is
 * replaced by rename while the task runs, and an open descriptor keeps
 * reading the version it opened, never a torn mix.  Small files (<= 1 MiB)
 * go out in one answer with a Content-Length; bigger ones are streamed in
 * 64 KiB pieces while the connection's unsent queue is below 512 KiB,
 * then from a 10 ms tick, so a multi-gigabyte log costs the daemon a
 * bounded amount of memory.  A client that reads nothing for 60 s is
 * dropped.
 *
 * Rendered output.  /output.html is the output notebook as HTML
 * (nbhtml.h), rendered on libuv's thread pool (a notebook with 50 plots is
 * milliseconds of CPU, a pathological one could be seconds: never on the
 * loop).  It is served with `Content-Security-Policy: sandbox`, so the page
 * gets an opaque origin: whatever a notebook's HTML output does, it cannot
 * read the session cookie or call the API as the viewer.
 */
#include "api/api_int.h"
#include "notebook/nb.h"
#include "notebook/nbhtml.h"
#include "util/fsutil.h"
#include "notebook/nbsplit.h"
#include "http/gzip.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define API_RUNS_INLINE_MAX (1024 * 1024)
#define API_RUNS_CHUNK      (64 * 1024)
#define API_RUNS_HIGH_WATER (512 * 1024)
#define API_RUNS_TICK_MS    10
#define API_RUNS_STALL_MS   60000

json_t *api_runs_load(api_t *a, int64_t run, int *rc, nb_err_t *err)
{
    store_run_t r;
    store_task_runs_t tasks;
    *rc = store_run_get(a->store, run, &r, &tasks, err);
    if (*rc) return NULL;
    api_names_t names = API_NAMES_INIT;
    json_t *j = api_json_run(&r, api_names_get(a, &names, r.triggered_by), &tasks);
    api_names_free(&names);
    store_run_clear(&r);
    store_task_runs_free(&tasks);
    return j;
}

void api_runs_list_for(api_t *a, http_req_t *req, const char *flow, int64_t flow_id)
{
    const api_ctx_t *c = api_ctx(req);
    int64_t limit = 100, before = 0;
    const char *v;
    if ((v = http_query(req, "limit")) && api_parse_i64(v, 1, 1000, &limit) < 0) {
        api_error(req, 400, "bad_request", "limit must be an integer from 1 to 1000");
        return;
    }
    if ((v = http_query(req, "before")) && api_parse_i64(v, 1, INT64_MAX, &before) < 0) {
        api_error(req, 400, "bad_request", "before must be a run id");
        return;
    }
    store_run_filter_t q = { .flow = flow, .flow_id = flow_id, .state = -1,
                             .owner_id = c->admin ? 0 : c->uid, .before_id = before };
    if ((v = http_query(req, "state"))) {
        store_run_state_t st;
        if (store_run_state_parse(v, &st) < 0) {
            api_error(req, 400, "bad_request",
                      "state must be one of queued, running, success, failed, cancelled");
            return;
        }
        q.state = (int)st;
    }
    /* ?flow=NAME: every incarnation of the name, still only those the
     * caller may see (owner_id). */
    if (!flow && !flow_id && (v = http_query(req, "flow")) && *v) q.flow = v;
    q.limit = (int)(limit < 1000 ? limit + 1 : limit);
    store_runs_t l;
    nb_err_t err;
    err_clear(&err);
    int rc = store_runs_list(a->store, &q, &l, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    size_t shown = l.n < (size_t)limit ? l.n : (size_t)limit;
    api_names_t names = API_NAMES_INIT;
    json_t *arr = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(arr, api_json_run(&l.v[i], api_names_get(a, &names, l.v[i].triggered_by), NULL));
    int more = l.n > (size_t)limit || (limit == 1000 && l.n == 1000);
    json_t *j = json_pack("{s:o, s:o}", "runs", arr, "next",
                          more && shown ? json_integer(l.v[shown - 1].id) : json_null());
    api_names_free(&names);
    store_runs_free(&l);
    http_respond_json(req, 200, j);
}

void api_runs_list(http_req_t *req, void *ud) { api_runs_list_for(ud, req, NULL, 0); }

void api_runs_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    int rc;
    nb_err_t err;
    err_clear(&err);
    json_t *j = api_runs_load(a, api_ctx(req)->run, &rc, &err);
    if (!j) {
        api_fail(req, rc, &err);
        return;
    }
    http_respond_json(req, 200, j);
}

void api_runs_cancel(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    nb_err_t err;
    err_clear(&err);
    int rc = sched_cancel_run(a->sched, c->run, &err);
    if (rc == -ESTALE) {
        api_error(req, 409, "conflict", "the run has already finished");
        return;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    LOG_I("run cancelled", "flow=%s run=%lld by=%s", c->flow, (long long)c->run, c->log_name);
    json_t *j = api_runs_load(a, c->run, &rc, &err);
    if (!j) {
        api_fail(req, rc, &err);
        return;
    }
    http_respond_json(req, 200, j);
}

/* The task run called ":task" of the request's run, or answer 404. */
static int api_runs_task(api_t *a, http_req_t *req, store_task_run_t *out)
{
    const char *name = http_param(req, "task");
    store_run_t r;
    store_task_runs_t tasks;
    nb_err_t err;
    err_clear(&err);
    int rc = store_run_get(a->store, api_ctx(req)->run, &r, &tasks, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return -1;
    }
    store_run_clear(&r);
    int found = 0;
    for (size_t i = 0; i < tasks.n; i++) {
        if (!found && strcmp(tasks.v[i].task, name) == 0) {
            *out = tasks.v[i];
            memset(&tasks.v[i], 0, sizeof tasks.v[i]);
            found = 1;
        }
    }
    store_task_runs_free(&tasks);
    if (!found) {
        api_error(req, 404, "not_found", "the run has no such task");
        return -1;
    }
    return 0;
}

/* An action on a task of the request's run (cancel it, end its kept
 * kernel), and its answer: 409 when the action found the task past it
 * (`too_late`, the action's own error number), else the task as it is now,
 * logged as `what`. */
typedef int (*api_task_action_fn)(api_t *a, http_req_t *req, const store_task_run_t *t, nb_err_t *err);

static void api_runs_task_act(http_req_t *req, api_t *a, api_task_action_fn act, int too_late,
                              const char *too_late_msg, const char *what)
{
    if (api_no_sched(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    store_task_run_t t;
    if (api_runs_task(a, req, &t) < 0) return;
    nb_err_t err;
    err_clear(&err);
    int rc = act(a, req, &t, &err);
    int64_t id = t.id;
    store_task_run_clear(&t);
    if (rc == too_late) {
        api_error(req, 409, "conflict", too_late_msg);
        return;
    }
    if (rc == 0) rc = store_task_run_get(a->store, id, &t, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    LOG_I(what, "flow=%s run=%lld task=%s by=%s", c->flow, (long long)c->run, t.task, c->log_name);
    json_t *j = api_json_task(&t);
    store_task_run_clear(&t);
    http_respond_json(req, 200, j);
}

static int api_runs_cancel_one(api_t *a, http_req_t *req, const store_task_run_t *t, nb_err_t *err)
{
    return sched_cancel_task(a->sched, api_ctx(req)->run, t->task, err);
}

void api_runs_task_cancel(http_req_t *req, void *ud)
{
    api_runs_task_act(req, ud, api_runs_cancel_one, -ESTALE, "the task has already finished (or its run has)",
                      "task cancelled");
}

static int api_runs_end_kept(api_t *a, http_req_t *req, const store_task_run_t *t, nb_err_t *err)
{
    (void)req;
    return sched_kept_end(a->sched, t->id, err);
}

/* DELETE .../tasks/:task/kernel: end the kernel kept for a post-mortem
 * (sched_kept_end); the task as it is now, without it.  No kept kernel is a
 * 409, not a 404: the task is there (a 404 is for runs one may not see), it
 * is its state that does not fit, as for a cancel of a finished task. */
void api_runs_task_kernel_end(http_req_t *req, void *ud)
{
    api_runs_task_act(req, ud, api_runs_end_kept, -ENOENT,
                      "no kernel is kept for this task (none was, or it has ended)", "kept kernel ended");
}

/* ---- task files --------------------------------------------------------- */

typedef struct api_fsend {
    api_t      *api;
    http_req_t *req;
    int         fd;
    off_t       off, left;
    uint64_t    last_progress;
} api_fsend_t;

static void api_runs_fsend_free(api_fsend_t *s)
{
    close(s->fd);
    free(s);
}

static void api_runs_fsend_abort(http_req_t *req, void *ud)
{
    api_fsend_t *s = ud;
    http_stream_end(req);           /* client gone: this only frees req */
    api_runs_fsend_free(s);
}

/* Send while the connection keeps up; end the answer at EOF.  1 = done. */
static int api_runs_fsend_pump(api_fsend_t *s)
{
    char buf[API_RUNS_CHUNK];
    int eof = 0;
    while (s->left > 0 && http_stream_queued(s->req) < API_RUNS_HIGH_WATER) {
        size_t want = s->left < (off_t)sizeof buf ? (size_t)s->left : sizeof buf;
        ssize_t n = pread(s->fd, buf, want, s->off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            /* Shrunk or unreadable after the headers went out: all we can
             * still do is end the body early. */
            eof = 1;
            break;
        }
        if (http_stream_write(s->req, buf, (size_t)n) < 0) return 0;    /* on_abort follows */
        s->off += n;
        s->left -= n;
        s->last_progress = uv_now(s->api->loop);
    }
    if (s->left > 0 && !eof) return 0;
    http_req_on_abort(s->req, NULL, NULL);
    http_stream_end(s->req);
    api_runs_fsend_free(s);
    return 1;
}

static void api_runs_fsend_tick(http_req_t *req, void *ud)
{
    api_fsend_t *s = ud;
    if (api_runs_fsend_pump(s)) return;
    if (uv_now(s->api->loop) - s->last_progress > API_RUNS_STALL_MS) http_stream_drop(req);
}

/* Answer with len bytes of fd from off (fd is consumed). */
static void api_runs_send_fd(api_t *a, http_req_t *req, int fd, off_t off, off_t len,
                             const char *ctype)
{
    if (len <= API_RUNS_INLINE_MAX) {
        char *data = xmalloc((size_t)len + 1);
        size_t got = 0;
        while (got < (size_t)len) {
            ssize_t n = pread(fd, data + got, (size_t)len - got, off + (off_t)got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        close(fd);
        http_respond_take(req, 200, ctype, data, got);
        return;
    }
    if (http_stream_begin(req, 200, ctype) < 0 || http_req_method_id(req) == HTTP_HEAD) {
        close(fd);
        http_stream_end(req);
        return;
    }
    api_fsend_t *s = xcalloc(1, sizeof *s);
    s->api = a;
    s->req = req;
    s->fd = fd;
    s->off = off;
    s->left = len;
    s->last_progress = uv_now(a->loop);
    http_req_on_abort(req, api_runs_fsend_abort, s);
    if (api_runs_fsend_pump(s)) return;
    http_stream_tick(req, API_RUNS_TICK_MS, api_runs_fsend_tick, s);
}

/* Open path read-only if it is a regular file below the home.  The path
 * itself is opened, never its resolution: a task may have replaced its
 * output notebook or log by a symlink (to nbhub.db, to another user's run)
 * or a hard link, which fs_open_regular refuses. */
static int api_runs_open_below_home(api_t *a, const char *path, struct stat *st)
{
    char *real = realpath(path, NULL);
    if (!real) return -ENOENT;
    size_t hl = strlen(a->home);
    int inside = strncmp(real, a->home, hl) == 0 && real[hl] == '/';
    free(real);
    if (!inside) return -EACCES;
    int fd = fs_open_regular(path, O_RDONLY, 0, st);
    return fd == -EINVAL || fd == -ELOOP ? -EACCES : fd;
}

static void api_runs_task_file(http_req_t *req, api_t *a, int want_log)
{
    store_task_run_t t;
    if (api_runs_task(a, req, &t) < 0) return;
    int64_t tail = -1;
    const char *v = want_log ? http_query(req, "tail") : NULL;
    if (v && api_parse_i64(v, 0, INT64_MAX, &tail) < 0) {
        store_task_run_clear(&t);
        api_error(req, 400, "bad_request", "tail must be a number of bytes");
        return;
    }
    const char *path = want_log ? t.log_path : t.output_path;
    struct stat st;
    int fd = path ? api_runs_open_below_home(a, path, &st) : -ENOENT;
    if (fd == -EACCES && path)
        LOG_W("task file outside the home refused", "run=%lld task=%s", (long long)t.run, t.task);
    store_task_run_clear(&t);
    if (fd < 0) {
        api_error(req, 404, "not_found", want_log ? "the task has no log (yet)"
                                                  : "the task has no output notebook (yet)");
        return;
    }
    off_t off = 0, len = st.st_size;
    if (tail >= 0 && tail < (int64_t)len) {
        off = len - (off_t)tail;
        len = (off_t)tail;
    }
    http_set_header(req, "Cache-Control", "no-cache");
    api_runs_send_fd(a, req, fd, off, len,
                     want_log ? "text/plain; charset=utf-8" : "application/x-ipynb+json");
}

void api_runs_task_log(http_req_t *req, void *ud) { api_runs_task_file(req, ud, 1); }

/* The path of a task's Spark state (<task>.spark.json next to <task>.log,
 * written by nbhub __spark-task), or NULL. */
char *api_runs_spark_path(const char *log_path)
{
    size_t n = log_path ? strlen(log_path) : 0;
    if (n < 4 || strcmp(log_path + n - 4, ".log")) return NULL;
    return xasprintf("%.*s.spark.json", (int)(n - 4), log_path);
}

/* The Spark side of a task: cluster, application id, jobs and stages.  A
 * small file (at most SPROGRESS_MAX_JOBS jobs), read on the loop. */
void api_runs_task_spark(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_task_run_t t;
    if (api_runs_task(a, req, &t) < 0) return;
    char *p = api_runs_spark_path(t.log_path);
    store_task_run_clear(&t);
    struct stat st;
    int fd = p ? api_runs_open_below_home(a, p, &st) : -ENOENT;
    free(p);
    json_t *j = NULL;
    if (fd >= 0) {
        j = json_loadfd(fd, 0, NULL);
        close(fd);
    }
    if (!j) {
        api_error(req, 404, "not_found", "the task has no Spark state (it does not use Spark, or has not started)");
        return;
    }
    http_set_header(req, "Cache-Control", "no-cache");
    http_respond_json(req, 200, j);
}

/* The policy of a rendered notebook: the document's own (nbhtml.h) plus
 * sandbox (opaque origin, no scripts, no forms, no top navigation). */
#define API_RENDER_CSP "sandbox allow-popups allow-popups-to-escape-sandbox; " NBHTML_CSP "; frame-ancestors 'self'"

/* A render: waiting in a->render_head..tail, or running on the pool. */
struct api_render_job {
    uv_work_t   work;
    api_t      *a;
    http_req_t *req;
    int         fd;
    size_t      size;            /* the file's size when opened */
    int         gzip;            /* the client takes gzip: compress as we go */
    int         running;
    int         cancelled;       /* the client left (atomic: read by the worker) */
    char       *title, *href;
    buf_t       out;             /* the answer: HTML, or its gzip stream */
    int         status;
    char        msg[1100];
    struct api_render_job *next;
};

/* Give back [*from, upto) of the text, whole pages only: it will not be
 * read again (nbsplit_consumed), and the pages of an anonymous mapping
 * released with MADV_DONTNEED leave the RSS at once. */
struct api_render_text {
    char  *text;
    size_t released;
};

static void api_render_release(void *ud, size_t upto)
{
    struct api_render_text *t = ud;
    size_t page = 4096, end = upto / page * page;
    if (end > t->released) {
        madvise(t->text + t->released, end - t->released, MADV_DONTNEED);
        t->released = end;
    }
}

/*
 * The render, on a pool thread.  Memory is what the design is about: the
 * text is read into an anonymous mapping, the notebook is parsed one cell
 * at a time (nbsplit.h) and each cell is freed once drawn, the pages of
 * text behind the last cell are released, and the HTML goes straight into
 * a gzip stream when the client takes gzip (a cell's HTML at a time).  So
 * the text shrinks while the answer grows: peak about the file's size, not
 * text + tree + HTML + gzip at once (3.3x the file, bench/RESULTS.md).
 */
static void api_render_work(uv_work_t *w)
{
    struct api_render_job *j = w->data;
    size_t size = j->size, got = 0;
    char *text = mmap(NULL, size + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (text == MAP_FAILED) {
        close(j->fd);
        j->status = 503;
        snprintf(j->msg, sizeof j->msg, "not enough memory to render the notebook now");
        return;
    }
    ssize_t n = 0;
    while (got < size && (n = read(j->fd, text + got, size - got)) > 0) got += (size_t)n;
    close(j->fd);
    json_t *skel = NULL, *cell;
    nbsplit_t it;
    nb_err_t err;
    int rc = n < 0 ? -EIO : nbsplit_open(&it, text, got, j->title, &skel, &err);
    if (rc < 0) {
        j->status = 422;
        snprintf(j->msg, sizeof j->msg, "%s", n < 0 ? "cannot read the output notebook" : err.msg);
        munmap(text, size + 1);
        return;
    }
    /* Pages of text go back as soon as nbsplit is past them, also inside
     * a cell with a long list of lines. */
    struct api_render_text rt = { text, 0 };
    it.release = api_render_release;
    it.release_ud = &rt;
    struct nbhtml_opts o = { j->title, j->href, 0 };
    gzip_stream_t *z = j->gzip ? gzip_stream_new(GZIP_LEVEL_FAST) : NULL;
    buf_t piece = BUF_INIT;
    buf_t *dst = z ? &piece : &j->out;
    buf_reserve(&j->out, 64 * 1024);
    nbhtml_begin(skel, &o, dst);
    json_decref(skel);
    while ((rc = nbsplit_next(&it, &cell, &err)) > 0) {
        nbhtml_cell(cell, &o, dst);
        json_decref(cell);
        api_render_release(&rt, nbsplit_consumed(&it));
        if (z) {
            gzip_stream_write(z, piece.data, piece.len, &j->out);
            if (piece.cap > 4 * 1024 * 1024) buf_free(&piece);   /* a big cell: give it back */
            else buf_reset(&piece);
        }
        if (__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
            rc = -ECANCELED;
            break;
        }
    }
    munmap(text, size + 1);
    if (rc == 0) {
        nbhtml_end(dst);
        if (z) {
            gzip_stream_write(z, piece.data, piece.len, &j->out);
            gzip_stream_finish(z, &j->out);
        }
    }
    gzip_stream_free(z);
    buf_free(&piece);
    if (rc < 0) {
        buf_free(&j->out);
        j->status = rc == -ECANCELED ? 499 : 422;
        snprintf(j->msg, sizeof j->msg, "%s", rc == -ECANCELED ? "cancelled" : err.msg);
        return;
    }
    j->status = 200;
}

static void api_render_next(api_t *a);

static void api_render_free(struct api_render_job *j)
{
    buf_free(&j->out);
    free(j->title);
    free(j->href);
    free(j);
}

static void api_render_done(uv_work_t *w, int status)
{
    (void)status;
    struct api_render_job *j = w->data;
    api_t *a = j->a;
    a->render_running--;
    if (j->status == 200) {
        http_set_header(j->req, "Content-Security-Policy", API_RENDER_CSP);
        http_set_header(j->req, "Cache-Control", "no-cache");
        http_set_header(j->req, "Vary", "Accept-Encoding");
        if (j->gzip) http_set_header(j->req, "Content-Encoding", "gzip");
        size_t len = j->out.len;
        http_respond_take(j->req, 200, "text/html; charset=utf-8", buf_detach(&j->out), len);
    } else if (j->status == 503) {
        http_set_header(j->req, "Retry-After", "5");
        api_error(j->req, 503, "unavailable", j->msg);
    } else {
        api_error(j->req, j->status == 499 ? 422 : j->status, "unprocessable", j->msg);
    }
    api_render_free(j);
    api_render_next(a);
}

/* Start waiting renders while slots are free. */
static void api_render_next(api_t *a)
{
    while (a->render_head && a->render_running < a->render_jobs) {
        struct api_render_job *j = a->render_head;
        a->render_head = j->next;
        if (!a->render_head) a->render_tail = NULL;
        a->render_nwaiting--;
        j->next = NULL;
        j->running = 1;
        a->render_running++;
        if (uv_queue_work(a->loop, &j->work, api_render_work, api_render_done) < 0) {
            a->render_running--;
            close(j->fd);
            api_error(j->req, 503, "unavailable", "cannot render now");
            api_render_free(j);
        }
    }
}

/* The client left: a waiting render is dropped now, a running one stops at
 * its next cell (its answer then only frees the request). */
static void api_render_abort(http_req_t *req, void *ud)
{
    struct api_render_job *j = ud;
    if (j->running) {
        __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELAXED);
        return;
    }
    api_t *a = j->a;
    struct api_render_job **p = &a->render_head, *prev = NULL;
    while (*p && *p != j) { prev = *p; p = &(*p)->next; }
    if (!*p) return;
    *p = j->next;
    if (a->render_tail == j) a->render_tail = prev;
    a->render_nwaiting--;
    close(j->fd);
    api_error(req, 503, "unavailable", "the client left");
    api_render_free(j);
}

static void api_render_too_big(http_req_t *req, const char *title, const char *href, int64_t size,
                               int64_t max)
{
    char msg[300];
    if (max < 0)
        snprintf(msg, sizeof msg, "Notebooks are not rendered on this server (ui.render_max is 0 in "
                                  "nbhub.yaml). Download the .ipynb to open it.");
    else
        snprintf(msg, sizeof msg, "This notebook is too big to render here: %.1f MB, and the limit is "
                                  "%.1f MB (ui.render_max in nbhub.yaml). Download the .ipynb to open it "
                                  "in Jupyter.", (double)size / 1048576, (double)max / 1048576);
    buf_t b = BUF_INIT;
    nbhtml_notice(&b, title, msg, href);
    http_set_header(req, "Content-Security-Policy", API_RENDER_CSP);
    http_set_header(req, "Cache-Control", "no-cache");
    http_set_header(req, "X-Nbhub-Render", "too-big");
    size_t len = b.len;
    http_respond_take(req, 200, "text/html; charset=utf-8", buf_detach(&b), len);
}

void api_runs_task_output_html(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_task_run_t t;
    if (api_runs_task(a, req, &t) < 0) return;
    struct stat st;
    int fd = t.output_path ? api_runs_open_below_home(a, t.output_path, &st) : -ENOENT;
    if (fd < 0) {
        store_task_run_clear(&t);
        api_error(req, 404, "not_found", "the task has no output notebook (yet)");
        return;
    }
    char *title = xasprintf("%s — run %lld", t.task, (long long)t.run);
    char *href = xasprintf("/api/v1/runs/%lld/tasks/%s/output", (long long)t.run, t.task);
    store_task_run_clear(&t);
    if (a->render_max < 0 || st.st_size > a->render_max) {
        close(fd);
        api_render_too_big(req, title, href, (int64_t)st.st_size, a->render_max);
        free(title);
        free(href);
        return;
    }
    if (a->render_running >= a->render_jobs && a->render_nwaiting >= a->render_queue) {
        close(fd);
        free(title);
        free(href);
        http_set_header(req, "Retry-After", "5");
        api_error(req, 503, "unavailable", "too many notebooks are being rendered; try again in a few seconds");
        return;
    }
    /* The descriptor was opened non-blocking for streaming; a regular file
     * reads the same either way, and the pool thread may block. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct api_render_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->req = req;
    j->fd = fd;
    j->size = (size_t)st.st_size;
    j->gzip = gzip_accepted(http_header(req, "Accept-Encoding"));
    j->title = title;
    j->href = href;
    j->work.data = j;
    http_req_on_abort(req, api_render_abort, j);
    if (a->render_tail) a->render_tail->next = j;
    else a->render_head = j;
    a->render_tail = j;
    a->render_nwaiting++;
    api_render_next(a);
}
void api_runs_task_output(http_req_t *req, void *ud) { api_runs_task_file(req, ud, 0); }
