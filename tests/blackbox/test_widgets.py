"""ipywidgets and IPython history in `nbhub run`, against nbclient itself (issue 20).

The same notebook, using real ipywidgets 8 (Output with print / display /
clear_output(wait=True) / nesting / an exception, interact and interactive,
display(..., display_id=True) + update inside and outside a widget, an Image
widget's binary buffers, the kernel reading out.outputs and appending to it),
is run by nbclient's NotebookClient (from the .venv) and by `nbhub run`; the
cells' outputs and metadata.widgets must be equal once the random parts are
normalised: model (comm) ids are renamed in the order a reader meets them,
memory addresses and a capturing widget's msg_id masked.  On main (no widget
support) the widget state is missing and captured output lands in the cells.

History: nbclient starts IPython kernels with --HistoryManager.hist_file=:memory:,
so a run never writes the user's history database; `--keep-history` does.
"""

import hashlib
import json
import re
import sqlite3
import subprocess
import time

from conftest import PAPERMILL, VENV_BIN, code, read_nb, write_nb

STATE = "application/vnd.jupyter.widget-state+json"
HEX32 = re.compile(r"[0-9a-f]{32}")
ADDR = re.compile(r"0x[0-9a-fA-F]{6,}")

NBCLIENT_RUN = r"""
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
client = NotebookClient(nb, kernel_name="python3", timeout=120,
                        resources={"metadata": {"path": sys.argv[3]}})
try:
    client.execute()
finally:
    nbformat.write(nb, sys.argv[2])
"""

WIDGET_CELLS = [
    "import ipywidgets as widgets\nfrom IPython.display import display, clear_output\nprint(widgets.__version__[:2])",
    # print and display inside an Output widget go to the widget, not the cell
    "out = widgets.Output(layout={'border': '1px solid black'})\ndisplay(out)\n"
    "with out:\n    print('captured 1')\n    print('captured 2')\n    display(widgets.HTML('<b>html widget</b>'))\n"
    "    display({'text/html': '<i>y</i>', 'text/plain': 'y'}, raw=True)\nprint('in the cell')",
    # the kernel was told the widget's outputs before this cell ran
    "print(out.outputs)",
    # clear_output(wait=True) inside the widget clears the widget, at its next output
    "print('cell output stays')\nwith out:\n    clear_output(wait=True)\n    print('after clear(wait)')\n"
    "with out:\n    print('appended')",
    # nested Output widgets; an immediate clear_output in the inner one
    "outer, inner = widgets.Output(), widgets.Output()\ndisplay(outer)\nwith outer:\n    print('outer')\n"
    "    with inner:\n        print('inner')\n        clear_output()\n        print('inner after clear')\n"
    "    print('outer again')\ndisplay(inner)",
    # interact: its Output widget, clear_output(wait=True) and the result display
    "from ipywidgets import interact\n@interact(x=3, word='hi')\ndef f(x, word):\n    print(word * x)\n    return x * 2",
    # interactive re-run from the kernel side: clear_output(wait=True) in its Output
    "w = widgets.interactive(lambda a: print('a is', a), a=5)\ndisplay(w)\nw.children[0].value = 7",
    # display ids: updates reach the cells' outputs (nbclient: never a widget's)
    "h = display('first', display_id=True)\nwith out:\n    h2 = display('in widget', display_id=True)\n"
    "    h.update('first, updated from inside a widget')\nh2.update('in widget, updated')",
    "h.update('first, updated from the next cell')",
    # a cell-level clear_output is unchanged
    "print('plain')\nclear_output(wait=True)\nprint('plain after')",
    # binary buffers (Image.value) are kept base64 per path
    "img = widgets.Image(value=b'\\x89PNG\\r\\n\\x1a\\n' + bytes(range(256)), format='png')\ndisplay(img)\n"
    "img.value = b'second value'",
    # an exception inside `with out:` is shown in the widget; the cell goes on
    "with out:\n    1 / 0\nprint('survived')",
    # the kernel appends to the widget itself, then a capture follows
    "out.append_stdout('from the kernel\\n')",
    "with out:\n    print('after the kernel append')\nprint(len(out.outputs))",
    "s = widgets.IntSlider(value=4, description='s')\ndisplay(s)\ns.value = 9",
]


def run_nbclient(h, nb, out):
    p = subprocess.run([str(VENV_BIN / "python"), "-c", NBCLIENT_RUN, str(nb), str(out), str(nb.parent)],
                       capture_output=True, text=True, timeout=180, env=h.env, cwd=str(nb.parent))
    assert p.returncode == 0, p.stderr[-3000:]
    return read_nb(out)


