"""Speed and scale: backend agreement, deduplication, resume after kill -9, fast silhouette."""

from __future__ import annotations

import json
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

from segmentation.artifacts import PipelineError, write_npy
from segmentation.config import DEFAULT_MODEL, validate_params
from segmentation.embedding import chunks as embed
from segmentation.embedding import encoders
from segmentation.embedding.shards import Shard, read_vectors, shard_file, write_index
from segmentation.evaluation import projection as project
from segmentation.evaluation import validity as scoring
from segmentation.model.sampling import MatrixRows
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


def embed_table(encoder, texts, output, resume, chunk_rows, shard_rows=1000, stream=None):
    shards = synthetic.in_shards(texts, shard_rows)
    return embed.embed_to_shards(
        encoder, shards, len(shards), output, resume, chunk_rows, stream=stream
    )


def test_each_distinct_text_is_embedded_once_and_scattered_back(texts, tmp_path):
    codes, uniques = embed.distinct_texts(texts)
    assert len(uniques) == 160 and [uniques[c] for c in codes] == texts
    encoder = CountingEncoder()
    summary = embed_table(encoder, texts, tmp_path / "m", tmp_path / "resume", chunk_rows=50)
    assert sorted(encoder.seen) == sorted(uniques)
    assert summary == {
        "rows": 200,
        "distinct": 160,
        "dimension": 8,
        "shards": 1,
        "shards_reused": 0,
        "chunks_embedded": 4,
        "chunks_reused": 0,
    }
    matrix = np.asarray(read_vectors(tmp_path / "m"))
    np.testing.assert_array_equal(matrix, CountingEncoder().encode(texts))
    assert not (tmp_path / "resume").exists()


def test_texts_are_embedded_once_per_shard_and_the_shards_hold_the_rows_in_order(texts, tmp_path):
    encoder = CountingEncoder()
    summary = embed_table(encoder, texts, tmp_path / "m", tmp_path / "r", 50, shard_rows=64)
    shard_texts = [texts[start : start + 64] for start in range(0, 200, 64)]
    assert sorted(encoder.seen) == sorted(text for part in shard_texts for text in set(part))
    assert summary["shards"] == 4 and summary["distinct"] == sum(len(set(p)) for p in shard_texts)
    index = json.loads((tmp_path / "m" / "index.json").read_text())
    assert [
        (s["file"], s["start"], s["rows"], s["first_id"], s["last_id"]) for s in index["shards"]
    ] == [
        ("shard-000000.npy", 0, 64, "0", "63"),
        ("shard-000001.npy", 64, 64, "64", "127"),
        ("shard-000002.npy", 128, 64, "128", "191"),
        ("shard-000003.npy", 192, 8, "192", "199"),
    ]
    matrix = read_vectors(tmp_path / "m")
    np.testing.assert_array_equal(np.asarray(matrix), CountingEncoder().encode(texts))
    np.testing.assert_array_equal(matrix[60:130], CountingEncoder().encode(texts[60:130]))


def test_shards_written_out_of_order_are_read_back_in_row_order(tmp_path):
    vectors = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    bounds = [(0, 20), (20, 30), (30, 50)]
    shards = []
    for number in (2, 0, 1):  # written last shard first, and listed that way
        start, stop = bounds[number]
        write_npy(shard_file(tmp_path, number), vectors[start:stop])
        shards.append(
            Shard(f"shard-{number:06d}.npy", start, stop - start, str(start), str(stop - 1))
        )
    write_index(tmp_path, shards, 3)
    matrix = read_vectors(tmp_path)
    assert matrix.shape == (50, 3)
    np.testing.assert_array_equal(np.asarray(matrix), vectors)
    np.testing.assert_array_equal(matrix[15:35], vectors[15:35])
    picked = np.array([45, 3, 21, 3])
    np.testing.assert_array_equal(MatrixRows(matrix).take(picked), vectors[picked])
    write_index(tmp_path, [shards[1], shards[0]], 3)  # the middle shard left out: a gap
    with pytest.raises(PipelineError, match=r"index.json: shard-000002.npy starts at row 30, "):
        read_vectors(tmp_path)


def test_a_run_killed_with_sigkill_resumes_to_the_identical_shards(texts, tmp_path):
    """A real subprocess embeds two shards in chunks of 10 texts with the onnx backend and is
    killed with SIGKILL."""
    script = (
        "import sys, pathlib\n"
        "from segmentation.embedding import chunks as embed, encoders\n"
        "from segmentation.testing.synthetic import in_shards\n"
        "texts = pathlib.Path(sys.argv[1]).read_text().split('\\x1e')\n"
        "encoder = encoders.make_encoder(encoders.DEFAULT_MODEL, 'onnx', 'cpu', 4)\n"
        "embed.embed_to_shards(encoder, in_shards(texts, 100), 2, "
        "pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), 10)\n"
    )
    (tmp_path / "texts").write_text("\x1e".join(texts))
    resume = tmp_path / "resume"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "texts"),
            str(tmp_path / "killed"),
            str(resume),
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    while (
        len(list(resume.glob("shard-*.npy"))) < 1 or len(list(resume.glob("chunks-*/chunk-*"))) < 2
    ):
        assert child.poll() is None, "the embedding finished before it could be killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and not (tmp_path / "killed").exists()
    completed = len(list(resume.glob("chunks-*/chunk-*.npy")))

    encoder = encoders.make_encoder(DEFAULT_MODEL, "onnx", "cpu", 4)
    resumed = embed_table(encoder, texts, tmp_path / "resumed", resume, 10, shard_rows=100)
    assert resumed["shards_reused"] == 1 and resumed["chunks_reused"] == completed >= 2
    embed_table(encoder, texts, tmp_path / "straight", tmp_path / "fresh", 10, shard_rows=100)
    for name in ("index.json", "shard-000000.npy", "shard-000001.npy"):
        assert (tmp_path / "resumed" / name).read_bytes() == (
            tmp_path / "straight" / name
        ).read_bytes()


def test_a_table_of_one_shard_is_the_plain_npy_of_its_matrix(tmp_path):
    embed_table(CountingEncoder(), ["a", "b", "a"], tmp_path / "m", tmp_path / "r", chunk_rows=1)
    expected = tmp_path / "expected.npy"
    np.save(expected, CountingEncoder().encode(["a", "b", "a"]))
    assert (tmp_path / "m" / "shard-000000.npy").read_bytes() == expected.read_bytes()


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
