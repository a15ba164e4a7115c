"""`nbhub login --server URL` (src/cli/cmd_login.c, docs/sso.md "The command line"):
the device authorization grant against the real Keycloak of the `keycloak` fixture,
the user confirming in "a browser" (Keycloak's own pages over plain HTTP), then an
nbhub API token made with the provider's access token and kept in the config file
the other commands read."""
import json
import os
import re
import select
import stat
import subprocess
import time

import pytest

import keycloak as kcmod
from conftest import NBHUB
from nbserve import Api, Server


def sso_server(h, kc, cli_client="nbhub-cli", accept_access_tokens=True):
    secret = h.tmp / "oidc-secret"
    secret.write_text(kcmod.CLIENT_SECRET + "\n")
    secret.chmod(0o600)
    srv = Server(h)
    conf = (f"auth:\n"
            f"  oidc:\n"
            f"    issuer: {kc.issuer}\n"
            f"    client_id: {kcmod.CLIENT_ID}\n"
            f"    client_secret_file: {secret}\n"
            f"    accept_access_tokens: {'true' if accept_access_tokens else 'false'}\n"
            f"    audience: nbhub\n"
            f"    admin_groups: [admins]\n")
    if cli_client:
        conf += f"    cli_client_id: {cli_client}\n"
    (srv.home / "nbhub.yaml").write_text(conf)
    srv.start()
    deadline = time.monotonic() + 30
    while True:
        st, cfg = Api(srv.port).get("/auth/oidc/config", token=False)
        if st == 200 and cfg.get("ready"):
            return srv
        assert time.monotonic() < deadline, (st, cfg, srv.log())
        time.sleep(0.2)


def cli_env(h):
    env = dict(h.env)
    for k in ("NBHUB_URL", "NBHUB_TOKEN", "XDG_CONFIG_HOME"):
        env.pop(k, None)
    home = h.tmp / "cli-home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    return env


def start_login(h, port, env, *extra):
    """Run `nbhub login` and read its stderr until it shows the verification address."""
    p = h.popen(["login", "--server", f"http://127.0.0.1:{port}", *extra],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    err = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stderr], [], [], 0.5)
        if r:
            chunk = os.read(p.stderr.fileno(), 4096)
            if not chunk:
                break
            err += chunk
            m = re.search(rb"(http://\S+user_code=\S+)\s.*?code (\S+)\.", err, re.S)
            if m:
                return p, m.group(1).decode(), m.group(2).decode(), err
    p.kill()
    raise AssertionError(f"nbhub login showed no verification address: {err.decode(errors='replace')}")


def finish(p, err, timeout=60):
    out, rest = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), (err + rest).decode(errors="replace")


