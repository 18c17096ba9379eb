"""The validity scores of a data set's segments: in memory up to ``sample_fit_rows`` customers,
and above it as two reductions over the embedding shards, here or on Ray (``engine``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import PipelineError, read_csv
from segmentation.cluster import AlignedCsv, CsvColumns, map_shards
from segmentation.config import Layout, Params
from segmentation.embedding.shards import read_vectors
from segmentation.evaluation.validity import (
    SPREAD_ROW,
    WITHIN_ROW,
    Dispersion,
    cluster_metrics,
    dispersion_scores,
    exact_silhouettes,
    shard_cluster_sums,
    shard_dispersions,
    silhouette_estimate,
    silhouette_factors,
    validity_record,
)
from segmentation.model.sampling import (
    column_at,
    fits_on_sample,
    inliers_per_shard,
    read_segmented_sample,
    sample_inliers,
)


def validity_scores(paths: Layout, params: Params) -> dict[str, float]:
    """``cluster_metrics`` of the inliers' segments.

    Above ``sample_fit_rows`` customers they are two reductions over the embedding shards, here or
    on Ray (``sharded_validity_scores``), so memory does not grow with the customers.
    """
    if fits_on_sample(paths, params):
        return sharded_validity_scores(
            paths, params.engine, params.silhouette_max_rows, params.seed
        )
    # every inlier: there are no more than sample_fit_rows
    vectors, segments = read_segmented_sample(paths, params.sample_fit_rows, params.seed)
    (scores,) = cluster_metrics(vectors, [segments], params.silhouette_max_rows, params.seed)
    return scores


def sharded_validity_scores(
    paths: Layout, engine: str, silhouette_max_rows: int, seed: int
) -> dict[str, float]:
    """``cluster_metrics`` of the inliers' segments, from the embedding shards one at a time:
    the segments' sizes and centroids first, then their spreads and the silhouette sample's
    distances; the silhouette is exact when there are at most ``silhouette_max_rows`` inliers."""
    matrix = read_vectors(paths.embeddings)
    # located once: both reductions read the same rows
    aligned = {
        "flags": AlignedCsv.located(CsvColumns(paths.outliers, ["outlier"]), matrix),
        "labels": AlignedCsv.located(
            CsvColumns(paths.labels, ["segment"], inliers_per_shard(paths, matrix)), matrix
        ),
    }
    totals = (
        pd.concat(map_shards(shard_cluster_sums, paths.embeddings, engine, aligned=aligned))
        .groupby("segment")
        .sum()
    )
    sizes = totals.pop("size").to_numpy(dtype=np.float64)
    values, sums, inliers = totals.index.to_numpy(), totals.to_numpy(), int(sizes.sum())
    if not 2 <= len(values) <= inliers - 1:
        raise PipelineError(
            f"{paths.labels}: {len(values)} segments among {inliers} inliers; "
            "the validity scores need 2 to inliers - 1"
        )
    centroids, mean = sums / sizes[:, None], sums.sum(axis=0) / inliers
    sampled = inliers > silhouette_max_rows
    # every inlier when there are no more than silhouette_max_rows: the exact silhouette's rows
    sample = sample_inliers(paths, silhouette_max_rows, seed)
    # the reduction measures distances from the sampled silhouette's rows only
    probes = slice(None) if sampled else slice(0)
    dispersion = Dispersion(
        values,
        centroids,
        mean,
        silhouette_factors(sample.vectors[probes], mean),
        sample.positions[probes],
    )
    spread, within, distances = np.zeros(len(values)), 0.0, 0.0
    parts = map_shards(shard_dispersions, paths.embeddings, engine, dispersion, aligned=aligned)
    for part in parts:
        table = part.to_numpy()
        spread, within = spread + table[SPREAD_ROW], within + table[WITHIN_ROW].sum()
        distances = distances + table[WITHIN_ROW + 1 :]
    scores = dispersion_scores(sizes, centroids, mean, spread, within)
    if sampled:
        codes = np.searchsorted(values, column_at(paths.labels, "segment", sample.positions))
        silhouette = silhouette_estimate(distances, codes, sizes, inliers)
    else:
        segments = read_csv(paths.labels, usecols=["segment"])["segment"].to_numpy()
        silhouette = (exact_silhouettes(sample.vectors, [segments])[0], 0.0)
    return validity_record(scores, silhouette, sampled)
