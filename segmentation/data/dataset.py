"""A customer table described by one data-set file, ``datasets/<name>.yaml``, and its safe reader.

The data-set file says where the table comes from and how it is written, which column is the
customer id, and for each column used: its kind, allowed values or range, a label for texts and
reports, phrases for segment names, which cells mean "missing", how values are rewritten, and what
a blank or invalid cell does to its row. Numbers can be derived from dates and birth years against
a reference date written in the file, from a closed set of derivations: nothing in the file is
ever evaluated as code. Which columns the customers are segmented on, and which are only described
per segment, is said there too. Every stage learns the columns from this file; no stage module
names one.

The reader is a small module rather than a library such as pandera: every message must name the
file, the column, the first bad *file line numbers* and the fix, in one line, and rows dropped by a
missing-cell or invalid-value policy must come back with their id, file line, column and reason.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import re
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from segmentation.artifacts import CUSTOMER_ID, SCAN_BYTES, PipelineError, picked_rows
from segmentation.config import DATASETS_DIR, validated

Kind = Literal["numeric", "categorical", "ordinal", "date"]
Policy = Literal["refuse", "drop"]
# How a number is written in a customer's text (stages/text.py).
NumberWriting = Literal["value", "band", "both"]
# The category a blank cell becomes under `missing: keep`.
MISSING_CATEGORY = "missing"
# Plain decimal notation only: "4.2e1", "1,000", "inf" or "NaN" in a numeric column are mistakes.
PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
WHOLE_NUMBER = re.compile(r"^[+-]?\d+$")
MAX_BAND_EDGES = 6
# customers read at a time when the table is read in chunks
CUSTOMER_CHUNK_ROWS = 65536


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


class Derivation(_Spec):
    """A number computed from one declared column against the data set's ``reference_date``.

    The set is closed on purpose: a data-set file declares data, it never holds code to run.
    """

    days_since: str | None = None
    months_since: str | None = None
    years_since: str | None = None
    age_from_year: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Derivation:
        if len([name for name, source in self if source is not None]) != 1:
            raise ValueError(
                "give exactly one of days_since, months_since or years_since (a date column) "
                "or age_from_year (a birth-year column)"
            )
        return self

    @property
    def measure(self) -> str:
        return next(name for name, source in self if source is not None)

    @property
    def source(self) -> str:
        return getattr(self, self.measure)


DATE_PROBE = datetime.datetime(2001, 2, 3, 4, 5, 6)


class Column(_Spec):
    kind: Kind
    label: Annotated[str, Field(min_length=1)] | None = None
    # numeric
    range: tuple[float, float] | None = None
    integer: bool = False
    unit: str = ""
    bands: list[float] | None = None
    derive: Derivation | None = None
    # date: how the cells are written, as for datetime.strptime
    format: Annotated[str, Field(min_length=2)] | None = None
    # categorical: the allowed values (any value when absent); ordinal: the levels, lowest first
    values: list[str] | None = None
    levels: list[str] | None = None
    # value as written -> value it stands for, applied before the values are checked
    map: dict[str, str] = {}
    # cells that mean "no value" (`Unknown`, `N/A`): they are blank, then `missing` decides
    placeholders: list[str] = []
    # value -> phrase used in segment names; for a numeric column the keys are `high` and `low`
    phrases: dict[str, str] = {}
    missing: Literal["refuse", "drop", "keep"] = "refuse"
    # a cell outside the range or values, or not a number or date: stop the run, or reject its row
    invalid: Policy = "refuse"

    @model_validator(mode="before")
    @classmethod
    def _derived_numbers_are_whole(cls, raw: object) -> object:
        if isinstance(raw, dict) and raw.get("derive") is not None and "integer" not in raw:
            return {**raw, "integer": True}
        return raw

    @model_validator(mode="after")
    def _fits_kind(self) -> Column:
        if self.placeholders and len(set(self.placeholders)) != len(self.placeholders):
            raise ValueError("placeholders repeat an entry")
        if "" in self.placeholders:
            raise ValueError("a blank cell is always missing; list only the words that mean it")
        if self.kind != "date" and self.format is not None:
            raise ValueError("format is for date columns (kind: date)")
        if self.kind not in ("categorical", "ordinal") and self.map:
            raise ValueError(f"map is for categorical and ordinal columns, not {self.kind} ones")
        if self.kind == "numeric":
            self._check_numeric()
        elif self.kind == "date":
            self._check_date()
        else:
            self._check_categories()
        return self

    def _check_numeric(self) -> None:
        if self.values is not None or self.levels is not None:
            raise ValueError("a numeric column takes range, not values or levels")
        if self.missing == "keep":
            raise ValueError("a numeric column can only refuse or drop a blank cell, not keep it")
        if set(self.phrases) - {"high", "low"}:
            raise ValueError("a numeric column's phrases are 'high' and 'low'")
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError(f"range {list(self.range)} must go from low to high")
        if self.bands is not None and list(self.bands) != sorted(set(self.bands)):
            raise ValueError("bands must be increasing band edges")
        if self.bands is not None and not 1 <= len(self.bands) <= MAX_BAND_EDGES:
            raise ValueError(
                f"bands takes 1 to {MAX_BAND_EDGES} edges (2 to {MAX_BAND_EDGES + 1} bands, each "
                f"named by a word in texts), not {len(self.bands)}"
            )
        if self.derive is not None:
            if self.placeholders or self.missing != "refuse":
                raise ValueError(
                    "a derived column is computed, never blank: placeholders and missing "
                    "belong to its source column"
                )
            if not self.integer:
                raise ValueError("a derived column counts whole days, months or years")

    def _check_date(self) -> None:
        others = {
            "range": self.range,
            "bands": self.bands,
            "values": self.values,
            "levels": self.levels,
            "derive": self.derive,
        }
        given = [name for name, value in others.items() if value is not None]
        if given or self.integer or self.unit or self.phrases:
            raise ValueError(
                "a date column takes format, placeholders, missing and invalid, not "
                f"{given or 'phrases, integer or unit'}"
            )
        if self.format is None:
            raise ValueError("a date column needs its format, e.g. format: '%d/%m/%Y'")
        if self.missing == "keep":
            raise ValueError("a date column can only refuse or drop a blank cell, not keep it")
        try:
            written = DATE_PROBE.strftime(self.format)
            read_back = datetime.datetime.strptime(written, self.format)
        except ValueError as exc:
            raise ValueError(f"format {self.format!r} is not a date format ({exc})") from None
        if read_back.date() != DATE_PROBE.date():
            raise ValueError(
                f"format {self.format!r} does not hold a whole date (it writes "
                f"{DATE_PROBE:%Y-%m-%d} as {written!r}); give day, month and year, "
                "e.g. '%d/%m/%Y' or '%Y-%m-%d'"
            )

    def _check_categories(self) -> None:
        given = [
            name
            for name, value in {"range": self.range, "bands": self.bands}.items()
            if value is not None
        ]
        if given or self.integer or self.unit or self.derive is not None:
            raise ValueError(f"a {self.kind} column takes no range, bands, integer, unit or derive")
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
        if allowed is None:
            return
        listed = "levels" if self.kind == "ordinal" else "values"
        unknown = sorted(set(self.phrases) - set(allowed))
        if unknown:
            raise ValueError(f"phrases name value(s) {unknown} that are not allowed")
        for written, meant in self.map.items():
            if meant not in allowed or meant == MISSING_CATEGORY:
                raise ValueError(
                    f"map sends {written!r} to {meant!r}, which is not one of its {listed} "
                    f"{[value for value in allowed if value != MISSING_CATEGORY]}; map onto a "
                    f"declared value, or add {meant!r} to {listed}"
                )
        both = sorted(set(self.placeholders) & set(allowed))
        if both:
            raise ValueError(
                f"placeholder(s) {both} are also {listed}; a value either means missing or is "
                "a category"
            )

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
    # how numbers are written in the texts: the value as read, its band word, or both
    numbers: NumberWriting = "value"
    naming: Naming = Naming()
    max_categories: Annotated[int, Field(ge=2, le=10_000)] = 50
    # the day derived numbers are counted to: written in the file so that reruns agree
    reference_date: datetime.date | None = None

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
        self._check_dates_and_derivations()
        unused = [
            name
            for name in declared
            if name not in self.segment_on
            and name not in self.describe
            and name not in self.text_columns
            and name not in self.derivation_sources
        ]
        if unused:
            raise ValueError(
                f"column(s) {unused} are declared but not used; segment on them, "
                "describe them, put them in the template, derive a number from them, or remove them"
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

    def _check_dates_and_derivations(self) -> None:
        template_fields = [] if self.template is None else self.text_columns
        for key, names in (
            ("segment_on", self.segment_on),
            ("describe", list(self.describe)),
            ("template", template_fields),
        ):
            dates = [name for name in names if self.columns[name].kind == "date"]
            if dates:
                raise ValueError(
                    f"{key} names date column(s) {dates}; a date is read only to derive a "
                    f"number from it: declare e.g. {dates[0]}_months with derive: "
                    f"{{months_since: {dates[0]}}} and use that"
                )
        for name, derivation in self.derived.items():
            where, source = f"columns.{name}.derive", derivation.source
            if source not in self.columns:
                raise ValueError(
                    f"{where}: {derivation.measure} names undeclared column {source!r}; "
                    "declare it under columns"
                )
            spec = self.columns[source]
            if derivation.measure == "age_from_year":
                if spec.kind != "numeric" or not spec.integer or spec.derive is not None:
                    raise ValueError(
                        f"{where}: age_from_year needs a birth-year column read as whole numbers "
                        f"(kind: numeric, integer: true), but {source!r} is not"
                    )
            elif spec.kind != "date":
                raise ValueError(
                    f"{where}: {derivation.measure} needs a date column (kind: date with a "
                    f"format), but {source!r} is {spec.kind}"
                )
            if self.reference_date is None:
                raise ValueError(
                    f"{where}: a derived number is counted to reference_date, which is missing; "
                    "add e.g. reference_date: 2014-12-31 (the export's date) at the top level"
                )

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

    @property
    def derived(self) -> dict[str, Derivation]:
        """The columns computed from another column, with how."""
        return {name: spec.derive for name, spec in self.columns.items() if spec.derive is not None}

    @property
    def derivation_sources(self) -> list[str]:
        return list(dict.fromkeys(derivation.source for derivation in self.derived.values()))

    @cached_property
    def text_columns(self) -> list[str]:
        """The columns each customer's text carries, in the template's (or declared) order.

        The default text leaves out outcomes and dates, and a derivation's source unless the
        customers are segmented on it: the derived number stands for it.
        """
        if self.template is None:
            sources = set(self.derivation_sources) - set(self.segment_on)
            return [
                name
                for name, spec in self.columns.items()
                if name not in self.describe and spec.kind != "date" and name not in sources
            ]
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
        return list(
            dict.fromkeys(
                [*self.segment_on, *self.text_columns, *self.describe, *self.derivation_sources]
            )
        )

    def file_columns(self, columns: list[str]) -> list[str]:
        """The table's columns needed to give ``columns``: a derived one needs its source."""
        derived = self.derived
        return list(
            dict.fromkeys(derived[name].source if name in derived else name for name in columns)
        )


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
    placeholders, maps and blanks resolved by each column's policies, derived numbers computed,
    indexed by customer id) and the rejected rows (id, file line, column, reason).
    The customer id is the id column, or the 0-based data-row number when there is none. Every
    problem that stops the run is reported at once, in one line.
    """
    path = _existing_table(path)
    columns = dataset.used_columns if columns is None else columns
    text = _decode(path, path.read_bytes(), dataset.format.encoding)
    header, frame = split_table(
        path,
        text,
        dataset.format.separator,
        dataset.format.quote,
        _separator_fix(dataset, spec_file),
    )
    frame = frame.loc[:, _read_columns(path, header, dataset, spec_file, columns)]
    if frame.empty:
        raise _no_rows(path)
    kept, rejected = _checked(path, frame, dataset, spec_file, columns)
    if kept.empty:
        raise _all_rejected(path, len(rejected), rejected["reason"].iloc[0], spec_file)
    return kept, rejected


# Ids' 64-bit hashes are kept on disk in this many files, by their top byte, and checked for
# repeats one file at a time: 8 bytes per customer / ID_HASH_FILES in memory.
ID_HASH_FILES = 256


class ScratchFolder:
    """A context manager whose ``folder`` is a temporary folder, removed on leaving."""

    def __enter__(self):
        self._scratch = tempfile.TemporaryDirectory(prefix="segments-")
        self.folder = Path(self._scratch.name)
        return self

    def __exit__(self, *exc_info) -> None:
        self._scratch.cleanup()


class IdHashes(ScratchFolder):
    """The 64-bit hashes of the ids of a table read in chunks, on disk in a scratch folder, to
    count the ids that repeat across chunks."""

    def add(self, ids: np.ndarray) -> None:
        hashes = np.sort(pd.util.hash_array(ids))
        edges = np.searchsorted(hashes >> np.uint64(56), np.arange(ID_HASH_FILES + 1))
        for top in np.flatnonzero(np.diff(edges)):
            with (self.folder / f"{top:03d}").open("ab") as handle:
                hashes[edges[top] : edges[top + 1]].tofile(handle)

    def repeated(self) -> int:
        """How many distinct ids occur more than once."""
        repeats = 0
        for file in sorted(self.folder.iterdir()):
            _, counts = np.unique(np.fromfile(file, dtype=np.uint64), return_counts=True)
            repeats += int((counts > 1).sum())
        return repeats


def read_table_chunks(
    path: Path,
    dataset: Dataset,
    spec_file: Path,
    columns: list[str] | None = None,
    chunk_rows: int = CUSTOMER_CHUNK_ROWS,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``read_table``'s kept and rejected customers, ``chunk_rows`` rows of the file at a time, so a
    file of any size is read in the memory of one chunk.

    Each chunk is checked as ``read_table`` checks a whole table, with the file's line numbers, so
    a problem that stops the run is reported for the first chunk that has it. Ids are checked
    unique within each chunk and, once the file is read, across chunks by a 64-bit hash of each id
    (``IdHashes``, on disk): a consumer that writes its output only after the last chunk writes
    none for a file with repeated ids.
    """
    path = _existing_table(path)
    columns = dataset.used_columns if columns is None else columns
    separator, quote = dataset.format.separator, dataset.format.quote
    with path.open("rb") as handle:
        first_line = _decode(path, handle.readline(), dataset.format.encoding)
    header = table_header(path, first_line, separator, quote, _separator_fix(dataset, spec_file))
    read = _read_columns(path, header, dataset, spec_file, columns)
    rows = kept_rows = rejected_rows = 0
    first_reason = ""
    with IdHashes() as id_hashes:
        try:
            with pd.read_csv(
                path,
                sep=separator,
                quotechar=quote,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                encoding=dataset.format.encoding,
                chunksize=chunk_rows,
            ) as chunks:
                for frame in chunks:
                    if frame.empty:
                        continue
                    frame.columns = header
                    frame = frame.loc[:, read].apply(lambda column: column.str.strip())
                    if dataset.id:
                        id_hashes.add(frame[dataset.id].to_numpy())
                    kept, rejected = _checked(path, frame, dataset, spec_file, columns)
                    rows, kept_rows = rows + len(frame), kept_rows + len(kept)
                    if len(rejected) and not rejected_rows:
                        first_reason = rejected["reason"].iloc[0]
                    rejected_rows += len(rejected)
                    yield kept, rejected
        except UnicodeDecodeError:
            raise _first_undecodable(path, dataset.format.encoding) from None
        except pd.errors.ParserError as exc:
            raise _unreadable(path, exc, len(header), separator) from None
        if not rows:
            raise _no_rows(path)
        if not kept_rows:
            raise _all_rejected(path, rejected_rows, first_reason, spec_file)
        repeats = id_hashes.repeated()
    if repeats:
        raise PipelineError(
            f"{path}: id column {dataset.id!r} repeats {repeats} id(s) far apart in the file; ids "
            "must be unique"
        )


