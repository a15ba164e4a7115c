"""JupyterHub's REST API at /hub/api (docs/hub.md) on the real server: shapes and
status codes as JupyterHub 6.1 gives them, scopes, pagination, groups, tokens;
and the attacks token kinds exist for: a notebook server's token (readable by
any code in that server), an OAuth token and a token created with scopes must
not reach nbhub's own API or other users' things."""
import hashlib
import json
import sqlite3
import time

import pytest

from nbserve import ADMIN_PASSWORD, Api, Server

PAGINATION = "application/jupyterhub-pagination+json"
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def hub(port, token, scheme="token"):
    """A client sending `Authorization: token X` (JupyterHub's own form)."""
    class HubApi(Api):
        def request(self, method, path, body=None, headers=None, token=True, raw=False, timeout=30):
            hdrs = dict(headers or {})
            if token and self.token:
                hdrs["Authorization"] = f"{scheme} {self.token}"
            return Api.request(self, method, path, body=body, headers=hdrs, token=False, raw=raw,
                               timeout=timeout)
    return HubApi(port, token)


@pytest.fixture
def srv(h):
    s = Server(h).start()
    for user in ("alice", "bob", "carol"):
        st, _ = s.api.post("/api/v1/users", {"name": user, "password": f"{user}-password-1"})
        assert st == 201, st
    yield s
    s.stop()


def user_token(srv, user, **body):
    st, t = srv.api.post(f"/api/v1/users/{user}/tokens", {"name": "t", **body})
    assert st == 201, (st, t)
    return t["token"]


def login(srv, user, password):
    st, body, hdr = srv.api.request("POST", "/api/v1/login", {"username": user, "password": password},
                                    token=False, raw=True)
    assert st == 200, (st, body)
    return hdr["set-cookie"].split(";")[0], json.loads(body)["csrf_token"]


def add_server_token(srv, user, server_name="", kind="server", scopes=None):
    """A servers row and a token bound to it, as the hub writes them when it
    starts a server (its JUPYTERHUB_API_TOKEN) or as the OAuth provider
    writes an access token -- here without starting a process, for the
    attacks that only need the token."""
    tok = "nbh_" + hashlib.sha256(f"{user}/{server_name}/{kind}/{time.time()}".encode()).hexdigest()[:43]
    digest = hashlib.sha256(tok.encode()).hexdigest()
    c = sqlite3.connect(srv.home / "nbhub.db", timeout=10)
    uid = c.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()[0]
    row = c.execute("SELECT id FROM servers WHERE user_id = ? AND name = ?", (uid, server_name)).fetchone()
    if row:
        sid = row[0]
    else:
        sid = c.execute("INSERT INTO servers(user_id, name, profile, created_at) VALUES (?, ?, 'default', 0)",
                        (uid, server_name)).lastrowid
    c.execute("INSERT INTO api_tokens(user_id, name, token_hash, created_at, kind, scopes, server_id) "
              "VALUES (?, 'server', ?, 0, ?, ?, ?)",
              (uid, digest, kind, json.dumps(scopes) if scopes is not None else None, sid))
    c.commit()
    c.close()
    return tok


# --------------------------------------------------------------------------- shapes


def test_root_info_and_version_header(srv):
    st, body, hdr = srv.api.request("GET", "/hub/api/", token=False, raw=True)
    assert st == 200
    assert json.loads(body) == {"version": "6.1.1"}
    assert hdr["x-jupyterhub-version"] == "6.1.1"
    st, body, hdr = srv.api.request("GET", "/hub/api", token=False, raw=True)
    assert st == 200 and hdr["x-jupyterhub-version"] == "6.1.1"
    # every answer carries the header, errors too, in JupyterHub's error shape
    st, body, hdr = srv.api.request("GET", "/hub/api/users", token=False, raw=True)
    assert st == 403 and hdr["x-jupyterhub-version"] == "6.1.1"
    assert json.loads(body) == {"status": 403, "message": "Missing or invalid credentials."}
    st, body, hdr = srv.api.request("GET", "/hub/api/no/such/thing", raw=True)
    assert st == 404 and json.loads(body)["status"] == 404 and hdr["x-jupyterhub-version"] == "6.1.1"
    # /info needs read:hub: admins have it, users not
    st, info = hub(srv.port, srv.api.token).get("/hub/api/info")
    assert st == 200 and info["version"] == "6.1.1" and "spawner" in info
    st, err = hub(srv.port, user_token(srv, "alice")).get("/hub/api/info")
    assert st == 403 and "read:hub" in err["message"]


def test_self_model_both_auth_schemes(srv):
    tok = user_token(srv, "alice")
    for scheme in ("token", "Bearer", "bearer"):
        st, me = hub(srv.port, tok, scheme).get("/hub/api/user")
        assert st == 200, (scheme, st, me)
        assert me["kind"] == "user" and me["name"] == "alice" and me["admin"] is False
        assert me["groups"] == [] and me["servers"] == {}
        assert me["token_id"].startswith("a")
        assert "read:users!user=alice" in me["scopes"]
        assert "access:servers!user=alice" in me["scopes"]
        assert not any(s.startswith("admin") for s in me["scopes"])
    st, me = hub(srv.port, srv.api.token).get("/hub/api/user")
    assert st == 200 and me["admin"] is True and "admin:users" in me["scopes"]
    assert me["roles"] == ["admin", "user"]
    # a bad token: JupyterHub's 403
    st, err = hub(srv.port, "nbh_" + "x" * 43).get("/hub/api/user")
    assert st == 403 and err["status"] == 403


