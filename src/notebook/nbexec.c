/* nbexec — see nbexec.h for the behaviour; this file is the state machine.
 *
 * States of a run: starting (kernel handshake) -> cells -> finishing
 * (metadata, banners, final write, kernel shutdown) -> done when every
 * libuv handle is closed.  Every path out of "cells" goes through
 * nbexec_finish exactly once.
 *
 * Cells: a cell is done when both its execute_reply (shell) and its status
 * idle (iopub) have come, as in nbclient.  The reply comes first, and the
 * kernel only starts the next request after publishing that idle, so once
 * a cell's reply says "ok" the next cell is sent at once (x->fl[1]) while
 * the idle of the first is still on its way: the kernel never waits for
 * us, and iopub messages keep their order (all of a cell's, its idle, then
 * the next cell's).  While a cell executes, iopub is held (kmgr_hold_iopub)
 * and read in one go when the reply comes: one wake-up per cell instead of
 * one per message.  A cell still running after NBEXEC_PEEK_MS has its
 * outputs read as they come again, so --log-output and a watcher of OUT
 * see them live.
 */
#include "notebook/nbexec.h"
#include "cli/cli.h"
#include "kernel/kmgr.h"
#include "notebook/nbout.h"
#include "notebook/nbwidget.h"
#include "notebook/nbwriter.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define NBEXEC_VERSION "0.1.0"
#define NBEXEC_PEEK_MS 20  /* a cell running this long has its outputs read live */
#define NBEXEC_ERROR_TAG "papermill-error-cell-tag"
#define NBEXEC_ERROR_STYLE \
    "style=\"color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;\""

enum nbexec_abort { ABORT_NONE, ABORT_TIMEOUT, ABORT_DEADLINE, ABORT_SIGNAL };

/* A cell sent to the kernel: at most two are (see the top of the file). */
struct nbexec_flight {
    size_t  ci;
    char    msg_id[33];
    int     got_reply;
    char    status[16]; /* the reply's status: "ok", "error", "aborted" */
    json_t *reply;      /* the reply's content, kept unless it was "ok" */
    json_t *exec_md;    /* borrowed: the cell's metadata.execution */
    json_t *pm;         /* borrowed: the cell's metadata.papermill */
    int64_t start_us;   /* when it was sent (its duration) */
    int     got_idle;
    int64_t end_us;     /* when the kernel was seen done with it */
};

typedef struct nbexec {
    uv_loop_t                 loop;
    json_t                   *nb, *cells;
    const struct nbexec_opts *o;
    kmgr_t                   *km;
    int                       km_dead;      /* died callback seen: do not call kmgr */
    nbout_t                  *out;
    nbwidget_t               *wg;           /* widget state and Output widgets (nbwidget.h) */
    int                       serial;       /* no cell sent before the previous one's idle */
    nbwriter_t               *w;
    uv_timer_t                cell_timer, grace_timer, deadline_timer, write_timer, peek_timer;
    uv_signal_t               sigint, sigterm;
    size_t                    ci;           /* the cell outputs go to: fl[0]'s */
    size_t                    next;         /* the next cell to start */
    struct nbexec_flight      fl[2];        /* fl[0] the older */
    int                       running;      /* cells in flight: 0, 1 or 2 */
    enum nbexec_abort         abort;
    int                       signum;
    int                       finished;
    int                       exit_code;
    nb_err_t                 *err;
    int64_t                   start_us;
    size_t                    ncode, ndone; /* progress */
    char                     *text;         /* nbexec_stream_fast's decoded text */
    size_t                    textcap;
    int                       progress_drawn;
} nbexec_t;

/* ---- small helpers ---------------------------------------------------- */

static json_t *nbexec_iso(int64_t us)
{
    char ts[48];
    time_iso8601_utc(us, ts, sizeof ts, 0);
    strcat(ts, "+00:00");   /* datetime.now(timezone.utc).isoformat() */
    return json_string(ts);
}

static json_t *nbexec_now_iso(void) { return nbexec_iso(time_now_us()); }

/* A fresh object at obj[key], replacing a non-object. */
static json_t *nbexec_obj(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

static json_t *nbexec_pm(json_t *cell) { return nbexec_obj(nbexec_obj(cell, "metadata"), "papermill"); }

static int nbexec_has_tag(const json_t *cell, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(cell, "metadata"), "tags"), i, t)
        if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0) return 1;
    return 0;
}

static int nbexec_executable(const json_t *cell)
{
    const char *type = json_string_value(json_object_get(cell, "cell_type"));
    if (!type || strcmp(type, "code") != 0) return 0;
    if (nbexec_has_tag(cell, "skip-execution")) return 0;
    const char *src = json_string_value(json_object_get(cell, "source"));
    if (!src) return 0;
    for (; *src; src++)
        if (!isspace((unsigned char)*src)) return 1;
    return 0;
}

static void nbexec_dirty(size_t cell, void *ud)
{
    nbexec_t *x = ud;
    nbwriter_cell_dirty(x->w, cell);
}

