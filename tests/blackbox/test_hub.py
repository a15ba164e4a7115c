"""The hub (docs/hub.md): users' notebook servers started by nbhub serve, running
the real jupyterhub-singleuser + JupyterLab from PyPI, reached through nbhub's
proxy at /user/NAME[/SERVER]/, and adopted again when nbhub serve restarts."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import wait_for
from hubserve import HubServer, descendants, hub_harness, pid_alive

SINGLEUSER = os.path.join(os.path.dirname(__file__), "..", "..", ".venv", "bin", "jupyterhub-singleuser")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One nbhub serve with a hub for the tests that only start and stop servers."""
    h = hub_harness(tmp_path_factory)
    crash = h.tmp / "crash-python"
    crash.write_text("#!/bin/sh\necho 'crash-profile: no module named jupyterhub here' >&2\nexit 3\n")
    crash.chmod(0o755)
    venv_python = os.path.abspath(os.path.join(os.path.dirname(SINGLEUSER), "python"))
    cfg = ("hub:\n"
           "  max_servers_per_user: 2\n"
           "  start_timeout: 60s\n"
           "  profiles:\n"
           "    - {name: default, description: JupyterLab}\n"
           f"    - {{name: venv, python: {venv_python}, default_url: /lab, env: {{HUB_TEST_VAR: hello}}}}\n"
           f"    - {{name: crash, python: {crash}}}\n"
           "    - {name: alice-only, allow: {users: [alice]}}\n")
    hs = HubServer(h, config=cfg, args=["--stop-servers-on-exit"]).start()
    yield hs
    hs.stop()
    left = h.cleanup()
    assert not left, left


def test_default_server_starts_and_is_reached_through_the_proxy(hub):
    t0 = time.monotonic()
    srv = hub.start_server("alice")
    assert srv["state"] == "running", srv
    print(f"start to ready: {time.monotonic() - t0:.2f} s")
    assert srv["url"] == "/user/alice/" and srv["pid"] > 0 and srv["owner"] == "alice"
    assert srv["memory"] > 10 * 1024 * 1024
    alice = hub.user("alice")
    st, body = alice.get("/user/alice/api/status")
    assert st == 200, (st, body, hub.log())
    assert "kernels" in body
    # /user/alice without its slash: redirected
    st, _, hdr = alice.request("GET", "/user/alice", raw=True)
    assert st == 302 and hdr["location"] == "/user/alice/"


def _session_headers(hub, user):
    cookie, _csrf = hub.login(user)
    return {"Cookie": cookie}


def test_other_users_are_refused_with_and_without_credentials(hub):
    hub.start_server("alice")
    bob = hub.user("bob")
    # bob's own token: the same 404 as for a server that does not exist
    st, body = bob.get("/user/alice/api/status")
    assert st == 404, (st, body)
    st_none, body_none = bob.get("/user/nobody-at-all/api/status")
    assert (st, body) == (st_none, body_none)
    # bob's browser session
    st, body = bob.get("/user/alice/api/status", token=False, headers=_session_headers(hub, "bob"))
    assert st == 404, (st, body)
    # no credentials: 401 for API clients, the login page for browsers
    st, body = bob.get("/user/alice/api/status", token=False)
    assert st == 401, (st, body)
    st, _, hdr = bob.request("GET", "/user/alice/lab", token=False, headers={"Accept": "text/html"}, raw=True)
    assert st == 302 and hdr["location"].startswith("/login?next="), (st, hdr)
    # an admin, with hub.admin_access off (the default)
    st, body = hub.api.get("/user/alice/api/status")
    assert st == 403, (st, body)
    # and bob cannot see or stop it through the API either
    assert bob.get("/api/v1/servers/alice/default")[0] == 404
    assert bob.delete("/api/v1/servers/alice/default")[0] == 404
    assert [s["owner"] for s in bob.get("/api/v1/servers")[1]["servers"]] == []
    # alice's own token still works
    assert hub.user("alice").get("/user/alice/api/status")[0] == 200


