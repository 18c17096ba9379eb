"""Work on every customer, one embedding shard at a time: in this process, or on a Ray cluster.

``map_shards(function, folder, engine, ...)`` calls ``function(rows, shard, ...)`` for each shard
of an embedding folder, where ``rows`` is the shard's memory-mapped vectors (read in blocks) and
``shard`` its index entry, and yields the ``DataFrame`` each call returns, in row order. The
``local`` engine makes the calls here, one shard after another. The ``ray`` engine runs the same
function as a Ray Data pipeline with one task per shard: each worker maps its shard from the shared
file system, and only the function's result comes back to the driver, which streams the results
on in row order. So a per-customer result (a prediction per customer) is never whole in any
process, and a reduction (sums per segment) returns one small frame per shard.

A stage's CSV with one row per customer in the same order (the outlier flags) can go along as
``aligned={"flags": (path, columns)}``, and a CSV of the inliers only (the labels) with the inliers
per shard (``CsvColumns``): the driver finds where each shard's rows begin in one pass over its
bytes, and each call gets its shard's rows of those columns as the keyword ``flags``, read by the
worker itself. ``AlignedCsv.located`` does that pass once for a file several maps read.

``map_parts(function, parts, engine, ...)`` is the same for work split otherwise than by shard
(the buckets of a join by customer id): ``function(part, ...)`` for each part, in part order.

Ray is joined at ``RAY_ADDRESS`` when that is set, and otherwise started on this machine with the
given number of CPUs; the ``segmentation`` package travels to the workers as a ``py_modules``
entry of the Ray runtime environment.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from segmentation.artifacts import PipelineError, csv_row_starts, read_csv_rows
from segmentation.embedding.shards import ShardedMatrix
from segmentation.model.sampling import MatrixRows

ENGINES = ("local", "ray")
# Settings the workers need from this process's environment (a remote node has its own).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "SEGMENTS_LOG_LEVEL")

ShardFunction = Callable[..., pd.DataFrame]


def start_ray(num_cpus: int | str = "auto", env_vars: dict[str, str] | None = None) -> bool:
    """Join the cluster at ``RAY_ADDRESS``, or start a local one with ``num_cpus`` CPUs; the
    workers get ``env_vars`` besides the forwarded settings.

    Returns False when this process was already connected (the caller owns that connection).
    """
    import ray

    if ray.is_initialized():
        return False
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    env.update(env_vars or {})
    options = {
        "include_dashboard": False,
        # Ray's own INFO and WARNING lines (token set-up, deprecations) would drown the stage's log.
        "logging_level": logging.ERROR,
        "runtime_env": {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": env},
    }
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        options["num_cpus"] = os.cpu_count() if num_cpus == "auto" else int(num_cpus)
    try:
        ray.init(address=address or None, **options)
    except ConnectionError as exc:
        raise PipelineError(
            f"RAY_ADDRESS={address!r}: no Ray cluster answers there ({exc}); "
            "start one with 'ray start --head' or unset RAY_ADDRESS to start a local one"
        ) from None
    quiet_ray_data()
    return True


def quiet_ray_data() -> None:
    """Ray Data's console lines at WARNING and above only; its session log file keeps the rest."""
    import ray.data  # noqa: F401  (importing it configures Ray Data's loggers)

    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.WARNING)
    # Its only lines say that Ray Data's bars are off, which the caller does on purpose.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


class CsvColumns(NamedTuple):
    """Columns of a CSV whose rows follow the shards: one per customer, or ``rows_per_shard`` (the
    inliers' labels); ``as_text`` keeps every cell as written (the customer table, which its
    reader types)."""

    path: Path
    columns: Sequence[str]
    rows_per_shard: Sequence[int] | None = None
    as_text: bool = False


