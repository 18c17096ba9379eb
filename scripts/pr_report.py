"""The pull-request report: what an experiment changed against a base revision, as markdown.

    python -m scripts.pr_report --base origin/main [--out pr-report]
        [--image-url URL] [--run-url URL]

Compares the base revision with the workspace (normally a checkout of the pull request after
`dvc repro`) and writes ``<out>/report.md`` with what drives each data set's segments (each
column's share of the surrogate's explanation, base and new, and the segment report's warnings),
`dvc metrics diff --md --all`, `dvc params diff --md`, the image plots of ``dvc.yaml`` whose bytes
changed (base and new side by side), and the git-tracked outputs that `dvc repro` rewrote
(results that were committed stale). It opens with what a reviewer needs first: per data set,
whether the segments changed against the adopted ones (the lineage report) and the customers that
moved, and the headline measures that moved, each better or worse; every metric follows, folded.
The images are copied to ``<out>/base`` and ``<out>/head`` and linked relatively, so the folder
reads on its own; with ``--image-url`` (a template with ``{rev}`` and ``{path}``, e.g.
``https://github.com/OWNER/REPO/blob/{rev}/{path}?raw=true``) the links point at the committed
files of the two commits instead, which a pull-request comment can show without extra commits.
`dvc plots diff` renders the interactive plots into ``<out>/plots``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from segmentation.artifacts import PipelineError, run, write_bytes, write_text
from segmentation.config import PARAMS_FILE, load_params
from segmentation.data.dataset import dataset_file, load_dataset
from segmentation.reporting.profile import driver_sentences
from segmentation.reporting.tables import markdown_table
from segmentation.text import numbers_written

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
# Git-tracked stage outputs; a difference after `dvc repro` means the committed results are stale.
TRACKED_OUTPUTS = ("dvc.lock", "metrics", "plots", "reports")


@dataclass(frozen=True)
class ChangedImage:
    path: str
    base_link: str | None  # None: the plot is new in this revision
    head_link: str
    committed: bool  # the workspace file is the one committed at HEAD


def _command(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        message = " ".join((result.stderr or result.stdout).split())[:400]
        raise PipelineError(f"'{' '.join(args)}' failed: {message}")
    return result.stdout


def git(*args: str) -> str:
    return _command(["git", *args])


def dvc(*args: str) -> str:
    return _command([sys.executable, "-m", "dvc", *args])


def git_blob(rev: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``rev``, or None when it did not exist there."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def image_plots(pipeline: dict, datasets: list[str]) -> list[str]:
    """The image files a parsed ``dvc.yaml`` declares as plots, top-level or stage outputs; a matrix
    stage's ``${item.ds}`` paths once for each of ``datasets``."""
    declared = [entry for entry in pipeline.get("plots", []) if isinstance(entry, str)]
    declared += [
        entry if isinstance(entry, str) else next(iter(entry))
        for stage in pipeline.get("stages", {}).values()
        for entry in stage.get("plots", [])
    ]
    paths = [
        path.replace("${item.ds}", name)
        for path in declared
        for name in (datasets if "${item.ds}" in path else [""])
    ]
    return [path for path in dict.fromkeys(paths) if path.lower().endswith(IMAGE_SUFFIXES)]


def changed_images(
    base: str, head: str, paths: list[str], out: Path, image_url: str | None
) -> list[ChangedImage]:
    """Images whose workspace bytes differ from ``base``; both sides copied under ``out``."""
    changed = []
    for path in paths:
        current = Path(path)
        if not current.exists():
            continue
        now = current.read_bytes()
        before = git_blob(base, path)
        if before == now:
            continue
        committed = git_blob(head, path) == now
        write_bytes(out / "head" / path, now)
        if before is not None:
            write_bytes(out / "base" / path, before)
        if image_url:
            head_link = image_url.format(rev=head, path=path)
            base_link = image_url.format(rev=base, path=path) if before is not None else None
        else:
            head_link, base_link = f"head/{path}", f"base/{path}" if before is not None else None
        changed.append(ChangedImage(path, base_link, head_link, committed))
    return changed


# The measures a reviewer reads first, per metrics file: key, label and whether higher is better.
HEADLINE = {
    "evaluate": (
        ("silhouette", "Silhouette", True),
        ("davies_bouldin", "Davies-Bouldin index", False),
        ("calinski_harabasz", "Calinski-Harabasz index", True),
    ),
    "stability": (
        ("bootstrap_ari_mean", "Stability: mean ARI across bootstrap refits", True),
        ("seed_ari_mean", "Stability: mean ARI across seeds", True),
    ),
}
# The report's migration leaves out flows smaller than this share of the segment they leave.
SHOWN_FLOW_SHARE = 0.01
# The comparison's outcome separation of the embedding segments, one pair per described outcome.
OUTCOME_MEASURE = re.compile(r"^embedding_outcome_(\w+)_(association|spread)$")


def headline_measures(metrics: str, values: dict) -> list[tuple[str, str, bool]]:
    if metrics != "comparison":
        return list(HEADLINE.get(metrics, ()))
    found = []
    for key in values:
        match = OUTCOME_MEASURE.match(key)
        if match:
            outcome, kind = match.groups()
            measure = "Cramér's V" if kind == "association" else "range of the segment rates"
            found.append((key, f"Outcome separation ({outcome}): {measure}", True))
    return found


