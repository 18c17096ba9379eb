"""The segment model: ECOD outlier scores and KMeans segments, fitted on customers' vectors and
saved as one artifact with a manifest.

    model = SegmentModel(k=5).fit(vectors)        # ECOD, then KMeans on the inliers
    model.predict(new_vectors)                    # segment, distance, outlier score and flag
    model.save("segment_model.zip"); SegmentModel.load("segment_model.zip")

One convention throughout, pyod's: a higher score is more outlying, and a flag of 1 is an outlier
(the score is above ``threshold_``, the (1 - contamination) percentile of the fitted customers'
scores). Both fits run on a seeded sample of ``sample_fit_rows`` customers, which is all of them
below that size, so every size takes one code path.

The rule for outlier scores: ``decision_scores_`` are the fitted customers' own, pyod's
``decision_scores_`` when the reference is every fitted customer; ``decision_function`` scores any
vector as if it alone joined the reference. So a customer's segment from ``predict`` is its
segment from ``fit``, and its flag can differ only where the two scores straddle the threshold.

The artifact is a zip that ``numpy.load`` also reads: ``manifest.json`` (the settings, how the
customers were written and embedded, the segment names and the data-set file's sha256) and the
arrays. ``unzip -p segment_model.zip manifest.json`` shows the manifest.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from segmentation.artifacts import PipelineError, write_bytes
from segmentation.model.ecod import ECODReference
from segmentation.model.kmeans import fit_kmeans, nearest_segments
from segmentation.model.sampling import MatrixRows, sample_rows

FORMAT = 1
MANIFEST = "manifest.json"
ECOD_ARRAYS = ("ecod_sorted_columns", "ecod_skew_signs")
# a fixed time stamp on every member, so that the same model gives the same bytes
ZIP_TIME = (2000, 1, 1, 0, 0, 0)


class Embedding(BaseModel):
    """How the customers' vectors were made: the same model, backend and precision are needed for
    new customers' vectors to be comparable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    backend: str
    precision: str
    dimension: int


