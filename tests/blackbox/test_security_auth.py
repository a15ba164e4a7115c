"""Regression tests for the authentication findings of the review of `nbhub serve`
(issue 16): API tokens survived a password change; POST /logout with a bearer
token answered 204 and revoked nothing; five bad passwords from anyone locked
the admin out; a stolen session could change the password without knowing it.
Each test reproduces its finding against the real server (they fail on the code
before the fix).  "Another client" is another loopback address: the server
listens on 127.0.0.1, and Linux routes all of 127/8 to lo, so a client socket
bound to 127.0.0.2 or 127.0.0.3 is a different peer address for the server."""
import json
import time

from nbserve import ADMIN_PASSWORD, Api, Server

ALICE_PW = "alice-password-1"


def add_user(srv, name, pw):
    st, body = srv.api.post("/api/v1/users", {"name": name, "password": pw})
    assert st == 201, (st, body)
    st, tok = srv.api.post(f"/api/v1/users/{name}/tokens", {"name": "t"})
    assert st == 201, (st, tok)
    return tok["token"]


def login(port, name, pw, source=None):
    """(status, session) where session is (cookie, csrf) on success."""
    st, body, hdr = Api(port, source=source).request("POST", "/api/v1/login", {"username": name, "password": pw},
                                                     token=False, raw=True)
    if st != 200:
        return st, hdr
    return st, (hdr["set-cookie"].split(";", 1)[0], json.loads(body)["csrf_token"])


def as_session(port, sess, method, path, body=None, source=None):
    cookie, csrf = sess
    return Api(port, source=source).request(method, path, body, headers={"Cookie": cookie, "X-CSRF-Token": csrf},
                                            token=False)


def put_password(port, who, name, body, source=None):
    """PUT /users/NAME/password as `who`: an API token or a (cookie, csrf) session."""
    if isinstance(who, tuple):
        return as_session(port, who, "PUT", f"/api/v1/users/{name}/password", body, source=source)
    return Api(port, who, source=source).request("PUT", f"/api/v1/users/{name}/password", body)


def test_password_change_can_revoke_api_tokens(h):
    """Finding: a password change left every API token working, so a leaked token
    outlived the reaction to the leak.  With revoke_tokens the user's tokens die
    with the old password; without it they are kept (documented)."""
    srv = Server(h).start()
    try:
        tok = add_user(srv, "alice", ALICE_PW)
        other = add_user(srv, "bob", "bob-password-1")
        st, _ = put_password(srv.port, srv.api.token, "alice", {"password": "alice-password-2"})
        assert st == 204
        assert Api(srv.port, tok).get("/api/v1/me")[0] == 200      # kept unless asked
        st, body = put_password(srv.port, srv.api.token, "alice",
                                {"password": "alice-password-3", "revoke_tokens": True})
        assert st == 204, body
        st, body = Api(srv.port, tok).get("/api/v1/me")
        assert st == 401, (st, body)                               # the finding: was 200
        assert Api(srv.port, other).get("/api/v1/me")[0] == 200    # only alice's tokens
        st, tokens = srv.api.get("/api/v1/users/alice/tokens")
        assert st == 200 and tokens["tokens"] == [], tokens
        # a wrong type is refused before anything changes
        st, body = put_password(srv.port, srv.api.token, "alice", {"password": "alice-password-4",
                                                                  "revoke_tokens": "yes"})
        assert st == 400, body
        assert login(srv.port, "alice", "alice-password-3")[0] == 200
    finally:
        srv.stop()


