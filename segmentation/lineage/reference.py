"""The reference segmentation a new one is matched to: the adopted segments.

A reference holds each customer's stable segment number (``segments.csv``, read and written a
chunk of rows at a time), each segment's name and centroid (to place customers the reference never
saw), the embedding model the centroids live in and each segment's outcome rate (or mean) when it
was adopted. It is written to a folder (``segments.csv``, ``centroids.npy``, ``reference.json``)
when a segmentation is adopted, and read back by the next fit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from segmentation.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    read_csv,
    read_json,
    read_npy,
    write_csv_chunks,
    write_json,
    write_npy,
)
from segmentation.model.kmeans import nearest_segments

SEGMENTS, CENTROIDS, DESCRIPTION = "segments.csv", "centroids.npy", "reference.json"


class Reference(NamedTuple):
    """The adopted segments: everything but the customers' own segments (``segment_chunks``)."""

    numbers: list[int]  # the stable number of each centroid row
    names: list[str]  # the name of each centroid row's segment
    centroids: np.ndarray
    embedding_model: str
    outcome: str = ""  # the profile column of the described outcome, e.g. "y_yes_rate"
    outcome_rates: list[float] = []  # per centroid row; empty without an outcome

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """The stable number of the nearest reference centroid of each vector."""
        return np.asarray(self.numbers)[nearest_segments(vectors, self.centroids)[0] - 1]

    def name_of(self) -> dict[int, str]:
        return dict(zip(self.numbers, self.names))

    def outcome_by_segment(self) -> pd.Series:
        """The outcome per stable number when adopted (empty without one)."""
        return pd.Series(self.outcome_rates, index=self.numbers[: len(self.outcome_rates)])


def adopted(
    numbers: dict[int, int],
    names: dict[int, str],
    centroids: np.ndarray,
    embedding_model: str,
    outcome: str = "",
    outcome_rates: dict[int, float] | None = None,
) -> Reference:
    """The reference a fit becomes once a team adopts it. ``numbers``: fitted segment 1..k (the
    rows of ``centroids``) -> stable number; ``names`` and ``outcome_rates``: by stable number."""
    stable = [numbers[fitted] for fitted in range(1, len(centroids) + 1)]
    return Reference(
        stable,
        [names[number] for number in stable],
        centroids,
        embedding_model,
        outcome,
        [float(outcome_rates[number]) for number in stable] if outcome_rates else [],
    )


def save_reference(folder: Path, reference: Reference, segments: Iterable[pd.Series]) -> None:
    """The three files, written to a new folder that then replaces ``folder`` whole; ``segments``:
    each customer's stable segment (by id), a chunk at a time. A failure while they are produced
    leaves the old folder as it was."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        _write_reference(building, reference, segments)
        replaced = folder.with_name(f".{folder.name}.replaced")
        if folder.exists():
            os.replace(folder, replaced)
        os.replace(building, folder)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _write_reference(folder: Path, reference: Reference, segments: Iterable[pd.Series]) -> None:
    rates = reference.outcome_rates
    write_csv_chunks(
        folder / SEGMENTS,
        (chunk.rename("segment").rename_axis(CUSTOMER_ID).reset_index() for chunk in segments),
    )
    write_npy(folder / CENTROIDS, reference.centroids)
    write_json(
        folder / DESCRIPTION,
        {
            "embedding_model": reference.embedding_model,
            "outcome": reference.outcome,
            "segments": [
                {"number": int(number), "name": name}
                | ({"outcome": round(rates[row], 6)} if rates else {})
                for row, (number, name) in enumerate(zip(reference.numbers, reference.names))
            ],
        },
    )


def load_reference(folder: Path) -> Reference:
    missing = [name for name in (SEGMENTS, CENTROIDS, DESCRIPTION) if not (folder / name).exists()]
    if missing:
        raise PipelineError(
            f"{folder}: no reference segmentation here (missing {', '.join(missing)})"
        )
    try:
        description = read_json(folder / DESCRIPTION)
        read_csv(folder / SEGMENTS, usecols=[CUSTOMER_ID, "segment"], nrows=0)
        listed = description["segments"]
        reference = Reference(
            [int(segment["number"]) for segment in listed],
            [str(segment["name"]) for segment in listed],
            read_npy(folder / CENTROIDS),
            str(description["embedding_model"]),
            str(description.get("outcome", "")),
            [float(segment["outcome"]) for segment in listed if "outcome" in segment],
        )
    except (PipelineError, ValueError, KeyError, TypeError) as error:
        raise _not_a_reference(folder, error) from None
    if len(reference.numbers) != len(reference.centroids):
        raise PipelineError(
            f"{folder / DESCRIPTION} lists {len(reference.numbers)} segments but "
            f"{folder / CENTROIDS} has {len(reference.centroids)} centroids; adopt the "
            "segmentation again"
        )
    return reference


def segment_chunks(folder: Path, rows: int) -> Iterator[pd.Series]:
    """The reference's stable segment of each customer (by id), ``rows`` customers at a time, in
    the order of ``segments.csv``."""
    path = folder / SEGMENTS
    try:
        with read_csv(path, usecols=[CUSTOMER_ID, "segment"], chunksize=rows) as chunks:
            for chunk in chunks:
                yield chunk.set_index(CUSTOMER_ID)["segment"].astype(np.int64)
    except (PipelineError, ValueError, TypeError) as error:
        raise _not_a_reference(folder, error) from None


def _not_a_reference(folder: Path, error: Exception) -> PipelineError:
    return PipelineError(
        f"{folder}: not a reference segmentation ({type(error).__name__}: {error}); "
        f"adopt the segmentation again ('python -m stages.adopt {folder.name}')"
    )
