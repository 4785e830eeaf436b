"""Shared pieces of the Spark target's tests: the cluster of scripts/infra/spark.sh reached through
the sshd "head node" of scripts/infra/sshd.sh, a Workbench-shaped Iris project, and looks at the
standalone master and the YARN ResourceManager as a user would take them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from jupyter_amlexec.core.api import Session
from tests.core.transport.conftest import SshHosts
from tests.infra.test_spark_infra import get_json, setting, wait_until

__all__ = ["get_json", "setting", "wait_until"]

HEAD_PYTHON = "/usr/bin/python3"  # the head node's own Python (the SSH user cannot run root's pyenv)
EXTRA_PACKAGE = "tabulate"  # an extra pip package of the conda file, not in the head node's Python

IRIS_JOB = """\
import os, sys
import amlexec_run
from pyspark.sql import SparkSession
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator

spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("marker from the spark file:", spark.conf.get("spark.amlexec.marker"), flush=True)
print("application id:", sc.applicationId, flush=True)
reg = float(sys.argv[1]) if len(sys.argv) > 1 else 0.01
amlexec_run.log("Regularization Rate", reg)
df = spark.read.csv("file://" + os.path.abspath("iris.csv"), header=True, inferSchema=True)
features = VectorAssembler(inputCols=["sepal_length", "sepal_width", "petal_length", "petal_width"],
                           outputCol="features").transform(df)
data = StringIndexer(inputCol="species", outputCol="label").fit(features).transform(features)
model = LogisticRegression(regParam=reg, maxIter=20).fit(data)
accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(data))
amlexec_run.log("Accuracy", accuracy)
versions = sc.parallelize(range(2), 2).map(lambda _: __import__("tabulate").__version__).collect()
print("executors import tabulate", versions, flush=True)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write("accuracy %.3f\\n" % accuracy)
spark.stop()
"""

FAILING_JOB = """\
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
rows = spark.range(5).count()
print("counted", rows, flush=True)
raise ValueError("the model would not converge: %d rows" % rows)
"""

# Keeps calling into Spark, so it ends as soon as its application is killed.
LONG_JOB = """\
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("LONG STARTED", spark.sparkContext.applicationId, flush=True)
for i in range(1200):
    spark.range(10).count()
    if i % 4 == 0:
        print("tick", i, flush=True)
    time.sleep(0.5)
"""


def write_iris(path: Path, rows: int = 150) -> None:
    """An Iris-shaped CSV: three species, four measurements, separable enough to learn."""
    rng = random.Random(7)
    centres = {
        "setosa": (5.0, 3.4, 1.5, 0.2),
        "versicolor": (5.9, 2.8, 4.3, 1.3),
        "virginica": (6.6, 3.0, 5.6, 2.0),
    }
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    for i in range(rows):
        species = list(centres)[i % 3]
        values = [round(c + rng.gauss(0, 0.2), 2) for c in centres[species]]
        lines.append(",".join(map(str, values)) + "," + species)
    path.write_text("\n".join(lines) + "\n")


def spark_file(master_kind: str, **extra: object) -> dict[str, object]:
    """spark_dependencies.yml: small resources for this 2-core machine, and a marker to read back."""
    configuration: dict[str, object] = {
        "spark.amlexec.marker": "from-spark-dependencies",
        "spark.driver.memory": "512m",
        "spark.executor.memory": "512m",
        "spark.ui.enabled": False,
        "spark.ui.showConsoleProgress": False,
        "spark.sql.shuffle.partitions": 2,
    }
    if master_kind == "standalone":
        configuration["spark.cores.max"] = 1
    if master_kind == "yarn":
        configuration["spark.executor.instances"] = 1
    return {"configuration": configuration, **extra}


def cluster_project(
    project: Path,
    hosts: SshHosts,
    *,
    name: str,
    master: str,
    deploy_mode: str = "client",
    pip: tuple[str, ...] = ("numpy", EXTRA_PACKAGE),
    spark: dict[str, object] | None = None,
) -> Session:
    """A project with aml_config/<name>.compute (type: cluster) on the first test host."""
    host, port = hosts.hosts[0]
    config = project / "aml_config"
    config.mkdir(exist_ok=True)
    compute: dict[str, object] = {
        "type": "cluster",
        "address": f"{host}:{port}",
        "username": hosts.user,
        "privateKeyFile": str(hosts.key),
        "sparkMaster": master,
        "yarnDeployMode": deploy_mode,
        "sparkSubmitLocation": setting("AMLEXEC_TEST_SPARK_SUBMIT"),
        "pythonLocation": HEAD_PYTHON,
    }
    if master == "yarn":
        compute["hadoopConfDir"] = setting("AMLEXEC_TEST_HADOOP_CONF_DIR")
        compute["yarnLocation"] = setting("AMLEXEC_TEST_YARN")
    (config / f"{name}.compute").write_text(yaml.safe_dump(compute))
    kind = "yarn" if master == "yarn" else "standalone" if master.startswith("spark://") else "local"
    rc = {
        "ArgumentVector": ["$file"],
        "Target": name,
        "Framework": "PySpark",
        "EnvironmentVariables": {"SPARK_LOCAL_IP": "127.0.0.1"},
        "CondaDependenciesFile": f"aml_config/{name}_conda.yml",
        "SparkDependenciesFile": f"aml_config/{name}_spark.yml",
        "PrepareEnvironment": True,
    }
    (config / f"{name}.runconfig").write_text(yaml.safe_dump(rc))
    conda = {"name": "project_environment", "dependencies": ["python=3.11", {"pip": list(pip)}]}
    (config / f"{name}_conda.yml").write_text(yaml.safe_dump(conda))
    (config / f"{name}_spark.yml").write_text(yaml.safe_dump(spark or spark_file(kind)))
    write_iris(project / "iris.csv")
    (project / "iris_spark.py").write_text(IRIS_JOB)
    (project / "fail_spark.py").write_text(FAILING_JOB)
    (project / "long_spark.py").write_text(LONG_JOB)
    return Session.open(project, project.parent / "amlexec-home")


def yarn_app(app_id: str) -> dict[str, Any]:
    app: dict[str, Any] = get_json(f"{setting('AMLEXEC_TEST_YARN_RM_URL')}/ws/v1/cluster/apps/{app_id}")[
        "app"
    ]
    return app


def master_state() -> dict[str, Any]:
    state: dict[str, Any] = get_json(setting("AMLEXEC_TEST_SPARK_MASTER_WEBUI") + "/json/")
    return state
