"""Speed and scale: backend agreement, deduplication, resume after kill -9, fast silhouette."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from segmentation.config import DEFAULT_MODEL, validate_params
from segmentation.embedding import chunks as embed
from segmentation.embedding import encoders
from segmentation.evaluation import projection as project
from segmentation.evaluation import validity as scoring
from segmentation.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def texts(bank):
    frame = synthetic.texts(160, 3, bank)
    return frame["text"].tolist() + frame["text"].tolist()[:40]  # 40 customers share a text


# --- backends -----------------------------------------------------------------------------------


def test_backend_and_device_params_are_validated():
    params = validate_params({})
    assert (params.embed.backend, params.embed.device) == ("torch", "auto")
    for bad, key in (
        ({"backend": "tensorflow"}, "embed.backend"),
        ({"device": "tpu"}, "embed.device"),
    ):
        with pytest.raises(Exception, match=key):
            validate_params({"embed": bad})


def test_onnx_gives_the_torch_vectors_and_int8_nearly(model, texts):
    sample = texts[:120]
    reference = encoders.TorchEncoder(model, batch_size=16).encode(sample)
    onnx = encoders.make_encoder(DEFAULT_MODEL, "onnx", "cpu", batch_size=16).encode(sample)
    assert onnx.shape == reference.shape and onnx.dtype == np.float32
    assert np.abs(np.einsum("ij,ij->i", onnx, reference) - 1).max() <= 1e-5
    int8 = encoders.make_encoder(DEFAULT_MODEL, "onnx-int8", "cpu", batch_size=16).encode(sample)
    cosine = np.einsum("ij,ij->i", int8, reference)
    assert (
        cosine.min() > 0.98 and cosine.max() < 1 - 1e-5
    )  # close, but measurably not the same vectors


def test_onnx_export_is_byte_identical_and_cached(model, tmp_path):
    cached = encoders.onnx_model_file(model, DEFAULT_MODEL, int8=False)
    assert cached.is_relative_to(encoders.cache_root())
    stamp = cached.stat().st_mtime_ns
    assert (
        encoders.onnx_model_file(model, DEFAULT_MODEL, int8=False) == cached
        and cached.stat().st_mtime_ns == stamp
    )
    encoders.export_onnx(model, tmp_path / "again.onnx")
    assert (tmp_path / "again.onnx").read_bytes() == cached.read_bytes()


def test_cuda_that_is_not_there_is_refused_and_auto_falls_back():
    assert encoders.resolve_device("cpu", "onnx") == "cpu"
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert encoders.resolve_device("auto", "onnx") == "cpu"
        with pytest.raises(Exception, match="embed.device is 'cuda'"):
            encoders.resolve_device("cuda", "onnx")


# --- deduplication and chunks -------------------------------------------------------------------


class CountingEncoder:
    """Deterministic fake vectors from the text bytes; records every text it is asked to embed."""

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        return np.array(
            [np.frombuffer(text.encode().ljust(8)[:8], dtype=np.uint8) for text in texts],
            dtype=np.float32,
        )


def test_each_distinct_text_is_embedded_once_and_scattered_back(texts, tmp_path):
    codes, uniques = embed.distinct_texts(texts)
    assert len(uniques) == 160 and [uniques[c] for c in codes] == texts
    encoder = CountingEncoder()
    summary = embed.embed_to_file(
        encoder, codes, uniques, tmp_path / "m.npy", tmp_path / "resume", chunk_rows=50
    )
    assert sorted(encoder.seen) == sorted(uniques)
    assert summary == {
        "rows": 200,
        "distinct": 160,
        "dimension": 8,
        "chunks_embedded": 4,
        "chunks_reused": 0,
    }
    matrix = np.load(tmp_path / "m.npy")
    np.testing.assert_array_equal(matrix, CountingEncoder().encode(texts))
    assert not (tmp_path / "resume").exists()


def test_a_run_killed_with_sigkill_resumes_to_the_identical_matrix(texts, tmp_path):
    """A real subprocess embeds chunks of 10 texts with the onnx backend
    and is killed with SIGKILL."""
    script = (
        "import sys, pathlib\n"
        "from segmentation.embedding import chunks as embed, encoders\n"
        "texts = pathlib.Path(sys.argv[1]).read_text().split('\\x1e')\n"
        "codes, uniques = embed.distinct_texts(texts)\n"
        "encoder = encoders.make_encoder(encoders.DEFAULT_MODEL, 'onnx', 'cpu', 4)\n"
        "embed.embed_to_file("
        "encoder, codes, uniques, pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), 10"
        ")\n"
    )
    (tmp_path / "texts").write_text("\x1e".join(texts))
    resume = tmp_path / "resume"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "texts"),
            str(tmp_path / "killed.npy"),
            str(resume),
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    while len(list(resume.glob("chunk-*.npy"))) < 3:
        assert child.poll() is None, "the embedding finished before it could be killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and not (tmp_path / "killed.npy").exists()
    completed = len(list(resume.glob("chunk-*.npy")))

    codes, uniques = embed.distinct_texts(texts)
    encoder = encoders.make_encoder(DEFAULT_MODEL, "onnx", "cpu", 4)
    resumed = embed.embed_to_file(encoder, codes, uniques, tmp_path / "resumed.npy", resume, 10)
    assert resumed["chunks_reused"] == completed >= 3
    assert resumed["chunks_embedded"] == 16 - completed
    embed.embed_to_file(encoder, codes, uniques, tmp_path / "straight.npy", tmp_path / "fresh", 10)
    assert (tmp_path / "resumed.npy").read_bytes() == (tmp_path / "straight.npy").read_bytes()


def test_the_memory_mapped_matrix_is_a_plain_npy(tmp_path):
    codes, uniques = embed.distinct_texts(["a", "b", "a"])
    embed.embed_to_file(
        CountingEncoder(), codes, uniques, tmp_path / "m.npy", tmp_path / "r", chunk_rows=1
    )
    expected = tmp_path / "expected.npy"
    np.save(expected, CountingEncoder().encode(["a", "b", "a"]))
    assert (tmp_path / "m.npy").read_bytes() == expected.read_bytes()


# --- silhouette ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spread():
    """More rows than one block, unit vectors like the embeddings, some exact duplicates."""
    vectors, truth = make_blobs(
        n_samples=4500, centers=6, n_features=24, cluster_std=4.0, random_state=2
    )
    vectors[100:150] = vectors[0]
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return vectors, truth


def test_fast_silhouette_equals_sklearn_for_several_labelings_at_once(spread):
    vectors, truth = spread
    rng = np.random.default_rng(0)
    singleton = truth.copy()
    singleton[7] = 99  # a one-customer cluster: sklearn scores it 0
    labelings = [truth, rng.integers(0, 9, len(truth)), singleton, np.where(truth < 3, "a", "b")]
    fast = scoring.exact_silhouettes(vectors, labelings)
    for value, labels in zip(fast, labelings):
        assert abs(value - silhouette_score(vectors, labels)) <= 1e-6


def test_fast_silhouette_refuses_a_single_cluster(spread):
    with pytest.raises(ValueError, match="2 to n_samples - 1 clusters"):
        scoring.exact_silhouettes(spread[0], [np.zeros(len(spread[0]), dtype=int)])


def test_sampled_silhouette_is_seeded_and_its_interval_holds_the_exact_value(spread):
    vectors, truth = spread
    exact = scoring.exact_silhouettes(vectors, [truth])[0]
    ((estimate, half_width),) = scoring.sampled_silhouettes(vectors, [truth], rows=600, seed=5)
    assert 0 < half_width < 0.05 and abs(estimate - exact) <= half_width
    assert scoring.sampled_silhouettes(vectors, [truth], rows=600, seed=5) == [
        (estimate, half_width)
    ]
    (metrics,) = scoring.cluster_metrics(vectors, [truth], silhouette_max_rows=600, seed=5)
    assert (metrics["silhouette"], metrics["silhouette_ci95"], metrics["silhouette_sampled"]) == (
        estimate,
        half_width,
        1,
    )


# --- t-SNE ----------------------------------------------------------------------------------------


def test_opentsne_map_is_byte_identical_across_runs(spread):
    vectors = spread[0][:1200]  # above 1,000 rows openTSNE uses its seeded approximate neighbours
    first = project.tsne_projection(vectors, perplexity=30, max_iter=300, seed=1)
    assert first.shape == (1200, 2) and np.isfinite(first).all()
    assert (
        first.tobytes()
        == project.tsne_projection(vectors, perplexity=30, max_iter=300, seed=1).tobytes()
    )


def test_silhouette_leaves_a_float64_input_untouched():
    vectors = np.random.default_rng(0).normal(size=(60, 5)) + 3.0
    before = vectors.copy()
    scoring.exact_silhouettes(vectors, [np.arange(60) % 3])
    scoring.sampled_silhouettes(vectors, [np.arange(60) % 3], rows=20, seed=0)
    assert np.array_equal(vectors, before)
