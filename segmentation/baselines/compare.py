"""The three methods side by side, on the same customers: the article's claim, checkable.

Every number here is computed on the customers that all three methods keep (the embedding ECOD
inliers that are also Method-1 ECOD inliers), so the methods are scored on identical rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats.contingency import association
from sklearn.metrics import adjusted_rand_score

from segmentation.artifacts import (
    metric_key,
    subplots,
)
from segmentation.baselines.tabular import encoding_description
from segmentation.config import ExplainParams
from segmentation.data.dataset import Dataset
from segmentation.evaluation import stability
from segmentation.evaluation.maps import scatter_segments
from segmentation.evaluation.surrogate import explain, surrogate_features
from segmentation.evaluation.validity import cluster_metrics
from segmentation.reporting.profile import outcome_title, outcome_values

METHODS = {
    "embedding": "Embeddings + KMeans",
    "tabular": "Tabular KMeans (Method 1)",
    "kprototypes": "K-Prototypes (Method 2)",
}
SPACES = {"tabular": "Method-1 tabular matrix", "embeddings": "embedding matrix"}
# metric: (plain name, higher is better)
VALIDITY = {
    "davies_bouldin": ("Davies-Bouldin", False),
    "calinski_harabasz": ("Calinski-Harabasz", True),
    "silhouette": ("Silhouette", True),
}


def measures(dataset: Dataset) -> dict[str, tuple[str, bool]]:
    """Every compared measure: metrics key with ``{method}`` left open
    -> (plain name, higher is better)."""
    return (
        {
            f"{{method}}_on_{space}_{metric}": (f"{name} in the {SPACES[space]}", higher)
            for space in SPACES
            for metric, (name, higher) in VALIDITY.items()
        }
        | {
            "{method}_surrogate_accuracy": (
                f"Surrogate held-out accuracy ({len(dataset.segment_on)} columns)",
                True,
            ),
            "{method}_seed_ari_mean": ("Stability across seeds (mean ARI)", True),
            "{method}_bootstrap_ari_mean": (
                "Stability across bootstrap resamples (mean ARI)",
                True,
            ),
        }
        | {
            f"{{method}}_{outcome_metric(column)}_association": (
                f"Separates {outcome_title(dataset, column)} "
                f"({'correlation ratio' if value == 'mean' else 'Cramér V'})",
                True,
            )
            for column, value in dataset.describe.items()
        }
    )


def outcome_metric(column: str) -> str:
    return metric_key("outcome", column)


def common_rows(labels: dict[str, pd.Series], order: pd.Index) -> pd.Index:
    """Customer ids segmented by every method, in the table's order."""
    kept = np.ones(len(order), dtype=bool)
    for series in labels.values():
        kept &= order.isin(series.index)
    return order[kept]


def outcome_separation(outcome: pd.Series, segments: np.ndarray, numeric: bool) -> dict[str, float]:
    """How much the segments separate one outcome: the range of its per-segment rate (or mean), and
    Cramér's V of segment against outcome (the correlation ratio for a numeric outcome)."""
    frame = pd.DataFrame({"segment": segments, "outcome": outcome.to_numpy()})
    by_segment = frame.groupby("segment")["outcome"].mean()
    if numeric:
        total = ((frame["outcome"] - frame["outcome"].mean()) ** 2).sum()
        sizes = frame.groupby("segment").size()
        between = (sizes * (by_segment - frame["outcome"].mean()) ** 2).sum()
        strength = float(np.sqrt(between / total)) if total > 0 else 0.0
    else:
        counts = pd.crosstab(frame["segment"], frame["outcome"]).to_numpy()
        strength = float(association(counts, method="cramer")) if counts.shape[1] > 1 else 0.0
    return {"spread": float(by_segment.max() - by_segment.min()), "association": strength}


