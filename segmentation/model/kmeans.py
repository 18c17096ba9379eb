"""KMeans segments numbered 1..k by size, largest first: fitted in memory, or on a seeded sample
of rows read in blocks (``fit_kmeans``, the segment model's path for every size), and the nearest
centroid of any vectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin_min

from segmentation.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    read_csv,
)
from segmentation.config import Layout
from segmentation.model.sampling import BLOCK_ROWS, MatrixRows, sample_rows


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
            f"k={k} must be below the number of inliers ({len(vectors)}); "
            "choose a smaller k, e.g. -S k=5"
        )
    model = KMeans(
        n_clusters=k, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed
    ).fit(vectors)
    segments, by_size = number_by_size(model.labels_, k)
    return segments, model.cluster_centers_[by_size].astype(np.float32), float(model.inertia_)


def nearest_segments(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment (1 = centroid row 0, as kmeans numbers them)
    and distance to that centroid per row."""
    rows, distances = pairwise_distances_argmin_min(vectors, centroids)
    return rows + 1, distances


def fit_kmeans(
    rows: MatrixRows, k: int, n_init: int, sample_fit_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """KMeans fitted on a seeded sample of ``sample_fit_rows`` of ``rows`` (all of them if fewer),
    then every row given its nearest centroid: segments numbered by size over all rows, the
    centroids in that order and the rows' inertia.

    The rows are read in blocks, so memory holds the sample and a few bytes per customer.
    """
    sample = rows.take(sample_rows(len(rows), sample_fit_rows, seed))
    _, sample_centroids, _ = fit_segments(sample, k, n_init, seed)
    nearest, inertia = np.empty(len(rows), dtype=np.int16), 0.0
    for span, block in rows.blocks():
        segments, distances = nearest_segments(block, sample_centroids)
        nearest[span] = segments - 1
        inertia += float(np.square(distances, dtype=np.float64).sum())
    labels, by_size = number_by_size(nearest, k)
    return labels, sample_centroids[by_size], inertia


def inlier_labels(paths: Layout, labels: np.ndarray) -> Iterator[pd.DataFrame]:
    """labels.csv's rows a chunk at a time, with the inliers' ids from the outliers stage's file."""
    done = 0
    with read_csv(paths.outliers, usecols=[CUSTOMER_ID, "outlier"], chunksize=BLOCK_ROWS) as chunks:
        for chunk in chunks:
            ids = chunk.loc[chunk["outlier"] == 0, CUSTOMER_ID].to_numpy()
            yield pd.DataFrame({CUSTOMER_ID: ids, "segment": labels[done : done + len(ids)]})
            done += len(ids)
