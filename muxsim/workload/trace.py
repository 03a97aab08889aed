"""Traces: replaying request logs, importing foreign ones, writing generated ones.

Our trace format is a CSV or JSON Lines table with columns
``arrival_s, name, prompt_len, output_len`` (one row a request). A workload whose
``trace`` names such a file replays it instead of drawing arrivals and lengths.

:func:`read_request_log` reads foreign logs with a timestamp, prompt tokens and output
tokens, such as the Azure LLM inference traces (``TIMESTAMP,ContextTokens,GeneratedTokens``);
:func:`merge_logs` maps several of them onto several models, scaling time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from muxsim.errors import InputError, check_positive
from muxsim.io import write_text_atomic

from .tabular import read_table

if TYPE_CHECKING:
    from .schema import Workload

COLUMNS = ["arrival_s", "name", "prompt_len", "output_len"]

# Column names recognised in foreign logs, first match wins (case-insensitive).
TIME_COLUMNS = ["arrival_s", "timestamp", "time", "arrival_time", "arrival"]
PROMPT_COLUMNS = ["prompt_len", "contexttokens", "context_tokens", "input_tokens", "prompt_tokens", "input_len"]
OUTPUT_COLUMNS = ["output_len", "generatedtokens", "generated_tokens", "output_tokens", "completion_tokens"]


def _lengths(table: pd.DataFrame, column: str, what: str) -> np.ndarray:
    x = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(x) | (x != np.rint(x))
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"{what}: {column} on row {row + 1} must be a whole number, got {table[column].iloc[row]!r}")
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
            raise InputError(f"{what}: name(s) {', '.join(map(repr, unknown[:5]))} are not models of the "
                             f"workload (models: {', '.join(names)})")
    return table.copy()


@lru_cache(maxsize=8)
def _read_trace_cached(path: str, what: str, mtime_ns: int, size: int) -> pd.DataFrame:
    table = read_table(path, what)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{what}: {path!r} lacks column(s) {', '.join(missing)} "
                         f"(a trace has {', '.join(COLUMNS)})")
    t = pd.to_numeric(table["arrival_s"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"{what}: arrival_s on row {row + 1} must be a finite number >= 0, "
                         f"got {table['arrival_s'].iloc[row]!r}")
    prompt = _lengths(table, "prompt_len", what)
    output = _lengths(table, "output_len", what)
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


def trace_requests(wl: Workload) -> pd.DataFrame:
    """The workload's trace, cut to [0, duration_s), as generate_requests returns it."""
    assert wl.trace is not None
    df = read_trace(wl.trace, "trace", names=wl.names())
    df = df[df["arrival_s"].to_numpy() < wl.duration_s]
    return df.reset_index(drop=True)


