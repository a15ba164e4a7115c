#!/usr/bin/env python3
"""Start to ready of a user's server: nbhub against JupyterHub 6 (issue 17, benchmark 2).

    .venv/bin/python bench/hub/bench_start.py [-n 5] [--write]
    .venv/bin/python bench/hub/bench_start.py --nbhub http://127.0.0.1:8888 --nbhub-token TOKEN --write

Both hubs start the same jupyterhub-singleuser (.venv, JupyterLab 4 loaded) for a user
through JupyterHub's REST API: the time from POST /hub/api/users/NAME/server to the
server answering GET /user/NAME/api through the hub's proxy (polled every 10 ms with the
user's token once the POST has returned; JupyterHub returns 201 only once the server is
up and routed, so it is never polled before).  One unmeasured start first (page cache);
then N starts, each for a new user, each stopped before the next, alternating between
the two hubs (both running all along); medians.

Where JupyterHub's time goes, from its own log (millisecond timestamps of the hub, of
the singleuser whose output it inherits, and of CHP): POST -> "Spawning" (the hub's
bookkeeping: OAuth client, API token), -> the singleuser's first log line (interpreter
start and imports), -> "Jupyter Server ... is running at" (the server's initialisation,
extensions), -> "User NAME took ... to start" (the hub noticing: it polls the server with
exponential back-off from 0.2 s, factor 2), -> CHP "Route added", -> ready through the
proxy (as seen by this script).

The singleuser alone: the environment and command line of a running singleuser (taken
from /proc) are run again by hand with a new port, timed from exec to its /api
answering directly; and the interpreter with the imports alone.  The nbhub half gets the
total and the same "alone" figures (its own phases are in its start progress events).
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hublib as H  # noqa: E402

SECTION = "## Hub (issue 17): start to ready of a server, nbhub vs JupyterHub (bench/hub/bench_start.py)"


def one_start(hub, name, options, poll=0.01):
    hub.create_user(name)
    token = hub.user_token(name)
    t_wall = time.time()
    t0 = time.perf_counter()
    st = hub.start_server(name, options)
    t_post = time.perf_counter() - t0
    H.wait_until(lambda: hub.ready(name, token), 180, poll, f"{name}'s server through the proxy")
    total = time.perf_counter() - t0
    return {"user": name, "status": st, "post_s": t_post, "total_s": total, "t0_wall": t_wall,
            "ready_wall": t_wall + total}


def alone(hub, name, tmp, reps):
    """The singleuser the hub started for `name`, run again by hand: exec -> /api answers."""
    pid = H.wait_until(lambda: hub.server_pid(name), 30, 0.1, f"{name}'s server process")
    env = H.proc_environ(pid)
    argv = H.proc_cmdline(pid)
    argv = [a for a in argv if a != ""]
    cwd = str(Path(f"/proc/{pid}/cwd").resolve())
    svc = env.get("JUPYTERHUB_SERVICE_URL", "")
    base = env.get("JUPYTERHUB_SERVICE_PREFIX", f"/user/{name}/")
    hub.stop_server(name)
    out = []
    for i in range(reps):
        port = H.free_port()
        e = dict(env)
        if svc:
            e["JUPYTERHUB_SERVICE_URL"] = re.sub(r":\d+/", f":{port}/", svc, count=1)
        a = list(argv)
        if not svc:                          # a hub that passes --port instead
            a = [re.sub(r"^--port=\d+$", f"--port={port}", x) for x in a]
        t0 = time.perf_counter()
        p = H.Proc(a, Path(tmp) / f"alone-{name}-{i}.log", env=e, cwd=cwd)
        try:
            H.wait_until(lambda: H.http_get(port, base + "api")[0] == 200 or (not p.alive() and H._died(p)),
                         120, 0.01, "the singleuser run by hand")
            out.append(time.perf_counter() - t0)
        finally:
            p.stop()
    interp = H.VENV_BIN / "python"
    imports = []
    bare = []
    for i in range(reps):
        t0 = time.perf_counter()
        H.subprocess.run([str(interp), "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        H.subprocess.run([str(interp), "-c", "import jupyterhub.singleuser, jupyter_server.serverapp, jupyterlab.labapp"],
                         check=True, env=H.venv_env())
        imports.append(time.perf_counter() - t0)
    return {"exec_to_api_s": out, "python_bare_s": bare, "imports_s": imports, "argv": argv}


TS = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")
TS_CHP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def hub_log_events(text):
    """(epoch seconds, line) of every timestamped line of JupyterHub's log (its own lines
    and the singleusers', local time; CHP's, UTC)."""
    ev = []
    for line in text.splitlines():
        m = TS.match(line)
        if m:
            ev.append((dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(), line))
            continue
        m = TS_CHP.match(line)
        if m:
            t = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
            ev.append((t.timestamp(), line))
    return ev


def breakdown(events, s):
    """JupyterHub's phases of one start (seconds), from its log."""
    name = s["user"]
    ev = [(t, l) for t, l in events if s["t0_wall"] - 0.01 <= t <= s["ready_wall"] + 0.5]

    def first(pat, after):
        for t, l in ev:
            if t >= after and re.search(pat, l):
                return t
        return None
    t0 = s["t0_wall"]
    spawn = first(r"Spawning .*singleuser", t0)
    su_first = spawn and first(r"\s(ServerApp|JupyterHubSingleUser|LabApp)\]", spawn)
    running = spawn and first(r"Jupyter Server .* is running at", spawn)
    noticed = first(rf"User {name} took [\d.]+ seconds to start", t0)
    routed = first(rf"Route added /user/{name} ", t0)
    pts = [("POST → hub spawns the process", t0, spawn),
           ("→ singleuser's first log line (interpreter, imports)", spawn, su_first),
           ("→ singleuser listening (server and extensions start)", su_first, running),
           ("→ hub notices it is up (polling with back-off)", running, noticed),
           ("→ CHP route added", noticed, routed),
           ("→ answers through the proxy", routed, s["ready_wall"])]
    return {k: (b - a if a and b else None) for k, a, b in pts}


