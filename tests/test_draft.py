"""``python -m stages.draft``: a data-set file drafted from a raw, messy customer export.

The export is made here (seeded): a spreadsheet's byte-order mark and CRLF line ends, ``;`` as the
separator, placeholders, dates in two formats, a constant, a repeated, a derived and two leaking
columns, an id, an all-blank column, free text, birth years with three impossible ones, an income
with one impossible value, an income-range ordinal and a rare category. The draft must say what it
decided, as keys and as comments, and the reader must accept the file and read the export with it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from segmentation.data import drafting
from segmentation.data.dataset import Dataset, read_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ROWS = 600
INCOME_BANDS = ["Less than $40K", "$40K - $60K", "$60K - $80K", "$80K - $120K", "$120K +"]
IMPOSSIBLE_YEARS = {7: 1893, 123: 1899, 404: 1900}
IMPOSSIBLE_INCOME = {250: 666666}


def messy_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    years = np.clip(np.round(rng.normal(1969, 11.5, rows)), 1940, 1996).astype(int)
    for row, year in IMPOSSIBLE_YEARS.items():
        years[row] = year
    income = np.clip(rng.normal(52000, 21000, rows), 1730, 162397).round().astype(int)
    for row, value in IMPOSSIBLE_INCOME.items():
        income[row] = value
    joined = pd.Timestamp("2012-07-30") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    purchased = pd.Timestamp("2014-01-01") + pd.to_timedelta(rng.integers(0, 180, rows), unit="D")
    response = np.where(rng.random(rows) < 0.18, "Yes", "No")
    flag = np.where(response == "Yes", "Y", "N")
    flag[:3] = np.where(flag[:3] == "Y", "N", "Y")  # almost, not quite, the outcome
    region = rng.choice(np.array(["North", "South", "East", "West"], dtype=object), rows)
    region[[10, 20, 30]] = "Islands"  # 3 of 600 rows: rare
    region[[11, 21]] = "N/A"
    band = rng.choice(np.array(INCOME_BANDS, dtype=object), rows)
    band[rng.random(rows) < 0.08] = "Unknown"
    credit = rng.integers(15, 350, rows) * 100
    balance = (rng.random(rows) * credit * 0.6).round(2)
    spend = (rng.gamma(2.0, 150.0, rows)).round(2)
    return pd.DataFrame(
        {
            "CustomerID": [f"C{100000 + 7 * i}" for i in range(rows)],
            "Year_Birth": years,
            "Income": income,
            "Income_Band": band,
            "Region": region,
            "Country": "ES",
            "Dt_Customer": joined.strftime("%d/%m/%Y"),
            "Last_Purchase": purchased.strftime("%Y-%m-%d"),
            "Satisfaction": rng.choice(["low", "medium", "high"], rows),
            "MntWines": spend,
            "Credit_Limit": credit,
            "Total_Balance": balance,
            "Available": (credit - balance).round(2),
            "MntWines_Copy": spend,
            "Email": [f"customer{i}@example.org" for i in range(rows)],
            "Notes": np.where(rng.random(rows) < 0.5, "", "n/a"),
            "Campaign_Flag": flag,
            "Response_Probability": np.where(response == "Yes", 0.9, 0.1).round(3),
            "Response": response,
        }
    )


def export_bytes(frame: pd.DataFrame) -> bytes:
    """As a spreadsheet on a Windows machine saves it: BOM, CRLF, ';', quoted text."""
    text = frame.to_csv(sep=";", index=False, lineterminator="\r\n", quoting=2)
    return b"\xef\xbb\xbf" + text.encode("utf-8")


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[Path, str, dict]:
    folder = tmp_path_factory.mktemp("export")
    path = folder / "export.csv"
    path.write_bytes(export_bytes(messy_frame()))
    text = drafting.draft(path.read_bytes(), "mine", str(path), ["Response"])
    return path, text, yaml.safe_load(text)


def flat(text: str) -> str:
    """The draft's comments and keys as one line, so that a wrapped comment reads whole."""
    return " ".join(line.strip().removeprefix("#").strip() for line in text.splitlines())


