"""The article's other two methods (tabular KMeans and K-Prototypes), the MCA map, and their
comparison with the embedding segments: scores, stability, agreement, verdict and report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from segmentation.artifacts import PipelineError, write_csv
from segmentation.baselines import compare, kprototypes, kprototypes_cost, mca, tabular
from segmentation.config import MCAParams, TabularParams, layout
from segmentation.model import sampling
from segmentation.reporting import comparison
from segmentation.testing import synthetic


@pytest.fixture(scope="module")
def mixed_customers(bank_customers):
    """Two groups (young singles, older married managers) in which every UCI category occurs."""
    frame = synthetic.customers(400, seed=5)
    frame.loc[::40, "marital"] = "divorced"
    return bank_customers(frame)


def test_method_one_matrix_has_19_columns_one_hot_and_8_ordinal(mixed_customers, bank):
    one_hot, ordinal = (
        tabular.encode_tabular(
            mixed_customers, bank, tabular.fit_encoder(mixed_customers, bank, encoding)
        )
        for encoding in ("onehot", "ordinal")
    )
    assert one_hot.shape == (400, 19) and ordinal.shape == (400, 8)
    # education keeps the declared level order, "unknown" (3) last, as the article's encoder had it
    levels = dict(zip(bank.columns["education"].levels, range(4)))
    np.testing.assert_array_equal(
        one_hot[:, 16], mixed_customers["education"].map(levels).to_numpy()
    )
    assert tabular.encoding_description(bank, "onehot") == (
        "one-hot job, marital, default, housing, loan; ordinal education; Yeo-Johnson age, balance"
    )
    # the power-transformed age and balance are standardized; one-hot columns are 0/1
    np.testing.assert_allclose(one_hot[:, -2:].mean(axis=0), 0, atol=1e-8)
    assert set(np.unique(one_hot[:, :16])) == {0.0, 1.0}
    np.testing.assert_allclose(ordinal.std(axis=0), 1, atol=1e-6)


def test_tabular_segments_are_numbered_by_size_and_scored(mixed_customers, bank):
    encoder = tabular.fit_encoder(mixed_customers, bank, "onehot")
    matrix = tabular.encode_tabular(mixed_customers, bank, encoder)
    segments, centroids, metrics = tabular.segment_tabular(
        matrix, 2, TabularParams(n_init=3), seed=0, silhouette_max_rows=100_000
    )
    sizes = np.bincount(segments)[1:]
    assert sizes[0] >= sizes[1] and sizes.sum() == 400 and centroids.shape == (2, 19)
    # the synthetic customers are two groups split by age, so k = 2 recovers the older ones
    older = mixed_customers["age"].to_numpy() >= 45
    assert adjusted_rand_score(older, segments) > 0.8
    assert set(metrics) >= {
        "davies_bouldin",
        "calinski_harabasz",
        "silhouette",
        "pca_variance_first3",
    }
    assert (
        metrics["pca_variance_1"] >= metrics["pca_variance_2"]
        and 0 < metrics["pca_variance_first3"] < 1
    )
    assert np.array_equal(
        segments,
        tabular.segment_tabular(
            matrix, 2, TabularParams(n_init=3), seed=0, silhouette_max_rows=100_000
        )[0],
    )


def test_prototype_space_distance_is_the_kprototypes_dissimilarity(mixed_customers, bank):
    frame = kprototypes.prototype_frame(mixed_customers, bank)
    assert kprototypes.numeric_columns(frame) == ["age", "balance"]
    assert kprototypes.categorical_columns(frame) == bank.categorical
    assert frame["job"].equals(mixed_customers["job"]) and abs(frame["age"].mean()) < 1e-8
    space = kprototypes.prototype_space(frame)
    gamma = kprototypes.categorical_weight(frame)
    a, b = frame.iloc[0], frame.iloc[1]
    numeric = sum((a[c] - b[c]) ** 2 for c in ("age", "balance"))
    mismatches = sum(a[c] != b[c] for c in bank.categorical)
    assert np.sum((space[0] - space[1]) ** 2) == pytest.approx(numeric + gamma * mismatches)


def test_kprototypes_finds_the_two_groups_and_is_seeded(mixed_customers, bank):
    frame = kprototypes.prototype_frame(mixed_customers, bank)
    segments, cost = kprototypes.fit_prototypes(frame, 2, n_init=2, max_iter=20, seed=0)
    assert adjusted_rand_score(mixed_customers["age"] >= 45, segments) > 0.8 and cost > 0
    assert np.bincount(segments)[1] >= np.bincount(segments)[2]
    assert np.array_equal(
        segments, kprototypes.fit_prototypes(frame, 2, n_init=2, max_iter=20, seed=0)[0]
    )
    curve = kprototypes_cost.cost_curve(frame, range(2, 5), n_init=1, max_iter=20, seed=0)
    assert (
        curve["n_clusters"].tolist() == [2, 3, 4] and curve["cost"].iloc[0] > curve["cost"].iloc[-1]
    )
    with pytest.raises(PipelineError, match="k=400 must be below"):
        kprototypes.fit_prototypes(frame, 400, n_init=1, max_iter=5, seed=0)


def test_mca_shares_are_ordered_and_the_first_axis_separates_the_groups(mixed_customers, bank):
    categories = mixed_customers.loc[:, bank.categorical]
    coordinates, shares = mca.correspondence_map(categories, MCAParams(n_components=3), seed=0)
    assert coordinates.shape == (400, 3) and shares.shape == (3,)
    assert shares[0] >= shares[1] >= shares[2] > 0 and shares.sum() < 1
    # marital status (married vs single) is what the synthetic groups share most among the
    # categoricals
    married = (categories["marital"] == "married").to_numpy()
    assert abs(np.corrcoef(coordinates[:, 0], married)[0, 1]) > 0.8


def test_refit_stability_scores_the_committed_segments_from_the_same_refits():
    truth = np.repeat([1, 2, 3], 30)
    perfect = compare.refit_stability(lambda rows, seed: truth[rows], truth, 3, 3, rounds=2, seed=0)
    assert perfect == {
        "seed_ari_mean": 1.0,
        "seed_ari_min": 1.0,
        "bootstrap_ari_mean": 1.0,
        "bootstrap_ari_min": 1.0,
        "segment_1_jaccard": 1.0,
        "segment_2_jaccard": 1.0,
        "segment_3_jaccard": 1.0,
    }
    # Refits that agree with one another but always merge segments 2 and 3: the ARIs (refit against
    # refit) are 1; the Jaccards (committed segment against refit) show 1 whole, 2 and 3 halved.
    merged = compare.refit_stability(
        lambda rows, seed: np.minimum(truth[rows], 2), truth, 3, 2, 3, seed=0
    )
    assert (
        merged["seed_ari_mean"]
        == merged["bootstrap_ari_mean"]
        == merged["segment_1_jaccard"]
        == 1.0
    )
    assert merged["segment_2_jaccard"] == pytest.approx(0.5, abs=0.05)
    assert merged["segment_3_jaccard"] == pytest.approx(0.5, abs=0.05)
    # A segment that none of the sampled customers is in still has its key, scored 0 (fpc).
    absent = compare.refit_stability(lambda rows, seed: truth[rows], truth, 4, 2, 1, seed=0)
    assert absent["segment_4_jaccard"] == 0.0 and absent["segment_3_jaccard"] == 1.0


def test_comparison_scores_every_method_in_every_space(blobs):
    vectors, truth = blobs
    segments = {
        "embedding": truth + 1,
        "tabular": truth + 1,
        "kprototypes": np.random.default_rng(0).integers(1, 4, len(truth)),
    }
    spaces = {"tabular": vectors, "embeddings": vectors[:, :3]}
    scores = compare.space_scores(spaces, segments, silhouette_max_rows=100, seed=0)
    assert len(scores) == 3 * 2 * 3
    assert scores["tabular_on_tabular_silhouette"] > scores["kprototypes_on_tabular_silhouette"]
    assert scores["embedding_on_tabular_silhouette"] == scores["tabular_on_tabular_silhouette"]
    agreement = compare.agreement(segments)
    assert (
        agreement["ari_embedding_tabular"] == 1.0
        and abs(agreement["ari_embedding_kprototypes"]) < 0.1
    )
    assert set(agreement) == {
        "ari_embedding_tabular",
        "ari_embedding_kprototypes",
        "ari_tabular_kprototypes",
    }


def test_outcome_separation_is_the_rate_range_and_cramers_v():
    segments = np.repeat([1, 2, 3], 100)
    churned = pd.Series(np.r_[np.ones(100), np.zeros(200)])
    clear = compare.outcome_separation(churned, segments, numeric=False)
    assert clear == {"spread": 1.0, "association": pytest.approx(1.0)}
    blind = compare.outcome_separation(pd.Series(np.tile([0.0, 1.0], 150)), segments, numeric=False)
    assert blind["spread"] == pytest.approx(0.0, abs=0.02) and blind["association"] < 0.05
    spend = pd.Series(np.r_[np.full(100, 10.0), np.full(100, 20.0), np.full(100, 30.0)])
    assert compare.outcome_separation(spend, segments, numeric=True) == {
        "spread": 20.0,
        "association": pytest.approx(1.0),
    }


def write_flags(folder, embedding: list[int], tabular: list[int]):
    """Both ECODs' flags (1 = outlier) of customers c0, c1, ... in ``folder``'s bank data set."""
    paths = layout("bank")
    for path, flags in ((paths.outliers, embedding), (paths.tabular_outliers, tabular)):
        ids = [f"c{row}" for row in range(len(flags))]
        write_csv(folder / path, pd.DataFrame({"customer_id": ids, "outlier": flags}))
    return paths


def test_the_compared_customers_are_those_both_ecods_keep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # rows and positions carried across chunks
    monkeypatch.setattr(compare, "BLOCK_ROWS", 2)
    monkeypatch.setattr(sampling, "BLOCK_ROWS", 2)
    paths = write_flags(tmp_path, [0, 1, 0, 0, 1, 0, 1], [0, 0, 1, 0, 0, 0, 0])
    located = compare.compared_customers(paths, 1000, 7)
    assert located.rows.tolist() == [0, 3, 5]
    assert located.embedding_positions.tolist() == [0, 2, 3]
    assert located.tabular_positions.tolist() == [0, 2, 4]
    assert (located.common, located.embedding_inliers, located.tabular_inliers) == (3, 4, 6)
    write_flags(tmp_path, [0, 1, 0], [0, 0, 1, 0])
    with pytest.raises(PipelineError, match="flag different numbers of customers"):
        compare.compared_customers(paths, 1000, 7)


def test_above_the_threshold_a_seeded_sample_of_the_common_customers_is_compared(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    draw = np.random.default_rng(3)
    embedding, tabular = draw.random(1000) < 0.1, draw.random(1000) < 0.1
    paths = write_flags(tmp_path, embedding.astype(int).tolist(), tabular.astype(int).tolist())
    common = np.flatnonzero(~embedding & ~tabular)
    every = compare.compared_customers(paths, len(common), 7)
    assert every.rows.tolist() == common.tolist() and every.common == len(common)
    sample = compare.compared_customers(paths, 100, 7)
    assert len(sample.rows) == 100 and np.all(np.diff(sample.rows) > 0)
    assert set(sample.rows) <= set(common) and sample.common == len(common)
    # positions among each ECOD's inliers of the same customers
    assert np.array_equal(np.flatnonzero(~embedding)[sample.embedding_positions], sample.rows)
    assert np.array_equal(np.flatnonzero(~tabular)[sample.tabular_positions], sample.rows)
    assert np.array_equal(sample.rows, compare.compared_customers(paths, 100, 7).rows)
    assert not np.array_equal(sample.rows, compare.compared_customers(paths, 100, 8).rows)


def _comparison_metrics(embedding: float, tabular: float, kprototypes: float) -> dict[str, float]:
    """Metrics in which one method is best everywhere: the one given the highest quality."""
    quality = {"embedding": embedding, "tabular": tabular, "kprototypes": kprototypes}
    metrics = {
        "common_rows": 1000,
        "ari_embedding_tabular": 0.3,
        "ari_embedding_kprototypes": 0.2,
        "ari_tabular_kprototypes": 0.6,
    }
    for method, q in quality.items():
        for space in compare.SPACES:
            metrics |= {
                f"{method}_on_{space}_davies_bouldin": 2 - q,
                f"{method}_on_{space}_calinski_harabasz": 1000 * q,
                f"{method}_on_{space}_silhouette": q / 2,
            }
        metrics |= {
            f"{method}_surrogate_accuracy": q,
            f"{method}_surrogate_macro_f1": q,
            f"{method}_majority_class_accuracy": 0.3,
            f"{method}_seed_ari_mean": q,
            f"{method}_seed_ari_min": q,
            f"{method}_bootstrap_ari_mean": q,
            f"{method}_bootstrap_ari_min": q,
            f"{method}_outcome_y_association": q / 3,
            f"{method}_outcome_y_spread": q / 4,
        }
        metrics |= {f"{method}_segment_{s}_jaccard": q - (s == 3) * 0.31 for s in range(1, 5)}
    return metrics


def test_verdict_follows_the_numbers(bank):
    measures = comparison.measures(bank)
    assert len(measures) == 10 and "Separates Subscribed a term deposit (Cramér V)" in {
        n for n, _ in measures.values()
    }
    embedding_best = comparison.verdict(_comparison_metrics(0.95, 0.8, 0.5), measures, k=4)
    assert "Embeddings + KMeans is best on 10 of 10 measures" in embedding_best
    assert "supported on 10 of 10 measures, a majority" in embedding_best
    assert (
        "Changing the seed moves many customers between the segments of K-Prototypes (Method 2) "
        "(mean ARI 0.50, below" in embedding_best
    )
    assert (
        "Changing the customers sampled barely changes the segments of Embeddings + KMeans (mean"
        in embedding_best
    )
    assert (
        "Tabular KMeans (Method 1) and K-Prototypes (Method 2), agree with ARI 0.60"
        in embedding_best
    )
    assert (
        "Per segment, Embeddings + KMeans has 3 of 4 segments stable (clusterwise Jaccard at least "
        "0.85, mean 0.87); Tabular KMeans (Method 1) 0 (mean 0.72); K-Prototypes (Method 2) 0 "
        "(mean 0.42)."
    ) in embedding_best
    tabular_best = comparison.verdict(_comparison_metrics(0.5, 0.95, 0.8), measures, k=4)
    assert (
        "Tabular KMeans (Method 1) is best on 10 of 10" in tabular_best
        and "supported on 0 of 10 measures, not a majority" in tabular_best
    )
    assert (
        "segments of Embeddings + KMeans (mean ARI 0.50, below 0.75): part of them is an accident "
        "of initialisation." in tabular_best
    )


def test_comparison_report_marks_the_best_and_states_the_rows(bank):
    metrics = _comparison_metrics(0.95, 0.8, 0.5)
    own = {
        m: {"rows": 900, "davies_bouldin": 1.5, "calinski_harabasz": 5000.0, "silhouette": 0.2}
        for m in compare.METHODS
    }
    top = {m: ["age", "job", "housing"] for m in compare.METHODS}
    context = {
        "name": "bank",
        "k": 4,
        "seed": 1,
        "model": "my-model",
        "encoding": "onehot",
        "silhouette": "exact, over all of them",
        "stability_rows": 400,
        "stability_seeds": 5,
        "bootstrap_rounds": 3,
        "test_share": 0.2,
        "plots": "../../plots/bank",
        "own_spaces": {m: f"{m} space" for m in compare.METHODS},
        "near_tie": "k = 4 is a near tie (inertia gap 0.04%, ARI 0.73 between the two ...).",
    }
    report = comparison.render_report(metrics, own, top, context, bank)
    assert "**1,000 customers**" in report and "k = 4" in report and "`my-model`" in report
    assert "| Silhouette in the embedding matrix | **0.4750** | 0.4000 | 0.2500 |" in report
    assert (
        "| Davies-Bouldin in the Method-1 tabular matrix | **1.0500** | 1.2000 | 1.5000 |" in report
    )
    assert "| Tabular KMeans (Method 1) | 0.300 | 1 | 0.600 |" in report
    assert (
        "| Embeddings + KMeans | 23.8 points | 0.317 |" in report
    )  # the outcome's range and Cramér's V
    assert (
        "the 8 segmentation columns encoded (one-hot job, marital, default, housing, loan; "
        "ordinal education" in report
    )
    assert (
        "![comparison_pca](../../plots/bank/comparison_pca.png)" in report
        and "## Verdict" in report
    )
    assert "| Method | Segment 1 | Segment 2 | Segment 3 | Segment 4 |" in report
    assert (
        "| Embeddings + KMeans | 0.95 stable | 0.95 stable | 0.64 fuzzy | 0.95 stable |" in report
    )
    assert (
        "- Embeddings + KMeans: Segments 1, 2 and 4 are stable (Jaccard 0.95, 0.95, 0.95); "
        "segment 3 is fuzzy (0.64)."
    ) in report
    assert (
        "- K-Prototypes (Method 2): Segments 1, 2 and 4 are weak (Jaccard 0.50, 0.50, 0.50); "
        "segment 3 is dissolved (0.19)."
    ) in report
    assert "(`metrics/bank/stability.json`):\nk = 4 is a near tie (inertia gap 0.04%" in report
