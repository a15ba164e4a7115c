"""Spark in flows, with real Spark (pyspark's bundled distribution, Java 17):
an ephemeral 2-worker cluster created for a notebook task and gone after it,
spark_submit batch tasks (exit status, driver log, application id), a named
cluster with its owner, kill -9 of nbhub serve during a Spark task, cancel,
and the faults that must give a clear message on the task run.  The
harness's orphan check runs after each test: every JVM carries the test's
marker in its environment."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, code, code_cells, read_nb, stream_text, wait_for, write_nb
from nbserve import Api, EventStream, Server

pytest.importorskip("pyspark")

SPARK_NB = ("from pyspark.sql import SparkSession\n"
            "spark = SparkSession.builder.getOrCreate()\n"
            "sc = spark.sparkContext\n"
            "print(sc.master)\n"
            "print(sc.parallelize(range(1000), 4).map(lambda x: 2 * x).sum())\n"
            "print(len({w for w in sc.parallelize(range(8), 8).map(lambda _: __import__('os').getpid()).collect()}) >= 1)\n")


def spark_cli(h, *args):
    return h.run(["spark", *args, "--home", h.tmp / "home"], timeout=120)


def task_row(srv, run_id, task):
    return srv.db().execute("SELECT t.* FROM task_runs t JOIN runs r ON r.id = t.run "
                            "WHERE r.id = ? AND t.task = ?", (run_id, task)).fetchone()


def spark_state(srv, run_id, task):
    st, t = srv.api.get(f"/api/v1/runs/{run_id}/tasks/{task}/spark")
    assert st == 200, (st, t)
    return t


def jvms(h):
    """Pids of Java processes of this test (nbhub serve drops NBHUB_TEST_MARKER
    from its tasks' environment; their JUPYTER_RUNTIME_DIR is the test's)."""
    mark = f"JUPYTER_RUNTIME_DIR={h.tmp / 'runtime'}".encode()
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
        if b"java" in cmd.split(b"\0")[0] and mark in env.split(b"\0"):
            out.append(int(pid))
    return out


def test_ephemeral_cluster_for_a_notebook_task(h, tmp_path):
    srv = Server(h)
    write_nb(srv.flows / "count.ipynb", code(SPARK_NB))
    srv.apply("sparky", "owner: admin\n"
                        "tasks:\n"
                        "  count:\n"
                        "    notebook: count.ipynb\n"
                        "    spark: {workers: 2, worker_cores: 1, worker_memory: 512m,\n"
                        "            conf: {spark.executor.memory: 512m}}\n")
    srv.start()
    stream = EventStream(srv.port, srv.api.token)
    # bob, who does not own the flow, opens a stream too: he must see nothing of it.
    srv.api.post("/api/v1/users", {"name": "bob", "password": "pw-123456789"})
    bob = EventStream(srv.port, srv.api.post("/api/v1/users/bob/tokens", {"name": "t"})[1]["token"])
    try:
        rid = srv.trigger("sparky")
        # While it runs: the ephemeral cluster is listed under the task's name.
        def listed():
            r = spark_cli(h, "list", "--json")
            return [c for c in json.loads(r.stdout) if c["name"].startswith("sparky-t")] if r.rc == 0 else []
        assert wait_for(listed, 120, interval=0.5), srv.log()
        cl = listed()[0]
        run = srv.wait_run(rid, timeout=240)
        assert run["state"] == "success", (run, srv.log())
        out = read_nb(srv.home / "runs" / "sparky" / os.listdir(srv.home / "runs" / "sparky")[0] / "count.ipynb")
        lines = stream_text(code_cells(out)[0]).split("\n")
        assert lines[0] == cl["master_url"] and lines[0].startswith("spark://127.0.0.1:"), lines
        assert lines[1] == "999000"
        # The application id on the task run and its final progress, from
        # the driver's event log kept next to the run: both jobs of the
        # notebook (sum, collect), however fast they were.
        row = task_row(srv, rid, "count")
        assert row["spark_app_id"] and row["spark_app_id"].startswith("app-"), dict(row)
        sp = spark_state(srv, rid, "count")
        assert sp["mode"] == "ephemeral" and sp["app_id"] == row["spark_app_id"], sp
        assert sp["progress"]["totals"] == {"jobs": 2, "running": 0, "succeeded": 2, "failed": 0}, sp
        jobs = sp["progress"]["jobs"]
        assert [(j["id"], j["tasks"], j["done"]) for j in jobs] == [(1, 8, 8), (0, 4, 4)], jobs
        assert jobs[1]["name"].startswith("sum at"), jobs
        logs = list((srv.home / "runs" / "sparky").rglob("*.spark-events/" + row["spark_app_id"]))
        assert len(logs) == 1, list((srv.home / "runs" / "sparky").rglob("*"))
        # Progress went out on the event stream while the task ran, as
        # task.spark events without ids (not rows of the events table).
        prog = stream.of("task.spark")
        assert prog, stream.events
        assert all(eid is None and d["run"] == rid and d["task"] == "count" and d["flow"] == "sparky"
                   for _, eid, d in prog), prog
        assert prog[-1][2]["spark"]["mode"] == "ephemeral", prog[-1]
        assert any(d["spark"].get("app_id") for _, _, d in prog), prog
        assert not [e for e in bob.events if e[2].get("flow") == "sparky"], bob.events
        t = [x for x in run["tasks"] if x["name"] == "count"][0]
        assert t["spark_app_id"] == row["spark_app_id"], t
        # After the task: the cluster is gone, no JVM is left.
        assert not listed()
        assert not jvms(h)
        log = (srv.home / "runs" / "sparky").rglob("count.log").__next__().read_text()
        assert "Spark cluster sparky-t" in log and "removed" in log, log
        # Its directory (the JVMs' logs) went with the run; $NBHUB_HOME/spark keeps
        # only clusters that exist.
        # (the flow is admin's: its clusters are ~admin/..., scluster.h)
        assert os.listdir(srv.home / "spark") == ["~admin"], os.listdir(srv.home / "spark")
        assert not [d for d in os.listdir(srv.home / "spark" / "~admin") if d.startswith("sparky-t")]
        kept = spark_state(srv, rid, "count")["cluster_logs"]
        assert kept.endswith("count.spark-cluster") and os.path.exists(os.path.join(kept, "logs", "master.log")), kept
    finally:
        stream.close()
        bob.close()
        srv.stop()


def test_spark_submit_batch_tasks(h, tmp_path):
    srv = Server(h)
    (srv.flows / "job.py").write_text(
        "import sys\n"
        "from pyspark.sql import SparkSession\n"
        "from helper import double\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "n = int(sys.argv[1])\n"
        "print('conf', spark.conf.get('spark.nbhub.test', 'unset'))\n"
        "print('sum', spark.sparkContext.parallelize(range(n), 3).map(double).sum())\n"
        "if sys.argv[2] == 'fail':\n"
        "    raise SystemExit(3)\n"
        "spark.stop()\n")
    (srv.flows / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    srv.apply("batch", "params: {n: 100}\n"
                       "tasks:\n"
                       "  ok:\n"
                       "    spark_submit:\n"
                       "      application: job.py\n"
                       "      args: ['{{ params.n }}', 'ok']\n"
                       "      conf: {spark.nbhub.test: hello}\n"
                       "      py_files: [helper.py]\n"
                       "  bad:\n"
                       "    spark_submit: {application: job.py, args: ['10', 'fail'], py_files: helper.py}\n")
    srv.start()
    try:
        rid = srv.trigger("batch", {"n": 1000})
        run = srv.wait_run(rid, timeout=240)
        assert run["state"] == "failed", run
        ok, bad = task_row(srv, rid, "ok"), task_row(srv, rid, "bad")
        assert ok["state"] == "success" and ok["exit_code"] == 0, dict(ok)
        assert bad["state"] == "failed" and bad["exit_code"] == 3, dict(bad)
        assert "exit code 3" in bad["error"]
        # The driver's output is the task's log; the application id is recorded.
        log = open(ok["log_path"]).read()
        assert "conf hello" in log and "sum 999000" in log, log
        for row in (ok, bad):
            assert row["spark_app_id"] and row["spark_app_id"].startswith("local-"), dict(row)
        sp = spark_state(srv, rid, "ok")
        assert sp["mode"] == "local" and sp["master_url"] == "local[*]", sp
        # Each driver's one job is on record, the failed one's too.
        for name in ("ok", "bad"):
            totals = spark_state(srv, rid, name)["progress"]["totals"]
            assert totals == {"jobs": 1, "running": 0, "succeeded": 1, "failed": 0}, (name, totals)
    finally:
        srv.stop()


def test_named_cluster_through_the_api_with_owners(h, tmp_path):
    srv = Server(h)
    write_nb(srv.flows / "nb.ipynb", code(SPARK_NB))
    go = tmp_path / "go"
    # alice's notebook keeps its application up until the test says go, so
    # its UI can be looked at through the proxy.
    write_nb(srv.flows / "held.ipynb", code(SPARK_NB + "import os, time\n"
                                            f"deadline = time.time() + 180\n"
                                            f"while not os.path.exists({str(go)!r}) and time.time() < deadline:\n"
                                            "    time.sleep(0.2)\n"))
    srv.start()
    try:
        # Users, each with a token (an admin may mint them).
        api = {}
        for u in ("alice", "bob"):
            st, _ = srv.api.post("/api/v1/users", {"name": u, "password": "pw-123456789"})
            assert st == 201, st
            st, t = srv.api.post(f"/api/v1/users/{u}/tokens", {"name": "t"})
            assert st == 201, (st, t)
            api[u] = Api(srv.port, t["token"])
        # alice starts a cluster through the API; it is hers.
        st, c = api["alice"].post("/api/v1/spark/clusters", {"name": "shared", "worker_memory": "512m"})
        assert st == 202 and c["state"] == "starting" and c["owner"] == "alice", (st, c)
        st, c = api["alice"].post("/api/v1/spark/clusters", {"name": "bad name!"})
        assert st == 400, (st, c)
        def running():
            st, c = api["alice"].get("/api/v1/spark/clusters/shared")
            return c if st == 200 and c["state"] == "running" else None
        cl = wait_for(running, 120, interval=0.5)
        assert cl and cl["master_url"].startswith("spark://127.0.0.1:") and cl["alive_workers"] == 1, cl
        url = cl["master_url"]
        # bob neither sees nor stops it; the admin sees it.
        assert api["bob"].get("/api/v1/spark/clusters/shared")[0] == 404
        assert api["bob"].delete("/api/v1/spark/clusters/shared")[0] == 404
        assert api["bob"].get("/api/v1/spark/clusters")[1] == {"clusters": []}
        assert [x["name"] for x in srv.api.get("/api/v1/spark/clusters")[1]["clusters"]] == ["shared"]
        # Names are per user: bob's "shared" would be his own (here over his
        # memory limit, 64 x 1g > 8g: the same answer as for any name).
        st, c = api["bob"].post("/api/v1/spark/clusters", {"name": "shared", "workers": 64})
        assert st == 429 and c["error"]["code"] == "quota" and "alice" not in c["error"]["message"], (st, c)

        srv.apply("mine", "owner: alice\ntasks:\n  a: {notebook: held.ipynb, spark: {cluster: shared}}\n")
        srv.apply("theirs", "owner: bob\ntasks:\n  a: {notebook: nb.ipynb, spark: {cluster: shared}}\n")
        srv.apply("nocluster", "tasks:\n  a: {notebook: nb.ipynb, spark: {cluster: nope}}\n")
        srv.apply("toobig", "owner: alice\ntasks:\n  a: {notebook: nb.ipynb, spark: {cluster: shared, "
                            "conf: {spark.executor.memory: 2g}}}\n")
        os.kill(srv.proc.pid, signal.SIGHUP)
        assert wait_for(lambda: srv.api.get("/api/v1/flows/toobig")[0] == 200, 10)
        a, b, c, d = srv.trigger("mine"), srv.trigger("theirs"), srv.trigger("nocluster"), srv.trigger("toobig")
        spark_ui_through_the_proxy(srv, api, a)
        # The master dies mid-task (kill -9): nbhub restarts it, and the
        # task run says what happened to its application.
        st = json.loads(spark_cli(h, "status", "shared", "--owner", "alice", "--json").stdout)
        os.kill([p["pid"] for p in st["processes"] if p["role"] == "master"][0], signal.SIGKILL)
        said = lambda: "Spark master died" in (spark_state(srv, a, "a").get("message") or "")
        assert wait_for(said, 30, interval=0.5), spark_state(srv, a, "a")
        assert wait_for(lambda: api["alice"].get("/api/v1/spark/clusters/shared")[1]["state"] == "running", 120)
        go.write_text("")
        ra = srv.wait_run(a, timeout=240)
        assert ra["state"] == "success", (ra, srv.log())
        out = open(task_row(srv, a, "a")["output_path"]).read()
        assert url in out
        rb, rc = srv.wait_run(b, timeout=60), srv.wait_run(c, timeout=60)
        assert rb["state"] == "failed" and rc["state"] == "failed"
        eb, ec = task_row(srv, b, "a")["error"], task_row(srv, c, "a")["error"]
        # bob's flow means bob's "shared": he has none (alice's is not named)
        assert "exit code 22" in eb and "'shared' is not up" in eb and "alice" not in eb, eb
        assert "exit code 22" in ec and "'nope' is not up" in ec, ec
        assert srv.wait_run(d, timeout=60)["state"] == "failed"
        ed = task_row(srv, d, "a")["error"]
        assert "exit code 23: the Spark settings do not fit the cluster" in ed and "spark.executor.memory 2g" in ed, ed
        # The long-lived cluster is still up; alice stops it.
        assert spark_cli(h, "status", "shared", "--owner", "alice").rc == 0
        st, c = api["alice"].delete("/api/v1/spark/clusters/shared")
        assert st == 202, (st, c)
        assert wait_for(lambda: api["alice"].get("/api/v1/spark/clusters/shared")[1]["state"] == "stopped", 60)
        assert wait_for(lambda: not jvms(h), 30, interval=0.5)
    finally:
        srv.stop()
        spark_cli(h, "down", "shared", "--owner", "alice")


def spark_ui_through_the_proxy(srv, api, run_id):
    """The cluster's Spark UIs at /spark/shared/ui/: the master's, and the
    running application's through it, for alice and the admin only."""
    alice = api["alice"]
    def app_id():
        try:
            return spark_state(srv, run_id, "a").get("app_id")
        except Exception:
            return None
    app = wait_for(app_id, 180, interval=0.5)
    assert app and app.startswith("app-"), srv.log()
    ui = "/spark/~alice/shared/ui"     # alice's "shared" (names are per user)
    # The task's Spark state and the cluster say where the UIs are.
    sp = spark_state(srv, run_id, "a")
    assert sp["ui_path"] == ui + "/" and sp["app_ui_path"] == f"{ui}/proxy/{app}/", sp
    assert alice.get("/api/v1/spark/clusters/shared")[1]["ui_path"] == ui + "/"
    st, body, hdr = alice.get(ui, raw=True)
    assert st == 302 and hdr["location"] == ui + "/", (st, hdr)
    st, body, hdr = alice.get("/spark/shared/ui/jobs/", raw=True)     # her own "shared"
    assert st == 302 and hdr["location"] == ui + "/jobs/", (st, hdr)
    st, body, hdr = alice.get(ui + "/", raw=True)
    page = body.decode()
    assert st == 200 and hdr["content-type"].startswith("text/html"), (st, hdr, page[:300])
    assert "Spark Master at spark://127.0.0.1:" in page, page[:2000]
    # Spark draws its links for the proxy: nothing points at its own ports.
    assert f'href="{ui}/proxy/{app}"' in page and f'src="{ui}/static/' in page, page
    assert 'href="http' not in page and 'src="http' not in page, page
    # Spark's CSP (a nonce for its own inline scripts) is what the browser gets.
    assert "script-src 'self' 'nonce-" in hdr["content-security-policy"], hdr
    st, body, hdr = alice.get(f"{ui}/static/webui.js", raw=True)
    assert st == 200 and b"function" in body, (st, body[:200])
    # The application's UI, proxied by the master: its redirect comes back
    # under the prefix, its pages and REST API work, its scripts get a CSP
    # built around Spark's nonce (the master drops the driver's header).
    st, body, hdr = alice.get(f"{ui}/proxy/{app}", raw=True)
    assert st == 302 and hdr["location"] == f"{ui}/proxy/{app}/jobs/", (st, hdr)
    st, body, hdr = alice.get(f"{ui}/proxy/{app}/jobs/", raw=True)
    page = body.decode()
    assert st == 200 and "Spark Jobs" in page, (st, page[:500])
    assert f'href="{ui}/proxy/{app}/executors/"' in page, page
    nonce = page.split('<script nonce="', 1)[1].split('"', 1)[0]
    assert f"script-src 'self' 'nonce-{nonce}'" in hdr["content-security-policy"], hdr
    def jobs():
        st, js = alice.get(f"{ui}/proxy/{app}/api/v1/applications/{app}/jobs")
        assert st == 200, (st, js)
        return js if [j["status"] for j in js] == ["SUCCEEDED"] * 2 else None
    assert wait_for(jobs, 120, interval=0.5), alice.get(f"{ui}/proxy/{app}/api/v1/applications/{app}/jobs")
    # Others: the same 404 as no cluster; nobody: 401; only GET passes.
    assert api["bob"].get(ui + "/")[0] == 404
    assert api["bob"].get("/spark/shared/ui/")[0] == 404
    assert api["bob"].get("/spark/nope/ui/")[0] == 404
    assert srv.api.get(ui + "/")[0] == 200
    assert Api(srv.port).get(ui + "/")[0] == 401
    assert alice.post(f"{ui}/proxy/{app}/jobs/job/kill/?id=0", {})[0] == 405