static void nbexec_progress(nbexec_t *x, int final)
{
    if (!x->o->progress) return;
    size_t width = 30, fill = x->ncode ? x->ndone * width / x->ncode : width;
    char bar[64];
    for (size_t i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double el = (double)(time_now_us() - x->start_us) / 1e6;
    fprintf(stderr, "\rExecuting: [%s] %zu/%zu cells %.1fs ", bar, x->ndone, x->ncode, el);
    if (final) fputc('\n', stderr);
    fflush(stderr);
    x->progress_drawn = 1;
}

static int nbexec_write(nbexec_t *x, int durable)
{
    if (!x->o->output_path) return 0;
    if (strcmp(x->o->output_path, "-") == 0 && !durable) return 0;  /* stdout: once, at the end */
    nbout_flush(x->out);
    nb_err_t e;
    int rc = nbwriter_write(x->w, x->nb, durable, &e);
    if (rc < 0) {
        LOG_E("cannot write output notebook", "error=\"%s\"", e.msg);
        if (x->exit_code == NB_EXIT_OK || x->exit_code == NB_EXIT_FAILED) {
            x->exit_code = NB_EXIT_OUTPUT;
            err_set(x->err, rc, "%s", e.msg);
        }
    }
    return rc;
}

/* ---- papermill metadata ---------------------------------------------- */

void nbexec_prepare(json_t *nb, const struct nbexec_opts *o)
{
    json_t *meta = nbexec_obj(nb, "metadata");
    json_t *pm = json_object_get(meta, "papermill");
    if (!json_is_object(pm)) {
        pm = json_pack("{s:{}, s:{}, s:{}, s:s}", "default_parameters", "parameters",
                       "environment_variables", "version", NBEXEC_VERSION);
        json_object_set_new(meta, "papermill", pm);
    }
    json_object_set_new(pm, "input_path", o->input_path ? json_string(o->input_path) : json_null());
    json_object_set_new(pm, "output_path", o->output_path ? json_string(o->output_path) : json_null());

    /* nbformat.v4.upgrade: to 4.5 with cell ids; papermill gives every cell tags. */
    json_t *cells = json_object_get(nb, "cells");
    json_int_t minor = json_integer_value(json_object_get(nb, "nbformat_minor"));
    if (minor < 5) json_object_set_new(nb, "nbformat_minor", json_integer(5));
    size_t i = 0;
    while (i < json_array_size(cells)) {
        json_t *cell = json_array_get(cells, i);
        if (nbexec_has_tag(cell, NBEXEC_ERROR_TAG)) {   /* papermill's remove_error_markers */
            json_array_remove(cells, i);
            continue;
        }
        json_t *cm = nbexec_obj(cell, "metadata");
        if (!json_is_array(json_object_get(cm, "tags"))) json_object_set_new(cm, "tags", json_array());
        if (!json_is_object(json_object_get(cm, "papermill"))) json_object_set_new(cm, "papermill", json_object());
        if (!json_is_string(json_object_get(cell, "id"))) {
            char id[33];
            kwire_new_id(id);
            id[8] = '\0';
            json_object_set_new(cell, "id", json_string(id));
        }
        i++;
    }
}

static void nbexec_notebook_start(nbexec_t *x)
{
    json_t *meta = nbexec_obj(x->nb, "metadata");
    json_t *pm = nbexec_obj(meta, "papermill");
    json_object_set_new(pm, "start_time", nbexec_now_iso());
    json_object_set_new(pm, "end_time", json_null());
    json_object_set_new(pm, "duration", json_null());
    json_object_set_new(pm, "exception", json_null());
    const json_t *env = x->km ? kmgr_env(x->km) : NULL;
    json_object_set_new(pm, "environment_variables", env ? json_deep_copy(env) : json_object());
    const json_t *info = x->km ? kmgr_kernel_info(x->km) : NULL;
    json_t *li = info ? json_object_get(info, "language_info") : NULL;
    if (json_is_object(li)) json_object_set(meta, "language_info", li);

    size_t i;
    json_t *cell;
    json_array_foreach(x->cells, i, cell) {
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        int code = type && strcmp(type, "code") == 0;
        if (code) {
            json_object_set_new(cell, "execution_count", json_null());
            json_object_set_new(cell, "outputs", json_array());
            if (nbexec_executable(cell)) x->ncode++;
            /* An Output widget's outputs are told to the kernel when its cell
             * ends, and must reach it before the next cell (nbclient's order):
             * a notebook that uses widgets runs one cell at a time. */
            const char *src = json_string_value(json_object_get(cell, "source"));
            if (src && strstr(src, "ipywidgets")) x->serial = 1;
        }
        json_t *cpm = json_object();
        json_object_set_new_nocheck(cpm, "exception", json_null());
        json_object_set_new_nocheck(cpm, "start_time", json_null());
        json_object_set_new_nocheck(cpm, "end_time", json_null());
        json_object_set_new_nocheck(cpm, "duration", json_null());
        json_object_set_new_nocheck(cpm, "status", json_string_nocheck("pending"));
        json_object_set_new(nbexec_obj(cell, "metadata"), "papermill", cpm);
    }
    nbwriter_all_dirty(x->w);
}

/* pm: cells[i].metadata.papermill.  Returns the start time. */
static int64_t nbexec_cell_start(nbexec_t *x, size_t i, json_t *pm)
{
    int64_t now = time_now_us();
    json_object_set_new(pm, "start_time", nbexec_iso(now));
    json_object_set_new(pm, "status", json_string_nocheck("running"));
    json_object_set_new(pm, "exception", json_false());
    nbwriter_cell_dirty(x->w, i);
    return now;
}

static void nbexec_cell_exception(nbexec_t *x, json_t *cell)
{
    json_t *pm = nbexec_pm(cell);
    json_object_set_new(pm, "exception", json_true());
    json_object_set_new(pm, "status", json_string("failed"));
    json_object_set_new(nbexec_obj(nbexec_obj(x->nb, "metadata"), "papermill"), "exception", json_true());
}

/* pm: cells[i].metadata.papermill (NULL: look it up); start_us from
 * nbexec_cell_start (0: unknown, no duration); end_us: when it ended, 0 = now. */
static void nbexec_cell_complete(nbexec_t *x, size_t i, json_t *pm, int64_t start_us, int64_t end_us)
{
    if (!pm) pm = nbexec_pm(json_array_get(x->cells, i));
    int64_t now = end_us ? end_us : time_now_us();
    json_object_set_new(pm, "end_time", nbexec_iso(now));
    if (start_us)
        json_object_set_new(pm, "duration", json_real((double)(now - start_us) / 1e6));
    const char *status = json_string_value(json_object_get(pm, "status"));
    if (!status || strcmp(status, "failed") != 0) json_object_set_new(pm, "status", json_string_nocheck("completed"));
    nbwriter_cell_dirty(x->w, i);
}

/* papermill's raise_for_execution_errors: banner at the top, anchor before
 * the first failing cell.  Returns 1 if banners were inserted. */
static int nbexec_error_banners(nbexec_t *x)
{
    size_t i, bad = (size_t)-1;
    json_t *cell, *exec_count = NULL;
    json_array_foreach(x->cells, i, cell) {
        size_t j;
        json_t *out;
        int found = 0, sys_exit = 0;
        json_array_foreach(json_object_get(cell, "outputs"), j, out) {
            const char *ot = json_string_value(json_object_get(out, "output_type"));
            if (!ot || strcmp(ot, "error") != 0) continue;
            const char *en = json_string_value(json_object_get(out, "ename"));
            const char *ev = json_string_value(json_object_get(out, "evalue"));
            if (en && strcmp(en, "SystemExit") == 0 && ev && (!*ev || strcmp(ev, "0") == 0)) {
                sys_exit = 1;
                continue;
            }
            found = 1;
            break;
        }
        if (!found && !sys_exit &&
            json_is_true(json_object_get(nbexec_pm(cell), "exception")))
            found = 1;
        if (found) {
            bad = i;
            exec_count = json_object_get(cell, "execution_count");
            break;
        }
    }
    if (bad == (size_t)-1) return 0;
    char count[32] = "None";
    if (json_is_integer(exec_count)) snprintf(count, sizeof count, "%lld", (long long)json_integer_value(exec_count));
    char *banner = xasprintf("<span " NBEXEC_ERROR_STYLE ">An Exception was encountered at "
                             "'<a href=\"#papermill-error-cell\">In [%s]</a>'.</span>", count);
    const char *anchor = "<span id=\"papermill-error-cell\" " NBEXEC_ERROR_STYLE ">"
                         "Execution using papermill encountered an exception here and stopped:</span>";
    char id1[33], id2[33];
    kwire_new_id(id1);
    kwire_new_id(id2);
    id1[8] = id2[8] = '\0';
    json_array_insert_new(x->cells, bad,
        json_pack("{s:s, s:s, s:{s:[s]}, s:s}", "cell_type", "markdown", "id", id2,
                  "metadata", "tags", NBEXEC_ERROR_TAG, "source", anchor));
    json_array_insert_new(x->cells, 0,
        json_pack("{s:s, s:s, s:{s:[s]}, s:s}", "cell_type", "markdown", "id", id1,
                  "metadata", "tags", NBEXEC_ERROR_TAG, "source", banner));
    free(banner);
    nbwriter_all_dirty(x->w);
    return 1;
}

/* ---- finishing ---------------------------------------------------------- */

/* No cell is in flight any more. */
static void nbexec_land(nbexec_t *x)
{
    for (int i = 0; i < x->running; i++) json_decref(x->fl[i].reply);
    memset(x->fl, 0, sizeof x->fl);
    x->running = 0;
}

static void nbexec_close_handles(nbexec_t *x)
{
    uv_handle_t *hs[] = {
        (uv_handle_t *)&x->cell_timer, (uv_handle_t *)&x->grace_timer,
        (uv_handle_t *)&x->deadline_timer, (uv_handle_t *)&x->write_timer,
        (uv_handle_t *)&x->peek_timer,
        (uv_handle_t *)&x->sigint, (uv_handle_t *)&x->sigterm,
    };
    /* The outcome is decided and the kernel is gone: a SIGINT/SIGTERM from
     * now on must not kill the process with a default action and an exit
     * status that contradicts the notebook just saved.  Blocked signals
     * die with the process. */
    sigset_t late;
    sigemptyset(&late);
    sigaddset(&late, SIGINT);
    sigaddset(&late, SIGTERM);
    sigprocmask(SIG_BLOCK, &late, NULL);
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], NULL);
}

