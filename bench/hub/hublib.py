"""What bench/hub/'s three benchmarks share: the processes (jupyter-server,
configurable-http-proxy, JupyterHub), the two hubs behind one interface, wrk, and
/proc readings.

The hub side of every benchmark is a `Hub`: JupyterHub 6 + CHP (`JupyterHubAnchor`,
started here from jupyterhub_config.py) or a running `nbhub serve` with a `hub:` config
(`NbhubHub`, given by URL and an admin token).  Both are driven only through
JupyterHub's REST API (/hub/api: users, tokens, servers) and reached only through their
public address (/user/NAME/), so the two halves of each benchmark are the same code;
what differs is which processes make up "the hub" for the memory reading.

Everything listens on 127.0.0.1; every process started here is stopped here (its whole
process group: each is started in a new session)."""

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from benchlib import RESULTS, cpu_model, free_port, log, med, pct, replace_section, wait_until  # noqa: E402,F401  (re-exported)

VENV_BIN = Path(os.environ.get("BENCH_VENV_BIN", REPO / ".venv" / "bin"))
CHP = Path(os.environ.get("BENCH_CHP", BENCH / "node_modules" / ".bin" / "configurable-http-proxy"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def venv_env(**extra):
    """The environment of an activated .venv (its kernel and tools first on PATH)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    for k in ("PYTHONPATH", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
        env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------------------- processes

class Proc:
    """A process started in its own session, its output in a file; stop() ends its group."""

    def __init__(self, argv, logpath, env=None, cwd=None):
        self.logpath = Path(logpath)
        self._log = open(self.logpath, "ab")
        self.p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=self._log,
                                  stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=3000):
        try:
            return self.logpath.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout=20):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:                             # anything left in the group (kernels, children)
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def http_get(port, path, headers=None, timeout=5):
    """(status, body) of one GET on 127.0.0.1:port, or (None, error) when it cannot connect."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        c.close()


def start_jupyter_server(tmp, base_url, token, name="jupyter-server", extra_env=None):
    """The plain `jupyter server` the proxy part puts behind CHP: (Proc, port, root_dir)."""
    root = Path(tmp) / f"{name}-root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    home = Path(tmp) / f"{name}-home"
    home.mkdir(exist_ok=True)
    argv = [VENV_BIN / "jupyter", "server", "--allow-root", "--no-browser", "--ip", "127.0.0.1",
            "--port", str(port), f"--ServerApp.token={token}", f"--ServerApp.base_url={base_url}",
            f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0"]
    p = Proc(argv, Path(tmp) / f"{name}.log", env=venv_env(HOME=home, **(extra_env or {})), cwd=str(root))
    wait_until(lambda: (port in listening_ports(p.pid) and http_get(port, base_url + "api")[0] == 200)
               or (not p.alive() and _died(p)), 60, 0.05, "jupyter server to answer")
    return p, port, root


def _died(p):
    raise RuntimeError(f"process exited {p.p.returncode}:\n{p.tail()}")


class Chp:
    """configurable-http-proxy started by hand (as JupyterHub starts it), routes added
    through its REST API (as JupyterHub adds them)."""

    def __init__(self, tmp, log_level="info"):
        self.port, self.api_port = free_port(), free_port()
        self.token = secrets.token_hex(32)
        argv = [CHP, "--ip", "127.0.0.1", "--port", self.port, "--api-ip", "127.0.0.1",
                "--api-port", self.api_port, "--log-level", log_level]
        self.proc = Proc(argv, Path(tmp) / "chp.log", env=dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token))
        wait_until(lambda: http_get(self.api_port, "/api/routes",
                                    {"Authorization": f"token {self.token}"})[0] == 200
                   or (not self.proc.alive() and _died(self.proc)), 30, 0.05, "CHP's API")

    def add_route(self, prefix, target):
        c = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=10)
        c.request("POST", "/api/routes" + prefix, body=json.dumps({"target": target}),
                  headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 201:
            raise RuntimeError(f"CHP add route: {r.status}")

    def stop(self):
        self.proc.stop()


def make_file(path, mb):
    """A file of `mb` MiB of random bytes (incompressible, written once, then in the page cache)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size != mb << 20:
        with open(path, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(mb):
                f.write(chunk)
    return path


# --------------------------------------------------------------------------- load generators

def wrk(url, headers, conc=32, threads=2, seconds=10, cpus=None):
    """One wrk run: requests/s and latency percentiles (ms), errors and non-2xx counted."""
    argv = ["wrk", f"-c{conc}", f"-t{threads}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout

    def lat(label):
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    def dur(txt):
        m = re.match(r"([\d.]+)(us|ms|s)$", txt)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")
    thr = re.search(r"^[ \t]+Latency[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)", out, re.M)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:\s+(.*)", out)
    total = re.search(r"(\d+) requests in", out)
    return {"rps": float(m.group(1)) if m else float("nan"), "p50_ms": lat("50%"), "p90_ms": lat("90%"),
            "p99_ms": lat("99%"), "requests": int(total.group(1)) if total else 0,
            "avg_ms": dur(thr.group(1)) if thr else float("nan"), "max_ms": dur(thr.group(3)) if thr else float("nan"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errs.group(1) if errs else "",
            "raw": out if not m else ""}


def curl_download(url, headers, expect_bytes):
    """Seconds and MB/s (MiB/s) of one download to /dev/null with curl."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300).stdout.split()
    code, size, secs = int(out[0]), int(out[1]), float(out[2])
    if code != 200 or size != expect_bytes:
        raise RuntimeError(f"download {url}: HTTP {code}, {size} bytes (want {expect_bytes})")
    return secs, size / secs / (1 << 20)


def ws_round_trips(port, base_url, token, n=500, warmup=50, quickack=False):
    """Round trips (ms) of a kernel execute_request("pass") over the kernel
    websocket at 127.0.0.1:port{base_url}, with JupyterLab's subprotocol
    (v1.kernel.websocket.jupyter.org), through tornado's websocket client (what
    jupyter-server ships).  A kernel is started for it and shut down after.
    Two lists: to the first frame back for the request (iopub status busy), and to the
    shell execute_reply.  The second includes a delayed-ACK stall: jupyter-server writes
    each kernel message with its own send() on a socket without TCP_NODELAY, so after
    `busy` the reply waits for the receiver's delayed ACK (40 ms on Linux).  With
    quickack the client sets TCP_NODELAY and, before every read, TCP_QUICKACK, so it adds
    no such stall of its own and only a proxy's upstream socket can (a browser does not
    do this: it sees the stall direct or proxied)."""
    import socket
    import asyncio
    import uuid

    from jupyter_server.services.kernels.connection.base import (deserialize_msg_from_ws_v1,
                                                                  serialize_msg_to_ws_v1)
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    auth = {"Authorization": f"token {token}"}

    def rest(method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request(method, base_url + path, body=body, headers=auth)
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status >= 300:
            raise RuntimeError(f"{method} {base_url}{path}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None

    kernel = rest("POST", "api/kernels", json.dumps({"name": "python3"}))
    session = uuid.uuid4().hex

    def msg(code):
        hdr = {"msg_id": uuid.uuid4().hex, "session": session, "username": "bench", "msg_type":
               "execute_request", "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        return hdr["msg_id"], serialize_msg_to_ws_v1(
            [json.dumps(x).encode() for x in (hdr, {}, {}, content)], "shell")

    async def run():
        url = f"ws://127.0.0.1:{port}{base_url}api/kernels/{kernel['id']}/channels?session_id={session}"
        req = HTTPRequest(url, headers=auth, connect_timeout=60, request_timeout=60)
        ws = await websocket_connect(req, subprotocols=["v1.kernel.websocket.jupyter.org"])
        if ws.selected_subprotocol != "v1.kernel.websocket.jupyter.org":
            raise RuntimeError(f"subprotocol not negotiated: {ws.selected_subprotocol!r}")
        sock = ws.protocol.stream.socket
        if quickack:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first, reply = [], []
        for i in range(warmup + n):
            mid, data = msg("pass")
            t0 = time.perf_counter()
            t1 = None
            await ws.write_message(data, binary=True)
            while True:
                if quickack:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                raw = await ws.read_message()
                if raw is None:
                    raise RuntimeError("websocket closed")
                if isinstance(raw, str):
                    continue
                parts = deserialize_msg_from_ws_v1(raw)
                channel, frames = parts[0], parts[1]
                parent = json.loads(frames[1])
                if parent.get("msg_id") != mid:
                    continue
                if t1 is None:
                    t1 = time.perf_counter()
                if channel == "shell" and json.loads(frames[0])["msg_type"] == "execute_reply":
                    break
            if i >= warmup:
                first.append((t1 - t0) * 1000)
                reply.append((time.perf_counter() - t0) * 1000)
        ws.close()
        return first, reply

    try:
        return asyncio.run(run())
    finally:
        try:
            rest("DELETE", f"api/kernels/{kernel['id']}")
        except Exception as e:  # noqa: BLE001
            log(f"kernel shutdown: {e}")


# --------------------------------------------------------------------------- /proc

def proc_mem(pid):
    """VmRSS, VmHWM and Pss of one process (kB), or None when it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except OSError:
        return None
    return out


def proc_environ(pid):
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(x.split("=", 1) for x in raw.decode(errors="replace").split("\0") if "=" in x)


def proc_cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def listening_ports(pid):
    """TCP ports (IPv4/IPv6) a process has a listening socket on."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return []
    ports = []
    for tab in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(tab).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:          # LISTEN
                ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def pid_listening_on(port):
    for pid in all_pids():
        if port in listening_ports(pid):
            return pid
    return None


def ppid_of(pid):
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(st[st.rindex(")") + 2:].split()[1])


def descendants(root):
    """root and every live process below it."""
    children = {}
    for p in all_pids():
        pp = ppid_of(p)
        if pp is not None:
            children.setdefault(pp, []).append(p)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo.extend(children.get(p, []))
    return out


def hub_side_pids(root):
    """The hub's own processes: root and its descendants, less the notebook servers and
    what they started (every hub gives a server JUPYTERHUB_API_TOKEN, and its kernels
    inherit it).  For JupyterHub: the hub and CHP; for nbhub: nbhub serve and any helper
    of its own."""
    return [p for p in descendants(root) if "JUPYTERHUB_API_TOKEN" not in proc_environ(p)]


def singleuser_pid(root, user, server_name=""):
    """The jupyterhub-singleuser (or other server) process the hub whose process is `root`
    started for user[/server]: among root's descendants (other hubs on the machine may
    have an "alice" too), found by the environment every hub gives it (JUPYTERHUB_USER,
    JUPYTERHUB_SERVER_NAME) and a listening socket."""
    for pid in descendants(root):
        if pid == os.getpid():
            continue
        env = proc_environ(pid)
        if env.get("JUPYTERHUB_USER") == user and env.get("JUPYTERHUB_SERVER_NAME", "") == server_name \
                and "JUPYTERHUB_API_TOKEN" in env and listening_ports(pid):
            cmd = " ".join(proc_cmdline(pid))
            if "idle-culler" not in cmd:
                return pid
    return None


# --------------------------------------------------------------------------- the two hubs

class Hub:
    """A JupyterHub-compatible hub: REST API at {url}/hub/api, servers at {url}/user/NAME/."""
    label = "hub"

    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.token = token

    def api(self, method, path, body=None, token=None, ok=(200, 201, 202, 204)):
        c = http.client.HTTPConnection(self.host, self.port, timeout=180)
        hdrs = {"Authorization": f"token {token or self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        c.request(method, f"{self.prefix}/hub/api{path}", body=data, headers=hdrs)
        r = c.getresponse()
        payload = r.read()
        c.close()
        if ok and r.status not in ok:
            raise RuntimeError(f"{self.label} {method} /hub/api{path}: {r.status} {payload[:400]!r}")
        try:
            return r.status, (json.loads(payload) if payload else None)
        except ValueError:
            return r.status, payload

    def create_user(self, name):
        st, _ = self.api("POST", f"/users/{name}", ok=(201, 409))
        return st

    def user_token(self, name):
        st, tok = self.api("POST", f"/users/{name}/tokens", {"note": "bench", "expires_in": 86400})
        return tok["token"]

    def user_path(self, name):
        return f"{self.prefix}/user/{name}/"

    def start_server(self, name, options=None):
        """POST /users/NAME/server: the HTTP status (201 ready, 202 pending)."""
        st, _ = self.api("POST", f"/users/{name}/server", options or {})
        return st

    def ready(self, name, token):
        """The server answers /user/NAME/api through the hub's proxy (its version JSON)."""
        st, body = http_get(self.port, self.user_path(name) + "api", {"Authorization": f"token {token}"})
        return st == 200 and body.startswith(b"{") and b"version" in body

    def stop_server(self, name, wait=True, timeout=60):
        self.api("DELETE", f"/users/{name}/server")
        if wait:
            def stopped():
                st, u = self.api("GET", f"/users/{name}")
                return not u.get("servers") or "" not in u["servers"]
            wait_until(stopped, timeout, 0.1, f"{name}'s server to stop")

    root_pid = None                     # the hub's process: its servers are below it

    def hub_pids(self):
        """The processes that make up the hub (for its memory), singleuser servers excluded."""
        return hub_side_pids(self.root_pid)

    def server_pid(self, name, server_name=""):
        return singleuser_pid(self.root_pid, name, server_name)

    def stop(self):
        pass


class JupyterHubAnchor(Hub):
    """JupyterHub 6 from .venv with bench/hub/jupyterhub_config.py, in its own temp dir."""
    label = "JupyterHub"

    def __init__(self, tmp, singleuser_env=None):
        """singleuser_env: variables added to its singleusers' environment (Spawner.environment,
        through BENCH_SINGLEUSER_ENV; the hub itself does not get them)."""
        self.dir = Path(tmp) / "jupyterhub"
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        token = secrets.token_hex(32)
        super().__init__(f"http://127.0.0.1:{port}", token)
        env = venv_env(BENCH_HUB_DIR=self.dir, BENCH_HUB_PORT=port, BENCH_HUB_API_PORT=free_port(),
                       BENCH_PROXY_API_PORT=free_port(), BENCH_HUB_TOKEN=token, BENCH_VENV_BIN=VENV_BIN,
                       BENCH_CHP=CHP)
        if singleuser_env:
            env["BENCH_SINGLEUSER_ENV"] = json.dumps(singleuser_env)
        self.proc = Proc([VENV_BIN / "jupyterhub", "-f", HERE / "jupyterhub_config.py"],
                         self.dir / "jupyterhub.log", env=env, cwd=str(self.dir))
        self.root_pid = self.proc.pid
        wait_until(lambda: self._up(), 60, 0.05, "JupyterHub to answer through its proxy")

    def _up(self):
        if not self.proc.alive():
            _died(self.proc)
        # Our CHP must be the one listening: free_port() only says the port was free, and
        # another agent's `nbhub serve --listen 127.0.0.1:0` (which answers /hub/api/ too)
        # can be given it before CHP binds it.
        chp = self.chp_pid()
        if not chp or self.port not in listening_ports(chp):
            return False
        st, _ = http_get(self.port, "/hub/api/", {"Authorization": f"token {self.token}"})
        return st == 200

    def version(self):
        return self.api("GET", "/")[1]["version"]

    def chp_pid(self):
        try:
            return int((self.dir / "proxy.pid").read_text())
        except (OSError, ValueError):
            return None


    def log_text(self):
        return self.proc.tail(10 ** 9)

    def stop(self):
        self.proc.stop(timeout=60)       # cleanup_servers: the hub stops the singleusers first
        pid = self.chp_pid()             # CHP is in the hub's process group; make sure
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class NbhubHub(Hub):
    """A running `nbhub serve` with a `hub:` config, given by its URL and an admin API token
    (accepted as JupyterHub's `Authorization: token ...`)."""
    label = "nbhub"

    def __init__(self, url, token, pid=None):
        super().__init__(url, token)
        self.pid = pid or pid_listening_on(self.port)
        if not self.pid:
            raise RuntimeError(f"no process listens on port {self.port} (pass --nbhub-pid)")
        self.root_pid = self.pid
        st, _ = http_get(self.port, f"{self.prefix}/hub/api/", {"Authorization": f"token {token}"})
        if st != 200:
            raise RuntimeError(f"{url}/hub/api/ answered {st}: is the hub configured?")

    def version(self):
        """What was measured: the binary (its sha256) when launched here, else the URL."""
        p = getattr(self, "binary", None)
        if p:
            import hashlib
            st = os.stat(p)
            return (f"{p}, built {time.strftime('%Y-%m-%d %H:%M', time.localtime(st.st_mtime))}, sha256 "
                    f"{hashlib.sha256(Path(p).read_bytes()).hexdigest()[:12]}")
        return f"serve at {self.host}:{self.port}, pid {self.pid}"

    @classmethod
    def launch(cls, tmp, binary, extra_env=None):
        """Start `binary serve` with bench/hub/nbhub.yaml in a home under tmp (isolation
        shared, as the other benchmarks run it; servers stopped when it stops), log in as
        its admin and make an API token: the running hub the benchmarks then drive.
        extra_env: added to its environment (under isolation: shared its servers inherit
        it, less NBHUB_* variables)."""
        home = Path(tmp) / "nbhub-home"
        flows = home / "flows"
        flows.mkdir(parents=True, exist_ok=True)
        cfg = (HERE / "nbhub.yaml").read_text().replace("{upstream_js}", str(HERE / "upstream.js"))
        (home / "nbhub.yaml").write_text(cfg)
        password = secrets.token_hex(16)
        (Path(tmp) / "nbhub-admin-password").write_text(password + "\n")
        env = venv_env(NBHUB_ADMIN_PASSWORD_FILE=Path(tmp) / "nbhub-admin-password", NBHUB_ISOLATION="shared",
                       **(extra_env or {}))
        for k in ("NBHUB_CONFIG", "NBHUB_HOME", "NBHUB_URL", "NBHUB_TOKEN"):
            env.pop(k, None)
        out = Path(tmp) / "nbhub-serve.out"
        with open(out, "wb") as o:
            p = subprocess.Popen([str(binary), "serve", "--home", str(home), "--flows", str(flows),
                                  "--listen", "127.0.0.1:0", "--stop-servers-on-exit"],
                                 stdin=subprocess.DEVNULL, stdout=o, stderr=open(Path(tmp) / "nbhub-serve.log", "ab"),
                                 env=env, cwd=str(tmp), start_new_session=True)

        def port():
            m = re.search(r"\(port (\d+)\)", out.read_text())
            if m:
                return int(m.group(1))
            if p.poll() is not None:
                raise RuntimeError(f"nbhub serve exited {p.returncode}: "
                                   f"{(Path(tmp) / 'nbhub-serve.log').read_text(errors='replace')[-3000:]}")
            return None
        port = wait_until(port, 60, 0.02, "nbhub serve to listen")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/api/v1/login", body=json.dumps({"username": "admin", "password": password}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"nbhub login: {r.status} {body[:300]!r}")
        cookie = r.getheader("set-cookie").split(";")[0]
        c.request("POST", "/api/v1/users/admin/tokens", body=json.dumps({"name": "bench-hub"}),
                  headers={"Content-Type": "application/json", "Cookie": cookie,
                           "X-CSRF-Token": json.loads(body)["csrf_token"]})
        r = c.getresponse()
        tok = json.loads(r.read())
        c.close()
        hub = cls(f"http://127.0.0.1:{port}", tok["token"], p.pid)
        hub.launched = p
        hub.binary = str(binary)
        return hub

    def stop(self):
        p = getattr(self, "launched", None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)        # --stop-servers-on-exit: it stops the servers
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)



def add_nbhub_args(ap):
    """The options every hub benchmark takes for nbhub's half."""
    ap.add_argument("--nbhub-bin", help="an nbhub binary with the hub: the script starts `nbhub serve` with "
                    "bench/hub/nbhub.yaml itself (and stops it)")
    ap.add_argument("--nbhub", help="or: the URL of a running nbhub serve with a hub: config (its listen address)")
    ap.add_argument("--nbhub-token", help="with --nbhub: an admin API token of it")
    ap.add_argument("--nbhub-pid", type=int, help="with --nbhub: its pid (default: the process listening on the URL's port)")
    ap.add_argument("--no-anchor", action="store_true", help="measure only nbhub")


def check_nbhub_args(ap, args):
    if args.nbhub and not args.nbhub_token:
        ap.error("--nbhub needs --nbhub-token")
    if args.nbhub_bin and not Path(args.nbhub_bin).exists():
        ap.error(f"{args.nbhub_bin} does not exist: run make first")
    return bool(args.nbhub or args.nbhub_bin)


def open_nbhub(args, tmp):
    if args.nbhub_bin:
        return NbhubHub.launch(tmp, Path(args.nbhub_bin).resolve())
    return NbhubHub(args.nbhub, args.nbhub_token, args.nbhub_pid)


def sum_mem(pids):
    tot = {"VmRSS": 0, "Pss": 0, "VmHWM": 0}
    for p in pids:
        m = proc_mem(p) or {}
        for k in tot:
            tot[k] += m.get(k, 0)
    return tot


def machine_line(load_before=None):
    """The machine, and its 1-minute load average before and after the run: the machine
    is shared (other builds and tests run beside the benchmark), and these numbers move
    with it."""
    import platform
    load = os.getloadavg()
    before = f"{load_before[0]:.1f} before, " if load_before else ""
    return (f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
            f"Linux {platform.release()}, Python {platform.python_version()}; 1-minute load average "
            f"{before}{load[0]:.1f} after (the machine is shared with other agents' builds and tests).")


def report(res, args, render, write):
    """The end of every hub benchmark: print its table, keep the raw results
    (--json), and replace its section of RESULTS.md (--write)."""
    table = render(res, args)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.write:
        write(table, res, args)
    return 0