def _metrics_at(rev: str | None, path: str) -> dict:
    if rev is None:
        return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else {}
    blob = git_blob(rev, path)
    return json.loads(blob) if blob else {}


def moved_measures(base: str, name: str) -> list[list[str]]:
    """The headline measures of a data set whose value changed: base, now and which way."""
    rows = []
    for metrics in ("evaluate", "stability", "comparison"):
        path = f"metrics/{name}/{metrics}.json"
        before, now = _metrics_at(base, path), _metrics_at(None, path)
        for key, label, higher_is_better in headline_measures(metrics, now):
            if key in before and key in now and before[key] != now[key]:
                better = (now[key] > before[key]) == higher_is_better
                rows.append([label, f"{before[key]:.4g}", f"{now[key]:.4g}", _direction(better)])
    return rows


def _direction(better: bool) -> str:
    return "better" if better else "worse"


def _section(markdown: str, heading: str) -> list[str]:
    """The lines under ``heading`` up to the next heading of its level (none if it is absent)."""
    lines = markdown.splitlines()
    if heading not in lines:
        return []
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip().splitlines()


def segment_lines(base: str, datasets: list[str]) -> list[str]:
    """Per data set: whether its segments changed against the adopted ones (the lineage report),
    the customers that changed segment, and the headline measures that moved."""
    lines = []
    for name in datasets:
        report = Path("reports") / name / "lineage.md"
        if not report.exists() or not dataset_file(name).exists():
            continue
        text = report.read_text(encoding="utf-8")
        changed = _section(text, "## What changed") or text.splitlines()[1:]
        lines += [f"#### {load_dataset(name).title} (`{name}`)", "", *changed]
        migration = Path("reports") / name / "migration.csv"
        if migration.exists():
            moves = pd.read_csv(migration, dtype={"from": str, "to": str})
            moves = moves[(moves["from"] != moves["to"]) & (moves["share"] >= SHOWN_FLOW_SHARE)]
            if len(moves):
                lines += [
                    "",
                    f"Customers that changed segment, in flows of at least "
                    f"{SHOWN_FLOW_SHARE:.0%} of a segment (every flow: `{migration.as_posix()}`):",
                    "",
                    markdown_table(
                        ["From", "To", "Customers", "Share of from"],
                        [
                            [row["from"], row["to"], f"{row['customers']:,}", f"{row['share']:.1%}"]
                            for _, row in moves.iterrows()
                        ],
                    ),
                ]
        measures = moved_measures(base, name)
        lines += [""]
        if measures:
            lines += [
                markdown_table(
                    ["Headline measure", "base", "this pull request", "which way"], measures
                ),
                "",
            ]
        else:
            lines += ["No headline measure (validity, stability, outcome separation) moved.", ""]
    return lines


# Columns shown per data set in the drivers table: the leading ones of either revision.
DRIVERS_SHOWN = 5


def _shares(table: pd.DataFrame) -> pd.Series:
    shares = table.set_index("feature")["mean_abs_shap"]
    return shares / shares.sum()


def drivers(base: str, datasets: list[str]) -> list[str]:
    """Per data set: the leading columns' share of the surrogate's explanation at ``base`` and now,
    and the warnings the segment report gives about them."""
    lines, numbers_param = [], load_params(PARAMS_FILE).text.numbers
    for name in datasets:
        path = Path("plots") / name / "importance.csv"
        explained = Path("metrics") / name / "explain.json"
        if not (path.exists() and explained.exists() and dataset_file(name).exists()):
            continue
        dataset, importance = load_dataset(name), pd.read_csv(path)
        now = _shares(importance)
        before_bytes = git_blob(base, path.as_posix())
        before = _shares(pd.read_csv(io.BytesIO(before_bytes))) if before_bytes else None
        shown = list(now.index[:DRIVERS_SHOWN])
        if before is not None:
            shown += [column for column in before.index[:DRIVERS_SHOWN] if column not in shown]
        numbers = numbers_written(dataset, numbers_param)
        # Shares from mean |SHAP| on both sides: a base revision's file may lack the share column.
        importance = importance.assign(share=now.to_numpy())
        sentences = driver_sentences(
            importance, json.loads(explained.read_text(encoding="utf-8")), dataset, numbers
        )
        rows = [
            [
                dataset.label(column),
                "-" if before is None or column not in before else f"{before[column]:.1%}",
                f"{now.get(column, 0.0):.1%}",
            ]
            for column in shown
        ]
        lines += [f"#### {dataset.title} (`{name}`)", "", " ".join(sentences), ""]
        lines += [markdown_table(["Column", "base", "this pull request"], rows), ""]
    return lines


