"""The elbow study: its curves per k, the k it suggests for three blobs, and k_max refused when not
below the rows."""

from __future__ import annotations

import pytest

from segmentation.artifacts import PipelineError
from segmentation.config import StabilityParams
from segmentation.evaluation import elbow, stability
from segmentation.model.sampling import sample_rows


def test_elbow_curve_has_every_k_and_the_knee_finds_three_blobs(blobs):
    curve = elbow.elbow_curve(blobs[0], range(2, 8), n_init=2, seed=0, silhouette_max_rows=1000)
    assert curve["n_clusters"].tolist() == list(range(2, 8))
    assert list(curve.columns) == [
        "n_clusters",
        *elbow.CURVES,
        "silhouette_ci95",
        "silhouette_sampled",
    ]
    assert curve["inertia"].is_monotonic_decreasing
    settings = StabilityParams(rows=200, seeds=2, bootstrap_rounds=2)
    sample = blobs[0][sample_rows(len(blobs[0]), settings.rows, 0)]
    stable = elbow.stability_curve(stability.kmeans_refits(sample, range(2, 8), 1, settings, 0))
    assert list(stable.columns) == ["n_clusters", "bootstrap_ari", "seed_ari", "stability"]
    assert stable.set_index("n_clusters").loc[3].tolist() == [1.0, 1.0, 1.0]
    suggestion = stability.suggest_k(curve.merge(stable, on="n_clusters"))
    assert [suggestion[key] for key in ("suggested_k", "elbow_k", "best_silhouette_k")] == [3, 3, 3]


def test_elbow_refuses_k_max_not_below_the_rows(blobs):
    with pytest.raises(PipelineError, match="elbow.k_max=300"):
        elbow.elbow_curve(blobs[0][:300], range(2, 301), n_init=1, seed=0, silhouette_max_rows=1000)
