/*
 * livy.c — the session manager (livy.h): the `livy:` configuration, the
 * sessions in memory, adoption after a restart, the tick (heartbeat
 * timeouts, journals of adopted statements, Spark progress, forgetting
 * ended sessions) and the requests the API makes.  Kernels are started and
 * ended in livy_session.c, statements run in livy_stmt.c.
 */
#include "livy/livy_session.h"
#include "livy/livy_cluster.h"

#include "spark/scluster.h"
#include "store/store_auth.h"
#include "store/store_livy.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVY_TICK_MS 1000
#define POS(n) (int)(n)->start_mark.line + 1, (int)(n)->start_mark.column + 1

/* ---- configuration -------------------------------------------------------- */

void livy_conf_init(livy_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->output_max = -1;
    c->start_timeout_ms = -1;
    c->retain_ms = -1;
    c->workers = c->worker_cores = c->max_workers = c->max_worker_cores = -1;
}

void livy_conf_finish(livy_conf_t *c)
{
    if (!c->spark) c->spark = xstrdup("local");
    if (!c->master) c->master = xstrdup("local[*]");
    if (!c->kernel) c->kernel = xstrdup("python3");
    if (c->output_max < 0) c->output_max = LIVY_OUTPUT_MAX_DEFAULT;
    if (c->start_timeout_ms < 0) c->start_timeout_ms = LIVY_START_TIMEOUT_MS_DEFAULT;
    if (c->retain_ms < 0) c->retain_ms = LIVY_RETAIN_MS_DEFAULT;
    if (c->workers < 0) c->workers = 1;
    if (c->worker_cores < 0) c->worker_cores = 1;
    if (!c->worker_memory) c->worker_memory = xstrdup("1g");
    /* the maxima: 4 or the default when that is larger */
    if (c->max_workers < 0) c->max_workers = c->workers > 4 ? c->workers : 4;
    if (c->max_worker_cores < 0) c->max_worker_cores = c->worker_cores > 4 ? c->worker_cores : 4;
    if (!c->max_worker_memory)
        c->max_worker_memory = xstrdup(scluster_memory_mb(c->worker_memory) > 4096 ? c->worker_memory : "4g");
    /* the maxima are never below the defaults (a session asking for
     * nothing must be possible) */
    if (c->max_workers < c->workers) c->max_workers = c->workers;
    if (c->max_worker_cores < c->worker_cores) c->max_worker_cores = c->worker_cores;
    if (scluster_memory_mb(c->max_worker_memory) < scluster_memory_mb(c->worker_memory)) {
        free(c->max_worker_memory);
        c->max_worker_memory = xstrdup(c->worker_memory);
    }
}

void livy_conf_clear(livy_conf_t *c)
{
    free(c->spark);
    free(c->master);
    free(c->kernel);
    free(c->worker_memory);
    free(c->max_worker_memory);
    if (c->conf)
        for (char **p = c->conf; *p; p++) free(*p);
    free(c->conf);
    livy_conf_init(c);
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* "90s", "10m", "2h", "500ms", a bare number of seconds. */
static int parse_duration_ms(const char *s, int64_t *out)
{
    if (!s || !*s) return -EINVAL;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || v > 100LL * 365 * 86400) return -EINVAL;
    long long mul;
    if (!*end || !strcmp(end, "s")) mul = 1000;
    else if (!strcmp(end, "ms")) mul = 1;
    else if (!strcmp(end, "m")) mul = 60000;
    else if (!strcmp(end, "h")) mul = 3600000;
    else return -EINVAL;
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!s) return -EINVAL;
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) *out = 0;
    else return -EINVAL;
    return 0;
}

