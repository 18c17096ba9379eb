"""The results tables of README.md and docs/ are the committed metrics, written by a script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from scripts import results_tables

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_tables_are_the_committed_metrics():
    checked = subprocess.run(
        [sys.executable, "scripts/results_tables.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_a_metric_that_moves_makes_its_table_drift(tmp_path):
    for name in ("metrics", "plots", "reports", "datasets"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("*.png"))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    readme = (ROOT / "README.md").read_text()
    assert results_tables.regenerated(readme, tmp_path) == readme
    evaluate = tmp_path / "metrics/bank/evaluate.json"
    moved = json.loads(evaluate.read_text()) | {"davies_bouldin": 9.87654}
    evaluate.write_text(json.dumps(moved))
    drifted = results_tables.regenerated(readme, tmp_path)
    assert drifted != readme and "| 9.8765 |" in drifted


def test_every_marked_table_is_known():
    for file in results_tables.FILES:
        names = [m.group("name") for m in results_tables.BLOCK.finditer((ROOT / file).read_text())]
        assert names and set(names) <= set(results_tables.TABLES), file
