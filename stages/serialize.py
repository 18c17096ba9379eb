"""Stage 2: read the customer table safely and write each customer as a short text.

The table is validated against its data-set file. The customers kept are written as the validated
table the later stages read, each as the data set's text (its template, or one "Label: value" line
per column; numbers as values, band words or both, ``stages/text.py``) with how it was written, and
the rows a missing-cell or invalid-value policy rejected with their id, file line,
column and reason, so every input row is accounted for. What a user must know about the kept
customers (constant or near-copy segmented columns, repeated records) is logged and written for
the segment report; none of it stops the run.

The table is read, checked and written a chunk of rows at a time. The band edges of numbers and
the warnings are found on a seeded sample of ``sample_fit_rows`` kept customers (every one of them
up to that many); ``repeated_records`` then counts repeats within the sample.
"""

from __future__ import annotations

from segmentation.artifacts import (
    log,
    run,
    write_csv_chunks,
    write_json,
    write_metrics,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import (
    TableRows,
    customer_chunks,
    data_warnings,
    dataset_file,
    load_dataset,
    read_customers,
    read_table_chunks,
)
from segmentation.model.sampling import sample_rows
from segmentation.text import fit_writing, numbers_written, write_texts


def main(name: str) -> None:
    params = load_params()  # a bad param stops the pipeline at its first stage
    dataset, paths = load_dataset(name), layout(name)
    with TableRows() as table:
        chunks = read_table_chunks(paths.raw, dataset, dataset_file(name))
        write_csv_chunks(paths.customers, (cells.reset_index() for cells in table.kept(chunks)))
        write_csv_chunks(paths.rejected, table.rejected_chunks())
    sample = read_customers(
        paths.customers, dataset, sample_rows(table.kept_rows, params.sample_fit_rows, params.seed)
    )
    writing = fit_writing(sample, dataset, numbers_written(dataset, params.text.numbers))
    write_json(paths.text_writing, writing.to_json())
    write_csv_chunks(
        paths.texts,
        (
            write_texts(chunk, dataset, writing)
            for chunk in customer_chunks(paths.customers, dataset)
        ),
    )
    warnings, repeated = data_warnings(sample, dataset)
    for warning in warnings:
        log.warning("%s: %s", dataset_file(name), warning)
    write_json(paths.reports / "data_warnings.json", {"warnings": warnings})
    sampled = len(sample) < table.kept_rows
    write_metrics(
        paths.metrics / "rows.json",
        {
            "table_rows": table.kept_rows + table.rejected_rows,
            "rejected_rows": table.rejected_rows,
            "kept_rows": table.kept_rows,
            "repeated_records": repeated,
            **({"fit_sample_rows": len(sample)} if sampled else {}),
        },
    )


if __name__ == "__main__":
    run(main)
