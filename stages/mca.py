"""Multiple correspondence analysis (prince) of the K-Prototypes customers' categorical columns.

The article's picture for Method 2: how much of the categorical columns' inertia the first
components hold, and a 2-D map of the customers coloured by K-Prototypes segment. The MCA is fitted
on the seeded sample of ``sample_fit_rows`` Method-1 inliers that K-Prototypes fits on (all of them
below that), and the map holds that sample's customers. It does not depend on k, so this stage fits
it once; the kprototypes stage colours it with its segments (``mca_figure`` there).
"""

from __future__ import annotations

import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, run, write_csv, write_metrics
from segmentation.baselines.kprototypes import read_tabular_inlier_sample
from segmentation.baselines.mca import correspondence_map
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    customers, sample = read_tabular_inlier_sample(
        paths, dataset, params.sample_fit_rows, params.seed
    )
    categories = customers.loc[:, dataset.categorical]
    coordinates, shares = correspondence_map(categories, params.comparison.mca, params.seed)
    metrics = {f"inertia_share_{i + 1}": share for i, share in enumerate(shares)}
    metrics[f"inertia_share_first{len(shares)}"] = shares.sum()
    metrics.update(sample.fit_sample_metric())
    write_metrics(paths.metrics / "mca.json", metrics)
    write_csv(
        paths.mca_coordinates,
        pd.DataFrame(
            {CUSTOMER_ID: categories.index, "mca_1": coordinates[:, 0], "mca_2": coordinates[:, 1]}
        ),
    )


if __name__ == "__main__":
    run(main)
