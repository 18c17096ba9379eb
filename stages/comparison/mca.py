"""Multiple correspondence analysis (prince) of the K-Prototypes customers' categorical columns.

The article's picture for Method 2: how much of the categorical columns' inertia the first
components hold, and a 2-D map of the customers coloured by K-Prototypes segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import prince

from stages.artifacts import CUSTOMER_ID, read_csv, run, write_metrics, write_png
from stages.config import MCAParams, layout, load_params
from stages.dataset import load_dataset, read_customers
from stages.evaluate import map_figure


def correspondence_map(
    categories: pd.DataFrame, params: MCAParams, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row coordinates on the first components and each component's share of the total inertia."""
    mca = prince.MCA(n_components=params.n_components, n_iter=params.n_iter, random_state=seed).fit(
        categories
    )
    coordinates = mca.row_coordinates(categories).to_numpy()
    return coordinates, np.asarray(mca.percentage_of_variance_) / 100


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    labels = read_csv(paths.kprototypes_labels)
    categories = read_customers(paths.customers, dataset).loc[
        labels[CUSTOMER_ID], dataset.categorical
    ]
    coordinates, shares = correspondence_map(categories, params.comparison.mca, params.seed)
    metrics = {f"inertia_share_{i + 1}": share for i, share in enumerate(shares)}
    metrics[f"inertia_share_first{len(shares)}"] = shares.sum()
    write_metrics(paths.metrics / "mca.json", metrics)
    axes = [f"MCA component {i} ({shares[i - 1]:.1%} of inertia)" for i in (1, 2)]
    points = pd.DataFrame(
        {axes[0]: coordinates[:, 0], axes[1]: coordinates[:, 1], "segment": labels["segment"]}
    )
    title = "MCA of the categorical columns, coloured by K-Prototypes segment"
    write_png(paths.plots / "mca_map.png", map_figure(points, (axes[0], axes[1]), title))


if __name__ == "__main__":
    run(main)
