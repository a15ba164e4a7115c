"""A Spark cluster per Livy session (livy.spark: cluster, docs/livy.md "A
cluster per session"), against real Spark: pyspark from .venv and Java 17.

A session gets its own standalone cluster owned by its user (livy-ID, listed
with the user's clusters), its kernel's driver runs on it (sc.master is the
cluster's spark:// URL, spark.range computes there), appInfo.sparkUiUrl is
the driver's UI through nbhub's Spark UI proxy; the cluster is removed with
the session -- DELETE, the kernel's death, and a restart of nbhub that finds
the kernel gone -- and no JVM of it is left (scanned in /proc).

One nbhub serve for the module; every test starts one cluster (~20-40 s)."""

import os
import shutil
import signal

import pytest

from conftest import wait_for
from hubserve import HubServer, hub_harness, pid_alive
from test_livy import create, delete, jvms, run, session_row, wait_session

pytest.importorskip("pyspark")
if not shutil.which("java"):
    pytest.skip("Spark needs Java", allow_module_level=True)

CONFIG = ("livy:\n"
          "  spark: cluster\n"
          "  workers: 1\n"
          "  worker_memory: 512m\n"
          "  max_workers: 2\n"
          "  max_worker_memory: 1g\n"
          "  conf: {spark.sql.shuffle.partitions: '2', spark.driver.memory: 512m}\n")


@pytest.fixture(scope="module")
def livy(tmp_path_factory):
    h = hub_harness(tmp_path_factory, "livycluster")
    hs = HubServer(h, config=CONFIG).start()
    yield hs
    st, lst = hs.api.get("/livy/sessions?size=1000")
    for s in lst.get("sessions", []):
        hs.api.delete(f"/livy/sessions/{s['id']}")
    wait_for(lambda: not cluster_jvms(hs), 40, 0.3)
    hs.stop()
    left = h.cleanup()
    assert not left, left
    assert not cluster_jvms(hs)


def cluster_dir(hs, user, sid):
    return hs.srv.home / "spark" / f"~{user}" / f"livy-{sid}"


def cluster_jvms(hs, user=None, sid=None):
    """Java processes of session clusters (all of them, or of one session):
    the cluster's directory or its UI path is on their command line."""
    marks = ([str(cluster_dir(hs, user, sid)).encode(), f"/spark/~{user}/livy-{sid}/ui".encode()] if sid
             else [str(hs.srv.home / "spark").encode()])
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.split(b"\0")[0].endswith(b"java") and any(m in cmd for m in marks) and pid_alive(int(d)):
            out.append(int(d))
    return out


def user_clusters(api):
    st, body = api.get("/api/v1/spark/clusters")
    assert st == 200, (st, body)
    return {c["name"]: c for c in body["clusters"]}


def gone(hs, user, sid):
    return not cluster_jvms(hs, user, sid) and not jvms(sid)


def test_session_computes_on_its_own_cluster_and_delete_removes_it(livy):
    a = livy.apis["alice"]
    s = create(a, {"kind": "pyspark", "numExecutors": 1, "executorMemory": "512m"})
    sid = s["id"]
    # the cluster first: the session is starting while it comes up
    assert s["state"] in ("not_started", "starting"), s
    s = wait_session(a, sid, timeout=240)
    name = f"livy-{sid}"
    assert session_row(livy, sid)["spark_cluster"] == name
    clusters = user_clusters(a)
    assert name in clusters and clusters[name]["state"] == "running", clusters
    assert name not in user_clusters(livy.apis["bob"])
    master = clusters[name]["master_url"]
    assert master.startswith("spark://127.0.0.1:"), clusters[name]
    r = run(a, sid, "print(sc.master)\nprint(spark.range(1000).selectExpr('sum(id)').first()[0])\n", timeout=180)
    assert r["state"] == "available" and r["output"]["status"] == "ok", r
    assert r["output"]["data"]["text/plain"].split() == [master, "499500"], r
    # the driver's UI through nbhub's Spark UI proxy (the master proxies it)
    ui = s["appInfo"]["sparkUiUrl"]
    assert s["appId"] and ui == f"/spark/~alice/{name}/ui/proxy/{s['appId']}/", s
    st, body, _ = a.request("GET", ui + "jobs/", raw=True)
    assert st == 200 and b"Spark Jobs" in body, (st, body[:300])
    st, _, _ = livy.apis["bob"].request("GET", ui + "jobs/", raw=True)
    assert st == 404
    assert cluster_jvms(livy, "alice", sid) and jvms(sid)
    delete(a, sid)
    assert wait_for(lambda: gone(livy, "alice", sid), 40, 0.3), (cluster_jvms(livy, "alice", sid), jvms(sid))
    assert wait_for(lambda: name not in user_clusters(a) or user_clusters(a)[name]["state"] == "stopped", 20, 0.3)