def outcome_scores(
    customers: pd.DataFrame, segments: dict[str, np.ndarray], dataset: Dataset
) -> dict[str, float]:
    scores = {}
    for column in dataset.describe:
        outcome = outcome_values(customers, dataset, column)
        for method, labels in segments.items():
            found = outcome_separation(outcome, labels, dataset.columns[column].kind == "numeric")
            scores.update(
                {
                    f"{method}_{outcome_metric(column)}_{name}": value
                    for name, value in found.items()
                }
            )
    return scores


def space_scores(
    spaces: dict[str, np.ndarray],
    segments: dict[str, np.ndarray],
    silhouette_max_rows: int,
    seed: int,
) -> dict[str, float]:
    """Every method's validity scores in every common space, as ``<method>_on_<space>_<metric>``."""
    return {
        f"{method}_on_{space}_{metric}": scores[metric]
        for space, matrix in spaces.items()
        for method, scores in zip(
            segments, cluster_metrics(matrix, list(segments.values()), silhouette_max_rows, seed)
        )
        for metric in VALIDITY
    }


def silhouette_note(rows: int, silhouette_max_rows: int) -> str:
    if rows <= silhouette_max_rows:
        return "exact, over all of them"
    return (
        f"seeded estimates from {silhouette_max_rows:,} of them (`silhouette_max_rows`), "
        "the same rows for every method"
    )


def surrogate_scores(
    customers: pd.DataFrame,
    dataset: Dataset,
    segments: dict[str, np.ndarray],
    params: ExplainParams,
    seed: int,
):
    """Held-out accuracy of the LightGBM surrogate per method, and its top SHAP columns."""
    features = surrogate_features(customers, dataset)
    scores, top = {}, {}
    for method, labels in segments.items():
        metrics, importance, _ = explain(features, labels, params, seed)
        scores[f"{method}_surrogate_accuracy"] = metrics["holdout_accuracy"]
        scores[f"{method}_surrogate_macro_f1"] = metrics["holdout_macro_f1"]
        scores[f"{method}_majority_class_accuracy"] = metrics["majority_class_accuracy"]
        top[method] = importance["feature"].head(params.top_features).tolist()
    return scores, top


def agreement(segments: dict[str, np.ndarray]) -> dict[str, float]:
    return {
        f"ari_{a}_{b}": adjusted_rand_score(segments[a], segments[b])
        for a, b in itertools.combinations(segments, 2)
    }


def refit_scores(found: dict[str, float]) -> dict[str, float]:
    """The refit ARIs and clusterwise Jaccards among the stability stage's metrics."""
    return {
        key: value
        for key, value in found.items()
        if key.endswith(("_ari_mean", "_ari_min")) and key.startswith(("seed_", "bootstrap_"))
        or (key.startswith("segment_") and key.endswith("_jaccard"))
    }


def refit_stability(
    fit: Callable[[np.ndarray, int], np.ndarray],
    segments: np.ndarray,
    k: int,
    seeds: int,
    rounds: int,
    seed: int,
) -> dict[str, float]:
    """One method's refits of the sampled customers, whose committed ``segments`` (1..k) are given:
    ARI across seeds and bootstrap resamples, and each segment's clusterwise Jaccard over the same
    resamples (0 for a segment none of the sampled customers is in). ``fit(row_indices, seed)``
    returns the segments of those rows.
    """
    refits = stability.refit(fit, len(segments), seeds, rounds, seed)
    jaccard = stability.clusterwise_jaccard(segments, refits, k)
    return stability.ari_scores(refits) | {f"segment_{s}_jaccard": v for s, v in jaccard.items()}


