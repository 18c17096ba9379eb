"""What the data-set file says about bad, mapped, placeholder and date cells, and derived numbers.

Table-driven: each case declares one column policy or key on a small shop table and checks the
customers kept, the rows rejected (id, file line, column, reason) or the one-line refusal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.data import dataset as dataset_module
from segmentation.data.dataset import (
    Dataset,
    data_warnings,
    read_table,
    read_table_chunks,
    typed,
)

SPEC_FILE = Path("datasets/shop.yaml")
HEADER = "id,age,plan,size,joined,born,left"
ROWS = [
    "c1,30,basic,M,03/01/2010,1980,no",
    "c2,41,plus,L,15/06/2012,1975,yes",
    "c3,52,basic,S,28/02/2014,1962,no",
]


def shop(columns: dict | None = None, **changes) -> Dataset:
    """A shop's data-set file; ``columns`` replace or add column blocks, ``changes`` top keys."""
    spec = {
        "title": "Shop",
        "source": {"path": "shop.csv", "file": "shop.csv", "sha256": "0" * 64},
        "id": "id",
        "columns": {
            "age": {"kind": "numeric", "integer": True, "range": [0, 120]},
            "plan": {"kind": "categorical", "values": ["basic", "plus"]},
            "size": {"kind": "ordinal", "levels": ["S", "M", "L"]},
            "left": {"kind": "categorical", "values": ["no", "yes"]},
        }
        | (columns or {}),
        "segment_on": ["age", "plan", "size"],
        "describe": {"left": "yes"},
    } | changes
    return Dataset.model_validate(spec)


