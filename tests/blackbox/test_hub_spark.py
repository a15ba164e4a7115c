"""A Spark cluster per notebook server (issue 17, docs/hub.md "Spark with your
server"): a profile with `spark:` gives each server started with it a
standalone cluster owned by the server's user, created with the server and
named in its environment, removed when the server stops (a stop, or the
server's process killed with -9).

Everything is real: jupyterhub-singleuser from the test .venv behind nbhub's
proxy, a kernel driven through jupyter-server's REST API and its websocket,
pyspark's Spark on Java 17.  A cell in the server computes on the cluster
(SparkSession.builder.getOrCreate() with nothing else), the master's /json/
shows the application; after a stop no JVM of the cluster is left, and a
kill -9 of the notebook server takes its cluster within the hub's poll."""

import fcntl
import json
import os
import shutil
import signal
import struct
import time
import urllib.request

import pytest

from conftest import wait_for
from nbserve import Api, Server
from hubkernel import KernelWs, add_user, server_json, start_server, stop_server, wait_state

pytest.importorskip("pyspark")
pytest.importorskip("websocket")
if not shutil.which("java"):
    pytest.skip("Spark needs Java", allow_module_level=True)

SPARK_CELL = ("from pyspark.sql import SparkSession\n"
              "spark = SparkSession.builder.getOrCreate()\n"
              "print('sum', spark.range(100).selectExpr('sum(id)').first()[0])\n"
              "print('master', spark.sparkContext.master)\n")


def hub_yaml(h, connect=False):
    py = str(h.env["VIRTUAL_ENV"]) + "/bin/python"
    return ("hub:\n"
            "  profiles:\n"
            "    - name: spark\n"
            "      description: a server and its own Spark cluster\n"
            f"      python: {py}\n"
            f"      spark: {{workers: 1, worker_memory: 512m, connect: {'true' if connect else 'false'}}}\n"
            "    - name: plain\n"
            f"      python: {py}\n"
            "  start_timeout: 90s\n")


def cluster_dir(srv, user, name="server"):
    return srv.home / "spark" / f"~{user}" / name


def live_state(srv, user, name="server"):
    """state.json of the cluster if its supervisor runs, else None."""
    p = cluster_dir(srv, user, name) / "state.json"
    try:
        st = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
            if b"__spark-supervise" not in f.read():
                return None
    except OSError:
        return None
    return st


def jvm_pids(state):
    return [p["pid"] for p in state.get("processes", []) if p.get("pid")]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except OSError:
        return False


def java_of_cluster(srv, user, name="server"):
    """Java processes started for this cluster (its work dir or logs in argv/env)."""
    d = str(cluster_dir(srv, user, name)).encode()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if b"java" in cmd.split(b"\0")[0] and (d in cmd or f"/spark/~{user}/{name}/ui".encode() in cmd + env):
            if alive(pid):
                out.append(int(pid))
    return out


