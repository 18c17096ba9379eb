"""The segment model's fitting steps: ECOD outlier flags, and k-means segments numbered by size,
seeded, and refused when k is not below the inliers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.artifacts import PipelineError
from segmentation.model import kmeans, outliers


def test_ecod_flags_the_far_points_and_the_contamination_share():
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(0, 1, (190, 8)), rng.normal(0, 1, (10, 8)) + 12])
    flags = outliers.detect_outliers(vectors, contamination=0.05, ids=np.arange(200).astype(str))
    assert flags["outlier"].sum() == 10
    assert flags.loc[190:, "outlier"].eq(1).all() and flags["customer_id"].iloc[-1] == "199"
    count = outliers.FlagCount()
    assert pd.concat(count.counted([flags[:150], flags[150:]])).equals(flags)
    assert count.metrics() == {
        "customers": 200,
        "inliers": 190,
        "outliers": 10,
        "outlier_share": 0.05,
    }


def test_segments_are_numbered_by_size_and_seeded(blobs):
    vectors = np.vstack([blobs[0], blobs[0][blobs[1] == 2]])  # make cluster "2" the largest
    labels, centroids, inertia = kmeans.fit_segments(vectors, k=3, n_init=10, seed=0)
    sizes = np.bincount(labels)[1:]
    assert labels.min() == 1 and list(sizes) == sorted(sizes, reverse=True) and sizes[0] == 200
    assert centroids.shape == (3, 6) and centroids.dtype == np.float32 and inertia > 0
    again = kmeans.fit_segments(vectors, k=3, n_init=10, seed=0)
    assert np.array_equal(labels, again[0]) and np.array_equal(centroids, again[1])
    for segment in (1, 2, 3):
        np.testing.assert_allclose(
            centroids[segment - 1], vectors[labels == segment].mean(axis=0), rtol=1e-4, atol=1e-4
        )


def test_kmeans_refuses_k_not_below_the_inliers(blobs):
    with pytest.raises(PipelineError, match=r"k=300 must be below the number of inliers \(300\)"):
        kmeans.fit_segments(blobs[0], k=300, n_init=1, seed=0)
