"""How customers moved between a reference segmentation and a new one, in stable numbers.

Customers are matched by id. One that only the new segmentation has is ``new`` (a new customer,
or one that was an outlier before); one that only the reference has ``left`` (gone from the
table, or an outlier now).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NEW, LEFT = "new", "left"
# A share of zero has no logarithm; the usual floor for the population stability index.
PSI_FLOOR = 1e-4
# Siddiqi (2006), Credit Risk Scorecards: below 0.1 no real shift, 0.1 to 0.25 a moderate one,
# above 0.25 a major one.
PSI_BANDS = ((0.25, "major shift"), (0.1, "moderate shift"), (0.0, "no real shift"))


def segment_order(value: int | str) -> tuple[bool, int | str]:
    """Segments in number order, then ``new`` or ``left``."""
    return (isinstance(value, str), value)


def customer_moves(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    """Each customer's segment ``from`` (``new`` for none) and ``to`` (``left`` for none): the
    current segmentation's customers in their order, then those that left."""
    order = current.index.append(reference.index.difference(current.index, sort=False))
    moves = pd.DataFrame(
        {
            "from": reference.astype(object).reindex(order).fillna(NEW),
            "to": current.astype(object).reindex(order).fillna(LEFT),
        },
        index=order,
    )
    return moves


def migration_of(moved: pd.DataFrame) -> pd.DataFrame:
    """Customers from each reference segment (``new`` for none) to each current segment (``left``
    for none), from ``moved``'s rows ``from``, ``to`` and ``customers`` (each pair once): ordered,
    with each row's ``share`` of its ``from`` segment."""
    table = moved.assign(customers=moved["customers"].astype(np.int64)).sort_values(
        ["from", "to"], key=lambda column: column.map(segment_order), ignore_index=True
    )
    table["share"] = table["customers"] / table.groupby("from")["customers"].transform("sum")
    return table


def population_stability(then: pd.Series, now: pd.Series) -> pd.Series:
    """Each segment's term of the population stability index of the segment shares, from the
    customers per segment then and now: (p_now - p_then) ln(p_now / p_then), with shares floored at
    PSI_FLOOR; their sum is the PSI."""
    then, now = then / then.sum(), now / now.sum()
    segments = then.index.union(now.index).sort_values()
    then = then.reindex(segments, fill_value=0.0).clip(lower=PSI_FLOOR)
    now = now.reindex(segments, fill_value=0.0).clip(lower=PSI_FLOOR)
    return ((now - then) * np.log(now / then)).rename("psi")


def psi_reading(value: float) -> str:
    return next(word for floor, word in PSI_BANDS if value >= floor)


def segment_changes(
    then: pd.Series,
    now: pd.Series,
    outcome_then: pd.Series | None = None,
    outcome_now: pd.Series | None = None,
) -> pd.DataFrame:
    """Per stable segment: customers then and now (``then``, ``now``: counts per segment), the
    outcome's rate (or mean) then and now when given (per segment), and the segment's PSI term."""
    frame = pd.DataFrame({"customers_then": then, "customers_now": now}).fillna(0)
    frame = frame.astype(int)
    if outcome_then is not None and outcome_now is not None:
        frame["outcome_then"] = outcome_then
        frame["outcome_now"] = outcome_now
    frame["psi"] = population_stability(then, now)
    frame.index.name = "segment"
    return frame.sort_index()
