"""Lineage over a table of any size: this fit and the reference joined by customer id in buckets.

Each customer id is hashed to one of ``buckets`` buckets (one per ``BUCKET_ROWS`` customers of the
larger side), so that a customer's rows of the table and of the reference meet in one bucket:

1. each shard of the embeddings writes its customers to their buckets, here or on Ray: the id,
   the fitted segment, where the other segmentation's model places the customer, the outcome;
   the reference is written to its buckets a chunk of rows at a time;
2. each bucket, here or on Ray, is joined in memory and counted by ``customer_tallies``, the code
   that follows a table held whole (``track``). It also writes, split by chunk of rows, the
   reference segment of each segmented customer (by row of the labels) and the reference rows
   still segmented;
3. the counts add up to the lineage (``Joined.counts``), and ``Joined.moves`` gives each
   customer's move in order: the labels a chunk of rows at a time, then the reference customers
   that left, each chunk with its rows of step 2.

No process holds more than a bucket, a shard or a chunk of customers. The buckets live in a
temporary folder beside the embeddings, on the file system that Ray's workers share, and are
removed at the end.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError, csv_row_starts, read_csv
from segmentation.cluster import CsvColumns, map_parts, map_shards
from segmentation.config import Layout
from segmentation.data.dataset import Dataset, typed
from segmentation.data.outcomes import outcome_values
from segmentation.embedding.shards import Shard, read_vectors
from segmentation.lineage.migration import customer_moves
from segmentation.lineage.reference import SEGMENTS, Reference, segment_chunks
from segmentation.lineage.tracking import LineageCounts, customer_tallies
from segmentation.model.kmeans import nearest_segments
from segmentation.model.sampling import MatrixRows, checked_inliers, inliers_per_shard

BUCKET_ROWS = 1 << 20
CHUNK_ROWS = 1 << 16
TABLE, REFERENCE, SEGMENTED, KEPT = "table", "reference", "segmented", "kept"


@dataclass(frozen=True)
class JoinPlan:
    """What each shard and bucket task needs (it pickles for Ray)."""

    folder: str  # the buckets' temporary folder
    buckets: int
    chunk_rows: int  # the rows of a chunk of the labels or of the reference
    paths: Layout
    dataset: Dataset
    outcome: str | None  # the described outcome's column
    centroids: np.ndarray  # this fit's, to place the reference customers that are outliers now
    reference: Reference | None
    same_model: bool  # whether the reference's centroids can place this fit's customers

    def bucket_file(self, kind: str, bucket: int, name: int) -> Path:
        return Path(self.folder) / kind / f"{bucket:06d}" / f"{name:012d}.parquet"

    def read_bucket(self, kind: str, bucket: int, columns: list[str]) -> pd.DataFrame:
        files = sorted((Path(self.folder) / kind / f"{bucket:06d}").glob("*.parquet"))
        if not files:
            return pd.DataFrame({column: [] for column in columns})
        return pd.concat([pd.read_parquet(file) for file in files], ignore_index=True)

    def chunk_file(self, kind: str, chunk: int, bucket: int) -> Path:
        return Path(self.folder) / kind / f"{chunk:09d}" / f"{bucket:06d}.npy"

    def read_chunk(self, kind: str, chunk: int, fields: int) -> np.ndarray:
        """The ``kind`` rows of step 2 that lie in chunk ``chunk``: ``fields`` arrays, the row
        numbers first, sorted by row."""
        files = sorted((Path(self.folder) / kind / f"{chunk:09d}").glob("*.npy"))
        empty = np.empty((fields, 0), np.int64)
        found = np.concatenate(
            [np.load(file, allow_pickle=False) for file in files] or [empty], axis=1
        )
        return found[:, np.argsort(found[0], kind="stable")]


def bucket_of(ids: np.ndarray, buckets: int) -> np.ndarray:
    """Each customer id's bucket, the same in every process."""
    return (pd.util.hash_array(np.asarray(ids, dtype=object)) % np.uint64(buckets)).astype(np.int64)


