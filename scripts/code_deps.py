"""The code each DVC stage runs, derived from its imports, written into or checked against dvc.yaml.

    python scripts/code_deps.py          # rewrite the code deps in dvc.yaml
    python scripts/code_deps.py --check  # exit 1, naming the stage, when dvc.yaml disagrees

A stage's code is its file in ``stages/`` and every ``segmentation`` module it imports, directly or
through one another. Package ``__init__`` files hold only a docstring (a test checks), so they are
not followed. A stage that renders a report depends on the templates folder too. Only those lines
of each stage's ``deps`` are touched; data, data-set files and comments stay as written.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "segmentation")
DVC_FILE = ROOT / "dvc.yaml"
STAGE_COMMAND = re.compile(r"^    cmd: python -m (stages\.\w+) ")
STAGE_NAME = re.compile(r"^  (\w+):\s*$")
CODE_DEP = re.compile(r"^      - (stages|segmentation)/[\w/]+(\.py|/templates)\s*$")
RENDERER = "segmentation.reporting.render"
TEMPLATES = "segmentation/reporting/templates"


def module_file(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def imported_modules(module: str, seen: set[str] | None = None) -> set[str]:
    """The project modules (dotted names) ``module`` imports, directly or through one another."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(module_file(module).read_text())):
        found: list[str] = []
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] in PACKAGES
        ):
            found = [
                f"{node.module}.{alias.name}"
                if module_file(f"{node.module}.{alias.name}").exists()
                else node.module
                for alias in node.names
            ]
        elif isinstance(node, ast.Import):
            found = [alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES]
        for name in found:
            if module_file(name).exists() and name not in seen:
                seen.add(name)
                imported_modules(name, seen)
    return seen


def code_deps(stage_module: str) -> list[str]:
    """The stage's own file first, then the package modules it runs, sorted, then the report
    templates folder when it renders one."""
    modules = imported_modules(stage_module) - {stage_module}
    files = sorted(module_file(name).relative_to(ROOT).as_posix() for name in modules)
    templates = [TEMPLATES] if RENDERER in modules else []
    return [module_file(stage_module).relative_to(ROOT).as_posix(), *files, *templates]


def with_derived_deps(text: str) -> tuple[str, list[str]]:
    """dvc.yaml with every stage's code deps derived, and the stages whose deps change."""
    out: list[str] = []
    listed: dict[str, list[str]] = {}
    derived: dict[str, list[str]] = {}
    stage = module = None
    for line in text.splitlines(keepends=True):
        if match := STAGE_NAME.match(line):
            stage, module = match.group(1), None
        elif match := STAGE_COMMAND.match(line):
            module = match.group(1)
        if CODE_DEP.match(line):
            listed.setdefault(stage, []).append(line.split("- ", 1)[1].strip())
            continue
        out.append(line)
        if line.startswith("    deps:") and module:
            derived[stage] = code_deps(module)
            out.extend(f"      - {dep}\n" for dep in derived[stage])
    changed = [name for name in derived if listed.get(name, []) != derived[name]]
    return "".join(out), changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on a difference")
    check = parser.parse_args().check
    text = DVC_FILE.read_text()
    derived, changed = with_derived_deps(text)
    if not changed:
        return
    if check:
        sys.exit(
            f"dvc.yaml: the code deps of {', '.join(changed)} differ from what the stages import; "
            "run `python scripts/code_deps.py` to rewrite them"
        )
    DVC_FILE.write_text(derived)
    print(f"dvc.yaml: code deps rewritten for {', '.join(changed)}")


if __name__ == "__main__":
    main()
