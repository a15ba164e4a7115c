"""Post-mortem kernels (issue 20, item 3): a failed run's kernel kept alive.

`nbhub run --keep-kernel-on-error DURATION` and a flow task's `post_mortem:`
keep the kernel of a run whose cell raised, so its variables can be looked at
(`jupyter console --existing FILE`, `nbhub runs debug RUN TASK`).  These tests
connect to the kept kernel with jupyter_client over the connection file nbhub
prints (a real ipykernel), check the kernel is stopped at its deadline, by
DELETE, at nbhub serve's exit and on a retry, and that nobody else can see,
end or read it.  Every test ends with the harness's orphan check.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import NBHUB, RUN_TIMEOUT, VENV_BIN, code, write_nb


def h_bin():
    return NBHUB

FAILING = (code("x = 41"), code("raise ValueError('boom')"), code("y = 1"))


def _kept_lines(stderr):
    m = re.search(r"connection file: (\S+)", stderr)
    p = re.search(r"\(pid (\d+);", stderr)
    assert m and p, stderr
    return m.group(1), int(p.group(1))


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
        return st[st.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def _wait_gone(pid, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _eval(conn_file, expr, timeout=30):
    """Evaluate expr in the kernel behind conn_file with jupyter_client."""
    from jupyter_client import BlockingKernelClient
    kc = BlockingKernelClient()
    kc.load_connection_file(conn_file)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        reply = kc.execute_interactive(f"print(repr({expr}))", timeout=timeout,
                                       output_hook=lambda m: out.append(m))
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok", reply
    return "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream").strip()


out = []


def _kill_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def test_keep_kernel_on_error_variables_survive(h):
    nb = write_nb(h.tmp / "in.ipynb", *FAILING)
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "5m"])
    assert r.rc == 1, r.stderr
    conn, pid = _kept_lines(r.stderr)
    try:
        assert f"jupyter console --existing {conn}" in r.stderr
        assert os.stat(conn).st_mode & 0o077 == 0
        assert _alive(pid)
        out.clear()
        assert _eval(conn, "x") == "41"
        # the cell after the failing one never ran
        out.clear()
        assert _eval(conn, "'y' in dir()") == "False"
        # the output notebook is written as without the option
        with open(h.tmp / "out.ipynb") as f:
            nbo = json.load(f)
        assert nbo["metadata"]["papermill"]["exception"] is True
    finally:
        _kill_pid(pid)
    assert _wait_gone(pid)
    assert not os.path.exists(conn)        # the keeper removed the connection file


def test_keep_kernel_jupyter_console(h):
    """`jupyter console --existing FILE` works on the file nbhub prints."""
    # JUPYTER_CONSOLE: another jupyter-console command (a checkout whose
    # .venv predates requirements-dev.txt's jupyter-console)
    console = os.environ.get("JUPYTER_CONSOLE") or VENV_BIN / "jupyter-console"
    if not os.path.exists(console):
        pytest.skip("jupyter-console not installed (requirements-dev.txt)")
    nb = write_nb(h.tmp / "in.ipynb", *FAILING)
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "5m"])
    assert r.rc == 1, r.stderr
    conn, pid = _kept_lines(r.stderr)
    try:
        p = subprocess.run([str(console), "--existing", conn, "--simple-prompt", "-y"],
                           input="print('x is', x + 1)\nexit\n", capture_output=True, text=True,
                           env=h.env, timeout=RUN_TIMEOUT)
        assert "x is 42" in p.stdout, p.stdout + p.stderr
        # jupyter console's plain `exit` shuts the kernel down: the keeper goes too
        assert _wait_gone(pid, 10)
        assert not os.path.exists(conn)
    finally:
        _kill_pid(pid)


def test_keep_kernel_stopped_at_deadline(h):
    nb = write_nb(h.tmp / "in.ipynb", *FAILING)
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "3s"])
    assert r.rc == 1, r.stderr
    conn, pid = _kept_lines(r.stderr)
    assert _alive(pid)
    t0 = time.monotonic()
    assert _wait_gone(pid, timeout=20), "the kept kernel outlived its deadline"
    assert time.monotonic() - t0 < 10
    assert not os.path.exists(conn)


def test_keep_kernel_not_on_success_and_not_kept_when_run_killed(h):
    """A successful run keeps nothing; a run killed with SIGKILL mid-cell
    leaves no kernel behind (the keeper sees its control pipe close)."""
    nb = write_nb(h.tmp / "ok.ipynb", code("x = 1"))
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "5m"])
    assert r.rc == 0, r.stderr
    assert "kept" not in r.stderr
    nb = write_nb(h.tmp / "slow.ipynb", code("import time; time.sleep(60)"))
    p = h.popen(["run", nb, h.tmp / "out2.ipynb", "--keep-kernel-on-error", "5m"])
    conn = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not conn:     # the kernel is up: its keeper's argv names the dir
        for d in os.listdir("/proc"):
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if len(cmd) > 3 and cmd[1] == b"__kernel-keep" and cmd[2] == str(p.pid).encode():
                conn = cmd[3].decode()
        time.sleep(0.1)
    assert conn and os.path.isdir(conn)
    time.sleep(2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    end = time.monotonic() + 10
    while time.monotonic() < end and os.path.exists(conn):
        time.sleep(0.1)
    assert not os.path.exists(conn), "the connection file outlived a killed run"
    # the harness's orphan check (kernels carry the test's marker) does the rest


def test_keep_kernel_usage_errors(h):
    nb = write_nb(h.tmp / "in.ipynb", *FAILING)
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "soon"])
    assert r.rc == 2 and "duration" in r.stderr
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "1m",
               "--existing-kernel", h.tmp / "k.json"])
    assert r.rc == 2


# ---- flows: post_mortem under nbhub serve --------------------------------------------------

from nbserve import Api, Server  # noqa: E402

FLOW = """
name: {name}
owner: alice
tasks:
  t:
    notebook: fail.ipynb
    post_mortem: {keep}
{extra}"""


def _serve_with_users(h):
    srv = Server(h, args=["--log-level", "info"])
    write_nb(srv.flows / "fail.ipynb", *FAILING)
    srv.start()
    tokens = {}
    for user in ("alice", "bob"):
        st, _ = srv.api.post("/api/v1/users", {"name": user, "password": f"{user}-password-1"})
        assert st == 201, st
        st, t = srv.api.post(f"/api/v1/users/{user}/tokens", {"name": "pm"})
        assert st == 201
        tokens[user] = Api(srv.port, t["token"])
    return srv, tokens


def _apply_as(api, name, text):
    st, body = api.request("POST", f"/api/v1/flows?filename={name}.yaml", text,
                           headers={"Content-Type": "application/yaml"})
    assert st in (200, 201), (st, body)


def _kept(srv, run_id):
    row = srv.db().execute("SELECT kernel_pid, kernel_conn FROM task_runs WHERE run = ?", (run_id,)).fetchone()
    return (row[0], row[1]) if row and row[0] else (None, None)


def _trigger_as(api, flow):
    st, run = api.post(f"/api/v1/flows/{flow}/runs", {})
    assert st == 201, (st, run)
    return run["id"]


def test_flow_post_mortem_api_delete_other_user_and_serve_exit(h):
    srv, users = _serve_with_users(h)
    alice, bob = users["alice"], users["bob"]
    pids = []
    try:
        _apply_as(alice, "pm", FLOW.format(name="pm", keep="10m", extra=""))
        run_id = _trigger_as(alice, "pm")
        run = srv.wait_run(run_id)
        assert run["state"] == "failed", run
        st, run = alice.get(f"/api/v1/runs/{run_id}")
        t = run["tasks"][0]
        assert t["kernel_kept_until"] and t["kernel_connection_file"], (t, srv.log())
        pid, conn = _kept(srv, run_id)
        pids.append(pid)
        assert conn == t["kernel_connection_file"] and _alive(pid)
        out.clear()
        assert _eval(conn, "x") == "41"
        # nbhub runs debug: the console on it (jupyter-console on PATH), or the file
        url = ["--url", f"http://127.0.0.1:{srv.port}", "--token", alice.token]
        r = h.run(["runs", "debug", run_id, "t", "--print", *url])
        assert r.rc == 0 and f"jupyter console --existing {conn}" in r.stdout, r
        console = os.environ.get("JUPYTER_CONSOLE") or str(VENV_BIN / "jupyter-console")
        if os.path.exists(console):
            env = dict(h.env, PATH=os.path.dirname(console) + ":" + h.env["PATH"])
            p = subprocess.run([h_bin(), "runs", "debug", str(run_id), "t", *url],
                               input="print('x is', x + 1)\nexit(keep_kernel=True)\n", capture_output=True,
                               text=True, env=env, timeout=RUN_TIMEOUT)
            assert "x is 42" in p.stdout, p.stdout + p.stderr
        r = h.run(["runs", "debug", run_id, "nope", *url])
        assert r.rc == 4, r
        # another user neither sees nor ends it
        r = h.run(["runs", "debug", run_id, "t", "--url", f"http://127.0.0.1:{srv.port}", "--token", bob.token])
        assert r.rc == 4, r
        assert bob.get(f"/api/v1/runs/{run_id}")[0] == 404
        assert bob.delete(f"/api/v1/runs/{run_id}/tasks/t/kernel")[0] == 404
        assert _alive(pid)
        # the owner ends it
        st, task = alice.delete(f"/api/v1/runs/{run_id}/tasks/t/kernel")
        assert st == 200 and task["kernel_kept_until"] is None, (st, task)
        assert _wait_gone(pid, 10)
        assert not os.path.exists(conn)
        assert alice.delete(f"/api/v1/runs/{run_id}/tasks/t/kernel")[0] == 409
        r = h.run(["runs", "debug", run_id, "t", *url])
        assert r.rc == 6 and "no kernel is kept" in r.stderr, r
        # a kernel that ends by itself (its deadline, `exit` in a console) is
        # no longer shown as kept
        run2 = _trigger_as(alice, "pm")
        srv.wait_run(run2)
        pid2, _ = _kept(srv, run2)
        assert pid2 and _alive(pid2), srv.log()
        pids.append(pid2)
        os.kill(pid2, signal.SIGTERM)
        assert _wait_gone(pid2, 10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alice.get(f"/api/v1/runs/{run2}")[1]["tasks"][0]["kernel_kept_until"]:
            time.sleep(0.1)
        assert alice.get(f"/api/v1/runs/{run2}")[1]["tasks"][0]["kernel_kept_until"] is None
        # a third one, ended by the daemon's exit
        run3 = _trigger_as(alice, "pm")
        srv.wait_run(run3)
        pid3, _ = _kept(srv, run3)
        assert pid3 and _alive(pid3), srv.log()
        pids.append(pid3)
    finally:
        srv.stop()
    for pid in pids:
        assert _wait_gone(pid, 10), "a kept kernel outlived nbhub serve"


def test_flow_post_mortem_retry_and_restart(h):
    srv, users = _serve_with_users(h)
    alice = users["alice"]
    pids = []
    try:
        _apply_as(alice, "pmr", FLOW.format(name="pmr", keep="10m",
                                            extra="    retries: 1\n    retry_delay: 4s\n"))
        run_id = _trigger_as(alice, "pmr")
        # the first try failed: kept while up for retry
        deadline = time.monotonic() + 60
        pid1 = None
        while time.monotonic() < deadline and not pid1:
            pid1, _ = _kept(srv, run_id)
            time.sleep(0.1)
        assert pid1 and _alive(pid1), srv.log()
        pids.append(pid1)
        run = srv.wait_run(run_id, timeout=90)
        assert run["state"] == "failed" and run["tasks"][0]["try_number"] == 2, run
        # the retry ended the first try's kernel; the second try kept its own
        assert _wait_gone(pid1, 10), "the retry left the first try's kernel running"
        pid2, _ = _kept(srv, run_id)
        assert pid2 and pid2 != pid1 and _alive(pid2), srv.log()
        pids.append(pid2)
        # nbhub serve killed -9: the kernel lives on (its keeper holds it) ...
        srv.kill9()
        assert _alive(pid2)
        # ... and the next start ends one past its deadline, found by pid + start time
        import sqlite3
        c = sqlite3.connect(str(srv.home / "nbhub.db"))
        c.execute("UPDATE task_runs SET kernel_kept_until = 1 WHERE run = ?", (run_id,))
        c.commit()
        c.close()
        srv.start()
        alice = Api(srv.port, alice.token)
        assert _wait_gone(pid2, 15), "a kernel past its deadline survived a restart"
        st, run = alice.get(f"/api/v1/runs/{run_id}")
        assert run["tasks"][0]["kernel_kept_until"] is None, run
    finally:
        srv.stop()
    for pid in pids:
        assert _wait_gone(pid, 10)


def test_flow_post_mortem_deadline(h):
    """post_mortem: 3s — the keeper stops the kernel at its deadline and the
    daemon stops showing it as kept."""
    srv = Server(h)
    write_nb(srv.flows / "fail.ipynb", *FAILING)
    srv.apply("pmd", "name: pmd\ntasks:\n  t:\n    notebook: fail.ipynb\n    post_mortem: 3s\n")
    srv.start()
    try:
        run_id = srv.trigger("pmd")
        srv.wait_run(run_id)
        pid, conn = _kept(srv, run_id)
        assert pid and _alive(pid), srv.log()
        assert _wait_gone(pid, 15), "the kept kernel outlived its deadline"
        assert not os.path.exists(conn)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and srv.api.get(f"/api/v1/runs/{run_id}")[1]["tasks"][0]["kernel_kept_until"]:
            time.sleep(0.1)
        assert srv.api.get(f"/api/v1/runs/{run_id}")[1]["tasks"][0]["kernel_kept_until"] is None
        assert _kept(srv, run_id) == (None, None)
    finally:
        srv.stop()


# ---- isolation: system: the kernel is the owner's, and theirs alone ------------------------

from test_isolation import ALICE, BOB, _exists, accounts, needs_root, run_task, system_server  # noqa: E402,F401


@needs_root
def test_system_isolation_kept_kernel_is_the_owners_alone(h, accounts):
    import pwd
    import shutil
    srv = system_server(h, "limits: {memory: 2g}\n")
    pid = None
    try:
        for u in (ALICE, BOB):
            if not _exists(f"nbhub-{u}"):
                run_task(srv, f"mk{u}", f"owner: {u}\ntasks:\n  t: {{command: [true]}}\n")
        acct = pwd.getpwnam(f"nbhub-{ALICE}")
        other = pwd.getpwnam(f"nbhub-{BOB}")
        nb = write_nb(os.path.join(acct.pw_dir, "pm.ipynb"), *FAILING)
        os.chown(nb, acct.pw_uid, acct.pw_gid)
        run = run_task(srv, "pmsys", f"owner: {ALICE}\ntasks:\n  t:\n    notebook: {nb}\n    kernel: syspy\n"
                       "    post_mortem: 10m\n    limits: {memory: 512m}\n", timeout=120)
        assert run["state"] == "failed", run
        t = run["tasks"][0]
        conn = t["kernel_connection_file"]
        assert conn and t["kernel_kept_until"], (t, srv.log())
        pid, t_id = srv.db().execute("SELECT kernel_pid, id FROM task_runs WHERE run = ?",
                                     (run["id"],)).fetchone()
        # the kernel runs as the task's account, inside the task's cgroup (its limits)
        st = os.stat(f"/proc/{pid}")
        assert st.st_uid == acct.pw_uid
        cg = open(f"/proc/{pid}/cgroup").read()
        assert f"nbhub/u-nbhub-{ALICE}/t{t_id}-1" in cg, cg
        # the connection file (the kernel's key) is the account's alone
        fst, dst = os.stat(conn), os.stat(os.path.dirname(conn))
        assert fst.st_uid == acct.pw_uid and fst.st_mode & 0o077 == 0
        assert dst.st_uid == acct.pw_uid and dst.st_mode & 0o077 == 0
        r = subprocess.run(["cat", conn], user=other.pw_uid, group=other.pw_gid, extra_groups=[],
                           capture_output=True)
        assert r.returncode != 0 and b"key" not in r.stdout
        out.clear()
        assert _eval(conn, "x") == "41"
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)
    if pid:
        assert _wait_gone(pid, 10), "nbhub serve's exit left the kept kernel running"


# ---- the run page ----------------------------------------------------------------------------

def test_run_page_shows_kept_kernel_and_ends_it(h):
    import shutil
    from conftest import REPO
    from nbserve import ADMIN_PASSWORD
    browser_dir = REPO / "tests" / "browser"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not (browser_dir / "node_modules" / "playwright-core").exists() or not os.path.exists(chromium):
        pytest.skip("playwright-core or chromium not installed (scripts/install-deps.sh)")
    srv = Server(h)
    write_nb(srv.flows / "fail.ipynb", *FAILING)
    srv.apply("pmui", "name: pmui\ntasks:\n  t:\n    notebook: fail.ipynb\n    post_mortem: 10m\n")
    srv.start()
    pid = None
    try:
        run_id = srv.trigger("pmui")
        srv.wait_run(run_id)
        pid, _ = _kept(srv, run_id)
        assert pid and _alive(pid), srv.log()
        shots = REPO / "build" / "test-artifacts" / "postmortem"
        shots.mkdir(parents=True, exist_ok=True)
        env = dict(h.env, NBHUB_URL=f"http://127.0.0.1:{srv.port}", NBHUB_USER="admin",
                   NBHUB_PASSWORD=ADMIN_PASSWORD, NBHUB_RUN=str(run_id), CHROMIUM=chromium,
                   NBHUB_SHOTS=str(shots))
        p = h.popen(["node", "--test", "--test-reporter=spec", str(browser_dir / "postmortem.test.mjs")],
                    exe="/usr/bin/env", env=env, cwd=browser_dir)
        r = h.finish(p, timeout=180)
        assert r.rc == 0, r.stdout[-6000:] + r.stderr[-3000:]
        assert _wait_gone(pid, 10), "the page's button did not end the kernel"
    finally:
        srv.stop()
