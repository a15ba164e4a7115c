"""The Livy API's sessions and statements (docs/livy.md) against real Spark:
pyspark from .venv (it bundles Spark) and Java 17, one nbhub serve for the
module (a session's kernel + JVM takes seconds to start, so the tests share
what they can).

What Livy itself gets wrong and nbhub must not (issue 19): sessions survive
a restart of nbhub serve, clean or kill -9, and a statement running across
it completes and can be read; idle sessions end after
heartbeatTimeoutInSecond without requests, never while a statement runs;
no JVM is left behind by a deleted, timed out or crashed session; users see
only their own sessions."""

import json
import os
import signal
import time

import pytest

from conftest import wait_for
from hubserve import HubServer, hub_harness, pid_alive

pytest.importorskip("pyspark")

CONFIG = ("livy:\n"
          "  master: 'local[2]'\n"
          "  output_max: 1m\n"
          "  conf: {spark.sql.shuffle.partitions: '2', spark.driver.memory: 512m}\n")


@pytest.fixture(scope="module")
def livy(tmp_path_factory):
    h = hub_harness(tmp_path_factory, "livy")
    hs = HubServer(h, config=CONFIG).start()
    yield hs
    # Sessions outlive nbhub serve by design: end them first.
    st, lst = hs.api.get("/livy/sessions?size=1000")
    for s in lst.get("sessions", []):
        hs.api.delete(f"/livy/sessions/{s['id']}")
    wait_for(lambda: not h.leftovers(), 30, 0.2)
    hs.stop()
    left = h.cleanup()
    assert not left, left


def jvms(session_id):
    """pids of Spark JVMs of that session (its app name is on their command line)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"java") and f"spark.app.name=livy-session-{session_id}".encode() in b" ".join(cmd):
            out.append(int(d))
    return out


def create(api, body=None, expect=201):
    st, s = api.post("/livy/sessions", body if body is not None else {"kind": "pyspark"})
    assert st == expect, (st, s)
    return s


def wait_session(api, sid, states=("idle",), timeout=180):
    last = {}

    def ok():
        nonlocal last
        st, last = api.get(f"/livy/sessions/{sid}")
        return st == 200 and last["state"] in states
    assert wait_for(ok, timeout, 0.2), last
    return last


def run(api, sid, code, kind=None, timeout=120):
    body = {"code": code}
    if kind:
        body["kind"] = kind
    st, s = api.post(f"/livy/sessions/{sid}/statements", body)
    assert st == 201, (st, s)
    return wait_stmt(api, sid, s["id"], timeout=timeout)


def wait_stmt(api, sid, stmt, states=("available", "error", "cancelled"), timeout=120):
    last = {}

    def ok():
        nonlocal last
        st, last = api.get(f"/livy/sessions/{sid}/statements/{stmt}")
        return st == 200 and last["state"] in states
    assert wait_for(ok, timeout, 0.1), last
    return last


def delete(api, sid):
    st, body = api.delete(f"/livy/sessions/{sid}")
    assert st == 200 and body == {"msg": "deleted"}, (st, body)


@pytest.fixture(scope="module")
def alice_session(livy):
    """One idle pyspark session of alice's, shared by the statement tests."""
    a = livy.apis["alice"]
    t0 = time.monotonic()
    s = create(a, {"kind": "pyspark", "name": "alice-main", "heartbeatTimeoutInSecond": 0})
    s = wait_session(a, s["id"])
    print(f"\ncold session creation to idle: {time.monotonic() - t0:.2f} s")
    return s


