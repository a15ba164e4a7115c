"""Livy sessions under isolation: system (each kernel runs as its owner's
Unix account, like flow tasks and hub servers) and session ids that are
never handed out twice (docs/livy.md)."""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import wait_for
from hubserve import HubServer, hub_harness
from test_isolation import _procs_of

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation: system needs root")


# ---- ids -------------------------------------------------------------------------------------

def test_session_ids_are_never_reused(tmp_path_factory):
    """A deleted session's id used to go to the next session (SQLite's
    max(rowid)+1), so a late event of the old kernel could reach the new
    session.  Ids only grow, across deletes, the retain pruning and restarts.
    The kernel spec does not exist: each session ends in error at once, which
    is all an id needs."""
    h = hub_harness(tmp_path_factory, "livyids")
    hs = HubServer(h, config="livy:\n  kernel: nbhub-no-such-kernel\n").start()
    try:
        a = hs.apis["alice"]
        ids = []
        for _ in range(2):
            st, s = a.post("/livy/sessions", {"kind": "pyspark"})
            assert st == 201, (st, s)
            ids.append(s["id"])
            st, body = a.delete(f"/livy/sessions/{s['id']}")
            assert st == 200, (st, body)
        assert ids == [1, 2], ids
        hs.restart()
        st, s = a.post("/livy/sessions", {"kind": "pyspark"})
        assert st == 201 and s["id"] == 3, (st, s)
        # the table alone would say 3 now; the mark says so even with no row
        a.delete("/livy/sessions/3")
        hs.restart(kill9=True)
        st, s = a.post("/livy/sessions", {"kind": "pyspark"})
        assert st == 201 and s["id"] == 4, (st, s)
        a.delete("/livy/sessions/4")
        # a home from before the mark: the session directories on disk count
        hs.stop()
        (hs.srv.home / "livy" / "session-id").unlink()
        (hs.srv.home / "livy" / "sessions" / "9").mkdir(parents=True, exist_ok=True)
        hs.start()
        st, s = a.post("/livy/sessions", {"kind": "pyspark"})
        assert st == 201 and s["id"] == 10, (st, s)
        a.delete("/livy/sessions/10")
    finally:
        hs.stop()
        h.cleanup()


def _wait_state(api, path, states, timeout, every):
    """The Livy object at path once its state is one of states (asserted)."""
    last = {}

    def ok():
        nonlocal last
        st, last = api.get(path)
        return st == 200 and last["state"] in states
    assert wait_for(ok, timeout, every), last
    return last


def _batch_end(api, bid, timeout=60):
    return _wait_state(api, f"/livy/batches/{bid}", ("success", "dead", "error", "killed"), timeout, 0.2)


def _batch_log(api, bid):
    st, body = api.get(f"/livy/batches/{bid}/log?from=0&size=-1")
    assert st == 200, (st, body)
    return "\n".join(body["log"])


def test_batch_with_a_missing_file_is_refused(tmp_path_factory):
    """POST /batches naming a file that is not in the user's workspace freed the path twice
    (api_livy_batches.c batch_path): glibc aborted nbhub serve, any user could stop it.  Now it
    is Livy's 400 with why, and the server goes on."""
    h = hub_harness(tmp_path_factory, "livynofile")
    hs = HubServer(h, config="livy: {}\n", users=("bob",)).start()
    try:
        b = hs.apis["bob"]
        for f in ("no-such-job.py", "~/sub/no-such-job.py", "file:no-such-job.py"):
            st, body = b.post("/livy/batches", {"file": f})
            assert st == 400 and "No such file" in body["msg"], (f, st, body)
        st, body = b.get("/livy/batches")
        assert st == 200 and body["total"] == 0, (st, body)
        assert hs.srv.proc.poll() is None
    finally:
        hs.stop()
        h.cleanup()


