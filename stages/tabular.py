"""Method 1 of the article: KMeans on the encoded segmentation columns, after ECOD on that matrix.

Follows the article's published code: one-hot categories (first level dropped), ordinal columns
in their declared level order, Yeo-Johnson numbers. Its earlier revision,
``tabular.encoding: ordinal``, ordinal-encodes every column and then power-transforms them.

The encoding is fitted on a seeded sample of ``sample_fit_rows`` customers (all of them below
that) and the matrix written a chunk of customers at a time; ECOD is fitted on the same sample of
its rows and KMeans on a seeded sample of the inliers, and every customer is then scored and every
inlier given its nearest centroid a block at a time. The metrics are the fitted sample's.
"""

from __future__ import annotations

from segmentation.artifacts import (
    CUSTOMER_ID,
    csv_row_starts,
    read_csv,
    read_npy,
    run,
    write_csv_chunks,
    write_metrics,
    write_npy_rows,
)
from segmentation.baselines.tabular import encode_tabular, fit_encoder, segment_tabular
from segmentation.config import layout, load_params
from segmentation.data.dataset import customer_chunks, load_dataset, read_customers
from segmentation.model.kmeans import nearest_inliers, write_fitted_labels
from segmentation.model.outliers import flag_table, score_rows
from segmentation.model.sampling import (
    MatrixRows,
    aligned_blocks,
    column_at,
    sample_flagged_rows,
    sample_rows,
)
from segmentation.model.segment_model import OutlierDetector


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    settings = params.comparison.tabular
    _, customers = csv_row_starts(paths.customers, [])
    sample = read_customers(
        paths.customers, dataset, sample_rows(customers, params.sample_fit_rows, params.seed)
    )
    encoder = fit_encoder(sample, dataset, settings.encoding)
    write_npy_rows(
        paths.tabular_matrix,
        customers,
        (
            encode_tabular(chunk, dataset, encoder)
            for chunk in customer_chunks(paths.customers, dataset)
        ),
    )
    matrix = read_npy(paths.tabular_matrix, mmap_mode="r")
    detector = OutlierDetector(params.outliers.contamination, params.sample_fit_rows, params.seed)
    detector.fit_reference(matrix)
    if detector.scored_in_place:
        ids = read_csv(paths.customers, usecols=[CUSTOMER_ID])[CUSTOMER_ID].to_numpy()
        flags = [flag_table(ids, detector)]
    else:
        flags = (
            score_rows(rows, detector, chunk[CUSTOMER_ID].to_numpy())
            for rows, chunk in aligned_blocks(matrix, paths.customers, [CUSTOMER_ID])
        )
    write_csv_chunks(paths.tabular_outliers, flags)

    inliers = sample_flagged_rows(paths.tabular_outliers, params.sample_fit_rows, params.seed)
    segments, centroids, metrics = segment_tabular(
        MatrixRows(matrix).take(inliers.rows),
        params.k,
        settings,
        params.seed,
        params.silhouette_max_rows,
    )
    write_fitted_labels(
        paths.tabular_labels,
        inliers,
        column_at(paths.tabular_outliers, CUSTOMER_ID, inliers.rows),
        segments - 1,
        params.k,
        lambda: (
            nearest_inliers(rows, centroids, chunk)
            for rows, chunk in aligned_blocks(
                matrix, paths.tabular_outliers, [CUSTOMER_ID, "outlier"]
            )
        ),
    )
    write_metrics(
        paths.metrics / "tabular.json",
        {
            "inliers": inliers.inliers,
            "columns": matrix.shape[1],
            **metrics,
            **inliers.fit_sample_metric(),
        },
    )


if __name__ == "__main__":
    run(main)
