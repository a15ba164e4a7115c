"""The authorization matrix over every endpoint of the real server: each path of
the OpenAPI document, called as anonymous, another user, the owner and an admin."""
import json
import re
import socket

from conftest import code, write_nb
from nbserve import Api, Server

FLOW = """
name: {name}
owner: alice
tasks:
  t: {{notebook: nb.ipynb}}
"""


def status_only(port, method, path, token):
    """Status of a request whose answer may never end (SSE)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n".encode())
    line = s.recv(64).split(b"\r\n")[0]
    s.close()
    return int(line.split()[1])


def test_authorization_matrix_every_endpoint(h):
    srv = Server(h)
    write_nb(srv.flows / "nb.ipynb", code("print('hi')"))
    srv.apply("f-owner", FLOW.format(name="f-owner"))
    srv.apply("f-admin", FLOW.format(name="f-admin"))
    srv.start()
    try:
        admin = srv.api
        for user in ("alice", "bob"):
            st, _ = admin.post("/api/v1/users", {"name": user, "password": f"{user}-password-1"})
            assert st == 201, st
        tokens = {}
        for user in ("alice", "bob"):
            st, t = admin.post(f"/api/v1/users/{user}/tokens", {"name": "matrix"})
            assert st == 201
            tokens[user] = t["token"]
        # Flows owned by alice (owner: alice, applied before she existed: re-apply)
        for name in ("f-owner", "f-admin"):
            st, body = Api(srv.port, tokens["alice"]).request(
                "POST", f"/api/v1/flows?filename={name}.yaml", FLOW.format(name=name),
                headers={"Content-Type": "application/yaml"})
            assert st in (200, 201), (st, body)
        runs = {}
        for name in ("f-owner", "f-admin"):
            runs[name] = srv.trigger(name)
            srv.wait_run(runs[name])
        # A (stopped) Spark cluster of alice's named like her, and the Spark
        # state a task with spark: leaves next to its log.
        (srv.home / "spark" / "alice").mkdir(parents=True)
        (srv.home / "spark" / "alice" / "config.json").write_text(json.dumps({"name": "alice", "owner": "alice"}))
        for (log,) in srv.db().execute("SELECT log_path FROM task_runs WHERE log_path IS NOT NULL"):
            open(log[:-len(".log")] + ".spark.json", "w").write('{"mode": "local", "app_id": "local-1"}')
        alice_tokens = []
        for _ in range(2):
            st, t = Api(srv.port, tokens["alice"]).post("/api/v1/users/alice/tokens", {"name": "x"})
            alice_tokens.append(t["id"])

        st, doc = admin.get("/api/v1/openapi.json", token=False)
        assert st == 200
        endpoints = []
        for path, ops in doc["paths"].items():
            for method in ops:
                if method.upper() in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                    endpoints.append((method.upper(), path))
        assert len(endpoints) >= 25, endpoints
        public = {("GET", "/healthz"), ("GET", "/api/v1/openapi.json"), ("POST", "/api/v1/login"),
                  ("GET", "/"), ("GET", "/ui/{file}")}   # the web UI's files hold no data
        admin_only = {("GET", "/metrics"), ("GET", "/api/v1/users"), ("POST", "/api/v1/users")}

        def concrete(path, flow, token_id):
            return (path.replace("{name}", "alice").replace("{task}", "t")
                    .replace("/flows/alice", f"/flows/{flow}")
                    .replace("/runs/{id}", f"/runs/{runs[flow]}")
                    .replace("/tokens/{id}", f"/tokens/{token_id}"))

        def call(method, path, token):
            if path.startswith("/api/v1/events"):
                return status_only(srv.port, method, path, token)
            api = Api(srv.port, token)
            body = None if method in ("GET", "DELETE") else {}
            return api.request(method, path, body, token=bool(token))[0]

        # non-destructive first, DELETE and logout last within each role
        order = sorted(endpoints, key=lambda e: (e[0] == "DELETE" or e[1].endswith("logout"), e))
        failures = []
        for role, token, flow, tid in (("anonymous", None, "f-owner", alice_tokens[0]),
                                       ("other", tokens["bob"], "f-owner", alice_tokens[0]),
                                       ("owner", tokens["alice"], "f-owner", alice_tokens[0]),
                                       ("admin", admin.token, "f-admin", alice_tokens[1])):
            for method, path in order:
                if (method, path) in public:
                    continue
                p = concrete(path, flow, tid)
                st = call(method, p, token)
                owned = ("/flows/{name}" in path or "/runs/{id}" in path or "/spark/clusters/{name}" in path
                         or path.startswith("/spark/{name}/ui"))
                selfish = "/users/{name}" in path
                if role == "anonymous":
                    ok = st == 401
                elif role == "other":
                    if (method, path) in admin_only or selfish:
                        ok = st == 403
                    elif owned:
                        ok = st == 404      # not visible: no leak of names
                    else:
                        ok = st not in (401, 403, 404)
                elif role == "owner":
                    ok = (st == 403) if (method, path) in admin_only else st not in (401, 403, 404)
                else:
                    ok = st not in (401, 403)
                if not ok:
                    failures.append(f"{role:9} {method:6} {p} -> {st}")
        assert not failures, "\n".join(failures)
    finally:
        srv.stop()
