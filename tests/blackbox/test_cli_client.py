"""`nbhub flow|runs|user`: the CLI clients of the REST API (docs/cli.md, docs/api.md).

Three groups of tests:
  - no server at all: --help, usage errors (exit 2), an unreachable server
    (exit 7), the configuration lookup (flags, env, config file and its
    permissions), and `nbhub user` in local mode (--home), which writes
    nbhub.db directly and is how the first admin and token are made;
  - against a stub of the API (a small Python HTTP server in the test
    process that answers as docs/api.md says and records every request):
    what the CLI sends (methods, paths, ?filename=, bodies, the bearer
    token), how it maps answers to exit codes, tables and --json, and the
    subscribe-then-read order of `flow run --wait` over Server-Sent Events;
  - against the real `nbhub serve` (fixture `server`), skipped with a clear
    reason only while `nbhub serve --help` answers "unknown command".
"""

import hashlib
import json
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import stat
import subprocess
import termios
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import NBHUB, code, read_nb, wait_for, write_nb

TOKEN_RE = re.compile(r"^nbh_[A-Za-z0-9_-]{43}$")
SECRET = "nbh_" + "S3cr3t" * 7 + "x"          # a token-shaped secret that must never be printed
EXIT_CODES = ("0", "1", "2", "3", "4", "5", "6", "7")
REL = r"\((?:now|in \d+[smhd]|\d+[smhd] ago)\)"      # the relative part of a time cell


# --------------------------------------------------------------------------- helpers

