"""Atomic writers and readers shared by the stages, and the command-line runner of a stage.

Every writer goes through a temporary file in the target folder and ``os.replace``: a failed or
killed stage leaves the previous output or none, never a half-written file that DVC could cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("segments")

SIGNIFICANT_DIGITS = 6
CUSTOMER_ID = "customer_id"


class PipelineError(Exception):
    """A problem the user can fix; reported as one line, without a traceback."""


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def rounded(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """Round to significant digits so metrics files diff on meaning, not float noise."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"refusing to write a non-finite metric value {value!r}")
    return float(f"{value:.{digits}g}")


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def metric_key(*parts: str) -> str:
    """A flat, dot-free metrics key made of names that may come from a data set (column names)."""
    return "_".join(re.sub(r"[^0-9A-Za-z]+", "_", str(part)).strip("_") for part in parts)


def write_metrics(path: Path, metrics: dict[str, float | int]) -> None:
    """Flat, dot-free keys; floats rounded; ints kept exact; no NaN."""
    clean: dict[str, float | int] = {}
    for key, value in metrics.items():
        if "." in key or not key:
            raise ValueError(f"metric key {key!r} must be non-empty and dot-free")
        is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        clean[key] = int(value) if is_int else rounded(value)
    write_json(path, clean)


CSV_FORMAT = {"index": False, "lineterminator": "\n", "float_format": "%.6g"}


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **CSV_FORMAT)