def test_own_password_change_needs_the_old_password(h):
    """Finding: whoever held a session (or a token) could set a new password without
    knowing the current one, taking the account over.  Now one's own change needs
    old_password (403 otherwise); it ends the user's other sessions and keeps the
    one that made it; an admin setting someone else's password needs no old one."""
    srv = Server(h).start()
    try:
        tok = add_user(srv, "alice", ALICE_PW)
        st, s1 = login(srv.port, "alice", ALICE_PW)
        assert st == 200
        st, s2 = login(srv.port, "alice", ALICE_PW)
        assert st == 200
        st, body = put_password(srv.port, s1, "alice", {"password": "taken-over-1"})
        assert st == 403, (st, body)                                # the finding: was 204
        assert "old_password" in body["error"]["message"], body
        st, body = put_password(srv.port, tok, "alice", {"password": "taken-over-1"})
        assert st == 403, (st, body)                                # a token alone is not enough either
        st, body = put_password(srv.port, s1, "alice", {"password": "taken-over-1", "old_password": "guess-123"})
        assert st == 403 and body["error"]["code"] == "forbidden", (st, body)
        assert login(srv.port, "alice", ALICE_PW)[0] == 200         # the password did not change
        # the right old password: changed; this session stays, the other ends
        st, body = put_password(srv.port, s1, "alice", {"password": "alice-password-2", "old_password": ALICE_PW})
        assert st == 204, (st, body)
        assert as_session(srv.port, s1, "GET", "/api/v1/me")[0] == 200
        assert as_session(srv.port, s2, "GET", "/api/v1/me")[0] == 401
        assert login(srv.port, "alice", ALICE_PW)[0] == 401
        assert login(srv.port, "alice", "alice-password-2")[0] == 200
        # through a token with the old password (and the token survives without revoke_tokens)
        st, body = put_password(srv.port, tok, "alice", {"password": "alice-password-3",
                                                          "old_password": "alice-password-2"})
        assert st == 204, (st, body)
        assert Api(srv.port, tok).get("/api/v1/me")[0] == 200
        # an admin sets another user's password without theirs; their sessions end
        st, s3 = login(srv.port, "alice", "alice-password-3")
        st, body = put_password(srv.port, srv.api.token, "alice", {"password": "alice-password-4"})
        assert st == 204, (st, body)
        assert as_session(srv.port, s3, "GET", "/api/v1/me")[0] == 401
        assert as_session(srv.port, s1, "GET", "/api/v1/me")[0] == 401
        # an admin changing their own needs the old one like anyone
        st, body = put_password(srv.port, srv.api.token, "admin", {"password": "admin-password-2"})
        assert st == 403, (st, body)
        log = srv.log()
        assert "password change refused" in log, log
        assert "taken-over" not in log and "guess-123" not in log   # no password reaches the log
    finally:
        srv.stop()


def test_wrong_old_password_counts_as_failed_login(h):
    """Guessing the old password through the change endpoint is held to the login's
    lockout: five wrong (or missing) ones lock the pair (name, address) for logins
    and changes alike."""
    srv = Server(h).start()
    try:
        tok = add_user(srv, "alice", ALICE_PW)
        for i in range(4):
            st, body = put_password(srv.port, tok, "alice", {"password": "new-password-1", "old_password": f"g-{i}"})
            assert st == 403, (i, st, body)
        st, body = put_password(srv.port, tok, "alice", {"password": "new-password-1"})   # missing counts too
        assert st == 403, (st, body)
        st, payload, hdr = Api(srv.port, tok).request("PUT", "/api/v1/users/alice/password",
                                                      {"password": "new-password-1", "old_password": ALICE_PW},
                                                      raw=True)
        assert st == 429 and hdr.get("retry-after") == "30", (st, payload, hdr)
        st, hdr = login(srv.port, "alice", ALICE_PW)
        assert st == 429, st
        assert login(srv.port, "alice", ALICE_PW, source="127.0.0.2")[0] == 200   # another address
    finally:
        srv.stop()


def test_logout_with_a_token_revokes_it(h):
    """Finding: POST /api/v1/logout with a bearer token answered 204 and the token
    went on working.  Now the token used is revoked (only that one); a cookie
    logout still ends its session and clears the cookie."""
    srv = Server(h).start()
    try:
        tok = add_user(srv, "alice", ALICE_PW)
        st, t2 = srv.api.post("/api/v1/users/alice/tokens", {"name": "second"})
        assert st == 201
        st, payload, hdr = Api(srv.port, tok).request("POST", "/api/v1/logout", raw=True)
        assert st == 204, (st, payload)
        st, body = Api(srv.port, tok).get("/api/v1/me")
        assert st == 401, (st, body)                               # the finding: was 200
        assert "set-cookie" not in hdr, hdr                        # no cookie to clear
        assert Api(srv.port, t2["token"]).get("/api/v1/me")[0] == 200
        st, tokens = srv.api.get("/api/v1/users/alice/tokens")
        assert [t["name"] for t in tokens["tokens"]] == ["second"], tokens
        # the cookie way
        st, sess = login(srv.port, "alice", ALICE_PW)
        st, _ = as_session(srv.port, sess, "POST", "/api/v1/logout", {})
        assert st == 204
        assert as_session(srv.port, sess, "GET", "/api/v1/me")[0] == 401
        assert Api(srv.port, t2["token"]).get("/api/v1/me")[0] == 200   # a cookie logout revokes no token
    finally:
        srv.stop()


