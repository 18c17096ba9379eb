"""Benchmark: fit on a sample, assign the rest, at two sizes; peak memory and time per step.

    python bench/scale.py [--sizes 500000 2000000] [--engine ray] [--keep]

For each size a scratch project folder gets that many customers' stand-in embeddings (unit-norm
float32, a seeded mixture of 300 clusters in 384 dimensions, written a block at a time into
shards: see ``segmentation/testing/synthetic.py``) and placeholder texts, then runs

1. ``python -m stages.outliers``: ECOD fitted on the seeded sample, every customer scored;
2. ``python -m stages.project``: PCA and t-SNE fitted on the sample of the inliers, the PCA
   applied to every inlier;
3. ``python -m stages.kmeans``: KMeans fitted on the sample of the inliers, every inlier labelled;
4. evaluate's validity scores (``segmentation.evaluation.scores``: Davies-Bouldin,
   Calinski-Harabasz and sampled silhouette, two reductions over the shards);
5. assignment: the segment model (the stages' saved ECOD reference and centroids) predicting over
   every customer of the memory-mapped shards, written to a CSV;
6. the profile (``segmentation.reporting.tallies``: the bands fitted on the sample, every shard's
   rows of a stand-in customer table tallied, the profile table read from the totals);
7. the article's other methods on that customer table: ``python -m stages.tabular`` (Method 1's
   encoding and ECOD fitted on a sample of the customers, KMeans on a sample of its inliers, every
   customer encoded, scored and labelled a chunk at a time), ``stages.mca`` (fitted on a sample
   of the Method-1 inliers) and ``stages.kprototypes`` (fitted on that sample, every Method-1
   inlier given its nearest prototype a chunk at a time);
8. a stand-in reference, as adopted a month earlier (``save_reference`` fed the labels a chunk at a
   time: the segments numbered in reverse, one customer in 20 elsewhere, one in 100 not yet
   there), then ``python -m stages.lineage``: the fit and the reference joined by customer id in
   buckets, the lineage from their counts, every customer's move written in order.

``--steps`` runs some of them (those a step reads must run too: kmeans needs outliers, mca
tabular, kprototypes mca, reference kmeans, lineage kmeans and, to follow one, reference).

``--engine ray`` runs every per-customer step with a Ray Data task per shard on a local Ray
(``engine: ray``) of every core.

Each step is a child process (the driver); its peak RSS and CPU time come from ``wait4``. While it
runs, a watcher reads every Ray worker's own peak (``VmHWM``) and the machine's busy CPU time from
``/proc``. Per step the bench prints customers per second per core (wall time, every core of the
machine counted), the driver's and the largest worker's peak, and the bytes the step added to the
project folder. The targets: peak RSS at most 2 GB in every process, and time within 1.2x of linear
from the first size to the second. Time is judged on CPU seconds as well as wall seconds, since the
machine is shared and another process's load stretches wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from run import measured, verdict

from segmentation.cluster import ENGINES
from segmentation.testing.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]

DATASET = "synthetic"
RSS_LIMIT_MB = 2048
LINEARITY = 1.2
# Work that does not grow with the customers, shrunk to keep the run short on 2 cores: the
# sampled silhouette scores silhouette_max_rows customers against every inlier (the default
# 100,000 would take hours here), and the KMeans restarts run on the fixed-size sample.
BENCH_PARAMS = {"silhouette_max_rows": 10_000, "kmeans": {"n_init": 3}}
# Each step runs in a child that reports its own peak at exit: VmHWM, the high-water mark of its
# memory map. (getrusage's ru_maxrss would not do: Linux carries the parent's peak across exec.)
OWN_PEAK = """
import atexit, sys
def own_peak():
    status = open("/proc/self/status").read()
    kilobytes = int(status.split("VmHWM:")[1].split()[0])
    print(f"own peak RSS {kilobytes / 1024:.0f} MB", file=sys.stderr)
