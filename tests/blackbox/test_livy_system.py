"""Livy sessions under isolation: system (each kernel runs as its owner's
Unix account, like flow tasks and hub servers) and session ids that are
never handed out twice (docs/livy.md)."""
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


# ---- isolation: system -----------------------------------------------------------------------

ALICE, BOB = "livya", "livyb"


def _procs_of(uid):
    """(pid, cmdline) of the processes of a uid."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid == uid:
                    out.append((int(p.name), (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except OSError:
                pass
    return out


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
    on PYTHONPATH through a directory of links."""
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
                   env={"NBHUB_ISOLATION": "", "JUPYTER_PATH": str(home / "jupyter")}).start()
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
    last = {}

    def ok():
        nonlocal last
        st, last = api.get(f"/livy/sessions/{sid}")
        return st == 200 and last["state"] in ("idle", "error", "dead")
    assert wait_for(ok, timeout, 0.3), last
    assert last["state"] == "idle", last
    return last


def _run(api, sid, code, timeout=120):
    st, s = api.post(f"/livy/sessions/{sid}/statements", {"code": code})
    assert st == 201, (st, s)
    last = {}

    def ok():
        nonlocal last
        st, last = api.get(f"/livy/sessions/{sid}/statements/{s['id']}")
        return st == 200 and last["state"] in ("available", "error", "cancelled")
    assert wait_for(ok, timeout, 0.1), last
    return last


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
