"""Benchmark: this pipeline against the article's tools, on the same machine, in one run.

    BANK_MARKETING_SOURCE=/path/to/bank-full.csv python bench/run.py [--synthetic-rows 200000]

Everything runs in fresh project copies under a temporary folder (nothing in the repository is
touched); the data set is the bank's, and its source defaults to data/bank/raw/table.csv of this
checkout. It measures

1. a cold ``dvc repro profile elbow`` of this pipeline (empty DVC cache, empty ONNX cache): the
   embedding chain download..profile with the elbow study, the stages the article chain below also
   runs; per-stage times and peak RSS are read from each stage's last log line;
2. the article-equivalent chain: the same stages, with bench/article.py standing in for embed
   (torch fp32, batch 32, no dedupe), elbow and evaluate (sklearn silhouette) and project
   (sklearn t-SNE);
3. the exact silhouette against sklearn on the inliers, vector and segment agreement (k = 5), read
   before step 4 leaves the k = 6 experiment's results in the workspace, and how well each t-SNE
   map keeps every customer's 15 nearest neighbours of the 384-d space (2,000 seeded customers);
4. ``dvc exp run -S k=6 profile`` on the warm cache (profile is the embedding chain's last stage);
5. the embed stage on ``--synthetic-rows`` generated customers, next to the full-data run;
6. the ``onnx-int8`` backend on the same distinct texts: its time, its cosine to the default
   vectors, and the ECOD inliers and k = 5 segments refitted on its vectors against the default's;

and prints the ratios with PASS/FAIL against the issue's targets.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.neighbors import NearestNeighbors

from segmentation.config import validate_params
from segmentation.data.dataset import Dataset
from segmentation.embedding import chunks as embed
from segmentation.embedding.encoders import make_encoder
from segmentation.embedding.shards import read_vectors
from segmentation.evaluation import validity as scoring
from segmentation.model import (
    kmeans,
    outliers,
)
from segmentation.testing import synthetic
from segmentation.testing.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]

PROJECT_FILES = (
    "stages",
    "segmentation",
    "bench",
    "datasets",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots",
    ".dvcignore",
    ".gitignore",
)
DATASET = "bank"
ARTICLE_CHAIN = (
    ("download", "stages.download"),
    ("serialize", "stages.serialize"),
    ("embed", "bench/article.py embed"),
    ("outliers", "stages.outliers"),
    ("elbow", "bench/article.py elbow"),
    ("project", "bench/article.py project"),
    ("kmeans", "stages.kmeans"),
    ("stability", "stages.stability"),
    ("evaluate", "bench/article.py evaluate"),
    ("explain", "stages.explain"),
    ("profile", "stages.profile"),
)
# with their upstream stages: exactly ARTICLE_CHAIN's stages
CHAIN_TARGETS = (f"profile@{DATASET}", f"elbow@{DATASET}")
INTERIM, PROCESSED = Path("data") / DATASET / "interim", Path("data") / DATASET / "processed"
STAGE_LINE = re.compile(r"stage (\w+) finished in ([\d.]+) s, peak RSS (\d+) MB")


def measured(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (the largest process of the tree) and the combined output."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{output[-3000:]}")
    return wall, usage.ru_maxrss / 1024, output


def project_copy(folder: Path, env: dict[str, str], overrides: list[str]) -> Path:
    """A fresh git repo holding the project,
    with ``KEY=VALUE`` params overrides (as ``dvc exp run -S``)."""
    copy_project(folder, PROJECT_FILES)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "bench@example.com"],
        ["git", "config", "user.name", "bench"],
    ):
        subprocess.run(command, cwd=folder, check=True, env=env)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["datasets"] = [DATASET]
    for override in overrides:
        key, value = override.split("=", 1)
        *parents, leaf = key.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        section[leaf] = yaml.safe_load(value)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def stage_log(output: str) -> dict[str, tuple[float, float]]:
    return {name: (float(seconds), float(mb)) for name, seconds, mb in STAGE_LINE.findall(output)}


def neighbour_recall(
    vectors: np.ndarray,
    maps: dict[str, np.ndarray],
    seed: int,
    queries: int = 2000,
    neighbours: int = 15,
) -> dict[str, float]:
    """Share of each sampled row's nearest neighbours in ``vectors``
    that stay its neighbours on each map."""
    rows = np.random.default_rng(seed).choice(
        len(vectors), size=min(queries, len(vectors)), replace=False
    )

    def nearest(points: np.ndarray) -> np.ndarray:
        found = (
            NearestNeighbors(n_neighbors=neighbours + 1)
            .fit(points)
            .kneighbors(points[rows], return_distance=False)
        )
        return np.sort(found[:, 1:], axis=1)

    reference = nearest(vectors)
    return {
        name: float(
            np.mean([np.intersect1d(a, b).size for a, b in zip(reference, nearest(points))])
            / neighbours
        )
        for name, points in maps.items()
    }


def int8_agreement(folder: Path, vectors: np.ndarray, labels: pd.DataFrame) -> str:
    """Embed the distinct texts with onnx-int8 and refit ECOD and KMeans (k = 5) on its vectors."""
    params = validate_params(yaml.safe_load((folder / "params.yaml").read_text()))
    codes, uniques = embed.distinct_texts(
        pd.read_csv(folder / INTERIM / "texts.csv")["text"].tolist()
    )
    encoder = make_encoder(params.model, "onnx-int8", "cpu", params.embed.batch_size)
    started = time.perf_counter()
    int8 = encoder.encode(uniques)[codes]
    seconds = time.perf_counter() - started
    cosine = np.einsum("ij,ij->i", int8, vectors)
    flags = outliers.detect_outliers(int8, params.outliers.contamination, np.arange(len(int8)))
    inliers = np.flatnonzero(flags["outlier"] == 0)
    segments, _, _ = kmeans.fit_segments(int8[inliers], params.k, params.kmeans.n_init, params.seed)
    both = labels.merge(
        pd.DataFrame({"customer_id": inliers, "segment_int8": segments}), on="customer_id"
    )
    ari = adjusted_rand_score(both["segment"], both["segment_int8"])
    return (
        f"{len(uniques)} distinct texts in {seconds:.1f} s (after the one-time export); "
        f"cosine to the default vectors min {cosine.min():.4f}, mean {cosine.mean():.5f}; "
        f"ECOD inliers shared {len(both)} of {len(labels)}; "
        f"k={params.k} segments ARI {ari:.4f} on the shared inliers"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def scale_check(
    work: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    rows: int,
    embed_full: tuple[float, float],
) -> tuple[str, str]:
    """Step 5: the embed stage on generated customers next to the full-data run;
    a line and a table row."""
    big = project_copy(work / "synthetic", env, args.set)
    dataset = Dataset.model_validate(
        yaml.safe_load((ROOT / "datasets" / f"{DATASET}.yaml").read_text())
    )
    texts = synthetic.texts(args.synthetic_rows, 11, dataset)
    (big / INTERIM).mkdir(parents=True)
    texts.to_csv(big / INTERIM / "texts.csv", index=False, lineterminator="\n")
    _, _, output = measured([sys.executable, "-m", "stages.embed", DATASET], big, env)
    seconds_big, rss_big = stage_log(output)["embed"]
    seconds_full, rss_full = embed_full
    matrix_mb = args.synthetic_rows * 384 * 4 / 2**20
    limit = 1.1 * rss_full + (args.synthetic_rows - rows) * 384 * 4 / 2**20
    line = (
        f"embed stage: {rows} rows {seconds_full:.1f} s, peak RSS {rss_full:.0f} MB; "
        f"{args.synthetic_rows} synthetic rows ({texts['text'].nunique()} distinct) "
        f"{seconds_big:.1f} s, peak RSS {rss_big:.0f} MB (output matrix {matrix_mb:.0f} MB)"
    )
    row = (
        f"embed peak RSS at {args.synthetic_rows} rows <= 1.1 x {rss_full:.0f} MB + added matrix | "
        f"{rss_big:.0f} MB (limit {limit:.0f} MB) | {verdict(rss_big <= limit)}"
    )
    return line, row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic-rows", type=int, default=200_000)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override for every copy, e.g. embed.batch_size=32",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder and print its path"
    )
    parser.add_argument(
        "--scale-only",
        action="store_true",
        help="only the embed stage on the full data and on --synthetic-rows customers (step 5)",
    )
    args = parser.parse_args()
    source = os.environ.get("BANK_MARKETING_SOURCE") or str(
        ROOT / "data" / DATASET / "raw" / "table.csv"
    )
    work = Path(tempfile.mkdtemp(prefix="segments-bench-"))
    bin_dir = str(Path(sys.executable).parent)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        BANK_MARKETING_SOURCE=source,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        SEGMENTS_CACHE=str(work / "cache"),
        PYTHONPATH=".",
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; data: "
        f"{source}",
        flush=True,
    )

    ours = project_copy(work / "ours", env, args.set)
    if args.scale_only:
        _, _, output = measured(
            [sys.executable, "-m", "dvc", "repro", f"embed@{DATASET}"], ours, env
        )
        rows = len(pd.read_csv(ours / INTERIM / "texts.csv"))
        print("\n".join(scale_check(work, env, args, rows, stage_log(output)["embed"])))
        return
    wall_ours, rss_ours, output = measured(
        [sys.executable, "-m", "dvc", "repro", *CHAIN_TARGETS], ours, env
    )
    stages_ours = stage_log(output)
    if sorted(stages_ours) != sorted(name for name, _ in ARTICLE_CHAIN):
        sys.exit(
            f"dvc repro {' '.join(CHAIN_TARGETS)} ran {sorted(stages_ours)}, "
            "not the article chain's stages"
        )
    print(
        f"ours: cold dvc repro {' '.join(CHAIN_TARGETS)} {wall_ours:.1f} s, peak RSS "
        f"{rss_ours:.0f} MB; stages (s, MB): {stages_ours}",
        flush=True,
    )

    article = project_copy(work / "article", env, args.set)
    article_stages = {}
    for name, module in ARTICLE_CHAIN:
        command = (
            [sys.executable, *module.split(), DATASET]
            if "/" in module
            else [sys.executable, "-m", module, DATASET]
        )
        wall, rss, _ = measured(command, article, env)
        article_stages[name] = (round(wall, 1), round(rss))
    wall_article = sum(wall for wall, _ in article_stages.values())
    rss_article = max(rss for _, rss in article_stages.values())
    print(
        f"article: chain {wall_article:.1f} s, peak RSS {rss_article:.0f} MB; stages (s, MB): "
        f"{article_stages}",
        flush=True,
    )

    vectors_ours = np.asarray(read_vectors(ours / INTERIM / "embeddings"))
    vectors_article = np.asarray(read_vectors(article / INTERIM / "embeddings"))
    max_dcos = float(np.abs(np.einsum("ij,ij->i", vectors_ours, vectors_article) - 1).max())
    # The bank's customer ids are the data-row numbers, so they index the embedding rows.
    labels = pd.read_csv(ours / PROCESSED / "labels.csv").merge(
        pd.read_csv(article / PROCESSED / "labels.csv"),
        on="customer_id",
        suffixes=("_ours", "_article"),
    )
    ari = adjusted_rand_score(labels["segment_ours"], labels["segment_article"])
    inliers = len(pd.read_csv(ours / PROCESSED / "labels.csv"))
    print(
        f"agreement: max |dcos| {max_dcos:.2e}; k=5 segments ARI {ari:.6f} on {len(labels)} shared "
        f"of {inliers} inliers",
        flush=True,
    )

    inlier_vectors = vectors_ours[labels["customer_id"].to_numpy()]
    segments = labels["segment_ours"].to_numpy()
    started = time.perf_counter()
    fast = scoring.exact_silhouettes(inlier_vectors, [segments])[0]
    wall_fast = time.perf_counter() - started
    started = time.perf_counter()
    reference = silhouette_score(inlier_vectors, segments)
    wall_sklearn = time.perf_counter() - started
    print(
        f"silhouette on {inlier_vectors.shape}: ours {wall_fast:.1f} s, "
        f"sklearn {wall_sklearn:.1f} s, |delta| {abs(fast - reference):.2e}",
        flush=True,
    )
    maps = {
        name: pd.read_csv(folder / INTERIM / "projections.csv")[["tsne_1", "tsne_2"]].to_numpy()
        for name, folder in (("ours", ours), ("article", article))
    }
    recall = neighbour_recall(inlier_vectors, maps, seed=0)
    print(
        f"t-SNE maps keep {recall['ours']:.4f} (ours) and {recall['article']:.4f} "
        "(article, sklearn) of each customer's 15 nearest neighbours",
        flush=True,
    )
    int8_line = int8_agreement(ours, vectors_ours, pd.read_csv(ours / PROCESSED / "labels.csv"))
    print(f"onnx-int8: {int8_line}", flush=True)

    for command in (["git", "add", "-A"], ["git", "commit", "-qm", "cold run"]):
        subprocess.run(command, cwd=ours, check=True, env=env, capture_output=True)
    wall_k6, _, output = measured(
        [sys.executable, "-m", "dvc", "exp", "run", "-S", "k=6", f"profile@{DATASET}"], ours, env
    )
    print(
        f"ours: dvc exp run -S k=6 profile {wall_k6:.1f} s (stages run: "
        f"{sorted(stage_log(output))})",
        flush=True,
    )

    scale_line, scale_row = scale_check(work, env, args, len(vectors_ours), stages_ours["embed"])
    print(scale_line, flush=True)

    seconds_45k = stages_ours["embed"][0]
    embed_ratio = article_stages["embed"][0] / seconds_45k
    chain_ratio = wall_article / wall_ours
    silhouette_ratio = wall_sklearn / wall_fast
    print("\ntarget | measured | verdict")
    print(
        f"embed stage >= 1.6x faster than torch fp32 batch 32 | {embed_ratio:.2f}x "
        f"({article_stages['embed'][0]:.1f} s -> {seconds_45k:.1f} s) | "
        f"{verdict(embed_ratio >= 1.6)}"
    )
    print(f"max |dcos| <= 1e-5 | {max_dcos:.2e} | {verdict(max_dcos <= 1e-5)}")
    print(
        f"cold repro (the {len(ARTICLE_CHAIN)} stages download..profile) >= 2.5x faster than the "
        f"article chain | {chain_ratio:.2f}x ({wall_article:.1f} s -> {wall_ours:.1f} s) | "
        f"{verdict(chain_ratio >= 2.5)}"
    )
    print(f"dvc exp run -S k=6 profile <= 30 s | {wall_k6:.1f} s | {verdict(wall_k6 <= 30)}")
    print(f"peak RSS <= 2048 MB on the full data | {rss_ours:.0f} MB | {verdict(rss_ours <= 2048)}")
    print(scale_row)
    print(
        f"exact silhouette >= 2.5x faster than sklearn, |delta| <= 1e-5 | {silhouette_ratio:.2f}x, "
        f"{abs(fast - reference):.2e} | "
        f"{verdict(silhouette_ratio >= 2.5 and abs(fast - reference) <= 1e-5)}"
    )
    print(f"k=5 segments unchanged (ARI) | {ari:.6f} | {verdict(ari == 1.0)}")
    print(
        "t-SNE map keeps nearest neighbours as well as sklearn's (recall@15, -0.02 allowed) | "
        f"{recall['ours']:.4f} vs {recall['article']:.4f} | "
        f"{verdict(recall['ours'] >= recall['article'] - 0.02)}"
    )
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
