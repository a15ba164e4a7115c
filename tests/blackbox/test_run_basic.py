"""`nbhub run`: CLI basics, output-notebook metadata and nbclient output rules."""

import re
import subprocess
import time
from datetime import datetime

from nbformat.v4 import new_output

from conftest import (code, code_cells, make_nb, md, raw, read_nb, stream_text, strip_ansi,
                      write_nb)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_iso(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_help_prints_usage_and_exit_codes(h):
    for flag in ("-h", "--help"):
        r = h.run(["run", flag], timeout=10)
        assert r.rc == 0, r
        out = r.stdout.lower()
        assert "usage" in out, r
        for code_ in ("130", "143"):
            assert code_ in r.stdout, f"exit code {code_} missing from --help: {r}"
        for opt in ("--execution-timeout", "--start-timeout", "--prepare-only", "--inspect", "--cwd"):
            assert opt in r.stdout, f"{opt} missing from --help"


def test_unknown_option_is_usage_error(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--no-such-option"], timeout=10)
    assert r.rc == 2, r
    assert r.stderr.strip(), "usage errors go to stderr"
    assert not (tmp_path / "out.ipynb").exists()


def test_missing_notebook_argument_is_usage_error(h):
    r = h.run(["run"], timeout=10)
    assert r.rc == 2, r


def test_simple_run(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", md("# title"), "x = 20", "print(x + 1)", "x * 2")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    cells = code_cells(nb2)
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert cells[0].outputs == []
    assert stream_text(cells[1]) == "21\n"
    res = cells[2].outputs
    assert len(res) == 1 and res[0].output_type == "execute_result", res
    assert res[0].data["text/plain"] == "40"
    assert res[0].execution_count == 3
    assert nb2.nbformat == 4 and nb2.nbformat_minor >= 4


def test_notebook_metadata_papermill(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", code("a = 1", tags=["parameters"]), "print(a)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "a", "2"])
    assert r.rc == 0, r
    pm = read_nb(out).metadata["papermill"]
    for key in ("parameters", "input_path", "output_path", "start_time", "end_time", "duration",
                "exception", "environment_variables", "version"):
        assert key in pm, f"metadata.papermill.{key} missing: {sorted(pm)}"
    assert pm["parameters"] == {"a": 2}
    assert pm["input_path"] == str(nb)
    assert pm["output_path"] == str(out)
    assert pm["exception"] in (None, False)
    assert isinstance(pm["environment_variables"], dict)
    assert isinstance(pm["version"], str) and pm["version"]
    start, end = parse_iso(pm["start_time"]), parse_iso(pm["end_time"])
    assert start <= end
    assert isinstance(pm["duration"], (int, float)) and 0 <= pm["duration"] < 120
    assert abs((end - start).total_seconds() - pm["duration"]) < 1.0


def test_cell_metadata_papermill(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", md("text"), "import time; time.sleep(0.2)", "1")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    for cell in read_nb(out).cells:
        pm = cell.metadata.get("papermill")
        assert pm is not None, f"cell without metadata.papermill: {cell}"
        assert set(pm) >= {"status", "start_time", "end_time", "duration", "exception"}, pm
        assert pm["status"] == "completed", pm
        assert pm["exception"] is False, pm
        if cell.cell_type == "code":
            assert parse_iso(pm["start_time"]) <= parse_iso(pm["end_time"])
            assert isinstance(pm["duration"], (int, float))
    sleeper = code_cells(read_nb(out))[0]
    assert sleeper.metadata["papermill"]["duration"] >= 0.15


def test_execution_timestamps_like_nbclient(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print('hi')", "2 + 2")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    for cell in code_cells(read_nb(out)):
        ex = cell.metadata.get("execution")
        assert ex, f"metadata.execution missing: {cell.metadata}"
        for key in ("iopub.execute_input", "iopub.status.busy", "iopub.status.idle", "shell.execute_reply"):
            assert key in ex, f"{key} missing from {ex}"
            assert ISO_Z.match(ex[key]), ex[key]
        assert parse_iso(ex["iopub.status.busy"]) <= parse_iso(ex["iopub.status.idle"])


def test_quick_cells_keep_their_own_outputs_and_times(h, tmp_path):
    """Each cell is sent as soon as the one before has its reply (before that
    one's idle): outputs and times must still be each cell's own."""
    cells = []
    for i in range(60):
        kind = i % 4
        if kind == 0:
            cells.append(f"print('out-{i}')")
        elif kind == 1:
            cells.append(f"import sys; print('err-{i}', file=sys.stderr)")
        elif kind == 2:
            cells.append(f"display({{'text/plain': 'disp-{i}'}}, raw=True)")
        else:
            cells.append(f"{i} * 1")
    nb = write_nb(tmp_path / "in.ipynb", *cells)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    got = code_cells(read_nb(out))
    assert len(got) == 60
    prev_end = None
    for i, cell in enumerate(got):
        assert cell.execution_count == i + 1, (i, cell.execution_count)
        assert len(cell.outputs) == 1, (i, cell.outputs)
        o = cell.outputs[0]
        kind = i % 4
        if kind == 0:
            assert (o.output_type, o.name, o.text) == ("stream", "stdout", f"out-{i}\n")
        elif kind == 1:
            assert (o.output_type, o.name, o.text) == ("stream", "stderr", f"err-{i}\n")
        elif kind == 2:
            assert o.output_type == "display_data" and o.data["text/plain"] == f"disp-{i}"
        else:
            assert o.output_type == "execute_result" and o.data["text/plain"] == str(i)
        pm = cell.metadata.papermill
        start, end = parse_iso(pm["start_time"]), parse_iso(pm["end_time"])
        assert start <= end and pm["status"] == "completed"
        if prev_end is not None:
            assert prev_end <= start, f"cell {i} started before cell {i - 1} ended"
        prev_end = end
        ex = cell.metadata.execution
        assert parse_iso(ex["iopub.status.busy"]) <= parse_iso(ex["shell.execute_reply"])
        assert parse_iso(ex["shell.execute_reply"]) <= parse_iso(ex["iopub.status.idle"])


def test_stream_outputs_are_merged(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "import sys, time\nfor i in range(100):\n    print(i)\n    if i % 25 == 0:\n"
                  "        sys.stdout.flush(); time.sleep(0.05)",
                  "import sys\nsys.stdout.write('a'); sys.stdout.flush()\nsys.stdout.write('b');")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    c1, c2 = code_cells(read_nb(out))
    assert [o.output_type for o in c1.outputs] == ["stream"], c1.outputs
    assert c1.outputs[0].text == "".join(f"{i}\n" for i in range(100))
    assert [o.output_type for o in c2.outputs] == ["stream"], c2.outputs
    assert c2.outputs[0].text == "ab"


def test_stdout_and_stderr_are_separate_streams(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "import sys\nprint('o1'); sys.stdout.flush()\nprint('e1', file=sys.stderr); sys.stderr.flush()\n"
                  "print('o2')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    (c,) = code_cells(read_nb(out))
    assert [(o.name, o.text) for o in c.outputs] == [("stdout", "o1\n"), ("stderr", "e1\n"), ("stdout", "o2\n")]


def test_display_id_update_rewrites_every_matching_output(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "from IPython.display import display, update_display\n_ = display('a', display_id='x')",
                  "update_display('b', display_id='x')",
                  "_ = display('c', display_id='x')\n_ = display('other', display_id='y')",
                  "update_display('d', display_id='x')\nprint('done')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    c1, c2, c3, c4 = code_cells(read_nb(out))
    assert [o.output_type for o in c1.outputs] == ["display_data"]
    assert c1.outputs[0].data["text/plain"] == "'d'"
    assert c2.outputs == [], "update_display produces no output of its own"
    assert [o.data["text/plain"] for o in c3.outputs] == ["'d'", "'other'"]
    assert [o.output_type for o in c4.outputs] == ["stream"]
    for c in (c1, c3):
        for o in c.outputs:
            assert "transient" not in o, "transient must not be saved"


def test_clear_output_wait_semantics(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "from IPython.display import clear_output\nprint('a')\nclear_output(wait=True)\nprint('b')",
                  "from IPython.display import clear_output\nprint('kept')\nclear_output(wait=True)",
                  "from IPython.display import clear_output\nprint('gone')\nclear_output()",
                  "from IPython.display import clear_output\nfor i in range(5):\n"
                  "    clear_output(wait=True)\n    print(f'tick {i}')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    c1, c2, c3, c4 = code_cells(read_nb(out))
    assert stream_text(c1) == "b\n" and len(c1.outputs) == 1, c1.outputs
    assert stream_text(c2) == "kept\n", "clear_output(wait=True) with no later output clears nothing"
    assert c3.outputs == [], c3.outputs
    assert stream_text(c4) == "tick 4\n" and len(c4.outputs) == 1, c4.outputs


def test_execute_result_and_rich_display(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb",
                  "from IPython.display import HTML, display\ndisplay(HTML('<b>x</b>'))\n{'k': [1, 2]}")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    (c,) = code_cells(read_nb(out))
    assert [o.output_type for o in c.outputs] == ["display_data", "execute_result"]
    assert c.outputs[0].data["text/html"] == "<b>x</b>"
    assert c.outputs[1].data["text/plain"] == "{'k': [1, 2]}"
    assert c.outputs[1].execution_count == c.execution_count == 1


def test_markdown_raw_cells_and_ids_preserved(h, tmp_path):
    src = make_nb(md("# Title\n\ntext"), raw("raw\ncontent"), "1")
    ids = [c.id for c in src.cells]
    nb = write_nb(tmp_path / "in.ipynb", src)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert [c.id for c in nb2.cells] == ids
    assert nb2.cells[0].source == "# Title\n\ntext" and "outputs" not in nb2.cells[0]
    assert nb2.cells[1].source == "raw\ncontent" and "outputs" not in nb2.cells[1]


def test_old_outputs_are_replaced(h, tmp_path):
    src = make_nb("print('new')", "1")
    src.cells[0].outputs = [new_output("stream", name="stdout", text="stale\n")]
    src.cells[0].execution_count = 41
    src.cells[1].execution_count = 42
    nb = write_nb(tmp_path / "in.ipynb", src)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    c1, c2 = code_cells(read_nb(out))
    assert stream_text(c1) == "new\n" and len(c1.outputs) == 1
    assert (c1.execution_count, c2.execution_count) == (1, 2)


def test_language_info_filled_from_kernel(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "1")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    li = read_nb(out).metadata["language_info"]
    assert li["name"] == "python"
    assert li.get("version", "").startswith("3."), li


def test_no_progress_bar_when_stderr_is_not_a_tty(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", *["1"] * 5)
    r = h.run(["run", nb, tmp_path / "out.ipynb"])
    assert r.rc == 0, r
    assert "\r" not in r.stderr and "%|" not in r.stderr, r.stderr


def test_progress_bar_on_a_tty(h, tmp_path):
    """stderr on a terminal: a progress bar that reaches N/N, redrawn in place."""
    nb = write_nb(tmp_path / "in.ipynb", *["1"] * 5)
    r = h.run_tty(["run", nb, tmp_path / "out.ipynb"], stream="stderr", timeout=60)
    assert r.rc == 0, r
    assert "\r" in r.stderr and "5/5 cells" in r.stderr, r.stderr
    # --no-progress-bar silences it even on a terminal
    r = h.run_tty(["run", nb, tmp_path / "out2.ipynb", "--no-progress-bar"], stream="stderr")
    assert r.rc == 0 and "cells" not in r.stderr, r


def test_unicode_source_and_output(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "s = 'héllo wörld ✓ 日本語 🎉'\nprint(s)\ns")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    (c,) = code_cells(read_nb(out))
    assert stream_text(c) == "héllo wörld ✓ 日本語 🎉\n"
    assert strip_ansi(c.outputs[-1].data["text/plain"]) == "'héllo wörld ✓ 日本語 🎉'"


def test_custom_metadata_preserved(h, tmp_path):
    src = make_nb(code("1", tags=["mytag"], collapsed=True, custom={"k": [1, "two"]}), md("m"))
    src.metadata["my_tool"] = {"setting": 42}
    src.cells[1].metadata["foo"] = "bar"
    nb = write_nb(tmp_path / "in.ipynb", src)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert nb2.metadata["my_tool"] == {"setting": 42}
    assert nb2.metadata["kernelspec"]["name"] == "python3"
    c, m = nb2.cells
    assert c.metadata["tags"] == ["mytag"] and c.metadata["collapsed"] is True
    assert c.metadata["custom"] == {"k": [1, "two"]}
    assert m.metadata["foo"] == "bar"


def test_empty_code_cells_not_executed(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "", "  \n", "print('x')")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    c1, c2, c3 = code_cells(read_nb(out))
    assert c1.execution_count is None and c2.execution_count is None
    assert c3.execution_count == 1


def test_log_output_shows_error_traceback(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "raise KeyError('log-me-9731')")
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--log-output"])
    assert r.rc == 1, r
    assert "log-me-9731" in r.stderr and "KeyError" in r.stderr, r.stderr
