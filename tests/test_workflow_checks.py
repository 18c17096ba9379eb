"""Supply-chain audit (zizmor) and schema validation (check-jsonschema) of the GitHub workflows.

Both tools come from requirements-dev.txt and run offline: zizmor with ``--offline`` skips the
audits that ask GitHub's API, and check-jsonschema's GitHub-workflow schema ships inside it.
A deliberately bad workflow shows that each tool really runs and can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
TOOLS = Path(sys.executable).parent
FAILING_SEVERITIES = {"Medium", "High"}

CHECKOUT = "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2"
# An unpinned action and a pull-request title expanded straight into a shell command.
UNSAFE_WORKFLOW = """\
name: unsafe
on:
  pull_request:
permissions: {}
jobs:
  greet:
    name: Greet
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v6.0.2
        with:
          persist-credentials: false
      - run: echo "${{ github.event.pull_request.title }}"
"""
# The same job done safely: the action pinned to a commit, the title passed through env.
SAFE_WORKFLOW = f"""\
name: safe
on:
  pull_request:
permissions: {{}}
jobs:
  greet:
    name: Greet
    runs-on: ubuntu-24.04
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - env:
          TITLE: ${{{{ github.event.pull_request.title }}}}
        run: echo "$TITLE"
"""


def tool(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TOOLS / name), *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )


def zizmor_findings(workflows: Path) -> tuple[int, list[dict]]:
    """zizmor's exit code and its findings at medium severity or above that no comment ignores."""
    # --strict-collection: a workflow zizmor cannot parse fails instead of being skipped.
    result = tool(
        "zizmor",
        "--offline",
        "--strict-collection",
        "--min-severity",
        "medium",
        "--format",
        "json",
        "--no-progress",
        workflows,
    )
    assert result.stdout.strip().startswith("["), result.stdout + result.stderr
    findings = [
        finding
        for finding in json.loads(result.stdout)
        if not finding["ignored"] and finding["determinations"]["severity"] in FAILING_SEVERITIES
    ]
    return result.returncode, findings


def workflow_folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "pr.yml").write_text(text)
    return folder


def test_zizmor_finds_nothing_at_medium_severity_or_above_in_the_workflows():
    returncode, findings = zizmor_findings(WORKFLOWS)
    assert findings == [], [
        (f["ident"], f["desc"], f["locations"][0]["concrete"]["feature"].splitlines()[0])
        for f in findings
    ]
    assert returncode == 0


def test_zizmor_flags_an_unpinned_action_and_template_injection(tmp_path):
    returncode, findings = zizmor_findings(workflow_folder(tmp_path, UNSAFE_WORKFLOW))
    assert returncode != 0
    assert {finding["ident"] for finding in findings} == {"unpinned-uses", "template-injection"}


def test_zizmor_accepts_the_same_job_pinned_and_through_env(tmp_path):
    assert zizmor_findings(workflow_folder(tmp_path, SAFE_WORKFLOW)) == (0, [])


def test_workflows_match_the_github_workflow_schema():
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert workflows
    result = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_rejects_a_job_without_a_runner(tmp_path):
    broken = SAFE_WORKFLOW.replace("    runs-on: ubuntu-24.04\n", "")
    workflow = workflow_folder(tmp_path, broken) / "pr.yml"
    result = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout + result.stderr
