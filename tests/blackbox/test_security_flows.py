"""Flows and runs across owners (issue 16): a flow deleted and created again
under the same name, flow files that failed to load, parameter names that
would be code in the parameters cell, schedules that never fire and logical
dates out of range.  Two ordinary users, alice and bob, are created through
the API by the admin."""
import json
import socket
import time

from conftest import code, write_nb
from nbserve import Api, Server

FLOW = """
name: {name}
tasks:
  t:
    command: ["sh", "-c", "echo {word}-was-here"]
"""


def _server(h):
    """A server whose ordinary users are trusted: these tests are about who owns
    what, with command tasks as the simplest flows (docs/security.md)."""
    home = h.tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "nbhub.yaml").write_text("trusted_users: [alice, bob, carol]\n")
    return Server(h, home=home)


def users(srv, *names):
    tokens = {}
    for user in names:
        st, body = srv.api.post("/api/v1/users", {"name": user, "password": f"{user}-password-1"})
        assert st == 201, (st, body)
        st, t = srv.api.post(f"/api/v1/users/{user}/tokens", {"name": "t"})
        assert st == 201, (st, t)
        tokens[user] = Api(srv.port, t["token"])
    return tokens


def apply(api, name, text):
    return api.request("POST", f"/api/v1/flows?filename={name}.yaml", text,
                       headers={"Content-Type": "application/yaml"})


