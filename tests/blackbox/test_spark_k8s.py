"""`nbhub spark render-k8s`: Kubernetes manifests, checked against the Kubeflow Spark
operator's own CRD schemas.

tests/data/k8s-crds/ holds the operator's CustomResourceDefinitions (see SOURCE.md there).
Every SparkApplication, ScheduledSparkApplication and SparkConnect the binary prints is
validated against the openAPIV3Schema of its CRD with jsonschema, made strict the way the
API server's strict field validation is (kubectl apply's default): an object schema that
lists its properties accepts no others, unless it says x-kubernetes-preserve-unknown-fields.
The validator is shown to reject broken manifests, so a pass means something.  The YAML
output must load (PyYAML, and kubectl's own loader when kubectl is installed) to exactly the
--json output.  Services and ConfigMaps have no CRD; their shape is checked directly."""

import copy
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO

CRD_DIR = REPO / "tests" / "data" / "k8s-crds"
IMAGE = "apache/spark:4.0.1"
V = ("--spark-version", "4.0.1")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- the validator

def _strict(schema):
    """A copy of an openAPIV3Schema where every object schema that lists properties
    refuses unknown fields (unless it preserves unknown fields), as strict field
    validation does."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (_strict(v) if k in ("items", "additionalProperties", "not") else
               {p: _strict(s) for p, s in v.items()} if k == "properties" else
               [_strict(s) for s in v] if k in ("allOf", "anyOf", "oneOf") else v)
           for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _load_crds():
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for ver in crd["spec"]["versions"]:
            if ver.get("served"):
                schema = _strict(ver["schema"]["openAPIV3Schema"])
                jsonschema.Draft7Validator.check_schema(schema)
                crds[(f"{group}/{ver['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return crds


CRDS = _load_crds()


def schema_errors(manifest):
    """What the operator's CRD says is wrong with manifest (empty: valid)."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key not in CRDS:
        return [f"no served CRD version for apiVersion {key[0]!r} kind {key[1]!r}"]
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in CRDS[key].iter_errors(manifest)]
    name = manifest.get("metadata", {}).get("name", "")
    if not DNS_LABEL.match(name) or len(name) > 63:
        errors.append(f"metadata/name: {name!r} is not a DNS label")
    return errors


def assert_valid(manifest):
    errors = schema_errors(manifest)
    assert not errors, "\n".join(errors) + "\n" + json.dumps(manifest, indent=1)


# --------------------------------------------------------------------------- running

def render(h, *args, expect=0):
    r = h.run(["spark", "render-k8s", *args])
    assert r.rc == expect, r
    return r


def docs_yaml(r):
    return [d for d in yaml.safe_load_all(r.stdout)]


def docs_json(r):
    one = json.loads(r.stdout)
    return one["items"] if one.get("kind") == "List" else [one]


def render_both(h, *args):
    """The manifests from the YAML and the --json output, which must agree."""
    y = docs_yaml(render(h, *args))
    j = docs_json(render(h, *args, "--json"))
    assert y == j
    return j


APPS = [
    ("python, every option", ["app", "etl", "--application", "jobs/etl.py", "--image", IMAGE,
                              "--namespace", "team-a", "--service-account", "spark",
                              "--image-pull-policy", "IfNotPresent", "--arg", "2024-01-01", "--arg", "--full",
                              "--conf", "spark.sql.shuffle.partitions=64", "--conf", "spark.ui.enabled=false",
                              "--py-files", "lib.py,s3a://bucket/deps.zip", "--files", "conf/app.conf",
                              "--driver-cores", "2", "--driver-memory", "2g", "--executor-instances", "4",
                              "--executor-cores", "2", "--executor-memory", "4g",
                              "--retries", "3", "--retry-interval", "30"]),
    ("python, defaults", ["app", "pi", "--application", "local:///opt/spark/examples/src/main/python/pi.py",
                          "--image", IMAGE]),
    ("jar", ["app", "spark-pi", "--application", "/opt/spark/examples/jars/spark-examples.jar",
             "--main-class", "org.apache.spark.examples.SparkPi", "--arg", "1000", "--image", IMAGE,
             "--jars", "https://repo.example/x.jar"]),
    ("java type", ["app", "job", "--application", "s3a://b/job.jar", "--type", "Java", "--main-class", "a.B",
                   "--image", IMAGE]),
    ("R", ["app", "report", "--application", "report.R", "--image", IMAGE]),
]

