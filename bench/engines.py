"""Embedding engines on this machine: speed ratios against a baseline measured in the same run.

    python bench/engines.py feed [--texts N] [--device cuda]  # fed encoder vs sentence-transformers
    python bench/engines.py ray [--texts N]         # Ray actors vs the local engine at equal cores
    python bench/engines.py capacity [--texts N]    # texts/s per core (fp32, bf16), projected times
    python bench/engines.py precision               # bf16 vs fp32 on the full data

Run from the repository root. The texts are the distinct customer texts of
``data/bank/interim/texts.csv`` (``dvc repro serialize@bank``), in their order of first appearance.
``precision`` runs the embed stage in scratch project copies (fp32, unless ``--fp32-matrix`` and
``--fp32-seconds`` name a finished default run, and bf16) and refits ECOD (contamination 0.1)
and KMeans (k = 5, n_init 10, seed 42) on each. Each command prints its ratios with PASS/FAIL
where there is a target; the machine is shared, so the wall times move with its load: the
ratios come from runs interleaved in one process.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import adjusted_rand_score

from segmentation import cluster
from segmentation.config import DEFAULT_MODEL, layout, validate_params
from segmentation.embedding import chunks as embed
from segmentation.embedding import ray_engine
from segmentation.embedding.encoders import TorchEncoder, load_model, resolve_tokenizer_processes
from segmentation.embedding.shards import read_vectors
from segmentation.model import (
    kmeans,
    outliers,
)
from segmentation.testing.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]

STAGE_LINE = re.compile(r"stage embed finished in ([\d.]+) s")
DATASET = "bank"
TEXTS, EMBEDDINGS = layout(DATASET).texts, layout(DATASET).embeddings
# The bank data: 42,070 distinct texts among 45,211 customers.
BANK_DISTINCT_SHARE = 42070 / 45211
# Measured in an earlier session on one H200 with the earlier code (the embed stage, device auto),
# not by this code: distinct texts/s.
EARLIER_H200 = {
    "earlier stage, batch 256 (measured)": 9_100,
    "target of this code, fp32 (not measured)": 30_000,
    "forward pass alone, fp32 (measured ceiling)": 41_000,
    "forward pass alone, bf16 (measured ceiling)": 69_000,
}


def distinct_texts(count: int | None) -> list[str]:
    if not TEXTS.exists():
        sys.exit(f"{TEXTS} is missing: run 'dvc repro serialize' first")
    uniques = embed.distinct_texts(pd.read_csv(TEXTS)["text"].tolist())[1]
    return uniques[:count] if count else uniques


def listed(values: list[float]) -> str:
    return " and ".join(f"{value:,.1f}" for value in values)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def worst_cosine_gap(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(np.einsum("ij,ij->i", first, second) - 1).max())


def feed(args) -> None:
    """Sentence-transformers' ``encode`` at batch 64 (the embed stage before the fed encoder)
    against ``TorchEncoder`` with its defaults on ``--device``, in alternating rounds (ABBA)."""
    import torch

    texts = distinct_texts(args.texts)
    model = load_model(DEFAULT_MODEL, args.device)
    encoder = TorchEncoder(
        model,
        "auto",
        tokenizer_processes=resolve_tokenizer_processes("auto", args.device),
        model_name=DEFAULT_MODEL,
    )
    runs = {
        "sentence-transformers encode": lambda: model.encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ),
        "fed TorchEncoder": lambda: encoder.encode(texts),
    }
    encoder.encode(
        texts[: encoder.batch_size]
    )  # first-call allocations (and tokenizer processes' start)
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    vectors = {}
    for name in [*runs, *reversed(runs)]:
        seconds, vectors[name] = timed(runs[name])
        speeds[name].append(len(texts) / seconds)
    encoder.close()
    print(
        f"{len(texts)} distinct texts on {args.device}; fed encoder: batch {encoder.batch_size}, "
        f"{encoder.lookahead // 2} tokenizer processes; {torch.get_num_threads()} torch threads"
    )
    for name, values in speeds.items():
        print(f"  {name}: {listed(values)} texts/s")
    baseline, fed = (statistics.mean(values) for values in speeds.values())
    same = (
        vectors["fed TorchEncoder"].tobytes() == vectors["sentence-transformers encode"].tobytes()
    )
    gap = worst_cosine_gap(*vectors.values())
    print(
        f"vectors: byte-identical {same}, max |dcos| {gap:.2e} -> {verdict(gap <= 1e-6)} "
        "(target <= 1e-6)"
    )
    print(
        f"speed: fed / encode = {fed / baseline:.3f} -> {verdict(fed / baseline >= 0.95)} "
        "(target: not slower; "
        "0.95 allows for a shared machine's noise)"
    )
    if args.device == "cuda":
        print(
            f"fed encoder on the GPU: {fed:,.0f} texts/s -> {verdict(fed >= 30_000)} "
            "(target >= 30,000, fp32)"
        )


def arrivals(chunks_written) -> list[float]:
    """The time at which each chunk's file was written."""
    started, times = time.perf_counter(), []
    for _ in chunks_written:
        times.append(time.perf_counter() - started)
    return times


