"""Place new customers in the segments the pipeline found (a command, not a DVC stage).

    python -m stages.assign NEW.csv --dataset bank --out assigned.csv

NEW.csv is written like the data set's table (its data-set file says how; outcome columns may be
absent) and is validated the same way. Each customer is written as the data set's text, with the
numbers written as the serialize stage wrote the training customers' (``text_writing.json``: the
same band edges and words), embedded
with the same model, given the segment of the nearest centroid in the data set's ``centroids.npy``
(numbered as in ``labels.csv``) and an ECOD outlier score against the reference the outliers stage
fitted on (the training embeddings, or above ``sample_fit_rows`` the same seeded sample of them),
with its threshold. Each customer is scored as if it alone joined that reference
(``stages/ecod.py``), so a score does not depend on the rest of the file. Rows that a missing-cell
or invalid-value policy rejects are written too, with their reason, and the good rows are still
assigned.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from stages.artifacts import CUSTOMER_ID, PipelineError, read_json, read_npy, run, write_csv
from stages.config import Layout, Params, layout, load_params
from stages.dataset import Dataset, dataset_file, load_dataset, read_table, typed
from stages.ecod import ECODReference
from stages.embed import local_encoder
from stages.kmeans import nearest_segments
from stages.outliers import ecod_reference
from stages.text import TextWriting, write_texts


def assign_vectors(
    ids: np.ndarray,
    vectors: np.ndarray,
    centroids: np.ndarray,
    detector: ECODReference,
    names: dict[int, str] | None = None,
) -> pd.DataFrame:
    """Segment (with its name), centroid distance, ECOD score and outlier flag of each row.

    Rows are independent of one another, so a matrix of any size can be assigned block by block.
    """
    segments, distances = nearest_segments(vectors, centroids)
    scores = detector.scores(vectors)
    assigned = pd.DataFrame({CUSTOMER_ID: ids, "segment": segments})
    if names is not None:
        assigned["segment_name"] = [names[segment] for segment in segments]
    return assigned.assign(
        centroid_distance=distances, ecod_score=scores, outlier=detector.flags(scores)
    )


def assign(
    customers: pd.DataFrame,
    encoder,
    dataset: Dataset,
    writing: TextWriting,
    centroids: np.ndarray,
    detector: ECODReference,
    names: dict[int, str] | None = None,
) -> pd.DataFrame:
    """``encoder`` is the embed stage's (``stages.embed.local_encoder``),
    so vectors match the training ones."""
    texts = write_texts(customers, dataset, writing)["text"].tolist()
    vectors = encoder.encode(texts)
    return assign_vectors(customers.index.to_numpy(), vectors, centroids, detector, names)


def committed_model(
    params: Params, paths: Layout
) -> tuple[np.ndarray, ECODReference, dict[int, str] | None]:
    """The centroids, the outliers stage's ECOD reference and the segment names, checked against
    params.yaml."""
    centroids, training = read_npy(paths.centroids), read_npy(paths.embeddings, mmap_mode="r")
    info = read_json(paths.embedding_info)
    # New customers must be embedded exactly as the training ones were, or their distances to the
    # centroids are not comparable.
    expected = {
        "model": params.model,
        "embed.backend": params.embed.backend,
        "embed.precision": params.embed.precision,
    }
    for key, value in expected.items():
        made_with = info.get(key.removeprefix("embed."), value)
        if made_with != value:
            raise PipelineError(
                f"{paths.embeddings} was made with {key} {made_with!r} "
                f"but params.yaml names {value!r}; "
                "run 'dvc repro' (or 'dvc checkout') so the embeddings and the centroids agree"
            )
    if len(centroids) != params.k or centroids.shape[1] != training.shape[1]:
        raise PipelineError(
            f"{paths.centroids} holds {len(centroids)} centroids of dimension {centroids.shape[1]} "
            f"but params.yaml has k={params.k} and the embeddings dimension {training.shape[1]}; "
            "run 'dvc repro' or 'dvc checkout'"
        )
    # Names come from the profile stage's table when it describes these k segments.
    profiles = paths.reports / "profiles.csv"
    names = (
        dict(zip(*pd.read_csv(profiles)[["segment", "name"]].to_numpy().T))
        if profiles.exists()
        else {}
    )
    described = sorted(names) == list(range(1, params.k + 1))
    return centroids, ecod_reference(training, params), names if described else None


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
    cells, rejected = read_table(args.customers, dataset, dataset_file(name), dataset.text_columns)
    centroids, detector, names = committed_model(params, paths)
    writing = TextWriting.from_json(read_json(paths.text_writing), str(paths.text_writing))
    encoder, _, _ = local_encoder(params.model, params.embed)
    assigned = assign(typed(cells, dataset), encoder, dataset, writing, centroids, detector, names)
    assigned["segment"] = assigned["segment"].astype("Int64")
    refused = pd.DataFrame({CUSTOMER_ID: rejected[CUSTOMER_ID], "rejected": rejected["reason"]})
    write_csv(args.out, pd.concat([assigned.assign(rejected=""), refused], ignore_index=True))
    counts = assigned["segment"].value_counts().sort_index()
    print(
        f"{args.out}: {len(assigned)} customers; per segment "
        + ", ".join(f"{s}: {n}" for s, n in counts.items())
        + f"; {int(assigned['outlier'].sum())} flagged as outliers"
        + f"; {len(rejected)} rejected"
    )


if __name__ == "__main__":
    run(main, takes_dataset=False)
