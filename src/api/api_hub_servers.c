/*
 * api_hub_servers — the hub layer's servers as JupyterHub's API shows them
 * (the user model's "servers", start, stop, progress, activity).
 *
 * Until the hub layer (src/hub/) is in, nbhub has no servers: every user
 * has none, starting one answers 503.
 */
#include "api/api_int.h"

#include <errno.h>
#include <string.h>

json_t *api_hub_servers_json(api_t *a, const api_ctx_t *c, int64_t uid, const char *user,
                             int include_stopped)
{
    (void)a, (void)c, (void)uid, (void)user, (void)include_stopped;
    return json_object();
}

int api_hub_user_active(api_t *a, int64_t uid, int ready)
{
    (void)a, (void)uid, (void)ready;
    return 0;
}

void api_hub_default_server(api_t *a, int64_t uid, const char **url, const char **pending)
{
    (void)a, (void)uid;
    *url = *pending = NULL;
}

int64_t api_hub_last_activity(api_t *a, int64_t uid)
{
    (void)a, (void)uid;
    return 0;
}

int api_hub_server_exists(api_t *a, const char *user, const char *server)
{
    (void)a, (void)user, (void)server;
    return 0;
}

void api_hub_server_activity(api_t *a, const char *user, const char *server, int64_t ts_us)
{
    (void)a, (void)user, (void)server, (void)ts_us;
}

void api_hub_user_stop_all(api_t *a, int64_t uid) { (void)a, (void)uid; }

int api_hub_server_ident(api_t *a, const char *user, const char *server, int64_t *server_id,
                         int64_t *owner_id)
{
    (void)a, (void)user, (void)server, (void)server_id, (void)owner_id;
    return -ENOENT;
}

void api_hub_server_get(http_req_t *req, void *ud)
{
    (void)ud;
    api_hub_error(req, 404, "Not Found");
}

void api_hub_server_start(http_req_t *req, void *ud)
{
    (void)ud;
    api_hub_error(req, 503, "this nbhub starts no notebook servers");
}

void api_hub_server_stop(http_req_t *req, void *ud)
{
    (void)ud;
    api_hub_error(req, 404, "Not Found");
}

void api_hub_server_progress(http_req_t *req, void *ud)
{
    (void)ud;
    api_hub_error(req, 404, "Not Found");
}