static void nbexec_finish(nbexec_t *x, int code)
{
    if (x->finished) return;
    x->finished = 1;
    x->exit_code = code;
    uv_timer_stop(&x->cell_timer);
    uv_timer_stop(&x->grace_timer);
    uv_timer_stop(&x->deadline_timer);
    uv_timer_stop(&x->write_timer);
    uv_timer_stop(&x->peek_timer);
    if (x->running) {
        nbout_end(x->out);
        nbexec_land(x);
    }
    if (x->km && !x->km_dead) kmgr_hold_iopub(x->km, 0);
    nbexec_progress(x, 1);

    if (json_object_get(nbexec_obj(nbexec_obj(x->nb, "metadata"), "papermill"), "start_time")) {
        json_t *pm = nbexec_obj(nbexec_obj(x->nb, "metadata"), "papermill");
        json_object_set_new(pm, "end_time", nbexec_now_iso());
        json_object_set_new(pm, "duration", json_real((double)(time_now_us() - x->start_us) / 1e6));
        int any = 0;
        size_t i;
        json_t *cell;
        json_array_foreach(x->cells, i, cell)
            if (json_is_true(json_object_get(nbexec_pm(cell), "exception"))) any = 1;
        /* papermill leaves null on success and sets true on a failure. */
        if (any || code != NB_EXIT_OK) json_object_set_new(pm, "exception", json_true());
        if (code != NB_EXIT_OK) nbexec_error_banners(x);
        /* papermill saves it after a failed cell too; nbhub also after a
         * timeout or a dead kernel: what the outputs refer to. */
        nbwidget_save(x->wg, x->nb);
    } else if (code != NB_EXIT_OK) {
        /* Stopped before the kernel was ready (e.g. a signal during start-up):
         * no cell ran, but OUT must still say the run failed. */
        json_object_set_new(nbexec_obj(nbexec_obj(x->nb, "metadata"), "papermill"), "exception", json_true());
        nbwriter_all_dirty(x->w);
    }
    nbexec_write(x, 1);

    /* Post-mortem: a cell raised, and the kernel (with that cell's state)
     * is kept for a while under its keeper instead of being stopped. */
    struct nbexec_kept *k = x->o->kept;
    if (x->km && !x->km_dead && code == NB_EXIT_FAILED && x->o->keep_kernel_s > 0 && k) {
        k->pid = kmgr_pid(x->km);
        k->until_s = time(NULL) + (int64_t)(x->o->keep_kernel_s + 0.999);
        if (kmgr_keep(x->km, k->until_s, &k->conn_file) < 0) k->pid = 0;
    }
    if (x->km && !x->km_dead && !(k && k->conn_file)) {
        if (code == NB_EXIT_TIMEOUT || code == NB_EXIT_SIGINT || code == NB_EXIT_SIGTERM)
            kmgr_shutdown(x->km, 1000);
        else
            kmgr_shutdown(x->km, 3000);
    }
    /* Signals stay armed until the kernel is gone: a second Ctrl-C kills it. */
    uv_close((uv_handle_t *)&x->cell_timer, NULL);
    uv_close((uv_handle_t *)&x->grace_timer, NULL);
    uv_close((uv_handle_t *)&x->deadline_timer, NULL);
    uv_close((uv_handle_t *)&x->write_timer, NULL);
    uv_close((uv_handle_t *)&x->peek_timer, NULL);
    if (!x->km) nbexec_close_handles(x);
}

