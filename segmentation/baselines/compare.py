"""The three methods side by side, on the same customers: the article's claim, checkable.

Every number here is computed on the customers that all three methods keep (the embedding ECOD
inliers that are also Method-1 ECOD inliers), so the methods are scored on identical rows. The
report written from these numbers is ``segmentation.reporting.comparison``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats.contingency import association
from sklearn.metrics import adjusted_rand_score

from segmentation.artifacts import (
    metric_key,
    subplots,
)
from segmentation.baselines.kprototypes import fit_prototypes, numeric_columns, prototype_frame
from segmentation.config import ExplainParams, Params
from segmentation.data.dataset import Dataset
from segmentation.data.outcomes import outcome_values
from segmentation.evaluation import stability
from segmentation.evaluation.maps import scatter_segments
from segmentation.evaluation.surrogate import explain, surrogate_features
from segmentation.evaluation.validity import cluster_metrics
from segmentation.model.kmeans import fit_segments
from segmentation.model.sampling import sample_rows

METHODS = {
    "embedding": "Embeddings + KMeans",
    "tabular": "Tabular KMeans (Method 1)",
    "kprototypes": "K-Prototypes (Method 2)",
}
SPACES = {"tabular": "Method-1 tabular matrix", "embeddings": "embedding matrix"}
# metric: (plain name, higher is better)
VALIDITY = {
    "davies_bouldin": ("Davies-Bouldin", False),
    "calinski_harabasz": ("Calinski-Harabasz", True),
    "silhouette": ("Silhouette", True),
}


def outcome_metric(column: str) -> str:
    return metric_key("outcome", column)


def common_rows(labels: dict[str, pd.Series], order: pd.Index) -> pd.Index:
    """Customer ids segmented by every method, in the table's order."""
    kept = np.ones(len(order), dtype=bool)
    for series in labels.values():
        kept &= order.isin(series.index)
    return order[kept]


def compared_rows(common: pd.Index, sample_fit_rows: int, seed: int) -> pd.Index:
    """The customers compared: all those every method keeps, or above ``sample_fit_rows`` a seeded
    sample of that many, in the table's order."""
    return common[sample_rows(len(common), sample_fit_rows, seed)]


def outcome_separation(outcome: pd.Series, segments: np.ndarray, numeric: bool) -> dict[str, float]:
    """How much the segments separate one outcome: the range of its per-segment rate (or mean), and
    Cramér's V of segment against outcome (the correlation ratio for a numeric outcome)."""
    frame = pd.DataFrame({"segment": segments, "outcome": outcome.to_numpy()})
    by_segment = frame.groupby("segment")["outcome"].mean()
    if numeric:
        total = ((frame["outcome"] - frame["outcome"].mean()) ** 2).sum()
        sizes = frame.groupby("segment").size()
        between = (sizes * (by_segment - frame["outcome"].mean()) ** 2).sum()
        strength = float(np.sqrt(between / total)) if total > 0 else 0.0
    else:
        counts = pd.crosstab(frame["segment"], frame["outcome"]).to_numpy()
        strength = float(association(counts, method="cramer")) if counts.shape[1] > 1 else 0.0
    return {"spread": float(by_segment.max() - by_segment.min()), "association": strength}


def outcome_scores(
    customers: pd.DataFrame, segments: dict[str, np.ndarray], dataset: Dataset
) -> dict[str, float]:
    scores = {}
    for column in dataset.describe:
        outcome = outcome_values(customers, dataset, column)
        for method, labels in segments.items():
            found = outcome_separation(outcome, labels, dataset.columns[column].kind == "numeric")
            scores.update(
                {
                    f"{method}_{outcome_metric(column)}_{name}": value
                    for name, value in found.items()
                }
            )
    return scores


def space_scores(
    spaces: dict[str, np.ndarray],
    segments: dict[str, np.ndarray],
    silhouette_max_rows: int,
    seed: int,
) -> dict[str, float]:
    """Every method's validity scores in every common space, as ``<method>_on_<space>_<metric>``."""
    return {
        f"{method}_on_{space}_{metric}": scores[metric]
        for space, matrix in spaces.items()
        for method, scores in zip(
            segments, cluster_metrics(matrix, list(segments.values()), silhouette_max_rows, seed)
        )
        for metric in VALIDITY
    }


def surrogate_scores(
    customers: pd.DataFrame,
    dataset: Dataset,
    segments: dict[str, np.ndarray],
    params: ExplainParams,
    seed: int,
):
    """Held-out accuracy of the LightGBM surrogate per method, and its top SHAP columns."""
    features = surrogate_features(customers, dataset)
    scores, top = {}, {}
    for method, labels in segments.items():
        metrics, importance, _ = explain(features, labels, params, seed)
        scores[f"{method}_surrogate_accuracy"] = metrics["holdout_accuracy"]
        scores[f"{method}_surrogate_macro_f1"] = metrics["holdout_macro_f1"]
        scores[f"{method}_majority_class_accuracy"] = metrics["majority_class_accuracy"]
        top[method] = importance["feature"].head(params.top_features).tolist()
    return scores, top


def agreement(segments: dict[str, np.ndarray]) -> dict[str, float]:
    return {
        f"ari_{a}_{b}": adjusted_rand_score(segments[a], segments[b])
        for a, b in itertools.combinations(segments, 2)
    }


