"""The outlier flags of a data set's customers, as the outliers stage writes them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.config import Layout
from segmentation.embedding.shards import Shard
from segmentation.model.sampling import MatrixRows
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


def score_shard(
    rows: MatrixRows, shard: Shard, detector: OutlierDetector, texts: pd.DataFrame
) -> pd.DataFrame:
    """ECOD score and outlier flag of one shard's customers (``texts``: their rows of the texts
    file, for the ids), block by block, in row order."""
    return score_rows(rows, detector, texts[CUSTOMER_ID].to_numpy())


def score_rows(rows: MatrixRows, detector: OutlierDetector, ids: np.ndarray) -> pd.DataFrame:
    """ECOD score and outlier flag of the customers ``ids`` whose vectors are ``rows``, block by
    block, in row order."""
    scores = np.concatenate([detector.decision_function(block) for _, block in rows.blocks()])
    return pd.DataFrame(
        {CUSTOMER_ID: ids, "ecod_score": scores, "outlier": detector.predict_scores(scores)}
    )


def detect_outliers(vectors: np.ndarray, contamination: float, ids: np.ndarray) -> pd.DataFrame:
    """ECOD on every row, pyod's scores and flags: the top ``contamination`` share are outliers."""
    detector = OutlierDetector(contamination, sample_fit_rows=len(vectors)).fit(vectors)
    return flag_table(ids, detector)


class FlagCount:
    """The customers and outliers of the flag tables passed through ``counted``."""

    def __init__(self):
        self.customers = self.outliers = 0

    def counted(self, flags: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in flags:
            self.customers += len(part)
            self.outliers += int(part["outlier"].sum())
            yield part

    def metrics(self) -> dict[str, float | int]:
        return {
            "customers": self.customers,
            "inliers": self.customers - self.outliers,
            "outliers": self.outliers,
            "outlier_share": self.outliers / self.customers,
        }


def row_mismatch(paths: Layout, vectors: int, texts: int) -> PipelineError:
    return PipelineError(
        f"{paths.embeddings} has {vectors} rows but {paths.texts} has {texts}; rerun 'dvc repro'"
    )
