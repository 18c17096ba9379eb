"""Internal validity scores of a segmentation, shared by the elbow study and the evaluation."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


def cluster_metrics(
    vectors: np.ndarray, labels: np.ndarray, silhouette_rows: int | None = None, seed: int = 0
) -> dict[str, float]:
    """Davies-Bouldin (lower is better), Calinski-Harabasz and silhouette (higher is better).

    The silhouette is exact unless ``silhouette_rows`` is below the row count; then it is taken on
    a sample drawn with ``seed``, the same rows for every labelling of the same matrix.
    """
    sample = silhouette_rows if silhouette_rows is not None and silhouette_rows < len(vectors) else None
    return {
        "davies_bouldin": davies_bouldin_score(vectors, labels),
        "calinski_harabasz": calinski_harabasz_score(vectors, labels),
        "silhouette": silhouette_score(vectors, labels, sample_size=sample, random_state=seed),
    }
