"""Draft a data-set file (``datasets/<name>.yaml``) from a raw customer export.

``draft(raw, name, source_path, outcomes)`` takes the export's bytes and returns the text of a
data-set file: the format, the id, each column's kind, range or values, placeholders, missing and
invalid policies, labels, bands and phrases, the outcome(s) to describe, what to segment on, and
numbers derived from dates and birth years. Every decision a person should check is a ``#``
comment next to the key concerned; columns left out are listed, with the reason and how to bring
them back, in a comment block before ``segment_on``. Same bytes in, same text out: nothing depends
on the clock, the machine or the order of a set.

A categorical column with more than 50 distinct values (the reader's ``max_categories``) that is
not free text is left out with a comment saying how to group its values or raise
``max_categories``, rather than raising it: one-hot encoding hundreds of rare values would swamp
the segments, and the draft should not make that choice silently. Birth years in a table with no
date column get no derived age: the reference date would have to be invented, so the comment says
how to add it.

Libraries, and why:

- **clevercsv** finds the separator and the quote character. It scores every candidate dialect by
  how regular a table it makes (the row-length pattern times how many cells look like a known
  type); its authors (van den Burg, Nazábal and Sutton, 2019) measured it more accurate than
  ``csv.Sniffer`` on thousands of messy real-world files. It installs from PyPI as a wheel for
  Python 3.11. It is asked to choose among the separators the reader knows (``, ; tab |``) on the
  first 64 KiB; ``csv.Sniffer`` restricted to the same separators is the fallback when clevercsv
  finds nothing or is not installed. (On the three shared tables and the tests' exports the two
  agree.)
- **charset-normalizer** names the encoding of a file that is not UTF-8 (UTF-8 is tried first,
  since it almost never decodes a file that is something else).
- **scikit-learn** (already a dependency): the leak check fits a depth-2 decision tree on one
  column at a time, its categories target-encoded inside each fold.
- The YAML is built as plain strings, not through a template engine or a YAML writer: the
  decisions are comments, which no YAML writer emits, and each value goes through a round trip
  with ``yaml.safe_load`` so that a string YAML would misread (``yes``, ``0``, ``null``, ``a: b``)
  is written double-quoted.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import json
import math
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import yaml

from segmentation.artifacts import PipelineError
from segmentation.data.dataset import (
    MISSING_CATEGORY,
    PLAIN_NUMBER,
    WHOLE_NUMBER,
    file_lines,
    split_table,
)

SEPARATORS = ",;\t|"
SAMPLE_CHARS = 64 * 1024
WIDTH = 100
# Cells that mean "no value", compared stripped and case-insensitively; written as found.
PLACEHOLDERS = frozenset(
    [
        "unknown",
        "n/a",
        "na",
        "none",
        "null",
        "?",
        "-",
        "--",
        "missing",
        "not available",
        "undefined",
        "#n/a",
    ]
)
ID_WORDS = ("id", "num", "number", "key", "code")
# A categorical column with more distinct values than this is left out (the reader's default
# max_categories); one with more distinct values than this share of the rows is free text.
MAX_CATEGORIES = 50
NEAR_UNIQUE = 0.5
RARE = 0.01
LEAK_ACCURACY = 0.95
LEAK_SAMPLE = 50_000
# Below this many rows, "equals a - b on every row" or "renames another column" is chance.
MIN_ROWS_FOR_COPIES = 20
DATE_FORMATS = tuple(
    f"{day}{time}"
    for day in ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d")
    for time in ("", " %H:%M", " %H:%M:%S")
) + ("%Y-%m-%dT%H:%M:%S",)
LOOKS_LIKE_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?$")
# Numbers the reader refuses: thousands separators, decimal commas, exponents.
NUMBERISH = re.compile(r"^[+-]?(\d[\d,.' ]*|[.,]\d+)([eE][+-]?\d+)?$")
# Word scales whose order is obvious, lowest first (compared in lower case, '-' and '_' as spaces).
SCALES = (
    ("very low", "low", "medium", "high", "very high"),
    ("very low", "low", "moderate", "high", "very high"),
    ("low", "mid", "high"),
    ("very small", "small", "medium", "large", "very large"),
    ("extra small", "small", "medium", "large", "extra large"),
    ("very poor", "poor", "fair", "good", "very good", "excellent"),
    ("never", "rarely", "sometimes", "often", "always"),
    ("strongly disagree", "disagree", "neutral", "agree", "strongly agree"),
    ("primary", "secondary", "tertiary"),
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    (
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ),
)
# A number in a range category: "$40K", "120K", "1,000", "2.5m"; not the 1 of "Q1".
AMOUNT = re.compile(r"(?<![A-Za-z0-9])[$€£]?\s*(\d+(?:[.,]\d+)*)\s*([kKmMbB](?![A-Za-z]))?")
BELOW = re.compile(r"\b(less than|under|below|up to|fewer than)\b|<|≤", re.IGNORECASE)
ABOVE = re.compile(r"\b(more than|over|above|at least|or more|and over|and up)\b|\+|>|≥", re.I)
RANGE_WORDS = re.compile(r"\b(to|and|between|from)\b|[-–—]", re.IGNORECASE)
MULTIPLIERS = {"k": 1e3, "m": 1e6, "b": 1e9}


# --- reading the export ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sniffed:
    """How the export is written, and its text as the reader sees it."""

    encoding: str
    bom: bool
    crlf: bool
    lone_cr: bool
    separator: str
    quote: str
    text: str


def sniff(raw: bytes, label: str) -> Sniffed:
    """The encoding, byte-order mark, line ends, separator and quote of an export's bytes."""
    if not raw.strip():
        raise PipelineError(f"{label}: is empty; expected a header line and customer rows")
    bom = raw.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding = _encoding(raw)
    text = raw.decode(encoding).removeprefix("\ufeff")
    crlf, lone_cr = "\r\n" in text, "\r" in text.replace("\r\n", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise PipelineError(f"{label}: is empty; expected a header line and customer rows")
    separator, quote = _dialect(text)
    return Sniffed(encoding, bom, crlf, lone_cr, separator, quote, text)


def _encoding(raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    for name in ([best.encoding] if best is not None else []) + ["cp1252", "latin-1"]:
        try:
            raw.decode(name)
            return codecs.lookup(name).name
        except (UnicodeDecodeError, LookupError):
            continue
    return "latin-1"  # pragma: no cover - latin-1 decodes any bytes


def _dialect(text: str) -> tuple[str, str]:
    sample = text[:SAMPLE_CHARS]
    if len(text) > SAMPLE_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]
    first = sample.split("\n", 1)[0]
    try:
        import clevercsv

        found = clevercsv.Detector().detect(sample, delimiters=list(SEPARATORS))
    except Exception:  # noqa: BLE001 - any failure falls back to the stdlib sniffer
        found = None
    # A one-column file gives an empty delimiter, which `in` would accept.
    delimiter = (found.delimiter if found is not None else None) or ""
    if len(delimiter) == 1 and delimiter in SEPARATORS and delimiter in first:
        return delimiter, found.quotechar or '"'
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=SEPARATORS)
        if dialect.delimiter in first:
            return dialect.delimiter, dialect.quotechar or '"'
    except csv.Error:
        pass
    counts = {sep: first.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return (best if counts[best] else ","), '"'


def read_cells(sniffed: Sniffed, label: str) -> tuple[pd.DataFrame, pd.Index]:
    """Every cell as stripped text (blank lines dropped), and the data rows that were blank."""
    _, frame = split_table(
        label,
        sniffed.text,
        sniffed.separator,
        sniffed.quote,
        f"the separator must be one of {list(SEPARATORS)}",
    )
    blank = frame.eq("").all(axis=1)
    blank_rows = frame.index[blank]
    frame = frame.loc[~blank].reset_index(drop=True)
    if frame.empty:
        raise PipelineError(f"{label}: has a header but no customer rows")
    return frame, blank_rows


# --- numbers --------------------------------------------------------------------------------------


def significant(value: float, digits: int = 2, rounding: str = ROUND_HALF_UP) -> float:
    """``value`` rounded to ``digits`` significant digits (decimal arithmetic: no float fuzz)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    exact = Decimal(repr(float(value)))
    quantum = Decimal(1).scaleb(exact.adjusted() - digits + 1)
    return float(exact.quantize(quantum, rounding=rounding))


def floor_to(value: float, digits: int = 2) -> float:
    return significant(value, digits, ROUND_FLOOR)


def ceil_to(value: float, digits: int = 2) -> float:
    return significant(value, digits, ROUND_CEILING)


def plausible_range(low: float, high: float, whole: bool = False) -> tuple[float, float]:
    """Wider than the values seen: from 0 (or below the lowest by half the span) to half the span
    above the highest, rounded outward to 2 significant digits (and to whole numbers)."""
    span = high - low
    bounds = floor_to(0.0 if low >= 0 else low - span / 2), ceil_to(high + span / 2)
    return (float(math.floor(bounds[0])), float(math.ceil(bounds[1]))) if whole else bounds


@dataclass(frozen=True)
class Impossible:
    """Values that look like mistakes (a typed 666666, a birth year 1893): the few beyond the
    3 IQR fence on one side, cut off from the other values by a gap wider than the IQR."""

    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def values(self) -> tuple[float, ...]:
        return self.low + self.high


def impossible_values(numbers: np.ndarray, rows: int) -> Impossible:
    """On each side: every value beyond the 3 IQR fence, when there are at most max(5, 0.2% of
    rows) of them and the one nearest the fence is more than an IQR from the nearest value inside
    it. A heavy tail (a bank balance) has many values beyond the fence, or no such gap; a few ages
    just past the fence (93, 94, 95) have no gap."""
    q1, q3 = np.percentile(numbers, [25, 75])
    iqr = q3 - q1
    if iqr <= 0:
        return Impossible()
    limit = max(5, 0.002 * rows)
    found = {}
    for side, sign, fence in (("high", 1.0, q3 + 3 * iqr), ("low", -1.0, -(q1 - 3 * iqr))):
        values = numbers * sign  # the low side mirrored, so that both read as "above the fence"
        beyond = values[values > fence]
        separated = len(beyond) and beyond.min() - values[values <= fence].max() > iqr
        found[side] = (
            tuple(sorted(float(value * sign) for value in np.unique(beyond)))
            if separated and len(beyond) <= limit
            else ()
        )
    return Impossible(low=found["low"], high=found["high"])


def kept_range(
    kept: np.ndarray, impossible: Impossible, whole: bool = False
) -> tuple[float, float]:
    """The plausible range of the kept values; where it would let impossible values in, cut at the
    coarsest round number halfway across the gap, so next month's ordinary values still pass."""
    low, high = plausible_range(float(kept.min()), float(kept.max()), whole)
    if impossible.low and low <= max(impossible.low):
        worst = max(impossible.low)
        middle = (worst + float(kept.min())) / 2
        low = next(bound for digits in range(1, 18) if (bound := floor_to(middle, digits)) > worst)
    if impossible.high and high >= min(impossible.high):
        worst = min(impossible.high)
        middle = (worst + float(kept.max())) / 2
        high = next(bound for digits in range(1, 18) if (bound := ceil_to(middle, digits)) < worst)
    return low, high


def bands(numbers: np.ndarray) -> list[float]:
    """The quartiles rounded to 2 significant digits, without repeats, increasing."""
    quartiles = np.percentile(numbers, [25, 50, 75])
    return sorted({significant(float(q)) for q in quartiles})


def whole_months(dates: pd.Series, reference: pd.Timestamp) -> pd.Series:
    """Whole months completed from each date to ``reference`` (as the reader counts them)."""
    return (
        (reference.year - dates.dt.year) * 12
        + (reference.month - dates.dt.month)
        - (reference.day < dates.dt.day).astype("int64")
    ).astype("int64")


# --- names ----------------------------------------------------------------------------------------

WORD = re.compile(r"[A-Z]+\d*(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")


def words(name: str) -> list[str]:
    return WORD.findall(name)


def humanize(name: str) -> str:
    """``Customer_Age`` -> "Customer age", ``MntWines`` -> "Mnt wines", ``StreamingTV`` ->
    "Streaming TV": words split at '_', spaces and case changes; acronyms kept."""
    parts = [part if (len(part) > 1 and part.isupper()) else part.lower() for part in words(name)]
    if not parts:
        return name
    first = parts[0]
    parts[0] = first if first.isupper() and len(first) > 1 else first[:1].upper() + first[1:]
    return " ".join(parts)


def normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def id_named(name: str) -> bool:
    return any(part.lower() in ID_WORDS or part.lower().endswith(ID_WORDS) for part in words(name))


def similar_names(outcome: str, column: str) -> bool:
    """The column's name holds the outcome's (4 characters or more) or nearly equals it."""
    wanted, name = normalized(outcome), normalized(column)
    if len(wanted) >= 4 and wanted in name:
        return True
    return difflib.SequenceMatcher(None, wanted, name).ratio() >= 0.8


# --- what each column is --------------------------------------------------------------------------


@dataclass
class Column:
    name: str
    cells: pd.Series
    blank: pd.Series  # blank or a placeholder
    placeholders: list[str]
    kind: str = ""  # numeric, categorical, ordinal, date; "" while undecided
    out: str = ""  # why it is left out; "" when declared
    comments: dict[str, list[str]] = field(default_factory=dict)  # key -> comment lines
    entries: dict[str, object] = field(default_factory=dict)  # key -> value, in order
    numbers: pd.Series | None = None  # numeric: the cells as numbers (NaN when not one)
    levels: list[str] | None = None
    date_format: str = ""
    derived_from: str = ""  # a derived column: its source
    outcome: bool = False

    @property
    def present(self) -> pd.Series:
        return self.cells[~self.blank]

    @property
    def declared(self) -> bool:
        return not self.out

    def note(self, key: str, *lines: str) -> None:
        self.comments.setdefault(key, []).extend(lines)


def profile(frame: pd.DataFrame) -> dict[str, Column]:
    columns = {}
    for name in frame.columns:
        cells = frame[name]
        placeholder = cells.str.lower().isin(PLACEHOLDERS)
        found = sorted(set(cells[placeholder]))
        columns[name] = Column(name, cells, cells.eq("") | placeholder, found)
    return columns


def choose_id(columns: dict[str, Column], outcomes: list[str]) -> tuple[str | None, str]:
    """The id column and why: unique and non-blank on every row, and id-like."""
    ranked = []
    for position, column in enumerate(columns.values()):
        cells = column.cells
        if column.name in outcomes or cells.eq("").any() or not cells.is_unique:
            continue
        if id_named(column.name):
            ranked.append((0, position, column.name, "its name says id"))
        elif not cells.str.fullmatch(PLAIN_NUMBER.pattern).all():
            if not cells.str.contains(r"\s").any():
                ranked.append((1, position, column.name, "it holds distinct codes"))
        elif cells.str.fullmatch(WHOLE_NUMBER.pattern).all():
            ranked.append((2, position, column.name, "it holds distinct whole numbers"))
    if not ranked:
        return None, ""
    _, _, name, why = min(ranked)
    return name, why


def date_format(values: pd.Series) -> tuple[str, bool] | None:
    """The strptime format every value is written in, and whether day and month could swap."""
    distinct = pd.Series(values.unique())
    if distinct.empty or not distinct.str.fullmatch(LOOKS_LIKE_DATE.pattern).all():
        return None
    fits = [
        fmt
        for fmt in DATE_FORMATS
        if pd.to_datetime(distinct, format=fmt, errors="coerce").notna().all()
    ]
    if not fits:
        return None
    chosen = fits[0]
    swapped = chosen.replace("%d", "%D").replace("%m", "%d").replace("%D", "%m")
    return chosen, swapped != chosen and swapped in fits


def range_levels(values: list[str]) -> list[str] | None:
    """Values that each hold a number range ("$40K - $60K", "Less than $40K", "120K +"), in
    order: open-below ranges first, then by their first number."""
    keys = {}
    leftover_words = set()
    for value in values:
        amounts = AMOUNT.findall(value)
        below, above = bool(BELOW.search(value)), bool(ABOVE.search(value))
        if not amounts or (len(amounts) < 2 and not (below or above)):
            return None
        first, suffix = amounts[0]
        number = float(first.replace(",", "")) * MULTIPLIERS.get(suffix.lower(), 1.0)
        keys[value] = (0 if below else 1, number, 1 if above else 0)
        rest = RANGE_WORDS.sub(" ", ABOVE.sub(" ", BELOW.sub(" ", AMOUNT.sub(" ", value))))
        leftover_words |= set(re.findall(r"[a-z]+", rest.lower()))
    if len(leftover_words) > 1 or len(set(keys.values())) != len(keys):
        return None
    return sorted(values, key=keys.__getitem__)


def scale_levels(values: list[str]) -> list[str] | None:
    """Values that all belong to one known word scale (low/medium/high, ...), in its order."""
    spelled = {
        value: " ".join(value.lower().replace("-", " ").replace("_", " ").split())
        for value in values
    }
    for scale in SCALES:
        if set(spelled.values()) <= set(scale) and len(set(spelled.values())) == len(values):
            return sorted(values, key=lambda value: scale.index(spelled[value]))
    return None


def ordinal_levels(values: list[str]) -> tuple[list[str], str] | None:
    if len(values) < 2:
        return None
    levels = range_levels(values)
    if levels is not None:
        return levels, "number ranges, ordered by their first number"
    levels = scale_levels(values)
    if levels is not None:
        return levels, "a known word scale"
    return None


def type_column(column: Column, rows: int) -> None:
    """Set the column's kind (or why it is left out) from its present cells."""
    present = column.present
    plain = present.str.fullmatch(PLAIN_NUMBER.pattern)
    distinct = present.unique()
    few = max(5, 0.002 * rows)
    if plain.all() or (plain.sum() >= 20 and (~plain).sum() <= few):
        whole = present[plain].str.fullmatch(WHOLE_NUMBER.pattern).all()
        if whole and len(set(pd.to_numeric(present[plain]))) <= 2 and plain.all():
            column.kind = "categorical"
            column.note(
                "values",
                "whole numbers with two values: read as a flag (categories); "
                "declare kind: numeric if it is a count",
            )
            return
        column.kind = "numeric"
        readable = ~column.blank & column.cells.str.fullmatch(PLAIN_NUMBER.pattern)
        column.numbers = pd.to_numeric(column.cells.where(readable), errors="coerce")
        if whole:
            column.entries["integer"] = True
        if not plain.all():
            bad = list(dict.fromkeys(present[~plain]))
            column.entries["invalid"] = "drop"
            column.note(
                "invalid",
                f"{int((~plain).sum())} row(s) hold a cell that is not a plain number "
                f"({_listing(bad)}): they are rejected and listed; correct them in the export "
                "to keep those customers",
            )
        return
    if present.str.fullmatch(NUMBERISH.pattern).mean() >= 0.95:
        examples = list(dict.fromkeys(present[~plain]))[:3]
        column.out = (
            f"numbers written in a way the reader refuses (e.g. {_listing(examples)}: "
            "thousands separators, decimal commas or exponents); re-export it with plain "
            "decimals, then declare it kind: numeric and add it to segment_on"
        )
        return
    found = date_format(present)
    if found is not None:
        column.kind, column.date_format = "date", found[0]
        if found[1]:
            column.note(
                "format",
                "day and month are ambiguous (no value has a day above 12): check which comes "
                "first",
            )
        return
    ordered = ordinal_levels(sorted(distinct)) if len(distinct) <= MAX_CATEGORIES else None
    if ordered is not None:
        column.kind, column.levels = "ordinal", ordered[0]
        column.note("levels", f"lowest first, as {ordered[1]}: check the order")
        return
    column.kind = "categorical"


# --- leaks and copies -----------------------------------------------------------------------------


def leak_score(column: Column, outcome: Column) -> float:
    """How well ``column`` alone predicts ``outcome``: balanced accuracy of a depth-2 tree
    (categories target-encoded within each fold) under 3-fold CV, or |Spearman rho| for a
    numeric outcome."""
    known = ~outcome.blank
    if column.kind == "numeric":
        feature = column.numbers[known]
    else:
        feature = column.cells.where(~column.blank, "")[known]
    target = outcome.cells[known]
    if outcome.kind == "numeric":
        if column.kind != "numeric":
            return 0.0
        paired = pd.DataFrame({"x": feature, "y": outcome.numbers[known]}).dropna()
        if len(paired) < 10 or paired["x"].nunique() < 2:
            return 0.0
        rho = paired["x"].corr(paired["y"], method="spearman")
        return 0.0 if pd.isna(rho) else abs(float(rho))
    if len(target) > LEAK_SAMPLE:
        chosen = np.sort(np.random.default_rng(0).choice(len(target), LEAK_SAMPLE, replace=False))
        feature, target = feature.iloc[chosen], target.iloc[chosen]
    counts = target.value_counts()
    if len(counts) < 2 or counts.min() < 3:
        return 0.0
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import TargetEncoder
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=2, random_state=0)
    if column.kind == "numeric":
        model, features = tree, feature.to_numpy(dtype=np.float64).reshape(-1, 1)
    else:
        model = make_pipeline(TargetEncoder(random_state=0), tree)
        features = feature.to_numpy(dtype=object).reshape(-1, 1)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(
            model, features, target.to_numpy(), cv=folds, scoring="balanced_accuracy"
        )
    return float(np.mean(scores))