def test_named_server_profiles_and_the_per_user_maximum(hub):
    alice = hub.user("alice")
    hub.start_server("alice")
    srv = hub.start_server("alice", "dev", profile="venv")
    assert srv["state"] == "running" and srv["url"] == "/user/alice/dev/" and srv["profile"] == "venv", srv
    st, body = alice.get("/user/alice/dev/api/status")
    assert st == 200, (st, body)
    # others learn nothing of it: /user/alice/dev without its slash is a 302 for
    # alice only; bob, and a client without credentials, get what they get for a
    # name alice does not have
    st, _, hdr = alice.request("GET", "/user/alice/dev", raw=True)
    assert st == 302 and hdr["location"] == "/user/alice/dev/", (st, hdr)
    bob = hub.user("bob")
    assert bob.get("/user/alice/dev")[0] == bob.get("/user/alice/nosuch")[0] == 404
    assert bob.get("/user/alice/dev", token=False)[0] == bob.get("/user/alice/nosuch", token=False)[0] == 401
    # the profile's env and default_url reached the server's process
    env = open(f"/proc/{srv['pid']}/environ", "rb").read().split(b"\0")
    assert b"HUB_TEST_VAR=hello" in env and b"JUPYTERHUB_DEFAULT_URL=/lab" in env
    assert b"JUPYTERHUB_SERVICE_PREFIX=/user/alice/dev/" in env
    assert b"JUPYTERHUB_CLIENT_ID=jupyterhub-user-alice-dev" in env
    assert not any(e.startswith(b"NBHUB_") for e in env)
    # the default server's paths are not named servers
    assert alice.get("/user/alice/api/status")[0] == 200
    # two running: the third is refused (hub.max_servers_per_user: 2)
    st, body = alice.post("/api/v1/servers", {"name": "third"})
    assert st == 429, (st, body)
    # bad names, names that are paths of a server, unknown and forbidden profiles
    assert alice.post("/api/v1/servers", {"name": "Bad Name"})[0] == 400
    assert alice.post("/api/v1/servers", {"name": "lab"})[0] == 400
    assert alice.post("/api/v1/servers", {"name": "x", "profile": "nope"})[0] == 400
    assert hub.user("bob").post("/api/v1/servers", {"profile": "alice-only"})[0] == 403
    assert [p["name"] for p in hub.user("bob").get("/api/v1/profiles")[1]["profiles"]] == ["default", "venv", "crash"]
    # removing the named server frees a slot
    hub.stop_server("alice", "dev", remove=True)
    wait_for(lambda: hub.server("alice", "dev") is None, 30)
    assert not pid_alive(srv["pid"])
    assert alice.get("/user/alice/dev/api/status")[0] in (404, 503)


def test_a_server_that_fails_to_start_shows_its_log_tail(hub, tmp_path):
    srv = hub.start_server("bob", profile="crash")
    assert srv["state"] == "failed", srv
    assert "exited with code 3" in srv["error"], srv
    assert "crash-profile: no module named jupyterhub here" in srv["error"], srv
    assert "crash-profile" in srv["log_tail"], srv
    # not running: a page for browsers, 503 JSON for API clients
    st, body = hub.user("bob").get("/user/bob/api/status")
    assert st == 503 and body["error"]["code"] == "unavailable", (st, body)
    st, page, hdr = hub.user("bob").request("GET", "/user/bob/lab", token=False, raw=True,
                                            headers=dict(_session_headers(hub, "bob"), Accept="text/html"))
    assert st == 503 and b"not running" in page and b'href="/server"' in page, (st, page)


def _execute(hs, user, kid, code, server=""):
    """Run code in kernel kid through the proxy's websocket; its stdout."""
    import uuid
    import websocket
    base = f"/user/{user}/" + (f"{server}/" if server else "")
    ws = websocket.create_connection(f"ws://127.0.0.1:{hs.port}{base}api/kernels/{kid}/channels",
                                     header=[f"Authorization: token {hs.user(user).token}"], timeout=60)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    out = []
    try:
        while True:
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "stream":
                out.append(m["content"]["text"])
            elif m["msg_type"] == "error":
                raise AssertionError(m["content"])
            elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()


