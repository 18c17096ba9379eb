"""The segment profiles and the report: counts, outcome rates and names, the report's sections,
over- and under-represented values, bands, and the standardized-difference heatmap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import profiled

from segmentation import text
from segmentation.artifacts import write_png
from segmentation.config import StabilityParams
from segmentation.reporting import profile
from segmentation.reporting.tallies import SegmentTallies, band_labels


def test_profile_counts_modes_outcomes_and_names(segmented, bank):
    customers, segments = segmented
    table = profiled(customers, segments, bank)
    assert table["customers"].sum() == 600 and table["share"].sum() == pytest.approx(1.0)
    assert (table.loc[table["segment"].isin([1, 3]), "top_housing"] == "yes").all()
    assert (table.loc[table["segment"].isin([3, 4]), "top_loan"] == "yes").all()
    assert table["name"].is_unique and all(isinstance(name, str) and name for name in table["name"])
    # the outcome is a rate per segment, and the segments' rates average to the overall one
    rates = [customers.loc[(segments == s).to_numpy(), "y"].eq("yes").mean() for s in (1, 2, 3, 4)]
    assert table["y_yes_rate"].tolist() == pytest.approx(rates)
    assert (table["y_yes_rate"] * table["share"]).sum() == pytest.approx(
        customers["y"].eq("yes").mean()
    )
    assert {"mean_age", "mean_balance", "top_contact", "top_contact_share"} <= set(table.columns)


def _six_customers(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "age": [45, 47, 24, 25, 33, 35],
            "balance": [3000, 3200, 50, 80, 900, 1000],
            "job": ["management", "management", "student", "student", "technician", "services"],
            "marital": ["married", "married", "single", "single", "married", "single"],
            "education": ["tertiary", "tertiary", "secondary", "secondary", "secondary", "primary"],
            "default": ["no"] * 6,
            "housing": ["no", "no", "yes", "yes", "no", "yes"],
            "loan": ["no"] * 6,
            "contact": ["cellular"] * 4 + ["unknown"] * 2,
            "y": ["yes", "no", "no", "no", "yes", "yes"],
        }
        | columns
    )
    frame.index = frame.index.astype(str)
    return frame


def test_segment_names_state_what_is_over_represented(bank):
    table = profiled(_six_customers(), pd.Series([1, 1, 2, 2, 3, 3]), bank)
    assert table["name"].tolist() == [
        # Strongest differences first, as many as fit 72 characters: "no housing loan" (1.0 SD,
        # tied with "married") would make the first name 73.
        "Managers in their 40s: university-educated, high balance",
        "Students in their 20s: low balance, secondary education, housing loan",
        "Service workers in their 30s: no contact channel on file",
    ]


def test_a_segment_that_kept_an_adopted_one_keeps_its_name(bank):
    tallies = SegmentTallies.of(_six_customers(), [4, 4, 2, 2, 7, 7], bank)
    differences = profile.value_differences(tallies, bank)
    found = profile.profile(tallies, bank, differences, {})["name"].tolist()
    # 4 and 2 kept adopted segments; the adopted name of 2 is what the profile would call 7
    table = profile.profile(tallies, bank, differences, {4: "Our best savers", 2: found[2]})
    assert table["segment"].tolist() == [2, 4, 7]
    assert table["name"].tolist() == [found[2], "Our best savers", f"{found[2]} (#7)"]


def test_segment_names_follow_the_data_set_file(telco):
    """Another data set's names come from its own phrases: no decade, its own subject and words."""
    customers = pd.DataFrame(
        {column: ["No"] * 6 for column in telco.segment_on}
        | {
            "gender": ["Female", "Male"] * 3,
            "SeniorCitizen": ["0", "0", "1", "1", "0", "0"],
            "tenure": [2, 3, 60, 70, 30, 30],
            "MonthlyCharges": [90.0, 95.0, 20.0, 25.0, 60.0, 60.0],
            "TotalCharges": [180.0, 285.0, 1200.0, 1750.0, 1800.0, 1800.0],
            "Contract": [
                "Month-to-month",
                "Month-to-month",
                "Two year",
                "Two year",
                "One year",
                "Month-to-month",
            ],
            "PaymentMethod": ["Electronic check"] * 2
            + ["Mailed check"] * 2
            + ["Bank transfer (automatic)"] * 2,
            "Churn": ["Yes", "Yes", "No", "No", "No", "Yes"],
        }
    )
    table = profiled(customers, pd.Series([1, 1, 2, 2, 3, 3]), telco)
    assert table["name"].tolist() == [
        "Month-to-month customers: pay by electronic check, high monthly charges",
        "Two-year contract customers: pay by mailed check, seniors, long-standing",
        # no contract dominates the third segment: its name has no lead phrase
        "Pay by bank transfer",
    ]
    assert table["Churn_Yes_rate"].tolist() == [1.0, 0.0, 0.5]


