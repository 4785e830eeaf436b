"""The later azureml-sdk (2018+) run configuration layout (`script:`, `target:`, `environment:` ...):
recognised, and answered with the Workbench file that means the same, since only Workbench's layout
is read (a mixed file would be read half right)."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

SDK_KEYS = ("script", "target", "framework", "arguments", "environment", "history", "autoPrepareEnvironment")
_PYTHON_LIKE = ("python", "tensorflow", "pytorch", "cntk")  # the SDK ran these as a Python process


def looks_like_sdk(raw: Mapping[str, object]) -> bool:
    """camelCase SDK keys and no Workbench `Target`: the notes' detection rule (workbench-formats §10)."""
    return "Target" not in raw and any(k in raw for k in SDK_KEYS)


def _get(raw: Mapping[str, object], *path: str) -> object:
    node: object = raw
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def workbench_equivalent(raw: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """(the Workbench keys an SDK run configuration translates to, what has no place in them)."""
    doc: dict[str, object] = {}
    elsewhere: list[str] = []
    script, arguments = raw.get("script"), raw.get("arguments")
    if script is not None or arguments:
        args = arguments if isinstance(arguments, list) else []
        doc["ArgumentVector"] = [str(script) if script is not None else "$file", *map(str, args)]
    if raw.get("target") is not None:
        doc["Target"] = str(raw["target"])
    framework = str(raw.get("framework") or "python").lower()
    doc["Framework"] = "PySpark" if framework == "pyspark" else "Python"
    if framework not in (*_PYTHON_LIKE, "pyspark"):
        elsewhere.append(f"framework {raw.get('framework')!r} (only Python and PySpark run here)")
    env = _get(raw, "environment", "environmentVariables")
    if isinstance(env, Mapping) and env:
        doc["EnvironmentVariables"] = {str(k): v for k, v in env.items()}
    conda = _get(raw, "environment", "python", "condaDependenciesFile")
    if conda is not None:
        doc["CondaDependenciesFile"] = str(conda)
    if raw.get("autoPrepareEnvironment") is not None:
        doc["PrepareEnvironment"] = raw["autoPrepareEnvironment"]
    image = _get(raw, "environment", "docker", "baseImage")
    if image is not None:
        elsewhere.append(
            f"environment.docker.baseImage {image!r} -> baseDockerImage in the target's .compute file"
        )
    spark = _get(raw, "spark", "configuration")
    if isinstance(spark, Mapping) and spark:
        elsewhere.append("spark.configuration -> configuration in aml_config/spark_dependencies.yml")
    return doc, elsewhere


def sdk_hint(raw: Mapping[str, object]) -> str:
    """The sentence a ConfigError about an SDK-layout file ends with: what to write instead."""
    doc, elsewhere = workbench_equivalent(raw)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=True, width=10_000).strip()
    moved = f" Move: {'; '.join(elsewhere)}." if elsewhere else ""
    return (
        " This looks like an azureml-sdk (2018+) run configuration (camelCase keys), not a Workbench one,"
        f" and that layout is not read here. The Workbench keys meaning the same: {text}.{moved}"
    )
