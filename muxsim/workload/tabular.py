"""Request tables on disk: CSV, JSON Lines (each optionally gzipped) or Parquet.

Reading takes the format from the name (``.jsonl``/``.ndjson`` are JSON Lines,
``.parquet`` Parquet, anything else CSV; ``.gz`` is decompressed); writing
(:func:`table_format`) accepts only names that say their format, so that a file is
never written in another format than its name says.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from muxsim.errors import InputError


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``, anything not JSON Lines) or JSON Lines
    (``.jsonl``, ``.ndjson``) file as a DataFrame; missing, unreadable or empty files
    raise :class:`InputError` naming ``what``."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what}: file {str(p)!r} does not exist")
    if p.is_dir():
        raise InputError(f"{what}: {str(p)!r} is a directory")
    jsonl = p.name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"))
    try:
        if p.name.endswith(".parquet"):
            table = pd.read_parquet(p)
        elif jsonl:
            table = pd.read_json(p, lines=True, precise_float=True, dtype=False)
        else:
            table = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what}: file {str(p)!r} is empty") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{what}: cannot read {str(p)!r} ({first})") from None
    if len(table) == 0:
        raise InputError(f"{what}: file {str(p)!r} has no rows")
    return table


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
