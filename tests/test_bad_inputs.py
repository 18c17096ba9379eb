"""Bad inputs through the real CLI: ``python -m stages.<name> <data set>``
in a temporary copy of the project.

Each case sets up one bad data file, data-set file, param, download response (from a local HTTP
server) or environment, runs the stage that must refuse it, and checks that the stage exits
non-zero with a single ``error: <stage>: ...`` line naming the culprit, prints no traceback, and
leaves its outputs as they were (absent, or the previous ones byte for byte) with no temporary file
behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml

from segmentation.embedding.shards import write_matrix
from segmentation.testing import synthetic
from segmentation.testing.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
RAW = "data/bank/raw/table.csv"
TELCO_RAW = "data/telco/raw/table.csv"
TELCO_LINES = synthetic.to_telco_csv(synthetic.telco_customers(30, seed=1)).decode().splitlines()
GOOD_CSV = synthetic.to_uci_csv(synthetic.customers(30, seed=1))
GOOD_LINES = GOOD_CSV.decode().splitlines()
GOOD_ZIP = synthetic.zip_bytes({"bank.zip": synthetic.zip_bytes({"bank-full.csv": GOOD_CSV})})
GOOD_SHA = hashlib.sha256(GOOD_CSV).hexdigest()
OTHER_CSV = synthetic.to_uci_csv(synthetic.customers(30, seed=2))
PROXIED_URL = "http://bank.example.invalid/bank+marketing.zip"
SLOW_S = 3


def stage_outputs(stage: str, dataset: str) -> list[str]:
    """Every path dvc.yaml names as an output of ``stage`` for ``dataset``
    (outs, metrics and plots)."""
    entries = [
        e for kind in ("outs", "metrics", "plots") for e in PIPELINE["stages"][stage].get(kind, [])
    ]
    return [
        (e if isinstance(e, str) else next(iter(e))).replace("${item.ds}", dataset) for e in entries
    ]


# --- a local HTTP server that misbehaves on demand ------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[Counter] = Counter()  # requests per path, across the module

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        Handler.hits[self.path] += 1
        route = self.path if self.path == PROXIED_URL else self.path.rsplit("/", 1)[-1]
        # The client giving up first breaks the connection, as intended.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            ROUTES[route](self)

    def send_body(self, body: bytes, status: int = 200, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)


def _flaky(handler: Handler) -> None:
    if Handler.hits[handler.path] == 1:
        handler.send_error(500, "Internal Server Error")
    else:
        handler.send_body(GOOD_ZIP)


def _endless(handler: Handler) -> None:
    handler.send_response(200)  # no Content-Length: the body ends when the connection closes
    handler.end_headers()
    for _ in range(40):
        handler.wfile.write(b"x" * 65536)


def _slow(handler: Handler) -> None:
    time.sleep(SLOW_S)
    handler.send_body(GOOD_ZIP)


ROUTES: dict[str, Callable[[Handler], None]] = {
    "flaky.zip": _flaky,
    "down.zip": lambda h: h.send_error(503, "Service Unavailable"),
    "gone.zip": lambda h: h.send_error(404, "Not Found"),
    "other.zip": lambda h: h.send_body(synthetic.zip_bytes({"bank-full.csv": OTHER_CSV})),
    "truncated.zip": lambda h: h.send_body(GOOD_ZIP[: len(GOOD_ZIP) // 2]),
    "slip.zip": lambda h: h.send_body(
        synthetic.zip_bytes({"../../outside/bank-full.csv": GOOD_CSV})
    ),
    "bomb.zip": lambda h: h.send_body(synthetic.zip_bytes({"bank-full.csv": bytes(3 << 20)})),
    "huge.zip": lambda h: h.send_body(bytes(2 << 20)),
    "endless.zip": _endless,
    "short.zip": lambda h: h.send_body(GOOD_ZIP[:100], length=len(GOOD_ZIP)),
    "slow.zip": _slow,
    PROXIED_URL: lambda h: h.send_body(GOOD_ZIP),
}


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


# --- the project copy and the stage runner --------------------------------------------------------


class Project:
    def __init__(self, path: Path, server_url: str):
        self.path, self.server_url = path, server_url
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key.lower()
            not in {
                "http_proxy",
                "https_proxy",
                "all_proxy",
                "no_proxy",
                "bank_marketing_source",
                "telco_churn_source",
            }
        }
        self.env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            NO_PROXY="127.0.0.1,localhost",
            SEGMENTS_LOG_LEVEL="WARNING",
        )

    def write(self, relative: str, data: bytes | str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def _set(self, relative: str, dotted: dict) -> None:
        content = yaml.safe_load((self.path / relative).read_text())
        for key, value in dotted.items():
            *sections, leaf = key.split(".")
            node = content
            for section in sections:
                node = node.setdefault(section, {})
            if value is DELETE:
                node.pop(leaf)
            else:
                node[leaf] = value
        (self.path / relative).write_text(yaml.safe_dump(content, sort_keys=False))

    def params(self, **dotted) -> None:
        """Set params by dotted key, as ``dvc exp run -S`` does."""
        self._set("params.yaml", dotted)

    def dataset(self, name: str = "bank", **dotted) -> None:
        """Set keys of a data-set file by dotted key (``DELETE`` removes one)."""
        self._set(f"datasets/{name}.yaml", dotted)

    def fetch_from(self, route: str, **dotted) -> None:
        self.dataset(**{"source.url": f"{self.server_url}/{route}", "source.sha256": GOOD_SHA})
        self.params(
            **{
                "download.attempts": 3,
                "download.backoff_s": 0.05,
                "download.timeout_s": 5,
                "download.max_mb": 1,
                **dotted,
            }
        )

    def csv(self, lines: list[str]) -> None:
        self.write(RAW, "\n".join(lines) + "\n")

    def run(self, stage: str, dataset: str = "bank") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", f"stages.{stage}", dataset],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def snapshot(self, paths: list[str]) -> dict[str, str | None]:
        return {
            p: hashlib.sha256((self.path / p).read_bytes()).hexdigest()
            if (self.path / p).exists()
            else None
            for p in paths
        }


DELETE = object()


@pytest.fixture
def project(tmp_path, server):
    return Project(
        copy_project(tmp_path, ("stages", "segmentation", "datasets", "params.yaml", "dvc.yaml")),
        server,
    )


def replaced(line_number: int, column: str, value: str, lines: list[str] = GOOD_LINES) -> list[str]:
    """The good table with one cell (file line ``line_number``, 1 = header) set to ``value``."""
    separator, header = (
        (";", synthetic.HEADER)
        if lines is GOOD_LINES or ";" in lines[0]
        else (",", synthetic.TELCO_HEADER)
    )
    lines = list(lines)
    cells = lines[line_number - 1].split(separator)
    cells[header.index(column)] = value
    lines[line_number - 1] = separator.join(cells)
    return lines


# --- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    stage: str
    setup: Callable[[Project], None]
    culprits: tuple[str, ...]
    previous_outputs: bool = False  # start from outputs of an earlier good run, which must survive
    env: dict[str, str] = field(default_factory=dict)
    dataset: str = "bank"


def _good_raw(p: Project) -> None:
    p.write(RAW, GOOD_CSV)


def _params(**dotted) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        _good_raw(p)
        p.params(**dotted)

    return setup


def _lines(lines: list[str]) -> Callable[[Project], None]:
    return lambda p: p.csv(lines)


def _spec(**dotted) -> Callable[[Project], None]:
    """The good table with the bank data-set file changed."""

    def setup(p: Project) -> None:
        _good_raw(p)
        p.dataset(**dotted)

    return setup


def _tenure_from_day(**dotted) -> Callable[[Project], None]:
    """The bank's `day` (1..31) declared a dd/mm/yyyy date, and a tenure derived from it."""
    return _spec(
        segment_on=["age", "job", "marital", "education", "balance", "tenure"],
        **{
            "columns.day": {"kind": "date", "format": "%d/%m/%Y"},
            "columns.tenure": {"kind": "numeric", "derive": {"days_since": "day"}},
        },
        **dotted,
    )