static void nbexec_cell_done(nbexec_t *x);

/* Two in flight and the older must end now (the newer failed, or the
 * kernel moved on to it): it ends as its idle would have ended it.  Its
 * reply was "ok", or the newer would not have been sent. */
static void nbexec_settle(nbexec_t *x)
{
    if (x->running == 2) nbexec_cell_done(x);
}

/* The running cell ends abnormally: add our error output, mark it failed. */
static void nbexec_fail_cell(nbexec_t *x, const char *ename, const char *evalue)
{
    nbexec_settle(x);
    nbout_append(x->out, json_pack("{s:s, s:s, s:s, s:[s]}", "output_type", "error",
                                   "ename", ename, "evalue", evalue, "traceback",
                                   evalue));
    nbout_end(x->out);
    json_t *pm = x->fl[0].pm;
    int64_t start_us = x->fl[0].start_us;
    nbexec_land(x);
    nbexec_cell_exception(x, json_array_get(x->cells, x->ci));
    nbexec_cell_complete(x, x->ci, pm, start_us, 0);
}

static const char *nbexec_abort_ename(nbexec_t *x)
{
    return x->abort == ABORT_DEADLINE ? "RunDeadlineError" : "CellTimeoutError";
}

static char *nbexec_abort_evalue(nbexec_t *x, const char *extra)
{
    if (x->abort == ABORT_DEADLINE)
        return xasprintf("The run exceeded its deadline of %g seconds while this cell was executing%s",
                         x->o->deadline_s, extra);
    return xasprintf("A cell timed out while it was being executed, after %g seconds%s",
                     x->o->exec_timeout_s, extra);
}

/* The running cell hit --execution-timeout or --deadline: error output,
 * failed cell, exit 6.  `extra` says how the cell ended. */
