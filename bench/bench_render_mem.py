#!/usr/bin/env python3
"""Memory of the web UI's notebook view: a big output notebook rendered by
`nbhub serve` (GET /api/v1/runs/ID/tasks/T/output.html), one request and four
at once, for two nbhub binaries side by side (issue 16).

    .venv/bin/python bench/bench_render_mem.py --base /tmp/main-base/build/nbhub \\
        [--nbhub build/nbhub] [--mb 63] [-n 3] [--write]

For each notebook shape, binary and repetition: a fresh `nbhub serve` (own
home) runs a flow with one tiny notebook task; the task's output notebook is
then replaced (by rename, as nbhub run writes it) with a generated one of --mb
megabytes, either "many cells" shaped like a plotting notebook (per code cell
1 MB of stdout as nbformat stores it, a list of 100-byte lines, and a 500 KB
base64 PNG-sized image of random bytes, as incompressible as real PNGs, plus a
markdown cell) or "one cell" (one output of --mb MB of lines: the worst case
for a renderer that works cell by cell).  Then, on that server:

  one   its peak RSS is reset (echo 5 > /proc/PID/clear_refs, root), VmRSS
        read, one GET as a browser sends it (Accept-Encoding: gzip), VmHWM
        read: growth = VmHWM - VmRSS before.
  four  the same with four GETs at once (four threads, four connections).

Medians over -n repetitions, binaries alternating.  The binary given by --nbhub
is run with `ui: {render_max: 1g}` in its nbhub.yaml so it renders the notebook
(its default cap, 32 MiB, would refuse it: that answer is measured too, as
"capped").  --base is meant for the commit before the change (main), which
knows no `ui` key.  --write puts the table in bench/RESULTS.md.
"""