def derived_sum(column: Column, sources: list[Column]) -> str:
    """``"a - b"`` when the column equals a+b or a-b of two other numeric columns on every row
    (within the rounding of the most precise of the three), or ""."""
    if column.numbers is None or column.numbers.isna().any():
        return ""
    sources = [source for source in sources if not source.numbers.isna().any()]
    target = column.numbers.to_numpy()
    decimals = {
        other.name: int(other.cells.str.partition(".")[2].str.len().max())
        for other in [column, *sources]
    }
    for i, first in enumerate(sources):
        for second in sources[i + 1 :]:
            places = max(decimals[column.name], decimals[first.name], decimals[second.name])
            tolerance = 1.01 * 10.0**-places
            a, b = first.numbers.to_numpy(), second.numbers.to_numpy()
            for formula, values in (
                (f"{first.name} + {second.name}", a + b),
                (f"{first.name} - {second.name}", a - b),
                (f"{second.name} - {first.name}", b - a),
            ):
                if np.all(np.abs(target - values) <= tolerance):
                    return formula
    return ""


def relabelling_of(column: Column, others: list[Column]) -> tuple[str, dict[str, str]] | None:
    """Another category column that this one renames value for value, with the renaming."""
    mine = column.cells
    for other in others:
        theirs = other.cells
        if mine.nunique() != theirs.nunique() or mine.nunique() < 2:
            continue
        pairs = pd.DataFrame({"a": theirs, "b": mine}).drop_duplicates()
        if len(pairs) == mine.nunique():
            return other.name, dict(zip(pairs["a"], pairs["b"]))
    return None


