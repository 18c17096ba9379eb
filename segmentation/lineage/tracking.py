"""A new segmentation followed from the reference: stable numbers and names, customers moving,
and the reference the new segmentation becomes once it is adopted.

Everything is decided on counts of customers (``LineageCounts``), which add up over any split of
the customers by id: ``customer_tallies`` counts one part of them, and ``track`` does the whole of
a table held in memory, while the lineage stage adds up the parts of a table of any size
(``segmentation.lineage.join``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    paired_segments,
)
from segmentation.lineage.migration import (
    LEFT,
    NEW,
    migration_of,
    segment_changes,
)
from segmentation.lineage.reference import Reference
from segmentation.model.kmeans import nearest_segments

TALLY_KEYS = ["part", "then", "now"]
# ``then`` and ``now`` of a tally that counts one segmentation's segments only
NONE = 0


class LineageCounts(NamedTuple):
    """What lineage reads of the customers: counts of them, and the outcome's sums."""

    paired: pd.DataFrame  # reference (rows) by fitted segment, placed customers included
    flows: Flows  # those both segmentations hold, and each segmentation's sizes
    new: pd.Series  # per fitted segment: its customers the reference lacks
    outcome_sums: pd.Series  # per fitted segment: the outcome summed over its customers

    @property
    def compared(self) -> int:
        """Customers both segmentations place."""
        return int(self.paired.to_numpy().sum())

    @classmethod
    def added(cls, tallies: Iterable[pd.DataFrame]) -> LineageCounts:
        """The counts of ``customer_tallies`` of parts of the customers, added up."""
        summed = pd.concat(tallies).groupby(TALLY_KEYS)["value"].sum()

        def part(name: str) -> pd.Series:
            return summed[summed.index.get_level_values("part") == name].droplevel("part")

        def table(name: str) -> pd.DataFrame:
            return part(name).unstack("now", fill_value=0).astype(np.int64)

        return cls(
            table("paired"),
            Flows(
                table("shared"),
                part("reference").droplevel("now").astype(np.int64),
                part("current").droplevel("then").astype(np.int64),
            ),
            part("new").droplevel("then").astype(np.int64),
            part("outcome").droplevel("then"),
        )


def customer_tallies(
    reference: pd.Series,
    current: pd.Series,
    place_then: Callable[[pd.Index], np.ndarray] | None,
    place_now: Callable[[pd.Index], np.ndarray],
    present: pd.Index,
    outcome: pd.Series | None = None,
) -> pd.DataFrame:
    """The counts of some customers, as rows ``part``, ``then``, ``now`` and ``value``.

    ``reference``: their reference segments (by id); ``current``: the fitted segments 1..k of the
    segmented ones; ``present``: every customer of the table among them; ``outcome``: per
    segmented customer. Customers one segmentation lacks are placed by the other's model
    (``place_then(ids)``, ``place_now(ids)``, as ``paired_segments``); without ``place_then`` (a
    reference in another embedding model) they are compared on the customers the reference has.
    """
    if place_then is None:
        present = present[present.isin(reference.index)]
    then, now = paired_segments(reference, current, place_then, place_now, present)
    both = current.index.isin(reference.index)
    tallies = [
        _counted("paired", then.to_numpy(), now.to_numpy()),
        _counted("shared", reference.loc[current.index[both]].to_numpy(), current[both].to_numpy()),
        _counted("reference", reference.to_numpy(), NONE),
        _counted("current", NONE, current.to_numpy()),
        _counted("new", NONE, current[~both].to_numpy()),
    ]
    if outcome is not None:
        sums = outcome.loc[current.index].groupby(current.to_numpy()).sum()
        tallies.append(_tally("outcome", NONE, sums.index.to_numpy(), sums.to_numpy()))
    return pd.concat(tallies, ignore_index=True)


def _counted(part: str, then: np.ndarray | int, now: np.ndarray | int) -> pd.DataFrame:
    then, now = np.broadcast_arrays(then, now)
    counts = pd.DataFrame({"then": then, "now": now}).groupby(["then", "now"]).size()
    return _tally(
        part,
        counts.index.get_level_values("then").to_numpy(),
        counts.index.get_level_values("now").to_numpy(),
        counts.to_numpy(dtype=float),
    )


