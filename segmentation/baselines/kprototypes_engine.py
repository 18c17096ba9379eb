"""K-Prototypes that gives exactly kmodes 0.12.2's result, with the point loops compiled by numba.

kmodes' ``KPrototypes`` moves one point at a time through Python loops (about 30 s per start on
40,000 customers). This module runs the same algorithm on the same encoded data and reproduces its
arithmetic operation by operation, so labels, centroids and cost are bit-identical for the same
data, init and seed:

- categoricals are encoded, the per-start seeds drawn and the Huang (then, after 20 tries with an
  empty cluster, random) initialisation done by kmodes' and scikit-learn's own functions, so every
  random draw is theirs;
- the squared euclidean part is summed in numpy's pairwise order (sequential below 8 columns);
- points move in kmodes' order, updating cluster sums, category counts and prototypes as its
  ``_k_prototypes_iter`` does, including its tie-breaking (first cluster, smallest category code)
  and its refill of an emptied cluster with a random point of the largest cluster;
- a start stops when no point moved or the cost did not decrease; the best start is the first with
  the lowest cost.

Only the Huang initialisation with the matching and euclidean dissimilarities, without sample
weights, is implemented: what the pipeline uses. The compiled functions are cached next to this
file (``cache=True``): the first process of a checkout compiles them in about 4 s, later ones load
them in about 0.2 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from kmodes.kprototypes import MAX_INIT_TRIES, RAISE_INIT_TRIES, _split_num_cat
from kmodes.util import decode_centroids, encode_features, pandas_to_numpy
from kmodes.util.dissim import matching_dissim
from kmodes.util.init_methods import init_huang
from numba import njit
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array

# numpy's pairwise summation adds up to this many values with 8 interleaved partial sums.
_PAIRWISE_BLOCK = 128


@dataclass(frozen=True)
class PrototypeFit:
    """The best start: cluster of each row (0..k-1), its cost and prototypes, iterations run, and
    the weight of a categorical mismatch."""

    labels: np.ndarray
    cost: float
    numeric_centroids: np.ndarray
    categorical_centroids: np.ndarray
    n_iter: int
    gamma: float

    def nearest(self, numeric: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's nearest prototype (0..k-1) and its cost to it, as the fit's own last
        assignment finds them: ``numeric`` and ``categories`` are any rows' numeric and categorical
        columns in the fitted order; a category no prototype has matches none."""
        codes = np.empty(categories.shape, dtype=np.int64)
        prototype_codes = np.empty(self.categorical_centroids.shape, dtype=np.int64)
        for attr in range(categories.shape[1]):
            levels = pd.Index(pd.unique(self.categorical_centroids[:, attr]))
            prototype_codes[:, attr] = levels.get_indexer(self.categorical_centroids[:, attr])
            codes[:, attr] = levels.get_indexer(categories[:, attr])
        return _nearest_costs(
            np.ascontiguousarray(numeric, dtype=np.float64),
            codes,
            self.numeric_centroids,
            prototype_codes,
            self.gamma,
        )


@njit(nogil=True, cache=True)
def _block_sum(values, start, stop):
    """numpy's pairwise summation of at most 128 values: sequential below 8, else 8 partial sums."""
    count = stop - start
    if count < 8:
        total = -0.0
        for i in range(start, stop):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    i = start + 8
    blocks_end = stop - count % 8
    while i < blocks_end:
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < stop:
        total += values[i]
        i += 1
    return total


