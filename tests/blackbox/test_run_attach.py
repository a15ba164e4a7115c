"""`nbhub run --existing-kernel`: run on a kernel someone else started (the
daemon's warm pool will hand kernels over this way)."""

import os
import signal
import time

import pytest
from jupyter_client import KernelManager

from conftest import code_cells, read_nb, stream_text, write_nb


@pytest.fixture
def kernel(h):
    """A real ipykernel started by jupyter_client, in its own process group."""
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=dict(h.env), cwd=str(h.tmp))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    kc.stop_channels()
    yield km
    if km.is_alive():
        km.shutdown_kernel(now=True)


def kernel_pid(km):
    return km.provisioner.process.pid


def test_attach_runs_and_leaves_the_kernel_running(h, tmp_path, kernel):
    nb = write_nb(tmp_path / "in.ipynb", "x = 41", "print(x + 1)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--existing-kernel", kernel.connection_file,
               "--kernel-pid", kernel_pid(kernel)])
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(out))[1]) == "42\n"
    assert kernel.is_alive()
    # the kernel keeps its state: a second run sees x
    nb2 = write_nb(tmp_path / "in2.ipynb", "print(x)")
    r = h.run(["run", nb2, tmp_path / "out2.ipynb", "--existing-kernel", kernel.connection_file])
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(tmp_path / "out2.ipynb"))[0]) == "41\n"


def test_attach_shutdown_kernel(h, tmp_path, kernel):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--existing-kernel", kernel.connection_file,
               "--kernel-pid", kernel_pid(kernel), "--shutdown-kernel"])
    assert r.rc == 0, r
    deadline = time.monotonic() + 10
    while kernel.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not kernel.is_alive()


@pytest.mark.parametrize("with_pid", [True, False], ids=["pidfd", "heartbeat"])
def test_attached_kernel_death_is_noticed(h, tmp_path, kernel, with_pid):
    nb = write_nb(tmp_path / "in.ipynb", "import time; time.sleep(60)")
    args = ["run", nb, tmp_path / "out.ipynb", "--existing-kernel", kernel.connection_file]
    if with_pid:
        args += ["--kernel-pid", kernel_pid(kernel)]
    p = h.popen(args)
    time.sleep(2)
    t0 = time.monotonic()
    os.kill(kernel_pid(kernel), signal.SIGKILL)
    r = h.finish(p, timeout=30)
    noticed = time.monotonic() - t0
    assert r.rc == 5, r
    # pidfd: at once; heartbeat: 1 s pings, 3 s without an echo
    assert noticed < (1.0 if with_pid else 5.0), noticed
    cell = code_cells(read_nb(tmp_path / "out.ipynb"))[0]
    assert [o.ename for o in cell.outputs if o.output_type == "error"] == ["DeadKernelError"]


def test_attach_interrupt_on_timeout(h, tmp_path, kernel):
    nb = write_nb(tmp_path / "in.ipynb", "while True: pass", "print('after')")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--existing-kernel", kernel.connection_file,
               "--kernel-pid", kernel_pid(kernel), "--execution-timeout", "1"])
    assert r.rc == 6, r
    assert kernel.is_alive()   # interrupted, not killed


def test_attach_missing_connection_file(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--existing-kernel", tmp_path / "nope.json"])
    assert r.rc == 4, r
    assert "nope.json" in r.stderr
