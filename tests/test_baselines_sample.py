"""The article's baselines above ``sample_fit_rows``: Method 1, K-Prototypes and the MCA fit on a
seeded sample and give every customer a flag and every inlier a segment, a chunk at a time."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

import stages.kprototypes
import stages.kprototypes_cost
import stages.mca
import stages.tabular
from segmentation.artifacts import PipelineError, read_csv, read_json, read_npy, write_csv
from segmentation.baselines import kprototypes, tabular
from segmentation.baselines.kprototypes_engine import fit_kprototypes
from segmentation.config import layout, load_params
from segmentation.data import dataset as customer_table
from segmentation.data.dataset import read_customers
from segmentation.model import sampling
from segmentation.model.outliers import detect_outliers
from segmentation.model.sampling import sample_flagged_rows, sample_rows
from segmentation.testing import synthetic
from segmentation.testing.project_copy import copy_project

CUSTOMERS = 1500
SAMPLE = 400
K = 3
OUTPUTS = (
    "data/bank/interim/tabular.npy",
    "data/bank/interim/tabular_outliers.csv",
    "data/bank/processed/tabular_labels.csv",
    "data/bank/interim/mca.csv",
    "data/bank/processed/kprototypes_labels.csv",
    "metrics/bank/tabular.json",
    "metrics/bank/mca.json",
    "metrics/bank/kprototypes.json",
    "plots/bank/kprototypes_cost.csv",
)


def project(folder, sample_fit_rows: int):
    """A project folder with a bank customer table of CUSTOMERS rows and small-work params."""
    copy_project(folder, ("datasets", "params.yaml"))
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params.update(datasets=["bank"], k=K, sample_fit_rows=sample_fit_rows, silhouette_max_rows=800)
    params["comparison"]["tabular"].update(n_init=2)
    params["comparison"]["kprototypes"].update(k_max=4)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    table = synthetic.customers(CUSTOMERS, seed=3)
    table.insert(0, "customer_id", [f"c{i:05d}" for i in range(CUSTOMERS)])
    write_csv(folder / "data/bank/interim/customers.csv", table)
    return folder


def run_baselines(folder, monkeypatch, chunk_rows: int = 256) -> None:
    """The four baseline stages, with the customer table and the stages' CSVs read in chunks of
    ``chunk_rows``."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(customer_table, "CUSTOMER_CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(kprototypes, "CUSTOMER_CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(sampling, "BLOCK_ROWS", chunk_rows)
    for stage in (stages.tabular, stages.kprototypes_cost, stages.mca, stages.kprototypes):
        stage.main("bank")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The folder where the baselines ran with a sample_fit_rows, each once."""
    folders = {}

    def folder(sample_fit_rows: int):
        if sample_fit_rows not in folders:
            made = project(tmp_path_factory.mktemp(f"sample{sample_fit_rows}"), sample_fit_rows)
            with pytest.MonkeyPatch.context() as monkeypatch:
                run_baselines(made, monkeypatch)
            folders[sample_fit_rows] = made
        return folders[sample_fit_rows]

    return folder


def segment_sizes(labels: pd.DataFrame) -> np.ndarray:
    return np.bincount(labels["segment"], minlength=K + 1)[1:]


def test_every_customer_is_flagged_and_every_inlier_segmented(ran, monkeypatch):
    folder = ran(SAMPLE)
    monkeypatch.chdir(folder)
    paths = layout("bank")
    ids = read_csv(paths.customers, usecols=["customer_id"])["customer_id"]
    flags = read_csv(paths.tabular_outliers)
    assert flags["customer_id"].equals(ids) and set(flags["outlier"]) == {0, 1}
    metrics = read_json(paths.metrics / "tabular.json")
    assert read_npy(paths.tabular_matrix).shape == (CUSTOMERS, metrics["columns"])
    inliers = flags.loc[flags["outlier"] == 0, "customer_id"].reset_index(drop=True)
    assert len(inliers) > SAMPLE
    for path in (paths.tabular_labels, paths.kprototypes_labels):
        labels = read_csv(path)
        assert labels["customer_id"].equals(inliers), path
        sizes = segment_sizes(labels)
        assert sizes.min() > 0 and np.all(np.diff(sizes) <= 0), path  # 1 = largest
    assert metrics["inliers"] == len(inliers)
    # each stage says its metrics are those of a sample, and of how many
    for stage in ("tabular", "kprototypes", "mca"):
        assert read_json(paths.metrics / f"{stage}.json")["fit_sample_rows"] == SAMPLE, stage
    # the MCA map is fitted on, and shows, the inlier sample K-Prototypes is fitted on
    sample = sample_flagged_rows(paths.tabular_outliers, SAMPLE, load_params().seed)
    coordinates = read_csv(paths.mca_coordinates)
    assert coordinates["customer_id"].equals(inliers.iloc[sample.positions].reset_index(drop=True))


def test_a_customer_outside_the_samples_does_not_change_the_fits(ran, tmp_path, monkeypatch):
    """Method 1's encoding and ECOD are fitted on the customer sample, K-Prototypes on the inlier
    sample: changing a customer outside both changes only that customer's own rows."""
    copy = tmp_path / "changed"
    shutil.copytree(ran(SAMPLE), copy)
    monkeypatch.chdir(copy)
    paths, seed = layout("bank"), load_params().seed
    customer_sample = sample_rows(CUSTOMERS, SAMPLE, seed)
    inlier_sample = sample_flagged_rows(paths.tabular_outliers, SAMPLE, seed)
    flags = read_csv(paths.tabular_outliers)
    outside = next(
        row
        for row in np.flatnonzero(flags["outlier"].to_numpy() == 0)
        if row not in customer_sample and row not in inlier_sample.rows
    )
    before = {name: (copy / name).read_bytes() for name in OUTPUTS}
    matrix = read_npy(paths.tabular_matrix)
    table = pd.read_csv(paths.customers, dtype=str, keep_default_na=False)
    table.loc[outside, "balance"] = str(int(table.loc[outside, "balance"]) + 1)
    write_csv(paths.customers, table)

    stages.kprototypes.main("bank")
    assert (copy / "metrics/bank/kprototypes.json").read_bytes() == before[
        "metrics/bank/kprototypes.json"
    ]
    stages.tabular.main("bank")
    changed = read_npy(paths.tabular_matrix)
    others = np.arange(CUSTOMERS) != outside
    assert np.array_equal(changed[others], matrix[others])
    assert not np.array_equal(changed[outside], matrix[outside])
    scores = read_csv(paths.tabular_outliers)["ecod_score"].to_numpy()
    assert np.array_equal(scores[others], flags["ecod_score"].to_numpy()[others])


def test_a_sample_of_everything_is_the_whole_table_fit(ran, tmp_path, monkeypatch, bank):
    """At or below sample_fit_rows the stages give what the fits on the whole table give."""
    folder = ran(CUSTOMERS)
    monkeypatch.chdir(folder)
    paths, params = layout("bank"), load_params()
    customers = read_customers(paths.customers, bank)
    encoder = tabular.fit_encoder(customers, bank, params.comparison.tabular.encoding)
    matrix = tabular.encode_tabular(customers, bank, encoder)
    assert np.array_equal(read_npy(paths.tabular_matrix), matrix)
    flags = detect_outliers(matrix, params.outliers.contamination, customers.index.to_numpy())
    write_csv(tmp_path / "flags.csv", flags)
    assert paths.tabular_outliers.read_bytes() == (tmp_path / "flags.csv").read_bytes()
    rows = np.flatnonzero(flags["outlier"].to_numpy() == 0)
    segments, _, _ = tabular.segment_tabular(
        matrix[rows], K, params.comparison.tabular, params.seed, params.silhouette_max_rows
    )
    assert np.array_equal(read_csv(paths.tabular_labels)["segment"].to_numpy(), segments)
    frame = kprototypes.prototype_frame(customers.iloc[rows], bank)
    settings = params.comparison.kprototypes
    found, _ = kprototypes.fit_prototypes(frame, K, settings.n_init, settings.max_iter, params.seed)
    assert np.array_equal(read_csv(paths.kprototypes_labels)["segment"].to_numpy(), found)
    assert len(read_csv(paths.mca_coordinates)) == len(rows)
    for stage in ("tabular", "kprototypes", "mca"):
        assert "fit_sample_rows" not in read_json(paths.metrics / f"{stage}.json"), stage


def test_the_outputs_do_not_depend_on_the_chunk_size(ran, tmp_path, monkeypatch):
    folder = project(tmp_path / "chunked", SAMPLE)
    run_baselines(folder, monkeypatch, chunk_rows=1000)
    for name in OUTPUTS:
        assert (folder / name).read_bytes() == (ran(SAMPLE) / name).read_bytes(), name


def test_nearest_prototypes_are_the_fits_own_assignment(bank):
    table = synthetic.customers(300, seed=4)
    table.loc[::7, "job"] = "student"
    frame = kprototypes.prototype_frame(table.set_index(np.arange(300)), bank)
    categorical = [frame.columns.get_loc(c) for c in kprototypes.categorical_columns(frame)]
    fit = fit_kprototypes(frame.to_numpy(dtype=object), categorical, 4, 2, 50, None, 0)
    numeric = frame[kprototypes.numeric_columns(frame)].to_numpy(dtype=np.float64)
    categories = frame[kprototypes.categorical_columns(frame)].to_numpy(dtype=object)
    nearest, costs = fit.nearest(numeric, categories)
    assert np.array_equal(nearest, fit.labels)
    assert costs.sum() == pytest.approx(fit.cost, rel=1e-12)
    # a category no prototype has matches none of them
    unseen = categories[:1].copy()
    unseen[0, 0] = "astronaut"
    _, cost = fit.nearest(numeric[:1], unseen)
    expected = min(
        np.square(numeric[0] - fit.numeric_centroids[p]).sum()
        + fit.gamma * (unseen[0] != fit.categorical_centroids[p]).sum()
        for p in range(4)
    )
    assert cost[0] == pytest.approx(expected, rel=1e-12)


def test_flags_of_other_customers_are_refused_in_one_line(ran, tmp_path, monkeypatch):
    copy = tmp_path / "stale"
    shutil.copytree(ran(SAMPLE), copy)
    monkeypatch.chdir(copy)
    paths = layout("bank")
    write_csv(paths.customers, pd.read_csv(paths.customers, dtype=str).head(CUSTOMERS - 1))
    for stage in (stages.kprototypes_cost, stages.mca, stages.kprototypes):
        with pytest.raises(PipelineError, match="tabular_outliers.csv has 1500 rows but .*1499"):
            stage.main("bank")
