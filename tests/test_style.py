"""The whole repository follows the lint and format rules in ruff.toml.

ruff comes from requirements-dev.txt and runs without its cache, so a test run writes nothing
into the checkout. A deliberately bad file shows that the check really runs and can fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"
# 120 characters, where ruff.toml allows 100.
LONG_LINE = 'NAME = "' + "x" * 111 + '"\n'


def ruff(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RUFF), *map(str, args), "--no-cache"], capture_output=True, text=True, cwd=ROOT
    )


def test_the_code_passes_ruff_check():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_as_ruff_format_writes_it():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("source", "rule"), [("import os\n", "F401"), (LONG_LINE, "E501")], ids=["unused", "long"]
)
def test_the_check_fails_on_a_file_that_breaks_a_rule(tmp_path, source, rule):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    result = ruff("check", "--config", ROOT / "ruff.toml", bad)
    assert result.returncode != 0 and rule in result.stdout, result.stdout + result.stderr