def test_users_list_pagination_and_state(srv):
    for i in range(5):
        st, _ = srv.api.post("/api/v1/users", {"name": f"u{i}", "password": "password-123"})
        assert st == 201
    admin = hub(srv.port, srv.api.token)
    st, users = admin.get("/hub/api/users")
    assert st == 200 and isinstance(users, list) and len(users) == 9   # admin, alice, bob, carol, u0-4
    u = next(x for x in users if x["name"] == "alice")
    for key in ("kind", "name", "admin", "roles", "groups", "server", "pending", "created",
                "last_activity", "servers"):
        assert key in u, key
    assert u["server"] is None and u["servers"] == {}
    # the pagination media type
    st, page = admin.get("/hub/api/users?limit=4&offset=2", headers={"Accept": PAGINATION})
    assert st == 200
    assert len(page["items"]) == 4
    p = page["_pagination"]
    assert (p["offset"], p["limit"], p["total"]) == (2, 4, 9)
    assert p["next"]["offset"] == 6 and p["next"]["limit"] == 4
    assert p["next"]["url"].startswith(f"http://127.0.0.1:{srv.port}/hub/api/users?")
    # follow next to the end, as the idle culler does
    seen, url = [], f"/hub/api/users?limit=4&state=inactive"
    while url:
        st, page = admin.get(url, headers={"Accept": PAGINATION})
        assert st == 200
        seen += [x["name"] for x in page["items"]]
        nxt = page["_pagination"]["next"]
        url = nxt["url"].split(str(srv.port), 1)[1] if nxt else None
    assert len(seen) == 9 and len(set(seen)) == 9
    # nobody has a server: ready/active are empty, inactive is everyone
    for state, n in (("ready", 0), ("active", 0), ("inactive", 9)):
        st, page = admin.get(f"/hub/api/users?state={state}", headers={"Accept": PAGINATION})
        assert st == 200 and page["_pagination"]["total"] == n, (state, page)
    st, err = admin.get("/hub/api/users?state=sleepy")
    assert st == 400 and "state" in err["message"]
    st, err = admin.get("/hub/api/users?limit=x")
    assert st == 400
    st, users = admin.get("/hub/api/users?name_filter=u")
    assert st == 200 and {x["name"] for x in users} == {"u0", "u1", "u2", "u3", "u4"}


def test_users_crud_as_admin(srv):
    admin = hub(srv.port, srv.api.token)
    st, created = admin.post("/hub/api/users", {"usernames": ["dave", "erin"]})
    assert st == 201 and [u["name"] for u in created] == ["dave", "erin"]
    st, err = admin.post("/hub/api/users", {"usernames": ["dave"]})
    assert st == 409
    st, u = admin.post("/hub/api/users/frank", {"admin": False})
    assert st == 201 and u["name"] == "frank" and u["admin"] is False
    st, _ = admin.post("/hub/api/users/frank")
    assert st == 409
    st, u = admin.request("PATCH", "/hub/api/users/frank", {"admin": True})
    assert st == 200 and u["admin"] is True
    st, u = admin.get("/hub/api/users/frank")
    assert st == 200 and u["admin"] is True and u["roles"] == ["admin", "user"]
    st, err = admin.request("PATCH", "/hub/api/users/frank", {"name": "franz"})
    assert st == 400
    st, err = admin.request("PATCH", "/hub/api/users/frank", {"auth_state": {}})
    assert st == 400
    st, _ = admin.delete("/hub/api/users/frank")
    assert st == 204
    st, _ = admin.get("/hub/api/users/frank")
    assert st == 404
    st, _ = admin.delete("/hub/api/users/frank")
    assert st == 404
    st, err = admin.delete("/hub/api/users/admin")
    assert st == 400 and "yourself" in err["message"]
    # the deleted user's tokens are gone with them
    st, _ = srv.api.post("/api/v1/users", {"name": "gina", "password": "password-123"})
    tok = user_token(srv, "gina")
    st, _ = admin.delete("/hub/api/users/gina")
    assert st == 204
    st, _ = hub(srv.port, tok).get("/hub/api/user")
    assert st == 403


