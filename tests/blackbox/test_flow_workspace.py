"""Flows that run a notebook from the owner's workspace (issue 17 item 6):
`notebook: ~/reports/daily.ipynb` is the flow OWNER's workspace, resolved when
the task runs -- <home>/workspaces/<owner> under isolation: shared, the home of
the owner's Unix account under isolation: system (src/iso/workspace.h,
docs/flows.md).  The attacks: another user's workspace (`~bob/`), `..` out of
it, `~` alone (refused when the flow is applied, with file:line:column), and a
symlink in the workspace that leads out of it (refused when the task runs, by
the task itself)."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import write_nb
from nbserve import Api, Server
from test_isolation import system_server, task_log

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation: system needs root")

REPORT = ("import os\n"
          "print('WHO', WHO, 'CWD', os.getcwd())\n"
          "open('ran.txt', 'w').write(WHO)")


def users(srv, *names):
    tokens = {}
    for user in names:
        st, body = srv.api.post("/api/v1/users", {"name": user, "password": f"{user}-password-1"})
        assert st == 201, (st, body)
        st, t = srv.api.post(f"/api/v1/users/{user}/tokens", {"name": "t"})
        assert st == 201, (st, t)
        tokens[user] = Api(srv.port, t["token"])
    return tokens


def apply(api, name, text):
    return api.request("POST", f"/api/v1/flows?filename={name}.yaml", text,
                       headers={"Content-Type": "application/yaml"})


def trigger(api, flow):
    st, run = api.post(f"/api/v1/flows/{flow}/runs", {})
    assert st == 201, (st, run)
    return run["id"]


def wait(api, run, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, r = api.get(f"/api/v1/runs/{run}")
        assert st == 200, (st, r)
        if r["state"] in ("success", "failed", "cancelled"):
            return r
        time.sleep(0.1)
    raise AssertionError(f"run {run} did not end")


def log_of(api, run, task):
    st, body, _ = api.request("GET", f"/api/v1/runs/{run}/tasks/{task}/log", raw=True)
    assert st == 200, (st, body)
    return body.decode(errors="replace")


def workspace_nb(srv, user, rel, who):
    """A notebook in a user's workspace, as JupyterLab would have saved it."""
    path = srv.home / "workspaces" / user / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(srv.home / "workspaces", 0o700)
    os.chmod(srv.home / "workspaces" / user, 0o700)
    write_nb(path, f"WHO = {who!r}", REPORT)
    return path


def test_workspace_notebook_runs_in_the_owners_workspace(h):
    """alice (an ordinary user, not trusted: a notebook of her own workspace
    needs no trust) schedules ~/reports/daily.ipynb; an admin applying a flow
    with `owner: alice` gets alice's notebook, not the admin's own."""
    srv = Server(h).start()
    try:
        tok = users(srv, "alice")
        nb = workspace_nb(srv, "alice", "reports/daily.ipynb", "alice")
        workspace_nb(srv, "admin", "reports/daily.ipynb", "admin")
        flow = "name: daily\nschedule: '@daily'\ntasks:\n  report:\n    notebook: ~/reports/daily.ipynb\n"
        st, body = apply(tok["alice"], "daily", flow)
        assert st in (200, 201), (st, body)
        run = wait(tok["alice"], trigger(tok["alice"], "daily"))
        log = log_of(tok["alice"], run["id"], "report")
        assert run["state"] == "success", (run, log, srv.log())
        # The kernel started in the notebook's directory, in alice's workspace.
        assert f"WHO alice CWD {nb.parent}" in log, log
        assert (nb.parent / "ran.txt").read_text() == "alice"
        st, out, _ = tok["alice"].request("GET", f"/api/v1/runs/{run['id']}/tasks/report/output", raw=True)
        assert st == 200 and b"WHO alice" in out
        # The flow as the API shows it keeps what was written.
        st, f = tok["alice"].get("/api/v1/flows/daily")
        assert st == 200, f
        task = f["spec"]["tasks"][0] if "spec" in f else None
        if task:
            assert task["notebook"] == "~/reports/daily.ipynb"

        # The admin applies a flow for alice: her workspace, not the admin's.
        st, body = apply(srv.api, "for-alice", flow.replace("name: daily", "name: for-alice\nowner: alice"))
        assert st in (200, 201), (st, body)
        (nb.parent / "ran.txt").unlink()
        run = wait(srv.api, trigger(srv.api, "for-alice"))
        log = log_of(srv.api, run["id"], "report")
        assert run["state"] == "success", (run, log)
        assert "WHO alice" in log and "WHO admin" not in log, log
        assert (nb.parent / "ran.txt").read_text() == "alice"

        # The admin's own flow (no owner:) reads the admin's workspace.
        st, body = apply(srv.api, "mine", flow.replace("name: daily", "name: mine"))
        assert st in (200, 201), (st, body)
        run = wait(srv.api, trigger(srv.api, "mine"))
        log = log_of(srv.api, run["id"], "report")
        assert run["state"] == "success" and "WHO admin" in log, (run, log)
    finally:
        srv.stop()