def test_session_shape_and_statements(livy, alice_session):
    a = livy.apis["alice"]
    s = alice_session
    sid = s["id"]
    assert s["owner"] == "alice" and s["proxyUser"] == "alice" and s["kind"] == "pyspark"
    assert s["appId"] and s["appId"].startswith("local-"), s
    assert set(s["appInfo"]) == {"driverLogUrl", "sparkUiUrl"}
    assert isinstance(s["log"], list)
    st, state = a.get(f"/livy/sessions/{sid}/state")
    assert (st, state) == (200, {"id": sid, "state": "idle"})

    r = run(a, sid, "spark.range(1, 101).selectExpr('sum(id) AS s').collect()[0].s\n")
    assert r["state"] == "available", r
    assert r["output"] == {"status": "ok", "execution_count": r["output"]["execution_count"],
                           "data": {"text/plain": "5050"}}, r
    assert r["progress"] == 1.0 and r["completed"] >= r["started"] > 0
    # print + the last value, as Livy's shell joins them
    r = run(a, sid, "print('hello')\n21 * 2\n")
    assert r["output"]["data"]["text/plain"] == "hello\n42", r
    # an error: status error inside an available statement, as Livy does
    r = run(a, sid, "1/0\n")
    assert r["state"] == "available"
    assert r["output"]["status"] == "error" and r["output"]["ename"] == "ZeroDivisionError", r
    assert r["output"]["evalue"] == "division by zero"
    assert any("ZeroDivisionError" in line for line in r["output"]["traceback"])
    assert not any("\x1b[" in line for line in r["output"]["traceback"])   # no colours
    # kind sql: Livy's SQL interpreter's answer
    r = run(a, sid, "SELECT id, id * 2 AS twice FROM range(3)", kind="sql")
    j = r["output"]["data"]["application/json"]
    assert j["data"] == [[0, 0], [1, 2], [2, 4]], j
    assert [f["name"] for f in j["schema"]["fields"]] == ["id", "twice"]
    # what sparkmagic's %%sql sends
    r = run(a, sid, "for l in spark.sql('SELECT 7 AS x').toJSON().take(2500):\n    print(l)\n")
    assert r["output"]["data"]["text/plain"].strip() == '{"x":7}'
    # the list
    st, lst = a.get(f"/livy/sessions/{sid}/statements")
    assert st == 200 and lst["total_statements"] == len(lst["statements"]) >= 5
    assert [x["id"] for x in lst["statements"]][:3] == [0, 1, 2]


def test_output_cap_has_a_marker(livy, alice_session):
    a = livy.apis["alice"]
    r = run(a, alice_session["id"], "print('x' * (3 * 1024 * 1024))\n")
    text = r["output"]["data"]["text/plain"]
    assert len(text) < 1024 * 1024 + 500
    assert "[nbhub: output truncated:" in text and "livy.output_max" in text


def test_cancel_interrupts_the_kernel(livy, alice_session):
    a = livy.apis["alice"]
    sid = alice_session["id"]
    # A sleep far longer than any wait here: only the interrupt can end it.
    # (On a loaded machine the kernel may still be flushing the previous
    # test's 16 MB of output when the first SIGINT lands; it is re-sent
    # every 2 s until the statement ends.)
    st, s = a.post(f"/livy/sessions/{sid}/statements", {"code": "import time\ntime.sleep(600)\n"})
    assert st == 201
    wait_stmt(a, sid, s["id"], states=("running",), timeout=30)
    st, body = a.post(f"/livy/sessions/{sid}/statements/{s['id']}/cancel", {})
    assert (st, body) == (200, {"msg": "canceled"})
    r = wait_stmt(a, sid, s["id"], timeout=60)
    assert r["state"] == "cancelled", r
    # the session goes on
    r = run(a, sid, "6 * 7\n")
    assert r["output"]["data"]["text/plain"] == "42"


def test_progress_from_the_event_log(livy, alice_session):
    a = livy.apis["alice"]
    sid = alice_session["id"]
    # 8 tasks of ~1.5 s on local[2]: about 6 s, seen in between
    st, s = a.post(f"/livy/sessions/{sid}/statements",
                   {"code": "import time\n"
                            "sc.parallelize(range(8), 8).map(lambda x: time.sleep(1.5) or x).sum()\n"})
    assert st == 201
    seen = set()

    def done():
        st, r = a.get(f"/livy/sessions/{sid}/statements/{s['id']}")
        seen.add(r["progress"])
        return r["state"] == "available" and r
    r = wait_for(done, 120, 0.2)
    assert r["output"]["data"]["text/plain"] == "28", r
    partial = sorted(p for p in seen if 0 < p < 1)
    assert partial, seen
    print(f"\nprogress seen: {partial}")