def test_users_other_people_refused(srv):
    """A user sees and changes only themself: another user's model is a 404
    (as JupyterHub: names do not leak), admin actions a 403."""
    alice = hub(srv.port, user_token(srv, "alice"))
    st, err = alice.get("/hub/api/users")
    assert st == 403 and "list:users" in err["message"]
    st, _ = alice.get("/hub/api/users/bob")
    assert st == 404
    st, _ = alice.get("/hub/api/users/nobody")
    assert st == 404
    st, me = alice.get("/hub/api/users/alice")
    assert st == 200 and me["name"] == "alice"
    st, err = alice.delete("/hub/api/users/bob")
    assert st == 403 and "delete:users" in err["message"]
    st, _ = alice.request("PATCH", "/hub/api/users/alice", {"admin": True})
    assert st == 403
    st, _ = alice.post("/hub/api/users", {"usernames": ["mallory"]})
    assert st == 403
    st, _ = alice.get("/hub/api/users/bob/tokens")
    assert st == 404
    st, _ = alice.post("/hub/api/users/bob/tokens", {})
    assert st == 404
    st, _ = alice.post("/hub/api/users/bob/activity", {"last_activity": "2026-01-01T00:00:00Z"})
    assert st == 404
    st, _ = alice.post("/hub/api/users/bob/server", {})
    assert st == 404
    st, _ = alice.delete("/hub/api/users/bob/server")
    assert st == 404
    st, _ = srv.api.get("/api/v1/users/bob")   # nothing changed
    st, users = hub(srv.port, srv.api.token).get("/hub/api/users")
    assert {"alice", "bob"} <= {u["name"] for u in users}


# --------------------------------------------------------------------------- tokens and scopes


def test_tokens_scoped_within_owner(srv):
    alice_tok = user_token(srv, "alice")
    alice = hub(srv.port, alice_tok)
    # more than she has: refused (JupyterHub's 400)
    st, err = alice.post("/hub/api/users/alice/tokens", {"scopes": ["list:users"]})
    assert st == 400 and "Not assigning requested scopes" in err["message"]
    st, err = alice.post("/hub/api/users/alice/tokens", {"scopes": ["read:users!user=bob"]})
    assert st == 400
    st, err = alice.post("/hub/api/users/alice/tokens", {"scopes": ["no:such"]})
    assert st == 400 and "does not exist" in err["message"]
    # within: granted, and it is what the token can do
    st, t = alice.post("/hub/api/users/alice/tokens",
                       {"scopes": ["read:servers!user=alice"], "note": "narrow", "expires_in": 3600})
    assert st == 201, t
    assert t["kind"] == "api_token" and t["note"] == "narrow" and t["user"] == "alice"
    assert t["token"].startswith("nbh_") and t["id"].startswith("a") and t["expires_at"]
    assert "read:servers!user=alice" in t["scopes"] and "tokens!user=alice" not in t["scopes"]
    narrow = hub(srv.port, t["token"])
    st, me = narrow.get("/hub/api/user")
    assert st == 200 and me["name"] == "alice"
    assert "read:servers!user=alice" in me["scopes"] and "servers!user=alice" not in me["scopes"]
    st, _ = narrow.get("/hub/api/users/alice/tokens")
    assert st == 403
    # a token with scopes reaches nothing of nbhub's own API
    st, err = Api(srv.port, t["token"]).get("/api/v1/flows")
    assert st == 403
    st, _ = Api(srv.port, t["token"]).get("/api/v1/me")
    assert st == 403
    # ... nor can it mint itself a bigger one
    st, err = narrow.post("/hub/api/users/alice/tokens", {})
    assert st == 403
    # list, get, delete
    st, l = alice.get("/hub/api/users/alice/tokens")
    assert st == 200 and t["id"] in [x["id"] for x in l["api_tokens"]]
    st, one = alice.get(f"/hub/api/users/alice/tokens/{t['id']}")
    assert st == 200 and one["note"] == "narrow" and "token" not in one
    st, _ = hub(srv.port, user_token(srv, "bob")).get(f"/hub/api/users/alice/tokens/{t['id']}")
    assert st == 404
    st, _ = alice.get("/hub/api/users/alice/tokens/a999999")
    assert st == 404
    st, _ = alice.delete(f"/hub/api/users/alice/tokens/{t['id']}")
    assert st == 204
    st, _ = narrow.get("/hub/api/user")
    assert st == 403
    # no scopes: all her rights ("inherit"), a full token
    st, t = alice.post("/hub/api/users/alice/tokens", {})
    assert st == 201
    st, _ = Api(srv.port, t["token"]).get("/api/v1/me")
    assert st == 200


def test_culler_token_scopes(srv):
    """An admin's token with the idle culler's scopes: lists users and
    servers, stops servers, and nothing else."""
    admin = hub(srv.port, srv.api.token)
    st, t = admin.post("/hub/api/users/admin/tokens", {"scopes": CULLER_SCOPES, "note": "culler"})
    assert st == 201, t
    culler = hub(srv.port, t["token"])
    st, page = culler.get("/hub/api/users?state=ready", headers={"Accept": PAGINATION})
    assert st == 200 and page["items"] == []
    st, users = culler.get("/hub/api/users")
    assert st == 200 and len(users) == 4
    a = next(u for u in users if u["name"] == "alice")
    assert "last_activity" in a and "servers" in a
    assert "groups" not in a            # not read:users:groups
    st, _ = culler.post("/hub/api/users", {"usernames": ["x"]})
    assert st == 403
    st, _ = culler.delete("/hub/api/users/bob")
    assert st == 403
    st, _ = culler.get("/hub/api/users/bob/tokens")
    assert st == 403
    st, _ = culler.get("/hub/api/info")
    assert st == 403
    st, _ = Api(srv.port, t["token"]).get("/api/v1/users")
    assert st == 403
    st, _ = Api(srv.port, t["token"]).get("/api/v1/flows")
    assert st == 403


