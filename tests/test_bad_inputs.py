"""Bad inputs through the real CLI: ``python -m stages.<name>`` in a temporary copy of the project.

Each case sets up one bad data file, param, download response (from a local HTTP server) or
environment, runs the stage that must refuse it, and checks that the stage exits non-zero with a
single ``error: <stage>: ...`` line naming the culprit, prints no traceback, and leaves its outputs
as they were (absent, or the previous ones byte for byte) with no temporary file behind.
"""
from __future__ import annotations

import hashlib
import http.server
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

import synthetic
from project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
RAW = "data/raw/bank-full.csv"
GOOD_CSV = synthetic.to_uci_csv(synthetic.customers(30, seed=1))
GOOD_LINES = GOOD_CSV.decode().splitlines()
GOOD_ZIP = synthetic.zip_bytes({"bank.zip": synthetic.zip_bytes({"bank-full.csv": GOOD_CSV})})
GOOD_SHA = hashlib.sha256(GOOD_CSV).hexdigest()
OTHER_CSV = synthetic.to_uci_csv(synthetic.customers(30, seed=2))
PROXIED_URL = "http://bank.example.invalid/bank+marketing.zip"
SLOW_S = 3


def stage_outputs(stage: str) -> list[str]:
    """Every path dvc.yaml names as an output of ``stage`` (outs, metrics and plots)."""
    entries = [e for kind in ("outs", "metrics", "plots") for e in PIPELINE["stages"][stage].get(kind, [])]
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


# --- a local HTTP server that misbehaves on demand ------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[Counter] = Counter()  # requests per path, across the module

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        Handler.hits[self.path] += 1
        route = self.path if self.path == PROXIED_URL else self.path.rsplit("/", 1)[-1]
        try:
            ROUTES[route](self)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first, as intended
            pass

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
    "slip.zip": lambda h: h.send_body(synthetic.zip_bytes({"../../outside/bank-full.csv": GOOD_CSV})),
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


# --- the project copy and the stage runner ---------------------------------------------------------

