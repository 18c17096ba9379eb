"""Stage 9: a per-segment profile table and a markdown report a marketing manager can read."""
from __future__ import annotations

import pandas as pd

from stages.artifacts import CUSTOMER_ID, read_csv, read_json, run, write_csv, write_text
from stages.config import CATEGORICAL_COLUMNS, LABELS, METRICS, RAW_CSV, REPORTS, load_params, read_customers

JOB_NOUNS = {
    "admin.": "Admin staff",
    "blue-collar": "Blue-collar workers",
    "entrepreneur": "Entrepreneurs",
    "housemaid": "Housemaids",
    "management": "Managers",
    "retired": "Retirees",
    "self-employed": "Self-employed",
    "services": "Service workers",
    "student": "Students",
    "technician": "Technicians",
    "unemployed": "Unemployed",
}
TRAITS = {
    ("housing", "yes"): "housing loan",
    ("housing", "no"): "no housing loan",
    ("loan", "yes"): "personal loan",
    ("default", "yes"): "in default",
    ("contact", "cellular"): "reached by mobile",
    ("contact", "telephone"): "reached by landline",
    ("contact", "unknown"): "no contact channel on file",
    ("marital", "single"): "single",
    ("marital", "divorced"): "divorced",
    ("marital", "married"): "married",
    ("education", "tertiary"): "university-educated",
    ("education", "secondary"): "secondary education",
    ("education", "primary"): "primary education",
}
# `contact` is not one of the 8 segmentation columns, but the article's text carries it.
PROFILE_COLUMNS = CATEGORICAL_COLUMNS + ("contact",)
# A value names a segment when most of the segment has it and it is this much commoner than overall.
TRAIT_MIN_SHARE, TRAIT_MIN_LIFT, TRAITS_IN_NAME = 0.5, 1.2, 2
JOB_MIN_LIFT = 1.5
# A segment whose mean balance is this far above or below the customer base's gets a balance word.
BALANCE_BAND = 0.25
FIGURES = ("elbow", "pca_map", "tsne_map", "importance")


def profile(customers: pd.DataFrame, segments: pd.Series) -> pd.DataFrame:
    """Size, share, mean age and balance, and the most frequent value (with its share) per column."""
    frame = customers.assign(segment=segments.to_numpy())
    rows = []
    for segment, group in frame.groupby("segment", sort=True):
        row = {
            "segment": int(segment),
            "customers": len(group),
            "share": len(group) / len(frame),
            "mean_age": group["age"].mean(),
            "mean_balance": group["balance"].mean(),
        }
        for column in PROFILE_COLUMNS:
            counts = group[column].value_counts()
            # Ties broken alphabetically so the profile does not depend on row order.
            top = sorted(counts[counts == counts.max()].index)[0]
            row[f"top_{column}"] = top
            row[f"top_{column}_share"] = counts[top] / len(group)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(1, "name", name_segments(table, customers))
    return table


def name_segments(table: pd.DataFrame, customers: pd.DataFrame) -> list[str]:
    """Plain-language names such as "Managers in their 30s: university-educated, reached by mobile".

    The job and the traits named are those over-represented in the segment against all customers.
    """
    overall = {column: customers[column].value_counts(normalize=True) for column in PROFILE_COLUMNS}
    mean_balance = customers["balance"].mean()
    stems, traits, balances = [], [], []
    for row in table.to_dict(orient="records"):
        job_lift = row["top_job_share"] / overall["job"][row["top_job"]]
        job = JOB_NOUNS.get(row["top_job"]) if row["top_job_share"] >= TRAIT_MIN_SHARE or job_lift >= JOB_MIN_LIFT else None
        stems.append(f"{job or 'Mixed jobs'} in their {int(row['mean_age'] // 10 * 10)}s")
        candidates = []
        for column in PROFILE_COLUMNS:
            value, share = row[f"top_{column}"], row[f"top_{column}_share"]
            lift = share / overall[column][value]
            if (column, value) in TRAITS and share >= TRAIT_MIN_SHARE and lift >= TRAIT_MIN_LIFT:
                candidates.append((-lift, TRAITS[column, value]))
        traits.append([phrase for _, phrase in sorted(candidates)])
        if row["mean_balance"] > mean_balance * (1 + BALANCE_BAND):
            balances.append("high balance")
        elif row["mean_balance"] < mean_balance * (1 - BALANCE_BAND):
            balances.append("low balance")
        else:
            balances.append(None)
    names = [_name(stem, found[:TRAITS_IN_NAME], word) for stem, found, word in zip(stems, traits, balances)]
    # Segments that would share a name get all their traits, then their number.
    clashing = {name for name in names if names.count(name) > 1}
    names = [
        _name(stem, found, word) if name in clashing else name
        for name, stem, found, word in zip(names, stems, traits, balances)
    ]
    return [name if names.count(name) == 1 else f"{name} (#{s})" for name, s in zip(names, table["segment"])]