def comparison_figure(maps: dict[str, np.ndarray], segments: dict[str, np.ndarray], k: int):
    """Rows: the common spaces' first two PCA components; columns: the methods."""
    figure, axes = subplots(
        len(maps), len(segments), figsize=(4.2 * len(segments), 3.8 * len(maps)), squeeze=False
    )
    for row, (space, points) in enumerate(maps.items()):
        for column, (method, labels) in enumerate(segments.items()):
            axis = axes[row, column]
            scatter_segments(axis, points[:, 0], points[:, 1], labels)
            axis.set_title(f"{METHODS[method]}\nin the {SPACES[space]}", fontsize="medium")
            axis.set_xlabel("PCA 1")
            axis.set_ylabel("PCA 2")
    figure.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="outside right upper",
        markerscale=6,
        fontsize="small",
    )
    figure.suptitle(f"The same customers, k = {k}: one colour per segment (segment 1 = largest)")
    return figure


# --- the report -------------------------------------------------------------------------------


def winners(metrics: dict[str, float], compared: dict[str, tuple[str, bool]]) -> dict[str, str]:
    """The best method on each measure, by the measure's open key."""
    best = {}
    for key, (_, higher) in compared.items():
        values = {method: metrics[key.format(method=method)] for method in METHODS}
        best[key] = (max if higher else min)(values, key=values.get)
    return best


def verdict(metrics: dict[str, float], compared: dict[str, tuple[str, bool]], k: int) -> str:
    """A paragraph that states, from the numbers,
    which method wins where and how far to trust it."""
    best = winners(metrics, compared)
    wins = {
        method: [compared[key][0] for key, winner in best.items() if winner == method]
        for method in METHODS
    }
    sentences = [
        f"{METHODS[method]} is best on {len(won)} of {len(best)} measures ({'; '.join(won)})."
        if won
        else f"{METHODS[method]} is best on none of the {len(best)} measures."
        for method, won in sorted(wins.items(), key=lambda item: -len(item[1]))
    ]
    home_wins = [
        best[f"{{method}}_on_{space}_{metric}"] == method
        for space, method in (("tabular", "tabular"), ("embeddings", "embedding"))
        for metric in VALIDITY
    ]
    if sum(home_wins) >= len(home_wins) - 1:
        sentences.append(
            "The internal indices mostly favour the method fitted in the space they are "
            "measured in, so they say more about the space than about which segmentation is better."
        )
    embedding_wins = len(wins["embedding"])
    sentences.append(
        f"The article's claim that embeddings segment better is supported on {embedding_wins} of "
        f"{len(best)} measures"
        + (", a majority." if embedding_wins > len(best) / 2 else ", not a majority.")
    )
    for refit, cause in (("seed", "the seed"), ("bootstrap", "the customers sampled")):
        ari = {method: metrics[f"{method}_{refit}_ari_mean"] for method in METHODS}
        stable = [METHODS[m] for m in METHODS if ari[m] >= stability.STABLE_ARI]
        shaky = [m for m in METHODS if ari[m] < stability.SHAKY_ARI]
        if stable:
            sentences.append(
                f"Changing {cause} barely changes the segments of "
                f"{' and '.join(stable)} (mean ARI at least {stability.STABLE_ARI})."
            )
        if shaky:
            sentences.append(
                f"Changing {cause} moves many customers between the segments of "
                f"{' and '.join(METHODS[m] for m in shaky)} (mean ARI "
                f"{' and '.join(f'{ari[m]:.2f}' for m in shaky)}, below {stability.SHAKY_ARI}): "
                "part of them is an accident of "
                + ("initialisation." if refit == "seed" else "the sample.")
            )
    sentences.append(jaccard_verdict(metrics, k))
    pairs = {
        pair: metrics[f"ari_{pair[0]}_{pair[1]}"] for pair in itertools.combinations(METHODS, 2)
    }
    closest = max(pairs, key=pairs.get)
    sentences.append(
        f"The methods find {'largely different' if pairs[closest] < 0.5 else 'partly shared'} "
        f"segments: the closest pair, {METHODS[closest[0]]} and {METHODS[closest[1]]}, agree with "
        f"ARI {pairs[closest]:.2f}."
    )
    return " ".join(sentences)


