"""Method 2 of the article: K-Prototypes (kmodes) on the mixed columns of the Method-1 inliers.

The categorical (and ordinal) columns stay as they are; the numbers are Yeo-Johnson transformed, so
the numeric part is on the scale K-Prototypes' default weight ``gamma`` assumes. The transform and
K-Prototypes are fitted on a seeded sample of ``sample_fit_rows`` inliers (all of them below that)
and every inlier then gets its nearest prototype, a chunk of customers at a time; the metrics are
the sample's, the segment shares every inlier's. The MCA map shows the mca stage's customers, that
same sample.
"""

from __future__ import annotations

import pandas as pd

from segmentation.artifacts import read_csv, read_json, run, write_metrics, write_png
from segmentation.baselines.kprototypes import (
    PrototypeColumns,
    categorical_weight,
    fit_prototype_model,
    mca_figure,
    nearest_prototypes,
    prototype_space,
    read_tabular_inlier_sample,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset
from segmentation.evaluation.validity import cluster_metrics
from segmentation.model.kmeans import write_fitted_labels


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    settings = params.comparison.kprototypes
    customers, sample = read_tabular_inlier_sample(
        paths, dataset, params.sample_fit_rows, params.seed
    )
    columns = PrototypeColumns(customers, dataset)
    frame = columns.frame(customers)
    fit = fit_prototype_model(frame, params.k, settings.n_init, settings.max_iter, params.seed)
    segments, sizes = write_fitted_labels(
        paths.kprototypes_labels,
        sample,
        customers.index.to_numpy(),
        fit.labels,
        params.k,
        lambda: nearest_prototypes(paths, dataset, columns, fit),
    )
    shares = sizes / sample.inliers
    figure = mca_figure(
        read_csv(paths.mca_coordinates),
        pd.Series(segments, index=customers.index),
        read_json(paths.metrics / "mca.json"),
    )
    write_png(paths.plots / "mca_map.png", figure)
    write_metrics(
        paths.metrics / "kprototypes.json",
        {
            "cost": fit.cost,
            "gamma": categorical_weight(frame),
            **cluster_metrics(
                prototype_space(frame), [segments], params.silhouette_max_rows, params.seed
            )[0],
            "largest_segment_share": shares.max(),
            "smallest_segment_share": shares.min(),
            **sample.fit_sample_metric(),
        },
    )


if __name__ == "__main__":
    run(main)