def read(tmp_path: Path, dataset: Dataset, *rows: str):
    (tmp_path / "shop.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return read_table(tmp_path / "shop.csv", dataset, SPEC_FILE)


DATES = {
    "joined": {"kind": "date", "format": "%d/%m/%Y", "invalid": "drop"},
    "tenure": {"kind": "numeric", "derive": {"months_since": "joined"}, "range": [0, 600]},
}
REFERENCE = {"reference_date": "2014-12-31"}

# (id, columns, top-level changes, bad row, rejected column, rejected reason)
DROPPED = [
    (
        "number outside the range",
        {"age": {"kind": "numeric", "integer": True, "range": [0, 120], "invalid": "drop"}},
        {},
        "c9,130,basic,M,03/01/2010,1980,no",
        "age",
        "age 130 is outside 0..120",
    ),
    (
        "not a number",
        {"age": {"kind": "numeric", "integer": True, "invalid": "drop"}},
        {},
        "c9,forty,basic,M,03/01/2010,1980,no",
        "age",
        "age 'forty' is not a whole number",
    ),
    (
        "value outside the values",
        {"plan": {"kind": "categorical", "values": ["basic", "plus"], "invalid": "drop"}},
        {},
        "c9,30,YOLO,M,03/01/2010,1980,no",
        "plan",
        "plan 'YOLO' is not one of its values",
    ),
    (
        "level outside the levels",
        {"size": {"kind": "ordinal", "levels": ["S", "M", "L"], "invalid": "drop"}},
        {},
        "c9,30,basic,XXL,03/01/2010,1980,no",
        "size",
        "size 'XXL' is not one of its levels",
    ),
    (
        "placeholder dropped as blank",
        {
            "plan": {
                "kind": "categorical",
                "values": ["basic", "plus"],
                "placeholders": ["Unknown", "N/A"],
                "missing": "drop",
            }
        },
        {},
        "c9,30,N/A,M,03/01/2010,1980,no",
        "plan",
        "plan is blank",
    ),
    (
        "not a date",
        DATES,
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "c9,30,basic,M,31/31/2010,1980,no",
        "joined",
        "joined '31/31/2010' is not a date written as '%d/%m/%Y'",
    ),
    (
        "date after the reference date",
        DATES | {"tenure": DATES["tenure"] | {"invalid": "drop"}},
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "c9,30,basic,M,03/01/2016,1980,no",
        "tenure",
        "joined 03/01/2016 is after reference_date 2014-12-31",
    ),
    (
        "derived number outside its range",
        {
            "born": {"kind": "numeric", "integer": True},
            "Age": {
                "kind": "numeric",
                "derive": {"age_from_year": "born"},
                "range": [16, 110],
                "invalid": "drop",
            },
        },
        REFERENCE | {"segment_on": ["age", "plan", "Age"]},
        "c9,30,basic,M,03/01/2010,1893,no",
        "Age",
        "Age 121 is outside 16..110",
    ),
]


@pytest.mark.parametrize(
    ("columns", "changes", "bad", "column", "reason"),
    [case[1:] for case in DROPPED],
    ids=[case[0] for case in DROPPED],
)
def test_a_drop_policy_rejects_the_row_with_line_column_and_reason(
    tmp_path, columns, changes, bad, column, reason
):
    kept, rejected = read(tmp_path, shop(columns, **changes), ROWS[0], bad, *ROWS[1:])
    assert kept.index.tolist() == ["c1", "c2", "c3"]
    assert rejected.to_dict(orient="records") == [
        {"customer_id": "c9", "line": 3, "column": column, "reason": reason}
    ]


@pytest.mark.parametrize(
    ("columns", "changes", "bad", "column", "reason"),
    [case[1:] for case in DROPPED if case[0] != "placeholder dropped as blank"],
    ids=[case[0] for case in DROPPED if case[0] != "placeholder dropped as blank"],
)
def test_the_default_refuses_the_same_cell_in_one_line_naming_line_and_fix(
    tmp_path, columns, changes, bad, column, reason
):
    refusing = {
        name: {key: value for key, value in spec.items() if key != "invalid"}
        for name, spec in columns.items()
    }
    with pytest.raises(PipelineError) as error:
        read(tmp_path, shop(refusing, **changes), ROWS[0], bad, *ROWS[1:])
    message = str(error.value)
    assert "\n" not in message and "line(s) 3" in message and "shop.csv" in message
    assert f"set columns.{column}.invalid to drop" in message, message


def test_several_reasons_of_one_row_are_one_rejection(tmp_path):
    columns = {
        "age": {"kind": "numeric", "integer": True, "range": [0, 120], "invalid": "drop"},
        "plan": {"kind": "categorical", "values": ["basic", "plus"], "invalid": "drop"},
    }
    _, rejected = read(tmp_path, shop(columns), "c9,130,gold,M,x,1,no", *ROWS)
    assert rejected[["line", "column", "reason"]].values.tolist() == [
        [2, "age; plan", "age 130 is outside 0..120; plan 'gold' is not one of its values"]
    ]


def test_a_map_rewrites_values_before_they_are_checked(tmp_path):
    columns = {
        "plan": {"kind": "categorical", "values": ["basic", "plus"], "map": {"Alone": "basic"}}
    }
    kept, rejected = read(tmp_path, shop(columns), "c9,30,Alone,M,03/01/2010,1980,no", *ROWS)
    assert kept.loc["c9", "plan"] == "basic" and rejected.empty


@pytest.mark.parametrize(
    ("missing", "expected"), [("keep", "missing"), ("drop", None), ("refuse", "refused")]
)
def test_placeholders_are_blank_cells_for_the_missing_policy(tmp_path, missing, expected):
    plan = {
        "kind": "categorical",
        "values": ["basic", "plus"],
        "placeholders": ["Unknown", "?"],
        "missing": missing,
    }
    rows = ("c8,30,?,M,x,1,no", "c9,31,Unknown,M,x,1,no", *ROWS)
    if expected == "refused":
        with pytest.raises(PipelineError, match=r"column 'plan' is blank on line\(s\) 2, 3"):
            read(tmp_path, shop({"plan": plan}), *rows)
        return
    kept, rejected = read(tmp_path, shop({"plan": plan}), *rows)
    if expected is None:
        assert rejected["customer_id"].tolist() == ["c8", "c9"] and "c9" not in kept.index
    else:
        assert kept.loc[["c8", "c9"], "plan"].tolist() == [expected] * 2 and rejected.empty


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        # reference 2014-12-31 against 03/01/2010, 15/06/2012, 28/02/2014
        ("days_since", [1823, 929, 306]),
        ("months_since", [59, 30, 10]),
        ("years_since", [4, 2, 0]),
    ],
)
def test_a_date_gives_whole_days_months_or_years_to_the_reference_date(tmp_path, measure, expected):
    columns = {
        "joined": {"kind": "date", "format": "%d/%m/%Y"},
        "tenure": {"kind": "numeric", "derive": {measure: "joined"}},
    }
    dataset = shop(columns, **REFERENCE, segment_on=["age", "plan", "tenure"])
    kept, _ = read(tmp_path, dataset, *ROWS)
    assert typed(kept, dataset)["tenure"].tolist() == expected
    assert "joined" not in dataset.text_columns and "tenure" in dataset.text_columns