atexit.register(own_peak)
"""
STAGE = """
from segmentation.artifacts import run
from stages.{stage} import main
run(main)
"""
EVALUATE = """
import json, sys
from segmentation.config import layout, load_params
from segmentation.evaluation.scores import validity_scores
params, paths = load_params(), layout(sys.argv[1])
print(json.dumps(validity_scores(paths, params)))
"""
ASSIGN = """
import sys
from segmentation.artifacts import read_npy, write_csv_chunks
from segmentation.config import layout, load_params
from segmentation.model.predict import predict_customers
from segmentation.model.segment_model import OutlierDetector, SegmentModel
params, paths = load_params(), layout(sys.argv[1])
model = SegmentModel.assembled(OutlierDetector.load(paths.outlier_detector),
                               read_npy(paths.centroids), params.kmeans.n_init, 0, 0)
write_csv_chunks("assigned.csv", predict_customers(model, paths.embeddings, params.engine))
"""
PROFILE = """
import sys
from segmentation.config import layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.model.sampling import sample_inlier_rows
from segmentation.reporting.profile import profile, value_differences
from segmentation.reporting.tallies import profile_tallies
params, paths, dataset = load_params(), layout(sys.argv[1]), load_dataset(sys.argv[1])
sample = sample_inlier_rows(paths, params.sample_fit_rows, params.seed)
customers = read_customers(paths.customers, dataset, sample.rows)
tallies = profile_tallies(paths, dataset, None, customers, params.engine)
table = profile(tallies, dataset, value_differences(tallies, dataset), {})
print(f"profile of {tallies.inliers:,} inliers in {len(table)} segments")
"""
REFERENCE = """
import sys
import numpy as np
from segmentation.artifacts import read_csv, read_json, read_npy
from segmentation.config import layout
from segmentation.lineage.reference import Reference, save_reference
paths = layout(sys.argv[1])
centroids = read_npy(paths.centroids)
k = len(centroids)
def adopted_segments():
    rng = np.random.default_rng(0)
    with read_csv(paths.labels, chunksize=65536) as chunks:
        for chunk in chunks:
            segments = chunk.set_index("customer_id")["segment"].rsub(k + 1)
            moved = rng.random(len(segments)) < 0.05
            segments[moved] = rng.integers(1, k + 1, moved.sum())
            yield segments[rng.random(len(segments)) >= 0.01]
numbers = list(range(k, 0, -1))
model = read_json(paths.embedding_info)["model"]
names = [f"Segment {number}" for number in numbers]
save_reference(paths.reference, Reference(numbers, names, centroids, model), adopted_segments())
"""
STEPS = {
    "outliers": STAGE.format(stage="outliers"),
    "project": STAGE.format(stage="project"),
    "kmeans": STAGE.format(stage="kmeans"),
    "evaluate": EVALUATE,
    "assignment": ASSIGN,
    "profile": PROFILE,
    "tabular": STAGE.format(stage="tabular"),
    "mca": STAGE.format(stage="mca"),
    "kprototypes": STAGE.format(stage="kprototypes"),
    "reference": REFERENCE,
    "lineage": STAGE.format(stage="lineage"),
}
GENERATE = """
import sys
from pathlib import Path
from segmentation.testing import synthetic
folder, rows = Path(sys.argv[1]), int(sys.argv[2])
synthetic.write_embedding_stand_ins(folder, rows)
synthetic.write_customer_stand_ins(folder / "customers.csv", rows)
"""
OWN_PEAK_LINE = re.compile(r"own peak RSS (\d+) MB")


def scratch_project(folder: Path, customers: int, sample_fit_rows: int, engine: str) -> Path:
    """A project folder with the stand-in data set and the benchmark's params."""
    copy_project(folder, ("params.yaml",))
    # params.yaml lists data sets by their file; the stages run here never read its contents.
    (folder / "datasets").mkdir()
    shutil.copy(ROOT / "datasets" / "bank.yaml", folder / "datasets" / f"{DATASET}.yaml")
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params.update(
        datasets=[DATASET],
        silhouette_max_rows=BENCH_PARAMS["silhouette_max_rows"],
        sample_fit_rows=sample_fit_rows,
        engine=engine,
    )
    params["kmeans"].update(BENCH_PARAMS["kmeans"])
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    interim = folder / "data" / DATASET / "interim"
    # in a child, so that this process stays small (see OWN_PEAK)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    measured([sys.executable, "-c", GENERATE, str(interim), str(customers)], folder, env)
    info = {"model": params["model"], "rows": customers, "dimension": 384}
    (interim / "embedding_info.json").write_text(json.dumps(info))
    return folder