def test_kill9_restart_adopts_the_server_and_its_kernel_keeps_its_state(h):
    hs = HubServer(h, config="hub: {}\n").start()
    srv = hs.start_server("alice")
    assert srv["state"] == "running", srv
    alice = hs.user("alice")
    st, k = alice.post("/user/alice/api/kernels", {"name": "python3"})
    assert st == 201, (st, k, hs.log())
    assert _execute(hs, "alice", k["id"], "x = 6 * 7\nprint('set', x)") == "set 42\n"

    hs.restart(kill9=True)
    # the route works at once: no start, no wait for the server
    t0 = time.monotonic()
    st = wait_for(lambda: alice.get("/user/alice/api/status")[0] == 200, 5, interval=0.02)
    took = time.monotonic() - t0
    print(f"route after restart: {took * 1000:.0f} ms")
    assert st and took < 1.0, (took, hs.log())
    again = hs.server("alice")
    assert again["state"] == "running" and again["pid"] == srv["pid"], again
    assert _execute(hs, "alice", k["id"], "print(x)") == "42\n"

    # a stop reaches the whole tree of an adopted server (the kernel is in
    # its own session: jupyter_client starts kernels with setsid)
    tree = descendants(srv["pid"])
    assert tree, "the kernel should be a child of the server"
    hs.stop_server("alice")
    assert wait_for(lambda: not any(pid_alive(p) for p in [srv["pid"]] + tree), 15), \
        [p for p in tree if pid_alive(p)]
    # its API token died with it
    with hs.db() as db:
        assert db.execute("SELECT count(*) FROM api_tokens WHERE kind = 'server'").fetchone()[0] == 0
    hs.stop()


def test_a_server_that_died_while_nbhub_was_down_is_marked_stopped(h):
    hs = HubServer(h, config="").start()
    srv = hs.start_server("alice")
    assert srv["state"] == "running", srv
    tree = descendants(srv["pid"])
    assert hs.stop() == 0
    assert pid_alive(srv["pid"]), "servers outlive nbhub serve"
    os.killpg(srv["pid"], signal.SIGKILL)
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not pid_alive(srv["pid"]), 10)
    hs.start()
    again = hs.server("alice")
    assert again["state"] == "stopped" and again["pid"] is None, again
    # (gone at the start, or a zombie nobody reaped yet, adopted and seen gone at once)
    assert again["stop_reason"] in ("found gone after a restart of nbhub", "exited (status unknown)"), again
    st, body = hs.user("alice").get("/user/alice/api/status")
    assert st == 503, (st, body)
    # and it starts again
    assert hs.start_server("alice")["state"] == "running"
    hs.stop_server("alice")
    hs.stop()


def test_cli_server_start_list_stop(hub):
    def cli(*args, user="alice"):
        p = subprocess.run([hub.h.env.get("NBHUB_BIN", os.environ.get("NBHUB_BIN")) or "nbhub", "server", *args,
                            "--url", f"http://127.0.0.1:{hub.port}", "--token", hub.user(user).token],
                           capture_output=True, text=True, timeout=120, env=hub.h.env)
        return p.returncode, p.stdout, p.stderr
    rc, out, err = cli("start", "--name", "cli", "--profile", "default")
    assert rc == 0, (out, err)
    assert out.strip().endswith("/user/alice/cli/  running"), out
    rc, out, err = cli("list")
    assert rc == 0 and "cli" in out and "running" in out, (out, err)
    rc, out, err = cli("list", "--json")
    names = {s["name"]: s["state"] for s in json.loads(out)["servers"]}
    assert names.get("cli") == "running", names
    rc, out, err = cli("stop", "--name", "cli", "--remove")
    assert rc == 0, (out, err)
    wait_for(lambda: hub.server("alice", "cli") is None, 30)
    rc, out, err = cli("start", "--profile", "crash", user="bob")
    assert rc == 1 and "exited with code 3" in err, (rc, out, err)
    rc, out, err = cli("start", "--profile", "alice-only", user="bob")
    assert rc == 5, (rc, out, err)