def test_spark_profile_server_computes_on_its_cluster_and_cleans_up(h):
    # servers (and their clusters) outlive a stop of nbhub here: the restarts below
    srv = Server(h)
    (srv.home / "nbhub.yaml").write_text(hub_yaml(h))
    srv.start()
    try:
        alice = add_user(srv, "alice")
        t0 = time.monotonic()
        start_server(alice, profile="spark")
        s = wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        t_server = time.monotonic() - t0
        # the server JSON names its cluster and the UI through nbhub
        assert s["spark"]["cluster"] == "server", s
        assert s["spark"]["ui_url"] == "/spark/~alice/server/ui/", s
        # the cluster is the user's: in the API's list, marked as the server's
        st = wait_for(lambda: live_state(srv, "alice") if (live_state(srv, "alice") or {}).get("state") == "running"
                      else None, 120, 0.2)
        t_cluster = time.monotonic() - t0
        assert st, (srv.log(), (cluster_dir(srv, "alice") / "api.log").read_text(errors="replace")[-3000:])
        print(f"server ready after {t_server:.1f} s, its cluster after {t_cluster:.1f} s")
        # ... and, from the cluster's own files, its state, URLs and size
        s = server_json(alice, "alice", "")
        assert s["spark"]["state"] == "running" and s["spark"]["master_url"] == st["master_url"], (s, st)
        assert s["spark"]["connect_url"] is None, s
        assert s["spark"]["workers"] == 1 and s["spark"]["worker_memory"] == "512m", s
        code, c = alice.get("/api/v1/spark/clusters/server")
        assert code == 200 and c["owner"] == "alice" and c.get("server") == "", (code, c)
        cfg = json.loads((cluster_dir(srv, "alice") / "config.json").read_text())
        assert cfg["workers"] == 1 and cfg["worker_memory"] == "512m", cfg

        # A kernel in the server (through nbhub's proxy), SparkSession with nothing else.
        k = KernelWs(srv.port, alice.token, "/user/alice/")
        try:
            out = k.execute(SPARK_CELL, timeout=180)
            assert "sum 4950" in out, out
            assert f"master {st['master_url']}" in out, (out, st)
            # the master sees the notebook's application while its session lives
            ui = st["ui_url"]
            with urllib.request.urlopen(f"{ui}json/", timeout=10) as r:
                master = json.loads(r.read())
            assert len(master["activeapps"]) == 1, master
            env = k.execute("import os; print(repr(os.environ.get('PYSPARK_SUBMIT_ARGS')))", timeout=60)
            assert "--master spark://127.0.0.1:" in env and "pyspark-shell" in env, env
        finally:
            k.close()
        jvms = jvm_pids(live_state(srv, "alice"))
        assert len(jvms) >= 2, jvms                  # master and worker

        # Stop: the cluster goes, no JVM of it is left.
        stop_server(alice, "alice", "")
        wait_state(alice, "alice", "", "stopped", timeout=60, srv=srv)
        assert wait_for(lambda: live_state(srv, "alice") is None, 60, 0.2), srv.log()
        assert wait_for(lambda: not any(alive(p) for p in jvms) and not java_of_cluster(srv, "alice"), 30, 0.2), \
            (jvms, java_of_cluster(srv, "alice"))
        s = server_json(alice, "alice", "")
        assert s["spark"] is None, s
        assert alice.get("/api/v1/spark/clusters")[1]["clusters"] == []

        # Again, and kill -9 the notebook server: its cluster goes within the poll.
        start_server(alice, profile="spark")
        s = wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        assert wait_for(lambda: live_state(srv, "alice"), 60, 0.2)
        os.kill(s["pid"], signal.SIGKILL)
        t_kill = time.monotonic()
        assert wait_for(lambda: live_state(srv, "alice") is None, 40, 0.2), srv.log()
        print(f"cluster gone {time.monotonic() - t_kill:.1f} s after kill -9 of the server")
        wait_state(alice, "alice", "", ("stopped", "failed"), timeout=30, srv=srv)
        assert wait_for(lambda: not java_of_cluster(srv, "alice"), 30, 0.2), java_of_cluster(srv, "alice")

        # nbhub restarts (kill -9): a server still running keeps its cluster
        # (adopted, not swept); one that died while nbhub was down loses it.
        start_server(alice, profile="spark")
        s = wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        sup = wait_for(lambda: (live_state(srv, "alice") or {}).get("pid"), 60, 0.2)
        srv.kill9()
        srv.start()
        alice.port = srv.port
        assert wait_state(alice, "alice", "", "running", timeout=10, srv=srv)["pid"] == s["pid"]
        time.sleep(3)                      # the sweep at start and the first hub tick have run
        assert (live_state(srv, "alice") or {}).get("pid") == sup, srv.log()
        srv.kill9()
        os.kill(s["pid"], signal.SIGKILL)
        srv.start()
        alice.port = srv.port
        assert wait_for(lambda: live_state(srv, "alice") is None, 40, 0.2), srv.log()
        assert server_json(alice, "alice", "")["state"] in ("stopped", "failed")
        assert wait_for(lambda: not java_of_cluster(srv, "alice"), 30, 0.2), java_of_cluster(srv, "alice")

        # Stopped while its cluster still starts (the server is ready first):
        # the cluster goes as soon as its supervisor is there.
        start_server(alice, profile="spark")
        wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        starting = (live_state(srv, "alice") or {}).get("state") != "running"
        stop_server(alice, "alice", "")
        wait_state(alice, "alice", "", "stopped", timeout=60, srv=srv)
        assert wait_for(lambda: live_state(srv, "alice") is None and not java_of_cluster(srv, "alice"), 90, 0.2), \
            (live_state(srv, "alice"), java_of_cluster(srv, "alice"), srv.log())
        print(f"stopped while its cluster was {'starting' if starting else 'already up'}")

        # A profile without spark: no cluster, nothing in the environment.
        start_server(alice, profile="plain")
        s = wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        assert s["spark"] is None and live_state(srv, "alice") is None, s
        stop_server(alice, "alice", "")
        wait_state(alice, "alice", "", "stopped", timeout=60, srv=srv)
    finally:
        for u in ("alice",):
            try:
                if srv.proc.poll() is None:
                    srv.api.delete(f"/api/v1/servers/{u}/default")
            except Exception:
                pass
        srv.args = ["--stop-servers-on-exit"]
        if srv.proc.poll() is None:
            srv.stop()
        srv.start()                        # and stops whatever is left, with its cluster
        srv.stop()


