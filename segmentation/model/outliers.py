"""The outlier flags of a data set's customers, as the outliers stage writes them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.config import Layout
from segmentation.model.segment_model import OutlierDetector


def flag_table(ids: np.ndarray, detector: OutlierDetector) -> pd.DataFrame:
    """ECOD score and outlier flag (1 = outlier, as pyod's ``labels_``) of each fitted customer;
    row ``i`` is customer ``ids[i]``."""
    return pd.DataFrame(
        {
            CUSTOMER_ID: ids,
            "ecod_score": detector.decision_scores_,
            "outlier": detector.labels_.astype(np.int8),
        }
    )


def detect_outliers(vectors: np.ndarray, contamination: float, ids: np.ndarray) -> pd.DataFrame:
    """ECOD on every row, pyod's scores and flags: the top ``contamination`` share are outliers."""
    detector = OutlierDetector(contamination, sample_fit_rows=len(vectors)).fit(vectors)
    return flag_table(ids, detector)


def outlier_metrics(flags: pd.DataFrame) -> dict[str, float | int]:
    outliers = int(flags["outlier"].sum())
    return {
        "customers": len(flags),
        "inliers": len(flags) - outliers,
        "outliers": outliers,
        "outlier_share": outliers / len(flags),
    }


def row_mismatch(paths: Layout, vectors: int, texts: int) -> PipelineError:
    return PipelineError(
        f"{paths.embeddings} has {vectors} rows but {paths.texts} has {texts}; rerun 'dvc repro'"
    )
