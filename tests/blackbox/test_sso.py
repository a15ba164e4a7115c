"""Single sign-on against a real Keycloak (the session fixture `keycloak`,
tests/blackbox/keycloak.py): the browser's code flow driven with plain HTTP
through Keycloak's own login form, the attacks it must stop (a state from
another browser, a replayed callback, a code spliced into another login, a
name collision, a user outside the allowed groups), groups -> admin and
profiles, sessions that follow the provider (refresh, removal from a group,
refusal of the refresh, back-channel logout), the logout URL, key rotation
and the provider's access tokens on /api/v1.  The unit side (config,
state, identities) is tests/unit/test_oidc.c; the browser's own run through
Keycloak's page is tests/browser/sso.test.mjs (test_sso_browser below).
"""
import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import NBHUB, wait_for
from nbserve import Server

kcmod = pytest.importorskip("keycloak")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def browser():
    """A requests.Session keeping Keycloak's cookies as a browser does (keycloak.py)."""
    return kcmod.browser_session()


def _config(kc, secret_file, **extra):
    oidc = {
        "issuer": kc.issuer, "client_id": "nbhub", "client_secret_file": str(secret_file),
        "admin_groups": ["admins"], "allowed_groups": ["admins", "data"],
        "accept_access_tokens": True, "audience": "nbhub", "display_name": "Keycloak",
        "cli_client_id": "nbhub-cli", "cli_scopes": ["openid", "profile"],
    }
    oidc.update(extra.pop("oidc", {}))
    cfg = {"auth": {"local": extra.pop("local", True), "oidc": oidc}}
    cfg.update(extra)
    return json.dumps(cfg)      # JSON is YAML


class Sso:
    """nbhub serve configured for the realm, and a browser-like client."""

    def __init__(self, h, kc, env=None, home=None, **extra):
        self.kc = kc
        secret = h.tmp / "oidc-secret"
        secret.write_text(kcmod.CLIENT_SECRET + "\n")
        os.chmod(secret, 0o600)
        self.cfg = h.tmp / "nbhub.yaml"
        self.cfg.write_text(_config(kc, secret, **extra))
        self.srv = Server(h, home=home, args=["--config", str(self.cfg)], env=env)

    def start(self):
        self.srv.start()
        wait_for(lambda: self.config()["ready"], 30)
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.srv.port}"

    def config(self):
        return requests.get(self.base + "/auth/oidc/config", timeout=10).json()

    def begin(self, s=None, nxt="/flows"):
        """GET /auth/oidc/login in browser s: the provider's URL (the state cookie is in s)."""
        s = s or browser()
        r = s.get(self.base + "/auth/oidc/login", params={"next": nxt}, allow_redirects=False, timeout=10)
        assert r.status_code == 302, (r.status_code, r.text, self.srv.log())
        return s, r

    def login(self, user, s=None, kc_session=None):
        """The whole code flow as user: (browser, the callback's response)."""
        s, r = self.begin(s)
        callback = self.kc.login(user, r.headers["Location"], session=kc_session or s)
        assert callback.startswith(self.base + "/auth/oidc/callback?"), callback
        r = s.get(callback, allow_redirects=False, timeout=30)
        return s, r

    def me(self, s):
        r = s.get(self.base + "/api/v1/me", timeout=10)
        return r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text)

    def db(self):
        return self.srv.db()


@pytest.fixture(scope="module")
def kc(keycloak):
    yield keycloak


@pytest.fixture
def sso(h, kc):
    s = Sso(h, kc).start()
    kc.set_backchannel_logout_url(s.base + "/auth/oidc/backchannel-logout")
    yield s
    s.srv.stop()
    for u in ("alice", "bob", "carol"):
        kc.logout_user(u)


def _claims(jwt):
    p = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


# ---- the code flow ---------------------------------------------------------------------

