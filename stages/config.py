"""The params schema, each data set's file layout, and the reader of the segmented inliers.

``params.yaml`` is validated as a whole when any stage starts, so a bad value set with
``dvc exp run -S`` fails at once with one line naming the key, whichever stage reads it. What a
customer table holds is not a param: it is described by its data-set file (``stages/dataset.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.artifacts import CUSTOMER_ID, PipelineError, read_csv, read_npy

PARAMS_FILE = Path("params.yaml")
DATASETS_DIR = Path("datasets")
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Layout(NamedTuple):
    """Where one data set's files live; dvc.yaml names the same paths with ``${item.ds}``."""

    raw: Path
    customers: Path
    rejected: Path
    texts: Path
    embeddings: Path
    embedding_info: Path
    outliers: Path
    projections: Path
    labels: Path
    centroids: Path
    tabular_matrix: Path
    tabular_outliers: Path
    tabular_labels: Path
    kprototypes_labels: Path
    metrics: Path
    plots: Path
    reports: Path


def layout(name: str) -> Layout:
    data, interim, processed = Path("data") / name, Path("data") / name / "interim", Path("data") / name / "processed"
    return Layout(
        raw=data / "raw" / "table.csv",
        customers=interim / "customers.csv",
        rejected=Path("reports") / name / "rejected.csv",
        texts=interim / "texts.csv",
        embeddings=interim / "embeddings.npy",
        embedding_info=interim / "embedding_info.json",
        outliers=interim / "outliers.csv",
        projections=interim / "projections.csv",
        labels=processed / "labels.csv",
        centroids=processed / "centroids.npy",
        tabular_matrix=interim / "tabular.npy",
        tabular_outliers=interim / "tabular_outliers.csv",
        tabular_labels=processed / "tabular_labels.csv",
        kprototypes_labels=processed / "kprototypes_labels.csv",
        metrics=Path("metrics") / name,
        plots=Path("plots") / name,
        reports=Path("reports") / name,
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DownloadParams(_Section):
    """How hard to try; where from and what checksum is each data set's own (its data-set file)."""

    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    max_mb: Annotated[int, Field(ge=1, le=2048)] = 100


class EmbedParams(_Section):
    batch_size: Annotated[int, Field(gt=0, le=4096)] = 64
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chunk_rows: Annotated[int, Field(ge=1)] = 4096   # distinct texts per resumable chunk


class OutliersParams(_Section):
    contamination: Annotated[float, Field(gt=0, lt=0.5)] = 0.1


class _KRange(_Section):
    """A range of k for a curve over the number of segments."""

    k_min: Annotated[int, Field(ge=2)] = 2
    k_max: Annotated[int, Field(ge=3)] = 10

    @model_validator(mode="after")
    def _ordered(self) -> "_KRange":
        if self.k_min >= self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must be below k_max ({self.k_max})")
        return self


class ElbowParams(_KRange):
    n_init: Annotated[int, Field(ge=1)] = 3


class KMeansParams(_Section):
    n_init: Annotated[int, Field(ge=1)] = 10


class ProjectParams(_Section):
    tsne_perplexity: Annotated[float, Field(ge=5, le=500)] = 30.0
    tsne_max_iter: Annotated[int, Field(ge=250)] = 500


class EvaluateParams(_Section):
    map_points: Annotated[int, Field(ge=100)] = 5000


class ExplainParams(_Section):
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    n_estimators: Annotated[int, Field(ge=1)] = 100
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    num_leaves: Annotated[int, Field(ge=2)] = 31
    shap_rows: Annotated[int, Field(ge=100)] = 2000
    top_features: Annotated[int, Field(ge=1, le=20)] = 3


class TabularParams(_Section):
    # onehot: the article's published revision (categories one-hot, ordinals in order, numbers
    # Yeo-Johnson); ordinal: its earlier one (every column ordinal-encoded, then Yeo-Johnson).
    encoding: Literal["onehot", "ordinal"] = "onehot"
    n_init: Annotated[int, Field(ge=1)] = 10
    max_iter: Annotated[int, Field(ge=1)] = 100


class KPrototypesParams(_KRange):
    k_max: Annotated[int, Field(ge=3)] = 8
    cost_n_init: Annotated[int, Field(ge=1)] = 1
    n_init: Annotated[int, Field(ge=1)] = 2
    max_iter: Annotated[int, Field(ge=1)] = 100


class MCAParams(_Section):
    n_components: Annotated[int, Field(ge=2, le=10)] = 3
    n_iter: Annotated[int, Field(ge=1)] = 100


class CompareParams(_Section):
    stability_rows: Annotated[int, Field(ge=100)] = 10000
    stability_seeds: Annotated[int, Field(ge=2)] = 5
    bootstrap_rounds: Annotated[int, Field(ge=1)] = 5


class Params(_Section):
    datasets: Annotated[list[str], Field(min_length=1)] = ["bank", "telco"]
    k: Annotated[int, Field(ge=2, le=100)] = 5
    model: Annotated[str, Field(min_length=1)] = DEFAULT_MODEL
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 42
    silhouette_max_rows: Annotated[int, Field(ge=100)] = 100_000
    sample_fit_rows: Annotated[int, Field(ge=100)] = 200_000
    download: DownloadParams = DownloadParams()
    embed: EmbedParams = EmbedParams()
    outliers: OutliersParams = OutliersParams()
    elbow: ElbowParams = ElbowParams()
    kmeans: KMeansParams = KMeansParams()
    project: ProjectParams = ProjectParams()
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()
    tabular: TabularParams = TabularParams()
    kprototypes: KPrototypesParams = KPrototypesParams()
    mca: MCAParams = MCAParams()
    compare: CompareParams = CompareParams()

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("lists a data set twice")
        unknown = [name for name in names if not (DATASETS_DIR / f"{name}.yaml").is_file()]
        if unknown:
            known = sorted(path.stem for path in DATASETS_DIR.glob("*.yaml"))
            raise ValueError(f"no data-set file for {unknown} in {DATASETS_DIR}/ (found {known})")
        return names


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key; remove it or check its spelling"
    if not key:  # a rule across keys: its message names them
        return message
    got = repr(error["input"])
    if isinstance(error["input"], bool):
        got += ": YAML reads unquoted yes/no/on/off as true/false, so quote the value"
    return f"{key}: {message} (got {got if len(got) <= 90 else got[:87] + '...'})"


def validated(model: type[BaseModel], raw: object, source: Path, fix: str):
    """``raw`` validated as ``model``, every problem reported in one line that ends with ``fix``."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise PipelineError(f"{source}: {problems}. {fix}.") from None


def validate_params(raw: object, source: Path = PARAMS_FILE) -> Params:
    return validated(Params, raw, source, "Fix params.yaml or the value given to 'dvc exp run -S'")


def load_params(path: Path = PARAMS_FILE) -> Params:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run the stage from the repository root") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    return validate_params(raw, path)


def read_inlier_vectors(paths: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The customer ids that ECOD kept, their rows in the matrix, and their embeddings."""
    vectors = read_npy(paths.embeddings)
    flags = read_csv(paths.outliers)
    if len(flags) != len(vectors):
        raise PipelineError(
            f"{paths.outliers} has {len(flags)} rows but {paths.embeddings} has {len(vectors)}; rerun 'dvc repro'"
        )
    rows = np.flatnonzero(flags["inlier"].to_numpy() == 1)
    return flags[CUSTOMER_ID].to_numpy()[rows], rows, vectors[rows]
