"""The outcomes a data-set file describes per segment (``describe``): each customer's as a number,
its column in the profile table and its title."""

from __future__ import annotations

import pandas as pd

from segmentation.artifacts import metric_key
from segmentation.data.dataset import Dataset


def outcome_key(dataset: Dataset, column: str) -> str:
    """The profile column of a described outcome: the rate of its value, or the mean of a number."""
    value = dataset.describe[column]
    return (
        metric_key(column, "mean")
        if dataset.columns[column].kind == "numeric"
        else metric_key(column, value, "rate")
    )


def outcome_values(customers: pd.DataFrame, dataset: Dataset, column: str) -> pd.Series:
    """Per customer, the described outcome as a number:
    1/0 for the described value, or the number."""
    if dataset.columns[column].kind == "numeric":
        return customers[column].astype(float)
    return customers[column].eq(dataset.describe[column]).astype(float)


def outcome_title(dataset: Dataset, column: str) -> str:
    """'Subscribed a term deposit' (the described value's phrase), 'Churned: Yes', or
    'Revenue: mean'."""
    value = dataset.describe[column]
    phrase = dataset.columns[column].phrases.get(value)
    return phrase or f"{dataset.label(column)}: {value}"
