"""The lineage report: what became of each segment, in one plain sentence per changed segment,
the segments then and now, and the customers moving."""

from __future__ import annotations

import pandas as pd

from segmentation.evaluation.stability import JACCARD_BANDS
from segmentation.lineage.matching import Lineage, Transition
from segmentation.lineage.migration import psi_reading
from segmentation.lineage.tracking import Tracked
from segmentation.reporting.render import render
from segmentation.reporting.tables import markdown_table

# A kept segment whose Jaccard with its reference reaches Hennig's "stable" band is unchanged.
UNCHANGED_JACCARD = JACCARD_BANDS[0][0]


def _label(segment: int, names: dict[int, str]) -> str:
    """3 'Young singles', or 3 for a segment without a name."""
    name = names.get(segment)
    return f"{segment} '{name}'" if name else str(segment)


def _named(segment: int, names: dict[int, str]) -> str:
    return f"segment {_label(segment, names)}"


def _listed(flows: tuple[tuple[int, float], ...], names: dict[int, str]) -> str:
    """segment 1 (38%), segment 2 (38%) and segment 4 (25%)"""
    parts = [f"{_named(segment, names)} ({share:.0%})" for segment, share in flows]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def transition_sentence(
    transition: Transition, names: dict[int, str], jaccard: float | None = None
) -> str:
    """``jaccard``: a kept segment's with its adopted segment."""
    segment, flows = transition.segment, transition.flows
    own = _named(segment, names)
    own = own[0].upper() + own[1:]
    if transition.kind == "split":
        stayed = dict(flows).get(segment, 0.0)
        formed = [(s, share) for s, share in flows if s != segment]
        return (
            f"{own} split: {stayed:.0%} stayed, "
            + ", ".join(f"{share:.0%} formed {_named(s, names)}" for s, share in formed)
            + "."
        )
    if transition.kind == "merged":
        return f"{own} is a merge: its customers came from {_listed(flows, names)}."
    if transition.kind == "gone":
        if not flows:
            return f"{own} is gone: its customers left the table or are outliers now."
        return f"{own} is gone: its customers moved to {_listed(flows, names)}."
    if transition.kind == "new":
        if not flows:
            return f"{own} is new: its customers are new to the table or were outliers."
        return f"{own} is new: its customers came from {_listed(flows, names)}."
    stayed = dict(flows).get(segment, 0.0)
    moved = tuple((s, share) for s, share in flows if s != segment)
    overlap = "" if jaccard is None else f" (Jaccard {jaccard:.2f} with the adopted segment)"
    return f"{own} kept {stayed:.0%} of its customers{overlap}" + (
        f"; the others moved to {_listed(moved, names)}." if moved else "."
    )


def changed_sentences(lineage: Lineage, names: dict[int, str]) -> list[str]:
    """One sentence per segment that did not come back unchanged, in segment order."""
    changed = [
        transition
        for transition in lineage.transitions
        if transition.kind != "kept"
        or lineage.matched_jaccard.get(transition.segment, 0.0) < UNCHANGED_JACCARD
    ]
    return [
        transition_sentence(transition, names, lineage.matched_jaccard.get(transition.segment))
        for transition in sorted(changed, key=lambda t: t.segment)
    ]


def migration_rows(migration: pd.DataFrame) -> list[list[str]]:
    return [
        [str(source), str(target), f"{customers:,}", f"{share:.1%}"]
        for source, target, customers, share in migration[
            ["from", "to", "customers", "share"]
        ].itertuples(index=False)
    ]


def changes_rows(changes: pd.DataFrame, names: dict[int, str]) -> list[list[str]]:
    outcome = "outcome_then" in changes
    rows = []
    for segment, row in changes.iterrows():
        cells = [
            _label(segment, names),
            f"{int(row['customers_then']):,}",
            f"{int(row['customers_now']):,}",
        ]
        if outcome:
            cells += [_rate(row["outcome_then"]), _rate(row["outcome_now"])]
        rows.append([*cells, f"{row['psi']:.4f}"])
    return rows


def _rate(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.1%}"


def render_report(tracked: Tracked, metrics: dict, context: dict, outcome_title: str | None) -> str:
    """``lineage.md``: what changed, the segments then and now, and the customers moving."""
    names = tracked.names
    header = ["Segment", "Customers then", "Customers now"]
    if outcome_title:
        header += [f"{outcome_title}: then", "now"]
    return render(
        "lineage.md.j2",
        **context,
        metrics=metrics,
        sentences=changed_sentences(tracked.lineage, names),
        unchanged_jaccard=UNCHANGED_JACCARD,
        psi_reading=psi_reading(metrics["psi"]),
        changes_table=markdown_table([*header, "PSI term"], changes_rows(tracked.changes, names)),
        migration_table=markdown_table(
            ["From", "To", "Customers", "Share of from"], migration_rows(tracked.migration)
        ),
    )
