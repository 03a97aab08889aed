"""Foreign request logs: import them as a workload's trace.

:func:`read_request_log` reads a log with a time, prompt tokens and output tokens per
request, such as the Azure LLM inference traces (``TIMESTAMP,ContextTokens,GeneratedTokens``);
:func:`merge_logs` puts several on one clock and maps them onto models, scaling time;
:func:`split_by_popularity` spreads one log over several models; :func:`import_logs`
does all of it and returns the workload and its requests (``muxsim workload from-trace``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from muxsim.errors import InputError, InputTypeError, check_positive
from muxsim.limits import MAX_REQUESTS, MAX_TIME_S
from muxsim.models import resolve_model

from .generate import context_windows, fit_to_context
from .messages import input_error
from .schema import DEFAULT_CLUSTER, Workload
from .tabular import read_table
from .trace import whole_numbers

# Column names recognised in foreign logs, first match wins (case-insensitive).
TIME_COLUMNS = ["arrival_s", "timestamp", "time", "arrival_time", "arrival"]
PROMPT_COLUMNS = ["prompt_len", "contexttokens", "context_tokens", "input_tokens", "prompt_tokens", "input_len"]
OUTPUT_COLUMNS = ["output_len", "generatedtokens", "generated_tokens", "output_tokens", "completion_tokens"]


def _pick(table: pd.DataFrame, candidates: list[str], what: str, role: str) -> str:
    lower = {str(c).strip().lower(): c for c in table.columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise InputError(f"{what}: no {role} column (looked for {', '.join(candidates)})")


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
        "prompt_len": np.maximum(whole_numbers(table, pc, what), 1),
        "output_len": np.maximum(whole_numbers(table, oc, what), 1),
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


def import_logs(
    paths: Sequence[str | Path],
    models: Sequence[str | dict[str, Any]],
    names: Sequence[str] | None = None,
    *,
    time_scale: float | None = None,
    rate: float | None = None,
    split: int | None = None,
    alpha: float = 1.0,
    seed: int = 0,
    duration: float | None = None,
    cluster: dict[str, Any] | None = None,
    trace_path: str | Path = "trace.csv",
    truncate: bool = False,
    max_requests: int = MAX_REQUESTS,
) -> tuple[Workload, pd.DataFrame]:
    """A trace workload from request logs, and its requests (write them to ``trace_path``
    with :func:`write_trace` before loading the workload elsewhere).

    One log per model, or one log spread over ``split`` models by power-law popularity.
    ``models`` has one entry per model, or one for all; ``names`` default ``llm-0``, ...
    Time is multiplied by ``time_scale``, or scaled so that the logs offer ``rate``
    requests/s in all. The run lasts ``duration`` seconds (default: the last request
    plus one mean gap); each model's rate is its requests over that duration. Requests
    longer than their model's context window are refused, or cut to fit with
    ``truncate``; logs of more than ``max_requests`` requests are refused."""
    if isinstance(paths, str | Path) or not isinstance(paths, Sequence):
        raise InputTypeError(f"paths: expected a list of log files, got {type(paths).__name__}")
    if isinstance(models, str | dict) or not isinstance(models, Sequence):
        raise InputTypeError(f"models: expected a list of models, got {type(models).__name__}")
    n = len(paths)
    if n == 0:
        raise InputError("traces: give at least one log")
    if split is not None and (n != 1 or split < 1):
        raise InputError(f"split: spreads one trace over N >= 1 models (got {n} trace(s), N={split})")
    llms = split or n
    per = "model" if split else "trace"
    if len(models) not in (1, llms):
        raise InputError(f"model: give --model once, or once per {per} ({llms}), not {len(models)} times")
    models = list(models) * llms if len(models) == 1 else list(models)
    names = list(names) if names else [f"llm-{i}" for i in range(llms)]
    if len(names) != llms:
        raise InputError(f"name: give --name once per {per} ({llms}), not {len(names)} times")
    if rate is not None and time_scale is not None:
        raise InputError("rate: give --rate or --time-scale, not both")
    logs = [read_request_log(path, f"trace {str(path)!r}") for path in paths]
    total = sum(len(log) for log in logs)
    if total > max_requests:
        raise InputError(f"requests: the logs hold {total} requests, more than the limit of {max_requests} "
                         "(raise it with --max-requests)")
    labels = names[:1] if split else names
    scale = 1.0 if time_scale is None else time_scale
    if rate is not None:
        rate = check_positive(rate, "rate")
        reqs = merge_logs(logs, labels)
        span = float(reqs["arrival_s"].max())
        if span <= 0:
            raise InputError("rate: the trace spans no time; use --time-scale")
        scale = (len(reqs) - 1) / span / rate  # n requests over the default duration: `rate` req/s
    reqs = merge_logs(logs, labels, time_scale=scale)
    if split:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed: must be an integer >= 0, got {seed!r}")
        reqs = split_by_popularity(reqs, names, alpha, np.random.default_rng(seed))
    last = float(reqs["arrival_s"].max())
    if not last <= MAX_TIME_S:
        raise InputError(f"{'rate' if rate is not None else 'time_scale'}: the scaled trace spans {last:.4g} s, "
                         f"more than {MAX_TIME_S:g} s")
    gap = last / (len(reqs) - 1) if len(reqs) > 1 and last > 0 else 1.0
    duration = last + gap if duration is None else check_positive(duration, "duration")
    reqs = reqs[reqs["arrival_s"].to_numpy() < duration].reset_index(drop=True)
    counts = reqs["name"].value_counts()
    entries = []
    for name, model in zip(names, models):
        if int(counts.get(name, 0)) == 0:
            raise InputError(f"duration: no request of {name!r} arrives within {duration:g} s")
        entries.append({"name": name, "model": model, "rate": int(counts[name]) / duration})
    raw = {
        "cluster": cluster or dict(DEFAULT_CLUSTER),
        "models": entries,
        "arrivals": {"process": "trace"},
        "duration_s": duration,
        "seed": 0,
        "trace": os.fspath(trace_path),
    }
    try:  # all but the trace file, which the caller writes next
        wl = Workload.model_validate(raw)
    except ValidationError as e:
        raise input_error(e) from None
    for i, m in enumerate(wl.models):
        resolve_model(m.model, field=f"models[{i}].model")
    reqs = fit_to_context(reqs, context_windows(wl), truncate, what="trace")
    return wl, reqs