def test_batch_ids_are_never_reused(tmp_path_factory):
    """A batch's row goes only with its user (DELETE /batches/ID keeps it, killed), and then
    SQLite's max(rowid)+1 handed its id to the next batch, someone else's: a client polling
    the old id saw the new batch, and the new batch wrote into the old one's directory
    (livy/batches/ID/: its log, status.json and spark.json), so its log began with the old
    batch's.  Batch ids come from the sessions' high-water mark now, across restarts (clean
    and kill -9) and a lost mark (the directories count)."""
    h = hub_harness(tmp_path_factory, "livybids")
    hs = HubServer(h, config="livy: {}\n", users=("bob", "carol", "dave")).start()
    try:
        b = hs.apis["bob"]
        for u in ("bob", "carol", "dave"):
            ws = hs.srv.home / "workspaces" / u
            ws.mkdir(parents=True, exist_ok=True)
            # not Python: spark-submit fails at once, which is all an id needs
            (ws / f"{u}-secret-job.py").write_text("this is not python\n")
            (ws / "bob-job.py").write_text("this is not python\n")

        def gone_user_batch(user):
            st, one = hs.apis[user].post("/livy/batches", {"file": f"{user}-secret-job.py"})
            assert st == 201, (st, one)
            _batch_end(hs.apis[user], one["id"])
            assert f"{user}-secret-job.py" in _batch_log(hs.apis[user], one["id"])
            st, body = hs.api.delete(f"/hub/api/users/{user}")
            assert st == 204, (st, body)
            return one["id"]

        old = gone_user_batch("carol")
        st, new = b.post("/livy/batches", {"file": "bob-job.py"})
        assert st == 201, (st, new)
        assert new["id"] > old, (old, new)
        _batch_end(b, new["id"])
        assert "carol-secret-job.py" not in _batch_log(b, new["id"])
        # the mark outlives a restart, clean or not
        old = gone_user_batch("dave")
        hs.restart()
        st, new = b.post("/livy/batches", {"file": "bob-job.py"})
        assert st == 201 and new["id"] == old + 1, (old, new)
        _batch_end(b, new["id"])
        hs.restart(kill9=True)
        st, nxt = b.post("/livy/batches", {"file": "bob-job.py"})
        assert st == 201 and nxt["id"] == new["id"] + 1, (new, nxt)
        _batch_end(b, nxt["id"])
        # a home from before the mark: the batch directories on disk count
        hs.stop()
        (hs.srv.home / "livy" / "batch-id").unlink()
        (hs.srv.home / "livy" / "batches" / "20").mkdir(parents=True, exist_ok=True)
        hs.start()
        st, new = b.post("/livy/batches", {"file": "bob-job.py"})
        assert st == 201 and new["id"] == 21, (st, new)
        _batch_end(b, new["id"])
        # and session ids count apart from batch ids
        assert not (hs.srv.home / "livy" / "session-id").exists()
    finally:
        hs.stop()
        h.cleanup()


# ---- isolation: system -----------------------------------------------------------------------

# Unix accounts are the machine's: two runs at once (parallel CI jobs, several checkouts) must
# not share them, or one run's teardown kills the other's kernels.
ALICE, BOB = f"livya{os.getpid()}", f"livyb{os.getpid()}"


def _account(user):
    try:
        return pwd.getpwnam(f"nbhub-{user}")
    except KeyError:
        return None


