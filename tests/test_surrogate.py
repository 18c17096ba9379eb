"""The surrogate model that explains the segments: its features, holdout accuracy, importance and
per-segment drivers, fitted on a sample above sample_fit_rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from segmentation.artifacts import write_csv
from segmentation.config import ExplainParams
from segmentation.embedding.shards import write_matrix
from segmentation.evaluation import surrogate as explain
from segmentation.testing.project_copy import copy_project

ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))


def test_surrogate_recovers_a_segmentation_made_of_two_columns(segmented, bank):
    customers, segments = segmented
    features = explain.surrogate_features(customers, bank)
    assert list(features.columns) == bank.segment_on
    assert (
        isinstance(features["job"].dtype, pd.CategoricalDtype) and features["age"].dtype == np.int64
    )
    metrics, importance, drivers = explain.explain(
        features, segments.to_numpy(), ExplainParams(n_estimators=50), seed=0
    )
    assert metrics["holdout_accuracy"] > 0.95 and metrics["test_rows"] == 120
    assert set(importance["feature"].head(2)) == {"housing", "loan"}
    assert set(drivers.columns) == {"segment", "rank", "feature", "mean_abs_shap"}
    assert sorted(drivers["segment"].unique()) == [1, 2, 3, 4]
    assert set(drivers.loc[drivers["rank"] <= 2, "feature"]) == {"housing", "loan"}


def test_above_sample_fit_rows_the_surrogate_learns_from_a_sample(segmented, bank, tmp_path):
    """The explain stage's surrogate is fitted on a seeded sample of sample_fit_rows inliers
    above that size, while η² still describes every inlier (10 of the 600 are outliers here)."""
    customers, segments = segmented
    interim = tmp_path / "data/bank/interim"
    interim.mkdir(parents=True)
    customers.astype(str).to_csv(interim / "customers.csv")
    ids = customers.index.tolist()
    write_matrix(interim / "embeddings", np.zeros((len(ids), 4), np.float32), ids, shard_rows=250)
    outlier = (np.arange(len(ids)) % 60 == 0).astype(int)
    write_csv(interim / "outliers.csv", pd.DataFrame({"customer_id": ids, "outlier": outlier}))
    labels = pd.DataFrame({"customer_id": customers.index, "segment": segments.to_numpy()})
    write_csv(tmp_path / "data/bank/processed/labels.csv", labels[outlier == 0])
    copy_project(tmp_path, ("datasets", "params.yaml"))
    found = {}
    for sample_fit_rows in (300, 1_000):
        params = yaml.safe_load((tmp_path / "params.yaml").read_text())
        params.update(datasets=["bank"], sample_fit_rows=sample_fit_rows)
        params["explain"].update(n_estimators=50)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        subprocess.run(
            [sys.executable, "-m", "stages.explain", "bank"], cwd=tmp_path, check=True, env=ENV
        )
        found[sample_fit_rows] = json.loads((tmp_path / "metrics/bank/explain.json").read_text())
    sampled, everyone = found[300], found[1_000]
    assert sampled["fit_sample_rows"] == 300 and "fit_sample_rows" not in everyone
    assert sampled["train_rows"] + sampled["test_rows"] == 300
    assert everyone["train_rows"] + everyone["test_rows"] == 590
    assert sampled["holdout_accuracy"] > 0.9
    eta = [key for key in everyone if key.startswith("eta_squared")]
    assert eta and {key: sampled[key] for key in eta} == {key: everyone[key] for key in eta}
