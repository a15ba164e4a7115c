"""`nbhub run`: SIGTERM / SIGINT sent to nbhub while a cell runs or while the kernel starts.

Expected: exit 143 / 130, OUT written and valid, marked failed
(metadata.papermill.exception true), and no kernel process left behind
(the harness's orphan check runs after each test)."""

import os
import signal
import time

import nbformat
import pytest

from conftest import code_cells, read_nb, stream_text, wait_for, write_nb


def started_nb(tmp_path):
    flag = tmp_path / "started.flag"
    nb = write_nb(tmp_path / "in.ipynb", "print('first')",
                  f"import time\nopen({str(flag)!r}, 'w').close()\ntime.sleep(60)",
                  "print('never')")
    return nb, flag


@pytest.mark.parametrize("sig,rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_run(h, tmp_path, sig, rc):
    nb, flag = started_nb(tmp_path)
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", nb, out])
    assert wait_for(flag.exists, timeout=60), "the sleeping cell never started"
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(p.pid, sig)
    r = h.finish(p, timeout=30)
    assert r.rc == rc, r
    assert time.monotonic() - t0 < 15, "nbhub took too long to stop after the signal"
    nb2 = read_nb(out)
    assert nb2.metadata.papermill.exception is True
    c1, c2, c3 = code_cells(nb2)
    assert stream_text(c1) == "first\n"
    assert c2.metadata.papermill["status"] == "failed"
    assert c3.metadata.papermill["status"] == "pending"


@pytest.mark.parametrize("sig,rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_during_kernel_start(h, tmp_path, sig, rc):
    """The kernel takes 3 s to start (a wrapper sleeps first); the signal arrives meanwhile."""
    h.add_kernel("slow-start", argv=["sh", "-c", 'sleep 3; exec python -m ipykernel_launcher -f "$0"',
                                     "{connection_file}"])
    nb = write_nb(tmp_path / "in.ipynb", "print(1)", kernel="slow-start")
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", nb, out])
    time.sleep(0.8)
    os.kill(p.pid, sig)
    r = h.finish(p, timeout=30)
    assert r.rc == rc, r
    assert r.elapsed < 3, "nbhub waited for the kernel instead of stopping at once"
    if out.exists():
        assert read_nb(out).metadata.papermill.get("exception") is True


@pytest.mark.parametrize("sig,rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_at_any_moment_is_consistent(h, tmp_path, sig, rc):
    """A signal at an arbitrary moment of a short run (start, cell, final write, kernel
    shutdown): nbhub exits either 0 with a completed notebook or `rc` with one marked failed,
    never a mix, and never leaves a kernel behind."""
    nb = write_nb(tmp_path / "in.ipynb", "print(1)", "x = 2")
    full = h.run(["run", nb, tmp_path / "timing.ipynb"])
    assert full.rc == 0, full
    problems = []
    for i in range(10):
        out = tmp_path / f"out{i}.ipynb"
        p = h.popen(["run", nb, out])
        delay = full.elapsed * (i + 0.5) / 10
        time.sleep(delay)
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        r = h.finish(p, timeout=30)
        exc = read_nb(out).metadata.papermill.get("exception") if out.exists() else "<no OUT>"
        ok = (r.rc == 0 and exc in (None, False)) or (r.rc == rc and exc in (True, "<no OUT>"))
        if not ok:
            problems.append(f"signal after {delay:.2f}s of a {full.elapsed:.2f}s run: rc={r.rc}, "
                            f"metadata.papermill.exception={exc!r}")
    assert not problems, "\n".join(problems)


def test_second_sigterm_while_stopping(h, tmp_path):
    """Two SIGTERMs in a row must not leave a kernel behind or a torn OUT."""
    nb, flag = started_nb(tmp_path)
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", nb, out])
    assert wait_for(flag.exists, timeout=60)
    os.kill(p.pid, signal.SIGTERM)
    time.sleep(0.05)
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    r = h.finish(p, timeout=30)
    assert r.rc == 143, r
    read_nb(out)


def _kernels_of(pid):
    """Pids of processes whose environment says JPY_PARENT_PID=pid (our kernels)."""
    found = []
    needle = f"JPY_PARENT_PID={pid}".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(d))
        except OSError:
            pass
    return found


def test_sigkill_of_nbhub_takes_the_kernel_down(h, tmp_path):
    """kill -9 leaves nbhub no chance to clean up: PR_SET_PDEATHSIG must take the
    kernel with it, and OUT must be the last complete (atomic) version."""
    nb = write_nb(tmp_path / "in.ipynb", "print('started', flush=True)", "import time; time.sleep(60)")
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", nb, out, "--write-interval", "100"])
    deadline = time.monotonic() + 30
    kernels = []
    while time.monotonic() < deadline and not kernels:
        kernels = _kernels_of(p.pid)
        time.sleep(0.1)
    assert kernels, "kernel not found"
    wait_for(lambda: out.exists() and "started" in out.read_text(), timeout=30)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{k}") and
                                              open(f"/proc/{k}/stat").read().split()[2] != "Z"
                                              for k in kernels):
        time.sleep(0.05)
    alive = [k for k in kernels if os.path.exists(f"/proc/{k}")
             and open(f"/proc/{k}/stat").read().split()[2] != "Z"]
    assert not alive, f"kernel(s) {alive} survived kill -9 of nbhub"
    nbformat.validate(read_nb(out))