def test_login_with_code_flow_creates_the_user_from_the_provider(sso, kc):
    cfg = sso.config()
    assert cfg["enabled"] and cfg["local"] and cfg["display_name"] == "Keycloak", cfg
    assert cfg["cli_client_id"] == "nbhub-cli" and cfg["device_authorization_endpoint"], cfg
    assert cfg["cli_scopes"] == ["openid", "profile"], cfg
    s, r = sso.begin()
    loc = r.headers["Location"]
    q = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)
    assert loc.startswith(kc.discovery()["authorization_endpoint"] + "?"), loc
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43, q
    assert q["response_type"] == ["code"] and q["client_id"] == ["nbhub"], q
    assert q["redirect_uri"] == [sso.base + "/auth/oidc/callback"], q
    assert len(q["nonce"][0]) == 43 and len(q["state"][0]) == 43, q
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("nbhub_oidc=" + q["state"][0] + ";"), cookie
    for attr in ("Path=/auth/oidc", "Max-Age=600", "HttpOnly", "SameSite=Lax"):
        assert attr in cookie, cookie

    callback = kc.login("alice", loc, session=s)
    r = s.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"] == "/flows", (r.status_code, r.text, sso.srv.log())
    st, me = sso.me(s)
    assert st == 200 and me["name"] == "alice" and me["admin"] is True, (st, me)
    with sso.db() as db:
        u = db.execute("SELECT idp, idp_subject, password_hash FROM users WHERE name='alice'").fetchone()
        assert u["idp"] == kc.issuer and u["idp_subject"] == kc.user_id("alice") and u["password_hash"] is None
        sess = db.execute("SELECT id, idp_sid, id_token, refresh_token, idp_expires_at FROM sessions "
                          "WHERE user_id=(SELECT id FROM users WHERE name='alice')").fetchall()
        assert len(sess) == 1 and sess[0]["idp_sid"] and sess[0]["refresh_token"], dict(sess[0])
        assert _claims(_unseal(_seal_key(sso), sess[0]["id"], sess[0]["id_token"]))["sid"] == sess[0]["idp_sid"]
        assert sess[0]["idp_expires_at"] > time.time() * 1e6
        groups = [r[0] for r in db.execute(
            "SELECT g.name FROM group_members m JOIN groups g ON g.id=m.group_id "
            "JOIN users u ON u.id=m.user_id WHERE u.name='alice'")]
        assert groups == ["admins"], groups
    # the session writes with its CSRF token like a password login's
    r = s.post(sso.base + "/api/v1/users/alice/tokens", json={"name": "t"},
               headers={"X-CSRF-Token": me["csrf_token"]}, timeout=10)
    assert r.status_code == 201, r.text
    # a second login (the provider's SSO session: no form) is the same user
    s2, r = sso.login("alice", kc_session=s)
    assert r.status_code == 302, r.text
    with sso.db() as db:
        assert db.execute("SELECT count(*) FROM users WHERE name='alice'").fetchone()[0] == 1


def test_state_must_come_from_the_same_browser_and_works_once(sso, kc):
    # the attacker starts a login, gets a code for their own account and
    # sends the callback URL to a victim's browser: the victim has no
    # matching state cookie
    s, r = sso.begin()
    callback = kc.login("bob", r.headers["Location"], session=s)
    victim = browser()
    r = victim.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "not started in this browser" in r.text, r.text
    assert "nbhub_session" not in r.headers.get("Set-Cookie", "")
    # the victim started a login of their own: cookie present, but another state
    victim, _ = sso.begin(victim)
    r = victim.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "nbhub_session" not in r.headers.get("Set-Cookie", ""), r.text
    # tampered state in the right browser
    bad = re.sub(r"state=[^&]+", "state=" + "A" * 43, callback)
    r = s.get(bad, allow_redirects=False, timeout=30)
    assert r.status_code == 400, r.text
    # the state cookie is cleared by any callback: the genuine one now fails too
    r = s.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 400, r.text
    # a genuine login works, and its callback replayed is refused
    s, r0 = sso.begin()
    callback = kc.login("bob", r0.headers["Location"], session=s)
    r = s.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    s.cookies.set("nbhub_oidc", urllib.parse.parse_qs(urllib.parse.urlparse(callback).query)["state"][0],
                  domain="127.0.0.1", path="/auth/oidc")
    r = s.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "already used" in r.text, r.text


