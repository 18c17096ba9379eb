"""PCA and t-SNE maps coloured by segment, and the validity scores of a data set's segments,
streamed above ``sample_fit_rows`` customers."""

from __future__ import annotations

from itertools import zip_longest

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError, read_csv, subplots
from segmentation.config import Layout
from segmentation.model.sampling import BLOCK_ROWS

# plot name: (x and y columns of the projections, title)
MAPS = {
    "pca_map": (("pca_1", "pca_2"), "PCA of the standardized embeddings"),
    "tsne_map": (("tsne_1", "tsne_2"), "t-SNE of the embeddings"),
}
TSNE_X = MAPS["tsne_map"][0][0]


def mapped_segments(paths: Layout) -> pd.DataFrame:
    """The projections of the customers on the t-SNE map (every inlier below ``sample_fit_rows``,
    the sample above) with their segment; the projections and labels, both in the inliers' row
    order, are read a chunk at a time."""
    kept = []
    with (
        read_csv(paths.projections, chunksize=BLOCK_ROWS) as projections,
        read_csv(paths.labels, chunksize=BLOCK_ROWS) as labels,
    ):
        for coordinates, segments in zip_longest(projections, labels):
            if (
                coordinates is None
                or segments is None
                or not np.array_equal(coordinates[CUSTOMER_ID], segments[CUSTOMER_ID])
            ):
                raise PipelineError(
                    f"{paths.labels} and {paths.projections} disagree on the inlier rows; "
                    "rerun 'dvc repro'"
                )
            coordinates["segment"] = segments["segment"].to_numpy()
            kept.append(coordinates[coordinates[TSNE_X].notna()])
    return pd.concat(kept, ignore_index=True)


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