# --- the draft ------------------------------------------------------------------------------------


@dataclass
class Draft:
    """What was decided, before it is written out."""

    name: str
    source_path: str
    sha256: str
    sniffed: Sniffed
    rows: int
    blank_rows: pd.Index  # 0-based data rows, as the reader numbers them
    id: str | None
    id_why: str
    columns: dict[str, Column]  # declared and left out, in the order they are written
    outcomes: list[str]
    reference_date: str | None = None
    reference_note: list[str] = field(default_factory=list)
    top_notes: list[str] = field(default_factory=list)


def decide(raw: bytes, name: str, source_path: str, outcomes: list[str], label: str) -> Draft:
    """Read the export and decide every key of its data-set file."""
    sniffed = sniff(raw, label)
    frame, blank_rows = read_cells(sniffed, label)
    rows = len(frame)
    missing = [outcome for outcome in outcomes if outcome not in frame.columns]
    if missing:
        raise PipelineError(
            f"{label}: outcome column(s) {missing} are not in the header (found "
            f"{list(frame.columns)[:30]}); give --outcome one of those names"
        )
    outcomes = list(dict.fromkeys(outcomes))
    columns = profile(frame)
    id_name, id_why = choose_id(columns, outcomes)
    for outcome in outcomes:
        column = columns[outcome]
        if column.blank.all():
            raise PipelineError(f"{label}: outcome column {outcome!r} is blank on every row")
        column.outcome = True
        type_column(column, rows)
        if column.kind == "date":
            raise PipelineError(
                f"{label}: outcome column {outcome!r} holds dates; an outcome is a category or "
                "a number"
            )
        if column.out:  # numbers the reader refuses: its values are read as categories
            column.out, column.kind = "", "categorical"
    decided: list[Column] = []
    for column in columns.values():
        if column.name != id_name:
            _decide_column(column, decided, [columns[o] for o in outcomes], rows)
            decided.append(column)
    draft = Draft(
        name=name,
        source_path=source_path,
        sha256=hashlib.sha256(raw).hexdigest(),
        sniffed=sniffed,
        rows=rows,
        blank_rows=blank_rows,
        id=id_name,
        id_why=id_why,
        columns={},
        outcomes=outcomes,
    )
    _finish(draft, decided, label)
    return draft


