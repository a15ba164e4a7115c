"""The API contract, held by tools that are not ours.

src/api/openapi.json is what GET /api/v1/openapi.json serves (compiled in:
src/api/api_openapi.c).  openapi-spec-validator checks that it is a valid
OpenAPI 3.0 document; then schemathesis (`st run`, every check, every
phase: examples, coverage, fuzzing, stateful) generates requests from it
against a real `nbhub serve`, once as the admin and once as an ordinary
user, and every answer must be what the document says: no server error,
status, content type, headers and body as declared, schema-valid requests
accepted and schema-violating ones refused, 405 with Allow for methods the
document does not list, no access to what another user owns, and so on.

The run is bounded (a fixed number of examples per operation and a fixed
seed, so `make test` is repeatable); NBHUB_ST_EXAMPLES and NBHUB_ST_SEED
change them to explore further.  The token schemathesis uses is minted on
demand by openapi_st_hooks.py, since the run itself revokes tokens.  Spark
clusters it asks for cannot start (SPARK_HOME points nowhere), so no JVM
is spawned; nor do notebook servers (their profile's python is /bin/false).  openapi_contract.toml holds schemathesis's settings and the
argued exceptions.  A failure prints schemathesis's own report: each
failure with its check, the answer and a curl command that replays it.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, NBHUB
from nbserve import Api, Server

DOC = REPO / "src" / "api" / "openapi.json"
HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("NBHUB_ST_EXAMPLES", "12"))
SEED = int(os.environ.get("NBHUB_ST_SEED", "20261206"))
ST_TIMEOUT = 600


def test_document_is_valid_openapi_and_served_as_is(h):
    from openapi_spec_validator import validate

    doc = json.loads(DOC.read_text())
    validate(doc)           # raises with the path of the first problem
    srv = Server(h).start()
    try:
        st, served = srv.api.get("/api/v1/openapi.json", token=False)
        assert st == 200
        assert served == doc
    finally:
        srv.stop()



def test_every_string_parameter_says_nul_is_refused(h):
    """The server refuses a path or query that decodes to NUL before routing
    (400, docs/api.md "Conventions"); a string parameter whose schema allowed
    it would make schemathesis's positive-data check fail on a random draw
    (the CI run of 2026-12-06: GET /api/v1/spark/clusters/alice?owner=%00...).
    So every one carries an enum or a pattern, and the server does refuse."""
    doc = json.loads(DOC.read_text())

    def res(s):
        while "$ref" in s:
            x = doc
            for k in s["$ref"].split("/")[1:]:
                x = x[k]
            s = x
        return s

    loose = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = ops["parameters"] if method == "parameters" else op.get("parameters", [])
            for prm in map(res, params):
                s = res(prm.get("schema", {}))
                if prm["in"] in ("path", "query") and s.get("type") == "string" \
                        and "enum" not in s and "pattern" not in s:
                    loose.append(f"{method.upper()} {path} {prm['in']} {prm['name']}")
    assert loose == []
    srv = Server(h).start()
    try:
        for url in ("/api/v1/spark/clusters/x?owner=al%00ice", "/api/v1/flows/a%00b", "/api/v1/runs?flow=%00"):
            st, body = srv.api.get(url)
            assert st == 400, url
            assert body["error"]["code"] == "bad_request"
    finally:
        srv.stop()


def st_command():
    """`st` of the Python running the tests (the project's .venv)."""
    st = Path(sys.executable).parent / "st"
    return [str(st)] if st.exists() else [sys.executable, "-m", "schemathesis.cli"]


def failures_report(out):
    """The parts of st's output a reader needs: failures, warnings, summary."""
    m = re.search(r"^=+ FAILURES =+$", out, re.M)
    return out[m.start():] if m else out[-20000:]


def run_schemathesis(h, srv, user):
    env = dict(h.env)
    env.update({
        "SCHEMATHESIS_HOOKS": "openapi_st_hooks",
        "PYTHONPATH": str(HERE),
        "NBHUB_ST_BIN": NBHUB,
        "NBHUB_ST_HOME": str(srv.home),
        "NBHUB_ST_USER": user,
        "NO_COLOR": "1",
        "COLUMNS": "160",
    })
    report = h.tmp / f"st-{user}"
    argv = st_command() + [
        "--config-file", str(HERE / "openapi_contract.toml"), "--no-color",
        "run", str(DOC), "--url", f"http://127.0.0.1:{srv.port}",
        "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--workers", "1",
        "--report", "junit", "--report-dir", str(report),
    ]
    p = subprocess.run(argv, cwd=h.tmp, env=env, capture_output=True, text=True, timeout=ST_TIMEOUT)
    out = p.stdout + p.stderr
    (h.tmp / f"st-{user}.txt").write_text(out)
    summary = re.search(r"^Test cases:\n(.*)$", out, re.M)
    print(f"schemathesis as {user}: exit {p.returncode}; {summary.group(1).strip() if summary else '?'}")
    assert p.returncode == 0, (
        f"schemathesis found contract violations as {user} (seed {SEED}, {EXAMPLES} examples; "
        f"full output in {h.tmp}/st-{user}.txt):\n\n{failures_report(out)}\n--- server log ---\n{srv.log()}")
    # Belt and braces: st's exit code is the verdict, but say it plainly.
    assert not re.search(r"^\s*❌", out, re.M), failures_report(out)


# The data schemathesis finds (openapi_contract.toml names them in its
# dictionaries, so about half the requests to /flows/{name} and /runs/{id}
# reach a real flow and run instead of a 404): alice's flow "contract",
# whose notebook asks for a kernel that does not exist, so every run of it
# fails in milliseconds without starting one; yearly, so a backfill makes
# few runs.
FLOW = """
name: contract
owner: alice
schedule: "0 0 1 1 *"
params: {n: 1}
tasks:
  t: {notebook: nb.ipynb}
  u: {notebook: nb.ipynb, after: [t]}
"""
NOTEBOOK = {"cells": [{"cell_type": "code", "source": "n", "metadata": {}, "outputs": [], "execution_count": None}],
            "metadata": {"kernelspec": {"name": "no-such-kernel", "display_name": "none", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def contract_server(h):
    # No Spark: a cluster schemathesis starts fails at once instead of
    # spawning JVMs (its answer, 202, is the same).
    srv = Server(h, env={"SPARK_HOME": str(h.tmp / "no-spark")}, args=["--stop-servers-on-exit"])
    (srv.flows / "nb.ipynb").write_text(json.dumps(NOTEBOOK))
    # Nor JupyterLab: a notebook server it starts exits at once (failed,
    # after the same 202), and none is left behind.
    (srv.home / "nbhub.yaml").write_text("hub: {profiles: [{name: default, python: /bin/false}]}\n")
    srv.start()
    st, body = srv.api.post("/api/v1/users", {"name": "alice", "password": "alice-password-1"})
    assert st == 201, (st, body)
    st, tok = srv.api.post("/api/v1/users/alice/tokens", {"name": "setup"})
    assert st == 201, (st, tok)
    alice = Api(srv.port, tok["token"])
    st, body = alice.request("POST", "/api/v1/flows?filename=contract.yaml", FLOW,
                             headers={"Content-Type": "application/yaml"})
    assert st == 201, (st, body)
    st, run = alice.post("/api/v1/flows/contract/runs", {})
    assert st == 201, (st, run)
    assert run["id"] == 1       # the id openapi_contract.toml gives
    assert srv.wait_run(run["id"])["state"] == "failed"
    return srv


def test_schemathesis_as_admin(h):
    srv = contract_server(h)
    try:
        run_schemathesis(h, srv, "admin")
    finally:
        srv.stop()


def test_schemathesis_as_user(h):
    srv = contract_server(h)
    try:
        run_schemathesis(h, srv, "alice")
    finally:
        srv.stop()