def test_session_cookie_needs_csrf(srv):
    cookie, csrf = login(srv, "alice", "alice-password-1")
    st, me = srv.api.get("/hub/api/user", headers={"Cookie": cookie}, token=False)
    assert st == 200 and me["name"] == "alice"
    st, err = srv.api.post("/hub/api/users/alice/tokens", {}, headers={"Cookie": cookie}, token=False)
    assert st == 403 and "xsrf" in err["message"].lower()
    st, t = srv.api.post("/hub/api/users/alice/tokens", {}, headers={"Cookie": cookie, "X-CSRF-Token": csrf},
                         token=False)
    assert st == 201 and t["token"]


# --------------------------------------------------------------------------- groups


def test_groups(srv):
    admin = hub(srv.port, srv.api.token)
    st, gs = admin.post("/hub/api/groups", {"groups": ["team", "ops"], "users": ["alice"]})
    assert st == 201 and [g["name"] for g in gs] == ["team", "ops"] and gs[0]["users"] == ["alice"]
    st, _ = admin.post("/hub/api/groups", {"groups": ["team"]})
    assert st == 409
    st, g = admin.post("/hub/api/groups/solo", {"users": []})
    assert st == 201 and g == {"kind": "group", "name": "solo", "roles": [], "users": [], "properties": {}}
    st, err = admin.post("/hub/api/groups/bad", {"users": ["nobody"]})
    assert st == 400 and "nobody" in err["message"]
    st, g = admin.post("/hub/api/groups/team/users", {"users": ["bob"]})
    assert st == 200 and g["users"] == ["alice", "bob"]
    st, g = admin.delete("/hub/api/groups/team/users", body={"users": ["alice"]})
    assert st == 200 and g["users"] == ["bob"]
    st, g = admin.request("PUT", "/hub/api/groups/team/properties", {"profile": "gpu"})
    assert st == 200 and g["properties"] == {"profile": "gpu"}
    st, page = admin.get("/hub/api/groups?limit=2", headers={"Accept": PAGINATION})
    assert st == 200 and page["_pagination"]["total"] == 3 and len(page["items"]) == 2
    st, u = admin.get("/hub/api/users/bob")
    assert u["groups"] == ["team"]
    # a user: no group rights at all
    alice = hub(srv.port, user_token(srv, "alice"))
    for method, path, body in (("GET", "/hub/api/groups", None), ("POST", "/hub/api/groups/x", {}),
                               ("DELETE", "/hub/api/groups/team", None),
                               ("POST", "/hub/api/groups/team/users", {"users": ["alice"]})):
        st, _ = alice.request(method, path, body)
        assert st == 403, (method, path, st)
    # a group filter: a token of the admin's limited to team's members
    st, t = admin.post("/hub/api/users/admin/tokens", {"scopes": ["read:users!group=team"]})
    assert st == 201, t
    team = hub(srv.port, t["token"])
    st, _ = team.get("/hub/api/users/bob")
    assert st == 200
    st, _ = team.get("/hub/api/users/alice")
    assert st == 404
    st, _ = admin.delete("/hub/api/groups/team")
    assert st == 204
    st, _ = admin.get("/hub/api/groups/team")
    assert st == 404


# --------------------------------------------------------------------------- token kinds


def test_server_token_confined(srv):
    """The attack: code in alice's notebook server reads its
    JUPYTERHUB_API_TOKEN and uses it.  It may identify alice and post her
    activity; nbhub's API, other users and admin actions are refused."""
    stok = add_server_token(srv, "alice")
    s = hub(srv.port, stok)
    st, me = s.get("/hub/api/user")
    assert st == 200 and me["name"] == "alice"
    assert set(me["scopes"]) >= {"access:servers!server=alice/", "users:activity!user=alice"}
    assert "servers!user=alice" not in me["scopes"] and "tokens!user=alice" not in me["scopes"]
    # nbhub's own API: nothing, not even alice's own things
    for method, path in (("GET", "/api/v1/flows"), ("GET", "/api/v1/me"), ("GET", "/api/v1/runs"),
                         ("POST", "/api/v1/users/alice/tokens"), ("GET", "/api/v1/events"),
                         ("GET", "/api/v1/spark/clusters")):
        st, _ = Api(srv.port, stok).request(method, path, body={} if method == "POST" else None)
        assert st == 403, (method, path, st)
    # other users and admin actions
    st, _ = s.delete("/hub/api/users/bob")
    assert st == 403
    st, _ = s.get("/hub/api/users/bob")
    assert st == 404
    st, _ = s.get("/hub/api/users")
    assert st == 403
    st, _ = s.post("/hub/api/users/bob/activity", {"last_activity": "2026-01-01T00:00:00Z"})
    assert st == 404
    # nor alice's other powers: tokens, servers
    st, _ = s.post("/hub/api/users/alice/tokens", {})
    assert st == 403
    st, _ = s.get("/hub/api/users/alice/tokens")
    assert st == 403
    st, _ = s.delete("/hub/api/users/alice/server")
    assert st == 403
    st, _ = s.post("/hub/api/users/alice/servers/other", {})
    assert st == 403
    # what it is for: her activity
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    st, _ = s.post("/hub/api/users/alice/activity", {"last_activity": now})
    assert st == 200
    # a server token whose stored scopes claim more gets no more
    big = add_server_token(srv, "alice", "big", scopes=["inherit", "admin:users", "tokens"])
    st, me = hub(srv.port, big).get("/hub/api/user")
    assert st == 200 and "tokens!user=alice" not in me["scopes"] and "admin:users" not in me["scopes"]
    assert "access:servers!server=alice/big" in me["scopes"]
    st, _ = hub(srv.port, big).post("/hub/api/users/alice/tokens", {})
    assert st == 403
    st, _ = Api(srv.port, big).get("/api/v1/flows")
    assert st == 403


