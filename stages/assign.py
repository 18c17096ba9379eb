"""Place new customers in the segments the pipeline found (a command, not a DVC stage).

    python -m stages.assign NEW.csv --dataset bank --out assigned.csv

NEW.csv is written like the data set's table (its data-set file says how; outcome columns may be
absent) and is validated the same way. The data set's saved segment model
(``data/<name>/processed/segment_model.zip``) is loaded, and refused if its manifest says the
training customers were written or embedded otherwise than params.yaml and the data-set file would
write and embed these. Each customer is written with the model's number writing (the training band
edges and words), embedded with the same model, and predicted: the segment of the nearest centre, by
its stable number (the lineage stage's, as in ``profiles.csv``), with its name, the distance to that
centre, the ECOD score against the model's reference and the outlier flag (1 = outlier, a score
above the model's threshold). Each customer is scored as if it alone joined the reference, so a
score does not depend on the rest of the file. Rows that a missing-cell or invalid-value policy
rejects are written too, with their reason, and the good rows are still assigned.

NEW.csv is read and validated a chunk of rows at a time, so memory does not grow with the file
(the rejected rows are set aside on disk, to be written last); every chunk is validated and
written as text before any is embedded, so a bad row anywhere stops the run before the slow part.

The texts are embedded into shards of ``embed.shard_rows`` customers in a scratch folder beside
the output, by ``embed.engine`` (a killed run resumes from its last chunk), and the shards are
predicted by ``engine``: set both to ``ray`` for a file of millions of customers.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError, run, write_csv_chunks
from segmentation.config import layout, load_params
from segmentation.data.dataset import (
    TableRows,
    dataset_file,
    load_dataset,
    read_table_chunks,
    typed,
)
from segmentation.model.assign import assign_in_shards, check_compatible
from segmentation.model.segment_model import SegmentModel


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Assign new customers to the segments the pipeline found."
    )
    parser.add_argument("customers", type=Path, help="a CSV written like the data set's table")
    parser.add_argument(
        "--dataset", help="the data set (datasets/<name>.yaml); default: the first in params.yaml"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="CSV to write: customer_id, segment, segment_name, ..., rejected (the reason, if any)",
    )
    args = parser.parse_args()
    params = load_params()
    name = args.dataset or params.datasets[0]
    dataset, paths = load_dataset(name), layout(name)
    if not args.customers.is_file():
        raise PipelineError(
            f"{args.customers}: not found; give the path of a CSV written like {name}'s table "
            f"(see {dataset_file(name)})"
        )
    model = SegmentModel.load(paths.segment_model)
    check_compatible(model, paths.segment_model, params, dataset_file(name))
    chunks = read_table_chunks(args.customers, dataset, dataset_file(name), dataset.text_columns)
    segments: Counter[int] = Counter()
    flagged = 0

    def written(assigned: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        nonlocal flagged
        columns = [CUSTOMER_ID, "rejected"]
        for part in assigned:
            segments.update(part["segment"].tolist())
            flagged += int(part["outlier"].sum())
            columns = [*part.columns, "rejected"]
            yield part.assign(segment=part["segment"].astype("Int64"), rejected="")
        for refused in table.rejected_chunks():
            yield pd.DataFrame(
                {CUSTOMER_ID: refused[CUSTOMER_ID], "rejected": refused["reason"]}
            ).reindex(columns=columns)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with (
        TableRows() as table,
        tempfile.TemporaryDirectory(prefix=".assign-", dir=args.out.parent) as work,
    ):
        kept = (typed(cells, dataset) for cells in table.kept(chunks))
        write_csv_chunks(
            args.out, written(assign_in_shards(kept, dataset, model, params, Path(work)))
        )
    print(
        f"{args.out}: {table.kept_rows} customers; per segment "
        + ", ".join(f"{s}: {n}" for s, n in sorted(segments.items()))
        + f"; {flagged} flagged as outliers"
        + f"; {table.rejected_rows} rejected"
    )


if __name__ == "__main__":
    run(main, takes_dataset=False)
