"""The table of two ways of writing numbers, from two runs' metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_folder(folder: Path, association: float, eta: float) -> None:
    """The metrics and importance a reproduced telco workspace would hold."""
    metrics, plots = folder / "metrics" / "telco", folder / "plots" / "telco"
    metrics.mkdir(parents=True)
    plots.mkdir(parents=True)
    files = {
        "comparison": {
            "embedding_outcome_Churn_association": association,
            "embedding_outcome_Churn_spread": 0.5,
            "ari_embedding_tabular": 0.3,
            "embedding_on_tabular_silhouette": 0.1,
            "embedding_on_embeddings_silhouette": 0.2,
        },
        "explain": {
            "eta_squared_mean": eta,
            "eta_squared_tenure": eta,
            "eta_squared_MonthlyCharges": eta * 2,
            "eta_squared_TotalCharges": 0.0,
            "largest_shap_share": 0.47,
            "numeric_shap_share": 0.17,
        },
        "stability": {"seed_ari_mean": 0.99, "bootstrap_ari_mean": 0.96},
    }
    for stage, values in files.items():
        (metrics / f"{stage}.json").write_text(json.dumps(values))
    (plots / "importance.csv").write_text("feature,mean_abs_shap\nInternetService,2.0\n")


def test_the_table_has_a_column_per_way_and_refuses_a_missing_run(tmp_path):
    run_folder(tmp_path / "digits", 0.365, 0.2)
    run_folder(tmp_path / "words", 0.422, 0.3)
    command = [sys.executable, "-m", "scripts.numbers_study"]
    done = subprocess.run(
        [
            *command,
            f"value={tmp_path / 'digits'}",
            f"band={tmp_path / 'words'}",
            "--datasets",
            "telco",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "| Measure | value | band |" in done.stdout
    assert "| Outcome Cramér's V | 0.365 | 0.422 |" in done.stdout
    assert "| Largest η² | 0.400 (Monthly charges) | 0.600 (Monthly charges) |" in done.stdout
    assert "| Largest share of the explanation | 47% (Internet service) |" in done.stdout
    assert "| Tenure | 0.200 | 0.300 |" in done.stdout
    missing = subprocess.run(
        [
            *command,
            f"value={tmp_path / 'digits'}",
            f"band={tmp_path / 'absent'}",
            "--datasets",
            "telco",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].endswith("first") and "absent" in missing.stderr
