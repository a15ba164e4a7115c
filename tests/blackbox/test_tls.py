"""TLS listeners of `nbhub serve` (listen: [{addr, tls: {cert, key}}]), end to end.

A test CA and its server certificates are made with the openssl command (Debian's
openssl package); the clients are Python's ssl module (OpenSSL) and curl, both
verifying the chain and the host name against that CA, as a browser would.
"""
import http.client
import json
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import wait_for
from nbserve import ADMIN_PASSWORD, Api, Server


# ------------------------------------------------------------------ certificates

def openssl(*args, cwd):
    r = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Pki:
    """A CA (ca.pem, the clients' trust) and server certificates it signs for
    localhost / 127.0.0.1; issue() writes cert.pem (and key.pem, kept across
    renewals unless new_key) with the serial given."""

    def __init__(self, d):
        self.d = d
        d.mkdir(parents=True, exist_ok=True)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=nbhub test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
        (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        self.ca = d / "ca.pem"
        self.cert = d / "cert.pem"
        self.key = d / "key.pem"

    def issue(self, serial, new_key=False):
        if new_key or not self.key.exists():
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem",
                    cwd=self.d)
        openssl("req", "-new", "-key", "key.pem", "-subj", "/CN=localhost", "-out", "req.csr", cwd=self.d)
        openssl("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", serial,
                "-days", "1", "-extfile", "ext.cnf", "-out", "cert.new", cwd=self.d)
        (self.d / "cert.new").rename(self.cert)
        self.key.chmod(0o600)

    def context(self):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx


@pytest.fixture
def pki(tmp_path):
    p = Pki(tmp_path / "pki")
    p.issue(1)
    return p


# ------------------------------------------------------------------ server

class HttpsApi(Api):
    """nbserve.Api over TLS (same request()), verifying against the test CA."""

    def __init__(self, port, ctx, token=None):
        super().__init__(port, token)
        self.ctx = ctx

    def request(self, method, path, body=None, headers=None, token=True, raw=False, timeout=30):
        orig = http.client.HTTPConnection
        ctx = self.ctx
        http.client.HTTPConnection = lambda host, port, timeout=None, source_address=None: \
            http.client.HTTPSConnection("localhost", port, timeout=timeout, context=ctx)
        try:
            return super().request(method, path, body=body, headers=headers, token=token, raw=raw, timeout=timeout)
        finally:
            http.client.HTTPConnection = orig