def cli_env(h, **extra):
    """The harness environment, isolated from the user's own nbhub settings."""
    env = dict(h.env)
    for k in ("NBHUB_URL", "NBHUB_TOKEN", "NBHUB_HOME"):
        env.pop(k, None)
    xdg = h.tmp / "xdg"
    xdg.mkdir(exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(xdg)
    env["TZ"] = "UTC"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def nb(h, *args, input=None, env=None, cwd=None, timeout=60, **extra):
    return h.run(list(args), input=input, env=env or cli_env(h, **extra), cwd=cwd, timeout=timeout)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_usage(r):
    assert r.rc == 2, r
    assert r.stderr.strip(), r
    assert r.stdout == "", r


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


# --------------------------------------------------------------------------- help and usage

GROUPS = {
    "flow": ["list", "show", "apply", "run", "pause", "resume", "backfill", "delete"],
    "runs": ["list", "show", "logs", "cancel", "output"],
    "user": ["add", "passwd", "token", "list"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_help_lists_subcommands_and_exit_codes(h, group):
    for flag in ("--help", "-h", "help"):
        r = nb(h, group, flag)
        assert r.rc == 0, r
        assert r.stdout.startswith(f"usage: nbhub {group} "), r
        for sub in GROUPS[group]:
            assert re.search(rf"^  {sub} ", r.stdout, re.M), (sub, r.stdout)
        assert "Exit codes:" in r.stdout
        for c in EXIT_CODES:
            assert re.search(rf"^  {c}  ", r.stdout, re.M), (c, r.stdout)


@pytest.mark.parametrize("group,sub", [(g, s) for g in sorted(GROUPS) for s in GROUPS[g]])
def test_subcommand_help(h, group, sub):
    r = nb(h, group, sub, "--help")
    assert r.rc == 0, r
    assert r.stdout.startswith(f"usage: nbhub {group} {sub}"), r
    assert "--url" in r.stdout and "--token" in r.stdout
    assert "Exit codes:" in r.stdout and "cannot reach the server" in r.stdout
    assert r.stderr == ""
    # --help wins wherever it is
    r2 = nb(h, group, sub, "x", "--bogus", "-h")
    assert r2.rc == 0 and r2.stdout == r.stdout


@pytest.mark.parametrize("args", [
    ["flow"],
    ["flow", "frobnicate"],
    ["flow", "list", "--bogus"],
    ["flow", "list", "extra"],
    ["flow", "show"],
    ["flow", "show", "a", "b"],
    ["flow", "apply"],
    ["flow", "apply", "-", "-"],
    ["flow", "apply", "x.yaml", "--json"],
    ["flow", "run"],
    ["flow", "run", "f", "-p", "only-name"],
    ["flow", "run", "f", "--logical-date"],
    ["flow", "backfill", "f", "--from", "2026-01-01"],
    ["flow", "delete", "f", "--json"],
    ["flow", "list", "--url"],
    ["runs"],
    ["runs", "list", "--limit", "0"],
    ["runs", "list", "--limit", "1001"],
    ["runs", "list", "--limit", "ten"],
    ["runs", "list", "--before", "-3"],
    ["runs", "show"],
    ["runs", "show", "abc"],
    ["runs", "show", "0"],
    ["runs", "logs", "7"],
    ["runs", "logs", "7", "t", "--tail", "x"],
    ["runs", "logs", "7", "t", "--json"],
    ["runs", "cancel"],
    ["runs", "cancel", "7", "--task"],
    ["runs", "output", "7"],
    ["runs", "output", "7", "t", "-o"],
    ["user"],
    ["user", "add"],
    ["user", "add", "a", "--password-stdin", "--no-password"],
    ["user", "add", "a", "--home", "/tmp/x", "--url", "http://127.0.0.1:1"],
    ["user", "token", "a", "--expires-in", "soon"],
    ["user", "token", "a", "--expires-in", "0"],
    ["user", "token", "a", "--name", ""],
    ["user", "passwd"],
    ["user", "list", "bob"],
])
def test_usage_errors_exit_2(h, args):
    r = nb(h, *args)
    assert_usage(r)


def test_unreachable_server_exit_7(h):
    port = closed_port()
    for args in (["flow", "list"], ["runs", "show", "3"], ["flow", "run", "x", "--wait"],
                 ["user", "list"], ["runs", "logs", "1", "t"]):
        r = nb(h, *args, "--url", f"http://127.0.0.1:{port}", "--token", SECRET)
        assert r.rc == 7, r
        assert "cannot reach the server" in r.stderr and str(port) in r.stderr, r
        assert SECRET not in r.stderr + r.stdout
        assert r.stdout == ""
    # the same through NBHUB_URL, and the message says where the URL came from
    r = nb(h, "flow", "list", NBHUB_URL=f"http://127.0.0.1:{port}")
    assert r.rc == 7 and "NBHUB_URL" in r.stderr, r


def test_bad_url_is_invalid_input(h):
    r = nb(h, "flow", "list", "--url", "ftp://example.com")
    assert r.rc == 3, r
    assert "http://" in r.stderr
    r = nb(h, "flow", "list", NBHUB_URL="http://host name")
    assert r.rc == 3, r


def test_apply_unreadable_file_is_invalid_input(h):
    r = nb(h, "flow", "apply", h.tmp / "missing.yaml", "--url", f"http://127.0.0.1:{closed_port()}")
    assert r.rc == 3, r
    assert "missing.yaml" in r.stderr


# --------------------------------------------------------------------------- local users

def local_db(home):
    c = sqlite3.connect(f"file:{home / 'nbhub.db'}?mode=ro", uri=True, timeout=10)
    c.row_factory = sqlite3.Row
    return c


def test_local_bootstrap_first_admin_and_token(h):
    home = h.tmp / "state" / "nbhub"          # does not exist yet: `user add` makes it
    r = nb(h, "user", "add", "alice", "--admin", "--home", home, "--password-stdin",
           input="correct horse battery\n")
    assert r.rc == 0, r
    assert r.stdout == "created user alice (admin)\n"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "nbhub.db").st_mode) == 0o600

    r = nb(h, "user", "token", "alice", "--home", home)
    assert r.rc == 0, r
    tok = r.stdout.rstrip("\n")
    assert r.stdout == tok + "\n" and TOKEN_RE.match(tok), r.stdout   # alone on its line
    assert tok not in r.stderr

    with local_db(home) as db:
        u = db.execute("SELECT * FROM users WHERE name='alice'").fetchone()
        assert u["is_admin"] == 1
        assert u["password_hash"].startswith("$argon2id$")
        t = db.execute("SELECT * FROM api_tokens").fetchall()
        assert len(t) == 1
        assert t[0]["token_hash"] == sha256_hex(tok)      # only the digest is stored
        assert t[0]["name"] == "cli" and t[0]["expires_at"] is None
        assert t[0]["user_id"] == u["id"]


def test_local_mode_from_nbhub_home(h):
    home = h.tmp / "h"
    r = nb(h, "user", "add", "bob", "--no-password", NBHUB_HOME=home)
    assert r.rc == 0, r
    assert r.stdout == "created user bob\n"
    # NBHUB_URL set: the API is used (and here unreachable), not the local file
    r = nb(h, "user", "list", NBHUB_HOME=home, NBHUB_URL=f"http://127.0.0.1:{closed_port()}")
    assert r.rc == 7, r
    # --url as well
    r = nb(h, "user", "list", "--url", f"http://127.0.0.1:{closed_port()}", NBHUB_HOME=home)
    assert r.rc == 7, r
    r = nb(h, "user", "list", NBHUB_HOME=home)
    assert r.rc == 0, r
    with local_db(home) as db:
        assert db.execute("SELECT password_hash FROM users WHERE name='bob'").fetchone()[0] is None


def test_local_token_expiry_name_and_json(h):
    home = h.tmp / "h"
    assert nb(h, "user", "add", "carol", "--home", home, "--no-password").rc == 0
    t0 = time.time()
    r = nb(h, "user", "token", "carol", "--home", home, "--name", "ci", "--expires-in", "1h30m",
           "--json")
    assert r.rc == 0, r
    j = json.loads(r.stdout)
    assert sorted(j) == ["created_at", "expires_at", "id", "name", "token"]
    assert TOKEN_RE.match(j["token"]) and j["name"] == "ci"
    assert list(j) == sorted(j), "keys are sorted"
    with local_db(home) as db:
        row = db.execute("SELECT * FROM api_tokens WHERE id=?", (j["id"],)).fetchone()
    assert row["token_hash"] == sha256_hex(j["token"])
    assert abs(row["expires_at"] / 1e6 - (t0 + 5400)) < 60
    assert j["expires_at"].endswith("Z")


def test_local_errors(h):
    home = h.tmp / "h"
    # no database yet: not found, and nothing is created
    for args in (["user", "token", "x"], ["user", "list"]):
        r = nb(h, *args, "--home", home)
        assert r.rc == 4, r
        assert "user add" in r.stderr
    assert not home.exists()
    r = nb(h, "user", "passwd", "x", "--home", home, "--password-stdin", input="long enough 1\n")
    assert r.rc == 4, r

    assert nb(h, "user", "add", "dave", "--home", home, "--password-stdin",
              input="password-1\n").rc == 0
    # taken name: conflict
    r = nb(h, "user", "add", "dave", "--home", home, "--no-password")
    assert r.rc == 6 and "already exists" in r.stderr, r
    # unknown user
    r = nb(h, "user", "token", "erin", "--home", home)
    assert r.rc == 4 and "erin" in r.stderr, r
    # short password, empty stdin
    r = nb(h, "user", "add", "erin", "--home", home, "--password-stdin", input="short\n")
    assert r.rc == 3 and "at least 8" in r.stderr, r
    r = nb(h, "user", "add", "erin", "--home", home, "--password-stdin", input="")
    assert r.rc == 3, r
    # bad names
    for bad in ("a b", "a/b", "a:b", "x" * 65):
        r = nb(h, "user", "add", bad, "--home", home, "--no-password")
        assert r.rc == 3, (bad, r)
    # no terminal to ask on (the harness gives no controlling tty): usage
    r = nb(h, "user", "add", "erin", "--home", home)
    assert r.rc == 2 and "--password-stdin" in r.stderr, r
    # a file that is not an nbhub database
    junk = h.tmp / "junk"
    junk.mkdir()
    (junk / "nbhub.db").write_bytes(b"this is not sqlite" * 100)
    r = nb(h, "user", "list", "--home", junk)
    assert r.rc in (3, 7), r


def test_local_passwd_and_list(h):
    home = h.tmp / "h"
    assert nb(h, "user", "add", "fay", "--admin", "--home", home, "--password-stdin",
              input="first-password\n").rc == 0
    assert nb(h, "user", "add", "gus", "--home", home, "--no-password").rc == 0
    with local_db(home) as db:
        before = db.execute("SELECT password_hash FROM users WHERE name='fay'").fetchone()[0]
    r = nb(h, "user", "passwd", "fay", "--home", home, "--password-stdin",
           input="second-password\r\nignored second line\n")
    assert r.rc == 0, r
    assert r.stdout == "password of fay changed\n"
    with local_db(home) as db:
        after = db.execute("SELECT password_hash FROM users WHERE name='fay'").fetchone()[0]
    assert after != before and after.startswith("$argon2id$")
    # the CRLF was not part of the password: verify with argon2 if available
    try:
        from argon2 import PasswordHasher
        assert PasswordHasher().verify(after, "second-password")
    except ImportError:
        pass

    r = nb(h, "user", "list", "--home", home)
    assert r.rc == 0, r
    lines = r.stdout.splitlines()
    assert re.match(r"^ID +NAME +ADMIN +DISABLED +CREATED$", lines[0]), r.stdout
    assert re.match(rf"^ 1  fay +yes +no +\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {REL}$", lines[1]), r.stdout
    assert re.match(r"^ 2  gus +no +no ", lines[2]), r.stdout
    # columns are aligned: every row starts its NAME column where the header does
    col = lines[0].index("NAME")
    assert all(l[col - 2:col] == "  " and l[col] != " " for l in lines[1:])

    r = nb(h, "user", "list", "--home", home, "--json")
    assert r.rc == 0, r
    j = json.loads(r.stdout)
    assert [u["name"] for u in j["users"]] == ["fay", "gus"]
    assert j["users"][0]["admin"] is True and j["users"][1]["admin"] is False
    assert r.stdout == json.dumps(j, indent=2, sort_keys=True) + "\n"


def _pty_run(h, args, answers, timeout=30):
    """Run nbhub on a new pseudo-terminal (its controlling tty) and answer its prompts.
    Returns (rc, everything the terminal showed)."""
    env = cli_env(h)
    pid, fd = pty.fork()
    if pid == 0:   # child: exec at once
        try:
            os.execve(NBHUB, [NBHUB] + [str(a) for a in args], env)
        finally:
            os._exit(127)
    h.pids.append(pid)
    out = b""
    pos = 0
    deadline = time.monotonic() + timeout
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            if pending and out.find(pending[0][0].encode(), pos) >= 0:
                prompt, answer = pending.pop(0)
                pos = out.find(prompt.encode(), pos) + len(prompt)
                os.write(fd, answer.encode())
                continue
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    break
                out += data
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"pty run timed out: {out!r}")
        _, status = os.waitpid(pid, 0)
        h.tty_attrs = termios.tcgetattr(fd)     # the pty's settings as the child left them
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_password_prompt_on_tty_without_echo(h):
    home = h.tmp / "h"
    pw = "tty-password-42"
    rc, out = _pty_run(h, ["user", "add", "tina", "--home", home],
                       [("New password for tina: ", pw + "\n"), ("Repeat it: ", pw + "\n")])
    assert rc == 0, out
    assert pw not in out, f"the password was echoed: {out!r}"
    assert "created user tina" in out
    with local_db(home) as db:
        assert db.execute("SELECT password_hash FROM users WHERE name='tina'").fetchone()[0]


