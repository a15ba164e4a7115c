"""Spark clusters under attack from ordinary users (issue 16): names are per user
and no answer says whether another user has one; a user's clusters are capped in
number and in memory (nbhub.yaml spark:); a cluster is started once however many
requests race for its name (one supervisor per directory).  The first test needs
no JVM; the second starts two real clusters (pyspark's Spark, Java 17) and
keeps everything else it checks on them."""

import json
import os
import signal
import threading
import time

import pytest

from conftest import wait_for
from nbserve import Api, Server

pytest.importorskip("pyspark")

LIMITS = "spark: {max_clusters_per_user: 1, max_memory_per_user: 1g}\n"


def users(srv, *names):
    api = {}
    for u in names:
        st, _ = srv.api.post("/api/v1/users", {"name": u, "password": "pw-123456789"})
        assert st == 201, st
        st, t = srv.api.post(f"/api/v1/users/{u}/tokens", {"name": "t"})
        assert st == 201, (st, t)
        api[u] = Api(srv.port, t["token"])
    return api


def supervisors(home):
    """Pids of `nbhub __spark-supervise` processes of clusters under home."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"__spark-supervise" in argv and any(a.startswith(str(home).encode()) for a in argv):
            out.append(int(pid))
    return out


def test_limits_and_names_need_no_cluster(h, tmp_path):
    """No JVM here: SPARK_HOME points nowhere, so a `spark up` that got through
    would fail at once (exit 4) instead of starting one."""
    srv = Server(h, env={"SPARK_HOME": str(tmp_path / "no-spark")})
    (srv.home / "nbhub.yaml").write_text(LIMITS)
    # alice's clusters, in the layout of before per-user names and in the new one.
    for rel, cfg in (("spark/shared", {"name": "shared", "owner": "alice", "workers": 1, "worker_memory": "512m"}),
                     ("spark/~alice/dev", {"name": "dev", "owner": "alice", "workers": 1, "worker_memory": "512m"})):
        (srv.home / rel).mkdir(parents=True)
        (srv.home / rel / "config.json").write_text(json.dumps(cfg))
    srv.start()
    try:
        api = users(srv, "alice", "bob")
        # bob asks for alice's names and for one nobody has, over his memory
        # limit (3 x 512m > 1g): the same answer for all, never "exists".
        big = {"workers": 3, "worker_memory": "512m"}
        answers = [api["bob"].post("/api/v1/spark/clusters", dict(big, name=n)) for n in ("shared", "dev", "fresh")]
        assert [a[0] for a in answers] == [429, 429, 429], answers
        assert len({json.dumps(a[1]) for a in answers}) == 1, answers
        assert answers[0][1]["error"]["code"] == "quota" and "max_memory_per_user" in answers[0][1]["error"]["message"], answers
        assert "alice" not in json.dumps(answers)
        # Within his limit, his "shared" is his own: started (and failed: no Spark).
        st, c = api["bob"].post("/api/v1/spark/clusters", {"name": "shared", "worker_memory": "512m"})
        assert st == 202 and c["owner"] == "bob" and c["ui_path"] == "/spark/~bob/shared/ui/", (st, c)
        assert wait_for(lambda: api["bob"].get("/api/v1/spark/clusters/shared")[1].get("state") == "stopped", 30)
        assert "is not a Spark distribution" in (srv.home / "spark" / "~bob" / "shared" / "api.log").read_text()
        # alice's are untouched and still hers; bob sees none of them.
        st, c = api["alice"].get("/api/v1/spark/clusters/shared")
        assert st == 200 and c["owner"] == "alice" and c["ui_path"] == "/spark/shared/ui/", (st, c)
        assert api["alice"].get("/api/v1/spark/clusters/dev")[1]["owner"] == "alice"
        assert api["bob"].get("/api/v1/spark/clusters/dev")[0] == 404
        assert api["bob"].get("/api/v1/spark/clusters/dev?owner=alice")[0] == 404
        assert api["bob"].get("/spark/~alice/dev/ui/")[0] == 404
        assert srv.api.get("/api/v1/spark/clusters/dev?owner=alice")[1]["owner"] == "alice"
        # Admins are not limited (the host's memory still is: `spark up` refuses).
        st, c = srv.api.post("/api/v1/spark/clusters", {"name": "huge", "worker_memory": "4096g"})
        assert st == 202 and c["owner"] == "admin", (st, c)
        assert wait_for(lambda: srv.api.get("/api/v1/spark/clusters/huge")[1].get("state") == "stopped", 30)
        # A bad limit in nbhub.yaml is refused with its place.
        (tmp_path / "bad.yaml").write_text("spark: {max_clusters_per_user: 0, max_memory: 2g}\n")
        r = h.run(["serve", "--config", tmp_path / "bad.yaml", "--home", tmp_path / "h2", "--listen", "127.0.0.1:0"])
        assert r.rc != 0 and "max_clusters_per_user' must be a positive integer" in r.stderr, r
        assert "unknown key 'spark.max_memory'" in r.stderr, r
    finally:
        srv.stop()


def test_memory_size_overflow_is_refused(h, tmp_path):
    """18014398509481985g is 2^54 + 1 GiB: in megabytes it overflowed a long
    (undefined; the UBSan build died on it) and wrapped to 1024, so a user
    under a 1g quota passed it and got a cluster started with that size.
    Refused now as any size with more digits than scluster_memory_ok takes (under 1 PiB).  No JVM."""
    srv = Server(h, env={"SPARK_HOME": str(tmp_path / "no-spark")})
    (srv.home / "nbhub.yaml").write_text(LIMITS)
    srv.start()
    try:
        bob = users(srv, "bob")["bob"]
        for mem in ("18014398509481985g", "17592186044417t", "99999999999999999999m"):
            st, c = bob.post("/api/v1/spark/clusters", {"name": "big", "worker_memory": mem})
            assert st == 400 and "worker_memory" in c["error"]["message"], (mem, st, c)
        assert not (srv.home / "spark" / "~bob" / "big").exists()
        assert srv.proc.poll() is None
    finally:
        srv.stop()


def test_two_users_one_name_one_supervisor_each(h, tmp_path):
    srv = Server(h)
    (srv.home / "nbhub.yaml").write_text(LIMITS)
    srv.start()
    cli = lambda *a: h.run(["spark", *a, "--home", srv.home], timeout=240)
    try:
        api = users(srv, "alice", "bob", "carol")
        # Eight requests for alice's "dev" at once, and two `nbhub spark up`
        # of the same cluster from the command line: one start wins.
        body = {"name": "dev", "worker_memory": "512m"}
        barrier = threading.Barrier(8)
        answers = []

        def create():
            barrier.wait()
            answers.append(api["alice"].post("/api/v1/spark/clusters", body))
        threads = [threading.Thread(target=create) for _ in range(8)]
        ups = [h.popen(["spark", "up", "dev", "--owner", "alice", "--worker-memory", "512m", "--home", srv.home])
               for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = sorted(a[0] for a in answers)
        ups = [h.finish(p, timeout=240) for p in ups]
        winners = codes.count(202) + sum(1 for r in ups if r.rc == 0)
        assert winners == 1 and codes.count(409) + codes.count(202) == 8, (codes, ups)
        assert all(r.rc in (0, 5) for r in ups), ups
        for a in answers:
            if a[0] == 409:
                assert a[1]["error"]["message"] == "you have a cluster of that name starting or up", a

        def running(who):
            st, c = api[who].get("/api/v1/spark/clusters/dev")
            return c if st == 200 and c["state"] == "running" else None
        alice = wait_for(lambda: running("alice"), 180, interval=0.5)
        assert alice and alice["owner"] == "alice", api["alice"].get("/api/v1/spark/clusters/dev")
        # One supervisor, and it stays one (a loser would be restarting by now).
        time.sleep(3)
        assert len(supervisors(srv.home)) == 1, supervisors(srv.home)

        # bob's "dev" is his own cluster, not a conflict with alice's.
        st, c = api["bob"].post("/api/v1/spark/clusters", body)
        assert st == 202 and c["owner"] == "bob", (st, c)
        bob = wait_for(lambda: running("bob"), 180, interval=0.5)
        assert bob and bob["master_url"] != alice["master_url"], (alice, bob)
        assert len(supervisors(srv.home)) == 2, supervisors(srv.home)
        assert [(x["name"], x["owner"]) for x in api["alice"].get("/api/v1/spark/clusters")[1]["clusters"]] == \
            [("dev", "alice")]
        assert [(x["name"], x["owner"]) for x in api["bob"].get("/api/v1/spark/clusters")[1]["clusters"]] == \
            [("dev", "bob")]
        assert sorted(x["owner"] for x in srv.api.get("/api/v1/spark/clusters")[1]["clusters"]) == ["alice", "bob"]
        assert srv.api.get("/api/v1/spark/clusters/dev?owner=bob")[1]["master_url"] == bob["master_url"]
        assert srv.api.get("/api/v1/spark/clusters/dev")[0] == 404    # the admin has none, nor the operator
        assert api["carol"].get("/api/v1/spark/clusters/dev")[0] == 404

        # Limits: alice has one cluster, her most; carol asks for too much memory.
        st, c = api["alice"].post("/api/v1/spark/clusters", {"name": "dev2", "worker_memory": "256m"})
        assert st == 429 and "max_clusters_per_user" in c["error"]["message"], (st, c)
        st, c = api["carol"].post("/api/v1/spark/clusters", {"name": "dev", "worker_memory": "2g"})
        assert st == 429 and "max_memory_per_user" in c["error"]["message"], (st, c)

        # The UIs: each cluster's own path, with the owner in it (its links
        # are drawn for it); /spark/dev/ui/ is the caller's own.
        st, body_, hdr = api["alice"].get("/spark/dev/ui/?x=1", raw=True)
        assert st == 302 and hdr["location"] == "/spark/~alice/dev/ui/?x=1", (st, hdr)
        st, page, hdr = api["alice"].get("/spark/~alice/dev/ui/", raw=True)
        assert st == 200 and alice["master_url"].encode() in page, (st, page[:300])
        st, page, hdr = srv.api.get("/spark/~bob/dev/ui/", raw=True)
        assert st == 200 and bob["master_url"].encode() in page and b"/spark/~bob/dev/ui/" in page, (st, page[:300])
        assert api["bob"].get("/spark/~alice/dev/ui/")[0] == 404
        assert api["carol"].get("/spark/dev/ui/")[0] == 404
        assert srv.api.get("/spark/dev/ui/")[0] == 404

        # Flows: spark: {cluster: dev} is the flow owner's dev.
        show = 'command: ["sh", "-c", "echo $PYSPARK_SUBMIT_ARGS"]'
        for who in ("alice", "bob", "carol"):
            srv.apply(f"f-{who}", f"owner: {who}\ntasks:\n  a: {{{show}, spark: {{cluster: dev}}}}\n")
        os.kill(srv.proc.pid, signal.SIGHUP)
        assert wait_for(lambda: srv.api.get("/api/v1/flows/f-carol")[0] == 200, 10)
        runs = {who: srv.trigger(f"f-{who}") for who in ("alice", "bob", "carol")}
        for who, master in (("alice", alice["master_url"]), ("bob", bob["master_url"])):
            r = srv.wait_run(runs[who], timeout=120)
            row = srv.db().execute("SELECT t.* FROM task_runs t WHERE t.run = ?", (runs[who],)).fetchone()
            assert r["state"] == "success", (r, row["error"])
            assert f"--master {master} " in open(row["log_path"]).read()
        r = srv.wait_run(runs["carol"], timeout=120)
        err = srv.db().execute("SELECT error FROM task_runs WHERE run = ?", (runs["carol"],)).fetchone()[0]
        assert r["state"] == "failed" and "exit code 22" in err and "'dev' is not up" in err, err
        assert "alice" not in err and "bob" not in err, err

        # The command line: every owner's in list, a user's by --owner.
        r = cli("list")
        assert r.rc == 0 and "alice" in r.stdout and "bob" in r.stdout, r
        r = cli("status", "dev", "--owner", "bob", "--json")
        assert r.rc == 0 and json.loads(r.stdout)["master_url"] == bob["master_url"], r
        assert cli("status", "dev").rc == 3          # the operator has no "dev"
        r = cli("up", "dev", "--owner", "alice")
        assert r.rc == 5, r

        for who in ("alice", "bob"):
            assert api[who].delete("/api/v1/spark/clusters/dev")[0] == 202
        assert wait_for(lambda: not supervisors(srv.home), 60, interval=0.5), supervisors(srv.home)
        assert api["alice"].get("/api/v1/spark/clusters/dev")[1]["state"] == "stopped"
    finally:
        srv.stop()
        for who in ("alice", "bob"):
            cli("down", "dev", "--owner", who)


def test_cluster_state_files_a_user_can_replace_neither_block_nor_leak(h, tmp_path):
    """Under isolation: system a user's cluster directory (spark/~USER/NAME/) is
    their Unix account's, so code they run can replace its state.json and
    config.json.  A FIFO there used to block the server's listing (a plain
    json_load_file waits for a writer), and a link to a root-only JSON file was
    read as root.  Now neither is followed: the listing answers, without it."""
    secret = tmp_path / "root-only.json"
    secret.write_text(json.dumps({"name": "TOP-SECRET", "owner": "alice", "workers": 1, "worker_memory": "512m"}))
    secret.chmod(0o600)
    srv = Server(h, env={"SPARK_HOME": str(tmp_path / "no-spark")})
    d = srv.home / "spark" / "~alice" / "x"
    d.mkdir(parents=True)
    os.symlink(secret, d / "config.json")
    os.mkfifo(d / "state.json")
    d2 = srv.home / "spark" / "~alice" / "y"
    d2.mkdir(parents=True)
    (d2 / "config.json").write_text(json.dumps({"name": "y", "owner": "alice", "workers": 1, "worker_memory": "512m"}))
    os.mkfifo(d2 / "state.json")
    srv.start()
    try:
        api = users(srv, "alice")
        t0 = time.monotonic()
        st, body = api["alice"].get("/api/v1/spark/clusters")
        assert st == 200, (st, body)
        assert time.monotonic() - t0 < 5
        assert "TOP-SECRET" not in json.dumps(body), body
        st, c = api["alice"].get("/api/v1/spark/clusters/y")
        assert st == 200 and c.get("state") != "up", (st, c)
        assert srv.api.get("/healthz")[0] == 200      # the loop is not stuck
    finally:
        srv.stop()