def _name(stem: str, traits: list[str], balance: str | None) -> str:
    parts = traits + ([balance] if balance else [])
    return f"{stem}: {', '.join(parts)}" if parts else stem


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_report(table: pd.DataFrame, drivers: pd.DataFrame, metrics: dict[str, dict], model: str, k: int) -> str:
    shown = pd.DataFrame(
        {
            "Segment": table["segment"],
            "Name": table["name"],
            "Customers": table["customers"].map("{:,}".format),
            "Share": table["share"].map("{:.1%}".format),
            "Mean age": table["mean_age"].map("{:.1f}".format),
            "Mean balance (EUR)": table["mean_balance"].map("{:,.0f}".format),
            **{
                column.capitalize(): [
                    f"{value} ({share:.0%})" for value, share in zip(table[f"top_{column}"], table[f"top_{column}_share"])
                ]
                for column in PROFILE_COLUMNS
            },
        }
    )
    top_drivers = drivers.sort_values(["segment", "rank"]).groupby("segment")["feature"].agg(", ".join)
    driver_lines = [f"- **Segment {s}** ({name}): {top_drivers.get(s, '-')}" for s, name in zip(table["segment"], table["name"])]
    outliers, evaluate, explain = metrics["outliers"], metrics["evaluate"], metrics["explain"]
    figures = "\n\n".join(f"![{name}](../plots/{name}.png)" for name in FIGURES)
    return f"""# Customer segments

Generated by `dvc repro` (stage `profile`); do not edit by hand.

- Model: `{model}`; k = {k} segments; {outliers['inliers']:,} of {outliers['customers']:,} customers kept after ECOD outlier removal.
- Davies-Bouldin {evaluate['davies_bouldin']:.4f} (lower is better), Calinski-Harabasz {evaluate['calinski_harabasz']:.1f}, silhouette {evaluate['silhouette']:.4f} (on the embeddings).
- A LightGBM model on the 8 original columns recovers the segment of held-out customers with accuracy {explain['holdout_accuracy']:.3f} and macro-F1 {explain['holdout_macro_f1']:.3f} (majority-class baseline {explain['majority_class_accuracy']:.3f}); with `contact`, which the text also carries, accuracy is {explain['holdout_accuracy_with_contact']:.3f}.

Segments are numbered from largest to smallest. Each categorical column shows the most frequent value and its share within the segment.

{_markdown_table(shown)}

## What sets each segment apart

Columns with the largest mean |SHAP| for the segment's own class, among its members:

{chr(10).join(driver_lines)}

## Figures

{figures}
"""


def main() -> None:
    params = load_params()
    labels = read_csv(LABELS)
    customers = read_customers(RAW_CSV).loc[labels[CUSTOMER_ID]]
    table = profile(customers, labels["segment"])
    metrics = {name: read_json(METRICS / f"{name}.json") for name in ("outliers", "evaluate", "explain")}
    drivers = read_csv(REPORTS / "segment_drivers.csv")
    write_csv(REPORTS / "profiles.csv", table)
    write_text(REPORTS / "segments.md", render_report(table, drivers, metrics, params.model, params.k))


if __name__ == "__main__":
    run(main)
