"""Helper stage between outliers and evaluate: k-independent 2-D/3-D projections of the inliers.

PCA (on standardized embeddings, as the article) and t-SNE depend only on the embeddings and the
outlier mask, so they live here: ``dvc exp run -S k=6`` recolours the maps without recomputing them.

The PCA is fitted on the seeded sample of ``sample_fit_rows`` inliers that kmeans fits on, which
is every inlier below that size; above it, the fitted scaling and PCA place every inlier, shard by
shard (``project_shard``). The t-SNE map is that of a seeded sample of ``project.tsne_rows`` of
those inliers (all of them if fewer): t-SNE has no faithful way to add millions of points to a
map, its time and memory grow with its points, and the picture of a sample is the picture of the
segments. So the t-SNE columns are empty outside the map's sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from openTSNE import TSNE
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.config import ProjectParams
from segmentation.embedding.shards import Shard
from segmentation.model.sampling import MatrixRows, sample_rows

PCA_COMPONENTS = 3
EARLY_EXAGGERATION_ITER = 250


PCA_COLUMNS = [f"pca_{number}" for number in range(1, PCA_COMPONENTS + 1)]
TSNE_COLUMNS = ["tsne_1", "tsne_2"]


def pca_projection(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """First three principal components of the standardized matrix and their variance ratios."""
    _, pca, components = fitted_pca(vectors, seed)
    return components, pca.explained_variance_ratio_


def fitted_pca(vectors: np.ndarray, seed: int) -> tuple[StandardScaler, PCA, np.ndarray]:
    """The scaling and PCA fitted on ``vectors``, and their first three principal components."""
    scaler = StandardScaler()
    pca = PCA(n_components=PCA_COMPONENTS, svd_solver="full", random_state=seed)
    return scaler, pca, pca.fit_transform(scaler.fit_transform(vectors))


@dataclass
class SampleProjection:
    """PCA fitted on a sample of the inliers, with the sample's coordinates, and the t-SNE map of
    the inliers at ``positions`` (sorted, among the inliers)."""

    scaler: StandardScaler
    pca: PCA
    positions: np.ndarray
    components: np.ndarray
    tsne: np.ndarray

    @classmethod
    def fit(
        cls, sample: np.ndarray, positions: np.ndarray, params: ProjectParams, seed: int
    ) -> SampleProjection:
        """PCA on ``sample`` (the inliers at ``positions``), t-SNE on a seeded sample of
        ``params.tsne_rows`` of it (all of it if fewer)."""
        scaler, pca, components = fitted_pca(sample, seed)
        mapped = sample_rows(len(sample), params.tsne_rows, seed)
        tsne = tsne_projection(sample[mapped], params.tsne_perplexity, params.tsne_max_iter, seed)
        return cls(scaler, pca, positions[mapped], components, tsne)

    def sample_coordinates(self, ids: np.ndarray) -> pd.DataFrame:
        """The sample's PCA coordinates, when the sample is every inlier (``ids``)."""
        return pd.DataFrame({CUSTOMER_ID: ids, **dict(zip(PCA_COLUMNS, self.components.T))})

    def with_tsne(self, parts: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """The inliers' PCA coordinates in row order, each part with the sample's t-SNE columns
        (empty for a customer outside the sample)."""
        done = 0
        for part in parts:
            first, last = np.searchsorted(self.positions, [done, done + len(part)])
            tsne = np.full((len(part), len(TSNE_COLUMNS)), np.nan)
            tsne[self.positions[first:last] - done] = self.tsne[first:last]
            done += len(part)
            yield part.assign(**dict(zip(TSNE_COLUMNS, tsne.T)))


def project_shard(
    rows: MatrixRows, shard: Shard, scaler: StandardScaler, pca: PCA, flags: pd.DataFrame
) -> pd.DataFrame:
    """The PCA coordinates of one shard's inliers (``flags``: its customers' ids and outlier
    flags), block by block, in row order."""
    inliers = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    components = [np.empty((0, PCA_COMPONENTS))]
    for _, block in MatrixRows(rows.matrix, inliers).blocks():
        components.append(pca.transform(scaler.transform(block)))
    coordinates = np.concatenate(components)
    ids = flags[CUSTOMER_ID].to_numpy()[inliers]
    return pd.DataFrame({CUSTOMER_ID: ids, **dict(zip(PCA_COLUMNS, coordinates.T))})


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