def steady_rate(times: list[float], chunk_rows: int, warm: int) -> float:
    """Texts/s after the first ``warm`` chunks (model and actor start-up left out)."""
    return (len(times) - warm) * chunk_rows / (times[-1] - times[warm - 1])


def ray_overhead(args) -> None:
    """1 CPU actor vs the local engine with 1 torch thread; 2 actors of 1 thread vs 2 threads;
    each pair run twice in alternating order (ABBA), each writing its chunk files."""
    import torch

    chunk_rows = args.chunk_rows
    texts = distinct_texts(args.texts)
    texts = texts[: len(texts) // chunk_rows * chunk_rows]
    chunks = [texts[start : start + chunk_rows] for start in range(0, len(texts), chunk_rows)]
    work = Path(tempfile.mkdtemp(prefix="ray-overhead-"))

    def chunk_files() -> list[tuple[Path, list[str]]]:
        folder = Path(tempfile.mkdtemp(dir=work))
        return [(embed.chunk_file(folder, index), chunk) for index, chunk in enumerate(chunks)]

    model = load_model(DEFAULT_MODEL)
    cluster.start_ray(num_cpus=2)
    for cores in (1, 2):
        torch.set_num_threads(cores)
        settings = validate_params({"embed": {"engine": "ray", "ray_actors": cores}}).embed
        engines = {
            "local": (lambda: embed.write_chunks(TorchEncoder(model, 64), chunk_files()), 1),
            "Ray": (
                lambda settings=settings: ray_engine.RayEncoder(
                    DEFAULT_MODEL, settings
                ).write_chunks(chunk_files()),
                cores,
            ),
        }
        rates: dict[str, list[float]] = {name: [] for name in engines}
        for name in ("local", "Ray", "Ray", "local"):
            start, warm = engines[name]
            rates[name].append(steady_rate(arrivals(start()), chunk_rows, warm))
        local_rate, ray_rate = statistics.mean(rates["local"]), statistics.mean(rates["Ray"])
        overhead = local_rate / ray_rate - 1
        print(
            f"{cores} core(s): local {listed(rates['local'])} texts/s, "
            f"Ray {listed(rates['Ray'])} texts/s; steady-state overhead "
            f"{overhead:+.1%} -> {verdict(overhead <= 0.10)} (target <= 10%)"
        )
    print(
        f"{len(texts)} distinct texts in chunks of {chunk_rows}; model loads, Ray's start and "
        "the actors' "
        "start are left out (rates after the first chunk per worker)"
    )
    shutil.rmtree(work)


def capacity(args) -> None:
    """Texts/s on one core, fp32 and bf16, and the wall times they project to."""
    import torch

    torch.set_num_threads(1)
    texts = distinct_texts(args.texts)
    model = load_model(DEFAULT_MODEL)
    encoders = {precision: TorchEncoder(model, 64, precision) for precision in ("fp32", "bf16")}
    encoders["bf16"].encode(texts[:64])
    speeds: dict[str, list[float]] = {precision: [] for precision in encoders}
    for precision in ("fp32", "bf16", "bf16", "fp32"):
        seconds, _ = timed(lambda precision=precision: encoders[precision].encode(texts))
        speeds[precision].append(len(texts) / seconds)
    per_core = {precision: statistics.mean(values) for precision, values in speeds.items()}
    print(
        f"one core (torch threads 1), {len(texts)} distinct texts, batch 64: "
        + ", ".join(f"{precision} {rate:.1f} texts/s" for precision, rate in per_core.items())
        + f"; bf16 / fp32 = {per_core['bf16'] / per_core['fp32']:.2f}"
    )
    workers = [
        (f"{n} CPU core{'s' if n > 1 else ''}, {precision}", n * rate)
        for precision, rate in per_core.items()
        for n in (1, 8, 64)
    ]
    workers += [
        (f"{n} H200, {name}", n * rate) for name, rate in EARLIER_H200.items() for n in (1, 8)
    ]
    customers = (1_000_000, 10_000_000, 100_000_000)
    print(
        f"\nprojected wall time (distinct texts = {BANK_DISTINCT_SHARE:.1%} of customers, "
        "as in the bank data; "
        "linear in workers):\n"
    )
    print(
        "| workers | distinct texts/s | "
        + " | ".join(f"{n // 1_000_000}M customers" for n in customers)
        + " |"
    )
    print("|---|---:|" + "---:|" * len(customers))
    for name, rate in workers:
        cells = [embed.duration(n * BANK_DISTINCT_SHARE / rate) for n in customers]
        print(f"| {name} | {rate:,.0f} | " + " | ".join(cells) + " |")


def stage_run(folder: Path, precision: str) -> tuple[float, np.ndarray]:
    """The embed stage in a scratch project copy; its own logged wall time and its matrix."""
    copy_project(folder, ("stages", "segmentation", "datasets", "params.yaml"))
    (folder / TEXTS).parent.mkdir(parents=True, exist_ok=True)
    (folder / TEXTS).write_bytes(TEXTS.read_bytes())
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["embed"]["precision"] = precision
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(folder), SEGMENTS_CACHE=str(folder / ".cache"))
    result = subprocess.run(
        [sys.executable, "-m", "stages.embed", DATASET],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the {precision} embed stage failed:\n{result.stderr[-3000:]}")
    vectors = np.asarray(read_vectors(folder / EMBEDDINGS))
    return float(STAGE_LINE.findall(result.stderr)[-1]), vectors


def segments_on_inliers(
    vectors: np.ndarray, params, seed: int
) -> tuple[np.ndarray, pd.Series, float]:
    """ECOD outlier flags of every customer, each inlier's k-segment (by customer id), inertia."""
    flags = outliers.detect_outliers(
        vectors, params.outliers.contamination, np.arange(len(vectors))
    )["outlier"].to_numpy()
    inliers = np.flatnonzero(flags == 0)
    segments, _, inertia = kmeans.fit_segments(
        vectors[inliers], params.k, params.kmeans.n_init, seed
    )
    return flags, pd.Series(segments, index=inliers), inertia


def shared_ari(first: pd.Series, second: pd.Series) -> float:
    shared = first.index.intersection(second.index)
    return adjusted_rand_score(first[shared], second[shared])


def precision(args) -> None:
    """bf16 against fp32 on the full data, each through the embed stage; for scale, fp32 refitted
    with the next seed (KMeans' own spread between its local optima)."""
    params = validate_params(yaml.safe_load(Path("params.yaml").read_text()))
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as work:
        if args.fp32_matrix:
            fp32_seconds, fp32 = args.fp32_seconds, np.asarray(read_vectors(args.fp32_matrix))
        else:
            fp32_seconds, fp32 = stage_run(Path(work) / "fp32", "fp32")
        bf16_seconds, bf16 = stage_run(Path(work) / "bf16", "bf16")
    cosine = np.einsum("ij,ij->i", bf16, fp32)
    fp32_flags, fp32_segments, fp32_inertia = segments_on_inliers(fp32, params, params.seed)
    bf16_flags, bf16_segments, bf16_inertia = segments_on_inliers(bf16, params, params.seed)
    _, next_seed_segments, next_seed_inertia = segments_on_inliers(fp32, params, params.seed + 1)
    print(
        f"{len(fp32):,} customers: embed stage fp32 {fp32_seconds:.1f} s, "
        f"bf16 {bf16_seconds:.1f} s "
        f"(bf16 {fp32_seconds / bf16_seconds:.2f}x as fast)"
    )
    print(
        f"cosine bf16 to fp32: min {cosine.min():.6f}, mean {cosine.mean():.6f} "
        f"-> {verdict(cosine.min() >= 0.999)} (target >= 0.999)"
    )
    print(
        f"ECOD (contamination {params.outliers.contamination}): "
        f"{int((fp32_flags != bf16_flags).sum())} customers change side; "
        f"{len(fp32_segments.index.intersection(bf16_segments.index)):,} inliers shared "
        f"of {len(fp32_segments):,}"
    )
    print(
        f"k={params.k} KMeans (n_init {params.kmeans.n_init}, seed {params.seed}) on the inliers: "
        f"ARI {shared_ari(fp32_segments, bf16_segments):.4f} on the shared inliers; "
        f"inertia fp32 {fp32_inertia:.2f}, "
        f"bf16 {bf16_inertia:.2f}"
    )
    print(
        f"for scale, fp32 with seed {params.seed + 1}: "
        f"ARI {shared_ari(fp32_segments, next_seed_segments):.4f} "
        f"to seed {params.seed}, inertia {next_seed_inertia:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, default in (("feed", 3000), ("ray", 2000), ("capacity", 1000)):
        command = commands.add_parser(name)
        command.add_argument("--texts", type=int, default=default, help="distinct texts to embed")
    commands.choices["ray"].add_argument("--chunk-rows", type=int, default=100)
    commands.choices["feed"].add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    command = commands.add_parser("precision")
    command.add_argument(
        "--fp32-matrix", type=Path, help="a finished default (fp32) embeddings folder to reuse"
    )
    command.add_argument(
        "--fp32-seconds", type=float, help="the embed stage's logged time for that matrix"
    )
    args = parser.parse_args()
    if args.command == "precision" and bool(args.fp32_matrix) != bool(args.fp32_seconds):
        parser.error("--fp32-matrix and --fp32-seconds go together")
    {"feed": feed, "ray": ray_overhead, "capacity": capacity, "precision": precision}[args.command](
        args
    )


if __name__ == "__main__":
    main()
