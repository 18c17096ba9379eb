"""The segment maps: PCA and t-SNE projections, and the seeded sample of points drawn on a map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.artifacts import PipelineError
from segmentation.evaluation import maps as evaluate
from segmentation.evaluation import projection as project


def test_projections_have_the_expected_shapes(blobs):
    components, variance = project.pca_projection(blobs[0], seed=0)
    assert (
        components.shape == (300, 3)
        and 0 < variance.sum() <= 1
        and variance[0] >= variance[1] >= variance[2]
    )
    coordinates = project.tsne_projection(blobs[0], perplexity=10, max_iter=250, seed=0)
    assert coordinates.shape == (300, 2)
    np.testing.assert_array_equal(
        coordinates, project.tsne_projection(blobs[0], perplexity=10, max_iter=250, seed=0)
    )
    with pytest.raises(PipelineError, match="tsne_perplexity"):
        project.tsne_projection(blobs[0][:20], perplexity=30, max_iter=250, seed=0)


def test_map_points_are_a_seeded_sample_with_segments():
    coordinates = pd.DataFrame(
        {"pca_1": np.arange(50.0), "pca_2": np.arange(50.0) * 2, "segment": np.arange(50) % 3 + 1}
    )
    sample = evaluate.map_points(coordinates, ("pca_1", "pca_2"), n_points=20, seed=1)
    assert list(sample.columns) == ["map_x", "map_y", "segment"] and len(sample) == 20
    assert (sample["map_y"] == sample["map_x"] * 2).all()
    assert sample.equals(evaluate.map_points(coordinates, ("pca_1", "pca_2"), n_points=20, seed=1))
