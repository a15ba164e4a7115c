"""Webhooks and the daemon's own network: a flow's on_failure URL must not
reach loopback or other internal addresses (nbhub itself, a database's HTTP
port, a cloud metadata service) unless nbhub.yaml's webhooks.allow lists it,
whatever the URL's spelling; and the receiver's answer never comes back to
the flow's owner (issue 16).

The receivers here are real HTTP servers on 127.0.0.1 that record what
reaches them and answer 500 with a secret in the body."""
import http.server
import json
import subprocess
import threading
import time

from conftest import NBHUB, wait_for
from nbserve import Server

SECRET = "TOP-SECRET-internal-answer-5f2c"


class Receiver:
    """A loopback HTTP server that records every request and answers 500
    with SECRET in the body."""

    def __init__(self):
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                outer.got.append((self.path, self.rfile.read(n)))
                body = f"internal service says {SECRET}".encode()
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.hs = http.server.HTTPServer(("127.0.0.1", 0), H)
        self.port = self.hs.server_port
        threading.Thread(target=self.hs.serve_forever, daemon=True).start()

    def close(self):
        self.hs.shutdown()
        self.hs.server_close()


def failing_flow(name, urls):
    hooks = "\n".join(f"  - {json.dumps(u)}" for u in urls)
    return f"""
name: {name}
on_failure:
{hooks}
tasks:
  bad: {{command: ["false"]}}
"""


def deliveries(srv):
    rows = srv.db().execute("SELECT url, state, attempts, last_error FROM webhook_deliveries").fetchall()
    return [dict(r) for r in rows]


def failed_events(srv):
    rows = srv.db().execute("SELECT json FROM events WHERE kind = 'webhook.failed'").fetchall()
    return [json.loads(r[0]) for r in rows]


def test_loopback_spellings_are_refused_without_allow_list(h):
    """Every spelling of the loopback, and nbhub's own port, is refused after
    name resolution: the receiver and nbhub see no request, each delivery
    fails at once with a fixed message."""
    rcv = Receiver()
    srv = Server(h)
    srv.start()
    try:
        p = rcv.port
        urls = [f"http://{host}:{p}/hook-{i}" for i, host in enumerate([
            "127.0.0.1", "0x7f000001", "2130706433", "127.1", "0177.0.0.1", "127.0.1.1",
            "localhost", "localhost.", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
            "0.0.0.0"])]
        # nbhub itself: an API path that would log the attempt
        urls.append(f"http://127.0.0.1:{srv.port}/api/v1/self-hook-marker")
        srv.apply("leaky", failing_flow("leaky", urls))
        assert wait_for(lambda: srv.api.get("/api/v1/flows/leaky")[0] == 200, 20), srv.log()
        rid = srv.trigger("leaky")
        assert srv.wait_run(rid)["state"] == "failed"

        def unresolved(x):     # "localhost." where the resolver does not know it: retried
            return "localhost." in x["url"] and "did not resolve" in (x["last_error"] or "")

        def settled():
            d = deliveries(srv)
            return d if len(d) == len(urls) and all(x["state"] == "failed" or unresolved(x)
                                                    for x in d) else None
        d = wait_for(settled, 30)
        assert d, (deliveries(srv), srv.log())
        assert rcv.got == [], rcv.got                       # the receiver saw nothing
        assert "self-hook-marker" not in srv.log()          # nor did nbhub
        for x in d:
            if unresolved(x):
                continue
            assert x["attempts"] == 1, x                    # refused at once, no retries
            assert x["last_error"].startswith("address not allowed"), x
        ev = failed_events(srv)
        assert len(ev) == len([x for x in d if not unresolved(x)])
        for e in ev:
            assert "127.0.0.1" not in e["error"] and "::1" not in e["error"], e
        assert "address not allowed" in srv.log()
    finally:
        srv.stop()
        rcv.close()


def test_allow_listed_receiver_is_reached_but_its_answer_is_not_kept(h):
    """With webhooks.allow naming 127.0.0.1:PORT, that receiver gets the POST;
    its 500 answer's body reaches neither the stored error nor the log; a
    receiver on another loopback port stays refused."""
    rcv, other = Receiver(), Receiver()
    (h.tmp / "home").mkdir(parents=True, exist_ok=True)
    (h.tmp / "home" / "nbhub.yaml").write_text(
        f'webhooks:\n  allow: ["127.0.0.1:{rcv.port}", "10.0.0.0/8"]\n')
    srv = Server(h)
    srv.start()
    try:
        urls = [f"http://127.0.0.1:{rcv.port}/allowed", f"http://localhost:{other.port}/other"]
        srv.apply("allowed", failing_flow("allowed", urls))
        assert wait_for(lambda: srv.api.get("/api/v1/flows/allowed")[0] == 200, 20), srv.log()
        rid = srv.trigger("allowed")
        assert srv.wait_run(rid)["state"] == "failed"
        assert wait_for(lambda: rcv.got, 20), srv.log()
        assert rcv.got[0][0] == "/allowed"

        def first_attempts():
            d = {x["url"]: x for x in deliveries(srv)}
            return d if all(x["attempts"] >= 1 for x in d.values()) and len(d) == 2 else None
        d = wait_for(first_attempts, 20)
        assert d, deliveries(srv)
        allowed = d[urls[0]]
        assert allowed["state"] == "pending"                # a 500 is retried later
        assert allowed["last_error"] == "HTTP 500 from the receiver (a 2xx was expected)"
        refused = d[urls[1]]
        assert refused["state"] == "failed" and refused["last_error"].startswith("address not allowed")
        assert other.got == []
        time.sleep(0.3)
        assert SECRET not in srv.log()
        assert all(SECRET not in json.dumps(e) for e in failed_events(srv))
        st, body = srv.api.get(f"/api/v1/runs/{rid}")
        assert SECRET not in json.dumps(body)
    finally:
        srv.stop()
        rcv.close()
        other.close()


def test_allow_list_errors_name_file_line_column(h):
    cfg = h.tmp / "nbhub.yaml"
    cfg.write_text('webhooks:\n  allow:\n    - 10.0.0.0/8\n    - "127.1"\n    - "[::1]:99999"\n'
                   '  alow: []\nui: {render_max: lots}\n')
    r = subprocess.run([NBHUB, "serve", "--config", str(cfg), "--home", str(h.tmp / "home"),
                        "--listen", "127.0.0.1:0"], env=h.env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 3, (r.returncode, r.stderr)
    err = r.stderr
    assert f"{cfg}:4:7: webhooks.allow: '127.1'" in err, err
    assert f"{cfg}:5:7: webhooks.allow: '[::1]:99999'" in err, err
    assert f"{cfg}:6:3: unknown key 'alow' in 'webhooks' (did you mean 'allow'?)" in err, err
    assert f"{cfg}:7:18: 'ui.render_max' must be a size" in err, err
