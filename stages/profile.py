"""Stage 10: a per-segment profile table, segment cards and a comparison heatmap
for a marketing manager, in the segments' stable numbers (the lineage stage's).

The profile is read from counts and sums that each shard of customers tallies, here or on Ray
(``engine``), so the customer table is never whole in one process.

Which columns are shown, their labels, the phrases that name segments and the outcomes described
per segment all come from the data-set file.
"""

from __future__ import annotations

from segmentation.artifacts import read_csv, read_json, run, write_csv, write_png, write_text
from segmentation.config import layout, load_params
from segmentation.data.dataset import dataset_file, load_dataset, read_customers
from segmentation.lineage.tracking import Numbering
from segmentation.model.sampling import sample_inlier_rows
from segmentation.reporting.profile import (
    HEATMAP,
    base_values,
    drivers_section,
    heatmap_figure,
    profile,
    render_report,
    representation,
    standardized_differences,
    value_differences,
    warning_section,
    with_stability,
)
from segmentation.reporting.tallies import profile_tallies


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    numbering = Numbering.of(read_json(paths.lineage))
    sample = sample_inlier_rows(paths, params.sample_fit_rows, params.seed)
    tallies = profile_tallies(
        paths,
        dataset,
        numbering.numbers,
        read_customers(paths.customers, dataset, sample.rows),
        params.engine,
    )
    differences = value_differences(tallies, dataset)
    table = profile(tallies, dataset, differences, numbering.kept_names)
    metrics = {
        stage: read_json(paths.metrics / f"{stage}.json")
        for stage in ("rows", "outliers", "evaluate", "explain", "elbow", "stability")
    }
    fitted = {number: fitted for fitted, number in numbering.numbers.items()}
    table = with_stability(table, metrics["stability"], fitted)
    drivers = read_csv(paths.reports / "segment_drivers.csv")
    drivers["segment"] = drivers["segment"].map(numbering.numbers)
    importance = read_csv(paths.plots / "importance.csv")
    # Links relative to reports/<name>/, where the report lives.
    context = {
        "name": name,
        "model": params.model,
        "k": params.k,
        "rejected": paths.rejected.name,
        "plots": f"../../{paths.plots.as_posix()}",
        "stability": params.stability,
        "n_init": params.kmeans.n_init,
        "drivers": drivers_section(
            importance,
            metrics["explain"],
            dataset,
            read_json(paths.text_writing)["numbers"],
        ),
        "warnings": warning_section(
            read_json(paths.reports / "data_warnings.json")["warnings"],
            dataset_file(name).as_posix(),
        ),
    }
    report = render_report(
        table,
        drivers,
        representation(tallies, dataset),
        base_values(tallies, dataset),
        metrics,
        context,
        dataset,
    )
    strongest, values = standardized_differences(differences, tallies.segments, dataset)
    write_png(
        paths.plots / f"{HEATMAP}.png",
        heatmap_figure(
            strongest,
            values,
            table["name"].tolist(),
            [dataset.label(column) for column in strongest.columns],
        ),
    )
    write_csv(paths.reports / "profiles.csv", table)
    write_text(paths.reports / "segments.md", report)


if __name__ == "__main__":
    run(main)
