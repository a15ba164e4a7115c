"""`nbhub flow apply` sends the notebooks and `files:` a flow references; they land
in the flow's own directory on the server, where its paths resolve; `nbhub flow
pull` gets them back.  Path escapes, hidden names and other users are refused."""
import base64
import json

from nbserve import Server
from test_cli_client import cli_env
from test_isolation import _user_api

NB = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {"tags": ["parameters"]},
                 "outputs": [], "source": "who = 'x'"},
                {"cell_type": "code", "execution_count": None, "id": "c2", "metadata": {}, "outputs": [],
                 "source": "print(open('data.csv').read().strip(), who)"}],
      "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
      "nbformat": 4, "nbformat_minor": 5}


def _project(tmp):
    d = tmp / "proj"
    d.mkdir()
    (d / "report.ipynb").write_text(json.dumps(NB))
    (d / "data.csv").write_text("region,total\n")
    (d / "flow.yaml").write_text("name: deployed\nfiles: [data.csv]\n"
                                 "tasks:\n  report: {notebook: report.ipynb, parameters: {who: bob}}\n")
    return d


def test_apply_sends_notebooks_and_files_and_pull_gets_them_back(h):
    srv = Server(h).start()
    try:
        assert srv.api.post("/api/v1/users", {"name": "bob", "password": "bob-password-1"})[0] == 201
        assert srv.api.post("/api/v1/users", {"name": "carol", "password": "carol-password-1"})[0] == 201
        bob = _user_api(srv, "bob")
        proj = _project(h.tmp)
        env = cli_env(h, NBHUB_URL=f"http://127.0.0.1:{srv.port}", NBHUB_TOKEN=bob.token)
        # A new user's first apply works: the notebook is not on the server yet.
        r = h.run(["flow", "apply", str(proj / "flow.yaml")], env=env)
        assert r.rc == 0 and "created flow deployed" in r.stdout, r
        flow_dir = srv.flows / "deployed"
        assert (flow_dir / "report.ipynb").is_file() and (flow_dir / "data.csv").is_file()
        st, run = bob.post("/api/v1/flows/deployed/runs", {})
        assert st == 201, run
        run = srv.wait_run(run["id"])
        assert run["state"] == "success", (run, srv.log())
        st, log, _ = bob.request("GET", f"/api/v1/runs/{run['id']}/tasks/report/log", raw=True)
        assert b"region,total bob" in log, log
        # pull into an empty directory: the same files, side by side
        out = h.tmp / "pulled"
        r = h.run(["flow", "pull", "deployed", "-o", str(out)], env=env)
        assert r.rc == 0, r
        assert (out / "deployed.yaml").read_text() == (proj / "flow.yaml").read_text()
        assert (out / "report.ipynb").read_text() == (proj / "report.ipynb").read_text()
        assert (out / "data.csv").read_text() == "region,total\n"
        r = h.run(["flow", "pull", "deployed", "-o", str(out)], env=env)
        assert r.rc != 0 and "--force" in r.stderr, r
        # re-apply after an edit replaces the directory as a whole
        (proj / "data.csv").write_text("changed\n")
        r = h.run(["flow", "apply", str(proj / "flow.yaml")], env=env)
        assert r.rc == 0 and "unchanged flow deployed" in r.stdout, r
        assert (flow_dir / "data.csv").read_text() == "changed\n"
        # another user sees nothing
        carol = _user_api(srv, "carol")
        assert carol.get("/api/v1/flows/deployed/files")[0] == 404
    finally:
        srv.stop()


def test_bundle_paths_are_checked(h):
    srv = Server(h).start()
    try:
        assert srv.api.post("/api/v1/users", {"name": "bob", "password": "bob-password-1"})[0] == 201
        bob = _user_api(srv, "bob")
        yaml = "name: esc\ntasks:\n  t: {notebook: a.ipynb}\n"
        nb = base64.b64encode(json.dumps(NB).encode()).decode()
        for bad in ("../a.ipynb", "/etc/a.ipynb", ".ssh/authorized_keys", "x/../../a", "a\\\\b", "", "x//y"):
            st, body = bob.post("/api/v1/flows", {"flow": yaml, "files": {bad: nb, "a.ipynb": nb}})
            assert st == 400, (bad, st, body)
        assert not any(p.name.startswith(".nbhub-upload") for p in srv.flows.iterdir())
        st, body = bob.post("/api/v1/flows", {"flow": yaml, "files": {"a.ipynb": "not base64!"}})
        assert st == 400 and "base64" in body["error"]["message"], body
        st, body = bob.post("/api/v1/flows", {"flow": yaml, "files": {"a.ipynb": nb}, "extra": 1})
        assert st == 400, body
        # an untrusted user's notebook must stay inside the flow's directory
        esc = "name: esc2\ntasks:\n  t: {notebook: ../../nbhub.db}\n"
        st, body = bob.post("/api/v1/flows", {"flow": esc, "files": {"a.ipynb": nb}})
        assert st in (400, 403), body
        assert not (srv.flows / "esc2").exists()
        st, body = bob.post("/api/v1/flows", {"flow": yaml, "files": {"a.ipynb": nb}})
        assert st == 201, body
        # a failed apply leaves the deployed directory as it was
        st, body = bob.post("/api/v1/flows", {"flow": "name: esc\ntasks:\n  t: {notebook: missing.ipynb}\n",
                                              "files": {"b.ipynb": nb}})
        assert st == 400, body
        assert (srv.flows / "esc" / "a.ipynb").is_file() and not (srv.flows / "esc" / "b.ipynb").exists()
    finally:
        srv.stop()
