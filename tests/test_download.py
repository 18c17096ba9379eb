"""Fetching the raw table: found in a CSV, a zip or a zip inside a zip; checksums; a local folder
as the source; and an unreachable URL explained."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from segmentation.artifacts import PipelineError
from segmentation.data import download
from segmentation.testing import synthetic


def test_extract_finds_the_table_in_csv_inner_and_outer_zip():
    data = synthetic.to_uci_csv(synthetic.customers(5))
    inner = synthetic.zip_bytes({"bank-full.csv": data, "bank.csv": b"x", "bank-names.txt": b"y"})
    outer = synthetic.zip_bytes(
        {"bank.zip": inner, "bank-additional.zip": synthetic.zip_bytes({"other.csv": b"z"})}
    )
    for payload in (data, inner, outer):
        assert download.extract_table(payload, "bank-full.csv", "src") == data


def test_extract_refuses_a_truncated_zip_and_a_zip_without_the_file():
    inner = synthetic.zip_bytes({"bank-full.csv": b"a;b\n" * 1000})
    with pytest.raises(PipelineError, match="corrupt or truncated zip"):
        download.extract_table(inner[: len(inner) // 2], "bank-full.csv", "cut.zip")
    with pytest.raises(PipelineError, match="zip holds no bank-full.csv, nor a zip holding it"):
        download.extract_table(
            synthetic.zip_bytes({"other.csv": b"x"}), "bank-full.csv", "other.zip"
        )


def test_checksum_mismatch_states_both_hashes():
    expected = hashlib.sha256(b"right").hexdigest()
    download.verify_sha256(b"right", expected, "f", Path("datasets/x.yaml"))
    with pytest.raises(PipelineError) as error:
        download.verify_sha256(b"wrong", expected, "f", Path("datasets/x.yaml"))
    assert expected in str(error.value) and hashlib.sha256(b"wrong").hexdigest() in str(error.value)
    assert "datasets/x.yaml" in str(error.value)


def test_read_source_accepts_a_folder_and_explains_a_missing_one(tmp_path, bank):
    (tmp_path / "bank.zip").write_bytes(b"PK\x03\x04zip")
    assert download.read_source(str(tmp_path), bank.source) == (
        b"PK\x03\x04zip",
        str(tmp_path / "bank.zip"),
    )
    (tmp_path / "bank-full.csv").write_bytes(b"the table")
    assert download.read_source(str(tmp_path), bank.source) == (
        b"the table",
        str(tmp_path / "bank-full.csv"),
    )
    with pytest.raises(PipelineError, match="BANK_MARKETING_SOURCE"):
        download.read_source(str(tmp_path / "nowhere"), bank.source)


def test_unreachable_url_says_how_to_use_a_local_copy(telco):
    with pytest.raises(PipelineError) as error:
        download.read_source(
            "http://127.0.0.1:9/telco.csv",
            telco.source,
            download.DownloadParams(attempts=2, backoff_s=0),
        )
    message = str(error.value)
    assert (
        message.startswith("cannot fetch http://127.0.0.1:9/telco.csv")
        and "TELCO_CHURN_SOURCE=" in message
    )
    assert "tried 2 time(s)" in message
