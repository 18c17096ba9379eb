"""Stage 1: fetch the UCI Bank Marketing archive (or a local copy) and keep ``bank-full.csv``.

The source is, in order: the environment variable ``BANK_MARKETING_SOURCE`` (a local
``bank-full.csv``, ``bank.zip`` or ``bank+marketing.zip``, a folder holding one of them, or a
mirror URL), else the ``download.url`` param. Whatever the source, the extracted file must match
``download.sha256``, so every source gives byte-identical raw data.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from stages.artifacts import PipelineError, run, write_bytes
from stages.config import RAW_CSV, DownloadParams, load_params

log = logging.getLogger("segments")

SOURCE_ENV = "BANK_MARKETING_SOURCE"
MEMBER = "bank-full.csv"
INNER_ARCHIVE = "bank.zip"
FOLDER_CANDIDATES = (MEMBER, INNER_ARCHIVE, "bank+marketing.zip")
# Worth another try: the server or the network may recover. Anything else (404, 403, ...) is final.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
CHUNK_BYTES = 1 << 16
DEFAULTS = DownloadParams()  # frozen, so safe to share as a default argument
OFFLINE_HINT = (
    f"to use a local copy, set {SOURCE_ENV} to a bank-full.csv, bank.zip or bank+marketing.zip "
    f"(or a folder holding one), e.g. {SOURCE_ENV}=../shared/data dvc repro"
)


class TransientFetchError(Exception):
    """A failed try that a later try may get past."""


def extract_bank_full(payload: bytes, origin: str, max_bytes: int = DEFAULTS.max_mb << 20) -> bytes:
    """Return the bytes of ``bank-full.csv`` from a CSV, ``bank.zip`` or the outer UCI zip."""
    if not payload.startswith(b"PK\x03\x04"):
        return payload
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        names = archive.namelist()
        refuse_unsafe_members(names, origin)
        for wanted in (MEMBER, INNER_ARCHIVE):
            member = next((n for n in names if n == wanted or n.endswith("/" + wanted)), None)
            if member is not None:
                size = archive.getinfo(member).file_size
                if size > max_bytes:
                    raise PipelineError(
                        f"{origin}!{member}: unpacks to {size} bytes, over download.max_mb "
                        f"({max_bytes >> 20} MB); raise download.max_mb if the file is genuine"
                    )
                return extract_bank_full(archive.read(member), f"{origin}!{member}", max_bytes)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise PipelineError(f"{origin}: corrupt or truncated zip ({exc}); download it again") from None
    raise PipelineError(f"{origin}: zip holds neither {MEMBER} nor {INNER_ARCHIVE} (found {names[:10]})")


def refuse_unsafe_members(names: list[str], origin: str) -> None:
    """Refuse an archive whose member paths would leave the folder it is unpacked into (zip slip)."""
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
            raise PipelineError(
                f"{origin}: zip member {name!r} would be written outside the target folder; "
                "refusing the archive (it is not UCI's, or it was tampered with)"
            )


def verify_sha256(data: bytes, expected: str, origin: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise PipelineError(
            f"{origin}: sha256 {actual} does not match download.sha256 {expected}; "
            "the file is not the UCI bank-full.csv (or is damaged). Fetch it again, or if you "
            "deliberately use other data, set download.sha256 to its checksum"
        )


def read_source(source: str, settings: DownloadParams = DEFAULTS) -> tuple[bytes, str]:
    """Read a local file, a folder holding one of the known files, or a URL; return bytes and origin."""
    if "://" in source:
        return fetch(source, settings), source
    path = Path(source).expanduser()
    if path.is_dir():
        found = next((path / name for name in FOLDER_CANDIDATES if (path / name).is_file()), None)
        if found is None:
            raise PipelineError(f"{path}: folder holds none of {list(FOLDER_CANDIDATES)}; {OFFLINE_HINT}")
        path = found
    if not path.is_file():
        raise PipelineError(f"{SOURCE_ENV}={source}: no such file or folder; {OFFLINE_HINT}")
    return path.read_bytes(), str(path)


def fetch(url: str, settings: DownloadParams) -> bytes:
    """GET ``url``, retrying transient failures with exponential backoff (``attempts`` >= 1).

    urllib's default opener honours the standard proxy variables (``http_proxy``, ``https_proxy``,
    ``no_proxy``, upper or lower case), so the stage works behind a corporate proxy as configured.
    """
    for attempt in range(1, settings.attempts + 1):
        try:
            return _fetch_once(url, settings)
        except TransientFetchError as exc:
            if attempt == settings.attempts:
                raise PipelineError(
                    f"cannot fetch {url} ({exc}; tried {attempt} time(s)); {OFFLINE_HINT}"
                ) from None
            delay = settings.backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s; try %d of %d in %.1f s", url, exc, attempt + 1, settings.attempts, delay)
            time.sleep(delay)


def _fetch_once(url: str, settings: DownloadParams) -> bytes:
    max_bytes = settings.max_mb << 20
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=settings.timeout_s) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(url, f"announces {declared} bytes", settings)
            body = bytearray()
            while chunk := response.read(CHUNK_BYTES):
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(url, f"sent more than {max_bytes} bytes", settings)
    except urllib.error.HTTPError as exc:
        if exc.code in TRANSIENT_STATUS:
            raise TransientFetchError(f"HTTP {exc.code} {exc.reason}") from None
        raise PipelineError(f"cannot fetch {url} (HTTP {exc.code} {exc.reason}); check download.url, or {OFFLINE_HINT}") from None
    except TimeoutError:
        raise TransientFetchError(f"no data for download.timeout_s={settings.timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TransientFetchError(f"no answer within download.timeout_s={settings.timeout_s:g} s") from None
        raise TransientFetchError(str(exc.reason)) from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise TransientFetchError(f"connection broke off: {type(exc).__name__} {exc}".strip()) from None
    if declared is not None and declared.isdigit() and len(body) != int(declared):
        raise TransientFetchError(f"got {len(body)} of {declared} announced bytes")
    return bytes(body)


def _too_large(url: str, what: str, settings: DownloadParams) -> PipelineError:
    return PipelineError(
        f"{url}: {what}, over download.max_mb ({settings.max_mb} MB); check download.url, "
        "or raise download.max_mb if the file is genuine"
    )


def main() -> None:
    params = load_params().download
    source = os.environ.get(SOURCE_ENV) or params.url
    payload, origin = read_source(source, params)
    data = extract_bank_full(payload, origin, params.max_mb << 20)
    verify_sha256(data, params.sha256, origin)
    write_bytes(RAW_CSV, data)
    log.info("wrote %s (%d bytes) from %s", RAW_CSV, len(data), origin)


if __name__ == "__main__":
    run(main)