SCHEDULED = [
    ("cron + zone", ["app", "nightly", "--application", "etl.py", "--image", IMAGE, "--schedule", "30 2 * * *",
                     "--time-zone", "Europe/Berlin"], "30 2 * * *"),
    ("macro", ["app", "hourly", "--application", "etl.py", "--image", IMAGE, "--schedule", "@hourly"], "@hourly"),
    ("interval", ["app", "often", "--application", "etl.py", "--image", IMAGE, "--schedule", "1h30m",
                  "--retries", "1"], "@every 1h30m"),
]


# --------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("label,args", APPS, ids=[a[0] for a in APPS])
def test_spark_application_matches_crd(h, label, args):
    (m,) = render_both(h, *args, *V)
    assert m["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and m["kind"] == "SparkApplication"
    assert_valid(m)
    spec = m["spec"]
    assert spec["mode"] == "cluster" and spec["sparkVersion"] == "4.0.1" and spec["image"] == IMAGE
    assert spec["mainApplicationFile"].startswith(("local://", "s3a://"))
    assert m["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "nbhub"


def test_spark_application_fields(h):
    (m,) = render_both(h, *APPS[0][1], *V)
    s = m["spec"]
    assert s["type"] == "Python" and s["mainApplicationFile"] == "local:///opt/spark/work-dir/jobs/etl.py"
    assert s["arguments"] == ["2024-01-01", "--full"]
    assert s["sparkConf"] == {"spark.sql.shuffle.partitions": "64", "spark.ui.enabled": "false"}
    assert s["deps"] == {"pyFiles": ["local:///opt/spark/work-dir/lib.py", "s3a://bucket/deps.zip"],
                         "files": ["local:///opt/spark/work-dir/conf/app.conf"]}
    assert s["driver"] == {"cores": 2, "memory": "2g", "serviceAccount": "spark"}
    assert s["executor"] == {"instances": 4, "cores": 2, "memory": "4g"}
    assert s["restartPolicy"] == {"type": "OnFailure", "onFailureRetries": 3, "onFailureRetryInterval": 30,
                                  "onSubmissionFailureRetries": 3, "onSubmissionFailureRetryInterval": 30}
    (jar,) = render_both(h, *APPS[2][1], *V)
    assert jar["spec"]["type"] == "Scala" and jar["spec"]["mainClass"] == "org.apache.spark.examples.SparkPi"


@pytest.mark.parametrize("label,args,schedule", SCHEDULED, ids=[s[0] for s in SCHEDULED])
def test_scheduled_spark_application_matches_crd(h, label, args, schedule):
    (m,) = render_both(h, *args, *V)
    assert m["kind"] == "ScheduledSparkApplication"
    assert_valid(m)
    assert m["spec"]["schedule"] == schedule and m["spec"]["concurrencyPolicy"] == "Forbid"
    # The template is what the same job would be as a SparkApplication.
    plain = [a for a in args]
    i = plain.index("--schedule")
    del plain[i:i + 2]
    if "--time-zone" in plain:
        i = plain.index("--time-zone")
        del plain[i:i + 2]
    (app,) = render_both(h, *plain, *V)
    assert m["spec"]["template"] == app["spec"]
    # The template alone satisfies the SparkApplication schema too.
    assert_valid({"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
                  "metadata": {"name": "x"}, "spec": m["spec"]["template"]})


def test_spark_connect_matches_crd(h):
    (m,) = render_both(h, "connect", "team-connect", "--image", IMAGE, "--namespace", "team-a",
                       "--driver-cores", "2", "--driver-memory", "4g", "--executor-instances", "3",
                       "--executor-memory", "2g", "--image-pull-policy", "Always",
                       "--conf", "spark.connect.grpc.maxInboundMessageSize=134217728", *V)
    assert m["apiVersion"] == "sparkoperator.k8s.io/v1alpha1" and m["kind"] == "SparkConnect"
    assert_valid(m)
    assert m["spec"]["server"]["cores"] == 2 and m["spec"]["executor"]["instances"] == 3
    assert m["spec"]["server"]["template"]["spec"]["serviceAccountName"] == "spark-operator-spark"
    (d,) = render_both(h, "connect", "sc", "--image", IMAGE, *V)
    assert_valid(d)


def test_notebook_service_and_configmap(h):
    svc, cm = render_both(h, "notebook", "alice", "--image", IMAGE, "--namespace", "team-a",
                          "--service-account", "notebooks", "--executor-instances", "3",
                          "--executor-memory", "2g", "--driver-memory", "4g",
                          "--conf", "spark.driver.extraJavaOptions=-Dx=1 -Dy=2",
                          "--conf", "spark.sql.shuffle.partitions=16", *V)
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    assert svc["metadata"] == {"name": "alice", "namespace": "team-a",
                               "labels": {"app.kubernetes.io/managed-by": "nbhub"}}
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {"nbhub/spark-driver": "alice"}
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"driver-rpc": 7078, "blockmanager": 7079, "spark-ui": 4040}
    for p in svc["spec"]["ports"]:   # IANA_SVC_NAME, as the API server requires
        assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", p["name"]) and len(p["name"]) <= 15

    assert (cm["apiVersion"], cm["kind"], cm["metadata"]["name"]) == ("v1", "ConfigMap", "alice-spark")
    data = cm["data"]
    # A ConfigMap's data holds strings only (a number here is refused by the API server),
    # under keys that envFrom turns into environment variables.
    assert all(isinstance(v, str) for v in data.values()), data
    assert all(ENV_NAME.match(k) for k in data), list(data)
    words = shlex.split(data["PYSPARK_SUBMIT_ARGS"])      # how pyspark splits it
    assert words[-1] == "pyspark-shell"
    assert words[:4] == ["--master", "k8s://https://kubernetes.default.svc", "--deploy-mode", "client"]
    conf = dict(w.split("=", 1) for w in words[5:-1:2])
    assert all(w == "--conf" for w in words[4:-1:2])
    assert conf == {
        "spark.kubernetes.container.image": IMAGE,
        "spark.kubernetes.namespace": "team-a",
        "spark.kubernetes.authenticate.driver.serviceAccountName": "notebooks",
        "spark.driver.host": "alice.team-a.svc.cluster.local",
        "spark.driver.port": "7078",
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.blockManager.port": "7079",
        "spark.driver.memory": "4g",
        "spark.executor.instances": "3",
        "spark.executor.cores": "1",
        "spark.executor.memory": "2g",
        "spark.driver.extraJavaOptions": "-Dx=1 -Dy=2",
        "spark.sql.shuffle.partitions": "16",
    }
    # The Service's ports are the ones the driver is told to use, and its name is the host.
    assert int(conf["spark.driver.port"]) == ports["driver-rpc"]
    assert int(conf["spark.blockManager.port"]) == ports["blockmanager"]
    assert conf["spark.driver.host"].split(".")[:2] == [svc["metadata"]["name"], svc["metadata"]["namespace"]]
    # Each setting once more under its own key (and the master).
    for k, v in conf.items():
        assert data[k.upper().replace(".", "_").replace("-", "_")] == v
    assert data["SPARK_MASTER"] == "k8s://https://kubernetes.default.svc"


def test_notebook_selector_master_domain(h):
    svc, cm = render_both(h, "notebook", "alice", "--image", IMAGE, "--selector", "hub.jupyter.org/username=alice",
                          "--selector", "component=singleuser-server", "--master", "k8s://https://10.0.0.1:6443",
                          "--cluster-domain", "corp.example", *V)
    assert svc["spec"]["selector"] == {"hub.jupyter.org/username": "alice", "component": "singleuser-server"}
    assert cm["data"]["SPARK_DRIVER_HOST"] == "alice.default.svc.corp.example"
    assert shlex.split(cm["data"]["PYSPARK_SUBMIT_ARGS"])[1] == "k8s://https://10.0.0.1:6443"


def test_yaml_keeps_strings_strings(h):
    """Values a YAML loader would retype if they were written plain come back as the same
    strings, in PyYAML and (when installed) in kubectl's loader."""
    tricky = ["yes", "no", "on", "y", "n", "~", "null", "7078", "0o17", "1e3", "0x1F", "1:30", "2024-01-01",
              "", "a: b", "- x", "#x", "*x", "it's", "'q'", "line1\nline2"]
    args = ["app", "etl", "--application", "etl.py", "--image", IMAGE, *V]
    for i, t in enumerate(tricky):
        args += ["--arg", t, "--conf", f"spark.t{i}={t}"]
    (m,) = render_both(h, *args)
    assert m["spec"]["arguments"] == tricky
    assert list(m["spec"]["sparkConf"].values()) == tricky
    assert_valid(m)    # sparkConf values must be strings for the schema too

    if not shutil.which("kubectl"):
        return
    # kubectl reads YAML with sigs.k8s.io/yaml (go-yaml), where plain y/n are booleans
    # and 0o17 is a number: `kubectl label --local` parses and prints without a cluster.
    y = render(h, *args).stdout
    for doc in [y, render(h, "notebook", "nb", "--image", IMAGE, "--conf", "spark.x=y", *V).stdout]:
        k = subprocess.run(["kubectl", "label", "--local", "-f", "-", "nbhub-check=1", "-o", "json"], input=doc,
                           capture_output=True, text=True, timeout=60)
        assert k.returncode == 0, k.stderr
        got, dec, pos = [], json.JSONDecoder(), 0
        while pos < len(k.stdout.strip()):
            obj, end = dec.raw_decode(k.stdout, pos)
            obj["metadata"]["labels"].pop("nbhub-check")
            got.append(obj)
            pos = end
            while pos < len(k.stdout) and k.stdout[pos].isspace():
                pos += 1
        assert got == list(yaml.safe_load_all(doc))


def test_validator_rejects_broken_manifests(h):
    """The schema check can fail: broken versions of a valid manifest are refused."""
    (good,) = render_both(h, *APPS[0][1], *V)
    assert_valid(good)

    def broken(change):
        m = copy.deepcopy(good)
        change(m)
        return schema_errors(m)

    cases = {
        "executor cores 0": lambda m: m["spec"]["executor"].update(cores=0),
        "instances as a string": lambda m: m["spec"]["executor"].update(instances="4"),
        "unknown type": lambda m: m["spec"].update(type="Go"),
        "unknown mode": lambda m: m["spec"].update(mode="local"),
        "no mainApplicationFile": lambda m: m["spec"].pop("mainApplicationFile"),
        "no sparkVersion": lambda m: m["spec"].pop("sparkVersion"),
        "no driver": lambda m: m["spec"].pop("driver"),
        "misspelt field": lambda m: m["spec"]["driver"].update(memroy="1g"),
        "unknown spec field": lambda m: m["spec"].update(pyFiles=["a.py"]),
        "sparkConf value not a string": lambda m: m["spec"]["sparkConf"].update({"spark.x": 1}),
        "bad restartPolicy": lambda m: m["spec"]["restartPolicy"].update(type="Sometimes"),
        "negative retries": lambda m: m["spec"]["restartPolicy"].update(onFailureRetries=-1),
        "arguments not strings": lambda m: m["spec"].update(arguments=[1]),
        "no spec": lambda m: m.pop("spec"),
        "wrong apiVersion": lambda m: m.update(apiVersion="sparkoperator.k8s.io/v1beta1"),
        "bad name": lambda m: m["metadata"].update(name="My_Job"),
    }
    for label, change in cases.items():
        assert broken(change), f"the validator accepted a manifest with {label}"

    (sched,) = render_both(h, *SCHEDULED[0][1], *V)
    assert schema_errors({**sched, "spec": {k: v for k, v in sched["spec"].items() if k != "template"}})
    assert schema_errors({**sched, "spec": {**sched["spec"], "schedule": 5}})
    (conn,) = render_both(h, "connect", "sc", "--image", IMAGE, *V)
    assert schema_errors({**conn, "spec": {k: v for k, v in conn["spec"].items() if k != "server"}})
    assert schema_errors({**conn, "spec": {**conn["spec"], "executor": {"instances": -1}}})


BAD_VALUES = [
    (["app", "Bad_Name", "--application", "a.py"], "NAME 'Bad_Name': a Kubernetes name expected"),
    (["app", "etl", "--application", "a.py", "--executor-memory", "2gb"],
     "--executor-memory '2gb': a JVM size such as 512m or 2g expected"),
    (["app", "etl", "--application", "a.py", "--driver-memory", "2"], "--driver-memory '2'"),
    (["app", "etl", "--application", "a.py", "--executor-cores", "0"], "--executor-cores '0': a whole number of at least 1"),
    (["app", "etl", "--application", "a.py", "--namespace", "Team"], "--namespace 'Team'"),
    (["app", "etl", "--application", "run.sh"], "--application 'run.sh': a .py, .jar or .R file expected"),
    (["app", "etl", "--application", "a.jar"], "--main-class is required"),
    (["app", "etl", "--application", "a.py", "--conf", "spark.executor.memory=2g"], "use --executor-memory"),
    (["app", "etl", "--application", "a.py", "--schedule", "0 0 * * 7"], "day-of-week 7"),
    (["app", "etl", "--application", "a.py", "--schedule", "61 * * * *"], "--schedule '61 * * * *'"),
    (["app", "etl", "--application", "a.py", "--schedule", "@daily", "--time-zone", "Mars/Olympus"],
     "--time-zone 'Mars/Olympus'"),
    (["app", "a" * 44, "--application", "a.py", "--schedule", "@daily"], "is longer than 43 characters"),
    (["notebook", "nb", "--selector", "a=b c"], "--selector 'a=b c'"),
    (["notebook", "nb", "--master", "spark://h:7077"], "--master 'spark://h:7077'"),
    (["notebook", "nb", "--conf", "spark.driver.port=1"], "the Service names port 7078"),
    (["connect", "c" * 57], "is longer than 56 characters"),
    (["connect", "sc", "--image-pull-policy", "sometimes"], "--image-pull-policy 'sometimes'"),
]


@pytest.mark.parametrize("args,msg", BAD_VALUES, ids=[f"{a[0]}:{m[:30]}" for a, m in BAD_VALUES])
def test_bad_values_exit_3(h, args, msg):
    r = render(h, *args, "--image", IMAGE, *V, expect=3)
    assert msg in r.stderr and r.stderr.startswith("nbhub: "), r
    assert r.stdout == ""


USAGE = [
    [],
    ["deploy", "x"],
    ["app", "--application", "a.py", "--image", IMAGE],                  # no NAME
    ["app", "a", "b", "--application", "a.py", "--image", IMAGE],        # two NAMEs
    ["app", "etl", "--image", IMAGE],                                    # no --application
    ["notebook", "nb"],                                                  # no --image
    ["notebook", "nb", "--image", IMAGE, "--application", "a.py"],       # not for notebooks
    ["connect", "sc", "--image", IMAGE, "--schedule", "@daily"],         # not for connect
    ["app", "etl", "--application", "a.py", "--image", IMAGE, "--bogus"],
    ["app", "etl", "--application", "a.py", "--image"],                  # no value
]


@pytest.mark.parametrize("args", USAGE, ids=[" ".join(a)[:40] or "nothing" for a in USAGE])
def test_usage_errors_exit_2(h, args):
    r = render(h, *args, expect=2)
    assert r.stderr and r.stdout == "", r


def test_help(h):
    r = render(h, "help")
    assert r.stdout.startswith("usage: nbhub spark render-k8s app NAME") and "Exit codes:" in r.stdout
    r = h.run(["spark", "--help"])
    assert r.rc == 0 and "render-k8s" in r.stdout


def test_default_spark_version_is_the_local_pysparks(h):
    pyspark = pytest.importorskip("pyspark")
    r = render(h, "app", "etl", "--application", "a.py", "--image", f"apache/spark:{pyspark.__version__}", "--json")
    assert json.loads(r.stdout)["spec"]["sparkVersion"] == pyspark.__version__
    assert r.stderr == ""
    # An image tagged with another version is worth a warning (not an error).
    r = render(h, "notebook", "nb", "--image", "apache/spark:3.5.1", "--json")
    assert json.loads(r.stdout)["items"][1]["data"]["SPARK_KUBERNETES_CONTAINER_IMAGE"] == "apache/spark:3.5.1"
    assert "warning: --image apache/spark:3.5.1 is tagged 3.5.1" in r.stderr
    assert "client mode" in r.stderr
    # No local Spark and no --spark-version: exit 4, saying what to pass.
    r = render(h, "app", "etl", "--application", "a.py", "--image", IMAGE, "--spark-home", str(h.tmp), expect=4)
    assert "--spark-version" in r.stderr and r.stdout == ""


def test_crd_copies_are_the_operators():
    """The test data is what SOURCE.md says it is (a copy, not an edited schema)."""
    names = sorted(p.name for p in CRD_DIR.glob("*.yaml"))
    assert names == ["sparkoperator.k8s.io_scheduledsparkapplications.yaml",
                     "sparkoperator.k8s.io_sparkapplications.yaml", "sparkoperator.k8s.io_sparkconnects.yaml"]
    assert "kubeflow/spark-operator" in (CRD_DIR / "SOURCE.md").read_text()
    assert set(CRDS) == {("sparkoperator.k8s.io/v1beta2", "SparkApplication"),
                         ("sparkoperator.k8s.io/v1beta2", "ScheduledSparkApplication"),
                         ("sparkoperator.k8s.io/v1alpha1", "SparkConnect")}


FLOW = """\
schedule: "0 5 * * *"
timezone: Europe/Berlin
params: {day: today}
tasks:
  prepare:
    command: "echo hi"
  etl_job:
    after: [prepare]
    retries: 2
    retry_delay: 1m
    spark: {workers: 3, worker_cores: 2, worker_memory: 2g, conf: {spark.sql.shuffle.partitions: "64"}}
    spark_submit:
      application: jobs/etl.py
      args: ["{{ params.day }}", "--full"]
      py_files: [lib/helpers.py]
      conf: {spark.executor.memory: 3g}
  report:
    after: [etl_job]
    notebook: report.ipynb
    spark: {workers: 2, worker_memory: 1g}
  ask:
    notebook: ask.ipynb
    spark: {connect: true}
"""


def test_flow_renders_its_spark_tasks(h, tmp_path):
    """render-k8s flow FILE: each Spark task of a flow as the operator's
    manifests, valid against the CRDs, and what does not carry over said."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "etl.py").write_text("print(1)\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.py").write_text("")
    for nb in ("report.ipynb", "ask.ipynb"):
        (tmp_path / nb).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    f = tmp_path / "nightly.yaml"
    f.write_text(FLOW)
    docs = render_both(h, "flow", str(f), "--image", IMAGE, "--namespace", "team-a", *V)
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds == [("ScheduledSparkApplication", "nightly-etl-job"), ("Service", "nightly-report"),
                     ("ConfigMap", "nightly-report-spark"), ("SparkConnect", "nightly-connect")], kinds
    for d in docs:
        if d["apiVersion"].startswith("sparkoperator"):
            assert_valid(d)
    app = docs[0]["spec"]
    assert docs[0]["spec"]["schedule"] == "0 5 * * *" and docs[0]["spec"]["timeZone"] == "Europe/Berlin"
    t = app["template"]
    assert t["mainApplicationFile"] == "local:///opt/spark/work-dir/jobs/etl.py"
    assert t["arguments"] == ["{{ params.day }}", "--full"]
    assert t["deps"]["pyFiles"] == ["local:///opt/spark/work-dir/lib/helpers.py"]
    # The ephemeral cluster's workers are the executors; the task's conf
    # sets the executor memory as the option, the rest stays conf.
    assert t["executor"] == {"instances": 3, "cores": 2, "memory": "3g"}, t["executor"]
    assert t["sparkConf"] == {"spark.sql.shuffle.partitions": "64"}, t["sparkConf"]
    assert t["restartPolicy"]["type"] == "OnFailure" and t["restartPolicy"]["onFailureRetries"] == 2
    assert t["restartPolicy"]["onFailureRetryInterval"] == 60
    cm = docs[2]["data"]
    assert "--conf spark.executor.instances=2" in cm["PYSPARK_SUBMIT_ARGS"], cm
    r = render(h, "flow", str(f), "--image", IMAGE, *V)
    for said in ("task prepare has no Spark", "argument '{{ params.day }}' is a template",
                 "the order of the tasks (after) is nbhub's"):
        assert said in r.stderr, r.stderr


def test_flow_errors(h, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("tasks:\n  a:\n    command: 'true'\n    retries: lots\n")
    r = render(h, "flow", str(f), "--image", IMAGE, *V, expect=3)
    assert f"{f}:4:" in r.stderr, r.stderr
    f.write_text("tasks:\n  a: {command: 'true'}\n")
    r = render(h, "flow", str(f), "--image", IMAGE, *V, expect=3)
    assert "has no Spark task" in r.stderr, r.stderr
    r = render(h, "flow", str(tmp_path / "nope.yaml"), "--image", IMAGE, *V, expect=3)
    assert "nope.yaml" in r.stderr, r.stderr
    r = render(h, "flow", str(f), "--image", IMAGE, "--selector", "a=b", *V, expect=2)
    assert "--selector does not apply" in r.stderr, r.stderr
