#!/usr/bin/env python3
"""The hub's memory with 20 running servers: nbhub against JupyterHub 6 + CHP (issue 17,
benchmark 3).

    .venv/bin/python bench/hub/bench_memory.py [--servers 20] [--reps 2] [--write]
    .venv/bin/python bench/hub/bench_memory.py --nbhub http://127.0.0.1:8888 --nbhub-token TOKEN --write

Each round: a fresh hub (the anchor; nbhub's is the running one, so its rounds are not
fresh), its own processes' memory with no server, then SERVERS users each get a server
(all POSTs at once, from as many threads), every one answering /user/NAME/api through the
proxy, SETTLE seconds, then the memory again, then all stopped.

"The hub's processes" are the hub's process and its descendants less the notebook servers
and what they started (every server has JUPYTERHUB_API_TOKEN in its environment and its
kernels inherit it): JupyterHub + CHP (node), or nbhub serve and any helper of its own.
VmRSS summed (what the issue's target is stated in), Pss summed, and VmHWM.  Each
jupyterhub-singleuser's RSS is given for reference (not part of either hub's figure).
"""

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hublib as H  # noqa: E402

SECTION = "## Hub (issue 17): memory with 20 running servers, nbhub vs JupyterHub + CHP (bench/hub/bench_memory.py)"


def per_process(pids):
    out = []
    for p in pids:
        m = H.proc_mem(p)
        if m:
            cmd = " ".join(H.proc_cmdline(p))[:80]
            out.append({"pid": p, "cmd": cmd, **m})
    return out


def one_round(hub, args, prefix, options):
    time.sleep(args.settle)
    idle = per_process(hub.hub_pids())
    names = [f"{prefix}{i:02d}" for i in range(args.servers)]
    tokens = {}
    for n in names:
        hub.create_user(n)
        tokens[n] = hub.user_token(n)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(len(names)) as ex:
        list(ex.map(lambda n: hub.start_server(n, options), names))
    for n in names:
        H.wait_until(lambda: hub.ready(n, tokens[n]), 300, 0.1, f"{n}'s server")
    all_ready = time.perf_counter() - t0
    H.log(f"  {len(names)} servers ready {all_ready:.1f} s after the first POST")
    time.sleep(args.settle)
    # touch every server once through the proxy, as a user opening it would (CHP and nbhub
    # both keep per-route and per-connection state)
    for n in names:
        hub.ready(n, tokens[n])
    busy = per_process(hub.hub_pids())
    servers = []
    for n in names:
        pid = hub.server_pid(n)
        m = H.proc_mem(pid) if pid else None
        if m:
            servers.append(m)
    t1 = time.perf_counter()
    with cf.ThreadPoolExecutor(len(names)) as ex:
        list(ex.map(lambda n: hub.stop_server(n), names))
    H.log(f"  stopped in {time.perf_counter() - t1:.1f} s")
    return {"idle": idle, "busy": busy, "servers": servers, "all_ready_s": all_ready}


def tot(procs, k="VmRSS"):
    return sum(p.get(k, 0) for p in procs) / 1024


def anchor(args, tmp):
    rounds = []
    ver = None
    for r in range(args.reps):
        hub = H.JupyterHubAnchor(Path(tmp) / f"r{r}")
        try:
            ver = hub.version()
            rounds.append(one_round(hub, args, f"m{r}u", None))
        finally:
            hub.stop()
        b = rounds[-1]["busy"]
        each = ", ".join("%s %.1f" % (Path(x["cmd"].split()[0]).name, x["VmRSS"] / 1024) for x in b)
        H.log(f"  round {r + 1}: hub processes idle {tot(rounds[-1]['idle']):.1f} MB, with {args.servers} servers "
              f"{tot(b):.1f} MB RSS ({each})")
    return {"rounds": rounds, "version": f"JupyterHub {ver}"}


def nbhub(args, tmp):
    """A fresh nbhub serve each round with --nbhub-bin (as the anchor); with --nbhub the
    running one for every round."""
    opts = {"profile": args.nbhub_profile} if args.nbhub_profile else None
    rounds = []
    ver = None
    for r in range(args.reps):
        hub = H.open_nbhub(args, Path(tmp) / f"nb{r}") if args.nbhub_bin else H.open_nbhub(args, tmp)
        try:
            ver = hub.version()
            rounds.append(one_round(hub, args, f"m{r}u", opts))
        finally:
            hub.stop()
        H.log(f"  round {r + 1}: nbhub processes idle {tot(rounds[-1]['idle']):.1f} MB, with {args.servers} "
              f"servers {tot(rounds[-1]['busy']):.1f} MB RSS")
    return {"rounds": rounds, "version": f"nbhub serve ({ver})"}


