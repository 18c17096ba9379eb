"""Method 1 of the article: KMeans on the encoded segmentation columns, after ECOD on that matrix.

Follows the article's published code: one-hot categories (first level dropped), ordinal columns
in their declared level order, Yeo-Johnson numbers. Its earlier revision,
``tabular.encoding: ordinal``, ordinal-encodes every column and then power-transforms them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, run, write_csv, write_metrics, write_npy
from segmentation.baselines.tabular import encode_tabular, segment_tabular
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.model.outliers import detect_outliers


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    customers = read_customers(paths.customers, dataset)
    matrix = encode_tabular(customers, dataset, params.comparison.tabular.encoding)
    flags = detect_outliers(matrix, params.outliers.contamination, customers.index.to_numpy())
    rows = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    segments, metrics = segment_tabular(
        matrix[rows], params.k, params.comparison.tabular, params.seed, params.silhouette_max_rows
    )
    write_npy(paths.tabular_matrix, matrix)
    write_csv(paths.tabular_outliers, flags)
    write_csv(
        paths.tabular_labels,
        pd.DataFrame({CUSTOMER_ID: flags[CUSTOMER_ID].to_numpy()[rows], "segment": segments}),
    )
    write_metrics(
        paths.metrics / "tabular.json",
        {"inliers": len(rows), "columns": matrix.shape[1], **metrics},
    )


if __name__ == "__main__":
    run(main)
