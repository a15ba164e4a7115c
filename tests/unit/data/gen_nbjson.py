"""Generate the byte-for-byte fixtures for test_nb.c (nbjson vs nbformat.write).

For every case NAME this writes, under tests/unit/data/nbjson/:
  NAME.in.ipynb   the input given to nb_load_text (various JSON spellings:
                  split or joined lines, \\u escapes or raw UTF-8, compact)
  NAME.out.ipynb  what nbformat.write(nbformat.reads(input, as_version=4), f)
                  writes: the bytes nbjson_dump must reproduce
and a MANIFEST with one NAME per line.

Run from the repository root with the project venv:
    .venv/bin/python tests/unit/data/gen_nbjson.py
Add --papermill to also (re)generate the case made by running papermill on
a small notebook (needs the python3 kernel; its timestamps change each run).

Inputs are kept to what both Python's json and jansson read identically:
no NaN/Infinity, no integers beyond 64 bits, no lone surrogates.
"""

import io
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
OUT = HERE / "nbjson"

logging.getLogger("nbformat").setLevel(logging.CRITICAL)
warnings.simplefilter("ignore")


def nb(cells, metadata=None, minor=5, **extra):
    d = {"cells": cells, "metadata": metadata if metadata is not None else {},
         "nbformat": 4, "nbformat_minor": minor}
    d.update(extra)
    return d


def code(src, outputs=(), ec=None, cid=None, **md):
    c = {"cell_type": "code", "execution_count": ec, "metadata": md,
         "outputs": list(outputs), "source": src}
    if cid:
        c["id"] = cid
    return c


def md_cell(src, cid=None, attachments=None, **md):
    c = {"cell_type": "markdown", "metadata": md, "source": src}
    if cid:
        c["id"] = cid
    if attachments is not None:
        c["attachments"] = attachments
    return c


def raw(src, cid=None, **md):
    c = {"cell_type": "raw", "metadata": md, "source": src}
    if cid:
        c["id"] = cid
    return c


def stream(text, name="stdout"):
    return {"name": name, "output_type": "stream", "text": text}


def display(data, md=None):
    return {"data": data, "metadata": md or {}, "output_type": "display_data"}


def result(data, n, md=None):
    return {"data": data, "execution_count": n, "metadata": md or {},
            "output_type": "execute_result"}


def error(ename, evalue, tb):
    return {"ename": ename, "evalue": evalue, "output_type": "error", "traceback": tb}


KS = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
      "language_info": {"name": "python", "version": "3.11.2",
                        "codemirror_mode": {"name": "ipython", "version": 3}}}

TRICKY = ("plain\nwindows\r\nold mac\rvt\x0bff\x0cfs\x1cgs\x1drs\x1enel\x85"
          "ls\u2028ps\u2029tail no newline")


