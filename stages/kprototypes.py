"""Method 2 of the article: K-Prototypes (kmodes) on the mixed columns of the Method-1 inliers.

The categorical (and ordinal) columns stay as they are; the numbers are Yeo-Johnson transformed, so
the numeric part is on the scale K-Prototypes' default weight ``gamma`` assumes. In the frame the
functions below share, a column is numeric exactly when its dtype is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_csv,
    read_json,
    run,
    write_csv,
    write_metrics,
    write_png,
)
from segmentation.baselines.kprototypes import (
    categorical_weight,
    fit_prototypes,
    mca_figure,
    prototype_frame,
    prototype_space,
    read_tabular_inliers,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset
from segmentation.evaluation.validity import cluster_metrics


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    customers = read_tabular_inliers(paths, dataset)
    frame = prototype_frame(customers, dataset)
    settings = params.comparison.kprototypes
    segments, cost = fit_prototypes(
        frame, params.k, settings.n_init, settings.max_iter, params.seed
    )
    shares = np.bincount(segments)[1:] / len(segments)
    write_csv(
        paths.kprototypes_labels, pd.DataFrame({CUSTOMER_ID: customers.index, "segment": segments})
    )
    labels = pd.Series(segments, index=customers.index)
    figure = mca_figure(
        read_csv(paths.mca_coordinates), labels, read_json(paths.metrics / "mca.json")
    )
    write_png(paths.plots / "mca_map.png", figure)
    write_metrics(
        paths.metrics / "kprototypes.json",
        {
            "cost": cost,
            "gamma": categorical_weight(frame),
            **cluster_metrics(
                prototype_space(frame), [segments], params.silhouette_max_rows, params.seed
            )[0],
            "largest_segment_share": shares.max(),
            "smallest_segment_share": shares.min(),
        },
    )


if __name__ == "__main__":
    run(main)
