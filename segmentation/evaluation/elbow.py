"""The elbow curve: KMeans over a range of k with inertia, the validity scores and each k's
stability (refits with other seeds and on bootstrap resamples, ``evaluation/stability.py``), and
its figure."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from segmentation.artifacts import PipelineError, subplots
from segmentation.evaluation import stability
from segmentation.evaluation.validity import cluster_metrics

log = logging.getLogger("segments")

CURVES = ("inertia", "silhouette", "davies_bouldin", "calinski_harabasz")


def elbow_curve(
    vectors: np.ndarray, ks: range, n_init: int, seed: int, silhouette_max_rows: int
) -> pd.DataFrame:
    """Inertia and the three internal validity scores for each k
    (silhouette for all k in one pass)."""
    if ks.stop - 1 >= len(vectors):
        raise PipelineError(
            f"elbow.k_max={ks.stop - 1} must be below the number of inliers ({len(vectors)}); "
            "lower it"
        )
    models = [
        KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(vectors)
        for k in ks
    ]
    scores = cluster_metrics(
        vectors, [model.labels_ for model in models], silhouette_max_rows, seed
    )
    rows = [
        {"n_clusters": k, "inertia": model.inertia_, **score}
        for k, model, score in zip(ks, models, scores)
    ]
    for row in rows:
        log.info(
            "elbow k=%d %s", row["n_clusters"], {key: round(value, 4) for key, value in row.items()}
        )
    return pd.DataFrame(rows).loc[
        :, ["n_clusters", *CURVES, "silhouette_ci95", "silhouette_sampled"]
    ]


def stability_curve(refits: dict[int, stability.Refits]) -> pd.DataFrame:
    """Each k's mean ARI across bootstrap resamples and across seeds, and its stability."""
    curve = stability.stability_per_k(refits)
    for row in curve.to_dict(orient="records"):
        log.info("stability k=%d %s", row["n_clusters"], {n: round(v, 4) for n, v in row.items()})
    return curve


def elbow_figure(curve: pd.DataFrame, suggestion: dict[str, int | float]):
    suggested = suggestion["suggested_k"]
    figure, axes = subplots(1, len(CURVES) + 1, figsize=(4 * (len(CURVES) + 1), 3.2))
    for axis, name in zip(axes, CURVES):
        axis.plot(curve["n_clusters"], curve[name], marker="o")
        axis.set_title(name.replace("_", " "))
    stable = axes[-1]
    for name, label in (("bootstrap_ari", "bootstrap resamples"), ("seed_ari", "seeds")):
        stable.plot(curve["n_clusters"], curve[name], marker="o", label=f"across {label}")
    stable.axhline(stability.STABLE_ARI, color="grey", linestyle=":", linewidth=1)
    stable.set_title("stability (mean ARI of refits)")
    stable.legend(fontsize="small")
    for axis in axes:
        axis.axvline(suggested, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("number of segments")
    figure.suptitle(
        f"Elbow study (dashed: suggested k = {suggested}; knee "
        f"{suggestion['elbow_k']}, most stable k = {suggestion['most_stable_k']}; "
        f"dotted: stable from ARI {stability.STABLE_ARI})"
    )
    return figure
