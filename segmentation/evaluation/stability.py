"""Do the segments come back? Refits on resamples, the choice of k, near ties, stable segments.

Shared by the elbow study (stability per k, the suggested k), compare (every method's refits) and
the reports (the thresholds; the words are ``segmentation.reporting.stability``), and a stage of
its own for the chosen k: ``python -m stages.stability <name>`` measures whether the committed
segments are a near tie and each segment's clusterwise Jaccard.

Refits follow Ben-Hur, Elisseeff & Guyon (2002) and Hennig (2007, R's ``fpc::clusterboot``): a
seeded sample of customers is fitted once per seed and once per bootstrap resample; the adjusted
Rand index (ARI) says how much the segments move, the clusterwise Jaccard which segments come back.
Every refit is seeded and runs on one thread, so the results do not depend on the number of jobs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from segmentation.artifacts import PipelineError, atomic_path
from segmentation.config import Params, StabilityParams
from segmentation.model.sampling import sample_rows

# ARI between refits: from STABLE_ARI on the segments barely change, so a k is stable and two
# partitions that agree less are different ones; below SHAKY_ARI many customers move.
STABLE_ARI, SHAKY_ARI = 0.9, 0.75
# Mean clusterwise Jaccard of a segment, read as Hennig (2007) does: 0.85 and above highly stable,
# 0.6 to 0.75 a pattern whose membership is doubtful, 0.5 and below dissolved. Each gap gets a word
# of its own (0.75 to 0.85 Hennig still calls valid; 0.5 to 0.6 he says not to trust), so every
# value has exactly one reading. Highest band first.
JACCARD_BANDS = (
    (0.85, "stable"),
    (0.75, "moderately stable"),
    (0.6, "fuzzy"),
    (0.5, "weak"),
    (0.0, "dissolved"),
)
N_JOBS = -1  # every core: refits are independent single-threaded fits


# --- refits -----------------------------------------------------------------------------------


class Refits(NamedTuple):
    """Segments of the refits of one sample of ``rows`` customers (row numbers 0..rows-1)."""

    by_seed: list[np.ndarray]  # every row, one fit per seed: seed, seed + 1, ...
    draws: list[np.ndarray]  # each bootstrap resample's rows, with repeats
    resampled: list[np.ndarray]  # the segments of each resample's rows, fitted with ``seed``


def _plan(
    rows: int, seeds: int, rounds: int, seed: int
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, int]]]:
    """The bootstrap draws and each refit's (rows, seed): all rows per seed, then each draw."""
    draws_rng = np.random.default_rng(seed)
    draws = [draws_rng.integers(0, rows, rows) for _ in range(rounds)]
    everyone = np.arange(rows)
    return draws, [(everyone, seed + offset) for offset in range(seeds)] + [
        (drawn, seed) for drawn in draws
    ]


def refit(
    fit: Callable[[np.ndarray, int], np.ndarray], rows: int, seeds: int, rounds: int, seed: int
) -> Refits:
    """Refits of any method, one by one: ``fit(row_numbers, seed)`` returns their segments."""
    draws, fits = _plan(rows, seeds, rounds, seed)
    labels = [fit(picked, fit_seed) for picked, fit_seed in fits]
    return Refits(labels[:seeds], draws, labels[seeds:])


def _kmeans_labels(
    vectors: np.ndarray, k: int, n_init: int, picked: np.ndarray, seed: int
) -> np.ndarray:
    with threadpool_limits(1):
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(vectors[picked]).labels_


def kmeans_refits(
    vectors: np.ndarray,
    ks: Sequence[int],
    n_init: int,
    settings: StabilityParams,
    seed: int,
    n_jobs: int = N_JOBS,
) -> dict[int, Refits]:
    """KMeans refits of ``vectors`` (the sample) for every k, in parallel; alike for any n_jobs."""
    draws, fits = _plan(len(vectors), settings.seeds, settings.bootstrap_rounds, seed)
    labels = Parallel(n_jobs=n_jobs)(
        delayed(_kmeans_labels)(vectors, k, n_init, picked, fit_seed)
        for k in ks
        for picked, fit_seed in fits
    )
    per_k = len(fits)
    return {
        k: Refits(
            labels[i * per_k : i * per_k + settings.seeds],
            draws,
            labels[i * per_k + settings.seeds : (i + 1) * per_k],
        )
        for i, k in enumerate(ks)
    }


def refit_rows(fitted: int, params: Params) -> np.ndarray:
    """Positions, among the ``fitted`` rows kmeans fits on, of the sample the refits fit: a seeded
    sample of ``stability.rows`` of them. The elbow study refits it for every k and the stability
    stage reads those refits back, so both draw it here."""
    return sample_rows(fitted, params.stability.rows, params.seed)


def _settings(rows: int, n_init: int, settings: StabilityParams, seed: int) -> np.ndarray:
    return np.array([rows, n_init, settings.seeds, settings.bootstrap_rounds, seed])


