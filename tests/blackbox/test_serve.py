"""nbhub serve with real kernels: DAG order, retries, timeouts, cancel,
restart after kill -9, bad flow files, and the HTTP edge."""
import json
import os
import signal
import socket
import time

import nbformat
import pytest

from conftest import code, write_nb, read_nb, wait_for
from nbserve import Server


def iso_us(s):
    """ISO 8601 UTC ('2026-11-22T05:00:00.123456Z') -> epoch microseconds."""
    from datetime import datetime
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1e6)


def stamp_nb(path, name):
    """A notebook that records its parameter and sleeps a little."""
    write_nb(path,
             code("label = 'x'", tags=["parameters"]),
             code("import time; time.sleep(0.3); print('ran', label)"))


FANOUT = """
name: fan
schedule: 3s
catchup: false
max_active_runs: 1
tasks:
  start:
    command: ["python3", "-c", "print('start {{ ds }}')"]
  left:
    notebook: left.ipynb
    parameters: {label: "left {{ run_id }}"}
    after: [start]
  right:
    notebook: right.ipynb
    parameters: {label: "right"}
    after: [start]
  join:
    command: ["python3", "-c", "print('join')"]
    after: [left, right]
"""


def test_fanout_fanin_on_interval_schedule(h):
    srv = Server(h)
    stamp_nb(srv.flows / "left.ipynb", "left")
    stamp_nb(srv.flows / "right.ipynb", "right")
    srv.apply("fan", FANOUT)
    srv.start()
    try:
        def two_done():
            st, body = srv.api.get("/api/v1/runs?flow=fan")
            assert st == 200, body
            done = [r for r in body["runs"] if r["state"] == "success"]
            return done if len(done) >= 2 else None
        done = wait_for(two_done, 90, interval=0.2)
        assert done, srv.log()
        for r in done:
            st, run = srv.api.get(f"/api/v1/runs/{r['id']}")
            assert run["kind"] == "scheduled"
            t = {x["name"]: x for x in run["tasks"]}
            assert all(x["state"] == "success" for x in t.values()), t
            # fan-out after start, fan-in after both
            for child in ("left", "right"):
                assert iso_us(t[child]["started_at"]) >= iso_us(t["start"]["ended_at"])
            assert iso_us(t["join"]["started_at"]) >= max(iso_us(t["left"]["ended_at"]),
                                                          iso_us(t["right"]["ended_at"]))
            # the output notebook is kept, valid, with the rendered parameter
            st, raw, _ = srv.api.request("GET", f"/api/v1/runs/{r['id']}/tasks/left/output",
                                         raw=True)
            assert st == 200
            nb = nbformat.reads(raw.decode(), as_version=4)
            nbformat.validate(nb)
            assert f"ran left {run['run_id']}" in json.dumps(nb)
            st, log, _ = srv.api.request("GET", f"/api/v1/runs/{r['id']}/tasks/start/log",
                                         raw=True)
            assert st == 200 and b"start 20" in log
        # ticks are 3 s apart on the interval grid, each fired once
        logical = sorted(iso_us(r["logical_date"]) for r in done)
        assert all((b - a) % 3_000_000 == 0 for a, b in zip(logical, logical[1:]))
        assert len(set(logical)) == len(logical)
    finally:
        assert srv.stop() == 0, srv.log()


def test_retry_then_success(h):
    srv = Server(h)
    marker = h.tmp / "failed-once"
    write_nb(srv.flows / "flaky.ipynb",
             code(f"import os\nm = {str(marker)!r}\n"
                  "if not os.path.exists(m):\n"
                  "    open(m, 'w').close()\n"
                  "    raise RuntimeError('first try fails')\n"
                  "print('second try passes')"))
    srv.apply("flaky", """
name: flaky
tasks:
  t:
    notebook: flaky.ipynb
    retries: 2
    retry_delay: 1s
""")
    srv.start()
    try:
        run = srv.wait_run(srv.trigger("flaky"))
        assert run["state"] == "success", run
        t = run["tasks"][0]
        assert t["try_number"] == 2 and t["max_tries"] == 3, t
        st, log, _ = srv.api.request("GET", f"/api/v1/runs/{run['id']}/tasks/t/log", raw=True)
        assert b"try 1 of 3" in log and b"try 2 of 3" in log
        assert b"first try fails" in log
    finally:
        srv.stop()