def reason(text: str, column: str) -> str:
    """The left-out comment of ``column``, its wrapped lines joined into one."""
    block = text[text.index("# Left out:") : text.index("\nsegment_on:")]
    lines = [line.removeprefix("# ") for line in block.splitlines()[2:]]
    names = set(messy_frame().columns)
    found, current = {}, None
    for line in lines:
        head = line.split(": ", 1)[0]
        if head in names:
            current = head
            found[current] = line[len(head) + 2 :]
        elif current is not None:
            found[current] += " " + line
    return found[column]


# --- what the draft decides -----------------------------------------------------------------------


def test_the_format_is_found_and_the_bom_and_crlf_are_mentioned(messy):
    path, text, spec = messy
    assert spec["format"] == {"separator": ";", "quote": '"', "encoding": "utf-8"}
    assert "byte-order mark" in text and "CRLF" in text and "always accepts" in text
    assert spec["title"] == "Mine"
    assert spec["source"]["file"] == "export.csv" and spec["source"]["path"] == str(path)
    assert spec["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_id_is_the_unique_id_like_column_and_is_not_declared(messy):
    _, text, spec = messy
    assert spec["id"] == "CustomerID"
    assert "CustomerID" not in spec["columns"] and "CustomerID" not in spec["segment_on"]
    assert "its name says id" in text


def test_constant_repeated_derived_blank_and_free_text_columns_are_left_out(messy):
    _, text, spec = messy
    for column in ("Country", "MntWines_Copy", "Available", "Notes", "Email"):
        assert column not in spec["columns"] and column not in spec["segment_on"]
    assert "single value 'ES'" in reason(text, "Country")
    assert "repeats 'MntWines' on every row" in reason(text, "MntWines_Copy")
    assert "equals Credit_Limit - Total_Balance on every row" in reason(text, "Available")
    assert "blank or n/a on every row" in reason(text, "Notes")
    assert "free text" in reason(text, "Email")
    assert "To bring one back, declare it" in text


def test_columns_that_leak_the_outcome_are_left_out(messy):
    _, text, spec = messy
    assert "Campaign_Flag" not in spec["columns"] and "Response_Probability" not in spec["columns"]
    assert "resembles the outcome 'Response'" in reason(text, "Response_Probability")
    assert "predicts the outcome 'Response' almost perfectly" in reason(text, "Campaign_Flag")


def test_the_outcome_is_described_by_its_minority_rate_and_never_segmented_on(messy):
    _, text, spec = messy
    assert spec["columns"]["Response"] == {
        "kind": "categorical",
        "label": "Response",
        "values": ["No", "Yes"],
    }
    assert spec["describe"] == {"Response": "Yes"}
    assert 'Response: "Yes"' in text
    assert "Response" not in spec["segment_on"]


def test_impossible_birth_years_are_dropped_and_age_is_derived_from_the_year(messy):
    _, text, spec = messy
    year = spec["columns"]["Year_Birth"]
    assert year["kind"] == "numeric" and year["integer"] is True
    assert year["invalid"] == "drop"
    low, high = year["range"]
    assert 1900 < low <= 1940 and high >= 1996
    assert "1893, 1899, 1900 look impossible" in flat(text) and "rejects the 3 rows" in flat(text)
    assert spec["columns"]["Age"]["derive"] == {"age_from_year": "Year_Birth"}
    assert "Age" in spec["segment_on"] and "Year_Birth" not in spec["segment_on"]
    assert "bands" not in year and "phrases" not in year


def test_one_impossible_income_is_dropped_but_the_rest_of_the_range_passes(messy):
    _, text, spec = messy
    income = spec["columns"]["Income"]
    assert income["invalid"] == "drop"
    highest = messy_frame()["Income"].drop(index=list(IMPOSSIBLE_INCOME)).max()
    assert income["range"][0] == 0 and highest <= income["range"][1] < 666666
    assert "666666 looks impossible" in flat(text) and "rejects the 1 row holding it" in flat(text)
    assert income["bands"] == sorted(set(income["bands"]))
    assert income["phrases"] == {"high": "high income", "low": "low income"}


def test_dates_in_two_formats_give_months_since_against_a_written_reference_date(messy):
    _, text, spec = messy
    joined, purchased = spec["columns"]["Dt_Customer"], spec["columns"]["Last_Purchase"]
    assert joined["kind"] == "date" and joined["format"] == "%d/%m/%Y"
    assert purchased["kind"] == "date" and purchased["format"] == "%Y-%m-%d"
    frame = messy_frame()
    latest = max(
        pd.to_datetime(frame["Dt_Customer"], format="%d/%m/%Y").max(),
        pd.to_datetime(frame["Last_Purchase"]).max(),
    )
    assert str(spec["reference_date"]) == f"{latest:%Y-%m-%d}"
    assert f'reference_date: "{latest:%Y-%m-%d}"' in text
    assert "Set it to the export's date" in flat(text) and "never 'today'" in flat(text)
    assert "days_since" in text
    months = spec["columns"]["Dt_Customer_months"]
    assert months["derive"] == {"months_since": "Dt_Customer"}
    assert months["kind"] == "numeric" and months["range"][0] == 0
    assert "Dt_Customer_months" in spec["segment_on"]
    assert "Last_Purchase_months" in spec["segment_on"]
    assert not {"Dt_Customer", "Last_Purchase"} & set(spec["segment_on"])


def test_ordinals_placeholders_and_rare_values(messy):
    _, text, spec = messy
    band = spec["columns"]["Income_Band"]
    assert band["kind"] == "ordinal" and band["levels"] == INCOME_BANDS
    assert band["placeholders"] == ["Unknown"] and band["missing"] == "keep"
    assert spec["columns"]["Satisfaction"]["levels"] == ["low", "medium", "high"]
    region = spec["columns"]["Region"]
    assert region["values"] == ["East", "Islands", "North", "South", "West"]
    assert region["placeholders"] == ["N/A"] and region["missing"] == "keep"
    assert "rare (under 1% of rows): Islands (3)" in text and "map:" in text


def test_labels_bands_and_segment_on(messy):
    _, _, spec = messy
    assert spec["columns"]["MntWines"]["label"] == "Mnt wines"
    assert spec["columns"]["Dt_Customer"]["label"] == "Dt customer"
    assert spec["columns"]["Credit_Limit"]["phrases"]["high"] == "high credit limit"
    assert spec["segment_on"] == [
        "Age",
        "Income",
        "Income_Band",
        "Region",
        "Dt_Customer_months",
        "Last_Purchase_months",
        "Satisfaction",
        "MntWines",
        "Credit_Limit",
        "Total_Balance",
    ]


def test_the_draft_is_valid_and_reads_the_export_rejecting_only_impossible_rows(messy, tmp_path):
    path, text, spec = messy
    dataset = Dataset.model_validate(spec)
    kept, rejected = read_table(path, dataset, tmp_path / "mine.yaml")
    bad = sorted({*IMPOSSIBLE_YEARS, *IMPOSSIBLE_INCOME})
    assert sorted(rejected["line"] - 2) == bad
    assert len(kept) == ROWS - len(bad)
    assert set(rejected["column"]) == {"Year_Birth", "Income"}
    assert (kept["Age"].astype(int) >= 18).all()
    assert set(kept["Income_Band"]) == {*INCOME_BANDS, "missing"}


def test_the_draft_is_deterministic_and_ends_with_a_newline(messy):
    path, text, _ = messy
    again = drafting.draft(path.read_bytes(), "mine", str(path), ["Response"])
    assert again == text and text.endswith("\n") and not text.endswith("\n\n")


# --- smaller decisions ---------------------------------------------------------------------------


def test_impossible_values_flag_typos_but_not_heavy_tails_or_old_customers():
    rng = np.random.default_rng(1)
    balance = np.round(rng.lognormal(6.5, 1.6, 20000)) - 300
    assert drafting.impossible_values(balance, len(balance)).values == ()
    # as bank-full's ages: mostly 25..60, retirees up to 92, and three customers aged 93..95
    ages = np.r_[
        np.clip(rng.normal(40, 9, 5000).round(), 18, 92), rng.integers(60, 93, 200), [93, 94, 95]
    ]
    assert drafting.impossible_values(ages, len(ages)).values == ()
    income = np.r_[rng.normal(52000, 21000, 2000).clip(1730, 162397), [666666]]
    found = drafting.impossible_values(income, len(income))
    assert found.high == (666666.0,) and found.low == ()
    low, high = drafting.kept_range(income[:-1], found)
    assert high < 666666 and low == 0


def test_range_words_and_scales_give_ordered_levels():
    shuffled = ["$120K +", "$40K - $60K", "Less than $40K", "$80K - $120K", "$60K - $80K"]
    assert drafting.range_levels(shuffled) == INCOME_BANDS
    assert drafting.range_levels(["Under 1m", "1m-2.5M", "over 2.5M"]) == [
        "Under 1m",
        "1m-2.5M",
        "over 2.5M",
    ]
    assert drafting.range_levels(["Q1 2020", "Q2 2020"]) is None
    assert drafting.range_levels(["Blue", "Gold"]) is None
    assert drafting.scale_levels(["High", "Low", "Very high"]) == ["Low", "High", "Very high"]
    assert drafting.scale_levels(["Excellent", "poor", "Good"]) == ["poor", "Good", "Excellent"]


def test_names_become_labels():
    assert drafting.humanize("Customer_Age") == "Customer age"
    assert drafting.humanize("MntWines") == "Mnt wines"
    assert drafting.humanize("Dt_Customer") == "Dt customer"
    assert drafting.humanize("StreamingTV") == "Streaming TV"
    assert drafting.humanize("tenure") == "Tenure"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("yes", '"yes"'),
        ("No", '"No"'),
        ("0", '"0"'),
        ("null", '"null"'),
        ("a: b", '"a: b"'),
        ("#1", '"#1"'),
        ("Less than $40K", "Less than $40K"),
        ("a, b", '"a, b"'),
        ('"', "'\"'"),
    ],
)
def test_values_yaml_would_misread_are_quoted(value, written):
    assert drafting.scalar(value) == written
    assert yaml.safe_load(f"k: [{drafting.scalar(value)}]") == {"k": [value]}


