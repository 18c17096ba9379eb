"""The compiled K-Prototypes engine finds exactly what kmodes' KPrototypes finds."""

from __future__ import annotations

import numpy as np
import pytest
from kmodes.kprototypes import KPrototypes

from segmentation.baselines import kprototypes, kprototypes_engine
from segmentation.baselines.kprototypes_engine import fit_kprototypes
from segmentation.model.kmeans import number_by_size
from segmentation.testing import synthetic

LETTERS = np.array(list("abcdefgh"), dtype=object)


def mixed_rows(seed: int, n: int = 240) -> tuple[np.ndarray, list[int]]:
    """Two numeric columns rounded to 0.1 (ties) between three skewed categorical ones."""
    rng = np.random.default_rng(seed)
    numeric = np.round(rng.normal(size=(n, 2)) + 3 * (rng.random((n, 1)) < 0.4), 1)
    columns = [
        rng.choice(LETTERS[:levels], size=n, p=np.arange(levels, 0, -1) / sum(range(levels + 1)))
        for levels in (3, 5, 8)
    ]
    X = np.empty((n, 5), dtype=object)
    X[:, [1, 3]] = numeric
    X[:, [0, 2, 4]] = np.column_stack(columns)
    return X, [0, 2, 4]


def duplicated_rows(seed: int, n: int = 200, distinct: int = 25) -> tuple[np.ndarray, list[int]]:
    """``distinct`` rows repeated at random: duplicates and many exact distance ties."""
    X, categorical = mixed_rows(seed, distinct)
    return X[np.random.default_rng(seed).integers(0, distinct, n)], categorical


def grid_rows(seed: int) -> tuple[np.ndarray, list[int]]:
    """A few small-integer rows, repeated: with a small gamma, clusters empty during the iterations
    and initialisations keep leaving a cluster empty."""
    rng = np.random.default_rng(seed)
    n, p, q = int(rng.integers(10, 40)), int(rng.integers(1, 3)), int(rng.integers(1, 4))
    numeric = rng.integers(0, int(rng.integers(2, 6)), size=(n, p)).astype(float)
    labelled = rng.choice(LETTERS[: int(rng.integers(2, 4))], size=(n, q))
    return np.hstack([numeric.astype(object), labelled]), list(range(p, p + q))


def kmodes_model(X, categorical, k, n_init, max_iter, gamma, seed) -> KPrototypes:
    model = KPrototypes(
        n_clusters=k, init="Huang", n_init=n_init, max_iter=max_iter, gamma=gamma, random_state=seed
    )
    return model.fit(X, categorical=categorical)


def assert_same_as_kmodes(
    X, categorical, k, n_init, seed, gamma=None, max_iter=100
) -> kprototypes_engine.PrototypeFit:
    model = kmodes_model(X, categorical, k, n_init, max_iter, gamma, seed)
    fit = fit_kprototypes(X, categorical, k, n_init, max_iter, gamma, seed)
    assert np.array_equal(fit.labels, model.labels_)
    assert fit.cost == model.cost_
    assert fit.n_iter == model.n_iter_
    numeric = [column for column in range(X.shape[1]) if column not in categorical]
    centroids = model.cluster_centroids_
    assert np.array_equal(fit.numeric_centroids, centroids[:, : len(numeric)].astype(float))
    assert np.array_equal(fit.categorical_centroids, centroids[:, len(numeric) :])
    return fit


@pytest.mark.parametrize("k", range(2, 7))
@pytest.mark.parametrize("seed", [0, 1])
def test_same_labels_prototypes_and_cost_as_kmodes(k, seed):
    X, categorical = mixed_rows(seed)
    fit = assert_same_as_kmodes(X, categorical, k, n_init=1 + (k + seed) % 3, seed=seed)
    # the starts iterate, so the comparison covers the point moves and not only the initialisation
    assert fit.n_iter >= 2


@pytest.mark.parametrize("max_iter", [1, 2])
def test_same_state_after_each_of_the_first_iterations(max_iter):
    X, categorical = mixed_rows(3)
    assert assert_same_as_kmodes(X, categorical, 5, 1, seed=3, max_iter=max_iter).n_iter == max_iter


