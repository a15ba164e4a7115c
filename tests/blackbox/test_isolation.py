"""isolation: system — each user's tasks run as that user's Unix account, inside
cgroup limits (docs/security.md).  These tests need root (CI runs as root):
they create the accounts nbhub-isoa and nbhub-isob with useradd, through
nbhub itself (create_system_users), and remove them at the end.
"""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nbserve import Server

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation: system needs root")

ALICE, BOB = "isoa", "isob"


@pytest.fixture(scope="module")
def accounts():
    yield
    for u in (ALICE, BOB):
        subprocess.run(["userdel", "-r", f"nbhub-{u}"], capture_output=True)


def system_server(h, extra=""):
    # tmp_path lives below /tmp/pytest-of-root (0700): the users' accounts could
    # not reach their run directories there, and nbhub serve says so.
    home = Path(tempfile.mkdtemp(prefix="nbhub-iso-", dir="/tmp"))
    os.chmod(home, 0o711)
    (home / "nbhub.yaml").write_text("isolation: system\ncreate_system_users: true\n" + extra)
    # A kernel every account can run: Debian's python3 with its ipykernel (the
    # test .venv's interpreter lives below /root, which is 0700).
    spec = home / "jupyter" / "kernels" / "syspy"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text('{"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", '
                                      '"{connection_file}"], "display_name": "System Python", "language": "python"}')
    for d in (home / "jupyter", home / "jupyter" / "kernels", spec):
        os.chmod(d, 0o755)
    os.chmod(spec / "kernel.json", 0o644)
    srv = Server(h, home=home, env={"NBHUB_ISOLATION": "", "JUPYTER_PATH": str(home / "jupyter")}).start()
    return srv


def run_task(srv, flow, text, timeout=60):
    srv.apply(flow, text)
    deadline = time.monotonic() + 20
    while True:
        st, run = srv.api.post(f"/api/v1/flows/{flow}/runs", {})
        if st == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert st == 201, (st, run, srv.log())
    return srv.wait_run(run["id"], timeout=timeout)


def task_log(srv, run):
    t = run["tasks"][0]
    st, body, _ = srv.api.request("GET", f"/api/v1/runs/{run['id']}/tasks/{t['name']}/log", raw=True)
    assert st == 200, (st, body)
    return body.decode()


