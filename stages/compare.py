"""The three methods side by side, on the same customers: the article's claim, checkable.

Every number here is computed on the customers that all three methods keep (the embedding ECOD
inliers that are also Method-1 ECOD inliers), so the methods are scored on identical rows.
"""

from __future__ import annotations

from segmentation.artifacts import (
    CUSTOMER_ID,
    read_csv,
    read_json,
    read_npy,
    run,
    write_metrics,
    write_png,
    write_text,
)
from segmentation.baselines.compare import (
    agreement,
    common_rows,
    comparison_figure,
    outcome_scores,
    refit_scores,
    refit_stability,
    render_report,
    silhouette_note,
    space_scores,
    surrogate_scores,
)
from segmentation.baselines.kprototypes import fit_prototypes, numeric_columns, prototype_frame
from segmentation.config import Params, layout, load_params
from segmentation.data.dataset import load_dataset, read_customers
from segmentation.evaluation import stability
from segmentation.evaluation.projection import pca_projection
from segmentation.model.kmeans import fit_segments
from segmentation.model.sampling import sample_rows


def main(name: str) -> None:
    params: Params = load_params()
    dataset, paths = load_dataset(name), layout(name)
    customers = read_customers(paths.customers, dataset)
    labels = {
        method: read_csv(path).set_index(CUSTOMER_ID)["segment"]
        for method, path in (
            ("embedding", paths.labels),
            ("tabular", paths.tabular_labels),
            ("kprototypes", paths.kprototypes_labels),
        )
    }
    ids = common_rows(labels, customers.index)
    # the customers' rows in the embedding and tabular matrices
    rows = customers.index.get_indexer(ids)
    segments = {method: series.loc[ids].to_numpy() for method, series in labels.items()}
    tabular_matrix, embeddings = read_npy(paths.tabular_matrix), read_npy(paths.embeddings)
    spaces = {"tabular": tabular_matrix[rows], "embeddings": embeddings[rows]}

    metrics: dict[str, float] = {"common_rows": len(ids)}
    metrics.update(space_scores(spaces, segments, params.silhouette_max_rows, params.seed))
    common = customers.loc[ids]
    surrogates, top = surrogate_scores(common, dataset, segments, params.explain, params.seed)
    metrics.update(surrogates)
    metrics.update(agreement(segments))
    metrics.update(outcome_scores(common, segments, dataset))

    # The baselines are refitted as the stability stage refits the embedding segments (same
    # sample size, seeds and rounds), whose results are taken from it rather than computed again.
    found = read_json(paths.metrics / "stability.json")
    metrics.update({f"embedding_{key}": value for key, value in refit_scores(found).items()})
    sample = sample_rows(len(ids), params.stability.rows, params.seed)
    tabular_sample = spaces["tabular"][sample]
    # K-Prototypes sees the frame it was fitted on: power transform fitted on all Method-1 inliers.
    frame_sample = prototype_frame(customers.loc[labels["kprototypes"].index], dataset).loc[
        ids[sample]
    ]
    refits = {
        "tabular": lambda picked, seed: fit_segments(
            tabular_sample[picked],
            params.k,
            params.comparison.tabular.n_init,
            seed,
            max_iter=params.comparison.tabular.max_iter,
        )[0],
        "kprototypes": lambda picked, seed: fit_prototypes(
            frame_sample.iloc[picked],
            params.k,
            params.comparison.kprototypes.n_init,
            params.comparison.kprototypes.max_iter,
            seed,
        )[0],
    }
    for method, fit in refits.items():
        scores = refit_stability(
            fit,
            segments[method][sample],
            params.k,
            params.stability.seeds,
            params.stability.bootstrap_rounds,
            params.seed,
        )
        metrics.update({f"{method}_{measure}": value for measure, value in scores.items()})
    write_metrics(paths.metrics / "comparison.json", metrics)

    coordinates = (
        read_csv(paths.projections).set_index(CUSTOMER_ID).loc[ids, ["pca_1", "pca_2"]].to_numpy()
    )
    maps = {
        "tabular": pca_projection(spaces["tabular"], params.seed)[0][:, :2],
        "embeddings": coordinates,
    }
    write_png(paths.plots / "comparison_pca.png", comparison_figure(maps, segments, params.k))

    own = {
        "embedding": {
            **read_json(paths.metrics / "evaluate.json"),
            "rows": len(labels["embedding"]),
        },
        "tabular": {**read_json(paths.metrics / "tabular.json"), "rows": len(labels["tabular"])},
        "kprototypes": {
            **read_json(paths.metrics / "kprototypes.json"),
            "rows": len(labels["kprototypes"]),
        },
    }
    context = {
        "name": name,
        "k": params.k,
        "seed": params.seed,
        "model": params.model,
        "encoding": params.comparison.tabular.encoding,
        "silhouette": silhouette_note(len(ids), params.silhouette_max_rows),
        "stability_rows": len(sample),
        "stability_seeds": params.stability.seeds,
        "bootstrap_rounds": params.stability.bootstrap_rounds,
        "near_tie": stability.near_tie_sentence(
            params.k, read_json(paths.metrics / "stability.json"), params.stability.near_tie_gap_pct
        ),
        "test_share": params.explain.test_size,
        "plots": f"../../{paths.plots.as_posix()}",
        "own_spaces": {
            "embedding": f"{embeddings.shape[1]}-d embeddings",
            "tabular": f"{tabular_matrix.shape[1]} encoded columns",
            "kprototypes": (
                f"{', '.join(numeric_columns(frame_sample))}, one-hot categories × √(γ/2)"
            ),
        },
    }
    write_text(paths.reports / "comparison.md", render_report(metrics, own, top, context, dataset))


if __name__ == "__main__":
    run(main)