def render_report(
    base: str,
    head: str,
    metrics_md: str,
    params_md: str,
    images: list[ChangedImage],
    stale: list[str],
    run_url: str | None = None,
    driver_lines: list[str] | None = None,
    segment_lines: list[str] | None = None,
) -> str:
    short_base, short_head = base[:7], head[:7]
    lines = [
        f"## DVC report: `{short_base}` (base) → `{short_head}` (this pull request)",
        "",
        "### Did the segments change?",
        "",
        "Each data set's segments against its adopted ones (`references/<data set>/`, "
        "`reports/<data set>/lineage.md`), and the headline measures that moved.",
        "",
        *(segment_lines or ["No data set has a lineage report.", ""]),
        "### What drives the segments",
        "",
        "Each column's share of the LightGBM surrogate's mean |SHAP| "
        "(`plots/<data set>/importance.csv`).",
        "",
        *(driver_lines or ["No data set has a surrogate explanation.", ""]),
        "<details>",
        f"<summary>Every metric (<code>dvc metrics diff --md --all {short_base}</code>)</summary>",
        "",
        _table_or(metrics_md, "No metrics."),
        "",
        "</details>",
        "",
        f"### Params (`dvc params diff --md {short_base}`)",
        "",
        _table_or(params_md, "No param changed."),
        "",
        "### Plots that changed",
        "",
    ]
    if not images:
        lines += ["No plot image changed.", ""]
    for image in images:
        base_cell = (
            f"![{image.path} at {short_base}]({image.base_link})"
            if image.base_link
            else "(new plot)"
        )
        note = "" if image.committed else " (as reproduced here; the committed file differs)"
        side_by_side = markdown_table(
            [f"base `{short_base}`", f"this pull request `{short_head}`"],
            [[base_cell, f"![{image.path} at {short_head}]({image.head_link})"]],
        )
        lines += [f"#### `{image.path}`{note}", "", side_by_side, ""]
    lines += ["### Reproducibility", ""]
    if stale:
        lines += [
            "`dvc repro` changed these committed files, so the pull request's results are not "
            "what its code and data produce; run `dvc repro` and commit them:",
            "",
            *[f"- `{path}`" for path in stale],
            "",
        ]
    else:
        lines += [
            "`dvc repro` reproduced every committed metric, plot and report byte for byte.",
            "",
        ]
    if run_url:
        lines += [
            "Interactive plots (`dvc plots diff`) and full-size images: "
            f"artifact of [this run]({run_url}).",
            "",
        ]
    return "\n".join(lines)


def _table_or(table: str, empty: str) -> str:
    """DVC prints a header-only table when nothing differs; say so in words instead."""
    rows = [line for line in table.strip().splitlines() if line.startswith("|")]
    return table.strip() if len(rows) > 2 else empty


def stale_outputs() -> list[str]:
    """Git-tracked outputs that differ from HEAD (or are untracked) in the workspace."""
    status = git("status", "--porcelain", "--untracked-files=all", "--", *TRACKED_OUTPUTS)
    return sorted(line[3:] for line in status.splitlines() if line.strip())


def resolve(rev: str) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise PipelineError(
            f"base revision {rev!r} is not a commit here; fetch the full history "
            "(git fetch origin, or fetch-depth: 0 in CI) or name an existing branch, tag or commit"
        )
    return result.stdout.strip()


def build_report(base_rev: str, out: Path, image_url: str | None, run_url: str | None) -> str:
    base = resolve(base_rev)
    head = git("rev-parse", "HEAD").strip()
    # The short hash names the base column of DVC's tables.
    short_base = git("rev-parse", "--short", base).strip()
    metrics_md = dvc("metrics", "diff", "--md", "--all", short_base)
    params_md = dvc("params", "diff", "--md", short_base)
    pipeline = yaml.safe_load(Path("dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8")) or {}
    images = changed_images(
        base, head, image_plots(pipeline, params.get("datasets", [])), out, image_url
    )
    dvc("plots", "diff", base, "--out", str(out / "plots"))
    return render_report(
        base,
        head,
        metrics_md,
        params_md,
        images,
        stale_outputs(),
        run_url,
        drivers(base, params.get("datasets", [])),
        segment_lines(base, params.get("datasets", [])),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", required=True, help="git revision to compare with (e.g. origin/main)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("pr-report"), help="folder for report.md, images and plots"
    )
    parser.add_argument(
        "--image-url",
        help="link template with {rev} and {path}; default: relative links into --out",
    )
    parser.add_argument(
        "--run-url", help="URL of the CI run that holds the rendered folder as an artifact"
    )
    args = parser.parse_args(argv)
    if not Path("dvc.yaml").exists():
        raise PipelineError("dvc.yaml not found; run from the repository root")
    if args.image_url and not all(field in args.image_url for field in ("{rev}", "{path}")):
        raise PipelineError(
            f"--image-url must contain {{rev}} and {{path}} (got {args.image_url!r})"
        )
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / "report.md").exists():
        raise PipelineError(
            f"{args.out}: exists and holds no report.md; "
            "name a new or former report folder with --out"
        )
    # Built aside and moved into place whole, so a failure leaves the previous report or none.
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        write_text(
            building / "report.md", build_report(args.base, building, args.image_url, args.run_url)
        )
        shutil.rmtree(out, ignore_errors=True)
        os.replace(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    print(args.out / "report.md")


if __name__ == "__main__":
    run(main, takes_dataset=False)
