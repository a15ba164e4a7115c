/*
 * sched — flows in service, the flows directory, cron ticks, start and
 * stop.  Runs and tasks are in sched_run.c.  The contract is in sched.h.
 *
 * The flows directory is the one source of truth for flow definitions:
 * files edited by hand, copied by a deploy, or written by `nbhub flow
 * apply` (the API writes NAME.yaml atomically) all go through the same
 * reload.  A reload reads each .yaml or .yml file, skips files whose content did
 * not change (FNV-1a hash), and parses the others into a new flow_t.  A
 * file that fails keeps the previous version of its flow in service and
 * records the problems (shown by the API); a file that disappears retires
 * its flow (soft delete in the store, once no run of it is in flight).
 * inotify (uv_fs_event) triggers a reload 200 ms after the last change, so
 * an editor's write-rename-chmod sequence is one reload.
 *
 * Ticks: each scheduled flow has one timer armed at its next tick.  The
 * next tick is computed from the last tick recorded in the store, so a
 * restart neither repeats nor (with catch-up) skips one; when the timer
 * fires, store_tick_fire records the tick and creates the run in one
 * transaction ("record the tick, then dispatch"), and -EEXIST means it
 * already fired.  Semantics: the tick time is the run's logical date (cron
 * semantics: the 05:00 run runs at 05:00 with ds = that day); the data
 * interval is [previous tick, this tick].
 */

#include "sched/sched_int.h"
#include "sched/dag.h"
#include "store/store_auth.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const double sched_dur_bounds[9] = { 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800 };

int64_t sched_now_us(void) { return time_now_us(); }

void sched_handle_close(uv_handle_t *h)
{
    sched_t *s = h->data;
    free(h);
    if (--s->open_handles == 0 && s->stopping == 2 && s->stop_done) {
        void (*done)(void *) = s->stop_done;
        s->stop_done = NULL;
        done(s->stop_ud);
    }
}

/* Close a timer whose data pointed elsewhere (a flow, a task). */
void sched_timer_close(sched_t *s, uv_timer_t *t)
{
    t->data = s;
    uv_close((uv_handle_t *)t, sched_handle_close);
}

uv_timer_t *sched_timer_new(sched_t *s)
{
    uv_timer_t *t = xcalloc(1, sizeof *t);
    uv_timer_init(s->o.loop, t);
    t->data = s;
    s->open_handles++;
    return t;
}

void sched_changed(sched_t *s)
{
    if (s->batch) {   /* listeners read the store: not before the commit */
        s->changed_in_batch = 1;
        return;
    }
    if (s->o.on_change) s->o.on_change(s->o.ud);
}

void sched_batch_begin(sched_t *s)
{
    nb_err_t err;
    if (store_batch_begin(s->o.store, &err) < 0) {
        LOG_W("cannot begin a store batch; committing step by step", "error=\"%s\"", err.msg);
        return;
    }
    s->batch = 1;
}

void sched_batch_end(sched_t *s)
{
    if (!s->batch) return;
    s->batch = 0;
    nb_err_t err;
    if (store_batch_end(s->o.store, &err) < 0)
        /* Memory is ahead of the database now; a restart re-reads the
         * store and recovers the tasks from their pids and status files. */
        LOG_E("cannot commit the store batch", "error=\"%s\"", err.msg);
    if (s->changed_in_batch) {
        s->changed_in_batch = 0;
        sched_changed(s);
    }
}

/* ---- fref: a parsed flow shared by runs ------------------------------------ */

/* The kernel a notebook task will use: the task's, else the notebook's
 * metadata.kernelspec.name (read once per flow version, for the pool). */
static char *sched_nb_kernel(const flow_task_t *t)
{
    if (t->kernel) return xstrdup(t->kernel);
    if (!t->notebook_path) return NULL;
    json_error_t je;
    json_t *nb = json_load_file(t->notebook_path, 0, &je);
    if (!nb) return NULL;
    const char *k = json_string_value(
        json_object_get(json_object_get(json_object_get(nb, "metadata"), "kernelspec"), "name"));
    char *r = k ? xstrdup(k) : NULL;
    json_decref(nb);
    return r;
}

fref_t *fref_new(flow_t *f, int64_t version, int read_kernels)
{
    fref_t *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->refs = 1;
    r->version = version;
    r->kernel = xcalloc(f->ntasks ? f->ntasks : 1, sizeof *r->kernel);
    for (size_t i = 0; i < f->ntasks; i++)
        if (read_kernels && f->tasks[i].notebook_path) r->kernel[i] = sched_nb_kernel(&f->tasks[i]);
    return r;
}

void fref_put(fref_t *r)
{
    if (!r || --r->refs > 0) return;
    for (size_t i = 0; i < r->f->ntasks; i++) free(r->kernel[i]);
    free(r->kernel);
    flow_free(r->f);
    free(r);
}

/* A run created from an older version of its flow: rebuild the flow from
 * the canonical JSON the run carries.  flow_to_json adds a few derived
 * keys the file format does not have; drop them, and point notebooks at
 * their resolved absolute paths. */
