"""What a marketing manager reads: the per-segment profile table, the segments' names, their
cards and the heatmap of how each differs from all customers.

Which columns are shown, their labels, the phrases that name segments and the outcomes described
per segment all come from the data-set file. The report's wording is in ``templates/segments.md.j2``
and the templates it includes; this module prepares what they show.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from segmentation.artifacts import (
    metric_key,
    subplots,
)
from segmentation.data.dataset import Dataset
from segmentation.data.outcomes import outcome_key, outcome_title
from segmentation.reporting import stability
from segmentation.reporting.render import render
from segmentation.reporting.tables import markdown_table
from segmentation.reporting.tallies import SegmentTallies, profile_columns

# A segment's name carries its naming subject's phrase when that value dominates the segment (held
# by more than half of it, or by a third and this many times commoner than overall), then the
# phrases of its strongest differences from all customers: values most of the segment holds and
# numbers whose mean is at least half a standard deviation away (Cohen's "medium" difference),
# strongest first, as many as fit a readable length.
SUBJECT_MAJORITY, SUBJECT_MIN_SHARE, SUBJECT_MIN_LIFT = 0.5, 1 / 3, 1.5
TRAIT_MIN_SHARE, TRAIT_MIN_DIFFERENCE = 0.5, 0.5
NAME_MAX_TRAITS, NAME_MAX_CHARACTERS = 3, 72
# One column carries "most" of the surrogate's explanation above this share; the numeric columns
# carry "almost none" below this one while they are at least half of the segmentation columns.
DOMINANT_SHARE, NEGLECTED_NUMBERS_SHARE = 0.5, 0.1
FIGURES = ("elbow", "pca_map", "tsne_map", "importance")
HEATMAP = "segment_heatmap"
# A value is listed on a card when its share in the segment is this many times (or this fraction of)
# its share among all segmented customers, and it concerns at least MIN_SHARE of either group.
OVER_RATIO, UNDER_RATIO, MIN_SHARE, VALUES_PER_CARD = 1.25, 0.8, 0.05, 5


def profile(
    tallies: SegmentTallies,
    dataset: Dataset,
    differences: pd.DataFrame,
    adopted_names: dict[int, str],
) -> pd.DataFrame:
    """Size, share, outcome rates, means of the numbers and the most frequent value (with its share)
    of each categorical column, per segment, and its name: the adopted segment's for a segment
    that kept one (``adopted_names``, by stable number), else one from ``differences``
    (``value_differences``, which the heatmap draws too)."""
    numeric, categorical = profile_columns(dataset)
    sizes = tallies.sizes
    columns: dict[str, object] = {
        "segment": sizes.index.to_numpy(),
        "customers": sizes.to_numpy(),
        "share": (sizes / tallies.inliers).to_numpy(),
    }
    for column in dataset.describe:
        key = outcome_key(dataset, column)
        columns[key] = tallies.outcome_means(key).to_numpy()
    for column in numeric:
        columns[f"mean_{column}"] = tallies.means(column).reindex(sizes.index).to_numpy()
    for column in categorical:
        counts = tallies.counts(column)
        # Ties broken alphabetically so the profile does not depend on row order.
        top = [sorted(row.index[row == row.max()])[0] for _, row in counts.iterrows()]
        columns[f"top_{column}"] = top
        columns[f"top_{column}_share"] = [
            counts.loc[segment, value] / size for (segment, size), value in zip(sizes.items(), top)
        ]
    table = pd.DataFrame(columns)
    found = name_segments(table, tallies, dataset, differences)
    taken = set(adopted_names.values())
    names = [
        adopted_names.get(s, f"{name} (#{s})" if name in taken else name)
        for s, name in zip(table["segment"], found)
    ]
    table.insert(1, "name", names)
    return table


def base_values(tallies: SegmentTallies, dataset: Dataset) -> dict[str, float]:
    """What the cards compare each segment with: the numbers' means over the inliers, the outcomes
    over every customer kept, and how many were kept."""
    numeric, _ = profile_columns(dataset)
    base = {column: tallies.overall(column)[0] for column in numeric}
    base |= {
        outcome_key(dataset, c): tallies.outcome_overall(outcome_key(dataset, c))
        for c in dataset.describe
    }
    base["kept"] = tallies.kept
    return base


def with_stability(
    table: pd.DataFrame, found: dict[str, float], fitted: dict[int, int]
) -> pd.DataFrame:
    """The profile with each segment's clusterwise Jaccard and its reading, after its share;
    ``found`` holds them by fitted segment, ``fitted`` maps a stable number to its fitted one."""
    jaccard = [found[f"segment_{fitted[segment]}_jaccard"] for segment in table["segment"]]
    at = table.columns.get_loc("share") + 1
    added = pd.DataFrame(
        {"jaccard": jaccard, "stability": [stability.reading(v) for v in jaccard]},
        index=table.index,
    )
    return pd.concat([table.iloc[:, :at], added, table.iloc[:, at:]], axis=1)


def name_segments(
    table: pd.DataFrame, tallies: SegmentTallies, dataset: Dataset, differences: pd.DataFrame
) -> list[str]:
    """Plain-language names such as "Managers in their 30s: university-educated, high income".

    The lead is the naming subject's phrase when its value dominates the segment, with the decade
    of the naming decade column; there is no lead otherwise. The traits are the phrases of the
    segment's strongest differences from all customers (``TRAIT_MIN_DIFFERENCE`` standard
    deviations or more), strongest first, as many as fit ``NAME_MAX_CHARACTERS``. A segment where
    nothing stands out takes the data set's ``mixed`` name; names that clash get their number.
    """
    names = []
    for row in table.to_dict(orient="records"):
        lead = _lead(row, tallies, dataset)
        own = differences[differences["segment"] == row["segment"]]
        traits = _traits(own, dataset)
        names.append(_name(lead, traits) if lead or traits else dataset.naming.mixed)
    return [
        name if names.count(name) == 1 else f"{name} (#{s})"
        for name, s in zip(names, table["segment"])
    ]


def _lead(row: dict, tallies: SegmentTallies, dataset: Dataset) -> str:
    naming, lead = dataset.naming, ""
    if naming.subject is not None:
        value, share = row[f"top_{naming.subject}"], row[f"top_{naming.subject}_share"]
        phrase = dataset.columns[naming.subject].phrases.get(value)
        overall = tallies.counts(naming.subject).sum()
        lift = share / (overall[value] / tallies.inliers)
        dominant = share > SUBJECT_MAJORITY or (
            share >= SUBJECT_MIN_SHARE and lift >= SUBJECT_MIN_LIFT
        )
        if phrase and dominant:
            lead = phrase
    if naming.decade is not None:
        decade = f"in their {int(row[f'mean_{naming.decade}'] // 10 * 10)}s"
        lead = f"{lead} {decade}" if lead else decade.capitalize()
    return lead


def _traits(differences: pd.DataFrame, dataset: Dataset) -> list[str]:
    """The phrases of a segment's strong differences, strongest first."""
    found = []
    for column, value, difference, share in differences[
        ["column", "value", "difference", "segment_share"]
    ].itertuples(index=False):
        if column == dataset.naming.subject or abs(difference) < TRAIT_MIN_DIFFERENCE:
            continue
        phrases = dataset.columns[column].phrases
        if dataset.columns[column].kind == "numeric":
            phrase = phrases.get("high" if difference > 0 else "low")
        elif difference > 0 and share >= TRAIT_MIN_SHARE:
            phrase = phrases.get(value)
        else:
            phrase = None
        if phrase:
            found.append((abs(difference), column, phrase))
    ranked = [phrase for _, _, phrase in sorted(found, key=lambda item: (-item[0], item[1]))]
    return list(dict.fromkeys(ranked))[:NAME_MAX_TRAITS]


