"""Rows of the embedding matrix read in blocks, and the seeded samples the stages fit on.

Above ``sample_fit_rows`` customers, ``outliers``, ``elbow`` and ``kmeans`` fit on a seeded sample
and every customer is then scored and assigned block by block from the memory-mapped matrix, so
memory stays flat in the number of customers. A mapped page counts in a process's resident
memory once it is read, so each block's pages are handed back to the kernel after the block is
copied: the file stays in the page cache, the process holds one block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError, picked_rows, read_csv
from segmentation.config import Layout, Params
from segmentation.embedding.shards import ShardedMatrix, read_vectors, release

BLOCK_ROWS = 8192
# Up to this many rows a sample is the head of a seeded shuffle of every position (the draw every
# committed result was made with); above it the shuffle would hold 8 bytes per row.
PERMUTED_ROWS = 1 << 25


def sample_rows(rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of ``size`` of ``rows`` rows; all of them if fewer.

    The one sampling rule of the project: the fits above ``sample_fit_rows``, the stability
    refits, the comparison, the sampled silhouette and the surrogate's SHAP rows all draw with it,
    so the same seed and sizes give the same rows everywhere.
    """
    if size >= rows:
        return np.arange(rows)
    if rows > PERMUTED_ROWS:
        # a shuffle of every position would take 8 bytes per row; this draw holds the sample only
        return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False, shuffle=False))
    return np.sort(np.random.default_rng(seed).permutation(rows)[:size])


def fits_on_sample(paths: Layout, params: Params) -> bool:
    """Whether the data set has more than ``sample_fit_rows`` customers (rows of its embeddings)."""
    return len(read_vectors(paths.embeddings)) > params.sample_fit_rows


class MatrixRows:
    """Some rows of a matrix (all by default, else the sorted ``positions``), read in blocks.

    The matrix may be in memory, memory-mapped (``read_npy(path, mmap_mode="r")``) or the embedding
    shards (``read_vectors``); the last two are only ever read one block at a time.
    """

    def __init__(self, matrix: np.ndarray, positions: np.ndarray | None = None):
        self.matrix = matrix
        self.positions = positions

    def __len__(self) -> int:
        return len(self.matrix) if self.positions is None else len(self.positions)

    @property
    def dimension(self) -> int:
        return self.matrix.shape[1]

    def blocks(self, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[slice, np.ndarray]]:
        """(where the block lies among these rows, a copy of its vectors), in order."""
        done = 0
        for start in range(0, len(self.matrix), block_rows):
            stop = min(start + block_rows, len(self.matrix))
            if self.positions is None:
                block = np.array(self.matrix[start:stop])
            else:
                first, last = np.searchsorted(self.positions, [start, stop])
                if first == last:
                    continue
                block = self.matrix[start:stop][self.positions[first:last] - start]
            release(self.matrix, start, stop)
            yield slice(done, done + len(block)), block
            done += len(block)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The vectors of ``indices`` (positions among these rows, in any order), read in one
        pass."""
        picked = indices if self.positions is None else self.positions[indices]
        if isinstance(self.matrix, np.ndarray) and not isinstance(self.matrix, np.memmap):
            return self.matrix[picked]
        order = np.argsort(picked, kind="stable")
        vectors = np.empty((len(picked), self.dimension), dtype=self.matrix.dtype)
        for span, block in MatrixRows(self.matrix, picked[order]).blocks():
            vectors[order[span]] = block
        return vectors


def as_rows(vectors: np.ndarray | MatrixRows) -> MatrixRows:
    return vectors if isinstance(vectors, MatrixRows) else MatrixRows(vectors)


def flag_chunks(path: Path) -> Iterator[np.ndarray]:
    """An outlier stage's flags (1 = outlier), a chunk of customers at a time, in row order."""
    with read_csv(path, usecols=["outlier"], chunksize=BLOCK_ROWS) as chunks:
        for chunk in chunks:
            yield chunk["outlier"].to_numpy(dtype=np.int8)


def flag_mismatch(paths: Layout, flags: int, customers: int) -> PipelineError:
    return PipelineError(
        f"{paths.outliers} has {flags} rows but {paths.embeddings} has {customers}; "
        "rerun 'dvc repro'"
    )