fref_t *sched_fref_from_spec(const char *spec_json, int64_t version, int read_kernels, nb_err_t *err)
{
    json_error_t je;
    json_t *j = json_loads(spec_json, 0, &je);
    if (!j) {
        err_set(err, -EINVAL, "stored flow spec is not JSON: %s", je.text);
        return NULL;
    }
    json_object_del(j, "path");
    json_object_del(j, "schedule_kind");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "tasks"), i, t) {
        json_t *p = json_object_get(t, "notebook_path");
        if (json_is_null(p)) {
            json_object_del(t, "notebook_path");   /* "~/...": stays as written */
        } else if (p) {
            json_object_set(t, "notebook", p);
            json_object_del(t, "notebook_path");
        }
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    int rc = flow_parse_text(text, strlen(text), "<stored spec>", "/", &f, &errs);
    free(text);
    if (rc < 0) {
        buf_t b = { 0 };
        errlist_format(&errs, &b);
        err_set(err, -EINVAL, "stored flow spec does not load: %s", b.data ? b.data : "");
        buf_free(&b);
        errlist_free(&errs);
        return NULL;
    }
    errlist_free(&errs);
    return fref_new(f, version, read_kernels);
}

/* ---- flows ------------------------------------------------------------------- */

sflow_t *sched_flow_find(sched_t *s, const char *name)
{
    for (size_t i = 0; i < s->nflows; i++)
        if (strcmp(s->flows[i]->name, name) == 0) return s->flows[i];
    return NULL;
}

static sflow_t *sched_flow_by_path(sched_t *s, const char *path)
{
    for (size_t i = 0; i < s->nflows; i++)
        if (s->flows[i]->path && strcmp(s->flows[i]->path, path) == 0) return s->flows[i];
    return NULL;
}

static sflow_t *sched_flow_add(sched_t *s, const char *name)
{
    sflow_t *fl = xcalloc(1, sizeof *fl);
    fl->s = s;
    fl->name = xstrdup(name);
    errlist_init(&fl->errs);
    if (s->nflows == s->capflows) {
        s->capflows = s->capflows ? s->capflows * 2 : 16;
        s->flows = xrealloc(s->flows, s->capflows * sizeof *s->flows);
    }
    s->flows[s->nflows++] = fl;
    return fl;
}

static void sched_flow_remove(sched_t *s, sflow_t *fl)
{
    for (size_t i = 0; i < s->nflows; i++)
        if (s->flows[i] == fl) {
            memmove(s->flows + i, s->flows + i + 1, (s->nflows - i - 1) * sizeof *s->flows);
            s->nflows--;
            break;
        }
    if (fl->timer) sched_timer_close(s, fl->timer);
    fref_put(fl->fr);
    errlist_free(&fl->errs);
    free(fl->name);
    free(fl->path);
    free(fl->file_hash);
    free(fl);
}

