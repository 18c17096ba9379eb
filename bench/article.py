"""The article's tools for the four stages this repository speeds up, as drop-in stage commands.

``python bench/article.py embed|elbow|project|evaluate <data set>``, run in a project folder, reads
the same params and inputs as ``python -m stages.<name> <data set>`` and writes the files later
stages read, the way the article did it: sentence-transformers on torch fp32 with batch 32 and
every customer embedded (no deduplication), sklearn's exact ``silhouette_score`` for every k of the
elbow (no stability refits: the article had none) and for the chosen k, and sklearn's t-SNE on
the inliers. bench/run.py chains these with the
unchanged stages to time the article-equivalent pipeline.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from kneed import KneeLocator
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_csv,
    run,
    subplots,
    write_csv,
    write_json,
    write_metrics,
    write_png,
)
from segmentation.config import layout, load_params
from segmentation.embedding.encoders import load_model
from segmentation.embedding.shards import write_matrix
from segmentation.evaluation import elbow
from segmentation.evaluation import maps as evaluate
from segmentation.evaluation import projection as project
from segmentation.model.sampling import read_inlier_vectors

ARTICLE_BATCH_SIZE = 32
SKLEARN_TSNE_ITER = (
    1000  # sklearn's default (the article's notebook: 5000); project.tsne_max_iter is openTSNE's
)


def article_scores(vectors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "davies_bouldin": davies_bouldin_score(vectors, labels),
        "calinski_harabasz": calinski_harabasz_score(vectors, labels),
        "silhouette": silhouette_score(vectors, labels),
    }


def embed_main(name: str) -> None:
    params, paths = load_params(), layout(name)
    table = read_csv(paths.texts)
    texts = table["text"].tolist()
    vectors = load_model(params.model).encode(
        texts, batch_size=ARTICLE_BATCH_SIZE, normalize_embeddings=True
    )
    write_matrix(paths.embeddings, vectors, table[CUSTOMER_ID].tolist(), params.embed.shard_rows)
    write_json(
        paths.embedding_info,
        {"model": params.model, "dimension": int(vectors.shape[1]), "rows": len(texts)},
    )
    write_metrics(
        paths.metrics / "embed.json",
        {"embedded_rows": len(texts), "embedding_dimension": vectors.shape[1]},
    )


def elbow_main(name: str) -> None:
    params, paths = load_params(), layout(name)
    _, _, vectors = read_inlier_vectors(paths)
    rows = []
    for k in range(params.elbow.k_min, params.elbow.k_max + 1):
        model = KMeans(
            n_clusters=k, init="k-means++", n_init=params.elbow.n_init, random_state=params.seed
        ).fit(vectors)
        rows.append(
            {"n_clusters": k, "inertia": model.inertia_, **article_scores(vectors, model.labels_)}
        )
    curve = pd.DataFrame(rows).loc[:, ["n_clusters", *elbow.CURVES]]
    knee = KneeLocator(
        curve["n_clusters"], curve["inertia"], curve="convex", direction="decreasing"
    ).knee
    figure, axes = subplots(1, len(elbow.CURVES), figsize=(4 * len(elbow.CURVES), 3.2))
    for axis, name in zip(axes, elbow.CURVES):
        axis.plot(curve["n_clusters"], curve[name], marker="o")
        axis.set_title(name.replace("_", " "))
    write_csv(paths.plots / "elbow.csv", curve)
    write_png(paths.plots / "elbow.png", figure)
    write_metrics(paths.metrics / "elbow.json", {"elbow_k": int(knee) if knee is not None else 0})


def project_main(name: str) -> None:
    params, paths = load_params(), layout(name)
    ids, _, vectors = read_inlier_vectors(paths)
    components, variance = project.pca_projection(vectors, params.seed)
    tsne = TSNE(
        n_components=2,
        perplexity=params.project.tsne_perplexity,
        max_iter=SKLEARN_TSNE_ITER,
        init="pca",
        random_state=params.seed,
    )
    embedding_2d = tsne.fit_transform(vectors)
    coordinates = pd.DataFrame({CUSTOMER_ID: ids})
    for i in range(project.PCA_COMPONENTS):
        coordinates[f"pca_{i + 1}"] = components[:, i]
    coordinates["tsne_1"], coordinates["tsne_2"] = embedding_2d[:, 0], embedding_2d[:, 1]
    write_csv(paths.projections, coordinates)
    write_metrics(
        paths.metrics / "project.json",
        {f"pca_variance_{i + 1}": ratio for i, ratio in enumerate(variance)},
    )


def evaluate_main(name: str) -> None:
    params, paths = load_params(), layout(name)
    _, _, vectors = read_inlier_vectors(paths)
    labels = read_csv(paths.labels)
    coordinates = read_csv(paths.projections).merge(labels, on=CUSTOMER_ID, validate="one_to_one")
    write_metrics(
        paths.metrics / "evaluate.json", article_scores(vectors, labels["segment"].to_numpy())
    )
    for plot, (columns, title) in evaluate.MAPS.items():
        write_csv(
            paths.plots / f"{plot}.csv",
            evaluate.map_points(coordinates, columns, params.evaluate.map_points, params.seed),
        )
        write_png(paths.plots / f"{plot}.png", evaluate.map_figure(coordinates, columns, title))


STAGES = {
    "embed": embed_main,
    "elbow": elbow_main,
    "project": project_main,
    "evaluate": evaluate_main,
}

if __name__ == "__main__":
    run(STAGES[sys.argv.pop(1)])
