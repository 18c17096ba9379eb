"""Method 1 of the article: KMeans on the 8 encoded tabular columns, after ECOD on that matrix.

Follows the article's published code: one-hot (first level dropped) on default, housing, loan, job
and marital, ordinal on education, Yeo-Johnson on age and balance (19 columns); its earlier
revision, ``tabular.encoding: ordinal``, ordinal-encodes all 8 columns and then power-transforms them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, PowerTransformer

from stages.artifacts import CUSTOMER_ID, run, write_csv, write_metrics, write_npy
from stages.config import (
    METRICS, RAW_CSV, SEGMENT_COLUMNS, TABULAR_LABELS, TABULAR_MATRIX, TABULAR_OUTLIERS, TabularParams,
    load_params, read_customers,
)
from stages.kmeans import fit_segments
from stages.outliers import detect_outliers
from stages.project import pca_projection
from stages.scoring import cluster_metrics

ONE_HOT_COLUMNS = ("default", "housing", "loan", "job", "marital")


def encode_tabular(customers: pd.DataFrame, encoding: str) -> np.ndarray:
    """The article's Method-1 matrix of the 8 segmentation columns (19 columns one-hot, 8 ordinal)."""
    if encoding == "ordinal":
        transform = make_pipeline(OrdinalEncoder(), PowerTransformer())
    else:
        transform = ColumnTransformer([
            ("onehot", OneHotEncoder(handle_unknown="ignore", drop="first", sparse_output=False), list(ONE_HOT_COLUMNS)),
            ("ordinal", OrdinalEncoder(), ["education"]),
            ("power", PowerTransformer(), ["age", "balance"]),
        ])
    return transform.fit_transform(customers.loc[:, list(SEGMENT_COLUMNS)]).astype(np.float64)


def segment_tabular(matrix: np.ndarray, k: int, params: TabularParams, seed: int, silhouette_max_rows: int) -> tuple[np.ndarray, dict[str, float]]:
    """KMeans segments of the matrix rows (1 = largest), their validity scores and PCA variance."""
    segments, _, inertia = fit_segments(matrix, k, params.n_init, seed, max_iter=params.max_iter)
    metrics = {"inertia": inertia, **cluster_metrics(matrix, [segments], silhouette_max_rows, seed)[0]}
    _, variance = pca_projection(matrix, seed)
    metrics.update({f"pca_variance_{i + 1}": ratio for i, ratio in enumerate(variance)})
    metrics["pca_variance_first3"] = variance.sum()
    return segments, metrics


def main() -> None:
    params = load_params()
    matrix = encode_tabular(read_customers(RAW_CSV), params.tabular.encoding)
    flags = detect_outliers(matrix, params.outliers.contamination)
    inliers = flags.loc[flags["inlier"] == 1, CUSTOMER_ID].to_numpy()
    segments, metrics = segment_tabular(matrix[inliers], params.k, params.tabular, params.seed, params.silhouette_max_rows)
    write_npy(TABULAR_MATRIX, matrix)
    write_csv(TABULAR_OUTLIERS, flags)
    write_csv(TABULAR_LABELS, pd.DataFrame({CUSTOMER_ID: inliers, "segment": segments}))
    write_metrics(METRICS / "tabular.json", {"inliers": len(inliers), "columns": matrix.shape[1], **metrics})


if __name__ == "__main__":
    run(main)
