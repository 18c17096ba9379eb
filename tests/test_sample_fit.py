"""Fit on a sample, assign the rest: streaming ECOD, streamed scores, stages above the threshold."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from pyod.models.ecod import ECOD
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score

import stages.elbow
import stages.evaluate
import stages.kmeans
import stages.lineage
import stages.outliers
import stages.project
import stages.stability
from segmentation import cluster
from segmentation.artifacts import (
    PipelineError,
    read_csv,
    read_json,
    read_npy,
    write_csv,
    write_csv_chunks,
)
from segmentation.config import layout, load_params
from segmentation.data.dataset import read_customers
from segmentation.embedding.shards import read_vectors, write_matrix
from segmentation.evaluation import scores, stability
from segmentation.evaluation import validity as scoring
from segmentation.lineage import join
from segmentation.lineage.migration import customer_moves
from segmentation.lineage.reference import Reference, save_reference
from segmentation.lineage.tracking import track, tracked
from segmentation.model import kmeans
from segmentation.model.ecod import ECODReference
from segmentation.model.sampling import (
    MatrixRows,
    read_segmented_sample,
    sample_inlier_rows,
    sample_inliers,
    sample_rows,
)
from segmentation.model.segment_model import OutlierDetector, SegmentModel
from segmentation.reporting import profile, tallies
from segmentation.testing import synthetic
from segmentation.testing.project_copy import copy_project

# --- streaming ECOD -----------------------------------------------------------------------------


def awkward_matrix(rows: int, dtype) -> np.ndarray:
    """Random columns with ties, a constant column, skew both ways and repeated rows."""
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(rows, 12))
    matrix[:, 1] = np.round(matrix[:, 1])
    matrix[:, 2] = 1.0
    matrix[:, 3] = rng.exponential(size=rows)
    matrix[:, 4] = -rng.exponential(size=rows)
    matrix[10:40] = matrix[0]
    return matrix.astype(dtype)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_scored_in_place_is_pyods_ecod_exactly(dtype):
    matrix = awkward_matrix(600, dtype)
    fitted = ECOD(contamination=0.1, n_jobs=1).fit(matrix)
    detector = ECODReference(matrix, 0.1)
    assert np.array_equal(detector.reference_scores, fitted.decision_scores_)
    assert detector.threshold == fitted.threshold_
    assert np.array_equal(detector.flags(detector.reference_scores), fitted.labels_)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
def test_a_new_row_scores_as_if_it_alone_joined_the_reference():
    reference = awkward_matrix(600, np.float64)
    newcomers = np.random.default_rng(1).normal(size=(4, 12))
    newcomers[0] = reference[5]  # ties with the reference
    detector = ECODReference(reference, 0.1)
    for row in newcomers:
        joined = ECOD(contamination=0.1, n_jobs=1).fit(np.vstack([reference, row]))
        expected = joined.decision_scores_[-1]
        assert detector.scores(row[None])[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
def test_scores_do_not_depend_on_how_rows_are_batched(tmp_path, monkeypatch):
    detector = ECODReference(awkward_matrix(600, np.float32), 0.1)
    rows = np.random.default_rng(2).normal(size=(1000, 12)).astype(np.float32)
    whole = detector.scores(rows)
    cuts = [0, 1, 8, 333, 334, 900, 1000]
    pieces = np.concatenate([detector.scores(rows[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert np.array_equal(whole, pieces)
    monkeypatch.setattr("segmentation.model.ecod.BLOCK_ROWS", 7)
    np.save(tmp_path / "rows.npy", rows)
    assert np.array_equal(detector.scores(np.load(tmp_path / "rows.npy", mmap_mode="r")), whole)


# --- streamed validity scores -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """20,000 rows (more than two blocks) of a mixture on disk, a subset of them and its labels."""
    folder = tmp_path_factory.mktemp("mapped")
    synthetic.write_embedding_stand_ins(
        folder,
        20_000,
        dimension=12,
        centers=5,
        spread=0.9,
        seed=4,
        block_rows=2000,
        shard_rows=6000,
    )
    matrix = read_vectors(folder / "embeddings")  # four shards, the last a partial one
    positions = np.flatnonzero(np.random.default_rng(5).random(len(matrix)) < 0.9)
    in_memory = np.asarray(matrix)[positions].astype(np.float64)
    labels = kmeans.fit_segments(in_memory, 4, 1, 0)[0]
    return MatrixRows(matrix, positions), in_memory, labels


def test_blocks_of_a_mapped_matrix_are_its_rows_in_order(mapped):
    rows, in_memory, _ = mapped
    blocks = list(rows.blocks(3000))
    assert [span.start for span, _ in blocks] == [0] + [span.stop for span, _ in blocks[:-1]]
    together = np.concatenate([block for _, block in blocks])
    assert np.array_equal(together, in_memory.astype(np.float32))
    picked = np.array([0, 7, 4095, 8192, len(rows) - 1])
    assert np.array_equal(rows.take(picked), in_memory[picked].astype(np.float32))
    shuffled = np.array([8192, 7, len(rows) - 1, 0, 7, 6001])  # any order, repeats, across shards
    assert np.array_equal(rows.take(shuffled), in_memory[shuffled].astype(np.float32))


@pytest.fixture
def scored_project(mapped, tmp_path, monkeypatch):
    """A data set folder whose embeddings are ``mapped``'s four shards, with its rows outside the
    subset flagged as outliers and the subset's labels; the working directory is its root."""
    rows, _, labels = mapped
    interim = tmp_path / "data/bank/interim"
    shutil.copytree(rows.matrix.folder, interim / "embeddings")
    ids = np.array([f"C{row:05d}" for row in range(len(rows.matrix))])
    flags = np.ones(len(ids), dtype=np.int8)
    flags[rows.positions] = 0
    write_csv(interim / "outliers.csv", pd.DataFrame({"customer_id": ids, "outlier": flags}))
    labelled = pd.DataFrame({"customer_id": ids[rows.positions], "segment": labels})
    write_csv(tmp_path / "data/bank/processed/labels.csv", labelled)
    monkeypatch.chdir(tmp_path)
    return layout("bank")


