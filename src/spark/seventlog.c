/* seventlog — see seventlog.h. */
#include "spark/seventlog.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds on what one log may make us hold (a hostile or corrupt log must
 * not exhaust memory): Spark's own UI keeps 1000 jobs by default. */
enum { SEV_MAX_JOBS = 100000, SEV_MAX_STAGES = 1000000 };

struct sev_stage {
    json_int_t id, attempt;
    size_t job;              /* index into jobs: the first job that listed it */
    json_int_t tasks, active, done, failed;
    int submitted, completed, ended;   /* completed: ended without a failure */
    char *name;
};

struct sev_job {
    json_int_t id;
    char *name, *status;
    json_int_t tasks, done, failed, skipped, stages_done;
    json_t *stage_ids;
};

struct seventlog {
    struct sev_stage *st;
    size_t nst, capst;
    struct sev_job *jobs;
    size_t njobs, capjobs;
    char *app_id;
    buf_t partial;           /* the start of a line whose end has not come yet */
    int final;
};

/* The stage with id, or where it would go (*found 0). */
static size_t sev_stage_at(const seventlog_t *s, json_int_t id, int *found)
{
    size_t lo = 0, hi = s->nst;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->st[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < s->nst && s->st[lo].id == id;
    return lo;
}

static struct sev_stage *sev_stage(seventlog_t *s, const json_t *id)
{
    if (!json_is_integer(id)) return NULL;
    int found;
    size_t at = sev_stage_at(s, json_integer_value(id), &found);
    return found ? &s->st[at] : NULL;
}

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void sev_job_start(seventlog_t *s, const json_t *e)
{
    const json_t *infos = json_object_get(e, "Stage Infos");
    if (!json_is_integer(json_object_get(e, "Job ID")) || s->njobs >= SEV_MAX_JOBS) return;
    if (s->njobs == s->capjobs) {
        s->capjobs = s->capjobs ? 2 * s->capjobs : 16;
        s->jobs = xrealloc(s->jobs, s->capjobs * sizeof *s->jobs);
    }
    struct sev_job *j = &s->jobs[s->njobs];
    memset(j, 0, sizeof *j);
    j->id = num(e, "Job ID");
    j->stage_ids = json_array();
    /* The job's name is its last stage's (AppStatusListener.onJobStart). */
    json_int_t last = -1;
    const char *name = "";
    size_t i;
    json_t *si;
    json_array_foreach((json_t *)infos, i, si) {
        json_t *sid = json_object_get(si, "Stage ID");
        if (!json_is_integer(sid)) continue;
        json_int_t id = json_integer_value(sid);
        json_array_append_new(j->stage_ids, json_integer(id));
        if (id > last) {
            last = id;
            const char *n = json_string_value(json_object_get(si, "Stage Name"));
            name = n ? n : "";
        }
        /* Tasks of stages that had already completed are not the job's. */
        if (!json_object_get(si, "Completion Time")) j->tasks += num(si, "Number of Tasks");
        int found;
        size_t at = sev_stage_at(s, id, &found);
        if (found || s->nst >= SEV_MAX_STAGES) continue;
        if (s->nst == s->capst) {
            s->capst = s->capst ? 2 * s->capst : 16;
            s->st = xrealloc(s->st, s->capst * sizeof *s->st);
        }
        memmove(&s->st[at + 1], &s->st[at], (s->nst - at) * sizeof *s->st);
        const char *sn = json_string_value(json_object_get(si, "Stage Name"));
        s->st[at] = (struct sev_stage){ .id = id, .job = s->njobs, .tasks = num(si, "Number of Tasks"),
                                        .name = xstrdup(sn ? sn : "") };
        s->nst++;
    }
    j->name = xstrdup(name);
    j->status = xstrdup("RUNNING");
    s->njobs++;
}

static struct sev_job *sev_job(seventlog_t *s, const json_t *id)
{
    if (!json_is_integer(id)) return NULL;
    for (size_t i = s->njobs; i-- > 0;)   /* the job ending is usually the last one */
        if (s->jobs[i].id == json_integer_value(id)) return &s->jobs[i];
    return NULL;
}

static void sev_job_end(seventlog_t *s, const json_t *e)
{
    struct sev_job *j = sev_job(s, json_object_get(e, "Job ID"));
    if (!j) return;
    const char *res = json_string_value(json_object_get(json_object_get(e, "Job Result"), "Result"));
    free(j->status);
    j->status = xstrdup(res && !strcmp(res, "JobSucceeded") ? "SUCCEEDED" : "FAILED");
    size_t i;
    json_t *sid;
    json_array_foreach(j->stage_ids, i, sid) {
        struct sev_stage *st = sev_stage(s, sid);
        if (st && !st->submitted && &s->jobs[st->job] == j) j->skipped += st->tasks;
    }
}

static void sev_stage_event(seventlog_t *s, const json_t *e, int ended)
{
    const json_t *info = json_object_get(e, "Stage Info");
    struct sev_stage *st = sev_stage(s, json_object_get(info, "Stage ID"));
    if (!st) return;
    json_int_t attempt = num(info, "Stage Attempt ID");
    if (!ended) {
        /* A new attempt (a retry after a fetch failure) starts afresh. */
        if (st->submitted && attempt != st->attempt) st->active = 0;
        st->submitted = 1;
        st->ended = 0;
        st->attempt = attempt;
        return;
    }
    st->submitted = st->ended = 1;
    st->active = 0;
    if (st->completed || json_object_get(info, "Failure Reason")) return;
    st->completed = 1;
    s->jobs[st->job].stages_done++;
}

static void sev_task_start(seventlog_t *s, const json_t *e)
{
    struct sev_stage *st = sev_stage(s, json_object_get(e, "Stage ID"));
    if (st && !st->ended) st->active++;
}

static void sev_task_end(seventlog_t *s, const json_t *e)
{
    struct sev_stage *st = sev_stage(s, json_object_get(e, "Stage ID"));
    if (!st) return;
    if (st->active > 0) st->active--;
    const char *why = json_string_value(json_object_get(json_object_get(e, "Task End Reason"), "Reason"));
    if (!why || !strcmp(why, "TaskKilled")) return;
    if (!strcmp(why, "Success")) {
        s->jobs[st->job].done++;
        st->done++;
    } else {
        s->jobs[st->job].failed++;
        st->failed++;
    }
}

/* The events we read; a line starting with another is not parsed at all
 * (the environment and SQL plans are most of a log's bytes). */
static const char *const sev_events[] = { "ApplicationStart", "JobStart", "JobEnd", "StageSubmitted",
                                          "StageCompleted", "TaskStart", "TaskEnd" };

static int sev_wanted(const char *line)
{
    static const char pre[] = "{\"Event\":\"SparkListener";
    if (strncmp(line, pre, sizeof pre - 1)) return line[0] == '{';   /* another writer's key order */
    const char *name = line + sizeof pre - 1;
    for (size_t i = 0; i < sizeof sev_events / sizeof *sev_events; i++) {
        size_t n = strlen(sev_events[i]);
        if (!strncmp(name, sev_events[i], n) && name[n] == '"') return 1;
    }
    return 0;
}

/* One line of the log (without its newline). */
static void sev_line(seventlog_t *s, const char *line, size_t n)
{
    if (!n || !sev_wanted(line)) return;
    json_t *e = jparse(line, n, 0, NULL);
    const char *ev = json_string_value(json_object_get(e, "Event"));
    if (!ev || strncmp(ev, "SparkListener", 13)) {
        json_decref(e);
        return;
    }
    ev += 13;
    if (!strcmp(ev, "ApplicationStart")) {
        const char *id = json_string_value(json_object_get(e, "App ID"));
        if (id && !s->app_id) s->app_id = xstrdup(id);
    } else if (!strcmp(ev, "JobStart")) {
        sev_job_start(s, e);
    } else if (!strcmp(ev, "JobEnd")) {
        sev_job_end(s, e);
    } else if (!strcmp(ev, "StageSubmitted")) {
        sev_stage_event(s, e, 0);
    } else if (!strcmp(ev, "StageCompleted")) {
        sev_stage_event(s, e, 1);
    } else if (!strcmp(ev, "TaskStart")) {
        sev_task_start(s, e);
    } else if (!strcmp(ev, "TaskEnd")) {
        sev_task_end(s, e);
    }
    json_decref(e);
}

seventlog_t *seventlog_new(void)
{
    return xcalloc(1, sizeof(seventlog_t));
}

void seventlog_free(seventlog_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->njobs; i++) {
        free(s->jobs[i].name);
        free(s->jobs[i].status);
        json_decref(s->jobs[i].stage_ids);
    }
    for (size_t i = 0; i < s->nst; i++) free(s->st[i].name);
    free(s->jobs);
    free(s->st);
    free(s->app_id);
    buf_free(&s->partial);
    free(s);
}