static void nbexec_timeout_fail(nbexec_t *x, const char *extra)
{
    char *ev = nbexec_abort_evalue(x, extra);
    nbexec_fail_cell(x, nbexec_abort_ename(x), ev);
    err_set(x->err, -ETIMEDOUT, "cell %zu: %s", x->ci + 1, ev);
    free(ev);
    nbexec_finish(x, NB_EXIT_TIMEOUT);
}

/* ---- running cells ------------------------------------------------------ */

static void nbexec_on_cell_timeout(uv_timer_t *t);

static void nbexec_on_peek(uv_timer_t *t)
{
    nbexec_t *x = t->data;
    if (!x->finished && x->km && !x->km_dead) kmgr_hold_iopub(x->km, 0);
}

/* Send the next executable cell, completing the others on the way.
 * Returns 1 if one was sent (or sending failed and the run finished), 0 if
 * none is left. */
static int nbexec_run_next(nbexec_t *x)
{
    while (!x->finished && x->next < json_array_size(x->cells)) {
        size_t i = x->next++;
        json_t *cell = json_array_get(x->cells, i);
        json_t *pm = nbexec_pm(cell);
        int64_t start_us = nbexec_cell_start(x, i, pm);
        if (!nbexec_executable(cell)) {
            nbexec_cell_complete(x, i, pm, start_us, 0);
            continue;
        }
        int stop_on_error = !nbexec_has_tag(cell, "raises-exception");
        struct nbexec_flight *f = &x->fl[x->running];
        memset(f, 0, sizeof *f);
        f->ci = i;
        f->pm = pm;
        f->start_us = start_us;
        f->exec_md = json_object();
        json_object_set_new(nbexec_obj(cell, "metadata"), "execution", f->exec_md);
        if (x->running++ == 0) {   /* else outputs go to it when the one before is done */
            x->ci = i;
            nbout_begin(x->out, i);
        }
        int rc = kmgr_execute(x->km, json_string_value(json_object_get(cell, "source")),
                              stop_on_error, f->msg_id);
        if (rc < 0) {
            err_set(x->err, rc, "cannot send the cell to the kernel: %s", strerror(-rc));
            nbexec_fail_cell(x, "DeadKernelError", "Could not send the cell to the kernel");
            nbexec_finish(x, NB_EXIT_KERNEL_DIED);
            return 1;
        }
        if (x->o->exec_timeout_s > 0)
            uv_timer_start(&x->cell_timer, nbexec_on_cell_timeout,
                           (uint64_t)(x->o->exec_timeout_s * 1000), 0);
        kmgr_hold_iopub(x->km, 1);
        uv_timer_start(&x->peek_timer, nbexec_on_peek, NBEXEC_PEEK_MS, 0);
        nbexec_progress(x, 0);
        return 1;
    }
    return 0;
}

/* An Output widget's new outputs to the kernel (nbwidget_sync). */
static void nbexec_send_comm(json_t *content, void *ud)
{
    nbexec_t *x = ud;
    if (!x->km || x->km_dead) {
        json_decref(content);
        return;
    }
    kmgr_request(x->km, KCHAN_SHELL, "comm_msg", content, NULL);
}

/* fl[0] has its reply and its idle (or nbexec_settle says it is over). */
static void nbexec_cell_done(nbexec_t *x)
{
    struct nbexec_flight *f = &x->fl[0];
    json_t *cell = json_array_get(x->cells, f->ci);
    if (x->running == 1) {   /* else the timers are the newer cell's */
        uv_timer_stop(&x->cell_timer);
        uv_timer_stop(&x->grace_timer);
    }
    x->ndone++;
    if (x->abort == ABORT_TIMEOUT || x->abort == ABORT_DEADLINE) {
        nbexec_timeout_fail(x, "");
        return;
    }
    nbout_end(x->out);
    nbwidget_sync(x->wg, nbexec_send_comm, x);
    int failed = strcmp(f->status, "error") == 0 && !nbexec_has_tag(cell, "raises-exception");
    int code = NB_EXIT_OK;
    if (failed) {
        nbexec_cell_exception(x, cell);
        const char *en = json_string_value(json_object_get(f->reply, "ename"));
        const char *ev = json_string_value(json_object_get(f->reply, "evalue"));
        /* papermill: sys.exit(0) stops the notebook without failing it. */
        if (!(en && strcmp(en, "SystemExit") == 0 && ev && (!*ev || strcmp(ev, "0") == 0))) {
            err_set(x->err, -EINVAL, "cell %zu raised %s: %s", f->ci + 1, en ? en : "an error", ev ? ev : "");
            code = NB_EXIT_FAILED;
        }
    }
    nbexec_cell_complete(x, f->ci, f->pm, f->start_us, f->end_us);
    json_decref(f->reply);
    x->fl[0] = x->fl[1];
    memset(&x->fl[1], 0, sizeof x->fl[1]);
    if (--x->running) {
        x->ci = x->fl[0].ci;
        nbout_begin(x->out, x->ci);
    }
    nbexec_progress(x, 0);
    if (failed) nbexec_finish(x, code);
}

