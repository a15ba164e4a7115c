"""Kernels: `nbhub kernel list`, kernel selection, start failures, interrupt modes,
kernel environment, parallel runs (papermill #511 port races)."""

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import JUPYTER, VENV, code_cells, make_nb, read_nb, stream_text, write_nb


def jupyter_kernelspecs(h):
    p = subprocess.run([JUPYTER, "kernelspec", "list", "--json"], capture_output=True, text=True,
                       timeout=60, env=h.env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["kernelspecs"]


def test_kernel_list_text(h):
    r = h.run(["kernel", "list"], timeout=20)
    assert r.rc == 0, r
    assert "python3" in r.stdout
    assert str(VENV / "share" / "jupyter" / "kernels" / "python3") in r.stdout, r.stdout


def test_kernel_list_json_matches_jupyter(h):
    h.add_kernel("extra-kernel", display_name="Extra", env={"FOO": "bar"})
    want = jupyter_kernelspecs(h)
    r = h.run(["kernel", "list", "--json"], timeout=20)
    assert r.rc == 0, r
    got = json.loads(r.stdout)
    assert "kernelspecs" in got, got
    got = got["kernelspecs"]
    assert set(got) == set(want), (sorted(got), sorted(want))
    for name, w in want.items():
        g = got[name]
        assert os.path.realpath(g["resource_dir"]) == os.path.realpath(w["resource_dir"]), name
        for key in ("argv", "display_name", "language", "env"):
            assert g["spec"].get(key) == w["spec"].get(key), (name, key)
        assert g["spec"].get("interrupt_mode", "signal") == w["spec"].get("interrupt_mode", "signal")


def test_unknown_kernel_lists_available(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "-k", "no-such-kernel"], timeout=30)
    assert r.rc == 4, r
    assert "no-such-kernel" in r.stderr and "python3" in r.stderr, r.stderr


def test_unknown_kernel_from_metadata(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1", kernel="nonexistent-meta-kernel")
    r = h.run(["run", nb, tmp_path / "out.ipynb"], timeout=30)
    assert r.rc == 4, r
    assert "python3" in r.stderr, r.stderr


def test_kernel_option_overrides_metadata(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('ok')", kernel="nonexistent-meta-kernel")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--kernel", "python3"])
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(out))[0]) == "ok\n"


def test_kernel_never_ready_start_timeout(h, tmp_path):
    h.add_kernel("never-ready", argv=["sleep", "1000"])
    nb = write_nb(tmp_path / "in.ipynb", "1", kernel="never-ready")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--start-timeout", "2"], timeout=30)
    assert r.rc == 4, r
    assert 1.5 <= r.elapsed < 8, r
    assert r.stderr.strip()


def test_kernel_exits_during_start(h, tmp_path):
    """A kernel process that exits at once is reported quickly, not after --start-timeout."""
    h.add_kernel("exits-at-once", argv=["sh", "-c", "echo kernel-startup-failed >&2; exit 3"])
    nb = write_nb(tmp_path / "in.ipynb", "1", kernel="exits-at-once")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--start-timeout", "30"], timeout=40)
    assert r.rc == 4, r
    assert r.elapsed < 10, r


def test_kernel_argv_not_found(h, tmp_path):
    h.add_kernel("bad-argv", argv=["/nonexistent/bin/kernel", "{connection_file}"])
    nb = write_nb(tmp_path / "in.ipynb", "1", kernel="bad-argv")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--start-timeout", "30"], timeout=40)
    assert r.rc == 4, r
    assert r.elapsed < 10, r


def test_custom_kernelspec_env_substitution(h, tmp_path):
    h.add_kernel("with-env", env={"NBHUB_T_FOO": "x-${NBHUB_TEST_MARKER}-y", "NBHUB_T_PLAIN": "plain"})
    nb = write_nb(tmp_path / "in.ipynb",
                  "import os\nprint(os.environ['NBHUB_T_FOO'])\nprint(os.environ['NBHUB_T_PLAIN'])",
                  kernel="with-env")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(out))[0]) == f"x-{h.marker}-y\nplain\n"