class Customers(BaseModel):
    """How the customers were written: the data-set file and the number writing fitted on them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    dataset_file_sha256: str
    text_writing: dict


class DetectorManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int
    seed: int
    contamination: float
    sample_fit_rows: int
    ecod_sample_rows: int
    threshold: float


class Manifest(DetectorManifest):
    k: int
    n_init: int
    fitted_customers: int
    kmeans_sample_rows: int
    segment_names: list[str]
    segment_numbers: list[int] | None = None  # each centre's stable number; None: 1..k
    embedding: Embedding | None = None
    customers: Customers | None = None


class OutlierDetector:
    """ECOD fitted on a seeded sample of ``sample_fit_rows`` vectors (all of them if fewer)."""

    def __init__(self, contamination: float = 0.1, sample_fit_rows: int = 200_000, seed: int = 42):
        self.contamination = contamination
        self.sample_fit_rows = sample_fit_rows
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> OutlierDetector:
        self.fit_reference(vectors)
        if not self.scored_in_place:  # block by block, so a mapped matrix is never held whole
            blocks = MatrixRows(vectors).blocks()
            self.decision_scores_ = np.concatenate([self.decision_function(b) for _, b in blocks])
            self.labels_ = self.predict_scores(self.decision_scores_)
        return self

    def fit_reference(self, vectors: np.ndarray) -> OutlierDetector:
        """The reference and threshold alone, from the seeded sample. When the sample is every
        vector, ``decision_scores_`` and ``labels_`` too (pyod's, the reference scored in place);
        otherwise the caller scores the vectors, as ``fit`` does, with ``decision_function``."""
        rows = sample_rows(len(vectors), self.sample_fit_rows, self.seed)
        self.reference_ = ECODReference(MatrixRows(vectors).take(rows), self.contamination)
        self.threshold_ = self.reference_.threshold
        self.scored_in_place = len(rows) == len(vectors)
        if self.scored_in_place:
            self.decision_scores_ = self.reference_.reference_scores
            self.labels_ = self.predict_scores(self.decision_scores_)
        return self

    @property
    def fit_rows(self) -> int:
        return self.reference_.rows

    def decision_function(self, vectors: np.ndarray) -> np.ndarray:
        """Each row's ECOD score as if it alone joined the reference; higher is more outlying."""
        return self.reference_.scores(vectors)

    def predict_scores(self, scores: np.ndarray) -> np.ndarray:
        """1 for an outlier (a score above ``threshold_``), 0 for an inlier, as pyod's."""
        return (scores > self.threshold_).astype(np.int8)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        return self.predict_scores(self.decision_function(vectors))

    def manifest(self) -> DetectorManifest:
        return DetectorManifest(
            format=FORMAT,
            seed=self.seed,
            contamination=self.contamination,
            sample_fit_rows=self.sample_fit_rows,
            ecod_sample_rows=self.fit_rows,
            threshold=self.threshold_,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(ECOD_ARRAYS, (self.reference_.sorted_columns, self.reference_.skew_signs)))

    def save(self, path: Path) -> None:
        write_archive(path, self.manifest(), self.arrays())

    @classmethod
    def load(cls, path: Path) -> OutlierDetector:
        manifest, arrays = read_archive(path, DetectorManifest, ECOD_ARRAYS)
        return cls.restored(manifest, arrays)

    @classmethod
    def restored(cls, manifest: DetectorManifest, arrays: dict) -> OutlierDetector:
        detector = cls(manifest.contamination, manifest.sample_fit_rows, manifest.seed)
        detector.reference_ = ECODReference.restored(
            arrays["ecod_sorted_columns"], arrays["ecod_skew_signs"], manifest.threshold
        )
        detector.threshold_ = manifest.threshold
        return detector


class SegmentModel:
    """Segments of customers' vectors, scikit-learn style: ``fit``, ``predict``, ``save``, ``load``.

    After ``fit``: ``outliers_`` (the ``OutlierDetector``), ``threshold_``, ``decision_scores_``
    and ``outlier_labels_`` of the fitted customers, ``cluster_centers_`` (segment 1, the largest,
    first), ``labels_`` (each inlier's segment, 1..k) and ``inertia_``. ``segment_numbers`` and
    ``segment_names``, set by the pipeline, are each centre's stable number and name, which
    ``predict`` reports (1..k and none when unset).
    """

    def __init__(
        self,
        k: int = 5,
        contamination: float = 0.1,
        n_init: int = 10,
        sample_fit_rows: int = 200_000,
        seed: int = 42,
    ):
        self.k = k
        self.contamination = contamination
        self.n_init = n_init
        self.sample_fit_rows = sample_fit_rows
        self.seed = seed
        self.segment_names: list[str] | None = None
        self.segment_numbers: list[int] | None = None
        self.embedding: Embedding | None = None
        self.customers: Customers | None = None

    def fit(self, vectors: np.ndarray) -> SegmentModel:
        detector = OutlierDetector(self.contamination, self.sample_fit_rows, self.seed)
        self.set_outliers(detector.fit(vectors))
        inliers = MatrixRows(vectors, np.flatnonzero(detector.labels_ == 0))
        fitted = fit_kmeans(inliers, self.k, self.n_init, self.sample_fit_rows, self.seed)
        self.labels_, self.cluster_centers_, self.inertia_ = fitted
        self.fitted_customers_ = len(vectors)
        self.kmeans_sample_rows_ = min(self.sample_fit_rows, len(inliers))
        return self

    def set_outliers(self, detector: OutlierDetector) -> None:
        self.outliers_ = detector
        self.threshold_ = detector.threshold_
        self.decision_scores_ = detector.decision_scores_
        self.outlier_labels_ = detector.labels_

    @classmethod
    def assembled(
        cls,
        detector: OutlierDetector,
        cluster_centers: np.ndarray,
        n_init: int,
        fitted_customers: int,
        kmeans_sample_rows: int,
    ) -> SegmentModel:
        """The model the pipeline fitted stage by stage: the outliers stage's saved detector and
        the kmeans stage's centroids."""
        model = cls(
            len(cluster_centers),
            detector.contamination,
            n_init,
            detector.sample_fit_rows,
            detector.seed,
        )
        model.outliers_, model.threshold_ = detector, detector.threshold_
        model.cluster_centers_ = cluster_centers
        model.fitted_customers_, model.kmeans_sample_rows_ = fitted_customers, kmeans_sample_rows
        return model

    def decision_function(self, vectors: np.ndarray) -> np.ndarray:
        """ECOD outlier scores; higher is more outlying."""
        return self.outliers_.decision_function(vectors)

    def predict(self, vectors: np.ndarray) -> pd.DataFrame:
        """Per row: the nearest segment (its stable number), its name, the distance to its centre,
        the outlier score and the outlier flag (1 = outlier). Rows are independent, so any batches
        give the same."""
        self._check_dimension(vectors)
        centres, distances = nearest_segments(vectors, self.cluster_centers_)
        scores = self.decision_function(vectors)
        predicted = pd.DataFrame({"segment": self.stable_numbers(centres)})
        if self.segment_names is not None:
            predicted["segment_name"] = np.asarray(self.segment_names, dtype=object)[centres - 1]
        return predicted.assign(
            centroid_distance=distances,
            ecod_score=scores,
            outlier=self.outliers_.predict_scores(scores),
        )

    def stable_numbers(self, fitted: np.ndarray) -> np.ndarray:
        """Fitted segments 1..k as the stable numbers ``predict`` reports."""
        if self.segment_numbers is None:
            return np.asarray(fitted)
        return np.asarray(self.segment_numbers)[np.asarray(fitted) - 1]

    def _check_dimension(self, vectors: np.ndarray) -> None:
        dimension = self.cluster_centers_.shape[1]
        if vectors.ndim != 2 or vectors.shape[1] != dimension:
            raise PipelineError(
                f"the segment model takes vectors of {dimension} numbers, got shape "
                f"{vectors.shape}; embed the customers with the model named in its manifest"
            )

    def manifest(self) -> Manifest:
        return Manifest(
            **self.outliers_.manifest().model_dump(),
            k=self.k,
            n_init=self.n_init,
            fitted_customers=self.fitted_customers_,
            kmeans_sample_rows=self.kmeans_sample_rows_,
            segment_names=self.segment_names or [f"Segment {i}" for i in range(1, self.k + 1)],
            segment_numbers=self.segment_numbers,
            embedding=self.embedding,
            customers=self.customers,
        )

    def save(self, path: Path) -> None:
        """One zip file: ``manifest.json`` and the arrays, the same bytes for the same model."""
        arrays = {"cluster_centers": self.cluster_centers_, **self.outliers_.arrays()}
        write_archive(path, self.manifest(), arrays)

    @classmethod
    def load(cls, path: Path) -> SegmentModel:
        manifest, arrays = read_archive(path, Manifest, ("cluster_centers", *ECOD_ARRAYS))
        model = cls.assembled(
            OutlierDetector.restored(manifest, arrays),
            arrays["cluster_centers"],
            manifest.n_init,
            manifest.fitted_customers,
            manifest.kmeans_sample_rows,
        )
        model.segment_names, model.segment_numbers = (
            manifest.segment_names,
            manifest.segment_numbers,
        )
        model.embedding, model.customers = manifest.embedding, manifest.customers
        return model


def write_archive(path: Path, manifest: BaseModel, arrays: dict[str, np.ndarray]) -> None:
    """A zip of ``manifest.json`` and one ``.npy`` per array, the same bytes for the same input."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        text = json.dumps(manifest.model_dump(), indent=2, allow_nan=False) + "\n"
        archive.writestr(zipfile.ZipInfo(MANIFEST, ZIP_TIME), text)
        for name, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", ZIP_TIME), member.getvalue())
    write_bytes(Path(path), buffer.getvalue())


def read_archive(path: Path, manifest_type: type[BaseModel], names: tuple[str, ...]):
    """The manifest and the named arrays of a ``write_archive`` file; one line if it is not one."""
    path = Path(path)
    try:
        with np.load(path) as archive:
            manifest = manifest_type.model_validate_json(archive[MANIFEST])
            arrays = {name: archive[f"{name}.npy"] for name in names}
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run 'dvc repro' to fit and save it") from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, ValidationError) as error:
        problem = " ".join(str(error).split())[:200]
        raise PipelineError(
            f"{path}: not a saved model of format {FORMAT} ({problem}); "
            "fit and save it again with this version ('dvc repro')"
        ) from None
    if manifest.format != FORMAT:
        raise PipelineError(
            f"{path}: saved in format {manifest.format}, this version reads {FORMAT}; "
            "fit and save it again ('dvc repro')"
        )
    return manifest, arrays
