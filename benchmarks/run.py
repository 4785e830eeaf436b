"""Run every benchmark and print ratios against the physical limit, side by side, in one table.

Usage: python benchmarks/run.py [local snapshot history docker widgets]
Each bench_<name>.py module exposes run() -> rows with name, ours_s, baseline_s, ratio, target.
"""

from __future__ import annotations

import compileall
import importlib
import os
import sys
import tempfile
from pathlib import Path

ALL = ["local", "process", "snapshot", "history", "docker", "ssh", "widgets", "reliability", "spark"]


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}{unit}"
    return str(value)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    # compare with the package as pip installs it (with bytecode), even from an editable checkout
    # under PYTHONDONTWRITEBYTECODE: otherwise every CLI process measured compiles it first
    compileall.compile_dir(str(Path(__file__).parents[1] / "jupyter_amlexec"), quiet=1, workers=0)
    os.environ.setdefault("AMLEXEC_HOME", tempfile.mkdtemp(prefix="amlexec-bench-"))
    names = argv or ALL
    rows: list[dict[str, object]] = []
    for name in names:
        try:
            module = importlib.import_module(f"bench_{name}")
            rows.extend(module.run())
        except Exception as exc:  # one broken benchmark must not hide the others
            rows.append({"name": f"{name}: FAILED ({type(exc).__name__}: {exc})"})
    width = max(len(str(r["name"])) for r in rows)
    print(f"{'benchmark':<{width}}  {'ours':>9}  {'limit':>9}  {'ratio':>7}  target")
    for r in rows:
        print(
            f"{str(r['name']):<{width}}  {_fmt(r.get('ours_s'), 's'):>9}  {_fmt(r.get('baseline_s'), 's'):>9}  "
            f"{_fmt(r.get('ratio')):>7}  {r.get('target', '')}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