static int nbexec_reply_ok(const struct nbexec_flight *f) { return strcmp(f->status, "ok") == 0; }

/* After each message: end the cells the kernel is done with, and keep it
 * busy (see the top of the file). */
static void nbexec_advance(nbexec_t *x)
{
    while (!x->finished && x->running && x->fl[0].got_reply && x->fl[0].got_idle) nbexec_cell_done(x);
    if (x->finished) return;
    if (x->running == 0) {
        if (!nbexec_run_next(x)) nbexec_finish(x, NB_EXIT_OK);
        return;
    }
    if (!x->fl[x->running - 1].got_reply) return;   /* the newest is still executing */
    if (x->running == 1 && x->abort == ABORT_NONE && !x->serial && nbexec_reply_ok(&x->fl[0]) &&
        nbexec_run_next(x))
        return;
    /* Nothing more to send before this idle: read iopub as it comes. */
    uv_timer_stop(&x->peek_timer);
    kmgr_hold_iopub(x->km, 0);
}

static struct nbexec_flight *nbexec_flight_of(nbexec_t *x, const kmsg_t *m)
{
    for (int i = 0; m->parent_id && i < x->running; i++)
        if (strcmp(m->parent_id, x->fl[i].msg_id) == 0) return &x->fl[i];
    return NULL;
}

/* A stream message straight from its text: no content tree (the most
 * common output there is).  0 if the scanner cannot decide: use the tree. */
static int nbexec_stream_fast(nbexec_t *x, const kmsg_t *m)
{
    static const char *const keys[2] = { "name", "text" };
    kframe_t lit[2];
    if (kmsg_scan_literals(m, 3, keys, 2, lit) < 0 || !lit[0].data || !lit[1].data) return 0;
    char name[16];
    size_t nl = lit[0].len - 2;
    /* A name is "stdout" or "stderr": short lowercase; anything else the tree way. */
    if (nl >= sizeof name) return 0;
    for (size_t i = 0; i < nl; i++) {
        char c = ((const char *)lit[0].data)[1 + i];
        if (c < 'a' || c > 'z') return 0;
        name[i] = c;
    }
    name[nl] = '\0';
    size_t tl;
    if (jparse_string(lit[1].data, lit[1].len, &x->text, &tl, &x->textcap) < 0) return 0;
    nbout_stream_text(x->out, name, x->text, tl);
    return 1;
}

/* execution_count from execute_input or execute_reply, without a tree. */
static void nbexec_set_count(json_t *cell, const kmsg_t *m)
{
    long long ec;
    if (kmsg_scan_int(m, 3, "execution_count", &ec) > 0)
        json_object_set_new(cell, "execution_count", json_integer(ec));
}

/* An output of the cell while an Output widget captures its request:
 * nbclient's process_message with a hook registered. */
static void nbexec_captured(nbexec_t *x, nbwidget_out_t *cap, const kmsg_t *m)
{
    const json_t *content = kmsg_content(m);
    if (x->o->log_output) nbout_log(m->msg_type, content, stderr);
    if (strcmp(m->msg_type, "clear_output") == 0) {
        nbwidget_clear(x->wg, cap, json_is_true(json_object_get(content, "wait")));
        return;
    }
    if (strcmp(m->msg_type, "display_data") == 0 || strcmp(m->msg_type, "execute_result") == 0 ||
        strcmp(m->msg_type, "update_display_data") == 0)
        nbout_update_display(x->out, content);
    nbwidget_output(x->wg, cap, m->msg_type, content);
}