def test_admin_applied_flow_with_owner_is_the_owners(h):
    """An admin applies a flow file with `owner: alice`: its tasks run as alice
    (~/ is her workspace), so the flow is hers too -- in the store, in
    GET /flows (alice's list) and for her rights on it (run it, pause it).
    It used to be recorded as the admin's: missing from alice's list, and
    alice could not run the flow that runs as her."""
    srv = Server(h).start()
    try:
        tok = users(srv, "alice", "bob")
        nb = workspace_nb(srv, "alice", "reports/daily.ipynb", "alice")
        flow = "name: for-alice\nowner: alice\ntasks:\n  report:\n    notebook: ~/reports/daily.ipynb\n"
        st, body = apply(srv.api, "for-alice", flow)
        assert st == 201, (st, body)
        st, f = srv.api.get("/api/v1/flows/for-alice")
        assert st == 200 and f["owner"] == "alice", f
        st, lst = tok["alice"].get("/api/v1/flows")
        assert st == 200 and "for-alice" in [x["name"] for x in lst["flows"]], lst
        st, lst = tok["bob"].get("/api/v1/flows")
        assert st == 200 and "for-alice" not in [x["name"] for x in lst["flows"]], lst
        run = wait(tok["alice"], trigger(tok["alice"], "for-alice"))
        assert run["state"] == "success", (run, log_of(tok["alice"], run["id"], "report"))
        assert (nb.parent / "ran.txt").read_text() == "alice"
        # The admin applies it again (a change): still alice's.
        st, body = apply(srv.api, "for-alice", flow + "schedule: '@daily'\n")
        assert st in (200, 201), (st, body)
        assert srv.api.get("/api/v1/flows/for-alice")[1]["owner"] == "alice"
        # An admin's flow without owner: stays the admin's.
        st, body = apply(srv.api, "mine", "name: mine\ntasks:\n  t: {command: [true]}\n")
        assert st == 201, (st, body)
        assert srv.api.get("/api/v1/flows/mine")[1]["owner"] == "admin"
    finally:
        srv.stop()


@pytest.mark.parametrize("path,why", [
    ("~bob/reports/daily.ipynb", "another user"),
    ("~root/.jupyter/x.ipynb", "another user"),
    ("~", "'~' alone"),
    ("~/../../etc/passwd", "leads out of the workspace"),
    ("~/reports/../../bob/secret.ipynb", "leads out of the workspace"),
])
def test_tilde_paths_refused_at_apply(h, path, why):
    srv = Server(h).start()
    try:
        tok = users(srv, "alice", "bob")
        workspace_nb(srv, "bob", "reports/daily.ipynb", "bob")
        workspace_nb(srv, "bob", "secret.ipynb", "bob")
        text = f"name: sneaky\ntasks:\n  t:\n    notebook: \"{path}\"\n"
        st, body = apply(tok["alice"], "sneaky", text)
        assert st == 400, (st, body)
        msg = json.dumps(body)
        assert why in msg, msg
        # file:line:column of the value.
        assert "sneaky.yaml:4:15" in msg, msg
        st, _ = tok["alice"].get("/api/v1/flows/sneaky")
        assert st == 404
        # A flow file in the flows directory is refused the same way.
        srv.apply("sneaky2", text.replace("sneaky", "sneaky2"))
        deadline = time.monotonic() + 20
        broken = []
        while not broken and time.monotonic() < deadline:
            time.sleep(0.1)
            st, lst = srv.api.get("/api/v1/flows")
            broken = [f for f in lst.get("broken", []) if "sneaky2" in f["path"]]
        assert broken, lst
        assert why in json.dumps(broken) and "sneaky2.yaml:4:15" in json.dumps(broken), broken
        st, _ = srv.api.get("/api/v1/flows/sneaky2")
        assert st == 404
    finally:
        srv.stop()


