"""KMeans segments numbered 1..k by size, largest first: fitted in memory, or on a seeded sample
of rows read in blocks (``fit_kmeans``, the segment model's path for every size), and the nearest
centroid of any vectors.

The kmeans stage fits on the sample the same way, then finds every inlier's nearest centroid one
embedding shard at a time, here or on Ray (``nearest_shard``); the sizes that number the segments
are counted as the shards come back, and the labels are numbered in a second pass over their file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin_min

from segmentation.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    read_csv,
    write_csv,
    write_csv_chunks,
)
from segmentation.embedding.shards import Shard
from segmentation.model.sampling import BLOCK_ROWS, InlierRows, MatrixRows, sample_rows


def number_by_size(clusters: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments 1..k from largest to smallest, and the cluster ids in that order.

    Clustering algorithms number clusters arbitrarily; ordering by size makes segment 1 mean the
    same across runs and across methods.
    """
    rank, by_size = size_ranks(np.bincount(clusters, minlength=k))
    return rank[clusters] + 1, by_size


def size_ranks(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's place by size (0 = largest; ties keep the cluster order), and the clusters
    from largest to smallest."""
    by_size = np.argsort(-np.asarray(sizes), kind="stable")
    rank = np.empty(len(by_size), dtype=np.int64)
    rank[by_size] = np.arange(len(by_size))
    return rank, by_size


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
    nearest, squared = nearest_centroids(rows, sample_centroids)
    labels, by_size = number_by_size(nearest, k)
    return labels, sample_centroids[by_size], float(squared.sum())


def nearest_centroids(rows: MatrixRows, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid (0 = the first) and squared distance to it, a block at a time."""
    nearest, squared = [np.empty(0, dtype=np.int16)], [np.empty(0)]
    for _, block in rows.blocks():
        segments, distances = nearest_segments(block, centroids)
        nearest.append((segments - 1).astype(np.int16))
        squared.append(np.square(distances, dtype=np.float64))
    return np.concatenate(nearest), np.concatenate(squared)


def nearest_shard(
    rows: MatrixRows, shard: Shard, centroids: np.ndarray, flags: pd.DataFrame
) -> pd.DataFrame:
    """Each inlier of one shard (``flags``: its customers' ids and outlier flags) with its nearest
    centroid (0 = the first) and squared distance to it, in row order."""
    return nearest_inliers(rows, centroids, flags)


def nearest_inliers(rows: MatrixRows, centroids: np.ndarray, flags: pd.DataFrame) -> pd.DataFrame:
    """Each inlier among ``rows`` (``flags``: their customers' ids and outlier flags) with its
    nearest centroid (0 = the first) and squared distance to it, in row order."""
    inliers = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    nearest, squared = nearest_centroids(MatrixRows(rows.matrix, inliers), centroids)
    return pd.DataFrame(
        {
            CUSTOMER_ID: flags[CUSTOMER_ID].to_numpy()[inliers],
            "nearest": nearest,
            "squared_distance": squared,
        }
    )


class NearestCount:
    """The inliers per centroid and their inertia, over the ``nearest_shard`` frames passed
    through ``counted``, which drops the distances."""

    def __init__(self, k: int):
        self.sizes, self.inertia = np.zeros(k, dtype=np.int64), 0.0

    def counted(self, parts: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in parts:
            self.sizes += np.bincount(part["nearest"], minlength=len(self.sizes))
            self.inertia += float(part["squared_distance"].sum())
            yield part.drop(columns="squared_distance")


def write_labels(
    path: Path, nearest: Iterable[pd.DataFrame], k: int
) -> tuple[NearestCount, np.ndarray]:
    """labels.csv (customer id, segment 1..k, largest first) from the inliers' nearest centroids in
    row order, with their count and the centroids from largest to smallest.

    The sizes that number the segments are only known at the end, so the nearest centroids are
    written to a scratch file first and renumbered from it.
    """
    count = NearestCount(k)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".csv")
    os.close(descriptor)
    try:
        write_csv_chunks(Path(scratch), count.counted(nearest))
        rank, by_size = size_ranks(count.sizes)
        with read_csv(Path(scratch), chunksize=BLOCK_ROWS) as chunks:
            write_csv_chunks(
                path,
                (
                    pd.DataFrame(
                        {
                            CUSTOMER_ID: chunk[CUSTOMER_ID],
                            "segment": rank[chunk["nearest"].to_numpy()] + 1,
                        }
                    )
                    for chunk in chunks
                ),
            )
    finally:
        Path(scratch).unlink(missing_ok=True)
    return count, by_size


def write_fitted_labels(
    path: Path,
    sample: InlierRows,
    ids: np.ndarray,
    clusters: np.ndarray,
    k: int,
    nearest: Callable[[], Iterable[pd.DataFrame]],
) -> tuple[np.ndarray, np.ndarray]:
    """labels.csv of every inlier (customer id, segment 1..k, largest first) for a fit on the
    inlier ``sample``, whose customers ``ids`` fell in ``clusters`` (0..k-1); the sample's
    segments and the inliers per segment, segment 1's first.

    When the sample is every inlier its labels are the fit's own; otherwise every inlier gets its
    nearest centre from ``nearest()`` (``nearest_inliers``' frames, a chunk at a time).
    """
    if len(sample.rows) == sample.inliers:
        segments = number_by_size(clusters, k)[0]
        write_csv(path, pd.DataFrame({CUSTOMER_ID: ids, "segment": segments}))
        return segments, np.bincount(segments, minlength=k + 1)[1:]
    count, by_size = write_labels(path, nearest(), k)
    return size_ranks(count.sizes)[0][clusters] + 1, count.sizes[by_size]