static void sched_hash(const char *data, size_t n, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Put a freshly parsed flow in service (takes f). */
static int sched_install(sched_t *s, flow_t *f, const char *path, const char *hash,
                         int64_t owner_id, int64_t *version, int *created, int *changed,
                         nb_err_t *err)
{
    json_t *spec = flow_to_json(f);
    char *spec_text = json_dumps(spec, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(spec);
    if (!owner_id && f->owner) {
        store_user_t u;
        if (store_user_by_name(s->o.store, f->owner, &u, NULL) == 0) {
            owner_id = u.id;
            store_user_clear(&u);
        } else {
            LOG_W("flow owner is not a user", "flow=%s owner=%s", f->name, f->owner);
        }
    }
    store_flow_in_t in = { f->name, owner_id, spec_text, path, hash };
    int64_t v = 0;
    int ch = 0;
    int rc = store_flow_upsert(s->o.store, &in, sched_now_us(), &v, &ch, err);
    free(spec_text);
    if (rc < 0) {
        flow_free(f);
        return rc;
    }
    sflow_t *fl = sched_flow_find(s, f->name);
    if (created) *created = fl == NULL || fl->fr == NULL;
    if (!fl) fl = sched_flow_add(s, f->name);
    store_flow_t row;
    if (store_flow_get(s->o.store, f->name, 0, &row, NULL) == 0) {
        fl->paused = row.paused;
        fl->owner_id = row.owner_id;
        fl->flow_id = row.id;
        store_flow_clear(&row);
    }
    if (path && (!fl->path || strcmp(fl->path, path) != 0)) {
        free(fl->path);
        fl->path = xstrdup(path);
    }
    free(fl->file_hash);
    fl->file_hash = hash ? xstrdup(hash) : NULL;
    errlist_free(&fl->errs);
    errlist_init(&fl->errs);
    if (!fl->fr || fl->fr->version != v) {
        fref_put(fl->fr);
        fl->fr = fref_new(f, v, s->o.pool != NULL);
    } else {
        flow_free(f);   /* same version: the one in service is equivalent */
    }
    fl->version = v;
    fl->seen = 1;
    if (version) *version = v;
    if (changed) *changed = ch;
    if (ch) LOG_I("flow loaded", "flow=%s version=%lld", fl->name, (long long)v);
    sched_arm_flow(s, fl);
    if (ch) sched_changed(s);
    return 0;
}

static void sched_broken_clear(sched_t *s)
{
    for (size_t i = 0; i < s->nbroken; i++) {
        free(s->broken_paths[i]);
        errlist_free(s->broken_errs[i]);
        free(s->broken_errs[i]);
    }
    free(s->broken_paths);
    free(s->broken_errs);
    s->broken_paths = NULL;
    s->broken_errs = NULL;
    s->nbroken = 0;
}

static void sched_log_errors(const char *what, const nb_errlist_t *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        char *m = errlist_format_one(errs, i);
        LOG_W(what, "error=\"%s\"", m);
        free(m);
    }
}

/* The directory a flow's paths resolve against: flows_dir/NAME/ when the
 * flow was deployed with its files, else the flows directory itself. */
static char *sched_flow_base(sched_t *s, const char *name)
{
    char *d = xasprintf("%s/%s", s->flows_dir, name);
    if (fs_is_dir(d)) return d;
    free(d);
    return xstrdup(s->flows_dir);
}

/* sched_flow_base for the flow in the file at path: the flow's name is the
 * file's stem (flows the API writes are flows_dir/NAME.yaml). */
static char *sched_flow_base_of_file(sched_t *s, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *stem = xstrdup(slash ? slash + 1 : path), *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    char *base = sched_flow_base(s, stem);
    free(stem);
    return base;
}

const char *sched_flow_own_dir(const sched_t *s, const flow_t *f)
{
    size_t n = s->flows_dir ? strlen(s->flows_dir) : 0;
    return n && f->base_dir && strncmp(f->base_dir, s->flows_dir, n) == 0 && f->base_dir[n] == '/'
               ? f->base_dir : NULL;
}

/* Load one file of the flows dir. */
static void sched_load_file(sched_t *s, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    nb_err_t err;
    if (fs_read_all(path, &text, &len, &err) < 0) {
        LOG_W("cannot read flow file", "path=%s error=\"%s\"", path, err.msg);
        return;
    }
    char hash[17];
    sched_hash(text, len, hash);
    sflow_t *old = sched_flow_by_path(s, path);
    if (old && old->file_hash && strcmp(old->file_hash, hash) == 0) {
        old->seen = 1;
        free(text);
        return;
    }
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    char *base = sched_flow_base_of_file(s, path);
    int rc = flow_parse_text(text, len, path, base, &f, &errs);
    free(base);
    free(text);
    if (rc == 0) {
        sflow_t *same = sched_flow_find(s, f->name);
        if (same && same->path && strcmp(same->path, path) != 0 && fs_exists(same->path)) {
            errlist_add(&errs, path, 0, 0, "flow '%s' is already defined in %s", f->name,
                        same->path);
            flow_free(f);
            rc = -EEXIST;
        } else if (old && strcmp(old->name, f->name) != 0) {
            /* Renamed inside the file: the old name loses its file. */
            free(old->path);
            old->path = NULL;
        }
    }
    if (rc == 0) {
        if (sched_install(s, f, path, hash, 0, NULL, NULL, NULL, &err) < 0)
            LOG_E("cannot store flow", "path=%s error=\"%s\"", path, err.msg);
        errlist_free(&errs);
        return;
    }
    sched_log_errors("flow file rejected", &errs);
    if (old) {
        /* Keep the previous version in service; remember why the new one failed. */
        errlist_free(&old->errs);
        old->errs = errs;
        old->seen = 1;
        free(old->file_hash);
        old->file_hash = xstrdup(hash);
        sched_changed(s);
        return;
    }
    s->broken_paths = xrealloc(s->broken_paths, (s->nbroken + 1) * sizeof *s->broken_paths);
    s->broken_errs = xrealloc(s->broken_errs, (s->nbroken + 1) * sizeof *s->broken_errs);
    s->broken_paths[s->nbroken] = xstrdup(path);
    s->broken_errs[s->nbroken] = xmalloc(sizeof(nb_errlist_t));
    *s->broken_errs[s->nbroken] = errs;
    s->nbroken++;
}

static int sched_is_flow_file(const char *n)
{
    size_t l = strlen(n);
    if (n[0] == '.' || strstr(n, ".nbhub-tmp-")) return 0;
    return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) || (l > 4 && strcmp(n + l - 4, ".yml") == 0);
}

/* A flow whose file is gone: retire it once nothing of it is in flight. */
static void sched_retire(sched_t *s, sflow_t *fl)
{
    if (fl->timer) uv_timer_stop(fl->timer);
    fl->next_us = 0;
    if (fl->running_runs) return;   /* sched_run finishes it later */
    nb_err_t err;
    int rc = store_flow_delete(s->o.store, fl->name, sched_now_us(), &err);
    if (rc == -EBUSY) return;
    if (rc < 0 && rc != -ENOENT) LOG_W("cannot delete flow", "flow=%s error=\"%s\"", fl->name,
                                       err.msg);
    LOG_I("flow removed", "flow=%s", fl->name);
    sched_flow_remove(s, fl);
    sched_changed(s);
}

