"""`nbhub spark up|down|status|list`: a real Spark standalone cluster (pyspark's
bundled Spark, Java 17) supervised by nbhub: a notebook computes on it through a
generated kernel, a killed worker comes back, `down` and kill -9 of the
supervisor leave no JVM behind (the harness's orphan check also runs after each
test: every JVM carries the test's marker)."""

import json
import os
import signal
import socket
import time
import urllib.request

import pytest

from conftest import code, code_cells, read_nb, stream_text, wait_for, write_nb

pytest.importorskip("pyspark")


def spark(h, *args, env=None, timeout=240):
    return h.run(["spark", *args, "--home", h.tmp / "home"], env=env, timeout=timeout)


def state(h, name):
    r = spark(h, "status", name, "--json")
    return json.loads(r.stdout) if r.rc == 0 else None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def run_on_kernel(h, tmp_path, kernel, prefix, lines):
    """Run a one-cell notebook (SparkSession from getOrCreate, then `lines`) on a
    kernel spec under prefix; its printed lines."""
    nb = write_nb(tmp_path / f"{kernel}.ipynb",
                  code("from pyspark.sql import SparkSession\nspark = SparkSession.builder.getOrCreate()\n" + lines),
                  kernel=kernel)
    out = tmp_path / f"{kernel}.out.ipynb"
    r = h.run(["run", nb, out], env=dict(h.env, JUPYTER_PATH=str(prefix / "share" / "jupyter")), timeout=300)
    assert r.rc == 0, r
    return stream_text(code_cells(read_nb(out))[0]).split("\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cluster_up_compute_restart_down(h, tmp_path):
    port, ui_port = free_port(), free_port()
    r = spark(h, "up", "c1", "--workers", "2", "--worker-cores", "1", "--worker-memory", "1g",
              "--port", str(port), "--ui-port", str(ui_port))
    assert r.rc == 0, r
    url = r.stdout.strip()
    assert url == f"spark://127.0.0.1:{port}", url
    st = state(h, "c1")
    assert st["ui_url"] == f"http://127.0.0.1:{ui_port}/", st
    assert st["state"] == "running" and st["alive_workers"] == 2 and st["cores"] == 2, st
    # The master's own view, from its UI on loopback.
    master = json.load(urllib.request.urlopen(st["ui_url"] + "json/", timeout=10))
    assert master["url"] == url and master["aliveworkers"] == 2
    assert all(w["host"] == "127.0.0.1" for w in master["workers"])
    r = spark(h, "list")
    assert "c1" in r.stdout and "2/2" in r.stdout

    # A notebook on a kernel generated for this master.
    prefix = tmp_path / "k"
    r = h.run(["kernel", "install-spark", "on-c1", "--master", url, "--executor-memory", "512m",
               "--conf", "spark.ui.enabled=false", "--prefix", prefix])
    assert r.rc == 0, r
    got = run_on_kernel(h, tmp_path, "on-c1", prefix,
                        "print(spark.sparkContext.master)\n"
                        "print(spark.sparkContext.parallelize(range(1000), 4).map(lambda x: 2 * x).sum())")
    assert got[:2] == [url, "999000"]

    # A worker killed with SIGKILL is started again.
    worker = [p["pid"] for p in st["processes"] if p["role"] == "worker"][0]
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: (state(h, "c1") or {}).get("state") == "degraded", timeout=20)
    assert wait_for(lambda: (state(h, "c1") or {}).get("state") == "running", timeout=90)
    st2 = state(h, "c1")
    assert st2["restarts"] >= 1 and st2["alive_workers"] == 2
    # So is the master, on the ports asked for, and the workers find it again.
    master_pid = [p["pid"] for p in st2["processes"] if p["role"] == "master"][0]
    os.kill(master_pid, signal.SIGKILL)
    assert wait_for(lambda: (state(h, "c1") or {}).get("state") != "running", timeout=20)
    assert wait_for(lambda: (state(h, "c1") or {}).get("state") == "running"
                    and state(h, "c1")["alive_workers"] == 2, timeout=120), state(h, "c1")
    st2 = state(h, "c1")
    assert st2["master_url"] == url and st2["ui_url"] == f"http://127.0.0.1:{ui_port}/", st2
    pids = [st2["pid"]] + [p["pid"] for p in st2["processes"]]

    # Up twice is refused; down stops everything.
    r = spark(h, "up", "c1")
    assert r.rc == 5 and "already up" in r.stderr, r
    r = spark(h, "down", "c1")
    assert r.rc == 0, r
    assert not [p for p in pids if alive(p)]
    assert not (h.tmp / "home" / "spark" / "c1" / "state.json").exists()
    r = spark(h, "status", "c1")
    assert r.rc == 3 and "no cluster 'c1' is up" in r.stderr


