"""Stage 7: which of this fit's segments is which adopted one, and how customers moved.

The adopted segmentation of the data set (``references/<name>/``, written by
``python -m stages.adopt <name>``) gives every segment that this fit keeps its number and name; a
segment it does not keep is new and takes the next free number. Without one, the segments keep
their fitted numbers. The profile, the segment model and ``assign`` use these stable numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_csv,
    read_json,
    read_npy,
    run,
    write_csv,
    write_json,
    write_metrics,
    write_png,
    write_text,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.data.outcomes import outcome_title, outcome_values
from segmentation.embedding.shards import read_vectors
from segmentation.lineage.figure import alluvial_figure
from segmentation.lineage.reference import load_reference
from segmentation.lineage.tracking import lineage_metrics, lineage_record, track, untracked
from segmentation.model.sampling import MatrixRows
from segmentation.reporting.lineage import render_report


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    segments = read_csv(paths.labels).set_index(CUSTOMER_ID)["segment"]
    table = read_csv(paths.outliers, usecols=[CUSTOMER_ID])[CUSTOMER_ID]
    # the outcome the data-set file describes first: its rate per segment, then and now
    outcome = next(iter(dataset.describe), None)
    outcome_now = (
        outcome_values(read_customers(paths.customers, dataset), dataset, outcome)
        if outcome
        else None
    )
    reference = load_reference(paths.reference) if paths.reference.exists() else None
    if reference is None:
        tracked = untracked(segments, outcome_now)
    else:
        matrix = MatrixRows(read_vectors(paths.embeddings))
        rows = pd.Series(np.arange(len(table)), index=table.to_numpy())
        tracked = track(
            reference,
            segments,
            lambda ids: matrix.take(rows.loc[ids].to_numpy()),
            read_npy(paths.centroids),
            read_json(paths.embedding_info)["model"],
            pd.Index(table),
            params.lineage,
            outcome_now,
        )
    metrics = lineage_metrics(tracked, len(reference.numbers) if reference else 0)
    folder = paths.reference.as_posix() if reference else None
    report = render_report(
        tracked,
        metrics,
        {
            "title": dataset.title,
            "name": name,
            "k": len(tracked.lineage.numbers),
            "reference": folder,
            "reference_folder": paths.reference.as_posix(),
            "match_jaccard": params.lineage.match_jaccard,
            "flow_share": params.lineage.flow_share,
            # links relative to reports/<name>/, where the report lives
            "plots": f"../../{paths.plots.as_posix()}",
            "moves": paths.segment_moves.as_posix(),
        },
        outcome_title(dataset, outcome) if outcome else None,
    )
    write_csv(
        paths.segment_moves,
        tracked.moves.rename_axis(CUSTOMER_ID).reset_index(),
    )
    write_png(
        paths.plots / "lineage.png",
        alluvial_figure(
            tracked.migration,
            f"{dataset.title}: adopted segments (left) and this fit's (right)",
        ),
    )
    write_csv(paths.reports / "migration.csv", tracked.migration)
    write_csv(paths.reports / "segment_changes.csv", tracked.changes.reset_index())
    write_json(paths.lineage, lineage_record(tracked, folder))
    write_metrics(paths.metrics / "lineage.json", metrics)
    write_text(paths.reports / "lineage.md", report)


if __name__ == "__main__":
    run(main)
