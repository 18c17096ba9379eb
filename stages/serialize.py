"""Stage 2: turn each customer into a short text, one field per line (the article's template)."""
from __future__ import annotations

import pandas as pd

from stages.artifacts import CUSTOMER_ID, run, write_csv
from stages.config import RAW_CSV, TEXTS, load_params, read_customers


def serialize(customers: pd.DataFrame, template: str) -> pd.DataFrame:
    """One row per customer: its id and the template filled with its raw values."""
    texts = [template.format(**row) for row in customers.to_dict(orient="records")]
    return pd.DataFrame({CUSTOMER_ID: customers.index.to_numpy(), "text": texts})


def main() -> None:
    params = load_params()
    write_csv(TEXTS, serialize(read_customers(RAW_CSV), params.serialize.template))


if __name__ == "__main__":
    run(main)