def wait(api, run, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, r = api.get(f"/api/v1/runs/{run}")
        assert st == 200, (st, r)
        if r["state"] in ("success", "failed", "cancelled"):
            return r
        time.sleep(0.1)
    raise AssertionError(f"run {run} did not end")


def replay(port, token, idle=1.5):
    """Every event the caller may see, from the first (?after=0): (kind, data)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=idle)
    s.sendall(f"GET /api/v1/events?after=0 HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {token}\r\n\r\n".encode())
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        pass
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    out, ev = [], None
    for line in body.decode(errors="replace").split("\n"):
        if line.startswith("event: "):
            ev = line[7:].strip()
        elif line.startswith("data: ") and ev:
            try:
                out.append((ev, json.loads(line[6:])))
            except ValueError:      # a chunk-size line of the chunked body: not ours
                pass
            ev = None
    return out


def test_recreated_flow_does_not_inherit_runs(h):
    """alice's flow, deleted and created again by bob under the same name, must
    not give bob alice's runs, logs or events, and alice keeps them."""
    srv = _server(h).start()
    try:
        u = users(srv, "alice", "bob")
        alice, bob = u["alice"], u["bob"]
        st, body = apply(alice, "shared", FLOW.format(name="shared", word="alice"))
        assert st == 201, (st, body)
        st, run = alice.post("/api/v1/flows/shared/runs", {"logical_date": "2026-03-01T00:00:00Z",
                                                           "params": None})
        assert st == 201, (st, run)
        old = run["id"]
        assert wait(alice, old)["state"] == "success", (alice.get(f"/api/v1/runs/{old}"), srv.log())
        st, log = alice.request("GET", f"/api/v1/runs/{old}/tasks/t/log", raw=True)[:2]
        assert st == 200 and b"alice-was-here" in log
        assert alice.delete("/api/v1/flows/shared")[0] == 204

        # bob takes the name
        st, body = apply(bob, "shared", FLOW.format(name="shared", word="bob"))
        assert st == 201, (st, body)
        st, runs = bob.get("/api/v1/flows/shared/runs")
        assert st == 200 and runs["runs"] == [], runs
        assert bob.get(f"/api/v1/runs/{old}")[0] == 404
        assert body["version"] == 1
        st, flows = bob.get("/api/v1/flows")
        (f,) = [f for f in flows["flows"] if f["name"] == "shared"]
        assert f["last_run"] is None and f["recent_runs"] == [], f
        assert bob.get(f"/api/v1/runs/{old}")[0] == 404
        assert bob.get(f"/api/v1/runs/{old}/tasks/t/log")[0] == 404
        st, lst = bob.get("/api/v1/runs?flow=shared")
        assert st == 200 and old not in [r["id"] for r in lst["runs"]], lst
        st, lst = bob.get("/api/v1/runs")
        assert old not in [r["id"] for r in lst["runs"]], lst
        assert bob.post(f"/api/v1/runs/{old}/cancel")[0] == 404

        # the same run id text in the new incarnation: its own directory
        st, run = bob.post("/api/v1/flows/shared/runs", {"logical_date": "2026-03-01T00:00:00Z"})
        assert st == 201, (st, run)
        new = run["id"]
        assert wait(bob, new)["state"] == "success"
        st, log = bob.request("GET", f"/api/v1/runs/{new}/tasks/t/log", raw=True)[:2]
        assert st == 200 and b"bob-was-here" in log and b"alice" not in log

        # alice still reads her run, its log untouched, and not bob's
        st, r = alice.get(f"/api/v1/runs/{old}")
        assert st == 200 and r["flow"] == "shared", (st, r)
        st, log = alice.request("GET", f"/api/v1/runs/{old}/tasks/t/log", raw=True)[:2]
        assert st == 200 and b"alice-was-here" in log and b"bob" not in log, log
        assert alice.get(f"/api/v1/runs/{new}")[0] == 404
        st, lst = alice.get("/api/v1/runs?flow=shared")
        assert [r["id"] for r in lst["runs"]] == [old], lst
        assert alice.get("/api/v1/flows/shared")[0] == 404
        # the admin sees both runs, the flow's own list only the live one
        st, lst = srv.api.get("/api/v1/runs?flow=shared")
        assert {r["id"] for r in lst["runs"]} == {old, new}
        st, lst = srv.api.get("/api/v1/flows/shared/runs")
        assert [r["id"] for r in lst["runs"]] == [new]

        # events: each sees only their own incarnation's
        seen = {who: replay(srv.port, api.token) for who, api in (("alice", alice), ("bob", bob))}
        a_runs = {d.get("run") for k, d in seen["alice"] if d.get("run")}
        b_runs = {d.get("run") for k, d in seen["bob"] if d.get("run")}
        assert old in a_runs and new not in a_runs, seen["alice"]
        assert new in b_runs and old not in b_runs, seen["bob"]
        assert "flow.deleted" not in [k for k, _ in seen["bob"]], seen["bob"]
        assert "flow.deleted" in [k for k, _ in seen["alice"]]
        admin_runs = {d.get("run") for k, d in replay(srv.port, srv.api.token) if d.get("run")}
        assert {old, new} <= admin_runs
    finally:
        srv.stop()


def test_recreated_by_same_user_starts_fresh(h):
    """Even the same user gets a new flow: no old runs in it, the old ones
    still hers by id; a scheduled tick that fired before fires again."""
    srv = _server(h).start()
    try:
        alice = users(srv, "alice")["alice"]
        assert apply(alice, "again", FLOW.format(name="again", word="one"))[0] == 201
        st, run = alice.post("/api/v1/flows/again/runs", {})
        assert st == 201
        wait(alice, run["id"])
        assert alice.delete("/api/v1/flows/again")[0] == 204
        assert apply(alice, "again", FLOW.format(name="again", word="two"))[0] == 201
        assert alice.get("/api/v1/flows/again/runs")[1]["runs"] == []
        assert alice.get(f"/api/v1/runs/{run['id']}")[0] == 200
    finally:
        srv.stop()


def test_broken_flow_file_keeps_its_owner(h):
    """A file of the flows dir that fails to load is still its owner's: bob
    may not overwrite it through the API; alice and the admin may."""
    srv = _server(h)
    (srv.flows / "precious.yaml").write_text(
        "name: precious\nowner: alice\ntasks:\n  t: {command: [true], nonsense: 1}\n")
    (srv.flows / "orphan.yaml").write_text("tasks: [\n")
    srv.start()
    try:
        u = users(srv, "alice", "bob")
        st, body = apply(u["bob"], "precious", FLOW.format(name="precious", word="bob"))
        assert st == 403, (st, body)
        assert "nonsense" in (srv.flows / "precious.yaml").read_text()
        # a broken file at the path the flow would be written to, no owner:
        # only an admin may replace it
        st, body = apply(u["bob"], "orphan", FLOW.format(name="orphan", word="bob"))
        assert st == 403, (st, body)
        assert (srv.flows / "orphan.yaml").read_text() == "tasks: [\n"
        st, body = apply(u["alice"], "precious", FLOW.format(name="precious", word="alice"))
        assert st in (200, 201), (st, body)
        # a loaded flow whose file is named otherwise: its file is not free
        # for a flow named like the file
        (srv.flows / "other-file.yaml").write_text(
            "name: alices\nowner: alice\ntasks: {t: {command: [true]}}\n")
        deadline = time.monotonic() + 10
        while srv.api.get("/api/v1/flows/alices")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert srv.api.get("/api/v1/flows/alices")[0] == 200
        st, body = apply(u["bob"], "other-file", FLOW.format(name="other-file", word="bob"))
        assert st == 409, (st, body)
        assert "alices" in (srv.flows / "other-file.yaml").read_text()
        st, body = apply(srv.api, "orphan", FLOW.format(name="orphan", word="admin"))
        assert st in (200, 201), (st, body)
    finally:
        srv.stop()


EVIL = "x=1\nimport os; open('PWNED', 'w').write('1')\ny"


def test_run_refuses_parameter_names_that_are_code(h):
    """`nbhub run -p/-r/-y/-f NAME`: a name that is not an identifier of the
    notebook's language exits 3 and runs nothing (papermill writes it into
    the cell as it comes)."""
    nb = h.tmp / "nb.ipynb"
    write_nb(nb, code("y = 0", tags=["parameters"]), code("print('ran')"))
    pfile = h.tmp / "p.yaml"
    pfile.write_text(json.dumps({EVIL: 2}))
    for args in (["-p", EVIL, "2"], ["-r", EVIL, "2"], ["-y", json.dumps({EVIL: 2})],
                 ["-f", str(pfile)], ["-p", "class", "1"]):
        out = h.tmp / "out.ipynb"
        r = h.run(["run", nb, out, *args], cwd=h.tmp)
        assert r.rc == 3, r
        assert "is not a valid Python identifier" in r.stderr, r
        assert not (h.tmp / "PWNED").exists()
        assert not out.exists() or "import os" not in out.read_text()
    r = h.run(["run", nb, h.tmp / "ok.ipynb", "-p", "y", "2", "-p", "caf\u00e9", "3"], cwd=h.tmp)
    assert r.rc == 0, r


def test_flow_parameter_names_checked(h):
    """In a flow: bad names under a notebook task's parameters or the flow's
    params are load errors with FILE:LINE:COLUMN; a trigger's bad name is 400."""
    srv = _server(h)
    write_nb(srv.flows / "nb.ipynb", code("y = 0", tags=["parameters"]))
    srv.start()
    try:
        alice = users(srv, "alice")["alice"]
        text = ("name: evil\ntasks:\n  t:\n    notebook: nb.ipynb\n    parameters:\n"
                f"      {json.dumps(EVIL)}: 1\n")
        st, body = apply(alice, "evil", text)
        assert st == 400, (st, body)
        assert body["error"]["code"] == "invalid_flow"
        (d,) = body["error"]["details"]
        assert d.startswith("evil.yaml:6:7: task 't': parameter name 'x=1\\nimport os;"), d
        assert "is not a valid Python identifier" in d, d
        st, body = apply(alice, "evil", "name: evil\nparams: {'a b': 1}\ntasks: {t: {command: [true]}}\n")
        assert st == 400 and "not an identifier" in json.dumps(body), body
        ok = "name: fine\nparams: {n: 1}\ntasks:\n  t:\n    notebook: nb.ipynb\n    parameters: {y: '{{ params.n }}'}\n"
        assert apply(alice, "fine", ok)[0] == 201
        st, body = alice.post("/api/v1/flows/fine/runs", {"params": {EVIL: 1}})
        assert st == 400 and "not an identifier" in body["error"]["message"], (st, body)
        st, body = alice.post("/api/v1/flows/fine/runs", {"params": {"n": 2}})
        assert st == 201, (st, body)
        assert wait(alice, body["id"])["state"] == "success"
        assert not (srv.flows / "PWNED").exists()
    finally:
        srv.stop()


def test_schedule_that_never_fires_and_dates_out_of_range(h):
    """`0 0 31 2 *` was accepted with next_run null; logical dates before
    1970 or from 2200 on are refused (400)."""
    srv = _server(h).start()
    try:
        alice = users(srv, "alice")["alice"]
        st, body = apply(alice, "feb31", "name: feb31\nschedule: '0 0 31 2 *'\ntasks: {t: {command: [true]}}\n")
        assert st == 400, (st, body)
        assert body["error"]["details"] == ["feb31.yaml:2:11: schedule '0 0 31 2 *' never fires"], body
        st, body = apply(alice, "old", "name: old\nschedule: '@daily'\nstart_date: 1960-01-01\n"
                                       "tasks: {t: {command: [true]}}\n")
        assert st == 400 and "outside 1970-01-01" in json.dumps(body), body
        assert apply(alice, "daily", "name: daily\nschedule: '@daily'\nstart_date: 2026-01-01\n"
                                     "tasks: {t: {command: [true]}}\n")[0] == 201
        for date in ("1969-12-31T23:59:59Z", "2200-01-01", "1000-01-01"):
            st, body = alice.post("/api/v1/flows/daily/runs", {"logical_date": date})
            assert st == 400 and "logical date must be within" in body["error"]["message"], (date, st, body)
        assert alice.post("/api/v1/flows/daily/runs", {"logical_date": "9999-12-31"})[0] == 400
        st, body = alice.post("/api/v1/flows/daily/backfill", {"from": "1900-01-01", "to": "1900-01-03"})
        assert st == 400, (st, body)
        st, body = alice.post("/api/v1/flows/daily/runs", {"logical_date": "2199-12-31"})
        assert st == 201, (st, body)
    finally:
        srv.stop()