@njit(nogil=True, cache=True)
def _pairwise_sum(values):
    """numpy's ``add.reduce`` of a contiguous float64 vector, whose order exact equality needs.

    Above 128 values numpy sums the two halves (split at a multiple of 8) recursively; the
    recursion runs here on explicit stacks because numba's cache cannot hold recursive functions.
    """
    if len(values) <= _PAIRWISE_BLOCK:
        return _block_sum(values, 0, len(values))
    # (start, stop, halves already summed) of pending ranges, and the sums of finished ranges
    ranges = np.empty((64, 3), dtype=np.int64)
    sums = np.empty(64)
    n_ranges, n_sums = 1, 0
    ranges[0, 0], ranges[0, 1], ranges[0, 2] = 0, len(values), 0
    while n_ranges:
        n_ranges -= 1
        start, stop, halves_done = ranges[n_ranges, 0], ranges[n_ranges, 1], ranges[n_ranges, 2]
        if halves_done:
            n_sums -= 1
            sums[n_sums - 1] += sums[n_sums]
        elif stop - start <= _PAIRWISE_BLOCK:
            sums[n_sums] = _block_sum(values, start, stop)
            n_sums += 1
        else:
            half = (stop - start) // 2
            half -= half % 8
            ranges[n_ranges, 2] = 1
            ranges[n_ranges + 1, 0], ranges[n_ranges + 1, 1] = start + half, stop
            ranges[n_ranges + 2, 0], ranges[n_ranges + 2, 1] = start, start + half
            ranges[n_ranges + 1 : n_ranges + 3, 2] = 0
            n_ranges += 3
    return sums[0]


@njit(nogil=True, cache=True)
def _nearest(point, numeric, codes, num_centroids, cat_centroids, gamma, squares):
    """kmodes' ``argmin(euclidean + gamma * matching)`` for one point: cluster and its cost."""
    best, best_cost = 0, 0.0
    for cluster in range(num_centroids.shape[0]):
        for j in range(numeric.shape[1]):
            difference = num_centroids[cluster, j] - numeric[point, j]
            squares[j] = difference * difference
        mismatches = 0
        for attr in range(codes.shape[1]):
            if cat_centroids[cluster, attr] != codes[point, attr]:
                mismatches += 1
        cost = _pairwise_sum(squares) + gamma * mismatches
        if cluster == 0 or cost < best_cost:
            best, best_cost = cluster, cost
    return best, best_cost


@njit(nogil=True, cache=True)
def _nearest_costs(numeric, codes, num_centroids, cat_centroids, gamma):
    """The nearest cluster of every point and its cost to it."""
    labels = np.empty(numeric.shape[0], dtype=np.int64)
    costs = np.empty(numeric.shape[0])
    squares = np.empty(numeric.shape[1])
    for point in range(numeric.shape[0]):
        labels[point], costs[point] = _nearest(
            point, numeric, codes, num_centroids, cat_centroids, gamma, squares
        )
    return labels, costs


@njit(nogil=True, cache=True)
def _labels_cost(numeric, codes, num_centroids, cat_centroids, gamma):
    """kmodes' ``labels_cost``: nearest cluster of every point and the sum of those costs, added
    in point order."""
    labels, costs = _nearest_costs(numeric, codes, num_centroids, cat_centroids, gamma)
    total = 0.0
    for cost in costs:
        total += cost
    return labels, total


@njit(nogil=True, cache=True)
def _mode(counts, cluster, attr):
    """kmodes' ``get_max_value_key``: the most frequent code, the smallest on ties.

    kmodes only considers the codes its counting dict has seen in the cluster, which differs from
    all codes only for an emptied cluster, whose prototype the refill point then overwrites.
    """
    best = 0
    for code in range(1, counts.shape[2]):
        if counts[cluster, attr, code] > counts[cluster, attr, best]:
            best = code
    return best


@njit(nogil=True, cache=True)
def _first_assignment(
    numeric, codes, num_centroids, cat_centroids, gamma, labels, attr_sum, sizes, counts
):
    """Each point to its nearest initial prototype, accumulating sums and category counts."""
    squares = np.empty(numeric.shape[1])
    for point in range(numeric.shape[0]):
        cluster, _ = _nearest(point, numeric, codes, num_centroids, cat_centroids, gamma, squares)
        labels[point] = cluster
        sizes[cluster] += 1
        for j in range(numeric.shape[1]):
            attr_sum[cluster, j] += numeric[point, j]
        for attr in range(codes.shape[1]):
            counts[cluster, attr, codes[point, attr]] += 1