def _tally(part: str, then, now, value: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"part": part, "then": then, "now": now, "value": value})


class Tracked(NamedTuple):
    lineage: Lineage
    names: dict[int, str]  # the reference's names: of the segments kept and of those gone
    migration: pd.DataFrame  # reference segment -> stable segment, with new and left customers
    changes: pd.DataFrame  # per stable segment: customers then and now, its PSI term
    compared: int  # customers both segmentations place


def tracked(
    reference: Reference,
    counts: LineageCounts,
    thresholds: LineageParams = DEFAULT_THRESHOLDS,
    with_outcome: bool = False,
) -> Tracked:
    """The new fit followed from the reference, from the counts of its customers; with the
    outcome's rate per segment then and now when ``with_outcome``."""
    if counts.paired.empty:
        raise PipelineError(
            "the reference segmentation shares no customer id with this table; adopt this "
            "segmentation as the reference ('python -m stages.adopt') or restore the old one"
        )
    lineage = match_segments(counts.paired, thresholds, reference.numbers, counts.flows)
    outcome_then = reference.outcome_by_segment() if with_outcome else None
    return _followed(lineage, reference.name_of(), counts, outcome_then)


def untracked(counts: LineageCounts, with_outcome: bool = False) -> Tracked:
    """A fit with no reference to follow: every segment is new and keeps its fitted number."""
    sizes = counts.flows.current_sizes
    numbers = {int(segment): int(segment) for segment in sorted(sizes.index)}
    lineage = Lineage(numbers, {}, [Transition("new", number, ()) for number in numbers])
    outcome_then = pd.Series([], dtype=float) if with_outcome else None
    followed = _followed(lineage, {}, counts, outcome_then)
    # no reference, no shift: the index compares two segmentations
    return followed._replace(changes=followed.changes.assign(psi=0.0))


def _followed(
    lineage: Lineage,
    names: dict[int, str],
    counts: LineageCounts,
    outcome_then: pd.Series | None,
) -> Tracked:
    numbers, flows = lineage.numbers, counts.flows
    left = flows.reference_sizes.sub(flows.shared.sum(axis=1), fill_value=0)
    moved = pd.DataFrame(
        [
            *(
                (int(then), numbers[int(now)], int(customers))
                for (then, now), customers in flows.shared.stack().items()
                if customers > 0
            ),
            *((int(then), LEFT, int(customers)) for then, customers in left.items() if customers),
            *((NEW, numbers[int(now)], int(customers)) for now, customers in counts.new.items()),
        ],
        columns=["from", "to", "customers"],
        dtype=object,
    )
    sizes_now = flows.current_sizes.rename(index=numbers)
    outcome_now = (
        counts.outcome_sums.rename(index=numbers) / sizes_now if outcome_then is not None else None
    )
    return Tracked(
        lineage,
        names,
        migration_of(moved),
        segment_changes(flows.reference_sizes, sizes_now, outcome_then, outcome_now),
        counts.compared,
    )


def track(
    reference: Reference,
    reference_segments: pd.Series,
    segments: pd.Series,
    vectors_of: Callable[[pd.Index], np.ndarray],
    centroids: np.ndarray,
    embedding_model: str,
    present: pd.Index,
    thresholds: LineageParams = DEFAULT_THRESHOLDS,
    outcome_now: pd.Series | None = None,
) -> Tracked:
    """Follow a new fit held in memory from the reference.

    ``reference_segments``: each customer's adopted segment (by id); ``segments``: each segmented
    customer's fitted segment 1..k (by id), whose centroids are the rows of ``centroids``;
    ``vectors_of(ids)``: those customers' embeddings; ``present``: every customer of the table;
    ``outcome_now``: the reference's outcome per customer of the table. Customers one
    segmentation lacks are placed by the other's nearest centroid, the reference's only when its
    embedding model is the same (else they are compared on the customers the reference
    segmented).
    """
    same_model = reference.embedding_model == embedding_model
    tallies = customer_tallies(
        reference_segments,
        segments,
        (lambda ids: reference.place(vectors_of(ids))) if same_model else None,
        lambda ids: nearest_segments(vectors_of(ids), centroids)[0],
        present,
        outcome_now,
    )
    return tracked(reference, LineageCounts.added([tallies]), thresholds, outcome_now is not None)


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
