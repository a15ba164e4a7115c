"""How kernels are stopped: a real ipykernel asked with shutdown_request exits by
itself (status 0, its atexit handlers run), never by SIGTERM; a kernel that
ignores the request is still killed: SIGTERM after the grace, SIGKILL two
seconds later.  Both for `nbhub run` (its own kernel, and --existing-kernel
--shutdown-kernel) and for `nbhub serve` (the warm pool: a kernel lent to a task
and given back, idle kernels when the daemon stops).

The kernels are real ipykernels started through a wrapper (KERNEL below) that
records how each one ended in DIR/<pid>: "atexit" when Python exited normally,
"SIGTERM" when the signal arrived (the wrapper then dies of it, as an ipykernel
does).  MODE "ignore" replaces ipykernel's shutdown_request handler with one
that does nothing; "stubborn" also ignores SIGTERM (only SIGKILL ends it).
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import VENV_BIN, code, code_cells, read_nb, stream_text, wait_for, write_nb
from nbserve import Server

KERNEL = r'''
import atexit, os, signal, sys
rec_dir, mode = sys.argv[1], sys.argv[2]
rec = os.path.join(rec_dir, str(os.getpid()))

def note(what):
    with open(rec, "a") as f:
        f.write(what + "\n")

note("started")
atexit.register(note, "atexit")

def on_term(sig, frame):
    note("SIGTERM")
    if mode == "stubborn":
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)

signal.signal(signal.SIGTERM, on_term)
if mode in ("ignore", "stubborn"):
    from ipykernel.kernelbase import Kernel

    async def shutdown_request(self, stream, ident, parent):
        note("shutdown_request ignored")

    Kernel.shutdown_request = shutdown_request
from ipykernel import kernelapp
kernelapp.launch_new_instance(argv=sys.argv[3:])
'''


def add_kernel(h, name, mode):
    """A kernelspec NAME running the wrapper in MODE; returns the records' dir."""
    rec = h.tmp / f"rec-{name}"
    rec.mkdir()
    script = h.tmp / "kernel_wrapper.py"
    script.write_text(KERNEL)
    h.add_kernel(name, argv=[str(VENV_BIN / "python"), str(script), str(rec), mode,
                             "-f", "{connection_file}"])
    return rec


def records(rec):
    """{pid: [lines]} of every kernel started with the wrapper."""
    return {int(p.name): p.read_text().split("\n")[:-1] for p in rec.iterdir()}


def ended(rec):
    """All kernels recorded have ended (atexit or SIGTERM noted, pid gone)."""
    out = records(rec)
    for pid, lines in out.items():
        if "atexit" not in lines and "SIGTERM" not in lines:
            return False
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            pass
    return out


def assert_exited_cleanly(rec, n=None):
    r = wait_for(lambda: ended(rec), 20)
    assert r, records(rec)
    if n is not None:
        assert len(r) == n, r
    for pid, lines in r.items():
        assert lines == ["started", "atexit"], (pid, lines)
    return r


# -- nbhub run ---------------------------------------------------------------------


def test_run_kernel_exits_on_shutdown_request(h, tmp_path):
    rec = add_kernel(h, "coop", "cooperate")
    nb = write_nb(tmp_path / "in.ipynb", "print(6 * 7)", kernel="coop")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--log-level", "debug"])
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(tmp_path / "out.ipynb"))[0]) == "42\n"
    assert "did not stop" not in r.stderr and "SIGTERM" not in r.stderr, r.stderr
    assert "status=0 signal=0" in r.stderr, r.stderr
    assert_exited_cleanly(rec, 1)


def test_run_kernel_exits_after_a_failed_cell(h, tmp_path):
    rec = add_kernel(h, "coop", "cooperate")
    nb = write_nb(tmp_path / "in.ipynb", "1/0", kernel="coop")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--log-level", "debug"])
    assert r.rc == 1, r
    assert "did not stop" not in r.stderr, r.stderr
    assert_exited_cleanly(rec, 1)


