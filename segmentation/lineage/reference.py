"""The reference segmentation a new one is matched to: the adopted segments, small enough for git.

A reference holds each customer's stable segment number, each segment's name and centroid (to
place customers the reference never saw) and the embedding model the centroids live in. It is
written to a folder (``segments.csv``, ``centroids.npy``, ``reference.json``) when a segmentation
is adopted, and read back by the next fit.
"""

from __future__ import annotations

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
    write_csv,
    write_json,
    write_npy,
)
from segmentation.model.kmeans import nearest_segments

SEGMENTS, CENTROIDS, DESCRIPTION = "segments.csv", "centroids.npy", "reference.json"


class Reference(NamedTuple):
    segments: pd.Series  # customer id -> stable segment number
    numbers: list[int]  # the stable number of each centroid row
    names: list[str]  # the name of each centroid row's segment
    centroids: np.ndarray
    embedding_model: str

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """The stable number of the nearest reference centroid of each vector."""
        return np.asarray(self.numbers)[nearest_segments(vectors, self.centroids)[0] - 1]

    def name_of(self) -> dict[int, str]:
        return dict(zip(self.numbers, self.names))


def save_reference(folder: Path, reference: Reference) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(
        folder / SEGMENTS,
        reference.segments.rename("segment").rename_axis(CUSTOMER_ID).reset_index(),
    )
    write_npy(folder / CENTROIDS, reference.centroids)
    write_json(
        folder / DESCRIPTION,
        {
            "embedding_model": reference.embedding_model,
            "segments": [
                {"number": int(number), "name": name}
                for number, name in zip(reference.numbers, reference.names)
            ],
        },
    )


def load_reference(folder: Path) -> Reference:
    missing = [name for name in (SEGMENTS, CENTROIDS, DESCRIPTION) if not (folder / name).exists()]
    if missing:
        raise PipelineError(
            f"{folder}: no reference segmentation here (missing {', '.join(missing)})"
        )
    description = read_json(folder / DESCRIPTION)
    segments = read_csv(folder / SEGMENTS).set_index(CUSTOMER_ID)
    centroids = read_npy(folder / CENTROIDS)
    listed = description["segments"]
    if len(listed) != len(centroids):
        raise PipelineError(
            f"{folder / DESCRIPTION} lists {len(listed)} segments but {folder / CENTROIDS} has "
            f"{len(centroids)} centroids; adopt the segmentation again"
        )
    return Reference(
        segments["segment"],
        [int(segment["number"]) for segment in listed],
        [segment["name"] for segment in listed],
        centroids,
        description["embedding_model"],
    )