def test_a_code_spliced_into_another_login_is_refused(sso, kc):
    # login A's code presented with login B's state (B's cookie): the code
    # was issued for A's PKCE challenge and carries A's nonce
    s = browser()
    s, ra = sso.begin(s)
    callback_a = kc.login("bob", ra.headers["Location"], session=s)
    s, rb = sso.begin(s)
    state_b = urllib.parse.parse_qs(urllib.parse.urlparse(rb.headers["Location"]).query)["state"][0]
    spliced = re.sub(r"state=[^&]+", "state=" + state_b, callback_a)
    r = s.get(spliced, allow_redirects=False, timeout=30)
    assert r.status_code in (400, 403), (r.status_code, r.text)
    assert "nbhub_session" not in r.headers.get("Set-Cookie", "")
    assert "code exchange failed" in sso.srv.log() or "ID token" in sso.srv.log()


def test_name_collision_with_a_local_account_is_refused_not_merged(sso, kc):
    st, _ = sso.srv.api.post("/api/v1/users", {"name": "bob", "password": "local-bob-password"})
    assert st == 201
    s, r = sso.login("bob")
    assert r.status_code == 403 and "already exists" in r.text and "not merged" in r.text, r.text
    assert "nbhub_session" not in r.headers.get("Set-Cookie", "")
    with sso.db() as db:
        u = db.execute("SELECT idp, password_hash FROM users WHERE name='bob'").fetchone()
        assert u["idp"] is None and u["password_hash"], dict(u)
        assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1   # the admin's own


def test_user_outside_the_allowed_groups_is_refused(sso, kc):
    s, r = sso.login("carol")
    assert r.status_code == 403 and "not in a group allowed" in r.text, r.text
    with sso.db() as db:
        assert db.execute("SELECT count(*) FROM users WHERE name='carol'").fetchone()[0] == 0


def test_groups_decide_admin_and_profiles(h, kc):
    extra = {"hub": {"profiles": [
        {"name": "everyone", "command": ["/bin/true", "{port}"]},
        {"name": "spark", "command": ["/bin/true", "{port}"], "allow": {"groups": ["spark-users"], "admins": False}},
    ]}, "oidc": {"profile_groups": {"data": "spark-users"}}}
    sso = Sso(h, kc, **extra).start()
    try:
        sb, r = sso.login("bob")
        assert r.status_code == 302, r.text
        st, me = sso.me(sb)
        assert me["admin"] is False
        names = [p["name"] for p in sb.get(sso.base + "/api/v1/profiles", timeout=10).json()["profiles"]]
        assert names == ["everyone", "spark"], names
        sa, r = sso.login("alice")
        st, me = sso.me(sa)
        assert me["admin"] is True
        names = [p["name"] for p in sa.get(sso.base + "/api/v1/profiles", timeout=10).json()["profiles"]]
        assert names == ["everyone"], names
        # alice leaves admins and joins data at the provider: her next login says so
        kc.remove_user_from_group("alice", "admins")
        kc.add_user_to_group("alice", "data")
        kc.logout_user("alice")
        sa, r = sso.login("alice")
        assert r.status_code == 302, r.text
        st, me = sso.me(sa)
        assert me["admin"] is False, me
        names = [p["name"] for p in sa.get(sso.base + "/api/v1/profiles", timeout=10).json()["profiles"]]
        assert names == ["everyone", "spark"], names
    finally:
        kc.remove_user_from_group("alice", "data")
        kc.add_user_to_group("alice", "admins")
        sso.srv.stop()