def test_wrong_spark_home_fails_the_task_with_its_reason(h, tmp_path):
    srv = Server(h, env={"SPARK_HOME": str(tmp_path)})
    write_nb(srv.flows / "nb.ipynb", code("print(1)"))
    srv.apply("nohome", "tasks:\n  a: {notebook: nb.ipynb, spark: true}\n")
    srv.start()
    try:
        run = srv.wait_run(srv.trigger("nohome"), timeout=60)
        assert run["state"] == "failed", run
        err = task_row(srv, run["id"], "a")["error"]
        assert "exit code 20" in err and f"SPARK_HOME {tmp_path} is not a Spark distribution" in err, err
        assert not jvms(h)
    finally:
        srv.stop()


def test_cluster_asking_for_too_much_memory(h, tmp_path):
    srv = Server(h)
    write_nb(srv.flows / "nb.ipynb", code("print(1)"))
    srv.apply("big", "tasks:\n  a: {notebook: nb.ipynb, spark: {workers: 4, worker_memory: 4096g}}\n")
    srv.start()
    try:
        run = srv.wait_run(srv.trigger("big"), timeout=60)
        assert run["state"] == "failed"
        err = task_row(srv, run["id"], "a")["error"]
        assert "exit code 21: the Spark cluster did not start" in err and "4 workers x 4096g" in err, err
        assert "MB of memory" in err
    finally:
        srv.stop()


