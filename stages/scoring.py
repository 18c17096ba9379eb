"""Internal validity scores of a segmentation, shared by the elbow study and the evaluation."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


def cluster_metrics(vectors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Davies-Bouldin (lower is better), Calinski-Harabasz and exact silhouette (higher is better)."""
    return {
        "davies_bouldin": davies_bouldin_score(vectors, labels),
        "calinski_harabasz": calinski_harabasz_score(vectors, labels),
        "silhouette": silhouette_score(vectors, labels),
    }
