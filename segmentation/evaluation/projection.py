"""Helper stage between outliers and evaluate: k-independent 2-D/3-D projections of the inliers.

PCA (on standardized embeddings, as the article) and t-SNE depend only on the embeddings and the
outlier mask, so they live here: ``dvc exp run -S k=6`` recolours the maps without recomputing them.
"""

from __future__ import annotations

import numpy as np
from openTSNE import TSNE
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from segmentation.artifacts import PipelineError

PCA_COMPONENTS = 3
EARLY_EXAGGERATION_ITER = 250


def pca_projection(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """First three principal components of the standardized matrix and their variance ratios."""
    pca = PCA(n_components=PCA_COMPONENTS, svd_solver="full", random_state=seed)
    components = pca.fit_transform(StandardScaler().fit_transform(vectors))
    return components, pca.explained_variance_ratio_


def tsne_projection(vectors: np.ndarray, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
    """openTSNE's FFT-accelerated t-SNE (linear in rows, unlike sklearn's Barnes-Hut),
    PCA-initialized.

    ``max_iter`` counts the 250 early-exaggeration iterations, as sklearn's does. Neighbours are
    exact below 1,000 rows and Annoy above (openTSNE's ``auto``); both are seeded, so the map is
    byte-identical from run to run on one machine (checked with 2 threads; like KMeans, another
    core count may change the last digits).
    """
    if perplexity >= len(vectors):
        raise PipelineError(
            f"project.tsne_perplexity={perplexity} must be below the number of inliers "
            f"({len(vectors)})"
        )
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        early_exaggeration_iter=EARLY_EXAGGERATION_ITER,
        n_iter=max_iter - EARLY_EXAGGERATION_ITER,
        initialization="pca",
        neighbors="auto",
        negative_gradient_method="fft",
        n_jobs=-1,
        random_state=seed,
    )
    return np.asarray(tsne.fit(np.asarray(vectors, dtype=np.float64)))