void livy_conf_parse(const char *path, yaml_document_t *doc, yaml_node_t *v, livy_conf_t *c,
                     nb_errlist_t *errs)
{
    static const char *const keys[] = { "spark", "master", "kernel", "conf", "output_max",
                                        "start_timeout", "retain", "csrf", "warm",
                                        "workers", "worker_memory", "worker_cores", "max_workers",
                                        "max_worker_memory", "max_worker_cores" };
    c->present = 1;
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'livy' must be a mapping (spark, master, kernel, ...)");
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        const char *key = scalar(kn), *val = scalar(vn);
        if (key && !strcmp(key, "spark")) {
            if (!val || (strcmp(val, "local") != 0 && strcmp(val, "cluster") != 0))
                errlist_add(errs, path, POS(vn), "'livy.spark' must be local (Spark inside the kernel) or "
                                                 "cluster (a Spark cluster per session)");
            else {
                free(c->spark);
                c->spark = xstrdup(val);
            }
        } else if (key && !strcmp(key, "master")) {
            if (!val || strncmp(val, "local", 5) != 0)
                errlist_add(errs, path, POS(vn), "'livy.master' must be local, local[N] or local[*]");
            else {
                free(c->master);
                c->master = xstrdup(val);
            }
        } else if (key && !strcmp(key, "kernel")) {
            if (!val || !*val)
                errlist_add(errs, path, POS(vn), "'livy.kernel' must be a kernel spec name");
            else {
                free(c->kernel);
                c->kernel = xstrdup(val);
            }
        } else if (key && !strcmp(key, "conf")) {
            if (vn->type != YAML_MAPPING_NODE) {
                errlist_add(errs, path, POS(vn), "'livy.conf' must be a mapping of Spark settings");
                continue;
            }
            /* A second conf (the key twice, or livy: twice) replaces the
             * first, as every other key does; its entries leaked (fuzz_srvconf). */
            if (c->conf)
                for (char **q = c->conf; *q; q++) free(*q);
            free(c->conf);
            c->conf = NULL;
            size_t n = 0;
            for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
                yaml_node_t *ck = yaml_document_get_node(doc, q->key), *cv = yaml_document_get_node(doc, q->value);
                if (!scalar(ck) || !scalar(cv) || !strchr(scalar(ck), '.')) {
                    errlist_add(errs, path, POS(ck), "'livy.conf' entries must be spark.key: value");
                    continue;
                }
                c->conf = xrealloc(c->conf, (n + 2) * sizeof *c->conf);
                c->conf[n++] = xasprintf("%s=%s", scalar(ck), scalar(cv));
                c->conf[n] = NULL;
            }
        } else if (key && !strcmp(key, "output_max")) {
            long mb = val ? scluster_memory_mb(val) : -EINVAL;
            if (mb <= 0)
                errlist_add(errs, path, POS(vn), "'livy.output_max' must be a size such as 16m");
            else
                c->output_max = (int64_t)mb * 1024 * 1024;
        } else if (key && !strcmp(key, "start_timeout")) {
            if (parse_duration_ms(val, &c->start_timeout_ms) < 0 || c->start_timeout_ms == 0)
                errlist_add(errs, path, POS(vn), "'livy.start_timeout' must be a duration such as 180s");
        } else if (key && !strcmp(key, "retain")) {
            if (parse_duration_ms(val, &c->retain_ms) < 0)
                errlist_add(errs, path, POS(vn), "'livy.retain' must be a duration such as 10m");
        } else if (key && !strcmp(key, "warm")) {
            char *end;
            long n = val ? strtol(val, &end, 10) : -1;
            if (!val || *end || n < 0 || n > 64)
                errlist_add(errs, path, POS(vn), "'livy.warm' must be a number of kernels from 0 to 64");
            else
                c->warm = (unsigned)n;
        } else if (key && (!strcmp(key, "workers") || !strcmp(key, "max_workers") || !strcmp(key, "worker_cores") ||
                           !strcmp(key, "max_worker_cores"))) {
            /* spark: cluster's sizes (livy_cluster.h); sowned's bounds */
            int w = strstr(key, "workers") != NULL;
            long lim = w ? 64 : 1024;
            char *end;
            long n = val ? strtol(val, &end, 10) : -1;
            if (!val || *end || n < 1 || n > lim)
                errlist_add(errs, path, POS(vn), "'livy.%s' must be a whole number from 1 to %ld", key, lim);
            else if (!strcmp(key, "workers")) c->workers = n;
            else if (!strcmp(key, "max_workers")) c->max_workers = n;
            else if (!strcmp(key, "worker_cores")) c->worker_cores = n;
            else c->max_worker_cores = n;
        } else if (key && (!strcmp(key, "worker_memory") || !strcmp(key, "max_worker_memory"))) {
            if (!val || scluster_memory_ok(val) < 0)
                errlist_add(errs, path, POS(vn), "'livy.%s' must be a size such as 512m or 2g", key);
            else {
                char **dst = !strcmp(key, "worker_memory") ? &c->worker_memory : &c->max_worker_memory;
                free(*dst);
                *dst = xstrdup(val);
            }
        } else if (key && !strcmp(key, "csrf")) {
            if (parse_bool(val, &c->csrf) < 0)
                errlist_add(errs, path, POS(vn), "'livy.csrf' must be true or false");
        } else {
            const char *hint = key ? errlist_closest(key, keys, sizeof keys / sizeof *keys) : NULL;
            errlist_add(errs, path, POS(kn), "unknown key 'livy.%s'%s%s%s", key ? key : "?",
                        hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
        }
    }
}

