/* seventlog — see seventlog.h. */
#include "spark/seventlog.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds on what one log may make us hold (a hostile or corrupt log must
 * not exhaust memory): Spark's own UI keeps 1000 jobs by default. */
enum { SEV_MAX_JOBS = 100000, SEV_MAX_STAGES = 1000000 };

struct sev_stage {
    json_int_t id;
    size_t job;              /* index into jobs: the first job that listed it */
    json_int_t tasks;
    int submitted, completed;
};

struct sev_job {
    json_int_t id;
    char *name, *status;
    json_int_t tasks, done, failed, skipped, stages_done;
    json_t *stage_ids;
};

struct sev {
    struct sev_stage *st;
    size_t nst, capst;
    struct sev_job *jobs;
    size_t njobs, capjobs;
};

/* The stage with id, or where it would go (*found 0). */
static size_t sev_stage_at(const struct sev *s, json_int_t id, int *found)
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

static struct sev_stage *sev_stage(struct sev *s, const json_t *id)
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

static void sev_job_start(struct sev *s, const json_t *e)
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
        s->st[at] = (struct sev_stage){ .id = id, .job = s->njobs, .tasks = num(si, "Number of Tasks") };
        s->nst++;
    }
    j->name = xstrdup(name);
    j->status = xstrdup("RUNNING");
    s->njobs++;
}

static struct sev_job *sev_job(struct sev *s, const json_t *id)
{
    if (!json_is_integer(id)) return NULL;
    for (size_t i = s->njobs; i-- > 0;)   /* the job ending is usually the last one */
        if (s->jobs[i].id == json_integer_value(id)) return &s->jobs[i];
    return NULL;
}

static void sev_job_end(struct sev *s, const json_t *e)
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

static void sev_stage_event(struct sev *s, const json_t *e, int completed)
{
    const json_t *info = json_object_get(e, "Stage Info");
    struct sev_stage *st = sev_stage(s, json_object_get(info, "Stage ID"));
    if (!st) return;
    st->submitted = 1;
    if (!completed || st->completed || json_object_get(info, "Failure Reason")) return;
    st->completed = 1;
    s->jobs[st->job].stages_done++;
}

static void sev_task_end(struct sev *s, const json_t *e)
{
    struct sev_stage *st = sev_stage(s, json_object_get(e, "Stage ID"));
    if (!st) return;
    const char *why = json_string_value(json_object_get(json_object_get(e, "Task End Reason"), "Reason"));
    if (!why || !strcmp(why, "TaskKilled")) return;
    if (!strcmp(why, "Success")) s->jobs[st->job].done++;
    else s->jobs[st->job].failed++;
}

/* The events we read; a line starting with another is not parsed at all
 * (the environment and SQL plans are most of a log's bytes). */
static const char *const sev_events[] = { "ApplicationStart", "JobStart", "JobEnd", "StageSubmitted",
                                          "StageCompleted", "TaskEnd" };

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

json_t *seventlog_jobs(FILE *f, char **app_id)
{
    struct sev s = { 0 };
    if (app_id) *app_id = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (!sev_wanted(line)) continue;
        json_t *e = json_loadb(line, (size_t)n, JSON_DISABLE_EOF_CHECK, NULL);
        const char *ev = json_string_value(json_object_get(e, "Event"));
        if (!ev || strncmp(ev, "SparkListener", 13)) {
            json_decref(e);
            continue;
        }
        ev += 13;
        if (!strcmp(ev, "ApplicationStart")) {
            const char *id = json_string_value(json_object_get(e, "App ID"));
            if (id && app_id && !*app_id) *app_id = xstrdup(id);
        } else if (!strcmp(ev, "JobStart")) {
            sev_job_start(&s, e);
        } else if (!strcmp(ev, "JobEnd")) {
            sev_job_end(&s, e);
        } else if (!strcmp(ev, "StageSubmitted")) {
            sev_stage_event(&s, e, 0);
        } else if (!strcmp(ev, "StageCompleted")) {
            sev_stage_event(&s, e, 1);
        } else if (!strcmp(ev, "TaskEnd")) {
            sev_task_end(&s, e);
        }
        json_decref(e);
    }
    free(line);
    json_t *out = json_array();
    for (size_t i = s.njobs; i-- > 0;) {
        struct sev_job *j = &s.jobs[i];
        /* Killed mid-job: Spark's history server would call it running. */
        const char *status = strcmp(j->status, "RUNNING") ? j->status : "UNKNOWN";
        json_array_append_new(out, json_pack("{s:I, s:s, s:s, s:O, s:I, s:I, s:i, s:I, s:I, s:I}", "jobId",
                                             j->id, "name", j->name, "status", status, "stageIds",
                                             j->stage_ids, "numTasks", j->tasks, "numCompletedTasks", j->done,
                                             "numActiveTasks", 0, "numFailedTasks", j->failed,
                                             "numSkippedTasks", j->skipped, "numCompletedStages",
                                             j->stages_done));
        free(j->name);
        free(j->status);
        json_decref(j->stage_ids);
    }
    free(s.jobs);
    free(s.st);
    return out;
}

char *seventlog_find(const char *dir, const char *app_id)
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
