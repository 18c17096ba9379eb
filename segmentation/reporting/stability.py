"""The stability numbers in words: a segment's band, the near tie, the choice of k.

The thresholds are the algorithms' (``segmentation.evaluation.stability``); this module only reads
the metrics they write.
"""

from __future__ import annotations

from collections.abc import Sequence

from segmentation.evaluation.stability import JACCARD_BANDS, STABLE_ARI, segment_jaccards

BAND_MEANINGS = {
    "stable": "comes back in almost every resample",
    "moderately stable": "comes back, with some customers changing",
    "fuzzy": "exists as a pattern, but its membership is fuzzy",
    "weak": "should not be trusted",
    "dissolved": "does not come back",
}


def reading(jaccard: float) -> str:
    """The band a mean clusterwise Jaccard falls in."""
    return next(word for floor, word in JACCARD_BANDS if jaccard >= floor)


def bands_legend() -> str:
    edges = [floor for floor, _ in JACCARD_BANDS]
    parts = [f"≥ {edges[0]} {JACCARD_BANDS[0][1]}"]
    parts += [f"{low}–{high} {word}" for (low, word), high in zip(JACCARD_BANDS[1:-1], edges)]
    parts.append(f"< {edges[-2]} {JACCARD_BANDS[-1][1]}")
    return ", ".join(parts)


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def segments_sentence(jaccard: dict[int, float]) -> str:
    """E.g. "Segments 3 and 4 are stable (Jaccard 0.93, 0.88); segment 1 is weak (0.55)."."""
    groups = []
    for _, word in JACCARD_BANDS:
        members = [segment for segment, value in jaccard.items() if reading(value) == word]
        if not members:
            continue
        values = ", ".join(f"{jaccard[segment]:.2f}" for segment in members)
        subject = (
            f"segment {members[0]} is"
            if len(members) == 1
            else f"segments {_listed([str(m) for m in members])} are"
        )
        if len(members) == len(jaccard):
            subject = "every segment is" if len(members) > 1 else subject
        groups.append(f"{subject} {word} ({'Jaccard ' if not groups else ''}{values})")
    sentence = "; ".join(groups)
    return sentence[0].upper() + sentence[1:] + "."


def near_tie_sentence(k: int, found: dict[str, float], gap_pct: float) -> str:
    """Whether k's segmentation is a near tie, in one sentence."""
    if "near_tie_inertia_gap_pct" not in found:
        return (
            f"k = {k} is not a near tie: all {found['near_tie_candidates']} partitions found (the "
            "committed one and every refit polished on all customers) agree at ARI "
            f"{STABLE_ARI} or more."
        )
    numbers = (
        f"inertia gap {found['near_tie_inertia_gap_pct']:.2f}%, ARI {found['near_tie_ari']:.2f} "
        "between the two best partitions"
    )
    if found["near_tie"]:
        return (
            f"k = {k} is a near tie ({numbers}): the seed, or a small change of data, can flip "
            "the segments."
        )
    return f"k = {k} is not a near tie ({numbers}; a near tie is below {gap_pct:g}%)."


def committed_sentence(found: dict[str, float]) -> str:
    """A sentence when the committed segments are not the best partition found, else nothing."""
    if found["committed_ari_to_best"] >= STABLE_ARI:
        return ""
    return (
        f" The committed segments are not the best partition found: one with "
        f"{found['committed_inertia_gap_pct']:.2f}% less inertia agrees with them at ARI "
        f"{found['committed_ari_to_best']:.2f}."
    )


def choice_sentence(k: int, elbow: dict[str, float], chosen: dict[str, float]) -> str:
    """How stable k is, and which k the elbow study suggests (and why), the most stable one too."""
    text = (
        f"At k = {k} the segments come back with ARI {chosen['bootstrap_ari_mean']:.2f} across "
        f"bootstrap resamples and {chosen['seed_ari_mean']:.2f} across seeds."
    )
    suggested, most_stable = elbow["suggested_k"], elbow["most_stable_k"]
    if elbow["stable_k_count"]:
        text += (
            f" The elbow study suggests k = {suggested}, the stable k (stability "
            f"{elbow['suggested_stability']:.2f} ≥ {STABLE_ARI}) nearest its elbow at k = "
            f"{elbow['elbow_k']}"
        )
        text += (
            ", and the most stable."
            if most_stable == suggested
            else f"; k = {most_stable} is the most stable ({elbow['most_stable_stability']:.2f})."
        )
    else:
        text += (
            f" No k reaches stability {STABLE_ARI}; the elbow study suggests the most stable, "
            f"k = {suggested} ({elbow['suggested_stability']:.2f})."
        )
    if suggested != k:
        text += (
            f" These segments keep k = {k} (`k` in params.yaml); `dvc exp run -S k={suggested}` "
            "shows the alternative."
        )
    return text


def summary(k: int, elbow: dict[str, float], chosen: dict[str, float], gap_pct: float) -> str:
    """The paragraph a report opens its stability with: near tie, choice of k, segments."""
    return (
        near_tie_sentence(k, chosen, gap_pct)
        + committed_sentence(chosen)
        + f" {choice_sentence(k, elbow, chosen)} {segments_sentence(segment_jaccards(chosen, k))}"
    )
