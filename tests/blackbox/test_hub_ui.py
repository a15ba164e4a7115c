"""The hub in a real browser (issue 17 items 7 and 8): Debian's chromium driven
by playwright-core (tests/browser/hub.test.mjs) against a real `nbhub serve`
whose profiles start the real jupyterhub-singleuser + JupyterLab from the
test .venv (PyPI jupyterhub 6, jupyterlab 4).

alice logs in, picks a profile on the Server page, watches the start's
progress, opens JupyterLab through nbhub's proxy, creates a notebook and runs
`x = 6*7; x` -- the kernel's websocket through the proxy -- and sees 42.  A
profile that cannot start shows the server's own log tail; names and
descriptions with markup stay text; the admin's /admin/servers lists alice's
server and stops it.  A Spark profile's server shows its cluster and the
Spark UI through nbhub (when Java and pyspark are there: SPARK=1 for the
script).  Screenshots: build/test-artifacts/hub/."""
import os
import shutil

import pytest

from conftest import REPO, VENV_BIN, write_nb
from nbserve import ADMIN_PASSWORD, Api, Server
from test_ui_browser import ARTIFACTS, BROWSER_DIR, CHROMIUM

ALICE_PASSWORD = "alice-password-1"

HUB_YAML = f"""
hub:
  profiles:
    - name: small
      description: "One CPU, for <b>editing</b> notebooks <img src=x onerror=alert(1)>"
      python: {VENV_BIN / 'python'}
      default_url: /lab
    - name: broken
      description: A profile whose server cannot start
      command: [/bin/sh, -c, "echo BROKEN-PROFILE-LOG-TAIL on port {{port}}; echo the-server-said-no >&2; exit 3"]
    - name: spark
      description: A server with its own Spark cluster
      python: {VENV_BIN / 'python'}
      spark: {{workers: 1, worker_memory: 512m}}
  start_timeout: 90s
"""


@pytest.mark.skipif(not (BROWSER_DIR / "node_modules" / "playwright-core").exists(),
                    reason="playwright-core not installed (scripts/install-deps.sh runs npm ci)")
def test_hub_in_chromium(h):
    assert os.path.exists(CHROMIUM), "Debian's chromium is not installed"
    assert (VENV_BIN / "jupyterhub-singleuser").exists(), "jupyterhub is not installed in .venv"
    home = h.tmp / "home"
    home.mkdir()
    (home / "nbhub.yaml").write_text(HUB_YAML)
    flows = home / "flows"
    flows.mkdir()
    srv = Server(h, home=home, flows=flows, args=["--stop-servers-on-exit"]).start()
    try:
        st, body = srv.api.post("/api/v1/users", {"name": "alice", "password": ALICE_PASSWORD})
        assert st == 201, (st, body)
        # One flow of alice's, running a notebook of her workspace: the Server
        # page lists it beside the server.
        ws = home / "workspaces" / "alice"
        ws.mkdir(parents=True, exist_ok=True)
        os.chmod(home / "workspaces", 0o700)
        write_nb(ws / "daily.ipynb", "print('daily')")
        st, tok = srv.api.post("/api/v1/users/alice/tokens", {"name": "t"})
        assert st == 201, (st, tok)
        alice = Api(srv.port, tok["token"])
        st, body = alice.request(
            "POST", "/api/v1/flows?filename=alice-daily.yaml",
            "name: alice-daily\nschedule: '0 6 * * *'\ntasks:\n  t: {notebook: ~/daily.ipynb}\n",
            headers={"Content-Type": "application/yaml"})
        assert st in (200, 201), (st, body)
        st, run = alice.post("/api/v1/flows/alice-daily/runs", {})
        assert st == 201, (st, run)
        assert srv.wait_run(run["id"])["state"] == "success"

        artifacts = ARTIFACTS / "hub"
        if artifacts.exists():
            shutil.rmtree(artifacts)
        artifacts.mkdir(parents=True)
        env = dict(h.env, NBHUB_URL=f"http://127.0.0.1:{srv.port}", NBHUB_ADMIN="admin",
                   NBHUB_ADMIN_PASSWORD=ADMIN_PASSWORD, NBHUB_ALICE_PASSWORD=ALICE_PASSWORD,
                   NBHUB_SHOTS=str(artifacts), CHROMIUM=CHROMIUM,
                   SPARK="1" if shutil.which("java") and (VENV_BIN / "pyspark").exists() else "")
        p = h.popen(["node", "--test", "--test-reporter=spec", "--test-concurrency=1",
                     str(BROWSER_DIR / "hub.test.mjs")], exe="/usr/bin/env", env=env, cwd=BROWSER_DIR)
        r = h.finish(p, timeout=900)
        print(r.stdout[-20000:])
        assert r.rc == 0, (f"browser tests failed:\n{r.stdout[-12000:]}\n{r.stderr[-4000:]}\n"
                           f"--- server ---\n{srv.log()}")
        assert len(list(artifacts.glob("*.png"))) >= 6
    finally:
        srv.stop()
