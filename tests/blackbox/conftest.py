"""Black-box test harness for `nbhub run` / `nbhub kernel list`.

The tests start the real binary (NBHUB_BIN, default <repo>/build/nbhub) against a
real ipykernel from the project's .venv, exactly as a user with an activated venv
would: PATH starts with <repo>/.venv/bin and VIRTUAL_ENV is set, so the stock
`python3` kernelspec (argv[0] = "python") resolves to the venv's interpreter.

Every test is bounded in time (all subprocesses have timeouts and are killed on
expiry) and ends with an orphan check: no process may survive the test that
carries this test's marker. A process is ours when
  - its environment holds NBHUB_TEST_MARKER=<uuid of this test> (kernels inherit
    nbhub's environment, so they carry it too), or
  - its environment holds JPY_PARENT_PID=<pid of an nbhub we started>, or
  - its command line mentions this test's tmp directory (connection files,
    custom kernelspecs).
Leftovers are reported with their command lines, killed by pid, and the test
errors at teardown.
"""

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
VENV_BIN = VENV / "bin"
NBHUB = os.environ.get("NBHUB_BIN", str(REPO / "build" / "nbhub"))
PAPERMILL = str(VENV_BIN / "papermill")
JUPYTER = str(VENV_BIN / "jupyter")

# Default bound for a short run (kernel start ~1 s here; machines are noisy).
RUN_TIMEOUT = 90


# --------------------------------------------------------------------------- notebooks

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def code(source, tags=None, **metadata):
    c = new_code_cell(source)
    if tags:
        c.metadata["tags"] = list(tags)
    c.metadata.update(metadata)
    return c


def md(source, tags=None):
    c = new_markdown_cell(source)
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def raw(source):
    return new_raw_cell(source)


def make_nb(*cells, kernel="python3", language="python"):
    """A v4.5 notebook; plain strings become code cells."""
    nb = new_notebook(metadata={
        "kernelspec": dict(KERNELSPEC, name=kernel, language=language),
        "language_info": {"name": language},
    })
    nb.cells = [code(c) if isinstance(c, str) else c for c in cells]
    nbformat.validate(nb)
    return nb


def write_nb(path, *cells, **kw):
    nb = cells[0] if cells and isinstance(cells[0], nbformat.NotebookNode) and "cells" in cells[0] \
        else make_nb(*cells, **kw)
    path = Path(path)
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def read_nb(path_or_text):
    """Load an output notebook (path or JSON text) and validate it against the schema."""
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and not path_or_text.lstrip().startswith("{")):
        text = Path(path_or_text).read_text(encoding="utf-8")
    else:
        text = path_or_text
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    return nb


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def stream_text(cell, name="stdout"):
    return "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == name)


def all_text(cell):
    """Every piece of text of a cell's outputs (streams, text/plain, errors), for loose searches."""
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts += [o.ename, o.evalue] + list(o.traceback)
        else:
            for v in o.get("data", {}).values():
                parts.append(v if isinstance(v, str) else json.dumps(v))
    return "\n".join(parts)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(s):
    return ANSI.sub("", s)


# --------------------------------------------------------------------------- processes

class Result:
    def __init__(self, args, rc, stdout, stderr, elapsed, rusage=None, pid=None):
        self.args, self.rc, self.stdout, self.stderr = args, rc, stdout, stderr
        self.elapsed, self.rusage, self.pid = elapsed, rusage, pid

    def __repr__(self):
        return (f"<Result rc={self.rc} elapsed={self.elapsed:.2f}s args={self.args}\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}>")


