"""Snapshots versus `tar -cf` of the same tree: first snapshot, and an unchanged re-snapshot.

`tar -cf` reads every byte once and writes it once: the physical limit of copying a tree. A first
snapshot also hashes every byte; an unchanged re-snapshot should only stat the files.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

FILES = 10_000
TOTAL_BYTES = 200 * 1024 * 1024
ROUNDS = 5


def make_tree(root: Path) -> None:
    """10k files, 200 MB: many small source-like files and a few large data files."""
    if (root / ".complete").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(0)
    big = 20
    big_size = (TOTAL_BYTES - (FILES - big) * 4096) // big
    for i in range(FILES):
        folder = root / f"d{i % 100:02d}" / f"s{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        size = big_size if i < big else 4096
        (folder / f"f{i}.dat").write_bytes(rng.randbytes(size))
    (root / ".complete").write_text("")


def _tar(tree: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["tar", "-cf", str(out), "-C", str(tree), "."], check=True)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def run() -> list[dict[str, object]]:
    from jupyter_amlexec.core.snapshot import SnapshotStore

    base = Path(os.environ.get("AMLEXEC_BENCH_DIR", tempfile.gettempdir())) / "amlexec-bench-tree"
    make_tree(base)
    work = Path(tempfile.mkdtemp(prefix="amlexec-bench-"))
    tars, firsts, agains = [], [], []
    try:
        for i in range(ROUNDS):
            tars.append(_tar(base, work / "t.tar"))
            store_home = work / f"store{i}"
            store = SnapshotStore(store_home)
            start = time.perf_counter()
            store.take(base, max_bytes=1 << 40)
            firsts.append(time.perf_counter() - start)
            start = time.perf_counter()
            store.take(base, max_bytes=1 << 40)
            agains.append(time.perf_counter() - start)
            shutil.rmtree(store_home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tar_s, first_s, again_s = statistics.median(tars), statistics.median(firsts), statistics.median(agains)
    return [
        {
            "name": "first snapshot 10k files/200 MB vs tar -cf",
            "ours_s": first_s,
            "baseline_s": tar_s,
            "ratio": first_s / tar_s,
            "target": "<= 1.5x tar",
        },
        {
            "name": "unchanged re-snapshot vs tar -cf",
            "ours_s": again_s,
            "baseline_s": tar_s,
            "ratio": again_s / tar_s,
            "target": "<= 0.2 s",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(
            f"{row['name']}: ours {row['ours_s']:.3f}s, tar {row['baseline_s']:.3f}s, ratio {row['ratio']:.2f} (target {row['target']})"
        )
