"""Helpers for the hub's Spark and culling tests: users, servers through
/api/v1/servers, and a kernel of a notebook server driven the way JupyterLab
does it -- jupyter-server's REST API (POST PREFIX/api/kernels) and the
kernel's websocket (PREFIX/api/kernels/ID/channels, JSON messages) -- through
nbhub's proxy at /user/NAME/, authenticated with the user's nbhub token."""

import json
import time
import uuid

from nbserve import Api


def add_user(srv, name, password=None):
    st, body = srv.api.post("/api/v1/users", {"name": name, "password": password or f"{name}-password-123"})
    assert st == 201, (st, body)
    st, t = srv.api.post(f"/api/v1/users/{name}/tokens", {"name": "t"})
    assert st == 201, (st, t)
    return Api(srv.port, t["token"])


def start_server(api, profile=None, name=None):
    body = {}
    if profile:
        body["profile"] = profile
    if name:
        body["name"] = name
    st, s = api.post("/api/v1/servers", body)
    assert st in (201, 202), (st, s)
    return s


def server_json(api, owner, name=""):
    st, s = api.get(f"/api/v1/servers/{owner}/{name or 'default'}")
    assert st == 200, (st, s)
    return s


def stop_server(api, owner, name=""):
    st, s = api.delete(f"/api/v1/servers/{owner}/{name or 'default'}")
    assert st in (200, 202, 204), (st, s)
    return s


def wait_state(api, owner, name, states, timeout, srv=None):
    if isinstance(states, str):
        states = (states,)
    deadline = time.monotonic() + timeout
    s = None
    while time.monotonic() < deadline:
        s = server_json(api, owner, name)
        if s["state"] in states:
            return s
        time.sleep(0.2)
    raise AssertionError(f"server {owner}/{name} is {s and s['state']}, not {states}, after {timeout} s: {s}\n"
                         + (srv.log() if srv else ""))


class KernelWs:
    """A new kernel in the server at prefix, and its websocket."""

    def __init__(self, port, token, prefix, timeout=60):
        import websocket
        self.api = Api(port, None)
        self.hdr = {"Authorization": f"token {token}"}
        st, k = self.api.post(f"{prefix}api/kernels", {"name": "python3"}, headers=self.hdr, timeout=timeout)
        assert st == 201, (st, k)
        self.id = k["id"]
        self.prefix = prefix
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{prefix}api/kernels/{self.id}/channels?session_id={self.session}",
            header=[f"Authorization: token {token}"], timeout=timeout)

    def send_execute(self, code):
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        return msg_id

    def execute(self, code, timeout=60):
        """Run code; its stdout/stderr and error text once the kernel is idle again."""
        msg_id = self.send_execute(code)
        out, deadline = [], time.monotonic() + timeout
        self.ws.settimeout(5)
        import websocket
        while time.monotonic() < deadline:
            try:
                m = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t = m["msg_type"]
            if t == "stream":
                out.append(m["content"]["text"])
            elif t == "error":
                out.append("\n".join(m["content"]["traceback"]))
            elif t == "status" and m["content"]["execution_state"] == "idle":
                return "".join(out)
        raise AssertionError(f"no answer within {timeout} s; so far: {''.join(out)}")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            self.api.delete(f"{self.prefix}api/kernels/{self.id}", headers=self.hdr, timeout=10)
        except Exception:
            pass