def test_cancel_and_kill9_of_serve_leave_no_jvm(h, tmp_path):
    srv = Server(h)
    write_nb(srv.flows / "slow.ipynb", code("import time\n" + SPARK_NB + "time.sleep(float(secs))\nprint('slept')\n",
                                             ),
             )
    nb = read_nb(srv.flows / "slow.ipynb")
    nb["cells"].insert(0, code("secs = 1", tags=["parameters"]))
    (srv.flows / "slow.ipynb").write_text(json.dumps(nb))
    srv.apply("slow", "params: {secs: 1}\ntasks:\n  a: {notebook: slow.ipynb, parameters: {secs: '{{ params.secs }}'},\n"
                      "      spark: {worker_memory: 512m}}\n")
    srv.start()
    # Cancel while the notebook sleeps on the cluster: the cluster goes too.
    rid = srv.trigger("slow", {"secs": 300})
    assert wait_for(lambda: jvms(h), 120, interval=0.5)
    assert wait_for(lambda: "999000" in (open(task_row(srv, rid, "a")["output_path"]).read()
                                         if task_row(srv, rid, "a")["output_path"] and
                                         os.path.exists(task_row(srv, rid, "a")["output_path"]) else ""), 180)
    st, _ = srv.api.post(f"/api/v1/runs/{rid}/cancel")
    assert st in (200, 202), st
    assert srv.wait_run(rid, timeout=60)["state"] == "cancelled"
    assert wait_for(lambda: not jvms(h), 40, interval=0.5), jvms(h)

    # kill -9 of nbhub serve while a Spark task runs: the task runs on, the
    # restarted daemon picks it up, and when it ends its cluster is gone.
    rid = srv.trigger("slow", {"secs": 15})
    assert wait_for(lambda: len(jvms(h)) >= 3, 120, interval=0.5)   # master, worker, driver
    srv.kill9()
    time.sleep(2)
    assert jvms(h), "the task's cluster must survive a daemon crash while the task runs"
    srv.start()
    run = srv.wait_run(rid, timeout=240)
    assert run["state"] == "success", (run, srv.log())
    assert wait_for(lambda: not jvms(h), 40, interval=0.5), jvms(h)
    srv.stop()


