"""Customer texts to a unit-norm float32 matrix in row shards, resumably.

The texts file is read ``embed.shard_rows`` customers at a time. Within a shard each distinct text
is embedded once, in chunks saved as they finish, and its vector is scattered back to every
customer of the shard who has it, into the shard's memory-mapped ``.npy``. Chunks and shards live
in a resume folder keyed by everything that changes the vectors, so a killed run restarts from its
last complete chunk; the finished shards and their index are then moved into the stage's output.
The process (or Ray worker) that embeds a chunk writes its file, and the one that assembles a
shard writes it: no process holds more than one shard's texts or vectors.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, atomic_path, read_csv, write_npy
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
from segmentation.embedding.shards import Shard, shard_file, write_index

log = logging.getLogger("segments")


def distinct_texts(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the distinct texts, and those texts in order of first appearance."""
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object), sort=False)
    return codes.astype(np.int64), list(uniques)


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

    def __init__(
        self, label: str, chunks: int, texts: int, chunks_done: int, texts_done: int, stream=None
    ):
        stream = stream or sys.stderr
        self.label = label
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
                desc=f"embedding {self.label}",
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
            "%s, chunk %d/%d: %s of %s distinct texts, %s texts/s, about %s left",
            self.label,
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
    encoder, texts: list[str], folder: Path, chunk_rows: int, label: str, stream=None
) -> tuple[int, int]:
    """Embed ``texts`` chunk by chunk into ``folder``, skipping chunks a previous run completed.

    Returns (chunks embedded now, chunks reused). A chunk file is written atomically, so one that
    exists is complete. An encoder with ``write_chunks`` (the Ray engine) writes the files in its
    own workers; otherwise this process writes what ``encode_chunks`` streams back (the torch
    encoder overlaps one chunk's work with the next) or, failing that, what ``encode`` returns.
    """
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [
        (start, min(start + chunk_rows, len(texts))) for start in range(0, len(texts), chunk_rows)
    ]
    pending = [index for index in range(len(bounds)) if not chunk_file(folder, index).exists()]
    reused = len(bounds) - len(pending)
    texts_reused = len(texts) - sum(bounds[index][1] - bounds[index][0] for index in pending)
    progress = Progress(label, len(bounds), len(texts), reused, texts_reused, stream)
    pending_chunks = [
        (chunk_file(folder, index), texts[slice(*bounds[index])]) for index in pending
    ]
    try:
        for rows in write_chunks(encoder, pending_chunks):
            release_freed_memory()
            progress.advance(rows)
    finally:
        progress.close()
    return len(pending), reused


def write_chunks(encoder, pending_chunks: list[tuple[Path, list[str]]]) -> Iterator[int]:
    """Embed each (file, texts) pair into its file; yields each chunk's rows as it is written."""
    workers_write = getattr(encoder, "write_chunks", None)
    if workers_write is not None:
        yield from workers_write(pending_chunks)
        return
    stream_chunks = getattr(encoder, "encode_chunks", None)
    chunks = (texts for _, texts in pending_chunks)
    vectors_of_chunks = stream_chunks(chunks) if stream_chunks else map(encoder.encode, chunks)
    for (path, _), vectors in zip(pending_chunks, vectors_of_chunks):
        write_npy(path, vectors)
        yield len(vectors)


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


def embed_shard(
    encoder, texts: list[str], folder: Path, number: int, chunk_rows: int, label: str, stream=None
) -> dict[str, int]:
    """Embed one shard's distinct texts (resuming from its chunk folder) and write its row ``i``
    as the vector of ``texts[i]`` to ``shard-<number>.npy`` in ``folder``."""
    codes, uniques = distinct_texts(texts)
    chunks = folder / f"chunks-{number:06d}"
    done, reused = embed_chunks(encoder, uniques, chunks, chunk_rows, label, stream)
    assemble_shard = getattr(encoder, "assemble", assemble)
    dimension = assemble_shard(codes, chunks, chunk_rows, shard_file(folder, number))
    shutil.rmtree(chunks)
    return {
        "distinct": len(uniques),
        "dimension": dimension,
        "chunks_embedded": done,
        "chunks_reused": reused,
    }


def embed_to_shards(
    encoder,
    shards: Iterable[tuple[list[str], list[str]]],
    count: int,
    output: Path,
    folder: Path,
    chunk_rows: int,
    stream=None,
) -> dict[str, int]:
    """Embed each of the ``count`` shards of (customer ids, texts) into ``folder``, skipping shards
    a previous run completed, then move the shards and their index into ``output``.

    Each text is embedded once per shard and copied to every customer of the shard who has it.
    ``folder`` is keyed by the texts, so a shard file in it is one of these shards, complete.
    """
    summary = {
        "rows": 0,
        "distinct": 0,
        "dimension": 0,
        "shards_reused": 0,
        "chunks_embedded": 0,
        "chunks_reused": 0,
    }
    index, started = [], time.perf_counter()
    for number, (ids, texts) in enumerate(shards):
        path = shard_file(folder, number)
        label = f"shard {number + 1}/{count}"
        if path.exists():
            summary["shards_reused"] += 1
            distinct = len(distinct_texts(texts)[1])
            dimension = np.load(path, mmap_mode="r").shape[1]
        else:
            embedded = embed_shard(encoder, texts, folder, number, chunk_rows, label, stream)
            distinct, dimension = embedded["distinct"], embedded["dimension"]
            summary["chunks_embedded"] += embedded["chunks_embedded"]
            summary["chunks_reused"] += embedded["chunks_reused"]
        index.append(Shard(path.name, summary["rows"], len(ids), ids[0], ids[-1]))
        summary["rows"] += len(ids)
        summary["distinct"] += distinct
        summary["dimension"] = dimension
        if count > 1:
            left = (time.perf_counter() - started) / (number + 1) * (count - number - 1)
            log.info(
                "%s done: %s customers so far, about %s left",
                label,
                f"{summary['rows']:,}",
                duration(left),
            )
    write_index(folder, index, summary["dimension"])
    move_into_place(folder, output)
    return {**summary, "shards": len(index)}


def move_into_place(folder: Path, output: Path) -> None:
    """Replace ``output`` with ``folder`` (a rename on one file system, a copy across two)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.move(folder, staged)
    shutil.rmtree(output, ignore_errors=True)
    if output.exists():
        output.unlink()
    staged.rename(output)


def text_shards(path: Path, shard_rows: int) -> Iterator[tuple[list[str], list[str]]]:
    """The texts file's (customer ids, texts), ``shard_rows`` customers at a time."""
    with read_csv(path, usecols=[CUSTOMER_ID, "text"], chunksize=shard_rows) as shards:
        for shard in shards:
            yield shard[CUSTOMER_ID].tolist(), shard["text"].tolist()


def scan_texts(path: Path) -> tuple[int, str]:
    """The texts file's customers and a digest of its bytes, in one streaming pass."""
    digest, rows = hashlib.sha256(), 0
    with read_csv(path, usecols=[CUSTOMER_ID], chunksize=1 << 20) as chunks:
        rows = sum(len(chunk) for chunk in chunks)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            digest.update(block)
    return rows, digest.hexdigest()


def resume_folder(
    model: str, settings: EmbedParams, device: str, batch_size: int, texts_digest: str
) -> Path:
    """The chunks' and shards' folder, keyed by everything that changes the vectors
    (``batch_size`` and ``device`` as resolved: ``auto`` and the size it stands for share their
    chunks)."""
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
            "shard_rows": settings.shard_rows,
            "texts": texts_digest,
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