def _decide_column(column: Column, earlier: list[Column], outcomes: list[Column], rows: int):
    if column.outcome:
        return
    present = column.present
    if present.empty:
        spelled = f" or {_listing(column.placeholders)}" if column.placeholders else ""
        column.out = f"blank{spelled} on every row: nothing to segment on"
        return
    if present.nunique() == 1 and not column.blank.any():
        column.out = (
            f"holds the single value {present.iloc[0]!r} on every row: it cannot separate segments"
        )
        return
    for outcome in outcomes:
        if similar_names(outcome.name, column.name):
            column.out = (
                f"its name resembles the outcome {outcome.name!r}: it likely leaks it (a "
                "score or copy of the outcome); segmenting on it would find the outcome"
            )
            return
    for other in [*earlier, *outcomes]:
        if other.cells.equals(column.cells):
            leak = " (the outcome: it leaks it)" if other.outcome else ""
            column.out = f"repeats {other.name!r} on every row{leak}"
            return
    type_column(column, rows)
    if column.out:
        return
    if column.kind == "categorical":
        distinct = present.nunique()
        if distinct > NEAR_UNIQUE * rows:
            column.out = (
                f"free text or codes ({distinct} distinct values in {rows} rows): no segment "
                "can share them"
            )
            return
        if distinct > MAX_CATEGORIES:
            column.out = (
                f"{distinct} distinct values, over the reader's max_categories "
                f"({MAX_CATEGORIES}); to use it, group its values with map: (or declare "
                f"values), or declare it and set max_categories: {distinct} at the top level"
            )
            return
    if column.kind != "date":
        for outcome in outcomes:
            if outcome.kind == "date":
                continue
            score = leak_score(column, outcome)
            if score >= LEAK_ACCURACY:
                measure = (
                    "|Spearman rho|"
                    if outcome.kind == "numeric"
                    else "balanced accuracy of a depth-2 tree, 3-fold CV"
                )
                column.out = (
                    f"predicts the outcome {outcome.name!r} almost perfectly on its own "
                    f"({measure} {score:.3f}): it leaks the outcome"
                )
                return
    if rows < MIN_ROWS_FOR_COPIES:
        return
    kept = [other for other in earlier if other.declared and not other.outcome]
    if column.kind == "numeric":
        formula = derived_sum(column, [other for other in kept if other.kind == "numeric"])
        if formula:
            column.out = f"equals {formula} on every row (within rounding): derived from them"
            return
    if column.kind in ("categorical", "ordinal"):
        found = relabelling_of(
            column, [other for other in kept if other.kind in ("categorical", "ordinal")]
        )
        if found is not None:
            pairs = ", ".join(f"{a} = {b}" for a, b in list(found[1].items())[:3])
            column.out = f"renames {found[0]!r} value for value ({pairs}): the same column twice"


