"""Run configurations: a `<name>.runconfig` file (YAML or legacy JSON, PascalCase keys) <-> a frozen
RunConfiguration, with Workbench's defaults for absent or null keys."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .files import _load_config, _plain, _render, _same
from .values import (
    Parser,
    _as_bool,
    _as_environment,
    _as_framework,
    _as_mapping,
    _as_megabytes,
    _as_str,
    _as_str_list,
    _as_substitutions,
    _error_factory,
    unknown_key_warnings,
)

log = logging.getLogger(__name__)

DEFAULT_CONDA_FILE = "aml_config/conda_dependencies.yml"
DEFAULT_SPARK_FILE = "aml_config/spark_dependencies.yml"


@dataclass(frozen=True)
class _RcKey:
    keys: tuple[str, ...]  # spellings, the current one first (legacy JSON files used the others)
    field: str
    parse: Parser
    written_new: bool = False  # always written into new files (as `attach` did)


_RC_KEYS: tuple[_RcKey, ...] = (
    _RcKey(("ArgumentVector",), "argument_vector", _as_str_list, True),
    _RcKey(("Target",), "target", _as_str, True),
    _RcKey(("EnvironmentVariables",), "environment_variables", _as_environment, True),
    _RcKey(("Framework",), "framework", _as_framework, True),
    _RcKey(("CondaDependenciesFile", "CondaFile"), "conda_dependencies_file", _as_str, True),
    _RcKey(("SparkDependenciesFile",), "spark_dependencies_file", _as_str, True),
    _RcKey(("PrepareEnvironment",), "prepare_environment", _as_bool, True),
    _RcKey(("TrackedRun",), "tracked_run", _as_bool, True),
    _RcKey(("UseSampling",), "use_sampling", _as_bool),
    _RcKey(("DataSourceSettings",), "data_source_settings", _as_mapping),
    _RcKey(("DataSourceSubstitutions",), "data_source_substitutions", _as_substitutions),
    _RcKey(("Description",), "description", _as_str),
    _RcKey(("ManagedEnvironment",), "managed_environment", _as_bool),
    _RcKey(("MaxSnapshotSizeMB",), "max_snapshot_mb", _as_megabytes),
    _RcKey(("MaxOutputFileSizeMB",), "max_output_file_mb", _as_megabytes),
)
RUNCONFIG_KEY_NAMES = tuple(k for spec in _RC_KEYS for k in spec.keys)


@dataclass(frozen=True)
class RunConfiguration:
    """A `<name>.runconfig` file, parsed, with Workbench defaults applied to absent/null keys."""

    name: str
    target: str
    argument_vector: tuple[str, ...] = ("$file",)
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    framework: str = "PySpark"  # Workbench's default when absent; "Python" | "PySpark"
    conda_dependencies_file: str = DEFAULT_CONDA_FILE
    spark_dependencies_file: str = DEFAULT_SPARK_FILE
    prepare_environment: bool = True
    tracked_run: bool = True
    use_sampling: bool = True
    data_source_settings: Mapping[str, object] = field(default_factory=dict)
    data_source_substitutions: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    # --- ours ---
    max_snapshot_mb: float = 25.0  # `MaxSnapshotSizeMB`
    max_output_file_mb: float = 512.0  # `MaxOutputFileSizeMB`
    source_format: str = "yaml"  # "yaml" | "json" (legacy); written back in the same form
    extra: Mapping[str, object] = field(default_factory=dict)
    # legacy JSON `ManagedEnvironment` (None: not said; false = the user manages the environment)
    managed_environment: bool | None = None
    # the mapping as read: an unchanged value is written back in the file's own spelling
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)
    # what is odd but not wrong in the file (unknown keys, with the closest known one); also logged
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def load(cls, path: Path, *, quiet: bool = False) -> RunConfiguration:
        """Parse a .runconfig (YAML or legacy JSON); ConfigError naming file, line, key and value.
        Warnings (unknown keys) are in `warnings`, and logged unless `quiet`."""
        data, lines, form = _load_config(path, "run configuration")
        return cls.from_mapping(path.stem, data, path=path, lines=lines, source_format=form, quiet=quiet)

    @classmethod
    def from_mapping(
        cls,
        name: str,
        data: Mapping[str, object],
        *,
        path: Path | None = None,
        lines: Mapping[str, int] | None = None,
        source_format: str = "yaml",
        quiet: bool = False,
    ) -> RunConfiguration:
        """Build from a .runconfig mapping; absent or null keys take Workbench's defaults.

        An unknown key is kept in `extra` and named in `warnings` (logged unless `quiet`).
        """
        lines = lines or {}
        raw = {str(k): v for k, v in data.items()}
        rest = dict(raw)
        values: dict[str, Any] = {"name": name, "source_format": source_format, "raw": raw}
        for spec in _RC_KEYS:
            found = [(k, rest.pop(k)) for k in spec.keys if k in rest]
            for key, value in found:  # the current spelling wins over a legacy one
                if value is not None:
                    values[spec.field] = spec.parse(value, _error_factory(path, key, lines))
                    break
        if "target" not in values:
            from .sdk_layout import looks_like_sdk, sdk_hint  # only a file without Target needs it

            hint = sdk_hint(raw) if looks_like_sdk(raw) else ""
            raise _error_factory(path, "Target", lines)(
                "missing. Name the compute target (a .compute file in aml_config/) this runs on, "
                f"e.g. Target: local.{hint}"
            )
        values["extra"] = rest
        values["warnings"] = unknown_key_warnings(rest, RUNCONFIG_KEY_NAMES, path)
        for warning in () if quiet else values["warnings"]:
            log.warning("%s", warning)
        return cls(**values)

    def to_mapping(self) -> dict[str, object]:
        """The file's keys: those read (own spelling when unchanged), plus non-defaults; a new
        configuration gets the keys `attach` wrote."""
        raw = self.raw
        defaults = _DEFAULT_RUNCONFIG
        doc: dict[str, object] = {}
        for spec in _RC_KEYS:
            value = getattr(self, spec.field)
            default = getattr(defaults, spec.field)
            present = [k for k in spec.keys if k in raw]
            if present:
                for key in present:
                    same = _same(raw[key], value, spec.parse, default)
                    doc[key] = raw[key] if same else self._file_value(spec, value)
            elif spec.written_new and not raw or value != default:
                doc[spec.keys[0]] = self._file_value(spec, value)
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        if raw:  # keep the file's key order (JSON is written in it; YAML is sorted anyway)
            order = {k: i for i, k in enumerate(raw)}
            doc = dict(sorted(doc.items(), key=lambda kv: order.get(kv[0], len(order))))
        return doc

    @staticmethod
    def _file_value(spec: _RcKey, value: object) -> object:
        if spec.field == "environment_variables":
            return dict(value) or None  # type: ignore[call-overload]
        return _plain(value)

    def to_text(self) -> str:
        """YAML in Workbench's PascalCase form, or JSON when the file was JSON (Sept-2017 builds)."""
        return _render(self.to_mapping(), self.source_format, what="run configuration")

    def validated(self) -> RunConfiguration:
        """This configuration as it would load back from its file: ConfigError naming a bad value."""
        again = RunConfiguration.from_mapping(
            self.name, self.to_mapping(), source_format=self.source_format, quiet=True
        )
        return replace(again, raw=self.raw, warnings=self.warnings)


_DEFAULT_RUNCONFIG = RunConfiguration(name="", target="")
RUNCONFIG_FIELDS = tuple(
    f.name
    for f in fields(RunConfiguration)
    if f.name not in ("name", "target", "raw", "source_format", "warnings")
)
