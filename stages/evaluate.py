"""Stage 8: internal validity of the segments, and PCA / t-SNE maps coloured by segment.

Above ``sample_fit_rows`` customers the validity scores are streamed (``validity_scores``); the
maps still read every inlier's projection.
"""

from __future__ import annotations

import numpy as np

from segmentation.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    read_csv,
    run,
    write_csv,
    write_metrics,
    write_png,
)
from segmentation.config import layout, load_params
from segmentation.evaluation.maps import MAPS, map_figure, map_points, validity_scores


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    flags = read_csv(paths.outliers, usecols=[CUSTOMER_ID, "outlier"])
    ids = flags.loc[flags["outlier"] == 0, CUSTOMER_ID].to_numpy()
    labels = read_csv(paths.labels)
    coordinates = read_csv(paths.projections).merge(labels, on=CUSTOMER_ID, validate="one_to_one")
    if not np.array_equal(labels[CUSTOMER_ID].to_numpy(), ids) or len(coordinates) != len(ids):
        raise PipelineError(
            f"{paths.labels} and {paths.projections} disagree on the inlier rows; rerun 'dvc repro'"
        )
    scores = validity_scores(paths, params, labels["segment"].to_numpy())
    write_metrics(paths.metrics / "evaluate.json", scores)
    for plot, (columns, title) in MAPS.items():
        write_csv(
            paths.plots / f"{plot}.csv",
            map_points(coordinates, columns, params.evaluate.map_points, params.seed),
        )
        write_png(
            paths.plots / f"{plot}.png",
            map_figure(coordinates, columns, f"{title} (k = {params.k}, {params.model})"),
        )


if __name__ == "__main__":
    run(main)
