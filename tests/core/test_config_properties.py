"""Property-based tests of every parser of user input in the configuration layer: whatever a user
writes into aml_config/ or passes as NAME=VALUE either works or is refused with one of our errors
(with a message); never another exception, never a partial or half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from jupyter_amlexec.core.api import parse_env_assignments
from jupyter_amlexec.core.conda_pip import conda_as_pip
from jupyter_amlexec.core.environment import (
    environment_from,
    load_environment,
    normalised_spark,
    spark_submit_args,
)
from jupyter_amlexec.core.errors import AmlExecError
from jupyter_amlexec.core.project import TARGET_SETTINGS, ComputeTarget, Project, RunConfiguration
from jupyter_amlexec.core.project.runconfigs import RUNCONFIG_KEY_NAMES
from jupyter_amlexec.core.project.targets import COMPUTE_KEY_NAMES

pytestmark = pytest.mark.usefixtures("isolated")
# AMLEXEC_PROPERTY_EXAMPLES=2000 for a deeper hunt than the suite's default
EXAMPLES = int(os.environ.get("AMLEXEC_PROPERTY_EXAMPLES", "150"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- what users write ----------------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # YAML/JSON hold no lone surrogates
# what a CLI argument can hold: argv bytes that are not UTF-8 arrive as lone surrogates (surrogateescape)
arg_text = st.text(st.characters(), max_size=12)
names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,10}\Z") | arg_text
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), text)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


# values a user plausibly writes (so the success paths run too), mixed with anything at all
plausible = st.sampled_from(
    [True, False, "true", "no", 2, 0.5, "2", "512m", "4g", "all", "0,1", "host", "cluster", "client",
     "python3", "img:1", "vm.example.net:2222", "[::1]:22", "MY_PASS", "local", "docker", "Python",
     "PySpark", "python", ["$file", "--lr", 0.1], ["/data:/data:ro"], {"A": "1", "B": 2}, None]
)  # fmt: skip


def documents(
    known: tuple[str, ...], required: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings whose keys are mostly the file's known keys (so values get checked), some typos."""
    keys = st.sampled_from(known) | text | st.sampled_from(known).map(lambda k: k[:-1])
    body = st.dictionaries(keys, plausible | plausible | values, max_size=6)
    if not required:
        return body
    return st.tuples(st.fixed_dictionaries(required), body).map(lambda pair: {**pair[0], **pair[1]}) | body


def render(doc: object, form: str) -> str:
    return json.dumps(doc) if form == "json" else yaml.safe_dump(doc, allow_unicode=True)


