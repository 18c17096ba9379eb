"""Stage 5: the elbow study, KMeans over a range of k on the inliers; independent of the chosen k.

Above ``sample_fit_rows`` customers the curve is that of the seeded inlier sample kmeans fits on.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from kneed import KneeLocator
from sklearn.cluster import KMeans

from stages.artifacts import PipelineError, run, subplots, write_csv, write_metrics, write_png
from stages.config import layout, load_params, read_inlier_vectors
from stages.scoring import cluster_metrics
from stages.streaming import fit_sample, fits_on_sample, read_inliers

log = logging.getLogger("segments")

CURVES = ("inertia", "silhouette", "davies_bouldin", "calinski_harabasz")


def elbow_curve(vectors: np.ndarray, ks: range, n_init: int, seed: int, silhouette_max_rows: int) -> pd.DataFrame:
    """Inertia and the three internal validity scores for each k (silhouette for all k in one pass)."""
    if ks.stop - 1 >= len(vectors):
        raise PipelineError(
            f"elbow.k_max={ks.stop - 1} must be below the number of inliers ({len(vectors)}); lower it"
        )
    models = [KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(vectors) for k in ks]
    scores = cluster_metrics(vectors, [model.labels_ for model in models], silhouette_max_rows, seed)
    rows = [{"n_clusters": k, "inertia": model.inertia_, **score} for k, model, score in zip(ks, models, scores)]
    for row in rows:
        log.info("elbow k=%d %s", row["n_clusters"], {key: round(value, 4) for key, value in row.items()})
    return pd.DataFrame(rows).loc[:, ["n_clusters", *CURVES, "silhouette_ci95", "silhouette_sampled"]]


def suggest_k(curve: pd.DataFrame) -> dict[str, int]:
    """The knee of the inertia curve (Kneedle), falling back to the best silhouette if there is none."""
    best_silhouette = int(curve.loc[curve["silhouette"].idxmax(), "n_clusters"])
    knee = KneeLocator(curve["n_clusters"], curve["inertia"], curve="convex", direction="decreasing").knee
    return {
        "suggested_k": best_silhouette if knee is None else int(knee),
        "best_silhouette_k": best_silhouette,
    }


def elbow_figure(curve: pd.DataFrame, suggested: int):
    figure, axes = subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    for axis, name in zip(axes, CURVES):
        axis.plot(curve["n_clusters"], curve[name], marker="o")
        axis.axvline(suggested, color="grey", linestyle="--", linewidth=1)
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("number of segments")
    figure.suptitle(f"Elbow study (dashed: suggested k = {suggested})")
    return figure


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    if fits_on_sample(paths, params):
        vectors = fit_sample(read_inliers(paths), params)  # the inliers kmeans fits on
    else:
        _, _, vectors = read_inlier_vectors(paths)
    curve = elbow_curve(vectors, range(params.elbow.k_min, params.elbow.k_max + 1), params.elbow.n_init, params.seed,
                        params.silhouette_max_rows)
    suggestion = suggest_k(curve)
    write_csv(paths.plots / "elbow.csv", curve)
    write_png(paths.plots / "elbow.png", elbow_figure(curve, suggestion["suggested_k"]))
    write_metrics(paths.metrics / "elbow.json", {**suggestion, "silhouette_sampled": int(curve["silhouette_sampled"].iloc[0])})


if __name__ == "__main__":
    run(main)