@pytest.fixture(scope="module")
def system_livy(tmp_path_factory):
    """nbhub serve as root under isolation: system with a Livy kernel every
    account can run: Debian's python3 and ipykernel (the test .venv's
    interpreter lives below /root, 0700) with the .venv's pyspark and py4j
    on PYTHONPATH through a directory of links; batches find Spark through
    SPARK_HOME, the .venv's pyspark."""
    pytest.importorskip("pyspark")
    if os.geteuid() != 0:
        pytest.skip("isolation: system needs root")
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    home = Path(tempfile.mkdtemp(prefix="nbhub-livysys-", dir="/tmp"))
    os.chmod(home, 0o711)
    pp = home / "pp"
    pp.mkdir()
    for m in ("pyspark", "py4j"):
        (pp / m).symlink_to(site / m)
    spec = home / "jupyter" / "kernels" / "syspy"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        '{"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
        f'"env": {{"PYTHONPATH": "{pp}"}}, "display_name": "System PySpark", "language": "python"}}')
    for d in (pp, home / "jupyter", home / "jupyter" / "kernels", spec):
        os.chmod(d, 0o755)
    os.chmod(spec / "kernel.json", 0o644)
    h = hub_harness(tmp_path_factory, "livysys")
    config = ("isolation: system\ncreate_system_users: true\n"
              "livy:\n  kernel: syspy\n  master: 'local[1]'\n"
              "  conf: {spark.sql.shuffle.partitions: '1', spark.driver.memory: 512m}\n")
    hs = HubServer(h, config=config, users=(ALICE, BOB), home=home,
                   env={"NBHUB_ISOLATION": "", "JUPYTER_PATH": str(home / "jupyter"),
                        # batches: spark-submit as the account (the .venv's interpreter is not its)
                        "SPARK_HOME": str(site / "pyspark")}).start()
    yield hs
    st, lst = hs.api.get("/livy/sessions?size=1000")
    for s in lst.get("sessions", []):
        hs.api.delete(f"/livy/sessions/{s['id']}")
    for u in (ALICE, BOB):
        a = _account(u)
        if a:
            wait_for(lambda: not _procs_of(a.pw_uid), 30, 0.2)
    hs.stop()
    for u in (ALICE, BOB):
        a = _account(u)
        if a:
            for pid, _ in _procs_of(a.pw_uid):
                os.kill(pid, 9)
            subprocess.run(["userdel", "-r", f"nbhub-{u}"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
    h.cleanup()


def _wait_idle(api, sid, timeout=240):
    last = _wait_state(api, f"/livy/sessions/{sid}", ("idle", "error", "dead"), timeout, 0.3)
    assert last["state"] == "idle", "\n".join([last["state"]] + (last.get("log") or []))
    return last


def _run(api, sid, code, timeout=120):
    st, s = api.post(f"/livy/sessions/{sid}/statements", {"code": code})
    assert st == 201, (st, s)
    return _wait_state(api, f"/livy/sessions/{sid}/statements/{s['id']}", ("available", "error", "cancelled"),
                       timeout, 0.1)


def _row(hs, sid):
    with hs.db() as c:
        return dict(c.execute("SELECT * FROM livy_sessions WHERE id = ?", (sid,)).fetchone())


def _text(r):
    assert r["state"] == "available" and r["output"]["status"] == "ok", r
    return r["output"]["data"]["text/plain"]


@needs_root
def test_session_runs_as_its_owner_and_others_cannot_read_it(system_livy):
    """alice's session's kernel (and its Spark JVM) run as nbhub-livya, in
    her home, in her cgroup; a session an admin starts with proxyUser livyb
    runs as nbhub-livyb, whose code cannot read alice's connection file,
    journal, log or event log; the sessions survive a restart of nbhub serve
    (adopted by pid + start time); delete leaves no process of alice's."""
    hs = system_livy
    a = hs.apis[ALICE]
    st, s = a.post("/livy/sessions", {"kind": "pyspark"})
    assert st == 201, (st, s, hs.log())
    sid = s["id"]
    st, p = hs.api.post("/livy/sessions", {"kind": "pyspark", "proxyUser": BOB})
    assert st == 201, (st, p)
    pid_b = p["id"]
    _wait_idle(a, sid)
    _wait_idle(hs.api, pid_b)
    acct = _account(ALICE)
    assert acct, "nbhub-livya was not created"
    r = _run(a, sid, "import os, pwd\npwd.getpwuid(os.getuid()).pw_name, os.getcwd()\n")
    assert _text(r) == repr((f"nbhub-{ALICE}", acct.pw_dir)), r
    r = _run(a, sid, "spark.range(100).count()\n")
    assert _text(r).split()[-1] == "100", r   # (Spark's console progress may come first)
    row = _row(hs, sid)
    procs = _procs_of(acct.pw_uid)
    assert any(pid == row["pid"] for pid, _ in procs), (row, procs)
    jvms = [pid for pid, cmd in procs if "java" in cmd]
    assert jvms, procs
    cgroups = re.search(r'msg="isolation" mode=system cgroups=(v1|v2)', hs.srv.log_path.read_text()) is not None
    if cgroups:
        for pid in jvms + [row["pid"]]:
            cg = Path(f"/proc/{pid}/cgroup").read_text()
            assert f"nbhub/u-nbhub-{ALICE}/livy-{sid}" in cg, cg
    # the daemon's environment stays out of the kernel
    env = Path(f"/proc/{row['pid']}/environ").read_bytes()
    assert b"NBHUB_ADMIN_PASSWORD_FILE" not in env, env
    conn = Path(row["kernel_conn"])
    assert conn.parent.stat().st_uid == acct.pw_uid and conn.parent.stat().st_mode & 0o777 == 0o700
    sdir = Path(row["log_path"]).parent
    # proxyUser: an admin's session runs as livyb's account, which reads nothing of alice's
    r = _run(hs.api, pid_b, "import os, pwd\npwd.getpwuid(os.getuid()).pw_name\n")
    assert _text(r) == repr(f"nbhub-{BOB}"), r
    probe = ("import os\nout = []\n"
             f"for p in {[str(conn), str(conn.parent), str(sdir / 'kernel.log'), str(sdir / 'journal.jsonl'), str(sdir / 'events')]!r}:\n"
             "    try:\n"
             "        (os.listdir if os.path.isdir(p) else (lambda q: open(q).read()))(p)\n"
             "        out.append('READ ' + p)\n"
             "    except OSError as e:\n"
             "        out.append(type(e).__name__)\n"
             "out\n")
    r = _run(hs.api, pid_b, probe)
    assert "READ" not in _text(r) and _text(r).count("PermissionError") == 5, r
    # adopted after a restart, still alice's, still working
    hs.restart()
    r = _run(a, sid, "pwd.getpwuid(os.getuid()).pw_name\n")
    assert _text(r) == repr(f"nbhub-{ALICE}"), r
    assert _row(hs, sid)["pid"] == row["pid"]
    # delete: nothing of alice's is left, the connection directory is gone
    st, body = a.delete(f"/livy/sessions/{sid}")
    assert st == 200, (st, body)
    assert wait_for(lambda: not _procs_of(acct.pw_uid), 30, 0.2), _procs_of(acct.pw_uid)
    assert not conn.parent.exists()
    leaf = f"nbhub/u-nbhub-{ALICE}/livy-{sid}"
    assert not list(Path("/sys/fs/cgroup").glob(leaf)) and not list(Path("/sys/fs/cgroup").glob(f"*/{leaf}"))
    hs.api.delete(f"/livy/sessions/{pid_b}")


# ---- the connection file after a restart -------------------------------------------------------

def _as_account(user, *argv):
    """Run argv as the session account of nbhub user `user` (its files are the account's to
    change: this is what code in the session can do)."""
    a = _account(user)
    assert a, f"no account for {user}"
    r = subprocess.run(list(argv), user=a.pw_uid, group=a.pw_gid, extra_groups=[], cwd="/",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (argv, r.stdout, r.stderr)


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _session(api, sid):
    st, s = api.get(f"/livy/sessions/{sid}")
    assert st == 200, (st, s)
    return s


@needs_root
def test_restart_refuses_a_link_to_another_users_connection_file(system_livy):
    """A session's connection file is in a directory of its account's, so code in alice's
    session can replace it while nbhub is down.  A restarted nbhub used to read it as root,
    following a symlink: pointed at bob's connection file, alice's session was adopted onto
    bob's kernel and her next statement ran as bob.  Now the file must be a regular file of
    alice's account with one link: her session ends (dead, with why) and its kernel is stopped;
    bob's session is untouched."""
    hs = system_livy
    a = hs.apis[ALICE]
    st, s = a.post("/livy/sessions", {"kind": "pyspark"})
    assert st == 201, (st, s)
    sid = s["id"]
    st, p = hs.api.post("/livy/sessions", {"kind": "pyspark", "proxyUser": BOB})
    assert st == 201, (st, p)
    bid = p["id"]
    _wait_idle(a, sid)
    _wait_idle(hs.api, bid)
    mine, bobs = _row(hs, sid), _row(hs, bid)
    hs.stop()
    _as_account(ALICE, "ln", "-sf", bobs["kernel_conn"], mine["kernel_conn"])
    hs.start()
    s = _session(a, sid)
    if s["state"] == "idle":   # what it did: alice's statements ran in bob's kernel
        r = _run(a, sid, "import os, pwd\npwd.getpwuid(os.getuid()).pw_name\n")
        raise AssertionError(f"alice's session was adopted onto another kernel; it runs as {_text(r)}")
    assert s["state"] == "dead", s
    assert any("connection file" in line and "symbolic link" in line for line in s["log"]), s["log"]
    assert wait_for(lambda: not _alive(mine["pid"]), 30, 0.2), "alice's kernel was left running"
    assert _alive(bobs["pid"])
    r = _run(hs.api, bid, "import os, pwd\npwd.getpwuid(os.getuid()).pw_name\n")
    assert _text(r) == repr(f"nbhub-{BOB}"), r
    hs.api.delete(f"/livy/sessions/{bid}")
    a.delete(f"/livy/sessions/{sid}")


@needs_root
def test_restart_is_not_stopped_by_a_fifo_or_a_forged_connection_file(system_livy):
    """The same account can put a FIFO where its connection file was (nbhub's read blocked
    its start for good) or write a file of its own that names sockets elsewhere.  nbhub
    starts anyway, and each of those sessions ends with why."""
    hs = system_livy
    a = hs.apis[ALICE]
    sids = []
    for _ in range(2):
        st, s = a.post("/livy/sessions", {"kind": "pyspark"})
        assert st == 201, (st, s)
        sids.append(s["id"])
    for sid in sids:
        _wait_idle(a, sid)
    fifo, forged = (_row(hs, sid) for sid in sids)
    hs.stop()
    _as_account(ALICE, "sh", "-c", 'rm -f "$1" && mkfifo "$1"', "sh", fifo["kernel_conn"])
    text = Path(forged["kernel_conn"]).read_text().replace(str(Path(forged["kernel_conn"]).parent), "/tmp/elsewhere")
    _as_account(ALICE, "sh", "-c", 'printf %s "$2" > "$1.new" && mv "$1.new" "$1"', "sh",
                forged["kernel_conn"], text)
    t0 = time.monotonic()
    hs.start(timeout=60)
    assert time.monotonic() - t0 < 30, "nbhub serve took long to start"
    for row, why in ((fifo, "not a regular file"), (forged, "sockets are elsewhere")):
        s = _session(a, row["id"])
        assert s["state"] == "dead", s
        assert any(why in line for line in s["log"]), (why, s["log"])
        assert wait_for(lambda: not _alive(row["pid"]), 30, 0.2), "a refused kernel was left running"
    for sid in sids:
        a.delete(f"/livy/sessions/{sid}")


@needs_root
def test_a_batchs_files_cannot_leak_or_block(system_livy):
    """A batch's directory (livy/batches/ID/) is its account's, and nbhub read two files there
    with a plain open, as root: its log (GET /batches/ID/log and the log lines of GET
    /batches/ID), so a link in its place to a file only root may read was answered to the
    batch's user; and the state file (spark.json, for the application id), so a FIFO there
    blocked nbhub serve's loop at the next GET of the batch, for everybody.  The application
    here never starts a SparkContext, so the batch stays `starting` and nbhub keeps looking."""
    hs = system_livy
    a = hs.apis[ALICE]
    jobs = hs.srv.home / "jobs"
    jobs.mkdir(mode=0o755, exist_ok=True)
    job = jobs / "sleep_job.py"
    job.write_text("import time\ntime.sleep(600)\n")
    job.chmod(0o644)
    secret = hs.srv.home / "root-only-secret"
    secret.write_text("TOP-SECRET-LINE\n")
    secret.chmod(0o600)
    st, b = a.post("/livy/batches", {"file": str(job)})
    assert st == 201, (st, b)
    bid = b["id"]
    bdir = hs.srv.home / "livy" / "batches" / str(bid)
    state = bdir / "spark.json"
    assert wait_for(state.exists, 60, 0.2), _batch_log(a, bid)
    st, b = a.get(f"/livy/batches/{bid}")
    assert st == 200 and b["state"] == "starting", (st, b, _batch_log(a, bid))
    _as_account(ALICE, "ln", "-sf", str(secret), str(bdir / "log"))
    st, log = a.get(f"/livy/batches/{bid}/log?from=0&size=-1")
    assert st == 200 and "TOP-SECRET" not in json.dumps(log), log
    st, b = a.get(f"/livy/batches/{bid}")
    assert st == 200 and "TOP-SECRET" not in json.dumps(b), b
    _as_account(ALICE, "sh", "-c", 'rm -f "$1" && mkfifo "$1"', "sh", str(state))
    t0 = time.monotonic()
    st, b = a.get(f"/livy/batches/{bid}", timeout=10)
    assert st == 200 and b["state"] == "starting", (st, b)
    assert time.monotonic() - t0 < 5
    st, body = a.delete(f"/livy/batches/{bid}")
    assert st == 200, (st, body)