def test_users_see_only_their_own(livy, alice_session):
    a, b = livy.apis["alice"], livy.apis["bob"]
    sid = alice_session["id"]
    for method, path in [("GET", f"/livy/sessions/{sid}"), ("GET", f"/livy/sessions/{sid}/state"),
                         ("GET", f"/livy/sessions/{sid}/log"), ("GET", f"/livy/sessions/{sid}/statements"),
                         ("GET", f"/livy/sessions/{sid}/statements/0"),
                         ("POST", f"/livy/sessions/{sid}/statements"),
                         ("POST", f"/livy/sessions/{sid}/statements/0/cancel"),
                         ("DELETE", f"/livy/sessions/{sid}")]:
        st, body = b.request(method, path, {"code": "1"} if method == "POST" else None)
        assert (st, body) == (404, {"msg": f"Session '{sid}' not found."}), (method, path, st, body)
    st, lst = b.get("/livy/sessions")
    assert st == 200 and lst["total"] == 0 and lst["sessions"] == [] and lst["from"] == 0
    st, lst = a.get("/livy/sessions")
    assert sid in [x["id"] for x in lst["sessions"]]
    st, lst = livy.api.get("/livy/sessions")          # the admin sees everyone's
    assert sid in [x["id"] for x in lst["sessions"]]
    # proxyUser is for admins
    st, body = b.post("/livy/sessions", {"kind": "pyspark", "proxyUser": "alice"})
    assert st == 403 and body == {"msg": "User 'bob' not allowed to impersonate 'alice'."}
    # no token: 401
    st, _ = b.request("GET", "/livy/sessions", token=False)
    assert st == 401


def test_refusals_in_livys_shape(livy, alice_session):
    a = livy.apis["alice"]
    st, body = a.post("/livy/sessions", {"kind": "spark"})
    assert st == 400 and "Scala" in body["msg"], body
    st, body = a.post("/livy/sessions", {"kind": "sparkr"})
    assert st == 400 and "no R kernel" in body["msg"], body
    st, body = a.post("/livy/sessions", {"kind": "cobol"})
    assert st == 400
    st, body = a.post("/livy/sessions", {"kind": "pyspark", "executorMemroy": "1g"})
    assert st == 400 and "executorMemroy" in body["msg"]
    st, body = a.post("/livy/sessions", {"kind": "pyspark", "numExecutors": "two"})
    assert st == 400 and "numExecutors" in body["msg"]
    st, body = a.post("/livy/sessions", {"kind": "pyspark", "name": "alice-main"})
    assert st == 400 and body["msg"].startswith("Duplicate session name: alice-main"), body
    st, body = a.get("/livy/sessions/999999")
    assert (st, body) == (404, {"msg": "Session '999999' not found."})
    st, body = a.get(f"/livy/sessions/{alice_session['id']}/statements/9999")
    assert st == 404 and "msg" in body
    st, body = a.post(f"/livy/sessions/{alice_session['id']}/statements", {"cod": "1"})
    assert st == 400 and "msg" in body


def test_log_paging(livy, alice_session):
    a = livy.apis["alice"]
    sid = alice_session["id"]
    st, body = a.get(f"/livy/sessions/{sid}/log?from=0&size=3")
    assert st == 200 and body["id"] == sid and body["from"] == 0 and len(body["log"]) <= 3
    total = body["total"]
    st, body = a.get(f"/livy/sessions/{sid}/log?size=2")
    assert body["from"] == max(0, total - 2) and body["total"] >= total


def session_row(livy, sid):
    with livy.db() as c:
        return c.execute("SELECT * FROM livy_sessions WHERE id = ?", (sid,)).fetchone()


