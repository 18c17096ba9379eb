"""Write params.yaml and docs/params.md from the params schema, where each default and meaning live.

    python -m scripts.params_doc           # rewrite both files
    python -m scripts.params_doc --check   # exit 1 if either differs from what the schema gives

Every param's default, bounds and meaning are written once, in ``segmentation/config.py``; the
tests run ``--check``, so neither file can drift from the schema.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from segmentation.config import PARAMS_FILE, Params
from segmentation.reporting.tables import markdown_table

DOC_FILE = Path("docs/params.md")
PARAMS_HEADER = """\
# The pipeline's params, written by `python -m scripts.params_doc` from the schema in
# segmentation/config.py, which holds each default and its meaning (see docs/params.md). Change a
# default there; change a value for an experiment with `dvc exp run -S key=value`.
"""
DOC_INTRO = """\
# Params

Generated from the schema in `segmentation/config.py` by `python -m scripts.params_doc`, which also
writes `params.yaml`; the tests check that both match the schema. Back to the
[README](../README.md).

`params.yaml` is validated as a whole when any stage starts: a wrong type, a value out of range or
an unknown key stops the stage with one line that names the key, e.g. `error: kmeans: params.yaml:
k: Input should be a valid integer (got 'six')`. `dvc exp run -S` values are validated the same
way. Each stage lists in `dvc.yaml` exactly the params it reads, so a change reruns only what
depends on it: `k` reruns kmeans, lineage, stability, evaluate, explain, profile and the
comparison's tabular, kprototypes and compare, never the embedding, the elbow study, the
K-Prototypes cost curve or the t-SNE. What a customer table holds is not a param: each data set
is described by its file in `datasets/` (see `datasets/README.md`).
"""


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=200).removesuffix("\n...\n").strip()


def _sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """The schema's sections, depth first: (dotted name, model)."""
    found = [(prefix, model)]
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += _sections(field.annotation, f"{prefix}{name}.")
    return found


def params_yaml(model: type[BaseModel] = Params, depth: int = 0) -> str:
    lines = [PARAMS_HEADER] if depth == 0 else []
    indent = "  " * depth
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            section = field.annotation
            if depth == 0:
                lines.append("")
            if section.__doc__ and section.__doc__ != BaseModel.__doc__:
                lines += textwrap.wrap(
                    " ".join(section.__doc__.split()),
                    99,
                    initial_indent=f"{indent}# ",
                    subsequent_indent=f"{indent}# ",
                )
            lines.append(f"{indent}{name}:")
            lines.append(params_yaml(section, depth + 1).rstrip("\n"))
        else:
            lines.append(f"{indent}{name}: {_scalar(field.default)}")
    return "\n".join(lines) + "\n"


BOUNDS = ((Ge, "ge", ">="), (Gt, "gt", ">"), (Le, "le", "<="), (Lt, "lt", "<"))


def _bounds(field) -> str:
    found = [
        f"{sign} {getattr(item, attribute)}"
        for item in field.metadata
        for kind, attribute, sign in BOUNDS
        if isinstance(item, kind)
    ]
    return f" ({', '.join(found)})" if found else ""


def params_doc() -> str:
    out = [DOC_INTRO]
    for prefix, section in _sections(Params):
        fields = [
            (name, field)
            for name, field in section.model_fields.items()
            if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
        ]
        if not fields:
            continue
        title = f"`{prefix.rstrip('.')}`" if prefix else "Top level"
        doc = (
            " ".join((section.__doc__ or "").split())
            if prefix and section.__doc__ != BaseModel.__doc__
            else ""
        )
        out += [f"## {title}", ""] + ([doc, ""] if doc else [])
        rows = [
            [
                f"`{prefix}{name}`",
                f"`{_scalar(field.default)}`",
                (field.description or "").replace("|", "\\|") + _bounds(field),
            ]
            for name, field in fields
        ]
        out += [markdown_table(["key", "default", "meaning"], rows), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="report whether the files match the schema"
    )
    args = parser.parse_args(argv)
    wanted = {PARAMS_FILE: params_yaml(), DOC_FILE: params_doc()}
    if args.check:
        stale = [
            str(path)
            for path, text in wanted.items()
            if not path.exists() or path.read_text() != text
        ]
        if stale:
            print(
                f"error: params_doc: {', '.join(stale)} differ from the schema in "
                "segmentation/config.py; run 'python -m scripts.params_doc'",
                file=sys.stderr,
            )
            return 1
        return 0
    for path, text in wanted.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
