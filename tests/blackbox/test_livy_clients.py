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
    a changed password ends a remembered Basic pair.
"""
import base64
import http.client
import json
import os
import socket
import time

import pytest
import requests

from conftest import Harness
from nbserve import ADMIN_PASSWORD, Api, Server

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
    port = free_port()
    cfg = tmp / "nbhub.yaml"
    cfg.write_text(f"livy_listen: 127.0.0.1:{port}\nlivy: {{csrf: true}}\n")
    srv = Server(h, args=["--config", cfg]).start()
    lv = Livy(h, srv, port)
    for name, pw in PASSWORDS.items():
        st, body = srv.api.post("/api/v1/users", {"name": name, "password": pw})
        assert st == 201, (st, body)
        st, tok = srv.api.post(f"/api/v1/users/{name}/tokens", {"name": "livy"})
        assert st == 201, (st, tok)
        lv.tokens[name] = tok["token"]
        (lv.workspace(name) / "job.py").write_text(JOB)
    yield lv
    srv.stop()
    left = h.cleanup()
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
