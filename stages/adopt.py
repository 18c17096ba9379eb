"""Adopt the data set's current segments as its reference (a command, not a DVC stage).

    python -m stages.adopt bank        # after 'dvc repro'; then commit references/bank/

Writes ``references/<name>/``: each customer's stable segment number, the segments' names (the
profile's), their centroids, the embedding model and each segment's outcome rate. Later fits keep
the numbers and names of the segments they match (the lineage stage), so run ``dvc repro`` after
adopting: the lineage report then finds every segment unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from segmentation.artifacts import (
    CUSTOMER_ID,
    PipelineError,
    csv_row_starts,
    read_csv,
    read_json,
    read_npy,
    run,
)
from segmentation.config import Layout, layout
from segmentation.data.dataset import load_dataset
from segmentation.data.outcomes import outcome_key
from segmentation.lineage.join import CHUNK_ROWS
from segmentation.lineage.reference import SEGMENTS, adopted, save_reference
from segmentation.lineage.tracking import Numbering


def main(name: str) -> None:
    dataset, paths = load_dataset(name), layout(name)
    profiles, changes = paths.reports / "profiles.csv", paths.reports / "segment_changes.csv"
    missing = [p for p in (paths.labels, paths.lineage, profiles, changes) if not p.exists()]
    if missing:
        raise PipelineError(
            f"{missing[0]}: not found; run 'dvc repro' for {name} before adopting its segments"
        )
    numbering = Numbering.of(read_json(paths.lineage))
    names = read_csv(profiles, usecols=["segment", "name"]).set_index("segment")["name"]
    if set(names.index) != set(numbering.numbers.values()):
        raise _not_one_run(paths, profiles)
    outcome = next(iter(dataset.describe), None)
    rates = read_csv(changes).set_index("segment").get("outcome_now")
    reference = adopted(
        numbering.numbers,
        names.to_dict(),
        read_npy(paths.centroids),
        read_json(paths.embedding_info)["model"],
        outcome_key(dataset, outcome) if outcome else "",
        None if rates is None else rates.to_dict(),
    )
    save_reference(paths.reference, reference, _stable_segments(paths, numbering, profiles))
    customers = csv_row_starts(paths.reference / SEGMENTS, [])[1]
    print(
        f"{paths.reference}: {len(reference.numbers)} segments of {customers:,} customers "
        f"adopted; run 'dvc repro', then commit {paths.reference}/ and the results"
    )


def _stable_segments(paths: Layout, numbering: Numbering, profiles: Path) -> Iterator[pd.Series]:
    """Each customer's stable number, a chunk of labels at a time; the labels must have every
    segment the lineage record numbers, and no other."""
    seen: set[int] = set()
    with read_csv(paths.labels, chunksize=CHUNK_ROWS) as chunks:
        for chunk in chunks:
            fitted = chunk.set_index(CUSTOMER_ID)["segment"]
            seen.update(fitted.unique().tolist())
            if not seen <= set(numbering.numbers):
                break
            yield fitted.map(numbering.numbers)
    if seen != set(numbering.numbers):
        raise _not_one_run(paths, profiles)


def _not_one_run(paths: Layout, profiles: Path) -> PipelineError:
    return PipelineError(
        f"{paths.labels}, {paths.lineage} and {profiles} are not from one run (their segments "
        "differ); run 'dvc repro' before adopting them"
    )


if __name__ == "__main__":
    run(main)