def cases():
    c = {}
    c["basic"] = nb([
        md_cell("# Title\n\nSome *text*.", cid="a1"),
        code("x = 1\nprint(x)\n", [stream("1\n")], ec=1, cid="a2"),
        code("x", [result({"text/plain": "1"}, 2)], ec=2, cid="a3"),
        raw("raw\ncell", cid="a4"),
        code("", cid="a5"),
        code("1/0", [error("ZeroDivisionError", "division by zero",
                           ["\x1b[0;31m---\x1b[0m", "Traceback\nline 2"])], ec=3, cid="a6"),
    ], KS)
    c["empty"] = nb([], {})
    c["empty_minor4"] = nb([], {}, minor=4)
    c["newlines"] = nb([
        code(TRICKY, [stream(TRICKY), stream("a\r\n\r\nb\r", "stderr")], ec=1, cid="n1"),
        md_cell("\n\n\nx\n\n", cid="n2"),
        md_cell("\r\n", cid="n3"),
        md_cell("no newline at all", cid="n4"),
        md_cell("\u2028\u2029\x85", cid="n5"),
        md_cell("\u00c2\u0085 is not U+0085 twice: \u00e2\u0080\u00a8", cid="n6"),
    ])
    c["control"] = nb([
        code("".join(chr(i) for i in range(0x20)) + "\x7f\"\\/\u00a0", cid="c1",
             weird={"k\x00ey": 1} if False else {"ctl": "\x00\x01\x1f\b\t"}),
        md_cell('quote " backslash \\ slash / tab \t bell \x07', cid="c2"),
    ], {"nul": "a\x00b", "\x01key": "v"})
    c["unicode"] = nb([
        md_cell("Grüße, 日本語, emoji 😀👩‍👩‍👧, combining e\u0301, "
                "astral \U0001d11e, BOM \ufeff, nbsp\u00a0, RTL \u202e", cid="u1"),
        code("s = 'ß'\n# \u2603", [stream("ok ✓\n")], ec=7, cid="u2"),
    ], {"titlé": "ünïcödé", "z": "last", "a": "first", "É": 1, "e\u0301": 2,
        "\u00e9": 3, "😀": 4, "\uffff": 5, "\U00010000": 6, "": "empty key", "A": 0, "a b": 1})
    floats = [0.1, 0.2, 0.30000000000000004, 1e-05, 0.0001, 1e16, 1e15, 100.0, -0.0, 0.0,
              5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 2.225073858507201e-308,
              123456789.123, 1e22, 1e23, 9007199254740993.0, 1.5, -2.5e-10, 3.14159,
              2.0 ** 60, 2.0 ** -30, 1 / 3, 2 / 3, 123e45, 4.35, 0.3, 5e-05, 9.999999999999999e15,
              1234567890123456.7, 12345678901234567.0, 0.001, 1e-4, 1e-3]
    rng = random.Random(1234)
    for _ in range(300):
        floats.append(rng.uniform(-1e6, 1e6))
        floats.append(rng.random() * 10 ** rng.randint(-320, 300))
        bits = rng.getrandbits(64)
        f = __import__("struct").unpack("<d", bits.to_bytes(8, "little"))[0]
        if f == f and f not in (float("inf"), float("-inf")):
            floats.append(f)
    for k in range(-30, 30):   # powers of two: lopsided rounding intervals
        floats.append(2.0 ** (k * 35))
    ints = [0, -1, 1, 2 ** 63 - 1, -2 ** 63, 10 ** 18, -(10 ** 17)]
    c["numbers"] = nb([code("pass", [result({"text/plain": "x"}, 1, {"floats": floats})],
                            ec=1, cid="f1")],
                      {"floats": floats[:40], "ints": ints, "bools": [True, False, None],
                       "mixed": [1, 1.0, "1", [1], {"1": 1}]})
    c["nested"] = nb([
        code("a", cid="m1", tags=["parameters"], jupyter={"source_hidden": True},
             deep={"a": [[], {}, [[]], [{}], {"b": {"c": {"d": [1, [2, [3, {}]]]}}}]}),
    ], {"empty_list": [], "empty_dict": {}, "list_of_empty": [[], {}, ""],
        "papermill": {"parameters": {}, "exception": None}})
    c["transient"] = nb([
        code("x", cid="t1", trusted=True, keep=1),
        md_cell("y", cid="t2", trusted=False),
    ], {"orig_nbformat": 3, "orig_nbformat_minor": 0, "signature": "sha256:abc", "kept": True})
    svg = '<svg xmlns="http://www.w3.org/2000/svg">\n<circle r="1"/>\n</svg>\n'
    c["mime"] = nb([
        code("d", [
            display({"text/plain": "line1\nline2", "text/html": "<b>x</b>\n<i>y</i>",
                     "text/markdown": "", "image/png": "iVBORw0KGgo=\nAAAA\n",
                     "image/svg+xml": svg, "application/javascript": "var a;\nvar b;",
                     "application/json": {"a": [1, 2], "s": "x\ny"},
                     "application/vnd.custom+json": {"k": "v"},
                     "application/x-other": "no\nsplit",
                     "text/x-list": ["already ", "split\n", "list"],
                     "text/x-mixed": ["a", 1]},
                    {"image/png": {"width": 10}}),
            result({"text/plain": "r\n", "text/latex": "$x$\r\n$y$"}, 5),
            stream(""),
        ], ec=5, cid="d1"),
        md_cell("![a](attachment:a.png)", cid="d2", attachments={
            "a.png": {"image/png": "AAAA\nBBBB"},
            "b.svg": {"image/svg+xml": svg, "text/plain": "t\nu"}}),
        raw("r", cid="d3", attachments={"x": {"text/plain": "p\nq"}}),
    ])
    # Inputs that rejoin_lines normalises on load.
    c["split_input"] = nb([
        code(["line 1\n", "line 2\n", "line 3"],
             [stream(["a\n", "b\n"]), display({"text/plain": ["x\n", "y"],
                                               "image/png": ["AAA\n", "BBB"],
                                               "application/json": ["keep", "list"]})],
             ec=1, cid="s1"),
        md_cell([], cid="s2"),
        md_cell(["only"], cid="s3"),
    ], KS)
    c["unknown_keys"] = nb([
        dict(code("x", cid="k1"), zzz_extra={"k": [1]}, aaa_extra=None),
        dict(md_cell("y", cid="k2"), custom=[]),
    ], KS, top_extra={"b": 1, "a": 2}, _private="x")
    c["minor4_no_ids"] = nb([code("x"), md_cell("y")], KS, minor=4)

    for seed in range(8):
        c[f"random{seed}"] = random_nb(random.Random(seed))
    return c


ALPHABET = ("abcXYZ019 _-/\\\"'\n\r\t\x00\x01\x0b\x0c\x1c\x1d\x1e\x1f\x7f\x85\xa0é"
            "\u2028\u2029\u0301\u200b日本😀\U0001d11e\ufeff\uffff{}[]:,")


def rstr(rng, n=12):
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, n)))