@contextmanager
def project_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def files_of(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_file_data(a: ComputeTarget | RunConfiguration, b: ComputeTarget | RunConfiguration) -> bool:
    """Equal, where a NaN kept among the unknown keys equals itself (as it does in the file)."""

    def text(m: object) -> str:
        return json.dumps(m, sort_keys=True, default=repr)

    unchanged = text(a.to_mapping()) == text(b.to_mapping())
    return unchanged and replace(a, extra={}) == replace(b, extra={})  # type: ignore[type-var]


def worked() -> None:
    event("worked")


def usable_by_a_process(obj: ComputeTarget | RunConfiguration) -> None:
    """What reaches argv, paths and environments holds no NUL (the OS refuses it, with a traceback)."""
    for name, value in vars(obj).items():
        if name in ("extra", "raw", "warnings", "data_source_settings"):
            continue  # kept or shown, never passed to a program
        texts = list(value) if isinstance(value, tuple) else [value]
        if isinstance(value, dict):
            texts = [*value, *value.values()]
        assert not any(isinstance(t, str) and "\x00" in t for t in texts), (name, value)
    if isinstance(obj, RunConfiguration):
        assert all(n and "=" not in n for n in obj.environment_variables)


def refused_with_a_message(exc: AmlExecError) -> None:
    event(f"refused: {type(exc).__name__}")
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


# --- .compute and .runconfig files ---------------------------------------------------------------------


@PROPERTY
@given(
    doc=documents(
        COMPUTE_KEY_NAMES, {"type": st.sampled_from(["local", "docker", "localdocker", "remote", "cluster"])}
    ),
    form=st.sampled_from(["yaml", "json"]),
)
def test_any_compute_file_loads_or_is_refused_and_what_loads_round_trips(
    doc: dict[str, Any], form: str
) -> None:
    with project_dir() as root:
        path = root / "aml_config" / "t.compute"
        path.parent.mkdir()
        path.write_text(render(doc, form), encoding="utf-8")
        try:
            target = ComputeTarget.load(path)
        except AmlExecError as exc:
            refused_with_a_message(exc)
            return
        worked()
        usable_by_a_process(target)
        # what loads is written back and reads the same, unknown keys included
        path.write_text(target.to_yaml(), encoding="utf-8")
        again = ComputeTarget.load(path)
        assert same_file_data(again, target)


@PROPERTY
@given(
    doc=documents(RUNCONFIG_KEY_NAMES + ("script", "target"), {"Target": st.sampled_from(["local", "gpu"])}),
    form=st.sampled_from(["yaml", "json"]),
)
def test_any_runconfig_loads_or_is_refused_and_what_loads_round_trips(doc: dict[str, Any], form: str) -> None:
    with project_dir() as root:
        path = root / "aml_config" / "r.runconfig"
        path.parent.mkdir()
        path.write_text(render(doc, form), encoding="utf-8")
        try:
            rc = RunConfiguration.load(path)
        except AmlExecError as exc:
            refused_with_a_message(exc)
            return
        worked()
        usable_by_a_process(rc)
        path.write_text(rc.to_text(), encoding="utf-8")
        assert same_file_data(RunConfiguration.load(path), rc)


@PROPERTY
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".compute", ".runconfig"]))
def test_any_bytes_in_a_config_file_load_or_are_refused(content: bytes, suffix: str) -> None:
    with project_dir() as root:
        path = root / "aml_config" / f"x{suffix}"
        path.parent.mkdir()
        path.write_bytes(content)
        loader = ComputeTarget.load if suffix == ".compute" else RunConfiguration.load
        try:
            loader(path)
        except AmlExecError as exc:
            refused_with_a_message(exc)
        # and a listing of that project never fails for it
        project = Project(root)
        assert {t.name for t in project.targets()} >= {"local", "docker"}
        assert {r.name for r in project.run_configurations()} >= {"local", "docker"}


# --- conda and spark files -----------------------------------------------------------------------------

conda_specs = st.from_regex(r"\A[a-z][a-z0-9_.-]{0,8}([ =<>!~|,*\[\]'.0-9a-z_:]{0,14})\Z") | text
dependencies = st.lists(
    conda_specs | st.dictionaries(st.sampled_from(["pip", "pipp"]), values, max_size=1) | scalars
)


