"""The Project: finding the folder that holds aml_config/, listing, reading and writing its files."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..config_files import ConfigWriteError, write_atomic
from ..errors import AmlExecError, ConfigError, Hint, TargetNotFoundError
from .dependencies import conda_key_warnings, spark_key_warnings
from .files import _load_config, _plain
from .runconfigs import _RC_KEYS, DEFAULT_CONDA_FILE, DEFAULT_SPARK_FILE, RUNCONFIG_FIELDS, RunConfiguration
from .targets import BUILTIN_TARGETS, ComputeTarget, TargetType
from .templates import _builtin_mapping, _template_files
from .values import TARGET_NAME, _as_str, _check_name, _error_factory

log = logging.getLogger(__name__)
_Loaded = TypeVar("_Loaded", ComputeTarget, RunConfiguration)


# --- project identity, and what a listing could not read ------------------------------------------


class ConfigProblem(NamedTuple):
    """A file of aml_config/ that a listing could not read ("error") or read with a "warning".

    A listing never fails for one bad file: it shows the others and names this one with its message.
    (A NamedTuple: immutable like the dataclasses, cheaper to define on every import.)
    """

    file: Path
    kind: str  # "compute target" | "run configuration" | "dependencies"
    severity: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ProjectSettings:
    """`.azureml/project.json` of a Workbench project: its id (GUID) and cloud scope, if any."""

    id: str | None = None  # `Id`
    scope: str | None = None  # `Scope`: /subscriptions/.../projects/<name>
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def project_name(self) -> str | None:
        """The Workbench project name, the last part of the scope."""
        if self.scope and "/projects/" in self.scope:
            return self.scope.rstrip("/").rsplit("/", 1)[-1]
        return None


class _RunConfigTargetMissing(TargetNotFoundError):
    """A run configuration names a compute target that has no file (and is not built in)."""

    def __init__(self, rc: RunConfiguration, path: Path | None, known: Sequence[str], project: Path) -> None:
        where = path if path is not None else f"built-in run configuration '{rc.name}'"
        hint = ", ".join(sorted(known))
        ConfigError.__init__(
            self,
            f"Run configuration '{rc.name}' ({where}, key 'Target') names compute target '{rc.target}', "
            f"which has no file in {project / 'aml_config'}. Known targets: {hint}. Attach it, or fix "
            f"Target.",
            file=path,
            key="Target",
        )
        self.hint = Hint("target.attach", (rc.target,))
        self.name = rc.target
        self.known = tuple(known)


# --- the project -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    """A folder holding aml_config/ (or, for a first run, the current folder with built-in defaults)."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_dir(self) -> Path:
        return self.root / "aml_config"

    @classmethod
    def find(cls, start: Path) -> Project:
        """Nearest folder at or above `start` holding aml_config/; else `start` itself."""
        start = Path(start).expanduser().resolve()
        if start.is_file():
            start = start.parent
        for folder in (start, *start.parents):
            if (folder / "aml_config").is_dir():
                return cls(folder)
        return cls(start)

    @property
    def settings(self) -> ProjectSettings:
        """The Workbench project identity from .azureml/project.json (empty when there is none)."""
        path = self.root / ".azureml" / "project.json"
        if not path.is_file():
            return ProjectSettings()
        data, lines, _form = _load_config(path, "project settings")
        rest = dict(data)
        identity = rest.pop("Id", None)
        scope = rest.pop("Scope", None)
        return ProjectSettings(
            id=None if identity is None else _as_str(identity, _error_factory(path, "Id", lines)),
            scope=None if scope is None else _as_str(scope, _error_factory(path, "Scope", lines)),
            extra=rest,
        )

    # --- reading --------------------------------------------------------------------------------

    def _builtin_target(self, name: str) -> ComputeTarget:
        """What initialize() would write, without writing it (zero set-up for a first run)."""
        return ComputeTarget.from_mapping(name, _builtin_mapping(f"{name}.compute"))

    def _builtin_run_configuration(self, name: str) -> RunConfiguration:
        rc = RunConfiguration.from_mapping(name, _builtin_mapping(f"{name}.runconfig"))
        return replace(rc, raw={})  # built in, not read from a file

    def _files(self, suffix: str) -> dict[str, Path]:
        if not self.config_dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.config_dir.glob(f"*{suffix}")) if p.is_file()}

    def target_names(self) -> list[str]:
        return sorted(set(self._files(".compute")) | set(BUILTIN_TARGETS))

    def targets(self) -> list[ComputeTarget]:
        """Every target that can be read: the .compute files, plus built-in local/docker when they have
        no file. A file that cannot be read is left out; `config_problems()` names it, and the
        warnings of those listed (a listing logs neither, so an adapter shows each once)."""
        return self._readable(self.target_names(), self._quiet_target)

    def _quiet_target(self, name: str) -> ComputeTarget:
        return self.target(name, quiet=True)

    def _readable(self, names: Sequence[str], load: Callable[[str], _Loaded]) -> list[_Loaded]:
        items = []
        for name in names:
            try:
                items.append(load(name))
            except AmlExecError as exc:
                log.info("left out of the listing (see Project.config_problems): %s", exc)
        return items

    def target(self, name: str, *, quiet: bool = False) -> ComputeTarget:
        """The target `name`; TargetNotFoundError listing the known ones. Its warnings are logged
        unless `quiet`."""
        path = self.config_dir / f"{name}.compute"
        if TARGET_NAME.match(name) and path.is_file():
            return ComputeTarget.load(path, quiet=quiet)
        if name in BUILTIN_TARGETS:
            return self._builtin_target(name)
        raise TargetNotFoundError(name, self.target_names(), self.root)

    def run_configuration_names(self) -> list[str]:
        return sorted(set(self._files(".runconfig")) | set(BUILTIN_TARGETS))

    def run_configurations(self) -> list[RunConfiguration]:
        """Every run configuration that can be read (files + built-ins); their targets are not checked.
        A file that cannot be read is left out; `config_problems()` names it (as for `targets()`)."""
        return self._readable(self.run_configuration_names(), self._unchecked_run_configuration)

    def _unchecked_run_configuration(self, name: str) -> RunConfiguration:
        return self.run_configuration(name, check_target=False, quiet=True)

    def config_problems(self) -> list[ConfigProblem]:
        """Every file of aml_config/ that cannot be read, and every warning of those that can
        (unknown keys), including the dependency files the run configurations use."""
        problems: list[ConfigProblem] = []
        dependencies: dict[Path, RunConfiguration] = {}
        for kind, suffix in (("compute target", ".compute"), ("run configuration", ".runconfig")):
            for path in self._files(suffix).values():
                try:
                    loaded = (
                        ComputeTarget.load(path, quiet=True)
                        if suffix == ".compute"
                        else RunConfiguration.load(path, quiet=True)
                    )
                except AmlExecError as exc:
                    problems.append(ConfigProblem(path, kind, "error", str(exc)))
                    continue
                problems += [ConfigProblem(path, kind, "warning", w) for w in loaded.warnings]
                if isinstance(loaded, RunConfiguration):
                    for relative in (loaded.conda_dependencies_file, loaded.spark_dependencies_file):
                        dependencies.setdefault(self.dependency_path(relative).resolve(), loaded)
        for dep_path, rc in dependencies.items():
            if not dep_path.is_file():
                continue  # named when that run configuration is used
            try:
                warnings = self._dependency_file_warnings(dep_path, rc)
            except AmlExecError as exc:
                problems.append(ConfigProblem(dep_path, "dependencies", "error", str(exc)))
                continue
            problems += [ConfigProblem(dep_path, "dependencies", "warning", w) for w in warnings]
        return problems

    def run_configuration_path(self, name: str) -> Path:
        return self.config_dir / f"{name}.runconfig"

    def run_configuration(
        self, name: str, *, check_target: bool = True, quiet: bool = False
    ) -> RunConfiguration:
        """The run configuration `name`; TargetNotFoundError if it, or (check_target) its Target, is unknown."""
        path = self.run_configuration_path(name)
        from_file = TARGET_NAME.match(name) is not None and path.is_file()
        if from_file:
            rc = RunConfiguration.load(path, quiet=quiet)
        elif name in BUILTIN_TARGETS:
            rc = self._builtin_run_configuration(name)
        else:
            raise TargetNotFoundError(
                name, self.run_configuration_names(), self.root, kind="run configuration"
            )
        if check_target and rc.target not in self.target_names():
            raise _RunConfigTargetMissing(rc, path if from_file else None, self.target_names(), self.root)
        return rc

    def dependency_path(self, relative: str) -> Path:
        """A runconfig's dependency file path (project-relative, Windows separators accepted)."""
        return self.root / relative.replace("\\", "/")

    def _dependencies(
        self, rc: RunConfiguration, relative: str, key: str, default: str
    ) -> tuple[dict[str, Any], Path] | None:
        path = self.dependency_path(relative)
        if not path.is_file():
            # A default implied by an absent/null key (built-ins, minimal files) means "nothing".
            said = any(rc.raw.get(k) is not None for spec in _RC_KEYS if key in spec.keys for k in spec.keys)
            if not said and relative == default:
                return None
            rc_path = self.run_configuration_path(rc.name)
            raise ConfigError(
                f"points at {relative}, which does not exist in {self.root}. Create it (the project's "
                f"init writes a template) or fix {key}.",
                file=rc_path if rc_path.is_file() else None,
                key=key,
                line=None,
            ).with_hint("project.init")
        data, _lines, _form = _load_config(path, "dependencies")
        return data, path

    def _dependency_file_warnings(self, path: Path, rc: RunConfiguration) -> tuple[str, ...]:
        data, _lines, _form = _load_config(path, "dependencies")
        resolved = path.resolve()
        if resolved == self.dependency_path(rc.spark_dependencies_file).resolve():
            return spark_key_warnings(data, path)
        return conda_key_warnings(data, path)

    def conda_dependencies(self, rc: RunConfiguration) -> dict[str, Any] | None:
        """conda_dependencies.yml of `rc`, parsed as is; None when a default-named file is absent.

        Unknown top-level keys are logged (`dependency_warnings` returns them); a file with unknown
        keys but no `dependencies` is a ConfigError naming the key (it would install nothing).
        """
        found = self._dependencies(
            rc, rc.conda_dependencies_file, "CondaDependenciesFile", DEFAULT_CONDA_FILE
        )
        if found is None:
            return None
        for warning in conda_key_warnings(*found):
            log.warning("%s", warning)
        return found[0]

    def spark_dependencies(self, rc: RunConfiguration) -> dict[str, Any] | None:
        """spark_dependencies.yml of `rc`, parsed as is; None when a default-named file is absent.
        Unknown top-level keys are logged (`dependency_warnings` returns them)."""
        found = self._dependencies(
            rc, rc.spark_dependencies_file, "SparkDependenciesFile", DEFAULT_SPARK_FILE
        )
        if found is None:
            return None
        for warning in spark_key_warnings(*found):
            log.warning("%s", warning)
        return found[0]

    def dependency_warnings(self, rc: RunConfiguration, *, spark: bool | None = None) -> tuple[str, ...]:
        """The unknown-key warnings of `rc`'s conda file (and spark file when `spark`, default: when
        Framework is PySpark), for an adapter to show before a run; ConfigError as conda_dependencies."""
        warnings: tuple[str, ...] = ()
        conda = self._dependencies(
            rc, rc.conda_dependencies_file, "CondaDependenciesFile", DEFAULT_CONDA_FILE
        )
        if conda is not None:
            warnings += conda_key_warnings(*conda)
        if rc.framework == "PySpark" if spark is None else spark:
            found = self._dependencies(
                rc, rc.spark_dependencies_file, "SparkDependenciesFile", DEFAULT_SPARK_FILE
            )
            if found is not None:
                warnings += spark_key_warnings(*found)
        return warnings

    # --- writing --------------------------------------------------------------------------------

    def initialize(self) -> list[Path]:
        """Create aml_config/ with local + docker pairs and both dependency files; never overwrites.
        When one cannot be written, none is left (ConfigWriteError naming the folder and the fix)."""
        existed = self.config_dir.is_dir()
        created: list[Path] = []
        try:
            self._initialize(created)
        except BaseException:
            self._undo({}, created, existed)
            raise
        return created

    def _initialize(self, created: list[Path]) -> None:
        """initialize(), appending each file as it is made (so a failed attach can take them back)."""
        for name, text in _template_files().items():
            path = self.config_dir / name
            if not path.exists():
                write_atomic(path, text)
                created.append(path)
        if created:
            log.info("initialized %s: %s", self.config_dir, ", ".join(p.name for p in created))

    def write_target(self, target: ComputeTarget) -> Path:
        """Write `<name>.compute` atomically (initializing aml_config/ first)."""
        _check_name(target.name, "compute target")
        text = target.validated().to_yaml()
        path = self.config_dir / f"{target.name}.compute"
        self._write_all({path: text})
        return path

    def write_run_configuration(self, rc: RunConfiguration) -> Path:
        """Write `<name>.runconfig` atomically, YAML or JSON as it was read."""
        _check_name(rc.name, "run configuration")
        text = rc.validated().to_text()
        path = self.run_configuration_path(rc.name)
        self._write_all({path: text})
        return path

    def attach_target(
        self,
        name: str,
        type: str | TargetType,
        *,
        address: str | None = None,
        username: str | None = None,
        key_file: str | None = None,
        password_env: str | None = None,
        base_docker_image: str | None = None,
        python_location: str | None = None,
        force: bool = False,
        **settings: Any,
    ) -> tuple[ComputeTarget, RunConfiguration]:
        """Write a `<name>.compute` + `<name>.runconfig` pair, like `az ml computetarget attach`.

        Everything is validated first; a failing write leaves aml_config/ as it was (no half pair, no
        template files of a first initialize, no temp files): ConfigError naming the file and the fix.
        """
        _check_name(name, "compute target")
        compute_path = self.config_dir / f"{name}.compute"
        rc_path = self.run_configuration_path(name)
        if not force:
            for path, what in ((compute_path, "compute target"), (rc_path, "run configuration")):
                if path.exists():
                    raise ConfigError(
                        f"A {what} '{name}' already exists ({path}). Detach it first, or pass "
                        f"--force (force=True) to replace it."
                    )
        named = {
            "address": address,
            "username": username,
            "privateKeyFile": key_file,
            "passwordEnv": password_env,
            "baseDockerImage": base_docker_image,
            "pythonLocation": python_location,
        }
        from .attach import attached_pair  # only attach needs it: not on every submit

        target, rc = attached_pair(name, type, named, settings)
        self._write_all({compute_path: target.to_yaml(), rc_path: rc.to_text()})
        log.info("attached %s target %s", target.type, name)
        return target, rc

    def _write_all(self, texts: Mapping[Path, str]) -> None:
        """Initialize aml_config/ and write every file, or, on any failure, none of it."""
        existed = self.config_dir.is_dir()
        # what to put back: a file's old content, None for "was absent" (something else there is kept)
        old = {p: p.read_bytes() if p.is_file() else None for p in texts if p.is_file() or not p.exists()}
        created: list[Path] = []
        try:
            self._initialize(created)
            for path, text in texts.items():
                write_atomic(path, text)
        except BaseException:
            self._undo(old, created, existed)
            raise

    def _undo(self, old: Mapping[Path, bytes | None], created: Sequence[Path], existed: bool) -> None:
        """Put back what `_write_all` changed, each step on its own: the folder that failed the write
        may fail some of them too (then the rest still happens and the failure is logged)."""
        for path, content in old.items():
            self._quietly(_put_back, path, content)
        for path in created:
            self._quietly(_put_back, path, None)
        if not existed:
            self._quietly(Path.rmdir, self.config_dir)

    def _quietly(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except OSError as exc:
            log.warning("could not undo a failed write in %s: %s", self.config_dir, exc)

    def detach_target(self, name: str) -> list[Path]:
        """Remove a target and the run configurations that use it; returns the removed files."""
        path = self.config_dir / f"{name}.compute"
        if not (TARGET_NAME.match(name) and path.is_file()):
            raise TargetNotFoundError(name, sorted(self._files(".compute")), self.root)
        removed = [path]
        for rc_path in self._files(".runconfig").values():
            try:
                uses = RunConfiguration.load(rc_path, quiet=True).target == name
            except ConfigError as exc:
                log.warning("detach %s: skipped unreadable %s (%s)", name, rc_path, exc)
                uses = False
            if uses:
                removed.append(rc_path)
        self._remove_all(removed)
        log.info("detached %s: removed %s", name, ", ".join(p.name for p in removed))
        return removed

    def _remove_all(self, paths: Sequence[Path]) -> None:
        """Remove every file, or, when one cannot be removed, put back those already gone."""
        old = {path: path.read_bytes() for path in paths}
        for done, path in enumerate(paths):
            try:
                path.unlink()
            except OSError as exc:
                for gone in paths[:done]:
                    self._quietly(_put_back, gone, old[gone])
                raise ConfigWriteError(path, exc, action="remove") from exc

    def create_run_configuration(self, name: str, target: str, **fields_: Any) -> RunConfiguration:
        """Write a new `<name>.runconfig` for `target` (`az ml runconfiguration create`).

        fields_: RunConfiguration fields (framework defaults to Python); force=True replaces a file.
        """
        force = bool(fields_.pop("force", False))
        unknown = sorted(set(fields_) - set(RUNCONFIG_FIELDS))
        if unknown:
            raise ConfigError(
                f"Unknown run configuration field(s) {', '.join(unknown)}. Known: {', '.join(RUNCONFIG_FIELDS)}."
            )
        _check_name(name, "run configuration")
        self.target(target)  # TargetNotFoundError lists the known ones
        path = self.run_configuration_path(name)
        if path.exists() and not force:
            raise ConfigError(
                f"A run configuration '{name}' already exists ({path}); pass --force (force=True) to replace it."
            )
        rc = _new_run_configuration(name, target, fields_)
        self.write_run_configuration(rc)
        return rc


def _new_run_configuration(name: str, target: str, fields_: Mapping[str, Any]) -> RunConfiguration:
    """A new run configuration from field values, each read by its key's parser (so a bad value is a
    ConfigError naming the key); None leaves a field at its default, Framework defaults to Python."""
    doc: dict[str, object] = {"Target": target, "Framework": "Python"}
    by_field = {spec.field: spec.keys[0] for spec in _RC_KEYS}
    extra = fields_.get("extra")
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"bad value {extra!r}; allowed: a mapping of extra keys to values.", key="extra")
    for field_name, value in fields_.items():
        if value is not None and field_name in by_field:
            doc[by_field[field_name]] = _plain(value)
    for key, value in (extra or {}).items():
        doc.setdefault(str(key), value)
    rc = RunConfiguration.from_mapping(name, doc, quiet=True)
    return replace(rc, raw={}).validated()


def _put_back(path: Path, content: bytes | None) -> None:
    """`path` as it was: removed when it was absent (None), else its old content."""
    if content is None:
        if path.is_file():
            path.unlink()
    elif not path.is_file() or path.read_bytes() != content:
        write_atomic(path, content)