void sched_reload(sched_t *s)
{
    if (!s->flows_dir || s->stopping) return;
    for (size_t i = 0; i < s->nflows; i++) s->flows[i]->seen = 0;
    sched_broken_clear(s);
    struct dirent **ents = NULL;
    int n = scandir(s->flows_dir, &ents, NULL, alphasort);
    if (n < 0) {
        LOG_W("cannot read flows directory", "dir=%s error=\"%s\"", s->flows_dir,
              strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        if (sched_is_flow_file(ents[i]->d_name)) {
            char *path = xasprintf("%s/%s", s->flows_dir, ents[i]->d_name);
            sched_load_file(s, path);
            free(path);
        }
        free(ents[i]);
    }
    free(ents);
    for (size_t i = s->nflows; i-- > 0;) {
        sflow_t *fl = s->flows[i];
        if (fl->path && !fl->seen) {
            free(fl->path);
            fl->path = NULL;
            sched_retire(s, fl);
        }
    }
}

static void sched_on_reload_timer(uv_timer_t *t)
{
    sched_reload(t->data);
}

static void sched_on_dir_event(uv_fs_event_t *h, const char *file, int events, int status)
{
    (void)events;
    (void)status;
    sched_t *s = h->data;
    if (file && !sched_is_flow_file(file)) return;
    uv_timer_start(s->reload_timer, sched_on_reload_timer, 200, 0);
}

/* ---- ticks ------------------------------------------------------------------- */

/* The latest tick <= now (seconds), searching back in growing windows; 0 if
 * none after `after`. */
static int64_t sched_latest_tick(const flow_t *f, int64_t after, int64_t now)
{
    static const int64_t windows[] = { 3600, 86400, 32 * 86400, 367 * 86400, 5 * 367 * 86400 };
    for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
        int64_t from = now - windows[w];
        if (f->sched_kind == FLOW_SCHED_INTERVAL && f->interval > windows[w])
            continue;
        if (from < after) from = after;
        int64_t t, last = 0;
        if (cron_next(f->cron, f->tz, from, &t) < 0 || t > now) {
            if (from == after) return 0;
            continue;
        }
        do {
            last = t;
        } while (cron_next(f->cron, f->tz, t, &t) == 0 && t <= now);
        return last;
    }
    return 0;
}

static void sched_on_tick(uv_timer_t *t);

void sched_arm_flow(sched_t *s, sflow_t *fl)
{
    if (fl->timer) uv_timer_stop(fl->timer);
    fl->next_us = 0;
    if (s->stopping || fl->paused || !fl->fr) return;
    const flow_t *f = fl->fr->f;
    if (f->sched_kind == FLOW_SCHED_MANUAL || !f->cron) return;
    int64_t now = sched_now_us() / 1000000;
    int64_t last_us = 0, after, next;
    int have_last = store_tick_last(s->o.store, fl->name, &last_us, NULL) == 0;
    if (have_last) after = last_us / 1000000;
    else if (f->has_start) after = f->start_date - 1;
    else after = now;   /* a new flow without start_date starts from now */
    if (cron_next(f->cron, f->tz, after, &next) < 0) return;
    if (next <= now && !f->catchup) {
        int64_t latest = sched_latest_tick(f, after, now);
        if (latest > next) next = latest;
    }
    if (f->has_end && next > f->end_date) return;
    fl->next_us = next * 1000000;
    if (!fl->timer) fl->timer = sched_timer_new(s);
    fl->timer->data = fl;
    int64_t delay_ms = next > now ? (next * 1000000 - sched_now_us()) / 1000 : 0;
    if (delay_ms < 0) delay_ms = 0;
    uv_timer_start(fl->timer, sched_on_tick, (uint64_t)delay_ms, 0);
}

static void sched_on_tick(uv_timer_t *t)
{
    sflow_t *fl = t->data;
    sched_t *s = fl->s;
    if (s->stopping || !fl->next_us) return;
    int64_t now = sched_now_us();
    if (now < fl->next_us) {   /* the wall clock went back: wait on */
        uv_timer_start(t, sched_on_tick, (uint64_t)((fl->next_us - now) / 1000) + 1, 0);
        return;
    }
    nb_err_t err;
    int rc = sched_run_fire(s, fl, STORE_RUN_SCHEDULED, fl->next_us, NULL, 0, NULL, &err);
    if (rc == 0) s->stats.ticks_fired++;
    else if (rc != -EEXIST && rc != -ESTALE)
        LOG_E("tick failed", "flow=%s error=\"%s\"", fl->name, err.msg);
    sched_arm_flow(s, fl);
}

int64_t sched_next_run(sched_t *s, const char *name)
{
    sflow_t *fl = sched_flow_find(s, name);
    return fl ? fl->next_us : 0;
}

/* ---- public flow operations ---------------------------------------------------- */

const flow_t *sched_flow(sched_t *s, const char *name)
{
    sflow_t *fl = sched_flow_find(s, name);
    return fl && fl->fr ? fl->fr->f : NULL;
}

const nb_errlist_t *sched_flow_errors(sched_t *s, const char *name)
{
    sflow_t *fl = sched_flow_find(s, name);
    return fl && fl->errs.n ? &fl->errs : NULL;
}

size_t sched_broken_files(sched_t *s, const char ***paths, const nb_errlist_t ***errs)
{
    *paths = (const char **)s->broken_paths;
    *errs = (const nb_errlist_t **)s->broken_errs;
    return s->nbroken;
}

const char *sched_flows_dir(const sched_t *s) { return s->flows_dir; }

int sched_file_path_ok(const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n > 255 || path[0] == '/') return -EINVAL;
    const char *c = path;
    for (const char *p = path;; p++) {
        if (*p == '/' || *p == 0) {
            if (p == c || *c == '.') return -EINVAL;   /* "", ".", "..", ".hidden" */
            if (!*p) break;
            c = p + 1;
        } else if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == '\\') {
            return -EINVAL;
        }
    }
    return 0;
}

/* The value of a top-level `key:` of a flow file, read line by line so it
 * works on files YAML cannot parse: quotes and a trailing comment removed.
 * NULL when absent or empty. */
