"""Stage 3: embed every customer text with a sentence-transformers model (unit-norm float32).

The texts are read ``embed.shard_rows`` customers at a time; each shard's distinct texts are
embedded once and scattered back to its customers, into one ``.npy`` shard of
``data/<name>/interim/embeddings/`` with an ``index.json``. Chunks and shards are saved as they
finish in a resume folder (not a DVC output, which DVC would delete before a rerun) keyed by
everything that changes the vectors: a killed run restarts from its last complete chunk.
``embed.engine`` runs the encoder in this process (``local``) or in a pool of Ray actors (``ray``),
whose workers write the chunks and shards themselves.
"""

from __future__ import annotations

from segmentation.artifacts import (
    PipelineError,
    run,
    write_json,
    write_metrics,
)
from segmentation.config import layout, load_params
from segmentation.embedding.chunks import (
    embed_to_shards,
    log,
    open_engine,
    resume_folder,
    scan_texts,
    text_shards,
)


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    settings = params.embed
    rows, digest = scan_texts(paths.texts)
    if not rows:
        raise PipelineError(f"{paths.texts}: has no texts; rerun 'dvc repro serialize'")
    encoder, device, batch_size = open_engine(params.model, settings)
    try:
        folder = resume_folder(params.model, settings, device, batch_size, digest)
        summary = embed_to_shards(
            encoder,
            text_shards(paths.texts, settings.shard_rows),
            -(-rows // settings.shard_rows),
            paths.embeddings,
            folder,
            settings.chunk_rows,
        )
    finally:
        encoder.close()
    write_json(
        paths.embedding_info,
        {
            "model": params.model,
            "dimension": summary["dimension"],
            "rows": rows,
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
            "embedded_rows": rows,
            "embedding_dimension": summary["dimension"],
            "distinct_texts": summary["distinct"],
        },
    )
    log.info(
        "embedded %d texts (%d distinct, %d chunks reused) into %d shard(s) of %d dimensions "
        "with %s on %s/%s/%s (%s engine)",
        rows,
        summary["distinct"],
        summary["chunks_reused"],
        summary["shards"],
        summary["dimension"],
        params.model,
        settings.backend,
        device,
        settings.precision,
        settings.engine,
    )


if __name__ == "__main__":
    run(main)