def render(res, args):
    A, N = res.get("anchor"), res.get("nbhub")

    def f(x, spec=".1f"):
        return "—" if x is None or x != x else format(x, spec)

    def m(S, which, k="VmRSS"):
        return H.med([tot(r[which], k) for r in S["rounds"]]) if S else None

    def rounds(S, which, k="VmRSS"):
        return ", ".join(f"{tot(r[which], k):.1f}" for r in S["rounds"]) if S else ""
    out = ["| measure (MB, median of rounds) | JupyterHub + CHP | nbhub | nbhub / JupyterHub | target |",
           "|---|---:|---:|---:|---|"]
    for label, which, k, target in (
            (f"hub processes' RSS, {args.servers} servers running", "busy", "VmRSS", "nbhub ≤ 25 MB"),
            (f"hub processes' Pss, {args.servers} servers running", "busy", "Pss", ""),
            ("hub processes' peak RSS (VmHWM, summed)", "busy", "VmHWM", ""),
            ("hub processes' RSS, no server (before)", "idle", "VmRSS", "")):
        a, n = m(A, which, k), m(N, which, k)
        out.append(f"| {label} | {f(a)} | {f(n)} | {f(n / a if a and n else None, '.2f')} | {target} |")

    def su(S, fn):
        if not S:
            return None
        return H.med([fn([s["VmRSS"] / 1024 for s in r["servers"]]) for r in S["rounds"]])
    out.append(f"| one jupyterhub-singleuser's RSS (median; reference, not in the hub's figure) | "
               f"{f(su(A, H.med))} | {f(su(N, H.med))} | | |")
    out.append(f"| all {args.servers} singleusers' RSS (sum) | {f(su(A, sum), '.0f')} | {f(su(N, sum), '.0f')} | | |")
    out.append(f"| time from the first of {args.servers} simultaneous POSTs to all answering (s) | "
               f"{f(A and H.med([r['all_ready_s'] for r in A['rounds']]))} | "
               f"{f(N and H.med([r['all_ready_s'] for r in N['rounds']]))} | | |")
    out.append("")
    notes = []
    if A:
        last = A["rounds"][-1]["busy"]
        notes.append(f"- JupyterHub + CHP rounds (RSS with {args.servers} servers): {rounds(A, 'busy')} MB; "
                     f"per process in the last round: "
                     + ", ".join(f"`{p['cmd'][:60]}` {p['VmRSS'] / 1024:.1f} MB (Pss {p.get('Pss', 0) / 1024:.1f})"
                                 for p in last) + ".")
    if N:
        last = N["rounds"][-1]["busy"]
        notes.append(f"- nbhub rounds: {rounds(N, 'busy')} MB; per process in the last round: "
                     + ", ".join(f"`{p['cmd'][:60]}` {p['VmRSS'] / 1024:.1f} MB" for p in last) + ".")
    else:
        notes.append("- nbhub: not measured in this run (`--nbhub URL --nbhub-token T` against an `nbhub serve` "
                     "with a `hub:` config).")
    return "\n".join(out + notes)


def write(table, res, args):
    head = [SECTION, "",
            f"Generated by `bench/hub/bench_memory.py --write` on {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
            f"{args.reps} rounds per hub, {args.servers} servers, readings {args.settle:.0f} s after all answered. "
            f"{res['machine']}",
            f"Anchor: {res.get('anchor', {}).get('version', '?')} + CHP (bench/hub/jupyterhub_config.py), a fresh hub "
            f"each round; nbhub: {res.get('nbhub', {}).get('version', 'not run')}.", "", ""]
    H.replace_section(SECTION, "\n".join(head) + table + "\n")
    H.log(f"wrote {H.RESULTS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_nbhub_args(ap)
    ap.add_argument("--nbhub-profile")
    ap.add_argument("--servers", type=int, default=20)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--settle", type=float, default=5.0)
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
        tmp = Path(tempfile.mkdtemp(prefix="nbhub-bench-hub-mem-"))
        try:
            if not args.no_anchor:
                H.log("anchor: JupyterHub + CHP ...")
                res["anchor"] = anchor(args, tmp)
            if want_nbhub:
                H.log("nbhub ...")
                res["nbhub"] = nbhub(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        res["machine"] = H.machine_line(res.get("load_before"))
    return H.report(res, args, render, write)


if __name__ == "__main__":
    sys.exit(main())