def test_kill9_of_the_supervisor_leaves_no_jvm(h):
    r = spark(h, "up", "c2")
    assert r.rc == 0, r
    st = state(h, "c2")
    jvms = [p["pid"] for p in st["processes"]]
    assert len(jvms) == 2 and all(alive(p) for p in jvms)
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_for(lambda: not [p for p in jvms if alive(p)], timeout=15), "a JVM outlived its supervisor"
    r = spark(h, "status", "c2")
    assert r.rc == 3


def test_port_in_use(h):
    """A port asked for that something else listens on: exit 8 with the
    port named, nothing started, nothing left."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        p = busy.getsockname()[1]
        for flag in ("--port", "--ui-port"):
            r = spark(h, "up", "px", flag, str(p))
            assert r.rc == 8, r
            assert f"port {p} on 127.0.0.1 ({flag}) is in use" in r.stderr, r.stderr
            assert not (h.tmp / "home" / "spark" / "px" / "state.json").exists()
    r = spark(h, "up", "px", "--port", "7", "--ui-port", "7")
    assert r.rc == 8 and "asked for twice" in r.stderr, r
    r = spark(h, "up", "px", "--port", "70000")
    assert r.rc == 3 and "--port 70000" in r.stderr, r
    assert spark(h, "status", "px").rc == 3


@pytest.mark.parametrize("args,rc,msg,env", [
    (["up", "x", "--worker-memory", "lots"], 3, "--worker-memory lots", None),
    (["up", "x", "--workers", "0"], 3, "--workers 0", None),
    (["up", "../x"], 3, "cluster name '../x'", None),
    (["up"], 2, "which cluster", None),
    (["down", "nope"], 3, "no cluster 'nope' is up", None),
    (["bogus"], 2, "unknown subcommand", None),
    (["up", "x"], 4, "no Java found", {"PATH": "/nonexistent", "JAVA_HOME": ""}),
    (["up", "x", "--spark-home", "/nonexistent"], 4, "--spark-home /nonexistent is not a Spark distribution", None),
    (["up", "x"], 4, "SPARK_HOME /nonexistent is not a Spark distribution", {"SPARK_HOME": "/nonexistent"}),
])
def test_bad_input(h, args, rc, msg, env):
    r = spark(h, *args, env=dict(h.env, **env) if env else None)
    assert r.rc == rc, r
    assert msg in r.stderr, r.stderr


def test_spark_connect_server_and_remote_kernel(h, tmp_path):
    """`up --connect`: a Spark Connect server on the cluster; a kernel made with
    --remote talks to it with SPARK_REMOTE, no JVM in the kernel."""
    r = spark(h, "up", "c3", "--connect", "--worker-memory", "1g")
    assert r.rc == 0, r
    master, remote = r.stdout.split()
    assert master.startswith("spark://127.0.0.1:") and remote.startswith("sc://127.0.0.1:")
    st = state(h, "c3")
    assert st["connect_url"] == remote and st["state"] == "running"
    assert [p["role"] for p in st["processes"]] == ["master", "worker", "connect"]
    # The Connect server is an application of the cluster.
    ui = json.load(urllib.request.urlopen(st["ui_url"] + "json/", timeout=10))
    assert [a["name"] for a in ui["activeapps"]] == ["Spark Connect server"]
    # Its UI is up, reached through the master (the proxy's path): the master's
    # page links to it under /spark/c3/ui/.
    page = urllib.request.urlopen(st["ui_url"], timeout=10).read().decode()
    assert f'href="/spark/c3/ui/proxy/{ui["activeapps"][0]["id"]}"' in page, page

    prefix = tmp_path / "k"
    r = h.run(["kernel", "install-spark", "remote", "--remote", remote, "--prefix", prefix])
    assert r.rc == 0, r
    spec = json.loads((prefix / "share" / "jupyter" / "kernels" / "remote" / "kernel.json").read_text())
    assert spec["env"]["SPARK_REMOTE"] == remote and "PYSPARK_SUBMIT_ARGS" not in spec["env"]
    got = run_on_kernel(h, tmp_path, "remote", prefix,
                        "print(type(spark).__module__)\n"
                        "print(spark.range(1, 101).selectExpr('sum(id) AS s').collect()[0].s)")
    assert got[:2] == ["pyspark.sql.connect.session", "5050"]
    pids = [st["pid"]] + [p["pid"] for p in st["processes"]]
    r = spark(h, "down", "c3")
    assert r.rc == 0, r
    assert not [p for p in pids if alive(p)]


def test_remote_kernel_options_are_checked(h, tmp_path):
    for args, msg in ((["--remote", "http://x:1"], "--remote 'http://x:1'"),
                      (["--remote", "sc://h:15002", "--master", "local[*]"], "takes no --master")):
        r = h.run(["kernel", "install-spark", "k", *args, "--prefix", tmp_path])
        assert r.rc == 3 and msg in r.stderr, r
