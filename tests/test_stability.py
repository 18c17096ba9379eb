"""Stability on synthetic data of known structure: refits, Jaccard, near ties, k, words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from segmentation.artifacts import PipelineError
from segmentation.config import Params, StabilityParams
from segmentation.evaluation import elbow, stability
from segmentation.model.sampling import sample_rows
from segmentation.reporting.stability import (
    BAND_MEANINGS,
    bands_legend,
    choice_sentence,
    committed_sentence,
    near_tie_sentence,
    reading,
    segments_sentence,
)

SETTINGS = StabilityParams(rows=400, seeds=3, bootstrap_rounds=5)


def measured(vectors, committed, k, refits=None):
    """The stability stage's metrics at k, with SETTINGS, n_init 1 and seed 0."""
    sample = sample_rows(len(vectors), SETTINGS.rows, 0)
    return stability.segment_stability(vectors, committed, sample, k, 1, SETTINGS, 0, refits)


@pytest.fixture(scope="module")
def square():
    """Four round clusters on the corners of a square: k = 4 is the structure; k = 2 has two equally
    good splits (left/right and top/bottom), k = 3 merges any two neighbours.

    Each corner holds the same points mirrored, and swapping x and y maps the set onto itself, so
    the two splits at k = 2 have exactly the same inertia.
    """
    offsets = np.random.default_rng(0).normal(size=(50, 2))
    offsets = np.vstack([offsets, offsets[:, ::-1]])
    corners = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    vectors = np.vstack([np.array(signs) * (5.0 + offsets) for signs in corners]).astype(np.float32)
    return vectors, np.repeat(np.arange(1, 5), len(offsets))


@pytest.fixture(scope="module")
def blobs():
    vectors, truth = make_blobs(
        n_samples=500, centers=5, n_features=8, cluster_std=0.5, random_state=3
    )
    return vectors.astype(np.float32), truth + 1


def test_best_jaccard_of_a_known_pairing():
    # segment 1 = {0, 1, 2}, 2 = {3, 4}, 3 = {5}; clusters a = {0, 1}, b = {2, 3, 4}, c = {5}
    reference = np.array([1, 1, 1, 2, 2, 3])
    other = np.array(["a", "a", "b", "b", "b", "c"])
    # 1: |{0,1}| / |{0,1,2}| = 2/3 (b: 1/5); 2: |{3,4}| / |{2,3,4}| = 2/3; 3: 1;
    # 4 has no customer here: 0
    found = stability.best_jaccard(reference, other, np.array([1, 2, 3, 4]))
    np.testing.assert_allclose(found, [2 / 3, 2 / 3, 1.0, 0.0])


def test_clusterwise_jaccard_counts_each_drawn_customer_once_and_averages_the_resamples():
    reference = np.array([1, 1, 2, 2, 2])
    # Resample 1 drew customer 0 three times; resample 2 found the segments exactly.
    refits = stability.Refits(
        by_seed=[reference],
        draws=[np.array([0, 0, 0, 2, 3]), np.array([0, 1, 2, 3, 4])],
        resampled=[np.array([7, 7, 7, 7, 8]), np.array([1, 1, 2, 2, 2])],
    )
    # Resample 1, customers {0, 2, 3}: segment 1 = {0} best with cluster 7 = {0, 2}: 1/2;
    # segment 2 = {2, 3} with 7 = {0, 2}: 1/3, with 8 = {3}: 1/2, so 1/2.
    assert stability.clusterwise_jaccard(reference, refits, 2) == pytest.approx({1: 0.75, 2: 0.75})


def test_ari_scores_are_one_for_a_deterministic_fit_and_low_for_noise():
    truth = np.repeat([1, 2, 3], 30)
    perfect = stability.ari_scores(
        stability.refit(lambda rows, seed: truth[rows], 90, seeds=3, rounds=2, seed=0)
    )
    assert perfect == {
        "seed_ari_mean": 1.0,
        "seed_ari_min": 1.0,
        "bootstrap_ari_mean": 1.0,
        "bootstrap_ari_min": 1.0,
    }
    # labels from another stream than the draws' (the same seed makes them follow the row numbers)
    noise = stability.refit(
        lambda rows, seed: np.random.default_rng([seed, 1]).integers(1, 4, len(rows)),
        90,
        3,
        2,
        seed=0,
    )
    scores = stability.ari_scores(noise)
    assert scores["seed_ari_mean"] < 0.2 and scores["bootstrap_ari_mean"] < 0.2
    assert max(stability.clusterwise_jaccard(truth, noise, 3).values()) < 0.5


