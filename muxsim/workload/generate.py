"""Requests from a workload: ``generate_requests(wl, seed)`` -> a pandas table.

Each model draws from its own child of one ``numpy.random.Generator`` (spawned in model
order), so the table is a pure function of the workload and the seed, and adding a model
leaves the others' requests unchanged. Everything is vectorized numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from muxsim.errors import InputError

from . import lengths
from .arrivals import arrival_times
from .schema import Workload
from .trace import trace_requests


def _generator(seed: int | np.random.Generator | None, default: int) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = default
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed: must be an integer >= 0, got {seed!r}")
    return np.random.default_rng(int(seed))


def generate_requests(wl: Workload, seed: int | np.random.Generator | None = None) -> pd.DataFrame:
    """Requests arriving in [0, wl.duration_s): columns ``arrival_s`` (float64, ascending,
    ties in model order), ``name``, ``prompt_len`` and ``output_len`` (int64 >= 1).
    ``seed`` None means ``wl.seed``; a trace workload replays its trace (seed unused)."""
    if wl.trace is not None:
        return trace_requests(wl)
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