def run(hubs, args, tmp):
    """hubs: {"anchor"|"nbhub": (hub, user prefix, user options)}.  Warm-up and the
    singleuser alone for each, then the measured starts alternating between the hubs
    (both are up all along; an idle hub costs next to nothing), so that the other agents'
    load, which drifts over minutes, falls on both alike."""
    out = {}
    for key, (hub, prefix, opts) in hubs.items():
        H.log(f"  {key}: warm-up start ({prefix}warm)")
        w = one_start(hub, f"{prefix}warm", opts)
        H.log(f"    {w['total_s']:.2f} s")
        al = alone(hub, f"{prefix}warm", tmp, args.n)
        H.log(f"  {key}: singleuser alone exec -> /api: {', '.join(f'{x:.2f}' for x in al['exec_to_api_s'])} s; "
              f"imports {H.med(al['imports_s']):.2f} s, bare python {H.med(al['python_bare_s']):.3f} s")
        out[key] = {"starts": [], "alone": al, "warm": w}
    keys = list(hubs)
    for i in range(args.n):
        for key in (keys if i % 2 == 0 else keys[::-1]):
            hub, prefix, opts = hubs[key]
            s = one_start(hub, f"{prefix}{i}", opts)
            H.log(f"  {key} start {i + 1}: {s['total_s']:.3f} s (POST answered {s['status']} after "
                  f"{s['post_s']:.3f} s)")
            out[key]["starts"].append(s)
            hub.stop_server(s["user"])
    return out