def test_task_timeout_fails_and_dependents_are_upstream_failed(h):
    srv = Server(h, args=["--log-level", "info"])
    srv.apply("slow", """
name: slow
tasks:
  sleepy:
    command: ["sleep", "60"]
    timeout: 2s
  after:
    command: ["true"]
    after: [sleepy]
""")
    srv.start()
    try:
        t0 = time.monotonic()
        run = srv.wait_run(srv.trigger("slow"), timeout=30)
        took = time.monotonic() - t0
        assert run["state"] == "failed"
        t = {x["name"]: x for x in run["tasks"]}
        assert t["sleepy"]["state"] == "failed" and "timed out after 2s" in t["sleepy"]["error"]
        assert t["after"]["state"] == "upstream_failed"
        assert took < 15, took
    finally:
        srv.stop()


def test_cancel_run_stops_the_task(h):
    srv = Server(h)
    write_nb(srv.flows / "forever.ipynb", code("import time\nwhile True: time.sleep(0.1)"))
    srv.apply("forever", """
name: forever
tasks:
  spin: {notebook: forever.ipynb}
  next: {command: ["true"], after: [spin]}
""")
    srv.start()
    try:
        rid = srv.trigger("forever")
        srv.wait_run(rid, states=("running",))
        wait_for(lambda: srv.api.get(f"/api/v1/runs/{rid}")[1]["tasks"][0]["state"] == "running", 30)
        time.sleep(1.0)   # the kernel is busy in the loop
        st, run = srv.api.post(f"/api/v1/runs/{rid}/cancel")
        assert st == 200 and run["state"] == "cancelled", (st, run)
        assert all(t["state"] == "cancelled" for t in run["tasks"]), run
        # the task's processes go away (interrupt, then shutdown)
        assert wait_for(lambda: not [p for p in h.leftovers() if "serve" not in p[1]], 20), \
            h.leftovers()
        st, again = srv.api.post(f"/api/v1/runs/{rid}/cancel")
        assert st == 409
    finally:
        srv.stop()


RESTART = """
name: tick
schedule: 2s
catchup: true
start_date: {start}
max_active_runs: 5
tasks:
  work:
    command: ["python3", "-c", "import time; time.sleep(1.5)"]
    retries: 1
    retry_delay: 1s
"""


