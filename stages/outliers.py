"""Stage 4: flag outlying customers in embedding space with pyod's ECOD."""
from __future__ import annotations

import numpy as np
import pandas as pd

from stages.artifacts import CUSTOMER_ID, PipelineError, read_csv, read_npy, run, write_csv, write_metrics
from stages.config import layout, load_params


def detect_outliers(vectors: np.ndarray, contamination: float, ids: np.ndarray) -> pd.DataFrame:
    """ECOD score and inlier flag per customer (row ``i`` of ``vectors`` is customer ``ids[i]``).

    The top ``contamination`` share of scores are outliers.
    """
    from pyod.models.ecod import ECOD

    detector = ECOD(contamination=contamination, n_jobs=1).fit(vectors)
    return pd.DataFrame(
        {
            CUSTOMER_ID: ids,
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


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    vectors, ids = read_npy(paths.embeddings), read_csv(paths.texts)[CUSTOMER_ID].to_numpy()
    if len(ids) != len(vectors):
        raise PipelineError(f"{paths.embeddings} has {len(vectors)} rows but {paths.texts} has {len(ids)}; "
                            "rerun 'dvc repro'")
    flags = detect_outliers(vectors, params.outliers.contamination, ids)
    write_csv(paths.outliers, flags)
    write_metrics(paths.metrics / "outliers.json", outlier_metrics(flags))


if __name__ == "__main__":
    run(main)
