#!/usr/bin/env python3
"""The hub's proxy against configurable-http-proxy (issue 17, benchmark 1).

    .venv/bin/python bench/hub/bench_proxy.py [--reps 2] [--write]
    .venv/bin/python bench/hub/bench_proxy.py --nbhub http://127.0.0.1:8888 --nbhub-token TOKEN --write

Anchor: configurable-http-proxy 5 (npm, bench/node_modules) in front of one plain
`jupyter server --ServerApp.base_url=/user/alice/ --ServerApp.token=T`, its route added
through CHP's REST API as JupyterHub adds it.  nbhub: a running `nbhub serve` with a `hub:`
config; the script makes the user (POST /hub/api/users/NAME), an API token for them
(POST /hub/api/users/NAME/tokens) and starts their server (POST /hub/api/users/NAME/server),
then measures it directly (its port, found from its JUPYTERHUB_USER environment) and
through nbhub's /user/NAME/.  Each side is measured directly and through its proxy in the
same sitting, alternating, so the ratio proxy/direct is what compares:

  small GET   wrk -c32 -t2 -d10s --latency on /user/NAME/api/status with the token in an
              `Authorization: token` header: req/s and p50/p99 (per round; medians of rounds)
  download    a 100 MiB file in the server's root dir, /user/NAME/files/big.bin, with curl
              to /dev/null: MiB/s, median of 5
  websocket   a kernel's execute_request("pass") -> execute_reply over
              /user/NAME/api/kernels/ID/channels (subprotocol v1.kernel.websocket.jupyter.org,
              tornado's websocket client): p50/p99 over 500 round trips after 50 unmeasured

wrk, the proxy and the server share the machine's 2 cores (and the other agents' load):
--wrk-cpus pins wrk with taskset (e.g. 1), otherwise nothing is pinned.
"""

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hublib as H  # noqa: E402

SECTION = "## Hub (issue 17): the proxy, nbhub vs configurable-http-proxy (bench/hub/bench_proxy.py)"
USER = "alice"


def side(args, name, direct_port, proxy_port, base, token, big_size):
    """Measure one side: its server directly and through its proxy, alternating."""
    auth = {"Authorization": f"token {token}"}
    ends = {"direct": direct_port, "proxy": proxy_port}
    out = {k: {"wrk": [], "dl": [], "ws": [], "ws_reply": [], "ws_qa": []} for k in ends}
    for r in range(args.reps):
        order = list(ends) if r % 2 == 0 else list(ends)[::-1]
        for k in order:
            w = H.wrk(f"http://127.0.0.1:{ends[k]}{base}api/status", auth, args.conc, args.threads,
                      args.seconds, args.wrk_cpus)
            H.log(f"  {name} {k} round {r + 1}: {w['rps']:.0f} req/s p50 {w['p50_ms']:.2f} ms "
                  f"p99 {w['p99_ms']:.2f} ms non-2xx {w['non2xx']} {w['socket_errors']}")
            if w["raw"]:
                H.log(w["raw"])
            out[k]["wrk"].append(w)
    if big_size:
        for i in range(args.downloads):
            order = list(ends) if i % 2 == 0 else list(ends)[::-1]
            for k in order:
                secs, mbs = H.curl_download(f"http://127.0.0.1:{ends[k]}{base}files/big.bin", auth, big_size)
                out[k]["dl"].append(mbs)
        for k in ends:
            H.log(f"  {name} {k} download MiB/s: {', '.join(f'{x:.0f}' for x in out[k]['dl'])}")
    for r in range(args.reps):
        order = list(ends) if r % 2 == 0 else list(ends)[::-1]
        for k in order:
            first, reply = H.ws_round_trips(ends[k], base, token, n=args.ws_n)
            H.log(f"  {name} {k} websocket round {r + 1}: first frame p50 {H.pct(first, 50):.3f} ms "
                  f"p99 {H.pct(first, 99):.3f} ms; execute_reply p50 {H.pct(reply, 50):.3f} ms "
                  f"p99 {H.pct(reply, 99):.3f} ms")
            out[k]["ws"].append(first)
            out[k]["ws_reply"].append(reply)
            _, reply = H.ws_round_trips(ends[k], base, token, n=args.ws_n, quickack=True)
            H.log(f"  {name} {k} websocket round {r + 1}, quick-ACK client: execute_reply p50 "
                  f"{H.pct(reply, 50):.3f} ms p99 {H.pct(reply, 99):.3f} ms")
            out[k]["ws_qa"].append(reply)
    return out


