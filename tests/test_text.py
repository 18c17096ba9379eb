"""The article's text for a UCI row, how numbers are written in the texts, and what the report
says drives the segments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import profiled
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import stages.serialize
from segmentation.config import layout
from segmentation.data.dataset import Dataset, load_dataset, read_customers, read_table, typed
from segmentation.embedding.encoders import TorchEncoder
from segmentation.evaluation import surrogate as explain
from segmentation.model.sampling import sample_rows
from segmentation.reporting import profile
from segmentation.reporting.tallies import SegmentTallies
from segmentation.testing import synthetic
from segmentation.testing.project_copy import copy_project
from segmentation.text import TextWriting, fit_writing, write_texts

SOURCE = {"path": "customers.csv", "file": "customers.csv", "sha256": "0" * 64}


def shop(region_values: list[str] | None = None, top: dict | None = None, **extra) -> Dataset:
    """A small data set: income and spending in money, visits, a region, and ``extra`` columns."""
    columns = {
        "income": {"kind": "numeric", "label": "Income", "unit": "USD"},
        "spend": {"kind": "numeric", "label": "Yearly spend", "unit": "USD"},
        "visits": {"kind": "numeric", "integer": True, "label": "Visits"},
        "region": {"kind": "categorical", "label": "Region", "values": region_values or ["n", "s"]},
        **extra,
    }
    return Dataset.model_validate(
        {
            "title": "Shop",
            "source": SOURCE,
            "columns": columns,
            "segment_on": list(columns),
            **(top or {}),
        }
    )


def number(label: str, **keys) -> dict:
    return {"kind": "numeric", "label": label, **keys}


def customers(rows: dict[str, list]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame.index = pd.Index([str(i) for i in range(len(frame))], name="customer_id")
    return frame


TRAINING = customers(
    {
        "region": ["n", "s"] * 5,
        "income": [10_000.0 * i for i in range(1, 11)],
        "spend": [100.5 * i for i in range(1, 11)],
        "visits": list(range(1, 11)),
    }
)


def test_serialize_reproduces_the_article_text_for_the_first_uci_row(tmp_path, bank):
    row = (
        '58;"management";"married";"tertiary";"no";2143;"yes";"no";"unknown";5;"may";261;1;-1;0;'
        '"unknown";"no"'
    )
    path = tmp_path / "one.csv"
    path.write_bytes(
        synthetic.to_uci_csv(synthetic.customers(1)).splitlines(keepends=True)[0]
        + row.encode()
        + b"\n"
    )
    customers = typed(read_table(path, bank, Path("bank.yaml"))[0], bank)
    texts = write_texts(customers, bank, fit_writing(customers, bank, "value"))
    assert texts.to_dict("records") == [
        {
            "customer_id": "0",
            "text": "Age: 58,\nhousing load: yes,\nJob: management,\nMarital: married,\n"
            "Education: tertiary,\nDefault: no,\nBalance: 2143,\nPersonal loan: no,\n"
            "contact: unknown",
        }
    ]


def test_band_words_are_fitted_once_and_reused_for_customers_written_later():
    dataset = shop()
    writing = fit_writing(TRAINING, dataset, "band")
    # Quintiles of the training customers, two significant digits, and one word per band.
    assert writing.edges["income"] == [28000.0, 46000.0, 64000.0, 82000.0]
    assert writing.words["visits"] == ["very low", "low", "medium", "high", "very high"]
    saved = TextWriting.from_json(json.loads(json.dumps(writing.to_json())), "text_writing.json")
    trained = write_texts(TRAINING, dataset, writing)["text"]
    # A later file of three customers has quintiles of its own; it is written with the saved ones.
    later = TRAINING.iloc[[9, 0, 4]]
    assert write_texts(later, dataset, saved)["text"].tolist() == trained.iloc[[9, 0, 4]].tolist()
    assert fit_writing(later, dataset, "band").edges != writing.edges
    assert (
        trained.iloc[0] == "Income: very low\nYearly spend: very low\nVisits: very low\nRegion: n"
    )
    assert trained.iloc[9].startswith("Income: very high\n")


def test_declared_bands_and_phrases_name_the_bands():
    phrases = {"low": "rare visitor", "high": "regular"}
    dataset = shop(visits=number("Visits", integer=True, bands=[3, 8], phrases=phrases))
    writing = fit_writing(TRAINING, dataset, "band")
    assert writing.edges["visits"] == [3, 8] and writing.words["visits"] == [
        "rare visitor",
        "medium",
        "regular",
    ]
    # A column holding one value has one band, which is neither the low nor the high one.
    constant = fit_writing(
        TRAINING.assign(visits=4), shop(visits=number("Visits", phrases=phrases)), "band"
    )
    assert constant.edges["visits"] == [] and constant.words["visits"] == ["typical"]
    visits = [text.splitlines()[2] for text in write_texts(TRAINING, dataset, writing)["text"]]
    assert visits[1:4] == ["Visits: rare visitor", "Visits: medium", "Visits: medium"]
    assert visits[-1] == "Visits: regular"


def test_both_writes_the_number_with_its_unit_then_the_band_and_years_without_separators():
    dataset = shop(
        birth_year=number("Birth year", integer=True, range=[1900, 2020]),
        age=number("Age", derive={"age_from_year": "birth_year"}),
        top={"reference_date": "2024-01-01"},
    )
    frame = TRAINING.assign(
        birth_year=range(1950, 1960), age=range(74, 64, -1), income=[58_138.0] + [1e5] * 9
    )
    text = write_texts(frame, dataset, fit_writing(frame, dataset, "both"))["text"].iloc[0]
    assert "Income: 58,138 USD (low)" in text and "Yearly spend: 100.5 USD (very low)" in text
    assert "Birth year: 1950 (very low)" in text and "Visits: 1 (very low)" in text
    # Written as values, the cells are as read: the article's text stays byte for byte.
    assert (
        "Income: 58138.0"
        in write_texts(frame, dataset, fit_writing(frame, dataset, "value"))["text"].iloc[0]
    )


def test_too_many_band_edges_are_refused():
    with pytest.raises(ValueError, match="bands takes 1 to 6 edges"):
        shop(visits=number("Visits", bands=[1, 2, 3, 4, 5, 6, 7]))


def test_band_words_find_groups_that_the_digits_miss(model):
    """Three groups that differ only in their numbers, and a region that is noise: KMeans on the
    embedded digits follows the region, on the band words it finds the groups."""
    rng = np.random.default_rng(0)
    group = np.repeat([0, 1, 2], 100)
    spread = rng.lognormal(0, 0.1, (3, 300))
    frame = customers(
        {
            "region": rng.choice(["north", "south", "east", "west"], 300),
            "income": np.round(np.array([25_000, 70_000, 160_000])[group] * spread[0], 2),
            "spend": np.round(np.array([300, 1_500, 6_000])[group] * spread[1], 2),
            "visits": np.round(np.array([2, 10, 30])[group] * spread[2]).astype(int),
        }
    )
    dataset = shop(["north", "south", "east", "west"])
    encoder = TorchEncoder(model, 64)
    agreement = {}
    for numbers in ("value", "band"):
        texts = write_texts(frame, dataset, fit_writing(frame, dataset, numbers))["text"]
        vectors = encoder.encode(texts.tolist())
        found = KMeans(3, n_init=10, random_state=0).fit_predict(vectors)
        agreement[numbers] = adjusted_rand_score(group, found)
    assert agreement["value"] < 0.2 < 0.6 < agreement["band"], agreement


def test_eta_squared_is_the_share_of_variance_between_segments():
    def eta_squared(visits: list[int]) -> float:
        customers = TRAINING.iloc[:4].assign(visits=visits)
        return SegmentTallies.of(customers, [1, 1, 2, 2], shop()).eta_squared("visits")

    assert eta_squared([1, 1, 5, 5]) == 1.0
    assert eta_squared([1, 5, 1, 5]) == 0.0
    assert eta_squared([3] * 4) == 0.0
    assert eta_squared([1, 2, 4, 5]) == pytest.approx(9 / 10)


def importance(shares: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": list(shares),
            "mean_abs_shap": list(shares.values()),
            "share": list(shares.values()),
        }
    )


def test_the_report_warns_when_one_column_carries_the_segmentation():
    dataset = shop()
    found = explain.driver_metrics(
        SegmentTallies.of(TRAINING, [1, 2] * 5, dataset),
        importance({"region": 0.9, "income": 0.05, "spend": 0.03, "visits": 0.02}),
        dataset,
    )
    assert found["largest_shap_share"] == 0.9 and found["numeric_shap_share"] == pytest.approx(0.1)
    # visits 1, 3, ..., 9 against 2, 4, ..., 10: means 5 and 6 around 5.5, variance 8.25
    assert found["eta_squared_visits"] == pytest.approx(0.25 / 8.25)
    sentences = profile.driver_sentences(
        importance({"region": 0.9, "income": 0.05, "spend": 0.03, "visits": 0.02}),
        {**found, "numeric_shap_share": 0.09},
        dataset,
        "value",
    )
    assert sentences[0].startswith("The segments split mainly on Region (90%), Income (5%)")
    assert sentences[1].startswith("One column, Region, carries 90% of it")
    assert sentences[2].startswith(
        "The 3 numeric columns are 75% of the segmentation columns but carry 9% of the explanation"
    )
    assert sentences[3] == (
        "The texts write numbers as `value`; try band words (`Income: high`) with "
        "`dvc exp run -S text.numbers=band` (docs/comparison.md measures both ways)."
    )
    balanced = profile.driver_sentences(
        importance({"income": 0.4, "region": 0.3, "spend": 0.2, "visits": 0.1}),
        {"numeric_shap_share": 0.7, "eta_squared_mean": 0.3},
        dataset,
        "band",
    )
    assert len(balanced) == 1


def test_names_keep_only_strong_differences_and_drop_an_undominated_lead(telco):
    frame = pd.DataFrame({column: ["No"] * 8 for column in telco.segment_on})
    frame = frame.assign(
        gender=["Female", "Male"] * 4,
        SeniorCitizen=["0"] * 8,
        # a fifth of a standard deviation apart: too weak to name
        tenure=[28, 34, 30, 32, 29, 35, 31, 33],
        MonthlyCharges=[20.0, 22.0, 21.0, 20.0, 95.0, 99.0, 97.0, 96.0],
        TotalCharges=[100.0] * 8,
        # half of the first segment, and rarer there than overall: it does not lead the name
        Contract=["Month-to-month", "One year", "Two year", "Two year"] + ["Two year"] * 4,
        PaymentMethod=["Mailed check"] * 8,
        Churn=["No"] * 8,
    )
    frame.index = frame.index.astype(str)
    names = profiled(frame, pd.Series([1] * 4 + [2] * 4), telco)["name"].tolist()
    assert names == ["Low monthly charges", "Two-year contract customers: high monthly charges"]


def test_above_the_threshold_serialize_fits_the_number_bands_on_a_seeded_sample(
    tmp_path, monkeypatch
):
    """Every kept customer is written, read a chunk at a time; the balance's band edges (none
    declared here) are those of the seeded sample of ``sample_fit_rows`` customers."""
    copy_project(tmp_path, ("datasets", "params.yaml"))
    spec = yaml.safe_load((tmp_path / "datasets/bank.yaml").read_text())
    del spec["columns"]["balance"]["bands"]
    (tmp_path / "datasets/bank.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params.update(datasets=["bank"], sample_fit_rows=100)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = tmp_path / "data/bank/raw/table.csv"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(synthetic.to_uci_csv(synthetic.customers(400, seed=3)))
    monkeypatch.chdir(tmp_path)
    stages.serialize.main("bank")
    paths, dataset = layout("bank"), load_dataset("bank")
    texts = pd.read_csv(paths.texts, dtype=str)
    assert len(texts) == 400 and texts["customer_id"].tolist() == [str(i) for i in range(400)]
    rows = json.loads((tmp_path / "metrics/bank/rows.json").read_text())
    assert rows == {
        "table_rows": 400,
        "rejected_rows": 0,
        "kept_rows": 400,
        "repeated_records": 0,
        "fit_sample_rows": 100,
    }
    saved = json.loads(paths.text_writing.read_text())["edges"]["balance"]
    customers = read_customers(paths.customers, dataset)
    sample = read_customers(paths.customers, dataset, sample_rows(400, 100, params["seed"]))
    numbers = params["text"]["numbers"]
    assert saved == fit_writing(sample, dataset, numbers).edges["balance"]
    assert saved != fit_writing(customers, dataset, numbers).edges["balance"]