def _write_buckets(plan: JoinPlan, kind: str, frame: pd.DataFrame, name: int) -> None:
    for bucket, part in frame.groupby(bucket_of(frame[CUSTOMER_ID].to_numpy(), plan.buckets)):
        file = plan.bucket_file(kind, int(bucket), name)
        file.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(file, index=False)


def bucket_shard(
    rows: MatrixRows,
    shard: Shard,
    plan: JoinPlan,
    *,
    flags: pd.DataFrame,
    labels: pd.DataFrame,
    customers: pd.DataFrame,
) -> pd.DataFrame:
    """Step 1 for one shard: its customers written to their buckets."""
    ids = flags[CUSTOMER_ID].to_numpy()
    inliers = checked_inliers(plan.paths, customers, flags, labels)
    fitted, label_rows = np.zeros(len(ids), np.int64), np.full(len(ids), -1, np.int64)
    fitted[inliers], label_rows[inliers] = labels["segment"].to_numpy(), labels.index.to_numpy()
    outcome = (
        outcome_values(typed(customers[[plan.outcome]], plan.dataset), plan.dataset, plan.outcome)
        if plan.outcome
        else 0.0
    )
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: ids,
            "label_row": label_rows,
            "fitted": fitted,
            "placed": _placements(rows, inliers, plan),
            "outcome": outcome,
        }
    )
    _write_buckets(plan, TABLE, frame, shard.start)
    return pd.DataFrame({"customers": [len(frame)]})


def _placements(rows: MatrixRows, inliers: np.ndarray, plan: JoinPlan) -> np.ndarray:
    """Where the other segmentation's model places each customer: the reference's for the inliers
    (when its embedding model is this fit's), this fit's for the outliers."""
    placed = np.zeros(len(inliers), np.int64)
    if plan.reference is None:
        return placed
    for span, block in rows.blocks():
        by_fit = nearest_segments(block, plan.centroids)[0]
        by_reference = plan.reference.place(block) if plan.same_model else by_fit
        placed[span] = np.where(inliers[span], by_reference, by_fit)
    return placed


def join_bucket(bucket: int, plan: JoinPlan) -> pd.DataFrame:
    """Step 2 for one bucket: its counts, and its rows of the join for the moves."""
    table = plan.read_bucket(
        TABLE, bucket, [CUSTOMER_ID, "label_row", "fitted", "placed", "outcome"]
    )
    reference = plan.read_bucket(REFERENCE, bucket, [CUSTOMER_ID, "row", "segment"])
    repeated = reference[CUSTOMER_ID][reference[CUSTOMER_ID].duplicated()]
    if len(repeated):
        folder = plan.paths.reference
        raise PipelineError(
            f"{folder / SEGMENTS} lists customer {repeated.iat[0]!r} more than once; adopt the "
            f"segmentation again ('python -m stages.adopt {folder.name}')"
        )
    # ids as Python objects: pandas' isin on its str dtype goes row by row, 20 times slower
    present = pd.Index(table[CUSTOMER_ID].to_numpy(), dtype=object)
    placed = pd.Series(table["placed"].to_numpy(np.int64), index=present)
    segmented = table["fitted"].to_numpy() > 0
    current = pd.Series(table["fitted"].to_numpy(np.int64)[segmented], index=present[segmented])
    adopted = pd.Series(
        reference["segment"].to_numpy(np.int64),
        index=pd.Index(reference[CUSTOMER_ID].to_numpy(), dtype=object),
    )

    def place(ids: pd.Index) -> np.ndarray:
        return placed.loc[ids].to_numpy()

    tallies = customer_tallies(
        adopted,
        current,
        place if plan.same_model else None,
        place,
        present,
        pd.Series(table["outcome"].to_numpy(float)[segmented], index=current.index)
        if plan.outcome
        else None,
    )
    then = adopted.reindex(current.index)
    has = then.notna().to_numpy()
    label_rows = table["label_row"].to_numpy(np.int64)[segmented][has]
    _write_chunks(plan, SEGMENTED, bucket, np.stack([label_rows, then[has].to_numpy(np.int64)]))
    still = adopted.index.isin(current.index)
    _write_chunks(plan, KEPT, bucket, reference["row"].to_numpy(np.int64)[still][None, :])
    return tallies


