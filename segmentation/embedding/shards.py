"""The embedding matrix as a folder of row shards: ``shard-000000.npy``, ... and ``index.json``.

Each shard is a plain float32 ``.npy`` holding the vectors of a contiguous range of customers, in
the table's row order, written by the process that embedded it (a Ray worker on a cluster). A table
that fits in one shard is therefore stored exactly as a single ``.npy`` matrix would be. The index
gives each shard's first row, its row count and the customer ids at its two ends, so a reader can
tell which customers a shard holds without opening it; shards are read back by first row, whatever
order they were written in. Every shard is memory-mapped, and a read of a range of rows touches
only the shards it spans.
"""

from __future__ import annotations

import mmap
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segmentation.artifacts import PipelineError, read_json, read_npy, write_json, write_npy

INDEX = "index.json"
DTYPE = np.float32


def shard_file(folder: Path, number: int) -> Path:
    return folder / f"shard-{number:06d}.npy"


@dataclass(frozen=True)
class Shard:
    """Where a shard's rows lie in the whole matrix, and whose they are."""

    file: str
    start: int
    rows: int
    first_id: str
    last_id: str


def write_index(folder: Path, shards: list[Shard], dimension: int) -> None:
    ordered = sorted(shards, key=lambda shard: shard.start)
    write_json(
        folder / INDEX,
        {
            "rows": sum(shard.rows for shard in ordered),
            "dimension": dimension,
            "dtype": np.dtype(DTYPE).name,
            "shards": [asdict(shard) for shard in ordered],
        },
    )


def read_index(folder: Path) -> tuple[list[Shard], int]:
    """The shards in row order and the dimension; an index that does not tile its rows from the
    first to the last is refused."""
    index = read_json(folder / INDEX)
    try:
        shards = sorted((Shard(**entry) for entry in index["shards"]), key=lambda s: s.start)
        dimension, rows = int(index["dimension"]), int(index["rows"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(
            f"{folder / INDEX}: not a shard index ({exc}); rerun 'dvc repro embed' to rebuild it"
        ) from None
    expected = 0
    for shard in shards:
        if shard.start != expected:
            raise PipelineError(
                f"{folder / INDEX}: {shard.file} starts at row {shard.start}, where row "
                f"{expected} was due; rerun 'dvc repro embed' to rebuild the shards"
            )
        expected += shard.rows
    if expected != rows:
        raise PipelineError(
            f"{folder / INDEX}: its shards hold {expected} rows, not {rows}; "
            "rerun 'dvc repro embed' to rebuild the shards"
        )
    return shards, dimension


class ShardedMatrix:
    """The rows of every shard as one read-only matrix: ``len``, ``shape``, ``dtype`` and ranges of
    rows (``matrix[start:stop]``, a copy) read across shard boundaries; ``np.asarray`` reads all."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.shards, dimension = read_index(self.folder)
        self.starts = np.array([shard.start for shard in self.shards], dtype=np.int64)
        self.shape = (sum(shard.rows for shard in self.shards), dimension)
        self.dtype = np.dtype(DTYPE)
        self._mapped: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def shard(self, number: int) -> np.ndarray:
        """Shard ``number`` (in row order), memory-mapped and checked against the index."""
        if number not in self._mapped:
            entry = self.shards[number]
            matrix = read_npy(self.folder / entry.file, mmap_mode="r")
            if matrix.shape != (entry.rows, self.shape[1]) or matrix.dtype != self.dtype:
                raise PipelineError(
                    f"{self.folder / entry.file}: {matrix.dtype} {matrix.shape}, but the index "
                    f"says {self.dtype} ({entry.rows}, {self.shape[1]}); "
                    "rerun 'dvc repro embed' to rebuild the shards"
                )
            self._mapped[number] = matrix
        return self._mapped[number]

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("a sharded matrix reads ranges of rows (matrix[start:stop])")
        start, stop, _ = rows.indices(len(self))
        block = np.empty((max(stop - start, 0), self.shape[1]), dtype=self.dtype)
        if stop <= start:
            return block
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        last = int(np.searchsorted(self.starts, stop, side="left"))
        for number in range(first, last):
            offset = int(self.starts[number])
            low, high = max(start, offset) - offset, min(stop, offset + self.shards[number].rows)
            high -= offset
            matrix = self.shard(number)
            block[offset + low - start : offset + high - start] = matrix[low:high]
            release(matrix, low, high)
        return block

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        matrix = self[0 : len(self)]
        return matrix if dtype is None else matrix.astype(dtype)


def read_vectors(folder: Path) -> ShardedMatrix:
    return ShardedMatrix(folder)


def release(matrix: np.ndarray, start: int, stop: int) -> None:
    """Hand the pages of rows start..stop of a read-only mapped matrix back to the kernel: a mapped
    page counts in the process's resident memory once read, while the file stays in the page
    cache."""
    mapping = getattr(matrix, "_mmap", None)
    if not isinstance(matrix, np.memmap) or mapping is None or matrix.mode != "r":
        return
    base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    begin = matrix.ctypes.data - base + start * matrix.strides[0]
    end = matrix.ctypes.data - base + stop * matrix.strides[0]
    aligned = begin - begin % mmap.PAGESIZE
    mapping.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)


def write_matrix(folder: Path, matrix: np.ndarray, ids: list[str], shard_rows: int) -> None:
    """An in-memory matrix of the customers ``ids`` as shards of ``shard_rows`` rows, with their
    index (the embed stage writes its shards one by one as it embeds them)."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for number, start in enumerate(range(0, len(matrix), shard_rows)):
        stop = min(start + shard_rows, len(matrix))
        write_npy(shard_file(folder, number), np.ascontiguousarray(matrix[start:stop], DTYPE))
        shards.append(
            Shard(shard_file(folder, number).name, start, stop - start, ids[start], ids[stop - 1])
        )
    write_index(folder, shards, matrix.shape[1])
