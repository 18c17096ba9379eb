"""Compare two ways of writing numbers from the metrics of two pipeline runs, as markdown tables.

    python -m scripts.numbers_study value=. band=../band-run [--datasets bank telco churners]

Each argument names a way and a folder holding a reproduced workspace's ``metrics/`` and
``plots/`` (a clone where ``dvc repro`` ran with ``-S text.numbers=<way>``, or
``dvc exp apply``'s result). Per data set it prints the outcome separation, the numbers' η² and
the largest share of the surrogate's explanation, stability, agreement with Method 1 and
silhouettes, then each numeric column's η²: the tables of docs/comparison.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from segmentation.artifacts import PipelineError, metric_key, run
from segmentation.data.dataset import Dataset, load_dataset
from segmentation.reporting.tables import markdown_table

ROWS = (
    ("Outcome Cramér's V", "comparison", "embedding_outcome_{outcome}_association"),
    ("Outcome rate spread (points)", "comparison", "embedding_outcome_{outcome}_spread"),
    ("Mean η² of the numeric columns", "explain", "eta_squared_mean"),
    ("Largest η²", "explain", None),
    ("Largest share of the explanation", "explain", "largest_shap_share"),
    ("Numeric columns' share of the explanation", "explain", "numeric_shap_share"),
    ("Stability across seeds (mean ARI)", "stability", "seed_ari_mean"),
    ("Stability across bootstrap resamples (mean ARI)", "stability", "bootstrap_ari_mean"),
    ("Agreement with Method 1 (ARI)", "comparison", "ari_embedding_tabular"),
    ("Silhouette in the Method-1 space", "comparison", "embedding_on_tabular_silhouette"),
    ("Silhouette in the embedding space", "comparison", "embedding_on_embeddings_silhouette"),
)


def _metrics(root: Path, name: str, stage: str) -> dict:
    path = root / "metrics" / name / f"{stage}.json"
    if not path.is_file():
        raise PipelineError(f"{path}: missing; run 'dvc repro' in {root} first")
    return json.loads(path.read_text(encoding="utf-8"))


def _value(root: Path, name: str, stage: str, key: str | None, dataset: Dataset) -> str:
    numeric = dataset.numeric
    found = _metrics(root, name, stage)
    if key is None:
        eta = {column: found[metric_key("eta_squared", column)] for column in numeric}
        column = max(eta, key=eta.get)
        return f"{eta[column]:.3f} ({dataset.label(column)})"
    if key == "largest_shap_share":
        leading = pd.read_csv(root / "plots" / name / "importance.csv")["feature"].iloc[0]
        return f"{found[key]:.0%} ({dataset.label(leading)})"
    value = found[key]
    if key.endswith("_spread"):
        return f"{value * 100:.1f}"
    return f"{value:.0%}" if key == "numeric_shap_share" else f"{value:.3f}"


def study(ways: dict[str, Path], name: str) -> str:
    dataset = load_dataset(name)
    outcome = metric_key(next(iter(dataset.describe)))
    measures = []
    for title, stage, key in ROWS:
        key = key.format(outcome=outcome) if key else None
        measures.append(
            [title, *(_value(root, name, stage, key, dataset) for root in ways.values())]
        )
    eta_squared = [
        [
            dataset.label(column),
            *(
                f"{_metrics(root, name, 'explain')[metric_key('eta_squared', column)]:.3f}"
                for root in ways.values()
            ),
        ]
        for column in dataset.numeric
    ]
    lines = [
        f"**{dataset.title}** (`{name}`)",
        "",
        markdown_table(["Measure", *ways], measures),
        "",
        "η² per numeric column:",
        "",
        markdown_table(["Column", *ways], eta_squared),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ways", nargs="+", help="WAY=FOLDER, e.g. value=. band=../band-run")
    parser.add_argument("--datasets", nargs="+", default=["bank", "telco", "churners"])
    args = parser.parse_args()
    ways = {}
    for argument in args.ways:
        way, _, folder = argument.partition("=")
        if not folder:
            raise PipelineError(f"{argument!r}: give WAY=FOLDER, e.g. band=../band-run")
        ways[way] = Path(folder)
    print("\n".join(study(ways, name) for name in args.datasets))


if __name__ == "__main__":
    run(main, takes_dataset=False)
