"""`nbhub run`: parameters (-p/-r/-f/-y), injection like papermill, --prepare-only,
--report-mode, --inspect, --language."""

import json

import pytest

from conftest import PAPERMILL, VENV_BIN, code, code_cells, make_nb, md, read_nb, stream_text, tagged, write_nb

DUMP = ("import json\nprint(json.dumps({n: [type(v).__name__, repr(v)] for n, v in globals().items() "
        "if n in NAMES}))")


def dump_cell(names):
    return f"NAMES = {sorted(names)!r}\n" + DUMP


def values(nb):
    """The {name: [type, repr]} dict printed by the dump cell (last code cell)."""
    return json.loads(stream_text(code_cells(nb)[-1]))


def params_nb(tmp_path, defaults="a = 0", names=("a",), name="in.ipynb"):
    return write_nb(tmp_path / name, md("# p"), code(defaults, tags=["parameters"]), dump_cell(names))


def test_injected_after_parameters_cell(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", md("# p"), "pre = 1", code("a = 0", tags=["parameters"]),
                  "print(a)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "a", "5"])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    tags = [c.metadata.get("tags", []) for c in nb2.cells]
    assert tags.index(["parameters"]) + 1 == tags.index(["injected-parameters"]), tags
    inj = tagged(nb2, "injected-parameters")
    assert len(inj) == 1 and inj[0].cell_type == "code"
    assert inj[0].source == "# Parameters\na = 5\n"
    assert stream_text(code_cells(nb2)[-1]) == "5\n"
    assert inj[0].execution_count is not None


def test_existing_injected_cell_is_replaced(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", code("a = 0", tags=["parameters"]), "x = 'between'",
                  code("# Parameters\na = 999\n", tags=["injected-parameters"]), "print(a)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "a", "7"])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    inj = tagged(nb2, "injected-parameters")
    assert len(inj) == 1, [c.source for c in inj]
    assert inj[0].source == "# Parameters\na = 7\n"
    assert nb2.cells.index(inj[0]) == 2, "replaced in place, like papermill"
    assert len(nb2.cells) == 4
    assert stream_text(code_cells(nb2)[-1]) == "7\n"


def test_no_parameters_cell_injects_at_top_with_warning(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", md("# no params"), "print(a)")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "a", "3"])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert nb2.cells[0].metadata.get("tags") == ["injected-parameters"]
    assert "parameters" in r.stderr.lower() and "warn" in r.stderr.lower(), r.stderr
    assert stream_text(code_cells(nb2)[-1]) == "3\n"


def test_no_parameters_given_means_no_injected_cell(h, tmp_path):
    nb = params_nb(tmp_path)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert tagged(nb2, "injected-parameters") == []
    assert values(nb2) == {"a": ["int", "0"]}


def test_undeclared_parameter_warns_and_succeeds(h, tmp_path):
    nb = params_nb(tmp_path)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "a", "1", "-p", "zzz_undeclared", "2"])
    assert r.rc == 0, r
    assert "zzz_undeclared" in r.stderr, r.stderr
    assert read_nb(out).metadata.papermill.parameters == {"a": 1, "zzz_undeclared": 2}


def test_parameter_typing_p(h, tmp_path):
    names = ["i", "f", "t", "fa", "n", "s", "q"]
    nb = params_nb(tmp_path, "\n".join(f"{n} = 'default'" for n in names), names)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "i", "1", "-p", "f", "1.5", "-p", "t", "True", "-p", "fa", "False",
               "-p", "n", "None", "-p", "s", "hello world", "-p", "q", 'say "hi"\\n'])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert values(nb2) == {
        "i": ["int", "1"], "f": ["float", "1.5"], "t": ["bool", "True"], "fa": ["bool", "False"],
        "n": ["NoneType", "None"], "s": ["str", "'hello world'"], "q": ["str", repr('say "hi"\\n')],
    }
    assert nb2.metadata.papermill.parameters == {
        "i": 1, "f": 1.5, "t": True, "fa": False, "n": None, "s": "hello world", "q": 'say "hi"\\n'}


