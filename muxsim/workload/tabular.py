"""Request tables on disk: CSV, JSON Lines (each optionally gzipped) or Parquet.

Reading (:func:`muxsim.io.read_table`) takes the format from the name
(``.jsonl``/``.ndjson`` are JSON Lines, ``.parquet`` Parquet, anything else CSV; ``.gz``
is decompressed); writing (:func:`table_format`) accepts only names that say their
format, so that a file is never written in another format than its name says.
"""

from __future__ import annotations

from pathlib import Path

from muxsim.errors import InputError
from muxsim.io import read_table

__all__ = ["WRITE_SUFFIXES", "read_table", "table_format"]

WRITE_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".ndjson": "jsonl",
                  ".ndjson.gz": "jsonl", ".parquet": "parquet"}


def table_format(path: str | Path, what: str) -> tuple[str, bool]:
    """``(format, gzipped)`` of a table to write at ``path``: ``csv``, ``jsonl`` or
    ``parquet`` from its suffix; any other name is an InputError naming ``what``."""
    name = Path(path).name.lower()
    for suffix in sorted(WRITE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return WRITE_SUFFIXES[suffix], suffix.endswith(".gz")
    raise InputError(f"{what}: {str(path)!r} must end in {', '.join(WRITE_SUFFIXES)}")
