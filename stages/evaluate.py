"""Stage 8: internal validity of the segments, and PCA / t-SNE maps coloured by segment.

Above ``sample_fit_rows`` customers the validity scores are reductions over the embedding shards,
here or on Ray (``engine``), and the maps show the sample that the project stage's t-SNE holds.
"""

from __future__ import annotations

from segmentation.artifacts import run, write_csv, write_metrics, write_png
from segmentation.config import layout, load_params
from segmentation.evaluation.maps import MAPS, map_figure, map_points, mapped_segments
from segmentation.evaluation.scores import validity_scores


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    coordinates = mapped_segments(paths)
    scores = validity_scores(paths, params)
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