def test_parameter_typing_p_edge_cases(h, tmp_path):
    """papermill's _resolve_type: int() then float() of the string, else str."""
    names = ["neg", "exp", "hexa", "under", "true_lc", "sp", "inf"]
    nb = params_nb(tmp_path, "\n".join(f"{n} = 'default'" for n in names), names)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-p", "neg", "-5", "-p", "exp", "1e3", "-p", "hexa", "0x10",
               "-p", "under", "1_000", "-p", "true_lc", "true", "-p", "sp", " 7 ", "-p", "inf", "inf"])
    assert r.rc == 0, r
    assert values(read_nb(out)) == {
        "neg": ["int", "-5"], "exp": ["float", "1000.0"], "hexa": ["str", "'0x10'"],
        "under": ["int", "1000"], "true_lc": ["str", "'true'"], "sp": ["int", "7"],
        "inf": ["float", "inf"],
    }


def test_raw_parameter_r(h, tmp_path):
    names = ["a", "b"]
    nb = params_nb(tmp_path, "a = 0\nb = 0", names)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-r", "a", "1", "-r", "b", "True"])
    assert r.rc == 0, r
    assert values(read_nb(out)) == {"a": ["str", "'1'"], "b": ["str", "'True'"]}


def test_parameters_file_f(h, tmp_path):
    names = ["n", "l", "d", "s", "day"]
    nb = params_nb(tmp_path, "\n".join(f"{n} = None" for n in names), names)
    yml = tmp_path / "params.yaml"
    yml.write_text("n: 3\nl: [1, two, 3.5]\nd: {x: 1, y: [true, null]}\ns: 'quoted'\nday: 2024-01-02\n")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-f", yml])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    assert values(nb2) == {
        "n": ["int", "3"], "l": ["list", "[1, 'two', 3.5]"], "d": ["dict", "{'x': 1, 'y': [True, None]}"],
        "s": ["str", "'quoted'"], "day": ["str", "'2024-01-02'"],   # dates stay strings (NoDatesSafeLoader)
    }


def test_parameters_yaml_y(h, tmp_path):
    names = ["a", "b"]
    nb = params_nb(tmp_path, "a = None\nb = None", names)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-y", "a: [1, 2]\nb: {k: v}"])
    assert r.rc == 0, r
    assert values(read_nb(out)) == {"a": ["list", "[1, 2]"], "b": ["dict", "{'k': 'v'}"]}


def test_parameter_precedence(h, tmp_path):
    """papermill order: -f files, then -y, then -p, then -r (later wins)."""
    names = ["a", "b", "c", "d"]
    nb = params_nb(tmp_path, "a = b = c = d = 0", names)
    yml = tmp_path / "p.yaml"
    yml.write_text("a: file\nb: file\nc: file\nd: file\n")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "-r", "d", "raw", "-p", "c", "p", "-p", "d", "p",
               "-y", "b: yaml\nc: yaml\nd: yaml", "-f", yml])
    assert r.rc == 0, r
    assert values(read_nb(out)) == {"a": ["str", "'file'"], "b": ["str", "'yaml'"],
                                    "c": ["str", "'p'"], "d": ["str", "'raw'"]}


def test_bad_yaml_is_input_error(h, tmp_path):
    nb = params_nb(tmp_path)
    r = h.run(["run", nb, tmp_path / "out.ipynb", "-y", "a: [1, 2\nb: }"], timeout=20)
    assert r.rc == 3, r
    assert r.stderr.strip()
    assert not (tmp_path / "out.ipynb").exists() or read_nb(tmp_path / "out.ipynb")


