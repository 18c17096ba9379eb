"""The reports' markdown templates (``segmentation/reporting/templates/*.j2``), filled in."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

# A block tag on a line of its own leaves no blank line behind, so the templates read as the
# markdown they write.
_TEMPLATES = Environment(
    loader=PackageLoader("segmentation", "reporting/templates"),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
    autoescape=False,
)
# {{ value | fmt(",.1f") }}: a Python format specification, as in an f-string.
_TEMPLATES.filters["fmt"] = format


def render(template_name: str, **context: object) -> str:
    return _TEMPLATES.get_template(template_name).render(**context)
