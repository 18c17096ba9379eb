"""A LightGBM surrogate that predicts the segments from the segmentation columns, its SHAP
contributions, and how much each column drives the segments.

Two measures of what drives a segmentation, written to the metrics: each column's share of the
surrogate's mean |SHAP| (the largest share, and the numeric columns' together), and for each
numeric column the share of its variance the segments explain (η², the correlation ratio).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from segmentation.artifacts import (
    metric_key,
    subplots,
)
from segmentation.config import ExplainParams
from segmentation.data.dataset import Dataset
from segmentation.model.sampling import sample_rows
from segmentation.reporting.tallies import SegmentTallies


def surrogate_features(
    customers: pd.DataFrame, dataset: Dataset, columns: list[str] | None = None
) -> pd.DataFrame:
    """The chosen columns (the segmentation columns by default), categories as pandas categories
    with a fixed (sorted) order."""
    columns = dataset.segment_on if columns is None else columns
    features = customers.loc[:, columns].copy()
    for column in dataset.of_kind(columns, "categorical", "ordinal"):
        features[column] = pd.Categorical(
            features[column], categories=sorted(features[column].unique())
        )
    return features


def fit_surrogate(features: pd.DataFrame, target: np.ndarray, params: ExplainParams, seed: int):
    return lgb.LGBMClassifier(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        random_state=seed,
        deterministic=True,
        force_col_wise=True,
        n_jobs=1,
        verbose=-1,
    ).fit(features, target)


def holdout_scores(
    features: pd.DataFrame, target: np.ndarray, params: ExplainParams, seed: int
) -> dict[str, float | int]:
    """Accuracy and macro-F1 of the surrogate on a seeded, stratified held-out split."""
    train_x, test_x, train_y, test_y = train_test_split(
        features, target, test_size=params.test_size, random_state=seed, stratify=target
    )
    held_out = fit_surrogate(train_x, train_y, params, seed).predict(test_x)
    return {
        "holdout_accuracy": accuracy_score(test_y, held_out),
        "holdout_macro_f1": f1_score(test_y, held_out, average="macro"),
        "majority_class_accuracy": np.bincount(test_y).max() / len(test_y),
        "train_rows": len(train_y),
        "test_rows": len(test_y),
    }


def explain(features: pd.DataFrame, segments: np.ndarray, params: ExplainParams, seed: int):
    """Held-out scores, global mean |SHAP| per column, and per-segment SHAP drivers.

    Segments are 1..k; SHAP values come from LightGBM's own ``pred_contrib`` (TreeSHAP).
    """
    target = segments - 1
    # The explanation describes the segmentation itself, so the explained model sees every inlier
    # it is given (all of them up to sample_fit_rows); TreeSHAP costs rows x trees x leaves, so it
    # runs on a seeded sample of them. The held-out fit
    # and this one are independent single-threaded fits, so they run side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        held_out = pool.submit(holdout_scores, features, target, params, seed)
        model = fit_surrogate(features, target, params, seed)
        metrics = held_out.result()
    n_segments, n_columns = int(target.max()) + 1, features.shape[1]
    rows = sample_rows(len(features), params.shap_rows, seed)
    # Training stays on one thread (LightGBM's results are pinned to the thread count); each row's
    # TreeSHAP is independent, so the contributions use every core with identical numbers.
    contributions = np.asarray(model.predict(features.iloc[rows], pred_contrib=True, n_jobs=-1))
    magnitude = np.abs(
        contributions.reshape(len(rows), n_segments, n_columns + 1)[:, :, :n_columns]
    )
    sampled_target = target[rows]
    importance = pd.DataFrame(
        {"feature": list(features.columns), "mean_abs_shap": magnitude.mean(axis=0).sum(axis=0)}
    )
    importance = importance.sort_values(
        "mean_abs_shap", ascending=False, kind="stable"
    ).reset_index(drop=True)
    total = importance["mean_abs_shap"].sum()
    importance["share"] = importance["mean_abs_shap"] / total if total > 0 else 0.0
    drivers = []
    for segment in range(n_segments):
        members = sampled_target == segment
        if not members.any():
            continue
        own = pd.Series(magnitude[members, segment, :].mean(axis=0), index=features.columns)
        for rank, (feature, value) in enumerate(
            own.sort_values(ascending=False, kind="stable").head(params.top_features).items(), 1
        ):
            drivers.append(
                {"segment": segment + 1, "rank": rank, "feature": feature, "mean_abs_shap": value}
            )
    return metrics, importance, pd.DataFrame(drivers)


def driver_metrics(
    tallies: SegmentTallies, importance: pd.DataFrame, dataset: Dataset
) -> dict[str, float]:
    """The largest column's and the numeric columns' share of the explanation, and each numeric
    segmentation column's η² (from the segments' ``tallies``) with their mean."""
    shares = importance.set_index("feature")["share"]
    numeric = dataset.numeric
    eta = {column: tallies.eta_squared(column) for column in numeric}
    return {
        "largest_shap_share": float(shares.max()),
        "numeric_shap_share": float(shares.reindex(numeric).sum()),
        **({"eta_squared_mean": float(np.mean(list(eta.values())))} if eta else {}),
        **{metric_key("eta_squared", column): value for column, value in eta.items()},
    }


def importance_figure(importance: pd.DataFrame):
    figure, axis = subplots(figsize=(6, 3.5))
    ordered = importance.iloc[::-1]
    axis.barh(ordered["feature"], ordered["mean_abs_shap"], color="tab:blue")
    axis.set_xlabel("mean |SHAP| summed over segments (log-odds)")
    axis.set_title("What the LightGBM surrogate uses to place a customer")
    return figure
