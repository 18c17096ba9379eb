"""Do the segments come back? Refits on resamples, the choice of k, near ties, stable segments.

For the chosen k: ``python -m stages.stability <name>`` measures whether the committed segments are
a near tie and each segment's clusterwise Jaccard. The refits at k are the elbow study's when k is
in its range (the same sample, seeds and resamples), else they are fitted here.

Refits follow Ben-Hur, Elisseeff & Guyon (2002) and Hennig (2007, R's ``fpc::clusterboot``): a
seeded sample of customers is fitted once per seed and once per bootstrap resample; the adjusted
Rand index (ARI) says how much the segments move, the clusterwise Jaccard which segments come back.
Every refit is seeded and runs on one thread, so the results do not depend on the number of jobs.
It reads the rows kmeans fits on (every inlier up to ``sample_fit_rows``, else a seeded sample of
that many), and measures everything, the near tie included, on them.
"""

from __future__ import annotations

from segmentation.artifacts import run, write_metrics
from segmentation.config import layout, load_params
from segmentation.evaluation.stability import refit_rows, saved_refits, segment_stability
from segmentation.model.sampling import read_segmented_sample


def main(name: str) -> None:
    params, paths = load_params(), layout(name)
    # the rows kmeans fits on: every inlier up to sample_fit_rows
    vectors, segments = read_segmented_sample(paths, params.sample_fit_rows, params.seed)
    sample = refit_rows(len(vectors), params)
    n_init, settings = params.kmeans.n_init, params.stability
    refits = saved_refits(paths.refits, params.k, len(sample), n_init, settings, params.seed)
    found = segment_stability(
        vectors, segments, sample, params.k, n_init, settings, params.seed, refits
    )
    write_metrics(paths.metrics / "stability.json", found)


if __name__ == "__main__":
    run(main)