def canon(nb):
    """Cells' outputs and execution counts plus metadata.widgets, with model ids
    renamed M0, M1... in the order met: the cells' outputs, then the models
    they refer to (breadth first through IPY_MODEL_ references)."""
    widgets = nb["metadata"].get("widgets")
    state = (widgets or {}).get(STATE, {}).get("state", {})
    names = {}

    def meet(text):
        for m in HEX32.findall(text):
            if m in state and m not in names:
                names[m] = f"M{len(names)}"

    cells = [{"outputs": c.get("outputs"), "execution_count": c.get("execution_count")}
             for c in nb["cells"] if c["cell_type"] == "code"]
    meet(json.dumps(cells, sort_keys=True))
    order = list(names)
    i = 0
    while i < len(order):
        meet(json.dumps(state[order[i]], sort_keys=True))
        order = list(names)
        i += 1
    for k in state:
        names.setdefault(k, "UNREFERENCED")   # counted, never equal by accident
    for k, v in state.items():
        msg_id = v.get("state", {}).get("msg_id")
        if msg_id:
            v["state"]["msg_id"] = "<msg_id>"
    text = json.dumps({"cells": cells, "widgets": widgets}, sort_keys=True)
    text = HEX32.sub(lambda m: names.get(m.group(0), m.group(0)), text)
    return json.loads(ADDR.sub("0x?", text))


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a["cells"], b["cells"])):
        if x != y:
            return f"code cell {i}:\n nbclient: {x}\n nbhub:    {y}"
    if len(a["cells"]) != len(b["cells"]):
        return "cell count differs"
    wa, wb = a["widgets"], b["widgets"]
    if wa == wb:
        return None
    if not wa or not wb:
        return f"metadata.widgets:\n nbclient: {str(wa)[:500]}\n nbhub:    {str(wb)[:500]}"
    sa, sb = wa[STATE]["state"], wb[STATE]["state"]
    if sorted(sa) != sorted(sb):
        return f"models: nbclient {sorted(sa)} nbhub {sorted(sb)}"
    for k in sorted(sa):
        if sa[k] != sb[k]:
            return f"model {k}:\n nbclient: {json.dumps(sa[k])[:2000]}\n nbhub:    {json.dumps(sb[k])[:2000]}"
    return f"metadata.widgets differ: {wa.keys()} {wb.keys()}"


def test_widgets_parity_with_nbclient(h, tmp_path):
    nb = write_nb(tmp_path / "w.ipynb", *WIDGET_CELLS)
    ref = run_nbclient(h, nb, tmp_path / "nbclient.ipynb")
    r = h.run(["run", nb, tmp_path / "nbhub.ipynb", "--no-progress-bar"], cwd=tmp_path, timeout=120)
    assert r.rc == 0, r
    got = read_nb(tmp_path / "nbhub.ipynb")
    a, b = canon(ref), canon(got)
    # the comparison has teeth: the notebook does make widgets and capture output
    assert len(a["widgets"][STATE]["state"]) > 20
    assert "after clear(wait)" in json.dumps(a["widgets"]) and "captured 1" not in json.dumps(a["cells"][1])
    assert any("buffers" in m for m in a["widgets"][STATE]["state"].values())   # the Image's value
    d = first_difference(a, b)
    assert d is None, d


def test_stale_widget_state(h, tmp_path):
    """The input's metadata.widgets: replaced when the run made widgets, kept as
    it is when it made none (nbclient's `if self.widget_state:`)."""
    stale = {STATE: {"version_major": 2, "version_minor": 0,
                     "state": {"0" * 32: {"model_name": "OutputModel", "state": {"outputs": ["stale"]}}}}}
    for cells, replaced in ((["x = 1"], False),
                            (["import ipywidgets as w\ndisplay(w.IntSlider())"], True)):
        nb = write_nb(tmp_path / "s.ipynb", *cells)
        raw = json.loads(nb.read_text())
        raw["metadata"]["widgets"] = stale
        nb.write_text(json.dumps(raw))
        ref = run_nbclient(h, nb, tmp_path / "s.nbclient.ipynb")
        r = h.run(["run", nb, tmp_path / "s.nbhub.ipynb"], cwd=tmp_path)
        assert r.rc == 0, r
        got = read_nb(tmp_path / "s.nbhub.ipynb")
        assert ("0" * 32 in json.dumps(got["metadata"].get("widgets"))) == (not replaced)
        assert canon(ref)["widgets"] == canon(got)["widgets"]


