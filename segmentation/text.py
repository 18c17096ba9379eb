"""How each customer is written as a text, numbers included.

A sentence model reads ``2143`` as a string of tokens, not as a quantity, so a data set chooses how
its numbers are written (``numbers`` in its data-set file, overridden by the ``text.numbers``
param):

- ``value``: the cell as read, the article's way (``Income: 58138``);
- ``band``: the band the number falls in, as a word (``Income: high``);
- ``both``: the number with its unit, then the band (``Income: 58,138 USD (high)``).

Band edges are the column's declared ``bands``, or else the quintiles of the customers the text is
fitted on. They are fitted once (:func:`fit_writing`) and saved with the text, so customers placed
later by ``assign`` are written exactly as the training ones were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.data.dataset import Column, Dataset, NumberWriting, fill

# Words for the bands of a column, lowest first, by how many bands it has.
BAND_WORDS = {
    1: ["typical"],
    2: ["low", "high"],
    3: ["low", "medium", "high"],
    4: ["low", "medium-low", "medium-high", "high"],
    5: ["very low", "low", "medium", "high", "very high"],
    6: ["very low", "low", "medium-low", "medium-high", "high", "very high"],
    7: ["very low", "low", "medium-low", "medium", "medium-high", "high", "very high"],
}
# Bands fitted from the data: quintiles, the finest scale the words above name evenly.
FITTED_QUANTILES = (0.2, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class TextWriting:
    """How one data set's customers were written: saved beside the texts, reused by ``assign``."""

    numbers: NumberWriting
    edges: dict[str, list[float]]  # numeric text column -> band edges, lowest first
    words: dict[str, list[str]]  # numeric text column -> one word per band

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict, source: str) -> TextWriting:
        try:
            return cls(**payload)
        except TypeError as exc:
            raise PipelineError(
                f"{source}: not a text-writing file ({exc}); rerun 'dvc repro'"
            ) from None


def numbers_written(dataset: Dataset, param: str) -> NumberWriting:
    """How the data set's numbers are written: its own choice, unless the param names one."""
    return dataset.numbers if param == "dataset" else param


def band_words(column: Column, bands: int) -> list[str]:
    """One word per band; the lowest and highest take the column's ``low`` and ``high`` phrases
    (a column with one value has one band, neither low nor high)."""
    words = list(BAND_WORDS[bands])
    if bands > 1:
        words[0] = column.phrases.get("low", words[0])
        words[-1] = column.phrases.get("high", words[-1])
    return words


def band_edges(values: pd.Series, column: Column) -> list[float]:
    """The column's declared band edges, or the quintiles of the values, without repeats, rounded
    to a power of ten between a hundredth and a tenth of the values' range (1,000 for incomes of
    10,000 to 100,000), or to whole numbers for a whole-number column (1952 for birth years)."""
    if column.bands is not None:
        return list(column.bands)
    numbers = values.to_numpy(dtype=float)
    spread = numbers.max() - numbers.min()
    if spread == 0:
        return []
    decimals = 1 - int(np.floor(np.log10(spread)))
    if column.integer:
        decimals = min(decimals, 0)
    quantiles = np.quantile(numbers, FITTED_QUANTILES)
    return sorted({float(round(float(edge), decimals)) for edge in quantiles})


def fit_writing(customers: pd.DataFrame, dataset: Dataset, numbers: NumberWriting) -> TextWriting:
    """The band edges and words of every numeric column the text carries, from the data-set file
    or, where it declares no bands, from these customers."""
    edges, words = {}, {}
    for column in dataset.of_kind(dataset.text_columns, "numeric"):
        spec = dataset.columns[column]
        edges[column] = band_edges(customers[column], spec)
        words[column] = band_words(spec, len(edges[column]) + 1)
    return TextWriting(numbers=numbers, edges=edges, words=words)


def written_number(value: float, column: Column, calendar_year: bool) -> str:
    """The number as a reader writes it: ``1957`` for a year, ``58,138 USD``, ``0.25``."""
    if calendar_year:
        return str(int(value))
    whole = column.integer or float(value).is_integer()
    number = f"{value:,.0f}" if whole else format(float(value), ",")
    return f"{number} {column.unit}".strip()


def _number_cells(
    values: pd.Series,
    column: Column,
    edges: list[float],
    words: list[str],
    how: NumberWriting,
    calendar_year: bool,
) -> list[object]:
    bands = np.searchsorted(np.asarray(edges, dtype=float), values.to_numpy(dtype=float), "right")
    band = [words[index] for index in bands]
    if how == "band":
        return band
    return [
        f"{written_number(value, column, calendar_year)} ({word})"
        for value, word in zip(values, band)
    ]


def write_texts(customers: pd.DataFrame, dataset: Dataset, writing: TextWriting) -> pd.DataFrame:
    """One row per customer: its id and its text, numbers written as ``writing`` says."""
    cells = customers.loc[:, dataset.text_columns].copy().astype(object)
    if writing.numbers != "value":
        years = {
            derivation.source
            for derivation in dataset.derived.values()
            if derivation.measure == "age_from_year"
        }
        for column, edges in writing.edges.items():
            cells[column] = _number_cells(
                customers[column],
                dataset.columns[column],
                edges,
                writing.words[column],
                writing.numbers,
                column in years,
            )
    template = dataset.text_template
    texts = [fill(template, row) for row in cells.to_dict(orient="records")]
    return pd.DataFrame({CUSTOMER_ID: customers.index.to_numpy(), "text": texts})