def test_an_age_comes_from_a_birth_year_and_the_text_carries_the_age(tmp_path):
    columns = {
        "born": {"kind": "numeric", "integer": True},
        "years": {"kind": "numeric", "derive": {"age_from_year": "born"}},
    }
    dataset = shop(columns, **REFERENCE, segment_on=["age", "plan", "years"])
    kept, _ = read(tmp_path, dataset, *ROWS)
    assert typed(kept, dataset)["years"].tolist() == [34, 39, 52]
    assert dataset.text_columns == ["age", "plan", "size", "years"]


def test_reading_only_the_text_columns_reads_a_derivation_s_source(tmp_path):
    columns = {
        "joined": {"kind": "date", "format": "%d/%m/%Y"},
        "tenure": {"kind": "numeric", "derive": {"months_since": "joined"}},
    }
    dataset = shop(columns, **REFERENCE, segment_on=["age", "plan", "tenure"])
    (tmp_path / "new.csv").write_text("id,age,plan,size,joined\nn1,30,basic,M,03/01/2010\n")
    kept, _ = read_table(tmp_path / "new.csv", dataset, SPEC_FILE, dataset.text_columns)
    assert kept.columns.tolist() == dataset.text_columns and kept.loc["n1", "tenure"] == "59"


# --- declarations refused before any row is read -------------------------------------------------

BAD_DECLARATIONS = [
    (
        "map onto an undeclared value",
        {"plan": {"kind": "categorical", "values": ["basic", "plus"], "map": {"Alone": "Solo"}}},
        {},
        "map sends 'Alone' to 'Solo', which is not one of its values ['basic', 'plus']",
    ),
    (
        "a date format that does not parse",
        {"joined": {"kind": "date", "format": "%Q/%m"}, **{"tenure": DATES["tenure"]}},
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "format '%Q/%m' is not a date format",
    ),
    (
        "a date format without the day",
        {"joined": {"kind": "date", "format": "%m/%Y"}, **{"tenure": DATES["tenure"]}},
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "format '%m/%Y' does not hold a whole date",
    ),
    (
        "a derivation from a non-date column",
        {"tenure": {"kind": "numeric", "derive": {"months_since": "plan"}}},
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "columns.tenure.derive: months_since needs a date column",
    ),
    (
        "an age from a column that is not a year",
        {"years": {"kind": "numeric", "derive": {"age_from_year": "size"}}},
        REFERENCE | {"segment_on": ["age", "plan", "years"]},
        "age_from_year needs a birth-year column read as whole numbers",
    ),
    (
        "a derivation from an undeclared column",
        {"tenure": {"kind": "numeric", "derive": {"months_since": "signup"}}},
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "months_since names undeclared column 'signup'",
    ),
    (
        "the reference date missing",
        DATES,
        {"segment_on": ["age", "plan", "tenure"]},
        "reference_date, which is missing",
    ),
    (
        "two derivations in one",
        {"tenure": {"kind": "numeric", "derive": {"months_since": "a", "days_since": "b"}}},
        REFERENCE | {"segment_on": ["age", "plan", "tenure"]},
        "give exactly one of days_since, months_since or years_since",
    ),
    (
        "segmenting on a date",
        DATES,
        REFERENCE | {"segment_on": ["age", "plan", "joined"], "describe": {}},
        "segment_on names date column(s) ['joined']",
    ),
    (
        "a placeholder that is also a value",
        {"plan": {"kind": "categorical", "values": ["basic", "plus"], "placeholders": ["plus"]}},
        {},
        "placeholder(s) ['plus'] are also values",
    ),
    (
        "an invalid policy that does not exist",
        {"plan": {"kind": "categorical", "invalid": "fix"}},
        {},
        "Input should be 'refuse' or 'drop'",
    ),
    (
        "a map on a number",
        {"age": {"kind": "numeric", "map": {"x": "1"}}},
        {},
        "map is for categorical and ordinal columns",
    ),
]