/* ---- kinds ---------------------------------------------------------------- */

int livy_kind_check(const char *kind, nb_err_t *err)
{
    if (!kind) return err_set(err, -EINVAL, "kind is required");
    if (!strcmp(kind, "pyspark") || !strcmp(kind, "python") || !strcmp(kind, "sql")) return 0;
    if (!strcmp(kind, "spark") || !strcmp(kind, "sparkr"))
        return err_set(err, -ENOTSUP, "kind '%s' is not available: nbhub runs Livy sessions on PySpark "
                                      "kernels and has no %s kernel configured (use pyspark or sql)",
                       kind, !strcmp(kind, "spark") ? "Scala" : "R");
    return err_set(err, -EINVAL, "unknown kind '%s': pyspark, sql (spark and sparkr have no kernel here)",
                   kind);
}

/* ---- sessions in memory ----------------------------------------------------- */

static lsess_t *find(livy_t *l, int64_t id)
{
    for (lsess_t *s = l->sessions; s; s = s->next)
        if (s->id == id && !s->deleted && !s->warm) return s;
    return NULL;
}

lsess_t *lsess_new(livy_t *l, int64_t id, int64_t uid, const char *kind)
{
    lsess_t *s = xcalloc(1, sizeof *s);
    s->l = l;
    s->id = id;
    s->uid = uid;
    s->kind = xstrdup(kind);
    s->cur.id = -1;
    char *dir = xasprintf("%s/livy/sessions/%lld", l->home, (long long)id);
    lsess_set_dir(s, dir);
    free(dir);
    s->last_hb_us = s->hb_written_us = time_now_us();
    s->next = l->sessions;
    l->sessions = s;
    return s;
}

void lsess_set_dir(lsess_t *s, const char *dir)
{
    free(s->dir);
    free(s->log_path);
    free(s->journal);
    free(s->events_dir);
    s->dir = xstrdup(dir);
    s->log_path = xasprintf("%s/kernel.log", s->dir);
    s->journal = xasprintf("%s/journal.jsonl", s->dir);
    s->events_dir = xasprintf("%s/events", s->dir);
}

static void maybe_done(livy_t *l)
{
    if (l->stopping && !l->sessions && l->tick_closed && l->done) {
        void (*done)(void *) = l->done;
        l->done = NULL;
        done(l->done_ud);
    }
}