def test_password_prompt_ctrl_c_restores_echo(h):
    home = h.tmp / "h"
    rc, out = _pty_run(h, ["user", "add", "vic", "--home", home],
                       [("New password for vic: ", "\x03")])
    assert rc == -signal.SIGINT, (rc, out)
    assert h.tty_attrs[3] & termios.ECHO, "echo left off after Ctrl-C"
    assert not (home / "nbhub.db").exists()


def test_password_prompt_mismatch(h):
    home = h.tmp / "h"
    rc, out = _pty_run(h, ["user", "add", "uma", "--home", home],
                       [("New password for uma: ", "first-one-1\n"), ("Repeat it: ", "other-one-2\n")])
    assert rc == 3, out
    assert "differ" in out


# --------------------------------------------------------------------------- stub server

class Req:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body
        self.t = time.monotonic()

    def json(self):
        return json.loads(self.body)

    def q(self, k):
        return self.query.get(k, [None])[0]


class SSE:
    """An event-stream answer: waits for `after` (a threading.Event) if given,
    then sends the events, then holds the connection open for `hold` s."""

    def __init__(self, events, after=None, hold=10.0):
        self.events, self.after, self.hold = events, after, hold


class Stub:
    """A tiny stand-in for `nbhub serve`'s API: routes answer canned or computed
    responses; every request is recorded."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                # routes and records use the path as sent (still %-encoded)
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Req(self.command, u.path, urllib.parse.parse_qs(u.query, keep_blank_values=True),
                          {k.lower(): v for k, v in self.headers.items()}, body)
                with stub.lock:
                    stub.requests.append(req)
                    route = stub.routes.get((self.command, u.path))
                if route is None:
                    res = (404, {"error": {"code": "not_found", "message": f"no route {u.path}"}})
                else:
                    res = route(req) if callable(route) else route
                if isinstance(res, SSE):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    self.wfile.write(b": hello\n\n")
                    self.wfile.flush()
                    if res.after is not None:
                        res.after.wait(10)
                    try:
                        for ev in res.events:
                            self.wfile.write(ev.encode())
                            self.wfile.flush()
                            time.sleep(0.02)
                        stub.stopping.wait(res.hold)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                status, payload = res[0], res[1]
                ctype = res[2] if len(res) > 2 else "application/json"
                extra = res[3] if len(res) > 3 else {}
                if isinstance(payload, (dict, list)):
                    data = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    data = payload.encode()
                else:
                    data = payload or b""
                self.send_response(status)
                if data or status != 204:
                    self.send_header("Content-Type", ctype)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, method, path, answer):
        self.routes[(method, path)] = answer

    def reqs(self, method=None, path=None):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]

    def close(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def api(h, stub, *args, token="tok-stub", **kw):
    """Run a client command against the stub with NBHUB_URL/NBHUB_TOKEN set."""
    env = kw.pop("env", None) or cli_env(h, NBHUB_URL=stub.url, NBHUB_TOKEN=token)
    return nb(h, *args, env=env, **kw)


def ev(i, kind, **data):
    body = dict({"id": i, "at": "2026-11-22T05:00:00Z", "kind": kind}, **data)
    return f"id: {i}\nevent: {kind}\ndata: {json.dumps(body)}\n\n"


FLOW_SUMMARY = {
    "name": "daily-report", "description": "Greets each region", "owner": "alice",
    "schedule": "0 5 * * *", "timezone": "Europe/Berlin", "paused": False, "version": 3,
    "next_run": "2026-11-23T04:00:00Z", "last_run": {"id": 7, "run_id": "scheduled__x", "state": "success"},
    "tasks": 6, "source_path": "/srv/flows/daily-report.yaml", "errors": [],
}


def run_obj(i, state, tasks=None, flow="tiny"):
    return {"id": i, "run_id": f"manual__2026-11-22T05:00:0{i % 10}+00:00", "flow": flow,
            "kind": "manual", "state": state, "logical_date": "2026-11-22T05:00:00Z",
            "params": None, "created_at": "2026-11-22T05:00:00Z",
            "started_at": "2026-11-22T05:00:01Z" if state != "queued" else None,
            "ended_at": "2026-11-22T05:00:03.5Z" if state in ("success", "failed", "cancelled") else None,
            "triggered_by": "alice", "flow_version": 1,
            "tasks": tasks if tasks is not None else [
                {"name": "t", "state": state if state != "queued" else "pending", "try_number": 1,
                 "max_tries": 1, "queued_at": None, "started_at": "2026-11-22T05:00:01Z",
                 "ended_at": None, "next_retry_at": None, "exit_code": 0 if state == "success" else None,
                 "error": None, "has_output": False, "has_log": True}]}


def test_stub_apply_sends_bytes_filename_and_token(h, stub):
    flows = h.tmp / "flows"
    flows.mkdir()
    good = flows / "good.yaml"
    good.write_bytes(b"name: good\n# \xc3\xa9 kept as bytes\ntasks:\n  t:\n    command: [\"true\"]\n")
    bad = flows / "bad.yaml"
    bad.write_text("name: bad\ntasks:\n  t:\n    comand: [\"true\"]\n")
    same = flows / "same.yaml"
    same.write_text("name: same\n")

    def apply(req):
        fn = req.q("filename")
        if req.q("dry_run") == "1":
            return (200, {"name": "good", "version": 0, "changed": True, "dry_run": True})
        if "bad" in fn:
            return (400, {"error": {"code": "invalid_flow", "message": "the flow file has 2 errors",
                                    "details": [f"{fn}:3:3: task 't' needs 'notebook', 'command' or 'spark_submit'",
                                                f"{fn}:4:5: unknown key 'comand'; did you mean 'command'?"]}})
        if "same" in fn:
            return (200, {"name": "same", "version": 4, "changed": False})
        return (201, {"name": "good", "version": 1, "changed": True})
    stub.route("POST", "/api/v1/flows", apply)

    r = api(h, stub, "flow", "apply", "flows/good.yaml", "flows/bad.yaml", "flows/same.yaml", cwd=h.tmp)
    assert r.rc == 3, r
    assert r.stdout == ("flows/good.yaml: created flow good (version 1)\n"
                        "flows/same.yaml: unchanged flow same (version 4)\n"), r
    err = r.stderr.splitlines()
    assert "nbhub: the flow file has 2 errors" in err
    # positions name the user's path, printed bare (compiler style)
    assert "flows/bad.yaml:3:3: task 't' needs 'notebook', 'command' or 'spark_submit'" in err
    assert "flows/bad.yaml:4:5: unknown key 'comand'; did you mean 'command'?" in err

    reqs = stub.reqs("POST", "/api/v1/flows")
    assert [q.q("filename") for q in reqs] == ["flows/good.yaml", "flows/bad.yaml", "flows/same.yaml"]
    assert reqs[0].body == good.read_bytes()
    for q in reqs:
        assert q.headers["content-type"] == "application/yaml"
        assert q.headers["authorization"] == "Bearer tok-stub"
        assert q.q("dry_run") is None

    # stdin and --dry-run
    r = api(h, stub, "flow", "apply", "-", "--dry-run", input="name: good\n")
    assert r.rc == 0 and r.stdout == "<stdin>: valid; flow good would be created\n", r
    q = stub.reqs("POST", "/api/v1/flows")[-1]
    assert q.q("filename") == "<stdin>" and q.q("dry_run") == "1" and q.body == b"name: good\n"


def test_stub_apply_stops_on_auth_failure(h, stub):
    stub.route("POST", "/api/v1/flows", (401, {"error": {"code": "unauthorized",
                                                         "message": "invalid or expired credentials"}}))
    for n in ("a", "b"):
        (h.tmp / f"{n}.yaml").write_text(f"name: {n}\n")
    r = api(h, stub, "flow", "apply", "a.yaml", "b.yaml", cwd=h.tmp, token=SECRET)
    assert r.rc == 5, r
    assert len(stub.reqs("POST", "/api/v1/flows")) == 1, "the second file is not tried"
    assert "NBHUB_TOKEN" in r.stderr and SECRET not in r.stderr + r.stdout


@pytest.mark.parametrize("status,code,rc", [
    (400, "bad_request", 3), (401, "unauthorized", 5), (403, "forbidden", 5),
    (404, "not_found", 4), (405, "method_not_allowed", 7), (409, "conflict", 6),
    (413, "too_large", 3), (500, "internal", 7), (503, "unavailable", 7),
])
def test_stub_status_to_exit_code(h, stub, status, code, rc):
    msg = f"message for {code}"
    stub.route("GET", "/api/v1/flows/x", (status, {"error": {"code": code, "message": msg}}))
    r = api(h, stub, "flow", "show", "x", token=SECRET)
    assert r.rc == rc, r
    assert r.stderr.splitlines()[0] == f"nbhub: {msg}", r
    assert r.stdout == ""
    assert SECRET not in r.stderr


def test_stub_non_json_error_and_redirect(h, stub):
    stub.route("GET", "/api/v1/flows", (502, "<html>bad gateway</html>", "text/html"))
    r = api(h, stub, "flow", "list")
    assert r.rc == 7 and "HTTP 502" in r.stderr and "<html>" not in r.stderr, r
    stub.route("GET", "/api/v1/flows", (200, "not json", "text/plain"))
    r = api(h, stub, "flow", "list")
    assert r.rc == 7 and "not JSON" in r.stderr, r
    stub.route("GET", "/api/v1/runs", (302, "", "text/plain", {"Location": "http://elsewhere.invalid/x"}))
    r = api(h, stub, "runs", "list")
    assert r.rc == 7 and "redirects (HTTP 302) to http://elsewhere.invalid/x" in r.stderr, r
    assert len(stub.reqs("GET", "/api/v1/runs")) == 1, "a redirect is not followed"


def test_stub_no_token_hint(h, stub):
    stub.route("GET", "/api/v1/flows", (401, {"error": {"code": "unauthorized", "message": "no credentials"}}))
    r = nb(h, "flow", "list", env=cli_env(h, NBHUB_URL=stub.url))
    assert r.rc == 5, r
    assert "no API token" in r.stderr and "user token" in r.stderr
    assert "authorization" not in stub.reqs("GET", "/api/v1/flows")[0].headers


def test_stub_server_text_is_sanitised(h, stub):
    stub.route("GET", "/api/v1/flows/x", (404, {"error": {"code": "not_found",
                                                          "message": "no flow \x1b]0;pwned\x07 here"}}))
    r = api(h, stub, "flow", "show", "x")
    assert r.rc == 4
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr


def test_stub_flow_list_table_and_json(h, stub):
    paused = dict(FLOW_SUMMARY, name="b-flow", paused=True, schedule=None, last_run=None,
                  next_run=None, owner=None, tasks=12, errors=["b.yaml:1:1: boom"])
    answer = {"flows": [FLOW_SUMMARY, paused]}
    stub.route("GET", "/api/v1/flows", (200, answer))
    r = api(h, stub, "flow", "list")
    assert r.rc == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "STATE", "NEXT", "RUN", "LAST", "RUN", "TASKS", "OWNER"]
    assert re.match(rf"^daily-report +0 5 \* \* \* +active +2026-11-23 04:00:00 {REL} +#7 success +6 +alice$",
                    lines[1]), r.stdout
    assert re.match(r"^b-flow +manual +paused, 1 error +- +- +12 +-$", lines[2]), r.stdout
    # aligned: each header starts where its cells start (TASKS is right-aligned: ends align)
    for hdr in ("SCHEDULE", "STATE", "NEXT RUN", "LAST RUN", "OWNER"):
        col = lines[0].index(hdr)
        for l in lines[1:]:
            assert l[col - 2:col] == "  " and l[col] != " ", (hdr, r.stdout)
    end = lines[0].index("TASKS") + len("TASKS")
    assert all(l[end - 1] != " " and l[end:end + 2] == "  " for l in lines[1:]), r.stdout

    r = api(h, stub, "flow", "list", "--json")
    assert r.rc == 0, r
    assert json.loads(r.stdout) == answer
    assert r.stdout == json.dumps(answer, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    stub.route("GET", "/api/v1/flows", (200, {"flows": []}))
    r = api(h, stub, "flow", "list")
    assert r.rc == 0 and r.stdout == "No flows.\n"


def test_stub_flow_show(h, stub):
    flow = dict(FLOW_SUMMARY, errors=["daily-report.yaml:9:7: bad cron"],
                spec={"tasks": [{"name": "prepare", "command": ["python3", "-c", "print(1)"], "after": [],
                                 "retries": 1, "timeout": 600, "trigger_rule": "all_success"},
                                {"name": "report", "notebook": "outputs.ipynb", "after": ["prepare", "x"],
                                 "retries": 0, "timeout": 0, "trigger_rule": "all_done"}]})
    stub.route("GET", "/api/v1/flows/daily-report", (200, flow))
    r = api(h, stub, "flow", "show", "daily-report")
    assert r.rc == 0, r
    out = r.stdout
    assert re.search(r"^Name: +daily-report$", out, re.M)
    assert re.search(r"^Schedule: +0 5 \* \* \* \(Europe/Berlin\)$", out, re.M)
    assert re.search(r"^State: +active, 1 error$", out, re.M)
    assert re.search(r"^prepare +python3 -c print\(1\) +- +all_success +1 +10m00s$", out, re.M), out
    assert re.search(r"^report +outputs.ipynb +prepare,x +all_done +0 +-$", out, re.M), out
    assert "daily-report.yaml:9:7: bad cron" in out
    r = api(h, stub, "flow", "show", "daily-report", "--json")
    assert json.loads(r.stdout) == flow
    # names are %-escaped into the path (a '/' cannot change the route)
    stub.route("GET", "/api/v1/flows/a%20b%2Fc%3F", (200, flow))
    r = api(h, stub, "flow", "show", "a b/c?")
    assert r.rc == 0, r
    assert stub.reqs("GET")[-1].path == "/api/v1/flows/a%20b%2Fc%3F"


def test_stub_run_params_typed_like_papermill(h, stub):
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(9, "queued")))
    r = api(h, stub, "flow", "run", "tiny", "-p", "n", "3", "-p", "f", "1.5", "-p", "b", "True",
            "-p", "z", "None", "-p", "s", "hello", "-r", "raw", "3", "--parameters", "e", "1e3",
            "--logical-date", "2026-01-01T00:00:00Z")
    assert r.rc == 0, r
    assert r.stdout == "run 9 (manual__2026-11-22T05:00:09+00:00) queued\n"
    body = stub.reqs("POST", "/api/v1/flows/tiny/runs")[0].json()
    assert body == {"params": {"n": 3, "f": 1.5, "b": True, "z": None, "s": "hello", "raw": "3",
                               "e": 1000.0},
                    "logical_date": "2026-01-01T00:00:00Z"}
    r = api(h, stub, "flow", "run", "tiny", "--json")
    assert json.loads(r.stdout)["id"] == 9
    assert stub.reqs("POST", "/api/v1/flows/tiny/runs")[-1].json() == {}


def test_stub_run_wait_subscribes_then_reads(h, stub):
    first_get = threading.Event()
    gets = []

    def get_run(req):
        gets.append(req.t)
        first_get.set()
        return (200, run_obj(7, "running" if len(gets) == 1 else "success"))
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(7, "queued")))
    stub.route("GET", "/api/v1/runs/7", get_run)
    stub.route("GET", "/api/v1/events", SSE([
        ev(40, "task.running", flow="other", run=8, task="t"),       # someone else's run
        ev(41, "task.running", flow="tiny", run=7, task="t"),
        ev(42, "task.success", flow="tiny", run=7, task="t"),
        ev(43, "run.success", flow="tiny", run=7),
    ], after=first_get))
    t0 = time.monotonic()
    r = api(h, stub, "flow", "run", "tiny", "--wait")
    took = time.monotonic() - t0
    assert r.rc == 0, r
    assert re.search(r"^State: +success$", r.stdout, re.M), r.stdout
    assert re.search(r"^t +success +1/1 ", r.stdout, re.M), r.stdout
    sse = stub.reqs("GET", "/api/v1/events")
    assert len(sse) == 1 and sse[0].headers["accept"] == "text/event-stream"
    assert sse[0].headers["authorization"] == "Bearer tok-stub"
    assert sse[0].t < gets[0], "the stream must be open before the run is read"
    assert len(gets) == 2, "read once after subscribing, once after run.success"
    assert took < 8, "woken by the event, not by a timeout"


def test_stub_run_wait_failed_exit_1_json(h, stub):
    first_get = threading.Event()
    n = []

    def get_run(req):
        n.append(1)
        first_get.set()
        return (200, run_obj(5, "running" if len(n) == 1 else "failed"))
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(5, "queued")))
    stub.route("GET", "/api/v1/runs/5", get_run)
    stub.route("GET", "/api/v1/events", SSE([ev(1, "run.failed", flow="tiny", run=5)], after=first_get))
    r = api(h, stub, "flow", "run", "tiny", "--wait", "--json")
    assert r.rc == 1, r
    assert json.loads(r.stdout)["state"] == "failed"


def test_stub_run_wait_polls_without_event_stream(h, stub):
    n = []

    def get_run(req):
        n.append(1)
        return (200, run_obj(3, "running" if len(n) < 3 else "cancelled"))
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(3, "queued")))
    stub.route("GET", "/api/v1/runs/3", get_run)
    # no /api/v1/events route: 404, so the CLI polls
    r = api(h, stub, "flow", "run", "tiny", "--wait")
    assert r.rc == 1, r
    assert re.search(r"^State: +cancelled$", r.stdout, re.M)
    assert len(n) == 3


def test_stub_run_wait_stream_ends_then_resumes(h, stub):
    """The stream closes after one event; the CLI reconnects with Last-Event-ID."""
    first_get = threading.Event()
    n = []

    def get_run(req):
        n.append(1)
        first_get.set()
        return (200, run_obj(4, "running" if len(n) <= 2 else "success"))

    streams = []

    def events(req):
        streams.append(req)
        if len(streams) == 1:
            return SSE([ev(10, "task.running", flow="tiny", run=4, task="t")], after=first_get, hold=0)
        return SSE([ev(11, "run.success", flow="tiny", run=4)], hold=5)
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(4, "queued")))
    stub.route("GET", "/api/v1/runs/4", get_run)
    stub.route("GET", "/api/v1/events", events)
    r = api(h, stub, "flow", "run", "tiny", "--wait")
    assert r.rc == 0, r
    assert len(streams) == 2
    assert "last-event-id" not in streams[0].headers
    assert streams[1].headers["last-event-id"] == "10"


def test_stub_run_wait_endless_event_falls_back_to_polling(h, stub):
    n = []

    def get_run(req):
        n.append(1)
        return (200, run_obj(6, "running" if len(n) < 4 else "success"))
    streams = []

    def events(req):
        streams.append(req)
        return SSE(["data: " + "x" * 300_000] * 8, hold=5)     # 2.4 MB, never a line end
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(6, "queued")))
    stub.route("GET", "/api/v1/runs/6", get_run)
    stub.route("GET", "/api/v1/events", events)
    r = api(h, stub, "flow", "run", "tiny", "--wait", timeout=60)
    assert r.rc == 0, r
    assert 1 <= len(streams) <= 6, len(streams)


def test_stub_run_wait_auth_failure_on_stream(h, stub):
    stub.route("POST", "/api/v1/flows/tiny/runs", (201, run_obj(2, "queued")))
    stub.route("GET", "/api/v1/events", (401, {"error": {"code": "unauthorized", "message": "expired"}}))
    r = api(h, stub, "flow", "run", "tiny", "--wait")
    assert r.rc == 5, r


def test_stub_pause_resume_delete_backfill(h, stub):
    stub.route("POST", "/api/v1/flows/f/pause", (200, dict(FLOW_SUMMARY, name="f", paused=True)))
    stub.route("POST", "/api/v1/flows/f/resume", (200, dict(FLOW_SUMMARY, name="f")))
    stub.route("DELETE", "/api/v1/flows/f", (204, b""))
    stub.route("POST", "/api/v1/flows/f/backfill",
               (201, {"runs": [run_obj(11, "queued", flow="f"), run_obj(12, "queued", flow="f")]}))
    r = api(h, stub, "flow", "pause", "f")
    assert (r.rc, r.stdout) == (0, "paused flow f\n"), r
    r = api(h, stub, "flow", "pause", "f", "--json")
    assert json.loads(r.stdout)["paused"] is True
    r = api(h, stub, "flow", "resume", "f")
    assert (r.rc, r.stdout) == (0, "resumed flow f\n"), r
    r = api(h, stub, "flow", "delete", "f")
    assert (r.rc, r.stdout) == (0, "deleted flow f\n"), r
    assert stub.reqs("DELETE")[0].path == "/api/v1/flows/f"
    r = api(h, stub, "flow", "backfill", "f", "--from", "2026-01-01", "--to=2026-01-02")
    assert r.rc == 0, r
    assert stub.reqs("POST", "/api/v1/flows/f/backfill")[0].json() == {"from": "2026-01-01",
                                                                       "to": "2026-01-02"}
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "FLOW", "RUN", "ID"]
    assert [l.split()[0] for l in lines[1:]] == ["11", "12"]
    stub.route("POST", "/api/v1/flows/f/backfill", (201, {"runs": []}))
    r = api(h, stub, "flow", "backfill", "f", "--from", "2026-01-01", "--to", "2026-01-02")
    assert r.rc == 0 and "No new runs" in r.stdout
    stub.route("DELETE", "/api/v1/flows/f", (409, {"error": {"code": "conflict",
                                                             "message": "flow 'f' has active runs"}}))
    r = api(h, stub, "flow", "delete", "f")
    assert r.rc == 6 and "active runs" in r.stderr


def test_stub_runs_list_query_and_paging_hint(h, stub):
    runs = [run_obj(12, "running"), run_obj(11, "success")]
    for r_ in runs:
        del r_["tasks"]
    stub.route("GET", "/api/v1/runs", (200, {"runs": runs, "next": 11}))
    r = api(h, stub, "runs", "list", "--flow", "my flow", "--state", "success", "--limit", "2",
            "--before", "20")
    assert r.rc == 0, r
    q = stub.reqs("GET", "/api/v1/runs")[0]
    assert q.query == {"flow": ["my flow"], "state": ["success"], "limit": ["2"], "before": ["20"]}
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "FLOW", "RUN", "ID", "KIND", "STATE", "STARTED", "DURATION"]
    assert re.match(rf"^12  tiny +manual__\S+ +manual +running +2026-11-22 05:00:01 {REL} +\S+$", lines[1]), r.stdout
    assert re.match(r"^11  tiny .* success .* 2\.5s$", lines[2]), r.stdout
    assert "--before 11" in r.stderr
    r = api(h, stub, "runs", "list", "--json")
    assert json.loads(r.stdout) == {"runs": runs, "next": 11}
    assert stub.reqs("GET", "/api/v1/runs")[-1].query == {}


def test_stub_runs_show_logs_cancel(h, stub):
    run = run_obj(7, "failed", tasks=[
        {"name": "extract", "state": "success", "try_number": 1, "max_tries": 2,
         "started_at": "2026-11-22T05:00:01Z", "ended_at": "2026-11-22T05:02:06Z", "exit_code": 0,
         "error": None},
        {"name": "load", "state": "failed", "try_number": 2, "max_tries": 2,
         "started_at": "2026-11-22T05:02:06Z", "ended_at": "2026-11-22T05:02:07Z", "exit_code": 1,
         "error": "Traceback (most recent call last):\n  File x\nValueError: " + "v" * 200},
    ])
    run["params"] = {"region": "eu", "n": 2}
    stub.route("GET", "/api/v1/runs/7", (200, run))
    r = api(h, stub, "runs", "show", "7")
    assert r.rc == 0, r
    out = r.stdout
    assert re.search(r"^State: +failed$", out, re.M)
    assert re.search(r'^Params: +\{"n":2,"region":"eu"\}$', out, re.M)
    assert re.search(rf"^extract +success +1/2 +2026-11-22 05:00:01 {REL} +2m05s +0 +-$", out, re.M), out
    m = re.search(r"^load +failed +2/2 .* +1\.0s +1 +(Traceback.*)$", out, re.M)
    assert m and m.group(1).endswith("\u2026") and "\n" not in m.group(1), out
    assert len(m.group(1)) == 50
    assert json.loads(api(h, stub, "runs", "show", "7", "--json").stdout) == run

    log = b"line 1\n\xff raw bytes \x1b[31m kept\n"
    stub.route("GET", "/api/v1/runs/7/tasks/load/log", (200, log, "text/plain"))
    p = h.popen(["runs", "logs", "7", "load", "--tail", "100"], env=cli_env(h, NBHUB_URL=stub.url))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out == log, "logs pass through byte for byte"
    assert stub.reqs("GET", "/api/v1/runs/7/tasks/load/log")[0].q("tail") == "100"

    stub.route("POST", "/api/v1/runs/7/cancel", (200, dict(run, state="cancelled")))
    r = api(h, stub, "runs", "cancel", "7")
    assert (r.rc, r.stdout) == (0, "run 7 is cancelled\n"), r
    stub.route("POST", "/api/v1/runs/7/tasks/load/cancel", (200, dict(run["tasks"][1], error="cancelled")))
    r = api(h, stub, "runs", "cancel", "7", "--task", "load")
    assert (r.rc, r.stdout) == (0, "run 7: task load is failed\n"), r
    stub.route("POST", "/api/v1/runs/7/cancel", (409, {"error": {"code": "conflict",
                                                                "message": "the run has already finished"}}))
    r = api(h, stub, "runs", "cancel", "7")
    assert r.rc == 6 and "already finished" in r.stderr, r


def test_stub_runs_output_atomic(h, stub):
    nbtext = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    stub.route("GET", "/api/v1/runs/7/tasks/t/output", (200, nbtext, "application/x-ipynb+json"))
    out = h.tmp / "out.ipynb"
    r = api(h, stub, "runs", "output", "7", "t", "-o", out)
    assert r.rc == 0 and r.stdout == "", r
    assert out.read_text() == nbtext
    r = api(h, stub, "runs", "output", "7", "t")
    assert r.rc == 0 and r.stdout == nbtext
    # a failed download leaves the file as it was, and no temp file behind
    out.write_text("previous")
    stub.route("GET", "/api/v1/runs/7/tasks/t/output", (404, {"error": {"code": "not_found",
                                                                      "message": "no output"}}))
    r = api(h, stub, "runs", "output", "7", "t", "--output", out)
    assert r.rc == 4, r
    assert out.read_text() == "previous"
    assert sorted(p.name for p in h.tmp.iterdir() if p.name.startswith("out.ipynb")) == ["out.ipynb"]
    # an unwritable destination: exit 1
    stub.route("GET", "/api/v1/runs/7/tasks/t/output", (200, nbtext, "application/x-ipynb+json"))
    r = api(h, stub, "runs", "output", "7", "t", "-o", h.tmp / "no-such-dir" / "x.ipynb")
    assert r.rc == 1, r


def test_stub_user_api(h, stub):
    user = {"id": 2, "name": "bob", "admin": False, "created_at": "2026-11-22T05:00:00Z", "disabled": False}
    stub.route("POST", "/api/v1/users", (201, user))
    r = api(h, stub, "user", "add", "bob", "--password-stdin", input="bobs-password\n")
    assert (r.rc, r.stdout) == (0, "created user bob\n"), r
    assert stub.reqs("POST", "/api/v1/users")[0].json() == {"name": "bob", "admin": False,
                                                            "password": "bobs-password"}
    r = api(h, stub, "user", "add", "bob", "--admin", "--no-password", "--json")
    assert json.loads(r.stdout) == user
    assert stub.reqs("POST", "/api/v1/users")[1].json() == {"name": "bob", "admin": True}

    tok = "nbh_" + "A" * 43
    stub.route("POST", "/api/v1/users/bob/tokens",
               (201, {"id": 5, "name": "ci", "token": tok, "created_at": "2026-11-22T05:00:00Z",
                      "expires_at": None}))
    r = api(h, stub, "user", "token", "bob", "--name", "ci", "--expires-in", "2d")
    assert (r.rc, r.stdout) == (0, tok + "\n"), r
    assert stub.reqs("POST", "/api/v1/users/bob/tokens")[0].json() == {"name": "ci", "expires_in": 172800}

    stub.route("GET", "/api/v1/me", (200, dict(user, id=1, name="root", admin=True)))
    stub.route("PUT", "/api/v1/users/bob/password", (204, b""))
    r = api(h, stub, "user", "passwd", "bob", "--password-stdin", input="new-password\n")
    assert (r.rc, r.stdout) == (0, "password of bob changed\n"), r
    assert stub.reqs("PUT")[0].json() == {"password": "new-password"}

    stub.route("GET", "/api/v1/users", (200, {"users": [user]}))
    r = api(h, stub, "user", "list")
    assert r.rc == 0 and re.match(r"^ 2  bob +no +no ", r.stdout.splitlines()[1]), r
    stub.route("GET", "/api/v1/users", (403, {"error": {"code": "forbidden", "message": "admins only"}}))
    r = api(h, stub, "user", "list")
    assert r.rc == 5, r
    stub.route("POST", "/api/v1/users", (409, {"error": {"code": "conflict", "message": "taken"}}))
    r = api(h, stub, "user", "add", "bob", "--no-password")
    assert r.rc == 6, r


# --------------------------------------------------------------------------- configuration

def write_config(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_config_file_xdg_and_precedence(h, stub):
    stub.route("GET", "/api/v1/flows", (200, {"flows": []}))
    env = cli_env(h)
    cfg = write_config(Path(env["XDG_CONFIG_HOME"]) / "nbhub" / "config.yaml",
                       f"url: {stub.url}/\ntoken: file-token\n")
    r = nb(h, "flow", "list", env=env)
    assert r.rc == 0, r
    assert stub.reqs()[-1].headers["authorization"] == "Bearer file-token"
    # env beats the file, flag beats env; the file still fills what is missing
    r = nb(h, "flow", "list", env=dict(env, NBHUB_TOKEN="env-token"))
    assert r.rc == 0 and stub.reqs()[-1].headers["authorization"] == "Bearer env-token"
    r = nb(h, "flow", "list", "--token", "flag-token", env=dict(env, NBHUB_TOKEN="env-token"))
    assert r.rc == 0 and stub.reqs()[-1].headers["authorization"] == "Bearer flag-token"
    r = nb(h, "flow", "list", env=dict(env, NBHUB_URL=f"http://127.0.0.1:{closed_port()}"))
    assert r.rc == 7
    # without XDG_CONFIG_HOME: ~/.config
    home = h.tmp / "home"
    write_config(home / ".config" / "nbhub" / "config.yaml", f"url: {stub.url}\ntoken: home-token\n")
    env2 = dict(env, HOME=str(home))
    env2.pop("XDG_CONFIG_HOME")
    r = nb(h, "flow", "list", env=env2)
    assert r.rc == 0 and stub.reqs()[-1].headers["authorization"] == "Bearer home-token", r
    # a relative XDG_CONFIG_HOME is ignored (XDG spec)
    r = nb(h, "flow", "list", env=dict(env2, XDG_CONFIG_HOME="relative/dir"))
    assert r.rc == 0 and stub.reqs()[-1].headers["authorization"] == "Bearer home-token", r
    assert cfg.exists()


def test_config_file_must_be_private(h, stub):
    stub.route("GET", "/api/v1/flows", (200, {"flows": []}))
    env = cli_env(h)
    cfg = write_config(Path(env["XDG_CONFIG_HOME"]) / "nbhub" / "config.yaml",
                       f"url: {stub.url}\ntoken: {SECRET}\n", mode=0o644)
    r = nb(h, "flow", "list", env=env)
    assert r.rc == 3, r
    assert str(cfg) in r.stderr and "chmod 600" in r.stderr and "0644" in r.stderr
    assert SECRET not in r.stderr + r.stdout
    assert stub.reqs() == []
    os.chmod(cfg, 0o640)
    assert nb(h, "flow", "list", env=env).rc == 3
    os.chmod(cfg, 0o600)
    assert nb(h, "flow", "list", env=env).rc == 0
    # not read at all when flags/env give both
    os.chmod(cfg, 0o666)
    r = nb(h, "flow", "list", env=dict(env, NBHUB_URL=stub.url, NBHUB_TOKEN="t"))
    assert r.rc == 0, r


def test_config_file_malformed(h):
    env = cli_env(h)
    cfg = Path(env["XDG_CONFIG_HOME"]) / "nbhub" / "config.yaml"
    for text in ("url: [unclosed\n", "- a list\n", "url: {a: 1}\n"):
        write_config(cfg, text)
        r = nb(h, "flow", "list", env=env)
        assert r.rc == 3, (text, r)
        assert str(cfg) in r.stderr, r
    write_config(cfg, "token: 'has space'\n")
    r = nb(h, "flow", "list", env=env)
    assert r.rc == 3 and "has space" not in r.stderr, r
    write_config(cfg, "")     # empty: the defaults (and here nothing listens on 8765)
    r = nb(h, "flow", "list", env=env)
    assert r.rc in (0, 5, 7), r


# --------------------------------------------------------------------------- the real server

def _serve_available():
    r = subprocess.run([NBHUB, "serve", "--help"], capture_output=True, text=True, timeout=30)
    return not (r.returncode != 0 and "unknown command" in r.stderr)


class RealServer:
    def __init__(self, h):
        self.h = h
        self.home = h.tmp / "srv"
        self.port = None
        self.proc = None

    def start(self):
        # The first admin and token come from the local mode, as a new operator would do it.
        r = nb(self.h, "user", "add", "root", "--admin", "--home", self.home, "--password-stdin",
               input="root-password-1\n")
        assert r.rc == 0, r
        r = nb(self.h, "user", "token", "root", "--home", self.home)
        assert r.rc == 0, r
        self.token = r.stdout.strip()
        for _ in range(5):
            self.port = closed_port()
            self.log = open(self.h.tmp / "serve.log", "wb")
            self.proc = self.h.popen(["serve", "--home", self.home, "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=self.log, env=cli_env(self.h))

            def up():
                if self.proc.poll() is not None:
                    return "exited"
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                        return b" 200 " in s.recv(100)
                except OSError:
                    return False
            state = wait_for(up, 30, interval=0.05)
            if state is True:
                self.url = f"http://127.0.0.1:{self.port}"
                return self
            if self.proc.poll() == 9:       # the port was taken meanwhile: try another
                self.log.close()
                continue
            pytest.fail(f"nbhub serve did not start ({state}):\n{self.logtext()}")
        pytest.fail("no free port for nbhub serve")

    def logtext(self):
        try:
            return (self.h.tmp / "serve.log").read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.h.kill(self.proc)
        self.log.close()

    def env(self, **extra):
        return cli_env(self.h, **dict({"NBHUB_URL": self.url, "NBHUB_TOKEN": self.token}, **extra))


@pytest.fixture
def server(h):
    if not _serve_available():
        pytest.skip("`nbhub serve` is not implemented yet (it answers 'unknown command')")
    srv = RealServer(h).start()
    yield srv
    srv.stop()


def sv(h, srv, *args, **kw):
    env = kw.pop("env", None) or srv.env()
    return nb(h, *args, env=env, cwd=kw.pop("cwd", h.tmp), **kw)


TINY = """\
name: tiny
tasks:
  first:
    command: ["true"]
  second:
    command: ["sh", "-c", "echo hello from second"]
    after: [first]