def test_symlink_out_of_the_workspace_refused(h):
    """alice plants links in her workspace to bob's notebook and to a directory
    outside: the task fails before any of bob's notebook is run or copied."""
    srv = Server(h).start()
    try:
        tok = users(srv, "alice", "bob")
        secret = workspace_nb(srv, "bob", "secret.ipynb", "bob-secret-42")
        ws = srv.home / "workspaces" / "alice"
        workspace_nb(srv, "alice", "ok.ipynb", "alice")
        os.symlink(secret, ws / "evil.ipynb")
        os.symlink(srv.home / "workspaces" / "bob", ws / "bobdir")
        # A link that stays inside is fine.
        os.symlink("ok.ipynb", ws / "alias.ipynb")
        flow = ("name: links\ntasks:\n"
                "  evil: {notebook: ~/evil.ipynb}\n"
                "  viadir: {notebook: ~/bobdir/secret.ipynb}\n"
                "  alias: {notebook: ~/alias.ipynb}\n")
        st, body = apply(tok["alice"], "links", flow)
        assert st in (200, 201), (st, body)
        run = wait(tok["alice"], trigger(tok["alice"], "links"))
        assert run["state"] == "failed", run
        states = {t["name"]: t["state"] for t in run["tasks"]}
        assert states == {"evil": "failed", "viadir": "failed", "alias": "success"}, run
        for t in ("evil", "viadir"):
            log = log_of(tok["alice"], run["id"], t)
            assert "outside the workspace" in log, log
            assert "bob-secret-42" not in log, log
            st, out, _ = tok["alice"].request("GET", f"/api/v1/runs/{run['id']}/tasks/{t}/output", raw=True)
            assert b"bob-secret-42" not in out
        assert not (srv.home / "workspaces" / "bob" / "ran.txt").exists()

        # A workspace that is itself a link to bob's is no workspace.
        tok.update(users(srv, "carol"))
        os.symlink(srv.home / "workspaces" / "bob", srv.home / "workspaces" / "carol")
        st, body = apply(tok["carol"], "carols", "name: carols\ntasks:\n  t: {notebook: ~/secret.ipynb}\n")
        assert st in (200, 201), (st, body)
        run = wait(tok["carol"], trigger(tok["carol"], "carols"))
        assert run["state"] == "failed", run
        assert "symbolic link" in json.dumps(run["tasks"][0]), run

        # Naming bob as the owner is an admin's right only.
        st, body = apply(tok["alice"], "asbob", "name: asbob\nowner: bob\ntasks:\n  t: {notebook: ~/secret.ipynb}\n")
        assert st == 403, (st, body)
        assert not (srv.home / "workspaces" / "bob" / "ran.txt").exists()
    finally:
        srv.stop()


def test_workspace_missing_or_no_owner(h):
    """No workspace yet, or a flow without an owner: the task fails and says why."""
    srv = Server(h).start()
    try:
        tok = users(srv, "carol")
        st, body = apply(tok["carol"], "nows", "name: nows\ntasks:\n  t: {notebook: ~/x.ipynb}\n")
        assert st in (200, 201), (st, body)
        run = wait(tok["carol"], trigger(tok["carol"], "nows"))
        assert run["state"] == "failed", run
        err = json.dumps(run["tasks"][0])
        assert "has no workspace yet" in err, err
        # A file in the flows directory without owner: is nobody's.
        srv.apply("orphan", "name: orphan\ntasks:\n  t: {notebook: ~/x.ipynb}\n")
        deadline = time.monotonic() + 20
        while srv.api.get("/api/v1/flows/orphan")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        run = wait(srv.api, trigger(srv.api, "orphan"))
        assert run["state"] == "failed", run
        assert "no owner" in json.dumps(run["tasks"][0]), run
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def ws_accounts():
    yield
    for u in ("wsa", "wsb"):
        subprocess.run(["userdel", "-r", f"nbhub-{u}"], capture_output=True)


@needs_root
def test_system_workspace_is_the_accounts_home(h, ws_accounts):
    """isolation: system: ~/ is the home of the owner's Unix account; the task
    runs as the account, in the notebook's directory; a symlink out of the home
    is refused even to a file the account could read."""
    srv = system_server(h)
    try:
        # The account is created (create_system_users) by its first task.
        srv.apply("mk", "owner: wsa\ntasks:\n  t: {command: [true]}\n")
        deadline = time.monotonic() + 20
        while srv.api.get("/api/v1/flows/mk")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        run = wait(srv.api, trigger(srv.api, "mk"))
        assert run["state"] == "success", (run, srv.log())
        acct = pwd.getpwnam("nbhub-wsa")
        home = Path(acct.pw_dir)
        rep = home / "reports"
        rep.mkdir(exist_ok=True)
        nb = rep / "daily.ipynb"
        write_nb(nb, "WHO = 'wsa'", "import os\nprint('UID', os.getuid(), 'CWD', os.getcwd())",
                 kernel="syspy")
        # Outside the home, readable by everyone: the link is still refused.
        outside = Path(tempfile.mkdtemp(prefix="nbhub-ws-out-", dir="/tmp"))
        os.chmod(outside, 0o755)
        write_nb(outside / "pub.ipynb", "print('OUTSIDE-RAN')", kernel="syspy")
        os.chmod(outside / "pub.ipynb", 0o644)
        os.symlink(outside / "pub.ipynb", home / "pub.ipynb")
        for p in (rep, nb, home / "pub.ipynb"):
            os.lchown(p, acct.pw_uid, acct.pw_gid)
        srv.apply("daily", "owner: wsa\ntasks:\n  report: {notebook: ~/reports/daily.ipynb}\n"
                           "  pub: {notebook: ~/pub.ipynb}\n")
        deadline = time.monotonic() + 20
        while srv.api.get("/api/v1/flows/daily")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        run = wait(srv.api, trigger(srv.api, "daily"), timeout=180)
        states = {t["name"]: t["state"] for t in run["tasks"]}
        log = log_of(srv.api, run["id"], "report")
        assert states["report"] == "success", (run, log, srv.log())
        assert f"UID {acct.pw_uid} CWD {rep}" in log, log
        plog = log_of(srv.api, run["id"], "pub")
        assert states["pub"] == "failed", (run, plog)
        assert "outside the workspace" in plog and "OUTSIDE-RAN" not in plog, plog
        shutil.rmtree(outside, ignore_errors=True)
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)
