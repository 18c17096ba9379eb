"""Stage 4: flag outlying customers in embedding space with pyod's ECOD.

Above ``sample_fit_rows`` customers ECOD is fitted on a seeded sample of them and every customer
is scored in blocks against that sample (``stages/ecod.py``), as ``assign`` scores new customers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from stages.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    read_csv,
    read_npy,
    run,
    write_csv,
    write_csv_chunks,
    write_metrics,
)
from stages.config import Layout, Params, layout, load_params
from stages.ecod import ECODReference
from stages.streaming import BLOCK_ROWS, MatrixRows, fits_on_sample, sample_rows


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


def ecod_reference(matrix: np.ndarray, params: Params) -> ECODReference:
    """ECOD as this stage fits it: on every customer, or on a seeded sample of ``sample_fit_rows``.

    The sample is drawn again from the seed, so ``assign`` scores against the same reference.
    """
    rows = sample_rows(len(matrix), params.sample_fit_rows, params.seed)
    reference = MatrixRows(matrix).take(rows)
    return ECODReference(reference, params.outliers.contamination)


def scored_blocks(
    matrix: np.ndarray, id_chunks: Iterator[pd.DataFrame], detector: ECODReference, paths: Layout
) -> Iterator[pd.DataFrame]:
    """``detect_outliers``'s rows for every customer, a block at a time, scored by ``detector``."""
    texts = 0
    for (_, block), ids in zip(MatrixRows(matrix).blocks(BLOCK_ROWS), id_chunks):
        texts += len(ids)
        if len(ids) != len(block):
            break
        scores = detector.scores(block)
        yield pd.DataFrame(
            {
                CUSTOMER_ID: ids[CUSTOMER_ID].to_numpy(),
                "ecod_score": scores,
                "inlier": 1 - detector.flags(scores),
            }
        )
    texts += sum(len(ids) for ids in id_chunks)
    if texts != len(matrix):
        raise row_mismatch(paths, len(matrix), texts)


def flag_on_sample(paths: Layout, params: Params) -> None:
    """The stage above ``sample_fit_rows``: ECOD fitted on the sample, every customer streamed."""
    matrix = read_npy(paths.embeddings, mmap_mode="r")
    detector = ecod_reference(matrix, params)
    with read_csv(paths.texts, usecols=[CUSTOMER_ID], chunksize=BLOCK_ROWS) as id_chunks:
        write_csv_chunks(paths.outliers, scored_blocks(matrix, id_chunks, detector, paths))
    flags = read_csv(paths.outliers, usecols=["inlier"])
    write_metrics(
        paths.metrics / "outliers.json",
        {**outlier_metrics(flags), "fit_sample_rows": detector.rows},
    )


def row_mismatch(paths: Layout, vectors: int, texts: int) -> PipelineError:
    return PipelineError(
        f"{paths.embeddings} has {vectors} rows but {paths.texts} has {texts}; rerun 'dvc repro'"
    )


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    if fits_on_sample(paths, params):
        return flag_on_sample(paths, params)
    vectors, ids = read_npy(paths.embeddings), read_csv(paths.texts)[CUSTOMER_ID].to_numpy()
    if len(ids) != len(vectors):
        raise row_mismatch(paths, len(vectors), len(ids))
    flags = detect_outliers(vectors, params.outliers.contamination, ids)
    write_csv(paths.outliers, flags)
    write_metrics(paths.metrics / "outliers.json", outlier_metrics(flags))


if __name__ == "__main__":
    run(main)
