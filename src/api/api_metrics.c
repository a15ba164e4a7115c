/*
 * api_metrics — what operators and monitoring read: /metrics (Prometheus
 * text exposition format 0.0.4), /healthz, /api/v1/info.
 *
 * /metrics is assembled on each scrape from two cheap sources: the store's
 * per-state row counts (store_counts: index-only scans, one read snapshot,
 * so the numbers agree with each other) and the scheduler's in-memory
 * counters (sched_get_stats).  Nothing is accumulated here, so there is no
 * registry to keep in sync and a restart resets exactly the counters that
 * are documented as "since start".  Every family gets # HELP and # TYPE,
 * every state gets a line even at 0 (a series that appears and disappears
 * breaks rate() and alerting on absence).
 *
 * /healthz answers without touching the store or authentication: a load
 * balancer or systemd watchdog must get an answer even when SQLite is
 * locked for seconds, and it must see 503 as soon as shutdown starts so it
 * stops sending traffic before the listener closes.
 */
#include "api/api_int.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <string.h>

void api_metrics_healthz(http_req_t *req, void *ud)
{
    api_t *a = ud;
    http_set_header(req, "Cache-Control", "no-store");
    if (a->stopping) http_respond_json(req, 503, json_pack("{s:s}", "status", "stopping"));
    else http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* A label value with \, " and newline escaped, as the format requires. */
static void api_metrics_label(buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') buf_puts(b, "\\\\");
        else if (*v == '"') buf_puts(b, "\\\"");
        else if (*v == '\n') buf_puts(b, "\\n");
        else buf_putc(b, *v);
    }
}

static void api_metrics_head(buf_t *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void api_metrics_gauge(buf_t *b, const char *name, const char *help, double v)
{
    api_metrics_head(b, name, "gauge", help);
    buf_printf(b, "%s %.17g\n", name, v);
}

/* Bucket bounds as Prometheus clients print them ("0.1", "5", "1800"). */
static void api_metrics_le(buf_t *b, double v) { buf_printf(b, "%g", v); }

void api_metrics_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_counts_t sc;
    nb_err_t err;
    err_clear(&err);
    int rc = store_counts(a->store, &sc, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    sched_stats_t ss;
    memset(&ss, 0, sizeof ss);
    if (a->sched) sched_get_stats(a->sched, &ss);
    buf_t b = BUF_INIT;

    api_metrics_head(&b, "nbhub_runs", "gauge", "Runs in the store by state.");
    for (int s = 0; s < STORE_RUN_NSTATES; s++)
        buf_printf(&b, "nbhub_runs{state=\"%s\"} %lld\n", store_run_state_name((store_run_state_t)s),
                   (long long)sc.runs[s]);
    api_metrics_head(&b, "nbhub_task_runs", "gauge", "Task runs in the store by state.");
    for (int s = 0; s < STORE_TASK_NSTATES; s++)
        buf_printf(&b, "nbhub_task_runs{state=\"%s\"} %lld\n",
                   store_task_state_name((store_task_state_t)s), (long long)sc.tasks[s]);

    api_metrics_head(&b, "nbhub_task_duration_seconds", "histogram",
                     "Duration of the task runs finished since the daemon started.");
    for (int i = 0; i < 10; i++) {
        buf_puts(&b, "nbhub_task_duration_seconds_bucket{le=\"");
        if (i < 9) api_metrics_le(&b, sched_dur_bounds[i]);
        else buf_puts(&b, "+Inf");
        buf_printf(&b, "\"} %llu\n", (unsigned long long)ss.dur_bucket[i]);
    }
    buf_printf(&b, "nbhub_task_duration_seconds_sum %.17g\n", ss.dur_sum);
    buf_printf(&b, "nbhub_task_duration_seconds_count %llu\n", (unsigned long long)ss.dur_count);

    api_metrics_gauge(&b, "nbhub_queue_depth", "Ready task runs waiting for a free slot.",
                      ss.queued_tasks);
    api_metrics_gauge(&b, "nbhub_running_tasks", "Task run processes alive.", ss.running_tasks);
    api_metrics_head(&b, "nbhub_ticks_fired_total", "counter", "Schedule ticks fired since start.");
    buf_printf(&b, "nbhub_ticks_fired_total %llu\n", (unsigned long long)ss.ticks_fired);
    api_metrics_head(&b, "nbhub_tasks_started_total", "counter", "Task runs started since start.");
    buf_printf(&b, "nbhub_tasks_started_total %llu\n", (unsigned long long)ss.tasks_started);

    api_metrics_head(&b, "nbhub_kernel_pool_ready", "gauge", "Warm kernels ready, by kernel spec.");
    for (size_t i = 0; i < a->npool; i++) {
        buf_puts(&b, "nbhub_kernel_pool_ready{kernel=\"");
        api_metrics_label(&b, a->pool_names[i]);
        buf_printf(&b, "\"} %u\n", a->pool ? pool_ready(a->pool, a->pool_names[i]) : 0u);
    }
    api_metrics_head(&b, "nbhub_kernel_pool_size", "gauge",
                     "Warm kernels configured, by kernel spec.");
    for (size_t i = 0; i < a->npool; i++) {
        buf_puts(&b, "nbhub_kernel_pool_size{kernel=\"");
        api_metrics_label(&b, a->pool_names[i]);
        buf_printf(&b, "\"} %u\n", a->pool_sizes[i]);
    }

    api_metrics_gauge(&b, "nbhub_flows", "Live flows in the store.", (double)sc.flows);
    api_metrics_gauge(&b, "nbhub_flows_paused", "Live flows that are paused.", (double)sc.flows_paused);
    api_metrics_gauge(&b, "nbhub_flow_files_broken", "Flow files that never loaded.",
                      ss.broken_files);
    api_metrics_gauge(&b, "nbhub_webhooks_pending", "Webhook deliveries waiting to be sent.",
                      (double)sc.webhooks_pending);
    api_metrics_gauge(&b, "nbhub_webhooks_failed", "Webhook deliveries given up on.",
                      (double)sc.webhooks_failed);
    api_metrics_gauge(&b, "nbhub_last_event_id", "Id of the newest event in the feed.",
                      (double)sc.last_event_id);
    if (a->srv)
        api_metrics_gauge(&b, "nbhub_http_connections", "Open HTTP connections.",
                          (double)http_server_connections(a->srv));
    size_t n = b.len;
    http_set_header(req, "Cache-Control", "no-store");
    http_respond_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf_detach(&b), n);
}

void api_metrics_info(http_req_t *req, void *ud)
{
    api_t *a = ud;
    sched_stats_t ss;
    memset(&ss, 0, sizeof ss);
    if (a->sched) sched_get_stats(a->sched, &ss);
    json_t *pool = json_object();
    for (size_t i = 0; i < a->npool; i++)
        json_object_set_new(pool, a->pool_names[i],
                            json_pack("{s:i, s:i}", "ready",
                                      a->pool ? (int)pool_ready(a->pool, a->pool_names[i]) : 0,
                                      "size", (int)a->pool_sizes[i]));
    json_t *j = json_object();
    json_object_set_new(j, "version", json_string(a->version));
    json_object_set_new(j, "started_at", api_json_time(a->started_at));
    json_object_set_new(j, "home", json_string(a->home_given));
    json_object_set_new(j, "pool", pool);
    json_object_set_new(j, "running_tasks", json_integer(ss.running_tasks));
    json_object_set_new(j, "queued_tasks", json_integer(ss.queued_tasks));
    http_respond_json(req, 200, j);
}
