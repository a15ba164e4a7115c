"""`nbhub run`: failing cells, cell tags, dead kernels, timeouts, stdin requests."""

from conftest import code, code_cells, md, read_nb, stream_text, strip_ansi, tagged, all_text, write_nb

ERROR_TAG = "papermill-error-cell-tag"


def test_error_cell_banner_anchor_and_exit_1(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", md("# t"), "x = 1", "print('before')", "1/0", "print('after')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 1, r
    assert "ZeroDivisionError" in r.stderr, r.stderr
    nb2 = read_nb(out)
    banner, anchor = nb2.cells[0], None
    assert banner.cell_type == "markdown" and ERROR_TAG in banner.metadata.get("tags", [])
    assert "In [3]" in banner.source and 'href="#papermill-error-cell"' in banner.source, banner.source
    failing_idx = next(i for i, c in enumerate(nb2.cells) if c.cell_type == "code" and c.source == "1/0")
    anchor = nb2.cells[failing_idx - 1]
    assert anchor.cell_type == "markdown" and ERROR_TAG in anchor.metadata.get("tags", [])
    assert 'id="papermill-error-cell"' in anchor.source
    assert len(tagged(nb2, ERROR_TAG)) == 2
    failing = nb2.cells[failing_idx]
    assert failing.execution_count == 3
    assert [o.output_type for o in failing.outputs] == ["error"]
    assert failing.outputs[0].ename == "ZeroDivisionError"
    assert failing.metadata.papermill["status"] == "failed"
    assert failing.metadata.papermill["exception"] is True
    after = nb2.cells[failing_idx + 1]
    assert after.metadata.papermill["status"] == "pending"
    assert after.execution_count is None and after.outputs == []
    assert nb2.metadata.papermill.exception is True
    assert nb2.metadata.papermill.end_time


def test_error_markers_of_a_previous_run_are_removed(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "x = 0", "1/x")
    first = tmp_path / "first.ipynb"
    r = h.run(["run", nb, first])
    assert r.rc == 1, r
    assert len(tagged(read_nb(first), ERROR_TAG)) == 2
    # fix the notebook (output of the failed run) and run it again
    fixed = read_nb(first)
    for c in fixed.cells:
        if c.cell_type == "code" and c.source == "x = 0":
            c.source = "x = 1"
    write_nb(tmp_path / "fixed.ipynb", fixed)
    second = tmp_path / "second.ipynb"
    r = h.run(["run", tmp_path / "fixed.ipynb", second])
    assert r.rc == 0, r
    nb2 = read_nb(second)
    assert tagged(nb2, ERROR_TAG) == []
    assert len(nb2.cells) == 2


def test_raises_exception_tag_continues(h, tmp_path):
    """nbclient semantics: the error is expected; execution goes on and the run succeeds.
    (papermill 2.7 continues too but then exits 1 with a banner; nbhub should not.)"""
    nb = write_nb(tmp_path / "in.ipynb", code("raise ValueError('expected')", tags=["raises-exception"]),
                  "print('went on')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    nb2 = read_nb(out)
    c1, c2 = code_cells(nb2)
    assert c1.outputs[0].output_type == "error" and c1.outputs[0].ename == "ValueError"
    assert stream_text(c2) == "went on\n"
    assert r.rc == 0, r
    assert tagged(nb2, ERROR_TAG) == []


def test_skip_execution_tag(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "x = 1", code("x = 100\nprint('ran')", tags=["skip-execution"]),
                  "print(x)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    c1, c2, c3 = code_cells(read_nb(out))
    assert c2.outputs == [] and c2.execution_count is None
    assert stream_text(c3) == "1\n"
    assert c3.execution_count == 2


def test_sys_exit_zero_stops_without_failure(h, tmp_path):
    """papermill: SystemExit with "" or "0" is not an error (exit 0, no banner); later cells do not run."""
    nb = write_nb(tmp_path / "in.ipynb", "print('a')", "import sys; sys.exit(0)", "print('not reached')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert tagged(nb2, ERROR_TAG) == []
    assert code_cells(nb2)[2].outputs == []


def test_sys_exit_nonzero_is_failure(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "import sys; sys.exit(3)", "print('not reached')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 1, r
    assert len(tagged(read_nb(out), ERROR_TAG)) == 2


def test_kernel_death_os_exit(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('alive')", "import os; os._exit(1)", "print('after')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out], timeout=60)
    assert r.rc == 5, r
    assert r.elapsed < 30, r
    nb2 = read_nb(out)
    c1, c2, c3 = code_cells(nb2)
    assert stream_text(c1) == "alive\n"
    errs = [o for o in c2.outputs if o.output_type == "error"]
    assert errs, f"no error output in the cell that killed the kernel: {c2.outputs}"
    text = strip_ansi(all_text(c2)).lower()
    assert "died" in text or "dead" in text, text
    assert c2.metadata.papermill["status"] == "failed"
    assert c3.outputs == [] and c3.metadata.papermill["status"] == "pending"
    assert nb2.metadata.papermill.exception is True


def test_kernel_killed_by_signal(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out], timeout=60)
    assert r.rc == 5, r
    assert read_nb(out).metadata.papermill.exception is True


def test_cell_timeout_busy_loop(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('start')", "while True: pass", "print('after')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--execution-timeout", "2"], timeout=60)
    assert r.rc == 6, r
    assert r.elapsed < 20, r
    nb2 = read_nb(out)
    c1, c2, c3 = code_cells(nb2)
    assert any(o.output_type == "error" for o in c2.outputs), c2.outputs
    text = strip_ansi(all_text(c2)).lower()
    assert "timeout" in text or "timed out" in text, text
    assert c2.metadata.papermill["status"] == "failed"
    assert c3.outputs == []
    assert nb2.metadata.papermill.exception is True


def test_cell_timeout_sigint_ignored(h, tmp_path):
    """The cell ignores SIGINT, so an interrupt does nothing: nbhub must kill the kernel."""
    nb = write_nb(tmp_path / "in.ipynb",
                  "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--execution-timeout", "2"], timeout=60)
    assert r.rc == 6, r
    assert r.elapsed < 25, r
    nb2 = read_nb(out)
    assert any(o.output_type == "error" for o in code_cells(nb2)[0].outputs)
    assert nb2.metadata.papermill.exception is True


def test_cell_timeout_sleep(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "import time; time.sleep(120)")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--execution-timeout", "1"], timeout=60)
    assert r.rc == 6, r
    assert r.elapsed < 15, r


def test_input_raises_stdin_error(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "name = input('name? ')", "print('after')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out], timeout=60)
    assert r.rc == 1, r
    assert r.elapsed < 30
    c1, c2 = code_cells(read_nb(out))
    errs = [o for o in c1.outputs if o.output_type == "error"]
    assert errs and errs[0].ename == "StdinNotImplementedError", c1.outputs
    assert c2.outputs == []


def test_getpass_raises_stdin_error(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "import getpass; getpass.getpass()")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out], timeout=60)
    assert r.rc == 1, r
    (c1,) = code_cells(read_nb(out))
    assert c1.outputs[-1].output_type == "error"


def test_deadline_whole_run(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", *["import time; time.sleep(1)"] * 20)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--deadline", "4"], timeout=60)
    assert r.rc == 6, r
    assert r.elapsed < 12, r
    nb2 = read_nb(out)
    assert nb2.metadata.papermill.exception is True
    statuses = [c.metadata.papermill["status"] for c in code_cells(nb2)]
    assert statuses.count("pending") >= 10, statuses


def test_deadline_not_reached(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print(1)")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--deadline", "60"], timeout=60)
    assert r.rc == 0, r


def test_error_as_display_data_is_not_missed(h, tmp_path):
    """A traceback rendered by the kernel (error reply) after display output still fails the run."""
    nb = write_nb(tmp_path / "in.ipynb",
                  "from IPython.display import display\ndisplay({'text/plain': 'x'}, raw=True)\n"
                  "raise RuntimeError('boom')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 1, r
    (c,) = code_cells(read_nb(out))
    assert [o.output_type for o in c.outputs] == ["display_data", "error"]