def test_well_separated_clusters_come_back_whole_and_are_no_near_tie(blobs):
    vectors, truth = blobs
    found = measured(vectors, truth, 5)
    assert [found[f"segment_{s}_jaccard"] for s in range(1, 6)] == pytest.approx([1.0] * 5)
    assert found["bootstrap_ari_mean"] == pytest.approx(1.0) and found[
        "seed_ari_mean"
    ] == pytest.approx(1.0)
    assert found["near_tie"] == 0 and "near_tie_inertia_gap_pct" not in found
    assert found["near_tie_candidates"] == 1 + SETTINGS.seeds + SETTINGS.bootstrap_rounds
    assert (found["committed_ari_to_best"], found["committed_inertia_gap_pct"]) == (1.0, 0.0)


def test_the_elbow_studys_refits_are_reused_only_with_the_same_settings(blobs, tmp_path):
    vectors, truth = blobs
    sample = sample_rows(len(vectors), SETTINGS.rows, 0)
    refits = stability.kmeans_refits(vectors[sample], [4, 5], 1, SETTINGS, seed=0, n_jobs=1)
    path = tmp_path / "refits.npz"
    stability.save_refits(path, refits, 1, SETTINGS, seed=0)
    first = path.read_bytes()
    stability.save_refits(path, refits, 1, SETTINGS, seed=0)
    assert path.read_bytes() == first
    saved = stability.saved_refits(path, 5, len(sample), 1, SETTINGS, seed=0)
    for kept, fitted in zip(saved, refits[5]):
        assert all(np.array_equal(a, b) for a, b in zip(kept, fitted))
    assert measured(vectors, truth, 5, saved) == measured(vectors, truth, 5)
    assert stability.saved_refits(path, 6, len(sample), 1, SETTINGS, seed=0) is None
    assert stability.saved_refits(path, 5, len(sample), 2, SETTINGS, seed=0) is None
    assert stability.saved_refits(path, 5, len(sample), 1, SETTINGS, seed=1) is None
    other = StabilityParams(rows=400, seeds=2, bootstrap_rounds=5)
    assert stability.saved_refits(path, 5, len(sample), 1, other, seed=0) is None
    assert stability.saved_refits(tmp_path / "none.npz", 5, len(sample), 1, SETTINGS, 0) is None
    path.write_bytes(b"not an npz")
    with pytest.raises(PipelineError, match="refits.npz: not the elbow study's refits"):
        stability.saved_refits(path, 5, len(sample), 1, SETTINGS, seed=0)


def test_the_true_k_is_the_most_stable_and_suggested(square):
    vectors, _ = square
    refits = stability.kmeans_refits(vectors, range(2, 8), 1, SETTINGS, seed=0, n_jobs=1)
    per_k = stability.stability_per_k(refits).set_index("n_clusters")
    assert per_k.loc[4, "stability"] == pytest.approx(1.0)
    assert (per_k.drop(index=4)["stability"] < stability.STABLE_ARI).all()
    curve = elbow.elbow_curve(vectors, range(2, 8), n_init=2, seed=0, silhouette_max_rows=1000)
    suggestion = stability.suggest_k(curve.merge(per_k.reset_index(), on="n_clusters"))
    assert (
        suggestion["most_stable_k"],
        suggestion["suggested_k"],
        suggestion["stable_k_count"],
    ) == (4, 4, 1)