def test_spark_connect_task_progress(h, tmp_path):
    """A notebook task with spark: {cluster, connect: true}: the kernel gets
    SPARK_REMOTE with a session id of nbhub's, and the task's progress is the
    Connect server's jobs of that session only, not other clients'."""
    r = spark_cli(h, "up", "cc", "--connect", "--worker-memory", "1g")
    assert r.rc == 0, r
    remote = r.stdout.split()[1]
    srv = Server(h)
    try:
        # Another client's jobs on the same server first.
        other = tmp_path / "other.py"
        other.write_text("from pyspark.sql import SparkSession\n"
                         f"s = SparkSession.builder.remote({remote!r}).getOrCreate()\n"
                         "print(s.range(0, 50).count())\n")
        out = subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(other)],
                             capture_output=True, text=True, timeout=180, env=h.env)
        assert out.returncode == 0 and "50" in out.stdout, out.stderr[-2000:]
        write_nb(srv.flows / "remote.ipynb", code(
            "from pyspark.sql import SparkSession\n"
            "spark = SparkSession.builder.getOrCreate()\n"
            "print(type(spark).__module__)\n"
            "print(spark.range(1, 101).selectExpr('sum(id) AS s').collect()[0].s)\n"))
        srv.apply("remote", "tasks:\n  q: {notebook: remote.ipynb, spark: {cluster: cc, connect: true}}\n")
        srv.start()
        rid = srv.trigger("remote")
        run = srv.wait_run(rid, timeout=240)
        assert run["state"] == "success", (run, srv.log())
        nb = read_nb(task_row(srv, rid, "q")["output_path"])
        assert stream_text(code_cells(nb)[0]).split("\n")[:2] == ["pyspark.sql.connect.session", "5050"]
        sp = spark_state(srv, rid, "q")
        assert len(sp["session_id"]) == 36 and sp["app_id"].startswith("app-"), sp
        assert sp["app_ui_path"] == f"/spark/cc/ui/proxy/{sp['app_id']}/", sp
        jobs = sp["progress"]["jobs"]
        assert jobs and all(j["status"] == "SUCCEEDED" for j in jobs), sp
        # The other client's job came first (id 0 and up): none of them is the task's.
        st, all_jobs = srv.api.get(f"/spark/cc/ui/proxy/{sp['app_id']}/api/v1/applications/{sp['app_id']}/jobs")
        assert st == 200, (st, all_jobs)
        theirs = [j["jobId"] for j in all_jobs if not any(sp["session_id"] in t for t in j.get("jobTags", []))]
        assert theirs and not set(theirs) & {j["id"] for j in jobs}, (theirs, jobs)
        assert sp["progress"]["totals"]["jobs"] == len(all_jobs) - len(theirs), (sp, all_jobs)
    finally:
        srv.stop()
        spark_cli(h, "down", "cc")
    assert wait_for(lambda: not jvms(h), 30, interval=0.5)
