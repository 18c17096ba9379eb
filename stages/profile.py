"""Stage 9: a per-segment profile table, segment cards and a comparison heatmap for a marketing manager."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from stages.artifacts import CUSTOMER_ID, read_csv, read_json, run, subplots, write_csv, write_png, write_text
from stages.config import CATEGORICAL_COLUMNS, LABELS, METRICS, PLOTS, RAW_CSV, REPORTS, SEGMENT_COLUMNS, load_params, read_customers

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
HEATMAP = "segment_heatmap"
# Age and balance in bands, so the cards can say which ranges a segment over- or under-represents.
AGE_BANDS = ([-np.inf, 30, 40, 50, 60, np.inf], ["under 30", "30-39", "40-49", "50-59", "60 and over"])
BALANCE_BANDS = ([-np.inf, 0, 1000, 5000, np.inf], ["negative", "0-999", "1,000-4,999", "5,000 and over"])
# A value is listed on a card when its share in the segment is this many times (or this fraction of)
# its share among all segmented customers, and it concerns at least MIN_SHARE of either group.
OVER_RATIO, UNDER_RATIO, MIN_SHARE, VALUES_PER_CARD = 1.25, 0.8, 0.05, 5
# The heatmap compares segments on the 8 segmentation columns and `contact`, which the text carries.
HEATMAP_COLUMNS = SEGMENT_COLUMNS + ("contact",)


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


def banded(customers: pd.DataFrame) -> pd.DataFrame:
    """The profile columns with age and balance replaced by their bands, as text."""
    bands = customers.loc[:, list(PROFILE_COLUMNS)].copy()
    for column, (edges, labels) in (("age", AGE_BANDS), ("balance", BALANCE_BANDS)):
        bands[column] = pd.cut(customers[column], edges, labels=labels, right=False).astype(str)
    return bands


def representation(customers: pd.DataFrame, segments: pd.Series) -> pd.DataFrame:
    """Per segment, column and value: its share in the segment, among all customers, and their ratio."""
    bands = banded(customers)
    frame = bands.assign(segment=segments.to_numpy())
    rows = []
    for column in bands.columns:
        base = bands[column].value_counts(normalize=True)
        within = frame.groupby("segment")[column].value_counts(normalize=True).unstack(fill_value=0.0)
        for segment, shares in within.iterrows():
            for value, base_share in base.items():
                share = shares.get(value, 0.0)
                rows.append({"segment": int(segment), "column": column, "value": value,
                             "segment_share": share, "base_share": base_share, "ratio": share / base_share})
    return pd.DataFrame(rows)


def distinctive_values(shares: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One segment's over- and under-represented values, strongest first (ties by column and value)."""
    over = shares[(shares["ratio"] >= OVER_RATIO) & (shares["segment_share"] >= MIN_SHARE)]
    under = shares[(shares["ratio"] <= UNDER_RATIO) & (shares["base_share"] >= MIN_SHARE)]
    over = over.sort_values(["ratio", "column", "value"], ascending=[False, True, True], kind="stable")
    under = under.sort_values(["ratio", "column", "value"], kind="stable")
    return over.head(VALUES_PER_CARD), under.head(VALUES_PER_CARD)


