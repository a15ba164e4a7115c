"""The Livy API (docs/livy.md, issue 19) with the clients that speak it, against
one nbhub serve for the whole module and real Spark (pyspark's distribution,
Java 17):

  - batches submitted with plain HTTP exactly as Airflow's LivyOperator /
    LivyHook does (POST /batches, GET /batches/{id}/state polling, the paged
    GET /batches/{id}/log of dump_batch_logs, DELETE on kill), over HTTP Basic
    and over an nbhub token, at /livy/ and at / on the livy_listen listener;
  - a batch survives restarts of nbhub serve (SIGTERM and kill -9) and a
    delete kills its whole process tree (no JVM left);
  - who may do what: Basic with the login's lockout, other users' batches
    are invisible, proxyUser only for admins, X-Requested-By with
    livy.csrf, files outside the workspace refused under isolation: shared,
    a changed password ends a remembered Basic pair;
  - sparkmagic 0.23 from PyPI, unmodified (.venv-sparkmagic, made by
    scripts/install-deps.sh), run headlessly through nbclient: its PySpark
    kernel (a session starts, spark.range computes, an error cell shows its
    traceback, %%sql returns rows, %%info lists the session, the kernel's
    shutdown deletes the session and leaves no JVM; nbhub serve restarted
    between two cells and the next cell works) and the %%spark magic in a
    python3 kernel.  Its kernels are registered in a JUPYTER_PATH of the
    test's own, never globally.
"""
import base64
import http.client
import json
import os
import socket
import time

import subprocess
from pathlib import Path

import pytest
import requests

from conftest import REPO, Harness, code, make_nb, md
from nbserve import ADMIN_PASSWORD, Server

pytest.importorskip("pyspark")

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1", "carol": "carol-password-1",
             "dave": "dave-password-1"}

JOB = """import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("STARTED", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
print("RESULT", spark.range(int(sys.argv[2]) if len(sys.argv) > 2 else 100).selectExpr("sum(id) AS s").collect()[0].s, flush=True)
spark.stop()
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LivyHookLike:
    """What apache-airflow-providers-apache-livy's LivyHook sends (HttpHook
    underneath: requests, Content-Type and Accept JSON, the connection's
    auth, extra_headers on every call; GET data goes in the query string)."""

    def __init__(self, base_url, auth=None, headers=None):
        self.base = base_url
        self.s = requests.Session()
        self.s.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        self.s.headers.update(headers or {})
        if isinstance(auth, tuple):
            self.s.auth = auth
        elif auth:
            self.s.headers["Authorization"] = f"Bearer {auth}"

    def run(self, method, endpoint, data=None):
        url = self.base + endpoint
        if method == "GET":
            return self.s.get(url, params=data, timeout=30)
        return self.s.request(method, url, data=data, timeout=30)

    def post_batch(self, **body):
        r = self.run("POST", "/batches", json.dumps(body))
        r.raise_for_status()
        return r.json()["id"]

    def get_batch_state(self, bid):
        r = self.run("GET", f"/batches/{bid}/state")
        r.raise_for_status()
        return r.json()["state"]

    def get_batch(self, bid):
        r = self.run("GET", f"/batches/{bid}")
        r.raise_for_status()
        return r.json()

    def dump_batch_logs(self, bid):
        lines, start, total = [], 0, 0
        while start <= total:
            r = self.run("GET", f"/batches/{bid}/log", {"from": start, "size": 100})
            r.raise_for_status()
            total = r.json()["total"]
            start += 100
            lines += r.json()["log"]
        return lines

    def delete_batch(self, bid):
        r = self.run("DELETE", f"/batches/{bid}")
        r.raise_for_status()
        return r.json()

    def poll_for_termination(self, bid, interval=1.0, timeout=240):
        """LivyOperator.poll_for_termination: state until a terminal one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get_batch_state(bid)
            if state in ("success", "dead", "killed", "error"):
                return state
            time.sleep(interval)
        raise AssertionError(f"batch {bid} still {state} after {timeout}s")


