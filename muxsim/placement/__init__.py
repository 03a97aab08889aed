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
many of the cluster's GPUs (whole nodes first), as capacity planning needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from muxsim.errors import InputError
from muxsim.placement import algorithms as _alg
from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import mesh_groups, node_splits, powers_of_two
from muxsim.placement.problem import LLM, Problem, gpu_budget, problem_from_workload
from muxsim.placement.result import FEASIBLE, INFEASIBLE, OPTIMAL, PlacementResult
from muxsim.placement.verdict import MEETS, verdicts
from muxsim.plan import Plan


def _ilp(est: Estimator, **options: Any) -> PlacementResult:
    from muxsim.placement.ilp import solve_ilp

    return solve_ilp(est, **options)


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


def make_estimator(workload: Any, *, cost: Any = None, memory: Any = None, overload: float | None = None,
                   sim_config: Any = None, gpus: int | None = None) -> Estimator:
    """The estimator every algorithm uses, over ``workload``'s LLMs and cluster (with
    ``gpus``, only that many of its GPUs: whole nodes first, see :func:`gpu_budget`).
    With ``sim_config`` (a :class:`muxsim.sim.SimConfig`) it charges co-running decode
    jobs the interference that configuration simulates (none with
    ``interference_on=False``); without, the simulator's defaults."""
    if isinstance(workload, Problem):
        problem = workload if gpus is None else replace(workload, node_gpus=gpu_budget(workload.cluster, gpus))
    else:
        problem = problem_from_workload(workload, gpus)
    gpu = problem.cluster.gpu
    if cost is None:
        from muxsim.costmodel import cost_model

        cost = cost_model(gpu)
    if memory is None:
        from muxsim.memory import MemoryModel

        memory = MemoryModel(gpu)
    kw: dict[str, Any] = {} if overload is None else {"overload": overload}
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
                    overload: float | None = None, sim_config: Any = None, gpus: int | None = None,
                    **options: Any) -> PlacementResult:
    """Run one registered algorithm. Raises InputError for an unknown algorithm or an
    LLM that fits no mesh; other failures come back as ``status == "infeasible"``.
    ``sim_config``: the simulator configuration the plan will be scored under (its
    interference model is what the estimator charges; see :func:`make_estimator`).
    ``gpus``: use at most this many of the cluster's GPUs (whole nodes first)."""
    fn = ALGORITHMS.get(algorithm)
    if fn is None:
        raise InputError(f"algorithm: unknown {algorithm!r} (known: {', '.join(ALGORITHMS)})")
    est = make_estimator(workload, cost=cost, memory=memory, overload=overload, sim_config=sim_config, gpus=gpus)
    check_servable(est)
    if algorithm in SIMULATING:
        options = {"workload": workload, "sim_config": sim_config, "cost": cost, "memory": memory, **options}
    res = fn(est, **options)
    if res.plan is not None:  # every algorithm's plan passes the same checks
        res.plan.verify(workload=_Names(est.problem), memory=est.memory, overload=est.overload)
        verdict, per_llm = verdicts(est, res.plan)
        res = replace(res, verdict=verdict, per_llm=per_llm)
    return res


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
