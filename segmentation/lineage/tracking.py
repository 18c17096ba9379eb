"""A new segmentation followed from the reference: stable numbers and names, customers moving,
and the reference the new segmentation becomes once it is adopted."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, get_args

import numpy as np
import pandas as pd

from segmentation.artifacts import PipelineError, rounded
from segmentation.config import LineageParams
from segmentation.lineage.matching import (
    DEFAULT_THRESHOLDS,
    Flows,
    Kind,
    Lineage,
    Transition,
    match_segments,
    overlap_table,
    paired_segments,
)
from segmentation.lineage.migration import (
    LEFT,
    NEW,
    customer_moves,
    migration_of,
    segment_changes,
)
from segmentation.lineage.reference import Reference
from segmentation.model.kmeans import nearest_segments


class Tracked(NamedTuple):
    lineage: Lineage
    segments: pd.Series  # each segmented customer's stable number
    names: dict[int, str]  # the reference's names: of the segments kept and of those gone
    moves: pd.DataFrame  # each customer's stable segment from (or new) and to (or left)
    migration: pd.DataFrame  # reference segment -> stable segment, with new and left customers
    changes: pd.DataFrame  # per stable segment: customers then and now, its PSI term
    compared: int  # customers both segmentations place


def track(
    reference: Reference,
    segments: pd.Series,
    vectors_of: Callable[[pd.Index], np.ndarray],
    centroids: np.ndarray,
    embedding_model: str,
    present: pd.Index,
    thresholds: LineageParams = DEFAULT_THRESHOLDS,
    outcome_now: pd.Series | None = None,
) -> Tracked:
    """Follow a new fit from the reference.

    ``segments``: each segmented customer's fitted segment 1..k (by id), whose centroids are the
    rows of ``centroids``; ``vectors_of(ids)``: those customers' embeddings; ``present``: every
    customer of the table; ``outcome_now``: the reference's outcome per customer of the table.
    Customers one segmentation lacks are placed by the other's nearest centroid, the reference's
    only when its embedding model is the same (else they are compared on the customers the
    reference segmented).
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
    try:
        overlap = overlap_table(then, now)
    except ValueError:
        raise PipelineError(
            "the reference segmentation shares no customer id with this table; adopt this "
            "segmentation as the reference ('python -m stages.adopt') or restore the old one"
        ) from None
    lineage = match_segments(
        overlap, thresholds, reference.numbers, Flows.between(reference.segments, segments)
    )
    stable = lineage.stable(segments)
    outcome_then = reference.outcome_by_segment() if outcome_now is not None else None
    moves = customer_moves(reference.segments, stable)
    return Tracked(
        lineage,
        stable,
        reference.name_of(),
        moves,
        migration_of(moves),
        segment_changes(reference.segments, stable, outcome_then, outcome_now),
        len(then),
    )


def untracked(segments: pd.Series, outcome_now: pd.Series | None = None) -> Tracked:
    """A fit with no reference to follow: every segment is new and keeps its fitted number."""
    numbers = {int(segment): int(segment) for segment in sorted(segments.unique())}
    none = pd.Series([], dtype=np.int64, index=pd.Index([], dtype=object))
    outcome_then = pd.Series([], dtype=float) if outcome_now is not None else None
    moves = customer_moves(none, segments)
    return Tracked(
        Lineage(numbers, {}, [Transition("new", number, ()) for number in numbers]),
        segments,
        {},
        moves,
        migration_of(moves),
        # no reference, no shift: the index compares two segmentations
        segment_changes(none, segments, outcome_then, outcome_now).assign(psi=0.0),
        0,
    )


def lineage_record(tracked: Tracked, reference: str | None) -> dict:
    """What the later stages and a reviewer read: each fitted segment's stable number and, where
    it kept an adopted segment, that segment's name and their Jaccard; every transition."""
    lineage = tracked.lineage
    return {
        "reference": reference,
        "segments": [
            {
                "fitted": fitted,
                "number": number,
                "name": tracked.names[number] if number in lineage.matched_jaccard else None,
                "jaccard": (
                    rounded(lineage.matched_jaccard[number])
                    if number in lineage.matched_jaccard
                    else None
                ),
            }
            for fitted, number in sorted(lineage.numbers.items())
        ],
        "transitions": [
            {
                "kind": transition.kind,
                "segment": transition.segment,
                "flows": [
                    {"segment": segment, "share": rounded(share)}
                    for segment, share in transition.flows
                ],
            }
            for transition in lineage.transitions
        ],
    }


class Numbering(NamedTuple):
    """The record's numbering: fitted segment -> stable number, and the adopted names kept."""

    numbers: dict[int, int]
    kept_names: dict[int, str]

    @classmethod
    def of(cls, record: dict) -> Numbering:
        segments = record["segments"]
        return cls(
            {int(s["fitted"]): int(s["number"]) for s in segments},
            {int(s["number"]): s["name"] for s in segments if s["name"] is not None},
        )


def lineage_metrics(tracked: Tracked, reference_segments: int) -> dict[str, float | int]:
    kinds = [transition.kind for transition in tracked.lineage.transitions]
    migration = tracked.migration
    stayed_or_moved = migration[(migration["from"] != NEW) & (migration["to"] != LEFT)]
    moved = stayed_or_moved["from"] != stayed_or_moved["to"]
    both = int(stayed_or_moved["customers"].sum())
    matched = tracked.lineage.matched_jaccard.values()
    return {
        "reference_segments": reference_segments,
        **{f"segments_{kind}": kinds.count(kind) for kind in get_args(Kind)},
        "matched_jaccard_min": min(matched, default=0.0),
        "customers_compared": tracked.compared,
        "customers_in_both": both,
        "customers_moved_share": (
            stayed_or_moved.loc[moved, "customers"].sum() / both if both else 0.0
        ),
        "customers_new": int(migration.loc[migration["from"] == NEW, "customers"].sum()),
        "customers_left": int(migration.loc[migration["to"] == LEFT, "customers"].sum()),
        "psi": float(tracked.changes["psi"].sum()),
    }
