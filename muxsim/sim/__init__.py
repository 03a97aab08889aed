"""The discrete-event simulator: how muxsim scores a plan and says what users will see.

    res = simulate(plan, workload, seed=0, *, cost=None, memory=None, config=None, requests=None)
    res.to_dict() / res.to_json()   # aggregate, per_llm, utilization, run
    res.to_frame()                  # one row per request

What it models (each module's docstring has the details):

- ``engine``: one event heap ``(time, EventOrder, seq)``; sequence numbers belong to the
  engine; no global state.
- ``mesh``: per mesh, the LLMs' prefill and decode jobs. ``spatial``/``temporal`` meshes
  run one whole-mesh iteration at a time (vLLM's continuous batching, prefill first;
  temporal meshes pick the next LLM FCFS or round-robin). ``flex`` meshes run each LLM's
  prefill and decode jobs concurrently at the plan's SM shares under the overload limit,
  scheduled by ADBS (prefill priority, round-robin, KV quotas adapted every
  ``adapt_period_s``) or its ablations (``FLEX_POLICIES``). Out of KV blocks: the newest
  requests are preempted and recomputed later; their LLM's prefills wait for a finish.
- ``batch``: an LLM's queue and running batch kept as counters (no per-token work).
- ``kvcache``: one head-wise block pool per mesh sized by the memory model, per-model
  quotas; ``SimConfig.kv_cache = "static"`` makes them fixed partitions.
- ``interference``: co-running jobs slow each other through SM oversubscription and
  shared HBM bandwidth (``InterferenceParams``).
- ``costs``: decode runs over an unchanged batch cost one closed-form sum, not one event
  per step; the cost model is asked once per (LLM, SM share, batch size).
- ``results``: TTFT, TPOT = (finish - first token) / (output_len - 1), end-to-end
  percentiles, SLO attainment against each request's latency alone on a dedicated mesh
  at full SMs (prefill at batch 1 plus ``output_len - 1`` decode steps at batch 1, on its
  unit's TP degree), utilization per mesh over time.

Arrivals stop with the request table (``workload.duration_s`` for generated ones);
serving continues at most ``SimConfig.drain_s`` longer; what is unfinished then is
reported (``finished = False``, ``run.unfinished``), never dropped.
"""

from __future__ import annotations

import importlib
from typing import Any

from muxsim.interference import InterferenceParams
from muxsim.policy import FLEX_POLICIES, TEMPORAL_POLICIES
from muxsim.sim.config import SimConfig

# The run and its results need pandas; they load on first use, so that reading the
# configuration (the command line's --help does) stays light.
_LAZY = {"Results": "muxsim.sim.results", "Simulation": "muxsim.sim.run", "simulate": "muxsim.sim.run",
         "PlanMismatchWarning": "muxsim.sim.run"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["FLEX_POLICIES", "TEMPORAL_POLICIES", "InterferenceParams", "PlanMismatchWarning", "Results", "SimConfig",
           "Simulation",
           "simulate"]