KEY_ORDER = (
    "kind",
    "format",
    "derive",
    "integer",
    "range",
    "invalid",
    "label",
    "levels",
    "values",
    "placeholders",
    "missing",
    "bands",
    "phrases",
)


def _finish(draft: Draft, decided: list[Column], label: str) -> None:
    """Fill in each declared column's keys, derive numbers, and order the columns."""
    rows = draft.rows
    taken = {column.name for column in decided} | {draft.id}
    dates = [column for column in decided if column.declared and column.kind == "date"]
    latest = None
    for column in dates:
        parsed = pd.to_datetime(column.present, format=column.date_format)
        column.numbers = parsed  # the dates, for the derived months
        latest = parsed.max() if latest is None else max(latest, parsed.max())
    if latest is not None:
        draft.reference_date = f"{latest:%Y-%m-%d}"
        draft.reference_note = [
            "The day derived numbers are counted to: here the latest date in the table's date "
            f"columns ({', '.join(column.name for column in dates)}). Set it to the export's date. "
            "It is written in this file, never 'today', so that reruns give the same numbers. "
            "Besides months_since, derive: knows days_since and years_since (of a date column) "
            "and age_from_year (of a birth-year column)."
        ]
    ordered: list[Column] = []
    for column in decided:
        ordered.append(column)
        if not column.declared:
            continue
        _fill(column, rows, draft.name)
        if column.kind == "date":
            name = _free(f"{column.name}_months", taken)
            ordered.append(_months_since(column, name, pd.Timestamp(draft.reference_date)))
        elif _birth_year(column):
            if draft.reference_date is None:
                column.note(
                    "kind",
                    "looks like a birth year: to segment on ages instead, add a top-level "
                    'reference_date: "YYYY-MM-DD" (the export\'s date) and a column '
                    f"Age: {{kind: numeric, derive: {{age_from_year: {column.name}}}}}, and "
                    f"segment on Age instead of {column.name}",
                )
            else:
                name = _free("Age", taken)
                ordered.append(_age(column, name, pd.Timestamp(draft.reference_date)))
                # only the source of Age: not segmented on, not in the text
                column.entries.pop("bands", None)
                column.entries.pop("phrases", None)
    for column in ordered:
        draft.columns[column.name] = column
    used = segment_on(draft)
    if len(used) < 2:
        left = [column.name for column in ordered if column.out]
        raise PipelineError(
            f"{label}: only {len(used)} column(s) left to segment on ({used}) out of "
            f"{len(ordered)} (left out: {left[:10]}); a data set needs at least 2"
        )
    if len(draft.blank_rows):
        draft.top_notes.append(
            f"The export has {len(draft.blank_rows)} blank line(s) ({file_lines(draft.blank_rows)})"
            ": the reader refuses them; remove them from the file."
        )