class TableRows(ScratchFolder):
    """The customers ``read_table_chunks`` keeps, passed through ``kept`` a chunk at a time, and
    the counts; the rejected rows are set aside in a scratch folder a chunk at a time, to be read
    back with ``rejected_chunks``."""

    def __init__(self) -> None:
        self.kept_rows = self.rejected_rows = self._parts = 0

    def _part(self, number: int) -> Path:
        return self.folder / f"{number:09d}.parquet"

    def kept(self, chunks: Iterator[tuple[pd.DataFrame, pd.DataFrame]]) -> Iterator[pd.DataFrame]:
        for cells, rejected in chunks:
            self.kept_rows += len(cells)
            self.rejected_rows += len(rejected)
            if len(rejected) or not self._parts:  # the first part, even empty, gives the columns
                rejected.to_parquet(self._part(self._parts), index=False)
                self._parts += 1
            yield cells

    def rejected_chunks(self) -> Iterator[pd.DataFrame]:
        """The rejected rows in file order, a chunk at a time (at least one chunk)."""
        for number in range(self._parts):
            yield pd.read_parquet(self._part(number))


def _existing_table(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: missing; run 'dvc repro' so the download stage fetches it")
    return path


def _separator_fix(dataset: Dataset, spec_file: Path) -> str:
    separator = dataset.format.separator
    return f"save the table {separator!r}-separated or set format.separator in {spec_file}"


def _read_columns(
    path: Path, header: list[str], dataset: Dataset, spec_file: Path, columns: list[str]
) -> list[str]:
    """The file's columns that ``columns`` are read from, the id column first if there is one."""
    read_with_id = ([dataset.id] if dataset.id else []) + dataset.file_columns(columns)
    missing = [name for name in read_with_id if name not in header]
    if missing:
        raise PipelineError(
            f"{path}: declared column(s) {missing} are not in the table (found "
            f"{header[:30]}); fix the names in {spec_file} or in the file's header"
        )
    return read_with_id


def _no_rows(path: Path) -> PipelineError:
    return PipelineError(f"{path}: has a header but no customer rows")


def _all_rejected(path: Path, rejected: int, first_reason: str, spec_file: Path) -> PipelineError:
    return PipelineError(
        f"{path}: every row was rejected by a missing-cell or invalid-value policy "
        f"({rejected} rows; first: {first_reason}); check the missing: "
        f"and invalid: settings in {spec_file}"
    )


def _checked(
    path: Path, frame: pd.DataFrame, dataset: Dataset, spec_file: Path, columns: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The kept customers and the rejected rows of ``frame`` (the file's cells as text, indexed by
    data-row number); a problem that stops the run is raised in one line."""
    dropped: dict[int, list[tuple[str, str]]] = {}
    read = dataset.file_columns(columns)
    problems = _cell_problems(frame, dataset, spec_file, read, dropped)
    if not problems:
        problems = _derive(frame, dataset, spec_file, columns, dropped)
    if problems:
        raise PipelineError(f"{path}: {'; '.join(problems)}")
    ids = (
        frame.pop(dataset.id)
        if dataset.id
        else pd.Series(frame.index.astype(str), index=frame.index)
    )
    rows = pd.Index(sorted(dropped), dtype=frame.index.dtype)
    rejected = pd.DataFrame(
        {
            CUSTOMER_ID: ids[rows].to_numpy(),
            "line": rows + 2,
            "column": ["; ".join(dict.fromkeys(c for c, _ in dropped[row])) for row in rows],
            "reason": ["; ".join(reason for _, reason in dropped[row]) for row in rows],
        }
    )
    kept = frame.drop(index=rows).loc[:, columns]
    kept.index = pd.Index(ids.drop(index=rows), name=CUSTOMER_ID)
    return kept, rejected


def _decode(path: Path, raw: bytes, encoding: str) -> str:
    if not raw.strip():
        raise PipelineError(f"{path}: is empty; expected a header line and customer rows")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _not_encoded(path, encoding, line, exc.start, raw[exc.start]) from None
    # A spreadsheet's byte-order mark and Windows line ends are part of how the file is written,
    # not of its content.
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _not_encoded(path: Path, encoding: str, line: int, offset: int, byte: int) -> PipelineError:
    return PipelineError(
        f"{path}: line {line} is not {encoding} (byte 0x{byte:02x} at offset {offset}); "
        f"re-save the file as {encoding}, or set format.encoding in the data-set file"
    )


def _first_undecodable(path: Path, encoding: str) -> PipelineError:
    """``_not_encoded`` for the first byte of a file too large to hold that is not ``encoding``:
    decoded a block at a time, counting the bytes and newlines read."""
    decoder, read, lines = codecs.getincrementaldecoder(encoding)(), 0, 0
    with path.open("rb") as handle:
        while block := handle.read(SCAN_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # the error counts from the start of a character the decoder held back, if any
                held, before = len(exc.object) - len(block), exc.object[: exc.start]
                line = lines + before.count(b"\n") + 1
                return _not_encoded(
                    path, encoding, line, read - held + exc.start, exc.object[exc.start]
                )
            read, lines = read + len(block), lines + block.count(b"\n")
    return PipelineError(f"{path}: not {encoding}; re-save the file as {encoding}")


def table_header(label: object, first_line: str, separator: str, quote: str, fix: str) -> list[str]:
    """The header's column names, checked: more than one, none repeated. ``fix`` ends the message
    for a header without the separator."""
    header = next(csv.reader(io.StringIO(first_line), delimiter=separator, quotechar=quote))
    header = [name.strip() for name in header]
    if len(header) == 1:
        other = next(
            (sep for sep in (",", ";", "\t", "|") if sep != separator and sep in header[0]), None
        )
        looks = f"it looks {other!r}-separated" if other else "it has a single column"
        raise PipelineError(f"{label}: header line 1 has no {separator!r} ({looks}); {fix}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise PipelineError(
            f"{label}: header line 1 repeats column(s) {repeated}; keep each column once"
        )
    return header


def split_table(
    label: object, text: str, separator: str, quote: str, fix: str
) -> tuple[list[str], pd.DataFrame]:
    """The header's column names and every cell as stripped text.

    Blank lines are kept as rows so that row i stays file line i + 2 in every message. ``fix``
    ends the message for a header without the separator.
    """
    header = table_header(label, text.split("\n", 1)[0], separator, quote, fix)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            quotechar=quote,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _unreadable(label, exc, len(header), separator) from None
    frame.columns = header
    return header, frame.apply(lambda column: column.str.strip())


def _unreadable(label: object, exc: Exception, fields: int, separator: str) -> PipelineError:
    return PipelineError(
        f"{label}: malformed table ({' '.join(str(exc).split())}); every line needs "
        f"{fields} {separator!r}-separated fields like the header"
    )


@dataclass(frozen=True)
class _Broken:
    """The cells of one column that break one rule."""

    reasons: pd.Series  # row -> why its cell is invalid, e.g. "Income 666666 is outside 0..200000"
    refusal: str  # the one-line message when the column refuses invalid cells


def _cell_problems(
    frame: pd.DataFrame,
    dataset: Dataset,
    spec_file: Path,
    columns: list[str],
    dropped: dict[int, list[tuple[str, str]]],
) -> list[str]:
    """One message per rule broken that stops the run; rows a policy rejects go to ``dropped``.

    Rewrites ``frame`` in place: placeholders become blank, mapped values their target, and blanks
    kept under ``missing: keep`` the category ``missing``.
    """
    problems: list[str] = []
    blank_rows = frame.eq("").all(axis=1)
    header_rows = frame.eq(pd.Series(frame.columns, index=frame.columns)).all(axis=1)
    if blank_rows.any():
        problems.append(f"{file_lines(frame.index[blank_rows])} are blank; remove them")
    if header_rows.any():
        problems.append(
            f"{file_lines(frame.index[header_rows])} repeat the header (files joined?); remove them"
        )
    rows = frame.index[~(blank_rows | header_rows)]
    if dataset.id:
        problems += _id_problems(frame.loc[rows, dataset.id])
    for name in columns:
        spec = dataset.columns[name]
        cells = frame.loc[rows, name]
        if spec.placeholders:
            cells = cells.mask(cells.isin(spec.placeholders), "")
        if spec.map:
            cells = cells.replace(spec.map)
        empty = cells.eq("")
        if empty.any():
            if spec.missing == "refuse":
                keep = (
                    " or keep (a category of their own)"
                    if spec.kind in ("categorical", "ordinal")
                    else ""
                )
                problems.append(
                    f"column {name!r} is blank on {file_lines(cells.index[empty])}; fill it in, or "
                    f"set columns.{name}.missing to drop (reject those rows){keep} in {spec_file}"
                )
            elif spec.missing == "drop":
                for row in cells.index[empty]:
                    dropped.setdefault(row, []).append((name, f"{name} is blank"))
            else:
                cells = cells.mask(empty, MISSING_CATEGORY)
        frame.loc[rows, name] = cells
        cells = cells.loc[~empty]
        if spec.kind in ("categorical", "ordinal") and spec.allowed is None:
            problems += _too_many_categories(name, cells, dataset.max_categories, spec_file)
        for broken in _invalid_cells(name, spec, cells, spec_file):
            _apply_policy(name, spec, broken, problems, dropped)
    return problems


def _apply_policy(
    name: str,
    spec: Column,
    broken: _Broken,
    problems: list[str],
    dropped: dict[int, list[tuple[str, str]]],
) -> None:
    if spec.invalid == "refuse":
        problems.append(broken.refusal)
        return
    for row, reason in broken.reasons.items():
        dropped.setdefault(row, []).append((name, reason))


def _drop_hint(name: str, spec_file: Path) -> str:
    return f"set columns.{name}.invalid to drop (reject those rows) in {spec_file}"


def _invalid_cells(name: str, spec: Column, cells: pd.Series, spec_file: Path) -> list[_Broken]:
    drop = f"or {_drop_hint(name, spec_file)}"
    if spec.kind == "numeric":
        return _invalid_numbers(name, spec, cells, drop)
    if spec.kind == "date":
        unreadable = pd.to_datetime(cells, format=spec.format, errors="coerce").isna()
        return _broken(
            cells[unreadable],
            lambda cell: f"{name} {cell!r} is not a date written as {spec.format!r}",
            f"column {name!r} is not a date written as {spec.format!r} on",
            f"correct those cells or columns.{name}.format, {drop}",
        )
    allowed = spec.allowed
    if allowed is None:
        return []
    listed = "levels" if spec.kind == "ordinal" else "values"
    return _broken(
        cells[~cells.isin(allowed)],
        lambda cell: f"{name} {cell!r} is not one of its {listed}",
        f"column {name!r} has value(s) outside its {listed} on",
        f"use one of {allowed}, add them to columns.{name}.{listed}, map them onto one "
        f"(columns.{name}.map), {drop}",
    )


def _invalid_numbers(name: str, spec: Column, cells: pd.Series, drop: str) -> list[_Broken]:
    pattern = WHOLE_NUMBER if spec.integer else PLAIN_NUMBER
    malformed = ~cells.str.fullmatch(pattern.pattern)
    wanted = "a whole number" if spec.integer else "a plain number"
    found = _broken(
        cells[malformed],
        lambda cell: f"{name} {cell!r} is not {wanted}",
        f"column {name!r} is not {wanted} on",
        f"write digits with an optional sign{'' if spec.integer else ' and decimal point'}, "
        f"no exponent or thousands separator, {drop}",
    )
    if spec.range is not None:
        numbers = pd.to_numeric(cells[~malformed])
        low, high = spec.range
        found += _broken(
            cells[numbers.index[(numbers < low) | (numbers > high)]],
            lambda cell: f"{name} {cell} is outside {low:g}..{high:g}",
            f"column {name!r} is outside {low:g}..{high:g} on",
            f"correct the values, {drop}",
        )
    return found


def _broken(bad: pd.Series, reason, where: str, fix: str) -> list[_Broken]:
    """``bad``'s cells as one broken rule: a reason per row, and the refusal naming their lines."""
    if bad.empty:
        return []
    return [
        _Broken(
            reasons=bad.map(reason),
            refusal=f"{where} {file_lines(bad.index)}{_examples(bad)}; {fix}",
        )
    ]


def _too_many_categories(name: str, cells: pd.Series, limit: int, spec_file: Path) -> list[str]:
    distinct = cells.nunique()
    if distinct <= limit:
        return []
    return [
        f"column {name!r} has {distinct} distinct values, over max_categories ({limit}); "
        "declare it numeric if it is a number, group its values, or raise max_categories "
        f"in {spec_file}"
    ]


def _derive(
    frame: pd.DataFrame,
    dataset: Dataset,
    spec_file: Path,
    columns: list[str],
    dropped: dict[int, list[tuple[str, str]]],
) -> list[str]:
    """Add the derived columns among ``columns`` to ``frame``, checked like read numbers."""
    problems: list[str] = []
    alive = frame.index.difference(pd.Index(list(dropped), dtype=frame.index.dtype))
    for name in columns:
        spec = dataset.columns[name]
        if spec.derive is None:
            continue
        source = spec.derive.source
        numbers = derived_numbers(
            frame.loc[alive, source], dataset.columns[source], spec.derive, dataset.reference_date
        )
        cells = numbers.astype("int64").astype(str)
        frame[name] = ""
        frame.loc[cells.index, name] = cells
        before = numbers < 0
        found = _broken(
            frame.loc[numbers.index[before], source],
            lambda cell, source=source: (
                f"{source} {cell} is after reference_date {dataset.reference_date}"
            ),
            f"column {source!r} is after reference_date {dataset.reference_date} on",
            f"set reference_date to the export's date or later, or {_drop_hint(name, spec_file)}",
        )
        found += _invalid_numbers(name, spec, cells[~before], f"or {_drop_hint(name, spec_file)}")
        for broken in found:
            _apply_policy(name, spec, broken, problems, dropped)
    return problems


def derived_numbers(
    cells: pd.Series, source: Column, derivation: Derivation, reference: datetime.date
) -> pd.Series:
    """Whole days, months or years from each date to ``reference``, or years since a birth year."""
    reference = pd.Timestamp(reference)
    if derivation.measure == "age_from_year":
        return reference.year - pd.to_numeric(cells).astype("int64")
    dates = pd.to_datetime(cells, format=source.format)
    if derivation.measure == "days_since":
        return (reference - dates).dt.days.astype("int64")
    # Whole months completed: the day of the month counts, as it does for a birthday.
    months = (
        (reference.year - dates.dt.year) * 12
        + (reference.month - dates.dt.month)
        - (reference.day < dates.dt.day).astype("int64")
    ).astype("int64")
    return months if derivation.measure == "months_since" else months // 12


def _id_problems(ids: pd.Series) -> list[str]:
    problems = []
    blank = ids.eq("")
    if blank.any():
        problems.append(
            f"id column {ids.name!r} is blank on {file_lines(ids.index[blank])}; "
            "every customer needs an id"
        )
    repeated = ids.duplicated(keep=False) & ~blank
    if repeated.any():
        problems.append(
            f"id column {ids.name!r} repeats ids on {file_lines(ids.index[repeated])}"
            f"{_examples(ids[repeated])}; ids must be unique"
        )
    return problems


def file_lines(index: pd.Index, shown: int = 5) -> str:
    """Name rows as file line numbers (header is line 1), the way an editor shows them."""
    lines = ", ".join(str(i + 2) for i in index[:shown])
    more = f" and {len(index) - shown} more" if len(index) > shown else ""
    return f"line(s) {lines}{more}"


def _examples(cells: pd.Series, shown: int = 3) -> str:
    return f" (e.g. {list(dict.fromkeys(cells.head(50)))[:shown]})"


# --- what a user must see about the data ---------------------------------------------------------

# A segmented column this close to another (|Pearson r| for numbers, Cramér's V for categories)
# says the same thing twice and weighs twice in the segments.
NEAR_COPY = 0.95


def data_warnings(customers: pd.DataFrame, dataset: Dataset) -> tuple[list[str], int]:
    """Warnings about the kept customers, typed (constant and near-copy segmented columns,
    repeated records), and the number of records that repeat an earlier one in every column but
    the id."""
    warnings = []
    for name in dataset.segment_on:
        values = customers[name].unique()
        if len(values) == 1:
            warnings.append(
                f"column {name!r} is constant (every customer has {str(values[0])!r}): it "
                "cannot separate segments; leave it out of segment_on"
            )
    declared = [name for name in dataset.used_columns if name not in dataset.derived]
    repeats = customers.loc[:, declared].duplicated()
    if repeats.any():
        first = customers.index[repeats][0]
        twin = customers.index[
            customers.loc[:, declared].eq(customers.loc[first, declared]).all(axis=1)
        ][0]
        warnings.append(
            f"{int(repeats.sum()):,} customer record(s) repeat another customer in every declared "
            f"column but the id (e.g. {twin!r} and {first!r}); if they are the same customers, "
            "remove the copies from the export"
        )
    warnings += _near_copies(customers, dataset)
    return warnings, int(repeats.sum())


def _near_copies(customers: pd.DataFrame, dataset: Dataset) -> list[str]:
    found = []
    numeric, categorical = dataset.numeric, dataset.categorical
    varying = [name for name in customers if customers[name].nunique() > 1]
    for kind, names in (("numeric", numeric), ("categorical", categorical)):
        names = [name for name in names if name in varying]
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                if kind == "numeric":
                    likeness = abs(customers[first].corr(customers[second]))
                    measure = "|Pearson r|"
                else:
                    likeness = _cramers_v(customers[first], customers[second])
                    measure = "Cramér's V"
                if likeness >= NEAR_COPY:
                    found.append(
                        f"segmented columns {first!r} and {second!r} are almost copies of each "
                        f"other ({measure} {likeness:.2f}): they weigh twice in the segments; "
                        "keep one in segment_on"
                    )
    return found


def _cramers_v(first: pd.Series, second: pd.Series) -> float:
    # scipy.stats takes most of a second to import, and only the serialize stage comes here
    from scipy.stats.contingency import association

    return float(association(pd.crosstab(first, second).to_numpy(), method="cramer"))


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


def read_customers(path: Path, dataset: Dataset, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The customers the serialize stage kept (``data/<name>/interim/customers.csv``), typed: all
    of them, or those at the sorted row numbers ``rows``, read a chunk at a time."""
    if rows is None:
        cells = pd.read_csv(path, **_customer_cells(path, dataset))
    else:
        cells, _ = picked_rows(_customer_cell_chunks(path, dataset), rows)
    return _typed_customers(cells, dataset)


def customer_chunks(path: Path, dataset: Dataset) -> Iterator[pd.DataFrame]:
    """Every customer of ``read_customers``, typed, ``CUSTOMER_CHUNK_ROWS`` at a time, in row
    order."""
    for chunk in _customer_cell_chunks(path, dataset):
        yield _typed_customers(chunk, dataset)


def _customer_cell_chunks(path: Path, dataset: Dataset) -> Iterator[pd.DataFrame]:
    with pd.read_csv(
        path, chunksize=CUSTOMER_CHUNK_ROWS, **_customer_cells(path, dataset)
    ) as chunks:
        yield from chunks


def _customer_cells(path: Path, dataset: Dataset) -> dict:
    """``pd.read_csv``'s options for the customers table's cells, once it is checked to exist and
    to have the data-set file's columns."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(
            f"{path}: missing; run 'dvc repro' so the serialize stage writes it first"
        )
    header = pd.read_csv(path, nrows=0).columns
    missing = [name for name in dataset.used_columns if name not in header]
    if missing:
        raise PipelineError(
            f"{path}: lacks column(s) {missing} of the data-set file; rerun 'dvc repro'"
        )
    return {"dtype": str, "keep_default_na": False, "usecols": [CUSTOMER_ID, *dataset.used_columns]}


def _typed_customers(cells: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    return typed(cells.set_index(CUSTOMER_ID).loc[:, dataset.used_columns], dataset)