def write_csv_chunks(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    """The frames one after another as one CSV, written as ``write_csv`` writes their concatenation.

    Only one frame is held at a time; a failure while producing them leaves no file.
    """
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        for number, frame in enumerate(frames):
            frame.to_csv(handle, header=number == 0, **CSV_FORMAT)


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_npy_rows(path: Path, rows: int, blocks: Iterable[np.ndarray]) -> None:
    """The 2-D blocks one below another as one .npy of ``rows`` rows, written as ``write_npy``
    writes their concatenation; only one block is held at a time."""
    written = 0
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        for block in blocks:
            if not written:
                header = {
                    "descr": np.lib.format.dtype_to_descr(block.dtype),
                    "fortran_order": False,
                    "shape": (rows, block.shape[1]),
                }
                np.lib.format.write_array_header_1_0(handle, header)
            handle.write(np.ascontiguousarray(block).tobytes())
            written += len(block)
        if written != rows:
            raise ValueError(f"{path}: {written} rows came for the {rows} announced")


def subplots(*args, **kwargs):
    """``plt.subplots`` on the headless Agg backend, so stages run without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, layout="constrained", **kwargs)


def write_png(path: Path, figure) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def read_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """Load a plain numeric array; pickled (object) arrays are refused, never unpickled.

    ``mmap_mode="r"`` maps the file instead of reading it (``np.load``'s option).
    """
    try:
        return np.load(_existing(path), allow_pickle=False, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError) as exc:
        raise PipelineError(
            f"{path}: not a plain .npy array ({' '.join(str(exc).split())[:120]}); "
            "delete it and rerun 'dvc repro' to rebuild it"
        ) from None


def read_csv(path: Path, **options) -> pd.DataFrame:
    """A stage's CSV output; customer ids stay text ("00123" is not 123, "NA" is not missing).

    ``options`` go to ``pd.read_csv`` (``usecols``; ``chunksize`` for a reader of chunks).
    """
    try:
        return pd.read_csv(
            _existing(path),
            dtype={CUSTOMER_ID: str},
            keep_default_na=False,
            na_values=[""],
            **options,
        )
    except ValueError as error:
        if "Usecols do not match" not in str(error):
            raise
        missing = str(error).split("not found:", 1)[-1].strip()
        raise PipelineError(
            f"{path}: no column {missing}; it was written by another version of the pipeline, "
            "so rerun 'dvc repro'"
        ) from None


def picked_rows(chunks: Iterable[pd.DataFrame], positions: np.ndarray) -> tuple[pd.DataFrame, int]:
    """The rows at the sorted ``positions`` of a table read in ``chunks``, and how many rows it
    has. A CSV reader yields at least one chunk, an empty one for a header alone."""
    picked, done = [], 0
    for chunk in chunks:
        first, last = np.searchsorted(positions, [done, done + len(chunk)])
        picked.append(chunk.iloc[positions[first:last] - done])
        done += len(chunk)
    return pd.concat(picked), done


SCAN_BYTES = 1 << 24


def csv_row_starts(path: Path, rows: list[int]) -> tuple[list[int], int]:
    """The byte offsets at which the CSV's data rows numbered ``rows`` (0 is the row after the
    header) begin, and how many data rows the file has.

    One pass over the bytes, a block at a time: a line break inside a quoted field does not end a
    row (CSV doubles a quote inside quotes, so the count of quotes before a break says whether it
    is quoted).
    """
    wanted = np.unique(np.asarray(rows, dtype=np.int64))
    starts: dict[int, int] = {}
    ends = position = 0  # row ends seen (the header's included), bytes read
    quotes = np.uint8(0)  # quotes seen, modulo 256: only its parity matters
    last = b"\n"
    with _existing(path).open("rb") as handle:
        while block := handle.read(SCAN_BYTES):
            data = np.frombuffer(block, dtype=np.uint8)
            open_quotes = np.cumsum(data == ord('"'), dtype=np.uint8) + quotes
            breaks = np.flatnonzero((data == ord("\n")) & (open_quotes % 2 == 0))
            # data row j begins after the row end numbered j, the header's being row end 0
            first, stop = np.searchsorted(wanted, [ends, ends + len(breaks)])
            for row in wanted[first:stop]:
                starts[int(row)] = position + int(breaks[row - ends]) + 1
            ends += len(breaks)
            quotes, position, last = open_quotes[-1], position + len(block), block[-1:]
    rows_in_file = max(ends - 1 + (last != b"\n"), 0)
    # a row past the end begins where the file ends
    return [starts.get(int(row), position) for row in rows], rows_in_file


def read_csv_rows(
    path: Path, start: int, rows: int, columns: list[str], as_text: bool = False
) -> pd.DataFrame:
    """``rows`` data rows of a stage's CSV output (as ``read_csv`` reads them, or every cell as
    its text with ``as_text``), from the byte offset ``start`` that ``csv_row_starts`` gave, with
    only ``columns``."""
    cells = {"dtype": str} if as_text else {"dtype": {CUSTOMER_ID: str}, "na_values": [""]}
    with _existing(path).open("rb") as handle:
        names = pd.read_csv(handle, nrows=0).columns.tolist()
        handle.seek(start)
        frame = pd.read_csv(
            handle,
            header=None,
            names=names,
            usecols=columns,
            nrows=rows,
            keep_default_na=False,
            **cells,
        )
    if len(frame) != rows:
        raise PipelineError(
            f"{path} ends {rows - len(frame)} rows early after byte {start}; rerun 'dvc repro'"
        )
    return frame


def read_json(path: Path) -> dict:
    try:
        return json.loads(_existing(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path}: not JSON ({exc}); delete it and rerun 'dvc repro' to rebuild it"
        ) from None


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise PipelineError(
            f"{path}: missing; run 'dvc repro' so the stage that writes it runs first"
        )
    return path


def run(main: Callable[..., None], takes_dataset: bool = True) -> None:
    """Entry point for ``python -m stages.<name> <data set>``: calls ``main(data set name)``.

    Logs the duration and peak memory, and turns a PipelineError into one line and exit status 1.
    """
    stage = Path(main.__code__.co_filename).stem
    if takes_dataset:
        parser = argparse.ArgumentParser(
            prog=f"python -m stages.{stage}", description=sys.modules[main.__module__].__doc__
        )
        parser.add_argument("dataset", help="the data set's name: its file is datasets/<name>.yaml")
        arguments = [parser.parse_args().dataset]
    else:
        arguments = []
    logging.basicConfig(
        level=os.environ.get("SEGMENTS_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # A terminated stage unwinds like an interrupted one, so atomic_path removes its temporary file.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    try:
        main(*arguments)
    except PipelineError as exc:
        print(f"error: {stage}: {exc}", file=sys.stderr)
        sys.exit(1)
    # bench/run.py reads each stage's duration and peak memory from this line.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info(
        "stage %s finished in %.1f s, peak RSS %.0f MB",
        stage,
        time.perf_counter() - started,
        peak_mb,
    )