def _free(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when the table already has a column of that name."""
    chosen, number = name, 1
    while chosen in taken:
        number += 1
        chosen = f"{name}_{number}"
    taken.add(chosen)
    return chosen


def _fill(column: Column, rows: int, name: str) -> None:
    entries = column.entries
    entries["kind"] = column.kind
    if column.kind == "date":
        entries["format"] = column.date_format
    entries["label"] = humanize(column.name)
    if column.placeholders:
        entries["placeholders"] = column.placeholders
    if column.blank.any():
        empty = int(column.cells.eq("").sum())
        said = [f"{empty} blank cell(s)"] if empty else []
        said += [f"{int(column.cells.eq(p).sum())} {p!r}" for p in column.placeholders]
        if column.kind in ("categorical", "ordinal"):
            entries["missing"] = "keep"
            column.note(
                "missing",
                f"{', '.join(said)}: kept as the category {MISSING_CATEGORY!r}; set drop to "
                "reject those rows instead",
            )
        else:
            entries["missing"] = "drop"
            column.note(
                "missing",
                f"{', '.join(said)}: those {_rows_with(column.blank)} are rejected and listed "
                f"in reports/{name}/rejected.csv",
            )
    if column.kind == "numeric":
        _fill_numeric(column, rows)
    elif column.kind in ("categorical", "ordinal"):
        _fill_categories(column, rows)
    column.entries = {key: entries[key] for key in KEY_ORDER if key in entries}


def _fill_numeric(column: Column, rows: int) -> None:
    numbers = column.numbers.dropna().to_numpy(dtype=np.float64)
    impossible = impossible_values(numbers, rows)
    whole = bool(column.entries.get("integer"))
    kept = numbers[~np.isin(numbers, impossible.values)]
    entries = column.entries
    if impossible.values:
        entries["range"] = list(kept_range(kept, impossible, whole))
        entries["invalid"] = "drop"
        hit = column.numbers.isin(impossible.values)
        column.note(
            "range",
            f"{_listing([_number(v) for v in impossible.values])} "
            f"{'looks' if len(impossible.values) == 1 else 'look'} impossible (far beyond "
            f"the other values, {_number(kept.min())}..{_number(kept.max())}): invalid: drop "
            f"rejects the {_rows_with(hit)} holding {'it' if hit.sum() == 1 else 'them'}; widen "
            f"the range to keep {'it' if hit.sum() == 1 else 'them'}",
        )
    else:
        entries["range"] = list(plausible_range(float(numbers.min()), float(numbers.max()), whole))
        column.note(
            "range",
            f"seen: {_number(numbers.min())}..{_number(numbers.max())}; widened so that every "
            "row passes",
        )
    column.numbers = column.numbers.where(~column.numbers.isin(impossible.values))
    if not column.outcome:
        entries["bands"] = bands(kept)
        lower = entries["label"].lower()
        entries["phrases"] = {"high": f"high {lower}", "low": f"low {lower}"}


def _fill_categories(column: Column, rows: int) -> None:
    counts = column.present.value_counts()
    key = "levels" if column.kind == "ordinal" else "values"
    listed = column.levels if column.kind == "ordinal" else sorted(counts.index)
    column.entries[key] = list(listed)
    if len(listed) == 1:
        column.note(key, "the only value; the other rows are blank")
    rare = [value for value in listed if counts[value] < RARE * rows]
    if rare and not column.outcome:
        column.note(
            key,
            f"rare (under 1% of rows): {', '.join(f'{v} ({counts[v]})' for v in rare)}; "
            f"map: them onto another value (map: {{{scalar(rare[0])}: ...}}), or remove them "
            f"from {key} and set invalid: drop",
        )


def _birth_year(column: Column) -> bool:
    if column.kind != "numeric" or not column.entries.get("integer") or column.outcome:
        return False
    name = normalized(column.name)
    if "birth" not in name and "year" not in name:
        return False
    kept = column.numbers.dropna()
    return bool(len(kept)) and kept.min() >= 1900 and kept.max() <= 2030


def _derived(source: Column, name: str, how: dict, label: str, numbers: np.ndarray) -> Column:
    column = Column(name, source.cells, source.blank, [], kind="numeric", derived_from=source.name)
    column.entries = {
        "kind": "numeric",
        "derive": how,
        "integer": True,
        "range": [0.0, plausible_range(float(numbers.min()), float(numbers.max()), True)[1]],
        "label": label,
        "bands": bands(numbers),
        "phrases": {"high": f"high {label.lower()}", "low": f"low {label.lower()}"},
    }
    return column


def _months_since(source: Column, name: str, reference: pd.Timestamp) -> Column:
    months = whole_months(source.numbers, reference).to_numpy(dtype=np.float64)
    label = f"Months since {humanize(source.name).lower()}"
    column = _derived(source, name, {"months_since": source.name}, label, months)
    column.note(
        "derive",
        f"whole months from {source.name} to reference_date: segmented on instead of the date",
    )
    return column


def _age(source: Column, name: str, reference: pd.Timestamp) -> Column:
    ages = (reference.year - source.numbers.dropna()).to_numpy(dtype=np.float64)
    column = _derived(source, name, {"age_from_year": source.name}, "Age", ages)
    column.note(
        "derive",
        f"{source.name} looks like a birth year (whole numbers, "
        f"{_number(source.numbers.min())}..{_number(source.numbers.max())}): the age at "
        "reference_date, segmented on instead of the year",
    )
    return column


def segment_on(draft: Draft) -> list[str]:
    sources = {column.derived_from for column in draft.columns.values() if column.derived_from}
    return [
        column.name
        for column in draft.columns.values()
        if column.declared
        and not column.outcome
        and column.kind != "date"
        and column.name not in sources
    ]


# --- writing it -----------------------------------------------------------------------------------


def _round_trips(text: str, value: str) -> bool:
    try:
        return yaml.safe_load(text) == value
    except yaml.YAMLError:
        return False


def scalar(value: object, quote: bool = False) -> str:
    """One value as YAML: numbers plain, strings plain unless YAML would misread them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _number(value)
    text = str(value)
    plain = (
        not quote
        and text == text.strip()
        and text != ""
        and _round_trips(f"k: {text}", {"k": text})
        and _round_trips(f"[{text}]", [text])
        and _round_trips(f"{{{text}: {text}}}", {text: text})
        and _round_trips(f"{text}: 1", {text: 1})
    )
    if plain:
        return text
    if '"' in text and "'" not in text and text.isprintable():
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False)