def test_report_has_the_accounting_outcomes_table_cards_heatmap_and_figures(segmented, bank):
    customers, segments = segmented
    table = profiled(customers, segments, bank)
    drivers = pd.DataFrame(
        {
            "segment": [1, 1],
            "rank": [1, 2],
            "feature": ["housing", "loan"],
            "mean_abs_shap": [2.0, 1.0],
        }
    )
    metrics = {
        "rows": {"table_rows": 670, "rejected_rows": 10, "kept_rows": 660},
        "outliers": {"customers": 660, "inliers": 600, "outliers": 60},
        "evaluate": {"davies_bouldin": 1.5, "calinski_harabasz": 100.0, "silhouette": 0.2},
        "explain": {
            "holdout_accuracy": 0.9,
            "holdout_macro_f1": 0.8,
            "majority_class_accuracy": 0.3,
            "holdout_accuracy_with_contact": 0.95,
        },
        "elbow": {
            "suggested_k": 6,
            "elbow_k": 5,
            "most_stable_k": 6,
            "suggested_stability": 0.95,
            "most_stable_stability": 0.95,
            "stable_k_count": 1,
        },
        "stability": {
            "bootstrap_ari_mean": 0.69,
            "seed_ari_mean": 0.84,
            "near_tie_candidates": 12,
            "near_tie": 1,
            "near_tie_inertia_gap_pct": 0.04,
            "near_tie_ari": 0.73,
            "committed_ari_to_best": 1.0,
            "committed_inertia_gap_pct": 0.0,
            "segment_1_jaccard": 0.93,
            "segment_2_jaccard": 0.55,
            "segment_3_jaccard": 0.88,
            "segment_4_jaccard": 0.7,
        },
    }
    table = profile.with_stability(table, metrics["stability"], {s: s for s in range(1, 5)})
    assert table.columns[2:6].tolist() == ["customers", "share", "jaccard", "stability"]
    assert table["stability"].tolist() == ["stable", "weak", "stable", "fuzzy"]
    shares = profile.representation(SegmentTallies.of(customers, segments, bank), bank)
    base = {"age": 40.0, "balance": 1234.0, "y_yes_rate": 0.125, "kept": 660}
    context = {
        "name": "bank",
        "model": "my-model",
        "k": 4,
        "rejected": "rejected.csv",
        "plots": "../../plots/bank",
        "stability": StabilityParams(),
        "n_init": 10,
        "drivers": profile.drivers_section(
            pd.DataFrame(
                {
                    "feature": ["housing", "age", "job"],
                    "mean_abs_shap": [3.0, 0.6, 0.4],
                    "share": [0.75, 0.15, 0.1],
                }
            ),
            {"numeric_shap_share": 0.15, "eta_squared_mean": 0.1, "eta_squared_age": 0.02},
            bank,
            "value",
        ),
        "warnings": profile.warning_section(["column 'default' is constant"], "datasets/bank.yaml"),
    }
    report = profile.render_report(table, drivers, shares, base, metrics, context, bank)
    drivers_part = report.split("## What drives the segments")[1].split("## How far")[0]
    assert (
        "The segments split mainly on Housing loan (75%), Age (15%), Job (10%) of the "
        "surrogate's explanation (mean |SHAP| over 3 segmentation columns). One column, Housing "
        "loan, carries 75% of it"
    ) in drivers_part
    assert "`dvc exp run -S text.numbers=band`" in drivers_part
    assert "| Housing loan | 75.0% |  |" in drivers_part
    assert "| Age | 15.0% | 0.020 |" in drivers_part
    assert "## Warnings about the data" in report and "- column 'default' is constant" in report
    assert "`my-model`" in report and "k = 4" in report
    assert (
        "670 customers in the table: 600 segmented, 60 set aside as outliers by ECOD, 10 rejected"
        in report
    )
    assert "with `contact`, which the text also carries, accuracy is 0.950" in report
    assert "Subscribed a term deposit: 12.5% of all customers; by segment from" in report
    trust = report.split("## How far to trust these segments")[1].split("## Segments")[0]
    assert (
        "k = 4 is a near tie (inertia gap 0.04%, ARI 0.73 between the two best partitions)" in trust
    )
    assert (
        "The elbow study suggests k = 6, the stable k (stability 0.95 ≥ 0.9) nearest its elbow"
        in trust
    )
    assert "These segments keep k = 4 (`k` in params.yaml); `dvc exp run -S k=6`" in trust
    assert "Refits of a seeded sample of 600 segmented customers: 3 seeds and 8 bootstrap" in trust
    assert (
        "Segments 1 and 3 are stable (Jaccard 0.93, 0.88); segment 4 is fuzzy (0.70); "
        "segment 2 is weak (0.55)."
    ) in trust
    assert "| Share | Stability (Jaccard) |" in report and "| 0.55 weak |" in report
    summary = report.split("\n## Segments\n")[1].split("## The segments at a glance")[0]
    assert summary.count("\n| ") == 5  # header + 4 segments
    assert "| Subscribed a term deposit |" in summary
    cards = report.split("## Segment cards")[1]
    assert [line.split(".")[0] for line in cards.splitlines() if line.startswith("### ")] == [
        "### 1",
        "### 2",
        "### 3",
        "### 4",
    ]
    assert "**housing** (2.00), **loan** (1.00)" in cards and "(all: 1,234 EUR)" in cards
    assert (
        "- Stability: clusterwise Jaccard **0.93**, stable: it comes back in almost every" in cards
    )
    assert (
        f"Subscribed a term deposit **{table['y_yes_rate'][0]:.1%}** (all customers: 12.5%)"
        in cards
    )
    # Segment 1 is housing=yes, loan=no: it has more housing loans and none of the personal ones.
    card_1 = cards.split("### 2.")[0]
    assert (
        "| more | Housing loan: yes |" in card_1 and "| fewer | Personal loan: yes | 0% |" in card_1
    )
    assert "![segment_heatmap](../../plots/bank/segment_heatmap.png)" in report
    assert "![pca_map](../../plots/bank/pca_map.png)" in report


