"""muxsim: simulate and optimize many LLMs sharing one GPU cluster (MuxServe and beyond).

The public API is imported lazily so that ``import muxsim`` stays cheap and never pulls
torch::

    import muxsim as mx
    wl   = mx.load_workload("workload.json")
    plan = mx.place(wl, algorithm="muxserve")
    res  = mx.simulate(plan, wl, seed=0)
    cm   = mx.cost_model("a100-80gb")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_API = {
    # catalogs
    "ModelSpec": "muxsim.models:ModelSpec",
    "resolve_model": "muxsim.models:resolve_model",
    "MODELS": "muxsim.models:CATALOG",
    "GPUSpec": "muxsim.gpus:GPUSpec",
    "get_gpu": "muxsim.gpus:get_gpu",
    "GPUS": "muxsim.gpus:CATALOG",
    "InputError": "muxsim.errors:InputError",
    "InputTypeError": "muxsim.errors:InputTypeError",
    "InputWarning": "muxsim.errors:InputWarning",
    # cost and memory
    "cost_model": "muxsim.costmodel:cost_model",
    "calibrate": "muxsim.costmodel:calibrate",
    "calibrate_vidur": "muxsim.costmodel:calibrate_vidur",
    "ENGINES": "muxsim.costmodel:ENGINES",
    "AnalyticCostModel": "muxsim.costmodel:AnalyticCostModel",
    "TableCostModel": "muxsim.costmodel:TableCostModel",
    "AnalyticParams": "muxsim.costmodel:AnalyticParams",
    "load_profile": "muxsim.costmodel:load_profile",
    "MemoryModel": "muxsim.memory:MemoryModel",
    "MemoryParams": "muxsim.limits:MemoryParams",
    "ServingLimits": "muxsim.limits:ServingLimits",
    # workloads
    "Workload": "muxsim.workload:Workload",
    "load_workload": "muxsim.workload:load_workload",
    "generate_requests": "muxsim.workload:generate_requests",
    "describe": "muxsim.workload:describe",
    "synth_workload": "muxsim.workload:synth_workload",
    "save_workload": "muxsim.workload:save_workload",
    "write_trace": "muxsim.workload:write_trace",
    # plans, placement, simulation
    "Plan": "muxsim.plan:Plan",
    "load_plan": "muxsim.plan:load_plan",
    "place": "muxsim.placement:place",
    "ALGORITHMS": "muxsim.placement:ALGORITHMS",
    "solve_placement": "muxsim.placement:solve_placement",
    "PlacementResult": "muxsim.placement:PlacementResult",
    "simulate": "muxsim.sim:simulate",
    "capacity": "muxsim.capacity:capacity",
    "fit_interference": "muxsim.interference:fit_interference",
    "Results": "muxsim.sim:Results",
    "SimConfig": "muxsim.sim:SimConfig",
    # results people keep and look at
    "plot": "muxsim.plot",
    "Run": "muxsim.runfolder:Run",
    "save_runs": "muxsim.runfolder:save_runs",
    "read_run_folder": "muxsim.runfolder:read_run_folder",
    # many runs
    "sweep": "muxsim.sweeps:sweep",
}


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'muxsim' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = importlib.import_module(module) if not attr else getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


# ``muxsim.capacity`` is also the name of a submodule: bind the function now, or
# importing the submodule first (``from muxsim.capacity import Capacity``) would leave
# the module under this name
from muxsim.capacity import capacity as capacity  # noqa: E402

__all__ = sorted(_API)