def jaccard_verdict(metrics: dict[str, float], k: int) -> str:
    """Whose segments come back best: most stable segments, then the highest mean Jaccard."""
    floor = stability.JACCARD_BANDS[0][0]
    jaccard = {method: stability.segment_jaccards(metrics, k, f"{method}_") for method in METHODS}
    stable = {method: sum(v >= floor for v in found.values()) for method, found in jaccard.items()}
    mean = {method: float(np.mean(list(found.values()))) for method, found in jaccard.items()}
    order = sorted(METHODS, key=lambda method: (-stable[method], -mean[method]))
    first, *others = order
    return (
        f"Per segment, {METHODS[first]} has {stable[first]} of {k} segments stable (clusterwise "
        f"Jaccard at least {floor}, mean {mean[first]:.2f}); "
        + "; ".join(f"{METHODS[m]} {stable[m]} (mean {mean[m]:.2f})" for m in others)
        + "."
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _number(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}"


def render_report(
    metrics: dict[str, float],
    own: dict[str, dict],
    top: dict[str, list[str]],
    context: dict,
    dataset: Dataset,
) -> str:
    names = list(METHODS.values())
    compared_measures = measures(dataset)
    own_rows = [
        [METHODS[method], description, f"{own[method]['rows']:,}"]
        + [_number(own[method][metric]) for metric in VALIDITY]
        for method, description in context["own_spaces"].items()
    ]
    own_table = _table(
        ["Method", "Space", "Customers", "Davies-Bouldin", "Calinski-Harabasz", "Silhouette"],
        own_rows,
    )
    best = winners(metrics, compared_measures)
    compared = []
    for key, (name, _) in compared_measures.items():
        cells = [_number(metrics[key.format(method=method)]) for method in METHODS]
        compared.append(
            [
                name,
                *(
                    f"**{cell}**" if method == best[key] else cell
                    for method, cell in zip(METHODS, cells)
                ),
            ]
        )
    surrogate = [
        [
            METHODS[m],
            f"{metrics[f'{m}_surrogate_accuracy']:.3f}",
            f"{metrics[f'{m}_surrogate_macro_f1']:.3f}",
            f"{metrics[f'{m}_majority_class_accuracy']:.3f}",
            ", ".join(top[m]),
        ]
        for m in METHODS
    ]
    surrogate_table = _table(
        ["Method", "Held-out accuracy", "Macro-F1", "Majority class", "Top SHAP columns"],
        surrogate,
    )
    pairs = {
        frozenset(pair): metrics[f"ari_{pair[0]}_{pair[1]}"]
        for pair in itertools.combinations(METHODS, 2)
    }
    ari = [
        [METHODS[a], *("1" if a == b else f"{pairs[frozenset((a, b))]:.3f}" for b in METHODS)]
        for a in METHODS
    ]
    stable = [
        [
            METHODS[m],
            f"{metrics[f'{m}_seed_ari_mean']:.3f} (min {metrics[f'{m}_seed_ari_min']:.3f})",
            f"{metrics[f'{m}_bootstrap_ari_mean']:.3f} (min "
            f"{metrics[f'{m}_bootstrap_ari_min']:.3f})",
        ]
        for m in METHODS
    ]
    jaccard = {m: stability.segment_jaccards(metrics, context["k"], f"{m}_") for m in METHODS}
    per_segment = [
        [METHODS[m], *(f"{v:.2f} {stability.reading(v)}" for v in jaccard[m].values())]
        for m in METHODS
    ]
    segment_sentences = "\n".join(
        f"- {METHODS[m]}: {stability.segments_sentence(jaccard[m])}" for m in METHODS
    )
    columns = len(dataset.segment_on)
    numbers = ", ".join(dataset.numeric)
    # In the templates below, Python drops a backslash at a line's end with the line break, so
    # the report keeps long list items and sentences on one markdown line.
    outcomes = ""
    for column, value in dataset.describe.items():
        key = outcome_metric(column)
        unit = "" if value == "mean" else " points"
        scale = 1 if value == "mean" else 100
        rows = [
            [
                METHODS[m],
                f"{metrics[f'{m}_{key}_spread'] * scale:.1f}{unit}",
                f"{metrics[f'{m}_{key}_association']:.3f}",
            ]
            for m in METHODS
        ]
        strength = "correlation ratio" if value == "mean" else "Cramér's V"
        outcomes += f"""
### {outcome_title(dataset, column)}

The range of the per-segment {"mean" if value == "mean" else "rate"} \
(highest segment minus lowest) and the
{strength} between segment and outcome (0: the segments say nothing about it).

{_table(["Method", "Range across segments", f"Association ({strength})"], rows)}
"""
    outcome_section = (
        f"\n## How far the segments separate the outcomes\n{outcomes}" if outcomes else ""
    )
    return f"""# Three ways to segment the same customers: {dataset.title}

Generated by `dvc repro` (stage `compare@{context["name"]}`); do not edit by hand.

k = {context["k"]} segments for every method, seed {context["seed"]}, \
embedding model `{context["model"]}`.
The comparison uses the **{metrics["common_rows"]:,} customers** \
that all three methods keep (ECOD inliers of
the embeddings and of the Method-1 matrix).

- **Embeddings + KMeans**: each customer written as text, embedded with the model, \
KMeans on the vectors.
- **Tabular KMeans (Method 1)**: the {columns} segmentation columns encoded \
({encoding_description(dataset, context["encoding"])}), KMeans on that matrix.
- **K-Prototypes (Method 2)**: the {columns} columns as they are \
({numbers} power-transformed), K-Prototypes.

## Each method in its own space, as the article reports it

Not comparable across rows: each index is measured in a different space, \
on the method's own inliers.

{own_table}

## All methods in the same spaces

Every method's segments scored in the Method-1 tabular matrix and in the embedding matrix, on the
same {metrics["common_rows"]:,} customers. Davies-Bouldin: lower is better; \
the others: higher is better; the
best of each row is in bold. Silhouettes: {context["silhouette"]}. \
Stability: the two baselines refitted on a seeded sample of
{context["stability_rows"]:,} of these customers, with {context["stability_seeds"]} seeds \
(all pairs compared) and on
{context["bootstrap_rounds"]} bootstrap resamples \
(compared with the first seed's fit on the customers each drew); the embedding segments' refits
are the stability stage's, with the same settings on a sample of all their inliers
(`metrics/{context["name"]}/stability.json`).
An adjusted Rand index (ARI) of 1 means identical segments, 0 what chance gives.

{_table(["Measure", *names], compared)}
{outcome_section}
## How well the {columns} segmentation columns explain each method's segments

A LightGBM surrogate predicts each customer's segment from the {columns} columns; \
accuracy and macro-F1 on a
held-out {context["test_share"]:.0%}, and the columns with the largest mean |SHAP|.

{surrogate_table}

## Agreement between methods (adjusted Rand index)

{_table(["", *names], ari)}

## Stability (adjusted Rand index between refits)

{_table(["Method", "Across seeds", "Across bootstrap resamples"], stable)}

## Stability of each segment (clusterwise Jaccard)

Each segment's mean Jaccard with its best-matching segment in each of the
{context["bootstrap_rounds"]} bootstrap refits above, on the customers each resample drew (Hennig's
clusterwise Jaccard, as R's `fpc::clusterboot`): {stability.bands_legend()}.

{_table(["Method", *(f"Segment {s}" for s in range(1, context["k"] + 1))], per_segment)}

{segment_sentences}

Embeddings + KMeans on all its inliers (`metrics/{context["name"]}/stability.json`):
{context["near_tie"]}

## Maps

![comparison_pca]({context["plots"]}/comparison_pca.png)

## Verdict

{verdict(metrics, compared_measures, context["k"])}
"""
