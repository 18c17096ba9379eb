"""K-Prototypes cost over a range of k on the Method-1 inliers: the article's elbow for Method 2.

It does not depend on the chosen ``k``, so ``dvc exp run -S k=6`` does not rerun it.
"""

from __future__ import annotations

import pandas as pd

from stages.artifacts import run, subplots, write_csv, write_png
from stages.comparison.kprototypes import fit_prototypes, prototype_frame, read_tabular_inliers
from stages.config import layout, load_params
from stages.dataset import load_dataset


def cost_curve(
    frame: pd.DataFrame, ks: range, n_init: int, max_iter: int, seed: int
) -> pd.DataFrame:
    costs = [fit_prototypes(frame, k, n_init, max_iter, seed)[1] for k in ks]
    return pd.DataFrame({"n_clusters": list(ks), "cost": costs})


def cost_figure(curve: pd.DataFrame):
    figure, axis = subplots(figsize=(6, 3.5))
    axis.plot(curve["n_clusters"], curve["cost"], marker="o")
    axis.set_xlabel("k (number of segments)")
    axis.set_ylabel("K-Prototypes cost")
    axis.set_title("K-Prototypes cost on the Method-1 inliers")
    return figure


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    settings = params.comparison.kprototypes
    frame = prototype_frame(read_tabular_inliers(paths, dataset), dataset)
    curve = cost_curve(
        frame,
        range(settings.k_min, settings.k_max + 1),
        settings.cost_n_init,
        settings.max_iter,
        params.seed,
    )
    write_csv(paths.plots / "kprototypes_cost.csv", curve)
    write_png(paths.plots / "kprototypes_cost.png", cost_figure(curve))


if __name__ == "__main__":
    run(main)