def test_lockout_is_per_name_and_address(h):
    """Finding: five wrong passwords for "admin" from anyone locked the admin out
    everywhere for 30 s and more.  The lockout now holds the pair (name, client
    address): the stranger waits, the admin at another address logs in."""
    srv = Server(h).start()
    try:
        stranger, admin = Api(srv.port, source="127.0.0.2"), Api(srv.port, source="127.0.0.3")
        for i in range(5):
            st, body = stranger.post("/api/v1/login", {"username": "admin", "password": f"wrong-{i}"}, token=False)
            assert st == 401, (i, st, body)
        st, payload, hdr = stranger.request("POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD},
                                            token=False, raw=True)
        assert st == 429 and hdr.get("retry-after") == "30", (st, payload, hdr)
        st, body = admin.post("/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=False)
        assert st == 200, (st, body)                               # the finding: was 429
        assert "from this address" in json.loads(payload)["error"]["message"]
        # the admin's success does not unlock the stranger
        st, _ = stranger.post("/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=False)
        assert st == 429
        assert "scope=name_address" in srv.log()
    finally:
        srv.stop()


def test_failed_logins_are_rate_limited_server_wide(h):
    """Per (name, address) alone, a guesser with many addresses (or one spraying
    names) would get five free guesses per pair.  Failures across all clients are
    capped: 20 at once, then 1 a second; past that every login answers 429 with
    Retry-After, the right password included, until the budget refills."""
    srv = Server(h).start()
    try:
        statuses, hdr, payload = [], {}, b""
        t0 = time.monotonic()
        for i in range(120):
            api = Api(srv.port, source=f"127.0.{1 + i // 200}.{10 + i % 200}")
            st, payload, hdr = api.request("POST", "/api/v1/login", {"username": f"guess-{i}", "password": "pw-x"},
                                           token=False, raw=True)
            statuses.append(st)
            if st == 429:
                break
        took = time.monotonic() - t0
        assert statuses[-1] == 429, (statuses, took)                 # the finding: 120 x 401
        assert statuses[:20] == [401] * 20, statuses
        # at most the burst plus what refilled while the guesses ran
        assert len(statuses) - 1 <= 20 + int(took) + 1, (len(statuses), took)
        assert "on this server" in json.loads(payload)["error"]["message"], payload
        wait = int(hdr["retry-after"])
        assert 1 <= wait <= 2, hdr
        st, _ = login(srv.port, "admin", ADMIN_PASSWORD, source="127.0.0.250")
        assert st == 429                                             # the price, documented
        time.sleep(wait + 0.2)
        st, _ = login(srv.port, "admin", ADMIN_PASSWORD, source="127.0.0.250")
        assert st == 200
        assert "scope=server" in srv.log()
    finally:
        srv.stop()


def cli_env(h, srv, token):
    env = {k: v for k, v in h.env.items() if k not in ("NBHUB_URL", "NBHUB_TOKEN", "NBHUB_HOME")}
    (h.tmp / "xdg").mkdir(exist_ok=True)
    env.update(XDG_CONFIG_HOME=str(h.tmp / "xdg"), NBHUB_URL=f"http://127.0.0.1:{srv.port}", NBHUB_TOKEN=token)
    return env


def test_cli_passwd_old_password_and_revoke_tokens(h):
    """`nbhub user passwd` through the API: one's own change reads the current
    password first (first line of stdin), --revoke-tokens revokes the tokens (the
    one used included); an admin changing someone else's sends no old password."""
    srv = Server(h).start()
    try:
        tok = add_user(srv, "alice", ALICE_PW)
        env = cli_env(h, srv, tok)
        r = h.run(["user", "passwd", "alice", "--password-stdin"], input="alice-password-2\n", env=env)
        assert r.rc != 0, r                                   # one line: no new password after the "current" one
        r = h.run(["user", "passwd", "alice", "--password-stdin"], input="wrong-password\nalice-password-2\n", env=env)
        assert r.rc == 5 and "old_password" in r.stderr, r
        r = h.run(["user", "passwd", "alice", "--password-stdin", "--revoke-tokens"],
                  input=f"{ALICE_PW}\nalice-password-2\n", env=env)
        assert r.rc == 0 and "tokens are revoked" in r.stdout, r
        assert Api(srv.port, tok).get("/api/v1/me")[0] == 401
        assert login(srv.port, "alice", "alice-password-2")[0] == 200
        # the admin: no current password asked for someone else's
        r = h.run(["user", "passwd", "alice", "--password-stdin"], input="alice-password-3\n",
                  env=cli_env(h, srv, srv.api.token))
        assert r.rc == 0 and r.stdout == "password of alice changed\n", r
        assert login(srv.port, "alice", "alice-password-3")[0] == 200
    finally:
        srv.stop()
