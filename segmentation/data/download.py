"""Fetching a customer table: from a local file, a zip at any depth, a folder or a URL, with
retries for transient errors and a size cap, checked against the data-set file's sha256.
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

from segmentation.artifacts import PipelineError
from segmentation.config import DownloadParams
from segmentation.data.dataset import Source

log = logging.getLogger("segments")

# Worth another try: the server or the network may recover. Anything else (404, 403, ...) is final.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
CHUNK_BYTES = 1 << 16
DEFAULTS = DownloadParams()  # frozen, so safe to share as a default argument


class TransientFetchError(Exception):
    """A failed try that a later try may get past."""


def offline_hint(source: Source) -> str:
    if source.env is None:
        return "to use a local copy, set source.path in the data-set file"
    return (
        f"to use a local copy, set {source.env} to the file {source.file}, a zip holding it, a "
        f"folder holding either, or a mirror URL, e.g. {source.env}=../shared/data dvc repro"
    )


def extract_table(
    payload: bytes, file: str, origin: str, max_bytes: int = DEFAULTS.max_mb << 20
) -> bytes:
    """The table itself, or the member named ``file`` of a zip, looked for in nested zips too."""
    if not payload.startswith(b"PK\x03\x04"):
        return payload
    found = _find_in_zip(payload, file, origin, max_bytes)
    if found is None:
        raise PipelineError(
            f"{origin}: zip holds no {file}, nor a zip holding it; check source.file"
        )
    return found


def _find_in_zip(payload: bytes, file: str, origin: str, max_bytes: int) -> bytes | None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        names = archive.namelist()
        refuse_unsafe_members(names, origin)
        member = next((n for n in names if n == file or n.endswith("/" + file)), None)
        nested = sorted(n for n in names if n.lower().endswith(".zip"))
        for name in ([member] if member is not None else []) + nested:
            size = archive.getinfo(name).file_size
            if size > max_bytes:
                raise PipelineError(
                    f"{origin}!{name}: unpacks to {size} bytes, over download.max_mb "
                    f"({max_bytes >> 20} MB); raise download.max_mb if the file is genuine"
                )
            content = archive.read(name)
            if name == member:
                return content
            if content.startswith(b"PK\x03\x04"):
                inner = _find_in_zip(content, file, f"{origin}!{name}", max_bytes)
                if inner is not None:
                    return inner
    except (zipfile.BadZipFile, EOFError) as exc:
        raise PipelineError(
            f"{origin}: corrupt or truncated zip ({exc}); download it again"
        ) from None
    return None


def refuse_unsafe_members(names: list[str], origin: str) -> None:
    """Refuse an archive whose member paths would leave the folder it is unpacked into
    (zip slip)."""
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
            raise PipelineError(
                f"{origin}: zip member {name!r} would be written outside the target folder; "
                "refusing the archive (it is not the publisher's, or it was tampered with)"
            )


def verify_sha256(data: bytes, expected: str, origin: str, spec_file: Path) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise PipelineError(
            f"{origin}: sha256 {actual} does not match source.sha256 {expected} of {spec_file}; "
            "the file is not the data set's table (or is damaged). Fetch it again, or if you "
            "deliberately use other data, set source.sha256 to its checksum"
        )


def read_source(
    source: str, spec: Source, settings: DownloadParams = DEFAULTS
) -> tuple[bytes, str]:
    """Read a local file, a folder holding the table or a zip, or a URL; return bytes and origin."""
    if "://" in source:
        return fetch(source, settings, offline_hint(spec)), source
    path = Path(source).expanduser()
    if path.is_dir():
        candidates = [path / spec.file] + sorted(path.glob("*.zip"))
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            raise PipelineError(
                f"{path}: folder holds neither {spec.file} nor a zip; {offline_hint(spec)}"
            )
        path = found
    if not path.is_file():
        named = (
            f"{spec.env}={source}" if spec.env and os.environ.get(spec.env) == source else source
        )
        raise PipelineError(f"{named}: no such file or folder; {offline_hint(spec)}")
    return path.read_bytes(), str(path)


def fetch(url: str, settings: DownloadParams, hint: str) -> bytes:
    """GET ``url``, retrying transient failures with exponential backoff (``attempts`` >= 1).

    urllib's default opener honours the standard proxy variables (``http_proxy``, ``https_proxy``,
    ``no_proxy``, upper or lower case), so the stage works behind a corporate proxy as configured.
    """
    for attempt in range(1, settings.attempts + 1):
        try:
            return _fetch_once(url, settings, hint)
        except TransientFetchError as exc:
            if attempt == settings.attempts:
                raise PipelineError(
                    f"cannot fetch {url} ({exc}; tried {attempt} time(s)); {hint}"
                ) from None
            delay = settings.backoff_s * 2 ** (attempt - 1)
            log.warning(
                "%s: %s; try %d of %d in %.1f s", url, exc, attempt + 1, settings.attempts, delay
            )
            time.sleep(delay)


def _fetch_once(url: str, settings: DownloadParams, hint: str) -> bytes:
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
        raise PipelineError(
            f"cannot fetch {url} (HTTP {exc.code} {exc.reason}); check source.url, or {hint}"
        ) from None
    except TimeoutError:
        raise TransientFetchError(
            f"no data for download.timeout_s={settings.timeout_s:g} s"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TransientFetchError(
                f"no answer within download.timeout_s={settings.timeout_s:g} s"
            ) from None
        raise TransientFetchError(str(exc.reason)) from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise TransientFetchError(
            f"connection broke off: {type(exc).__name__} {exc}".strip()
        ) from None
    if declared is not None and declared.isdigit() and len(body) != int(declared):
        raise TransientFetchError(f"got {len(body)} of {declared} announced bytes")
    return bytes(body)


def _too_large(url: str, what: str, settings: DownloadParams) -> PipelineError:
    return PipelineError(
        f"{url}: {what}, over download.max_mb ({settings.max_mb} MB); check source.url, "
        "or raise download.max_mb if the file is genuine"
    )
