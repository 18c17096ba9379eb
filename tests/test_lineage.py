"""Segment identity across refits: matching, transitions, migration and PSI on known structure."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from segmentation.artifacts import PipelineError, write_png
from segmentation.lineage.figure import alluvial_figure
from segmentation.lineage.matching import match_segments, paired_segments
from segmentation.lineage.migration import (
    customer_moves,
    migration_of,
    population_stability,
    psi_reading,
    segment_changes,
)
from segmentation.lineage.reference import (
    Reference,
    adopted,
    load_reference,
    save_reference,
    segment_chunks,
)
from segmentation.lineage.tracking import (
    LineageCounts,
    Numbering,
    customer_tallies,
    lineage_metrics,
    lineage_record,
    track,
    untracked,
)
from segmentation.reporting.lineage import changed_sentences
from segmentation.testing.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]


def segments(labels, ids=None) -> pd.Series:
    labels = np.asarray(labels)
    ids = [f"c{i:04d}" for i in range(len(labels))] if ids is None else ids
    return pd.Series(labels, index=pd.Index(ids, name="customer_id"))


def overlap_table(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    shared = reference.index.intersection(current.index)
    return pd.crosstab(reference.loc[shared].to_numpy(), current.loc[shared].to_numpy())


def lineage_of(reference: pd.Series, current: pd.Series):
    return match_segments(overlap_table(reference, current))


def migration_table(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    moved = customer_moves(reference, current).groupby(["from", "to"]).size()
    return migration_of(moved.rename("customers").reset_index())


def adopted_segments(folder: Path) -> pd.Series:
    return pd.concat(segment_chunks(folder, 7))


def kinds(lineage) -> dict[int, str]:
    return {transition.segment: transition.kind for transition in lineage.transitions}


@pytest.fixture(scope="module")
def four_blobs():
    vectors, _ = make_blobs(n_samples=800, centers=4, n_features=5, cluster_std=0.6, random_state=7)
    fitted = KMeans(n_clusters=4, n_init=3, random_state=0).fit_predict(vectors) + 1
    return vectors, segments(fitted)


def test_a_refit_with_another_seed_on_shuffled_rows_keeps_every_number(four_blobs):
    vectors, reference = four_blobs
    order = np.random.default_rng(3).permutation(len(vectors))
    refit = KMeans(n_clusters=4, n_init=3, random_state=11).fit_predict(vectors[order])
    # another seed numbers the segments in another order
    current = segments(refit + 1, reference.index[order])
    lineage = lineage_of(reference, current)
    assert np.array_equal(lineage.stable(current).loc[reference.index], reference)
    assert set(kinds(lineage).values()) == {"kept"}
    assert all(value == 1.0 for value in lineage.matched_jaccard.values())


def test_a_moved_reference_with_shuffled_rows_gives_every_number_and_name(four_blobs, tmp_path):
    vectors, fitted = four_blobs
    names = {1: "Savers", 2: "Spenders", 3: "Families", 4: "Retired"}
    centroids = np.stack([vectors[fitted.to_numpy() == s].mean(axis=0) for s in range(1, 5)])
    # adopted as 4, 2, 7, 1: numbers a team kept from earlier refits
    numbers = {1: 4, 2: 2, 3: 7, 4: 1}
    save_reference(
        tmp_path / "bank",
        adopted(numbers, {numbers[s]: n for s, n in names.items()}, centroids, "m"),
        [fitted.iloc[:300].map(numbers), fitted.iloc[300:].map(numbers)],
    )
    (tmp_path / "bank").rename(tmp_path / "elsewhere")
    rows = (tmp_path / "elsewhere" / "segments.csv").read_text().splitlines()
    body = rows[1:]
    np.random.default_rng(5).shuffle(body)
    (tmp_path / "elsewhere" / "segments.csv").write_text("\n".join([rows[0], *body]) + "\n")
    reference = load_reference(tmp_path / "elsewhere")
    order = np.random.default_rng(3).permutation(len(vectors))
    refit = KMeans(n_clusters=4, n_init=3, random_state=11).fit_predict(vectors[order]) + 1
    refit_centroids = np.stack([vectors[order][refit == s].mean(axis=0) for s in range(1, 5)])
    table = pd.DataFrame(vectors, index=fitted.index)
    current = segments(refit, fitted.index[order])
    tracked = track(
        reference,
        adopted_segments(tmp_path / "elsewhere"),
        current,
        lambda ids: table.loc[ids].to_numpy(),
        refit_centroids,
        "m",
        fitted.index,
    )
    assert tracked.lineage.stable(current).loc[fitted.index].equals(fitted.map(numbers))
    kept = Numbering.of(lineage_record(tracked, "elsewhere")).kept_names
    assert kept == {numbers[s]: name for s, name in names.items()}


def test_renumbered_segments_get_their_reference_numbers_back():
    reference = segments([1] * 50 + [2] * 30 + [3] * 20)
    current = reference.map({1: 3, 2: 1, 3: 2})
    lineage = lineage_of(reference, current)
    assert lineage.numbers == {3: 1, 1: 2, 2: 3}
    assert [t.kind for t in lineage.transitions] == ["kept"] * 3


def test_a_split_keeps_the_larger_part_and_numbers_the_other_new():
    reference = segments([1] * 100 + [2] * 60 + [3] * 40)
    # segment 1 splits 61 / 39; the fit numbers the pieces 2 and 4
    current = segments([2] * 61 + [4] * 39 + [1] * 60 + [3] * 40)
    lineage = lineage_of(reference, current)
    assert lineage.numbers == {2: 1, 1: 2, 3: 3, 4: 4}
    split = next(t for t in lineage.transitions if t.kind == "split")
    assert split.segment == 1 and split.flows == ((1, 0.61), (4, 0.39))
    assert "new" not in kinds(lineage).values()  # segment 4 is reported as the split's part


def test_two_segments_that_merge_are_reported_as_a_merge():
    reference = segments([1] * 100 + [2] * 60 + [3] * 40)
    current = segments([1] * 100 + [2] * 100)  # segments 2 and 3 now one
    lineage = lineage_of(reference, current)
    assert lineage.numbers == {1: 1, 2: 2}
    merged = next(t for t in lineage.transitions if t.kind == "merged")
    assert merged.segment == 2 and merged.flows == ((2, 0.6), (3, 0.4))
    assert kinds(lineage) == {2: "merged", 1: "kept"}
    assert changed_sentences(lineage, {2: "Savers"}) == [
        "Segment 2 'Savers' is a merge: its customers came from segment 2 'Savers' (60%) and "
        "segment 3 (40%)."
    ]


def test_a_segment_that_drifts_away_is_gone_and_a_new_one_takes_its_place():
    reference = segments([1] * 100 + [2] * 60 + [3] * 40)
    # segment 3's customers scatter over 1, 2 and a new group formed from parts of 1 and 2
    current = segments([1] * 70 + [9] * 30 + [2] * 40 + [9] * 20 + [1] * 15 + [2] * 15 + [9] * 10)
    lineage = lineage_of(reference, current)
    assert lineage.numbers[9] == 4  # the next free number, not the gone segment's
    # a number the reference used for a segment whose customers all left stays retired
    assert match_segments(overlap_table(reference, current), taken=[5]).numbers[9] == 6
    assert kinds(lineage) == {1: "kept", 2: "kept", 3: "gone", 4: "new"}
    gone = next(t for t in lineage.transitions if t.kind == "gone")
    assert gone.flows == ((1, 0.375), (2, 0.375), (4, 0.25))
    new = next(t for t in lineage.transitions if t.kind == "new")
    assert new.flows == ((1, 0.5), (2, 1 / 3))


def test_matching_is_deterministic_and_independent_of_row_order():
    rng = np.random.default_rng(0)
    reference = segments(rng.integers(1, 6, 500))
    current = segments(np.where(rng.random(500) < 0.8, reference, rng.integers(1, 7, 500)))
    first = lineage_of(reference, current)
    shuffled = rng.permutation(500)
    again = lineage_of(reference.iloc[shuffled], current.iloc[shuffled[::-1]])
    assert first == again


def test_the_psi_equals_a_hand_computed_value():
    reference = segments([1] * 50 + [2] * 30 + [3] * 20)
    current = segments([1] * 40 + [2] * 40 + [3] * 20)
    terms = population_stability(reference.value_counts(), current.value_counts())
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert terms.sum() == pytest.approx(expected)  # 0.0511
    assert terms.loc[3] == 0.0 and psi_reading(terms.sum()) == "no real shift"
    assert psi_reading(0.3) == "major shift"


def test_migration_shows_who_stayed_moved_left_and_is_new():
    reference = segments([1, 1, 2, 2, 3], ["a", "b", "c", "d", "e"])
    current = segments([1, 4, 2, 2, 1], ["a", "b", "c", "d", "f"])
    table = migration_table(reference, current)
    assert table.values.tolist() == [
        [1, 1, 1, 0.5],
        [1, 4, 1, 0.5],
        [2, 2, 2, 1.0],
        [3, "left", 1, 1.0],
        ["new", 1, 1, 1.0],
    ]
    outcome = pd.Series([1, 0, 0, 0, 1, 1], index=["a", "b", "c", "d", "e", "f"])
    adopted_rates = pd.Series({1: 0.5, 2: 0.0, 3: 1.0})  # segments 1, 2 and 3 when adopted
    outcome_now = outcome.loc[current.index].groupby(current).mean()
    changes = segment_changes(
        reference.value_counts(), current.value_counts(), adopted_rates, outcome_now
    )
    assert changes.loc[1, ["customers_then", "customers_now"]].tolist() == [2, 2]
    assert changes.loc[1, ["outcome_then", "outcome_now"]].tolist() == [0.5, 1.0]
    assert changes.loc[4, "customers_then"] == 0 and changes.loc[3, "customers_now"] == 0


def test_each_changed_segment_gets_one_plain_sentence():
    reference = segments([1] * 100 + [2] * 60 + [3] * 40)
    current = segments([2] * 61 + [4] * 39 + [1] * 60 + [3] * 40)
    lineage = lineage_of(reference, current)
    names = {1: "Young singles", 2: "Retired", 3: "Families", 4: "Young renters"}
    assert changed_sentences(lineage, names) == [
        "Segment 1 'Young singles' split: 61% stayed, 39% formed segment 4 'Young renters'."
    ]
    drifted = segments([1] * 70 + [9] * 30 + [2] * 40 + [9] * 20 + [1] * 15 + [2] * 15 + [9] * 10)
    assert changed_sentences(lineage_of(reference, drifted), {}) == [
        "Segment 1 kept 70% of its customers (Jaccard 0.61 with the adopted segment); the "
        "others moved to segment 4 (30%).",
        "Segment 2 kept 67% of its customers (Jaccard 0.53 with the adopted segment); the "
        "others moved to segment 4 (33%).",
        "Segment 3 is gone: its customers moved to segment 1 (38%), segment 2 (38%) and "
        "segment 4 (25%).",
        "Segment 4 is new: its customers came from segment 1 (50%) and segment 2 (33%).",
    ]


def test_the_alluvial_chart_draws_every_segment_and_every_flow(tmp_path):
    reference = segments([1, 1, 2, 2, 3], ["a", "b", "c", "d", "e"])
    current = segments([1, 4, 2, 2, 1], ["a", "b", "c", "d", "f"])
    table = migration_table(reference, current)
    figure = alluvial_figure(table, "bank: k = 5 to k = 6")
    axis = figure.axes[0]
    assert len(axis.patches) == 4 + 4  # segments 1, 2, 3 and new; then 1, 2, 4 and left
    assert len(axis.collections) == len(table)  # one band per flow
    labels = {text.get_text() for text in axis.texts}
    assert {"segment 3", "new", "left", "segment 4"} <= labels
    write_png(tmp_path / "flow.png", figure)
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"


def test_a_reference_round_trips_and_places_unseen_customers(tmp_path):
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    reference = Reference(
        [1, 3, 4],
        ["Savers", "Young", "Families"],
        centroids,
        "sentence-transformers/all-MiniLM-L6-v2",
    )
    adopted_ones = segments(np.array([3, 1, 4]), ["007", "NA", "x"])
    save_reference(tmp_path / "bank", reference, [adopted_ones])
    loaded = load_reference(tmp_path / "bank")
    assert list(segment_chunks(tmp_path / "bank", 2))[1].to_dict() == {"x": 4}
    assert adopted_segments(tmp_path / "bank").to_dict() == {"007": 3, "NA": 1, "x": 4}
    assert (loaded.numbers, loaded.names) == ([1, 3, 4], ["Savers", "Young", "Families"])
    assert np.array_equal(loaded.centroids, centroids)
    unseen = np.array([[9.0, 1.0], [1.0, 8.0], [0.5, 0.5]], dtype=np.float32)
    assert loaded.place(unseen).tolist() == [3, 4, 1]
    assert loaded.name_of()[4] == "Families"
    with pytest.raises(PipelineError, match="no reference segmentation here"):
        load_reference(tmp_path / "telco")
    (tmp_path / "bank" / "reference.json").write_text('{"segments": [{"number": 1}]')
    with pytest.raises(PipelineError, match=r"bank: not a reference segmentation .*stages.adopt"):
        load_reference(tmp_path / "bank")
    save_reference(tmp_path / "bank", reference, [adopted_ones])
    (tmp_path / "bank" / "reference.json").write_text('{"segments": [{"number": 1}]}')
    with pytest.raises(PipelineError, match=r"not a reference segmentation \(KeyError"):
        load_reference(tmp_path / "bank")


def test_customers_one_segmentation_lacks_are_placed_by_the_other_model():
    reference = segments([1, 1, 2, 2], ["a", "b", "c", "d"])  # "d" has left the table
    current = segments([2, 2, 1], ["a", "b", "e"])  # "c" is an outlier now, "e" is new
    present = pd.Index(["e", "c", "b", "a"])
    then, now = paired_segments(
        reference,
        current,
        in_reference=lambda ids: np.full(len(ids), 9),
        in_current=lambda ids: np.full(len(ids), 7),
        present=present,
    )
    assert then.index.tolist() == now.index.tolist() == ["e", "c", "b", "a"]
    assert then.tolist() == [9, 2, 1, 1] and now.tolist() == [1, 7, 2, 2]


def test_a_fit_tracked_from_its_reference_keeps_names_and_becomes_the_next_reference(tmp_path):
    vectors, blob = make_blobs(
        n_samples=900, centers=4, n_features=5, cluster_std=0.5, random_state=2
    )
    ids = pd.Index([f"c{i:04d}" for i in range(len(vectors))])
    table_vectors = pd.DataFrame(vectors, index=ids)

    def vectors_of(customers):
        return table_vectors.loc[customers].to_numpy()

    def fit(k, rows, seed):
        model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(vectors[rows])
        return segments(model.labels_ + 1, ids[rows]), model.cluster_centers_

    # last month: 3 segments (two blobs together) of the first 800 customers
    then, then_centroids = fit(3, np.arange(800), seed=0)
    names = {1: "First", 2: "Second", 3: "Third"}
    first = track(
        Reference([1, 2, 3], list(names.values()), then_centroids, "m"),
        then,
        then,
        vectors_of,
        then_centroids,
        "m",
        ids[:800],
    )
    assert first.lineage.numbers == {1: 1, 2: 2, 3: 3}
    reference = adopted(first.lineage.numbers, names, then_centroids, "m")
    save_reference(tmp_path / "bank", reference, [first.lineage.stable(then)])
    reference = load_reference(tmp_path / "bank")
    # this month: 100 customers left, 100 joined, and k = 4 with another seed
    now, now_centroids = fit(4, np.arange(100, 900), seed=5)

    def follow(reference, adopted_ones, embedding_model="m"):
        return track(
            reference, adopted_ones, now, vectors_of, now_centroids, embedding_model, ids[100:]
        )

    tracked = follow(reference, adopted_segments(tmp_path / "bank"))
    found = kinds(tracked.lineage)
    # the segment that held two blobs split; its second blob is the new segment 4
    assert sorted(found.values()) == ["kept", "kept", "split"]
    split = next(t for t in tracked.lineage.transitions if t.kind == "split")
    assert [number for number, _ in split.flows] in ([split.segment, 4], [4, split.segment])
    stable = tracked.lineage.stable(now)
    assert set(stable.unique()) == {1, 2, 3, 4}
    assert tracked.names == names  # the new segment 4 is named by the profile
    assert Numbering.of(lineage_record(tracked, "references/bank")).kept_names == {
        n: names[n] for n in (1, 2, 3) if n in tracked.lineage.matched_jaccard
    }
    table = tracked.migration.set_index(["from", "to"])["customers"]
    assert table.xs("left", level="to").sum() == 100 and table.loc["new"].sum() == 100
    # the same fit tracked from its own adoption changes nothing
    numbers = tracked.lineage.numbers
    again = follow(adopted(numbers, names | {4: "Fourth"}, now_centroids, "m"), stable)
    assert again.lineage.stable(now).equals(stable)
    assert set(kinds(again.lineage).values()) == {"kept"}
    # another embedding model: only the customers the reference segmented are compared
    elsewhere = follow(reference, adopted_segments(tmp_path / "bank"), "another model")
    assert elsewhere.lineage.numbers == tracked.lineage.numbers
    assert elsewhere.compared == 700 < tracked.compared == 800


def test_a_fit_with_nothing_adopted_keeps_its_numbers_and_every_segment_is_new():
    fitted = segments([1, 1, 2, 3, 3, 3])
    outcome = pd.Series([1.0, 0, 0, 1, 1, 0], index=fitted.index)
    nobody = pd.Series([], dtype=np.int64, index=pd.Index([], dtype=object))
    tallies = customer_tallies(nobody, fitted, None, None, fitted.index, outcome)
    tracked = untracked(LineageCounts.added([tallies]), with_outcome=True)
    assert tracked.lineage.numbers == {1: 1, 2: 2, 3: 3}
    assert kinds(tracked.lineage) == {1: "new", 2: "new", 3: "new"}
    metrics = lineage_metrics(tracked, 0)
    assert metrics["reference_segments"] == 0 and metrics["segments_new"] == 3
    assert metrics["customers_new"] == 6 and metrics["psi"] == 0.0
    assert tracked.changes["outcome_now"].tolist() == [0.5, 0.0, 2 / 3]
    record = lineage_record(tracked, None)
    assert Numbering.of(record) == Numbering({1: 1, 2: 2, 3: 3}, {})


def test_the_lineage_metrics_count_moves_new_and_left_customers():
    reference = segments([1, 1, 1, 1, 2, 2, 2, 2], list("abcdefgh"))
    current = segments([1, 1, 1, 2, 2, 2, 2, 1], list("abcdefgi"))  # d moved, h left, i is new
    tracked = track(
        Reference([1, 2], ["Savers", "Spenders"], np.eye(2), "m"),
        reference,
        current,
        lambda ids: np.tile([1.0, 0.0], (len(ids), 1)),
        np.eye(2),
        "m",
        pd.Index(list("abcdefgi")),
    )
    metrics = lineage_metrics(tracked, 2)
    assert (metrics["customers_in_both"], metrics["customers_new"], metrics["customers_left"]) == (
        7,
        1,
        1,
    )
    assert metrics["customers_moved_share"] == pytest.approx(1 / 7)
    assert metrics["segments_kept"] == 2 and metrics["matched_jaccard_min"] > 0.5
    moves = customer_moves(reference, tracked.lineage.stable(current))
    assert moves.loc["d"].tolist() == [1, 2]
    assert moves.loc["h"].tolist() == [2, "left"] and moves.loc["i"].tolist() == ["new", 1]
    assert moves.index.tolist()[-1] == "h"  # those who left come last


def test_adopting_again_replaces_the_reference_folder_whole(tmp_path):
    first = Reference([1, 2], ["A", "B"], np.eye(2), "m", "y_yes_rate", [0.1, 0.2])
    save_reference(tmp_path / "bank", first, [segments([1, 2])])
    second = Reference([3], ["C"], np.eye(2)[:1], "m")
    save_reference(tmp_path / "bank", second, [segments([3])])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]  # no temporary folder left
    loaded = load_reference(tmp_path / "bank")
    assert loaded.names == ["C"] and loaded.outcome_rates == [] and loaded.outcome == ""
    save_reference(tmp_path / "bank", first, [segments([1, 2])])
    again = load_reference(tmp_path / "bank")
    assert again.outcome == "y_yes_rate" and again.outcome_by_segment().to_dict() == {
        1: 0.1,
        2: 0.2,
    }


def test_customers_placed_by_the_other_model_pair_segments_but_do_not_count_as_staying():
    reference = segments([1, 1, 1, 1, 2, 2, 2, 2], list("abcdefgh"))
    current = segments([1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1], list("abcdefghxyz"))  # x, y, z new
    tracked = track(
        Reference([1, 2], ["Savers", "Spenders"], np.eye(2), "m"),
        reference,
        current,
        lambda ids: np.tile([1.0, 0.0], (len(ids), 1)),  # the new ones: nearest to segment 1
        np.eye(2),
        "m",
        pd.Index(list("abcdefghxyz")),
    )
    kept = next(t for t in tracked.lineage.transitions if t.segment == 1)
    # the pairing saw x, y and z in segment 1 both times (6 of 7 stayed), the shares do not
    assert kept.flows == ((1, 0.75), (2, 0.25))
    migration = tracked.migration.set_index(["from", "to"])["share"]
    assert migration.loc[(1, 1)] == 0.75
    # both models put x, y and z in segment 1, so it is unchanged (Jaccard 6/7); segment 2 took d
    assert changed_sentences(tracked.lineage, tracked.names) == [
        "Segment 2 'Spenders' kept 100% of its customers (Jaccard 0.80 with the adopted segment)."
    ]


def test_the_adopt_command_writes_the_reference_and_refuses_outputs_of_two_runs(tmp_path):
    project = copy_project(tmp_path, ("datasets", "params.yaml", "dvc.yaml"))
    processed, reports = project / "data/bank/processed", project / "reports/bank"
    processed.mkdir(parents=True)
    reports.mkdir(parents=True)
    (project / "data/bank/interim").mkdir()
    (processed / "labels.csv").write_text("customer_id,segment\na,1\nb,1\nc,2\nd,3\n")
    np.save(processed / "centroids.npy", np.eye(3, dtype=np.float32))
    (project / "data/bank/interim/embedding_info.json").write_text('{"model": "m"}')
    record = {
        "reference": "references/bank",
        "segments": [
            {"fitted": 1, "number": 1, "name": "Savers", "jaccard": 0.9},
            {"fitted": 2, "number": 4, "name": None, "jaccard": None},
            {"fitted": 3, "number": 2, "name": "Spenders", "jaccard": 0.7},
        ],
        "transitions": [],
    }
    (reports / "lineage.json").write_text(json.dumps(record))
    (reports / "profiles.csv").write_text("segment,name\n1,Savers\n2,Spenders\n4,Young renters\n")
    (reports / "segment_changes.csv").write_text(
        "segment,customers_then,customers_now,outcome_then,outcome_now,psi\n"
        "1,2,2,0.5,0.5,0\n2,1,1,0.1,0.0,0\n4,0,1,,1.0,0\n"
    )

    def adopt():
        return subprocess.run(
            [sys.executable, "-m", "stages.adopt", "bank"],
            cwd=project,
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )

    result = adopt()
    assert result.returncode == 0, result.stderr
    reference = load_reference(project / "references/bank")
    assert adopted_segments(project / "references/bank").to_dict() == {
        "a": 1,
        "b": 1,
        "c": 4,
        "d": 2,
    }
    assert (reference.numbers, reference.names) == (
        [1, 4, 2],
        ["Savers", "Young renters", "Spenders"],
    )
    assert reference.outcome == "y_yes_rate" and reference.outcome_rates == [0.5, 1.0, 0.0]
    before = (project / "references/bank/segments.csv").read_bytes()
    (reports / "profiles.csv").write_text("segment,name\n1,Savers\n2,Spenders\n3,Young renters\n")
    result = adopt()
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "are not from one run" in result.stderr and "dvc repro" in result.stderr
    assert (project / "references/bank/segments.csv").read_bytes() == before