def test_bad_hub_config_is_reported_at_file_line_column(h):
    home = h.tmp / "home"
    home.mkdir()
    cfg = home / "nbhub.yaml"
    cfg.write_text("hub:\n"
                   "  start_timout: 30s\n"
                   "  max_servers_per_user: many\n"
                   "  profiles:\n"
                   "    - name: Small Profile\n"
                   "      python: bin/python\n"
                   "      limits: {memory: lots}\n"
                   "      env: {JUPYTERHUB_API_TOKEN: stolen}\n"
                   "    - {description: no name}\n"
                   "    - {name: cmd, command: [jupyter-server, --no-browser]}\n")
    p = h.popen(["serve", "--home", home, "--config", cfg, "--listen", "127.0.0.1:0"])
    out, err = p.communicate(timeout=30)
    err = err.decode()
    assert p.returncode == 3, (p.returncode, err)
    want = [(2, 3, "unknown key 'hub.start_timout' (did you mean 'start_timeout'?)"),
            (3, 25, "'hub.max_servers_per_user' must be a whole number"),
            (5, 13, "profile name 'Small Profile'"),
            (6, 15, "'python' must be an absolute path"),
            (7, 24, "limits: 'memory' must be a size"),
            (8, 13, "'env': JUPYTERHUB_API_TOKEN is set by the hub"),
            (9, 7, "a profile needs a name"),
            (10, 28, "'command' must contain {port}")]
    for line, col, msg in want:
        assert f"{cfg}:{line}:{col}: {msg}" in err, (line, col, msg, err)


# ---- isolation: system, and a `command:` profile -------------------------------------------

