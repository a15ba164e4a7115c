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
