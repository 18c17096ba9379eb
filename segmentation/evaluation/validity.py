"""Internal validity scores of a segmentation, shared by the elbow study and the evaluation.

The silhouette is computed here rather than with ``sklearn.metrics.silhouette_score``: the same
exact value (to ~1e-7) several times faster, because the pairwise distances are computed once per
pair of row blocks by one float32 GEMM each (the squared norms ride along as two extra columns),
using symmetry, and reduced to per-cluster sums with a one-hot
matrix product for every labeling at once (the elbow scores all its k with one pass over the
distances). Above ``max_rows`` rows the exact value (quadratic in rows) gives way to a seeded
estimate: the exact silhouette of a random sample of rows, each scored against all rows, with a
95% confidence interval. That estimate reads the rows in blocks. Above ``sample_fit_rows``
customers the evaluation scores the embedding shards one at a time, here or on Ray, as two
reductions: each segment's size and vector sum (``shard_cluster_sums``), then the distances to the
centroids and from the silhouette's sample (``shard_dispersions``); memory does not grow with rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, pairwise_distances

from segmentation.embedding.shards import Shard
from segmentation.model.sampling import MatrixRows, as_rows, sample_rows

BLOCK_ROWS = 2048
Z_95 = 1.959964


def _cluster_codes(labelings: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[slice]]:
    """Each labeling's clusters as codes 0..k-1, and where its columns sit in ``_indicator``."""
    codes, spans, start = [], [], 0
    for labels in labelings:
        values, code = np.unique(labels, return_inverse=True)
        if not 2 <= len(values) <= len(labels) - 1:
            raise ValueError(f"silhouette needs 2 to n_samples - 1 clusters, got {len(values)}")
        codes.append(code)
        spans.append(slice(start, start + len(values)))
        start += len(values)
    return codes, spans


def _indicator(
    codes: list[np.ndarray], spans: list[slice], rows: slice = slice(None)
) -> np.ndarray:
    """One float32 indicator matrix of ``rows`` with the clusters of every labeling side by side."""
    block = [code[rows] for code in codes]
    indicator = np.zeros((len(block[0]), spans[-1].stop), dtype=np.float32)
    positions = np.arange(len(indicator))
    for code, span in zip(block, spans):
        indicator[positions, span.start + code] = 1.0
    return indicator


