"""Cluster validity scores: the silhouette as sklearn computes it, and good labels scored above
shuffled ones."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from segmentation.evaluation import validity as scoring


def test_cluster_metrics_match_sklearn_and_separate_good_from_random_labels(blobs):
    vectors, truth = blobs
    good, shuffled = scoring.cluster_metrics(
        vectors, [truth, np.random.default_rng(0).permutation(truth)], 1000, seed=0
    )
    assert good["silhouette"] == pytest.approx(silhouette_score(vectors, truth))
    assert (good["silhouette_sampled"], good["silhouette_ci95"]) == (0, 0.0)
    assert (
        good["silhouette"] > shuffled["silhouette"]
        and good["davies_bouldin"] < shuffled["davies_bouldin"]
    )
