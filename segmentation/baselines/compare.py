"""The three methods side by side, on the same customers: the article's claim, checkable.

Every number here is computed on the customers that all three methods keep (the embedding ECOD
inliers that are also Method-1 ECOD inliers), so the methods are scored on identical rows. The
report written from these numbers is ``segmentation.reporting.comparison``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats.contingency import association
from sklearn.metrics import adjusted_rand_score

from segmentation.artifacts import PipelineError, metric_key, read_csv, subplots
from segmentation.baselines.kprototypes import fit_prototypes, numeric_columns
from segmentation.config import ExplainParams, Layout, Params
from segmentation.data.dataset import Dataset
from segmentation.data.outcomes import outcome_values
from segmentation.evaluation import stability
from segmentation.evaluation.maps import scatter_segments
from segmentation.evaluation.surrogate import explain, surrogate_features
from segmentation.evaluation.validity import cluster_metrics
from segmentation.model.kmeans import fit_segments
from segmentation.model.sampling import (
    BLOCK_ROWS,
    inlier_positions,
    sample_kept_rows,
    sample_rows,
)

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


class ComparedCustomers(NamedTuple):
    """The customers compared: every customer both ECODs keep, or above ``sample_fit_rows`` of
    them a seeded sample of that many. Their rows in the customer table and their positions among
    each ECOD's inliers (all sorted), and how many customers each ECOD and both keep."""

    rows: np.ndarray
    embedding_positions: np.ndarray
    tabular_positions: np.ndarray
    common: int
    embedding_inliers: int
    tabular_inliers: int


def kept_by_both(paths: Layout) -> Iterator[np.ndarray]:
    """Whether the embedding ECOD and Method 1's ECOD both keep each customer, a chunk at a
    time."""
    columns = {"usecols": ["outlier"], "chunksize": BLOCK_ROWS}
    with (
        read_csv(paths.outliers, **columns) as embedding,
        read_csv(paths.tabular_outliers, **columns) as tabular,
    ):
        for ours, theirs in itertools.zip_longest(embedding, tabular):
            if ours is None or theirs is None or len(ours) != len(theirs):
                raise PipelineError(
                    f"{paths.tabular_outliers} and {paths.outliers} flag different numbers of "
                    "customers; rerun 'dvc repro'"
                )
            yield (ours["outlier"].to_numpy() == 0) & (theirs["outlier"].to_numpy() == 0)


def compared_customers(paths: Layout, sample_fit_rows: int, seed: int) -> ComparedCustomers:
    """Where the compared customers lie, from the two ECODs' flags read a chunk at a time, so only
    the compared customers' positions are held."""
    common = sample_kept_rows(lambda: kept_by_both(paths), sample_fit_rows, seed)
    embedding = inlier_positions(paths.outliers, common.rows)
    tabular = inlier_positions(paths.tabular_outliers, common.rows)
    return ComparedCustomers(
        common.rows, embedding[0], tabular[0], common.inliers, embedding[1], tabular[1]
    )


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
    ids: pd.Index  # the customers compared, in customer order
    segments: dict[str, np.ndarray]  # each method's segments of those customers
    tabular_space: np.ndarray  # their rows of the Method-1 matrix
    top_columns: dict[str, list[str]]  # each method's leading surrogate columns
    refitted_rows: int  # the sample the baselines are refitted on
    kprototypes_numbers: list[str]  # the numeric columns K-Prototypes reads


def compare_methods(
    customers: pd.DataFrame,
    segments: dict[str, np.ndarray],
    prototypes: pd.DataFrame,
    common: int,
    spaces: dict[str, np.ndarray],
    stability_found: dict[str, float],
    dataset: Dataset,
    params: Params,
) -> Comparison:
    """Every measure of the comparison, on the compared ``customers`` (``compared_customers``, of
    ``common`` that every method keeps): each method's ``segments`` of them, their K-Prototypes
    frame (``prototypes``, as the kprototypes stage transformed it) and their rows of the tabular
    and embedding matrices (``spaces``). The embedding segments' refits are the stability stage's
    (``stability_found``); the baselines are refitted with the same settings."""
    metrics: dict[str, float] = {"common_rows": common}
    if len(customers) < common:
        metrics["compared_rows"] = len(customers)
    metrics.update(space_scores(spaces, segments, params.silhouette_max_rows, params.seed))
    surrogates, top = surrogate_scores(customers, dataset, segments, params.explain, params.seed)
    metrics.update(surrogates)
    metrics.update(agreement(segments))
    metrics.update(outcome_scores(customers, segments, dataset))

    # The baselines are refitted as the stability stage refits the embedding segments (same
    # sample size, seeds and rounds), whose results are taken from it rather than computed again.
    metrics.update(
        {f"embedding_{key}": value for key, value in refit_scores(stability_found).items()}
    )
    sample = sample_rows(len(customers), params.stability.rows, params.seed)
    tabular_sample = spaces["tabular"][sample]
    frame_sample = prototypes.iloc[sample]
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
        customers.index,
        segments,
        spaces["tabular"],
        top,
        len(sample),
        numeric_columns(frame_sample),
    )