def _write_chunks(plan: JoinPlan, kind: str, bucket: int, rows: np.ndarray) -> None:
    """``rows`` (row numbers first) split by chunk of ``plan.chunk_rows`` rows."""
    chunks = rows[0] // plan.chunk_rows
    for chunk in np.unique(chunks):
        file = plan.chunk_file(kind, int(chunk), bucket)
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, rows[:, chunks == chunk])


class Joined:
    """This fit and the reference (if any) joined by customer id: the counts, and the moves."""

    def __init__(self, plan: JoinPlan, counts: LineageCounts):
        self.plan, self.counts = plan, counts

    def moves(self, numbers: dict[int, int]) -> Iterator[pd.DataFrame]:
        """Each customer's segment ``from`` and ``to`` (``customer_moves``) in stable numbers
        (``numbers``: fitted -> stable), a chunk at a time: the labels' customers in order, then
        the reference's customers no longer segmented, in the reference's order."""
        plan = self.plan
        with read_csv(
            plan.paths.labels, usecols=[CUSTOMER_ID, "segment"], chunksize=plan.chunk_rows
        ) as chunks:
            for number, chunk in enumerate(chunks):
                rows, segments = plan.read_chunk(SEGMENTED, number, 2)
                current = pd.Series(
                    chunk["segment"].map(numbers).to_numpy(), index=pd.Index(chunk[CUSTOMER_ID])
                )
                then = pd.Series(segments, index=current.index[rows - number * plan.chunk_rows])
                yield customer_moves(then, current)
        if plan.reference is None:
            return
        for number, adopted in enumerate(segment_chunks(plan.paths.reference, plan.chunk_rows)):
            (kept,) = plan.read_chunk(KEPT, number, 1)
            left = np.ones(len(adopted), bool)
            left[kept - number * plan.chunk_rows] = False
            yield customer_moves(adopted[left], adopted.iloc[:0])


@contextmanager
def joined_by_id(
    paths: Layout,
    dataset: Dataset,
    outcome: str | None,
    reference: Reference | None,
    centroids: np.ndarray,
    embedding_model: str,
    engine: str,
) -> Iterator[Joined]:
    """Steps 1 and 2 (``engine``: here or on Ray), with the described ``outcome`` column's sums;
    the buckets are removed on leaving."""
    matrix = read_vectors(paths.embeddings)
    adopted_rows = csv_row_starts(paths.reference / SEGMENTS, [])[1] if reference is not None else 0
    folder = tempfile.mkdtemp(dir=paths.embeddings.parent.resolve(), prefix=".lineage-join-")
    try:
        plan = JoinPlan(
            folder,
            max(1, math.ceil(max(len(matrix), adopted_rows) / BUCKET_ROWS)),
            CHUNK_ROWS,
            paths,
            dataset,
            outcome,
            centroids,
            reference,
            reference is not None and reference.embedding_model == embedding_model,
        )
        outcome_columns = [plan.outcome] if plan.outcome else []
        aligned = {
            "flags": CsvColumns(paths.outliers, [CUSTOMER_ID, "outlier"]),
            "labels": CsvColumns(
                paths.labels, [CUSTOMER_ID, "segment"], inliers_per_shard(paths, matrix)
            ),
            "customers": CsvColumns(paths.customers, [CUSTOMER_ID, *outcome_columns], as_text=True),
        }
        for _ in map_shards(bucket_shard, paths.embeddings, engine, plan, aligned=aligned):
            pass
        if reference is not None:
            for number, adopted in enumerate(segment_chunks(paths.reference, plan.chunk_rows)):
                frame = pd.DataFrame(
                    {
                        CUSTOMER_ID: adopted.index,
                        "row": number * plan.chunk_rows + np.arange(len(adopted)),
                        "segment": adopted.to_numpy(),
                    }
                )
                _write_buckets(plan, REFERENCE, frame, number)
        counts = LineageCounts.added(map_parts(join_bucket, plan.buckets, engine, plan))
        yield Joined(plan, counts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
