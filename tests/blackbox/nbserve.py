"""A real `nbhub serve` for black-box tests, and a tiny JSON client for it.

The server runs on 127.0.0.1 with an ephemeral port (it prints the port on
stdout when ready), a home directory under the test's tmp dir, and the admin
password given through NBHUB_ADMIN_PASSWORD_FILE; `admin_token()` logs in and
creates an API token through the API itself.
"""
import http.client
import json
import os
import re
import signal
import sqlite3
import threading
import time

ADMIN_PASSWORD = "admin-password-123"


class Api:
    """source: the client address to connect from (any of 127/8 on Linux), so
    tests can play several clients against the server on 127.0.0.1."""

    def __init__(self, port, token=None, source=None):
        self.port = port
        self.token = token
        self.source = source

    def request(self, method, path, body=None, headers=None, token=True, raw=False, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                       source_address=(self.source, 0) if self.source else None)
        hdrs = dict(headers or {})
        if token and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            else:
                data = body.encode() if isinstance(body, str) else body
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        payload = r.read()
        hdr = dict((k.lower(), v) for k, v in r.getheaders())
        c.close()
        if raw:
            return r.status, payload, hdr
        try:
            return r.status, (json.loads(payload) if payload else None)
        except ValueError:
            return r.status, payload.decode(errors="replace")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class EventStream:
    """GET /api/v1/events read in a thread: .events is a list of
    (event, id, data) as they arrive (id None when the event had none)."""

    def __init__(self, port, token):
        self.events = []
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.conn.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        ev, eid, data = None, None, []
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        self.events.append((ev, eid, json.loads("\n".join(data))))
                    ev, eid, data = None, None, []
                elif line.startswith("event: "):
                    ev = line[7:]
                elif line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        except Exception:   # closed under our feet by close(): the end of the stream
            pass

    def of(self, kind):
        return [e for e in list(self.events) if e[0] == kind]

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


class Server:
    def __init__(self, h, home=None, flows=None, args=(), env=None):
        self.h = h
        self.home = home or (h.tmp / "home")
        self.home.mkdir(parents=True, exist_ok=True)
        self.flows = flows or (self.home / "flows")
        self.flows.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.env = dict(h.env)
        pw = h.tmp / "admin-password"
        pw.write_text(ADMIN_PASSWORD + "\n")
        self.env["NBHUB_ADMIN_PASSWORD_FILE"] = str(pw)
        if env:
            self.env.update(env)
        self.proc = None
        self.port = None
        self.api = None
        self.log_path = None

    def start(self, timeout=30):
        n = len(self.h.pids)
        self.log_path = self.h.tmp / f"serve.{n}.log"
        self.out_path = self.h.tmp / f"serve.{n}.out"
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = self.h.popen(["serve", "--home", self.home, "--flows", self.flows,
                                  "--listen", "127.0.0.1:0", *self.args],
                                 stdout=self._out, stderr=self._log, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out_path.read_text()
            m = re.search(r"\(port (\d+)\)", text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"nbhub serve exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        else:
            raise AssertionError(f"nbhub serve did not start:\n{self.log()}")
        token = self.api.token if self.api else None
        self.api = Api(self.port, token)
        if not token:
            self.api.token = self.admin_token()
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def admin_token(self):
        st, body, hdr = self.api.request("POST", "/api/v1/login",
                                         {"username": "admin", "password": ADMIN_PASSWORD},
                                         token=False, raw=True)
        assert st == 200, (st, body)
        cookie = hdr["set-cookie"].split(";")[0]
        csrf = json.loads(body)["csrf_token"]
        st, tok = self.api.request("POST", "/api/v1/users/admin/tokens", {"name": "tests"},
                                   headers={"Cookie": cookie, "X-CSRF-Token": csrf}, token=False)
        assert st == 201, (st, tok)
        return tok["token"]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def db(self):
        """Read-only view of nbhub.db (WAL readers never block the daemon)."""
        c = sqlite3.connect(f"file:{self.home / 'nbhub.db'}?mode=ro", uri=True, timeout=10)
        c.row_factory = sqlite3.Row
        return c

    def apply(self, name, text):
        (self.flows / f"{name}.yaml").write_text(text)

    def wait_run(self, run_id, states=("success", "failed", "cancelled"), timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st, run = self.api.get(f"/api/v1/runs/{run_id}")
            assert st == 200, (st, run)
            if run["state"] in states:
                return run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} still {run['state']} after {timeout}s:\n"
                             f"{json.dumps(run, indent=1)}\n{self.log()}")

    def trigger(self, flow, params=None):
        body = {"params": params} if params else {}
        st, run = self.api.post(f"/api/v1/flows/{flow}/runs", body)
        assert st == 201, (st, run, self.log())
        return run["id"]