"""


def test_server_apply_bad_file_shows_user_path_positions(h, server):
    d = h.tmp / "myflows"
    d.mkdir()
    (d / "broken.yaml").write_text("name: broken\ntasks:\n  a:\n    comand: [\"true\"]\n    after: [zzz]\n")
    (d / "tiny.yaml").write_text(TINY)
    r = sv(h, server, "flow", "apply", "--dry-run", "myflows/tiny.yaml")
    assert (r.rc, r.stdout) == (0, "myflows/tiny.yaml: valid; flow tiny would be created\n"), r
    r = sv(h, server, "flow", "apply", "myflows/broken.yaml", "myflows/tiny.yaml")
    assert r.rc == 3, r
    assert "myflows/tiny.yaml: created flow tiny (version 1)" in r.stdout
    pos = [l for l in r.stderr.splitlines() if re.match(r"^myflows/broken\.yaml:\d+:\d+: ", l)]
    assert any(":4:5: " in l and "comand" in l for l in pos), r.stderr
    assert any("zzz" in l for l in pos), r.stderr
    r = sv(h, server, "flow", "apply", "myflows/broken.yaml", "--dry-run")
    assert r.rc == 3, r


def test_server_list_show_json(h, server):
    (h.tmp / "tiny.yaml").write_text(TINY)
    r = sv(h, server, "flow", "apply", "tiny.yaml")
    assert r.rc == 0 and "created flow tiny" in r.stdout, r
    r = sv(h, server, "flow", "apply", "tiny.yaml")
    assert r.rc == 0 and "unchanged flow tiny" in r.stdout, r
    r = sv(h, server, "flow", "list")
    assert r.rc == 0, r
    assert re.search(r"^tiny +manual +active +- +- +2 +root$", r.stdout, re.M), r.stdout
    r = sv(h, server, "flow", "list", "--json")
    j = json.loads(r.stdout)
    assert [f["name"] for f in j["flows"]] == ["tiny"]
    r = sv(h, server, "flow", "show", "tiny")
    assert r.rc == 0, r
    assert re.search(r"^second +sh -c echo hello from second +first ", r.stdout, re.M), r.stdout
    j = json.loads(sv(h, server, "flow", "show", "tiny", "--json").stdout)
    assert j["name"] == "tiny" and [t["name"] for t in j["spec"]["tasks"]] == ["first", "second"]
    r = sv(h, server, "flow", "show", "nope")
    assert r.rc == 4, r
    r = sv(h, server, "flow", "pause", "tiny")
    assert r.rc == 0, r
    assert json.loads(sv(h, server, "flow", "show", "tiny", "--json").stdout)["paused"] is True
    assert sv(h, server, "flow", "resume", "tiny").rc == 0


def test_server_run_wait_and_runs_commands(h, server):
    (h.tmp / "tiny.yaml").write_text(TINY)
    assert sv(h, server, "flow", "apply", "tiny.yaml").rc == 0
    r = sv(h, server, "flow", "run", "tiny", "--wait", timeout=90)
    assert r.rc == 0, (r, server.logtext())
    assert re.search(r"^State: +success$", r.stdout, re.M), r.stdout
    run_id = int(re.search(r"^Run: +(\d+)$", r.stdout, re.M).group(1))

    r = sv(h, server, "flow", "run", "tiny", "--wait", "--json", timeout=90)
    assert r.rc == 0, r
    j = json.loads(r.stdout)
    assert j["state"] == "success" and {t["name"]: t["state"] for t in j["tasks"]} == \
        {"first": "success", "second": "success"}

    r = sv(h, server, "runs", "list", "--flow", "tiny")
    assert r.rc == 0, r
    ids = [int(l.split()[0]) for l in r.stdout.splitlines()[1:]]
    assert ids == sorted(ids, reverse=True) and run_id in ids, r.stdout
    j = json.loads(sv(h, server, "runs", "list", "--limit", "1", "--json").stdout)
    assert len(j["runs"]) == 1 and j["next"] is not None
    r = sv(h, server, "runs", "show", str(run_id))
    assert r.rc == 0 and re.search(r"^second +success +1/1 ", r.stdout, re.M), r.stdout
    r = sv(h, server, "runs", "logs", str(run_id), "second")
    assert r.rc == 0 and "hello from second" in r.stdout, r
    r = sv(h, server, "runs", "logs", str(run_id), "nope")
    assert r.rc == 4, r
    r = sv(h, server, "runs", "show", "999999")
    assert r.rc == 4, r
    r = sv(h, server, "runs", "cancel", str(run_id))
    assert r.rc == 6, r


def test_server_run_wait_failed_is_exit_1(h, server):
    (h.tmp / "f.yaml").write_text("name: fails\ntasks:\n  t:\n    command: [\"false\"]\n")
    assert sv(h, server, "flow", "apply", "f.yaml").rc == 0
    r = sv(h, server, "flow", "run", "fails", "--wait", timeout=90)
    assert r.rc == 1, r
    assert re.search(r"^State: +failed$", r.stdout, re.M)


def test_server_cancel(h, server):
    (h.tmp / "s.yaml").write_text("name: sleepy\ntasks:\n  s:\n    command: [\"sleep\", \"60\"]\n")
    assert sv(h, server, "flow", "apply", "s.yaml").rc == 0
    r = sv(h, server, "flow", "run", "sleepy", "--json")
    assert r.rc == 0, r
    rid = str(json.loads(r.stdout)["id"])

    def running():
        j = json.loads(sv(h, server, "runs", "show", rid, "--json").stdout)
        return j["tasks"][0]["state"] == "running"
    assert wait_for(running, 30, interval=0.2)
    r = sv(h, server, "flow", "delete", "sleepy")
    assert r.rc == 6, r                       # still running: conflict
    r = sv(h, server, "runs", "cancel", rid)
    assert r.rc == 0 and "cancelled" in r.stdout, r
    r = sv(h, server, "runs", "cancel", rid)
    assert r.rc == 6, r
    assert json.loads(sv(h, server, "runs", "show", rid, "--json").stdout)["state"] == "cancelled"
    r = sv(h, server, "flow", "delete", "sleepy")
    assert r.rc == 0, r
    assert sv(h, server, "flow", "show", "sleepy").rc == 4


def test_server_auth_failures(h, server):
    r = sv(h, server, "flow", "list", env=server.env(NBHUB_TOKEN=SECRET))
    assert r.rc == 5, r
    assert SECRET not in r.stdout + r.stderr
    r = sv(h, server, "flow", "list", env=server.env(NBHUB_TOKEN=None))
    assert r.rc == 5 and "no API token" in r.stderr, r


def test_server_users_through_api(h, server):
    r = sv(h, server, "user", "add", "bob", "--password-stdin", input="bobs-password\n")
    assert r.rc == 0, r
    r = sv(h, server, "user", "add", "bob", "--no-password")
    assert r.rc == 6, r
    r = sv(h, server, "user", "token", "bob", "--name", "laptop", "--expires-in", "1d")
    assert r.rc == 0 and TOKEN_RE.match(r.stdout.strip()), r
    bob = r.stdout.strip()
    r = sv(h, server, "flow", "list", env=server.env(NBHUB_TOKEN=bob))
    assert r.rc == 0 and r.stdout == "No flows.\n", r
    r = sv(h, server, "user", "add", "eve", "--no-password", env=server.env(NBHUB_TOKEN=bob))
    assert r.rc == 5, r                       # not an admin
    r = sv(h, server, "user", "passwd", "bob", "--password-stdin", input="bobs-password\nbobs-new-password\n",
           env=server.env(NBHUB_TOKEN=bob))
    assert r.rc == 0, r                       # one's own password: the current one first
    j = json.loads(sv(h, server, "user", "list", "--json").stdout)
    assert sorted(u["name"] for u in j["users"]) == ["bob", "root"]


def test_server_backfill(h, server):
    (h.tmp / "d.yaml").write_text("name: daily\nschedule: '@daily'\nstart_date: 2026-01-01\n"
                                  "tasks:\n  t:\n    command: [\"true\"]\n")
    assert sv(h, server, "flow", "apply", "d.yaml").rc == 0
    r = sv(h, server, "flow", "backfill", "daily", "--from", "2026-01-01", "--to", "2026-01-03")
    assert r.rc == 0, r
    assert len(r.stdout.splitlines()) == 4, r.stdout      # header + 3 runs
    r = sv(h, server, "flow", "backfill", "daily", "--from", "2026-01-01", "--to", "2026-01-03")
    assert r.rc == 0 and "No new runs" in r.stdout, r


def test_server_notebook_output(h, server):
    write_nb(h.tmp / "hello.ipynb", code("x = 1", tags=["parameters"]), code("print('x is', x)"))
    # an absolute path: an uploaded flow has no directory of its own to resolve from
    (h.tmp / "nb.yaml").write_text(f"name: nbflow\ntasks:\n  hello:\n    notebook: {h.tmp / 'hello.ipynb'}\n"
                                   "    parameters: {x: 41}\n")
    r = sv(h, server, "flow", "apply", "nb.yaml")
    assert r.rc == 0, r
    r = sv(h, server, "flow", "run", "nbflow", "--wait", "--json", timeout=120)
    assert r.rc == 0, (r, server.logtext())
    rid = str(json.loads(r.stdout)["id"])
    out = h.tmp / "got.ipynb"
    r = sv(h, server, "runs", "output", rid, "hello", "-o", out)
    assert r.rc == 0, r
    assert "x is 41" in out.read_text()
    read_nb(out)
