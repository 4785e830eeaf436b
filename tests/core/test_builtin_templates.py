"""A project without aml_config/ runs on built-in `local` and `docker` configurations that read
exactly as the files `initialize()` would write (they are not parsed from YAML on every submit)."""

from __future__ import annotations

import pytest
import yaml

from jupyter_amlexec.core.project.templates import _builtin_mapping, _template_files

BUILT_IN = ["local.compute", "local.runconfig", "docker.compute", "docker.runconfig"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_built_in_file_reads_as_its_template(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for image in (None, "example/base:1"):
        if image is None:
            monkeypatch.delenv("AMLEXEC_DEFAULT_BASE_IMAGE", raising=False)
        else:
            monkeypatch.setenv("AMLEXEC_DEFAULT_BASE_IMAGE", image)
        assert _builtin_mapping(name) == yaml.safe_load(_template_files()[name])
