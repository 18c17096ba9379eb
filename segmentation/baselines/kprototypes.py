"""K-Prototypes on mixed columns: the frame it reads (categories as they are, numbers
Yeo-Johnson transformed; a column is numeric exactly when its dtype is), its fit on a seeded sample
of the Method-1 inliers, every inlier's nearest prototype a chunk of customers at a time, and its
scores in an equivalent numeric encoding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.preprocessing import OneHotEncoder, PowerTransformer

from segmentation.artifacts import CUSTOMER_ID, PipelineError, csv_row_starts, read_csv
from segmentation.baselines.kprototypes_engine import PrototypeFit, fit_kprototypes
from segmentation.config import Layout
from segmentation.data.dataset import (
    CUSTOMER_CHUNK_ROWS,
    Dataset,
    customer_chunks,
    read_customers,
)
from segmentation.evaluation.maps import map_figure
from segmentation.model.kmeans import number_by_size
from segmentation.model.sampling import InlierRows, sample_flagged_rows


def read_tabular_inlier_sample(
    paths: Layout, dataset: Dataset, size: int, seed: int
) -> tuple[pd.DataFrame, InlierRows]:
    """A seeded sample of ``size`` of the customers Method 1's ECOD kept (all of them if fewer),
    in customer order, and where it lies: K-Prototypes and the MCA fit on the same rows."""
    sample = sample_flagged_rows(paths.tabular_outliers, size, seed)
    _, customers = csv_row_starts(paths.customers, [])
    if sample.customers != customers:
        raise PipelineError(
            f"{paths.tabular_outliers} has {sample.customers} rows but {paths.customers} has "
            f"{customers}; rerun 'dvc repro'"
        )
    return read_customers(paths.customers, dataset, sample.rows), sample


class PrototypeColumns:
    """The segmentation columns as K-Prototypes reads them: categories untouched, numbers
    Yeo-Johnson transformed as fitted on the customers given; a column is numeric exactly when
    its dtype is."""

    def __init__(self, customers: pd.DataFrame, dataset: Dataset):
        if not dataset.numeric or not dataset.categorical:
            raise PipelineError(
                "K-Prototypes needs at least one numeric and one categorical segment_on column; "
                "this data set has "
                + ("no numeric" if not dataset.numeric else "no categorical")
                + " one"
            )
        self.dataset = dataset
        self.power = PowerTransformer().fit(customers[dataset.numeric])

    def frame(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Any customers' columns, row by row: a chunk of customers gives the rows it gives
        within the whole table."""
        frame = customers.loc[:, self.dataset.segment_on].copy()
        frame[self.dataset.numeric] = self.power.transform(frame[self.dataset.numeric])
        return frame


def prototype_frame(customers: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The segmentation columns with the numbers power-transformed as fitted on these customers,
    categories untouched."""
    return PrototypeColumns(customers, dataset).frame(customers)


def nearest_prototypes(
    paths: Layout, dataset: Dataset, columns: PrototypeColumns, fit: PrototypeFit
) -> Iterator[pd.DataFrame]:
    """Each Method-1 inlier with its nearest prototype (``nearest``, 0..k-1) and its
    dissimilarity to it, the squared distance in ``prototype_space``, a chunk of customers at a
    time, in customer order."""
    flags = read_csv(paths.tabular_outliers, usecols=["outlier"], chunksize=CUSTOMER_CHUNK_ROWS)
    with flags:
        for customers, chunk in zip(customer_chunks(paths.customers, dataset), flags, strict=True):
            inliers = customers[chunk["outlier"].to_numpy() == 0]
            if inliers.empty:
                continue
            frame = columns.frame(inliers)
            nearest, costs = fit.nearest(
                frame[numeric_columns(frame)].to_numpy(dtype=np.float64),
                frame[categorical_columns(frame)].to_numpy(dtype=object),
            )
            yield pd.DataFrame(
                {CUSTOMER_ID: inliers.index, "nearest": nearest, "squared_distance": costs}
            )


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if pd.api.types.is_numeric_dtype(frame[column])]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if not pd.api.types.is_numeric_dtype(frame[column])]


def categorical_weight(frame: pd.DataFrame) -> float:
    """kmodes' default ``gamma`` (half the mean std of the numeric columns), made explicit so the
    numeric encoding below can use the same weight."""
    return 0.5 * float(np.mean(frame[numeric_columns(frame)].to_numpy().std(axis=0)))


def fit_prototype_model(
    frame: pd.DataFrame, k: int, n_init: int, max_iter: int, seed: int
) -> PrototypeFit:
    """K-Prototypes with Huang initialisation: kmodes' ``KPrototypes`` result, computed by the
    compiled engine."""
    if k >= len(frame):
        raise PipelineError(
            f"k={k} must be below the number of Method-1 inliers ({len(frame)}); choose a smaller k"
        )
    categorical = [frame.columns.get_loc(column) for column in categorical_columns(frame)]
    return fit_kprototypes(
        frame.to_numpy(dtype=object),
        categorical,
        k,
        n_init,
        max_iter,
        categorical_weight(frame),
        seed,
    )


def fit_prototypes(
    frame: pd.DataFrame, k: int, n_init: int, max_iter: int, seed: int
) -> tuple[np.ndarray, float]:
    """Segments 1..k (1 = largest) and the K-Prototypes cost of ``fit_prototype_model``."""
    fit = fit_prototype_model(frame, k, n_init, max_iter, seed)
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
