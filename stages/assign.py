"""Place new customers in the segments the pipeline found (a command, not a DVC stage).

    python -m stages.assign NEW.csv --out assigned.csv

NEW.csv is in the UCI ``bank-full.csv`` layout and is validated like the pipeline's input. Each
customer is written with the params' template, embedded with the same model, given the segment of
the nearest centroid in ``data/processed/centroids.npy`` (numbered as in ``labels.csv``) and an
ECOD outlier score from a detector fitted on the training embeddings with the same contamination.
Scoring follows pyod's ECOD, which ranks new rows against the training rows and the new file
together, so a file much smaller than the training set barely moves the scores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import pairwise_distances_argmin_min

from stages.artifacts import CUSTOMER_ID, PipelineError, read_json, read_npy, run, write_csv
from stages.config import CENTROIDS, EMBEDDING_INFO, EMBEDDINGS, REPORTS, Params, load_params, read_customers
from stages.encoders import make_encoder, resolve_device
from stages.serialize import serialize


def nearest_segments(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment (1 = centroid row 0, as kmeans numbers them) and distance to that centroid, per row."""
    rows, distances = pairwise_distances_argmin_min(vectors, centroids)
    return rows + 1, distances


def outlier_scores(training: np.ndarray, vectors: np.ndarray, contamination: float) -> tuple[np.ndarray, np.ndarray]:
    """ECOD scores of ``vectors`` and their outlier flags, against a detector fitted on ``training``.

    The threshold is the one the pipeline's outliers stage used: the training scores' top
    ``contamination`` share.
    """
    from pyod.models.ecod import ECOD

    detector = ECOD(contamination=contamination, n_jobs=1).fit(training)
    scores = detector.decision_function(vectors)
    return scores, (scores > detector.threshold_).astype(np.int8)


def assign(customers: pd.DataFrame, encoder, params: Params, centroids: np.ndarray, training: np.ndarray,
           names: dict[int, str] | None = None) -> pd.DataFrame:
    """``encoder`` is the embed stage's (``stages.encoders.make_encoder``), so vectors match the training ones."""
    texts = serialize(customers, params.serialize.template)["text"].tolist()
    vectors = encoder.encode(texts)
    segments, distances = nearest_segments(vectors, centroids)
    scores, outliers = outlier_scores(training, vectors, params.outliers.contamination)
    assigned = pd.DataFrame({CUSTOMER_ID: customers.index.to_numpy(), "segment": segments})
    if names is not None:
        assigned["segment_name"] = [names[segment] for segment in segments]
    return assigned.assign(centroid_distance=distances, ecod_score=scores, outlier=outliers)


def committed_model(params: Params) -> tuple[np.ndarray, np.ndarray, dict[int, str] | None]:
    """The centroids, training embeddings and segment names, checked against params.yaml."""
    centroids, training = read_npy(CENTROIDS), read_npy(EMBEDDINGS)
    info = read_json(EMBEDDING_INFO)
    if info["model"] != params.model:
        raise PipelineError(
            f"{EMBEDDINGS} was made with model {info['model']!r} but params.yaml names {params.model!r}; "
            "run 'dvc repro' (or 'dvc checkout') so the model and the centroids agree"
        )
    if len(centroids) != params.k or centroids.shape[1] != training.shape[1]:
        raise PipelineError(
            f"{CENTROIDS} holds {len(centroids)} centroids of dimension {centroids.shape[1]} but params.yaml "
            f"has k={params.k} and the embeddings dimension {training.shape[1]}; run 'dvc repro' or 'dvc checkout'"
        )
    # Names come from the profile stage's table when it describes these k segments.
    profiles = REPORTS / "profiles.csv"
    names = dict(zip(*pd.read_csv(profiles)[["segment", "name"]].to_numpy().T)) if profiles.exists() else {}
    return centroids, training, names if sorted(names) == list(range(1, params.k + 1)) else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Assign new customers (UCI bank-full.csv layout) to the pipeline's segments.")
    parser.add_argument("customers", type=Path, help="';'-separated CSV with the UCI columns")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write: customer_id (0-based data row), segment, ...")
    args = parser.parse_args()
    if not args.customers.is_file():
        raise PipelineError(f"{args.customers}: not found; give the path of a ';'-separated CSV in the UCI layout")
    params = load_params()
    customers = read_customers(args.customers)
    centroids, training, names = committed_model(params)
    settings = params.embed
    encoder = make_encoder(params.model, settings.backend, resolve_device(settings.device, settings.backend), settings.batch_size)
    assigned = assign(customers, encoder, params, centroids, training, names)
    write_csv(args.out, assigned)
    counts = assigned["segment"].value_counts().sort_index()
    print(f"{args.out}: {len(assigned)} customers; per segment "
          + ", ".join(f"{s}: {n}" for s, n in counts.items()) + f"; {int(assigned['outlier'].sum())} flagged as outliers")


if __name__ == "__main__":
    run(main)