void seventlog_feed(seventlog_t *s, const char *data, size_t n)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        if (!nl) {
            buf_append(&s->partial, data, n);
            return;
        }
        size_t len = (size_t)(nl - data);
        if (s->partial.len) {
            buf_append(&s->partial, data, len);
            sev_line(s, s->partial.data, s->partial.len);
            buf_reset(&s->partial);
        } else {
            sev_line(s, data, len);
        }
        data = nl + 1;
        n -= len + 1;
    }
}

int seventlog_read(seventlog_t *s, FILE *f)
{
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) seventlog_feed(s, chunk, got);
    int bad = ferror(f);
    clearerr(f);   /* at EOF now; the driver may write more */
    return bad ? -1 : 0;
}

void seventlog_finish(seventlog_t *s)
{
    if (s->partial.len) sev_line(s, s->partial.data, s->partial.len);
    buf_reset(&s->partial);
    s->final = 1;
}

const char *seventlog_app_id(const seventlog_t *s)
{
    return s->app_id;
}

json_t *seventlog_jobs_json(const seventlog_t *s)
{
    json_t *out = json_array();
    for (size_t i = s->njobs; i-- > 0;) {
        const struct sev_job *j = &s->jobs[i];
        /* Without its end in a final log, the driver was killed mid-job:
         * Spark's history server would still call it running. */
        const char *status = s->final && !strcmp(j->status, "RUNNING") ? "UNKNOWN" : j->status;
        json_int_t active = 0;
        size_t k;
        json_t *sid;
        json_array_foreach(j->stage_ids, k, sid) {
            struct sev_stage *st = sev_stage((seventlog_t *)s, sid);
            if (st && &s->jobs[st->job] == j) active += st->active;
        }
        json_array_append_new(out, json_pack("{s:I, s:s, s:s, s:O, s:I, s:I, s:I, s:I, s:I, s:I}", "jobId",
                                             j->id, "name", j->name, "status", status, "stageIds",
                                             j->stage_ids, "numTasks", j->tasks, "numCompletedTasks", j->done,
                                             "numActiveTasks", active, "numFailedTasks", j->failed,
                                             "numSkippedTasks", j->skipped, "numCompletedStages",
                                             j->stages_done));
    }
    return out;
}

