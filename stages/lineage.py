"""Stage 7: which of this fit's segments is which adopted one, and how customers moved.

The adopted segmentation of the data set (``references/<name>/``, written by
``python -m stages.adopt <name>``) gives every segment that this fit keeps its number and name; a
segment it does not keep is new and takes the next free number. Without one, the segments keep
their fitted numbers. The profile, the segment model and ``assign`` use these stable numbers.
"""

from __future__ import annotations

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_json,
    read_npy,
    run,
    write_csv,
    write_csv_chunks,
    write_json,
    write_metrics,
    write_png,
    write_text,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset
from segmentation.data.outcomes import outcome_title
from segmentation.lineage.figure import alluvial_figure
from segmentation.lineage.join import joined_by_id
from segmentation.lineage.reference import load_reference
from segmentation.lineage.tracking import lineage_metrics, lineage_record, tracked, untracked
from segmentation.reporting.lineage import render_report


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    # the outcome the data-set file describes first: its rate per segment, then and now
    outcome = next(iter(dataset.describe), None)
    reference = load_reference(paths.reference) if paths.reference.exists() else None
    with joined_by_id(
        paths,
        dataset,
        outcome,
        reference,
        read_npy(paths.centroids),
        read_json(paths.embedding_info)["model"],
        params.engine,
    ) as joined:
        if reference is None:
            followed = untracked(joined.counts, outcome is not None)
        else:
            followed = tracked(reference, joined.counts, params.lineage, outcome is not None)
        write_csv_chunks(
            paths.segment_moves,
            (
                moves.rename_axis(CUSTOMER_ID).reset_index()
                for moves in joined.moves(followed.lineage.numbers)
            ),
        )
    metrics = lineage_metrics(followed, len(reference.numbers) if reference else 0)
    folder = paths.reference.as_posix() if reference else None
    report = render_report(
        followed,
        metrics,
        {
            "title": dataset.title,
            "name": name,
            "k": len(followed.lineage.numbers),
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
    write_png(
        paths.plots / "lineage.png",
        alluvial_figure(
            followed.migration,
            f"{dataset.title}: adopted segments (left) and this fit's (right)",
        ),
    )
    write_csv(paths.reports / "migration.csv", followed.migration)
    write_csv(paths.reports / "segment_changes.csv", followed.changes.reset_index())
    write_json(paths.lineage, lineage_record(followed, folder))
    write_metrics(paths.metrics / "lineage.json", metrics)
    write_text(paths.reports / "lineage.md", report)


if __name__ == "__main__":
    run(main)
