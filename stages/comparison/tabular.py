"""Method 1 of the article: KMeans on the encoded segmentation columns, after ECOD on that matrix.

Follows the article's published code: one-hot categories (first level dropped), ordinal columns
in their declared level order, Yeo-Johnson numbers. Its earlier revision,
``tabular.encoding: ordinal``, ordinal-encodes every column and then power-transforms them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, PowerTransformer

from stages.artifacts import CUSTOMER_ID, run, write_csv, write_metrics, write_npy
from stages.config import TabularParams, layout, load_params
from stages.dataset import Dataset, load_dataset, read_customers
from stages.kmeans import fit_segments
from stages.outliers import detect_outliers
from stages.project import pca_projection
from stages.scoring import cluster_metrics


def encode_tabular(customers: pd.DataFrame, dataset: Dataset, encoding: str) -> np.ndarray:
    """The article's Method-1 matrix of the segmentation columns."""
    columns = dataset.segment_on
    if encoding == "ordinal":
        transform = make_pipeline(OrdinalEncoder(), PowerTransformer())
    else:
        ordinal = dataset.of_kind(columns, "ordinal")
        transform = ColumnTransformer(
            [
                (
                    "onehot",
                    OneHotEncoder(handle_unknown="ignore", drop="first", sparse_output=False),
                    dataset.of_kind(columns, "categorical"),
                ),
                (
                    "ordinal",
                    # A blank kept as its own category has no place in the order: it takes the
                    # median level and an indicator column of its own.
                    make_pipeline(
                        OrdinalEncoder(
                            categories=[dataset.columns[c].levels for c in ordinal],
                            handle_unknown="use_encoded_value",
                            unknown_value=np.nan,
                        ),
                        SimpleImputer(strategy="median", add_indicator=True),
                    ),
                    ordinal,
                ),
                ("power", PowerTransformer(), dataset.numeric),
            ]
        )
    return transform.fit_transform(customers.loc[:, columns]).astype(np.float64)


def encoding_description(dataset: Dataset, encoding: str) -> str:
    """How the matrix was made, in the data set's column names."""
    columns = dataset.segment_on
    if encoding == "ordinal":
        return f"all {len(columns)} ordinal-encoded, then Yeo-Johnson"
    parts = (
        ("one-hot", dataset.of_kind(columns, "categorical")),
        ("ordinal", dataset.of_kind(columns, "ordinal")),
        ("Yeo-Johnson", dataset.numeric),
    )
    return "; ".join(f"{how} {', '.join(found)}" for how, found in parts if found)


def segment_tabular(
    matrix: np.ndarray, k: int, params: TabularParams, seed: int, silhouette_max_rows: int
) -> tuple[np.ndarray, dict[str, float]]:
    """KMeans segments of the matrix rows (1 = largest), their validity scores and PCA variance."""
    segments, _, inertia = fit_segments(matrix, k, params.n_init, seed, max_iter=params.max_iter)
    metrics = {
        "inertia": inertia,
        **cluster_metrics(matrix, [segments], silhouette_max_rows, seed)[0],
    }
    _, variance = pca_projection(matrix, seed)
    metrics.update({f"pca_variance_{i + 1}": ratio for i, ratio in enumerate(variance)})
    metrics["pca_variance_first3"] = variance.sum()
    return segments, metrics


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    customers = read_customers(paths.customers, dataset)
    matrix = encode_tabular(customers, dataset, params.comparison.tabular.encoding)
    flags = detect_outliers(matrix, params.outliers.contamination, customers.index.to_numpy())
    rows = np.flatnonzero(flags["inlier"].to_numpy() == 1)
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
