"""Stage 9: how well the segmentation columns explain the segments (LightGBM surrogate + SHAP),
and how much each column drives them.

Two measures of what drives a segmentation, written to the metrics: each column's share of the
surrogate's mean |SHAP| (the largest share, and the numeric columns' together), and for each
numeric column the share of its variance the segments explain (η², the correlation ratio).
Above ``sample_fit_rows`` inliers the surrogate learns from a seeded sample of them; η² is over
every inlier.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from segmentation.artifacts import (
    CUSTOMER_ID,
    metric_key,
    read_csv,
    run,
    write_csv,
    write_metrics,
    write_png,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.evaluation.surrogate import (
    driver_metrics,
    explain,
    holdout_scores,
    importance_figure,
    surrogate_features,
)
from segmentation.model.sampling import sample_rows


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    labels = read_csv(paths.labels)
    everyone = read_customers(paths.customers, dataset).loc[labels[CUSTOMER_ID]]
    segments_of_everyone = labels["segment"].to_numpy()
    taken = sample_rows(len(labels), params.sample_fit_rows, params.seed)
    customers, segments = everyone.iloc[taken], segments_of_everyone[taken]
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
    metrics |= driver_metrics(everyone, segments_of_everyone, importance, dataset)
    if len(taken) < len(labels):
        metrics["fit_sample_rows"] = len(taken)
    write_metrics(paths.metrics / "explain.json", metrics)
    write_csv(paths.plots / "importance.csv", importance)
    write_png(paths.plots / "importance.png", importance_figure(importance))
    write_csv(paths.reports / "segment_drivers.csv", drivers)


if __name__ == "__main__":
    run(main)