@pytest.fixture
def own_kernel(h):
    """Start a wrapper kernel ourselves (as a user would, for --existing-kernel)."""
    started = []

    def start(mode):
        rec = h.tmp / f"rec-own-{len(started)}"
        rec.mkdir()
        script = h.tmp / "kernel_wrapper.py"
        script.write_text(KERNEL)
        conn = h.tmp / f"kernel-{len(started)}.json"
        p = subprocess.Popen([str(VENV_BIN / "python"), str(script), str(rec), mode, "-f", str(conn),
                              "--transport", "ipc"],
                             env=h.env, cwd=str(h.tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        started.append(p)
        h.pids.append(p.pid)
        assert wait_for(lambda: conn.exists() and conn.stat().st_size > 0, 30)
        json.loads(conn.read_text())
        return p, conn, rec

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("with_pid", [True, False], ids=["pidfd", "no-pid"])
def test_run_existing_kernel_shutdown_kernel(h, tmp_path, own_kernel, with_pid):
    """--shutdown-kernel: the kernel exits by itself and nbhub does not wait for a
    grace it need not (without a pid it cannot see the exit: the reply says it)."""
    p, conn, rec = own_kernel("cooperate")
    nb = write_nb(tmp_path / "in.ipynb", "print('on it')")
    args = ["run", nb, tmp_path / "out.ipynb", "--existing-kernel", conn, "--shutdown-kernel",
            "--log-level", "debug"]
    if with_pid:
        args += ["--kernel-pid", p.pid]
    r = h.run(args)
    assert r.rc == 0, r
    assert "did not stop" not in r.stderr and "SIGTERM" not in r.stderr, r.stderr
    assert p.wait(timeout=10) == 0
    assert_exited_cleanly(rec, 1)
    # The shutdown is a round trip of a few ms and the exit ~0.1 s: not a grace.
    assert r.elapsed < 2.5, r


def test_run_existing_kernel_left_running(h, tmp_path, own_kernel):
    p, conn, rec = own_kernel("cooperate")
    nb = write_nb(tmp_path / "in.ipynb", "print(1)")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--existing-kernel", conn, "--kernel-pid", p.pid])
    assert r.rc == 0, r
    time.sleep(0.5)
    assert p.poll() is None
    assert records(rec)[p.pid] == ["started"]


def test_run_kernel_ignoring_shutdown_is_terminated_after_the_grace(h, tmp_path):
    """The documented stop: shutdown_request, 3 s, SIGTERM."""
    rec = add_kernel(h, "deaf", "ignore")
    nb = write_nb(tmp_path / "in.ipynb", "print(1)", kernel="deaf")
    t0 = time.monotonic()
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--log-level", "info"])
    assert r.rc == 0, r
    assert "kernel did not stop; sending SIGTERM" in r.stderr, r.stderr
    assert "SIGKILL" not in r.stderr, r.stderr
    [(pid, lines)] = wait_for(lambda: ended(rec), 10).items()
    assert lines == ["started", "shutdown_request ignored", "SIGTERM"], lines
    assert 2.5 < time.monotonic() - t0 < 3 + 10, r


def test_run_kernel_ignoring_sigterm_is_killed(h, tmp_path):
    """... and SIGKILL 2 s after SIGTERM."""
    rec = add_kernel(h, "stubborn", "stubborn")
    nb = write_nb(tmp_path / "in.ipynb", "print(1)", kernel="stubborn")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--log-level", "info"])
    assert r.rc == 0, r
    assert "kernel did not stop; sending SIGTERM" in r.stderr, r.stderr
    assert "kernel ignored SIGTERM; sending SIGKILL" in r.stderr, r.stderr
    assert 4.5 < r.elapsed < 5 + 10, r
    [(pid, lines)] = records(rec).items()
    assert lines == ["started", "shutdown_request ignored", "SIGTERM"], lines
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5)


# -- nbhub serve: the warm pool ----------------------------------------------------

FLOW = """
name: chain
tasks:
  a: {notebook: a.ipynb}
  b: {notebook: b.ipynb, after: [a]}
"""


def pool_ready(srv, name):
    st, info = srv.api.get("/api/v1/info")
    return st == 200 and (info or {}).get("pool", {}).get(name, {}).get("ready", 0)


def serve_with_pool(h, name, mode, size=2, flow=FLOW):
    rec = add_kernel(h, name, mode)
    srv = Server(h, args=["--pool", f"{name}={size}", "--log-level", "debug"])
    write_nb(srv.flows / "a.ipynb", code("print('a')"), kernel=name)
    write_nb(srv.flows / "b.ipynb", code("print('b')"), kernel=name)
    srv.apply("chain", flow)
    srv.start()
    assert wait_for(lambda: pool_ready(srv, name) >= size, 60), srv.log()
    return srv, rec


def run_chain_on_warm_kernels(srv):
    run = srv.wait_run(srv.trigger("chain"))
    assert run["state"] == "success", (run, srv.log())
    for t in ("a", "b"):
        st, log, _ = srv.api.request("GET", f"/api/v1/runs/{run['id']}/tasks/{t}/log", raw=True)
        assert st == 200 and b"(warm kernel)" in log, (t, log)
    return run


def test_serve_pool_kernels_exit_without_sigterm(h):
    """Kernels lent to tasks and given back, and the idle ones when the daemon
    stops: all asked to shut down, all exit by themselves."""
    srv, rec = serve_with_pool(h, "coop", "cooperate")
    try:
        run_chain_on_warm_kernels(srv)
        # the two lent kernels are stopped when their tasks end (the daemon
        # keeps running): exited on their own
        def gone():
            done = [p for p, l in records(rec).items() if "atexit" in l and not os.path.exists(f"/proc/{p}")]
            return done if len(done) >= 2 else None
        assert wait_for(gone, 20), (records(rec), srv.log())
        assert wait_for(lambda: pool_ready(srv, "coop") >= 2, 60), srv.log()
    finally:
        assert srv.stop() == 0
    log = srv.log_path.read_text()
    assert "did not stop" not in log and "SIGTERM" not in log, log
    started = log.count('msg="kernel starting"')
    assert started >= 4, log
    assert log.count("status=0 signal=0") == started, log
    assert_exited_cleanly(rec, started)


def test_serve_pool_kernel_ignoring_shutdown_is_terminated(h):
    """A returned kernel that ignores shutdown_request gets SIGTERM after the
    pool's grace (3 s); idle ones likewise when the daemon stops."""
    srv, rec = serve_with_pool(h, "deaf", "ignore", size=1,
                               flow="name: chain\ntasks:\n  a: {notebook: a.ipynb}\n")
    try:
        run = srv.wait_run(srv.trigger("chain"))
        assert run["state"] == "success", (run, srv.log())
        t_end = time.monotonic()
        lent = wait_for(lambda: [p for p, l in records(rec).items() if "SIGTERM" in l], 20)
        assert len(lent) == 1, records(rec)
        assert time.monotonic() - t_end > 2.5, "SIGTERM came before the grace"
        assert records(rec)[lent[0]] == ["started", "shutdown_request ignored", "SIGTERM"]
        assert wait_for(lambda: pool_ready(srv, "deaf") >= 1, 60), srv.log()
        t0 = time.monotonic()
    finally:
        assert srv.stop() == 0
    assert time.monotonic() - t0 < 3 + 10
    log = srv.log_path.read_text()
    started = log.count('msg="kernel starting"')
    assert log.count("kernel did not stop; sending SIGTERM") == started, log
    r = wait_for(lambda: ended(rec), 10)
    assert r and len(r) == started, records(rec)
    for pid, lines in r.items():
        assert lines == ["started", "shutdown_request ignored", "SIGTERM"], (pid, lines)
