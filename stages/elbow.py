"""Stage 5: the elbow study, KMeans over a range of k on the inliers; independent of the chosen k.

Besides inertia and the validity scores, each k's stability: how far its segments come back when a
seeded sample is refitted with other seeds and on bootstrap resamples, which, with the knee, makes
the suggested k. The curve is that of the inliers kmeans fits on: a seeded sample of
``sample_fit_rows`` of them, which is all of them below that size.
"""

from __future__ import annotations

from segmentation.artifacts import run, write_csv, write_metrics, write_png
from segmentation.config import layout, load_params
from segmentation.evaluation import stability
from segmentation.evaluation.elbow import elbow_curve, elbow_figure, stability_curve
from segmentation.model.sampling import sample_inliers


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    vectors = sample_inliers(paths, params.sample_fit_rows, params.seed).vectors
    ks = range(params.elbow.k_min, params.elbow.k_max + 1)
    curve = elbow_curve(vectors, ks, params.elbow.n_init, params.seed, params.silhouette_max_rows)
    # The refits repeat the segmentation's own KMeans (kmeans.n_init restarts), so a k's stability
    # is that of the segments the pipeline would make with it.
    refits = stability.kmeans_refits(
        vectors[stability.refit_rows(len(vectors), params)],
        ks,
        params.kmeans.n_init,
        params.stability,
        params.seed,
    )
    curve = curve.merge(stability_curve(refits), on="n_clusters")
    suggestion = stability.suggest_k(curve)
    stability.save_refits(paths.refits, refits, params.kmeans.n_init, params.stability, params.seed)
    write_csv(paths.plots / "elbow.csv", curve)
    write_png(paths.plots / "elbow.png", elbow_figure(curve, suggestion))
    write_metrics(
        paths.metrics / "elbow.json",
        {**suggestion, "silhouette_sampled": int(curve["silhouette_sampled"].iloc[0])},
    )


if __name__ == "__main__":
    run(main)