def rval(rng, depth=0):
    r = rng.random()
    if depth > 4 or r < 0.35:
        t = rng.randint(0, 5)
        return [None, True, rng.randint(-2 ** 63, 2 ** 63 - 1),
                rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-20, 20), rstr(rng), False][t]
    if r < 0.65:
        return [rval(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rkey(rng): rval(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def rkey(rng, n=6):
    # jansson cannot hold "\u0000" inside an object key (values are fine).
    return rstr(rng, n).replace("\x00", "")


def random_nb(rng):
    cells = []
    for i in range(rng.randint(0, 6)):
        kind = rng.choice(["code", "markdown", "raw"])
        src = rstr(rng, 60)
        if rng.random() < 0.3:
            src = src.splitlines(True)
        md = {rkey(rng, 5): rval(rng) for _ in range(rng.randint(0, 3))}
        if kind == "code":
            outs = []
            for _ in range(rng.randint(0, 3)):
                t = rng.choice(["stream", "display", "result", "error"])
                if t == "stream":
                    outs.append(stream(rstr(rng, 80), rng.choice(["stdout", "stderr"])))
                elif t == "error":
                    outs.append(error(rstr(rng), rstr(rng), [rstr(rng) for _ in range(2)]))
                else:
                    data = {rng.choice(["text/plain", "text/html", "image/png", "image/svg+xml",
                                        "application/json", "application/javascript",
                                        "text/" + rkey(rng, 3)]): rstr(rng, 50)
                            for _ in range(rng.randint(0, 4))}
                    if "application/json" in data:
                        data["application/json"] = rval(rng)
                    outs.append(display(data, {"x": rval(rng)}) if t == "display"
                                else result(data, rng.randint(1, 99)))
            cells.append(code(src, outs, ec=rng.choice([None, rng.randint(1, 500)]),
                              cid=f"r{i}", **md))
        elif kind == "markdown":
            cells.append(md_cell(src, cid=f"r{i}", **md))
        else:
            cells.append(raw(src, cid=f"r{i}", **md))
    return nb(cells, {rkey(rng, 8): rval(rng) for _ in range(rng.randint(0, 6))})


def expected_bytes(text):
    """What nbformat.write writes for a notebook file with this text."""
    node = nbformat.reads(text, as_version=4)
    f = io.StringIO()
    nbformat.write(node, f)
    return f.getvalue().encode("utf-8")


def input_text(name, d, rng):
    """Vary the JSON spelling of inputs so the parser sees all forms."""
    style = rng.randint(0, 3)
    if style == 0:
        return json.dumps(d, ensure_ascii=True)
    if style == 1:
        return json.dumps(d, ensure_ascii=False, indent=2)
    if style == 2:
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(d, ensure_ascii=True, indent="\t", sort_keys=True) + "\n\n"


PM_SOURCE = [
    ("code", "a = 1\nb = 'x'", ["parameters"]),
    ("code", "print('hello', a, b)\nimport sys; print('err', file=sys.stderr)", []),
    ("code", "from IPython.display import display, HTML, Markdown\n"
             "display(HTML('<b>bold</b>\\n<i>it</i>'))\n"
             "display({'text/plain': 'multi\\nline', 'application/json': {'k': [1, 2.5]}}, raw=True)\n"
             "{'unicode': 'ß😀', 'float': 0.1, 'list': [1e-05, 1e16]}", []),
    ("markdown", "## Heading\n\nText with ünïcode.", []),
    ("code", "for i in range(3):\n    print(i, end='\\r\\n')", []),
]


def papermill_case():
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    cells = []
    for kind, src, tags in PM_SOURCE:
        c = new_code_cell(src) if kind == "code" else new_markdown_cell(src)
        c.id = f"pm{len(cells)}"
        if tags:
            c.metadata["tags"] = tags
        cells.append(c)
    src_nb = new_notebook(cells=cells, metadata={"kernelspec": KS["kernelspec"]})
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.ipynb"), os.path.join(tmp, "out.ipynb")
        nbformat.write(src_nb, inp)
        papermill = os.path.join(os.path.dirname(sys.executable), "papermill")
        subprocess.run([papermill, "-p", "a", "2", "-p", "b", "y\nz", inp, outp, "--log-level",
                        "ERROR"], check=True, timeout=300)
        return Path(outp).read_text(encoding="utf-8")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    names = []
    for name, d in cases().items():
        text = input_text(name, d, rng)
        (OUT / f"{name}.in.ipynb").write_text(text, encoding="utf-8")
        (OUT / f"{name}.out.ipynb").write_bytes(expected_bytes(text))
        names.append(name)
    pm_in = OUT / "papermill.in.ipynb"
    if "--papermill" in sys.argv:
        pm_in.write_text(papermill_case(), encoding="utf-8")
    if pm_in.exists():
        (OUT / "papermill.out.ipynb").write_bytes(expected_bytes(pm_in.read_text(encoding="utf-8")))
        names.append("papermill")
    (OUT / "MANIFEST").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    print(f"wrote {len(names)} cases to {OUT}")


if __name__ == "__main__":
    main()
