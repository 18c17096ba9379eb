"""The migration as an alluvial chart: reference segments on the left, new ones on the right, and
a band for every flow of customers, as wide as the customers it carries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentation.artifacts import subplots
from segmentation.lineage.migration import LEFT, NEW, segment_order

GAP = 0.02  # between two stacked segments, as a share of all customers
BAR = 0.08  # width of a column of segments


def _stack(sizes: pd.Series, total: int) -> dict:
    """Each segment's (bottom, height) in a column, first on top, with a gap between them."""
    placed, top = {}, 1.0 + GAP * (len(sizes) - 1)
    for segment, size in sizes.items():
        height = size / total
        placed[segment] = [top - height, height]
        top -= height + GAP
    return placed


def _band(axis, left: tuple[float, float], right: tuple[float, float], colour) -> None:
    """A band from the left column's span to the right one's, with smooth (cosine) edges."""
    x = np.linspace(BAR, 1 - BAR, 50)
    ease = (1 - np.cos(np.pi * (x - BAR) / (1 - 2 * BAR))) / 2
    lower = left[0] + (right[0] - left[0]) * ease
    upper = left[1] + (right[1] - left[1]) * ease
    axis.fill_between(x, lower, upper, color=colour, alpha=0.45, linewidth=0)


def alluvial_figure(migration: pd.DataFrame, title: str):
    """``migration``: the rows of ``migration_of`` (from, to, customers)."""
    total = int(migration["customers"].sum())
    order = sorted(set(migration["from"]) | set(migration["to"]), key=segment_order)
    colours = {
        segment: ("lightgrey" if segment in (NEW, LEFT) else f"C{i % 10}")
        for i, segment in enumerate(order)
    }
    then = migration.groupby("from", sort=False)["customers"].sum()
    now = migration.groupby("to", sort=False)["customers"].sum()
    then = then.loc[[s for s in order if s in then.index]]
    now = now.loc[[s for s in order if s in now.index]]
    left, right = _stack(then, total), _stack(now, total)
    figure, axis = subplots(figsize=(7, 5))
    for column, (x, placed) in enumerate(((0.0, left), (1 - BAR, right))):
        for segment, (bottom, height) in placed.items():
            axis.bar(x, height, BAR, bottom, align="edge", color=colours[segment])
            label = segment if isinstance(segment, str) else f"segment {segment}"
            axis.text(
                x - 0.01 if column == 0 else x + BAR + 0.01,
                bottom + height / 2,
                label,
                ha="right" if column == 0 else "left",
                va="center",
                fontsize="small",
            )
    # each segment fills from its top down, one flow after another
    filled_left = {segment: bottom + height for segment, (bottom, height) in left.items()}
    filled_right = {segment: bottom + height for segment, (bottom, height) in right.items()}
    for source, target, customers in zip(
        migration["from"], migration["to"], migration["customers"]
    ):
        height = customers / total
        span_left = (filled_left[source] - height, filled_left[source])
        span_right = (filled_right[target] - height, filled_right[target])
        filled_left[source] -= height
        filled_right[target] -= height
        _band(axis, span_left, span_right, colours[source])
    axis.set_xlim(-0.25, 1.25)
    axis.set_axis_off()
    axis.set_title(title)
    return figure