def test_two_equally_good_splits_are_flagged_as_a_near_tie(square):
    vectors, truth = square
    committed = KMeans(n_clusters=2, n_init=1, random_state=0).fit(vectors).labels_ + 1
    found = measured(vectors, committed, 2)
    # the other split puts half of each segment in each side: no agreement at all
    assert (
        found["near_tie"] == 1
        and found["near_tie_inertia_gap_pct"] < 0.5
        and found["near_tie_ari"] < 0.05
    )
    assert found["bootstrap_ari_mean"] < stability.STABLE_ARI
    assert min(found[f"segment_{s}_jaccard"] for s in (1, 2)) < 0.85
    # the same data at its true k: the four corners are no near tie and every one is stable
    at_four = measured(vectors, truth, 4)
    assert (
        at_four["near_tie"] == 0
        and min(at_four[f"segment_{s}_jaccard"] for s in range(1, 5)) > 0.95
    )


def test_the_gap_threshold_decides_the_near_tie(square):
    vectors, _ = square
    committed = KMeans(n_clusters=2, n_init=1, random_state=0).fit(vectors).labels_ + 1
    sample = sample_rows(len(vectors), SETTINGS.rows, 0)
    refits = stability.kmeans_refits(vectors[sample], [2], 1, SETTINGS, seed=0, n_jobs=1)[2]
    found = stability.near_tie(vectors, committed, sample, refits, gap_pct=50.0, seed=0, n_jobs=1)
    strict = stability.near_tie(
        vectors,
        committed,
        sample,
        refits,
        gap_pct=found["near_tie_inertia_gap_pct"] / 2,
        seed=0,
        n_jobs=1,
    )
    assert found["near_tie"] == 1 and strict["near_tie"] == 0
    assert strict["near_tie_inertia_gap_pct"] == found["near_tie_inertia_gap_pct"]


def test_partition_inertia_is_the_kmeans_objective(blobs):
    vectors, _ = blobs
    model = KMeans(n_clusters=5, n_init=1, random_state=0).fit(vectors)
    assert stability.partition_inertia(vectors, model.labels_) == pytest.approx(
        model.inertia_, rel=1e-4
    )


def test_refits_do_not_depend_on_the_number_of_jobs(square):
    vectors, truth = square
    alone = stability.kmeans_refits(vectors, [3, 4], 1, SETTINGS, seed=1, n_jobs=1)
    shared = stability.kmeans_refits(vectors, [3, 4], 1, SETTINGS, seed=1, n_jobs=2)
    for k in (3, 4):
        for a, b in zip(
            alone[k].by_seed + alone[k].resampled, shared[k].by_seed + shared[k].resampled
        ):
            np.testing.assert_array_equal(a, b)
    sample = np.arange(len(vectors))
    assert stability.near_tie(
        vectors, truth, sample, alone[4], 0.5, seed=1, n_jobs=1
    ) == stability.near_tie(vectors, truth, sample, alone[4], 0.5, seed=1, n_jobs=2)


def _curve(inertia: list[float], stabilities: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_clusters": range(2, 2 + len(inertia)),
            "inertia": inertia,
            "silhouette": [0.5, 0.4, 0.3, 0.2, 0.1, 0.0][: len(inertia)],
            "stability": stabilities,
        }
    )


def test_suggested_k_is_the_stable_k_nearest_the_knee():
    inertia = [1000, 500, 100, 90, 80, 70]  # knee at k = 4
    # k = 4 unstable; k = 3 and 5 stable, as near: the more stable wins
    found = stability.suggest_k(_curve(inertia, [0.99, 0.92, 0.7, 0.95, 0.5, 0.4]))
    assert (found["elbow_k"], found["suggested_k"], found["most_stable_k"]) == (4, 5, 2)
    assert found["suggested_stability"] == 0.95 and found["stable_k_count"] == 3
    # the knee itself stable: it is the suggestion
    assert (
        stability.suggest_k(_curve(inertia, [0.99, 0.92, 0.91, 0.95, 0.5, 0.4]))["suggested_k"] == 4
    )
    # nothing stable: the most stable k, the smaller on a tie
    none = stability.suggest_k(_curve(inertia, [0.5, 0.8, 0.7, 0.8, 0.5, 0.4]))
    assert (none["suggested_k"], none["most_stable_k"], none["stable_k_count"]) == (3, 3, 0)


