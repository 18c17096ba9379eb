"""Which segment of a new segmentation is which segment of a reference one.

The two segmentations are compared on the customers both place in a segment. A new segment takes
a reference segment's number (and so its name) when an optimal one-to-one assignment pairs them
(Hungarian, on the Jaccard of their customers) and their Jaccard reaches ``lineage.match_jaccard``;
otherwise it is new and takes the next free number. The transitions follow MONIC (Spiliopoulou et
al., 2006): a reference segment whose customers form two or more new segments split; two or more
reference segments whose customers form one new segment merged; a reference segment that nothing
matches and that merged into nothing is gone; a new segment that nothing matches and no split
formed is new.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from segmentation.config import LineageParams

DEFAULT_THRESHOLDS = LineageParams()

Kind = Literal["kept", "split", "merged", "gone", "new"]


class Transition(NamedTuple):
    """What became of one segment, in stable numbers. For ``kept``, ``split`` and ``gone``,
    ``segment`` is the reference segment and ``flows`` where its customers went; for ``merged``
    and ``new``, the new segment and where its customers came from; largest share first."""

    kind: Kind
    segment: int
    flows: tuple[tuple[int, float], ...]  # (stable number, share of ``segment``'s customers)


class Lineage(NamedTuple):
    numbers: dict[int, int]  # each new segment's fitted number -> its stable number
    matched_jaccard: dict[int, float]  # stable number -> Jaccard with its reference segment
    transitions: list[Transition]

    def stable(self, segments: pd.Series) -> pd.Series:
        """Fitted segment numbers turned into stable ones."""
        return segments.map(self.numbers)


def paired_segments(
    reference: pd.Series,
    current: pd.Series,
    in_reference: Callable[[pd.Index], np.ndarray],
    in_current: Callable[[pd.Index], np.ndarray],
    present: pd.Index,
) -> tuple[pd.Series, pd.Series]:
    """Both segments of every customer of the current table (``present``) that either segmentation
    has: its own segment where it has one, else where the other segmentation's model places it
    (``in_reference(ids)``, ``in_current(ids)``). Customers no longer in the table drop out."""
    ids = present[present.isin(reference.index) | present.isin(current.index)]
    only_current = ids[~ids.isin(reference.index)]
    only_reference = ids[~ids.isin(current.index)]
    then = pd.concat(
        [
            reference.reindex(ids.difference(only_current, sort=False)),
            _placed(in_reference, only_current),
        ]
    ).loc[ids]
    now = pd.concat(
        [
            current.reindex(ids.difference(only_reference, sort=False)),
            _placed(in_current, only_reference),
        ]
    ).loc[ids]
    return then, now


def _placed(place: Callable[[pd.Index], np.ndarray], ids: pd.Index) -> pd.Series:
    return pd.Series(place(ids) if len(ids) else np.empty(0, dtype=np.int64), index=ids)


class Flows(NamedTuple):
    """Where customers went: those both segmentations hold, per reference segment (rows) and new
    segment (columns), and each segment's whole size, its customers that left or are new
    included, so that a share of a segment is of all its customers, as in the migration table."""

    shared: pd.DataFrame
    reference_sizes: pd.Series
    current_sizes: pd.Series


def jaccard_table(overlap: pd.DataFrame) -> pd.DataFrame:
    union = (
        overlap.sum(axis=1).to_numpy()[:, None] + overlap.sum(axis=0).to_numpy()[None, :] - overlap
    )
    return overlap / union


def _flows(shares: pd.Series, floor: float) -> tuple[tuple[int, float], ...]:
    big = shares[shares >= floor].sort_values(ascending=False, kind="stable")
    return tuple((int(segment), float(share)) for segment, share in big.items())


def match_segments(
    overlap: pd.DataFrame,
    thresholds: LineageParams = DEFAULT_THRESHOLDS,
    taken: Collection[int] = (),
    flows: Flows | None = None,
) -> Lineage:
    """Stable numbers for the new segments (the columns of ``overlap``) and every transition.

    ``taken``: numbers the reference has used besides its rows here (a segment none of whose
    customers is left); a new segment never takes one of them. The pairing is on ``overlap``; the
    transitions and their shares are on ``flows`` (default: ``overlap`` itself), so that customers
    one segmentation only has by placement pair segments without counting as moving.
    """
    jaccard, floor = jaccard_table(overlap), thresholds.flow_share
    rows, columns = linear_sum_assignment(-jaccard.to_numpy())
    pairs = {
        int(overlap.columns[c]): int(overlap.index[r])
        for r, c in zip(rows, columns)
        if jaccard.iat[r, c] >= thresholds.match_jaccard
    }
    sizes = overlap.sum(axis=0)
    unmatched = [int(c) for c in sizes.sort_values(ascending=False, kind="stable").index]
    unmatched = [c for c in unmatched if c not in pairs]
    first_free = max([int(overlap.index.max()), *taken]) + 1
    numbers = pairs | {c: first_free + i for i, c in enumerate(unmatched)}

    flows = flows or Flows(overlap, overlap.sum(axis=1), overlap.sum(axis=0))
    old_segments = overlap.index.union(flows.reference_sizes.index)
    moved = flows.shared.reindex(index=old_segments, columns=overlap.columns, fill_value=0)
    stable_columns = moved.rename(columns=numbers)
    # of all the reference segment's customers, and of all the new segment's
    out_share = stable_columns.div(flows.reference_sizes.reindex(old_segments), axis=0)
    in_share = moved.div(flows.current_sizes.reindex(overlap.columns), axis=1).rename(
        columns=numbers
    )
    # A flow forms a new segment when it is a big share of the old one and most of the new one;
    # it is absorbed when it is most of the old one and a big share of the new one.
    forming = (out_share >= floor) & (in_share > 0.5)
    absorbing = (in_share >= floor) & (out_share > 0.5)
    kept_numbers = set(pairs.values())
    transitions, merged_into, merged_away, split_off = [], set(), set(), set()
    for new in stable_columns.columns:
        sources = absorbing.index[absorbing[new]]
        if len(sources) >= 2:
            transitions.append(Transition("merged", int(new), _flows(in_share[new], floor)))
            merged_into.add(int(new))
            merged_away.update(int(source) for source in sources)
    for old in stable_columns.index:
        targets = forming.columns[forming.loc[old]]
        flows = _flows(out_share.loc[old], floor)
        if len(targets) >= 2:
            transitions.append(Transition("split", int(old), flows))
            split_off.update(int(target) for target in targets)
        elif old in merged_away:
            continue
        elif old in kept_numbers:
            transitions.append(Transition("kept", int(old), flows))
        else:
            transitions.append(Transition("gone", int(old), flows))
    for new in stable_columns.columns:
        if new not in kept_numbers | merged_into | split_off:
            transitions.append(Transition("new", int(new), _flows(in_share[new], floor)))
    matched = {number: float(jaccard.loc[number, fitted]) for fitted, number in pairs.items()}
    return Lineage(numbers, matched, transitions)