def test_delete_leaves_no_jvm(livy):
    a = livy.apis["alice"]
    s = wait_session(a, create(a)["id"])
    assert jvms(s["id"]), "the session's JVM should run"
    pid = session_row(livy, s["id"])["pid"]
    delete(a, s["id"])
    st, body = a.get(f"/livy/sessions/{s['id']}")
    assert (st, body) == (404, {"msg": f"Session '{s['id']}' not found."})
    assert wait_for(lambda: not jvms(s["id"]) and not pid_alive(pid), 20, 0.2), jvms(s["id"])
    # DELETE of a gone session: 404, which sparkmagic's cleanup accepts
    st, _ = a.delete(f"/livy/sessions/{s['id']}")
    assert st == 404


def test_kernel_crash_ends_the_session_and_its_jvm(livy):
    b = livy.apis["bob"]
    s = wait_session(b, create(b)["id"])
    st, stmt = b.post(f"/livy/sessions/{s['id']}/statements", {"code": "import time\ntime.sleep(60)\n"})
    wait_stmt(b, s["id"], stmt["id"], states=("running",), timeout=30)
    os.kill(session_row(livy, s["id"])["pid"], signal.SIGKILL)
    s2 = wait_session(b, s["id"], states=("dead",), timeout=20)
    assert any("the kernel died" in line for line in s2["log"]), s2["log"]
    r = wait_stmt(b, s["id"], stmt["id"], timeout=5)
    assert r["state"] == "error" and r["output"]["status"] == "error", r
    assert wait_for(lambda: not jvms(s["id"]), 20, 0.2), jvms(s["id"])
    st, body = b.post(f"/livy/sessions/{s['id']}/statements", {"code": "1"})
    assert st == 400 and "dead" in body["msg"]
    delete(b, s["id"])


def test_heartbeat_timeout_spares_running_statements(livy):
    b = livy.apis["bob"]
    s = wait_session(b, create(b, {"kind": "pyspark", "heartbeatTimeoutInSecond": 4})["id"])
    sid = s["id"]
    st, stmt = b.post(f"/livy/sessions/{sid}/statements",
                      {"code": "import time\ntime.sleep(8)\nprint('still here')\n"})
    assert st == 201
    # No request about the session for longer than its timeout, while the
    # statement runs (the admin's list is not a heartbeat of bob's session).
    time.sleep(9)
    assert session_row(livy, sid)["state"] in ("busy", "idle")
    r = wait_stmt(b, sid, stmt["id"], timeout=30)
    assert r["output"]["data"]["text/plain"] == "still here\n", r
    # Now idle and nobody asks: it ends (dead) 4 s after the statement's
    # end (idle time counts from the later of the last request and the
    # last statement's end), and its JVM goes.
    t0 = time.monotonic()
    assert wait_for(lambda: session_row(livy, sid)["state"] == "dead", 15, 0.2)
    print(f"\nidle session ended {time.monotonic() - t0:.1f} s after its statement was read (timeout 4 s)")
    assert wait_for(lambda: not jvms(sid), 20, 0.2), jvms(sid)
    st, s = b.get(f"/livy/sessions/{sid}")
    assert s["state"] == "dead" and any("heartbeatTimeoutInSecond" in x for x in s["log"])
    delete(b, sid)


@pytest.mark.parametrize("kill9", [True, False], ids=["kill9", "clean"])
def test_sessions_survive_a_restart(livy, kill9):
    b = livy.apis["bob"]
    s = wait_session(b, create(b)["id"])
    sid = s["id"]
    r = run(b, sid, "x = 20\nx\n")
    assert r["output"]["data"]["text/plain"] == "20"
    kpid = session_row(livy, sid)["pid"]
    st, stmt = b.post(f"/livy/sessions/{sid}/statements",
                      {"code": "import time\ntime.sleep(6)\nprint('across')\nspark.range(10).count() + x\n"})
    wait_stmt(b, sid, stmt["id"], states=("running",), timeout=30)
    livy.restart(kill9=kill9)
    # The same kernel, the same session and statements.
    assert pid_alive(kpid) and session_row(livy, sid)["pid"] == kpid
    st, s2 = b.get(f"/livy/sessions/{sid}")
    assert st == 200 and s2["state"] in ("busy", "idle"), s2
    r = wait_stmt(b, sid, stmt["id"], timeout=60)
    assert r["state"] == "available" and r["output"]["data"]["text/plain"] == "across\n30", r
    st, lst = b.get(f"/livy/sessions/{sid}/statements")
    assert [x["id"] for x in lst["statements"]] == [0, 1]
    # and it goes on, state kept (x)
    r = run(b, sid, "x + 1\n")
    assert r["output"]["data"]["text/plain"] == "21", r
    wait_session(b, sid, timeout=10)
    delete(b, sid)
    assert wait_for(lambda: not jvms(sid) and not pid_alive(kpid), 20, 0.2)