class TlsServer(Server):
    """nbhub serve with the nbhub.yaml given (its listen: is used, no --listen)."""

    def __init__(self, h, pki, config):
        super().__init__(h)
        self.pki = pki
        self.cfg = h.tmp / "nbhub.yaml"
        self.cfg.write_text(config)

    def start(self, timeout=30):
        self.log_path = self.h.tmp / "serve.log"
        self.out_path = self.h.tmp / "serve.out"
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = self.h.popen(["serve", "--config", self.cfg, "--home", self.home, "--flows", self.flows,
                                  "--log-level", "info"], stdout=self._out, stderr=self._log, env=self.env)
        line = wait_for(lambda: re.search(r"listening on (\S+) \(port (\d+)\)", self.out_path.read_text())
                        or self.proc.poll() is not None, timeout)
        assert line and line is not True, f"nbhub serve did not start:\n{self.log()}"
        self.first, self.port = line.group(1), int(line.group(2))
        self.api = HttpsApi(self.port, self.pki.context())
        self.api.token = self.admin_token()
        return self

    def peer_serial(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            with self.pki.context().wrap_socket(s, server_hostname="localhost") as t:
                return int(t.getpeercert()["serialNumber"], 16), t.version(), t.selected_alpn_protocol()


def tls_config(pki, extra=""):
    return (f"listen:\n  - {{addr: \"127.0.0.1:0\", tls: {{cert: {pki.cert}, key: {pki.key}}}}}\n" + extra)


# ------------------------------------------------------------------ tests

def test_login_over_tls_sets_a_secure_cookie(h, pki):
    """The API over TLS: login gives a Secure, HttpOnly session cookie (secure_cookies
    unset follows the TLS listener), the cookie works; curl --cacert agrees; plain
    HTTP to the TLS port gets a plaintext 400 that says so, and one log line."""
    srv = TlsServer(h, pki, tls_config(pki)).start()
    try:
        assert srv.first == "https://127.0.0.1:0"
        serial, version, alpn = srv.peer_serial()
        assert serial == 1 and version in ("TLSv1.2", "TLSv1.3") and alpn == "http/1.1"
        st, body, hdr = srv.api.request("POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD},
                                        token=False, raw=True)
        assert st == 200, body
        cookie = hdr["set-cookie"]
        attrs = [a.strip() for a in cookie.split(";")]
        assert "Secure" in attrs and "HttpOnly" in attrs, cookie
        st, me = srv.api.get("/api/v1/me", token=False, headers={"Cookie": attrs[0]})
        assert st == 200 and me["name"] == "admin", (st, me)

        r = subprocess.run(["curl", "-sS", "--cacert", str(pki.ca), "-H", f"Authorization: Bearer {srv.api.token}",
                            f"https://localhost:{srv.port}/api/v1/me"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout)["name"] == "admin", r
        # Not trusting the CA: curl refuses the certificate.
        r = subprocess.run(["curl", "-sS", f"https://localhost:{srv.port}/healthz"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 60, r

        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        assert got.startswith(b"HTTP/1.1 400 ") and b"https://" in got, got
        assert wait_for(lambda: re.search(r"tls error.*error=\"http request\"", srv.log()), 5), srv.log()
        assert srv.proc.poll() is None
    finally:
        assert srv.stop() == 0, srv.log()


def test_secure_cookies_false_still_secure_over_tls(h, pki):
    """secure_cookies: false with a TLS listener and a plain (unix socket) one: the
    cookie is Secure when it was sent over TLS, not over the plain listener."""
    sock = h.tmp / "plain.sock"
    cfg = tls_config(pki, f"  - unix:{sock}\nsecure_cookies: false\n")
    srv = TlsServer(h, pki, cfg).start()
    try:
        st, body, hdr = srv.api.request("POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD},
                                        token=False, raw=True)
        assert st == 200 and "Secure" in hdr["set-cookie"], hdr

        class UnixConn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(sock))
        c = UnixConn("localhost", timeout=30)
        c.request("POST", "/api/v1/login", json.dumps({"username": "admin", "password": ADMIN_PASSWORD}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        assert r.status == 200
        assert "Secure" not in r.getheader("Set-Cookie"), r.getheader("Set-Cookie")
        c.close()
    finally:
        srv.stop()


def test_sighup_rotates_the_certificate_while_an_sse_stream_stays_open(h, pki):
    """An event stream is open over TLS; the certificate is renewed (serial 2) and
    SIGHUP sent: new connections get serial 2, the open stream goes on and receives
    the events that follow (the same SIGHUP rescans the flows: flow.upsert).  A
    renewal with a broken file then keeps serial 2 and says why in the log."""
    srv = TlsServer(h, pki, tls_config(pki)).start()
    events = []
    try:
        c = http.client.HTTPSConnection("localhost", srv.port, timeout=60, context=pki.context())
        c.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {srv.api.token}"})
        resp = c.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")

        def read():
            try:
                for raw in resp:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event: "):
                        events.append(line[7:])
            except Exception as e:      # noqa: BLE001 - the stream's end is what we look at
                events.append(f"ended: {e!r}")
            else:
                events.append("ended")
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.3)

        assert "tls key is readable by every local user" not in srv.log()
        pki.issue(2)
        pki.key.chmod(0o644)
        srv.apply("rotated", "name: rotated\ntasks:\n  t:\n    command: [\"true\"]\n")
        srv.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "tls certificate reloaded" in srv.log(), 10), srv.log()
        # A one-day certificate: renewal is due; the key is now world-readable.
        assert re.search(r"tls certificate expires soon.*days_left=[01]\b", srv.log()), srv.log()
        assert "tls key is readable by every local user" in srv.log(), srv.log()
        assert srv.peer_serial()[0] == 2
        assert wait_for(lambda: "flow.upsert" in events, 10), (events, srv.log())
        assert reader.is_alive(), events
        # The stream still carries what happens next.
        st, _ = srv.api.post("/api/v1/flows/rotated/pause", {})
        assert st in (200, 204), st
        assert wait_for(lambda: "flow.paused" in events, 10), (events, srv.log())

        pki.cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        srv.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "tls reload failed: keeping the old certificate" in srv.log(), 10), srv.log()
        assert srv.peer_serial()[0] == 2
        assert reader.is_alive() and not any(e.startswith("ended") for e in events), events
        c.close()
    finally:
        assert srv.stop() == 0, srv.log()


def test_bad_tls_config_is_reported_with_positions(h, pki, tmp_path):
    """Missing member, unreadable certificate, key of another certificate, not PEM:
    exit 3 with FILE:LINE:COLUMN for each, all at once."""
    other = tmp_path / "other"
    other.mkdir()
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem", cwd=other)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "listen:\n"
        f"  - {{addr: \"127.0.0.1:0\", tls: {{cert: {pki.cert}}}}}\n"                        # 2: no key
        f"  - {{addr: \"127.0.0.1:0\", tls: {{cert: /nonexistent/cert.pem, key: {pki.key}}}}}\n"   # 3
        f"  - {{addr: \"127.0.0.1:0\", tls: {{cert: {pki.cert}, key: {other}/key.pem}}}}\n"   # 4: mismatch
        f"  - {{addr: \"127.0.0.1:0\", tls: {{cert: {junk}, key: {pki.key}}}}}\n"             # 5: not PEM
        "  - {adr: \"127.0.0.1:0\"}\n"                                                        # 6
        "  - 127.0.0.1:0\n")
    r = h.run(["serve", "--config", cfg, "--home", tmp_path / "home"])
    assert r.rc == 3, r
    err = r.stderr
    assert re.search(rf"{cfg}:2:\d+: 'tls' needs 'key'", err), err
    assert re.search(rf"{cfg}:3:\d+: tls: certificate /nonexistent/cert.pem: No such file or directory", err), err
    assert re.search(rf"{cfg}:4:\d+: tls: key {other}/key.pem does not match the certificate", err), err
    assert re.search(rf"{cfg}:5:\d+: tls: certificate {junk}: not a usable PEM certificate chain", err), err
    assert re.search(rf"{cfg}:6:6: unknown key 'adr' in 'listen' \(did you mean 'addr'\?\)", err), err
    # The column points at the value at fault: the key's for a mismatch.
    line4 = cfg.read_text().splitlines()[3]
    col = line4.index(f"{other}/key.pem") + 1
    assert f"{cfg}:4:{col}:" in err, err


def test_cli_client_trusts_the_ca_named_by_nbhub_ca_bundle(h, pki):
    """The nbhub command-line client against the TLS listener: refused (exit 7,
    the certificate named as the reason) until NBHUB_CA_BUNDLE names the CA."""
    srv = TlsServer(h, pki, tls_config(pki)).start()
    try:
        env = dict(h.env, NBHUB_URL=f"https://localhost:{srv.port}", NBHUB_TOKEN=srv.api.token,
                   XDG_CONFIG_HOME=str(h.tmp / "xdg"))
        env.pop("NBHUB_CA_BUNDLE", None)
        r = h.run(["flow", "list"], env=env)
        assert r.rc == 7 and "certificate" in r.stderr, r
        r = h.run(["flow", "list"], env=dict(env, NBHUB_CA_BUNDLE=str(pki.ca)))
        assert r.rc == 0, r
        # A CA that did not sign it is no better than none.
        other = Pki(h.tmp / "other-pki")
        r = h.run(["flow", "list"], env=dict(env, NBHUB_CA_BUNDLE=str(other.ca)))
        assert r.rc == 7 and "certificate" in r.stderr, r
    finally:
        srv.stop()


def test_notebook_server_behind_a_tls_only_listener(h, pki):
    """With TLS on every listener, jupyterhub-singleuser still reaches /hub/api:
    nbhub gives it a plain listener of its own on the loopback (a server cannot
    trust a certificate made for a public name at 127.0.0.1).  The server starts,
    and JupyterLab's API answers through the proxy over TLS; the hub URL the
    server was given is that loopback listener, not the TLS port."""
    srv = TlsServer(h, pki, tls_config(pki, "hub: {start_timeout: 90s}\n")).start()
    try:
        st, body = srv.api.post("/api/v1/servers", {})
        assert st == 202, (st, body)
        st, s = srv.api.get("/api/v1/servers/admin/default")
        assert wait_for(lambda: srv.api.get("/api/v1/servers/admin/default")[1].get("state")
                        in ("running", "failed"), 90), srv.log()
        st, s = srv.api.get("/api/v1/servers/admin/default")
        assert s["state"] == "running", (s, srv.log())
        st, status = srv.api.get("/user/admin/api/status")
        assert st == 200 and "started" in status, (st, status)
        out = srv.out_path.read_text()
        assert re.search(r"notebook servers reach /hub/api on http://127\.0\.0\.1:\d+ \(loopback only\)", out), out
        st, body = srv.api.request("DELETE", "/api/v1/servers/admin/default")
        assert st in (202, 204), (st, body)
        assert wait_for(lambda: srv.api.get("/api/v1/servers/admin/default")[1].get("state") == "stopped", 60)
    finally:
        assert srv.stop() == 0, srv.log()