static void nbexec_on_msg(kmgr_t *km, enum kchan ch, const kmsg_t *m, void *ud)
{
    nbexec_t *x = ud;
    struct nbexec_flight *f = nbexec_flight_of(x, m);
    if (!f || x->finished) return;
    if (f == &x->fl[1] && ch == KCHAN_IOPUB) {
        /* Output of the newer cell: the kernel has moved on, so the older
         * cell's idle will not come before it (a kernel that sends none). */
        nbexec_settle(x);
        if (x->finished) return;
        f = &x->fl[0];
    }
    json_t *cell = json_array_get(x->cells, f->ci);
    json_t *exec_md = f->exec_md;
    json_t *date = m->date ? json_string(m->date) : NULL;   /* validated: the scanner does not */

    if (ch == KCHAN_SHELL && strcmp(m->msg_type, "execute_reply") == 0) {
        /* An "ok" reply is read by the scanner; any other is kept whole
         * (ename, evalue for the error message). */
        f->got_reply = 1;
        f->end_us = time_now_us();
        if (kmsg_scan(m, 3, "status", f->status, sizeof f->status) <= 0) f->status[0] = '\0';
        if (strcmp(f->status, "ok") != 0) {
            json_decref(f->reply);
            f->reply = json_incref(kmsg_content(m));
        }
        nbexec_set_count(cell, m);
        if (date) json_object_set(exec_md, "shell.execute_reply", date);
    } else if (ch == KCHAN_IOPUB) {
        nbwidget_out_t *cap;
        if (strncmp(m->msg_type, "comm_", 5) == 0) {
            if (nbwidget_comm(x->wg, m->msg_type, kmsg_content(m), m->buffers, m->nbuffers)) x->serial = 1;
        } else if ((cap = nbwidget_capture(x->wg, m->parent_id)) && strcmp(m->msg_type, "status") != 0 &&
                   strcmp(m->msg_type, "execute_input") != 0) {
            nbexec_captured(x, cap, m);
        } else if (strcmp(m->msg_type, "stream") == 0 && nbout_full(x->out) && !x->o->log_output) {
            /* Over the cap: drop without parsing, so a flood of output is
             * consumed as fast as the kernel produces it (memory stays flat). */
            nbout_count_dropped(x->out, m->content_raw.len);
        } else if (strcmp(m->msg_type, "status") == 0) {
            char st[16] = "";
            kmsg_scan(m, 3, "execution_state", st, sizeof st);
            if (strcmp(st, "busy") == 0 && date) json_object_set(exec_md, "iopub.status.busy", date);
            if (strcmp(st, "idle") == 0) {
                if (date) json_object_set(exec_md, "iopub.status.idle", date);
                f->got_idle = 1;
                if (x->running == 1) f->end_us = time_now_us();   /* read as it came */
            }
        } else if (strcmp(m->msg_type, "execute_input") == 0) {
            nbexec_set_count(cell, m);
            if (date) json_object_set(exec_md, "iopub.execute_input", date);
        } else if (x->o->log_output || strcmp(m->msg_type, "stream") != 0 || !nbexec_stream_fast(x, m)) {
            if (x->o->log_output) nbout_log(m->msg_type, kmsg_content(m), stderr);
            nbout_handle(x->out, m->msg_type, kmsg_content(m));
        }
        nbwriter_cell_dirty(x->w, f->ci);
    } else if (ch == KCHAN_STDIN && strcmp(m->msg_type, "input_request") == 0) {
        /* We send allow_stdin=false, so ipykernel raises StdinNotImplementedError
         * itself.  A kernel that asks anyway gets an empty answer, never a hang. */
        LOG_W("kernel asked for input although stdin is not allowed; answering empty", "cell=%zu", f->ci + 1);
        kmgr_request(km, KCHAN_STDIN, "input_reply", json_pack("{s:s}", "value", ""), NULL);
    }
    json_decref(date);
    nbexec_advance(x);
}

/* ---- timeouts, death, signals -------------------------------------------- */

static void nbexec_on_grace(uv_timer_t *t)
{
    nbexec_t *x = t->data;
    if (!x->running || x->km_dead) return;
    LOG_W("kernel ignored the interrupt; killing it", "cell=%zu", x->ci + 1);
    kmgr_kill(x->km);
}

static void nbexec_abort_cell(nbexec_t *x, enum nbexec_abort why)
{
    if (!x->running || x->abort != ABORT_NONE) return;
    nbexec_settle(x);   /* the cell the kernel is executing is the newer one */
    x->abort = why;
    LOG_W("interrupting the kernel", "cell=%zu reason=%s", x->ci + 1, why == ABORT_DEADLINE ? "deadline" : "timeout");
    kmgr_interrupt(x->km);
    uv_timer_start(&x->grace_timer, nbexec_on_grace, 3000, 0);
}

static void nbexec_on_cell_timeout(uv_timer_t *t) { nbexec_abort_cell(t->data, ABORT_TIMEOUT); }

static void nbexec_on_deadline(uv_timer_t *t)
{
    nbexec_t *x = t->data;
    if (x->running) {
        nbexec_abort_cell(x, ABORT_DEADLINE);
    } else if (!x->finished) {
        err_set(x->err, -ETIMEDOUT, "the run exceeded its deadline of %g seconds", x->o->deadline_s);
        nbexec_finish(x, NB_EXIT_TIMEOUT);
    }
}

static void nbexec_on_died(kmgr_t *km, const char *why, void *ud)
{
    nbexec_t *x = ud;
    x->km_dead = 1;
    if (x->finished) return;
    if (x->running) {
        x->ndone++;
        if (x->abort == ABORT_TIMEOUT || x->abort == ABORT_DEADLINE) {
            nbexec_timeout_fail(x, "; the kernel ignored the interrupt and was killed");
            return;
        }
        char *ev = xasprintf("Kernel died while executing this cell (%s)", why);
        nbexec_fail_cell(x, "DeadKernelError", ev);
        err_set(x->err, -ECHILD, "cell %zu: %s", x->ci + 1, ev);
        free(ev);
    } else {
        err_set(x->err, -ECHILD, "kernel died (%s)", why);
    }
    nbexec_finish(x, NB_EXIT_KERNEL_DIED);
}

static void nbexec_on_stopped(kmgr_t *km, void *ud)
{
    nbexec_t *x = ud;
    x->km = NULL;
    nbexec_close_handles(x);
}

