"""K-Prototypes cost over a range of k on the Method-1 inliers: the article's elbow for Method 2.

Each k is fitted on the seeded sample of ``sample_fit_rows`` inliers the kprototypes stage fits on
(all of them below that), and the cost is the sample's. It does not depend on the chosen ``k``, so
``dvc exp run -S k=6`` does not rerun it.
"""

from __future__ import annotations

from segmentation.artifacts import run, write_csv, write_png
from segmentation.baselines.kprototypes import prototype_frame, read_tabular_inlier_sample
from segmentation.baselines.kprototypes_cost import cost_curve, cost_figure
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    settings = params.comparison.kprototypes
    customers, _ = read_tabular_inlier_sample(paths, dataset, params.sample_fit_rows, params.seed)
    curve = cost_curve(
        prototype_frame(customers, dataset),
        range(settings.k_min, settings.k_max + 1),
        settings.cost_n_init,
        settings.max_iter,
        params.seed,
    )
    write_csv(paths.plots / "kprototypes_cost.csv", curve)
    write_png(paths.plots / "kprototypes_cost.png", cost_figure(curve))


if __name__ == "__main__":
    run(main)
