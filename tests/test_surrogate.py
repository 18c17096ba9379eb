"""The surrogate model that explains the segments: its features, holdout accuracy, importance and
per-segment drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.config import ExplainParams
from segmentation.evaluation import surrogate as explain


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
