"""The three methods side by side, on the same customers: the article's claim, checkable.

Every number here is computed on the customers that all three methods keep (the embedding ECOD
inliers that are also Method-1 ECOD inliers), so the methods are scored on identical rows; above
``sample_fit_rows`` of them, on a seeded sample of that many, whose vectors alone are read.
"""

from __future__ import annotations

import numpy as np

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_csv,
    read_json,
    read_npy,
    run,
    write_metrics,
    write_png,
    write_text,
)
from segmentation.baselines.compare import (
    common_rows,
    compare_methods,
    compared_rows,
    comparison_figure,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.embedding.shards import read_vectors
from segmentation.evaluation.projection import pca_projection
from segmentation.model.sampling import MatrixRows
from segmentation.reporting.comparison import comparison_report

# each method's own metrics file
METHOD_STAGES = {"embedding": "evaluate", "tabular": "tabular", "kprototypes": "kprototypes"}


def main(name: str) -> None:
    params = load_params()
    dataset, paths = load_dataset(name), layout(name)
    customers = read_customers(paths.customers, dataset)
    labels = {
        method: read_csv(path).set_index(CUSTOMER_ID)["segment"]
        for method, path in (
            ("embedding", paths.labels),
            ("tabular", paths.tabular_labels),
            ("kprototypes", paths.kprototypes_labels),
        )
    }
    found = read_json(paths.metrics / "stability.json")
    ids = compared_rows(common_rows(labels, customers.index), params.sample_fit_rows, params.seed)
    # the compared customers' rows in the embedding and tabular matrices
    rows = customers.index.get_indexer(ids)
    tabular_matrix = read_npy(paths.tabular_matrix, mmap_mode="r")
    embeddings = read_vectors(paths.embeddings)
    spaces = {
        "tabular": np.asarray(tabular_matrix[rows]),
        "embeddings": MatrixRows(embeddings).take(rows),
    }
    compared = compare_methods(customers, labels, ids, spaces, found, dataset, params)
    write_metrics(paths.metrics / "comparison.json", compared.metrics)

    coordinates = read_csv(paths.projections).set_index(CUSTOMER_ID)
    maps = {
        "tabular": pca_projection(compared.tabular_space, params.seed)[0][:, :2],
        "embeddings": coordinates.loc[compared.ids, ["pca_1", "pca_2"]].to_numpy(),
    }
    figure = comparison_figure(maps, compared.segments, params.k)
    write_png(paths.plots / "comparison_pca.png", figure)
    own = {
        method: {**read_json(paths.metrics / f"{stage}.json"), "rows": len(labels[method])}
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
