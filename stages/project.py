"""Helper stage between outliers and evaluate: k-independent 2-D/3-D projections of the inliers.

PCA (on standardized embeddings, as the article) and t-SNE depend only on the embeddings and the
outlier mask, so they live here: ``dvc exp run -S k=6`` recolours the maps without recomputing them.
"""

from __future__ import annotations

import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, run, write_csv, write_metrics
from segmentation.config import layout, load_params
from segmentation.evaluation.projection import PCA_COMPONENTS, pca_projection, tsne_projection
from segmentation.model.sampling import read_inlier_vectors


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    ids, _, vectors = read_inlier_vectors(paths)
    components, variance = pca_projection(vectors, params.seed)
    embedding_2d = tsne_projection(
        vectors, params.project.tsne_perplexity, params.project.tsne_max_iter, params.seed
    )
    coordinates = pd.DataFrame({CUSTOMER_ID: ids})
    for i in range(PCA_COMPONENTS):
        coordinates[f"pca_{i + 1}"] = components[:, i]
    coordinates["tsne_1"], coordinates["tsne_2"] = embedding_2d[:, 0], embedding_2d[:, 1]
    write_csv(paths.projections, coordinates)
    metrics = {f"pca_variance_{i + 1}": ratio for i, ratio in enumerate(variance)}
    metrics["pca_variance_first3"] = variance.sum()
    write_metrics(paths.metrics / "project.json", metrics)


if __name__ == "__main__":
    run(main)
