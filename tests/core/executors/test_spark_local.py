"""PySpark on this machine (the `local` target with Framework: PySpark and sparkSubmitLocation), for
real through spark-submit; spark_dependencies.yml's `jars` and `pyFiles` (ours) with real local files;
`packages`/`repositories` (no repository but Maven Central is reachable here: the argv is proved)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.environment import normalised_spark, spark_submit_args
from jupyter_amlexec.core.errors import ConfigError
from tests.core.executors.spark_fixtures import setting

HELLO_JAVA = """\
public class Hello {
    public static String greet(String name) { return "hello " + name + " from a local jar"; }
}
"""

JOB = """\
import sys, amlexec_run
from pyspark.sql import SparkSession
import helper
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("marker:", spark.conf.get("spark.amlexec.marker"), "master:", sc.master, flush=True)
print(sc._jvm.Hello.greet("amlexec"), flush=True)
print("executors:", sc.parallelize(range(4), 2).map(lambda x: __import__("helper").double(x)).collect(), flush=True)
amlexec_run.log("doubled", helper.double(21))
"""


def _jar(project: Path) -> None:
    """lib/hello.jar, compiled here with the JDK the Spark infrastructure uses."""
    java_home = Path(setting("JAVA_HOME"))
    build = project.parent / "javabuild"
    build.mkdir()
    (build / "Hello.java").write_text(HELLO_JAVA)
    subprocess.run(
        [str(java_home / "bin" / "javac"), "-d", str(build), str(build / "Hello.java")], check=True
    )
    (project / "lib").mkdir()
    subprocess.run(
        [
            str(java_home / "bin" / "jar"),
            "cf",
            str(project / "lib" / "hello.jar"),
            "-C",
            str(build),
            "Hello.class",
        ],
        check=True,
    )


def test_local_pyspark_run_with_local_jars_and_py_files(project: Path, home: Path) -> None:
    # Given a local target whose spark-submit is pyspark's, and a spark file naming a jar and a zip
    _jar(project)
    with zipfile.ZipFile(project / "lib" / "helpers.zip", "w") as z:
        z.writestr("helper.py", "def double(x):\n    return 2 * x\n")
    config = project / "aml_config"
    config.mkdir()
    (config / "sparklocal.compute").write_text(
        yaml.safe_dump(
            {
                "type": "local",
                "pythonLocation": setting("AMLEXEC_TEST_SPARK_PYTHON"),
                "sparkSubmitLocation": setting("AMLEXEC_TEST_SPARK_SUBMIT"),
                "sparkMaster": "local[2]",
            }
        )
    )
    (config / "sparklocal.runconfig").write_text(
        yaml.safe_dump(
            {
                "Target": "sparklocal",
                "Framework": "PySpark",
                "EnvironmentVariables": {"SPARK_LOCAL_IP": "127.0.0.1"},
            }
        )
    )
    (config / "spark_dependencies.yml").write_text(
        yaml.safe_dump(
            {
                "configuration": {"spark.amlexec.marker": "local-marker", "spark.ui.enabled": False},
                "jars": ["lib/hello.jar"],
                "pyFiles": ["lib/helpers.zip"],
            }
        )
    )
    (project / "job.py").write_text(JOB)
    session = Session.open(project, home)
    # When the script is submitted to it
    run = session.submit(script="job.py", run_configuration="sparklocal").wait()
    # Then spark-submit ran it with the spark file's conf, the jar's class and the zip's module
    log = run.logs()
    assert "marker: local-marker master: local[2]" in log
    assert "hello amlexec from a local jar" in log
    assert "executors: [0, 2, 4, 6]" in log
    assert run.metrics == {"doubled": 42}


def test_packages_and_repositories_become_spark_submit_options(tmp_path: Path) -> None:
    # Given a Workbench spark file with Maven packages and a repository (ours: jars, pyFiles)
    spark = {
        "configuration": {"spark.app.name": "Iris", "spark.yarn.maxAppAttempts": 1},
        "repositories": ["https://maven.example.net/maven"],
        "packages": [{"group": "com.microsoft.ml.spark", "artifact": "mmlspark_2.11", "version": "0.7.91"}],
        "jars": ["lib/a.jar"],
        "pyFiles": ["lib/b.zip", "c.py"],
    }
    # Then spark-submit gets exactly these options
    assert spark_submit_args(normalised_spark(spark)) == [
        "--conf",
        "spark.app.name=Iris",
        "--conf",
        "spark.yarn.maxAppAttempts=1",
        "--packages",
        "com.microsoft.ml.spark:mmlspark_2.11:0.7.91",
        "--repositories",
        "https://maven.example.net/maven",
        "--jars",
        "lib/a.jar",
        "--py-files",
        "lib/b.zip,c.py",
    ]


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("jars", "lib/a.jar", "allowed: a list of jar files"),
        ("pyFiles", ["a,b.zip"], "separates .py, .zip or .egg files with commas"),
        ("jars", ["../outside.jar"], "leaves the project"),
    ],
)
def test_bad_jars_or_py_files_name_the_file_and_key(
    key: str, value: object, says: str, tmp_path: Path
) -> None:
    where = tmp_path / "aml_config" / "spark_dependencies.yml"
    with pytest.raises(ConfigError) as err:
        normalised_spark({key: value}, path=where)
    assert says in str(err.value) and key in str(err.value) and "spark_dependencies.yml" in str(err.value)


def test_the_iris_spark_file_of_workbench_round_trips_unchanged() -> None:
    # A spark file without our keys keeps its normalised form (and so its environment hash)
    doc = normalised_spark({"configuration": {"spark.app.name": "x"}})
    assert set(doc) == {"configuration", "packages", "repositories"}