def test_interrupt_mode_message_timeout(h, tmp_path):
    h.add_kernel("msg-interrupt", interrupt_mode="message")
    nb = write_nb(tmp_path / "in.ipynb", "import time; time.sleep(120)", "print('after')",
                  kernel="msg-interrupt")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--execution-timeout", "2"], timeout=60)
    assert r.rc == 6, r
    assert r.elapsed < 20, r
    assert read_nb(out).metadata.papermill.exception is True


def test_kernel_env_has_jpy_parent_pid(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "import os\nprint(os.environ.get('JPY_PARENT_PID'))\n"
                                         "print(os.getppid())")
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", nb, out])
    r = h.finish(p)
    assert r.rc == 0, r
    jpy, ppid = stream_text(code_cells(read_nb(out))[0]).split()
    assert jpy == str(p.pid), (jpy, p.pid)


def test_kernel_environment_variables_recorded(h, tmp_path):
    h.add_kernel("with-env2", env={"NBHUB_T_REC": "recorded"})
    nb = write_nb(tmp_path / "in.ipynb", "1", kernel="with-env2")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    ev = read_nb(out).metadata.papermill.environment_variables
    assert isinstance(ev, dict)
    assert ev.get("NBHUB_T_REC") == "recorded", ev


def test_parallel_runs_no_port_race(h, tmp_path):
    """papermill #511: parallel runs picking the same ports. 8 rounds of 2 concurrent runs."""
    nb = write_nb(tmp_path / "in.ipynb", "import os\nprint(os.getpid())", "x = sum(range(1000))\nx")

    def one(i):
        out = tmp_path / f"out{i}.ipynb"
        r = h.finish(h.popen(["run", nb, out]), timeout=90)
        return r, out

    failures = []
    pids = set()
    with ThreadPoolExecutor(max_workers=2) as ex:
        for rnd in range(8):
            for r, out in ex.map(one, [2 * rnd, 2 * rnd + 1]):
                if r.rc != 0:
                    failures.append(r)
                    continue
                c1, c2 = code_cells(read_nb(out))
                pids.add(stream_text(c1).strip())
                assert c2.outputs[0].data["text/plain"] == "499500"
    assert not failures, failures[0]
    assert len(pids) == 16, "each run must get its own kernel"


def test_run_time_of_trivial_notebook(h, tmp_path):
    """Sanity bound: kernel start + one cell + shutdown well under papermill's 1-3 s."""
    nb = write_nb(tmp_path / "in.ipynb", "1")
    times = []
    for i in range(3):
        r = h.run(["run", nb, tmp_path / f"out{i}.ipynb"])
        assert r.rc == 0, r
        times.append(r.elapsed)
    assert min(times) < 5, times


def test_kernel_list_skips_broken_kernelspec(h):
    kdir = h.isolate_jupyter() / "broken"
    kdir.mkdir()
    (kdir / "kernel.json").write_text("{ not json")
    h.add_kernel("good-one")
    want = jupyter_kernelspecs(h)
    r = h.run(["kernel", "list", "--json"], timeout=20)
    assert r.rc == 0, r
    got = json.loads(r.stdout)["kernelspecs"]
    assert set(got) == set(want), (sorted(got), sorted(want))
    assert "good-one" in got and "python3" in got


def test_kernel_name_case_and_jupyter_path_precedence(h):
    """JUPYTER_PATH comes before sys.prefix: a python3 spec there shadows the venv's one."""
    h.add_kernel("python3", display_name="Shadowing python3")
    want = jupyter_kernelspecs(h)
    r = h.run(["kernel", "list", "--json"], timeout=20)
    assert r.rc == 0, r
    got = json.loads(r.stdout)["kernelspecs"]
    assert got["python3"]["spec"]["display_name"] == want["python3"]["spec"]["display_name"] == "Shadowing python3"
    assert os.path.realpath(got["python3"]["resource_dir"]) == os.path.realpath(want["python3"]["resource_dir"])
