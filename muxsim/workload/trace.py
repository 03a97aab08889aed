"""Traces in our format: replaying them, writing generated requests as one.

A trace is a CSV or JSON Lines table with columns ``arrival_s, name, prompt_len,
output_len`` (one row a request). A workload whose ``trace`` names such a file replays
it instead of drawing arrivals and lengths. Foreign logs are imported by ``logs.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import InputError, InputTypeError
from muxsim.io import (
    Named,
    check_output,
    write_bytes_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from muxsim.limits import MAX_TIME_S, MAX_TOKENS

from .tabular import read_table, table_format

COLUMNS = ["arrival_s", "name", "prompt_len", "output_len"]


def whole_numbers(table: pd.DataFrame, column: str, what: str, hi: int = MAX_TOKENS) -> np.ndarray:
    """A column of whole numbers <= ``hi`` as int64; errors name the row, never quote it."""
    x = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(x) | (x != np.rint(x))
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"{what}: {column} on row {row + 1} must be a whole number")
    if (x > hi).any():
        row = int(np.argmax(x > hi))
        raise InputError(f"{what}: {column} on row {row + 1} must be <= {hi}, got {x[row]:.6g}")
    return x.astype(np.int64)


def read_trace(path: str | Path, what: str = "trace", names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and check a trace in our format; rows sorted by arrival (ties keep file order).
    Parsed once per file version (path, size, modification time); callers get a copy."""
    p = Path(path)
    try:
        st = p.stat()
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        key = (0, -1)  # read_table reports what is wrong
    table = _read_trace_cached(str(p), what, *key)
    if names is not None:
        unknown = sorted(set(table["name"].unique()) - set(names))
        if unknown:
            shown = ", ".join(repr(n) if len(n) <= 40 else repr(n[:37] + "...") for n in unknown[:5])
            raise InputError(f"{what}: name(s) {shown} are not models of the "
                             f"workload (models: {', '.join(names)})")
    return table.copy()


@lru_cache(maxsize=8)
def _read_trace_cached(path: str, what: str, mtime_ns: int, size: int) -> pd.DataFrame:
    table = read_table(path, what, text_columns=["name"])
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{what}: {path!r} lacks column(s) {', '.join(missing)} "
                         f"(a trace has {', '.join(COLUMNS)})")
    t = pd.to_numeric(table["arrival_s"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(t) | (t < 0) | (t > MAX_TIME_S)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"{what}: arrival_s on row {row + 1} must be a number of seconds in [0, {MAX_TIME_S:g}]")
    prompt = whole_numbers(table, "prompt_len", what)
    output = whole_numbers(table, "output_len", what)
    for col, x in (("prompt_len", prompt), ("output_len", output)):
        if (x < 1).any():
            row = int(np.argmax(x < 1))
            raise InputError(f"{what}: {col} on row {row + 1} must be >= 1, got {int(x[row])}")
    name = table["name"].astype(str).to_numpy(dtype=object)
    order = np.argsort(t, kind="stable")
    return pd.DataFrame({
        "arrival_s": t[order],
        "name": name[order],
        "prompt_len": prompt[order],
        "output_len": output[order],
    })


def trace_requests(wl: Any) -> pd.DataFrame:
    """The workload's trace, cut to [0, duration_s), as generate_requests returns it."""
    assert wl.trace is not None
    df = read_trace(wl.trace, "trace", names=wl.names())
    df = df[df["arrival_s"].to_numpy() < wl.duration_s]
    return df.reset_index(drop=True)


def write_trace(df: pd.DataFrame, path: str | Path, what: str = "out", *, inputs: Iterable[Named] = ()) -> Path:
    """Write requests (``arrival_s, name, prompt_len, output_len``) atomically in the
    format ``path`` names: ``.csv``, ``.jsonl``/``.ndjson`` (either may end in ``.gz``)
    or ``.parquet``; any other name is an InputError naming ``what``. Never over
    ``inputs`` (:func:`muxsim.io.check_output`)."""
    if not isinstance(df, pd.DataFrame):
        raise InputTypeError(f"requests: expected a DataFrame, got {type(df).__name__}")
    kind, gz = table_format(path, what)
    check_output(path, what, inputs)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"requests: lack column(s) {', '.join(missing)}")
    table = df[COLUMNS]
    if kind == "parquet":
        return write_parquet_atomic(path, table, what=what, inputs=inputs)
    if kind == "jsonl":  # repr floats: replay gives the same table
        rows = zip(table["arrival_s"].astype(float).tolist(), table["name"].astype(str).tolist(),
                   table["prompt_len"].astype(int).tolist(), table["output_len"].astype(int).tolist())
        text = "".join(
            f'{{"arrival_s": {t!r}, "name": {json.dumps(n)}, "prompt_len": {p}, "output_len": {o}}}\n'
            for t, n, p, o in rows
        )
    else:
        text = table.to_csv(index=False, float_format="%.17g")
    if gz:
        import gzip

        return write_bytes_atomic(path, gzip.compress(text.encode("utf-8"), mtime=0), what=what, inputs=inputs)
    return write_text_atomic(path, text, what=what, inputs=inputs)
