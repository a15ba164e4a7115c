"""Parity with papermill 2.7: the same input run through papermill (.venv/bin/papermill,
same python3 kernel) and through `nbhub run` gives the same notebook once the parts
that legitimately differ are normalised:
  times, durations, execution timestamps, the injected cell's random id,
  memory addresses (0x...), papermill version / environment_variables / output_path,
  image bytes (a PNG may differ byte-wise: only mime type and presence are compared).
Everything else must match: cells, sources, tags, outputs, metadata keys."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import PAPERMILL, REPO, code, md, read_nb, write_nb

EXAMPLES = REPO / "examples"
EXAMPLE_ARGS = {
    "hello.ipynb": ["-p", "name", "Ada", "-p", "count", "3"],
    "plot.ipynb": ["-p", "freq", "3.0"],
}
ADDR = re.compile(r"0x[0-9a-fA-F]{6,}")
TIME = "<time>"


def norm_value(v):
    if isinstance(v, str):
        return ADDR.sub("0x?", v)
    if isinstance(v, list):
        return [norm_value(x) for x in v]
    if isinstance(v, dict):
        return {k: norm_value(x) for k, x in v.items()}
    return v


def norm_output(o):
    o = dict(o)
    if "data" in o:
        o["data"] = {k: ("<image>" if k.startswith("image/") else norm_value(v)) for k, v in o["data"].items()}
    if "metadata" in o:
        # image metadata (width/height) may legitimately vary with rendering; keep the keys
        o["metadata"] = {k: (sorted(v) if isinstance(v, dict) else v) for k, v in o["metadata"].items()}
    if o.get("output_type") == "error":
        o["traceback"] = [norm_value(t) for t in o["traceback"]]
    return norm_value(o)


def norm_cell(c):
    c = dict(c)
    md_ = dict(c.get("metadata", {}))
    if "injected-parameters" in md_.get("tags", []) or "papermill-error-cell-tag" in md_.get("tags", []):
        c.pop("id", None)          # papermill gives these new random ids
    if "papermill" in md_:
        pm = dict(md_["papermill"])
        for k in ("start_time", "end_time", "duration"):
            if pm.get(k) is not None:
                pm[k] = TIME
        md_["papermill"] = pm
    if "execution" in md_:
        md_["execution"] = {k: TIME for k in md_["execution"]}
    c["metadata"] = md_
    if "outputs" in c:
        c["outputs"] = [norm_output(o) for o in c["outputs"]]
    return c


def normalise(nb):
    nb = dict(nb)
    meta = dict(nb["metadata"])
    pm = dict(meta.get("papermill", {}))
    for k in ("start_time", "end_time", "duration"):
        if pm.get(k) is not None:
            pm[k] = TIME
    for k in ("version", "environment_variables", "output_path"):
        if k in pm:
            pm[k] = "<ignored>"
    meta["papermill"] = pm
    nb["metadata"] = meta
    nb["cells"] = [norm_cell(c) for c in nb["cells"]]
    return nb


def diff_cells(a, b):
    """A readable first difference between two normalised notebooks."""
    if a["metadata"] != b["metadata"]:
        return f"notebook metadata differs:\n papermill: {a['metadata']}\n nbhub:     {b['metadata']}"
    if len(a["cells"]) != len(b["cells"]):
        return (f"cell count papermill={len(a['cells'])} nbhub={len(b['cells'])}\n"
                f" papermill: {[c.get('source', '')[:30] for c in a['cells']]}\n"
                f" nbhub:     {[c.get('source', '')[:30] for c in b['cells']]}")
    for i, (x, y) in enumerate(zip(a["cells"], b["cells"])):
        if x != y:
            keys = sorted(set(x) | set(y))
            parts = [f"cell {i} ({x.get('source', '')[:40]!r}) differs:"]
            for k in keys:
                if x.get(k) != y.get(k):
                    parts.append(f"  {k}:\n    papermill: {x.get(k)!r}\n    nbhub:     {y.get(k)!r}")
            return "\n".join(parts)
    for k in ("nbformat", "nbformat_minor"):
        if a.get(k) != b.get(k):
            return f"{k}: papermill={a.get(k)} nbhub={b.get(k)}"
    return None


def run_both(h, nb, args, expect_rc):
    pm_out = nb.parent / "pm.ipynb"
    nh_out = nb.parent / "nh.ipynb"
    p = subprocess.run([PAPERMILL, str(nb), str(pm_out), "--no-progress-bar", "--log-level", "ERROR"] + args,
                       capture_output=True, text=True, timeout=120, env=h.env, cwd=str(nb.parent))
    assert p.returncode == expect_rc, p.stderr[-3000:]
    r = h.run(["run", nb, nh_out, "--no-progress-bar"] + args, cwd=nb.parent, timeout=120)
    assert r.rc == expect_rc, r
    return read_nb(pm_out), read_nb(nh_out)


def copy_example(tmp_path, name):
    dst = tmp_path / name
    dst.write_text((EXAMPLES / name).read_text())
    return dst


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.ipynb")))
def test_parity_with_papermill_examples(h, tmp_path, name):
    nb = copy_example(tmp_path, name)
    pm, nh = run_both(h, nb, EXAMPLE_ARGS.get(name, []), 0)
    a, b = normalise(pm), normalise(nh)
    d = diff_cells(a, b)
    assert d is None, d


def test_parity_with_papermill_error_notebook(h, tmp_path):
    nb = write_nb(tmp_path / "err.ipynb", md("# failing"), code("n = 2", tags=["parameters"]),
                  "print('before')", "import missing_module_xyz", "print('after')")
    pm, nh = run_both(h, nb, ["-p", "n", "5"], 1)
    a, b = normalise(pm), normalise(nh)
    d = diff_cells(a, b)
    assert d is None, d


def test_parity_no_parameters_cell(h, tmp_path):
    nb = write_nb(tmp_path / "noparams.ipynb", "print(x)")
    pm, nh = run_both(h, nb, ["-p", "x", "hello", "-y", "y: [1, 2]"], 0)
    a, b = normalise(pm), normalise(nh)
    d = diff_cells(a, b)
    assert d is None, d


def test_parity_edge_cells(h, tmp_path):
    """Cells papermill/nbclient treat specially: empty and whitespace-only code cells (not sent
    to the kernel), comment-only cells, skip-execution, stale outputs, suppressed results,
    custom cell and notebook metadata, multi-mime displays, magics."""
    from conftest import make_nb, raw
    from nbformat.v4 import new_output
    nb = make_nb(
        md("# edge"),
        code(""),
        code("   \n\n"),
        code("# only a comment"),
        code("x = 1", tags=["skip-execution"]),
        code("1 + 1;"),
        code("stale = 1", collapsed=True, scrolled=False, custom={"k": [1, 2]}),
        raw("raw text"),
        code("from IPython.display import display\ndisplay({'text/plain': 'p', 'text/html': '<i>h</i>',"
             " 'application/json': {'a': [1, None]}}, raw=True)"),
        code("%%capture cap\nprint('captured')"),
        code("print(cap.stdout.strip())\n'a\\tb\\u00e9'"),
        code("import sys\nprint('a\\rb')\nsys.stdout.write('no newline')"),
    )
    nb.metadata["custom_top"] = {"keep": True}
    stale = nb.cells[6]
    stale.outputs = [new_output("stream", name="stdout", text="old\n")]
    stale.execution_count = 9
    p = write_nb(tmp_path / "edge.ipynb", nb)
    pm, nh = run_both(h, p, [], 0)
    d = diff_cells(normalise(pm), normalise(nh))
    assert d is None, d


def test_parity_report_mode_and_prepare_only(h, tmp_path):
    nb = write_nb(tmp_path / "rep.ipynb", md("# r"), code("a = 1", tags=["parameters"]), "print(a)")
    pm, nh = run_both(h, nb, ["--report-mode", "-p", "a", "2"], 0)
    d = diff_cells(normalise(pm), normalise(nh))
    assert d is None, d
    pm, nh = run_both(h, nb, ["--prepare-only", "-p", "a", "3"], 0)
    d = diff_cells(normalise(pm), normalise(nh))
    assert d is None, d
