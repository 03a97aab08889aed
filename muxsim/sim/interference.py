"""Interference between jobs co-running on one mesh (see :class:`InterferenceParams`).

A job brings its SM share ``sm``, its kernel fraction ``kernel`` (time on SMs over
total time, alone) and its HBM demand ``hbm`` (fraction of its time spent streaming
at full bandwidth, alone). :func:`slowdowns` returns, for each job, how many times
slower than alone it runs while exactly these jobs run together.
"""

from __future__ import annotations

from collections.abc import Sequence

from muxsim.sim.config import InterferenceParams


def slowdown(sm_total: float, hbm_total: float, kernel: float, hbm: float, params: InterferenceParams) -> float:
    """Slowdown of one job given the summed SM shares and HBM demands of all co-runners."""
    return (1.0 + params.sm_coef * kernel * max(0.0, sm_total - 1.0)
            + params.hbm_coef * hbm * max(0.0, hbm_total - 1.0))


def slowdowns(jobs: Sequence[tuple[float, float, float]], params: InterferenceParams) -> list[float]:
    """``jobs``: (sm, kernel, hbm) per job. Returns one slowdown per job (1.0 alone)."""
    s = sum(j[0] for j in jobs)
    d = sum(j[2] for j in jobs)
    return [slowdown(s, d, k, h, params) for _, k, h in jobs]
