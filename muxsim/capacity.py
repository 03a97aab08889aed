"""Capacity planning: the fewest GPUs at which an algorithm's plan, simulated, reaches
the SLO attainment a team wants.

:func:`capacity` tries clusters of 1, 2, ... whole nodes of the workload's node size
(each: place with the algorithm, simulate the whole workload with its seed) until the
attainment reaches ``target``; then it bisects the GPUs of the last node (the first
``n - 1`` nodes whole, part of the n-th: the placement uses only that many GPUs there).
The answer is the fewest GPUs tried that reach the target; ``curve`` lists every count
tried, in order of GPUs. The bisection assumes that more GPUs never lower the
attainment (true of the cases ``tests/test_capacity.py`` checks; a search over plans
does not promise it).

The attainment is at ``slo_scale`` x each request's latency alone (default 8), or
against the workload's absolute targets (``slo.attainment``) when it sets them and no
scale is given; ``target`` defaults to the workload's ``slo.target_attainment``.

The work is bounded before it starts: at most ``max_gpus`` GPUs (default: twice the
workload's cluster), so at most ``ceil(max_gpus / gpus_per_node) + log2(gpus_per_node)
+ 1`` placements and simulations of the workload's requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from muxsim.errors import InputError
from muxsim.limits import MAX_CAPACITY_GPUS as MAX_GPUS
from muxsim.limits import MAX_CAPACITY_REQUESTS as MAX_REQUESTS


@dataclass(frozen=True)
class Capacity:
    """The answer: ``gpus`` (None: not reached within ``max_gpus``), the nodes they
    span, the attainment there, the plan, and the curve of every count tried."""

    algorithm: str
    gpus: int | None
    nodes: int | None
    attainment: float | None
    target: float
    objective: str
    max_gpus: int
    gpus_per_node: int
    curve: list[dict[str, Any]] = field(default_factory=list)
    plan: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "gpus": self.gpus, "nodes": self.nodes, "attainment": self.attainment,
                "target": self.target, "objective": self.objective, "max_gpus": self.max_gpus,
                "gpus_per_node": self.gpus_per_node, "curve": self.curve,
                "plan": None if self.plan is None else self.plan.to_dict()}


def _objective(workload: Any, slo_scale: float | None) -> tuple[str, float | None]:
    from muxsim.metrics import scale_key
    from muxsim.placement.scoring import DEFAULT_SCALE, has_absolute_targets

    if slo_scale is None and has_absolute_targets(workload):
        return "slo.attainment", None
    s = DEFAULT_SCALE if slo_scale is None else float(slo_scale)
    if not (math.isfinite(s) and 0 < s <= 1e6):
        raise InputError(f"slo_scale: must be a positive number, got {slo_scale!r}")
    return f"slo_attainment.{scale_key(s)}", s


def check_bounds(workload: Any, max_gpus: int | None) -> int:
    """``max_gpus`` checked (default: twice the workload's cluster), and the work it
    implies bounded: InputError naming the field when either is out of range."""
    c = workload.cluster
    top = 2 * c.nodes * c.gpus_per_node if max_gpus is None else max_gpus
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_GPUS:
        raise InputError(f"max_gpus: must be an integer in 1..{MAX_GPUS}, got {max_gpus!r}")
    steps = math.ceil(top / c.gpus_per_node) + math.ceil(math.log2(c.gpus_per_node)) + 1
    requests = _expected_requests(workload)
    if steps * requests > MAX_REQUESTS:
        raise InputError(f"max_gpus: {top} GPUs means up to {steps} simulations of about {requests:,.0f} requests "
                         f"each, more than {MAX_REQUESTS:,} in all; lower max_gpus or the workload's duration")
    return top


def _expected_requests(workload: Any) -> float:
    return float(sum(float(m.rate or 0.0) for m in workload.models) * float(workload.duration_s))


def _on(workload: Any, gpus: int, scale: float | None) -> Any:
    """``workload`` on just enough whole nodes for ``gpus`` GPUs (its SLO scales cut to ``scale``)."""
    c = workload.cluster
    nodes = math.ceil(gpus / c.gpus_per_node)
    update: dict[str, Any] = {"cluster": c.model_copy(update={"nodes": nodes})}
    if scale is not None:
        update["slo"] = workload.slo.model_copy(update={"scales": (scale,)})
    return workload.model_copy(update=update)


def capacity(workload: Any, algorithm: str | None = None, *, slo_scale: float | None = None,
             target: float | None = None, max_gpus: int | None = None, seed: int | None = None,
             config: Any = None, options: dict[str, Any] | None = None, progress: Any = None,
             cost: Any = None) -> Capacity:
    """The fewest GPUs at which ``algorithm``'s plan reaches ``target`` attainment (see
    the module doc). ``options`` go to the placement; ``progress(text)`` is told each step;
    ``cost``: the cost model placement and simulation use (default: the GPU's)."""
    from muxsim.errors import COST_METHODS, InputTypeError, expect_model
    from muxsim.limits import MAX_SEED
    from muxsim.placement import ALGORITHMS, DEFAULT_ALGORITHM, SIMULATING, solve_placement
    from muxsim.sim import simulate
    from muxsim.sim.config import SimConfig
    from muxsim.workload import as_workload

    workload = as_workload(workload)
    algorithm = DEFAULT_ALGORITHM if algorithm is None else algorithm
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        shown = repr(algorithm) if isinstance(algorithm, str) and len(algorithm) <= 40 else type(algorithm).__name__
        raise InputError(f"algorithm: unknown {shown} (known: {', '.join(ALGORITHMS)})")
    if slo_scale is not None and (isinstance(slo_scale, bool) or not isinstance(slo_scale, int | float)):
        raise InputError(f"slo_scale: must be a positive number, got {slo_scale!r}")
    objective, scale = _objective(workload, slo_scale)
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | float)):
        raise InputError(f"target: must be a number in (0, 1], got {target!r}")
    goal = float(workload.slo.target_attainment if target is None else target)
    if not (math.isfinite(goal) and 0 < goal <= 1):
        raise InputError(f"target: must be in (0, 1], got {target!r}")
    top = check_bounds(workload, max_gpus)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise InputError(f"seed: must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if config is not None and not isinstance(config, SimConfig):
        raise InputTypeError(f"config: expected a SimConfig, got {type(config).__name__}")
    if options is not None and not (isinstance(options, dict) and all(isinstance(k, str) for k in options)):
        raise InputTypeError(f"options: expected a dict of placement options, got {type(options).__name__}")
    expect_model(cost, "cost", COST_METHODS, "a cost model (mx.cost_model(...))")
    if progress is not None and not callable(progress):
        raise InputTypeError(f"progress: expected a function of one string, got {type(progress).__name__}")
    config = config or SimConfig()
    seed = int(workload.seed) if seed is None else int(seed)
    opts = dict(options or {})
    if algorithm in SIMULATING:
        opts.setdefault("eval_seed", seed)  # flex-slo's scoring draw avoids the run it is judged on
        if scale is not None:
            opts.setdefault("slo_scale", scale)
    gpn = workload.cluster.gpus_per_node
    tried: dict[int, dict[str, Any]] = {}
    plans: dict[int, Any] = {}

    def attempt(g: int) -> bool:
        if progress is not None:
            progress(f"{g} GPUs")
        wl = _on(workload, g, scale)
        point: dict[str, Any] = {"gpus": g, "nodes": wl.cluster.nodes, "attainment": 0.0, "throughput_rps": 0.0,
                                 "carried": None}
        try:
            res = solve_placement(wl, algorithm, cost=cost, sim_config=config, gpus=g, **opts)
        except InputError as e:  # an LLM fits no mesh this small
            res = None
            point["verdict"] = f"no plan: {e}"
        if res is not None and res.plan is None:
            point["verdict"] = f"no plan: {res.message}"
        elif res is not None:
            agg = simulate(res.plan, wl, seed=seed, cost=cost, config=config).aggregate
            att = agg["slo"]["attainment"] if scale is None else agg["slo_attainment"][objective.split(".", 1)[1]]
            point.update(attainment=float(att or 0.0), throughput_rps=agg["throughput_rps"], verdict=res.verdict,
                         carried=f"{sum(d['carried'] for d in res.per_llm.values())}/{len(res.per_llm)}")
            plans[g] = res.plan
        tried[g] = point
        return g in plans and point["attainment"] >= goal - 1e-12  # no plan never reaches a target

    found = None
    for n in range(1, math.ceil(top / gpn) + 1):  # whole nodes
        g = min(n * gpn, top)
        if attempt(g):
            found = g
            break
    if found is not None:  # then the GPUs of the last node
        lo, hi = (found - 1) // gpn * gpn, found
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if attempt(mid):
                hi = mid
            else:
                lo = mid
        found = hi
    curve = [tried[g] for g in sorted(tried)]
    return Capacity(algorithm=algorithm, gpus=found, nodes=None if found is None else math.ceil(found / gpn),
                    attainment=None if found is None else tried[found]["attainment"], target=goal,
                    objective=objective, max_gpus=top, gpus_per_node=gpn, curve=curve,
                    plan=None if found is None else plans[found])
