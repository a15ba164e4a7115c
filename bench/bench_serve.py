#!/usr/bin/env python3
"""Benchmark `nbhub serve` (the scheduler daemon) against Apache Airflow.

    .venv/bin/python bench/bench_serve.py [--parts 1234] [--no-airflow] [--write]
    make bench-serve                      # build, install the Airflow venv if missing, --write

Issue 3's targets, each side by side with the anchor (Airflow 3, LocalExecutor on
SQLite, in its own venv bench/.venv-airflow from bench/requirements-airflow.txt):

  1  dependent latency: a task's end -> its dependent's first cell starting, p50/p99
     over 200 edges, warm kernel pool.  nbhub: parent's last code cell
     metadata.papermill.end_time -> child's first code cell start_time, from the
     output notebooks under <home>/runs/<flow>/<run dir>/.  Airflow: a task
     instance's end_date -> its dependent's start_date.  Flow: CHAINS parallel
     chains, each task sleeping SLEEP s, pool = CHAINS + 2, so a warm kernel is
     ready whenever a dependent becomes ready (checked: every task's log must say
     "(warm kernel)").  Target p50 <= 20 ms.
  2  scheduler overhead on a large DAG of no-op `true` command tasks (LAYERS x
     WIDTH, each task after FANIN tasks of the previous layer), max_active_tasks 16:
     wall time, wall / tasks, daemon CPU (utime+stime from /proc/PID/stat) / task.
  3  idle RSS of the daemon (VmRSS, VmHWM, Pss) with the example flows loaded and
     nothing running (their start dates moved to 2099), no pool.  Target <= 15 MB.
  4  REST: GET /api/v1/runs?limit=100 with 10,000 runs in the database (made with
     `backfill` through the API), C concurrent keep-alive clients (processes, one
     connection each, closed loop): requests/s and latency p50/p99.

Everything listens on 127.0.0.1 only.  Heavy steps run one at a time (2-core
machine): nbhub's parts first, then Airflow's (one api-server + dag-processor +
scheduler for all its parts).  --json FILE keeps the raw samples; --from-json FILE
--write renders and writes them again without rerunning.
"""

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import sqlite3  # noqa: F401  (never used to write: nbhub's database is filled through its API)
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
AF_VENV = REPO / "bench" / ".venv-airflow"
AF_REQ = REPO / "bench" / "requirements-airflow.txt"
AF_DAGS = REPO / "bench" / "airflow" / "bench_dags.py"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## nbhub serve vs Airflow (bench/bench_serve.py)"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ADMIN_PASSWORD = "bench-admin-password-123"


# --------------------------------------------------------------------------- small helpers

def ts(s):
    """ISO 8601 ('...Z' or '+00:00') -> epoch seconds (float)."""
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def proc_stat(pid):
    """(utime+stime, cutime+cstime) in seconds, ppid; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    ppid = int(fields[1])
    self_cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    child_cpu = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return self_cpu, child_cpu, ppid


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])       # kB
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def descendants(roots):
    """Every live process below (and including) the given pids."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        s = proc_stat(int(d))
        if s:
            children.setdefault(s[2], []).append(int(d))
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(roots):
    """CPU seconds of a process tree: self + reaped children of every live member."""
    total = 0.0
    for p in descendants(roots):
        s = proc_stat(p)
        if s:
            total += s[0] + s[1]
    return total


def tree_mem(roots):
    """Sum of VmRSS and of Pss (kB) over a process tree, and the member count."""
    rss = pss = n = 0
    for p in descendants(roots):
        m = proc_status(p)
        if m:
            rss += m.get("VmRSS", 0)
            pss += m.get("Pss", 0)
            n += 1
    return rss, pss, n


from benchlib import cpu_model, free_port, log, med, pct, replace_section, wait_until  # noqa: E402  (same directory)


def make_notebook(path, sources):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nb = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"}})
    nb.cells = [new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))


class Http:
    """Tiny JSON client (one keep-alive connection, reopened on error)."""

    def __init__(self, port, token=None, bearer=True):
        self.port = port
        self.token = token
        self.c = None

    def request(self, method, path, body=None, headers=None, raw=False, timeout=120):
        hdrs = dict(headers or {})
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            else:
                data = body.encode() if isinstance(body, str) else body
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.c.request(method, path, body=data, headers=hdrs)
                r = self.c.getresponse()
                payload = r.read()
                break
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = None
                if attempt:
                    raise
        hdr = {k.lower(): v for k, v in r.getheaders()}
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

    def close(self):
        if self.c:
            self.c.close()
            self.c = None


# --------------------------------------------------------------------------- nbhub serve

def nbhub_env(tmp):
    env = dict(os.environ)
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    for k in ("PYTHONPATH", "NBHUB_CONFIG", "NBHUB_HOME", "NBHUB_URL", "NBHUB_TOKEN"):
        env.pop(k, None)
    pw = Path(tmp) / "admin-password"
    pw.write_text(ADMIN_PASSWORD + "\n")
    env["NBHUB_ADMIN_PASSWORD_FILE"] = str(pw)
    return env


