"""The web UI in real browsers, both from Debian, against a real `nbhub serve`
with real kernels:

- chromium, driven by playwright-core (npm, tests/browser/ui.test.mjs): the
  whole UI, hostile notebooks and the admin pages included;
- Firefox ESR, driven over WebDriver BiDi by puppeteer-core
  (tests/browser/ui.firefox.test.mjs; playwright drives only its own patched
  Firefox, which cannot be downloaded here): what depends on the engine.

This file prepares the server (the example flows plus four of its own: a
plot that feeds a failing notebook, a long run to cancel, a Spark job and a
notebook whose outputs try script injection) and runs the browser script,
whose steps are node:test tests.  Screenshots of every step are kept in
build/test-artifacts/ui/ (chromium) and build/test-artifacts/ui-firefox/."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, code, md, write_nb
from nbserve import ADMIN_PASSWORD, Server

BROWSER_DIR = REPO / "tests" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
ARTIFACTS = REPO / "build" / "test-artifacts"


def _prepare(h):
    nbs = h.tmp / "nbs"
    flows = nbs / "flows"
    flows.mkdir(parents=True)
    for f in (REPO / "examples").glob("*.ipynb"):
        shutil.copy(f, nbs / f.name)
    for f in (REPO / "examples" / "flows").glob("*.yaml"):
        shutil.copy(f, flows / f.name)
    write_nb(nbs / "boom.ipynb", md("# Boom\nThis notebook fails on purpose."),
             code("x = 41"), code("print('about to fail')\n(x + 1) / 0"))
    write_nb(nbs / "slow.ipynb", code("import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.2)"))
    write_nb(nbs / "evil.ipynb",
             md("<script>parent.document.body.dataset.pwned='md'</script>"
                "<img src=x onerror=\"parent.document.body.dataset.pwned='img'\"> **markdown**"),
             code("from IPython.display import HTML, SVG, display\n"
                  "display(HTML('<b id=\"evil-html\">html output</b><script>"
                  "document.body.dataset.pwned=\"html\";parent.document.body.dataset.pwned=\"html\"</script>'))\n"
                  "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"20\" height=\"20\" "
                  "onload=\"parent.document.body.dataset.pwned=&quot;svg&quot;\"><rect width=\"20\" height=\"20\"/>"
                  "<script>parent.document.body.dataset.pwned=\"svg2\"</script></svg>'))"))
    (flows / "ui-demo.yaml").write_text(
        "name: ui-demo\ndescription: A plot, then a notebook that fails.\n"
        "params:\n  freq: 2.0\n  points: 60\n"
        "tasks:\n"
        "  plot:\n    notebook: ../plot.ipynb\n    parameters: {freq: \"{{ params.freq }}\", points: \"{{ params.points }}\"}\n"
        "  boom:\n    notebook: ../boom.ipynb\n    after: [plot]\n")
    (flows / "slow.yaml").write_text(
        "name: slow\ndescription: Counts for two minutes.\ntasks:\n  count:\n    notebook: ../slow.ipynb\n")
    # A Spark batch job on local[*] (pyspark from .venv): four jobs a few
    # seconds apart, so the run page shows them arrive while it runs.
    (nbs / "spark_job.py").write_text(
        "import time\nfrom pyspark.sql import SparkSession\n"
        "sc = SparkSession.builder.getOrCreate().sparkContext\n"
        "for i in range(4):\n"
        "    sc.parallelize(range(1000), 2).map(lambda x: x * i).sum()\n"
        "    time.sleep(3)\n")
    (flows / "spark-demo.yaml").write_text(
        "name: spark-demo\ndescription: Four Spark jobs.\ntasks:\n"
        "  jobs:\n    spark_submit: {application: ../spark_job.py}\n")
    (flows / "evil.yaml").write_text(
        "name: evil\ndescription: \"<img src=x onerror=alert(1)>\"\ntasks:\n  evil:\n    notebook: ../evil.ipynb\n")
    return flows


def _run_browser_test(h, script, artifacts, **env):
    """Start nbhub serve on the prepared flows and run tests/browser/SCRIPT
    against it; returns the screenshots' names.  env is added to the
    browser script's environment."""
    flows = _prepare(h)
    srv = Server(h, flows=flows).start()
    if artifacts.exists():
        shutil.rmtree(artifacts)
    artifacts.mkdir(parents=True)
    env = dict(h.env, NBHUB_URL=f"http://127.0.0.1:{srv.port}", NBHUB_USER="admin",
               NBHUB_PASSWORD=ADMIN_PASSWORD, NBHUB_TOKEN=srv.api.token, NBHUB_SHOTS=str(artifacts), **env)
    p = h.popen(["node", "--test", "--test-reporter=spec", "--test-concurrency=1", str(BROWSER_DIR / script)],
                exe="/usr/bin/env", env=env, cwd=BROWSER_DIR)
    r = h.finish(p, timeout=600)
    print(r.stdout[-20000:])
    srv.stop()
    assert r.rc == 0, f"browser tests failed:\n{r.stdout[-12000:]}\n{r.stderr[-4000:]}\n--- server ---\n{srv.log()}"
    return sorted(p.name for p in artifacts.glob("*.png"))


@pytest.mark.skipif(not (BROWSER_DIR / "node_modules" / "playwright-core").exists(),
                    reason="playwright-core not installed (scripts/install-deps.sh runs npm ci)")
def test_ui_in_chromium(h):
    assert os.path.exists(CHROMIUM), "Debian's chromium is not installed"
    shots = _run_browser_test(h, "ui.test.mjs", ARTIFACTS / "ui", CHROMIUM=CHROMIUM)
    assert len(shots) >= 10, shots


@pytest.mark.skipif(not (BROWSER_DIR / "node_modules" / "puppeteer-core").exists(),
                    reason="puppeteer-core not installed (scripts/install-deps.sh runs npm ci)")
def test_ui_in_firefox(h):
    assert os.path.exists(FIREFOX), "Debian's firefox-esr is not installed"
    shots = _run_browser_test(h, "ui.firefox.test.mjs", ARTIFACTS / "ui-firefox", FIREFOX=FIREFOX)
    assert len(shots) >= 10, shots
