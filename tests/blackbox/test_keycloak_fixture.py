"""The Keycloak fixture itself (tests/blackbox/keycloak.py): the realm is what the SSO
tests rely on, and each admin helper does what it says, checked from the outside
(discovery, JWKS, tokens), not from the admin API's own answers."""
import base64
import hashlib
import json
import secrets
import urllib.parse

import requests

import keycloak as kcmod

REDIRECT = "http://127.0.0.1:1/auth/oidc/callback"


def claims(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def header(jwt):
    h = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def code_login(kc, user, redirect=REDIRECT):
    verifier, challenge = pkce()
    loc = kc.login(user, kc.authorize_url(redirect, state="st1", nonce="no1", code_challenge=challenge))
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
    assert loc.startswith(redirect + "?"), loc
    assert q["state"] == ["st1"], loc
    r = kc.token_by_code(q["code"][0], redirect, code_verifier=verifier)
    assert r.status_code == 200, r.text
    return r.json()


def test_discovery_and_login_with_pkce_gives_groups(keycloak):
    kc = keycloak
    d = kc.discovery()
    assert d["issuer"] == kc.issuer
    assert "device_authorization_endpoint" in d and "end_session_endpoint" in d
    assert d["backchannel_logout_supported"] is True
    for user, groups in (("alice", ["admins"]), ("bob", ["data"]), ("carol", [])):
        tok = code_login(kc, user)
        idt = claims(tok["id_token"])
        assert idt["iss"] == kc.issuer and idt["aud"] in ("nbhub", ["nbhub"]) and idt["nonce"] == "no1"
        assert idt["preferred_username"] == user
        assert idt.get("groups", []) == groups, idt
        at = claims(tok["access_token"])
        assert "nbhub" in (at["aud"] if isinstance(at["aud"], list) else [at["aud"]]), at
        assert tok.get("refresh_token")


def test_pkce_is_required_and_any_loopback_port_is_a_valid_redirect(keycloak):
    kc = keycloak
    # Without a code challenge Keycloak refuses before showing the login page.
    r = requests.get(kc.authorize_url(REDIRECT), allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "error=invalid_request" in r.headers["Location"], r.headers
    # Another port, same path: accepted (the nbhub under test listens on a random port).
    tok = code_login(kc, "bob", redirect="http://127.0.0.1:45678/auth/oidc/callback")
    assert claims(tok["id_token"])["preferred_username"] == "bob"
    # A foreign host is not.
    _, ch = pkce()
    r = requests.get(kc.authorize_url("http://evil.example/cb", code_challenge=ch), timeout=30)
    assert r.status_code == 400 and "Invalid parameter: redirect_uri" in r.text


def test_wrong_password_is_refused(keycloak):
    _, ch = pkce()
    try:
        keycloak.login("alice", keycloak.authorize_url(REDIRECT, code_challenge=ch), password="nope")
    except AssertionError as e:
        assert "Invalid username or password" in str(e)
    else:
        raise AssertionError("login with a wrong password went through")


def test_device_grant_for_the_cli_client(keycloak):
    kc = keycloak
    d = kc.discovery()
    r = requests.post(d["device_authorization_endpoint"], data={"client_id": kcmod.CLI_CLIENT_ID,
                                                                "scope": "openid"}, timeout=30)
    assert r.status_code == 200, r.text
    dev = r.json()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": dev["device_code"], "client_id": kcmod.CLI_CLIENT_ID}
    r = requests.post(d["token_endpoint"], data=poll, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "authorization_pending"
    kc.approve_device(dev["verification_uri_complete"], "alice")
    r = requests.post(d["token_endpoint"], data=poll, timeout=30)
    if r.status_code == 400 and r.json()["error"] == "slow_down":
        import time
        time.sleep(dev.get("interval", 5) + 1)
        r = requests.post(d["token_endpoint"], data=poll, timeout=30)
    assert r.status_code == 200, r.text
    at = claims(r.json()["access_token"])
    assert at["preferred_username"] == "alice" and at["azp"] == kcmod.CLI_CLIENT_ID
    assert "nbhub" in at["aud"] and at["groups"] == ["admins"]


def test_group_change_shows_in_the_next_token(keycloak):
    kc = keycloak
    kc.add_user_to_group("carol", "data")
    try:
        assert claims(code_login(kc, "carol")["id_token"])["groups"] == ["data"]
    finally:
        kc.remove_user_from_group("carol", "data")
    assert kc.user_groups("carol") == []
    assert claims(code_login(kc, "carol")["id_token"]).get("groups", []) == []


def test_set_backchannel_logout_url(keycloak):
    kc = keycloak
    kc.set_backchannel_logout_url("http://127.0.0.1:4321/auth/oidc/backchannel-logout")
    c = kc.client()
    assert c["attributes"]["backchannel.logout.url"] == "http://127.0.0.1:4321/auth/oidc/backchannel-logout"
    assert c["frontchannelLogout"] is False


def test_rotate_keys_changes_the_signing_kid(keycloak):
    kc = keycloak
    before = code_login(kc, "alice")
    old_kid = header(before["id_token"])["kid"]
    new_kid = kc.rotate_keys()
    assert new_kid != old_kid
    kids = {k["kid"]: k for k in kc.jwks()["keys"]}
    assert new_kid in kids and old_kid not in kids
    after = code_login(kc, "alice")
    assert header(after["id_token"])["kid"] == new_kid
    # And once more, keeping the previous key published for verification.
    newer = kc.rotate_keys(keep_old_for_verification=True)
    kids = {k["kid"] for k in kc.jwks()["keys"]}
    assert newer in kids and new_kid in kids
    assert header(code_login(kc, "bob")["id_token"])["kid"] == newer