@PROPERTY
@given(
    doc=documents(("name", "channels", "dependencies", "prefix", "variables"))
    | st.fixed_dictionaries({"dependencies": dependencies})
)
def test_any_conda_file_becomes_an_environment_or_is_refused(doc: dict[str, Any]) -> None:
    with project_dir() as root:
        project = Project(root)
        project.initialize()
        (root / "aml_config" / "conda_dependencies.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        try:
            spec = load_environment(project, project.run_configuration("docker"))
        except AmlExecError as exc:
            refused_with_a_message(exc)
            return
        worked()
        spec.content_hash()
        # an environment with packages came from a file that said `dependencies`
        assert spec.is_empty or "dependencies" in doc


@PROPERTY
@given(specs=st.lists(conda_specs, max_size=5))
def test_conda_specs_become_valid_pip_requirements_or_are_named(specs: list[str]) -> None:
    result = conda_as_pip(specs)
    for requirement in result.requirements:
        Requirement(requirement)  # pip's own parser accepts every line we would write
    assert set(result.conda_only) <= {s.strip() for s in specs}


@PROPERTY
@given(doc=documents(("configuration", "repositories", "packages")))
def test_any_spark_file_becomes_options_or_is_refused(doc: dict[str, Any]) -> None:
    try:
        spark = normalised_spark(doc)
    except AmlExecError as exc:
        refused_with_a_message(exc)
        return
    worked()
    args = spark_submit_args(spark)
    assert all(isinstance(a, str) for a in args)
    spec = environment_from(None, doc)
    assert spec.spark == spark


# --- NAME=VALUE options ------------------------------------------------------------------------------


@PROPERTY
@given(pairs=st.lists(arg_text | st.tuples(arg_text, arg_text).map("=".join), max_size=5))
def test_env_assignments_parse_or_are_refused(pairs: list[str]) -> None:
    try:
        env = parse_env_assignments(pairs)
    except AmlExecError as exc:
        refused_with_a_message(exc)
        return
    worked()
    assert all(name and "=" not in name for name in env)


@PROPERTY
@given(name=arg_text.filter(bool), value=arg_text)
def test_env_assignments_that_parse_can_reach_a_process(name: str, value: str) -> None:
    assume("=" not in name)
    try:
        env = parse_env_assignments([f"{name}\x00={value}"])
    except AmlExecError:
        return
    assert not any("\x00" in n or "\x00" in v for n, v in env.items())


# --- attach writes ---------------------------------------------------------------------------------------

# the keyword parameters of attach_target itself (a setting of that name is a Python call error)
NAMED_ARGUMENTS = (
    "name", "type", "address", "username", "key_file", "password_env", "base_docker_image", "python_location", "force",
)  # fmt: skip
setting_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(),
    arg_text,
    st.sampled_from(["2", "512m", "all", "host"]),
    st.lists(arg_text | st.sampled_from(["/data:/data", "vol:/x:ro"]), max_size=3),
)


@PROPERTY
@given(
    name=names,
    type=st.sampled_from(["local", "docker", "localdocker", "remotedocker", "remote", "cluster"]) | arg_text,
    address=st.none() | arg_text | st.sampled_from(["10.0.0.4", "vm.example.net:2222", "[::1]:22"]),
    username=st.none() | arg_text,
    settings_=st.dictionaries(
        (st.sampled_from(sorted(TARGET_SETTINGS)) | arg_text).filter(lambda k: k not in NAMED_ARGUMENTS),
        setting_values,
        max_size=3,
    ),
    initialized=st.booleans(),
)
def test_attach_writes_a_pair_that_loads_back_or_changes_nothing(
    name: str,
    type: str,
    address: str | None,
    username: str | None,
    settings_: dict[str, Any],
    initialized: bool,
) -> None:
    assume(name not in ("local", "docker"))
    with project_dir() as root:
        project = Project(root)
        if initialized:
            project.initialize()
        before = files_of(project.config_dir)
        try:
            target, rc = project.attach_target(name, type, address=address, username=username, **settings_)
        except AmlExecError as exc:
            refused_with_a_message(exc)
            assert files_of(project.config_dir) == before  # nothing written, nothing half-written
            assert project.config_dir.exists() == initialized
            return
        worked()
        usable_by_a_process(target)
        # what attach wrote is what the project reads back
        assert project.target(name) == target
        assert project.run_configuration(name) == rc
        assert not [p for p in project.config_dir.iterdir() if p.name.endswith(".tmp")]


@PROPERTY
@given(
    name=names,
    target=st.sampled_from(["local", "docker"]) | arg_text,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "argument_vector",
                "environment_variables",
                "framework",
                "prepare_environment",
                "conda_dependencies_file",
                "max_output_file_mb",
                "description",
                "data_source_settings",
            ]
        )
        | arg_text.filter(lambda k: k not in ("name", "target")),
        setting_values | st.dictionaries(arg_text, setting_values, max_size=2),
        max_size=3,
    ),  # fmt: skip
)
def test_create_run_configuration_writes_what_loads_back_or_changes_nothing(
    name: str, target: str, fields: dict[str, Any]
) -> None:
    assume(name not in ("local", "docker"))
    with project_dir() as root:
        project = Project(root)
        project.initialize()
        before = files_of(project.config_dir)
        try:
            rc = project.create_run_configuration(name, target, **fields)
        except AmlExecError as exc:
            refused_with_a_message(exc)
            assert files_of(project.config_dir) == before
            return
        worked()
        usable_by_a_process(rc)
        assert same_file_data(project.run_configuration(name), rc)