@pytest.mark.parametrize(("k", "gamma"), [(3, None), (5, 0.2), (6, 2.0)])
def test_same_result_with_duplicate_rows_and_ties(k, gamma):
    X, categorical = duplicated_rows(k)
    assert_same_as_kmodes(X, categorical, k, 3, seed=k, gamma=gamma)


def test_same_refills_of_clusters_emptied_during_the_iterations(monkeypatch):
    refills = []
    sweep = kprototypes_engine._sweep

    def counting_sweep(*args):
        swept = sweep(*args)
        refills.append(swept[1] >= 0)
        return swept

    monkeypatch.setattr(kprototypes_engine, "_sweep", counting_sweep)
    for seed, k in [(49, 5), (49, 7), (413, 7), (414, 5), (976, 7), (1234, 7), (1399, 5)]:
        refills.clear()
        X, categorical = grid_rows(seed)
        assert_same_as_kmodes(X, categorical, k, 1, seed=seed, gamma=0.05)
        assert any(refills), (seed, k)


def test_same_random_initialisation_after_twenty_empty_starts(monkeypatch):
    huang_draws = []
    init_huang = kprototypes_engine.init_huang
    monkeypatch.setattr(
        kprototypes_engine, "init_huang", lambda *args: huang_draws.append(1) or init_huang(*args)
    )
    X, categorical = grid_rows(10)
    assert_same_as_kmodes(X, categorical, 6, 1, seed=10, gamma=0.05)
    assert len(huang_draws) == kprototypes_engine.MAX_INIT_TRIES


def test_numeric_distances_are_summed_in_numpys_order():
    rng = np.random.default_rng(0)
    for length in [*range(1, 300), 1025, 5000]:
        values = rng.normal(size=length) * 10.0 ** rng.integers(-8, 8, size=length)
        assert kprototypes_engine._pairwise_sum(values) == np.add.reduce(values)


@pytest.mark.parametrize("n_numeric", [9, 130])
def test_same_result_with_many_numeric_columns(n_numeric):
    rng = np.random.default_rng(n_numeric)
    numeric = rng.normal(size=(60, n_numeric)) * 10.0 ** rng.integers(-3, 3, size=n_numeric)
    X = np.hstack([numeric.astype(object), rng.choice(LETTERS[:3], size=(60, 2))])
    assert_same_as_kmodes(X, [n_numeric, n_numeric + 1], 3, 2, seed=0)


def test_threads_do_not_change_the_result():
    X, categorical = mixed_rows(7)
    alone = fit_kprototypes(X, categorical, 4, 3, 100, None, 7, n_jobs=1)
    threaded = fit_kprototypes(X, categorical, 4, 3, 100, None, 7, n_jobs=2)
    assert np.array_equal(alone.labels, threaded.labels) and alone.cost == threaded.cost
    assert np.array_equal(alone.numeric_centroids, threaded.numeric_centroids)


def test_too_few_distinct_rows_and_failed_initialisations_are_refused():
    X, categorical = duplicated_rows(0, distinct=4)
    with pytest.raises(ValueError, match="k=4 must be at least 1 and below the number of distinct"):
        fit_kprototypes(X, categorical, 4, 1, 10, None, 0)
    X, categorical = grid_rows(18)
    with pytest.raises(ValueError, match="could not initiali"):
        kmodes_model(X, categorical, 6, 1, 100, 0.05, 18)
    with pytest.raises(ValueError, match="could not initialise 6 non-empty clusters"):
        fit_kprototypes(X, categorical, 6, 1, 100, 0.05, 18)


def test_fit_prototypes_numbers_kmodes_clusters_by_size(bank):
    customers = synthetic.customers(300, seed=3).loc[:, bank.segment_on]
    frame = kprototypes.prototype_frame(customers, bank)
    segments, cost = kprototypes.fit_prototypes(frame, 4, n_init=2, max_iter=50, seed=1)
    categorical = [
        frame.columns.get_loc(column) for column in kprototypes.categorical_columns(frame)
    ]
    gamma = kprototypes.categorical_weight(frame)
    model = kmodes_model(frame.to_numpy(dtype=object), categorical, 4, 2, 50, gamma, 1)
    assert np.array_equal(segments, number_by_size(model.labels_.astype(np.int64), 4)[0])
    assert cost == model.cost_