class Project:
    def __init__(self, path: Path, server_url: str):
        self.path, self.server_url = path, server_url
        self.env = {key: value for key, value in os.environ.items()
                    if key.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "bank_marketing_source"}}
        self.env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", NO_PROXY="127.0.0.1,localhost",
                        SEGMENTS_LOG_LEVEL="WARNING")

    def write(self, relative: str, data: bytes | str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def params(self, **dotted) -> None:
        """Set params by dotted key, as ``dvc exp run -S`` does."""
        params = yaml.safe_load((self.path / "params.yaml").read_text())
        for key, value in dotted.items():
            *sections, leaf = key.split(".")
            node = params
            for section in sections:
                node = node.setdefault(section, {})
            node[leaf] = value
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def fetch_from(self, route: str, **dotted) -> None:
        self.params(**{"download.url": f"{self.server_url}/{route}", "download.sha256": GOOD_SHA,
                       "download.attempts": 3, "download.backoff_s": 0.05, "download.timeout_s": 5,
                       "download.max_mb": 1, **dotted})

    def csv(self, lines: list[str]) -> None:
        self.write(RAW, "\n".join(lines) + "\n")

    def run(self, stage: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=self.path, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def snapshot(self, paths: list[str]) -> dict[str, str | None]:
        return {p: hashlib.sha256((self.path / p).read_bytes()).hexdigest() if (self.path / p).exists() else None
                for p in paths}


@pytest.fixture
def project(tmp_path, server):
    return Project(copy_project(tmp_path, ("stages", "params.yaml", "dvc.yaml")), server)


def replaced(line_number: int, column: str, value: str, lines: list[str] = GOOD_LINES) -> list[str]:
    """The good table with one cell (file line ``line_number``, 1 = header) set to ``value``."""
    lines = list(lines)
    cells = lines[line_number - 1].split(";")
    cells[synthetic.HEADER.index(column)] = value
    lines[line_number - 1] = ";".join(cells)
    return lines


# --- the cases -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    stage: str
    setup: Callable[[Project], None]
    culprits: tuple[str, ...]
    previous_outputs: bool = False  # start from outputs of an earlier good run, which must survive
    env: dict[str, str] = field(default_factory=dict)


def _good_raw(p: Project) -> None:
    p.write(RAW, GOOD_CSV)


def _params(**dotted) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        _good_raw(p)
        p.params(**dotted)
    return setup


def _lines(lines: list[str]) -> Callable[[Project], None]:
    return lambda p: p.csv(lines)


def _texts_and_model(p: Project) -> None:
    p.write("data/interim/texts.csv", "customer_id,text\n0,Age: 30\n1,Age: 61\n")
    p.params(model="no-such-org/no-such-model")


def _inliers(p: Project, rows: int = 20) -> None:
    np.save(p.path / "data/interim/embeddings.npy", np.random.default_rng(0).random((rows, 4), dtype=np.float32))
    p.write("data/interim/outliers.csv", "customer_id,ecod_score,inlier\n" + "".join(f"{i},0.5,1\n" for i in range(rows)))


def _pickled_embeddings(p: Project) -> None:
    (p.path / "data/interim").mkdir(parents=True)
    np.save(p.path / "data/interim/embeddings.npy", np.array([{"payload": 1}], dtype=object), allow_pickle=True)


def _k_above_inliers(p: Project) -> None:
    (p.path / "data/interim").mkdir(parents=True, exist_ok=True)
    _inliers(p)
    p.params(k=30)


def _fetch(route: str, **dotted) -> Callable[[Project], None]:
    return lambda p: p.fetch_from(route, **dotted)


def _nothing_listening(p: Project) -> None:
    p.fetch_from("bank.zip", **{"download.url": "http://127.0.0.1:9/bank.zip"})


HEADER = GOOD_LINES[0]
CASES = [
    # the customer table, refused by the first stage that reads it
    Case("empty file", "serialize", lambda p: p.write(RAW, b""), ("bank-full.csv: is empty",), previous_outputs=True),
    Case("header only", "serialize", _lines([HEADER]), ("has a header but no customer rows",)),
    Case("comma separated", "serialize", _lines([line.replace(";", ",") for line in GOOD_LINES]),
         ("header line 1 has no ';'", "looks ','-separated")),
    Case("missing column", "serialize", _lines([HEADER.replace('"balance"', '"saldo"')] + GOOD_LINES[1:]),
         ("missing column(s) ['balance']",)),
    Case("duplicate header name", "serialize", _lines([HEADER.replace('"day"', '"age"')] + GOOD_LINES[1:]),
         ("header line 1 repeats column(s) ['age']",)),
    Case("header repeated inside", "serialize", _lines(GOOD_LINES[:10] + [HEADER] + GOOD_LINES[10:]),
         ("line(s) 11 repeat the header",), previous_outputs=True),
    Case("latin-1 bytes", "serialize", lambda p: p.write(RAW, "\n".join(replaced(5, "job", '"técnico"')).encode("latin-1")),
         ("line 5 is not UTF-8", "re-save the file as UTF-8")),
    Case("age not a number", "serialize", _lines(replaced(4, "age", "forty")),
         ("column 'age' is not a whole number on line(s) 4", "'forty'")),
    Case("age out of range", "serialize", _lines(replaced(6, "age", "150")), ("column 'age' is outside 18..120 on line(s) 6",)),
    Case("balance out of range", "serialize", _lines(replaced(3, "balance", "123456789012")),
         ("column 'balance' is outside", "line(s) 3")),
    Case("decimal balance", "serialize", _lines(replaced(8, "balance", "12.5")),
         ("column 'balance' is not a whole number on line(s) 8",)),
    Case("unknown category", "serialize", _lines(replaced(7, "marital", '"maried"')),
         ("column 'marital' has unknown value(s) on line(s) 7", "'maried'", "'married'")),
    Case("missing value", "serialize", _lines(replaced(8, "education", '""')), ("column 'education' is empty on line(s) 8",)),
    Case("several bad values", "serialize", _lines(replaced(9, "loan", '"maybe"', replaced(2, "age", "-3"))),
         ("column 'age' is outside 18..120 on line(s) 2", "column 'loan' has unknown value(s) on line(s) 9")),
    Case("ragged row", "serialize", _lines(GOOD_LINES[:8] + [GOOD_LINES[8] + ";42"] + GOOD_LINES[9:]),
         ("malformed table", "line 9", "17 ';'-separated fields")),
    Case("blank line", "serialize", _lines(GOOD_LINES[:4] + [""] + GOOD_LINES[4:]), ("line(s) 5 are blank",)),
    Case("raw file missing", "serialize", lambda p: None, ("data/raw/bank-full.csv: missing", "dvc repro download")),
    # params, refused by whichever stage starts first
    Case("k=0", "serialize", _params(k=0), ("k: Input should be greater than or equal to 2",)),
    Case("k=six", "serialize", _params(k="six"), ("k: Input should be a valid integer", "'six'")),
    Case("unknown key", "serialize", _params(**{"outliers.contaminaton": 0.1}), ("outliers.contaminaton: unknown key",)),
    Case("contamination 0.7", "serialize", _params(**{"outliers.contamination": 0.7}),
         ("outliers.contamination: Input should be less than 0.5",)),
    Case("k range reversed", "serialize", _params(**{"elbow.k_min": 8, "elbow.k_max": 4}), ("k_min (8) must be below k_max (4)",)),
    Case("batch size 0", "serialize", _params(**{"embed.batch_size": 0}), ("embed.batch_size: Input should be greater than 0",)),
    Case("template unknown column", "serialize", _params(**{"serialize.template": "Salary: {salary}"}),
         ("unknown column(s) ['salary']",)),
    Case("template bad format", "serialize", _params(**{"serialize.template": "Job: {job:d}"}),
         ("serialize.template", "cannot be filled")),
    Case("every problem at once", "serialize", _params(k=1, seed=-1, **{"download.sha256": "abc"}),
         ("k: Input should be greater", "seed: Input should be greater", "download.sha256: String should match")),
    Case("url not http", "download", lambda p: p.params(**{"download.url": "ftp://example.org/bank.zip"}), ("download.url",)),
    Case("zero attempts", "download", lambda p: p.params(**{"download.attempts": 0}), ("download.attempts",)),
    Case("params not yaml", "serialize", lambda p: p.write("params.yaml", "k: [5\n"), ("params.yaml: not valid YAML",)),
    Case("params missing", "serialize", lambda p: (p.path / "params.yaml").unlink(), ("params.yaml: not found",)),
    # data between stages, the model and the data size
    Case("unknown model offline", "embed", _texts_and_model,
         ("model 'no-such-org/no-such-model' could not be loaded", "HF_HUB_OFFLINE", "sentence-transformers/all-MiniLM-L6-v2")),
    Case("pickled embeddings", "outliers", _pickled_embeddings, ("embeddings.npy: not a plain .npy array",)),
    Case("k above inliers", "kmeans", _k_above_inliers, ("k=30 must be below the number of inliers (20)",), previous_outputs=True),
    # download responses from the local server
    Case("persistent 503", "download", _fetch("down.zip"), ("HTTP 503", "tried 3 time(s)", "BANK_MARKETING_SOURCE")),
    Case("404", "download", _fetch("gone.zip"), ("HTTP 404", "check download.url")),
    Case("checksum mismatch", "download", _fetch("other.zip"),
         (hashlib.sha256(OTHER_CSV).hexdigest(), GOOD_SHA, "does not match download.sha256"), previous_outputs=True),
    Case("truncated zip", "download", _fetch("truncated.zip"), ("truncated.zip: corrupt or truncated zip",)),
    Case("zip slip", "download", _fetch("slip.zip"), ("'../../outside/bank-full.csv' would be written outside",)),
    Case("zip bomb", "download", _fetch("bomb.zip"), ("bomb.zip!bank-full.csv: unpacks to 3145728 bytes", "download.max_mb")),
    Case("oversize body", "download", _fetch("huge.zip"), ("announces 2097152 bytes", "download.max_mb (1 MB)")),
    Case("oversize stream", "download", _fetch("endless.zip"), ("sent more than 1048576 bytes",)),
    Case("body cut short", "download", _fetch("short.zip"), (f"got 100 of {len(GOOD_ZIP)} announced bytes",)),
    Case("slow server", "download", _fetch("slow.zip", **{"download.timeout_s": 0.3, "download.attempts": 2}),
         ("download.timeout_s=0.3 s", "tried 2 time(s)")),
    Case("nothing listening", "download", _nothing_listening, ("Connection refused",)),
    # the environment
    Case("source file missing", "download", lambda p: None, ("BANK_MARKETING_SOURCE=/nowhere/bank.zip: no such file",),
         env={"BANK_MARKETING_SOURCE": "/nowhere/bank.zip"}),
    Case("source folder empty", "download", lambda p: (p.path / "empty").mkdir(), ("empty: folder holds none of",),
         env={"BANK_MARKETING_SOURCE": "empty"}),
    Case("dead proxy", "download", lambda p: p.fetch_from("x", **{"download.url": PROXIED_URL, "download.attempts": 1}),
         ("cannot fetch http://bank.example.invalid", "Connection refused"), env={"http_proxy": "http://127.0.0.1:9"}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_in_one_line_and_leaves_outputs_alone(project, case):
    case.setup(project)
    outputs = stage_outputs(case.stage)
    if case.previous_outputs:
        for path in outputs:
            project.write(path, f"output of an earlier good run: {path}\n")
    before = project.snapshot(outputs)
    project.env.update(case.env)
    result = project.run(case.stage)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith(f"error: {case.stage}: "), result.stderr
    for culprit in case.culprits:
        assert culprit in lines[-1], lines[-1]
    assert project.snapshot(outputs) == before
    assert not list(project.path.rglob(".*.tmp"))


def test_bad_input_table_is_large_and_distinct():
    assert len(CASES) >= 25 and len({case.id for case in CASES}) == len(CASES)


# --- what must work despite the network -------------------------------------------------------------

def test_a_transient_500_is_retried(project):
    project.fetch_from("flaky.zip")
    result = project.run("download")
    assert result.returncode == 0, result.stderr
    assert "HTTP 500" in result.stderr and "try 2 of 3" in result.stderr
    assert (project.path / RAW).read_bytes() == GOOD_CSV
    assert Handler.hits["/flaky.zip"] == 2


def test_the_standard_proxy_variables_are_honoured(project, server):
    project.fetch_from("x", **{"download.url": PROXIED_URL})
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
