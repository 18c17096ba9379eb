"""The assign command: new customers placed with the committed centroids, on synthetic rows."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from segmentation.artifacts import PipelineError
from segmentation.config import validate_params
from segmentation.data.dataset import typed
from segmentation.embedding.chunks import local_encoder
from segmentation.embedding.encoders import TorchEncoder
from segmentation.model import assign, kmeans, outliers
from segmentation.model.ecod import ECODReference
from segmentation.model.segment_model import Customers, Embedding, SegmentModel
from segmentation.testing import synthetic
from segmentation.text import fit_writing, write_texts

ROOT = Path(__file__).resolve().parents[1]
PARAMS = validate_params({"k": 3, "kmeans": {"n_init": 2}})


@pytest.fixture(scope="module")
def trained(model, bank):
    """The segment model fitted on 150 synthetic customers' embeddings, as the pipeline fits it."""
    raw = synthetic.customers(150, seed=11)
    customers = typed(raw.loc[:, bank.text_columns].astype(str), bank)
    customers.index = pd.Index(raw.index.astype(str), name="customer_id")
    writing = fit_writing(customers, bank, "value")
    texts = write_texts(customers, bank, writing)["text"].tolist()
    vectors = TorchEncoder(model, PARAMS.embed.batch_size).encode(texts)
    fitted = SegmentModel(
        PARAMS.k, PARAMS.outliers.contamination, PARAMS.kmeans.n_init, seed=PARAMS.seed
    ).fit(vectors)
    fitted.segment_names = ["first", "second", "third"]
    fitted.embedding = Embedding(
        model=PARAMS.model, backend="torch", precision="fp32", dimension=384
    )
    fitted.customers = Customers(
        dataset="bank",
        dataset_file_sha256=sha256(ROOT / "datasets/bank.yaml"),
        text_writing=writing.to_json(),
    )
    return raw, customers, vectors, fitted


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_model_fits_as_the_stages_do(trained):
    """ECOD's flags are the outliers stage's (pyod's in place); KMeans's segments the kmeans
    stage's fit on the inliers."""
    _, customers, vectors, fitted = trained
    flags = outliers.detect_outliers(vectors, PARAMS.outliers.contamination, customers.index)
    assert np.array_equal(fitted.decision_scores_, flags["ecod_score"])
    assert np.array_equal(fitted.outlier_labels_, flags["outlier"])
    inliers = np.flatnonzero(flags["outlier"] == 0)
    labels, centroids, _ = kmeans.fit_segments(
        vectors[inliers], PARAMS.k, PARAMS.kmeans.n_init, PARAMS.seed
    )
    assert np.array_equal(fitted.labels_, labels)
    assert np.array_equal(fitted.cluster_centers_, centroids)


def test_assigning_the_training_customers_reproduces_their_segments_and_the_flag_rule(
    model, trained, bank
):
    _, customers, vectors, fitted = trained
    encoder = TorchEncoder(model, PARAMS.embed.batch_size)
    assigned = assign.assign(customers, encoder, bank, fitted)
    inliers = np.flatnonzero(fitted.outlier_labels_ == 0)
    assert assigned["customer_id"].tolist() == [str(i) for i in range(150)]
    assert (assigned.loc[inliers, "segment"].to_numpy() == fitted.labels_).all()
    # Assigned, a training customer is scored as a newcomer joining the reference, which already
    # holds it: it counts itself twice in each tail, so its score can only drop, a flag only clear.
    assert (assigned["ecod_score"] <= fitted.decision_scores_ + 1e-9).all()
    assert (assigned["outlier"] <= fitted.outlier_labels_).all()
    assert assigned.loc[inliers, "segment_name"].tolist() == [
        fitted.segment_names[s - 1] for s in fitted.labels_
    ]
    assert (assigned["centroid_distance"] >= 0).all()