def test_oauth_token_confined(srv):
    """An OAuth token issued through alice's server identifies alice to that
    server only: its scopes name that server, and /api/v1 refuses it."""
    otok = add_server_token(srv, "alice", "", kind="oauth",
                            scopes=["access:servers!server=alice/", "read:users:name!user=alice"])
    o = hub(srv.port, otok)
    st, me = o.get("/hub/api/user")
    assert st == 200 and me["name"] == "alice"
    assert "access:servers!server=alice/" in me["scopes"]
    assert not any(s.startswith("access:servers!server=bob") for s in me["scopes"])
    assert not any(s.startswith("access:servers!user=") for s in me["scopes"])
    st, _ = Api(srv.port, otok).get("/api/v1/flows")
    assert st == 403
    st, _ = o.get("/hub/api/users/bob")
    assert st == 404
    st, _ = o.post("/hub/api/users/alice/tokens", {})
    assert st == 403
    st, _ = o.delete("/hub/api/users/alice/server")
    assert st == 403
    # an oauth token claiming bob's server (forged scopes) gets nothing of bob's:
    # its rights are always within alice's
    forged = add_server_token(srv, "alice", "", kind="oauth", scopes=["access:servers!server=bob/"])
    st, me = hub(srv.port, forged).get("/hub/api/user")
    assert st == 200 and not any("bob" in s for s in me["scopes"])


# --------------------------------------------------------------------------- with real servers
# (jupyterhub-singleuser from the .venv, started by nbhub's hub)

import base64
import os
import re
import subprocess
import urllib.parse

import requests

from conftest import wait_for
from hubserve import HubServer, hub_harness

CULLER = os.path.join(os.path.dirname(__file__), "..", "..", ".venv", "bin", "jupyterhub-idle-culler")


@pytest.fixture(scope="module")
def hs(tmp_path_factory):
    h = hub_harness(tmp_path_factory, "hubapi")
    s = HubServer(h, config="hub:\n  max_servers_per_user: 3\n  start_timeout: 90s\n  admin_access: true\n",
                  users=("alice", "bob")).start()
    yield s
    # servers outlive nbhub serve by design (a restart adopts them): stop them first
    for u in ("alice", "bob"):
        srv = s.server(u)
        if srv and srv["state"] in ("starting", "running"):
            s.stop_server(u)
    s.stop()
    left = h.cleanup()
    assert not left, left


def server_env(hs, user, name=""):
    """The environment of a user's running jupyterhub-singleuser, as code
    inside it sees it (we are root: /proc/PID/environ)."""
    srv = hs.server(user, name)
    assert srv and srv["pid"], srv
    env = {}
    for pid in [srv["pid"]] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            raw = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        e = dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)
        if e.get("JUPYTERHUB_USER") == user and e.get("JUPYTERHUB_SERVER_NAME", "") == name \
                and "JUPYTERHUB_API_TOKEN" in e:
            return e
    raise AssertionError(f"no environment with JUPYTERHUB_API_TOKEN for {user}/{name}")


def pkce():
    verifier = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(hs, cookie, client_id, redirect_uri, challenge=None, method="S256", state="st-1"):
    q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state}
    if challenge is not None:
        q["code_challenge"] = challenge
    if method is not None:
        q["code_challenge_method"] = method
    st, body, hdr = hs.api.request("GET", "/hub/api/oauth2/authorize?" + urllib.parse.urlencode(q),
                                   headers={"Cookie": cookie}, token=False, raw=True)
    return st, body, hdr


def code_of(location):
    q = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    return q.get("code", [None])[0], q


