"""A stage reads only the params dvc.yaml declares for it, so DVC reruns exactly the stages whose
params change. The end-to-end test runs every stage with this check on."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from segmentation.artifacts import PipelineError
from segmentation.config import DeclaredParams, Params, declared_params, load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = Params()


def test_a_declared_param_or_section_reads_through():
    declared = DeclaredParams(PARAMS, frozenset({"k", "stability", "comparison.tabular"}), "x")
    assert declared.k == PARAMS.k
    assert declared.stability.rows == PARAMS.stability.rows
    assert declared.comparison.tabular.n_init == PARAMS.comparison.tabular.n_init


@pytest.mark.parametrize(
    ("read", "key"),
    [
        (lambda params: params.seed, "seed"),
        (lambda params: params.comparison.kprototypes, "comparison.kprototypes"),
        (lambda params: params.kmeans.n_init, "kmeans"),
    ],
    ids=["top-level key", "sibling of a declared section", "undeclared section"],
)
def test_reading_an_undeclared_param_is_one_line_naming_it(read, key):
    declared = DeclaredParams(PARAMS, frozenset({"k", "comparison.tabular"}), "kmeans")
    with pytest.raises(PipelineError, match=rf"stage kmeans reads the param '{key}'"):
        read(declared)


def test_every_declared_param_is_a_key_of_the_schema():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    schema = PARAMS.model_dump()
    for stage in pipeline["stages"]:
        for key in declared_params(stage) or frozenset():
            node = schema
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{stage}: {key}"
                node = node[part]


def test_only_a_stage_run_as_such_is_checked(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert isinstance(load_params(), Params)  # tests, commands and notebooks see every param
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="stages.kmeans")
    monkeypatch.setitem(sys.modules, "__main__", main)
    params = load_params()
    assert isinstance(params, DeclaredParams) and params.k == PARAMS.k
    with pytest.raises(PipelineError, match="reads the param 'explain'"):
        params.explain  # noqa: B018


def test_a_stage_with_an_undeclared_read_fails_in_one_line(tmp_path):
    """kmeans without `k` in its params, run as DVC runs it: exit 1, no traceback, no output."""
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    pipeline = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    pipeline["stages"]["kmeans"]["params"].remove("k")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "kmeans.py").write_text(
        "from segmentation.artifacts import run\n"
        "from segmentation.config import load_params\n\n\n"
        "def main(name):\n    load_params().k\n\n\n"
        "if __name__ == '__main__':\n    run(main)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "stages.kmeans", "bank"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: kmeans: stage kmeans reads the param 'k', which dvc.yaml does not list in its "
        "params; add 'k' there, so that changing it reruns the stage"
    )