def test_representation_gives_shares_and_ratios_against_all_customers(bank):
    customers = pd.DataFrame(
        {
            "age": [25, 27, 45, 47],
            "balance": [-10, 50, 6000, 7000],
            "job": ["student", "student", "management", "admin."],
            "marital": ["single"] * 4,
            "education": ["secondary"] * 4,
            "default": ["no"] * 4,
            "housing": ["yes", "yes", "yes", "no"],
            "loan": ["no"] * 4,
            "contact": ["cellular"] * 4,
            "y": ["no"] * 4,
        }
    )
    shares = profile.representation(
        SegmentTallies.of(customers, [1, 1, 2, 2], bank), bank
    ).set_index(["segment", "column", "value"])
    assert shares.loc[(1, "job", "student"), ["segment_share", "base_share", "ratio"]].tolist() == [
        1.0,
        0.5,
        2.0,
    ]
    assert shares.loc[(2, "housing", "yes"), "ratio"] == pytest.approx(0.5 / 0.75)
    assert (
        shares.loc[(1, "age", "under 30"), "ratio"] == 2.0
        and shares.loc[(2, "balance", "5,000 and over"), "ratio"] == 2.0
    )
    assert shares.loc[(1, "balance", "under 0"), "segment_share"] == 0.5
    over, under = profile.distinctive_values(shares.reset_index().query("segment == 1"))
    assert over["value"].tolist() == [
        "under 30",
        "0-999",
        "under 0",
        "student",
        "yes",
    ]  # by ratio, column, value
    assert "marital" not in set(over["column"])
    assert (
        under["value"].tolist() == ["40-49", "5,000 and over", "no", "admin.", "management"]
        and (under["ratio"] == 0).all()
    )