def _number(value: object) -> str:
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return np.format_float_positional(number, trim="-")


def flow(items: list, indent: int) -> str:
    """``[a, b, c]``, wrapped under the first item when it would pass the line width."""
    parts = [scalar(item) for item in items]
    lines, current = [], " " * indent + "["
    for index, part in enumerate(parts):
        piece = part + ("," if index < len(parts) - 1 else "]")
        if index and len(current) + 1 + len(piece) > WIDTH:
            lines.append(current)
            current = " " * (indent + 1) + piece
        else:
            current += (" " if index else "") + piece
    if not parts:
        current += "]"
    lines.append(current)
    return "\n".join(lines)[indent:]


def mapping(items: dict) -> str:
    return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in items.items()) + "}"


def comment_lines(text: str, indent: int) -> list[str]:
    prefix = " " * indent + "# "
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=prefix,
        subsequent_indent=prefix,
        break_on_hyphens=False,
        break_long_words=False,
    )


def entry(key: str, value: object, indent: int, comments: list[str] = ()) -> list[str]:
    """``key: value``, with its comments above it (or at its end when one short one fits)."""
    start = f"{' ' * indent}{scalar(key)}: "
    if isinstance(value, list):
        rendered = flow(value, len(start))
    elif isinstance(value, dict):
        rendered = mapping(value)
    else:
        rendered = scalar(value)
    line = start + rendered
    if len(comments) == 1 and "\n" not in line and len(line) + 3 + len(comments[0]) <= WIDTH:
        return [f"{line}  # {comments[0]}"]
    out = [wrapped for text in comments for wrapped in comment_lines(text, indent)]
    return out + [line]