static void nbexec_on_signal(uv_signal_t *h, int signum)
{
    nbexec_t *x = h->data;
    if (x->finished) {
        /* Second signal while shutting down: stop waiting for the kernel. */
        if (x->km && !x->km_dead) kmgr_kill(x->km);
        return;
    }
    x->abort = ABORT_SIGNAL;
    x->signum = signum;
    int code = signum == SIGINT ? NB_EXIT_SIGINT : NB_EXIT_SIGTERM;
    err_set(x->err, -EINTR, "interrupted by %s; the output notebook was saved as failed",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    if (x->running) {
        if (x->km && !x->km_dead) kmgr_interrupt(x->km);
        x->ndone++;
        nbexec_fail_cell(x, signum == SIGINT ? "KeyboardInterrupt" : "Terminated",
                         signum == SIGINT ? "nbhub was interrupted (SIGINT) while this cell was executing"
                                          : "nbhub was terminated (SIGTERM) while this cell was executing");
    }
    nbexec_finish(x, code);
}

static void nbexec_on_write_timer(uv_timer_t *t)
{
    nbexec_t *x = t->data;
    if (!x->finished && nbwriter_pending(x->w)) nbexec_write(x, 0);
}

static void nbexec_on_ready(kmgr_t *km, int status, const char *errmsg, void *ud)
{
    nbexec_t *x = ud;
    if (status < 0) {
        if (status == -ETIMEDOUT)
            err_set(x->err, status, "kernel did not become ready within %g seconds",
                    x->o->start_timeout_s > 0 ? x->o->start_timeout_s : 60.0);
        else
            err_set(x->err, status, "%s", errmsg ? errmsg : "kernel failed to start");
        x->km_dead = status != -ETIMEDOUT;
        x->finished = 1;
        x->exit_code = NB_EXIT_KERNEL;
        json_object_set_new(nbexec_obj(nbexec_obj(x->nb, "metadata"), "papermill"), "exception", json_true());
        nbwriter_all_dirty(x->w);
        nbexec_write(x, 1);
        uv_close((uv_handle_t *)&x->cell_timer, NULL);
        uv_close((uv_handle_t *)&x->grace_timer, NULL);
        uv_close((uv_handle_t *)&x->deadline_timer, NULL);
        uv_close((uv_handle_t *)&x->write_timer, NULL);
        uv_close((uv_handle_t *)&x->peek_timer, NULL);
        return;
    }
    x->start_us = time_now_us();
    nbexec_notebook_start(x);
    nbexec_write(x, 0);
    if (x->o->deadline_s > 0)
        uv_timer_start(&x->deadline_timer, nbexec_on_deadline, (uint64_t)(x->o->deadline_s * 1000), 0);
    unsigned iv = x->o->write_interval_ms ? x->o->write_interval_ms : 1000;
    uv_timer_start(&x->write_timer, nbexec_on_write_timer, iv, iv);
    nbexec_advance(x);
}

int nbexec_run(json_t *nb, const kspec_t *spec, const struct nbexec_opts *o, nb_err_t *err)
{
    nbexec_t *x = xcalloc(1, sizeof *x);
    x->nb = nb;
    x->cells = json_object_get(nb, "cells");
    x->o = o;
    x->err = err;
    x->start_us = time_now_us();
    x->w = nbwriter_new(o->output_path ? o->output_path : "/dev/null");
    x->out = nbout_new(x->cells, o->max_output_bytes, nbexec_dirty, x);
    x->wg = nbwidget_new(o->max_output_bytes);
    uv_loop_init(&x->loop);
    uv_timer_init(&x->loop, &x->cell_timer);
    uv_timer_init(&x->loop, &x->grace_timer);
    uv_timer_init(&x->loop, &x->deadline_timer);
    uv_timer_init(&x->loop, &x->write_timer);
    uv_timer_init(&x->loop, &x->peek_timer);
    x->cell_timer.data = x->grace_timer.data = x->deadline_timer.data = x->write_timer.data = x;
    x->peek_timer.data = x;
    uv_signal_init(&x->loop, &x->sigint);
    uv_signal_init(&x->loop, &x->sigterm);
    x->sigint.data = x->sigterm.data = x;
    uv_signal_start(&x->sigint, nbexec_on_signal, SIGINT);
    uv_signal_start(&x->sigterm, nbexec_on_signal, SIGTERM);

    struct kmgr_opts ko = {
        .cwd = o->cwd, .tcp = o->tcp, .extra_env = o->kernel_env, .keep_history = o->keep_history,
        .start_timeout_ms = o->start_timeout_s > 0 ? (unsigned)(o->start_timeout_s * 1000) : 60000,
        .keeper = o->keep_kernel_s > 0 && o->kept,
    };
    struct kmgr_cbs cbs = { nbexec_on_ready, nbexec_on_msg, nbexec_on_died, nbexec_on_stopped };
    int rc = o->existing_kernel
        ? kmgr_attach(&x->loop, o->existing_kernel, o->kernel_pid, o->shutdown_kernel,
                      ko.start_timeout_ms, &cbs, x, &x->km, err)
        : kmgr_start(&x->loop, spec, &ko, &cbs, x, &x->km, err);
    int code;
    if (rc < 0) {
        nbexec_close_handles(x);
        uv_run(&x->loop, UV_RUN_DEFAULT);
        code = NB_EXIT_KERNEL;
    } else {
        uv_run(&x->loop, UV_RUN_DEFAULT);
        code = x->exit_code;
    }
    NB_ASSERT(uv_loop_close(&x->loop) == 0);
    nbexec_land(x);
    nbout_free(x->out);
    nbwidget_free(x->wg);
    nbwriter_free(x->w);
    free(x->text);
    free(x);
    return code;
}
