"""scripts/check_metrics.py: which reproduced metrics count as different from the committed ones."""

from __future__ import annotations

from scripts.check_metrics import difference_table, metric_differences


def entry(old, new):
    return {"old": old, "new": new}


def test_rounding_noise_passes_and_real_changes_fail():
    diff = {
        "metrics/evaluate.json": {
            "silhouette": entry(0.141664, 0.141665),  # last rounded digit: within 1e-4
            "davies_bouldin": entry(2.12075, 2.2),  # a real change
        },
        "metrics/outliers.json": {
            "inliers": entry(40690, 40689),  # counts must match exactly
            "customers": entry(45211, 45211),
        },
    }
    assert metric_differences(diff) == [
        ("metrics/evaluate.json", "davies_bouldin", 2.12075, 2.2),
        ("metrics/outliers.json", "inliers", 40690, 40689),
    ]
    assert metric_differences(diff, rel_tol=0.1) == [
        ("metrics/outliers.json", "inliers", 40690, 40689)
    ]


def test_a_metric_that_appears_or_disappears_is_a_difference():
    diff = {
        "metrics/new_stage.json": {"score": entry(None, 0.5)},
        "metrics/embed.json": {"rows": entry(10, None)},
    }
    assert metric_differences(diff) == [
        ("metrics/embed.json", "rows", 10, None),
        ("metrics/new_stage.json", "score", None, 0.5),
    ]


def test_the_table_lists_each_difference_with_its_relative_size():
    table = difference_table(
        [
            ("metrics/evaluate.json", "davies_bouldin", 2.0, 2.2),
            ("metrics/embed.json", "rows", 10, None),
        ]
    )
    header, first, second = table.splitlines()
    assert header.split() == ["file", "metric", "committed", "reproduced", "relative", "difference"]
    assert first.split() == ["metrics/evaluate.json", "davies_bouldin", "2.0", "2.2", "1.00e-01"]
    assert second.split() == ["metrics/embed.json", "rows", "10", "missing", "-"]


def test_stability_estimates_get_an_absolute_band_other_scores_do_not():
    diff = {
        "metrics/bank/comparison.json": {
            "embedding_bootstrap_ari_mean": entry(
                0.694307, 0.694222
            ),  # one refit of a near tie, another CPU
            "tabular_seed_ari_min": entry(0.98, 0.995),  # beyond 0.01: a real change
            "embedding_on_embeddings_silhouette": entry(0.1451, 0.1452),
        },
        # the stability stage's own estimates, and inertia gaps near zero, measured on two CPUs
        "metrics/bank/stability.json": {
            "seed_ari_min": entry(0.999116, 0.998676),
            "bootstrap_ari_min": entry(0.663218, 0.662574),
            "committed_inertia_gap_pct": entry(2.99675e-07, 3.02724e-07),
            "near_tie_inertia_gap_pct": entry(0.040878, 0.052),  # beyond 0.0001: a real change
            "committed_ari_to_best": entry(0.999941, 0.9998),
        },
    }
    assert metric_differences(diff) == [
        ("metrics/bank/comparison.json", "embedding_on_embeddings_silhouette", 0.1451, 0.1452),
        ("metrics/bank/comparison.json", "tabular_seed_ari_min", 0.98, 0.995),
        ("metrics/bank/stability.json", "committed_ari_to_best", 0.999941, 0.9998),
        ("metrics/bank/stability.json", "near_tie_inertia_gap_pct", 0.040878, 0.052),
    ]
