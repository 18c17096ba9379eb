"""K-Prototypes cost over a range of k on the Method-1 inliers: the article's elbow for Method 2.

It does not depend on the chosen ``k``, so ``dvc exp run -S k=6`` does not rerun it.
"""

from __future__ import annotations

import pandas as pd

from segmentation.artifacts import subplots
from segmentation.baselines.kprototypes import fit_prototypes


def cost_curve(
    frame: pd.DataFrame, ks: range, n_init: int, max_iter: int, seed: int
) -> pd.DataFrame:
    costs = [fit_prototypes(frame, k, n_init, max_iter, seed)[1] for k in ks]
    return pd.DataFrame({"n_clusters": list(ks), "cost": costs})


def cost_figure(curve: pd.DataFrame):
    figure, axis = subplots(figsize=(6, 3.5))
    axis.plot(curve["n_clusters"], curve["cost"], marker="o")
    axis.set_xlabel("k (number of segments)")
    axis.set_ylabel("K-Prototypes cost")
    axis.set_title("K-Prototypes cost on the Method-1 inliers")
    return figure