static char *sched_peek_key(const char *text, size_t len, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < len;) {
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        i += ll + 1;
        if (ll <= kl || memcmp(line, key, kl) != 0) continue;
        size_t p = kl;
        while (p < ll && line[p] == ' ') p++;
        if (p >= ll || line[p] != ':') continue;
        p++;
        while (p < ll && (line[p] == ' ' || line[p] == '\t')) p++;
        size_t e = ll;
        if (p < ll && (line[p] == '"' || line[p] == '\'')) {
            const char *q = memchr(line + p + 1, line[p], ll - p - 1);
            if (!q) return NULL;
            e = (size_t)(q - line);
            p++;
        } else {
            for (size_t k = p; k < ll; k++)
                if (line[k] == '#' && (k == p || line[k - 1] == ' ' || line[k - 1] == '\t')) {
                    e = k;
                    break;
                }
            while (e > p && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r'))
                e--;
        }
        return e > p ? xstrndup(line + p, e - p) : NULL;
    }
    return NULL;
}

/* A flow file of the flows dir that failed to load, and that applying
 * `name` to `target` would replace or shadow: the one at that path, or one
 * that says it is that flow.  Its owner (user name, into *owner, may stay
 * NULL) is its `owner:` key, else the owner of the flow the store last
 * loaded from that path.  1 if there is one. */
static int sched_broken_owner(sched_t *s, const char *name, const char *target, char **owner)
{
    *owner = NULL;
    for (size_t i = 0; i < s->nbroken; i++) {
        const char *path = s->broken_paths[i];
        char *text = NULL;
        size_t len = 0;
        nb_err_t e;
        if (fs_read_all(path, &text, &len, &e) < 0) continue;
        char *declared = sched_peek_key(text, len, "name");
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t bl = strcspn(base, ".");
        int same = strcmp(path, target) == 0 ||
                   (declared ? strcmp(declared, name) == 0
                             : strlen(name) == bl && strncmp(base, name, bl) == 0);
        if (same) *owner = sched_peek_key(text, len, "owner");
        free(text);
        if (!same) {
            free(declared);
            continue;
        }
        if (!*owner) {
            store_flow_t row;
            if (store_flow_get(s->o.store, declared ? declared : name, 1, &row, NULL) == 0) {
                store_user_t u;
                if (row.owner_id && row.source_path && strcmp(row.source_path, path) == 0 &&
                    store_user_by_id(s->o.store, row.owner_id, &u, NULL) == 0) {
                    *owner = xstrdup(u.name);
                    store_user_clear(&u);
                }
                store_flow_clear(&row);
            }
        }
        free(declared);
        return 1;
    }
    return 0;
}