def exchange(hs, client_id, secret, code, redirect_uri, verifier):
    form = {"client_id": client_id, "client_secret": secret, "grant_type": "authorization_code",
            "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return hs.api.request("POST", "/hub/api/oauth2/token", urllib.parse.urlencode(form),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, token=False)


def test_server_lifecycle_through_hub_api(hs):
    alice = hub(hs.port, hs.user("alice").token)
    st, body = alice.post("/hub/api/users/alice/server", {})
    assert st in (201, 202), (st, body, hs.log())
    # progress: JupyterHub's events, ending with ready
    c = requests.get(f"http://127.0.0.1:{hs.port}/hub/api/users/alice/server/progress",
                     headers={"Authorization": f"token {alice.token}"}, stream=True, timeout=120)
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/event-stream")
    assert c.headers["x-jupyterhub-version"] == "6.1.1"
    events = []
    for line in c.iter_lines():
        if line.startswith(b"data:"):
            ev = json.loads(line[5:])
            events.append(ev)
            if ev.get("ready") or ev.get("failed"):
                break
    c.close()
    assert events[-1].get("ready") is True, (events, hs.log())
    assert events[-1]["url"] == "/user/alice/" and events[-1]["progress"] == 100
    st, u = alice.get("/hub/api/users/alice")
    assert st == 200 and u["server"] == "/user/alice/" and u["pending"] is None
    srv = u["servers"][""]
    assert srv["ready"] is True and srv["pending"] is None and srv["url"] == "/user/alice/"
    assert srv["started"] and "last_activity" in srv and srv["name"] == ""
    st, err = alice.post("/hub/api/users/alice/server", {})
    assert st == 400 and "already running" in err["message"]
    st, page = hub(hs.port, hs.api.token).get("/hub/api/users?state=ready", headers={"Accept": PAGINATION})
    assert st == 200 and [x["name"] for x in page["items"]] == ["alice"]
    # bob sees none of it
    bob = hub(hs.port, hs.user("bob").token)
    st, _ = bob.get("/hub/api/users/alice/server/progress")
    assert st == 404
    st, _ = bob.delete("/hub/api/users/alice/server")
    assert st == 404
    # a named server, removed
    st, _ = alice.post("/hub/api/users/alice/servers/second", {"profile": "default"})
    assert st in (201, 202)
    st, err = alice.post("/hub/api/users/alice/servers/bad%20name", {})
    assert st == 400
    wait_for(lambda: (hs.server("alice", "second") or {}).get("state") in ("running", "failed"), 120)
    st, _ = alice.delete("/hub/api/users/alice/server", body={"remove": True})
    assert st == 400
    st, _ = alice.delete("/hub/api/users/alice/servers/second", body={"remove": True})
    assert st in (202, 204)
    wait_for(lambda: hs.server("alice", "second") is None, 60)
    st, _ = alice.get("/hub/api/users/alice/servers/second")
    assert st == 404


def test_browser_logs_in_to_lab_through_oauth(hs):
    """A browser-like client (cookie jar, redirects followed): /user/alice/lab
    -> the hub's authorize (nbhub session) -> the server's callback (token
    exchange with PKCE) -> the lab page."""
    if not hs.server("alice") or hs.server("alice")["state"] != "running":
        hs.start_server("alice")
    base = f"http://127.0.0.1:{hs.port}"
    s = requests.Session()
    r = s.post(f"{base}/api/v1/login", json={"username": "alice", "password": "alice-password-1"}, timeout=30)
    assert r.status_code == 200
    r = s.get(f"{base}/user/alice/lab", timeout=60)
    assert r.status_code == 200, (r.status_code, r.url, r.text[:500], hs.log())
    assert "jupyter-config-data" in r.text or "JupyterLab" in r.text
    hops = [h.headers.get("location", "") for h in r.history]
    assert any("/hub/api/oauth2/authorize" in x and "code_challenge=" in x for x in hops), hops
    assert any("/user/alice/oauth_callback" in x and "code=" in x for x in hops), hops
    # the API of the server answers the browser too (its own cookie)
    r = s.get(f"{base}/user/alice/api/status", timeout=30)
    assert r.status_code == 200
    # bob's browser: refused by the hub's authorize for alice's server
    b = requests.Session()
    r = b.post(f"{base}/api/v1/login", json={"username": "bob", "password": "bob-password-1"}, timeout=30)
    env = server_env(hs, "alice")
    verifier, challenge = pkce()
    cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
    st, body, hdr = authorize(hs, cookie, env["JUPYTERHUB_CLIENT_ID"], env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
                              challenge)
    assert st == 403 and "location" not in hdr, (st, body)
    # not logged in: to the login page
    st, body, hdr = authorize(hs, "", env["JUPYTERHUB_CLIENT_ID"], env["JUPYTERHUB_OAUTH_CALLBACK_URL"], challenge)
    assert st == 302 and hdr["location"].startswith("/login?next=")


def test_pkce_and_code_attacks(hs):
    """With the server's secret in hand (any code in the server can read
    JUPYTERHUB_API_TOKEN), codes still cannot be misused: each is bound to
    its client, redirect URI and PKCE challenge, and single use."""
    if not hs.server("alice") or hs.server("alice")["state"] != "running":
        hs.start_server("alice")
    if not hs.server("bob") or hs.server("bob")["state"] != "running":
        hs.start_server("bob")
    ea, eb = server_env(hs, "alice"), server_env(hs, "bob")
    cid, cb, secret = ea["JUPYTERHUB_CLIENT_ID"], ea["JUPYTERHUB_OAUTH_CALLBACK_URL"], ea["JUPYTERHUB_API_TOKEN"]
    assert cid == "jupyterhub-user-alice" and cb == "/user/alice/oauth_callback"
    cookie, _ = hs.login("alice")

    def new_code(challenge):
        st, body, hdr = authorize(hs, cookie, cid, cb, challenge)
        assert st == 302, (st, body)
        code, q = code_of(hdr["location"])
        assert hdr["location"].startswith(cb + "?") and q["state"] == ["st-1"] and code
        return code

    # the good exchange
    verifier, challenge = pkce()
    code = new_code(challenge)
    st, tok = exchange(hs, cid, secret, code, cb, verifier)
    assert st == 200, tok
    assert tok["token_type"] == "Bearer" and tok["access_token"].startswith("nbh_")
    assert "access:servers!server=alice/" in tok["scope"].split()
    # ... used once only
    st, err = exchange(hs, cid, secret, code, cb, verifier)
    assert st == 400 and err["error"] == "invalid_grant"
    # the token identifies alice to her server, and is nothing on /api/v1
    st, me = hub(hs.port, tok["access_token"]).get("/hub/api/user")
    assert st == 200 and me["name"] == "alice" and "access:servers!server=alice/" in me["scopes"]
    st, _ = Api(hs.port, tok["access_token"]).get("/api/v1/flows")
    assert st == 403
    # ... and bob's server does not take it (the proxy or the server refuse)
    r = requests.get(f"http://127.0.0.1:{hs.port}/user/bob/api/status",
                     headers={"Authorization": f"token {tok['access_token']}"}, allow_redirects=False, timeout=30)
    assert r.status_code in (302, 401, 403, 404), r.status_code

    # wrong verifier: refused, and the code is spent
    verifier, challenge = pkce()
    code = new_code(challenge)
    st, err = exchange(hs, cid, secret, code, cb, pkce()[0])
    assert st == 400 and err["error"] == "invalid_grant"
    st, err = exchange(hs, cid, secret, code, cb, verifier)
    assert st == 400
    # no verifier
    verifier, challenge = pkce()
    code = new_code(challenge)
    st, err = exchange(hs, cid, secret, code, cb, None)
    assert st == 400 and err["error"] == "invalid_grant"
    # another client's code: alice's code with bob's server as the client
    verifier, challenge = pkce()
    code = new_code(challenge)
    st, err = exchange(hs, eb["JUPYTERHUB_CLIENT_ID"], eb["JUPYTERHUB_API_TOKEN"], code,
                       eb["JUPYTERHUB_OAUTH_CALLBACK_URL"], verifier)
    assert st == 400 and err["error"] == "invalid_grant"
    # a client id with another server's secret
    verifier, challenge = pkce()
    code = new_code(challenge)
    st, err = exchange(hs, cid, eb["JUPYTERHUB_API_TOKEN"], code, cb, verifier)
    assert st == 401 and err["error"] == "invalid_client"
    st, err = exchange(hs, cid, hs.user("alice").token, code, cb, verifier)   # her own api token
    assert st == 401
    # another redirect_uri at the token endpoint
    verifier, challenge = pkce()
    code = new_code(challenge)
    st, err = exchange(hs, cid, secret, code, "/user/alice/other/oauth_callback", verifier)
    assert st == 400 and err["error"] == "invalid_grant"
    # another redirect_uri at authorize: an error page, never a redirect
    for bad in ("http://evil.example/user/alice/oauth_callback", "/user/alice/x/oauth_callback",
                "/user/bob/oauth_callback", "/hub/login", cb + "x"):
        st, body, hdr = authorize(hs, cookie, cid, bad, challenge)
        assert st == 400 and "location" not in hdr, (bad, st, hdr)
    st, body, hdr = authorize(hs, cookie, "jupyterhub-user-bob", cb, challenge)
    assert st == 400 and "location" not in hdr
    # plain method, no challenge, no method: refused back to the (checked) client
    for ch, method in ((verifier, "plain"), (None, None), (None, "S256"), (challenge, None)):
        st, body, hdr = authorize(hs, cookie, cid, cb, ch, method)
        assert st == 302, (ch, method, st, body)
        code, q = code_of(hdr["location"])
        assert code is None and q["error"] == ["invalid_request"], (method, hdr["location"])
    st, body, hdr = authorize(hs, cookie, cid, cb, challenge)
    assert st == 302
    # an unsupported grant
    st, err = hs.api.request("POST", "/hub/api/oauth2/token",
                             urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": cid,
                                                     "client_secret": secret}),
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, token=False)
    assert st == 400 and err["error"] == "unsupported_grant_type"

    # the server's own token: jupyterhub-singleuser's calls, nothing more
    s = hub(hs.port, secret)
    st, me = s.get("/hub/api/user")
    assert st == 200 and me["name"] == "alice"
    st, _ = Api(hs.port, secret).get("/api/v1/flows")
    assert st == 403
    st, _ = s.delete("/hub/api/users/bob/server")      # no delete:servers at all: 403
    assert st == 403
    st, _ = s.delete("/hub/api/users/alice/server")
    assert st == 403
    st, _ = s.get("/hub/api/users/bob")                # filtered read access: 404
    assert st == 404
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    st, _ = s.post("/hub/api/users/alice/activity",
                   {"servers": {"": {"last_activity": now}}, "last_activity": now})
    assert st == 200
    st, err = s.post("/hub/api/users/alice/activity", {"servers": {"nope": {"last_activity": now}}})
    assert st == 400


