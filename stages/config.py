"""The params schema, the file layout and the customer columns shared by every stage.

``params.yaml`` is validated as a whole when any stage starts, so a bad value set with
``dvc exp run -S`` fails at once with one line naming the key, whichever stage reads it.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.artifacts import CUSTOMER_ID, PipelineError, read_csv, read_npy
# The customer table's columns and validating reader live in stages/schema.py; re-exported here.
from stages.schema import CATEGORICAL_COLUMNS, CUSTOMER_COLUMNS, NUMERIC_COLUMNS, SEGMENT_COLUMNS, read_customers  # noqa: F401

PARAMS_FILE = Path("params.yaml")

RAW_CSV = Path("data/raw/bank-full.csv")
TEXTS = Path("data/interim/texts.csv")
EMBEDDINGS = Path("data/interim/embeddings.npy")
EMBEDDING_INFO = Path("data/interim/embedding_info.json")
OUTLIERS = Path("data/interim/outliers.csv")
PROJECTIONS = Path("data/interim/projections.csv")
LABELS = Path("data/processed/labels.csv")
CENTROIDS = Path("data/processed/centroids.npy")
# --- the article's other two methods and the three-way comparison (issue 3) ---
TABULAR_MATRIX = Path("data/interim/tabular.npy")
TABULAR_OUTLIERS = Path("data/interim/tabular_outliers.csv")
TABULAR_LABELS = Path("data/processed/tabular_labels.csv")
KPROTOTYPES_LABELS = Path("data/processed/kprototypes_labels.csv")
# --- end issue 3 ---

METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")

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
    url: Annotated[str, Field(pattern=r"^(https?|file)://\S+$")] = (
        "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip"
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = (
        "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d"
    )
    # --- issue 4: download robustness ---
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    max_mb: Annotated[int, Field(ge=1, le=2048)] = 100


# One customer's values with the types read_customers gives them, to try the template on.
TEMPLATE_PROBE = {column: 0 if column in NUMERIC_COLUMNS else "unknown" for column in CUSTOMER_COLUMNS}


class SerializeParams(_Section):
    template: Annotated[str, Field(min_length=1)] = ARTICLE_TEMPLATE

    @field_validator("template")
    @classmethod
    def _names_known_columns(cls, template: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise ValueError(f"template is not a valid format string ({exc})") from None
        unknown = sorted(fields - set(CUSTOMER_COLUMNS))
        if unknown:
            raise ValueError(
                f"template names unknown column(s) {unknown}; use only {list(CUSTOMER_COLUMNS)}"
            )
        # A format spec that does not fit a value type (e.g. "{job:d}") fails only when filled in.
        try:
            template.format(**TEMPLATE_PROBE)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ValueError(f"template cannot be filled with a customer's values ({exc})") from None
        return template


class EmbedParams(_Section):
    engine: Literal["local", "ray"] = "local"
    # auto: 64 on a CPU, 1024 on a GPU (stages/encoders.py); a number is used as given.
    batch_size: int | Literal["auto"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chunk_rows: Annotated[int, Field(ge=1)] = 4096   # distinct texts per resumable chunk
    # Processes that tokenize the next batches while the model runs; 0 tokenizes between batches.
    tokenizer_processes: int | Literal["auto"] = "auto"
    ray_actors: int | Literal["auto"] = "auto"
    ray_threads_per_actor: Annotated[int, Field(ge=1, le=256)] = 1
    ray_num_cpus: int | Literal["auto"] = "auto"

    @field_validator("batch_size", "tokenizer_processes", "ray_actors", "ray_num_cpus", mode="before")
    @classmethod
    def _auto_or_count(cls, value: object, info) -> object:
        # One message per field instead of pydantic's two-branch union error.
        low, high = {"batch_size": (1, 4096), "tokenizer_processes": (0, 64), "ray_actors": (1, 4096),
                     "ray_num_cpus": (1, 100_000)}[info.field_name]
        if value == "auto":
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"Input should be 'auto' or a whole number from {low} to {high}")
        if value < low:
            raise ValueError(f"Input should be greater than {low - 1}" if low else "Input should not be negative")
        if value > high:
            raise ValueError(f"Input should be less than or equal to {high}")
        return value

    @model_validator(mode="after")
    def _precision_fits_backend(self) -> "EmbedParams":
        if self.precision == "bf16" and self.backend != "torch":
            raise ValueError(
                f"precision 'bf16' runs on the torch backend only (backend is {self.backend!r}); "
                "set embed.backend to 'torch' or embed.precision to 'fp32'"
            )
        return self


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
    top_features: Annotated[int, Field(ge=1, le=len(SEGMENT_COLUMNS))] = 3


# --- the article's other two methods and the three-way comparison (issue 3) ---
class TabularParams(_Section):
    # onehot: the article's published revision (19 columns); ordinal: its earlier one (8 columns).
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
# --- end issue 3 ---


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
    # --- issue 3 ---
    tabular: TabularParams = TabularParams()
    kprototypes: KPrototypesParams = KPrototypesParams()
    mca: MCAParams = MCAParams()
    compare: CompareParams = CompareParams()
    # --- end issue 3 ---


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
