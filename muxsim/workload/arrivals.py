"""Arrival processes: when requests come (``arrivals`` in ``workload.json``).

- ``poisson``: exponential gaps (memoryless traffic);
- ``gamma``: Gamma gaps with coefficient of variation ``cv`` (``cv`` > 1 is bursty, as in
  AlpaServe; ``cv`` = 1 is Poisson);
- ``trace``: arrivals replayed from the workload's ``trace`` file.

A model's rate may change over time (``rate_schedule``: piecewise-constant windows).
Arrivals are drawn as a unit-rate renewal process in *operational time* and mapped back
through the cumulative rate Lambda(t); for Poisson this is exactly the inhomogeneous
Poisson process, for Gamma it keeps the burstiness relative to the local rate.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from muxsim.limits import MAX_ARRIVAL_CV, MIN_ARRIVAL_CV

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PoissonArrivals(BaseModel):
    model_config = _CONFIG
    process: Literal["poisson"] = "poisson"


class GammaArrivals(BaseModel):
    model_config = _CONFIG
    process: Literal["gamma"] = "gamma"
    cv: Annotated[float, Field(ge=MIN_ARRIVAL_CV, le=MAX_ARRIVAL_CV, strict=True)]


class TraceArrivals(BaseModel):
    model_config = _CONFIG
    process: Literal["trace"] = "trace"


ArrivalSpec = Annotated[PoissonArrivals | GammaArrivals | TraceArrivals, Field(discriminator="process")]
PROCESSES = ("poisson", "gamma", "trace")


def _unit_renewal(horizon: float, cv: float | None, rng: np.random.Generator) -> np.ndarray:
    """Points of a unit-rate renewal process in [0, horizon): exponential gaps when ``cv``
    is None, else Gamma gaps of mean 1 and coefficient of variation ``cv``."""
    if horizon <= 0:
        return np.empty(0)
    spread = 1.0 if cv is None else cv
    want = int(horizon + 6.0 * spread * math.sqrt(horizon) + 16)
    chunks, reached = [], 0.0
    while reached < horizon:
        if cv is None:
            gaps = rng.exponential(1.0, size=want)
        else:
            gaps = rng.gamma(1.0 / cv**2, cv**2, size=want)
        points = reached + np.cumsum(gaps)
        chunks.append(points)
        reached = float(points[-1])
        want = int((horizon - reached) + 6.0 * spread * math.sqrt(max(horizon - reached, 1.0)) + 16)
    u = np.concatenate(chunks)
    return u[: np.searchsorted(u, horizon, side="left")]


def arrival_times(
    spec: PoissonArrivals | GammaArrivals,
    starts: np.ndarray,
    rates: np.ndarray,
    duration_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted arrival times in [0, duration_s) for piecewise-constant ``rates`` that hold
    from ``starts[k]`` to ``starts[k+1]`` (the last one to ``duration_s``)."""
    starts = np.asarray(starts, dtype=np.float64)
    rates = np.asarray(rates, dtype=np.float64)
    ends = np.append(starts[1:], duration_s)
    busy = rates > 0
    starts, ends, rates = starts[busy], ends[busy], rates[busy]
    if rates.size == 0:
        return np.empty(0)
    cum = np.concatenate([[0.0], np.cumsum(rates * (ends - starts))])
    u = _unit_renewal(float(cum[-1]), None if isinstance(spec, PoissonArrivals) else spec.cv, rng)
    k = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, rates.size - 1)
    t = starts[k] + (u - cum[k]) / rates[k]
    # rounding can push a point onto a window's end; keep the order and the horizon
    t = np.minimum(np.maximum.accumulate(t), np.nextafter(duration_s, 0.0))
    return t
