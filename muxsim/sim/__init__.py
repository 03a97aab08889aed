"""The discrete-event simulator: how muxsim scores a plan and says what users will see.

    res = simulate(plan, workload, seed=0, *, cost=None, memory=None, config=None, requests=None)
    res.to_dict() / res.to_json()   # docs/design.md's results shape
    res.to_frame()                  # one row per request

What it models (each module's docstring has the details). The simulator is a runtime
that only carries out decisions; what to run when is each mesh's scheduling policy
(:mod:`muxsim.policy`: ADBS and its ablations on ``flex`` meshes, whole-mesh turns on
``temporal`` ones, continuous batching on ``spatial`` ones), asked whenever something
changes on the mesh, through the read-only view the mesh gives it.

- ``engine``: one event heap ``(time, EventOrder, seq)``; sequence numbers belong to the
  engine; no global state.
- ``mesh``: per mesh, the runtime: it asks the policy and carries out its decisions
  (start a prefill or a decode run, preempt, end a run early, set KV quotas), ends jobs
  (tokens, completions, KV blocks freed) and is the view the policy reads.
- ``jobs``: jobs and their timing, interference re-rating, ending a decode run early.
- ``batch``: a unit's queue and running batch kept as counters (no per-token work).
- ``requests``: the request table, the one place a request's state lives.
- ``kvcache``: one head-wise block pool per mesh sized by the memory model, with the
  per-unit quotas the policy sets; it never hands out more blocks than it has.
- ``costs``: decode runs over an unchanged batch cost one closed-form sum, not one event
  per step; the cost model is asked once per (LLM, SM share, batch size). Co-running jobs
  slow each other as :mod:`muxsim.interference` says.
- ``replan``: plan changes while the simulation runs (``Simulation.change_plan``).
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
