"""The counts and sums a segment profile is read from, tallied shard by shard and added up.

Each shard of customers tallies, per segment: its size, the sums of its numbers (shifted by a
centre, so their spread is exact to the last digits), how often each value and each band of a
number occurs, and its outcomes; and, over every customer the serialize stage kept (outliers
included), the outcomes and the count. The tallies of the shards add up (here or on Ray), so the
profile never holds the customer table; only the bands' edges are fitted, on the seeded sample of
inliers that the other fits use (every inlier below ``sample_fit_rows``). The explain stage reads
each number's η² from the same tallies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segmentation.artifacts import CUSTOMER_ID, PipelineError
from segmentation.cluster import CsvColumns, map_shards
from segmentation.config import Layout
from segmentation.data.dataset import Dataset, typed
from segmentation.data.outcomes import outcome_key, outcome_values
from segmentation.embedding.shards import read_vectors
from segmentation.model.sampling import MatrixRows, checked_inliers, inliers_per_shard
from segmentation.text import band_edges

KEYS = ["part", "segment", "column", "value"]
AMOUNTS = ["count", "sum", "squares"]


def profile_columns(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The numeric and the categorical columns a profile shows: those segmented on, then those the
    text also carries."""
    shown = dataset.segment_on + dataset.context_columns
    return dataset.of_kind(shown, "numeric"), dataset.of_kind(shown, "categorical", "ordinal")


def band_labels(edges: list[float], integer: bool) -> list[str]:
    """'under 30', '30-39', ..., '60 and over' (whole numbers; a one-number band is that number),
    or 'under 35', '35 to 70', ...; a column of one value has one band, 'all'."""
    if not edges:
        return ["all"]

    def shown(value: float) -> str:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"

    def between(low: float, high: float) -> str:
        if not (integer and float(high).is_integer() and float(low).is_integer()):
            return f"{shown(low)} to {shown(high)}"
        return shown(low) if high - 1 == low else f"{shown(low)}-{shown(high - 1)}"

    inner = [between(low, high) for low, high in zip(edges, edges[1:])]
    return [f"under {shown(edges[0])}", *inner, f"{shown(edges[-1])} and over"]


def lower_median(values: pd.Series) -> float:
    return float(np.quantile(values.to_numpy(dtype=float), 0.5, method="lower"))


@dataclass(frozen=True)
class ProfileBands:
    """Per numeric profile column: its band edges and labels, and the centre its sums are taken
    around (a value of the sample, its lower median: a column of one value sums to exact zeros)."""

    edges: dict[str, list[float]]
    labels: dict[str, list[str]]
    centres: dict[str, float]

    @classmethod
    def fit(cls, sample: pd.DataFrame, dataset: Dataset) -> ProfileBands:
        numeric, _ = profile_columns(dataset)
        edges = {column: band_edges(sample[column], dataset.columns[column]) for column in numeric}
        return cls(
            edges,
            {c: band_labels(edges[c], dataset.columns[c].integer) for c in numeric},
            {
                column: float(
                    np.quantile(sample[column].to_numpy(dtype=float), 0.5, method="lower")
                )
                for column in numeric
            },
        )

    def band(self, column: str, values: pd.Series) -> np.ndarray:
        """Each value's band label (a band holds its lower edge)."""
        found = np.searchsorted(self.edges[column], values.to_numpy(dtype=float), side="right")
        return np.asarray(self.labels[column], dtype=object)[found]


def tally(
    customers: pd.DataFrame,
    inliers: np.ndarray,
    segments: np.ndarray,
    dataset: Dataset,
    bands: ProfileBands,
) -> pd.DataFrame:
    """One shard's tallies: ``customers`` (typed, every one kept), which of them are inliers, and
    the inliers' segments. Rows: part, segment, column, value, count, sum, squares."""
    numeric, categorical = profile_columns(dataset)
    kept = customers[inliers]
    groups = pd.Series(segments, index=kept.index, name="segment")
    sizes = groups.value_counts()
    parts = [sizes.reset_index().assign(part="size", column="", value="")]
    for column in numeric:
        shifted = kept[column].astype(float) - bands.centres[column]
        sums = pd.DataFrame({"sum": shifted, "squares": shifted**2}).groupby(groups).agg("sum")
        parts.append(
            sums.assign(count=sizes, part="numbers", column=column, value="")
            .rename_axis("segment")
            .reset_index()
        )
    for column in numeric + categorical:
        values = bands.band(column, kept[column]) if column in numeric else kept[column].to_numpy()
        counts = pd.DataFrame({"segment": segments, "value": values}).value_counts()
        parts.append(counts.rename("count").reset_index().assign(part="values", column=column))
    for column in dataset.describe:
        key = outcome_key(dataset, column)
        outcomes = outcome_values(customers, dataset, column)
        sums = outcomes[inliers].groupby(groups).sum().rename("sum").rename_axis("segment")
        parts.append(sums.reset_index().assign(part="outcomes", column=key, value=""))
        parts.append(
            pd.DataFrame(
                {"part": ["everyone"], "segment": [0], "column": [key], "value": [""]}
            ).assign(count=len(customers), sum=float(outcomes.sum()))
        )
    parts.append(
        pd.DataFrame({"part": ["everyone"], "segment": [0], "column": [""], "value": [""]}).assign(
            count=len(customers)
        )
    )
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.reindex(columns=KEYS + AMOUNTS)
    frame[AMOUNTS] = frame[AMOUNTS].fillna(0.0).astype(float)
    frame["segment"] = frame["segment"].astype(np.int64)
    frame["value"] = frame["value"].astype(str)
    return frame


