"""PCA and t-SNE maps coloured by segment, and the validity scores of a data set's segments,
streamed above ``sample_fit_rows`` customers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import (
    subplots,
)
from segmentation.config import Layout, Params
from segmentation.evaluation.validity import cluster_metrics, streamed_cluster_metrics
from segmentation.model.sampling import fits_on_sample, read_inlier_vectors, read_inliers

# plot name: (x and y columns of the projections, title)
MAPS = {
    "pca_map": (("pca_1", "pca_2"), "PCA of the standardized embeddings"),
    "tsne_map": (("tsne_1", "tsne_2"), "t-SNE of the embeddings"),
}


def map_points(
    coordinates: pd.DataFrame, columns: tuple[str, str], n_points: int, seed: int
) -> pd.DataFrame:
    """A seeded sample of one map as ``map_x, map_y, segment`` rows:
    enough to see the shape in ``dvc plots``."""
    sample = coordinates.sample(n=min(n_points, len(coordinates)), random_state=seed).sort_index()
    return pd.DataFrame(
        {"map_x": sample[columns[0]], "map_y": sample[columns[1]], "segment": sample["segment"]}
    )


def scatter_segments(axis, x: np.ndarray, y: np.ndarray, segments: np.ndarray) -> None:
    """One colour per segment, in segment order, so segment n has the same colour on every map."""
    for segment in np.unique(segments):
        members = segments == segment
        axis.scatter(
            x[members], y[members], s=1.5, alpha=0.5, label=f"segment {segment}", rasterized=True
        )


def map_figure(coordinates: pd.DataFrame, columns: tuple[str, str], title: str):
    figure, axis = subplots(figsize=(6.5, 5.5))
    scatter_segments(
        axis,
        coordinates[columns[0]].to_numpy(),
        coordinates[columns[1]].to_numpy(),
        coordinates["segment"].to_numpy(),
    )
    axis.set_xlabel(columns[0])
    axis.set_ylabel(columns[1])
    axis.set_title(title)
    axis.legend(markerscale=6, fontsize="small", loc="best")
    return figure


def validity_scores(paths: Layout, params: Params, segments: np.ndarray) -> dict[str, float]:
    """``cluster_metrics`` of the inliers' segments (in the inliers' order).

    Above ``sample_fit_rows`` customers the inliers are read in blocks from the memory-mapped
    embeddings, so memory does not grow with the customers.
    """
    if fits_on_sample(paths, params):
        return streamed_cluster_metrics(
            read_inliers(paths), segments, params.silhouette_max_rows, params.seed
        )
    _, _, vectors = read_inlier_vectors(paths)
    (scores,) = cluster_metrics(vectors, [segments], params.silhouette_max_rows, params.seed)
    return scores