/* Unlinked and freed by livy_session.c once its handles are closed. */
void lsess_free_maybe(lsess_t *s)
{
    if (s->proc_open || s->stop_timer_open || (s->km && !s->km_gone)) return;
    livy_t *l = s->l;
    for (lsess_t **pp = &l->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    lstmt_clear(&s->cur);
    if (s->evfile) fclose(s->evfile);
    seventlog_free(s->evlog);
    free(s->kind);
    free(s->dir);
    free(s->log_path);
    free(s->journal);
    free(s->events_dir);
    free(s->conn_file);
    free(s->acct);
    free(s->cgroup);
    free(s->end_error);
    free(s->app_id);
    free(s->cluster);
    free(s->cluster_master);
    if (s->cluster_conf)
        for (char **p = s->cluster_conf; *p; p++) free(*p);
    free(s->cluster_conf);
    free(s);
    maybe_done(l);
}

/* busy <-> idle flips stay in memory (livy_session_state overlays them on
 * the row): two fsyncs per statement fewer, and a restarted nbhub finds the
 * truth in the kernel and the statements anyway. */
static int live_state(const char *st)
{
    return !strcmp(st, "idle") || !strcmp(st, "busy");
}

void lsess_set_state(lsess_t *s, const char *state)
{
    if (s->deleted) return;
    int flip = live_state(state) && live_state(s->state) && s->ready;
    snprintf(s->state, sizeof s->state, "%s", state);
    if (flip) return;
    nb_err_t err;
    if (store_livy_session_set_state(s->l->st, s->id, state, NULL, time_now_us(), &err) < 0)
        LOG_W("livy: session state not recorded", "session=%lld state=%s error=\"%s\"", (long long)s->id,
              state, err.msg);
}

/* ---- the warm pool ------------------------------------------------------------
 * livy.warm kernels started ahead, initialised (SparkSession up) with the
 * configured settings alone: a session asking for nothing else (no conf,
 * sizes, jars or files) takes one and is idle at once instead of after a
 * JVM start.  They have no row until claimed, are ended when nbhub stops
 * (nothing would adopt them) and are replaced by the tick. */

static void warm_fill(livy_t *l)
{
    /* Under isolation: system a kernel is its owner's from its start:
     * there is no pool of kernels nobody owns yet. */
    if (l->stopping || l->o.isolation_system) return;
    /* spark: cluster: a session's kernel needs its own cluster's master,
     * which is not known before the session: no pool. */
    if (!strcmp(l->conf->spark, "cluster")) return;
    unsigned have = 0;
    for (lsess_t *s = l->sessions; s; s = s->next) have += s->warm && !s->ending;
    while (have < l->conf->warm) {
        lsess_t *s = lsess_new(l, 0, 0, "pyspark");
        s->warm = 1;
        s->deleted = 1;   /* no row: nothing to write */
        char *dir = xasprintf("%s/livy/warm/%u-%lld", l->home, ++l->warm_seq, (long long)time_now_us());
        lsess_set_dir(s, dir);
        free(dir);
        nb_err_t err;
        json_t *req = json_object();
        int rc = lsess_start(s, req, &err);
        json_decref(req);
        if (rc < 0) {
            LOG_W("livy: warm kernel did not start", "error=\"%s\"", err.msg);
            lsess_end(s, NULL, NULL);
            return;
        }
        have++;
    }
}

/* A request a warm kernel can serve: nothing beyond what every session gets. */
static int warm_fits(const json_t *req)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)req, k, v) {
        if (json_is_null(v)) continue;
        if (strcmp(k, "kind") && strcmp(k, "name") && strcmp(k, "heartbeatTimeoutInSecond") &&
            strcmp(k, "proxyUser"))
            return 0;
    }
    return 1;
}

static lsess_t *warm_take(livy_t *l)
{
    lsess_t *best = NULL;
    for (lsess_t *s = l->sessions; s; s = s->next)
        if (s->warm && !s->ending && (!best || (s->ready && !best->ready))) best = s;
    return best;
}