@dataclass(frozen=True)
class SegmentTallies:
    """The shards' tallies added up, indexed by part, segment, column and value, and the centres
    the numbers' sums were taken around."""

    totals: pd.DataFrame
    centres: dict[str, float]

    @classmethod
    def added(cls, parts: Iterable[pd.DataFrame], centres: dict[str, float]) -> SegmentTallies:
        totals = pd.concat(list(parts), ignore_index=True).groupby(KEYS, sort=True)[AMOUNTS].sum()
        return cls(totals, centres)

    @classmethod
    def of(cls, customers: pd.DataFrame, segments, dataset: Dataset) -> SegmentTallies:
        """The tallies of customers held in memory (typed, by id), every one in ``segments``;
        the bands fitted on all of them."""
        bands = ProfileBands.fit(customers, dataset)
        everyone = np.ones(len(customers), dtype=bool)
        part = tally(customers, everyone, np.asarray(segments, dtype=np.int64), dataset, bands)
        return cls.added([part], bands.centres)

    def _part(self, part: str, column: str) -> pd.DataFrame:
        return self.totals.xs((part, column), level=("part", "column"))

    @property
    def sizes(self) -> pd.Series:
        """Customers per segment, by segment."""
        sizes = self._part("size", "")["count"].droplevel("value").astype(np.int64)
        return sizes.rename("customers")

    @property
    def segments(self) -> list[int]:
        return [int(segment) for segment in self.sizes.index]

    @property
    def inliers(self) -> int:
        return int(self.sizes.sum())

    @property
    def kept(self) -> int:
        """Every customer the serialize stage kept, outliers included."""
        return int(self._part("everyone", "")["count"].sum())

    def means(self, column: str) -> pd.Series:
        """The number's mean per segment."""
        found = self._part("numbers", column).droplevel("value")
        return self.centres[column] + found["sum"] / found["count"]

    def overall(self, column: str) -> tuple[float, float]:
        """The number's mean and standard deviation (ddof 0) over the inliers."""
        found = self._part("numbers", column)
        count, shifted = found["count"].sum(), found["sum"].sum() / found["count"].sum()
        variance = max(found["squares"].sum() / count - shifted**2, 0.0)
        return self.centres[column] + shifted, float(np.sqrt(variance))

    def counts(self, column: str) -> pd.DataFrame:
        """How often each value (each band of a number) occurs per segment: segments as rows,
        values as columns, commonest overall first (ties by value)."""
        counts = self._part("values", column)["count"].unstack("value", fill_value=0.0)
        overall = counts.sum()
        order = sorted(overall.index, key=lambda value: (-overall[value], value))
        return counts.reindex(index=self.segments, columns=order, fill_value=0.0)

    def eta_squared(self, column: str) -> float:
        """The share of the number's variance between the segments' means (0: none, 1: all)."""
        found = self._part("numbers", column)
        count, sums = found["count"].to_numpy(), found["sum"].to_numpy()
        mean = sums.sum() / count.sum()
        total = found["squares"].sum() - count.sum() * mean**2
        if total <= 0:
            return 0.0
        return float(min((count * (sums / count - mean) ** 2).sum() / total, 1.0))

    def outcome_means(self, key: str) -> pd.Series:
        """The described outcome's mean (its rate) per segment."""
        sums = self._part("outcomes", key)["sum"].droplevel("value")
        return sums.reindex(self.segments, fill_value=0.0) / self.sizes

    def outcome_overall(self, key: str) -> float:
        """The described outcome's mean over every customer kept, outliers included."""
        found = self._part("everyone", key)
        return float(found["sum"].sum() / found["count"].sum())


def profile_shard(
    rows: MatrixRows,
    shard,
    dataset: Dataset,
    bands: ProfileBands,
    numbers: dict[int, int] | None,
    paths: Layout,
    *,
    customers: pd.DataFrame,
    flags: pd.DataFrame,
    labels: pd.DataFrame,
) -> pd.DataFrame:
    """A shard's tallies, its segments in their stable ``numbers`` (as fitted without them), from
    its rows of the customer table, of the outlier flags and of the inliers' labels (the vectors
    are not read)."""
    inliers = checked_inliers(paths, customers, flags, labels)
    segments = labels["segment"] if numbers is None else labels["segment"].map(numbers)
    if segments.isna().any():
        unknown = sorted(set(labels.loc[segments.isna(), "segment"]))
        raise PipelineError(
            f"{paths.lineage} numbers no segment {unknown} of {paths.labels}; rerun 'dvc repro' "
            "so it follows the labels"
        )
    table = typed(customers.set_index(CUSTOMER_ID).loc[:, dataset.used_columns], dataset)
    return tally(table, inliers, segments.to_numpy(dtype=np.int64), dataset, bands)


def profile_tallies(
    paths: Layout,
    dataset: Dataset,
    numbers: dict[int, int] | None,
    sample: pd.DataFrame,
    engine: str,
) -> SegmentTallies:
    """The profile's tallies of a data set, in the segments' stable ``numbers`` (as fitted without
    them): the bands fitted on ``sample``, the customers of the seeded inlier sample
    (``sample_inlier_rows``), then every shard tallied, here or on Ray (``engine``)."""
    bands = ProfileBands.fit(sample, dataset)
    matrix = read_vectors(paths.embeddings)
    aligned = {
        "customers": CsvColumns(
            paths.customers, [CUSTOMER_ID, *dataset.used_columns], as_text=True
        ),
        "flags": CsvColumns(paths.outliers, [CUSTOMER_ID, "outlier"]),
        "labels": CsvColumns(
            paths.labels, [CUSTOMER_ID, "segment"], inliers_per_shard(paths, matrix)
        ),
    }
    parts = map_shards(
        profile_shard, paths.embeddings, engine, dataset, bands, numbers, paths, aligned=aligned
    )
    return SegmentTallies.added(parts, bands.centres)