def test_sizes_over_the_maxima_are_refused(livy):
    a = livy.apis["alice"]
    for body, word in (({"kind": "pyspark", "numExecutors": 3}, "numExecutors"),
                       ({"kind": "pyspark", "executorMemory": "2g"}, "executorMemory"),
                       ({"kind": "pyspark", "executorCores": 9}, "executorCores")):
        st, r = a.post("/livy/sessions", body)
        assert st == 400 and word in r["msg"], (st, r)
    assert not [n for n in user_clusters(a) if n.startswith("livy-")]


def test_kernel_killed_ends_the_session_and_its_cluster(livy):
    b = livy.apis["bob"]
    sid = create(b, {"kind": "pyspark"})["id"]
    wait_session(b, sid, timeout=240)
    assert cluster_jvms(livy, "bob", sid)
    os.kill(session_row(livy, sid)["pid"], signal.SIGKILL)
    s = wait_session(b, sid, states=("dead",), timeout=30)
    assert s["appInfo"]["sparkUiUrl"] is None, s
    assert wait_for(lambda: gone(livy, "bob", sid), 40, 0.3), (cluster_jvms(livy, "bob", sid), jvms(sid))
    delete(b, sid)


def test_heartbeat_timeout_removes_the_cluster(livy):
    b = livy.apis["bob"]
    sid = create(b, {"kind": "pyspark", "heartbeatTimeoutInSecond": 3})["id"]
    wait_session(b, sid, timeout=240)
    assert cluster_jvms(livy, "bob", sid)
    # no request about the session (each is a heartbeat): watched in /proc only
    assert wait_for(lambda: gone(livy, "bob", sid), 60, 0.3), (cluster_jvms(livy, "bob", sid), jvms(sid))
    s = wait_session(b, sid, states=("dead",), timeout=5)
    assert "heartbeatTimeoutInSecond" in " ".join(s["log"]), s["log"]
    delete(b, sid)


def test_restart_keeps_a_live_sessions_cluster_and_removes_a_gone_ones(livy):
    b = livy.apis["bob"]
    sid = create(b, {"kind": "pyspark"})["id"]
    wait_session(b, sid, timeout=240)
    pid = session_row(livy, sid)["pid"]
    # a restart that finds the kernel: the session and its cluster stay
    livy.restart()
    wait_session(b, sid, timeout=30)
    r = run(b, sid, "print(spark.range(10).count())\n", timeout=120)
    assert r["output"]["data"]["text/plain"].strip() == "10", r
    assert f"livy-{sid}" in user_clusters(b) and cluster_jvms(livy, "bob", sid)
    livy.stop()
    # nbhub is away: the session's kernel and cluster keep running
    assert pid_alive(pid) and cluster_jvms(livy, "bob", sid)
    os.killpg(pid, signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(pid), 10, 0.1)
    livy.start()
    s = wait_session(b, sid, states=("dead",), timeout=30)
    assert "gone" in " ".join(s["log"]), s["log"]
    assert wait_for(lambda: gone(livy, "bob", sid), 40, 0.3), (cluster_jvms(livy, "bob", sid), jvms(sid),
                                                                livy.log())
    delete(b, sid)


