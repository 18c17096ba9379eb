"""Stage 4: flag outlying customers in embedding space with ECOD (pyod's scores and threshold).

ECOD is fitted on a seeded sample of ``sample_fit_rows`` customers (all of them below that) and
saved, so that the segment model scores new customers against the same reference.
"""

from __future__ import annotations

from segmentation.artifacts import CUSTOMER_ID, read_csv, read_npy, run, write_csv, write_metrics
from segmentation.config import layout, load_params
from segmentation.model.outliers import flag_table, outlier_metrics, row_mismatch
from segmentation.model.segment_model import OutlierDetector


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    matrix = read_npy(paths.embeddings, mmap_mode="r")
    ids = read_csv(paths.texts, usecols=[CUSTOMER_ID])[CUSTOMER_ID].to_numpy()
    if len(ids) != len(matrix):
        raise row_mismatch(paths, len(matrix), len(ids))
    detector = OutlierDetector(params.outliers.contamination, params.sample_fit_rows, params.seed)
    flags = flag_table(ids, detector.fit(matrix))
    write_csv(paths.outliers, flags)
    detector.save(paths.outlier_detector)
    sampled = {"fit_sample_rows": detector.fit_rows} if detector.fit_rows < len(matrix) else {}
    write_metrics(paths.metrics / "outliers.json", {**outlier_metrics(flags), **sampled})


if __name__ == "__main__":
    run(main)