def test_missing_parameters_file_is_input_error(h, tmp_path):
    nb = params_nb(tmp_path)
    r = h.run(["run", nb, tmp_path / "out.ipynb", "-f", tmp_path / "nope.yaml"], timeout=20)
    assert r.rc == 3, r
    assert "nope.yaml" in r.stderr


def test_prepare_only(h, tmp_path):
    nb = params_nb(tmp_path)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--prepare-only", "-p", "a", "9"], timeout=20)
    assert r.rc == 0, r
    nb2 = read_nb(out)
    inj = tagged(nb2, "injected-parameters")
    assert len(inj) == 1 and inj[0].source == "# Parameters\na = 9\n"
    for c in code_cells(nb2):
        assert c.execution_count is None and c.outputs == [], c
    assert nb2.metadata.papermill.parameters == {"a": 9}
    assert r.elapsed < 10


def test_report_mode_hides_code_inputs(h, tmp_path):
    nb = params_nb(tmp_path)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--report-mode", "-p", "a", "1"])
    assert r.rc == 0, r
    nb2 = read_nb(out)
    for c in nb2.cells:
        hidden = c.metadata.get("jupyter", {}).get("source_hidden")
        if c.cell_type == "code":
            assert hidden is True, c.metadata
        else:
            assert not hidden, c.metadata
    assert values(nb2) == {"a": ["int", "1"]}


PARAMS_CELL = '''a = 1  # the a
b: str = "x"  # a string
c = None
d = [1, 2]
e = 3.5
# a comment line
f = {"k": 1}'''


def test_inspect_matches_papermill(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", md("# i"), code(PARAMS_CELL, tags=["parameters"]), "print(1)")
    r = h.run(["run", nb, "--inspect"], timeout=20)
    assert r.rc == 0, r
    got = json.loads(r.stdout)
    assert isinstance(got, list)
    import subprocess
    pm = subprocess.run([str(VENV_BIN / "python"), "-c",
                         "import json,sys\nfrom papermill.inspection import inspect_notebook\n"
                         "print(json.dumps(list(inspect_notebook(sys.argv[1]).values())))", str(nb)],
                        capture_output=True, text=True, timeout=60, env=h.env)
    assert pm.returncode == 0, pm.stderr
    want = json.loads(pm.stdout)
    assert got == want
    assert [p["name"] for p in got] == ["a", "b", "c", "d", "e", "f"]


def test_inspect_without_parameters_cell(h, tmp_path):
    nb = write_nb(tmp_path / "in.ipynb", "print(1)")
    r = h.run(["run", nb, "--inspect"], timeout=20)
    assert r.rc == 0, r
    assert json.loads(r.stdout) == []


def papermill_injected_source(h, nb, args):
    out = nb.parent / "pm_prepared.ipynb"
    import subprocess
    p = subprocess.run([PAPERMILL, str(nb), str(out), "--prepare-only", "--log-level", "ERROR"] + args,
                       capture_output=True, text=True, timeout=60, env=h.env, cwd=str(nb.parent))
    assert p.returncode == 0, p.stderr
    return tagged(read_nb(out), "injected-parameters")[0].source


INJECT_ARGS = ["-p", "i", "1", "-p", "f", "2.5", "-p", "b", "True", "-p", "n", "None",
               "-p", "s", 'it\'s "quoted" \\ ünï', "-y", "l: [1, 'x', null]\nd: {k: [1, {z: false}]}",
               "-y", "nan_: .nan\nneg: -.inf"]


@pytest.mark.parametrize("language", ["python", "R"])
def test_injected_source_matches_papermill(h, tmp_path, language):
    nb = params_nb(tmp_path)
    extra = [] if language == "python" else ["--language", language]
    want = papermill_injected_source(h, nb, INJECT_ARGS + extra)
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out, "--prepare-only"] + INJECT_ARGS + extra, timeout=20)
    assert r.rc == 0, r
    got = tagged(read_nb(out), "injected-parameters")[0].source
    assert got == want
