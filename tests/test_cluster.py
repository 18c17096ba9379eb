"""Work on every customer shard by shard: a local 2-CPU Ray gives what this process gives, and
kmeans labelled shard by shard is the fit in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation import cluster
from segmentation.artifacts import PipelineError, write_csv
from segmentation.embedding.shards import read_vectors
from segmentation.model import kmeans
from segmentation.model.predict import ROW, predict_customers
from segmentation.model.sampling import MatrixRows, sample_rows
from segmentation.model.segment_model import SegmentModel
from segmentation.testing import synthetic

CUSTOMERS = 3_000


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Stand-in vectors of 3,000 customers in shards of 700 (the last one partial), and a segment
    model fitted on a sample of 2,000 of them."""
    folder = tmp_path_factory.mktemp("stand-ins")
    shape = {"dimension": 16, "centers": 6, "spread": 0.8, "seed": 3}
    synthetic.write_embedding_stand_ins(folder, CUSTOMERS, **shape, block_rows=350, shard_rows=700)
    vectors = read_vectors(folder / "embeddings")
    model = SegmentModel(k=4, n_init=2, sample_fit_rows=2_000, seed=7).fit(vectors)
    model.segment_names = ["Savers", "Borrowers", "Retirees", "Students"]
    return folder / "embeddings", model


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    owned = cluster.start_ray(num_cpus=2)
    yield
    if owned:
        ray.shutdown()


def test_ray_predicts_every_customer_as_this_process_does(fitted, ray_cluster):
    folder, model = fitted
    local = list(predict_customers(model, folder, "local"))
    on_ray = pd.concat(predict_customers(model, folder, "ray"), ignore_index=True)
    assert [len(part) for part in local] == [700, 700, 700, 700, 200]
    local = pd.concat(local, ignore_index=True)
    pd.testing.assert_frame_equal(on_ray, local)
    assert local[ROW].tolist() == list(range(CUSTOMERS))
    whole = model.predict(np.asarray(read_vectors(folder)))
    pd.testing.assert_frame_equal(local.drop(columns=ROW), whole)
    assert set(local["segment"]) == {1, 2, 3, 4} and local["outlier"].between(0, 1).all()


def test_an_unknown_engine_is_refused_in_one_line(fitted):
    folder, model = fitted
    with pytest.raises(PipelineError, match="engine 'spark' is not one of local, ray"):
        next(predict_customers(model, folder, "spark"))


def test_each_shard_gets_its_rows_of_a_row_aligned_csv(fitted, tmp_path):
    folder, _ = fitted
    ids = [f"C{row:05d}" for row in range(CUSTOMERS)]
    write_csv(tmp_path / "flags.csv", pd.DataFrame({"customer_id": ids, "row": range(CUSTOMERS)}))
    aligned = {"flags": (tmp_path / "flags.csv", ["customer_id", "row"])}
    parts = list(cluster.map_shards(shard_flags, folder, "local", aligned=aligned))
    assert [part["first"].item() for part in parts] == [
        "C00000",
        "C00700",
        "C01400",
        "C02100",
        "C02800",
    ]
    assert all(part["aligned"].item() for part in parts)
    write_csv(tmp_path / "short.csv", pd.DataFrame({"customer_id": ids[:-1]}))
    with pytest.raises(
        PipelineError, match=r"short.csv has 2999 rows but the shards of .*embeddings call for 3000"
    ):
        next(
            cluster.map_shards(
                shard_flags,
                folder,
                "local",
                aligned={"flags": (tmp_path / "short.csv", ["customer_id"])},
            )
        )


def shard_flags(rows, shard, flags: pd.DataFrame) -> pd.DataFrame:
    aligned = flags["row"].tolist() == list(range(shard.start, shard.start + shard.rows))
    return pd.DataFrame({"first": [flags["customer_id"].iloc[0]], "aligned": [aligned]})


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_kmeans_labels_over_shards_are_the_in_memory_fits(fitted, tmp_path, engine, request):
    """Every inlier labelled shard by shard, one shard holding outliers only, numbers the segments
    as ``fit_kmeans`` does on the inliers in memory: the same labels, centroids and inertia."""
    if engine == "ray":
        request.getfixturevalue("ray_cluster")
    folder, _ = fitted
    outlier = np.zeros(CUSTOMERS, dtype=np.int8)
    outlier[700:1400] = 1  # the second shard
    outlier[::7] = 1
    ids = [f"C{row:05d}" for row in range(CUSTOMERS)]
    write_csv(tmp_path / "flags.csv", pd.DataFrame({"customer_id": ids, "outlier": outlier}))
    inliers = MatrixRows(read_vectors(folder), np.flatnonzero(outlier == 0))
    labels, centroids, inertia = kmeans.fit_kmeans(inliers, 4, 2, 1_000, 7)

    sample = inliers.take(sample_rows(len(inliers), 1_000, 7))
    _, sample_centroids, _ = kmeans.fit_segments(sample, 4, 2, 7)
    nearest = cluster.map_shards(
        kmeans.nearest_shard,
        folder,
        engine,
        sample_centroids,
        aligned={"flags": (tmp_path / "flags.csv", ["customer_id", "outlier"])},
    )
    count, by_size = kmeans.write_labels(tmp_path / "labels.csv", nearest, 4)
    written = pd.read_csv(tmp_path / "labels.csv")
    assert written["customer_id"].tolist() == [ids[row] for row in inliers.positions]
    assert np.array_equal(written["segment"].to_numpy(), labels)
    assert np.array_equal(sample_centroids[by_size], centroids)
    assert count.inertia == pytest.approx(inertia, rel=1e-12)
    assert list(tmp_path.glob(".labels.csv*")) == []  # the scratch file is gone
