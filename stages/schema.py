"""The customer table's schema and its reader: UCI ``bank-full.csv`` layout, checked before use.

A small module rather than a library such as pandera: the rules are a handful per column, and
every message must name the file, the column, the first bad *file line numbers* and the fix, in
one line; pandera's failure cases would have to be rewritten into that form anyway, and it would
add pandera and its typing dependencies to every stage that reads the table.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from stages.artifacts import CUSTOMER_ID, PipelineError

SEPARATOR = ";"

# The eight columns the article segments on; `contact` is read only by the text template.
NUMERIC_COLUMNS = ("age", "balance")
CATEGORICAL_COLUMNS = ("job", "marital", "education", "default", "housing", "loan")
SEGMENT_COLUMNS = ("age", "job", "marital", "education", "default", "balance", "housing", "loan")
CUSTOMER_COLUMNS = SEGMENT_COLUMNS + ("contact",)

# Inclusive bounds. UCI has ages 18..95 and balances -8,019..102,127 euros; values far outside
# these wider bounds are unit or parsing mistakes, not customers.
NUMERIC_RANGES = {"age": (18, 120), "balance": (-1_000_000, 100_000_000)}
CATEGORIES = {
    "job": ("admin.", "blue-collar", "entrepreneur", "housemaid", "management", "retired",
            "self-employed", "services", "student", "technician", "unemployed", "unknown"),
    "marital": ("divorced", "married", "single"),
    "education": ("primary", "secondary", "tertiary", "unknown"),
    "default": ("no", "yes"),
    "housing": ("no", "yes"),
    "loan": ("no", "yes"),
    "contact": ("cellular", "telephone", "unknown"),
}
LAYOUT_HINT = "the file must have the UCI bank-full.csv layout: ';'-separated, UTF-8, one header line"


def read_customers(path: Path) -> pd.DataFrame:
    """Read and validate the customer table: the columns the pipeline uses, indexed by row.

    The customer id is the 0-based data-row number, so row ``i`` of every matrix is customer ``i``.
    Every problem found in the values is reported at once, in one line.
    """
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: missing; run 'dvc repro download' first")
    text = _decode(path, path.read_bytes())
    header = _check_header(path, text)
    try:
        # Blank lines are kept as rows so that row i stays file line i + 2 in every message.
        frame = pd.read_csv(io.StringIO(text), sep=SEPARATOR, dtype=str, keep_default_na=False,
                            skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise PipelineError(f"{path}: malformed table ({' '.join(str(exc).split())}); every line needs "
                            f"{len(header)} ';'-separated fields like the header") from None
    frame = frame.loc[:, list(CUSTOMER_COLUMNS)]
    if frame.empty:
        raise PipelineError(f"{path}: has a header but no customer rows; {LAYOUT_HINT}")
    problems = _value_problems(frame)
    if problems:
        raise PipelineError(f"{path}: {'; '.join(problems)}")
    for column in NUMERIC_COLUMNS:
        frame[column] = frame[column].astype("int64")
    frame.index.name = CUSTOMER_ID
    return frame


def _decode(path: Path, raw: bytes) -> str:
    if not raw.strip():
        raise PipelineError(f"{path}: is empty; {LAYOUT_HINT}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineError(
            f"{path}: line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from None


def _check_header(path: Path, text: str) -> list[str]:
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=SEPARATOR))
    if len(header) == 1:
        other = next((sep for sep in (",", "\t", "|") if sep in header[0]), None)
        looks = f"it looks {other!r}-separated" if other else "it has a single column"
        raise PipelineError(f"{path}: header line 1 has no ';' ({looks}); {LAYOUT_HINT}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise PipelineError(f"{path}: header line 1 repeats column(s) {repeated}; keep each column once")
    missing = [column for column in CUSTOMER_COLUMNS if column not in header]
    if missing:
        raise PipelineError(f"{path}: missing column(s) {missing} (found {header[:20]}); {LAYOUT_HINT}")
    return header


def _value_problems(frame: pd.DataFrame) -> list[str]:
    """One message per rule broken, each naming the column, the first bad lines and the fix."""
    problems = []
    values = frame.apply(lambda column: column.str.strip())
    blank_rows = values.eq("").all(axis=1)
    header_rows = values.eq(pd.Series(values.columns, index=values.columns)).all(axis=1)
    if blank_rows.any():
        problems.append(f"{_lines(frame.index[blank_rows])} are blank; remove them")
    if header_rows.any():
        problems.append(f"{_lines(frame.index[header_rows])} repeat the header (files joined?); remove them")
    values = values.loc[~(blank_rows | header_rows)]
    for column in CUSTOMER_COLUMNS:
        cells = values[column]
        empty = cells.eq("")
        if empty.any():
            problems.append(f"column {column!r} is empty on {_lines(cells.index[empty])}; fill it in")
        cells = cells.loc[~empty]
        if column in NUMERIC_RANGES:
            numbers = pd.to_numeric(cells, errors="coerce")
            not_whole = numbers.isna() | (numbers != numbers.round())
            if not_whole.any():
                problems.append(f"column {column!r} is not a whole number on {_lines(cells.index[not_whole])}"
                                f"{_examples(cells[not_whole])}; write plain integers")
            low, high = NUMERIC_RANGES[column]
            outside = ~not_whole & ((numbers < low) | (numbers > high))
            if outside.any():
                problems.append(f"column {column!r} is outside {low}..{high} on {_lines(cells.index[outside])}"
                                f"{_examples(cells[outside])}; correct the values or drop those rows")
        else:
            unknown = ~cells.isin(CATEGORIES[column])
            if unknown.any():
                problems.append(f"column {column!r} has unknown value(s) on {_lines(cells.index[unknown])}"
                                f"{_examples(cells[unknown])}; use one of {list(CATEGORIES[column])}")
    return problems


def _lines(index: pd.Index, shown: int = 5) -> str:
    """Name rows as file line numbers (header is line 1), the way an editor shows them."""
    lines = ", ".join(str(i + 2) for i in index[:shown])
    more = f" and {len(index) - shown} more" if len(index) > shown else ""
    return f"line(s) {lines}{more}"


def _examples(cells: pd.Series, shown: int = 3) -> str:
    return f" (e.g. {list(dict.fromkeys(cells.head(50)))[:shown]})"
