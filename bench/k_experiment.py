"""Benchmark: the card's ``dvc exp run -S k=6`` on the whole DAG, before and after, in one run.

    python bench/k_experiment.py --before 77ddde8 [--after HEAD] [--set k=6]

For each revision, a clone of this repository is made under a temporary folder, with this
checkout's DVC cache, and ``dvc checkout`` puts that revision's outputs in place (so both
revisions must have been reproduced once with this cache; the benchmark says so if not). Then:

1. ``dvc exp run -S k=6`` runs with every data set of params.yaml, on a copy of the cache without
   DVC's run cache (a stage run before with the same inputs would be restored, not run; ``dvc exp
   run`` has no switch for that). Its total wall time is measured,
   and each stage's from the moment DVC announces it to the next announcement (the process start,
   its imports, its work and DVC's bookkeeping);
2. the workspace goes back to the revision's outputs, params.yaml gets the same values, and the
   stages the experiment ran are run by hand with their dvc.yaml commands, one process each, in
   the same order: each one's wall
   time, its own work (the stage's "finished in" log line) and the difference, which is the
   process start and its imports;
3. the same stages again, each data set's in a single process that calls them one after another
   (one start, one set of imports, no DVC between them): the floor of a layout with a single
   per-k stage per data set;
4. every metrics, plots and reports file the experiment wrote is compared, byte for byte, with the
   one the stages wrote by hand and the one they wrote in one process.

It prints one table per revision, the totals side by side and the ratio, and PASS/FAIL against the
target: at most 90 s for the experiment on the 2-core machine, and identical results by hand.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 90.0
ANNOUNCED = re.compile(r"^Running stage '([\w@-]+)'")
FINISHED = re.compile(r"stage \w+ finished in ([\d.]+) s")
RESULTS = ("metrics", "plots", "reports")
# A data set's stages in one interpreter: python -c ONE_PROCESS <data set> <stage> <stage> ...
ONE_PROCESS = (
    "import importlib, sys\n"
    "for stage in sys.argv[2:]:\n"
    "    importlib.import_module(f'stages.{stage}').main(sys.argv[1])\n"
)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout + done.stderr


def clone(revision: str, folder: Path, env: dict[str, str]) -> Path:
    """A clone at ``revision`` with that revision's outputs, and a cache of its own: this
    checkout's cached files, hard-linked, without the run cache."""
    run(["git", "clone", "-q", str(ROOT), str(folder)], ROOT, env)
    run(["git", "checkout", "-q", revision], folder, env)
    cache = folder.parent / f"{folder.name}-cache"
    cache.mkdir()
    run(["cp", "-al", str(ROOT / ".dvc" / "cache" / "files"), str(cache / "files")], ROOT, env)
    run(["dvc", "config", "--local", "cache.dir", str(cache)], folder, env)
    done = subprocess.run(["dvc", "checkout"], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(
            f"{revision}: its outputs are not all in {ROOT / '.dvc' / 'cache'}; run "
            f"'git checkout {revision} && dvc repro' in this checkout once, then benchmark again"
        )
    return folder


def experiment(folder: Path, settings: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """``dvc exp run -S ...``: total wall seconds and each announced stage's wall seconds."""
    command = ["dvc", "exp", "run", *(part for item in settings for part in ("-S", item))]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    stages: dict[str, float] = {}
    current, since = None, started
    output = []
    for line in child.stdout:
        output.append(line)
        if match := ANNOUNCED.match(line):
            now = time.perf_counter()
            if current:
                stages[current] = now - since
            current, since = match.group(1), now
    child.wait()
    total = time.perf_counter() - started
    if current:
        stages[current] = time.perf_counter() - since
    if child.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {folder}:\n{''.join(output)[-3000:]}")
    return total, stages


def results(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for name in RESULTS
        for path in sorted((folder / name).rglob("*"))
        if path.is_file()
    }


def back_to_revision(folder: Path, settings: list[str], env: dict[str, str]) -> dict:
    """The revision's outputs and dvc.yaml's stages, with the experiment's values in params.yaml."""
    run(["git", "checkout", "-q", "--", "."], folder, env)
    run(["dvc", "checkout", "--force"], folder, env)
    params = folder / "params.yaml"
    text = params.read_text()
    for item in settings:
        key, value = item.split("=", 1)
        text, found = re.subn(rf"(?m)^{re.escape(key)}: .*$", f"{key}: {value}", text)
        if not found:
            sys.exit(f"--set {item}: only top-level keys of params.yaml can be set here")
    params.write_text(text)
    return yaml.safe_load((folder / "dvc.yaml").read_text())["stages"]


def by_hand(
    folder: Path, stages: list[str], settings: list[str], env: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """The stages run one process each: (wall seconds, the stage's own seconds) per stage."""
    commands = back_to_revision(folder, settings, env)
    timings = {}
    for stage in stages:
        name, dataset = stage.split("@")
        command = commands[name]["cmd"].replace("${item.ds}", dataset).split()
        started = time.perf_counter()
        output = run([sys.executable, *command[1:]], folder, env)
        wall = time.perf_counter() - started
        own = FINISHED.findall(output)
        timings[stage] = (wall, float(own[-1]) if own else wall)
    return timings


def in_one_process(
    folder: Path, stages: list[str], settings: list[str], env: dict[str, str]
) -> dict[str, float]:
    """Each data set's stages called one after another in a single process (one start, one set of
    imports, no DVC): wall seconds per data set, the floor of one per-k stage per data set."""
    back_to_revision(folder, settings, env)
    per_dataset: dict[str, list[str]] = {}
    for stage in stages:
        name, dataset = stage.split("@")
        per_dataset.setdefault(dataset, []).append(name)
    timings = {}
    for dataset, names in per_dataset.items():
        started = time.perf_counter()
        run([sys.executable, "-c", ONE_PROCESS, dataset, *names], folder, env)
        timings[dataset] = time.perf_counter() - started
    return timings


def measure(revision: str, folder: Path, settings: list[str], env: dict[str, str]) -> dict:
    project = clone(revision, folder, env)
    total, announced = experiment(project, settings, env)
    written = results(project)
    hand = by_hand(project, list(announced), settings, env)
    differing = _differing(written, results(project))
    together = in_one_process(project, list(announced), settings, env)
    differing += _differing(written, results(project))
    return {
        "total": total,
        "announced": announced,
        "hand": hand,
        "together": together,
        "differing": sorted(set(differing)),
    }


def _differing(written: dict[str, bytes], again: dict[str, bytes]) -> list[str]:
    return [path for path in written.keys() | again.keys() if written.get(path) != again.get(path)]


def report(revision: str, measured: dict) -> None:
    print(f"\n## {revision}: dvc exp run {measured['total']:.1f} s\n")
    print("| stage | in dvc exp run (s) | by hand (s) | its own work (s) | start and imports (s) |")
    print("|---|---:|---:|---:|---:|")
    for stage, seconds in measured["announced"].items():
        wall, own = measured["hand"][stage]
        print(f"| {stage} | {seconds:.1f} | {wall:.1f} | {own:.1f} | {wall - own:.1f} |")
    walls = [wall for wall, _ in measured["hand"].values()]
    owns = [own for _, own in measured["hand"].values()]
    print(
        f"| total ({len(walls)} stages) | {measured['total']:.1f} | {sum(walls):.1f} | "
        f"{sum(owns):.1f} | {sum(walls) - sum(owns):.1f} |"
    )
    together = measured["together"]
    print(
        f"\nthe same stages in one process per data set (no DVC, one start each): "
        f"{sum(together.values()):.1f} s ("
        + ", ".join(f"{dataset} {seconds:.1f} s" for dataset, seconds in together.items())
        + ")"
    )
    same = not measured["differing"]
    print(
        f"\nresults by hand and in one process identical to the experiment's: "
        f"{'yes' if same else 'NO'}"
        + ("" if same else f" ({', '.join(measured['differing'][:10])})")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the revision to compare with")
    parser.add_argument("--after", default="HEAD", help="the revision measured (default HEAD)")
    parser.add_argument("--set", action="append", default=None, help="KEY=VALUE, as dvc's -S")
    args = parser.parse_args()
    settings = args.set or ["k=6"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SEGMENTS_LOG_LEVEL="INFO")
    work = Path(tempfile.mkdtemp(prefix="k-experiment-"))
    try:
        measured = {
            revision: measure(revision, work / label, settings, env)
            for label, revision in (("before", args.before), ("after", args.after))
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for revision, numbers in measured.items():
        report(revision, numbers)
    before, after = (numbers["total"] for numbers in measured.values())
    fast = after <= TARGET_SECONDS
    same = not measured[args.after]["differing"]
    print(
        f"\ndvc exp run -S {' -S '.join(settings)}: {before:.1f} s before, {after:.1f} s after "
        f"({after / before:.2f}x)\n"
        f"{'PASS' if fast else 'FAIL'} at most {TARGET_SECONDS:.0f} s on this machine\n"
        f"{'PASS' if same else 'FAIL'} the stages run by hand and in one process give the "
        "experiment's results"
    )


if __name__ == "__main__":
    main()