def test_the_users_own_cluster_called_server_is_left_alone(h):
    """A user's API cluster named like a server's is never removed by the hub:
    the start of that server fails with a message saying why.  No JVM: the
    user's cluster is a claimed directory (starting), nothing runs."""
    srv = Server(h, args=["--stop-servers-on-exit"], env={"SPARK_HOME": str(h.tmp / "no-spark")})
    (srv.home / "nbhub.yaml").write_text(hub_yaml(h))
    srv.start()
    try:
        alice = add_user(srv, "alice")
        d = cluster_dir(srv, "alice")
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"name": "server", "owner": "alice", "workers": 1,
                                                   "worker_memory": "512m"}))
        # the claim a start takes (scluster_lock): an OFD write lock on DIR/lock
        fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, 0, 0, 0, 0))
        try:
            start_server(alice, profile="spark")
            s = wait_state(alice, "alice", "", "failed", timeout=30, srv=srv)
            assert "not this server's" in (s.get("error") or ""), s
            assert (d / "config.json").exists()
        finally:
            os.close(fd)
    finally:
        srv.stop()


def test_connect_profile_gets_spark_remote(h):
    """connect: true -- the server's kernels get SPARK_REMOTE (Spark Connect, no
    JVM in the kernel) naming the cluster's Connect server; a cell run as soon
    as the server is ready waits for the cluster (the client retries) instead
    of failing."""
    pytest.importorskip("grpc")
    srv = Server(h, args=["--stop-servers-on-exit"])
    (srv.home / "nbhub.yaml").write_text(hub_yaml(h, connect=True))
    srv.start()
    try:
        alice = add_user(srv, "alice")
        start_server(alice, profile="spark")
        wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        k = KernelWs(srv.port, alice.token, "/user/alice/")
        try:
            out = k.execute("import os; print(os.environ['SPARK_REMOTE']); print('PSA', 'PYSPARK_SUBMIT_ARGS' in os.environ)\n"
                            + SPARK_CELL.replace("print('master', spark.sparkContext.master)\n", ""), timeout=240)
            assert "sum 4950" in out, (out, srv.log())
            assert "PSA False" in out, out
            st = live_state(srv, "alice")
            assert st and f"{st['connect_url']}\n" in out, (st, out)
        finally:
            k.close()
        jvms = jvm_pids(live_state(srv, "alice"))
        assert len(jvms) >= 3, jvms                  # master, worker, Connect server
        stop_server(alice, "alice", "")
        wait_state(alice, "alice", "", "stopped", timeout=60, srv=srv)
        assert wait_for(lambda: live_state(srv, "alice") is None, 60, 0.2), srv.log()
        assert wait_for(lambda: not any(alive(p) for p in jvms), 30, 0.2), jvms
    finally:
        srv.stop()
