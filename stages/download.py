"""Stage 1: fetch a data set's customer table (or a local copy) and keep it byte for byte.

The source is, in order: the environment variable the data-set file names in ``source.env`` (a
local file, a zip holding it, a folder holding either, or a mirror URL), else ``source.url`` or
``source.path``. The table may sit inside zip archives at any depth. Whatever the source, the
table must match ``source.sha256``, so every source gives byte-identical raw data.
"""

from __future__ import annotations

import os

from segmentation.artifacts import run, write_bytes
from segmentation.config import layout, load_params
from segmentation.data.dataset import dataset_file, load_dataset
from segmentation.data.download import extract_table, log, read_source, verify_sha256


def main(name: str) -> None:
    settings = load_params().download
    dataset, paths = load_dataset(name), layout(name)
    spec = dataset.source
    source = (spec.env and os.environ.get(spec.env)) or spec.url or spec.path
    payload, origin = read_source(source, spec, settings)
    data = extract_table(payload, spec.file, origin, settings.max_mb << 20)
    verify_sha256(data, spec.sha256, origin, dataset_file(name))
    write_bytes(paths.raw, data)
    log.info("wrote %s (%d bytes) from %s", paths.raw, len(data), origin)


if __name__ == "__main__":
    run(main)