FAKE_SERVER = r'''
import http.server, json, os, sys
port, base, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.path.startswith(base):
            self.send_response(404); self.end_headers(); return
        body = json.dumps({"uid": os.getuid(), "cwd": os.getcwd(), "home": os.environ.get("HOME"),
                           "auth_ok": self.headers.get("Authorization") == "token " + token,
                           "cookie": self.headers.get("Cookie"),
                           "env_token": os.environ.get("JUPYTERHUB_API_TOKEN", "")[:4]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
print("fake server on", port, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def _cgroup_memory_limit(pid):
    for line in open(f"/proc/{pid}/cgroup"):
        _, ctrl, path = line.strip().split(":", 2)
        if "memory" in ctrl.split(","):
            return path, int(open(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read())
        if ctrl == "" and os.path.exists(f"/sys/fs/cgroup{path}/memory.max"):
            return path, int(open(f"/sys/fs/cgroup{path}/memory.max").read())
    return None, None


@pytest.mark.skipif(os.geteuid() != 0, reason="isolation: system needs root")
def test_system_isolation_runs_the_server_as_the_users_account_in_its_cgroup(h):
    import pwd
    import tempfile
    from pathlib import Path
    user = "isohub"
    home = Path(tempfile.mkdtemp(prefix="nbhub-hub-", dir="/tmp"))
    os.chmod(home, 0o711)
    script = home / "fake_server.py"
    script.write_text(FAKE_SERVER)
    os.chmod(script, 0o644)
    cfg = ("isolation: system\ncreate_system_users: true\n"
           "hub:\n  profiles:\n"
           f"    - {{name: fake, command: [/usr/bin/python3, {script}, '{{port}}', '{{base_url}}', '{{token}}'],"
           " limits: {memory: 256m}}\n")
    hs = HubServer(h, config=cfg, users=(user,), env={"NBHUB_ISOLATION": ""}, home=home)
    try:
        hs.start()
        srv = hs.start_server(user, timeout=60)
        assert srv["state"] == "running", (srv, hs.log())
        acct = pwd.getpwnam(f"nbhub-{user}")
        st = os.stat(f"/proc/{srv['pid']}")
        assert st.st_uid == acct.pw_uid, "the server runs as the user's account"
        assert os.readlink(f"/proc/{srv['pid']}/cwd") == acct.pw_dir
        path, limit = _cgroup_memory_limit(srv["pid"])
        assert path and path.endswith("/server-1") and limit == 256 * 1024 * 1024, (path, limit)
        # through the proxy: the command's own token goes upstream, nbhub's
        # session cookie never does
        cookie, _ = hs.login(user)
        st, body = hs.user(user).get(f"/user/{user}/api/whoami", headers={"Cookie": cookie + "; other=1"})
        assert st == 200, (st, body, hs.log())
        assert body["uid"] == acct.pw_uid and body["auth_ok"] and body["home"] == acct.pw_dir, body
        assert body["cookie"] == "other=1", body
        # adopted after a kill -9: its cgroup is still known, and removed at its stop
        hs.restart(kill9=True)
        assert hs.server(user)["pid"] == srv["pid"]
        assert hs.user(user).get(f"/user/{user}/api/x")[0] == 200
        hs.stop_server(user)
        assert not pid_alive(srv["pid"])
        assert not os.path.exists(f"/sys/fs/cgroup/memory{path}")
    finally:
        hs.stop()
        subprocess.run(["userdel", "-r", f"nbhub-{user}"], capture_output=True)


def _sse_events(port, path, token, timeout=90):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    events = []
    for raw in r:       # the stream ends after the final event
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    c.close()
    return events


def test_progress_events_as_jupyterhub_sends_them(hub):
    alice = hub.user("alice")
    hub.start_server("alice", "prog", wait=False)
    events = _sse_events(hub.port, "/api/v1/servers/alice/prog/progress", alice.token)
    assert events[0] == {"progress": 0, "message": "Server requested"}, events
    assert events[-1]["ready"] is True and events[-1]["url"] == "/user/alice/prog/", events
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    # after the end: the final event at once
    again = _sse_events(hub.port, "/api/v1/servers/alice/prog/progress", alice.token, timeout=10)
    assert len(again) == 1 and again[0]["ready"] is True, again
    # a failed start ends with failed and the log tail
    hub.start_server("bob", "bad", profile="crash", wait=False)
    events = _sse_events(hub.port, "/api/v1/servers/bob/bad/progress", hub.user("bob").token)
    assert events[-1]["failed"] is True and "crash-profile" in events[-1]["message"], events
    # proxied traffic is activity
    before = hub.server("alice", "prog")["last_activity"]
    time.sleep(1.1)
    assert alice.get("/user/alice/prog/api/status")[0] == 200
    assert hub.server("alice", "prog")["last_activity"] > before
    hub.stop_server("alice", "prog", remove=True)
    hub.stop_server("bob", "bad", remove=True)


def test_start_timeout_fails_with_the_log_tail_and_kills_the_server(h):
    cfg = ("hub:\n  start_timeout: 2s\n  stop_grace: 1s\n  profiles:\n"
           "    - {name: slow, command: [/bin/sh, -c, 'echo slow server on port $0; exec sleep 600', '{port}']}\n")
    hs = HubServer(h, config=cfg).start()
    t0 = time.monotonic()
    srv = hs.start_server("alice", timeout=30)
    took = time.monotonic() - t0
    assert srv["state"] == "failed", srv
    assert "did not answer within 2 s" in srv["error"] and "slow server on port" in srv["error"], srv
    assert srv["stop_reason"] == "start timed out (hub.start_timeout 2 s)", srv
    assert took < 10, took
    assert srv["pid"] is None
    with hs.db() as db:
        pid = db.execute("SELECT pid FROM servers").fetchone()[0]
    assert not pid_alive(pid)
    hs.stop()


def test_stopping_a_start_in_progress_ends_stopped(hub):
    srv = hub.start_server("bob", "cancel", wait=False)
    assert srv["state"] == "starting", srv
    st, body = hub.user("bob").delete("/api/v1/servers/bob/cancel")
    assert st == 202 and body["state"] == "stopping", (st, body)
    end = hub.wait_state("bob", "cancel", ("stopped", "failed"), timeout=30)
    assert end["state"] == "stopped" and end["error"] is None, end
    assert end["stop_reason"] == "stopped by bob", end
    with hub.db() as db:
        pid = db.execute("SELECT s.pid FROM servers s JOIN users u ON u.id = s.user_id "
                         "WHERE u.name = 'bob' AND s.name = 'cancel'").fetchone()[0]
    assert pid and not pid_alive(pid)
    # and it can start again at once
    assert hub.start_server("bob", "cancel")["state"] == "running"
    hub.stop_server("bob", "cancel", remove=True)


def test_stop_servers_on_exit_stops_every_server_and_its_kernels(h):
    """--stop-servers-on-exit: SIGTERM stops every server (default and named,
    kernels included: jupyterhub#4926's "stop all" that skipped named servers)
    before nbhub exits; the rows say stopped, and the next start adopts nothing."""
    hs = HubServer(h, config="hub: {max_servers_per_user: 3}\n", args=["--stop-servers-on-exit"]).start()
    default = hs.start_server("alice")
    named = hs.start_server("alice", "dev")
    other = hs.start_server("bob")
    st, k = hs.user("alice").post("/user/alice/dev/api/kernels", {"name": "python3"})
    assert st == 201, (st, k)
    pids = [s["pid"] for s in (default, named, other)]
    tree = [p for pid in pids for p in descendants(pid)]
    assert tree, "the kernel should be a child of the named server"
    assert hs.stop() == 0, hs.log()
    assert not [p for p in pids + tree if pid_alive(p)], [p for p in pids + tree if pid_alive(p)]
    with hs.db() as db:
        states = [tuple(r) for r in db.execute("SELECT DISTINCT state FROM servers").fetchall()]
    assert states == [("stopped",)], states
    hs.start()
    assert hs.server("alice")["state"] == "stopped"
    hs.stop()


def test_why_a_server_stopped_is_kept_and_shown(hub):
    """Every stop says why (stop_reason on the servers row, in the API's
    Server, cleared by the next start): the owner's stop, an admin's, the
    process ending by itself, a start that exits.  It used to be lost: a
    stopped server looked the same whoever or whatever stopped it."""
    srv = hub.start_server("alice", "why")
    assert srv["state"] == "running" and srv["stop_reason"] is None, srv
    end = hub.stop_server("alice", "why")
    assert end["state"] == "stopped" and end["stop_reason"] == "stopped by alice", end
    with hub.db() as db:
        row = db.execute("SELECT s.stop_reason FROM servers s JOIN users u ON u.id = s.user_id "
                         "WHERE u.name = 'alice' AND s.name = 'why'").fetchone()
    assert row[0] == "stopped by alice", row
    # nbhub server list says it too
    p = subprocess.run([hub.h.env.get("NBHUB_BIN", os.environ.get("NBHUB_BIN")) or "nbhub", "server", "list",
                        "--url", f"http://127.0.0.1:{hub.port}", "--token", hub.user("alice").token],
                       capture_output=True, text=True, timeout=60, env=hub.h.env)
    line = next((l for l in p.stdout.splitlines() if " why " in l), "")
    assert p.returncode == 0 and "stopped" in line and line.rstrip().endswith("stopped by alice"), p.stdout

    # a start clears it; an admin's stop of alice's server says so
    srv = hub.start_server("alice", "why")
    assert srv["state"] == "running" and srv["stop_reason"] is None, srv
    st, body = hub.api.delete(hub.path("alice", "why"))
    assert st == 202, (st, body)
    end = hub.wait_state("alice", "why", ("stopped",), timeout=60)
    assert end["stop_reason"] == "stopped by admin admin", end

    # the process ends by itself (killed): not "stopped by" anyone
    srv = hub.start_server("alice", "why")
    os.killpg(srv["pid"], signal.SIGKILL)
    end = hub.wait_state("alice", "why", ("stopped",), timeout=30)
    assert end["stop_reason"] == "was killed by signal 9", end

    # a start that fails: the short reason, the long one stays in error
    end = hub.start_server("bob", "crashy", profile="crash")
    assert end["state"] == "failed", end
    assert end["stop_reason"] == "exited with code 3 before it was ready", end
    hub.stop_server("alice", "why", remove=True)
    hub.stop_server("bob", "crashy", remove=True)


def test_a_cancelled_start_says_who_stopped_it_in_its_progress(hub):
    """Someone following a start's progress (the page, JupyterHub's spawn
    page) sees why it ended when it is stopped before it is ready."""
    import http.client
    import threading
    bob = hub.user("bob")
    srv = hub.start_server("bob", "cancel2", wait=False)
    assert srv["state"] == "starting", srv
    c = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=60)
    c.request("GET", "/api/v1/servers/bob/cancel2/progress", headers={"Authorization": f"Bearer {bob.token}"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    events, first = [], threading.Event()

    def read():
        for raw in r:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                first.set()
        first.set()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert first.wait(30), events
    if events and events[-1].get("ready"):
        pytest.skip("the server was ready before the stop")
    st, body = bob.delete("/api/v1/servers/bob/cancel2")
    assert st == 202, (st, body)
    t.join(60)
    c.close()
    assert events[-1].get("failed") is True, events
    assert events[-1]["message"] == "The server was stopped: stopped by bob", events
    hub.wait_state("bob", "cancel2", ("stopped",), timeout=30)
    hub.stop_server("bob", "cancel2", remove=True)