def _distances(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows of the two factors made by ``_prepared``."""
    block = left @ right.T
    np.maximum(block, 0.0, out=block)
    return np.sqrt(block, out=block)


def _per_sample(sums: np.ndarray, codes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """sklearn's per-sample silhouette from each row's distance sums to every cluster."""
    rows = np.arange(len(codes))
    own = sizes[codes]
    a = sums[rows, codes] / np.maximum(own - 1, 1)
    means = sums / sizes[None, :]
    means[rows, codes] = np.inf
    b = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = (b - a) / np.maximum(a, b)
    scores[own == 1] = 0.0  # sklearn: a singleton's silhouette is 0
    return np.nan_to_num(scores)


def _prepared(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factors L, R with (L @ R.T)[i, j] = |x_i|^2 + |x_j|^2 - 2 x_i.x_j:
    one GEMM per block, no extra passes.

    Centering leaves distances unchanged and shrinks the norms,
    so the float32 expansion cancels less.
    """
    centered = np.array(
        vectors, dtype=np.float64
    )  # a copy: the caller's matrix is not centred in place
    return _factors(centered, centered.mean(axis=0))


def _factors(centered: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_prepared``'s factors of the rows of ``centered`` (float64, centred here in place)."""
    centered -= mean
    squared = np.einsum("ij,ij->i", centered, centered)
    ones = np.ones_like(squared)
    left = np.column_stack([centered, squared, ones]).astype(np.float32)
    right = np.column_stack([-2.0 * centered, ones, squared]).astype(np.float32)
    return left, right


def silhouette_factors(sample: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The left factors of a silhouette sample's rows, centred by the mean of every row."""
    return _factors(sample.astype(np.float64), mean)[0]


def exact_silhouettes(vectors: np.ndarray, labelings: Sequence[np.ndarray]) -> list[float]:
    """The mean silhouette of each labeling over all rows (Euclidean), as sklearn defines it."""
    left, right = _prepared(vectors)
    codes, spans = _cluster_codes(labelings)
    indicator = _indicator(codes, spans)
    sums = np.zeros(indicator.shape, dtype=np.float64)
    starts = range(0, len(left), BLOCK_ROWS)
    for i in starts:
        rows_i = slice(i, i + BLOCK_ROWS)
        for j in starts[i // BLOCK_ROWS :]:
            rows_j = slice(j, j + BLOCK_ROWS)
            block = _distances(left[rows_i], right[rows_j])
            if i == j:
                np.fill_diagonal(block, 0.0)
            sums[rows_i] += block @ indicator[rows_j]
            if i != j:
                sums[rows_j] += block.T @ indicator[rows_i]
    results = []
    for code, span in zip(codes, spans):
        sizes = np.bincount(code).astype(np.float64)
        results.append(float(_per_sample(sums[:, span], code, sizes).mean()))
    return results


def sampled_silhouettes(
    vectors: np.ndarray | MatrixRows, labelings: Sequence[np.ndarray], rows: int, seed: int
) -> list[tuple[float, float]]:
    """Seeded estimate of each labeling's silhouette and its 95% confidence half-width.

    ``rows`` customers drawn without replacement are scored exactly against all rows; their mean
    is unbiased for the full silhouette, and the interval uses the finite-population correction.
    The rows are read in blocks, twice (the mean for centring, then the distances), so a
    memory-mapped matrix is never loaded: memory holds the sample's factors and one block.
    """
    data = as_rows(vectors)
    codes, spans = _cluster_codes(labelings)
    chosen = sample_rows(len(data), rows, seed)
    mean = np.zeros(data.dimension)
    for _, block in data.blocks():
        mean += block.sum(axis=0, dtype=np.float64)
    mean /= len(data)
    left = silhouette_factors(data.take(chosen), mean)
    sums = np.zeros((rows, spans[-1].stop), dtype=np.float64)
    for span, block in data.blocks(BLOCK_ROWS):
        add_sample_distances(sums, left, chosen, span, block, mean, _indicator(codes, spans, span))
    return [
        silhouette_estimate(
            sums[:, span], code[chosen], np.bincount(code).astype(np.float64), len(data)
        )
        for code, span in zip(codes, spans)
    ]


def add_sample_distances(
    sums: np.ndarray,
    left: np.ndarray,
    chosen: np.ndarray,
    span: slice,
    block: np.ndarray,
    mean: np.ndarray,
    indicator: np.ndarray,
) -> None:
    """Add to each sampled row's per-cluster distance sums (``sums``) its distances to the rows
    ``span`` (``block``, with their cluster ``indicator``); ``left`` are the sample's factors and
    ``chosen`` its sorted positions, so that a sampled row's distance to itself is left out."""
    if not len(left):
        return
    _, right = _factors(block.astype(np.float64), mean)
    first, last = np.searchsorted(chosen, [span.start, span.stop])
    for i in range(0, len(left), BLOCK_ROWS):
        distances = _distances(left[i : i + BLOCK_ROWS], right)
        inside = np.arange(max(first, i), min(last, i + BLOCK_ROWS))
        distances[inside - i, chosen[inside] - span.start] = 0.0
        sums[i : i + BLOCK_ROWS] += distances @ indicator


def silhouette_estimate(
    sums: np.ndarray, sample_codes: np.ndarray, sizes: np.ndarray, population: int
) -> tuple[float, float]:
    """The sample's mean silhouette and its 95% half-width (finite-population corrected), from its
    rows' distance sums to every cluster of ``sizes`` rows."""
    rows = len(sample_codes)
    scores = _per_sample(sums, sample_codes, sizes)
    correction = np.sqrt(1.0 - rows / population)
    return float(scores.mean()), float(Z_95 * scores.std(ddof=1) / np.sqrt(rows) * correction)


def cluster_metrics(
    vectors: np.ndarray, labelings: Sequence[np.ndarray], silhouette_max_rows: int, seed: int
) -> list[dict[str, float]]:
    """Davies-Bouldin (lower is better), Calinski-Harabasz and silhouette (higher is better)
    per labeling.

    ``silhouette_sampled`` says whether the silhouette is the exact value (0) or the seeded
    estimate over ``silhouette_max_rows`` rows (1); ``silhouette_ci95`` is its 95% half-width.
    """
    dispersions = [
        (davies_bouldin_score(vectors, labels), calinski_harabasz_score(vectors, labels))
        for labels in labelings
    ]
    return _with_silhouettes(vectors, labelings, dispersions, silhouette_max_rows, seed)


def shard_cluster_sums(
    rows: MatrixRows, shard: Shard, flags: pd.DataFrame, labels: pd.DataFrame
) -> pd.DataFrame:
    """Per segment of one shard's inliers (``flags``: the shard's outlier flags; ``labels``: its
    inliers' segments): their number (``size``) and the float64 sum of their vectors."""
    inliers = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    values, codes = np.unique(labels["segment"].to_numpy(), return_inverse=True)
    sums = np.zeros((len(values), rows.dimension))
    for span, block in MatrixRows(rows.matrix, inliers).blocks(BLOCK_ROWS):
        members = _indicator([codes], [slice(0, len(values))], span).T.astype(np.float64)
        sums += members @ block.astype(np.float64)
    frame = pd.DataFrame(sums, columns=[f"sum_{column}" for column in range(rows.dimension)])
    frame.insert(0, "segment", values)
    frame.insert(1, "size", np.bincount(codes, minlength=len(values)))
    return frame


@dataclass(frozen=True)
class Dispersion:
    """What each shard needs to score its inliers: the segments (``values``), their centroids, the
    inliers' mean, and the silhouette sample's factors and sorted positions among the inliers."""

    values: np.ndarray
    centroids: np.ndarray
    mean: np.ndarray
    sample_factors: np.ndarray
    sample_positions: np.ndarray


SPREAD_ROW, WITHIN_ROW = 0, 1


def shard_dispersions(
    rows: MatrixRows,
    shard: Shard,
    dispersion: Dispersion,
    flags: pd.DataFrame,
    labels: pd.DataFrame,
) -> pd.DataFrame:
    """A column per segment: the sum of one shard's inliers' distances to their centroid (row
    ``SPREAD_ROW``) and of their squares (``WITHIN_ROW``), then each sampled customer's sum of
    distances to the shard's inliers of that segment."""
    inliers = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    codes = np.searchsorted(dispersion.values, labels["segment"].to_numpy())
    clusters, first_inlier = len(dispersion.values), labels.index.start
    spread, within = np.zeros(clusters), np.zeros(clusters)
    sums = np.zeros((len(dispersion.sample_positions), clusters))
    for span, block in MatrixRows(rows.matrix, inliers).blocks(BLOCK_ROWS):
        residuals = block.astype(np.float64) - dispersion.centroids[codes[span]]
        squared = np.einsum("ij,ij->i", residuals, residuals)
        spread += np.bincount(codes[span], weights=np.sqrt(squared), minlength=clusters)
        within += np.bincount(codes[span], weights=squared, minlength=clusters)
        add_sample_distances(
            sums,
            dispersion.sample_factors,
            dispersion.sample_positions,
            slice(first_inlier + span.start, first_inlier + span.stop),
            block,
            dispersion.mean,
            _indicator([codes], [slice(0, clusters)], span),
        )
    return pd.DataFrame(np.vstack([spread, within, sums]), columns=dispersion.values.astype(str))


def dispersion_scores(
    sizes: np.ndarray, centroids: np.ndarray, mean: np.ndarray, spread: np.ndarray, within: float
) -> tuple[float, float]:
    """sklearn's Davies-Bouldin and Calinski-Harabasz scores from per-cluster sizes, centroids and
    sums of distances to the centroid, the overall mean and the within-cluster sum of squares."""
    clusters, rows = len(sizes), sizes.sum()
    spread = spread / sizes
    between = pairwise_distances(centroids)
    if np.allclose(spread, 0) or np.allclose(between, 0):
        davies_bouldin = 0.0
    else:
        between[between == 0] = np.inf
        davies_bouldin = float(np.mean(np.max((spread[:, None] + spread) / between, axis=1)))
    dispersion = float(sizes @ np.square(centroids - mean).sum(axis=1))
    calinski_harabasz = (
        1.0 if within == 0 else dispersion * (rows - clusters) / (within * (clusters - 1.0))
    )
    return davies_bouldin, calinski_harabasz


def _with_silhouettes(
    vectors: np.ndarray | MatrixRows,
    labelings: Sequence[np.ndarray],
    dispersions: list[tuple[float, float]],
    silhouette_max_rows: int,
    seed: int,
) -> list[dict[str, float]]:
    if len(vectors) > silhouette_max_rows:
        silhouettes = sampled_silhouettes(vectors, labelings, silhouette_max_rows, seed)
    else:
        in_memory = (
            vectors.take(np.arange(len(vectors))) if isinstance(vectors, MatrixRows) else vectors
        )
        silhouettes = [(value, 0.0) for value in exact_silhouettes(in_memory, labelings)]
    sampled = len(vectors) > silhouette_max_rows
    return [
        validity_record(dispersion, silhouette, sampled)
        for dispersion, silhouette in zip(dispersions, silhouettes)
    ]


def validity_record(
    dispersion: tuple[float, float], silhouette: tuple[float, float], sampled: bool
) -> dict[str, float]:
    """The scores under their metric names, from (Davies-Bouldin, Calinski-Harabasz) and
    (silhouette, its 95% half-width)."""
    return {
        "davies_bouldin": dispersion[0],
        "calinski_harabasz": dispersion[1],
        "silhouette": silhouette[0],
        "silhouette_ci95": silhouette[1],
        "silhouette_sampled": int(sampled),
    }