def _name(lead: str, traits: list[str]) -> str:
    """The lead and as many traits as fit the readable length (at least one)."""
    kept = traits[:1]
    for trait in traits[1:]:
        if len(_joined(lead, [*kept, trait])) > NAME_MAX_CHARACTERS:
            break
        kept.append(trait)
    return _joined(lead, kept)


def _joined(lead: str, traits: list[str]) -> str:
    listed = ", ".join(traits)
    if not lead:
        return listed[:1].upper() + listed[1:]
    return f"{lead}: {listed}" if listed else lead


def representation(tallies: SegmentTallies, dataset: Dataset) -> pd.DataFrame:
    """Per segment, column and value (a band of a number): its share in the segment, among all
    customers, and their ratio."""
    numeric, categorical = profile_columns(dataset)
    parts = []
    for column in numeric + categorical:
        counts = tallies.counts(column)
        base = counts.sum() / tallies.inliers
        within = counts.div(tallies.sizes, axis=0)
        long = within.stack().rename("segment_share").reset_index()
        long.columns = ["segment", "value", "segment_share"]
        long["base_share"] = base.reindex(long["value"]).to_numpy()
        parts.append(long.assign(column=column, ratio=long["segment_share"] / long["base_share"]))
    columns = ["segment", "column", "value", "segment_share", "base_share", "ratio"]
    return pd.concat([part[columns] for part in parts], ignore_index=True)