class Nbhub:
    """One `nbhub serve` on 127.0.0.1:0 with its own home."""

    def __init__(self, args, tmp, home, flows, extra=()):
        self.args, self.tmp = args, Path(tmp)
        self.home, self.flows = Path(home), Path(flows)
        self.home.mkdir(parents=True, exist_ok=True)
        self.flows.mkdir(parents=True, exist_ok=True)
        self.extra = list(extra)
        self.proc = None
        self.api = None
        self.n = 0

    def start(self, login=True, timeout=60):
        self.n += 1
        self.out_path = self.tmp / f"serve-{self.home.name}-{self.n}.out"
        self.err_path = self.tmp / f"serve-{self.home.name}-{self.n}.log"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        argv = [self.args.nbhub, "serve", "--home", str(self.home), "--flows", str(self.flows),
                "--listen", "127.0.0.1:0", *self.extra]
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     env=nbhub_env(self.tmp), cwd=str(self.tmp))
        self.pid = self.proc.pid

        def port():
            m = re.search(r"\(port (\d+)\)", self.out_path.read_text())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"nbhub serve exited {self.proc.returncode}:\n{self.log()}")
            return None
        self.port = wait_until(port, timeout, 0.01, "nbhub serve to listen")
        self.api = Http(self.port)
        if login:
            self.api.token = self.admin_token()
        return self

    def admin_token(self):
        st, body, hdr = self.api.request("POST", "/api/v1/login",
                                         {"username": "admin", "password": ADMIN_PASSWORD}, raw=True)
        if st != 200:
            raise RuntimeError(f"login: {st} {body[:300]!r}")
        cookie = hdr["set-cookie"].split(";")[0]
        csrf = json.loads(body)["csrf_token"]
        st, tok = self.api.request("POST", "/api/v1/users/admin/tokens", {"name": "bench"},
                                   headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        if st != 201:
            raise RuntimeError(f"token: {st} {tok}")
        return tok["token"]

    def log(self):
        try:
            return self.err_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def check(self, st, body, want=(200, 201)):
        if st not in want:
            raise RuntimeError(f"nbhub API answered {st}: {str(body)[:500]}\n{self.log()}")
        return body

    def trigger(self, flow):
        st, run = self.api.post(f"/api/v1/flows/{flow}/runs", {})
        return self.check(st, run)["id"]

    def wait_run(self, run_id, timeout, interval=0.2):
        def done():
            st, runs = self.api.get(f"/api/v1/runs?limit=1&before={run_id + 1}")
            self.check(st, runs)
            r = runs["runs"][0]
            assert r["id"] == run_id, r
            return r if r["state"] in ("success", "failed", "cancelled") else None
        return wait_until(done, timeout, interval, f"nbhub run {run_id}")

    def stop(self, timeout=60):
        if self.api:
            self.api.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()
        return self.proc.returncode if self.proc else None


# --------------------------------------------------------------------------- part 1: dependent latency

def chain_names(chains, length):
    return [[f"c{i}_{j:03d}" for j in range(length)] for i in range(chains)]


def nbhub_latency(args, tmp):
    length = args.edges // args.chains + 1
    pool = args.chains + 2
    home = tmp / "p1"
    flows = home / "flows"
    flows.mkdir(parents=True)
    make_notebook(flows / "step.ipynb", [f"import time; time.sleep({args.sleep})"])
    lines = ["name: latency", "max_active_runs: 1", "tasks:"]
    for chain in chain_names(args.chains, length):
        for j, name in enumerate(chain):
            lines.append(f"  {name}:")
            lines.append("    notebook: step.ipynb")
            if j:
                lines.append(f"    after: [{chain[j - 1]}]")
    (flows / "latency.yaml").write_text("\n".join(lines) + "\n")
    srv = Nbhub(args, tmp, home, flows, ["--pool", f"python3={pool}", "--max-active-tasks", str(2 * pool)])
    srv.start()
    try:
        def pool_full():
            st, info = srv.api.get("/api/v1/info")
            p = (info or {}).get("pool", {}).get("python3", {})
            return p.get("ready", 0) >= pool
        wait_until(pool_full, 120, 0.1, "the warm pool to fill")
        # sample the pool while the run goes: how low does it get?
        ready_samples = []
        stop = threading.Event()

        def sampler():
            h = Http(srv.port, srv.api.token)
            while not stop.is_set():
                try:
                    st, info = h.get("/api/v1/info")
                    ready_samples.append(info["pool"]["python3"]["ready"])
                except Exception:
                    pass
                time.sleep(0.05)
            h.close()
        th = threading.Thread(target=sampler, daemon=True)
        t0 = time.monotonic()
        run_id = srv.trigger("latency")
        th.start()
        run = srv.wait_run(run_id, timeout=60 + length * (args.sleep + 5), interval=0.5)
        wall = time.monotonic() - t0
        stop.set()
        th.join()
        if run["state"] != "success":
            raise RuntimeError(f"latency run ended {run['state']}:\n{srv.log()}")
        st, full = srv.api.get(f"/api/v1/runs/{run_id}")
        tasks = {t["name"]: t for t in srv.check(st, full)["tasks"]}
        rdir = re.sub(r"[^A-Za-z0-9._+-]", "_", full["run_id"])
        d = home / "runs" / "latency" / rdir
        gaps, parts = [], {"cell_end_to_exit": [], "exit_to_queued": [], "queued_to_spawned": [],
                           "spawned_to_cell_start": []}
        cold = 0
        for chain in chain_names(args.chains, length):
            for p, c in zip(chain, chain[1:]):
                pn = json.loads((d / f"{p}.ipynb").read_text())
                cn = json.loads((d / f"{c}.ipynb").read_text())
                pe = ts([x for x in pn["cells"] if x["cell_type"] == "code"][-1]["metadata"]["papermill"]["end_time"])
                cs = ts([x for x in cn["cells"] if x["cell_type"] == "code"][0]["metadata"]["papermill"]["start_time"])
                gaps.append((cs - pe) * 1000)
                tp, tc = tasks[p], tasks[c]
                parts["cell_end_to_exit"].append((ts(tp["ended_at"]) - pe) * 1000)
                parts["exit_to_queued"].append((ts(tc["queued_at"]) - ts(tp["ended_at"])) * 1000)
                parts["queued_to_spawned"].append((ts(tc["started_at"]) - ts(tc["queued_at"])) * 1000)
                parts["spawned_to_cell_start"].append((cs - ts(tc["started_at"])) * 1000)
                if "(warm kernel)" not in (d / f"{c}.log").read_text():
                    cold += 1
        daemon_cpu = proc_stat(srv.pid)
    finally:
        srv.stop()
    return {"edges": len(gaps), "chains": args.chains, "length": length, "pool": pool, "sleep": args.sleep,
            "gaps_ms": gaps, "p50": pct(gaps, 50), "p99": pct(gaps, 99), "mean": statistics.mean(gaps),
            "max": max(gaps), "cold": cold, "pool_min_ready": min(ready_samples) if ready_samples else None,
            "parts_p50": {k: pct(v, 50) for k, v in parts.items()}, "wall": wall}


# --------------------------------------------------------------------------- part 2: large DAG

def flow_max_tasks():
    m = re.search(r"#define\s+FLOW_MAX_TASKS\s+(\d+)", (REPO / "src/sched/flow.h").read_text())
    return int(m.group(1)) if m else 1000


def wide_yaml(layers, width, fanin):
    lines = ["name: wide", "max_active_runs: 1", "tasks:"]
    for layer in range(layers):
        for k in range(width):
            name = f"l{layer:03d}_{k:03d}"
            if layer == 0:
                lines.append(f'  {name}: {{command: "true"}}')
            else:
                ups = sorted({(k + d) % width for d in range(fanin)})
                after = ", ".join(f"l{layer - 1:03d}_{u:03d}" for u in ups)
                lines.append(f'  {name}: {{command: "true", after: [{after}]}}')
    return "\n".join(lines) + "\n"


def failed_tasks(srv, run_id):
    st, full = srv.api.get(f"/api/v1/runs/{run_id}")
    full = srv.check(st, full)
    counts = {}
    out = []
    for t in full["tasks"]:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
        if t["state"] == "failed":
            st, text, _ = srv.api.request("GET", f"/api/v1/runs/{run_id}/tasks/{t['name']}/log?tail=2000",
                                          raw=True)
            out.append({"task": t["name"], "exit_code": t["exit_code"], "error": t["error"],
                        "try": t["try_number"], "started_at": t["started_at"], "ended_at": t["ended_at"],
                        "log": text.decode(errors="replace")[-600:] if st == 200 else f"({st})"})
    return [{"states": counts}] + out


def nbhub_wide(args, tmp):
    home = tmp / "p2"
    flows = home / "flows"
    flows.mkdir(parents=True)
    text = wide_yaml(args.layers, args.width, args.fanin)
    (flows / "wide.yaml").write_text(text)
    ntasks = args.layers * args.width
    srv = Nbhub(args, tmp, home, flows, ["--max-active-tasks", str(args.max_active)])
    srv.start()
    reps = []
    try:
        def loaded():
            st, f = srv.api.get("/api/v1/flows/wide")
            if st == 200 and f.get("errors"):
                raise RuntimeError(f"wide.yaml did not load: {f['errors'][:5]}")
            return st == 200 and f.get("tasks") == ntasks
        t_load0 = time.monotonic()
        wait_until(loaded, 120, 0.05, "wide.yaml to load")
        load_s = time.monotonic() - t_load0
        for rep in range(args.wide_reps):
            s0 = proc_stat(srv.pid)
            t0 = time.monotonic()
            run_id = srv.trigger("wide")
            t_trig = time.monotonic() - t0
            run = srv.wait_run(run_id, timeout=1800, interval=0.25)
            wall_client = time.monotonic() - t0
            s1 = proc_stat(srv.pid)
            wall = ts(run["ended_at"]) - ts(run["created_at"])
            r = {"wall": wall, "wall_client": wall_client, "trigger_s": t_trig,
                 "cpu_self": s1[0] - s0[0], "cpu_children": s1[1] - s0[1], "state": run["state"]}
            if run["state"] != "success":
                # an nbhub bug, not a benchmark error: record what failed and go on
                r["failed"] = failed_tasks(srv, run_id)
                log(f"  nbhub wide rep {rep + 1}: run {run_id} ended {run['state']}: "
                    f"{json.dumps(r['failed'][:5])}")
            reps.append(r)
            log(f"  nbhub wide rep {rep + 1}/{args.wide_reps}: {ntasks} tasks in {wall:.2f}s "
                f"({wall / ntasks * 1000:.2f} ms/task), daemon CPU {r['cpu_self']:.2f}s "
                f"(+{r['cpu_children']:.2f}s reaped children), trigger call {t_trig * 1000:.0f} ms")
        rss = proc_status(srv.pid)
    finally:
        srv.stop()
    wall = med([r["wall"] for r in reps])
    cpu = med([r["cpu_self"] for r in reps])
    return {"tasks": ntasks, "layers": args.layers, "width": args.width, "fanin": args.fanin,
            "max_active": args.max_active, "yaml_bytes": len(text), "load_s": load_s, "reps": reps,
            "wall": wall, "per_task_ms": wall / ntasks * 1000, "cpu_self": cpu,
            "cpu_per_task_ms": cpu / ntasks * 1000,
            "cpu_children_per_task_ms": med([r["cpu_children"] for r in reps]) / ntasks * 1000,
            "trigger_s": med([r["trigger_s"] for r in reps]), "rss_after_kb": rss}


# --------------------------------------------------------------------------- part 3: idle RSS

def nbhub_idle(args, tmp):
    base = tmp / "p3"
    ex = base / "examples"
    (ex / "flows").mkdir(parents=True)
    for nb in (REPO / "examples").glob("*.ipynb"):
        shutil.copy(nb, ex / nb.name)
    for fl in sorted((REPO / "examples" / "flows").glob("*.yaml")):
        text = fl.read_text()
        # far-away schedules: nothing may run while we measure idle memory
        if re.search(r"^start_date:", text, re.M):
            text = re.sub(r"^start_date:.*$", "start_date: 2099-01-01", text, flags=re.M)
        elif re.search(r"^schedule:", text, re.M):
            text = re.sub(r"^(schedule:.*)$", r"\1\nstart_date: 2099-01-01", text, count=1, flags=re.M)
        (ex / "flows" / fl.name).write_text(text)
    home = base / "home"
    srv = Nbhub(args, tmp, home, ex / "flows")
    out = {}
    try:
        # first start: creates the admin user (one argon2id hash, 19 MiB)
        srv.start(login=False)
        time.sleep(args.idle_settle)
        out["first_start"] = proc_status(srv.pid)
        srv.api.token = srv.admin_token()     # one more argon2id verify, then a token
        st, flows = srv.api.get("/api/v1/flows")
        flows = srv.check(st, flows)["flows"]
        bad = [f["name"] for f in flows if f.get("errors")]
        if bad or len(flows) != len(list((ex / "flows").glob("*.yaml"))):
            raise RuntimeError(f"example flows did not all load: {flows}")
        for _ in range(20):
            srv.api.get("/api/v1/flows")
            srv.api.get("/api/v1/runs")
        time.sleep(1)
        out["after_api"] = proc_status(srv.pid)
        st, runs = srv.api.get("/api/v1/runs")
        if srv.check(st, runs)["runs"]:
            raise RuntimeError(f"a run started while measuring idle memory: {runs['runs'][:2]}")
        out["flows"] = [f["name"] for f in flows]
        srv.stop()
        # restart on the same home: the admin exists, no hash at start
        srv.start(login=False)
        time.sleep(args.idle_settle)
        out["restart"] = proc_status(srv.pid)
    finally:
        srv.stop()
    return out


# --------------------------------------------------------------------------- part 4: REST list

def _rest_worker(port, token, path, seconds, start_at, q):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hdrs = {"Authorization": f"Bearer {token}"}
    lat = []
    errors = 0
    nbytes = 0
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.monotonic() + seconds
    while True:
        t0 = time.monotonic()
        if t0 >= end:
            break
        try:
            c.request("GET", path, headers=hdrs)
            r = c.getresponse()
            b = r.read()
            if r.status != 200:
                errors += 1
            nbytes += len(b)
        except (OSError, http.client.HTTPException):
            errors += 1
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        lat.append(time.monotonic() - t0)
    c.close()
    q.put((lat, errors, nbytes))


def rest_load(port, token, path, conc, seconds, cpu_pids):
    """Closed loop: conc processes, one keep-alive connection each, for `seconds`."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_rest_worker, args=(port, token, path, seconds, start_at, q))
             for _ in range(conc)]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    c0 = tree_cpu(cpu_pids)
    t0 = time.monotonic()
    res = [q.get(timeout=seconds + 120) for _ in procs]
    elapsed = time.monotonic() - t0
    c1 = tree_cpu(cpu_pids)
    for p in procs:
        p.join(timeout=30)
    lat = [x for r in res for x in r[0]]
    n = len(lat)
    return {"requests": n, "errors": sum(r[1] for r in res), "rps": n / elapsed,
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "bytes_per_resp": sum(r[2] for r in res) / max(n, 1),
            "server_cpu_ms_per_req": (c1 - c0) * 1000 / max(n, 1), "lat": lat}


def runs_flow_yaml():
    return ("name: history\n"
            "schedule: 1m\n"
            "start_date: 2026-01-01\n"
            "end_date: 2026-01-08\n"
            "max_active_runs: 16\n"
            "tasks:\n"
            "  noop: {command: \"true\"}\n")


def nbhub_rest(args, tmp):
    home = tmp / "p4"
    flows = home / "flows"
    flows.mkdir(parents=True)
    (flows / "history.yaml").write_text(runs_flow_yaml())
    srv = Nbhub(args, tmp, home, flows, ["--max-active-tasks", str(args.max_active)])
    srv.start()
    out = {}
    try:
        wait_until(lambda: srv.api.get("/api/v1/flows/history")[0] == 200, 60, 0.05, "history.yaml")
        t0 = time.monotonic()
        start = dt.datetime(2026, 1, 1)
        made = 0
        per = 1000
        while made < args.runs:
            n = min(per, args.runs - made)
            fr = start + dt.timedelta(minutes=made)
            to = fr + dt.timedelta(minutes=n - 1)
            st, body = srv.api.post("/api/v1/flows/history/backfill",
                                    {"from": fr.strftime("%Y-%m-%dT%H:%M:%S"),
                                     "to": to.strftime("%Y-%m-%dT%H:%M:%S")})
            srv.check(st, body)
            made += n
        out["create_calls_s"] = time.monotonic() - t0

        def all_done():
            for state in ("queued", "running"):
                st, b = srv.api.get(f"/api/v1/runs?flow=history&state={state}&limit=1")
                if srv.check(st, b)["runs"]:
                    return False
            return True
        wait_until(all_done, 3600, 1.0, "the 10,000 backfill runs to finish")
        out["create_total_s"] = time.monotonic() - t0
        # count what is there (paging, newest first)
        total, before, states = 0, None, {}
        while True:
            st, b = srv.api.get("/api/v1/runs?limit=1000" + (f"&before={before}" if before else ""))
            b = srv.check(st, b)
            total += len(b["runs"])
            for r in b["runs"]:
                states[r["state"]] = states.get(r["state"], 0) + 1
            before = b["next"]
            if not before:
                break
        out["runs_in_db"] = total
        out["states"] = states
        log(f"  nbhub: {total} runs in the database ({states}), made in {out['create_total_s']:.1f}s")
        path = "/api/v1/runs?limit=100"
        rest_load(srv.port, srv.api.token, path, args.rest_conc, 2, [srv.pid])      # warm-up
        reps = []
        for rep in range(args.rest_reps):
            r = rest_load(srv.port, srv.api.token, path, args.rest_conc, args.rest_seconds, [srv.pid])
            reps.append(r)
            log(f"  nbhub REST rep {rep + 1}/{args.rest_reps}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms, {r['bytes_per_resp'] / 1024:.1f} KiB/answer, errors {r['errors']}, "
                f"daemon CPU {r['server_cpu_ms_per_req']:.3f} ms/req")
        out.update(summarize_rest(reps))
        out["rss_after_kb"] = proc_status(srv.pid)
    finally:
        srv.stop()
    return out


def summarize_rest(reps):
    lat = [x for r in reps for x in r["lat"]]
    return {"rps": med([r["rps"] for r in reps]), "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "errors": sum(r["errors"] for r in reps), "requests": sum(r["requests"] for r in reps),
            "bytes_per_resp": med([r["bytes_per_resp"] for r in reps]),
            "server_cpu_ms_per_req": med([r["server_cpu_ms_per_req"] for r in reps]),
            "rps_reps": [r["rps"] for r in reps]}


# --------------------------------------------------------------------------- Airflow

def airflow_install(args, tmp):
    """Make sure bench/.venv-airflow has Airflow; returns (ok, version or reason)."""
    airflow = AF_VENV / "bin" / "airflow"
    if not airflow.exists():
        if args.no_install:
            return False, f"{airflow} does not exist and --no-install was given"
        py = shutil.which("python3", path=os.defpath + ":/usr/local/bin") or sys.executable
        base_py = Path(sys.base_prefix) / "bin" / "python3"
        if base_py.exists():
            py = str(base_py)
        logf = tmp / "airflow-install.log"
        log(f"  installing Airflow into {AF_VENV} from {AF_REQ.name} (log: {logf}) ...")
        with open(logf, "wb") as lf:
            rc = subprocess.call([py, "-m", "venv", str(AF_VENV)], stdout=lf, stderr=lf)
            if rc == 0:
                rc = subprocess.call([str(AF_VENV / "bin" / "pip"), "install", "-q", "-r", str(AF_REQ)],
                                     stdout=lf, stderr=lf, timeout=3600)
        if rc != 0 or not airflow.exists():
            tail = logf.read_text(errors="replace")[-1500:]
            return False, f"pip install -r {AF_REQ.name} failed (exit {rc}): {tail}"
    try:
        v = subprocess.run([str(airflow), "version"], capture_output=True, text=True, timeout=180,
                           env=airflow_env(tmp / "af-version"))
        version = v.stdout.strip().splitlines()[-1] if v.returncode == 0 and v.stdout.strip() else None
    except Exception as e:      # noqa: BLE001
        return False, f"`airflow version` failed: {e}"
    if not version:
        return False, f"`airflow version` failed: {v.stderr[-1500:]}"
    return True, version


def airflow_env(home, port=28080, parallelism=16, log_port=28081):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update({
        "PATH": f"{AF_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(AF_VENV),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(home) / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__METRICS__STATSD_ON": "False",
        "NO_PROXY": "*",
        "no_proxy": "*",
    })
    return env


def airflow_all(args, tmp, parts, results):
    """Run Airflow's side of the selected parts in one Airflow instance."""
    af_len = args.af_edges // args.chains + 1
    cfg = {"chains": {"chains": args.chains, "length": af_len, "sleep": args.sleep} if "1" in parts else None,
           "wide": {"layers": args.af_layers, "width": args.af_width, "fanin": args.fanin,
                    "max_active": args.max_active} if "2" in parts else None,
           "runs": "4" in parts}
    af = Airflow(args, tmp, cfg)
    t0 = time.monotonic()
    af.start()
    log(f"  Airflow up in {time.monotonic() - t0:.1f}s (api-server :{af.port}, dag-processor, scheduler "
        f"with LocalExecutor parallelism {args.max_active}, SQLite)")
    out = {}
    try:
        if "3" in parts:
            tp = time.monotonic()
            wait = max(0.0, args.af_idle_settle - (time.monotonic() - af.t_start))
            time.sleep(wait)
            sched = tree_mem(af.pids(["scheduler"]))
            allp = tree_mem(af.pids())
            main = proc_status(af.procs["scheduler"].pid)
            out["idle"] = {"sched_rss_kb": sched[0], "sched_pss_kb": sched[1], "sched_procs": sched[2],
                           "all_rss_kb": allp[0], "all_pss_kb": allp[1], "all_procs": allp[2],
                           "sched_main_rss_kb": main.get("VmRSS"), "sched_main_hwm_kb": main.get("VmHWM")}
            results["timings"]["3 airflow"] = time.monotonic() - tp
            log(f"  Airflow idle: scheduler tree {sched[2]} procs RSS {sched[0] / 1024:.0f} MB "
                f"(Pss {sched[1] / 1024:.0f} MB); all {allp[2]} procs RSS {allp[0] / 1024:.0f} MB "
                f"(Pss {allp[1] / 1024:.0f} MB)")
        if "1" in parts:
            tp = time.monotonic()
            af.unpause("bench_chains")
            rid = af.trigger("bench_chains")
            run = af.wait_run("bench_chains", rid, timeout=600 + af_len * 60)
            if run["state"] != "success":
                raise RuntimeError(f"Airflow bench_chains ended {run['state']}")
            tis = {t["task_id"]: t for t in af.task_instances("bench_chains", rid)}
            gaps = []
            for chain in chain_names(args.chains, af_len):
                for p, c in zip(chain, chain[1:]):
                    gaps.append((ts(tis[c]["start_date"]) - ts(tis[p]["end_date"])) * 1000)
            out["latency"] = {"edges": len(gaps), "p50": pct(gaps, 50), "p99": pct(gaps, 99),
                              "mean": statistics.mean(gaps), "max": max(gaps), "gaps_ms": gaps,
                              "length": af_len}
            results["timings"]["1 airflow"] = time.monotonic() - tp
            log(f"  Airflow latency: {len(gaps)} edges p50 {out['latency']['p50']:.0f} ms "
                f"p99 {out['latency']['p99']:.0f} ms")
        if "2" in parts:
            tp = time.monotonic()
            af.unpause("bench_wide")
            ntasks = args.af_layers * args.af_width
            pids = af.pids(["scheduler"])
            s0 = proc_stat(pids[0])
            c0 = tree_cpu(af.pids())
            t0 = time.monotonic()
            rid = af.trigger("bench_wide")
            run = af.wait_run("bench_wide", rid, timeout=600 + ntasks * 10)
            s1 = proc_stat(pids[0])
            c1 = tree_cpu(af.pids())
            if run["state"] != "success":
                raise RuntimeError(f"Airflow bench_wide ended {run['state']}")
            wall = ts(run["end_date"]) - ts(run["queued_at"])
            out["wide"] = {"tasks": ntasks, "layers": args.af_layers, "width": args.af_width,
                           "wall": wall, "wall_client": time.monotonic() - t0,
                           "per_task_ms": wall / ntasks * 1000,
                           "cpu_sched_self": s1[0] - s0[0],
                           "cpu_per_task_ms": (s1[0] - s0[0]) / ntasks * 1000,
                           "cpu_all_per_task_ms": (c1 - c0) / ntasks * 1000}
            results["timings"]["2 airflow"] = time.monotonic() - tp
            log(f"  Airflow wide: {ntasks} tasks in {wall:.1f}s, scheduler CPU {s1[0] - s0[0]:.1f}s, "
                f"all Airflow processes {c1 - c0:.1f}s")
        if "4" in parts:
            tp = time.monotonic()
            t0 = time.monotonic()
            made, retried = 0, 0
            h = Http(af.port, af.api.token)
            # one client, one request at a time: two concurrent writers make SQLite answer
            # "database is locked" after its 5 s busy timeout (500); such a request is retried
            while made < args.af_runs:
                st, b = h.post("/api/v2/dags/bench_runs/dagRuns", {"logical_date": None})
                if st in (200, 201):
                    made += 1
                    continue
                retried += 1
                if retried > 20:
                    raise RuntimeError(f"Airflow dagRuns POST keeps failing: {st} {str(b)[:300]}")
            h.close()
            create_s = time.monotonic() - t0
            st, b = af.api.get("/api/v2/dags/~/dagRuns?limit=1")
            total = af.check(st, b)["total_entries"]
            log(f"  Airflow: {total} dag runs in the database ({made} made through the REST API "
                f"in {create_s:.0f}s, {retried} requests retried after a 500, DAG paused so they stay queued)")
            path = "/api/v2/dags/~/dagRuns?limit=100&order_by=-id"
            rest_load(af.port, af.api.token, path, args.rest_conc, 2, af.pids(["api-server"]))
            reps = []
            for rep in range(args.rest_reps):
                r = rest_load(af.port, af.api.token, path, args.rest_conc, args.rest_seconds,
                              af.pids(["api-server"]))
                reps.append(r)
                log(f"  Airflow REST rep {rep + 1}/{args.rest_reps}: {r['rps']:.0f} req/s, "
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                    f"{r['bytes_per_resp'] / 1024:.1f} KiB/answer, errors {r['errors']}, "
                    f"api-server CPU {r['server_cpu_ms_per_req']:.2f} ms/req")
            out["rest"] = summarize_rest(reps)
            out["rest"].update({"runs_in_db": total, "create_s": create_s, "path": path, "retried": retried})
            results["timings"]["4 airflow"] = time.monotonic() - tp
    finally:
        af.stop()
    return out


# --------------------------------------------------------------------------- report

def fmt(v, spec=".1f", unit=""):
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return f"{v:{spec}}{unit}"


def ratio(a, b):
    if a is None or b is None or not b or a != a or b != b:
        return "—"
    return f"{a / b:.1f}x"


def render(res, args):
    nb, af = res["nbhub"], res.get("airflow") or {}
    afv = res.get("airflow_version") or "Airflow"
    mb = 1024.0
    rows = []

    def verdict(ok):
        return "PASS" if ok else "MISS"

    L, AL = nb.get("latency"), af.get("latency")
    if L:
        rows.append(("1. dependent latency p50 (ms)", fmt(L["p50"]), fmt(AL and AL["p50"], ".0f"),
                     ratio(AL and AL["p50"], L["p50"]), "<= 20 ms", verdict(L["p50"] <= 20)))
        rows.append(("1. dependent latency p99 (ms)", fmt(L["p99"]), fmt(AL and AL["p99"], ".0f"),
                     ratio(AL and AL["p99"], L["p99"]), "", ""))
    W, AW = nb.get("wide"), af.get("wide")
    if W:
        size = f"{W['tasks']} tasks" + (f" / {AW['tasks']} tasks" if AW else "")
        rows.append((f"2. large DAG wall (s) [{size}]", fmt(W["wall"], ".2f"), fmt(AW and AW["wall"], ".1f"),
                     "", "", ""))
        rows.append(("2. wall per task (ms)", fmt(W["per_task_ms"], ".2f"), fmt(AW and AW["per_task_ms"], ".0f"),
                     ratio(AW and AW["per_task_ms"], W["per_task_ms"]), "", ""))
        rows.append(("2. daemon CPU per task (ms) [Airflow: scheduler process]", fmt(W["cpu_per_task_ms"], ".3f"),
                     fmt(AW and AW["cpu_per_task_ms"], ".1f"),
                     ratio(AW and AW["cpu_per_task_ms"], W["cpu_per_task_ms"]), "", ""))
        rows.append(("2. CPU per task incl. task processes (ms) [Airflow: all its processes]",
                     fmt(W["cpu_per_task_ms"] + W["cpu_children_per_task_ms"], ".2f"),
                     fmt(AW and AW["cpu_all_per_task_ms"], ".0f"),
                     ratio(AW and AW["cpu_all_per_task_ms"],
                           W["cpu_per_task_ms"] + W["cpu_children_per_task_ms"]), "", ""))
    I, AI = nb.get("idle"), af.get("idle")
    if I:
        fr, rs = I["first_start"], I["restart"]
        rows.append(("3. idle VmRSS (MB), restart [Airflow: scheduler + its workers, Pss]",
                     fmt(rs["VmRSS"] / mb), fmt(AI and AI["sched_pss_kb"] / mb, ".0f"),
                     ratio(AI and AI["sched_pss_kb"], rs["VmRSS"]), "<= 15 MB", verdict(rs["VmRSS"] <= 15 * 1024)))
        rows.append(("3. idle VmRSS (MB), first start [Airflow: all its processes, Pss]",
                     fmt(fr["VmRSS"] / mb), fmt(AI and AI["all_pss_kb"] / mb, ".0f"),
                     ratio(AI and AI["all_pss_kb"], fr["VmRSS"]), "<= 15 MB", verdict(fr["VmRSS"] <= 15 * 1024)))
        rows.append(("3. VmRSS (MB) after a login + 40 API calls", fmt(I["after_api"]["VmRSS"] / mb), "—", "",
                     "<= 15 MB", verdict(I["after_api"]["VmRSS"] <= 15 * 1024)))
        rows.append(("3. VmHWM (MB): restart / first start / after login [Airflow: scheduler main VmHWM]",
                     f"{rs['VmHWM'] / mb:.1f} / {fr['VmHWM'] / mb:.1f} / {I['after_api']['VmHWM'] / mb:.1f}",
                     fmt(AI and AI["sched_main_hwm_kb"] / mb, ".0f"), "", "", ""))
    R, AR = nb.get("rest"), af.get("rest")
    if R:
        rows.append((f"4. GET runs?limit=100 req/s ({args.rest_conc} clients)", fmt(R["rps"], ".0f"),
                     fmt(AR and AR["rps"], ".0f"), ratio(R["rps"], AR and AR["rps"]), "", ""))
        rows.append(("4. latency p50 (ms)", fmt(R["p50_ms"], ".2f"), fmt(AR and AR["p50_ms"], ".1f"),
                     ratio(AR and AR["p50_ms"], R["p50_ms"]), "", ""))
        rows.append(("4. latency p99 (ms)", fmt(R["p99_ms"], ".2f"), fmt(AR and AR["p99_ms"], ".1f"),
                     ratio(AR and AR["p99_ms"], R["p99_ms"]), "", ""))
        rows.append(("4. server CPU per request (ms)", fmt(R["server_cpu_ms_per_req"], ".3f"),
                     fmt(AR and AR["server_cpu_ms_per_req"], ".1f"),
                     ratio(AR and AR["server_cpu_ms_per_req"], R["server_cpu_ms_per_req"]), "", ""))
    out = [f"| measure | nbhub | {afv} | ratio (Airflow/nbhub; req/s nbhub/Airflow) | target | |",
           "|---|---:|---:|---:|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("")
    notes = []
    if L:
        p = L["parts_p50"]
        notes.append(
            f"- **1.** nbhub: {L['edges']} edges = {L['chains']} parallel chains x {L['length']} notebook tasks, "
            f"each one cell `time.sleep({L['sleep']})`, `--pool python3={L['pool']}` (chains + 2), so a warm "
            f"kernel is ready whenever a dependent becomes ready: {L['edges'] - L['cold']} of {L['edges']} "
            f"dependents got a warm kernel (their log says so); the pool's ready count sampled every 50 ms "
            f"never went below {L['pool_min_ready']}. Gap = parent's last code cell `papermill.end_time` -> "
            f"child's first code cell `start_time` (output notebooks under `<home>/runs/`). mean "
            f"{L['mean']:.1f} ms, max {L['max']:.1f} ms. Where the median goes (p50 of each step, from the "
            f"run's task times): parent cell end -> daemon records exit {p['cell_end_to_exit']:.1f} ms; "
            f"-> child queued {p['exit_to_queued']:.1f} ms; -> child process spawned "
            f"{p['queued_to_spawned']:.1f} ms; -> first cell starts (`nbhub run` attaches to the warm "
            f"kernel) {p['spawned_to_cell_start']:.1f} ms. Run wall {L['wall']:.0f} s.")
        if AL:
            notes.append(f"  Airflow: the same DAG shape ({args.chains} chains x {AL['length']} PythonOperator "
                         f"tasks sleeping {args.sleep} s, {AL['edges']} edges); gap = task instance `end_date` "
                         f"-> dependent's `start_date` (REST API). mean {AL['mean']:.0f} ms, max {AL['max']:.0f} ms.")
    if W:
        notes.append(
            f"- **2.** nbhub: {W['layers']} layers x {W['width']} `command: \"true\"` tasks "
            f"(FLOW_MAX_TASKS in src/sched/flow.h is {res['flow_max_tasks']}), each after {W['fanin']} tasks of "
            f"the previous layer ({W['yaml_bytes'] / 1024:.0f} KiB of YAML), `--max-active-tasks "
            f"{W['max_active']}`, {len(W['reps'])} runs in one daemon, medians. Wall = run `ended_at - "
            f"created_at`; the trigger call itself (creating the run's {W['tasks']} task rows) took "
            f"{W['trigger_s'] * 1000:.0f} ms; the flow file loaded in {W['load_s']:.2f} s. Daemon CPU = "
            f"utime+stime of the daemon from /proc/PID/stat; the task processes (`__task-wrap` + `true`) "
            f"cost another {W['cpu_children_per_task_ms']:.2f} ms CPU per task (cutime+cstime). Daemon after "
            f"the runs: VmRSS {W['rss_after_kb']['VmRSS'] / mb:.1f} MB, VmHWM {W['rss_after_kb']['VmHWM'] / mb:.1f} MB.")
        bad = [r for r in W["reps"] if r.get("state", "success") != "success"]
        if bad:
            notes.append(f"  **{len(bad)} of {len(W['reps'])} nbhub runs ended failed** (task states and "
                         f"the failed tasks: {json.dumps([r.get('failed', [])[:3] for r in bad])[:1500]}).")
        if AW:
            notes.append(
                f"  Airflow: smaller, same shape: {AW['layers']} layers x {AW['width']} BashOperator `true` "
                f"(fan-in {args.fanin}), DAG max_active_tasks {args.max_active} = parallelism; wall = "
                f"`end_date - queued_at` of the dag run. 'daemon CPU' = the scheduler process's own "
                f"utime+stime; 'all' = every Airflow process (api-server, dag-processor, scheduler, its "
                f"LocalExecutor workers and the task processes they reaped).")
    if I:
        notes.append(
            f"- **3.** nbhub with examples/flows ({', '.join(I['flows'])}; notebooks copied beside them, "
            f"start dates moved to 2099 so nothing runs), no pool, {args.idle_settle:.0f} s after start. "
            f"First start creates the admin user (one argon2id hash, m=19 MiB), which is what VmHWM shows; "
            f"after a login + 40 API calls VmRSS {I['after_api']['VmRSS'] / mb:.1f} MB. Pss: restart "
            f"{I['restart'].get('Pss', 0) / mb:.1f} MB.")
        if AI:
            notes.append(
                f"  Airflow, {args.af_idle_settle:.0f} s after start, the bench DAGs loaded, nothing running: "
                f"scheduler + its children ({AI['sched_procs']} processes: {args.max_active} LocalExecutor "
                f"workers and serve-logs) RSS sum {AI['sched_rss_kb'] / mb:.0f} MB, Pss sum "
                f"{AI['sched_pss_kb'] / mb:.0f} MB (forked workers share pages, so Pss is the fair sum); all "
                f"Airflow processes needed to run and serve the API ({AI['all_procs']}: + api-server, "
                f"dag-processor) RSS {AI['all_rss_kb'] / mb:.0f} MB, Pss {AI['all_pss_kb'] / mb:.0f} MB; "
                f"scheduler main process alone VmRSS {AI['sched_main_rss_kb'] / mb:.0f} MB.")
    if R:
        notes.append(
            f"- **4.** nbhub: {R['runs_in_db']} runs in the database ({R['states']}), made with "
            f"{-(-args.runs // 1000)} `POST /flows/history/backfill` calls of up to 1000 ticks (a 1-minute schedule, "
            f"one `true` task, max_active_runs 16) and run to the end in {R['create_total_s']:.0f} s. "
            f"`GET /api/v1/runs?limit=100` ({R['bytes_per_resp'] / 1024:.1f} KiB), {args.rest_conc} client "
            f"processes with one keep-alive connection each, closed loop, {args.rest_reps} x "
            f"{args.rest_seconds:.0f} s after a 2 s warm-up; req/s is the median of the rounds "
            f"({', '.join(f'{x:.0f}' for x in R['rps_reps'])}), latencies over all requests. The Python "
            f"clients share the 2 cores with the server, so req/s is a floor for nbhub.")
        if AR:
            notes.append(
                f"  Airflow: {AR['runs_in_db']} dag runs (made with `POST /api/v2/dags/bench_runs/dagRuns` "
                f"in {AR['create_s']:.0f} s, one request at a time, {AR['retried']} retried after a 500 'database is locked'; "
                f"the DAG is paused so they stay queued), "
                f"`GET {AR['path']}` ({AR['bytes_per_resp'] / 1024:.1f} KiB) with a JWT from `/auth/token`, "
                f"api-server with its default 1 uvicorn worker; rounds "
                f"{', '.join(f'{x:.1f}' for x in AR['rps_reps'])} req/s.")
    if res.get("airflow_error"):
        notes.append(f"- **Airflow anchor not measured:** {res['airflow_error']}")
    t = res["timings"]
    notes.append("- Time taken: " + ", ".join(f"part {k} {v:.0f} s" for k, v in sorted(t.items())) + ".")
    return "\n".join(out + notes)


def write_results(table, res, args):
    head = [
        SECTION,
        "",
        f"Generated by `bench/bench_serve.py --write` (`make bench-serve`) on "
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.",
        f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"Linux {platform.release()}, Python {platform.python_version()}; anchor "
        f"{res.get('airflow_version') or 'none'} (LocalExecutor, SQLite, own venv bench/.venv-airflow); "
        f"nbhub binary {res.get('nbhub_binary', '?')}.",
        "nbhub and Airflow ran one after the other on the same machine, never at once. Medians where "
        "there are repetitions; the machine is shared and noisy, so compare ratios, not absolute times.",
        "",
        "",
    ]
    replace_section(SECTION, "\n".join(head) + table + "\n")
    log(f"wrote {RESULTS}")


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="nbhub serve vs Airflow benchmark")
    ap.add_argument("--nbhub", default=os.environ.get("NBHUB_BIN", str(REPO / "build" / "nbhub")))
    ap.add_argument("--parts", default="1234", help="which parts to run (default 1234)")
    ap.add_argument("--no-airflow", action="store_true", help="skip the anchor")
    ap.add_argument("--no-nbhub", action="store_true", help="run only the anchor (for debugging it)")
    ap.add_argument("--no-install", action="store_true", help="do not create bench/.venv-airflow")
    ap.add_argument("--write", action="store_true", help="write the section of bench/RESULTS.md")
    ap.add_argument("--json", help="also dump raw results to this file")
    ap.add_argument("--chains", type=int, default=2, help="parallel chains for part 1 (default 2)")
    ap.add_argument("--edges", type=int, default=200, help="dependency edges for part 1 (default 200)")
    ap.add_argument("--af-edges", type=int, default=200, help="edges for Airflow in part 1 (default 200)")
    ap.add_argument("--sleep", type=float, default=1.2, help="seconds each part-1 task sleeps")
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--fanin", type=int, default=2, help="upstreams per task in part 2 (default 2)")
    ap.add_argument("--af-layers", type=int, default=10)
    ap.add_argument("--af-width", type=int, default=50)
    ap.add_argument("--max-active", type=int, default=16, help="max_active_tasks / Airflow parallelism")
    ap.add_argument("--wide-reps", type=int, default=3)
    ap.add_argument("--idle-settle", type=float, default=5.0, help="seconds after start before reading RSS")
    ap.add_argument("--af-idle-settle", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=10000, help="runs in nbhub's database for part 4")
    ap.add_argument("--af-runs", type=int, default=10000, help="dag runs in Airflow's database for part 4")
    ap.add_argument("--rest-conc", type=int, default=4)
    ap.add_argument("--rest-seconds", type=float, default=10.0)
    ap.add_argument("--rest-reps", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--from-json", help="render (and --write) the results saved by an earlier --json run")
    args = ap.parse_args()

    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        args = argparse.Namespace(**{**vars(args), **res.get("args", {}), "write": args.write})
        table = render(res, args)
        print(table)
        if args.write:
            write_results(table, res, args)
        return 0

    parts = args.parts
    ntasks = args.layers * args.width
    fmax = flow_max_tasks()
    if ntasks > fmax:
        # FLOW_MAX_TASKS caps a flow: keep the 100-wide layers, fewer of them
        args.layers = max(1, fmax // args.width)
        log(f"FLOW_MAX_TASKS is {fmax}: part 2 uses {args.layers} x {args.width} = "
            f"{args.layers * args.width} tasks")
    if not Path(args.nbhub).exists():
        sys.exit(f"{args.nbhub} does not exist: run make first")

    import hashlib
    st = os.stat(args.nbhub)
    res = {"nbhub": {}, "timings": {}, "flow_max_tasks": fmax,
           "nbhub_binary": f"built {dt.datetime.fromtimestamp(st.st_mtime):%Y-%m-%d %H:%M}, sha256 "
                           f"{hashlib.sha256(Path(args.nbhub).read_bytes()).hexdigest()[:12]}",
           "args": {k: v for k, v in vars(args).items() if k not in ("write", "json", "from_json", "keep")}}
    tmp = Path(tempfile.mkdtemp(prefix="nbhub-bench-serve-"))
    log(f"work dir {tmp}")
    # a private copy: the whole run (daemon and task wrappers) uses one binary even if
    # build/nbhub is rebuilt meanwhile
    shutil.copy2(args.nbhub, tmp / "nbhub")
    args.nbhub = str(tmp / "nbhub")
    try:
        steps = [("1", "latency", nbhub_latency), ("2", "wide", nbhub_wide), ("3", "idle", nbhub_idle),
                 ("4", "rest", nbhub_rest)]
        for key, name, fn in steps:
            if key not in parts or args.no_nbhub:
                continue
            log(f"part {key} ({name}), nbhub ...")
            t0 = time.monotonic()
            res["nbhub"][name] = fn(args, tmp)
            res["timings"][f"{key} nbhub"] = time.monotonic() - t0
            r = res["nbhub"][name]
            if name == "latency":
                log(f"  nbhub latency: {r['edges']} edges p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms "
                    f"(cold starts {r['cold']}, pool min ready {r['pool_min_ready']})")
            if name == "idle":
                log(f"  nbhub idle: {json.dumps({k: v for k, v in r.items() if k != 'flows'})}")
        if not args.no_airflow:
            log("Airflow ...")
            t0 = time.monotonic()
            ok, what = airflow_install(args, tmp)
            res["timings"]["0 airflow install/check"] = time.monotonic() - t0
            if ok:
                res["airflow_version"] = f"Airflow {what}"
                try:
                    res["airflow"] = airflow_all(args, tmp, parts, res)
                except Exception as e:      # noqa: BLE001 — recorded, not hidden
                    res["airflow_error"] = f"Airflow {what} failed during the run: {e}"
                    log(res["airflow_error"])
            else:
                res["airflow_error"] = what
                log(f"Airflow unavailable: {what}")
        else:
            res["airflow_error"] = "skipped (--no-airflow)"
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    table = render(res, args)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    if args.write:
        write_results(table, res, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