class InlierSample(NamedTuple):
    """A seeded sample of the inliers: their vectors, their positions among the inliers (sorted)
    and the number of inliers."""

    vectors: np.ndarray
    positions: np.ndarray
    inliers: int


def sample_inliers(paths: Layout, size: int, seed: int) -> InlierSample:
    """A seeded sample of ``size`` of the inliers (all of them if fewer): the rows kmeans and the
    elbow study fit on when ``size`` is ``sample_fit_rows``."""
    chosen, rows, inliers, _ = sample_inlier_rows(paths, size, seed)
    matrix = read_vectors(paths.embeddings)
    return InlierSample(MatrixRows(matrix).take(rows), chosen, inliers)


class InlierRows(NamedTuple):
    """A seeded sample of the inliers: their positions among the inliers and their rows among all
    customers (both sorted), the number of inliers and of customers."""

    positions: np.ndarray
    rows: np.ndarray
    inliers: int
    customers: int

    def fit_sample_metric(self) -> dict[str, int]:
        """``fit_sample_rows`` for a stage's metrics when the sample is not every inlier."""
        return {"fit_sample_rows": len(self.rows)} if len(self.rows) < self.inliers else {}


def sample_inlier_rows(paths: Layout, size: int, seed: int) -> InlierRows:
    """Where ``sample_inliers``' sample lies (``sample_flagged_rows`` of the outliers stage's
    flags)."""
    sample = sample_flagged_rows(paths.outliers, size, seed)
    matrix = read_vectors(paths.embeddings)
    if sample.customers != len(matrix):
        raise flag_mismatch(paths, sample.customers, len(matrix))
    return sample


def sample_flagged_rows(flags_path: Path, size: int, seed: int) -> InlierRows:
    """A seeded sample of ``size`` of the inliers of a flags file (all of them if fewer)."""
    return sample_kept_rows(lambda: (flags == 0 for flags in flag_chunks(flags_path)), size, seed)


def sample_kept_rows(
    kept_chunks: Callable[[], Iterator[np.ndarray]], size: int, seed: int
) -> InlierRows:
    """A seeded sample of ``size`` of the rows that ``kept_chunks()`` marks kept, a chunk at a time
    (all of them if fewer), from two passes over the chunks, so only the sample's positions are
    held; ``inliers`` counts the kept rows."""
    customers = inliers = 0
    for kept in kept_chunks():
        customers, inliers = customers + len(kept), inliers + int(kept.sum())
    chosen, picked = sample_rows(inliers, size, seed), []
    inliers_before = customers_before = 0
    for kept in kept_chunks():
        rows = np.flatnonzero(kept)
        first, last = np.searchsorted(chosen, [inliers_before, inliers_before + len(rows)])
        picked.append(customers_before + rows[chosen[first:last] - inliers_before])
        inliers_before, customers_before = inliers_before + len(rows), customers_before + len(kept)
    return InlierRows(chosen, np.concatenate(picked), inliers, customers)


