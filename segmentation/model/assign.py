"""New customers placed with a saved segment model, written and embedded as its customers were:
in memory with an encoder (``assign``), or for a file of any size through the embedding shards
(``assign_in_shards``), embedded and predicted here or on Ray as the pipeline's customers are."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError, read_csv, write_csv_chunks
from segmentation.config import Params
from segmentation.data.dataset import Dataset
from segmentation.embedding.chunks import (
    embed_to_shards,
    open_engine,
    resume_folder,
    scan_texts,
    text_shards,
)
from segmentation.model.predict import ROW, predict_customers
from segmentation.model.segment_model import SegmentModel
from segmentation.text import TextWriting, write_texts


def check_compatible(model: SegmentModel, path: Path, params: Params, spec_file: Path) -> None:
    """Refuse new customers that would be written or embedded otherwise than the model's were:
    their distances to its centres would not be comparable."""
    if model.embedding is None or model.customers is None:
        raise PipelineError(
            f"{path}: its manifest does not say how its customers were written and embedded; "
            "save it with the pipeline ('dvc repro')"
        )
    embedded_now = {
        "model": params.model,
        "embed.backend": params.embed.backend,
        "embed.precision": params.embed.precision,
    }
    for key, value in embedded_now.items():
        made_with = getattr(model.embedding, key.removeprefix("embed."))
        if made_with != value:
            raise PipelineError(
                f"{path} was fitted on vectors made with {key} {made_with!r} "
                f"but params.yaml names {value!r}; set {key} back or refit with 'dvc repro'"
            )
    digest = hashlib.sha256(spec_file.read_bytes()).hexdigest()
    if digest != model.customers.dataset_file_sha256:
        raise PipelineError(
            f"{spec_file} has changed since {path} was fitted (sha256 "
            f"{model.customers.dataset_file_sha256[:12]}... then, {digest[:12]}... now), so new "
            "customers may be read and written otherwise; refit with 'dvc repro' or restore it"
        )


def new_texts(customers: pd.DataFrame, dataset: Dataset, model: SegmentModel) -> pd.DataFrame:
    """The customers' ids and texts, written with the number writing saved in the model (its band
    edges and words, never ones fitted on the new customers)."""
    writing = TextWriting.from_json(model.customers.text_writing, "the segment model's manifest")
    return write_texts(customers, dataset, writing)


def assign(customers: pd.DataFrame, encoder, dataset: Dataset, model: SegmentModel) -> pd.DataFrame:
    """Each customer's row of ``model.predict``, with its id first; the texts are ``new_texts``,
    embedded by ``encoder``, the embed stage's."""
    texts = new_texts(customers, dataset, model)["text"].tolist()
    predicted = model.predict(encoder.encode(texts))
    predicted.insert(0, CUSTOMER_ID, customers.index.to_numpy())
    return predicted


def assign_in_shards(
    customers: Iterable[pd.DataFrame],
    dataset: Dataset,
    model: SegmentModel,
    params: Params,
    work: Path,
) -> Iterator[pd.DataFrame]:
    """``assign``'s rows for the typed ``customers``, given in chunks, a shard of
    ``embed.shard_rows`` customers at a time, in order.

    The texts are written to ``work`` a chunk at a time and embedded into shards there by the embed
    stage's engine and settings (``embed.engine``; a killed run resumes from its last chunk), then
    each shard is predicted here or on Ray (``engine``). ``work`` must be where every Ray worker
    can read it.
    """
    texts = work / "texts.csv"
    write_csv_chunks(texts, (new_texts(chunk, dataset, model) for chunk in customers))
    rows, digest = scan_texts(texts)
    settings = params.embed
    encoder, device, batch_size = open_engine(params.model, settings)
    try:
        embed_to_shards(
            encoder,
            text_shards(texts, settings.shard_rows),
            -(-rows // settings.shard_rows),
            work / "embeddings",
            resume_folder(params.model, settings, device, batch_size, digest),
            settings.chunk_rows,
        )
    finally:
        encoder.close()
    predicted_shards = predict_customers(model, work / "embeddings", params.engine)
    with read_csv(texts, usecols=[CUSTOMER_ID], chunksize=settings.shard_rows) as shard_ids:
        for predicted, ids in zip(predicted_shards, shard_ids, strict=True):
            yield predicted.drop(columns=ROW).assign(**{CUSTOMER_ID: ids[CUSTOMER_ID].to_numpy()})[
                [CUSTOMER_ID, *predicted.columns.drop(ROW)]
            ]