def test_device_login_gives_a_token_the_other_commands_use(h, keycloak):
    srv = sso_server(h, keycloak)
    env = cli_env(h)
    p, url, code, err = start_login(h, srv.port, env)
    assert url.startswith(keycloak.issuer + "/device?user_code=")
    assert url.endswith(code)
    keycloak.approve_device(url, "alice")
    rc, out, err = finish(p, err)
    assert rc == 0, (out, err, srv.log())
    assert f"Logged in to http://127.0.0.1:{srv.port} as alice" in out

    conf = h.tmp / "cli-home" / ".config" / "nbhub" / "config.yaml"
    st = conf.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(conf.parent.stat().st_mode) == 0o700
    text = conf.read_text()
    token = re.search(r'^token: "(nbh_[^"]+)"$', text, re.M).group(1)
    assert f'url: "http://127.0.0.1:{srv.port}"' in text
    # Nothing of the provider's tokens in the file or on the terminal.
    assert "eyJ" not in text and "eyJ" not in out + err and token not in out + err

    # An ordinary nbhub token of alice (an admin through the admins group), named after the login.
    st, me = Api(srv.port, token).get("/api/v1/me")
    assert st == 200 and me["name"] == "alice" and me["admin"] is True, me
    st, toks = Api(srv.port, token).get("/api/v1/users/alice/tokens")
    toks = toks["tokens"]
    assert st == 200 and any(t["name"].startswith("nbhub login on ") and t["expires_at"] for t in toks), toks

    # The other commands find server and token in the config file.
    r = subprocess.run([NBHUB, "runs", "list"], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def test_device_login_token_ends_with_the_provider_session(h, keycloak):
    """The token `nbhub login` mints carries the provider session of the device grant: when the
    provider ends that session (an admin logs the user out in Keycloak, which posts a logout
    token to the back-channel URL of `nbhub login`'s client), the token gets 401.  On a build
    where it did not follow the provider, it lived on until its expiry (7 days)."""
    srv = sso_server(h, keycloak)
    url_bc = f"http://127.0.0.1:{srv.port}/auth/oidc/backchannel-logout"
    keycloak.set_backchannel_logout_url(url_bc, client_id=kcmod.CLI_CLIENT_ID)
    try:
        env = cli_env(h)
        p, url, _, err = start_login(h, srv.port, env, "--print-token")
        keycloak.approve_device(url, "carol")
        rc, out, err = finish(p, err)
        assert rc == 0, (out, err, srv.log())
        token = out.strip()
        assert Api(srv.port, token).get("/api/v1/me")[0] == 200
        assert keycloak.user_sessions("carol")      # the device login's provider session
        keycloak.logout_user("carol")
        deadline = time.monotonic() + 15
        while Api(srv.port, token).get("/api/v1/me")[0] != 401:
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        assert "tokens of an ended provider session revoked" in srv.log()
    finally:
        keycloak.set_backchannel_logout_url("", client_id=kcmod.CLI_CLIENT_ID)


def test_device_login_denied_at_the_provider(h, keycloak):
    srv = sso_server(h, keycloak)
    env = cli_env(h)
    p, url, _, err = start_login(h, srv.port, env)
    keycloak.approve_device(url, "bob", accept=False)
    rc, out, err = finish(p, err)
    assert rc == 5, (out, err)
    assert "denied" in err
    assert not (h.tmp / "cli-home" / ".config" / "nbhub" / "config.yaml").exists()


def test_print_token_for_scripts_and_bob_is_no_admin(h, keycloak):
    srv = sso_server(h, keycloak)
    env = cli_env(h)
    p, url, _, err = start_login(h, srv.port, env, "--print-token", "--expires-in", "10m",
                                 "--name", "ci job")
    keycloak.approve_device(url, "bob")
    rc, out, err = finish(p, err)
    assert rc == 0, (out, err)
    token = out.strip()
    assert re.fullmatch(r"nbh_[A-Za-z0-9_-]{43}", token), out
    st, me = Api(srv.port, token).get("/api/v1/me")
    assert st == 200 and me["name"] == "bob" and me["admin"] is False, me
    st, toks = Api(srv.port, token).get("/api/v1/users/bob/tokens")
    toks = toks["tokens"]
    assert [t["name"] for t in toks] == ["ci job"], toks
    assert not (h.tmp / "cli-home" / ".config" / "nbhub" / "config.yaml").exists()


def test_server_without_a_cli_client_says_so(h, keycloak):
    srv = sso_server(h, keycloak, cli_client=None)
    r = subprocess.run([NBHUB, "login", "--server", f"http://127.0.0.1:{srv.port}"], env=cli_env(h),
                       capture_output=True, timeout=60)
    assert r.returncode == 7 and b"cli_client_id" in r.stderr, r.stderr


def test_server_without_sso(h):
    srv = Server(h).start()
    r = subprocess.run([NBHUB, "login", "--server", f"http://127.0.0.1:{srv.port}"], env=cli_env(h),
                       capture_output=True, timeout=60)
    assert r.returncode == 7 and b"single sign-on" in r.stderr, r.stderr


def test_login_usage(h):
    r = subprocess.run([NBHUB, "login", "--expires-in", "0", "--server", "http://127.0.0.1:1"],
                       env=cli_env(h), capture_output=True, timeout=30)
    assert r.returncode == 2 and b"--expires-in" in r.stderr
    r = subprocess.run([NBHUB, "login", "--help"], env=cli_env(h), capture_output=True, timeout=30)
    assert r.returncode == 0 and b"device" in r.stdout


# ---------------------------------------------------------------- what the CLI sends and shows
#
# Keycloak cannot be made to answer slow_down on demand or to send terminal escapes, and it
# does not show what headers it received; a small recording server in the test plays nbhub
# and the provider here (the real ones are above).

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVIL_CODE = "AB\x1b[31mCD"
EVIL_URI_TAIL = "?user_code=x\x1b]0;owned\x07"


class _Recorder(BaseHTTPRequestHandler):
    log = None       # [(time, method, path, headers, body)]
    polls = 0

    def log_message(self, *a):
        pass

    def _json(self, status, obj):
        b = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def _record(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        type(self).log.append((time.monotonic(), self.command, self.path, dict(self.headers), body))
        return body

    def do_GET(self):
        self._record()
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/auth/oidc/config":
            return self._json(200, {"enabled": True, "issuer": base + "/idp", "cli_client_id": "cli",
                                    "cli_scopes": ["openid", "api://nbhub/access"],
                                    "device_authorization_endpoint": base + "/idp/device",
                                    "token_endpoint": base + "/idp/token"})
        if self.path == "/api/v1/me":
            if self.headers.get("Authorization") != "Bearer eyJ.provider.at":
                return self._json(401, {"error": {"code": "unauthorized", "message": "no"}})
            return self._json(200, {"name": "alice", "admin": False})
        self._json(404, {})

    def do_POST(self):
        self._record()
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/idp/device":
            return self._json(200, {"device_code": "dc", "user_code": EVIL_CODE,
                                    "verification_uri": base + "/idp/device",
                                    "verification_uri_complete": base + "/idp/device" + EVIL_URI_TAIL,
                                    "expires_in": 60, "interval": 1})
        if self.path == "/idp/token":
            cls = type(self)
            cls.polls += 1
            if cls.polls == 1:
                return self._json(400, {"error": "slow_down"})
            if cls.polls == 2:
                return self._json(400, {"error": "authorization_pending"})
            return self._json(200, {"access_token": "eyJ.provider.at", "token_type": "Bearer"})
        if self.path == "/api/v1/users/alice/tokens":
            if self.headers.get("Authorization") != "Bearer eyJ.provider.at":
                return self._json(401, {"error": {"code": "unauthorized", "message": "no"}})
            return self._json(201, {"id": 1, "name": "x", "token": "nbh_" + "N" * 43})
        self._json(404, {})


def test_login_keeps_nbhub_credentials_from_the_provider_and_escapes_from_the_terminal(h):
    """The provider gets no Authorization header even when NBHUB_TOKEN and a config file hold
    tokens; nbhub gets only the provider's token; slow_down slows the polling for good; the
    provider's strings reach the terminal without their control characters."""
    _Recorder.log, _Recorder.polls = [], 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        env = cli_env(h)
        env["NBHUB_TOKEN"] = "nbh_" + "E" * 43
        conf = h.tmp / "cli-home" / ".config" / "nbhub"
        conf.mkdir(parents=True)
        conf.chmod(0o700)
        (conf / "config.yaml").write_text('url: "http://127.0.0.1:1"\ntoken: "nbh_' + "F" * 43 + '"\n')
        (conf / "config.yaml").chmod(0o600)
        r = subprocess.run([NBHUB, "login", "--server", f"http://127.0.0.1:{httpd.server_port}"], env=env,
                           capture_output=True, timeout=90)
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, (err, r.stdout)
    log = _Recorder.log
    for _, method, path, headers, body in log:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization")
        if path.startswith("/idp/") or path == "/auth/oidc/config":
            assert auth is None, (path, auth)
        else:
            assert auth == "Bearer eyJ.provider.at", (path, auth)
    device = [b for _, m, p, _, b in log if p == "/idp/device"][0]
    assert "scope=openid%20api%3A%2F%2Fnbhub%2Faccess" in device, device
    polls = [ts for ts, m, p, _, _ in log if p == "/idp/token"]
    assert len(polls) == 3
    assert polls[1] - polls[0] >= 5.5, polls     # 1 s + 5 s after slow_down (RFC 8628 3.5)
    assert polls[2] - polls[1] >= 5.5, polls     # and it stays slower
    assert "\x1b" not in err and "\x07" not in err, repr(err)
    assert "shows the code AB?[31mCD." in err, err           # ESC shown as '?'
    assert "user_code=x?]0;owned?" in err, err
    assert "NBHUB_TOKEN is set" in err
    text = (conf / "config.yaml").read_text()
    assert '"nbh_' + "N" * 43 + '"' in text and "F" * 43 not in text
    assert oct((conf / "config.yaml").stat().st_mode & 0o777) == "0o600"
