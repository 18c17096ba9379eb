"""The params schema, each data set's file layout, and the reader of the segmented inliers.

``params.yaml`` is validated as a whole when any stage starts, so a bad value set with
``dvc exp run -S`` fails at once with one line naming the key, whichever stage reads it. What a
customer table holds is not a param: it is described by its data-set file (``stages/dataset.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from segmentation.artifacts import PipelineError

PARAMS_FILE = Path("params.yaml")
PIPELINE_FILE = Path("dvc.yaml")
DATASETS_DIR = Path("datasets")
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The adopted segmentations that new fits are matched to, one folder per data set, tracked in git.
REFERENCES_DIR = Path("references")


class Layout(NamedTuple):
    """Where one data set's files live; dvc.yaml names the same paths with ``${item.ds}``."""

    raw: Path
    customers: Path
    rejected: Path
    texts: Path
    text_writing: Path
    embeddings: Path
    embedding_info: Path
    outliers: Path
    outlier_detector: Path
    refits: Path
    projections: Path
    labels: Path
    centroids: Path
    segment_model: Path
    reference: Path
    lineage: Path
    segment_moves: Path
    tabular_matrix: Path
    tabular_outliers: Path
    tabular_labels: Path
    kprototypes_labels: Path
    mca_coordinates: Path
    metrics: Path
    plots: Path
    reports: Path