def render(res, args):
    A, N = res.get("anchor"), res.get("nbhub")

    def f(x, spec=".2f"):
        return "—" if x is None or x != x else format(x, spec)

    def tot(S):
        return H.med([s["total_s"] for s in S["starts"]]) if S else None
    out = ["| measure (median) | JupyterHub 6 + CHP | nbhub | nbhub / JupyterHub | target |", "|---|---:|---:|---:|---|"]
    a, n = tot(A), tot(N)
    out.append(f"| POST /hub/api/users/NAME/server → /user/NAME/api answers through the proxy (s) | {f(a)} "
               f"| {f(n)} | {f(n / a if a and n else None)} | ≤ 0.8× |")
    for label, key in (("POST answered after (s)", "post_s"),):
        out.append(f"| {label} | {f(A and H.med([s[key] for s in A['starts']]))} "
                   f"| {f(N and H.med([s[key] for s in N['starts']]))} | | |")
    for label, key in (("singleuser alone: exec → its /api answers (s)", "exec_to_api_s"),
                       ("`python -c 'import jupyterhub.singleuser, jupyter_server.serverapp, jupyterlab.labapp'` (s)",
                        "imports_s"), ("`python -c pass` (s)", "python_bare_s")):
        out.append(f"| {label} | {f(A and H.med(A['alone'][key]), '.3f')} | {f(N and H.med(N['alone'][key]), '.3f')} | | |")
    if A:
        out.append("")
        out.append("JupyterHub's start, phase by phase (medians over the starts, from its log):")
        out.append("")
        out.append("| phase | median (s) | each start (s) |")
        out.append("|---|---:|---|")
        keys = list(A["starts"][0]["phases"])
        for k in keys:
            xs = [s["phases"][k] for s in A["starts"]]
            good = [x for x in xs if x is not None]
            out.append(f"| {k} | {f(H.med(good), '.3f')} | {', '.join(f(x, '.3f') for x in xs)} |")
    out.append("")
    notes = []
    for name, S in (("JupyterHub", A), ("nbhub", N)):
        if S:
            notes.append(f"- {name}: each start {', '.join(f(s['total_s'], '.3f') for s in S['starts'])} s "
                         f"(POST status {', '.join(str(s['status']) for s in S['starts'])}); unmeasured first "
                         f"start {S['warm']['total_s']:.2f} s; the singleuser alone "
                         f"{', '.join(f(x, '.2f') for x in S['alone']['exec_to_api_s'])} s.")
    if not N:
        notes.append("- nbhub: not measured in this run (`--nbhub URL --nbhub-token T` against an `nbhub serve` "
                     "with a `hub:` config).")
    return "\n".join(out + notes)


def write(table, res, args):
    head = [SECTION, "",
            f"Generated by `bench/hub/bench_start.py --write` on {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
            f"{args.n} starts per hub after one unmeasured. {res['machine']}",
            f"Anchor: {res.get('anchor', {}).get('version', '?')} with bench/hub/jupyterhub_config.py "
            f"(LocalProcessSpawner without the setuid, as root: SimpleLocalProcessSpawner; CHP started by the hub; "
            f"SQLite); nbhub: {res.get('nbhub', {}).get('version', 'not run')}. Both start the same "
            f"`.venv/bin/jupyterhub-singleuser` (JupyterLab 4 extension loaded).", "", ""]
    H.replace_section(SECTION, "\n".join(head) + table + "\n")
    H.log(f"wrote {H.RESULTS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_nbhub_args(ap)
    ap.add_argument("--nbhub-profile", help="the profile to start (default: nbhub's default profile)")
    ap.add_argument("-n", type=int, default=5, help="measured starts per hub (default 5)")
    ap.add_argument("--json")
    ap.add_argument("--from-json")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        args = argparse.Namespace(**{**vars(args), **res["args"], "write": args.write})
    else:
        want_nbhub = H.check_nbhub_args(ap, args)
        res = {"args": {k: v for k, v in vars(args).items() if k not in ("write", "json", "from_json", "nbhub_token")}}
        res["load_before"] = os.getloadavg()
        tmp = Path(tempfile.mkdtemp(prefix="nbhub-bench-hub-start-"))
        hubs = {}
        try:
            if not args.no_anchor:
                H.log("anchor: JupyterHub + CHP ...")
                hubs["anchor"] = (H.JupyterHubAnchor(tmp), "jh", None)
            if want_nbhub:
                H.log("nbhub ...")
                hubs["nbhub"] = (H.open_nbhub(args, tmp), "nb",
                                 {"profile": args.nbhub_profile} if args.nbhub_profile else None)
            res.update(run(hubs, args, tmp))
            if "anchor" in hubs:
                hub = hubs["anchor"][0]
                events = hub_log_events(hub.log_text())
                for s in res["anchor"]["starts"]:
                    s["phases"] = breakdown(events, s)
                res["anchor"]["version"] = f"JupyterHub {hub.version()}"
            if "nbhub" in hubs:
                res["nbhub"]["version"] = f"nbhub serve ({hubs['nbhub'][0].version()})"
        finally:
            for hub, _, _ in hubs.values():
                hub.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        res["machine"] = H.machine_line(res.get("load_before"))
    return H.report(res, args, render, write)


if __name__ == "__main__":
    sys.exit(main())
