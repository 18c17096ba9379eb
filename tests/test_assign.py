"""The assign command: new customers placed with the committed centroids, on synthetic rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synthetic
import yaml

from stages import assign, kmeans, outliers
from stages.config import validate_params
from stages.dataset import typed
from stages.ecod import ECODReference
from stages.encoders import TorchEncoder
from stages.text import fit_writing, write_texts

ROOT = Path(__file__).resolve().parents[1]
PARAMS = validate_params({"k": 3, "kmeans": {"n_init": 2}})


@pytest.fixture(scope="module")
def trained(model, bank):
    """The pipeline's steps on 150 synthetic customers:
    embeddings, ECOD flags, segments, centroids."""
    raw = synthetic.customers(150, seed=11)
    customers = typed(raw.loc[:, bank.text_columns].astype(str), bank)
    customers.index = pd.Index(raw.index.astype(str), name="customer_id")
    texts = write_texts(customers, bank, fit_writing(customers, bank, "value"))["text"].tolist()
    vectors = TorchEncoder(model, PARAMS.embed.batch_size).encode(texts)
    flags = outliers.detect_outliers(
        vectors, PARAMS.outliers.contamination, customers.index.to_numpy()
    )
    inliers = np.flatnonzero(flags["inlier"] == 1)
    labels, centroids, _ = kmeans.fit_segments(
        vectors[inliers], PARAMS.k, PARAMS.kmeans.n_init, PARAMS.seed
    )
    return raw, customers, vectors, flags, inliers, labels, centroids


def test_assigning_the_training_customers_reproduces_their_labels_and_outlier_flags(
    model, trained, bank
):
    _, customers, vectors, flags, inliers, labels, centroids = trained
    names = {1: "first", 2: "second", 3: "third"}
    encoder = TorchEncoder(model, PARAMS.embed.batch_size)
    detector = ECODReference(vectors, PARAMS.outliers.contamination)
    stage_outliers = (1 - flags["inlier"]).to_numpy()
    # The reference scored in place is the outliers stage's ECOD: the same scores and flags.
    assert np.array_equal(detector.reference_scores, flags["ecod_score"])
    assert np.array_equal(detector.flags(detector.reference_scores), stage_outliers)
    writing = fit_writing(customers, bank, "value")
    assigned = assign.assign(customers, encoder, bank, writing, centroids, detector, names)
    assert assigned["customer_id"].tolist() == [str(i) for i in range(150)]
    assert (assigned.loc[inliers, "segment"].to_numpy() == labels).all()
    # Assigned, a training customer is scored as a newcomer joining the reference, which already
    # holds it: it counts itself twice in each tail, so its score can only drop, a flag only clear.
    assert (assigned["ecod_score"] <= flags["ecod_score"] + 1e-9).all()
    assert (assigned["outlier"] <= stage_outliers).all()
    assert assigned.loc[inliers, "segment_name"].tolist() == [names[s] for s in labels]
    assert (assigned["centroid_distance"] >= 0).all()


def test_new_customers_are_written_with_the_band_words_saved_at_training(trained, bank):
    """assign writes texts with the saved edges and words, not with ones fitted on the new file."""
    _, customers, vectors, _, _, _, centroids = trained
    # Without declared bands, the edges are the training customers' quintiles.
    bank = bank.model_copy(
        update={
            "columns": {
                name: spec.model_copy(update={"bands": None}) for name, spec in bank.columns.items()
            }
        }
    )
    saved = fit_writing(customers, bank, "band")

    class RecordingEncoder:
        texts: list[str] = []

        def encode(self, texts):
            self.texts = list(texts)
            return vectors[: len(texts)]

    encoder, newcomers = RecordingEncoder(), customers.iloc[[3, 140, 77]]
    assign.assign(newcomers, encoder, bank, saved, centroids, ECODReference(vectors, 0.1))
    training_texts = write_texts(customers, bank, saved)["text"]
    assert encoder.texts == training_texts.iloc[[3, 140, 77]].tolist()
    assert (
        encoder.texts
        != write_texts(newcomers, bank, fit_writing(newcomers, bank, "band"))["text"].tolist()
    )


def test_nearest_segments_number_centroids_from_one():
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    segments, distances = assign.nearest_segments(
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
def project(tmp_path, trained, bank):
    """A folder laid out like the repository after `dvc repro`, with the synthetic model in it."""
    raw, customers, vectors, _, _, _, centroids = trained
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS.model_dump()))
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets")
    for path, array in (
        ("data/bank/interim/embeddings.npy", vectors),
        ("data/bank/processed/centroids.npy", centroids),
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / path, array)
    (tmp_path / "data/bank/interim/embedding_info.json").write_text(
        json.dumps({"model": PARAMS.model, "dimension": 384, "rows": 150})
    )
    (tmp_path / "data/bank/interim/text_writing.json").write_text(
        json.dumps(fit_writing(customers, bank, "value").to_json())
    )
    (tmp_path / "reports/bank").mkdir(parents=True)
    pd.DataFrame({"segment": [1, 2, 3], "name": ["A", "B", "C"]}).to_csv(
        tmp_path / "reports/bank/profiles.csv", index=False
    )
    # New customers come without the outcome column, which the pipeline only describes.
    (tmp_path / "new.csv").write_bytes(synthetic.to_uci_csv(raw.iloc[[5, 0, 7]].drop(columns="y")))
    return tmp_path


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
    _, _, _, flags, inliers, labels, _ = trained
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
    pipeline = dict(zip(inliers, labels))
    for row, training_id in zip(written.itertuples(), (5, 0, 7)):
        assert row.customer_id == len(written[written.customer_id < row.customer_id])
        if training_id in pipeline:
            assert row.segment == pipeline[training_id]
        assert row.segment_name == "ABC"[row.segment - 1]


def test_command_refuses_bad_rows_and_stale_centroids_without_writing(project):
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
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "k": 4}))
    result = run_assign(project, "new.csv", "--out", "out.csv")
    assert (
        result.returncode == 1 and "holds 3 centroids" in result.stderr and "k=4" in result.stderr
    )
    # Embeddings made in bf16 cannot be matched by new customers embedded in fp32.
    info = project / "data/bank/interim/embedding_info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "precision": "bf16"}))
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_assign(project, "new.csv", "--out", "out.csv")
    assert result.returncode == 1 and "made with embed.precision 'bf16'" in result.stderr
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
    project, column, policy, cell, reason
):
    spec = yaml.safe_load((project / "datasets/bank.yaml").read_text())
    spec["columns"][column].update(policy)
    (project / "datasets/bank.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
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