@needs_root
def test_tasks_run_as_their_owner_and_cannot_read_others(h, accounts):
    srv = system_server(h)
    try:
        bob = run_task(srv, "bobs", f"owner: {BOB}\ntasks:\n  secret:\n"
                       "    command: [sh, -c, 'echo bob-secret-42; id -un']\n")
        assert bob["state"] == "success", (bob, srv.log())
        assert f"nbhub-{BOB}" in task_log(srv, bob)
        bob_dir = next((srv.home / "runs" / "bobs").iterdir())
        bob_log = next(bob_dir.glob("*.log"))
        assert pwd.getpwuid(bob_dir.stat().st_uid).pw_name == f"nbhub-{BOB}"
        assert bob_dir.stat().st_mode & 0o777 == 0o700
        script = (f"id -u; echo HOME=$HOME; "
                  f"cat {bob_log} && echo LEAK-LOG; ls {bob_dir} && echo LEAK-DIR; "
                  f"cat {srv.home}/nbhub.db > /dev/null && echo LEAK-DB; "
                  f"ls {srv.flows} && echo LEAK-FLOWS; "
                  f"env | grep -c NBHUB_ADMIN_PASSWORD_FILE || true; exit 0")
        alice = run_task(srv, "alices", f"owner: {ALICE}\ntasks:\n  snoop:\n"
                         f"    command: [sh, -c, \"{script}\"]\n")
        assert alice["state"] == "success", (alice, srv.log())
        log = task_log(srv, alice)
        uid = pwd.getpwnam(f"nbhub-{ALICE}").pw_uid
        assert f"\n{uid}\n" in log, log
        assert f"HOME=/home/nbhub-{ALICE}" in log
        for leak in ("bob-secret-42", "LEAK-LOG", "LEAK-DIR", "LEAK-DB", "LEAK-FLOWS"):
            assert leak not in log, log
        assert log.count("Permission denied") >= 4, log
        # The daemon's environment (here: the admin password file) is scrubbed.
        assert "\n0\n" in log, log
        # The daemon's own files stay private.
        assert (srv.home / "nbhub.db").stat().st_mode & 0o077 == 0
        assert srv.flows.stat().st_mode & 0o066 == 0   # 0711: not listable
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@needs_root
def test_notebook_task_runs_as_owner(h, accounts):
    srv = system_server(h)
    try:
        # The notebook must be readable by its owner: it lives in alice's home.
        acct = pwd.getpwnam(f"nbhub-{ALICE}") if _exists(f"nbhub-{ALICE}") else None
        if acct is None:
            run_task(srv, "mk", f"owner: {ALICE}\ntasks:\n  t: {{command: [true]}}\n")
            acct = pwd.getpwnam(f"nbhub-{ALICE}")
        nb = Path(acct.pw_dir) / "who.ipynb"
        nb.write_text('{"cells": [{"cell_type": "code", "execution_count": null, "id": "a", "metadata": {}, '
                      '"outputs": [], "source": "import os; print(os.getuid(), os.getcwd())"}], '
                      '"metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", '
                      '"language": "python"}}, "nbformat": 4, "nbformat_minor": 5}')
        os.chown(nb, acct.pw_uid, acct.pw_gid)
        run = run_task(srv, "nbflow", f"owner: {ALICE}\ntasks:\n  who:\n    notebook: {nb}\n"
                       f"    kernel: syspy\n", timeout=120)
        log = task_log(srv, run)
        assert run["state"] == "success", (run, log)
        assert f"{acct.pw_uid} {acct.pw_dir}" in log, log
        out = next((srv.home / "runs" / "nbflow").iterdir()) / "who.ipynb"
        assert out.stat().st_uid == acct.pw_uid
        st, body, _ = srv.api.request("GET", f"/api/v1/runs/{run['id']}/tasks/who/output", raw=True)
        assert st == 200 and b"cells" in body
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


def _exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@needs_root
def test_memory_limit_kills_with_a_message(h, accounts):
    srv = system_server(h, "limits: {memory: 1g}\n")
    try:
        run = run_task(srv, "hog", f"owner: {ALICE}\ntasks:\n  hog:\n    limits: {{memory: 64m}}\n"
                       "    command: [/usr/bin/python3, -c, 'x = bytearray(400 << 20); print(len(x))']\n")
        assert run["state"] == "failed", run
        err = run["tasks"][0].get("error") or ""
        assert "memory limit 64m exceeded" in err, (run, srv.log())
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@needs_root
def test_symlinked_output_is_not_served(h, accounts):
    """A task owns its run directory: it may replace its log by a link to
    nbhub.db, but the daemon never follows it."""
    srv = system_server(h)
    try:
        run = run_task(srv, "linker", f"owner: {ALICE}\ntasks:\n  t:\n"
                       "    command: [sh, -c, 'echo hello']\n")
        assert run["state"] == "success"
        log = next(next((srv.home / "runs" / "linker").iterdir()).glob("t.log"))
        log.unlink()
        log.symlink_to(srv.home / "nbhub.db")
        st, body, _ = srv.api.request("GET", f"/api/v1/runs/{run['id']}/tasks/t/log", raw=True)
        assert st != 200 or b"SQLite" not in body, body[:100]
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@needs_root
def test_system_mode_needs_an_owner(h):
    srv = system_server(h)
    try:
        run = run_task(srv, "nobody", "tasks:\n  t: {command: [true]}\n")
        assert run["state"] == "failed"
        assert "no owner" in (run["tasks"][0].get("error") or ""), run
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