def test_kill9_restart_every_tick_exactly_once_nothing_stuck(h):
    from datetime import datetime, timezone
    srv = Server(h)
    start = datetime.fromtimestamp(int(time.time()) // 2 * 2 + 2, timezone.utc)
    srv.apply("tick", RESTART.format(start=start.strftime("%Y-%m-%dT%H:%M:%SZ")))
    srv.start()
    # let some runs start, then kill -9 while a task is running
    assert wait_for(lambda: srv.db().execute(
        "SELECT count(*) FROM task_runs WHERE state = 'running'").fetchone()[0] > 0, 30)
    time.sleep(0.5)
    srv.kill9()
    time.sleep(3)      # ticks are missed while it is down
    srv.start()
    time.sleep(6)
    srv.stop()
    db = srv.db()
    ticks = [r[0] for r in db.execute("SELECT t.logical_us FROM ticks t JOIN flows f "
                                      "ON f.id = t.flow_id WHERE f.name = 'tick' "
                                      "ORDER BY t.logical_us")]
    runs = [r[0] for r in db.execute("SELECT logical_us FROM runs WHERE flow = 'tick' "
                                     "ORDER BY logical_us")]
    assert ticks == runs, (ticks, runs)
    assert len(ticks) >= 5
    # catch-up: every 2 s tick from the first to the last, none twice
    assert len(set(ticks)) == len(ticks)
    assert all(b - a == 2_000_000 for a, b in zip(ticks, ticks[1:])), ticks
    # after the graceful stop nothing is left queued or running forever: restart
    # once more and let every run finish
    srv.start()
    def settled():
        return srv.db().execute("SELECT count(*) FROM runs WHERE state IN "
                                "('queued','running') AND logical_us <= ?",
                                (ticks[-1],)).fetchone()[0] == 0
    assert wait_for(settled, 60, interval=0.2), srv.log()
    srv.api.post("/api/v1/flows/tick/pause")
    srv.stop()
    states = dict(srv.db().execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall())
    assert set(states) <= {"success", "failed", "cancelled", "queued", "running"}


def test_bad_flow_file_keeps_previous_version(h):
    srv = Server(h)
    srv.apply("good", 'name: good\ntasks:\n  a: {command: ["true"]}\n')
    srv.start()
    try:
        st, flow = srv.api.get("/api/v1/flows/good")
        assert st == 200 and flow["version"] == 1
        srv.apply("good", 'name: good\ntasks:\n  a: {command: ["true"], retires: 2}\n')
        os.kill(srv.proc.pid, signal.SIGHUP)
        def has_errors():
            st, f = srv.api.get("/api/v1/flows/good")
            return f if f.get("errors") else None
        flow = wait_for(has_errors, 10)
        assert flow, srv.log()
        assert any(":3:" in e and "retires" in e for e in flow["errors"]), flow["errors"]
        assert flow["version"] == 1
        rid = srv.trigger("good")
        assert srv.wait_run(rid)["state"] == "success"
    finally:
        srv.stop()


def test_http_edge_cases(h):
    srv = Server(h)
    srv.start()
    try:
        def raw(data, read=65536):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(data)
            out = b""
            try:
                while True:
                    chunk = s.recv(read)
                    if not chunk:
                        break
                    out += chunk
            except socket.timeout:
                pass
            s.close()
            return out
        assert raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
        assert raw(big).startswith(b"HTTP/1.1 431")
        huge = (b"POST /api/v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        assert raw(huge).startswith(b"HTTP/1.1 413")
        st, body = srv.api.get("/api/v1/flows", token=False)
        assert st == 401
        st, body = srv.api.get("/healthz", token=False)
        assert st == 200 and body["status"] == "ok"
    finally:
        srv.stop()


def test_webhook_on_failure_is_delivered(h):
    """A failing run POSTs its on_failure webhook (JSON naming flow, run, task, state, links)."""
    import http.server
    import threading
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            got.append((dict(self.headers), json.loads(self.rfile.read(n))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    hs = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hs.serve_forever, daemon=True).start()
    srv = Server(h)
    srv.apply("hooked", f"""
name: hooked
on_failure:
  - url: http://127.0.0.1:{hs.server_port}/hook?secret=s3cret
    headers: {{X-Team: data}}
tasks:
  bad: {{command: ["false"]}}
""")
    srv.start()
    try:
        rid = srv.trigger("hooked")
        assert srv.wait_run(rid)["state"] == "failed"
        assert wait_for(lambda: got, 20), srv.log()
        headers, body = got[0]
        assert headers["X-Team"] == "data"
        assert body["flow"] == "hooked" and body["run"] == rid and body["state"] == "failed"
        assert body["failed_tasks"] == ["bad"]
        assert body["links"]["run"].endswith(f"/api/v1/runs/{rid}")
        assert "s3cret" not in srv.log()
    finally:
        srv.stop()
        hs.shutdown()


def test_sigterm_lets_running_task_finish_within_grace(h):
    srv = Server(h)
    srv.apply("short", """
name: short
tasks:
  nap: {command: ["sleep", "2"]}
""")
    srv.start()
    rid = srv.trigger("short")
    srv.wait_run(rid, states=("running",))
    assert wait_for(lambda: srv.db().execute(
        "SELECT state FROM task_runs WHERE run = ?", (rid,)).fetchone()[0] == "running", 10)
    t0 = time.monotonic()
    assert srv.stop() == 0, srv.log()
    assert 1.0 < time.monotonic() - t0 < 20
    row = srv.db().execute("SELECT state, exit_code FROM task_runs WHERE run = ?", (rid,)).fetchone()
    assert tuple(row) == ("success", 0), tuple(row)
    assert srv.db().execute("SELECT state FROM runs WHERE id = ?", (rid,)).fetchone()[0] == "success"


def test_bad_config_file_exit_3_with_positions(h):
    cfg = h.tmp / "nbhub.yaml"
    cfg.write_text("listen: 127.0.0.1:0\nmax_active_taks: 4\nkill_grace: soon\npool: {python3: x}\n")
    r = h.run(["serve", "--config", cfg, "--home", h.tmp / "home"])
    assert r.rc == 3, r
    assert f"{cfg}:2:1: unknown key 'max_active_taks' (did you mean 'max_active_tasks'?)" in r.stderr
    assert f"{cfg}:3:13: 'kill_grace' must be a duration" in r.stderr
    assert f"{cfg}:4:17: pool sizes must be integers" in r.stderr


def test_second_daemon_on_same_home_is_refused(h):
    srv = Server(h)
    srv.start()
    try:
        r = h.run(["serve", "--home", srv.home, "--listen", "127.0.0.1:0"], env=srv.env)
        assert r.rc == 8 and "in use by another nbhub serve" in r.stderr, r
    finally:
        srv.stop()


def test_logins_do_not_stall_the_daemon(h):
    """argon2id (~35 ms a check) runs on the thread pool, one check at a time:
    while a burst of logins is being checked, other requests are answered at once,
    and every login still gets its right answer."""
    import threading
    from nbserve import ADMIN_PASSWORD, Api
    srv = Server(h).start()
    try:
        results, times = {}, {}
        t0 = time.monotonic()

        def login(i):
            pw = ADMIN_PASSWORD if i % 2 == 0 else "wrong-password-1"
            st, _ = Api(srv.port).post("/api/v1/login", {"username": "admin", "password": pw}, token=False)
            results[i] = st
            times[i] = time.monotonic() - t0

        threads = [threading.Thread(target=login, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.02)   # the burst is queued in the daemon now
        hz0 = time.monotonic()
        st, _ = srv.api.get("/healthz", token=False)
        hz = time.monotonic() - hz0
        hz_done = time.monotonic() - t0
        for t in threads:
            t.join(timeout=60)
        assert st == 200
        assert [results[i] for i in range(8)] == [200, 401] * 4, results
        # Eight checks in a row take >= 8 x argon2; the health check did not wait for them.
        assert hz_done < max(times.values()), (hz, times)
        assert hz < 0.2, hz
    finally:
        srv.stop()


def test_login_lockout_after_repeated_failures(h):
    """Five wrong passwords for a name, then attempts are refused with 429 and
    Retry-After without a password check, the right password included; other
    names are unaffected, and a name that does not exist locks the same way (a
    lockout tells nothing about which names are real)."""
    from nbserve import ADMIN_PASSWORD, Api
    srv = Server(h).start()
    try:
        api = Api(srv.port)
        for name in ("admin", "nobody-such"):
            for i in range(5):
                st, body = api.post("/api/v1/login", {"username": name, "password": f"wrong-{i}"}, token=False)
                assert st == 401, (name, i, st, body)
            st, payload, hdr = api.request("POST", "/api/v1/login", {"username": name, "password": ADMIN_PASSWORD},
                                           token=False, raw=True)
            assert st == 429, (name, st, payload)
            assert hdr.get("retry-after") == "30", hdr
            err = json.loads(payload)
            assert "too many failed logins" in json.dumps(err), err
        # another user logs in: the lockout is per name
        assert srv.api.post("/api/v1/users", {"name": "ann", "password": "ann-password-1"})[0] in (200, 201)
        st, _ = api.post("/api/v1/login", {"username": "ann", "password": "ann-password-1"}, token=False)
        assert st == 200
        log = srv.log()
        assert "login refused: locked out" in log, log
        assert "wrong-" not in log   # passwords never reach the log
    finally:
        srv.stop()


def test_event_streams_end_when_their_credential_does(h):
    """An open event stream is re-authenticated (every 10 s): revoking the token
    it was opened with, or logging out the session, ends it; a stream whose
    credential is still good stays open."""
    import http.client
    import threading
    from nbserve import Api, EventStream
    srv = Server(h).start()
    try:
        assert srv.api.post("/api/v1/users", {"name": "ann", "password": "ann-password-1"})[0] == 201
        st, tok = srv.api.post("/api/v1/users/ann/tokens", {"name": "stream"})
        assert st == 201, tok
        by_token = EventStream(srv.port, tok["token"])
        kept = EventStream(srv.port, srv.api.token)
        # the browser's way: the session cookie from a login
        st, body, hdr = Api(srv.port).request("POST", "/api/v1/login",
                                              {"username": "ann", "password": "ann-password-1"},
                                              token=False, raw=True)
        assert st == 200
        cookie = hdr["set-cookie"].split(";", 1)[0]
        csrf = json.loads(body)["csrf_token"]
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        c.request("GET", "/api/v1/events", headers={"Cookie": cookie})
        resp = c.getresponse()
        assert resp.status == 200
        by_cookie = threading.Thread(target=lambda: [None for _ in resp], daemon=True)
        by_cookie.start()

        time.sleep(0.5)
        assert by_token.thread.is_alive() and by_cookie.is_alive()
        st, _ = srv.api.delete(f"/api/v1/users/ann/tokens/{tok['id']}")
        assert st == 204
        st, _ = Api(srv.port).request("POST", "/api/v1/logout", {}, headers={"Cookie": cookie, "X-CSRF-Token": csrf},
                                      token=False)
        assert st == 204
        t0 = time.monotonic()
        by_token.thread.join(timeout=25)
        by_cookie.join(timeout=25)
        took = time.monotonic() - t0
        assert not by_token.thread.is_alive() and not by_cookie.is_alive(), "streams still open after 25 s"
        assert took < 15, took
        assert kept.thread.is_alive()
        assert "event stream closed: credential no longer valid" in srv.log()
        kept.close()
        c.close()
    finally:
        srv.stop()


def test_ui_page_inlines_its_files_under_csp_hashes(h):
    """GET / carries the stylesheet and the linked modules inline (api_ui.c),
    and its Content-Security-Policy allows exactly those texts by SHA-256:
    no 'unsafe-inline', no other script or style.  A hash that did not match
    would leave a blank page in every browser."""
    import base64
    import hashlib
    import re
    srv = Server(h).start()
    try:
        st, page, hdr = srv.api.get("/", token=False, raw=True)
        assert st == 200 and hdr["content-type"].startswith("text/html")
        csp = hdr["content-security-policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        page = page.decode()
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        for tag, directive in (("script", "script-src"), ("style", "style-src")):
            texts = re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", page, re.S)
            assert len(texts) == 1 and len(texts[0]) > 1000, (tag, [len(t) for t in texts])
            digest = base64.b64encode(hashlib.sha256(texts[0].encode()).digest()).decode()
            assert directives[directive].split() == ["'self'", f"'sha256-{digest}'"], (directive, csp)
        script = re.search(r"<script[^>]*>(.*?)</script>", page, re.S).group(1)
        assert not re.search(r"^(import|export) ", script, re.M)
        # Each module is still served as written, and the stylesheet is the one inlined.
        st, css, _ = srv.api.get("/ui/app.css", token=False, raw=True)
        assert st == 200 and css.decode() == re.search(r"<style[^>]*>(.*?)</style>", page, re.S).group(1)
        for name in ("app.js", "pages.js", "dag.js"):
            st, js, _ = srv.api.get(f"/ui/{name}", token=False, raw=True)
            assert st == 200 and b"export " in js
        # The ETag still revalidates the assembled page.
        st, _, _ = srv.api.get("/", token=False, raw=True, headers={"If-None-Match": hdr["etag"]})
        assert st == 304
    finally:
        srv.stop()


def test_big_text_answers_are_gzipped_when_the_client_asks(h):
    """Text and JSON answers of 1 KiB and more go out gzip'ed to a client that
    accepts it (http/gzip.h), with Vary and a weak ETag that still gives 304;
    small answers (the ones that carry a CSRF token) and other clients get
    the identity."""
    import gzip
    srv = Server(h).start()
    try:
        st, plain, hdr = srv.api.get("/", token=False, raw=True)
        assert st == 200 and "content-encoding" not in hdr and hdr["vary"] == "Accept-Encoding"
        st, packed, zhdr = srv.api.get("/", token=False, raw=True, headers={"Accept-Encoding": "gzip, br"})
        assert st == 200 and zhdr["content-encoding"] == "gzip"
        assert int(zhdr["content-length"]) == len(packed) < len(plain) / 2.5
        assert gzip.decompress(packed) == plain
        assert zhdr["etag"] == "W/" + hdr["etag"]
        for tag in (zhdr["etag"], hdr["etag"]):
            st, _, _ = srv.api.get("/", token=False, raw=True,
                                   headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
            assert st == 304, tag
        st, _, hdr = srv.api.get("/", token=False, raw=True, headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in hdr
        st, body, hdr = srv.api.get("/api/v1/openapi.json", token=False, raw=True, headers={"Accept-Encoding": "gzip"})
        assert hdr["content-encoding"] == "gzip" and json.loads(gzip.decompress(body))["openapi"]
        st, body, hdr = srv.api.get("/api/v1/me", raw=True, headers={"Accept-Encoding": "gzip"})
        assert st == 200 and "content-encoding" not in hdr and json.loads(body)["name"] == "admin"
    finally:
        srv.stop()
