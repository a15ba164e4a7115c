#!/usr/bin/env python3
"""What isolation: system costs a notebook task (docs/security.md).

Under `isolation: system` a task's kernel cannot come from the daemon's warm
pool (a pooled kernel is started before its user is known), so each notebook
task starts its own kernel as its user, through `nbhub __as-user`.  This runs
the same one-cell notebook flow N times in three set-ups of one nbhub binary,
one after the other on the same machine, and reports the median task time
(the task run's started_at -> ended_at, from the API) and the whole run's:

  shared + pool   isolation shared, --pool syspy=1 (today's default on a laptop)
  shared          isolation shared, no pool (a kernel started per task)
  system          isolation system, the task as its owner's Unix account

All three use the same kernel (Debian's python3 with python3-ipykernel), so the
difference is the pool and the trampoline.  Needs root.  --write puts the
table into bench/RESULTS.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from benchlib import cpu_model, free_port, replace_section

TITLE = "## isolation: system vs shared, a one-cell notebook task (bench/bench_isolation.py)"
NB = {"cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
                 "source": "x = 1"}],
      "metadata": {"kernelspec": {"name": "syspy", "display_name": "S", "language": "python"}},
      "nbformat": 4, "nbformat_minor": 5}


def iso(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Serve:
    def __init__(self, nbhub, mode, pool):
        self.home = Path(tempfile.mkdtemp(prefix="nbhub-bench-iso-", dir="/tmp"))
        os.chmod(self.home, 0o711)
        spec = self.home / "jupyter" / "kernels" / "syspy"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "S", "language": "python"}))
        for d in (self.home / "jupyter", self.home / "jupyter" / "kernels", spec):
            os.chmod(d, 0o755)
        os.chmod(spec / "kernel.json", 0o644)
        (self.home / "nbhub.yaml").write_text(f"isolation: {mode}\ncreate_system_users: true\n")
        flows = self.home / "flows" / "one"
        flows.mkdir(parents=True)
        (flows / "one.ipynb").write_text(json.dumps(NB))
        (self.home / "flows" / "one.yaml").write_text("name: one\nowner: benchiso\ntasks:\n  t: {notebook: one.ipynb}\n")
        pw = self.home / "pw"
        pw.write_text("bench-password-1\n")
        env = dict(os.environ, JUPYTER_PATH=str(self.home / "jupyter"), NBHUB_ADMIN_PASSWORD_FILE=str(pw))
        env.pop("NBHUB_ISOLATION", None)
        self.port = free_port()
        args = [nbhub, "serve", "--home", str(self.home), "--listen", f"127.0.0.1:{self.port}"]
        if pool:
            args += ["--pool", "syspy=1"]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(self.home / "serve.log", "w"))
        self.token = None
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                st, body = self.req("POST", "/api/v1/login", {"username": "admin", "password": "bench-password-1"})
                if st == 200:
                    break
            except OSError:
                time.sleep(0.1)
        self.cookie = None
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/login", method="POST",
                                   data=json.dumps({"username": "admin", "password": "bench-password-1"}).encode(),
                                   headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r) as resp:
            cookie = resp.headers["Set-Cookie"].split(";")[0]
            csrf = json.loads(resp.read())["csrf_token"]
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/users/admin/tokens", method="POST",
                                   data=b'{"name": "bench"}', headers={"Content-Type": "application/json",
                                                                       "Cookie": cookie, "X-CSRF-Token": csrf})
        with urllib.request.urlopen(r) as resp:
            self.token = json.loads(resp.read())["token"]
        if pool:   # the pool's kernel is ready before the first run
            deadline = time.time() + 60
            while time.time() < deadline:
                st, info = self.req("GET", "/api/v1/info")
                if info.get("pool", {}).get("syspy", {}).get("ready"):
                    break
                time.sleep(0.1)

    def req(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, headers=headers,
                                   data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def run_once(self):
        st, run = self.req("POST", "/api/v1/flows/one/runs", {})
        assert st == 201, (st, run)
        while True:
            st, r = self.req("GET", f"/api/v1/runs/{run['id']}")
            if r["state"] in ("success", "failed"):
                break
            time.sleep(0.02)
        assert r["state"] == "success", (r, (self.home / "serve.log").read_text()[-2000:])
        t = r["tasks"][0]
        return iso(t["ended_at"]) - iso(t["started_at"]), iso(r["ended_at"]) - iso(r["created_at"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.home, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nbhub", default=str(Path(__file__).resolve().parent.parent / "build" / "nbhub"))
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_isolation: needs root (isolation: system)")
    rows = []
    for label, mode, pool in (("shared + warm pool", "shared", True), ("shared, no pool", "shared", False),
                              ("system (as the owner)", "system", False)):
        s = Serve(a.nbhub, mode, pool)
        try:
            s.run_once()   # warm-up: the account is created on the first system run
            if pool:
                time.sleep(1.0)
            task, run = [], []
            for _ in range(a.n):
                t, r = s.run_once()
                task.append(t * 1000)
                run.append(r * 1000)
                if pool:
                    time.sleep(1.0)   # the pool refills 300 ms after a take
        finally:
            s.stop()
        rows.append((label, statistics.median(task), statistics.median(run)))
        print(f"{label}: task p50 {rows[-1][1]:.0f} ms, run p50 {rows[-1][2]:.0f} ms", flush=True)
    subprocess.run(["userdel", "-r", "nbhub-benchiso"], capture_output=True)
    base = rows[0][1]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [TITLE, "",
             f"Generated by `bench/bench_isolation.py -n {a.n} --write` on {now}, {os.cpu_count()} CPUs, {cpu_model()}.",
             "One nbhub binary, the three set-ups one after the other; a one-cell notebook (`x = 1`) on Debian's "
             "python3 + ipykernel; task time = the task run's started_at -> ended_at (the kernel start, the cell, "
             "the output notebook), medians of the runs after a warm-up.", "",
             "| set-up | task p50 (ms) | run p50 (ms) | task vs shared + pool |", "|---|---:|---:|---:|"]
    for label, t, r in rows:
        lines.append(f"| {label} | {t:.0f} | {r:.0f} | {t / base:.1f}x |")
    lines += ["", "The difference between the first two rows is the warm pool (a kernel start per task); "
              "between the last two, what `nbhub __as-user` adds (account lookup, chown of the run directory, "
              "initgroups/setuid, exec through a descriptor).", ""]
    if a.write:
        replace_section(TITLE, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