FAKE_SERVER = r'''
import http.server, json, os, sys
port, base = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"uid": os.getuid()}).encode()
        self.send_response(200 if self.path.startswith(base) else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="isolation: system needs root")
def test_server_of_an_sso_user_runs_as_that_user(h, kc):
    import pwd
    import tempfile
    home = Path(tempfile.mkdtemp(prefix="nbhub-sso-", dir="/tmp"))
    os.chmod(home, 0o711)
    script = home / "fake_server.py"
    script.write_text(FAKE_SERVER)
    os.chmod(script, 0o644)
    extra = {"isolation": "system", "create_system_users": True,
             "hub": {"profiles": [{"name": "fake", "command": ["/usr/bin/python3", str(script), "{port}",
                                                               "{base_url}"]}]}}
    sso = Sso(h, kc, env={"NBHUB_ISOLATION": ""}, home=home / "home", **extra).start()
    try:
        s, r = sso.login("bob")
        assert r.status_code == 302, r.text
        st, me = sso.me(s)
        r = s.post(sso.base + "/api/v1/servers", json={"profile": "fake"},
                   headers={"X-CSRF-Token": me["csrf_token"]}, timeout=30)
        assert r.status_code in (201, 202), r.text
        srv = wait_for(lambda: (lambda j: j if j["state"] in ("running", "failed") else None)(
            s.get(sso.base + "/api/v1/servers/bob/default", timeout=10).json()), 60)
        assert srv and srv["state"] == "running", (srv, sso.srv.log())
        acct = pwd.getpwnam("nbhub-bob")
        assert os.stat(f"/proc/{srv['pid']}").st_uid == acct.pw_uid
        r = s.get(sso.base + "/user/bob/api/x", timeout=10)     # through the proxy, with the SSO session
        assert r.status_code == 200 and r.json()["uid"] == acct.pw_uid, (r.status_code, r.text)
        s.delete(sso.base + "/api/v1/servers/bob/default", headers={"X-CSRF-Token": me["csrf_token"]}, timeout=30)
    finally:
        sso.srv.stop()
        subprocess.run(["userdel", "-r", "nbhub-bob"], capture_output=True)


# ---- sessions follow the provider ----------------------------------------------------------

@pytest.fixture
def short_tokens(kc):
    """Access tokens of 10 s: nbhub refreshes sessions within seconds."""
    kc.set_realm(accessTokenLifespan=10)
    yield
    kc.set_realm(accessTokenLifespan=300)


def test_refresh_keeps_the_session_and_follows_group_removal(sso, kc, short_tokens):
    s, r = sso.login("bob")
    assert r.status_code == 302, r.text
    with sso.db() as db:
        first = db.execute("SELECT id_token, idp_expires_at FROM sessions WHERE idp_sid IS NOT NULL").fetchone()
    # refreshed before the tokens expire, the session goes on
    wait_for(lambda: _session_tokens(sso)[0] != first["id_token"], 30)
    assert sso.me(s)[0] == 200
    # bob leaves the allowed group at the provider: the next refresh ends the session
    kc.remove_user_from_group("bob", "data")
    try:
        assert wait_for(lambda: sso.me(s)[0] == 401, 30), sso.srv.log()
        assert "not in a group allowed" in sso.srv.log()
    finally:
        kc.add_user_to_group("bob", "data")


def _session_tokens(sso):
    with sso.db() as db:
        row = db.execute("SELECT id_token, refresh_token FROM sessions WHERE idp_sid IS NOT NULL").fetchone()
    return (row["id_token"], row["refresh_token"]) if row else (None, None)


def test_refresh_refused_by_the_provider_ends_the_session(sso, kc, short_tokens):
    # no back-channel this time: nbhub learns at its next refresh
    kc.set_backchannel_logout_url("")
    s, r = sso.login("bob")
    assert r.status_code == 302
    kc.logout_user("bob")
    assert wait_for(lambda: sso.me(s)[0] == 401, 30), sso.srv.log()
    assert "the provider ended the session" in sso.srv.log()


def test_backchannel_logout_ends_the_session_at_once(sso, kc):
    s, r = sso.login("bob")
    s2, r2 = sso.login("alice")
    assert sso.me(s)[0] == 200 and sso.me(s2)[0] == 200
    kc.logout_user("bob")                       # Keycloak posts a logout token to nbhub
    assert wait_for(lambda: sso.me(s)[0] == 401, 10), sso.srv.log()
    assert sso.me(s2)[0] == 200                 # alice's session is another sid
    assert "back-channel logout" in sso.srv.log()
    # forged or missing logout tokens are refused per the spec
    url = sso.base + "/auth/oidc/backchannel-logout"
    assert requests.post(url, data={}, timeout=10).status_code == 400
    (row,) = _sessions(sso, "alice")
    id_token = _unseal(_seal_key(sso), row["id"], row["id_token"])      # sealed at rest
    r = requests.post(url, data={"logout_token": id_token}, timeout=10)   # an ID token is not one
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert sso.me(s2)[0] == 200


def test_logout_answers_the_providers_end_session_url(sso, kc):
    s, r = sso.login("alice")
    st, me = sso.me(s)
    r = s.post(sso.base + "/api/v1/logout", headers={"X-CSRF-Token": me["csrf_token"]}, timeout=10)
    assert r.status_code == 200, r.text
    url = r.json()["logout_url"]
    q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert url.startswith(kc.discovery()["end_session_endpoint"] + "?"), url
    assert q["post_logout_redirect_uri"] == [sso.base + "/login"] and q["client_id"] == ["nbhub"], q
    assert _claims(q["id_token_hint"][0])["preferred_username"] == "alice"
    assert sso.me(s)[0] == 401                   # nbhub's session is gone already
    assert kc.user_sessions("alice")             # the provider's not yet
    r = s.get(url, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"].startswith(sso.base + "/login"), (r.status_code, r.text)
    assert kc.user_sessions("alice") == []
    # the next "log in" shows Keycloak's form again instead of logging straight in
    s, r = sso.begin(s)
    page = s.get(r.headers["Location"], timeout=30)
    assert "kc-form-login" in page.text
    # a password login's logout keeps today's answer
    cookie, csrf = _password_login(sso)
    r = requests.post(sso.base + "/api/v1/logout", headers={"Cookie": cookie, "X-CSRF-Token": csrf}, timeout=10)
    assert r.status_code == 204


def _password_login(sso):
    r = requests.post(sso.base + "/api/v1/login", json={"username": "admin", "password": "admin-password-123"},
                      timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["Set-Cookie"].split(";")[0], r.json()["csrf_token"]


def test_key_rotation_is_picked_up_without_restart(h, kc):
    sso = Sso(h, kc, oidc={"jwks_cooldown": "2s"}).start()
    try:
        s, r = sso.login("alice")
        assert r.status_code == 302
        old_kid = kc.active_kid()
        new_kid = kc.rotate_keys()          # the old key is gone from the JWKS
        assert new_kid != old_kid
        kc.logout_user("alice")
        time.sleep(2.5)                     # past the cool-down of the first fetch
        s, r = sso.login("alice")
        assert r.status_code == 302, (r.text, sso.srv.log())
        with sso.db() as db:
            row = db.execute("SELECT id, id_token FROM sessions WHERE idp_sid IS NOT NULL "
                             "ORDER BY id DESC").fetchone()
        tok = _unseal(_seal_key(sso), row["id"], row["id_token"])     # sealed at rest
        header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
        assert header["kid"] == new_kid
        # a burst of tokens naming unknown keys costs the provider one fetch per cool-down
        fake = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": "nope"}).encode()).rstrip(b"=").decode()
        for i in range(20):
            r = requests.get(sso.base + "/api/v1/me", timeout=10,
                             headers={"Authorization": f"Bearer {fake}.e30.c2ln{i}"})
            assert r.status_code == 401
        assert sso.srv.log().count("fetching the provider's keys") <= 2, sso.srv.log()
    finally:
        sso.srv.stop()


# ---- access tokens, local logins, an unreachable provider --------------------------------------

def _provider_tokens(kc, user, redirect):
    """A code flow the test does itself as client nbhub (PKCE): the provider's token answer."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = kc.authorize_url(redirect, code_challenge=challenge)
    cb = kc.login(user, url, session=browser())
    code = urllib.parse.parse_qs(urllib.parse.urlparse(cb).query)["code"][0]
    r = requests.post(kc.discovery()["token_endpoint"], timeout=30, auth=("nbhub", kcmod.CLIENT_SECRET),
                      data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                            "code_verifier": verifier})
    r.raise_for_status()
    return r.json()


def test_provider_access_token_is_an_api_credential(sso, kc):
    toks = _provider_tokens(kc, "bob", sso.base + "/elsewhere")
    hdr = {"Authorization": "Bearer " + toks["access_token"]}
    r = requests.get(sso.base + "/api/v1/me", headers=hdr, timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "bob", (r.status_code, r.text, sso.srv.log())
    with sso.db() as db:      # created as at a login
        assert db.execute("SELECT idp FROM users WHERE name='bob'").fetchone()[0] == kc.issuer
    # no CSRF header needed: a page of another site cannot set Authorization
    r = requests.post(sso.base + "/api/v1/users/bob/tokens", json={"name": "cli"}, headers=hdr, timeout=10)
    assert r.status_code == 201, r.text
    # tampered, an ID token (aud nbhub too, but not an access token), garbage: 401
    t = toks["access_token"].split(".")
    claims = _claims(toks["access_token"])
    claims["preferred_username"] = "alice"
    forged = t[0] + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + t[2]
    for bad in (forged, toks["id_token"], "a.b.c"):
        r = requests.get(sso.base + "/api/v1/me", headers={"Authorization": "Bearer " + bad}, timeout=10)
        assert r.status_code == 401, (r.status_code, r.text)


def test_local_false_turns_password_login_off(h, kc):
    sso = Sso(h, kc, local=False)
    with pytest.raises(AssertionError):
        sso.srv.start()               # its admin_token() needs the password login
    try:
        assert sso.srv.port
        r = requests.post(f"http://127.0.0.1:{sso.srv.port}/api/v1/login",
                          json={"username": "admin", "password": "admin-password-123"}, timeout=30)
        assert r.status_code == 403 and "single sign-on" in r.text, r.text
        assert requests.get(f"http://127.0.0.1:{sso.srv.port}/auth/oidc/config", timeout=10).json()["local"] is False
        # the break-glass: a token made on the server itself still works
        out = subprocess.run([NBHUB, "user", "token", "admin", "--home", str(sso.srv.home)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        r = requests.get(f"http://127.0.0.1:{sso.srv.port}/api/v1/me",
                         headers={"Authorization": "Bearer " + out.stdout.strip()}, timeout=10)
        assert r.status_code == 200 and r.json()["name"] == "admin"
    finally:
        sso.srv.stop()


def test_provider_down_at_start_keeps_local_logins_and_retries(h, kc):
    # the issuer's port has nothing listening yet
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]

    class Down:
        issuer = f"http://127.0.0.1:{port}/realms/nbhub"

    sso = Sso(h, Down())
    sso.srv.start()
    try:
        assert sso.config()["ready"] is False
        r = requests.get(sso.base + "/auth/oidc/login", allow_redirects=False, timeout=10)
        assert r.status_code == 503, r.text
        _password_login(sso)               # local logins are served meanwhile
        assert wait_for(lambda: sso.srv.log().count("oidc: discovery failed") >= 2, 20), sso.srv.log()
    finally:
        sso.srv.stop()


def test_discovery_for_another_issuer_is_not_trusted(h, kc):
    # a server that is not the configured issuer hands out the real
    # provider's document (the real issuer, the real keys): not trusted
    import http.server
    import threading
    doc = json.dumps(kc.discovery()).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)

        def log_message(self, *a):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=evil.serve_forever, daemon=True).start()

    class Other:
        issuer = f"http://127.0.0.1:{evil.server_address[1]}/realms/nbhub"

    sso = Sso(h, Other())
    sso.srv.start()
    try:
        assert wait_for(lambda: "not the configured" in sso.srv.log(), 20), sso.srv.log()
        assert sso.config()["ready"] is False
        assert requests.get(sso.base + "/auth/oidc/login", allow_redirects=False, timeout=10).status_code == 503
    finally:
        sso.srv.stop()
        evil.shutdown()


# ---- a real browser through Keycloak's page -----------------------------------------------------

def test_sso_in_chromium(h, kc):
    from test_ui_browser import ARTIFACTS, BROWSER_DIR, CHROMIUM
    if not (BROWSER_DIR / "node_modules" / "playwright-core").exists():
        pytest.skip("playwright-core not installed (scripts/install-deps.sh runs npm ci)")
    assert os.path.exists(CHROMIUM), "Debian's chromium is not installed"
    sso = Sso(h, kc).start()
    kc.set_backchannel_logout_url(sso.base + "/auth/oidc/backchannel-logout")
    artifacts = ARTIFACTS / "sso"
    if artifacts.exists():
        import shutil
        shutil.rmtree(artifacts)
    artifacts.mkdir(parents=True)
    try:
        env = dict(h.env, NBHUB_URL=sso.base, NBHUB_SSO_USER="alice",
                   NBHUB_SSO_PASSWORD=kcmod.PASSWORDS["alice"], NBHUB_SHOTS=str(artifacts), CHROMIUM=CHROMIUM)
        p = h.popen(["node", "--test", "--test-reporter=spec", "--test-concurrency=1",
                     str(BROWSER_DIR / "sso.test.mjs")], exe="/usr/bin/env", env=env, cwd=BROWSER_DIR)
        r = h.finish(p, timeout=300)
        assert r.rc == 0, (f"browser tests failed:\n{r.stdout[-12000:]}\n{r.stderr[-4000:]}\n"
                           f"--- server ---\n{sso.srv.log()}")
        assert kc.user_sessions("alice") == []
    finally:
        sso.srv.stop()
        kc.logout_user("alice")


# ---- provider tokens at rest, and tokens minted through the provider ----------------------------

def _seal_key(sso):
    """The key nbhub seals provider tokens with ($NBHUB_HOME/secrets/seal.key, src/auth/seal.c)."""
    path = sso.srv.home / "secrets" / "seal.key"
    assert path.exists(), "no seal key: provider tokens are kept in clear"
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    return bytes.fromhex(path.read_text().strip())


def _unseal(key, session_id, value):
    """A sealed column value ("nbs1." + base64url(nonce || ciphertext || tag)) opened for its row."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    assert value.startswith("nbs1."), value[:12]
    raw = base64.urlsafe_b64decode(value[5:] + "=" * (-len(value[5:]) % 4))
    return AESGCM(key).decrypt(raw[:12], raw[12:], f"sessions/{session_id}".encode()).decode()


def _db_bytes(sso):
    """Every byte nbhub's database keeps on disk: the file, its WAL and shared memory."""
    home = sso.srv.home
    return b"".join(p.read_bytes() for p in (home / "nbhub.db", home / "nbhub.db-wal", home / "nbhub.db-shm")
                    if p.exists())


def _sessions(sso, user):
    with sso.db() as db:
        return [dict(r) for r in db.execute(
            "SELECT s.id, s.idp_sid, s.id_token, s.refresh_token FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE u.name = ? AND s.idp_sid IS NOT NULL ORDER BY s.id", (user,))]


def _write_db(sso, sql, args):
    import sqlite3
    c = sqlite3.connect(sso.srv.home / "nbhub.db", timeout=10)
    with c:
        c.execute(sql, args)
    c.close()


def test_provider_tokens_are_sealed_at_rest(sso, kc, short_tokens):
    """A copy of nbhub.db holds no usable provider token: the refresh and ID tokens Keycloak
    issued are sealed (AES-256-GCM) under a key beside the database, refresh still works, and a
    sealed value moved into another session's row does not open there (that session ends; on
    main the row would have refreshed with the other session's token)."""
    s1, r = sso.login("bob")
    assert r.status_code == 302, r.text
    (row,) = _sessions(sso, "bob")
    # The tokens Keycloak issued (opened with the key if they are sealed, as on main they are not).
    key = _seal_key(sso) if row["refresh_token"].startswith("nbs1.") else None
    rt, it = ((_unseal(key, row["id"], row["refresh_token"]), _unseal(key, row["id"], row["id_token"])) if key
              else (row["refresh_token"], row["id_token"]))
    assert _claims(rt)["typ"] == "Refresh" and _claims(it)["preferred_username"] == "bob"
    disk = _db_bytes(sso)
    for secret in (rt, it, rt.split(".")[1], rt.split(".")[2], it.split(".")[2]):
        assert secret.encode() not in disk, "a provider token is in nbhub.db in clear"
    assert key and key not in disk and key.hex().encode() not in disk

    # Refresh goes on (10 s tokens): new values, sealed again, still not on disk in clear.
    wait_for(lambda: _sessions(sso, "bob")[0]["refresh_token"] != row["refresh_token"], 30)
    assert sso.me(s1)[0] == 200, sso.srv.log()
    (row2,) = _sessions(sso, "bob")
    rt2 = _unseal(key, row2["id"], row2["refresh_token"])
    assert _claims(rt2)["typ"] == "Refresh"
    assert rt2.encode() not in _db_bytes(sso)

    # A second login of bob's (another provider session); its row gets the first one's sealed
    # refresh token copied in: it does not open there, and the session ends at its refresh.
    s2, r = sso.login("bob", kc_session=browser())
    assert r.status_code == 302
    first, second = _sessions(sso, "bob")
    assert first["idp_sid"] != second["idp_sid"]
    for _ in range(3):      # again if a refresh in flight wrote over the copy
        _write_db(sso, "UPDATE sessions SET refresh_token = ?, idp_expires_at = 1 WHERE id = ?",
                  (first["refresh_token"], second["id"]))
        if wait_for(lambda: sso.me(s2)[0] == 401, 10):
            break
    assert sso.me(s2)[0] == 401, sso.srv.log()
    assert "do not open" in sso.srv.log()
    assert sso.me(s1)[0] == 200              # the first session's own row is untouched


def test_clear_tokens_of_an_older_nbhub_are_sealed_at_start(sso, kc):
    """Values an nbhub before sealing wrote in clear keep working: sealed in place at start."""
    s, r = sso.login("alice")
    assert r.status_code == 302
    (row,) = _sessions(sso, "alice")
    key = _seal_key(sso)
    rt, it = _unseal(key, row["id"], row["refresh_token"]), _unseal(key, row["id"], row["id_token"])
    sso.srv.stop()
    _write_db(sso, "UPDATE sessions SET refresh_token = ?, id_token = ? WHERE id = ?", (rt, it, row["id"]))
    sso.start()
    (again,) = _sessions(sso, "alice")
    assert again["refresh_token"].startswith("nbs1.") and again["id_token"].startswith("nbs1."), again
    assert _unseal(key, row["id"], again["refresh_token"]) == rt
    assert "sealed now" in sso.srv.log()
    assert sso.me(s)[0] == 200
    # the logout still gets its id_token_hint
    st, me = sso.me(s)
    r = s.post(sso.base + "/api/v1/logout", headers={"X-CSRF-Token": me["csrf_token"]}, timeout=10)
    assert r.status_code == 200 and "id_token_hint=" in r.json()["logout_url"], r.text


def test_tokens_minted_with_a_provider_token_end_with_its_session(sso, kc):
    """An nbhub token made with the provider's access token carries its provider session: a
    back-channel logout of that session revokes it, and the access token itself (still within
    its lifetime) is refused from then on, so it cannot mint another."""
    toks = _provider_tokens(kc, "bob", sso.base + "/elsewhere")
    hdr = {"Authorization": "Bearer " + toks["access_token"]}
    r = requests.post(sso.base + "/api/v1/users/bob/tokens", json={"name": "cli"}, headers=hdr, timeout=10)
    assert r.status_code == 201, (r.text, sso.srv.log())
    minted = {"Authorization": "Bearer " + r.json()["token"]}
    # JupyterHub's token API minting with it: the same
    r = requests.post(sso.base + "/hub/api/users/bob/tokens", json={"note": "hub"}, headers=hdr, timeout=10)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    minted_hub = {"Authorization": "Bearer " + r.json()["token"]}
    # a token bob makes himself with that one is an ordinary token: it stays
    r = requests.post(sso.base + "/api/v1/users/bob/tokens", json={"name": "own"}, headers=minted, timeout=10)
    assert r.status_code == 201
    own = {"Authorization": "Bearer " + r.json()["token"]}
    assert requests.get(sso.base + "/api/v1/me", headers=minted, timeout=10).status_code == 200
    kc.logout_user("bob")                       # Keycloak posts a logout token naming the sid
    assert wait_for(lambda: requests.get(sso.base + "/api/v1/me", headers=minted, timeout=10).status_code == 401,
                    10), sso.srv.log()
    assert "tokens of an ended provider session revoked" in sso.srv.log()
    assert requests.get(sso.base + "/api/v1/me", headers=minted_hub, timeout=10).status_code == 401
    r = requests.get(sso.base + "/api/v1/me", headers=hdr, timeout=10)
    assert r.status_code == 401, r.text
    r = requests.post(sso.base + "/api/v1/users/bob/tokens", json={"name": "again"}, headers=hdr, timeout=10)
    assert r.status_code == 401, r.text
    assert requests.get(sso.base + "/api/v1/me", headers=own, timeout=10).status_code == 200
    # another login of bob's is another provider session: its tokens work
    toks = _provider_tokens(kc, "bob", sso.base + "/elsewhere")
    r = requests.get(sso.base + "/api/v1/me", headers={"Authorization": "Bearer " + toks["access_token"]},
                     timeout=10)
    assert r.status_code == 200, r.text
