"""New customers placed with a saved segment model, written and embedded as its customers were."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.config import Params
from segmentation.data.dataset import Dataset
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


def assign(customers: pd.DataFrame, encoder, dataset: Dataset, model: SegmentModel) -> pd.DataFrame:
    """Each customer's row of ``model.predict``, with its id first.

    The texts are written with the number writing saved in the model (its band edges and words,
    never ones fitted on the new customers), and embedded by ``encoder``, the embed stage's.
    """
    writing = TextWriting.from_json(model.customers.text_writing, "the segment model's manifest")
    texts = write_texts(customers, dataset, writing)["text"].tolist()
    predicted = model.predict(encoder.encode(texts))
    predicted.insert(0, CUSTOMER_ID, customers.index.to_numpy())
    return predicted