# ---- isolation: shared ---------------------------------------------------------------------

def _shared_server(h, trusted=()):
    home = h.tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    if trusted:
        (home / "nbhub.yaml").write_text("trusted_users: [%s]\n" % ", ".join(trusted))
    srv = Server(h, home=home).start()
    for u in ("bob", "carol"):
        assert srv.api.post("/api/v1/users", {"name": u, "password": f"{u}-password-1"})[0] == 201
    return srv


def _user_api(srv, user):
    from nbserve import Api
    st, body, hdr = srv.api.request("POST", "/api/v1/login", {"username": user, "password": f"{user}-password-1"},
                                    token=False, raw=True)
    assert st == 200, body
    import json
    cookie = hdr["set-cookie"].split(";")[0]
    csrf = json.loads(body)["csrf_token"]
    st, tok = srv.api.request("POST", f"/api/v1/users/{user}/tokens", {"name": "t"},
                              headers={"Cookie": cookie, "X-CSRF-Token": csrf}, token=False)
    assert st == 201, tok
    return Api(srv.port, tok["token"])


def test_shared_mode_ordinary_users_cannot_save_commands_or_outside_paths(h):
    srv = _shared_server(h, trusted=("carol",))
    try:
        (srv.flows / "x.py").write_text("print(1)\n")
        (srv.flows / "inside.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        bob = _user_api(srv, "bob")
        refused = {
            "cmd": "name: b1\ntasks:\n  t: {command: [sqlite3, x.db, 'update users set is_admin=1']}\n",
            "abs": "name: b2\ntasks:\n  t: {notebook: /etc/passwd}\n",
            "dotdot": "name: b3\ntasks:\n  t: {notebook: ../nbhub.db}\n",
            "submit": f"name: b4\ntasks:\n  t: {{spark_submit: {{application: {srv.flows / 'x.py'}}}}}\n",
        }
        for what, text in refused.items():
            st, body = bob.request("POST", "/api/v1/flows", text, headers={"Content-Type": "application/yaml"})
            assert st == 403, (what, st, body)
            assert "only admins and trusted users" in body["error"]["message"], body
        st, body = bob.request("POST", "/api/v1/flows", "name: b5\ntasks:\n  t: {notebook: inside.ipynb}\n",
                               headers={"Content-Type": "application/yaml"})
        assert st == 201, body
        # A trusted user and an admin may.
        carol = _user_api(srv, "carol")
        st, body = carol.request("POST", "/api/v1/flows", "name: c1\ntasks:\n  t: {command: [true]}\n",
                                 headers={"Content-Type": "application/yaml"})
        assert st == 201, body
        st, body = srv.api.request("POST", "/api/v1/flows", "name: a1\ntasks:\n  t: {command: [true]}\n",
                                   headers={"Content-Type": "application/yaml"})
        assert st == 201, body
        # The trusted role, given and taken by an admin through the API.
        cmd = "name: b6\ntasks:\n  t: {command: [true]}\n"
        assert bob.request("PUT", "/api/v1/users/bob/trusted", {"trusted": True})[0] == 403
        st, u = srv.api.request("PUT", "/api/v1/users/bob/trusted", {"trusted": True})
        assert st == 200 and u["trusted"] is True, u
        st, body = bob.request("POST", "/api/v1/flows", cmd, headers={"Content-Type": "application/yaml"})
        assert st == 201, body
        assert srv.api.request("PUT", "/api/v1/users/bob/trusted", {"trusted": False})[1]["trusted"] is False
        st, body = bob.request("POST", "/api/v1/flows", cmd.replace("true]", "false]"),
                               headers={"Content-Type": "application/yaml"})
        assert st == 403, body
        st, u = srv.api.post("/api/v1/users", {"name": "erin", "password": "erin-password-1", "trusted": True})
        assert st == 201 and u["trusted"] is True, u
    finally:
        srv.stop()


@needs_root
def test_deployed_flow_directory_belongs_to_its_owner(h, accounts):
    import base64
    import json
    srv = system_server(h)
    try:
        nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
                         "source": "import os; print(os.getuid(), open('data.txt').read())"}],
              "metadata": {"kernelspec": {"name": "syspy", "display_name": "S", "language": "python"}},
              "nbformat": 4, "nbformat_minor": 5}
        files = {"who.ipynb": base64.b64encode(json.dumps(nb).encode()).decode(),
                 "data.txt": base64.b64encode(b"deployed-data").decode()}
        yaml = f"name: dep\nowner: {ALICE}\nfiles: [data.txt]\ntasks:\n  who: {{notebook: who.ipynb}}\n"
        st, body = srv.api.post("/api/v1/flows", {"flow": yaml, "files": files})
        assert st == 201, body
        st, run = srv.api.post("/api/v1/flows/dep/runs", {})
        run = srv.wait_run(run["id"], timeout=120)
        log = task_log(srv, run)
        uid = pwd.getpwnam(f"nbhub-{ALICE}").pw_uid
        assert run["state"] == "success", (run, log)
        assert f"{uid} deployed-data" in log, log
        assert (srv.flows / "dep").stat().st_uid == uid
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


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


