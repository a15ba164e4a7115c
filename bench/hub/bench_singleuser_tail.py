#!/usr/bin/env python3
"""Why does the jupyterhub-singleuser nbhub starts have a p99 ten times the plain
jupyter-server's?  The three servers side by side, measured directly (no proxy).

    .venv/bin/python bench/hub/bench_singleuser_tail.py --nbhub-bin build/nbhub [--reps 3] [--write]
    .venv/bin/python bench/hub/bench_singleuser_tail.py --nbhub-bin build/nbhub --gc-trace [--json F]
    .venv/bin/python bench/hub/bench_singleuser_tail.py --nbhub-bin build/nbhub --gc-trace --gc-freeze-after 25

Three servers, all from .venv, all running at once, all serving /user/alice/:
  plain        `jupyter server --ServerApp.token=T` (bench_proxy.py's anchor upstream)
  JupyterHub   the jupyterhub-singleuser JupyterHub 6 starts (bench/hub/jupyterhub_config.py,
               SimpleLocalProcessSpawner), asked with an API token of alice's
  nbhub        the jupyterhub-singleuser `nbhub serve` starts (bench/hub/nbhub.yaml, isolation
               shared), asked with an API token of alice's
Each round runs `wrk -c32 -t2 -d10s --latency` on each server's /user/alice/api/status
(`Authorization: token ...`), the order rotating from round to round; medians over rounds.
One unmeasured 3 s run per server first (the singleusers' HubAuth cache is filled then).

What is read around every run, to explain a tail rather than only show it:
  - the server's CPU time per request (/proc/PID/stat, all threads) and its threads' time
    waiting for a CPU (/proc/PID/task/*/schedstat, field 2): a scheduling tail shows as wait;
  - its hub's log: how many GET /hub/api/user (the HubAuth token check) and activity POSTs
    the hub answered during the run, and how long it took (nbhub's access log
    duration_ms, JupyterHub's request log);
  - with --gc-trace: every collection of generation 1 and 2 in the server, with its pause
    (bench/hub/gctrace/sitecustomize.py on PYTHONPATH; CLOCK_MONOTONIC, so each pause is
    placed inside a run or not);
  - once: what the process was given (nice, scheduling policy, CPU affinity, cgroup and
    its cpu.max / cpu.weight, oom_score_adj, I/O priority, rlimits, the names of its
    environment variables) for the three, side by side.
Experiments (each needs --gc-trace; the rounds wait until every server has done it):
  --gc-garbage            before the rounds, a census by type of what 3 s of requests leave
                          to the cyclic collector in each server (gc.DEBUG_SAVEALL);
  --break-cycle-after S   S s after start, break the reference cycle jupyterhub-singleuser
                          leaves per request (JupyterHubIdentityProvider._patch_get_login_url);
  --gc-freeze-after S     S s after start, gc.freeze(): full collections walk only what came after;
  --jupyterhub-env K=V    a variable for JupyterHub's singleuser (e.g. JUPYTERHUB_SINGLEUSER_EXTENSION=0).
What they showed on 2026-12-06 is in bench/RESULTS.md ("why the singleuser's direct p99 ...").

wrk and the servers share the machine's 2 cores (and the other agents' load).
"""

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hublib as H  # noqa: E402

SECTION = "## Hub (issue 17): the singleuser's p99, nbhub's vs JupyterHub's vs plain (bench/hub/bench_singleuser_tail.py)"
USER = "alice"
NAMES = ("plain", "jupyterhub", "nbhub")
LABELS = {"plain": "plain jupyter-server", "jupyterhub": "JupyterHub 6's singleuser", "nbhub": "nbhub's singleuser"}
GCTRACE = H.HERE / "gctrace"


class Target:
    """One server to measure: where it listens, who it is, where its hub logs."""

    def __init__(self, name, pid, port, base, token, hub_log=None, hub_log_kind=None):
        self.name, self.pid, self.port, self.base, self.token = name, pid, port, base, token
        self.hub_log, self.hub_log_kind = hub_log, hub_log_kind