def save_refits(
    path: Path, refits: dict[int, Refits], n_init: int, settings: StabilityParams, seed: int
) -> None:
    """Every k's refit segments, with the settings they were fitted with, in one ``.npz``."""
    rows = len(next(iter(refits.values())).by_seed[0])
    arrays = {
        f"k{k}": np.array([*found.by_seed, *found.resampled], dtype=np.int16)
        for k, found in refits.items()
    }
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, settings=_settings(rows, n_init, settings, seed), **arrays)


def saved_refits(
    path: Path, k: int, rows: int, n_init: int, settings: StabilityParams, seed: int
) -> Refits | None:
    """The refits at ``k`` that :func:`save_refits` wrote, if they were fitted with these settings
    on ``rows`` rows; else None (none saved, or another k or settings)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as saved:
            if f"k{k}" not in saved or not np.array_equal(
                saved["settings"], _settings(rows, n_init, settings, seed)
            ):
                return None
            labels = list(saved[f"k{k}"].astype(np.int32))
    except (OSError, ValueError, KeyError) as error:
        raise PipelineError(
            f"{path}: not the elbow study's refits ({' '.join(str(error).split())[:120]}); "
            "delete it and rerun 'dvc repro'"
        ) from None
    draws, _ = _plan(rows, settings.seeds, settings.bootstrap_rounds, seed)
    return Refits(labels[: settings.seeds], draws, labels[settings.seeds :])


def _drawn_once(drawn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The customers a resample drew, each once, and the first position of each in the draw."""
    return np.unique(drawn, return_index=True)


def ari_scores(refits: Refits) -> dict[str, float]:
    """Mean and lowest ARI between every pair of seeds, and between each resample's segments and
    the first seed's, on the customers it drew."""
    across_seeds = [adjusted_rand_score(a, b) for a, b in itertools.combinations(refits.by_seed, 2)]
    across_resamples = []
    for drawn, labels in zip(refits.draws, refits.resampled):
        customers, first = _drawn_once(drawn)
        across_resamples.append(adjusted_rand_score(refits.by_seed[0][customers], labels[first]))
    return {
        "seed_ari_mean": np.mean(across_seeds),
        "seed_ari_min": np.min(across_seeds),
        "bootstrap_ari_mean": np.mean(across_resamples),
        "bootstrap_ari_min": np.min(across_resamples),
    }