/* Write files below a fresh staging directory of the flows directory. */
static char *sched_stage_files(sched_t *s, const sched_file_t *files, size_t nfiles, nb_err_t *err)
{
    static unsigned seq;
    char *dir = xasprintf("%s/.nbhub-upload-%d-%u", s->flows_dir, (int)getpid(), ++seq);
    if (mkdir(dir, 0700) < 0) {
        err_set(err, -errno, "%s: %s", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    for (size_t i = 0; i < nfiles; i++) {
        char *path = xasprintf("%s/%s", dir, files[i].path), *parent = fs_dirname(path);
        int rc = sched_file_path_ok(files[i].path) < 0
                     ? err_set(err, -EINVAL, "file name '%s' is not allowed", files[i].path)
                     : fs_mkdir_p(parent, 0700, err);
        if (rc == 0) rc = fs_write_atomic(path, files[i].data, files[i].len, 0, err);
        free(parent);
        free(path);
        if (rc < 0) {
            fs_rm_tree(dir);
            free(dir);
            return NULL;
        }
    }
    return dir;
}

/* Move the staging directory to flows_dir/NAME/, replacing the old one. */
static int sched_commit_files(sched_t *s, const char *staged, const char *name, nb_err_t *err)
{
    char *final = xasprintf("%s/%s", s->flows_dir, name);
    char *old = xasprintf("%s/.nbhub-old-%s-%d", s->flows_dir, name, (int)getpid());
    int had = fs_is_dir(final), rc = 0;
    if (had && rename(final, old) < 0) rc = err_set(err, -errno, "%s: %s", final, strerror(errno));
    else if (rename(staged, final) < 0) {
        rc = err_set(err, -errno, "%s: %s", final, strerror(errno));
        if (had) rename(old, final);
    } else if (had) {
        fs_rm_tree(old);
    }
    free(final);
    free(old);
    return rc;
}

int sched_flow_apply(sched_t *s, const char *yaml, size_t len, const sched_file_t *files, size_t nfiles,
                     int trusted, const char *label,
                     const char *user, int is_admin,
                     int dry_run, char **name_out, int64_t *version, int *created, int *changed,
                     nb_errlist_t *errs, nb_err_t *err)
{
    if (name_out) *name_out = NULL;
    if (!s->flows_dir) return err_set(err, -ENOTSUP, "the server has no flows directory");
    flow_t *f = NULL;
    if (!label || !*label) label = "<request>";
    char *staged = NULL;
    if (nfiles && !(staged = sched_stage_files(s, files, nfiles, err))) return err->code;
    int rc = flow_parse_text(yaml, len, label, staged ? staged : s->flows_dir, &f, errs);
    if (rc == 0 && !staged && f->name[0]) {
        /* Deployed earlier with its files: its paths resolve there. */
        char *base = sched_flow_base(s, f->name);
        if (strcmp(base, s->flows_dir) != 0) {
            flow_free(f);
            f = NULL;
            rc = flow_parse_text(yaml, len, label, base, &f, errs);
        }
        free(base);
    }
    if (rc < 0) {
        if (staged) fs_rm_tree(staged);
        free(staged);
        return err_set(err, -EINVAL, "the flow file has errors");
    }
    if (f->name[0] == '\0' || strcmp(f->name, "<request>") == 0 || strcmp(f->name, "request") == 0) {
        flow_free(f);
        if (staged) fs_rm_tree(staged);
        free(staged);
        errlist_add(errs, label, 0, 0, "the flow needs a 'name' when it is sent to the server");
        return err_set(err, -EINVAL, "the flow file has errors");
    }
    sflow_t *fl = sched_flow_find(s, f->name);
    int64_t uid = 0;
    if (user) {
        store_user_t u;
        if (store_user_by_name(s->o.store, user, &u, NULL) == 0) {
            uid = u.id;
            store_user_clear(&u);
        }
    }
    if (!is_admin) {
        if (f->owner && (!user || strcmp(f->owner, user) != 0)) {
            rc = err_set(err, -EACCES, "flow '%s' names owner '%s': only an admin may apply "
                         "a flow for another user", f->name, f->owner);
            goto fail;
        }
        /* A flow whose file names this user as owner but that has no owner
         * in the store (the user did not exist when the file was loaded)
         * is theirs to apply; an unowned flow without that is admin-only. */
        int named = fl && fl->fr && fl->fr->f->owner && user &&
                    strcmp(fl->fr->f->owner, user) == 0 && fl->owner_id == 0;
        if (fl && fl->owner_id != uid && !named) {
            rc = err_set(err, -EACCES, "flow '%s' belongs to another user", f->name);
            goto fail;
        }
    }
    /* Not in service here, but maybe still someone's: a live row in the
     * store (a stored spec that did not load), or a file of the flows dir
     * that failed to load.  Only its owner or an admin may replace it. */
    int64_t live_owner = -1;
    if (!fl) {
        store_flow_t row;
        if (store_flow_get(s->o.store, f->name, 0, &row, NULL) == 0) {
            live_owner = row.owner_id;
            store_flow_clear(&row);
        }
        if (!is_admin && live_owner >= 0 && live_owner != uid) {
            rc = err_set(err, -EACCES, "flow '%s' belongs to another user", f->name);
            goto fail;
        }
        char *target = xasprintf("%s/%s.yaml", s->flows_dir, f->name);
        sflow_t *other = sched_flow_by_path(s, target);
        if (other) {
            /* The file of another flow (its name: differs from the file's):
             * writing it would replace that flow, whoever asks. */
            rc = err_set(err, -EEXIST, "%s.yaml holds flow '%s'; give this flow another name",
                         f->name, other->name);
            free(target);
            goto fail;
        }
        char *bowner = NULL;
        int broken = sched_broken_owner(s, f->name, target, &bowner);
        free(target);
        int mine = bowner && user && strcmp(bowner, user) == 0;
        free(bowner);
        if (broken && !is_admin && !mine && live_owner != uid) {
            rc = err_set(err, -EACCES, "flow '%s' has a file in the flows directory that failed "
                         "to load and belongs to another user (or to no one): only its owner "
                         "or an admin may replace it", f->name);
            goto fail;
        }
    }
    char why[256];
    if (!trusted && flow_needs_trust(f, why, sizeof why)) {
        rc = err_set(err, -EACCES, "%s: only admins and trusted users may save that on this server "
                     "(isolation: shared runs every task as the server's own account)", why);
        goto fail;
    }
    if (dry_run) {
        if (staged) fs_rm_tree(staged);
        free(staged);
        if (name_out) *name_out = xstrdup(f->name);
        if (created) *created = fl == NULL;
        if (version) *version = fl ? fl->version : 0;
        if (changed) *changed = 0;
        flow_free(f);
        return 0;
    }
    if (staged) {
        if ((rc = sched_commit_files(s, staged, f->name, err)) < 0) goto fail;
        free(staged);
        staged = NULL;
    }
    char *path = fl && fl->path ? xstrdup(fl->path) : xasprintf("%s/%s.yaml", s->flows_dir, f->name);
    if ((rc = fs_write_atomic(path, yaml, len, 1, err)) < 0) {
        free(path);
        goto fail;
    }
    char hash[17];
    sched_hash(yaml, len, hash);
    /* Re-parse with the real file name so later messages point at it. */
    flow_free(f);
    f = NULL;
    nb_errlist_t e2 = ERRLIST_INIT;
    char *base = sched_flow_base_of_file(s, path);
    rc = flow_parse_text(yaml, len, path, base, &f, &e2);
    free(base);
    errlist_free(&e2);
    if (rc < 0) {
        free(path);
        return err_set(err, -EIO, "flow changed meaning when written");
    }
    char *name = xstrdup(f->name);
    /* The owner: key, when it names a user, makes the flow that user's: its
     * tasks run as them and ~/ is their workspace, so the flow is in their
     * list and theirs to run, also when an admin applied it for them (only
     * an admin may name someone else, checked above).  Without it the
     * applier becomes the owner of a new flow only: an existing one (in
     * service or a live stored row) keeps its owner. */
    int64_t owner_id = fl || live_owner >= 0 ? 0 : uid;
    if (f->owner) {
        store_user_t ou;
        if (store_user_by_name(s->o.store, f->owner, &ou, NULL) == 0) {
            owner_id = ou.id;
            store_user_clear(&ou);
        }
    }
    rc = sched_install(s, f, path, hash, owner_id, version, created, changed, err);
    free(path);
    if (rc == 0 && name_out) *name_out = name;
    else free(name);
    return rc;
fail:
    if (staged) fs_rm_tree(staged);
    free(staged);
    flow_free(f);
    return rc;
}

int sched_flow_pause(sched_t *s, const char *name, int paused, nb_err_t *err)
{
    sflow_t *fl = sched_flow_find(s, name);
    if (!fl || !fl->fr) return err_set(err, -ENOENT, "no flow named '%s'", name);
    if (fl->paused == !!paused) return 0;
    int rc = store_flow_set_paused(s->o.store, name, !!paused, sched_now_us(), err);
    if (rc < 0 && rc != -ESTALE) return rc;
    fl->paused = !!paused;
    sched_arm_flow(s, fl);
    if (!paused) sched_run_start_queued(s, name);
    sched_changed(s);
    return 0;
}

int sched_flow_delete(sched_t *s, const char *name, nb_err_t *err)
{
    sflow_t *fl = sched_flow_find(s, name);
    if (!fl || !fl->fr) return err_set(err, -ENOENT, "no flow named '%s'", name);
    if (fl->running_runs)
        return err_set(err, -EBUSY, "flow '%s' has runs in flight: cancel them first", name);
    int rc = store_flow_delete(s->o.store, name, sched_now_us(), err);
    if (rc < 0) return rc;
    if (fl->path && unlink(fl->path) != 0 && errno != ENOENT)
        LOG_W("cannot remove flow file", "path=%s error=\"%s\"", fl->path, strerror(errno));
    sched_flow_remove(s, fl);
    sched_changed(s);
    return 0;
}

int sched_trigger(sched_t *s, const char *flow, const json_t *params, int64_t logical_us,
                  int64_t user_id, int64_t *run_out, nb_err_t *err)
{
    sflow_t *fl = sched_flow_find(s, flow);
    if (!fl || !fl->fr) return err_set(err, -ENOENT, "no flow named '%s'", flow);
    if (s->stopping) return err_set(err, -EAGAIN, "the server is shutting down");
    const flow_t *f = fl->fr->f;
    if (params && !json_is_object(params)) return err_set(err, -EINVAL, "params must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) {
        /* Names reach templates, and through them notebook parameters:
         * a name that is not an identifier is refused by itself, with a
         * message that says so (it could not be a declared one anyway). */
        if (!flow_param_name_ok(k))
            return err_set(err, -EINVAL, "parameter name '%.64s%s' is not an identifier: letters, "
                           "digits and '_' (ASCII), not starting with a digit", k,
                           strlen(k) > 64 ? "..." : "");
        if (!json_object_get(f->params, k))
            return err_set(err, -EINVAL, "flow '%s' has no parameter '%s'", flow, k);
    }
    if (!logical_us) logical_us = sched_now_us();
    if (!flow_time_ok(logical_us / 1000000 - (logical_us < 0 && logical_us % 1000000 ? 1 : 0)))
        return err_set(err, -EINVAL, "the logical date must be within " FLOW_TIME_WINDOW);
    return sched_run_fire(s, fl, STORE_RUN_MANUAL, logical_us, params, user_id, run_out, err);
}

int sched_backfill(sched_t *s, const char *flow, int64_t from_us, int64_t to_us,
                   int64_t user_id, json_t *runs, nb_err_t *err)
{
    sflow_t *fl = sched_flow_find(s, flow);
    if (!fl || !fl->fr) return err_set(err, -ENOENT, "no flow named '%s'", flow);
    const flow_t *f = fl->fr->f;
    if (!f->cron) return err_set(err, -EINVAL, "flow '%s' has no schedule to backfill", flow);
    if (to_us < from_us) return err_set(err, -EINVAL, "backfill range ends before it starts");
    if (from_us < FLOW_TIME_MIN * 1000000 || to_us >= FLOW_TIME_MAX * 1000000)
        return err_set(err, -EINVAL, "a backfill must be within " FLOW_TIME_WINDOW);
    int64_t t, to = to_us / 1000000;
    size_t n = 0;
    int64_t ticks[1001];
    if (cron_next(f->cron, f->tz, from_us / 1000000 - 1, &t) == 0) {
        while (t <= to) {
            if (n == 1000)
                return err_set(err, -EINVAL, "backfill of more than 1000 runs: split the range");
            ticks[n++] = t;
            if (cron_next(f->cron, f->tz, t, &t) < 0) break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int64_t id = 0;
        int rc = sched_run_fire(s, fl, STORE_RUN_BACKFILL, ticks[i] * 1000000, NULL, user_id,
                                &id, err);
        if (rc == -EEXIST) continue;   /* that tick already ran */
        if (rc < 0) return rc;
        json_array_append_new(runs, json_integer(id));
    }
    return 0;
}

/* ---- life cycle ---------------------------------------------------------------- */

int sched_new(const sched_opts_t *o, sched_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!o->loop || !o->store || !o->home) return err_set(err, -EINVAL, "sched: missing options");
    sched_t *s = xcalloc(1, sizeof *s);
    s->o = *o;
    s->home = xstrdup(o->home);
    s->flows_dir = o->flows_dir ? xstrdup(o->flows_dir) : NULL;
    s->self_exe = o->self_exe ? xstrdup(o->self_exe) : NULL;
    s->base_url = xstrdup(o->base_url ? o->base_url : "");
    s->pool_cwd = getcwd(NULL, 0);
    if (!s->o.max_active_tasks) s->o.max_active_tasks = 16;
    if (!s->o.kill_grace_ms) s->o.kill_grace_ms = 10000;
    s->reload_timer = sched_timer_new(s);
    *out = s;
    return 0;
}

int sched_start(sched_t *s, nb_err_t *err)
{
    int rc;
    if (s->flows_dir) {
        if ((rc = fs_mkdir_p(s->flows_dir, 0700, err)) < 0) return rc;
        s->watch = xcalloc(1, sizeof *s->watch);
        uv_fs_event_init(s->o.loop, s->watch);
        s->watch->data = s;
        s->open_handles++;
        if ((rc = uv_fs_event_start(s->watch, sched_on_dir_event, s->flows_dir, 0)) < 0)
            LOG_W("cannot watch flows directory (reload with `nbhub flow apply`)", "dir=%s error=%s",
                  s->flows_dir, uv_strerror(rc));
    }
    /* Flows first (their fref is shared by recovered runs of the same version),
     * and flows known to the store but without a file (e.g. applied before
     * the flows dir moved) stay known through their stored spec. */
    sched_reload(s);
    store_flows_t all;
    if (store_flows_list(s->o.store, 0, 0, &all, NULL) == 0) {
        for (size_t i = 0; i < all.n; i++) {
            if (sched_flow_find(s, all.v[i].name)) continue;
            nb_err_t e;
            fref_t *fr = sched_fref_from_spec(all.v[i].spec_json, all.v[i].version, s->o.pool != NULL, &e);
            if (!fr) {
                LOG_W("stored flow does not load", "flow=%s error=\"%s\"", all.v[i].name, e.msg);
                continue;
            }
            sflow_t *fl = sched_flow_add(s, all.v[i].name);
            fl->fr = fr;
            fl->version = all.v[i].version;
            fl->owner_id = all.v[i].owner_id;
            fl->flow_id = all.v[i].id;
            fl->paused = all.v[i].paused;
            sched_arm_flow(s, fl);
        }
        store_flows_free(&all);
    }
    if ((rc = sched_run_recover(s, err)) < 0) return rc;
    if ((rc = sched_kept_recover(s, err)) < 0) return rc;
    sched_run_dispatch(s);
    return 0;
}

static void sched_stop_check(sched_t *s)
{
    if (s->stopping != 1 || s->running) return;
    /* No task left to end with a kept kernel: the kept ones go now. */
    sched_kept_stop_all(s);
    s->stopping = 2;
    /* Close our handles; the last close callback calls done. */
    for (size_t i = 0; i < s->nflows; i++)
        if (s->flows[i]->timer) {
            sched_timer_close(s, s->flows[i]->timer);
            s->flows[i]->timer = NULL;
        }
    if (s->watch) {
        uv_close((uv_handle_t *)s->watch, sched_handle_close);
        s->watch = NULL;
    }
    if (s->reload_timer) {
        uv_close((uv_handle_t *)s->reload_timer, sched_handle_close);
        s->reload_timer = NULL;
    }
    if (s->stop_timer) {
        uv_close((uv_handle_t *)s->stop_timer, sched_handle_close);
        s->stop_timer = NULL;
    }
    sched_runs_free(s);
}

/* Called by sched_run.c when a child ends during a stop. */

void sched_stop_progress(sched_t *s) { sched_stop_check(s); }

static void sched_on_grace(uv_timer_t *t)
{
    sched_t *s = t->data;
    LOG_W("grace period over: stopping tasks", "running=%u", s->running);
    sched_run_stop_all(s);
}

void sched_stop(sched_t *s, uint64_t grace_ms, void (*done)(void *), void *ud)
{
    s->stopping = 1;
    s->stop_done = done;
    s->stop_ud = ud;
    for (size_t i = 0; i < s->nflows; i++)
        if (s->flows[i]->timer) uv_timer_stop(s->flows[i]->timer);
    LOG_I("scheduler stopping", "running=%u grace_ms=%llu", s->running,
          (unsigned long long)grace_ms);
    if (s->running) {
        s->stop_timer = sched_timer_new(s);
        uv_timer_start(s->stop_timer, sched_on_grace, grace_ms, 0);
    }
    sched_stop_check(s);
}

void sched_free(sched_t *s)
{
    if (!s) return;
    while (s->nflows) sched_flow_remove(s, s->flows[s->nflows - 1]);
    free(s->flows);
    sched_broken_clear(s);
    free(s->home);
    free(s->flows_dir);
    free(s->self_exe);
    free(s->base_url);
    free(s->pool_cwd);
    free(s);
}

void sched_get_stats(sched_t *s, sched_stats_t *out)
{
    *out = s->stats;
    out->running_tasks = s->running;
    out->queued_tasks = s->queued;
    out->flows = 0;
    for (size_t i = 0; i < s->nflows; i++) out->flows += s->flows[i]->fr != NULL;
    out->broken_files = (unsigned)s->nbroken;
}