def _vm_hwm_kb(pid):
    """The process's own peak RSS (VmHWM) in kB, or 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait4_with_timeout(proc, timeout):
    """Reap `proc` with os.wait4 (to get its rusage) within `timeout` s; None on timeout.

    wait4's ru_maxrss also covers the descendants the process reaped (a kernel
    is one), so proc.hwm_kb records the process's OWN peak, sampled from
    /proc/PID/status every 20 ms (VmHWM only grows, so late samples still see
    an earlier peak)."""
    deadline = time.monotonic() + timeout
    proc.hwm_kb = 0
    while True:
        proc.hwm_kb = max(proc.hwm_kb, _vm_hwm_kb(proc.pid))
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode < 0:   # killed by a signal: report it like a shell (128+N)
                proc.returncode = 128 - proc.returncode
            return ru
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


class Harness:
    """Runs nbhub (and papermill / jupyter) for one test; remembers pids for the orphan check."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.marker = uuid.uuid4().hex
        self.pids = []
        self.procs = []
        path = os.environ.get("PATH", "/usr/bin:/bin")
        self.env = dict(os.environ)
        for k in ("PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR"):
            self.env.pop(k, None)
        self.env.update({
            "PATH": f"{VENV_BIN}:{path}",
            "VIRTUAL_ENV": str(VENV),
            "NBHUB_TEST_MARKER": self.marker,
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "PYTHONDONTWRITEBYTECODE": "1",
            # Tests run as root, where nbhub serve defaults to isolation: system;
            # the tests of that mode (test_isolation.py) ask for it.
            "NBHUB_ISOLATION": "shared",
        })
        # Under `make SANITIZER=address` ASan keeps up to 256 MB of freed memory
        # in quarantine, which peak-RSS tests would measure instead of nbhub.
        self.env.setdefault("ASAN_OPTIONS", "quarantine_size_mb=16")
        self.san_dir = None
        if os.environ.get("NBHUB_SANITIZER"):
            self._sanitizer_logs()
        self.kernels_dir = None

    def _sanitizer_logs(self):
        """Every sanitized nbhub started with this harness's env reports to a
        file of san_dir (log_path), checked after every test and at the end
        of the session (_sanitizer_check, pytest_sessionfinish).  The reports
        went to stderr, which for a server is a log file nobody reads once
        the test passed, and for `h.run` a string most tests do not look at.
        The directory is world-writable (sticky) because tasks and kernels
        may run as other accounts (isolation: system); ASan exits when it
        cannot open its log."""
        import tempfile
        self.san_dir = Path(tempfile.mkdtemp(prefix="nbhub-san-"))
        self.san_dir.chmod(0o1777)
        _SAN_DIRS.append(self.san_dir)
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            opts = self.env.get(var, "")
            self.env[var] = (opts + ":" if opts else "") + f"log_path={self.san_dir}/{var[:-8].lower()}"

    # -- custom kernelspecs in an isolated Jupyter home -------------------------------
    def isolate_jupyter(self):
        """JUPYTER_PATH / JUPYTER_DATA_DIR / HOME under tmp, for custom kernelspecs."""
        if self.kernels_dir is None:
            jp = self.tmp / "jupyter_path"
            self.kernels_dir = jp / "kernels"
            self.kernels_dir.mkdir(parents=True)
            (self.tmp / "jupyter_data").mkdir()
            home = self.tmp / "home"
            home.mkdir()
            self.env.update({
                "JUPYTER_PATH": str(jp),
                "JUPYTER_DATA_DIR": str(self.tmp / "jupyter_data"),
                "HOME": str(home),
                "IPYTHONDIR": str(home / ".ipython"),
                "MPLCONFIGDIR": str(home / ".mpl"),
            })
        return self.kernels_dir

    def add_kernel(self, name, argv=None, **spec):
        kdir = self.isolate_jupyter() / name
        kdir.mkdir()
        if argv is None:
            argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        body = {"argv": argv, "display_name": spec.pop("display_name", f"Test {name}"),
                "language": spec.pop("language", "python")}
        body.update(spec)
        (kdir / "kernel.json").write_text(json.dumps(body, indent=1))
        return kdir

    # -- running ------------------------------------------------------------------------
    def popen(self, args, exe=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, cwd=None, env=None):
        exe = exe or NBHUB
        argv = [str(exe)] + [str(a) for a in args]
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                             cwd=str(cwd or self.tmp), env=env or self.env, start_new_session=True)
        p._t0 = time.monotonic()
        p._argv = argv
        self.pids.append(p.pid)
        self.procs.append(p)
        return p

    def finish(self, p, timeout=RUN_TIMEOUT, input=None):
        """Feed input, collect output, reap with rusage. Kills and fails on timeout."""
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(p)
            out, err = p.communicate()
            pytest.fail(f"timed out after {timeout}s: {p._argv}\n--- stderr ---\n"
                        f"{(err or b'').decode(errors='replace')[-3000:]}")
        if p.returncode < 0:   # killed by a signal: report it like a shell does (128+N)
            p.returncode = 128 - p.returncode
        ru = None
        elapsed = time.monotonic() - p._t0
        dec = lambda b: b.decode("utf-8", errors="replace") if isinstance(b, bytes) else (b or "")
        return Result(p._argv, p.returncode, dec(out), dec(err), elapsed, ru, p.pid)

    def run(self, args, timeout=RUN_TIMEOUT, input=None, exe=None, cwd=None, env=None):
        stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
        if isinstance(input, str):
            input = input.encode()
        p = self.popen(args, exe=exe, stdin=stdin, cwd=cwd, env=env)
        return self.finish(p, timeout=timeout, input=input)

    def run_with_rusage(self, args, timeout=RUN_TIMEOUT, exe=None):
        """Run with stdout/stderr to files and reap with wait4 to get the child's rusage."""
        out_f = open(self.tmp / f"stdout.{len(self.pids)}", "w+b")
        err_f = open(self.tmp / f"stderr.{len(self.pids)}", "w+b")
        p = self.popen(args, exe=exe, stdout=out_f, stderr=err_f)
        ru = _wait4_with_timeout(p, timeout)
        if ru is None:
            self.kill(p)
            pytest.fail(f"timed out after {timeout}s: {p._argv}")
        out_f.seek(0), err_f.seek(0)
        r = Result(p._argv, p.returncode, out_f.read().decode(errors="replace"),
                   err_f.read().decode(errors="replace"), time.monotonic() - p._t0, ru, p.pid)
        r.hwm_kb = p.hwm_kb
        out_f.close(), err_f.close()
        return r

    def run_tty(self, args, stream="stdout", timeout=RUN_TIMEOUT):
        """Run with `stream` ("stdout" or "stderr") on a pseudo-terminal, the other
        one to a file, stdin /dev/null.  The Result holds each stream's text."""
        import select
        master, slave = pty.openpty()
        other_f = open(self.tmp / f"other.tty.{len(self.pids)}", "w+b")
        if stream == "stdout":
            p = self.popen(args, stdout=slave, stderr=other_f)
        else:
            p = self.popen(args, stdout=other_f, stderr=slave)
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:      # EIO: the slave side was closed
                    data = b""
                if data:
                    chunks.append(data)
                    continue
            if p.poll() is not None:
                break
        else:
            self.kill(p)
            p.wait(timeout=10)
            pytest.fail(f"timed out after {timeout}s: {p._argv}")
        os.close(master)
        p.wait(timeout=10)
        other_f.seek(0)
        other = other_f.read().decode(errors="replace")
        other_f.close()
        tty = b"".join(chunks).decode(errors="replace")
        rc = 128 - p.returncode if p.returncode < 0 else p.returncode
        out, err = (tty, other) if stream == "stdout" else (other, tty)
        return Result(p._argv, rc, out, err, time.monotonic() - p._t0)

    def run_tty_stdout(self, args, timeout=RUN_TIMEOUT):
        """Run with stdout on a pseudo-terminal (stdin /dev/null, stderr to a file)."""
        return self.run_tty(args, "stdout", timeout)

    def kill(self, p):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.kill()
        except ProcessLookupError:
            pass

    # -- orphan check ----------------------------------------------------------------
    def leftovers(self):
        me = os.getpid()
        mark = f"NBHUB_TEST_MARKER={self.marker}".encode()
        # nbhub serve gives its tasks none of its own NBHUB_* variables; this
        # one they keep, so processes of a flow's task are found too
        rt = f"JUPYTER_RUNTIME_DIR={self.tmp / 'runtime'}".encode()
        parents = {f"JPY_PARENT_PID={pid}".encode() for pid in self.pids}
        tmp = str(self.tmp).encode()
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
                if stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X"):
                    continue     # zombie: already dead, just not reaped
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if mark in env or rt in env or any(e in parents for e in env) or tmp in cmd:
                found.append((int(d), cmd.replace(b"\0", b" ").decode(errors="replace")))
        return found

    def cleanup(self, grace=5.0):
        """Reap our direct children, then wait up to `grace` s for marked processes to go."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self.kill(p)
                    p.wait(timeout=5)
        deadline = time.monotonic() + grace
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.leftovers()
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


@pytest.fixture
def h(tmp_path):
    """The per-test harness; fails the test at teardown if a marked process survived."""
    harness = Harness(tmp_path)
    yield harness
    left = harness.cleanup()
    if left:
        pytest.fail("leftover processes after the test (killed now):\n" +
                    "\n".join(f"  pid {pid}: {cmd[:200]}" for pid, cmd in left), pytrace=False)


# Sanitizer log directories of every Harness (NBHUB_SANITIZER) and the reports shown already.
_SAN_DIRS = []
_SAN_SEEN = set()


def _new_sanitizer_reports():
    out = []
    for d in _SAN_DIRS:
        for f in sorted(d.iterdir()) if d.is_dir() else ():
            text = f.read_text(errors="replace")
            if f in _SAN_SEEN or not text.strip():
                continue
            _SAN_SEEN.add(f)
            out.append(f"--- {f} ---\n{text[-6000:]}")
    return out


@pytest.fixture(autouse=True)
def _sanitizer_check():
    """Under NBHUB_SANITIZER a test errors if a sanitizer reported anything
    while it ran (its own nbhubs, or a module-scoped server's: set up before
    this fixture, so torn down after it, and reports of theirs that come
    later are pytest_sessionfinish's)."""
    yield
    reports = _new_sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports during the test:\n" + "\n".join(reports), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    reports = _new_sanitizer_reports()
    if reports:
        sys.stderr.write("\nsanitizer reports after the last test (module-scoped servers):\n" +
                         "\n".join(reports) + "\n")
        session.exitstatus = 1
    import shutil
    for d in _SAN_DIRS:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    if not (os.path.isfile(NBHUB) and os.access(NBHUB, os.X_OK)):
        pytest.exit(f"nbhub binary not found or not executable: {NBHUB} (set NBHUB_BIN)", returncode=2)


def wait_for(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


@pytest.fixture(scope="session")
def keycloak(tmp_path_factory):
    """A real Keycloak with the nbhub realm (tests/blackbox/keycloak.py), started once per
    session on the first test that asks for it and stopped at the end.  Skipped only when
    Java is missing; a missing install is an error (scripts/install-deps.sh provides it)."""
    import keycloak as kcmod
    if kcmod.java_missing():
        pytest.skip("Keycloak tests need Java (openjdk-17-jre-headless)")
    kc = kcmod.Keycloak(tmp_path_factory.mktemp("keycloak"))
    if os.environ.get("NBHUB_KEYCLOAK_PORT"):
        # A Keycloak already running with this fixture's admin and realm (a developer's loop:
        # python tests/blackbox/keycloak.py PORT starts one); its realm is imported afresh.
        kc.port = int(os.environ["NBHUB_KEYCLOAK_PORT"])
        kc.import_realm()
        yield kc
        return
    try:
        kc.start()
    except Exception:
        kc.stop()
        raise
    sys.stderr.write(f"\nkeycloak: ready in {kc.start_seconds:.1f} s on port {kc.port}, "
                     f"RSS {kc.rss_kib() // 1024} MiB\n")
    yield kc
    kc.stop()
