"""Multiple correspondence analysis (prince) of the K-Prototypes customers' categorical columns.

The article's picture for Method 2: how much of the categorical columns' inertia the first
components hold, and a 2-D map of the customers coloured by K-Prototypes segment. The map does
not depend on k, so this stage fits it once; the kprototypes stage colours it with its segments
(``mca_figure`` there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import prince

from segmentation.config import MCAParams


def correspondence_map(
    categories: pd.DataFrame, params: MCAParams, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row coordinates on the first components and each component's share of the total inertia."""
    mca = prince.MCA(n_components=params.n_components, n_iter=params.n_iter, random_state=seed).fit(
        categories
    )
    coordinates = mca.row_coordinates(categories).to_numpy()
    return coordinates, np.asarray(mca.percentage_of_variance_) / 100