def test_a_saved_model_loads_to_the_same_predictions_and_the_same_bytes(trained, tmp_path):
    _, _, vectors, fitted = trained
    fitted.save(tmp_path / "model.zip")
    loaded = SegmentModel.load(tmp_path / "model.zip")
    pd.testing.assert_frame_equal(loaded.predict(vectors), fitted.predict(vectors))
    loaded.save(tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == (tmp_path / "model.zip").read_bytes()
    manifest = json.loads(zipfile.ZipFile(tmp_path / "model.zip").read("manifest.json"))
    assert manifest["k"] == 3 and manifest["seed"] == PARAMS.seed
    assert manifest["contamination"] == PARAMS.outliers.contamination
    assert manifest["ecod_sample_rows"] == 150 and manifest["fitted_customers"] == 150
    assert manifest["embedding"]["model"] == PARAMS.model
    assert manifest["customers"]["dataset_file_sha256"] == sha256(ROOT / "datasets/bank.yaml")
    assert manifest["segment_names"] == ["first", "second", "third"]


def test_a_model_with_stable_numbers_predicts_them_with_their_names(trained, tmp_path):
    _, _, vectors, fitted = trained
    fitted.save(tmp_path / "model.zip")
    renumbered = SegmentModel.load(tmp_path / "model.zip")
    # fitted segment 1 kept adopted segment 2, 2 kept 1, and 3 is new: the next free number, 6
    renumbered.segment_numbers = [2, 1, 6]
    renumbered.save(tmp_path / "stable.zip")
    loaded = SegmentModel.load(tmp_path / "stable.zip")
    plain, stable = fitted.predict(vectors), loaded.predict(vectors)
    assert stable["segment"].tolist() == [{1: 2, 2: 1, 3: 6}[s] for s in plain["segment"]]
    assert stable["segment_name"].equals(plain["segment_name"])
    assert loaded.stable_numbers(np.array([3, 1])).tolist() == [6, 2]
    manifest = json.loads(zipfile.ZipFile(tmp_path / "stable.zip").read("manifest.json"))
    assert manifest["segment_numbers"] == [2, 1, 6]


def test_a_file_that_is_not_a_model_is_one_line(tmp_path):
    (tmp_path / "model.zip").write_text("not a zip")
    with pytest.raises(PipelineError, match=r"model.zip: not a saved model of format 1"):
        SegmentModel.load(tmp_path / "model.zip")
    with pytest.raises(PipelineError, match=r"missing.zip: not found; run 'dvc repro'"):
        SegmentModel.load(tmp_path / "missing.zip")


def test_new_customers_are_written_with_the_band_words_saved_at_training(trained, bank):
    """assign writes texts with the saved edges and words, not with ones fitted on the new file."""
    _, customers, vectors, fitted = trained
    # Without declared bands, the edges are the training customers' quintiles.
    bank = bank.model_copy(
        update={
            "columns": {
                name: spec.model_copy(update={"bands": None}) for name, spec in bank.columns.items()
            }
        }
    )
    saved = fit_writing(customers, bank, "band")
    banded = copy.copy(fitted)
    banded.customers = fitted.customers.model_copy(update={"text_writing": saved.to_json()})

    class RecordingEncoder:
        texts: list[str] = []

        def encode(self, texts):
            self.texts = list(texts)
            return vectors[: len(texts)]

    encoder, newcomers = RecordingEncoder(), customers.iloc[[3, 140, 77]]
    assign.assign(newcomers, encoder, bank, banded)
    training_texts = write_texts(customers, bank, saved)["text"]
    assert encoder.texts == training_texts.iloc[[3, 140, 77]].tolist()
    assert (
        encoder.texts
        != write_texts(newcomers, bank, fit_writing(newcomers, bank, "band"))["text"].tolist()
    )


def test_a_file_assigned_through_shards_is_assigned_as_in_memory(trained, bank, tmp_path):
    """Given in chunks of three and four, embedded into shards of four customers and predicted
    shard by shard, seven newcomers get the rows that the encoder and the model give them in
    memory, in their order. (Not training customers: a vector within float noise of a reference row
    can cross it in ECOD's ranks.)"""
    _, _, _, fitted = trained
    params = PARAMS.model_copy(update={"embed": PARAMS.embed.model_copy(update={"shard_rows": 4})})
    raw = synthetic.customers(7, seed=12)
    newcomers = typed(raw.loc[:, bank.text_columns].astype(str), bank)
    newcomers.index = pd.Index([f"N{row}" for row in range(7)], name="customer_id")
    chunks = [newcomers.iloc[:3], newcomers.iloc[3:]]  # read in chunks across a shard's end
    parts = list(assign.assign_in_shards(chunks, bank, fitted, params, tmp_path))
    assert [len(part) for part in parts] == [4, 3]
    encoder, _, _ = local_encoder(params.model, params.embed)
    expected = assign.assign(newcomers, encoder, bank, fitted)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), expected, atol=1e-5)


def test_nearest_segments_number_centroids_from_one():
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    segments, distances = kmeans.nearest_segments(
        np.array([[9.0, 1.0], [0.0, 8.0], [1.0, 0.0]], dtype=np.float32), centroids
    )
    assert segments.tolist() == [2, 3, 1]
    assert distances == pytest.approx([np.sqrt(2), 2.0, 1.0])


def test_a_far_customer_is_flagged_as_outlier():
    rng = np.random.default_rng(0)
    training = rng.normal(size=(500, 8))
    detector = ECODReference(training, 0.1)
    scores = detector.scores(np.vstack([np.zeros(8), np.full(8, 9.0)]))
    assert detector.flags(scores).tolist() == [0, 1] and scores[1] > scores[0]


@pytest.fixture
def project(tmp_path, trained):
    """A folder laid out like the repository after `dvc repro`, with the synthetic model in it."""
    raw, _, _, fitted = trained
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS.model_dump()))
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets")
    fitted.save(tmp_path / "data/bank/processed/segment_model.zip")
    # New customers come without the outcome column, which the pipeline only describes.
    (tmp_path / "new.csv").write_bytes(synthetic.to_uci_csv(raw.iloc[[5, 0, 7]].drop(columns="y")))
    return tmp_path


