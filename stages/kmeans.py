"""Stage 6: KMeans with the chosen k on the inliers; segments numbered 1..k, largest first.

KMeans is fitted on a seeded sample of ``sample_fit_rows`` inliers (all of them below that) and
every inlier then gets its nearest centroid, shard by shard, here or on Ray (``engine``), as the
segment model places new customers.
"""

from __future__ import annotations

from segmentation.artifacts import CUSTOMER_ID, run, write_metrics, write_npy
from segmentation.cluster import map_shards
from segmentation.config import layout, load_params
from segmentation.model.kmeans import fit_segments, nearest_shard, write_labels
from segmentation.model.sampling import sample_inliers


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    sample = sample_inliers(paths, params.sample_fit_rows, params.seed)
    _, sample_centroids, _ = fit_segments(
        sample.vectors, params.k, params.kmeans.n_init, params.seed
    )
    nearest = map_shards(
        nearest_shard,
        paths.embeddings,
        params.engine,
        sample_centroids,
        aligned={"flags": (paths.outliers, [CUSTOMER_ID, "outlier"])},
    )
    count, by_size = write_labels(paths.labels, nearest, params.k)
    write_npy(paths.centroids, sample_centroids[by_size])
    shares = count.sizes / sample.inliers
    sampled = sample.inliers > params.sample_fit_rows
    write_metrics(
        paths.metrics / "kmeans.json",
        {
            "inertia": count.inertia,
            "largest_segment_share": shares.max(),
            "smallest_segment_share": shares.min(),
            **({"fit_sample_rows": params.sample_fit_rows} if sampled else {}),
        },
    )


if __name__ == "__main__":
    run(main)
