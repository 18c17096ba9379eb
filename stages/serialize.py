"""Stage 2: read the customer table safely and write each customer as a short text.

The table is validated against its data-set file. The customers kept are written as the validated
table the later stages read, each as the data set's text (its template, or one "Label: value" line
per column; numbers as values, band words or both, ``stages/text.py``) with how it was written, and
the rows a missing-cell or invalid-value policy rejected with their id, file line,
column and reason, so every input row is accounted for. What a user must know about the kept
customers (constant or near-copy segmented columns, repeated records) is logged and written for
the segment report; none of it stops the run.
"""

from __future__ import annotations

from segmentation.artifacts import log, run, write_csv, write_json, write_metrics
from segmentation.config import layout, load_params
from segmentation.data.dataset import data_warnings, dataset_file, load_dataset, read_table, typed
from segmentation.text import fit_writing, numbers_written, write_texts


def main(name: str) -> None:
    params = load_params()  # a bad param stops the pipeline at its first stage
    dataset, paths = load_dataset(name), layout(name)
    cells, rejected = read_table(paths.raw, dataset, dataset_file(name))
    write_csv(paths.customers, cells.reset_index())
    write_csv(paths.rejected, rejected)
    customers = typed(cells, dataset)
    writing = fit_writing(customers, dataset, numbers_written(dataset, params.text.numbers))
    write_json(paths.text_writing, writing.to_json())
    write_csv(paths.texts, write_texts(customers, dataset, writing))
    warnings, repeated = data_warnings(customers, dataset)
    for warning in warnings:
        log.warning("%s: %s", dataset_file(name), warning)
    write_json(paths.reports / "data_warnings.json", {"warnings": warnings})
    write_metrics(
        paths.metrics / "rows.json",
        {
            "table_rows": len(cells) + len(rejected),
            "rejected_rows": len(rejected),
            "kept_rows": len(cells),
            "repeated_records": repeated,
        },
    )


if __name__ == "__main__":
    run(main)
