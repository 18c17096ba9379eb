"""The params schema, the file layout and the customer columns shared by every stage.

``params.yaml`` is validated as a whole when any stage starts, so a bad value set with
``dvc exp run -S`` fails at once with one line naming the key, whichever stage reads it.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stages.artifacts import CUSTOMER_ID, PipelineError, read_csv, read_npy

PARAMS_FILE = Path("params.yaml")

RAW_CSV = Path("data/raw/bank-full.csv")
TEXTS = Path("data/interim/texts.csv")
EMBEDDINGS = Path("data/interim/embeddings.npy")
EMBEDDING_INFO = Path("data/interim/embedding_info.json")
OUTLIERS = Path("data/interim/outliers.csv")
PROJECTIONS = Path("data/interim/projections.csv")
LABELS = Path("data/processed/labels.csv")
CENTROIDS = Path("data/processed/centroids.npy")

METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")

# The eight columns the article segments on; `contact` is read only by the text template.
NUMERIC_COLUMNS = ("age", "balance")
CATEGORICAL_COLUMNS = ("job", "marital", "education", "default", "housing", "loan")
SEGMENT_COLUMNS = ("age", "job", "marital", "education", "default", "balance", "housing", "loan")
CUSTOMER_COLUMNS = SEGMENT_COLUMNS + ("contact",)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ARTICLE_TEMPLATE = (
    "Age: {age},\n"
    "housing load: {housing},\n"
    "Job: {job},\n"
    "Marital: {marital},\n"
    "Education: {education},\n"
    "Default: {default},\n"
    "Balance: {balance},\n"
    "Personal loan: {loan},\n"
    "contact: {contact}"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DownloadParams(_Section):
    url: Annotated[str, Field(min_length=1)] = (
        "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip"
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = (
        "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d"
    )


class SerializeParams(_Section):
    template: Annotated[str, Field(min_length=1)] = ARTICLE_TEMPLATE

    @model_validator(mode="after")
    def _names_known_columns(self) -> "SerializeParams":
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
        except ValueError as exc:
            raise ValueError(f"template is not a valid format string ({exc})") from None
        unknown = sorted(fields - set(CUSTOMER_COLUMNS))
        if unknown:
            raise ValueError(
                f"template names unknown column(s) {unknown}; use only {list(CUSTOMER_COLUMNS)}"
            )
        return self


class EmbedParams(_Section):
    batch_size: Annotated[int, Field(gt=0, le=4096)] = 64
    # --- issue 6: embedding backends, devices and resumable chunks ---
    backend: Literal["torch", "onnx", "onnx-int8"] = "onnx"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chunk_rows: Annotated[int, Field(ge=1)] = 4096   # distinct texts per resumable chunk


class OutliersParams(_Section):
    contamination: Annotated[float, Field(gt=0, lt=0.5)] = 0.1


class ElbowParams(_Section):
    k_min: Annotated[int, Field(ge=2)] = 2
    k_max: Annotated[int, Field(ge=3)] = 10
    n_init: Annotated[int, Field(ge=1)] = 3

    @model_validator(mode="after")
    def _ordered(self) -> "ElbowParams":
        if self.k_min >= self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must be below k_max ({self.k_max})")
        return self


class KMeansParams(_Section):
    n_init: Annotated[int, Field(ge=1)] = 10


class ProjectParams(_Section):
    tsne_perplexity: Annotated[float, Field(ge=5, le=500)] = 30.0
    tsne_max_iter: Annotated[int, Field(ge=250)] = 1000


class EvaluateParams(_Section):
    map_points: Annotated[int, Field(ge=100)] = 5000


class ExplainParams(_Section):
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    n_estimators: Annotated[int, Field(ge=1)] = 100
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    num_leaves: Annotated[int, Field(ge=2)] = 31
    shap_rows: Annotated[int, Field(ge=100)] = 4000
    top_features: Annotated[int, Field(ge=1, le=len(SEGMENT_COLUMNS))] = 3


class Params(_Section):
    k: Annotated[int, Field(ge=2, le=100)] = 5
    model: Annotated[str, Field(min_length=1)] = DEFAULT_MODEL
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 42
    # --- issue 6: above this many rows elbow and evaluate report a sampled silhouette with its CI ---
    silhouette_max_rows: Annotated[int, Field(ge=100)] = 100_000
    download: DownloadParams = DownloadParams()
    serialize: SerializeParams = SerializeParams()
    embed: EmbedParams = EmbedParams()
    outliers: OutliersParams = OutliersParams()
    elbow: ElbowParams = ElbowParams()
    kmeans: KMeansParams = KMeansParams()
    project: ProjectParams = ProjectParams()
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key; remove it or check its spelling"
    got = repr(error["input"])
    return f"{key}: {message} (got {got if len(got) <= 60 else got[:57] + '...'})"


def validate_params(raw: object, source: Path = PARAMS_FILE) -> Params:
    """Validate a parsed params mapping, reporting every problem in one line."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{source}: expected a mapping of params, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise PipelineError(
            f"{source}: {problems}. Fix params.yaml or the value given to 'dvc exp run -S'."
        ) from None


def load_params(path: Path = PARAMS_FILE) -> Params:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run the stage from the repository root") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    return validate_params(raw, path)


def read_customers(path: Path = RAW_CSV) -> pd.DataFrame:
    """Read the UCI ``;``-separated customer table: the columns the pipeline uses, indexed by row.

    The customer id is the 0-based data-row number, so row ``i`` of every matrix is customer ``i``.
    """
    if not path.exists():
        raise PipelineError(f"{path}: missing; run 'dvc repro download' first")
    try:
        frame = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PipelineError(f"{path}: not a ';'-separated table ({' '.join(str(exc).split())})") from None
    missing = [column for column in CUSTOMER_COLUMNS if column not in frame.columns]
    if missing:
        raise PipelineError(
            f"{path}: missing column(s) {missing} (found {list(frame.columns)[:20]}); "
            "the file must be the UCI bank-full.csv layout, ';'-separated"
        )
    frame = frame.loc[:, list(CUSTOMER_COLUMNS)]
    if frame.empty:
        raise PipelineError(f"{path}: has a header but no customer rows")
    for column in CUSTOMER_COLUMNS:
        blank = frame.index[frame[column].str.strip() == ""]
        if len(blank):
            raise PipelineError(f"{path}: column {column!r} is empty on {_rows(blank)}; fill it in")
    for column in NUMERIC_COLUMNS:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[numbers.isna() | (numbers != numbers.round())]
        if len(bad):
            raise PipelineError(f"{path}: column {column!r} is not a whole number on {_rows(bad)}")
        frame[column] = numbers.astype("int64")
    frame.index.name = CUSTOMER_ID
    return frame


def _rows(index: pd.Index, shown: int = 5) -> str:
    """Name rows as file line numbers (header is line 1), the way an editor shows them."""
    lines = ", ".join(str(i + 2) for i in index[:shown])
    more = f" and {len(index) - shown} more" if len(index) > shown else ""
    return f"line(s) {lines}{more}"


def read_inlier_vectors() -> tuple[np.ndarray, np.ndarray]:
    """The customer ids that ECOD kept and their embedding rows, in customer order."""
    vectors = read_npy(EMBEDDINGS)
    flags = read_csv(OUTLIERS)
    if len(flags) != len(vectors):
        raise PipelineError(
            f"{OUTLIERS} has {len(flags)} rows but {EMBEDDINGS} has {len(vectors)}; rerun 'dvc repro'"
        )
    ids = flags.loc[flags["inlier"] == 1, CUSTOMER_ID].to_numpy()
    return ids, vectors[ids]
