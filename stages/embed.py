"""Stage 3: embed every customer text with a sentence-transformers model (unit-norm float32).

Each distinct text is embedded once and scattered back to every customer who has it. The distinct
texts are embedded in chunks, each saved as it finishes in a resume folder (not a DVC output, which
DVC would delete before a rerun) keyed by everything that changes the vectors: a killed run
restarts from its last complete chunk. ``embed.engine`` runs the encoder in this process
(``local``) or in a pool of Ray actors (``ray``, stages/ray_engine.py). The matrix is assembled
chunk by chunk into a memory-mapped ``.npy``, so memory holds one chunk, not the whole matrix.
"""

from __future__ import annotations

from segmentation.artifacts import (
    PipelineError,
    read_csv,
    run,
    write_json,
    write_metrics,
)
from segmentation.config import layout, load_params
from segmentation.embedding.chunks import (
    distinct_texts,
    embed_to_file,
    log,
    open_engine,
    resume_folder,
    texts_digest,
)


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    texts = read_csv(paths.texts)["text"].tolist()
    if not texts:
        raise PipelineError(f"{paths.texts}: has no texts; rerun 'dvc repro serialize'")
    settings = params.embed
    codes, uniques = distinct_texts(texts)
    encoder, device, batch_size = open_engine(params.model, settings)
    try:
        folder = resume_folder(params.model, settings, device, batch_size, texts_digest(uniques))
        summary = embed_to_file(
            encoder, codes, uniques, paths.embeddings, folder, settings.chunk_rows
        )
    finally:
        encoder.close()
    write_json(
        paths.embedding_info,
        {
            "model": params.model,
            "dimension": summary["dimension"],
            "rows": len(texts),
            "engine": settings.engine,
            "backend": settings.backend,
            "device": device,
            "precision": settings.precision,
            "batch_size": batch_size,
        },
    )
    write_metrics(
        paths.metrics / "embed.json",
        {
            "embedded_rows": len(texts),
            "embedding_dimension": summary["dimension"],
            "distinct_texts": summary["distinct"],
        },
    )
    log.info(
        "embedded %d texts (%d distinct, %d chunks reused) into %d dimensions with %s "
        "on %s/%s/%s (%s engine)",
        len(texts),
        summary["distinct"],
        summary["chunks_reused"],
        summary["dimension"],
        params.model,
        settings.backend,
        device,
        settings.precision,
        settings.engine,
    )


if __name__ == "__main__":
    run(main)
