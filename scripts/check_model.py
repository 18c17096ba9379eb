"""Load each data set's saved segment model and predict every customer it was fitted on.

    python scripts/check_model.py [NAME ...] [--engine ray]   # default: params.yaml's data sets

The prediction must put every inlier in its pipeline segment (``labels.csv``, in the model's
stable numbers). A customer the
outliers stage flagged is predicted as a newcomer joining the ECOD reference, which already holds
it: its score can only drop, so a pipeline flag may clear but never appear. Exits 1, naming the
data set, when either rule is broken; prints one line per data set otherwise.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, read_csv
from segmentation.cluster import ENGINES
from segmentation.config import layout, load_params
from segmentation.model.predict import predict_customers
from segmentation.model.segment_model import SegmentModel


def check(name: str, engine: str) -> tuple[bool, str]:
    paths = layout(name)
    model = SegmentModel.load(paths.segment_model)
    predicted = pd.concat(predict_customers(model, paths.embeddings, engine), ignore_index=True)
    flags = read_csv(paths.outliers)
    labels = read_csv(paths.labels)
    inliers = flags["outlier"].to_numpy() == 0
    if not np.array_equal(flags.loc[inliers, CUSTOMER_ID], labels[CUSTOMER_ID]):
        return False, (
            f"{name}: {paths.labels} does not list the inliers of {paths.outliers} in order; "
            "run 'dvc repro'"
        )
    stable = model.stable_numbers(labels["segment"].to_numpy())
    placed = int((predicted.loc[inliers, "segment"].to_numpy() == stable).sum())
    predicted_flags = predicted["outlier"].to_numpy()
    appeared = int((predicted_flags[inliers] == 1).sum())
    cleared = int((predicted_flags[~inliers] == 0).sum())
    ok = placed == len(labels) and appeared == 0
    return ok, (
        f"{name}: {placed:,} of {len(labels):,} inliers predicted in their pipeline segment; "
        f"{int((~inliers).sum()):,} pipeline outliers, {cleared:,} of them cleared as newcomers; "
        f"{appeared:,} new flags"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="data sets (default: params.yaml's datasets)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="predict in this process, or as a Ray Data job (RAY_ADDRESS, else a local Ray)",
    )
    args = parser.parse_args()
    failed = []
    for name in args.names or load_params().datasets:
        ok, line = check(name, args.engine)
        print(line)
        if not ok:
            failed.append(name)
    if failed:
        sys.exit(f"the saved segment model does not reproduce the pipeline for {', '.join(failed)}")


if __name__ == "__main__":
    main()