@needs_root
def test_spark_cluster_runs_as_its_owner_in_their_cgroup(h, accounts):
    """A Spark cluster a user starts through the API runs as the user's account
    (supervisor, master, worker), inside the user's cgroup (so its JVMs count
    against the user's limits), without the daemon's environment; deleting it
    leaves no process of the account behind."""
    # pyspark's Spark in the test .venv: the account can read it, but not run
    # the .venv's Python (below /root), so nbhub finds Debian's python3.
    spark_home = next(Path(sys.prefix).glob("lib/python3*/site-packages/pyspark"))
    srv = system_server(h, "limits: {memory: 6g, pids: 2048}\n")
    srv.stop()
    srv.env["SPARK_HOME"] = str(spark_home)
    srv.env["NBHUB_SECRET_CANARY"] = "canary-123"
    srv.start()
    try:
        assert srv.api.post("/api/v1/users", {"name": ALICE, "password": f"{ALICE}-password-1"})[0] == 201
        alice = _user_api(srv, ALICE)
        st, c = alice.post("/api/v1/spark/clusters", {"name": "dev", "workers": 1, "worker_memory": "512m"})
        assert st == 202, (st, c)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            st, c = alice.get("/api/v1/spark/clusters/dev")
            if c.get("state") == "running":
                break
            time.sleep(0.5)
        log = ""
        for f in (srv.home / "spark").rglob("*.log"):
            log += f"--- {f}\n" + f.read_text(errors="replace")[-1500:]
        stj = srv.home / "spark" / f"~{ALICE}" / "dev" / "state.json"
        extra = stj.read_text() if stj.exists() else "no state.json"
        assert c.get("state") == "running", (c, extra, log[-3000:])
        uid = pwd.getpwnam(f"nbhub-{ALICE}").pw_uid
        procs = _procs_of(uid)
        assert any("__spark-supervise" in cmd for _, cmd in procs), procs
        jvms = [pid for pid, cmd in procs if "java" in cmd]
        assert len(jvms) >= 2, procs                      # master and worker
        for pid in jvms:
            cg = Path(f"/proc/{pid}/cgroup").read_text()
            assert f"nbhub/u-nbhub-{ALICE}/spark-dev" in cg, cg
            env = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"canary-123" not in env and b"NBHUB_ADMIN_PASSWORD_FILE" not in env
        # nothing of the cluster's directory is the daemon's any more
        d = srv.home / "spark" / f"~{ALICE}" / "dev"
        assert d.stat().st_uid == uid
        assert alice.delete("/api/v1/spark/clusters/dev")[0] in (200, 202)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _procs_of(uid):
            time.sleep(0.5)
        assert _procs_of(uid) == [], _procs_of(uid)
    finally:
        srv.stop()
        for pid, _ in _procs_of(pwd.getpwnam(f"nbhub-{ALICE}").pw_uid) if _exists(f"nbhub-{ALICE}") else []:
            os.kill(pid, 9)
        shutil.rmtree(srv.home, ignore_errors=True)