import argparse
import base64
import datetime as dt
import http.client
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import Nbhub, make_notebook, wait_until  # noqa: E402
from benchlib import cpu_model, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Rendering a big output notebook in nbhub serve: memory (bench/bench_render_mem.py)"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_big(path, mb, seed=1):
    """nbformat 4 JSON as nbformat.write lays it out, written directly (fast)."""
    import json
    rnd = random.Random(seed)
    ncells = max(1, round(mb * 1e6 / 1.55e6))
    line = "0123456789 " * 9 + "\n"
    lines = [line] * (1000000 // len(line))
    cells = []
    for i in range(ncells):
        png = base64.b64encode(rnd.randbytes(375000)).decode()
        cells.append({"cell_type": "markdown", "id": f"m{i}", "metadata": {},
                      "source": [f"## Section {i}\n", "\n", "Some *text* with `code`."]})
        cells.append({"cell_type": "code", "id": f"c{i}", "execution_count": i + 1, "metadata": {},
                      "source": [f"plot({i})\n", "print(lines)"],
                      "outputs": [{"output_type": "stream", "name": "stdout", "text": lines},
                                  {"output_type": "display_data", "metadata": {},
                                   "data": {"image/png": png, "text/plain": ["<Figure>"]}}]})
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(nb, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    return tmp


def make_one_cell(path, mb):
    """One code cell that printed mb MB of 100-byte lines (nbformat's list of lines)."""
    import json
    line = "0123456789 " * 9 + "\n"
    cell = {"cell_type": "code", "id": "c0", "execution_count": 1, "metadata": {}, "source": ["print(x)"],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": [line] * int(mb * 1e6 / 110)}]}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(nb, f, indent=1, sort_keys=True)
    return tmp


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def fetch(port, token, path, out, i):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"})
    r = c.getresponse()
    body = r.read()
    c.close()
    out[i] = (r.status, len(body), time.monotonic() - t0, body[:4000])


def measure(srv, path, k):
    """Reset the peak, k GETs at once; (growth bytes, wall s, statuses, sizes, first body)."""
    time.sleep(0.3)
    reset_peak(srv.pid)
    before = status(srv.pid)["VmRSS"]
    res = [None] * k
    ths = [threading.Thread(target=fetch, args=(srv.port, srv.api.token, path, res, i)) for i in range(k)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.monotonic() - t0
    hwm = status(srv.pid)["VmHWM"]
    return hwm - before, wall, [r[0] for r in res], [r[1] for r in res], res[0][3]


def one_server(args, tmp, label, binary, big, config):
    home = Path(tmp) / f"home-{label}-{time.monotonic_ns()}"
    home.mkdir(parents=True)
    if config:
        (home / "nbhub.yaml").write_text(config)
    flows = home / "flows"
    flows.mkdir()
    make_notebook(flows / "tiny.ipynb", ["print(1)"])
    (flows / "big.yaml").write_text("name: big\ntasks:\n  nb: {notebook: tiny.ipynb}\n")
    a = argparse.Namespace(nbhub=binary)
    srv = Nbhub(a, tmp, home, flows).start()
    try:
        wait_until(lambda: srv.api.get("/api/v1/flows/big")[0] == 200, 30, what="flow loaded")
        rid = srv.trigger("big")
        run = srv.wait_run(rid, 120)
        assert run["state"] == "success", (run, srv.log())
        db = sqlite3.connect(f"file:{home / 'nbhub.db'}?mode=ro", uri=True)
        outp = db.execute("SELECT output_path FROM task_runs WHERE run = ?", (rid,)).fetchone()[0]
        db.close()
        os.link(big, str(outp) + ".new")
        os.replace(str(outp) + ".new", outp)
        path = f"/api/v1/runs/{rid}/tasks/nb/output.html"
        measure(srv, f"/api/v1/runs/{rid}", 1)           # warm the connection paths
        one = measure(srv, path, 1)
        four = measure(srv, path, 4)
        return {"one": one, "four": four, "idle_rss": status(srv.pid)["VmRSS"]}
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="nbhub binary of the commit before (main)")
    ap.add_argument("--base-label", default="main c67784b")
    ap.add_argument("--nbhub", default=str(REPO / "build" / "nbhub"))
    ap.add_argument("--label", default=None, help="name of --nbhub's row (default: its git commit)")
    ap.add_argument("--mb", type=float, default=63)
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.label is None:
        import subprocess
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        args.label = f"this branch ({rev})" if rev else "this branch"
    if os.geteuid() != 0:
        sys.exit("needs root: the peak RSS is reset through /proc/PID/clear_refs")
    tmp = tempfile.mkdtemp(prefix="nbhub-rmem-")
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp):
    shapes = []
    for shape, maker in (("many cells", make_big), ("one cell", make_one_cell)):
        p = Path(tmp) / f"{shape.replace(' ', '-')}.ipynb"
        os.replace(maker(p, args.mb), p)
        shapes.append((shape, p, p.stat().st_size))
        log(f"notebook ({shape}): {p.stat().st_size / 1e6:.1f} MB")
    sides = [("base", args.base_label, args.base, None),
             ("new", args.label, args.nbhub, "ui: {render_max: 1g}\n"),
             ("capped", args.label + ", default cap", args.nbhub, None)]
    res = {(sh, k): [] for sh, *_ in shapes for k, *_ in sides}
    for rep in range(args.n):
        for shape, big, size in shapes:
            for key, label, binary, cfg in sides:
                if key == "capped" and (rep > 0 or shape != "many cells"):
                    continue
                r = one_server(args, tmp, key, binary, big, cfg)
                res[(shape, key)].append(r)
                log(f"rep {rep} {shape} {key}: one +{r['one'][0] / 1e6:.0f} MB {r['one'][1]:.2f} s "
                    f"{r['one'][2]} {r['one'][3]}; four +{r['four'][0] / 1e6:.0f} MB {r['four'][1]:.2f} s "
                    f"{r['four'][2]}")

    def med(k, part, i):
        return statistics.median(r[part][i] for r in res[k])
    rows = []
    for shape, big, size in shapes:
        for key, label, binary, cfg in sides:
            k = (shape, key)
            if not res[k]:
                continue
            one, four = med(k, "one", 0), med(k, "four", 0)
            rows.append(f"| {shape}, {size / 1e6:.1f} MB | {label} | {one / 1e6:.0f} | {one / size:.2f}x | "
                        f"{med(k, 'one', 1):.2f} | {four / 1e6:.0f} | {four / size:.2f}x | {med(k, 'four', 1):.2f} | "
                        f"{res[k][0]['one'][2][0]} |")
    size = shapes[0][2]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join([
        "| notebook | nbhub | one request: RSS growth (MB) | / notebook | wall (s) | four at once: RSS growth (MB) "
        "| / notebook | wall (s) | status |",
        "|---|---|---|---|---|---|---|---|---|", *rows])
    print(table)
    if args.write:
        section = (
            f"{SECTION}\n\nGenerated by `bench/bench_render_mem.py -n {args.n} --mb {args.mb:g} --write` on {now}, "
            f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}.\n\n"
            f"Two output notebooks of about {args.mb:g} MB: *many cells* ({round(args.mb * 1e6 / 1.55e6)} code "
            "cells, each 1 MB of stdout as a list of lines and a 500 KB base64 image, plus markdown) and "
            "*one cell* (one output of 100-byte lines: the worst case for a renderer that works cell by "
            "cell), rendered by "
            "GET output.html with Accept-Encoding: gzip. RSS growth = the server's VmHWM after the "
            "request(s) minus its VmRSS before, the peak reset through /proc/PID/clear_refs; medians of "
            f"{args.n} repetitions, a fresh server each, binaries alternating (the capped row: one). "
            "The new binary ran with `ui: {render_max: 1g}`; with its default cap (32 MiB) it answers the "
            "too-big page without reading the notebook (measured on the many-cell one).\n\n" + table + "\n\n"
            "Where main's memory went, per request: the file read whole into a buffer (1x); jansson's "
            "tree of the whole notebook, where nbformat's lists of lines cost about 1.5x their text "
            "until nb_normalise joins them (a second copy of each joined field while it does); a "
            "buffer per cell copied into the page afterwards (one more copy of the biggest cell); the "
            "HTML (1x); its gzip, made from the whole HTML on the loop thread (another buffer, and "
            "the daemon's loop stalled for the compression). Now (src/api/api_runs.c, "
            "src/notebook/nbsplit.c): the text is read into an anonymous mapping whose pages are "
            "released (MADV_DONTNEED) behind the last parsed cell; the notebook is parsed one cell "
            "at a time and each cell freed once drawn; a cell is drawn straight into the output; "
            "the HTML is gzip-compressed cell by cell on the pool thread. What is left is the text "
            "itself at the start (read whole: the top-level members after \"cells\" must be read "
            "first) and the answer while it is sent. Four at once: two render (ui.render_jobs), "
            "two wait. For one cell, what remains is that output's joined text (jansson copies it "
            "once more when the string is made) and its HTML.\n")
        replace_section(SECTION, section)
        log("written to bench/RESULTS.md")


if __name__ == "__main__":
    main()
