"""The data-set file: its schema, the table read with it, what the stages derive from it, and
that no stage names a column.

Also checks that dvc.yaml lists, for every stage, each project module the stage imports (directly
or through another module) and the data-set file when the stage reads it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from scripts import code_deps
from segmentation.artifacts import PipelineError
from segmentation.config import validated
from segmentation.data.dataset import MISSING_CATEGORY, Dataset, fill, read_table, typed
from segmentation.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
DATASET_FILES = sorted((ROOT / "datasets").glob("*.yaml"))


def minimal(**changes) -> dict:
    """The smallest valid data-set file, with ``changes`` applied (None removes a key)."""
    spec = {
        "title": "Shop",
        "source": {"path": "shop.csv", "file": "shop.csv", "sha256": "0" * 64},
        "columns": {
            "age": {"kind": "numeric", "integer": True, "range": [0, 120]},
            "plan": {
                "kind": "categorical",
                "values": ["basic", "plus"],
                "phrases": {"plus": "on the plus plan"},
            },
            "size": {"kind": "ordinal", "levels": ["S", "M", "L"]},
            "left": {"kind": "categorical", "values": ["no", "yes"]},
        },
        "segment_on": ["age", "plan", "size"],
        "describe": {"left": "yes"},
    }
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    return spec


def test_the_minimal_file_gives_labels_kinds_and_a_default_template():
    dataset = Dataset.model_validate(minimal())
    assert dataset.numeric == ["age"] and dataset.categorical == ["plan", "size"]
    assert dataset.text_columns == ["age", "plan", "size"]  # the outcome is never in the text
    assert dataset.text_template == "age: {age}\nplan: {plan}\nsize: {size}"
    assert dataset.used_columns == ["age", "plan", "size", "left"]
    assert dataset.format.separator == "," and dataset.columns["size"].missing == "refuse"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"columns": {"age": {"kind": "number"}, "plan": {"kind": "categorical"}}},
            "Input should be 'numeric', 'categorical'",
        ),
        ({"segment_on": ["age", "income"]}, "segment_on names undeclared column(s) ['income']"),
        ({"segment_on": ["age", "plan", "left"]}, "['left'] are both segmented on and described"),
        (
            {"template": "Age {age}, income {income}"},
            "template names undeclared column(s) ['income']",
        ),
        ({"template": "Age {age} left {left}"}, "template carries outcome column(s) ['left']"),
        ({"template": "Age {age:d} plan {plan:d}"}, "template cannot be filled"),
        (
            {
                "template": "{age} {plan} {size}",
                "columns": minimal()["columns"] | {"notes": {"kind": "categorical"}},
            },
            "column(s) ['notes'] are declared but not used",
        ),
        ({"describe": {"left": "maybe"}}, "describe.left: 'maybe' is not one of ['no', 'yes']"),
        ({"source": {"file": "x.csv", "sha256": "0" * 64}}, "give exactly one of url"),
        ({"source": {"url": "ftp://x/y", "file": "y", "sha256": "0" * 64}}, "source.url"),
        ({"format": {"encoding": "klingon"}}, "unknown encoding 'klingon'"),
        ({"id": "age"}, "id column 'age' is also declared under columns"),
        ({"naming": {"subject": "age"}}, "naming.subject: 'age' must be categorical or ordinal"),
        ({"naming": {"decade": "left"}}, "naming.decade: 'left' is not a segment_on column"),
        ({"shoe_size": 3}, "shoe_size: unknown key; remove it or check its spelling"),
        (
            {
                "columns": {
                    "age": {"kind": "numeric"},
                    "on": {"kind": "categorical", "values": [True, False]},
                }
            },
            "columns.on.values.0: Input should be a valid string (got True: YAML reads unquoted "
            "yes/no/on/off",
        ),
    ],
)
def test_a_bad_file_is_refused_in_one_line_with_the_key(changes, message):
    with pytest.raises(PipelineError) as error:
        validated(Dataset, minimal(**changes), Path("datasets/shop.yaml"), "Fix the data-set file")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith("datasets/shop.yaml: ")


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            {"kind": "numeric", "values": ["1"]},
            "a numeric column takes range, not values or levels",
        ),
        ({"kind": "numeric", "missing": "keep"}, "can only refuse or drop a blank cell"),
        ({"kind": "numeric", "range": [5, 1]}, "must go from low to high"),
        ({"kind": "numeric", "phrases": {"big": "x"}}, "phrases are 'high' and 'low'"),
        ({"kind": "numeric", "bands": [3, 2]}, "bands must be increasing"),
        ({"kind": "ordinal"}, "an ordinal column needs its levels"),
        ({"kind": "categorical", "levels": ["a"]}, "levels are for ordinal columns"),
        (
            {"kind": "categorical", "range": [0, 1]},
            "takes no range, bands, integer, unit or derive",
        ),
        ({"kind": "categorical", "values": ["a", "a"]}, "values repeat an entry"),
        (
            {"kind": "categorical", "values": ["a"], "phrases": {"b": "x"}},
            "phrases name value(s) ['b']",
        ),
    ],
)
def test_a_bad_column_is_refused_with_the_reason(column, message):
    columns = minimal()["columns"] | {"extra": column}
    with pytest.raises(ValidationError) as error:
        Dataset.model_validate(
            minimal(columns=columns, segment_on=["age", "plan", "size", "extra"])
        )
    assert message in str(error.value)


@pytest.mark.parametrize("path", DATASET_FILES, ids=lambda path: path.stem)
def test_every_shipped_data_set_file_is_valid_and_segments_on_both_kinds(path):
    dataset = Dataset.model_validate(yaml.safe_load(path.read_text()))
    assert dataset.numeric and dataset.categorical and dataset.describe
    assert dataset.source.env and dataset.source.url


def test_the_bank_file_reproduces_the_article(bank):
    assert bank.segment_on == [
        "age",
        "job",
        "marital",
        "education",
        "default",
        "balance",
        "housing",
        "loan",
    ]
    assert bank.context_columns == ["contact"] and bank.describe == {"y": "yes"}
    assert bank.columns["education"].levels == ["primary", "secondary", "tertiary", "unknown"]


def test_a_column_name_with_dots_or_brackets_fills_a_template():
    assert (
        fill("{Total.Charges} / {a[0]:>4}", {"Total.Charges": 12.5, "a[0]": "x"}) == "12.5 /    x"
    )


@pytest.fixture
def customer_csv(tmp_path):
    path = tmp_path / "bank-full.csv"
    path.write_bytes(synthetic.to_uci_csv(synthetic.customers(200)))
    return path


def test_read_table_parses_the_uci_layout(customer_csv, bank):
    cells, rejected = read_table(customer_csv, bank, Path("bank.yaml"))
    frame = typed(cells, bank)
    assert len(frame) == 200 and frame.index[0] == "0" and rejected.empty
    assert frame["age"].dtype == np.int64 and frame["balance"].dtype == np.int64
    assert frame["job"].iloc[0] in synthetic.CHOICES["job"]
    assert list(frame.columns) == bank.used_columns


def test_read_table_names_missing_columns_and_bad_rows(tmp_path, customer_csv, bank):
    broken = tmp_path / "no-age.csv"
    broken.write_text(customer_csv.read_text().replace('"age"', '"years"', 1))
    with pytest.raises(
        PipelineError, match=r"no-age.csv: declared column\(s\) \['age'\] are not in the table"
    ):
        read_table(broken, bank, Path("bank.yaml"))
    lines = customer_csv.read_text().splitlines()
    lines[3] = "forty" + lines[3][lines[3].index(";") :]
    bad = tmp_path / "bad-age.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(PipelineError, match=r"'age' is not a whole number on line\(s\) 4"):
        read_table(bad, bank, Path("bank.yaml"))


def test_the_keep_policy_makes_blank_cells_a_category_of_their_own(tmp_path):
    dataset = Dataset.model_validate(
        minimal(
            columns=minimal()["columns"]
            | {"plan": {"kind": "categorical", "values": ["basic", "plus"], "missing": "keep"}}
        )
    )
    (tmp_path / "shop.csv").write_text("age,plan,size,left\n30,,M,no\n40,plus,L,yes\n")
    cells, rejected = read_table(tmp_path / "shop.csv", dataset, Path("shop.yaml"))
    assert cells["plan"].tolist() == [MISSING_CATEGORY, "plus"] and rejected.empty
    assert typed(cells, dataset)["age"].tolist() == [30, 40]


def test_decimal_numbers_are_read_as_floats_and_whole_ones_as_ints(tmp_path, telco):
    frame = synthetic.telco_customers(12, seed=4, blank_total_charges=0)
    (tmp_path / "t.csv").write_bytes(synthetic.to_telco_csv(frame))
    customers = typed(read_table(tmp_path / "t.csv", telco, Path("telco.yaml"))[0], telco)
    assert customers["MonthlyCharges"].dtype == "float64" and customers["tenure"].dtype == "int64"
    assert customers.index.tolist() == frame["customerID"].tolist()


def test_an_empty_file_and_an_all_dropped_table_are_refused(tmp_path, telco):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(PipelineError, match="is empty"):
        read_table(tmp_path / "empty.csv", telco, Path("telco.yaml"))
    frame = synthetic.telco_customers(3, seed=4, blank_total_charges=3)
    (tmp_path / "t.csv").write_bytes(synthetic.to_telco_csv(frame))
    with pytest.raises(
        PipelineError, match="every row was rejected by a missing-cell or invalid-value policy"
    ):
        read_table(tmp_path / "t.csv", telco, Path("telco.yaml"))


# --- no stage module knows a column ---------------------------------------------------------------


def column_names() -> set[str]:
    names = set()
    for path in DATASET_FILES:
        spec = yaml.safe_load(path.read_text())
        names |= set(spec["columns"]) | ({spec["id"]} if spec.get("id") else set())
    return names


# Python and English words that are also column names: searched only as string literals.
COMMON_WORDS = {"default", "y"}


def test_no_stage_module_names_a_column_of_any_data_set():
    names = column_names()
    assert {"age", "balance", "contact", "TotalCharges", "Churn", "customerID"} <= names
    found = []
    # The draft command makes up column names for the numbers it derives (an `Age` from a birth
    # year) and reads any table's names; every other module learns them from the data-set file.
    modules = [
        path
        for package in ("stages", "segmentation")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "drafting.py" and "testing" not in path.parts
    ]
    for module in sorted(modules):
        text = module.read_text()
        for name in sorted(names):
            literal = re.search(rf"""["']{re.escape(name)}["']""", text)
            word = name not in COMMON_WORDS and re.search(
                rf"\b{re.escape(name)}\b", text, flags=re.IGNORECASE
            )
            if literal or word:
                found.append(f"{module.name}: {name}")
    assert not found, found


# --- DVC knows every input ------------------------------------------------------------------------


def test_packages_hold_no_code_of_their_own():
    """Package ``__init__`` files hold only a docstring, so importing one runs no code that the
    derived code deps would miss."""
    for package in ("stages", "segmentation"):
        for init in (ROOT / package).rglob("__init__.py"):
            body = ast.parse(init.read_text()).body
            assert all(
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
            ), init


@pytest.mark.parametrize("stage", sorted(PIPELINE["stages"]))
def test_each_stage_lists_exactly_the_code_it_runs_and_its_data_set_file(stage):
    definition = PIPELINE["stages"][stage]
    module = re.fullmatch(r"python -m (stages\.\w+) \$\{item\.ds\}", definition["cmd"]).group(1)
    deps = definition["deps"]
    listed = [dep for dep in deps if dep.startswith(("stages/", "segmentation/"))]
    assert listed == code_deps.code_deps(module), (
        f"{stage}: run `python scripts/code_deps.py` to list the code it imports"
    )
    text = code_deps.module_file(module).read_text()
    reads_dataset = "load_dataset(" in text or "dataset_file(" in text
    assert ("datasets/${item.ds}.yaml" in deps) == reads_dataset


def test_stages_never_import_one_another():
    for stage in (ROOT / "stages").glob("*.py"):
        imported = code_deps.imported_modules(f"stages.{stage.stem}")
        assert not {name for name in imported if name.startswith("stages.")}, stage


def test_the_import_walk_finds_indirect_imports():
    """The comparison report reaches the projection module only through another module: the walk
    must see it."""
    report = "segmentation.reporting.comparison"
    assert "projection" not in code_deps.module_file(report).read_text()
    assert "segmentation.evaluation.projection" in code_deps.imported_modules(report)
