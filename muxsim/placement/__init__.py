"""Placement: which LLMs share which GPUs, and how they split them.

``solve_placement(workload, algorithm, ...)`` returns a :class:`PlacementResult`
(status, message, plan, objective, stats, and the verdict: whether the plan carries
each LLM's rate) and changes nothing; :func:`place` is the convenience wrapper that
returns the plan or raises. ``ALGORITHMS`` is the registry; the command line's
``--algorithm`` choices are its keys:

- ``flex-slo`` (the default): ``flex``'s candidates re-scored by short simulations of
  a sample of the workload that is not the evaluation run (:mod:`~muxsim.placement.slo`,
  :mod:`~muxsim.placement.scoring`);
- ``flex``: MuxServe's multiplexing with replicas, a local search from every
  baseline's plan, scored by the estimator (:mod:`~muxsim.placement.flex`);
- ``muxserve``: MuxServe's enumeration of mesh groups and greedy placement by
  computation demand (:mod:`~muxsim.placement.muxserve`);
- ``greedy-memory``, ``spatial``, ``spatial-min``, ``temporal``: baselines
  (:mod:`~muxsim.placement.baselines`);
- ``ilp``: the exact program among plans whose replicas run alone on their meshes
  (:mod:`~muxsim.placement.ilp`).

Every algorithm is scored by the estimator (:mod:`~muxsim.placement.estimator`). An LLM
may have replicas (several meshes, its rate split evenly) in ``flex``, ``flex-slo``,
``spatial`` and ``ilp`` plans. The objective is the estimated throughput, each LLM
capped at its rate (replicas: at their share of it). ``gpus=`` limits a plan to that
many of the cluster's GPUs (whole nodes first), as capacity planning needs. Placement
plans for the scheduling policies and serving limits the simulator will run with
(``sim_config=``, a :class:`muxsim.sim.SimConfig`; its defaults otherwise): the
estimator asks each policy for its steady state, and the plan records the policy and
the limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from muxsim.errors import COST_METHODS, InputError, InputTypeError, expect_model
from muxsim.limits import MAX_SCORE_BUDGET, MAX_SEARCH, MAX_SLO_SCALE, MAX_TIME_LIMIT_S, MAX_TIME_S
from muxsim.placement import algorithms as _alg
from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import mesh_groups, node_splits, powers_of_two
from muxsim.placement.problem import LLM, Problem, gpu_budget, problem_from_workload
from muxsim.placement.result import FEASIBLE, INFEASIBLE, OPTIMAL, PlacementResult
from muxsim.placement.verdict import MEETS, verdicts
from muxsim.plan import Plan


def _ilp(est: Estimator, *, time_limit_s: float | None = None, max_unit: int | None = None,
         replicas: bool = True) -> PlacementResult:
    """The ILP (its own default time limit unless ``time_limit_s`` is given)."""
    from muxsim.placement.ilp import solve_ilp

    given = {"time_limit_s": time_limit_s, "max_unit": max_unit}
    return solve_ilp(est, replicas=replicas, **{k: v for k, v in given.items() if v is not None})


def _flex_slo(est: Estimator, **options: Any) -> PlacementResult:
    from muxsim.placement.slo import flex_slo

    return flex_slo(est, **options)


# name -> function(estimator, **options) -> PlacementResult
ALGORITHMS: dict[str, Callable[..., PlacementResult]] = {
    "flex-slo": _flex_slo,
    "flex": _alg.flex,
    "muxserve": _alg.muxserve,
    "greedy-memory": _alg.greedy_memory,
    "spatial": _alg.spatial,
    "spatial-min": _alg.spatial_min,
    "temporal": _alg.temporal,
    "ilp": _ilp,
}
DEFAULT_ALGORITHM = "flex-slo"
# algorithms that simulate candidate plans: they also get the workload, the simulator
# configuration, the cost model and the memory model
SIMULATING = frozenset({"flex-slo"})


def make_estimator(workload: Any, *, cost: Any = None, memory: Any = None, sim_config: Any = None,
                   gpus: int | None = None) -> Estimator:
    """The estimator every algorithm uses, over ``workload``'s LLMs and cluster (with
    ``gpus``, only that many of its GPUs: whole nodes first, see :func:`gpu_budget`).
    With ``sim_config`` (a :class:`muxsim.sim.SimConfig`) it plans for the policies and
    serving limits that configuration runs with and charges co-running jobs the
    interference it simulates (none with ``interference_on=False``); without, the
    simulator's defaults."""
    if isinstance(workload, Problem):
        problem = workload if gpus is None else replace(workload, node_gpus=gpu_budget(workload.cluster, gpus))
    else:
        problem = problem_from_workload(workload, gpus)
    gpu = problem.cluster.gpu
    if cost is None:
        from muxsim.costmodel import cost_model

        cost = cost_model(gpu)
    kw: dict[str, Any] = {}
    if sim_config is not None:
        from muxsim.plan import MODES
        from muxsim.sim.config import SimConfig

        if not isinstance(sim_config, SimConfig):
            raise InputTypeError(f"sim_config: expected a SimConfig, got {type(sim_config).__name__}")

        kw["limits"] = sim_config.limits
        kw["policies"] = {mode: sim_config.policy(mode) for mode in MODES}
    if memory is None:
        from muxsim.memory import MemoryModel

        memory = MemoryModel(gpu, limits=kw.get("limits"))
    if sim_config is not None:
        p = sim_config.interference
        kw["interference"] = (p.sm_coef, p.hbm_coef) if sim_config.interference_on else (0.0, 0.0)
    return Estimator(problem, cost, memory, **kw)


