"""Shared stage output: metrics JSON (rounded; NaN and dotted keys refused) and atomic writes that
keep the old file, with no temporary file behind, when a stage fails or is terminated in run();
a CSV read from where a row begins."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segmentation import artifacts
from segmentation.artifacts import PipelineError, atomic_path, read_csv, write_metrics

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_are_rounded_and_refuse_nan_and_dotted_keys(tmp_path):
    write_metrics(tmp_path / "m.json", {"a": 0.123456789, "n": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.123457, "n": 3}
    with pytest.raises(ValueError):
        write_metrics(tmp_path / "bad.json", {"a": float("nan")})
    with pytest.raises(ValueError):
        write_metrics(tmp_path / "bad.json", {"a.b": 1.0})
    assert not (tmp_path / "bad.json").exists()


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_terminated_stage_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    stage = (
        "import time\nfrom pathlib import Path\n"
        "from segmentation.artifacts import atomic_path, run\n"
        "def main():\n"
        f"    with atomic_path(Path({str(target)!r})) as tmp:\n"
        "        tmp.write_text('half')\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(600)\n"
        "run(main, takes_dataset=False)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", stage], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "writing"
    process.terminate()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_stage_output_without_an_expected_column_is_one_line(tmp_path):
    """A file an older pipeline wrote (outliers.csv with its former `inlier` column)."""
    old = tmp_path / "outliers.csv"
    old.write_text("customer_id,ecod_score,inlier\n1,0.5,1\n")
    for options in ({}, {"chunksize": 2}):
        with pytest.raises(
            PipelineError, match=r"outliers.csv: no column \['outlier'\]; .*dvc repro"
        ):
            read_csv(old, usecols=["outlier"], **options)


@pytest.mark.parametrize("scan_bytes", [5, 1 << 24])
def test_row_starts_skip_line_breaks_inside_quotes_across_blocks(tmp_path, monkeypatch, scan_bytes):
    monkeypatch.setattr(artifacts, "SCAN_BYTES", scan_bytes)
    ids = ["a", 'b\n"x"\n', "00c", "d,e", "NA", "f"]
    path = tmp_path / "flags.csv"
    artifacts.write_csv(path, pd.DataFrame({"customer_id": ids, "outlier": [0, 1, 0, 1, 0, 0]}))
    starts, rows = artifacts.csv_row_starts(path, [4, 0, 1, 5])
    assert rows == 6
    slices = [
        artifacts.read_csv_rows(path, start, 2 if row < 5 else 1, ["customer_id"])
        for row, start in zip([4, 0, 1, 5], starts)
    ]
    assert [part["customer_id"].tolist() for part in slices] == [
        ["NA", "f"],
        ["a", 'b\n"x"\n'],
        ['b\n"x"\n', "00c"],
        ["f"],
    ]
    with pytest.raises(artifacts.PipelineError, match=r"flags.csv ends 1 rows early after byte"):
        artifacts.read_csv_rows(path, starts[3], 2, ["outlier"])
