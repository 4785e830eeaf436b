"""Conda package specs as pip requirements, for an image without conda (Workbench conda files list
packages such as scikit-learn under `dependencies:` that pip installs just as well).

Pure text translation, no network: the name (PyPI's where it differs, from a small tested map), the
version in pip's syntax (`numpy=1.24` is conda's "1.24.*"), the channel and build string dropped
with a note. What only conda has (CUDA toolkits, compilers, C libraries, R) is named, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# conda name -> PyPI name, where they differ (each checked against both indexes)
PYPI_NAMES: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "matplotlib-base": "matplotlib",
    "pytables": "tables",
    "opencv": "opencv-python",
    "py-opencv": "opencv-python",
    "tensorflow-gpu": "tensorflow",  # PyPI's tensorflow-gpu is withdrawn; tensorflow has GPU support on Linux
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "pyqt": "PyQt5",
    "dask-core": "dask",
    "ruamel_yaml": "ruamel.yaml",
    "python-kaleido": "kaleido",
    "python-lmdb": "lmdb",
    "python-xxhash": "xxhash",
}

# packages only conda provides: system libraries, toolchains, CUDA, R (pip has no such package, or
# one of the same name that is something else)
CONDA_ONLY: dict[str, str] = {
    "cudatoolkit": "the CUDA runtime: use an image with CUDA, or the nvidia-*-cu12 pip packages",
    "cuda-toolkit": "the CUDA toolkit: use an image with CUDA",
    "cuda-nvcc": "the CUDA compiler: use an image with CUDA",
    "cudnn": "cuDNN: use an image with it, or nvidia-cudnn-cu12 from pip",
    "nccl": "NCCL: use an image with it, or nvidia-nccl-cu12 from pip",
    "pytorch-cuda": "conda's CUDA selector for pytorch: pip's torch wheels carry CUDA",
    "cpuonly": "conda's CPU selector for pytorch",
    "nomkl": "conda's BLAS selector",
    "blas": "conda's BLAS selector",
    "graphviz": "the Graphviz programs (pip's graphviz is only the Python binding, python-graphviz in conda)",
    "r-base": "R",
    "nodejs": "Node.js",
    "git": "git",
    "ffmpeg": "ffmpeg",
    "openjdk": "a Java runtime",
}
_SYSTEM_LIBRARIES = [
    "blas",
    "libblas",
    "libcblas",
    "liblapack",
    "openblas",
    "libopenblas",
    "libgcc",
    "libgcc-ng",
    "libstdcxx-ng",
    "libgfortran",
    "libgfortran-ng",
    "libgomp",
    "_libgcc_mutex",
    "_openmp_mutex",
    "libffi",
    "libiconv",
    "libxml2",
    "libpng",
    "libjpeg-turbo",
    "jpeg",
    "libuv",
    "libcurl",
    "libprotobuf",
    "libopencv",
    "libxgboost",
    "libarrow",
    "arrow-cpp",
    "hdf5",
    "boost",
    "boost-cpp",
    "openssl",
    "ca-certificates",
    "zlib",
    "xz",
    "bzip2",
    "sqlite",
    "readline",
    "ncurses",
    "tk",
    "gcc",
    "gxx",
    "gfortran",
    "compilers",
    "make",
    "imagemagick",
    "poppler",
    "cairo",
    "qt",
    "python_abi",
]

# a PEP 440 version pip accepts (public part + optional local label), optionally ending in .*
_VERSION = re.compile(
    r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[A-Za-z0-9.]+)?(\.\*)?$", re.IGNORECASE
)
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?P<rest>.*)$")
_PIP_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")  # PEP 508
_BRACKET_VERSION = re.compile(r"""version\s*=\s*["']?([^"',\]]+)["']?""")


@dataclass(frozen=True)
class CondaAsPip:
    """The conda specs of a `dependencies:` list as pip requirements.

    requirements: PEP 508 lines for requirements.txt, in the order given (renames applied).
    notes: one line per spec whose translation changed something (name, channel, build string),
        for the build log, so the user sees what pip was asked for instead.
    conda_only: the specs (as written) pip cannot install — conda-only packages and versions pip
        cannot express (`1.2|1.4`); a build without conda refuses, naming them.
    """

    requirements: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    conda_only: tuple[str, ...] = ()


def conda_as_pip(specs: Iterable[str]) -> CondaAsPip:
    """Translate conda specs (`numpy=1.24`, `conda-forge::scikit-learn>=1.2,<2`, `pytorch 2.1.*`).

    Contract (the Docker build without conda calls this): `python` and `pip` are skipped (the build
    checks the python version itself); a name pip also knows keeps its name; `requirements` may
    still fail to resolve at build time (pip then names the package in the build log).
    """
    requirements: list[str] = []
    notes: list[str] = []
    conda_only: list[str] = []
    for spec in specs:
        text = str(spec).strip()
        if not text:
            continue
        requirement, note, refused = conda_spec_as_pip(text)
        if refused:
            conda_only.append(text)
        elif requirement is not None:
            requirements.append(requirement)
        if note:
            notes.append(f"{text}: {note}")
    return CondaAsPip(tuple(dict.fromkeys(requirements)), tuple(notes), tuple(conda_only))


def conda_spec_as_pip(spec: str) -> tuple[str | None, str | None, bool]:
    """One spec -> (pip requirement or None when nothing to install, note, refused)."""
    notes: list[str] = []
    text = spec.strip()
    if "::" in text:
        channel, text = text.rsplit("::", 1)
        notes.append(f"channel {channel} ignored (pip installs from its package index)")
    bracket = ""
    if "[" in text and text.endswith("]"):
        text, bracket = text[:-1].split("[", 1)
    match = _SPEC.match(text.strip())
    if match is None:
        return None, "not a conda package spec", True
    name, rest = match["name"].lower(), match["rest"]
    if name in ("python", "pip"):
        return None, None, False
    if name in CONDA_ONLY or name in _SYSTEM_LIBRARIES or name.startswith("r-"):
        why = CONDA_ONLY.get(name, "R" if name.startswith("r-") else "a system library conda provides")
        return None, f"only conda has this ({why})", True
    bracket_version = _BRACKET_VERSION.search(bracket)
    if bracket_version and not rest.strip():
        rest = " " + bracket_version.group(1).strip()
    constraint, version_note = _pip_version(rest)
    if version_note:
        notes.append(version_note)
    if constraint is None:
        return None, "; ".join(notes) or "version not expressible for pip", True
    pypi = PYPI_NAMES.get(name, name)
    if not _PIP_NAME.match(pypi):
        return None, "not a package name pip accepts", True
    if pypi != name:
        notes.append(f"installed as {pypi} (its name on PyPI)")
    return pypi + constraint, "; ".join(notes) or None, False


def _pip_version(rest: str) -> tuple[str | None, str | None]:
    """The version part of a conda spec -> (pip constraint, "" for any; None if pip cannot say it)."""
    text = rest.strip()
    if not text or text == "*":
        return "", None
    if text.startswith("=") and not text.startswith("=="):  # `numpy=1.24[=build]`: conda's fuzzy 1.24.*
        version, _, build = text[1:].partition("=")
        exact = False
    else:  # `numpy 1.24.1 [build]`, `numpy>=1.2,<2`, `numpy==1.24.1[=build]`
        version, _, build = text.partition(" ")
        if version.startswith("==") and "=" in version[2:]:
            version, _, build = version.rpartition("=")
        exact = True
    note = f"build string {build.strip()} ignored" if build.strip() else None
    return _constraints(version, exact=exact), note


def _constraints(version: str, *, exact: bool) -> str | None:
    """`>=1.2,<2` / `1.24.*` / `1.24` -> pip's constraint; None for what pip cannot express."""
    if "|" in version:
        return None
    parts = []
    for item in version.split(","):
        match = re.match(r"^(==|>=|<=|!=|~=|>|<|=)?(.+)$", item.strip())
        if match is None:
            return None
        op, value = match.group(1) or "", match.group(2).strip()
        if value.endswith("*") and not value.endswith(".*"):
            value = value[:-1].rstrip(".") + ".*"  # conda's `1.2*` is `1.2.*`
        if op in ("", "="):
            op, value = "==", value if exact or value.endswith(".*") else value + ".*"
        elif value.endswith(".*") and op not in ("==", "!="):
            value = value[:-2]  # pip allows .* only with == and !=: `>=1.2.*` means `>=1.2`
        if not _VERSION.match(value):
            return None
        parts.append(op + value)
    return ",".join(parts)