def _telco(lines: list[str], **dotted) -> Callable[[Project], None]:
    """A telco-shaped table (it has an id column), with its data-set file changed."""

    def setup(p: Project) -> None:
        p.write(TELCO_RAW, "\n".join(lines) + "\n")
        p.dataset("telco", **dotted)

    return setup


def _texts_and_model(p: Project) -> None:
    p.write("data/bank/interim/texts.csv", "customer_id,text\n0,Age: 30\n1,Age: 61\n")
    p.params(model="no-such-org/no-such-model")


def _inliers(p: Project, rows: int = 20) -> None:
    write_matrix(
        p.path / "data/bank/interim/embeddings",
        np.random.default_rng(0).random((rows, 4), dtype=np.float32),
        [str(i) for i in range(rows)],
        shard_rows=8,
    )
    p.write(
        "data/bank/interim/outliers.csv",
        "customer_id,ecod_score,outlier\n" + "".join(f"{i},0.5,0\n" for i in range(rows)),
    )


def _pickled_embeddings(p: Project) -> None:
    _inliers(p)
    p.write(
        "data/bank/interim/texts.csv", "customer_id,text\n" + "".join(f"{i},t\n" for i in range(20))
    )
    np.save(
        p.path / "data/bank/interim/embeddings/shard-000001.npy",
        np.array([{"payload": 1}], dtype=object),
        allow_pickle=True,
    )


