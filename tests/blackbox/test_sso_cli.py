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