json_t *seventlog_active_stages(const seventlog_t *s)
{
    json_t *out = json_array();
    for (size_t i = s->nst; i-- > 0;) {
        const struct sev_stage *st = &s->st[i];
        if (!st->submitted || st->ended || s->final) continue;
        json_array_append_new(out, json_pack("{s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I}", "stageId", st->id,
                                             "attemptId", st->attempt, "name", st->name, "status", "ACTIVE",
                                             "numTasks", st->tasks, "numActiveTasks", st->active,
                                             "numCompleteTasks", st->done, "numFailedTasks", st->failed));
    }
    return out;
}

json_t *seventlog_jobs(FILE *f, char **app_id)
{
    seventlog_t *s = seventlog_new();
    seventlog_read(s, f);
    seventlog_finish(s);
    json_t *out = seventlog_jobs_json(s);
    if (app_id) *app_id = s->app_id ? xstrdup(s->app_id) : NULL;
    seventlog_free(s);
    return out;
}

char *seventlog_find(const char *dir, const char *app_id, const struct timespec *since)
{
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *best = NULL;
    struct timespec newest = { 0, 0 };
    size_t idn = app_id ? strlen(app_id) : 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) || !S_ISREG(sb.st_mode)) {
            free(p);
            continue;
        }
        if (app_id && !strncmp(de->d_name, app_id, idn) &&
            (!de->d_name[idn] || !strcmp(de->d_name + idn, ".inprogress"))) {
            free(best);
            best = p;
            break;
        }
        int fresh = !since || sb.st_mtim.tv_sec > since->tv_sec ||
                    (sb.st_mtim.tv_sec == since->tv_sec && sb.st_mtim.tv_nsec >= since->tv_nsec);
        if (!fresh) {
            free(p);
            continue;
        }
        if (!best || sb.st_mtim.tv_sec > newest.tv_sec ||
            (sb.st_mtim.tv_sec == newest.tv_sec && sb.st_mtim.tv_nsec > newest.tv_nsec)) {
            free(best);
            best = p;
            newest = sb.st_mtim;
        } else {
            free(p);
        }
    }
    closedir(d);
    return best;
}