def test_widget_state_saved_after_a_failed_cell(h, tmp_path):
    """papermill (nbclient underneath) saves the widget state after a failing
    cell too; so does nbhub, with the same result."""
    nb = write_nb(tmp_path / "f.ipynb",
                  "import ipywidgets as widgets\nout = widgets.Output()\ndisplay(out)\n"
                  "with out:\n    print('before the failure')",
                  "raise RuntimeError('boom')", "print('never')")
    pm = subprocess.run([PAPERMILL, str(nb), str(tmp_path / "pm.ipynb"), "--no-progress-bar",
                         "--log-level", "ERROR"], capture_output=True, text=True, timeout=180,
                        env=h.env, cwd=str(tmp_path))
    assert pm.returncode == 1, pm.stderr[-2000:]
    r = h.run(["run", nb, tmp_path / "nh.ipynb"], cwd=tmp_path)
    assert r.rc == 1, r
    a, b = canon(read_nb(tmp_path / "pm.ipynb")), canon(read_nb(tmp_path / "nh.ipynb"))
    assert a["widgets"] is not None and "before the failure" in json.dumps(a["widgets"])
    assert a["widgets"] == b["widgets"]


# --------------------------------------------------------------------------- history

HISTORY_CELLS = [
    "hm = get_ipython().history_manager\nprint(hm.hist_file)",
    "x = 6 * 7  # a line for the history",
]


def history_file(h):
    h.isolate_jupyter()   # HOME and IPYTHONDIR under tmp: the user's profile is ours to look at
    return h.tmp / "home" / ".ipython" / "profile_default" / "history.sqlite"


def test_history_in_memory_by_default(h, tmp_path):
    hist = history_file(h)
    nb = write_nb(tmp_path / "h.ipynb", *HISTORY_CELLS)
    r = h.run(["run", nb, tmp_path / "out.ipynb"], cwd=tmp_path)
    assert r.rc == 0, r
    out = read_nb(tmp_path / "out.ipynb")
    assert out["cells"][0]["outputs"][0]["text"] == ":memory:\n"
    assert not hist.exists()


def test_keep_history_writes_the_users_database(h, tmp_path):
    hist = history_file(h)
    nb = write_nb(tmp_path / "h.ipynb", *HISTORY_CELLS)
    r = h.run(["run", nb, tmp_path / "out.ipynb", "--keep-history"], cwd=tmp_path)
    assert r.rc == 0, r
    out = read_nb(tmp_path / "out.ipynb")
    assert out["cells"][0]["outputs"][0]["text"] == f"{hist}\n"
    with sqlite3.connect(hist) as db:
        lines = [s for (s,) in db.execute("select source from history")]
    assert "x = 6 * 7  # a line for the history" in lines


def test_parallel_runs_leave_the_history_database_alone(h, tmp_path):
    """A user's existing history database is not opened by runs: four at once,
    on a kernel spec with another name (ipykernel recognised by its argv)."""
    hist = history_file(h)
    h.add_kernel("myenv")
    seed = write_nb(tmp_path / "seed.ipynb", "y = 1")
    r = h.run(["run", seed, tmp_path / "seed.out.ipynb", "-k", "myenv", "--keep-history"], cwd=tmp_path)
    assert r.rc == 0, r
    assert hist.exists()
    before = (hashlib.sha256(hist.read_bytes()).hexdigest(), hist.stat().st_mtime_ns)
    nb = write_nb(tmp_path / "p.ipynb", *HISTORY_CELLS)
    procs = [h.popen(["run", nb, tmp_path / f"p{i}.ipynb", "-k", "myenv"], cwd=tmp_path) for i in range(4)]
    for i, p in enumerate(procs):
        res = h.finish(p, timeout=120)
        assert res.rc == 0, res
        assert read_nb(tmp_path / f"p{i}.ipynb")["cells"][0]["outputs"][0]["text"] == ":memory:\n"
    assert (hashlib.sha256(hist.read_bytes()).hexdigest(), hist.stat().st_mtime_ns) == before
    assert not any(hist.parent.glob("history.sqlite-*"))   # no journal / wal left by a writer


def test_flow_task_keep_history(h, tmp_path):
    """A flow's notebook task keeps its history only with keep_history: true."""
    from nbserve import Server
    from test_flow_workspace import log_of, trigger, wait
    hist = history_file(h)
    srv = Server(h).start()
    try:
        nb = write_nb(srv.flows / "hist.ipynb", *HISTORY_CELLS)
        (srv.flows / "hist.yaml").write_text(
            "name: hist\nschedule: '@daily'\ntasks:\n"
            f"  memory: {{notebook: {nb}}}\n"
            f"  kept: {{notebook: {nb}, keep_history: true, after: memory}}\n")
        deadline = time.monotonic() + 30   # serve picks the file up from its flows directory
        while srv.api.get("/api/v1/flows/hist")[0] != 200:
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        run = wait(srv.api, trigger(srv.api, "hist"))
        mem, kept = log_of(srv.api, run["id"], "memory"), log_of(srv.api, run["id"], "kept")
        assert run["state"] == "success", (run, mem, kept)
        assert ":memory:" in mem, mem
        assert str(hist) in kept, kept
        assert hist.exists()
    finally:
        srv.stop()
