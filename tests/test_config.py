"""Params: the schema's defaults, one-line refusals that name the bad key, and params.yaml and
docs/params.md as generated from the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from segmentation.artifacts import PipelineError
from segmentation.config import validate_params

ROOT = Path(__file__).resolve().parents[1]
ARTICLE_TEMPLATE = (
    "Age: {age},\nhousing load: {housing},\nJob: {job},\nMarital: {marital},\n"
    "Education: {education},\nDefault: {default},\nBalance: {balance},\n"
    "Personal loan: {loan},\ncontact: {contact}"
)


def test_default_params_are_valid_and_the_bank_file_holds_the_article_template(bank):
    params = validate_params({})
    assert (params.k, params.model, params.outliers.contamination) == (
        5,
        "sentence-transformers/all-MiniLM-L6-v2",
        0.1,
    )
    assert params.datasets == ["bank", "telco", "churners"]
    assert bank.text_template == ARTICLE_TEMPLATE


@pytest.mark.parametrize(
    ("raw", "culprit"),
    [
        ({"k": "six"}, "k: Input should be a valid integer"),
        ({"k": 1}, "k: Input should be greater than or equal to 2"),
        ({"k": 5.0}, "k: Input should be a valid integer"),
        ({"kk": 5}, "kk: unknown key"),
        ({"outliers": {"contamination": 0.7}}, "outliers.contamination"),
        ({"elbow": {"k_min": 6, "k_max": 4}}, "k_min (6) must be below k_max (4)"),
        (
            {"datasets": ["bank", "nope"]},
            "datasets: no data-set file for ['nope'] in datasets/ "
            "(found ['bank', 'churners', 'telco'])",
        ),
        ({"datasets": []}, "datasets: List should have at least 1 item"),
        ({"embed": {"batch_size": 0}}, "embed.batch_size"),
    ],
)
def test_bad_params_name_the_key(raw, culprit):
    with pytest.raises(PipelineError) as error:
        validate_params(raw)
    message = str(error.value)
    assert culprit in message and "\n" not in message


def test_all_param_problems_are_reported_at_once():
    with pytest.raises(PipelineError) as error:
        validate_params({"k": "six", "seed": -1})
    assert "k:" in str(error.value) and "seed:" in str(error.value)


def test_params_yaml_and_the_params_doc_are_the_schema_s_defaults():
    """Each default and meaning is written once, in the schema; params.yaml and docs/params.md
    are generated from it."""
    import yaml

    from scripts import params_doc

    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert validate_params(committed) == validate_params({})
    assert (ROOT / "params.yaml").read_text() == params_doc.params_yaml()
    assert (ROOT / "docs/params.md").read_text() == params_doc.params_doc()
    assert (
        "| `comparison.kprototypes.n_init` | `2` | starts for the chosen k (kmodes' default: 10) "
        "(>= 1) |" in (ROOT / "docs/params.md").read_text()
    )


def test_every_param_has_a_meaning():
    from scripts.params_doc import _sections
    from segmentation.config import Params

    for prefix, section in _sections(Params):
        for name, field in section.model_fields.items():
            nested = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            assert nested or field.description, f"{prefix}{name} has no description"