def _index_not_json(p: Project) -> None:
    _pickled_embeddings(p)
    (p.path / "data/bank/interim/embeddings/index.json").write_text("{ half-written")


def _shard_left_out(p: Project) -> None:
    _pickled_embeddings(p)
    index = p.path / "data/bank/interim/embeddings/index.json"
    entries = json.loads(index.read_text())
    del entries["shards"][1]
    index.write_text(json.dumps(entries))


def _k_above_inliers(p: Project) -> None:
    (p.path / "data/bank/interim").mkdir(parents=True, exist_ok=True)
    _inliers(p)
    p.params(k=30)


def _fetch(route: str, **dotted) -> Callable[[Project], None]:
    return lambda p: p.fetch_from(route, **dotted)


def _nothing_listening(p: Project) -> None:
    p.fetch_from("bank.zip")
    p.dataset(**{"source.url": "http://127.0.0.1:9/bank.zip"})


HEADER = GOOD_LINES[0]
CASES = [
    # the customer table, refused by the first stage that reads it
    Case(
        "empty file",
        "serialize",
        lambda p: p.write(RAW, b""),
        ("table.csv: is empty",),
        previous_outputs=True,
    ),
    Case("header only", "serialize", _lines([HEADER]), ("has a header but no customer rows",)),
    Case(
        "comma separated",
        "serialize",
        _lines([line.replace(";", ",") for line in GOOD_LINES]),
        ("header line 1 has no ';'", "looks ','-separated"),
    ),
    Case(
        "missing column",
        "serialize",
        _lines([HEADER.replace('"balance"', '"saldo"')] + GOOD_LINES[1:]),
        (
            "declared column(s) ['balance'] are not in the table",
            "'saldo'",
            "fix the names in datasets/bank.yaml",
        ),
    ),
    Case(
        "duplicate header name",
        "serialize",
        _lines([HEADER.replace('"day"', '"age"')] + GOOD_LINES[1:]),
        ("header line 1 repeats column(s) ['age']",),
    ),
    Case(
        "header repeated inside",
        "serialize",
        _lines(GOOD_LINES[:10] + [HEADER] + GOOD_LINES[10:]),
        ("line(s) 11 repeat the header",),
        previous_outputs=True,
    ),
    Case(
        "latin-1 bytes",
        "serialize",
        lambda p: p.write(RAW, "\n".join(replaced(5, "job", '"técnico"')).encode("latin-1")),
        ("line 5 is not utf-8", "re-save the file as utf-8", "format.encoding"),
    ),
    Case(
        "age not a number",
        "serialize",
        _lines(replaced(4, "age", "forty")),
        ("column 'age' is not a whole number on line(s) 4", "'forty'"),
    ),
    Case(
        "age out of range",
        "serialize",
        _lines(replaced(6, "age", "150")),
        ("column 'age' is outside 18..120 on line(s) 6", "set columns.age.invalid to drop"),
    ),
    Case(
        "balance out of range",
        "serialize",
        _lines(replaced(3, "balance", "123456789012")),
        ("column 'balance' is outside", "line(s) 3"),
    ),
    Case(
        "decimal balance",
        "serialize",
        _lines(replaced(8, "balance", "12.5")),
        ("column 'balance' is not a whole number on line(s) 8",),
    ),
    Case(
        "unknown category",
        "serialize",
        _lines(replaced(7, "marital", '"maried"')),
        ("column 'marital' has value(s) outside its values on line(s) 7", "'maried'", "'married'"),
    ),
    Case(
        "blank cell refused",
        "serialize",
        _lines(replaced(8, "education", '""')),
        (
            "column 'education' is blank on line(s) 8",
            "set columns.education.missing to drop",
            "or keep",
        ),
    ),
    Case(
        "several bad values",
        "serialize",
        _lines(replaced(9, "loan", '"maybe"', replaced(2, "age", "-3"))),
        (
            "column 'age' is outside 18..120 on line(s) 2",
            "column 'loan' has value(s) outside its values on line(s) 9",
        ),
    ),
    Case(
        "ragged row",
        "serialize",
        _lines(GOOD_LINES[:8] + [GOOD_LINES[8] + ";42"] + GOOD_LINES[9:]),
        ("malformed table", "line 9", "17 ';'-separated fields"),
    ),
    Case(
        "blank line",
        "serialize",
        _lines(GOOD_LINES[:4] + [""] + GOOD_LINES[4:]),
        ("line(s) 5 are blank",),
    ),
    Case(
        "raw file missing",
        "serialize",
        lambda p: None,
        ("data/bank/raw/table.csv: missing", "dvc repro"),
    ),
    # the customer table against its data-set file
    Case(
        "exponent in a number",
        "serialize",
        _lines(replaced(5, "age", "4.2e1")),
        ("column 'age' is not a whole number on line(s) 5", "'4.2e1'", "no exponent"),
    ),
    Case(
        "text in a decimal number",
        "serialize",
        _telco(replaced(4, "MonthlyCharges", "n/a", TELCO_LINES)),
        ("column 'MonthlyCharges' is not a plain number on line(s) 4", "'n/a'"),
        dataset="telco",
    ),
    Case(
        "ordinal value outside its levels",
        "serialize",
        _lines(replaced(3, "education", '"doctorate"')),
        (
            "column 'education' has value(s) outside its levels on line(s) 3",
            "'doctorate'",
            "columns.education.levels",
        ),
    ),
    Case(
        "too many categories",
        "serialize",
        _spec(**{"columns.job.values": DELETE, "max_categories": 4}),
        (
            "column 'job' has",
            "distinct values, over max_categories (4)",
            "declare it numeric",
            "group its values",
        ),
    ),
    Case(
        "duplicate ids",
        "serialize",
        _telco(replaced(6, "customerID", TELCO_LINES[2].split(",")[0], TELCO_LINES)),
        ("id column 'customerID' repeats ids on line(s) 3, 6", "ids must be unique"),
        dataset="telco",
    ),
    Case(
        "blank id",
        "serialize",
        _telco(replaced(7, "customerID", "", TELCO_LINES)),
        ("id column 'customerID' is blank on line(s) 7",),
        dataset="telco",
    ),
    Case(
        "telco column missing",
        "serialize",
        _telco([TELCO_LINES[0].replace("TotalCharges", "Total")] + TELCO_LINES[1:]),
        ("declared column(s) ['TotalCharges'] are not in the table", "'Total'"),
        dataset="telco",
    ),
    # the data-set file
    Case(
        "unknown kind",
        "serialize",
        _spec(**{"columns.age.kind": "number"}),
        (
            "datasets/bank.yaml: columns.age.kind: Input should be 'numeric', 'categorical', "
            "'ordinal' or 'date'",
            "'number'",
        ),
    ),
    Case(
        "template unknown column",
        "serialize",
        _spec(template="Salary: {salary}"),
        ("datasets/bank.yaml", "template names undeclared column(s) ['salary']"),
    ),
    Case(
        "template bad format",
        "serialize",
        _spec(template="Job: {job:d}"),
        ("template", "cannot be filled"),
    ),
    Case(
        "template carries the outcome",
        "serialize",
        _spec(
            template="Age: {age} {contact} {job} {marital} {education} "
            "{default} {balance} {housing} {loan} {y}"
        ),
        ("template carries outcome column(s) ['y']",),
    ),
    Case(
        "unquoted yes in values",
        "serialize",
        _spec(**{"columns.loan.values": ["no", True]}),
        ("columns.loan.values.1", "quote the value"),
    ),
    Case(
        "segmenting on an undeclared column",
        "serialize",
        _spec(segment_on=["age", "salary"]),
        ("segment_on names undeclared column(s) ['salary']",),
    ),
    Case(
        "ordinal without levels",
        "serialize",
        _spec(**{"columns.education.levels": DELETE}),
        ("columns.education", "an ordinal column needs its levels"),
    ),
    Case(
        "data-set file missing",
        "serialize",
        lambda p: None,
        ("datasets/shop.yaml: no such data-set file (found ['bank', 'churners', 'telco'])",),
        dataset="shop",
    ),
    # params, refused by whichever stage starts first
    Case("k=0", "serialize", _params(k=0), ("k: Input should be greater than or equal to 2",)),
    Case("k=six", "serialize", _params(k="six"), ("k: Input should be a valid integer", "'six'")),
    Case(
        "unknown key",
        "serialize",
        _params(**{"outliers.contaminaton": 0.1}),
        ("outliers.contaminaton: unknown key",),
    ),
    Case(
        "contamination 0.7",
        "serialize",
        _params(**{"outliers.contamination": 0.7}),
        ("outliers.contamination: Input should be less than 0.5",),
    ),
    Case(
        "k range reversed",
        "serialize",
        _params(**{"elbow.k_min": 8, "elbow.k_max": 4}),
        ("k_min (8) must be below k_max (4)",),
    ),
    Case(
        "batch size 0",
        "serialize",
        _params(**{"embed.batch_size": 0}),
        ("embed.batch_size: Input should be greater than 0",),
    ),
    Case(
        "every problem at once",
        "serialize",
        _params(k=1, seed=-1, **{"download.attempts": 0}),
        (
            "k: Input should be greater",
            "seed: Input should be greater",
            "download.attempts: Input should be greater",
        ),
    ),
    Case(
        "unknown data set",
        "serialize",
        _params(datasets=["bank", "shop"]),
        ("no data-set file for ['shop']",),
    ),
    Case(
        "url not http",
        "download",
        lambda p: p.dataset(**{"source.url": "ftp://example.org/bank.zip"}),
        ("datasets/bank.yaml: source.url",),
    ),
    Case(
        "zero attempts",
        "download",
        lambda p: p.params(**{"download.attempts": 0}),
        ("download.attempts",),
    ),
    Case(
        "params not yaml",
        "serialize",
        lambda p: p.write("params.yaml", "k: [5\n"),
        ("params.yaml: not valid YAML",),
    ),
    Case(
        "params missing",
        "serialize",
        lambda p: (p.path / "params.yaml").unlink(),
        ("params.yaml: not found",),
    ),
    # data between stages, the model and the data size
    Case(
        "unknown model offline",
        "embed",
        _texts_and_model,
        (
            "model 'no-such-org/no-such-model' could not be loaded",
            "HF_HUB_OFFLINE",
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
    ),
    Case(
        "pickled embeddings",
        "outliers",
        _pickled_embeddings,
        ("shard-000001.npy: not a plain .npy array",),
    ),
    Case(
        "a shard index that is not JSON",
        "outliers",
        _index_not_json,
        ("embeddings/index.json: not JSON (", "rerun 'dvc repro'"),
    ),
    Case(
        "a shard left out of the index",
        "outliers",
        _shard_left_out,
        ("embeddings/index.json: shard-000002.npy starts at row 16, where row 8 was due",),
    ),
    Case(
        "k above inliers",
        "kmeans",
        _k_above_inliers,
        ("k=30 must be below the number of inliers (20)",),
        previous_outputs=True,
    ),
    # download responses from the local server
    Case(
        "persistent 503",
        "download",
        _fetch("down.zip"),
        ("HTTP 503", "tried 3 time(s)", "BANK_MARKETING_SOURCE"),
    ),
    Case("404", "download", _fetch("gone.zip"), ("HTTP 404", "check source.url")),
    Case(
        "checksum mismatch",
        "download",
        _fetch("other.zip"),
        (
            hashlib.sha256(OTHER_CSV).hexdigest(),
            GOOD_SHA,
            "does not match source.sha256",
            "datasets/bank.yaml",
        ),
        previous_outputs=True,
    ),
    Case(
        "truncated zip",
        "download",
        _fetch("truncated.zip"),
        ("truncated.zip: corrupt or truncated zip",),
    ),
    Case(
        "zip slip",
        "download",
        _fetch("slip.zip"),
        ("'../../outside/bank-full.csv' would be written outside",),
    ),
    Case(
        "zip bomb",
        "download",
        _fetch("bomb.zip"),
        ("bomb.zip!bank-full.csv: unpacks to 3145728 bytes", "download.max_mb"),
    ),
    Case(
        "oversize body",
        "download",
        _fetch("huge.zip"),
        ("announces 2097152 bytes", "download.max_mb (1 MB)"),
    ),
    Case("oversize stream", "download", _fetch("endless.zip"), ("sent more than 1048576 bytes",)),
    Case(
        "body cut short",
        "download",
        _fetch("short.zip"),
        (f"got 100 of {len(GOOD_ZIP)} announced bytes",),
    ),
    Case(
        "slow server",
        "download",
        _fetch("slow.zip", **{"download.timeout_s": 0.3, "download.attempts": 2}),
        ("download.timeout_s=0.3 s", "tried 2 time(s)"),
    ),
    Case(
        "map onto an undeclared value",
        "serialize",
        _spec(**{"columns.marital.map": {"Alone": "solo"}}),
        ("datasets/bank.yaml: columns.marital", "map sends 'Alone' to 'solo'"),
    ),
    Case(
        "date format that does not parse",
        "serialize",
        _spec(**{"columns.day": {"kind": "date", "format": "%Q"}}),
        ("datasets/bank.yaml: columns.day", "format '%Q' is not a date format"),
    ),
    Case(
        "derivation from a non-date column",
        "serialize",
        _spec(
            reference_date="2014-12-31",
            segment_on=["age", "job", "marital", "education", "balance", "tenure"],
            **{"columns.tenure": {"kind": "numeric", "derive": {"months_since": "job"}}},
        ),
        ("datasets/bank.yaml", "columns.tenure.derive: months_since needs a date column"),
    ),
    Case(
        "reference date missing",
        "serialize",
        _tenure_from_day(),
        ("datasets/bank.yaml", "columns.tenure.derive", "reference_date, which is missing"),
    ),
    Case(
        "date that does not parse",
        "serialize",
        _tenure_from_day(reference_date="2014-12-31"),
        ("column 'day' is not a date written as '%d/%m/%Y' on line(s) 2", "invalid to drop"),
    ),
    Case("nothing listening", "download", _nothing_listening, ("Connection refused",)),
    # the environment
    Case(
        "source file missing",
        "download",
        lambda p: None,
        ("BANK_MARKETING_SOURCE=/nowhere/bank.zip: no such file",),
        env={"BANK_MARKETING_SOURCE": "/nowhere/bank.zip"},
    ),
    Case(
        "source folder empty",
        "download",
        lambda p: (p.path / "empty").mkdir(),
        ("empty: folder holds neither bank-full.csv nor a zip",),
        env={"BANK_MARKETING_SOURCE": "empty"},
    ),
    Case(
        "dead proxy",
        "download",
        lambda p: (
            p.fetch_from("x", **{"download.attempts": 1}),
            p.dataset(**{"source.url": PROXIED_URL}),
        ),
        ("cannot fetch http://bank.example.invalid", "Connection refused"),
        env={"http_proxy": "http://127.0.0.1:9"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_in_one_line_and_leaves_outputs_alone(project, case):
    case.setup(project)
    outputs = stage_outputs(case.stage, case.dataset)
    if case.previous_outputs:
        for path in outputs:
            project.write(path, f"output of an earlier good run: {path}\n")
    before = project.snapshot(outputs)
    project.env.update(case.env)
    result = project.run(case.stage, case.dataset)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith(f"error: {case.stage}: "), result.stderr
    for culprit in case.culprits:
        assert culprit in lines[-1], lines[-1]
    assert project.snapshot(outputs) == before
    assert not list(project.path.rglob(".*.tmp"))


def test_bad_input_table_is_large_and_distinct():
    assert len(CASES) >= 60 and len({case.id for case in CASES}) == len(CASES)


# --- what must be read, not refused ---------------------------------------------------------------


def test_a_spreadsheet_export_with_bom_and_crlf_gives_the_same_texts(project):
    plain = GOOD_CSV
    project.write(RAW, plain)
    assert project.run("serialize").returncode == 0
    expected = (project.path / "data/bank/interim/texts.csv").read_bytes()
    project.write(RAW, b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n"))
    result = project.run("serialize")
    assert result.returncode == 0, result.stderr
    assert (project.path / "data/bank/interim/texts.csv").read_bytes() == expected


def test_missing_cell_policies_drop_with_a_reason_or_keep_as_a_category(project):
    lines = replaced(6, "TotalCharges", "", replaced(9, "PaymentMethod", "", TELCO_LINES))
    project.write(TELCO_RAW, "\n".join(lines) + "\n")
    project.dataset("telco", **{"columns.PaymentMethod.missing": "keep"})
    result = project.run("serialize", "telco")
    assert result.returncode == 0, result.stderr
    rejected = (project.path / "reports/telco/rejected.csv").read_text().splitlines()
    ids = [line.split(",")[0] for line in TELCO_LINES]
    # the synthetic file's 3 first-month customers (lines 2-4, TotalCharges blank), then line 6
    assert rejected[0] == "customer_id,line,column,reason" and len(rejected) == 1 + 4
    assert rejected[-1] == f"{ids[5]},6,TotalCharges,TotalCharges is blank"
    customers = (project.path / "data/telco/interim/customers.csv").read_text()
    assert ids[5] not in customers and f"{ids[8]}," in customers and ",missing," in customers
    assert (project.path / "metrics/telco/rows.json").read_text() == (
        '{\n  "table_rows": 30,\n  "rejected_rows": 4,\n  "kept_rows": 26,\n'
        '  "repeated_records": 0\n}\n'
    )


# --- what must work despite the network -----------------------------------------------------------


def test_a_transient_500_is_retried(project):
    project.fetch_from("flaky.zip")
    result = project.run("download")
    assert result.returncode == 0, result.stderr
    assert "HTTP 500" in result.stderr and "try 2 of 3" in result.stderr
    assert (project.path / RAW).read_bytes() == GOOD_CSV
    assert Handler.hits["/flaky.zip"] == 2


def test_the_standard_proxy_variables_are_honoured(project, server):
    project.fetch_from("x")
    project.dataset(**{"source.url": PROXIED_URL})
    project.env["http_proxy"] = server  # the test server answers for the unreachable host
    result = project.run("download")
    assert result.returncode == 0, result.stderr
    assert (project.path / RAW).read_bytes() == GOOD_CSV
    assert Handler.hits[PROXIED_URL] == 1


def test_404_is_not_retried(project):
    project.fetch_from("gone.zip")
    before = Handler.hits["/gone.zip"]
    assert project.run("download").returncode != 0
    assert Handler.hits["/gone.zip"] == before + 1
