"""Stage 1: fetch the UCI Bank Marketing archive (or a local copy) and keep ``bank-full.csv``.

The source is, in order: the environment variable ``BANK_MARKETING_SOURCE`` (a local
``bank-full.csv``, ``bank.zip`` or ``bank+marketing.zip``, a folder holding one of them, or a
mirror URL), else the ``download.url`` param. Whatever the source, the extracted file must match
``download.sha256``, so every source gives byte-identical raw data.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from stages.artifacts import PipelineError, run, write_bytes
from stages.config import RAW_CSV, load_params

log = logging.getLogger("segments")

SOURCE_ENV = "BANK_MARKETING_SOURCE"
MEMBER = "bank-full.csv"
INNER_ARCHIVE = "bank.zip"
FOLDER_CANDIDATES = (MEMBER, INNER_ARCHIVE, "bank+marketing.zip")
TIMEOUT_S = 60
OFFLINE_HINT = (
    f"to use a local copy, set {SOURCE_ENV} to a bank-full.csv, bank.zip or bank+marketing.zip "
    f"(or a folder holding one), e.g. {SOURCE_ENV}=../shared/data dvc repro"
)


def extract_bank_full(payload: bytes, origin: str) -> bytes:
    """Return the bytes of ``bank-full.csv`` from a CSV, ``bank.zip`` or the outer UCI zip."""
    if not payload.startswith(b"PK\x03\x04"):
        return payload
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        names = archive.namelist()
        for wanted in (MEMBER, INNER_ARCHIVE):
            member = next((n for n in names if n == wanted or n.endswith("/" + wanted)), None)
            if member is not None:
                return extract_bank_full(archive.read(member), f"{origin}!{member}")
    except (zipfile.BadZipFile, EOFError) as exc:
        raise PipelineError(f"{origin}: corrupt or truncated zip ({exc}); download it again") from None
    raise PipelineError(f"{origin}: zip holds neither {MEMBER} nor {INNER_ARCHIVE} (found {names[:10]})")


def verify_sha256(data: bytes, expected: str, origin: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise PipelineError(
            f"{origin}: sha256 {actual} does not match download.sha256 {expected}; "
            "the file is not the UCI bank-full.csv (or is damaged). Fetch it again, or if you "
            "deliberately use other data, set download.sha256 to its checksum"
        )


def read_source(source: str) -> tuple[bytes, str]:
    """Read a local file, a folder holding one of the known files, or a URL; return bytes and origin."""
    if "://" in source:
        return _fetch(source), source
    path = Path(source).expanduser()
    if path.is_dir():
        found = next((path / name for name in FOLDER_CANDIDATES if (path / name).is_file()), None)
        if found is None:
            raise PipelineError(f"{path}: folder holds none of {list(FOLDER_CANDIDATES)}; {OFFLINE_HINT}")
        path = found
    if not path.is_file():
        raise PipelineError(f"{SOURCE_ENV}={source}: no such file or folder; {OFFLINE_HINT}")
    return path.read_bytes(), str(path)


def _fetch(url: str) -> bytes:
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PipelineError(f"cannot fetch {url} ({reason}); {OFFLINE_HINT}") from None


def main() -> None:
    params = load_params().download
    source = os.environ.get(SOURCE_ENV) or params.url
    payload, origin = read_source(source)
    data = extract_bank_full(payload, origin)
    verify_sha256(data, params.sha256, origin)
    write_bytes(RAW_CSV, data)
    log.info("wrote %s (%d bytes) from %s", RAW_CSV, len(data), origin)


if __name__ == "__main__":
    run(main)