@pytest.mark.parametrize("silhouette_max_rows", [500, 20_000])
def test_scores_over_the_shards_are_the_in_memory_ones(mapped, scored_project, silhouette_max_rows):
    """The two reductions over four shards give sklearn's Davies-Bouldin and Calinski-Harabasz and
    the in-memory silhouette: the same seeded estimate, or the exact value below the sample size."""
    _, in_memory, labels = mapped
    sharded = scores.sharded_validity_scores(scored_project, "local", silhouette_max_rows, seed=3)
    (held,) = scoring.cluster_metrics(in_memory, [labels], silhouette_max_rows, seed=3)
    assert sharded["silhouette_sampled"] == held["silhouette_sampled"]
    assert sharded["davies_bouldin"] == pytest.approx(davies_bouldin_score(in_memory, labels))
    assert sharded["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(in_memory, labels))
    for key in ("silhouette", "silhouette_ci95"):  # the same estimate, centred by another summation
        assert sharded[key] == pytest.approx(held[key], rel=1e-5, abs=1e-12)
    for key in ("davies_bouldin", "calinski_harabasz"):
        assert sharded[key] == pytest.approx(held[key], rel=1e-9)


def test_scores_over_the_shards_take_any_segment_values(mapped, scored_project):
    _, _, labels = mapped
    numbered = scores.sharded_validity_scores(scored_project, "local", 500, seed=3)
    named = pd.read_csv(scored_project.labels).assign(
        segment=np.array(["a", "b", "c", "d"])[labels - 1]
    )
    write_csv(scored_project.labels, named)
    assert scores.sharded_validity_scores(scored_project, "local", 500, seed=3) == numbered


def test_chunked_csv_is_the_csv_of_the_whole_frame(tmp_path):
    frame = pd.DataFrame({"customer_id": ["007", "NA", "x"], "score": [1 / 3, 2.5e-9, 12345678.9]})
    write_csv(tmp_path / "whole.csv", frame)
    pieces = (frame.iloc[a:b] for a, b in ((0, 1), (1, 1), (1, 3)))  # an empty one among them
    write_csv_chunks(tmp_path / "chunks.csv", pieces)
    assert (tmp_path / "chunks.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_a_failed_chunked_write_leaves_no_file(tmp_path):
    def frames():
        yield pd.DataFrame({"a": [1]})
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_csv_chunks(tmp_path / "out.csv", frames())
    assert list(tmp_path.iterdir()) == []


# --- the stages above the threshold -------------------------------------------------------------

CUSTOMERS, THRESHOLD = 6000, 1500
PROJECT_FILES = ("datasets", "params.yaml")
# (mixture centres, spread) of the stand-in vectors, segmented at k = 6
SHAPES = {"separated": (6, 0.9), "overlapping": (10, 1.2)}


def project(folder, sample_fit_rows: int, centers: int, spread: float):
    """A project folder with one data set of embedding stand-ins and small-work params."""
    copy_project(folder, PROJECT_FILES)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params.update(datasets=["bank"], k=6, sample_fit_rows=sample_fit_rows, silhouette_max_rows=800)
    params["elbow"].update(k_max=7, n_init=1)
    params["kmeans"].update(n_init=3)
    params["evaluate"].update(map_points=200)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    interim = folder / "data/bank/interim"
    synthetic.write_embedding_stand_ins(
        interim, CUSTOMERS, dimension=16, centers=centers, spread=spread, seed=8, block_rows=1000
    )
    info = {"model": params["model"], "rows": CUSTOMERS}
    (interim / "embedding_info.json").write_text(json.dumps(info))
    return folder


def run_stages(folder, monkeypatch) -> None:
    """outliers, elbow, kmeans and evaluate in ``folder`` (the maps get stand-in coordinates)."""
    monkeypatch.chdir(folder)
    paths = layout("bank")
    stages.outliers.main("bank")
    stages.elbow.main("bank")
    stages.kmeans.main("bank")
    labels = pd.read_csv(paths.labels, dtype={"customer_id": str})
    coordinates = np.random.default_rng(0).normal(size=(len(labels), 4))
    maps = pd.DataFrame(coordinates, columns=["pca_1", "pca_2", "tsne_1", "tsne_2"])
    write_csv(paths.projections, maps.assign(customer_id=labels["customer_id"]))
    stages.evaluate.main("bank")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The folder where the stages ran on data of a shape with a threshold, each run once."""
    folders = {}

    def folder(shape: str, sample_fit_rows: int):
        if (shape, sample_fit_rows) not in folders:
            with pytest.MonkeyPatch.context() as monkeypatch:
                made = project(tmp_path_factory.mktemp(shape), sample_fit_rows, *SHAPES[shape])
                run_stages(made, monkeypatch)
            folders[shape, sample_fit_rows] = made
        return folders[shape, sample_fit_rows]

    return folder


@pytest.fixture
def sample_fitted(fitted):
    return fitted("overlapping", THRESHOLD)


@pytest.fixture
def fully_fitted(fitted):
    return fitted("overlapping", CUSTOMERS)


def read(folder, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype={"customer_id": str}, keep_default_na=False)


def metrics(folder, stage: str) -> dict:
    return yaml.safe_load((folder / f"metrics/bank/{stage}.json").read_text())


def in_four_shards(folder) -> None:
    """The folder's embeddings rewritten as four shards."""
    embeddings = folder / "data/bank/interim/embeddings"
    vectors = np.asarray(read_vectors(embeddings))
    ids = read(folder, "data/bank/interim/texts.csv")["customer_id"].tolist()
    shutil.rmtree(embeddings)
    write_matrix(embeddings, vectors, ids, shard_rows=CUSTOMERS // 4 + 10)


def test_ray_scores_and_labels_every_customer_as_this_process_does(
    sample_fitted, tmp_path, monkeypatch
):
    """Above the threshold with ``engine: ray`` (a local 2-CPU Ray, a task per shard, four shards
    here, where this process read one), the outliers and kmeans stages write this process's flags,
    detector, labels, centroids and metrics byte for byte, and evaluate its scores (summed in
    another order)."""
    import ray

    copy = tmp_path / "on-ray"
    shutil.copytree(sample_fitted, copy)
    in_four_shards(copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    (copy / "params.yaml").write_text(yaml.safe_dump({**params, "engine": "ray"}, sort_keys=False))
    monkeypatch.chdir(copy)
    owned = cluster.start_ray(num_cpus=2)
    try:
        stages.outliers.main("bank")
        stages.kmeans.main("bank")
        stages.evaluate.main("bank")
    finally:
        if owned:
            ray.shutdown()
    for name in (
        "data/bank/interim/outliers.csv",
        "data/bank/interim/outlier_detector.zip",
        "metrics/bank/outliers.json",
        "data/bank/processed/labels.csv",
        "data/bank/processed/centroids.npy",
        "metrics/bank/kmeans.json",
    ):
        assert (copy / name).read_bytes() == (sample_fitted / name).read_bytes(), name
    on_ray, here = metrics(copy, "evaluate"), metrics(sample_fitted, "evaluate")
    assert on_ray == pytest.approx(here, rel=1e-5) and on_ray["silhouette_sampled"] == 1


def copied_with_customers(fitted_folder, copy) -> pd.DataFrame:
    """The fitted folder copied, with a stand-in customer table under its ids (returned)."""
    shutil.copytree(fitted_folder, copy)
    table = synthetic.customers(CUSTOMERS, seed=5)
    table.insert(0, "customer_id", read(copy, "data/bank/interim/texts.csv")["customer_id"])
    write_csv(copy / "data/bank/interim/customers.csv", table)
    return table


def test_ray_tallies_the_profile_this_process_tallies(sample_fitted, tmp_path, monkeypatch, bank):
    """Above the threshold, a local 2-CPU Ray's tallies over four shards give the profile, the
    differences and the shares by band that this process's tallies over one shard give; and the
    sizes, means, most frequent values and outcome rates are those of the customer table held
    whole."""
    import ray

    copy = tmp_path / "profiled"
    copied_with_customers(sample_fitted, copy)
    monkeypatch.chdir(copy)
    paths, params = layout("bank"), load_params()
    labels = read_csv(paths.labels)
    numbers = {int(fitted): 10 + int(fitted) for fitted in labels["segment"].unique()}
    sample = read_customers(
        paths.customers, bank, sample_inlier_rows(paths, THRESHOLD, params.seed).rows
    )
    here = tallies.profile_tallies(paths, bank, numbers, sample, "local")
    in_four_shards(copy)
    owned = cluster.start_ray(num_cpus=2)
    try:
        on_ray = tallies.profile_tallies(paths, bank, numbers, sample, "ray")
    finally:
        if owned:
            ray.shutdown()

    def read_out(found):
        differences = profile.value_differences(found, bank)
        return (
            profile.profile(found, bank, differences, {}),
            differences,
            profile.representation(found, bank),
        )

    for ours, theirs in zip(read_out(on_ray), read_out(here)):
        pd.testing.assert_frame_equal(ours, theirs, rtol=1e-9)
    assert profile.base_values(on_ray, bank) == pytest.approx(profile.base_values(here, bank))
    customers = read_customers(paths.customers, bank)
    inliers = read_csv(paths.outliers)["outlier"].to_numpy() == 0
    whole = tallies.SegmentTallies.of(customers[inliers], labels["segment"].map(numbers), bank)
    pd.testing.assert_frame_equal(read_out(here)[0], read_out(whole)[0], rtol=1e-9)
    assert here.kept == CUSTOMERS and here.segments == sorted(numbers.values())
    assert here.outcome_overall("y_yes_rate") == pytest.approx(customers["y"].eq("yes").mean())


def test_a_customer_table_out_of_order_is_one_line(sample_fitted, tmp_path, monkeypatch, bank):
    copy = tmp_path / "swapped"
    shutil.copytree(sample_fitted, copy)
    table = synthetic.customers(CUSTOMERS, seed=5)
    table.insert(0, "customer_id", read(copy, "data/bank/interim/texts.csv")["customer_id"])
    write_csv(copy / "data/bank/interim/customers.csv", table.iloc[[1, 0, *range(2, CUSTOMERS)]])
    monkeypatch.chdir(copy)
    sample = read_customers(copy / "data/bank/interim/customers.csv", bank)
    found = r"customers.csv does not list the customers of .*outliers.csv in order"
    with pytest.raises(PipelineError, match=found):
        tallies.profile_tallies(layout("bank"), bank, None, sample, "local")


def test_every_customer_gets_a_flag_and_every_inlier_a_segment(sample_fitted):
    flags = read(sample_fitted, "data/bank/interim/outliers.csv")
    labels = read(sample_fitted, "data/bank/processed/labels.csv")
    assert flags["customer_id"].tolist() == [f"C{i:08d}" for i in range(CUSTOMERS)]
    assert set(flags["outlier"]) == {0, 1} and 0.07 < flags["outlier"].mean() < 0.13
    assert (
        labels["customer_id"].tolist() == flags.loc[flags["outlier"] == 0, "customer_id"].tolist()
    )
    sizes = labels["segment"].value_counts().sort_index()
    assert sizes.index.tolist() == [1, 2, 3, 4, 5, 6] and sizes.is_monotonic_decreasing
    assert metrics(sample_fitted, "outliers")["fit_sample_rows"] == THRESHOLD
    assert metrics(sample_fitted, "kmeans")["fit_sample_rows"] == THRESHOLD
    assert metrics(sample_fitted, "evaluate")["silhouette_sampled"] == 1


def test_above_the_threshold_stability_measures_the_sample_kmeans_fits_on(
    sample_fitted, tmp_path, monkeypatch
):
    """The near tie polishes the refits on kmeans' sample of inliers, not on every inlier: the
    committed segments' gap is their inertia on that sample against the best candidate's."""
    copy = tmp_path / "stability"
    shutil.copytree(sample_fitted, copy)
    monkeypatch.chdir(copy)
    paths = layout("bank")
    vectors, segments = read_segmented_sample(paths, THRESHOLD, 42)
    fitted = sample_inliers(paths, THRESHOLD, 42)
    labels = read(copy, "data/bank/processed/labels.csv")
    assert np.array_equal(vectors, fitted.vectors)
    assert segments.tolist() == labels["segment"].to_numpy()[fitted.positions].tolist()
    stages.stability.main("bank")
    found = metrics(copy, "stability")
    committed = stability.partition_inertia(vectors, segments)
    gap = found["committed_inertia_gap_pct"]
    assert found["best_inertia"] == pytest.approx(committed / (1 + gap / 100), rel=1e-5)
    write_csv(paths.labels, labels.drop(index=7))
    with pytest.raises(PipelineError, match=r"labels.csv does not list the inliers of"):
        read_segmented_sample(paths, THRESHOLD, 42)


def test_the_segment_model_reproduces_the_stages_flags_and_segments(sample_fitted, monkeypatch):
    """Above sample_fit_rows every customer is scored against the saved sample: the model
    assembled from the stages' outputs gives their scores, flags and segments exactly."""
    monkeypatch.chdir(sample_fitted)
    params, paths = load_params(), layout("bank")
    detector = OutlierDetector.load(paths.outlier_detector)
    assert detector.fit_rows == THRESHOLD
    model = SegmentModel.assembled(
        detector, np.load(paths.centroids), params.kmeans.n_init, CUSTOMERS, THRESHOLD
    )
    matrix = read_vectors(paths.embeddings)
    flags = read(sample_fitted, "data/bank/interim/outliers.csv")
    assigned = model.predict(np.asarray(matrix))
    assert assigned["outlier"].tolist() == flags["outlier"].tolist()
    assert np.allclose(assigned["ecod_score"], flags["ecod_score"], rtol=1e-5)  # %.6g in csv
    labels = read(sample_fitted, "data/bank/processed/labels.csv")
    inliers = flags["outlier"].to_numpy() == 0
    assert assigned.loc[inliers, "segment"].tolist() == labels["segment"].tolist()
    assert assigned["segment"].between(1, 6).all()  # outliers get their nearest segment too


def test_below_the_threshold_the_stages_fit_on_everyone(fully_fitted):
    vectors = np.asarray(read_vectors(fully_fitted / "data/bank/interim/embeddings"))
    reference = ECOD(contamination=0.1, n_jobs=1).fit(vectors)
    flags = read(fully_fitted, "data/bank/interim/outliers.csv")
    assert flags["outlier"].tolist() == reference.labels_.tolist()
    assert "fit_sample_rows" not in metrics(fully_fitted, "outliers")
    assert "fit_sample_rows" not in metrics(fully_fitted, "kmeans")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_sample_fit_agrees_with_the_full_fit_as_well_as_two_seeds_of_the_full_fit(fitted, shape):
    sample_fitted, fully_fitted = fitted(shape, THRESHOLD), fitted(shape, CUSTOMERS)
    sample = read(sample_fitted, "data/bank/processed/labels.csv")
    full = read(fully_fitted, "data/bank/processed/labels.csv")
    common = sample.merge(full, on="customer_id", suffixes=("_sample", "_full"))
    sample_ari = adjusted_rand_score(common["segment_full"], common["segment_sample"])
    inliers = np.asarray(read_vectors(fully_fitted / "data/bank/interim/embeddings"))[
        read(fully_fitted, "data/bank/interim/outliers.csv")["outlier"].to_numpy() == 0
    ]
    params = load_params(fully_fitted / "params.yaml")
    seeds = [
        kmeans.fit_segments(inliers, params.k, params.kmeans.n_init, seed)[0]
        for seed in (42, 43, 44)
    ]
    seed_aris = [adjusted_rand_score(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1 :]]
    print(
        f"\n{shape}: sample fit ({THRESHOLD} of {CUSTOMERS} customers) vs full fit: "
        f"ARI {sample_ari:.3f} on {len(common)} common inliers; full fit seed to seed: "
        f"ARI {min(seed_aris):.3f}-{max(seed_aris):.3f}"
    )
    assert sample_ari >= min(seed_aris) - 0.05


def test_the_sample_is_seeded_and_all_rows_below_its_size():
    assert np.array_equal(sample_rows(100, 10, 7), sample_rows(100, 10, 7))
    assert not np.array_equal(sample_rows(100, 10, 7), sample_rows(100, 10, 8))
    drawn = sample_rows(100, 10, 7)
    assert len(np.unique(drawn)) == 10 and np.all(np.diff(drawn) > 0)
    assert np.array_equal(sample_rows(10, 10, 7), np.arange(10))


def test_a_sample_of_billions_of_rows_holds_the_sample_only():
    rows = 10**12  # a shuffle of every position would need 8 TB
    drawn = sample_rows(rows, 1_000, 7)
    assert len(np.unique(drawn)) == 1_000 and np.all(np.diff(drawn) > 0)
    assert drawn[0] >= 0 and drawn[-1] < rows
    assert np.array_equal(drawn, sample_rows(rows, 1_000, 7))
    assert not np.array_equal(drawn, sample_rows(rows, 1_000, 8))


def test_above_the_threshold_pca_places_every_inlier_and_tsne_maps_a_sample(
    sample_fitted, tmp_path, monkeypatch
):
    copy = tmp_path / "projected"
    shutil.copytree(sample_fitted, copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["project"].update(tsne_rows=500, tsne_perplexity=10)
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(copy)
    stages.project.main("bank")
    projections = read_csv(copy / "data/bank/interim/projections.csv")  # empty cells are NaN
    labels = read(copy, "data/bank/processed/labels.csv")
    assert projections["customer_id"].tolist() == labels["customer_id"].tolist()
    assert projections[["pca_1", "pca_2", "pca_3"]].notna().all().all()
    mapped = projections["tsne_1"].notna()
    assert mapped.sum() == 500 and mapped.equals(projections["tsne_2"].notna())
    assert metrics(copy, "project")["fit_sample_rows"] == THRESHOLD
    assert metrics(copy, "project")["tsne_map_rows"] == 500
    stages.evaluate.main("bank")  # the maps are the t-SNE sample's
    assert len(read(copy, "plots/bank/tsne_map.csv")) == 200  # evaluate.map_points of the 500


def test_labels_that_miss_an_inlier_are_one_line(fully_fitted, tmp_path, monkeypatch):
    copy = tmp_path / "stale"
    shutil.copytree(fully_fitted, copy)
    for name in ("data/bank/processed/labels.csv", "data/bank/interim/projections.csv"):
        write_csv(copy / name, read_csv(copy / name).iloc[1:])
    monkeypatch.chdir(copy)
    with pytest.raises(PipelineError, match=r"labels.csv does not list the inliers of .*outliers"):
        stages.evaluate.main("bank")


def adopted_before(copy, monkeypatch) -> tuple[Reference, pd.Series]:
    """A reference for the fitted copy as a month earlier: 400 of today's customers not yet
    there, 300 since gone, segments renumbered and 5% of customers elsewhere, centroids in
    another order; written to ``references/bank`` in three chunks."""
    monkeypatch.chdir(copy)
    paths = layout("bank")
    labels = read_csv(paths.labels).set_index("customer_id")["segment"]
    flags = read_csv(paths.outliers)
    rng = np.random.default_rng(9)
    renumbered = {1: 3, 2: 1, 3: 6, 4: 2, 5: 4, 6: 5}
    then = labels.map(renumbered)
    moved = rng.random(len(then)) < 0.05
    then[moved] = rng.integers(1, 7, moved.sum())
    outliers = flags.loc[flags["outlier"] == 1, "customer_id"]
    then = pd.concat([then, pd.Series(rng.integers(1, 7, len(outliers)), index=outliers)])
    then = then.drop(rng.choice(labels.index, 400, replace=False))
    gone = pd.Series(rng.integers(1, 7, 300), index=[f"gone{i:03d}" for i in range(300)])
    then = pd.concat([then.sample(frac=1.0, random_state=2), gone]).astype(np.int64)
    order = [renumbered[fitted] for fitted in range(1, 7)]
    reference = Reference(
        [2, 4, 1, 5, 6, 3],
        ["Two", "Four", "One", "Five", "Six", "Three"],
        read_npy(paths.centroids)[[order.index(number) for number in [2, 4, 1, 5, 6, 3]]],
        read_json(paths.embedding_info)["model"],
        "y_yes_rate",
        [0.2, 0.4, 0.1, 0.5, 0.6, 0.3],
    )
    chunks = [then.iloc[:2000], then.iloc[2000:4100], then.iloc[4100:]]
    save_reference(paths.reference, reference, chunks)
    return reference, then


def test_lineage_joined_in_buckets_here_and_on_ray_is_lineage_in_memory(
    sample_fitted, tmp_path, monkeypatch, bank
):
    """The lineage stage joins the reference and the fit by id in buckets (10 here, chunks of 500
    rows) and gives what ``track`` gives on both held whole: numbers, transitions, migration,
    changes with the outcome, and every customer's move in order; a local 2-CPU Ray over four
    shards gives the same, and the buckets' folder is gone afterwards."""
    import ray

    copy = tmp_path / "followed"
    table = copied_with_customers(sample_fitted, copy)
    reference, then = adopted_before(copy, monkeypatch)
    paths, params = layout("bank"), load_params()
    labels = read_csv(paths.labels).set_index("customer_id")["segment"]
    present = pd.Index(read_csv(paths.outliers)["customer_id"])
    vectors = pd.DataFrame(np.asarray(read_vectors(paths.embeddings)), index=present)
    outcome = pd.Series(table["y"].eq("yes").astype(float).to_numpy(), index=present)
    expected = track(
        reference,
        then,
        labels,
        lambda ids: vectors.loc[ids].to_numpy(),
        read_npy(paths.centroids),
        reference.embedding_model,
        present,
        params.lineage,
        outcome,
    )
    kinds = {transition.kind for transition in expected.lineage.transitions}
    assert expected.compared == CUSTOMERS and kinds == {"kept"}
    expected_moves = customer_moves(then, expected.lineage.stable(labels)).rename_axis(
        "customer_id"
    )
    monkeypatch.setattr(join, "BUCKET_ROWS", 600)
    monkeypatch.setattr(join, "CHUNK_ROWS", 500)

    def followed(engine: str):
        with join.joined_by_id(
            paths,
            bank,
            "y",
            reference,
            read_npy(paths.centroids),
            reference.embedding_model,
            engine,
        ) as joined:
            assert joined.plan.buckets == 10
            found = tracked(reference, joined.counts, params.lineage, with_outcome=True)
            return found, pd.concat(joined.moves(found.lineage.numbers))

    def assert_same(found, moves):
        assert found.lineage == expected.lineage and found.compared == expected.compared
        pd.testing.assert_frame_equal(found.migration, expected.migration)
        pd.testing.assert_frame_equal(found.changes, expected.changes, rtol=1e-12)
        pd.testing.assert_frame_equal(moves, expected_moves)

    assert_same(*followed("local"))
    in_four_shards(copy)
    owned = cluster.start_ray(num_cpus=2)
    try:
        assert_same(*followed("ray"))
    finally:
        if owned:
            ray.shutdown()
    assert not list(paths.embeddings.parent.glob(".lineage-join-*"))
    stages.lineage.main("bank")
    write_csv(tmp_path / "moves.csv", expected_moves.reset_index())
    assert paths.segment_moves.read_bytes() == (tmp_path / "moves.csv").read_bytes()


def test_a_reference_listing_a_customer_twice_is_one_line(sample_fitted, tmp_path, monkeypatch):
    copy = tmp_path / "twice"
    copied_with_customers(sample_fitted, copy)
    reference, then = adopted_before(copy, monkeypatch)
    save_reference(layout("bank").reference, reference, [then, then.iloc[[7]]])
    with pytest.raises(PipelineError, match=r"segments.csv lists customer '.+' more than once"):
        stages.lineage.main("bank")
    assert not (copy / "data/bank/processed/segment_moves.csv").exists()
    assert not list((copy / "data/bank/interim").glob(".lineage-join-*"))
