#!/usr/bin/env python3
"""Benchmark `nbhub render` against `jupyter nbconvert --to html`, and weigh the web UI.

    .venv/bin/python bench/bench_render.py [-n 5] [--write] [--nbhub build/nbhub] [--no-ui | --no-render]

Part 1, rendering (both tools as a user runs them, one process per notebook):
  small  examples/outputs.ipynb executed by nbhub run (markdown, streams, an
         error-free rich-output notebook of a few cells)
  big    50 matplotlib plots (real PNGs made once by matplotlib) and ~5 MB of
         stream output in 50 code cells, plus markdown between them
Each tool renders each notebook N times after one warm-up, alternating; the
table has the median wall time (spawn to exit), the ratio, and the output size.
nbconvert runs with its defaults (the lab template, Pygments highlighting).

Part 2, web UI (`nbhub serve` with 200 flows, chromium via playwright-core):
the flow list and a run page, loaded with an empty cache: bytes transferred
(sum of the responses' encoded sizes, as the browser counts them) and the time
from navigation start to the page's content being rendered (the flows table /
the run's task table present), median of N loads.  Target: < 200 KB, < 100 ms.
"""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import RESULTS, cpu_model, replace_section

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
SECTION = "## nbhub render vs nbconvert, and the web UI's weight (bench/bench_render.py)"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def env():
    e = dict(os.environ, VIRTUAL_ENV=str(VENV), PATH=f"{VENV / 'bin'}:{os.environ.get('PATH', '')}")
    e.pop("PYTHONPATH", None)
    return e


def make_big(path, plots=50, text_mb=5.0):
    """A notebook as nbhub run would write it: real PNGs, big streams."""
    import base64
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    per_cell = int(text_mb * 1e6 / plots)
    line = "0123456789 " * 9 + "\n"
    for i in range(plots):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([x * 0.1 for x in range(200)], [((x * 0.1 * (i + 1)) % 7) for x in range(200)])
        ax.set_title(f"plot {i}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        plt.close(fig)
        png = base64.b64encode(buf.getvalue()).decode()
        nb.cells.append(new_markdown_cell(f"## Section {i}\n\nSome *text* with `code` and $x_{i}^2$."))
        c = new_code_cell(f"plot({i})\nprint(lines)", execution_count=i + 1)
        c.outputs = [new_output("stream", name="stdout", text=line * (per_cell // len(line))),
                     new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}, metadata={})]
        nb.cells.append(c)
    nbformat.write(nb, str(path))


def timed(cmd, cwd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, timeout=600)
    dt_ = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')[-2000:]}")
    return dt_


def bench_render(args, tmp):
    small_src = tmp / "small.ipynb"
    r = subprocess.run([args.nbhub, "run", REPO / "examples" / "outputs.ipynb", small_src,
                        "--cwd", REPO / "examples"], env=env(), capture_output=True, timeout=300)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"nbhub run failed: {r.stderr.decode(errors='replace')}")
    big_src = tmp / "big.ipynb"
    make_big(big_src)
    jupyter = str(VENV / "bin" / "jupyter")
    rows = []
    for name, src in (("small", small_src), ("big", big_src)):
        out_n, out_c = tmp / f"{name}.nbhub.html", tmp / f"{name}.nbconvert"
        tools = {
            "nbhub": [args.nbhub, "render", src, out_n],
            "nbconvert": [jupyter, "nbconvert", "--to", "html", "--log-level", "ERROR", src,
                          "--output", str(out_c)],
        }
        times = {k: [] for k in tools}
        for k, cmd in tools.items():   # warm-up (page cache, Python bytecode)
            timed(cmd, tmp)
        for i in range(args.reps):
            order = list(tools) if i % 2 == 0 else list(reversed(list(tools)))
            for k in order:
                times[k].append(timed(tools[k], tmp))
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"case": name, "input_mb": src.stat().st_size / 1e6,
               "nbhub_s": med["nbhub"], "nbconvert_s": med["nbconvert"],
               "ratio": med["nbconvert"] / med["nbhub"],
               "nbhub_kb": out_n.stat().st_size / 1024,
               "nbconvert_kb": Path(str(out_c) + ".html").stat().st_size / 1024,
               "samples": times}
        log(f"  render {name}: nbhub {row['nbhub_s']*1000:.1f} ms, nbconvert {row['nbconvert_s']*1000:.0f} ms, "
            f"{row['ratio']:.0f}x")
        rows.append(row)
    return rows


