"""Stage 11: the data set's segment model, saved as one artifact with its manifest.

The outliers stage's ECOD reference and the kmeans stage's centroids, with the lineage stage's
stable segment numbers, the profile's segment names, how the customers were written (the data-set
file's sha256 and the number writing) and how they were embedded.
``python -m stages.assign`` loads it to place new customers.
"""

from __future__ import annotations

import hashlib

from segmentation.artifacts import csv_row_starts, read_csv, read_json, read_npy, run
from segmentation.config import layout, load_params
from segmentation.data.dataset import dataset_file
from segmentation.lineage.tracking import Numbering
from segmentation.model.segment_model import Customers, Embedding, OutlierDetector, SegmentModel


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    info = read_json(paths.embedding_info)
    _, inliers = csv_row_starts(paths.labels, [])  # counted in one pass over the bytes
    model = SegmentModel.assembled(
        OutlierDetector.load(paths.outlier_detector),
        read_npy(paths.centroids),
        params.kmeans.n_init,
        fitted_customers=info["rows"],
        kmeans_sample_rows=min(params.sample_fit_rows, inliers),
    )
    numbers = Numbering.of(read_json(paths.lineage)).numbers
    model.segment_numbers = [numbers[fitted] for fitted in range(1, model.k + 1)]
    names = read_csv(paths.reports / "profiles.csv", usecols=["segment", "name"])
    model.segment_names = names.set_index("segment")["name"].loc[model.segment_numbers].tolist()
    model.embedding = Embedding(
        model=info["model"],
        backend=info["backend"],
        precision=info["precision"],
        dimension=info["dimension"],
    )
    model.customers = Customers(
        dataset=name,
        dataset_file_sha256=hashlib.sha256(dataset_file(name).read_bytes()).hexdigest(),
        text_writing=read_json(paths.text_writing),
    )
    model.save(paths.segment_model)


if __name__ == "__main__":
    run(main)