def inlier_positions(flags_path: Path, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """The positions among a flags file's inliers of the inliers at the sorted ``rows``, and how
    many inliers it has, read a chunk at a time."""
    positions, inliers, done = [], 0, 0
    for flags in flag_chunks(flags_path):
        kept = flags == 0
        first, last = np.searchsorted(rows, [done, done + len(flags)])
        positions.append(inliers + np.cumsum(kept)[rows[first:last] - done] - 1)
        inliers, done = inliers + int(kept.sum()), done + len(flags)
    return np.concatenate(positions), inliers


def inliers_per_shard(paths: Layout, matrix: ShardedMatrix) -> list[int]:
    """How many customers ECOD kept in each shard of the embeddings, read in chunks."""
    counts, done = np.zeros(len(matrix.shards), dtype=np.int64), 0
    for flags in flag_chunks(paths.outliers):
        rows = done + np.flatnonzero(flags == 0)
        shards = np.searchsorted(matrix.starts, rows, side="right") - 1
        counts += np.bincount(shards, minlength=len(counts))
        done += len(flags)
    if done != len(matrix):
        raise flag_mismatch(paths, done, len(matrix))
    return counts.tolist()


def checked_inliers(
    paths: Layout, customers: pd.DataFrame, flags: pd.DataFrame, labels: pd.DataFrame
) -> np.ndarray:
    """Which of a shard's rows of the customer table are inliers, once its rows of the outlier
    flags and of the inliers' labels are checked to be the same customers in order."""
    ids = customers[CUSTOMER_ID].to_numpy()
    rows = f"rows {customers.index[0]} to {customers.index[-1]}"
    if not np.array_equal(ids, flags[CUSTOMER_ID].to_numpy()):
        raise PipelineError(
            f"{paths.customers} does not list the customers of {paths.outliers} in order "
            f"({rows}); rerun 'dvc repro'"
        )
    inliers = flags["outlier"].to_numpy() == 0
    if not np.array_equal(ids[inliers], labels[CUSTOMER_ID].to_numpy()):
        raise PipelineError(
            f"{paths.labels} does not list the inliers of {paths.outliers} in order ({rows}); "
            "rerun 'dvc repro'"
        )
    return inliers


def rows_at(path: Path, columns: list[str], positions: np.ndarray) -> tuple[pd.DataFrame, int]:
    """``columns`` of a stage's CSV at the sorted row ``positions``, read a chunk at a time, and
    how many rows the file has."""
    with read_csv(path, usecols=columns, chunksize=BLOCK_ROWS) as chunks:
        return picked_rows(chunks, positions)


def column_at(path: Path, column: str, positions: np.ndarray) -> np.ndarray:
    """``column`` of a stage's CSV at the sorted row ``positions``, read a chunk at a time."""
    return rows_at(path, [column], positions)[0][column].to_numpy()


def inlier_rows_at(
    path: Path,
    columns: list[str],
    ids: np.ndarray,
    flags: Path,
    positions: np.ndarray,
    inliers: int,
) -> pd.DataFrame:
    """``columns`` of a CSV of one row per inlier of the outlier ``flags`` (labels, projections)
    at its sorted ``positions``, checked: it has ``inliers`` rows, ``ids`` at those positions."""
    rows, count = rows_at(path, [CUSTOMER_ID, *columns], positions)
    if count != inliers or not np.array_equal(rows[CUSTOMER_ID].to_numpy(), ids):
        raise PipelineError(
            f"{path} does not list the inliers of {flags} in order; rerun 'dvc repro'"
        )
    return rows.loc[:, columns]


def aligned_blocks(
    matrix: np.ndarray, path: Path, columns: list[str]
) -> Iterator[tuple[MatrixRows, pd.DataFrame]]:
    """``matrix``'s rows a block at a time, each with its rows of ``columns`` of a stage's CSV that
    has one row per matrix row, in order."""
    done = 0
    with read_csv(path, usecols=columns, chunksize=BLOCK_ROWS) as chunks:
        for chunk in chunks:
            yield MatrixRows(matrix[done : done + len(chunk)]), chunk
            done += len(chunk)
    if done != len(matrix):
        raise PipelineError(
            f"{path} has {done} rows but its matrix {len(matrix)}; rerun 'dvc repro'"
        )


def read_inlier_vectors(paths: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The customer ids that ECOD kept, their rows in the matrix, and their embeddings."""
    matrix = read_vectors(paths.embeddings)
    flags = read_csv(paths.outliers)
    if len(flags) != len(matrix):
        raise PipelineError(
            f"{paths.outliers} has {len(flags)} rows but {paths.embeddings} has {len(matrix)}; "
            "rerun 'dvc repro'"
        )
    rows = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    return flags[CUSTOMER_ID].to_numpy()[rows], rows, MatrixRows(matrix).take(rows)


def read_segmented_sample(paths: Layout, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``sample_inliers``' sample of ``size`` inliers (all of them if fewer): their embeddings and
    segments, checked to be the same customers in order."""
    located = sample_inlier_rows(paths, size, seed)
    ids = column_at(paths.outliers, CUSTOMER_ID, located.rows)
    segments = inlier_rows_at(
        paths.labels, ["segment"], ids, paths.outliers, located.positions, located.inliers
    )["segment"].to_numpy()
    vectors = MatrixRows(read_vectors(paths.embeddings)).take(located.rows)
    return vectors, segments
