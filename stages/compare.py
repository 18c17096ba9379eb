"""The three methods side by side, on the same customers: the article's claim, checkable.

Every number here is computed on the customers that all three methods keep (the embedding ECOD
inliers that are also Method-1 ECOD inliers), so the methods are scored on identical rows; above
``sample_fit_rows`` of them, on a seeded sample of that many. Only the compared customers' rows of
the customer table, the labels, the maps and the matrices are read.
"""

from __future__ import annotations

import numpy as np

from segmentation.artifacts import (
    read_json,
    read_npy,
    run,
    write_metrics,
    write_png,
    write_text,
)
from segmentation.baselines.compare import (
    compare_methods,
    compared_customers,
    comparison_figure,
)
from segmentation.baselines.kprototypes import PrototypeColumns, read_tabular_inlier_sample
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.embedding.shards import read_vectors
from segmentation.evaluation.projection import pca_projection
from segmentation.model.sampling import MatrixRows, inlier_rows_at
from segmentation.reporting.comparison import comparison_report

# each method's own metrics file
METHOD_STAGES = {"embedding": "evaluate", "tabular": "tabular", "kprototypes": "kprototypes"}


def main(name: str) -> None:
    params = load_params()
    dataset, paths = load_dataset(name), layout(name)
    located = compared_customers(paths, params.sample_fit_rows, params.seed)
    customers = read_customers(paths.customers, dataset, located.rows)
    ids = customers.index.to_numpy()
    # each method's labels: the file, the flags whose inliers it lists, where the compared lie
    embedding = (paths.outliers, located.embedding_positions, located.embedding_inliers)
    tabular = (paths.tabular_outliers, located.tabular_positions, located.tabular_inliers)
    labels = {
        "embedding": (paths.labels, embedding),
        "tabular": (paths.tabular_labels, tabular),
        "kprototypes": (paths.kprototypes_labels, tabular),
    }
    segments = {
        method: inlier_rows_at(path, ["segment"], ids, *inliers)["segment"].to_numpy()
        for method, (path, inliers) in labels.items()
    }
    labelled = {method: inliers[-1] for method, (_, inliers) in labels.items()}
    found = read_json(paths.metrics / "stability.json")
    tabular_matrix = read_npy(paths.tabular_matrix, mmap_mode="r")
    embeddings = read_vectors(paths.embeddings)
    spaces = {
        "tabular": np.asarray(tabular_matrix[located.rows]),
        "embeddings": MatrixRows(embeddings).take(located.rows),
    }
    # K-Prototypes' frame, its numbers transformed as the kprototypes stage fitted them
    fitted_on, _ = read_tabular_inlier_sample(paths, dataset, params.sample_fit_rows, params.seed)
    prototypes = PrototypeColumns(fitted_on, dataset).frame(customers)
    compared = compare_methods(
        customers, segments, prototypes, located.common, spaces, found, dataset, params
    )
    write_metrics(paths.metrics / "comparison.json", compared.metrics)

    maps = {
        "tabular": pca_projection(compared.tabular_space, params.seed)[0][:, :2],
        "embeddings": inlier_rows_at(
            paths.projections, ["pca_1", "pca_2"], ids, *embedding
        ).to_numpy(),
    }
    figure = comparison_figure(maps, compared.segments, params.k)
    write_png(paths.plots / "comparison_pca.png", figure)
    own = {
        method: {**read_json(paths.metrics / f"{stage}.json"), "rows": labelled[method]}
        for method, stage in METHOD_STAGES.items()
    }
    spaces = {
        "embedding": f"{embeddings.shape[1]}-d embeddings",
        "tabular": f"{tabular_matrix.shape[1]} encoded columns",
        "kprototypes": f"{', '.join(compared.kprototypes_numbers)}, one-hot categories × √(γ/2)",
    }
    report = comparison_report(name, compared, own, found, spaces, params, dataset)
    write_text(paths.reports / "comparison.md", report)


if __name__ == "__main__":
    run(main)
