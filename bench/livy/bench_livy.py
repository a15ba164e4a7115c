#!/usr/bin/env python3
"""The Livy API (issue 19): what a Livy session costs on nbhub, against Spark by hand.

    .venv/bin/python bench/livy/bench_livy.py --nbhub build/nbhub [-n 3] [--stmts 200] [--write]

1. Session creation to idle: POST /livy/sessions {"kind": "pyspark"} to the first GET
   /livy/sessions/{id} that says idle (polled every 10 ms, as a client that polls fast
   would see it; sparkmagic polls every 0.5-1 s), cold (no warm kernel), and with a warm
   kernel when the build has livy.warm (h5's pool; recorded as absent otherwise).  Each
   session is deleted before the next.
2. The anchor: the same PySpark driver started by hand, pyspark's own bin/spark-submit of a
   script that builds a SparkSession with the same master and settings and prints a line
   when it is ready: exec to that line (a session is idle when its SparkSession is built,
   no job run, src/livy/livy_stmt.c: the same point).
3. Statement round trip: POST /livy/sessions/{id}/statements {"code": "1 + 1"} to the first
   GET of it that says available (polled in a tight loop), against the same code sent
   straight to a kernel of the same kind (jupyter_client, execute_request to
   execute_reply, a PySpark-importing ipykernel started by hand).  The overhead is the
   difference of the medians; the target is <= 2 ms at p50.

All in one run, medians, written to bench/RESULTS.md "## Livy (issue 19)" with --write.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchlib as B  # noqa: E402

SECTION = "## Livy (issue 19): sessions and statements through nbhub's Livy API (bench/livy/bench_livy.py)"
PASSWORD = "bench-admin-password-1"
MASTER = "local[2]"
CONF = {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "512m", "spark.ui.enabled": "false"}


class Serve:
    def __init__(self, nbhub, home, warm=0):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        pw = home / "pw"
        pw.write_text(PASSWORD + "\n")
        cfg = home / "nbhub.yaml"
        conf = ", ".join(f"{k}: '{v}'" for k, v in CONF.items())
        cfg.write_text("livy:\n" f"  master: '{MASTER}'\n" f"  conf: {{{conf}}}\n" +
                       (f"  warm: {warm}\n" if warm else ""))
        env = dict(os.environ, NBHUB_ADMIN_PASSWORD_FILE=str(pw), NBHUB_ISOLATION="shared")
        self.out = open(home / "serve.out", "wb")
        self.err = open(home / "serve.log", "wb")
        self.p = subprocess.Popen([nbhub, "serve", "--home", str(home), "--config", str(cfg),
                                   "--listen", "127.0.0.1:0"], stdout=self.out, stderr=self.err, env=env)
        self.port = B.wait_until(self._port, 30, 0.02, "nbhub serve")
        self.token = self._token()

    def _port(self):
        if self.p.poll() is not None:
            raise RuntimeError(f"nbhub serve exited {self.p.returncode}: "
                               f"{(self.home / 'serve.log').read_text()[-2000:]}")
        m = re.search(r"\(port (\d+)\)", (self.home / "serve.out").read_text())
        return int(m.group(1)) if m else None

    def req(self, method, path, body=None, token=True, headers=None):
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {self.token}"
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, headers=h,
                                   data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(r, timeout=60) as f:
                return f.status, json.loads(f.read() or b"null"), dict(f.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def _token(self):
        st, body, hdr = self.req("POST", "/api/v1/login", {"username": "admin", "password": PASSWORD}, token=False)
        assert st == 200, (st, body)
        cookie = hdr["Set-Cookie"].split(";")[0]
        st, tok, _ = self.req("POST", "/api/v1/users/admin/tokens", {"name": "bench"}, token=False,
                              headers={"Cookie": cookie, "X-CSRF-Token": body["csrf_token"]})
        assert st == 201, (st, tok)
        return tok["token"]

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=60)


def session_to_idle(srv):
    t0 = time.perf_counter()
    st, s, _ = srv.req("POST", "/livy/sessions", {"kind": "pyspark"})
    assert st == 201, (st, s)
    sid = s["id"]

    def idle():
        st, x, _ = srv.req("GET", f"/livy/sessions/{sid}")
        if x["state"] in ("error", "dead", "killed"):
            raise RuntimeError(f"session {sid} {x['state']}: {x.get('log')}")
        return x["state"] == "idle"
    B.wait_until(idle, 300, 0.01, f"session {sid} idle")
    return sid, time.perf_counter() - t0


def session_procs(srv, sid):
    """Processes of session sid (the kernel and its JVM work in its directory)."""
    d = str(srv.home / "livy" / "sessions" / str(sid))
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/cwd") == d:
                    out.append(int(p))
            except OSError:
                pass
    return out


def delete_session(srv, sid):
    """DELETE, then wait until its kernel and JVM are gone (so the next session
    starts on a machine as quiet as the first did)."""
    srv.req("DELETE", f"/livy/sessions/{sid}")
    B.wait_until(lambda: not session_procs(srv, sid), 60, 0.1, f"session {sid}'s processes to end")
    time.sleep(0.5)


def delete_all(srv):
    st, lst, _ = srv.req("GET", "/livy/sessions?size=1000")
    for x in (lst or {}).get("sessions", []):
        delete_session(srv, x["id"])


def statement_rtt(srv, sid, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        st, s, _ = srv.req("POST", f"/livy/sessions/{sid}/statements", {"code": "1 + 1"})
        assert st == 201, (st, s)
        while True:
            st, x, _ = srv.req("GET", f"/livy/sessions/{sid}/statements/{s['id']}")
            if x["state"] in ("available", "error", "cancelled"):
                break
        out.append(time.perf_counter() - t0)
        assert x["output"]["status"] == "ok", x
    return out


def by_hand(tmp, python):
    """pyspark's spark-submit of a script printing READY when its SparkSession is up."""
    import pyspark
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    script = tmp / "ready.py"
    script.write_text("from pyspark.sql import SparkSession\n"
                      "spark = SparkSession.builder.getOrCreate()\n"
                      "print('READY', flush=True)\n"
                      "spark.stop()\n")
    cmd = [str(submit), "--master", MASTER]
    for k, v in CONF.items():
        cmd += ["--conf", f"{k}={v}"]
    cmd.append(str(script))
    env = dict(os.environ, PYSPARK_PYTHON=python, SPARK_LOCAL_IP="127.0.0.1")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in p.stdout:
        if line.startswith("READY"):
            t = time.perf_counter() - t0
            break
    else:
        raise RuntimeError("spark-submit never printed READY")
    p.wait(timeout=120)
    return t


