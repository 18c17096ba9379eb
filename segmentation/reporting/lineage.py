"""What became of each segment, in one plain sentence per changed segment."""

from __future__ import annotations

from segmentation.evaluation.stability import JACCARD_BANDS
from segmentation.lineage.matching import Lineage, Transition

# A kept segment whose Jaccard with its reference reaches Hennig's "stable" band is unchanged.
UNCHANGED_JACCARD = JACCARD_BANDS[0][0]


def _named(segment: int, names: dict[int, str]) -> str:
    name = names.get(segment)
    return f"segment {segment} '{name}'" if name else f"segment {segment}"


def _listed(flows: tuple[tuple[int, float], ...], names: dict[int, str]) -> str:
    """segment 1 (38%), segment 2 (38%) and segment 4 (25%)"""
    parts = [f"{_named(segment, names)} ({share:.0%})" for segment, share in flows]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def transition_sentence(transition: Transition, names: dict[int, str]) -> str:
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
        return f"{own} is gone: its customers moved to {_listed(flows, names)}."
    if transition.kind == "new":
        return f"{own} is new: its customers came from {_listed(flows, names)}."
    stayed = dict(flows).get(segment, 0.0)
    moved = tuple((s, share) for s, share in flows if s != segment)
    return f"{own} kept {stayed:.0%} of its customers" + (
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
        transition_sentence(transition, names)
        for transition in sorted(changed, key=lambda t: t.segment)
    ]
