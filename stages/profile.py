"""Stage 10: a per-segment profile table, segment cards and a comparison heatmap
for a marketing manager, in the segments' stable numbers (the lineage stage's).

Which columns are shown, their labels, the phrases that name segments and the outcomes described
per segment all come from the data-set file.
"""

from __future__ import annotations

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_csv,
    read_json,
    run,
    write_csv,
    write_png,
    write_text,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import dataset_file, load_dataset, read_customers
from segmentation.data.outcomes import outcome_key, outcome_values
from segmentation.lineage.tracking import Numbering
from segmentation.reporting.profile import (
    HEATMAP,
    drivers_section,
    heatmap_figure,
    profile,
    profile_columns,
    render_report,
    representation,
    standardized_differences,
    value_differences,
    warning_section,
    with_stability,
)


def main(name: str) -> None:
    params, dataset, paths = load_params(), load_dataset(name), layout(name)
    labels = read_csv(paths.labels)
    numbering = Numbering.of(read_json(paths.lineage))
    everyone = read_customers(paths.customers, dataset)
    customers = everyone.loc[labels[CUSTOMER_ID]]
    segments = labels["segment"].map(numbering.numbers)
    differences = value_differences(customers, segments, dataset)
    table = profile(customers, segments, dataset, differences, numbering.kept_names)
    metrics = {
        stage: read_json(paths.metrics / f"{stage}.json")
        for stage in ("rows", "outliers", "evaluate", "explain", "elbow", "stability")
    }
    fitted = {number: fitted for fitted, number in numbering.numbers.items()}
    table = with_stability(table, metrics["stability"], fitted)
    drivers = read_csv(paths.reports / "segment_drivers.csv")
    drivers["segment"] = drivers["segment"].map(numbering.numbers)
    importance = read_csv(paths.plots / "importance.csv")
    numeric, _ = profile_columns(dataset)
    base: dict[str, float] = {column: customers[column].mean() for column in numeric}
    base |= {
        outcome_key(dataset, c): outcome_values(everyone, dataset, c).mean()
        for c in dataset.describe
    }
    base["kept"] = len(everyone)
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
        representation(customers, segments, dataset),
        base,
        metrics,
        context,
        dataset,
    )
    strongest, values = standardized_differences(differences, segments, dataset)
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
