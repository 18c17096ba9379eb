"""Copy the project's pipeline files into a scratch folder: the end-to-end and bad-input tests and
the benchmark each run the real stages in such a copy, never in the checkout itself."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_project(target: Path, names: tuple[str, ...]) -> Path:
    """Copy each named file or folder (relative to the repository root)
    that exists into ``target``."""
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target