def test_bands_are_declared_or_quintiles_and_read_like_ranges(bank):
    assert band_labels([30, 40], integer=True) == ["under 30", "30-39", "40 and over"]
    assert band_labels([35, 70.5], integer=False) == [
        "under 35",
        "35 to 70.5",
        "70.5 and over",
    ]
    assert band_labels([0, 1000, 5000], integer=True) == [
        "under 0",
        "0-999",
        "1,000-4,999",
        "5,000 and over",
    ]
    # A band of one whole number prints as that number, not "0-0".
    assert band_labels([0, 1, 3], integer=True) == ["under 0", "0", "1-2", "3 and over"]
    values = pd.Series(np.arange(1, 101, dtype=float))
    undeclared = bank.columns["age"].model_copy(update={"bands": None})
    assert text.band_edges(values, undeclared) == [21.0, 41.0, 60.0, 80.0]
    assert text.band_edges(values, bank.columns["age"]) == [30, 40, 50, 60]


def test_standardized_differences_and_heatmap(tmp_path, bank):
    customers = pd.DataFrame(
        {
            "age": [20, 30, 40, 50],
            "balance": [0, 0, 100, 100],
            "job": ["student", "student", "management", "admin."],
            "marital": ["single"] * 4,
            "education": ["secondary"] * 4,
            "default": ["no"] * 4,
            "housing": ["yes", "yes", "no", "no"],
            "loan": ["no"] * 4,
            "contact": ["cellular"] * 4,
            "y": ["no"] * 4,
        }
    )
    differences, values = profile.standardized_differences(
        profile.value_differences(SegmentTallies.of(customers, [1, 1, 2, 2], bank), bank),
        [1, 2],
        bank,
    )
    assert list(differences.columns) == [
        "age",
        "job",
        "marital",
        "education",
        "default",
        "balance",
        "housing",
        "loan",
        "contact",
    ]
    assert differences.loc[1, "age"] == pytest.approx((25 - 35) / np.std([20, 30, 40, 50]))
    assert differences.loc[2, "balance"] == pytest.approx(1.0)
    # yes/no columns name the over-represented value; a column with one value is neutral.
    assert (values.loc[1, "housing"], differences.loc[1, "housing"]) == ("yes", pytest.approx(1.0))
    assert (values.loc[2, "housing"], differences.loc[2, "housing"]) == ("no", pytest.approx(1.0))
    assert (values.loc[1, "job"], differences.loc[1, "job"]) == ("student", pytest.approx(1.0))
    assert differences.loc[1, "marital"] == 0 and values.loc[1, "marital"] == ""
    path = tmp_path / "heatmap.png"
    labels = [bank.label(column) for column in differences.columns]
    figure = profile.heatmap_figure(differences, values, ["Young students", "Older staff"], labels)
    ticks = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert ticks[:2] == ["Age", "Job"] and "Has credit in\ndefault" in ticks
    write_png(path, figure)
    assert path.read_bytes().startswith(b"\x89PNG")
