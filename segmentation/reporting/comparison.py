"""The comparison report (``reports/<name>/comparison.md``): the three methods' scores on the same
customers as tables, and a verdict that says, from the numbers, which method wins where and how far
to trust it. The numbers are ``segmentation.baselines.compare``'s.
"""

from __future__ import annotations

import itertools

import numpy as np

from segmentation.baselines.compare import METHODS, SPACES, VALIDITY, Comparison, outcome_metric
from segmentation.baselines.tabular import encoding_description
from segmentation.config import Params, layout
from segmentation.data.dataset import Dataset
from segmentation.data.outcomes import outcome_title
from segmentation.evaluation.stability import JACCARD_BANDS, SHAKY_ARI, STABLE_ARI, segment_jaccards
from segmentation.reporting.render import render
from segmentation.reporting.stability import (
    bands_legend,
    near_tie_sentence,
    reading,
    segments_sentence,
)
from segmentation.reporting.tables import markdown_table


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


def silhouette_note(rows: int, silhouette_max_rows: int) -> str:
    if rows <= silhouette_max_rows:
        return "exact, over all of them"
    return (
        f"seeded estimates from {silhouette_max_rows:,} of them (`silhouette_max_rows`), "
        "the same rows for every method"
    )


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
        stable = [METHODS[m] for m in METHODS if ari[m] >= STABLE_ARI]
        shaky = [m for m in METHODS if ari[m] < SHAKY_ARI]
        if stable:
            sentences.append(
                f"Changing {cause} barely changes the segments of "
                f"{' and '.join(stable)} (mean ARI at least {STABLE_ARI})."
            )
        if shaky:
            sentences.append(
                f"Changing {cause} moves many customers between the segments of "
                f"{' and '.join(METHODS[m] for m in shaky)} (mean ARI "
                f"{' and '.join(f'{ari[m]:.2f}' for m in shaky)}, below {SHAKY_ARI}): "
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
    floor = JACCARD_BANDS[0][0]
    jaccard = {method: segment_jaccards(metrics, k, f"{method}_") for method in METHODS}
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


def _number(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}"


def own_table(own: dict[str, dict], own_spaces: dict[str, str]) -> str:
    """Each method's validity indices in its own space, on its own inliers."""
    return markdown_table(
        ["Method", "Space", "Customers", "Davies-Bouldin", "Calinski-Harabasz", "Silhouette"],
        [
            [METHODS[method], space, f"{own[method]['rows']:,}"]
            + [_number(own[method][metric]) for metric in VALIDITY]
            for method, space in own_spaces.items()
        ],
    )


def compared_table(metrics: dict[str, float], compared: dict[str, tuple[str, bool]]) -> str:
    """Every compared measure for every method, the best in bold."""
    best = winners(metrics, compared)
    rows = []
    for key, (name, _) in compared.items():
        cells = {method: _number(metrics[key.format(method=method)]) for method in METHODS}
        rows.append(
            [
                name,
                *(f"**{cell}**" if method == best[key] else cell for method, cell in cells.items()),
            ]
        )
    return markdown_table(["Measure", *METHODS.values()], rows)


def outcome_tables(metrics: dict[str, float], dataset: Dataset) -> list[dict[str, str]]:
    """Per described outcome: how far each method's segments spread it and how strongly they are
    associated with it (the correlation ratio for a mean, Cramér's V for a rate)."""
    found = []
    for column, value in dataset.describe.items():
        key, mean = outcome_metric(column), value == "mean"
        unit, scale = ("", 1) if mean else (" points", 100)
        strength = "correlation ratio" if mean else "Cramér's V"
        rows = [
            [
                METHODS[m],
                f"{metrics[f'{m}_{key}_spread'] * scale:.1f}{unit}",
                f"{metrics[f'{m}_{key}_association']:.3f}",
            ]
            for m in METHODS
        ]
        found.append(
            {
                "title": outcome_title(dataset, column),
                "statistic": "mean" if mean else "rate",
                "strength": strength,
                "table": markdown_table(
                    ["Method", "Range across segments", f"Association ({strength})"], rows
                ),
            }
        )
    return found


def surrogate_table(metrics: dict[str, float], top: dict[str, list[str]]) -> str:
    return markdown_table(
        ["Method", "Held-out accuracy", "Macro-F1", "Majority class", "Top SHAP columns"],
        [
            [
                METHODS[m],
                f"{metrics[f'{m}_surrogate_accuracy']:.3f}",
                f"{metrics[f'{m}_surrogate_macro_f1']:.3f}",
                f"{metrics[f'{m}_majority_class_accuracy']:.3f}",
                ", ".join(top[m]),
            ]
            for m in METHODS
        ],
    )


def agreement_table(metrics: dict[str, float]) -> str:
    """The ARI between every two methods' segments, as a symmetric matrix."""
    pairs = {
        frozenset(pair): metrics[f"ari_{pair[0]}_{pair[1]}"]
        for pair in itertools.combinations(METHODS, 2)
    }
    return markdown_table(
        ["", *METHODS.values()],
        [
            [METHODS[a], *("1" if a == b else f"{pairs[frozenset((a, b))]:.3f}" for b in METHODS)]
            for a in METHODS
        ],
    )


def refit_table(metrics: dict[str, float]) -> str:
    """Each method's mean (and lowest) ARI between refits across seeds and bootstrap resamples."""
    return markdown_table(
        ["Method", "Across seeds", "Across bootstrap resamples"],
        [
            [
                METHODS[m],
                *(
                    f"{metrics[f'{m}_{refit}_ari_mean']:.3f} "
                    f"(min {metrics[f'{m}_{refit}_ari_min']:.3f})"
                    for refit in ("seed", "bootstrap")
                ),
            ]
            for m in METHODS
        ],
    )


def render_report(
    metrics: dict[str, float],
    own: dict[str, dict],
    top: dict[str, list[str]],
    context: dict,
    dataset: Dataset,
) -> str:
    k, compared = context["k"], measures(dataset)
    jaccard = {m: segment_jaccards(metrics, k, f"{m}_") for m in METHODS}
    return render(
        "comparison.md.j2",
        **context,
        title=dataset.title,
        common_rows=metrics["common_rows"],
        compared_rows=metrics.get("compared_rows", metrics["common_rows"]),
        columns=len(dataset.segment_on),
        encoded=encoding_description(dataset, context["encoding"]),
        numbers=", ".join(dataset.numeric),
        own_table=own_table(own, context["own_spaces"]),
        compared_table=compared_table(metrics, compared),
        outcomes=outcome_tables(metrics, dataset),
        surrogate_table=surrogate_table(metrics, top),
        agreement_table=agreement_table(metrics),
        refit_table=refit_table(metrics),
        bands_legend=bands_legend(),
        jaccard_table=markdown_table(
            ["Method", *(f"Segment {s}" for s in range(1, k + 1))],
            [
                [METHODS[m], *(f"{v:.2f} {reading(v)}" for v in jaccard[m].values())]
                for m in METHODS
            ],
        ),
        segment_sentences=[(METHODS[m], segments_sentence(jaccard[m])) for m in METHODS],
        verdict=verdict(metrics, compared, k),
    )


def comparison_report(
    name: str,
    compared: Comparison,
    own: dict[str, dict[str, float]],
    stability_found: dict[str, float],
    spaces: dict[str, str],
    params: Params,
    dataset: Dataset,
) -> str:
    """reports/<name>/comparison.md: ``own`` holds each method's metrics in its own space (and
    its inliers, ``rows``), ``spaces`` says what each space is."""
    context = {
        "name": name,
        "k": params.k,
        "seed": params.seed,
        "model": params.model,
        "encoding": params.comparison.tabular.encoding,
        "silhouette": silhouette_note(len(compared.ids), params.silhouette_max_rows),
        "stability_rows": compared.refitted_rows,
        "stability_seeds": params.stability.seeds,
        "bootstrap_rounds": params.stability.bootstrap_rounds,
        "near_tie": near_tie_sentence(params.k, stability_found, params.stability.near_tie_gap_pct),
        "test_share": params.explain.test_size,
        "plots": f"../../{layout(name).plots.as_posix()}",
        "own_spaces": spaces,
    }
    return render_report(compared.metrics, own, compared.top_columns, context, dataset)
