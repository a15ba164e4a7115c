"""`nbhub render`: output notebooks of real runs rendered to HTML.

The notebooks are executed by `nbhub run` on a real ipykernel (a matplotlib
plot, an error with an ANSI traceback, rich outputs), rendered, and the HTML is
parsed with Python's html.parser: structure, images, tracebacks, the CSP, and
no script element anywhere whatever the notebook tried."""

import base64
import json
from html.parser import HTMLParser

import pytest

from conftest import REPO, code, md, write_nb


class Doc(HTMLParser):
    """Collects elements with their attributes, and the text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elems, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elems.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elems.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag, **attrs):
        return [a for t, a in self.elems if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def classes(self, cls):
        return [a for t, a in self.elems if cls in (a.get("class") or "").split()]


def render(h, nb, *extra):
    out = nb.with_suffix(".html")
    r = h.run(["render", nb, out, *extra])
    assert r.rc == 0, r
    return out.read_text()


def test_real_run_with_plot_error_and_rich_outputs(h, tmp_path):
    nb = write_nb(
        tmp_path / "in.ipynb",
        md("# Report\n\nThe value is $x_1 = \\alpha^2$ and **bold**.\n\n| a | b |\n|---|---|\n| 1 | 2 |"),
        code("print('\\x1b[31mred\\x1b[0m plain')"),
        code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"),
        code("from IPython.display import HTML, SVG, JSON, Latex, display\n"
             "display(HTML('<b>html out</b>'))\n"
             "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\">"
             "<rect width=\"10\" height=\"10\"/></svg>'))\n"
             "display(Latex('$y<2$'))\n{'k': [1, 2]}"),
        code("1/0"),
        code("print('never')"),
    )
    out_nb = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out_nb])
    assert r.rc == 1, r                 # the error cell
    html = render(h, out_nb, "--ipynb-href", "out.ipynb")
    d = Doc(html)

    csp = d.all("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert not d.all("script")
    assert d.all("table")                                   # GFM table
    assert "$x_1 = \\alpha^2$" in "".join(d.text)           # math untouched for KaTeX
    assert any(a.get("class") == "ansi-red-fg" for a in d.all("span"))
    imgs = [a["src"] for a in d.all("img")]
    png = [s for s in imgs if s.startswith("data:image/png;base64,")]
    assert png, imgs
    assert base64.b64decode(png[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(s.startswith("data:image/svg+xml;base64,") for s in imgs)
    assert d.all("b")                                        # text/html kept
    text = "".join(d.text)
    assert "ZeroDivisionError" in text
    assert "never" in text                                   # the pending cell's source
    failed = d.classes("failed")
    assert len(failed) == 1
    assert d.classes("pending")
    assert [a for a in d.all("a", href="out.ipynb") if "download" in a]
    # papermill's banner (a markdown cell with an anchor link) is rendered as HTML
    assert any(a.get("href") == "#papermill-error-cell" for a in d.all("a"))


def test_examples_render_like_nbconvert_finds_them(h, tmp_path):
    """Every example notebook renders; each output nbconvert would show appears."""
    for src in sorted((REPO / "examples").glob("*.ipynb")):
        out_nb = tmp_path / src.name
        r = h.run(["run", src, out_nb, "--cwd", REPO / "examples"])
        assert r.rc in (0, 1), r
        html = render(h, out_nb)
        d = Doc(html)
        nbj = json.loads(out_nb.read_text())
        n_images = sum(1 for c in nbj["cells"] if c["cell_type"] == "code" for o in c["outputs"]
                       if "image/png" in o.get("data", {}) and "text/html" not in o.get("data", {}))
        assert len([a for a in d.all("img") if a["src"].startswith("data:image/png")]) >= n_images, src
        assert not d.all("script"), src


def test_hostile_notebook_cannot_script(h, tmp_path):
    """Script injection through HTML output, SVG, markdown, cell metadata, the file name."""
    evil = tmp_path / "x'\"><img src=x onerror=alert(1)>.ipynb"   # no '/' in a file name
    write_nb(
        evil,
        md("<script>alert('md')</script><img src=x onerror=alert('md2')>[a](javascript:alert(3))"),
        code("from IPython.display import HTML, SVG, display\n"
             "display(HTML('<script>alert(\"html\")</script><img src=x onerror=alert(4)>'))\n"
             "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(5)\">"
             "<script>alert(6)</script></svg>'))",
             **{"id": "ignored"}),
    )
    nbj = json.loads(evil.read_text())
    nbj["cells"][1]["id"] = "c\"><script>alert(7)</script>"
    nbj["metadata"]["kernelspec"]["display_name"] = "<script>alert(8)</script>"
    evil.write_text(json.dumps(nbj))
    out_nb = tmp_path / "evil-out.ipynb"
    r = h.run(["run", evil, out_nb])
    assert r.rc == 0, r
    out = tmp_path / "evil.html"
    r = h.run(["render", out_nb, out, "--title", evil.name])
    assert r.rc == 0, r
    html = out.read_text()
    d = Doc(html)
    # text/html outputs are kept as nbconvert keeps them, so a <script> element from
    # the notebook's own HTML output may exist in the markup; the page's CSP is what
    # stops it (checked in a real browser by the UI tests).  Everything else is escaped:
    scripts = [t for t, _ in d.elems if t == "script"]
    assert len(scripts) <= 1, scripts                       # only the HTML output's own
    assert "<svg" not in html                                # SVG only as <img> data URI
    assert "alert(7)</script>" not in html and "alert(8)</script>" not in html
    assert "<img src=x onerror=alert(1)>" not in html        # the file name in <title>
    assert "<script>alert('md')" not in html                 # GFM tag filter
    assert "default-src 'none'" in html


@pytest.mark.parametrize("case,rc,msg", [
    ("missing", 3, "No such file"),
    ("badjson", 3, ":2:"),
    ("v3", 3, "nbformat 3"),
    ("unwritable", 7, "cannot write"),
    ("usage", 2, "unknown option"),
])
def test_bad_input(h, tmp_path, case, rc, msg):
    nb = tmp_path / "nb.ipynb"
    out = tmp_path / "out.html"
    args = ["render", nb, out]
    if case == "badjson":
        nb.write_text('{"cells": [\n  oops]}')
    elif case == "v3":
        nb.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}}))
    elif case in ("unwritable", "usage"):
        write_nb(nb, code("1"))
        if case == "unwritable":
            args = ["render", nb, tmp_path / "no" / "such" / "dir" / "out.html"]
        else:
            args = ["render", nb, "--bogus"]
    r = h.run(args)
    assert r.rc == rc, r
    assert msg in r.stderr, r.stderr
    assert not out.exists()


def test_stdin_stdout_and_default_name(h, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("1"))
    r = h.run(["render", "-", "-"], input=nb.read_bytes())
    assert r.rc == 0, r
    assert r.stdout.startswith("<!DOCTYPE html>")
    r = h.run(["render", nb])
    assert r.rc == 0, r
    assert (tmp_path / "a.html").read_text().startswith("<!DOCTYPE html>")
    r = h.run(["render", "--help"])
    assert r.rc == 0 and "exit codes" in r.stdout