def fast_side(args, name, direct_port, proxy_port, base, token="unused"):
    """The proxy's ceiling: small GETs to upstream.js (a node server that answers at ~80k
    req/s on this machine) directly and through the proxy, alternating."""
    ends = {"direct": direct_port, "proxy": proxy_port}
    out = {k: [] for k in ends}
    for r in range(args.reps):
        order = list(ends) if r % 2 == 0 else list(ends)[::-1]
        for k in order:
            w = H.wrk(f"http://127.0.0.1:{ends[k]}{base}api/status", {"Authorization": f"token {token}"}, args.conc,
                      args.threads, args.seconds, args.wrk_cpus)
            H.log(f"  {name} fast upstream {k} round {r + 1}: {w['rps']:.0f} req/s p50 {w['p50_ms']:.2f} ms "
                  f"p99 {w['p99_ms']:.2f} ms non-2xx {w['non2xx']} {w['socket_errors']}")
            out[k].append(w)
    return {k: {"rps": H.med([x["rps"] for x in v]), "p50_ms": H.med([x["p50_ms"] for x in v]),
                "p99_ms": H.med([x["p99_ms"] for x in v]), "rps_rounds": [x["rps"] for x in v],
                "non2xx": sum(x["non2xx"] for x in v)} for k, v in out.items()}


def start_upstream(tmp):
    port = H.free_port()
    p = H.Proc(["node", H.HERE / "upstream.js", port], Path(tmp) / "upstream.log")
    H.wait_until(lambda: H.http_get(port, "/")[0] == 200 or (not p.alive() and H._died(p)), 30, 0.05,
                 "upstream.js")
    return p, port


def summary(m):
    """Medians over rounds of one end's samples."""
    w = m["wrk"]
    allrt = [x for rt in m["ws"] for x in rt]
    return {"rps": H.med([x["rps"] for x in w]), "p50_ms": H.med([x["p50_ms"] for x in w]),
            "p99_ms": H.med([x["p99_ms"] for x in w]), "rps_rounds": [x["rps"] for x in w],
            "p99_rounds": [x["p99_ms"] for x in w], "non2xx": sum(x["non2xx"] for x in w),
            "dl_mibs": H.med(m["dl"]), "dl_rounds": m["dl"],
            "ws_p50": H.med([H.pct(rt, 50) for rt in m["ws"]]), "ws_p99": H.med([H.pct(rt, 99) for rt in m["ws"]]),
            "ws_p50_rounds": [H.pct(rt, 50) for rt in m["ws"]], "ws_n": len(allrt),
            "wsr_p50": H.med([H.pct(rt, 50) for rt in m["ws_reply"]]),
            "wsr_p99": H.med([H.pct(rt, 99) for rt in m["ws_reply"]]),
            "wsq_p50": H.med([H.pct(rt, 50) for rt in m["ws_qa"]]),
            "wsq_p99": H.med([H.pct(rt, 99) for rt in m["ws_qa"]]),
            "wsq_p50_rounds": [H.pct(rt, 50) for rt in m["ws_qa"]]}


