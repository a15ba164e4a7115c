#!/usr/bin/env python3
"""Request bodies before authentication (issue 16): the RSS `nbhub serve` pays
for 100 anonymous connections each sending an 8 MB body.

    .venv/bin/python bench/bench_bodies.py [-n 3] [--base BIN] [--new BIN] [--write]

Two binaries in one sitting, alternating who goes first in each repetition:
  base  the server as it was (main at c67784b): bodies up to 8 MiB were read
        before the route's authentication ran.  Without --base the script builds
        it: `git worktree add` of that commit in a scratch dir, `make`, and the
        worktree is removed afterwards.
  new   this checkout's build/nbhub (or --new): authentication on the head, 64
        KiB for anonymous bodies, a shared body budget.

The attack, per repetition, on a fresh `nbhub serve` (its own home, 127.0.0.1,
ephemeral port, nothing else running): 100 connections, half to POST
/api/v1/flows without credentials (an authenticated route), half to POST
/api/v1/login (the public one), each announcing Content-Length 8 MiB and
sending all of it but the last byte as fast as the server takes it, then
holding the connection for --hold seconds (the last byte never comes), then
closing.  Then the same with an admin's API token, all to /api/v1/flows:
bodies the server has to take, bounded by the body budget (--no-auth skips it).  RSS is the daemon's VmRSS from /proc: "before" just before the
attack, "peak" the highest sample (every round of the sending loop, ~50 ms),
"after" 3 s after every connection closed.  Medians over the repetitions.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASE_COMMIT = "c67784b"
MB = 1024 * 1024
TITLE = "## Request bodies before authentication: 100 connections sending 8 MB bodies (bench/bench_bodies.py)"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Serve:
    """One `nbhub serve` on 127.0.0.1:0 with its own home."""

    def __init__(self, exe, tmp):
        self.home = Path(tempfile.mkdtemp(dir=tmp, prefix="home-"))
        (self.home / "flows").mkdir()
        pw = self.home / "pw"
        pw.write_text("bench-password-123\n")
        env = dict(os.environ, NBHUB_HOME=str(self.home), NBHUB_ADMIN_PASSWORD_FILE=str(pw))
        self.out = open(self.home / "serve.out", "wb+")
        self.err = open(self.home / "serve.log", "wb")
        self.proc = subprocess.Popen([exe, "serve", "--home", self.home, "--listen", "127.0.0.1:0"],
                                     stdout=self.out, stderr=self.err, env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"\(port (\d+)\)", (self.home / "serve.out").read_text())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{exe} serve did not start: {(self.home / 'serve.log').read_text()[-2000:]}")

    def token(self):
        """An admin API token, made through the API (login, then a token)."""
        def req(method, path, body, headers):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            c.request(method, path, json.dumps(body), dict(headers, **{"Content-Type": "application/json"}))
            r = c.getresponse()
            data = r.read()
            hdr = dict((k.lower(), v) for k, v in r.getheaders())
            c.close()
            return r.status, json.loads(data), hdr
        st, ans, hdr = req("POST", "/api/v1/login", {"username": "admin", "password": "bench-password-123"}, {})
        assert st == 200, (st, ans)
        cookie = hdr["set-cookie"].split(";")[0]
        st, tok, _ = req("POST", "/api/v1/users/admin/tokens", {"name": "bench"},
                         {"Cookie": cookie, "X-CSRF-Token": ans["csrf_token"]})
        assert st == 201, (st, tok)
        return tok["token"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()
        shutil.rmtree(self.home, ignore_errors=True)


def attack(port, n, size, hold, sample, token=None):
    """n connections: head + size-1 body bytes as fast as taken, hold, close.
    With token, all go to POST /api/v1/flows as that user.  Returns how many
    got an answer (any status) before they closed."""
    chunk = b"x" * (256 * 1024)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        path = "/api/v1/flows" if i % 2 or token else "/api/v1/login"
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
                  f"Content-Length: {size}\r\n\r\n".encode())
        s.setblocking(False)
        st = {"sock": s, "sent": 0, "answer": b"", "open": True}
        conns.append(st)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    want = size - 1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        busy = [st for st in conns if st["open"] and st["sent"] < want]
        if not busy:
            break
        for key, ev in sel.select(timeout=0.05):
            st = key.data
            s = st["sock"]
            try:
                if ev & selectors.EVENT_READ:
                    d = s.recv(65536)
                    if not d:
                        raise ConnectionResetError
                    st["answer"] += d
                if ev & selectors.EVENT_WRITE and st["sent"] < want:
                    st["sent"] += s.send(chunk[:want - st["sent"]])
                    if st["sent"] >= want:
                        sel.modify(s, selectors.EVENT_READ, st)
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(s)
                st["open"] = False
        sample()
    end = time.monotonic() + hold
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.05):
            st = key.data
            try:
                d = st["sock"].recv(65536)
                st["answer"] += d
                if not d:
                    raise ConnectionResetError
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(st["sock"])
                st["open"] = False
        sample()
    for st in conns:
        if st["open"]:
            sel.unregister(st["sock"])
        st["sock"].close()
    return sum(1 for st in conns if st["answer"].startswith(b"HTTP/1.1 "))


def one(exe, tmp, args, auth):
    srv = Serve(exe, tmp)
    try:
        token = srv.token() if auth else None
        time.sleep(1.0)
        pid = srv.proc.pid
        before = rss_kb(pid)
        peak = [before]

        def sample():
            peak[0] = max(peak[0], rss_kb(pid))

        t0 = time.monotonic()
        answered = attack(srv.port, args.conns, args.size, args.hold, sample, token)
        secs = time.monotonic() - t0
        time.sleep(3)
        sample()
        after = rss_kb(pid)
        alive = srv.proc.poll() is None
    finally:
        srv.stop()
    return {"before": before / 1024, "peak": peak[0] / 1024, "after": after / 1024,
            "answered": answered, "secs": secs, "alive": alive}


def build_base(tmp):
    wt = Path(tmp) / "main-base"
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", wt, BASE_COMMIT], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        subprocess.run(["make", "-j2", "build/nbhub"], cwd=wt, check=True, stdout=subprocess.DEVNULL)
        exe = Path(tmp) / "nbhub-base"
        shutil.copy2(wt / "build" / "nbhub", exe)
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", wt], check=False)
    return str(exe)


def table_rows(med, conns, target):
    rows = [("RSS before (MB)", "before"), ("RSS peak (MB)", "peak"), ("RSS after (MB)", "after"),
            (f"extra RSS at the peak (MB{target})", "extra"),
            (f"connections answered before they closed (of {conns})", "answered"),
            ("attack duration (s)", "secs")]
    out = ["| measure | main at c67784b | this branch |", "|---|---:|---:|"]
    for label, m in rows:
        fmt = "{:.0f}" if m == "answered" else "{:.1f}"
        out.append(f"| {label} | {fmt.format(med['base'][m])} | {fmt.format(med['new'][m])} |")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--base", help=f"the old binary (default: build main at {BASE_COMMIT})")
    ap.add_argument("--new", default=str(REPO / "build" / "nbhub"))
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=8 * MB, help="announced Content-Length (default 8 MiB)")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds to hold after sending (default 3)")
    ap.add_argument("--no-auth", action="store_true", help="skip the authenticated attack")
    ap.add_argument("--write", action="store_true", help="write the section of bench/RESULTS.md")
    args = ap.parse_args()
    scenarios = ["anon"] + ([] if args.no_auth else ["auth"])
    with tempfile.TemporaryDirectory(prefix="bench-bodies-") as tmp:
        base = args.base or build_base(tmp)
        exes = {"base": base, "new": args.new}
        res = {sc: {"base": [], "new": []} for sc in scenarios}
        for rep in range(args.n):
            order = ["base", "new"] if rep % 2 == 0 else ["new", "base"]
            for sc in scenarios:
                for k in order:
                    r = one(exes[k], tmp, args, sc == "auth")
                    res[sc][k].append(r)
                    log(f"rep {rep + 1} {sc} {k}: before {r['before']:.1f} MB, peak {r['peak']:.1f} MB, "
                        f"after {r['after']:.1f} MB, answered {r['answered']}/{args.conns}, {r['secs']:.1f} s")
    med = {}
    for sc in scenarios:
        med[sc] = {k: {m: statistics.median(r[m] for r in v) for m in ("before", "peak", "after", "answered", "secs")}
                   for k, v in res[sc].items()}
        for k in med[sc]:
            med[sc][k]["extra"] = statistics.median(r["peak"] - r["before"] for r in res[sc][k])
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{os.cpu_count()} CPUs, {benchlib.cpu_model()}, Linux {platform.release()}, "
               f"Python {platform.python_version()}")
    verdict = "PASS" if med["anon"]["new"]["extra"] <= 50 else "FAIL"

    def runs(sc):
        return "; ".join(f"{'main' if k == 'base' else 'branch'}: " +
                         ", ".join(f"{r['peak'] - r['before']:.0f}" for r in res[sc][k]) for k in res[sc])
    flags = f" -n {args.n}" + (" --no-auth" if args.no_auth else "") + (" --write" if args.write else "")
    lines = [
        TITLE, "",
        f"Generated by `bench/bench_bodies.py{flags}` on {now}.",
        f"Machine: {machine}.",
        f"Each connection announces a {args.size / MB:.0f} MiB body and sends all of it but the last byte as "
        f"fast as the server takes it, then holds {args.hold:.0f} s and closes. The daemon's VmRSS from /proc; "
        f"medians of {args.n} repetitions on fresh daemons, the two binaries alternating.", "",
        f"**{args.conns} anonymous connections**, half to POST /api/v1/flows without credentials, half to "
        f"POST /api/v1/login. Target: at most 50 MB extra: **{verdict}**.", "",
        *table_rows(med["anon"], args.conns, "; target <= 50"), "",
        f"Extra RSS per repetition (MB): {runs('anon')}. The old server read every body before the route's "
        "authentication ran (8 MiB each); this branch authenticates on the head, answers 401 (flows) or "
        "413 (login: anonymous bodies are held to 64 KiB) without reading the body and closes, so what "
        "remains is the connections themselves.", ""]
    if "auth" in scenarios:
        lines += [
            f"**{args.conns} authenticated connections** (an admin's API token), all POST /api/v1/flows: "
            "bodies the server must take. The body budget (64 MiB by default) bounds them: those that do "
            "not fit get 503 with Retry-After on their head.", "",
            *table_rows(med["auth"], args.conns, ""), "",
            f"Extra RSS per repetition (MB): {runs('auth')}. The budget admits 7 bodies of 8 MiB (each "
            "is charged its Content-Length when let in), 56 MiB; the other 93 are answered 503 without "
            "being read.", ""]
    section = "\n".join(lines)
    print(section)
    if args.write:
        benchlib.replace_section(TITLE, section)


if __name__ == "__main__":
    main()