def saved_with_data_set_file(project: Path, fitted: SegmentModel) -> None:
    """The model saved again, as if fitted with the project's present data-set file."""
    refitted = copy.copy(fitted)
    refitted.customers = fitted.customers.model_copy(
        update={"dataset_file_sha256": sha256(project / "datasets/bank.yaml")}
    )
    refitted.save(project / "data/bank/processed/segment_model.zip")


def run_assign(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "stages.assign", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )


def test_command_writes_segments_for_a_csv_of_new_customers(project, trained):
    _, _, _, fitted = trained
    result = run_assign(project, "new.csv", "--dataset", "bank", "--out", "out/assigned.csv")
    assert result.returncode == 0, result.stderr
    assert "3 customers" in result.stdout and "0 rejected" in result.stdout
    written = pd.read_csv(project / "out/assigned.csv", keep_default_na=False)
    assert list(written.columns) == [
        "customer_id",
        "segment",
        "segment_name",
        "centroid_distance",
        "ecod_score",
        "outlier",
        "rejected",
    ]
    assert (written["rejected"] == "").all()
    pipeline = dict(zip(np.flatnonzero(fitted.outlier_labels_ == 0), fitted.labels_))
    for row, training_id in zip(written.itertuples(), (5, 0, 7)):
        assert row.customer_id == len(written[written.customer_id < row.customer_id])
        if training_id in pipeline:
            assert row.segment == pipeline[training_id]
        assert row.segment_name == fitted.segment_names[row.segment - 1]


def test_command_refuses_bad_rows_and_a_model_made_otherwise_without_writing(project):
    bad = (project / "new.csv").read_text().splitlines()
    bad[2] = bad[2].replace(bad[2].split(";")[0], "forty", 1)
    (project / "bad.csv").write_text("\n".join(bad) + "\n")
    result = run_assign(project, "bad.csv", "--out", "out.csv")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: assign: bad.csv: column 'age' is not a whole number on line(s) 3 (e.g. "
            "['forty'])"
        )
    )
    # New customers embedded in bf16 cannot be compared with a model fitted on fp32 vectors.
    params = yaml.safe_load((project / "params.yaml").read_text())
    bf16 = {**params, "embed": {**params["embed"], "precision": "bf16"}}
    (project / "params.yaml").write_text(yaml.safe_dump(bf16))
    result = run_assign(project, "new.csv", "--out", "out.csv")
    assert result.returncode == 1
    assert "fitted on vectors made with embed.precision 'fp32'" in result.stderr
    assert "params.yaml names 'bf16'" in result.stderr
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    # A data-set file edited since the fit may read or write the customers otherwise.
    spec = project / "datasets/bank.yaml"
    spec.write_text(spec.read_text().replace("Age:", "Age in years:", 1))
    result = run_assign(project, "new.csv", "--out", "out.csv")
    assert result.returncode == 1
    assert "datasets/bank.yaml has changed since" in result.stderr and "sha256" in result.stderr
    result = run_assign(project, "missing.csv", "--out", "out.csv")
    assert result.returncode == 1 and "missing.csv: not found" in result.stderr
    assert not (project / "out.csv").exists()


@pytest.mark.parametrize(
    ("column", "policy", "cell", "reason"),
    [
        ("balance", {"missing": "drop"}, "", "balance is blank"),
        ("age", {"invalid": "drop"}, "forty", "age 'forty' is not a whole number"),
        ("age", {"invalid": "drop"}, "150", "age 150 is outside 18..120"),
    ],
    ids=["blank cell", "not a number", "outside the range"],
)
def test_command_assigns_the_good_rows_and_writes_the_rejected_ones_with_their_reason(
    project, trained, column, policy, cell, reason
):
    spec = yaml.safe_load((project / "datasets/bank.yaml").read_text())
    spec["columns"][column].update(policy)
    (project / "datasets/bank.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    saved_with_data_set_file(project, trained[3])
    lines = (project / "new.csv").read_text().splitlines()
    header = [name.strip('"') for name in lines[0].split(";")]
    cells = lines[2].split(";")
    cells[header.index(column)] = cell
    lines[2] = ";".join(cells)
    (project / "gap.csv").write_text("\n".join(lines) + "\n")
    result = run_assign(project, "gap.csv", "--out", "out.csv")
    assert result.returncode == 0, result.stderr
    assert "2 customers" in result.stdout and "1 rejected" in result.stdout
    written = pd.read_csv(project / "out.csv", dtype=str, keep_default_na=False)
    assert written["customer_id"].tolist() == ["0", "2", "1"]
    assert written["rejected"].tolist() == ["", "", reason] and written["segment"].iloc[2] == ""
    assert (written["segment"].iloc[:2] != "").all()