@njit(nogil=True, cache=True)
def _update_prototypes(num_centroids, cat_centroids, attr_sum, sizes, counts):
    """Means and modes of the (non-empty) clusters after the first assignment."""
    for cluster in range(num_centroids.shape[0]):
        for j in range(num_centroids.shape[1]):
            num_centroids[cluster, j] = attr_sum[cluster, j] / sizes[cluster]
        for attr in range(cat_centroids.shape[1]):
            cat_centroids[cluster, attr] = _mode(counts, cluster, attr)


@njit(nogil=True, cache=True)
def _move_point(point, to, source, numeric, codes, cat_centroids, labels, attr_sum, sizes, counts):
    """kmodes' ``_move_point_num`` then ``_move_point_cat``: sums, counts and categorical
    prototypes follow the point; numeric prototypes are left as they are."""
    for j in range(numeric.shape[1]):
        attr_sum[to, j] += numeric[point, j]
        attr_sum[source, j] -= numeric[point, j]
    sizes[to] += 1
    sizes[source] -= 1
    labels[point] = to
    for attr in range(codes.shape[1]):
        code = codes[point, attr]
        counts[to, attr, code] += 1
        if counts[to, attr, cat_centroids[to, attr]] < counts[to, attr, code]:
            cat_centroids[to, attr] = code
        counts[source, attr, code] -= 1
        if cat_centroids[source, attr] == code:
            cat_centroids[source, attr] = _mode(counts, source, attr)


@njit(nogil=True, cache=True)
def _sweep(
    start, numeric, codes, num_centroids, cat_centroids, gamma, labels, attr_sum, sizes, counts
):
    """kmodes' ``_k_prototypes_iter`` from point ``start`` on.

    Returns the number of moves and, when a move empties a cluster, that point and cluster (else
    -1, -1): the caller draws the refill point from the random state kmodes would use, then resumes.
    """
    squares = np.empty(numeric.shape[1])
    moves = 0
    for point in range(start, numeric.shape[0]):
        cluster, _ = _nearest(point, numeric, codes, num_centroids, cat_centroids, gamma, squares)
        old = labels[point]
        if cluster == old:
            continue
        moves += 1
        _move_point(
            point, cluster, old, numeric, codes, cat_centroids, labels, attr_sum, sizes, counts
        )
        for j in range(numeric.shape[1]):
            for changed in (cluster, old):
                if sizes[changed]:
                    num_centroids[changed, j] = attr_sum[changed, j] / sizes[changed]
                else:
                    num_centroids[changed, j] = 0.0
        if sizes[old] == 0:
            return moves, point, old
    return moves, -1, -1


def _initial_state(numeric, codes, n_levels, spread, k, gamma, random_state):
    """kmodes' initialisation loop: draw prototypes until no cluster starts empty."""
    mean, std = spread
    method = "huang"
    tries = 0
    while True:
        tries += 1
        if method == "huang":
            cat_centroids = init_huang(codes, k, matching_dissim, random_state)
        else:
            cat_centroids = codes[random_state.choice(range(len(codes)), k)]
        num_centroids = mean + random_state.randn(k, numeric.shape[1]) * std
        cat_centroids = np.ascontiguousarray(cat_centroids, dtype=np.int64)
        labels = np.empty(len(numeric), dtype=np.int64)
        attr_sum = np.zeros((k, numeric.shape[1]))
        sizes = np.zeros(k, dtype=np.int64)
        counts = np.zeros((k, codes.shape[1], n_levels), dtype=np.int64)
        _first_assignment(
            numeric, codes, num_centroids, cat_centroids, gamma, labels, attr_sum, sizes, counts
        )
        if sizes.min() > 0:
            _update_prototypes(num_centroids, cat_centroids, attr_sum, sizes, counts)
            return num_centroids, cat_centroids, labels, attr_sum, sizes, counts
        if tries == MAX_INIT_TRIES:
            method = "random"
        elif tries == RAISE_INIT_TRIES:
            raise ValueError(
                f"K-Prototypes could not initialise {k} non-empty clusters in {tries} tries"
            )


