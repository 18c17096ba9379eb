"""K-Prototypes on mixed columns: the frame it reads (categories as they are, numbers
Yeo-Johnson transformed; a column is numeric exactly when its dtype is), its fit and its scores in
an equivalent numeric encoding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.preprocessing import OneHotEncoder, PowerTransformer

from segmentation.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    read_csv,
)
from segmentation.baselines.kprototypes_engine import fit_kprototypes
from segmentation.config import Layout
from segmentation.data.dataset import Dataset, read_customers
from segmentation.evaluation.maps import map_figure
from segmentation.model.kmeans import number_by_size


def read_tabular_inliers(paths: Layout, dataset: Dataset) -> pd.DataFrame:
    """The customers Method 1's ECOD kept, in customer order:
    K-Prototypes segments the same rows."""
    flags = read_csv(paths.tabular_outliers)
    customers = read_customers(paths.customers, dataset)
    if len(flags) != len(customers):
        raise PipelineError(
            f"{paths.tabular_outliers} has {len(flags)} rows but {paths.customers} has "
            f"{len(customers)}; rerun 'dvc repro'"
        )
    return customers.loc[flags.loc[flags["outlier"] == 0, CUSTOMER_ID].to_numpy()]


def prototype_frame(customers: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The segmentation columns with the numbers power-transformed, categories untouched."""
    if not dataset.numeric or not dataset.categorical:
        raise PipelineError(
            "K-Prototypes needs at least one numeric and one categorical segment_on column; "
            "this data set has "
            + ("no numeric" if not dataset.numeric else "no categorical")
            + " one"
        )
    frame = customers.loc[:, dataset.segment_on].copy()
    frame[dataset.numeric] = PowerTransformer().fit_transform(frame[dataset.numeric])
    return frame


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if pd.api.types.is_numeric_dtype(frame[column])]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if not pd.api.types.is_numeric_dtype(frame[column])]


def categorical_weight(frame: pd.DataFrame) -> float:
    """kmodes' default ``gamma`` (half the mean std of the numeric columns), made explicit so the
    numeric encoding below can use the same weight."""
    return 0.5 * float(np.mean(frame[numeric_columns(frame)].to_numpy().std(axis=0)))


def fit_prototypes(
    frame: pd.DataFrame, k: int, n_init: int, max_iter: int, seed: int
) -> tuple[np.ndarray, float]:
    """Segments 1..k (1 = largest) and the K-Prototypes cost, with Huang initialisation: kmodes'
    ``KPrototypes`` result, computed by the compiled engine."""
    if k >= len(frame):
        raise PipelineError(
            f"k={k} must be below the number of Method-1 inliers ({len(frame)}); choose a smaller k"
        )
    categorical = [frame.columns.get_loc(column) for column in categorical_columns(frame)]
    fit = fit_kprototypes(
        frame.to_numpy(dtype=object),
        categorical,
        k,
        n_init,
        max_iter,
        categorical_weight(frame),
        seed,
    )
    return number_by_size(fit.labels, k)[0], fit.cost


def prototype_space(frame: pd.DataFrame) -> np.ndarray:
    """A numeric encoding whose squared euclidean distance is exactly the
    K-Prototypes dissimilarity.

    Each categorical mismatch puts two one-hot entries 1 apart (squared distance 2), so one-hot
    columns scaled by sqrt(gamma / 2) cost gamma per mismatch, as in K-Prototypes.
    """
    one_hot = OneHotEncoder(sparse_output=False).fit_transform(frame[categorical_columns(frame)])
    scale = np.sqrt(categorical_weight(frame) / 2)
    return np.hstack([frame[numeric_columns(frame)].to_numpy(dtype=np.float64), one_hot * scale])


def mca_figure(coordinates: pd.DataFrame, segments: pd.Series, shares: dict[str, float]):
    """The first two components' map, coloured by segment (``segments`` indexed by customer id)."""
    axes = [f"MCA component {i} ({shares[f'inertia_share_{i}']:.1%} of inertia)" for i in (1, 2)]
    points = pd.DataFrame(
        {
            axes[0]: coordinates["mca_1"].to_numpy(),
            axes[1]: coordinates["mca_2"].to_numpy(),
            "segment": segments.loc[coordinates[CUSTOMER_ID]].to_numpy(),
        }
    )
    title = "MCA of the categorical columns, coloured by K-Prototypes segment"
    return map_figure(points, (axes[0], axes[1]), title)