class Livy:
    def __init__(self, h, srv, livy_port):
        self.h, self.srv, self.livy_port = h, srv, livy_port
        self.tokens = {}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.srv.port}/livy"

    @property
    def root_url(self):
        return f"http://127.0.0.1:{self.livy_port}"

    def hook(self, user, token=False, root=False, csrf=True):
        auth = self.tokens[user] if token else (user, PASSWORDS[user])
        return LivyHookLike(self.root_url if root else self.url, auth,
                            {"X-Requested-By": "airflow"} if csrf else None)

    def workspace(self, user):
        d = self.srv.home / "workspaces" / user
        d.mkdir(parents=True, exist_ok=True)
        return d

    def wait_state(self, hook, bid, states, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = hook.get_batch_state(bid)
            if st in states:
                return st
            time.sleep(0.5)
        raise AssertionError(f"batch {bid} still {st}:\n{self.srv.log()}")


def java_of(path):
    """Pids of JVMs whose command line names path (a batch's application)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and b"java" in cmd[0] and any(str(path).encode() in a for a in cmd):
            out.append(int(pid))
    return out


def basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def raw(port, method, path, headers=None, body=None, source=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                   source_address=(source, 0) if source else None)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdr = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        return r.status, json.loads(data) if data else None, hdr
    except ValueError:
        return r.status, data.decode(errors="replace"), hdr


@pytest.fixture(scope="module")
def livy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("livy")
    h = Harness(tmp)
    port, main_port = free_port(), free_port()
    cfg = tmp / "nbhub.yaml"
    cfg.write_text(f"livy_listen: 127.0.0.1:{port}\n"
                   "livy:\n"
                   "  csrf: true\n"
                   "  master: 'local[2]'\n"
                   "  conf: {spark.sql.shuffle.partitions: '2', spark.driver.memory: 512m, spark.ui.enabled: 'false'}\n")
    # a second listener on a fixed port: clients keep their URL across restarts
    srv = Server(h, args=["--config", cfg, "--listen", f"127.0.0.1:{main_port}"]).start()
    lv = Livy(h, srv, port)
    lv.main_port = main_port
    for name, pw in PASSWORDS.items():
        st, body = srv.api.post("/api/v1/users", {"name": name, "password": pw})
        assert st == 201, (st, body)
        st, tok = srv.api.post(f"/api/v1/users/{name}/tokens", {"name": "livy"})
        assert st == 201, (st, tok)
        lv.tokens[name] = tok["token"]
        (lv.workspace(name) / "job.py").write_text(JOB)
    yield lv
    # Sessions and batches outlive nbhub serve by design: end them first.
    st, lst = srv.api.get("/livy/sessions?size=1000")
    for x in (lst or {}).get("sessions", []):
        srv.api.delete(f"/livy/sessions/{x['id']}", headers={"X-Requested-By": "t"})
    srv.stop()
    left = h.cleanup(grace=30)
    assert not left, left


def test_batch_as_airflow_livy_operator(livy):
    hook = livy.hook("alice")
    bid = hook.post_batch(file="~/job.py", args=["0", "1000"], name="airflow-1",
                          conf={"spark.ui.enabled": "false"}, driverMemory="512m")
    assert hook.poll_for_termination(bid) == "success", livy.srv.log()
    logs = hook.dump_batch_logs(bid)
    assert "RESULT 499500" in logs, logs[-30:]
    b = hook.get_batch(bid)
    assert b["id"] == bid and b["name"] == "airflow-1" and b["owner"] == "alice" and b["proxyUser"] is None
    assert b["state"] == "success" and b["appId"].startswith("local-"), b
    assert set(b["appInfo"]) == {"driverLogUrl", "sparkUiUrl"} and isinstance(b["log"], list)
    # the list is Livy's {from, total, sessions}
    r = hook.run("GET", "/batches")
    assert r.status_code == 200 and r.json()["from"] == 0
    assert [s["id"] for s in r.json()["sessions"]] == [bid]


def test_batch_with_a_token_on_livy_listen(livy):
    hook = livy.hook("bob", token=True, root=True)
    bid = hook.post_batch(file="job.py", args=["0", "10"])
    assert hook.poll_for_termination(bid) == "success", livy.srv.log()
    assert "RESULT 45" in hook.dump_batch_logs(bid)
    # the listener serves the Livy API only
    st, _, _ = raw(livy.livy_port, "GET", "/api/v1/me", {"Authorization": f"Bearer {livy.tokens['bob']}"})
    assert st == 404
    # and /livy/ on the main listener sees the same batch
    assert livy.hook("bob").get_batch(bid)["state"] == "success"


def test_batch_delete_kills_the_process_tree(livy):
    ws = livy.workspace("alice")
    (ws / "slow_delete.py").write_text(JOB)
    hook = livy.hook("alice")
    bid = hook.post_batch(file="~/slow_delete.py", args=["600"])
    assert livy.wait_state(hook, bid, ("running",)) == "running"
    deadline = time.monotonic() + 60
    while not java_of(ws / "slow_delete.py") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert java_of(ws / "slow_delete.py"), "the driver JVM never showed"
    assert hook.delete_batch(bid) == {"msg": "deleted"}
    assert livy.wait_state(hook, bid, ("killed",), timeout=30) == "killed"
    deadline = time.monotonic() + 10
    while java_of(ws / "slow_delete.py") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not java_of(ws / "slow_delete.py"), "a JVM of the deleted batch is still running"
    assert "RESULT" not in "\n".join(hook.dump_batch_logs(bid))


def test_batch_survives_restarts_of_nbhub_serve(livy):
    ws = livy.workspace("alice")
    (ws / "slow_restart.py").write_text(JOB)
    hook = livy.hook("alice")
    bid = hook.post_batch(file="~/slow_restart.py", args=["25"])
    assert livy.wait_state(hook, bid, ("running",)) == "running"
    jvm = java_of(ws / "slow_restart.py")
    assert jvm
    livy.srv.stop()                      # SIGTERM: a clean stop leaves it running
    assert java_of(ws / "slow_restart.py") == jvm
    livy.srv.start()                     # (on a new port)
    hook = livy.hook("alice")
    assert hook.get_batch_state(bid) == "running"
    livy.srv.kill9()                     # and so does a crash
    assert java_of(ws / "slow_restart.py") == jvm
    livy.srv.start()
    hook = livy.hook("alice")
    assert "livy batch adopted" in livy.srv.log()
    assert hook.poll_for_termination(bid) == "success", livy.srv.log()
    assert "RESULT 4950" in hook.dump_batch_logs(bid)


def test_batches_of_others_are_invisible(livy):
    alice, bob = livy.hook("alice"), livy.hook("bob")
    bid = alice.post_batch(file="~/job.py", args=["0", "5"])
    for method, path in (("GET", f"/batches/{bid}"), ("GET", f"/batches/{bid}/state"),
                         ("GET", f"/batches/{bid}/log"), ("DELETE", f"/batches/{bid}")):
        r = bob.run(method, path)
        assert r.status_code == 404 and r.json() == {"msg": f"Batch '{bid}' not found."}, (method, path, r.text)
    assert bid not in [s["id"] for s in bob.run("GET", "/batches").json()["sessions"]]
    # an admin sees it
    st, b, _ = raw(livy.srv.port, "GET", f"/livy/batches/{bid}", {"Authorization": f"Bearer {livy.srv.api.token}"})
    assert st == 200 and b["owner"] == "alice"
    assert alice.poll_for_termination(bid) == "success"


def test_proxy_user_is_for_admins_only(livy):
    r = livy.hook("bob").run("POST", "/batches", json.dumps({"file": "~/job.py", "proxyUser": "alice"}))
    assert r.status_code == 403 and "not allowed to impersonate" in r.json()["msg"], r.text
    admin = LivyHookLike(livy.url, ("admin", ADMIN_PASSWORD), {"X-Requested-By": "x"})
    bid = admin.post_batch(file="~/job.py", args=["0", "3"], proxyUser="alice")
    b = admin.get_batch(bid)
    assert b["owner"] == "admin" and b["proxyUser"] == "alice"
    assert admin.poll_for_termination(bid) == "success"
    assert "RESULT 3" in admin.dump_batch_logs(bid)   # alice's ~/job.py: run as alice


def test_auth_basic_token_and_csrf(livy):
    port = livy.srv.port
    body = {"file": "~/job.py"}
    st, b, hdr = raw(port, "GET", "/livy/batches")
    assert st == 401 and "msg" in b and hdr["www-authenticate"].startswith("Basic")
    st, b, _ = raw(port, "GET", "/livy/batches", {"Authorization": basic("alice", "wrong")})
    assert st == 401, b
    st, b, _ = raw(port, "GET", "/livy/batches", {"Authorization": "Basic !!!"})
    assert st == 401, b
    st, b, _ = raw(port, "GET", "/livy/batches", {"Authorization": "Bearer nbh_not_a_token"})
    assert st == 401, b
    # livy.csrf: POST and DELETE need X-Requested-By, as Livy's CSRF filter says
    st, b, _ = raw(port, "POST", "/livy/batches", {"Authorization": basic("carol", PASSWORDS["carol"]),
                                                   "Content-Type": "application/json"}, body)
    assert st == 400 and b == {"msg": "Missing Required Header for CSRF protection."}
    st, b, _ = raw(livy.livy_port, "DELETE", "/batches/1", {"Authorization": f"Bearer {livy.tokens['carol']}"})
    assert st == 400 and b == {"msg": "Missing Required Header for CSRF protection."}
    # unknown members are refused, as Livy's Jackson does
    st, b, _ = raw(port, "POST", "/livy/batches", {"Authorization": f"Bearer {livy.tokens['carol']}",
                                                   "X-Requested-By": "t"}, {"file": "x.py", "exectorMemory": "1g"})
    assert st == 400 and "exectorMemory" in b["msg"]


def test_basic_guessing_is_locked_out(livy):
    # the login's lockout (auth/lockout.h): five free failures per name and address
    src = "127.0.0.77"
    for _ in range(5):
        st, _, _ = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": basic("carol", "guess")}, source=src)
        assert st == 401
    st, _, hdr = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": basic("carol", PASSWORDS["carol"])},
                     source=src)
    assert st == 429 and int(hdr["retry-after"]) > 0
    # another address is not locked out
    st, _, _ = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": basic("carol", PASSWORDS["carol"])},
                   source="127.0.0.78")
    assert st == 200


def test_changed_password_ends_a_remembered_basic_pair(livy):
    old = basic("dave", PASSWORDS["dave"])
    st, _, _ = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": old})
    assert st == 200
    st, _, _ = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": old})
    assert st == 200                     # remembered: no second argon2 check
    st, b = livy.srv.api.request("PUT", "/api/v1/users/dave/password", {"password": "dave-new-password-2"})
    assert st == 204, b
    st, _, _ = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": old})
    assert st == 401
    st, _, _ = raw(livy.srv.port, "GET", "/livy/batches", {"Authorization": basic("dave", "dave-new-password-2")})
    assert st == 200


@pytest.mark.parametrize("member,value", [
    ("file", "/etc/passwd"),                 # outside the workspace (isolation: shared, not trusted)
    ("file", "~/../alice/job.py"),           # climbs out of it
    ("file", "--conf"),                      # would be read as an option
    ("pyFiles", ["/etc/hostname"]),
    ("jars", ["~/a.jar,/etc/passwd"]),       # spark-submit splits on commas
])
def test_files_outside_the_workspace_are_refused(livy, member, value):
    body = {"file": "~/job.py", member: value}
    r = livy.hook("bob").run("POST", "/batches", json.dumps(body))
    assert r.status_code == 400 and r.json()["msg"], r.text


# ---- sparkmagic ----------------------------------------------------------------------------

SM_VENV = REPO / ".venv-sparkmagic"
SM_PY = SM_VENV / "bin" / "python"
RUNNER = Path(__file__).with_name("sparkmagic_runner.py")


def session_jvms(livy, sid):
    """JVMs of Livy session sid of this module's nbhub (its app name is on their
    command line; they work in the session's directory under our home: other
    tests on the machine have sessions with the same ids)."""
    out = []
    home = str(livy.srv.home)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            cwd = os.readlink(f"/proc/{d}/cwd")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"java") and f"spark.app.name=livy-session-{sid}".encode() in b" ".join(cmd) \
                and cwd.startswith(home):
            out.append(int(d))
    return out


class Notebook:
    """A notebook run a cell at a time by sparkmagic_runner.py in .venv-sparkmagic."""

    def __init__(self, livy, tmp, kernel, cells, user="alice"):
        jp = tmp / "jupyter"
        kdir = jp / "kernels"
        # sparkmagic's PySpark kernel, and a python3 kernel for the %%spark magic,
        # both on .venv-sparkmagic's Python: registered for this test only
        for name, argv, lang in (
                ("pysparkkernel", [str(SM_PY), "-m", "sparkmagic.kernels.pysparkkernel.pysparkkernel",
                                   "-f", "{connection_file}"], "python"),
                ("python3", [str(SM_PY), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "python")):
            (kdir / name).mkdir(parents=True, exist_ok=True)
            (kdir / name / "kernel.json").write_text(json.dumps(
                {"argv": argv, "display_name": name, "language": lang}))
        conf = tmp / "sparkmagic"
        conf.mkdir(exist_ok=True)
        # ~/.sparkmagic/config.json as docs/livy.md shows it
        (conf / "config.json").write_text(json.dumps({
            "kernel_python_credentials": {"username": user, "password": PASSWORDS[user],
                                          "url": f"http://127.0.0.1:{livy.main_port}/livy",
                                          "auth": "Basic_Access"},
            "livy_session_startup_timeout_seconds": 240,
            "wait_for_idle_timeout_seconds": 60,
            "use_auto_viz": False,
            "session_configs": {"driverMemory": "512m"},
            # livy.csrf is on: sparkmagic sends X-Requested-By only when told
            "custom_headers": {"X-Requested-By": "sparkmagic"},
        }))
        (tmp / "home").mkdir(exist_ok=True)
        self.env = dict(livy.h.env)
        for k in ("VIRTUAL_ENV", "PYTHONPATH"):
            self.env.pop(k, None)
        self.env.update({"JUPYTER_PATH": str(jp), "JUPYTER_DATA_DIR": str(tmp / "jdata"),
                         "JUPYTER_CONFIG_DIR": str(tmp / "jconfig"), "HOME": str(tmp / "home"),
                         "IPYTHONDIR": str(tmp / "home" / ".ipython"),
                         "SPARKMAGIC_CONF_DIR": str(conf),
                         "PATH": f"{SM_VENV / 'bin'}:{self.env['PATH']}"})
        path = tmp / f"{kernel}.ipynb"
        path.write_text(json.dumps(make_nb(*cells, kernel=kernel)))
        self.p = subprocess.Popen([str(SM_PY), str(RUNNER), str(path), kernel], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=open(tmp / f"{kernel}.stderr", "wb"),
                                  env=self.env, text=True, cwd=tmp)
        livy.h.procs.append(self.p)
        self.stderr = tmp / f"{kernel}.stderr"
        assert self._line() == {"ready": True}

    def _line(self):
        line = self.p.stdout.readline()
        assert line, f"the runner ended:\n{self.stderr.read_text()[-4000:]}"
        return json.loads(line)

    def run(self, i):
        self.p.stdin.write(f"run {i}\n")
        self.p.stdin.flush()
        r = self._line()
        assert r["cell"] == i
        return r["outputs"]

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        assert self._line() == {"done": True}
        self.p.wait(timeout=60)


def text_of(outputs):
    """Everything a person would read in a cell's outputs."""
    parts = []
    for o in outputs:
        if o["output_type"] == "stream":
            parts.append(o["text"])
        elif o["output_type"] == "error":
            parts += [o["ename"], o["evalue"], *o["traceback"]]
        else:
            for mime in ("text/plain", "text/html"):
                if mime in o.get("data", {}):
                    parts.append(o["data"][mime])
    return "\n".join(parts)


