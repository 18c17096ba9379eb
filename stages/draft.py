"""Draft a data-set file from a raw customer export: ``python -m stages.draft EXPORT.csv``.

Writes ``datasets/<name>.yaml`` (``--name``, by default the export's file name), every decision a
person should check written as a comment next to its key. The inference is ``stages.drafting``;
this module only reads the arguments and the file and writes the draft.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from segmentation.artifacts import PipelineError, run, write_text
from segmentation.data.dataset import dataset_file, load_dataset
from segmentation.data.drafting import draft

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def source_path(given: Path, root: Path = ROOT) -> str:
    """The export's path as the data-set file should name it: relative to the repository root
    when it is inside it, or when it was given relative; absolute otherwise."""
    resolved = given.resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix()
    if not given.is_absolute():
        return Path(os.path.relpath(resolved, root)).as_posix()
    return given.as_posix()


def default_name(export: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", export.stem).strip("-_") or "mine"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.draft",
        description="Draft datasets/<name>.yaml from a customer export; check its comments.",
    )
    parser.add_argument("export", type=Path, help="the customer table (a CSV export)")
    parser.add_argument("--name", help="the data set's name (default: the export's file name)")
    parser.add_argument(
        "--outcome",
        action="append",
        default=[],
        help="an outcome column: described per segment, never segmented on (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing data-set file")
    args = parser.parse_args()
    name = args.name if args.name is not None else default_name(args.export)
    if not NAME.fullmatch(name):
        raise PipelineError(
            f"--name {name!r}: use letters, digits, '-' and '_' (it names datasets/<name>.yaml)"
        )
    target = dataset_file(name)
    if target.exists() and not args.force:
        raise PipelineError(f"{target} exists; pass --force to overwrite it, or choose --name")
    if not args.export.is_file():
        raise PipelineError(f"{args.export}: no such file; give the path of a CSV export")
    text = draft(
        args.export.read_bytes(),
        name,
        source_path(args.export),
        args.outcome,
        label=str(args.export),
    )
    write_text(target, text)
    # The draft is meant to validate as written; if it does not, the file is still there to fix.
    load_dataset(name)
    print(
        f"{target}: drafted from {args.export}; check every '#' comment, add {name!r} to "
        f"params.yaml's datasets, then run: dvc repro --glob '*@{name}'"
    )


if __name__ == "__main__":
    run(main, takes_dataset=False)