def refit_scores(found: dict[str, float]) -> dict[str, float]:
    """The refit ARIs and clusterwise Jaccards among the stability stage's metrics."""
    return {
        key: value
        for key, value in found.items()
        if key.endswith(("_ari_mean", "_ari_min"))
        and key.startswith(("seed_", "bootstrap_"))
        or (key.startswith("segment_") and key.endswith("_jaccard"))
    }


def refit_stability(
    fit: Callable[[np.ndarray, int], np.ndarray],
    segments: np.ndarray,
    k: int,
    seeds: int,
    rounds: int,
    seed: int,
) -> dict[str, float]:
    """One method's refits of the sampled customers, whose committed ``segments`` (1..k) are given:
    ARI across seeds and bootstrap resamples, and each segment's clusterwise Jaccard over the same
    resamples (0 for a segment none of the sampled customers is in). ``fit(row_indices, seed)``
    returns the segments of those rows.
    """
    refits = stability.refit(fit, len(segments), seeds, rounds, seed)
    jaccard = stability.clusterwise_jaccard(segments, refits, k)
    return stability.ari_scores(refits) | {f"segment_{s}_jaccard": v for s, v in jaccard.items()}


def comparison_figure(maps: dict[str, np.ndarray], segments: dict[str, np.ndarray], k: int):
    """Rows: the common spaces' first two PCA components; columns: the methods."""
    figure, axes = subplots(
        len(maps), len(segments), figsize=(4.2 * len(segments), 3.8 * len(maps)), squeeze=False
    )
    for row, (space, points) in enumerate(maps.items()):
        for column, (method, labels) in enumerate(segments.items()):
            axis = axes[row, column]
            scatter_segments(axis, points[:, 0], points[:, 1], labels)
            axis.set_title(f"{METHODS[method]}\nin the {SPACES[space]}", fontsize="medium")
            axis.set_xlabel("PCA 1")
            axis.set_ylabel("PCA 2")
    figure.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="outside right upper",
        markerscale=6,
        fontsize="small",
    )
    figure.suptitle(f"The same customers, k = {k}: one colour per segment (segment 1 = largest)")
    return figure


class Comparison(NamedTuple):
    """The three methods scored on the customers all of them keep."""

    metrics: dict[str, float]
    ids: pd.Index  # the customers all methods keep, in customer order
    segments: dict[str, np.ndarray]  # each method's segments of those customers
    tabular_space: np.ndarray  # their rows of the Method-1 matrix
    top_columns: dict[str, list[str]]  # each method's leading surrogate columns
    refitted_rows: int  # the sample the baselines are refitted on
    kprototypes_numbers: list[str]  # the numeric columns K-Prototypes reads


def compare_methods(
    customers: pd.DataFrame,
    labels: dict[str, pd.Series],
    ids: pd.Index,
    spaces: dict[str, np.ndarray],
    stability_found: dict[str, float],
    dataset: Dataset,
    params: Params,
) -> Comparison:
    """Every measure of the comparison, on the customers ``ids`` (``compared_rows``), whose rows of
    the tabular and embedding matrices are ``spaces``; the embedding segments' refits are the
    stability stage's (``stability_found``), the baselines are refitted with the same settings."""
    segments = {method: series.loc[ids].to_numpy() for method, series in labels.items()}
    common = len(common_rows(labels, customers.index))
    metrics: dict[str, float] = {"common_rows": common}
    if len(ids) < common:
        metrics["compared_rows"] = len(ids)
    metrics.update(space_scores(spaces, segments, params.silhouette_max_rows, params.seed))
    common = customers.loc[ids]
    surrogates, top = surrogate_scores(common, dataset, segments, params.explain, params.seed)
    metrics.update(surrogates)
    metrics.update(agreement(segments))
    metrics.update(outcome_scores(common, segments, dataset))

    # The baselines are refitted as the stability stage refits the embedding segments (same
    # sample size, seeds and rounds), whose results are taken from it rather than computed again.
    metrics.update(
        {f"embedding_{key}": value for key, value in refit_scores(stability_found).items()}
    )
    sample = sample_rows(len(ids), params.stability.rows, params.seed)
    tabular_sample = spaces["tabular"][sample]
    # K-Prototypes sees the frame it was fitted on: power transform fitted on all Method-1 inliers.
    frame_sample = prototype_frame(customers.loc[labels["kprototypes"].index], dataset).loc[
        ids[sample]
    ]
    refits = {
        "tabular": lambda picked, seed: fit_segments(
            tabular_sample[picked],
            params.k,
            params.comparison.tabular.n_init,
            seed,
            max_iter=params.comparison.tabular.max_iter,
        )[0],
        "kprototypes": lambda picked, seed: fit_prototypes(
            frame_sample.iloc[picked],
            params.k,
            params.comparison.kprototypes.n_init,
            params.comparison.kprototypes.max_iter,
            seed,
        )[0],
    }
    for method, fit in refits.items():
        scores = refit_stability(
            fit,
            segments[method][sample],
            params.k,
            params.stability.seeds,
            params.stability.bootstrap_rounds,
            params.seed,
        )
        metrics.update({f"{method}_{measure}": value for measure, value in scores.items()})
    return Comparison(
        metrics,
        ids,
        segments,
        spaces["tabular"],
        top,
        len(sample),
        numeric_columns(frame_sample),
    )
