"""`nbhub kernel install-spark` / `remove`: PySpark kernel specs, used for real.

pyspark from PyPI (in .venv) bundles Spark; Java 17 comes from Debian.  The
generated kernel is listed by the real `jupyter kernelspec list`, and a
notebook on it gets a SparkSession from `SparkSession.builder.getOrCreate()`
alone and computes on local[2] — also taking a setting from ${VAR}."""

import json
import os
import shlex
import subprocess

import pytest

from conftest import JUPYTER, code, read_nb, stream_text, write_nb, code_cells

pyspark = pytest.importorskip("pyspark")


def install(h, *args, prefix=None):
    prefix = prefix or (h.tmp / "prefix")
    return h.run(["kernel", "install-spark", "--prefix", prefix, *args]), prefix


def spec_of(prefix, name):
    return json.loads((prefix / "share" / "jupyter" / "kernels" / name / "kernel.json").read_text())


def test_spark_notebook_runs_on_generated_kernel(h, tmp_path):
    r, prefix = install(h, "pyspark-local", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                        "--conf", "spark.sql.shuffle.partitions=3", "--executor-memory", "${EXEC_MEM}")
    assert r.rc == 0, r
    assert "Installed kernelspec pyspark-local" in r.stdout
    env = dict(h.env, JUPYTER_PATH=str(prefix / "share" / "jupyter"), EXEC_MEM="1g")
    # The real jupyter sees it, as JupyterLab will.
    lst = subprocess.run([JUPYTER, "kernelspec", "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    specs = json.loads(lst.stdout)["kernelspecs"]
    assert specs["pyspark-local"]["spec"]["display_name"] == "PySpark (pyspark-local)"
    args = shlex.split(specs["pyspark-local"]["spec"]["env"]["PYSPARK_SUBMIT_ARGS"])
    assert args[-1] == "pyspark-shell" and args[:2] == ["--master", "local[2]"]
    assert "spark.executor.memory=${EXEC_MEM}" in args

    nb = write_nb(tmp_path / "spark.ipynb",
                  code("from pyspark.sql import SparkSession\n"
                       "spark = SparkSession.builder.getOrCreate()\n"
                       "print(spark.range(1, 101).selectExpr('sum(id) AS s').collect()[0].s)\n"
                       "print(spark.sparkContext.master, spark.conf.get('spark.executor.memory'),\n"
                       "      spark.conf.get('spark.sql.shuffle.partitions'))\n"
                       "print(spark.sparkContext.parallelize(range(10), 4).map(lambda x: x * x).sum())"),
                  kernel="pyspark-local")
    out = tmp_path / "out.ipynb"
    r = h.run(["run", nb, out], env=env, timeout=240)
    assert r.rc == 0, r
    lines = stream_text(code_cells(read_nb(out))[0]).split("\n")
    assert lines[0] == "5050"
    assert lines[1] == "local[2] 1g 3"          # ${EXEC_MEM} came from the environment
    assert lines[2] == "285"                    # Python workers ran (PYSPARK_PYTHON)


def test_quoting_survives_pysparks_split(h):
    tricky = "spark.driver.extraJavaOptions=-Dnbhub.a='x y' -Dnbhub.b=\"q\" $HOME"
    r, prefix = install(h, "q", "--master", "spark://h1:7077,h2:7077", "--conf", tricky,
                        "--executor-instances", "2", "--executor-cores", "1")
    assert r.rc == 0, r
    spec = spec_of(prefix, "q")
    args = shlex.split(spec["env"]["PYSPARK_SUBMIT_ARGS"])   # what pyspark's java_gateway does
    assert args == ["--master", "spark://h1:7077,h2:7077", "--conf", tricky,
                    "--conf", "spark.executor.instances=2", "--conf", "spark.executor.cores=1", "pyspark-shell"]
    assert spec["metadata"]["nbhub"]["spark_master"] == "spark://h1:7077,h2:7077"
    assert spec["interrupt_mode"] == "signal"


def test_k8s_options_and_distribution_home(h, tmp_path):
    # A Spark distribution laid out as Apache ships it (only what install-spark checks).
    home = tmp_path / "spark-4.0.0-bin-hadoop3"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "spark-submit").write_text("#!/bin/sh\n")
    (home / "bin" / "spark-submit").chmod(0o755)
    (home / "python" / "lib").mkdir(parents=True)
    (home / "python" / "lib" / "py4j-0.10.9.9-src.zip").write_bytes(b"PK")
    r, prefix = install(h, "k8s", "--master", "k8s://https://10.0.0.1:6443", "--image", "apache/spark:4.0.0",
                        "--namespace", "team-a", "--spark-home", home)
    assert r.rc == 0, r
    env = spec_of(prefix, "k8s")["env"]
    assert env["SPARK_HOME"] == str(home)
    assert env["PYTHONPATH"] == f"{home}/python:{home}/python/lib/py4j-0.10.9.9-src.zip"
    args = shlex.split(env["PYSPARK_SUBMIT_ARGS"])
    assert "spark.kubernetes.container.image=apache/spark:4.0.0" in args
    assert "spark.kubernetes.namespace=team-a" in args
    # pyspark from PyPI: no PYTHONPATH that could shadow it
    r, prefix = install(h, "plain", "--master", "local[*]")
    assert r.rc == 0, r
    assert "PYTHONPATH" not in spec_of(prefix, "plain")["env"]


@pytest.mark.parametrize("args,rc,msg", [
    (["x"], 2, "are required"),
    (["x", "--master"], 2, "needs a value"),
    (["x", "--master", "mesos://h:5050"], 3, "master 'mesos://h:5050'"),
    (["x", "--master", "local[*]", "--conf", "oops"], 3, "--conf 'oops'"),
    (["x", "--master", "local[*]", "--executor-memory", "lots"], 3, "--executor-memory 'lots'"),
    (["x", "--master", "local[*]", "--image", "img"], 3, "k8s:// masters only"),
    (["../x", "--master", "local[*]"], 3, "kernel name '../x'"),
    (["x", "--master", "local[*]", "--spark-home", "/nonexistent"], 4, "not a Spark distribution"),
    (["x", "--master", "local[*]", "--python", "/bin/true"], 4, "cannot import pyspark"),
    (["x", "--master", "local[*]", "--python", "/no/python"], 3, "not an executable"),
])
def test_bad_input(h, args, rc, msg):
    r, prefix = install(h, *args)
    assert r.rc == rc, r
    assert msg in r.stderr, r.stderr
    assert not (prefix / "share").exists()


def test_remove(h):
    r, prefix = install(h, "gone", "--master", "local[*]")
    assert r.rc == 0, r
    env = dict(h.env, JUPYTER_PATH=str(prefix / "share" / "jupyter"))
    r = h.run(["kernel", "list"], env=env)
    assert "gone" in r.stdout
    r = h.run(["kernel", "remove", "gone"], env=env)
    assert r.rc == 0 and "Removed" in r.stdout, r
    assert not (prefix / "share" / "jupyter" / "kernels" / "gone").exists()
    r = h.run(["kernel", "remove", "gone"], env=env)
    assert r.rc == 3 and "no kernel spec named 'gone'" in r.stderr, r
    # Installing again over an existing spec replaces it.
    install(h, "again", "--master", "local[*]", prefix=prefix)
    r, _ = install(h, "again", "--master", "local[1]", "--conf", "spark.driver.host=10.1.2.3", prefix=prefix)
    assert r.rc == 0 and "Replaced kernelspec again" in r.stdout, r
    args = shlex.split(spec_of(prefix, "again")["env"]["PYSPARK_SUBMIT_ARGS"])
    assert args[1] == "local[1]"
    # a loopback master's driver listens on 127.0.0.1, unless told otherwise
    assert "spark.driver.host=10.1.2.3" in args and "spark.driver.host=127.0.0.1" not in args
    assert "spark.driver.bindAddress=127.0.0.1" in args
