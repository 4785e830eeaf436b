"""A Workbench project folder: finding it, and reading/writing the files in aml_config/.

Formats follow ../shared/notes/workbench-formats.md: `<name>.compute` (flat YAML, camelCase keys),
`<name>.runconfig` (YAML, or the older JSON form, PascalCase keys), conda_dependencies.yml and
spark_dependencies.yml. What Workbench wrote loads unchanged and is written back with its own
spelling (aliases, nulls, legacy keys, unknown keys); what we write new is in the style of
`az ml computetarget attach` (flat, alphabetical). Every write is atomic.

One concept a module: `values` (value parsers), `files` (reading/rendering one file), `targets`
(.compute), `runconfigs` (.runconfig), `templates` (what a new aml_config/ holds), `folder` (the
Project). This package re-exports every name the rest of jupyter_amlexec imports.
"""

from __future__ import annotations

from .folder import ConfigProblem, Project, ProjectSettings
from .runconfigs import DEFAULT_CONDA_FILE, DEFAULT_SPARK_FILE, RUNCONFIG_FIELDS, RunConfiguration
from .targets import (
    BUILTIN_TARGETS,
    MANAGED_TYPES,
    REMOTE_TYPES,
    TARGET_SETTINGS,
    TARGET_TYPE_NAMES,
    ComputeTarget,
    TargetType,
)
from .templates import DEFAULT_BASE_IMAGE, default_base_image
from .values import FRAMEWORKS, TARGET_NAME, YARN_DEPLOY_MODES

__all__ = [
    "BUILTIN_TARGETS",
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_CONDA_FILE",
    "DEFAULT_SPARK_FILE",
    "FRAMEWORKS",
    "MANAGED_TYPES",
    "REMOTE_TYPES",
    "RUNCONFIG_FIELDS",
    "TARGET_NAME",
    "TARGET_SETTINGS",
    "TARGET_TYPE_NAMES",
    "YARN_DEPLOY_MODES",
    "ComputeTarget",
    "ConfigProblem",
    "Project",
    "ProjectSettings",
    "RunConfiguration",
    "TargetType",
    "default_base_image",
]