def layout(name: str) -> Layout:
    data, interim, processed = (
        Path("data") / name,
        Path("data") / name / "interim",
        Path("data") / name / "processed",
    )
    return Layout(
        raw=data / "raw" / "table.csv",
        customers=interim / "customers.csv",
        rejected=Path("reports") / name / "rejected.csv",
        texts=interim / "texts.csv",
        text_writing=interim / "text_writing.json",
        embeddings=interim / "embeddings",
        embedding_info=interim / "embedding_info.json",
        outliers=interim / "outliers.csv",
        outlier_detector=interim / "outlier_detector.zip",
        refits=interim / "refits.npz",
        projections=interim / "projections.csv",
        labels=processed / "labels.csv",
        centroids=processed / "centroids.npy",
        segment_model=processed / "segment_model.zip",
        reference=REFERENCES_DIR / name,
        lineage=Path("reports") / name / "lineage.json",
        segment_moves=processed / "segment_moves.csv",
        tabular_matrix=interim / "tabular.npy",
        tabular_outliers=interim / "tabular_outliers.csv",
        tabular_labels=processed / "tabular_labels.csv",
        kprototypes_labels=processed / "kprototypes_labels.csv",
        mca_coordinates=interim / "mca.csv",
        metrics=Path("metrics") / name,
        plots=Path("plots") / name,
        reports=Path("reports") / name,
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def param(default, description: str, **bounds):
    """A param's default, bounds and meaning, written once:
    docs/params.md is generated from them."""
    return Field(default, description=description, **bounds)


class DownloadParams(_Section):
    """How hard the download stage tries; where each table comes from, and its checksum, are in its
    data-set file."""

    timeout_s: float = param(60.0, "seconds without data before a try gives up", gt=0, le=600)
    attempts: int = param(
        4,
        "tries in all on transient errors (HTTP 408/425/429/5xx, timeouts, dropped "
        "connections); 4xx errors are final",
        ge=1,
        le=10,
    )
    backoff_s: float = param(
        2.0, "wait before the second try, doubled before each further one", ge=0, le=60
    )
    max_mb: int = param(100, "largest body or zip member accepted, in MB", ge=1, le=2048)


AUTO_OR_COUNT = {
    "batch_size": (1, 4096),
    "tokenizer_processes": (0, 64),
    "ray_actors": (1, 4096),
    "ray_num_cpus": (1, 100_000),
}


class EmbedParams(_Section):
    """The sentence embedding of each distinct text (docs/performance.md)."""

    engine: Literal["local", "ray"] = param(
        "local",
        "`local`, or `ray`: an actor pool on the Ray cluster at RAY_ADDRESS, or a local one",
    )
    batch_size: int | Literal["auto"] = param(
        "auto", "texts per batch; `auto`: 64 on a CPU (the committed vectors), 1024 on a GPU"
    )
    precision: Literal["fp32", "bf16"] = param(
        "fp32", "`bf16` (torch backend only): faster, cosine to fp32 at least 0.999, other segments"
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = param(
        "torch",
        "`torch` (sentence-transformers), `onnx` (ONNX Runtime, the same vectors) or "
        "`onnx-int8` (quantized: faster on a CPU, other segments)",
    )
    device: Literal["auto", "cpu", "cuda"] = param(
        "auto", "`auto`: CUDA when the backend (or the Ray cluster) has one, else the CPU"
    )
    chunk_rows: int = param(4096, "distinct texts per resumable chunk", ge=1)
    shard_rows: int = param(
        262144,
        "customers per shard of the embedding matrix; texts are deduplicated within a shard, "
        "so a table of at most this many customers is one shard, the same bytes as one matrix",
        ge=1,
    )
    tokenizer_processes: int | Literal["auto"] = param(
        "auto",
        "processes tokenizing the next batches while the model runs (speed only); `auto`: "
        "none on a CPU, up to 8 on a GPU",
    )
    ray_actors: int | Literal["auto"] = param(
        "auto",
        "Ray actors (speed only); `auto`: one per GPU, or the cluster's CPUs / threads per actor",
    )
    ray_threads_per_actor: int = param(
        1, "torch threads, and Ray CPUs, of each CPU actor (speed only)", ge=1, le=256
    )
    ray_num_cpus: int | Literal["auto"] = param(
        "auto", "CPUs of the local Ray started when RAY_ADDRESS is unset (speed only); `auto`: all"
    )

    @field_validator(*AUTO_OR_COUNT, mode="before")
    @classmethod
    def _auto_or_count(cls, value: object, info) -> object:
        # One message per field instead of pydantic's two-branch union error.
        low, high = AUTO_OR_COUNT[info.field_name]
        if value == "auto":
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"Input should be 'auto' or a whole number from {low} to {high}")
        if value < low:
            raise ValueError(
                f"Input should be greater than {low - 1}" if low else "Input should not be negative"
            )
        if value > high:
            raise ValueError(f"Input should be less than or equal to {high}")
        return value

    @model_validator(mode="after")
    def _precision_fits_backend(self) -> EmbedParams:
        if self.precision == "bf16" and self.backend != "torch":
            raise ValueError(
                f"precision 'bf16' runs on the torch backend only (backend is {self.backend!r}); "
                "set embed.backend to 'torch' or embed.precision to 'fp32'"
            )
        return self


class TextParams(_Section):
    """How each customer is written as a text (stages/text.py)."""

    numbers: Literal["dataset", "value", "band", "both"] = param(
        "dataset",
        "how numbers are written: `dataset` (each data-set file's `numbers`), `value` (as read, "
        "the article's), `band` (the band's word: `Income: high`) or `both` "
        "(`Income: 58,138 USD (high)`)",
    )


class OutliersParams(_Section):
    contamination: float = param(
        0.1, "share of customers ECOD flags as outliers (the article: 0.1)", gt=0, lt=0.5
    )


class _KRange(_Section):
    """A range of k for a curve over the number of segments."""

    k_min: int = param(2, "smallest k of the curve", ge=2)
    k_max: int = param(10, "largest k of the curve", ge=3)

    @model_validator(mode="after")
    def _ordered(self) -> _KRange:
        if self.k_min >= self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must be below k_max ({self.k_max})")
        return self


class ElbowParams(_KRange):
    """The elbow study: KMeans, its validity scores and its stability for every k of a range."""

    n_init: int = param(
        3, "KMeans restarts per k for the curves (the stability refits use kmeans.n_init)", ge=1
    )


class StabilityParams(_Section):
    """Do the segments come back? KMeans refits (kmeans.n_init restarts each) of a seeded sample of
    inliers, for every k of the elbow study and for the chosen k (docs/stability.md)."""

    rows: int = param(4000, "the seeded sample of inliers refitted", ge=100)
    seeds: int = param(
        3, "fits of the whole sample with seeds seed, seed + 1, ... (ARI across seeds)", ge=2
    )
    bootstrap_rounds: int = param(
        8, "fits of bootstrap resamples of the sample (ARI, clusterwise Jaccard)", ge=1
    )
    near_tie_gap_pct: float = param(
        0.5,
        "different partitions (ARI below 0.9) this close in inertia, in percent, are a near tie",
        gt=0,
        le=100,
    )


class KMeansParams(_Section):
    n_init: int = param(10, "KMeans restarts for the chosen k", ge=1)


class LineageParams(_Section):
    """Which new segment is which adopted one (docs/lineage.md)."""

    match_jaccard: float = param(
        0.5,
        "a new segment keeps an adopted segment's number and name when the optimal one-to-one "
        "pairing joins them with at least this Jaccard of their customers (Hennig's border "
        "between a dissolved and a recovered cluster, docs/stability.md)",
        gt=0,
        le=1,
    )
    flow_share: float = param(
        0.2,
        "customers moving from one segment to another count in a split, merge or move when they "
        "are at least this share of the segment they leave or join (one in five; fewer is noise "
        "at a border)",
        gt=0,
        lt=0.5,
    )


class ProjectParams(_Section):
    """The k-independent PCA and t-SNE maps of the inliers."""

    tsne_perplexity: float = param(30.0, "t-SNE perplexity", ge=5, le=500)
    tsne_max_iter: int = param(
        500,
        "t-SNE iterations, the 250 exaggerated ones included (openTSNE; docs/performance.md)",
        ge=250,
    )
    tsne_rows: int = param(
        50_000,
        "customers on the t-SNE map: a seeded sample of this many of the inliers the PCA is "
        "fitted on, all of them if fewer (its time and memory grow with them; docs/scale-fit.md)",
        ge=100,
    )


class EvaluateParams(_Section):
    map_points: int = param(
        5000,
        "seeded sample of inliers written as scatter-plot data (the PNGs show every inlier on "
        "the t-SNE map)",
        ge=100,
    )


class ExplainParams(_Section):
    """The LightGBM surrogate that explains the segments, and its SHAP values."""

    test_size: float = param(0.2, "held-out share of the surrogate's stratified split", gt=0, lt=1)
    n_estimators: int = param(100, "LightGBM trees (its default, as the article's surrogate)", ge=1)
    learning_rate: float = param(0.1, "LightGBM learning rate", gt=0, le=1)
    num_leaves: int = param(31, "LightGBM leaves per tree", ge=2)
    shap_rows: int = param(2000, "seeded sample of inliers explained with TreeSHAP", ge=100)
    top_features: int = param(3, "SHAP features listed per segment", ge=1, le=20)


class TabularParams(_Section):
    """Method 1: KMeans on the encoded segmentation columns, with the article's settings."""

    encoding: Literal["onehot", "ordinal"] = param(
        "onehot",
        "`onehot`: the article's published revision (categories one-hot, ordinal columns in "
        "their level order, numbers Yeo-Johnson); `ordinal`: its earlier one (every column "
        "ordinal-encoded, then Yeo-Johnson)",
    )
    n_init: int = param(10, "KMeans restarts", ge=1)
    max_iter: int = param(100, "KMeans iterations", ge=1)


class KPrototypesParams(_KRange):
    """Method 2: K-Prototypes on the Method-1 inliers; its cost curve over a range of k."""

    k_max: int = param(8, "largest k of the cost curve (the article: 14)", ge=3)
    cost_n_init: int = param(1, "starts per k on the cost curve", ge=1)
    n_init: int = param(2, "starts for the chosen k (kmodes' default: 10)", ge=1)
    max_iter: int = param(100, "iterations per start", ge=1)


class MCAParams(_Section):
    """The MCA map of the categorical columns, with the article's settings."""

    n_components: int = param(3, "MCA components", ge=2, le=10)
    n_iter: int = param(100, "MCA iterations", ge=1)


class ComparisonParams(_Section):
    """The article's two other methods and the three-way comparison on the customers all keep."""

    tabular: TabularParams = TabularParams()
    kprototypes: KPrototypesParams = KPrototypesParams()
    mca: MCAParams = MCAParams()


class Params(_Section):
    datasets: list[str] = param(
        ["bank", "telco", "churners"],
        "the customer tables to segment, each described by "
        "datasets/<name>.yaml; every stage runs once per data set",
        min_length=1,
    )
    k: int = param(5, "number of segments, for every method", ge=2, le=100)
    model: str = param(
        DEFAULT_MODEL, "sentence-transformers model name or local folder", min_length=1
    )
    seed: int = param(
        42, "seeds KMeans, PCA, t-SNE, the splits, LightGBM and every sample", ge=0, le=2**32 - 1
    )
    silhouette_max_rows: int = param(
        100_000,
        "above this many inliers, a seeded sampled silhouette with "
        "its 95% interval replaces the exact one",
        ge=100,
    )
    sample_fit_rows: int = param(
        200_000,
        "above this many customers, outliers, elbow, kmeans and the baselines (tabular, "
        "kprototypes, kprototypes_cost, mca) fit on a seeded sample of this many (the profile its "
        "bands) and every customer is scored and assigned in blocks (docs/performance.md)",
        ge=100,
    )
    engine: Literal["local", "ray"] = param(
        "local",
        "where the work on every customer runs (kmeans' labels, the tallies of the profile and of "
        "explain's η²; above sample_fit_rows also the ECOD scores, the PCA and evaluate's scores; "
        "speed only): `local`, this process shard by shard, or `ray`, a Ray Data task per shard "
        "on the cluster at RAY_ADDRESS or a local one (embed has its own embed.engine)",
    )
    download: DownloadParams = DownloadParams()
    text: TextParams = TextParams()
    embed: EmbedParams = EmbedParams()
    outliers: OutliersParams = OutliersParams()
    elbow: ElbowParams = ElbowParams()
    kmeans: KMeansParams = KMeansParams()
    stability: StabilityParams = StabilityParams()
    lineage: LineageParams = LineageParams()
    project: ProjectParams = ProjectParams()
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()
    comparison: ComparisonParams = ComparisonParams()

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
    """params.yaml, validated; in a DVC stage, only the params dvc.yaml declares for it."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run the stage from the repository root") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    params = validate_params(raw, path)
    stage = running_stage()
    declared = declared_params(stage) if stage else None
    return params if declared is None else DeclaredParams(params, declared, stage)


def running_stage() -> str | None:
    """The stage run as ``python -m stages.<name>``, or None outside one."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", "") or ""
    return name.removeprefix("stages.") if name.startswith("stages.") else None


