"""Customer texts to a unit-norm float32 matrix, resumably: each distinct text embedded once, in
chunks saved as they finish under a resume folder keyed by everything that changes the vectors,
then scattered back to every customer into a memory-mapped ``.npy``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.artifacts import (
    atomic_path,
    write_npy,
)
from segmentation.config import EmbedParams
from segmentation.embedding.encoders import (
    cache_root,
    fingerprint,
    make_encoder,
    package_versions,
    resolve_batch_size,
    resolve_device,
    resolve_model,
)

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
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def chunk_file(folder: Path, index: int) -> Path:
    return folder / f"chunk-{index:06d}.npy"


def duration(seconds: float) -> str:
    """``12 s``, ``1 min 51 s``, ``2 h 5 min``: a time left, to the precision that matters."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Progress:
    """Speed and time left after each chunk: a log line per chunk, or a bar on a terminal."""

    def __init__(self, chunks: int, texts: int, chunks_done: int, texts_done: int, stream=None):
        stream = stream or sys.stderr
        self.chunks, self.texts = chunks, texts
        self.chunks_done, self.texts_done = chunks_done, texts_done
        self.embedded_now = 0
        self.started = time.perf_counter()
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=texts,
                initial=texts_done,
                unit=" texts",
                desc="embedding",
                file=stream,
                dynamic_ncols=True,
            )

    def advance(self, rows: int) -> None:
        self.chunks_done += 1
        self.texts_done += rows
        self.embedded_now += rows
        if self.bar is not None:
            self.bar.update(rows)
            return
        rate = self.embedded_now / max(time.perf_counter() - self.started, 1e-9)
        log.info(
            "chunk %d/%d: %s of %s distinct texts, %s texts/s, about %s left",
            self.chunks_done,
            self.chunks,
            f"{self.texts_done:,}",
            f"{self.texts:,}",
            f"{rate:,.0f}",
            duration((self.texts - self.texts_done) / rate),
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def embed_chunks(
    encoder, texts: list[str], folder: Path, chunk_rows: int, stream=None
) -> tuple[int, int]:
    """Embed ``texts`` chunk by chunk into ``folder``, skipping chunks a previous run completed.

    Returns (chunks embedded now, chunks reused). A chunk file is written atomically, so one that
    exists is complete. ``encoder`` streams the chunks through ``encode_chunks`` when it has one
    (the torch and Ray encoders overlap one chunk's work with the next); any ``encode`` does.
    """
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [
        (start, min(start + chunk_rows, len(texts))) for start in range(0, len(texts), chunk_rows)
    ]
    pending = [index for index in range(len(bounds)) if not chunk_file(folder, index).exists()]
    reused = len(bounds) - len(pending)
    texts_reused = len(texts) - sum(bounds[index][1] - bounds[index][0] for index in pending)
    progress = Progress(len(bounds), len(texts), reused, texts_reused, stream)
    chunks = (texts[slice(*bounds[index])] for index in pending)
    stream_chunks = getattr(encoder, "encode_chunks", None)
    vectors_of_chunks = stream_chunks(chunks) if stream_chunks else map(encoder.encode, chunks)
    try:
        for index, vectors in zip(pending, vectors_of_chunks):
            write_npy(chunk_file(folder, index), vectors)
            release_freed_memory()
            progress.advance(len(vectors))
    finally:
        progress.close()
    return len(pending), reused


def assemble(codes: np.ndarray, folder: Path, chunk_rows: int, output: Path) -> int:
    """Scatter the chunk vectors back to every row into a memory-mapped ``.npy``;
    returns the dimension."""
    chunks = int(codes.max()) // chunk_rows + 1
    dimension = np.load(chunk_file(folder, 0), mmap_mode="r").shape[1]
    by_code = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_code], np.arange(chunks + 1) * chunk_rows)
    with atomic_path(output) as tmp:
        matrix = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(len(codes), dimension)
        )
        for index in range(chunks):
            rows = by_code[bounds[index] : bounds[index + 1]]
            matrix[rows] = np.load(chunk_file(folder, index))[codes[rows] - index * chunk_rows]
        matrix.flush()
        del matrix
    return int(dimension)


def embed_to_file(
    encoder,
    codes: np.ndarray,
    uniques: list[str],
    output: Path,
    folder: Path,
    chunk_rows: int,
    stream=None,
) -> dict[str, int]:
    """Embed the distinct texts (resuming from ``folder``) and write row ``i`` as
    ``uniques[codes[i]]``.

    The resume folder is removed once the matrix is in place.
    """
    done, reused = embed_chunks(encoder, uniques, folder, chunk_rows, stream)
    dimension = assemble(codes, folder, chunk_rows, output)
    shutil.rmtree(folder)
    return {
        "rows": len(codes),
        "distinct": len(uniques),
        "dimension": dimension,
        "chunks_embedded": done,
        "chunks_reused": reused,
    }


def resume_folder(
    model: str, settings: EmbedParams, device: str, batch_size: int, uniques_digest: str
) -> Path:
    """The chunks' folder, keyed by everything that changes the vectors (``batch_size`` and
    ``device`` as resolved: ``auto`` and the size it stands for share their chunks)."""
    key = fingerprint(
        {
            "model": model,
            "location": resolve_model(model),
            "engine": settings.engine,
            "backend": settings.backend,
            "precision": settings.precision,
            "device": device,
            "batch_size": batch_size,
            "chunk_rows": settings.chunk_rows,
            "texts": uniques_digest,
            **package_versions(),
        }
    )
    return cache_root() / "embed-resume" / key


def open_engine(model: str, settings: EmbedParams):
    """The encoder that ``embed.engine`` names, with the device and batch size it resolved."""
    if settings.engine == "ray":
        from segmentation.embedding.ray_engine import RayEncoder

        encoder = RayEncoder(model, settings)
        return encoder, encoder.device, encoder.batch_size
    return local_encoder(model, settings)


def local_encoder(model: str, settings: EmbedParams):
    """The encoder ``embed`` runs in this process, with the device and batch size it resolved."""
    device = resolve_device(settings.device, settings.backend)
    batch_size = resolve_batch_size(settings.batch_size, device)
    encoder = make_encoder(
        model,
        settings.backend,
        device,
        batch_size,
        settings.precision,
        settings.tokenizer_processes,
    )
    return encoder, device, batch_size