def bench_ui(args, tmp):
    """200 flows on a fresh server; page weight and first render in chromium."""
    home = tmp / "ui-home"
    flows = home / "flows"
    flows.mkdir(parents=True)
    for i in range(200):
        sched = ['"0 5 * * *"', '"*/15 * * * *"', "30m", '"@daily"'][i % 4]   # @ cannot start a plain YAML scalar
        (flows / f"flow-{i:03d}.yaml").write_text(
            f"name: flow-{i:03d}\ndescription: Flow number {i} of the page-weight benchmark.\n"
            f"schedule: {sched}\nstart_date: 2099-01-01\ntimezone: Europe/Berlin\n"
            "tasks:\n  a: {command: \"true\"}\n  b: {command: \"true\", after: [a]}\n  c: {command: \"true\", after: [a]}\n")
    (flows / "demo.yaml").write_text("name: demo\ntasks:\n" + "".join(
        f"  t{i}: {{command: \"true\"{', after: [t%d]' % (i - 1) if i else ''}}}\n" for i in range(8)))
    pw = tmp / "pw"
    pw.write_text("bench-password-1\n")
    out = open(tmp / "serve.out", "wb")
    errf = open(tmp / "serve.err", "wb")
    e = env()
    e["NBHUB_ADMIN_PASSWORD_FILE"] = str(pw)
    srv = subprocess.Popen([args.nbhub, "serve", "--home", home, "--listen", "127.0.0.1:0"],
                           stdout=out, stderr=errf, env=e, start_new_session=True)
    try:
        port = None
        for _ in range(300):
            t = (tmp / "serve.out").read_text()
            if "(port " in t:
                port = int(t.split("(port ", 1)[1].split(")", 1)[0])
                break
            time.sleep(0.05)
        if not port:
            raise RuntimeError("nbhub serve did not start: " + (tmp / "serve.err").read_text()[-2000:])
        time.sleep(1.0)   # let the flows load
        r = subprocess.run(["node", str(REPO / "bench" / "ui_weight.mjs")], cwd=REPO / "tests" / "browser",
                           env=dict(e, NBHUB_URL=f"http://127.0.0.1:{port}", NBHUB_PASSWORD="bench-password-1",
                                    REPS=str(args.reps), CHROMIUM=shutil.which("chromium") or "/usr/bin/chromium"),
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"ui_weight.mjs failed: {r.stderr[-3000:]}")
        res = json.loads(r.stdout)
        for k, v in res.items():
            log(f"  ui {k}: {v['kb']:.1f} KB in {v['requests']} requests, first render {v['ms']:.1f} ms, first paint {v.get('fcp')} ms")
        return res
    finally:
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait(timeout=30)


def table(render, ui):
    L = ["| notebook | input (MB) | nbhub render (ms) | nbconvert --to html (ms) | ratio | target | | nbhub HTML (KB) | nbconvert HTML (KB) |",
         "|---|---:|---:|---:|---:|---|---|---:|---:|"] if render else []
    for r in render:
        ok = r["ratio"] >= 20
        L.append(f"| {r['case']} | {r['input_mb']:.2f} | {r['nbhub_s']*1000:.1f} | {r['nbconvert_s']*1000:.0f} | "
                 f"{r['ratio']:.0f}x | >= 20x | {'PASS' if ok else 'MISS'} | {r['nbhub_kb']:.0f} | {r['nbconvert_kb']:.0f} |")
    if ui:
        L += ["" if L else None, "| page (200 flows) | transferred (KB) | requests | first render (ms) | first paint (ms) | target | |",
              "|---|---:|---:|---:|---:|---|---|"]
        for k, v in ui.items():
            ok = v["kb"] < 200 and v["ms"] < 100
            ref = "reference" in k or "anchor" in k
            L.append(f"| {k} | {v['kb']:.1f} | {v['requests']} | {v['ms']:.1f} | "
                     f"{'—' if v.get('fcp') is None else format(v['fcp'], '.0f')} | {'' if ref else '< 200 KB, < 100 ms'} | {'' if ref else ('PASS' if ok else 'MISS')} |")
    return "\n".join(x for x in L if x is not None)


def write_results(text, args):
    head = [SECTION, "",
            f"Generated by `bench/bench_render.py -n {args.reps} --write` on {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.",
            f"Machine: {os.cpu_count()} CPUs, {cpu_model()}, Linux {platform.release()}, Python {platform.python_version()}; "
            f"anchor nbconvert {args.nbconvert_version}.",
            "Medians; tools alternate; wall time is spawn to exit of one process per notebook. Page loads: "
            "empty cache (the renderer process started first on /healthz), chromium headless on 127.0.0.1; "
            "first render = navigation start to the content present in the DOM (the target's measure); "
            "first paint = the browser's first-contentful-paint entry. The flow list and the run page have their first view "
            "written in by the server (src/api/api_ssr.c); each anchor is that same HTML without its script, served as "
            "a static file by node's http module on 127.0.0.1 (what chromium here needs to show that content at all).",
            "", ""]
    replace_section(SECTION, "\n".join(head) + text + "\n")
    log(f"wrote {RESULTS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--reps", type=int, default=5)
    ap.add_argument("--nbhub", default=str(REPO / "build" / "nbhub"))
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--no-ui", action="store_true", help="part 1 only (nbhub render vs nbconvert)")
    ap.add_argument("--no-render", action="store_true", help="part 2 only (the web UI), e.g. to iterate on it")
    ap.add_argument("--json")
    args = ap.parse_args()
    r = subprocess.run([str(VENV / "bin" / "jupyter"), "nbconvert", "--version"], capture_output=True, text=True)
    args.nbconvert_version = r.stdout.strip() or "?"
    with tempfile.TemporaryDirectory(prefix="nbhub-bench-render-") as d:
        tmp = Path(d)
        render = [] if args.no_render else bench_render(args, tmp)
        ui = None if args.no_ui else bench_ui(args, tmp)
    text = table(render, ui)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"render": render, "ui": ui}, indent=1))
    if args.write:
        if args.no_render or args.no_ui:
            log("--write needs both parts (the section is one table); not written")
            return 2
        write_results(text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