def check_servable(est: Estimator) -> None:
    """Raise InputError naming the first LLM that fits no mesh of the cluster."""
    p = est.problem
    c = p.cluster
    most = max(p.capacities)
    sizes = powers_of_two(min(c.gpus_per_node, most))
    for i, m in enumerate(p.llms):
        if est.min_size(i, sizes) is None:
            raise InputError(
                f"models[{i}] ({m.name}): {m.spec.name} does not fit any mesh of up to "
                f"{most} {c.gpu} GPUs (weights {m.spec.weight_bytes() / 2**30:.1f} GiB)")


def solve_placement(workload: Any, algorithm: str = DEFAULT_ALGORITHM, *, cost: Any = None, memory: Any = None,
                    sim_config: Any = None, gpus: int | None = None, **options: Any) -> PlacementResult:
    """Run one registered algorithm. Raises InputError for an unknown algorithm or an
    LLM that fits no mesh; other failures come back as ``status == "infeasible"``.
    ``sim_config``: the simulator configuration the plan will be scored under (its
    interference model is what the estimator charges; see :func:`make_estimator`).
    ``gpus``: use at most this many of the cluster's GPUs (whole nodes first). The
    result carries the verdict: whether the plan carries each LLM's rate."""
    fn = ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if fn is None:
        shown = repr(algorithm) if isinstance(algorithm, str) and len(algorithm) <= 40 else type(algorithm).__name__
        raise InputError(f"algorithm: unknown {shown} (known: {', '.join(ALGORITHMS)})")
    _check_options(algorithm, fn, options)
    expect_model(cost, "cost", COST_METHODS, "a cost model (mx.cost_model(...))")
    expect_model(memory, "memory", ("kv_blocks_per_gpu",), "a memory model (mx.MemoryModel(...))")
    workload = _as_problem_input(workload)
    est = make_estimator(workload, cost=cost, memory=memory, sim_config=sim_config, gpus=gpus)
    _check_search_size(algorithm, est.problem, options)
    check_servable(est)
    if algorithm in SIMULATING and not (hasattr(workload, "slo_targets") and hasattr(workload, "seed")):
        raise InputError(f"algorithm: {algorithm} simulates candidate plans and needs a workload (workload.json), "
                         "not a placement problem")
    if algorithm in SIMULATING:
        options = {"workload": workload, "sim_config": sim_config, "cost": cost, "memory": memory, **options}
    res = fn(est, **options)
    if res.plan is not None:  # every algorithm's plan passes the same checks
        res.plan.verify(workload=_Names(est.problem), memory=est.memory, limits=est.limits)
        verdict, per_llm = verdicts(est, res.plan)
        res = replace(res, verdict=verdict, per_llm=per_llm)
    return res


