"""Stage 6: KMeans with the chosen k on the inliers; segments numbered 1..k, largest first.

KMeans is fitted on a seeded sample of ``sample_fit_rows`` inliers (all of them below that) and
every inlier then gets its nearest centroid, in blocks, as the segment model places new customers.
"""

from __future__ import annotations

import numpy as np

from segmentation.artifacts import run, write_csv_chunks, write_metrics, write_npy
from segmentation.config import layout, load_params
from segmentation.model.kmeans import fit_kmeans, inlier_labels
from segmentation.model.sampling import read_inliers


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    inliers = read_inliers(paths)
    labels, centroids, inertia = fit_kmeans(
        inliers, params.k, params.kmeans.n_init, params.sample_fit_rows, params.seed
    )
    write_csv_chunks(paths.labels, inlier_labels(paths, labels))
    write_npy(paths.centroids, centroids)
    shares = np.bincount(labels)[1:] / len(labels)
    sampled = (
        {"fit_sample_rows": params.sample_fit_rows} if params.sample_fit_rows < len(labels) else {}
    )
    write_metrics(
        paths.metrics / "kmeans.json",
        {
            "inertia": inertia,
            "largest_segment_share": shares.max(),
            "smallest_segment_share": shares.min(),
            **sampled,
        },
    )


if __name__ == "__main__":
    run(main)
