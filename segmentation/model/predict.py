"""Every embedded customer placed by a saved segment model, shard by shard, here or on Ray.

    for part in predict_customers(SegmentModel.load(path), "data/bank/interim/embeddings", "ray"):
        ...   # each shard's predictions, in row order

The predictions are ``SegmentModel.predict``'s (segment, name, distance to its centre, ECOD
score, outlier flag) with each customer's row in the table first, so the same for either engine
and for any shard size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.cluster import map_shards
from segmentation.embedding.shards import Shard
from segmentation.model.sampling import MatrixRows
from segmentation.model.segment_model import SegmentModel

ROW = "row"


def predict_shard(rows: MatrixRows, shard: Shard, model: SegmentModel) -> pd.DataFrame:
    """The model's predictions for one shard's customers, block by block, in row order."""
    predicted = pd.concat([model.predict(block) for _, block in rows.blocks()], ignore_index=True)
    predicted.insert(0, ROW, np.arange(shard.start, shard.start + shard.rows))
    return predicted


def predict_customers(
    model: SegmentModel, folder: Path, engine: str = "local", num_cpus: int | str = "auto"
) -> Iterator[pd.DataFrame]:
    """Each shard's predictions, in row order: computed here (``local``) or by a Ray Data pipeline
    with one task per shard (``ray``)."""
    return map_shards(predict_shard, folder, engine, model, num_cpus=num_cpus)