def standardized_differences(customers: pd.DataFrame, segments: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How far each segment sits from all customers on each column, in standard deviations.

    Numbers: (segment mean - overall mean) / overall standard deviation. Text columns: for each value,
    (segment share - overall share) / sqrt(overall share x (1 - overall share)), the standardized
    difference of a yes/no indicator; the most over-represented value stands for the column. Returns the
    differences and the value each one refers to (empty for numbers), segments as rows.
    """
    frame = customers.assign(segment=segments.to_numpy())
    differences = pd.DataFrame(0.0, index=sorted(frame["segment"].unique()), columns=list(HEATMAP_COLUMNS))
    values = pd.DataFrame("", index=differences.index, columns=differences.columns)
    for column in HEATMAP_COLUMNS:
        if column in ("age", "balance"):
            spread = customers[column].std(ddof=0)
            means = frame.groupby("segment")[column].mean()
            differences[column] = (means - customers[column].mean()) / spread if spread > 0 else 0.0
            continue
        base = customers[column].value_counts(normalize=True)
        base = base[(base > 0) & (base < 1)]
        within = frame.groupby("segment")[column].value_counts(normalize=True).unstack(fill_value=0.0)
        within = within.reindex(columns=base.index, fill_value=0.0)
        scaled = (within - base) / np.sqrt(base * (1 - base))
        for segment, row in scaled.iterrows():
            if row.empty:
                continue
            # The most over-represented value: for yes/no columns both values differ equally in size,
            # and "more of X" reads better than "less of not-X". Ties go to the first value alphabetically.
            strongest = row.sort_index().idxmax()
            differences.loc[segment, column], values.loc[segment, column] = row[strongest], strongest
    return differences, values


def heatmap_figure(differences: pd.DataFrame, values: pd.DataFrame, names: list[str]):
    figure, axis = subplots(figsize=(1.15 * len(differences.columns) + 3.5, 0.75 * len(differences) + 2))
    limit = max(1.0, float(np.abs(differences.to_numpy()).max()))
    image = axis.imshow(differences.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(len(differences.columns)), differences.columns)
    axis.set_yticks(range(len(differences)), [textwrap.fill(f"{s}. {n}", 36) for s, n in zip(differences.index, names)], fontsize=8)
    axis.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    for row, segment in enumerate(differences.index):
        for col, column in enumerate(differences.columns):
            value = differences.loc[segment, column]
            label = f"{values.loc[segment, column]}\n{value:+.1f}".strip()
            axis.text(col, row, label, ha="center", va="center", fontsize=7,
                      color="white" if abs(value) > 0.6 * limit else "black")
    figure.colorbar(image, ax=axis, label="standardized difference from all customers")
    axis.set_title("How each segment differs from all customers (text columns: its most over-represented value)", fontsize=9)
    return figure


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def segment_card(row: dict, drivers: pd.DataFrame, shares: pd.DataFrame, base: dict[str, float]) -> str:
    """One segment in words: size, profile, its SHAP drivers, and what it has more or less of than all customers."""
    typical = ", ".join(f"{column} {row[f'top_{column}']} ({row[f'top_{column}_share']:.0%})" for column in PROFILE_COLUMNS)
    own = drivers[drivers["segment"] == row["segment"]].sort_values("rank")
    shap = ", ".join(f"**{f}** ({v:.2f})" for f, v in zip(own["feature"], own["mean_abs_shap"])) or "-"
    over, under = distinctive_values(shares)
    lines = [
        f"### {row['segment']}. {row['name']}",
        "",
        f"**{row['customers']:,} customers** ({row['share']:.1%}) · mean age {row['mean_age']:.1f} "
        f"(all: {base['age']:.1f}) · mean balance {row['mean_balance']:,.0f} EUR (all: {base['balance']:,.0f} EUR)",
        "",
        f"- Most frequent values: {typical}.",
        f"- Top SHAP features (mean |SHAP| for this segment, log-odds): {shap}.",
        "",
    ]
    if over.empty and under.empty:
        return "\n".join(lines + ["No value is markedly over- or under-represented.", ""])
    lines += ["| | Value | In segment | All customers | Ratio |", "|---|---|---|---|---|"]
    for word, found in (("more", over), ("fewer", under)):
        lines += [
            f"| {word} | {c} = {v} | {s:.0%} | {b:.0%} | ×{r:.2f} |"
            for c, v, s, b, r in found[["column", "value", "segment_share", "base_share", "ratio"]].itertuples(index=False)
        ]
    return "\n".join(lines + [""])


def render_report(table: pd.DataFrame, drivers: pd.DataFrame, shares: pd.DataFrame, base: dict[str, float],
                  metrics: dict[str, dict], model: str, k: int) -> str:
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
    cards = "\n".join(
        segment_card(row, drivers, shares[shares["segment"] == row["segment"]], base) for row in table.to_dict(orient="records")
    )
    outliers, evaluate, explain = metrics["outliers"], metrics["evaluate"], metrics["explain"]
    figures = "\n\n".join(f"![{name}](../plots/{name}.png)" for name in FIGURES)
    return f"""# Customer segments

Generated by `dvc repro` (stage `profile`); do not edit by hand.

- Model: `{model}`; k = {k} segments; {outliers['inliers']:,} of {outliers['customers']:,} customers kept after ECOD outlier removal.
- Davies-Bouldin {evaluate['davies_bouldin']:.4f} (lower is better), Calinski-Harabasz {evaluate['calinski_harabasz']:.1f}, silhouette {evaluate['silhouette']:.4f} (on the embeddings).
- A LightGBM model on the 8 original columns recovers the segment of held-out customers with accuracy {explain['holdout_accuracy']:.3f} and macro-F1 {explain['holdout_macro_f1']:.3f} (majority-class baseline {explain['majority_class_accuracy']:.3f}); with `contact`, which the text also carries, accuracy is {explain['holdout_accuracy_with_contact']:.3f}.

Segments are numbered from largest to smallest. Each categorical column shows the most frequent value and its share within the segment.

{_markdown_table(shown)}

## The segments at a glance

Each cell: how far the segment is from all {outliers['inliers']:,} segmented customers, in standard deviations (red: more, blue: less). For age and balance, the difference of the means; for a text column, the value the segment has most more of than all customers, and by how much.

![{HEATMAP}](../plots/{HEATMAP}.png)

## Segment cards

"All customers" means the {outliers['inliers']:,} segmented customers. A card lists up to {VALUES_PER_CARD} values the segment has **more** of (at least ×{OVER_RATIO} and {MIN_SHARE:.0%} of the segment) and **fewer** of (at most ×{UNDER_RATIO}, among values held by {MIN_SHARE:.0%} of all customers); age and balance are in bands. The SHAP features are the columns the LightGBM surrogate leans on most to recognise the segment's own members.

{cards}
## Figures

{figures}
"""


def main() -> None:
    params = load_params()
    labels = read_csv(LABELS)
    customers = read_customers(RAW_CSV).loc[labels[CUSTOMER_ID]]
    segments = labels["segment"]
    table = profile(customers, segments)
    metrics = {name: read_json(METRICS / f"{name}.json") for name in ("outliers", "evaluate", "explain")}
    drivers = read_csv(REPORTS / "segment_drivers.csv")
    base = {"age": customers["age"].mean(), "balance": customers["balance"].mean()}
    report = render_report(table, drivers, representation(customers, segments), base, metrics, params.model, params.k)
    differences, values = standardized_differences(customers, segments)
    write_png(PLOTS / f"{HEATMAP}.png", heatmap_figure(differences, values, table["name"].tolist()))
    write_csv(REPORTS / "profiles.csv", table)
    write_text(REPORTS / "segments.md", report)


if __name__ == "__main__":
    run(main)