# --------------------------------------------------------------------------- /proc readings

def cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    st = Path(f"/proc/{pid}/stat").read_text()
    f = st[st.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])


def sched_wait_ns(pid):
    """Summed over the process's threads: (ns on a CPU, ns runnable but waiting for one)."""
    run = wait = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            a = Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()
        except OSError:
            continue
        run += int(a[0])
        wait += int(a[1])
    return run, wait


def read(path, default="—"):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def given(pid):
    """What the process was given to run with, as name -> value (strings)."""
    st = read(f"/proc/{pid}/stat", "")
    f = st[st.rindex(")") + 2:].split() if st else []
    out = {}
    out["nice"] = f[16] if f else "—"
    out["policy"] = {"0": "SCHED_OTHER", "1": "SCHED_FIFO", "2": "SCHED_RR", "3": "SCHED_BATCH",
                     "5": "SCHED_IDLE"}.get(f[38], f[38]) if f else "—"
    status = read(f"/proc/{pid}/status", "")
    m = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
    out["cpus allowed"] = m.group(1) if m else "—"
    m = re.search(r"^Threads:\s*(\d+)", status, re.M)
    out["threads"] = m.group(1) if m else "—"
    cg = read(f"/proc/{pid}/cgroup", "")
    path = cg.split("::", 1)[1] if "::" in cg else cg
    out["cgroup"] = path or "—"
    base = Path("/sys/fs/cgroup") / path.lstrip("/")
    out["cgroup cpu.max"] = read(base / "cpu.max")
    out["cgroup cpu.weight"] = read(base / "cpu.weight")
    out["cgroup memory.max"] = read(base / "memory.max")
    out["oom_score_adj"] = read(f"/proc/{pid}/oom_score_adj")
    try:
        out["ionice"] = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True,
                                       timeout=10).stdout.strip() or "—"
    except (OSError, subprocess.TimeoutExpired):
        out["ionice"] = "—"
    for line in read(f"/proc/{pid}/limits", "").splitlines()[1:]:
        m = re.match(r"(Max [\w ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            out[f"rlimit {m.group(1)}"] = f"{m.group(2)}/{m.group(3)}"
    env = H.proc_environ(pid)
    out["environment"] = sorted(env)             # names only: values hold tokens
    out["cmdline"] = " ".join(a for a in H.proc_cmdline(pid) if a)
    out["python"] = os.path.realpath(f"/proc/{pid}/exe")
    return out


# --------------------------------------------------------------------------- the hubs' logs

NBHUB_LINE = re.compile(r'path="(/hub/api/[^"]*)" status=(\d+) .*?duration_ms=([\d.]+)')
JH_LINE = re.compile(r"\s(\d{3}) (GET|POST) (/hub/api/\S*) \(.*?\) ([\d.]+)ms")


def hub_calls(t, start, end):
    """The hub API calls logged between two offsets of t's hub log: {kind: [ms, ...]}
    (kind: 'user' for GET /hub/api/user, 'activity' for the activity POSTs, 'other')."""
    if not t.hub_log:
        return None
    with open(t.hub_log, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode(errors="replace")
    out = {"user": [], "activity": [], "other": []}
    for line in text.splitlines():
        if t.hub_log_kind == "nbhub":
            m = NBHUB_LINE.search(line)
            if not m:
                continue
            path, ms = m.group(1), float(m.group(3))
        else:
            m = JH_LINE.search(line)
            if not m:
                continue
            path, ms = m.group(3), float(m.group(4))
        path = path.split("?")[0]
        kind = "user" if path == "/hub/api/user" else "activity" if path.endswith("/activity") else "other"
        out[kind].append(ms)
    return out


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def gc_events(tmp, pid, t0, t1):
    """(generation, pause ms) of the collections of generation >= 1 in pid between t0 and t1
    (monotonic), from --gc-trace's log; None without a trace."""
    p = Path(tmp) / "gctrace" / f"gc-{pid}.log"
    if not p.exists():
        return None
    out = []
    for line in p.read_text().splitlines():
        f = line.split()
        if len(f) >= 3 and t0 <= float(f[0]) <= t1:
            out.append((int(f[1]), float(f[2])))
    return out


# --------------------------------------------------------------------------- measuring

def run_once(args, tmp, t, seconds):
    url = f"http://127.0.0.1:{t.port}{t.base}api/status"
    auth = {"Authorization": f"token {t.token}"}
    off = log_size(t.hub_log) if t.hub_log else 0
    c0, (r0, w0) = cpu_ticks(t.pid), sched_wait_ns(t.pid)
    m0 = time.monotonic()
    w = H.wrk(url, auth, args.conc, args.threads, seconds, args.wrk_cpus)
    m1 = time.monotonic()
    time.sleep(0.3)                   # the hubs' log lines of the last requests
    c1, (r1, w1) = cpu_ticks(t.pid), sched_wait_ns(t.pid)
    n = max(w["requests"], 1)
    w["cpu_ms_per_req"] = (c1 - c0) * 1000.0 / H.CLK_TCK / n
    w["run_ms"] = (r1 - r0) / 1e6
    w["wait_ms"] = (w1 - w0) / 1e6
    w["wait_ms_per_req"] = w["wait_ms"] / n
    w["hub"] = hub_calls(t, off, log_size(t.hub_log)) if t.hub_log else None
    w["gc"] = gc_events(tmp, t.pid, m0, m1) if args.gc_trace else None
    return w


def garbage(args, tmp, targets, names):
    """--gc-garbage: what a 3 s wrk run leaves for the cyclic collector in each server,
    by type (gc.DEBUG_SAVEALL over the run, see gctrace/sitecustomize.py)."""
    d = Path(tmp) / "gctrace"
    (d / "garbage-start").touch()
    time.sleep(1.5)
    reqs = {}
    for n in names:
        reqs[n] = run_once(args, tmp, targets[n], 3)["requests"]
    (d / "garbage-stop").touch()
    out = {}
    for n in names:
        p = d / f"garbage-{targets[n].pid}.json"
        H.wait_until(lambda: p.exists(), 60, 0.2, f"{n}'s garbage census")
        g = json.loads(p.read_text())
        g["requests"] = reqs[n]
        out[n] = g
        H.log(f"  {n}: {g['objects']} unreachable objects after {reqs[n]} requests "
              f"({g['objects'] / max(reqs[n], 1):.1f} per request); top: "
              + ", ".join(f"{k} {v}" for k, v in g["types"][:12]))
    return out


def summary(runs):
    def mm(k):
        return H.med([r[k] for r in runs])
    s = {k: mm(k) for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "avg_ms", "cpu_ms_per_req",
                            "wait_ms_per_req")}
    s["p99_rounds"] = [r["p99_ms"] for r in runs]
    s["max_rounds"] = [r["max_ms"] for r in runs]
    s["rps_rounds"] = [r["rps"] for r in runs]
    s["non2xx"] = sum(r["non2xx"] for r in runs)
    s["requests"] = [r["requests"] for r in runs]
    if runs[0]["hub"] is not None:
        s["hub_user_calls"] = H.med([len(r["hub"]["user"]) for r in runs])
        s["hub_user_calls_rounds"] = [len(r["hub"]["user"]) for r in runs]
        allu = [x for r in runs for x in r["hub"]["user"]]
        s["hub_user_ms_p50"] = H.pct(allu, 50) if allu else None
        s["hub_user_ms_max"] = max(allu) if allu else None
        s["hub_activity_calls"] = sum(len(r["hub"]["activity"]) for r in runs)
        s["hub_other_calls"] = sum(len(r["hub"]["other"]) for r in runs)
    if runs[0]["gc"] is not None:
        g2 = [[ms for g, ms in r["gc"] if g == 2] for r in runs]
        g1 = [[ms for g, ms in r["gc"] if g == 1] for r in runs]
        s["gc2_per_run"] = H.med([len(x) for x in g2])
        s["gc2_rounds"] = [len(x) for x in g2]
        allg2 = [x for xs in g2 for x in xs]
        s["gc2_ms_p50"] = H.pct(allg2, 50) if allg2 else None
        s["gc2_ms_max"] = max(allg2) if allg2 else None
        s["gc2_ms_per_run"] = H.med([sum(x) for x in g2])
        s["gc1_per_run"] = H.med([len(x) for x in g1])
        allg1 = [x for xs in g1 for x in xs]
        s["gc1_ms_p50"] = H.pct(allg1, 50) if allg1 else None
    return s


def start_all(args, tmp, extra_env, stops):
    """The three servers, each ready: {name: Target}; what is to be stopped after, in
    reverse order, is appended to stops as it is started."""
    targets = {}
    base = f"/user/{USER}/"
    if "plain" in args.only:
        token = secrets.token_hex(24)
        srv, port, _ = H.start_jupyter_server(tmp, base, token, name="plain", extra_env=extra_env)
        stops.append(srv.stop)
        targets["plain"] = Target("plain", srv.pid, port, base, token)
    if "jupyterhub" in args.only:
        su_env = dict(extra_env)
        for kv in args.jupyterhub_env or []:
            k, _, v = kv.partition("=")
            su_env[k] = v
        jh = H.JupyterHubAnchor(tmp, singleuser_env=su_env)
        stops.append(jh.stop)
        jh.create_user(USER)
        tok = jh.user_token(USER)
        jh.start_server(USER)
        H.wait_until(lambda: jh.ready(USER, tok), 180, 0.05, f"{USER}'s server through JupyterHub")
        pid = H.wait_until(lambda: jh.server_pid(USER), 30, 0.1, "JupyterHub's singleuser")
        targets["jupyterhub"] = Target("jupyterhub", pid, H.listening_ports(pid)[0], jh.user_path(USER), tok,
                                       jh.dir / "jupyterhub.log", "jupyterhub")
        targets["jupyterhub"].version = f"JupyterHub {jh.version()}"
    if "nbhub" in args.only:
        if args.nbhub_bin:
            hub = H.NbhubHub.launch(tmp, Path(args.nbhub_bin).resolve(), extra_env=extra_env)
            log = Path(tmp) / "nbhub-serve.log"
        else:
            hub = H.open_nbhub(args, tmp)
            log = None
        stops.append(hub.stop)
        hub.create_user(USER)
        tok = hub.user_token(USER)
        hub.start_server(USER)
        stops.append(lambda: hub.stop_server(USER, wait=True))      # stopped before the hub (reversed)
        H.wait_until(lambda: hub.ready(USER, tok), 180, 0.05, f"{USER}'s server through nbhub")
        pid = H.wait_until(lambda: hub.server_pid(USER), 30, 0.1, "nbhub's singleuser")
        targets["nbhub"] = Target("nbhub", pid, H.listening_ports(pid)[0], hub.user_path(USER), tok, log, "nbhub")
        targets["nbhub"].version = f"nbhub serve ({hub.version()})"
    return targets


def measure(args, tmp):
    extra_env = {}
    if args.gc_trace:
        (Path(tmp) / "gctrace").mkdir(exist_ok=True)
        extra_env = {"PYTHONPATH": str(GCTRACE), "BENCH_GCTRACE_DIR": str(Path(tmp) / "gctrace")}
        if args.gc_freeze_after:
            extra_env["BENCH_GC_FREEZE_AFTER"] = str(args.gc_freeze_after)
        if args.gc_garbage:
            extra_env["BENCH_GC_GARBAGE"] = "1"
        if args.break_cycle_after:
            extra_env["BENCH_BREAK_LOGIN_URL_CYCLE"] = str(args.break_cycle_after)
    stops = []
    try:
        targets = start_all(args, tmp, extra_env, stops)
        res = {"given": {k: given(t.pid) for k, t in targets.items()},
               "versions": {k: getattr(t, "version", "") for k, t in targets.items()}}
        names = [n for n in NAMES if n in targets]
        for n in names:
            w = run_once(args, tmp, targets[n], 3)
            H.log(f"  warm-up {n}: {w['rps']:.0f} req/s p99 {w['p99_ms']:.2f} ms")
        if args.gc_freeze_after:
            def frozen():
                return all((Path(tmp) / "gctrace" / f"freeze-{targets[n].pid}.log").exists() for n in names)
            H.wait_until(frozen, args.gc_freeze_after + 120, 0.5, "gc.freeze() in every server")
        if args.break_cycle_after:
            sus = [n for n in names if n != "plain"]

            def patched():
                return all((Path(tmp) / "gctrace" / f"break-{targets[n].pid}.log").exists() for n in sus)
            H.wait_until(patched, args.break_cycle_after + 120, 0.5, "the cycle broken in every singleuser")
        if args.gc_garbage:
            res["garbage"] = garbage(args, tmp, targets, names)
        runs = {n: [] for n in names}
        for r in range(args.reps):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                w = run_once(args, tmp, targets[n], args.seconds)
                hub = w["hub"]
                gc2 = [ms for g, ms in (w["gc"] or []) if g == 2]
                H.log(f"  {n} round {r + 1}: {w['rps']:.0f} req/s p50 {w['p50_ms']:.2f} p90 {w['p90_ms']:.2f} "
                      f"p99 {w['p99_ms']:.2f} max {w['max_ms']:.1f} ms; cpu {w['cpu_ms_per_req']:.3f} ms/req, "
                      f"runqueue wait {w['wait_ms']:.0f} ms; "
                      + (f"hub: {len(hub['user'])} GET /hub/api/user, {len(hub['activity'])} activity; " if hub else "")
                      + (f"gen2 GCs {len(gc2)} ({', '.join(f'{x:.0f}' for x in gc2)} ms)" if w["gc"] is not None else "")
                      + (f" non-2xx {w['non2xx']}" if w["non2xx"] else ""))
                if w["raw"]:
                    H.log(w["raw"])
                runs[n].append(w)
        res["runs"] = runs
        res["summary"] = {n: summary(v) for n, v in runs.items()}
        return res
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception as e:  # noqa: BLE001
                H.log(f"stopping: {e}")


# --------------------------------------------------------------------------- report

def render(res, args):
    S = res["summary"]
    names = [n for n in NAMES if n in S]

    def f(x, spec):
        return "—" if x is None or x != x else format(x, spec)

    def ratio(a, b):
        return None if a is None or b is None or not b or a != a or b != b else a / b
    rows = [("small GET req/s", "rps", ".0f"), ("p50 (ms)", "p50_ms", ".2f"), ("p90 (ms)", "p90_ms", ".2f"),
            ("**p99 (ms)**", "p99_ms", ".2f"), ("max (ms)", "max_ms", ".1f"),
            ("server CPU per request (ms, all threads)", "cpu_ms_per_req", ".3f"),
            ("server's threads waiting for a CPU, per request (ms)", "wait_ms_per_req", ".3f"),
            ("GET /hub/api/user answered by its hub per run", "hub_user_calls", ".0f"),
            ("activity POSTs to its hub (all runs)", "hub_activity_calls", ".0f"),
            ("full (gen 2) collections per run", "gc2_per_run", ".0f"),
            ("full collection pause p50 (ms)", "gc2_ms_p50", ".1f"),
            ("full collection pause max (ms)", "gc2_ms_max", ".1f"),
            ("time in full collections per run (ms)", "gc2_ms_per_run", ".0f"),
            ("gen 1 collections per run", "gc1_per_run", ".0f")]
    head = "| measure (median of rounds) | " + " | ".join(LABELS[n] for n in names)
    if "nbhub" in S and "jupyterhub" in S:
        head += " | nbhub's / JupyterHub's"
    out = [head + " |", "|---|" + "---:|" * (len(names) + ("nbhub" in S and "jupyterhub" in S))]
    for label, k, spec in rows:
        vals = [S[n].get(k) for n in names]
        if all(v is None for v in vals):
            continue
        line = f"| {label} | " + " | ".join(f(v, spec) for v in vals)
        if "nbhub" in S and "jupyterhub" in S:
            line += f" | {f(ratio(S['nbhub'].get(k), S['jupyterhub'].get(k)), '.2f')}"
        out.append(line + " |")
    out.append("")
    for n in names:
        s = S[n]
        extra = ""
        if s.get("hub_user_calls_rounds") is not None:
            extra += (f"; GET /hub/api/user per run {', '.join(str(x) for x in s['hub_user_calls_rounds'])}"
                      + (f" (the hub answered in {f(s['hub_user_ms_p50'], '.1f')} ms p50, "
                         f"{f(s['hub_user_ms_max'], '.1f')} ms max)" if s.get("hub_user_ms_p50") is not None else ""))
        if s.get("gc2_rounds") is not None:
            extra += f"; full collections per run {', '.join(str(x) for x in s['gc2_rounds'])}"
        out.append(f"- {LABELS[n]}: p99 per round {', '.join(f'{x:.2f}' for x in s['p99_rounds'])} ms, max "
                   f"{', '.join(f'{x:.0f}' for x in s['max_rounds'])} ms, req/s "
                   f"{', '.join(f'{x:.0f}' for x in s['rps_rounds'])}, non-2xx {s['non2xx']}{extra}.")
    G = res.get("given", {})
    if G:
        keys = [k for k in G[names[0]] if k not in ("environment", "cmdline", "python")]
        same = [k for k in keys if len({str(G[n].get(k)) for n in names}) == 1]
        diff = [k for k in keys if k not in same]
        out.append("")
        out.append("What each process was given (/proc, read once): the same for the three: "
                   + ", ".join(f"{k} {G[names[0]][k]}" for k in same if not k.startswith("rlimit")) + "; rlimits "
                   + ("identical" if all(k in same for k in keys if k.startswith("rlimit")) else "differ (below)") + ".")
        for k in diff:
            out.append(f"- differs: {k}: " + "; ".join(f"{LABELS[n]} {G[n].get(k)}" for n in names))
        # The two singleusers' environments (names only); the plain server's is the
        # script's own, JupyterHub's is the Spawner's short list, nbhub's is its own
        # environment (isolation: shared) plus the same JUPYTERHUB_* set.
        if "jupyterhub" in G and "nbhub" in G:
            a, b = set(G["jupyterhub"]["environment"]), set(G["nbhub"]["environment"])
            jh = sorted(k for k in a if k.startswith("JUPYTERHUB_") or k.startswith("JPY_"))
            nb = sorted(k for k in b if k.startswith("JUPYTERHUB_") or k.startswith("JPY_"))
            out.append(f"- the singleusers' JUPYTERHUB_*/JPY_* variables: only JupyterHub's has "
                       f"{', '.join(sorted(set(jh) - set(nb))) or 'none'}; only nbhub's has "
                       f"{', '.join(sorted(set(nb) - set(jh))) or 'none'}; others only in nbhub's: "
                       f"{len(b - a)} (the environment nbhub serve was started with), only in JupyterHub's: "
                       f"{', '.join(sorted(a - b)) or 'none'}")
    return "\n".join(out) + "\n"


def write(table, res, args):
    v = res.get("versions", {})
    mode = ""
    if args.gc_trace:
        mode = " With --gc-trace (each server's collections timed by bench/hub/gctrace/sitecustomize.py)"
        if args.gc_freeze_after:
            mode += f", gc.freeze() {args.gc_freeze_after:g} s after each server's start"
        if args.break_cycle_after:
            mode += (f", the singleusers' per-request reference cycle broken {args.break_cycle_after:g} s after "
                     f"their start (--break-cycle-after)")
        mode += "."
    head = [SECTION, "",
            f"Generated by `bench/hub/bench_singleuser_tail.py --write` on "
            f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {args.reps} rounds, the three servers in "
            f"every round (order rotating). {res['machine']}",
            f"Servers: a plain `jupyter server --ServerApp.token=T` (jupyter-server {res.get('jupyter_server', '?')}), "
            f"the jupyterhub-singleuser {v.get('jupyterhub', 'JupyterHub')} starts (bench/hub/jupyterhub_config.py), "
            f"the one {v.get('nbhub', 'nbhub')} starts; all from .venv, each asked directly (no proxy) on "
            f"/user/alice/api/status with wrk -c{args.conc} -t{args.threads} -d{args.seconds}s --latency"
            f"{' pinned to CPU ' + args.wrk_cpus if args.wrk_cpus else ', nothing pinned'}.{mode}", "", ""]
    H.replace_section(SECTION, "\n".join(head) + table)
    H.log(f"wrote {H.RESULTS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_nbhub_args(ap)
    ap.add_argument("--reps", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--wrk-cpus", help="taskset CPU list for wrk (default: not pinned)")
    ap.add_argument("--only", default=",".join(NAMES), help="a subset of plain,jupyterhub,nbhub")
    ap.add_argument("--gc-trace", action="store_true", help="time every gen 1/2 collection in the servers")
    ap.add_argument("--gc-freeze-after", type=float, help="with --gc-trace: gc.freeze() this many seconds after "
                    "each server's start")
    ap.add_argument("--break-cycle-after", type=float, help="with --gc-trace: this many seconds after each "
                    "singleuser's start, break the reference cycle jupyterhub-singleuser leaves per request "
                    "(JupyterHubIdentityProvider._patch_get_login_url; see gctrace/sitecustomize.py)")
    ap.add_argument("--jupyterhub-env", action="append", metavar="K=V", help="a variable for JupyterHub's "
                    "singleuser's environment (Spawner.environment), e.g. JUPYTERHUB_SINGLEUSER_EXTENSION=0")
    ap.add_argument("--gc-garbage", action="store_true", help="with --gc-trace: before the rounds, count what "
                    "3 s of requests leave to the cyclic collector in each server, by type")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, GC traces) and say where")
    ap.add_argument("--json", help="also dump the raw results to this file")
    ap.add_argument("--from-json", help="render (and --write) the results of an earlier --json")
    ap.add_argument("--write", action="store_true", help="write this section of bench/RESULTS.md")
    args = ap.parse_args()
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    if (args.gc_freeze_after or args.gc_garbage or args.break_cycle_after) and not args.gc_trace:
        ap.error("--gc-freeze-after, --gc-garbage and --break-cycle-after need --gc-trace")
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        args = argparse.Namespace(**{**vars(args), **res["args"], "write": args.write})
    else:
        want_nbhub = H.check_nbhub_args(ap, args)
        if not want_nbhub and "nbhub" in args.only:
            args.only.remove("nbhub")
        import jupyter_server
        res = {"args": {k: v for k, v in vars(args).items() if k not in ("write", "json", "from_json", "nbhub_token")},
               "jupyter_server": jupyter_server.__version__, "load_before": os.getloadavg()}
        tmp = Path(tempfile.mkdtemp(prefix="nbhub-bench-su-tail-"))
        try:
            t0 = time.monotonic()
            res.update(measure(args, tmp))
            res["seconds"] = time.monotonic() - t0
        finally:
            if args.keep_tmp:
                H.log(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        res["machine"] = H.machine_line(res.get("load_before"))
    return H.report(res, args, render, write)


if __name__ == "__main__":
    sys.exit(main())