def best_jaccard(reference: np.ndarray, other: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """For each of ``segments``, its largest Jaccard |A ∩ B| / |A ∪ B| with a cluster B of ``other``
    on the same customers; 0 for a segment with no customer here (fpc's ``zerobyzero``)."""
    rows = np.searchsorted(segments, reference)
    _, columns = np.unique(other, return_inverse=True)
    table = np.zeros((len(segments), columns.max() + 1))
    np.add.at(table, (rows, columns), 1.0)
    union = table.sum(axis=1, keepdims=True) + table.sum(axis=0, keepdims=True) - table
    return np.divide(table, union, out=np.zeros_like(table), where=union > 0).max(axis=1)


def clusterwise_jaccard(reference: np.ndarray, refits: Refits, k: int) -> dict[int, float]:
    """Hennig's clusterwise Jaccard of each segment 1..k of ``reference`` (one per sample row): in
    each resample, its best Jaccard with a refitted cluster on the customers drawn; the mean of
    those. A segment with no customer in the sample scores 0, as in fpc."""
    segments = np.arange(1, k + 1)
    total = np.zeros(len(segments))
    for drawn, labels in zip(refits.draws, refits.resampled):
        customers, first = _drawn_once(drawn)
        total += best_jaccard(reference[customers], labels[first], segments)
    return {
        int(segment): float(value) for segment, value in zip(segments, total / len(refits.draws))
    }


# --- the choice of k --------------------------------------------------------------------------


def stability_per_k(refits: dict[int, Refits]) -> pd.DataFrame:
    """Per k: the mean ARI across bootstrap resamples and across seeds, and the lower of the two,
    which is the k's stability (its segments must come back under both)."""
    rows = []
    for k, found in refits.items():
        scores = ari_scores(found)
        rows.append(
            {
                "n_clusters": k,
                "bootstrap_ari": scores["bootstrap_ari_mean"],
                "seed_ari": scores["seed_ari_mean"],
            }
        )
    frame = pd.DataFrame(rows)
    return frame.assign(stability=frame[["bootstrap_ari", "seed_ari"]].min(axis=1))


def suggest_k(curve: pd.DataFrame) -> dict[str, int | float]:
    """The suggested k: of the stable k (stability at least STABLE_ARI), the one nearest the elbow
    (the knee of the inertia curve, or the best silhouette where it has none), the more stable on a
    tie, then the smaller; with no stable k, the most stable k (on a tie, the smaller).
    """
    # kneed imports matplotlib's pyplot; only the elbow study needs it, so it loads here.
    from kneed import KneeLocator

    best_silhouette = int(curve.loc[curve["silhouette"].idxmax(), "n_clusters"])
    knee = KneeLocator(
        curve["n_clusters"], curve["inertia"], curve="convex", direction="decreasing"
    ).knee
    elbow = best_silhouette if knee is None else int(knee)
    stability = dict(zip(curve["n_clusters"].astype(int), curve["stability"]))
    most_stable = min(stability, key=lambda k: (-stability[k], k))
    stable = [k for k, value in stability.items() if value >= STABLE_ARI]
    suggested = (
        min(stable, key=lambda k: (abs(k - elbow), -stability[k], k)) if stable else most_stable
    )
    return {
        "suggested_k": suggested,
        "elbow_k": elbow,
        "best_silhouette_k": best_silhouette,
        "most_stable_k": most_stable,
        "suggested_stability": stability[suggested],
        "most_stable_stability": stability[most_stable],
        "stable_k_count": len(stable),
    }


# --- the chosen k: near tie -------------------------------------------------------------------


def _centres(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each cluster's mean, in label order."""
    _, codes = np.unique(labels, return_inverse=True)
    sums = np.zeros((codes.max() + 1, points.shape[1]))
    np.add.at(sums, codes, points)
    return sums / np.bincount(codes)[:, None]


def partition_inertia(vectors: np.ndarray, labels: np.ndarray) -> float:
    """The k-means objective of a partition: squared distances to each cluster's mean, in float64.

    Clusters are summed in the order of their first row, so a partition's value does not depend on
    how its clusters are numbered.
    """
    _, first = np.unique(labels, return_index=True)
    total = 0.0
    for cluster in labels[np.sort(first)]:
        members = vectors[labels == cluster].astype(np.float64)
        total += float(((members - members.mean(axis=0)) ** 2).sum())
    return total


def _polished(vectors: np.ndarray, centres: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Lloyd's iterations on all rows from ``centres``: the partition reached and its inertia."""
    with threadpool_limits(1):
        labels = (
            KMeans(n_clusters=len(centres), init=centres, n_init=1, random_state=seed)
            .fit(vectors)
            .labels_
        )
    return labels, partition_inertia(vectors, labels)


def near_tie(
    vectors: np.ndarray,
    committed: np.ndarray,
    sample: np.ndarray,
    refits: Refits,
    gap_pct: float,
    seed: int,
    n_jobs: int = N_JOBS,
) -> dict[str, float | int]:
    """The best partition of all rows and the best one that differs from it (ARI below STABLE_ARI).

    The candidates: the committed segments, and every refit of the sample (each seed's, each
    resample's) polished on all rows from its cluster means, so restarts and resamples both
    explore other partitions. ``near_tie`` is 1 when the two are less than ``gap_pct`` percent
    apart in inertia; the gap and ARI are absent when every candidate agrees with the best.
    """
    points = vectors[sample]
    starts = [_centres(points, labels) for labels in refits.by_seed]
    starts += [
        _centres(points[drawn], labels) for drawn, labels in zip(refits.draws, refits.resampled)
    ]
    polished = Parallel(n_jobs=n_jobs)(
        delayed(_polished)(vectors, centres, seed) for centres in starts
    )
    partitions = [committed, *(labels for labels, _ in polished)]
    inertias = [partition_inertia(vectors, committed), *(inertia for _, inertia in polished)]
    best = int(np.argmin(inertias))  # the committed segments win a tie
    agreement = [adjusted_rand_score(partitions[best], partition) for partition in partitions]
    found: dict[str, float | int] = {
        "near_tie_candidates": len(partitions),
        "best_inertia": inertias[best],
        "committed_inertia_gap_pct": 100 * (inertias[0] - inertias[best]) / inertias[best],
        "committed_ari_to_best": agreement[0],
        "near_tie": 0,
    }
    different = [i for i, ari in enumerate(agreement) if ari < STABLE_ARI]
    if different:
        runner_up = min(different, key=lambda i: (inertias[i], i))
        gap = 100 * (inertias[runner_up] - inertias[best]) / inertias[best]
        found |= {
            "near_tie_inertia_gap_pct": gap,
            "near_tie_ari": agreement[runner_up],
            "near_tie": int(gap < gap_pct),
        }
    return found


# --- the metrics -----------------------------------------------------------------------------


def segment_jaccards(metrics: dict[str, float], k: int, prefix: str = "") -> dict[int, float]:
    """Segments 1..k's clusterwise Jaccard from metrics keyed ``<prefix>segment_<s>_jaccard``."""
    return {segment: metrics[f"{prefix}segment_{segment}_jaccard"] for segment in range(1, k + 1)}


# --- the stage ------------------------------------------------------------------------------


def segment_stability(
    vectors: np.ndarray,
    committed: np.ndarray,
    sample: np.ndarray,
    k: int,
    n_init: int,
    settings: StabilityParams,
    seed: int,
    refits: Refits | None = None,
) -> dict[str, float | int]:
    """The chosen k's refit ARIs, near tie and each segment's clusterwise Jaccard, as metrics.

    ``sample``: the rows refitted; their ``refits`` when the elbow study made them already.
    """
    if refits is None:
        refits = kmeans_refits(vectors[sample], [k], n_init, settings, seed)[k]
    jaccard = clusterwise_jaccard(committed[sample], refits, k)
    return {
        **ari_scores(refits),
        **near_tie(vectors, committed, sample, refits, settings.near_tie_gap_pct, seed),
        **{f"segment_{segment}_jaccard": value for segment, value in jaccard.items()},
    }