def _single_start(numeric, codes, n_levels, spread, k, max_iter, gamma, seed):
    """kmodes' ``_k_prototypes_single``: one initialisation and its iterations."""
    random_state = check_random_state(seed)
    num_centroids, cat_centroids, labels, attr_sum, sizes, counts = _initial_state(
        numeric, codes, n_levels, spread, k, gamma, random_state
    )
    state = (numeric, codes, num_centroids, cat_centroids, gamma, labels, attr_sum, sizes, counts)
    cost = _labels_cost(numeric, codes, num_centroids, cat_centroids, gamma)[1]
    n_iter, converged = 0, False
    while n_iter < max_iter and not converged:
        n_iter += 1
        moves, start = 0, 0
        while True:
            swept, emptied_at, emptied = _sweep(start, *state)
            moves += swept
            if emptied_at < 0:
                break
            largest = int(np.argmax(sizes))
            refill = random_state.choice(np.flatnonzero(labels == largest))
            _move_point(
                refill,
                emptied,
                largest,
                numeric,
                codes,
                cat_centroids,
                labels,
                attr_sum,
                sizes,
                counts,
            )
            start = emptied_at + 1
        point_labels, new_cost = _labels_cost(numeric, codes, num_centroids, cat_centroids, gamma)
        converged = moves == 0 or new_cost >= cost
        cost = new_cost
    return point_labels, cost, num_centroids, cat_centroids, n_iter


def _has_more_distinct_rows(X, k):
    """Whether X has more than k distinct rows (kmodes' test, which otherwise skips the iterations
    and returns no labels), stopping as soon as it does."""
    distinct = set()
    for row in X:
        distinct.add(tuple(row))
        if len(distinct) > k:
            return True
    return False


def fit_kprototypes(
    X: np.ndarray | pd.DataFrame,
    categorical: Sequence[int],
    k: int,
    n_init: int,
    max_iter: int,
    gamma: float | None,
    seed: int | np.random.RandomState | None,
    n_jobs: int = 1,
) -> PrototypeFit:
    """What ``KPrototypes(n_clusters=k, init="Huang", n_init=n_init, max_iter=max_iter, gamma=gamma,
    random_state=seed).fit(X, categorical=categorical)`` finds; ``gamma=None`` is kmodes' default.

    It takes X whole, as kmodes does, because kmodes' column split leaves the numeric block in a
    memory layout that changes the last bits of the column means and standard deviations behind
    ``gamma`` and the initial prototypes; splitting X with kmodes' own function keeps them equal.
    ``n_jobs`` runs the starts in threads (joblib's convention) and does not change the result.
    """
    X = pandas_to_numpy(X)
    categorical = list(categorical)
    if not categorical or len(set(categorical)) == X.shape[1] or max(categorical) >= X.shape[1]:
        raise ValueError(
            f"categorical={categorical} must name some, not all, of the {X.shape[1]} columns"
        )
    if max_iter < 1 or n_init < 1:
        raise ValueError(f"max_iter ({max_iter}) and n_init ({n_init}) must be at least 1")
    if k < 1 or not _has_more_distinct_rows(X, k):
        raise ValueError(f"k={k} must be at least 1 and below the number of distinct rows of X")
    numeric, labelled = _split_num_cat(X, categorical)
    numeric, labelled = check_array(numeric), check_array(labelled, dtype=None)
    codes, encoding = encode_features(labelled)
    spread = np.mean(numeric, axis=0), np.std(numeric, axis=0)
    if gamma is None:
        gamma = 0.5 * np.mean(numeric.std(axis=0))
    # The loops read rows: a C-ordered copy holds the same values.
    numeric, codes = np.ascontiguousarray(numeric), np.ascontiguousarray(codes)
    n_levels = int(codes.max()) + 1
    seeds = check_random_state(seed).randint(np.iinfo(np.int32).max, size=n_init)
    data = (numeric, codes, n_levels, spread, k, max_iter, float(gamma))
    if n_jobs == 1:
        results = [_single_start(*data, start) for start in seeds]
    else:
        results = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_single_start)(*data, start) for start in seeds
        )
    # kmodes keeps the first start with the lowest cost
    labels, cost, num_centroids, cat_centroids, n_iter = min(results, key=lambda result: result[1])
    decoded = decode_centroids(cat_centroids, encoding)
    return PrototypeFit(labels, float(cost), num_centroids, decoded, n_iter, float(gamma))
