"""`nbhub serve` with a hub: section and real jupyterhub-singleuser servers, for
black-box tests of the hub (test_hub.py) and of what other parts build on it
(the proxy, the JupyterHub API, the UI).

    from hubserve import HubServer
    hs = HubServer(h, config="hub: {max_servers_per_user: 2}\\n").start()
    alice = hs.user("alice")                  # an Api with alice's own token
    srv = hs.start_server("alice")            # POST /api/v1/servers, waits until running
    st, body = alice.get("/user/alice/api/status")   # through nbhub's proxy

Users are created through the API (password "<name>-password-1"), each with an
API token.  The servers run jupyterhub-singleuser from the test .venv (PATH);
nbhub serve runs with isolation: shared unless the config says otherwise.
`hub_harness(tmp_path_factory)` gives a Harness for a module-scoped server
(JupyterLab takes a few seconds to start: share one where tests allow).
"""
import json
import os
import signal
import time

from conftest import Harness, wait_for
from nbserve import Api, Server

PASSWORD = "{}-password-1"


class HubServer:
    def __init__(self, h, config="", users=("alice", "bob"), args=(), env=None, home=None):
        self.h = h
        self.config = config
        self.users = list(users)
        self.apis = {}
        self.srv = Server(h, home=home, args=args, env=env)
        (self.srv.home / "nbhub.yaml").write_text(config)

    # -- the daemon ----------------------------------------------------------------
    def start(self, timeout=30):
        self.srv.start(timeout=timeout)
        for u in self.users:
            if u in self.apis:
                continue
            st, body = self.srv.api.post("/api/v1/users", {"name": u, "password": PASSWORD.format(u)})
            assert st in (201, 409), (st, body)
            self.apis[u] = Api(self.port, self._token(u))
        for a in self.apis.values():
            a.port = self.port
        return self

    @property
    def port(self):
        return self.srv.port

    @property
    def api(self):
        """The admin's Api."""
        return self.srv.api

    def restart(self, kill9=False, timeout=30):
        if kill9:
            self.srv.kill9()
        else:
            self.srv.stop()
        return self.start(timeout=timeout)

    def stop(self, sig=signal.SIGTERM):
        return self.srv.stop(sig)

    def log(self):
        return self.srv.log()

    def db(self):
        return self.srv.db()

    # -- users -----------------------------------------------------------------------
    def login(self, user):
        """(cookie header value, csrf token) of a new session of user."""
        st, body, hdr = self.srv.api.request("POST", "/api/v1/login",
                                             {"username": user, "password": PASSWORD.format(user)},
                                             token=False, raw=True)
        assert st == 200, (st, body)
        return hdr["set-cookie"].split(";")[0], json.loads(body)["csrf_token"]

    def _token(self, user):
        cookie, csrf = self.login(user)
        st, tok = self.srv.api.request("POST", f"/api/v1/users/{user}/tokens", {"name": "hub-tests"},
                                       headers={"Cookie": cookie, "X-CSRF-Token": csrf}, token=False)
        assert st == 201, (st, tok)
        return tok["token"]

    def user(self, name):
        return self.apis[name]

    # -- servers ---------------------------------------------------------------------
    @staticmethod
    def path(user, name=""):
        return f"/api/v1/servers/{user}/{name or 'default'}"

    def server(self, user, name=""):
        st, body = self.api.get(self.path(user, name))
        return body if st == 200 else None

    def start_server(self, user, name="", profile=None, options=None, wait=True, timeout=90, expect=None):
        body = {"name": name}
        if profile:
            body["profile"] = profile
        if options:
            body["options"] = options
        st, srv = self.apis[user].post("/api/v1/servers", body)
        if expect is not None:
            assert st == expect, (st, srv)
            return srv
        assert st in (201, 202), (st, srv, self.log())
        if not wait:
            return srv
        return self.wait_state(user, name, ("running", "failed"), timeout=timeout)

    def wait_state(self, user, name="", states=("running",), timeout=60):
        deadline = time.monotonic() + timeout
        srv = None
        while time.monotonic() < deadline:
            srv = self.server(user, name)
            if srv and srv["state"] in states:
                return srv
            time.sleep(0.1)
        raise AssertionError(f"server {user}/{name} still {srv and srv['state']} after {timeout}s:\n"
                             f"{json.dumps(srv, indent=1)}\n{self.log()}")

    def stop_server(self, user, name="", remove=False, wait=True, timeout=60):
        q = "?remove=true" if remove else ""
        st, body = self.apis[user].delete(self.path(user, name) + q)
        assert st in (200, 202, 204), (st, body)
        if wait and not remove:
            return self.wait_state(user, name, ("stopped", "failed"), timeout=timeout)
        return body


def hub_harness(tmp_path_factory, name="hub"):
    """A Harness for a module-scoped HubServer (the per-test `h` is function-scoped)."""
    return Harness(tmp_path_factory.mktemp(name))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
        return st[st.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def descendants(pid):
    """pids of pid's process tree (children, grandchildren...), from /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                st = f.read()
            parent[int(d)] = int(st[st.rindex(b")") + 2:].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


__all__ = ["HubServer", "hub_harness", "pid_alive", "descendants", "wait_for", "PASSWORD"]
