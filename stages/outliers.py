"""Stage 4: flag outlying customers in embedding space with pyod's ECOD."""
from __future__ import annotations

import numpy as np
import pandas as pd

from stages.artifacts import CUSTOMER_ID, read_npy, run, write_csv, write_metrics
from stages.config import EMBEDDINGS, METRICS, OUTLIERS, load_params


def detect_outliers(vectors: np.ndarray, contamination: float) -> pd.DataFrame:
    """ECOD score and inlier flag per row; the top ``contamination`` share of scores are outliers."""
    from pyod.models.ecod import ECOD

    detector = ECOD(contamination=contamination, n_jobs=1).fit(vectors)
    return pd.DataFrame(
        {
            CUSTOMER_ID: np.arange(len(vectors)),
            "ecod_score": detector.decision_scores_,
            "inlier": (detector.labels_ == 0).astype(np.int8),
        }
    )


def outlier_metrics(flags: pd.DataFrame) -> dict[str, float | int]:
    inliers = int(flags["inlier"].sum())
    return {
        "customers": len(flags),
        "inliers": inliers,
        "outliers": len(flags) - inliers,
        "outlier_share": (len(flags) - inliers) / len(flags),
    }


def main() -> None:
    params = load_params()
    flags = detect_outliers(read_npy(EMBEDDINGS), params.outliers.contamination)
    write_csv(OUTLIERS, flags)
    write_metrics(METRICS / "outliers.json", outlier_metrics(flags))


if __name__ == "__main__":
    run(main)
