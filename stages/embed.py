"""Stage 3: embed every customer text with a sentence-transformers model (unit-norm float32).

Each distinct text is embedded once and scattered back to every customer who has it. The distinct
texts are embedded in chunks, each saved as it finishes in a resume folder (not a DVC output, which
DVC would delete before a rerun) keyed by everything that changes the vectors: a killed run
restarts from its last complete chunk. The matrix is assembled chunk by chunk into a memory-mapped
``.npy``, so memory holds one chunk, not the whole matrix.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from stages.artifacts import PipelineError, atomic_path, read_csv, run, write_json, write_metrics, write_npy
from stages.config import layout, load_params
from stages.encoders import cache_root, fingerprint, make_encoder, package_versions, resolve_device, resolve_model

log = logging.getLogger("segments")


def distinct_texts(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the distinct texts, and those texts in order of first appearance."""
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object), sort=False)
    return codes.astype(np.int64), list(uniques)


def texts_digest(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def release_freed_memory() -> None:
    """Return the heap that a chunk's inference freed to the OS.

    glibc keeps freed blocks in per-thread arenas, which fragment over thousands of batches: without
    this the process grew by ~1 GB over 200,000 texts (torch backend, 2 threads); a no-op off glibc.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def chunk_file(folder: Path, index: int) -> Path:
    return folder / f"chunk-{index:06d}.npy"


def embed_chunks(encoder, texts: list[str], folder: Path, chunk_rows: int) -> tuple[int, int]:
    """Embed ``texts`` chunk by chunk into ``folder``, skipping chunks a previous run completed.

    Returns (chunks embedded now, chunks reused). A chunk file is written atomically, so one that
    exists is complete.
    """
    folder.mkdir(parents=True, exist_ok=True)
    done = reused = 0
    for index, start in enumerate(range(0, len(texts), chunk_rows)):
        target = chunk_file(folder, index)
        if target.exists():
            reused += 1
            continue
        write_npy(target, encoder.encode(texts[start:start + chunk_rows]))
        release_freed_memory()
        done += 1
        log.info("embedded chunk %d (%d of %d distinct texts)", index, min(start + chunk_rows, len(texts)), len(texts))
    return done, reused


def assemble(codes: np.ndarray, folder: Path, chunk_rows: int, output: Path) -> int:
    """Scatter the chunk vectors back to every row into a memory-mapped ``.npy``; returns the dimension."""
    chunks = int(codes.max()) // chunk_rows + 1
    dimension = np.load(chunk_file(folder, 0), mmap_mode="r").shape[1]
    by_code = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_code], np.arange(chunks + 1) * chunk_rows)
    with atomic_path(output) as tmp:
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(codes), dimension))
        for index in range(chunks):
            rows = by_code[bounds[index]:bounds[index + 1]]
            matrix[rows] = np.load(chunk_file(folder, index))[codes[rows] - index * chunk_rows]
        matrix.flush()
        del matrix
    return int(dimension)


def embed_to_file(encoder, codes: np.ndarray, uniques: list[str], output: Path, folder: Path, chunk_rows: int) -> dict[str, int]:
    """Embed the distinct texts (resuming from ``folder``) and write row ``i`` as ``uniques[codes[i]]``.

    The resume folder is removed once the matrix is in place.
    """
    done, reused = embed_chunks(encoder, uniques, folder, chunk_rows)
    dimension = assemble(codes, folder, chunk_rows, output)
    shutil.rmtree(folder)
    return {"rows": len(codes), "distinct": len(uniques), "dimension": dimension, "chunks_embedded": done, "chunks_reused": reused}


def resume_folder(model: str, backend: str, device: str, batch_size: int, chunk_rows: int, uniques_digest: str) -> Path:
    key = fingerprint({
        "model": model, "location": resolve_model(model), "backend": backend, "device": device,
        "batch_size": batch_size, "chunk_rows": chunk_rows, "texts": uniques_digest, **package_versions(),
    })
    return cache_root() / "embed-resume" / key


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    texts = read_csv(paths.texts)["text"].tolist()
    if not texts:
        raise PipelineError(f"{paths.texts}: has no texts; rerun 'dvc repro serialize'")
    settings = params.embed
    device = resolve_device(settings.device, settings.backend)
    encoder = make_encoder(params.model, settings.backend, device, settings.batch_size)
    codes, uniques = distinct_texts(texts)
    folder = resume_folder(params.model, settings.backend, device, settings.batch_size, settings.chunk_rows,
                           texts_digest(uniques))
    summary = embed_to_file(encoder, codes, uniques, paths.embeddings, folder, settings.chunk_rows)
    write_json(paths.embedding_info, {"model": params.model, "dimension": summary["dimension"], "rows": len(texts),
                                "backend": settings.backend, "device": device})
    write_metrics(
        paths.metrics / "embed.json",
        {"embedded_rows": len(texts), "embedding_dimension": summary["dimension"], "distinct_texts": summary["distinct"]},
    )
    log.info("embedded %d texts (%d distinct, %d chunks reused) into %d dimensions with %s on %s/%s",
             len(texts), summary["distinct"], summary["chunks_reused"], summary["dimension"], params.model,
             settings.backend, device)


if __name__ == "__main__":
    run(main)
