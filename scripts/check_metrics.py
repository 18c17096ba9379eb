"""Fail when a tracked metric differs from its committed value beyond a relative tolerance.

    python scripts/check_metrics.py [--rev HEAD] [--rel-tol 1e-4]

The metrics files are the ones ``dvc.yaml`` declares, found by ``dvc metrics diff``, so a stage
that adds a metrics file is checked without editing this script. Stages write metrics rounded to
6 significant digits (``stages/artifacts.py``); the default tolerance, 1e-4 relative, is that
rounding plus the summation-order noise of multi-threaded KMeans on another core count; whole
numbers (counts, suggested k) must match exactly. Stability estimates (mean ARI of refits across
seeds or bootstrap resamples) are Monte-Carlo averages over refits of the same data: a last-bit
difference in the embeddings, as another CPU's float kernels give, can move one refit of a
near-tie by a few customers, so they are held to an absolute 0.01 instead (the stability stage's
own ``seed_ari_mean`` as well as the comparison's ``tabular_seed_ari_min``). The inertia gaps
between refits, in percent, are differences of nearly equal inertias, so their last-bit noise is
large relative to a gap near zero: they are held to an absolute 0.0001 percentage points. A real
change (another k, model or data) moves the metrics by far more. A metric that appears or
disappears is a difference too. Exit status: 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys

REL_TOL = 1e-4
STABILITY_KEYS = re.compile(r"(^|_)(seed|bootstrap)_ari_")
STABILITY_ABS_TOL = 0.01
INERTIA_GAP_KEYS = re.compile(r"_inertia_gap_pct$")
INERTIA_GAP_ABS_TOL = 1e-4


def metric_differences(
    diff: dict, rel_tol: float = REL_TOL
) -> list[tuple[str, str, object, object]]:
    """(file, key, committed, reproduced) for every metric outside the tolerance, in file/key order.

    ``diff`` is the JSON of ``dvc metrics diff --all --json``: {file: {key: {"old", "new", ...}}}.
    """
    differences = []
    for path in sorted(diff):
        for key in sorted(diff[path]):
            old, new = diff[path][key].get("old"), diff[path][key].get("new")
            rounded = any(isinstance(v, float) for v in (old, new)) and all(
                isinstance(v, (int, float)) for v in (old, new)
            )
            if STABILITY_KEYS.search(key):
                abs_tol = STABILITY_ABS_TOL
            elif INERTIA_GAP_KEYS.search(key):
                abs_tol = INERTIA_GAP_ABS_TOL
            else:
                abs_tol = 1e-12
            same = (
                math.isclose(old, new, rel_tol=rel_tol, abs_tol=abs_tol) if rounded else old == new
            )
            if not same:
                differences.append((path, key, old, new))
    return differences


def difference_table(differences: list[tuple[str, str, object, object]]) -> str:
    rows = [("file", "metric", "committed", "reproduced", "relative difference")]
    for path, key, old, new in differences:
        numeric = all(isinstance(v, (int, float)) for v in (old, new))
        relative = f"{abs(new - old) / max(abs(old), 1e-12):.2e}" if numeric else "-"
        rows.append(
            (
                path,
                key,
                "missing" if old is None else str(old),
                "missing" if new is None else str(new),
                relative,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="git revision holding the committed metrics")
    parser.add_argument(
        "--rel-tol", type=float, default=REL_TOL, help="relative tolerance per metric"
    )
    args = parser.parse_args(argv)
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "diff", args.rev, "--all", "--json"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(
            f"error: check_metrics: dvc metrics diff failed: {result.stderr.strip()}",
            file=sys.stderr,
        )
        return 1
    diff = json.loads(result.stdout or "{}")
    if not diff:
        print(
            f"error: check_metrics: no tracked metrics found at {args.rev} or in the workspace",
            file=sys.stderr,
        )
        return 1
    differences = metric_differences(diff, args.rel_tol)
    checked = sum(len(values) for values in diff.values())
    if differences:
        print(difference_table(differences))
        print(
            f"error: check_metrics: {len(differences)} of {checked} metrics differ from {args.rev} "
            "(whole numbers must match exactly, "
            f"others within relative tolerance {args.rel_tol:g})",
            file=sys.stderr,
        )
        return 1
    print(
        f"check_metrics: all {checked} metrics in {len(diff)} files match {args.rev} within "
        f"relative tolerance {args.rel_tol:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