def direct_kernel_rtt(n):
    """The same statement straight to a kernel (jupyter_client), PySpark imported."""
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute_interactive("import pyspark", timeout=60)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            reply = kc.execute_interactive("1 + 1", timeout=60, output_hook=lambda m: None)
            out.append(time.perf_counter() - t0)
            assert reply["content"]["status"] == "ok"
        return out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nbhub", default="build/nbhub")
    ap.add_argument("-n", type=int, default=3, help="session starts of each kind")
    ap.add_argument("--stmts", type=int, default=200)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    nbhub = str(Path(a.nbhub).resolve())
    tmp = Path(tempfile.mkdtemp(prefix="bench-livy-"))
    res = {}
    try:
        srv = Serve(nbhub, tmp / "cold")
        try:
            sid, _ = session_to_idle(srv)          # unmeasured: page cache
            delete_session(srv, sid)
            cold = []
            for i in range(a.n):
                sid, t = session_to_idle(srv)
                B.log(f"cold session {i}: {t:.2f} s")
                cold.append(t)
                if i < a.n - 1:
                    delete_session(srv, sid)
            res["cold"] = cold
            srv.req("POST", f"/livy/sessions/{sid}/statements", {"code": "1 + 1"})   # warm the path
            res["livy_rtt"] = statement_rtt(srv, sid, a.stmts)
        finally:
            delete_all(srv)                        # sessions outlive nbhub serve by design
            srv.stop()
        res["direct_rtt"] = direct_kernel_rtt(a.stmts)
        hand = []
        for i in range(a.n):
            hand.append(by_hand(tmp, sys.executable))
            B.log(f"spark-submit by hand {i}: {hand[-1]:.2f} s")
        res["hand"] = hand
        warm = None
        try:
            srv = Serve(nbhub, tmp / "warm", warm=1)
        except RuntimeError as e:
            B.log(f"no warm pool in this build: {str(e)[:300]}")
            res["warm_absent"] = str(e).splitlines()[-1][:200]
        else:
            try:
                warm = []
                for i in range(a.n):
                    time.sleep(20)                 # the pool refills after each take
                    sid, t = session_to_idle(srv)
                    B.log(f"warm session {i}: {t:.2f} s")
                    warm.append(t)
                    delete_session(srv, sid)
            finally:
                delete_all(srv)
                srv.stop()
        res["warm"] = warm
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ms = lambda xs: B.med(xs) * 1000  # noqa: E731
    lines = [SECTION, "",
             f"{B.cpu_model()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; master {MASTER}, "
             f"driver 512m; medians of {a.n} (sessions, spark-submit) and {a.stmts} (statements), one run.", "",
             "| what | median | all |", "|---|---|---|",
             f"| session POST -> idle, cold (a new PySpark kernel) | {B.med(res['cold']):.2f} s | "
             + ", ".join(f"{x:.2f}" for x in res["cold"]) + " |"]
    if res.get("warm"):
        lines.append(f"| session POST -> idle, warm kernel (livy.warm: 1) | {B.med(res['warm']):.2f} s | "
                     + ", ".join(f"{x:.2f}" for x in res["warm"]) + " |")
    else:
        lines.append(f"| session POST -> idle, warm kernel | not measured: {res.get('warm_absent', 'no pool')} | |")
    lines += [f"| the same driver by hand: spark-submit -> SparkSession ready | {B.med(res['hand']):.2f} s | "
              + ", ".join(f"{x:.2f}" for x in res["hand"]) + " |",
              f"| statement `1 + 1`: POST -> GET says available (Livy API) | {ms(res['livy_rtt']):.2f} ms | "
              f"p90 {B.pct(res['livy_rtt'], 90) * 1000:.2f} ms |",
              f"| the same on a kernel directly (jupyter_client) | {ms(res['direct_rtt']):.2f} ms | "
              f"p90 {B.pct(res['direct_rtt'], 90) * 1000:.2f} ms |",
              f"| **overhead of the Livy API per statement (p50)** | "
              f"**{ms(res['livy_rtt']) - ms(res['direct_rtt']):.2f} ms** | target <= 2 ms |", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        B.replace_section(SECTION, text)


if __name__ == "__main__":
    main()
