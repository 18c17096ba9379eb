"""Stage 6: KMeans with the chosen k on the inliers; segments numbered 1..k from largest to smallest."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from stages.artifacts import CUSTOMER_ID, PipelineError, run, write_csv, write_metrics, write_npy
from stages.config import layout, load_params, read_inlier_vectors


def number_by_size(clusters: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments 1..k from largest to smallest, and the cluster ids in that order.

    Clustering algorithms number clusters arbitrarily; ordering by size makes segment 1 mean the
    same across runs and across methods.
    """
    by_size = np.argsort(-np.bincount(clusters, minlength=k), kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[by_size] = np.arange(k)
    return rank[clusters] + 1, by_size


def fit_segments(
    vectors: np.ndarray, k: int, n_init: int, seed: int, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray, float]:
    """Segment labels (1 = largest), centroids in that order, and the inertia."""
    if k >= len(vectors):
        raise PipelineError(
            f"k={k} must be below the number of inliers ({len(vectors)}); choose a smaller k, e.g. -S k=5"
        )
    model = KMeans(n_clusters=k, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed).fit(vectors)
    segments, by_size = number_by_size(model.labels_, k)
    return segments, model.cluster_centers_[by_size].astype(np.float32), float(model.inertia_)


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    ids, _, vectors = read_inlier_vectors(paths)
    labels, centroids, inertia = fit_segments(vectors, params.k, params.kmeans.n_init, params.seed)
    shares = np.bincount(labels)[1:] / len(labels)
    write_csv(paths.labels, pd.DataFrame({CUSTOMER_ID: ids, "segment": labels}))
    write_npy(paths.centroids, centroids)
    write_metrics(
        paths.metrics / "kmeans.json",
        {"inertia": inertia, "largest_segment_share": shares.max(), "smallest_segment_share": shares.min()},
    )


if __name__ == "__main__":
    run(main)