@pytest.mark.parametrize(
    ("columns", "changes", "message"),
    [case[1:] for case in BAD_DECLARATIONS],
    ids=[case[0] for case in BAD_DECLARATIONS],
)
def test_a_bad_declaration_is_refused_with_the_key(columns, changes, message):
    with pytest.raises(ValidationError) as error:
        shop(columns, **changes)
    assert message in str(error.value)


def test_nothing_in_a_data_set_file_is_run_as_code(tmp_path):
    """Code in a derivation or a template is a column name that is not declared, never run."""
    marker = tmp_path / "ran"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    attempts = [
        ({"tenure": {"kind": "numeric", "derive": {"months_since": code}}}, {}),
        ({"tenure": {"kind": "numeric", "derive": {"expression": code}}}, {}),
        ({}, {"template": "{age} {plan} {size} {" + code + "}"}),
        ({}, {"reference_date": code}),
    ]
    for columns, changes in attempts:
        with pytest.raises(ValidationError):
            shop(columns, **REFERENCE | {"segment_on": ["age", "plan", "size"]} | changes)
    source = (Path(__file__).parents[1] / "segmentation" / "data" / "dataset.py").read_text()
    assert "eval(" not in source and "exec(" not in source
    assert not marker.exists()


# --- warnings a user must see --------------------------------------------------------------------


def test_constant_and_near_copy_columns_and_repeated_records_are_warned_about(tmp_path):
    columns = {
        "tier": {"kind": "categorical", "values": ["gold", "silver", "bronze"]},
        "age2": {"kind": "numeric"},
        "shop": {"kind": "categorical"},
    }
    dataset = shop(columns, segment_on=["age", "plan", "size", "tier", "age2", "shop"])
    rows = [
        "id,age,plan,size,tier,age2,shop,left",
        "a,30,basic,S,gold,30.5,x,no",
        "b,40,plus,M,silver,40.1,x,no",
        "c,50,basic,L,bronze,50.2,x,yes",
        "d,50,basic,L,bronze,50.2,x,yes",
        "e,35,plus,S,gold,35.3,x,no",
    ]
    (tmp_path / "shop.csv").write_text("\n".join(rows) + "\n")
    kept, _ = read_table(tmp_path / "shop.csv", dataset, SPEC_FILE)
    warnings, repeated = data_warnings(typed(kept, dataset), dataset)
    assert repeated == 1
    assert any("column 'shop' is constant (every customer has 'x')" in w for w in warnings)
    assert any("1 customer record(s) repeat another" in w and "'c' and 'd'" in w for w in warnings)
    assert any("'age' and 'age2' are almost copies" in warning for warning in warnings)
    assert any("'size' and 'tier' are almost copies" in warning for warning in warnings)
    assert not any("'plan'" in warning for warning in warnings)


# --- a table read a chunk at a time --------------------------------------------------------------


def chunked(tmp_path: Path, dataset: Dataset, raw: bytes, chunk_rows: int):
    (tmp_path / "shop.csv").write_bytes(raw)
    return read_table_chunks(tmp_path / "shop.csv", dataset, SPEC_FILE, chunk_rows=chunk_rows)


def test_a_table_read_in_chunks_is_the_table_read_whole(tmp_path):
    """A byte-order mark, Windows line ends, a quoted line break and rows a policy rejects, read
    two rows at a time: the same customers and rejections, with the file's line numbers."""
    columns = {"joined": DATES["joined"], "tenure": DATES["tenure"]}
    dataset = shop(columns, **REFERENCE, segment_on=["age", "plan", "tenure"])
    rows = [*ROWS, 'c4,33,"basic",M,31/02/2013,1981,no', 'c5,29,plus,L,01/01/2011,"19\r\n95",no']
    rows.insert(1, 'c9,44,"plus",S,not a date,1970,"yes"')
    raw = ("\ufeff" + "\r\n".join([HEADER, *rows]) + "\r\n").encode("utf-8")
    (tmp_path / "whole.csv").write_bytes(raw)
    kept, rejected = read_table(tmp_path / "whole.csv", dataset, SPEC_FILE)
    parts = list(chunked(tmp_path, dataset, raw, chunk_rows=2))
    assert len(parts) == 3
    pd.testing.assert_frame_equal(pd.concat(part for part, _ in parts), kept)
    pd.testing.assert_frame_equal(
        pd.concat(rejects for _, rejects in parts).reset_index(drop=True),
        rejected,
        check_dtype=False,  # a chunk that rejects nothing has empty columns of no type
    )
    assert rejected["line"].tolist() == [3, 6] and rejected[CUSTOMER_ID].tolist() == ["c9", "c4"]


