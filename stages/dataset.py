"""A customer table described by one data-set file, ``datasets/<name>.yaml``, and its safe reader.

The data-set file says where the table comes from and how it is written, which column is the
customer id, and for each column used: its kind, allowed values or range, a label for texts and
reports, phrases for segment names and what a blank cell means. Which columns the customers are
segmented on, and which are only described per segment, is said there too. Every stage learns the
columns from this file; no stage module names one.

The reader is a small module rather than a library such as pandera: every message must name the
file, the column, the first bad *file line numbers* and the fix, in one line, and rows dropped by a
missing-cell policy must come back with their id and reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import string
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stages.artifacts import CUSTOMER_ID, PipelineError
from stages.config import DATASETS_DIR, validated

Kind = Literal["numeric", "categorical", "ordinal"]
# The category a blank cell becomes under `missing: keep`.
MISSING_CATEGORY = "missing"
# Plain decimal notation only: "4.2e1", "1,000", "inf" or "NaN" in a numeric column are mistakes.
PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
WHOLE_NUMBER = re.compile(r"^[+-]?\d+$")


class _Spec(BaseModel):
    # Lists of values such as [0, 1] are category names, so numbers are read as text.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class Source(_Spec):
    """Where the table comes from; whatever the source, the table must match ``sha256``."""

    url: Annotated[str, Field(pattern=r"^(https?|file)://\S+$")] | None = None
    path: Annotated[str, Field(min_length=1)] | None = None
    file: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url (a download address) or path (a local file)")
        return self


class TableFormat(_Spec):
    """How the table is written. A byte-order mark and CRLF line ends are always accepted."""

    separator: Annotated[str, Field(min_length=1, max_length=1)] = ","
    quote: Annotated[str, Field(min_length=1, max_length=1)] = '"'
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}; use e.g. utf-8 or cp1252") from None
        return encoding


class Column(_Spec):
    kind: Kind
    label: Annotated[str, Field(min_length=1)] | None = None
    # numeric
    range: tuple[float, float] | None = None
    integer: bool = False
    unit: str = ""
    bands: list[float] | None = None
    # categorical: the allowed values (any value when absent); ordinal: the levels, lowest first
    values: list[str] | None = None
    levels: list[str] | None = None
    # value -> phrase used in segment names; for a numeric column the keys are `high` and `low`
    phrases: dict[str, str] = {}
    missing: Literal["refuse", "drop", "keep"] = "refuse"

    @model_validator(mode="after")
    def _fits_kind(self) -> Column:
        numeric_only = {"range": self.range, "bands": self.bands}
        if self.kind == "numeric":
            if self.values is not None or self.levels is not None:
                raise ValueError("a numeric column takes range, not values or levels")
            if self.missing == "keep":
                raise ValueError(
                    "a numeric column can only refuse or drop a blank cell, not keep it"
                )
            if set(self.phrases) - {"high", "low"}:
                raise ValueError("a numeric column's phrases are 'high' and 'low'")
            if self.range is not None and self.range[0] >= self.range[1]:
                raise ValueError(f"range {list(self.range)} must go from low to high")
            if self.bands is not None and list(self.bands) != sorted(set(self.bands)):
                raise ValueError("bands must be increasing band edges")
            return self
        given = [name for name, value in numeric_only.items() if value is not None]
        if given or self.integer or self.unit:
            raise ValueError(f"a {self.kind} column takes no range, bands, integer or unit")
        if self.kind == "ordinal" and not self.levels:
            raise ValueError("an ordinal column needs its levels, lowest first")
        if self.kind == "categorical" and self.levels is not None:
            raise ValueError("levels are for ordinal columns; a categorical column lists values")
        if self.kind == "ordinal" and self.values is not None:
            raise ValueError("an ordinal column lists levels, not values")
        allowed = self.allowed
        for name, listed in (("values", self.values), ("levels", self.levels)):
            if listed is not None and len(set(listed)) != len(listed):
                raise ValueError(f"{name} repeat an entry")
        unknown = sorted(set(self.phrases) - set(allowed)) if allowed is not None else []
        if unknown:
            raise ValueError(f"phrases name value(s) {unknown} that are not allowed")
        return self

    @property
    def allowed(self) -> list[str] | None:
        """The values a cell may hold (a blank kept under ``missing: keep`` included), or None."""
        listed = self.levels if self.kind == "ordinal" else self.values
        if listed is None:
            return None
        return list(listed) + ([MISSING_CATEGORY] if self.missing == "keep" else [])


class Naming(_Spec):
    """How segment names are built: '<subject> in their 40s: <traits>, <high/low phrases>'."""

    subject: str | None = None  # a categorical column whose phrase leads when it dominates
    mixed: str = "Mixed customers"  # the lead when no phrased subject value dominates
    decade: str | None = None  # a numeric column given as "in their 40s"


class Dataset(_Spec):
    title: Annotated[str, Field(min_length=1)]
    source: Source
    format: TableFormat = TableFormat()
    id: Annotated[str, Field(min_length=1)] | None = None
    columns: Annotated[dict[str, Column], Field(min_length=2)]
    segment_on: Annotated[list[str], Field(min_length=2)]
    # outcome column -> the value whose rate is shown per segment (`mean` for a numeric column)
    describe: dict[str, str] = {}
    template: Annotated[str, Field(min_length=1)] | None = None
    naming: Naming = Naming()
    max_categories: Annotated[int, Field(ge=2, le=10_000)] = 50

    @model_validator(mode="after")
    def _consistent(self) -> Dataset:
        declared = list(self.columns)
        for key, names in (("segment_on", self.segment_on), ("describe", list(self.describe))):
            undeclared = [name for name in names if name not in self.columns]
            if undeclared:
                raise ValueError(
                    f"{key} names undeclared column(s) {undeclared}; declared: {declared}"
                )
        if len(set(self.segment_on)) != len(self.segment_on):
            raise ValueError("segment_on repeats a column")
        both = sorted(set(self.segment_on) & set(self.describe))
        if both:
            raise ValueError(
                f"column(s) {both} are both segmented on and described; an outcome "
                "is only described"
            )
        if self.id is not None and self.id in self.columns:
            raise ValueError(
                f"id column {self.id!r} is also declared under columns; remove it there"
            )
        for column, value in self.describe.items():
            spec = self.columns[column]
            if spec.kind == "numeric" and value != "mean":
                raise ValueError(f"describe.{column}: a numeric outcome is described by its 'mean'")
            if spec.kind != "numeric" and spec.allowed is not None and value not in spec.allowed:
                raise ValueError(f"describe.{column}: {value!r} is not one of {spec.allowed}")
        self._check_template()
        unused = [
            name
            for name in declared
            if name not in self.segment_on
            and name not in self.describe
            and name not in self.text_columns
        ]
        if unused:
            raise ValueError(
                f"column(s) {unused} are declared but not used; segment on them, "
                "describe them, put them in the template, or remove them"
            )
        self._check_naming()
        return self

    def _check_template(self) -> None:
        if self.template is None:
            return
        try:
            fields = [
                name
                for _, name, _, _ in string.Formatter().parse(self.template)
                if name is not None
            ]
        except ValueError as exc:
            raise ValueError(f"template is not a valid format string ({exc})") from None
        undeclared = sorted({name for name in fields if name not in self.columns})
        if undeclared or "" in fields:
            raise ValueError(
                f"template names undeclared column(s) {undeclared or ['{}']}; use "
                f"only declared columns: {list(self.columns)}"
            )
        outcomes = sorted(set(fields) & set(self.describe))
        if outcomes:
            raise ValueError(
                f"template carries outcome column(s) {outcomes}; the segments would be "
                "built on what they should only describe"
            )
        try:
            fill(self.template, {name: _probe(spec) for name, spec in self.columns.items()})
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ValueError(
                f"template cannot be filled with a customer's values ({exc})"
            ) from None

    def _check_naming(self) -> None:
        for key, column, kinds in (
            ("subject", self.naming.subject, ("categorical", "ordinal")),
            ("decade", self.naming.decade, ("numeric",)),
        ):
            if column is None:
                continue
            if column not in self.segment_on:
                raise ValueError(f"naming.{key}: {column!r} is not a segment_on column")
            if self.columns[column].kind not in kinds:
                raise ValueError(f"naming.{key}: {column!r} must be {' or '.join(kinds)}")

    # --- what the stages ask of a data set -------------------------------------------------------

    def label(self, column: str) -> str:
        return self.columns[column].label or column

    @cached_property
    def text_columns(self) -> list[str]:
        """The columns each customer's text carries, in the template's (or declared) order."""
        if self.template is None:
            return [name for name in self.columns if name not in self.describe]
        fields = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        return list(dict.fromkeys(fields))

    @cached_property
    def text_template(self) -> str:
        """The template, or one built from the labels: one field per line in the declared order."""
        if self.template is not None:
            return self.template
        return "\n".join(f"{self.label(name)}: {{{name}}}" for name in self.text_columns)

    @property
    def context_columns(self) -> list[str]:
        """Columns the text carries that the customers are not segmented on."""
        return [name for name in self.text_columns if name not in self.segment_on]

    def of_kind(self, columns: list[str], *kinds: Kind) -> list[str]:
        return [name for name in columns if self.columns[name].kind in kinds]

    @property
    def numeric(self) -> list[str]:
        """The numeric segmentation columns."""
        return self.of_kind(self.segment_on, "numeric")

    @property
    def categorical(self) -> list[str]:
        """The segmentation columns that hold categories, ordered ones included."""
        return self.of_kind(self.segment_on, "categorical", "ordinal")

    @property
    def used_columns(self) -> list[str]:
        return list(dict.fromkeys([*self.segment_on, *self.text_columns, *self.describe]))


def _probe(column: Column) -> object:
    """One value of the type the reader gives the column, to try the template on."""
    if column.kind == "numeric":
        return 0 if column.integer else 0.5
    return (column.allowed or ["value"])[0]


class _LiteralFields(string.Formatter):
    """``str.format`` where a field is a column name as written, even one with '.' or '['."""

    def get_field(self, field_name, args, kwargs):
        return kwargs[field_name], field_name


_FORMATTER = _LiteralFields()


def fill(template: str, values: dict[str, object]) -> str:
    return _FORMATTER.vformat(template, (), values)


# --- the data-set file ---------------------------------------------------------------------------


def dataset_file(name: str) -> Path:
    return DATASETS_DIR / f"{name}.yaml"


def load_dataset(name: str) -> Dataset:
    """Read and validate ``datasets/<name>.yaml``; every problem is reported in one line."""
    path = dataset_file(name)
    if not path.is_file():
        known = sorted(p.stem for p in DATASETS_DIR.glob("*.yaml"))
        raise PipelineError(
            f"{path}: no such data-set file (found {known}); add it or fix the name"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    return validated(Dataset, raw, path, "Fix the data-set file (see datasets/README.md)")


# --- reading a table -----------------------------------------------------------------------------


def read_table(
    path: Path, dataset: Dataset, spec_file: Path, columns: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate a customer table against its data-set description.

    Returns the kept customers (``columns``, by default every column the data set uses, as text,
    blanks resolved by each column's missing-cell policy, indexed by customer id) and the rejected
    rows (id, file line, reason).
    The customer id is the id column, or the 0-based data-row number when there is none. Every
    problem found is reported at once, in one line.
    """
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: missing; run 'dvc repro' so the download stage fetches it")
    columns = dataset.used_columns if columns is None else columns
    text = _decode(path, path.read_bytes(), dataset.format.encoding)
    header = _check_header(path, text, dataset, spec_file, columns)
    try:
        # Blank lines are kept as rows so that row i stays file line i + 2 in every message.
        frame = pd.read_csv(
            io.StringIO(text),
            sep=dataset.format.separator,
            quotechar=dataset.format.quote,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as exc:
        raise PipelineError(
            f"{path}: malformed table ({' '.join(str(exc).split())}); every line needs "
            f"{len(header)} {dataset.format.separator!r}-separated fields like the header"
        ) from None
    frame = frame.loc[:, ([dataset.id] if dataset.id else []) + columns].apply(
        lambda column: column.str.strip()
    )
    if frame.empty:
        raise PipelineError(f"{path}: has a header but no customer rows")
    problems, reasons = _value_problems(frame, dataset, spec_file, columns)
    if problems:
        raise PipelineError(f"{path}: {'; '.join(problems)}")
    ids = (
        frame.pop(dataset.id)
        if dataset.id
        else pd.Series(frame.index.astype(str), index=frame.index)
    )
    rejected = pd.DataFrame(
        {CUSTOMER_ID: ids[reasons.index], "line": reasons.index + 2, "reason": reasons}
    )
    kept = frame.drop(index=reasons.index)
    kept.index = pd.Index(ids.drop(index=reasons.index), name=CUSTOMER_ID)
    if kept.empty:
        raise PipelineError(
            f"{path}: every row was dropped by a missing-cell policy ({len(rejected)} rows); "
            f"check the missing: settings in {spec_file}"
        )
    return kept, rejected.reset_index(drop=True)


def _decode(path: Path, raw: bytes, encoding: str) -> str:
    if not raw.strip():
        raise PipelineError(f"{path}: is empty; expected a header line and customer rows")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineError(
            f"{path}: line {line} is not {encoding} "
            f"(byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            f"re-save the file as {encoding}, or set format.encoding in the data-set file"
        ) from None
    # A spreadsheet's byte-order mark and Windows line ends are part of how the file is written,
    # not of its content.
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _check_header(
    path: Path, text: str, dataset: Dataset, spec_file: Path, columns: list[str]
) -> list[str]:
    separator = dataset.format.separator
    header = next(
        csv.reader(
            io.StringIO(text.split("\n", 1)[0]), delimiter=separator, quotechar=dataset.format.quote
        )
    )
    header = [name.strip() for name in header]
    if len(header) == 1:
        other = next(
            (sep for sep in (",", ";", "\t", "|") if sep != separator and sep in header[0]), None
        )
        looks = f"it looks {other!r}-separated" if other else "it has a single column"
        raise PipelineError(
            f"{path}: header line 1 has no {separator!r} ({looks}); save the table "
            f"{separator!r}-separated or set format.separator in {spec_file}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise PipelineError(
            f"{path}: header line 1 repeats column(s) {repeated}; keep each column once"
        )
    missing = [
        name for name in ([dataset.id] if dataset.id else []) + columns if name not in header
    ]
    if missing:
        raise PipelineError(
            f"{path}: declared column(s) {missing} are not in the table (found "
            f"{header[:30]}); fix the names in {spec_file} or in the file's header"
        )
    return header


def _value_problems(
    frame: pd.DataFrame, dataset: Dataset, spec_file: Path, columns: list[str]
) -> tuple[list[str], pd.Series]:
    """One message per rule broken, and the reason each row dropped by a policy is dropped."""
    problems: list[str] = []
    blank_rows = frame.eq("").all(axis=1)
    header_rows = frame.eq(pd.Series(frame.columns, index=frame.columns)).all(axis=1)
    if blank_rows.any():
        problems.append(f"{_lines(frame.index[blank_rows])} are blank; remove them")
    if header_rows.any():
        problems.append(
            f"{_lines(frame.index[header_rows])} repeat the header (files joined?); remove them"
        )
    values = frame.loc[~(blank_rows | header_rows)]
    dropped: dict[int, list[str]] = {}
    if dataset.id:
        problems += _id_problems(values[dataset.id])
    for name in columns:
        spec, cells = dataset.columns[name], values[name]
        empty = cells.eq("")
        if empty.any():
            if spec.missing == "refuse":
                keep = "" if spec.kind == "numeric" else " or keep (a category of their own)"
                problems.append(
                    f"column {name!r} is blank on {_lines(cells.index[empty])}; fill it in, or set "
                    f"columns.{name}.missing to drop (reject those rows){keep} in {spec_file}"
                )
            elif spec.missing == "drop":
                for row in cells.index[empty]:
                    dropped.setdefault(row, []).append(f"{name} is blank")
            else:
                frame.loc[cells.index[empty], name] = MISSING_CATEGORY
        cells = cells.loc[~empty]
        problems += (
            _numeric_problems(name, spec, cells)
            if spec.kind == "numeric"
            else _category_problems(name, spec, cells, dataset.max_categories, spec_file)
        )
    reasons = pd.Series(
        {row: "; ".join(found) for row, found in sorted(dropped.items())}, dtype=object
    )
    reasons.index = pd.Index(reasons.index, dtype=frame.index.dtype)
    return problems, reasons


def _id_problems(ids: pd.Series) -> list[str]:
    problems = []
    blank = ids.eq("")
    if blank.any():
        problems.append(
            f"id column {ids.name!r} is blank on {_lines(ids.index[blank])}; "
            "every customer needs an id"
        )
    repeated = ids.duplicated(keep=False) & ~blank
    if repeated.any():
        problems.append(
            f"id column {ids.name!r} repeats ids on {_lines(ids.index[repeated])}"
            f"{_examples(ids[repeated])}; ids must be unique"
        )
    return problems


def _numeric_problems(name: str, spec: Column, cells: pd.Series) -> list[str]:
    pattern = WHOLE_NUMBER if spec.integer else PLAIN_NUMBER
    malformed = ~cells.str.fullmatch(pattern.pattern)
    problems = []
    if malformed.any():
        wanted = "a whole number" if spec.integer else "a plain number"
        problems.append(
            f"column {name!r} is not {wanted} on {_lines(cells.index[malformed])}"
            f"{_examples(cells[malformed])}; write digits with an optional sign"
            f"{'' if spec.integer else ' and decimal point'}, no exponent or thousands separator"
        )
    if spec.range is not None:
        numbers = pd.to_numeric(cells[~malformed])
        low, high = spec.range
        outside = numbers.index[(numbers < low) | (numbers > high)]
        if len(outside):
            problems.append(
                f"column {name!r} is outside {low:g}..{high:g} on {_lines(outside)}"
                f"{_examples(cells[outside])}; correct the values or drop those rows"
            )
    return problems


def _category_problems(
    name: str, spec: Column, cells: pd.Series, limit: int, spec_file: Path
) -> list[str]:
    allowed = spec.allowed
    if allowed is None:
        distinct = cells.nunique()
        if distinct > limit:
            return [
                f"column {name!r} has {distinct} distinct values, over max_categories ({limit}); "
                "declare it numeric if it is a number, group its values, or raise max_categories "
                f"in {spec_file}"
            ]
        return []
    unknown = ~cells.isin(allowed)
    if not unknown.any():
        return []
    listed = "levels" if spec.kind == "ordinal" else "values"
    return [
        f"column {name!r} has value(s) outside its {listed} on {_lines(cells.index[unknown])}"
        f"{_examples(cells[unknown])}; use one of {allowed} or add them to columns.{name}.{listed}"
    ]


def _lines(index: pd.Index, shown: int = 5) -> str:
    """Name rows as file line numbers (header is line 1), the way an editor shows them."""
    lines = ", ".join(str(i + 2) for i in index[:shown])
    more = f" and {len(index) - shown} more" if len(index) > shown else ""
    return f"line(s) {lines}{more}"


def _examples(cells: pd.Series, shown: int = 3) -> str:
    return f" (e.g. {list(dict.fromkeys(cells.head(50)))[:shown]})"


# --- the validated table between stages ----------------------------------------------------------


def typed(cells: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The validated text cells with numeric columns as numbers (int64 for whole-number columns)."""
    frame = cells.copy()
    for name in frame.columns:
        spec = dataset.columns[name]
        if spec.kind == "numeric":
            frame[name] = pd.to_numeric(frame[name]).astype(
                np.int64 if spec.integer else np.float64
            )
    return frame


def read_customers(path: Path, dataset: Dataset) -> pd.DataFrame:
    """The customers the serialize stage kept (``data/<name>/interim/customers.csv``), typed."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(
            f"{path}: missing; run 'dvc repro' so the serialize stage writes it first"
        )
    cells = pd.read_csv(path, dtype=str, keep_default_na=False).set_index(CUSTOMER_ID)
    missing = [name for name in dataset.used_columns if name not in cells.columns]
    if missing:
        raise PipelineError(
            f"{path}: lacks column(s) {missing} of the data-set file; rerun 'dvc repro'"
        )
    return typed(cells.loc[:, dataset.used_columns], dataset)