def test_day_and_month_order_is_resolved_by_days_above_12():
    assert drafting.date_format(pd.Series(["13/01/2020", "02/03/2020"])) == ("%d/%m/%Y", False)
    assert drafting.date_format(pd.Series(["01/13/2020", "02/03/2020"])) == ("%m/%d/%Y", False)
    assert drafting.date_format(pd.Series(["01/02/2020", "02/03/2020"])) == ("%d/%m/%Y", True)
    assert drafting.date_format(pd.Series(["2020-01-02 10:30"])) == ("%Y-%m-%d %H:%M", False)
    assert drafting.date_format(pd.Series(["2020-01-02", "soon"])) is None


def test_numeric_placeholders_drop_rows_and_a_latin1_export_is_detected():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "Ville": rng.choice(["Orléans", "Besançon", "Nîmes"], 300),
            "Kids": rng.integers(0, 4, 300).astype(str),
            "Spend": rng.gamma(2, 100, 300).round(2).astype(str),
        }
    )
    frame.loc[[4, 9], "Kids"] = "?"
    raw = frame.to_csv(index=False, sep="|").encode("cp1252")
    text = drafting.draft(raw, "shop", "shop.csv", [])
    spec = yaml.safe_load(text)
    assert spec["format"]["separator"] == "|"
    assert spec["format"]["encoding"] != "utf-8"
    assert raw.decode(spec["format"]["encoding"]) == raw.decode("cp1252")
    kids = spec["columns"]["Kids"]
    assert kids["placeholders"] == ["?"] and kids["missing"] == "drop"
    assert "those 2 rows are rejected" in text
    assert set(spec["columns"]["Ville"]["values"]) == {"Orléans", "Besançon", "Nîmes"}
    assert "No outcome given" in text and "describe" not in spec
    Dataset.model_validate(spec)