/* ---- the tick --------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    livy_t *l = t->data;
    int64_t now = time_now_us();
    for (lsess_t *s = l->sessions, *next; s; s = next) {
        next = s->next;
        if (s->ending || s->deleted || s->warm) continue;
        if (s->cur.from_journal) lstmt_poll_journal(s);
        if (s->cur.id >= 0) lstmt_progress(s);
        /* A SIGINT that lands while ipykernel is between receiving the
         * request and running its code is swallowed there: until the
         * statement ends, the interrupt is sent again every 2 s. */
        if (s->cur.id >= 0 && s->cur.interrupted_us && s->km && now - s->cur.interrupted_us >= 2000000) {
            LOG_D("livy: interrupting again", "session=%lld statement=%lld", (long long)s->id,
                  (long long)s->cur.id);
            kmgr_interrupt(s->km);
            s->cur.interrupted_us = now;
        }
        /* The heartbeat: written through now and then, so that a restarted
         * nbhub counts from the client's last request, not its own start. */
        if (s->last_hb_us - s->hb_written_us >= 5000000) {
            store_livy_session_heartbeat(l->st, s->id, s->last_hb_us, NULL);
            s->hb_written_us = s->last_hb_us;
        }
        if (s->hb_timeout_s > 0 && s->ready && s->cur.id < 0 &&
            now - s->last_hb_us > s->hb_timeout_s * 1000000) {
            char why[160];
            snprintf(why, sizeof why, "no request for %lld s (heartbeatTimeoutInSecond)",
                     (long long)s->hb_timeout_s);
            LOG_I("livy: session timed out", "session=%lld timeout_s=%lld", (long long)s->id,
                  (long long)s->hb_timeout_s);
            lsess_end(s, "dead", why);
        }
    }
    warm_fill(l);
    livy_cluster_sweep(l);
    /* Livy forgets ended sessions after a while (livy.server.session.state-retain.sec). */
    store_livy_sessions_prune(l->st, now - l->conf->retain_ms * 1000, NULL, NULL);
}

/* ---- adoption --------------------------------------------------------------- */

static void adopt_all(livy_t *l)
{
    store_livy_sessions_t rows;
    nb_err_t err;
    if (store_livy_sessions_list(l->st, 0, 1, &rows, &err) < 0) {
        LOG_E("livy: cannot read sessions", "error=\"%s\"", err.msg);
        return;
    }
    int adopted = 0, lost = 0;
    for (size_t i = 0; i < rows.n; i++) {
        store_livy_session_t *r = &rows.v[i];
        lsess_t *s = lsess_new(l, r->id, r->user_id, r->kind);
        if (r->log_path) {   /* a warm kernel's directory, when it came from the pool */
            char *d = xstrdup(r->log_path), *slash = strrchr(d, '/');
            if (slash) {
                *slash = '\0';
                lsess_set_dir(s, d);
            }
            free(d);
        }
        snprintf(s->state, sizeof s->state, "%s", r->state);
        s->hb_timeout_s = r->heartbeat_timeout;
        s->last_hb_us = s->hb_written_us = r->last_heartbeat ? r->last_heartbeat : time_now_us();
        /* A kernel half-way through its initialisation cannot be trusted
         * to have `spark` and the journal: that session is ended. */
        int usable = r->kernel_conn && r->pid > 0 &&
                     (!strcmp(r->state, "idle") || !strcmp(r->state, "busy"));
        nb_err_t aerr;
        if (usable && lsess_adopt(s, r->kernel_conn, r->pid, r->pid_start_time, &aerr) == 0) {
            adopted++;
            continue;
        }
        lost++;
        s->pid = r->pid;
        s->pid_start = r->pid_start_time;
        free(s->conn_file);
        s->conn_file = r->kernel_conn ? xstrdup(r->kernel_conn) : NULL;
        /* (a kernel still running is stopped: lsess_end) */
        lsess_end(s, usable ? "dead" : "error", usable ? aerr.msg : "nbhub restarted while the session was starting");
    }
    store_livy_sessions_free(&rows);
    if (adopted || lost) LOG_I("livy: sessions after restart", "adopted=%d ended=%d", adopted, lost);
}

int livy_new(const livy_opts_t *o, livy_t **out, nb_err_t *err)
{
    if (!o || !o->loop || !o->store || !o->home || !o->conf)
        return err_set(err, -EINVAL, "livy: loop, store, home and conf are required");
    livy_t *l = xcalloc(1, sizeof *l);
    l->loop = o->loop;
    l->st = o->store;
    l->home = xstrdup(o->home);
    l->conf = o->conf;
    l->o = *o;
    uv_timer_init(l->loop, &l->tick);
    l->tick.data = l;
    uv_timer_start(&l->tick, on_tick, LIVY_TICK_MS, LIVY_TICK_MS);
    uv_unref((uv_handle_t *)&l->tick);
    livy_ids_load(&l->ids, l->st, l->home, STORE_LIVY_SESSION);
    adopt_all(l);
    if (o->spark) livy_cluster_init(l, o->spark);
    *out = l;
    return 0;
}

