"""Stage 4: flag outlying customers in embedding space with ECOD (pyod's scores and threshold).

ECOD is fitted on a seeded sample of ``sample_fit_rows`` customers (all of them below that) and
saved, so that the segment model scores new customers against the same reference. Above that
size every customer is scored against the sample shard by shard, here or on Ray (``engine``), each
shard with the ids of its rows of the texts file, and the flags are written as the shards' scores
come back, in row order.
"""

from __future__ import annotations

from segmentation.artifacts import CUSTOMER_ID, read_csv, run, write_csv_chunks, write_metrics
from segmentation.cluster import map_shards
from segmentation.config import layout, load_params
from segmentation.embedding.shards import read_vectors
from segmentation.model.outliers import (
    FlagCount,
    flag_table,
    row_mismatch,
    score_shard,
)
from segmentation.model.segment_model import OutlierDetector


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    matrix = read_vectors(paths.embeddings)
    detector = OutlierDetector(params.outliers.contamination, params.sample_fit_rows, params.seed)
    detector.fit_reference(matrix)
    if detector.scored_in_place:
        ids = read_csv(paths.texts, usecols=[CUSTOMER_ID])[CUSTOMER_ID].to_numpy()
        if len(ids) != len(matrix):
            raise row_mismatch(paths, len(matrix), len(ids))
        parts = [flag_table(ids, detector)]
    else:
        parts = map_shards(
            score_shard,
            paths.embeddings,
            params.engine,
            detector,
            aligned={"texts": (paths.texts, [CUSTOMER_ID])},
        )
    count = FlagCount()
    write_csv_chunks(paths.outliers, count.counted(parts))
    detector.save(paths.outlier_detector)
    sampled = {"fit_sample_rows": detector.fit_rows} if detector.fit_rows < len(matrix) else {}
    write_metrics(paths.metrics / "outliers.json", {**count.metrics(), **sampled})


if __name__ == "__main__":
    run(main)