# algorithms that fill many mesh groups: their work grows as LLMs x meshes per group
_GROUP_SEARCHES = ("muxserve", "temporal", "greedy-memory", "flex", "flex-slo")
_OPTION_CHECKS: dict[str, tuple[type, float, float]] = {
    "time_limit_s": (float, 0.0, MAX_TIME_LIMIT_S), "max_groups": (int, 1, 100_000),
    "refine_top": (int, 0, 10_000), "max_unit": (int, 1, 64), "max_moves": (int, 0, 100_000),
    "budget": (int, 1, MAX_SCORE_BUDGET), "score_horizon_s": (float, 0.0, MAX_TIME_S),
    "slo_scale": (float, 0.0, MAX_SLO_SCALE)}
# options solve_placement passes itself to the algorithms that simulate
_INTERNAL = ("workload", "sim_config", "cost", "memory")


def _check_options(algorithm: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """Unknown options and values out of range are InputErrors naming the option."""
    import inspect

    if algorithm in SIMULATING:
        from muxsim.placement.slo import flex_slo

        fn = flex_slo
    known = [p for p in inspect.signature(fn).parameters if p not in ("est", *_INTERNAL)]
    for key, value in options.items():
        if key not in known:
            raise InputError(f"{key}: not an option of {algorithm} (its options: {', '.join(known) or 'none'})")
        if key in ("time_limit_s", "slo_scale", "score_seed", "eval_seed") and value is None:
            continue
        kind, lo, hi = _OPTION_CHECKS.get(key, (None, 0, 0))
        if kind is None:
            if key in ("spend_spare", "replicas") and not isinstance(value, bool):
                raise InputError(f"{key}: must be True or False, got {value!r}")
            if key == "headrooms" and not (isinstance(value, tuple | list) and len(value) <= 8 and all(
                    not isinstance(h, bool) and isinstance(h, int | float) and 1 <= h <= 100 for h in value)):
                raise InputError(f"{key}: must be up to 8 numbers in [1, 100], got {value!r}")
            continue
        ok = not isinstance(value, bool) and isinstance(value, int | float if kind is float else int)
        if not ok or not (value > lo if kind is float else value >= lo) or not value <= hi:
            raise InputError(f"{key}: must be {'a number' if kind is float else 'an integer'} in "
                             f"{'(' if kind is float else '['}{lo:g}, {hi:g}], got {value!r}")


def _check_search_size(algorithm: str, problem: Problem, options: dict[str, Any]) -> None:
    """A group search without a time limit must stay below MAX_SEARCH unit estimates
    per mesh group (LLMs x meshes); larger ones need ``time_limit_s``."""
    if algorithm not in _GROUP_SEARCHES or options.get("time_limit_s") is not None:
        return
    n = len(problem.llms)
    size = n * max(n, problem.cluster.nodes)
    if size > MAX_SEARCH:
        raise InputError(f"{algorithm}: {n} LLMs on {problem.cluster.nodes} node(s) is a search of about {size:,} "
                         f"estimates per mesh group, more than {MAX_SEARCH:,} without a time limit; give "
                         "--time-limit S (time_limit_s=S) for the best plan found within S seconds")


def _as_problem_input(workload: Any) -> Any:
    if isinstance(workload, Problem) or (hasattr(workload, "models") and hasattr(workload, "cluster")):
        return workload
    if isinstance(workload, dict | str) or hasattr(workload, "__fspath__"):
        from muxsim.workload import as_workload

        return as_workload(workload)
    raise InputTypeError(f"workload: expected a Workload, a workload dict or a path to workload.json, "
                         f"got {type(workload).__name__}")


class _Names:
    """What Plan.verify needs of a workload: ``.models`` with ``.name``."""

    def __init__(self, problem: Problem) -> None:
        self.models = problem.llms


def place(workload: Any, algorithm: str = DEFAULT_ALGORITHM, *, cost: Any = None, memory: Any = None,
          **options: Any) -> Plan:
    """The plan ``algorithm`` chooses; InputError when there is none."""
    res = solve_placement(workload, algorithm, cost=cost, memory=memory, **options)
    if res.plan is None:
        raise InputError(f"placement ({algorithm}): {res.message}")
    return res.plan


__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "FEASIBLE",
    "INFEASIBLE",
    "LLM",
    "MEETS",
    "OPTIMAL",
    "Estimator",
    "PlacementResult",
    "Problem",
    "UnitEstimate",
    "make_estimator",
    "mesh_groups",
    "node_splits",
    "place",
    "problem_from_workload",
    "solve_placement",
]