def test_session_on_a_named_cluster_of_the_users_leaves_it_running(livy):
    """conf spark.nbhub.cluster: the user's own long-lived cluster, shared by
    sessions and left running when they end; another user's name is not
    theirs, and a session's own livy-ID cluster cannot be named."""
    a, b = livy.apis["alice"], livy.apis["bob"]
    st, c = a.post("/api/v1/spark/clusters", {"name": "team", "worker_memory": "512m"})
    assert st == 202, (st, c)
    running = lambda: (lambda r: r[1] if r[0] == 200 and r[1]["state"] == "running" else None)(
        a.get("/api/v1/spark/clusters/team"))
    cl = wait_for(running, 180, 0.5)
    assert cl, a.get("/api/v1/spark/clusters/team")
    try:
        s = create(a, {"kind": "pyspark", "conf": {"spark.nbhub.cluster": "team"}})
        sid = s["id"]
        s = wait_session(a, sid, timeout=180)
        assert session_row(livy, sid)["spark_cluster"] == "team"
        r = run(a, sid, "print(sc.master)\nprint(spark.range(1000).selectExpr('sum(id)').first()[0])\n"
                        "print(sc.getConf().get('spark.nbhub.cluster', 'absent'))\n", timeout=180)
        assert r["output"]["data"]["text/plain"].split() == [cl["master_url"], "499500", "absent"], r
        assert s["appInfo"]["sparkUiUrl"] == f"/spark/~alice/team/ui/proxy/{s['appId']}/", s
        # no session cluster was made for it
        assert not [n for n in user_clusters(a) if n.startswith("livy-")]
        delete(a, sid)
        assert wait_for(lambda: not jvms(sid), 40, 0.3), jvms(sid)
        # the cluster is the user's: still running after the session
        assert a.get("/api/v1/spark/clusters/team")[1]["state"] == "running"
        # and after a restart of nbhub, a second session on it, then gone: still there
        sid2 = create(a, {"kind": "pyspark", "conf": {"spark.nbhub.cluster": "team"}})["id"]
        wait_session(a, sid2, timeout=180)
        livy.restart()
        wait_session(a, sid2, timeout=30)
        delete(a, sid2)
        assert wait_for(lambda: not jvms(sid2), 40, 0.3), jvms(sid2)
        assert a.get("/api/v1/spark/clusters/team")[1]["state"] == "running"
        # bob's "team" is his own namespace: he has none
        sb = create(b, {"kind": "pyspark", "conf": {"spark.nbhub.cluster": "team"}})["id"]
        s = wait_session(b, sb, states=("error",), timeout=30)
        assert "no running Spark cluster named 'team'" in " ".join(s["log"]), s["log"]
        delete(b, sb)
        # not a string: refused at once
        st, r = a.post("/livy/sessions", {"kind": "pyspark", "conf": {"spark.nbhub.cluster": 3}})
        assert st == 400 and "spark.nbhub.cluster" in r["msg"], (st, r)
    finally:
        a.delete("/api/v1/spark/clusters/team")
    assert wait_for(lambda: "team" not in user_clusters(a) or user_clusters(a)["team"]["state"] == "stopped", 60, 0.5)


def test_bad_cluster_config_has_positions(h):
    cfg = h.tmp / "nbhub.yaml"
    cfg.write_text("listen: 127.0.0.1:0\nlivy:\n  spark: cluster\n  workers: 0\n  max_worker_memory: lots\n"
                   "  worker_cores: x\n  max_workrs: 2\n")
    r = h.run(["serve", "--config", cfg, "--home", h.tmp / "home"])
    assert r.rc == 3, r
    assert f"{cfg}:4:12: 'livy.workers' must be a whole number from 1 to 64" in r.stderr, r.stderr
    assert f"{cfg}:5:22: 'livy.max_worker_memory' must be a size" in r.stderr, r.stderr
    assert f"{cfg}:6:17: 'livy.worker_cores' must be a whole number from 1 to 1024" in r.stderr, r.stderr
    assert f"{cfg}:7:3: unknown key 'livy.max_workrs' (did you mean 'max_workers'?)" in r.stderr, r.stderr
