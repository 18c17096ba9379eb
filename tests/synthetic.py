"""Synthetic customers in the exact UCI ``bank-full.csv`` format (the real file may not be committed)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd

HEADER = ("age", "job", "marital", "education", "default", "balance", "housing", "loan", "contact",
          "day", "month", "duration", "campaign", "pdays", "previous", "poutcome", "y")
NUMERIC = {"age", "balance", "day", "duration", "campaign", "pdays", "previous"}
CHOICES = {
    "job": ["admin.", "blue-collar", "entrepreneur", "housemaid", "management", "retired",
            "self-employed", "services", "student", "technician", "unemployed", "unknown"],
    "marital": ["married", "single", "divorced"],
    "education": ["primary", "secondary", "tertiary", "unknown"],
    "default": ["no", "yes"],
    "housing": ["yes", "no"],
    "loan": ["no", "yes"],
    "contact": ["cellular", "telephone", "unknown"],
    "month": ["jan", "feb", "mar", "may", "jun", "jul", "aug", "nov"],
    "poutcome": ["unknown", "failure", "success", "other"],
    "y": ["no", "yes"],
}


def customers(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` customers with two loose groups (young singles, older married managers) plus noise."""
    rng = np.random.default_rng(seed)
    older = rng.random(n) < 0.5
    frame = pd.DataFrame({column: rng.choice(values, size=n) for column, values in CHOICES.items()})
    frame["age"] = np.where(older, rng.integers(45, 70, n), rng.integers(18, 35, n))
    frame["balance"] = np.where(older, rng.integers(500, 20000, n), rng.integers(-500, 1500, n))
    frame.loc[older, "marital"] = "married"
    frame.loc[older & (rng.random(n) < 0.7), "job"] = "management"
    frame.loc[~older, "marital"] = "single"
    frame["day"] = rng.integers(1, 29, n)
    frame["duration"] = rng.integers(0, 1000, n)
    frame["campaign"] = rng.integers(1, 10, n)
    frame["pdays"] = -1
    frame["previous"] = 0
    return frame.loc[:, list(HEADER)]


def to_uci_csv(frame: pd.DataFrame) -> bytes:
    """Serialize like UCI: ``;``-separated, quoted header and strings, bare numbers, LF endings."""
    lines = [";".join(f'"{name}"' for name in frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append(";".join(str(v) if c in NUMERIC else f'"{v}"' for c, v in zip(frame.columns, row)))
    return ("\n".join(lines) + "\n").encode("utf-8")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive in memory, for archives shaped like UCI's ``bank+marketing.zip``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