def test_admin_access_needs_consent(hs):
    """hub.admin_access: an admin may open alice's server, but only after a
    consent page posted back with the session's CSRF token (a link alone
    does not log the admin's browser in to a server alice controls)."""
    if not hs.server("alice") or hs.server("alice")["state"] != "running":
        hs.start_server("alice")
    env = server_env(hs, "alice")
    cid, cb, secret = env["JUPYTERHUB_CLIENT_ID"], env["JUPYTERHUB_OAUTH_CALLBACK_URL"], env["JUPYTERHUB_API_TOKEN"]
    st, body, hdr = hs.srv.api.request("POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD},
                                       token=False, raw=True)
    cookie, csrf = hdr["set-cookie"].split(";")[0], json.loads(body)["csrf_token"]
    verifier, challenge = pkce()
    st, body, hdr = authorize(hs, cookie, cid, cb, challenge)
    assert st == 200 and "location" not in hdr, (st, hdr)
    page = body.decode()
    assert "Authorize" in page and "alice" in page and hdr["content-type"].startswith("text/html")
    q = urllib.parse.urlencode({"response_type": "code", "client_id": cid, "redirect_uri": cb, "state": "s",
                                "code_challenge": challenge, "code_challenge_method": "S256"})
    form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    # no or a wrong CSRF value: refused (a foreign page cannot consent for the admin)
    for b in ("", "_xsrf=nbc_wrong"):
        st, _, hdr = hs.api.request("POST", "/hub/api/oauth2/authorize?" + q, b, headers=form, token=False, raw=True)
        assert st == 403 and "location" not in hdr
    st, _, hdr = hs.api.request("POST", "/hub/api/oauth2/authorize?" + q, "_xsrf=" + csrf, headers=form,
                                token=False, raw=True)
    assert st == 302, st
    code, qs = code_of(hdr["location"])
    assert code and qs["state"] == ["s"]
    st, tok = exchange(hs, cid, secret, code, cb, verifier)
    assert st == 200, tok
    st, me = hub(hs.port, tok["access_token"]).get("/hub/api/user")
    assert st == 200 and me["name"] == "admin" and "access:servers!server=alice/" in me["scopes"]
    assert "admin:users" not in me["scopes"] and "access:servers" not in me["scopes"]
    st, _ = Api(hs.port, tok["access_token"]).get("/api/v1/users")
    assert st == 403
    # bob, no admin: no page, no code
    bcookie, bcsrf = hs.login("bob")
    st, _, hdr = authorize(hs, bcookie, cid, cb, challenge)
    assert st == 403
    st, _, hdr = hs.api.request("POST", "/hub/api/oauth2/authorize?" + q, "_xsrf=" + bcsrf,
                                headers=dict(form, Cookie=bcookie), token=False, raw=True)
    assert st == 403


