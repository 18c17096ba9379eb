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

from segmentation.config import TabularParams
from segmentation.data.dataset import Dataset
from segmentation.evaluation.projection import pca_projection
from segmentation.evaluation.validity import cluster_metrics
from segmentation.model.kmeans import fit_segments


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