# --- the command ----------------------------------------------------------------------------------


def draft_command(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEGMENTS_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "stages.draft", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_writes_the_file_and_refuses_to_overwrite_it(messy, tmp_path):
    path, text, _ = messy
    (tmp_path / "datasets").mkdir()
    done = draft_command(tmp_path, path, "--name", "mine", "--outcome", "Response")
    assert done.returncode == 0, done.stderr
    written = tmp_path / "datasets" / "mine.yaml"
    assert written.read_text(encoding="utf-8") == text
    written.write_text("edited by hand\n")
    again = draft_command(tmp_path, path, "--name", "mine", "--outcome", "Response")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        "error: draft: datasets/mine.yaml exists; pass --force to overwrite it, or choose --name"
    ]
    assert written.read_text() == "edited by hand\n"
    forced = draft_command(tmp_path, path, "--name", "mine", "--outcome", "Response", "--force")
    assert forced.returncode == 0, forced.stderr
    assert written.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "no such file"),
        (b"", [], "is empty"),
        (b"a,b,c\n", [], "has a header but no customer rows"),
        (b"a,b\n1,x\n2,y\n", ["--outcome", "churn"], "outcome column(s) ['churn'] are not in"),
        (b"a,b\n1,x\n2,y\n", ["--name", "../up"], "--name '../up'"),
        (b"a,a\n1,2\n", [], "repeats column(s) ['a']"),
        (b"a\n1\n2\n", [], "header line 1 has no ',' (it has a single column)"),
    ],
    ids=["missing", "empty", "header-only", "outcome", "name", "repeated-header", "one-column"],
)
def test_bad_input_fails_in_one_line(tmp_path, content, args, message):
    export = tmp_path / "export.csv"
    if content is not None:
        export.write_bytes(content)
    (tmp_path / "datasets").mkdir()
    done = draft_command(tmp_path, export, *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: draft: "), done.stderr
    assert message in lines[0]
    assert not list((tmp_path / "datasets").iterdir())


@pytest.mark.skipif(
    not (SHARED / "bank-churners.csv").exists(), reason="the shared tables are absent"
)
def test_the_credit_card_customers_draft(tmp_path):
    export = SHARED / "bank-churners.csv"
    text = drafting.draft(export.read_bytes(), "churners", str(export), ["Attrition_Flag"])
    spec = yaml.safe_load(text)
    assert spec["id"] == "CLIENTNUM"
    columns = spec["columns"]
    assert not [name for name in columns if name.startswith("Naive_Bayes")]
    assert "Avg_Open_To_Buy: equals Credit_Limit - Total_Revolving_Bal" in text
    assert columns["Income_Category"]["levels"] == INCOME_BANDS
    assert columns["Income_Category"]["placeholders"] == ["Unknown"]
    assert columns["Education_Level"]["placeholders"] == ["Unknown"]
    assert columns["Marital_Status"]["placeholders"] == ["Unknown"]
    assert "rare (under 1% of rows): Platinum (20)" in text
    assert spec["describe"] == {"Attrition_Flag": "Attrited Customer"}
    # A table that segments on numbers writes them as band words.
    assert spec["numbers"] == "band"
    kept, rejected = read_table(export, Dataset.model_validate(spec), tmp_path / "churners.yaml")
    assert len(kept) == 10127 and rejected.empty


def test_without_clevercsv_the_stdlib_sniffer_finds_the_same_format(messy, monkeypatch):
    path, text, _ = messy
    monkeypatch.setitem(sys.modules, "clevercsv", None)  # import clevercsv now fails
    assert drafting.draft(path.read_bytes(), "mine", str(path), ["Response"]) == text


def test_numeric_and_flag_outcomes_and_names_yaml_would_misread(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "yes": rng.choice(["a", "b"], 200),
            "1": rng.integers(0, 50, 200),
            "Spend: total": rng.normal(100, 10, 200).round(2),
            "Converted": rng.integers(0, 2, 200),
            "Revenue": rng.gamma(2, 500, 200).round(2),
        }
    )
    export = tmp_path / "x.csv"
    export.write_text(frame.to_csv(index=False))
    text = drafting.draft(export.read_bytes(), "edge", str(export), ["Converted", "Revenue"])
    spec = yaml.safe_load(text)
    assert list(spec["columns"]) == ["yes", "1", "Spend: total", "Converted", "Revenue"]
    assert spec["segment_on"] == ["yes", "1", "Spend: total"]
    least = frame["Converted"].value_counts().idxmin()
    assert spec["describe"] == {"Converted": str(least), "Revenue": "mean"}
    assert spec["columns"]["Converted"]["values"] == ["0", "1"]
    kept, rejected = read_table(export, Dataset.model_validate(spec), tmp_path / "edge.yaml")
    assert len(kept) + len(rejected) == 200