def write_trace(df: pd.DataFrame, path: str | Path) -> Path:
    """Write requests (``arrival_s, name, prompt_len, output_len``) as CSV, or as JSON
    Lines when ``path`` ends in ``.jsonl``/``.ndjson``; atomically."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"requests: lack column(s) {', '.join(missing)}")
    table = df[COLUMNS]
    if str(path).endswith((".jsonl", ".ndjson")):  # repr floats: replay gives the same table
        rows = zip(table["arrival_s"].astype(float).tolist(), table["name"].astype(str).tolist(),
                   table["prompt_len"].astype(int).tolist(), table["output_len"].astype(int).tolist())
        text = "".join(
            f'{{"arrival_s": {t!r}, "name": {json.dumps(n)}, "prompt_len": {p}, "output_len": {o}}}\n'
            for t, n, p, o in rows
        )
    else:
        text = table.to_csv(index=False, float_format="%.17g")
    return write_text_atomic(path, text)


# ---- foreign request logs -----------------------------------------------------------
def _pick(table: pd.DataFrame, candidates: list[str], what: str, role: str) -> str:
    lower = {str(c).strip().lower(): c for c in table.columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise InputError(f"{what}: no {role} column (looked for {', '.join(candidates)}; "
                     f"found {', '.join(map(str, table.columns))})")


def _seconds(col: pd.Series, what: str, column: str) -> np.ndarray:
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64)
    try:
        stamps = pd.to_datetime(col, format="ISO8601")
    except (ValueError, TypeError):
        raise InputError(f"{what}: column {column} holds neither seconds nor timestamps") from None
    if stamps.isna().any():
        row = int(np.argmax(stamps.isna().to_numpy()))
        raise InputError(f"{what}: {column} on row {row + 1} is not a timestamp")
    ns = stamps.to_numpy().astype("datetime64[ns]").astype(np.int64)
    return ns / 1e9  # seconds since the epoch; float64 keeps well under a microsecond


def read_request_log(path: str | Path, what: str = "trace") -> pd.DataFrame:
    """A log of (time, prompt tokens, output tokens) as ``t_s, prompt_len, output_len``
    in file order; ``t_s`` in seconds (timestamps as seconds since the epoch, so that
    logs of the same hour line up).
    Lengths below 1 (a request that generated nothing) count as 1 token."""
    table = read_table(path, what)
    tc = _pick(table, TIME_COLUMNS, what, "time")
    pc = _pick(table, PROMPT_COLUMNS, what, "prompt-length")
    oc = _pick(table, OUTPUT_COLUMNS, what, "output-length")
    t = _seconds(table[tc], what, str(tc))
    if not np.all(np.isfinite(t)):
        raise InputError(f"{what}: column {tc} has non-finite values")
    return pd.DataFrame({
        "t_s": t,
        "prompt_len": np.maximum(_lengths(table, pc, what), 1),
        "output_len": np.maximum(_lengths(table, oc, what), 1),
    })


def merge_logs(logs: Sequence[pd.DataFrame], names: Sequence[str], time_scale: float = 1.0,
               start_s: float | None = None) -> pd.DataFrame:
    """Put logs on one clock (all shifted by the earliest request, or by ``start_s``),
    multiply every time by ``time_scale`` (0.5 compresses the trace to half its length:
    rates double), label each log's requests with its model name, sort stably
    (ties keep log order, then row order)."""
    time_scale = check_positive(time_scale, "time_scale")
    if len(logs) != len(names):
        raise InputError(f"names: {len(names)} name(s) for {len(logs)} log(s)")
    t0 = min(float(log["t_s"].min()) for log in logs) if start_s is None else float(start_s)
    times = np.concatenate([(log["t_s"].to_numpy() - t0) * time_scale for log in logs])
    label = np.concatenate([np.full(len(log), i) for i, log in enumerate(logs)])
    order = np.argsort(times, kind="stable")
    keep = times[order] >= 0
    order = order[keep]
    return pd.DataFrame({
        "arrival_s": times[order],
        "name": np.asarray(list(names), dtype=object)[label[order]],
        "prompt_len": np.concatenate([log["prompt_len"].to_numpy() for log in logs])[order],
        "output_len": np.concatenate([log["output_len"].to_numpy() for log in logs])[order],
    })


def split_by_popularity(reqs: pd.DataFrame, names: Sequence[str], alpha: float,
                        rng: np.random.Generator) -> pd.DataFrame:
    """Spread one stream over several models: each request goes to the i-th name with
    probability proportional to (i+1)^-alpha, independently (thinning keeps a Poisson
    stream Poisson). Order and times are kept."""
    if not names:
        raise InputError("names: need at least one model to split the trace over")
    if not np.isfinite(alpha) or alpha < 0:
        raise InputError(f"alpha: must be a finite number >= 0, got {alpha!r}")
    weights = np.arange(1, len(names) + 1, dtype=np.float64) ** -float(alpha)
    pick = rng.choice(len(names), size=len(reqs), p=weights / weights.sum())
    out = reqs.copy()
    out["name"] = np.asarray(list(names), dtype=object)[pick]
    return out.reset_index(drop=True)
