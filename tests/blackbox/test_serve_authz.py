"""The authorization matrix over every endpoint of the real server: each path of
the OpenAPI document, called as anonymous, another user, the owner and an admin."""
import json
import re
import socket

from conftest import code, wait_for, write_nb
from nbserve import ADMIN_PASSWORD, Api, Server

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
    # alice's notebook server: its profile fails at once (no JupyterLab),
    # which leaves the row the /api/v1/servers/{owner}/{server} routes need
    (srv.home / "nbhub.yaml").write_text("hub: {profiles: [{name: default, python: /bin/false}]}\n")
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
        st, body = Api(srv.port, tokens["alice"]).post("/api/v1/servers", {})
        assert st == 202, (st, body)
        assert wait_for(lambda: srv.api.get("/api/v1/servers/alice/default")[1]["state"] == "failed", 30)
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
        # The web UI's pages: the same public page for everyone; what the
        # server writes into it for a session is the caller's own
        # (test_ui_first_view_shows_only_what_the_api_would below).
        public |= {("GET", p) for p in ("/login", "/flows", "/flows/{name}", "/runs", "/runs/{id}",
                                         "/runs/{id}/tasks/{task}/output", "/admin/users",
                                         "/server", "/admin/servers")}
        # Single sign-on's own steps (docs/sso.md): reached before there is a
        # session; each checks its own proof (state cookie, signed logout token).
        public |= {("GET", "/auth/oidc/config"), ("GET", "/auth/oidc/login"),
                   ("GET", "/auth/oidc/callback"), ("POST", "/auth/oidc/backchannel-logout")}
        admin_only = {("GET", "/metrics"), ("GET", "/api/v1/users"), ("POST", "/api/v1/users"),
                      ("PUT", "/api/v1/users/{name}/trusted")}   # a role only admins give

        def concrete(path, flow, token_id):
            if path.startswith("/api/v1/servers/{owner}"):
                path = path.replace("{owner}", "alice").replace("{server}", "default")
            return (path.replace("{name}", "alice").replace("{owner}", "~alice").replace("{task}", "t")
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
                         or path.startswith("/spark/{name}/ui") or path.startswith("/spark/{owner}/")
                         or path.startswith("/api/v1/servers/{owner}"))
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


EVIL = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


def login_cookie(port, user, password):
    st, body, hdr = Api(port).request("POST", "/api/v1/login", {"username": user, "password": password},
                                      token=False, raw=True)
    assert st == 200, body
    return hdr["set-cookie"].split(";", 1)[0]


def page(port, path, cookie=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_ui_first_view_shows_only_what_the_api_would(h):
    """GET /flows and /runs/ID with a session cookie carry the page's first
    view, written by the server (api_ssr.c): only the caller's flows and
    runs, every string escaped, never cached; without a session, or for a
    run the caller may not see, the plain page."""
    srv = Server(h)
    write_nb(srv.flows / "nb.ipynb", code("print('hi')"))
    write_nb(srv.flows / "bad.ipynb", code(f"raise ValueError({EVIL!r})"))
    srv.start()
    try:
        admin = srv.api
        for user in ("alice", "bob"):
            assert admin.post("/api/v1/users", {"name": user, "password": f"{user}-password-1"})[0] == 201
        st, t = admin.post("/api/v1/users/alice/tokens", {"name": "ssr"})
        alice = Api(srv.port, t["token"])
        desc = json.dumps(EVIL)
        for name, nb in (("f-alice", "nb.ipynb"), ("f-evil", "bad.ipynb")):
            st, body = alice.request("POST", f"/api/v1/flows?filename={name}.yaml",
                                     f"name: {name}\ndescription: {desc}\nschedule: '0 5 * * *'\n"
                                     f"timezone: Europe/Berlin\ntasks:\n  t: {{notebook: {nb}}}\n",
                                     headers={"Content-Type": "application/yaml"})
            assert st in (200, 201), (st, body)
        st, body = admin.request("POST", "/api/v1/flows?filename=f-admin.yaml",
                                 "name: f-admin\ntasks:\n  t: {notebook: nb.ipynb}\n",
                                 headers={"Content-Type": "application/yaml"})
        assert st in (200, 201), (st, body)
        ok_run, evil_run, admin_run = srv.trigger("f-alice"), srv.trigger("f-evil"), srv.trigger("f-admin")
        for r in (ok_run, evil_run, admin_run):
            srv.wait_run(r)

        st, anon_hdr, shell = page(srv.port, "/flows")
        assert st == 200 and "<!--ssr--><p class=\"muted\">Loading" in shell and "etag" in anon_hdr
        csp = anon_hdr["content-security-policy"]

        ca = login_cookie(srv.port, "alice", "alice-password-1")
        for path in ("/", "/flows"):
            st, hdr, body = page(srv.port, path, ca)
            assert st == 200 and hdr["cache-control"] == "no-store" and "etag" not in hdr
            assert hdr["content-security-policy"] == csp
            assert 'href="/flows/f-alice"' in body and 'href="/flows/f-evil"' in body
            assert "f-admin" not in body
            assert "<script>alert" not in body and "onerror=alert(2)>" not in body
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
            assert "every day at 05:00 (Europe/Berlin)" in body
            assert f'href="/runs/{ok_run}"' in body
            assert '<span class="who" id="who">alice</span>' in body
            assert 'id="nav-users" hidden' in body          # not an admin
        # the same schedule words in the API's answer, which the script draws with
        st, flows = alice.get("/api/v1/flows")
        assert {f["name"]: f["schedule_words"] for f in flows["flows"]}["f-alice"] == \
            "every day at 05:00 (Europe/Berlin)"

        st, hdr, body = page(srv.port, f"/runs/{ok_run}", ca)
        assert st == 200 and hdr["cache-control"] == "no-store"
        assert 'data-task="t" data-state="success"' in body and 'href="/flows/f-alice"' in body
        st, hdr, body = page(srv.port, f"/runs/{evil_run}", ca)
        assert 'data-task="t" data-state="failed"' in body
        assert '<div class="small err">exit code 1' in body     # the task's error, as the API has it
        # someone else's run, a run that does not exist, a bad id: the plain page
        for path in (f"/runs/{admin_run}", "/runs/999999", "/runs/abc"):
            st, hdr, body = page(srv.port, path, ca)
            assert st == 200 and "<!--ssr--><p class=\"muted\">Loading" in body, path
            assert "f-admin" not in body and "data-task" not in body

        # bob sees no flow: the plain page (the script shows the empty state)
        st, hdr, body = page(srv.port, "/flows", login_cookie(srv.port, "bob", "bob-password-1"))
        assert "Loading" in body and "f-alice" not in body
        # a forged or stale cookie: the plain page
        st, hdr, body = page(srv.port, "/flows", "nbhub_session=nbs_forged")
        assert st == 200 and "Loading" in body and "f-alice" not in body
        # the admin sees every flow and the Users link
        st, hdr, body = page(srv.port, "/flows", login_cookie(srv.port, "admin", ADMIN_PASSWORD))
        assert "f-admin" in body and "f-alice" in body and 'id="nav-users">' in body
    finally:
        srv.stop()