def declared_params(stage: str) -> frozenset[str] | None:
    """The params dvc.yaml lists for ``stage`` (dotted), or None where it does not define it."""
    if not PIPELINE_FILE.exists():
        return None
    definition = (yaml.safe_load(PIPELINE_FILE.read_text()) or {}).get("stages", {}).get(stage)
    if definition is None:
        return None
    return frozenset(key for entry in definition.get("params", []) for key in _param_keys(entry))


def _param_keys(entry: str | dict) -> list[str]:
    # an entry is a key, or {params file: [keys]}
    return [entry] if isinstance(entry, str) else [key for keys in entry.values() for key in keys]


class DeclaredParams:
    """A stage's view of the params: reading one that dvc.yaml does not declare for the stage is
    an error, so that DVC reruns every stage whose params change and no other."""

    def __init__(self, section: BaseModel, declared: frozenset[str], stage: str, prefix: str = ""):
        self._section, self._declared, self._stage, self._prefix = section, declared, stage, prefix

    def __getattr__(self, name: str):
        value = getattr(self._section, name)
        key = f"{self._prefix}{name}"
        if any(key == entry or key.startswith(f"{entry}.") for entry in self._declared):
            return value
        if isinstance(value, BaseModel) and any(
            entry.startswith(f"{key}.") for entry in self._declared
        ):
            return DeclaredParams(value, self._declared, self._stage, f"{key}.")
        raise PipelineError(
            f"stage {self._stage} reads the param '{key}', which dvc.yaml does not list in its "
            f"params; add '{key}' there, so that changing it reruns the stage"
        )
