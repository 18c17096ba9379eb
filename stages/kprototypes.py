"""Method 2 of the article: K-Prototypes (kmodes) on the mixed columns of the Method-1 inliers.

The six categorical columns stay as they are; age and balance are Yeo-Johnson transformed, so the
numeric part is on the scale K-Prototypes' default weight ``gamma`` assumes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from kmodes.kprototypes import KPrototypes
from sklearn.preprocessing import OneHotEncoder, PowerTransformer

from stages.artifacts import CUSTOMER_ID, PipelineError, read_csv, run, write_csv, write_metrics
from stages.config import (
    CATEGORICAL_COLUMNS, KPROTOTYPES_LABELS, METRICS, NUMERIC_COLUMNS, RAW_CSV, SEGMENT_COLUMNS, TABULAR_OUTLIERS,
    load_params, read_customers,
)
from stages.kmeans import number_by_size
from stages.scoring import cluster_metrics


def read_tabular_inliers() -> pd.DataFrame:
    """The customers Method 1's ECOD kept, in customer order: K-Prototypes segments the same rows."""
    flags = read_csv(TABULAR_OUTLIERS)
    customers = read_customers(RAW_CSV)
    if len(flags) != len(customers):
        raise PipelineError(f"{TABULAR_OUTLIERS} has {len(flags)} rows but {RAW_CSV} has {len(customers)}; rerun 'dvc repro'")
    return customers.loc[flags.loc[flags["inlier"] == 1, CUSTOMER_ID].to_numpy()]


def prototype_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """The 8 segmentation columns with age and balance power-transformed, categoricals untouched."""
    frame = customers.loc[:, list(SEGMENT_COLUMNS)].copy()
    frame[list(NUMERIC_COLUMNS)] = PowerTransformer().fit_transform(frame[list(NUMERIC_COLUMNS)])
    return frame


def categorical_weight(frame: pd.DataFrame) -> float:
    """kmodes' default ``gamma`` (half the mean std of the numeric columns), made explicit so the
    numeric encoding below can use the same weight."""
    return 0.5 * float(np.mean(frame[list(NUMERIC_COLUMNS)].to_numpy().std(axis=0)))


def fit_prototypes(frame: pd.DataFrame, k: int, n_init: int, max_iter: int, seed: int) -> tuple[np.ndarray, float]:
    """Segments 1..k (1 = largest) and the K-Prototypes cost, with Huang initialisation."""
    if k >= len(frame):
        raise PipelineError(f"k={k} must be below the number of Method-1 inliers ({len(frame)}); choose a smaller k")
    model = KPrototypes(
        n_clusters=k, init="Huang", n_init=n_init, max_iter=max_iter, gamma=categorical_weight(frame), random_state=seed, n_jobs=1
    )
    categorical = [frame.columns.get_loc(column) for column in CATEGORICAL_COLUMNS]
    model.fit(frame.to_numpy(dtype=object), categorical=categorical)
    return number_by_size(np.asarray(model.labels_, dtype=np.int64), k)[0], float(model.cost_)


def prototype_space(frame: pd.DataFrame) -> np.ndarray:
    """A numeric encoding whose squared euclidean distance is exactly the K-Prototypes dissimilarity.

    Each categorical mismatch puts two one-hot entries 1 apart (squared distance 2), so one-hot
    columns scaled by sqrt(gamma / 2) cost gamma per mismatch, as in K-Prototypes.
    """
    one_hot = OneHotEncoder(sparse_output=False).fit_transform(frame[list(CATEGORICAL_COLUMNS)])
    scale = np.sqrt(categorical_weight(frame) / 2)
    return np.hstack([frame[list(NUMERIC_COLUMNS)].to_numpy(dtype=np.float64), one_hot * scale])


def main() -> None:
    params = load_params()
    customers = read_tabular_inliers()
    frame = prototype_frame(customers)
    settings = params.kprototypes
    segments, cost = fit_prototypes(frame, params.k, settings.n_init, settings.max_iter, params.seed)
    shares = np.bincount(segments)[1:] / len(segments)
    write_csv(KPROTOTYPES_LABELS, pd.DataFrame({CUSTOMER_ID: customers.index, "segment": segments}))
    write_metrics(
        METRICS / "kprototypes.json",
        {
            "cost": cost,
            "gamma": categorical_weight(frame),
            **cluster_metrics(prototype_space(frame), [segments], params.silhouette_max_rows, params.seed)[0],
            "largest_segment_share": shares.max(),
            "smallest_segment_share": shares.min(),
        },
    )


if __name__ == "__main__":
    run(main)