@needs_root
def test_spark_task_cluster_runs_as_the_flow_owner(h, accounts):
    """A flow task with `spark:` starts its ephemeral cluster inside the task,
    as the flow's owner: its directory under spark/~OWNER/ is the account's."""
    spark_home = next(Path(sys.prefix).glob("lib/python3*/site-packages/pyspark"))
    srv = system_server(h)
    srv.stop()
    srv.env["SPARK_HOME"] = str(spark_home)
    srv.start()
    try:
        run = run_task(srv, "sp", f"owner: {ALICE}\ntasks:\n  t:\n"
                       "    command: [sh, -c, 'id -u; echo \"$PYSPARK_SUBMIT_ARGS\"']\n"
                       "    spark: {workers: 1, worker_memory: 512m}\n", timeout=240)
        log = task_log(srv, run)
        uid = pwd.getpwnam(f"nbhub-{ALICE}").pw_uid
        assert run["state"] == "success", (run, log[-3000:])
        assert f"\n{uid}\n" in log and "--master spark://127.0.0.1:" in log, log[-3000:]
        assert (srv.home / "spark" / f"~{ALICE}").stat().st_uid == uid
        assert _procs_of(uid) == [] or all("java" not in c for _, c in _procs_of(uid)), _procs_of(uid)
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@needs_root
def test_user_memory_limit_is_named_when_it_kills(h, accounts):
    """The owner's limit (all their tasks together) killed the task: the task
    run says which limit, not just that a process died."""
    srv = system_server(h, "limits: {memory: 64m}\n")
    try:
        run = run_task(srv, "uhog", f"owner: {ALICE}\ntasks:\n  hog:\n"
                       "    command: [/usr/bin/python3, -c, 'x = bytearray(400 << 20); print(len(x))']\n")
        assert run["state"] == "failed", run
        err = run["tasks"][0].get("error") or ""
        assert f"memory limit 64m of all of {ALICE}'s tasks exceeded" in err, (run, srv.log())
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@needs_root
def test_shared_mode_task_limits_run_in_a_cgroup(h):
    """isolation: shared (the default) as root, with a flow task's `limits:`:
    the scheduler wraps the task in `nbhub __as-user -` (no account to become,
    only the cgroups), which used to look up a Unix account called "-" and
    fail every such task with exit 126.  The task runs as nbhub's own user,
    inside nbhub/u-shared/t..., and the limit is enforced."""
    home = h.tmp / "home-shared-limits"
    home.mkdir(parents=True, exist_ok=True)
    (home / "nbhub.yaml").write_text("limits: {memory: 1g}\n")
    srv = Server(h, home=home).start()
    try:
        probe = ("import os; print('uid', os.getuid()); "
                 "print([l for l in open('/proc/self/cgroup').read().splitlines() if 'memory' in l or l.startswith('0::')])")
        run = run_task(srv, "inlimits", "tasks:\n  probe:\n    limits: {memory: 256m}\n"
                       f"    command: [/usr/bin/python3, -c, \"{probe}\"]\n")
        log = task_log(srv, run)
        assert run["state"] == "success", (run["tasks"][0].get("error"), log)
        assert "uid 0" in log, log
        assert "nbhub/u-shared/t" in log, log
        run = run_task(srv, "hog", "tasks:\n  hog:\n    limits: {memory: 64m}\n"
                       "    command: [/usr/bin/python3, -c, 'x = bytearray(400 << 20); print(len(x))']\n")
        assert run["state"] == "failed", run
        err = run["tasks"][0].get("error") or ""
        assert "memory limit 64m exceeded" in err, (run, task_log(srv, run), srv.log())
    finally:
        srv.stop()