def distinctive_values(shares: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One segment's over- and under-represented values, strongest first
    (ties by column and value)."""
    over = shares[(shares["ratio"] >= OVER_RATIO) & (shares["segment_share"] >= MIN_SHARE)]
    under = shares[(shares["ratio"] <= UNDER_RATIO) & (shares["base_share"] >= MIN_SHARE)]
    over = over.sort_values(
        ["ratio", "column", "value"], ascending=[False, True, True], kind="stable"
    )
    under = under.sort_values(["ratio", "column", "value"], kind="stable")
    return over.head(VALUES_PER_CARD), under.head(VALUES_PER_CARD)


def value_differences(tallies: SegmentTallies, dataset: Dataset) -> pd.DataFrame:
    """How far each segment sits from all customers, in standard deviations, per profile column
    (and per value of a categorical one).

    Numbers: (segment mean - overall mean) / overall standard deviation. Categories: for each value
    held by some but not all customers, (segment share - overall share) / sqrt(overall share x
    (1 - overall share)), the standardized difference of a yes/no indicator.
    Rows: segment, column, value ("" for a number), difference, segment_share.
    """
    numeric, _ = profile_columns(dataset)
    parts = []
    for column in dataset.segment_on + dataset.context_columns:
        if column in numeric:
            mean, spread = tallies.overall(column)
            means = tallies.means(column)
            scaled = (means - mean) / spread if spread > 0 else means * 0.0
            parts.append(
                pd.DataFrame(
                    {
                        "segment": scaled.index,
                        "column": column,
                        "value": "",
                        "difference": scaled.to_numpy(),
                        "segment_share": np.nan,
                    }
                )
            )
            continue
        counts = tallies.counts(column)
        base = counts.sum() / tallies.inliers
        base = base[(base > 0) & (base < 1)]
        within = counts.div(tallies.sizes, axis=0).reindex(columns=base.index)
        scaled = (within - base) / np.sqrt(base * (1 - base))
        long = scaled.stack().rename("difference").reset_index()
        long.columns = ["segment", "value", "difference"]
        long["segment_share"] = within.stack().to_numpy()
        parts.append(long.assign(column=column))
    columns = ["segment", "column", "value", "difference", "segment_share"]
    return pd.concat([part[columns] for part in parts], ignore_index=True)


def standardized_differences(
    differences: pd.DataFrame, segments: list[int], dataset: Dataset
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The heatmap's cells: per segment and profile column, the difference of a number, or of the
    categorical column's most over-represented value (for yes/no columns both values differ equally
    in size, and "more of X" reads better than "less of not-X"; ties go to the first value
    alphabetically). Returns the differences and the value each refers to, segments as rows."""
    columns = dataset.segment_on + dataset.context_columns
    found = differences.sort_values(
        ["segment", "column", "difference", "value"],
        ascending=[True, True, False, True],
        kind="stable",
    )
    strongest = found.drop_duplicates(["segment", "column"])
    differences = strongest.pivot(index="segment", columns="column", values="difference")
    values = strongest.pivot(index="segment", columns="column", values="value")
    return (
        differences.reindex(index=segments, columns=columns).fillna(0.0),
        values.reindex(index=segments, columns=columns).astype(object).fillna(""),
    )


def heatmap_figure(
    differences: pd.DataFrame, values: pd.DataFrame, names: list[str], labels: list[str]
):
    figure, axis = subplots(
        figsize=(1.15 * len(differences.columns) + 3.5, 0.75 * len(differences) + 2)
    )
    limit = max(1.0, float(np.abs(differences.to_numpy()).max()))
    image = axis.imshow(
        differences.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto"
    )
    axis.set_xticks(
        range(len(differences.columns)),
        [textwrap.fill(label, 18) for label in labels],
        rotation=30,
        ha="left",
    )
    axis.set_yticks(
        range(len(differences)),
        [textwrap.fill(f"{s}. {n}", 36) for s, n in zip(differences.index, names)],
        fontsize=8,
    )
    axis.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    for row, segment in enumerate(differences.index):
        for col, column in enumerate(differences.columns):
            value = differences.loc[segment, column]
            label = f"{textwrap.fill(str(values.loc[segment, column]), 12)}\n{value:+.1f}".strip()
            axis.text(
                col,
                row,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(value) > 0.6 * limit else "black",
            )
    figure.colorbar(image, ax=axis, label="standardized difference from all customers")
    axis.set_title(
        "How each segment differs from all customers (categories: its most over-represented value)",
        fontsize=9,
    )
    return figure


def _amount(value: float, unit: str) -> str:
    number = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return f"{number} {unit}".strip()


def _outcome(value: float, dataset: Dataset, column: str) -> str:
    spec = dataset.columns[column]
    return _amount(value, spec.unit) if spec.kind == "numeric" else f"{value:.1%}"


def segment_card(
    row: dict, drivers: pd.DataFrame, shares: pd.DataFrame, base: dict[str, float], dataset: Dataset
) -> dict[str, object]:
    """One segment's card for segment_card.md.j2: size, outcomes, profile, its SHAP drivers, and a
    table of what it has more or less of than all customers ("" when nothing stands out)."""
    numeric, categorical = profile_columns(dataset)
    means = " · ".join(
        f"{dataset.label(c)} {_amount(row[f'mean_{c}'], dataset.columns[c].unit)} on average "
        f"(all: {_amount(base[c], dataset.columns[c].unit)})"
        for c in numeric
    )
    size = f"**{row['customers']:,} customers** ({row['share']:.1%})"
    own = drivers[drivers["segment"] == row["segment"]].sort_values("rank")
    band = stability.reading(row["jaccard"])
    return {
        "segment": row["segment"],
        "name": row["name"],
        "size": " · ".join(part for part in (size, means) if part),
        "outcomes": "; ".join(
            f"{outcome_title(dataset, c)} **{_outcome(row[outcome_key(dataset, c)], dataset, c)}** "
            f"(all customers: {_outcome(base[outcome_key(dataset, c)], dataset, c)})"
            for c in dataset.describe
        ),
        "typical": "; ".join(
            f"{dataset.label(c)}: {row[f'top_{c}']} ({row[f'top_{c}_share']:.0%})"
            for c in categorical
        ),
        "shap": ", ".join(
            f"**{f}** ({v:.2f})" for f, v in zip(own["feature"], own["mean_abs_shap"])
        )
        or "-",
        "jaccard": row["jaccard"],
        "band": band,
        "band_meaning": stability.BAND_MEANINGS[band],
        "values_table": values_table(shares, dataset),
    }


def values_table(shares: pd.DataFrame, dataset: Dataset) -> str:
    """A segment's over- and under-represented values against all customers; "" when none is."""
    over, under = distinctive_values(shares)
    if over.empty and under.empty:
        return ""
    rows = [
        [word, f"{dataset.label(c)}: {v}", f"{s:.0%}", f"{b:.0%}", f"×{r:.2f}"]
        for word, found in (("more", over), ("fewer", under))
        for c, v, s, b, r in found[
            ["column", "value", "segment_share", "base_share", "ratio"]
        ].itertuples(index=False)
    ]
    return markdown_table(["", "Value", "In segment", "All customers", "Ratio"], rows)


def summary_table(table: pd.DataFrame, dataset: Dataset) -> str:
    """One line per segment: size, stability, outcomes, the numbers' means and the most frequent
    value of each categorical column."""
    numeric, categorical = profile_columns(dataset)
    columns = {
        "Segment": table["segment"],
        "Name": table["name"],
        "Customers": table["customers"].map("{:,}".format),
        "Share": table["share"].map("{:.1%}".format),
        "Stability (Jaccard)": [f"{v:.2f} {stability.reading(v)}" for v in table["jaccard"]],
        **{
            outcome_title(dataset, c): [
                _outcome(v, dataset, c) for v in table[outcome_key(dataset, c)]
            ]
            for c in dataset.describe
        },
        **{
            f"{dataset.label(c)} (mean)": [
                _amount(v, dataset.columns[c].unit) for v in table[f"mean_{c}"]
            ]
            for c in numeric
        },
        **{
            dataset.label(c): [
                f"{value} ({share:.0%})"
                for value, share in zip(table[f"top_{c}"], table[f"top_{c}_share"])
            ]
            for c in categorical
        },
    }
    return markdown_table(list(columns), zip(*columns.values()))


# How numbers are written -> the other way the report points to, and what it writes.
OTHER_WAY = {
    "value": ("band", "band words (`{label}: high`)"),
    "band": ("both", "values with their band words (`{label}: 42 (high)`)"),
    "both": ("band", "band words alone (`{label}: high`)"),
}


def driver_sentences(
    importance: pd.DataFrame, explain: dict, dataset: Dataset, numbers: str
) -> list[str]:
    """What the segments follow, in plain sentences: the leading columns, and a warning when one
    column carries most of the explanation or the numbers carry almost none of it, pointing to the
    other way of writing numbers."""
    shares = importance.set_index("feature")["share"]
    leading = ", ".join(
        f"{dataset.label(column)} ({share:.0%})" for column, share in shares.head(3).items()
    )
    sentences = [
        f"The segments split mainly on {leading} of the surrogate's explanation "
        f"(mean |SHAP| over {len(shares)} segmentation columns)."
    ]
    top, top_share = shares.index[0], shares.iloc[0]
    if top_share >= DOMINANT_SHARE:
        sentences.append(
            f"One column, {dataset.label(top)}, carries {top_share:.0%} of it: the segments are "
            f"mostly its groups, and the other columns barely tell them apart."
        )
    numeric = dataset.numeric
    numeric_share = explain.get("numeric_shap_share", 0.0)
    if len(numeric) >= len(dataset.segment_on) / 2 and numeric_share < NEGLECTED_NUMBERS_SHARE:
        part = len(numeric) / len(dataset.segment_on)
        sentences.append(
            f"The {len(numeric)} numeric columns are {part:.0%} of the segmentation columns but "
            f"carry {numeric_share:.0%} of the explanation, and the segments explain "
            f"{explain['eta_squared_mean']:.1%} of their variance on average (mean η²): the "
            "segments barely follow the numbers."
        )
    if len(sentences) > 1 and numeric:
        other, how = OTHER_WAY[numbers]
        sentences.append(
            f"The texts write numbers as `{numbers}`; try "
            f"{how.format(label=dataset.label(numeric[0]))} with "
            f"`dvc exp run -S text.numbers={other}` (docs/comparison.md measures both ways)."
        )
    return sentences


def drivers_section(importance: pd.DataFrame, explain: dict, dataset: Dataset, numbers: str) -> str:
    return render(
        "segment_drivers.md.j2",
        sentences=" ".join(driver_sentences(importance, explain, dataset, numbers)),
        table=driver_table(importance, explain, dataset),
    )


def driver_table(importance: pd.DataFrame, explain: dict, dataset: Dataset) -> str:
    """Each segmentation column's share of the explanation and, for a number, its η²."""
    rows = []
    for column, share in zip(importance["feature"], importance["share"]):
        eta_squared = explain.get(metric_key("eta_squared", column))
        rows.append(
            [
                dataset.label(column),
                f"{share:.1%}",
                "" if eta_squared is None else f"{eta_squared:.3f}",
            ]
        )
    return markdown_table(["Column", "Share of the explanation", "η² (numbers)"], rows)


def warning_section(warnings: list[str], dataset_file: str) -> str:
    if not warnings:
        return ""
    return render("data_warnings.md.j2", warnings=warnings, dataset_file=dataset_file)


def outcome_ranges(table: pd.DataFrame, base: dict[str, float], dataset: Dataset) -> list[dict]:
    """Per described outcome: its value among all customers, and the segments lowest and highest
    on it."""
    ranges = []
    for column in dataset.describe:
        key = outcome_key(dataset, column)
        low, high = table.loc[table[key].idxmin()], table.loc[table[key].idxmax()]
        ranges.append(
            {
                "title": outcome_title(dataset, column),
                "overall": _outcome(base[key], dataset, column),
                "lowest": _outcome(low[key], dataset, column),
                "lowest_segment": low["segment"],
                "highest": _outcome(high[key], dataset, column),
                "highest_segment": high["segment"],
            }
        )
    return ranges


def render_report(
    table: pd.DataFrame,
    drivers: pd.DataFrame,
    shares: pd.DataFrame,
    base: dict[str, float],
    metrics: dict[str, dict],
    context: dict,
    dataset: Dataset,
) -> str:
    explain, settings = metrics["explain"], context["stability"]
    text_only = dataset.context_columns
    return render(
        "segments.md.j2",
        **context,
        title=dataset.title,
        rows=metrics["rows"],
        outliers=metrics["outliers"],
        evaluate=metrics["evaluate"],
        explain=explain,
        columns=len(dataset.segment_on),
        text_only=", ".join(f"`{c}`" for c in text_only),
        accuracy_with_text_only=(
            explain[metric_key("holdout_accuracy_with", *text_only)] if text_only else None
        ),
        outcomes=outcome_ranges(table, base, dataset),
        trust=stability.summary(
            context["k"], metrics["elbow"], metrics["stability"], settings.near_tie_gap_pct
        ),
        sampled=min(settings.rows, metrics["outliers"]["inliers"]),
        bands_legend=stability.bands_legend(),
        summary_table=summary_table(table, dataset),
        kept=base["kept"],
        cards=[
            segment_card(row, drivers, shares[shares["segment"] == row["segment"]], base, dataset)
            for row in table.to_dict(orient="records")
        ],
        figures=FIGURES,
        heatmap=HEATMAP,
        values_per_card=VALUES_PER_CARD,
        over_ratio=OVER_RATIO,
        under_ratio=UNDER_RATIO,
        min_share=MIN_SHARE,
    )