def anchor(args, tmp):
    token = secrets.token_hex(24)
    base = f"/user/{USER}/"
    srv, port, root = H.start_jupyter_server(tmp, base, token)
    chp = None
    try:
        big = H.make_file(root / "big.bin", args.mb)
        chp = H.Chp(tmp)
        chp.add_route(f"/user/{USER}", f"http://127.0.0.1:{port}")
        H.wait_until(lambda: H.http_get(chp.port, base + "api")[0] == 200, 30, 0.05, "the route")
        raw = side(args, "CHP", port, chp.port, base, token, big.stat().st_size)
        mem = {"chp": H.proc_mem(chp.proc.pid), "server": H.proc_mem(srv.pid)}
        fast = None
        if not args.no_fast:
            up, uport = start_upstream(tmp)
            try:
                chp.add_route("/user/fast", f"http://127.0.0.1:{uport}")
                fast = fast_side(args, "CHP", uport, chp.port, "/user/fast/")
            finally:
                up.stop()
        ver = H.subprocess.run([str(H.CHP), "--version"], capture_output=True, text=True).stdout.strip()
        return {"raw": raw, "direct": summary(raw["direct"]), "proxy": summary(raw["proxy"]), "mem_after": mem,
                "fast": fast, "version": f"configurable-http-proxy {ver}"}
    finally:
        if chp:
            chp.stop()
        srv.stop()


def nbhub(args, tmp):
    hub = H.open_nbhub(args, tmp)
    big = None
    try:
        hub.create_user(USER)
        token = hub.user_token(USER)
        hub.start_server(USER)
        H.wait_until(lambda: hub.ready(USER, token), 180, 0.05, f"{USER}'s server through nbhub")
        pid = H.wait_until(lambda: hub.server_pid(USER), 30, 0.1, f"{USER}'s server process")
        port = H.listening_ports(pid)[0]
        root = Path(f"/proc/{pid}/cwd").resolve()      # jupyterhub-singleuser serves its working directory
        big = H.make_file(root / "big.bin", args.mb)
        raw = side(args, "nbhub", port, hub.port, hub.user_path(USER), token, big.stat().st_size)
        mem = {"nbhub": H.sum_mem(hub.hub_pids())}
        fast = None
        profile = args.nbhub_fast_profile or ("fast" if args.nbhub_bin else None)
        if profile:
            # a profile whose command: is `node bench/hub/upstream.js {port}`, for a second user
            hub.create_user("fast")
            ftoken = hub.user_token("fast")
            hub.start_server("fast", {"profile": profile})
            H.wait_until(lambda: H.http_get(hub.port, hub.user_path("fast") + "api/status",
                                            {"Authorization": f"token {ftoken}"})[0] == 200,
                         60, 0.05, "the fast upstream through nbhub")
            fpid = H.wait_until(lambda: hub.server_pid("fast"), 30, 0.1, "the fast upstream's process")
            fast = fast_side(args, "nbhub", H.listening_ports(fpid)[0], hub.port, hub.user_path("fast"), ftoken)
            hub.stop_server("fast", wait=False)
        return {"raw": raw, "direct": summary(raw["direct"]), "proxy": summary(raw["proxy"]),
                "mem_after": mem, "fast": fast, "version": f"nbhub serve ({hub.version()})"}
    finally:
        if big:
            big.unlink(missing_ok=True)
        if not args.keep_server:
            try:
                hub.stop_server(USER, wait=False)
            except Exception as e:  # noqa: BLE001
                H.log(f"stopping {USER}'s server: {e}")
        hub.stop()