@dataclass(frozen=True)
class AlignedCsv:
    """Columns of a CSV whose rows follow the shards, and where each shard's rows begin."""

    path: str
    columns: tuple[str, ...]
    first_rows: tuple[int, ...]
    rows: tuple[int, ...]
    byte_offsets: tuple[int, ...]
    as_text: bool

    @classmethod
    def located(cls, csv: CsvColumns, matrix: ShardedMatrix) -> AlignedCsv:
        if csv.rows_per_shard is None:
            rows = [shard.rows for shard in matrix.shards]
        else:
            rows = csv.rows_per_shard
        first_rows = [0, *itertools.accumulate(rows)]
        starts, in_file = csv_row_starts(csv.path, first_rows[:-1])
        if in_file != first_rows[-1]:
            raise PipelineError(
                f"{csv.path} has {in_file} rows but the shards of {matrix.folder} call for "
                f"{first_rows[-1]}; rerun 'dvc repro'"
            )
        return cls(
            str(Path(csv.path).resolve()),
            tuple(csv.columns),
            tuple(first_rows[:-1]),
            tuple(int(count) for count in rows),
            tuple(starts),
            csv.as_text,
        )

    def shard_rows(self, number: int) -> pd.DataFrame:
        """Shard ``number``'s rows, indexed by their row numbers in the file."""
        first, rows = self.first_rows[number], self.rows[number]
        frame = read_csv_rows(
            Path(self.path), self.byte_offsets[number], rows, list(self.columns), self.as_text
        )
        frame.index = pd.RangeIndex(first, first + rows)
        return frame


def run_shard(
    matrix: ShardedMatrix,
    number: int,
    function: ShardFunction,
    arguments: tuple,
    aligned: dict[str, AlignedCsv],
) -> pd.DataFrame:
    """``function`` on shard ``number`` (in row order) of the embedding shards."""
    tables = {name: csv.shard_rows(number) for name, csv in aligned.items()}
    return function(MatrixRows(matrix.shard(number)), matrix.shards[number], *arguments, **tables)


def _shard_task(number: int, folder: str, function, arguments, aligned) -> pd.DataFrame:
    return run_shard(ShardedMatrix(Path(folder)), number, function, arguments, aligned)


def map_shards(
    function: ShardFunction,
    folder: Path,
    engine: str,
    *arguments,
    aligned: dict[str, tuple | AlignedCsv] | None = None,
    num_cpus: int | str = "auto",
) -> Iterator[pd.DataFrame]:
    """``function(rows, shard, *arguments, **aligned tables)`` for every shard of ``folder``,
    results in row order.

    ``aligned`` names CSVs as ``CsvColumns`` fields (``(path, columns)`` for a row per customer)
    or as an ``AlignedCsv`` already located; each call gets its shard's rows of each, indexed by
    their row numbers.

    ``function`` and ``arguments`` must pickle (a module-level function, a fitted model) for the
    ``ray`` engine, which runs one Ray Data task of one CPU per shard.
    """
    check_engine(engine)
    matrix = ShardedMatrix(folder)
    located = {
        name: csv if isinstance(csv, AlignedCsv) else AlignedCsv.located(CsvColumns(*csv), matrix)
        for name, csv in (aligned or {}).items()
    }
    if engine == "local":
        for number in range(len(matrix.shards)):
            yield run_shard(matrix, number, function, arguments, located)
        return
    yield from map_parts(
        _shard_task,
        len(matrix.shards),
        engine,
        str(Path(folder).resolve()),
        function,
        arguments,
        located,
        num_cpus=num_cpus,
    )


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise PipelineError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")


def _part_task(batch: pd.DataFrame, function, arguments) -> pd.DataFrame:
    (part,) = batch["part"].tolist()
    return function(part, *arguments)


def map_parts(
    function: Callable[..., pd.DataFrame],
    parts: int,
    engine: str,
    *arguments,
    num_cpus: int | str = "auto",
) -> Iterator[pd.DataFrame]:
    """``function(part, *arguments)`` for each part 0 to ``parts - 1``, results in part order: here,
    or as a Ray Data pipeline of one task of one CPU per part (``function`` and ``arguments`` must
    pickle), whose results the driver streams on."""
    check_engine(engine)
    if engine == "local":
        for part in range(parts):
            yield function(part, *arguments)
        return
    import ray

    owns_connection = start_ray(num_cpus)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        tasks = ray.data.from_items(
            [{"part": part} for part in range(parts)], override_num_blocks=max(parts, 1)
        )
        results = tasks.map_batches(
            _part_task,
            fn_kwargs={"function": function, "arguments": arguments},
            batch_size=1,
            batch_format="pandas",
            num_cpus=1,
        )
        for table in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield table.to_pandas()
    finally:
        if owns_connection:
            ray.shutdown()