def test_idle_culler_culls_idle_leaves_busy(hs):
    """The unmodified jupyterhub-idle-culler (PyPI) against /hub/api with a
    token holding its scopes: alice's idle server is stopped, bob's busy
    one (it keeps reporting activity, as jupyterhub-singleuser does) stays."""
    for u in ("alice", "bob"):
        if not hs.server(u) or hs.server(u)["state"] != "running":
            hs.start_server(u)
    admin = hub(hs.port, hs.api.token)
    st, t = admin.post("/hub/api/users/admin/tokens", {"scopes": CULLER_SCOPES, "note": "culler"})
    assert st == 201, t
    bob = hub(hs.port, hs.user("bob").token)
    env = dict(hs.h.env, JUPYTERHUB_API_TOKEN=t["token"])
    # alice goes idle: nothing from her for > timeout
    time.sleep(4)
    log = open(hs.h.tmp / "culler.log", "wb")
    p = hs.h.popen([f"--url=http://127.0.0.1:{hs.port}/hub/api", "--timeout=3", "--cull-every=1",
                    "--concurrency=2"], exe=CULLER, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            st, _ = bob.post("/hub/api/users/bob/activity", {"servers": {"": {"last_activity": now}}})
            assert st == 200
            if hs.server("alice")["state"] in ("stopped", "stopping"):
                break
            time.sleep(0.5)
        time.sleep(2)   # a few more rounds of the culler with bob busy
    finally:
        p.terminate()
        p.wait(timeout=20)
        log.close()
    out = (hs.h.tmp / "culler.log").read_text(errors="replace")
    assert hs.server("alice")["state"] in ("stopped", "stopping"), (out, hs.log())
    assert "Culling server alice" in out, out
    assert hs.server("bob")["state"] == "running", (out, hs.log())
    assert "Culling server bob" not in out, out