const livy_conf_t *livy_conf(const livy_t *l) { return l->conf; }

static void on_tick_closed(uv_handle_t *h)
{
    livy_t *l = h->data;
    l->tick_closed = 1;
    maybe_done(l);
}

void livy_shutdown(livy_t *l, void (*done)(void *ud), void *ud)
{
    if (!l) {
        if (done) done(ud);
        return;
    }
    if (l->stopping) return;
    l->stopping = 1;
    l->done = done;
    l->done_ud = ud;
    uv_close((uv_handle_t *)&l->tick, on_tick_closed);
    livy_cluster_shutdown(l);
    for (lsess_t *s = l->sessions, *next; s; s = next) {
        next = s->next;
        if (s->warm) lsess_end(s, NULL, NULL);   /* nothing would adopt it */
        else lsess_detach(s);
    }
}

void livy_free(livy_t *l)
{
    if (!l) return;
    livy_ids_clear(&l->ids);
    free(l->home);
    free(l);
}

/* ---- requests ------------------------------------------------------------- */

int livy_session_create(livy_t *l, const livy_create_t *c, int64_t *id, nb_err_t *err)
{
    if (l->stopping) return err_set(err, -ESHUTDOWN, "nbhub is stopping");
    int rc = livy_kind_check(c->kind, err);
    if (rc < 0) return rc;
    const char *named;
    if ((rc = livy_cluster_named(c->request, &named, err)) < 0) return rc;
    int cluster = !named && !strcmp(l->conf->spark, "cluster");
    if (cluster && (rc = livy_cluster_check(l->conf, c->request, err)) < 0) return rc;
    char *req = json_dumps(c->request, JSON_COMPACT | JSON_SORT_KEYS);
    rc = store_livy_session_create_above(l->st, l->ids.hwm, c->uid, c->proxy_user, c->name, c->kind, req,
                                         c->heartbeat_timeout, time_now_us(), id, err);
    free(req);
    if (rc < 0) return rc;
    livy_ids_note(&l->ids, *id);
    lsess_t *w = cluster || named ? NULL   /* a warm kernel has no cluster */
                 : strcmp(c->kind, "sql") && strcmp(c->kind, "pyspark") && strcmp(c->kind, "python")
                     ? NULL
                     : (warm_fits(c->request) ? warm_take(l) : NULL);
    if (w) {
        w->warm = 0;
        w->deleted = 0;
        w->id = *id;
        w->uid = c->uid;
        free(w->kind);
        w->kind = xstrdup(c->kind);
        w->hb_timeout_s = c->heartbeat_timeout;
        w->last_hb_us = w->hb_written_us = time_now_us();
        nb_err_t serr;
        if (store_livy_session_spawned(l->st, w->id, w->conn_file, w->pid, w->pid_start, w->log_path, NULL,
                                       &serr) < 0)
            LOG_W("livy: warm kernel not recorded", "session=%lld error=\"%s\"", (long long)w->id, serr.msg);
        if (w->app_id) store_livy_session_set_app(l->st, w->id, w->app_id, NULL);
        lsess_set_state(w, w->ready ? "idle" : "starting");
        LOG_I("livy: session took a warm kernel", "session=%lld pid=%d ready=%d", (long long)w->id, w->pid,
              w->ready);
        return 0;
    }
    lsess_t *s = lsess_new(l, *id, c->uid, c->kind);
    snprintf(s->state, sizeof s->state, "not_started");
    s->hb_timeout_s = c->heartbeat_timeout;
    nb_err_t serr;
    if (cluster) {
        /* The cluster first, the kernel when it is up (livy_cluster.h).
         * Owned by the user the session runs for. */
        const char *owner = c->proxy_user;
        store_user_t u = { 0 };
        if (!owner && store_user_by_id(l->st, c->uid, &u, &serr) == 0) owner = u.name;
        if (!owner || livy_cluster_start(l, s, owner, c->request, &serr) < 0) {
            LOG_W("livy: session cluster start failed", "session=%lld error=\"%s\"", (long long)*id,
                  owner ? serr.msg : "no owner");
            lsess_end(s, "error", owner ? serr.msg : "the session's user is gone");
        }
        store_user_clear(&u);
        return 0;
    }
    if (named) {
        const char *owner = c->proxy_user;
        store_user_t u = { 0 };
        if (!owner && store_user_by_id(l->st, c->uid, &u, &serr) == 0) owner = u.name;
        if (!owner || livy_cluster_attach(l, s, owner, named, c->request, &serr) < 0) {
            LOG_W("livy: session on a named cluster failed", "session=%lld error=\"%s\"", (long long)*id,
                  owner ? serr.msg : "no owner");
            lsess_end(s, "error", owner ? serr.msg : "the session's user is gone");
        }
        store_user_clear(&u);
        return 0;
    }
    if (lsess_start(s, c->request, &serr) < 0) {
        LOG_W("livy: session start failed", "session=%lld error=\"%s\"", (long long)*id, serr.msg);
        lsess_end(s, "error", serr.msg);
    }
    return 0;
}

