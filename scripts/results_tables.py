"""The results tables of README.md and docs/, written from the committed metrics.

    python scripts/results_tables.py          # rewrite every generated table in place
    python scripts/results_tables.py --check  # exit 1, naming the file, when a table has drifted

Each table sits between ``<!-- results: NAME -->`` and ``<!-- end of results -->`` lines; what is
outside the markers is written by hand. The tables read only git-tracked files (metrics/, plots/,
reports/, datasets/, params.yaml), so they can be checked in a fresh clone before any repro.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from segmentation.data.dataset import Dataset
from segmentation.data.outcomes import outcome_key, outcome_title
from segmentation.reporting.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"(?P<start><!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<end><!-- end of results -->)",
    re.DOTALL,
)
NUMBERS = {"value": "as read", "band": "band words", "both": "value and band word"}
# the numbers' share of the surrogate's explanation is named from this share on
NUMBERS_NOTED = 0.25


class Results:
    """The committed results of one data set, read from the repository at ``root``."""

    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        self.dataset = Dataset.model_validate(
            yaml.safe_load((root / "datasets" / f"{name}.yaml").read_text())
        )

    def metrics(self, stage: str) -> dict[str, float]:
        return json.loads((self.root / "metrics" / self.name / f"{stage}.json").read_text())

    def table(self, folder: str, file: str) -> pd.DataFrame:
        return pd.read_csv(self.root / folder / self.name / file)


def datasets(root: Path) -> list[str]:
    return yaml.safe_load((root / "params.yaml").read_text())["datasets"]


def numbers_written(results: Results, root: Path) -> str:
    param = yaml.safe_load((root / "params.yaml").read_text())["text"]["numbers"]
    return NUMBERS[results.dataset.numbers if param == "dataset" else param]


def split_on(results: Results) -> str:
    importance = results.table("plots", "importance.csv")
    leading = ", ".join(
        f"{results.dataset.label(row.feature).lower()} {row.share:.0%}"
        for row in importance.head(2).itertuples()
    )
    numbers = results.metrics("explain")["numeric_shap_share"]
    return leading + (f", numbers {numbers:.0%} in all" if numbers >= NUMBERS_NOTED else "")


def outcome_range(results: Results) -> str:
    column = next(iter(results.dataset.describe))
    profiles = results.table("reports", "profiles.csv")
    rates = profiles[outcome_key(results.dataset, column)]
    segmented = (rates * profiles["customers"]).sum() / profiles["customers"].sum()
    title = outcome_title(results.dataset, column).lower()
    return f"{title}: {rates.min():.1%} to {rates.max():.1%} (all segmented: {segmented:.1%})"


def readme_results(root: Path) -> str:
    """README's table: every data set's headline results with the default params."""
    every = [Results(root, name) for name in datasets(root)]
    rows: list[tuple[str, Callable[[Results], str]]] = [
        ("how the texts write numbers", lambda r: numbers_written(r, root)),
        (
            "customers in the table = segmented + ECOD outliers + rejected",
            lambda r: "{:,} = {:,} + {:,} + {:,}".format(
                r.metrics("rows")["table_rows"],
                r.metrics("outliers")["inliers"],
                r.metrics("outliers")["outliers"],
                r.metrics("rows")["rejected_rows"],
            ),
        ),
        (
            "Davies-Bouldin (lower is better)",
            lambda r: f"{r.metrics('evaluate')['davies_bouldin']:.4f}",
        ),
        (
            "Calinski-Harabasz (higher is better)",
            lambda r: f"{r.metrics('evaluate')['calinski_harabasz']:.1f}",
        ),
        ("silhouette (on the inliers)", lambda r: f"{r.metrics('evaluate')['silhouette']:.4f}"),
        (
            "surrogate held-out accuracy (segmentation columns)",
            lambda r: (
                f"{r.metrics('explain')['holdout_accuracy']:.3f} "
                f"({len(r.table('plots', 'importance.csv'))} columns)"
            ),
        ),
        ("what the segments split on (share of the surrogate's mean \\|SHAP\\|)", split_on),
        ("first outcome per segment, lowest to highest", outcome_range),
        (
            "stability across seeds / bootstrap resamples (mean ARI)",
            lambda r: (
                f"{r.metrics('stability')['seed_ari_mean']:.2f} / "
                f"{r.metrics('stability')['bootstrap_ari_mean']:.2f}"
            ),
        ),
    ]
    header = ["measure", *(r.dataset.title for r in every)]
    return markdown_table(header, [[label, *(cell(r) for r in every)] for label, cell in rows])


def bold_best(values: list[float], lower_is_better: bool, digits: int) -> list[str]:
    best = min(values) if lower_is_better else max(values)
    return [f"**{v:.{digits}f}**" if v == best else f"{v:.{digits}f}" for v in values]


def comparison_results(root: Path, name: str) -> str:
    """docs/comparison.md's table: the three methods on the customers all of them keep."""
    results = Results(root, name)
    compared = results.metrics("comparison")
    methods = ("embedding", "tabular", "kprototypes")
    own = {"embedding": results.metrics("evaluate")} | {
        method: results.metrics(method) for method in methods[1:]
    }
    outcome = next(iter(results.dataset.describe))

    def pair(first: list[str], second: list[str]) -> list[str]:
        return [f"{a} / {b}" for a, b in zip(first, second)]

    def of(measure: str) -> list[float]:
        return [compared[f"{method}_{measure}"] for method in methods]

    rows = [
        [
            "Davies-Bouldin / Calinski-Harabasz / silhouette, own space",
            *(
                f"{own[m]['davies_bouldin']:.3f} / {own[m]['calinski_harabasz']:.1f} / "
                f"{own[m]['silhouette']:.3f}"
                for m in methods
            ),
        ],
        [
            "silhouette in the tabular matrix / in the embeddings",
            *pair(
                bold_best(of("on_tabular_silhouette"), False, 3),
                bold_best(of("on_embeddings_silhouette"), False, 3),
            ),
        ],
        ["surrogate held-out accuracy", *bold_best(of("surrogate_accuracy"), False, 3)],
        [
            "ARI across seeds / bootstrap resamples",
            *pair(
                bold_best(of("seed_ari_mean"), False, 2),
                bold_best(of("bootstrap_ari_mean"), False, 2),
            ),
        ],
        [
            f"{outcome_title(results.dataset, outcome).lower()}: rate range across segments "
            "(points) / Cramér's V",
            *pair(
                [f"{100 * v:.1f}" for v in of(f"outcome_{outcome}_spread")],
                bold_best(of(f"outcome_{outcome}_association"), False, 3),
            ),
        ],
    ]
    header = ["", "Embeddings + KMeans", "Tabular KMeans", "K-Prototypes"]
    return markdown_table(header, rows)


TABLES: dict[str, Callable[[Path], str]] = {
    "readme-results": readme_results,
    **{
        f"comparison-{name}": (lambda root, name=name: comparison_results(root, name))
        for name in ("bank", "telco", "churners")
    },
}
FILES = ("README.md", "docs/comparison.md")


def regenerated(text: str, root: Path) -> str:
    def body(match: re.Match) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise SystemExit(f"results: {name}: no such table; known: {', '.join(TABLES)}")
        return f"{match.group('start')}{TABLES[name](root)}\n{match.group('end')}"

    return BLOCK.sub(body, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on a drift")
    check = parser.parse_args().check
    drifted = []
    for file in FILES:
        path = ROOT / file
        text = path.read_text()
        new = regenerated(text, ROOT)
        if new != text:
            drifted.append(file)
            if not check:
                path.write_text(new)
    if check and drifted:
        sys.exit(
            f"{', '.join(drifted)}: a results table differs from the committed metrics; "
            "run `python scripts/results_tables.py` to rewrite it"
        )


if __name__ == "__main__":
    main()
