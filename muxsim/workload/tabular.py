"""Reading request tables (CSV or JSON Lines) with errors that name the file."""

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
        if jsonl:
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