int livy_session_delete(livy_t *l, int64_t id, nb_err_t *err)
{
    lsess_t *s = find(l, id);
    int rc = store_livy_session_delete(l->st, id, err);
    if (rc < 0 && !s) return rc;
    if (s) {
        s->deleted = 1;
        lsess_end(s, NULL, NULL);
        livy_cluster_sweep(l);   /* its cluster goes now, with the kernel */
    }
    return 0;
}

void livy_session_heartbeat(livy_t *l, int64_t id)
{
    lsess_t *s = find(l, id);
    if (s) s->last_hb_us = time_now_us();
}

int livy_stmt_submit(livy_t *l, int64_t session_id, const char *kind, const char *code,
                     int64_t *stmt, nb_err_t *err)
{
    lsess_t *s = find(l, session_id);
    if (!s) {
        /* Ended sessions stay listed (livy.retain) without a kernel. */
        store_livy_session_t row;
        int rc = store_livy_session_get(l->st, session_id, &row, err);
        if (rc < 0) return rc;
        rc = err_set(err, -ESTALE, "Session %lld is %s: it takes no statements", (long long)session_id,
                     row.state);
        store_livy_session_clear(&row);
        return rc;
    }
    if (s->ending || store_livy_state_final(s->state))
        return err_set(err, -ESTALE, "Session %lld is %s: it takes no statements", (long long)session_id,
                       s->state);
    const char *k = kind ? kind : s->kind;
    int rc = livy_kind_check(k, err);
    if (rc < 0) return rc;
    rc = store_livy_stmt_add(l->st, session_id, k, code, stmt, err);
    if (rc < 0) return rc;
    s->last_hb_us = time_now_us();
    lstmt_next(s);
    return 0;
}

int livy_stmt_cancel(livy_t *l, int64_t session_id, int64_t stmt, nb_err_t *err)
{
    lsess_t *s = find(l, session_id);
    store_livy_stmt_t r;
    int rc = store_livy_stmt_get(l->st, session_id, stmt, &r, err);
    if (rc < 0) return rc;
    int waiting = !strcmp(r.state, "waiting"), running = !strcmp(r.state, "running");
    store_livy_stmt_clear(&r);
    if (waiting) return store_livy_stmt_finish(l->st, session_id, stmt, "cancelled", NULL, time_now_us(), err);
    if (!running) return 0;
    if (!s || s->cur.id != stmt || !s->km)
        return store_livy_stmt_finish(l->st, session_id, stmt, "cancelled", NULL, time_now_us(), err);
    rc = store_livy_stmt_cancelling(l->st, session_id, stmt, err);
    if (rc < 0) return rc;
    kmgr_interrupt(s->km);
    s->cur.interrupted_us = time_now_us();
    return 0;
}

const char *livy_session_state(const livy_t *l, int64_t id)
{
    for (lsess_t *s = l->sessions; s; s = s->next)
        if (s->id == id && !s->deleted && !s->warm && !s->ending) return s->state;
    return NULL;
}