def live_sessions(livy):
    st, lst = livy.srv.api.get("/livy/sessions?size=1000")
    assert st == 200, lst
    return [x for x in lst["sessions"] if x["state"] not in ("dead", "killed", "success", "error")]


needs_sparkmagic = pytest.mark.skipif(not SM_PY.exists(), reason=".venv-sparkmagic is missing (make deps)")


@needs_sparkmagic
def test_sparkmagic_pyspark_kernel(livy, tmp_path):
    nb = Notebook(livy, tmp_path, "pysparkkernel", [
        # PySpark 4 warns on stderr at DataFrame.toJSON, which %%sql calls; Livy
        # (and so nbhub) return stderr in text/plain with stdout, and
        # sparkmagic 0.23 cannot parse the rows then: what its users on Spark 4
        # do against Livy too (docs/livy.md)
        code("import warnings\n"
             "warnings.filterwarnings('ignore', message='The return type of DataFrame.toJSON')\n"
             "print(spark.range(1000).selectExpr('sum(id) AS s').collect()[0].s)"),
        code("1/0"),
        code("%%sql -q -o rows\nSELECT id, id * 2 AS twice FROM range(3)"),
        code("%%local\nprint(rows.to_dict('list'))"),
        code("%%info"),
        code("print(spark.range(7).count())"),
    ])
    out = text_of(nb.run(0))
    assert "499500" in out, out
    sessions = live_sessions(livy)
    assert len(sessions) == 1 and sessions[0]["owner"] == "alice", sessions
    sid = sessions[0]["id"]
    out = text_of(nb.run(1))
    assert "ZeroDivisionError" in out and "Traceback" in out, out
    out = text_of(nb.run(2))
    assert "Error" not in out, out
    out = text_of(nb.run(3))
    assert "'twice': [0, 2, 4]" in out, out
    out = text_of(nb.run(4))
    assert str(sid) in out and "Current session" in out, out
    # nbhub serve restarted between two cells (SIGTERM; the kernel and its
    # Spark keep running) and the next cell works
    livy.srv.stop()
    livy.srv.start()
    out = text_of(nb.run(5))
    assert "7" in out, out
    assert session_jvms(livy, sid)
    nb.close()                              # shutdown_request: sparkmagic deletes the session
    deadline = time.monotonic() + 30
    while (live_sessions(livy) or session_jvms(livy, sid)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not live_sessions(livy)
    assert not session_jvms(livy, sid), "a JVM of the deleted session is left"


@needs_sparkmagic
def test_sparkmagic_spark_magic_in_python3(livy, tmp_path):
    url = f"http://127.0.0.1:{livy.livy_port}"      # livy_listen: Livy's API at /
    nb = Notebook(livy, tmp_path, "python3", [
        code("%load_ext sparkmagic.magics"),
        code(f"%spark add -s s1 -l python -u {url} -a bob -p {PASSWORDS['bob']} -t Basic_Access"),
        code("%%spark -s s1\nprint(sc.parallelize(range(10)).map(lambda x: x * x).sum())"),
        code("%%spark -s s1 -c sql\nSELECT 42 AS answer"),
        code("%spark info"),
        code("%spark cleanup"),
    ], user="bob")
    nb.run(0)
    nb.run(1)
    out = text_of(nb.run(2))
    assert "285" in out, out
    out = text_of(nb.run(3))
    assert "42" in out, out
    sessions = live_sessions(livy)
    assert [x["owner"] for x in sessions] == ["bob"], sessions
    sid = sessions[0]["id"]
    out = text_of(nb.run(4))
    assert str(sid) in out, out
    nb.run(5)                                # %spark cleanup: DELETE /sessions/{id}
    nb.close()
    deadline = time.monotonic() + 30
    while (live_sessions(livy) or session_jvms(livy, sid)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not live_sessions(livy) and not session_jvms(livy, sid)