def render(draft: Draft) -> str:
    sniffed = draft.sniffed
    lines = [
        *comment_lines(
            f"{humanize(draft.name)}: drafted by `python -m stages.draft` from "
            f"{draft.source_path} ({draft.rows} rows). Every '#' comment is a decision to check. "
            "The format of this file is described in datasets/README.md.",
            0,
        )
    ]
    lines += [wrapped for note in draft.top_notes for wrapped in comment_lines(note, 0)]
    lines += entry("title", humanize(draft.name), 0)
    lines += ["source:"]
    lines += entry("path", draft.source_path, 2)
    lines += entry("file", draft.source_path.replace("\\", "/").rsplit("/", 1)[-1], 2)
    lines += entry("sha256", draft.sha256, 2, ["of the export's bytes"])
    lines += ["format:"]
    lines += [f"  separator: {json.dumps(sniffed.separator)}"]
    lines += [f"  quote: {scalar(sniffed.quote, quote=True)}"]
    found = [
        text
        for flag, text in (
            (sniffed.bom, "a byte-order mark"),
            (sniffed.crlf, "CRLF (Windows) line ends"),
            (sniffed.lone_cr, "CR (old Mac) line ends"),
        )
        if flag
    ]
    encoding_note = (
        "detected: the file is not UTF-8; check the accents in the values"
        if sniffed.encoding not in ("utf-8", "utf-16")
        else ""
    )
    lines += entry("encoding", sniffed.encoding, 2, [encoding_note] if encoding_note else [])
    if found:
        lines += comment_lines(
            f"Found {' and '.join(found)}: the reader always accepts them, nothing to set.", 2
        )
    if draft.id is not None:
        lines += entry("id", draft.id, 0, [f"unique and non-blank on every row; {draft.id_why}"])
    else:
        lines += comment_lines(
            "No id column found (unique, non-blank and id-like): a customer is known by its "
            "0-based data-row number.",
            0,
        )
    if draft.reference_date is not None:
        lines += entry("reference_date", draft.reference_date, 0, draft.reference_note)
    lines += ["columns:"]
    left_out = []
    for column in draft.columns.values():
        if not column.declared:
            left_out.append(column)
            continue
        lines += [f"  {scalar(column.name)}:"]
        for key, value in column.entries.items():
            lines += entry(key, value, 4, column.comments.get(key, []))
        if column.outcome:
            lines += comment_lines("the outcome: described per segment, never segmented on", 4)
    if left_out:
        lines += [
            "# Left out: not declared, so the reader ignores them. To bring one back, declare it "
            "under",
            "# columns (kind, label, ...) and add it to segment_on.",
        ]
        for column in left_out:
            lines += comment_lines(f"{column.name}: {column.out}", 0)
    lines += entry("segment_on", segment_on(draft), 0)
    if draft.outcomes:
        lines += ["describe:"]
        for outcome in draft.outcomes:
            column = draft.columns[outcome]
            if column.kind == "numeric":
                lines += entry(outcome, "mean", 2, ["the outcome's mean per segment"])
            else:
                counts = column.present.value_counts()
                least = sorted(counts.index, key=lambda value: (counts[value], value))[0]
                start = f"  {scalar(outcome)}: {scalar(least, quote=True)}"
                note = f"the rate of its least frequent value ({counts[least]} of {draft.rows})"
                lines += (
                    [f"{start}  # {note}"]
                    if len(start) + 4 + len(note) <= WIDTH
                    else comment_lines(note, 2) + [start]
                )
    else:
        lines += comment_lines(
            "No outcome given (--outcome COLUMN): add describe: {COLUMN: VALUE} to show a rate "
            "per segment.",
            0,
        )
    lines += comment_lines(
        "No template: each customer's text is one 'Label: value' line per column, in the "
        "declared order.",
        0,
    )
    if any(draft.columns[name].kind == "numeric" for name in segment_on(draft)):
        lines += comment_lines(
            "Numbers are written as band words ('Age: high'): a sentence model reads digits as "
            "tokens, not quantities, and on the tables measured in docs/comparison.md the "
            "segments follow the numbers more this way. 'value' writes the cells as read; "
            "'both' writes '42 (high)'.",
            0,
        )
        lines += ["numbers: band"]
    return "\n".join(lines) + "\n"


def draft(raw: bytes, name: str, source_path: str, outcomes: list[str], label: str = "") -> str:
    """The text of a data-set file for the export ``raw`` (its bytes)."""
    return render(decide(raw, name, source_path, outcomes, label or source_path))


# --- small helpers --------------------------------------------------------------------------------


def _listing(values: list, shown: int = 5) -> str:
    more = f" and {len(values) - shown} more" if len(values) > shown else ""
    return ", ".join(str(value) for value in values[:shown]) + more


def _rows_with(mask: pd.Series) -> str:
    count = int(mask.sum())
    return f"{count} row{'s' if count != 1 else ''}"
