"""The one way the reports and scripts write a markdown table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header line, its separator and one line per row, each cell written with ``str``; no
    newline after the last line."""

    def line(cells: Iterable[object]) -> str:
        return "|" + "|".join(f" {cell} " for cell in cells) + "|"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])
