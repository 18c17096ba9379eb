"""Helper stage between outliers and evaluate: k-independent 2-D/3-D projections of the inliers.

PCA (on standardized embeddings, as the article) and t-SNE depend only on the embeddings and the
outlier mask, so they live here: ``dvc exp run -S k=6`` recolours the maps without recomputing them.
The PCA is fitted on kmeans' seeded sample of ``sample_fit_rows`` inliers (all of them below
that) and above that size places every inlier shard by shard, here or on Ray (``engine``); the
t-SNE maps a seeded sample of ``project.tsne_rows`` of those inliers, its columns empty elsewhere.
"""

from __future__ import annotations

from segmentation.artifacts import CUSTOMER_ID, read_csv, run, write_csv_chunks, write_metrics
from segmentation.cluster import map_shards
from segmentation.config import layout, load_params
from segmentation.evaluation.projection import SampleProjection, project_shard
from segmentation.model.sampling import sample_inliers


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    sample = sample_inliers(paths, params.sample_fit_rows, params.seed)
    projection = SampleProjection.fit(sample.vectors, sample.positions, params.project, params.seed)
    sampled = sample.inliers > params.sample_fit_rows
    if sampled:
        parts = map_shards(
            project_shard,
            paths.embeddings,
            params.engine,
            projection.scaler,
            projection.pca,
            aligned={"flags": (paths.outliers, [CUSTOMER_ID, "outlier"])},
        )
    else:
        flags = read_csv(paths.outliers, usecols=[CUSTOMER_ID, "outlier"])
        inlier_ids = flags.loc[flags["outlier"] == 0, CUSTOMER_ID].to_numpy()
        parts = [projection.sample_coordinates(inlier_ids)]
    write_csv_chunks(paths.projections, projection.with_tsne(parts))
    variance = projection.pca.explained_variance_ratio_
    metrics = {f"pca_variance_{i + 1}": ratio for i, ratio in enumerate(variance)}
    metrics["pca_variance_first3"] = variance.sum()
    if sampled:
        metrics["fit_sample_rows"] = params.sample_fit_rows
    if len(projection.positions) < sample.inliers:
        metrics["tsne_map_rows"] = len(projection.positions)
    write_metrics(paths.metrics / "project.json", metrics)


if __name__ == "__main__":
    run(main)
