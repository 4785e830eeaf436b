"""A Workbench conda file on an image without conda: its `dependencies:` as pip requirements."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_amlexec.core.environment import CondaAsPip, conda_as_pip, load_environment, pip_requirements
from jupyter_amlexec.core.project import Project
from tests.conftest import require
from tests.core.conftest import write_config

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("scikit-learn", "scikit-learn"),  # what the Workbench samples list: same name on PyPI
        ("python-dateutil", "python-dateutil"),
        ("mkl", "mkl"),  # PyPI has Intel's own wheels
        ("numpy=1.24", "numpy==1.24.*"),  # conda's `=` is a fuzzy match
        ("numpy=1.24.1=py39_0", "numpy==1.24.1.*"),
        ("numpy==1.24.1", "numpy==1.24.1"),
        ("numpy 1.24.1", "numpy==1.24.1"),  # a bare version after a space is exact
        ("numpy 1.24.*", "numpy==1.24.*"),
        ("numpy 1.8*", "numpy==1.8.*"),
        ("numpy>=1.2,<2", "numpy>=1.2,<2"),
        ("numpy>=1.2.*", "numpy>=1.2"),  # pip allows .* only with == and !=
        ("numpy !=1.3.*", "numpy!=1.3.*"),
        ("numpy[version='>=1.2']", "numpy>=1.2"),
        ("numpy *", "numpy"),
        ("conda-forge::scikit-learn>=1.2", "scikit-learn>=1.2"),
        ("pytorch=2.1", "torch==2.1.*"),
        ("py-xgboost", "xgboost"),
        ("matplotlib-base>=3.7", "matplotlib>=3.7"),
        ("pytables", "tables"),
        ("opencv", "opencv-python"),
        ("tensorflow-gpu=2.10", "tensorflow==2.10.*"),
        ("msgpack-python", "msgpack"),
        ("ruamel_yaml", "ruamel.yaml"),
    ],
)
def test_a_conda_spec_becomes_the_pip_requirement_meaning_the_same(conda: str, pip: str) -> None:
    result = conda_as_pip([conda])
    assert (result.requirements, result.conda_only) == ((pip,), ())


def test_every_change_is_noted_for_the_build_log() -> None:
    result = conda_as_pip(["conda-forge::pytorch=2.1=cuda_0", "scikit-learn"])
    assert result.requirements == ("torch==2.1.*", "scikit-learn")
    assert result.notes == (
        "conda-forge::pytorch=2.1=cuda_0: channel conda-forge ignored (pip installs from its package "
        "index); build string cuda_0 ignored; installed as torch (its name on PyPI)",
    )


@pytest.mark.parametrize(
    "conda",
    [
        "cudatoolkit=11.8",
        "cudnn",
        "libgcc-ng",
        "openssl",
        "graphviz",
        "r-ggplot2",
        "numpy>=1.2|<1.0",
        "foo=1.2_3",
    ],
)
def test_what_pip_cannot_install_is_named_not_guessed(conda: str) -> None:
    result = conda_as_pip(["numpy", conda])
    assert result.requirements == ("numpy",)
    assert result.conda_only == (conda,)
    assert result.notes and result.notes[0].startswith(f"{conda}: ")


def test_python_and_pip_are_left_to_the_build(tmp_path: Path) -> None:
    # Given the Workbench sample's conda file
    project = Project(tmp_path)
    project.initialize()
    text = (
        "name: project_environment\ndependencies:\n  - python=3.5.2\n  - scikit-learn\n  - pip\n"
        "  - ipykernel=4.6.1\n  - pip:\n    - matplotlib\n"
    )
    write_config(tmp_path, "conda_dependencies.yml", text)
    # When the build over an image without conda asks what to install
    plan = pip_requirements(load_environment(project, project.run_configuration("docker")))
    # Then conda's packages come first (sorted as in the spec), then the pip section as written
    assert plan == CondaAsPip(requirements=("ipykernel==4.6.1.*", "scikit-learn", "matplotlib"))


def _pip(*args: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            str(dest),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_translated_requirements_resolve_with_real_pip_and_conda_only_ones_do_not(tmp_path: Path) -> None:
    # Given a conda file's packages with a rename and a conda-only version syntax
    plan = conda_as_pip(["ruamel_yaml", "python-dateutil=2.8", "cudatoolkit=11.8"])
    assert plan.requirements == ("ruamel.yaml", "python-dateutil==2.8.*")
    # When pip downloads what we translated (one call), and what we called conda-only (another)
    done = _pip(*plan.requirements, dest=tmp_path / "ok")
    offline = ("Max retries exceeded", "NewConnectionError", "Temporary failure in name resolution")
    require(not any(sign in done.stderr for sign in offline), "a package index reachable by pip")
    refused = _pip("cudatoolkit==11.8.*", dest=tmp_path / "no")
    # Then pip finds the translated ones (2.8.x of dateutil) and not the conda-only one
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name.split("-")[0].lower() for p in (tmp_path / "ok").iterdir())
    assert names == ["python_dateutil", "ruamel_yaml"]  # wheel names normalise . to _
    assert any(p.name.startswith("python_dateutil-2.8.") for p in (tmp_path / "ok").iterdir())
    assert refused.returncode != 0 and "cudatoolkit" in refused.stderr
