"""Requests from a workload: ``generate_requests(wl, seed)`` -> a pandas table.

Each model draws from its own child of one ``numpy.random.Generator`` (spawned in model
order), so the table is a pure function of the workload and the seed, and adding a model
leaves the others' requests unchanged. Everything is vectorized numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from muxsim.errors import InputError, InputTypeError, InputWarning
from muxsim.limits import MAX_REQUESTS, MAX_SEED

from . import lengths
from .arrivals import arrival_times
from .schema import Workload
from .trace import trace_requests


def _generator(seed: int | np.random.Generator | None, default: int) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = default
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed: must be an integer >= 0 and <= {MAX_SEED}, got {seed!r}")
    return np.random.default_rng(int(seed))


def expected_requests(wl: Workload) -> float:
    """How many requests the workload generates on average: sum of rate x duration."""
    return sum(float(m.rate or 0.0) for m in wl.models) * float(wl.duration_s)


def check_request_count(n: float, max_requests: int, how: str) -> None:
    """Refuse a run of more than ``max_requests`` requests before it is generated."""
    if n > max_requests:
        raise InputError(f"requests: {how} gives about {n:.4g} requests, more than the limit of {max_requests} "
                         "(raise it with --max-requests, or max_requests=)")


def generate_requests(wl: Workload, seed: int | np.random.Generator | None = None, *,
                      max_requests: int = MAX_REQUESTS) -> pd.DataFrame:
    """Requests arriving in [0, wl.duration_s): columns ``arrival_s`` (float64, ascending,
    ties in model order), ``name``, ``prompt_len`` and ``output_len`` (int64 >= 1).
    ``seed`` None means ``wl.seed``; a trace workload replays its trace (seed unused).
    A workload expected to give more than ``max_requests`` requests (rates x duration,
    or the trace's rows) is refused before any is drawn."""
    if not isinstance(wl, Workload):
        raise InputTypeError(f"wl: expected a Workload, got {type(wl).__name__}")
    if isinstance(max_requests, bool) or not isinstance(max_requests, int | np.integer) or max_requests < 1:
        raise InputError(f"max_requests: must be an integer >= 1, got {max_requests!r}")
    if wl.trace is not None:
        df = trace_requests(wl)
        check_request_count(len(df), int(max_requests), f"the trace {wl.trace!r}")
        return df
    check_request_count(expected_requests(wl), int(max_requests), "rates x duration_s")
    rng = _generator(seed, wl.seed)
    streams = rng.spawn(len(wl.models))
    times, codes, prompts, outputs = [], [], [], []
    for i, (m, r) in enumerate(zip(wl.models, streams)):
        starts, rates = m.windows(wl.duration_s)
        t = arrival_times(wl.arrivals, np.asarray(starts), np.asarray(rates), wl.duration_s, r)
        p = lengths.sample(m.prompt_len, "prompt", t.size, r)
        o = lengths.sample(m.output_len, "output", t.size, r)
        times.append(t)
        codes.append(np.full(t.size, i, dtype=np.int32))
        prompts.append(p)
        outputs.append(lengths.cut_to_total(p, o, m.output_len))
    t_all = np.concatenate(times)
    order = np.argsort(t_all, kind="stable")
    names = np.asarray(wl.names(), dtype=object)
    return pd.DataFrame({
        "arrival_s": t_all[order],
        "name": names[np.concatenate(codes)[order]],
        "prompt_len": np.concatenate(prompts)[order],
        "output_len": np.concatenate(outputs)[order],
    })


def fit_to_context(df: pd.DataFrame, windows: Mapping[str, tuple[int, str]], truncate: bool = False,
                   what: str = "requests") -> pd.DataFrame:
    """Requests checked against their model's context window (``windows``: name ->
    (tokens, model name)): one holding more tokens (prompt + answer) is refused, or
    with ``truncate`` cut to fit (the prompt to the window less one token, then the
    answer to what is left) with an :class:`~muxsim.errors.InputWarning`."""
    if not len(df):
        return df
    prompt = df["prompt_len"].to_numpy(dtype=np.int64)
    output = df["output_len"].to_numpy(dtype=np.int64)
    names = df["name"].to_numpy(dtype=object)
    ctx = np.empty(len(df), dtype=np.int64)
    for name, (tokens, _) in windows.items():
        ctx[names == name] = tokens
    over = prompt + output > ctx
    if not over.any():
        return df
    i = int(np.argmax(over))
    name = str(names[i])
    if not truncate:
        raise InputError(
            f"{what}: request {i} of {name!r} holds {int(prompt[i])} + {int(output[i])} tokens, more than the "
            f"{int(ctx[i])}-token context window of {windows[name][1]} (bound the lengths with max or max_total, "
            "choose a model with a longer context, or let muxsim cut such requests: --truncate)")
    prompt = np.minimum(prompt, ctx - 1)
    output = np.minimum(output, ctx - prompt)
    warnings.warn(f"{int(over.sum())} of {len(df)} requests were longer than their model's context window "
                  f"and were cut to fit (the first: request {i} of {name!r})", InputWarning, stacklevel=2)
    return df.assign(prompt_len=prompt, output_len=output)


def context_windows(wl: Workload) -> dict[str, tuple[int, str]]:
    """Per LLM of the workload: its model's context window and the model's name."""
    out = {}
    for m in wl.models:
        spec = wl.model_spec(m.name)
        out[m.name] = (spec.context_window, spec.name)
    return out
