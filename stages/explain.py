"""Stage 9: how well the segmentation columns explain the segments (LightGBM surrogate + SHAP),
and how much each column drives them.

Two measures of what drives a segmentation, written to the metrics: each column's share of the
surrogate's mean |SHAP| (the largest share, and the numeric columns' together), and for each
numeric column the share of its variance the segments explain (η², the correlation ratio).
Above ``sample_fit_rows`` inliers the surrogate learns from a seeded sample of them, read alone;
η² is over every inlier, from the counts and sums that each shard of customers tallies, here or on
Ray (``engine``), as the profile's are.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from segmentation.artifacts import metric_key, run, write_csv, write_metrics, write_png
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.evaluation.surrogate import (
    driver_metrics,
    explain,
    holdout_scores,
    importance_figure,
    surrogate_features,
)
from segmentation.model.sampling import column_at, sample_inlier_rows
from segmentation.reporting.tallies import profile_tallies


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    sample = sample_inlier_rows(paths, params.sample_fit_rows, params.seed)
    customers = read_customers(paths.customers, dataset, sample.rows)
    # the tallies before the fits: they check that the customers, flags and labels line up
    tallies = profile_tallies(paths, dataset, None, customers, params.engine)
    segments = column_at(paths.labels, "segment", sample.positions)
    # The text may carry columns the segments are not built on; this says how much they explain.
    context = dataset.context_columns
    with ThreadPoolExecutor(max_workers=1) as pool:
        if context:
            with_context = surrogate_features(customers, dataset, dataset.segment_on + context)
            context_scores = pool.submit(
                holdout_scores, with_context, segments - 1, params.explain, params.seed
            )
        metrics, importance, drivers = explain(
            surrogate_features(customers, dataset), segments, params.explain, params.seed
        )
        if context:
            metrics[metric_key("holdout_accuracy_with", *context)] = context_scores.result()[
                "holdout_accuracy"
            ]
    metrics |= driver_metrics(tallies, importance, dataset)
    if len(sample.positions) < sample.inliers:
        metrics["fit_sample_rows"] = len(sample.positions)
    write_metrics(paths.metrics / "explain.json", metrics)
    write_csv(paths.plots / "importance.csv", importance)
    write_png(paths.plots / "importance.png", importance_figure(importance))
    write_csv(paths.reports / "segment_drivers.csv", drivers)


if __name__ == "__main__":
    run(main)
