"""Method 1 of the article: KMeans on the encoded segmentation columns, after ECOD on that matrix.

Follows the article's published code: one-hot categories (first level dropped), ordinal columns
in their declared level order, Yeo-Johnson numbers. Its earlier revision,
``tabular.encoding: ordinal``, ordinal-encodes every column and then power-transforms them. The
encoding, ECOD and KMeans are fitted on seeded samples of ``sample_fit_rows`` customers (all of
them below that), and every customer is then encoded, scored and assigned a block at a time.
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


def fit_encoder(customers: pd.DataFrame, dataset: Dataset, encoding: str):
    """The article's Method-1 encoding of the segmentation columns, fitted on ``customers``."""
    columns = dataset.segment_on
    if encoding == "ordinal":
        # a category the fitted customers lack comes before their first one
        codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        return make_pipeline(codes, PowerTransformer()).fit(customers.loc[:, columns])
    ordinal = dataset.of_kind(columns, "ordinal")
    encoder = ColumnTransformer(
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
    return encoder.fit(customers.loc[:, columns])


def encode_tabular(customers: pd.DataFrame, dataset: Dataset, encoder) -> np.ndarray:
    """The Method-1 matrix of ``customers``, row by row: any chunk of customers gives the rows it
    gives within the whole table."""
    return encoder.transform(customers.loc[:, dataset.segment_on]).astype(np.float64)


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
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """KMeans segments of the matrix rows (1 = largest), the centroids in that order, and the
    rows' validity scores and PCA variance."""
    segments, centroids, inertia = fit_segments(
        matrix, k, params.n_init, seed, max_iter=params.max_iter
    )
    metrics = {
        "inertia": inertia,
        **cluster_metrics(matrix, [segments], silhouette_max_rows, seed)[0],
    }
    _, variance = pca_projection(matrix, seed)
    metrics.update({f"pca_variance_{i + 1}": ratio for i, ratio in enumerate(variance)})
    metrics["pca_variance_first3"] = variance.sum()
    return segments, centroids, metrics
