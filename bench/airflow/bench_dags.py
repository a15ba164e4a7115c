"""DAGs for bench/bench_serve.py's Airflow anchor (copied into a temporary
AIRFLOW_HOME/dags with bench_dags.json beside it, which sets the sizes).

  bench_chains  CHAINS parallel chains of LENGTH PythonOperator tasks, each
                sleeping SLEEP seconds (the nbhub side runs a notebook cell
                doing the same) -> dependent latency from end_date/start_date
  bench_wide    LAYERS x WIDTH BashOperator `true` tasks, each after FANIN
                tasks of the previous layer -> scheduler overhead
  bench_runs    one BashOperator `true` task, manual only, paused: its dag
                runs fill the metadata DB for the REST list benchmark
"""
import json
import os
import time

import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator

CFG = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_dags.json")))
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _sleep(seconds):
    time.sleep(seconds)


c = CFG.get("chains")
if c:
    with DAG("bench_chains", schedule=None, start_date=START, catchup=False,
             max_active_tasks=c["chains"] * 2, max_active_runs=1):
        for i in range(c["chains"]):
            prev = None
            for j in range(c["length"]):
                t = PythonOperator(task_id=f"c{i}_{j:03d}", python_callable=_sleep,
                                   op_args=[c["sleep"]])
                if prev is not None:
                    prev >> t
                prev = t

w = CFG.get("wide")
if w:
    with DAG("bench_wide", schedule=None, start_date=START, catchup=False,
             max_active_tasks=w["max_active"], max_active_runs=1):
        prev_layer = []
        for layer in range(w["layers"]):
            cur = []
            for k in range(w["width"]):
                t = BashOperator(task_id=f"l{layer:03d}_{k:03d}", bash_command="true")
                for d in range(w["fanin"]):
                    if prev_layer:
                        prev_layer[(k + d) % len(prev_layer)] >> t
                cur.append(t)
            prev_layer = cur

if CFG.get("runs"):
    with DAG("bench_runs", schedule=None, start_date=START, catchup=False,
             is_paused_upon_creation=True):
        BashOperator(task_id="noop", bash_command="true")
