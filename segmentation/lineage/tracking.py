"""A new segmentation followed from the reference: stable numbers and names, customers moving,
and the reference the new segmentation becomes once it is adopted."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from segmentation.lineage.matching import (
    FLOW_SHARE,
    MATCH_JACCARD,
    Lineage,
    match_segments,
    overlap_table,
    paired_segments,
)
from segmentation.lineage.migration import migration_table, segment_changes
from segmentation.lineage.reference import Reference
from segmentation.model.kmeans import nearest_segments


class Tracked(NamedTuple):
    lineage: Lineage
    segments: pd.Series  # each segmented customer's stable number
    names: dict[int, str]  # every stable number's name: the reference's where a segment is kept
    migration: pd.DataFrame  # reference segment -> stable segment, with new and left customers
    changes: pd.DataFrame  # per stable segment: customers then and now, its PSI term


def track(
    reference: Reference,
    segments: pd.Series,
    names: dict[int, str],
    vectors_of: Callable[[pd.Index], np.ndarray],
    centroids: np.ndarray,
    embedding_model: str,
    present: pd.Index,
    match_jaccard: float = MATCH_JACCARD,
    flow_share: float = FLOW_SHARE,
) -> Tracked:
    """Follow a new fit from the reference.

    ``segments``: each segmented customer's fitted segment 1..k (by id), whose centroids are the
    rows of ``centroids`` and whose names are ``names``; ``vectors_of(ids)``: those customers'
    embeddings; ``present``: every customer of the table. Customers one segmentation lacks are
    placed by the other's nearest centroid, the reference's only when its embedding model is the
    same (else they are compared on the customers the reference segmented).
    """
    if reference.embedding_model != embedding_model:
        present = present[present.isin(reference.segments.index)]
    then, now = paired_segments(
        reference.segments,
        segments,
        lambda ids: reference.place(vectors_of(ids)),
        lambda ids: nearest_segments(vectors_of(ids), centroids)[0],
        present,
    )
    lineage = match_segments(
        overlap_table(then, now), match_jaccard, flow_share, taken=reference.numbers
    )
    stable = lineage.stable(segments)
    new_names = {
        lineage.numbers[fitted]: name
        for fitted, name in names.items()
        if lineage.numbers[fitted] not in lineage.matched_jaccard
    }
    return Tracked(
        lineage,
        stable,
        reference.name_of() | new_names,
        migration_table(reference.segments, stable),
        segment_changes(reference.segments, stable),
    )


def adopted(tracked: Tracked, centroids: np.ndarray, embedding_model: str) -> Reference:
    """The reference a tracked fit becomes once a team adopts it: its stable numbers and names,
    and its centroids (rows in fitted order, each with its stable number)."""
    numbers = [tracked.lineage.numbers[fitted] for fitted in range(1, len(centroids) + 1)]
    return Reference(
        tracked.segments,
        numbers,
        [tracked.names[number] for number in numbers],
        centroids,
        embedding_model,
    )