def test_restart_finds_a_gone_kernel(livy):
    b = livy.apis["bob"]
    s = wait_session(b, create(b)["id"])
    sid = s["id"]
    livy.srv.stop()
    os.kill(session_row(livy, sid)["pid"], signal.SIGKILL)
    livy.start()
    st, s2 = b.get(f"/livy/sessions/{sid}")
    assert s2["state"] == "dead" and any("gone when nbhub restarted" in x for x in s2["log"]), s2
    assert wait_for(lambda: not jvms(sid), 20, 0.2), jvms(sid)
    delete(b, sid)


def group_alive(pgid):
    """Processes of process group pgid (a session's kernel leads its group; the JVM is in it)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getpgid(int(d)) == pgid and pid_alive(int(d)):
                    out.append(int(d))
            except OSError:
                pass
    return out


def test_warm_pool_session_is_idle_at_once(tmp_path_factory):
    h = hub_harness(tmp_path_factory, "livywarm")
    hs = HubServer(h, config=CONFIG + "  warm: 1\n").start()
    try:
        def warm_ready():
            return hs.srv.log_path.read_text(errors="replace").count("warm kernel ready")
        assert wait_for(warm_ready, 240, 0.5), hs.log()
        a = hs.apis["alice"]
        t0 = time.monotonic()
        s = create(a, {"kind": "pyspark", "heartbeatTimeoutInSecond": 60})
        s = wait_session(a, s["id"], timeout=30)
        took = time.monotonic() - t0
        print(f"\nwarm session creation to idle: {took:.2f} s")
        assert took < 5, took
        assert s["appId"] and s["owner"] == "alice"
        r = run(a, s["id"], "spark.range(5).count()\n")
        assert r["output"]["data"]["text/plain"] == "5"
        # a request with its own Spark settings does not take a warm kernel
        pid = session_row(hs, s["id"])["pid"]
        s2 = create(a, {"kind": "pyspark", "conf": {"spark.sql.shuffle.partitions": "3"}})
        assert session_row(hs, s2["id"])["pid"] != pid
        delete(a, s2["id"])
        delete(a, s["id"])
        assert wait_for(lambda: not group_alive(pid), 20, 0.2), group_alive(pid)
        # the pool is refilled; stopping nbhub ends the unclaimed warm kernel
        assert wait_for(lambda: warm_ready() >= 2, 240, 0.5), hs.log()
    finally:
        hs.stop()
        left = wait_for(lambda: not h.leftovers(), 20, 0.2)
        left = h.cleanup()
        assert not left, left


def test_bad_livy_config_has_positions(h):
    cfg = h.tmp / "nbhub.yaml"
    cfg.write_text("listen: 127.0.0.1:0\nlivy:\n  mastr: local\n  warm: lots\n  output_max: big\n"
                   "  spark: yarn\n  conf: [a]\n")
    r = h.run(["serve", "--config", cfg, "--home", h.tmp / "home"])
    assert r.rc == 3, r
    assert f"{cfg}:3:3: unknown key 'livy.mastr' (did you mean 'master'?)" in r.stderr, r.stderr
    assert f"{cfg}:4:9: 'livy.warm' must be a number" in r.stderr
    assert f"{cfg}:5:15: 'livy.output_max' must be a size" in r.stderr
    assert f"{cfg}:6:10: 'livy.spark' must be local" in r.stderr
    assert f"{cfg}:7:9: 'livy.conf' must be a mapping" in r.stderr
