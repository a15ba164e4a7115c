#!/usr/bin/env python3
"""Generate the example notebooks that `make run` executes with `nbhub run`.

The notebooks are written with nbformat (v4.5, with stable cell ids so that a
regeneration produces no diff) and validated before they are saved. Each one
runs in well under 3 seconds on a python3 (ipykernel) kernel.

    .venv/bin/python examples/make_examples.py          # (re)write examples/*.ipynb
    .venv/bin/python examples/make_examples.py --check  # exit 1 if a file is stale

Notebooks:
  hello.ipynb    parameterised greeting (a cell tagged `parameters`)
  plot.ipynb     a matplotlib line plot (inline backend = Agg rendering to PNG)
  outputs.ipynb  stream merging, display_id updates, clear_output(wait=True),
                 a small data summary computed with the standard library
  tags.ipynb     markdown/raw cells, a `skip-execution` cell, an execute_result
"""

import argparse
import os
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

HERE = os.path.dirname(os.path.abspath(__file__))

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python"}


def code(cell_id, source, tags=None):
    c = new_code_cell(source)
    c.id = cell_id
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def md(cell_id, source):
    c = new_markdown_cell(source)
    c.id = cell_id
    return c


def raw(cell_id, source):
    c = new_raw_cell(source)
    c.id = cell_id
    return c


def notebook(cells):
    nb = new_notebook(metadata={"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)})
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.cells = cells
    return nb


def hello():
    return notebook([
        md("hello-title", "# Hello\n\nA parameterised greeting. Try\n\n"
                          "    nbhub run examples/hello.ipynb out.ipynb -p name Ada -p count 3"),
        code("hello-params", 'name = "world"  # who to greet\ncount = 2  # how many times', tags=["parameters"]),
        code("hello-greet", 'for i in range(count):\n    print(f"Hello, {name}! ({i + 1}/{count})")'),
        code("hello-result", "name.upper()"),
    ])


def plot():
    return notebook([
        md("plot-title", "# Plot\n\nA matplotlib figure rendered by the inline backend (Agg) to PNG."),
        code("plot-setup", "%matplotlib inline\nimport math\nimport matplotlib\nimport matplotlib.pyplot as plt"),
        code("plot-params", "points = 60\nfreq = 2.0", tags=["parameters"]),
        code("plot-draw",
             "xs = [i / points * 2 * math.pi for i in range(points + 1)]\n"
             "fig, ax = plt.subplots(figsize=(4, 2.5), dpi=80)\n"
             "ax.plot(xs, [math.sin(freq * x) for x in xs], label='sin')\n"
             "ax.plot(xs, [math.cos(freq * x) for x in xs], label='cos')\n"
             "ax.set_title(f'freq = {freq}')\n"
             "ax.legend()\n"
             "plt.show()"),
        code("plot-backend", "print(matplotlib.get_backend())"),
    ])


def outputs():
    return notebook([
        md("out-title", "# Outputs\n\nHow the executor assembles outputs (nbclient rules)."),
        code("out-stream",
             "import sys\n"
             "for i in range(5):\n"
             "    print(f'line {i}')\n"
             "sys.stdout.flush()\n"
             "print('a warning on stderr', file=sys.stderr)\n"
             "sys.stderr.flush()\n"
             "print('back on stdout')"),
        code("out-display",
             "from IPython.display import display, update_display, Markdown\n"
             "handle = display(Markdown('**step 0**'), display_id='status')"),
        code("out-update",
             "for step in range(1, 4):\n"
             "    update_display(Markdown(f'**step {step}**'), display_id='status')\n"
             "print('updated the status display above')"),
        code("out-clear",
             "from IPython.display import clear_output\n"
             "import time\n"
             "for i in range(3):\n"
             "    clear_output(wait=True)\n"
             "    print(f'tick {i}')\n"
             "    time.sleep(0.05)"),
        code("out-summary",
             "import random, statistics\n"
             "from IPython.display import HTML\n"
             "rng = random.Random(42)\n"
             "data = {k: [round(rng.gauss(mu, 1.0), 3) for _ in range(200)] for k, mu in (('a', 0), ('b', 5), ('c', -2))}\n"
             "rows = [(k, len(v), statistics.mean(v), statistics.median(v), statistics.stdev(v)) for k, v in data.items()]\n"
             "html = '<table><tr><th>col</th><th>n</th><th>mean</th><th>median</th><th>stdev</th></tr>' + ''.join(\n"
             "    f'<tr><td>{k}</td><td>{n}</td><td>{m:.3f}</td><td>{md:.3f}</td><td>{s:.3f}</td></tr>' for k, n, m, md, s in rows) + '</table>'\n"
             "display(HTML(html))\n"
             "{k: round(m, 3) for k, _, m, _, _ in rows}"),
    ])


def tags():
    return notebook([
        md("tags-title", "# Tags and cell types"),
        raw("tags-raw", "raw cells are copied, never executed"),
        code("tags-skip", "raise RuntimeError('this cell is tagged skip-execution and must not run')",
             tags=["skip-execution"]),
        code("tags-run", "total = sum(range(10))\nprint('total', total)"),
        code("tags-result", "{'total': total, 'squares': [i * i for i in range(5)]}"),
    ])


EXAMPLES = {
    "hello.ipynb": hello,
    "plot.ipynb": plot,
    "outputs.ipynb": outputs,
    "tags.ipynb": tags,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that the files are up to date")
    ap.add_argument("--out", default=HERE, help="output directory (default: examples/)")
    args = ap.parse_args()
    stale = []
    for name, make in EXAMPLES.items():
        nb = make()
        nbformat.validate(nb)
        text = nbformat.writes(nb, version=4) + "\n"
        path = os.path.join(args.out, name)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old == text:
            continue
        stale.append(name)
        if not args.check:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if args.check and stale:
        print("stale:", " ".join(stale), file=sys.stderr)
        return 1
    if not args.check:
        print(f"examples: {len(EXAMPLES)} notebooks, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
