# JupyterHub 6 as the anchor of bench/hub/: the hub, the configurable-http-proxy it
# starts itself, and LocalProcessSpawner starting the same jupyterhub-singleuser nbhub
# starts.  Everything it writes is under BENCH_HUB_DIR; everything listens on 127.0.0.1.
#
#   BENCH_HUB_DIR=/tmp/x BENCH_HUB_PORT=8000 BENCH_HUB_API_PORT=8081 \
#   BENCH_PROXY_API_PORT=8001 BENCH_HUB_TOKEN=$(openssl rand -hex 32) \
#   .venv/bin/jupyterhub -f bench/hub/jupyterhub_config.py
#
# Why these choices (the benchmark runs as root, on a machine with no Unix account per
# user):
# - SimpleLocalProcessSpawner ("simple") is LocalProcessSpawner without the setuid to the
#   user's account and with HOME = home_dir_template: the same Popen of
#   jupyterhub-singleuser, the same environment, the same polling; only the account
#   switch (a setuid in preexec_fn, microseconds) is left out.
# - jupyterhub-singleuser refuses to run as root without --allow-root (jupyter-server's
#   check), hence Spawner.args.
# - The bench drives the hub through its REST API with one service token that has the
#   admin role (create users, start/stop servers, make each user's API token); the
#   DummyAuthenticator with allow_all only lets users exist; nobody logs in.
# - The proxy is JupyterHub's default, ConfigurableHTTPProxy, started by the hub from
#   bench/node_modules (npm configurable-http-proxy, pinned in bench/package.json).
import os
import sys

c = get_config()  # noqa: F821  (injected by JupyterHub's config loader)

d = os.environ["BENCH_HUB_DIR"]
venv_bin = os.environ.get("BENCH_VENV_BIN", os.path.dirname(sys.executable))
bench = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["BENCH_HUB_PORT"])             # the proxy's public port
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ['BENCH_HUB_API_PORT']}"
c.JupyterHub.db_url = f"sqlite:///{d}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{d}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{d}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True       # stop the singleusers when the hub stops
c.JupyterHub.cleanup_proxy = True

c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['BENCH_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [
    os.environ.get("BENCH_CHP", f"{bench}/node_modules/.bin/configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = f"{d}/proxy.pid"
c.ConfigurableHTTPProxy.should_start = True

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{d}/home/{{username}}"
c.Spawner.cmd = [f"{venv_bin}/jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    # the venv's kernel (ipykernel) and tools first, as in an activated venv
    "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
    "VIRTUAL_ENV": os.path.dirname(venv_bin),
}
# bench_singleuser_tail.py --gc-trace: its variables for the singleusers only (JSON)
if os.environ.get("BENCH_SINGLEUSER_ENV"):
    import json
    c.Spawner.environment.update(json.loads(os.environ["BENCH_SINGLEUSER_ENV"]))
c.Spawner.start_timeout = 120             # 20 servers start at once on 2 cores in the memory part
c.Spawner.http_timeout = 120
c.Spawner.poll_interval = 30
c.JupyterHub.concurrent_spawn_limit = 0   # no limit: the memory part starts 20 at once
c.JupyterHub.active_server_limit = 0

c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_HUB_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["bench"]}]

# the hub's own log: the timestamps the start breakdown is read from
c.JupyterHub.log_level = "INFO"
c.Application.log_datefmt = "%Y-%m-%d %H:%M:%S"