def render(res, args):
    A, N = res.get("anchor"), res.get("nbhub")

    def f(x, spec=".0f"):
        return "—" if x is None or x != x else format(x, spec)

    def g(side, end, k):
        return side[end][k] if side else None

    def ratio(a, b):
        return None if a is None or b is None or not b else a / b
    rows = [
        ("small GET req/s", "rps", ".0f", "≥ 3× CHP's (nbhub via / CHP via)"),
        ("small GET p50 (ms)", "p50_ms", ".2f", ""),
        ("small GET p99 (ms)", "p99_ms", ".2f", "≤ 5 ms (via nbhub)"),
        (f"{args.mb} MiB download MiB/s (median of {args.downloads})", "dl_mibs", ".0f",
         "≥ 0.9× direct (nbhub via / its direct)"),
        ("websocket execute_request → first frame back p50 (ms)", "ws_p50", ".3f", "overhead over direct ≤ 0.1 ms"),
        ("websocket execute_request → first frame back p99 (ms)", "ws_p99", ".3f", ""),
        ("websocket execute_request → execute_reply p50 (ms)", "wsr_p50", ".3f", ""),
        ("websocket execute_request → execute_reply p99 (ms)", "wsr_p99", ".3f", ""),
        ("same, client with TCP_QUICKACK p50 (ms)", "wsq_p50", ".3f", ""),
        ("same, client with TCP_QUICKACK p99 (ms)", "wsq_p99", ".3f", ""),
    ]
    out = ["| measure | jupyter-server direct | via CHP | CHP/direct | nbhub's server direct | via nbhub "
           "| nbhub/direct | nbhub via / CHP via | target |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, k, spec, target in rows:
        ad, ap, nd, np_ = g(A, "direct", k), g(A, "proxy", k), g(N, "direct", k), g(N, "proxy", k)
        out.append(f"| {label} | {f(ad, spec)} | {f(ap, spec)} | {f(ratio(ap, ad), '.2f')} | {f(nd, spec)} "
                   f"| {f(np_, spec)} | {f(ratio(np_, nd), '.2f')} | {f(ratio(np_, ap), '.2f')} | {target} |")
    out.append(f"| non-2xx answers to the small GETs (all rounds) | {g(A, 'direct', 'non2xx') if A else '—'} "
               f"| {g(A, 'proxy', 'non2xx') if A else '—'} | | {g(N, 'direct', 'non2xx') if N else '—'} "
               f"| {g(N, 'proxy', 'non2xx') if N else '—'} | | | 0 |")
    if A:
        ov = A["proxy"]["ws_p50"] - A["direct"]["ws_p50"]
        nov = (N["proxy"]["ws_p50"] - N["direct"]["ws_p50"]) if N else None
        out.append(f"| websocket first frame p50: overhead over direct (ms) | | {f(ov, '.3f')} | | | {f(nov, '.3f')} | | | ≤ 0.1 ms |")
    AF, NF = (A or {}).get("fast"), (N or {}).get("fast")
    for label, k, spec, target in (("fast upstream: small GET req/s", "rps", ".0f", "(the proxy's ceiling)"),
                                   ("fast upstream: small GET p50 (ms)", "p50_ms", ".2f", ""),
                                   ("fast upstream: small GET p99 (ms)", "p99_ms", ".2f", ""),
                                   ("fast upstream: non-2xx answers", "non2xx", "d", "0")):
        ad, ap, nd, np_ = g(AF, "direct", k), g(AF, "proxy", k), g(NF, "direct", k), g(NF, "proxy", k)
        if AF or NF:
            out.append(f"| {label} | {f(ad, spec)} | {f(ap, spec)} | {f(ratio(ap, ad), '.2f')} | {f(nd, spec)} "
                       f"| {f(np_, spec)} | {f(ratio(np_, nd), '.2f')} | {f(ratio(np_, ap), '.2f')} | {target} |")
    out.append("")
    notes = []
    for name, S in (("CHP", A), ("nbhub", N)):
        if not S:
            continue
        notes.append(
            f"- {name}: small-GET rounds direct {', '.join(f'{x:.0f}' for x in S['direct']['rps_rounds'])} "
            f"/ via {', '.join(f'{x:.0f}' for x in S['proxy']['rps_rounds'])} req/s, p99 rounds direct "
            f"{', '.join(f'{x:.2f}' for x in S['direct']['p99_rounds'])} / via "
            f"{', '.join(f'{x:.2f}' for x in S['proxy']['p99_rounds'])} ms (non-2xx: "
            f"{S['direct']['non2xx']} / {S['proxy']['non2xx']}); downloads MiB/s direct "
            f"{', '.join(f'{x:.0f}' for x in S['direct']['dl_rounds'])} / via "
            f"{', '.join(f'{x:.0f}' for x in S['proxy']['dl_rounds'])}; websocket p50 rounds direct "
            f"{', '.join(f'{x:.3f}' for x in S['direct']['ws_p50_rounds'])} / via "
            f"{', '.join(f'{x:.3f}' for x in S['proxy']['ws_p50_rounds'])} ms.")
    if A and A.get("mem_after"):
        m = A["mem_after"]
        notes.append(f"- RSS after the run: CHP {m['chp']['VmRSS'] / 1024:.0f} MB (peak {m['chp']['VmHWM'] / 1024:.0f} MB), "
                     f"jupyter-server {m['server']['VmRSS'] / 1024:.0f} MB.")
    if N and N.get("mem_after", {}).get("nbhub"):
        m = N["mem_after"]["nbhub"]
        notes.append(f"- RSS after the run: nbhub serve {m['VmRSS'] / 1024:.1f} MB (peak {m['VmHWM'] / 1024:.1f} MB).")
    if not N:
        notes.append("- nbhub: not measured in this run (`--nbhub URL --nbhub-token T` against an `nbhub serve` "
                     "with a `hub:` config).")
    return "\n".join(out + notes)


def write(table, res, args):
    head = [SECTION, "",
            f"Generated by `bench/hub/bench_proxy.py --write` on {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
            f"{args.reps} rounds per side. {res['machine']}",
            f"Anchor: {res.get('anchor', {}).get('version', '?')} in front of a plain jupyter-server "
            f"(`jupyter server --ServerApp.base_url=/user/alice/ --ServerApp.token=T`, jupyter-server "
            f"{res.get('jupyter_server', '?')} with JupyterLab's extension loaded); nbhub: "
            f"{res.get('nbhub', {}).get('version', 'not run')}, in front of the jupyterhub-singleuser it started. "
            f"wrk -c{args.conc} -t{args.threads} -d{args.seconds}s --latency"
            f"{' pinned to CPU ' + args.wrk_cpus if args.wrk_cpus else ', nothing pinned: wrk, the proxy and the server share the 2 cores'}. "
            f"Each side's own direct figure is its baseline (the two upstreams differ: a token compare vs "
            f"the Hub API check cached by jupyterhub-singleuser).", "", ""]
    H.replace_section(SECTION, "\n".join(head) + table + "\n")
    H.log(f"wrote {H.RESULTS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_nbhub_args(ap)
    ap.add_argument("--keep-server", action="store_true", help="leave nbhub's server running after")
    ap.add_argument("--nbhub-fast-profile", help="an nbhub profile whose command: runs bench/hub/upstream.js "
                    "(for the proxy's ceiling; without it nbhub's ceiling is not measured)")
    ap.add_argument("--no-fast", action="store_true", help="skip CHP's ceiling (the fast upstream)")
    ap.add_argument("--reps", type=int, default=2, help="rounds of wrk and of websocket runs per end (default 2)")
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--wrk-cpus", help="taskset CPU list for wrk (default: not pinned)")
    ap.add_argument("--mb", type=int, default=100, help="download size in MiB (default 100)")
    ap.add_argument("--downloads", type=int, default=5)
    ap.add_argument("--ws-n", type=int, default=500)
    ap.add_argument("--json", help="also dump the raw results to this file")
    ap.add_argument("--from-json", help="render (and --write) the results of an earlier --json")
    ap.add_argument("--write", action="store_true", help="write this section of bench/RESULTS.md")
    args = ap.parse_args()
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        args = argparse.Namespace(**{**vars(args), **res["args"], "write": args.write})
    else:
        want_nbhub = H.check_nbhub_args(ap, args)
        import jupyter_server
        res = {"args": {k: v for k, v in vars(args).items() if k not in ("write", "json", "from_json", "nbhub_token")},
               "jupyter_server": jupyter_server.__version__}
        res["load_before"] = os.getloadavg()
        tmp = Path(tempfile.mkdtemp(prefix="nbhub-bench-hub-proxy-"))
        try:
            t0 = time.monotonic()
            if not args.no_anchor:
                H.log("anchor: configurable-http-proxy in front of jupyter-server ...")
                res["anchor"] = anchor(args, tmp)
            if want_nbhub:
                H.log("nbhub ...")
                res["nbhub"] = nbhub(args, tmp)
            res["seconds"] = time.monotonic() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        res["machine"] = H.machine_line(res.get("load_before"))
    return H.report(res, args, render, write)


if __name__ == "__main__":
    sys.exit(main())
