"""Synthetic customers in the exact UCI ``bank-full.csv`` format (the real file may not be
committed), telco-shaped ones, and embedding stand-ins for scale tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.embedding.shards import Shard, shard_file, write_index
from segmentation.text import fit_writing, write_texts

HEADER = (
    "age",
    "job",
    "marital",
    "education",
    "default",
    "balance",
    "housing",
    "loan",
    "contact",
    "day",
    "month",
    "duration",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
    "y",
)
NUMERIC = {"age", "balance", "day", "duration", "campaign", "pdays", "previous"}
CHOICES = {
    "job": [
        "admin.",
        "blue-collar",
        "entrepreneur",
        "housemaid",
        "management",
        "retired",
        "self-employed",
        "services",
        "student",
        "technician",
        "unemployed",
        "unknown",
    ],
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


def write_customer_stand_ins(path: Path, rows: int, block_rows: int = 65536) -> None:
    """A customer table of ``rows`` ``customers`` under the ids of ``write_embedding_stand_ins``
    (``C00000000``, ...), written a seeded block at a time, so millions of rows can be written."""
    with path.open("w") as table:
        for number, start in enumerate(range(0, rows, block_rows)):
            block = customers(min(block_rows, rows - start), seed=number)
            block.insert(0, "customer_id", [f"C{i:08d}" for i in range(start, start + len(block))])
            block.to_csv(table, header=number == 0, index=False, lineterminator="\n")


def texts(n: int, seed: int, dataset) -> pd.DataFrame:
    """``customers(n, seed)`` written as the data set's texts (customer id and text), numbers as
    read, as the serialize stage writes the bank's."""
    frame = customers(n, seed=seed)
    return write_texts(frame, dataset, fit_writing(frame, dataset, "value"))


def to_uci_csv(frame: pd.DataFrame) -> bytes:
    """Serialize like UCI: ``;``-separated, quoted header and strings, bare numbers, LF endings."""
    lines = [";".join(f'"{name}"' for name in frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append(
            ";".join(str(v) if c in NUMERIC else f'"{v}"' for c, v in zip(frame.columns, row))
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive in memory, for archives shaped like UCI's ``bank+marketing.zip``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


TELCO_HEADER = (
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
)
INTERNET_EXTRAS = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)


def telco_customers(n: int, seed: int = 0, blank_total_charges: int = 3) -> pd.DataFrame:
    """``n`` customers shaped like IBM's Telco Customer Churn table: new month-to-month fiber
    customers who churn often, long-standing contract customers who rarely do, and
    ``blank_total_charges`` customers in their first month whose TotalCharges is blank, as in the
    real file."""
    rng = np.random.default_rng(seed)
    loyal = rng.random(n) < 0.5
    tenure = np.where(loyal, rng.integers(24, 73, n), rng.integers(1, 24, n))
    tenure[:blank_total_charges] = 0
    internet = np.where(
        loyal, rng.choice(["DSL", "No", "Fiber optic"], n, p=[0.5, 0.3, 0.2]), "Fiber optic"
    )
    monthly = np.round(
        np.where(internet == "No", rng.uniform(18, 26, n), rng.uniform(45, 115, n)), 2
    )
    frame = pd.DataFrame(
        {
            "customerID": [
                f"{i:04d}-{''.join(rng.choice(list('ABCDEFGHJK'), 5))}" for i in range(n)
            ],
            "gender": rng.choice(["Female", "Male"], n),
            "SeniorCitizen": rng.choice(["0", "1"], n, p=[0.84, 0.16]),
            "Partner": rng.choice(["No", "Yes"], n),
            "Dependents": rng.choice(["No", "Yes"], n, p=[0.7, 0.3]),
            "tenure": tenure,
            "PhoneService": rng.choice(["No", "Yes"], n, p=[0.1, 0.9]),
            "InternetService": internet,
            "Contract": np.where(loyal, rng.choice(["One year", "Two year"], n), "Month-to-month"),
            "PaperlessBilling": rng.choice(["No", "Yes"], n),
            "PaymentMethod": np.where(
                loyal,
                rng.choice(
                    ["Bank transfer (automatic)", "Credit card (automatic)", "Mailed check"], n
                ),
                "Electronic check",
            ),
            "MonthlyCharges": monthly,
            "Churn": np.where(rng.random(n) < np.where(loyal, 0.05, 0.5), "Yes", "No"),
        }
    )
    frame["MultipleLines"] = np.where(
        frame["PhoneService"] == "No", "No phone service", rng.choice(["No", "Yes"], n)
    )
    for column in INTERNET_EXTRAS:
        frame[column] = np.where(
            internet == "No", "No internet service", rng.choice(["No", "Yes"], n)
        )
    totals = np.round(monthly * tenure, 2).astype(str)
    frame["TotalCharges"] = np.where(tenure == 0, " ", totals)
    return frame.loc[:, list(TELCO_HEADER)]


def to_telco_csv(frame: pd.DataFrame) -> bytes:
    """Serialize like IBM's file: comma-separated, unquoted, LF endings."""
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def in_shards(texts: list[str], shard_rows: int) -> list[tuple[list[str], list[str]]]:
    """(customer ids, texts) of ``shard_rows`` customers at a time; the ids are the row numbers."""
    ids = [str(row) for row in range(len(texts))]
    return [
        (ids[start : start + shard_rows], texts[start : start + shard_rows])
        for start in range(0, len(texts), shard_rows)
    ]


def write_embedding_stand_ins(
    folder: Path,
    rows: int,
    dimension: int = 384,
    centers: int = 300,
    spread: float = 0.6,
    seed: int = 0,
    block_rows: int = 65536,
    shard_rows: int = 262144,
) -> None:
    """``texts.csv`` and the ``embeddings`` shards of ``rows`` customers, written a block at a time.

    The vectors stand in for sentence embeddings: unit-norm float32, a seeded mixture of
    ``centers`` clusters of unequal sizes with Gaussian spread ``spread`` around unit centres; the
    texts are placeholders (only their ids are read after embedding). Nothing is ever whole in
    memory, so millions of rows can be written.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, dimension))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(centers, 2.0))
    shards_folder = folder / "embeddings"
    shards_folder.mkdir(parents=True, exist_ok=True)
    shards, blocks = [], 0
    with (folder / "texts.csv").open("w") as texts:
        texts.write("customer_id,text\n")
        for first in range(0, rows, shard_rows):
            shard_size = min(shard_rows, rows - first)
            path = shard_file(shards_folder, len(shards))
            header = {"descr": "<f4", "fortran_order": False, "shape": (shard_size, dimension)}
            with path.open("wb") as vectors:
                np.lib.format.write_array_header_1_0(vectors, header)
                for start in range(first, first + shard_size, block_rows):
                    block_rng = np.random.default_rng([seed, blocks])
                    size = min(block_rows, first + shard_size - start)
                    blocks += 1
                    block = means[block_rng.choice(centers, size=size, p=weights)]
                    block += block_rng.normal(scale=spread / np.sqrt(dimension), size=block.shape)
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                    vectors.write(block.astype(np.float32).tobytes())
                    texts.writelines(f"C{i:08d},customer {i}\n" for i in range(start, start + size))
            shards.append(
                Shard(
                    path.name, first, shard_size, f"C{first:08d}", f"C{first + shard_size - 1:08d}"
                )
            )
    write_index(shards_folder, shards, dimension)