@pytest.mark.parametrize(
    "rows, refusal",
    [
        ([*ROWS, "c4,33,basic,M,03/01/2010,1980,no,extra"], "malformed table"),
        ([*ROWS, "c5,33,gold,M,03/01/2010,1980,no"], r"line\(s\) 5"),
        ([*ROWS, "c1,33,basic,M,03/01/2010,1980,no"], "repeats 1 id"),
        ([], "no customer rows"),
    ],
)
def test_a_problem_in_a_later_chunk_is_one_line_with_its_file_line(tmp_path, rows, refusal):
    raw = ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")
    with pytest.raises(PipelineError, match=refusal):
        list(chunked(tmp_path, shop(), raw, chunk_rows=2))


def test_rows_rejected_in_several_chunks_come_back_from_disk_in_file_order(tmp_path):
    rows = [*ROWS, "c4,33,gold,M,03/01/2010,1980,no", "c5,41,gold,M,03/01/2010,1980,no"]
    rows.insert(2, "c9,44,gold,S,03/01/2010,1970,yes")
    raw = ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")
    dataset = shop(
        {"plan": {"kind": "categorical", "values": ["basic", "plus"], "invalid": "drop"}}
    )
    with dataset_module.TableRows() as table:
        kept = pd.concat(table.kept(chunked(tmp_path, dataset, raw, chunk_rows=2)))
        rejected = pd.concat(table.rejected_chunks(), ignore_index=True)
        folder = table.folder
        # the first chunk, which rejects nothing, gives the columns; then the two with rejects
        assert len(list(folder.iterdir())) == 3
    assert not folder.exists()
    assert (table.kept_rows, table.rejected_rows) == (len(kept), 3) == (3, 3)
    assert rejected[CUSTOMER_ID].tolist() == ["c9", "c4", "c5"]
    assert rejected["line"].tolist() == [4, 6, 7]


def test_ids_repeated_far_apart_are_counted_one_hash_file_at_a_time():
    """100,000 ids in 256 files by their hashes' top byte, 3 of them repeated once or twice in
    later chunks: 3 repeats; the files are gone afterwards."""
    ids = np.array([f"id{i}" for i in range(100_000)], dtype=object)
    with dataset_module.IdHashes() as hashes:
        for start in range(0, len(ids), 30_000):
            hashes.add(ids[start : start + 30_000])
        hashes.add(np.array(["id7", "id99999", "id50000", "id7"], dtype=object))
        files = list(hashes.folder.iterdir())
        assert len(files) == dataset_module.ID_HASH_FILES
        assert sum(file.stat().st_size for file in files) == 8 * (len(ids) + 4)
        assert hashes.repeated() == 3
    assert not hashes.folder.exists()


@pytest.mark.parametrize("block_bytes", [1 << 24, 7])
def test_a_table_not_in_its_encoding_is_refused_in_a_later_chunk_as_when_read_whole(
    tmp_path, monkeypatch, block_bytes
):
    """Found a block of bytes at a time (blocks of 7 split the two bytes of a good "é"), the bad
    byte's line and offset are those the whole file's decoding gives."""
    monkeypatch.setattr(dataset_module, "SCAN_BYTES", block_bytes)
    rows = [*ROWS, "c4,33,basic,M,03/01/2010,1980,no"]
    rows[1] = rows[1].replace("15/06", "15/é6")  # a date column this data set does not read
    raw = ("\n".join([HEADER, *rows]) + "\n").encode().replace(b"c4,33", b"c4,\xe933")
    with pytest.raises(PipelineError) as chunks:
        list(chunked(tmp_path, shop(), raw, chunk_rows=2))
    with pytest.raises(PipelineError, match=r"line 5 is not utf-8 \(byte 0xe9") as whole:
        read_table(tmp_path / "shop.csv", shop(), SPEC_FILE)
    assert str(chunks.value) == str(whole.value)