def test_each_jaccard_has_exactly_one_reading():
    assert [
        reading(v) for v in (1.0, 0.85, 0.8499, 0.75, 0.7499, 0.6, 0.5999, 0.5, 0.4999, 0.0)
    ] == [
        "stable",
        "stable",
        "moderately stable",
        "moderately stable",
        "fuzzy",
        "fuzzy",
        "weak",
        "weak",
        "dissolved",
        "dissolved",
    ]
    assert bands_legend() == (
        "≥ 0.85 stable, 0.75–0.85 moderately stable, 0.6–0.75 fuzzy, 0.5–0.6 weak, < 0.5 dissolved"
    )
    assert set(BAND_MEANINGS) == {word for _, word in stability.JACCARD_BANDS}


def test_sentences_follow_the_numbers():
    assert segments_sentence({1: 0.55, 2: 0.7, 3: 0.93, 4: 0.88, 5: 0.3}) == (
        "Segments 3 and 4 are stable (Jaccard 0.93, 0.88); segment 2 is fuzzy (0.70); "
        "segment 1 is weak (0.55); segment 5 is dissolved (0.30)."
    )
    assert segments_sentence({1: 0.99, 2: 0.9}) == "Every segment is stable (Jaccard 0.99, 0.90)."
    tie = {
        "near_tie_candidates": 14,
        "near_tie_inertia_gap_pct": 0.0412,
        "near_tie_ari": 0.7312,
        "near_tie": 1,
        "committed_ari_to_best": 0.73,
        "committed_inertia_gap_pct": 0.0412,
    }
    assert near_tie_sentence(5, tie, 0.5).startswith(
        "k = 5 is a near tie (inertia gap 0.04%, ARI 0.73 between the two best partitions)"
    )
    assert near_tie_sentence(5, tie | {"near_tie": 0, "near_tie_inertia_gap_pct": 1.3}, 0.5) == (
        "k = 5 is not a near tie (inertia gap 1.30%, ARI 0.73 between the two best partitions; "
        "a near tie is below 0.5%)."
    )
    assert "all 14 partitions found" in near_tie_sentence(
        5, {"near_tie_candidates": 14, "near_tie": 0}, 0.5
    )
    assert committed_sentence(tie) == (
        " The committed segments are not the best partition found: one with 0.04% less inertia "
        "agrees with them at ARI 0.73."
    )
    assert committed_sentence(tie | {"committed_ari_to_best": 1.0}) == ""
    elbow_metrics = {
        "suggested_k": 6,
        "elbow_k": 4,
        "most_stable_k": 6,
        "suggested_stability": 0.95,
        "most_stable_stability": 0.95,
        "stable_k_count": 2,
    }
    chosen = {"bootstrap_ari_mean": 0.69, "seed_ari_mean": 0.84}
    assert choice_sentence(5, elbow_metrics, chosen) == (
        "At k = 5 the segments come back with ARI 0.69 across bootstrap resamples and 0.84 across "
        "seeds. The elbow study suggests k = 6, the stable k (stability 0.95 ≥ 0.9) nearest its "
        "elbow at k = 4, and the most stable. These segments keep k = 5 (`k` in params.yaml); "
        "`dvc exp run -S k=6` shows the alternative."
    )
    assert choice_sentence(6, elbow_metrics, chosen).endswith("and the most stable.")
    other = elbow_metrics | {"most_stable_k": 2, "most_stable_stability": 0.99}
    assert "elbow at k = 4; k = 2 is the most stable (0.99). These" in choice_sentence(
        5, other, chosen
    )
    unstable = elbow_metrics | {"stable_k_count": 0, "suggested_k": 3, "suggested_stability": 0.85}
    assert (
        "No k reaches stability 0.9; the elbow study suggests the most stable, k = 3 (0.85)."
        in choice_sentence(5, unstable, chosen)
    )


def test_the_refits_fit_a_seeded_sample_of_the_rows_kmeans_fits_on():
    params = Params().model_copy(update={"stability": StabilityParams(rows=300)})
    sample = stability.refit_rows(1_000, params)
    assert len(sample) == 300 and sample.max() < 1_000 and np.all(np.diff(sample) > 0)
    assert np.array_equal(sample, stability.refit_rows(1_000, params))
    assert np.array_equal(stability.refit_rows(200, params), np.arange(200))