class RayWorkerWatch:
    """The largest own peak RSS (``VmHWM``, MB) of any Ray worker process seen while it runs, and
    the machine's busy CPU seconds over the same time, read from ``/proc`` twice a second."""

    def __init__(self):
        self.worker_peak_mb, self._done = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> RayWorkerWatch:
        self._busy_before = busy_cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()
        self.busy_cpu = busy_cpu_seconds() - self._busy_before

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    text = status.read_text()
                    command = (status.parent / "cmdline").read_bytes()
                except OSError:  # the process ended between the listing and the read
                    continue
                if command.startswith(b"ray::") and "VmHWM:" in text:
                    kilobytes = int(text.split("VmHWM:")[1].split()[0])
                    self.worker_peak_mb = max(self.worker_peak_mb, kilobytes / 1024)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting on IO) since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_steps(
    folder: Path, customers: int, steps: list[str]
) -> dict[str, tuple[float, float, float]]:
    """Wall seconds, CPU seconds and peak RSS (MB, the driver's or a worker's) of each step, run
    one after another."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    results = {}
    cores = os.cpu_count()
    for step in steps:
        code = STEPS[step]
        before, written = resource.getrusage(resource.RUSAGE_CHILDREN), folder_bytes(folder)
        with RayWorkerWatch() as workers:
            wall, _, output = measured(
                [sys.executable, "-c", OWN_PEAK + code, DATASET], folder, env
            )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Ray's workers are not this process's children: the machine's busy time counts them.
        cpu = max(
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, workers.busy_cpu
        )
        driver_peak = float(OWN_PEAK_LINE.findall(output)[-1])
        results[step] = wall, cpu, max(driver_peak, workers.worker_peak_mb)
        worker_peak = f"{workers.worker_peak_mb:6.0f} MB" if workers.worker_peak_mb else "     -"
        print(
            f"  {step:<11} wall {wall:7.1f} s  cpu {cpu:7.1f} s  "
            f"{customers / wall / cores:8,.0f} customers/s/core  "
            f"peak RSS driver {driver_peak:6.0f} MB, worker {worker_peak}  "
            f"written {(folder_bytes(folder) - written) / 2**20:8,.0f} MiB",
            flush=True,
        )
        metrics = folder / "metrics" / DATASET / f"{step}.json"
        if metrics.exists():
            scores = json.loads(metrics.read_text())
        elif step == "evaluate":
            scores = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
        else:
            continue
        shown = (
            f"{key} {value:,}" if isinstance(value, int) else f"{key} {value:.4g}"
            for key, value in scores.items()
        )
        print(f"  {'':<11} " + ", ".join(shown), flush=True)
    return results


def report(small: dict, large: dict, linear: float) -> None:
    """Per-step ratios, then PASS/FAIL on peak RSS and on the time of all steps together."""
    print(f"\nratios, larger run over smaller (linear = {linear:.2f}):")
    for step in small:
        ratios = [after / before for before, after in zip(small[step], large[step])]
        print(
            f"  {step:<11} wall {ratios[0]:5.2f}x  cpu {ratios[1]:5.2f}x  "
            f"peak RSS {ratios[2]:5.2f}x"
        )
    peak = max(rss for run in (small, large) for _, _, rss in run.values())
    print(
        f"\npeak RSS <= {RSS_LIMIT_MB} MB in every process | largest {peak:.0f} MB | "
        f"{verdict(peak <= RSS_LIMIT_MB)}"
    )
    for column, kind in enumerate(("wall", "cpu")):
        before, after = (sum(times[column] for times in run.values()) for run in (small, large))
        limit = LINEARITY * linear
        print(
            f"{kind} time of all steps <= {LINEARITY} x linear | {before:.0f} s -> {after:.0f} s "
            f"= {after / before:.2f}x (limit {limit:.2f}x) | {verdict(after / before <= limit)}"
        )


PROJECTED_CUSTOMERS = (100_000_000, 1_000_000_000)
PROJECTED_CORES = (64, 512)


def projection(small: dict, large: dict, sizes: list[int]) -> None:
    """Each step's time as a fixed part (the sample fits, starting Ray) plus CPU seconds per
    customer, both from the line through the two runs, projected to more customers on more cores:
    the per-customer work spread evenly over the cores, the fixed part as measured here."""
    print("\nprojection (fixed part + CPU per customer / cores; see docs/scale-fit.md):")
    header = "".join(
        f"  {customers / 1e6:,.0f}M on {cores}"
        for customers in PROJECTED_CUSTOMERS
        for cores in PROJECTED_CORES
    )
    print(f"  {'step':<11} {'fixed':>8} {'CPU/customer':>13}{header}")
    for step in small:
        (wall_small, cpu_small, _), (wall_large, cpu_large, _) = small[step], large[step]
        per_customer = max((cpu_large - cpu_small) / (sizes[1] - sizes[0]), 0.0)
        fixed = max(wall_small - (wall_large - wall_small) / (sizes[1] - sizes[0]) * sizes[0], 0)
        projected = "".join(
            f"  {(fixed + per_customer * customers / cores) / 60:>9,.1f} min"
            for customers in PROJECTED_CUSTOMERS
            for cores in PROJECTED_CORES
        )
        print(f"  {step:<11} {fixed:6.0f} s {per_customer * 1e6:10.1f} µs{projected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        default=[500_000, 2_000_000],
        metavar=("SMALL", "LARGE"),
        help="customers in the two runs",
    )
    default_threshold = yaml.safe_load((ROOT / "params.yaml").read_text())["sample_fit_rows"]
    parser.add_argument(
        "--sample-fit-rows",
        type=int,
        default=default_threshold,
        help="the threshold and sample size (default: params.yaml's)",
    )
    parser.add_argument(
        "--engine", choices=ENGINES, default="local", help="where every customer is scored"
    )
    parser.add_argument(
        "--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="the steps to run"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders, print where")
    args = parser.parse_args()
    if min(args.sizes) <= args.sample_fit_rows:
        parser.error(f"both sizes must be above --sample-fit-rows ({args.sample_fit_rows})")
    work = Path(tempfile.mkdtemp(prefix="segments-scale-"))
    print(
        f"params changed from params.yaml: {BENCH_PARAMS}; sample_fit_rows "
        f"{args.sample_fit_rows}; engine {args.engine}"
    )
    runs = []
    try:
        for customers in args.sizes:
            started = time.perf_counter()
            folder = scratch_project(
                work / str(customers), customers, args.sample_fit_rows, args.engine
            )
            print(
                f"{customers:,} customers ({customers * 384 * 4 / 2**30:.2f} GiB matrix, written "
                f"in {time.perf_counter() - started:.0f} s):",
                flush=True,
            )
            runs.append(run_steps(folder, customers, args.steps))
            if not args.keep:
                shutil.rmtree(folder)
    finally:
        if args.keep:
            print(f"scratch folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(*runs, linear=args.sizes[1] / args.sizes[0])
    projection(*runs, sizes=args.sizes)


if __name__ == "__main__":
    main()
