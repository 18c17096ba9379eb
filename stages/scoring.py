"""Internal validity scores of a segmentation, shared by the elbow study and the evaluation.

The silhouette is computed here rather than with ``sklearn.metrics.silhouette_score``: the same
exact value (to ~1e-7) several times faster, because the pairwise distances are computed once per
pair of row blocks by one float32 GEMM each (the squared norms ride along as two extra columns),
using symmetry, and reduced to per-cluster sums with a one-hot
matrix product for every labeling at once (the elbow scores all its k with one pass over the
distances). Above ``max_rows`` rows the exact value (quadratic in rows) gives way to a seeded
estimate: the exact silhouette of a random sample of rows, each scored against all rows, with a
95% confidence interval.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

BLOCK_ROWS = 2048
Z_95 = 1.959964


def _one_hot(labelings: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], list[slice]]:
    """One float32 indicator matrix with the clusters of every labeling side by side."""
    codes, spans, start = [], [], 0
    for labels in labelings:
        values, code = np.unique(labels, return_inverse=True)
        if not 2 <= len(values) <= len(labels) - 1:
            raise ValueError(f"silhouette needs 2 to n_samples - 1 clusters, got {len(values)}")
        codes.append(code)
        spans.append(slice(start, start + len(values)))
        start += len(values)
    indicator = np.zeros((len(labelings[0]), start), dtype=np.float32)
    rows = np.arange(len(indicator))
    for code, span in zip(codes, spans):
        indicator[rows, span.start + code] = 1.0
    return indicator, codes, spans


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
    """Factors L, R with (L @ R.T)[i, j] = |x_i|^2 + |x_j|^2 - 2 x_i.x_j: one GEMM per block, no extra passes.

    Centering leaves distances unchanged and shrinks the norms, so the float32 expansion cancels less.
    """
    centered = np.array(vectors, dtype=np.float64)  # a copy: the caller's matrix is not centred in place
    centered -= centered.mean(axis=0)
    squared = np.einsum("ij,ij->i", centered, centered)
    ones = np.ones_like(squared)
    left = np.column_stack([centered, squared, ones]).astype(np.float32)
    right = np.column_stack([-2.0 * centered, ones, squared]).astype(np.float32)
    return left, right


def exact_silhouettes(vectors: np.ndarray, labelings: Sequence[np.ndarray]) -> list[float]:
    """The mean silhouette of each labeling over all rows (Euclidean), as sklearn defines it."""
    left, right = _prepared(vectors)
    indicator, codes, spans = _one_hot(labelings)
    sums = np.zeros(indicator.shape, dtype=np.float64)
    starts = range(0, len(left), BLOCK_ROWS)
    for i in starts:
        rows_i = slice(i, i + BLOCK_ROWS)
        for j in starts[i // BLOCK_ROWS:]:
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


def sampled_silhouettes(vectors: np.ndarray, labelings: Sequence[np.ndarray], rows: int, seed: int) -> list[tuple[float, float]]:
    """Seeded estimate of each labeling's silhouette and its 95% confidence half-width.

    ``rows`` customers drawn without replacement are scored exactly against all rows; their mean
    is unbiased for the full silhouette, and the interval uses the finite-population correction.
    """
    left, right = _prepared(vectors)
    indicator, codes, spans = _one_hot(labelings)
    chosen = np.sort(np.random.default_rng(seed).choice(len(left), size=rows, replace=False))
    sums = np.zeros((rows, indicator.shape[1]), dtype=np.float64)
    for i in range(0, rows, BLOCK_ROWS):
        picked = chosen[i:i + BLOCK_ROWS]
        for j in range(0, len(left), BLOCK_ROWS):
            rows_j = slice(j, j + BLOCK_ROWS)
            block = _distances(left[picked], right[rows_j])
            inside = (picked >= j) & (picked < j + BLOCK_ROWS)
            block[np.flatnonzero(inside), picked[inside] - j] = 0.0  # a row's distance to itself
            sums[i:i + BLOCK_ROWS] += block @ indicator[rows_j]
    correction = np.sqrt(1.0 - rows / len(left))
    results = []
    for code, span in zip(codes, spans):
        sizes = np.bincount(code).astype(np.float64)
        scores = _per_sample(sums[:, span], code[chosen], sizes)
        results.append((float(scores.mean()), float(Z_95 * scores.std(ddof=1) / np.sqrt(rows) * correction)))
    return results


def cluster_metrics(vectors: np.ndarray, labelings: Sequence[np.ndarray], silhouette_max_rows: int, seed: int) -> list[dict[str, float]]:
    """Davies-Bouldin (lower is better), Calinski-Harabasz and silhouette (higher is better) per labeling.

    ``silhouette_sampled`` says whether the silhouette is the exact value (0) or the seeded
    estimate over ``silhouette_max_rows`` rows (1); ``silhouette_ci95`` is its 95% half-width.
    """
    if len(vectors) <= silhouette_max_rows:
        silhouettes = [(value, 0.0) for value in exact_silhouettes(vectors, labelings)]
    else:
        silhouettes = sampled_silhouettes(vectors, labelings, silhouette_max_rows, seed)
    sampled = int(len(vectors) > silhouette_max_rows)
    return [
        {
            "davies_bouldin": davies_bouldin_score(vectors, labels),
            "calinski_harabasz": calinski_harabasz_score(vectors, labels),
            "silhouette": value,
            "silhouette_ci95": half_width,
            "silhouette_sampled": sampled,
        }
        for labels, (value, half_width) in zip(labelings, silhouettes)
    ]
