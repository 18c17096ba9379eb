"""The pull-request report script and the workflow that runs it.

The script runs for real (git, `dvc metrics diff`, `dvc params diff`, `dvc plots diff`) in a
temporary repository whose two commits differ in ``k`` and in their metrics and plots; the
committed files are small stand-ins, so the test needs no pipeline run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "pr-report.yml"
# A matrix stage declaring its images as plots (one per data set), and a top-level image plot.
PIPELINE = {
    "stages": {
        "kmeans": {
            "matrix": {"ds": "${datasets}"},
            "cmd": "echo fitted ${item.ds}",
            "params": ["k"],
            "plots": [{"plots/${item.ds}/map.png": {"cache": False}}],
            "outs": [{"plots/elbow.png": {"cache": False}}],
            "metrics": [{"metrics/evaluate.json": {"cache": False}}],
        }
    },
    "plots": ["plots/elbow.png"],
}


def sh(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)


def pr_report(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return sh(repo, sys.executable, "-m", "scripts.pr_report", *args)


SHOP = {
    "title": "Shop",
    "source": {"path": "shop.csv", "file": "shop.csv", "sha256": "0" * 64},
    "columns": {
        "region": {"kind": "categorical", "label": "Region"},
        "income": {"kind": "numeric", "label": "Income"},
        "spend": {"kind": "numeric", "label": "Yearly spend"},
    },
    "segment_on": ["region", "income", "spend"],
}
# The lineage stage's report and migration, at k = 5 (the adopted fit) and k = 6.
LINEAGE = {
    5: "# Segment lineage: Shop\n\nIntro.\n\n## What changed\n\nEvery segment came back "
    "unchanged.\n\n## Segments then and now\n\nTable.\n",
    6: "# Segment lineage: Shop\n\nIntro.\n\n## What changed\n\n- Segment 2 'Savers' split: "
    "61% stayed, 39% formed segment 6.\n\n## Segments then and now\n\nTable.\n",
}
MIGRATION = {
    5: "from,to,customers,share\n1,1,500,1.0\n2,2,300,1.0\n",
    6: "from,to,customers,share\n1,1,500,1.0\n2,2,183,0.61\n2,6,117,0.39\n",
}
# What the surrogate leans on, at k = 5 and k = 6.
SHARES = {5: [0.5, 0.3, 0.2], 6: [0.9, 0.06, 0.04]}


def commit(repo: Path, k: int, silhouette: float, map_png: bytes) -> str:
    (repo / "params.yaml").write_text(yaml.safe_dump({"datasets": ["shop"], "k": k, "seed": 42}))
    (repo / "metrics" / "shop").mkdir(exist_ok=True)
    (repo / "metrics" / "shop" / "explain.json").write_text(
        json.dumps({"numeric_shap_share": sum(SHARES[k][1:]), "eta_squared_mean": 0.02})
    )
    (repo / "plots" / "shop").mkdir(exist_ok=True)
    (repo / "plots" / "shop" / "importance.csv").write_text(
        "feature,mean_abs_shap\n"
        + "".join(f"{c},{v}\n" for c, v in zip(["region", "income", "spend"], SHARES[k]))
    )
    (repo / "metrics" / "evaluate.json").write_text(
        json.dumps({"silhouette": silhouette, "davies_bouldin": 2.0})
    )
    (repo / "metrics" / "shop" / "evaluate.json").write_text(
        json.dumps({"silhouette": silhouette, "davies_bouldin": 2.0 + silhouette})
    )
    (repo / "reports" / "shop").mkdir(parents=True, exist_ok=True)
    (repo / "reports" / "shop" / "lineage.md").write_text(LINEAGE[k])
    (repo / "reports" / "shop" / "migration.csv").write_text(MIGRATION[k])
    (repo / "plots" / "shop").mkdir(exist_ok=True)
    (repo / "plots" / "shop" / "map.png").write_bytes(map_png)
    assert sh(repo, "git", "add", "-A").returncode == 0
    assert sh(repo, "git", "commit", "-qm", f"k={k}").returncode == 0
    return sh(repo, "git", "rev-parse", "HEAD").stdout.strip()


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory):
    repo = tmp_path_factory.mktemp("pr")
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "ci@example.com"],
        ["git", "config", "user.name", "CI"],
        [sys.executable, "-m", "dvc", "init", "-q"],
    ):
        assert sh(repo, *command).returncode == 0
    (repo / "metrics").mkdir()
    (repo / "plots").mkdir()
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (repo / "plots" / "elbow.png").write_bytes(b"\x89PNG elbow, the same in both commits")
    (repo / "datasets").mkdir()
    (repo / "datasets" / "shop.yaml").write_text(yaml.safe_dump(SHOP))
    base = commit(repo, 5, 0.14166, b"\x89PNG five segments")
    head = commit(repo, 6, 0.13222, b"\x89PNG six segments")
    return repo, base, head


def test_report_shows_changed_metrics_params_and_images(two_commits):
    repo, base, head = two_commits
    result = pr_report(repo, "--base", "HEAD~1", "--out", "report")
    assert result.returncode == 0, result.stderr
    report = (repo / "report" / "report.md").read_text()
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|"))
        for line in report.splitlines()
        if line.startswith("| ")
    }
    assert ("metrics/evaluate.json", "silhouette", "0.14166", "0.13222", "-0.00944") in rows
    assert (
        "metrics/evaluate.json",
        "davies_bouldin",
        "2.0",
        "2.0",
        "0.0",
    ) in rows  # --all: unchanged too
    assert ("params.yaml", "k", "5", "6") in rows
    assert not any("seed" in row for row in rows)
    assert f"![plots/shop/map.png at {base[:7]}](base/plots/shop/map.png)" in report
    assert f"![plots/shop/map.png at {head[:7]}](head/plots/shop/map.png)" in report
    assert "elbow.png" not in report  # unchanged plots are left out
    assert (
        repo / "report" / "base" / "plots" / "shop" / "map.png"
    ).read_bytes() == b"\x89PNG five segments"
    assert (
        repo / "report" / "head" / "plots" / "shop" / "map.png"
    ).read_bytes() == b"\x89PNG six segments"
    assert (repo / "report" / "plots" / "index.html").exists()
    assert "reproduced every committed metric, plot and report" in report
    # the report leads with the segments: what changed, who moved, which measures moved and how
    assert report.index("### Did the segments change?") < report.index("<details>")
    assert "- Segment 2 'Savers' split: 61% stayed, 39% formed segment 6." in report
    assert ("2", "6", "117", "39.0%") in rows and ("1", "1", "500", "100.0%") not in rows
    assert ("Silhouette", "0.1417", "0.1322", "worse") in rows
    assert ("Davies-Bouldin index", "2.142", "2.132", "better") in rows
    assert report.index("<details>") < report.index("| metrics/evaluate.json | silhouette")
    # The reviewer first reads what drives the segments, base and new, with the report's warning.
    drivers = report.split("### What drives the segments")[1].split("### Metrics")[0]
    assert ("Region", "50.0%", "90.0%") in rows and ("Yearly spend", "20.0%", "4.0%") in rows
    assert "One column, Region, carries 90% of it" in drivers


def test_image_links_can_point_at_the_committed_files_and_stale_results_are_named(two_commits):
    repo, base, head = two_commits
    evaluate = repo / "metrics" / "evaluate.json"
    committed = evaluate.read_text()
    evaluate.write_text(json.dumps({"silhouette": 0.2, "davies_bouldin": 2.0}))
    try:
        url = "https://github.com/owner/repo/blob/{rev}/{path}?raw=true"
        result = pr_report(
            repo,
            "--base",
            base,
            "--out",
            "report",
            "--image-url",
            url,
        )
    finally:
        evaluate.write_text(committed)
    assert result.returncode == 0, result.stderr
    report = (repo / "report" / "report.md").read_text()
    assert f"(https://github.com/owner/repo/blob/{base}/plots/shop/map.png?raw=true)" in report
    assert f"(https://github.com/owner/repo/blob/{head}/plots/shop/map.png?raw=true)" in report
    assert "- `metrics/evaluate.json`" in report and "run `dvc repro` and commit" in report
    assert "| metrics/evaluate.json | silhouette" in report and "0.2 " in report


def test_unknown_base_and_a_foreign_out_folder_fail_in_one_line(two_commits):
    repo, _, _ = two_commits
    result = pr_report(
        repo,
        "--base",
        "no-such-branch",
        "--out",
        "elsewhere",
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: pr_report: base revision 'no-such-branch'")
    )
    assert not (repo / "elsewhere").exists()
    result = pr_report(repo, "--base", "HEAD~1", "--out", "plots")
    assert result.returncode == 1 and "holds no report.md" in result.stderr
    assert (repo / "plots" / "shop" / "map.png").exists()


def test_workflow_runs_the_script_with_pinned_actions_on_pull_requests():
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = job["steps"]
    uses = [step["uses"] for step in steps if "uses" in step]
    # YAML drops comments, so the version comment beside each commit pin is read from the text.
    pins = [
        re.fullmatch(r"\s*(?:- )?uses: ([\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+", line)
        for line in text.splitlines()
        if "uses:" in line
    ]
    assert uses and all(pins), [line for line in text.splitlines() if "uses:" in line]
    assert [f"{pin[1]}@{pin[2]}" for pin in pins] == uses
    by_action = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert by_action["actions/checkout"]["with"]["fetch-depth"] == 0
    assert by_action["actions/checkout"]["with"]["persist-credentials"] is False
    assert by_action["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert "hashFiles('dvc.lock')" in by_action["actions/cache"]["with"]["key"]
    assert by_action["actions/cache"]["with"]["path"] == ".dvc/cache"
    assert (
        by_action["marocchino/sticky-pull-request-comment"]["with"]["path"] == "pr-report/report.md"
    )
    commands = "\n".join(step.get("run", "") for step in steps)
    for expected in (
        "pip install -r requirements.txt",
        "dvc repro",
        "python -m scripts.pr_report",
        "$GITHUB_STEP_SUMMARY",
    ):
        assert expected in commands, expected
