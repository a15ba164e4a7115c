"""`nbhub run`: input/output handling (files, "-", pipes), input errors, --cwd,
--log-output, progressive writes of OUT, output size cap."""

import json
import os
import re
import subprocess
import time

import nbformat
import pytest

from conftest import code, code_cells, make_nb, read_nb, stream_text, wait_for, write_nb


def test_stdin_to_stdout_with_dashes(h, tmp_path):
    text = nbformat.writes(make_nb("print('via pipes')"))
    r = h.run(["run", "-", "-"], input=text)
    assert r.rc == 0, r
    nb = read_nb(r.stdout)
    assert stream_text(code_cells(nb)[0]) == "via pipes\n"
    assert nb.metadata.papermill.input_path == "-"
    assert nb.metadata.papermill.output_path == "-"


def test_out_omitted_with_piped_stdout_writes_stdout(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('to stdout')")
    r = h.run(["run", nb])          # stdout is a pipe here
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(r.stdout))[0]) == "to stdout\n"


def test_out_omitted_with_tty_stdout_is_usage_error(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    r = h.run_tty_stdout(["run", nb], timeout=20)
    assert r.rc == 2, r
    assert "out" in r.stderr.lower(), r.stderr


def test_piped_stdin_with_one_argument_takes_it_as_out(h, tmp_path):
    """papermill: `cat in.ipynb | papermill out.ipynb` reads stdin and writes out.ipynb."""
    text = nbformat.writes(make_nb("print('piped in')"))
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", out], stdin=subprocess.PIPE)
    r = h.finish(p, input=text.encode())
    assert r.rc == 0, r
    assert stream_text(code_cells(read_nb(out))[0]) == "piped in\n"


def test_invalid_json_reports_line_and_column(h, tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{\n  "cells": [],\n  "metadata": {,\n  "nbformat": 4\n}\n')
    r = h.run(["run", bad, tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r
    assert re.search(r"\b3:\d+", r.stderr), f"no LINE:COL (3:N) in: {r.stderr}"
    assert not (tmp_path / "out.ipynb").exists()


def test_empty_input_is_input_error(h, tmp_path):
    empty = tmp_path / "empty.ipynb"
    empty.write_text("")
    r = h.run(["run", empty, tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r


def test_missing_input_file(h, tmp_path):
    r = h.run(["run", tmp_path / "nope.ipynb", tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r
    assert "nope.ipynb" in r.stderr, r.stderr


def test_nbformat3_is_input_error(h, tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"},
          "worksheets": [{"cells": [{"cell_type": "code", "input": "1", "language": "python",
                                     "outputs": [], "metadata": {}}], "metadata": {}}]}
    p = tmp_path / "v3.ipynb"
    p.write_text(json.dumps(v3))
    r = h.run(["run", p, tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r
    assert "nbformat" in r.stderr.lower() or "version" in r.stderr.lower(), r.stderr


def test_unknown_major_nbformat_is_input_error(h, tmp_path):
    nb = json.loads(nbformat.writes(make_nb("1")))
    nb["nbformat"] = 5
    p = tmp_path / "v5.ipynb"
    p.write_text(json.dumps(nb))
    r = h.run(["run", p, tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r


def test_not_a_notebook_is_input_error(h, tmp_path):
    p = tmp_path / "list.ipynb"
    p.write_text("[1, 2, 3]")
    r = h.run(["run", p, tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r


def test_out_not_writable(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = h.run(["run", nb, blocker / "out.ipynb"], timeout=60)     # parent is a regular file
    assert r.rc == 7, r
    assert "out.ipynb" in r.stderr, r.stderr


def test_cwd_option(h, tmp_path):
    work = tmp_path / "work dir"
    work.mkdir()
    (work / "data.txt").write_text("payload")
    nb = write_nb(tmp_path / "in.ipynb", "import os\nprint(os.getcwd())\nprint(open('data.txt').read())")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--cwd", work])
    assert r.rc == 0, r
    lines = stream_text(code_cells(read_nb(out))[0]).splitlines()
    assert os.path.realpath(lines[0]) == os.path.realpath(work)
    assert lines[1] == "payload"


def test_relative_paths_resolve_against_caller_cwd(h, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    write_nb(tmp_path / "in.ipynb", "print('rel')")
    r = h.run(["run", "in.ipynb", "out.ipynb", "--cwd", sub], cwd=tmp_path)
    assert r.rc == 0, r
    assert (tmp_path / "out.ipynb").exists() and not (sub / "out.ipynb").exists()


def test_log_output_streams_outputs_to_stderr(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('marker-stdout-4711')",
                  "import sys; print('marker-stderr-4712', file=sys.stderr)")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--log-output"])
    assert r.rc == 0, r
    assert "marker-stdout-4711" in r.stderr, r.stderr
    assert "marker-stderr-4712" in r.stderr, r.stderr
    r2 = h.run(["run", nb, tmp_path / "out2.ipynb"])
    assert r2.rc == 0, r2
    assert "marker-stdout-4711" not in r2.stderr, "outputs only on stderr with --log-output"


def test_log_output_is_live(h, tmp_path):
    """The output of a cell reaches stderr while the cell is still running."""
    nb = write_nb(tmp_path / "in.ipynb", "import time\nprint('early-marker', flush=True)\ntime.sleep(8)")
    errf = open(tmp_path / "stderr.log", "w+b")
    p = h.popen(["run", nb, tmp_path / "out.ipynb", "--log-output"], stderr=errf)
    seen = wait_for(lambda: b"early-marker" in (tmp_path / "stderr.log").read_bytes(), timeout=30)
    still_running = p.poll() is None
    r = h.finish(p)
    errf.close()
    assert r.rc == 0, r
    assert seen and still_running, "output appeared on stderr only after the cell finished"


def test_out_written_progressively(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('first')", "import time; time.sleep(2)",
                  "import time; time.sleep(2)", "print('last')")
    out = tmp_path / "out.ipynb"
    p = h.popen(["run", nb, out])
    observed, bad_reads = [], 0
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        if out.exists():
            try:
                nb2 = read_nb(out)
            except Exception:           # a torn read: OUT must be replaced atomically
                bad_reads += 1
            else:
                observed.append([c.metadata.get("papermill", {}).get("status") for c in nb2.cells])
        time.sleep(0.1)
    r = h.finish(p)
    assert r.rc == 0, r
    assert bad_reads == 0, f"{bad_reads} reads of OUT during the run were not a valid notebook"
    partial = [s for s in observed if "completed" in s and s != ["completed"] * 4]
    assert partial, f"never saw a partially executed OUT during the run: {observed[:5]}"
    assert read_nb(out).metadata.papermill.end_time


def test_large_output_truncated_with_note(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "import sys\nchunk = 'x' * (1024 * 1024)\nfor _ in range(300):\n"
                  "    sys.stdout.write(chunk); sys.stdout.flush()",
                  "print('after the flood')")
    out = tmp_path / "out.ipynb"
    r = h.run_with_rusage(["run", nb, out, "--max-output-bytes", str(1024 * 1024)], timeout=240)
    assert r.rc == 0, r
    c1, c2 = code_cells(read_nb(out))
    text = "".join(o.get("text", "") for o in c1.outputs) + json.dumps([o.get("data") for o in c1.outputs])
    n = len(text)
    assert n < 3 * 1024 * 1024, f"output not capped: {n} chars"
    assert "truncat" in text.lower(), "no visible truncation note in the output"
    assert stream_text(c2) == "after the flood\n"
    assert out.stat().st_size < 4 * 1024 * 1024


@pytest.mark.skipif(bool(os.environ.get("NBHUB_SANITIZER")),
                    reason="sanitizer builds hold freed memory in quarantine (256 MB by default)")
def test_large_output_memory_bounded(h, tmp_path):
    """300 MB of stream output with a 1 MiB cap: nbhub's peak RSS stays small."""
    nb = write_nb(tmp_path / "in.ipynb",
                  "import sys\nchunk = 'y' * (1024 * 1024)\nfor _ in range(300):\n"
                  "    sys.stdout.write(chunk); sys.stdout.flush()")
    out = tmp_path / "out.ipynb"
    r = h.run_with_rusage(["run", nb, out, "--max-output-bytes", str(1024 * 1024)], timeout=240)
    assert r.rc == 0, r
    maxrss_mb = r.hwm_kb / 1024   # nbhub's own peak, not its kernel's
    assert 0 < maxrss_mb < 128, f"nbhub peak RSS {maxrss_mb:.0f} MB for a capped 300 MB output"


def test_kernel_fd_output_does_not_corrupt_stdout_notebook(h, tmp_path):
    """OUT = "-": whatever the kernel process writes to its own fd 1/2 (subprocesses, C code)
    must not end up in nbhub's stdout, which carries the notebook (papermill corrupts it)."""
    nb = write_nb(tmp_path / "in.ipynb",
                  "import os\nos.system('echo from-subprocess')\nos.write(1, b'raw fd1 write\\n')\n"
                  "os.write(2, b'raw fd2 write\\n')\nprint('normal')")
    r = h.run(["run", nb, "-"])
    assert r.rc == 0, r
    nb2 = read_nb(r.stdout)            # raises if the JSON on stdout was corrupted
    assert "normal" in stream_text(code_cells(nb2)[0])


def test_cwd_nonexistent_reports_the_directory(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    missing = tmp_path / "no-such-dir"
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--cwd", missing], timeout=30)
    assert r.rc in (2, 3, 4), r
    assert str(missing) in r.stderr, f"the error should name the missing --cwd directory: {r.stderr}"


def test_run_in_place(h, tmp_path):
    nb = write_nb(tmp_path / "nb.ipynb", code("a = 0", tags=["parameters"]), "print(a)")
    r = h.run(["run", nb, nb, "-p", "a", "4"])
    assert r.rc == 0, r
    nb2 = read_nb(nb)
    assert stream_text(code_cells(nb2)[-1]) == "4\n"
    assert len(nb2.cells) == 3


def test_input_is_a_directory(h, tmp_path):
    r = h.run(["run", tmp_path, tmp_path / "out.ipynb"], timeout=20)
    assert r.rc == 3, r


def test_empty_stdin_is_input_error(h, tmp_path):
    r = h.run(["run", "-", tmp_path / "out.ipynb"], input=b"", timeout=20)
    assert r.rc == 3, r


def test_no_kernelspec_in_metadata(h, tmp_path):
    nb = make_nb("1")
    del nb.metadata["kernelspec"]
    p = write_nb(tmp_path / "in.ipynb", nb)
    r = h.run(["run", p, tmp_path / "out.ipynb"], timeout=30)
    assert r.rc in (3, 4), r
    assert "kernel" in r.stderr.lower(), r.stderr
    r = h.run(["run", p, tmp_path / "out.ipynb", "-k", "python3"])
    assert r.rc == 0, r


def test_unicode_and_space_paths(h, tmp_path):
    d = tmp_path / "dïr with space"
    d.mkdir()
    nb = write_nb(d / "ñote bööк.ipynb", "print('ok')")
    out = d / "öut ✓.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert nb2.metadata.papermill.input_path == str(nb)
    assert nb2.metadata.papermill.output_path == str(out)


def test_rich_output_over_cap_is_replaced_by_note(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "from IPython.display import HTML, display\ndisplay(HTML('<p>' + 'x' * (3 * 1024 * 1024) + '</p>'))",
                  "print('next cell')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--max-output-bytes", "100000"])
    assert r.rc == 0, r
    c1, c2 = code_cells(read_nb(out))
    size = sum(len(json.dumps(o)) for o in c1.outputs)
    assert size < 200000, size
    assert "100000" in json.dumps(c1.outputs) or "limit" in json.dumps(c1.outputs).lower()
    assert stream_text(c2) == "next cell\n"


def test_stream_cap_cuts_at_utf8_boundary(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('é' * 100000 + '✓' * 100000)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--max-output-bytes", "50001"])
    assert r.rc == 0, r
    raw_bytes = out.read_bytes()
    raw_bytes.decode("utf-8")          # strict: no broken sequence
    (c,) = code_cells(read_nb(out))
    text = stream_text(c)
    assert "\ufffd" not in text
    assert len(text.encode()) < 50001 + 1000
