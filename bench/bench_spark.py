#!/usr/bin/env python3
"""Benchmark `nbhub spark up` against starting the same standalone cluster by hand.

    .venv/bin/python bench/bench_spark.py [-n 3] [--write] [--nbhub build/nbhub]

Both start a master and 2 workers (1 core, 1g each) of pyspark's bundled Spark on
127.0.0.1 and are measured the same way:
  ready      from the first command to the master's /json/ listing 2 ALIVE workers
  first job  from the first command to a PySpark application on the cluster having
             finished its first job (spark.range(1000).count()), i.e. cluster start +
             driver start, as a notebook task would see it
  idle RSS   the sum of VmRSS of every process of the cluster 10 s after ready
             (JVMs; for nbhub also its supervisor)
The anchor is what Spark's sbin/start-master.sh and start-worker.sh run:
sbin/spark-daemon.sh start org.apache.spark.deploy.master.Master|worker.Worker
(pip's pyspark ships spark-daemon.sh but not the two wrappers), polled the same way.
Runs alternate; medians.
"""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import cpu_model, free_port, replace_section

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
SECTION = "## nbhub spark up vs a standalone cluster started by hand (bench/bench_spark.py)"
JOB = ("import time, sys\nfrom pyspark.sql import SparkSession\n"
       "s = SparkSession.builder.master(sys.argv[1]).config('spark.ui.enabled', 'false')"
       ".config('spark.driver.host', '127.0.0.1').config('spark.driver.bindAddress', '127.0.0.1')"
       ".config('spark.executor.memory', '512m').getOrCreate()\n"
       "assert s.range(1000).count() == 1000\ns.stop()\n")


def env():
    e = dict(os.environ, VIRTUAL_ENV=str(VENV), PATH=f"{VENV / 'bin'}:{os.environ.get('PATH', '')}")
    return e


def spark_home():
    return subprocess.run([str(VENV / "bin" / "python"), "-c",
                           "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def wait_alive(ui, n, t0, timeout=180):
    while time.monotonic() - t0 < timeout:
        try:
            j = json.load(urllib.request.urlopen(ui + "json/", timeout=2))
            if j.get("aliveworkers", 0) >= n:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("cluster not ready")


def rss_of(pids):
    total = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_job(url, t0):
    subprocess.run([str(VENV / "bin" / "python"), "-c", JOB, url], env=env(), check=True,
                   capture_output=True, timeout=300)
    return time.monotonic() - t0


def nbhub_once(args, tmp, i):
    home = tmp / f"nb{i}"
    t0 = time.monotonic()
    r = subprocess.run([args.nbhub, "spark", "up", "b", "--workers", "2", "--worker-memory", "1g", "--home", home],
                       env=env(), capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError(r.stderr)
    ready = time.monotonic() - t0
    st = json.loads((home / "spark" / "b" / "state.json").read_text())
    first = run_job(st["master_url"], t0)
    time.sleep(10)
    st = json.loads((home / "spark" / "b" / "state.json").read_text())
    rss = rss_of([st["pid"]] + [p["pid"] for p in st["processes"]])
    subprocess.run([args.nbhub, "spark", "down", "b", "--home", home], env=env(), capture_output=True, timeout=120)
    return ready, first, rss


def by_hand_once(args, tmp, i, sh):
    d = tmp / f"hand{i}"
    d.mkdir()
    port, ui = free_port(), free_port()
    e = dict(env(), SPARK_HOME=sh, SPARK_LOCAL_IP="127.0.0.1", SPARK_PUBLIC_DNS="127.0.0.1",
             SPARK_LOG_DIR=str(d / "logs"), SPARK_PID_DIR=str(d / "pids"), SPARK_WORKER_DIR=str(d / "work"))
    daemon = f"{sh}/sbin/spark-daemon.sh"
    url = f"spark://127.0.0.1:{port}"
    t0 = time.monotonic()
    subprocess.run([daemon, "start", "org.apache.spark.deploy.master.Master", "1", "--host", "127.0.0.1",
                    "--port", str(port), "--webui-port", str(ui)], env=e, check=True, capture_output=True)
    for w in (1, 2):
        subprocess.run([daemon, "start", "org.apache.spark.deploy.worker.Worker", str(w), "--host", "127.0.0.1",
                        "--cores", "1", "--memory", "1g", "--webui-port", "0", url], env=e, check=True,
                       capture_output=True)
    ready = wait_alive(f"http://127.0.0.1:{ui}/", 2, t0)
    first = run_job(url, t0)
    time.sleep(10)
    pids = [int(p.read_text()) for p in (d / "pids").glob("*.pid")]
    rss = rss_of(pids)
    subprocess.run([daemon, "stop", "org.apache.spark.deploy.master.Master", "1"], env=e, capture_output=True)
    for w in (1, 2):
        subprocess.run([daemon, "stop", "org.apache.spark.deploy.worker.Worker", str(w)], env=e, capture_output=True)
    return ready, first, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--reps", type=int, default=3)
    ap.add_argument("--nbhub", default=str(REPO / "build" / "nbhub"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    sh = spark_home()
    res = {"nbhub": [], "by hand": []}
    with tempfile.TemporaryDirectory(prefix="nbhub-bench-spark-") as d:
        tmp = Path(d)
        for i in range(args.reps):
            order = ["nbhub", "by hand"] if i % 2 == 0 else ["by hand", "nbhub"]
            for k in order:
                v = nbhub_once(args, tmp, i) if k == "nbhub" else by_hand_once(args, tmp, i, sh)
                res[k].append(v)
                print(f"  rep {i + 1} {k}: ready {v[0]:.2f} s, first job {v[1]:.2f} s, idle RSS {v[2]:.0f} MB",
                      file=sys.stderr)
    med = {k: [statistics.median(x[j] for x in v) for j in range(3)] for k, v in res.items()}
    rows = ["| measure (2 workers, 1 core, 1g each) | nbhub spark up | by hand (spark-daemon.sh) | ratio |",
            "|---|---:|---:|---:|"]
    for j, (name, unit) in enumerate((("ready: all workers ALIVE", "s"), ("first job finished", "s"),
                                      ("idle RSS of the cluster", "MB"))):
        a, b = med["nbhub"][j], med["by hand"][j]
        rows.append(f"| {name} ({unit}) | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    text = "\n".join(rows)
    print(text)
    if args.write:
        head = [SECTION, "",
                f"Generated by `bench/bench_spark.py -n {args.reps} --write` on "
                f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.",
                f"Machine: {os.cpu_count()} CPUs, {cpu_model()}, Linux {platform.release()}; pyspark's bundled Spark, "
                "Java 17. Medians; the two alternate. ratio = by hand / nbhub (above 1: nbhub is faster or smaller). "
                "nbhub's RSS includes its supervisor; the first job includes the PySpark driver's start, the same "
                "for both. Not measured yet: an ephemeral cluster per flow task (flows cannot ask for Spark yet) "
                "and progress polling (not built yet).", "", ""]
        replace_section(SECTION, "\n".join(head) + text + "\n")
        print(f"wrote bench/RESULTS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
